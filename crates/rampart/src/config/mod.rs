//! The TOML configuration file. Every key is documented in docs/config.md;
//! unknown keys and bad values stop start-up with a message naming the key.
//!
//! One submodule per `[section]` holds its struct, defaults and checks;
//! this module holds the whole, the checks that span sections, and the
//! conversions into the settings of the other crates.

mod auth;
mod dav;
mod dkim;
mod dns;
mod imap;
mod ledger;
mod limits;
mod listen;
mod log;
mod queue;
mod security;
mod server;
mod smtp;
mod store;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rampart_core::{CoreConfig, PasswordParams, Protocol};
use rampart_store::StoreConfig;
use serde::Deserialize;

pub use auth::AuthConfig;
pub use dav::DavSection;
pub use dkim::DkimSection;
pub use dns::{DnsSection, DnsSourceName};
pub use imap::ImapSection;
pub use ledger::LedgerSection;
pub use limits::LimitsConfig;
pub use listen::{ListenConfig, Service};
pub use log::LogConfig;
pub use queue::{QueueSection, RelaySection};
pub use security::SecuritySection;
pub use server::ServerConfig;
pub use smtp::SmtpSection;
pub use store::{Backend, StoreSection};
pub use tls::TlsConfig;

use queue::parse_route;
/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[listen]`
    pub listen: ListenConfig,
    /// `[tls]`
    pub tls: TlsConfig,
    /// `[store]`
    pub store: StoreSection,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[limits]`
    pub limits: LimitsConfig,
    /// `[smtp]`
    pub smtp: SmtpSection,
    /// `[imap]`
    pub imap: ImapSection,
    /// `[dav]`
    pub dav: DavSection,
    /// `[security]`
    pub security: SecuritySection,
    /// `[queue]`
    pub queue: QueueSection,
    /// `[relay]`
    pub relay: RelaySection,
    /// `[dkim]`
    pub dkim: DkimSection,
    /// `[dns]`
    pub dns: DnsSection,
    /// `[log]`
    pub log: LogConfig,
    /// `[ledger]`
    pub ledger: LedgerSection,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks each section, then what spans sections.
    fn validate(&self) -> anyhow::Result<()> {
        self.server.validate()?;
        self.store.validate()?;
        self.tls.validate()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.ledger.validate()?;
        self.imap.validate()?;
        self.dav.validate()?;
        self.smtp.validate()?;
        self.security.validate()?;
        self.queue.validate()?;
        // `[relay]` is checked by building the queue's settings, which also
        // reads the CA files of `[queue]` and `[relay]`.
        self.queue_config()?;
        self.dkim.validate()?;
        self.listen.validate()?;
        self.log.validate()?;
        Ok(())
    }

    /// Argon2 parameters from `[auth]`.
    pub fn password_params(&self) -> PasswordParams {
        self.auth.password_params()
    }

    /// The ledger's directory: beside the store, apart from the mail data.
    pub fn ledger_dir(&self) -> PathBuf {
        self.server.data_dir.join("ledger")
    }

    /// The ledger's settings.
    pub fn ledger_config(&self) -> rampart_ledger::LedgerConfig {
        let mut c = rampart_ledger::LedgerConfig::new(self.ledger_dir(), self.server.node());
        c.checkpoint_interval = Duration::from_secs(self.ledger.checkpoint_interval_seconds);
        c.retention = Duration::from_secs(self.ledger.retention_days * 86_400);
        c.segment_bytes = self.ledger.segment_mb * 1024 * 1024;
        c.witness_file = self.ledger.witness_file.clone();
        c
    }

    /// Where the core records accesses: the ledger, or (for measuring its
    /// cost only) the log.
    pub fn recorder(
        &self,
        on_checkpoint: Option<tokio::sync::mpsc::UnboundedSender<rampart_ledger::Checkpoint>>,
    ) -> anyhow::Result<Arc<dyn rampart_core::AccessRecorder>> {
        if !self.ledger.enabled {
            tracing::warn!(
                "[ledger] enabled = false: accesses are NOT recorded in the ledger (meant for benchmarks only)"
            );
            return Ok(Arc::new(rampart_core::LogRecorder));
        }
        let mut ledger_config = self.ledger_config();
        ledger_config.on_checkpoint = on_checkpoint;
        ledger_config.quiet_principal = Some(format!(
            "service:{}",
            rampart_core::ServiceRole::Witness.name()
        ));
        let ledger = rampart_ledger::Ledger::open(ledger_config).with_context(|| {
            format!("cannot open the ledger in {}", self.ledger_dir().display())
        })?;
        Ok(Arc::new(rampart_core::LedgerRecorder(Arc::new(ledger))))
    }

    /// The core's settings.
    pub fn core_config(&self) -> CoreConfig {
        // The loopback exceptions of [smtp] and [imap], enforced in core
        // for every password (rule R7).
        let mut plaintext_login_on_loopback = Vec::new();
        if self.smtp.auth_without_tls_on_loopback {
            plaintext_login_on_loopback.extend([Protocol::Smtp, Protocol::Submission]);
        }
        if self.imap.auth_without_tls_on_loopback {
            plaintext_login_on_loopback.push(Protocol::Imap);
        }
        CoreConfig {
            node: self.server.node(),
            passwords: self.password_params(),
            hash_threads: self.auth.hash_threads,
            default_quota_bytes: self.limits.default_quota_bytes,
            max_message_bytes: self.limits.max_message_bytes,
            max_group_depth: self.limits.max_group_depth,
            max_indexed_text_bytes: self.limits.max_indexed_text_bytes,
            sent_duplicate_window: Duration::from_secs(self.limits.sent_duplicate_window_seconds),
            plaintext_login_on_loopback,
            guard: self.security.guard(),
        }
    }

    /// Settings of the outbound queue worker.
    pub fn queue_config(&self) -> anyhow::Result<rampart_smtp::queue::QueueConfig> {
        let q = &self.queue;
        let mut routes = std::collections::BTreeMap::new();
        for (domain, target) in &self.relay.routes {
            let domain = rampart_core::normalize_domain(domain)
                .map_err(|e| anyhow::anyhow!("relay.routes: {e}"))?;
            routes.insert(
                domain.clone(),
                parse_route(&format!("relay.routes.\"{domain}\""), target)?,
            );
        }
        let r = &self.relay;
        let smarthost = match &r.smarthost {
            Some(s) => Some(rampart_smtp::queue::Route {
                auth: match (&r.smarthost_user, &r.smarthost_password) {
                    (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                    (None, None) => None,
                    _ => bail!("relay.smarthost_user and relay.smarthost_password go together"),
                },
                // A password goes only to a server whose certificate checks out.
                verified_tls: match &r.smarthost_user {
                    Some(_) => Some(crate::tls::verified_client(r.smarthost_ca_file.as_deref())?),
                    None => None,
                },
                ..parse_route("relay.smarthost", s)?
            }),
            None if r.smarthost_user.is_some() || r.smarthost_password.is_some() => {
                bail!("relay.smarthost_user/smarthost_password are set but relay.smarthost is not")
            }
            None => None,
        };
        Ok(rampart_smtp::queue::QueueConfig {
            hostname: self.server.hostname.clone(),
            routes,
            smarthost,
            retry_base: Duration::from_secs(q.retry_base_seconds),
            retry_max: Duration::from_secs(q.retry_max_seconds),
            lifetime: Duration::from_secs(q.lifetime_seconds),
            delay_notice_after: Duration::from_secs(q.delay_notice_seconds),
            poll_interval: Duration::from_secs(q.poll_interval_seconds),
            io_timeout: Duration::from_secs(q.io_timeout_seconds),
            batch: 32,
            static_dns: rampart_smtp::queue::StaticDns {
                only: self.dns.source == DnsSourceName::Static,
                mx: self
                    .dns
                    .mx
                    .iter()
                    .map(|(d, hosts)| (d.to_ascii_lowercase(), hosts.clone()))
                    .collect(),
                addresses: self
                    .dns
                    .a
                    .iter()
                    .map(|(h, ips)| (h.to_ascii_lowercase(), ips.clone()))
                    .collect(),
                txt: self
                    .dns
                    .txt
                    .iter()
                    .map(|(n, v)| (n.trim_end_matches('.').to_ascii_lowercase(), v.clone()))
                    .collect(),
            },
            verified_tls: Some(crate::tls::verified_client(q.tls_ca_file.as_deref())?),
            mta_sts: q.mta_sts,
            mta_sts_fetch_timeout: Duration::from_secs(q.mta_sts_fetch_timeout_seconds),
            mta_sts_fetch_retry: Duration::from_secs(q.mta_sts_fetch_retry_seconds),
            // Roles are handed out by `serve`, never read from a file.
            worker: None,
            reports: None,
        })
    }

    /// Settings of SMTP sessions in `mode`.
    pub fn smtp_config(&self, mode: rampart_smtp::Mode) -> rampart_smtp::SmtpConfig {
        let s = &self.smtp;
        rampart_smtp::SmtpConfig {
            hostname: self.server.hostname.clone(),
            mode,
            max_message_bytes: usize::try_from(self.limits.max_message_bytes).unwrap_or(usize::MAX),
            max_recipients: s.max_recipients,
            max_command_line: s.max_command_line_bytes,
            max_data_line: s.max_data_line_bytes,
            auth_without_tls_on_loopback: s.auth_without_tls_on_loopback,
            idle_timeout: Duration::from_secs(s.idle_timeout_seconds),
            session_timeout: Duration::from_secs(s.session_timeout_seconds),
            write_timeout: Duration::from_secs(s.write_timeout_seconds),
            max_errors: s.max_errors,
            verifier: None,
            inbound: None,
            signer: None,
            pregreet_wait: if mode == rampart_smtp::Mode::Mx {
                Duration::from_millis(s.pregreet_wait_ms)
            } else {
                Duration::ZERO
            },
            pregreet_skip_loopback: s.pregreet_skip_loopback,
            pregreet: Default::default(),
        }
    }

    /// Settings of IMAP sessions.
    pub fn imap_config(&self) -> rampart_imap::ImapConfig {
        let i = &self.imap;
        let mut c = rampart_imap::ImapConfig::new(&self.server.hostname);
        c.frame.max_command_bytes = i.max_command_bytes;
        c.frame.max_append_bytes =
            usize::try_from(self.limits.max_message_bytes).unwrap_or(usize::MAX);
        c.command.max_sequence_ranges = i.max_sequence_ranges;
        c.command.max_search_depth = i.max_search_depth;
        c.command.max_search_keys = i.max_search_keys;
        c.idle_timeout = Duration::from_secs(i.idle_timeout_seconds);
        c.idle_poll = Duration::from_secs(i.idle_poll_seconds);
        c.login_timeout = Duration::from_secs(i.login_timeout_seconds);
        c.write_timeout = Duration::from_secs(i.write_timeout_seconds);
        c.max_connections_per_user = i.max_connections_per_user;
        c.max_connections_per_address = i.max_connections_per_address;
        c.max_bad_commands = i.max_bad_commands;
        c.auth_without_tls_on_loopback = i.auth_without_tls_on_loopback;
        c
    }

    /// The inbound verifier, unless `dns.verify_inbound` is off.
    pub fn verifier(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<rampart_smtp::verify::Verifier>>> {
        if !self.dns.verify_inbound {
            return Ok(None);
        }
        let source = match self.dns.source {
            DnsSourceName::System => rampart_smtp::verify::DnsSource::System,
            DnsSourceName::Static => rampart_smtp::verify::DnsSource::Static,
        };
        let records: Vec<(String, String)> = self.dns.txt.clone().into_iter().collect();
        Ok(Some(std::sync::Arc::new(
            rampart_smtp::verify::Verifier::new(&self.server.hostname, source, &records)?,
        )))
    }

    /// The store to open.
    pub fn store_config(&self) -> StoreConfig {
        match self.store.backend {
            Backend::Sqlite => StoreConfig::Sqlite {
                data_dir: self.server.data_dir.clone(),
                pool_size: self.store.pool_size,
            },
            Backend::Postgres => StoreConfig::Postgres {
                url: self.store.url.clone().unwrap_or_default(),
                pool_size: self.store.pool_size,
            },
        }
    }
}

/// Checks `(key, value, min, max)` rows in order: the first value outside
/// its range is refused, naming the key and the range.
fn check_ranges(rows: &[(&str, u64, u64, u64)]) -> anyhow::Result<()> {
    for &(key, value, min, max) in rows {
        if !(min..=max).contains(&value) {
            bail!("{key} = {value}: expected {min} to {max}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_valid() {
        let c = Config::parse("").unwrap();
        for s in Service::ALL {
            let addrs = c.listen.addresses(s);
            assert_eq!(addrs.len(), 1);
            assert!(addrs[0].ip().is_loopback());
            assert!(addrs[0].port() > 1024);
        }
        assert_eq!(c.store.backend, Backend::Sqlite);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::parse("[server]\nhostnam = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hostnam"), "{e}");
        let e = Config::parse("[listen]\npop3 = [\"127.0.0.1:110\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pop3"), "{e}");
        let e = Config::parse("[nonsense]\n").unwrap_err().to_string();
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let e = Config::parse("[listen]\nimap = [\"localhost:143x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("imap"), "{e}");
        let e = Config::parse("[store]\nbackend = \"mysql\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mysql") && e.contains("postgres"), "{e}");
        let e = Config::parse("[store]\nbackend = \"postgres\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.url"), "{e}");
        let e =
            Config::parse("[listen]\nimap = [\"127.0.0.1:9000\"]\nsmtp = [\"127.0.0.1:9000\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("listen.imap") && e.contains("listen.smtp"),
            "{e}"
        );
        let e = Config::parse("[auth]\nargon2_memory_kib = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("argon2"), "{e}");
        let e = Config::parse("[tls]\ncert = \"/x.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls.key"), "{e}");
    }

    #[test]
    fn section_checks_run_from_parse() {
        let e = Config::parse("[store]\npool_size = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "store.pool_size = 0: expected 1 to 1000");
        let e = Config::parse("[relay]\nsmarthost_user = \"u\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("relay.smarthost"), "{e}");
        let e = Config::parse("[queue]\nio_timeout_seconds = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "queue.io_timeout_seconds = 0: expected at least 1");
    }

    #[test]
    fn check_ranges_refuses_the_first_value_outside() {
        assert!(check_ranges(&[("a", 1, 1, 2), ("b", 2, 1, 2)]).is_ok());
        let e = check_ranges(&[("a", 3, 1, 2), ("b", 0, 1, 2)])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "a = 3: expected 1 to 2");
    }

    #[test]
    fn empty_list_switches_a_service_off() {
        let c = Config::parse("[listen]\nimap = []\n").unwrap();
        assert!(c.listen.imap.is_empty());
        assert_eq!(c.listen.smtp.len(), 1);
    }
}
