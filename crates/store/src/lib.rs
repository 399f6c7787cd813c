#![forbid(unsafe_code)]
//! Rampart's storage layer: the [`Store`] trait and its two backends.
//!
//! Only the `core` crate depends on this crate (rule R2): protocol crates never
//! see a `Store`. The trait speaks in domain operations (append a message to
//! mailboxes, allocate UIDs, expunge) rather than in generic rows, because each
//! of those must be atomic and each backend knows best how to make it so.

mod blob;
#[macro_use]
mod model;
mod collection;
mod ops;
mod postgres;
mod sql;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

pub use blob::BlobHash;
pub use collection::*;
pub use model::*;
pub use ops::{
    AddressListStore, BlobStore, CollectionStore, DirectoryStore, LoginBanStore, MailboxStore,
    MessageStore, QueueStore, StsPolicyStore, TextIndex,
};

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = 14;

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
    /// A write's precondition (`If-Match`, `If-None-Match`) does not hold
    /// for the named resource.
    #[error("precondition failed for {0}")]
    PreconditionFailed(String),
    /// Another resource of the collection has the UID of the one written.
    #[error("the UID is already used by {name}")]
    UidInUse { name: String },
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
        } => Ok(Arc::new(sql::SqlStore {
            backend: sqlite::Sqlite::open(data_dir, *pool_size, mode).await?,
        })),
        StoreConfig::Postgres { url, pool_size } => Ok(Arc::new(sql::SqlStore {
            backend: postgres::Postgres::open(url, *pool_size).await?,
        })),
    }
}

/// The storage interface used by `core`: one trait per concern, every
/// method atomic (it either commits entirely or leaves no trace).
#[async_trait]
pub trait Store:
    DirectoryStore
    + MailboxStore
    + CollectionStore
    + AddressListStore
    + MessageStore
    + BlobStore
    + TextIndex
    + QueueStore
    + StsPolicyStore
    + LoginBanStore
{
    /// Short name of the backend, for logs.
    fn backend_name(&self) -> &'static str;

    /// Announcements of what other processes sharing this store change
    /// (other nodes on one PostgreSQL database), for as long as the store is
    /// open; `None` where the backend has no other writers to hear from.
    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<Announcement>>;

    /// Reads a store-wide setting.
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets a store-wide setting only if it is not set yet; returns whether it was set now.
    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool>;
}

#[async_trait]
impl<B: sql::Backend> Store for sql::SqlStore<B> {
    fn backend_name(&self) -> &'static str {
        B::NAME
    }

    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<Announcement>> {
        self.backend.announcements()
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(sql::Size::Few, move |c| {
            let key = key.clone();
            Box::pin(async move {
                c.query_opt("SELECT value FROM meta WHERE key = $1", sql::params![key])
                    .await?
                    .map(|mut r| r.text(0))
                    .transpose()
            })
        })
        .await
    }

    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write_one(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    sql::params![key, value],
                )
                .await?
                    == 1)
            })
        })
        .await
    }
}

/// What another process sharing the store changed, as it announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A mailbox's contents or flags changed, or it was deleted.
    Mailbox(MailboxId),
    /// A client was banned for failed logins until `until` (Unix milliseconds).
    Ban { client: String, until: i64 },
}

/// Milliseconds since the Unix epoch, the store's clock.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
