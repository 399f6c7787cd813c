//! MTA-STS (RFC 8461): a recipient domain's published demand that mail to
//! it travel only over verified TLS to the MX hosts it names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rampart_core::model::{StsPolicyRecord, now_millis};
use rampart_core::{Access, Core};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;

/// Largest policy body read (RFC 8461 §3.3: senders limit the response
/// size; its example is 64 KB). Reading stops past it.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Largest response head (status line and header fields) read; hyper's
/// smallest read buffer, as a policy answer needs no more.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Longest a policy is cached, whatever it says (RFC 8461 §3.2: max_age is
/// at most 31557600 s).
const MAX_AGE_CAP: u64 = 31_557_600;

/// How a policy wants to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only over verified TLS to matching MX hosts.
    Enforce,
    /// Report failures but deliver anyway.
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl Mode {
    /// The word in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }

    fn from_word(word: &str) -> Option<Mode> {
        [Mode::Enforce, Mode::Testing, Mode::None]
            .into_iter()
            .find(|m| m.as_str() == word)
    }
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The mode.
    pub mode: Mode,
    /// MX host patterns (`mail.example.com`, `*.example.net`).
    pub mx: Vec<String>,
    /// Seconds it may be cached.
    pub max_age: u64,
}

impl Policy {
    /// Parses the text served at `/.well-known/mta-sts.txt`.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut version = None;
        let mut mode = None;
        let mut mx = Vec::new();
        let mut max_age = None;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_owned()),
                "mode" => {
                    mode = Some(
                        Mode::from_word(value).ok_or_else(|| format!("unknown mode {value:?}"))?,
                    )
                }
                "mx" => mx.push(value.to_ascii_lowercase()),
                "max_age" => {
                    max_age = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("bad max_age {value:?}"))?,
                    )
                }
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("not an STSv1 policy".into());
        }
        let mode = mode.ok_or("policy without mode")?;
        let max_age = max_age.ok_or("policy without max_age")?.min(MAX_AGE_CAP);
        if mode != Mode::None && mx.is_empty() {
            return Err("policy without mx".into());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// The policy as the store keeps it, fetched `now` (ms) under TXT `id`.
    fn to_record(&self, domain: &str, id: &str, now: i64) -> StsPolicyRecord {
        StsPolicyRecord {
            domain: domain.to_owned(),
            policy_id: id.to_owned(),
            mode: self.mode.as_str().to_owned(),
            mx: self.mx.clone(),
            max_age: self.max_age,
            fetched_at: now,
            expires_at: now.saturating_add(self.max_age.min(MAX_AGE_CAP) as i64 * 1000),
        }
    }

    /// A stored policy (None if its mode is not one this version knows).
    fn from_record(record: &StsPolicyRecord) -> Option<Policy> {
        Some(Policy {
            mode: Mode::from_word(&record.mode)?,
            mx: record.mx.clone(),
            max_age: record.max_age.min(MAX_AGE_CAP),
        })
    }

    /// Whether an MX host name matches one of the policy's patterns
    /// (a leading `*.` stands for exactly one label).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => *pattern == host,
            })
    }
}

/// The policy cache of RFC 8461 §5. The store (through core, in the queue
/// worker's role) is the truth, so a restart keeps every policy; in memory
/// there are only the recent failed fetches, so that a domain whose policy
/// server is down is not asked again on every delivery attempt.
#[derive(Default)]
pub struct PolicyCache {
    failed: Mutex<HashMap<String, (String, Instant)>>,
}

impl PolicyCache {
    /// The policy that applies to mail for `domain`, given the id in its
    /// `_mta-sts` TXT record (`None`: no record found) and a way to fetch
    /// the policy. `Err` when the store cannot say: delivery must wait, as
    /// going ahead without a cached policy could be the downgrade the cache
    /// exists to prevent.
    pub async fn policy<F>(
        &self,
        core: &Core,
        access: &Access,
        domain: &str,
        id: Option<&str>,
        retry_after_failure: Duration,
        fetch: F,
    ) -> Result<Option<Policy>, String>
    where
        F: AsyncFnOnce() -> Result<Policy, String>,
    {
        let now = now_millis();
        let cached = core
            .sts_policy(access, domain)
            .await
            .map_err(|e| format!("MTA-STS policy cache of {domain}: {e}"))?
            .filter(|r| r.expires_at > now)
            .and_then(|r| Some((r.policy_id.clone(), Policy::from_record(&r)?)));
        // RFC 8461 §5: with no TXT record (or none found), a cached
        // unexpired policy still applies; the same id means the same policy.
        let Some(id) = id else {
            return Ok(cached.map(|(_, p)| p));
        };
        if let Some((cached_id, policy)) = &cached
            && cached_id == id
        {
            return Ok(Some(policy.clone()));
        }
        // RFC 8461 §3.3: after a failed fetch, wait a while before asking
        // again for the same id.
        if self.failed_recently(domain, id, retry_after_failure) {
            return Ok(cached.map(|(_, p)| p));
        }
        match fetch().await {
            Ok(policy) => {
                self.failed.lock().expect("cache lock").remove(domain);
                // A new valid policy replaces the cached one (RFC 8461 §5),
                // `mode: none` included. If it cannot be kept it still
                // applies now; the next attempt fetches it again.
                let record = policy.to_record(domain, id, now_millis());
                if let Err(e) = core.store_sts_policy(access, record).await {
                    tracing::warn!("MTA-STS policy of {domain}: cannot keep it: {e}");
                }
                Ok(Some(policy))
            }
            Err(e) => {
                tracing::warn!("MTA-STS policy of {domain}: {e}");
                let mut failed = self.failed.lock().expect("cache lock");
                failed.retain(|_, (_, at)| at.elapsed() < retry_after_failure);
                failed.insert(domain.to_owned(), (id.to_owned(), Instant::now()));
                // RFC 8461 §5: no live policy, so the cached one applies
                // until it expires.
                Ok(cached.map(|(_, p)| p))
            }
        }
    }

