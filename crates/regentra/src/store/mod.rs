//! Persistence: SQLite (embedded default) and PostgreSQL through one sqlx `Any` pool.
