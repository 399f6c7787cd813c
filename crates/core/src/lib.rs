#![forbid(unsafe_code)]
//! Rampart's core: the one gate to the data (rule R2).
//!
//! Every call takes an [`Access`] saying who asks, from where and how; the
//! core checks that party's rights, performs the operation through the
//! [`rampart_store::Store`], and records an [`AccessEntry`] for every access
//! to user data before any of that data is returned.

mod access;
mod address;
mod address_list;
mod admin;
mod app_passwords;
mod auth;
mod authors;
mod dav;
mod directory;
mod error;
mod folders;
mod guard;
pub mod header;
pub mod io;
mod ledger;
mod mail;
pub mod mbox;
mod object_ids;
mod queue;
mod sts;
mod text;

use std::sync::Arc;

use async_trait::async_trait;
use rampart_store::{MailboxId, PrincipalId, Store};

pub use access::*;
pub use address::{Address, normalize_domain};
pub use address_list::{AddressList, ListedPrincipal};
pub use admin::{Bootstrap, NewUser, Recipient, RecipientSet};
pub use app_passwords::MAX_APP_PASSWORD_NAME;
pub use auth::{
    MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, PasswordParams, check_new_password, random_password,
};
pub use dav::{
    DEFAULT_ADDRESS_BOOK, DEFAULT_CALENDAR, DEFAULT_TASKS, MAX_DAV_NAME_BYTES, ResourceWrite,
    check_dav_name, resource_etag,
};
pub use directory::DirectoryEntry;
pub use error::{CoreError, CoreResult};
pub use folders::{
    Derived, MAX_MAILBOX_DEPTH, MAX_MAILBOX_NAME_BYTES, MessageRead, check_mailbox_name,
};
pub use guard::{Guard, GuardConfig, client_key};
pub use ledger::{LedgerRecorder, to_record};
pub use mail::{AddressSummary, MessageSummary, parse_summary, summarize};
pub use object_ids::ObjectKind;
pub use queue::DkimPublicKey;
/// The stored data's types, as protocols see them. The store itself (its
/// trait, backends and `open`) is not reachable through core: protocol code
/// gets at data only through [`Core`]'s calls (rule R2).
///
/// The data types are here:
/// ```
/// use rampart_core::model::{MailboxId, SystemFlags};
/// let _ = (MailboxId(1), SystemFlags::default());
/// ```
/// The store is not (these must not compile):
/// ```compile_fail
/// use rampart_core::model::Store;
/// ```
/// ```compile_fail
/// let _ = rampart_core::store::open;
/// ```
/// ```compile_fail
/// use rampart_core::rampart_ledger::Ledger;
/// ```
/// ```compile_fail
/// fn reach(core: &rampart_core::Core) {
///     let _ = core.store();
/// }
/// ```
pub mod model {
    pub use rampart_store::{
        Alias, AppPassword, Appended, BlobHash, Change, ChangeKind, Collection, CollectionChanges,
        CollectionId, CollectionKind, CollectionPatch, DavObject, DavObjectId, DeadProp,
        DeliveryStatus, DkimKey, Domain, DomainId, DsnRequest, FlagChange, Mailbox, MailboxId,
        MailboxRole, MailboxStatus, MessageId, MessageRecord, NewCollection, NewOrgContact,
        ObjectFilter, OrgContact, PrincipalId, PrincipalKind, Profile, PutOutcome, QueueEntry,
        QueueId, QueueOutcome, QueuedAddress, QueuedRecipient, ShareRights, SharedCollection,
        StsPolicyRecord, SystemFlags, TextField, TextMatches, WriteCondition, notify, now_millis,
    };
}
pub use text::{MIN_INDEXED_NEEDLE_CHARS, SearchableText, indexable_needle};

