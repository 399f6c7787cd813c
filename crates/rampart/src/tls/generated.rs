//! The certificate Rampart makes for itself when `[tls]` names none.
//!
//! Rampart makes a small local certificate authority and has it sign one
//! server certificate. It does not make a lone self-signed certificate, for
//! two reasons:
//! - a user imports `ca.pem` once, as an authority, into Thunderbird or the
//!   operating system, and then every service (IMAP, SMTP, HTTPS, on any
//!   port) is trusted. The alternative is one exception per host and port.
//! - the CA can say what it may sign: it is name-constrained
//!   (RFC 5280 §4.2.1.10) to the server's own names, and its key lives only
//!   in memory while it signs. It is never written down, so nobody can use
//!   it to sign anything else, even someone who copies the data directory.
//!
//! The price of throwing away the key is that a new server certificate
//! needs a new CA. That happens when `server.hostname` changes or two years
//! pass, and then users import the new `ca.pem` again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use time::{Duration, OffsetDateTime};

/// How long a generated certificate is valid. Apple's clients refuse
/// server certificates valid for more than 825 days, even from a CA the
/// user added.
pub const VALID_DAYS: i64 = 730;
/// A generated certificate this close to expiry is replaced at start-up.
pub const RENEW_DAYS: i64 = 30;
/// The organisation named in the generated certificates. Together with
/// [`CA_PREFIX`] it is how a later start knows the files are Rampart's own.
const ORGANIZATION: &str = "Rampart";
/// How the common name of a generated CA begins.
const CA_PREFIX: &str = "Rampart local CA";
/// The subject rcgen's `generate_simple_self_signed` gives, which earlier
/// Rampart versions used on first start.
const OLD_RCGEN_SUBJECT: &str = "rcgen self signed cert";

/// The names a generated certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The subject common name: `server.hostname`.
    pub common_name: String,
    /// DNS names in the subject alternative name, hostname first.
    pub dns: Vec<String>,
    /// IP addresses in the subject alternative name.
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// The names for `hostname` (already validated by the config): the
    /// hostname itself, `localhost`, 127.0.0.1 and ::1. An internationalised
    /// hostname goes in as its A-label (certificates hold ASCII only,
    /// RFC 5280 §7.2); one that is an IP address literal goes in as an IP
    /// address.
    pub fn for_hostname(hostname: &str) -> Names {
        let host = rampart_core::normalize_domain(hostname)
            .unwrap_or_else(|_| hostname.trim().trim_end_matches('.').to_ascii_lowercase());
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        match host.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(host.clone()),
        }
        if !dns.iter().any(|d| d == "localhost") {
            dns.push("localhost".into());
        }
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        Names {
            common_name: host,
            dns,
            ips,
        }
    }
}

/// A freshly made CA and server certificate, in PEM.
pub struct Generated {
    /// The server certificate followed by the CA certificate.
    pub chain_pem: String,
    /// The server certificate's private key (PKCS#8).
    pub key_pem: String,
    /// The CA certificate alone, for users to import.
    pub ca_pem: String,
}

