//! The core as the one gate: authentication, rights and access records.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rampart_core::*;
use rampart_store::{OpenMode, StoreConfig, SystemFlags};

/// Keeps every entry, as the ledger will; once `.1` is set it fails every
/// entry, as a ledger on a full disk would.
#[derive(Default)]
struct Collect(Mutex<Vec<AccessEntry>>, std::sync::atomic::AtomicBool);

#[async_trait]
impl AccessRecorder for Collect {
    async fn record(&self, entry: AccessEntry) -> CoreResult<()> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CoreError::Ledger("no space left on device".into()));
        }
        self.0.lock().unwrap().push(entry);
        Ok(())
    }
}

struct Fixture {
    core: Core,
    privileged: Privileged,
    /// The store under the core, for planting rows an older version wrote.
    store: Arc<dyn rampart_store::Store>,
    entries: Arc<Collect>,
    operator: Access,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_with(GuardConfig {
        delay_per_failure: std::time::Duration::from_millis(1),
        ..GuardConfig::default()
    })
    .await
}

async fn fixture_with(guard: GuardConfig) -> Fixture {
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
    let entries = Arc::new(Collect::default());
    let config = CoreConfig {
        passwords: PasswordParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        guard,
        plaintext_login_on_loopback: vec![Protocol::Imap],
        ..CoreConfig::default()
    };
    let (core, privileged) = Core::new(store.clone(), config, entries.clone())
        .await
        .unwrap();
    let operator = privileged.operator("tester".into());
    core.add_domain(&operator, "example.org").await.unwrap();
    for (who, admin) in [("alice", false), ("bob", false), ("root", true)] {
        core.add_user(
            &operator,
            NewUser {
                address: format!("{who}@example.org"),
                display_name: None,
                password: format!("{who}-password-long"),
                quota_bytes: None,
                is_admin: admin,
            },
        )
        .await
        .unwrap();
    }
    Fixture {
        core,
        privileged,
        store,
        entries,
        operator,
        _dir: dir,
    }
}

/// What the full-text index answers for a needle it can take.
async fn answered(
    core: &Core,
    who: &Access,
    mailbox: rampart_store::MailboxId,
    field: model::TextField,
    needle: &str,
) -> model::TextMatches {
    core.search_text(who, mailbox, field, needle)
        .await
        .unwrap()
        .expect("an indexable needle")
}

/// A fixture user's session, logged in with the main password.
async fn login(f: &Fixture, who: &str) -> Access {
    f.core
        .authenticate(
            &ctx(),
            &format!("{who}@example.org"),
            &format!("{who}-password-long"),
        )
        .await
        .unwrap()
}

/// The caller's INBOX.
async fn inbox_of(f: &Fixture, access: &Access) -> rampart_store::Mailbox {
    f.core
        .list_mailboxes(access)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap()
}

/// Delivers `raw` to `who@example.org` as inbound mail would arrive.
async fn deliver_to(f: &Fixture, who: &str, raw: &[u8]) {
    let inbound = f
        .privileged
        .service(ServiceRole::InboundDelivery)
        .access(&SessionContext::new(Network::Smtp, None));
    let account = f
        .core
        .principal_by_address(&f.operator, &format!("{who}@example.org"))
        .await
        .unwrap();
    f.core
        .deliver(&inbound, &[account.id], raw.to_vec())
        .await
        .unwrap();
}

fn ctx() -> SessionContext {
    // No test can make a TLS context (only a real handshake proves one):
    // the fixture allows passwords on IMAP from loopback, all of 127/8.
    SessionContext::new(Network::Imap, Some("127.0.3.7".parse().unwrap()))
}

/// Failed logins count against the account however its name is typed, so
/// that a guesser rotating spellings (and client addresses) is slowed all
/// the same (issue 12, point 13). A sleep never ends early, so the lower
/// bound below is exact, not a timing threshold.
#[tokio::test]
async fn failed_logins_count_per_account_however_spelt() {
    let step = std::time::Duration::from_millis(200);
    let f = fixture_with(GuardConfig {
        delay_per_failure: step,
        max_delay: step * 10,
        ..GuardConfig::default()
    })
    .await;
    let spellings = ["bob@example.org.", " BOB@example.org", "Bob@Example.ORG.."];
    for (i, name) in spellings.iter().enumerate() {
        let from = SessionContext::new(
            Network::Imap,
            Some(format!("127.0.100.{i}").parse().unwrap()),
        );
        assert!(matches!(
            f.core.authenticate(&from, name, "wrong guess").await,
            Err(CoreError::AuthFailed)
        ));
    }
    // A fourth address and spelling waits for the account's three failures.
    let fresh = SessionContext::new(Network::Imap, Some("127.0.100.9".parse().unwrap()));
    let started = std::time::Instant::now();
    let _ = f
        .core
        .authenticate(&fresh, "bob@example.org", "wrong again")
        .await;
    assert!(started.elapsed() >= step * 3, "{:?}", started.elapsed());
}

