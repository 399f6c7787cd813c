//! IMAP command framing and tokenising (RFC 9051 §2.2, §4; RFC 7888 literals).
//!
//! [`Framer`] cuts the client's byte stream into whole commands, literals
//! included, and says when the client must be told to go on with a
//! synchronising literal. [`tokenize`] turns one whole command into a tag and
//! a list of [`Token`]s that the command parser interprets. Both are bounded:
//! every size and depth has a limit and a clear error.

use std::fmt;

/// One element of a command line.
#[derive(Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom (also NIL, numbers, sequence sets, flags and fetch
    /// attributes with their `[section]<partial>`).
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    /// A literal8 (`~{n}`, RFC 3516 §4.3): binary, so only APPEND's message
    /// may be one.
    Literal8(Vec<u8>),
    /// A parenthesised list.
    List(Vec<Token>),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Atom(a) => write!(f, "{a}"),
            Token::Str(s) => write!(f, "{:?}", String::from_utf8_lossy(s)),
            Token::Literal8(s) => write!(f, "~{:?}", String::from_utf8_lossy(s)),
            Token::List(l) => f.debug_list().entries(l).finish(),
        }
    }
}

impl Token {
    /// The token as a string argument (atom or string), if it is one: an
    /// `astring` (RFC 9051 §9) holds no NUL (CHAR8 excludes it) and is
    /// UTF-8 here; an atom that took a FETCH section with spaces in it is
    /// not one.
    pub fn as_astring(&self) -> Option<String> {
        match self {
            Token::Atom(a) if a.bytes().all(is_word_char) => Some(a.clone()),
            Token::Str(s) if !s.contains(&0) => String::from_utf8(s.clone()).ok(),
            _ => None,
        }
    }

    /// The atom's text, if the token is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Token::Atom(a) => Some(a),
            _ => None,
        }
    }
}

/// Limits of the framer and tokenizer.
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    /// Largest command in bytes, literals included, except APPEND's message.
    pub max_command_bytes: usize,
    /// Largest literal APPEND may carry (the largest message).
    pub max_append_bytes: usize,
    /// Deepest nesting of parenthesised lists.
    pub max_list_depth: usize,
}

/// What the framer found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command, without its final CRLF.
    Command(Vec<u8>),
    /// The client announced a synchronising literal: answer `+` and go on.
    Continue,
    /// A command that breaks a limit: answer with the tagged error (or BYE
    /// when `fatal`, after which the stream cannot be resynchronised).
    Refused {
        /// The tag, if one could be read.
        tag: Option<String>,
        /// The response code and text.
        text: String,
        /// Whether the connection must be closed.
        fatal: bool,
    },
}

#[derive(Debug)]
enum State {
    /// Reading a line of the command.
    Line,
    /// Reading `remaining` bytes of a literal.
    Literal { remaining: usize },
    /// Throwing away the rest of a too-long line.
    Discard,
}

/// Cuts a byte stream into IMAP commands.
#[derive(Debug)]
pub struct Framer {
    limits: FrameLimits,
    input: Vec<u8>,
    command: Vec<u8>,
    state: State,
}

impl Framer {
    /// A framer with these limits.
    pub fn new(limits: FrameLimits) -> Self {
        Framer {
            limits,
            input: Vec::new(),
            command: Vec::new(),
            state: State::Line,
        }
    }

    /// Adds bytes read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Whether bytes are waiting that were not yet framed.
    pub fn has_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Bytes held: unframed input plus the command being assembled.
    pub fn buffered(&self) -> usize {
        self.input.len() + self.command.len()
    }

