#![forbid(unsafe_code)]
//! Rampart's access ledger: one entry per access to user data, in a hash
//! chain whose head is signed as a checkpoint every so often.
//!
//! The ledger is a directory of its own, apart from the mail data: segment
//! files of entries (see [`segment`]), `checkpoints.log`, `cuts.log` (the
//! segments retention removed) and `ledger.key` (the node's Ed25519 key).
//! Appends are group-committed: whoever waits while a batch is synced goes
//! into the next one, so many sessions share one fsync; an append returns
//! only once its entry is durable. Entries nobody waits for (see
//! [`Ledger::append_unconfirmed`]) ride along with the next awaited group, or
//! are written on their own after [`LedgerConfig::unconfirmed_delay`].
//!
//! Several processes may append (the server and the command line): each
//! batch is written under an exclusive lock on `lock`, which also holds the
//! head, so a writer sees what another wrote before it.

mod checkpoint;
pub mod query;
mod record;
pub mod report;
pub mod segment;
mod verify;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ring::signature::Ed25519KeyPair;

pub use checkpoint::{Checkpoint, parse_all as parse_checkpoints};
pub use record::{Record, ranges};
pub use segment::{GENESIS, SegmentHeader};
pub use verify::{Problem, VerifyReport, verify};

use segment::{chain, list_segments, read_segment, segment_path};

/// Everything that can go wrong with the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A ledger file is not in the expected format.
    #[error("{0}")]
    Format(String),
    /// The ledger stopped accepting entries after a write it could not undo.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
}

impl LedgerError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LedgerError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Result type of the ledger.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// Where the ledger lives and how it is kept.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// The ledger directory.
    pub dir: PathBuf,
    /// This node's name, in every checkpoint.
    pub node: String,
    /// How often the head is signed (when it moved).
    pub checkpoint_interval: Duration,
    /// A segment is sealed when it is this large ...
    pub segment_bytes: u64,
    /// ... or this old.
    pub segment_age: Duration,
    /// Sealed segments whose newest entry is older than this are removed.
    pub retention: Duration,
    /// Each new checkpoint is also appended (and synced) to this file.
    pub witness_file: Option<PathBuf>,
    /// Most entries in one group commit.
    pub max_batch: usize,
    /// Longest an unconfirmed entry waits for an awaited one to share its
    /// write and fsync with.
    pub unconfirmed_delay: Duration,
    /// While groups follow each other closely (a busy server), how long an
    /// awaited entry may wait for others to share its fsync ...
    pub group_delay: Duration,
    /// ... unless this many are waiting already.
    pub group_target: usize,
    /// Receives each new checkpoint that covers new activity (the server
    /// mails it to a witness).
    pub on_checkpoint: Option<tokio::sync::mpsc::UnboundedSender<Checkpoint>>,
    /// Entries of this principal alone do not make a checkpoint worth
    /// sending to `on_checkpoint`: the witness's own deliveries, which would
    /// otherwise call for a checkpoint mail every interval forever.
    pub quiet_principal: Option<String>,
}

impl LedgerConfig {
    /// The defaults for a ledger in `dir`.
    pub fn new(dir: PathBuf, node: String) -> Self {
        LedgerConfig {
            dir,
            node,
            checkpoint_interval: Duration::from_secs(60),
            segment_bytes: 64 * 1024 * 1024,
            segment_age: Duration::from_secs(86_400),
            retention: Duration::from_secs(400 * 86_400),
            witness_file: None,
            max_batch: 4096,
            unconfirmed_delay: Duration::from_millis(100),
            // Measured with 16 IMAP clients fetching headers on 2 cores:
            // groups went from 1.8 to 7 entries, 10,100 -> 12,600 ops/s;
            // 600 us and 1 ms gained nothing more.
            group_delay: Duration::from_micros(300),
            group_target: 8,
            on_checkpoint: None,
            quiet_principal: None,
        }
    }
}

/// Where an awaited append hears its sequence number.
type AppendReply = tokio::sync::oneshot::Sender<Result<u64>>;

enum Command {
    /// An entry, and whom to tell once it is durable (nobody for an
    /// unconfirmed one).
    Append(Box<Record>, Option<AppendReply>),
    Checkpoint(tokio::sync::oneshot::Sender<Result<Option<Checkpoint>>>),
    Expire(i64, tokio::sync::oneshot::Sender<Result<Vec<String>>>),
}

