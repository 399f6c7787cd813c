//! Kill-while-writing: a child `rampart` stores messages and reports each
//! UID once it is durable; it is killed with SIGKILL mid-stream. Afterwards
//! the store must open, pass SQLite's integrity check, and hold every
//! reported message with its blob intact.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use rampart_store::MailboxRole;

fn message(k: usize) -> (String, Vec<u8>) {
    // Sizes from about 1 KB to 40 KB so that writes of several pages are cut too.
    let lines = 10 + (k * 7919) % 600;
    let body: Vec<String> = (0..lines)
        .map(|i| format!("line {i} of message {k}: the quick brown fox jumps over the lazy dog"))
        .collect();
    let mbox = format!(
        "From crash@test Mon Jan  1 00:00:00 2026\nSubject: msg {k}\nMessage-ID: <{k}@crash>\n\n{}\n\n",
        body.join("\n")
    );
    let stored = format!(
        "Subject: msg {k}\r\nMessage-ID: <{k}@crash>\r\n\r\n{}\r\n",
        body.join("\r\n")
    );
    (mbox, stored.into_bytes())
}

#[test]
fn sigkill_while_writing_loses_no_acknowledged_message() {
    let sb = Sandbox::new();
    sb.ok(&["init", "--domain", "example.org"], "");
    let mut acknowledged: Vec<u32> = Vec::new();
    let mut next_message = 1usize;
    // Kill after a different number of acknowledgements each round.
    for stop_after in [7usize, 31, 58] {
        let mut child = sb
            .cmd(&["mail", "import", "admin@example.org", "--print-uids"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let first = next_message;
        // Feed far more than will be stored before the kill.
        let feeder = std::thread::spawn(move || {
            for k in first..first + 500 {
                if stdin.write_all(message(k).0.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < stop_after {
            let line = lines.next().expect("import ended early").unwrap();
            let uid: u32 = line.strip_prefix("uid ").unwrap().parse().unwrap();
            acknowledged.push(uid);
            seen += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let _ = feeder.join();
        // UIDs are handed out in order; the next round continues after the
        // last acknowledged one (a message stored but not yet reported may exist).
        next_message = first + 500;
    }

    // SQLite's own check of the file after the kills.
    let conn = rusqlite::Connection::open(sb.data().join("rampart.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    // Every message the store holds; reading checks each blob against its hash.
    let stored = mailbox(&sb, "admin@example.org", MailboxRole::Inbox);
    for uid in &acknowledged {
        let (record, raw) = stored
            .iter()
            .find(|(m, _)| m.uid == *uid)
            .unwrap_or_else(|| panic!("acknowledged UID {uid} is missing"));
        let subject = String::from_utf8_lossy(&raw[..raw.len().min(40)]).to_string();
        let k: usize = subject
            .strip_prefix("Subject: msg ")
            .and_then(|s| s.split('\r').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("UID {uid} holds something else: {subject:?}"));
        assert_eq!(*raw, message(k).1, "UID {uid} content differs");
        assert_eq!(record.size, raw.len() as u64);
    }
    // Whatever else got stored (durable but not yet reported when the kill
    // came) is whole too (read above), and nothing is stored twice.
    let mut blobs: Vec<_> = stored.iter().map(|(m, _)| m.blob).collect();
    blobs.sort();
    blobs.dedup();
    assert_eq!(blobs.len(), stored.len(), "a message was stored twice");
    assert!(stored.len() >= acknowledged.len());

    // And the server starts on the store afterwards.
    let server = sb.serve(&[]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("no new credentials"))
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(server.stop().success());
}