    /// Takes one raw line (for AUTHENTICATE responses and IDLE's DONE),
    /// without its CRLF; `None` if no whole line is buffered yet.
    pub fn take_line(&mut self) -> Option<Vec<u8>> {
        let pos = self.input.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.input.drain(..=pos).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    /// Drops everything buffered (after STARTTLS: RFC 9051 §6.2.1).
    pub fn clear(&mut self) {
        self.input.clear();
        self.command.clear();
        self.state = State::Line;
    }

    fn limit_for(&self) -> usize {
        if is_append(&self.command) {
            self.limits
                .max_append_bytes
                .saturating_add(self.limits.max_command_bytes)
        } else {
            self.limits.max_command_bytes
        }
    }

    /// The next frame, or `None` when more input is needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Literal { remaining } => {
                    if self.input.is_empty() {
                        return None;
                    }
                    let take = remaining.min(self.input.len());
                    self.command.extend(self.input.drain(..take));
                    if take == remaining {
                        self.state = State::Line;
                    } else {
                        self.state = State::Literal {
                            remaining: remaining - take,
                        };
                        return None;
                    }
                }
                State::Discard => {
                    let pos = self.input.iter().position(|&b| b == b'\n');
                    match pos {
                        Some(p) => {
                            self.input.drain(..=p);
                            self.state = State::Line;
                        }
                        None => {
                            self.input.clear();
                            return None;
                        }
                    }
                }
                State::Line => {
                    let Some(pos) = self.input.iter().position(|&b| b == b'\n') else {
                        if self.command.len() + self.input.len() > self.limit_for() {
                            let tag = tag_of(&self.command, &self.input);
                            self.command.clear();
                            self.input.clear();
                            self.state = State::Discard;
                            return Some(Frame::Refused {
                                tag,
                                text: "[TOOBIG] Command line too long".into(),
                                fatal: false,
                            });
                        }
                        return None;
                    };
                    let line_end = if pos > 0 && self.input[pos - 1] == b'\r' {
                        pos - 1
                    } else {
                        pos
                    };
                    let line: Vec<u8> = self.input.drain(..=pos).collect();
                    self.command.extend_from_slice(&line[..line_end]);
                    if self.command.len() > self.limit_for() {
                        let tag = tag_of(&self.command, &[]);
                        self.command.clear();
                        return Some(Frame::Refused {
                            tag,
                            text: "[TOOBIG] Command too long".into(),
                            fatal: false,
                        });
                    }
                    match literal_at_end(&line[..line_end]) {
                        None => {
                            let command = std::mem::take(&mut self.command);
                            return Some(Frame::Command(command));
                        }
                        Some(Err(())) => {
                            let tag = tag_of(&self.command, &[]);
                            self.command.clear();
                            return Some(Frame::Refused {
                                tag,
                                text: "Invalid literal size".into(),
                                fatal: true,
                            });
                        }
                        Some(Ok((size, sync))) => {
                            // Keep the CRLF: the tokenizer finds the literal by it.
                            self.command.extend_from_slice(b"\r\n");
                            let limit = self.limit_for();
                            if self.command.len().saturating_add(size) > limit {
                                let tag = tag_of(&self.command, &[]);
                                self.command.clear();
                                return Some(Frame::Refused {
                                    tag,
                                    text: format!(
                                        "[TOOBIG] Literal of {size} bytes is over the limit of {limit}"
                                    ),
                                    // A non-synchronising literal is on its
                                    // way already; the stream is lost.
                                    fatal: !sync,
                                });
                            }
                            self.state = State::Literal { remaining: size };
                            if sync {
                                return Some(Frame::Continue);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn is_append(command: &[u8]) -> bool {
    let mut words = command.splitn(3, |&b| b == b' ');
    let _tag = words.next();
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
}

fn tag_of(command: &[u8], more: &[u8]) -> Option<String> {
    let bytes: Vec<u8> = command.iter().chain(more).copied().take(64).collect();
    let end = bytes.iter().position(|&b| b == b' ')?;
    let tag = &bytes[..end];
    (!tag.is_empty() && tag.iter().all(|&b| is_tag_char(b)))
        .then(|| String::from_utf8_lossy(tag).into_owned())
}

/// `{N}`, `{N+}` (or `~{N}`, `~{N+}` for literal8) at the end of a line:
/// the size and whether it is synchronising; `Err` for a malformed size.
/// LITERAL- uses the same `{N+}` as LITERAL+ (RFC 7888 §5); there is no
/// `{N-}`, so that is no literal.
fn literal_at_end(line: &[u8]) -> Option<Result<(usize, bool), ()>> {
    if line.last() != Some(&b'}') {
        return None;
    }
    let open = line.iter().rposition(|&b| b == b'{')?;
    let mut inner = &line[open + 1..line.len() - 1];
    let sync = match inner.last() {
        Some(b'+') => {
            inner = &inner[..inner.len() - 1];
            false
        }
        _ => true,
    };
    if inner.is_empty() || inner.len() > 12 || !inner.iter().all(u8::is_ascii_digit) {
        // "{" inside a quoted string that happens to end the line is not a
        // literal; only an all-digit size is.
        return if inner.iter().all(u8::is_ascii_digit) {
            Some(Err(()))
        } else {
            None
        };
    }
    let size: usize = std::str::from_utf8(inner).ok()?.parse().ok()?;
    Some(Ok((size, sync)))
}

fn is_tag_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){%*\"\\+".contains(&b)
}

/// A byte of a bare word: ASTRING-CHAR and list-wildcards (RFC 9051 §9),
/// plus `\` (flags) and 8-bit bytes, which the command parser judges
/// where it matters. `[` is an ATOM-CHAR and `]` an ASTRING-CHAR, so a
/// mailbox may be named `a[b` or `a]b`.
fn is_word_char(b: u8) -> bool {
    b > 0x20 && b != 0x7f && !b"(){\"".contains(&b)
}

/// ATOM-CHAR exactly as RFC 9051 §9 has it: any CHAR but atom-specials
/// (`(){`, SP, CTL, `%*`, `"\`, `]`).
pub fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

/// The FETCH attributes whose `[` opens a section (RFC 9051 §9 `fetch-att`).
/// Anywhere else `[` and `]` are characters of the word.
const SECTION_ATTS: [&[u8]; 5] = [
    b"BODY",
    b"BODY.PEEK",
    b"BINARY",
    b"BINARY.PEEK",
    b"BINARY.SIZE",
];

/// Why a command could not be tokenised.
#[derive(Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// The tag, if one was read.
    pub tag: Option<String>,
    /// What was wrong.
    pub reason: String,
}

/// Splits a whole command into its tag and tokens.
pub fn tokenize(
    command: &[u8],
    max_list_depth: usize,
) -> Result<(String, Vec<Token>), SyntaxError> {
    let tag_end = command
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(command.len());
    let tag = &command[..tag_end];
    if tag.is_empty() || !tag.iter().all(|&b| is_tag_char(b)) {
        return Err(SyntaxError {
            tag: None,
            reason: "Missing or invalid tag".into(),
        });
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let mut reader = Reader {
        input: command,
        pos: tag_end,
        max_depth: max_list_depth,
    };
    let tokens = reader.tokens().map_err(|reason| SyntaxError {
        tag: Some(tag.clone()),
        reason,
    })?;
    if reader.pos != command.len() {
        return Err(SyntaxError {
            tag: Some(tag),
            reason: "Unexpected ')'".into(),
        });
    }
    if tokens.is_empty() {
        return Err(SyntaxError {
            tag: Some(tag),
            reason: "Missing command".into(),
        });
    }
    Ok((tag, tokens))
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// At the top level: (SP token)* to the end of the command.
    fn tokens(&mut self) -> Result<Vec<Token>, String> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if b != b' ' {
                return Err(if b == b')' {
                    "Unexpected ')'".into()
                } else {
                    "Expected a space between arguments".into()
                });
            }
            self.pos += 1;
            if self.peek().is_none() {
                return Err("Trailing space".into());
            }
            out.push(self.token(0)?);
        }
        Ok(out)
    }

    /// Inside a list, after a non-empty list's first byte: token (SP token)*
    /// up to (not including) the `)`.
    fn list_items(&mut self, depth: usize) -> Result<Vec<Token>, String> {
        let mut out = vec![self.token(depth)?];
        loop {
            match self.peek() {
                Some(b' ') => {
                    self.pos += 1;
                    out.push(self.token(depth)?);
                }
                Some(b')') => return Ok(out),
                None => return Err("Unterminated list".into()),
                Some(_) => return Err("Expected a space in list".into()),
            }
        }
    }

    fn token(&mut self, depth: usize) -> Result<Token, String> {
        match self.peek() {
            Some(b'(') => {
                if depth >= self.max_depth {
                    return Err("Lists nested too deeply".into());
                }
                self.pos += 1;
                let inner = if self.peek() == Some(b')') {
                    Vec::new()
                } else {
                    self.list_items(depth + 1)?
                };
                if self.peek() != Some(b')') {
                    return Err("Unterminated list".into());
                }
                self.pos += 1;
                Ok(Token::List(inner))
            }
            Some(b'"') => self.quoted().map(Token::Str),
            Some(b'{') => self.literal().map(Token::Str),
            Some(b'~') if self.input.get(self.pos + 1) == Some(&b'{') => {
                self.pos += 1;
                self.literal().map(Token::Literal8)
            }
            Some(b) if is_word_char(b) => self.atom().map(Token::Atom),
            Some(_) => Err("Unexpected character".into()),
            None => Err("Missing argument".into()),
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("Unterminated string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let next = self.input.get(self.pos + 1).copied();
                    match next {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 2;
                        }
                        _ => return Err("Invalid escape in string".into()),
                    }
                }
                Some(0) => return Err("NUL in string".into()),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Vec<u8>, String> {
        let close = self.input[self.pos..]
            .iter()
            .position(|&b| b == b'}')
            .ok_or("Unterminated literal size")?;
        let mut inner = &self.input[self.pos + 1..self.pos + close];
        // RFC 7888 §5: `{n+}` for LITERAL+ and LITERAL- alike.
        if inner.last() == Some(&b'+') {
            inner = &inner[..inner.len() - 1];
        }
        let size: usize = std::str::from_utf8(inner)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or("Invalid literal size")?;
        let start = self.pos + close + 1;
        if self.input.get(start..start + 2) != Some(b"\r\n") {
            return Err("Literal size not at the end of a line".into());
        }
        let data_start = start + 2;
        let data_end = data_start
            .checked_add(size)
            .filter(|&e| e <= self.input.len())
            .ok_or("Literal shorter than announced")?;
        self.pos = data_end;
        Ok(self.input[data_start..data_end].to_vec())
    }

    /// A bare word: an atom, a number, a sequence set, a flag, a LIST
    /// pattern, or a FETCH attribute with its `[section]` (which may hold
    /// spaces, lists and quoted strings) and `<partial>`.
    fn atom(&mut self) -> Result<String, String> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'['
                && SECTION_ATTS
                    .iter()
                    .any(|n| self.input[start..self.pos].eq_ignore_ascii_case(n))
                && let Some(end) = self.section_end()
            {
                // RFC 9051 §6.4.5: BODY[...], BINARY[...]; the `<o.l>`
                // after the `]` is plain word characters.
                self.pos = end;
            } else if is_word_char(b) {
                self.pos += 1;
            } else {
                break;
            }
            if self.pos - start > 8192 {
                return Err("Atom too long".into());
            }
        }
        String::from_utf8(self.input[start..self.pos].to_vec())
            .map_err(|_| "Atom is not UTF-8".to_string())
    }

    /// Just past the `]` closing the section whose `[` is at `pos`, with
    /// quoted header names (which may hold `]`) skipped; `None` if the line
    /// ends first, and then the `[` is an ordinary character.
    fn section_end(&self) -> Option<usize> {
        let mut i = self.pos + 1;
        loop {
            match *self.input.get(i)? {
                b']' => return Some(i + 1),
                b'"' => {
                    i += 1;
                    loop {
                        match *self.input.get(i)? {
                            b'\\' => i += 2,
                            b'"' => break,
                            b'\r' | b'\n' => return None,
                            _ => i += 1,
                        }
                    }
                    i += 1;
                }
                b'\r' | b'\n' | 0 => return None,
                _ => i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        max_command_bytes: 1000,
        max_append_bytes: 5000,
        max_list_depth: 4,
    };

    fn atom(s: &str) -> Token {
        Token::Atom(s.into())
    }

    #[test]
    fn tokenizes_commands() {
        let (tag, t) = tokenize(
            b"a1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)",
            4,
        )
        .unwrap();
        assert_eq!(tag, "a1");
        assert_eq!(
            t,
            vec![
                atom("FETCH"),
                atom("1:*"),
                Token::List(vec![
                    atom("FLAGS"),
                    atom("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>")
                ])
            ]
        );
        let (_, t) = tokenize(b"x LOGIN \"a\\\"b\" {3}\r\npw!", 4).unwrap();
        assert_eq!(
            t,
            vec![
                atom("LOGIN"),
                Token::Str(b"a\"b".to_vec()),
                Token::Str(b"pw!".to_vec())
            ]
        );
        let (_, t) = tokenize(b"x LIST \"\" %", 4).unwrap();
        assert_eq!(t, vec![atom("LIST"), Token::Str(vec![]), atom("%")]);
        let (_, t) = tokenize(b"x STORE 1 +FLAGS (\\Seen $Junk)", 4).unwrap();
        assert_eq!(t[3], Token::List(vec![atom("\\Seen"), atom("$Junk")]));
        assert!(tokenize(b"x SEARCH ((((((ALL))))))", 4).is_err());
        assert!(tokenize(b"x NOOP ", 4).is_err());
        assert!(tokenize(b"x (", 4).is_err());
        assert!(tokenize(b"x a)", 4).is_err());
        assert!(tokenize(b"", 4).is_err());
        assert!(tokenize(b"x \"abc", 4).is_err());
        assert!(tokenize(b"x {5}\r\nab", 4).is_err());
    }

    #[test]
    fn frames_literals() {
        let mut f = Framer::new(LIMITS);
        f.push(b"a LOGIN {3}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        assert_eq!(f.next_frame(), None);
        f.push(b"bob {2+}\r\npw\r\nb NOOP\r\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::Command(b"a LOGIN {3}\r\nbob {2+}\r\npw".to_vec()))
        );
        assert_eq!(f.next_frame(), Some(Frame::Command(b"b NOOP".to_vec())));
        assert_eq!(f.next_frame(), None);
    }

    #[test]
    fn refuses_what_is_too_big() {
        let mut f = Framer::new(LIMITS);
        f.push(b"a LOGIN {3000}\r\n");
        assert!(matches!(
            f.next_frame(),
            Some(Frame::Refused { fatal: false, .. })
        ));
        // APPEND may carry a message up to its own limit.
        f.push(b"b APPEND INBOX {3000}\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Continue));
        f.clear();
        f.push(b"c APPEND INBOX {9000+}\r\n");
        assert!(matches!(
            f.next_frame(),
            Some(Frame::Refused { fatal: true, .. })
        ));
        let mut f = Framer::new(LIMITS);
        f.push(&[b'x'; 1500]);
        assert!(matches!(
            f.next_frame(),
            Some(Frame::Refused { fatal: false, .. })
        ));
        f.push(b"rest\r\nd NOOP\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Command(b"d NOOP".to_vec())));
    }
}
