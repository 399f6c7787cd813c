//! The PostgreSQL backend, for several Rampart nodes sharing one database.
//! Blob content lives in the database too, so that every node sees it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Runtime};
use tokio_postgres::{NoTls, Row};

use crate::model::{decode_keywords, encode_keywords};
use crate::*;

mod announcements;
mod login_bans;
mod sts_policies;

/// The PostgreSQL backend.
pub struct PostgresStore {
    pool: Pool,
    /// The connection settings, for the listening connection.
    pg_config: tokio_postgres::Config,
    /// This process's `application_name`, which its announcements carry.
    node: String,
    /// Other nodes' announcements, once someone asked for them.
    announcements: std::sync::OnceLock<tokio::sync::broadcast::Sender<Announcement>>,
    /// The task that listens for them, stopped with the store.
    listener: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(task) = self.listener.lock().ok().and_then(|mut l| l.take()) {
            task.abort();
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
            None => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(format!("cannot reach PostgreSQL: {e}"))
    }
}

/// Advisory lock key that serialises schema migrations across nodes.
const MIGRATION_LOCK: i64 = 0x0052_414d_5041_5254;

/// Schema migrations; entry N takes the store from version N to N+1.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("postgres_schema.sql"),
    include_str!("postgres_schema_2.sql"),
    include_str!("postgres_schema_3.sql"),
    include_str!("postgres_schema_4.sql"),
    include_str!("postgres_schema_5.sql"),
    include_str!("postgres_schema_6.sql"),
    include_str!("postgres_schema_7.sql"),
    include_str!("postgres_schema_8.sql"),
    include_str!("postgres_schema_9.sql"),
    include_str!("postgres_schema_10.sql"),
    include_str!("postgres_schema_11.sql"),
    include_str!("postgres_schema_12.sql"),
    include_str!("postgres_schema_13.sql"),
];

impl PostgresStore {
    /// Connects to `url` and runs schema migrations.
    pub async fn open(url: &str, pool_size: usize) -> Result<Self> {
        let node = announcements::node_name();
        let mut cfg = deadpool_postgres::Config::new();
        cfg.url = Some(url.to_owned());
        cfg.pool = Some(deadpool_postgres::PoolConfig::new(pool_size.max(1)));
        // Announcements name the node by the writing connection's name.
        cfg.application_name = Some(node.clone());
        let pg_config = cfg
            .get_pg_config()
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?;
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?;
        let store = PostgresStore {
            pool,
            pg_config,
            node,
            announcements: std::sync::OnceLock::new(),
            listener: std::sync::Mutex::new(None),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        .await?;
        let version: i64 = tx
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .await?
            .map(|r| r.get::<_, String>(0).parse().unwrap_or(-1))
            .unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 0 {
            return Err(StoreError::Corrupt("schema_version is not a number".into()));
        }
        for (to, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .map(|(i, s)| (i as i64 + 1, s))
        {
            if to > version {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&to.to_string()],
                )
                .await?;
            }
        }
        tx.commit().await?;
        drop(client);
        self.add_trigram_indexes().await;
        Ok(())
    }

    /// Adds trigram indexes to the full-text table when pg_trgm is available
    /// (a contrib extension, trusted since PostgreSQL 13, so a database
    /// owner may create it). Without it searches still work, reading the
    /// mailbox's text rows.
    async fn add_trigram_indexes(&self) {
        let result: Result<()> = async {
            let c = self.pool.get().await?;
            c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm").await?;
            // The extension may live in another schema than ours (one per
            // database): name its operator class by its schema.
            let schema: String = c
                .query_one(
                    "SELECT quote_ident(n.nspname) FROM pg_extension e
                     JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'",
                    &[],
                )
                .await?
                .get(0);
            c.batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS message_text_headers_trgm ON message_text USING gin (headers {schema}.gin_trgm_ops);
                 CREATE INDEX IF NOT EXISTS message_text_body_trgm ON message_text USING gin (body {schema}.gin_trgm_ops);"
            ))
            .await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(
                "no trigram index for full-text search ({e}); searches will read every message's text. Run CREATE EXTENSION pg_trgm as a superuser to add it"
            );
        }
    }
}

const PRINCIPAL_COLUMNS: &str = "p.id, p.kind, p.domain_id, d.name, p.local_part, p.display_name, p.password_hash, \
     p.quota_bytes, p.used_bytes, p.disabled, p.is_admin, p.created_at";

fn principal_from(r: &Row) -> Result<Principal> {
    Ok(Principal {
        id: PrincipalId(r.get(0)),
        kind: PrincipalKind::parse(r.get(1))?,
        domain_id: DomainId(r.get(2)),
        domain: r.get(3),
        local_part: r.get(4),
        display_name: r.get(5),
        password_hash: r.get::<_, Option<String>>(6).map(PasswordHash::new),
        quota_bytes: r.get::<_, i64>(7) as u64,
        used_bytes: r.get::<_, i64>(8) as u64,
        disabled: r.get(9),
        is_admin: r.get(10),
        created_at: r.get(11),
    })
}

async fn query_principals(
    c: &impl GenericClient,
    filter: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Principal>> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals p JOIN domains d ON d.id = p.domain_id {filter}"
    );
    c.query(&sql, args)
        .await?
        .iter()
        .map(principal_from)
        .collect()
}

const MAILBOX_COLUMNS: &str = "id, account_id, name, role, uid_next, highest_modseq, recent_uid";

fn mailbox_from(r: &Row) -> Mailbox {
    let id: i64 = r.get(0);
    let role: Option<String> = r.get(3);
    Mailbox {
        id: MailboxId(id),
        account: PrincipalId(r.get(1)),
        name: r.get(2),
        role: role.as_deref().and_then(MailboxRole::parse),
        uid_validity: id as u32,
        uid_next: r.get::<_, i64>(4) as u32,
        highest_modseq: r.get::<_, i64>(5) as u64,
        recent_uid: r.get::<_, i64>(6) as u32,
    }
}

async fn address_taken(c: &impl GenericClient, domain: DomainId, local_part: &str) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM principals WHERE domain_id = $1 AND local_part = $2)
                  + (SELECT count(*) FROM aliases WHERE domain_id = $1 AND local_part = $2)",
            &[&domain.0, &local_part],
        )
        .await?;
    Ok(row.get::<_, i64>(0) > 0)
}

async fn insert_mailbox(
    c: &impl GenericClient,
    account: PrincipalId,
    new: &NewMailbox,
) -> Result<Mailbox> {
    let row = c
        .query_opt(
            &format!(
                "INSERT INTO mailboxes (account_id, name, role, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, name) DO NOTHING RETURNING {MAILBOX_COLUMNS}"
            ),
            &[
                &account.0,
                &new.name,
                &new.role.map(MailboxRole::as_str),
                &now_millis(),
            ],
        )
        .await?;
    row.map(|r| mailbox_from(&r))
        .ok_or_else(|| StoreError::AlreadyExists(format!("mailbox {:?}", new.name)))
}

