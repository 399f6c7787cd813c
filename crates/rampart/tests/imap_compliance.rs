//! IMAP protocol compliance, one test per point: each runs a scenario of
//! tests/python/imap_compliance.py (a raw-socket client whose expectations
//! come from the RFCs' own text and examples) against a real server over TLS.
//! tests/dovecot_compliance.sh runs the same scenarios against Dovecot.

mod common;

use std::process::Command;

use common::*;

const USER: &str = "alice@example.org";
const PASSWORD: &str = "alice's long password";

fn setup() -> (Sandbox, Server) {
    // Scenario `recent` holds several sessions open at once.
    let sb = Sandbox::custom("", "[imap]\nmax_connections_per_user = 20\n");
    let server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", USER, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    (sb, server)
}

/// Runs one scenario against a fresh server; panics with the script's
/// output (every failed point of the scenario) unless it passed.
fn compliance(scenario: &str) {
    let (sb, server) = setup();
    run_scenario(&sb, &server, scenario);
    server.stop();
}

/// Runs one scenario of the script; returns its output.
fn run_scenario(sb: &Sandbox, server: &Server, scenario: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/imap_compliance.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg("localhost") // the generated certificate names localhost
        .arg(server.addr("imaps").port().to_string())
        .arg(USER)
        .arg(PASSWORD)
        .env("COMPLIANCE_CAFILE", sb.data().join("tls/cert.pem"))
        .env(
            "COMPLIANCE_SUBMISSION_PORT",
            server.addr("submission").port().to_string(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains(&format!("{scenario}: ok")),
        "scenario {scenario} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

macro_rules! scenario {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        #[test]
        #[cfg_attr(
            not(rampart_test_python),
            ignore = "skipped: needs python3 as the IMAP client"
        )]
        fn $name() {
            compliance(stringify!($name));
        }
    };
}

scenario!(
    /// 1: FLAGS and PERMANENTFLAGS list keywords in use; STORE and APPEND of
    /// a new keyword send a new FLAGS (RFC 9051 §7.3.5, §6.3.2).
    keywords
);
scenario!(
    /// 3: THREAD=REFERENCES, THREAD=ORDEREDSUBJECT and SORT SUBJECT base
    /// subjects under i;ascii-casemap (RFC 5256).
    thread_sort
);
scenario!(
    /// 4: SORT FROM/TO/CC by the first addr-mailbox, group syntax skipped;
    /// SEARCH TO matches a group name (RFC 5256 §3, RFC 9051 §6.4.4).
    sort_addresses
);
scenario!(
    /// 5: SENTON/SENTBEFORE/SENTSINCE use the Date header's own day
    /// (RFC 9051 §6.4.4).
    sent_dates
);
scenario!(
    /// 6: \Recent in IMAP4rev1 sessions: claimed by the first session only,
    /// RECENT/NEW/OLD, STATUS, EXAMINE; none after ENABLE IMAP4rev2.
    recent
);
scenario!(
    /// 7: `a[b` is a valid name; a missing name is NO; impossible dates are
    /// refused; NFD and NFC spellings name one mailbox.
    names_dates
);
scenario!(
    /// 8: subscriptions survive DELETE and RENAME; RECURSIVEMATCH CHILDINFO;
    /// LSUB % returns an unsubscribed parent as \Noselect (RFC 5258, 3501).
    subscriptions
);
scenario!(
    /// 10: the first FETCH MODSEQ sends OK [HIGHESTMODSEQ]; ESEARCH MODSEQ
    /// for MIN/MAX (RFC 7162 §3.1, RFC 4731 §3.2).
    condstore
);
scenario!(
    /// 12: APPEND through a synchronising literal.
    append_literal
);
scenario!(
    /// 15: a message submitted over SMTP and then APPENDed to Sent is kept
    /// once, and APPENDUID names the kept copy.
    sent_dedup
);

/// 13: a client that stops reading mid-FETCH is dropped after
/// `[imap] write_timeout_seconds`, its slot is free again, and the log says so.
#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 as the IMAP client"
)]
fn write_timeout() {
    let sb = Sandbox::custom(
        "",
        "[imap]\nmax_connections_per_user = 1\nwrite_timeout_seconds = 2\n",
    );
    let mut server = sb.serve(&["--domain", "example.org"]);
    sb.ok(
        &["user", "add", USER, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let out = run_scenario(&sb, &server, "write_timeout");
    let mut log = String::new();
    let stderr = server.child.stderr.take();
    server.stop();
    if let Some(mut e) = stderr {
        std::io::Read::read_to_string(&mut e, &mut log).unwrap();
    }
    assert!(
        log.contains("closing connection: the client read nothing for 2 s"),
        "{out}\nlog:\n{log}"
    );
}

/// 15: `rampart user sent-copy ADDRESS off` stops the server's Sent copy;
/// the client's own APPEND is then kept.
#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 as the IMAP client"
)]
fn sent_copy_off() {
    let (sb, server) = setup();
    let out = sb.ok(&["user", "sent-copy", USER, "off"], "");
    assert!(out.contains("off"), "{out}");
    run_scenario(&sb, &server, "sent_copy_off");
    server.stop();
}

scenario!(
    /// SEARCHRES: SEARCH RETURN (SAVE) and `$` (RFC 5182, RFC 9051 §6.4.4.1).
    searchres
);

scenario!(
    /// Issue 12 point 4: submission refuses a From or Sender the user may
    /// not send as, and two From fields (553 5.7.1).
    forged_from
);
