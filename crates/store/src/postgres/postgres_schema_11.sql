-- Rampart schema version 11: client addresses banned for failed logins,
-- shared by every node (client is an IPv4 address or the /64 of an IPv6
-- address; until is in Unix milliseconds), and announcements of changes
-- to other nodes.
CREATE TABLE login_bans (
    client TEXT PRIMARY KEY,
    until BIGINT NOT NULL
);

-- Every node LISTENs on the channel of its schema. Payloads are
-- '<kind> <node> <detail>': the node is the writer's application_name, so
-- that a node skips what it announced itself; NOTIFY is sent at commit and
-- identical payloads of one transaction are sent once, so a STORE over many
-- messages announces its mailbox once.
CREATE FUNCTION rampart_announce() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel TEXT := 'rampart_' || current_schema();
    node TEXT := current_setting('application_name');
BEGIN
    IF TG_TABLE_NAME = 'mailboxes' THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify(channel, 'm ' || node || ' ' || OLD.id);
        ELSE
            PERFORM pg_notify(channel, 'm ' || node || ' ' || NEW.id);
        END IF;
    ELSIF TG_TABLE_NAME = 'login_bans' THEN
        PERFORM pg_notify(channel, 'b ' || node || ' ' || NEW.until || ' ' || NEW.client);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER mailboxes_announce_change
    AFTER UPDATE OF highest_modseq ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION rampart_announce();
CREATE TRIGGER mailboxes_announce_delete
    AFTER DELETE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION rampart_announce();
CREATE TRIGGER login_bans_announce
    AFTER INSERT OR UPDATE ON login_bans
    FOR EACH ROW EXECUTE FUNCTION rampart_announce();