/// The store's key for wire ids, made on first use (every node reads the
/// same one).
async fn object_id_key(store: &dyn Store) -> CoreResult<[u8; 32]> {
    const KEY: &str = "object_id_key";
    if store.get_meta(KEY).await?.is_none() {
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
        let fresh = blake3::Hash::from_bytes(fresh).to_hex();
        store.set_meta_if_absent(KEY, fresh.as_str()).await?;
    }
    let stored = store.get_meta(KEY).await?.unwrap_or_default();
    let key = blake3::Hash::from_hex(stored.trim()).map_err(|_| {
        CoreError::Store(rampart_store::StoreError::Corrupt(format!(
            "the store's {KEY} is not 64 hex digits"
        )))
    })?;
    Ok(*key.as_bytes())
}

/// Bans a client named in the store (an address as text) until `until`
/// (Unix milliseconds), if that is still ahead.
fn take_up_ban(guard: &Guard, client: &str, until: i64, now: i64) {
    let Ok(ip) = client.parse::<std::net::IpAddr>() else {
        tracing::warn!("ignoring a stored ban of {client:?}: not an address");
        return;
    };
    if until > now {
        guard.ban_for(ip, std::time::Duration::from_millis((until - now) as u64));
    }
}

/// Settings of the core, taken from the config file.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Name of this node, recorded with every access.
    pub node: String,
    /// Argon2id parameters for new password hashes.
    pub passwords: PasswordParams,
    /// Quota of new accounts in bytes (0 = unlimited).
    pub default_quota_bytes: u64,
    /// Largest message accepted anywhere, in bytes.
    pub max_message_bytes: u64,
    /// How deep groups may nest when expanding a group address.
    pub max_group_depth: usize,
    /// Failed-login throttling and bans.
    pub guard: GuardConfig,
    /// Threads that hash passwords: at most this many hashes run at once.
    pub hash_threads: usize,
    /// Bytes of a message's decoded header and body text each that the
    /// full-text index keeps; searches read longer messages whole.
    pub max_indexed_text_bytes: usize,
    /// Protocols on which a password may be given without TLS from a
    /// loopback address (for local tools and benchmarks); empty by default.
    pub plaintext_login_on_loopback: Vec<Protocol>,
    /// How long after filing a sent message a client's APPEND of the same
    /// Message-ID to Sent is answered with the filed copy (zero: never).
    pub sent_duplicate_window: std::time::Duration,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            node: "localhost".into(),
            passwords: PasswordParams::default(),
            default_quota_bytes: 2 * 1024 * 1024 * 1024,
            max_message_bytes: 50 * 1024 * 1024,
            max_group_depth: 8,
            guard: GuardConfig::default(),
            hash_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_indexed_text_bytes: 1024 * 1024,
            sent_duplicate_window: std::time::Duration::from_secs(24 * 3600),
            plaintext_login_on_loopback: Vec::new(),
        }
    }
}

/// Receives one entry per access. The durable, hash-chained ledger plugs in
/// here; until then [`LogRecorder`] writes entries to the server log.
#[async_trait]
pub trait AccessRecorder: Send + Sync {
    /// Records an entry; the caller releases data only after this returns `Ok`.
    async fn record(&self, entry: AccessEntry) -> CoreResult<()>;
    /// Records an entry of a response that carries no user data (message
    /// counts, UID and flag listings): the recorder may return before the
    /// entry is durable, as long as it keeps the order of entries.
    async fn record_metadata(&self, entry: AccessEntry) -> CoreResult<()> {
        self.record(entry).await
    }
}

/// Computes derived data of a message when it is stored (a protocol's
/// parsed view of it), kept with the message so that reads need not parse
/// it again. Registered by the binary, so core stays protocol-agnostic.
pub trait Deriver: Send + Sync {
    /// The kind the data is kept under.
    fn kind(&self) -> &str;
    /// The data for a raw message.
    fn derive(&self, raw: &[u8]) -> Vec<u8>;
}

/// Writes each access entry as one JSON line to the log target `rampart::access`.
pub struct LogRecorder;

