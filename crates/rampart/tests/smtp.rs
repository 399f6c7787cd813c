//! SMTP inbound and submission, driven by Python's smtplib against the real
//! server; the store is then read back to check what was (and was not) delivered.

mod common;

use std::process::Command;

use common::*;
use rampart_store::MailboxRole;

fn setup(extra: &str) -> (Sandbox, Server) {
    let sb = Sandbox::custom(
        "",
        &format!("[smtp]\nmax_recipients = 3\n[limits]\nmax_message_bytes = 100000\n{extra}"),
    );
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    sb.ok(
        &["user", "add", "bob@example.org", "--password-stdin"],
        "bob's long password!\n",
    );
    sb.ok(
        &["alias", "add", "info@example.org", "alice@example.org"],
        "",
    );
    sb.ok(&["group", "add", "team@example.org"], "");
    sb.ok(
        &[
            "group",
            "members",
            "team@example.org",
            "--add",
            "alice@example.org",
            "--add",
            "bob@example.org",
        ],
        "",
    );
    (sb, server)
}

/// Subjects of the messages in one of a user's mailboxes; each must carry our trace headers.
fn subjects(sb: &Sandbox, user: &str, role: MailboxRole) -> Vec<String> {
    mailbox_texts(sb, &format!("{user}@example.org"), role)
        .into_iter()
        .map(|text| {
            assert!(text.contains("\r\nReceived: from ") || text.starts_with("Received: from "));
            assert!(
                [
                    "Received: from ",
                    "DKIM-Signature: ",
                    "Authentication-Results: "
                ]
                .iter()
                .any(|h| text.starts_with(h)),
                "no trace header on top: {text}"
            );
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn inbound_and_submission_with_smtplib() {
    let (sb, server) = setup("");
    sb.ok(&["domain", "add", "Bücher.example"], "");
    sb.ok(
        &["alias", "add", "alice@bücher.example", "alice@example.org"],
        "",
    );
    for scenario in [
        "utf8",
        "inbound",
        "starttls_inbound",
        "limits",
        "smuggling",
        "bdat_and_pipelining",
        "submission",
    ] {
        smtp_scenario(&sb, &server, scenario);
    }
    let alice = subjects(&sb, "alice", MailboxRole::Inbox);
    assert_eq!(
        alice,
        ["grüße aus bücher", "inbound one", "over tls", "chunked"],
        "alice's inbox"
    );
    let bob = subjects(&sb, "bob", MailboxRole::Inbox);
    assert_eq!(bob, ["inbound one", "submitted", "via 465"], "bob's inbox");
    let sent = subjects(&sb, "alice", MailboxRole::Sent);
    assert_eq!(sent, ["submitted", "via 465"], "alice's Sent");
    assert!(server.stop().success());
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn failed_logins_ban_the_address_on_every_service() {
    let (sb, server) = setup("[security]\nfailed_logins_before_ban = 3\nfailure_delay_ms = 10\n");
    smtp_scenario(&sb, &server, "ban");
    assert!(server.stop().success());
}

fn messages(sb: &Sandbox, user: &str, role: MailboxRole) -> Vec<String> {
    mailbox_texts(sb, &format!("{user}@example.org"), role)
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn inbound_spf_and_dmarc_decide_and_are_recorded() {
    let (sb, server) = setup(
        "[dns]\nsource = \"static\"\n[dns.txt]\n\
         \"pass.example\" = \"v=spf1 ip4:127.0.0.1 -all\"\n\
         \"_dmarc.pass.example\" = \"v=DMARC1; p=reject\"\n\
         \"reject.example\" = \"v=spf1 ip4:192.0.2.1 -all\"\n\
         \"_dmarc.reject.example\" = \"v=DMARC1; p=reject\"\n\
         \"quarantine.example\" = \"v=spf1 ip4:192.0.2.1 -all\"\n\
         \"_dmarc.quarantine.example\" = \"v=DMARC1; p=quarantine\"\n\
         \"softfail.example\" = \"v=spf1 ~all\"\n\
         \"none.example\" = \"google-site-verification=abc\"\n\
         \"unknown.example\" = \"v=spf1 a:broken.example -all\"\n",
    );
    smtp_scenario(&sb, &server, "auth");
    let inbox = messages(&sb, "alice", MailboxRole::Inbox);
    let junk = messages(&sb, "alice", MailboxRole::Junk);
    let find = |list: &[String], domain: &str| {
        list.iter()
            .find(|m| m.contains(&format!("Subject: auth {domain}")))
            .cloned()
    };
    let results = |m: &str| {
        m.split("\r\n")
            .skip_while(|l| !l.starts_with("Authentication-Results:"))
            .take_while(|l| {
                l.starts_with("Authentication-Results:")
                    || l.starts_with('\t')
                    || l.starts_with(' ')
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let pass = find(&inbox, "pass.example").expect("pass.example delivered to the inbox");
    let r = results(&pass);
    assert!(r.contains("spf=pass") && r.contains("dmarc=pass"), "{r}");
    assert!(find(&inbox, "reject.example").is_none() && find(&junk, "reject.example").is_none());
    let q = find(&junk, "quarantine.example").expect("quarantined mail goes to Junk");
    let r = results(&q);
    assert!(r.contains("spf=fail") && r.contains("dmarc=fail"), "{r}");
    assert!(find(&inbox, "quarantine.example").is_none());
    let r = results(&find(&inbox, "softfail.example").unwrap());
    assert!(r.contains("spf=softfail"), "{r}");
    let r = results(&find(&inbox, "none.example").unwrap());
    assert!(r.contains("spf=none"), "{r}");
    let r = results(&find(&inbox, "unknown.example").unwrap());
    assert!(r.contains("spf=temperror"), "{r}");
    assert!(server.stop().success());
}

/// RFC 8601 §5: fields from outside that claim our authserv-id are removed
/// before delivery, however the name is spelt or the value folded; another
/// host's results and the body stay.
#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn forged_authentication_results_are_not_delivered() {
    let (sb, server) = setup("");
    smtp_scenario(&sb, &server, "forged_results");
    let inbox = messages(&sb, "alice", MailboxRole::Inbox);
    let delivered = inbox
        .iter()
        .find(|m| m.contains("Subject: forged results"))
        .expect("delivered to the inbox");
    let (header, body) = delivered.split_once("\r\n\r\n").unwrap();
    assert!(!header.contains("(fake-"), "{delivered}");
    assert!(
        header.contains("Authentication-Results: relay.example.net; spf=pass (kept-other)\r\n"),
        "{delivered}"
    );
    assert!(
        header.contains("\r\nFrom: mallory@example.net\r\n"),
        "{delivered}"
    );
    assert_eq!(
        body,
        "Authentication-Results: localhost; dmarc=pass (in-the-body)\r\n"
    );
    assert!(server.stop().success());
}

/// Runs swaks against the server; returns (success, transcript).
fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .args(["--timeout", "20", "--hide-informational"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
#[cfg_attr(
    not(rampart_test_swaks),
    ignore = "skipped: needs swaks (Debian package swaks) as the SMTP client"
)]
fn swaks_inbound_submission_pipelining_and_relay_refusal() {
    let (sb, server) = setup("");
    let mx_port = server.addr("smtp").port().to_string();
    let sub_port = server.addr("submission").port().to_string();
    let (ok, text) = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &mx_port,
        "--from",
        "dave@example.net",
        "--to",
        "alice@example.org",
        "--header",
        "Subject: via swaks",
        "--pipeline",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("250 2.0.0 OK accepted"), "{text}");
    let (ok, text) = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &mx_port,
        "--from",
        "dave@example.net",
        "--to",
        "victim@elsewhere.example",
    ]);
    assert!(!ok && text.contains("550 5.7.1"), "open relay? {text}");
    let (ok, text) = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &sub_port,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.org",
        "--auth-password",
        "alice's long password",
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.org",
        "--header",
        "Subject: swaks submission",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("235 2.7.0"), "{text}");
    let (ok, text) = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &sub_port,
        "--tls",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice@example.org",
        "--auth-password",
        "alice's long password",
        "--from",
        "bob@example.org",
        "--to",
        "bob@example.org",
    ]);
    assert!(!ok && text.contains("553 5.7.1"), "{text}");
    assert_eq!(subjects(&sb, "alice", MailboxRole::Inbox), ["via swaks"]);
    assert_eq!(
        subjects(&sb, "bob", MailboxRole::Inbox),
        ["swaks submission"]
    );
    assert!(server.stop().success());
}

#[test]
fn idle_and_overlong_sessions_are_closed() {
    use std::io::{BufRead, BufReader, Write};
    let sb = Sandbox::custom(
        "",
        "[smtp]\nidle_timeout_seconds = 1\nsession_timeout_seconds = 3\n",
    );
    let server = sb.serve(&["--domain", "example.org"]);
    let connect = || {
        let s = std::net::TcpStream::connect(server.addr("smtp")).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut greeting = String::new();
        r.read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("220 "), "{greeting}");
        (s, r)
    };
    // Silent client: closed after the idle timeout.
    let (_s, mut r) = connect();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("421 4.4.2"), "{line}");
    // Busy client: closed at the session limit all the same.
    let (mut s, mut r) = connect();
    let started = std::time::Instant::now();
    let last = loop {
        s.write_all(b"NOOP\r\n").unwrap();
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || !line.starts_with("250") {
            break line;
        }
        assert!(started.elapsed().as_secs() < 10, "session never ended");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(last.starts_with("421 4.4.2"), "{last}");
    assert!(server.stop().success());
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn mail_in_our_own_name_from_outside_is_refused() {
    let (sb, server) = setup("");
    smtp_scenario(&sb, &server, "own_domain_forged");
    let bob = subjects(&sb, "bob", MailboxRole::Inbox);
    assert_eq!(bob, ["not ours"], "bob's inbox");
    assert!(server.stop().success());
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn clients_that_talk_before_the_greeting_are_dropped() {
    let sb = Sandbox::custom(
        "",
        "[smtp]\npregreet_wait_ms = 300\npregreet_skip_loopback = false\n",
    );
    let server = sb.serve(&["--domain", "example.org"]);
    smtp_scenario(&sb, &server, "pregreet");
    assert!(server.stop().success());
}