impl Command {
    /// Whether someone waits for it (everything but unconfirmed entries).
    fn awaited(&self) -> bool {
        !matches!(self, Command::Append(_, None))
    }

    /// Whether it is a checkpoint or expiry, which no group waits for.
    fn urgent(&self) -> bool {
        !matches!(self, Command::Append(..))
    }
}

/// Commands waiting for the writer thread. A queue under a lock rather than
/// a channel, so that an unconfirmed entry is queued without waking the
/// writer (measured: STATUS-only load spent a fifth of the server's time in
/// the writer's wake-ups and fsyncs for entries nobody waited for).
#[derive(Default)]
struct Queue {
    commands: Vec<Command>,
    /// How many queued commands someone waits for.
    awaited: usize,
    /// When the first of them came.
    first_awaited: Option<Instant>,
    /// Whether a checkpoint or expiry waits (never held back).
    urgent: bool,
    /// Whether the writer sleeps on the condition variable (otherwise it
    /// is writing, and looks at the queue when done: no wake-up needed).
    writer_waiting: bool,
    /// When the oldest queued unconfirmed entry came.
    oldest_unconfirmed: Option<Instant>,
    /// Set by [`Ledger`]'s drop (the writer signs a last checkpoint and
    /// stops) and by the writer thread when it ends.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    max_batch: usize,
    group_target: usize,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The lock guards plain data that every step leaves consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks the queue closed when the writer thread ends, however it ends,
/// and drops what is still queued, so that whoever waits hears "gone"
/// rather than waiting forever.
struct ClosedOnDrop(Arc<Shared>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        queue.closed = true;
        queue.commands.clear();
    }
}

/// An open ledger; appends go to its writer thread.
pub struct Ledger {
    shared: Arc<Shared>,
    public_key: [u8; 32],
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Ledger {
    /// Opens (creating if need be) the ledger directory, recovering from a
    /// write a crash cut short, and starts its writer thread.
    pub fn open(config: LedgerConfig) -> Result<Ledger> {
        fs::create_dir_all(&config.dir).map_err(|e| LedgerError::io(&config.dir, e))?;
        let key = load_or_create_key(&config.dir)?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(ring::signature::KeyPair::public_key(&key).as_ref());
        let mut writer = Writer::open(config, key)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            max_batch: writer.config.max_batch.max(1),
            group_target: writer.config.group_target.max(1),
        });
        let for_writer = shared.clone();
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                let _closed = ClosedOnDrop(for_writer.clone());
                writer.run(&for_writer)
            })
            .map_err(|e| LedgerError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Ledger {
            shared,
            public_key,
            writer: Some(handle),
        })
    }

    /// Appends an entry; returns its sequence number once it is durable.
    pub async fn append(&self, record: Record) -> Result<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Append(Box::new(record), Some(tx)))?;
        rx.await.map_err(|_| gone())?
    }

    /// Queues an entry without waiting for it (for entries of responses
    /// that carry no user data): it is written with the next awaited group,
    /// or within [`LedgerConfig::unconfirmed_delay`]. Entries keep their
    /// order; a crash can lose those not yet written.
    pub fn append_unconfirmed(&self, record: Record) -> Result<()> {
        self.send(Command::Append(Box::new(record), None))
    }

    /// Signs a checkpoint now if entries were added since the last one;
    /// returns it (None when there was nothing new).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Checkpoint(tx))?;
        rx.await.map_err(|_| gone())?
    }

    /// Removes sealed segments past retention at `now` (milliseconds); returns their names.
    pub async fn expire(&self, now: i64) -> Result<Vec<String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Expire(now, tx))?;
        rx.await.map_err(|_| gone())?
    }

    /// The node's public ledger key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    fn send(&self, command: Command) -> Result<()> {
        let mut queue = self.shared.queue();
        if queue.closed {
            return Err(gone());
        }
        let wake = if command.awaited() {
            queue.awaited += 1;
            queue.urgent |= command.urgent();
            queue.first_awaited.get_or_insert_with(Instant::now);
            // A sleeping writer either waits for work (the first awaited
            // command wakes it) or holds a group open for more (woken once
            // the group is large enough, not by each arrival).
            queue.writer_waiting
                && (queue.awaited == 1
                    || queue.awaited >= self.shared.group_target
                    || command.urgent())
        } else {
            // The first one sets the writer's deadline; later ones wait
            // with it.
            let first = queue.oldest_unconfirmed.is_none();
            queue.oldest_unconfirmed.get_or_insert_with(Instant::now);
            queue.writer_waiting && (first || queue.commands.len() + 1 >= self.shared.max_batch)
        };
        queue.commands.push(command);
        drop(queue);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Closing the queue makes the writer write what is queued, sign a
        // last checkpoint and stop.
        self.shared.queue().closed = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

