//! IMAP, driven by Python's imaplib (and a raw socket client for exact
//! responses) against the real server over TLS.

mod common;

use std::process::Command;

use common::*;

fn setup() -> (Sandbox, Server) {
    let sb = Sandbox::custom(
        "",
        "[imap]\nmax_command_bytes = 4096\nmax_sequence_ranges = 100\nmax_connections_per_user = 3\nmax_bad_commands = 10\n\
         [limits]\nmax_message_bytes = 100000\n",
    );
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    (sb, server)
}

/// Runs one scenario of tests/python/imap_client.py; returns its output.
fn imap_scenario(sb: &Sandbox, server: &Server, scenario: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/imap_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg(server.addr("imap").port().to_string())
        .arg(server.addr("imaps").port().to_string())
        .arg(server.addr("smtp").port().to_string())
        .arg(sb.data().join("tls/cert.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scenario {scenario} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{scenario}: ok")), "{stdout}");
    stdout
}

macro_rules! scenario {
    ($name:ident) => {
        #[test]
        #[cfg_attr(
            not(rampart_test_python),
            ignore = "skipped: needs python3 (imaplib) as the IMAP client"
        )]
        fn $name() {
            let (sb, server) = setup();
            let out = imap_scenario(&sb, &server, stringify!($name));
            print!("{out}");
            server.stop();
        }
    };
}

scenario!(auth);
scenario!(mailboxes);
scenario!(messages);
scenario!(concurrent);
scenario!(idle);
scenario!(qresync);
scenario!(limits);
scenario!(thunderbird);
