//! The store conformance suite: written once, run against SQLite always and
//! against PostgreSQL when `RAMPART_TEST_POSTGRES_URL` is set at build time
//! (otherwise `cargo test` lists those tests as ignored, with the reason).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rampart_store::*;

struct Harness {
    store: Arc<dyn Store>,
    reopen: StoreConfig,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::Sqlite {
            data_dir: dir.path().join("data"),
            pool_size: 8,
        };
        let store = open(&config, OpenMode::CreateIfMissing).await.unwrap();
        Harness {
            store,
            reopen: config,
            _dir: Some(dir),
        }
    }

    /// A fresh schema in the test database, so that tests do not see each other.
    async fn postgres() -> Harness {
        let url = std::env::var("RAMPART_TEST_POSTGRES_URL")
            .expect("RAMPART_TEST_POSTGRES_URL was set at build time but not now");
        let schema = format!("conformance_{:016x}", rand::random::<u64>());
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to RAMPART_TEST_POSTGRES_URL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
        let config = StoreConfig::Postgres {
            url: scoped,
            pool_size: 8,
        };
        let store = open(&config, OpenMode::CreateIfMissing).await.unwrap();
        Harness {
            store,
            reopen: config,
            _dir: None,
        }
    }
}

async fn domain_and_user(
    store: &Arc<dyn Store>,
    local: &str,
    quota: u64,
) -> (Principal, Vec<Mailbox>) {
    let domain = match store.find_domain("example.org").await.unwrap() {
        Some(d) => d,
        None => store.create_domain("example.org").await.unwrap(),
    };
    let p = store
        .create_principal(NewPrincipal {
            kind: PrincipalKind::User,
            domain_id: domain.id,
            local_part: local.into(),
            display_name: local.into(),
            password_hash: Some(PasswordHash::new("$argon2id$dummy".into())),
            quota_bytes: quota,
            is_admin: false,
            mailboxes: MailboxRole::ALL
                .into_iter()
                .map(|r| NewMailbox {
                    name: r.default_name().into(),
                    role: Some(r),
                })
                .collect(),
        })
        .await
        .unwrap();
    let mailboxes = store.list_mailboxes(p.id).await.unwrap();
    (p, mailboxes)
}

fn inbox(mailboxes: &[Mailbox]) -> MailboxId {
    mailboxes
        .iter()
        .find(|m| m.role == Some(MailboxRole::Inbox))
        .unwrap()
        .id
}

/// The account a mailbox belongs to, which the keyed calls act in (an
/// account that owns nothing when the mailbox is gone, so that those calls
/// answer as for any mailbox of another account).
async fn owner(store: &Arc<dyn Store>, mailbox: MailboxId) -> PrincipalId {
    store
        .mailbox_owner(mailbox)
        .await
        .unwrap()
        .unwrap_or(PrincipalId(-1))
}

/// Append targets, each with its owner.
async fn with_owners(
    store: &Arc<dyn Store>,
    mailboxes: &[MailboxId],
) -> Vec<(PrincipalId, MailboxId)> {
    let mut out = Vec::with_capacity(mailboxes.len());
    for &m in mailboxes {
        out.push((owner(store, m).await, m));
    }
    out
}

async fn put_message(store: &Arc<dyn Store>, body: &str) -> NewMessage {
    let raw = format!("Subject: {body}\r\n\r\n{body}\r\n").into_bytes();
    let size = raw.len() as u64;
    let blob = store.put_blob(Arc::new(raw)).await.unwrap();
    NewMessage {
        blob,
        size,
        received_at: now_millis(),
        message_id_header: Some(format!("{body}@test")),
        references: vec![],
        summary: "{}".into(),
        flags: SystemFlags::default(),
        keywords: vec![],
        derived: vec![("test.kind".into(), body.as_bytes().to_vec())],
        text: Some(MessageText {
            headers: format!("subject\n{}\n", body.to_lowercase()),
            body: format!("{}\n", body.to_lowercase()),
            complete: true,
        }),
    }
}

async fn concurrent_uid_allocation(h: Harness) {
    let store = h.store;
    let (_, boxes) = domain_and_user(&store, "alice", 0).await;
    let inbox = inbox(&boxes);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut uids = Vec::new();
            for i in 0..25 {
                let msg = put_message(&store, &format!("t{t}m{i}")).await;
                let a = store
                    .append_message(&with_owners(&store, &[inbox]).await, msg)
                    .await
                    .unwrap();
                uids.push(a[0].uid);
            }
            uids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(distinct.len(), 200, "duplicate UIDs handed out");
    assert_eq!(
        distinct,
        (1..=200).collect(),
        "UIDs must be 1..=200 with no gaps"
    );
    let mbox = store
        .get_mailbox(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mbox.uid_next, 201);

    // Expunged UIDs are never handed out again.
    store
        .expunge(owner(&store, inbox).await, inbox, &[199, 200])
        .await
        .unwrap();
    let msg = put_message(&store, "after-expunge").await;
    let a = store
        .append_message(&with_owners(&store, &[inbox]).await, msg)
        .await
        .unwrap();
    assert_eq!(a[0].uid, 201);
    let listed: Vec<u32> = store
        .list_messages(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(listed.len(), 199);
    assert!(!listed.contains(&199) && !listed.contains(&200));
}

async fn eight_concurrent_appends(h: Harness) {
    let store = h.store;
    let (_, boxes) = domain_and_user(&store, "bob", 0).await;
    let inbox = inbox(&boxes);
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let msg = put_message(&store, &format!("parallel {t}")).await;
            barrier.wait().await;
            store
                .append_message(&with_owners(&store, &[inbox]).await, msg)
                .await
                .unwrap()[0]
                .uid
        }));
    }
    let mut uids = BTreeSet::new();
    for t in tasks {
        assert!(uids.insert(t.await.unwrap()), "duplicate UID");
    }
    assert_eq!(uids, (1..=8).collect());
    assert_eq!(
        store
            .list_messages(owner(&store, inbox).await, inbox)
            .await
            .unwrap()
            .len(),
        8
    );
}

