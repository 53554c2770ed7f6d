-- Verify Client Federation (SQLite). Keep in step with migrations/postgres/0005_federation.sql.
-- Portable rules (sqlx Any): ids TEXT, times BIGINT unix milliseconds, JSON as TEXT.

-- The MSP tenant's own Teams external-access settings, imported by an administrator from
-- `Get-CsTenantFederationConfiguration | ConvertTo-Json`. At most one row (id = 'msp'): a new
-- import replaces it; a failed import never touches it.
CREATE TABLE federation_msp_settings (
    id          TEXT PRIMARY KEY,                -- always 'msp'
    settings    TEXT NOT NULL,                   -- JSON of bridge::federation::MspFederationSettings
    imported_by TEXT REFERENCES technicians (id) ON DELETE SET NULL,
    imported_at BIGINT NOT NULL
);

-- The last Verify Client Federation verdict per client (shown on the clients page).
CREATE TABLE federation_checks (
    client_id     TEXT PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    tenant_id     TEXT,                          -- the tenant ID as it was when checked
    status        TEXT NOT NULL,                 -- connected | blocked | unknown
    reasons       TEXT NOT NULL,                 -- JSON list of sentences, deciding reason first
    blocking_side TEXT,                          -- msp | client | NULL (not named)
    remediation   TEXT,                          -- JSON of bridge::federation::Remediation, or NULL
    checked_at    BIGINT NOT NULL
);
