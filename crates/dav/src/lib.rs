#![forbid(unsafe_code)]
//! Rampart's CalDAV (RFC 4791) and CardDAV (RFC 6352) server: calendars,
//! task lists and address books over WebDAV (RFC 4918), with sync-collection
//! (RFC 6578) and well-known discovery (RFC 6764).
//!
//! Every read and write goes through [`rampart_core::Core`] with the
//! caller's [`rampart_core::Access`]; this crate parses HTTP, XML,
//! iCalendar and vCard and decides nothing about rights.

mod caller;
mod copymove;
pub mod directory;
pub mod discovery;
mod error;
mod handler;
pub mod ical;
mod mkcol;
pub mod paths;
mod principals;
mod props;
mod report;
mod resources;
pub mod vcard;
pub mod xml;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use rampart_core::io::TimedStream;
use rampart_core::{Access, Core, Network, SessionContext};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use error::DavError;

/// Settings and limits of the DAV service.
#[derive(Clone, Debug)]
pub struct DavConfig {
    /// Largest request body, in bytes (413 beyond).
    pub max_request_bytes: usize,
    /// Largest iCalendar object or vCard, in bytes (403 max-resource-size).
    pub max_resource_bytes: usize,
    /// Deepest XML nesting in a request.
    pub max_xml_depth: usize,
    /// Most XML elements in a request.
    pub max_xml_elements: usize,
    /// Most components in one iCalendar object (properties in one vCard).
    pub max_components: usize,
    /// Most recurrence instances computed for one object.
    pub max_instances: usize,
    /// Longest time range an `expand` may ask for, in days.
    pub max_expand_days: u32,
    /// Most hrefs in one multiget.
    pub max_multiget_hrefs: usize,
    /// Most resources one query or sync returns (507 beyond).
    pub max_results: usize,
    /// How long a client may take to send a request's head.
    pub header_timeout: Duration,
    /// How long a write to a client may make no progress.
    pub write_timeout: Duration,
    /// Where mail clients are sent by autoconfig and autodiscover.
    pub discovery: discovery::Discovery,
}

impl Default for DavConfig {
    fn default() -> Self {
        DavConfig {
            max_request_bytes: 10 * 1024 * 1024,
            max_resource_bytes: 1024 * 1024,
            max_xml_depth: 32,
            max_xml_elements: 20_000,
            max_components: 2_000,
            max_instances: 20_000,
            max_expand_days: 3_700,
            max_multiget_hrefs: 5_000,
            max_results: 50_000,
            header_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            discovery: discovery::Discovery::default(),
        }
    }
}

/// The verified credentials of a connection, so that a keep-alive
/// connection pays for the password hash once, not on every request:
/// a hash of what the client sent, and the access it was given.
pub(crate) type Login = Arc<Mutex<Option<([u8; 32], Access)>>>;

/// Serves one HTTPS connection (TLS first), until the client closes it or
/// the server shuts down.
pub async fn serve_connection(
    core: Arc<Core>,
    config: Arc<DavConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let stream = TimedStream::new(stream, config.write_timeout, "dav", Some(peer));
    let (tls, proof) = rampart_core::io::accept_tls(&acceptor, stream, "dav", peer).await?;
    let mut ctx = SessionContext::new(Network::Dav, Some(peer.ip()));
    ctx.tls_started(proof);
    serve_http(core, config, tls, ctx, shutdown).await
}

/// Serves HTTP/1.1 on an established stream.
async fn serve_http<S>(
    core: Arc<Core>,
    config: Arc<DavConfig>,
    stream: S,
    ctx: SessionContext,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = config.header_timeout;
    let ctx = Arc::new(ctx);
    let login: Login = Arc::new(Mutex::new(None));
    let service = service_fn(move |request: Request<Incoming>| {
        let core = core.clone();
        let config = config.clone();
        let ctx = ctx.clone();
        let login = login.clone();
        async move {
            Ok::<Response<Full<Bytes>>, std::convert::Infallible>(
                handler::handle(&core, &config, &ctx, &login, request).await,
            )
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        done = connection.as_mut() => done.map_err(std::io::Error::other),
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await.map_err(std::io::Error::other)
        }
    }
}
