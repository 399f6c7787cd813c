//! The outbound SMTP client the queue worker uses to hand a message to the next hop.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest reply line accepted from a remote server.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 100;

/// A reply from the remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    /// The three-digit code.
    pub code: u16,
    /// The text of every line, joined with spaces.
    pub text: String,
}

impl RemoteReply {
    fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl std::fmt::Display for RemoteReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    /// The next hop took responsibility for it.
    Accepted,
    /// Try again later.
    Temporary(String),
    /// Give up.
    Permanent(String),
}

/// A message to hand over.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Our name for EHLO.
    pub helo: &'a str,
    /// Envelope sender (empty for bounces).
    pub sender: &'a str,
    /// Envelope recipients, all for this next hop.
    pub recipients: &'a [String],
    /// The message, CRLF line endings.
    pub message: &'a [u8],
    /// User name and password for AUTH PLAIN (smarthosts); sent only over TLS.
    pub auth: Option<(&'a str, &'a str)>,
    /// Require TLS, verified with this configuration, instead of opportunistic TLS.
    pub verified_tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

/// Why a whole transaction failed before recipients could be judged one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionError {
    /// Whether retrying can help.
    pub permanent: bool,
    /// What went wrong.
    pub reason: String,
}

fn temporary(reason: impl Into<String>) -> TransactionError {
    TransactionError {
        permanent: false,
        reason: reason.into(),
    }
}

fn from_reply(stage: &str, reply: &RemoteReply) -> TransactionError {
    TransactionError {
        permanent: reply.code >= 500,
        reason: format!("{stage}: {reply}"),
    }
}

struct Conn<S> {
    stream: BufReader<S>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn reply(&mut self) -> Result<RemoteReply, TransactionError> {
        let mut text = Vec::new();
        for _ in 0..MAX_REPLY_LINES {
            let mut line = Vec::new();
            let read = timeout(self.timeout, async {
                let mut limited = (&mut self.stream).take(MAX_REPLY_LINE as u64);
                limited.read_until(b'\n', &mut line).await
            })
            .await
            .map_err(|_| temporary("timed out waiting for the remote server"))?
            .map_err(|e| temporary(format!("connection lost: {e}")))?;
            if read == 0 {
                return Err(temporary("the remote server closed the connection"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| temporary(format!("malformed reply {line:?}")))?;
            text.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(RemoteReply {
                    code,
                    text: text.join(" "),
                });
            }
        }
        Err(temporary("reply too long"))
    }

    async fn command(&mut self, line: &str) -> Result<RemoteReply, TransactionError> {
        self.send(line.as_bytes()).await?;
        self.send(b"\r\n").await?;
        self.reply().await
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), TransactionError> {
        timeout(self.timeout, self.stream.get_mut().write_all(data))
            .await
            .map_err(|_| temporary("timed out sending to the remote server"))?
            .map_err(|e| temporary(format!("connection lost: {e}")))
    }
}

use tokio::io::AsyncReadExt;

/// Hands `outgoing` to the SMTP server at `host:port`; returns one result per
/// recipient. TLS is used whenever the server offers STARTTLS (opportunistic,
/// RFC 7435: the certificate is not checked, since nothing says which to
/// expect); if the TLS handshake fails, the delivery is tried again in clear
/// text, as other MTAs do at this security level.
pub async fn send(
    host: &str,
    addrs: &[std::net::SocketAddr],
    outgoing: &Outgoing<'_>,
    io_timeout: Duration,
) -> Result<Vec<RecipientResult>, TransactionError> {
    match attempt(host, addrs, outgoing, io_timeout, true).await {
        // Never fall back to clear text with a password to send or a
        // certificate to verify.
        Err(e)
            if e.reason.starts_with(TLS_FAILED)
                && outgoing.auth.is_none()
                && outgoing.verified_tls.is_none() =>
        {
            tracing::warn!("{host}: {}; delivering without TLS", e.reason);
            attempt(host, addrs, outgoing, io_timeout, false).await
        }
        other => other,
    }
}

const TLS_FAILED: &str = "TLS handshake failed";

async fn attempt(
    host: &str,
    addrs: &[std::net::SocketAddr],
    outgoing: &Outgoing<'_>,
    io_timeout: Duration,
    use_tls: bool,
) -> Result<Vec<RecipientResult>, TransactionError> {
    let tcp = timeout(io_timeout, TcpStream::connect(addrs))
        .await
        .map_err(|_| temporary(format!("timed out connecting to {host}")))?
        .map_err(|e| temporary(format!("cannot connect to {host}: {e}")))?;
    // Commands are small writes that each wait for a reply: Nagle's
    // algorithm would hold each back until the peer's delayed ACK.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("smtp client: TCP_NODELAY not set: {e}");
    }
    let mut conn = Conn {
        stream: BufReader::new(tcp),
        timeout: io_timeout,
    };
    let greeting = conn.reply().await?;
    if greeting.code != 220 {
        return Err(from_reply("greeting", &greeting));
    }
    let ehlo = hello(&mut conn, outgoing.helo).await?;
    let offers_tls = ehlo
        .text
        .split(' ')
        .any(|w| w.eq_ignore_ascii_case("STARTTLS"));
    if !(use_tls && offers_tls) {
        if outgoing.auth.is_some() || outgoing.verified_tls.is_some() {
            return Err(temporary(format!(
                "{host} offers no STARTTLS: the relay password is never sent in clear text"
            )));
        }
        return transact(&mut conn, outgoing, &ehlo).await;
    }
    let reply = conn.command("STARTTLS").await?;
    if reply.code != 220 {
        if outgoing.auth.is_some() || outgoing.verified_tls.is_some() {
            return Err(from_reply("STARTTLS", &reply));
        }
        // The offer was withdrawn: carry on in clear text on this connection.
        return transact(&mut conn, outgoing, &ehlo).await;
    }
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| temporary(format!("{TLS_FAILED}: {host} is not a valid server name")))?;
    let tcp = conn.stream.into_inner();
    let connector = match &outgoing.verified_tls {
        Some(config) => tokio_rustls::TlsConnector::from(config.clone()),
        None => opportunistic_tls(),
    };
    let tls = timeout(io_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| temporary(format!("{TLS_FAILED}: timed out")))?
        .map_err(|e| temporary(format!("{TLS_FAILED}: {e}")))?;
    let mut conn = Conn {
        stream: BufReader::new(tls),
        timeout: io_timeout,
    };
    let ehlo = hello(&mut conn, outgoing.helo).await?;
    if let Some((user, password)) = outgoing.auth {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        let reply = conn.command(&format!("AUTH PLAIN {token}")).await?;
        if reply.code != 235 {
            // A refused login is a configuration problem: keep the mail queued.
            return Err(temporary(format!("AUTH at {host}: {reply}")));
        }
    }
    transact(&mut conn, outgoing, &ehlo).await
}

