//! Header fields and structured header values: unfolding, Content-Type and
//! Content-Disposition with their parameters (RFC 2045 §5, RFC 2231).

/// Each header field's start offset and whole bytes (with folded lines).
pub(super) fn field_spans(header: &[u8]) -> Vec<(usize, &[u8])> {
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

pub(super) fn field_name(field: &[u8]) -> Option<&str> {
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

/// Each character of a header value with whether it stands outside quoted
/// strings: the quotes, a quoted-pair and everything between quotes do not
/// (RFC 5322 §3.2.4).
pub(super) fn unquoted_chars(s: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    let mut quoted = false;
    let mut escaped = false;
    s.chars().map(move |c| {
        if escaped {
            escaped = false;
            (c, false)
        } else if c == '\\' && quoted {
            escaped = true;
            (c, false)
        } else if c == '"' {
            quoted = !quoted;
            (c, false)
        } else {
            (c, !quoted)
        }
    })
}

/// Splits on `sep` outside quoted strings.
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    for (c, outside) in unquoted_chars(s) {
        if outside && c == sep {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// A quoted string's content (escapes resolved), or the trimmed text.
pub(super) fn unquote(s: &str) -> String {
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