/// Makes a CA and a server certificate for `names`, valid from a day
/// before `now` (for clocks a little behind) for [`VALID_DAYS`].
pub fn generate(names: &Names, now: OffsetDateTime) -> anyhow::Result<Generated> {
    let not_before = now - Duration::days(1);
    let not_after = now + Duration::days(VALID_DAYS);
    let bad_name = |e| {
        anyhow::anyhow!(
            "server.hostname {:?} cannot go in a certificate: {e}",
            names.common_name
        )
    };

    // A random tag in the CA's name, so that CAs made one after the other
    // are told apart in a certificate manager.
    let tag: u32 = rand::random();
    let mut ca = CertificateParams::default();
    ca.not_before = not_before;
    ca.not_after = not_after;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("{CA_PREFIX} for {} ({tag:08x})", names.common_name),
    );
    ca.distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    // RFC 5280 §4.2.1.9: a path length of 0 lets it sign server
    // certificates only, never another CA.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // RFC 5280 §4.2.1.10: every name below this CA must fall within these
    // subtrees; rcgen marks the extension critical, as the RFC requires.
    let mut permitted: Vec<GeneralSubtree> = names
        .dns
        .iter()
        .map(|d| GeneralSubtree::DnsName(d.clone()))
        .collect();
    permitted.extend(names.ips.iter().map(|ip| {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*ip, bits))
    }));
    ca.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    let ca_key = KeyPair::generate().context("cannot make a key for the local CA")?;
    let ca_cert = ca
        .self_signed(&ca_key)
        .context("cannot make the local CA certificate")?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::default();
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, names.common_name.clone());
    leaf.distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    for dns in &names.dns {
        leaf.subject_alt_names
            .push(SanType::DnsName(dns.clone().try_into().map_err(bad_name)?));
    }
    for ip in &names.ips {
        leaf.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    leaf.is_ca = IsCa::ExplicitNoCa;
    // An ECDSA key only signs the handshake (RFC 5280 §4.2.1.3).
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().context("cannot make a key for the server certificate")?;
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .context("cannot sign the server certificate")?;
    // `issuer` and with it the CA's key are dropped here, never written.
    Ok(Generated {
        chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        key_pem: leaf_key.serialize_pem(),
        ca_pem: ca_cert.pem(),
    })
}

/// What a start-up makes of a certificate found in DATA/tls/.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rampart made it and it still fits.
    Fresh,
    /// Rampart made it and it should be replaced, for the reason given.
    Stale(String),
    /// Not made by Rampart (an operator put it there): left alone.
    Foreign,
}

/// Judges the first certificate of `chain_pem` against the names it should
/// carry and the time `now`.
pub fn inspect(chain_pem: &[u8], names: &Names, now: OffsetDateTime) -> Verdict {
    let Some(Ok(der)) = rustls_pemfile::certs(&mut &chain_pem[..]).next() else {
        return Verdict::Foreign;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Verdict::Foreign;
    };
    let subject_cn = text(cert.subject().iter_common_name());
    let issuer_cn = text(cert.issuer().iter_common_name());
    let issuer_o = text(cert.issuer().iter_organization());
    if subject_cn == OLD_RCGEN_SUBJECT && issuer_cn == OLD_RCGEN_SUBJECT {
        return Verdict::Stale(
            "it was made by an earlier Rampart, self-signed without IP addresses and valid until the year 4096, which clients reject"
                .into(),
        );
    }
    if issuer_o != ORGANIZATION || !issuer_cn.starts_with(CA_PREFIX) {
        return Verdict::Foreign;
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let day = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(|d| {
                d.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .date()
                    .to_string()
            })
            .unwrap_or_else(|_| t.to_string())
    };
    if not_after - now.unix_timestamp() < RENEW_DAYS * 86_400 {
        return Verdict::Stale(format!("it expires on {}", day(not_after)));
    }
    if not_before > now.unix_timestamp() {
        return Verdict::Stale(format!(
            "it is not valid before {}: was the clock wrong when it was made?",
            day(not_before)
        ));
    }
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    let found = Names {
        common_name: subject_cn,
        dns,
        ips,
    };
    if found != *names {
        return Verdict::Stale(format!(
            "it is for {}, but server.hostname is now {:?}",
            describe(&found),
            names.common_name
        ));
    }
    Verdict::Fresh
}

/// The first of a name's attributes as text, or "" when there is none.
fn text<'a>(
    mut attributes: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> String {
    attributes
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The names as a reader would list them: `a, b, 127.0.0.1`.
fn describe(names: &Names) -> String {
    let mut all: Vec<String> = vec![names.common_name.clone()];
    for d in &names.dns {
        if !all.contains(d) {
            all.push(d.clone());
        }
    }
    all.extend(names.ips.iter().map(IpAddr::to_string));
    all.join(", ")
}
