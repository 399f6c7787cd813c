//! Mail client set-up without typing servers: Thunderbird's autoconfig
//! (`/.well-known/autoconfig/mail/config-v1.1.xml`, `/mail/config-v1.1.xml`
//! on `autoconfig.<domain>`) and Outlook's POX autodiscover
//! (`/autodiscover/autodiscover.xml`).
//!
//! Both are answered before login and say the same for every address: the
//! servers come from the configuration and the address is only echoed as
//! the login name, so they reveal nothing about which addresses exist.

use crate::xml::{self, XmlLimits, escape};

/// Where the mail services listen, as clients are to reach them.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// The server's public name.
    pub hostname: String,
    /// IMAP with implicit TLS.
    pub imaps_port: Option<u16>,
    /// IMAP with STARTTLS.
    pub imap_port: Option<u16>,
    /// Submission with implicit TLS.
    pub submissions_port: Option<u16>,
    /// Submission with STARTTLS.
    pub submission_port: Option<u16>,
    /// HTTPS (CalDAV, CardDAV).
    pub https_port: Option<u16>,
}

/// Which discovery document a path asks for, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// Thunderbird's autoconfig.
    Autoconfig,
    /// Outlook's autodiscover.
    Autodiscover,
}

/// The discovery document a request path names.
pub fn document(path: &str) -> Option<Document> {
    let path = path.split('?').next().unwrap_or_default();
    if path.eq_ignore_ascii_case("/.well-known/autoconfig/mail/config-v1.1.xml")
        || path.eq_ignore_ascii_case("/mail/config-v1.1.xml")
    {
        return Some(Document::Autoconfig);
    }
    if path.eq_ignore_ascii_case("/autodiscover/autodiscover.xml") {
        return Some(Document::Autodiscover);
    }
    None
}

