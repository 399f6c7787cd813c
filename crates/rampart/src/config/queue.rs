//! `[queue]` and `[relay]`: outbound delivery timing and fixed next hops.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

/// `[queue]`: outbound delivery timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// First retry delay in seconds; doubles with each attempt.
    pub retry_base_seconds: u64,
    /// Longest delay between attempts in seconds.
    pub retry_max_seconds: u64,
    /// Seconds a message may stay queued before it bounces.
    pub lifetime_seconds: u64,
    /// Seconds after which the sender hears that delivery is delayed.
    pub delay_notice_seconds: u64,
    /// Seconds between queue checks when nothing new arrives.
    pub poll_interval_seconds: u64,
    /// Network timeout per delivery step in seconds.
    pub io_timeout_seconds: u64,
    /// Apply recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// Seconds one fetch of an MTA-STS policy may take (per address of the policy host).
    pub mta_sts_fetch_timeout_seconds: u64,
    /// Seconds after a failed MTA-STS policy fetch before the same policy id is fetched again.
    pub mta_sts_fetch_retry_seconds: u64,
    /// PEM certificate(s) trusted besides the system's roots when TLS must verify (MTA-STS).
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for QueueSection {
    fn default() -> Self {
        let q = rampart_smtp::queue::QueueConfig::new("localhost");
        QueueSection {
            retry_base_seconds: q.retry_base.as_secs(),
            retry_max_seconds: q.retry_max.as_secs(),
            lifetime_seconds: q.lifetime.as_secs(),
            delay_notice_seconds: q.delay_notice_after.as_secs(),
            poll_interval_seconds: q.poll_interval.as_secs(),
            io_timeout_seconds: q.io_timeout.as_secs(),
            mta_sts: q.mta_sts,
            mta_sts_fetch_timeout_seconds: q.mta_sts_fetch_timeout.as_secs(),
            mta_sts_fetch_retry_seconds: q.mta_sts_fetch_retry.as_secs(),
            tls_ca_file: None,
        }
    }
}

impl QueueSection {
    /// Checks the MTA-STS fetch timings and that no retry timing is zero.
    pub fn validate(&self) -> anyhow::Result<()> {
        super::check_ranges(&[
            (
                "queue.mta_sts_fetch_timeout_seconds",
                self.mta_sts_fetch_timeout_seconds,
                1,
                600,
            ),
            (
                "queue.mta_sts_fetch_retry_seconds",
                self.mta_sts_fetch_retry_seconds,
                0,
                86_400,
            ),
        ])?;
        for (key, value) in [
            ("queue.retry_base_seconds", self.retry_base_seconds),
            ("queue.retry_max_seconds", self.retry_max_seconds),
            ("queue.poll_interval_seconds", self.poll_interval_seconds),
            ("queue.io_timeout_seconds", self.io_timeout_seconds),
        ] {
            if value == 0 {
                bail!("{key} = 0: expected at least 1");
            }
        }
        Ok(())
    }
}

/// `[relay]`: fixed next hops instead of MX lookup.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    /// `"host:port"` that takes all outbound mail not matched by a route.
    pub smarthost: Option<String>,
    /// User name for AUTH at the smarthost.
    pub smarthost_user: Option<String>,
    /// Password for AUTH at the smarthost (sent only over TLS).
    pub smarthost_password: Option<String>,
    /// PEM file of the CA (or certificate) the smarthost's certificate must chain to;
    /// the system's trusted roots when unset.
    pub smarthost_ca_file: Option<PathBuf>,
    /// Per-domain next hops: `"example.net" = "host:port"`.
    pub routes: BTreeMap<String, String>,
}

/// Reads a `"host:port"` next hop; `key` names it in the error.
pub(super) fn parse_route(key: &str, value: &str) -> anyhow::Result<rampart_smtp::queue::Route> {
    let (host, port) = value
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{key} = {value:?}: expected \"host:port\", e.g. \"smtp.example.net:25\""
            )
        })?;
    Ok(rampart_smtp::queue::Route {
        host: host.to_owned(),
        port,
        auth: None,
        verified_tls: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_zero_retry_delay() {
        let q = QueueSection {
            retry_base_seconds: 0,
            ..QueueSection::default()
        };
        let e = q.validate().unwrap_err().to_string();
        assert_eq!(e, "queue.retry_base_seconds = 0: expected at least 1");
    }

    #[test]
    fn refuses_a_slow_mta_sts_fetch() {
        let q = QueueSection {
            mta_sts_fetch_timeout_seconds: 601,
            ..QueueSection::default()
        };
        let e = q.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "queue.mta_sts_fetch_timeout_seconds = 601: expected 1 to 600"
        );
    }

    #[test]
    fn routes_need_a_port() {
        let e = parse_route("relay.smarthost", "smtp.example.net")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "relay.smarthost = \"smtp.example.net\": expected \"host:port\", e.g. \"smtp.example.net:25\""
        );
        let r = parse_route("relay.smarthost", "[::1]:2525").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 2525));
    }
}
