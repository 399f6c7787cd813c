//! Reading and parsing server responses for `imap-stress`: a response is
//! one line plus the literals it announces (RFC 9051 §4.3), parsed into the
//! few shapes the stress client models and checks.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// One piece of a response as it came off the wire.
#[derive(Debug)]
pub enum Seg {
    /// A line's text, without its CRLF; ends with `{n}` when a literal follows.
    Text(Vec<u8>),
    /// A literal's octets.
    Lit(Vec<u8>),
}

/// A whole response: text segments alternating with literals, text first and last.
#[derive(Debug, Default)]
pub struct Raw {
    /// The segments in wire order.
    pub segs: Vec<Seg>,
}

impl Raw {
    /// The response for an error report: its text with literals elided, cut to 300 characters.
    pub fn show(&self) -> String {
        self.show_at_most(300)
    }

    /// The response's text with literals elided, cut to `limit` characters.
    pub fn show_at_most(&self, limit: usize) -> String {
        let mut s = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Text(t) => s.push_str(&String::from_utf8_lossy(t)),
                Seg::Lit(l) => s.push_str(&format!("<{} octets>", l.len())),
            }
        }
        if s.len() > limit {
            let mut cut = limit;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        s
    }

    /// Whether the response's first line starts with `tag` and a space.
    pub fn starts_with_tag(&self, tag: &str) -> bool {
        matches!(self.segs.first(), Some(Seg::Text(t)) if t.starts_with(tag.as_bytes()) && t.get(tag.len()) == Some(&b' '))
    }
}

/// What reading found wrong without making the response unreadable.
#[derive(Debug)]
pub struct Oddity {
    /// Short name of the rule, for the per-kind counts.
    pub kind: &'static str,
    /// What exactly.
    pub detail: String,
}

/// Reads one response (a line and any literals it announces). `tag` is the
/// tag of the command in progress: a literal holding a line that starts with
/// it means the server sent its tagged response before the literal's data
/// had ended (it announced more octets than it sent).
pub async fn read_response<R: AsyncBufRead + Unpin>(
    r: &mut R,
    tag: &str,
    oddities: &mut Vec<Oddity>,
) -> std::io::Result<Raw> {
    let mut raw = Raw::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        // RFC 9051 §2.2: lines end in CRLF.
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
        } else {
            oddities.push(Oddity {
                kind: "line not ended by CRLF",
                detail: String::from_utf8_lossy(&line).into_owned(),
            });
            if line.ends_with(b"\n") {
                line.pop();
            }
        }
        let size = literal_size(&line);
        raw.segs.push(Seg::Text(std::mem::take(&mut line)));
        let Some(size) = size else { return Ok(raw) };
        let mut lit = vec![0; size];
        r.read_exact(&mut lit).await?;
        let mut needle = b"\r\n".to_vec();
        needle.extend_from_slice(tag.as_bytes());
        needle.push(b' ');
        if lit.starts_with(&needle[2..]) || lit.windows(needle.len()).any(|w| w == needle) {
            oddities.push(Oddity {
                kind: "tagged response before its literal data ends",
                detail: format!(
                    "a {size}-octet literal contains a line starting with the tag {tag}"
                ),
            });
        }
        raw.segs.push(Seg::Lit(lit));
    }
}

/// The octet count of the literal a line ends with (`{n}`, or `~{n}` for literal8).
fn literal_size(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// A parsed value of a response's data.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// An atom or a number (numbers stay text until asked for).
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    /// NIL.
    Nil,
    /// A parenthesised list.
    List(Vec<Val>),
}

/// The response codes the model uses (RFC 9051 §7.1).
#[derive(Debug, Clone, PartialEq)]
pub enum Code {
    /// `[PERMANENTFLAGS (...)]`.
    PermanentFlags(Vec<String>),
    /// `[UIDVALIDITY n]`.
    UidValidity(u32),
    /// `[UIDNEXT n]`.
    UidNext(u32),
    /// `[APPENDUID validity uid]` (RFC 4315 §3).
    AppendUid(u32, u32),
    /// Any other code, by name.
    Other(String),
}

