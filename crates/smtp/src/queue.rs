//! The outbound queue worker: claims due messages through core, finds each
//! recipient domain's next hop (a configured route, the smarthost, or MX),
//! hands the message over, records each recipient's outcome, and tells the
//! sender about failures and long delays with RFC 3464 reports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::model::{
    DsnRequest, QueueEntry, QueueOutcome, QueuedAddress, QueuedRecipient, notify, now_millis,
};
use rampart_core::{Access, Address, Core};
use tokio_util::sync::CancellationToken;

use crate::client::{self, Outgoing, RecipientResult};
use crate::rfc5322_date;

/// A fixed next hop.
#[derive(Clone)]
pub struct Route {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name and password to authenticate with (smarthosts).
    pub auth: Option<(String, String)>,
    /// TLS with this verified configuration is required (a smarthost that gets a password).
    pub verified_tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|(user, _)| user))
            .finish()
    }
}

/// Settings of the queue worker (`[queue]` and `[relay]` in the config).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Our name in EHLO and in reports.
    pub hostname: String,
    /// Per-domain next hops, by lower-case domain.
    pub routes: BTreeMap<String, Route>,
    /// Where everything else goes; MX lookup when unset.
    pub smarthost: Option<Route>,
    /// First retry delay; doubles with each attempt.
    pub retry_base: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
    /// How long a message may stay queued before it bounces.
    pub lifetime: Duration,
    /// After how long the sender hears that delivery is delayed.
    pub delay_notice_after: Duration,
    /// How often the queue is checked when nothing wakes the worker.
    pub poll_interval: Duration,
    /// Network timeout per step of a delivery.
    pub io_timeout: Duration,
    /// Messages claimed per round.
    pub batch: usize,
    /// Answers configured locally before (or instead of) DNS.
    pub static_dns: StaticDns,
    /// Verified TLS (system roots plus any configured CA), for MTA-STS domains.
    pub verified_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Apply recipient domains' MTA-STS policies.
    pub mta_sts: bool,
    /// How long one fetch of an MTA-STS policy may take, per address.
    pub mta_sts_fetch_timeout: Duration,
    /// How long after a failed policy fetch the same policy id is not fetched again.
    pub mta_sts_fetch_retry: Duration,
    /// The role the worker acts in; handed out by the binary.
    pub worker: Option<rampart_core::ServiceMinter>,
    /// The role delivery status reports are sent in.
    pub reports: Option<rampart_core::ServiceMinter>,
}
/// DNS answers configured locally (`[dns]` in the config).
#[derive(Debug, Clone, Default)]
pub struct StaticDns {
    /// Only these answers: names not listed do not exist.
    pub only: bool,
    /// MX hosts by domain, best first.
    pub mx: BTreeMap<String, Vec<String>>,
    /// Addresses by host name.
    pub addresses: BTreeMap<String, Vec<std::net::IpAddr>>,
    /// TXT values by name.
    pub txt: BTreeMap<String, String>,
}

/// The DNS view of the queue worker: local answers first, then the resolver.
pub struct Dns {
    resolver: Option<mail_auth::MessageAuthenticator>,
    static_dns: StaticDns,
    sts: crate::mta_sts::PolicyCache,
}