async fn modseq_monotonic(h: Harness) {
    let store = h.store;
    let (_, boxes) = domain_and_user(&store, "carol", 0).await;
    let inbox = inbox(&boxes);
    let start = store
        .get_mailbox(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .unwrap()
        .highest_modseq;
    let mut last = start;
    let mut uids = Vec::new();
    for i in 0..5 {
        let msg = put_message(&store, &format!("m{i}")).await;
        let a = store
            .append_message(&with_owners(&store, &[inbox]).await, msg)
            .await
            .unwrap();
        assert!(a[0].modseq > last, "append MODSEQ must grow");
        last = a[0].modseq;
        uids.push(a[0].uid);
    }
    let changed = store
        .store_flags(
            owner(&store, inbox).await,
            inbox,
            &uids[..3],
            FlagChange::Add(SystemFlags(SystemFlags::SEEN), vec!["$Important".into()]),
        )
        .await
        .unwrap();
    assert_eq!(changed.len(), 3);
    for (_, m, _) in &changed {
        assert!(*m > last, "flag MODSEQ must grow");
        last = *m;
    }
    // A change that changes nothing takes no MODSEQ.
    let unchanged = store
        .store_flags(
            owner(&store, inbox).await,
            inbox,
            &uids[..1],
            FlagChange::Add(SystemFlags(SystemFlags::SEEN), vec![]),
        )
        .await
        .unwrap();
    assert!(unchanged.is_empty());
    let expunged = store
        .expunge(owner(&store, inbox).await, inbox, &uids[3..4])
        .await
        .unwrap();
    assert!(expunged > last);
    last = expunged;
    assert_eq!(
        store
            .get_mailbox(owner(&store, inbox).await, inbox)
            .await
            .unwrap()
            .unwrap()
            .highest_modseq,
        last
    );
    let changes = store
        .changes_since(owner(&store, inbox).await, inbox, start)
        .await
        .unwrap();
    assert_eq!(changes.len(), 5 + 3 + 1);
    assert!(changes.windows(2).all(|w| w[0].modseq < w[1].modseq));
    assert_eq!(changes.last().unwrap().kind, ChangeKind::Expunged);
    assert_eq!(changes.last().unwrap().uid, uids[3]);
    let since_flags = store
        .changes_since(owner(&store, inbox).await, inbox, changed[2].1)
        .await
        .unwrap();
    assert_eq!(since_flags.len(), 1);
    let messages = store
        .list_messages(owner(&store, inbox).await, inbox)
        .await
        .unwrap();
    let first = messages.iter().find(|m| m.uid == uids[0]).unwrap();
    assert!(first.flags.contains(SystemFlags::SEEN));
    assert_eq!(first.keywords, vec!["$Important".to_string()]);
}

async fn blob_refcounting(h: Harness) {
    let store = h.store;
    let (_, a_boxes) = domain_and_user(&store, "dave", 0).await;
    let (_, b_boxes) = domain_and_user(&store, "erin", 0).await;
    let (a_inbox, b_inbox) = (inbox(&a_boxes), inbox(&b_boxes));
    let msg = put_message(&store, "shared").await;
    let hash = msg.blob;
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 0);
    // One delivery to two accounts: one message row (and one reference) each.
    let appended = store
        .append_message(&with_owners(&store, &[a_inbox, b_inbox]).await, msg.clone())
        .await
        .unwrap();
    assert_eq!(appended.len(), 2);
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 2);
    // The same content stored again is deduplicated.
    let again = put_message(&store, "shared").await;
    assert_eq!(again.blob, hash);
    let third = store
        .append_message(&with_owners(&store, &[a_inbox]).await, again)
        .await
        .unwrap();
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 3);

    store
        .expunge(owner(&store, a_inbox).await, a_inbox, &[appended[0].uid])
        .await
        .unwrap();
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 2);
    // Referenced blobs survive a sweep with no grace period.
    store.sweep_blobs(Duration::ZERO).await.unwrap();
    assert!(store.blob_stored(hash).await.unwrap());
    assert!(
        store
            .read_blob(hash)
            .await
            .unwrap()
            .starts_with(b"Subject: shared")
    );

    store
        .expunge(owner(&store, a_inbox).await, a_inbox, &[third[0].uid])
        .await
        .unwrap();
    store
        .expunge(owner(&store, b_inbox).await, b_inbox, &[appended[1].uid])
        .await
        .unwrap();
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 0);
    // Unreferenced but within the grace period: kept.
    store.sweep_blobs(Duration::from_secs(3600)).await.unwrap();
    assert!(store.blob_stored(hash).await.unwrap());
    let removed = store.sweep_blobs(Duration::ZERO).await.unwrap();
    assert!(removed >= 1);
    assert!(!store.blob_stored(hash).await.unwrap());
    assert!(store.read_blob(hash).await.is_err());

    // An append naming a swept blob fails cleanly instead of naming nothing.
    let stale = NewMessage {
        blob: hash,
        ..put_message(&store, "other").await
    };
    assert!(
        store
            .append_message(&with_owners(&store, &[a_inbox]).await, stale)
            .await
            .is_err()
    );
    assert!(
        store
            .list_messages(owner(&store, a_inbox).await, a_inbox)
            .await
            .unwrap()
            .is_empty()
    );

    // A blob stored but never named (a failed append, a crash) is swept too.
    let orphan = store
        .put_blob(Arc::new(b"never named".to_vec()))
        .await
        .unwrap();
    store.sweep_blobs(Duration::from_secs(3600)).await.unwrap();
    assert!(
        store.blob_stored(orphan).await.unwrap(),
        "kept within the grace period"
    );
    store.sweep_blobs(Duration::ZERO).await.unwrap();
    assert!(!store.blob_stored(orphan).await.unwrap());

    // Deleting an account releases its references.
    let msg = put_message(&store, "kept-by-account").await;
    let hash = msg.blob;
    store
        .append_message(&with_owners(&store, &[b_inbox]).await, msg)
        .await
        .unwrap();
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 1);
    let erin = store
        .find_principal("erin", "example.org")
        .await
        .unwrap()
        .unwrap();
    store.delete_principal(erin.id).await.unwrap();
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 0);
}

