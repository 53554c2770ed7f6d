-- Core helpdesk schema (PostgreSQL). Keep in step with migrations/sqlite/0001_core.sql.
-- Portable rules (sqlx Any): ids TEXT (UUID v7), times BIGINT unix milliseconds,
-- flags BIGINT 0/1 (never BOOLEAN), JSON as TEXT, bytes as BYTEA.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('ticket_number', 0);

CREATE TABLE technicians (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,          -- lower-cased
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,                 -- argon2id PHC string
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    technician_id TEXT NOT NULL REFERENCES technicians (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,          -- SHA-256 hex of the token; never the token
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX api_tokens_technician ON api_tokens (technician_id);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,                    -- JSON of the tower-sessions record data
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE clients (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    entra_tenant_id TEXT UNIQUE,                 -- lower-case GUID; NULLs do not collide
    domains         TEXT NOT NULL DEFAULT '[]',  -- JSON array of lower-case domains
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE contacts (
    id              TEXT PRIMARY KEY,
    client_id       TEXT REFERENCES clients (id) ON DELETE SET NULL,
    display_name    TEXT NOT NULL,
    email           TEXT,
    entra_object_id TEXT NOT NULL,
    entra_tenant_id TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (entra_object_id, entra_tenant_id)
);
CREATE INDEX contacts_tenant ON contacts (entra_tenant_id);

CREATE TABLE tickets (
    id                   TEXT PRIMARY KEY,
    number               BIGINT NOT NULL UNIQUE,
    subject              TEXT NOT NULL,
    status               TEXT NOT NULL,          -- new | open | pending | resolved | closed
    client_id            TEXT REFERENCES clients (id) ON DELETE SET NULL,
    unassigned_tenant_id TEXT,
    requester_contact_id TEXT REFERENCES contacts (id) ON DELETE SET NULL,
    teams_chat_id        TEXT,
    follow_up_of         TEXT REFERENCES tickets (id) ON DELETE SET NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    resolved_at          BIGINT,
    closed_at            BIGINT
);
CREATE INDEX tickets_chat_number ON tickets (teams_chat_id, number);
CREATE INDEX tickets_client_updated ON tickets (client_id, updated_at);
CREATE INDEX tickets_status_updated ON tickets (status, updated_at);
CREATE INDEX tickets_unassigned_tenant ON tickets (unassigned_tenant_id);

CREATE TABLE ticket_entries (
    id                   TEXT PRIMARY KEY,
    ticket_id            TEXT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    kind                 TEXT NOT NULL,          -- client_message | reply | note | event
    author_technician_id TEXT REFERENCES technicians (id) ON DELETE SET NULL,
    author_contact_id    TEXT REFERENCES contacts (id) ON DELETE SET NULL,
    author_name          TEXT NOT NULL,
    text                 TEXT NOT NULL,
    html                 TEXT NOT NULL,          -- sanitised
    teams_chat_id        TEXT,
    graph_message_id     TEXT,
    graph_last_modified  BIGINT,
    sent_from_teams      BIGINT NOT NULL DEFAULT 0,
    delivery_state       TEXT,                   -- NULL | queued | sent | failed
    delivery_attempts    BIGINT NOT NULL DEFAULT 0,
    delivery_error       TEXT,
    sent_at              BIGINT,
    edited_at            BIGINT,
    deleted_at           BIGINT,
    created_at           BIGINT NOT NULL,
    UNIQUE (teams_chat_id, graph_message_id)
);
CREATE INDEX ticket_entries_ticket_created ON ticket_entries (ticket_id, created_at);
CREATE INDEX ticket_entries_delivery_state ON ticket_entries (delivery_state);

CREATE TABLE entry_revisions (
    id            TEXT PRIMARY KEY,
    entry_id      TEXT NOT NULL REFERENCES ticket_entries (id) ON DELETE CASCADE,
    previous_text TEXT NOT NULL,
    previous_html TEXT NOT NULL,
    replaced_at   BIGINT NOT NULL
);
CREATE INDEX entry_revisions_entry ON entry_revisions (entry_id, replaced_at);

CREATE TABLE attachments (
    id             TEXT PRIMARY KEY,
    entry_id       TEXT NOT NULL REFERENCES ticket_entries (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,                -- link | image
    name           TEXT NOT NULL,
    url            TEXT,
    content_type   TEXT,
    content        BYTEA,
    download_state TEXT NOT NULL,                -- not_needed | pending | downloaded | failed
    created_at     BIGINT NOT NULL
);
CREATE INDEX attachments_entry ON attachments (entry_id);
CREATE INDEX attachments_download_state ON attachments (download_state);