impl Dns {
    /// Local answers, plus the system resolver unless they are the only source.
    pub fn new(static_dns: StaticDns) -> Self {
        let resolver = if static_dns.only {
            None
        } else {
            match mail_auth::MessageAuthenticator::new_system_conf() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!("queue: no DNS resolver ({e}); only [relay] routes can be used");
                    None
                }
            }
        };
        Dns {
            resolver,
            static_dns,
            sts: Default::default(),
        }
    }

    /// The socket addresses of `host:port`: local answers, an address literal,
    /// or the system's resolver.
    async fn socket_addrs(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        if let Some(ips) = self.static_dns.addresses.get(&host.to_ascii_lowercase()) {
            return ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        }
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            return vec![SocketAddr::new(ip, port)];
        }
        // Host names outside the local answers go to the system's resolver
        // (/etc/hosts first), even with static DNS: they come from the
        // config (routes, smarthost) or from configured MX answers.
        tokio::net::lookup_host((host, port))
            .await
            .map(|a| a.collect())
            .unwrap_or_default()
    }

    /// The id in `_mta-sts.<domain>`, if the domain publishes one.
    async fn mta_sts_id(&self, domain: &str) -> Option<String> {
        use mail_auth::common::parse::TxtRecordParser;
        let name = format!("_mta-sts.{domain}");
        if let Some(value) = self.static_dns.txt.get(&name) {
            return mail_auth::mta_sts::MtaSts::parse(value.as_bytes())
                .ok()
                .map(|r| r.id);
        }
        let resolver = self.resolver.as_ref()?;
        let none: Option<&mail_auth::common::cache::NoCache<Box<str>, mail_auth::Txt>> = None;
        resolver
            .txt_lookup::<mail_auth::mta_sts::MtaSts>(name, none)
            .await
            .ok()
            .map(|r| r.id.clone())
    }

    /// The domain's MTA-STS policy when it is in enforce mode (cached or
    /// fetched, RFC 8461 §5); `Err` when delivery must wait.
    async fn enforced_policy(
        &self,
        core: &Core,
        access: &Access,
        config: &QueueConfig,
        domain: &str,
    ) -> Result<Option<crate::mta_sts::Policy>, String> {
        let Some(tls) = config.verified_tls.as_ref() else {
            return Ok(None);
        };
        if !config.mta_sts {
            return Ok(None);
        }
        let id = self.mta_sts_id(domain).await;
        let fetch = async || {
            let addrs = self.socket_addrs(&format!("mta-sts.{domain}"), 443).await;
            crate::mta_sts::fetch(domain, &addrs, tls.clone(), config.mta_sts_fetch_timeout).await
        };
        let policy = self
            .sts
            .policy(
                core,
                access,
                domain,
                id.as_deref(),
                config.mta_sts_fetch_retry,
                fetch,
            )
            .await?;
        Ok(policy.filter(|p| p.mode == crate::mta_sts::Mode::Enforce))
    }
}

