//! Teams message content: sanitised display HTML and readable text (ARCHITECTURE §5.6).