/// Deletes the messages no mailbox holds any more, releasing their blobs
/// and their accounts' quota: three statements for any number of messages.
async fn release_orphan_messages(c: &impl GenericClient, messages: &[i64]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    c.execute(
        "WITH gone AS (
             DELETE FROM messages m WHERE m.id = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM mailbox_messages mm WHERE mm.message_id = m.id)
             RETURNING m.account_id, m.blob_hash, m.size
         ), blobs_released AS (
             UPDATE blobs SET refcount = refcount - g.n
             FROM (SELECT blob_hash, count(*) AS n FROM gone GROUP BY blob_hash) g
             WHERE blobs.hash = g.blob_hash
         )
         UPDATE principals SET used_bytes = greatest(0, used_bytes - s.total)
         FROM (SELECT account_id, sum(size)::bigint AS total FROM gone GROUP BY account_id) s
         WHERE principals.id = s.account_id",
        &[&messages],
    )
    .await?;
    Ok(())
}

/// The rows (uid, message, flags, keywords) of those of `uids` the mailbox
/// holds, in UID order, in one statement.
async fn rows_for_uids(
    c: &impl GenericClient,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<Row>> {
    let uid_list: Vec<i64> = uids.iter().map(|&u| u as i64).collect();
    Ok(c.query(
        "SELECT uid, message_id, flags, keywords FROM mailbox_messages
         WHERE mailbox_id = $1 AND uid = ANY($2) ORDER BY uid",
        &[&mailbox.0, &uid_list],
    )
    .await?)
}

/// Takes `n` new MODSEQs of a mailbox at once; returns the first (the
/// others follow it). One statement, so a change over many messages
/// announces its mailbox once.
async fn allocate_modseqs(c: &impl GenericClient, mailbox: MailboxId, n: usize) -> Result<u64> {
    let row = c
        .query_opt(
            "UPDATE mailboxes SET highest_modseq = highest_modseq + $2 WHERE id = $1 RETURNING highest_modseq",
            &[&mailbox.0, &(n as i64)],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "mailbox",
            name: mailbox.to_string(),
        })?;
    Ok((row.get::<_, i64>(0) - n as i64 + 1) as u64)
}

/// Logs changes of one kind in a mailbox: (modseq, message, uid) each, in one statement.
async fn log_changes(
    c: &impl GenericClient,
    account: i64,
    mailbox: MailboxId,
    kind: ChangeKind,
    changes: &[(i64, i64, i64)],
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let modseqs: Vec<i64> = changes.iter().map(|c| c.0).collect();
    let messages: Vec<i64> = changes.iter().map(|c| c.1).collect();
    let uids: Vec<i64> = changes.iter().map(|c| c.2).collect();
    c.execute(
        "INSERT INTO changes (account_id, collection_kind, collection_id, modseq, object_id, uid, kind, at)
         SELECT $1, 'mailbox', $2, u.modseq, u.message_id, u.uid, $6, $7
         FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS u(modseq, message_id, uid)",
        &[
            &account,
            &mailbox.0,
            &modseqs,
            &messages,
            &uids,
            &kind.as_str(),
            &now_millis(),
        ],
    )
    .await?;
    Ok(())
}

async fn log_change(
    c: &impl GenericClient,
    account: i64,
    mailbox: MailboxId,
    modseq: u64,
    message: i64,
    uid: u32,
    kind: ChangeKind,
) -> Result<()> {
    c.execute(
        "INSERT INTO changes (account_id, collection_kind, collection_id, modseq, object_id, uid, kind, at)
         VALUES ($1, 'mailbox', $2, $3, $4, $5, $6, $7)",
        &[
            &account,
            &mailbox.0,
            &(modseq as i64),
            &message,
            &(uid as i64),
            &kind.as_str(),
            &now_millis(),
        ],
    )
    .await?;
    Ok(())
}

const SELECT_MESSAGES: &str = "SELECT mm.uid, m.id, m.blob_hash, m.size, m.received_at, mm.flags,
        mm.keywords, mm.modseq, m.thread_id, m.summary
 FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id";

fn message_from(mailbox: MailboxId, r: &Row) -> Result<MessageRecord> {
    Ok(MessageRecord {
        mailbox,
        uid: r.get::<_, i64>(0) as u32,
        message: MessageId(r.get(1)),
        blob: BlobHash::from_hex(r.get(2))?,
        size: r.get::<_, i64>(3) as u64,
        received_at: r.get(4),
        flags: SystemFlags(r.get::<_, i64>(5) as u32),
        keywords: decode_keywords(r.get(6)),
        modseq: r.get::<_, i64>(7) as u64,
        thread: MessageId(r.get(8)),
        summary: r.get(9),
    })
}

async fn mailbox_account(
    c: &impl GenericClient,
    mailbox: MailboxId,
    lock: bool,
) -> Result<(i64, i64)> {
    let sql = if lock {
        "SELECT account_id, highest_modseq FROM mailboxes WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT account_id, highest_modseq FROM mailboxes WHERE id = $1"
    };
    let row = c
        .query_opt(sql, &[&mailbox.0])
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "mailbox",
            name: mailbox.to_string(),
        })?;
    Ok((row.get(0), row.get(1)))
}

