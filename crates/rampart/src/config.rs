//! The TOML configuration file. Every key is documented in docs/config.md;
//! unknown keys and bad values stop start-up with a message naming the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rampart_core::{CoreConfig, PasswordParams, Protocol};
use rampart_store::StoreConfig;
use serde::Deserialize;

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

/// `[server]`: identity, data directory, process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The host name in greetings and the certificate Rampart makes.
    pub hostname: String,
    /// Where the embedded store, blobs and TLS files live.
    pub data_dir: PathBuf,
    /// The user to switch to after binding ports when started as root.
    pub run_as: Option<String>,
    /// Seconds open sessions get to finish at shutdown.
    pub shutdown_grace_seconds: u64,
    /// This node's name in the access ledger (defaults to the hostname).
    pub node_name: Option<String>,
    /// The zone reports speak in and read zone-less times in (an IANA name
    /// such as `Europe/Berlin`, or `UTC`); default: the system's, else UTC.
    pub time_zone: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("rampart-data"),
            run_as: None,
            shutdown_grace_seconds: 10,
            node_name: None,
            time_zone: None,
        }
    }
}

/// The network services Rampart offers, each switchable on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// Inbound SMTP (MX), port 25 in production.
    Smtp,
    /// SMTP submission with STARTTLS, port 587 in production.
    Submission,
    /// SMTP submission over implicit TLS, port 465 in production.
    Submissions,
    /// IMAP with STARTTLS, port 143 in production.
    Imap,
    /// IMAP over implicit TLS, port 993 in production.
    Imaps,
    /// The web app, CalDAV/CardDAV and discovery, port 443 in production.
    Https,
    /// The admin API and UI (loopback only by default).
    Admin,
}

impl Service {
    /// Every service, in the order they are printed.
    pub const ALL: [Service; 7] = [
        Service::Smtp,
        Service::Submission,
        Service::Submissions,
        Service::Imap,
        Service::Imaps,
        Service::Https,
        Service::Admin,
    ];

    /// The key in `[listen]`.
    pub fn key(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Imap => "imap",
            Service::Imaps => "imaps",
            Service::Https => "https",
            Service::Admin => "admin",
        }
    }

    /// Whether the connection starts with a TLS handshake.
    pub fn implicit_tls(self) -> bool {
        matches!(
            self,
            Service::Submissions | Service::Imaps | Service::Https | Service::Admin
        )
    }

    /// The default loopback port (unprivileged, so no root is needed to try Rampart).
    pub fn default_port(self) -> u16 {
        match self {
            Service::Smtp => 2525,
            Service::Submission => 2587,
            Service::Submissions => 2465,
            Service::Imap => 2143,
            Service::Imaps => 2993,
            Service::Https => 8443,
            Service::Admin => 8444,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

fn loopback(port: u16) -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], port))]
}

/// `[listen]`: the addresses of each service; an empty list switches it off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Inbound SMTP.
    pub smtp: Vec<SocketAddr>,
    /// Submission (STARTTLS).
    pub submission: Vec<SocketAddr>,
    /// Submission (implicit TLS).
    pub submissions: Vec<SocketAddr>,
    /// IMAP (STARTTLS).
    pub imap: Vec<SocketAddr>,
    /// IMAP (implicit TLS).
    pub imaps: Vec<SocketAddr>,
    /// HTTPS.
    pub https: Vec<SocketAddr>,
    /// Admin HTTPS.
    pub admin: Vec<SocketAddr>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            smtp: loopback(Service::Smtp.default_port()),
            submission: loopback(Service::Submission.default_port()),
            submissions: loopback(Service::Submissions.default_port()),
            imap: loopback(Service::Imap.default_port()),
            imaps: loopback(Service::Imaps.default_port()),
            https: loopback(Service::Https.default_port()),
            admin: loopback(Service::Admin.default_port()),
        }
    }
}

impl ListenConfig {
    /// The addresses of one service.
    pub fn addresses(&self, service: Service) -> &[SocketAddr] {
        match service {
            Service::Smtp => &self.smtp,
            Service::Submission => &self.submission,
            Service::Submissions => &self.submissions,
            Service::Imap => &self.imap,
            Service::Imaps => &self.imaps,
            Service::Https => &self.https,
            Service::Admin => &self.admin,
        }
    }
}

