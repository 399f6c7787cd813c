//! Mailboxes of an account: create, find, rename, delete, subscriptions,
//! `\Recent` claims and counters.

use async_trait::async_trait;

use crate::sql::{Backend, Conn, Dialect, Row, Size, SqlStore, params};
use crate::*;

/// Mailboxes and what belongs to them but not to one message.
#[async_trait]
pub trait MailboxStore: Send + Sync + 'static {
    /// Creates a mailbox in an account.
    async fn create_mailbox(&self, account: PrincipalId, new: NewMailbox) -> Result<Mailbox>;
    /// Lists an account's mailboxes, by name.
    async fn list_mailboxes(&self, account: PrincipalId) -> Result<Vec<Mailbox>>;
    /// Reads a mailbox of an account by id.
    async fn get_mailbox(&self, account: PrincipalId, id: MailboxId) -> Result<Option<Mailbox>>;
    /// The account a mailbox belongs to: the one call not keyed by account,
    /// for core to decide whether the caller may act in it. It returns no
    /// data of the mailbox.
    async fn mailbox_owner(&self, id: MailboxId) -> Result<Option<PrincipalId>>;
    /// Finds an account's mailbox by name; "INBOX" in any case also names
    /// the mailbox with the inbox role. The first by name when both match.
    async fn find_mailbox(&self, account: PrincipalId, name: &str) -> Result<Option<Mailbox>>;
    /// Renames mailboxes in one transaction (a mailbox and its children);
    /// fails with [`StoreError::AlreadyExists`] if a new name is taken.
    async fn rename_mailboxes(
        &self,
        account: PrincipalId,
        renames: &[(MailboxId, String)],
    ) -> Result<()>;
    /// The names an account subscribes to, existing as mailboxes or not
    /// (RFC 9051 §6.3.7), sorted.
    async fn subscriptions(&self, account: PrincipalId) -> Result<Vec<String>>;
    /// Subscribes an account to a name, or unsubscribes it.
    async fn set_subscription(&self, account: PrincipalId, name: &str, on: bool) -> Result<()>;
    /// Claims the messages no session has seen as `\Recent` yet: returns the
    /// UIDs `[first, end)` that are now recent to the caller alone, and moves
    /// the mailbox's mark to `end` (RFC 3501 §2.3.2).
    async fn claim_recent(&self, account: PrincipalId, mailbox: MailboxId) -> Result<(u32, u32)>;
    /// The UID of the newest message in a mailbox with this Message-ID
    /// (without angle brackets) received at or after `since` (ms since the epoch).
    async fn find_by_message_id(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        message_id: &str,
        since: i64,
    ) -> Result<Option<u32>>;
    /// Deletes a mailbox with its messages, releasing what no other mailbox holds.
    async fn delete_mailbox(&self, account: PrincipalId, id: MailboxId) -> Result<()>;
    /// A mailbox with the counts of its messages (for IMAP STATUS), in one read.
    async fn mailbox_status(
        &self,
        account: PrincipalId,
        id: MailboxId,
    ) -> Result<(Mailbox, MailboxStatus)>;
}

pub(crate) const MAILBOX_COLUMNS: &str =
    "id, account_id, name, role, uid_next, highest_modseq, recent_uid";

pub(crate) fn mailbox_from(r: &mut Row) -> Result<Mailbox> {
    let id = r.int(0)?;
    let role = r.opt_text(3)?;
    Ok(Mailbox {
        id: MailboxId(id),
        account: PrincipalId(r.int(1)?),
        name: r.text(2)?,
        role: role.as_deref().and_then(MailboxRole::parse),
        uid_validity: id as u32,
        uid_next: r.u32(4)?,
        highest_modseq: r.uint(5)?,
        recent_uid: r.u32(6)?,
    })
}

pub(crate) fn no_mailbox(id: MailboxId) -> StoreError {
    StoreError::NotFound {
        kind: "mailbox",
        name: id.to_string(),
    }
}

/// Inserts a mailbox; fails if the account has one of that name.
pub(crate) async fn insert_mailbox(
    c: &mut dyn Conn,
    account: PrincipalId,
    new: &NewMailbox,
) -> Result<Mailbox> {
    let row = c
        .query_opt(
            &format!(
                "INSERT INTO mailboxes (account_id, name, role, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, name) DO NOTHING RETURNING {MAILBOX_COLUMNS}"
            ),
            params![
                account.0,
                new.name.as_str(),
                new.role.map(MailboxRole::as_str),
                now_millis(),
            ],
        )
        .await?;
    match row {
        Some(mut r) => mailbox_from(&mut r),
        None => Err(StoreError::AlreadyExists(format!("mailbox {:?}", new.name))),
    }
}

