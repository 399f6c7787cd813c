-- Rampart schema version 5: message counters per mailbox (for IMAP STATUS
-- and LIST-STATUS), kept by a trigger on mailbox_messages so that no code
-- path that adds, removes or flags a message can forget them.
ALTER TABLE mailboxes
    ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN unseen_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN deleted_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN total_size BIGINT NOT NULL DEFAULT 0;

UPDATE mailboxes mb SET
    message_count = s.n,
    unseen_count = s.unseen,
    deleted_count = s.deleted,
    total_size = s.size
FROM (
    SELECT mm.mailbox_id,
           count(*) AS n,
           count(*) FILTER (WHERE (mm.flags & 1) = 0) AS unseen,
           count(*) FILTER (WHERE (mm.flags & 8) <> 0) AS deleted,
           coalesce(sum(m.size), 0) AS size
    FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id
    GROUP BY mm.mailbox_id
) s
WHERE mb.id = s.mailbox_id;

CREATE FUNCTION rampart_count_mailbox_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE mailboxes SET
            message_count = message_count + 1,
            unseen_count = unseen_count + CASE WHEN (NEW.flags & 1) = 0 THEN 1 ELSE 0 END,
            deleted_count = deleted_count + CASE WHEN (NEW.flags & 8) <> 0 THEN 1 ELSE 0 END,
            total_size = total_size + coalesce((SELECT size FROM messages WHERE id = NEW.message_id), 0)
        WHERE id = NEW.mailbox_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE mailboxes SET
            message_count = message_count - 1,
            unseen_count = unseen_count - CASE WHEN (OLD.flags & 1) = 0 THEN 1 ELSE 0 END,
            deleted_count = deleted_count - CASE WHEN (OLD.flags & 8) <> 0 THEN 1 ELSE 0 END,
            total_size = total_size - coalesce((SELECT size FROM messages WHERE id = OLD.message_id), 0)
        WHERE id = OLD.mailbox_id;
    ELSIF OLD.flags <> NEW.flags THEN
        UPDATE mailboxes SET
            unseen_count = unseen_count
                - CASE WHEN (OLD.flags & 1) = 0 THEN 1 ELSE 0 END
                + CASE WHEN (NEW.flags & 1) = 0 THEN 1 ELSE 0 END,
            deleted_count = deleted_count
                - CASE WHEN (OLD.flags & 8) <> 0 THEN 1 ELSE 0 END
                + CASE WHEN (NEW.flags & 8) <> 0 THEN 1 ELSE 0 END
        WHERE id = NEW.mailbox_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER mailbox_messages_count
    AFTER INSERT OR DELETE OR UPDATE OF flags ON mailbox_messages
    FOR EACH ROW EXECUTE FUNCTION rampart_count_mailbox_messages();