/// `[tls]`: the certificate for every TLS service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; unset means one Rampart makes in DATA/tls/.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
}

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

/// `[auth]`: argon2id cost of new password hashes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Memory per hash, KiB.
    pub argon2_memory_kib: u32,
    /// Iterations.
    pub argon2_iterations: u32,
    /// Lanes.
    pub argon2_parallelism: u32,
    /// Threads that hash passwords: at most this many logins hash at once.
    pub hash_threads: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let p = PasswordParams::default();
        AuthConfig {
            argon2_memory_kib: p.memory_kib,
            argon2_iterations: p.iterations,
            argon2_parallelism: p.parallelism,
            hash_threads: CoreConfig::default().hash_threads,
        }
    }
}

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

/// `[ledger]`: the access ledger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// Whether accesses are recorded in the ledger. Off only to measure
    /// what the ledger costs: without it nothing says who read what.
    pub enabled: bool,
    /// Seconds between signed checkpoints of the chain's head.
    pub checkpoint_interval_seconds: u64,
    /// Days a sealed segment is kept after its newest entry.
    pub retention_days: u64,
    /// Size at which a segment is sealed, in MiB (it is sealed after a day anyway).
    pub segment_mb: u64,
    /// A file (on another machine's mount, or write-once storage) to which
    /// each new checkpoint is appended as well.
    pub witness_file: Option<PathBuf>,
    /// An address to which the server mails each new checkpoint.
    pub witness_address: Option<String>,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            enabled: true,
            checkpoint_interval_seconds: 60,
            retention_days: 400,
            segment_mb: 64,
            witness_file: None,
            witness_address: None,
        }
    }
}

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
    pub routes: std::collections::BTreeMap<String, String>,
}

fn parse_route(key: &str, value: &str) -> anyhow::Result<rampart_smtp::queue::Route> {
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

/// `[dkim]`: naming of the signing keys made for each domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimSection {
    /// Selector base: keys are published at `<selector>-ed25519._domainkey` and `<selector>-rsa._domainkey`.
    pub selector: String,
}

impl Default for DkimSection {
    fn default() -> Self {
        DkimSection {
            selector: "rampart".into(),
        }
    }
}

/// `[dns]`: where DNS answers for SPF, DKIM and DMARC come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// `"system"`: the system resolver; `"static"`: only `txt` below (tests, air-gapped sites).
    pub source: DnsSourceName,
    /// TXT records answered locally, by name: `"_dmarc.example.net" = "v=DMARC1; p=reject"`.
    pub txt: std::collections::BTreeMap<String, String>,
    /// MX hosts answered locally, by domain, best first: `"example.net" = ["mx1.example.net"]`.
    pub mx: std::collections::BTreeMap<String, Vec<String>>,
    /// Addresses answered locally, by host name: `"mx1.example.net" = ["192.0.2.25"]`.
    pub a: std::collections::BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Check SPF, DKIM, ARC and DMARC of inbound mail and apply DMARC policies.
    pub verify_inbound: bool,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            source: DnsSourceName::System,
            txt: Default::default(),
            mx: Default::default(),
            a: Default::default(),
            verify_inbound: true,
        }
    }
}

