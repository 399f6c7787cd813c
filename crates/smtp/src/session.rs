//! One SMTP session: commands in, replies and core calls out. The driver
//! ([`crate::serve_connection`]) frames lines, reads message bodies and
//! upgrades to TLS; this module decides every reply.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rampart_core::model::{MailboxRole, PrincipalId, QueuedAddress};
use rampart_core::{Access, Address, Core, CoreError, SessionContext};
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, Error as ParseError, Request};

use crate::data::DataError;
use crate::verify::Disposition;

/// Which face of the server a listener shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inbound mail from the Internet for local domains only; no AUTH.
    Mx,
    /// Mail from authenticated local users, to anywhere.
    Submission,
}

/// Settings of SMTP sessions (`[smtp]` in the config).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The name in the greeting and Received headers.
    pub hostname: String,
    /// MX or submission.
    pub mode: Mode,
    /// Largest message accepted (SIZE and the hard cut while reading).
    pub max_message_bytes: usize,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    pub max_command_line: usize,
    /// Longest line in a message body.
    pub max_data_line: usize,
    /// Allow AUTH without TLS (only ever on loopback connections).
    pub auth_without_tls_on_loopback: bool,
    /// Close a connection idle for this long.
    pub idle_timeout: Duration,
    /// Close any session after this long.
    pub session_timeout: Duration,
    /// Close a connection whose client reads no reply for this long.
    pub write_timeout: Duration,
    /// Close a session after this many bad commands.
    pub max_errors: usize,
    /// Authenticates inbound mail (SPF, DKIM, ARC, DMARC); `None` skips it.
    pub verifier: Option<std::sync::Arc<crate::verify::Verifier>>,
    /// The role inbound delivery acts in (the MX); handed out by the binary.
    pub inbound: Option<rampart_core::ServiceMinter>,
    /// The role that reads DKIM keys to sign submitted mail.
    pub signer: Option<rampart_core::ServiceMinter>,
    /// How long the MX holds its greeting back to catch clients that talk
    /// first (zero: greet at once).
    pub pregreet_wait: Duration,
    /// Whether loopback clients are greeted at once.
    pub pregreet_skip_loopback: bool,
    /// The clients that waited for the greeting lately (shared by the
    /// listener's sessions).
    pub pregreet: std::sync::Arc<crate::pregreet::PregreetPasses>,
}

impl SmtpConfig {
    /// Defaults for a listener of `mode`.
    pub fn new(hostname: &str, mode: Mode) -> Self {
        SmtpConfig {
            hostname: hostname.into(),
            mode,
            max_message_bytes: 50 * 1024 * 1024,
            max_recipients: 100,
            max_command_line: 4096,
            max_data_line: 64 * 1024,
            auth_without_tls_on_loopback: false,
            idle_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(1800),
            write_timeout: Duration::from_secs(30),
            max_errors: 10,
            verifier: None,
            inbound: None,
            signer: None,
            pregreet_wait: if mode == Mode::Mx {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            },
            pregreet_skip_loopback: true,
            pregreet: Default::default(),
        }
    }
}

/// What the driver does after sending a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Command,
    /// Flush, then start TLS on the connection, discarding any buffered input.
    StartTls,
    /// Read a DATA body, then call [`Session::message`].
    Data,
    /// Read exactly `size` bytes, then call [`Session::chunk`].
    Bdat {
        /// Chunk size.
        size: usize,
        /// Whether it is the last chunk.
        last: bool,
    },
    /// The next line is an AUTH continuation: call [`Session::auth_response`].
    AuthResponse,
    /// Flush and close the connection.
    Close,
}

/// A reply and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Reply lines, CRLF-terminated.
    pub text: String,
    /// What the driver does next.
    pub next: Next,
}

impl Reply {
    fn new(text: impl Into<String>) -> Self {
        let mut text = text.into();
        text.push_str("\r\n");
        Reply {
            text,
            next: Next::Command,
        }
    }

    fn then(mut self, next: Next) -> Self {
        self.next = next;
        self
    }
}

#[derive(Debug)]
enum AuthStep {
    Plain,
    LoginUser,
    LoginPassword(String),
}

#[derive(Debug)]
struct Recipient {
    address: String,
    /// Local accounts this recipient delivers to; empty for a remote recipient.
    accounts: Vec<PrincipalId>,
    /// DSN NOTIFY flags (rampart_core::model::notify) and ORCPT.
    notify: u8,
    orcpt: Option<String>,
}

