//! The IMAP session state machine: whole commands in, response bytes and
//! core calls out. The driver in `lib.rs` does the I/O.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rampart_core::model::{
    Change, ChangeKind, FlagChange, Mailbox, MailboxId, MailboxRole, MessageRecord, SystemFlags,
};
use rampart_core::{Access, Core, CoreError, MessageRead, MessageSummary, SessionContext};
use unicode_normalization::UnicodeNormalization;

use crate::command::{
    Command, CommandLimits, FetchAtt, ListOptions, Qresync, SearchKey, SearchReturn, Section,
    SectionName, SectionText, SequenceSet, SortKey, StatusItem, StoreMode, ThreadAlgorithm,
    compact_set, parse_command,
};
use crate::mime::Mime;
use crate::output::Output;
use crate::parser::{Frame, FrameLimits, tokenize};
use crate::search::{self, Candidate, Scope};
use crate::{render, utf7};

mod fetch;
mod folders;
mod query;
mod selected;
mod store_copy;

pub use fetch::StructureDeriver;
use fetch::*;
use selected::*;
use store_copy::*;

/// Settings of the IMAP service.
#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// Name in the greeting.
    pub hostname: String,
    /// Allow LOGIN and AUTHENTICATE without TLS from loopback addresses.
    pub auth_without_tls_on_loopback: bool,
    /// Command and literal sizes.
    pub frame: FrameLimits,
    /// Sequence sets and search criteria.
    pub command: CommandLimits,
    /// How long an authenticated client may stay silent (also in IDLE).
    pub idle_timeout: Duration,
    /// How long a client may take to log in.
    pub login_timeout: Duration,
    /// How often IDLE looks for changes it was not told of (made by the
    /// CLI on SQLite, or by a node whose announcement was lost).
    pub idle_poll: Duration,
    /// How long a write may wait for a client that reads nothing before the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Most simultaneous sessions of one account.
    pub max_connections_per_user: usize,
    /// Most simultaneous connections from one address.
    pub max_connections_per_address: usize,
    /// Messages read from the store per step of a FETCH or SEARCH.
    pub fetch_batch: usize,
    /// Consecutive bad commands before the connection is closed.
    pub max_bad_commands: usize,
}

impl ImapConfig {
    /// Defaults for a host name.
    pub fn new(hostname: &str) -> Self {
        ImapConfig {
            hostname: hostname.into(),
            auth_without_tls_on_loopback: true,
            frame: FrameLimits {
                max_command_bytes: 64 * 1024,
                max_append_bytes: 50 * 1024 * 1024,
                max_list_depth: 16,
            },
            command: CommandLimits {
                max_sequence_ranges: 10_000,
                max_search_depth: 16,
                max_search_keys: 256,
            },
            idle_timeout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(60),
            idle_poll: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections_per_user: 20,
            max_connections_per_address: 50,
            fetch_batch: 128,
            max_bad_commands: 20,
        }
    }
}

/// Counts open connections per key (account or address).
#[derive(Debug, Default)]
pub struct Limiter {
    counts: Mutex<HashMap<String, usize>>,
}

/// One counted connection; released when dropped.
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<Limiter>,
    key: String,
}

impl Limiter {
    /// Takes a slot for `key` unless `max` are taken.
    pub fn acquire(self: &Arc<Self>, key: String, max: usize) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            limiter: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// What the driver does after writing a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Command,
    /// Close the connection.
    Close,
    /// Start TLS, then read commands.
    StartTls,
    /// Read one line of an AUTHENTICATE exchange.
    AuthResponse,
    /// Wait in IDLE for DONE, pushing updates.
    Idle,
    /// Call [`Session::more`] for the next part of a long response.
    More,
}

/// Bytes to send and what comes next.
#[derive(Debug)]
pub struct Reply {
    /// Response bytes.
    pub out: Output,
    /// What comes next.
    pub next: Next,
}

impl Reply {
    fn new(out: impl Into<Output>, next: Next) -> Self {
        Reply {
            out: out.into(),
            next,
        }
    }
}

