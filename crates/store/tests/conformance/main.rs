//! The store conformance suite: written once, run against SQLite always and
//! against PostgreSQL when `RAMPART_TEST_POSTGRES_URL` is set at build time
//! (otherwise `cargo test` lists those tests as ignored, with the reason).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rampart_store::*;

mod blobs;
mod collections;
mod directory;
mod keyed;
mod mailboxes;
mod messages;
mod queue;
mod store_wide;
mod text;

use blobs::*;
use collections::*;
use directory::*;
use keyed::*;
use mailboxes::*;
use messages::*;
use queue::*;
use store_wide::*;
use text::*;

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
    calendars_and_address_books,
    concurrent_collection_writes,
    address_list,
    collection_sharing,
);
