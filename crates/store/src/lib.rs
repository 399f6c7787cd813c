#![forbid(unsafe_code)]
//! Rampart's storage layer: the [`Store`] trait and its two backends.
//!
//! Only the `core` crate depends on this crate (rule R2): protocol crates never
//! see a `Store`. The trait speaks in domain operations (append a message to
//! mailboxes, allocate UIDs, expunge) rather than in generic rows, because each
//! of those must be atomic and each backend knows best how to make it so.

mod blob;
mod model;
mod postgres;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use blob::BlobHash;
pub use model::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = 13;

/// Everything that can go wrong in the store, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{kind} not found: {name}")]
    NotFound { kind: &'static str, name: String },
    /// The object (or an address that would clash with it) exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The operation would leave the store inconsistent (for example a domain that still has accounts).
    #[error("{0}")]
    Conflict(String),
    /// The account's quota does not leave room for the message.
    #[error("quota exceeded for account {account}: {needed} bytes needed, {available} bytes free")]
    QuotaExceeded {
        account: PrincipalId,
        needed: u64,
        available: u64,
    },
    /// The store was written by a newer Rampart.
    #[error(
        "the store has schema version {found}, newer than this binary supports ({supported}): run a newer rampart, or restore a backup made with this version"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// The data directory or database is not a usable Rampart store.
    #[error("{0}")]
    Corrupt(String),
    /// A blob's content does not match its hash or is missing.
    #[error("blob {hash} is damaged or missing: {reason}")]
    BlobDamaged { hash: BlobHash, reason: String },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error from the database engine.
    #[error("database error: {0}")]
    Backend(String),
    /// The database was locked by another writer for longer than the wait
    /// allowed (SQLite's busy timeout).
    #[error("database busy: {0}")]
    Busy(String),
}

/// Result type of every store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which backend to open and where.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded default: `rampart.db` and `blobs/` under the data directory.
    Sqlite { data_dir: PathBuf, pool_size: usize },
    /// A PostgreSQL database shared by one or more Rampart nodes; blobs live in the database too.
    Postgres { url: String, pool_size: usize },
}

/// Whether opening may create a new, empty store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the store (and data directory) if there is none yet.
    CreateIfMissing,
    /// Fail with a clear error if there is no store yet.
    MustExist,
}

/// Opens the configured backend, running schema migrations.
pub async fn open(config: &StoreConfig, mode: OpenMode) -> Result<Arc<dyn Store>> {
    match config {
        StoreConfig::Sqlite {
            data_dir,
            pool_size,
        } => Ok(Arc::new(
            SqliteStore::open(data_dir, *pool_size, mode).await?,
        )),
        StoreConfig::Postgres { url, pool_size } => {
            Ok(Arc::new(PostgresStore::open(url, *pool_size).await?))
        }
    }
}

