//! Crash safety of SMTP delivery (rule R8): while a client sends messages
//! until 250 of them got a 250 (over at least three kills), the server is
//! killed with SIGKILL at random moments and restarted. Every message that got a 250 must be in the mailbox exactly
//! once; one that did not may be there at most once (the kill can fall
//! between the commit and the reply), and nothing else may be.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rampart_store::MailboxRole;

/// Acknowledged messages the test wants before it checks the mailbox: how
/// many get through between kills depends on the machine's speed, so the
/// client sends until it has them rather than a fixed number.
const ACKNOWLEDGED_WANTED: usize = 250;
/// Kills the test wants to have happened meanwhile.
const KILLS_WANTED: usize = 3;
/// Attempts after which a server that acknowledges too little is a failure.
const MAX_ATTEMPTS: usize = 5000;

/// A tiny deterministic PRNG, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line);
        }
    }
}

/// Sends message `k` on a fresh connection; `Ok(true)` when it got a 250.
fn send(addr: SocketAddr, k: usize) -> std::io::Result<bool> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    reply(&mut reader)?;
    let body_lines = 20 + (k * 37) % 400;
    let body: String = (0..body_lines)
        .map(|i| format!("line {i} of crash message {k}\r\n"))
        .collect();
    for (cmd, want) in [
        ("EHLO crash.example\r\n".to_string(), "250"),
        ("MAIL FROM:<sender@example.net>\r\n".to_string(), "250"),
        ("RCPT TO:<alice@example.org>\r\n".to_string(), "250"),
        ("DATA\r\n".to_string(), "354"),
    ] {
        writer.write_all(cmd.as_bytes())?;
        if !reply(&mut reader)?.starts_with(want) {
            return Ok(false);
        }
    }
    writer.write_all(
        format!("Subject: crash {k}\r\nMessage-ID: <crash-{k}@test>\r\n\r\n{body}.\r\n").as_bytes(),
    )?;
    let last = reply(&mut reader)?;
    let _ = writer.write_all(b"QUIT\r\n");
    Ok(last.starts_with("250"))
}

#[test]
fn sigkill_during_smtp_delivery_loses_and_duplicates_nothing_acknowledged() {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    let server = Arc::new(Mutex::new(server));
    let addr = Arc::new(Mutex::new(server.lock().unwrap().addr("smtp")));
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));

    // The killer: SIGKILL at random moments, then restart on the same data.
    let killer = {
        let (server, addr, done, kills) =
            (server.clone(), addr.clone(), done.clone(), kills.clone());
        let data = sb.data();
        let config = sb.config_path();
        std::thread::spawn(move || {
            let mut rng = Lcg(0x5eed);
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10 + rng.next(60)));
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let mut guard = server.lock().unwrap();
                guard.child.kill().unwrap(); // SIGKILL
                guard.child.wait().unwrap();
                kills.fetch_add(1, Ordering::SeqCst);
                let restarted = Sandbox::serve_at(&config, &data, &[]);
                *addr.lock().unwrap() = restarted.addr("smtp");
                *guard = restarted;
            }
        })
    };

    let mut acknowledged = Vec::new();
    let mut unacknowledged = Vec::new();
    for k in 0..MAX_ATTEMPTS {
        if acknowledged.len() >= ACKNOWLEDGED_WANTED && kills.load(Ordering::SeqCst) >= KILLS_WANTED
        {
            break;
        }
        let target = *addr.lock().unwrap();
        match send(target, k) {
            Ok(true) => acknowledged.push(k),
            Ok(false) | Err(_) => {
                unacknowledged.push(k);
                // The server is down or restarting: give it a moment, as a real client would.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    let kills = kills.load(Ordering::SeqCst);
    assert!(
        kills >= KILLS_WANTED,
        "only {kills} kills happened: the test proves too little"
    );
    assert!(
        acknowledged.len() >= ACKNOWLEDGED_WANTED,
        "too few deliveries: {} in {MAX_ATTEMPTS} attempts",
        acknowledged.len()
    );
    server.lock().unwrap().child.kill().unwrap();
    server.lock().unwrap().child.wait().unwrap();

    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for text in mailbox_texts(&sb, "alice@example.org", MailboxRole::Inbox) {
        let k: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: crash "))
            .and_then(|n| n.trim().parse().ok())
            .expect("every stored message is one the client sent, whole");
        assert!(
            text.ends_with(&format!(
                "line {} of crash message {k}\r\n",
                20 + (k * 37) % 400 - 1
            )),
            "message {k} is cut"
        );
        *counts.entry(k).or_default() += 1;
    }
    for k in &acknowledged {
        assert_eq!(
            counts.get(k),
            Some(&1),
            "acknowledged message {k} is stored {:?} times",
            counts.get(k)
        );
    }
    for k in &unacknowledged {
        assert!(
            counts.get(k).copied().unwrap_or(0) <= 1,
            "unacknowledged message {k} is stored twice"
        );
    }
    eprintln!(
        "{} acknowledged, {} not, {kills} kills; {} stored",
        acknowledged.len(),
        unacknowledged.len(),
        counts.values().sum::<usize>()
    );
}
