//! One `imap-stress` client's model of the selected mailbox, kept from the
//! server's responses as RFC 9051 says a client must keep it, and the
//! checks of each response against it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::stress_message::{header_of, stress_id, stress_message};
use crate::stress_wire::{Code, Status, Val};

/// Protocol errors found by one client, counted by kind; the first few of
/// each kind are printed as they happen.
pub struct Report {
    client: usize,
    /// Errors per kind.
    pub counts: BTreeMap<&'static str, u64>,
    shown_per_kind: u64,
    trace: Option<BufWriter<File>>,
}

impl Report {
    /// A report for client `client` printing at most `shown_per_kind` errors of each kind.
    pub fn new(client: usize, shown_per_kind: u64) -> Report {
        Report {
            client,
            counts: BTreeMap::new(),
            shown_per_kind,
            trace: None,
        }
    }

    /// Writes the conversation and every error to `path` from now on.
    pub fn trace_to(&mut self, path: &Path) -> std::io::Result<()> {
        self.trace = Some(BufWriter::new(File::create(path)?));
        Ok(())
    }

    /// Whether a trace is being written.
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// One line of the trace (`direction` is C:, S: or !!).
    pub fn log(&mut self, direction: &str, text: &str) {
        if let Some(t) = &mut self.trace {
            let _ = writeln!(t, "{direction} {text}");
        }
    }

    /// Records (and maybe prints) one protocol error.
    pub fn error(&mut self, kind: &'static str, detail: impl AsRef<str>) {
        self.log("!!", &format!("{kind}: {}", detail.as_ref()));
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        if *n <= self.shown_per_kind {
            println!(
                "client {}: protocol error: {kind}: {}",
                self.client,
                detail.as_ref()
            );
        }
    }

    /// All errors recorded.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The kind of command in progress, for the rules that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// LOGIN.
    Login,
    /// SELECT.
    Select,
    /// FETCH by sequence number.
    Fetch,
    /// UID FETCH.
    UidFetch,
    /// STORE by sequence number.
    Store,
    /// UID STORE.
    UidStore,
    /// EXPUNGE.
    Expunge,
    /// APPEND.
    Append,
    /// NOOP.
    Noop,
    /// LOGOUT.
    Logout,
}

/// What the client knows of one message.
#[derive(Debug, Default, Clone)]
pub struct Msg {
    /// Its UID, once a FETCH told it.
    pub uid: Option<u32>,
    /// Its flags as the last FETCH FLAGS gave them.
    pub flags: Option<Vec<String>>,
    /// Whether it carries this client's own keyword, when the client knows
    /// (no other client sets that keyword).
    own: Option<bool>,
    /// The own keyword's state a STORE in progress asks for.
    own_pending: Option<bool>,
    /// A FETCH during that STORE showed the state it asked for.
    own_confirmed: bool,
    /// A STORE of the own keyword happened: what APPEND left is history.
    own_stored: bool,
}

/// The selected mailbox as this client's session sees it.
pub struct Mailbox {
    /// Messages by sequence number - 1.
    pub msgs: Vec<Msg>,
    /// Keywords of the latest untagged FLAGS response, lowercased.
    keywords: HashSet<String>,
    /// Keywords a FETCH showed that that FLAGS response lacks (reported).
    unannounced: HashSet<String>,
    /// Whether any FLAGS response came.
    pub got_flags: bool,
    /// Whether any PERMANENTFLAGS response code came.
    pub got_permanentflags: bool,
    uidvalidity: Option<u32>,
    /// UIDs of expunged messages: never to be seen again (RFC 9051 §2.3.1.1).
    expunged: HashSet<u32>,
    /// Own-keyword state of messages this client appended, by UID, until a FETCH places them.
    own_by_uid: HashMap<u32, bool>,
    /// Ids of the messages this client appended, by UID.
    appended_ids: HashMap<u32, String>,
    own_kw: String,
    /// Bodies fetched as NIL (see `fetch`).
    pub nil_bodies: u64,
}

/// System flags of RFC 9051 §2.3.2 (and `\Recent` of IMAP4rev1).
const SYSTEM_FLAGS: [&str; 6] = [
    "\\seen",
    "\\answered",
    "\\flagged",
    "\\deleted",
    "\\draft",
    "\\recent",
];