async fn insert_message(
    c: &impl GenericClient,
    account: i64,
    hex: &str,
    message: &NewMessage,
) -> Result<i64> {
    let size = message.size as i64;
    let charged = c
        .execute(
            "UPDATE principals SET used_bytes = used_bytes + $2
             WHERE id = $1 AND (quota_bytes = 0 OR used_bytes + $2 <= quota_bytes)",
            &[&account, &size],
        )
        .await?;
    if charged == 0 {
        let row = c
            .query_opt(
                "SELECT quota_bytes, used_bytes FROM principals WHERE id = $1",
                &[&account],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "account",
                name: account.to_string(),
            })?;
        let (quota, used): (i64, i64) = (row.get(0), row.get(1));
        return Err(StoreError::QuotaExceeded {
            account: PrincipalId(account),
            needed: message.size,
            available: (quota - used).max(0) as u64,
        });
    }
    if c.execute(
        "UPDATE blobs SET refcount = refcount + 1 WHERE hash = $1",
        &[&hex],
    )
    .await?
        == 0
    {
        return Err(StoreError::BlobDamaged {
            hash: message.blob,
            reason: "not stored (put_blob first)".into(),
        });
    }
    let mut thread: Option<i64> = None;
    for reference in &message.references {
        thread = c
            .query_opt(
                "SELECT thread_id FROM messages WHERE account_id = $1 AND message_id_header = $2 LIMIT 1",
                &[&account, reference],
            )
            .await?
            .map(|r| r.get(0));
        if thread.is_some() {
            break;
        }
    }
    let row = c
        .query_one(
            "INSERT INTO messages (account_id, blob_hash, size, received_at, message_id_header, thread_id, summary)
             VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id",
            &[
                &account,
                &hex,
                &size,
                &message.received_at,
                &message.message_id_header,
                &message.summary,
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    c.execute(
        "UPDATE messages SET thread_id = $2 WHERE id = $1",
        &[&id, &thread.unwrap_or(id)],
    )
    .await?;
    for (kind, data) in &message.derived {
        c.execute(
            "INSERT INTO message_cache (message_id, kind, data) VALUES ($1, $2, $3)",
            &[&id, kind, data],
        )
        .await?;
    }
    if let Some(text) = &message.text {
        index_text(c, id, text).await?;
    }
    Ok(id)
}

/// An app password from `SELECT id, name, created_at`.
fn app_password_row(r: &Row, principal: PrincipalId) -> AppPassword {
    AppPassword {
        id: r.get(0),
        principal,
        name: r.get(1),
        created_at: r.get(2),
    }
}

/// Indexes a message's text unless it is indexed already (or gone).
async fn index_text(c: &impl GenericClient, id: i64, text: &MessageText) -> Result<()> {
    let state: i16 = if text.complete { 1 } else { 2 };
    let updated = c
        .execute(
            "UPDATE messages SET text_state = $2 WHERE id = $1 AND text_state = 0",
            &[&id, &state],
        )
        .await?;
    if updated == 1 {
        // PostgreSQL text cannot hold NUL; nobody searches for one.
        let clean = |s: &str| s.replace('\0', "");
        c.execute(
            "INSERT INTO message_text (message_id, headers, body) VALUES ($1, $2, $3)",
            &[&id, &clean(&text.headers), &clean(&text.body)],
        )
        .await?;
    }
    Ok(())
}

/// A LIKE pattern that matches `needle` anywhere.
fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

#[async_trait]
impl Store for PostgresStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<Announcement>> {
        Some(self.subscribe())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let c = self.pool.get().await?;
        Ok(
            c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?
                .map(|r| r.get(0)),
        )
    }

    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?;
        Ok(n == 1)
    }

    async fn create_domain(&self, name: &str) -> Result<Domain> {
        let c = self.pool.get().await?;
        let created_at = now_millis();
        let row = c
            .query_opt(
                "INSERT INTO domains (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &created_at],
            )
            .await?
            .ok_or_else(|| StoreError::AlreadyExists(format!("domain {name}")))?;
        Ok(Domain {
            id: DomainId(row.get(0)),
            name: name.to_owned(),
            created_at,
        })
    }

    async fn find_domain(&self, name: &str) -> Result<Option<Domain>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "SELECT id, name, created_at FROM domains WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|r| Domain {
            id: DomainId(r.get(0)),
            name: r.get(1),
            created_at: r.get(2),
        }))
    }

    async fn list_domains(&self) -> Result<Vec<Domain>> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT id, name, created_at FROM domains ORDER BY name",
            &[],
        )
        .await?
        .iter()
        .map(|r| Domain {
            id: DomainId(r.get(0)),
            name: r.get(1),
            created_at: r.get(2),
        })
        .collect())
    }

    async fn delete_domain(&self, id: DomainId) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT 1 FROM domains WHERE id = $1 FOR UPDATE", &[&id.0])
            .await?;
        let used: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM principals WHERE domain_id = $1)
                      + (SELECT count(*) FROM aliases WHERE domain_id = $1)",
                &[&id.0],
            )
            .await?
            .get(0);
        if used > 0 {
            return Err(StoreError::Conflict(format!(
                "the domain still has {used} accounts, groups or aliases: remove them first"
            )));
        }
        if tx
            .execute("DELETE FROM domains WHERE id = $1", &[&id.0])
            .await?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "domain",
                name: id.to_string(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_principal(&self, new: NewPrincipal) -> Result<Principal> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Serialise address allocation within the domain across nodes.
        tx.execute(
            "SELECT 1 FROM domains WHERE id = $1 FOR UPDATE",
            &[&new.domain_id.0],
        )
        .await?;
        if address_taken(&tx, new.domain_id, &new.local_part).await? {
            return Err(StoreError::AlreadyExists(format!(
                "address {}@domain #{}",
                new.local_part, new.domain_id
            )));
        }
        let row = tx
            .query_one(
                "INSERT INTO principals (kind, domain_id, local_part, display_name, password_hash,
                     quota_bytes, is_admin, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &new.kind.as_str(),
                    &new.domain_id.0,
                    &new.local_part,
                    &new.display_name,
                    &new.password_hash.as_ref().map(PasswordHash::expose),
                    &(new.quota_bytes as i64),
                    &new.is_admin,
                    &now_millis(),
                ],
            )
            .await?;
        let id = PrincipalId(row.get(0));
        for mailbox in &new.mailboxes {
            insert_mailbox(&tx, id, mailbox).await?;
        }
        let principal = query_principals(&tx, "WHERE p.id = $1", &[&id.0])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("inserted principal vanished".into()))?;
        tx.commit().await?;
        Ok(principal)
    }

    async fn get_principal(&self, id: PrincipalId) -> Result<Option<Principal>> {
        let c = self.pool.get().await?;
        Ok(query_principals(&c, "WHERE p.id = $1", &[&id.0])
            .await?
            .pop())
    }

    async fn find_principal(&self, local_part: &str, domain: &str) -> Result<Option<Principal>> {
        let c = self.pool.get().await?;
        let direct = query_principals(
            &c,
            "WHERE d.name = $1 AND p.local_part = $2",
            &[&domain, &local_part],
        )
        .await?
        .pop();
        if direct.is_some() {
            return Ok(direct);
        }
        Ok(query_principals(
            &c,
            "JOIN aliases a ON a.target_id = p.id JOIN domains ad ON ad.id = a.domain_id
             WHERE ad.name = $1 AND a.local_part = $2",
            &[&domain, &local_part],
        )
        .await?
        .pop())
    }

    async fn list_principals(&self, domain: Option<DomainId>) -> Result<Vec<Principal>> {
        let c = self.pool.get().await?;
        let domain = domain.map(|d| d.0);
        query_principals(
            &c,
            "WHERE $1::BIGINT IS NULL OR p.domain_id = $1 ORDER BY d.name, p.local_part",
            &[&domain],
        )
        .await
    }

    async fn update_principal(&self, id: PrincipalId, update: PrincipalUpdate) -> Result<()> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "UPDATE principals SET
                     password_hash = coalesce($2, password_hash),
                     disabled = coalesce($3, disabled),
                     quota_bytes = coalesce($4, quota_bytes),
                     display_name = coalesce($5, display_name)
                 WHERE id = $1",
                &[
                    &id.0,
                    &update.password_hash.as_ref().map(PasswordHash::expose),
                    &update.disabled,
                    &update.quota_bytes.map(|q| q as i64),
                    &update.display_name,
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                kind: "principal",
                name: id.to_string(),
            });
        }
        Ok(())
    }

    async fn delete_principal(&self, id: PrincipalId) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE blobs b SET refcount = b.refcount - m.n
             FROM (SELECT blob_hash, count(*) AS n FROM messages WHERE account_id = $1 GROUP BY blob_hash) m
             WHERE b.hash = m.blob_hash",
            &[&id.0],
        )
        .await?;
        tx.execute("DELETE FROM messages WHERE account_id = $1", &[&id.0])
            .await?;
        tx.execute("DELETE FROM changes WHERE account_id = $1", &[&id.0])
            .await?;
        if tx
            .execute("DELETE FROM principals WHERE id = $1", &[&id.0])
            .await?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "principal",
                name: id.to_string(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_app_password(
        &self,
        principal: PrincipalId,
        name: &str,
        secret_hash: &str,
    ) -> Result<AppPassword> {
        let c = self.pool.get().await?;
        let created_at = now_millis();
        let row = c
            .query_opt(
                "INSERT INTO app_passwords (principal_id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (principal_id, name) DO NOTHING RETURNING id",
                &[&principal.0, &name, &secret_hash, &created_at],
            )
            .await?
            .ok_or_else(|| StoreError::AlreadyExists(format!("app password {name:?}")))?;
        Ok(AppPassword {
            id: row.get(0),
            principal,
            name: name.to_owned(),
            created_at,
        })
    }

    async fn list_app_passwords(&self, principal: PrincipalId) -> Result<Vec<AppPassword>> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT id, name, created_at FROM app_passwords WHERE principal_id = $1 ORDER BY name",
            &[&principal.0],
        )
        .await?
        .iter()
        .map(|r| app_password_row(r, principal))
        .collect())
    }

    async fn remove_app_password(&self, principal: PrincipalId, name: &str) -> Result<()> {
        let c = self.pool.get().await?;
        if c.execute(
            "DELETE FROM app_passwords WHERE principal_id = $1 AND name = $2",
            &[&principal.0, &name],
        )
        .await?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "app password",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn find_app_password(
        &self,
        principal: PrincipalId,
        secret_hash: &str,
    ) -> Result<Option<AppPassword>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "SELECT id, name, created_at FROM app_passwords WHERE principal_id = $1 AND secret_hash = $2",
            &[&principal.0, &secret_hash],
        )
        .await?
        .map(|r| app_password_row(&r, principal)))
    }

    async fn add_alias(
        &self,
        domain: DomainId,
        local_part: &str,
        target: PrincipalId,
    ) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "SELECT 1 FROM domains WHERE id = $1 FOR UPDATE",
            &[&domain.0],
        )
        .await?;
        if address_taken(&tx, domain, local_part).await? {
            return Err(StoreError::AlreadyExists(format!("address {local_part}@…")));
        }
        tx.execute(
            "INSERT INTO aliases (domain_id, local_part, target_id) VALUES ($1, $2, $3)",
            &[&domain.0, &local_part, &target.0],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_alias(&self, domain: DomainId, local_part: &str) -> Result<()> {
        let c = self.pool.get().await?;
        if c.execute(
            "DELETE FROM aliases WHERE domain_id = $1 AND local_part = $2",
            &[&domain.0, &local_part],
        )
        .await?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "alias",
                name: local_part.to_owned(),
            });
        }
        Ok(())
    }

    async fn list_aliases(&self, target: Option<PrincipalId>) -> Result<Vec<Alias>> {
        let c = self.pool.get().await?;
        let target = target.map(|t| t.0);
        Ok(c
            .query(
                "SELECT a.local_part, d.name, a.target_id FROM aliases a JOIN domains d ON d.id = a.domain_id
                 WHERE $1::BIGINT IS NULL OR a.target_id = $1 ORDER BY d.name, a.local_part",
                &[&target],
            )
            .await?
            .iter()
            .map(|r| Alias {
                local_part: r.get(0),
                domain: r.get(1),
                target: PrincipalId(r.get(2)),
            })
            .collect())
    }

    async fn add_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO group_members (group_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&group.0, &member.0],
        )
        .await?;
        Ok(())
    }

    async fn remove_group_member(&self, group: PrincipalId, member: PrincipalId) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "DELETE FROM group_members WHERE group_id = $1 AND member_id = $2",
            &[&group.0, &member.0],
        )
        .await?;
        Ok(())
    }

    async fn group_members(&self, group: PrincipalId) -> Result<Vec<Principal>> {
        let c = self.pool.get().await?;
        query_principals(
            &c,
            "JOIN group_members g ON g.member_id = p.id WHERE g.group_id = $1 ORDER BY d.name, p.local_part",
            &[&group.0],
        )
        .await
    }

    async fn create_mailbox(&self, account: PrincipalId, new: NewMailbox) -> Result<Mailbox> {
        let c = self.pool.get().await?;
        insert_mailbox(&c, account, &new).await
    }

    async fn rename_mailboxes(&self, renames: &[(MailboxId, String)]) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Two steps, so that renaming a/ to a/b/ never collides with itself.
        for (id, _) in renames {
            tx.execute(
                "UPDATE mailboxes SET name = '/' || id::text || '/' WHERE id = $1",
                &[&id.0],
            )
            .await?;
        }
        for (id, name) in renames {
            let (account, _) = mailbox_account(&tx, *id, true).await?;
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2)",
                    &[&account, name],
                )
                .await?
                .get(0);
            if taken {
                return Err(StoreError::AlreadyExists(format!("mailbox {name:?}")));
            }
            tx.execute(
                "UPDATE mailboxes SET name = $2 WHERE id = $1",
                &[&id.0, name],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn subscriptions(&self, account: PrincipalId) -> Result<Vec<String>> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name",
            &[&account.0],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    async fn set_subscription(&self, account: PrincipalId, name: &str, on: bool) -> Result<()> {
        let c = self.pool.get().await?;
        if on {
            c.execute(
                "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&account.0, &name],
            )
            .await?;
        } else {
            c.execute(
                "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2",
                &[&account.0, &name],
            )
            .await?;
        }
        Ok(())
    }

    async fn claim_recent(&self, mailbox: MailboxId) -> Result<(u32, u32)> {
        let c = self.pool.get().await?;
        // One statement: the old mark is read under the row lock the update
        // takes, so two sessions never claim the same UIDs.
        let r = c
            .query_opt(
                "UPDATE mailboxes m SET recent_uid = GREATEST(m.recent_uid, m.uid_next)
                 FROM (SELECT id, recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE) old
                 WHERE m.id = old.id
                 RETURNING old.recent_uid, m.recent_uid",
                &[&mailbox.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "mailbox",
                name: mailbox.to_string(),
            })?;
        Ok((r.get::<_, i64>(0) as u32, r.get::<_, i64>(1) as u32))
    }

    async fn find_by_message_id(
        &self,
        mailbox: MailboxId,
        message_id: &str,
        since: i64,
    ) -> Result<Option<u32>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "SELECT mm.uid FROM messages m
             JOIN mailbox_messages mm ON mm.message_id = m.id AND mm.mailbox_id = $1
             WHERE m.account_id = (SELECT account_id FROM mailboxes WHERE id = $1)
               AND m.message_id_header = $2 AND m.received_at >= $3
             ORDER BY mm.uid DESC LIMIT 1",
            &[&mailbox.0, &message_id, &since],
        )
        .await?
        .map(|r| r.get::<_, i64>(0) as u32))
    }

    async fn account_setting(&self, account: PrincipalId, key: &str) -> Result<Option<String>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "SELECT value FROM account_settings WHERE account_id = $1 AND key = $2",
            &[&account.0, &key],
        )
        .await?
        .map(|r| r.get(0)))
    }

    async fn set_account_setting(
        &self,
        account: PrincipalId,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let c = self.pool.get().await?;
        match value {
            Some(v) => {
                c.execute(
                    "INSERT INTO account_settings (account_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (account_id, key) DO UPDATE SET value = excluded.value",
                    &[&account.0, &key, &v],
                )
                .await?
            }
            None => {
                c.execute(
                    "DELETE FROM account_settings WHERE account_id = $1 AND key = $2",
                    &[&account.0, &key],
                )
                .await?
            }
        };
        Ok(())
    }

    async fn delete_mailbox(&self, id: MailboxId) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        mailbox_account(&tx, id, true).await?;
        let messages: Vec<i64> = tx
            .query(
                "DELETE FROM mailbox_messages WHERE mailbox_id = $1 RETURNING message_id",
                &[&id.0],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        release_orphan_messages(&tx, &messages).await?;
        tx.execute(
            "DELETE FROM changes WHERE collection_kind = 'mailbox' AND collection_id = $1",
            &[&id.0],
        )
        .await?;
        tx.execute("DELETE FROM mailboxes WHERE id = $1", &[&id.0])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mailbox_status(&self, id: MailboxId) -> Result<(Mailbox, MailboxStatus)> {
        let c = self.pool.get().await?;
        let r = c
            .query_opt(
                &format!(
                    "SELECT {MAILBOX_COLUMNS}, message_count, unseen_count, deleted_count, total_size,
                            (SELECT count(*) FROM mailbox_messages mm
                             WHERE mm.mailbox_id = mailboxes.id AND mm.uid >= mailboxes.recent_uid)
                     FROM mailboxes WHERE id = $1"
                ),
                &[&id.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "mailbox",
                name: id.to_string(),
            })?;
        Ok((
            mailbox_from(&r),
            MailboxStatus {
                messages: r.get::<_, i64>(7) as u64,
                unseen: r.get::<_, i64>(8) as u64,
                deleted: r.get::<_, i64>(9) as u64,
                size: r.get::<_, i64>(10) as u64,
                recent: r.get::<_, i64>(11) as u64,
            },
        ))
    }

    async fn list_mailboxes(&self, account: PrincipalId) -> Result<Vec<Mailbox>> {
        let c = self.pool.get().await?;
        Ok(c.query(
            &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 ORDER BY name"),
            &[&account.0],
        )
        .await?
        .iter()
        .map(mailbox_from)
        .collect())
    }

    async fn find_mailbox(&self, account: PrincipalId, name: &str) -> Result<Option<Mailbox>> {
        let c = self.pool.get().await?;
        let inbox = name.eq_ignore_ascii_case("inbox");
        Ok(c.query_opt(
            &format!(
                "SELECT {MAILBOX_COLUMNS} FROM mailboxes
                 WHERE account_id = $1 AND (name = $2 OR ($3 AND role = 'inbox'))
                 ORDER BY name LIMIT 1"
            ),
            &[&account.0, &name, &inbox],
        )
        .await?
        .map(|r| mailbox_from(&r)))
    }

    async fn get_mailbox(&self, id: MailboxId) -> Result<Option<Mailbox>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1"),
            &[&id.0],
        )
        .await?
        .map(|r| mailbox_from(&r)))
    }

    async fn put_blob(&self, data: std::sync::Arc<Vec<u8>>) -> Result<BlobHash> {
        let hash = BlobHash::of(&data);
        let c = self.pool.get().await?;
        // Content and row commit together; a committed transaction is durable
        // (synchronous_commit=on, the PostgreSQL default).
        c.execute(
            "INSERT INTO blobs (hash, size, refcount, last_put_at, data) VALUES ($1, $2, 0, $3, $4)
             ON CONFLICT (hash) DO UPDATE SET last_put_at = excluded.last_put_at",
            &[&hash.to_hex(), &(data.len() as i64), &now_millis(), &*data],
        )
        .await?;
        Ok(hash)
    }

    async fn read_blob(&self, hash: BlobHash) -> Result<Vec<u8>> {
        let c = self.pool.get().await?;
        let data: Vec<u8> = c
            .query_opt("SELECT data FROM blobs WHERE hash = $1", &[&hash.to_hex()])
            .await?
            .ok_or_else(|| StoreError::BlobDamaged {
                hash,
                reason: "no such blob in the database".into(),
            })?
            .get(0);
        hash.verify(&data)?;
        Ok(data)
    }

    async fn blob_refcount(&self, hash: BlobHash) -> Result<u64> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "SELECT refcount FROM blobs WHERE hash = $1",
            &[&hash.to_hex()],
        )
        .await?
        .map(|r| r.get::<_, i64>(0) as u64)
        .unwrap_or(0))
    }

    async fn blob_stored(&self, hash: BlobHash) -> Result<bool> {
        let c = self.pool.get().await?;
        Ok(
            c.query_opt("SELECT 1 FROM blobs WHERE hash = $1", &[&hash.to_hex()])
                .await?
                .is_some(),
        )
    }

    async fn sweep_blobs(&self, grace: Duration) -> Result<u64> {
        let c = self.pool.get().await?;
        let cutoff = now_millis() - grace.as_millis() as i64;
        Ok(c.execute(
            "DELETE FROM blobs WHERE refcount = 0 AND last_put_at <= $1",
            &[&cutoff],
        )
        .await?)
    }

    async fn append_message(
        &self,
        targets: &[MailboxId],
        message: NewMessage,
    ) -> Result<Vec<Appended>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let hex = message.blob.to_hex();
        // Lock mailboxes in id order so that concurrent multi-recipient
        // deliveries cannot deadlock each other.
        let mut order: Vec<MailboxId> = targets.to_vec();
        order.sort();
        order.dedup();
        let mut allocated = BTreeMap::new();
        for mailbox in order {
            let row = tx
                .query_opt(
                    "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
                     WHERE id = $1 RETURNING account_id, uid_next - 1, highest_modseq",
                    &[&mailbox.0],
                )
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "mailbox",
                    name: mailbox.to_string(),
                })?;
            allocated.insert(
                mailbox,
                (
                    row.get::<_, i64>(0),
                    row.get::<_, i64>(1),
                    row.get::<_, i64>(2),
                ),
            );
        }
        let mut by_account: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut out = Vec::with_capacity(targets.len());
        for mailbox in targets {
            let Some(&(account, uid, modseq)) = allocated.get(mailbox) else {
                continue;
            };
            if out.iter().any(|a: &Appended| a.mailbox == *mailbox) {
                continue;
            }
            let (message_id, thread) = match by_account.get(&account) {
                Some(&ids) => ids,
                None => {
                    let id = insert_message(&tx, account, &hex, &message).await?;
                    let thread: i64 = tx
                        .query_one("SELECT thread_id FROM messages WHERE id = $1", &[&id])
                        .await?
                        .get(0);
                    by_account.insert(account, (id, thread));
                    (id, thread)
                }
            };
            tx.execute(
                "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, keywords, modseq)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &mailbox.0,
                    &uid,
                    &message_id,
                    &(message.flags.0 as i64),
                    &encode_keywords(&message.keywords),
                    &modseq,
                ],
            )
            .await?;
            log_change(
                &tx,
                account,
                *mailbox,
                modseq as u64,
                message_id,
                uid as u32,
                ChangeKind::Created,
            )
            .await?;
            out.push(Appended {
                mailbox: *mailbox,
                message: MessageId(message_id),
                uid: uid as u32,
                modseq: modseq as u64,
                thread: MessageId(thread),
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageRecord>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!("{SELECT_MESSAGES} WHERE mm.mailbox_id = $1 ORDER BY mm.uid"),
                &[&mailbox.0],
            )
            .await?;
        rows.iter().map(|r| message_from(mailbox, r)).collect()
    }

    async fn list_message_state(&self, mailbox: MailboxId) -> Result<Vec<MessageRecord>> {
        let c = self.pool.get().await?;
        let state_only = SELECT_MESSAGES.replace("m.summary", "'' AS summary");
        let rows = c
            .query(
                &format!("{state_only} WHERE mm.mailbox_id = $1 ORDER BY mm.uid"),
                &[&mailbox.0],
            )
            .await?;
        rows.iter().map(|r| message_from(mailbox, r)).collect()
    }

    async fn get_messages(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageRecord>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let uids: Vec<i64> = uids.iter().map(|&u| u as i64).collect();
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "{SELECT_MESSAGES} WHERE mm.mailbox_id = $1 AND mm.uid = ANY($2) ORDER BY mm.uid"
                ),
                &[&mailbox.0, &uids],
            )
            .await?;
        rows.iter().map(|r| message_from(mailbox, r)).collect()
    }

    async fn messages_by_id(&self, ids: &[MessageId]) -> Result<Vec<StoredMessage>> {
        let ids: Vec<i64> = ids.iter().map(|m| m.0).collect();
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT id, account_id, received_at, size, summary FROM messages WHERE id = ANY($1) ORDER BY id",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| StoredMessage {
            id: MessageId(r.get(0)),
            account: PrincipalId(r.get(1)),
            received_at: r.get(2),
            size: r.get::<_, i64>(3) as u64,
            summary: r.get(4),
        })
        .collect())
    }

    async fn get_cached(
        &self,
        messages: &[MessageId],
        kind: &str,
    ) -> Result<Vec<(MessageId, Vec<u8>)>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = messages.iter().map(|m| m.0).collect();
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT message_id, data FROM message_cache WHERE message_id = ANY($1) AND kind = $2",
            &[&ids, &kind],
        )
        .await?
        .iter()
        .map(|r| (MessageId(r.get(0)), r.get(1)))
        .collect())
    }

    async fn put_cached(&self, kind: &str, entries: Vec<(MessageId, Vec<u8>)>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let c = self.pool.get().await?;
        for (m, data) in &entries {
            c.execute(
                "INSERT INTO message_cache (message_id, kind, data)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM messages WHERE id = $1)
                 ON CONFLICT (message_id, kind) DO UPDATE SET data = EXCLUDED.data",
                &[&m.0, &kind, data],
            )
            .await?;
        }
        Ok(())
    }

    async fn search_text(
        &self,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<TextMatches> {
        let pattern = like_pattern(needle);
        let condition = match field {
            TextField::Headers => "t.headers LIKE $2",
            TextField::Body => "t.body LIKE $2",
            TextField::All => "(t.headers LIKE $2 OR t.body LIKE $2)",
        };
        let c = self.pool.get().await?;
        let matched = c
            .query(
                &format!(
                    "SELECT mm.uid, mm.message_id FROM message_text t
                     JOIN mailbox_messages mm ON mm.message_id = t.message_id
                     WHERE mm.mailbox_id = $1 AND {condition}
                     ORDER BY mm.uid"
                ),
                &[&mailbox.0, &pattern],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u32, MessageId(r.get(1))))
            .collect();
        let unindexed = c
            .query(
                "SELECT mm.uid FROM messages m
                 JOIN mailbox_messages mm ON mm.message_id = m.id
                 WHERE m.text_state <> 1 AND mm.mailbox_id = $1
                 ORDER BY mm.uid",
                &[&mailbox.0],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0) as u32)
            .collect();
        Ok(TextMatches { matched, unindexed })
    }

    async fn unindexed_messages(&self, limit: usize) -> Result<Vec<(MessageId, BlobHash)>> {
        let c = self.pool.get().await?;
        c.query(
            // The partial index's own condition, stated: the planner does not
            // infer it from "= 0" (SQLite scanned every message).
            "SELECT id, blob_hash FROM messages WHERE text_state <> 1 AND text_state = 0 ORDER BY id LIMIT $1",
            &[&(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| Ok((MessageId(r.get(0)), BlobHash::from_hex(r.get(1))?)))
        .collect()
    }

    async fn put_text(&self, entries: Vec<(MessageId, MessageText)>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        for (id, text) in &entries {
            index_text(&tx, id.0, text).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove: bool,
    ) -> Result<Vec<(u32, u32)>> {
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Lock in id order so that two opposite moves cannot deadlock.
        let (first, second) = if from.0 <= to.0 {
            (from, to)
        } else {
            (to, from)
        };
        mailbox_account(&tx, first, true).await?;
        mailbox_account(&tx, second, true).await?;
        let (account, _) = mailbox_account(&tx, from, false).await?;
        if mailbox_account(&tx, to, false).await?.0 != account {
            return Err(StoreError::Conflict(
                "messages are copied only between mailboxes of one account".into(),
            ));
        }
        let rows = rows_for_uids(&tx, from, &uids).await?;
        let mut out = Vec::new();
        if !rows.is_empty() {
            let n = rows.len() as i64;
            let old_uids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let messages: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
            let flags: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
            let keywords: Vec<String> = rows.iter().map(|r| r.get(3)).collect();
            // UIDs and MODSEQs for all of them in one step (RFC 9051 §2.3.1.1:
            // ascending, in the order of the source UIDs).
            let next = tx
                .query_one(
                    "UPDATE mailboxes SET uid_next = uid_next + $2, highest_modseq = highest_modseq + $2
                     WHERE id = $1 RETURNING uid_next - $2, highest_modseq - $2 + 1",
                    &[&to.0, &n],
                )
                .await?;
            let (first_uid, first_modseq): (i64, i64) = (next.get(0), next.get(1));
            let new_uids: Vec<i64> = (first_uid..first_uid + n).collect();
            let modseqs: Vec<i64> = (first_modseq..first_modseq + n).collect();
            tx.execute(
                "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, keywords, modseq)
                 SELECT $1, u.uid, u.message_id, u.flags, u.keywords, u.modseq
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[])
                     AS u(uid, message_id, flags, keywords, modseq)",
                &[&to.0, &new_uids, &messages, &flags, &keywords, &modseqs],
            )
            .await?;
            let created: Vec<(i64, i64, i64)> = (0..rows.len())
                .map(|i| (modseqs[i], messages[i], new_uids[i]))
                .collect();
            log_changes(&tx, account, to, ChangeKind::Created, &created).await?;
            if remove {
                tx.execute(
                    "DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2)",
                    &[&from.0, &old_uids],
                )
                .await?;
                let first = allocate_modseqs(&tx, from, rows.len()).await? as i64;
                let expunged: Vec<(i64, i64, i64)> = (0..rows.len())
                    .map(|i| (first + i as i64, messages[i], old_uids[i]))
                    .collect();
                log_changes(&tx, account, from, ChangeKind::Expunged, &expunged).await?;
            }
            out = old_uids
                .iter()
                .zip(&new_uids)
                .map(|(&old, &new)| (old as u32, new as u32))
                .collect();
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        change: FlagChange,
    ) -> Result<Vec<(u32, u64, MessageId)>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let (account, _) = mailbox_account(&tx, mailbox, true).await?;
        // Set-based (issue 12 point 10): one read, one MODSEQ block, one
        // update and one change-log insert for any number of messages.
        let rows = rows_for_uids(&tx, mailbox, uids).await?;
        let mut changed = Vec::new();
        for row in &rows {
            let (uid, message, flags, keywords): (i64, i64, i64, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let old_keywords = decode_keywords(&keywords);
            let (new_flags, new_keywords) = change.apply(SystemFlags(flags as u32), &old_keywords);
            if new_flags.0 as i64 != flags || new_keywords != old_keywords {
                changed.push((
                    uid,
                    message,
                    new_flags.0 as i64,
                    encode_keywords(&new_keywords),
                ));
            }
        }
        if changed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let first = allocate_modseqs(&tx, mailbox, changed.len()).await? as i64;
        let modseqs: Vec<i64> = (first..first + changed.len() as i64).collect();
        let changed_uids: Vec<i64> = changed.iter().map(|c| c.0).collect();
        let new_flags: Vec<i64> = changed.iter().map(|c| c.2).collect();
        let new_keywords: Vec<&str> = changed.iter().map(|c| c.3.as_str()).collect();
        tx.execute(
            "UPDATE mailbox_messages mm SET flags = u.flags, keywords = u.keywords, modseq = u.modseq
             FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[])
                 AS u(uid, flags, keywords, modseq)
             WHERE mm.mailbox_id = $1 AND mm.uid = u.uid",
            &[&mailbox.0, &changed_uids, &new_flags, &new_keywords, &modseqs],
        )
        .await?;
        let log: Vec<(i64, i64, i64)> = changed
            .iter()
            .zip(&modseqs)
            .map(|(c, &m)| (m, c.1, c.0))
            .collect();
        log_changes(&tx, account, mailbox, ChangeKind::Flags, &log).await?;
        tx.commit().await?;
        Ok(log
            .into_iter()
            .map(|(modseq, message, uid)| (uid as u32, modseq as u64, MessageId(message)))
            .collect())
    }

    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<u64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let (account, highest) = mailbox_account(&tx, mailbox, true).await?;
        let uid_list: Vec<i64> = uids.iter().map(|&u| u as i64).collect();
        let mut gone: Vec<(i64, i64)> = tx
            .query(
                "DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2)
                 RETURNING uid, message_id",
                &[&mailbox.0, &uid_list],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if gone.is_empty() {
            tx.commit().await?;
            return Ok(highest as u64);
        }
        gone.sort_unstable();
        let first = allocate_modseqs(&tx, mailbox, gone.len()).await? as i64;
        let log: Vec<(i64, i64, i64)> = gone
            .iter()
            .zip(first..)
            .map(|(&(uid, message), modseq)| (modseq, message, uid))
            .collect();
        log_changes(&tx, account, mailbox, ChangeKind::Expunged, &log).await?;
        let released: Vec<i64> = gone.iter().map(|g| g.1).collect();
        release_orphan_messages(&tx, &released).await?;
        tx.commit().await?;
        Ok((first + gone.len() as i64 - 1) as u64)
    }

    async fn changes_since(&self, mailbox: MailboxId, since_modseq: u64) -> Result<Vec<Change>> {
        let c = self.pool.get().await?;
        c.query(
            "SELECT modseq, object_id, uid, kind FROM changes
             WHERE collection_kind = 'mailbox' AND collection_id = $1 AND modseq > $2 ORDER BY modseq",
            &[&mailbox.0, &(since_modseq as i64)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Change {
                modseq: r.get::<_, i64>(0) as u64,
                message: MessageId(r.get(1)),
                uid: r.get::<_, i64>(2) as u32,
                kind: ChangeKind::parse(r.get(3))?,
            })
        })
        .collect()
    }

    async fn enqueue(&self, new: NewQueued) -> Result<QueueId> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let hex = new.blob.to_hex();
        if tx
            .execute(
                "UPDATE blobs SET refcount = refcount + 1 WHERE hash = $1",
                &[&hex],
            )
            .await?
            == 0
        {
            return Err(StoreError::BlobDamaged {
                hash: new.blob,
                reason: "not stored (put_blob first)".into(),
            });
        }
        let now = now_millis();
        let id: i64 = tx
            .query_one(
                "INSERT INTO queue (blob_hash, size, sender, owner_id, created_at, dsn_ret_full, dsn_envid)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &hex,
                    &(new.size as i64),
                    &new.sender,
                    &new.owner.map(|o| o.0),
                    &now,
                    &new.dsn.ret_full,
                    &new.dsn.envid,
                ],
            )
            .await?
            .get(0);
        for rcpt in &new.recipients {
            tx.execute(
                "INSERT INTO queue_recipients (queue_id, address, domain, next_attempt_at, notify, orcpt)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id,
                    &rcpt.address,
                    &crate::sqlite::domain_of(&rcpt.address),
                    &now,
                    &i64::from(rcpt.notify),
                    &rcpt.orcpt,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(QueueId(id))
    }

    async fn queue_list(&self) -> Result<Vec<QueueEntry>> {
        let c = self.pool.get().await?;
        load_queue(&c, "TRUE", &[]).await
    }

    async fn queue_get(&self, id: QueueId) -> Result<Option<QueueEntry>> {
        let c = self.pool.get().await?;
        Ok(load_queue(&c, "q.id = $1", &[&id.0]).await?.pop())
    }

    async fn queue_claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // SKIP LOCKED: nodes sharing the database never claim the same recipient.
        let ids: Vec<i64> = tx
            .query(
                "UPDATE queue_recipients SET status = 'attempting', lease_until = $2, attempts = attempts + 1
                 WHERE id IN (
                     SELECT id FROM queue_recipients
                     WHERE queue_id IN (
                         SELECT DISTINCT queue_id FROM queue_recipients
                         WHERE (status = 'pending' AND next_attempt_at <= $1)
                            OR (status = 'attempting' AND lease_until <= $1)
                         ORDER BY queue_id LIMIT $3)
                     AND ((status = 'pending' AND next_attempt_at <= $1)
                          OR (status = 'attempting' AND lease_until <= $1))
                     FOR UPDATE SKIP LOCKED)
                 RETURNING queue_id",
                &[&now, &lease_until, &(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut ids = ids;
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            if let Some(mut e) = load_queue(&tx, "q.id = $1", &[&id]).await?.pop() {
                e.recipients
                    .retain(|r| r.status == DeliveryStatus::Attempting);
                out.push(e);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn queue_record(&self, recipient: i64, outcome: QueueOutcome) -> Result<()> {
        let c = self.pool.get().await?;
        match outcome {
            QueueOutcome::Delivered => {
                c.execute(
                    "UPDATE queue_recipients SET status = 'delivered', last_error = NULL WHERE id = $1",
                    &[&recipient],
                )
                .await?
            }
            QueueOutcome::Retry { at, error } => {
                c.execute(
                    "UPDATE queue_recipients SET status = 'pending', next_attempt_at = $2, last_error = $3 WHERE id = $1",
                    &[&recipient, &at, &error],
                )
                .await?
            }
            QueueOutcome::Failed { error } => {
                c.execute(
                    "UPDATE queue_recipients SET status = 'failed', last_error = $2 WHERE id = $1",
                    &[&recipient, &error],
                )
                .await?
            }
            QueueOutcome::DelayNotified => {
                c.execute(
                    "UPDATE queue_recipients SET delay_notified = 1 WHERE id = $1",
                    &[&recipient],
                )
                .await?
            }
        };
        Ok(())
    }

    async fn queue_collect_finished(&self) -> Result<Vec<QueueId>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let done = tx
            .query(
                "DELETE FROM queue q WHERE NOT EXISTS (
                     SELECT 1 FROM queue_recipients r
                     WHERE r.queue_id = q.id AND r.status IN ('pending', 'attempting'))
                 RETURNING q.id, q.blob_hash",
                &[],
            )
            .await?;
        for row in &done {
            let hash: String = row.get(1);
            tx.execute(
                "UPDATE blobs SET refcount = refcount - 1 WHERE hash = $1",
                &[&hash],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done.iter().map(|r| QueueId(r.get(0))).collect())
    }

    async fn queue_retry_now(&self, id: QueueId) -> Result<()> {
        let c = self.pool.get().await?;
        if c.query_opt("SELECT 1 FROM queue WHERE id = $1", &[&id.0])
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound {
                kind: "queued message",
                name: id.to_string(),
            });
        }
        c.execute(
            "UPDATE queue_recipients SET next_attempt_at = $2 WHERE queue_id = $1 AND status = 'pending'",
            &[&id.0, &now_millis()],
        )
        .await?;
        Ok(())
    }

    async fn queue_remove(&self, id: QueueId) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let row = tx
            .query_opt(
                "DELETE FROM queue WHERE id = $1 RETURNING blob_hash",
                &[&id.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "queued message",
                name: id.to_string(),
            })?;
        let hash: String = row.get(0);
        tx.execute(
            "UPDATE blobs SET refcount = refcount - 1 WHERE hash = $1",
            &[&hash],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_dkim_key(&self, domain: DomainId, key: DkimKey) -> Result<()> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (domain_id, selector) DO NOTHING",
                &[&domain.0, &key.selector, &key.algorithm, &key.private_key, &key.public_key, &now_millis()],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "DKIM selector {}",
                key.selector
            )));
        }
        Ok(())
    }

    async fn dkim_keys(&self, domain: DomainId) -> Result<Vec<DkimKey>> {
        let c = self.pool.get().await?;
        Ok(c
            .query(
                "SELECT selector, algorithm, private_key, public_key FROM dkim_keys WHERE domain_id = $1 ORDER BY id",
                &[&domain.0],
            )
            .await?
            .iter()
            .map(|r| DkimKey {
                selector: r.get(0),
                algorithm: r.get(1),
                private_key: r.get(2),
                public_key: r.get(3),
            })
            .collect())
    }
}

