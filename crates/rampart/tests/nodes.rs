//! Two `rampart serve` processes on one PostgreSQL database: a message
//! delivered through one node reaches an IMAP IDLE session on the other
//! through the store's announcements (the periodic IDLE check is set to an
//! hour, so nothing else could bring it), and a client banned on one node
//! is refused by the other, and still after a restart.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;

const SETTINGS: &str = "[imap]\nidle_poll_seconds = 3600\nauth_without_tls_on_loopback = true\n\
     [security]\nfailed_logins_before_ban = 3\n";

fn node(url: &str) -> Sandbox {
    Sandbox::custom(
        "",
        &format!("{SETTINGS}[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
    )
}

/// The greeting of a plain IMAP connection.
fn greeting(server: &Server) -> String {
    read_line_tcp(server.addr("imap"))
}

/// One failed LOGIN over plain IMAP on loopback.
fn fail_login(server: &Server) {
    let mut stream = TcpStream::connect(server.addr("imap")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("* OK"), "{line}");
    stream
        .write_all(b"a1 LOGIN alice@example.org \"not her password\"\r\n")
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("a1 NO"), "{line}");
}

#[test]
#[cfg_attr(
    not(all(rampart_test_postgres, rampart_test_python)),
    ignore = "skipped: needs RAMPART_TEST_POSTGRES_URL (a PostgreSQL test database) and python3"
)]
fn two_nodes_share_changes_and_bans() {
    let url = fresh_postgres_store();
    let a = node(&url);
    let b = node(&url);
    let node_a = a.serve(&["--domain", "example.org"]);
    let node_b = b.serve(&[]);
    a.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );

    // IDLE on node B; the message comes in by SMTP through node A.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/imap_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("idle")
        .arg(node_b.addr("imap").port().to_string())
        .arg(node_b.addr("imaps").port().to_string())
        .arg(node_a.addr("smtp").port().to_string())
        .arg(b.data().join("tls/cert.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("idle: ok"),
        "IDLE on node B did not see node A's delivery:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{stdout}");

    // Three failures on node A ban loopback there...
    assert!(greeting(&node_b).starts_with("* OK"));
    for _ in 0..3 {
        fail_login(&node_a);
    }
    assert!(
        greeting(&node_a).contains("Too many failed logins"),
        "node A bans after three failures"
    );
    // ...and node B hears of it. Bounded only so that a broken build fails.
    let mut refused = false;
    for _ in 0..100 {
        if greeting(&node_b).contains("Too many failed logins") {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(refused, "node B never took up node A's ban");

    // A restarted node reads the ban from the database.
    node_b.stop();
    let node_b = b.serve(&[]);
    assert!(
        greeting(&node_b).contains("Too many failed logins"),
        "the ban outlives a restart"
    );
    node_b.stop();
    node_a.stop();
}
