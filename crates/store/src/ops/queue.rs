//! The outbound queue: queued messages, their recipients' delivery state
//! and the leases that let several workers (and nodes) share it.

use async_trait::async_trait;

use crate::sql::{Backend, Conn, Dialect, Size, SqlStore, Value, params};
use crate::*;

/// The outbound queue.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Puts a message on the outbound queue (taking a reference on its blob).
    async fn enqueue(&self, new: NewQueued) -> Result<QueueId>;
    /// Every queued message with all of its recipients, oldest first.
    async fn queue_list(&self) -> Result<Vec<QueueEntry>>;
    /// One queued message.
    async fn queue_get(&self, id: QueueId) -> Result<Option<QueueEntry>>;
    /// Claims up to `limit` messages that have recipients due at `now` (or
    /// whose earlier attempt's lease ran out, after a crash): those recipients
    /// are marked attempting until `lease_until` and returned; others are left out.
    async fn queue_claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>>;
    /// Records the outcome of an attempt for one recipient.
    async fn queue_record(&self, recipient: i64, outcome: QueueOutcome) -> Result<()>;
    /// Removes messages whose recipients are all delivered or failed, releasing their blobs.
    async fn queue_collect_finished(&self) -> Result<Vec<QueueId>>;
    /// Makes every unfinished recipient of a message due now.
    async fn queue_retry_now(&self, id: QueueId) -> Result<()>;
    /// Removes a message from the queue without delivering it.
    async fn queue_remove(&self, id: QueueId) -> Result<()>;
}

/// The lower-case domain of an address (empty when it has none).
fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

fn not_queued(id: QueueId) -> StoreError {
    StoreError::NotFound {
        kind: "queued message",
        name: id.to_string(),
    }
}

/// Queued messages matching `filter`, each with its recipients.
async fn load_queue(c: &mut dyn Conn, filter: &str, params: &[Value]) -> Result<Vec<QueueEntry>> {
    let rows = c
        .query(
            &format!(
                "SELECT q.id, q.blob_hash, q.size, q.sender, q.owner_id, q.created_at,
                        r.id, r.address, r.domain, r.status, r.attempts, r.next_attempt_at,
                        r.last_error, r.delay_notified, q.dsn_ret_full, q.dsn_envid, r.notify, r.orcpt
                 FROM queue q JOIN queue_recipients r ON r.queue_id = q.id
                 WHERE {filter} ORDER BY q.id, r.id"
            ),
            params,
        )
        .await?;
    let mut out: Vec<QueueEntry> = Vec::new();
    for mut r in rows {
        let id = r.int(0)?;
        if out.last().is_none_or(|e| e.id.0 != id) {
            out.push(QueueEntry {
                id: QueueId(id),
                blob: BlobHash::from_hex(r.str(1)?)?,
                size: r.uint(2)?,
                sender: r.text(3)?,
                owner: r.opt_int(4)?.map(PrincipalId),
                created_at: r.int(5)?,
                dsn: DsnRequest {
                    ret_full: r.opt_flag(14)?,
                    envid: r.opt_text(15)?,
                },
                recipients: Vec::new(),
            });
        }
        let entry = out.last_mut().expect("pushed above");
        entry.recipients.push(QueuedRecipient {
            id: r.int(6)?,
            address: r.text(7)?,
            domain: r.text(8)?,
            status: DeliveryStatus::parse(r.str(9)?)?,
            attempts: r.u32(10)?,
            next_attempt_at: r.int(11)?,
            last_error: r.opt_text(12)?,
            delay_notified: r.flag(13)?,
            notify: r.int(16)?.clamp(0, 255) as u8,
            orcpt: r.opt_text(17)?,
        });
    }
    Ok(out)
}

