#![forbid(unsafe_code)]
//! IMAP load client for bench/imap/run.sh: loads a mailbox, times the
//! operations a client starting up does, runs a mixed workload, and holds
//! many idle IDLE connections. Speaks plain IMAP4rev1 so that it measures
//! Rampart and Dovecot the same way.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod messages;
use messages::message;

#[derive(Parser, Debug)]
struct Args {
    /// Server address, host:port.
    #[arg(long)]
    server: String,
    /// Login name.
    #[arg(long)]
    user: String,
    /// Password.
    #[arg(long)]
    password: String,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// APPEND the benchmark's messages to INBOX.
    Load {
        /// How many.
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Mailbox to load (created when missing).
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
        /// Small (~1 KB) messages instead of the benchmark's size mix.
        #[arg(long)]
        small: bool,
    },
    /// One client APPENDs small messages one at a time with a
    /// synchronising literal; print the latency's p50 and p99.
    AppendLatency {
        /// How many.
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Mailbox they go to (created when missing).
        #[arg(long, default_value = "Latency")]
        mailbox: String,
    },
    /// Whole-mailbox operations on a loaded mailbox: `STORE 1:* +FLAGS
    /// (\Seen)`, `UID COPY 1:* Other`, `STORE 1:* +FLAGS (\Deleted)` and
    /// EXPUNGE; print each one's time.
    Bulk {
        /// The loaded mailbox (emptied by the EXPUNGE).
        #[arg(long, default_value = "Bulk")]
        mailbox: String,
        /// Where UID COPY copies to (created when missing).
        #[arg(long, default_value = "Other")]
        target: String,
    },
    /// Time SELECT, FETCH of envelopes and structures, full download,
    /// SEARCH TEXT, and a mixed workload.
    Measure {
        /// Concurrent clients of the mixed workload.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds the mixed workload runs.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Only the mixed workload, optionally restricted to some of its
    /// operations (to see which one a difference comes from).
    Mixed {
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds it runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Comma-separated subset of body,headers,store,noop,status.
        #[arg(long, default_value = "body,headers,store,noop,status")]
        only: String,
    },
    /// Download the whole INBOX (`UID FETCH 1:* (BODY.PEEK[])`) several
    /// times over concurrent connections; print the throughput.
    Download {
        /// Concurrent connections, each downloading the whole mailbox.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Open connections that log in, select INBOX and IDLE; print "ready"
    /// and hold them until stdin closes.
    Idle {
        /// How many.
        #[arg(long, default_value_t = 5000)]
        connections: usize,
    },
}

struct Client {
    r: BufReader<TcpStream>,
    n: u64,
}

impl Client {
    async fn connect(args: &Args) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(&args.server).await?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            r: BufReader::with_capacity(64 * 1024, stream),
            n: 0,
        };
        let mut greeting = String::new();
        c.r.read_line(&mut greeting).await?;
        anyhow::ensure!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c.cmd(&format!("LOGIN \"{}\" \"{}\"", args.user, args.password))
            .await?;
        Ok(c)
    }

    /// Sends a command; returns the bytes of the response (literals included).
    async fn cmd(&mut self, command: &str) -> anyhow::Result<u64> {
        self.n += 1;
        let tag = format!("b{}", self.n);
        self.r
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.until(&tag).await
    }

    async fn until(&mut self, tag: &str) -> anyhow::Result<u64> {
        let (bytes, status) = self.until_any(tag).await?;
        anyhow::ensure!(status.starts_with("OK"), "command failed: {tag} {status}");
        Ok(bytes)
    }

