-- Rampart schema version 12: one change log for every kind of collection
-- (issue 12 point 12), so that IMAP CONDSTORE/QRESYNC, WebDAV
-- sync-collection (RFC 6578) and JMAP /changes read the same rows:
-- (account, collection kind, collection id, modseq, object id, change).
-- uid is the object's number in its collection where it has one (the IMAP
-- UID), 0 elsewhere.
ALTER TABLE changes RENAME COLUMN mailbox_id TO collection_id;
ALTER TABLE changes RENAME COLUMN message_id TO object_id;
ALTER TABLE changes ADD COLUMN collection_kind TEXT NOT NULL DEFAULT 'mailbox';
DROP INDEX changes_by_mailbox;
CREATE INDEX changes_by_collection ON changes (collection_kind, collection_id, modseq);
CREATE INDEX changes_by_account ON changes (account_id);
