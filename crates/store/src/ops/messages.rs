//! Messages in mailboxes: append, read, copy and move, flags, expunge, the
//! change log, and derived data kept with each message.
//!
//! Operations over a UID set are set-based: one read of the set, one block
//! of MODSEQs (and UIDs), then one statement over arrays on PostgreSQL (one
//! round trip) or one prepared statement per row on SQLite (microseconds,
//! in-process). Those few statements are the only ones written per dialect.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::mailboxes::{mailbox_in, no_mailbox};
use crate::model::{decode_keywords, encode_keywords};
use crate::sql::{Backend, Conn, Dialect, EachRow, Row, Size, SqlStore, Value, params};
use crate::*;

/// Messages of mailboxes and their per-mailbox state. Every call names the
/// account it acts in and finds rows by (account, id): a mailbox or
/// message of another account is not found.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Appends one message to one or more mailboxes, each named with its
    /// account (possibly several accounts), atomically: every mailbox gets
    /// it, or none does.
    async fn append_message(
        &self,
        targets: &[(PrincipalId, MailboxId)],
        message: NewMessage,
    ) -> Result<Vec<Appended>>;
    /// Lists a mailbox's messages in UID order.
    async fn list_messages(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageRecord>>;
    /// Lists a mailbox's messages in UID order without reading their
    /// summaries (left empty): UIDs, flags, MODSEQs, sizes and dates only.
    async fn list_message_state(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageRecord>>;
    /// The messages of a mailbox with the given UIDs, in UID order; UIDs
    /// not in the mailbox are left out.
    async fn get_messages(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<MessageRecord>>;
    /// Messages of a mailbox by UID, as [`MessageStore::get_messages`], each
    /// with its cached derived data of `kind` when it has some (one read).
    async fn get_messages_cached(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: &[u32],
        kind: &str,
    ) -> Result<Vec<(MessageRecord, Option<Vec<u8>>)>>;
    /// Messages of an account by id, those still stored, in id order.
    async fn messages_by_id(
        &self,
        account: PrincipalId,
        ids: &[MessageId],
    ) -> Result<Vec<StoredMessage>>;
    /// Cached derived data of `kind` for these messages (those that have it).
    async fn get_cached(
        &self,
        account: PrincipalId,
        messages: &[MessageId],
        kind: &str,
    ) -> Result<Vec<(MessageId, Vec<u8>)>>;
    /// Keeps derived data of `kind` for messages (replacing what was there).
    async fn put_cached(
        &self,
        account: PrincipalId,
        kind: &str,
        entries: Vec<(MessageId, Vec<u8>)>,
    ) -> Result<()>;
    /// Copies messages to another mailbox of the same account (and with
    /// `remove`, takes them out of the source in the same transaction: a
    /// move). Returns (source UID, new UID) pairs in source UID order.
    async fn copy_messages(
        &self,
        account: PrincipalId,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove: bool,
    ) -> Result<Vec<(u32, u32)>>;
    /// Changes flags and keywords of the given UIDs; returns each changed
    /// message's UID, new MODSEQ and message id.
    async fn store_flags(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: &[u32],
        change: FlagChange,
    ) -> Result<Vec<(u32, u64, MessageId)>>;
    /// Removes the given UIDs from a mailbox; returns the mailbox's new HIGHESTMODSEQ.
    async fn expunge(&self, account: PrincipalId, mailbox: MailboxId, uids: &[u32]) -> Result<u64>;
    /// The change log of a mailbox after `since_modseq`, in MODSEQ order.
    async fn changes_since(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        since_modseq: u64,
    ) -> Result<Vec<Change>>;
}

/// Reads of fewer rows than this are [`Size::Few`].
const FEW_ROWS: usize = 64;

/// Sorted, without duplicates.
fn uid_set(uids: &[u32]) -> Vec<u32> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// Whether a sorted UID set is spread thinly over its range: then SQLite
/// looks each UID up instead of scanning the range (measured: 16 sessions
/// storing flags on a few far-apart UIDs spent 58% of the server's time
/// joining every message in between).
fn sparse(uids: &[u32]) -> bool {
    match (uids.first(), uids.last()) {
        (Some(&low), Some(&high)) => (uids.len() as u64) * 8 < u64::from(high - low) + 1,
        _ => false,
    }
}

/// How big a read of these UIDs is.
fn read_size(uids: &[u32]) -> Size {
    match (uids.first(), uids.last()) {
        (Some(&low), Some(&high))
            if ((high - low) as usize) < FEW_ROWS || (sparse(uids) && uids.len() < FEW_ROWS) =>
        {
            Size::Few
        }
        _ => Size::Many,
    }
}

/// Runs `select` (which names the mailbox as `$1`, then `fixed` as `$2`...,
/// and has UID as its first column) for the rows of a sorted UID set and
/// hands each to `each`, in UID order: one statement on PostgreSQL; on
/// SQLite one range scan where the set is dense and one indexed lookup
/// per UID where it is sparse.
async fn rows_for_uids(
    c: &mut dyn Conn,
    select: &str,
    mailbox: MailboxId,
    fixed: &[Value],
    uids: &[u32],
    each: &mut EachRow<'_>,
) -> Result<()> {
    let (Some(&low), Some(&high)) = (uids.first(), uids.last()) else {
        return Ok(());
    };
    let next = fixed.len() + 2;
    let mut args = Vec::with_capacity(fixed.len() + 3);
    args.push(Value::Int(mailbox.0));
    args.extend_from_slice(fixed);
    match c.dialect() {
        Dialect::Postgres => {
            args.push(Value::Ints(uids.iter().map(|&u| i64::from(u)).collect()));
            let sql = format!("{select} AND mm.uid = ANY(${next})");
            let rows = c.query(&sql, &args).await?;
            for mut row in in_uid_order(rows)? {
                each(&mut row)?;
            }
            Ok(())
        }
        Dialect::Sqlite if sparse(uids) => {
            let sql = format!("{select} AND mm.uid = ${next}");
            args.push(Value::Null);
            for &uid in uids {
                *args.last_mut().expect("pushed") = Value::from(uid);
                c.for_each(&sql, &args, each).await?;
            }
            Ok(())
        }
        Dialect::Sqlite => {
            args.push(Value::from(low));
            args.push(Value::from(high));
            let sql = format!(
                "{select} AND mm.uid BETWEEN ${next} AND ${} ORDER BY mm.uid",
                next + 1
            );
            c.for_each(&sql, &args, &mut |row| {
                if uids.binary_search(&row.u32(0)?).is_ok() {
                    each(row)?;
                }
                Ok(())
            })
            .await
        }
    }
}

/// Rows whose first column is the UID, sorted by it. PostgreSQL sorts
/// after the join, over whole rows (summaries and cached data): 5,000 of
/// them spill past the default `work_mem` to disk and double the read.
/// Sorted here, the join streams.
fn in_uid_order(rows: Vec<Row>) -> Result<Vec<Row>> {
    let mut keyed = rows
        .into_iter()
        .map(|r| Ok((r.u32(0)?, r)))
        .collect::<Result<Vec<_>>>()?;
    keyed.sort_unstable_by_key(|(uid, _)| *uid);
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

/// [`rows_for_uids`], collected.
async fn collect_rows_for_uids(
    c: &mut dyn Conn,
    select: &str,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<Row>> {
    let mut out = Vec::with_capacity(uids.len());
    rows_for_uids(c, select, mailbox, &[], uids, &mut |row| {
        out.push(std::mem::take(row));
        Ok(())
    })
    .await?;
    Ok(out)
}

const SELECT_MESSAGES: &str = "SELECT mm.uid, m.id, m.blob_hash, m.size, m.received_at, mm.flags,
        mm.keywords, mm.modseq, m.thread_id, m.summary
 FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id";

/// As [`SELECT_MESSAGES`], without the summary.
const SELECT_MESSAGE_STATE: &str =
    "SELECT mm.uid, m.id, m.blob_hash, m.size, m.received_at, mm.flags,
        mm.keywords, mm.modseq, m.thread_id, ''
 FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id";

/// As [`SELECT_MESSAGES`], with the cached data of kind `$2` as column 10.
const SELECT_MESSAGES_CACHED: &str =
    "SELECT mm.uid, m.id, m.blob_hash, m.size, m.received_at, mm.flags,
        mm.keywords, mm.modseq, m.thread_id, m.summary, mc.data
 FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id
 LEFT JOIN message_cache mc ON mc.message_id = m.id AND mc.kind = $2";

fn message_from(mailbox: MailboxId, r: &mut Row) -> Result<MessageRecord> {
    Ok(MessageRecord {
        mailbox,
        uid: r.u32(0)?,
        message: MessageId(r.int(1)?),
        blob: BlobHash::from_hex(r.str(2)?)?,
        size: r.uint(3)?,
        received_at: r.int(4)?,
        flags: SystemFlags(r.u32(5)?),
        keywords: decode_keywords(r.str(6)?),
        modseq: r.uint(7)?,
        thread: MessageId(r.int(8)?),
        summary: r.text(9)?,
    })
}

/// Every message of a mailbox in UID order, read with `select`.
async fn list_mailbox<B: Backend>(
    store: &SqlStore<B>,
    select: &'static str,
    account: PrincipalId,
    mailbox: MailboxId,
) -> Result<Vec<MessageRecord>> {
    store
        .read(Size::Many, move |c| {
            Box::pin(async move {
                let mut out = Vec::new();
                // SQLite reads in the primary key's (mailbox, uid) order;
                // PostgreSQL's sort of whole rows would spill (see
                // `in_uid_order`), so its rows are sorted here.
                let order = match c.dialect() {
                    Dialect::Sqlite => " ORDER BY mm.uid",
                    Dialect::Postgres => "",
                };
                c.for_each(
                    &format!("{select} WHERE mm.mailbox_id = $1 AND m.account_id = $2{order}"),
                    params![mailbox.0, account.0],
                    &mut |r| {
                        out.push(message_from(mailbox, r)?);
                        Ok(())
                    },
                )
                .await?;
                // Already in order on SQLite: one pass to confirm it.
                out.sort_by_key(|r| r.uid);
                Ok(out)
            })
        })
        .await
}

/// Takes `n` new MODSEQs of a mailbox at once; returns the first (the
/// others follow it). One statement, so a change over many messages
/// announces its mailbox once.
async fn allocate_modseqs(c: &mut dyn Conn, mailbox: MailboxId, n: usize) -> Result<u64> {
    let last = c
        .query_opt(
            "UPDATE mailboxes SET highest_modseq = highest_modseq + $2 WHERE id = $1
             RETURNING highest_modseq",
            params![mailbox.0, n],
        )
        .await?
        .ok_or_else(|| no_mailbox(mailbox))?
        .int(0)?;
    Ok((last - n as i64 + 1) as u64)
}

/// Logs changes of one kind in a mailbox: (modseq, message, uid) each.
async fn log_changes(
    c: &mut dyn Conn,
    account: i64,
    mailbox: MailboxId,
    kind: ChangeKind,
    changes: &[(i64, i64, i64)],
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let now = now_millis();
    match c.dialect() {
        Dialect::Postgres => {
            let column = |f: fn(&(i64, i64, i64)) -> i64| -> Value {
                Value::Ints(changes.iter().map(f).collect())
            };
            c.execute(
                "INSERT INTO changes (account_id, collection_kind, collection_id, modseq, object_id, uid, kind, at)
                 SELECT $1, 'mailbox', $2, u.modseq, u.message_id, u.uid, $6, $7
                 FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS u(modseq, message_id, uid)",
                &[
                    Value::Int(account),
                    Value::Int(mailbox.0),
                    column(|c| c.0),
                    column(|c| c.1),
                    column(|c| c.2),
                    Value::from(kind.as_str()),
                    Value::Int(now),
                ],
            )
            .await?;
        }
        Dialect::Sqlite => {
            for &(modseq, message, uid) in changes {
                c.execute(
                    "INSERT INTO changes (account_id, collection_kind, collection_id, modseq, object_id, uid, kind, at)
                     VALUES ($1, 'mailbox', $2, $3, $4, $5, $6, $7)",
                    params![account, mailbox.0, modseq, message, uid, kind.as_str(), now],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Deletes the messages no mailbox holds any more, releasing their blobs
/// and their accounts' quota.
pub(crate) async fn release_orphan_messages(c: &mut dyn Conn, messages: &[i64]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    match c.dialect() {
        Dialect::Postgres => {
            // One statement for any number of messages.
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
                &[Value::Ints(messages.to_vec())],
            )
            .await?;
        }
        Dialect::Sqlite => {
            for &id in messages {
                let Some(mut gone) = c
                    .query_opt(
                        "DELETE FROM messages WHERE id = $1
                           AND NOT EXISTS (SELECT 1 FROM mailbox_messages mm WHERE mm.message_id = $1)
                         RETURNING account_id, blob_hash, size",
                        params![id],
                    )
                    .await?
                else {
                    continue;
                };
                c.execute(
                    "UPDATE blobs SET refcount = refcount - 1 WHERE hash = $1",
                    params![gone.text(1)?],
                )
                .await?;
                c.execute(
                    "UPDATE principals SET used_bytes = max(0, used_bytes - $2) WHERE id = $1",
                    params![gone.int(0)?, gone.int(2)?],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Inserts the account's message row: checks and charges quota, takes a blob
/// reference and finds the thread. Returns (message id, thread id).
async fn insert_message(
    c: &mut dyn Conn,
    account: i64,
    hex: &str,
    message: &NewMessage,
) -> Result<(i64, i64)> {
    let charged = c
        .execute(
            "UPDATE principals SET used_bytes = used_bytes + $2
             WHERE id = $1 AND (quota_bytes = 0 OR used_bytes + $2 <= quota_bytes)",
            params![account, message.size],
        )
        .await?;
    if charged == 0 {
        let row = c
            .query_opt(
                "SELECT quota_bytes, used_bytes FROM principals WHERE id = $1",
                params![account],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "account",
                name: account.to_string(),
            })?;
        return Err(StoreError::QuotaExceeded {
            account: PrincipalId(account),
            needed: message.size,
            available: (row.int(0)? - row.int(1)?).max(0) as u64,
        });
    }
    c.name_blob(message.blob, message.size).await?;
    let mut thread: Option<i64> = None;
    for reference in &message.references {
        thread = c
            .query_opt(
                "SELECT thread_id FROM messages WHERE account_id = $1 AND message_id_header = $2 LIMIT 1",
                params![account, reference],
            )
            .await?
            .map(|r| r.int(0))
            .transpose()?;
        if thread.is_some() {
            break;
        }
    }
    let id = c
        .query_one(
            "INSERT INTO messages (account_id, blob_hash, size, received_at, message_id_header, thread_id, summary)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            params![
                account,
                hex,
                message.size,
                message.received_at,
                message.message_id_header.as_deref(),
                thread.unwrap_or(0),
                message.summary.as_str(),
            ],
        )
        .await?
        .int(0)?;
    // A message that starts a thread names itself.
    let thread = match thread {
        Some(t) => t,
        None => {
            c.execute(
                "UPDATE messages SET thread_id = $1 WHERE id = $1",
                params![id],
            )
            .await?;
            id
        }
    };
    for (kind, data) in &message.derived {
        c.execute(
            "INSERT INTO message_cache (message_id, kind, data) VALUES ($1, $2, $3)",
            params![id, kind, data.as_slice()],
        )
        .await?;
    }
    if let Some(text) = &message.text {
        c.index_text(id, text).await?;
    }
    Ok((id, thread))
}

#[async_trait]
impl<B: Backend> MessageStore for SqlStore<B> {
    async fn append_message(
        &self,
        targets: &[(PrincipalId, MailboxId)],
        message: NewMessage,
    ) -> Result<Vec<Appended>> {
        let targets = targets.to_vec();
        self.write(move |c| {
            Box::pin(async move {
                let hex = message.blob.to_hex();
                // Allocate in id order, so that concurrent multi-recipient
                // deliveries lock PostgreSQL's rows in one order and never
                // deadlock.
                let mut order = targets.clone();
                // A mailbox named under an account it is not in fails as
                // not found, whatever else the targets name.
                order.sort_by_key(|&(account, mailbox)| (mailbox, account));
                order.dedup();
                let mut allocated = BTreeMap::new();
                for (account, mailbox) in order {
                    let row = c
                        .query_opt(
                            "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
                             WHERE id = $1 AND account_id = $2 RETURNING uid_next - 1, highest_modseq",
                            params![mailbox.0, account.0],
                        )
                        .await?
                        .ok_or_else(|| no_mailbox(mailbox))?;
                    allocated.insert(mailbox, (account.0, row.int(0)?, row.int(1)?));
                }
                let mut by_account: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
                let mut out: Vec<Appended> = Vec::with_capacity(targets.len());
                for (_, mailbox) in targets {
                    if out.iter().any(|a| a.mailbox == mailbox) {
                        continue;
                    }
                    let (account, uid, modseq) = allocated[&mailbox];
                    let (message_id, thread) = match by_account.get(&account) {
                        Some(&ids) => ids,
                        None => {
                            let ids = insert_message(c, account, &hex, &message).await?;
                            by_account.insert(account, ids);
                            ids
                        }
                    };
                    c.execute(
                        "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, keywords, modseq)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        params![
                            mailbox.0,
                            uid,
                            message_id,
                            message.flags.0,
                            encode_keywords(&message.keywords),
                            modseq,
                        ],
                    )
                    .await?;
                    log_changes(
                        c,
                        account,
                        mailbox,
                        ChangeKind::Created,
                        &[(modseq, message_id, uid)],
                    )
                    .await?;
                    out.push(Appended {
                        mailbox,
                        message: MessageId(message_id),
                        uid: uid as u32,
                        modseq: modseq as u64,
                        thread: MessageId(thread),
                    });
                }
                Ok(out)
            })
        })
        .await
    }

    async fn list_messages(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageRecord>> {
        list_mailbox(self, SELECT_MESSAGES, account, mailbox).await
    }

    async fn list_message_state(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageRecord>> {
        list_mailbox(self, SELECT_MESSAGE_STATE, account, mailbox).await
    }

    async fn get_messages(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<MessageRecord>> {
        let uids = uid_set(uids);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        self.read(read_size(&uids), move |c| {
            let uids = uids.clone();
            Box::pin(async move {
                let select =
                    format!("{SELECT_MESSAGES} WHERE mm.mailbox_id = $1 AND m.account_id = $2");
                let mut out = Vec::with_capacity(uids.len());
                rows_for_uids(
                    c,
                    &select,
                    mailbox,
                    &[Value::Int(account.0)],
                    &uids,
                    &mut |r| {
                        out.push(message_from(mailbox, r)?);
                        Ok(())
                    },
                )
                .await?;
                Ok(out)
            })
        })
        .await
    }

    async fn get_messages_cached(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: &[u32],
        kind: &str,
    ) -> Result<Vec<(MessageRecord, Option<Vec<u8>>)>> {
        let uids = uid_set(uids);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let kind = kind.to_owned();
        // One statement joins the cached data to each row: half the
        // lookups of get_messages followed by get_cached.
        self.read(read_size(&uids), move |c| {
            let (uids, kind) = (uids.clone(), kind.clone());
            Box::pin(async move {
                let select = format!(
                    "{SELECT_MESSAGES_CACHED} WHERE mm.mailbox_id = $1 AND m.account_id = $3"
                );
                let fixed = [Value::Text(kind), Value::Int(account.0)];
                let mut out = Vec::with_capacity(uids.len());
                rows_for_uids(c, &select, mailbox, &fixed, &uids, &mut |r| {
                    out.push((message_from(mailbox, r)?, r.opt_bytes(10)?));
                    Ok(())
                })
                .await?;
                Ok(out)
            })
        })
        .await
    }

    async fn messages_by_id(
        &self,
        account: PrincipalId,
        ids: &[MessageId],
    ) -> Result<Vec<StoredMessage>> {
        let mut ids: Vec<i64> = ids.iter().map(|m| m.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let size = if ids.len() < FEW_ROWS {
            Size::Few
        } else {
            Size::Many
        };
        self.read(size, move |c| {
            let ids = ids.clone();
            Box::pin(async move {
                const SELECT: &str =
                    "SELECT id, account_id, received_at, size, summary FROM messages";
                let rows = match c.dialect() {
                    Dialect::Postgres => {
                        c.query(
                            &format!("{SELECT} WHERE id = ANY($1) AND account_id = $2 ORDER BY id"),
                            &[Value::Ints(ids), Value::Int(account.0)],
                        )
                        .await?
                    }
                    Dialect::Sqlite => {
                        let mut rows = Vec::with_capacity(ids.len());
                        for id in ids {
                            rows.extend(
                                c.query(
                                    &format!("{SELECT} WHERE id = $1 AND account_id = $2"),
                                    params![id, account.0],
                                )
                                .await?,
                            );
                        }
                        rows
                    }
                };
                rows.into_iter()
                    .map(|mut r| {
                        Ok(StoredMessage {
                            id: MessageId(r.int(0)?),
                            account: PrincipalId(r.int(1)?),
                            received_at: r.int(2)?,
                            size: r.uint(3)?,
                            summary: r.text(4)?,
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    async fn get_cached(
        &self,
        account: PrincipalId,
        messages: &[MessageId],
        kind: &str,
    ) -> Result<Vec<(MessageId, Vec<u8>)>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = messages.iter().map(|m| m.0).collect();
        let kind = kind.to_owned();
        let size = if ids.len() < FEW_ROWS {
            Size::Few
        } else {
            Size::Many
        };
        self.read(size, move |c| {
            let (ids, kind) = (ids.clone(), kind.clone());
            Box::pin(async move {
                let rows = match c.dialect() {
                    Dialect::Postgres => {
                        c.query(
                            "SELECT mc.message_id, mc.data FROM message_cache mc
                             JOIN messages m ON m.id = mc.message_id
                             WHERE mc.message_id = ANY($1) AND mc.kind = $2 AND m.account_id = $3",
                            &[Value::Ints(ids), Value::Text(kind), Value::Int(account.0)],
                        )
                        .await?
                    }
                    Dialect::Sqlite => {
                        let mut rows = Vec::with_capacity(ids.len());
                        for id in ids {
                            rows.extend(
                                c.query(
                                    "SELECT mc.message_id, mc.data FROM message_cache mc
                                     JOIN messages m ON m.id = mc.message_id
                                     WHERE mc.message_id = $1 AND mc.kind = $2 AND m.account_id = $3",
                                    params![id, kind.as_str(), account.0],
                                )
                                .await?,
                            );
                        }
                        rows
                    }
                };
                rows.into_iter()
                    .map(|mut r| Ok((MessageId(r.int(0)?), r.bytes(1)?)))
                    .collect()
            })
        })
        .await
    }

    async fn put_cached(
        &self,
        account: PrincipalId,
        kind: &str,
        entries: Vec<(MessageId, Vec<u8>)>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let kind = kind.to_owned();
        // A cache write need not be durable at once: losing it costs only
        // recomputation. It still goes through the one writer.
        self.write(move |c| {
            Box::pin(async move {
                for (m, data) in entries {
                    c.execute(
                        "INSERT INTO message_cache (message_id, kind, data)
                         SELECT $1, $2, $3
                         WHERE EXISTS (SELECT 1 FROM messages WHERE id = $1 AND account_id = $4)
                         ON CONFLICT (message_id, kind) DO UPDATE SET data = excluded.data",
                        params![m.0, kind.as_str(), data, account.0],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn copy_messages(
        &self,
        account: PrincipalId,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove: bool,
    ) -> Result<Vec<(u32, u32)>> {
        let uids = uid_set(uids);
        self.write(move |c| {
            Box::pin(async move {
                // Lock in id order so that two opposite moves cannot deadlock.
                let (first, second) = if from.0 <= to.0 {
                    (from, to)
                } else {
                    (to, from)
                };
                // Both in the account: messages are copied only within one.
                mailbox_in(c, account, first, true).await?;
                mailbox_in(c, account, second, true).await?;
                let select = "SELECT mm.uid, mm.message_id, mm.flags, mm.keywords
                              FROM mailbox_messages mm WHERE mm.mailbox_id = $1";
                let mut rows = collect_rows_for_uids(c, select, from, &uids).await?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let n = rows.len() as i64;
                let mut old_uids = Vec::with_capacity(rows.len());
                let mut messages = Vec::with_capacity(rows.len());
                let mut flags = Vec::with_capacity(rows.len());
                let mut keywords = Vec::with_capacity(rows.len());
                for r in &mut rows {
                    old_uids.push(r.int(0)?);
                    messages.push(r.int(1)?);
                    flags.push(r.int(2)?);
                    keywords.push(r.text(3)?);
                }
                // UIDs and MODSEQs for all of them in one step (RFC 9051
                // §2.3.1.1: ascending, in the order of the source UIDs).
                let next = c
                    .query_one(
                        "UPDATE mailboxes SET uid_next = uid_next + $2, highest_modseq = highest_modseq + $2
                         WHERE id = $1 RETURNING uid_next - $2, highest_modseq - $2 + 1",
                        params![to.0, n],
                    )
                    .await?;
                let (first_uid, first_modseq) = (next.int(0)?, next.int(1)?);
                let new_uids: Vec<i64> = (first_uid..first_uid + n).collect();
                let modseqs: Vec<i64> = (first_modseq..first_modseq + n).collect();
                match c.dialect() {
                    Dialect::Postgres => {
                        c.execute(
                            "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, keywords, modseq)
                             SELECT $1, u.uid, u.message_id, u.flags, u.keywords, u.modseq
                             FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[])
                                 AS u(uid, message_id, flags, keywords, modseq)",
                            &[
                                Value::Int(to.0),
                                Value::Ints(new_uids.clone()),
                                Value::Ints(messages.clone()),
                                Value::Ints(flags),
                                Value::Texts(keywords),
                                Value::Ints(modseqs.clone()),
                            ],
                        )
                        .await?;
                    }
                    Dialect::Sqlite => {
                        for i in 0..rows.len() {
                            c.execute(
                                "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, keywords, modseq)
                                 VALUES ($1, $2, $3, $4, $5, $6)",
                                params![
                                    to.0,
                                    new_uids[i],
                                    messages[i],
                                    flags[i],
                                    keywords[i].as_str(),
                                    modseqs[i],
                                ],
                            )
                            .await?;
                        }
                    }
                }
                let created: Vec<(i64, i64, i64)> = (0..rows.len())
                    .map(|i| (modseqs[i], messages[i], new_uids[i]))
                    .collect();
                log_changes(c, account.0, to, ChangeKind::Created, &created).await?;
                if remove {
                    delete_uids(c, from, &old_uids).await?;
                    let first = allocate_modseqs(c, from, rows.len()).await? as i64;
                    let expunged: Vec<(i64, i64, i64)> = (0..rows.len())
                        .map(|i| (first + i as i64, messages[i], old_uids[i]))
                        .collect();
                    log_changes(c, account.0, from, ChangeKind::Expunged, &expunged).await?;
                }
                Ok(old_uids
                    .iter()
                    .zip(&new_uids)
                    .map(|(&old, &new)| (old as u32, new as u32))
                    .collect())
            })
        })
        .await
    }

    async fn store_flags(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: &[u32],
        change: FlagChange,
    ) -> Result<Vec<(u32, u64, MessageId)>> {
        let uids = uid_set(uids);
        self.write(move |c| {
            Box::pin(async move {
                mailbox_in(c, account, mailbox, true).await?;
                let select = "SELECT mm.uid, mm.message_id, mm.flags, mm.keywords
                              FROM mailbox_messages mm WHERE mm.mailbox_id = $1";
                let mut changed = Vec::new();
                for r in collect_rows_for_uids(c, select, mailbox, &uids).await? {
                    let (uid, message, flags) = (r.int(0)?, r.int(1)?, r.int(2)?);
                    let old_keywords = decode_keywords(r.str(3)?);
                    let (new_flags, new_keywords) =
                        change.apply(SystemFlags(flags as u32), &old_keywords);
                    if i64::from(new_flags.0) != flags || new_keywords != old_keywords {
                        changed.push((
                            uid,
                            message,
                            i64::from(new_flags.0),
                            encode_keywords(&new_keywords),
                        ));
                    }
                }
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                let first = allocate_modseqs(c, mailbox, changed.len()).await? as i64;
                let modseqs: Vec<i64> = (first..first + changed.len() as i64).collect();
                match c.dialect() {
                    Dialect::Postgres => {
                        c.execute(
                            "UPDATE mailbox_messages mm SET flags = u.flags, keywords = u.keywords, modseq = u.modseq
                             FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[])
                                 AS u(uid, flags, keywords, modseq)
                             WHERE mm.mailbox_id = $1 AND mm.uid = u.uid",
                            &[
                                Value::Int(mailbox.0),
                                Value::Ints(changed.iter().map(|c| c.0).collect()),
                                Value::Ints(changed.iter().map(|c| c.2).collect()),
                                Value::Texts(changed.iter().map(|c| c.3.clone()).collect()),
                                Value::Ints(modseqs.clone()),
                            ],
                        )
                        .await?;
                    }
                    Dialect::Sqlite => {
                        for (row, &modseq) in changed.iter().zip(&modseqs) {
                            c.execute(
                                "UPDATE mailbox_messages SET flags = $3, keywords = $4, modseq = $5
                                 WHERE mailbox_id = $1 AND uid = $2",
                                params![mailbox.0, row.0, row.2, row.3.as_str(), modseq],
                            )
                            .await?;
                        }
                    }
                }
                let log: Vec<(i64, i64, i64)> = changed
                    .iter()
                    .zip(&modseqs)
                    .map(|(c, &m)| (m, c.1, c.0))
                    .collect();
                log_changes(c, account.0, mailbox, ChangeKind::Flags, &log).await?;
                Ok(log
                    .into_iter()
                    .map(|(modseq, message, uid)| (uid as u32, modseq as u64, MessageId(message)))
                    .collect())
            })
        })
        .await
    }

    async fn expunge(&self, account: PrincipalId, mailbox: MailboxId, uids: &[u32]) -> Result<u64> {
        let uids = uid_set(uids);
        self.write(move |c| {
            Box::pin(async move {
                let highest = mailbox_in(c, account, mailbox, true).await?;
                let uid_list: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
                let gone = delete_uids(c, mailbox, &uid_list).await?;
                if gone.is_empty() {
                    return Ok(highest);
                }
                let first = allocate_modseqs(c, mailbox, gone.len()).await? as i64;
                let log: Vec<(i64, i64, i64)> = gone
                    .iter()
                    .zip(first..)
                    .map(|(&(uid, message), modseq)| (modseq, message, uid))
                    .collect();
                log_changes(c, account.0, mailbox, ChangeKind::Expunged, &log).await?;
                let released: Vec<i64> = gone.iter().map(|g| g.1).collect();
                release_orphan_messages(c, &released).await?;
                Ok((first + gone.len() as i64 - 1) as u64)
            })
        })
        .await
    }

    async fn changes_since(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        since_modseq: u64,
    ) -> Result<Vec<Change>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT modseq, object_id, uid, kind FROM changes
                     WHERE collection_kind = 'mailbox' AND collection_id = $1 AND modseq > $2
                       AND account_id = $3
                     ORDER BY modseq",
                    params![mailbox.0, since_modseq, account.0],
                )
                .await?
                .into_iter()
                .map(|r| {
                    Ok(Change {
                        modseq: r.uint(0)?,
                        message: MessageId(r.int(1)?),
                        uid: r.u32(2)?,
                        kind: ChangeKind::parse(r.str(3)?)?,
                    })
                })
                .collect()
            })
        })
        .await
    }
}

/// Removes memberships by UID (sorted); returns the (uid, message) pairs
/// removed, in UID order.
async fn delete_uids(
    c: &mut dyn Conn,
    mailbox: MailboxId,
    uids: &[i64],
) -> Result<Vec<(i64, i64)>> {
    let mut gone = match c.dialect() {
        Dialect::Postgres => c
            .query(
                "DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2)
                 RETURNING uid, message_id",
                &[Value::Int(mailbox.0), Value::Ints(uids.to_vec())],
            )
            .await?
            .iter()
            .map(|r| Ok((r.int(0)?, r.int(1)?)))
            .collect::<Result<Vec<_>>>()?,
        Dialect::Sqlite => {
            let mut gone = Vec::with_capacity(uids.len());
            for &uid in uids {
                if let Some(r) = c
                    .query_opt(
                        "DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = $2
                         RETURNING message_id",
                        params![mailbox.0, uid],
                    )
                    .await?
                {
                    gone.push((uid, r.int(0)?));
                }
            }
            gone
        }
    };
    gone.sort_unstable();
    Ok(gone)
}
