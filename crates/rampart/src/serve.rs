//! `rampart serve`: bind every configured service, drop root, open the
//! store, set up a first domain and administrator, and serve until a signal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rampart_core::{Core, ServiceRole};
use rampart_store::OpenMode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Service};
use crate::{privileges, tls};

/// A listening socket of one service.
pub struct Bound {
    service: Service,
    addr: SocketAddr,
    listener: std::net::TcpListener,
}

/// Binds every configured address, failing with a message that names the
/// service, the address and the fix.
pub fn bind_all(config: &Config) -> anyhow::Result<Vec<Bound>> {
    let mut bound = Vec::new();
    for service in Service::ALL {
        for &addr in config.listen.addresses(service) {
            let listener = std::net::TcpListener::bind(addr).map_err(|e| {
                let why = match e.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        "the address is already in use: another program (or another rampart) holds it; stop it, or change".to_string()
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "permission denied: ports below 1024 need root (Rampart drops to [server] run_as after binding), or change".to_string()
                    }
                    std::io::ErrorKind::AddrNotAvailable => {
                        "this machine has no such address; change".to_string()
                    }
                    _ => format!("{e}; check"),
                };
                anyhow::anyhow!("cannot listen for {service} on {addr}: {why} listen.{service} in the config")
            })?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr().unwrap_or(addr);
            bound.push(Bound {
                service,
                addr,
                listener,
            });
        }
    }
    Ok(bound)
}

/// Everything prepared before the runtime starts (as root, if started so).
pub struct Prepared {
    config: Config,
    bound: Vec<Bound>,
    tls: Arc<rustls::ServerConfig>,
    tls_note: String,
}

/// The part of start-up that may need root: TLS files, binding, dropping privileges.
pub fn prepare(config: Config) -> anyhow::Result<Prepared> {
    let data_dir = &config.server.data_dir;
    check_data_dir(data_dir)?;
    let files = tls::prepare(&config)?;
    let loaded = tls::load(&files)?;
    let tls = loaded.config.clone();
    let tls_note = tls_banner(&files, &loaded);
    let bound = bind_all(&config)?;
    privileges::drop_if_root(config.server.run_as.as_deref(), data_dir)?;
    Ok(Prepared {
        config,
        bound,
        tls,
        tls_note,
    })
}

/// The banner's TLS lines: which certificate, its SHA-256 fingerprint (to
/// compare with what a client shows), and how to trust a generated one once.
fn tls_banner(files: &tls::TlsFiles, loaded: &tls::Loaded) -> String {
    let until = loaded
        .valid_until
        .as_deref()
        .map(|d| format!(", valid until {d}"))
        .unwrap_or_default();
    let mut note = if files.generated {
        format!(
            "certificate {} made by Rampart{until} (set [tls] cert and key for a real one)",
            files.cert.display()
        )
    } else {
        format!("certificate {}{until}", files.cert.display())
    };
    note.push_str(&format!("\n  SHA-256 fingerprint {}", loaded.fingerprint));
    if let Some(event) = &files.event {
        note.push_str(&format!("\n  {event}"));
    }
    if let Some(ca) = &files.ca {
        note.push_str(&format!(
            "\n  To trust it once for every service, import {} into Thunderbird (Settings, Privacy & Security, Manage Certificates, Authorities) or the system",
            ca.display()
        ));
    }
    note
}

/// Refuses a data directory path that exists but is not a directory.
fn check_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "data directory {} exists but is not a directory: point --data (or server.data_dir) at a directory",
            dir.display()
        );
    }
    Ok(())
}

