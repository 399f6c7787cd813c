//! Address lists (RFC 5322 §3.4, with the obsolete syntax of §4.4) as
//! ENVELOPE, SORT and SEARCH see them.

use super::header::unquote;

/// An address from a header, as ENVELOPE reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvelopeAddress {
    /// Display name (raw).
    pub name: Option<String>,
    /// Obsolete source route (`@a,@b`, RFC 5322 §4.4), the ENVELOPE's adl.
    pub route: Option<String>,
    /// Local part; for a group start, the group name.
    pub mailbox: Option<String>,
    /// Domain; `None` marks group start and end.
    pub host: Option<String>,
}

/// Parses an address-list header value (RFC 5322 §3.4), with groups.
pub fn parse_addresses(value: &str) -> Vec<EnvelopeAddress> {
    let mut out = Vec::new();
    let mut phrase = String::new();
    let mut angle: Option<String> = None;
    let mut comment: Option<String> = None;
    let mut in_group = false;
    let mut chars = value.chars().peekable();
    let finish = |phrase: &mut String,
                  angle: &mut Option<String>,
                  comment: &mut Option<String>,
                  out: &mut Vec<EnvelopeAddress>| {
        let p = phrase.trim().to_owned();
        let (name, addr) = match angle.take() {
            Some(a) => ((!p.is_empty()).then_some(p), a),
            None => (comment.clone(), without_unquoted_space(&p)),
        };
        phrase.clear();
        *comment = None;
        if addr.is_empty() && name.is_none() {
            return;
        }
        // An obsolete route (`<@a,@b:user@host>`, RFC 5322 §4.4 obs-route)
        // is kept: ENVELOPE reports it as the adl (RFC 3501 §7.4.2).
        let (route, addr) = match addr.strip_prefix('@').and_then(|_| addr.split_once(':')) {
            Some((r, a)) => (Some(without_unquoted_space(r)), a.trim().to_owned()),
            None => (None, addr),
        };
        // Dovecot's spelling for an address without a domain.
        let (mailbox, host) = match addr.rsplit_once('@') {
            Some((m, h)) => (m.to_owned(), h.to_owned()),
            None => (addr, "MISSING_DOMAIN".to_owned()),
        };
        out.push(EnvelopeAddress {
            name: name.map(|n| unquote_phrase(&n)),
            route,
            mailbox: Some(unquote(&mailbox)),
            host: Some(host),
        });
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                phrase.push('"');
                let mut escaped = false;
                for q in chars.by_ref() {
                    phrase.push(q);
                    if escaped {
                        escaped = false;
                    } else if q == '\\' {
                        escaped = true;
                    } else if q == '"' {
                        break;
                    }
                }
            }
            '(' => {
                let text = read_comment(&mut chars);
                // A comment after an address names it (`root (Cron Daemon)`),
                // as Dovecot reads it; one before it does not.
                if comment.is_none() && !phrase.trim().is_empty() && !text.trim().is_empty() {
                    comment = Some(text.trim().to_owned());
                }
            }
            '<' => {
                let mut a = String::new();
                while let Some(q) = chars.next() {
                    match q {
                        '>' => break,
                        '(' => {
                            read_comment(&mut chars);
                        }
                        '"' => {
                            a.push('"');
                            let mut escaped = false;
                            for r in chars.by_ref() {
                                a.push(r);
                                if escaped {
                                    escaped = false;
                                } else if r == '\\' {
                                    escaped = true;
                                } else if r == '"' {
                                    break;
                                }
                            }
                        }
                        _ => a.push(q),
                    }
                }
                angle = Some(a.trim().to_owned());
            }
            ':' if angle.is_none() && !in_group && !phrase.contains('@') => {
                out.push(EnvelopeAddress {
                    mailbox: Some(unquote_phrase(phrase.trim())),
                    ..EnvelopeAddress::default()
                });
                phrase.clear();
                comment = None;
                in_group = true;
            }
            ';' if in_group => {
                finish(&mut phrase, &mut angle, &mut comment, &mut out);
                out.push(EnvelopeAddress::default());
                in_group = false;
            }
            ',' => finish(&mut phrase, &mut angle, &mut comment, &mut out),
            _ => phrase.push(c),
        }
        if out.len() > 1000 {
            break;
        }
    }
    finish(&mut phrase, &mut angle, &mut comment, &mut out);
    if in_group {
        out.push(EnvelopeAddress::default());
    }
    out
}

