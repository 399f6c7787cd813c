//! Client addresses banned for failed logins: kept across restarts and
//! shared by every node of one database (on PostgreSQL a trigger announces
//! each new ban; see `postgres/announcements.rs`).

use async_trait::async_trait;

use crate::sql::{Backend, Size, SqlStore, params};
use crate::*;

/// Client addresses banned for failed logins.
#[async_trait]
pub trait LoginBanStore: Send + Sync + 'static {
    /// Bans `client` (an IPv4 address, or an IPv6 /64 as its first address)
    /// until `until` (Unix milliseconds), and forgets bans that ran out.
    async fn put_login_ban(&self, client: &str, until: i64) -> Result<()>;
    /// The bans that last beyond `now` (Unix milliseconds).
    async fn login_bans(&self, now: i64) -> Result<Vec<(String, i64)>>;
}

#[async_trait]
impl<B: Backend> LoginBanStore for SqlStore<B> {
    async fn put_login_ban(&self, client: &str, until: i64) -> Result<()> {
        let client = client.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM login_bans WHERE until <= $1",
                    params![now_millis()],
                )
                .await?;
                c.execute(
                    "INSERT INTO login_bans (client, until) VALUES ($1, $2)
                     ON CONFLICT (client) DO UPDATE SET until = CASE
                         WHEN excluded.until > login_bans.until THEN excluded.until
                         ELSE login_bans.until END",
                    params![client, until],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn login_bans(&self, now: i64) -> Result<Vec<(String, i64)>> {
        self.read(Size::Many, move |c| {
            Box::pin(async move {
                c.query(
                    "SELECT client, until FROM login_bans WHERE until > $1",
                    params![now],
                )
                .await?
                .into_iter()
                .map(|mut r| Ok((r.text(0)?, r.int(1)?)))
                .collect()
            })
        })
        .await
    }
}
