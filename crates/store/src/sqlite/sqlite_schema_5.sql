-- Rampart schema version 5: message counters per mailbox (for IMAP STATUS
-- and LIST-STATUS), kept by triggers on mailbox_messages so that no code
-- path that adds, removes or flags a message can forget them.
ALTER TABLE mailboxes ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN unseen_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN deleted_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN total_size INTEGER NOT NULL DEFAULT 0;

UPDATE mailboxes SET
    message_count = (SELECT count(*) FROM mailbox_messages mm WHERE mm.mailbox_id = mailboxes.id),
    unseen_count = (SELECT count(*) FROM mailbox_messages mm
                    WHERE mm.mailbox_id = mailboxes.id AND (mm.flags & 1) = 0),
    deleted_count = (SELECT count(*) FROM mailbox_messages mm
                     WHERE mm.mailbox_id = mailboxes.id AND (mm.flags & 8) != 0),
    total_size = (SELECT coalesce(sum(m.size), 0) FROM mailbox_messages mm
                  JOIN messages m ON m.id = mm.message_id WHERE mm.mailbox_id = mailboxes.id);

CREATE TRIGGER mailbox_messages_count_insert AFTER INSERT ON mailbox_messages BEGIN
    UPDATE mailboxes SET
        message_count = message_count + 1,
        unseen_count = unseen_count + ((NEW.flags & 1) = 0),
        deleted_count = deleted_count + ((NEW.flags & 8) != 0),
        total_size = total_size + coalesce((SELECT size FROM messages WHERE id = NEW.message_id), 0)
    WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER mailbox_messages_count_delete AFTER DELETE ON mailbox_messages BEGIN
    UPDATE mailboxes SET
        message_count = message_count - 1,
        unseen_count = unseen_count - ((OLD.flags & 1) = 0),
        deleted_count = deleted_count - ((OLD.flags & 8) != 0),
        total_size = total_size - coalesce((SELECT size FROM messages WHERE id = OLD.message_id), 0)
    WHERE id = OLD.mailbox_id;
END;

CREATE TRIGGER mailbox_messages_count_flags AFTER UPDATE OF flags ON mailbox_messages
WHEN OLD.flags != NEW.flags BEGIN
    UPDATE mailboxes SET
        unseen_count = unseen_count - ((OLD.flags & 1) = 0) + ((NEW.flags & 1) = 0),
        deleted_count = deleted_count - ((OLD.flags & 8) != 0) + ((NEW.flags & 8) != 0)
    WHERE id = NEW.mailbox_id;
END;
