//! `[security]`: failed-login throttling and bans, shared by all protocols.

use serde::Deserialize;

/// `[security]`: failed-login throttling and bans, shared by all protocols.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Failed logins from one address within the window that ban it.
    pub failed_logins_before_ban: u32,
    /// Seconds failed logins are remembered.
    pub failure_window_seconds: u64,
    /// Seconds a ban lasts.
    pub ban_seconds: u64,
    /// Delay added per recent failure, milliseconds.
    pub failure_delay_ms: u64,
    /// Longest delay, milliseconds.
    pub max_failure_delay_ms: u64,
}

impl Default for SecuritySection {
    fn default() -> Self {
        let g = rampart_core::GuardConfig::default();
        SecuritySection {
            failed_logins_before_ban: g.failures_before_ban,
            failure_window_seconds: g.window.as_secs(),
            ban_seconds: g.ban.as_secs(),
            failure_delay_ms: g.delay_per_failure.as_millis() as u64,
            max_failure_delay_ms: g.max_delay.as_millis() as u64,
        }
    }
}

impl SecuritySection {
    /// Checks the ban threshold and the failure window against their ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        super::check_ranges(&[
            (
                "security.failed_logins_before_ban",
                self.failed_logins_before_ban as u64,
                1,
                1_000_000,
            ),
            (
                "security.failure_window_seconds",
                self.failure_window_seconds,
                1,
                30 * 86_400,
            ),
        ])
    }

    /// The core's login guard.
    pub fn guard(&self) -> rampart_core::GuardConfig {
        rampart_core::GuardConfig {
            failures_before_ban: self.failed_logins_before_ban,
            window: std::time::Duration::from_secs(self.failure_window_seconds),
            ban: std::time::Duration::from_secs(self.ban_seconds),
            delay_per_failure: std::time::Duration::from_millis(self.failure_delay_ms),
            max_delay: std::time::Duration::from_millis(self.max_failure_delay_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_banning_after_zero_failures() {
        let s = SecuritySection {
            failed_logins_before_ban: 0,
            ..SecuritySection::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "security.failed_logins_before_ban = 0: expected 1 to 1000000"
        );
    }
}
