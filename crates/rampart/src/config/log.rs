//! `[log]`: what the server logs.

use anyhow::bail;
use serde::Deserialize;

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `rampart=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl LogConfig {
    /// Checks that `level` is a filter tracing understands.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.level.parse::<tracing_subscriber::EnvFilter>().is_err() {
            bail!(
                "log.level = {:?}: expected a level such as \"info\" or a filter such as \"rampart=debug,info\"",
                self.level
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_filter_tracing_cannot_read() {
        let l = LogConfig {
            level: "rampart=loud".into(),
        };
        let e = l.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "log.level = \"rampart=loud\": expected a level such as \"info\" or a filter such as \"rampart=debug,info\""
        );
        assert!(LogConfig::default().validate().is_ok());
    }
}