impl Mailbox {
    /// An empty model; `own_kw` is the keyword only this client sets.
    pub fn new(own_kw: &str) -> Mailbox {
        Mailbox {
            msgs: Vec::new(),
            keywords: HashSet::new(),
            unannounced: HashSet::new(),
            got_flags: false,
            got_permanentflags: false,
            uidvalidity: None,
            expunged: HashSet::new(),
            own_by_uid: HashMap::new(),
            appended_ids: HashMap::new(),
            own_kw: own_kw.to_ascii_lowercase(),
            nil_bodies: 0,
        }
    }

    /// `* n EXISTS`.
    pub fn exists(&mut self, n: u32, rep: &mut Report) {
        let n = n as usize;
        if n < self.msgs.len() {
            // RFC 9051 §7.4.1 / §5.2: only EXPUNGE may make the mailbox smaller.
            rep.error(
                "EXISTS decreased without EXPUNGE",
                format!("EXISTS {n} after {}", self.msgs.len()),
            );
            self.msgs.truncate(n);
        }
        self.msgs.resize_with(n, Msg::default);
    }

    /// `* n EXPUNGE`: the message goes and every later one moves down one
    /// (RFC 9051 §7.5.1).
    pub fn expunge(&mut self, n: u32, kind: Kind, rep: &mut Report) {
        if matches!(kind, Kind::Fetch | Kind::Store) {
            // RFC 9051 §7.5.1: not while responding to FETCH, STORE or SEARCH.
            rep.error(
                "EXPUNGE during FETCH/STORE",
                format!("* {n} EXPUNGE during {kind:?}"),
            );
        }
        if n == 0 || n as usize > self.msgs.len() {
            rep.error(
                "EXPUNGE of a nonexistent sequence number",
                format!("* {n} EXPUNGE with {} messages", self.msgs.len()),
            );
            return;
        }
        let gone = self.msgs.remove(n as usize - 1);
        if let Some(uid) = gone.uid {
            self.expunged.insert(uid);
        }
    }

    /// `* FLAGS (...)`: from now on the keywords a FETCH may show (RFC 9051 §7.3.5).
    pub fn flags(&mut self, flags: &[String]) {
        self.got_flags = true;
        self.unannounced.clear();
        self.keywords = flags
            .iter()
            .filter(|f| !f.starts_with('\\'))
            .map(|f| f.to_ascii_lowercase())
            .collect();
    }

    /// A response code in an untagged or tagged response.
    pub fn code(&mut self, code: &Code, rep: &mut Report) {
        match code {
            Code::PermanentFlags(flags) => {
                self.got_permanentflags = true;
                // RFC 9051 §7.1: `\*` says new keywords may be created; the
                // stress client creates them.
                if !flags.iter().any(|f| f == "\\*") {
                    rep.error(
                        "PERMANENTFLAGS lacking \\*",
                        format!("PERMANENTFLAGS ({})", flags.join(" ")),
                    );
                }
            }
            Code::UidValidity(v) => {
                if self.uidvalidity.is_some_and(|old| old != *v) {
                    rep.error(
                        "UIDVALIDITY changed",
                        format!("{:?} -> {v}", self.uidvalidity),
                    );
                }
                self.uidvalidity = Some(*v);
            }
            _ => {}
        }
    }

    /// An untagged status response: NO, BAD and BYE are not expected.
    pub fn untagged_status(&mut self, status: Status, text: &str, kind: Kind, rep: &mut Report) {
        match status {
            Status::Bad => rep.error("untagged BAD", text),
            Status::No => rep.error("untagged NO", text),
            Status::Bye if kind != Kind::Logout => rep.error("unexpected BYE", text),
            Status::Preauth => rep.error("unexpected PREAUTH", text),
            _ => {}
        }
    }

