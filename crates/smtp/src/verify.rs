//! Inbound message authentication: SPF, DKIM, ARC and DMARC with mail-auth,
//! summed up in one `Authentication-Results` header and a verdict that
//! applies the sender domain's DMARC policy.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator, Parameters,
    ResolverCache, Txt,
};

/// What to do with a message after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Deliver to the Inbox.
    Accept,
    /// Deliver to Junk (DMARC `p=quarantine` failed).
    Junk,
    /// Refuse it (DMARC `p=reject` failed), with the reason.
    Reject(String),
}

/// The outcome of authenticating one message.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The `Authentication-Results` header line(s), CRLF-terminated.
    pub header: String,
    /// What to do with the message.
    pub disposition: Disposition,
}

/// Where DNS answers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsSource {
    /// The system's resolver (`/etc/resolv.conf`), with `records` answered first.
    System,
    /// Only `records`: other TXT names do not exist, and other lookups (A, MX)
    /// fail at once (tests, air-gapped sites).
    Static,
}

/// TXT records answered locally before (or instead of) DNS. In static mode
/// every other TXT name does not exist.
pub(crate) struct StaticTxt {
    records: HashMap<Box<str>, Txt>,
    only: bool,
}

impl StaticTxt {
    /// The records (name, TXT value), parsed by what their names say they are.
    pub(crate) fn new(records: &[(String, String)], only: bool) -> Self {
        let mut txt = HashMap::new();
        for (name, value) in records {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let parsed: Txt = if name.contains("._domainkey.") {
                mail_auth::common::verify::DomainKey::parse(value.as_bytes()).into()
            } else if name.starts_with("_dmarc.") {
                mail_auth::dmarc::Dmarc::parse(value.as_bytes()).into()
            } else {
                mail_auth::spf::Spf::parse(value.as_bytes()).into()
            };
            txt.insert(format!("{name}.").into_boxed_str(), parsed);
        }
        StaticTxt { records: txt, only }
    }
}

/// An authenticator whose lookups never leave the machine: a name server
/// nobody runs, so that names outside the static records fail at once.
pub(crate) fn offline_authenticator() -> Result<MessageAuthenticator, VerifierError> {
    let mut server = NameServerConfig::udp(IpAddr::V4(Ipv4Addr::LOCALHOST));
    for c in &mut server.connections {
        c.port = 9;
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_millis(200);
    opts.attempts = 1;
    MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![server]), opts)
        .map_err(|e| VerifierError(e.to_string()))
}

impl ResolverCache<Box<str>, Txt> for StaticTxt {
    fn get<Q>(&self, key: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        match self.records.get(key) {
            Some(txt) => Some(txt.clone()),
            None if self.only => Some(Txt::Error(mail_auth::Error::Dns(
                mail_auth::DnsError::RecordNotFound(
                    mail_auth::hickory_resolver::proto::op::ResponseCode::NXDomain,
                ),
            ))),
            None => None,
        }
    }

    fn remove<Q>(&self, _key: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: std::time::Instant) {}
}

/// Authenticates inbound messages.
pub struct Verifier {
    resolver: MessageAuthenticator,
    txt: StaticTxt,
    hostname: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hostname", &self.hostname)
            .field("static_records", &self.txt.records.len())
            .finish()
    }
}

/// Why the verifier could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("DNS resolver: {0}")]
pub struct VerifierError(String);

impl Verifier {
    /// A verifier answering `records` (name → TXT value) itself and the rest from `source`.
    pub fn new(
        hostname: &str,
        source: DnsSource,
        records: &[(String, String)],
    ) -> Result<Self, VerifierError> {
        let only = source == DnsSource::Static;
        let resolver = match source {
            DnsSource::System => {
                MessageAuthenticator::new_system_conf().map_err(|e| VerifierError(e.to_string()))?
            }
            DnsSource::Static => offline_authenticator()?,
        };
        let txt = StaticTxt::new(records, only);
        Ok(Verifier {
            resolver,
            txt,
            hostname: hostname.into(),
        })
    }