/// Opens the store, bootstraps, prints the services and serves until SIGINT/SIGTERM.
pub async fn run(prepared: Prepared, first_domain: &str) -> anyhow::Result<()> {
    let Prepared {
        config,
        bound,
        tls,
        tls_note,
    } = prepared;
    // Watch for signals before anything is announced, so that a stop
    // request sent as soon as the banner appears still shuts down cleanly.
    let mut signals = Signals::install()?;
    let (checkpoints_tx, checkpoints_rx) = tokio::sync::mpsc::unbounded_channel();
    let store = rampart_store::open(&config.store_config(), OpenMode::CreateIfMissing)
        .await
        .context("cannot open the store")?;
    let backend = store.backend_name();
    let (core, privileged) = Core::new(
        store,
        config.core_config(),
        config.recorder(Some(checkpoints_tx))?,
    )
    .await
    .context("cannot start the core")?;
    let core = Arc::new(crate::cli::with_derivers(core));
    core.hear_other_nodes()
        .await
        .context("cannot read the failed-login bans")?;
    let operator = crate::operator(&privileged);
    let bootstrap = core
        .bootstrap(&operator, first_domain)
        .await
        .context("first-start set-up failed")?;

    let signed = crate::cli::ensure_dkim_keys(&core, &operator, &config.dkim.selector)
        .await
        .context("cannot make DKIM keys")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Rampart {} serving from {} ({backend} store)",
        env!("CARGO_PKG_VERSION"),
        config.server.data_dir.display()
    )?;
    writeln!(out, "TLS: {tls_note}")?;
    for service in Service::ALL {
        let addrs: Vec<String> = bound
            .iter()
            .filter(|b| b.service == service)
            .map(|b| b.addr.to_string())
            .collect();
        let status = if addrs.is_empty() {
            "off".to_string()
        } else {
            format!("{}  ({})", addrs.join(", "), availability(service))
        };
        writeln!(out, "  {:<12} {status}", service.key())?;
    }
    for domain in &signed {
        writeln!(
            out,
            "Made DKIM keys for {domain}: `rampart dns {domain}` lists the records to publish."
        )?;
    }
    match &bootstrap {
        Some(b) => {
            writeln!(
                out,
                "First start: created domain {} and its administrator",
                b.domain
            )?;
            writeln!(out, "  address:  {}", b.admin_address)?;
            writeln!(out, "  password: {}", b.admin_password)?;
            writeln!(
                out,
                "This password is shown only once. Change it with `rampart user passwd {}`.",
                b.admin_address
            )?;
        }
        None => writeln!(out, "Using the existing store; no new credentials.")?,
    }
    out.flush()?;
    drop(out);

    let shutdown = CancellationToken::new();
    let sessions = TaskTracker::new();
    let services = Arc::new(Services {
        core: core.clone(),
        acceptor: TlsAcceptor::from(tls),
        // Each service gets the one role it acts in (rule R10).
        smtp_mx: Arc::new(rampart_smtp::SmtpConfig {
            verifier: config.verifier()?,
            inbound: Some(privileged.service(ServiceRole::InboundDelivery)),
            ..config.smtp_config(rampart_smtp::Mode::Mx)
        }),
        smtp_submission: Arc::new(rampart_smtp::SmtpConfig {
            signer: Some(privileged.service(ServiceRole::DkimSigner)),
            ..config.smtp_config(rampart_smtp::Mode::Submission)
        }),
        imap: Arc::new(config.imap_config()),
        imap_limiter: Arc::new(rampart_imap::Limiter::default()),
        dav_limiter: Arc::new(rampart_imap::Limiter::default()),
        dav_max_per_address: config.dav.max_connections_per_address,
        dav: Arc::new(rampart_dav::DavConfig {
            discovery: discovery(&config, &bound),
            ..config.dav.dav_config()
        }),
        shutdown: shutdown.clone(),
    });
    sessions.spawn(sweep_blobs(core.clone(), shutdown.clone()));
    {
        let (core, shutdown) = (core.clone(), shutdown.clone());
        sessions.spawn(async move {
            core.run_text_indexer(TEXT_INDEX_PASS, shutdown.cancelled())
                .await
        });
    }
    sessions.spawn(mail_checkpoints(
        core.clone(),
        privileged.service(ServiceRole::Witness),
        config.ledger.witness_address.clone(),
        config.server.hostname.clone(),
        checkpoints_rx,
        shutdown.clone(),
    ));
    let queue_config = Arc::new(rampart_smtp::queue::QueueConfig {
        worker: Some(privileged.service(ServiceRole::QueueWorker)),
        reports: Some(privileged.service(ServiceRole::ReportSender)),
        ..config.queue_config()?
    });
    sessions.spawn(rampart_smtp::queue::run(
        core.clone(),
        queue_config,
        shutdown.clone(),
    ));
    let mut accept_loops = Vec::new();
    for b in bound {
        let listener = TcpListener::from_std(b.listener)?;
        accept_loops.push(tokio::spawn(accept_loop(
            b.service,
            listener,
            services.clone(),
            sessions.clone(),
        )));
    }

    signals.wait().await;
    tracing::info!("shutting down: no new connections; open sessions are told to go");
    shutdown.cancel();
    for l in accept_loops {
        let _ = l.await;
    }
    sessions.close();
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!(
            "{} sessions still open after {}s; closing them",
            sessions.len(),
            grace.as_secs()
        );
    }
    // The store commits every acknowledged write before acknowledging it, so
    // nothing is pending here; dropping the core closes its connections.
    drop(services);
    drop(core);
    tracing::info!("stopped");
    Ok(())
}

