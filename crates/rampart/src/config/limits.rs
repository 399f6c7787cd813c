//! `[limits]`: sizes of messages, quotas, groups and the text index.

use anyhow::bail;
use rampart_core::CoreConfig;
use serde::Deserialize;

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest message accepted, bytes.
    pub max_message_bytes: u64,
    /// Quota of new users, bytes (0 = unlimited).
    pub default_quota_bytes: u64,
    /// How deep groups may nest.
    pub max_group_depth: usize,
    /// Bytes of a message's decoded header and body text each that the full-text index keeps.
    pub max_indexed_text_bytes: usize,
    /// How long a client's APPEND to Sent of a message the server filed
    /// there is answered with the filed copy, seconds (0 = never).
    pub sent_duplicate_window_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let c = CoreConfig::default();
        LimitsConfig {
            max_message_bytes: c.max_message_bytes,
            default_quota_bytes: c.default_quota_bytes,
            max_group_depth: c.max_group_depth,
            max_indexed_text_bytes: c.max_indexed_text_bytes,
            sent_duplicate_window_seconds: c.sent_duplicate_window.as_secs(),
        }
    }
}

impl LimitsConfig {
    /// Checks the message size, index size and group depth.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_message_bytes < 1024 {
            bail!(
                "limits.max_message_bytes = {}: expected at least 1024",
                self.max_message_bytes
            );
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_indexed_text_bytes) {
            bail!(
                "limits.max_indexed_text_bytes = {}: expected 1024 to 67108864",
                self.max_indexed_text_bytes
            );
        }
        if !(1..=64).contains(&self.max_group_depth) {
            bail!(
                "limits.max_group_depth = {}: expected 1 to 64",
                self.max_group_depth
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_tiny_message_limit() {
        let l = LimitsConfig {
            max_message_bytes: 1023,
            ..LimitsConfig::default()
        };
        let e = l.validate().unwrap_err().to_string();
        assert_eq!(e, "limits.max_message_bytes = 1023: expected at least 1024");
    }

    #[test]
    fn refuses_deep_groups() {
        let l = LimitsConfig {
            max_group_depth: 65,
            ..LimitsConfig::default()
        };
        let e = l.validate().unwrap_err().to_string();
        assert_eq!(e, "limits.max_group_depth = 65: expected 1 to 64");
    }
}
