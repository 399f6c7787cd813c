#![forbid(unsafe_code)]
//! Rampart's IMAP service (IMAP4rev2, RFC 9051, and IMAP4rev1, RFC 3501).
//! The [`Session`] decides every response and calls the core; the
//! [`serve_connection`] driver frames commands, upgrades to TLS, waits in
//! IDLE and enforces timeouts and connection limits.

pub mod command;
pub mod mime;
pub mod output;
pub mod parser;
pub mod render;
pub mod search;
pub mod session;
pub mod subject;
pub mod thread;
pub mod utf7;

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_core::Core;
use rampart_core::io::TimedStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use session::{ImapConfig, Limiter, Next, Reply, Session, StructureDeriver};

use crate::parser::Framer;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;

enum Outcome<S> {
    Closed,
    StartTls(S),
}

/// Serves one IMAP connection to the end. `implicit_tls` is for port 993.
#[allow(clippy::too_many_arguments)]
pub async fn serve_connection(
    core: Arc<Core>,
    config: Arc<ImapConfig>,
    limiter: Arc<Limiter>,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    implicit_tls: bool,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let refusal = if core.is_banned(peer.ip()) {
        Some("* BYE [UNAVAILABLE] Too many failed logins from your address\r\n")
    } else {
        None
    };
    let _slot = limiter.acquire(
        format!("addr:{}", peer.ip()),
        config.max_connections_per_address,
    );
    let refusal = refusal.or(_slot
        .is_none()
        .then_some("* BYE [UNAVAILABLE] Too many connections from your address\r\n"));
    let write_timeout = config.write_timeout;
    let mut session = Session::new(
        core,
        config,
        limiter.clone(),
        Some(peer.ip()),
        implicit_tls,
        acceptor.is_some() && !implicit_tls,
    );
    let mut stream = TimedStream::new(stream, write_timeout, "imap", Some(peer));
    if implicit_tls {
        let acceptor = acceptor.ok_or_else(|| std::io::Error::other("no TLS configuration"))?;
        let (mut tls, proof) =
            rampart_core::io::accept_tls(&acceptor, stream, "imap", peer).await?;
        session.tls_started(proof);
        if let Some(text) = refusal {
            tls.write_all(text.as_bytes()).await?;
            return tls.shutdown().await;
        }
        run(&mut session, tls, &shutdown, true).await?;
        return Ok(());
    }
    if let Some(text) = refusal {
        stream.write_all(text.as_bytes()).await?;
        return stream.shutdown().await;
    }
    match run(&mut session, stream, &shutdown, true).await? {
        Outcome::Closed => Ok(()),
        Outcome::StartTls(stream) => {
            let acceptor = acceptor.ok_or_else(|| std::io::Error::other("no TLS configuration"))?;
            let (tls, proof) =
                rampart_core::io::accept_tls(&acceptor, stream, "imap", peer).await?;
            session.tls_started(proof);
            run(&mut session, tls, &shutdown, false).await?;
            Ok(())
        }
    }
}

/// A connection whose socket can be told to acknowledge at once.
///
/// A client that sends a literal and the CRLF ending its command in two
/// writes (Python's imaplib does, after the `+`) holds the CRLF back under
/// Nagle's algorithm until the literal is acknowledged, and Linux delays
/// that ACK by up to 40 ms while the server has nothing to send: an APPEND
/// took 44 ms. Asking for a quick ACK while a command is incomplete ends
/// the wait (TCP_QUICKACK, which Linux clears again by itself).
trait QuickAck {
    fn quick_ack(&self);
}

impl QuickAck for TimedStream<TcpStream> {
    fn quick_ack(&self) {
        #[cfg(target_os = "linux")]
        let _ = self.get_ref().set_quickack(true);
    }
}

impl QuickAck for tokio_rustls::server::TlsStream<TimedStream<TcpStream>> {
    fn quick_ack(&self) {
        self.get_ref().0.quick_ack();
    }
}

/// What one read brought.
enum Read {
    Data,
    Eof,
    /// The session must end with these bytes.
    End(Vec<u8>),
}

async fn read_more<S: AsyncRead + Unpin>(
    session: &Session,
    stream: &mut S,
    framer: &mut Framer,
    shutdown: &CancellationToken,
) -> std::io::Result<Read> {
    let mut chunk = [0u8; READ_CHUNK];
    tokio::select! {
        _ = shutdown.cancelled() => Ok(Read::End(session.shutting_down())),
        read = timeout(session.timeout(), stream.read(&mut chunk)) => match read {
            Err(_) => Ok(Read::End(session.timed_out())),
            Ok(Ok(0)) => Ok(Read::Eof),
            Ok(Ok(n)) => {
                framer.push(&chunk[..n]);
                Ok(Read::Data)
            }
            Ok(Err(e)) => Err(e),
        },
    }
}

