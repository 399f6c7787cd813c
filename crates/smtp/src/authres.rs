//! Removing `Authentication-Results` fields that claim to speak for this
//! host (RFC 8601 §5) from mail that arrives from outside, before our own is
//! added. The header is split by [`rampart_core::header`], the tokenizer the
//! rest of the server reads headers with, so whatever a client will later
//! see as such a field is what is removed here.

use rampart_core::header::{self, Field};

/// The field this module removes.
const FIELD: &str = "Authentication-Results";

/// Removes the `Authentication-Results` fields whose authserv-id is
/// `authserv_id` (RFC 8601 §5); every other field and the body are kept
/// byte for byte.
pub fn strip_forged_results(message: &[u8], authserv_id: &str) -> Vec<u8> {
    let (header_len, _) = header::header_end(message);
    let (head, rest) = message.split_at(header_len);
    let mut out = Vec::with_capacity(message.len());
    for field in header::fields(head) {
        if !is_forged(&field, authserv_id) {
            out.extend_from_slice(field.raw);
        }
    }
    out.extend_from_slice(rest);
    out
}

/// Whether `field` is an `Authentication-Results` field naming `ours` as
/// its authserv-id.
pub fn is_forged(field: &Field<'_>, ours: &str) -> bool {
    field.name().is_some_and(names_results)
        && field
            .value()
            .and_then(authserv_id)
            .is_some_and(|id| same_id(&id, ours))
}

/// Whether a field name is `Authentication-Results`, case aside (RFC 5322
/// §1.2.2). Any Unicode white space around it is ignored too, beyond the
/// tokenizer's ASCII: IMAP's header-field matching trims it, and a name
/// a client may read as this field must not slip through.
fn names_results(name: &[u8]) -> bool {
    String::from_utf8_lossy(name)
        .trim()
        .eq_ignore_ascii_case(FIELD)
}

/// RFC 8601 §2.2 says authserv-ids compare without case. A trailing dot
/// names the same DNS host, and a reader may trim space inside quotes, so
/// neither makes a different id.
fn same_id(id: &[u8], ours: &str) -> bool {
    let trim = |s: &[u8]| {
        let s = s.trim_ascii();
        s.strip_suffix(b".").unwrap_or(s).to_vec()
    };
    let ours = trim(ours.as_bytes());
    !ours.is_empty() && trim(id).eq_ignore_ascii_case(&ours)
}

/// The authserv-id at the start of an `Authentication-Results` value
/// (RFC 8601 §2.2: `authres-payload = [CFWS] authserv-id ...`, where
/// `authserv-id = value`, a RFC 2045 token or quoted-string), with quoting
/// removed. `None` when the value names none (empty, or an unclosed comment).
pub fn authserv_id(value: &[u8]) -> Option<Vec<u8>> {
    let mut i = skip_cfws(value)?;
    let mut id = Vec::new();
    if value.get(i) == Some(&b'"') {
        // RFC 5322 §3.2.4 quoted-string: a backslash quotes the next
        // character; folding inside is not part of the content. An
        // unclosed quote still names the host a lenient reader would see.
        i += 1;
        while let Some(&b) = value.get(i) {
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(&next) = value.get(i + 1) {
                        id.push(next);
                    }
                    i += 1;
                }
                b'\r' | b'\n' => {}
                _ => id.push(b),
            }
            i += 1;
        }
    } else {
        // RFC 2045 §5.1: a token ends at space, a control or a tspecial.
        id.extend(
            value[i..]
                .iter()
                .take_while(|&&b| b > b' ' && b != 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b)),
        );
    }
    (!id.is_empty()).then_some(id)
}