    /// Reads to the tagged response; returns the bytes read and the
    /// tagged response's text after the tag (`OK ...`, `NO ...`).
    async fn until_any(&mut self, tag: &str) -> anyhow::Result<(u64, String)> {
        let mut bytes = 0u64;
        let mut line = Vec::new();
        let mut literal = Vec::new();
        loop {
            line.clear();
            if self.r.read_until(b'\n', &mut line).await? == 0 {
                anyhow::bail!("connection closed");
            }
            bytes += line.len() as u64;
            if let Some(size) = literal_size(&line) {
                literal.resize(size, 0);
                self.r.read_exact(&mut literal).await?;
                bytes += size as u64;
                continue;
            }
            if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                let text = String::from_utf8_lossy(&line[tag.len() + 1..]);
                return Ok((bytes, text.trim_end().to_string()));
            }
        }
    }

    /// Sends a command whose failure (NO) is fine, such as CREATE of a
    /// mailbox that may exist; returns whether it succeeded.
    async fn cmd_may_fail(&mut self, command: &str) -> anyhow::Result<bool> {
        self.n += 1;
        let tag = format!("b{}", self.n);
        self.r
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        let (_, status) = self.until_any(&tag).await?;
        anyhow::ensure!(!status.starts_with("BAD"), "{command}: {status}");
        Ok(status.starts_with("OK"))
    }

    /// APPEND with a synchronising literal (RFC 9051 §4.3): the command
    /// line, the server's `+`, then the message and the tagged OK.
    async fn append_to(&mut self, mailbox: &str, data: &[u8]) -> anyhow::Result<()> {
        self.n += 1;
        let tag = format!("b{}", self.n);
        self.r
            .get_mut()
            .write_all(format!("{tag} APPEND {mailbox} {{{}}}\r\n", data.len()).as_bytes())
            .await?;
        let mut cont = String::new();
        self.r.read_line(&mut cont).await?;
        anyhow::ensure!(cont.starts_with('+'), "APPEND: {cont}");
        self.r.get_mut().write_all(data).await?;
        self.r.get_mut().write_all(b"\r\n").await?;
        self.until(&tag).await?;
        Ok(())
    }
}

fn literal_size(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// A small message (~1 KB): what the bulk and latency figures use, so that
/// they measure per-message work rather than bytes.
fn small_message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Load <load@bench.example>\r\nTo: <rcpt@bench.example>\r\nSubject: small message {i}\r\n\
         Message-ID: <small-{i}@bench.example>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    );
    while m.len() < 1000 {
        m.push_str("A short note about the meeting on Thursday.\r\n");
    }
    m.into_bytes()
}