/// Releases one reference on a blob.
async fn release_blob(c: &mut dyn Conn, hash: &str) -> Result<()> {
    c.execute(
        "UPDATE blobs SET refcount = refcount - 1 WHERE hash = $1",
        params![hash],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> QueueStore for SqlStore<B> {
    async fn enqueue(&self, new: NewQueued) -> Result<QueueId> {
        self.write(move |c| {
            Box::pin(async move {
                c.name_blob(new.blob, new.size).await?;
                let now = now_millis();
                let id = c
                    .query_one(
                        "INSERT INTO queue (blob_hash, size, sender, owner_id, created_at, dsn_ret_full, dsn_envid)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                        params![
                            new.blob.to_hex(),
                            new.size,
                            new.sender.as_str(),
                            new.owner.map(|o| o.0),
                            now,
                            new.dsn.ret_full,
                            new.dsn.envid.as_deref(),
                        ],
                    )
                    .await?
                    .int(0)?;
                for rcpt in &new.recipients {
                    c.execute(
                        "INSERT INTO queue_recipients (queue_id, address, domain, next_attempt_at, notify, orcpt)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        params![
                            id,
                            rcpt.address.as_str(),
                            domain_of(&rcpt.address),
                            now,
                            i64::from(rcpt.notify),
                            rcpt.orcpt.as_deref(),
                        ],
                    )
                    .await?;
                }
                Ok(QueueId(id))
            })
        })
        .await
    }

    async fn queue_list(&self) -> Result<Vec<QueueEntry>> {
        self.read(Size::Many, |c| {
            Box::pin(async move { load_queue(c, "1 = 1", &[]).await })
        })
        .await
    }

    async fn queue_get(&self, id: QueueId) -> Result<Option<QueueEntry>> {
        // One row per recipient: possibly many.
        self.read(Size::Many, move |c| {
            Box::pin(async move { Ok(load_queue(c, "q.id = $1", params![id.0]).await?.pop()) })
        })
        .await
    }

    async fn queue_claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>> {
        self.write(move |c| {
            Box::pin(async move {
                // SKIP LOCKED: nodes sharing a PostgreSQL database never claim
                // the same recipient (SQLite has one writer anyway).
                let skip_locked = match c.dialect() {
                    Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
                    Dialect::Sqlite => "",
                };
                let mut ids: Vec<i64> = c
                    .query(
                        &format!(
                            "UPDATE queue_recipients SET status = 'attempting', lease_until = $2,
                                 attempts = attempts + 1
                             WHERE id IN (
                                 SELECT id FROM queue_recipients
                                 WHERE queue_id IN (
                                     SELECT DISTINCT queue_id FROM queue_recipients
                                     WHERE (status = 'pending' AND next_attempt_at <= $1)
                                        OR (status = 'attempting' AND lease_until <= $1)
                                     ORDER BY queue_id LIMIT $3)
                                 AND ((status = 'pending' AND next_attempt_at <= $1)
                                      OR (status = 'attempting' AND lease_until <= $1))
                                 {skip_locked})
                             RETURNING queue_id"
                        ),
                        params![now, lease_until, limit],
                    )
                    .await?
                    .iter()
                    .map(|r| r.int(0))
                    .collect::<Result<_>>()?;
                ids.sort_unstable();
                ids.dedup();
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(mut e) = load_queue(c, "q.id = $1", params![id]).await?.pop() {
                        e.recipients
                            .retain(|r| r.status == DeliveryStatus::Attempting);
                        out.push(e);
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn queue_record(&self, recipient: i64, outcome: QueueOutcome) -> Result<()> {
        self.write_one(move |c| {
            Box::pin(async move {
                match outcome {
                    QueueOutcome::Delivered => {
                        c.execute(
                            "UPDATE queue_recipients SET status = 'delivered', last_error = NULL WHERE id = $1",
                            params![recipient],
                        )
                        .await?
                    }
                    QueueOutcome::Retry { at, error } => {
                        c.execute(
                            "UPDATE queue_recipients SET status = 'pending', next_attempt_at = $2,
                                 last_error = $3 WHERE id = $1",
                            params![recipient, at, error],
                        )
                        .await?
                    }
                    QueueOutcome::Failed { error } => {
                        c.execute(
                            "UPDATE queue_recipients SET status = 'failed', last_error = $2 WHERE id = $1",
                            params![recipient, error],
                        )
                        .await?
                    }
                    QueueOutcome::DelayNotified => {
                        c.execute(
                            "UPDATE queue_recipients SET delay_notified = 1 WHERE id = $1",
                            params![recipient],
                        )
                        .await?
                    }
                };
                Ok(())
            })
        })
        .await
    }

    async fn queue_collect_finished(&self) -> Result<Vec<QueueId>> {
        self.write(|c| {
            Box::pin(async move {
                let done = c
                    .query(
                        "DELETE FROM queue WHERE NOT EXISTS (
                             SELECT 1 FROM queue_recipients r
                             WHERE r.queue_id = queue.id AND r.status IN ('pending', 'attempting'))
                         RETURNING id, blob_hash",
                        &[],
                    )
                    .await?;
                let mut ids = Vec::with_capacity(done.len());
                for row in &done {
                    release_blob(c, row.str(1)?).await?;
                    ids.push(QueueId(row.int(0)?));
                }
                Ok(ids)
            })
        })
        .await
    }

    async fn queue_retry_now(&self, id: QueueId) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                if c.query_opt("SELECT 1 FROM queue WHERE id = $1", params![id.0])
                    .await?
                    .is_none()
                {
                    return Err(not_queued(id));
                }
                c.execute(
                    "UPDATE queue_recipients SET next_attempt_at = $2
                     WHERE queue_id = $1 AND status = 'pending'",
                    params![id.0, now_millis()],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn queue_remove(&self, id: QueueId) -> Result<()> {
        self.write(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "DELETE FROM queue WHERE id = $1 RETURNING blob_hash",
                        params![id.0],
                    )
                    .await?
                    .ok_or_else(|| not_queued(id))?;
                release_blob(c, row.str(0)?).await
            })
        })
        .await
    }
}
