#![forbid(unsafe_code)]
//! Rampart's SMTP service: inbound mail for local domains (MX) and
//! submission from authenticated users. The [`Session`] decides every reply;
//! [`serve_connection`] is the thin tokio driver that frames lines, reads
//! message bodies, upgrades to TLS and enforces timeouts.

pub mod authres;
mod client;
pub mod data;
pub mod dkim;
pub mod mta_sts;
pub mod own_domain;
pub mod pregreet;
pub mod queue;
mod session;
pub mod verify;

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_core::Core;
use rampart_core::io::TimedStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use session::{Mode, Next, Reply, Session, SmtpConfig, rfc5322_date};

use crate::data::{DataProgress, DataReader};

/// How a run over one stream ended.
enum Outcome<S> {
    Closed,
    StartTls(S),
}

/// Serves one SMTP connection to the end. `implicit_tls` is for port 465.
pub async fn serve_connection(
    core: Arc<Core>,
    config: Arc<SmtpConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    implicit_tls: bool,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let deadline = Instant::now() + config.session_timeout;
    let mut session = Session::new(
        core,
        config,
        Some(peer.ip()),
        implicit_tls,
        acceptor.is_some() && !implicit_tls,
    );
    let stream = TimedStream::new(stream, session.config().write_timeout, "smtp", Some(peer));
    if implicit_tls {
        let acceptor = acceptor.ok_or_else(|| std::io::Error::other("no TLS configuration"))?;
        let (tls, proof) = rampart_core::io::accept_tls(&acceptor, stream, "smtp", peer).await?;
        session.tls_started(proof);
        run(&mut session, tls, deadline, &shutdown, true).await?;
        return Ok(());
    }
    match run(&mut session, stream, deadline, &shutdown, true).await? {
        Outcome::Closed => Ok(()),
        Outcome::StartTls(stream) => {
            let acceptor = acceptor.ok_or_else(|| std::io::Error::other("no TLS configuration"))?;
            let (tls, proof) =
                rampart_core::io::accept_tls(&acceptor, stream, "smtp", peer).await?;
            session.tls_started(proof);
            run(&mut session, tls, deadline, &shutdown, false).await?;
            Ok(())
        }
    }
}

/// Reads more input, minding the idle timeout, the session deadline and shutdown.
/// Returns `Ok(None)` when the session must end with `reply` sent first.
async fn read_more<S: AsyncRead + Unpin>(
    session: &Session,
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
    shutdown: &CancellationToken,
) -> std::io::Result<Result<usize, Reply>> {
    let idle = Instant::now() + session.config().idle_timeout;
    let mut chunk = [0u8; 8192];
    tokio::select! {
        _ = shutdown.cancelled() => Ok(Err(Reply {
            text: format!("421 4.3.2 {} shutting down\r\n", session.config().hostname),
            next: Next::Close,
        })),
        read = timeout_at(idle.min(deadline), stream.read(&mut chunk)) => match read {
            Err(_) => Ok(Err(session.timed_out())),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(Ok(n))
            }
            Ok(Err(e)) => Err(e),
        },
    }
}