/// How often message files no message names any more are removed.
const BLOB_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// How old such a file must be: far longer than any delivery takes between
/// storing a message file and naming it.
const BLOB_SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// Removes unreferenced blobs (expunged mail, failed deliveries) every hour.
async fn sweep_blobs(core: Arc<Core>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(BLOB_SWEEP_INTERVAL) => {}
        }
        match core.sweep_blobs(BLOB_SWEEP_GRACE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} unreferenced message files"),
            Err(e) => tracing::warn!("blob sweep failed: {e}"),
        }
    }
}

/// How often the full-text indexer looks for messages stored unindexed
/// (by the command line, before the index existed, or while it was behind).
const TEXT_INDEX_PASS: Duration = Duration::from_secs(30);

/// Mails each new ledger checkpoint to the witness address, if one is set.
async fn mail_checkpoints(
    core: Arc<Core>,
    role: rampart_core::ServiceMinter,
    witness: Option<String>,
    hostname: String,
    mut checkpoints: tokio::sync::mpsc::UnboundedReceiver<rampart_ledger::Checkpoint>,
    shutdown: CancellationToken,
) {
    // The last checkpoint, signed as the server stops, goes to the ledger's
    // files only: the queue is closing by then.
    while let Some(c) = tokio::select! {
        _ = shutdown.cancelled() => None,
        c = checkpoints.recv() => c,
    } {
        let Some(to) = &witness else { continue };
        if let Err(e) = mail_checkpoint(&core, &role, to, &hostname, &c).await {
            tracing::error!("ledger: cannot mail checkpoint {} to {to}: {e}", c.seq);
        }
    }
}

async fn mail_checkpoint(
    core: &Core,
    role: &rampart_core::ServiceMinter,
    to: &str,
    hostname: &str,
    c: &rampart_ledger::Checkpoint,
) -> anyhow::Result<()> {
    let address = rampart_core::Address::parse(to)?;
    let raw = format!(
        "From: Rampart ledger <postmaster@{hostname}>\r\nTo: <{to}>\r\n\
         Subject: Rampart ledger checkpoint {node} {seq}\r\nDate: {date}\r\n\
         Message-ID: <ledger-{node}-{seq}-{at}@{hostname}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n\
         A checkpoint of the access ledger of Rampart node {node}. Keep it: with it,\r\n\
         `rampart ledger verify --checkpoints FILE` proves that no entry up to\r\n\
         number {seq} was changed or removed since.\r\n\r\n{line}\r\n",
        node = c.node,
        seq = c.seq,
        at = c.at,
        date = rampart_smtp::rfc5322_date(c.at / 1000),
        line = c.to_line(),
    )
    .into_bytes();
    core.submit(
        &role.internal(),
        "",
        &[rampart_store::QueuedAddress::plain(address.to_string())],
        rampart_store::DsnRequest::default(),
        raw,
    )
    .await?;
    Ok(())
}

/// Watches SIGTERM and SIGINT from the moment it is made.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Where autoconfig and autodiscover send mail clients: the server's name
/// and the first port each mail service listens on.
fn discovery(config: &Config, bound: &[Bound]) -> rampart_dav::discovery::Discovery {
    let port = |service| {
        bound
            .iter()
            .find(|b| b.service == service)
            .map(|b| b.addr.port())
    };
    rampart_dav::discovery::Discovery {
        hostname: config.server.hostname.clone(),
        imaps_port: port(Service::Imaps),
        imap_port: port(Service::Imap),
        submissions_port: port(Service::Submissions),
        submission_port: port(Service::Submission),
        https_port: port(Service::Https),
    }
}

