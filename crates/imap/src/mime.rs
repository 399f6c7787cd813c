//! MIME structure of a raw message, for ENVELOPE, BODYSTRUCTURE and body
//! sections (RFC 9051 §7.5.2). Works on the raw bytes with byte ranges so
//! that sizes and line counts are exact; header values are reported as they
//! are in the message (encoded words and RFC 2231 parameters untouched), as
//! IMAP requires. Bounded: nesting deeper than [`MAX_DEPTH`] or more than
//! [`MAX_PARTS`] parts are treated as opaque leaves.

use std::ops::Range;

use crate::command::{Section, SectionText};

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

    /// Finds the part a section path names.
    pub fn find<'p>(&'p self, path: &[u32]) -> Option<&'p Part> {
        let mut cur = &self.root;
        for &n in path {
            if let PartKind::Message(inner) = &cur.kind {
                cur = inner;
            }
            cur = match &cur.kind {
                PartKind::Multipart(children) => children.get(n as usize - 1)?,
                _ if n == 1 => cur,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The bytes of a BODY[section], or `None` if the section does not exist.
    pub fn section(&self, section: &Section) -> Option<Vec<u8>> {
        let part = self.find(&section.part)?;
        // HEADER and TEXT of a nested part refer to the message inside it.
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
                for (field_start, field) in field_spans(self.slice(&m.header)) {
                    let name = field_name(field).unwrap_or("");
                    if names.iter().any(|n| n.eq_ignore_ascii_case(name)) == keep {
                        let _ = field_start;
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

    /// The decoded content of a part for BINARY[part]; `Err` names an
    /// unknown transfer encoding.
    pub fn binary(&self, path: &[u32]) -> Option<Result<Vec<u8>, String>> {
        if path.is_empty() {
            return Some(Ok(self.raw.to_vec()));
        }
        let part = self.find(path)?;
        if matches!(part.kind, PartKind::Multipart(_)) {
            return Some(Ok(self.slice(&part.body).to_vec()));
        }
        let body = self.slice(&part.body);
        let encoding = self
            .field(part, "Content-Transfer-Encoding")
            .map(|v| String::from_utf8_lossy(&v).trim().to_ascii_lowercase())
            .unwrap_or_default();
        Some(match encoding.as_str() {
            "" | "7bit" | "8bit" | "binary" => Ok(body.to_vec()),
            "base64" => Ok(decode_base64(body)),
            "quoted-printable" => Ok(decode_qp(body)),
            other => Err(other.to_owned()),
        })
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
    let (header_len, blank_len) = header_end(bytes);
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

/// Length of the header and of the blank line after it.
fn header_end(bytes: &[u8]) -> (usize, usize) {
    if bytes.starts_with(b"\r\n") {
        return (0, 2);
    }
    if bytes.starts_with(b"\n") {
        return (0, 1);
    }
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|&b| b == b'\n') {
        let line_end = i + p + 1;
        match &bytes[line_end..] {
            [b'\r', b'\n', ..] => return (line_end, 2),
            [b'\n', ..] => return (line_end, 1),
            _ => i = line_end,
        }
    }
    (bytes.len(), 0)
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
                    // The line break before the delimiter belongs to it.
                    let mut end = line_start;
                    if end > s && raw[end - 1] == b'\n' {
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

/// Each header field's start offset and whole bytes (with folded lines).
fn field_spans(header: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < header.len() {
        let end = header[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(header.len());
        let continuation = matches!(header[i], b' ' | b'\t');
        match out.last_mut() {
            Some(last) if continuation => last.1 = end,
            _ => out.push((i, end)),
        }
        i = end;
    }
    out.into_iter().map(|(s, e)| (s, &header[s..e])).collect()
}

fn field_name(field: &[u8]) -> Option<&str> {
    let colon = field.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&field[..colon]).ok().map(str::trim_end)
}

/// (name, raw value) of each header field.
pub fn header_fields(header: &[u8]) -> Vec<(&str, &[u8])> {
    field_spans(header)
        .into_iter()
        .filter_map(|(_, f)| {
            let name = field_name(f)?;
            let colon = f.iter().position(|&b| b == b':')?;
            Some((name, &f[colon + 1..]))
        })
        .collect()
}

/// A header value with line folding removed and surrounding space trimmed.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut after_break = false;
    for &b in value {
        match b {
            b'\r' => {}
            b'\n' => after_break = true,
            // Folding white space becomes one space, as Dovecot reports it.
            b'\t' if after_break => {
                out.push(b' ');
                after_break = false;
            }
            _ => {
                out.push(b);
                after_break = false;
            }
        }
    }
    let start = out
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(out.len());
    let end = out
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    out[start..end.max(start)].to_vec()
}

/// Removes RFC 5322 comments outside quoted strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Splits on `sep` outside quoted strings.
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(String::new());
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped || c != '\\' {
                    out.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => s.to_owned(),
    }
}

/// Media type, subtype and parameters of a Content-Type value.
pub type ContentType = (String, String, Vec<(String, String)>);

/// `type/subtype; a=b; c="d"` as (type, subtype, params).
pub fn parse_content_type(value: &str) -> Option<ContentType> {
    let clean = strip_comments(value);
    let mut items = split_unquoted(&clean, ';').into_iter();
    let full = items.next()?;
    let (t, st) = full.trim().split_once('/')?;
    let (t, st) = (t.trim(), st.trim());
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    if !token(t) || !token(st) {
        return None;
    }
    Some((t.to_owned(), st.to_owned(), params(items)))
}

fn params(items: impl Iterator<Item = String>) -> Vec<(String, String)> {
    let raw: Vec<(String, String)> = items
        .filter_map(|item| {
            let (n, v) = item.split_once('=')?;
            let n = n.trim();
            (!n.is_empty()).then(|| (n.to_owned(), unquote(v)))
        })
        .take(64)
        .collect();
    merge_continuations(raw)
}

/// One piece of an RFC 2231 continuation: index, whether encoded, value.
type Piece = (u32, bool, String);

/// Joins RFC 2231 continuations (`name*0`, `name*1*`, ...) into one
/// parameter, `name` or (when any piece is encoded) `name*`, placed after
/// the others, as Dovecot reports them. The value stays encoded.
fn merge_continuations(raw: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut plain = Vec::new();
    // base name -> its pieces, in order of appearance.
    let mut pieces: Vec<(String, Vec<Piece>)> = Vec::new();
    for (name, value) in raw {
        let continuation = name.split_once('*').and_then(|(base, rest)| {
            let (index, encoded) = match rest.strip_suffix('*') {
                Some(i) => (i, true),
                None => (rest, false),
            };
            let index: u32 = index.parse().ok()?;
            Some((base.to_owned(), index, encoded))
        });
        match continuation {
            Some((base, index, encoded)) => {
                match pieces
                    .iter_mut()
                    .find(|(b, _)| b.eq_ignore_ascii_case(&base))
                {
                    Some((_, list)) => list.push((index, encoded, value)),
                    None => pieces.push((base, vec![(index, encoded, value)])),
                }
            }
            None => plain.push((name, value)),
        }
    }
    for (base, mut list) in pieces {
        list.sort_by_key(|(i, _, _)| *i);
        let encoded = list.iter().any(|(_, e, _)| *e);
        let value: String = list.into_iter().map(|(_, _, v)| v).collect();
        plain.push((if encoded { format!("{base}*") } else { base }, value));
    }
    plain
}

/// `attachment; filename="x"` as (disposition, params).
pub fn parse_disposition(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let clean = strip_comments(value);
    let mut items = split_unquoted(&clean, ';').into_iter();
    let kind = items.next()?.trim().to_owned();
    if kind.is_empty() {
        return None;
    }
    Some((kind, params(items)))
}

/// An address from a header, as ENVELOPE reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvelopeAddress {
    /// Display name (raw).
    pub name: Option<String>,
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
        // A route (@a,@b:) before the address is dropped.
        let addr = addr.rsplit(':').next().unwrap_or("").to_owned();
        // Dovecot's spelling for an address without a domain.
        let (mailbox, host) = match addr.rsplit_once('@') {
            Some((m, h)) => (m.to_owned(), h.to_owned()),
            None => (addr, "MISSING_DOMAIN".to_owned()),
        };
        out.push(EnvelopeAddress {
            name: name.map(|n| unquote_phrase(&n)),
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
                    name: None,
                    mailbox: Some(unquote_phrase(phrase.trim())),
                    host: None,
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
    let mut out = String::with_capacity(s.len());
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c.is_whitespace() && !quoted {
            continue;
        }
        out.push(c);
    }
    out
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

/// Number of lines in a body: its line breaks, as Dovecot counts them (a
/// last line without a break, as before a boundary, does not count).
pub fn count_lines(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count()
}

/// Base64 as found in mail: no padding required, trailing bits allowed.
const LENIENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

/// Decodes base64, ignoring line breaks and anything not in the alphabet.
pub fn decode_base64(body: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let mut clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT_BASE64.decode(&clean).unwrap_or_default()
}

/// Decodes quoted-printable (RFC 2045 §6.7), leniently.
pub fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'=' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (body.get(i + 1), body.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => i += 3,
                (Some(b'\n'), _) => i += 2,
                (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                    out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: \"Doe, Jane\" <jane@example.org>\r\n\
Subject: test\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
plain\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<b>html</b>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n\
--outer\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGVsbG8gd29y\r\n\
bGQ=\r\n\
--outer--\r\n";

    #[test]
    fn finds_parts_and_sections() {
        let m = Mime::parse(MSG);
        let PartKind::Multipart(parts) = &m.root.kind else {
            panic!()
        };
        assert_eq!(parts.len(), 3);
        let sec = |p: Vec<u32>, t: Option<SectionText>| {
            m.section(&Section { part: p, text: t })
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(sec(vec![1, 1], None).as_deref(), Some("plain"));
        assert_eq!(sec(vec![1, 2], None).as_deref(), Some("<b>html</b>"));
        assert_eq!(
            sec(vec![2], Some(SectionText::Header)).as_deref(),
            Some("Subject: inner\r\n\r\n")
        );
        assert_eq!(
            sec(vec![2], Some(SectionText::Text)).as_deref(),
            Some("inner body")
        );
        assert_eq!(sec(vec![2, 1], None).as_deref(), Some("inner body"));
        assert_eq!(
            sec(vec![1, 1], Some(SectionText::Mime)).as_deref(),
            Some("Content-Type: text/plain; charset=utf-8\r\n\r\n")
        );
        assert_eq!(
            sec(
                vec![],
                Some(SectionText::HeaderFields(vec!["SUBJECT".into()]))
            )
            .as_deref(),
            Some("Subject: test\r\n\r\n")
        );
        assert_eq!(sec(vec![4], None), None);
        assert_eq!(m.binary(&[3]).unwrap().unwrap(), b"hello world");
    }

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

    #[test]
    fn decodes_transfer_encodings() {
        assert_eq!(decode_qp(b"caf=C3=A9 =\r\nok"), "café ok".as_bytes());
        assert_eq!(decode_base64(b"aGVs\r\nbG8="), b"hello");
        assert_eq!(decode_base64(b"aGVsbG8"), b"hello");
        assert_eq!(count_lines(b"a\r\nb"), 1);
        assert_eq!(count_lines(b"a\r\nb\r\n"), 2);
    }
}