    /// `* n FETCH (...)`.
    pub fn fetch(&mut self, n: u32, items: &[(String, Val)], kind: Kind, rep: &mut Report) {
        let count = self.msgs.len();
        if n == 0 || n as usize > count {
            // RFC 9051 §7.5.2: the number is a message's sequence number.
            rep.error(
                "FETCH for a sequence number > EXISTS",
                format!("* {n} FETCH with {count} messages"),
            );
            return;
        }
        let at = n as usize - 1;
        let mut uid = self.msgs[at].uid;
        let mut body_id = None;
        let mut body_len = None;
        let mut size = None;
        for (name, value) in items {
            match name.as_str() {
                "UID" => match atom_number(value) {
                    Some(u) if u > 0 => {
                        self.check_uid(at, u, rep);
                        uid = Some(u);
                    }
                    _ => rep.error("bad FETCH data", format!("UID {value:?}")),
                },
                "FLAGS" => match value {
                    Val::List(items) => {
                        let flags: Vec<String> = items
                            .iter()
                            .filter_map(|v| match v {
                                Val::Atom(a) => Some(a.clone()),
                                _ => None,
                            })
                            .collect();
                        if flags.len() != items.len() {
                            rep.error("bad FETCH data", format!("FLAGS {value:?}"));
                        }
                        self.check_flags(at, &flags, rep);
                        self.msgs[at].flags = Some(flags);
                    }
                    _ => rep.error("bad FETCH data", format!("FLAGS {value:?}")),
                },
                "RFC822.SIZE" => size = atom_number(value),
                "BODY[]" | "BODY[HEADER]" => {
                    // RFC 2180 §4.1.3: a message another session expunged
                    // may be fetched as NIL until this session is told of
                    // the expunge (Dovecot does so for UID FETCH too);
                    // counted, not an error.
                    if *value == Val::Nil && matches!(kind, Kind::Fetch | Kind::UidFetch) {
                        self.nil_bodies += 1;
                        continue;
                    }
                    let Val::Str(octets) = value else {
                        rep.error("bad FETCH data", format!("{name} is {value:?}"));
                        continue;
                    };
                    if name == "BODY[]" {
                        body_len = Some(octets.len());
                    }
                    if let Some(id) = stress_id(octets) {
                        let expect = stress_message(&id);
                        let expect = if name == "BODY[]" {
                            &expect[..]
                        } else {
                            header_of(&expect)
                        };
                        if octets != expect {
                            rep.error(
                                "message data differs from what was appended",
                                format!(
                                    "{name} of message {id}: {} octets, expected {}",
                                    octets.len(),
                                    expect.len()
                                ),
                            );
                        }
                        body_id = Some(id);
                    }
                }
                _ => {}
            }
        }
        if let (Some(size), Some(len)) = (size, body_len)
            && size as usize != len
        {
            rep.error(
                "RFC822.SIZE differs from BODY[]",
                format!("seq {n}: RFC822.SIZE {size}, BODY[] {len} octets"),
            );
        }
        if let (Some(uid), Some(id)) = (uid, body_id)
            && let Some(appended) = self.appended_ids.get(&uid)
            && *appended != id
        {
            rep.error(
                "FETCH returned another message's data",
                format!("UID {uid} was appended as {appended}, FETCH shows {id}"),
            );
        }
    }

    /// A UID a FETCH gives message `at`: fixed for the message, ascending
    /// with sequence numbers, never reused (RFC 9051 §2.3.1.1).
    fn check_uid(&mut self, at: usize, uid: u32, rep: &mut Report) {
        let msg = &self.msgs[at];
        if let Some(old) = msg.uid {
            if old != uid {
                rep.error(
                    "UID changed",
                    format!("seq {} had UID {old}, now {uid}", at + 1),
                );
                self.msgs[at].uid = Some(uid);
            }
            return;
        }
        if self.expunged.contains(&uid) {
            rep.error(
                "UID of an expunged message reused",
                format!("seq {} has UID {uid}", at + 1),
            );
        }
        if let Some((k, before)) = self.msgs[..at]
            .iter()
            .enumerate()
            .rev()
            .find_map(|(k, m)| m.uid.map(|u| (k, u)))
            && before >= uid
        {
            rep.error(
                "UID going backwards or duplicated",
                format!("seq {} UID {before}, seq {} UID {uid}", k + 1, at + 1),
            );
        }
        if let Some((k, after)) = self.msgs[at + 1..]
            .iter()
            .enumerate()
            .find_map(|(k, m)| m.uid.map(|u| (k, u)))
            && after <= uid
        {
            rep.error(
                "UID going backwards or duplicated",
                format!("seq {} UID {uid}, seq {} UID {after}", at + 1, at + k + 2),
            );
        }
        let msg = &mut self.msgs[at];
        msg.uid = Some(uid);
        if let Some(own) = self.own_by_uid.remove(&uid)
            && !msg.own_stored
        {
            msg.own = Some(own);
        }
    }

