//! Transfer encodings (RFC 2045 §6): decoding for BINARY, and re-encoding of
//! parts that a plain literal cannot carry.

use std::ops::Range;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;

use super::header::{field_name, field_spans};
use super::{Mime, Part, PartKind};

/// Why a part's content cannot be decoded for BINARY.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The Content-Transfer-Encoding is not one RFC 2045 defines (RFC 3516
    /// §4.3 asks for the UNKNOWN-CTE response code).
    #[error("unknown transfer encoding {0:?}")]
    UnknownEncoding(String),
    /// The content is not valid in its encoding (Dovecot answers
    /// `NO [PARSE]` for BINARY and `NO [UNKNOWN-CTE]` for BINARY.SIZE).
    #[error("the {0} content does not decode")]
    Corrupt(&'static str),
}

/// Longest base64 line written (RFC 2045 §6.8: at most 76 characters).
const BASE64_LINE: usize = 76;

/// Number of lines in a body: its line breaks, as Dovecot counts them (a
/// last line without a break, as before a boundary, does not count).
pub fn count_lines(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count()
}

/// Decodes base64 (RFC 2045 §6.8) with mail-parser's decoder, the one that
/// SEARCH sees the text through; `None` if it holds characters outside
/// the alphabet.
pub fn decode_base64(body: &[u8]) -> Option<Vec<u8>> {
    base64_decode(body)
}

/// Decodes quoted-printable (RFC 2045 §6.7) with mail-parser's decoder: a
/// `=` at the end of a line, even with white space after it, is a soft line
/// break; white space at the end of a line is dropped. `None` if an `=` is
/// followed by something that is neither hex digits nor a line end.
pub fn decode_qp(body: &[u8]) -> Option<Vec<u8>> {
    quoted_printable_decode(body)
}

/// A part's content with its Content-Transfer-Encoding (the field's value,
/// as written) undone.
pub(super) fn decode(encoding: &str, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(body.to_vec()),
        "base64" => decode_base64(body).ok_or(DecodeError::Corrupt("base64")),
        "quoted-printable" => decode_qp(body).ok_or(DecodeError::Corrupt("quoted-printable")),
        other => Err(DecodeError::UnknownEncoding(other.to_owned())),
    }
}

/// The message with its binary parts re-encoded in base64, or `None` when
/// nothing needed changing. A literal may not hold NUL (RFC 9051 §4.3) and
/// BODY[n] sends a part in its transfer encoding, so a part that could only
/// be sent with NUL must not be stored as it came: leaf parts whose
/// Content-Transfer-Encoding is `binary` (as Dovecot converts them at APPEND
/// of a literal8, RFC 3516 §4.4), and leaf parts with a NUL whose encoding
/// is 7bit, 8bit or absent, get their content base64-encoded in 76-character
/// lines and that header field set to `base64` (added when absent). Called
/// at APPEND; BINARY[n] still returns the original bytes.
pub fn encode_binary_parts(raw: &[u8]) -> Option<Vec<u8>> {
    let mime = Mime::parse(raw);
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    collect_edits(&mime, &mime.root, &mut edits);
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3);
    let mut at = 0;
    for (range, bytes) in edits {
        out.extend_from_slice(&raw[at..range.start]);
        out.extend_from_slice(&bytes);
        at = range.end;
    }
    out.extend_from_slice(&raw[at..]);
    Some(out)
}

fn collect_edits(mime: &Mime<'_>, part: &Part, edits: &mut Vec<(Range<usize>, Vec<u8>)>) {
    match &part.kind {
        PartKind::Multipart(children) => {
            for child in children {
                collect_edits(mime, child, edits);
            }
            return;
        }
        PartKind::Message(inner) => return collect_edits(mime, inner, edits),
        PartKind::Leaf => {}
    }
    // Past the parsing bounds a multipart or message is a leaf too; base64
    // is not allowed for those (RFC 2045 §6.4).
    if part.media_type.eq_ignore_ascii_case("multipart")
        || part.media_type.eq_ignore_ascii_case("message")
    {
        return;
    }
    let body = &mime.raw[part.body.clone()];
    let header = &mime.raw[part.header.clone()];
    let cte = field_spans(header).into_iter().find(|(_, f)| {
        field_name(f).is_some_and(|n| n.eq_ignore_ascii_case("Content-Transfer-Encoding"))
    });
    let encoding = cte
        .and_then(|(_, f)| f.iter().position(|&b| b == b':').map(|c| &f[c + 1..]))
        .map(|v| String::from_utf8_lossy(&super::unfold(v)).to_ascii_lowercase())
        .unwrap_or_default();
    let convert = match encoding.as_str() {
        "binary" => true,
        "" | "7bit" | "8bit" => body.contains(&0),
        _ => false,
    };
    if !convert || body.is_empty() {
        return;
    }
    let crlf = header.windows(2).any(|w| w == b"\r\n") || mime.raw.windows(2).any(|w| w == b"\r\n");
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut field = b"Content-Transfer-Encoding: base64".to_vec();
    match cte {
        Some((start, f)) => {
            // The field keeps its place and its own line ending.
            let own_eol: &[u8] = if f.ends_with(b"\r\n") {
                b"\r\n"
            } else if f.ends_with(b"\n") {
                b"\n"
            } else {
                b""
            };
            field.extend_from_slice(own_eol);
            let at = part.header.start + start;
            edits.push((at..at + f.len(), field));
        }
        None => {
            field.extend_from_slice(eol);
            edits.push((part.header.end..part.header.end, field));
        }
    }
    edits.push((part.body.clone(), base64_lines(body, eol)));
}

