//! MTA-STS policies of recipient domains in PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use crate::{Result, StsPolicyRecord, StsPolicyStore, decode_mx, encode_mx};

#[async_trait]
impl StsPolicyStore for PostgresStore {
    async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "SELECT policy_id, mode, mx, max_age, fetched_at, expires_at
             FROM mta_sts_policies WHERE domain = $1",
            &[&domain],
        )
        .await?
        .map(|r| StsPolicyRecord {
            domain: domain.to_owned(),
            policy_id: r.get(0),
            mode: r.get(1),
            mx: decode_mx(r.get(2)),
            max_age: r.get::<_, i64>(3).max(0) as u64,
            fetched_at: r.get(4),
            expires_at: r.get(5),
        }))
    }

    async fn put_sts_policy(&self, policy: StsPolicyRecord) -> Result<()> {
        let mx = encode_mx(&policy.mx)?;
        let max_age = i64::try_from(policy.max_age).unwrap_or(i64::MAX);
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "DELETE FROM mta_sts_policies WHERE expires_at < $1",
            &[&policy.fetched_at],
        )
        .await?;
        // Two nodes may store a policy of the same domain at once: the upsert
        // lets the later one win instead of failing.
        tx.execute(
            "INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age, fetched_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id,
                 mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age,
                 fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
            &[
                &policy.domain,
                &policy.policy_id,
                &policy.mode,
                &mx,
                &max_age,
                &policy.fetched_at,
                &policy.expires_at,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