/// Status of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// OK.
    Ok,
    /// NO.
    No,
    /// BAD.
    Bad,
    /// BYE.
    Bye,
    /// PREAUTH.
    Preauth,
}

/// A parsed response.
#[derive(Debug)]
pub enum Resp {
    /// `tag STATUS [code] text`.
    Tagged {
        tag: String,
        status: Status,
        code: Option<Code>,
        text: String,
    },
    /// `+ text`.
    Continue,
    /// `* STATUS [code] text`.
    Untagged {
        status: Status,
        code: Option<Code>,
        text: String,
    },
    /// `* FLAGS (...)`.
    Flags(Vec<String>),
    /// `* n EXISTS`.
    Exists(u32),
    /// `* n RECENT` (IMAP4rev1; the model has no use for it).
    Recent,
    /// `* n EXPUNGE`.
    Expunge(u32),
    /// `* n FETCH (name value ...)`.
    Fetch(u32, Vec<(String, Val)>),
    /// Untagged data the model does not use (CAPABILITY, LIST, STATUS, ...).
    Other,
}

/// Parses one response; the error says where and why it does not parse.
pub fn parse(raw: &Raw) -> Result<Resp, String> {
    let mut c = Cur {
        segs: &raw.segs,
        i: 0,
        p: 0,
    };
    let resp = c.response()?;
    if !c.at_end() {
        return Err(format!("unexpected data at octet {}", c.p));
    }
    Ok(resp)
}

/// A position in a response's segments.
struct Cur<'a> {
    segs: &'a [Seg],
    i: usize,
    p: usize,
}

