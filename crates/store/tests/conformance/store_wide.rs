//! What concerns the store as a whole: schema versions, failed-login bans and announcements.

use super::*;

pub(super) async fn newer_schema_refused(h: Harness) {
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

/// Bans outlive a reopen (a restart), and on a backend shared by several
/// nodes each one hears the others' bans and mailbox changes, not its own.
pub(super) async fn login_bans_and_announcements(h: Harness) {
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