async fn rollback_leaves_nothing(h: Harness) {
    let store = h.store;
    let (alice, a_boxes) = domain_and_user(&store, "frank", 0).await;
    let (_, b_boxes) = domain_and_user(&store, "grace", 10).await; // 10-byte quota
    let (a_inbox, b_inbox) = (inbox(&a_boxes), inbox(&b_boxes));
    let before_a = store
        .get_mailbox(owner(&store, a_inbox).await, a_inbox)
        .await
        .unwrap()
        .unwrap();
    let before_b = store
        .get_mailbox(owner(&store, b_inbox).await, b_inbox)
        .await
        .unwrap()
        .unwrap();
    let msg = put_message(&store, "too big for grace").await;
    let hash = msg.blob;
    let err = store
        .append_message(&with_owners(&store, &[a_inbox, b_inbox]).await, msg.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err:?}");
    assert_eq!(
        store
            .get_mailbox(owner(&store, a_inbox).await, a_inbox)
            .await
            .unwrap()
            .unwrap(),
        before_a
    );
    assert_eq!(
        store
            .get_mailbox(owner(&store, b_inbox).await, b_inbox)
            .await
            .unwrap()
            .unwrap(),
        before_b
    );
    assert!(
        store
            .list_messages(owner(&store, a_inbox).await, a_inbox)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .changes_since(owner(&store, a_inbox).await, a_inbox, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.blob_refcount(hash).await.unwrap(), 0);
    let a_after = store.get_principal(alice.id).await.unwrap().unwrap();
    assert_eq!(a_after.used_bytes, 0);

    // A missing mailbox in the target list rolls back the others too.
    let err = store
        .append_message(
            &with_owners(&store, &[a_inbox, MailboxId(987_654)]).await,
            msg,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(
        store
            .list_messages(owner(&store, a_inbox).await, a_inbox)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_mailbox(owner(&store, a_inbox).await, a_inbox)
            .await
            .unwrap()
            .unwrap(),
        before_a
    );

    // A principal whose mailbox list clashes is not created at all.
    let domain = store.find_domain("example.org").await.unwrap().unwrap();
    let err = store
        .create_principal(NewPrincipal {
            kind: PrincipalKind::User,
            domain_id: domain.id,
            local_part: "henry".into(),
            display_name: "Henry".into(),
            password_hash: None,
            quota_bytes: 0,
            is_admin: false,
            mailboxes: vec![
                NewMailbox {
                    name: "INBOX".into(),
                    role: Some(MailboxRole::Inbox),
                },
                NewMailbox {
                    name: "INBOX".into(),
                    role: None,
                },
            ],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert!(
        store
            .find_principal("henry", "example.org")
            .await
            .unwrap()
            .is_none()
    );
}

async fn principals_aliases_groups(h: Harness) {
    let store = h.store;
    assert!(store.create_domain("example.org").await.is_ok());
    assert!(matches!(
        store.create_domain("example.org").await,
        Err(StoreError::AlreadyExists(_))
    ));
    let (ivy, boxes) = domain_and_user(&store, "ivy", 0).await;
    assert_eq!(boxes.len(), 6);
    assert!(boxes.iter().all(|m| m.uid_next == 1 && m.uid_validity > 0));
    let validities: BTreeSet<u32> = boxes.iter().map(|m| m.uid_validity).collect();
    assert_eq!(
        validities.len(),
        6,
        "UIDVALIDITY must differ between mailboxes"
    );
    let domain = store.find_domain("example.org").await.unwrap().unwrap();
    store.add_alias(domain.id, "i.v", ivy.id).await.unwrap();
    assert!(matches!(
        store.add_alias(domain.id, "ivy", ivy.id).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let via_alias = store
        .find_principal("i.v", "example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(via_alias.id, ivy.id);
    assert_eq!(store.list_aliases(Some(ivy.id)).await.unwrap().len(), 1);

    let group = store
        .create_principal(NewPrincipal {
            kind: PrincipalKind::Group,
            domain_id: domain.id,
            local_part: "team".into(),
            display_name: "Team".into(),
            password_hash: None,
            quota_bytes: 0,
            is_admin: false,
            mailboxes: vec![],
        })
        .await
        .unwrap();
    assert_eq!(group.kind, PrincipalKind::Group);
    store.add_group_member(group.id, ivy.id).await.unwrap();
    store.add_group_member(group.id, ivy.id).await.unwrap();
    assert_eq!(store.group_members(group.id).await.unwrap().len(), 1);

    assert!(matches!(
        store.delete_domain(domain.id).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .update_principal(
            ivy.id,
            PrincipalUpdate {
                disabled: Some(true),
                quota_bytes: Some(5000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ivy2 = store.get_principal(ivy.id).await.unwrap().unwrap();
    assert!(ivy2.disabled);
    assert_eq!(ivy2.quota_bytes, 5000);
    assert_eq!(ivy2.password_hash, ivy.password_hash);

    store.delete_principal(ivy.id).await.unwrap();
    assert!(store.group_members(group.id).await.unwrap().is_empty());
    assert!(store.list_aliases(None).await.unwrap().is_empty());
    store.delete_principal(group.id).await.unwrap();
    store.delete_domain(domain.id).await.unwrap();
    assert!(store.list_domains().await.unwrap().is_empty());

    assert!(store.set_meta_if_absent("k", "v1").await.unwrap());
    assert!(!store.set_meta_if_absent("k", "v2").await.unwrap());
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v1"));
}

async fn threads_follow_references(h: Harness) {
    let store = h.store;
    let (_, boxes) = domain_and_user(&store, "jack", 0).await;
    let inbox = inbox(&boxes);
    let root = put_message(&store, "root").await;
    let root = store
        .append_message(&with_owners(&store, &[inbox]).await, root)
        .await
        .unwrap();
    let mut reply = put_message(&store, "reply").await;
    reply.references = vec!["root@test".into()];
    let reply = store
        .append_message(&with_owners(&store, &[inbox]).await, reply)
        .await
        .unwrap();
    let other = put_message(&store, "other").await;
    let other = store
        .append_message(&with_owners(&store, &[inbox]).await, other)
        .await
        .unwrap();
    assert_eq!(root[0].thread, root[0].message);
    assert_eq!(reply[0].thread, root[0].thread);
    assert_ne!(other[0].thread, root[0].thread);
}

async fn newer_schema_refused(h: Harness) {
    // Pretend a newer Rampart wrote the store, then reopen it.
    let store = h.store;
    match &h.reopen {
        StoreConfig::Sqlite { data_dir, .. } => {
            drop(store);
            let conn = rusqlite::Connection::open(data_dir.join("rampart.db")).unwrap();
            conn.execute(
                "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        }
        StoreConfig::Postgres { url, .. } => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .execute(
                    "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                    &[],
                )
                .await
                .unwrap();
        }
    }
    let err = open(&h.reopen, OpenMode::MustExist)
        .await
        .err()
        .expect("must refuse");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this binary"));
}

async fn outbound_queue(h: Harness) {
    let store = h.store;
    let msg = put_message(&store, "outbound").await;
    let id = store
        .enqueue(NewQueued {
            blob: msg.blob,
            size: msg.size,
            sender: "alice@example.org".into(),
            recipients: vec![
                QueuedAddress {
                    address: "x@Remote.example".into(),
                    notify: notify::SUCCESS | notify::FAILURE,
                    orcpt: Some("rfc822;X@Remote.example".into()),
                },
                QueuedAddress::plain("y@other.example"),
            ],
            owner: None,
            dsn: DsnRequest {
                ret_full: Some(false),
                envid: Some("QQ314159".into()),
            },
        })
        .await
        .unwrap();
    assert_eq!(store.blob_refcount(msg.blob).await.unwrap(), 1);
    let listed = store.queue_list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].recipients[0].domain, "remote.example");
    assert_eq!(
        listed[0].recipients[0].notify,
        notify::SUCCESS | notify::FAILURE
    );
    assert_eq!(
        listed[0].recipients[0].orcpt.as_deref(),
        Some("rfc822;X@Remote.example")
    );
    assert_eq!(listed[0].recipients[1].notify, 0);
    assert_eq!(listed[0].dsn.ret_full, Some(false));
    assert_eq!(listed[0].dsn.envid.as_deref(), Some("QQ314159"));
    let now = now_millis();
    let claimed = store.queue_claim_due(now, now + 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].recipients.len(), 2);
    assert!(claimed[0].recipients.iter().all(|r| r.attempts == 1));
    // Claimed recipients are not handed out twice while their lease runs.
    assert!(
        store
            .queue_claim_due(now, now + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let (x, y) = (claimed[0].recipients[0].id, claimed[0].recipients[1].id);
    store
        .queue_record(x, QueueOutcome::Delivered)
        .await
        .unwrap();
    store
        .queue_record(
            y,
            QueueOutcome::Retry {
                at: now + 30_000,
                error: "451 try later".into(),
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .queue_claim_due(now, now + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store.queue_collect_finished().await.unwrap().is_empty(),
        "y is still pending"
    );
    let later = store
        .queue_claim_due(now + 30_000, now + 90_000, 10)
        .await
        .unwrap();
    assert_eq!(
        later[0].recipients.len(),
        1,
        "only the pending recipient is claimed"
    );
    assert_eq!(later[0].recipients[0].attempts, 2);
    // A crash mid-attempt: once the lease runs out the recipient is due again.
    let after_crash = store
        .queue_claim_due(now + 90_000, now + 150_000, 10)
        .await
        .unwrap();
    assert_eq!(after_crash[0].recipients[0].id, y);
    store
        .queue_record(
            y,
            QueueOutcome::Failed {
                error: "550 no such user".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.queue_collect_finished().await.unwrap(), vec![id]);
    assert!(store.queue_get(id).await.unwrap().is_none());
    assert_eq!(store.blob_refcount(msg.blob).await.unwrap(), 0);

    // retry_now and remove.
    let msg = put_message(&store, "removable").await;
    let id = store
        .enqueue(NewQueued {
            blob: msg.blob,
            size: msg.size,
            sender: String::new(),
            recipients: vec![QueuedAddress::plain("z@remote.example")],
            owner: None,
            dsn: DsnRequest::default(),
        })
        .await
        .unwrap();
    let claimed = store
        .queue_claim_due(now_millis(), now_millis() + 60_000, 10)
        .await
        .unwrap();
    store
        .queue_record(
            claimed[0].recipients[0].id,
            QueueOutcome::Retry {
                at: now + 3_600_000,
                error: "later".into(),
            },
        )
        .await
        .unwrap();
    store.queue_retry_now(id).await.unwrap();
    assert_eq!(
        store
            .queue_claim_due(now_millis(), now_millis() + 1, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    store.queue_remove(id).await.unwrap();
    assert!(matches!(
        store.queue_remove(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.blob_refcount(msg.blob).await.unwrap(), 0);
}

async fn dkim_keys_per_domain(h: Harness) {
    let store = h.store;
    let d = store.create_domain("signed.example").await.unwrap();
    let key = |sel: &str| DkimKey {
        selector: sel.into(),
        algorithm: "ed25519-sha256".into(),
        private_key: vec![1, 2, 3],
        public_key: vec![4, 5, 6],
    };
    store.add_dkim_key(d.id, key("a")).await.unwrap();
    store.add_dkim_key(d.id, key("b")).await.unwrap();
    assert!(matches!(
        store.add_dkim_key(d.id, key("a")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let keys = store.dkim_keys(d.id).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.selector.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(keys[0].private_key, vec![1, 2, 3]);
    store.delete_domain(d.id).await.unwrap();
    assert!(
        store.dkim_keys(d.id).await.unwrap().is_empty(),
        "keys go with their domain"
    );
}

/// The mailbox's counters equal a count of its messages.
async fn assert_status_matches(store: &Arc<dyn Store>, id: MailboxId) {
    let messages = store
        .list_messages(owner(store, id).await, id)
        .await
        .unwrap();
    let mailbox = store
        .get_mailbox(owner(store, id).await, id)
        .await
        .unwrap()
        .unwrap();
    let expected = MailboxStatus {
        messages: messages.len() as u64,
        unseen: messages
            .iter()
            .filter(|m| !m.flags.contains(SystemFlags::SEEN))
            .count() as u64,
        deleted: messages
            .iter()
            .filter(|m| m.flags.contains(SystemFlags::DELETED))
            .count() as u64,
        size: messages.iter().map(|m| m.size).sum(),
        recent: messages
            .iter()
            .filter(|m| m.uid >= mailbox.recent_uid)
            .count() as u64,
    };
    assert_eq!(
        store
            .mailbox_status(owner(store, id).await, id)
            .await
            .unwrap()
            .1,
        expected,
        "mailbox {id}"
    );
}

async fn mailbox_tree_copy_move(h: Harness) {
    let store = h.store;
    let (user, boxes) = domain_and_user(&store, "tree", 0).await;
    let (other, other_boxes) = domain_and_user(&store, "other", 0).await;
    let own_inbox = inbox(&boxes);
    let mut uids = Vec::new();
    for i in 0..5 {
        let mut m = put_message(&store, &format!("tree{i}")).await;
        if i % 2 == 0 {
            m.flags = SystemFlags(SystemFlags::SEEN);
        }
        uids.push(
            store
                .append_message(&with_owners(&store, &[own_inbox]).await, m)
                .await
                .unwrap()[0]
                .uid,
        );
    }
    let (listed, status) = store
        .mailbox_status(owner(&store, own_inbox).await, own_inbox)
        .await
        .unwrap();
    assert_eq!(listed.id, own_inbox);
    assert_eq!((status.messages, status.unseen, status.deleted), (5, 2, 0));
    assert!(status.size > 0);

    // get_messages returns exactly the UIDs asked for that exist, in order,
    // whether they lie far apart (looked up one by one) or close together
    // (one range read).
    for (asked, expected) in [
        (vec![uids[3], 999, uids[1]], vec![uids[1], uids[3]]),
        (
            vec![uids[4], uids[0], uids[2], uids[2]],
            vec![uids[0], uids[2], uids[4]],
        ),
    ] {
        let got = store
            .get_messages(owner(&store, own_inbox).await, own_inbox, &asked)
            .await
            .unwrap();
        assert_eq!(got.iter().map(|m| m.uid).collect::<Vec<_>>(), expected);
        assert!(got.iter().all(|m| m.mailbox == own_inbox && m.size > 0));
    }

    // A folder with a child; copy keeps the message row, move takes it out.
    let parent = store
        .create_mailbox(
            user.id,
            NewMailbox {
                name: "Work".into(),
                role: None,
            },
        )
        .await
        .unwrap();
    let child = store
        .create_mailbox(
            user.id,
            NewMailbox {
                name: "Work/2026".into(),
                role: None,
            },
        )
        .await
        .unwrap();
    // find_mailbox: by exact name, and INBOX in any case by its role;
    // another account's mailbox of the same name is not found.
    let find = |account, name: &'static str| {
        let store = &store;
        async move {
            store
                .find_mailbox(account, name)
                .await
                .unwrap()
                .map(|m| m.id)
        }
    };
    assert_eq!(find(user.id, "Work/2026").await, Some(child.id));
    assert_eq!(find(user.id, "Work").await, Some(parent.id));
    assert_eq!(find(user.id, "work").await, None);
    for name in ["INBOX", "inbox", "InBoX"] {
        assert_eq!(find(user.id, name).await, Some(own_inbox));
    }
    assert_eq!(find(other.id, "Work").await, None);
    assert_ne!(find(other.id, "INBOX").await, Some(own_inbox));
    assert!(find(other.id, "INBOX").await.is_some());
    let copied = store
        .copy_messages(
            owner(&store, own_inbox).await,
            own_inbox,
            &[uids[0], uids[1]],
            parent.id,
            false,
        )
        .await
        .unwrap();
    assert_eq!(copied, vec![(uids[0], 1), (uids[1], 2)]);
    assert_eq!(
        store
            .list_messages(owner(&store, own_inbox).await, own_inbox)
            .await
            .unwrap()
            .len(),
        5
    );
    let before = store
        .get_mailbox(owner(&store, own_inbox).await, own_inbox)
        .await
        .unwrap()
        .unwrap()
        .highest_modseq;
    let moved = store
        .copy_messages(
            owner(&store, own_inbox).await,
            own_inbox,
            &[uids[2]],
            child.id,
            true,
        )
        .await
        .unwrap();
    assert_eq!(moved, vec![(uids[2], 1)]);
    assert_eq!(
        store
            .list_messages(owner(&store, own_inbox).await, own_inbox)
            .await
            .unwrap()
            .len(),
        4
    );
    let changes = store
        .changes_since(owner(&store, own_inbox).await, own_inbox, before)
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].uid, changes[0].kind),
        (uids[2], ChangeKind::Expunged)
    );
    let in_child = store
        .list_messages(owner(&store, child.id).await, child.id)
        .await
        .unwrap();
    assert_eq!(
        in_child[0].flags,
        SystemFlags(SystemFlags::SEEN),
        "flags travel"
    );
    // The copy names the same message (one blob reference, one quota charge).
    let copies = store
        .list_messages(owner(&store, parent.id).await, parent.id)
        .await
        .unwrap();
    let original = store
        .get_messages(owner(&store, own_inbox).await, own_inbox, &[uids[0]])
        .await
        .unwrap();
    assert_eq!(copies[0].message, original[0].message);
    assert_eq!(store.blob_refcount(copies[0].blob).await.unwrap(), 1);
    // Never across accounts: the other account's mailbox is not found.
    assert!(matches!(
        store
            .copy_messages(
                owner(&store, own_inbox).await,
                own_inbox,
                &[uids[3]],
                inbox(&other_boxes),
                false
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let _ = other;

    // Rename a parent and its child in one go; a taken name fails whole.
    store
        .rename_mailboxes(
            owner(&store, parent.id).await,
            &[(parent.id, "Job".into()), (child.id, "Job/2026".into())],
        )
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_mailboxes(user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(
        names.contains(&"Job".into()) && names.contains(&"Job/2026".into()),
        "{names:?}"
    );
    assert!(matches!(
        store
            .rename_mailboxes(
                owner(&store, parent.id).await,
                &[(parent.id, "Sent".into())]
            )
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store
            .get_mailbox(owner(&store, parent.id).await, parent.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Job"
    );

    // The counters follow every change: copy, move, flags.
    store
        .store_flags(
            owner(&store, own_inbox).await,
            own_inbox,
            &[uids[3]],
            FlagChange::Add(
                SystemFlags(SystemFlags::SEEN | SystemFlags::DELETED),
                vec![],
            ),
        )
        .await
        .unwrap();
    for id in [own_inbox, parent.id, child.id] {
        assert_status_matches(&store, id).await;
    }

    // Deleting the parent keeps the messages the own_inbox still holds; deleting
    // the child releases the moved message and its quota.
    store
        .expunge(owner(&store, own_inbox).await, own_inbox, &[uids[3]])
        .await
        .unwrap();
    assert_status_matches(&store, own_inbox).await;
    let used = store
        .get_principal(user.id)
        .await
        .unwrap()
        .unwrap()
        .used_bytes;
    store
        .delete_mailbox(owner(&store, parent.id).await, parent.id)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_principal(user.id)
            .await
            .unwrap()
            .unwrap()
            .used_bytes,
        used
    );
    store
        .delete_mailbox(owner(&store, child.id).await, child.id)
        .await
        .unwrap();
    let after = store
        .get_principal(user.id)
        .await
        .unwrap()
        .unwrap()
        .used_bytes;
    assert_eq!(after, used - in_child[0].size);
    assert_eq!(store.blob_refcount(in_child[0].blob).await.unwrap(), 0);
    assert!(
        store
            .get_mailbox(owner(&store, child.id).await, child.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn message_cache_follows_messages(h: Harness) {
    let store = h.store;
    let (user, boxes) = domain_and_user(&store, "cache", 0).await;
    let own_inbox = inbox(&boxes);
    let a = store
        .append_message(
            &with_owners(&store, &[own_inbox]).await,
            put_message(&store, "cache-a").await,
        )
        .await
        .unwrap()
        .remove(0);
    let b = store
        .append_message(
            &with_owners(&store, &[own_inbox]).await,
            put_message(&store, "cache-b").await,
        )
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .get_cached(user.id, &[a.message, b.message], "k")
            .await
            .unwrap()
            .is_empty()
    );
    // Found by id (for audits); a missing id is left out.
    let found = store
        .messages_by_id(user.id, &[b.message, MessageId(i64::MAX), a.message])
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![a.message, b.message]
    );
    assert_eq!(found[0].summary, "{}");
    // Derived data given with the message is there from the start.
    assert_eq!(
        store
            .get_cached(user.id, &[a.message], "test.kind")
            .await
            .unwrap(),
        vec![(a.message, b"cache-a".to_vec())]
    );
    store
        .put_cached(
            user.id,
            "k",
            vec![(a.message, b"one".to_vec()), (b.message, b"two".to_vec())],
        )
        .await
        .unwrap();
    store
        .put_cached(user.id, "k", vec![(a.message, b"uno".to_vec())])
        .await
        .unwrap();
    store
        .put_cached(user.id, "other", vec![(a.message, b"x".to_vec())])
        .await
        .unwrap();
    let mut got = store
        .get_cached(user.id, &[a.message, b.message], "k")
        .await
        .unwrap();
    got.sort();
    assert_eq!(
        got,
        vec![(a.message, b"uno".to_vec()), (b.message, b"two".to_vec())]
    );
    // With the message rows by UID, near together or far apart; a kind a
    // message lacks gives None.
    for asked in [vec![b.uid, a.uid], vec![a.uid, b.uid + 1_000]] {
        let with = store
            .get_messages_cached(owner(&store, own_inbox).await, own_inbox, &asked, "k")
            .await
            .unwrap();
        let plain = store
            .get_messages(owner(&store, own_inbox).await, own_inbox, &asked)
            .await
            .unwrap();
        assert_eq!(
            with.iter().map(|(r, _)| r.uid).collect::<Vec<_>>(),
            plain.iter().map(|r| r.uid).collect::<Vec<_>>()
        );
        for (record, data) in &with {
            let expected: &[u8] = if record.message == a.message {
                b"uno"
            } else {
                b"two"
            };
            assert_eq!(data.as_deref(), Some(expected));
        }
    }
    let none = store
        .get_messages_cached(
            owner(&store, own_inbox).await,
            own_inbox,
            &[b.uid],
            "missing.kind",
        )
        .await
        .unwrap();
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].1, None);
    // Gone with the message; a write for a message that no longer exists is dropped.
    store
        .expunge(owner(&store, own_inbox).await, own_inbox, &[a.uid])
        .await
        .unwrap();
    assert!(
        store
            .get_cached(user.id, &[a.message], "k")
            .await
            .unwrap()
            .is_empty()
    );
    store
        .put_cached(user.id, "k", vec![(a.message, b"late".to_vec())])
        .await
        .unwrap();
    assert!(
        store
            .get_cached(user.id, &[a.message], "k")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn full_text_index(h: Harness) {
    let store = h.store;
    let (_, boxes) = domain_and_user(&store, "fts", 0).await;
    let own_inbox = inbox(&boxes);
    let other = boxes.iter().find(|m| m.id != own_inbox).unwrap().id;
    let append = |mailbox: MailboxId, message: NewMessage| {
        let store = store.clone();
        async move {
            store
                .append_message(&with_owners(&store, &[mailbox]).await, message)
                .await
                .unwrap()
                .remove(0)
        }
    };
    let budget = append(
        own_inbox,
        put_message(&store, "Budget meeting Thursday").await,
    )
    .await;
    let minutes = append(own_inbox, put_message(&store, "minutes 100% done_x").await).await;
    append(other, put_message(&store, "budget elsewhere").await).await;
    // Not indexed when stored, and one indexed only in part.
    let later = append(
        own_inbox,
        NewMessage {
            text: None,
            ..put_message(&store, "budget later").await
        },
    )
    .await;
    let partial = append(
        own_inbox,
        NewMessage {
            text: Some(MessageText {
                headers: String::new(),
                body: "budg".into(),
                complete: false,
            }),
            ..put_message(&store, "cut").await
        },
    )
    .await;
    let uids = |m: &TextMatches| m.matched.iter().map(|(u, _)| *u).collect::<Vec<_>>();

    // A substring, in one mailbox only, anywhere in a word.
    let found = store
        .search_text(
            owner(&store, own_inbox).await,
            own_inbox,
            TextField::All,
            "udget",
        )
        .await
        .unwrap();
    assert_eq!(uids(&found), vec![budget.uid]);
    assert_eq!(found.matched[0].1, budget.message);
    assert_eq!(found.unindexed, vec![later.uid, partial.uid]);
    // Fields are kept apart; a phrase matches only as a whole.
    assert_eq!(
        uids(
            &store
                .search_text(
                    owner(&store, own_inbox).await,
                    own_inbox,
                    TextField::Headers,
                    "meeting thu"
                )
                .await
                .unwrap()
        ),
        vec![budget.uid]
    );
    assert!(
        store
            .search_text(
                owner(&store, own_inbox).await,
                own_inbox,
                TextField::Body,
                "meeting friday"
            )
            .await
            .unwrap()
            .matched
            .is_empty()
    );
    // Characters that mean something to the engine's query language are plain text.
    for needle in ["100% done_x", "\"quoted\" or not", "a_b%c\\d"] {
        let m = store
            .search_text(
                owner(&store, own_inbox).await,
                own_inbox,
                TextField::All,
                needle,
            )
            .await
            .unwrap();
        assert_eq!(
            uids(&m),
            if needle.starts_with("100") {
                vec![minutes.uid]
            } else {
                vec![]
            }
        );
    }

    // Indexing later: only messages with no text yet are pending.
    let pending = store.unindexed_messages(100).await.unwrap();
    assert_eq!(
        pending.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![later.message]
    );
    store
        .put_text(vec![(
            later.message,
            MessageText {
                headers: "subject\nbudget later\n".into(),
                body: "budget later\n".into(),
                complete: true,
            },
        )])
        .await
        .unwrap();
    assert!(store.unindexed_messages(100).await.unwrap().is_empty());
    let found = store
        .search_text(
            owner(&store, own_inbox).await,
            own_inbox,
            TextField::Body,
            "budget",
        )
        .await
        .unwrap();
    assert_eq!(uids(&found), vec![budget.uid, later.uid]);
    assert_eq!(found.unindexed, vec![partial.uid]);

    // A copy shares the text; an expunged message leaves the index.
    let copied = store
        .copy_messages(
            owner(&store, own_inbox).await,
            own_inbox,
            &[budget.uid],
            other,
            false,
        )
        .await
        .unwrap();
    store
        .expunge(owner(&store, own_inbox).await, own_inbox, &[budget.uid])
        .await
        .unwrap();
    assert_eq!(
        uids(
            &store
                .search_text(
                    owner(&store, own_inbox).await,
                    own_inbox,
                    TextField::All,
                    "budget"
                )
                .await
                .unwrap()
        ),
        vec![later.uid]
    );
    let elsewhere = store
        .search_text(owner(&store, other).await, other, TextField::All, "budget")
        .await
        .unwrap();
    assert!(uids(&elsewhere).contains(&copied[0].1));
    assert_eq!(uids(&elsewhere).len(), 2);
    store
        .expunge(owner(&store, other).await, other, &uids(&elsewhere))
        .await
        .unwrap();
    assert!(
        store
            .search_text(owner(&store, other).await, other, TextField::All, "budget")
            .await
            .unwrap()
            .matched
            .is_empty()
    );
}

async fn app_passwords(h: Harness) {
    let store = h.store;
    let (alice, _) = domain_and_user(&store, "apps", 0).await;
    let (bob, _) = domain_and_user(&store, "apps2", 0).await;
    let phone = store
        .add_app_password(alice.id, "phone", "h1")
        .await
        .unwrap();
    store
        .add_app_password(alice.id, "laptop", "h2")
        .await
        .unwrap();
    assert!(matches!(
        store.add_app_password(alice.id, "phone", "h3").await,
        Err(StoreError::AlreadyExists(_))
    ));
    // Names are per user.
    store.add_app_password(bob.id, "phone", "h4").await.unwrap();
    let names: Vec<String> = store
        .list_app_passwords(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, vec!["laptop", "phone"]);
    assert_eq!(
        store.find_app_password(alice.id, "h1").await.unwrap(),
        Some(phone)
    );
    assert_eq!(store.find_app_password(bob.id, "h1").await.unwrap(), None);
    store.remove_app_password(alice.id, "phone").await.unwrap();
    assert_eq!(store.find_app_password(alice.id, "h1").await.unwrap(), None);
    assert!(matches!(
        store.remove_app_password(alice.id, "phone").await,
        Err(StoreError::NotFound { .. })
    ));
    // They go with the user.
    store.delete_principal(bob.id).await.unwrap();
    assert!(store.list_app_passwords(bob.id).await.unwrap().is_empty());
}

async fn subscriptions_recent_settings(h: Harness) {
    let store = h.store;
    let (alice, mailboxes) = domain_and_user(&store, "subs", 0).await;
    let (bob, _) = domain_and_user(&store, "subs2", 0).await;
    let inbox = inbox(&mailboxes);

    // Subscriptions are names: they need no mailbox and outlive one.
    assert!(store.subscriptions(alice.id).await.unwrap().is_empty());
    store
        .set_subscription(alice.id, "Work/Reports", true)
        .await
        .unwrap();
    store
        .set_subscription(alice.id, "INBOX", true)
        .await
        .unwrap();
    store
        .set_subscription(alice.id, "INBOX", true)
        .await
        .unwrap();
    store.set_subscription(bob.id, "Bob", true).await.unwrap();
    assert_eq!(
        store.subscriptions(alice.id).await.unwrap(),
        vec!["INBOX".to_string(), "Work/Reports".to_string()]
    );
    let work = store
        .create_mailbox(
            alice.id,
            NewMailbox {
                name: "Work".into(),
                role: None,
            },
        )
        .await
        .unwrap();
    store
        .delete_mailbox(owner(&store, work.id).await, work.id)
        .await
        .unwrap();
    store
        .set_subscription(alice.id, "INBOX", false)
        .await
        .unwrap();
    store
        .set_subscription(alice.id, "Never", false)
        .await
        .unwrap();
    assert_eq!(
        store.subscriptions(alice.id).await.unwrap(),
        vec!["Work/Reports".to_string()]
    );
    assert_eq!(store.subscriptions(bob.id).await.unwrap(), vec!["Bob"]);

    // \Recent: the first claim gets the new messages, the next none.
    assert_eq!(
        store
            .claim_recent(owner(&store, inbox).await, inbox)
            .await
            .unwrap(),
        (1, 1)
    );
    let mut uids = Vec::new();
    for body in ["r1", "r2"] {
        let m = put_message(&store, body).await;
        uids.push(
            store
                .append_message(&with_owners(&store, &[inbox]).await, m)
                .await
                .unwrap()[0]
                .uid,
        );
    }
    assert_eq!(
        store
            .mailbox_status(owner(&store, inbox).await, inbox)
            .await
            .unwrap()
            .1
            .recent,
        2
    );
    assert_status_matches(&store, inbox).await;
    assert_eq!(
        store
            .claim_recent(owner(&store, inbox).await, inbox)
            .await
            .unwrap(),
        (uids[0], uids[1] + 1)
    );
    assert_eq!(
        store
            .mailbox_status(owner(&store, inbox).await, inbox)
            .await
            .unwrap()
            .1
            .recent,
        0
    );
    assert_eq!(
        store
            .claim_recent(owner(&store, inbox).await, inbox)
            .await
            .unwrap(),
        (uids[1] + 1, uids[1] + 1)
    );
    assert_status_matches(&store, inbox).await;

    // Message-ID lookup within a time window, newest copy first.
    let since = now_millis() - 60_000;
    assert_eq!(
        store
            .find_by_message_id(owner(&store, inbox).await, inbox, "r2@test", since)
            .await
            .unwrap(),
        Some(uids[1])
    );
    assert_eq!(
        store
            .find_by_message_id(
                owner(&store, inbox).await,
                inbox,
                "r2@test",
                now_millis() + 60_000
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_by_message_id(owner(&store, inbox).await, inbox, "nope@test", since)
            .await
            .unwrap(),
        None
    );

    // Settings are per account and can be cleared.
    assert_eq!(
        store.account_setting(alice.id, "sent_copy").await.unwrap(),
        None
    );
    store
        .set_account_setting(alice.id, "sent_copy", Some("off"))
        .await
        .unwrap();
    store
        .set_account_setting(alice.id, "sent_copy", Some("on"))
        .await
        .unwrap();
    assert_eq!(
        store
            .account_setting(alice.id, "sent_copy")
            .await
            .unwrap()
            .as_deref(),
        Some("on")
    );
    assert_eq!(
        store.account_setting(bob.id, "sent_copy").await.unwrap(),
        None
    );
    store
        .set_account_setting(alice.id, "sent_copy", None)
        .await
        .unwrap();
    assert_eq!(
        store.account_setting(alice.id, "sent_copy").await.unwrap(),
        None
    );
    // They go with the account.
    store.delete_principal(bob.id).await.unwrap();
    assert!(store.subscriptions(bob.id).await.unwrap().is_empty());
}

/// RFC 8461 §5: a domain's policy outlives the store's process, is replaced
/// whole by the next one fetched, and policies long expired are dropped.
async fn mta_sts_policies_persist(h: Harness) {
    let store = h.store;
    assert_eq!(store.sts_policy("remote.example").await.unwrap(), None);
    let first = StsPolicyRecord {
        domain: "remote.example".into(),
        policy_id: "20261127".into(),
        mode: "enforce".into(),
        mx: vec!["mx.remote.example".into(), "*.backup.remote.example".into()],
        max_age: 86_400,
        fetched_at: 1_000_000,
        expires_at: 1_000_000 + 86_400_000,
    };
    store.put_sts_policy(first.clone()).await.unwrap();
    let gone = StsPolicyRecord {
        domain: "gone.example".into(),
        policy_id: "1".into(),
        mode: "none".into(),
        mx: vec![],
        max_age: 60,
        fetched_at: 1_000_000,
        expires_at: 1_060_000,
    };
    store.put_sts_policy(gone.clone()).await.unwrap();
    assert_eq!(
        store.sts_policy("remote.example").await.unwrap().as_ref(),
        Some(&first)
    );
    // `mode: none` is kept as well, with no patterns.
    assert_eq!(store.sts_policy("gone.example").await.unwrap(), Some(gone));

    // Reopened (a restart): still there.
    drop(store);
    let store = open(&h.reopen, OpenMode::MustExist).await.unwrap();
    assert_eq!(
        store.sts_policy("remote.example").await.unwrap().as_ref(),
        Some(&first)
    );

    // A new id's policy replaces the old one; gone.example's expired before
    // it was fetched and is dropped.
    let second = StsPolicyRecord {
        policy_id: "20270101".into(),
        mode: "testing".into(),
        mx: vec!["mx2.remote.example".into()],
        max_age: 3_600,
        fetched_at: 2_000_000,
        expires_at: 2_000_000 + 3_600_000,
        ..first
    };
    store.put_sts_policy(second.clone()).await.unwrap();
    assert_eq!(
        store.sts_policy("remote.example").await.unwrap(),
        Some(second)
    );
    assert_eq!(store.sts_policy("gone.example").await.unwrap(), None);

    // A pattern cannot smuggle in a second one.
    let bad = StsPolicyRecord {
        domain: "bad.example".into(),
        policy_id: "1".into(),
        mode: "enforce".into(),
        mx: vec!["a.example\nevil.example".into()],
        max_age: 60,
        fetched_at: 2_000_000,
        expires_at: 2_060_000,
    };
    assert!(store.put_sts_policy(bad).await.is_err());
    assert_eq!(store.sts_policy("bad.example").await.unwrap(), None);
}

/// STORE, COPY, MOVE and EXPUNGE over many messages at once (set-based):
/// every changed message gets its own MODSEQ, in UID order, every change is
/// logged, and expunging the last copies releases blobs and quota.
async fn bulk_changes(h: Harness) {
    let store = h.store;
    let (user, boxes) = domain_and_user(&store, "bulk", 0).await;
    let inbox = inbox(&boxes);
    let other = boxes.iter().find(|m| m.id != inbox).unwrap().id;
    let mut uids = Vec::new();
    let mut blobs = Vec::new();
    for i in 0..300 {
        let msg = put_message(&store, &format!("bulk {i}")).await;
        blobs.push(msg.blob);
        uids.push(
            store
                .append_message(&with_owners(&store, &[inbox]).await, msg)
                .await
                .unwrap()[0]
                .uid,
        );
    }
    let before = store
        .get_mailbox(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .unwrap()
        .highest_modseq;
    // Half of them are \Seen already: only the other half change.
    store
        .store_flags(
            owner(&store, inbox).await,
            inbox,
            &uids[..150],
            FlagChange::Add(SystemFlags(SystemFlags::SEEN), vec![]),
        )
        .await
        .unwrap();
    let mid = store
        .get_mailbox(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .unwrap()
        .highest_modseq;
    assert_eq!(mid, before + 150);
    let changed = store
        .store_flags(
            owner(&store, inbox).await,
            inbox,
            &uids,
            FlagChange::Add(SystemFlags(SystemFlags::SEEN), vec!["$Bulk".into()]),
        )
        .await
        .unwrap();
    assert_eq!(changed.len(), 300, "the keyword is new on every message");
    let status = store
        .mailbox_status(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .1;
    assert_eq!(
        (status.messages, status.unseen, status.deleted),
        (300, 0, 0)
    );
    let modseqs: Vec<u64> = changed.iter().map(|c| c.1).collect();
    assert_eq!(modseqs, (mid + 1..=mid + 300).collect::<Vec<_>>());
    assert!(changed.windows(2).all(|w| w[0].0 < w[1].0), "in UID order");
    let logged = store
        .changes_since(owner(&store, inbox).await, inbox, mid)
        .await
        .unwrap();
    assert_eq!(logged.len(), 300);
    assert!(logged.iter().all(|c| c.kind == ChangeKind::Flags));
    let records = store
        .list_messages(owner(&store, inbox).await, inbox)
        .await
        .unwrap();
    // The state alone: the same rows, without the summaries.
    let state = store
        .list_message_state(owner(&store, inbox).await, inbox)
        .await
        .unwrap();
    assert_eq!(state.len(), records.len());
    for (s, r) in state.iter().zip(&records) {
        assert!(s.summary.is_empty() && !r.summary.is_empty());
        assert_eq!(
            (
                s.uid,
                s.message,
                s.blob,
                s.size,
                s.flags,
                &s.keywords,
                s.modseq,
                s.thread
            ),
            (
                r.uid,
                r.message,
                r.blob,
                r.size,
                r.flags,
                &r.keywords,
                r.modseq,
                r.thread
            )
        );
    }
    assert!(
        records
            .iter()
            .all(|r| r.flags.contains(SystemFlags::SEEN) && r.keywords == vec!["$Bulk".to_owned()])
    );

    // MOVE the first 100 (UIDs missing from the set are skipped).
    let mut wanted = uids[..100].to_vec();
    wanted.push(999_999);
    let moved = store
        .copy_messages(owner(&store, inbox).await, inbox, &wanted, other, true)
        .await
        .unwrap();
    assert_eq!(moved.len(), 100);
    let target = store
        .get_mailbox(owner(&store, other).await, other)
        .await
        .unwrap()
        .unwrap();
    let new_uids: Vec<u32> = moved.iter().map(|m| m.1).collect();
    assert_eq!(
        new_uids,
        (target.uid_next - 100..target.uid_next).collect::<Vec<_>>()
    );
    let there = store
        .list_messages(owner(&store, other).await, other)
        .await
        .unwrap();
    assert_eq!(there.len(), 100);
    assert!(
        there.iter().all(|r| r.keywords == vec!["$Bulk".to_owned()]),
        "flags travel"
    );
    let left = store
        .changes_since(owner(&store, inbox).await, inbox, mid + 300)
        .await
        .unwrap();
    assert_eq!(left.len(), 100);
    assert!(left.iter().all(|c| c.kind == ChangeKind::Expunged));

    let status = store
        .mailbox_status(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .1;
    assert_eq!((status.messages, status.unseen), (200, 0));
    let moved_status = store
        .mailbox_status(owner(&store, other).await, other)
        .await
        .unwrap()
        .1;
    assert_eq!((moved_status.messages, moved_status.unseen), (100, 0));
    assert!(moved_status.size > 0);
    store
        .store_flags(
            owner(&store, inbox).await,
            inbox,
            &uids[150..],
            FlagChange::Remove(SystemFlags(SystemFlags::SEEN), vec![]),
        )
        .await
        .unwrap();
    store
        .store_flags(
            owner(&store, inbox).await,
            inbox,
            &uids,
            FlagChange::Add(SystemFlags(SystemFlags::DELETED), vec![]),
        )
        .await
        .unwrap();
    let status = store
        .mailbox_status(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .1;
    assert_eq!(
        (status.messages, status.unseen, status.deleted),
        (200, 150, 200)
    );
    // EXPUNGE everything: the moved ones stay (held by the other mailbox).
    let used_before = store
        .get_principal(user.id)
        .await
        .unwrap()
        .unwrap()
        .used_bytes;
    let highest = store
        .expunge(owner(&store, inbox).await, inbox, &uids)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_messages(owner(&store, inbox).await, inbox)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        highest,
        store
            .get_mailbox(owner(&store, inbox).await, inbox)
            .await
            .unwrap()
            .unwrap()
            .highest_modseq
    );
    let used_after = store
        .get_principal(user.id)
        .await
        .unwrap()
        .unwrap()
        .used_bytes;
    assert!(
        used_after < used_before && used_after > 0,
        "{used_before} -> {used_after}"
    );
    assert_eq!(
        store.blob_refcount(blobs[0]).await.unwrap(),
        1,
        "moved: still held"
    );
    assert_eq!(
        store.blob_refcount(blobs[200]).await.unwrap(),
        0,
        "expunged: released"
    );
    let status = store
        .mailbox_status(owner(&store, inbox).await, inbox)
        .await
        .unwrap()
        .1;
    assert_eq!(
        (status.messages, status.unseen, status.deleted, status.size),
        (0, 0, 0, 0)
    );
    store
        .expunge(owner(&store, other).await, other, &new_uids)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_principal(user.id)
            .await
            .unwrap()
            .unwrap()
            .used_bytes,
        0
    );
}

/// Bans outlive a reopen (a restart), and on a backend shared by several
/// nodes each one hears the others' bans and mailbox changes, not its own.
async fn login_bans_and_announcements(h: Harness) {
    let store = h.store.clone();
    let now = now_millis();
    store
        .put_login_ban("192.0.2.7", now + 60_000)
        .await
        .unwrap();
    store
        .put_login_ban("2001:db8:1:2::", now - 1)
        .await
        .unwrap();
    // A shorter ban does not cut a longer one short.
    store.put_login_ban("192.0.2.7", now + 1_000).await.unwrap();
    let other = open(&h.reopen, OpenMode::MustExist).await.unwrap();
    assert_eq!(
        other.login_bans(now).await.unwrap(),
        vec![("192.0.2.7".to_owned(), now + 60_000)],
        "the live ban is kept, the expired one is not listed"
    );
    let Some(mut heard) = other.announcements() else {
        assert_eq!(store.backend_name(), "sqlite", "one process writes SQLite");
        assert!(store.announcements().is_none());
        return;
    };
    let mut own = store.announcements().expect("both nodes listen");
    let (_, mailboxes) = domain_and_user(&store, "announced", 0).await;
    let inbox = inbox(&mailboxes);
    // The listener starts in the background: change until it hears, with a
    // bound only so that a broken build fails instead of hanging.
    let mut heard_change = false;
    for round in 0..40 {
        let msg = put_message(&store, &format!("announced {round}")).await;
        store
            .append_message(&with_owners(&store, &[inbox]).await, msg)
            .await
            .unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(500), heard.recv()).await;
        if let Ok(announcement) = wait {
            assert_eq!(announcement.unwrap(), Announcement::Mailbox(inbox));
            heard_change = true;
            break;
        }
    }
    assert!(
        heard_change,
        "the other node never heard of the new message"
    );
    store
        .put_login_ban("198.51.100.1", now + 60_000)
        .await
        .unwrap();
    let ban = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match heard.recv().await.unwrap() {
                Announcement::Ban { client, until } => break (client, until),
                Announcement::Mailbox(_) => continue,
            }
        }
    })
    .await
    .expect("the other node hears the ban");
    assert_eq!(ban, ("198.51.100.1".to_owned(), now + 60_000));
    // The first node hears the other's bans, and nothing of its own appends
    // and ban: the first thing it hears is a ban the other node made.
    let mut own_heard = None;
    for round in 0..40 {
        let client = format!("198.51.100.{}", round + 2);
        other.put_login_ban(&client, now + 60_000).await.unwrap();
        if let Ok(a) = tokio::time::timeout(Duration::from_millis(500), own.recv()).await {
            own_heard = Some(a.unwrap());
            break;
        }
    }
    match own_heard {
        Some(Announcement::Ban { client, until }) => {
            assert!(client.starts_with("198.51.100.") && client != "198.51.100.1");
            assert_eq!(until, now + 60_000);
        }
        other => panic!("the first node heard {other:?}, not the other node's ban"),
    }
}

/// Issue 12 point 11: every call names the account it acts in and finds
/// rows by (account, id), so a mailbox or message of another account is
/// not found and left as it was, whatever id the caller passes.
async fn keyed_by_account(h: Harness) {
    let store = h.store;
    let (alice, alice_boxes) = domain_and_user(&store, "alice", 0).await;
    let (bob, bob_boxes) = domain_and_user(&store, "bob", 0).await;
    let (theirs, mine) = (inbox(&alice_boxes), inbox(&bob_boxes));
    let m = store
        .append_message(&[(alice.id, theirs)], put_message(&store, "private").await)
        .await
        .unwrap()
        .remove(0);
    store.put_text(vec![]).await.unwrap();
    assert_eq!(store.mailbox_owner(theirs).await.unwrap(), Some(alice.id));
    let not_found = |r: Result<_>, what: &str| match r {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what} with another account's mailbox: {other:?}"),
    };

    // Reads see nothing.
    assert!(store.get_mailbox(bob.id, theirs).await.unwrap().is_none());
    not_found(
        store.mailbox_status(bob.id, theirs).await.map(|_| ()),
        "STATUS",
    );
    assert!(
        store
            .list_messages(bob.id, theirs)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_message_state(bob.id, theirs)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_messages(bob.id, theirs, &[m.uid])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_messages_cached(bob.id, theirs, &[m.uid], "test.kind")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .messages_by_id(bob.id, &[m.message])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_cached(bob.id, &[m.message], "test.kind")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .changes_since(bob.id, theirs, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_by_message_id(bob.id, theirs, "private@test", 0)
            .await
            .unwrap(),
        None
    );
    not_found(
        store
            .search_text(bob.id, theirs, TextField::All, "private")
            .await
            .map(|_| ()),
        "search",
    );

    // Writes fail and change nothing.
    not_found(
        store.claim_recent(bob.id, theirs).await.map(|_| ()),
        "claim_recent",
    );
    not_found(
        store
            .store_flags(
                bob.id,
                theirs,
                &[m.uid],
                FlagChange::Add(SystemFlags(SystemFlags::DELETED), vec![]),
            )
            .await
            .map(|_| ()),
        "STORE",
    );
    not_found(
        store.expunge(bob.id, theirs, &[m.uid]).await.map(|_| ()),
        "EXPUNGE",
    );
    not_found(
        store
            .copy_messages(bob.id, theirs, &[m.uid], mine, true)
            .await
            .map(|_| ()),
        "MOVE out of it",
    );
    not_found(
        store
            .copy_messages(alice.id, theirs, &[m.uid], mine, false)
            .await
            .map(|_| ()),
        "COPY into another account",
    );
    not_found(
        store
            .append_message(&[(bob.id, theirs)], put_message(&store, "planted").await)
            .await
            .map(|_| ()),
        "APPEND",
    );
    not_found(
        store
            .rename_mailboxes(bob.id, &[(theirs, "Stolen".into())])
            .await,
        "RENAME",
    );
    not_found(store.delete_mailbox(bob.id, theirs).await, "DELETE");
    store
        .put_cached(bob.id, "other.kind", vec![(m.message, b"planted".to_vec())])
        .await
        .unwrap();

    // The owner still finds everything as it was.
    let (mailbox, status) = store.mailbox_status(alice.id, theirs).await.unwrap();
    assert_eq!(mailbox.name, "INBOX");
    assert_eq!(status.messages, 1);
    let kept = store.list_messages(alice.id, theirs).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].flags, SystemFlags::default());
    assert!(
        store
            .get_cached(alice.id, &[m.message], "other.kind")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_messages(bob.id, mine).await.unwrap().is_empty());
    assert_eq!(
        store
            .changes_since(alice.id, theirs, 0)
            .await
            .unwrap()
            .len(),
        1
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Harness::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(
                    not(rampart_test_postgres),
                    ignore = "skipped: set RAMPART_TEST_POSTGRES_URL to run against PostgreSQL"
                )]
                async fn $name() {
                    super::$name(super::Harness::postgres().await).await;
                }
            )*
        }
    };
}

conformance!(
    concurrent_uid_allocation,
    eight_concurrent_appends,
    modseq_monotonic,
    blob_refcounting,
    rollback_leaves_nothing,
    principals_aliases_groups,
    threads_follow_references,
    newer_schema_refused,
    outbound_queue,
    dkim_keys_per_domain,
    mailbox_tree_copy_move,
    message_cache_follows_messages,
    full_text_index,
    app_passwords,
    subscriptions_recent_settings,
    mta_sts_policies_persist,
    login_bans_and_announcements,
    bulk_changes,
    keyed_by_account,
);