/// A message as the selected session sees it.
#[derive(Clone, Debug)]
struct Msg {
    uid: u32,
    flags: SystemFlags,
    keywords: Vec<String>,
    modseq: u64,
    message: i64,
    thread: i64,
    size: u64,
    received_at: i64,
    /// Expunged elsewhere; reported at the next point where EXPUNGE may be sent.
    expunged: bool,
    /// `\Recent` to this session (RFC 3501 §2.3.2; never under IMAP4rev2).
    recent: bool,
}

impl Msg {
    fn from_record(r: &MessageRecord) -> Self {
        Msg {
            uid: r.uid,
            flags: r.flags,
            keywords: r.keywords.clone(),
            modseq: r.modseq,
            message: r.message.0,
            thread: r.thread.0,
            size: r.size,
            received_at: r.received_at,
            expunged: false,
            recent: false,
        }
    }

    /// The flag list as this session shows it.
    fn flag_list(&self) -> String {
        render::message_flags(self.flags, &self.keywords, self.recent)
    }
}

struct Selected {
    id: MailboxId,
    read_only: bool,
    msgs: Vec<Msg>,
    /// The mailbox's HIGHESTMODSEQ as far as this session has caught up.
    modseq: u64,
    /// How many messages are marked expunged but not yet reported.
    expunged_pending: usize,
    /// The keywords announced in the last FLAGS response (RFC 9051 §7.3.5).
    keywords: Vec<String>,
    /// UID ranges `[first, end)` this session claimed as `\Recent`.
    recent: Vec<(u32, u32)>,
    /// The UIDs the last `SEARCH RETURN (SAVE)` kept, sorted: what `$`
    /// names (RFC 9051 §6.4.4.1).
    saved: Vec<u32>,
}

/// Adds to `known` the keywords it lacks (compared without case, as flags
/// are); says whether there were any.
fn add_keywords<'a>(known: &mut Vec<String>, new: impl IntoIterator<Item = &'a String>) -> bool {
    let mut added = false;
    for k in new {
        if !known.iter().any(|have| have.eq_ignore_ascii_case(k)) {
            known.push(k.clone());
            added = true;
        }
    }
    added
}

impl Selected {
    /// Marks the messages in claimed `\Recent` ranges.
    fn mark_recent(&mut self) {
        for m in &mut self.msgs {
            m.recent = self.recent.iter().any(|&(a, b)| (a..b).contains(&m.uid));
        }
    }

    /// How many messages of the view are `\Recent`.
    fn recent_count(&self) -> usize {
        self.msgs.iter().filter(|m| m.recent && !m.expunged).count()
    }

