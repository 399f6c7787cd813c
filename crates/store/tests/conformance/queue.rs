//! The outbound queue and cached MTA-STS policies.

use super::*;

pub(super) async fn outbound_queue(h: Harness) {
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

/// RFC 8461 §5: a domain's policy outlives the store's process, is replaced
/// whole by the next one fetched, and policies long expired are dropped.
pub(super) async fn mta_sts_policies_persist(h: Harness) {
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
