//! What a DAV request can fail with, and the HTTP status of each.

use rampart_core::CoreError;

use crate::xml::{CALDAV, CARDDAV, DAV};

/// A refused or failed request.
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    /// A plain status with a reason for the body.
    #[error("{1}")]
    Status(u16, String),
    /// A status with a precondition element (RFC 4918 §16, RFC 4791 §1.3).
    #[error("{reason}")]
    Precondition {
        /// The HTTP status.
        status: u16,
        /// The condition's namespace.
        ns: &'static str,
        /// The condition's element name.
        condition: &'static str,
        /// Why, for people.
        reason: String,
    },
    /// A core call refused or failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl DavError {
    /// A 400 Bad Request.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        DavError::Status(400, reason.into())
    }

    /// The status, the precondition element if any, and the reason.
    pub fn parts(&self) -> (u16, Option<(&'static str, &'static str)>, String) {
        match self {
            DavError::Status(s, r) => (*s, None, r.clone()),
            DavError::Precondition {
                status,
                ns,
                condition,
                reason,
            } => (*status, Some((*ns, *condition)), reason.clone()),
            DavError::Core(e) => {
                let reason = e.to_string();
                match e {
                    CoreError::AuthFailed => (401, None, reason),
                    CoreError::TlsRequired => (403, None, reason),
                    CoreError::Banned => (429, None, reason),
                    CoreError::Denied(_) => (403, Some((DAV, "need-privileges")), reason),
                    CoreError::Invalid(_) => (400, None, reason),
                    CoreError::NotFound { .. } => (404, None, reason),
                    // RFC 4918 §9.3.1: MKCOL on an existing resource.
                    CoreError::AlreadyExists(_) => (405, None, reason),
                    CoreError::HasChildren(_) => (409, None, reason),
                    CoreError::Limit { .. } => (413, None, reason),
                    CoreError::OverQuota(_) => (507, Some((DAV, "quota-not-exceeded")), reason),
                    CoreError::PreconditionFailed(_) => (412, None, reason),
                    // The store does not know whether the collection holds
                    // calendars or cards; the caller names the right one.
                    CoreError::UidInUse(_) => (403, Some((CALDAV, "no-uid-conflict")), reason),
                    CoreError::Ledger(_) => (503, None, reason),
                    _ => (500, None, "internal error".into()),
                }
            }
        }
    }
}

/// The UID conflict precondition in the namespace of the collection kind.
pub fn uid_conflict(card: bool, name: &str) -> DavError {
    DavError::Precondition {
        status: 403,
        ns: if card { CARDDAV } else { CALDAV },
        condition: "no-uid-conflict",
        reason: format!("the UID is already used by {name}"),
    }
}