/// On the MX, holds the greeting back for `pregreet_wait` and drops a
/// client that talks meanwhile (see [`pregreet`]); whether to go on.
async fn pregreet_wait<S: AsyncRead + AsyncWrite + Unpin>(
    session: &Session,
    stream: &mut S,
) -> std::io::Result<bool> {
    let config = session.config();
    let Some(ip) = session.client_ip() else {
        return Ok(true);
    };
    if config.mode != Mode::Mx
        || config.pregreet_wait.is_zero()
        || !config.pregreet.must_wait(ip, config.pregreet_skip_loopback)
    {
        return Ok(true);
    }
    let mut byte = [0u8; 1];
    match tokio::time::timeout(config.pregreet_wait, stream.read(&mut byte)).await {
        Err(_) => {
            config.pregreet.passed(ip);
            Ok(true)
        }
        Ok(Ok(0)) => Ok(false),
        Ok(Ok(_)) => {
            tracing::info!(client = %ip, "smtp: client talked before the greeting; dropped");
            // RFC 5321 §3.1 and §4.3.1: the client waits for the 220 first.
            let text = format!(
                "554 5.5.1 {} Protocol error: you talked before the greeting\r\n",
                config.hostname
            );
            stream.write_all(text.as_bytes()).await?;
            stream.shutdown().await?;
            Ok(false)
        }
        Ok(Err(e)) => Err(e),
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session,
    mut stream: S,
    deadline: Instant,
    shutdown: &CancellationToken,
    greet: bool,
) -> std::io::Result<Outcome<S>> {
    if greet && !pregreet_wait(session, &mut stream).await? {
        return Ok(Outcome::Closed);
    }
    if greet {
        stream.write_all(session.greeting().as_bytes()).await?;
        if session.refused() {
            stream.shutdown().await?;
            return Ok(Outcome::Closed);
        }
    }
    let max_line = session.config().max_command_line;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out = String::new();
    let mut awaiting_auth = false;
    let mut discarding = false;
    loop {
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let reply = if discarding || line.len() > max_line {
                discarding = false;
                session.line_too_long()
            } else if awaiting_auth {
                session.auth_response(&line).await
            } else {
                session.command(&line).await
            };
            out.push_str(&reply.text);
            awaiting_auth = reply.next == Next::AuthResponse;
            match reply.next {
                Next::Command | Next::AuthResponse => {}
                Next::Close => {
                    stream.write_all(out.as_bytes()).await?;
                    stream.shutdown().await?;
                    return Ok(Outcome::Closed);
                }
                Next::StartTls => {
                    // Anything pipelined after STARTTLS is dropped (RFC 3207 §4.2).
                    stream.write_all(out.as_bytes()).await?;
                    stream.flush().await?;
                    return Ok(Outcome::StartTls(stream));
                }
                Next::Data => {
                    stream.write_all(out.as_bytes()).await?;
                    out.clear();
                    let config = session.config();
                    let mut reader =
                        DataReader::new(config.max_message_bytes, config.max_data_line);
                    let mut pending = std::mem::take(&mut buf);
                    let result = loop {
                        if let DataProgress::Done { result, consumed } = reader.feed(&pending) {
                            buf = pending.split_off(consumed);
                            break result;
                        }
                        pending.clear();
                        match read_more(session, &mut stream, &mut pending, deadline, shutdown)
                            .await?
                        {
                            Ok(0) => return Ok(Outcome::Closed),
                            Ok(_) => {}
                            Err(reply) => {
                                stream.write_all(reply.text.as_bytes()).await?;
                                return Ok(Outcome::Closed);
                            }
                        }
                    };
                    let reply = session.message(result).await;
                    out.push_str(&reply.text);
                }
                Next::Bdat { size, last } => {
                    // Keep at most one byte over the limit: enough for the
                    // session to refuse the message, without holding it.
                    let keep = session.config().max_message_bytes + 1;
                    let mut chunk = Vec::new();
                    let mut remaining = size;
                    loop {
                        let take = remaining.min(buf.len());
                        let room = keep.saturating_sub(chunk.len()).min(take);
                        chunk.extend_from_slice(&buf[..room]);
                        buf.drain(..take);
                        remaining -= take;
                        if remaining == 0 {
                            break;
                        }
                        match read_more(session, &mut stream, &mut buf, deadline, shutdown).await? {
                            Ok(0) => return Ok(Outcome::Closed),
                            Ok(_) => {}
                            Err(reply) => {
                                stream.write_all(reply.text.as_bytes()).await?;
                                return Ok(Outcome::Closed);
                            }
                        }
                    }
                    let reply = session.chunk(&chunk, last).await;
                    out.push_str(&reply.text);
                    if reply.next == Next::Close {
                        stream.write_all(out.as_bytes()).await?;
                        return Ok(Outcome::Closed);
                    }
                }
            }
        }
        if buf.len() > max_line {
            // An over-long line without its end yet: drop what we have and
            // answer once its end arrives.
            buf.clear();
            discarding = true;
        }
        // Pipelining: replies go out once every complete command read so far is answered.
        if !out.is_empty() {
            stream.write_all(out.as_bytes()).await?;
            out.clear();
        }
        match read_more(session, &mut stream, &mut buf, deadline, shutdown).await? {
            Ok(0) => return Ok(Outcome::Closed),
            Ok(_) => {}
            Err(reply) => {
                stream.write_all(reply.text.as_bytes()).await?;
                let _ = stream.shutdown().await;
                return Ok(Outcome::Closed);
            }
        }
    }
}