    /// Flags a FETCH gives message `at`.
    fn check_flags(&mut self, at: usize, flags: &[String], rep: &mut Report) {
        let mut has_own = false;
        for f in flags {
            let lower = f.to_ascii_lowercase();
            if lower.starts_with('\\') {
                // RFC 9051 §2.3.2: servers send no flag-extension flags
                // but those defined by a standard.
                if !SYSTEM_FLAGS.contains(&lower.as_str()) {
                    rep.error("unknown system flag", format!("seq {} {f}", at + 1));
                }
                continue;
            }
            if lower == self.own_kw {
                has_own = true;
            }
            // RFC 9051 §7.3.5: a keyword new to the mailbox comes with a
            // new FLAGS response, before any FETCH shows it.
            // Reported once per keyword until the next FLAGS response.
            if !self.keywords.contains(&lower) && self.unannounced.insert(lower.clone()) {
                rep.error(
                    "keyword used without being in FLAGS",
                    format!("seq {} has {f}", at + 1),
                );
            }
        }
        let msg = &mut self.msgs[at];
        if let Some(want) = msg.own_pending {
            // During the STORE that changes it, the old state may still show.
            if has_own == want {
                msg.own_confirmed = true;
            } else if msg.own.is_some_and(|old| old != has_own) {
                rep.error(
                    "flag change lost",
                    format!(
                        "seq {} UID {:?}: {} {} during a STORE",
                        at + 1,
                        msg.uid,
                        self.own_kw,
                        if has_own { "set" } else { "missing" }
                    ),
                );
            }
        } else if let Some(want) = msg.own
            && want != has_own
        {
            rep.error(
                "flag change lost",
                format!(
                    "seq {} UID {:?}: {} should be {}, FETCH FLAGS shows ({})",
                    at + 1,
                    msg.uid,
                    self.own_kw,
                    if want { "set" } else { "clear" },
                    flags.join(" ")
                ),
            );
            msg.own = Some(has_own);
        }
    }

    /// A STORE of the own keyword on message `at` begins; `set` is + or -.
    pub fn store_own_begins(&mut self, at: usize, set: bool) {
        if let Some(m) = self.msgs.get_mut(at) {
            m.own_pending = Some(set);
            m.own_confirmed = false;
            m.own_stored = true;
        }
    }

    /// The STORE ended (`ok`: with OK). Where a FETCH showed the asked-for
    /// state the client now knows it; elsewhere (the message may have gone
    /// meanwhile) it no longer does.
    pub fn store_own_ends(&mut self, ok: bool) {
        for m in &mut self.msgs {
            if let Some(want) = m.own_pending.take() {
                m.own = (ok && m.own_confirmed).then_some(want);
                m.own_confirmed = false;
            }
        }
    }

    /// This client appended message `id` as `uid`, with its own keyword or not.
    pub fn appended(&mut self, uid: u32, id: String, own: bool) {
        self.appended_ids.insert(uid, id);
        match self.msgs.iter_mut().find(|m| m.uid == Some(uid)) {
            Some(m) => m.own = Some(own),
            None => {
                self.own_by_uid.insert(uid, own);
            }
        }
    }
}

