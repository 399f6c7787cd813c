//! Every call keyed by account: another account's rows are not found and stay as they were.

use super::*;

/// Issue 12 point 11: every call names the account it acts in and finds
/// rows by (account, id), so a mailbox or message of another account is
/// not found and left as it was, whatever id the caller passes.
pub(super) async fn keyed_by_account(h: Harness) {
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
    // Named under its own account too, in either order: still refused whole.
    for targets in [
        [(alice.id, theirs), (bob.id, theirs)],
        [(bob.id, theirs), (alice.id, theirs)],
    ] {
        not_found(
            store
                .append_message(&targets, put_message(&store, "twice").await)
                .await
                .map(|_| ()),
            "APPEND under two accounts",
        );
    }
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
