//! The records the store keeps.

use std::fmt;

use crate::BlobHash;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// Internal id of a domain.
    DomainId
);
id_type!(
    /// Internal id of a user or group.
    PrincipalId
);
id_type!(
    /// Internal id of a mailbox; also its UIDVALIDITY.
    MailboxId
);
id_type!(
    /// Id of a message on the outbound queue.
    QueueId
);
id_type!(
    /// Internal id of a message within its account (the JMAP/OBJECTID email id).
    MessageId
);

/// A local domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Internal id.
    pub id: DomainId,
    /// Lower-case domain name.
    pub name: String,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

/// Whether a principal is a person's account or a group address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An account that logs in and owns mailboxes.
    User,
    /// An address that fans out to its members.
    Group,
}

impl PrincipalKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "user" => Ok(PrincipalKind::User),
            "group" => Ok(PrincipalKind::Group),
            other => Err(crate::StoreError::Corrupt(format!(
                "unknown principal kind {other:?} in store"
            ))),
        }
    }
}

/// An Argon2id PHC string. Its `Debug` prints nothing of it, so that no log
/// line or panic message carries a hash to crack offline.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string.
    pub fn new(phc: String) -> Self {
        PasswordHash(phc)
    }

    /// The PHC string, for verifying a password and for storing it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// A user or group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
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
    /// Argon2id PHC string; `None` for groups and for accounts that cannot log in.
    pub password_hash: Option<PasswordHash>,
    /// Storage quota in bytes; 0 means unlimited.
    pub quota_bytes: u64,
    /// Bytes of messages held now.
    pub used_bytes: u64,
    /// A disabled account neither logs in nor receives mail.
    pub disabled: bool,
    /// May administer domains and accounts (never read their data, rule R6).
    pub is_admin: bool,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

impl Principal {
    /// The primary address, `local@domain`.
    pub fn address(&self) -> String {
        format!("{}@{}", self.local_part, self.domain)
    }
}

/// What is needed to create a principal.
#[derive(Clone, Debug)]
pub struct NewPrincipal {
    /// User or group.
    pub kind: PrincipalKind,
    /// Domain of the primary address.
    pub domain_id: DomainId,
    /// Local part of the primary address (lower case).
    pub local_part: String,
    /// Name shown to people.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: Option<PasswordHash>,
    /// Storage quota in bytes; 0 means unlimited.
    pub quota_bytes: u64,
    /// Administrator flag.
    pub is_admin: bool,
    /// Mailboxes created in the same transaction.
    pub mailboxes: Vec<NewMailbox>,
}

/// Attributes of a principal to change; `None` leaves one as it is.
#[derive(Clone, Debug, Default)]
pub struct PrincipalUpdate {
    /// New password hash.
    pub password_hash: Option<PasswordHash>,
    /// New disabled state.
    pub disabled: Option<bool>,
    /// New quota in bytes.
    pub quota_bytes: Option<u64>,
    /// New display name.
    pub display_name: Option<String>,
}

/// An extra address that delivers to a principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// Local part (lower case).
    pub local_part: String,
    /// Domain name.
    pub domain: String,
    /// The principal it delivers to.
    pub target: PrincipalId,
}

impl Alias {
    /// The alias address, `local@domain`.
    pub fn address(&self) -> String {
        format!("{}@{}", self.local_part, self.domain)
    }
}

/// The role of a special mailbox (RFC 6154 special-use, JMAP role).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailboxRole {
    /// Where new mail arrives.
    Inbox,
    /// Copies of sent mail.
    Sent,
    /// Unfinished messages.
    Drafts,
    /// Deleted messages.
    Trash,
    /// Spam and quarantined mail.
    Junk,
    /// Archived mail.
    Archive,
}

impl MailboxRole {
    /// Every role, in the order new accounts get them.
    pub const ALL: [MailboxRole; 6] = [
        MailboxRole::Inbox,
        MailboxRole::Sent,
        MailboxRole::Drafts,
        MailboxRole::Trash,
        MailboxRole::Junk,
        MailboxRole::Archive,
    ];

