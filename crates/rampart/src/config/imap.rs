//! `[imap]`: limits and timeouts of IMAP sessions.

use serde::Deserialize;

/// `[imap]`: limits and timeouts of IMAP sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapSection {
    /// Largest command in bytes, literals included (APPEND's message excepted).
    pub max_command_bytes: usize,
    /// Most ranges in one sequence set.
    pub max_sequence_ranges: usize,
    /// Deepest nesting of search criteria.
    pub max_search_depth: usize,
    /// Most search keys in one command.
    pub max_search_keys: usize,
    /// Seconds a logged-in client may stay silent (IDLE included).
    pub idle_timeout_seconds: u64,
    /// Seconds a client has to log in.
    pub login_timeout_seconds: u64,
    /// Seconds between IDLE's own checks for changes nobody announced.
    pub idle_poll_seconds: u64,
    /// Seconds a response may wait for a client that reads nothing before
    /// the connection is closed.
    pub write_timeout_seconds: u64,
    /// Most simultaneous sessions per account.
    pub max_connections_per_user: usize,
    /// Most simultaneous connections per client address.
    pub max_connections_per_address: usize,
    /// Consecutive bad commands before the connection is closed.
    pub max_bad_commands: usize,
    /// Allow LOGIN without TLS for clients on loopback (local tools).
    pub auth_without_tls_on_loopback: bool,
}

impl Default for ImapSection {
    fn default() -> Self {
        let d = rampart_imap::ImapConfig::new("localhost");
        ImapSection {
            max_command_bytes: d.frame.max_command_bytes,
            max_sequence_ranges: d.command.max_sequence_ranges,
            max_search_depth: d.command.max_search_depth,
            max_search_keys: d.command.max_search_keys,
            idle_timeout_seconds: d.idle_timeout.as_secs(),
            login_timeout_seconds: d.login_timeout.as_secs(),
            idle_poll_seconds: d.idle_poll.as_secs(),
            write_timeout_seconds: d.write_timeout.as_secs(),
            max_connections_per_user: d.max_connections_per_user,
            max_connections_per_address: d.max_connections_per_address,
            max_bad_commands: d.max_bad_commands,
            auth_without_tls_on_loopback: false,
        }
    }
}

impl ImapSection {
    /// Checks each limit and timeout against its range.
    pub fn validate(&self) -> anyhow::Result<()> {
        super::check_ranges(&[
            (
                "imap.max_command_bytes",
                self.max_command_bytes as u64,
                1024,
                16 << 20,
            ),
            (
                "imap.max_sequence_ranges",
                self.max_sequence_ranges as u64,
                1,
                1_000_000,
            ),
            ("imap.max_search_depth", self.max_search_depth as u64, 1, 64),
            (
                "imap.max_search_keys",
                self.max_search_keys as u64,
                1,
                10_000,
            ),
            (
                "imap.idle_timeout_seconds",
                self.idle_timeout_seconds,
                60,
                86_400,
            ),
            ("imap.idle_poll_seconds", self.idle_poll_seconds, 1, 86_400),
            (
                "imap.login_timeout_seconds",
                self.login_timeout_seconds,
                1,
                3600,
            ),
            (
                "imap.write_timeout_seconds",
                self.write_timeout_seconds,
                1,
                3600,
            ),
            (
                "imap.max_connections_per_user",
                self.max_connections_per_user as u64,
                1,
                100_000,
            ),
            (
                "imap.max_connections_per_address",
                self.max_connections_per_address as u64,
                1,
                1_000_000,
            ),
            (
                "imap.max_bad_commands",
                self.max_bad_commands as u64,
                1,
                1000,
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_short_idle_timeout() {
        let i = ImapSection {
            idle_timeout_seconds: 59,
            ..ImapSection::default()
        };
        let e = i.validate().unwrap_err().to_string();
        assert_eq!(e, "imap.idle_timeout_seconds = 59: expected 60 to 86400");
        assert!(ImapSection::default().validate().is_ok());
    }
}
