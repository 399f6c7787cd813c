//! `[smtp]`: limits and timeouts of SMTP sessions.

use serde::Deserialize;

/// `[smtp]`: limits and timeouts of SMTP sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Longest command line in bytes, CRLF included.
    pub max_command_line_bytes: usize,
    /// Longest line in a message body in bytes.
    pub max_data_line_bytes: usize,
    /// Seconds a connection may stay idle.
    pub idle_timeout_seconds: u64,
    /// Seconds a session may last in all.
    pub session_timeout_seconds: u64,
    /// Seconds a reply may wait for a client that reads nothing before the
    /// connection is closed.
    pub write_timeout_seconds: u64,
    /// Bad commands before the session is closed.
    pub max_errors: usize,
    /// Allow AUTH on submission without TLS for loopback clients (for local tools and tests).
    pub auth_without_tls_on_loopback: bool,
    /// Milliseconds the MX holds its greeting back; a client that talks
    /// meanwhile is dropped (0: greet at once).
    pub pregreet_wait_ms: u64,
    /// Greet loopback clients at once.
    pub pregreet_skip_loopback: bool,
}

impl Default for SmtpSection {
    fn default() -> Self {
        let d = rampart_smtp::SmtpConfig::new("localhost", rampart_smtp::Mode::Mx);
        SmtpSection {
            max_recipients: d.max_recipients,
            max_command_line_bytes: d.max_command_line,
            max_data_line_bytes: d.max_data_line,
            idle_timeout_seconds: d.idle_timeout.as_secs(),
            session_timeout_seconds: d.session_timeout.as_secs(),
            write_timeout_seconds: d.write_timeout.as_secs(),
            max_errors: d.max_errors,
            auth_without_tls_on_loopback: false,
            pregreet_wait_ms: d.pregreet_wait.as_millis() as u64,
            pregreet_skip_loopback: d.pregreet_skip_loopback,
        }
    }
}

impl SmtpSection {
    /// Checks each limit and timeout against its range.
    pub fn validate(&self) -> anyhow::Result<()> {
        super::check_ranges(&[
            (
                "smtp.max_recipients",
                self.max_recipients as u64,
                1,
                100_000,
            ),
            (
                "smtp.max_command_line_bytes",
                self.max_command_line_bytes as u64,
                512,
                1 << 20,
            ),
            (
                "smtp.max_data_line_bytes",
                self.max_data_line_bytes as u64,
                1000,
                1 << 24,
            ),
            (
                "smtp.idle_timeout_seconds",
                self.idle_timeout_seconds,
                1,
                86_400,
            ),
            (
                "smtp.session_timeout_seconds",
                self.session_timeout_seconds,
                1,
                7 * 86_400,
            ),
            (
                "smtp.write_timeout_seconds",
                self.write_timeout_seconds,
                1,
                3600,
            ),
            ("smtp.max_errors", self.max_errors as u64, 1, 1000),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_short_command_line() {
        let s = SmtpSection {
            max_command_line_bytes: 511,
            ..SmtpSection::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "smtp.max_command_line_bytes = 511: expected 512 to 1048576"
        );
        assert!(SmtpSection::default().validate().is_ok());
    }
}