    /// The role's name as stored (and as JMAP spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxRole::Inbox => "inbox",
            MailboxRole::Sent => "sent",
            MailboxRole::Drafts => "drafts",
            MailboxRole::Trash => "trash",
            MailboxRole::Junk => "junk",
            MailboxRole::Archive => "archive",
        }
    }

    /// The default mailbox name for this role.
    pub fn default_name(self) -> &'static str {
        match self {
            MailboxRole::Inbox => "INBOX",
            MailboxRole::Sent => "Sent",
            MailboxRole::Drafts => "Drafts",
            MailboxRole::Trash => "Trash",
            MailboxRole::Junk => "Junk",
            MailboxRole::Archive => "Archive",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What is needed to create a mailbox.
#[derive(Clone, Debug)]
pub struct NewMailbox {
    /// Full hierarchical name, `/` separated, UTF-8.
    pub name: String,
    /// Special-use role, if any.
    pub role: Option<MailboxRole>,
}

/// A mailbox and its IMAP counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// Internal id.
    pub id: MailboxId,
    /// Owning account.
    pub account: PrincipalId,
    /// Full hierarchical name.
    pub name: String,
    /// Special-use role.
    pub role: Option<MailboxRole>,
    /// IMAP UIDVALIDITY; never reused within a store.
    pub uid_validity: u32,
    /// The UID the next message will get.
    pub uid_next: u32,
    /// The highest MODSEQ given in this mailbox (CONDSTORE).
    pub highest_modseq: u64,
    /// The first UID that no session has yet seen as `\Recent` (RFC 3501 §2.3.2).
    pub recent_uid: u32,
}

/// Counts of a mailbox's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    /// Number of messages.
    pub messages: u64,
    /// Messages without `\Seen`.
    pub unseen: u64,
    /// Messages with `\Deleted`.
    pub deleted: u64,
    /// Total size in bytes.
    pub size: u64,
    /// Messages no session has yet seen as `\Recent`.
    pub recent: u64,
}

/// IMAP system flags, as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SystemFlags(pub u32);

impl SystemFlags {
    /// `\Seen`
    pub const SEEN: u32 = 1;
    /// `\Answered`
    pub const ANSWERED: u32 = 2;
    /// `\Flagged`
    pub const FLAGGED: u32 = 4;
    /// `\Deleted`
    pub const DELETED: u32 = 8;
    /// `\Draft`
    pub const DRAFT: u32 = 16;

    /// Whether every bit of `flag` is set.
    pub fn contains(self, flag: u32) -> bool {
        self.0 & flag == flag
    }
}

/// What is needed to append a message.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The stored raw message (from [`crate::Store::put_blob`]).
    pub blob: BlobHash,
    /// Size of the raw message in bytes.
    pub size: u64,
    /// IMAP INTERNALDATE, milliseconds since the epoch.
    pub received_at: i64,
    /// The Message-ID header without angle brackets, for threading.
    pub message_id_header: Option<String>,
    /// Message-IDs from In-Reply-To and References, for threading.
    pub references: Vec<String>,
    /// Parsed envelope summary (JSON written by core; opaque to the store).
    pub summary: String,
    /// Initial system flags.
    pub flags: SystemFlags,
    /// Initial keywords.
    pub keywords: Vec<String>,
    /// Derived data kept with the message from the start (kind, data), as
    /// [`crate::Store::get_cached`] returns it.
    pub derived: Vec<(String, Vec<u8>)>,
    /// Its decoded text for the full-text index (None: index it later).
    pub text: Option<MessageText>,
}

/// Decoded text of a message as the full-text index keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageText {
    /// Header fields, lower-case, each as `name\nvalue\n`.
    pub headers: String,
    /// Text of the body parts, lower-case.
    pub body: String,
    /// False when the text was cut at the configured limit: searches read
    /// such messages whole.
    pub complete: bool,
}

/// Which part of the indexed text a search looks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextField {
    /// The header fields.
    Headers,
    /// The body text.
    Body,
    /// Either.
    All,
}

/// What the full-text index says about one mailbox for one needle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextMatches {
    /// Indexed messages whose text contains the needle: (UID, message id), in UID order.
    pub matched: Vec<(u32, MessageId)>,
    /// UIDs of messages the index does not cover (not indexed yet, or
    /// indexed only in part), in UID order: the caller must read them.
    pub unindexed: Vec<u32>,
}

/// Where an appended message landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The message's id in the mailbox's account.
    pub message: MessageId,
    /// Its UID in the mailbox.
    pub uid: u32,
    /// Its MODSEQ.
    pub modseq: u64,
    /// Its thread id.
    pub thread: MessageId,
}

