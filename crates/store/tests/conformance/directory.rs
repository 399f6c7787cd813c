//! The directory: principals, aliases, groups, DKIM keys, app passwords.

use super::*;

pub(super) async fn principals_aliases_groups(h: Harness) {
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

pub(super) async fn dkim_keys_per_domain(h: Harness) {
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

pub(super) async fn app_passwords(h: Harness) {
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

/// The address list: profiles by principal, contacts by domain.
pub(super) async fn address_list(h: Harness) {
    let store = h.store;
    let (anna, _) = domain_and_user(&store, "anna", 0).await;
    let (_bernd, _) = domain_and_user(&store, "bernd", 0).await;
    let other = store.create_domain("other.example").await.unwrap();
    store
        .set_profile(
            anna.id,
            Profile {
                title: "Clerk".into(),
                department: "Registry".into(),
                phone: "+49 30 1".into(),
                office: "Room 2".into(),
            },
        )
        .await
        .unwrap();
    // Setting again replaces.
    store
        .set_profile(
            anna.id,
            Profile {
                title: "Head clerk".into(),
                ..Profile::default()
            },
        )
        .await
        .unwrap();
    let members = store.address_list_members(anna.domain_id).await.unwrap();
    let names: Vec<&str> = members.iter().map(|(p, _)| p.local_part.as_str()).collect();
    assert_eq!(names, ["anna", "bernd"]);
    assert_eq!(members[0].1.title, "Head clerk");
    assert_eq!(members[0].1.department, "");
    assert_eq!(members[1].1, Profile::default());
    assert!(
        store
            .address_list_members(other.id)
            .await
            .unwrap()
            .is_empty()
    );

    let new = |uid: &str, name: &str| NewOrgContact {
        uid: uid.into(),
        display_name: name.into(),
        email: format!("{uid}@supplier.example"),
        data: format!("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{name}\r\nEND:VCARD\r\n"),
    };
    store
        .add_org_contact(anna.domain_id, new("fire", "Fire brigade"))
        .await
        .unwrap();
    store
        .add_org_contact(anna.domain_id, new("acme", "Acme Roads"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_org_contact(anna.domain_id, new("fire", "Again"))
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    // The same UID in another organisation is another contact.
    store
        .add_org_contact(other.id, new("fire", "Their brigade"))
        .await
        .unwrap();
    let listed = store.org_contacts(anna.domain_id).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|c| c.display_name.as_str())
            .collect::<Vec<_>>(),
        ["Acme Roads", "Fire brigade"]
    );
    store
        .remove_org_contact(anna.domain_id, "fire")
        .await
        .unwrap();
    assert!(matches!(
        store.remove_org_contact(anna.domain_id, "fire").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.org_contacts(anna.domain_id).await.unwrap().len(), 1);
    assert_eq!(store.org_contacts(other.id).await.unwrap().len(), 1);
}
