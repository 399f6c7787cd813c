//! The access ledger end to end: what an intruder read is answered exactly
//! by `rampart ledger`, tampering is caught, and a crash loses no entry of
//! anything a client received.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const PASSWORD: &str = "alice's long password";

fn python(sb: &Sandbox, server: &Server, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ledger_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(args[0])
        .arg(server.addr("imaps").port().to_string())
        .arg(sb.data().join("tls/cert.pem"))
        .arg(PASSWORD)
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ledger_client.py {} failed:\n{}{}",
        args[0],
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// One string field of every object in a JSON array.
fn field_of_each(v: &Value, field: &str) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o[field].as_str().unwrap().to_owned())
        .collect()
}

/// Subjects of every message a report lists as read.
fn subjects_read(report: &Value) -> BTreeSet<String> {
    report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["messages_read"].as_object().unwrap().values())
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (imaplib) as the IMAP client"
)]
fn intruder_report_lists_exactly_what_the_intruder_read() {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let added = sb.ok(
        &[
            "user",
            "app-password",
            "add",
            "alice@example.org",
            "old phone",
        ],
        "",
    );
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("app password: "))
        .unwrap()
        .to_owned();
    let expected = json(&python(&sb, &server, &["intruder", &secret]));

    let report = json(&sb.ok(
        &[
            "ledger",
            "report",
            "--address",
            "127.0.0.2",
            "--format",
            "json",
        ],
        "",
    ));
    assert_eq!(subjects_read(&report), strings(&expected["subjects"]));
    assert_eq!(report["totals"]["messages_read"], 37);
    // The one search, in the third mailbox; nothing the user did.
    let searches: Vec<&Value> = report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["searches"].as_array().unwrap())
        .collect();
    assert_eq!(searches.len(), 1, "{searches:?}");
    assert_eq!(searches[0]["mailbox"], "Personal");
    for s in report["sessions"].as_array().unwrap() {
        assert_eq!(s["client"], "127.0.0.2");
        assert_eq!(s["auth"], "app-password");
        assert_eq!(s["principal"], "alice@example.org");
    }
    assert_eq!(report["sessions"].as_array().unwrap().len(), 1);

    let persons = json(&sb.ok(
        &[
            "ledger",
            "subjects",
            "--address",
            "127.0.0.2",
            "--format",
            "json",
        ],
        "",
    ));
    assert_eq!(
        field_of_each(&persons, "address"),
        strings(&expected["addresses"])
    );

    // Both readers of alice's mail, each from its own address; and the
    // operator, whose audits for the reports above read her messages'
    // summaries (by her account and their ids) and say so, from the
    // command line.
    let readers = json(&sb.ok(
        &[
            "ledger",
            "who-read",
            "--owner",
            "alice@example.org",
            "--format",
            "json",
        ],
        "",
    ));
    assert_eq!(
        field_of_each(&readers, "client"),
        BTreeSet::from(["-".into(), "127.0.0.1".into(), "127.0.0.2".into()])
    );
    let audit = readers
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["client"] == "-")
        .unwrap();
    assert_eq!(audit["protocol"], "cli");

    let csv = sb.ok(
        &[
            "ledger",
            "report",
            "--address",
            "127.0.0.2",
            "--format",
            "csv",
        ],
        "",
    );
    assert_eq!(csv.lines().filter(|l| l.contains(",read,")).count(), 37);
    assert_eq!(csv.lines().filter(|l| l.contains(",search,")).count(), 1);
    let incident = sb.ok(&["ledger", "incident", "--address", "127.0.0.2"], "");
    for fact in [
        "client addresses: 127.0.0.2 (1)",
        "authentication: app-password (1)",
        "messages read: 37",
        "Verified intact",
    ] {
        assert!(incident.contains(fact), "{fact:?} not in:\n{incident}");
    }
    let markdown = sb.ok(&["ledger", "report", "--address", "127.0.0.2"], "");
    assert!(markdown.contains("| Projekte |") && markdown.contains("Projekte note 22"));

    // Export the checkpoints, then tamper with the stored ledger.
    let export = sb.ok(&["ledger", "checkpoint", "--export"], "");
    let export_file = sb.data().join("../checkpoints.txt");
    std::fs::write(&export_file, &export).unwrap();
    let verify_against_export = || {
        sb.fails(
            &[
                "ledger",
                "verify",
                "--checkpoints",
                export_file.to_str().unwrap(),
            ],
            "",
        )
    };
    assert!(
        sb.ok(
            &[
                "ledger",
                "verify",
                "--checkpoints",
                export_file.to_str().unwrap()
            ],
            ""
        )
        .contains("intact")
    );
    server.stop();
    let segment = only_segment(&sb.data().join("ledger"));
    // Without the zeroed space the writer claims after the entries.
    let text = std::fs::read_to_string(&segment)
        .unwrap()
        .trim_end_matches('\0')
        .to_owned();
    let edited = text.replacen("127.0.0.2", "127.0.0.9", 1);
    let seq = edited
        .lines()
        .find(|l| l.contains("127.0.0.9"))
        .and_then(|l| l.split("\"seq\":").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap()
        .to_owned();
    std::fs::write(&segment, edited).unwrap();
    let failure = verify_against_export();
    assert!(failure.contains(&format!("entry {seq} ")), "{failure}");
    // Cut off the end, own checkpoints too: only the export shows it.
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&segment, lines[..lines.len() - 5].join("\n") + "\n").unwrap();
    std::fs::remove_file(sb.data().join("ledger/checkpoints.log")).unwrap();
    sb.ok(&["ledger", "verify"], "");
    let failure = verify_against_export();
    assert!(failure.contains("removed from its end"), "{failure}");
}

