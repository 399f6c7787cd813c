-- Rampart schema version 6: derived data about messages that protocols
-- compute once and keep (IMAP ENVELOPE and BODYSTRUCTURE, ...), dropped
-- with the message.
CREATE TABLE message_cache (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (message_id, kind)
);
