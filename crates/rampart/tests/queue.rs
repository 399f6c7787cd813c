//! Outbound delivery: a message submitted to one Rampart is queued and
//! delivered to a second Rampart (the remote domain's server) over SMTP;
//! permanent failures bounce to the sender, temporary ones are retried and
//! reported as delayed, and the queue CLI shows and removes what is left.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use rampart_store::MailboxRole;

fn mailbox(sb: &Sandbox, local: &str, domain: &str, role: MailboxRole) -> Vec<String> {
    mailbox_texts(sb, &format!("{local}@{domain}"), role)
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn submitted_mail_is_relayed_bounced_and_retried() {
    // Our server, set up first so that its DNS records can be "published" to the other.
    let dead_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let local = Sandbox::new();
    local.ok(&["init", "--domain", "example.org"], "");
    let records = local.ok(&["dns", "example.org"], "");
    // Client discovery beside the mail records (RFC 6186, RFC 6764).
    for service in ["imaps", "submissions", "caldavs", "carddavs"] {
        assert!(
            records
                .lines()
                .any(|l| l.starts_with(&format!("_{service}._tcp.example.org.\tIN SRV 0 1 "))),
            "{service}: {records}"
        );
    }
    assert!(records.contains("_caldavs._tcp.example.org.\tIN TXT \"path=/dav/\""));
    let published: Vec<(String, String)> = records
        .lines()
        .filter(|l| !l.starts_with("_caldavs.") && !l.starts_with("_carddavs."))
        .filter_map(|l| {
            let (name, rest) = l.split_once("\tIN TXT ")?;
            let value: String = rest.split('"').skip(1).step_by(2).collect();
            Some((name.trim_end_matches('.').to_string(), value))
        })
        .collect();
    assert_eq!(
        published.len(),
        4,
        "SPF, two DKIM keys, DMARC: {published:?}"
    );

    // The remote domain's server: a second Rampart, which sees our records in its DNS.
    let mut remote_dns = String::from("[dns]\nsource = \"static\"\n[dns.txt]\n");
    for (name, value) in &published {
        // Our test server sends from 127.0.0.1, which the published "mx" SPF cannot resolve here.
        let value = if value.starts_with("v=spf1") {
            "v=spf1 ip4:127.0.0.1 -all"
        } else {
            value
        };
        remote_dns.push_str(&format!("\"{name}\" = \"{value}\"\n"));
    }
    let remote = Sandbox::custom("", &remote_dns);
    let remote_server = remote.serve(&["--domain", "remote.example"]);
    remote.ok(
        &["user", "add", "bob@remote.example", "--password-stdin"],
        "bob's long password!\n",
    );
    let remote_port = remote_server.addr("smtp").port();

    local.write_config(&format!(
        "{}[queue]\nretry_base_seconds = 1\ndelay_notice_seconds = 0\npoll_interval_seconds = 1\nio_timeout_seconds = 5\n\
         [relay.routes]\n\"remote.example\" = \"127.0.0.1:{remote_port}\"\n\"dead.example\" = \"127.0.0.1:{dead_port}\"\n",
        std::fs::read_to_string(local.config_path()).unwrap()
    ));
    let server = local.serve(&[]);
    local.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );

    smtp_scenario(&local, &server, "relay");

    // Delivered to the remote server, with our Received header on top of its own.
    wait_for("delivery to bob@remote.example", || {
        !mailbox(&remote, "bob", "remote.example", MailboxRole::Inbox).is_empty()
    });
    let delivered = mailbox(&remote, "bob", "remote.example", MailboxRole::Inbox);
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].contains("Subject: going out"));
    assert_eq!(
        delivered[0].matches("Received: from ").count(),
        2,
        "{}",
        delivered[0]
    );
    // Our queue used the remote server's STARTTLS (opportunistic TLS).
    assert!(delivered[0].contains("with ESMTPS id"), "{}", delivered[0]);
    // Signed with both of example.org's keys ...
    assert_eq!(
        delivered[0].matches("DKIM-Signature:").count(),
        2,
        "{}",
        delivered[0]
    );
    assert!(delivered[0].contains("d=example.org") && delivered[0].contains("s=rampart-rsa"));
    // ... and the receiving server verified both with the published keys.
    let results: String = delivered[0]
        .split("\r\n")
        .skip_while(|l| !l.starts_with("Authentication-Results:"))
        .take_while(|l| l.starts_with("Authentication-Results:") || l.starts_with('\t'))
        .collect();
    assert_eq!(results.matches("dkim=pass").count(), 2, "{results}");

    assert!(
        results.contains("spf=pass") && results.contains("dmarc=pass"),
        "{results}"
    );

    // Reports to alice: the unknown remote user bounces (NOTIFY=FAILURE), the
    // dead host yields a delay notice (default NOTIFY), bob's delivery is
    // reported (NOTIFY=SUCCESS), and ghost's failure is not (NOTIFY=NEVER).
    wait_for(
        "the bounce, the delay notice and the success report",
        || mailbox(&local, "alice", "example.org", MailboxRole::Inbox).len() >= 3,
    );
    let inbox = mailbox(&local, "alice", "example.org", MailboxRole::Inbox);
    let bounce = inbox
        .iter()
        .find(|m| m.contains("Action: failed"))
        .expect("a failure report");
    assert!(bounce.contains("multipart/report; report-type=delivery-status"));
    assert!(bounce.contains("Final-Recipient: rfc822; nobody@remote.example"));
    assert!(bounce.contains("550 5.1.1"), "{bounce}");
    assert!(
        bounce.contains("Subject: going out"),
        "original headers included"
    );
    // RET=FULL: the whole message comes back; ENVID is echoed.
    assert!(bounce.contains("Content-Type: message/rfc822"), "{bounce}");
    assert!(bounce.contains("Hello from smtplib."), "{bounce}");
    assert!(
        bounce.contains("Original-Envelope-Id: QQ314159"),
        "{bounce}"
    );
    assert!(
        !bounce.contains("ghost@remote.example"),
        "NOTIFY=NEVER: {bounce}"
    );
    assert!(
        inbox
            .iter()
            .all(|m| !m.contains("Final-Recipient: rfc822; ghost@"))
    );
    let relayed = inbox
        .iter()
        .find(|m| m.contains("Action: relayed"))
        .expect("a success report for bob");
    assert!(relayed.contains("Final-Recipient: rfc822; bob@remote.example"));
    assert!(
        relayed.contains("Original-Recipient: rfc822; Bob@Remote.example"),
        "{relayed}"
    );
    assert!(
        !bounce.contains("bob@remote.example\r\nAction"),
        "bob was delivered"
    );
    let delay = inbox
        .iter()
        .find(|m| m.contains("Action: delayed"))
        .expect("a delay report");
    assert!(delay.contains("Final-Recipient: rfc822; x@dead.example"));
    assert_eq!(inbox.len(), 3, "one report each, not one per retry");

    // Our own signed message, come back in through our MX (as a list that
    // keeps it intact would send it): delivered; unsigned or changed, refused.
    let replay = local.data().join("replay.eml");
    std::fs::write(&replay, &delivered[0]).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/smtp_client.py"
        ))
        .arg("own_domain_replay")
        .arg(server.addr("smtp").port().to_string())
        .arg(server.addr("submission").port().to_string())
        .arg(server.addr("submissions").port().to_string())
        .arg(local.data().join("tls/cert.pem"))
        .env("REPLAY", &replay)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let back: Vec<String> = mailbox(&local, "alice", "example.org", MailboxRole::Inbox)
        .into_iter()
        // The message itself, not the delivery reports that quote it.
        .filter(|m| {
            let header = m.split("\r\n\r\n").next().unwrap_or_default();
            header.contains("\r\nSubject: going out")
        })
        .collect();
    assert_eq!(back.len(), 1, "only the intact signed copy came back in");
    assert!(!back[0].contains("Subject: going out now"));

    // The queue shows what is left, with its error, and removes it.
    let list = local.ok(&["queue", "list"], "");
    assert!(
        list.contains("x@dead.example") && list.contains("pending"),
        "{list}"
    );
    assert!(list.contains("cannot connect"), "{list}");
    assert!(list.contains("delivered  bob@remote.example"), "{list}");
    assert!(list.contains("failed     nobody@remote.example"), "{list}");
    let id = list.split_whitespace().next().unwrap().to_string();
    let show = local.ok(&["queue", "show", &id], "");
    assert!(show.contains("sender:   alice@example.org"), "{show}");
    local.ok(&["queue", "remove", &id], "");
    assert_eq!(local.ok(&["queue", "list"], ""), "the queue is empty\n");
    let err = local.fails(&["queue", "remove", &id], "");
    assert!(err.contains("does not exist"), "{err}");

    assert!(server.stop().success());
    assert!(remote_server.stop().success());
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn smarthost_with_authentication_over_verified_tls() {
    // The smarthost: a second Rampart where alice@example.org has an account too.
    let hub = Sandbox::new();
    let hub_server = hub.serve(&["--domain", "example.org"]);
    hub.ok(&["domain", "add", "remote.example"], "");
    hub.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "relay password 123\n",
    );
    hub.ok(
        &["user", "add", "bob@remote.example", "--password-stdin"],
        "bob's long password!\n",
    );
    let hub_port = hub_server.addr("submission").port();

    let local = Sandbox::custom(
        "",
        &format!(
            "[queue]\npoll_interval_seconds = 1\nio_timeout_seconds = 5\n\
             [relay]\nsmarthost = \"localhost:{hub_port}\"\nsmarthost_user = \"alice@example.org\"\n\
             smarthost_password = \"relay password 123\"\nsmarthost_ca_file = \"{}\"\n",
            hub.data().join("tls/cert.pem").display()
        ),
    );
    let server = local.serve(&["--domain", "example.org"]);
    local.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    smtp_scenario(&local, &server, "relay_one");

    wait_for("delivery through the smarthost", || {
        !mailbox(&hub, "bob", "remote.example", MailboxRole::Inbox).is_empty()
    });
    let delivered = mailbox(&hub, "bob", "remote.example", MailboxRole::Inbox);
    assert!(delivered[0].contains("Subject: one for bob"));
    // Both hops were authenticated sessions over TLS: alice's submission to
    // us, and our queue's to the hub.
    assert_eq!(
        delivered[0].matches("with ESMTPSA id").count(),
        2,
        "{}",
        delivered[0]
    );
    wait_for("the queue to empty", || {
        local.ok(&["queue", "list"], "") == "the queue is empty\n"
    });
    assert!(server.stop().success());
    assert!(hub_server.stop().success());
}

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib) as the SMTP client"
)]
fn queued_mail_survives_a_kill_and_is_delivered_once_after_restart() {
    // The next hop is down while the message is queued.
    let hop_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let local = Sandbox::custom(
        "",
        &format!(
            "[queue]\nretry_base_seconds = 1\npoll_interval_seconds = 1\nio_timeout_seconds = 5\n\
             [relay.routes]\n\"remote.example\" = \"127.0.0.1:{hop_port}\"\n"
        ),
    );
    let mut server = local.serve(&["--domain", "example.org"]);
    local.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    smtp_scenario(&local, &server, "relay_one");
    wait_for("a failed first attempt", || {
        local.ok(&["queue", "list"], "").contains("cannot connect")
    });
    server.child.kill().unwrap(); // SIGKILL: no chance to tidy up
    server.child.wait().unwrap();

    // The next hop comes up; the server restarts and delivers what was queued.
    let remote = Sandbox::custom(&format!("smtp = [\"127.0.0.1:{hop_port}\"]\n"), "");
    let remote_server = remote.serve(&["--domain", "remote.example"]);
    remote.ok(
        &["user", "add", "bob@remote.example", "--password-stdin"],
        "bob's long password!\n",
    );
    let server = local.serve(&[]);
    wait_for("delivery after the restart", || {
        !mailbox(&remote, "bob", "remote.example", MailboxRole::Inbox).is_empty()
    });
    wait_for("the queue to empty", || {
        local.ok(&["queue", "list"], "") == "the queue is empty\n"
    });
    // A little longer: nothing else may arrive.
    std::thread::sleep(Duration::from_secs(2));
    let delivered = mailbox(&remote, "bob", "remote.example", MailboxRole::Inbox);
    assert_eq!(delivered.len(), 1, "delivered exactly once");
    assert!(delivered[0].contains("Subject: one for bob"));
    assert!(server.stop().success());
    assert!(remote_server.stop().success());
}