/// The storage interface used by `core`. Every method is atomic: it either
/// commits entirely or leaves no trace.
#[async_trait]
pub trait Store: StsPolicyStore + LoginBanStore + Send + Sync + 'static {
    /// Short name of the backend, for logs.
    fn backend_name(&self) -> &'static str;

    /// Announcements of what other processes sharing this store change
    /// (other nodes on one PostgreSQL database), for as long as the store is
    /// open; `None` where the backend has no other writers to hear from.
    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<Announcement>> {
        None
    }

    /// Reads a store-wide setting.
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets a store-wide setting only if it is not set yet; returns whether it was set now.
    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool>;

    /// Adds a local domain.
    async fn create_domain(&self, name: &str) -> Result<Domain>;
    /// Looks up a domain by name (lower case).
    async fn find_domain(&self, name: &str) -> Result<Option<Domain>>;
    /// Lists every domain, by name.
    async fn list_domains(&self) -> Result<Vec<Domain>>;
    /// Removes a domain that has no accounts, groups or aliases left.
    async fn delete_domain(&self, id: DomainId) -> Result<()>;

    /// Creates a user or group together with its initial mailboxes.
    async fn create_principal(&self, new: NewPrincipal) -> Result<Principal>;
    /// Reads a principal by id.
    async fn get_principal(&self, id: PrincipalId) -> Result<Option<Principal>>;
    /// Finds the principal an address names, directly or through an alias.
    async fn find_principal(&self, local_part: &str, domain: &str) -> Result<Option<Principal>>;
    /// Lists principals, of one domain or of all.
    async fn list_principals(&self, domain: Option<DomainId>) -> Result<Vec<Principal>>;
    /// Changes the given attributes of a principal.
    async fn update_principal(&self, id: PrincipalId, update: PrincipalUpdate) -> Result<()>;
    /// Removes a principal with its mailboxes, messages, aliases and memberships.
    async fn delete_principal(&self, id: PrincipalId) -> Result<()>;

    /// Adds an app password (given as its hash) to a user; fails with
    /// [`StoreError::AlreadyExists`] if the user has one of that name.
    async fn add_app_password(
        &self,
        principal: PrincipalId,
        name: &str,
        secret_hash: &str,
    ) -> Result<AppPassword>;
    /// A user's app passwords, by name.
    async fn list_app_passwords(&self, principal: PrincipalId) -> Result<Vec<AppPassword>>;
    /// Revokes a user's app password by name.
    async fn remove_app_password(&self, principal: PrincipalId, name: &str) -> Result<()>;
    /// The user's app password with this hash, if any.
    async fn find_app_password(
        &self,
        principal: PrincipalId,
        secret_hash: &str,
    ) -> Result<Option<AppPassword>>;

    /// Adds an alias address that delivers to `target`.
    async fn add_alias(
        &self,
        domain: DomainId,
        local_part: &str,
        target: PrincipalId,
    ) -> Result<()>;
    /// Removes an alias address.
    async fn remove_alias(&self, domain: DomainId, local_part: &str) -> Result<()>;
    /// Lists aliases, of one target or of all.
    async fn list_aliases(&self, target: Option<PrincipalId>) -> Result<Vec<Alias>>;

    /// Makes `member` a member of `group`.
    async fn add_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()>;
    /// Removes `member` from `group`.
    async fn remove_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()>;
    /// Lists the members of a group.
    async fn group_members(&self, group: PrincipalId) -> Result<Vec<Principal>>;

    /// Creates a mailbox in an account.
    async fn create_mailbox(&self, account: PrincipalId, new: NewMailbox) -> Result<Mailbox>;
    /// Lists an account's mailboxes, by name.
    async fn list_mailboxes(&self, account: PrincipalId) -> Result<Vec<Mailbox>>;
    /// Reads a mailbox by id.
    async fn get_mailbox(&self, id: MailboxId) -> Result<Option<Mailbox>>;
    /// Finds an account's mailbox by name; "INBOX" in any case also names
    /// the mailbox with the inbox role. The first by name when both match.
    async fn find_mailbox(&self, account: PrincipalId, name: &str) -> Result<Option<Mailbox>>;
    /// Renames mailboxes in one transaction (a mailbox and its children);
    /// fails with [`StoreError::AlreadyExists`] if a new name is taken.
    async fn rename_mailboxes(&self, renames: &[(MailboxId, String)]) -> Result<()>;
    /// The names an account subscribes to, existing as mailboxes or not
    /// (RFC 9051 §6.3.7), sorted.
    async fn subscriptions(&self, account: PrincipalId) -> Result<Vec<String>>;
    /// Subscribes an account to a name, or unsubscribes it.
    async fn set_subscription(&self, account: PrincipalId, name: &str, on: bool) -> Result<()>;
    /// Claims the messages no session has seen as `\Recent` yet: returns the
    /// UIDs `[first, end)` that are now recent to the caller alone, and moves
    /// the mailbox's mark to `end` (RFC 3501 §2.3.2).
    async fn claim_recent(&self, mailbox: MailboxId) -> Result<(u32, u32)>;
    /// The UID of the newest message in a mailbox with this Message-ID
    /// (without angle brackets) received at or after `since` (ms since the epoch).
    async fn find_by_message_id(
        &self,
        mailbox: MailboxId,
        message_id: &str,
        since: i64,
    ) -> Result<Option<u32>>;
    /// A setting an account chose for itself, if set.
    async fn account_setting(&self, account: PrincipalId, key: &str) -> Result<Option<String>>;
    /// Sets (or with `None` clears) a setting of an account.
    async fn set_account_setting(
        &self,
        account: PrincipalId,
        key: &str,
        value: Option<&str>,
    ) -> Result<()>;
    /// Deletes a mailbox with its messages, releasing what no other mailbox holds.
    async fn delete_mailbox(&self, id: MailboxId) -> Result<()>;
    /// A mailbox with the counts of its messages (for IMAP STATUS), in one read.
    async fn mailbox_status(&self, id: MailboxId) -> Result<(Mailbox, MailboxStatus)>;

    /// Stores blob content durably (synced) and returns its hash. The blob is
    /// not yet named by any row; [`Store::sweep_blobs`] may remove it after the
    /// grace period unless a message names it first. An append or enqueue that
    /// names a blob a sweep removed in between fails with
    /// [`StoreError::BlobDamaged`]; the caller puts it again and retries.
    async fn put_blob(&self, data: Arc<Vec<u8>>) -> Result<BlobHash>;
    /// Reads blob content, verifying it against its hash.
    async fn read_blob(&self, hash: BlobHash) -> Result<Vec<u8>>;
    /// Reads several blobs, each verified, in order. Backends override this
    /// to read them in one go.
    async fn read_blobs(&self, hashes: Vec<BlobHash>) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(hashes.len());
        for h in hashes {
            out.push(self.read_blob(h).await?);
        }
        Ok(out)
    }
    /// Reads a few small blobs (the caller knows their total is small);
    /// backends may read them on the calling thread.
    async fn read_small_blobs(&self, hashes: Vec<BlobHash>) -> Result<Vec<Vec<u8>>> {
        self.read_blobs(hashes).await
    }
    /// How many messages name the blob (0 when none).
    async fn blob_refcount(&self, hash: BlobHash) -> Result<u64>;
    /// Whether the blob's content is still held (named or not).
    async fn blob_stored(&self, hash: BlobHash) -> Result<bool>;
    /// Removes blob content that no row names and that is older than `grace`; returns how many.
    async fn sweep_blobs(&self, grace: Duration) -> Result<u64>;

    /// Appends one message to one or more mailboxes (possibly of several
    /// accounts) atomically: every mailbox gets it, or none does.
    async fn append_message(
        &self,
        targets: &[MailboxId],
        message: NewMessage,
    ) -> Result<Vec<Appended>>;
    /// Lists a mailbox's messages in UID order.
    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageRecord>>;
    /// Lists a mailbox's messages in UID order without reading their
    /// summaries (left empty): UIDs, flags, MODSEQs, sizes and dates only.
    async fn list_message_state(&self, mailbox: MailboxId) -> Result<Vec<MessageRecord>>;
    /// The messages of a mailbox with the given UIDs, in UID order; UIDs
    /// not in the mailbox are left out.
    async fn get_messages(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageRecord>>;
    /// Messages by id, those still stored, in id order.
    async fn messages_by_id(&self, ids: &[MessageId]) -> Result<Vec<StoredMessage>>;
    /// Cached derived data of `kind` for these messages (those that have it).
    async fn get_cached(
        &self,
        messages: &[MessageId],
        kind: &str,
    ) -> Result<Vec<(MessageId, Vec<u8>)>>;
    /// Messages of a mailbox by UID, as [`Store::get_messages`], each with
    /// its cached derived data of `kind` when it has some.
    async fn get_messages_cached(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        kind: &str,
    ) -> Result<Vec<(MessageRecord, Option<Vec<u8>>)>> {
        let records = self.get_messages(mailbox, uids).await?;
        let ids: Vec<MessageId> = records.iter().map(|r| r.message).collect();
        let mut cached: std::collections::HashMap<MessageId, Vec<u8>> =
            self.get_cached(&ids, kind).await?.into_iter().collect();
        Ok(records
            .into_iter()
            .map(|r| {
                let data = cached.remove(&r.message);
                (r, data)
            })
            .collect())
    }
    /// Keeps derived data of `kind` for messages (replacing what was there).
    async fn put_cached(&self, kind: &str, entries: Vec<(MessageId, Vec<u8>)>) -> Result<()>;
    /// Searches the full-text index of a mailbox for a lower-case needle of
    /// at least three characters (a substring match, as IMAP SEARCH asks).
    async fn search_text(
        &self,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<TextMatches>;
    /// Up to `limit` messages that have no indexed text yet, oldest first.
    async fn unindexed_messages(&self, limit: usize) -> Result<Vec<(MessageId, BlobHash)>>;
    /// Adds messages' text to the full-text index (messages gone meanwhile are skipped).
    async fn put_text(&self, entries: Vec<(MessageId, MessageText)>) -> Result<()>;
    /// Copies messages to another mailbox of the same account (and with
    /// `remove`, takes them out of the source in the same transaction: a
    /// move). Returns (source UID, new UID) pairs in source UID order.
    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove: bool,
    ) -> Result<Vec<(u32, u32)>>;
    /// Changes flags and keywords of the given UIDs; returns each changed
    /// message's UID, new MODSEQ and message id.
    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        change: FlagChange,
    ) -> Result<Vec<(u32, u64, MessageId)>>;
    /// Removes the given UIDs from a mailbox; returns the mailbox's new HIGHESTMODSEQ.
    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<u64>;
    /// The change log of a mailbox after `since_modseq`, in MODSEQ order.
    async fn changes_since(&self, mailbox: MailboxId, since_modseq: u64) -> Result<Vec<Change>>;

    /// Puts a message on the outbound queue (taking a reference on its blob).
    async fn enqueue(&self, new: NewQueued) -> Result<QueueId>;
    /// Every queued message with all of its recipients, oldest first.
    async fn queue_list(&self) -> Result<Vec<QueueEntry>>;
    /// One queued message.
    async fn queue_get(&self, id: QueueId) -> Result<Option<QueueEntry>>;
    /// Claims up to `limit` messages that have recipients due at `now` (or
    /// whose earlier attempt's lease ran out, after a crash): those recipients
    /// are marked attempting until `lease_until` and returned; others are left out.
    async fn queue_claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>>;
    /// Records the outcome of an attempt for one recipient.
    async fn queue_record(&self, recipient: i64, outcome: QueueOutcome) -> Result<()>;
    /// Removes messages whose recipients are all delivered or failed, releasing their blobs.
    async fn queue_collect_finished(&self) -> Result<Vec<QueueId>>;
    /// Makes every unfinished recipient of a message due now.
    async fn queue_retry_now(&self, id: QueueId) -> Result<()>;
    /// Removes a message from the queue without delivering it.
    async fn queue_remove(&self, id: QueueId) -> Result<()>;

    /// Stores a DKIM signing key for a domain.
    async fn add_dkim_key(&self, domain: DomainId, key: DkimKey) -> Result<()>;
    /// The DKIM signing keys of a domain, oldest first.
    async fn dkim_keys(&self, domain: DomainId) -> Result<Vec<DkimKey>>;
}