impl Cur<'_> {
    fn text(&self) -> &[u8] {
        match self.segs.get(self.i) {
            Some(Seg::Text(t)) => &t[self.p.min(t.len())..],
            _ => &[],
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text().first().copied()
    }

    fn at_end(&self) -> bool {
        self.i + 1 >= self.segs.len() && self.text().is_empty()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.p += 1;
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at octet {}, found {:?}",
                b as char,
                self.p,
                self.peek().map(|b| b as char)
            ))
        }
    }

    fn sp(&mut self) -> Result<(), String> {
        self.expect(b' ')
    }

    /// The rest of the line as text; no literal may follow (resp-text has none).
    fn rest(&mut self) -> Result<String, String> {
        let s = String::from_utf8_lossy(self.text()).into_owned();
        if self.i + 1 < self.segs.len() {
            return Err("a literal inside response text".into());
        }
        self.p += self.text().len();
        Ok(s)
    }

    /// Skips whatever remains, literals included (data the model ignores).
    fn skip_all(&mut self) -> String {
        let s = String::from_utf8_lossy(self.text()).into_owned();
        self.i = self.segs.len().saturating_sub(1);
        self.p = usize::MAX;
        s
    }

    fn atom(&mut self) -> Result<String, String> {
        let t = self.text();
        let n = t.iter().take_while(|&&b| is_atom_char(b)).count();
        if n == 0 {
            return Err(format!(
                "expected an atom at octet {}, found {:?}",
                self.p,
                self.peek().map(|b| b as char)
            ));
        }
        let mut s = String::from_utf8_lossy(&t[..n]).into_owned();
        self.p += n;
        // A fetch item name carries its section and partial range
        // (RFC 9051 §7.5.2: `BODY[HEADER]<0>`); the section may hold spaces.
        // The atom stops at the section's ']' (or at a space inside it).
        let item = s.split('[').next().unwrap_or("").to_ascii_uppercase();
        if s.contains('[')
            && matches!(
                item.as_str(),
                "BODY" | "BINARY" | "BINARY.SIZE" | "BODY.PEEK" | "BINARY.PEEK"
            )
        {
            let t = self.text();
            let close = t
                .iter()
                .position(|&b| b == b']')
                .ok_or("a section without ']'")?;
            s.push_str(&String::from_utf8_lossy(&t[..=close]));
            self.p += close + 1;
            if self.peek() == Some(b'<') {
                let t = self.text();
                let close = t
                    .iter()
                    .position(|&b| b == b'>')
                    .ok_or("an origin without '>'")?;
                s.push_str(&String::from_utf8_lossy(&t[..=close]));
                self.p += close + 1;
            }
        }
        Ok(s)
    }

    fn number(&mut self) -> Result<u32, String> {
        let a = self.atom()?;
        a.parse()
            .map_err(|_| format!("expected a number, found {a:?}"))
    }

    fn value(&mut self) -> Result<Val, String> {
        match self.peek() {
            Some(b'(') => {
                self.p += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b')') {
                    self.p += 1;
                    return Ok(Val::List(items));
                }
                loop {
                    items.push(self.value()?);
                    match self.peek() {
                        Some(b' ') => self.p += 1,
                        Some(b')') => {
                            self.p += 1;
                            return Ok(Val::List(items));
                        }
                        other => {
                            return Err(format!(
                                "expected ' ' or ')' in a list at octet {}, found {:?}",
                                self.p,
                                other.map(|b| b as char)
                            ));
                        }
                    }
                }
            }
            Some(b'"') => {
                self.p += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err("unterminated quoted string".into()),
                        Some(b'"') => {
                            self.p += 1;
                            return Ok(Val::Str(out));
                        }
                        Some(b'\\') => {
                            self.p += 1;
                            let b = self.peek().ok_or("unterminated quoted string")?;
                            if b != b'\\' && b != b'"' {
                                return Err(
                                    "a quoted string escapes a character other than \\ or \""
                                        .into(),
                                );
                            }
                            out.push(b);
                            self.p += 1;
                        }
                        Some(b) => {
                            out.push(b);
                            self.p += 1;
                        }
                    }
                }
            }
            Some(b'{') | Some(b'~') => {
                let t = self.text();
                let announced = literal_size(t).ok_or_else(|| {
                    format!(
                        "a literal marker not at the end of the line at octet {}",
                        self.p
                    )
                })?;
                let Some(Seg::Lit(lit)) = self.segs.get(self.i + 1) else {
                    return Err("a literal marker without its literal".into());
                };
                debug_assert_eq!(lit.len(), announced);
                self.i += 2;
                self.p = 0;
                Ok(Val::Str(lit.clone()))
            }
            _ => {
                let a = self.atom()?;
                if a.eq_ignore_ascii_case("NIL") {
                    Ok(Val::Nil)
                } else {
                    Ok(Val::Atom(a))
                }
            }
        }
    }

    fn flag_list(&mut self) -> Result<Vec<String>, String> {
        match self.value()? {
            Val::List(items) => items
                .into_iter()
                .map(|v| match v {
                    Val::Atom(a) => Ok(a),
                    other => Err(format!("a flag that is not an atom: {other:?}")),
                })
                .collect(),
            other => Err(format!("expected a flag list, found {other:?}")),
        }
    }

    fn status(word: &str) -> Option<Status> {
        Some(match word.to_ascii_uppercase().as_str() {
            "OK" => Status::Ok,
            "NO" => Status::No,
            "BAD" => Status::Bad,
            "BYE" => Status::Bye,
            "PREAUTH" => Status::Preauth,
            _ => return None,
        })
    }

    /// `["[" resp-text-code "]" SP] text` after a status word (RFC 9051 §9).
    fn resp_text(&mut self) -> Result<(Option<Code>, String), String> {
        if self.peek().is_none() {
            return Ok((None, String::new()));
        }
        self.sp()?;
        let mut code = None;
        if self.peek() == Some(b'[') {
            self.p += 1;
            let name = self.atom()?.to_ascii_uppercase();
            code = Some(match name.as_str() {
                "PERMANENTFLAGS" => {
                    self.sp()?;
                    Code::PermanentFlags(self.flag_list()?)
                }
                "UIDVALIDITY" => {
                    self.sp()?;
                    Code::UidValidity(self.number()?)
                }
                "UIDNEXT" => {
                    self.sp()?;
                    Code::UidNext(self.number()?)
                }
                "APPENDUID" => {
                    self.sp()?;
                    let v = self.number()?;
                    self.sp()?;
                    Code::AppendUid(v, self.number()?)
                }
                _ => {
                    let t = self.text();
                    let close = t
                        .iter()
                        .position(|&b| b == b']')
                        .ok_or("a response code without ']'")?;
                    self.p += close;
                    Code::Other(name)
                }
            });
            self.expect(b']')?;
            if self.peek() == Some(b' ') {
                self.p += 1;
            }
        }
        Ok((code, self.rest()?))
    }

    fn response(&mut self) -> Result<Resp, String> {
        match self.peek() {
            Some(b'+') => {
                self.skip_all();
                Ok(Resp::Continue)
            }
            Some(b'*') => {
                self.p += 1;
                self.sp()?;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    let n = self.number()?;
                    self.sp()?;
                    let what = self.atom()?.to_ascii_uppercase();
                    return match what.as_str() {
                        "EXISTS" => Ok(Resp::Exists(n)),
                        "RECENT" => Ok(Resp::Recent),
                        "EXPUNGE" => Ok(Resp::Expunge(n)),
                        "FETCH" => {
                            self.sp()?;
                            let Val::List(items) = self.value()? else {
                                return Err("FETCH data is not a list".into());
                            };
                            if items.len() % 2 != 0 {
                                return Err("FETCH data has an item without a value".into());
                            }
                            let mut pairs = Vec::new();
                            let mut it = items.into_iter();
                            while let (Some(name), Some(value)) = (it.next(), it.next()) {
                                let Val::Atom(name) = name else {
                                    return Err(format!(
                                        "a FETCH item name that is not an atom: {name:?}"
                                    ));
                                };
                                pairs.push((name.to_ascii_uppercase(), value));
                            }
                            Ok(Resp::Fetch(n, pairs))
                        }
                        other => Err(format!("unknown numbered response {other}")),
                    };
                }
                let word = self.atom()?;
                if let Some(status) = Self::status(&word) {
                    let (code, text) = self.resp_text()?;
                    return Ok(Resp::Untagged { status, code, text });
                }
                match word.to_ascii_uppercase().as_str() {
                    "FLAGS" => {
                        self.sp()?;
                        Ok(Resp::Flags(self.flag_list()?))
                    }
                    "CAPABILITY" | "LIST" | "LSUB" | "STATUS" | "SEARCH" | "ESEARCH"
                    | "ENABLED" | "NAMESPACE" | "ID" | "QUOTA" | "QUOTAROOT" | "METADATA"
                    | "VANISHED" | "SORT" | "THREAD" => {
                        self.skip_all();
                        Ok(Resp::Other)
                    }
                    other => Err(format!("unknown untagged response {other}")),
                }
            }
            Some(_) => {
                let tag = self.atom()?;
                self.sp()?;
                let word = self.atom()?;
                let status = Self::status(&word)
                    .filter(|s| matches!(s, Status::Ok | Status::No | Status::Bad))
                    .ok_or_else(|| format!("a tagged response with status {word}"))?;
                let (code, text) = self.resp_text()?;
                Ok(Resp::Tagged {
                    tag,
                    status,
                    code,
                    text,
                })
            }
            None => Err("an empty line".into()),
        }
    }
}

