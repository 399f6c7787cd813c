//! The one SQL layer both backends run. Every store operation is written
//! once, in `ops/`, against [`Conn`]; a backend supplies only what truly
//! differs: how a statement reaches the database, how reads and writes are
//! scheduled (SQLite's group commit, PostgreSQL's pool), where blob content
//! lives, the full-text index and its migrations.

mod value;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{BlobHash, MailboxId, MessageText, Result, StoreError, TextField, TextMatches};

pub(crate) use value::{Row, Value, params};

/// Which SQL the connection speaks, for the few statements written twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A boxed future that may cross threads.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What [`Conn::for_each`] calls with each row.
pub(crate) type EachRow<'a> = dyn for<'r> FnMut(&'r mut Row) -> Result<()> + Send + 'a;

/// A database connection inside one operation: a transaction for writes.
#[async_trait]
pub(crate) trait Conn: Send {
    /// The SQL dialect of this connection.
    fn dialect(&self) -> Dialect;
    /// Runs a statement that returns rows. Parameters are `$1`, `$2`, ...
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs a statement that returns rows and hands each to `each` in turn
    /// (the same `Row`, refilled: large reads keep no copy of every row).
    async fn for_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut EachRow<'_>,
    ) -> Result<()> {
        for mut row in self.query(sql, params).await? {
            each(&mut row)?;
        }
        Ok(())
    }
    /// Runs a statement; returns how many rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Takes one reference on a stored blob, creating its row where the
    /// backend keeps content elsewhere; fails with
    /// [`StoreError::BlobDamaged`] when its content is not stored.
    async fn name_blob(&mut self, hash: BlobHash, size: u64) -> Result<()>;
    /// Adds a message's text to the full-text index unless it is there.
    async fn index_text(&mut self, message: i64, text: &MessageText) -> Result<()>;
}

impl<'a> dyn Conn + 'a {
    /// The first row, if any.
    pub(crate) async fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// The one row a statement returns.
    pub(crate) async fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("no row from {sql}")))
    }

    /// A PostgreSQL row lock (`FOR UPDATE`) on the row of `table` with this
    /// id; SQLite needs none, since its write lock covers the database.
    pub(crate) async fn lock_row(&mut self, table: &str, id: i64) -> Result<()> {
        if self.dialect() == Dialect::Postgres {
            self.execute(
                &format!("SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE"),
                params![id],
            )
            .await?;
        }
        Ok(())
    }
}

/// How many rows a read touches, so that a backend can run small ones
/// where it is cheapest (SQLite: on the calling thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// A few rows, found through an index.
    Few,
    /// Possibly many rows.
    Many,
}

/// Whether a write needs a transaction around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Several statements that commit together.
    Transaction,
    /// One statement, atomic by itself (PostgreSQL saves BEGIN and COMMIT).
    OneStatement,
}

/// A read: may run twice (SQLite retries a read that met a lock on another thread).
pub(crate) type ReadOp<T> =
    Box<dyn for<'c> Fn(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send + Sync>;
/// A write: runs once, in a transaction that commits before the caller hears back.
pub(crate) type WriteOp<T> =
    Box<dyn for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send>;

/// What each backend provides beneath the shared operations.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// Short name of the backend, for logs.
    const NAME: &'static str;
    /// Runs a read.
    async fn read<T: Send + 'static>(&self, size: Size, op: ReadOp<T>) -> Result<T>;
    /// Runs a write and returns once it is durable.
    async fn write<T: Send + 'static>(&self, shape: Shape, op: WriteOp<T>) -> Result<T>;

    /// Stores blob content durably; see [`crate::BlobStore::put_blob`].
    async fn put_blob(&self, data: Arc<Vec<u8>>) -> Result<BlobHash>;
    /// Reads blob contents, each verified, in order.
    async fn read_blobs(&self, hashes: Vec<BlobHash>, small: bool) -> Result<Vec<Vec<u8>>>;
    /// Whether the blob's content is still held.
    async fn blob_stored(&self, hash: BlobHash) -> Result<bool>;
    /// Removes unnamed blob content older than `grace`.
    async fn sweep_blobs(&self, grace: Duration) -> Result<u64>;

    /// Searches the full-text index of a mailbox.
    async fn search_text(
        &self,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<TextMatches>;

    /// Other processes' announcements, where there are any.
    fn announcements(&self) -> Option<tokio::sync::broadcast::Receiver<crate::Announcement>> {
        None
    }
}

/// A store: the shared operations over one backend.
pub(crate) struct SqlStore<B> {
    pub(crate) backend: B,
}

impl<B: Backend> SqlStore<B> {
    /// Runs a read made of shared operations.
    pub(crate) async fn read<T, F>(&self, size: Size, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send + Sync + 'static,
    {
        self.backend.read(size, Box::new(op)).await
    }

    /// Runs a write made of shared operations, in one transaction.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.backend.write(Shape::Transaction, Box::new(op)).await
    }

    /// Runs a write of one statement.
    pub(crate) async fn write_one<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.backend.write(Shape::OneStatement, Box::new(op)).await
    }
}
