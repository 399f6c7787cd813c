//! MIME structure of a raw message, for ENVELOPE, BODYSTRUCTURE and body
//! sections (RFC 9051 §7.5.2). Works on the raw bytes with byte ranges so
//! that sizes and line counts are exact; header values are reported as they
//! are in the message (encoded words and RFC 2231 parameters untouched), as
//! IMAP requires. Bounded: nesting deeper than [`MAX_DEPTH`] or more than
//! [`MAX_PARTS`] parts are treated as opaque leaves.

mod address;
mod header;
mod transfer;

use std::ops::Range;

pub use address::{EnvelopeAddress, address_texts, first_mailbox, parse_addresses};
pub use header::{ContentType, header_fields, parse_content_type, parse_disposition, unfold};
pub use transfer::{DecodeError, count_lines, decode_base64, decode_qp, encode_binary_parts};

use crate::command::{Section, SectionText};
use header::{field_name, field_spans};

/// Deepest MIME nesting that is parsed into parts.
pub const MAX_DEPTH: usize = 32;
/// Most parts parsed in one message.
pub const MAX_PARTS: usize = 2000;

/// What a part contains.
#[derive(Debug)]
pub enum PartKind {
    /// A single body.
    Leaf,
    /// multipart/*: its parts.
    Multipart(Vec<Part>),
    /// message/rfc822 or message/global: the embedded message.
    Message(Box<Part>),
}

/// One MIME part (the whole message is the root part).
#[derive(Debug)]
pub struct Part {
    /// The header bytes, without the blank line that ends it.
    pub header: Range<usize>,
    /// Whether a blank line ended the header (and is part of the header section).
    pub blank_line: Range<usize>,
    /// The body bytes.
    pub body: Range<usize>,
    /// Media type as written (default `text`).
    pub media_type: String,
    /// Media subtype as written (default `plain`).
    pub subtype: String,
    /// Content-Type parameters as written.
    pub params: Vec<(String, String)>,
    /// What it contains.
    pub kind: PartKind,
}

/// A parsed message: the raw bytes and the root part.
pub struct Mime<'a> {
    /// The raw message.
    pub raw: &'a [u8],
    /// The root part.
    pub root: Part,
}

impl<'a> Mime<'a> {
    /// Parses a raw message.
    pub fn parse(raw: &'a [u8]) -> Self {
        let mut budget = MAX_PARTS;
        let root = parse_part(raw, 0..raw.len(), false, 0, &mut budget);
        Mime { raw, root }
    }

    /// Parses only the top level (header and body of the message), for
    /// ENVELOPE and the message's own header and text sections.
    pub fn parse_top(raw: &'a [u8]) -> Self {
        let mut budget = MAX_PARTS;
        let root = parse_part(raw, 0..raw.len(), false, MAX_DEPTH, &mut budget);
        Mime { raw, root }
    }