async fn load_queue(
    c: &impl GenericClient,
    filter: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<QueueEntry>> {
    let rows = c
        .query(
            &format!(
                "SELECT q.id, q.blob_hash, q.size, q.sender, q.owner_id, q.created_at,
                        r.id, r.address, r.domain, r.status, r.attempts, r.next_attempt_at, r.last_error, r.delay_notified,
                        q.dsn_ret_full, q.dsn_envid, r.notify, r.orcpt
                 FROM queue q JOIN queue_recipients r ON r.queue_id = q.id
                 WHERE {filter} ORDER BY q.id, r.id"
            ),
            args,
        )
        .await?;
    let mut out: Vec<QueueEntry> = Vec::new();
    for r in &rows {
        let id: i64 = r.get(0);
        if out.last().is_none_or(|e| e.id.0 != id) {
            out.push(QueueEntry {
                id: QueueId(id),
                blob: BlobHash::from_hex(r.get(1))?,
                size: r.get::<_, i64>(2) as u64,
                sender: r.get(3),
                owner: r.get::<_, Option<i64>>(4).map(PrincipalId),
                created_at: r.get(5),
                dsn: DsnRequest {
                    ret_full: r.get(14),
                    envid: r.get(15),
                },
                recipients: Vec::new(),
            });
        }
        let entry = out.last_mut().expect("pushed above");
        entry.recipients.push(QueuedRecipient {
            id: r.get(6),
            address: r.get(7),
            domain: r.get(8),
            status: DeliveryStatus::parse(r.get(9))?,
            attempts: r.get::<_, i64>(10) as u32,
            next_attempt_at: r.get(11),
            last_error: r.get(12),
            delay_notified: r.get::<_, i64>(13) != 0,
            notify: r.get::<_, i64>(16) as u8,
            orcpt: r.get(17),
        });
    }
    Ok(out)
}
