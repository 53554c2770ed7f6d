//! Repository tests for tickets (filled in below).
