//! A PostgreSQL connection as the shared operations see it: statements are
//! prepared once per connection and kept (one round trip per statement
//! after that), and values convert to whatever type PostgreSQL inferred
//! for each parameter.

use std::error::Error;

use async_trait::async_trait;
use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::sql::{Conn, Dialect, Row, Value};
use crate::*;

/// A pooled connection, or a transaction on one.
pub(super) enum PgConn<'a> {
    Plain(&'a deadpool_postgres::Client),
    Transaction(deadpool_postgres::Transaction<'a>),
}

impl<'a> PgConn<'a> {
    pub(super) fn plain(client: &'a deadpool_postgres::Client) -> Self {
        PgConn::Plain(client)
    }

    pub(super) fn transaction(tx: deadpool_postgres::Transaction<'a>) -> Self {
        PgConn::Transaction(tx)
    }

    /// Commits the transaction (a plain connection committed each statement).
    pub(super) async fn commit(self) -> Result<()> {
        if let PgConn::Transaction(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }

    async fn run(&self, sql: &str, params: &[Value]) -> Result<Vec<tokio_postgres::Row>> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        Ok(match self {
            PgConn::Plain(c) => {
                let stmt = c.prepare_cached(sql).await?;
                c.query(&stmt, &refs).await?
            }
            PgConn::Transaction(tx) => {
                let stmt = tx.prepare_cached(sql).await?;
                tx.query(&stmt, &refs).await?
            }
        })
    }

    async fn run_execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        Ok(match self {
            PgConn::Plain(c) => {
                let stmt = c.prepare_cached(sql).await?;
                c.execute(&stmt, &refs).await?
            }
            PgConn::Transaction(tx) => {
                let stmt = tx.prepare_cached(sql).await?;
                tx.execute(&stmt, &refs).await?
            }
        })
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

fn wrong_type(value: &Value, ty: &Type) -> BoxError {
    format!("cannot pass {value:?} as a PostgreSQL {ty}").into()
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => Err(wrong_type(self, ty)),
            },
            Value::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                Type::INT8 => i64::from(*b).to_sql(ty, out),
                Type::INT4 => i32::from(*b).to_sql(ty, out),
                Type::INT2 => i16::from(*b).to_sql(ty, out),
                _ => Err(wrong_type(self, ty)),
            },
            Value::Text(s) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            Value::Bytes(b) if *ty == Type::BYTEA => b.as_slice().to_sql(ty, out),
            Value::Text(_) | Value::Bytes(_) => Err(wrong_type(self, ty)),
            Value::Ints(list) => match *ty {
                Type::INT8_ARRAY => list.to_sql(ty, out),
                Type::INT4_ARRAY => list
                    .iter()
                    .map(|&v| i32::try_from(v))
                    .collect::<std::result::Result<Vec<i32>, _>>()?
                    .to_sql(ty, out),
                _ => Err(wrong_type(self, ty)),
            },
            Value::Texts(list) => list.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked against the inferred type in `to_sql`, with a message
        // that names the value.
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::BYTEA => Value::Bytes(Vec::<u8>::from_sql(ty, raw)?),
            _ if <&str as FromSql>::accepts(ty) => Value::Text(String::from_sql(ty, raw)?),
            _ => return Err(format!("no store column has the PostgreSQL type {ty}").into()),
        })
    }

    fn from_sql_null(_ty: &Type) -> std::result::Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn rows_from(rows: Vec<tokio_postgres::Row>) -> Result<Vec<Row>> {
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<_, Value>(i).map_err(StoreError::from))
                .collect::<Result<Vec<_>>>()
                .map(Row)
        })
        .collect()
}

#[async_trait]
impl Conn for PgConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        rows_from(self.run(sql, params).await?)
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.run_execute(sql, params).await
    }

    /// The content row was written by `put_blob`; a sweep may have removed
    /// it since, in which case the caller stores it again.
    async fn name_blob(&mut self, hash: BlobHash, _size: u64) -> Result<()> {
        let named = self
            .run_execute(
                "UPDATE blobs SET refcount = refcount + 1 WHERE hash = $1",
                &[Value::Text(hash.to_hex())],
            )
            .await?;
        if named == 0 {
            return Err(StoreError::BlobDamaged {
                hash,
                reason: "not stored (put_blob first)".into(),
            });
        }
        Ok(())
    }

    async fn index_text(&mut self, message: i64, text: &MessageText) -> Result<()> {
        let state = if text.complete { 1 } else { 2 };
        let updated = self
            .run_execute(
                "UPDATE messages SET text_state = $2 WHERE id = $1 AND text_state = 0",
                &[Value::Int(message), Value::Int(state)],
            )
            .await?;
        if updated == 1 {
            // PostgreSQL text cannot hold NUL; nobody searches for one.
            let clean = |s: &str| Value::Text(s.replace('\0', ""));
            self.run_execute(
                "INSERT INTO message_text (message_id, headers, body) VALUES ($1, $2, $3)",
                &[Value::Int(message), clean(&text.headers), clean(&text.body)],
            )
            .await?;
        }
        Ok(())
    }
}