/// Reports tell the client software of each session: IMAP ID's name and
/// version, the SMTP EHLO name, sanitised; sessions group by it.
#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (imaplib, smtplib) as the clients"
)]
fn reports_name_the_client_software_of_each_session() {
    let sb = Sandbox::new();
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let mx = server.addr("smtp").port().to_string();
    python(&sb, &server, &["software", &mx]);

    let report = json(&sb.ok(&["ledger", "report", "--format", "json"], ""));
    let sessions = report["sessions"].as_array().unwrap();
    let software = |client: &str, protocol: &str| -> BTreeSet<String> {
        sessions
            .iter()
            .filter(|s| s["client"] == client && s["protocol"] == protocol)
            .flat_map(|s| s["client_software"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    // Told after login, it still names the session's reads.
    assert_eq!(
        software("127.0.0.1", "imap"),
        BTreeSet::from(["Thunderbird 128.5.0".to_string()])
    );
    // The terminal escape is gone.
    assert_eq!(
        software("127.0.0.2", "imap"),
        BTreeSet::from(["harvest?[2J 0.1".to_string()])
    );
    assert_eq!(
        software("127.0.0.1", "smtp"),
        BTreeSet::from(["mail.partner.example".to_string()])
    );
    // The town's two Thunderbird sessions are one group.
    let groups = report["groups"].as_array().unwrap();
    let thunderbird: Vec<&Value> = groups
        .iter()
        .filter(|g| g["client_software"] == "Thunderbird 128.5.0")
        .collect();
    assert_eq!(thunderbird.len(), 1, "{groups:?}");
    assert_eq!(thunderbird[0]["sessions"], 2);
    assert_eq!(thunderbird[0]["principal"], "alice@example.org");

    let only_script = json(&sb.ok(
        &[
            "ledger",
            "who-read",
            "--owner",
            "alice@example.org",
            "--client-software",
            "HARVEST",
            "--format",
            "json",
        ],
        "",
    ));
    assert_eq!(
        field_of_each(&only_script, "client"),
        BTreeSet::from(["127.0.0.2".into()])
    );
    let markdown = sb.ok(&["ledger", "report", "--tz", "UTC"], "");
    assert!(
        markdown.contains("| alice@example.org | 127.0.0.1 | Thunderbird 128.5.0 | imap |"),
        "{markdown}"
    );
    let incident = sb.ok(&["ledger", "incident", "--session-detail", "0"], "");
    assert!(
        incident.contains("Thunderbird 128.5.0 (2)") && !incident.contains("## Sessions\n"),
        "{incident}"
    );
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("segment-")
        })
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.pop().unwrap()
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (imaplib) as the IMAP client"
)]
fn crash_during_reads_leaves_every_delivered_message_on_record() {
    let sb = Sandbox::new();
    sb.ok(&["init", "--domain", "example.org"], "");
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let mut mbox = String::new();
    for i in 1..=200 {
        mbox.push_str(&format!(
            "From sender@example.net Tue Sep  1 10:00:00 2026\nFrom: sender@example.net\nTo: alice@example.org\nSubject: crash {i}\n\n{}\n",
            "Lorem ipsum dolor sit amet.\n".repeat(200)
        ));
    }
    sb.ok(&["mail", "import", "alice@example.org"], &mbox);
    let received = sb.data().join("../received.txt");
    for round in 0..3 {
        let mut server = sb.serve(&[]);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ledger_client.py");
        let mut client = Command::new("python3")
            .arg(script)
            .arg("download")
            .arg(server.addr("imaps").port().to_string())
            .arg(sb.data().join("tls/cert.pem"))
            .arg(PASSWORD)
            .arg(&received)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        server.child.kill().unwrap(); // SIGKILL, mid-stream
        server.child.wait().unwrap();
        client.wait().unwrap();
    }
    let got: BTreeSet<String> = std::fs::read_to_string(&received)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        got.len() > 10,
        "the client received only {} messages",
        got.len()
    );
    let verified = sb.ok(&["ledger", "verify"], "");
    assert!(verified.contains("intact"), "{verified}");
    let report = json(&sb.ok(
        &[
            "ledger",
            "report",
            "--principal",
            "alice@example.org",
            "--format",
            "json",
        ],
        "",
    ));
    let recorded = subjects_read(&report);
    let missing: Vec<&String> = got.difference(&recorded).collect();
    assert!(missing.is_empty(), "received without an entry: {missing:?}");
}

