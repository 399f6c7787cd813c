//! The ledger on real files: group commit, recovery, retention, and every
//! kind of tampering `verify` must catch.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rampart_ledger::*;

fn config(dir: &Path) -> LedgerConfig {
    LedgerConfig::new(dir.to_owned(), "node-a".into())
}

fn record(i: u64) -> Record {
    Record {
        at: 1_700_000_000_000 + i as i64,
        node: "node-a".into(),
        session: format!("s{}", i % 3),
        principal: "alice@example.org".into(),
        principal_id: Some(1),
        acting_as: "alice@example.org".into(),
        auth: "password".into(),
        client: Some("203.0.113.7".into()),
        protocol: "imap".into(),
        operation: "read-body".into(),
        owner: Some(1),
        container: Some("INBOX".into()),
        objects: ranges(&[i as i64, i as i64 + 1]),
        bytes: 100 + i,
        outcome: "ok".into(),
        ..Record::default()
    }
}

/// A ledger of `n` entries, closed, with a checkpoint after the last one.
async fn ledger_with(n: u64) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let ledger = Arc::new(Ledger::open(config(&dir)).unwrap());
    let mut tasks = Vec::new();
    for i in 0..n {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            ledger.append(record(i)).await.unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let c = ledger.checkpoint().await.unwrap().expect("a checkpoint");
    assert_eq!(c.seq, n);
    drop(ledger);
    (tmp, dir)
}

fn segment(dir: &Path) -> PathBuf {
    segment::list_segments(dir).unwrap().pop().unwrap().1
}

/// The lines of a segment, without the zeroed space claimed after them.
fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .trim_end_matches('\0')
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn exported(dir: &Path) -> Vec<Checkpoint> {
    checkpoints(dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_chain_and_reopen() {
    let (_tmp, dir) = ledger_with(200).await;
    let report = verify(&dir, &[]).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 200);
    assert_eq!(report.last_seq, Some(200));
    assert_eq!(report.checkpoints_matched, 1);
    // Reopened, the chain goes on where it stopped.
    let ledger = Ledger::open(config(&dir)).unwrap();
    assert_eq!(ledger.append(record(1000)).await.unwrap(), 201);
    drop(ledger);
    let report = verify(&dir, &[]).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    // Closing signs the last entry too.
    assert_eq!(exported(&dir).last().unwrap().seq, 201);
    let mut seen = Vec::new();
    for_each_record(&dir, |r| seen.push(r.seq)).unwrap();
    assert_eq!(seen, (1..=201).collect::<Vec<_>>());
}

#[tokio::test]
async fn two_processes_share_one_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    // Two writers on one directory, as the server and the command line.
    let a = Ledger::open(config(&dir)).unwrap();
    let b = Ledger::open(config(&dir)).unwrap();
    for i in 0..10 {
        let (x, y) = (
            a.append(record(i)).await.unwrap(),
            b.append(record(i)).await.unwrap(),
        );
        assert_eq!((x, y), (2 * i + 1, 2 * i + 2));
    }
    drop((a, b));
    let report = verify(&dir, &[]).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 20);
}

#[tokio::test]
async fn edited_entry_is_found_exactly() {
    let (_tmp, dir) = ledger_with(30).await;
    let path = segment(&dir);
    let mut l = lines(&path);
    // Line 0 is the header; entry 17 is line 17.
    assert!(l[17].contains("\"seq\":17"));
    l[17] = l[17].replace("\"bytes\":116", "\"bytes\":1");
    write_lines(&path, &l);
    let report = verify(&dir, &[]).unwrap();
    assert_eq!(
        report.problems[0],
        Problem::Edited {
            seq: 17,
            file: path.clone(),
            line: 18
        }
    );
    assert!(report.problems[0].to_string().contains("entry 17"));
}

#[tokio::test]
async fn deleted_inserted_reordered_entries_are_found() {
    let (_tmp, dir) = ledger_with(30).await;
    let path = segment(&dir);
    let original = lines(&path);

    let mut deleted = original.clone();
    deleted.remove(12);
    write_lines(&path, &deleted);
    let r = verify(&dir, &[]).unwrap();
    assert!(
        matches!(
            r.problems[0],
            Problem::OutOfSequence {
                expected: 12,
                found: 13,
                ..
            }
        ),
        "{:?}",
        r.problems
    );
    assert!(r.problems[0].to_string().contains("deleted"));

    let mut inserted = original.clone();
    inserted.insert(6, original[5].clone());
    write_lines(&path, &inserted);
    let r = verify(&dir, &[]).unwrap();
    assert!(
        matches!(
            r.problems[0],
            Problem::OutOfSequence {
                expected: 6,
                found: 5,
                ..
            }
        ),
        "{:?}",
        r.problems
    );

    let mut reordered = original.clone();
    reordered.swap(8, 9);
    write_lines(&path, &reordered);
    let r = verify(&dir, &[]).unwrap();
    assert!(
        matches!(
            r.problems[0],
            Problem::OutOfSequence {
                expected: 8,
                found: 9,
                ..
            }
        ),
        "{:?}",
        r.problems
    );

    write_lines(&path, &original);
    assert!(verify(&dir, &[]).unwrap().intact());
}

