//! A SQLite connection as the shared operations see it.

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params};

use crate::blob::FsBlobs;
use crate::sql::{Conn, Dialect, EachRow, Row, Value};
use crate::*;

/// A connection (inside the operation's transaction) and the blob folder.
pub(super) struct SqliteConn<'a> {
    conn: &'a mut Connection,
    blobs: &'a FsBlobs,
}

impl<'a> SqliteConn<'a> {
    pub(super) fn new(conn: &'a mut Connection, blobs: &'a FsBlobs) -> Self {
        SqliteConn { conn, blobs }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            // Lists reach SQLite as JSON arrays, for `json_each`.
            Value::Ints(list) => ToSqlOutput::Owned(rusqlite::types::Value::Text(format!(
                "[{}]",
                list.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ))),
            Value::Texts(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "lists of text are bound on PostgreSQL only".into(),
                ));
            }
        })
    }
}

fn value_from(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        // No column holds a float; a count over none may come back as one.
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// Puts a column into the slot the previous row left, reusing its text or
/// byte buffer: a large read then allocates only what its caller keeps.
fn refill(slot: &mut Value, v: ValueRef<'_>) {
    match (slot, v) {
        (Value::Text(s), ValueRef::Text(t)) => {
            s.clear();
            s.push_str(&String::from_utf8_lossy(t));
        }
        (Value::Bytes(b), ValueRef::Blob(x)) => {
            b.clear();
            b.extend_from_slice(x);
        }
        (slot, v) => *slot = value_from(v),
    }
}

impl SqliteConn<'_> {
    /// Prepares (from the connection's cache) and binds `$n` parameters by
    /// their number, wherever they appear in the statement.
    fn bound<'s>(
        conn: &'s Connection,
        sql: &str,
        params: &[Value],
    ) -> Result<rusqlite::CachedStatement<'s>> {
        let mut stmt = conn.prepare_cached(sql)?;
        for index in 1..=stmt.parameter_count() {
            let number = stmt
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| (1..=params.len()).contains(&n))
                .ok_or_else(|| {
                    StoreError::Backend(format!("parameter {index} of {sql:?} has no value"))
                })?;
            stmt.raw_bind_parameter(index, &params[number - 1])?;
        }
        Ok(stmt)
    }
}

#[async_trait]
impl Conn for SqliteConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = Self::bound(self.conn, sql, params)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(columns);
            for i in 0..columns {
                row.push(value_from(r.get_ref(i)?));
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    async fn for_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut EachRow<'_>,
    ) -> Result<()> {
        let mut stmt = Self::bound(self.conn, sql, params)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut row = Row(vec![Value::Null; columns]);
        while let Some(r) = rows.next()? {
            // A caller that kept the whole row left an empty one behind.
            row.0.resize(columns, Value::Null);
            for (i, slot) in row.0.iter_mut().enumerate() {
                refill(slot, r.get_ref(i)?);
            }
            each(&mut row)?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut stmt = Self::bound(self.conn, sql, params)?;
        Ok(stmt.raw_execute()? as u64)
    }

    /// The file must be there (a sweep may have taken it after `put_blob`;
    /// the caller then stores it again): checked under the write lock, which
    /// a sweep also holds while it unlinks.
    async fn name_blob(&mut self, hash: BlobHash, size: u64) -> Result<()> {
        if !self.blobs.exists(&hash) {
            return Err(StoreError::BlobDamaged {
                hash,
                reason: "not stored, or removed by a sweep before it was named (put_blob again)"
                    .into(),
            });
        }
        self.conn
            .prepare_cached(
                "INSERT INTO blobs (hash, size, refcount, last_put_at) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT(hash) DO UPDATE SET refcount = refcount + 1, last_put_at = excluded.last_put_at",
            )?
            .execute(params![hash.to_hex(), size as i64, now_millis()])?;
        Ok(())
    }

    async fn index_text(&mut self, message: i64, text: &MessageText) -> Result<()> {
        let state = if text.complete { 1 } else { 2 };
        let updated = self
            .conn
            .prepare_cached("UPDATE messages SET text_state = ?2 WHERE id = ?1 AND text_state = 0")?
            .execute(params![message, state])?;
        if updated == 1 {
            self.conn
                .prepare_cached(
                    "INSERT INTO message_text (rowid, headers, body) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![message, text.headers, text.body])?;
        }
        Ok(())
    }
}
