//! The core's error type.

use rampart_store::StoreError;

/// Everything a core call can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Authentication failed. Deliberately says nothing about why (no user enumeration).
    #[error("authentication failed")]
    AuthFailed,
    /// The client address is banned after repeated failed logins.
    #[error("too many failed logins from this address; try again later")]
    Banned,
    /// A password was offered over a connection without TLS (rule R7).
    #[error("passwords are accepted only over TLS")]
    TlsRequired,
    /// The caller lacks the right for this operation.
    #[error("permission denied: {0}")]
    Denied(String),
    /// The request is malformed (bad address, bad name).
    #[error("{0}")]
    Invalid(String),
    /// The named object does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound { kind: &'static str, name: String },
    /// The object exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The mailbox has children and cannot be deleted before them.
    #[error("mailbox {0:?} has child mailboxes; delete those first")]
    HasChildren(String),
    /// A configured limit was exceeded.
    #[error("{what} exceeds the limit of {limit} (config key {key})")]
    Limit {
        what: String,
        limit: u64,
        key: &'static str,
    },
    /// The account is over its quota.
    #[error("over quota: {0}")]
    OverQuota(String),
    /// A write's precondition does not hold (HTTP 412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// Another resource of the collection has this UID (the name of that resource).
    #[error("the UID is already used by {0}")]
    UidInUse(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// Writing the access record failed; the data was not released.
    #[error("access ledger unavailable: {0}")]
    Ledger(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, name } => CoreError::NotFound { kind, name },
            StoreError::AlreadyExists(what) => CoreError::AlreadyExists(what),
            e @ StoreError::QuotaExceeded { .. } => CoreError::OverQuota(e.to_string()),
            e @ StoreError::PreconditionFailed(_) => CoreError::PreconditionFailed(e.to_string()),
            StoreError::UidInUse { name } => CoreError::UidInUse(name),
            other => CoreError::Store(other),
        }
    }
}

/// Result type of core calls.
pub type CoreResult<T> = Result<T, CoreError>;
