//! The IMAP session state machine: whole commands in, response bytes and
//! core calls out. The driver in `lib.rs` does the I/O.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rampart_core::store::{
    Change, ChangeKind, FlagChange, Mailbox, MailboxId, MailboxRole, MessageRecord, SystemFlags,
};
use rampart_core::{Access, Core, CoreError, MessageSummary, Operation, Protocol, SessionContext};

use crate::command::{
    Command, CommandLimits, FetchAtt, ListOptions, Qresync, SearchKey, SearchReturn, Section,
    SectionName, SectionText, SequenceSet, SortKey, StatusItem, StoreMode, ThreadAlgorithm,
    compact_set, parse_command,
};
use crate::mime::Mime;
use crate::parser::{Frame, FrameLimits, tokenize};
use crate::search::{self, Candidate, Scope};
use crate::{render, utf7};

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
    pub out: Vec<u8>,
    /// What comes next.
    pub next: Next,
}

impl Reply {
    fn new(out: Vec<u8>, next: Next) -> Self {
        Reply { out, next }
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
        }
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
}

impl Selected {
    fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.uid)
    }

    /// Indices named by a set, ascending. Sequence numbers past the end are an error.
    fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
        let mut out = Vec::new();
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

/// A FETCH being answered in steps.
struct FetchJob {
    tag: String,
    uid: bool,
    atts: Vec<FetchAtt>,
    indices: Vec<usize>,
    next: usize,
    needs_raw: bool,
    purpose: Operation,
    sets_seen: bool,
    unknown_cte: bool,
    /// Whether an item needs the parts below the top level.
    deep_mime: bool,
    /// Whether ENVELOPE, BODYSTRUCTURE, BODY and header sections are the
    /// only items that need the message: they are then served from
    /// [`Structure`]s kept in the store, without reading message files.
    structure_only: bool,
}

/// The kind under which a message's [`Structure`] is kept.
const STRUCTURE_KIND: &str = "imap.structure.2";

/// Longest header section kept in a [`Structure`]; longer ones are read from
/// the message when asked for.
const MAX_KEPT_HEADER: usize = 32 * 1024;

/// Computes a message's ENVELOPE and BODYSTRUCTURE when it is stored, so
/// that the first FETCH of them reads no message at all.
pub struct StructureDeriver;

impl rampart_core::Deriver for StructureDeriver {
    fn kind(&self) -> &str {
        STRUCTURE_KIND
    }

    fn derive(&self, raw: &[u8]) -> Vec<u8> {
        Structure::compute(raw).encode()
    }
}

/// A message's ENVELOPE, BODYSTRUCTURE and BODY as sent, and its header
/// section (what header FETCHes, the commonest, read), computed once.
#[derive(Debug, Default)]
struct Structure {
    envelope: Vec<u8>,
    body_structure: Vec<u8>,
    body: Vec<u8>,
    /// The top-level header with the blank line that ends it; None when
    /// longer than [`MAX_KEPT_HEADER`].
    header: Option<Vec<u8>>,
}

impl Structure {
    fn compute(raw: &[u8]) -> Self {
        let m = Mime::parse(raw);
        let mut s = Structure::default();
        render::envelope(&mut s.envelope, &m, &m.root);
        render::body_structure(&mut s.body_structure, &m, &m.root, true);
        render::body_structure(&mut s.body, &m, &m.root, false);
        let header = m.root.header.start..m.root.blank_line.end.max(m.root.header.end);
        s.header = (header.len() <= MAX_KEPT_HEADER).then(|| raw[header].to_vec());
        s
    }

