-- Rampart schema version 1 (PostgreSQL).
CREATE TABLE domains (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE principals (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    local_part TEXT NOT NULL,
    display_name TEXT NOT NULL,
    password_hash TEXT,
    quota_bytes BIGINT NOT NULL DEFAULT 0,
    used_bytes BIGINT NOT NULL DEFAULT 0,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    UNIQUE (domain_id, local_part)
);

CREATE TABLE aliases (
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    local_part TEXT NOT NULL,
    target_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (domain_id, local_part)
);
CREATE INDEX aliases_target ON aliases(target_id);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    member_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members(member_id);

CREATE TABLE mailboxes (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT,
    uid_next BIGINT NOT NULL DEFAULT 1,
    highest_modseq BIGINT NOT NULL DEFAULT 1,
    subscribed BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

-- One row per stored blob. refcount counts the messages rows that name it;
-- a row with refcount 0 is a blob written but not (or no longer) named, which
-- sweep_blobs removes once last_put_at is older than the grace period.
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    refcount BIGINT NOT NULL DEFAULT 0 CHECK (refcount >= 0),
    last_put_at BIGINT NOT NULL,
    -- Content lives in the database so that every node sharing it sees it.
    data BYTEA NOT NULL
);
CREATE INDEX blobs_unreferenced ON blobs(last_put_at) WHERE refcount = 0;

-- A message of an account: immutable content and metadata.
CREATE TABLE messages (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    blob_hash TEXT NOT NULL REFERENCES blobs(hash),
    size BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    message_id_header TEXT,
    thread_id BIGINT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX messages_by_header ON messages(account_id, message_id_header);

-- A message's membership in a mailbox, with its per-mailbox state.
CREATE TABLE mailbox_messages (
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid BIGINT NOT NULL,
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    flags BIGINT NOT NULL DEFAULT 0,
    keywords TEXT NOT NULL DEFAULT '',
    modseq BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX mailbox_messages_message ON mailbox_messages(message_id);

-- The change log: one row per change to a mailbox's contents.
CREATE TABLE changes (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    mailbox_id BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX changes_by_mailbox ON changes(mailbox_id, modseq);