fn atom_number(v: &Val) -> Option<u32> {
    match v {
        Val::Atom(a) => a.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid_fetch(mb: &mut Mailbox, seq: u32, uid: u32, rep: &mut Report) {
        mb.fetch(
            seq,
            &[("UID".into(), Val::Atom(uid.to_string()))],
            Kind::Fetch,
            rep,
        );
    }

    #[test]
    fn expunge_renumbers_as_in_rfc_9051_example() {
        // RFC 9051 §6.4.3: messages 3, 4, 7 and 11 had \Deleted set:
        // "* 3 EXPUNGE", "* 3 EXPUNGE", "* 5 EXPUNGE", "* 8 EXPUNGE".
        let mut rep = Report::new(0, 0);
        let mut mb = Mailbox::new("own0");
        mb.exists(11, &mut rep);
        for n in 1..=11 {
            uid_fetch(&mut mb, n, n * 10, &mut rep);
        }
        for n in [3, 3, 5, 8] {
            mb.expunge(n, Kind::Expunge, &mut rep);
        }
        let uids: Vec<u32> = mb.msgs.iter().filter_map(|m| m.uid).collect();
        assert_eq!(uids, [10, 20, 50, 60, 80, 90, 100]);
        assert_eq!(rep.total(), 0);
        // A fifth one would name a sequence number no longer there.
        mb.expunge(8, Kind::Expunge, &mut rep);
        assert_eq!(rep.counts["EXPUNGE of a nonexistent sequence number"], 1);
        // An expunged message's UID may not come back (RFC 9051 §2.3.1.1).
        mb.exists(8, &mut rep);
        uid_fetch(&mut mb, 8, 110, &mut rep);
        assert_eq!(rep.counts["UID of an expunged message reused"], 1);
    }

    #[test]
    fn uids_must_ascend_and_fetch_stay_within_exists() {
        let mut rep = Report::new(0, 0);
        let mut mb = Mailbox::new("own0");
        mb.exists(3, &mut rep);
        uid_fetch(&mut mb, 1, 5, &mut rep);
        uid_fetch(&mut mb, 2, 5, &mut rep);
        assert_eq!(rep.counts["UID going backwards or duplicated"], 1);
        uid_fetch(&mut mb, 4, 9, &mut rep);
        assert_eq!(rep.counts["FETCH for a sequence number > EXISTS"], 1);
        mb.exists(2, &mut rep);
        assert_eq!(rep.counts["EXISTS decreased without EXPUNGE"], 1);
    }

    #[test]
    fn keywords_need_a_flags_response_first() {
        // RFC 9051 §7.3.5: FLAGS lists the flags applicable to the mailbox.
        let mut rep = Report::new(0, 0);
        let mut mb = Mailbox::new("own0");
        mb.flags(&["\\Seen".into(), "$Junk".into()]);
        mb.exists(1, &mut rep);
        let flags = |f: &[&str]| {
            vec![(
                "FLAGS".to_string(),
                Val::List(f.iter().map(|s| Val::Atom(s.to_string())).collect()),
            )]
        };
        mb.fetch(1, &flags(&["\\Seen", "$junk"]), Kind::Fetch, &mut rep);
        assert_eq!(rep.total(), 0);
        mb.fetch(1, &flags(&["$Junk", "kw1"]), Kind::Fetch, &mut rep);
        assert_eq!(rep.counts["keyword used without being in FLAGS"], 1);
        mb.flags(&["\\Seen".into(), "$Junk".into(), "kw1".into()]);
        mb.fetch(1, &flags(&["$Junk", "kw1"]), Kind::Fetch, &mut rep);
        assert_eq!(rep.total(), 1);
        mb.code(&Code::PermanentFlags(vec!["\\Seen".into()]), &mut rep);
        assert_eq!(rep.counts["PERMANENTFLAGS lacking \\*"], 1);
    }

    #[test]
    fn a_lost_own_keyword_is_reported() {
        let mut rep = Report::new(0, 0);
        let mut mb = Mailbox::new("own0");
        mb.flags(&["own0".into()]);
        mb.exists(1, &mut rep);
        let with = vec![(
            "FLAGS".to_string(),
            Val::List(vec![Val::Atom("own0".into())]),
        )];
        let without = vec![("FLAGS".to_string(), Val::List(vec![]))];
        mb.store_own_begins(0, true);
        mb.fetch(1, &with, Kind::Store, &mut rep);
        mb.store_own_ends(true);
        mb.fetch(1, &with, Kind::Noop, &mut rep);
        assert_eq!(rep.total(), 0);
        mb.fetch(1, &without, Kind::Noop, &mut rep);
        assert_eq!(rep.counts["flag change lost"], 1);
    }
}
