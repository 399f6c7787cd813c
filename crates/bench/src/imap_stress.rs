#![forbid(unsafe_code)]
//! IMAP stress client: N clients on one mailbox of one account each run a
//! random mix of FETCH, STORE (system flags and keywords), EXPUNGE, APPEND
//! (with keywords) and NOOP for D seconds, keep a model of the mailbox from
//! the server's responses as RFC 9051 requires a client to, and report every
//! response that breaks the protocol. Prints one summary line per client and
//! `protocol_errors=N`; exits 1 when N > 0. It deletes and adds messages:
//! point it at a throwaway account.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod stress_message;
mod stress_model;
mod stress_wire;

use stress_message::stress_message;
use stress_model::{Kind, Mailbox, Report};
use stress_wire::{Code, Oddity, Raw, Resp, Status, parse, read_response};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 143)]
    port: u16,
    /// Login name.
    #[arg(long)]
    user: String,
    /// Password.
    #[arg(long)]
    password: String,
    /// Mailbox all clients select.
    #[arg(long, default_value = "INBOX")]
    mailbox: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Seconds each client runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seed of the random choices (client k uses seed + k).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds to wait for a server's response before calling it lost.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Errors of each kind printed per client (all are counted).
    #[arg(long, default_value_t = 5)]
    show: u64,
    /// Directory to write each client's conversation to (client-N.log;
    /// literals elided), to see what led to an error.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

/// Keywords the clients share (and so introduce to each other's sessions).
const KEYWORDS: [&str; 4] = ["$Forwarded", "$Junk", "$label1", "NonJunk"];
/// How many random `kwN` keywords there are.
const RANDOM_KEYWORDS: u64 = 10;
/// System flags a STORE may set or clear (`\Deleted` goes separately).
const SYSTEM: [&str; 4] = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"];
/// The mailbox size the clients steer towards: more appends below, more
/// deletions above.
const LOW: usize = 30;
const HIGH: usize = 300;

/// SplitMix64: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Counts of what one client did.
#[derive(Default)]
struct Ops {
    fetch: u64,
    store: u64,
    expunge: u64,
    append: u64,
    noop: u64,
    /// NO answers where a concurrent expunge makes one legitimate.
    expected_no: u64,
}

/// How a command ended.
struct Done {
    status: Status,
    code: Option<Code>,
    text: String,
}

/// Why a client stopped early.
enum Stop {
    /// The connection failed or the server went silent (already reported).
    Lost,
}

struct Session {
    id: usize,
    r: BufReader<TcpStream>,
    n: u64,
    rng: Rng,
    mb: Mailbox,
    rep: Report,
    ops: Ops,
    own_kw: String,
    seed: u64,
    appended: u64,
    timeout: Duration,
    oddities: Vec<Oddity>,
}

impl Session {
    async fn connect(args: &Args, id: usize) -> anyhow::Result<Session> {
        let stream = TcpStream::connect((args.host.as_str(), args.port)).await?;
        stream.set_nodelay(true)?;
        let own_kw = format!("own{id}");
        let mut rep = Report::new(id, args.show);
        if let Some(dir) = &args.trace {
            rep.trace_to(&dir.join(format!("client-{id}.log")))?;
        }
        Ok(Session {
            id,
            r: BufReader::with_capacity(64 * 1024, stream),
            n: 0,
            rng: Rng(args.seed.wrapping_add(id as u64)),
            mb: Mailbox::new(&own_kw),
            rep,
            ops: Ops::default(),
            own_kw,
            seed: args.seed,
            appended: 0,
            timeout: Duration::from_secs(args.timeout),
            oddities: Vec::new(),
        })
    }

    fn next_tag(&mut self) -> String {
        self.n += 1;
        format!("s{}x{}", self.id, self.n)
    }