#[tokio::test]
async fn authentication_failures_look_alike() {
    let f = fixture().await;
    let ok = f
        .core
        .authenticate(&ctx(), "Alice@Example.org", "alice-password-long")
        .await
        .unwrap();
    assert_eq!(ok.principal().to_string(), "alice@example.org");
    assert_eq!(ok.auth_method(), AuthMethod::Password);
    assert_eq!(ok.client().unwrap().to_string(), "127.0.3.7");

    f.core
        .add_group(&f.operator, "team@example.org", None)
        .await
        .unwrap();
    f.core
        .set_disabled(&f.operator, "bob@example.org", true)
        .await
        .unwrap();
    let failures = [
        ("alice@example.org", "wrong-password-here"),
        ("nobody@example.org", "alice-password-long"),
        ("bob@example.org", "bob-password-long"),
        ("team@example.org", "anything-at-all"),
        ("not an address", "whatever"),
    ];
    for (who, pw) in failures {
        let err = f.core.authenticate(&ctx(), who, pw).await.unwrap_err();
        assert!(matches!(err, CoreError::AuthFailed), "{who}: {err:?}");
        assert_eq!(err.to_string(), "authentication failed");
    }
    let entries = f.entries.0.lock().unwrap();
    let logins: Vec<_> = entries
        .iter()
        .filter(|e| {
            matches!(
                e.operation,
                Operation::LoginSuccess | Operation::LoginFailure
            )
        })
        .collect();
    assert_eq!(logins.len(), 1 + failures.len());
    assert_eq!(logins[0].operation, Operation::LoginSuccess);
    assert!(
        logins[1..]
            .iter()
            .all(|e| e.operation == Operation::LoginFailure
                && e.outcome == Outcome::Denied
                && e.access.client().is_some())
    );
}

#[tokio::test]
async fn only_the_owner_reads_mail_and_every_read_is_recorded() {
    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let bob = login(&f, "bob").await;
    let admin = login(&f, "root").await;
    let inbox = inbox_of(&f, &alice).await;
    let raw = b"From: Carol <carol@example.net>\r\nTo: alice@example.org\r\nSubject: minutes\r\n\r\nsee attached\r\n".to_vec();
    let smtp = f
        .privileged
        .service(ServiceRole::InboundDelivery)
        .access(&SessionContext::new(Network::Smtp, None));
    let delivered = f
        .core
        .deliver(&smtp, &[alice.account().unwrap()], raw.clone())
        .await
        .unwrap();
    let uid = delivered[0].uid;

    assert_eq!(
        f.core.read_message(&alice, inbox.id, uid).await.unwrap(),
        raw
    );
    for (who, access) in [
        ("bob", &bob),
        ("admin", &admin),
        ("smtp", &smtp),
        ("operator", &f.operator),
    ] {
        let err = f
            .core
            .read_message(access, inbox.id, uid)
            .await
            .unwrap_err();
        // Told, as for a mailbox id never made, that it does not exist:
        // ids of other accounts cannot be probed.
        let never_made = f
            .core
            .read_message(access, rampart_core::model::MailboxId(987_654), uid)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CoreError::NotFound { .. }),
            "{who} could read alice's mail: {err:?}"
        );
        assert_eq!(
            err.to_string().replace(&inbox.id.to_string(), "ID"),
            never_made.to_string().replace("987654", "ID"),
            "{who} can tell alice's mailbox from none"
        );
        assert!(
            f.core.list_messages(access, inbox.id).await.is_err(),
            "{who} listed alice's mail"
        );
    }
    // Administrators manage accounts (rule R6) ...
    f.core.add_domain(&admin, "town.example").await.unwrap();
    // ... ordinary users do not.
    assert!(matches!(
        f.core.add_domain(&bob, "evil.example").await,
        Err(CoreError::Denied(_))
    ));

    let entries = f.entries.0.lock().unwrap();
    let read = entries
        .iter()
        .find(|e| e.operation == Operation::ReadBody)
        .expect("the read was recorded");
    assert_eq!(read.owner, alice.account());
    assert_eq!(read.objects, vec![delivered[0].message.0]);
    assert_eq!(read.bytes, raw.len() as u64);
    assert_eq!(read.container.as_deref(), Some("INBOX"));
    assert_eq!(read.access.session(), alice.session());
    let delivery = entries
        .iter()
        .find(|e| e.operation == Operation::Create)
        .unwrap();
    assert_eq!(delivery.access.protocol(), Protocol::Smtp);
}

