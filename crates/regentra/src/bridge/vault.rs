//! AES-256-GCM token vault for secrets at rest.
