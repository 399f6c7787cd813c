//! Failed-login bans in SQLite: one process writes them, and a restart
//! keeps them.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::{LoginBanStore, Result};

#[async_trait]
impl LoginBanStore for SqliteStore {
    async fn put_login_ban(&self, client: &str, until: i64) -> Result<()> {
        let client = client.to_owned();
        let now = crate::now_millis();
        self.write(move |tx| {
            tx.execute("DELETE FROM login_bans WHERE until <= ?1", params![now])?;
            tx.execute(
                "INSERT INTO login_bans (client, until) VALUES (?1, ?2)
                 ON CONFLICT (client) DO UPDATE SET until = max(until, excluded.until)",
                params![client, until],
            )?;
            Ok(())
        })
        .await
    }

    async fn login_bans(&self, now: i64) -> Result<Vec<(String, i64)>> {
        self.with_conn(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT client, until FROM login_bans WHERE until > ?1")?;
            let rows = stmt
                .query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}
