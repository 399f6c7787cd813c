//! Mailboxes: trees, copy and move, counters, subscriptions, `\Recent`, settings.

use super::*;

pub(super) async fn mailbox_tree_copy_move(h: Harness) {
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

pub(super) async fn subscriptions_recent_settings(h: Harness) {
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