#[test]
fn checkpoints_reach_the_witness_file_and_address() {
    let sb = Sandbox::new();
    let witness = sb.data().join("../witness.log");
    let config = std::fs::read_to_string(sb.config_path()).unwrap();
    sb.write_config(&format!(
        "{config}[ledger]\ncheckpoint_interval_seconds = 1\nwitness_address = \"dpo@example.org\"\nwitness_file = {:?}\n",
        witness.to_str().unwrap()
    ));
    sb.ok(&["init", "--domain", "example.org"], "");
    sb.ok(
        &["user", "add", "dpo@example.org", "--generate-password"],
        "",
    );
    let server = sb.serve(&[]);
    // Something to record: a CLI import, while the server runs.
    sb.ok(
        &["mail", "import", "dpo@example.org"],
        "From x Tue Sep  1 10:00:00 2026\nSubject: hello\n\nhi\n",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mailed = loop {
        let texts = mailbox_texts(&sb, "dpo@example.org", rampart_store::MailboxRole::Inbox);
        if let Some(t) = texts
            .iter()
            .find(|t| t.contains("Subject: Rampart ledger checkpoint"))
        {
            break t.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint mailed: {texts:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(mailed.contains("rampart-ledger-checkpoint v1 "), "{mailed}");
    server.stop();
    let filed = std::fs::read_to_string(&witness).unwrap();
    assert!(filed.lines().count() >= 1, "{filed}");
    // Both witnesses hold checkpoints the ledger verifies against.
    let mailed_file = sb.data().join("../mailed.txt");
    std::fs::write(
        &mailed_file,
        mailed
            .lines()
            .filter(|l| l.starts_with("rampart-ledger-checkpoint"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    for file in [&witness, &mailed_file] {
        let out = sb.ok(
            &["ledger", "verify", "--checkpoints", file.to_str().unwrap()],
            "",
        );
        assert!(out.contains("intact"), "{out}");
    }
}
