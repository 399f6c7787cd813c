//! The embedded backend: SQLite in WAL mode with synchronous commits, and a
//! blob folder beside it. The operations themselves are the shared ones
//! (`ops/`); this module runs them: small reads on the calling thread,
//! others on the blocking pool, and writes group-committed by one writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::Semaphore;

use crate::blob::FsBlobs;
use crate::sql::{Backend, BoxFuture, ReadOp, Shape, Size, WriteOp};
use crate::*;

mod blobs;
mod conn;
mod text;

use conn::SqliteConn;

const DB_FILE: &str = "rampart.db";
const BLOB_DIR: &str = "blobs";

/// The SQLite backend.
pub(crate) struct Sqlite {
    db_path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    /// One writer at a time within the process: SQLite allows one anyway,
    /// and waiting here (in FIFO order) beats SQLite's busy handler, which
    /// sleeps in growing steps and makes latency jump under load. Writers in
    /// other processes (the CLI) still meet the busy timeout.
    writer: tokio::sync::Mutex<()>,
    /// Writes waiting for the writer; whoever gets the writer runs them all
    /// in one transaction (group commit: one fsync for many writes).
    pending: Arc<Mutex<Vec<WriteJob>>>,
    blobs: FsBlobs,
}

/// Runs one write inside the group's transaction (in its own savepoint) and
/// says whether it succeeded; the returned finisher, told whether the group
/// committed, hands the write's result to its caller.
type WriteJob = Box<dyn FnOnce(&mut Connection, &FsBlobs) -> (bool, Finisher) + Send>;
type Finisher = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// Most writes committed together.
const MAX_GROUP: usize = 256;

/// Prepared statements each connection keeps.
const PREPARED_STATEMENTS: usize = 256;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                StoreError::Corrupt(format!("{e}"))
            }
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Busy(format!("{e}"))
            }
            other => StoreError::Backend(other.to_string()),
        }
    }
}

fn corrupt_hint(db: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Corrupt(msg) => StoreError::Corrupt(format!(
            "{} is not a usable Rampart database ({msg}): restore it from a backup, or point --data at another directory",
            db.display()
        )),
        other => other,
    }
}

/// Polls a shared operation once: over a SQLite connection every statement
/// completes when called, so the future is ready at once.
fn run_now<T>(mut op: BoxFuture<'_, Result<T>>) -> Result<T> {
    match op.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Backend(
            "a SQLite operation waited on something other than SQLite".into(),
        )),
    }
}

