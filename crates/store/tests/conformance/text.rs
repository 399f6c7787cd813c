//! The full-text index.

use super::*;

pub(super) async fn full_text_index(h: Harness) {
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