#[tokio::test]
async fn truncation_and_rewrite_are_caught_by_exported_checkpoints() {
    let (_tmp, dir) = ledger_with(30).await;
    let export = exported(&dir);
    let path = segment(&dir);
    let original = lines(&path);

    // Cutting the end off, and the ledger's own checkpoints with it.
    write_lines(&path, &original[..21]);
    fs::remove_file(dir.join("checkpoints.log")).unwrap();
    assert!(
        verify(&dir, &[]).unwrap().intact(),
        "undetectable without an export"
    );
    let r = verify(&dir, &export).unwrap();
    assert_eq!(
        r.problems,
        vec![Problem::Truncated {
            checkpoint_seq: 30,
            last_seq: 20
        }]
    );

    // Rewriting an entry and every hash after it, consistently.
    let mut rewritten = original.clone();
    let mut prev = hex::decode(original[9].rsplit_once('\t').unwrap().1).unwrap();
    for line in rewritten.iter_mut().skip(10) {
        let json = line
            .rsplit_once('\t')
            .unwrap()
            .0
            .replace("203.0.113.7", "192.0.2.1");
        let hash = segment::chain(&prev.clone().try_into().unwrap(), &json);
        *line = format!("{json}\t{}", hex::encode(hash));
        prev = hash.to_vec();
    }
    write_lines(&path, &rewritten);
    assert!(
        verify(&dir, &[]).unwrap().intact(),
        "self-consistent without checkpoints"
    );
    let r = verify(&dir, &export).unwrap();
    assert!(
        matches!(
            r.problems[..],
            [Problem::Rewritten {
                checkpoint_seq: 30,
                ..
            }]
        ),
        "{:?}",
        r.problems
    );

    // A checkpoint forged with another key is not taken.
    let mut forged = export[0].clone();
    forged.key = [9; 32];
    let r = verify(&dir, &[forged]).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::BadSignature { .. }))
    );
}

#[tokio::test]
async fn crash_cut_line_is_dropped_on_open() {
    let (_tmp, dir) = ledger_with(5).await;
    let path = segment(&dir);
    // The writer claims zeroed space after the entries; a crash leaves the
    // start of the next entry there.
    let bytes = fs::read(&path).unwrap();
    let data_len = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(bytes.len() > data_len && bytes[data_len - 1] == b'\n');
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"{\"seq\":6,\"at\":17000", data_len as u64)
        .unwrap();
    drop(f);
    let r = verify(&dir, &[]).unwrap();
    assert!(r.intact() && r.notes.iter().any(|n| n.contains("bytes of an entry")));
    let ledger = Ledger::open(config(&dir)).unwrap();
    assert_eq!(ledger.append(record(6)).await.unwrap(), 6);
    drop(ledger);
    let r = verify(&dir, &[]).unwrap();
    assert!(r.intact() && r.notes.is_empty(), "{r:?}");
}

/// The query API streams across segments, stops at a crash-cut line and
/// at the claimed zeroed space, and selects by the filter.
#[tokio::test]
async fn query_streams_entries_across_segments_and_selects() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let mut cfg = config(&dir);
    cfg.segment_bytes = 2000; // a few entries per segment
    let ledger = Ledger::open(cfg).unwrap();
    for i in 0..30 {
        ledger.append(record(i)).await.unwrap();
    }
    drop(ledger);
    assert!(segment::list_segments(&dir).unwrap().len() > 3);
    // A crash left the start of another entry after the last one.
    let path = segment(&dir);
    let bytes = fs::read(&path).unwrap();
    let data_len = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"{\"seq\":31,\"at\":17000", data_len as u64)
        .unwrap();
    drop(f);
    let all: Vec<u64> = query::entries(&dir, query::Filter::default())
        .unwrap()
        .map(|r| r.unwrap().seq)
        .collect();
    assert_eq!(all, (1..=30).collect::<Vec<_>>());
    let filter = query::Filter {
        session: Some("s1".into()),
        since: Some(1_700_000_000_010),
        ..query::Filter::default()
    };
    let some: Vec<u64> = query::entries(&dir, filter)
        .unwrap()
        .map(|r| r.unwrap().seq)
        .collect();
    // record(i) has seq i + 1, session s(i % 3), time base + i.
    assert_eq!(some, vec![11, 14, 17, 20, 23, 26, 29]);
    let activity = report::Activity::collect(&dir, &query::Filter::default()).unwrap();
    assert_eq!(activity.totals().sessions, 3);
    assert_eq!(activity.groups().len(), 1);
    assert_eq!(activity.messages_read().len(), 31);
}

