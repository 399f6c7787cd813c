-- Rampart schema version 1 (SQLite).
CREATE TABLE domains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE principals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    local_part TEXT NOT NULL,
    display_name TEXT NOT NULL,
    password_hash TEXT,
    quota_bytes INTEGER NOT NULL DEFAULT 0,
    used_bytes INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (domain_id, local_part)
);

CREATE TABLE aliases (
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    local_part TEXT NOT NULL,
    target_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (domain_id, local_part)
);
CREATE INDEX aliases_target ON aliases(target_id);

CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members(member_id);

CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT,
    uid_next INTEGER NOT NULL DEFAULT 1,
    highest_modseq INTEGER NOT NULL DEFAULT 1,
    subscribed INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

-- One row per stored blob. refcount counts the messages rows that name it;
-- a row with refcount 0 is a blob written but not (or no longer) named, which
-- sweep_blobs removes once last_put_at is older than the grace period.
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    refcount INTEGER NOT NULL DEFAULT 0 CHECK (refcount >= 0),
    last_put_at INTEGER NOT NULL
);
CREATE INDEX blobs_unreferenced ON blobs(last_put_at) WHERE refcount = 0;

-- A message of an account: immutable content and metadata.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    blob_hash TEXT NOT NULL REFERENCES blobs(hash),
    size INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    message_id_header TEXT,
    thread_id INTEGER NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX messages_by_header ON messages(account_id, message_id_header);

-- A message's membership in a mailbox, with its per-mailbox state.
CREATE TABLE mailbox_messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    flags INTEGER NOT NULL DEFAULT 0,
    keywords TEXT NOT NULL DEFAULT '',
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX mailbox_messages_message ON mailbox_messages(message_id);

-- The change log: one row per change to a mailbox's contents.
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    mailbox_id INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX changes_by_mailbox ON changes(mailbox_id, modseq);