/// Base64 with padding in lines of [`BASE64_LINE`] characters, the last one
/// without a line break (the delimiter or the end of the message follows).
fn base64_lines(data: &[u8], eol: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / BASE64_LINE * 2);
    for (i, line) in encoded.as_bytes().chunks(BASE64_LINE).enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_transfer_encodings() {
        assert_eq!(
            decode_qp(b"caf=C3=A9 =\r\nok").unwrap(),
            "café ok".as_bytes()
        );
        assert_eq!(decode_base64(b"aGVs\r\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(count_lines(b"a\r\nb"), 1);
        assert_eq!(count_lines(b"a\r\nb\r\n"), 2);
    }

    // RFC 2045 §6.7 rules (3) and (5): trailing white space on a line is
    // removed when decoding, and "=" with only white space after it before
    // the line break is a soft line break.
    #[test]
    fn quoted_printable_soft_breaks_and_trailing_space() {
        assert_eq!(decode_qp(b"soft = \r\nbreak").unwrap(), b"soft break");
        assert_eq!(decode_qp(b"tab =\t\r\nbreak").unwrap(), b"tab break");
        assert_eq!(decode_qp(b"line   \r\nnext").unwrap(), b"line\r\nnext");
        assert_eq!(decode_qp(b"kept=20\r\n").unwrap(), b"kept \r\n");
        // A last line ending in "=" (its line break belongs to a boundary).
        assert_eq!(decode_qp(b"end=").unwrap(), b"end");
        assert_eq!(decode_qp(b"bad =ZZ"), None);
        assert_eq!(
            decode("x-uuencode", b""),
            Err(DecodeError::UnknownEncoding("x-uuencode".into()))
        );
        assert_eq!(decode("Base64", b"!!"), Err(DecodeError::Corrupt("base64")));
    }

    const BINARY: &[u8] = b"Subject: b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nno NUL\r\n\
--b\r\nContent-Type: application/octet-stream\r\ncontent-transfer-encoding: Binary\r\nX-After: 1\r\n\r\na\0b\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nnul\0without CTE\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Transfer-Encoding: 8bit\r\n\r\ninner\0\r\n\
--b--\r\n";

    #[test]
    fn binary_parts_become_base64_without_nul() {
        let encoded = encode_binary_parts(BINARY).expect("changed");
        assert!(!encoded.contains(&0));
        let m = Mime::parse(&encoded);
        let section = |p: &[u32], text| {
            m.section(&crate::command::Section {
                part: p.to_vec(),
                text,
            })
            .unwrap()
        };
        assert_eq!(section(&[1], None), b"no NUL");
        assert_eq!(section(&[2], None), b"YQBi");
        assert_eq!(
            section(&[2], Some(crate::command::SectionText::Mime)),
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nX-After: 1\r\n\r\n"
        );
        assert_eq!(
            section(&[3], Some(crate::command::SectionText::Mime)),
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        );
        for (path, content) in [
            (&[2][..], &b"a\0b"[..]),
            (&[3], b"nul\0without CTE"),
            (&[4, 1], b"inner\0"),
        ] {
            assert_eq!(m.binary(path).unwrap().unwrap(), content, "{path:?}");
        }
        assert_eq!(encode_binary_parts(&encoded), None);
        assert_eq!(encode_binary_parts(b"Subject: x\r\n\r\nplain\r\n"), None);
    }

    #[test]
    fn long_content_is_wrapped_at_76() {
        let raw = [
            &b"Content-Transfer-Encoding: binary\r\n\r\n"[..],
            &[0u8; 100],
        ]
        .concat();
        let encoded = encode_binary_parts(&raw).unwrap();
        let body = &encoded[encoded.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), 77); // 76 and the CR
        assert_eq!(decode_base64(body).unwrap(), vec![0u8; 100]);
    }
}
