//! The PostgreSQL backend, for several Rampart nodes sharing one database.
//! Blob content lives in the database too, so that every node sees it. The
//! operations are the shared ones (`ops/`); this module runs them on pooled
//! connections, one transaction per write.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Runtime};
use tokio_postgres::NoTls;

use crate::sql::{Backend, ReadOp, Shape, Size, WriteOp};
use crate::*;

mod announcements;
mod conn;
mod text;

use conn::PgConn;

/// The PostgreSQL backend.
pub(crate) struct Postgres {
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

impl Drop for Postgres {
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
    include_str!("postgres_schema_14.sql"),
];

impl Postgres {
    /// Connects to `url` and runs schema migrations.
    pub(crate) async fn open(url: &str, pool_size: usize) -> Result<Self> {
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
        let store = Postgres {
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

#[async_trait]
impl Backend for Postgres {
    const NAME: &'static str = "postgres";

    async fn read<T: Send + 'static>(&self, _size: Size, op: ReadOp<T>) -> Result<T> {
        let client = self.pool.get().await?;
        op(&mut PgConn::plain(&client)).await
    }

    async fn write<T: Send + 'static>(&self, shape: Shape, op: WriteOp<T>) -> Result<T> {
        let mut client = self.pool.get().await?;
        match shape {
            Shape::OneStatement => op(&mut PgConn::plain(&client)).await,
            Shape::Transaction => {
                let tx = client.transaction().await?;
                let mut conn = PgConn::transaction(tx);
                let value = op(&mut conn).await?;
                conn.commit().await?;
                Ok(value)
            }
        }
    }

    async fn put_blob(&self, data: Arc<Vec<u8>>) -> Result<BlobHash> {
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

    async fn read_blobs(&self, hashes: Vec<BlobHash>, _small: bool) -> Result<Vec<Vec<u8>>> {
        let c = self.pool.get().await?;
        let stmt = c
            .prepare_cached("SELECT data FROM blobs WHERE hash = $1")
            .await?;
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let data: Vec<u8> = c
                .query_opt(&stmt, &[&hash.to_hex()])
                .await?
                .ok_or_else(|| StoreError::BlobDamaged {
                    hash,
                    reason: "no such blob in the database".into(),
                })?
                .get(0);
            hash.verify(&data)?;
            out.push(data);
        }
        Ok(out)
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

    async fn search_text(
        &self,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<TextMatches> {
        let c = self.pool.get().await?;
        text::search(&c, mailbox, field, needle).await
    }

    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<Announcement>> {
        Some(self.subscribe())
    }
}
