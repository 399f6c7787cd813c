//! `[store]`: which store backend, and how many connections.

use anyhow::bail;
use serde::Deserialize;

/// Which store backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded SQLite store in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` or `postgres`.
    pub backend: Backend,
    /// PostgreSQL URL, for `backend = "postgres"`.
    pub url: Option<String>,
    /// Database connections kept open.
    pub pool_size: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: Backend::Sqlite,
            url: None,
            pool_size: 8,
        }
    }
}

impl StoreSection {
    /// Checks the pool size and that `url` goes with the backend.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.pool_size == 0 || self.pool_size > 1000 {
            bail!("store.pool_size = {}: expected 1 to 1000", self.pool_size);
        }
        match (self.backend, &self.url) {
            (Backend::Postgres, None) => bail!(
                "store.url is missing: backend = \"postgres\" needs a URL such as postgres://rampart:secret@db.example.org/rampart"
            ),
            (Backend::Sqlite, Some(_)) => bail!(
                "store.url is set but store.backend is \"sqlite\": set backend = \"postgres\" or remove url"
            ),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_pool_size_zero() {
        let s = StoreSection {
            pool_size: 0,
            ..StoreSection::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert_eq!(e, "store.pool_size = 0: expected 1 to 1000");
    }

    #[test]
    fn refuses_a_url_for_sqlite() {
        let s = StoreSection {
            url: Some("postgres://db/rampart".into()),
            ..StoreSection::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("store.url is set but store.backend is \"sqlite\""),
            "{e}"
        );
    }
}