/// Converts smtp-proto's NOTIFY bits to the store's.
fn notify_flags(flags: u64) -> u8 {
    use rampart_core::model::notify;
    [
        (smtp_proto::RCPT_NOTIFY_SUCCESS, notify::SUCCESS),
        (smtp_proto::RCPT_NOTIFY_FAILURE, notify::FAILURE),
        (smtp_proto::RCPT_NOTIFY_DELAY, notify::DELAY),
        (smtp_proto::RCPT_NOTIFY_NEVER, notify::NEVER),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .fold(0, |acc, (_, ours)| acc | ours)
}

#[derive(Debug, Default)]
struct Envelope {
    from: Option<String>,
    dsn: rampart_core::model::DsnRequest,
    recipients: Vec<Recipient>,
    chunks: Vec<u8>,
    chunk_error: Option<DataError>,
}

/// One SMTP session.
pub struct Session {
    core: Arc<Core>,
    config: Arc<SmtpConfig>,
    ctx: SessionContext,
    tls: bool,
    tls_available: bool,
    helo: Option<String>,
    esmtp: bool,
    access: Option<Access>,
    auth: Option<AuthStep>,
    envelope: Envelope,
    errors: usize,
}

fn loopback(ctx: &SessionContext) -> bool {
    ctx.client.is_some_and(|ip| ip.is_loopback())
}

impl Session {
    /// A session for a new connection. `tls` says whether it is TLS from the
    /// start; `tls_available` whether STARTTLS can be offered.
    pub fn new(
        core: Arc<Core>,
        config: Arc<SmtpConfig>,
        client: Option<std::net::IpAddr>,
        tls: bool,
        tls_available: bool,
    ) -> Self {
        let network = match config.mode {
            Mode::Mx => rampart_core::Network::Smtp,
            Mode::Submission => rampart_core::Network::Submission,
        };
        Session {
            core,
            config,
            ctx: SessionContext::new(network, client),
            tls,
            tls_available,
            helo: None,
            esmtp: false,
            access: None,
            auth: None,
            envelope: Envelope::default(),
            errors: 0,
        }
    }

    /// The client's address, where the connection has one.
    pub fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.ctx.client
    }

    /// The settings.
    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    /// The first line the server sends.
    pub fn greeting(&self) -> String {
        if self.ctx.client.is_some_and(|ip| self.core.is_banned(ip)) {
            return format!(
                "421 4.7.0 {} too many failed logins from your address; try later\r\n",
                self.config.hostname
            );
        }
        format!("220 {} ESMTP Rampart\r\n", self.config.hostname)
    }

    /// Whether the greeting closes the connection.
    pub fn refused(&self) -> bool {
        self.ctx.client.is_some_and(|ip| self.core.is_banned(ip))
    }

    /// Called by the driver after a STARTTLS handshake: the session starts over (RFC 3207).
    pub fn tls_started(&mut self, proof: rampart_core::io::TlsEstablished) {
        self.tls = true;
        self.ctx.tls_started(proof);
        self.helo = None;
        self.esmtp = false;
        self.envelope = Envelope::default();
    }

    fn error(&mut self, text: &str) -> Reply {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            return Reply::new(format!(
                "421 4.7.0 {} too many errors, closing",
                self.config.hostname
            ))
            .then(Next::Close);
        }
        Reply::new(text)
    }

    /// Answers a command line that exceeded the limit.
    pub fn line_too_long(&mut self) -> Reply {
        self.error("500 5.5.2 Line too long")
    }

    /// Answers a session timeout.
    pub fn timed_out(&self) -> Reply {
        Reply::new(format!(
            "421 4.4.2 {} timeout, closing",
            self.config.hostname
        ))
        .then(Next::Close)
    }

    /// Handles one command line (CRLF included).
    pub async fn command(&mut self, line: &[u8]) -> Reply {
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => return self.parse_error(e),
        };
        match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Lhlo { .. } => self.error("500 5.5.1 LHLO is for LMTP"),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth_start(mechanism, &initial_response).await,
            Request::Mail { from } => {
                let reply = self.mail(&from.address, from.size).await;
                if self.envelope.from.is_some() {
                    self.envelope.dsn = rampart_core::model::DsnRequest {
                        ret_full: if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
                            Some(true)
                        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
                            Some(false)
                        } else {
                            None
                        },
                        envid: from.env_id.map(|e| e.chars().take(100).collect()),
                    };
                }
                reply
            }
            Request::Rcpt { to } => {
                let reply = self.rcpt(&to.address).await;
                if reply.text.starts_with("250")
                    && let Some(last) = self.envelope.recipients.last_mut()
                {
                    last.notify = notify_flags(to.flags);
                    last.orcpt = to.orcpt.map(|o| o.chars().take(500).collect());
                }
                reply
            }
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.envelope = Envelope::default();
                Reply::new("250 2.0.0 OK")
            }
            Request::Noop { .. } => Reply::new("250 2.0.0 OK"),
            Request::Quit => {
                Reply::new(format!("221 2.0.0 {} closing", self.config.hostname)).then(Next::Close)
            }
            // Never confirm or deny an address: no user enumeration.
            Request::Vrfy { .. } => {
                Reply::new("252 2.5.2 Cannot VRFY; send mail and it will be delivered if possible")
            }
            Request::Expn { .. } => Reply::new("502 5.5.1 EXPN is not available"),
            Request::Help { .. } => Reply::new("214 2.0.0 See RFC 5321"),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.error("502 5.5.1 Command not implemented")
            }
        }
    }

    fn parse_error(&mut self, e: ParseError) -> Reply {
        match e {
            ParseError::UnknownCommand => self.error("500 5.5.1 Command unrecognized"),
            ParseError::InvalidSenderAddress => self.error("501 5.1.7 Bad sender address syntax"),
            ParseError::InvalidRecipientAddress => {
                self.error("501 5.1.3 Bad recipient address syntax")
            }
            ParseError::SyntaxError { syntax } => {
                self.error(&format!("501 5.5.4 Syntax: {syntax}"))
            }
            ParseError::InvalidParameter { param } => {
                self.error(&format!("501 5.5.4 Invalid parameter {param}"))
            }
            ParseError::UnsupportedParameter { param } => {
                let param: String = param.chars().take(64).collect();
                self.error(&format!("555 5.5.4 Unsupported parameter {param}"))
            }
            ParseError::NeedsMoreData { .. } | ParseError::ResponseTooLong => {
                self.error("500 5.5.2 Syntax error")
            }
            ParseError::InvalidResponse { .. } => self.error("500 5.5.2 Syntax error"),
        }
    }

    fn auth_offered(&self) -> bool {
        self.config.mode == Mode::Submission
            && (self.tls || (self.config.auth_without_tls_on_loopback && loopback(&self.ctx)))
    }

    fn ehlo(&mut self, host: &str, esmtp: bool) -> Reply {
        let host: String = host.chars().take(255).collect();
        // The EHLO name is what SMTP tells of the client (RFC 5321 §4.1.1.1).
        self.ctx.set_client_software(&host);
        self.helo = Some(host.clone());
        self.esmtp = esmtp;
        self.envelope = Envelope::default();
        if !esmtp {
            return Reply::new(format!("250 {} greets {host}", self.config.hostname));
        }
        let mut lines = vec![
            format!("{} greets {host}", self.config.hostname),
            "PIPELINING".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            format!("SIZE {}", self.config.max_message_bytes),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
            "DSN".into(),
        ];
        if !self.tls && self.tls_available {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        let last = lines.len() - 1;
        let text = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
            .collect();
        Reply {
            text,
            next: Next::Command,
        }
    }

    fn starttls(&mut self) -> Reply {
        if self.tls {
            return self.error("503 5.5.1 TLS already active");
        }
        if !self.tls_available {
            return self.error("502 5.5.1 STARTTLS not available");
        }
        Reply::new("220 2.0.0 Ready to start TLS").then(Next::StartTls)
    }

    async fn auth_start(&mut self, mechanism: u64, initial: &str) -> Reply {
        if self.config.mode != Mode::Submission {
            return self.error("503 5.5.1 AUTH is not available on this port; use submission");
        }
        if !self.auth_offered() {
            return self.error("538 5.7.11 Encryption required: use STARTTLS first");
        }
        if self.access.is_some() {
            return self.error("503 5.5.1 Already authenticated");
        }
        if self.envelope.from.is_some() {
            return self.error("503 5.5.1 AUTH not allowed during a mail transaction");
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.auth = Some(AuthStep::Plain);
                Reply::new("334 ").then(Next::AuthResponse)
            }
            AUTH_PLAIN => self.auth_plain(initial).await,
            AUTH_LOGIN if initial.is_empty() => {
                self.auth = Some(AuthStep::LoginUser);
                Reply::new("334 VXNlcm5hbWU6").then(Next::AuthResponse)
            }
            AUTH_LOGIN => match decode(initial) {
                Some(user) => {
                    self.auth = Some(AuthStep::LoginPassword(user));
                    Reply::new("334 UGFzc3dvcmQ6").then(Next::AuthResponse)
                }
                None => self.error("501 5.5.2 Invalid base64"),
            },
            _ => self.error("504 5.5.4 Unrecognized authentication mechanism"),
        }
    }

    /// Handles a line answering a `334` challenge.
    pub async fn auth_response(&mut self, line: &[u8]) -> Reply {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let Some(step) = self.auth.take() else {
            return self.error("503 5.5.1 No authentication in progress");
        };
        if line == "*" {
            return self.error("501 5.0.0 Authentication cancelled");
        }
        match step {
            AuthStep::Plain => self.auth_plain(line).await,
            AuthStep::LoginUser => match decode(line) {
                Some(user) => {
                    self.auth = Some(AuthStep::LoginPassword(user));
                    Reply::new("334 UGFzc3dvcmQ6").then(Next::AuthResponse)
                }
                None => self.error("501 5.5.2 Invalid base64"),
            },
            AuthStep::LoginPassword(user) => match decode(line) {
                Some(password) => self.login(&user, &password).await,
                None => self.error("501 5.5.2 Invalid base64"),
            },
        }
    }

    async fn auth_plain(&mut self, encoded: &str) -> Reply {
        let Some(decoded) = B64.decode(encoded.trim()).ok() else {
            return self.error("501 5.5.2 Invalid base64");
        };
        let mut parts = decoded.split(|&b| b == 0);
        let (Some(authz), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.error("501 5.5.2 Malformed PLAIN response");
        };
        if !authz.is_empty() && authz != user {
            return self.error("535 5.7.8 Authorization identity must match");
        }
        let user = String::from_utf8_lossy(user).into_owned();
        let password = String::from_utf8_lossy(password).into_owned();
        self.login(&user, &password).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Reply {
        match self.core.authenticate(&self.ctx, user, password).await {
            Ok(access) => {
                self.access = Some(access);
                Reply::new("235 2.7.0 Authentication successful")
            }
            Err(CoreError::Banned) => Reply::new(format!(
                "421 4.7.0 {} too many failed logins; try later",
                self.config.hostname
            ))
            .then(Next::Close),
            Err(CoreError::AuthFailed) => {
                self.error("535 5.7.8 Authentication credentials invalid")
            }
            // RFC 3207 §4 / RFC 4954 §4: no password without TLS.
            Err(CoreError::TlsRequired) => {
                self.error("538 5.7.11 Encryption required for requested authentication mechanism")
            }
            Err(e) => {
                tracing::error!("authentication error: {e}");
                Reply::new("454 4.7.0 Temporary authentication failure")
            }
        }
    }

    async fn mail(&mut self, from: &str, size: usize) -> Reply {
        if self.helo.is_none() {
            return self.error("503 5.5.1 Say EHLO first");
        }
        if self.envelope.from.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        if size > self.config.max_message_bytes {
            return Reply::new(format!(
                "552 5.3.4 Message size exceeds the limit of {} bytes",
                self.config.max_message_bytes
            ));
        }
        if self.config.mode == Mode::Submission {
            let Some(access) = &self.access else {
                return self.error("530 5.7.0 Authentication required");
            };
            let allowed = match Address::parse(from) {
                Ok(a) => self.core.may_send_as(access, &a).await,
                Err(_) => Ok(false),
            };
            match allowed {
                Ok(true) => {}
                Ok(false) => {
                    return self.error(&format!(
                        "553 5.7.1 You may not send as <{}>: use your own address or one of your aliases",
                        from.chars().take(256).collect::<String>()
                    ));
                }
                Err(e) => return temporary(e),
            }
        }
        self.envelope.from = Some(from.to_owned());
        Reply::new("250 2.1.0 Sender OK")
    }

    async fn rcpt(&mut self, to: &str) -> Reply {
        if self.envelope.from.is_none() {
            return self.error("503 5.5.1 Need MAIL before RCPT");
        }
        if self.envelope.recipients.len() >= self.config.max_recipients {
            return Reply::new(format!(
                "452 4.5.3 Too many recipients (at most {} per message)",
                self.config.max_recipients
            ));
        }
        let Ok(address) = Address::parse(to) else {
            return self.error("501 5.1.3 Bad recipient address syntax");
        };
        let asking = match (&self.access, &self.config.inbound) {
            (Some(user), _) => user.clone(),
            (None, Some(inbound)) => inbound.access(&self.ctx),
            (None, None) => {
                return temporary(CoreError::Denied("no inbound delivery role".into()));
            }
        };
        let local = match self.core.is_local_domain(&asking, &address.domain).await {
            Ok(l) => l,
            Err(e) => return temporary(e),
        };
        if !local {
            // No open relay: only authenticated submission reaches other domains.
            if self.access.is_none() {
                return self.error("550 5.7.1 Relay access denied");
            }
            self.envelope.recipients.push(Recipient {
                address: address.to_string(),
                accounts: Vec::new(),
                notify: 0,
                orcpt: None,
            });
            return Reply::new("250 2.1.5 Recipient OK (will be relayed)");
        }
        // The lookup is made, and recorded, as the user or as inbound delivery.
        match self.core.resolve_recipient(&asking, &address).await {
            Ok(None) => self.error(&format!("550 5.1.1 <{address}>: no such user here")),
            Ok(Some(set)) if set.accounts.is_empty() => {
                Reply::new(format!("550 5.2.1 <{address}>: mailbox disabled"))
            }
            Ok(Some(set)) => {
                self.envelope.recipients.push(Recipient {
                    address: address.to_string(),
                    accounts: set.accounts.iter().map(|p| p.id).collect(),
                    notify: 0,
                    orcpt: None,
                });
                Reply::new("250 2.1.5 Recipient OK")
            }
            Err(e) => temporary(e),
        }
    }

    fn data(&mut self) -> Reply {
        if self.envelope.from.is_none() {
            return self.error("503 5.5.1 Need MAIL before DATA");
        }
        if self.envelope.recipients.is_empty() {
            return self.error("554 5.5.1 No valid recipients");
        }
        if !self.envelope.chunks.is_empty() {
            return self.error("503 5.5.1 DATA not allowed after BDAT");
        }
        Reply::new("354 Start mail input; end with <CRLF>.<CRLF>").then(Next::Data)
    }

    fn bdat(&mut self, size: usize, last: bool) -> Reply {
        // The chunk is read whatever happens, so the session stays in step
        // (RFC 3030); [`Session::chunk`] gives the reply.
        Reply {
            text: String::new(),
            next: Next::Bdat { size, last },
        }
    }

    /// Handles a BDAT chunk the driver read.
    pub async fn chunk(&mut self, data: &[u8], last: bool) -> Reply {
        if self.envelope.from.is_none() || self.envelope.recipients.is_empty() {
            self.envelope = Envelope::default();
            return self.error("503 5.5.1 Need MAIL and RCPT before BDAT");
        }
        if self.envelope.chunk_error.is_none() {
            if self.envelope.chunks.len() + data.len() > self.config.max_message_bytes {
                self.envelope.chunk_error = Some(DataError::TooLarge);
                self.envelope.chunks = Vec::new();
            } else if has_bare_line_ending(data, self.envelope.chunks.last().copied()) {
                self.envelope.chunk_error = Some(DataError::BareLineEnding);
                self.envelope.chunks = Vec::new();
            } else {
                self.envelope.chunks.extend_from_slice(data);
            }
        }
        if !last {
            return Reply::new(format!("250 2.0.0 {} octets received", data.len()));
        }
        let body = match self.envelope.chunk_error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut self.envelope.chunks)),
        };
        self.message(body).await
    }

    /// Handles a complete message body (DATA or the last BDAT chunk).
    pub async fn message(&mut self, body: Result<Vec<u8>, DataError>) -> Reply {
        let envelope = std::mem::take(&mut self.envelope);
        let body = match body {
            Ok(b) => b,
            Err(DataError::BareLineEnding) => {
                return Reply::new(
                    "550 5.6.0 Message refused: bare CR or LF found; lines must end with CRLF",
                );
            }
            Err(DataError::TooLarge) => {
                return Reply::new(format!(
                    "552 5.3.4 Message size exceeds the limit of {} bytes",
                    self.config.max_message_bytes
                ));
            }
            Err(DataError::LineTooLong) => {
                return Reply::new(format!(
                    "554 5.6.0 Message refused: a line is longer than {} bytes",
                    self.config.max_data_line
                ));
            }
        };
        let mut raw = self.received_header(&envelope).into_bytes();
        raw.extend_from_slice(&body);
        let mut accounts: Vec<PrincipalId> = envelope
            .recipients
            .iter()
            .flat_map(|r| r.accounts.iter().copied())
            .collect();
        accounts.sort();
        accounts.dedup();
        let result = match &self.access {
            Some(user) => {
                // The header's authors are checked before anything is signed.
                match self.core.check_author_fields(user, &raw).await {
                    Ok(()) => {}
                    Err(CoreError::Denied(why)) => {
                        return Reply::new(format!("553 5.7.1 {why}"));
                    }
                    Err(e) => return temporary(e),
                }
                let raw = match self
                    .dkim_sign(envelope.from.as_deref().unwrap_or_default(), raw)
                    .await
                {
                    Ok(signed) => signed,
                    Err(reply) => return reply,
                };
                let from = envelope.from.as_deref().unwrap_or_default();
                let sent_copy = raw.clone();
                // Core resolves and checks them again itself (rule R2).
                let recipients: Vec<QueuedAddress> = envelope
                    .recipients
                    .iter()
                    .map(|r| QueuedAddress {
                        address: r.address.clone(),
                        notify: r.notify,
                        orcpt: r.orcpt.clone(),
                    })
                    .collect();
                let submitted = match self
                    .core
                    .submit(user, from, &recipients, envelope.dsn.clone(), raw)
                    .await
                {
                    Err(CoreError::Denied(why)) => return Reply::new(format!("553 5.7.1 {why}")),
                    other => other.map(|_| ()),
                };
                // The Sent copy comes second: failing it must not make the
                // client send again what is already on its way.
                if submitted.is_ok()
                    && let Err(e) = self.core.save_sent(user, sent_copy).await
                {
                    tracing::error!("smtp: message accepted but not filed in Sent: {e}");
                }
                submitted
            }
            None => {
                let Some(minter) = self.config.inbound.as_ref() else {
                    return temporary(CoreError::Denied("no inbound delivery role".into()));
                };
                let inbound = minter.access(&self.ctx);
                let from = envelope.from.as_deref().unwrap_or_default();
                match crate::own_domain::unsigned_claims(&self.core, &inbound, from, &body).await {
                    Ok(unsigned) if unsigned.is_empty() => {}
                    Ok(unsigned) => {
                        tracing::info!(
                            session = %self.ctx.session,
                            domains = ?unsigned,
                            "smtp: refused mail from outside in our own domain's name"
                        );
                        return Reply::new(format!(
                            "550 5.7.1 Mail from {} must come through this server's submission and carry its signature",
                            unsigned.join(", ")
                        ));
                    }
                    Err(e) => return temporary(e),
                }
                let mut role = MailboxRole::Inbox;
                // Nobody outside may speak for this host in Authentication-Results.
                raw = crate::authres::strip_forged_results(&raw, &self.config.hostname);
                if let (Some(verifier), Some(ip)) = (&self.config.verifier, self.ctx.client) {
                    let helo = self.helo.as_deref().unwrap_or_default();
                    let from = envelope.from.as_deref().unwrap_or_default();
                    let verdict = verifier.verify(ip, helo, from, &raw).await;
                    match verdict.disposition {
                        Disposition::Reject(reason) => {
                            return Reply::new(format!("550 5.7.1 {reason}"));
                        }
                        Disposition::Junk => role = MailboxRole::Junk,
                        Disposition::Accept => {}
                    }
                    let mut with_results = verdict.header.into_bytes();
                    with_results.extend_from_slice(&raw);
                    raw = with_results;
                }
                self.core
                    .deliver_to(&inbound, &accounts, raw, role)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Reply::new(format!(
                "250 2.0.0 OK accepted for {} recipients, id {}",
                envelope.recipients.len(),
                self.ctx.session
            )),
            Err(CoreError::OverQuota(_)) => {
                Reply::new("452 4.2.2 A recipient's mailbox is full; try again later")
            }
            Err(CoreError::Limit { .. }) => Reply::new(format!(
                "552 5.3.4 Message size exceeds the limit of {} bytes",
                self.config.max_message_bytes
            )),
            Err(e) => temporary(e),
        }
    }

    /// Prepends DKIM signatures with the keys of the sender's domain, if it has any.
    async fn dkim_sign(&self, sender: &str, raw: Vec<u8>) -> Result<Vec<u8>, Reply> {
        let Some((_, domain)) = sender.rsplit_once('@') else {
            return Ok(raw);
        };
        let Some(role) = self.config.signer.as_ref() else {
            return Err(temporary(CoreError::Denied("no DKIM signing role".into())));
        };
        let signer = role.access(&self.ctx);
        let keys = self
            .core
            .dkim_keys(&signer, domain)
            .await
            .map_err(temporary)?;
        if keys.is_empty() {
            return Ok(raw);
        }
        match crate::dkim::sign(&raw, &domain.to_ascii_lowercase(), &keys) {
            Ok(headers) => {
                let mut signed = headers.into_bytes();
                signed.extend_from_slice(&raw);
                Ok(signed)
            }
            Err(e) => {
                tracing::error!("{e}");
                Err(Reply::new(
                    "451 4.3.0 Cannot sign the message; try again later",
                ))
            }
        }
    }

    fn received_header(&self, envelope: &Envelope) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let helo: String = helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let ip = self
            .ctx
            .client
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into());
        let with = match (self.esmtp, self.tls, self.access.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let for_clause = match envelope.recipients.as_slice() {
            [one] => format!("\r\n\tfor <{}>", one.address),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {} (Rampart) with {with} id {}{for_clause};\r\n\t{}\r\n",
            self.config.hostname,
            self.ctx.session,
            rfc5322_date(rampart_core::model::now_millis() / 1000)
        )
    }
}

