-- Rampart schema version 9: subscriptions are names, apart from mailboxes
-- (RFC 9051 §6.3.7: a subscription outlives DELETE and RENAME); the mark
-- below which messages are no longer \Recent (RFC 3501 §2.3.2); settings an
-- account chooses for itself.
CREATE TABLE subscriptions (
    account_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
INSERT INTO subscriptions (account_id, name)
    SELECT account_id, name FROM mailboxes WHERE subscribed;
-- Messages already stored are not new to anyone.
ALTER TABLE mailboxes ADD COLUMN recent_uid BIGINT NOT NULL DEFAULT 1;
UPDATE mailboxes SET recent_uid = uid_next;
CREATE TABLE account_settings (
    account_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
);
