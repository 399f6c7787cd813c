-- Rampart schema version 4: DSN requests (RFC 3461) on queued mail.
ALTER TABLE queue ADD COLUMN dsn_ret_full INTEGER;
ALTER TABLE queue ADD COLUMN dsn_envid TEXT;
ALTER TABLE queue_recipients ADD COLUMN notify INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_recipients ADD COLUMN orcpt TEXT;