#[tokio::test]
async fn recipients_expand_through_aliases_and_nested_groups() {
    let f = fixture().await;
    let op = &f.operator;
    f.core
        .add_group(op, "staff@example.org", None)
        .await
        .unwrap();
    f.core.add_group(op, "all@example.org", None).await.unwrap();
    f.core
        .change_group_members(
            op,
            "staff@example.org",
            &["alice@example.org".into(), "bob@example.org".into()],
            &[],
        )
        .await
        .unwrap();
    f.core
        .change_group_members(
            op,
            "all@example.org",
            &[
                "staff@example.org".into(),
                "alice@example.org".into(),
                "root@example.org".into(),
            ],
            &[],
        )
        .await
        .unwrap();
    // A cycle must not loop.
    f.core
        .change_group_members(op, "staff@example.org", &["all@example.org".into()], &[])
        .await
        .unwrap();
    f.core
        .add_alias(op, "everyone@example.org", "all@example.org")
        .await
        .unwrap();
    f.core
        .set_disabled(op, "bob@example.org", true)
        .await
        .unwrap();

    let set = f
        .core
        .resolve_recipient(op, &Address::parse("Everyone@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut names: Vec<String> = set.accounts.iter().map(|p| p.address.clone()).collect();
    names.sort();
    assert_eq!(names, ["alice@example.org", "root@example.org"]);
    assert!(
        f.core
            .resolve_recipient(op, &Address::parse("ghost@example.org").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // Each lookup is on record, with the accounts it named.
    {
        let entries = f.entries.0.lock().unwrap();
        let queries: Vec<_> = entries
            .iter()
            .filter(|e| e.operation == Operation::DirectoryQuery)
            .collect();
        assert!(
            queries.iter().any(
                |e| e.container.as_deref() == Some("ghost@example.org") && e.objects.is_empty()
            )
        );
        assert!(queries.iter().any(
            |e| e.container.as_deref() == Some("everyone@example.org") && e.objects.len() == 2
        ));
    }

    // Delivery to several accounts is all or nothing: one over quota stops it.
    f.core.set_quota(op, "root@example.org", 10).await.unwrap();
    let smtp = f
        .privileged
        .service(ServiceRole::InboundDelivery)
        .access(&SessionContext::new(Network::Smtp, None));
    let ids: Vec<_> = set.accounts.iter().map(|p| p.id).collect();
    let err = f
        .core
        .deliver(
            &smtp,
            &ids,
            b"Subject: x\r\n\r\ntoo big for root\r\n".to_vec(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::OverQuota(_)), "{err:?}");
    let alice = login(&f, "alice").await;
    let inbox = f
        .core
        .find_mailbox(&alice, alice.account().unwrap(), "INBOX")
        .await
        .unwrap();
    assert!(
        f.core
            .list_messages(&alice, inbox.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Size limit is named with its config key.
    let huge = vec![b'x'; (f.core.config().max_message_bytes + 1) as usize];
    let err = f
        .core
        .append(&alice, inbox.id, huge, SystemFlags::default(), vec![], None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("limits.max_message_bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn bootstrap_happens_once() {
    let f = fixture().await;
    let first = f
        .core
        .bootstrap(&f.operator, "first.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.admin_address, "admin@first.example");
    f.core
        .authenticate(&ctx(), &first.admin_address, &first.admin_password)
        .await
        .unwrap();
    assert!(
        f.core
            .bootstrap(&f.operator, "first.example")
            .await
            .unwrap()
            .is_none()
    );
    f.core
        .authenticate(&ctx(), &first.admin_address, &first.admin_password)
        .await
        .expect("a second bootstrap must not change the password");
}

#[tokio::test]
async fn full_text_search_is_gated_recorded_and_catches_up() {
    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let bob = login(&f, "bob").await;
    let inbox = inbox_of(&f, &alice).await;
    let smtp = f
        .privileged
        .service(ServiceRole::InboundDelivery)
        .access(&SessionContext::new(Network::Smtp, None));
    // Quoted-printable Latin-1: the index holds the decoded text.
    let raw = b"From: Carol <carol@example.net>\r\nSubject: Haushalt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nDie Stra=DFenbeleuchtung kostet mehr.\r\n".to_vec();
    // Without an indexer running, a delivered message waits unindexed
    // (searches read it whole); the indexer takes it once deliveries pause.
    let delivered = f
        .core
        .deliver(&smtp, &[alice.account().unwrap()], raw.clone())
        .await
        .unwrap();
    let found = answered(&f.core, &alice, inbox.id, model::TextField::All, "haushalt").await;
    assert_eq!(found.unindexed, vec![delivered[0].uid]);
    let core = Arc::new(f.core);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let indexer = {
        let core = core.clone();
        tokio::spawn(async move {
            core.run_text_indexer(std::time::Duration::from_secs(3600), async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let indexed = |core: Arc<Core>, who: Access| async move {
        for _ in 0..200 {
            let m = answered(&core, &who, inbox.id, model::TextField::All, "haushalt").await;
            if m.unindexed.is_empty() {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("not indexed");
    };
    // The first pass indexes what was there; a new delivery wakes the
    // indexer, which takes it after a pause in deliveries.
    assert_eq!(indexed(core.clone(), alice.clone()).await.matched.len(), 1);
    let again = core
        .deliver(&smtp, &[alice.account().unwrap()], raw)
        .await
        .unwrap();
    assert_eq!(indexed(core.clone(), alice.clone()).await.matched.len(), 2);
    stop_tx.send(()).unwrap();
    indexer.await.unwrap();
    core.remove_messages(&alice, inbox.id, &[again[0].uid])
        .await
        .unwrap();
    let f = Fixture {
        core: Arc::into_inner(core).unwrap(),
        ..f
    };
    let found = answered(&f.core, &alice, inbox.id, model::TextField::Body, "STRASSE").await;
    assert!(found.matched.is_empty(), "ß is not folded to ss");
    let found = f
        .core
        .search_text(
            &alice,
            inbox.id,
            model::TextField::Body,
            "STRAßENBELEUCHTUNG",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.matched,
        vec![(delivered[0].uid, delivered[0].message)]
    );
    assert!(found.unindexed.is_empty());
    // Too short for the index: the caller reads the messages.
    assert!(
        f.core
            .search_text(&alice, inbox.id, model::TextField::All, "ab")
            .await
            .unwrap()
            .is_none()
    );
    // Only the owner may search, and the search is on record with what it found.
    assert!(matches!(
        f.core
            .search_text(&bob, inbox.id, model::TextField::All, "haushalt")
            .await,
        Err(CoreError::NotFound { .. })
    ));
    {
        let entries = f.entries.0.lock().unwrap();
        let search = entries
            .iter()
            .rev()
            .find(|e| e.operation == Operation::Search && e.access.session() == alice.session())
            .unwrap();
        assert_eq!(search.objects, vec![delivered[0].message.0]);
        assert_eq!(search.owner, alice.account());
    }

    // A message stored without text (by an older version) is listed for
    // the caller to read until the background pass indexes it.
    let blob = f
        .store
        .put_blob(Arc::new(
            b"Subject: alt\r\n\r\nStraenbeleuchtung alt\r\n".to_vec(),
        ))
        .await
        .unwrap();
    let old = f
        .store
        .append_message(
            &[(inbox.account, inbox.id)],
            rampart_store::NewMessage {
                blob,
                size: 40,
                received_at: 0,
                message_id_header: None,
                references: vec![],
                summary: "{}".into(),
                flags: SystemFlags::default(),
                keywords: vec![],
                derived: vec![],
                text: None,
            },
        )
        .await
        .unwrap();
    let found = answered(
        &f.core,
        &alice,
        inbox.id,
        model::TextField::All,
        "beleuchtung",
    )
    .await;
    assert_eq!(found.unindexed, vec![old[0].uid]);
    assert_eq!(f.core.index_pending_text(10).await.unwrap(), 1);
    assert_eq!(f.core.index_pending_text(10).await.unwrap(), 0);
    let found = answered(
        &f.core,
        &alice,
        inbox.id,
        model::TextField::All,
        "beleuchtung",
    )
    .await;
    assert!(found.unindexed.is_empty());
    assert_eq!(
        found.matched.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        vec![delivered[0].uid, old[0].uid]
    );
}

#[tokio::test]
async fn app_passwords_log_in_as_such_and_can_be_revoked() {
    let f = fixture().await;
    let (added, secret) = f
        .core
        .add_app_password(&f.operator, "alice@example.org", "phone")
        .await
        .unwrap();
    assert_eq!(added.name, "phone");
    assert_eq!(secret.len(), 23);
    let access = f
        .core
        .authenticate(&ctx(), "alice@example.org", &secret)
        .await
        .unwrap();
    assert_eq!(access.auth_method(), AuthMethod::AppPassword);
    let main = login(&f, "alice").await;
    assert_eq!(main.auth_method(), AuthMethod::Password);
    // Someone else's app password is no key to this account.
    assert!(
        f.core
            .authenticate(&ctx(), "bob@example.org", &secret)
            .await
            .is_err()
    );
    // Only administrators manage them.
    assert!(matches!(
        f.core
            .add_app_password(&main, "alice@example.org", "x")
            .await,
        Err(CoreError::Denied(_))
    ));
    f.core
        .remove_app_password(&f.operator, "alice@example.org", "phone")
        .await
        .unwrap();
    assert!(matches!(
        f.core
            .authenticate(&ctx(), "alice@example.org", &secret)
            .await,
        Err(CoreError::AuthFailed)
    ));
    let entries = f.entries.0.lock().unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.operation == Operation::CredentialChange)
            .count(),
        2
    );
}

/// No password hash or password reaches a log line through `Debug`.
#[tokio::test]
async fn secrets_never_print() {
    let f = fixture().await;
    let principals = f.core.list_principals(&f.operator, None).await.unwrap();
    assert!(principals.iter().any(|p| p.has_password));
    let printed = format!("{principals:?}");
    assert!(!printed.contains("argon2"), "{printed}");
    let new = NewUser {
        address: "carol@example.org".into(),
        display_name: None,
        password: "carol-secret-password".into(),
        quota_bytes: None,
        is_admin: false,
    };
    assert!(!format!("{new:?}").contains("carol-secret"));
}

/// Each service acts only in its role (rule R10): the DKIM signer cannot
/// deliver into a mailbox, inbound delivery cannot read signing keys, and
/// no service runs the queue but its worker (and the report sender).
#[tokio::test]
async fn services_act_only_in_their_role() {
    let f = fixture().await;
    let ctx = SessionContext::new(Network::Smtp, None);
    let signer = f.privileged.service(ServiceRole::DkimSigner).access(&ctx);
    let inbound = f
        .privileged
        .service(ServiceRole::InboundDelivery)
        .access(&ctx);
    let alice = f
        .core
        .principal_by_address(&f.operator, "alice@example.org")
        .await
        .unwrap();
    let raw = b"Subject: x\r\n\r\nx\r\n".to_vec();
    assert!(matches!(
        f.core.deliver(&signer, &[alice.id], raw.clone()).await,
        Err(CoreError::Denied(_))
    ));
    f.core.deliver(&inbound, &[alice.id], raw).await.unwrap();
    assert!(f.core.dkim_keys(&inbound, "example.org").await.is_err());
    assert!(f.core.dkim_keys(&signer, "example.org").await.is_ok());
    assert!(f.core.queue_claim(&inbound, 0, 0, 10).await.is_err());
}

/// The MTA-STS policy cache is the queue worker's alone (rule R10): no
/// other service, no operator and no account may read or plant a policy.
#[tokio::test]
async fn only_the_queue_worker_keeps_mta_sts_policies() {
    let f = fixture().await;
    let worker = f.privileged.service(ServiceRole::QueueWorker).internal();
    let policy = rampart_core::model::StsPolicyRecord {
        domain: "Remote.Example.".into(),
        policy_id: "20261127".into(),
        mode: "enforce".into(),
        mx: vec!["mx.remote.example".into()],
        max_age: 86_400,
        fetched_at: 1_000,
        expires_at: 1_000 + 86_400_000,
    };
    let alice = f
        .core
        .authenticate(
            &SessionContext::new(Network::Imap, Some("127.0.0.1".parse().unwrap())),
            "alice@example.org",
            "alice-password-long",
        )
        .await
        .unwrap();
    let others = [
        f.operator.clone(),
        alice,
        f.privileged.service(ServiceRole::ReportSender).internal(),
        f.privileged
            .service(ServiceRole::InboundDelivery)
            .internal(),
        f.privileged.service(ServiceRole::DkimSigner).internal(),
        f.privileged.service(ServiceRole::Witness).internal(),
    ];
    for access in &others {
        assert!(matches!(
            f.core.store_sts_policy(access, policy.clone()).await,
            Err(CoreError::Denied(_))
        ));
    }
    assert_eq!(
        f.core.sts_policy(&worker, "remote.example").await.unwrap(),
        None
    );
    f.core
        .store_sts_policy(&worker, policy.clone())
        .await
        .unwrap();
    for access in &others {
        assert!(matches!(
            f.core.sts_policy(access, "remote.example").await,
            Err(CoreError::Denied(_))
        ));
    }
    // The domain is kept normalised, however it was written.
    let stored = f.core.sts_policy(&worker, "REMOTE.example").await.unwrap();
    assert_eq!(stored.map(|p| p.domain), Some("remote.example".to_string()));
    // Nonsense is refused before it reaches the store.
    for bad in [
        rampart_core::model::StsPolicyRecord {
            mode: "strict".into(),
            ..policy.clone()
        },
        rampart_core::model::StsPolicyRecord {
            policy_id: "a;b".into(),
            ..policy.clone()
        },
        rampart_core::model::StsPolicyRecord {
            expires_at: 0,
            ..policy.clone()
        },
    ] {
        assert!(matches!(
            f.core.store_sts_policy(&worker, bad).await,
            Err(CoreError::Invalid(_))
        ));
    }
}

/// Rule R7 in core: a password over a connection without TLS is refused
/// unless it comes from loopback on a protocol the configuration allows,
/// and the refusal is recorded; the right password does not help.
#[tokio::test]
async fn passwords_only_over_tls() {
    let f = fixture().await;
    for ctx in [
        SessionContext::new(Network::Imap, Some("203.0.113.7".parse().unwrap())),
        SessionContext::new(Network::Submission, Some("127.0.0.1".parse().unwrap())),
        SessionContext::new(Network::Imap, None),
    ] {
        assert!(matches!(
            f.core
                .authenticate(&ctx, "alice@example.org", "alice-password-long")
                .await,
            Err(CoreError::TlsRequired)
        ));
    }
    let refused = f
        .entries
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.operation == Operation::LoginFailure)
        .count();
    assert_eq!(refused, 3);
    let mapped = SessionContext::new(Network::Imap, Some("::ffff:127.0.0.1".parse().unwrap()));
    f.core
        .authenticate(&mapped, "alice@example.org", "alice-password-long")
        .await
        .unwrap();
}

/// An account submits only as itself, in the header too: exactly one From,
/// and every From and Sender address one it may send as, however spelt.
#[tokio::test]
async fn submission_checks_the_author_fields() {
    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let body = "Subject: hi\r\n\r\nhello\r\n";
    let ok = format!("From: Alice <alice@example.org>\r\n{body}");
    f.core
        .check_author_fields(&alice, ok.as_bytes())
        .await
        .unwrap();
    for forged in [
        "From: Bob <bob@example.org>\r\n",
        "From: alice@example.org\r\nFrom: bob@example.org\r\n",
        "From: =?utf-8?q?alice=40example.org?=\r\n",
        "From: alice@example.org\r\nSender: bob@example.org\r\n",
        "From : bob@example.org\r\n",
        "FROM:\r\n bob@example.org\r\n",
        "From: alice@example.org, bob@example.org\r\n",
        "From: undisclosed:;\r\n",
        "Subject: no author\r\n",
    ] {
        let raw = format!("{forged}{body}");
        assert!(
            matches!(
                f.core.check_author_fields(&alice, raw.as_bytes()).await,
                Err(CoreError::Denied(_))
            ),
            "accepted {forged:?}"
        );
    }
}

/// Core decides who may submit what, whatever the protocol says: an account
/// sends only as itself, a null sender is the reports' and the witness's
/// alone, and core resolves the recipients itself (aliases, groups, other
/// domains to the queue).
#[tokio::test]
async fn submission_rights_are_decided_in_core() {
    use rampart_store::{DsnRequest, MailboxRole, QueuedAddress};
    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let raw = |from: &str| format!("From: {from}\r\nSubject: s\r\n\r\nhello\r\n").into_bytes();
    let to = |a: &str| vec![QueuedAddress::plain(a)];
    for (sender, from) in [
        ("bob@example.org", "alice@example.org"),
        ("", "alice@example.org"),
        ("alice@example.org", "bob@example.org"),
    ] {
        assert!(
            matches!(
                f.core
                    .submit(
                        &alice,
                        sender,
                        &to("bob@example.org"),
                        DsnRequest::default(),
                        raw(from)
                    )
                    .await,
                Err(CoreError::Denied(_))
            ),
            "sender {sender:?}, From {from}"
        );
    }
    // Unknown local recipients are refused, not queued.
    assert!(matches!(
        f.core
            .submit(
                &alice,
                "alice@example.org",
                &to("nobody@example.org"),
                DsnRequest::default(),
                raw("alice@example.org")
            )
            .await,
        Err(CoreError::NotFound { .. })
    ));
    // Local recipients are delivered, others queued.
    let queued = f
        .core
        .submit(
            &alice,
            "alice@example.org",
            &[
                QueuedAddress::plain("Bob@Example.org"),
                QueuedAddress::plain("carol@elsewhere.example"),
            ],
            DsnRequest::default(),
            raw("Alice <alice@example.org>"),
        )
        .await
        .unwrap();
    assert!(queued.is_some(), "the remote recipient is queued");
    let bob = login(&f, "bob").await;
    let inbox = inbox_of(&f, &bob).await;
    let (_, listed) = f.core.list_items(&bob, inbox.id).await.unwrap();
    assert_eq!(listed.len(), 1, "bob got it");
    assert!(
        listed.iter().all(|m| m.summary.is_empty()),
        "a listing of state carries no summaries"
    );
    assert_eq!(inbox.role, Some(MailboxRole::Inbox));

    // A null sender: the report sender may, inbound delivery may not submit at all.
    let ctx = SessionContext::new(Network::Smtp, None);
    let reports = f.privileged.service(ServiceRole::ReportSender).internal();
    f.core
        .submit(
            &reports,
            "",
            &to("alice@example.org"),
            DsnRequest::default(),
            raw("Mail Delivery System <postmaster@example.org>"),
        )
        .await
        .unwrap();
    let inbound = f
        .privileged
        .service(ServiceRole::InboundDelivery)
        .access(&ctx);
    assert!(matches!(
        f.core
            .submit(
                &inbound,
                "",
                &to("alice@example.org"),
                DsnRequest::default(),
                raw("x@y.example")
            )
            .await,
        Err(CoreError::Denied(_))
    ));
}

/// What a read returns decides its entry: a listing of state is metadata,
/// a summary or header read is a read of headers, a whole message a read
/// of bodies; a header read returns the header alone.
#[tokio::test]
async fn the_entry_follows_what_a_read_returns() {
    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let inbox = inbox_of(&f, &alice).await;
    deliver_to(
        &f,
        "alice",
        b"From: carol@example.net\r\nSubject: secret plans\r\n\r\nthe body\r\n",
    )
    .await;
    let (_, listed) = f.core.list_items(&alice, inbox.id).await.unwrap();
    let uid = listed[0].uid;
    for (read, operation, has_summary, raw) in [
        (MessageRead::State, Operation::ListItems, false, None),
        (MessageRead::Summary, Operation::ReadHeader, true, None),
        (
            MessageRead::Header,
            Operation::ReadHeader,
            true,
            Some(&b"From: carol@example.net\r\nSubject: secret plans\r\n\r\n"[..]),
        ),
        (
            MessageRead::Body,
            Operation::ReadBody,
            true,
            Some(&b"the body"[..]),
        ),
        (
            MessageRead::Search { text: false },
            Operation::Search,
            true,
            None,
        ),
    ] {
        let got = f
            .core
            .fetch_messages(&alice, inbox.id, &[uid], read)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(!got[0].0.summary.is_empty(), has_summary, "{read:?}");
        match raw {
            None => assert!(got[0].1.is_none(), "{read:?}"),
            Some(want) if read == MessageRead::Header => {
                assert_eq!(got[0].1.as_deref(), Some(want))
            }
            Some(want) => {
                assert!(got[0].1.as_deref().unwrap().ends_with(b"the body\r\n") && !want.is_empty())
            }
        }
        let last = f.entries.0.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.operation, operation, "{read:?}");
    }
}

/// Directory lookups are the gate's too: an account may look up itself; a
/// colleague's row is as unknown to it as an address nobody has;
/// administrators and services may look up anyone; each lookup is recorded.
#[tokio::test]
async fn principal_lookups_are_gated_and_recorded() {
    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let me = f
        .core
        .principal_by_address(&alice, "alice@example.org")
        .await
        .unwrap();
    assert_eq!(me.address(), "alice@example.org");
    let colleague = f.core.principal_by_address(&alice, "bob@example.org").await;
    let nobody = f
        .core
        .principal_by_address(&alice, "nobody@example.org")
        .await;
    assert!(matches!(colleague, Err(CoreError::NotFound { .. })));
    assert_eq!(
        colleague.unwrap_err().to_string(),
        nobody.unwrap_err().to_string().replace("nobody", "bob"),
        "a colleague looks like nobody"
    );
    let entries = f.entries.0.lock().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.operation == Operation::DirectoryQuery && e.objects == vec![me.id.0])
    );
}

/// Fail-closed: once the ledger cannot write, every call that returns user
/// data fails, whatever it was asked to return.
#[tokio::test]
async fn nothing_is_returned_when_the_ledger_cannot_write() {
    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let inbox = inbox_of(&f, &alice).await;
    deliver_to(&f, "alice", b"Subject: s\r\n\r\nbody\r\n").await;
    let (_, listed) = f.core.list_items(&alice, inbox.id).await.unwrap();
    let uid = listed[0].uid;
    f.entries.1.store(true, std::sync::atomic::Ordering::SeqCst);
    for read in [
        MessageRead::State,
        MessageRead::Summary,
        MessageRead::Header,
        MessageRead::Body,
        MessageRead::Search { text: true },
    ] {
        assert!(
            matches!(
                f.core.fetch_messages(&alice, inbox.id, &[uid], read).await,
                Err(CoreError::Ledger(_))
            ),
            "{read:?}"
        );
    }
    assert!(f.core.list_items(&alice, inbox.id).await.is_err());
    assert!(
        f.core
            .fetch_derived(&alice, inbox.id, &[uid], "imap-structure")
            .await
            .is_err()
    );
    assert!(f.core.mailbox_status(&alice, inbox.id).await.is_err());
}

/// Every core call that takes a mailbox (and message UIDs) answers another
/// account's caller NotFound, exactly as for a mailbox never made, changes
/// nothing and records nothing as done (issue 12: the table-driven gate
/// test). A new call on ids belongs in this table.
#[tokio::test]
async fn every_call_on_another_accounts_ids_is_not_found() {
    use std::future::Future;
    use std::pin::Pin;
    type Call<'a> = Pin<Box<dyn Future<Output = CoreResult<()>> + 'a>>;

    let f = fixture().await;
    let alice = login(&f, "alice").await;
    let bob = login(&f, "bob").await;
    deliver_to(
        &f,
        "alice",
        b"From: Carol <carol@example.net>\r\nSubject: budget 2027\r\n\r\nHaushalt\r\n",
    )
    .await;
    f.core.index_pending_text(100).await.unwrap();
    let inbox = inbox_of(&f, &alice).await.id;
    let bobs = inbox_of(&f, &bob).await.id;
    let before = f.core.list_items(&alice, inbox).await.unwrap().1;
    let uids: Vec<u32> = before.iter().map(|m| m.uid).collect();
    let uid = uids[0];
    let never = model::MailboxId(987_654);

    let calls = |target: model::MailboxId| -> Vec<(&'static str, Call<'_>)> {
        let (core, bob, uids) = (&f.core, &bob, uids.clone());
        let seen = || model::FlagChange::Add(SystemFlags(SystemFlags::SEEN), vec![]);
        let reads = [
            ("fetch state", MessageRead::State),
            ("fetch summary", MessageRead::Summary),
            ("fetch header", MessageRead::Header),
            ("fetch body", MessageRead::Body),
            ("fetch search", MessageRead::Search { text: true }),
        ];
        let fetches = reads
            .into_iter()
            .map(move |(name, read)| -> (&'static str, Call<'_>) {
                (
                    name,
                    Box::pin(async move {
                        core.fetch_messages(bob, target, &[uid], read)
                            .await
                            .map(drop)
                    }),
                )
            });
        let rest: Vec<(&'static str, Call<'_>)> = vec![
            (
                "mailbox_status",
                Box::pin(async move { core.mailbox_status(bob, target).await.map(drop) }),
            ),
            (
                "list_items",
                Box::pin(async move { core.list_items(bob, target).await.map(drop) }),
            ),
            (
                "list_messages",
                Box::pin(async move { core.list_messages(bob, target).await.map(drop) }),
            ),
            (
                "read_message",
                Box::pin(async move { core.read_message(bob, target, uid).await.map(drop) }),
            ),
            (
                "fetch_derived",
                Box::pin(async move {
                    core.fetch_derived(bob, target, &[uid], "imap.envelope")
                        .await
                        .map(drop)
                }),
            ),
            (
                "remember",
                Box::pin(async move {
                    core.remember(bob, target, "imap.envelope", vec![(uid, b"x".to_vec())])
                        .await
                        .map(drop)
                }),
            ),
            (
                "search_text",
                Box::pin(async move {
                    core.search_text(bob, target, model::TextField::All, "haushalt")
                        .await
                        .map(drop)
                }),
            ),
            (
                "changes_since",
                Box::pin(async move { core.changes_since(bob, target, 0).await.map(drop) }),
            ),
            (
                "claim_recent",
                Box::pin(async move { core.claim_recent(bob, target).await.map(drop) }),
            ),
            (
                "set_flags",
                Box::pin(
                    async move { core.set_flags(bob, target, &[uid], seen()).await.map(drop) },
                ),
            ),
            (
                "remove_messages",
                Box::pin({
                    let uids = uids.clone();
                    async move { core.remove_messages(bob, target, &uids).await.map(drop) }
                }),
            ),
            (
                "copy from",
                Box::pin({
                    let uids = uids.clone();
                    async move {
                        core.copy_messages(bob, target, &uids, bobs, false)
                            .await
                            .map(drop)
                    }
                }),
            ),
            (
                "move from",
                Box::pin({
                    let uids = uids.clone();
                    async move {
                        core.copy_messages(bob, target, &uids, bobs, true)
                            .await
                            .map(drop)
                    }
                }),
            ),
            (
                "copy into",
                Box::pin(async move {
                    core.copy_messages(bob, bobs, &[1], target, false)
                        .await
                        .map(drop)
                }),
            ),
            (
                "append",
                Box::pin(async move {
                    core.append(
                        bob,
                        target,
                        b"Subject: planted\r\n\r\nx\r\n".to_vec(),
                        SystemFlags::default(),
                        vec![],
                        None,
                    )
                    .await
                    .map(drop)
                }),
            ),
            (
                "rename_mailbox",
                Box::pin(async move { core.rename_mailbox(bob, target, "Taken").await.map(drop) }),
            ),
            (
                "delete_mailbox",
                Box::pin(async move { core.delete_mailbox(bob, target).await.map(drop) }),
            ),
        ];
        fetches.chain(rest).collect()
    };

    let recorded = || f.entries.0.lock().unwrap().len();
    let never_made: Vec<String> = {
        let mut out = Vec::new();
        for (_, call) in calls(never) {
            out.push(call.await.unwrap_err().to_string().replace("987654", "ID"));
        }
        out
    };
    for ((name, call), expected) in calls(inbox).into_iter().zip(never_made) {
        let entries_before = recorded();
        let err = call.await.expect_err(name);
        assert!(matches!(err, CoreError::NotFound { .. }), "{name}: {err:?}");
        assert_eq!(
            err.to_string().replace(&inbox.0.to_string(), "ID"),
            expected,
            "{name}: alice's mailbox can be told from none"
        );
        let entries = f.entries.0.lock().unwrap();
        assert!(
            entries[entries_before..]
                .iter()
                .all(|e| e.outcome != Outcome::Ok && e.owner != alice.account()),
            "{name} recorded an access to alice's data: {:?}",
            &entries[entries_before..]
        );
    }
    // Nothing of alice's changed.
    let (mailbox, after) = f.core.list_items(&alice, inbox).await.unwrap();
    assert_eq!(mailbox.name, "INBOX");
    assert_eq!(
        after
            .iter()
            .map(|m| (m.uid, m.flags, m.modseq))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|m| (m.uid, m.flags, m.modseq))
            .collect::<Vec<_>>()
    );
    assert!(
        f.core.list_items(&bob, bobs).await.unwrap().1.is_empty(),
        "nothing reached bob"
    );
}