    /// Reads one response, reporting what reading found; a lost
    /// connection or a silent server ends the client.
    async fn read(&mut self, tag: &str) -> Result<Raw, Stop> {
        let raw = match tokio::time::timeout(
            self.timeout,
            read_response(&mut self.r, tag, &mut self.oddities),
        )
        .await
        {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => {
                self.rep
                    .error("connection lost", format!("waiting for {tag}: {e}"));
                return Err(Stop::Lost);
            }
            Err(_) => {
                self.rep.error(
                    "no response",
                    format!("{tag}: nothing for {} s", self.timeout.as_secs()),
                );
                return Err(Stop::Lost);
            }
        };
        if self.rep.tracing() {
            self.rep.log("S:", &raw.show_at_most(10_000));
        }
        for o in self.oddities.drain(..) {
            self.rep.error(o.kind, o.detail);
        }
        Ok(raw)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        if self.rep.tracing() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            self.rep.log("C:", text.trim_end());
        }
        if let Err(e) = self.r.get_mut().write_all(bytes).await {
            self.rep.error("connection lost", format!("sending: {e}"));
            return Err(Stop::Lost);
        }
        Ok(())
    }

    /// Applies an untagged response to the model; `Some` for the command's
    /// tagged response, `None` otherwise.
    fn handle(&mut self, raw: &Raw, tag: &str, kind: Kind) -> Option<Done> {
        let resp = match parse(raw) {
            Ok(resp) => resp,
            Err(why) => {
                self.rep
                    .error("unparsable response", format!("{why}: {}", raw.show()));
                // Still end the command if this was its tagged response.
                return raw.starts_with_tag(tag).then(|| Done {
                    status: Status::Bad,
                    code: None,
                    text: raw.show(),
                });
            }
        };
        match resp {
            Resp::Tagged {
                tag: t,
                status,
                code,
                text,
            } => {
                if t != tag {
                    self.rep
                        .error("tagged response to no command in progress", raw.show());
                    return None;
                }
                if let Some(code) = &code {
                    self.mb.code(code, &mut self.rep);
                }
                Some(Done { status, code, text })
            }
            Resp::Continue => {
                self.rep
                    .error("continuation request not asked for", raw.show());
                None
            }
            Resp::Untagged { status, code, text } => {
                if let Some(code) = &code {
                    self.mb.code(code, &mut self.rep);
                }
                self.mb.untagged_status(status, &text, kind, &mut self.rep);
                None
            }
            Resp::Flags(flags) => {
                self.mb.flags(&flags);
                None
            }
            Resp::Exists(n) => {
                self.mb.exists(n, &mut self.rep);
                None
            }
            Resp::Recent | Resp::Other => None,
            Resp::Expunge(n) => {
                self.mb.expunge(n, kind, &mut self.rep);
                None
            }
            Resp::Fetch(n, items) => {
                self.mb.fetch(n, &items, kind, &mut self.rep);
                None
            }
        }
    }

    /// Runs one command to its tagged response. A BAD is always a protocol
    /// error, a NO one unless `no_allowed`.
    async fn cmd(&mut self, command: &str, kind: Kind, no_allowed: bool) -> Result<Done, Stop> {
        let tag = self.next_tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await?;
        let done = self.until(&tag, kind).await?;
        self.judge(&done, command, no_allowed);
        Ok(done)
    }

    async fn until(&mut self, tag: &str, kind: Kind) -> Result<Done, Stop> {
        loop {
            let raw = self.read(tag).await?;
            if let Some(done) = self.handle(&raw, tag, kind) {
                return Ok(done);
            }
        }
    }

    fn judge(&mut self, done: &Done, command: &str, no_allowed: bool) {
        match done.status {
            Status::Ok => {}
            Status::No if no_allowed => self.ops.expected_no += 1,
            Status::No => self
                .rep
                .error("unexpected NO", format!("{command} -> {}", done.text)),
            _ => self
                .rep
                .error("unexpected BAD", format!("{command} -> {}", done.text)),
        }
    }

    async fn login_select(&mut self, args: &Args) -> Result<(), Stop> {
        let greeting = self.read("*").await?;
        match parse(&greeting) {
            Ok(Resp::Untagged {
                status: Status::Ok, ..
            }) => {}
            _ => {
                self.rep.error("bad greeting", greeting.show());
                return Err(Stop::Lost);
            }
        }
        let login = format!("LOGIN {} {}", quoted(&args.user), quoted(&args.password));
        let done = self.cmd(&login, Kind::Login, false).await?;
        if done.status != Status::Ok {
            return Err(Stop::Lost);
        }
        let done = self
            .cmd(
                &format!("SELECT {}", quoted(&args.mailbox)),
                Kind::Select,
                false,
            )
            .await?;
        if done.status != Status::Ok {
            return Err(Stop::Lost);
        }
        // RFC 9051 §6.3.2: FLAGS and PERMANENTFLAGS are required SELECT responses.
        if !self.mb.got_flags {
            self.rep.error("SELECT without FLAGS", &args.mailbox);
        }
        if !self.mb.got_permanentflags {
            self.rep
                .error("SELECT without PERMANENTFLAGS", &args.mailbox);
        }
        Ok(())
    }

    /// A random message set: `(set, uid_addressed, single message index)`.
    fn target(&mut self, whole_ok: bool) -> Option<(String, bool, Option<usize>)> {
        let count = self.mb.msgs.len();
        if count == 0 {
            return None;
        }
        let at = self.rng.below(count as u64) as usize;
        let by_uid = self.rng.chance(50);
        let shape = self.rng.below(10);
        if whole_ok && shape == 0 && count <= 1000 {
            return Some(("1:*".into(), by_uid, None));
        }
        if by_uid {
            let uid = self.mb.msgs[at].uid?;
            if shape < 7 {
                return Some((uid.to_string(), true, Some(at)));
            }
            return Some((
                format!("{uid}:{}", u64::from(uid) + self.rng.below(10)),
                true,
                None,
            ));
        }
        if shape < 7 {
            return Some(((at + 1).to_string(), false, Some(at)));
        }
        let end = (at + 1 + self.rng.below(10) as usize).min(count);
        Some((format!("{}:{end}", at + 1), false, None))
    }

    async fn fetch(&mut self) -> Result<(), Stop> {
        let mut items = Vec::new();
        for (item, percent) in [
            ("FLAGS", 70),
            ("UID", 60),
            ("BODY.PEEK[HEADER]", 25),
            ("BODY.PEEK[]", 20),
            ("RFC822.SIZE", 20),
        ] {
            if self.rng.chance(percent) {
                items.push(item);
            }
        }
        if items.is_empty() {
            items.push("FLAGS");
        }
        let bodies = items.iter().any(|i| i.starts_with("BODY"));
        let Some((set, by_uid, _)) = self.target(!bodies) else {
            return self.noop().await;
        };
        self.ops.fetch += 1;
        let (command, kind) = if by_uid {
            (
                format!("UID FETCH {set} ({})", items.join(" ")),
                Kind::UidFetch,
            )
        } else {
            (format!("FETCH {set} ({})", items.join(" ")), Kind::Fetch)
        };
        // A message another session expunged may make a FETCH by sequence
        // number fail (RFC 2180 §4.1.2); UID FETCH just leaves it out.
        self.cmd(&command, kind, !by_uid).await?;
        Ok(())
    }

    fn random_flags(&mut self) -> Vec<String> {
        let mut flags = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let f = match self.rng.below(3) {
                0 => SYSTEM[self.rng.below(SYSTEM.len() as u64) as usize].to_string(),
                1 => KEYWORDS[self.rng.below(KEYWORDS.len() as u64) as usize].to_string(),
                _ => format!("kw{}", self.rng.below(RANDOM_KEYWORDS)),
            };
            if !flags.contains(&f) {
                flags.push(f);
            }
        }
        flags
    }

    async fn store(&mut self) -> Result<(), Stop> {
        let count = self.mb.msgs.len();
        let Some((set, by_uid, single)) = self.target(false) else {
            return self.noop().await;
        };
        let add = self.rng.chance(60);
        let mut flags = self.random_flags();
        // Deletions often enough to keep the mailbox near its size band.
        let delete_percent = if count > HIGH {
            50
        } else if count < LOW {
            0
        } else {
            12
        };
        if add && self.rng.chance(delete_percent) {
            flags = vec!["\\Deleted".into()];
        } else if !add && self.rng.chance(10) {
            flags.push("\\Deleted".into());
        }
        let own = single.filter(|_| self.rng.chance(35));
        if let Some(at) = own {
            flags.push(self.own_kw.clone());
            self.mb.store_own_begins(at, add);
        }
        self.ops.store += 1;
        let sign = if add { '+' } else { '-' };
        let (command, kind) = if by_uid {
            (
                format!("UID STORE {set} {sign}FLAGS ({})", flags.join(" ")),
                Kind::UidStore,
            )
        } else {
            (
                format!("STORE {set} {sign}FLAGS ({})", flags.join(" ")),
                Kind::Store,
            )
        };
        let done = self.cmd(&command, kind, !by_uid).await?;
        if own.is_some() {
            self.mb.store_own_ends(done.status == Status::Ok);
        }
        Ok(())
    }

    async fn expunge(&mut self) -> Result<(), Stop> {
        self.ops.expunge += 1;
        self.cmd("EXPUNGE", Kind::Expunge, false).await?;
        Ok(())
    }

    async fn noop(&mut self) -> Result<(), Stop> {
        self.ops.noop += 1;
        self.cmd("NOOP", Kind::Noop, false).await?;
        Ok(())
    }

    /// APPEND with a synchronising literal (RFC 9051 §4.3: the client waits
    /// for the continuation request before sending the octets).
    async fn append(&mut self, mailbox: &str) -> Result<(), Stop> {
        self.ops.append += 1;
        self.appended += 1;
        let id = format!("{}-{}-{}", self.seed, self.id, self.appended);
        let data = stress_message(&id);
        let mut flags = if self.rng.chance(70) {
            self.random_flags()
        } else {
            Vec::new()
        };
        let own = self.rng.chance(30);
        if own {
            flags.push(self.own_kw.clone());
        }
        let tag = self.next_tag();
        let command = format!(
            "APPEND {} ({}) {{{}}}",
            quoted(mailbox),
            flags.join(" "),
            data.len()
        );
        self.send(format!("{tag} {command}\r\n").as_bytes()).await?;
        loop {
            let raw = self.read(&tag).await?;
            if matches!(parse(&raw), Ok(Resp::Continue)) {
                break;
            }
            if let Some(done) = self.handle(&raw, &tag, Kind::Append) {
                self.judge(&done, &command, false);
                return Ok(());
            }
        }
        let mut octets = data;
        octets.extend_from_slice(b"\r\n");
        self.send(&octets).await?;
        let done = self.until(&tag, Kind::Append).await?;
        self.judge(&done, &command, false);
        if let Some(Code::AppendUid(_, uid)) = done.code {
            self.mb.appended(uid, id, own);
        }
        Ok(())
    }

    async fn step(&mut self, mailbox: &str) -> Result<(), Stop> {
        let count = self.mb.msgs.len();
        let append_weight = if count < LOW {
            40
        } else if count > HIGH {
            2
        } else {
            10
        };
        let expunge_weight = if count > HIGH { 15 } else { 4 };
        let roll = self.rng.below(100);
        if roll < append_weight {
            self.append(mailbox).await
        } else if roll < append_weight + expunge_weight {
            self.expunge().await
        } else if roll < append_weight + expunge_weight + 12 {
            self.noop().await
        } else if self.rng.chance(50) {
            self.fetch().await
        } else {
            self.store().await
        }
    }

    fn summary(&self) -> String {
        let o = &self.ops;
        let kinds: Vec<String> = self
            .rep
            .counts
            .iter()
            .map(|(k, n)| format!("\"{k}\"={n}"))
            .collect();
        format!(
            "client={} ops={} fetch={} store={} append={} expunge={} noop={} expected_no={} nil_bodies={} messages={} protocol_errors={}{}{}",
            self.id,
            o.fetch + o.store + o.append + o.expunge + o.noop,
            o.fetch,
            o.store,
            o.append,
            o.expunge,
            o.noop,
            o.expected_no,
            self.mb.nil_bodies,
            self.mb.msgs.len(),
            self.rep.total(),
            if kinds.is_empty() { "" } else { " " },
            kinds.join(" ")
        )
    }
}