/// EHLO, falling back to HELO; returns the EHLO reply (its text lists the extensions).
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    helo: &str,
) -> Result<RemoteReply, TransactionError> {
    let ehlo = conn.command(&format!("EHLO {helo}")).await?;
    if ehlo.is_positive() {
        return Ok(ehlo);
    }
    let reply = conn.command(&format!("HELO {helo}")).await?;
    if !reply.is_positive() {
        return Err(from_reply("HELO", &reply));
    }
    Ok(reply)
}

/// MAIL, RCPT for each recipient, DATA, QUIT.
async fn transact<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    outgoing: &Outgoing<'_>,
    ehlo: &RemoteReply,
) -> Result<Vec<RecipientResult>, TransactionError> {
    // SIZE only where the server declared it (RFC 1870); others may refuse the parameter.
    let offers_size = ehlo.text.split(' ').any(|w| w.eq_ignore_ascii_case("SIZE"));
    let mail = if offers_size {
        format!(
            "MAIL FROM:<{}> SIZE={}",
            outgoing.sender,
            outgoing.message.len()
        )
    } else {
        format!("MAIL FROM:<{}>", outgoing.sender)
    };
    let mail = conn.command(&mail).await?;
    if !mail.is_positive() {
        return Err(from_reply("MAIL FROM", &mail));
    }
    let mut results = Vec::with_capacity(outgoing.recipients.len());
    for rcpt in outgoing.recipients {
        let reply = conn.command(&format!("RCPT TO:<{rcpt}>")).await?;
        results.push(match reply.code {
            200..=299 => RecipientResult::Accepted,
            400..=499 => RecipientResult::Temporary(format!("RCPT TO: {reply}")),
            _ => RecipientResult::Permanent(format!("RCPT TO: {reply}")),
        });
    }
    if !results.contains(&RecipientResult::Accepted) {
        let _ = conn.command("QUIT").await;
        return Ok(results);
    }
    let data = conn.command("DATA").await?;
    if data.code != 354 {
        return Err(from_reply("DATA", &data));
    }
    conn.send(&dot_stuff(outgoing.message)).await?;
    conn.send(b".\r\n").await?;
    let done = conn.reply().await?;
    let _ = conn.command("QUIT").await;
    if !done.is_positive() {
        let err = from_reply("end of DATA", &done);
        for r in results.iter_mut() {
            if *r == RecipientResult::Accepted {
                *r = if err.permanent {
                    RecipientResult::Permanent(err.reason.clone())
                } else {
                    RecipientResult::Temporary(err.reason.clone())
                };
            }
        }
    }
    Ok(results)
}

/// A TLS client that encrypts without authenticating the server.
fn opportunistic_tls() -> tokio_rustls::TlsConnector {
    use std::sync::{Arc, OnceLock};
    static CONFIG: OnceLock<Arc<tokio_rustls::rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let verifier = Arc::new(AnyCertificate(provider.clone()));
        Arc::new(
            tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
        )
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// Accepts any certificate, but still checks that the handshake is signed by
/// the key in it (so the session is really encrypted to that peer).
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Escapes lines that start with a dot and makes sure the message ends with CRLF.
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n..c"), b"..a\r\nb\r\n...c\r\n");
    }
}
