-- Outbound Teams replies (PostgreSQL). Keep in step with migrations/sqlite/0004_outbox.sql.
-- One row per technician reply, written in the same transaction as the reply entry. The entry
-- (ticket_entries.delivery_*) is what technicians see; this row is the worker's bookkeeping.

CREATE TABLE outbox (
    -- Insertion order = the order replies were written; replies to one chat go out in it.
    id                 BIGSERIAL PRIMARY KEY,
    entry_id           TEXT NOT NULL UNIQUE REFERENCES ticket_entries (id) ON DELETE CASCADE,
    chat_id            TEXT NOT NULL,
    html               TEXT NOT NULL,            -- the exact body posted (escaped technician text)
    state              TEXT NOT NULL,            -- pending | sent | failed
    attempts           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT NOT NULL,
    lease_owner        TEXT,                     -- worker holding the row while it sends
    lease_until        BIGINT,
    attempt_started_at BIGINT,                   -- set before a POST; kept while its outcome is unknown
    last_error         TEXT,
    graph_message_id   TEXT,
    sent_at            BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX outbox_chat_state ON outbox (chat_id, state, id);
CREATE INDEX outbox_state_due ON outbox (state, next_attempt_at);

-- Teams allows one post per second per user per chat: the earliest time the next post to a
-- chat may leave, shared by every worker process.
CREATE TABLE outbox_chat_pace (
    chat_id      TEXT PRIMARY KEY,
    next_post_at BIGINT NOT NULL
);
