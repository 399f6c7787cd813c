//! Writing IMAP response data: strings, flags, dates, ENVELOPE and
//! BODYSTRUCTURE (RFC 9051 §7.5.2, §9 formal syntax).

use rampart_core::model::SystemFlags;

use crate::command::format_date_time;
use crate::mime::{self, Mime, Part, PartKind};

/// Longest string sent quoted; longer ones go as literals.
const MAX_QUOTED: usize = 1024;

/// Writes a string: quoted when it is short printable ASCII, else a literal.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= MAX_QUOTED && bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, bytes);
    }
}

/// Writes a literal.
pub fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// Writes a string or NIL.
pub fn nstring(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => string(out, b),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// The flag list of a message.
pub fn flags(flags: SystemFlags, keywords: &[String]) -> String {
    message_flags(flags, keywords, false)
}

/// A message's flag list, with `\Recent` for an IMAP4rev1 session that
/// holds it as recent (RFC 3501 §2.3.2).
pub fn message_flags(flags: SystemFlags, keywords: &[String], recent: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if recent {
        parts.push("\\Recent");
    }
    for (bit, name) in [
        (SystemFlags::SEEN, "\\Seen"),
        (SystemFlags::ANSWERED, "\\Answered"),
        (SystemFlags::FLAGGED, "\\Flagged"),
        (SystemFlags::DELETED, "\\Deleted"),
        (SystemFlags::DRAFT, "\\Draft"),
    ] {
        if flags.contains(bit) {
            parts.push(name);
        }
    }
    parts.extend(keywords.iter().map(String::as_str));
    format!("({})", parts.join(" "))
}

/// INTERNALDATE text (`"27-Nov-2026 07:14:10 +0000"`) for milliseconds since the epoch.
pub fn internal_date(millis: i64) -> String {
    format!("\"{}\"", format_date_time(millis))
}

/// Writes the ENVELOPE of the message (or embedded message) whose header is `part`'s.
pub fn envelope(out: &mut Vec<u8>, m: &Mime<'_>, part: &Part) {
    let field = |name: &str| m.field(part, name);
    out.push(b'(');
    nstring(out, field("Date").as_deref());
    out.push(b' ');
    nstring(out, field("Subject").as_deref());
    let from = field("From");
    for (name, fallback) in [
        ("From", None),
        ("Sender", from.as_deref()),
        ("Reply-To", from.as_deref()),
        ("To", None),
        ("Cc", None),
        ("Bcc", None),
    ] {
        out.push(b' ');
        let value = field(name).filter(|v| !v.is_empty());
        address_list(out, value.as_deref().or(fallback));
    }
    out.push(b' ');
    nstring(out, field("In-Reply-To").as_deref());
    out.push(b' ');
    nstring(out, field("Message-ID").as_deref());
    out.push(b')');
}

fn address_list(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let addresses = value
        .map(|v| mime::parse_addresses(&String::from_utf8_lossy(v)))
        .unwrap_or_default();
    if addresses.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in addresses {
        out.push(b'(');
        nstring(out, a.name.as_deref().map(str::as_bytes));
        out.push(b' ');
        // The adl: an obsolete source route (RFC 9051 §9 address, addr-adl).
        nstring(out, a.route.as_deref().map(str::as_bytes));
        out.push(b' ');
        nstring(out, a.mailbox.as_deref().map(str::as_bytes));
        out.push(b' ');
        nstring(out, a.host.as_deref().map(str::as_bytes));
        out.push(b')');
    }
    out.push(b')');
}

fn param_list(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (n, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, n.as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

fn disposition(out: &mut Vec<u8>, m: &Mime<'_>, part: &Part) {
    let value = m
        .field(part, "Content-Disposition")
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    match value.as_deref().and_then(mime::parse_disposition) {
        Some((kind, params)) => {
            out.push(b'(');
            string(out, kind.as_bytes());
            out.push(b' ');
            param_list(out, &params);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

fn language(out: &mut Vec<u8>, m: &Mime<'_>, part: &Part) {
    let value = m
        .field(part, "Content-Language")
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let tags: Vec<&str> = value
        .as_deref()
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match tags.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        many => {
            out.push(b'(');
            for (i, t) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, t.as_bytes());
            }
            out.push(b')');
        }
    }
}

/// Writes BODYSTRUCTURE (`extended`) or BODY of a part.
pub fn body_structure(out: &mut Vec<u8>, m: &Mime<'_>, part: &Part, extended: bool) {
    out.push(b'(');
    match &part.kind {
        PartKind::Multipart(children) => {
            if children.is_empty() {
                out.extend_from_slice(
                    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0",
                );
                if extended {
                    out.extend_from_slice(b" NIL NIL NIL NIL");
                }
                out.push(b')');
            }
            for child in children {
                body_structure(out, m, child, extended);
            }
            out.push(b' ');
            string(out, part.subtype.as_bytes());
            if extended {
                out.push(b' ');
                param_list(out, &part.params);
                out.push(b' ');
                disposition(out, m, part);
                out.push(b' ');
                language(out, m, part);
                out.push(b' ');
                nstring(out, m.field(part, "Content-Location").as_deref());
            }
        }
        _ => {
            let (media_type, subtype) = (part.media_type.as_str(), part.subtype.as_str());
            string(out, media_type.as_bytes());
            out.push(b' ');
            string(out, subtype.as_bytes());
            out.push(b' ');
            param_list(out, &part.params);
            out.push(b' ');
            nstring(out, m.field(part, "Content-ID").as_deref());
            out.push(b' ');
            nstring(out, m.field(part, "Content-Description").as_deref());
            out.push(b' ');
            let encoding = m
                .field(part, "Content-Transfer-Encoding")
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| b"7bit".to_vec());
            string(out, &encoding);
            let body = &m.raw[part.body.clone()];
            out.extend_from_slice(format!(" {}", body.len()).as_bytes());
            match &part.kind {
                PartKind::Message(inner) => {
                    out.push(b' ');
                    envelope(out, m, inner);
                    out.push(b' ');
                    body_structure(out, m, inner, extended);
                    out.extend_from_slice(format!(" {}", mime::count_lines(body)).as_bytes());
                }
                _ if media_type.eq_ignore_ascii_case("text") => {
                    out.extend_from_slice(format!(" {}", mime::count_lines(body)).as_bytes());
                }
                _ => {}
            }
            if extended {
                out.push(b' ');
                nstring(out, m.field(part, "Content-MD5").as_deref());
                out.push(b' ');
                disposition(out, m, part);
                out.push(b' ');
                language(out, m, part);
                out.push(b' ');
                nstring(out, m.field(part, "Content-Location").as_deref());
            }
        }
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(raw: &[u8]) -> String {
        let m = Mime::parse(raw);
        let mut out = Vec::new();
        body_structure(&mut out, &m, &m.root, true);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn simple_text() {
        assert_eq!(
            bs(b"Subject: x\r\n\r\nline 1\r\nline 2\r\n"),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 16 2 NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn alternative_with_attachment() {
        let raw = b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\
Content-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\n\
Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=C3=A9\r\n--b2\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<p>x</p>\r\n--b2--\r\n\
--b1\r\nContent-Type: application/pdf; name=\"a b.pdf\"\r\n\
Content-Disposition: attachment; filename*=utf-8''a%20b.pdf\r\nContent-Transfer-Encoding: base64\r\n\
Content-Language: de, en\r\n\r\nJVBERg==\r\n--b1--\r\n";
        assert_eq!(
            bs(raw),
            "(((\"text\" \"plain\" (\"charset\" \"UTF-8\") NIL NIL \"quoted-printable\" 9 0 NIL NIL NIL NIL)\
(\"text\" \"html\" (\"charset\" \"UTF-8\") NIL NIL \"7bit\" 8 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b2\") NIL NIL NIL)\
(\"application\" \"pdf\" (\"name\" \"a b.pdf\") NIL NIL \"base64\" 8 NIL (\"attachment\" (\"filename*\" \"utf-8''a%20b.pdf\")) (\"de\" \"en\") NIL) \
\"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)"
        );
    }

    #[test]
    fn envelope_fields() {
        let raw = b"Date: Tue, 1 Sep 2026 10:00:00 +0000\r\nFrom: Alice <alice@example.org>\r\n\
To: bob@example.org,\r\n carol@example.net\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Message-ID: <m1@example.org>\r\n\r\nbody";
        let m = Mime::parse(raw);
        let mut out = Vec::new();
        envelope(&mut out, &m, &m.root);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(\"Tue, 1 Sep 2026 10:00:00 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" \
((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) \
((\"Alice\" NIL \"alice\" \"example.org\")) ((NIL NIL \"bob\" \"example.org\")(NIL NIL \"carol\" \"example.net\")) \
NIL NIL NIL \"<m1@example.org>\")"
        );
        assert_eq!(internal_date(0), "\" 1-Jan-1970 00:00:00 +0000\"");
        assert_eq!(
            flags(
                SystemFlags(SystemFlags::SEEN | SystemFlags::DRAFT),
                &["$Junk".into()]
            ),
            "(\\Seen \\Draft $Junk)"
        );
    }
}
