//! Recipient domains' MTA-STS policies (RFC 8461 §5): what the outbound
//! queue learnt about other domains, not user data.

use async_trait::async_trait;

use crate::sql::{Backend, Size, SqlStore, params};
use crate::*;

/// Cached MTA-STS policies of recipient domains.
#[async_trait]
pub trait StsPolicyStore: Send + Sync + 'static {
    /// The stored policy of a domain (lower case), expired or not.
    async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>>;
    /// Stores a domain's policy in place of the one before, and drops every
    /// policy that expired before this one was fetched.
    async fn put_sts_policy(&self, policy: StsPolicyRecord) -> Result<()>;
}

/// MX patterns as one column: one per line (a policy line holds one).
fn encode_mx(mx: &[String]) -> Result<String> {
    if mx.iter().any(|m| m.contains(['\r', '\n'])) {
        return Err(StoreError::Conflict(
            "an MTA-STS mx pattern cannot hold a line break".into(),
        ));
    }
    Ok(mx.join("\n"))
}

fn decode_mx(column: &str) -> Vec<String> {
    column
        .split('\n')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

#[async_trait]
impl<B: Backend> StsPolicyStore for SqlStore<B> {
    async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>> {
        let domain = domain.to_owned();
        self.read(Size::Few, move |c| {
            let domain = domain.clone();
            Box::pin(async move {
                let Some(mut r) = c
                    .query_opt(
                        "SELECT policy_id, mode, mx, max_age, fetched_at, expires_at
                         FROM mta_sts_policies WHERE domain = $1",
                        params![domain.as_str()],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(StsPolicyRecord {
                    domain,
                    policy_id: r.text(0)?,
                    mode: r.text(1)?,
                    mx: decode_mx(r.str(2)?),
                    max_age: r.uint(3)?,
                    fetched_at: r.int(4)?,
                    expires_at: r.int(5)?,
                }))
            })
        })
        .await
    }

    async fn put_sts_policy(&self, policy: StsPolicyRecord) -> Result<()> {
        let mx = encode_mx(&policy.mx)?;
        self.write(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM mta_sts_policies WHERE expires_at < $1",
                    params![policy.fetched_at],
                )
                .await?;
                // Two nodes may store a policy of the same domain at once: the
                // upsert lets the later one win instead of failing.
                c.execute(
                    "INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age, fetched_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id,
                         mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age,
                         fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
                    params![
                        policy.domain,
                        policy.policy_id,
                        policy.mode,
                        mx,
                        policy.max_age,
                        policy.fetched_at,
                        policy.expires_at,
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
