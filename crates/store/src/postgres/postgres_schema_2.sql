-- Rampart schema version 2 (PostgreSQL): the outbound queue.
-- A queued message holds one reference on its blob until every recipient is done.
CREATE TABLE queue (
    id BIGSERIAL PRIMARY KEY,
    blob_hash TEXT NOT NULL REFERENCES blobs(hash),
    size BIGINT NOT NULL,
    sender TEXT NOT NULL,
    owner_id BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE queue_recipients (
    id BIGSERIAL PRIMARY KEY,
    queue_id BIGINT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    domain TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    delay_notified BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX queue_recipients_due ON queue_recipients(status, next_attempt_at);
CREATE INDEX queue_recipients_queue ON queue_recipients(queue_id);
