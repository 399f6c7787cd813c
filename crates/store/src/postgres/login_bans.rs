//! Failed-login bans in PostgreSQL, shared by every node: a trigger
//! announces each new ban (see `announcements`).

use async_trait::async_trait;

use super::PostgresStore;
use crate::{LoginBanStore, Result};

#[async_trait]
impl LoginBanStore for PostgresStore {
    async fn put_login_ban(&self, client: &str, until: i64) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "DELETE FROM login_bans WHERE until <= $1",
            &[&crate::now_millis()],
        )
        .await?;
        c.execute(
            "INSERT INTO login_bans (client, until) VALUES ($1, $2)
             ON CONFLICT (client) DO UPDATE SET until = greatest(login_bans.until, excluded.until)",
            &[&client, &until],
        )
        .await?;
        Ok(())
    }

    async fn login_bans(&self, now: i64) -> Result<Vec<(String, i64)>> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT client, until FROM login_bans WHERE until > $1",
            &[&now],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }
}
