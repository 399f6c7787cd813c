//! Who is asking: the [`Access`] value every core call takes, and the access
//! entries the core records for each call that touches user data.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rampart_store::PrincipalId;
use serde::Serialize;

/// The protocol (or surface) a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The `rampart` command line, run by the machine's operator.
    Cli,
    /// SMTP on the MX port.
    Smtp,
    /// SMTP submission (587 or 465).
    Submission,
    /// IMAP.
    Imap,
    /// The web app and its API.
    Web,
    /// CalDAV and CardDAV.
    Dav,
    /// The admin listener.
    Admin,
    /// Work the server does on its own (queue, expiry).
    Internal,
}

/// The protocols clients speak to the server over the network: the only
/// ones a session from outside can be on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// SMTP on the MX port.
    Smtp,
    /// SMTP submission (587 or 465).
    Submission,
    /// IMAP.
    Imap,
    /// The web app and its API.
    Web,
    /// CalDAV and CardDAV.
    Dav,
    /// The admin listener.
    Admin,
}

impl From<Network> for Protocol {
    fn from(n: Network) -> Self {
        match n {
            Network::Smtp => Protocol::Smtp,
            Network::Submission => Protocol::Submission,
            Network::Imap => Protocol::Imap,
            Network::Web => Protocol::Web,
            Network::Dav => Protocol::Dav,
            Network::Admin => Protocol::Admin,
        }
    }
}

/// How the principal proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// The account's main password.
    Password,
    /// A per-device app password.
    AppPassword,
    /// Password plus a second factor.
    SecondFactor,
    /// A TLS client certificate.
    Certificate,
    /// The operator on the machine itself (file-system access to the store).
    LocalOperator,
    /// Nobody authenticated (inbound mail from the Internet, server-internal work).
    Unauthenticated,
}

/// The party an access is attributed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Actor {
    /// A Rampart account.
    Account {
        /// Its id.
        #[serde(serialize_with = "serialize_principal")]
        id: PrincipalId,
        /// Its primary address at the time of the access.
        address: String,
    },
    /// The operator of the machine, using the CLI.
    Operator {
        /// The operating-system user name.
        os_user: String,
    },
    /// The server itself, for a named service (for example inbound SMTP delivery).
    Service {
        /// The service's name.
        name: String,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Account { address, .. } => f.write_str(address),
            Actor::Operator { os_user } => write!(f, "operator:{os_user}"),
            Actor::Service { name } => write!(f, "service:{name}"),
        }
    }
}

fn serialize_principal<S: serde::Serializer>(id: &PrincipalId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(id.0)
}

/// Identifies one protocol session (one connection, one web login).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SessionId(u64);

