-- Rampart schema version 7: the full-text index. text_state: 0 = not
-- indexed yet, 1 = indexed, 2 = indexed in part (cut at the configured
-- limit; searches read such messages whole). Trigram indexes on the text
-- are added when the pg_trgm extension can be created (see postgres.rs);
-- without them a search reads the mailbox's text rows, still exactly.
ALTER TABLE messages ADD COLUMN text_state SMALLINT NOT NULL DEFAULT 0;
CREATE INDEX messages_text_pending ON messages(id) WHERE text_state <> 1;
CREATE TABLE message_text (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    headers TEXT NOT NULL,
    body TEXT NOT NULL
);
