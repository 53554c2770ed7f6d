-- Teams Chat Bridge connection and the OAuth flows in progress (SQLite).
-- Keep in step with migrations/postgres/0002_teams_connection.sql.
-- Secrets (tokens, PKCE verifiers) are only ever stored as token-vault blobs (AES-256-GCM,
-- associated data = table:row:field); never in clear.

-- One row per Microsoft 365 account ever connected (Entra tenant id + user object id). At most
-- one row is "current" (active_slot = 1: connected or reconnect_required); the others are
-- disconnected history with their tokens erased.
CREATE TABLE teams_connections (
    id                      TEXT PRIMARY KEY,
    state                   TEXT NOT NULL,          -- connected | reconnect_required | disconnected
    active_slot             BIGINT UNIQUE,          -- 1 for the current connection, NULL otherwise
    tenant_id               TEXT NOT NULL,          -- lower-case GUID (from /organization)
    user_id                 TEXT NOT NULL,          -- Entra object id of the support user (lower-case)
    email                   TEXT NOT NULL,
    display_name            TEXT NOT NULL,
    tenant_domains          TEXT NOT NULL DEFAULT '[]',  -- JSON list of verified domains
    scopes                  TEXT NOT NULL DEFAULT '[]',  -- JSON list of granted scopes
    personal_account_hint   TEXT,                   -- why the account looks personal, if it does
    access_token            BLOB,                   -- vault blob; NULL when disconnected
    access_token_expires_at BIGINT,
    refresh_token           BLOB,                   -- vault blob; NULL when disconnected
    token_version           BIGINT NOT NULL DEFAULT 0,   -- +1 on every token write (compare-and-swap)
    refresh_lease_owner     TEXT,                   -- process refreshing right now
    refresh_lease_until     BIGINT,
    last_refreshed_at       BIGINT,
    problem                 TEXT,                   -- why reconnect is required
    problem_at              BIGINT,
    connected_at            BIGINT NOT NULL,
    disconnected_at         BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    UNIQUE (tenant_id, user_id)
);

-- "Connect Teams Chat" clicks waiting for Microsoft's callback: single use, short-lived.
CREATE TABLE teams_oauth_states (
    state_hash    TEXT PRIMARY KEY,                 -- SHA-256 hex of the `state`; never the state
    technician_id TEXT NOT NULL REFERENCES technicians (id) ON DELETE CASCADE,
    pkce_verifier BLOB NOT NULL,                    -- vault blob
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX teams_oauth_states_expires_at ON teams_oauth_states (expires_at);