    /// Authenticates a message received from `ip` after `EHLO helo` and `MAIL FROM:<mail_from>`.
    pub async fn verify(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return Verdict {
                header: format!(
                    "Authentication-Results: {}; none (unparsable message)\r\n",
                    self.hostname
                ),
                disposition: Disposition::Accept,
            };
        };
        let dkim = self
            .resolver
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(&self.txt))
            .await;
        let arc = self
            .resolver
            .verify_arc(Parameters::new(&parsed).with_txt_cache(&self.txt))
            .await;
        let spf_params = if mail_from.is_empty() {
            SpfParameters::verify_ehlo(ip, helo, &self.hostname)
        } else {
            SpfParameters::verify_mail_from(ip, helo, &self.hostname, mail_from)
        };
        let spf = self
            .resolver
            .verify_spf(Parameters::new(spf_params).with_txt_cache(&self.txt))
            .await;
        let mail_from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
        let dmarc = self
            .resolver
            .verify_dmarc(
                Parameters::new(mail_auth::dmarc::verify::DmarcParameters::new(
                    &parsed,
                    &dkim,
                    mail_from_domain,
                    &spf,
                ))
                .with_txt_cache(&self.txt),
            )
            .await;
        let header_from = parsed.from();
        let results = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, header_from)
            .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
            .with_arc_result(&arc, ip)
            .with_dmarc_result(&dmarc);
        // DMARC fails when the author domain publishes a policy and neither
        // identifier passes aligned (mail-auth then reports both as "none");
        // a DNS error is not a failure (the sender may simply be unlucky).
        let (dkim_result, spf_result) = (dmarc.dkim_result(), dmarc.spf_result());
        let passed =
            matches!(dkim_result, DmarcResult::Pass) || matches!(spf_result, DmarcResult::Pass);
        let uncertain = [dkim_result, spf_result]
            .iter()
            .any(|r| matches!(r, DmarcResult::TempError(_) | DmarcResult::PermError(_)));
        let published = !matches!(dmarc.policy(), Policy::Unspecified);
        let failed = published && !passed && !uncertain;
        let disposition = match (failed, dmarc.policy()) {
            (true, Policy::Reject) => Disposition::Reject(format!(
                "DMARC policy of {} rejects this message",
                dmarc.domain()
            )),
            (true, Policy::Quarantine) => Disposition::Junk,
            _ => Disposition::Accept,
        };
        let mut body = results_body(&results);
        if failed {
            body = body.replacen("dmarc=none", "dmarc=fail", 1);
        }
        Verdict {
            header: format!("Authentication-Results: {body}\r\n"),
            disposition,
        }
    }
}

/// The header value mail-auth renders (it renders `name: value` itself).
fn results_body(results: &AuthenticationResults<'_>) -> String {
    use mail_auth::common::headers::HeaderWriter;
    let header = results.to_header();
    header
        .strip_prefix("Authentication-Results: ")
        .unwrap_or(&header)
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Verifier {
        let records = [
            ("pass.example", "v=spf1 ip4:127.0.0.1 -all"),
            ("_dmarc.pass.example", "v=DMARC1; p=reject"),
            ("reject.example", "v=spf1 ip4:192.0.2.1 -all"),
            ("_dmarc.reject.example", "v=DMARC1; p=reject"),
            ("quarantine.example", "v=spf1 ip4:192.0.2.1 -all"),
            ("_dmarc.quarantine.example", "v=DMARC1; p=quarantine"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()));
        Verifier::new("mx.example.org", DnsSource::Static, &records).unwrap()
    }

    async fn check(domain: &str) -> Verdict {
        let msg = format!("From: a@{domain}\r\nTo: b@example.org\r\nSubject: t\r\n\r\nbody\r\n");
        verifier()
            .verify(
                "127.0.0.1".parse().unwrap(),
                &format!("mx.{domain}"),
                &format!("a@{domain}"),
                msg.as_bytes(),
            )
            .await
    }

    #[tokio::test]
    async fn dmarc_policies_apply() {
        let v = check("pass.example").await;
        assert_eq!(v.disposition, Disposition::Accept, "{}", v.header);
        assert!(
            v.header.contains("spf=pass") && v.header.contains("dmarc=pass"),
            "{}",
            v.header
        );
        let v = check("reject.example").await;
        assert!(
            matches!(v.disposition, Disposition::Reject(_)),
            "{}",
            v.header
        );
        let v = check("quarantine.example").await;
        assert_eq!(v.disposition, Disposition::Junk, "{}", v.header);
    }
}
