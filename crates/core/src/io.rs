//! Connection helpers every protocol driver shares: a deadline on each write
//! (rule R11: a client that stops reading must not keep its task, buffers
//! and connection slot forever).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Proof that a TLS handshake completed on a connection; only
/// [`accept_tls`] makes one, and [`crate::SessionContext::tls_started`]
/// wants it, so that core's rule "passwords only over TLS" cannot be
/// talked around by a protocol crate (rule R7). Neither compiles outside core:
/// ```compile_fail
/// let _ = rampart_core::io::TlsEstablished { _sealed: () };
/// ```
/// ```compile_fail
/// let ctx = rampart_core::SessionContext {
///     session: rampart_core::SessionId::random(),
///     protocol: rampart_core::Protocol::Imap,
///     client: None,
///     tls: true,
/// };
/// ```
pub struct TlsEstablished {
    _sealed: (),
}

/// The server side of a TLS handshake, bounded in time; a failure is
/// logged (rate-limited) at the default level.
pub async fn accept_tls<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: S,
    service: &'static str,
    peer: SocketAddr,
) -> io::Result<(tokio_rustls::server::TlsStream<S>, TlsEstablished)> {
    let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no handshake within the time allowed",
        )),
    };
    match result {
        Ok(tls) => Ok((tls, TlsEstablished { _sealed: () })),
        Err(e) => {
            log_tls_failure(service, peer, &e);
            Err(e)
        }
    }
}

/// Connections closed because a write made no progress in time, since start.
static WRITE_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// How many connections were closed because the client stopped reading.
pub fn write_timeouts() -> u64 {
    WRITE_TIMEOUTS.load(Ordering::Relaxed)
}

/// A stream whose writes fail with [`io::ErrorKind::TimedOut`] when the
/// peer accepts no byte for `limit` (the socket buffer stays full). Reads
/// pass through; their timeouts are the sessions' own.
pub struct TimedStream<S> {
    inner: S,
    limit: Duration,
    peer: Option<SocketAddr>,
    service: &'static str,
    /// Armed when a write, flush or shutdown first waits; cleared on progress.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> TimedStream<S> {
    /// Wraps `inner`; `service` and `peer` name the connection in the log.
    pub fn new(inner: S, limit: Duration, service: &'static str, peer: Option<SocketAddr>) -> Self {
        TimedStream {
            inner,
            limit,
            peer,
            service,
            deadline: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Polls the deadline of a write that is waiting; `Ready` when it passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let sleep = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.deadline = None;
                let total = WRITE_TIMEOUTS.fetch_add(1, Ordering::Relaxed) + 1;
                let peer = self.peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
                tracing::warn!(
                    service = self.service,
                    %peer,
                    write_timeouts = total,
                    "closing connection: the client read nothing for {} s",
                    limit.as_secs()
                );
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading",
                ))
            }
        }
    }

    /// Runs one write-side poll under the deadline.
    fn guarded<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guarded(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guarded(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guarded(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guarded(cx, |s, cx| s.poll_shutdown(cx))
    }
}

/// Most rejected TLS handshakes logged at the default level per minute;
/// the rest are counted and summed up in the next line that is logged.
const TLS_FAILURES_LOGGED_PER_MINUTE: u64 = 10;

static TLS_FAILURE_LOG: std::sync::Mutex<(Option<std::time::Instant>, u64, u64)> =
    std::sync::Mutex::new((None, 0, 0));

/// Logs a TLS handshake a client broke off or failed (an untrusted
/// certificate, a protocol mismatch), so an administrator whose client
/// "cannot connect" sees why; rate-limited against floods.
pub fn log_tls_failure(service: &str, peer: SocketAddr, error: &io::Error) {
    let now = std::time::Instant::now();
    let suppressed = {
        let mut log = TLS_FAILURE_LOG.lock().unwrap_or_else(|e| e.into_inner());
        let (window, logged, suppressed) = &mut *log;
        if window.is_none_or(|w| now.duration_since(w) >= Duration::from_secs(60)) {
            *window = Some(now);
            *logged = 0;
        }
        if *logged >= TLS_FAILURES_LOGGED_PER_MINUTE {
            *suppressed += 1;
            return;
        }
        *logged += 1;
        std::mem::take(suppressed)
    };
    tracing::warn!(
        service,
        %peer,
        not_logged_before = suppressed,
        "TLS handshake failed: {error} (a client that does not trust the certificate breaks off here)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_the_write_out() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut timed = TimedStream::new(near, Duration::from_millis(200), "test", None);
        let big = vec![b'x'; 64 * 1024];
        let err = timed.write_all(&big).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(write_timeouts() >= 1);
        // What was written before is intact.
        let mut got = vec![0u8; 1024];
        far.read_exact(&mut got).await.unwrap();
        assert!(got.iter().all(|&b| b == b'x'));
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_served() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut timed = TimedStream::new(near, Duration::from_millis(500), "test", None);
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0u8; 512];
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                match far.read(&mut buf).await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        timed.write_all(&vec![b'y'; 32 * 1024]).await.unwrap();
        timed.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), 32 * 1024);
    }
}
