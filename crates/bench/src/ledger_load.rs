#![forbid(unsafe_code)]
//! Ledger load for bench/ledger/run.sh: appends typical IMAP entries from
//! concurrent tasks (as sessions do), then reports throughput, the ledger's
//! size per million entries, and how long `verify` takes over it.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use rampart_ledger::{Ledger, LedgerConfig, Record, ranges};

#[derive(Parser, Debug)]
struct Args {
    /// Entries to append.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 16)]
    tasks: u64,
    /// Ledger directory (created; should be empty).
    #[arg(long)]
    dir: std::path::PathBuf,
}

/// An entry like the ones an IMAP session writes: most name one message or
/// a short run, some a whole batch of a download.
fn entry(i: u64) -> Record {
    let first = (i * 7919 % 100_000) as i64;
    let objects: Vec<i64> = match i % 10 {
        0 => (first..first + 128).collect(),
        1..=3 => (first..first + 21).collect(),
        _ => vec![first],
    };
    Record {
        at: 1_800_000_000_000 + i as i64,
        node: "mail.town.example".into(),
        session: format!("{:016x}", i % 64 * 0x9e37_79b9_7f4a_7c15),
        principal: format!("user{}@town.example", i % 500),
        principal_id: Some((i % 500) as i64),
        acting_as: format!("user{}@town.example", i % 500),
        auth: "app-password".into(),
        client: Some(format!("192.0.2.{}", i % 250)),
        client_software: None,
        protocol: "imap".into(),
        operation: if i.is_multiple_of(3) {
            "read-body"
        } else {
            "read-header"
        }
        .into(),
        owner: Some((i % 500) as i64),
        container: Some("INBOX".into()),
        objects: ranges(&objects),
        bytes: 1000 + i % 100_000,
        outcome: "ok".into(),
        seq: 0,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ledger = Arc::new(Ledger::open(LedgerConfig::new(
        args.dir.clone(),
        "mail.town.example".into(),
    ))?);
    let t = Instant::now();
    let mut handles = Vec::new();
    for k in 0..args.tasks {
        let ledger = ledger.clone();
        let (tasks, entries) = (args.tasks, args.entries);
        handles.push(tokio::spawn(async move {
            let mut i = k;
            while i < entries {
                ledger.append(entry(i)).await?;
                i += tasks;
            }
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let elapsed = t.elapsed();
    drop(ledger);
    let bytes: u64 = std::fs::read_dir(&args.dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let t = Instant::now();
    let report = rampart_ledger::verify(&args.dir, &[])?;
    anyhow::ensure!(report.intact(), "verify: {:?}", report.problems);
    println!(
        "ledger_entries={} tasks={} seconds={:.2} entries_per_sec={:.0} bytes={} bytes_per_entry={:.0} mb_per_million={:.0} verify_seconds={:.2}",
        args.entries,
        args.tasks,
        elapsed.as_secs_f64(),
        args.entries as f64 / elapsed.as_secs_f64(),
        bytes,
        bytes as f64 / args.entries as f64,
        bytes as f64 / args.entries as f64,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
