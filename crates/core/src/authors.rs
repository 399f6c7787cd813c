//! Who a message says wrote it: the addresses in its From and Sender fields
//! (RFC 5322 §3.6.2), read the same way for submission's send-as check and
//! for the MX's own-domain check.

use mail_parser::MessageParser;
/// How many From fields a message has and every address in its From and
/// Sender fields, read by the same parser the rest of the server uses
/// (encoded words, groups, comments); `None` when a field names something
/// that is not an address.
pub(crate) fn author_addresses(raw: &[u8]) -> Option<(usize, Vec<String>)> {
    let (end, _) = crate::header::header_end(raw);
    let mut froms = 0;
    let mut authors = Vec::new();
    for field in crate::header::fields(&raw[..end]) {
        let from = field.is("From");
        if !from && !field.is("Sender") {
            continue;
        }
        froms += usize::from(from);
        // The value alone, parsed as a From field of a message of its own.
        let mut one = b"From:".to_vec();
        one.extend_from_slice(field.value().unwrap_or_default());
        one.extend_from_slice(b"\r\n\r\n");
        let parsed = MessageParser::default().parse_headers(&one);
        let listed: Vec<Option<String>> = parsed
            .as_ref()
            .and_then(|m| m.from())
            .map(|a| a.iter().map(|x| x.address().map(str::to_owned)).collect())
            .unwrap_or_default();
        if listed.is_empty() || listed.iter().any(Option::is_none) {
            return None;
        }
        authors.extend(listed.into_iter().flatten());
    }
    Some((froms, authors))
}

/// Every `@domain` written in the From and Sender fields, as `@domain`
/// strings, for fields too broken to parse as addresses.
pub(crate) fn author_field_domains(raw: &[u8]) -> Vec<String> {
    let (end, _) = crate::header::header_end(raw);
    let mut out = Vec::new();
    for field in crate::header::fields(&raw[..end]) {
        if !field.is("From") && !field.is("Sender") {
            continue;
        }
        let value = String::from_utf8_lossy(field.value().unwrap_or_default()).into_owned();
        for (at, _) in value.match_indices('@') {
            let domain: String = value[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                .collect();
            if !domain.is_empty() {
                out.push(format!("@{domain}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_from_every_spelling() {
        let raw = b"From: =?utf-8?q?B=C3=BCrgermeister?= <mayor@Example.org>\r\n\
                    Sender: Office <office@example.org>\r\nFrom: x@y.example\r\n\r\nbody";
        let (froms, authors) = author_addresses(raw).unwrap();
        assert_eq!(froms, 2);
        assert_eq!(
            authors,
            ["mayor@Example.org", "office@example.org", "x@y.example"]
        );
        // A group with no address names nothing that can be checked.
        assert!(author_addresses(b"From: undisclosed:;\r\n\r\n").is_none());
        // A body line is not a header field.
        let (froms, _) = author_addresses(b"To: a@b.example\r\n\r\nFrom: c@d.example\r\n").unwrap();
        assert_eq!(froms, 0);
    }

    #[test]
    fn domains_of_broken_author_fields() {
        let raw = b"From: \"x\" <alice@example.org\r\nSender: @@ <a@b@sub.example.net>\r\n\r\n";
        assert_eq!(
            author_field_domains(raw),
            ["@example.org", "@b", "@sub.example.net"]
        );
    }
}