impl Sqlite {
    /// Opens (or, with [`OpenMode::CreateIfMissing`], creates) the store in `data_dir`.
    pub(crate) async fn open(data_dir: &Path, pool_size: usize, mode: OpenMode) -> Result<Self> {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&data_dir, pool_size, mode))
            .await
            .map_err(|e| StoreError::Backend(format!("open task failed: {e}")))?
    }
    fn open_blocking(data_dir: &Path, pool_size: usize, mode: OpenMode) -> Result<Self> {
        let db_path = data_dir.join(DB_FILE);
        let blob_path = data_dir.join(BLOB_DIR);
        if !db_path.exists() {
            if mode == OpenMode::MustExist {
                return Err(StoreError::Corrupt(format!(
                    "there is no Rampart store in {}: start `rampart serve` once to create it, or pass --data with the right directory",
                    data_dir.display()
                )));
            }
            if blob_path.exists() {
                return Err(StoreError::Corrupt(format!(
                    "{} holds a blob folder but no {DB_FILE}: the database is missing; restore it from a backup (nothing was changed)",
                    data_dir.display()
                )));
            }
            std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
                path: data_dir.to_owned(),
                source,
            })?;
        } else if !blob_path.is_dir() {
            return Err(StoreError::Corrupt(format!(
                "{} has {DB_FILE} but no {BLOB_DIR}/ folder: the message files are missing; restore them from a backup (nothing was changed)",
                data_dir.display()
            )));
        }
        let mut conn = open_connection(&db_path).map_err(|e| corrupt_hint(&db_path, e))?;
        migrate(&mut conn).map_err(|e| corrupt_hint(&db_path, e))?;
        let blobs = FsBlobs::open(blob_path)?;
        let pool_size = pool_size.max(1);
        Ok(Sqlite {
            db_path,
            idle: Arc::new(Mutex::new(vec![conn])),
            permits: Arc::new(Semaphore::new(pool_size)),
            writer: tokio::sync::Mutex::new(()),
            pending: Arc::new(Mutex::new(Vec::new())),
            blobs,
        })
    }

    /// Runs a read of a few rows on the calling thread. A point query takes
    /// microseconds, less than handing it to the blocking pool and back
    /// (measured: those hand-offs were the largest cost of IMAP's mixed
    /// workload); only reads bounded to a few rows come here. Nothing here
    /// may stall the runtime: without an idle connection (opening one reads
    /// the schema) or when the database is locked past `INLINE_BUSY_WAIT`
    /// (another process checkpointing, say), the read goes to the blocking
    /// pool with the full busy timeout instead.
    async fn with_conn_small<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("store is closed".into()))?;
        let pooled = self.idle.lock().expect("pool lock").pop();
        let Some(mut conn) = pooled else {
            drop(permit);
            return self.with_conn(f).await;
        };
        let _ = conn.busy_timeout(INLINE_BUSY_WAIT);
        let result = f(&mut conn);
        let _ = conn.busy_timeout(BUSY_WAIT);
        self.idle.lock().expect("pool lock").push(conn);
        drop(permit);
        match result {
            Err(StoreError::Busy(_)) => self.with_conn(f).await,
            other => other,
        }
    }

    /// Runs `f` on a pooled connection on the blocking thread pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("store is closed".into()))?;
        let pooled = self.idle.lock().expect("pool lock").pop();
        let idle = self.idle.clone();
        let db_path = self.db_path.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = match pooled {
                Some(c) => c,
                None => open_connection(&db_path)?,
            };
            let result = f(&mut conn);
            idle.lock().expect("pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs `f` in an immediate (write-locked) transaction and returns once
    /// that transaction is committed. Writes that wait meanwhile are
    /// committed together by whichever of them gets the writer next, each in
    /// its own savepoint, so one failing write rolls back alone.
    async fn write_job<T: Send + 'static>(&self, op: WriteOp<T>) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |conn: &mut Connection, blobs: &FsBlobs| {
            let outcome = run_now(op(&mut SqliteConn::new(conn, blobs)));
            let ok = outcome.is_ok();
            let finish: Finisher = Box::new(move |committed| {
                let _ = done.send(match committed {
                    Ok(()) => outcome,
                    Err(e) if ok => Err(StoreError::Backend(e)),
                    Err(_) => outcome,
                });
            });
            (ok, finish)
        });
        self.pending.lock().expect("write queue lock").push(job);
        let mut result = result;
        let _turn = self.writer.lock().await;
        // An earlier group may have carried this write already.
        if let Ok(done) = result.try_recv() {
            return done;
        }
        let batch: Vec<WriteJob> = {
            let mut pending = self.pending.lock().expect("write queue lock");
            let n = pending.len().min(MAX_GROUP);
            pending.drain(..n).collect()
        };
        let blobs = self.blobs.clone();
        let group = self
            .with_conn(move |conn| {
                let mut finishers = Vec::with_capacity(batch.len());
                let committed = run_group(conn, &blobs, batch, &mut finishers);
                if committed.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                let text = committed.as_ref().map_err(ToString::to_string).copied();
                for finish in finishers {
                    finish(text.clone());
                }
                Ok(committed)
            })
            .await?;
        // This write was in the group (or in one before it). A write the
        // group never ran (the database stayed locked past the busy
        // timeout before it began) hears the group's error.
        match result.await {
            Ok(done) => done,
            Err(_) => Err(match group {
                Err(e) => StoreError::from(e),
                Ok(()) => StoreError::Backend("write was dropped".into()),
            }),
        }
    }
}

/// Runs a group of writes in one immediate transaction, each in its own
/// savepoint, and commits it.
fn run_group(
    conn: &mut Connection,
    blobs: &FsBlobs,
    batch: Vec<WriteJob>,
    finishers: &mut Vec<Finisher>,
) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch {
        conn.execute_batch("SAVEPOINT write")?;
        let (ok, finish) = job(conn, blobs);
        finishers.push(finish);
        if ok {
            conn.execute_batch("RELEASE write")?;
        } else {
            conn.execute_batch("ROLLBACK TO write; RELEASE write")?;
        }
    }
    conn.execute_batch("COMMIT")
}