    /// Four length-prefixed fields (the header's length is u32::MAX when it
    /// is not kept).
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for field in [&self.envelope, &self.body_structure, &self.body] {
            out.extend_from_slice(&(field.len() as u32).to_le_bytes());
            out.extend_from_slice(field);
        }
        match &self.header {
            Some(h) => {
                out.extend_from_slice(&(h.len() as u32).to_le_bytes());
                out.extend_from_slice(h);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        out
    }

    fn decode(mut bytes: &[u8]) -> Option<Self> {
        let mut fields = Vec::with_capacity(4);
        for _ in 0..4 {
            let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
            bytes = &bytes[4..];
            if len == u32::MAX {
                fields.push(None);
                continue;
            }
            let len = len as usize;
            fields.push(Some(bytes.get(..len)?.to_vec()));
            bytes = &bytes[len..];
        }
        let header = fields.pop()?;
        let body = fields.pop()??;
        let body_structure = fields.pop()??;
        let envelope = fields.pop()??;
        bytes.is_empty().then_some(Structure {
            envelope,
            body_structure,
            body,
            header,
        })
    }
}

/// Whether a FETCH item is a section of the top-level header only.
fn is_header_section(att: &FetchAtt) -> bool {
    matches!(
        att,
        FetchAtt::Section { name, section, .. }
            if *name != SectionName::Binary
                && section.part.is_empty()
                && matches!(
                    section.text,
                    Some(SectionText::Header)
                        | Some(SectionText::HeaderFields(_))
                        | Some(SectionText::HeaderFieldsNot(_))
                )
    )
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

const SYSTEM_FLAGS: &str = "(\\Answered \\Flagged \\Deleted \\Seen \\Draft)";

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
        CoreError::Invalid(_) => "[CANNOT] ",
        CoreError::AuthFailed | CoreError::Banned => "[AUTHENTICATIONFAILED] ",
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

fn email_id(message: i64) -> String {
    format!("M{message}")
}

fn thread_id(thread: i64) -> String {
    format!("T{thread}")
}

fn mailbox_id(id: MailboxId) -> String {
    format!("F{}", id.0)
}

fn role_attribute(role: Option<MailboxRole>) -> Option<&'static str> {
    match role? {
        MailboxRole::Inbox => None,
        MailboxRole::Sent => Some("\\Sent"),
        MailboxRole::Drafts => Some("\\Drafts"),
        MailboxRole::Trash => Some("\\Trash"),
        MailboxRole::Junk => Some("\\Junk"),
        MailboxRole::Archive => Some("\\Archive"),
    }
}

/// `*` matches anything, `%` anything but the hierarchy delimiter.
fn pattern_matches(pattern: &[char], name: &[char]) -> bool {
    let m = name.len();
    // reachable[j]: the pattern prefix so far matches name[..j].
    let mut reachable = vec![false; m + 1];
    reachable[0] = true;
    for &p in pattern {
        let mut next = vec![false; m + 1];
        match p {
            '*' | '%' => {
                let mut on = false;
                for j in 0..=m {
                    if reachable[j] {
                        on = true;
                    }
                    next[j] = on;
                    // `%` does not reach across a delimiter.
                    if p == '%' && j < m && name[j] == '/' {
                        on = false;
                    }
                }
            }
            c => {
                for j in 0..m {
                    next[j + 1] = reachable[j] && name[j] == c;
                }
            }
        }
        reachable = next;
    }
    reachable[m]
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
            ctx: SessionContext::new(Protocol::Imap, client),
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
    pub fn tls_started(&mut self) {
        self.tls = true;
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
        reply.out.splice(0..0, before);
        if self.selected.is_some() && matches!(reply.next, Next::Command) && !ends_or_waits {
            let mut updates = Vec::new();
            self.sync(&mut updates, allow_expunge).await;
            if !updates.is_empty() {
                // Untagged updates go before the tagged completion.
                let tagged_start = find_tagged(&reply.out, &tag);
                reply.out.splice(tagged_start..tagged_start, updates);
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
            Command::Id => done(
                [
                    b"* ID (\"name\" \"Rampart\" \"version\" \"".to_vec(),
                    env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
                    b"\")\r\n".to_vec(),
                    ok(tag, "ID completed"),
                ]
                .concat(),
            ),
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
        Ok(trimmed.to_owned())
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

    async fn select(
        &mut self,
        tag: &str,
        name: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    ) -> Reply {
        let had_selected = self.selected.take().is_some();
        let mut out = Vec::new();
        if had_selected && (self.qresync || self.utf8) {
            out.extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        if qresync.is_some() && !self.qresync {
            out.extend(bad(tag, "Enable QRESYNC first"));
            return Reply::new(out, Next::Command);
        }
        if condstore {
            self.condstore = true;
        }
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => {
                out.extend(bad(tag, &e));
                return Reply::new(out, Next::Command);
            }
        };
        let listed = match self.find(&name).await {
            Ok(m) => self.core.list_items(self.access(), m.id).await,
            Err(e) => Err(e),
        };
        let (mailbox, records) = match listed {
            Ok(x) => x,
            Err(e) => {
                out.extend(core_no(tag, &e));
                return Reply::new(out, Next::Command);
            }
        };
        let msgs: Vec<Msg> = records.iter().map(Msg::from_record).collect();
        out.extend_from_slice(format!("* FLAGS {SYSTEM_FLAGS}\r\n").as_bytes());
        if read_only {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        } else {
            out.extend_from_slice(
                b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n",
            );
        }
        out.extend_from_slice(format!("* {} EXISTS\r\n", msgs.len()).as_bytes());
        if !self.utf8 {
            out.extend_from_slice(b"* 0 RECENT\r\n");
            if let Some(p) = msgs
                .iter()
                .position(|m| !m.flags.contains(SystemFlags::SEEN))
            {
                out.extend_from_slice(
                    format!("* OK [UNSEEN {}] First unseen\r\n", p + 1).as_bytes(),
                );
            }
        }
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n* OK [HIGHESTMODSEQ {}] Highest\r\n* OK [MAILBOXID ({})] Ok\r\n",
                mailbox.uid_validity,
                mailbox.uid_next,
                mailbox.highest_modseq,
                mailbox_id(mailbox.id)
            )
            .as_bytes(),
        );
        let selected = Selected {
            id: mailbox.id,
            read_only,
            msgs,
            modseq: mailbox.highest_modseq,
            expunged_pending: 0,
        };
        if let Some(q) = qresync
            && q.uid_validity == mailbox.uid_validity
        {
            match self
                .core
                .changes_since(self.access(), mailbox.id, q.modseq)
                .await
            {
                Ok((_, changes)) => {
                    let mut vanished: Vec<u32> = changes
                        .iter()
                        .filter(|c| c.kind == ChangeKind::Expunged)
                        .map(|c| c.uid)
                        .filter(|&u| selected.index_of_uid(u).is_none())
                        .filter(|&u| {
                            q.known_uids
                                .as_ref()
                                .is_none_or(|k| k.contains(u, u32::MAX))
                        })
                        .collect();
                    vanished.sort_unstable();
                    vanished.dedup();
                    if !vanished.is_empty() {
                        out.extend_from_slice(
                            format!("* VANISHED (EARLIER) {}\r\n", compact_set(&vanished))
                                .as_bytes(),
                        );
                    }
                    for (i, m) in selected.msgs.iter().enumerate() {
                        if m.modseq > q.modseq {
                            out.extend_from_slice(
                                format!(
                                    "* {} FETCH (UID {} FLAGS {} MODSEQ ({}))\r\n",
                                    i + 1,
                                    m.uid,
                                    render::flags(m.flags, &m.keywords),
                                    m.modseq
                                )
                                .as_bytes(),
                            );
                        }
                    }
                }
                Err(e) => {
                    out.extend(core_no(tag, &e));
                    return Reply::new(out, Next::Command);
                }
            }
        }
        self.selected = Some(selected);
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        out.extend(ok(tag, &format!("[{mode}] Select completed")));
        Reply::new(out, Next::Command)
    }

    /// Brings the selected view up to date, writing untagged updates.
    async fn sync(&mut self, out: &mut Vec<u8>, allow_expunge: bool) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        // Only ask the store when this process announced a change to the
        // mailbox, or when the last look is old (another process, such as
        // the CLI, may have changed it).
        let mut dirty = self.force_sync || self.last_sync.elapsed() >= STALE_VIEW;
        loop {
            match self.changes.try_recv() {
                Ok(id) => dirty |= id == sel.id,
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => dirty = true,
                Err(_) => break,
            }
        }
        self.force_sync = false;
        if !dirty {
            if allow_expunge && let Some(sel) = self.selected.as_mut() {
                write_pending_expunges(out, sel, self.qresync);
            }
            return;
        }
        self.last_sync = std::time::Instant::now();
        let (id, since) = (sel.id, sel.modseq);
        let Some(access) = self.access.clone() else {
            return;
        };
        let (mailbox, changes) = match self.core.changes_since(&access, id, since).await {
            Ok(x) => x,
            Err(CoreError::NotFound { .. }) => {
                out.extend_from_slice(b"* BYE [NONEXISTENT] The selected mailbox was deleted\r\n");
                self.selected = None;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "IMAP update check failed");
                return;
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let mut new_uids = Vec::new();
        let mut flag_uids = Vec::new();
        let max_uid = sel.max_uid();
        for Change {
            uid, kind, modseq, ..
        } in &changes
        {
            match kind {
                ChangeKind::Created if *uid > max_uid => new_uids.push(*uid),
                ChangeKind::Created => {}
                ChangeKind::Flags => {
                    if let Some(i) = sel.index_of_uid(*uid)
                        && sel.msgs[i].modseq < *modseq
                    {
                        flag_uids.push(*uid);
                    }
                }
                ChangeKind::Expunged => {
                    if let Some(i) = sel.index_of_uid(*uid)
                        && !sel.msgs[i].expunged
                    {
                        sel.msgs[i].expunged = true;
                        sel.expunged_pending += 1;
                    }
                    new_uids.retain(|u| u != uid);
                }
            }
        }
        sel.modseq = sel.modseq.max(mailbox.highest_modseq);
        if allow_expunge {
            write_pending_expunges(out, sel, self.qresync);
        }
        flag_uids.sort_unstable();
        flag_uids.dedup();
        new_uids.sort_unstable();
        new_uids.dedup();
        let wanted: Vec<u32> = new_uids.iter().chain(&flag_uids).copied().collect();
        if wanted.is_empty() {
            return;
        }
        let records = match self
            .core
            .fetch_messages(&access, id, &wanted, false, Operation::ListItems)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "IMAP update fetch failed");
                return;
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let before = sel.msgs.len();
        for (record, _) in &records {
            match sel.index_of_uid(record.uid) {
                Some(i) => {
                    let m = &mut sel.msgs[i];
                    if m.modseq < record.modseq {
                        m.flags = record.flags;
                        m.keywords = record.keywords.clone();
                        m.modseq = record.modseq;
                        let mut line = format!(
                            "* {} FETCH (UID {} FLAGS {}",
                            i + 1,
                            m.uid,
                            render::flags(m.flags, &m.keywords)
                        );
                        if self.condstore {
                            line.push_str(&format!(" MODSEQ ({})", m.modseq));
                        }
                        line.push_str(")\r\n");
                        out.extend_from_slice(line.as_bytes());
                    }
                }
                None if record.uid > sel.max_uid() => sel.msgs.push(Msg::from_record(record)),
                None => {}
            }
        }
        if sel.msgs.len() != before {
            out.extend_from_slice(format!("* {} EXISTS\r\n", sel.msgs.len()).as_bytes());
        }
    }

    async fn core_remove(&self, id: MailboxId, uids: &[u32]) -> Result<u64, CoreError> {
        self.core.remove_messages(self.access(), id, uids).await
    }

    async fn expunge(&mut self, tag: &str, set: Option<&SequenceSet>) -> Reply {
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        if sel.read_only {
            return Reply::new(no(tag, "[READ-ONLY] Mailbox is read-only"), Next::Command);
        }
        let in_set: Option<Vec<usize>> = match set.map(|s| sel.resolve(s, true)) {
            Some(Ok(i)) => Some(i),
            Some(Err(e)) => return Reply::new(bad(tag, &e), Next::Command),
            None => None,
        };
        let uids: Vec<u32> = sel
            .msgs
            .iter()
            .enumerate()
            .filter(|(i, m)| {
                m.flags.contains(SystemFlags::DELETED)
                    && !m.expunged
                    && in_set.as_ref().is_none_or(|s| s.binary_search(i).is_ok())
            })
            .map(|(_, m)| m.uid)
            .collect();
        let id = sel.id;
        let mut out = Vec::new();
        if !uids.is_empty() {
            match self.core_remove(id, &uids).await {
                Ok(modseq) => {
                    let qresync = self.qresync;
                    if let Some(sel) = self.selected.as_mut() {
                        write_expunges(&mut out, sel, &uids, qresync);
                        let _ = modseq;
                    }
                }
                Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
            }
        }
        out.extend(ok(tag, "Expunge completed"));
        Reply::new(out, Next::Command)
    }

    async fn create(&mut self, tag: &str, name: &str) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        match self.core.create_mailbox(self.access(), &name).await {
            Ok(_) => Reply::new(ok(tag, "Create completed"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    async fn delete(&mut self, tag: &str, name: &str) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let result = match self.find(&name).await {
            Ok(m) => {
                if self.selected.as_ref().is_some_and(|s| s.id == m.id) {
                    self.selected = None;
                }
                self.core.delete_mailbox(self.access(), m.id).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Reply::new(ok(tag, "Delete completed"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    async fn rename(&mut self, tag: &str, from: &str, to: &str) -> Reply {
        let (from, to) = match (self.internal_name(from), self.internal_name(to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let result = match self.find(&from).await {
            Ok(m) => self.core.rename_mailbox(self.access(), m.id, &to).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Reply::new(ok(tag, "Rename completed"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    async fn subscribe(&mut self, tag: &str, name: &str, on: bool) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let result = match self.find(&name).await {
            Ok(m) => self.core.set_subscribed(self.access(), m.id, on).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Reply::new(ok(tag, "Done"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    async fn list(
        &mut self,
        tag: &str,
        reference: &str,
        patterns: &[String],
        options: &ListOptions,
    ) -> Reply {
        let mut out = Vec::new();
        let verb = if options.lsub { "LSUB" } else { "LIST" };
        if patterns.len() == 1 && patterns[0].is_empty() {
            out.extend_from_slice(format!("* {verb} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            out.extend(ok(tag, "List completed"));
            return Reply::new(out, Next::Command);
        }
        let mut mailboxes = match self.core.list_mailboxes(self.access()).await {
            Ok(m) => m,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        mailboxes.sort_by(|a, b| {
            (a.role != Some(MailboxRole::Inbox), &a.name)
                .cmp(&(b.role != Some(MailboxRole::Inbox), &b.name))
        });
        let mut compiled = Vec::new();
        for p in patterns {
            let full = format!("{reference}{p}");
            let full = if self.utf8 {
                full
            } else {
                match utf7::decode(&full) {
                    Some(f) => f,
                    None => {
                        return Reply::new(
                            bad(tag, "Invalid modified UTF-7 pattern"),
                            Next::Command,
                        );
                    }
                }
            };
            compiled.push(full.chars().collect::<Vec<char>>());
        }
        let names: Vec<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
        for m in &mailboxes {
            let name_chars: Vec<char> = m.name.chars().collect();
            let matched = compiled.iter().any(|p| {
                if m.role == Some(MailboxRole::Inbox) {
                    let upper: Vec<char> = p.iter().map(|c| c.to_ascii_uppercase()).collect();
                    pattern_matches(&upper, &name_chars) || pattern_matches(p, &name_chars)
                } else {
                    pattern_matches(p, &name_chars)
                }
            });
            if !matched {
                continue;
            }
            if (options.lsub || options.subscribed_only) && !m.subscribed {
                continue;
            }
            if options.special_use_only && role_attribute(m.role).is_none() {
                continue;
            }
            let prefix = format!("{}/", m.name);
            let has_children = names.iter().any(|n| n.starts_with(&prefix));
            let mut attrs: Vec<&str> = Vec::new();
            if !options.lsub {
                attrs.push(if has_children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
                if let Some(a) = role_attribute(m.role) {
                    attrs.push(a);
                }
                if m.subscribed && (options.subscribed_only || options.return_subscribed) {
                    attrs.push("\\Subscribed");
                }
            }
            out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
            self.external_name(&mut out, &m.name);
            out.extend_from_slice(b"\r\n");
            if let Some(items) = &options.return_status {
                match self.core.mailbox_status(self.access(), m.id).await {
                    Ok((mailbox, status)) => self.write_status(&mut out, &mailbox, &status, items),
                    Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
                }
            }
        }
        out.extend(ok(tag, &format!("{verb} completed")));
        Reply::new(out, Next::Command)
    }

    fn write_status(
        &self,
        out: &mut Vec<u8>,
        mailbox: &Mailbox,
        status: &rampart_core::store::MailboxStatus,
        items: &[StatusItem],
    ) {
        out.extend_from_slice(b"* STATUS ");
        self.external_name(out, &mailbox.name);
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", status.messages),
                StatusItem::Recent => "RECENT 0".into(),
                StatusItem::UidNext => format!("UIDNEXT {}", mailbox.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", mailbox.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", status.unseen),
                StatusItem::Deleted => format!("DELETED {}", status.deleted),
                StatusItem::Size => format!("SIZE {}", status.size),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", mailbox.highest_modseq),
                StatusItem::AppendLimit => {
                    format!("APPENDLIMIT {}", self.config.frame.max_append_bytes)
                }
                StatusItem::MailboxId => format!("MAILBOXID ({})", mailbox_id(mailbox.id)),
            })
            .collect();
        out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
    }

    async fn status(&mut self, tag: &str, name: &str, items: &[StatusItem]) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        if items.contains(&StatusItem::HighestModSeq) {
            self.condstore = true;
        }
        let result = match self.find(&name).await {
            Ok(m) => self.core.mailbox_status(self.access(), m.id).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((mailbox, status)) => {
                let mut out = Vec::new();
                self.write_status(&mut out, &mailbox, &status, items);
                out.extend(ok(tag, "Status completed"));
                Reply::new(out, Next::Command)
            }
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    async fn append(
        &mut self,
        tag: &str,
        name: &str,
        flags: &[String],
        date: Option<i64>,
        message: Vec<u8>,
    ) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let (system, keywords) = match parse_flags(flags) {
            Ok(f) => f,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        if message.is_empty() {
            return Reply::new(
                no(tag, "[CANNOT] An empty message cannot be appended"),
                Next::Command,
            );
        }
        let mailbox = match self.find(&name).await {
            Ok(m) => m,
            Err(CoreError::NotFound { .. }) => {
                return Reply::new(no(tag, "[TRYCREATE] No such mailbox"), Next::Command);
            }
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        match self
            .core
            .append(self.access(), mailbox.id, message, system, keywords, date)
            .await
        {
            Ok(a) => Reply::new(
                ok(
                    tag,
                    &format!(
                        "[APPENDUID {} {}] Append completed",
                        mailbox.uid_validity, a.uid
                    ),
                ),
                Next::Command,
            ),
            Err(CoreError::Limit { what, limit, key }) => Reply::new(
                no(
                    tag,
                    &format!("[TOOBIG] {what} exceeds the limit of {limit} ({key})"),
                ),
                Next::Command,
            ),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    async fn quota(&mut self, tag: &str, root: Option<&str>, mailbox: Option<&str>) -> Reply {
        if let Some(root) = root
            && !root.is_empty()
        {
            return Reply::new(no(tag, "[NONEXISTENT] No such quota root"), Next::Command);
        }
        let mut out = Vec::new();
        if let Some(name) = mailbox {
            let name = match self.internal_name(name) {
                Ok(n) => n,
                Err(e) => return Reply::new(bad(tag, &e), Next::Command),
            };
            if let Err(e) = self.find(&name).await {
                return Reply::new(core_no(tag, &e), Next::Command);
            }
            out.extend_from_slice(b"* QUOTAROOT ");
            self.external_name(&mut out, &name);
            out.extend_from_slice(b" \"\"\r\n");
        }
        match self.core.quota(self.access()).await {
            Ok((used, limit)) => {
                if limit == 0 {
                    out.extend_from_slice(b"* QUOTA \"\" ()\r\n");
                } else {
                    out.extend_from_slice(
                        format!(
                            "* QUOTA \"\" (STORAGE {} {})\r\n",
                            used.div_ceil(1024),
                            limit / 1024
                        )
                        .as_bytes(),
                    );
                }
                out.extend(ok(tag, "Quota completed"));
                Reply::new(out, Next::Command)
            }
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    /// Runs a search over the selected mailbox; returns matching indices.
    async fn run_search(&mut self, key: &SearchKey) -> Result<Vec<usize>, CoreError> {
        let access = self.access().clone();
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let scope = Scope {
            max_seq: sel.msgs.len() as u32,
            max_uid: sel.max_uid(),
            now: rampart_core::store::now_millis(),
        };
        let id = sel.id;
        // The full-text index answers text keys where it can, so that
        // only the messages it does not cover are read.
        let mut lookups = Vec::new();
        search::text_lookups(key, &mut lookups);
        let mut answers = HashMap::new();
        for (field, needle) in lookups {
            if let Some(found) = self.core.search_text(&access, id, field, &needle).await? {
                answers.insert((field, needle), found);
            }
        }
        let key = &search::apply_index(key.clone(), &answers);
        let needs = search::needs(key);
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let live: Vec<usize> = (0..sel.msgs.len())
            .filter(|&i| !sel.msgs[i].expunged && search::may_match(key, sel.msgs[i].uid, scope))
            .collect();
        let mut hits = Vec::new();
        let batch = self.config.fetch_batch.max(1);
        for chunk in live.chunks(batch) {
            let sel = self
                .selected
                .as_ref()
                .ok_or(CoreError::Invalid("deselected".into()))?;
            let uids: Vec<u32> = chunk.iter().map(|&i| sel.msgs[i].uid).collect();
            // Every search is recorded with the messages it examined.
            let records = self
                .core
                .fetch_messages(&access, id, &uids, needs.text, Operation::Search)
                .await?;
            let by_uid: HashMap<u32, &(MessageRecord, Option<Vec<u8>>)> =
                records.iter().map(|r| (r.0.uid, r)).collect();
            for &i in chunk {
                let m = &sel.msgs[i];
                let Some((record, raw)) = by_uid.get(&m.uid) else {
                    continue;
                };
                let summary: Option<MessageSummary> = needs
                    .summary
                    .then(|| serde_json_summary(&record.summary))
                    .flatten();
                let text = raw.as_deref().map(rampart_core::SearchableText::new);
                let (eid, tid) = (email_id(m.message), thread_id(m.thread));
                let c = Candidate {
                    seq: i as u32 + 1,
                    uid: m.uid,
                    flags: m.flags,
                    keywords: &m.keywords,
                    modseq: m.modseq,
                    size: m.size,
                    received_at: m.received_at,
                    email_id: &eid,
                    thread_id: &tid,
                    summary: summary.as_ref(),
                    text: text.as_ref(),
                };
                if search::matches(key, &c, scope) {
                    hits.push(i);
                }
            }
        }
        Ok(hits)
    }

    async fn search(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<SearchReturn>,
        key: &SearchKey,
    ) -> Reply {
        if search::uses_modseq(key) {
            self.condstore = true;
        }
        let hits = match self.run_search(key).await {
            Ok(h) => h,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let nums: Vec<u32> = hits
            .iter()
            .map(|&i| if uid { sel.msgs[i].uid } else { i as u32 + 1 })
            .collect();
        let highest = hits.iter().map(|&i| sel.msgs[i].modseq).max();
        let mut out = Vec::new();
        let esearch = ret.or(self.utf8.then_some(SearchReturn {
            all: true,
            ..Default::default()
        }));
        match esearch {
            Some(r) => {
                let mut line = format!("* ESEARCH (TAG \"{tag}\")");
                if uid {
                    line.push_str(" UID");
                }
                if !nums.is_empty() {
                    if r.min {
                        line.push_str(&format!(" MIN {}", nums[0]));
                    }
                    if r.max {
                        line.push_str(&format!(" MAX {}", nums[nums.len() - 1]));
                    }
                    if r.all {
                        line.push_str(&format!(" ALL {}", compact_set(&nums)));
                    }
                }
                if r.count {
                    line.push_str(&format!(" COUNT {}", nums.len()));
                }
                if let Some(h) = highest.filter(|_| search::uses_modseq(key)) {
                    line.push_str(&format!(" MODSEQ {h}"));
                }
                line.push_str("\r\n");
                out.extend_from_slice(line.as_bytes());
            }
            None => {
                let mut line = String::from("* SEARCH");
                for n in &nums {
                    line.push_str(&format!(" {n}"));
                }
                if let Some(h) = highest.filter(|_| search::uses_modseq(key)) {
                    line.push_str(&format!(" (MODSEQ {h})"));
                }
                line.push_str("\r\n");
                out.extend_from_slice(line.as_bytes());
            }
        }
        out.extend(ok(tag, "Search completed"));
        Reply::new(out, Next::Command)
    }

    /// The matching indices with their summaries, for SORT and THREAD.
    async fn search_with_summaries(
        &mut self,
        key: &SearchKey,
    ) -> Result<(Vec<usize>, HashMap<u32, MessageSummary>), CoreError> {
        let hits = self.run_search(key).await?;
        let summaries = self.summaries(&hits).await?;
        Ok((hits, summaries))
    }

    /// Summaries of the given indices, for SORT and THREAD.
    async fn summaries(
        &self,
        indices: &[usize],
    ) -> Result<HashMap<u32, MessageSummary>, CoreError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::new();
        for chunk in indices.chunks(self.config.fetch_batch.max(1) * 8) {
            let uids: Vec<u32> = chunk.iter().map(|&i| sel.msgs[i].uid).collect();
            for (record, _) in self
                .core
                .fetch_messages(self.access(), sel.id, &uids, false, Operation::ReadHeader)
                .await?
            {
                out.insert(
                    record.uid,
                    serde_json_summary(&record.summary).unwrap_or_default(),
                );
            }
        }
        Ok(out)
    }

    async fn sort(
        &mut self,
        tag: &str,
        uid: bool,
        criteria: &[(bool, SortKey)],
        key: &SearchKey,
    ) -> Reply {
        let (hits, summaries) = match self.search_with_summaries(key).await {
            Ok(x) => x,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let empty = MessageSummary::default();
        let first_mailbox = |list: &[rampart_core::AddressSummary]| {
            list.first()
                .and_then(|a| a.address.clone())
                .unwrap_or_default()
                .to_lowercase()
        };
        let mut sorted = hits.clone();
        sorted.sort_by(|&a, &b| {
            let (ma, mb) = (&sel.msgs[a], &sel.msgs[b]);
            let sa = summaries.get(&ma.uid).unwrap_or(&empty);
            let sb = summaries.get(&mb.uid).unwrap_or(&empty);
            for &(reverse, k) in criteria {
                let ord = match k {
                    SortKey::Arrival => ma.received_at.cmp(&mb.received_at),
                    SortKey::Size => ma.size.cmp(&mb.size),
                    SortKey::Date => sa
                        .date
                        .unwrap_or(ma.received_at / 1000)
                        .cmp(&sb.date.unwrap_or(mb.received_at / 1000)),
                    SortKey::Subject => search::base_subject(sa.subject.as_deref().unwrap_or(""))
                        .cmp(&search::base_subject(sb.subject.as_deref().unwrap_or(""))),
                    SortKey::From => first_mailbox(&sa.from).cmp(&first_mailbox(&sb.from)),
                    SortKey::To => first_mailbox(&sa.to).cmp(&first_mailbox(&sb.to)),
                    SortKey::Cc => first_mailbox(&sa.cc).cmp(&first_mailbox(&sb.cc)),
                };
                let ord = if reverse { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            a.cmp(&b)
        });
        let mut line = String::from("* SORT");
        for i in sorted {
            let n = if uid { sel.msgs[i].uid } else { i as u32 + 1 };
            line.push_str(&format!(" {n}"));
        }
        line.push_str("\r\n");
        let mut out = line.into_bytes();
        out.extend(ok(tag, "Sort completed"));
        Reply::new(out, Next::Command)
    }

    async fn thread(
        &mut self,
        tag: &str,
        uid: bool,
        algorithm: ThreadAlgorithm,
        key: &SearchKey,
    ) -> Reply {
        let (hits, summaries) = match self.search_with_summaries(key).await {
            Ok(x) => x,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let empty = MessageSummary::default();
        let date = |i: usize| {
            let m = &sel.msgs[i];
            summaries
                .get(&m.uid)
                .unwrap_or(&empty)
                .date
                .unwrap_or(m.received_at / 1000)
        };
        // Group: by base subject, or by the thread the store assigned from
        // References and In-Reply-To.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for &i in &hits {
            let k = match algorithm {
                ThreadAlgorithm::OrderedSubject => search::base_subject(
                    summaries
                        .get(&sel.msgs[i].uid)
                        .and_then(|s| s.subject.as_deref())
                        .unwrap_or(""),
                ),
                ThreadAlgorithm::References => sel.msgs[i].thread.to_string(),
            };
            let g = *index.entry(k.clone()).or_insert_with(|| {
                groups.push((k, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        for (_, members) in &mut groups {
            members.sort_by_key(|&i| (date(i), i));
        }
        groups.sort_by_key(|(_, members)| (date(members[0]), members[0]));
        let num = |i: usize| if uid { sel.msgs[i].uid } else { i as u32 + 1 };
        let mut line = String::from("* THREAD ");
        for (_, members) in &groups {
            line.push('(');
            line.push_str(&num(members[0]).to_string());
            match &members[1..] {
                [] => {}
                [one] => line.push_str(&format!(" {}", num(*one))),
                rest => {
                    line.push(' ');
                    for &c in rest {
                        line.push_str(&format!("({})", num(c)));
                    }
                }
            }
            line.push(')');
        }
        line.push_str("\r\n");
        let mut out = line.into_bytes();
        out.extend(ok(tag, "Thread completed"));
        Reply::new(out, Next::Command)
    }

    async fn start_fetch(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SequenceSet,
        atts: Vec<FetchAtt>,
        changed_since: Option<u64>,
        vanished: bool,
    ) -> Reply {
        if changed_since.is_some() || atts.contains(&FetchAtt::ModSeq) {
            self.condstore = true;
        }
        if vanished && !self.qresync {
            return Reply::new(bad(tag, "Enable QRESYNC first"), Next::Command);
        }
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let mut indices = match sel.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        indices.retain(|&i| !sel.msgs[i].expunged);
        let mut out = Vec::new();
        if let Some(cs) = changed_since {
            indices.retain(|&i| sel.msgs[i].modseq > cs);
            if vanished {
                let (id, max_uid) = (sel.id, sel.max_uid());
                match self.core.changes_since(self.access(), id, cs).await {
                    Ok((_, changes)) => {
                        let sel = self.selected.as_ref().expect("selected above");
                        let mut gone: Vec<u32> = changes
                            .iter()
                            .filter(|c| c.kind == ChangeKind::Expunged)
                            .map(|c| c.uid)
                            .filter(|&u| set.contains(u, max_uid) && sel.index_of_uid(u).is_none())
                            .collect();
                        gone.sort_unstable();
                        gone.dedup();
                        if !gone.is_empty() {
                            out.extend_from_slice(
                                format!("* VANISHED (EARLIER) {}\r\n", compact_set(&gone))
                                    .as_bytes(),
                            );
                        }
                    }
                    Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
                }
            }
        }
        let sel = self.selected.as_ref().expect("selected above");
        let needs_raw = atts.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Envelope
                    | FetchAtt::BodyStructure
                    | FetchAtt::Body
                    | FetchAtt::Section { .. }
                    | FetchAtt::BinarySize(_)
            )
        });
        let reads_body = atts.iter().any(|a| match a {
            FetchAtt::Section { section, name, .. } => {
                *name == SectionName::Binary
                    || !matches!(
                        section.text,
                        Some(SectionText::Header)
                            | Some(SectionText::HeaderFields(_))
                            | Some(SectionText::HeaderFieldsNot(_))
                            | Some(SectionText::Mime)
                    )
            }
            FetchAtt::BinarySize(_) => true,
            _ => false,
        });
        let purpose = if reads_body {
            Operation::ReadBody
        } else if needs_raw {
            Operation::ReadHeader
        } else {
            Operation::ListItems
        };
        let sets_seen = !sel.read_only
            && atts
                .iter()
                .any(|a| matches!(a, FetchAtt::Section { peek: false, .. }));
        let structure_only = needs_raw
            && atts.iter().all(|a| {
                is_header_section(a)
                    || !matches!(a, FetchAtt::Section { .. } | FetchAtt::BinarySize(_))
            });
        let deep_mime = atts.iter().any(|a| match a {
            FetchAtt::BodyStructure | FetchAtt::Body | FetchAtt::BinarySize(_) => true,
            FetchAtt::Section { name, section, .. } => {
                *name == SectionName::Binary || !section.part.is_empty()
            }
            _ => false,
        });
        self.fetch = Some(FetchJob {
            tag: tag.into(),
            uid,
            atts,
            indices,
            next: 0,
            needs_raw,
            purpose,
            sets_seen,
            unknown_cte: false,
            deep_mime,
            structure_only,
        });
        let mut reply = self.more().await;
        out.append(&mut reply.out);
        reply.out = out;
        reply
    }

    /// The next part of a long response (FETCH in batches).
    pub async fn more(&mut self) -> Reply {
        let Some(mut job) = self.fetch.take() else {
            return Reply::new(Vec::new(), Next::Command);
        };
        let mut out = Vec::new();
        // Whole messages go in small batches (memory); flags and kept
        // structures in larger ones (fewer round trips to the store).
        let batch = if job.needs_raw && !job.structure_only {
            self.config.fetch_batch.max(1)
        } else {
            self.config.fetch_batch.max(1) * 8
        };
        let end = (job.next + batch).min(job.indices.len());
        let chunk: Vec<usize> = job.indices[job.next..end].to_vec();
        job.next = end;
        if let Err(e) = self.fetch_batch(&mut job, &chunk, &mut out).await {
            out.extend(core_no(&job.tag, &e));
            return Reply::new(out, Next::Command);
        }
        if job.next < job.indices.len() {
            self.fetch = Some(job);
            return Reply::new(out, Next::More);
        }
        if job.unknown_cte {
            out.extend(no(
                &job.tag,
                "[UNKNOWN-CTE] A part has an unknown transfer encoding",
            ));
        } else {
            out.extend(ok(&job.tag, "Fetch completed"));
        }
        // Updates that arrived meanwhile follow (no EXPUNGE during FETCH).
        let mut updates = Vec::new();
        self.sync(&mut updates, job.uid).await;
        let at = find_tagged(&out, &job.tag);
        out.splice(at..at, updates);
        Reply::new(out, Next::Command)
    }

    async fn fetch_batch(
        &mut self,
        job: &mut FetchJob,
        chunk: &[usize],
        out: &mut Vec<u8>,
    ) -> Result<(), CoreError> {
        let access = self.access().clone();
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let id = sel.id;
        let uids: Vec<u32> = chunk.iter().map(|&i| sel.msgs[i].uid).collect();
        let mut structures: HashMap<u32, Structure> = HashMap::new();
        let records = if job.structure_only {
            // ENVELOPE and BODYSTRUCTURE come from what was computed before;
            // only messages never asked about are read and parsed.
            let derived = self
                .core
                .fetch_derived(&access, id, &uids, STRUCTURE_KIND, job.purpose)
                .await?;
            let mut remember = Vec::new();
            let mut records = Vec::with_capacity(derived.len());
            let mut unkept_headers = Vec::new();
            for d in derived {
                let (structure, raw) =
                    match (d.derived.as_deref().and_then(Structure::decode), d.raw) {
                        (Some(s), _) => (s, None),
                        (None, Some(raw)) => {
                            let s = Structure::compute(&raw);
                            remember.push((d.record.uid, s.encode()));
                            (s, Some(raw))
                        }
                        (None, None) => (Structure::default(), None),
                    };
                // Header sections are rendered from the kept header (a
                // message of its own: the same header, an empty body).
                let raw = raw.or_else(|| structure.header.clone());
                if raw.is_none() && job.atts.iter().any(is_header_section) {
                    unkept_headers.push(d.record.uid);
                }
                structures.insert(d.record.uid, structure);
                records.push((d.record, raw));
            }
            if !unkept_headers.is_empty() {
                // Headers too long to keep: read those messages.
                let mut whole: HashMap<u32, Option<Vec<u8>>> = self
                    .core
                    .fetch_messages(&access, id, &unkept_headers, true, job.purpose)
                    .await?
                    .into_iter()
                    .map(|(r, raw)| (r.uid, raw))
                    .collect();
                for (record, raw) in &mut records {
                    if let Some(found) = whole.remove(&record.uid) {
                        *raw = found;
                    }
                }
            }
            if !remember.is_empty()
                && let Err(e) = self
                    .core
                    .remember(&access, id, STRUCTURE_KIND, remember)
                    .await
            {
                // Only a lost shortcut: the next FETCH computes it again.
                tracing::debug!(error = %e, "could not keep IMAP structures");
            }
            records
        } else {
            self.core
                .fetch_messages(&access, id, &uids, job.needs_raw, job.purpose)
                .await?
        };
        let mut flags_changed: Vec<u32> = Vec::new();
        if job.sets_seen {
            let unseen: Vec<u32> = records
                .iter()
                .filter(|(r, _)| !r.flags.contains(SystemFlags::SEEN))
                .map(|(r, _)| r.uid)
                .collect();
            if !unseen.is_empty() {
                let changed = self
                    .core
                    .set_flags(
                        &access,
                        id,
                        &unseen,
                        FlagChange::Add(SystemFlags(SystemFlags::SEEN), vec![]),
                    )
                    .await?;
                if let Some(sel) = self.selected.as_mut() {
                    for (uid, modseq) in changed {
                        if let Some(i) = sel.index_of_uid(uid) {
                            sel.msgs[i].flags.0 |= SystemFlags::SEEN;
                            sel.msgs[i].modseq = modseq;
                            flags_changed.push(uid);
                        }
                    }
                }
            }
        }
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        // The records are fresher than the view: take their flags, and say so.
        for (record, _) in &records {
            if let Some(i) = sel.index_of_uid(record.uid)
                && sel.msgs[i].modseq < record.modseq
            {
                let m = &mut sel.msgs[i];
                m.flags = record.flags;
                m.keywords = record.keywords.clone();
                m.modseq = record.modseq;
                flags_changed.push(record.uid);
            }
        }
        let sel = &*sel;
        // Room for the messages at once: growing a batch of megabytes by
        // doubling copied it about twice more (seen as memmove in profiles).
        out.reserve(
            records
                .iter()
                .map(|(_, raw)| raw.as_ref().map_or(0, Vec::len) + 256)
                .sum(),
        );
        for (record, raw) in &records {
            let Some(i) = sel.index_of_uid(record.uid) else {
                continue;
            };
            let m = &sel.msgs[i];
            // Parsed only when an item needs the structure (not for BODY[]).
            let parsed: std::cell::OnceCell<Option<Mime<'_>>> = std::cell::OnceCell::new();
            let mime = || {
                parsed
                    .get_or_init(|| {
                        raw.as_deref().map(|r| {
                            if job.deep_mime {
                                Mime::parse(r)
                            } else {
                                Mime::parse_top(r)
                            }
                        })
                    })
                    .as_ref()
            };
            out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !first {
                    out.push(b' ');
                }
                first = false;
            };
            let mut wrote_flags = false;
            for att in &job.atts {
                sep(out);
                match att {
                    FetchAtt::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
                    FetchAtt::Flags => {
                        wrote_flags = true;
                        out.extend_from_slice(
                            format!("FLAGS {}", render::flags(m.flags, &m.keywords)).as_bytes(),
                        );
                    }
                    FetchAtt::InternalDate => out.extend_from_slice(
                        format!("INTERNALDATE {}", render::internal_date(m.received_at)).as_bytes(),
                    ),
                    FetchAtt::Rfc822Size => {
                        out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes())
                    }
                    FetchAtt::ModSeq => {
                        out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes())
                    }
                    FetchAtt::EmailId => out
                        .extend_from_slice(format!("EMAILID ({})", email_id(m.message)).as_bytes()),
                    FetchAtt::ThreadId => out.extend_from_slice(
                        format!("THREADID ({})", thread_id(m.thread)).as_bytes(),
                    ),
                    FetchAtt::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        if let Some(st) = structures.get(&m.uid) {
                            out.extend_from_slice(&st.envelope);
                        } else if let Some(mm) = mime() {
                            render::envelope(out, mm, &mm.root);
                        }
                    }
                    FetchAtt::BodyStructure | FetchAtt::Body => {
                        let extended = *att == FetchAtt::BodyStructure;
                        out.extend_from_slice(if extended {
                            b"BODYSTRUCTURE "
                        } else {
                            b"BODY "
                        });
                        if let Some(st) = structures.get(&m.uid) {
                            out.extend_from_slice(if extended {
                                &st.body_structure
                            } else {
                                &st.body
                            });
                        } else if let Some(mm) = mime() {
                            render::body_structure(out, mm, &mm.root, extended);
                        }
                    }
                    FetchAtt::BinarySize(part) => {
                        let size = mime()
                            .and_then(|mm| mm.binary(part))
                            .map(|r| r.map(|b| b.len()));
                        match size {
                            Some(Ok(n)) => out.extend_from_slice(
                                format!("BINARY.SIZE[{}] {n}", join_parts(part)).as_bytes(),
                            ),
                            Some(Err(_)) => {
                                job.unknown_cte = true;
                                out.extend_from_slice(
                                    format!("BINARY.SIZE[{}] 0", join_parts(part)).as_bytes(),
                                );
                            }
                            None => out.extend_from_slice(
                                format!("BINARY.SIZE[{}] 0", join_parts(part)).as_bytes(),
                            ),
                        }
                    }
                    FetchAtt::Section {
                        name,
                        section,
                        partial,
                        ..
                    } => {
                        let Some(whole) = raw.as_deref() else {
                            continue;
                        };
                        let data = if section.part.is_empty() && section.text.is_none() {
                            Some(Cow::Borrowed(whole))
                        } else if *name == SectionName::Binary {
                            let Some(mm) = mime() else { continue };
                            match mm.binary(&section.part) {
                                Some(Ok(d)) => Some(Cow::Owned(d)),
                                Some(Err(_)) => {
                                    job.unknown_cte = true;
                                    None
                                }
                                None => None,
                            }
                        } else {
                            mime().and_then(|mm| mm.section(section)).map(Cow::Owned)
                        };
                        out.extend_from_slice(section_label(*name, section, *partial).as_bytes());
                        out.push(b' ');
                        match data {
                            None => out.extend_from_slice(b"NIL"),
                            Some(d) => {
                                let d: &[u8] = match partial {
                                    Some((o, l)) => {
                                        let start = (*o as usize).min(d.len());
                                        let end = start.saturating_add(*l as usize).min(d.len());
                                        &d[start..end]
                                    }
                                    None => &d,
                                };
                                if *name == SectionName::Binary && d.contains(&0) {
                                    out.push(b'~');
                                    render::literal(out, d);
                                } else if d.is_empty() {
                                    out.extend_from_slice(b"\"\"");
                                } else {
                                    render::literal(out, d);
                                }
                            }
                        }
                    }
                }
            }
            if flags_changed.contains(&m.uid) && !wrote_flags {
                sep(out);
                out.extend_from_slice(
                    format!("FLAGS {}", render::flags(m.flags, &m.keywords)).as_bytes(),
                );
            }
            out.extend_from_slice(b")\r\n");
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SequenceSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: &[String],
    ) -> Reply {
        if unchanged_since.is_some() {
            self.condstore = true;
        }
        let (system, keywords) = match parse_flags(flags) {
            Ok(f) => f,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        if sel.read_only {
            return Reply::new(no(tag, "[READ-ONLY] Mailbox is read-only"), Next::Command);
        }
        let indices = match sel.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let (eligible, modified): (Vec<usize>, Vec<usize>) = indices
            .into_iter()
            .filter(|&i| !sel.msgs[i].expunged)
            .partition(|&i| unchanged_since.is_none_or(|us| sel.msgs[i].modseq <= us));
        let uids: Vec<u32> = eligible.iter().map(|&i| sel.msgs[i].uid).collect();
        let modified: Vec<u32> = modified
            .iter()
            .map(|&i| if uid { sel.msgs[i].uid } else { i as u32 + 1 })
            .collect();
        let change = match mode {
            StoreMode::Replace => FlagChange::Set(system, keywords),
            StoreMode::Add => FlagChange::Add(system, keywords),
            StoreMode::Remove => FlagChange::Remove(system, keywords),
        };
        let id = sel.id;
        let changed = match self
            .core
            .set_flags(self.access(), id, &uids, change.clone())
            .await
        {
            Ok(c) => c,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let condstore = self.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        for &(u, modseq) in &changed {
            if let Some(i) = sel.index_of_uid(u) {
                let m = &mut sel.msgs[i];
                let (f, k) = change.apply(m.flags, &m.keywords);
                m.flags = f;
                m.keywords = k;
                m.modseq = modseq;
            }
        }
        let mut out = Vec::new();
        for &i in &eligible {
            let m = &sel.msgs[i];
            let was_changed = changed.iter().any(|(u, _)| *u == m.uid);
            if silent && !(condstore && was_changed) {
                continue;
            }
            let mut parts = Vec::new();
            if uid {
                parts.push(format!("UID {}", m.uid));
            }
            if !silent {
                parts.push(format!("FLAGS {}", render::flags(m.flags, &m.keywords)));
            }
            if condstore {
                parts.push(format!("MODSEQ ({})", m.modseq));
            }
            out.extend_from_slice(
                format!("* {} FETCH ({})\r\n", i + 1, parts.join(" ")).as_bytes(),
            );
        }
        if modified.is_empty() {
            out.extend(ok(tag, "Store completed"));
        } else {
            out.extend(ok(
                tag,
                &format!(
                    "[MODIFIED {}] Conditional store failed",
                    compact_set(&modified)
                ),
            ));
        }
        Reply::new(out, Next::Command)
    }

    async fn copy(
        &mut self,
        tag: &str,
        uid: bool,
        remove: bool,
        set: &SequenceSet,
        target: &str,
    ) -> Reply {
        let target = match self.internal_name(target) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        if remove && sel.read_only {
            return Reply::new(no(tag, "[READ-ONLY] Mailbox is read-only"), Next::Command);
        }
        let indices = match sel.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let uids: Vec<u32> = indices
            .iter()
            .filter(|&&i| !sel.msgs[i].expunged)
            .map(|&i| sel.msgs[i].uid)
            .collect();
        let source = sel.id;
        let target = match self.find(&target).await {
            Ok(m) => m,
            Err(CoreError::NotFound { .. }) => {
                return Reply::new(no(tag, "[TRYCREATE] No such mailbox"), Next::Command);
            }
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        if uids.is_empty() {
            return Reply::new(ok(tag, "No messages"), Next::Command);
        }
        let pairs = match self
            .core
            .copy_messages(self.access(), source, &uids, target.id, remove)
            .await
        {
            Ok(p) => p,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let from: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let to: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let code = format!(
            "[COPYUID {} {} {}]",
            target.uid_validity,
            compact_set(&from),
            compact_set(&to)
        );
        if !remove {
            return Reply::new(ok(tag, &format!("{code} Copy completed")), Next::Command);
        }
        let mut out = format!("* OK {code} Moved\r\n").into_bytes();
        let qresync = self.qresync;
        if let Some(sel) = self.selected.as_mut() {
            write_expunges(&mut out, sel, &from, qresync);
        }
        out.extend(ok(tag, "Move completed"));
        Reply::new(out, Next::Command)
    }
}

/// Removes the messages with these UIDs from the view, writing EXPUNGE
/// (highest sequence number first, so that none shifts) or VANISHED.
fn write_expunges(out: &mut Vec<u8>, sel: &mut Selected, uids: &[u32], qresync: bool) {
    let mut indices: Vec<usize> = uids.iter().filter_map(|&u| sel.index_of_uid(u)).collect();
    if indices.is_empty() {
        return;
    }
    indices.sort_unstable();
    if qresync {
        let mut gone: Vec<u32> = indices.iter().map(|&i| sel.msgs[i].uid).collect();
        gone.sort_unstable();
        out.extend_from_slice(format!("* VANISHED {}\r\n", compact_set(&gone)).as_bytes());
    } else {
        for &i in indices.iter().rev() {
            out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
        }
    }
    for &i in indices.iter().rev() {
        if sel.msgs[i].expunged {
            sel.expunged_pending -= 1;
        }
        sel.msgs.remove(i);
    }
}

/// Reports (and drops from the view) messages expunged elsewhere.
fn write_pending_expunges(out: &mut Vec<u8>, sel: &mut Selected, qresync: bool) {
    if sel.expunged_pending == 0 {
        return;
    }
    let gone: Vec<u32> = sel
        .msgs
        .iter()
        .filter(|m| m.expunged)
        .map(|m| m.uid)
        .collect();
    write_expunges(out, sel, &gone, qresync);
}

/// Where the tagged line for `tag` starts in `out` (its end if none).
fn find_tagged(out: &[u8], tag: &str) -> usize {
    let needle = format!("{tag} ");
    let mut pos = 0;
    let mut last = out.len();
    while pos < out.len() {
        let end = out[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(out.len(), |p| pos + p + 1);
        if out[pos..end].starts_with(needle.as_bytes()) {
            last = pos;
        }
        pos = end;
    }
    last
}

fn join_parts(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn section_label(name: SectionName, section: &Section, partial: Option<(u32, u32)>) -> String {
    let mut label = match name {
        SectionName::Rfc822 => return "RFC822".into(),
        SectionName::Rfc822Header => return "RFC822.HEADER".into(),
        SectionName::Rfc822Text => return "RFC822.TEXT".into(),
        SectionName::Body => String::from("BODY["),
        SectionName::Binary => String::from("BINARY["),
    };
    label.push_str(&join_parts(&section.part));
    if let Some(text) = &section.text {
        if !section.part.is_empty() {
            label.push('.');
        }
        match text {
            SectionText::Header => label.push_str("HEADER"),
            SectionText::Text => label.push_str("TEXT"),
            SectionText::Mime => label.push_str("MIME"),
            SectionText::HeaderFields(f) => {
                label.push_str(&format!("HEADER.FIELDS ({})", f.join(" ")))
            }
            SectionText::HeaderFieldsNot(f) => {
                label.push_str(&format!("HEADER.FIELDS.NOT ({})", f.join(" ")))
            }
        }
    }
    label.push(']');
    if let Some((o, _)) = partial {
        label.push_str(&format!("<{o}>"));
    }
    label
}

/// Splits IMAP flags into system flags and keywords; `\Recent` is ignored.
fn parse_flags(flags: &[String]) -> Result<(SystemFlags, Vec<String>), String> {
    let mut system = 0;
    let mut keywords = Vec::new();
    for f in flags {
        if let Some(name) = f.strip_prefix('\\') {
            system |= match name.to_ascii_lowercase().as_str() {
                "seen" => SystemFlags::SEEN,
                "answered" => SystemFlags::ANSWERED,
                "flagged" => SystemFlags::FLAGGED,
                "deleted" => SystemFlags::DELETED,
                "draft" => SystemFlags::DRAFT,
                "recent" => 0,
                _ => return Err(format!("Unknown system flag {f}")),
            };
        } else {
            if f.is_empty()
                || f.len() > 128
                || f.bytes()
                    .any(|b| b <= b' ' || b >= 0x7f || b"(){%*\"\\]".contains(&b))
            {
                return Err(format!("Invalid keyword {f:?}"));
            }
            if !keywords.iter().any(|k: &String| k.eq_ignore_ascii_case(f)) {
                keywords.push(f.clone());
            }
        }
    }
    Ok((SystemFlags(system), keywords))
}

fn serde_json_summary(s: &str) -> Option<MessageSummary> {
    rampart_core::parse_summary(s)
}

#[cfg(test)]
mod tests {
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
        assert_eq!(find_tagged(out, "a1"), 12);
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