async fn load(
    args: &Args,
    messages: usize,
    connections: usize,
    mailbox: &str,
    small: bool,
) -> anyhow::Result<()> {
    if !mailbox.eq_ignore_ascii_case("INBOX") {
        let mut c = Client::connect(args).await?;
        c.cmd_may_fail(&format!("CREATE {mailbox}")).await?;
        c.cmd("LOGOUT").await.ok();
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..connections {
        let ids: Vec<usize> = (0..messages).filter(|i| i % connections == k).collect();
        let mut c = Client::connect(args).await?;
        let mailbox = mailbox.to_string();
        tasks.push(tokio::spawn(async move {
            for i in ids {
                let data = if small { small_message(i) } else { message(i) };
                c.append_to(&mailbox, &data).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "loaded={messages} seconds={} appends_per_sec={:.0}",
        secs(started.elapsed()),
        messages as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The value at quantile `q` (0..=1) of sorted durations, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

async fn append_latency(args: &Args, messages: usize, mailbox: &str) -> anyhow::Result<()> {
    anyhow::ensure!(messages > 0, "--messages must be at least 1");
    let mut c = Client::connect(args).await?;
    c.cmd_may_fail(&format!("CREATE {mailbox}")).await?;
    let mut took = Vec::with_capacity(messages);
    for i in 0..messages {
        let data = small_message(1_000_000 + i);
        let t = Instant::now();
        c.append_to(mailbox, &data).await?;
        took.push(t.elapsed());
    }
    c.cmd("LOGOUT").await.ok();
    took.sort();
    let mean = took.iter().sum::<Duration>().as_secs_f64() * 1000.0 / messages as f64;
    println!(
        "append_latency_messages={messages} append_latency_p50_ms={:.2} append_latency_p99_ms={:.2} append_latency_mean_ms={mean:.2}",
        quantile_ms(&took, 0.5),
        quantile_ms(&took, 0.99)
    );
    Ok(())
}

async fn bulk(args: &Args, mailbox: &str, target: &str) -> anyhow::Result<()> {
    let mut c = Client::connect(args).await?;
    c.cmd_may_fail(&format!("CREATE {target}")).await?;
    let t = Instant::now();
    c.cmd(&format!("SELECT {mailbox}")).await?;
    println!("bulk_select_seconds={}", secs(t.elapsed()));
    let t = Instant::now();
    c.cmd("STORE 1:* +FLAGS (\\Seen)").await?;
    println!("bulk_store_seen_seconds={}", secs(t.elapsed()));
    let t = Instant::now();
    c.cmd(&format!("UID COPY 1:* {target}")).await?;
    println!("bulk_uid_copy_seconds={}", secs(t.elapsed()));
    let t = Instant::now();
    c.cmd("STORE 1:* +FLAGS (\\Deleted)").await?;
    let stored = t.elapsed();
    let t = Instant::now();
    c.cmd("EXPUNGE").await?;
    let expunged = t.elapsed();
    println!(
        "bulk_store_deleted_seconds={} bulk_expunge_seconds={} bulk_delete_expunge_seconds={}",
        secs(stored),
        secs(expunged),
        secs(stored + expunged)
    );
    c.cmd("LOGOUT").await.ok();
    Ok(())
}

async fn measure(args: &Args, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let mut c = Client::connect(args).await?;
    let t = Instant::now();
    c.cmd("SELECT INBOX").await?;
    println!("select_seconds={}", secs(t.elapsed()));

    let t = Instant::now();
    let bytes = c
        .cmd("UID FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)")
        .await?;
    println!(
        "fetch_envelope_bodystructure_seconds={} bytes={bytes}",
        secs(t.elapsed())
    );
    // A second time: what a client sees once the server has cached it.
    let t = Instant::now();
    c.cmd("UID FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)")
        .await?;
    println!(
        "fetch_envelope_bodystructure_again_seconds={}",
        secs(t.elapsed())
    );

    // Three downloads, the median reported: one takes a fraction of a
    // second, so a single hiccup of the machine would decide the figure.
    let mut rates = Vec::new();
    let mut bytes = 0;
    for _ in 0..3 {
        let t = Instant::now();
        bytes = c.cmd("UID FETCH 1:* (BODY.PEEK[])").await?;
        rates.push(bytes as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "download_mb={:.1} download_mb_per_sec={:.1} download_runs_mb_per_sec={}",
        bytes as f64 / 1e6,
        rates[1],
        runs.join(",")
    );

    let t = Instant::now();
    c.cmd("SEARCH TEXT \"message 4242\"").await?;
    println!("search_text_seconds={}", secs(t.elapsed()));
    // A word in nearly every message: the answer is the whole mailbox.
    let t = Instant::now();
    c.cmd("SEARCH BODY \"thursday\"").await?;
    println!("search_body_common_seconds={}", secs(t.elapsed()));
    c.cmd("LOGOUT").await.ok();
    mixed(args, clients, seconds, &OPERATIONS).await
}

/// The mixed workload's operations, in the order its counters use.
const OPERATIONS: [&str; 5] = ["body", "headers", "store", "noop", "status"];

/// Mixed workload: what mail clients do all day, each kind equally often.
async fn mixed(args: &Args, clients: usize, seconds: u64, kinds: &[&str]) -> anyhow::Result<()> {
    let kinds: Vec<usize> = kinds
        .iter()
        .map(|k| {
            OPERATIONS
                .iter()
                .position(|o| o == k)
                .ok_or_else(|| anyhow::anyhow!("unknown operation {k}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for k in 0..clients {
        let mut c = Client::connect(args).await?;
        c.cmd("SELECT INBOX").await?;
        let kinds = kinds.clone();
        tasks.push(tokio::spawn(async move {
            let mut ops = [0u64; 5];
            let mut spent = [Duration::ZERO; 5];
            let mut i = k * 7919;
            while Instant::now() < deadline {
                let uid = 1 + (i * 2654435761) % 9_900;
                let kind = kinds[i % kinds.len()];
                let started = Instant::now();
                match kind {
                    0 => c.cmd(&format!("UID FETCH {uid} (BODY.PEEK[])")).await?,
                    1 => {
                        c.cmd(&format!(
                            "UID FETCH {uid}:{} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])",
                            uid + 20
                        ))
                        .await?
                    }
                    2 => {
                        let sign = if i % 2 == 0 { '+' } else { '-' };
                        c.cmd(&format!("UID STORE {uid} {sign}FLAGS (\\Flagged)"))
                            .await?
                    }
                    3 => c.cmd("NOOP").await?,
                    _ => c.cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)").await?,
                };
                spent[kind] += started.elapsed();
                ops[kind] += 1;
                i += 1;
            }
            anyhow::Ok((ops, spent))
        }));
    }
    let mut ops = [0u64; 5];
    let mut spent = [Duration::ZERO; 5];
    for t in tasks {
        let (n, s) = t.await??;
        for k in 0..5 {
            ops[k] += n[k];
            spent[k] += s[k];
        }
    }
    let total: u64 = ops.iter().sum();
    println!(
        "mixed_clients={clients} mixed_ops={total} mixed_ops_per_sec={:.0}",
        total as f64 / seconds as f64
    );
    let means: Vec<String> = (0..5)
        .filter(|&k| ops[k] > 0)
        .map(|k| {
            let mean = spent[k].as_secs_f64() * 1000.0 / ops[k] as f64;
            format!("{}={mean:.2}", OPERATIONS[k])
        })
        .collect();
    println!("mixed_mean_ms {}", means.join(" "));
    Ok(())
}

async fn idle(args: &Args, connections: usize) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(connections);
    let started = Instant::now();
    for _ in 0..connections {
        let mut c = Client::connect(args).await?;
        c.cmd("SELECT INBOX").await?;
        c.r.get_mut().write_all(b"i IDLE\r\n").await?;
        let mut line = String::new();
        c.r.read_line(&mut line).await?;
        anyhow::ensure!(line.starts_with('+'), "IDLE: {line}");
        held.push(c);
    }
    println!(
        "ready connections={connections} seconds={}",
        secs(started.elapsed())
    );
    // Hold until the caller closes stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await??;
    drop(held);
    Ok(())
}

async fn download(args: &Args, connections: usize, rounds: usize) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for _ in 0..connections {
        let mut c = Client::connect(args).await?;
        c.cmd("EXAMINE INBOX").await?;
        clients.push(c);
    }
    let t = Instant::now();
    let mut total = 0u64;
    for _ in 0..rounds {
        let mut tasks = Vec::new();
        for mut c in clients.drain(..) {
            tasks.push(tokio::spawn(async move {
                let bytes = c.cmd("UID FETCH 1:* (BODY.PEEK[])").await?;
                anyhow::Ok((c, bytes))
            }));
        }
        for task in tasks {
            let (c, bytes) = task.await??;
            total += bytes;
            clients.push(c);
        }
    }
    let elapsed = t.elapsed();
    println!(
        "download_connections={connections} download_mb={:.1} download_seconds={} download_mb_per_sec={:.1}",
        total as f64 / 1e6,
        secs(elapsed),
        total as f64 / 1e6 / elapsed.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Mode::Load {
            messages,
            connections,
            ref mailbox,
            small,
        } => load(&args, messages, connections, mailbox, small).await,
        Mode::AppendLatency {
            messages,
            ref mailbox,
        } => append_latency(&args, messages, mailbox).await,
        Mode::Bulk {
            ref mailbox,
            ref target,
        } => bulk(&args, mailbox, target).await,
        Mode::Measure { clients, seconds } => measure(&args, clients, seconds).await,
        Mode::Mixed {
            clients,
            seconds,
            ref only,
        } => {
            let kinds: Vec<&str> = only.split(',').map(str::trim).collect();
            mixed(&args, clients, seconds, &kinds).await
        }
        Mode::Idle { connections } => idle(&args, connections).await,
        Mode::Download {
            connections,
            rounds,
        } => download(&args, connections, rounds).await,
    }
}