/// Reads one raw line (AUTHENTICATE response); `Err(bytes)` ends the session.
async fn read_line<S: AsyncRead + Unpin>(
    session: &Session,
    stream: &mut S,
    framer: &mut Framer,
    shutdown: &CancellationToken,
) -> std::io::Result<Result<Vec<u8>, Vec<u8>>> {
    loop {
        if let Some(line) = framer.take_line() {
            return Ok(Ok(line));
        }
        if framer.buffered() > session.config().frame.max_command_bytes {
            return Ok(Err(b"* BYE Line too long\r\n".to_vec()));
        }
        match read_more(session, stream, framer, shutdown).await? {
            Read::Data => {}
            Read::Eof => return Ok(Err(Vec::new())),
            Read::End(bytes) => return Ok(Err(bytes)),
        }
    }
}

/// Waits in IDLE: pushes updates until the client sends a line.
async fn idle<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session,
    stream: &mut S,
    framer: &mut Framer,
    shutdown: &CancellationToken,
    core: &Arc<Core>,
) -> std::io::Result<Result<Reply, Vec<u8>>> {
    let mut changes = core.mailbox_changes();
    // Anything that changed before we listened.
    let updates = session.idle_update().await;
    if !updates.is_empty() {
        stream.write_all(&updates).await?;
        stream.flush().await?;
    }
    let deadline = tokio::time::Instant::now() + session.timeout();
    let mut poll = tokio::time::interval(session.config().idle_poll);
    poll.reset();
    loop {
        if let Some(line) = framer.take_line() {
            return Ok(Ok(session.idle_line(&line)));
        }
        if framer.buffered() > session.config().frame.max_command_bytes {
            return Ok(Err(b"* BYE Line too long\r\n".to_vec()));
        }
        let mut chunk = [0u8; READ_CHUNK];
        let wake = tokio::select! {
            _ = shutdown.cancelled() => return Ok(Err(session.shutting_down())),
            _ = tokio::time::sleep_until(deadline) => return Ok(Err(session.timed_out())),
            read = stream.read(&mut chunk) => {
                let n = read?;
                if n == 0 {
                    return Ok(Err(Vec::new()));
                }
                framer.push(&chunk[..n]);
                false
            }
            changed = changes.recv() => match changed {
                Ok(id) => Some(id) == session.selected_mailbox(),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => false,
            },
            _ = poll.tick() => true,
        };
        if wake {
            let updates = session.idle_update().await;
            if !updates.is_empty() {
                stream.write_all(&updates).await?;
                stream.flush().await?;
            }
        }
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin + QuickAck>(
    session: &mut Session,
    mut stream: S,
    shutdown: &CancellationToken,
    greet: bool,
) -> std::io::Result<Outcome<S>> {
    if greet {
        stream.write_all(&session.greeting()).await?;
    }
    let core = session.core().clone();
    let mut framer = Framer::new(session.config().frame);
    loop {
        while let Some(frame) = framer.next_frame() {
            let mut reply = session.frame(frame).await;
            loop {
                if !matches!(reply.next, Next::More) {
                    reply.out.write_to(&mut stream).await?;
                }
                match reply.next {
                    Next::Command => break,
                    Next::More => {
                        // The next part (a FETCH's next batch) is read while
                        // this one is sent: a full download keeps both the
                        // disk and the socket busy.
                        let out = std::mem::take(&mut reply.out);
                        let (written, next) =
                            tokio::join!(out.write_to(&mut stream), session.more());
                        written?;
                        reply = next;
                    }
                    Next::Close => {
                        stream.flush().await?;
                        stream.shutdown().await?;
                        return Ok(Outcome::Closed);
                    }
                    Next::StartTls => {
                        // Anything pipelined after STARTTLS is dropped (RFC 9051 §6.2.1).
                        stream.flush().await?;
                        framer.clear();
                        return Ok(Outcome::StartTls(stream));
                    }
                    Next::AuthResponse => {
                        stream.flush().await?;
                        match read_line(session, &mut stream, &mut framer, shutdown).await? {
                            Ok(line) => reply = session.auth_response(&line).await,
                            Err(bytes) => {
                                stream.write_all(&bytes).await?;
                                stream.shutdown().await?;
                                return Ok(Outcome::Closed);
                            }
                        }
                    }
                    Next::Idle => {
                        stream.flush().await?;
                        match idle(session, &mut stream, &mut framer, shutdown, &core).await? {
                            Ok(r) => reply = r,
                            Err(bytes) => {
                                stream.write_all(&bytes).await?;
                                stream.shutdown().await?;
                                return Ok(Outcome::Closed);
                            }
                        }
                    }
                }
            }
        }
        stream.flush().await?;
        if framer.buffered() > 0 {
            // A command is under way (a literal announced, or a line in
            // pieces): acknowledge what comes at once (see QuickAck).
            stream.quick_ack();
        }
        match read_more(session, &mut stream, &mut framer, shutdown).await? {
            Read::Data => {}
            Read::Eof => return Ok(Outcome::Closed),
            Read::End(bytes) => {
                stream.write_all(&bytes).await?;
                stream.shutdown().await?;
                return Ok(Outcome::Closed);
            }
        }
    }
}