/// A CA and certificates it signs, as PEM files in `dir`.
fn test_pki(dir: &std::path::Path, leaves: &[(&str, &[&str])]) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    for (name, sans) in leaves {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// A child process that is killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTPS server for MTA-STS policies (Python's http.server), by Host header.
const POLICY_SERVER: &str = r#"
import http.server, ssl, sys
policies = {
    "mta-sts.remote.example": "version: STSv1\r\nmode: enforce\r\nmx: mx.remote.example\r\nmax_age: 86400\r\n",
    "mta-sts.wrong.example": "version: STSv1\r\nmode: enforce\r\nmx: mail.wrong.example\r\nmax_age: 86400\r\n",
}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = policies.get(self.headers.get("Host", ""), "").encode()
        if self.path != "/.well-known/mta-sts.txt" or not body:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 443), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;

#[test]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (smtplib, http.server)"
)]
fn mta_sts_enforce_policies_decide_where_and_how_mail_goes() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: needs root to listen on ports 25 and 443 as MTA-STS requires");
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    test_pki(
        pki.path(),
        &[
            ("mx", &["mx.remote.example"]),
            (
                "policy",
                &["mta-sts.remote.example", "mta-sts.wrong.example"],
            ),
        ],
    );
    let mut policy_server = KillOnDrop(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(POLICY_SERVER)
            .arg(pki.path().join("policy.pem"))
            .arg(pki.path().join("policy.key"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(policy_server.0.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "policy server did not start");

    // The MX of remote.example, on port 25 with a certificate from the test CA.
    let remote = Sandbox::custom(
        "smtp = [\"127.0.0.1:25\"]\n",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            pki.path().join("mx.pem").display(),
            pki.path().join("mx.key").display()
        ),
    );
    let remote_server = remote.serve(&["--domain", "remote.example"]);
    remote.ok(
        &["user", "add", "bob@remote.example", "--password-stdin"],
        "bob's long password!\n",
    );

    let local = Sandbox::custom(
        "",
        &format!(
            "[queue]\npoll_interval_seconds = 1\nio_timeout_seconds = 5\ntls_ca_file = \"{}\"\n\
             [dns]\nsource = \"static\"\n\
             [dns.txt]\n\"_mta-sts.remote.example\" = \"v=STSv1; id=20261127\"\n\"_mta-sts.wrong.example\" = \"v=STSv1; id=1\"\n\
             [dns.mx]\n\"remote.example\" = [\"mx.remote.example\"]\n\"wrong.example\" = [\"mx.remote.example\"]\n\
             [dns.a]\n\"mx.remote.example\" = [\"127.0.0.1\"]\n\"mta-sts.remote.example\" = [\"127.0.0.1\"]\n\"mta-sts.wrong.example\" = [\"127.0.0.1\"]\n",
            pki.path().join("ca.pem").display()
        ),
    );
    let server = local.serve(&["--domain", "example.org"]);
    local.ok(
        &["user", "add", "alice@example.org", "--password-stdin"],
        "alice's long password\n",
    );
    smtp_scenario(&local, &server, "sts");

    // remote.example's policy names its MX: delivered, over verified TLS.
    wait_for("delivery under the policy", || {
        !mailbox(&remote, "bob", "remote.example", MailboxRole::Inbox).is_empty()
    });
    let delivered = mailbox(&remote, "bob", "remote.example", MailboxRole::Inbox);
    assert!(delivered[0].contains("Subject: under mta-sts"));
    assert!(delivered[0].contains("with ESMTPS id"), "{}", delivered[0]);
    // wrong.example's MX is not in its policy: nothing is sent, the mail waits.
    let start = Instant::now();
    while !local.ok(&["queue", "list"], "").contains("MTA-STS") {
        if start.elapsed() > Duration::from_secs(30) {
            let list = local.ok(&["queue", "list"], "");
            let mut server = server;
            let _ = server.child.kill();
            let mut log = String::new();
            let _ = std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut log);
            panic!("no MTA-STS refusal; queue: {list}\nserver log: {log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = local.ok(&["queue", "list"], "");
    assert!(list.contains("pending    carol@wrong.example"), "{list}");
    assert!(
        list.contains("none of the MX hosts of wrong.example"),
        "{list}"
    );

    // A restart, and then an attacker: the policy server is unreachable
    // (its fetch blocked), remote.example's TXT id changes (so the policy
    // must be fetched anew, and that fails), wrong.example's TXT record is
    // gone, and remote.example's MX now points at a host its policy does not
    // name (which would take the mail, over opportunistic TLS). The policies
    // fetched before the restart are in the store and still unexpired, so
    // they apply (RFC 8461 §5): nothing goes to the unnamed host.
    assert!(server.stop().success());
    drop(policy_server);
    let config = std::fs::read_to_string(local.config_path()).unwrap();
    let attacked = config
        .replace("id=20261127", "id=20270101")
        .replace("\"_mta-sts.wrong.example\" = \"v=STSv1; id=1\"\n", "")
        .replace(
            "\"remote.example\" = [\"mx.remote.example\"]",
            "\"remote.example\" = [\"mx.evil.example\"]",
        )
        .replace(
            "[dns.a]\n",
            "[dns.a]\n\"mx.evil.example\" = [\"127.0.0.1\"]\n",
        );
    assert!(
        attacked.contains("mx.evil.example") && !attacked.contains("id=1\""),
        "{attacked}"
    );
    local.write_config(&attacked);
    let server = local.serve(&[]);
    smtp_scenario(&local, &server, "sts");
    let start = Instant::now();
    loop {
        let list = local.ok(&["queue", "list"], "");
        if list.contains("none of the MX hosts of remote.example")
            && list
                .matches("none of the MX hosts of wrong.example")
                .count()
                == 2
        {
            assert!(list.contains("pending    bob@remote.example"), "{list}");
            assert!(!list.contains("failed "), "{list}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the cached policies were not applied after the restart; queue: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let delivered = mailbox(&remote, "bob", "remote.example", MailboxRole::Inbox);
    assert_eq!(delivered.len(), 1, "nothing went to mx.evil.example");

    assert!(server.stop().success());
    assert!(remote_server.stop().success());
}