#[tokio::test]
async fn retention_removes_sealed_segments_and_the_chain_still_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let mut cfg = config(&dir);
    cfg.segment_bytes = 1; // a new segment for every write
    cfg.retention = Duration::from_secs(86_400);
    let ledger = Ledger::open(cfg).unwrap();
    for i in 0..6 {
        ledger.append(record(i)).await.unwrap();
    }
    ledger.checkpoint().await.unwrap();
    let listed = segment::list_segments(&dir).unwrap();
    let segments = listed.len();
    assert!(segments >= 6, "{segments} segments");
    // Sealed segments end with their last entry, without claimed space.
    for (_, path) in &listed[..segments - 1] {
        assert_eq!(fs::read(path).unwrap().last(), Some(&b'\n'), "{path:?}");
    }
    // Two days after the entries' time, all but the segment being written go.
    let removed = ledger
        .expire(1_700_000_000_000 + 2 * 86_400_000)
        .await
        .unwrap();
    assert_eq!(removed.len(), segments - 1);
    assert_eq!(ledger.append(record(7)).await.unwrap(), 7);
    drop(ledger);
    let r = verify(&dir, &[]).unwrap();
    assert!(r.intact(), "{:?}", r.problems);
    assert!(
        r.notes.iter().any(|n| n.contains("removed by retention")),
        "{:?}",
        r.notes
    );
    // Removing a segment without a retention note is not a retention cut.
    fs::remove_file(dir.join("cuts.log")).unwrap();
    let r = verify(&dir, &[]).unwrap();
    assert!(
        matches!(r.problems[0], Problem::MissingStart { .. }),
        "{:?}",
        r.problems
    );
}

#[tokio::test]
async fn only_news_goes_to_the_checkpoint_sink() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cfg = config(&dir);
    cfg.on_checkpoint = Some(tx);
    cfg.quiet_principal = Some("service:ledger-witness".into());
    let ledger = Ledger::open(cfg).unwrap();
    ledger.append(record(1)).await.unwrap();
    let first = ledger.checkpoint().await.unwrap().unwrap();
    assert_eq!(rx.try_recv().unwrap(), first);
    // The witness's own delivery: signed, but not sent again.
    let quiet = Record {
        principal: "service:ledger-witness".into(),
        ..record(2)
    };
    ledger.append(quiet).await.unwrap();
    assert!(ledger.checkpoint().await.unwrap().is_some());
    assert!(rx.try_recv().is_err());
    // Another process's entries (and the checkpoint it signed on closing) are news.
    let other = Ledger::open(config(&dir)).unwrap();
    other.append(record(3)).await.unwrap();
    drop(other);
    assert!(ledger.checkpoint().await.unwrap().is_none());
    assert_eq!(rx.try_recv().unwrap().seq, 3);
}

/// The operations of the entries in the ledger, in order.
fn operations(dir: &Path) -> Vec<String> {
    let mut ops = Vec::new();
    for_each_record(dir, |r| ops.push(r.operation)).unwrap();
    ops
}

#[tokio::test]
async fn unconfirmed_entries_are_written_in_order_and_never_lost_on_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let mut cfg = config(&dir);
    cfg.unconfirmed_delay = Duration::from_secs(1);
    let ledger = Ledger::open(cfg).unwrap();
    let op = |name: &str| Record {
        operation: name.into(),
        ..record(0)
    };

    // Alone, an unconfirmed entry waits for the delay, then is written.
    ledger.append_unconfirmed(op("status")).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(operations(&dir).is_empty(), "written before its delay");
    let mut waited = 0;
    while operations(&dir).is_empty() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(operations(&dir), ["status"]);

    // Followed by an awaited entry, it is written with it, in order, at once.
    ledger.append_unconfirmed(op("list-items")).unwrap();
    let seq = ledger.append(op("read-body")).await.unwrap();
    assert_eq!(seq, 3);
    assert_eq!(operations(&dir), ["status", "list-items", "read-body"]);

    // A checkpoint covers the unconfirmed entries queued before it.
    ledger.append_unconfirmed(op("flags")).unwrap();
    let c = ledger.checkpoint().await.unwrap().expect("a checkpoint");
    assert_eq!(c.seq, 4);

    // Closing writes what is still queued.
    ledger.append_unconfirmed(op("status")).unwrap();
    drop(ledger);
    assert_eq!(
        operations(&dir),
        ["status", "list-items", "read-body", "flags", "status"]
    );
    assert!(verify(&dir, &[]).unwrap().problems.is_empty());
}