/// A plausible address from a query or request, or `None` (then the
/// documents use a placeholder); never looked up.
fn address_of(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (local, domain) = raw.rsplit_once('@')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 255
            && s.chars()
                .all(|c| c.is_alphanumeric() || "._+-=!#$%&'*/?^`{|}~".contains(c))
    };
    (ok(local) && ok(domain)).then(|| raw.to_owned())
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Thunderbird's autoconfig document (the format of
/// <https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat>).
pub fn autoconfig(d: &Discovery, query: &str) -> String {
    let address = query_param(query, "emailaddress").and_then(|a| address_of(&a));
    let domain = address
        .as_deref()
        .and_then(|a| a.rsplit_once('@'))
        .map_or(d.hostname.clone(), |(_, dom)| dom.to_ascii_lowercase());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<clientConfig version=\"1.1\">\n");
    out.push_str(&format!(
        "  <emailProvider id=\"{0}\">\n    <domain>{0}</domain>\n    <displayName>{0}</displayName>\n    <displayShortName>{0}</displayShortName>\n",
        escape(&domain)
    ));
    let server = |out: &mut String, tag: &str, kind: &str, port: u16, socket: &str| {
        out.push_str(&format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{}</hostname>\n      <port>{port}</port>\n      <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILADDRESS%</username>\n    </{tag}>\n",
            escape(&d.hostname)
        ));
    };
    if let Some(p) = d.imaps_port {
        server(&mut out, "incomingServer", "imap", p, "SSL");
    }
    if let Some(p) = d.imap_port {
        server(&mut out, "incomingServer", "imap", p, "STARTTLS");
    }
    if let Some(p) = d.submissions_port {
        server(&mut out, "outgoingServer", "smtp", p, "SSL");
    }
    if let Some(p) = d.submission_port {
        server(&mut out, "outgoingServer", "smtp", p, "STARTTLS");
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// Outlook's POX autodiscover answer (MS-OXDSCLI §2.2.4) for a request
/// body; `None` when the body is not an autodiscover request.
pub fn autodiscover(d: &Discovery, body: &str, limits: XmlLimits) -> Option<String> {
    let request = xml::parse(body, limits).ok()?;
    let inner = request.child(REQUEST_SCHEMA, "Request")?;
    let address = inner
        .child(REQUEST_SCHEMA, "EMailAddress")
        .and_then(|e| address_of(&e.text))
        .unwrap_or_default();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n");
    out.push_str(&format!(
        "  <Response xmlns=\"{RESPONSE_SCHEMA}\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n"
    ));
    let protocol = |out: &mut String, kind: &str, port: u16, tls: bool| {
        let encryption = if tls { "SSL" } else { "TLS" };
        out.push_str(&format!(
            "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{}</Server>\n        <Port>{port}</Port>\n        <LoginName>{}</LoginName>\n        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n        <SSL>on</SSL>\n        <Encryption>{encryption}</Encryption>\n        <AuthRequired>on</AuthRequired>\n      </Protocol>\n",
            escape(&d.hostname),
            escape(&address)
        ));
    };
    match (d.imaps_port, d.imap_port) {
        (Some(p), _) => protocol(&mut out, "IMAP", p, true),
        (None, Some(p)) => protocol(&mut out, "IMAP", p, false),
        _ => {}
    }
    match (d.submissions_port, d.submission_port) {
        (Some(p), _) => protocol(&mut out, "SMTP", p, true),
        (None, Some(p)) => protocol(&mut out, "SMTP", p, false),
        _ => {}
    }
    out.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    Some(out)
}

/// Where the Apple configuration profile is served (after login).
pub const APPLE_PROFILE_PATH: &str = "/apple/rampart.mobileconfig";

/// A stable UUID (RFC 9562 form) for a payload of this user and server.
fn payload_uuid(d: &Discovery, address: &str, what: &str) -> String {
    let h = blake3::hash(format!("{}\n{address}\n{what}", d.hostname).as_bytes()).to_hex();
    let h = h.to_ascii_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An Apple configuration profile (`.mobileconfig`, Apple's Configuration
/// Profile Reference) with the user's IMAP and SMTP account, CalDAV and
/// CardDAV: iOS and macOS set all four up from it. No password is in it.
pub fn apple_profile(d: &Discovery, address: &str) -> String {
    let host = escape(&d.hostname);
    let user = escape(address);
    let https = d.https_port.unwrap_or(443);
    let principal = escape(&crate::paths::principal(address));
    let mut payloads = String::new();
    let (imap_port, imap_ssl) = match (d.imaps_port, d.imap_port) {
        (Some(p), _) => (Some(p), true),
        (None, Some(p)) => (Some(p), false),
        _ => (None, false),
    };
    let (smtp_port, smtp_ssl) = match (d.submissions_port, d.submission_port) {
        (Some(p), _) => (Some(p), true),
        (None, Some(p)) => (Some(p), false),
        _ => (None, false),
    };
    let bool_el = |b: bool| if b { "<true/>" } else { "<false/>" };
    if let (Some(imap), Some(smtp)) = (imap_port, smtp_port) {
        payloads.push_str(&format!(
            "    <dict>\n      <key>EmailAccountDescription</key><string>{user}</string>\n      <key>EmailAccountType</key><string>EmailTypeIMAP</string>\n      <key>EmailAddress</key><string>{user}</string>\n      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>\n      <key>IncomingMailServerHostName</key><string>{host}</string>\n      <key>IncomingMailServerPortNumber</key><integer>{imap}</integer>\n      <key>IncomingMailServerUseSSL</key>{}\n      <key>IncomingMailServerUsername</key><string>{user}</string>\n      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>\n      <key>OutgoingMailServerHostName</key><string>{host}</string>\n      <key>OutgoingMailServerPortNumber</key><integer>{smtp}</integer>\n      <key>OutgoingMailServerUseSSL</key>{}\n      <key>OutgoingMailServerUsername</key><string>{user}</string>\n      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>\n      <key>PayloadIdentifier</key><string>{host}.rampart.mail</string>\n      <key>PayloadType</key><string>com.apple.mail.managed</string>\n      <key>PayloadUUID</key><string>{}</string>\n      <key>PayloadVersion</key><integer>1</integer>\n    </dict>\n",
            bool_el(imap_ssl),
            bool_el(smtp_ssl),
            payload_uuid(d, address, "mail")
        ));
    }
    for (kind, payload_type) in [
        ("CalDAV", "com.apple.caldav.account"),
        ("CardDAV", "com.apple.carddav.account"),
    ] {
        payloads.push_str(&format!(
            "    <dict>\n      <key>{kind}AccountDescription</key><string>{user}</string>\n      <key>{kind}HostName</key><string>{host}</string>\n      <key>{kind}Port</key><integer>{https}</integer>\n      <key>{kind}PrincipalURL</key><string>{principal}</string>\n      <key>{kind}UseSSL</key><true/>\n      <key>{kind}Username</key><string>{user}</string>\n      <key>PayloadIdentifier</key><string>{host}.rampart.{}</string>\n      <key>PayloadType</key><string>{payload_type}</string>\n      <key>PayloadUUID</key><string>{}</string>\n      <key>PayloadVersion</key><integer>1</integer>\n    </dict>\n",
            kind.to_ascii_lowercase(),
            payload_uuid(d, address, kind)
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n  <key>PayloadContent</key>\n  <array>\n{payloads}  </array>\n  <key>PayloadDisplayName</key><string>Rampart: {user}</string>\n  <key>PayloadIdentifier</key><string>{host}.rampart</string>\n  <key>PayloadType</key><string>Configuration</string>\n  <key>PayloadUUID</key><string>{}</string>\n  <key>PayloadVersion</key><integer>1</integer>\n</dict>\n</plist>\n",
        payload_uuid(d, address, "profile")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn town() -> Discovery {
        Discovery {
            hostname: "mail.town.example".into(),
            imaps_port: Some(993),
            imap_port: None,
            submissions_port: Some(465),
            submission_port: Some(587),
            https_port: Some(443),
        }
    }

    #[test]
    fn apple_profile_has_four_accounts_and_no_password() {
        let p = apple_profile(&town(), "anna@town.example");
        assert_eq!(p.matches("<key>PayloadType</key>").count(), 4, "{p}");
        for t in [
            "com.apple.mail.managed",
            "com.apple.caldav.account",
            "com.apple.carddav.account",
            "Configuration",
        ] {
            assert!(p.contains(&format!("<string>{t}</string>")), "{t}");
        }
        assert!(
            p.contains(
                "<key>CalDAVPrincipalURL</key><string>/dav/principals/anna@town.example/</string>"
            ),
            "{p}"
        );
        assert!(
            !p.to_ascii_lowercase().contains("password</key><string>"),
            "{p}"
        );
        assert_eq!(
            p,
            apple_profile(&town(), "anna@town.example"),
            "stable UUIDs"
        );
    }

    #[test]
    fn autoconfig_names_the_servers_and_not_the_user() {
        let a = autoconfig(&town(), "emailaddress=anna%40town.example");
        let b = autoconfig(&town(), "emailaddress=nobody%40town.example");
        assert_eq!(a, b, "the answer must not depend on the address");
        assert!(a.contains("<emailProvider id=\"town.example\">"), "{a}");
        assert!(a.contains("<incomingServer type=\"imap\">\n      <hostname>mail.town.example</hostname>\n      <port>993</port>\n      <socketType>SSL</socketType>"), "{a}");
        assert!(
            a.contains("<port>587</port>\n      <socketType>STARTTLS</socketType>"),
            "{a}"
        );
        assert!(a.contains("<username>%EMAILADDRESS%</username>"));
        let hostile = autoconfig(&town(), "emailaddress=%3Cx%3E%40y");
        assert!(!hostile.contains("<x>"), "{hostile}");
    }

    #[test]
    fn autodiscover_answers_the_pox_request() {
        // The request body Outlook sends (MS-OXDSCLI §4.1).
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>anna@town.example</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;
        let limits = XmlLimits {
            max_depth: 8,
            max_elements: 50,
        };
        let a = autodiscover(&town(), body, limits).unwrap();
        assert!(a.contains("<Type>IMAP</Type>\n        <Server>mail.town.example</Server>\n        <Port>993</Port>\n        <LoginName>anna@town.example</LoginName>"), "{a}");
        assert!(
            a.contains("<Type>SMTP</Type>") && a.contains("<Port>465</Port>"),
            "{a}"
        );
        assert!(autodiscover(&town(), "<x/>", limits).is_none());
        assert_eq!(
            document("/AutoDiscover/AutoDiscover.xml"),
            Some(Document::Autodiscover)
        );
        assert_eq!(
            document("/mail/config-v1.1.xml?emailaddress=a"),
            Some(Document::Autoconfig)
        );
    }
}