/// Reads a comment after its `(` (nested, with `\` escapes); returns its text.
fn read_comment(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut depth = 1;
    let mut text = String::new();
    while let Some(q) = chars.next() {
        match q {
            '\\' => {
                if let Some(e) = chars.next() {
                    text.push(e);
                }
                continue;
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        text.push(q);
    }
    text
}

/// Removes white space outside quoted strings (`"john q." @ x` -> `"john q."@x`).
fn without_unquoted_space(s: &str) -> String {
    super::header::unquoted_chars(s)
        .filter(|&(c, outside)| !(outside && c.is_whitespace()))
        .map(|(c, _)| c)
        .collect()
}

/// A display-name phrase without its quotes (escapes resolved).
fn unquote_phrase(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut quoted = false;
    let mut escaped = false;
    for c in p.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The addr-mailbox (local part) of the first address of an address-list
/// header that is not a group marker, or "" if there is none: the SORT key
/// of FROM, TO and CC (RFC 5256 §3). Compare keys with i;ascii-casemap.
pub fn first_mailbox(header_value: &str) -> String {
    parse_addresses(header_value)
        .into_iter()
        .find(|a| a.host.is_some())
        .and_then(|a| a.mailbox)
        .unwrap_or_default()
}

/// The texts of an address-list header that SEARCH FROM/TO/CC/BCC match
/// against (RFC 9051 §6.4.4 "the envelope structure's FROM field"): each
/// address as `mailbox@host`, each display name and each group name, names
/// with RFC 2047 encoded words decoded.
pub fn address_texts(header_value: &str) -> Vec<String> {
    let mut out = Vec::new();
    for a in parse_addresses(header_value) {
        match (&a.mailbox, &a.host) {
            // A group start: its display name.
            (Some(group), None) => out.push(decode_words(group)),
            (Some(mailbox), Some(host)) => out.push(format!("{mailbox}@{host}")),
            _ => {}
        }
        if let Some(name) = &a.name {
            out.push(decode_words(name));
        }
    }
    out
}

/// A phrase with RFC 2047 encoded words decoded (by mail-parser, as the
/// rest of SEARCH decodes headers).
fn decode_words(phrase: &str) -> String {
    if !phrase.contains("=?") {
        return phrase.to_owned();
    }
    let header = format!("Subject: {phrase}\r\n\r\n");
    mail_parser::MessageParser::default()
        .parse(header.as_bytes())
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or_else(|| phrase.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        let a = parse_addresses(
            "\"Doe, Jane\" <jane@example.org>, bob@example.net (Bob B), undisclosed:;",
        );
        assert_eq!(a[0].name.as_deref(), Some("Doe, Jane"));
        assert_eq!(a[0].mailbox.as_deref(), Some("jane"));
        assert_eq!(a[0].host.as_deref(), Some("example.org"));
        assert_eq!(a[1].name.as_deref(), Some("Bob B"));
        assert_eq!(a[1].host.as_deref(), Some("example.net"));
        assert_eq!(a[2].mailbox.as_deref(), Some("undisclosed"));
        assert_eq!(a[2].host, None);
        assert_eq!(a[3], EnvelopeAddress::default());
        let g = parse_addresses("team: a@x.org, B <b@y.org>;");
        assert_eq!(g.len(), 4);
        assert_eq!(g[2].name.as_deref(), Some("B"));
    }

    // RFC 5322 §4.4: obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" [CFWS]
    #[test]
    fn keeps_source_routes() {
        let a = parse_addresses("Joe <@relay1.example, @relay2.example:joe@example.org>");
        assert_eq!(a.len(), 1);
        assert_eq!(
            a[0].route.as_deref(),
            Some("@relay1.example,@relay2.example")
        );
        assert_eq!(a[0].mailbox.as_deref(), Some("joe"));
        assert_eq!(a[0].host.as_deref(), Some("example.org"));
        assert_eq!(parse_addresses("<joe@example.org>")[0].route, None);
    }

    // RFC 5322 §3.4 (group = display-name ":" [group-list] ";") and the
    // RFC 5322 §A.1.3 example.
    #[test]
    fn sort_and_search_keys_skip_and_name_groups() {
        let to = "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;";
        assert_eq!(first_mailbox(to), "c");
        assert_eq!(first_mailbox("Undisclosed recipients:;"), "");
        assert_eq!(first_mailbox("Undisclosed recipients:;, x@y.test"), "x");
        assert_eq!(first_mailbox("Mary Smith <mary@x.test>"), "mary");
        let texts = address_texts(to);
        for want in [
            "A Group",
            "Ed Jones",
            "c@a.test",
            "joe@where.test",
            "jdoe@one.test",
            "John",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want} in {texts:?}");
        }
        assert_eq!(
            address_texts("=?utf-8?q?J=C3=BCrgen?= <j@example.org>"),
            ["j@example.org", "Jürgen"]
        );
    }
}
