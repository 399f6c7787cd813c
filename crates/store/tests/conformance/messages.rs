//! Messages: UID and MODSEQ allocation, atomic appends, threads, set-based changes, derived data.

use super::*;

pub(super) async fn concurrent_uid_allocation(h: Harness) {
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

pub(super) async fn eight_concurrent_appends(h: Harness) {
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

pub(super) async fn modseq_monotonic(h: Harness) {
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

pub(super) async fn rollback_leaves_nothing(h: Harness) {
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

pub(super) async fn threads_follow_references(h: Harness) {
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

/// STORE, COPY, MOVE and EXPUNGE over many messages at once (set-based):
/// every changed message gets its own MODSEQ, in UID order, every change is
/// logged, and expunging the last copies releases blobs and quota.
pub(super) async fn bulk_changes(h: Harness) {
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

pub(super) async fn message_cache_follows_messages(h: Harness) {
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