impl QueueConfig {
    /// Defaults: retries from one minute doubling to four hours, five days' lifetime.
    pub fn new(hostname: &str) -> Self {
        QueueConfig {
            hostname: hostname.into(),
            routes: BTreeMap::new(),
            smarthost: None,
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(4 * 3600),
            lifetime: Duration::from_secs(5 * 86_400),
            delay_notice_after: Duration::from_secs(4 * 3600),
            poll_interval: Duration::from_secs(30),
            io_timeout: Duration::from_secs(60),
            batch: 32,
            static_dns: StaticDns::default(),
            verified_tls: None,
            mta_sts: true,
            mta_sts_fetch_timeout: Duration::from_secs(30),
            // RFC 8461 §3.3 suggests five minutes or longer per version id.
            mta_sts_fetch_retry: Duration::from_secs(300),
            worker: None,
            reports: None,
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        (self.retry_base * factor).min(self.retry_max)
    }
}

/// Runs the worker until `shutdown`.
pub async fn run(core: Arc<Core>, config: Arc<QueueConfig>, shutdown: CancellationToken) {
    let Some(role) = config.worker.as_ref() else {
        tracing::error!("queue: no worker role given; the queue does not run");
        return;
    };
    let access = role.internal();
    let dns = Dns::new(config.static_dns.clone());
    loop {
        if let Err(e) = round(&core, &config, &access, &dns).await {
            tracing::error!("queue: {e}");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = core.queue_wait(config.poll_interval) => {}
        }
    }
}

/// One pass over the due messages.
pub async fn round(
    core: &Core,
    config: &QueueConfig,
    access: &Access,
    dns: &Dns,
) -> rampart_core::CoreResult<()> {
    loop {
        let now = now_millis();
        // The lease outlives any one attempt; after a crash the recipients
        // come due again once it runs out (delivery is at least once).
        let lease = now + (config.io_timeout * 8).as_millis() as i64;
        let claimed = core.queue_claim(access, now, lease, config.batch).await?;
        if claimed.is_empty() {
            break;
        }
        for entry in claimed {
            deliver_entry(core, config, access, dns, &entry).await?;
        }
    }
    core.queue_collect(access).await?;
    Ok(())
}

async fn deliver_entry(
    core: &Core,
    config: &QueueConfig,
    access: &Access,
    dns: &Dns,
    entry: &QueueEntry,
) -> rampart_core::CoreResult<()> {
    let raw = core.queue_message(access, entry).await?;
    let mut by_domain: BTreeMap<&str, Vec<&QueuedRecipient>> = BTreeMap::new();
    for r in &entry.recipients {
        by_domain.entry(r.domain.as_str()).or_default().push(r);
    }
    let mut reports: Vec<(Action, &QueuedRecipient, String)> = Vec::new();
    for (domain, recipients) in by_domain {
        let addresses: Vec<String> = recipients.iter().map(|r| r.address.clone()).collect();
        let results = match next_hops(core, access, config, dns, domain).await {
            Err(e) => vec![e; addresses.len()],
            Ok(hops) => attempt(config, dns, &hops, entry, &addresses, &raw).await,
        };
        for (r, result) in recipients.iter().copied().zip(results) {
            let age = Duration::from_millis((now_millis() - entry.created_at).max(0) as u64);
            let outcome = match result {
                RecipientResult::Accepted => {
                    reports.push((Action::Relayed, r, "accepted by the next hop".into()));
                    QueueOutcome::Delivered
                }
                RecipientResult::Permanent(error) => {
                    reports.push((Action::Failed, r, error.clone()));
                    QueueOutcome::Failed { error }
                }
                RecipientResult::Temporary(error) if age >= config.lifetime => {
                    let error = format!("gave up after {} attempts: {error}", r.attempts);
                    reports.push((Action::Failed, r, error.clone()));
                    QueueOutcome::Failed { error }
                }
                RecipientResult::Temporary(error) => {
                    if age >= config.delay_notice_after && !r.delay_notified {
                        reports.push((Action::Delayed, r, error.clone()));
                    }
                    QueueOutcome::Retry {
                        at: now_millis() + config.backoff(r.attempts).as_millis() as i64,
                        error,
                    }
                }
            };
            core.queue_record(access, r.id, outcome).await?;
        }
    }
    for action in [Action::Failed, Action::Delayed, Action::Relayed] {
        let list: Vec<(&QueuedRecipient, String)> = reports
            .iter()
            .filter(|(a, r, _)| *a == action && action.requested_by(r.notify))
            .map(|(_, r, e)| (*r, e.clone()))
            .collect();
        if !list.is_empty() {
            report(core, config, entry, &raw, &list, action).await;
        }
        if action == Action::Delayed {
            // Asked for or not, one delay notice per recipient is enough.
            for (_, r, _) in reports.iter().filter(|(a, _, _)| *a == Action::Delayed) {
                core.queue_record(access, r.id, QueueOutcome::DelayNotified)
                    .await?;
            }
        }
    }
    Ok(())
}

/// What a delivery status notification reports (RFC 3464 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Failed,
    Delayed,
    /// Handed to a next hop that reports no further (we do not pass DSN requests on).
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Relayed => "relayed",
        }
    }

    /// Whether the recipient's NOTIFY asks for this report (RFC 3461 §4.1:
    /// without NOTIFY, failures and delays are reported).
    fn requested_by(self, flags: u8) -> bool {
        let flag = match self {
            Action::Failed => notify::FAILURE,
            Action::Delayed => notify::DELAY,
            Action::Relayed => notify::SUCCESS,
        };
        if flags & notify::NEVER != 0 {
            false
        } else if flags == 0 {
            self != Action::Relayed
        } else {
            flags & flag != 0
        }
    }
}

/// The hosts to try for a domain, best first.
async fn next_hops(
    core: &Core,
    access: &Access,
    config: &QueueConfig,
    dns: &Dns,
    domain: &str,
) -> Result<Vec<Route>, RecipientResult> {
    if let Some(route) = config.routes.get(domain) {
        return Ok(vec![route.clone()]);
    }
    if let Some(route) = &config.smarthost {
        return Ok(vec![route.clone()]);
    }
    let mut hops = mx_hosts(dns, domain).await?;
    // MTA-STS: only the MX hosts the domain's policy names, only over TLS
    // verified for that host name, never in clear text.
    let policy = dns
        .enforced_policy(core, access, config, domain)
        .await
        .map_err(RecipientResult::Temporary)?;
    if let Some(policy) = policy {
        hops.retain(|h| policy.matches(&h.host));
        if hops.is_empty() {
            return Err(RecipientResult::Temporary(format!(
                "MTA-STS: none of the MX hosts of {domain} matches its policy"
            )));
        }
        for hop in &mut hops {
            hop.verified_tls = config.verified_tls.clone();
        }
    }
    Ok(hops)
}

