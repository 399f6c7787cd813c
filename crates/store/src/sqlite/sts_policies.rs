//! MTA-STS policies of recipient domains in SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::{Result, StsPolicyRecord, StsPolicyStore, decode_mx, encode_mx};

#[async_trait]
impl StsPolicyStore for SqliteStore {
    async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>> {
        let domain = domain.to_owned();
        self.with_conn_small(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT policy_id, mode, mx, max_age, fetched_at, expires_at
                 FROM mta_sts_policies WHERE domain = ?1",
            )?;
            Ok(stmt
                .query_row(params![domain], |r| {
                    Ok(StsPolicyRecord {
                        domain: domain.clone(),
                        policy_id: r.get(0)?,
                        mode: r.get(1)?,
                        mx: decode_mx(&r.get::<_, String>(2)?),
                        max_age: r.get::<_, i64>(3)?.max(0) as u64,
                        fetched_at: r.get(4)?,
                        expires_at: r.get(5)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn put_sts_policy(&self, policy: StsPolicyRecord) -> Result<()> {
        let mx = encode_mx(&policy.mx)?;
        let max_age = i64::try_from(policy.max_age).unwrap_or(i64::MAX);
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM mta_sts_policies WHERE expires_at < ?1",
                params![policy.fetched_at],
            )?;
            tx.execute(
                "INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age, fetched_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id,
                     mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age,
                     fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
                params![
                    policy.domain,
                    policy.policy_id,
                    policy.mode,
                    mx,
                    max_age,
                    policy.fetched_at,
                    policy.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }
}