    fn failed_recently(&self, domain: &str, id: &str, window: Duration) -> bool {
        self.failed
            .lock()
            .expect("cache lock")
            .get(domain)
            .is_some_and(|(failed_id, at)| failed_id == id && at.elapsed() < window)
    }
}

/// Fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461
/// §3.3) from `addrs` in turn, each attempt within `timeout`, verifying the
/// certificate for `mta-sts.<domain>` with `tls`.
pub async fn fetch(
    domain: &str,
    addrs: &[SocketAddr],
    tls: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Policy, String> {
    let host = format!("mta-sts.{domain}");
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|_| format!("{host} is not a valid name"))?;
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, fetch_from(&host, &name, *addr, tls.clone())).await {
            Ok(Ok(policy)) => return Ok(policy),
            Ok(Err(e)) => last = format!("{host} ({addr}): {e}"),
            Err(_) => last = format!("{host} ({addr}): timed out"),
        }
    }
    Err(last)
}

/// One HTTPS GET of the policy from one address.
async fn fetch_from(
    host: &str,
    name: &rustls_pki_types::ServerName<'static>,
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<Policy, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection is driven beside the request and ends with it.
    let _connection = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(connection));
    let request = Request::get("/.well-known/mta-sts.txt")
        .header(HOST, host)
        .header(USER_AGENT, "Rampart")
        .body(Empty::new())
        .map_err(|e| format!("HTTP: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    check_response(response.status(), response.headers())?;
    // Limited stops reading once the body passes the cap; a body cut short
    // (chunked or with a Content-Length) fails in hyper, so it cannot pass
    // for a shorter policy.
    let body = Limited::new(response.into_body(), MAX_POLICY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("policy larger than {} KB", MAX_POLICY_BYTES / 1024)
            } else {
                format!("HTTP: {e}")
            }
        })?
        .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| "policy is not UTF-8".to_string())?;
    Policy::parse(text)
}

/// The status and media type a policy answer must have (RFC 8461 §3.3).
fn check_response(status: StatusCode, headers: &hyper::HeaderMap) -> Result<(), String> {
    if status.is_redirection() {
        // RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
        return Err(format!("answered {status}; redirects are not followed"));
    }
    if status != StatusCode::OK {
        return Err(format!("answered {status}"));
    }
    // RFC 8461 §3.3: the media type is "text/plain" (parameters such as
    // charset allowed), so that a file an untrusted user uploaded elsewhere
    // on the host cannot pass for a policy.
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    match media_type {
        Some(t) if t.eq_ignore_ascii_case("text/plain") => Ok(()),
        Some(t) => Err(format!("policy served as {t:?}, not text/plain")),
        None => Err("policy served without a Content-Type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_match() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.matches("mail.example.com") && p.matches("MX1.example.net."));
        assert!(
            !p.matches("example.net") && !p.matches("a.b.example.net") && !p.matches("evil.com")
        );
        assert!(Policy::parse("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n").is_err());
        assert!(Policy::parse("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(Policy::parse("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        assert_eq!(
            Policy::parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            MAX_AGE_CAP
        );
        assert_eq!(
            Policy::parse("version: STSv1\nmode: none\nmax_age: 60\n")
                .unwrap()
                .mode,
            Mode::None
        );
    }

    #[test]
    fn stored_policies_come_back_whole_and_expire_after_max_age() {
        let p = Policy::parse("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n")
            .unwrap();
        let record = p.to_record("example.net", "20261127", 1_000);
        assert_eq!(record.expires_at, 1_000 + 86_400_000);
        assert_eq!(record.mode, "enforce");
        assert_eq!(Policy::from_record(&record), Some(p));
    }

    #[test]
    fn only_a_plain_text_200_is_a_policy() {
        let mut headers = hyper::HeaderMap::new();
        assert!(check_response(StatusCode::OK, &headers).is_err());
        headers.insert(CONTENT_TYPE, "Text/Plain; charset=utf-8".parse().unwrap());
        assert!(check_response(StatusCode::OK, &headers).is_ok());
        assert!(check_response(StatusCode::MOVED_PERMANENTLY, &headers).is_err());
        assert!(check_response(StatusCode::NOT_FOUND, &headers).is_err());
        headers.insert(CONTENT_TYPE, "text/html".parse().unwrap());
        assert!(check_response(StatusCode::OK, &headers).is_err());
    }
}