fn mx_route(host: &str) -> Route {
    Route {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port: 25,
        auth: None,
        verified_tls: None,
    }
}

/// The domain's MX hosts, best first (the domain itself when it has no MX).
async fn mx_hosts(dns: &Dns, domain: &str) -> Result<Vec<Route>, RecipientResult> {
    if let Some(hosts) = dns.static_dns.mx.get(domain) {
        return Ok(hosts.iter().map(|h| mx_route(h)).collect());
    }
    if dns.static_dns.only {
        return Ok(vec![mx_route(domain)]);
    }
    let Some(resolver) = &dns.resolver else {
        return Err(RecipientResult::Temporary(
            "no DNS resolver available".into(),
        ));
    };
    let none: Option<
        &mail_auth::common::cache::NoCache<Box<str>, mail_auth::RecordSet<mail_auth::MX>>,
    > = None;
    match resolver.mx_lookup(domain, none).await {
        Ok(records) => {
            let mut mx: Vec<_> = records.rrset.iter().cloned().collect();
            mx.sort_by_key(|m| m.preference);
            let hosts: Vec<Route> = mx
                .iter()
                .flat_map(|m| m.exchanges.iter())
                .map(|h| mx_route(h))
                .collect();
            // RFC 7505: a null MX says the domain takes no mail.
            if hosts.len() == 1 && hosts[0].host.is_empty() {
                return Err(RecipientResult::Permanent(format!(
                    "{domain} accepts no mail (null MX)"
                )));
            }
            if hosts.is_empty() {
                Ok(vec![mx_route(domain)])
            } else {
                Ok(hosts)
            }
        }
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(code))) => {
            if u16::from(code) == 3 {
                Err(RecipientResult::Permanent(format!(
                    "domain {domain} does not exist"
                )))
            } else {
                // No MX: the domain itself is the implicit MX (RFC 5321 §5.1).
                Ok(vec![mx_route(domain)])
            }
        }
        Err(e) => Err(RecipientResult::Temporary(format!(
            "DNS lookup of {domain} failed: {e}"
        ))),
    }
}

/// Tries the hops in order until one gives a verdict on every recipient.
async fn attempt(
    config: &QueueConfig,
    dns: &Dns,
    hops: &[Route],
    entry: &QueueEntry,
    recipients: &[String],
    raw: &[u8],
) -> Vec<RecipientResult> {
    let mut last = String::from("no host to try");
    for hop in hops {
        let outgoing = Outgoing {
            helo: &config.hostname,
            sender: &entry.sender,
            recipients,
            message: raw,
            auth: hop.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
            verified_tls: hop.verified_tls.clone(),
        };
        let addrs = dns.socket_addrs(&hop.host, hop.port).await;
        if addrs.is_empty() {
            last = format!("{}: no address found", hop.host);
            continue;
        }
        match client::send(&hop.host, &addrs, &outgoing, config.io_timeout).await {
            Ok(results) => return results,
            Err(e) if e.permanent => {
                return vec![
                    RecipientResult::Permanent(format!("{}: {}", hop.host, e.reason));
                    recipients.len()
                ];
            }
            Err(e) => last = format!("{}: {}", hop.host, e.reason),
        }
    }
    vec![RecipientResult::Temporary(last); recipients.len()]
}

/// Sends the envelope sender an RFC 3464 delivery status notification.
async fn report(
    core: &Core,
    config: &QueueConfig,
    entry: &QueueEntry,
    original: &[u8],
    recipients: &[(&QueuedRecipient, String)],
    action: Action,
) {
    // Never answer a bounce with a bounce.
    if entry.sender.is_empty() {
        return;
    }
    let Ok(sender) = Address::parse(&entry.sender) else {
        return;
    };
    let message = dsn(config, entry, original, recipients, action);
    let Some(role) = config.reports.as_ref() else {
        tracing::error!("queue: no report role given; no report sent");
        return;
    };
    let result = core
        .submit(
            &role.internal(),
            "",
            &[QueuedAddress::plain(sender.to_string())],
            DsnRequest::default(),
            message,
        )
        .await;
    if let Err(e) = result {
        tracing::error!(
            "queue: cannot report {} delivery to {sender}: {e}",
            action.as_str()
        );
    }
}

