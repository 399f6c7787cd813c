//! The directory as callers see it: principals without their credentials.

use rampart_store::{DomainId, Principal, PrincipalId, PrincipalKind};

/// A user or group as the directory shows it; never its password hash,
/// which stays inside core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// Internal id.
    pub id: PrincipalId,
    /// User or group.
    pub kind: PrincipalKind,
    /// Domain of the primary address.
    pub domain_id: DomainId,
    /// Domain name of the primary address.
    pub domain: String,
    /// Local part of the primary address (lower case).
    pub local_part: String,
    /// Name shown to people.
    pub display_name: String,
    /// Storage quota in bytes; 0 means unlimited.
    pub quota_bytes: u64,
    /// Bytes of messages held now.
    pub used_bytes: u64,
    /// A disabled account neither logs in nor receives mail.
    pub disabled: bool,
    /// May administer domains and accounts (never read their data, rule R6).
    pub is_admin: bool,
    /// Whether a password is set (an account that can log in).
    pub has_password: bool,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

impl DirectoryEntry {
    /// The primary address, `local@domain`.
    pub fn address(&self) -> String {
        format!("{}@{}", self.local_part, self.domain)
    }
}

impl From<Principal> for DirectoryEntry {
    fn from(p: Principal) -> Self {
        DirectoryEntry {
            id: p.id,
            kind: p.kind,
            domain_id: p.domain_id,
            domain: p.domain,
            local_part: p.local_part,
            display_name: p.display_name,
            quota_bytes: p.quota_bytes,
            used_bytes: p.used_bytes,
            disabled: p.disabled,
            is_admin: p.is_admin,
            has_password: p.password_hash.is_some(),
            created_at: p.created_at,
        }
    }
}