fn temporary(e: CoreError) -> Reply {
    tracing::error!("smtp: {e}");
    Reply::new("451 4.3.0 Temporary server error; try again later")
}

fn decode(s: &str) -> Option<String> {
    B64.decode(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Whether a chunk holds a CR not followed by LF or an LF not preceded by CR.
/// `before` is the last byte of the previous chunk.
fn has_bare_line_ending(data: &[u8], before: Option<u8>) -> bool {
    if before == Some(b'\r') && data.first().is_some_and(|&b| b != b'\n') {
        return true;
    }
    let mut prev = before;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\n' if prev != Some(b'\r') => return true,
            b'\r' if data.get(i + 1).is_some_and(|&n| n != b'\n') => return true,
            _ => {}
        }
        prev = Some(b);
    }
    // A chunk ending in CR is judged with the next chunk's first byte; the
    // last chunk must not end in a lone CR.
    false
}

/// Formats seconds since the epoch as an RFC 5322 date in UTC
/// (§3.3: `Thu, 1 Jan 1970 00:00:00 +0000`; `+0000`, not `-0000`, since
/// the server knows the zone it speaks in).
pub fn rfc5322_date(secs: i64) -> String {
    let t = jiff::Timestamp::from_second(secs).unwrap_or(if secs < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .strftime("%a, %-d %b %Y %H:%M:%S +0000")
        .to_string()
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session", &self.ctx.session)
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_788_256_800),
            "Tue, 1 Sep 2026 10:00:00 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        // 2100 is no leap year: 28 February is followed by 1 March.
        assert_eq!(
            rfc5322_date(4_107_456_000 + 86_400),
            "Mon, 1 Mar 2100 00:00:00 +0000"
        );
        assert_eq!(rfc5322_date(-1), "Wed, 31 Dec 1969 23:59:59 +0000");
        // The result parses back as RFC 5322 (jiff's own reader).
        let back = jiff::fmt::rfc2822::parse(&rfc5322_date(1_788_256_800)).unwrap();
        assert_eq!(back.timestamp().as_second(), 1_788_256_800);
    }

    #[test]
    fn bare_line_endings_in_chunks() {
        assert!(!has_bare_line_ending(b"a\r\nb\r\n", None));
        assert!(has_bare_line_ending(b"a\nb", None));
        assert!(has_bare_line_ending(b"a\rb", None));
        assert!(!has_bare_line_ending(b"\nb", Some(b'\r')));
        assert!(has_bare_line_ending(b"\nb", Some(b'x')));
        assert!(has_bare_line_ending(b"b", Some(b'\r')));
    }
}
