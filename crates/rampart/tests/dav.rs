//! CalDAV and CardDAV, driven by the Python `caldav` library (a client
//! written by others) against the real server over TLS.

mod common;

use std::process::Command;

use common::*;

fn setup() -> (Sandbox, Server) {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    sb.ok(
        &["user", "add", "bob@example.org", "--password-stdin"],
        "bob's long password too\n",
    );
    (sb, server)
}

/// Runs one scenario of tests/python/dav_client.py; returns its output.
fn dav_scenario(sb: &Sandbox, server: &Server, scenario: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/dav_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg(server.addr("https").port().to_string())
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
            not(rampart_test_caldav),
            ignore = "skipped: needs python3 with the caldav library (pip install caldav) as the client"
        )]
        fn $name() {
            let (sb, server) = setup();
            let out = dav_scenario(&sb, &server, stringify!($name));
            print!("{out}");
            server.stop();
        }
    };
}

#[test]
#[cfg_attr(
    not(rampart_test_caldav),
    ignore = "skipped: needs python3 with the caldav library (pip install caldav) as the client"
)]
fn calendars() {
    let (sb, server) = setup();
    print!("{}", dav_scenario(&sb, &server, "calendars"));
    // Every read is in the ledger, as a calendar's, not as messages.
    let report: serde_json::Value = serde_json::from_str(&sb.ok(
        &[
            "ledger",
            "report",
            "--owner",
            "alice@example.org",
            "--format",
            "json",
        ],
        "",
    ))
    .unwrap();
    let text = report.to_string();
    assert!(text.contains("\"calendar:work\""), "{text}");
    assert_eq!(report["totals"]["messages_read"], 0, "{text}");
    let reads = sb.ok(
        &[
            "ledger",
            "report",
            "--owner",
            "alice@example.org",
            "--operation",
            "read-body",
        ],
        "",
    );
    assert!(reads.contains("read in calendar:work:"), "{reads}");
    server.stop();
}
scenario!(isolation);
scenario!(addressbooks);
scenario!(discovery);

/// vdirsyncer syncs the default calendar and address book both ways; the
/// run after that changes nothing.
#[test]
#[cfg_attr(
    not(rampart_test_vdirsyncer),
    ignore = "skipped: needs vdirsyncer (pip install vdirsyncer) and the caldav library"
)]
fn vdirsyncer_syncs_both_ways() {
    let (sb, server) = setup();
    let work = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/vdirsyncer_client.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(server.addr("https").port().to_string())
        .arg(sb.data().join("tls/cert.pem"))
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("vdirsyncer: ok"),
        "vdirsyncer failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{stdout}");
    server.stop();
}
