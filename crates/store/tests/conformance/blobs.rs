//! Blob reference counts and sweeps.

use super::*;

pub(super) async fn blob_refcounting(h: Harness) {
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