#[async_trait]
impl AccessRecorder for LogRecorder {
    async fn record(&self, entry: AccessEntry) -> CoreResult<()> {
        // Serialising an entry with thousands of object ids is not free;
        // skip it when the log filters the target out.
        if !tracing::enabled!(target: "rampart::access", tracing::Level::INFO) {
            return Ok(());
        }
        let line = serde_json::to_string(&entry).map_err(|e| CoreError::Ledger(e.to_string()))?;
        tracing::info!(target: "rampart::access", "{line}");
        Ok(())
    }
}

/// What one core call did, before the caller's identity is added.
struct Event {
    operation: Operation,
    owner: Option<PrincipalId>,
    container: Option<String>,
    objects: Vec<i64>,
    bytes: u64,
    outcome: Outcome,
    /// The response carries no user data: no need to wait for the entry.
    metadata: bool,
}

impl Event {
    fn new(operation: Operation, owner: Option<PrincipalId>) -> Self {
        Event {
            operation,
            owner,
            container: None,
            objects: Vec::new(),
            bytes: 0,
            outcome: Outcome::Ok,
            metadata: false,
        }
    }

    fn container(mut self, name: impl Into<String>) -> Self {
        self.container = Some(name.into());
        self
    }

    fn objects(mut self, ids: Vec<i64>) -> Self {
        self.objects = ids;
        self
    }

    fn bytes(mut self, n: u64) -> Self {
        self.bytes = n;
        self
    }

    /// Marks an access whose response carries no user data (counts, UIDs,
    /// flags), whose entry need not be durable before the response.
    fn metadata(mut self) -> Self {
        self.metadata = true;
        self
    }
}

/// The core: shared by every protocol session of the process.
pub struct Core {
    store: Arc<dyn Store>,
    config: CoreConfig,
    recorder: Arc<dyn AccessRecorder>,
    /// A hash of a random password, verified when the account does not
    /// exist so that failures take the same time either way.
    dummy_hash: String,
    guard: Arc<Guard>,
    /// The threads that run argon2.
    hashers: auth::HashWorkers,
    /// Wakes the queue worker when a message is queued.
    queue_wakeup: tokio::sync::Notify,
    /// Tells sessions which mailbox changed (IMAP IDLE and untagged updates).
    mailbox_changes: tokio::sync::broadcast::Sender<MailboxId>,
    /// Derived data computed for every stored message.
    derivers: Vec<Arc<dyn Deriver>>,
    /// Tells the full-text indexer that messages were stored.
    text_wakeup: tokio::sync::Notify,
    /// The permutation that turns row ids into wire ids.
    object_ids: object_ids::ObjectIds,
    /// Owners and names of mailboxes seen (see `Core::owned`).
    mailbox_owners: std::sync::Mutex<std::collections::HashMap<MailboxId, folders::OwnedMailbox>>,
}

impl Core {
    /// Builds the core over an open store, with the one capability to mint
    /// the operator's and the services' [`Access`] (see [`Privileged`]).
    pub async fn new(
        store: Arc<dyn Store>,
        config: CoreConfig,
        recorder: Arc<dyn AccessRecorder>,
    ) -> CoreResult<(Self, Privileged)> {
        let params = config.passwords;
        let hashers = auth::HashWorkers::new(config.hash_threads);
        let dummy_hash = hashers.hash(params, random_password()).await?;
        let object_ids = object_ids::ObjectIds::new(object_id_key(&*store).await?);
        let core = Core {
            object_ids,
            hashers,
            guard: Arc::new(Guard::new(config.guard)),
            queue_wakeup: tokio::sync::Notify::new(),
            mailbox_changes: tokio::sync::broadcast::channel(1024).0,
            derivers: Vec::new(),
            mailbox_owners: std::sync::Mutex::new(std::collections::HashMap::new()),
            text_wakeup: tokio::sync::Notify::new(),
            store,
            config,
            recorder,
            dummy_hash,
        };
        Ok((core, Privileged::new()))
    }

