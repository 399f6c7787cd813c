//! FETCH data items and section specifications (RFC 9051 §6.4.5, §9;
//! RFC 3516 BINARY; RFC 7162 CHANGEDSINCE/VANISHED).

use super::{Args, Command, R, parse_number};
use crate::parser::Token;

/// The part of a message a section names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    /// The header.
    Header,
    /// Only the named header fields.
    HeaderFields(Vec<String>),
    /// All header fields but the named ones.
    HeaderFieldsNot(Vec<String>),
    /// The body without the header.
    Text,
    /// The MIME header of a body part.
    Mime,
}

/// `[1.2.HEADER]`: a part path and what of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// Part numbers, outermost first; empty for the whole message.
    pub part: Vec<u32>,
    /// What of the part; `None` for all of it.
    pub text: Option<SectionText>,
}

/// One FETCH data item asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchAtt {
    /// UID.
    Uid,
    /// FLAGS.
    Flags,
    /// INTERNALDATE.
    InternalDate,
    /// RFC822.SIZE.
    Rfc822Size,
    /// ENVELOPE.
    Envelope,
    /// BODYSTRUCTURE (with extension data).
    BodyStructure,
    /// BODY (without extension data).
    Body,
    /// BODY[...], BODY.PEEK[...], BINARY[...], BINARY.PEEK[...], RFC822,
    /// RFC822.HEADER, RFC822.TEXT.
    Section {
        /// How the item is named in the response.
        name: SectionName,
        /// Whether \Seen is left alone.
        peek: bool,
        /// The section.
        section: Section,
        /// `<offset.length>`.
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[part].
    BinarySize(Vec<u32>),
    /// MODSEQ (RFC 7162).
    ModSeq,
    /// EMAILID (RFC 8474).
    EmailId,
    /// THREADID (RFC 8474).
    ThreadId,
}

/// How a section item is named in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionName {
    /// BODY[...]
    Body,
    /// BINARY[...]
    Binary,
    /// RFC822
    Rfc822,
    /// RFC822.HEADER
    Rfc822Header,
    /// RFC822.TEXT
    Rfc822Text,
}

/// FETCH set (items) or a macro, with optional modifiers.
pub(super) fn parse_fetch(uid: bool, args: &mut Args<'_>) -> R<Command> {
    let set = args.seq_set()?;
    let mut atts = Vec::new();
    match args.next()? {
        Token::Atom(a) => match a.to_ascii_uppercase().as_str() {
            "ALL" => atts.extend([
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
                FetchAtt::Envelope,
            ]),
            "FAST" => atts.extend([
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
            ]),
            "FULL" => atts.extend([
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
                FetchAtt::Envelope,
                FetchAtt::Body,
            ]),
            _ => atts.push(fetch_att(a)?),
        },
        // "(" fetch-att *(SP fetch-att) ")": at least one.
        Token::List(l) if l.is_empty() => return Err("Empty FETCH item list".into()),
        Token::List(l) => {
            for t in l {
                atts.push(fetch_att(t.as_atom().ok_or("Expected a fetch item")?)?);
            }
        }
        Token::Str(_) | Token::Literal8(_) => return Err("Expected fetch items".into()),
    }
    let mut changed_since = None;
    let mut vanished = false;
    if let Some(Token::List(mods)) = args.tokens.next() {
        let mut m = Args::nested(mods, args.limits);
        while let Some(t) = m.tokens.next() {
            match t.as_atom().map(str::to_ascii_uppercase).as_deref() {
                Some("CHANGEDSINCE") => changed_since = Some(m.number()?),
                Some("VANISHED") => vanished = true,
                _ => return Err(format!("Unknown FETCH modifier {t:?}")),
            }
        }
    }
    args.end()?;
    if vanished && (!uid || changed_since.is_none()) {
        return Err("VANISHED needs UID FETCH with CHANGEDSINCE".into());
    }
    if uid && !atts.contains(&FetchAtt::Uid) {
        atts.insert(0, FetchAtt::Uid);
    }
    if changed_since.is_some() && !atts.contains(&FetchAtt::ModSeq) {
        atts.push(FetchAtt::ModSeq);
    }
    Ok(Command::Fetch {
        uid,
        set,
        atts,
        changed_since,
        vanished,
    })
}