/// Where the value continues after leading CFWS (RFC 5322 §3.2.2): white
/// space, line breaks of folding and comments, which nest and may quote.
/// `None` when a comment never closes.
fn skip_cfws(value: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut depth = 0usize;
    while let Some(&b) = value.get(i) {
        match b {
            b'\\' if depth > 0 => i += 1,
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => return Some(i),
        }
        i += 1;
    }
    (depth == 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "mx.example.org";

    fn strip(message: &str) -> String {
        String::from_utf8(strip_forged_results(message.as_bytes(), HOST)).unwrap()
    }

    /// Each forged field is removed and the message around it kept whole.
    fn removed(forged: &str) {
        let message = format!("Received: x\r\n{forged}Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(
            strip(&message),
            "Received: x\r\nSubject: hi\r\n\r\nbody\r\n",
            "{forged:?}"
        );
    }

    #[test]
    fn the_rfc_8601_examples_for_our_host_are_removed() {
        // RFC 8601 Appendix B.2 and B.3, with our authserv-id.
        removed("Authentication-Results: mx.example.org; none\r\n");
        removed(
            "Authentication-Results: mx.example.org 1;\r\n          spf=pass smtp.mailfrom=example.net\r\n",
        );
    }

    #[test]
    fn odd_spellings_of_the_name_are_removed() {
        // RFC 5322 §4.5.3: white space may precede the colon.
        removed("Authentication-Results : mx.example.org; dmarc=pass\r\n");
        removed("Authentication-Results\t: mx.example.org; dmarc=pass\r\n");
        // RFC 5322 §1.2.2: field names compare without case.
        removed("authentication-results:mx.example.org;dmarc=pass\r\n");
        removed("AUTHENTICATION-RESULTS: mx.example.org; dmarc=pass\r\n");
        // IMAP's field matching trims any Unicode white space (here a bare
        // CR and a vertical tab, found by the auth_results_strip fuzz target).
        removed("Authentication-Results\r\x0b:mx.example.org\r\n");
        removed("Authentication-Results\u{3000}: mx.example.org; dmarc=pass\r\n");
    }

    #[test]
    fn folded_and_commented_values_are_removed() {
        // RFC 5322 §3.2.2: the value may start on a folded line.
        removed("AUTHENTICATION-RESULTS:\r\n mx.example.org; dmarc=pass\r\n");
        removed(
            "Authentication-Results: mx.example.org;\r\n\tdkim=pass\r\n\theader.d=bank.example\r\n",
        );
        // RFC 8601 §2.2: [CFWS] before the authserv-id; comments nest.
        removed("Authentication-Results: (c) mx.example.org; dmarc=pass\r\n");
        removed("Authentication-Results: (a (nested\\) one))\r\n mx.example.org; dmarc=pass\r\n");
        removed("Authentication-Results: mx.example.org(c); dmarc=pass\r\n");
        // The id compares without case, and a trailing dot is the same host.
        removed("Authentication-Results: MX.Example.ORG; dmarc=pass\r\n");
        removed("Authentication-Results: mx.example.org.; dmarc=pass\r\n");
    }

    #[test]
    fn a_quoted_authserv_id_is_removed() {
        // RFC 2045 §5.1 value = token / quoted-string.
        removed("Authentication-Results: \"mx.example.org\"; dmarc=pass\r\n");
        removed("Authentication-Results: \"mx.exa\\mple.org\"; dmarc=pass\r\n");
        removed("Authentication-Results: \" mx.example.org \"; dmarc=pass\r\n");
    }

    #[test]
    fn every_forged_field_goes_however_many() {
        removed(
            "Authentication-Results: mx.example.org; spf=pass\r\nauthentication-results : mx.example.org; dkim=pass\r\n",
        );
    }

    #[test]
    fn results_of_other_hosts_stay() {
        for kept in [
            "Authentication-Results: other.example; spf=fail\r\n",
            "Authentication-Results: mx.example.org.evil; dmarc=pass\r\n",
            "Authentication-Results: (mx.example.org) other.example; dmarc=pass\r\n",
            "Authentication-Results: other.example; dkim=pass header.d=mx.example.org\r\n",
            "X-Authentication-Results: mx.example.org; dmarc=pass\r\n",
        ] {
            let message = format!("Received: x\r\n{kept}Subject: hi\r\n\r\nbody\r\n");
            assert_eq!(strip(&message), message);
        }
    }

    #[test]
    fn the_body_is_untouched() {
        let message = "Subject: hi\r\nAuthentication-Results: mx.example.org; x\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n\r\nAuthentication-Results: mx.example.org; y\r\n";
        assert_eq!(
            strip(message),
            "Subject: hi\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n\r\nAuthentication-Results: mx.example.org; y\r\n"
        );
        // A message whose header is all forged keeps its blank line and body.
        assert_eq!(
            strip("Authentication-Results: mx.example.org; x\r\n\r\nbody"),
            "\r\nbody"
        );
    }

    #[test]
    fn bare_lf_lines_are_split_the_same_way() {
        let message = "Received: x\nAuthentication-Results :\n mx.example.org; dmarc=pass\nSubject: hi\n\nAuthentication-Results: mx.example.org; body\n";
        assert_eq!(
            strip(message),
            "Received: x\nSubject: hi\n\nAuthentication-Results: mx.example.org; body\n"
        );
    }

    #[test]
    fn authserv_ids_read_as_rfc_8601_writes_them() {
        let id = |v: &str| authserv_id(v.as_bytes()).map(|id| String::from_utf8(id).unwrap());
        assert_eq!(id(" example.com; none").as_deref(), Some("example.com"));
        assert_eq!(id(" example.com 1; none").as_deref(), Some("example.com"));
        assert_eq!(id(" \"a b\"; none").as_deref(), Some("a b"));
        assert_eq!(id(" (unclosed example.com; none"), None);
        assert_eq!(id(" ; none"), None);
        assert_eq!(id(""), None);
    }
}