fn gone() -> LedgerError {
    LedgerError::Unavailable("the ledger writer stopped".into())
}

/// The public key of the ledger in `dir`, if it has one.
pub fn public_key_of(dir: &Path) -> Result<Option<[u8; 32]>> {
    if !dir.join("ledger.key").exists() {
        return Ok(None);
    }
    let key = load_or_create_key(dir)?;
    let mut public = [0u8; 32];
    public.copy_from_slice(ring::signature::KeyPair::public_key(&key).as_ref());
    Ok(Some(public))
}

fn load_or_create_key(dir: &Path) -> Result<Ed25519KeyPair> {
    let path = dir.join("ledger.key");
    let pkcs8 = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let rng = ring::rand::SystemRandom::new();
            let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| LedgerError::Unavailable("cannot generate a ledger key".into()))?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| LedgerError::io(&path, e))?;
            f.write_all(doc.as_ref())
                .and_then(|_| f.sync_all())
                .map_err(|e| LedgerError::io(&path, e))?;
            sync_dir(dir)?;
            doc.as_ref().to_vec()
        }
        Err(e) => return Err(LedgerError::io(&path, e)),
    };
    Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|_| LedgerError::Format(format!("{}: not an Ed25519 key", path.display())))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io(dir, e))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Appends a line to a file and syncs it.
fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LedgerError::io(path, e))?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| LedgerError::io(path, e))
}

/// Where the chain stands: the state every writer agrees on under the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    /// The segment being written (its first sequence number).
    segment: u64,
    /// Its length in bytes.
    size: u64,
    /// The next sequence number.
    next_seq: u64,
    /// The chain hash so far.
    hash: [u8; 32],
    /// When the segment was started.
    created: i64,
}

impl Head {
    fn encode(&self) -> String {
        format!(
            "{} {} {} {} {}\n",
            self.segment,
            self.size,
            self.next_seq,
            hex::encode(self.hash),
            self.created
        )
    }

    fn decode(s: &str) -> Option<Head> {
        let mut p = s.split_whitespace();
        let segment = p.next()?.parse().ok()?;
        let size = p.next()?.parse().ok()?;
        let next_seq = p.next()?.parse().ok()?;
        let hash = hex::decode(p.next()?).ok()?.try_into().ok()?;
        let created = p.next()?.parse().ok()?;
        Some(Head {
            segment,
            size,
            next_seq,
            hash,
            created,
        })
    }
}

/// Width of the head record in the lock file.
const HEAD_WIDTH: usize = 160;

/// How much zeroed space the writer claims at the end of the segment at a
/// time. Overwriting claimed space lets fdatasync write just the data, not
/// also the file's new size (measured on ext4: about 100 instead of 130-140
/// us per sync of a 420-byte append).
const CLAIM_BYTES: u64 = 4 * 1024 * 1024;

/// The segment being written, kept open between groups.
struct OpenSegment {
    /// Its first sequence number.
    first_seq: u64,
    file: File,
    /// The file's length: entries, then claimed zeroed space.
    claimed: u64,
}

impl OpenSegment {
    fn open(path: &Path, first_seq: u64) -> std::io::Result<OpenSegment> {
        let file = OpenOptions::new().write(true).open(path)?;
        let claimed = file.metadata()?.len();
        Ok(OpenSegment {
            first_seq,
            file,
            claimed,
        })
    }

    /// Writes `buf` at `at` and syncs it, first claiming more zeroed space
    /// if it would not fit.
    fn write_synced(&mut self, at: u64, buf: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let end = at + buf.len() as u64;
        if end > self.claimed {
            let claim = end.div_ceil(CLAIM_BYTES) * CLAIM_BYTES;
            let start = self.claimed.max(end);
            self.file
                .write_all_at(&vec![0; (claim - start) as usize], start)?;
            self.claimed = claim;
        }
        self.file.write_all_at(buf, at)?;
        self.file.sync_data()
    }
}