/// A message as seen in one mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// UID in the mailbox.
    pub uid: u32,
    /// The account-wide message id.
    pub message: MessageId,
    /// The raw message's blob.
    pub blob: BlobHash,
    /// Size in bytes.
    pub size: u64,
    /// INTERNALDATE, milliseconds since the epoch.
    pub received_at: i64,
    /// System flags.
    pub flags: SystemFlags,
    /// Keywords.
    pub keywords: Vec<String>,
    /// MODSEQ of the last change.
    pub modseq: u64,
    /// Thread id.
    pub thread: MessageId,
    /// Envelope summary (JSON written by core).
    pub summary: String,
}

/// How to change flags.
#[derive(Clone, Debug)]
pub enum FlagChange {
    /// Replace flags and keywords.
    Set(SystemFlags, Vec<String>),
    /// Add flags and keywords.
    Add(SystemFlags, Vec<String>),
    /// Remove flags and keywords.
    Remove(SystemFlags, Vec<String>),
}

impl FlagChange {
    /// Applies the change to current flags; returns the result.
    pub fn apply(&self, flags: SystemFlags, keywords: &[String]) -> (SystemFlags, Vec<String>) {
        match self {
            FlagChange::Set(f, k) => {
                let mut k = k.clone();
                k.sort();
                k.dedup();
                (*f, k)
            }
            FlagChange::Add(f, k) => {
                let mut all: Vec<String> = keywords.iter().chain(k.iter()).cloned().collect();
                all.sort();
                all.dedup();
                (SystemFlags(flags.0 | f.0), all)
            }
            FlagChange::Remove(f, k) => {
                let rest = keywords
                    .iter()
                    .filter(|w| !k.contains(w))
                    .cloned()
                    .collect();
                (SystemFlags(flags.0 & !f.0), rest)
            }
        }
    }
}

/// What happened to a message in a change-log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// It was added to the mailbox.
    Created,
    /// Its flags or keywords changed.
    Flags,
    /// It was removed from the mailbox.
    Expunged,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Flags => "flags",
            ChangeKind::Expunged => "expunged",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "created" => Ok(ChangeKind::Created),
            "flags" => Ok(ChangeKind::Flags),
            "expunged" => Ok(ChangeKind::Expunged),
            other => Err(crate::StoreError::Corrupt(format!(
                "unknown change kind {other:?} in store"
            ))),
        }
    }
}

/// One entry of the change log (feeds CONDSTORE/QRESYNC, DAV sync, JMAP changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// MODSEQ of the change.
    pub modseq: u64,
    /// The message.
    pub message: MessageId,
    /// Its UID in the mailbox.
    pub uid: u32,
    /// What happened.
    pub kind: ChangeKind,
}

pub(crate) fn encode_keywords(keywords: &[String]) -> String {
    keywords.join(" ")
}

pub(crate) fn decode_keywords(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A message to put on the outbound queue.
#[derive(Clone, Debug)]
pub struct NewQueued {
    /// The stored message (from [`crate::Store::put_blob`]).
    pub blob: BlobHash,
    /// Its size in bytes.
    pub size: u64,
    /// Envelope sender; empty for bounces.
    pub sender: String,
    /// Envelope recipients.
    pub recipients: Vec<QueuedAddress>,
    /// The account that submitted it, if any.
    pub owner: Option<PrincipalId>,
    /// What the sender asked of delivery status notifications.
    pub dsn: DsnRequest,
}

/// DSN `NOTIFY` flags of a recipient (RFC 3461); none set means the default
/// (failure and delay).
pub mod notify {
    /// Report successful delivery.
    pub const SUCCESS: u8 = 1;
    /// Report failure.
    pub const FAILURE: u8 = 2;
    /// Report delay.
    pub const DELAY: u8 = 4;
    /// Never report.
    pub const NEVER: u8 = 8;
}

/// A recipient to queue, with its DSN parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedAddress {
    /// The address.
    pub address: String,
    /// `NOTIFY` flags (see [`notify`]); 0 when not given.
    pub notify: u8,
    /// `ORCPT`, the original recipient, as given.
    pub orcpt: Option<String>,
}

impl QueuedAddress {
    /// A recipient with no DSN parameters.
    pub fn plain(address: impl Into<String>) -> Self {
        QueuedAddress {
            address: address.into(),
            ..Default::default()
        }
    }
}