/// Recipient domains' MTA-STS policies (RFC 8461 §5): what the outbound
/// queue learnt about other domains, not user data.
#[async_trait]
pub trait StsPolicyStore: Send + Sync + 'static {
    /// The stored policy of a domain (lower case), expired or not.
    async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>>;
    /// Stores a domain's policy in place of the one before, and drops every
    /// policy that expired before this one was fetched.
    async fn put_sts_policy(&self, policy: StsPolicyRecord) -> Result<()>;
}

/// Client addresses banned for failed logins: kept across restarts, and
/// shared by every node of one database.
#[async_trait]
pub trait LoginBanStore: Send + Sync + 'static {
    /// Bans `client` (an IPv4 address, or an IPv6 /64 as its first address)
    /// until `until` (Unix milliseconds), and forgets bans that ran out.
    async fn put_login_ban(&self, client: &str, until: i64) -> Result<()>;
    /// The bans that last beyond `now` (Unix milliseconds).
    async fn login_bans(&self, now: i64) -> Result<Vec<(String, i64)>>;
}

/// What another process sharing the store changed, as it announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A mailbox's contents or flags changed, or it was deleted.
    Mailbox(MailboxId),
    /// A client was banned for failed logins until `until` (Unix milliseconds).
    Ban { client: String, until: i64 },
}

/// MX patterns as one column: one per line (a policy line holds one).
fn encode_mx(mx: &[String]) -> Result<String> {
    if mx.iter().any(|m| m.contains(['\r', '\n'])) {
        return Err(StoreError::Conflict(
            "an MTA-STS mx pattern cannot hold a line break".into(),
        ));
    }
    Ok(mx.join("\n"))
}

fn decode_mx(column: &str) -> Vec<String> {
    column
        .split('\n')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Milliseconds since the Unix epoch, the store's clock.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