/// Builds a multipart/report (RFC 3464) for the given recipients; the
/// original comes back whole with `RET=FULL`, as headers otherwise.
fn dsn(
    config: &QueueConfig,
    entry: &QueueEntry,
    original: &[u8],
    recipients: &[(&QueuedRecipient, String)],
    action: Action,
) -> Vec<u8> {
    let host = &config.hostname;
    let boundary = format!("rampart-dsn-{}-{}", entry.id, now_millis());
    let date = rfc5322_date(now_millis() / 1000);
    let (subject, intro, status) = match action {
        Action::Failed => (
            "Undelivered Mail Returned to Sender",
            "Your message could not be delivered to these recipients:",
            "5.0.0",
        ),
        Action::Delayed => (
            "Delayed Mail (still being retried)",
            "Your message has not been delivered yet; delivery is still being attempted for:",
            "4.0.0",
        ),
        Action::Relayed => (
            "Successful Mail Delivery Report",
            "Your message was handed on to the recipients' mail servers:",
            "2.0.0",
        ),
    };
    let mut text = format!("This is the mail system at {host}.\r\n\r\n{intro}\r\n\r\n");
    for (rcpt, detail) in recipients {
        text.push_str(&format!("  <{}>: {}\r\n", rcpt.address, sanitize(detail)));
    }
    let mut status_part = format!("Reporting-MTA: dns; {host}\r\n");
    if let Some(envid) = &entry.dsn.envid {
        status_part.push_str(&format!("Original-Envelope-Id: {}\r\n", sanitize(envid)));
    }
    status_part.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(entry.created_at / 1000)
    ));
    for (rcpt, detail) in recipients {
        status_part.push_str("\r\n");
        if let Some(orcpt) = &rcpt.orcpt {
            // The field carries its address type; SMTP's ORCPT parameter had it too.
            let typed = if orcpt.contains(';') {
                sanitize(orcpt)
            } else {
                format!("rfc822; {}", sanitize(orcpt))
            };
            status_part.push_str(&format!("Original-Recipient: {typed}\r\n"));
        }
        status_part.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\nAction: {}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {}\r\n",
            rcpt.address,
            action.as_str(),
            sanitize(detail)
        ));
    }
    let (returned_type, returned) = if entry.dsn.ret_full == Some(true) {
        ("message/rfc822", String::from_utf8_lossy(original))
    } else {
        let header_end = original
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 2)
            .unwrap_or(original.len());
        (
            "text/rfc822-headers",
            String::from_utf8_lossy(&original[..header_end.min(64 * 1024)]),
        )
    };
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{sender}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <dsn-{id}-{stamp}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {text}\r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         {status_part}\r\n\
         --{boundary}\r\n\
         Content-Type: {returned_type}\r\n\
         \r\n\
         {returned}\r\n\
         --{boundary}--\r\n",
        sender = entry.sender,
        id = entry.id,
        stamp = now_millis(),
    )
    .into_bytes()
}

/// Keeps a remote server's text on one line and printable.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_decides_which_reports_go_out() {
        assert!(Action::Failed.requested_by(0) && Action::Delayed.requested_by(0));
        assert!(!Action::Relayed.requested_by(0));
        assert!(!Action::Failed.requested_by(notify::NEVER));
        assert!(Action::Relayed.requested_by(notify::SUCCESS));
        assert!(!Action::Failed.requested_by(notify::SUCCESS));
        assert!(!Action::Delayed.requested_by(notify::FAILURE));
        assert!(Action::Delayed.requested_by(notify::FAILURE | notify::DELAY));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = QueueConfig::new("mx.example.org");
        assert_eq!(c.backoff(1), Duration::from_secs(60));
        assert_eq!(c.backoff(2), Duration::from_secs(120));
        assert_eq!(c.backoff(3), Duration::from_secs(240));
        assert_eq!(c.backoff(30), Duration::from_secs(4 * 3600));
    }
}
