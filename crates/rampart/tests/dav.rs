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
        &[
            "user",
            "add",
            "bob@example.org",
            "--name",
            "Bob Baker",
            "--password-stdin",
        ],
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

/// `rampart ledger subjects` of one reader: all of it, and the addresses
/// whose address-list entries were returned to them.
fn directory_subjects(sb: &Sandbox, reader: &str) -> (String, Vec<String>) {
    let subjects: serde_json::Value = serde_json::from_str(&sb.ok(
        &[
            "ledger",
            "subjects",
            "--principal",
            reader,
            "--format",
            "json",
        ],
        "",
    ))
    .unwrap();
    let in_directory = subjects
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in_directory"] == true)
        .map(|p| p["address"].as_str().unwrap().to_owned())
        .collect();
    (subjects.to_string(), in_directory)
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

/// The organisation's address list as the read-only `directory` book: the
/// domain's people and contacts, nobody else's, every read in the ledger.
#[test]
#[cfg_attr(
    not(rampart_test_caldav),
    ignore = "skipped: needs python3 with the caldav library (pip install caldav) as the client"
)]
fn directory() {
    let (sb, server) = setup();
    sb.ok(
        &[
            "user",
            "profile",
            "bob@example.org",
            "--title",
            "Town clerk",
            "--department",
            "Registry",
            "--phone",
            "+49 30 5550",
            "--office",
            "Town hall, room 12",
        ],
        "",
    );
    sb.ok(&["domain", "add", "other.example"], "");
    sb.ok(
        &["user", "add", "carol@other.example", "--password-stdin"],
        "carol's long password\n",
    );
    let vcf = sb.data().join("../contacts.vcf");
    std::fs::write(
        &vcf,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:fire-1\r\nFN:Fire Brigade\r\nEMAIL:fire@town.example\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No UID here\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let imported = sb.ok(
        &["contact", "import", "example.org", vcf.to_str().unwrap()],
        "",
    );
    assert!(imported.contains("imported 1 contacts"), "{imported}");
    sb.ok(
        &[
            "contact",
            "add",
            "other.example",
            "--name",
            "Their Plumber",
            "--email",
            "plumber@other.example",
        ],
        "",
    );
    let listed = sb.ok(&["contact", "list", "example.org"], "");
    assert!(listed.contains("fire-1\tFire Brigade"), "{listed}");
    print!("{}", dav_scenario(&sb, &server, "directory"));
    // Every directory read is recorded, naming the entries returned.
    let report = sb.ok(
        &[
            "ledger",
            "report",
            "--operation",
            "directory-query",
            "--format",
            "json",
        ],
        "",
    );
    assert!(report.contains("directory:example.org"), "{report}");
    assert!(!report.contains("directory:other.example"), "{report}");
    // A dumped directory counts its people as data subjects.
    let (subjects, in_directory) = directory_subjects(&sb, "alice@example.org");
    for expected in ["alice@example.org", "bob@example.org", "fire@town.example"] {
        assert!(
            in_directory.iter().any(|a| a == expected),
            "{expected}: {subjects}"
        );
    }
    assert!(!subjects.contains("carol"), "{subjects}");
    server.stop();
}

/// Fetching one card of the directory records that one; listing the
/// address-book home records nobody's.
#[test]
#[cfg_attr(
    not(rampart_test_caldav),
    ignore = "skipped: needs python3 with the caldav library (pip install caldav) as the client"
)]
fn directory_reads_are_recorded_exactly() {
    let (sb, server) = setup();
    print!("{}", dav_scenario(&sb, &server, "directory_one_card"));
    let (subjects, in_directory) = directory_subjects(&sb, "alice@example.org");
    assert_eq!(in_directory, ["bob@example.org"], "{subjects}");
    server.stop();
}

/// A calendar shared for reading, then for writing: it appears in the
/// grantee's home, the rights hold, others see nothing, and the ledger
/// names the grantee as a reader of the owner's data.
#[test]
#[cfg_attr(
    not(rampart_test_caldav),
    ignore = "skipped: needs python3 with the caldav library (pip install caldav) as the client"
)]
fn sharing() {
    let (sb, server) = setup();
    sb.ok(
        &["user", "add", "carol@example.org", "--password-stdin"],
        "carol's long password\n",
    );
    print!("{}", dav_scenario(&sb, &server, "sharing_1"));
    let shared = sb.ok(
        &[
            "share",
            "add",
            "alice@example.org",
            "calendar",
            "calendar",
            "bob@example.org",
        ],
        "",
    );
    assert!(shared.contains("(read)"), "{shared}");
    print!("{}", dav_scenario(&sb, &server, "sharing_2"));
    sb.ok(
        &[
            "share",
            "add",
            "alice@example.org",
            "calendar",
            "calendar",
            "bob@example.org",
            "--rights",
            "write",
        ],
        "",
    );
    let listed = sb.ok(
        &["share", "list", "alice@example.org", "calendar", "calendar"],
        "",
    );
    assert_eq!(listed.trim(), "bob@example.org\twrite");
    print!("{}", dav_scenario(&sb, &server, "sharing_3"));
    let who: serde_json::Value = serde_json::from_str(&sb.ok(
        &[
            "ledger",
            "who-read",
            "--owner",
            "alice@example.org",
            "--format",
            "json",
        ],
        "",
    ))
    .unwrap();
    assert!(who.to_string().contains("bob@example.org"), "{who}");
    assert!(!who.to_string().contains("carol@example.org"), "{who}");
    sb.ok(
        &[
            "share",
            "remove",
            "alice@example.org",
            "calendar",
            "calendar",
            "bob@example.org",
        ],
        "",
    );
    assert_eq!(
        sb.ok(
            &["share", "list", "alice@example.org", "calendar", "calendar"],
            ""
        )
        .trim(),
        ""
    );
    server.stop();
}

/// More HTTPS connections from one address than allowed are closed at
/// once; the ones within the limit stay open.
#[test]
fn connections_per_address_are_limited() {
    use std::io::Read;
    let sb = Sandbox::custom("", "[dav]\nmax_connections_per_address = 2\n");
    let server = sb.serve(&["--domain", "example.org"]);
    let addr = server.addr("https");
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Let the server take both before the third arrives.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut third = std::net::TcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = third
        .read(&mut buf)
        .expect("the third connection was left hanging");
    assert_eq!(
        n, 0,
        "the third connection got data instead of being closed"
    );
    // The first two are still open: the server waits for their handshake.
    let mut first = held.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let still_open = matches!(
        first.read(&mut buf),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut
    );
    assert!(still_open, "a connection within the limit was closed");
    drop(first);
    server.stop();
}

/// Hostile and oversized requests against small `[dav]` limits: each gets
/// the status its limit names, with the config key in the reason.
#[test]
#[cfg_attr(
    not(rampart_test_caldav),
    ignore = "skipped: needs python3 with the caldav library (pip install caldav) as the client"
)]
fn limits() {
    let sb = Sandbox::custom(
        "",
        "[dav]\nmax_request_bytes = 65536\nmax_resource_bytes = 16384\nmax_xml_depth = 16\n\
         max_xml_elements = 200\nmax_components = 20\nmax_multiget_hrefs = 50\nmax_expand_days = 400\n",
    );
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    print!("{}", dav_scenario(&sb, &server, "limits"));
    server.stop();
}
