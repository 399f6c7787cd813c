-- Rampart schema version 14: calendars and address books (CalDAV, CardDAV).
-- A collection belongs to one account and is named by its path segment in
-- the account's calendar or address-book home. Its objects (one iCalendar
-- or vCard resource each) are found by (collection, name) and by UID;
-- starts_at and ends_at bound its occurrences (exactly when it is not
-- recurring) for time-range queries. A
-- deleted object stays as a tombstone (deleted = 1, data emptied) so that
-- sync-collection (RFC 6578) can name what went; its changes are in the
-- one change log with collection_kind 'calendar' or 'addressbook'.
CREATE TABLE dav_collections (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('calendar', 'addressbook')),
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    color TEXT NOT NULL DEFAULT '',
    components TEXT NOT NULL DEFAULT '',
    highest_modseq BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    UNIQUE (account_id, kind, name)
);
CREATE TABLE dav_objects (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    collection_id BIGINT NOT NULL REFERENCES dav_collections(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    etag TEXT NOT NULL,
    component TEXT NOT NULL,
    starts_at BIGINT,
    ends_at BIGINT,
    recurring BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    size BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE UNIQUE INDEX dav_objects_by_uid ON dav_objects (collection_id, uid) WHERE deleted = 0;
CREATE INDEX dav_objects_by_modseq ON dav_objects (collection_id, modseq);
-- The organisation's address list (the directory every user of a domain
-- sees as a read-only address book): what people are beyond their
-- address (title, department, phone, office), and contacts of the
-- organisation that are not accounts.
CREATE TABLE directory_profiles (
    principal_id BIGINT PRIMARY KEY REFERENCES principals(id) ON DELETE CASCADE,
    title TEXT NOT NULL DEFAULT '',
    department TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    office TEXT NOT NULL DEFAULT ''
);
CREATE TABLE org_contacts (
    id BIGSERIAL PRIMARY KEY,
    domain_id BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    uid TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (domain_id, uid)
);
-- Calendars and address books shared by their owner with another account
-- or a group (whose members then have the right): read, or read and write.
CREATE TABLE collection_shares (
    collection_id BIGINT NOT NULL REFERENCES dav_collections(id) ON DELETE CASCADE,
    grantee_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    rights TEXT NOT NULL CHECK (rights IN ('read', 'write')),
    PRIMARY KEY (collection_id, grantee_id)
);
CREATE INDEX collection_shares_by_grantee ON collection_shares (grantee_id);
-- Properties clients set on a collection that Rampart does not interpret
-- (RFC 4918 dead properties: Apple's calendar-order, a calendar's time
-- zone...), kept as the XML content they were given.
CREATE TABLE dav_collection_props (
    collection_id BIGINT NOT NULL REFERENCES dav_collections(id) ON DELETE CASCADE,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection_id, ns, name)
);