impl SessionId {
    /// A fresh random session id.
    pub fn random() -> Self {
        SessionId(rand::random())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where a request comes from, before anyone has authenticated.
#[derive(Clone, Debug)]
pub struct SessionContext {
    /// The session.
    pub session: SessionId,
    /// The protocol.
    pub protocol: Protocol,
    /// The peer's address, when there is a network peer.
    pub client: Option<IpAddr>,
    /// Whether the connection is TLS: set only with the proof a completed
    /// handshake gives ([`crate::io::accept_tls`]), so no protocol can claim it.
    tls: bool,
    /// What the client says its software is; shared with every [`Access`]
    /// made from this context, so a name told after login still reaches
    /// the ledger entries that follow.
    software: ClientSoftware,
}

/// Most characters of a client's software name kept. Real names are short
/// (`Mozilla Thunderbird 128.5.0`, an EHLO host name of at most 255 octets
/// under RFC 5321 §4.5.3.1.2): the cap keeps one attacker's string from
/// filling every ledger entry of its session.
pub const MAX_CLIENT_SOFTWARE_CHARS: usize = 128;

/// The client's software as it names itself (IMAP ID, SMTP EHLO/HELO, HTTP
/// User-Agent): attacker text, kept only sanitised.
#[derive(Clone, Debug, Default)]
pub struct ClientSoftware(Arc<Mutex<Option<Arc<str>>>>);

impl ClientSoftware {
    fn set(&self, name: Option<Arc<str>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }

    fn get(&self) -> Option<Arc<str>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A client's self-description made safe to keep and show: white space
/// runs become one space; ASCII graphic characters and non-ASCII letters
/// and digits stay; every other character (controls, bidirectional and
/// zero-width formatting, symbols a terminal or table could misread)
/// becomes `?`; at most [`MAX_CLIENT_SOFTWARE_CHARS`] characters. `None`
/// when nothing printable is left.
pub fn sanitize_client_software(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = 0;
    let mut space = false;
    for c in raw.chars() {
        if chars >= MAX_CLIENT_SOFTWARE_CHARS {
            break;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            chars += 1;
            space = false;
            if chars >= MAX_CLIENT_SOFTWARE_CHARS {
                break;
            }
        }
        out.push(
            if c.is_ascii_graphic() || (!c.is_ascii() && c.is_alphanumeric()) {
                c
            } else {
                '?'
            },
        );
        chars += 1;
    }
    (!out.is_empty()).then_some(out)
}

impl SessionContext {
    /// A new session from `client` on a network protocol, without TLS so
    /// far. Only core makes the command line's and the server's own
    /// contexts, so no protocol crate can label itself either in the ledger.
    pub fn new(network: Network, client: Option<IpAddr>) -> Self {
        SessionContext {
            session: SessionId::random(),
            protocol: network.into(),
            client,
            tls: false,
            software: ClientSoftware::default(),
        }
    }

    /// A context for work the server does on its own (queue, reports).
    pub(crate) fn internal() -> Self {
        SessionContext {
            session: SessionId::random(),
            protocol: Protocol::Internal,
            client: None,
            tls: false,
            software: ClientSoftware::default(),
        }
    }

    /// Whether the connection is TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Marks the connection as TLS, with the proof of the handshake.
    pub fn tls_started(&mut self, _proof: crate::io::TlsEstablished) {
        self.tls = true;
    }

    /// Notes the client's software as the protocol tells it (IMAP `ID`'s
    /// name and version, the SMTP EHLO/HELO name, later the HTTP
    /// User-Agent), sanitised ([`sanitize_client_software`]). Every later
    /// ledger entry of the session names it, those of accesses made
    /// earlier in the session included; a name told again replaces it.
    pub fn set_client_software(&self, raw: &str) {
        self.software
            .set(sanitize_client_software(raw).map(Arc::from));
    }

    /// The client's software as last told, sanitised.
    pub fn client_software(&self) -> Option<Arc<str>> {
        self.software.get()
    }
}

/// Who is asking, carried by every core call (rule R2). It holds everything
/// the access ledger records about the caller. Protocol crates cannot make one
/// for an account: only [`crate::Core::authenticate`] issues those.
#[derive(Clone, Debug, Serialize)]
pub struct Access {
    principal: Actor,
    acting_as: Actor,
    session: SessionId,
    protocol: Protocol,
    client: Option<IpAddr>,
    auth_method: AuthMethod,
    #[serde(skip)]
    software: ClientSoftware,
}

impl Access {
    pub(crate) fn for_account(
        id: PrincipalId,
        address: String,
        ctx: &SessionContext,
        method: AuthMethod,
    ) -> Self {
        let actor = Actor::Account { id, address };
        Access {
            principal: actor.clone(),
            acting_as: actor,
            session: ctx.session,
            protocol: ctx.protocol,
            client: ctx.client,
            auth_method: method,
            software: ctx.software.clone(),
        }
    }

    /// The machine's operator at the command line. Whoever can run the CLI
    /// against the store can read its files anyway; the CLI is still recorded.
    /// Minted only through [`Privileged::operator`].
    pub(crate) fn local_operator(os_user: String) -> Self {
        let actor = Actor::Operator { os_user };
        Access {
            principal: actor.clone(),
            acting_as: actor,
            session: SessionId::random(),
            protocol: Protocol::Cli,
            client: None,
            auth_method: AuthMethod::LocalOperator,
            software: ClientSoftware::default(),
        }
    }

    /// The server acting for a service with no authenticated user, such as
    /// inbound SMTP delivering to local mailboxes. It may create messages but
    /// never read them. Minted only through [`ServiceMinter::access`] (and
    /// inside core for its own steps).
    pub(crate) fn service(name: &str, ctx: &SessionContext) -> Self {
        let actor = Actor::Service { name: name.into() };
        Access {
            principal: actor.clone(),
            acting_as: actor,
            session: ctx.session,
            protocol: ctx.protocol,
            client: ctx.client,
            auth_method: AuthMethod::Unauthenticated,
            software: ctx.software.clone(),
        }
    }

    /// The same session acting through a server service (for example
    /// delivering a user's message into other accounts' inboxes): the
    /// principal stays on record, the service's rights apply.
    pub(crate) fn through_service(&self, name: &str) -> Access {
        Access {
            acting_as: Actor::Service { name: name.into() },
            ..self.clone()
        }
    }

    /// The authenticated party.
    pub fn principal(&self) -> &Actor {
        &self.principal
    }
    /// The party whose rights apply (differs from the principal under delegation).
    pub fn acting_as(&self) -> &Actor {
        &self.acting_as
    }
    /// The session.
    pub fn session(&self) -> SessionId {
        self.session
    }
    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    /// The peer's address.
    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }
    /// How the principal authenticated.
    pub fn auth_method(&self) -> AuthMethod {
        self.auth_method
    }
    /// The client's software as its session last told it, sanitised.
    pub fn client_software(&self) -> Option<Arc<str>> {
        self.software.get()
    }

    /// The account this access acts as, if it is an account.
    pub fn account(&self) -> Option<PrincipalId> {
        match &self.acting_as {
            Actor::Account { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// What an access did, in the ledger's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Listed containers (mailboxes, calendars, address books).
    ListContainers,
    /// Listed the items of a container.
    ListItems,
    /// Searched.
    Search,
    /// Read message headers or summaries.
    ReadHeader,
    /// Read a whole message or body.
    ReadBody,
    /// Read an attachment.
    ReadAttachment,
    /// Exported data.
    Export,
    /// Queried the directory.
    DirectoryQuery,
    /// Created an object.
    Create,
    /// Modified an object.
    Modify,
    /// Deleted an object.
    Delete,
    /// Moved an object.
    Move,
    /// Changed flags.
    Flag,
    /// Changed sharing.
    Share,
    /// Changed a forwarding or filter rule.
    RuleChange,
    /// Changed a credential.
    CredentialChange,
    /// Administered principals or domains.
    Administer,
    /// Logged in.
    LoginSuccess,
    /// Failed to log in.
    LoginFailure,
}

/// Whether the access succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It was refused for lack of rights.
    Denied,
    /// It failed for another reason.
    Failed(String),
}

/// One access to user data (or to an account), as the ledger records it.
#[derive(Clone, Debug, Serialize)]
pub struct AccessEntry {
    /// Milliseconds since the epoch.
    pub at: i64,
    /// The node that served it.
    pub node: String,
    /// Who asked, from where, how.
    pub access: Access,
    /// What was done.
    pub operation: Operation,
    /// Whose data it was.
    #[serde(serialize_with = "serialize_opt_principal")]
    pub owner: Option<PrincipalId>,
    /// The container (mailbox name, domain), if any.
    pub container: Option<String>,
    /// Every object touched (message ids, principal ids): never only a count.
    pub objects: Vec<i64>,
    /// Bytes of user data returned to the caller.
    pub bytes: u64,
    /// The result.
    pub outcome: Outcome,
}

fn serialize_opt_principal<S: serde::Serializer>(
    id: &Option<PrincipalId>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_some(&id.0),
        None => s.serialize_none(),
    }
}

/// The name under which core itself delivers submitted mail to local
/// recipients, for the account that submitted it.
pub(crate) const LOCAL_DELIVERY: &str = "delivery";

/// The server's own services: a closed set, each allowed exactly the core
/// calls it needs (rule R10), checked in each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceRole {
    /// Inbound SMTP (the MX) delivering to local mailboxes.
    InboundDelivery,
    /// The outbound queue's worker: claims, delivers and records entries.
    QueueWorker,
    /// Sends delivery status reports (with a null sender).
    ReportSender,
    /// Reads the DKIM signing keys to sign submitted mail.
    DkimSigner,
    /// Mails the ledger's signed checkpoints to the witness address.
    Witness,
}

impl ServiceRole {
    /// The name the ledger records.
    pub fn name(self) -> &'static str {
        match self {
            ServiceRole::InboundDelivery => "smtp-inbound",
            ServiceRole::QueueWorker => "queue",
            ServiceRole::ReportSender => "queue-report",
            ServiceRole::DkimSigner => "dkim",
            ServiceRole::Witness => "ledger-witness",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            ServiceRole::InboundDelivery,
            ServiceRole::QueueWorker,
            ServiceRole::ReportSender,
            ServiceRole::DkimSigner,
            ServiceRole::Witness,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

impl Actor {
    /// The service role this actor acts in, if it is one of the server's services.
    pub fn service_role(&self) -> Option<ServiceRole> {
        match self {
            Actor::Service { name } => ServiceRole::from_name(name),
            _ => None,
        }
    }
}

/// The binary's capability to act as the operator or as one of the server's
/// services. Only [`crate::Core::new`] makes one, and only a holder of the
/// store can call that: protocol crates cannot name the store, so they
/// cannot mint a privileged [`Access`]; the binary hands each service the
/// one [`ServiceMinter`] it needs.
///
/// None of these compile outside core:
/// ```compile_fail
/// let _ = rampart_core::Access::local_operator("me".into());
/// ```
/// ```compile_fail
/// let ctx = rampart_core::SessionContext::new(rampart_core::Network::Smtp, None);
/// let _ = rampart_core::Access::service("smtp-inbound", &ctx);
/// ```
/// ```compile_fail
/// let _ = rampart_core::Privileged { _sealed: () };
/// ```
/// ```compile_fail
/// // Nor choose a session id (to pass for another session in the ledger),
/// let _ = rampart_core::SessionId(7);
/// ```
/// ```compile_fail
/// // nor label its session the server's own work.
/// let _ = rampart_core::SessionContext::new(rampart_core::Protocol::Internal, None);
/// ```
/// ```compile_fail
/// let _ = rampart_core::ServiceMinter { role: rampart_core::ServiceRole::QueueWorker };
/// ```
/// What a protocol crate can do is use a minter it was given:
/// ```
/// fn deliver_as(minter: &rampart_core::ServiceMinter) -> rampart_core::Access {
///     let ctx = rampart_core::SessionContext::new(rampart_core::Network::Smtp, None);
///     minter.access(&ctx)
/// }
/// ```
pub struct Privileged {
    _sealed: (),
}

impl Privileged {
    pub(crate) fn new() -> Self {
        Privileged { _sealed: () }
    }

    /// The operator at this machine's command line.
    pub fn operator(&self, os_user: String) -> Access {
        Access::local_operator(os_user)
    }

    /// What a service needs to act in its role.
    pub fn service(&self, role: ServiceRole) -> ServiceMinter {
        ServiceMinter { role }
    }
}

/// Makes [`Access`] values for one service role; handed by the binary to
/// the service that acts in it.
#[derive(Clone, Debug)]
pub struct ServiceMinter {
    role: ServiceRole,
}

impl ServiceMinter {
    /// The role.
    pub fn role(&self) -> ServiceRole {
        self.role
    }

    /// The service acting in a session.
    pub fn access(&self, ctx: &SessionContext) -> Access {
        Access::service(self.role.name(), ctx)
    }

    /// The service acting on its own, in no client's session (the queue's
    /// rounds, reports, checkpoints).
    pub fn internal(&self) -> Access {
        Access::service(self.role.name(), &SessionContext::internal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_software_is_sanitised() {
        assert_eq!(
            sanitize_client_software("  Mozilla  Thunderbird\t128.5.0 ").as_deref(),
            Some("Mozilla Thunderbird 128.5.0")
        );
        // Terminal escapes, line breaks, bidirectional overrides and
        // zero-width characters cannot reach a report.
        assert_eq!(
            sanitize_client_software("evil\x1b[31m\r\nx\u{202e}gpj.exe\u{200b}").as_deref(),
            Some("evil?[31m x?gpj.exe?")
        );
        assert_eq!(
            sanitize_client_software("Почта 2").as_deref(),
            Some("Почта 2")
        );
        assert_eq!(sanitize_client_software(" \r\n\t"), None);
        assert_eq!(sanitize_client_software(""), None);
        let long = "x".repeat(10_000);
        assert_eq!(
            sanitize_client_software(&long).unwrap().chars().count(),
            MAX_CLIENT_SOFTWARE_CHARS
        );
    }

    #[test]
    fn client_software_told_after_login_reaches_the_access() {
        let ctx = SessionContext::new(Network::Imap, None);
        let access = Access::for_account(
            PrincipalId(1),
            "a@example.org".into(),
            &ctx,
            AuthMethod::Password,
        );
        assert_eq!(access.client_software(), None);
        ctx.set_client_software("K-9 Mail 6.8");
        assert_eq!(access.client_software().as_deref(), Some("K-9 Mail 6.8"));
        assert_eq!(
            Access::local_operator("root".into()).client_software(),
            None
        );
    }
}