    /// The untagged FLAGS and PERMANENTFLAGS responses: the system flags
    /// and every keyword in use, and `\*` where new ones may be made
    /// (RFC 9051 §7.3.5, §7.1).
    fn write_flags(&self, out: &mut Vec<u8>) {
        let keywords: String = self.keywords.iter().map(|k| format!(" {k}")).collect();
        out.extend_from_slice(
            format!("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords})\r\n")
                .as_bytes(),
        );
        if self.read_only {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        } else {
            out.extend_from_slice(
                format!(
                    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords} \\*)] Flags permitted\r\n"
                )
                .as_bytes(),
            );
        }
    }

    /// Adds keywords not yet announced and, if there were any, writes the
    /// FLAGS responses again, before the FETCH responses that use them.
    fn announce_keywords<'a>(
        &mut self,
        out: &mut Vec<u8>,
        keywords: impl IntoIterator<Item = &'a String>,
    ) {
        if add_keywords(&mut self.keywords, keywords) {
            self.write_flags(out);
        }
    }

    fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.uid)
    }

    /// Indices named by a set, ascending. Sequence numbers past the end are an error.
    fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
        let mut out = Vec::new();
        if set.is_saved() {
            // `$`: the saved UIDs still in the view (expunged ones drop out).
            return Ok(self
                .saved
                .iter()
                .filter_map(|&u| self.index_of_uid(u))
                .collect());
        }
        if uid {
            for (lo, hi) in set.ranges(self.max_uid()) {
                let start = self.msgs.partition_point(|m| m.uid < lo);
                let end = self.msgs.partition_point(|m| m.uid <= hi);
                out.extend(start..end);
            }
        } else {
            let n = self.msgs.len() as u32;
            for (lo, hi) in set.ranges(n) {
                if hi > n || lo == 0 {
                    return Err("Invalid message sequence number".into());
                }
                out.extend((lo - 1) as usize..hi as usize);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// One IMAP session.
pub struct Session {
    core: Arc<Core>,
    config: Arc<ImapConfig>,
    limiter: Arc<Limiter>,
    ctx: SessionContext,
    tls: bool,
    starttls_available: bool,
    loopback: bool,
    access: Option<Access>,
    user_slot: Option<Slot>,
    selected: Option<Selected>,
    utf8: bool,
    condstore: bool,
    qresync: bool,
    auth_tag: Option<String>,
    idle_tag: Option<String>,
    fetch: Option<FetchJob>,
    bad_commands: usize,
    /// Announcements of changed mailboxes (see [`Core::mailbox_changes`]).
    changes: tokio::sync::broadcast::Receiver<MailboxId>,
    /// When the selected view was last compared with the store.
    last_sync: std::time::Instant,
    /// Compare at the next chance whatever the announcements say.
    force_sync: bool,
}

/// How old the view may get before a command compares it with the store
/// even without an announcement (changes made by another process).
const STALE_VIEW: Duration = Duration::from_secs(30);

fn ok(tag: &str, text: &str) -> Vec<u8> {
    format!("{tag} OK {text}\r\n").into_bytes()
}

fn no(tag: &str, text: &str) -> Vec<u8> {
    format!("{tag} NO {text}\r\n").into_bytes()
}

fn bad(tag: &str, text: &str) -> Vec<u8> {
    format!("{tag} BAD {text}\r\n").into_bytes()
}

/// The tagged NO for a core error.
fn core_no(tag: &str, e: &CoreError) -> Vec<u8> {
    let code = match e {
        CoreError::NotFound { .. } => "[NONEXISTENT] ",
        CoreError::AlreadyExists(_) => "[ALREADYEXISTS] ",
        CoreError::Denied(_) => "[NOPERM] ",
        CoreError::OverQuota(_) => "[OVERQUOTA] ",
        CoreError::Limit { .. } => "[LIMIT] ",
        CoreError::HasChildren(_) => "[HASCHILDREN] ",
        CoreError::Invalid(_) | CoreError::PreconditionFailed(_) | CoreError::UidInUse(_) => {
            "[CANNOT] "
        }
        CoreError::AuthFailed | CoreError::Banned => "[AUTHENTICATIONFAILED] ",
        CoreError::TlsRequired => "[PRIVACYREQUIRED] ",
        CoreError::Store(_) | CoreError::Ledger(_) => {
            tracing::error!(error = %e, "IMAP command failed");
            return no(
                tag,
                "[SERVERBUG] Internal error; the server log has details",
            );
        }
    };
    no(tag, &format!("{code}{}", one_line(&e.to_string())))
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

// RFC 8474 §5: ids that reveal nothing (core's opaque wire ids).
fn email_id(core: &Core, message: i64) -> String {
    core.object_id(rampart_core::ObjectKind::Email, message)
}

fn thread_id(core: &Core, thread: i64) -> String {
    core.object_id(rampart_core::ObjectKind::Thread, thread)
}

fn mailbox_id(core: &Core, id: MailboxId) -> String {
    core.object_id(rampart_core::ObjectKind::Mailbox, id.0)
}

impl Session {
    /// A session for a client connected from `client`.
    pub fn new(
        core: Arc<Core>,
        config: Arc<ImapConfig>,
        limiter: Arc<Limiter>,
        client: Option<IpAddr>,
        tls: bool,
        starttls_available: bool,
    ) -> Self {
        let changes = core.mailbox_changes();
        Session {
            core,
            config,
            limiter,
            ctx: SessionContext::new(rampart_core::Network::Imap, client),
            tls,
            starttls_available,
            loopback: client.is_some_and(|ip| ip.is_loopback()),
            access: None,
            user_slot: None,
            selected: None,
            utf8: false,
            condstore: false,
            qresync: false,
            auth_tag: None,
            idle_tag: None,
            fetch: None,
            bad_commands: 0,
            changes,
            last_sync: std::time::Instant::now(),
            force_sync: false,
        }
    }

    /// The core the session calls.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The session's settings.
    pub fn config(&self) -> &ImapConfig {
        &self.config
    }

    /// The id the ledger records for this session.
    pub fn session_id(&self) -> rampart_core::SessionId {
        self.ctx.session
    }

    /// How long the client may stay silent now.
    pub fn timeout(&self) -> Duration {
        if self.access.is_some() {
            self.config.idle_timeout
        } else {
            self.config.login_timeout
        }
    }

    /// The mailbox selected, if any (to filter change announcements).
    pub fn selected_mailbox(&self) -> Option<MailboxId> {
        self.selected.as_ref().map(|s| s.id)
    }

    /// Whether login is allowed on this connection now.
    fn auth_allowed(&self) -> bool {
        self.tls || (self.loopback && self.config.auth_without_tls_on_loopback)
    }

    fn capabilities(&self) -> String {
        let mut caps = vec!["IMAP4rev1", "IMAP4rev2"];
        if self.access.is_none() {
            if self.starttls_available && !self.tls {
                caps.push("STARTTLS");
            }
            if self.auth_allowed() {
                caps.push("AUTH=PLAIN");
            } else {
                caps.push("LOGINDISABLED");
            }
        }
        caps.extend([
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "BINARY",
            "STATUS=SIZE",
            "OBJECTID",
        ]);
        let mut s = caps.join(" ");
        s.push_str(&format!(
            " APPENDLIMIT={}",
            self.config.frame.max_append_bytes
        ));
        s
    }

    /// The greeting.
    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] {} Rampart IMAP ready\r\n",
            self.capabilities(),
            self.config.hostname
        )
        .into_bytes()
    }

    /// The goodbye when the client was silent too long.
    pub fn timed_out(&self) -> Vec<u8> {
        b"* BYE Autologout; idle for too long\r\n".to_vec()
    }

    /// The goodbye when the server stops.
    pub fn shutting_down(&self) -> Vec<u8> {
        b"* BYE [UNAVAILABLE] Server shutting down\r\n".to_vec()
    }

    /// Called once TLS is up after STARTTLS.
    pub fn tls_started(&mut self, proof: rampart_core::io::TlsEstablished) {
        self.tls = true;
        self.ctx.tls_started(proof);
    }

    /// Handles one frame from the framer.
    pub async fn frame(&mut self, frame: Frame) -> Reply {
        match frame {
            Frame::Continue => Reply::new(b"+ Ready for literal data\r\n".to_vec(), Next::Command),
            Frame::Refused { tag, text, fatal } => {
                let tag = tag.unwrap_or_else(|| "*".into());
                if fatal {
                    let mut out = bad(&tag, &text);
                    out.extend_from_slice(b"* BYE Cannot resynchronise; closing\r\n");
                    Reply::new(out, Next::Close)
                } else {
                    self.bad_reply(bad(&tag, &text))
                }
            }
            Frame::Command(raw) => self.command(&raw).await,
        }
    }

    fn bad_reply(&mut self, mut out: Vec<u8>) -> Reply {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.max_bad_commands {
            out.extend_from_slice(b"* BYE Too many bad commands\r\n");
            return Reply::new(out, Next::Close);
        }
        Reply::new(out, Next::Command)
    }

    /// Handles one whole command.
    pub async fn command(&mut self, raw: &[u8]) -> Reply {
        let (tag, tokens) = match tokenize(raw, self.config.frame.max_list_depth) {
            Ok(t) => t,
            Err(e) => {
                let tag = e.tag.unwrap_or_else(|| "*".into());
                return self.bad_reply(bad(&tag, &e.reason));
            }
        };
        let command = match parse_command(&tokens, self.config.command) {
            Ok(c) => c,
            // An unknown charset is a NO (RFC 9051 §6.4.4), not a syntax error.
            Err(reason) if reason.starts_with("[BADCHARSET") => {
                return Reply::new(no(&tag, &reason), Next::Command);
            }
            Err(reason) => return self.bad_reply(bad(&tag, &reason)),
        };
        self.bad_commands = 0;
        let allow_expunge = !matches!(
            command,
            Command::Fetch { uid: false, .. }
                | Command::Store { uid: false, .. }
                | Command::Search { uid: false, .. }
                | Command::Sort { uid: false, .. }
                | Command::Thread { uid: false, .. }
                | Command::Copy { uid: false, .. }
        );
        // Catch up first, so that the command works on current flags and
        // messages; then again after it, for what it changed itself.
        let mut before = Vec::new();
        // Commands that decide on flags or message sets; FETCH takes fresh
        // flags from the records it reads anyway.
        let needs_fresh_view = matches!(
            command,
            Command::Search { .. }
                | Command::Sort { .. }
                | Command::Thread { .. }
                | Command::Expunge(_)
                | Command::Close
                | Command::Store { .. }
        );
        if self.selected.is_some() && needs_fresh_view {
            self.sync(&mut before, allow_expunge).await;
        }
        let ends_or_waits = matches!(command, Command::Logout | Command::Idle);
        // Moved, not cloned: an APPEND carries the whole message.
        let mut reply = self.dispatch(&tag, command).await;
        reply.out.prepend(before);
        if self.selected.is_some() && matches!(reply.next, Next::Command) && !ends_or_waits {
            let mut updates = Vec::new();
            self.sync(&mut updates, allow_expunge).await;
            if !updates.is_empty() {
                // Untagged updates go before the tagged completion.
                let at = tagged_start(&reply.out, &tag);
                reply.out.insert(at, updates);
            }
        }
        reply
    }

    async fn dispatch(&mut self, tag: &str, command: Command) -> Reply {
        let authenticated = self.access.is_some();
        let selected = self.selected.is_some();
        let done = |out| Reply::new(out, Next::Command);
        match command {
            Command::Capability => done(
                [
                    format!("* CAPABILITY {}\r\n", self.capabilities()).into_bytes(),
                    ok(tag, "Capability completed"),
                ]
                .concat(),
            ),
            Command::Noop | Command::Check => {
                // An explicit poll always looks at the store.
                self.force_sync = true;
                done(ok(tag, "Done"))
            }
            Command::Logout => {
                let mut out = b"* BYE Logging out\r\n".to_vec();
                out.extend(ok(tag, "Logout completed"));
                Reply::new(out, Next::Close)
            }
            Command::Id(software) => {
                if let Some(software) = software {
                    self.ctx.set_client_software(&software);
                }
                done(
                    [
                        b"* ID (\"name\" \"Rampart\" \"version\" \"".to_vec(),
                        env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
                        b"\")\r\n".to_vec(),
                        ok(tag, "ID completed"),
                    ]
                    .concat(),
                )
            }
            Command::StartTls => {
                if self.tls || !self.starttls_available {
                    done(bad(tag, "TLS is already active or not offered"))
                } else if authenticated {
                    done(bad(tag, "STARTTLS is only allowed before login"))
                } else {
                    Reply::new(ok(tag, "Begin TLS negotiation now"), Next::StartTls)
                }
            }
            Command::Login { user, password } if !authenticated => {
                if !self.auth_allowed() {
                    return done(no(tag, "[PRIVACYREQUIRED] Use STARTTLS or port 993 first"));
                }
                self.login(tag, &user, &password).await
            }
            Command::Authenticate { mechanism, initial } if !authenticated => {
                if !self.auth_allowed() {
                    return done(no(tag, "[PRIVACYREQUIRED] Use STARTTLS or port 993 first"));
                }
                if mechanism != "PLAIN" {
                    return done(no(tag, "[CANNOT] Only AUTHENTICATE PLAIN is offered"));
                }
                match initial {
                    Some(ir) => self.auth_plain(tag, ir.as_bytes()).await,
                    None => {
                        self.auth_tag = Some(tag.into());
                        Reply::new(b"+ \r\n".to_vec(), Next::AuthResponse)
                    }
                }
            }
            Command::Login { .. } | Command::Authenticate { .. } => {
                done(bad(tag, "Already logged in"))
            }
            _ if !authenticated => done(bad(tag, "Log in first")),
            Command::Enable(caps) => {
                let mut enabled = Vec::new();
                for cap in caps {
                    match cap.as_str() {
                        "CONDSTORE" => {
                            self.condstore = true;
                            enabled.push(cap);
                        }
                        "QRESYNC" => {
                            self.condstore = true;
                            self.qresync = true;
                            enabled.push(cap);
                        }
                        "IMAP4REV2" => {
                            self.utf8 = true;
                            enabled.push(cap);
                        }
                        _ => {}
                    }
                }
                done(
                    [
                        format!("* ENABLED {}\r\n", enabled.join(" ")).into_bytes(),
                        ok(tag, "Enabled"),
                    ]
                    .concat(),
                )
            }
            Command::Namespace => done(
                [
                    b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n".to_vec(),
                    ok(tag, "Namespace completed"),
                ]
                .concat(),
            ),
            Command::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => {
                self.select(tag, &mailbox, read_only, condstore, qresync)
                    .await
            }
            Command::Create(name) => self.create(tag, &name).await,
            Command::Delete(name) => self.delete(tag, &name).await,
            Command::Rename(from, to) => self.rename(tag, &from, &to).await,
            Command::Subscribe(name) => self.subscribe(tag, &name, true).await,
            Command::Unsubscribe(name) => self.subscribe(tag, &name, false).await,
            Command::List {
                reference,
                patterns,
                options,
            } => self.list(tag, &reference, &patterns, &options).await,
            Command::Status { mailbox, items } => self.status(tag, &mailbox, &items).await,
            Command::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(tag, &mailbox, &flags, date, message).await,
            Command::Idle => {
                let mut out = Vec::new();
                self.sync(&mut out, true).await;
                out.extend_from_slice(b"+ idling\r\n");
                self.idle_tag = Some(tag.into());
                Reply::new(out, Next::Idle)
            }
            Command::GetQuota(root) => self.quota(tag, Some(&root), None).await,
            Command::GetQuotaRoot(mailbox) => self.quota(tag, None, Some(&mailbox)).await,
            _ if !selected => done(bad(tag, "Select a mailbox first")),
            Command::Close => {
                if let Some(sel) = &self.selected
                    && !sel.read_only
                {
                    let uids: Vec<u32> = sel
                        .msgs
                        .iter()
                        .filter(|m| m.flags.contains(SystemFlags::DELETED))
                        .map(|m| m.uid)
                        .collect();
                    if !uids.is_empty()
                        && let Err(e) = self.core_remove(sel.id, &uids).await
                    {
                        return done(core_no(tag, &e));
                    }
                }
                self.selected = None;
                done(ok(tag, "Close completed"))
            }
            Command::Unselect => {
                self.selected = None;
                done(ok(tag, "Unselect completed"))
            }
            Command::Expunge(set) => self.expunge(tag, set.as_ref()).await,
            Command::Search { uid, ret, key } => self.search(tag, uid, ret, &key).await,
            Command::Sort { uid, criteria, key } => self.sort(tag, uid, &criteria, &key).await,
            Command::Thread {
                uid,
                algorithm,
                key,
            } => self.thread(tag, uid, algorithm, &key).await,
            Command::Fetch {
                uid,
                set,
                atts,
                changed_since,
                vanished,
            } => {
                self.start_fetch(tag, uid, &set, atts, changed_since, vanished)
                    .await
            }
            Command::Store {
                uid,
                set,
                unchanged_since,
                mode,
                silent,
                flags,
            } => {
                self.store(tag, uid, &set, unchanged_since, mode, silent, &flags)
                    .await
            }
            Command::Copy {
                uid,
                remove,
                set,
                mailbox,
            } => self.copy(tag, uid, remove, &set, &mailbox).await,
        }
    }

    fn access(&self) -> &Access {
        // Every caller runs after the authenticated check in dispatch.
        self.access
            .as_ref()
            .unwrap_or_else(|| unreachable!("command needs login"))
    }

    async fn login(&mut self, tag: &str, user: &str, password: &str) -> Reply {
        match self.core.authenticate(&self.ctx, user, password).await {
            Ok(access) => {
                let key = format!("user:{}", access.account().map_or(0, |a| a.0));
                let Some(slot) = self
                    .limiter
                    .acquire(key, self.config.max_connections_per_user)
                else {
                    return Reply::new(
                        no(
                            tag,
                            "[LIMIT] Too many connections for this account (imap.max_connections_per_user)",
                        ),
                        Next::Command,
                    );
                };
                self.user_slot = Some(slot);
                self.access = Some(access);
                Reply::new(
                    ok(
                        tag,
                        &format!("[CAPABILITY {}] Logged in", self.capabilities()),
                    ),
                    Next::Command,
                )
            }
            Err(CoreError::Banned) => {
                let mut out = no(
                    tag,
                    "[UNAVAILABLE] Too many failed logins from your address",
                );
                out.extend_from_slice(b"* BYE Try again later\r\n");
                Reply::new(out, Next::Close)
            }
            Err(CoreError::AuthFailed) => Reply::new(
                no(tag, "[AUTHENTICATIONFAILED] Authentication failed"),
                Next::Command,
            ),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    async fn auth_plain(&mut self, tag: &str, response: &[u8]) -> Reply {
        let decoded = base64::engine::general_purpose::STANDARD.decode(response.trim_ascii());
        let Ok(decoded) = decoded else {
            return Reply::new(bad(tag, "Invalid base64"), Next::Command);
        };
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authz, user, password] = parts.as_slice() else {
            return Reply::new(bad(tag, "Invalid PLAIN response"), Next::Command);
        };
        if !authz.is_empty() && authz != user {
            return Reply::new(
                no(
                    tag,
                    "[AUTHORIZATIONFAILED] Acting as another user is not allowed",
                ),
                Next::Command,
            );
        }
        let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password))
        else {
            return Reply::new(bad(tag, "Credentials are not UTF-8"), Next::Command);
        };
        let (user, password) = (user.to_owned(), password.to_owned());
        self.login(tag, &user, &password).await
    }

    /// Handles the client's line during AUTHENTICATE.
    pub async fn auth_response(&mut self, line: &[u8]) -> Reply {
        let tag = self.auth_tag.take().unwrap_or_else(|| "*".into());
        if line == b"*" {
            return Reply::new(bad(&tag, "Authentication cancelled"), Next::Command);
        }
        self.auth_plain(&tag, line).await
    }

    /// Pushes changes to the selected mailbox during IDLE.
    pub async fn idle_update(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.force_sync = true;
        self.sync(&mut out, true).await;
        out
    }

    /// Handles the client's line during IDLE (DONE ends it).
    pub fn idle_line(&mut self, line: &[u8]) -> Reply {
        let tag = self.idle_tag.take().unwrap_or_else(|| "*".into());
        if line.eq_ignore_ascii_case(b"DONE") {
            Reply::new(ok(&tag, "IDLE terminated"), Next::Command)
        } else {
            Reply::new(bad(&tag, "Expected DONE"), Next::Command)
        }
    }

    /// The name as stored, from the client's spelling.
    fn internal_name(&self, name: &str) -> Result<String, String> {
        let decoded = if self.utf8 {
            name.to_owned()
        } else {
            utf7::decode(name).ok_or_else(|| format!("Invalid modified UTF-7 name {name:?}"))?
        };
        let trimmed = decoded.trim_end_matches('/');
        if trimmed.eq_ignore_ascii_case("INBOX") {
            return Ok("INBOX".into());
        }
        // RFC 9051 §5.1: names are kept in NFC, so that one typed on macOS
        // (decomposed) and on Windows (composed) is the same mailbox.
        Ok(trimmed.nfc().collect())
    }

    /// Turns CONDSTORE on for a CONDSTORE-enabling command; the first one
    /// reports the selected mailbox's HIGHESTMODSEQ (RFC 7162 §3.1).
    fn enable_condstore(&mut self, out: &mut Vec<u8>) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(sel) = &self.selected {
            out.extend_from_slice(
                format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", sel.modseq).as_bytes(),
            );
        }
    }

    /// Writes a mailbox name in the client's spelling.
    fn external_name(&self, out: &mut Vec<u8>, name: &str) {
        if self.utf8 {
            render::string(out, name.as_bytes());
        } else {
            render::string(out, utf7::encode(name).as_bytes());
        }
    }

    async fn find(&self, name: &str) -> Result<Mailbox, CoreError> {
        let access = self.access();
        let account = access
            .account()
            .ok_or_else(|| CoreError::Denied("not an account".into()))?;
        self.core.find_mailbox(access, account, name).await
    }
}

