-- Rampart schema version 2 (SQLite): the outbound queue.
-- A queued message holds one reference on its blob until every recipient is done.
CREATE TABLE queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    blob_hash TEXT NOT NULL REFERENCES blobs(hash),
    size INTEGER NOT NULL,
    sender TEXT NOT NULL,
    owner_id INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE queue_recipients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    domain TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delay_notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_recipients_due ON queue_recipients(status, next_attempt_at);
CREATE INDEX queue_recipients_queue ON queue_recipients(queue_id);