/// ATOM-CHAR of RFC 9051 §9, plus `\`, `%` and `*` (flags such as `\Seen`
/// and `\*` are written with them).
fn is_atom_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'"' | b']')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(parts: &[&[u8]]) -> Raw {
        Raw {
            segs: parts
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    if k % 2 == 0 {
                        Seg::Text(p.to_vec())
                    } else {
                        Seg::Lit(p.to_vec())
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn fetch_with_a_literal_section() {
        // RFC 9051 §7.5.2 example shape: `* 12 FETCH (FLAGS (\Seen) BODY[HEADER] {n}`
        let r = raw(&[
            b"* 12 FETCH (FLAGS (\\Seen $Junk) UID 7 BODY[HEADER] {4}",
            b"a: b",
            b")",
        ]);
        let Resp::Fetch(12, items) = parse(&r).unwrap() else {
            panic!()
        };
        assert_eq!(items[0].0, "FLAGS");
        assert_eq!(
            items[0].1,
            Val::List(vec![Val::Atom("\\Seen".into()), Val::Atom("$Junk".into())])
        );
        assert_eq!(
            items[2],
            ("BODY[HEADER]".into(), Val::Str(b"a: b".to_vec()))
        );
        let r = raw(&[
            b"* 1 FETCH (BODY[] {1}",
            b"x",
            b" BODY[HEADER.FIELDS (From To)]<0> \"\")",
        ]);
        let Resp::Fetch(1, items) = parse(&r).unwrap() else {
            panic!()
        };
        assert_eq!(items[0].0, "BODY[]");
        assert_eq!(items[1].0, "BODY[HEADER.FIELDS (FROM TO)]<0>");
    }

    #[test]
    fn permanentflags_and_tagged() {
        let r = raw(&[b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited"]);
        let Resp::Untagged { code, .. } = parse(&r).unwrap() else {
            panic!()
        };
        assert_eq!(
            code,
            Some(Code::PermanentFlags(vec![
                "\\Deleted".into(),
                "\\Seen".into(),
                "\\*".into()
            ]))
        );
        let r = raw(&[b"A003 OK [APPENDUID 38505 3955] APPEND completed"]);
        let Resp::Tagged { code, .. } = parse(&r).unwrap() else {
            panic!()
        };
        assert_eq!(code, Some(Code::AppendUid(38505, 3955)));
    }

    #[test]
    fn trailing_garbage_is_unparsable() {
        assert!(parse(&raw(&[b"* 3 EXISTS junk"])).is_err());
        assert!(parse(&raw(&[b"* 3 FETCH (UID)"])).is_err());
    }
}

#[cfg(test)]
mod reading {
    use super::*;

    #[tokio::test]
    async fn a_literal_swallowing_the_tagged_response_is_reported() {
        // The server announced 40 octets but sent 5, then its tagged OK.
        let wire: &[u8] =
            b"* 1 FETCH (BODY[] {40}\r\nHello)\r\nt7 OK FETCH done\r\n..............\r\n";
        let mut r = wire;
        let mut odd = Vec::new();
        let raw = read_response(&mut r, "t7", &mut odd).await.unwrap();
        assert_eq!(raw.segs.len(), 3);
        assert_eq!(odd.len(), 1);
        assert_eq!(odd[0].kind, "tagged response before its literal data ends");
    }

    #[tokio::test]
    async fn a_well_formed_literal_reads_whole() {
        let wire: &[u8] = b"* 1 FETCH (BODY[] {5}\r\nHello)\r\nt7 OK done\r\n";
        let mut r = wire;
        let mut odd = Vec::new();
        let raw = read_response(&mut r, "t7", &mut odd).await.unwrap();
        assert!(odd.is_empty());
        assert!(matches!(parse(&raw), Ok(Resp::Fetch(1, _))));
        let raw = read_response(&mut r, "t7", &mut odd).await.unwrap();
        assert!(matches!(
            parse(&raw),
            Ok(Resp::Tagged {
                status: Status::Ok,
                ..
            })
        ));
    }
}