    fn slice(&self, r: &Range<usize>) -> &'a [u8] {
        &self.raw[r.clone()]
    }

    /// Header fields of a part: (name, raw value with folding).
    pub fn fields(&self, part: &Part) -> Vec<(&'a str, &'a [u8])> {
        header_fields(self.slice(&part.header))
    }

    /// The first value of a header field, unfolded and trimmed.
    pub fn field(&self, part: &Part, name: &str) -> Option<Vec<u8>> {
        self.fields(part)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unfold(v))
    }

    /// Finds the part a section path names (RFC 9051 §6.4.5): the parts of
    /// a message are numbered from 1; a message whose body is not multipart
    /// has one part, its body (so the part is the message itself, seen as a
    /// body part); the parts of a message/rfc822 part are those of the
    /// message it contains, numbered the same way.
    pub fn find<'p>(&'p self, path: &[u32]) -> Option<&'p Part> {
        // The message whose parts the next number counts (the root, or the
        // message inside a message/rfc822 part), or the part reached.
        let mut message = Some(&self.root);
        let mut cur = &self.root;
        for &n in path {
            let index = (n as usize).checked_sub(1)?;
            let holder = match message.take() {
                Some(m) => m,
                None => match &cur.kind {
                    PartKind::Message(inner) => &**inner,
                    PartKind::Multipart(_) => cur,
                    PartKind::Leaf => return None,
                },
            };
            cur = match &holder.kind {
                PartKind::Multipart(children) => children.get(index)?,
                // A message that is not multipart: part 1 is its body.
                _ if index == 0 => holder,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The bytes of a BODY[section], or `None` if the section does not exist.
    pub fn section(&self, section: &Section) -> Option<Vec<u8>> {
        let part = self.find(&section.part)?;
        // HEADER and TEXT name the message itself at the top level and, for
        // a message/rfc822 part, the message inside it (RFC 9051 §6.4.5);
        // other parts have none.
        let message = if section.part.is_empty() {
            Some(part)
        } else {
            match &part.kind {
                PartKind::Message(inner) => Some(&**inner),
                _ => None,
            }
        };
        Some(match &section.text {
            None if section.part.is_empty() => self.raw.to_vec(),
            None => self.slice(&part.body).to_vec(),
            Some(SectionText::Mime) => {
                let mut out = self.slice(&part.header).to_vec();
                out.extend_from_slice(self.slice(&part.blank_line));
                if part.blank_line.is_empty() {
                    out.extend_from_slice(b"\r\n");
                }
                out
            }
            Some(SectionText::Header) => {
                let m = message?;
                let mut out = self.slice(&m.header).to_vec();
                out.extend_from_slice(self.slice(&m.blank_line));
                out
            }
            Some(SectionText::Text) => self.slice(&message?.body).to_vec(),
            Some(SectionText::HeaderFields(names)) | Some(SectionText::HeaderFieldsNot(names)) => {
                let keep = matches!(section.text, Some(SectionText::HeaderFields(_)));
                let m = message?;
                let mut out = Vec::new();
                for (_, field) in field_spans(self.slice(&m.header)) {
                    let name = field_name(field).unwrap_or("");
                    if names.iter().any(|n| n.eq_ignore_ascii_case(name)) == keep {
                        out.extend_from_slice(field);
                        if !field.ends_with(b"\n") {
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                }
                out.extend_from_slice(b"\r\n");
                out
            }
        })
    }

    /// The decoded content of a part for BINARY[part] (RFC 3516 §4.2):
    /// `None` if there is no such part, `Err` if its transfer encoding is
    /// unknown or its content does not decode.
    pub fn binary(&self, path: &[u32]) -> Option<Result<Vec<u8>, DecodeError>> {
        if path.is_empty() {
            return Some(Ok(self.raw.to_vec()));
        }
        let part = self.find(path)?;
        let body = self.slice(&part.body);
        if matches!(part.kind, PartKind::Multipart(_)) {
            return Some(Ok(body.to_vec()));
        }
        let encoding = self.field(part, "Content-Transfer-Encoding");
        Some(transfer::decode(
            &String::from_utf8_lossy(encoding.as_deref().unwrap_or_default()),
            body,
        ))
    }
}

/// Parses the part in `range`. `digest` makes message/rfc822 the default type.
fn parse_part(
    raw: &[u8],
    range: Range<usize>,
    digest: bool,
    depth: usize,
    budget: &mut usize,
) -> Part {
    *budget = budget.saturating_sub(1);
    let bytes = &raw[range.clone()];
    let (header_len, blank_len) = rampart_core::header::header_end(bytes);
    let header = range.start..range.start + header_len;
    let blank_line = header.end..header.end + blank_len;
    let body = blank_line.end..range.end;
    let fields = header_fields(&raw[header.clone()]);
    let content_type = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, v)| String::from_utf8_lossy(&unfold(v)).into_owned());
    let (media_type, subtype, params) = match content_type.as_deref().and_then(parse_content_type) {
        Some(ct) => ct,
        None if digest => ("message".into(), "rfc822".into(), vec![]),
        None => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    // RFC 2045 §5.2: text without a charset is us-ascii; BODYSTRUCTURE
    // names it, as Dovecot does.
    let mut params = params;
    if media_type.eq_ignore_ascii_case("text")
        && !params
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("charset"))
    {
        params.insert(0, ("charset".into(), "us-ascii".into()));
    }
    let mut part = Part {
        header,
        blank_line,
        body: body.clone(),
        media_type,
        subtype,
        params,
        kind: PartKind::Leaf,
    };
    if depth >= MAX_DEPTH || *budget == 0 {
        return part;
    }
    if part.media_type.eq_ignore_ascii_case("multipart") {
        let boundary = part
            .params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.clone());
        // Without a boundary there are no parts (Dovecot reports one empty
        // text part); the body stays reachable as the multipart's own.
        part.kind = PartKind::Multipart(Vec::new());
        if let Some(boundary) = boundary.filter(|b| !b.is_empty()) {
            let is_digest = part.subtype.eq_ignore_ascii_case("digest");
            let mut children = Vec::new();
            for r in split_multipart(raw, body, boundary.as_bytes()) {
                if *budget == 0 {
                    break;
                }
                children.push(parse_part(raw, r, is_digest, depth + 1, budget));
            }
            part.kind = PartKind::Multipart(children);
        }
    } else if part.media_type.eq_ignore_ascii_case("message")
        && (part.subtype.eq_ignore_ascii_case("rfc822")
            || part.subtype.eq_ignore_ascii_case("global"))
    {
        part.kind = PartKind::Message(Box::new(parse_part(raw, body, false, depth + 1, budget)));
    }
    part
}

/// Whether the line that ends at `end` (inside the part starting at
/// `start`) is a close delimiter (`--boundary--`) of a nested multipart.
fn after_close_delimiter(raw: &[u8], start: usize, end: usize) -> bool {
    let line_start = raw[start..end - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(start, |p| start + p + 1);
    let line = raw[line_start..end].trim_ascii_end();
    line.len() > 4 && line.starts_with(b"--") && line.ends_with(b"--")
}

/// Ranges of the body parts between boundary delimiter lines.
fn split_multipart(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut line_start = body.start;
    while line_start < body.end {
        let line_end = raw[line_start..body.end]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| line_start + p + 1)
            .unwrap_or(body.end);
        let line = &raw[line_start..line_end];
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(s) = start.take() {
                    // The line break before the delimiter belongs to it
                    // (RFC 2046 §5.1.1), unless it ends a nested part's
                    // close delimiter, which keeps it, as Dovecot counts.
                    let mut end = line_start;
                    if end > s && raw[end - 1] == b'\n' && !after_close_delimiter(raw, s, end) {
                        end -= 1;
                        if end > s && raw[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(s..end.max(s));
                }
                if closing {
                    return parts;
                }
                start = Some(line_end);
            }
        }
        line_start = line_end;
    }
    if let Some(s) = start {
        parts.push(s..body.end);
    }
    parts
}

#[cfg(test)]
mod tests;