#[async_trait]
impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";

    async fn read<T: Send + 'static>(&self, size: Size, op: ReadOp<T>) -> Result<T> {
        let blobs = self.blobs.clone();
        let read = move |c: &mut Connection| {
            // One read transaction for all the statements of the operation:
            // each on its own would take and drop SQLite's file locks again,
            // and together they see one snapshot.
            c.prepare_cached("BEGIN")?.execute([])?;
            let result = run_now(op(&mut SqliteConn::new(c, &blobs)));
            if let Err(e) = c.prepare_cached("COMMIT").and_then(|mut s| s.execute([])) {
                let _ = c.execute_batch("ROLLBACK");
                return result.and(Err(e.into()));
            }
            result
        };
        match size {
            Size::Few => self.with_conn_small(read).await,
            Size::Many => self.with_conn(read).await,
        }
    }

    async fn write<T: Send + 'static>(&self, _shape: Shape, op: WriteOp<T>) -> Result<T> {
        // Every write goes through the group commit: one statement or many,
        // SQLite commits them the same way.
        self.write_job(op).await
    }

    async fn put_blob(&self, data: Arc<Vec<u8>>) -> Result<BlobHash> {
        blobs::put(&self.blobs, data).await
    }

    async fn read_blobs(&self, hashes: Vec<BlobHash>, small: bool) -> Result<Vec<Vec<u8>>> {
        blobs::read(&self.blobs, hashes, small).await
    }

    async fn blob_stored(&self, hash: BlobHash) -> Result<bool> {
        Ok(self.blobs.exists(&hash))
    }

    async fn sweep_blobs(&self, grace: Duration) -> Result<u64> {
        blobs::sweep(self, grace).await
    }

    async fn search_text(
        &self,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<TextMatches> {
        let query = text::fts_query(field, needle);
        self.with_conn(move |c| text::search(c, mailbox, &query))
            .await
    }
}

/// How long a statement waits for a lock held by another writer (the CLI,
/// another process) on the blocking pool.
const BUSY_WAIT: Duration = Duration::from_secs(30);
/// How long a read on a runtime thread waits for a lock before it moves to
/// the blocking pool: a runtime thread that waits stalls every session on it.
const INLINE_BUSY_WAIT: Duration = Duration::from_millis(2);

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_WAIT)?;
    // WAL lets readers run beside the one writer (and beside the CLI in
    // another process); synchronous=FULL makes every commit durable before it
    // returns, which rule R8 needs for anything we acknowledge.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "could not switch {} to WAL mode (got {mode})",
            path.display()
        )));
    }
    // A larger page cache per connection: mailbox listings and counts read
    // the same pages again and again (measured: STATUS on 10,000 messages
    // spent most of its time copying pages from the kernel).
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384;",
    )?;
    // Every statement of the shared operations is a cached prepared one;
    // rusqlite keeps 16 by default, fewer than one IMAP session's hot path
    // uses, and re-preparing costs more than the statement.
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )?;
    let version: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .map(|v| v.parse().unwrap_or(-1))
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
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![to.to_string()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Schema migrations; entry N takes the store from version N to N+1.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("sqlite_schema.sql"),
    include_str!("sqlite_schema_2.sql"),
    include_str!("sqlite_schema_3.sql"),
    include_str!("sqlite_schema_4.sql"),
    include_str!("sqlite_schema_5.sql"),
    include_str!("sqlite_schema_6.sql"),
    include_str!("sqlite_schema_7.sql"),
    include_str!("sqlite_schema_8.sql"),
    include_str!("sqlite_schema_9.sql"),
    include_str!("sqlite_schema_10.sql"),
    include_str!("sqlite_schema_11.sql"),
    include_str!("sqlite_schema_12.sql"),
    include_str!("sqlite_schema_13.sql"),
    include_str!("sqlite_schema_14.sql"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written at schema 11 keeps its change log through migration
    /// 12 (the one log for every kind of collection).
    #[test]
    fn the_change_log_survives_migration_12() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .unwrap();
        for sql in &MIGRATIONS[..11] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('schema_version', '11');
             INSERT INTO changes (account_id, mailbox_id, modseq, message_id, uid, kind, at)
                 VALUES (1, 7, 42, 9, 3, 'flags', 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (String, i64, i64, i64, i64) = conn
            .query_row(
                "SELECT collection_kind, collection_id, modseq, object_id, uid FROM changes",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(row, ("mailbox".into(), 7, 42, 9, 3));
    }
}
