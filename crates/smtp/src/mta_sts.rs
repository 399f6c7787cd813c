//! MTA-STS (RFC 8461): a recipient domain's published demand that mail to
//! it travel only over verified TLS to the MX hosts it names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;

/// Largest policy file accepted (RFC 8461 §3.2 suggests 64 KB).
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Longest a policy is cached, whatever it says (RFC 8461: at most 31557600 s).
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
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode {other:?}")),
                    })
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

/// Policies fetched so far, by domain, with the TXT id they were fetched for.
#[derive(Default)]
pub struct PolicyCache {
    entries: Mutex<HashMap<String, (String, Policy, Instant)>>,
}

impl PolicyCache {
    /// The cached policy of `domain` if it is still fresh and `id` has not changed.
    pub fn get(&self, domain: &str, id: &str) -> Option<Policy> {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(domain)
            .filter(|(cached_id, _, expires)| cached_id == id && *expires > Instant::now())
            .map(|(_, policy, _)| policy.clone())
    }

    /// A policy that is cached but whose TXT record vanished or whose
    /// refresh failed: still honoured until it expires (RFC 8461 §5.1).
    pub fn get_any_fresh(&self, domain: &str) -> Option<Policy> {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(domain)
            .filter(|(_, _, expires)| *expires > Instant::now())
            .map(|(_, policy, _)| policy.clone())
    }

    /// Stores a policy.
    pub fn put(&self, domain: &str, id: &str, policy: Policy) {
        let expires = Instant::now() + Duration::from_secs(policy.max_age);
        self.entries
            .lock()
            .expect("cache lock")
            .insert(domain.to_owned(), (id.to_owned(), policy, expires));
    }
}

/// Fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt` from `addrs`,
/// verifying the certificate with `tls`.
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
        let attempt = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to {host} ({addr}): {e}"))?;
            let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            stream
                .write_all(
                    format!(
                        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: Rampart\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await
                .map_err(|e| format!("{host}: {e}"))?;
            let mut response = Vec::new();
            match (&mut stream)
                .take((MAX_POLICY_BYTES + 16 * 1024) as u64)
                .read_to_end(&mut response)
                .await
            {
                Ok(_) => {}
                // Many servers close "Connection: close" responses without a
                // TLS close_notify; the response is whole when it parses.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
                }
                Err(e) => return Err(format!("{host}: {e}")),
            }
            parse_response(&response)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(policy)) => return Ok(policy),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("{host}: timed out"),
        }
    }
    Err(last)
}

/// Takes the policy out of an HTTP/1.1 response (200, not chunked).
fn parse_response(response: &[u8]) -> Result<Policy, String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("policy fetch answered {status:?}"));
    }
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return Err("chunked policy responses are not supported".into());
    }
    let body = &response[split + 4..];
    if body.len() > MAX_POLICY_BYTES {
        return Err("policy larger than 64 KB".into());
    }
    // A connection cut short must not pass for a shorter policy.
    let declared = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if declared.is_some_and(|n| n != body.len()) {
        return Err("policy response cut short".into());
    }
    Policy::parse(&String::from_utf8_lossy(body))
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
        assert_eq!(
            Policy::parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            MAX_AGE_CAP
        );
        let ok = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\nmode: none\nmax_age: 60\n");
        assert_eq!(ok.unwrap().mode, Mode::None);
        assert!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        let cut = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\nversion: STSv1\nmode: enforce\nmx: a\nmax_age: 60\n");
        assert_eq!(cut.unwrap_err(), "policy response cut short");
    }
}