/// Checks that a mailbox belongs to `account` (else it is not found, as
/// for an id never made) and returns its HIGHESTMODSEQ; with `lock`, the
/// row is locked for the transaction (PostgreSQL).
pub(crate) async fn mailbox_in(
    c: &mut dyn Conn,
    account: PrincipalId,
    mailbox: MailboxId,
    lock: bool,
) -> Result<u64> {
    let sql = if lock && c.dialect() == Dialect::Postgres {
        "SELECT highest_modseq FROM mailboxes WHERE id = $1 AND account_id = $2 FOR UPDATE"
    } else {
        "SELECT highest_modseq FROM mailboxes WHERE id = $1 AND account_id = $2"
    };
    c.query_opt(sql, params![mailbox.0, account.0])
        .await?
        .ok_or_else(|| no_mailbox(mailbox))?
        .uint(0)
}

#[async_trait]
impl<B: Backend> MailboxStore for SqlStore<B> {
    async fn create_mailbox(&self, account: PrincipalId, new: NewMailbox) -> Result<Mailbox> {
        self.write_one(move |c| Box::pin(async move { insert_mailbox(c, account, &new).await }))
            .await
    }

    async fn list_mailboxes(&self, account: PrincipalId) -> Result<Vec<Mailbox>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                c.query(
                    &format!(
                        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 ORDER BY name"
                    ),
                    params![account.0],
                )
                .await?
                .iter_mut()
                .map(mailbox_from)
                .collect()
            })
        })
        .await
    }

    async fn get_mailbox(&self, account: PrincipalId, id: MailboxId) -> Result<Option<Mailbox>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                c.query_opt(
                    &format!(
                        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1 AND account_id = $2"
                    ),
                    params![id.0, account.0],
                )
                .await?
                .as_mut()
                .map(mailbox_from)
                .transpose()
            })
        })
        .await
    }

    async fn mailbox_owner(&self, id: MailboxId) -> Result<Option<PrincipalId>> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT account_id FROM mailboxes WHERE id = $1",
                    params![id.0],
                )
                .await?
                .map(|r| Ok(PrincipalId(r.int(0)?)))
                .transpose()
            })
        })
        .await
    }

    async fn find_mailbox(&self, account: PrincipalId, name: &str) -> Result<Option<Mailbox>> {
        let name = name.to_owned();
        self.read(Size::Few, move |c| {
            let name = name.clone();
            Box::pin(async move {
                // Two statements rather than one with `OR ($3 AND ...)`:
                // SQLite would not use the (account, name) index for it.
                let sql = if name.eq_ignore_ascii_case("inbox") {
                    format!(
                        "SELECT {MAILBOX_COLUMNS} FROM mailboxes
                         WHERE account_id = $1 AND (name = $2 OR role = 'inbox') ORDER BY name LIMIT 1"
                    )
                } else {
                    format!(
                        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 AND name = $2"
                    )
                };
                c.query_opt(&sql, params![account.0, name])
                    .await?
                    .as_mut()
                    .map(mailbox_from)
                    .transpose()
            })
        })
        .await
    }

    async fn rename_mailboxes(
        &self,
        account: PrincipalId,
        renames: &[(MailboxId, String)],
    ) -> Result<()> {
        let renames = renames.to_vec();
        self.write(move |c| {
            Box::pin(async move {
                // Two steps, so that renaming a/ to a/b/ never collides with
                // itself; the interim name starts with a control character,
                // which no client can create.
                for (id, _) in &renames {
                    mailbox_in(c, account, *id, true).await?;
                    c.execute(
                        "UPDATE mailboxes SET name = $2 || CAST(id AS TEXT) WHERE id = $1",
                        params![id.0, "\u{1}renaming "],
                    )
                    .await?;
                }
                for (id, name) in &renames {
                    let taken = c
                        .query_one(
                            "SELECT count(*) FROM mailboxes WHERE account_id = $1 AND name = $2",
                            params![account.0, name.as_str()],
                        )
                        .await?
                        .int(0)?
                        > 0;
                    if taken {
                        return Err(StoreError::AlreadyExists(format!("mailbox {name:?}")));
                    }
                    c.execute(
                        "UPDATE mailboxes SET name = $2 WHERE id = $1",
                        params![id.0, name.as_str()],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn subscriptions(&self, account: PrincipalId) -> Result<Vec<String>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name",
                    params![account.0],
                )
                .await?
                .into_iter()
                .map(|mut r| r.text(0))
                .collect()
            })
        })
        .await
    }

    async fn set_subscription(&self, account: PrincipalId, name: &str, on: bool) -> Result<()> {
        let name = name.to_owned();
        self.write_one(move |c| {
            Box::pin(async move {
                let sql = if on {
                    "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                } else {
                    "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2"
                };
                c.execute(sql, params![account.0, name]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn claim_recent(&self, account: PrincipalId, mailbox: MailboxId) -> Result<(u32, u32)> {
        self.write_one(move |c| {
            Box::pin(async move {
                let row = match c.dialect() {
                    // One statement: the old mark is read under the row lock
                    // the update takes, so two sessions never claim the same UIDs.
                    Dialect::Postgres => {
                        c.query_opt(
                            "UPDATE mailboxes m SET recent_uid = GREATEST(m.recent_uid, m.uid_next)
                             FROM (SELECT id, recent_uid FROM mailboxes
                                   WHERE id = $1 AND account_id = $2 FOR UPDATE) old
                             WHERE m.id = old.id
                             RETURNING old.recent_uid, m.recent_uid",
                            params![mailbox.0, account.0],
                        )
                        .await?
                    }
                    // SQLite's RETURNING cannot name the old row, and its
                    // write lock already makes read-then-update atomic.
                    Dialect::Sqlite => {
                        let old = c
                            .query_opt(
                                "SELECT recent_uid FROM mailboxes WHERE id = $1 AND account_id = $2",
                                params![mailbox.0, account.0],
                            )
                            .await?
                            .ok_or_else(|| no_mailbox(mailbox))?
                            .int(0)?;
                        let end = c
                            .query_one(
                                "UPDATE mailboxes SET recent_uid = max(recent_uid, uid_next)
                                 WHERE id = $1 RETURNING recent_uid",
                                params![mailbox.0],
                            )
                            .await?
                            .u32(0)?;
                        return Ok((old as u32, end));
                    }
                }
                .ok_or_else(|| no_mailbox(mailbox))?;
                Ok((row.u32(0)?, row.u32(1)?))
            })
        })
        .await
    }

    async fn find_by_message_id(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        message_id: &str,
        since: i64,
    ) -> Result<Option<u32>> {
        let message_id = message_id.to_owned();
        self.read(Size::Few, move |c| {
            let message_id = message_id.clone();
            Box::pin(async move {
                c.query_opt(
                    "SELECT mm.uid FROM messages m
                     JOIN mailbox_messages mm ON mm.message_id = m.id AND mm.mailbox_id = $1
                     WHERE m.account_id = $4
                       AND m.message_id_header = $2 AND m.received_at >= $3
                     ORDER BY mm.uid DESC LIMIT 1",
                    params![mailbox.0, message_id, since, account.0],
                )
                .await?
                .map(|r| r.u32(0))
                .transpose()
            })
        })
        .await
    }

    async fn delete_mailbox(&self, account: PrincipalId, id: MailboxId) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                mailbox_in(c, account, id, true).await?;
                let messages: Vec<i64> = c
                    .query(
                        "DELETE FROM mailbox_messages WHERE mailbox_id = $1 RETURNING message_id",
                        params![id.0],
                    )
                    .await?
                    .iter()
                    .map(|r| r.int(0))
                    .collect::<Result<_>>()?;
                super::messages::release_orphan_messages(c, &messages).await?;
                c.execute(
                    "DELETE FROM changes WHERE collection_kind = 'mailbox' AND collection_id = $1",
                    params![id.0],
                )
                .await?;
                c.execute("DELETE FROM mailboxes WHERE id = $1", params![id.0])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn mailbox_status(
        &self,
        account: PrincipalId,
        id: MailboxId,
    ) -> Result<(Mailbox, MailboxStatus)> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                let mut r = c
                    .query_opt(
                        &format!(
                            "SELECT {MAILBOX_COLUMNS}, message_count, unseen_count, deleted_count, total_size,
                                    (SELECT count(*) FROM mailbox_messages mm
                                     WHERE mm.mailbox_id = mailboxes.id AND mm.uid >= mailboxes.recent_uid)
                             FROM mailboxes WHERE id = $1 AND account_id = $2"
                        ),
                        params![id.0, account.0],
                    )
                    .await?
                    .ok_or_else(|| no_mailbox(id))?;
                let status = MailboxStatus {
                    messages: r.uint(7)?,
                    unseen: r.uint(8)?,
                    deleted: r.uint(9)?,
                    size: r.uint(10)?,
                    recent: r.uint(11)?,
                };
                Ok((mailbox_from(&mut r)?, status))
            })
        })
        .await
    }
}
