-- Teams poller state (PostgreSQL). Keep in step with migrations/sqlite/0003_poller.sql.
-- Portable rules (sqlx Any): ids TEXT, times BIGINT unix milliseconds, flags BIGINT 0/1,
-- JSON as TEXT.

-- One row per connected support account that has been polled at least once.
CREATE TABLE poll_accounts (
    account_id        TEXT PRIMARY KEY,           -- the Teams connection's account key
    history_start     BIGINT NOT NULL,            -- messages created before this open no tickets
    watermark         BIGINT NOT NULL,            -- chat list stops at chats last active before this
    last_sweep_at     BIGINT,                     -- last daily re-read of recently active chats
    lease_owner       TEXT,                       -- process currently polling this account
    lease_until       BIGINT,                     -- the lease is free again after this
    last_started_at   BIGINT,
    last_finished_at  BIGINT,
    last_result       TEXT,                       -- ok | partial | failed | reconnect_required
    last_error        TEXT,
    last_summary      TEXT,                       -- JSON of the last cycle summary
    last_success_at   BIGINT,
    next_cycle_at     BIGINT,                     -- when the scheduler plans the next cycle
    created_at        BIGINT NOT NULL
);

-- One row per chat the poller has looked at.
CREATE TABLE poll_chats (
    account_id        TEXT NOT NULL REFERENCES poll_accounts (account_id) ON DELETE CASCADE,
    chat_id           TEXT NOT NULL,
    chat_type         TEXT,
    message_cursor    BIGINT,                     -- lastModifiedDateTime up to which all is stored
    last_preview_at   BIGINT,                     -- newest message time already handled
    failure           TEXT,                       -- NULL | forbidden | not_found | throttled | incomplete | error
    failure_detail    TEXT,
    failure_count     BIGINT NOT NULL DEFAULT 0,
    first_failed_at   BIGINT,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (account_id, chat_id)
);
CREATE INDEX poll_chats_last_preview ON poll_chats (account_id, last_preview_at);

-- Retry bookkeeping for pasted images whose download failed (attachments.download_state = pending).
CREATE TABLE attachment_downloads (
    attachment_id     TEXT PRIMARY KEY REFERENCES attachments (id) ON DELETE CASCADE,
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT NOT NULL,
    last_error        TEXT
);
CREATE INDEX attachment_downloads_due ON attachment_downloads (next_attempt_at);
