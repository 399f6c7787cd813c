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

/// Hands `outgoing` to the SMTP server at `host:port`; returns one result per recipient.
pub async fn send(
    host: &str,
    port: u16,
    outgoing: &Outgoing<'_>,
    io_timeout: Duration,
) -> Result<Vec<RecipientResult>, TransactionError> {
    let tcp = timeout(io_timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| temporary(format!("timed out connecting to {host}:{port}")))?
        .map_err(|e| temporary(format!("cannot connect to {host}:{port}: {e}")))?;
    let mut conn = Conn {
        stream: BufReader::new(tcp),
        timeout: io_timeout,
    };
    let greeting = conn.reply().await?;
    if greeting.code != 220 {
        return Err(from_reply("greeting", &greeting));
    }
    let ehlo = conn.command(&format!("EHLO {}", outgoing.helo)).await?;
    if !ehlo.is_positive() {
        let helo = conn.command(&format!("HELO {}", outgoing.helo)).await?;
        if !helo.is_positive() {
            return Err(from_reply("HELO", &helo));
        }
    }
    let mail = conn
        .command(&format!(
            "MAIL FROM:<{}> SIZE={}",
            outgoing.sender,
            outgoing.message.len()
        ))
        .await?;
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