/// `dns.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsSourceName {
    /// The system's resolver.
    System,
    /// Only the configured records.
    Static,
}

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

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(zone) = &self.server.time_zone {
            crate::ledger_cli::time_zone(zone)
                .map_err(|e| anyhow::anyhow!("server.time_zone: {e}"))?;
        }
        if rampart_core::normalize_domain(&self.server.hostname).is_err() {
            bail!(
                "server.hostname = {:?}: expected a host name such as mail.example.org",
                self.server.hostname
            );
        }
        if self.store.pool_size == 0 || self.store.pool_size > 1000 {
            bail!(
                "store.pool_size = {}: expected 1 to 1000",
                self.store.pool_size
            );
        }
        match (self.store.backend, &self.store.url) {
            (Backend::Postgres, None) => bail!(
                "store.url is missing: backend = \"postgres\" needs a URL such as postgres://rampart:secret@db.example.org/rampart"
            ),
            (Backend::Sqlite, Some(_)) => bail!(
                "store.url is set but store.backend is \"sqlite\": set backend = \"postgres\" or remove url"
            ),
            _ => {}
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("tls.cert and tls.key go together: set both, or neither for one Rampart makes");
        }
        self.password_params()
            .hash("validate-config")
            .map_err(|e| anyhow::anyhow!("[auth] argon2 parameters: {e}"))?;
        if self.limits.max_message_bytes < 1024 {
            bail!(
                "limits.max_message_bytes = {}: expected at least 1024",
                self.limits.max_message_bytes
            );
        }
        if !(1..=86_400).contains(&self.ledger.checkpoint_interval_seconds) {
            bail!(
                "ledger.checkpoint_interval_seconds = {}: expected 1 to 86400",
                self.ledger.checkpoint_interval_seconds
            );
        }
        if !(1..=36_500).contains(&self.ledger.retention_days) {
            bail!(
                "ledger.retention_days = {}: expected 1 to 36500",
                self.ledger.retention_days
            );
        }
        if let Some(a) = &self.ledger.witness_address {
            rampart_core::Address::parse(a)
                .map_err(|e| anyhow::anyhow!("ledger.witness_address = {a:?}: {e}"))?;
        }
        if !(1..=4096).contains(&self.ledger.segment_mb) {
            bail!(
                "ledger.segment_mb = {}: expected 1 to 4096",
                self.ledger.segment_mb
            );
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.limits.max_indexed_text_bytes) {
            bail!(
                "limits.max_indexed_text_bytes = {}: expected 1024 to 67108864",
                self.limits.max_indexed_text_bytes
            );
        }
        if !(1..=64).contains(&self.limits.max_group_depth) {
            bail!(
                "limits.max_group_depth = {}: expected 1 to 64",
                self.limits.max_group_depth
            );
        }
        if !(1..=256).contains(&self.auth.hash_threads) {
            bail!(
                "auth.hash_threads = {}: expected 1 to 256",
                self.auth.hash_threads
            );
        }
        let i = &self.imap;
        for (key, value, min, max) in [
            (
                "imap.max_command_bytes",
                i.max_command_bytes as u64,
                1024,
                16 << 20,
            ),
            (
                "imap.max_sequence_ranges",
                i.max_sequence_ranges as u64,
                1,
                1_000_000,
            ),
            ("imap.max_search_depth", i.max_search_depth as u64, 1, 64),
            ("imap.max_search_keys", i.max_search_keys as u64, 1, 10_000),
            (
                "imap.idle_timeout_seconds",
                i.idle_timeout_seconds,
                60,
                86_400,
            ),
            ("imap.idle_poll_seconds", i.idle_poll_seconds, 1, 86_400),
            (
                "imap.login_timeout_seconds",
                i.login_timeout_seconds,
                1,
                3600,
            ),
            (
                "imap.write_timeout_seconds",
                i.write_timeout_seconds,
                1,
                3600,
            ),
            (
                "imap.max_connections_per_user",
                i.max_connections_per_user as u64,
                1,
                100_000,
            ),
            (
                "imap.max_connections_per_address",
                i.max_connections_per_address as u64,
                1,
                1_000_000,
            ),
            ("imap.max_bad_commands", i.max_bad_commands as u64, 1, 1000),
        ] {
            if !(min..=max).contains(&value) {
                bail!("{key} = {value}: expected {min} to {max}");
            }
        }
        let s = &self.smtp;
        for (key, value, min, max) in [
            ("smtp.max_recipients", s.max_recipients as u64, 1, 100_000),
            (
                "smtp.max_command_line_bytes",
                s.max_command_line_bytes as u64,
                512,
                1 << 20,
            ),
            (
                "smtp.max_data_line_bytes",
                s.max_data_line_bytes as u64,
                1000,
                1 << 24,
            ),
            (
                "smtp.idle_timeout_seconds",
                s.idle_timeout_seconds,
                1,
                86_400,
            ),
            (
                "smtp.session_timeout_seconds",
                s.session_timeout_seconds,
                1,
                7 * 86_400,
            ),
            (
                "smtp.write_timeout_seconds",
                s.write_timeout_seconds,
                1,
                3600,
            ),
            ("smtp.max_errors", s.max_errors as u64, 1, 1000),
            (
                "security.failed_logins_before_ban",
                self.security.failed_logins_before_ban as u64,
                1,
                1_000_000,
            ),
            (
                "security.failure_window_seconds",
                self.security.failure_window_seconds,
                1,
                30 * 86_400,
            ),
            (
                "queue.mta_sts_fetch_timeout_seconds",
                self.queue.mta_sts_fetch_timeout_seconds,
                1,
                600,
            ),
            (
                "queue.mta_sts_fetch_retry_seconds",
                self.queue.mta_sts_fetch_retry_seconds,
                0,
                86_400,
            ),
        ] {
            if !(min..=max).contains(&value) {
                bail!("{key} = {value}: expected {min} to {max}");
            }
        }
        self.queue_config()?;
        if self.dkim.selector.is_empty()
            || self.dkim.selector.len() > 40
            || !self
                .dkim
                .selector
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            bail!(
                "dkim.selector = {:?}: expected 1 to 40 letters, digits or hyphens",
                self.dkim.selector
            );
        }
        for (key, value) in [
            ("queue.retry_base_seconds", self.queue.retry_base_seconds),
            ("queue.retry_max_seconds", self.queue.retry_max_seconds),
            (
                "queue.poll_interval_seconds",
                self.queue.poll_interval_seconds,
            ),
            ("queue.io_timeout_seconds", self.queue.io_timeout_seconds),
        ] {
            if value == 0 {
                bail!("{key} = 0: expected at least 1");
            }
        }
        let mut seen: Vec<(SocketAddr, Service)> = Vec::new();
        for service in Service::ALL {
            for addr in self.listen.addresses(service) {
                // Port 0 asks the system for any free port, so it never clashes.
                let clash = seen.iter().find(|(a, _)| a == addr && addr.port() != 0);
                if let Some((_, other)) = clash {
                    bail!(
                        "listen.{service} and listen.{other} both use {addr}: give each service its own port"
                    );
                }
                seen.push((*addr, service));
            }
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            bail!(
                "log.level = {:?}: expected a level such as \"info\" or a filter such as \"rampart=debug,info\"",
                self.log.level
            );
        }
        Ok(())
    }

    /// Argon2 parameters from `[auth]`.
    pub fn password_params(&self) -> PasswordParams {
        PasswordParams {
            memory_kib: self.auth.argon2_memory_kib,
            iterations: self.auth.argon2_iterations,
            parallelism: self.auth.argon2_parallelism,
        }
    }

    /// The core's settings.
    /// The ledger's directory: beside the store, apart from the mail data.
    pub fn ledger_dir(&self) -> PathBuf {
        self.server.data_dir.join("ledger")
    }

    /// The ledger's settings.
    pub fn ledger_config(&self) -> rampart_ledger::LedgerConfig {
        let node = self
            .server
            .node_name
            .clone()
            .unwrap_or_else(|| self.server.hostname.clone());
        let mut c = rampart_ledger::LedgerConfig::new(self.ledger_dir(), node);
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
            node: self
                .server
                .node_name
                .clone()
                .unwrap_or_else(|| self.server.hostname.clone()),
            passwords: self.password_params(),
            hash_threads: self.auth.hash_threads,
            default_quota_bytes: self.limits.default_quota_bytes,
            max_message_bytes: self.limits.max_message_bytes,
            max_group_depth: self.limits.max_group_depth,
            max_indexed_text_bytes: self.limits.max_indexed_text_bytes,
            sent_duplicate_window: Duration::from_secs(self.limits.sent_duplicate_window_seconds),
            plaintext_login_on_loopback,
            guard: rampart_core::GuardConfig {
                failures_before_ban: self.security.failed_logins_before_ban,
                window: Duration::from_secs(self.security.failure_window_seconds),
                ban: Duration::from_secs(self.security.ban_seconds),
                delay_per_failure: Duration::from_millis(self.security.failure_delay_ms),
                max_delay: Duration::from_millis(self.security.max_failure_delay_ms),
            },
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
    fn empty_list_switches_a_service_off() {
        let c = Config::parse("[listen]\nimap = []\n").unwrap();
        assert!(c.listen.imap.is_empty());
        assert_eq!(c.listen.smtp.len(), 1);
    }
}