struct Writer {
    config: LedgerConfig,
    key: Ed25519KeyPair,
    lock: File,
    head: Head,
    /// Set when a failed write could not be undone: no further appends.
    broken: Option<String>,
    /// The segment being written, open.
    segment: Option<OpenSegment>,
    last_checkpoint_seq: u64,
    /// Whether entries other than the quiet principal's came since the
    /// last checkpoint sent to `on_checkpoint`.
    news_for_sink: bool,
    /// The last checkpoint sent to `on_checkpoint`.
    last_sent_seq: u64,
    last_checkpoint: Instant,
    last_expiry: Instant,
    /// How many waited on the last group written.
    last_group_awaited: usize,
}

impl Writer {
    fn open(config: LedgerConfig, key: Ed25519KeyPair) -> Result<Writer> {
        let lock_path = config.dir.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| LedgerError::io(&lock_path, e))?;
        lock.lock().map_err(|e| LedgerError::io(&lock_path, e))?;
        let recovered = recover(&config.dir);
        let result = recovered.and_then(|head| {
            let mut w = Writer {
                config,
                key,
                lock,
                head,
                broken: None,
                segment: None,
                last_checkpoint_seq: 0,
                news_for_sink: false,
                last_sent_seq: 0,
                last_checkpoint: Instant::now(),
                last_expiry: Instant::now(),
                last_group_awaited: 0,
            };
            w.last_checkpoint_seq = last_checkpoint_seq(&w.config.dir);
            w.last_sent_seq = w.last_checkpoint_seq;
            w.save_head()?;
            Ok(w)
        })?;
        result
            .lock
            .unlock()
            .map_err(|e| LedgerError::io(&result.config.dir, e))?;
        Ok(result)
    }

    fn run(&mut self, shared: &Shared) {
        let tick = self.config.checkpoint_interval.min(Duration::from_secs(60));
        loop {
            let (batch, closed) = self.next_batch(shared, tick);
            if !batch.is_empty() {
                self.handle(batch);
            }
            if closed {
                if !shared.queue().commands.is_empty() {
                    continue;
                }
                if let Err(e) = self.checkpoint() {
                    tracing::warn!("ledger: last checkpoint failed: {e}");
                }
                return;
            }
            if self.last_checkpoint.elapsed() >= self.config.checkpoint_interval
                && let Err(e) = self.checkpoint()
            {
                tracing::warn!("ledger: checkpoint failed: {e}");
            }
            if self.last_expiry.elapsed() >= Duration::from_secs(3600) {
                self.last_expiry = Instant::now();
                match self.expire(now_millis()) {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!("ledger: retention removed {}", removed.join(", "))
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("ledger: expiry failed: {e}"),
                }
            }
        }
    }

    /// Waits until a group is due: an awaited command came, the oldest
    /// unconfirmed entry waited long enough, the queue is full or closed, or
    /// `tick` passed (for the periodic work). Returns the group (at most
    /// `max_batch` commands) and whether the queue is closed.
    fn next_batch(&self, shared: &Shared, tick: Duration) -> (Vec<Command>, bool) {
        let mut queue = shared.queue();
        let started = Instant::now();
        // Several sessions waited on the last group: hold the next one open
        // a moment for more, so that they share an fsync (fewer syncs, less
        // CPU). A lone session never waits for company. (Holding only while
        // entries came faster than one per 150 or 300 us, by a moving
        // average, did worse on IMAP's mixed workload: 18,300 vs 19,700
        // ops/s over four alternating runs, and gained nothing measurable
        // for SMTP or downloads.)
        let group_delay = if self.last_group_awaited > 1 {
            self.config.group_delay
        } else {
            Duration::ZERO
        };
        loop {
            let now = Instant::now();
            let unconfirmed_due = queue
                .oldest_unconfirmed
                .map(|t| t + self.config.unconfirmed_delay);
            let group_due = queue.first_awaited.map(|t| t + group_delay);
            if queue.closed
                || queue.urgent
                || queue.awaited >= shared.group_target
                || queue.commands.len() >= shared.max_batch
                || group_due.is_some_and(|due| due <= now)
                || unconfirmed_due.is_some_and(|due| due <= now)
            {
                break;
            }
            let tick_due = started + tick;
            if tick_due <= now {
                break;
            }
            let due = [unconfirmed_due, group_due]
                .into_iter()
                .flatten()
                .fold(tick_due, Instant::min);
            queue.writer_waiting = true;
            queue = shared
                .wake
                .wait_timeout(queue, due - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            queue.writer_waiting = false;
        }
        let n = queue.commands.len().min(shared.max_batch);
        let batch: Vec<Command> = queue.commands.drain(..n).collect();
        queue.urgent = false;
        if queue.commands.is_empty() {
            queue.awaited = 0;
            queue.first_awaited = None;
            queue.oldest_unconfirmed = None;
        } else {
            // Left over from a full group: all due already.
            queue.awaited = queue.commands.iter().filter(|c| c.awaited()).count();
            queue.urgent = queue.commands.iter().any(Command::urgent);
            if queue.awaited == 0 {
                queue.first_awaited = None;
            }
            if queue.commands.iter().all(Command::awaited) {
                queue.oldest_unconfirmed = None;
            }
        }
        (batch, queue.closed)
    }

    /// Carries out a group in order: entries are written together, up to
    /// each checkpoint or expiry, which then sees them.
    fn handle(&mut self, batch: Vec<Command>) {
        let mut appends = Vec::new();
        for command in batch {
            match command {
                Command::Append(record, reply) => appends.push((*record, reply)),
                Command::Checkpoint(reply) => {
                    self.write_group(std::mem::take(&mut appends));
                    let _ = reply.send(self.checkpoint());
                }
                Command::Expire(now, reply) => {
                    self.write_group(std::mem::take(&mut appends));
                    let _ = reply.send(self.expire(now));
                }
            }
        }
        self.write_group(appends);
    }

    /// Writes entries as one group and tells those who wait for them.
    fn write_group(&mut self, appends: Vec<(Record, Option<AppendReply>)>) {
        if appends.is_empty() {
            return;
        }
        let (records, replies): (Vec<Record>, Vec<_>) = appends.into_iter().unzip();
        self.last_group_awaited = replies.iter().filter(|r| r.is_some()).count();
        match self.write(records) {
            Ok(first) => {
                for (i, reply) in replies.into_iter().enumerate() {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(first + i as u64));
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!("ledger: write failed: {message}");
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(LedgerError::Unavailable(message.clone())));
                }
            }
        }
    }

    /// Takes the lock and picks up what another process wrote meanwhile.
    fn lock(&mut self) -> Result<()> {
        let dir = self.config.dir.clone();
        self.lock.lock().map_err(|e| LedgerError::io(&dir, e))?;
        let mut text = String::new();
        self.lock
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.lock.read_to_string(&mut text))
            .map_err(|e| LedgerError::io(&dir, e))?;
        match Head::decode(&text) {
            Some(head) if head == self.head => {}
            // Another writer moved on (or the file was damaged): re-read the tail.
            _ => {
                self.head = recover(&dir)?;
                self.segment = None;
                self.news_for_sink = true;
            }
        }
        Ok(())
    }

    fn unlock(&mut self) {
        let _ = self.lock.unlock();
    }

    fn save_head(&mut self) -> Result<()> {
        // Padded to a fixed width, so one write in place replaces it (the
        // file's size never changes).
        let text = format!("{:<HEAD_WIDTH$}", self.head.encode().trim_end());
        std::os::unix::fs::FileExt::write_all_at(&self.lock, text.as_bytes(), 0)
            .map_err(|e| LedgerError::io(&self.config.dir, e))
    }

    /// Writes records as one group; returns the first one's sequence number.
    fn write(&mut self, mut records: Vec<Record>) -> Result<u64> {
        if let Some(why) = &self.broken {
            return Err(LedgerError::Unavailable(why.clone()));
        }
        self.lock()?;
        let result = self.write_locked(&mut records);
        self.unlock();
        result
    }

    fn write_locked(&mut self, records: &mut [Record]) -> Result<u64> {
        let now = now_millis();
        let age = Duration::from_millis((now - self.head.created).max(0) as u64);
        if self.head.size >= self.config.segment_bytes || age >= self.config.segment_age {
            self.start_segment(now)?;
        }
        let first = self.head.next_seq;
        let mut hash = self.head.hash;
        let mut buf = Vec::new();
        for (i, record) in records.iter_mut().enumerate() {
            record.seq = first + i as u64;
            if self.config.quiet_principal.as_deref() != Some(record.principal.as_str()) {
                self.news_for_sink = true;
            }
            let json = serde_json::to_string(record)
                .map_err(|e| LedgerError::Format(format!("cannot encode an entry: {e}")))?;
            hash = chain(&hash, &json);
            buf.extend_from_slice(json.as_bytes());
            buf.push(b'\t');
            buf.extend_from_slice(hex::encode(hash).as_bytes());
            buf.push(b'\n');
        }
        let path = segment_path(&self.config.dir, self.head.segment);
        // The segment stays open between groups (reopened when another
        // writer moved the head or a new segment began).
        let segment = match self.segment.take() {
            Some(s) if s.first_seq == self.head.segment => s,
            _ => OpenSegment::open(&path, self.head.segment)
                .map_err(|e| LedgerError::io(&path, e))?,
        };
        let segment = self.segment.insert(segment);
        let written = segment.write_synced(self.head.size, &buf);
        if let Err(e) = written {
            self.segment = None;
            // Cut back what may have reached the file, so that the chain on
            // disk stays the one in memory; if even that fails, stop.
            let undo = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(self.head.size).and_then(|_| f.sync_data()));
            if let Err(u) = undo {
                self.broken = Some(format!("{}: {e}; cutting back failed: {u}", path.display()));
            }
            return Err(LedgerError::io(&path, e));
        }
        self.head.size += buf.len() as u64;
        self.head.next_seq += records.len() as u64;
        self.head.hash = hash;
        self.save_head()?;
        Ok(first)
    }

    /// Seals the current segment (without its claimed space) by starting
    /// the next one.
    fn start_segment(&mut self, now: i64) -> Result<()> {
        let path = segment_path(&self.config.dir, self.head.segment);
        self.segment = None;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(self.head.size).and_then(|_| f.sync_all()))
            .map_err(|e| LedgerError::io(&path, e))?;
        let header = SegmentHeader {
            first_seq: self.head.next_seq,
            prev: hex::encode(self.head.hash),
            created: now,
        };
        let size = create_segment(&self.config.dir, &header)?;
        self.head = Head {
            segment: header.first_seq,
            size,
            created: now,
            ..self.head
        };
        self.save_head()
    }

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        self.last_checkpoint = Instant::now();
        self.lock()?;
        let result = self.checkpoint_locked();
        self.unlock();
        if let (Ok(made), Some(sink)) = (&result, &self.config.on_checkpoint)
            && self.news_for_sink
        {
            // The newest checkpoint, ours or one another process (the
            // command line) signed when it finished.
            let newest = made.clone().or_else(|| {
                checkpoints(&self.config.dir)
                    .ok()?
                    .pop()
                    .filter(|c| c.seq > self.last_sent_seq)
            });
            if let Some(c) = newest {
                self.last_sent_seq = c.seq;
                self.news_for_sink = false;
                // Nobody listening (the server shutting down) is fine.
                let _ = sink.send(c);
            }
        }
        result
    }

    fn checkpoint_locked(&mut self) -> Result<Option<Checkpoint>> {
        let seq = self.head.next_seq - 1;
        self.last_checkpoint_seq = self
            .last_checkpoint_seq
            .max(last_checkpoint_seq(&self.config.dir));
        if seq == 0 || seq <= self.last_checkpoint_seq {
            return Ok(None);
        }
        let c = Checkpoint::sign(
            &self.config.node,
            seq,
            now_millis(),
            self.head.hash,
            &self.key,
        );
        let line = c.to_line();
        append_line(&self.config.dir.join("checkpoints.log"), &line)?;
        self.last_checkpoint_seq = seq;
        if let Some(witness) = &self.config.witness_file {
            // The witness is another machine's disk: failing to reach it
            // must not stop the ledger, but it must be seen.
            if let Err(e) = append_line(witness, &line) {
                tracing::error!("ledger: cannot write the checkpoint to the witness file: {e}");
            }
        }
        Ok(Some(c))
    }

    fn expire(&mut self, now: i64) -> Result<Vec<String>> {
        self.lock()?;
        let result = self.expire_locked(now);
        self.unlock();
        result
    }

    fn expire_locked(&mut self, now: i64) -> Result<Vec<String>> {
        let cutoff = now - self.config.retention.as_millis() as i64;
        let mut removed = Vec::new();
        let segments = list_segments(&self.config.dir)?;
        // Only whole sealed segments, oldest first, and never the one being
        // written; stop at the first that is still within retention.
        for (first_seq, path) in segments {
            if first_seq == self.head.segment {
                break;
            }
            let segment = read_segment(&path)?;
            let Some(last) = segment.entries.last() else {
                continue;
            };
            let record: Record = serde_json::from_str(&last.json)
                .map_err(|e| LedgerError::Format(format!("{}: {e}", path.display())))?;
            if record.at >= cutoff {
                break;
            }
            let note = serde_json::json!({
                "removed": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "first_seq": first_seq,
                "last_seq": record.seq,
                "last_at": record.at,
                "at": now,
            });
            append_line(&self.config.dir.join("cuts.log"), &note.to_string())?;
            fs::remove_file(&path).map_err(|e| LedgerError::io(&path, e))?;
            removed.push(path.display().to_string());
        }
        if !removed.is_empty() {
            sync_dir(&self.config.dir)?;
        }
        Ok(removed)
    }
}