/// A quoted string (RFC 9051 §4.3) of text without CR, LF or NUL.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What one client reports at the end.
struct ClientResult {
    line: String,
    errors: u64,
    ops: u64,
    kinds: std::collections::BTreeMap<&'static str, u64>,
}

async fn run_client(args: Args, id: usize, deadline: Instant) -> ClientResult {
    let mut s = match Session::connect(&args, id).await {
        Ok(s) => s,
        Err(e) => {
            println!("client {id}: protocol error: connection failed: {e}");
            return ClientResult {
                line: format!("client={id} ops=0 protocol_errors=1 \"connection failed\"=1"),
                errors: 1,
                ops: 0,
                kinds: [("connection failed", 1)].into(),
            };
        }
    };
    // A lost connection has been reported already; the summary follows.
    let _ = async {
        s.login_select(&args).await?;
        while Instant::now() < deadline {
            s.step(&args.mailbox).await?;
        }
        s.cmd("LOGOUT", Kind::Logout, false).await?;
        Ok::<(), Stop>(())
    }
    .await;
    let o = &s.ops;
    ClientResult {
        line: s.summary(),
        errors: s.rep.total(),
        ops: o.fetch + o.store + o.append + o.expunge + o.noop,
        kinds: s.rep.counts.clone(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    println!(
        "imap-stress: {} clients on {}@{}:{} {} for {} s, seed {}",
        args.clients, args.user, args.host, args.port, args.mailbox, args.seconds, args.seed
    );
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.clients)
        .map(|id| tokio::spawn(run_client(args.clone(), id, deadline)))
        .collect();
    let mut total = 0;
    let mut ops = 0;
    let mut kinds = std::collections::BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(r) => {
                println!("{}", r.line);
                total += r.errors;
                ops += r.ops;
                for (k, n) in r.kinds {
                    *kinds.entry(k).or_insert(0) += n;
                }
            }
            Err(e) => {
                println!("a client panicked: {e}");
                total += 1;
            }
        }
    }
    for (k, n) in &kinds {
        println!("errors of kind \"{k}\": {n}");
    }
    println!("total ops={ops} protocol_errors={total}");
    if total > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