fn serde_json_summary(s: &str) -> Option<MessageSummary> {
    rampart_core::parse_summary(s)
}

#[cfg(test)]
mod tests {
    use super::folders::pattern_matches;
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        pattern_matches(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn list_patterns() {
        assert!(m("*", "Work/2026"));
        assert!(m("%", "Work"));
        assert!(!m("%", "Work/2026"));
        assert!(m("Work/%", "Work/2026"));
        assert!(!m("Work/%", "Work/2026/Q1"));
        assert!(m("W*6", "Work/2026"));
        assert!(m("%/%", "Work/2026"));
        assert!(!m("Wor", "Work"));
        assert!(m("INBOX", "INBOX"));
    }

    #[test]
    fn flags_and_labels() {
        let (f, k) = parse_flags(&["\\Seen".into(), "$Junk".into(), "\\Recent".into()]).unwrap();
        assert_eq!(f, SystemFlags(SystemFlags::SEEN));
        assert_eq!(k, vec!["$Junk"]);
        assert!(parse_flags(&["\\Bogus".into()]).is_err());
        assert_eq!(
            section_label(
                SectionName::Body,
                &Section {
                    part: vec![1, 2],
                    text: Some(SectionText::HeaderFields(vec!["From".into()]))
                },
                Some((5, 10))
            ),
            "BODY[1.2.HEADER.FIELDS (From)]<5>"
        );
        let out = b"* 1 EXISTS\r\na1 OK done\r\n";
        assert_eq!(tagged_start(out, "a1"), 12);
        // A literal line that looks like the tagged one is not taken for it.
        let out = b"* 1 FETCH (BODY[] {12}\r\na1 OK fake\r\n)\r\na1 OK done\r\n";
        assert_eq!(tagged_start(out, "a1"), out.len() - 12);
        assert_eq!(tagged_start(b"a10 OK x\r\n", "a1"), 10);
    }

    /// Header sections from a kept header equal those from the message, on
    /// every message of the corpus.
    #[test]
    fn kept_headers_answer_like_the_message() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
        let sections = [
            SectionText::Header,
            SectionText::HeaderFields(vec!["From".into(), "Subject".into(), "X-None".into()]),
            SectionText::HeaderFieldsNot(vec!["Received".into(), "Content-Type".into()]),
        ];
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "eml") {
                continue;
            }
            let raw = std::fs::read(&path).unwrap();
            let kept = Structure::decode(&Structure::compute(&raw).encode()).unwrap();
            let header = kept.header.expect("short headers are kept");
            for text in &sections {
                let section = Section {
                    part: vec![],
                    text: Some(text.clone()),
                };
                assert_eq!(
                    Mime::parse_top(&header).section(&section),
                    Mime::parse_top(&raw).section(&section),
                    "{} {text:?}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 30, "{checked} messages");
        // A header too long to keep is left out, and says so.
        let long = format!("Subject: {}\r\n\r\nbody\r\n", "x".repeat(MAX_KEPT_HEADER));
        let s = Structure::decode(&Structure::compute(long.as_bytes()).encode()).unwrap();
        assert!(s.header.is_none() && !s.envelope.is_empty());
    }
}