/// Writes a new segment holding only its header; returns its size.
fn create_segment(dir: &Path, header: &SegmentHeader) -> Result<u64> {
    let path = segment_path(dir, header.first_seq);
    let line = format!(
        "{}\n",
        serde_json::to_string(header).map_err(|e| LedgerError::Format(e.to_string()))?
    );
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| LedgerError::io(&path, e))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| LedgerError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(line.len() as u64)
}

/// Where the chain stands on disk, cutting off a line a crash left half
/// written (its entry was never acknowledged, so no data went out for it).
fn recover(dir: &Path) -> Result<Head> {
    let segments = list_segments(dir)?;
    let Some((first_seq, path)) = segments.last() else {
        let now = now_millis();
        let header = SegmentHeader {
            first_seq: 1,
            prev: hex::encode(GENESIS),
            created: now,
        };
        let size = create_segment(dir, &header)?;
        return Ok(Head {
            segment: 1,
            size,
            next_seq: 1,
            hash: GENESIS,
            created: now,
        });
    };
    let segment = read_segment(path)?;
    if segment.torn_tail > 0 {
        tracing::warn!(
            "ledger: {} ends in {} bytes of an entry a crash cut short; removing them",
            path.display(),
            segment.torn_tail
        );
    }
    // Padding goes too: whoever writes next claims its own.
    if segment.file_len > segment.complete_len {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(segment.complete_len).and_then(|_| f.sync_all()))
            .map_err(|e| LedgerError::io(path, e))?;
    }
    let (next_seq, hash) = match segment.entries.last() {
        Some(last) => {
            let record: Record = serde_json::from_str(&last.json).map_err(|e| {
                LedgerError::Format(format!(
                    "{} line {}: {e} (run `rampart ledger verify`)",
                    path.display(),
                    last.line
                ))
            })?;
            let hash = hex::decode(&last.hash)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .ok_or_else(|| {
                    LedgerError::Format(format!(
                        "{} line {}: damaged chain hash (run `rampart ledger verify`)",
                        path.display(),
                        last.line
                    ))
                })?;
            (record.seq + 1, hash)
        }
        None => {
            let hash = hex::decode(&segment.header.prev)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .ok_or_else(|| {
                    LedgerError::Format(format!("{}: damaged header", path.display()))
                })?;
            (segment.header.first_seq, hash)
        }
    };
    Ok(Head {
        segment: *first_seq,
        size: segment.complete_len,
        next_seq,
        hash,
        created: segment.header.created,
    })
}

fn last_checkpoint_seq(dir: &Path) -> u64 {
    fs::read_to_string(dir.join("checkpoints.log"))
        .ok()
        .and_then(|t| t.lines().rev().find_map(|l| Checkpoint::parse(l).ok()))
        .map_or(0, |c| c.seq)
}

/// Calls `f` with every entry of the ledger in `dir`, in order, skipping
/// lines that do not parse (`verify` reports those).
pub fn for_each_record(dir: &Path, mut f: impl FnMut(Record)) -> Result<()> {
    for record in query::entries(dir, query::Filter::default())? {
        f(record?);
    }
    Ok(())
}

/// Every checkpoint the ledger in `dir` signed, oldest first.
pub fn checkpoints(dir: &Path) -> Result<Vec<Checkpoint>> {
    let path = dir.join("checkpoints.log");
    match fs::read_to_string(&path) {
        Ok(text) => parse_checkpoints(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(LedgerError::io(&path, e)),
    }
}
