-- Rampart schema version 7: the full-text index. Message text is indexed
-- by trigrams, so that any substring of three or more characters is found
-- (IMAP SEARCH is a substring match). The index keeps no copy of the text.
-- text_state: 0 = not indexed yet, 1 = indexed, 2 = indexed in part (cut
-- at the configured limit; searches read such messages whole).
ALTER TABLE messages ADD COLUMN text_state INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_text_pending ON messages(id) WHERE text_state != 1;
CREATE VIRTUAL TABLE message_text USING fts5(
    headers, body, tokenize = 'trigram', content = '', contentless_delete = 1
);
CREATE TRIGGER messages_text_delete AFTER DELETE ON messages
WHEN old.text_state != 0
BEGIN
    DELETE FROM message_text WHERE rowid = old.id;
END;
