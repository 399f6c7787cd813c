//! Fail-closed: when the access ledger cannot write, no user data leaves
//! the server. The IMAP server runs in this process on a real socket with a
//! ledger that can be broken on demand (a disk that filled up), and Python's
//! imaplib is the client: every data-returning command answers NO and the
//! message's text never crosses the socket.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use rampart_core::*;
use rampart_store::{OpenMode, StoreConfig};

/// A ledger that writes (nowhere) until it is broken, then fails every entry.
#[derive(Default)]
struct BreakableLedger {
    broken: AtomicBool,
}

#[async_trait]
impl AccessRecorder for BreakableLedger {
    async fn record(&self, _entry: AccessEntry) -> CoreResult<()> {
        if self.broken.load(Ordering::SeqCst) {
            Err(CoreError::Ledger("no space left on device".into()))
        } else {
            Ok(())
        }
    }
}

const SECRET: &str = "the-plans-for-the-new-town-hall";

const CLIENT: &str = r#"
import imaplib, sys
port = int(sys.argv[1])
c = imaplib.IMAP4("127.0.0.1", port)
c.login("alice@example.org", "alice-password-long")
typ, _ = c.select("INBOX")
assert typ == "OK", typ
typ, data = c.fetch("1", "(BODY.PEEK[])")
assert typ == "OK" and sys.argv[2].encode() in data[0][1], (typ, data)
print("ready", flush=True)
sys.stdin.readline()  # the ledger breaks now
seen = []
for command in [("FETCH", "1", "(BODY.PEEK[])"), ("FETCH", "1", "(ENVELOPE)"),
                ("FETCH", "1", "(BODY.PEEK[HEADER])"), ("SEARCH", "TEXT", "plans"),
                ("SORT", "(SUBJECT)", "UTF-8", "ALL")]:
    try:
        typ, data = c._simple_command(*command)
        answer = c._untagged_response(typ, data, command[0])
    except imaplib.IMAP4.error as e:
        typ, answer = "NO", [str(e).encode()]
    flat = repr(answer) + repr(c.untagged_responses)
    assert sys.argv[2] not in flat, (command, flat)
    assert typ == "NO", (command, typ, answer)
    seen.append(command[0])
print("refused", " ".join(seen), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(rampart_test_python),
    ignore = "skipped: needs python3 (imaplib) as the IMAP client"
)]
async fn no_data_leaves_when_the_ledger_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = rampart_store::open(
        &StoreConfig::Sqlite {
            data_dir: dir.path().join("data"),
            pool_size: 4,
        },
        OpenMode::CreateIfMissing,
    )
    .await
    .unwrap();
    let ledger = Arc::new(BreakableLedger::default());
    let config = CoreConfig {
        passwords: PasswordParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        plaintext_login_on_loopback: vec![Protocol::Imap],
        ..CoreConfig::default()
    };
    let (core, privileged) = Core::new(store, config, ledger.clone()).await.unwrap();
    let operator = privileged.operator("tester".into());
    core.add_domain(&operator, "example.org").await.unwrap();
    let alice = core
        .add_user(
            &operator,
            NewUser {
                address: "alice@example.org".into(),
                display_name: None,
                password: "alice-password-long".into(),
                quota_bytes: None,
                is_admin: false,
            },
        )
        .await
        .unwrap();
    let inbound = privileged
        .service(ServiceRole::InboundDelivery)
        .access(&SessionContext::new(Network::Smtp, None));
    let raw = format!(
        "From: carol@example.net\r\nTo: alice@example.org\r\nSubject: {SECRET}\r\n\r\n{SECRET}\r\n"
    );
    core.deliver(&inbound, &[alice.id], raw.into_bytes())
        .await
        .unwrap();

    let core = Arc::new(core);
    let mut imap = rampart_imap::ImapConfig::new("localhost");
    imap.auth_without_tls_on_loopback = true;
    let imap = Arc::new(imap);
    let limiter = Arc::new(rampart_imap::Limiter::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = tokio_util::sync::CancellationToken::new();
    {
        let (core, imap, limiter, shutdown) = (
            core.clone(),
            imap.clone(),
            limiter.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (core, imap, limiter, shutdown) = (
                    core.clone(),
                    imap.clone(),
                    limiter.clone(),
                    shutdown.clone(),
                );
                tokio::spawn(rampart_imap::serve_connection(
                    core, imap, limiter, stream, peer, None, false, shutdown,
                ));
            }
        });
    }

    let ledger_switch = ledger.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut client = Command::new("python3")
            .args(["-c", CLIENT, &port.to_string(), SECRET])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(client.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the client read the message first");
        ledger_switch.broken.store(true, Ordering::SeqCst);
        writeln!(client.stdin.take().unwrap(), "go").unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        let status = client.wait_with_output().unwrap();
        (line, String::from_utf8_lossy(&status.stderr).into_owned())
    })
    .await
    .unwrap();
    shutdown.cancel();
    assert_eq!(
        outcome.0.trim(),
        "refused FETCH FETCH FETCH SEARCH SORT",
        "{}",
        outcome.1
    );
}