/// What a service does in this build.
fn availability(service: Service) -> &'static str {
    match service {
        Service::Smtp => "SMTP for local domains",
        Service::Submission => "SMTP submission, STARTTLS",
        Service::Submissions => "SMTP submission, TLS",
        Service::Imap => "IMAP, STARTTLS",
        Service::Imaps => "IMAP, TLS",
        Service::Https => "CalDAV and CardDAV, TLS",
        Service::Admin => "not in this build yet: answers 503",
    }
}

/// What every session of the process shares.
struct Services {
    core: Arc<Core>,
    acceptor: TlsAcceptor,
    smtp_mx: Arc<rampart_smtp::SmtpConfig>,
    smtp_submission: Arc<rampart_smtp::SmtpConfig>,
    imap: Arc<rampart_imap::ImapConfig>,
    imap_limiter: Arc<rampart_imap::Limiter>,
    dav: Arc<rampart_dav::DavConfig>,
    dav_limiter: Arc<rampart_imap::Limiter>,
    dav_max_per_address: usize,
    shutdown: CancellationToken,
}

async fn accept_loop(
    service: Service,
    listener: TcpListener,
    services: Arc<Services>,
    sessions: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = services.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("{service}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Every protocol here writes small responses a client waits for
        // (a literal's "+", a tagged OK, an SMTP reply): without this,
        // Nagle's algorithm holds them until the client's delayed ACK, about
        // 40 ms per exchange.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("{service}: TCP_NODELAY not set for {peer}: {e}");
        }
        let services = services.clone();
        sessions.spawn(async move {
            if let Err(e) = session(service, stream, peer, &services).await {
                tracing::debug!("{service} session from {peer} ended: {e}");
            }
        });
    }
}

/// How long a client gets for the TLS handshake or its first request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn session(
    service: Service,
    stream: TcpStream,
    peer: SocketAddr,
    services: &Services,
) -> anyhow::Result<()> {
    let (smtp_config, implicit_tls) = match service {
        Service::Smtp => (&services.smtp_mx, false),
        Service::Submission => (&services.smtp_submission, false),
        Service::Submissions => (&services.smtp_submission, true),
        Service::Imap | Service::Imaps => {
            rampart_imap::serve_connection(
                services.core.clone(),
                services.imap.clone(),
                services.imap_limiter.clone(),
                stream,
                peer,
                Some(services.acceptor.clone()),
                service == Service::Imaps,
                services.shutdown.clone(),
            )
            .await?;
            return Ok(());
        }
        Service::Https => {
            // Over the limit: closed before the handshake costs anything.
            let Some(_slot) = services
                .dav_limiter
                .acquire(format!("addr:{}", peer.ip()), services.dav_max_per_address)
            else {
                tracing::debug!("https: too many connections from {}", peer.ip());
                return Ok(());
            };
            rampart_dav::serve_connection(
                services.core.clone(),
                services.dav.clone(),
                stream,
                peer,
                services.acceptor.clone(),
                services.shutdown.clone(),
            )
            .await?;
            return Ok(());
        }
        _ => return other_session(service, stream, services).await,
    };
    rampart_smtp::serve_connection(
        services.core.clone(),
        smtp_config.clone(),
        stream,
        peer,
        Some(services.acceptor.clone()),
        implicit_tls,
        services.shutdown.clone(),
    )
    .await?;
    Ok(())
}

async fn other_session(
    service: Service,
    stream: TcpStream,
    services: &Services,
) -> anyhow::Result<()> {
    match service {
        Service::Admin => {
            if service.implicit_tls() {
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, services.acceptor.accept(stream))
                    .await
                    .context("TLS handshake timed out")??;
                answer_unavailable(tls).await
            } else {
                answer_unavailable(stream).await
            }
        }
        Service::Smtp
        | Service::Submission
        | Service::Submissions
        | Service::Imap
        | Service::Imaps
        | Service::Https => {
            unreachable!("dispatched to its protocol crate")
        }
    }
}

/// Until the admin crate lands, the admin listener answers 503, so browsers
/// report a clear reason.
async fn answer_unavailable<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
) -> anyhow::Result<()> {
    // Read the request head (bounded) so the client sees a response, not a reset.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let body = "Rampart: the web app is not part of this build yet\n";
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}