fn fetch_att(a: &str) -> R<FetchAtt> {
    let upper = a.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "UID" => FetchAtt::Uid,
        "FLAGS" => FetchAtt::Flags,
        "INTERNALDATE" => FetchAtt::InternalDate,
        "RFC822.SIZE" => FetchAtt::Rfc822Size,
        "ENVELOPE" => FetchAtt::Envelope,
        "BODYSTRUCTURE" => FetchAtt::BodyStructure,
        "BODY" => FetchAtt::Body,
        "MODSEQ" => FetchAtt::ModSeq,
        "EMAILID" => FetchAtt::EmailId,
        "THREADID" => FetchAtt::ThreadId,
        "RFC822" => FetchAtt::Section {
            name: SectionName::Rfc822,
            peek: false,
            section: Section::default(),
            partial: None,
        },
        "RFC822.HEADER" => FetchAtt::Section {
            name: SectionName::Rfc822Header,
            peek: true,
            section: Section {
                part: vec![],
                text: Some(SectionText::Header),
            },
            partial: None,
        },
        "RFC822.TEXT" => FetchAtt::Section {
            name: SectionName::Rfc822Text,
            peek: false,
            section: Section {
                part: vec![],
                text: Some(SectionText::Text),
            },
            partial: None,
        },
        _ => {
            let open = a
                .find('[')
                .ok_or_else(|| format!("Unknown fetch item {a}"))?;
            let close = a.rfind(']').ok_or("Missing ']'")?;
            let head = &upper[..open];
            let inner = &a[open + 1..close];
            let tail = &a[close + 1..];
            let (name, peek) = match head {
                "BODY" => (SectionName::Body, false),
                "BODY.PEEK" => (SectionName::Body, true),
                "BINARY" => (SectionName::Binary, false),
                "BINARY.PEEK" => (SectionName::Binary, true),
                "BINARY.SIZE" => {
                    if !tail.is_empty() {
                        return Err("BINARY.SIZE takes no partial".into());
                    }
                    return Ok(FetchAtt::BinarySize(part_numbers(inner)?));
                }
                _ => return Err(format!("Unknown fetch item {a}")),
            };
            let section = parse_section(inner)?;
            if name == SectionName::Binary && section.text.is_some() {
                return Err("BINARY takes only part numbers".into());
            }
            let partial = if tail.is_empty() {
                None
            } else {
                let p = tail
                    .strip_prefix('<')
                    .and_then(|t| t.strip_suffix('>'))
                    .ok_or("Invalid partial")?;
                let (o, l) = p.split_once('.').ok_or("Invalid partial")?;
                let o = u32::try_from(parse_number(o)?).map_err(|_| "Partial out of range")?;
                let l = u32::try_from(parse_number(l)?).map_err(|_| "Partial out of range")?;
                if l == 0 {
                    return Err("Partial length must not be zero".into());
                }
                Some((o, l))
            };
            FetchAtt::Section {
                name,
                peek,
                section,
                partial,
            }
        }
    })
}

/// section-part = nz-number *("." nz-number); empty for the whole message.
fn part_numbers(s: &str) -> R<Vec<u32>> {
    if s.is_empty() {
        return Ok(vec![]);
    }
    let part: Vec<u32> = s
        .split('.')
        .map(|p| match p.parse::<u32>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(format!("Invalid part number {p:?}")),
        })
        .collect::<R<_>>()?;
    if part.len() > 64 {
        return Err("[LIMIT] Part path too deep".into());
    }
    Ok(part)
}

/// The inside of `BODY[...]` (RFC 9051 §9 `section-spec`):
/// section-msgtext / section-part ["." section-text].
fn parse_section(s: &str) -> R<Section> {
    // The part path is the leading run of digits and dots that ends at the
    // end or just before a letter (`1.2`, `1.2.HEADER`).
    let digits_end = s
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(s.len());
    let (part, rest) = if digits_end == s.len() {
        (part_numbers(s)?, "")
    } else if digits_end == 0 {
        (vec![], s)
    } else {
        let path = s[..digits_end].strip_suffix('.').ok_or("Invalid section")?;
        (part_numbers(path)?, &s[digits_end..])
    };
    if part.is_empty() && digits_end > 0 {
        return Err("Invalid section".into());
    }
    if rest.is_empty() {
        return Ok(Section { part, text: None });
    }
    let (kind, fields) = match rest.split_once(' ') {
        Some((k, f)) => (k.to_ascii_uppercase(), Some(f)),
        None => (rest.to_ascii_uppercase(), None),
    };
    let text = match (kind.as_str(), fields) {
        ("HEADER", None) => SectionText::Header,
        ("TEXT", None) => SectionText::Text,
        // section-text = section-msgtext / "MIME": MIME only after a part.
        ("MIME", None) if !part.is_empty() => SectionText::Mime,
        ("HEADER.FIELDS", Some(f)) => SectionText::HeaderFields(header_list(f)?),
        ("HEADER.FIELDS.NOT", Some(f)) => SectionText::HeaderFieldsNot(header_list(f)?),
        _ => return Err(format!("Invalid section {s:?}")),
    };
    Ok(Section {
        part,
        text: Some(text),
    })
}

/// header-list = "(" header-fld-name *(SP header-fld-name) ")", each name an
/// astring: an atom (which may hold `]`) or a quoted string with `\"` and
/// `\\` escapes. Names keep the client's spelling: they are echoed back.
fn header_list(s: &str) -> R<Vec<String>> {
    let inner = s
        .strip_prefix('(')
        .and_then(|f| f.strip_suffix(')'))
        .ok_or("Invalid header field list")?;
    let mut names = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next().ok_or("Unterminated header field name")? {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some(c @ ('"' | '\\')) => name.push(c),
                        _ => return Err("Invalid escape in header field name".into()),
                    },
                    c => name.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                if matches!(c, '(' | ')' | '{' | '"' | '\\' | '%' | '*') || c.is_control() {
                    return Err("Invalid header field name".into());
                }
                name.push(c);
                chars.next();
            }
            if name.is_empty() {
                return Err("Empty header field name".into());
            }
        }
        names.push(name);
        match chars.next() {
            None => return Ok(names),
            Some(' ') => {}
            Some(_) => return Err("Expected a space in the header field list".into()),
        }
    }
}