/// Message-wide DSN parameters (RFC 3461).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DsnRequest {
    /// `RET=FULL` (true) or `RET=HDRS` (false); `None` when not given.
    pub ret_full: Option<bool>,
    /// `ENVID`, the sender's envelope id.
    pub envid: Option<String>,
}

/// Where a recipient of a queued message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt is under way (or was, when the server stopped).
    Attempting,
    /// The next hop accepted it.
    Delivered,
    /// Given up: refused permanently or expired.
    Failed,
}

impl DeliveryStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Attempting => "attempting",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "attempting" => Ok(DeliveryStatus::Attempting),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(crate::StoreError::Corrupt(format!(
                "unknown delivery status {other:?} in store"
            ))),
        }
    }
}

/// One recipient of a queued message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRecipient {
    /// Row id (for [`crate::Store::queue_record`]).
    pub id: i64,
    /// The address.
    pub address: String,
    /// Its domain (lower case), which decides the route.
    pub domain: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due, milliseconds since the epoch.
    pub next_attempt_at: i64,
    /// The last error, as the remote server or the resolver said it.
    pub last_error: Option<String>,
    /// Whether the sender was told of the delay already.
    pub delay_notified: bool,
    /// `NOTIFY` flags (see [`notify`]); 0 when not given.
    pub notify: u8,
    /// `ORCPT`, as given.
    pub orcpt: Option<String>,
}

/// A queued message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    /// Its id.
    pub id: QueueId,
    /// The stored message.
    pub blob: BlobHash,
    /// Size in bytes.
    pub size: u64,
    /// Envelope sender.
    pub sender: String,
    /// Submitting account.
    pub owner: Option<PrincipalId>,
    /// When it was queued, milliseconds since the epoch.
    pub created_at: i64,
    /// DSN parameters.
    pub dsn: DsnRequest,
    /// Its recipients.
    pub recipients: Vec<QueuedRecipient>,
}

/// The outcome of one delivery attempt for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueOutcome {
    /// Accepted by the next hop.
    Delivered,
    /// Try again at the given time.
    Retry {
        /// Next attempt, milliseconds since the epoch.
        at: i64,
        /// Why this one failed.
        error: String,
    },
    /// Give up.
    Failed {
        /// Why.
        error: String,
    },
    /// The sender has been told of the delay (the recipient stays pending).
    DelayNotified,
}

/// A DKIM signing key of a domain.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    /// The selector (`<selector>._domainkey.<domain>`).
    pub selector: String,
    /// `ed25519-sha256` or `rsa-sha256`.
    pub algorithm: String,
    /// The private key: PKCS#8 DER (Ed25519) or PKCS#1 DER (RSA).
    pub private_key: Vec<u8>,
    /// The public key as published in DNS (base64 of this goes into `p=`).
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A per-device password of a user (only its hash is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPassword {
    /// Its id.
    pub id: i64,
    /// The user it belongs to.
    pub principal: PrincipalId,
    /// The name the user gave it (the device).
    pub name: String,
    /// When it was made, milliseconds since the epoch.
    pub created_at: i64,
}

/// A message row by id, wherever it is filed (for audits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id.
    pub id: MessageId,
    /// The account holding it.
    pub account: PrincipalId,
    /// INTERNALDATE, milliseconds since the epoch.
    pub received_at: i64,
    /// Size in bytes.
    pub size: u64,
    /// The summary JSON written by core.
    pub summary: String,
}

/// A recipient domain's MTA-STS policy as last fetched, with the TXT id it
/// was fetched for: the cache RFC 8461 §5 relies on, kept across restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsPolicyRecord {
    /// The policy domain (the recipient domain, lower case).
    pub domain: String,
    /// The `id` of the `_mta-sts` TXT record it was fetched under (RFC 8461 §3.1).
    pub policy_id: String,
    /// `enforce`, `testing` or `none`.
    pub mode: String,
    /// The MX host patterns, in the policy's order.
    pub mx: Vec<String>,
    /// The policy's `max_age` in seconds (already capped by the caller).
    pub max_age: u64,
    /// When it was fetched, milliseconds since the epoch.
    pub fetched_at: i64,
    /// When it stops applying, milliseconds since the epoch.
    pub expires_at: i64,
}