    /// Takes up the bans in force in the store (made before a restart or by
    /// another node), and passes what other nodes sharing the store announce
    /// on to this node's sessions and guard, so that a message delivered
    /// through one node wakes IMAP IDLE on every node and a client banned on
    /// one is refused by all (the server calls this once at start).
    pub async fn hear_other_nodes(&self) -> CoreResult<()> {
        let now = rampart_store::now_millis();
        for (client, until) in self.store.login_bans(now).await? {
            take_up_ban(&self.guard, &client, until, now);
        }
        let Some(mut announcements) = self.store.announcements() else {
            return Ok(());
        };
        let mailbox_changes = self.mailbox_changes.clone();
        let guard = Arc::downgrade(&self.guard);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let announcement = match announcements.recv().await {
                    Ok(a) => a,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("missed {n} announcements of other nodes");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                // The core is gone once its guard is.
                let Some(guard) = guard.upgrade() else { return };
                match announcement {
                    rampart_store::Announcement::Mailbox(id) => {
                        let _ = mailbox_changes.send(id);
                    }
                    rampart_store::Announcement::Ban { client, until } => {
                        take_up_ban(&guard, &client, until, rampart_store::now_millis());
                    }
                }
            }
        });
        Ok(())
    }

    /// The id a protocol shows for a stored object (a message, thread or
    /// mailbox): opaque, the same on every node, revealing no counts.
    pub fn object_id(&self, kind: ObjectKind, id: i64) -> String {
        self.object_ids.encode(kind, id)
    }

    /// The stored object a wire id of `kind` names, if it is one (whether the
    /// caller may see it is for the call that uses it to decide).
    pub fn object_from_id(&self, kind: ObjectKind, wire: &str) -> Option<i64> {
        self.object_ids.decode(kind, wire)
    }

    /// Adds a deriver whose data is kept with every message stored from now on.
    pub fn add_deriver(&mut self, deriver: Arc<dyn Deriver>) {
        self.derivers.push(deriver);
    }

    /// Announces, after each change to a mailbox's contents or flags made
    /// through this process, the mailbox's id. A receiver that lags behind
    /// gets `Lagged` and should treat every mailbox as changed.
    pub fn mailbox_changes(&self) -> tokio::sync::broadcast::Receiver<MailboxId> {
        self.mailbox_changes.subscribe()
    }

    pub(crate) fn announce(&self, mailbox: MailboxId) {
        // No receivers is normal (no IMAP session open).
        let _ = self.mailbox_changes.send(mailbox);
    }

    /// Releases blobs no message has referred to for `grace`; returns how
    /// many went (the binary's periodic sweep).
    pub async fn sweep_blobs(&self, grace: std::time::Duration) -> CoreResult<u64> {
        Ok(self.store.sweep_blobs(grace).await?)
    }

    /// The name of the storage backend, for the start-up banner.
    pub fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    /// Whether connections from this address are refused (too many failed logins).
    pub fn is_banned(&self, ip: std::net::IpAddr) -> bool {
        self.guard.is_banned(ip)
    }

    /// The core's settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Records one access; the caller returns data only after this succeeded.
    async fn record(&self, access: &Access, event: Event) -> CoreResult<()> {
        let metadata = event.metadata;
        let entry = AccessEntry {
            at: rampart_store::now_millis(),
            node: self.config.node.clone(),
            access: access.clone(),
            operation: event.operation,
            owner: event.owner,
            container: event.container,
            objects: event.objects,
            bytes: event.bytes,
            outcome: event.outcome,
        };
        if metadata {
            self.recorder.record_metadata(entry).await
        } else {
            self.recorder.record(entry).await
        }
    }

    /// Verifies an address and password and issues the [`Access`] for the session.
    /// A wrong password, an unknown or disabled account and a group all give the
    /// same [`CoreError::AuthFailed`] after the same amount of work.
    pub async fn authenticate(
        &self,
        ctx: &SessionContext,
        address: &str,
        password: &str,
    ) -> CoreResult<Access> {
        // Rule R7, for every protocol: a password only over TLS, or from
        // loopback where the configuration allows it.
        let loopback = ctx.client.is_some_and(|ip| match ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            v4 => v4.is_loopback(),
        });
        let allowed_plain = loopback
            && self
                .config
                .plaintext_login_on_loopback
                .contains(&ctx.protocol);
        if !ctx.tls() && !allowed_plain {
            let mut event = Event::new(Operation::LoginFailure, None);
            event.container = Some(address.chars().take(320).collect());
            event.outcome = Outcome::Failed("password offered without TLS".into());
            self.record(&Access::service("login", ctx), event).await?;
            return Err(CoreError::TlsRequired);
        }
        if ctx.client.is_some_and(|ip| self.guard.is_banned(ip)) {
            let mut event = Event::new(Operation::LoginFailure, None);
            event.container = Some(address.chars().take(320).collect());
            event.outcome = Outcome::Failed("client address banned".into());
            self.record(&Access::service("login", ctx), event).await?;
            return Err(CoreError::Banned);
        }
        let parsed = Address::parse(address).ok();
        let principal = match &parsed {
            Some(a) => self.store.find_principal(&a.local_part, &a.domain).await?,
            None => None,
        };
        // Failures count against the account however its name was typed
        // (case, spaces, a trailing dot, an alias), so that rotating
        // spellings starts no guesser from zero; unknown names count by
        // their normalised form.
        let guard_key = match (&principal, &parsed) {
            (Some(p), _) => format!("account:{}", p.id),
            (None, Some(a)) => format!("name:{a}"),
            (None, None) => format!("raw:{}", address.trim()),
        };
        let delay = self.guard.delay(ctx.client, &guard_key);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let candidate = principal.filter(|p| {
            p.kind == rampart_store::PrincipalKind::User && !p.disabled && p.password_hash.is_some()
        });
        // An app password is checked first: it is one lookup, and a match
        // needs no argon2. A failure still costs a full argon2 below.
        let app_password = match &candidate {
            Some(p) => {
                self.store
                    .find_app_password(p.id, &app_passwords::app_password_hash(password))
                    .await?
            }
            None => None,
        };
        let (verified, method) = if app_password.is_some() {
            (true, AuthMethod::AppPassword)
        } else {
            let hash = candidate
                .as_ref()
                .and_then(|p| p.password_hash.as_ref().map(|h| h.expose().to_owned()))
                .unwrap_or_else(|| self.dummy_hash.clone());
            let ok = self.hashers.verify(password.to_owned(), hash).await?;
            (ok, AuthMethod::Password)
        };
        match candidate {
            Some(p) if verified => {
                self.guard.succeeded(ctx.client, &guard_key);
                let access = Access::for_account(p.id, p.address(), ctx, method);
                self.record(&access, Event::new(Operation::LoginSuccess, Some(p.id)))
                    .await?;
                Ok(access)
            }
            other => {
                if let Some(ip) = ctx
                    .client
                    .filter(|_| self.guard.failed(ctx.client, &guard_key))
                {
                    tracing::warn!("banned {ip} after repeated failed logins");
                    // Every node refuses it, and a restart does not lift it.
                    let until = rampart_store::now_millis()
                        .saturating_add(self.guard.ban_duration().as_millis() as i64);
                    // This node's ban holds either way: a store that cannot
                    // take it costs the sharing, not the answer.
                    if let Err(e) = self
                        .store
                        .put_login_ban(&client_key(ip).to_string(), until)
                        .await
                    {
                        tracing::warn!("cannot share the ban of {ip} with other nodes: {e}");
                    }
                }
                let attempt = Access::service("login", ctx);
                let mut event = Event::new(Operation::LoginFailure, other.map(|p| p.id));
                event.container = Some(address.chars().take(320).collect());
                event.outcome = Outcome::Denied;
                self.record(&attempt, event).await?;
                Err(CoreError::AuthFailed)
            }
        }
    }
}
