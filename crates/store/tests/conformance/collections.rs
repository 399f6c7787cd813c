//! Calendars and address books: collections, resources with preconditions,
//! UID uniqueness, tombstones and sync tokens, time-range preselection.

use super::*;

fn calendar(name: &str) -> NewCollection {
    NewCollection {
        kind: CollectionKind::Calendar,
        name: name.into(),
        display_name: format!("Calendar {name}"),
        description: String::new(),
        color: String::new(),
        components: vec!["VEVENT".into(), "VTODO".into()],
    }
}

fn event(name: &str, uid: &str, etag: &str, start: i64, end: Option<i64>) -> NewDavObject {
    NewDavObject {
        name: name.into(),
        uid: uid.into(),
        etag: etag.into(),
        component: "VEVENT".into(),
        starts_at: Some(start),
        ends_at: end,
        recurring: end.is_none(),
        data: format!("BEGIN:VCALENDAR\r\nUID:{uid}\r\nX-ETAG:{etag}\r\nEND:VCALENDAR\r\n"),
    }
}

pub(super) async fn calendars_and_address_books(h: Harness) {
    let store = h.store;
    let (user, _) = domain_and_user(&store, "cal", 0).await;
    let (other, _) = domain_and_user(&store, "stranger", 0).await;
    let cal = store
        .create_collection(user.id, calendar("work"))
        .await
        .unwrap();
    assert_eq!(cal.components, vec!["VEVENT", "VTODO"]);
    assert!(matches!(
        store.create_collection(user.id, calendar("work")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    // The same name as an address book is another collection.
    let book = store
        .create_collection(
            user.id,
            NewCollection {
                kind: CollectionKind::AddressBook,
                components: vec![],
                ..calendar("work")
            },
        )
        .await
        .unwrap();
    assert_ne!(book.id, cal.id);
    assert_eq!(
        store
            .list_collections(user.id, CollectionKind::Calendar)
            .await
            .unwrap(),
        vec![cal.clone()]
    );
    // Another account sees nothing of them and cannot write to them.
    assert_eq!(
        store
            .find_collection(other.id, CollectionKind::Calendar, "work")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .put_object(
                other.id,
                cal.id,
                event("x.ics", "x", "e", 0, None),
                WriteCondition::Any
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_objects(other.id, cal.id, &["x.ics".into()]).await,
        Err(StoreError::NotFound { .. })
    ));

    // Create, then conditions: If-None-Match: * fails once it exists,
    // If-Match needs the current tag.
    let created = store
        .put_object(
            user.id,
            cal.id,
            event("a.ics", "uid-a", "1", 1_000, Some(2_000)),
            WriteCondition::Absent,
        )
        .await
        .unwrap();
    let PutOutcome::Created(a) = created else {
        panic!("not created: {created:?}")
    };
    assert!(matches!(
        store
            .put_object(
                user.id,
                cal.id,
                event("a.ics", "uid-a", "2", 1_000, Some(2_000)),
                WriteCondition::Absent
            )
            .await,
        Err(StoreError::PreconditionFailed(_))
    ));
    assert!(matches!(
        store
            .put_object(
                user.id,
                cal.id,
                event("a.ics", "uid-a", "2", 1_000, Some(2_000)),
                WriteCondition::Matches("stale".into())
            )
            .await,
        Err(StoreError::PreconditionFailed(_))
    ));
    assert!(matches!(
        store
            .put_object(
                user.id,
                cal.id,
                event("new.ics", "uid-new", "1", 0, None),
                WriteCondition::Exists
            )
            .await,
        Err(StoreError::PreconditionFailed(_))
    ));
    let replaced = store
        .put_object(
            user.id,
            cal.id,
            event("a.ics", "uid-a", "2", 1_000, Some(2_000)),
            WriteCondition::Matches("1".into()),
        )
        .await
        .unwrap();
    let PutOutcome::Replaced(a2) = replaced else {
        panic!("not replaced: {replaced:?}")
    };
    assert!(a2.modseq > a.modseq);
    // One UID per collection (RFC 4791 §5.3.2.1 no-uid-conflict).
    match store
        .put_object(
            user.id,
            cal.id,
            event("b.ics", "uid-a", "1", 0, None),
            WriteCondition::Any,
        )
        .await
    {
        Err(StoreError::UidInUse { name }) => assert_eq!(name, "a.ics"),
        other => panic!("UID reuse allowed: {other:?}"),
    }
    store
        .put_object(
            user.id,
            cal.id,
            event("b.ics", "uid-b", "1", 5_000, Some(6_000)),
            WriteCondition::Any,
        )
        .await
        .unwrap();
    store
        .put_object(
            user.id,
            cal.id,
            event("endless.ics", "uid-endless", "1", 0, None),
            WriteCondition::Any,
        )
        .await
        .unwrap();

    let got = store
        .get_objects(
            user.id,
            cal.id,
            &["b.ics".into(), "missing.ics".into(), "a.ics".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["b.ics", "a.ics"]
    );
    assert!(got[1].data.as_deref().unwrap().contains("X-ETAG:2"));
    assert_eq!(got[1].size, got[1].data.as_ref().unwrap().len() as u64);

    // Time-range preselection: overlap of [start, end), open ends pass.
    let names = |filter: ObjectFilter| {
        let store = store.clone();
        async move {
            store
                .find_objects(user.id, cal.id, filter, false)
                .await
                .unwrap()
                .into_iter()
                .map(|o| {
                    assert!(o.data.is_none());
                    o.name
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names(ObjectFilter::default()).await,
        ["a.ics", "b.ics", "endless.ics"]
    );
    assert_eq!(
        names(ObjectFilter {
            start: Some(1_500),
            end: Some(5_000),
            ..Default::default()
        })
        .await,
        ["a.ics", "endless.ics"]
    );
    assert_eq!(
        names(ObjectFilter {
            start: Some(7_000),
            end: None,
            ..Default::default()
        })
        .await,
        ["endless.ics"]
    );
    // A range starting where an event ends still preselects it (an
    // instant there is in the range; the caller decides exactly).
    assert_eq!(
        names(ObjectFilter {
            start: Some(2_000),
            end: Some(3_000),
            ..Default::default()
        })
        .await,
        ["a.ics", "endless.ics"]
    );
    assert_eq!(
        names(ObjectFilter {
            component: Some("VTODO".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );

    // Sync: everything from 0, then only what changed; a deleted resource
    // is named as removed; a token from the future is refused.
    let all = store
        .collection_changes(user.id, cal.id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.changed.len(), 3);
    assert!(all.removed.is_empty());
    let token = all.highest_modseq;
    assert!(matches!(
        store
            .delete_object(
                user.id,
                cal.id,
                "b.ics",
                WriteCondition::Matches("other".into())
            )
            .await,
        Err(StoreError::PreconditionFailed(_))
    ));
    store
        .delete_object(user.id, cal.id, "b.ics", WriteCondition::Any)
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_object(user.id, cal.id, "b.ics", WriteCondition::Any)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .put_object(
            user.id,
            cal.id,
            event("a.ics", "uid-a", "3", 1_000, Some(2_000)),
            WriteCondition::Any,
        )
        .await
        .unwrap();
    let delta = store
        .collection_changes(user.id, cal.id, token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        delta
            .changed
            .iter()
            .map(|o| (o.name.as_str(), o.etag.as_str()))
            .collect::<Vec<_>>(),
        [("a.ics", "3")]
    );
    assert_eq!(delta.removed, ["b.ics"]);
    assert!(delta.highest_modseq > token);
    assert_eq!(
        store
            .collection_changes(user.id, cal.id, delta.highest_modseq)
            .await
            .unwrap()
            .unwrap()
            .changed,
        vec![]
    );
    assert_eq!(
        store
            .collection_changes(user.id, cal.id, delta.highest_modseq + 1)
            .await
            .unwrap(),
        None
    );
    // The name of a deleted resource and its UID can be used again.
    let again = store
        .put_object(
            user.id,
            cal.id,
            event("b.ics", "uid-b", "9", 0, None),
            WriteCondition::Absent,
        )
        .await
        .unwrap();
    assert!(matches!(again, PutOutcome::Created(_)));
    let after = store
        .collection_changes(user.id, cal.id, delta.highest_modseq)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.changed.len(), 1);
    assert!(after.removed.is_empty());

    // Properties move the CTag; deletion takes the resources with it.
    let patched = store
        .update_collection(
            user.id,
            cal.id,
            CollectionPatch {
                display_name: Some("Work".into()),
                color: Some("#FF0000FF".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.display_name, "Work");
    // Dead properties are kept, replaced and removed.
    let prop = |name: &str, value: &str| DeadProp {
        ns: "http://apple.com/ns/ical/".into(),
        name: name.into(),
        value: value.into(),
    };
    store
        .update_collection(
            user.id,
            cal.id,
            CollectionPatch {
                set_props: vec![prop("calendar-order", "1"), prop("x", "<a/>")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let again = store
        .update_collection(
            user.id,
            cal.id,
            CollectionPatch {
                set_props: vec![prop("calendar-order", "2")],
                remove_props: vec![("http://apple.com/ns/ical/".into(), "x".into())],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.dead_props, vec![prop("calendar-order", "2")]);
    assert_eq!(
        store
            .find_collection(user.id, CollectionKind::Calendar, "work")
            .await
            .unwrap()
            .unwrap()
            .dead_props,
        vec![prop("calendar-order", "2")]
    );
    assert_eq!(patched.color, "#FF0000FF");
    assert_eq!(patched.description, "");
    assert!(patched.highest_modseq > after.highest_modseq);
    assert!(matches!(
        store.delete_collection(other.id, cal.id).await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_collection(user.id, cal.id).await.unwrap();
    assert_eq!(
        store
            .find_collection(user.id, CollectionKind::Calendar, "work")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .find_collection(user.id, CollectionKind::AddressBook, "work")
            .await
            .unwrap()
            .is_some()
    );
}

/// Concurrent writers to one collection get distinct MODSEQs, and a sync
/// from any token sees each of their resources.
pub(super) async fn concurrent_collection_writes(h: Harness) {
    let store = h.store;
    let (user, _) = domain_and_user(&store, "busy", 0).await;
    let cal = store
        .create_collection(user.id, calendar("busy"))
        .await
        .unwrap();
    let start = cal.highest_modseq;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut modseqs = Vec::new();
            for j in 0..5 {
                let name = format!("{i}-{j}.ics");
                let out = store
                    .put_object(
                        user.id,
                        cal.id,
                        event(&name, &name, "1", 0, None),
                        WriteCondition::Absent,
                    )
                    .await
                    .unwrap();
                let PutOutcome::Created(o) = out else {
                    panic!("{out:?}")
                };
                modseqs.push(o.modseq);
            }
            modseqs
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        for m in t.await.unwrap() {
            assert!(all.insert(m), "MODSEQ {m} given twice");
        }
    }
    assert_eq!(all.len(), 40);
    let changes = store
        .collection_changes(user.id, cal.id, start)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changes.changed.len(), 40);
    assert_eq!(changes.highest_modseq, *all.last().unwrap());
}

/// Shares: to an account or a group, the greater right wins, only the
/// owner's collections can be shared, unsharing ends it.
pub(super) async fn collection_sharing(h: Harness) {
    let store = h.store;
    let (alice, _) = domain_and_user(&store, "alice", 0).await;
    let (bob, _) = domain_and_user(&store, "bob", 0).await;
    let (carol, _) = domain_and_user(&store, "carol", 0).await;
    let group = store
        .create_principal(NewPrincipal {
            kind: PrincipalKind::Group,
            domain_id: alice.domain_id,
            local_part: "council".into(),
            display_name: "Council".into(),
            password_hash: None,
            quota_bytes: 0,
            is_admin: false,
            mailboxes: vec![],
        })
        .await
        .unwrap();
    store.add_group_member(group.id, bob.id).await.unwrap();
    store.add_group_member(group.id, carol.id).await.unwrap();
    let cal = store
        .create_collection(alice.id, calendar("work"))
        .await
        .unwrap();
    // Nobody but the owner can share it.
    assert!(matches!(
        store
            .share_collection(bob.id, cal.id, bob.id, ShareRights::Write)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .share_collection(alice.id, cal.id, group.id, ShareRights::Read)
        .await
        .unwrap();
    store
        .share_collection(alice.id, cal.id, bob.id, ShareRights::Write)
        .await
        .unwrap();
    let bobs = store
        .shared_with(bob.id, CollectionKind::Calendar)
        .await
        .unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].collection.id, cal.id);
    assert_eq!(bobs[0].rights, ShareRights::Write);
    assert_eq!(bobs[0].owner_address, "alice@example.org");
    let carols = store
        .shared_with(carol.id, CollectionKind::Calendar)
        .await
        .unwrap();
    assert_eq!(carols[0].rights, ShareRights::Read);
    assert!(
        store
            .shared_with(carol.id, CollectionKind::AddressBook)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .shared_with(alice.id, CollectionKind::Calendar)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .collection_shares(alice.id, cal.id)
            .await
            .unwrap()
            .len(),
        2
    );
    store
        .unshare_collection(alice.id, cal.id, bob.id)
        .await
        .unwrap();
    assert!(matches!(
        store.unshare_collection(alice.id, cal.id, bob.id).await,
        Err(StoreError::NotFound { .. })
    ));
    // Through the group still.
    assert_eq!(
        store
            .shared_with(bob.id, CollectionKind::Calendar)
            .await
            .unwrap()[0]
            .rights,
        ShareRights::Read
    );
    store.delete_collection(alice.id, cal.id).await.unwrap();
    assert!(
        store
            .shared_with(bob.id, CollectionKind::Calendar)
            .await
            .unwrap()
            .is_empty()
    );
}
