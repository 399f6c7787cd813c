//! IMAP commands, interpreted from tokens (RFC 9051 §6 and the extensions
//! Rampart announces).

use crate::parser::Token;

/// A number in a sequence set: a value or `*` (the largest in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNum {
    /// A message sequence number or UID.
    Value(u32),
    /// `*`.
    Largest,
}

/// A sequence set: ranges of sequence numbers or UIDs (`1:4,7,9:*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNum, SeqNum)>);

impl SequenceSet {
    /// Parses `1:4,7,9:*`; `max_ranges` bounds the number of ranges.
    pub fn parse(s: &str, max_ranges: usize) -> Result<Self, String> {
        let mut out = Vec::new();
        for item in s.split(',') {
            if out.len() >= max_ranges {
                return Err(format!(
                    "[LIMIT] Sequence set has more than {max_ranges} ranges"
                ));
            }
            let num = |n: &str| -> Result<SeqNum, String> {
                if n == "*" {
                    return Ok(SeqNum::Largest);
                }
                match n.parse::<u32>() {
                    Ok(v) if v > 0 && n.bytes().all(|b| b.is_ascii_digit()) => Ok(SeqNum::Value(v)),
                    _ => Err(format!("Invalid sequence set item {n:?}")),
                }
            };
            match item.split_once(':') {
                Some((a, b)) => out.push((num(a)?, num(b)?)),
                None => {
                    let n = num(item)?;
                    out.push((n, n));
                }
            }
        }
        Ok(SequenceSet(out))
    }

    /// Whether `n` is in the set, with `*` meaning `largest`.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let v = |s: SeqNum| match s {
                SeqNum::Value(v) => v,
                SeqNum::Largest => largest,
            };
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            lo <= n && n <= hi
        })
    }

    /// The set's ranges with `*` resolved, as inclusive (low, high) pairs.
    pub fn ranges(&self, largest: u32) -> Vec<(u32, u32)> {
        self.0
            .iter()
            .map(|&(a, b)| {
                let v = |s: SeqNum| match s {
                    SeqNum::Value(v) => v,
                    SeqNum::Largest => largest,
                };
                (v(a).min(v(b)), v(a).max(v(b)))
            })
            .collect()
    }
}

/// Formats numbers as a compact sequence set (`1:3,7`); `nums` sorted.
pub fn compact_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end + 1 {
            i += 1;
            end = nums[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

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

/// A SEARCH key (RFC 9051 §6.4.4, RFC 7162 MODSEQ, RFC 8474, RFC 5032).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    /// Every key must match.
    And(Vec<SearchKey>),
    /// Either matches.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// Does not match.
    Not(Box<SearchKey>),
    /// All messages.
    All,
    /// Message sequence numbers.
    SeqSet(SequenceSet),
    /// UIDs.
    Uid(SequenceSet),
    /// A system flag is set (bit of [`rampart_core::store::SystemFlags`]).
    Flag(u32),
    /// A system flag is not set.
    NoFlag(u32),
    /// A keyword is set.
    Keyword(String),
    /// A keyword is not set.
    Unkeyword(String),
    /// \Recent (never set by Rampart).
    Recent,
    /// NEW: \Recent and not \Seen.
    New,
    /// OLD: not \Recent.
    Old,
    /// A header field contains a string.
    Header(String, String),
    /// The body contains a string.
    Body(String),
    /// Header or body contains a string.
    Text(String),
    /// INTERNALDATE before a day (days since the epoch).
    Before(i64),
    /// INTERNALDATE on a day.
    On(i64),
    /// INTERNALDATE on or after a day.
    Since(i64),
    /// Date: header before a day.
    SentBefore(i64),
    /// Date: header on a day.
    SentOn(i64),
    /// Date: header on or after a day.
    SentSince(i64),
    /// Larger than n bytes.
    Larger(u64),
    /// Smaller than n bytes.
    Smaller(u64),
    /// MODSEQ at least n.
    ModSeq(u64),
    /// This EMAILID.
    EmailId(String),
    /// This THREADID.
    ThreadId(String),
    /// INTERNALDATE within the last n seconds.
    Younger(u64),
    /// INTERNALDATE more than n seconds ago.
    Older(u64),
}

/// ESEARCH return options (RFC 4731).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchReturn {
    /// MIN
    pub min: bool,
    /// MAX
    pub max: bool,
    /// ALL
    pub all: bool,
    /// COUNT
    pub count: bool,
}

/// A STATUS data item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    /// MESSAGES
    Messages,
    /// RECENT
    Recent,
    /// UIDNEXT
    UidNext,
    /// UIDVALIDITY
    UidValidity,
    /// UNSEEN
    Unseen,
    /// DELETED
    Deleted,
    /// SIZE (RFC 8438)
    Size,
    /// HIGHESTMODSEQ (RFC 7162)
    HighestModSeq,
    /// APPENDLIMIT (RFC 7889)
    AppendLimit,
    /// MAILBOXID (RFC 8474)
    MailboxId,
}

/// LIST selection and return options (RFC 5258, 5819, 6154).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Selection SUBSCRIBED.
    pub subscribed_only: bool,
    /// Selection SPECIAL-USE.
    pub special_use_only: bool,
    /// Selection RECURSIVEMATCH.
    pub recursive_match: bool,
    /// Return SUBSCRIBED.
    pub return_subscribed: bool,
    /// Return CHILDREN.
    pub return_children: bool,
    /// Return SPECIAL-USE.
    pub return_special_use: bool,
    /// Return STATUS (...).
    pub return_status: Option<Vec<StatusItem>>,
    /// The command was LSUB.
    pub lsub: bool,
}

/// QRESYNC parameters of SELECT (RFC 7162 §3.2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qresync {
    /// The UIDVALIDITY the client knows.
    pub uid_validity: u32,
    /// The MODSEQ the client knows.
    pub modseq: u64,
    /// The UIDs the client knows, if given.
    pub known_uids: Option<SequenceSet>,
}

/// How STORE changes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// FLAGS: replace.
    Replace,
    /// +FLAGS: add.
    Add,
    /// -FLAGS: remove.
    Remove,
}

/// SORT criteria (RFC 5256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// ARRIVAL
    Arrival,
    /// CC
    Cc,
    /// DATE
    Date,
    /// FROM
    From,
    /// SIZE
    Size,
    /// SUBJECT
    Subject,
    /// TO
    To,
}

/// THREAD algorithms (RFC 5256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    /// ORDEREDSUBJECT
    OrderedSubject,
    /// REFERENCES
    References,
}

/// A command with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// CAPABILITY
    Capability,
    /// NOOP
    Noop,
    /// LOGOUT
    Logout,
    /// STARTTLS
    StartTls,
    /// LOGIN user password
    Login {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// AUTHENTICATE mechanism [initial-response]
    Authenticate {
        /// Mechanism name, upper case.
        mechanism: String,
        /// SASL-IR initial response (base64 text).
        initial: Option<String>,
    },
    /// ENABLE capability...
    Enable(Vec<String>),
    /// ID (...) or ID NIL
    Id,
    /// NAMESPACE
    Namespace,
    /// SELECT or EXAMINE
    Select {
        /// Mailbox name as sent.
        mailbox: String,
        /// EXAMINE
        read_only: bool,
        /// (CONDSTORE) parameter.
        condstore: bool,
        /// (QRESYNC (...)) parameter.
        qresync: Option<Qresync>,
    },
    /// CREATE
    Create(String),
    /// DELETE
    Delete(String),
    /// RENAME
    Rename(String, String),
    /// SUBSCRIBE
    Subscribe(String),
    /// UNSUBSCRIBE
    Unsubscribe(String),
    /// LIST or LSUB
    List {
        /// Reference name.
        reference: String,
        /// Patterns.
        patterns: Vec<String>,
        /// Options.
        options: ListOptions,
    },
    /// STATUS
    Status {
        /// Mailbox.
        mailbox: String,
        /// Items.
        items: Vec<StatusItem>,
    },
    /// APPEND
    Append {
        /// Mailbox.
        mailbox: String,
        /// Flags to set.
        flags: Vec<String>,
        /// INTERNALDATE to use, milliseconds since the epoch.
        date: Option<i64>,
        /// The message.
        message: Vec<u8>,
    },
    /// IDLE
    Idle,
    /// CHECK
    Check,
    /// CLOSE
    Close,
    /// UNSELECT
    Unselect,
    /// EXPUNGE, or UID EXPUNGE set
    Expunge(Option<SequenceSet>),
    /// SEARCH / UID SEARCH
    Search {
        /// UID SEARCH
        uid: bool,
        /// ESEARCH RETURN options, if given.
        ret: Option<SearchReturn>,
        /// The criteria.
        key: SearchKey,
    },
    /// FETCH / UID FETCH
    Fetch {
        /// UID FETCH
        uid: bool,
        /// Messages.
        set: SequenceSet,
        /// Items.
        atts: Vec<FetchAtt>,
        /// CHANGEDSINCE modifier.
        changed_since: Option<u64>,
        /// VANISHED modifier.
        vanished: bool,
    },
    /// STORE / UID STORE
    Store {
        /// UID STORE
        uid: bool,
        /// Messages.
        set: SequenceSet,
        /// UNCHANGEDSINCE modifier.
        unchanged_since: Option<u64>,
        /// How.
        mode: StoreMode,
        /// .SILENT
        silent: bool,
        /// Flags.
        flags: Vec<String>,
    },
    /// COPY / UID COPY / MOVE / UID MOVE
    Copy {
        /// UID variant.
        uid: bool,
        /// MOVE rather than COPY.
        remove: bool,
        /// Messages.
        set: SequenceSet,
        /// Target mailbox.
        mailbox: String,
    },
    /// GETQUOTA root
    GetQuota(String),
    /// GETQUOTAROOT mailbox
    GetQuotaRoot(String),
    /// SORT / UID SORT
    Sort {
        /// UID SORT
        uid: bool,
        /// Criteria with REVERSE flags.
        criteria: Vec<(bool, SortKey)>,
        /// Search key.
        key: SearchKey,
    },
    /// THREAD / UID THREAD
    Thread {
        /// UID THREAD
        uid: bool,
        /// Algorithm.
        algorithm: ThreadAlgorithm,
        /// Search key.
        key: SearchKey,
    },
}

/// Limits applied while interpreting a command.
#[derive(Clone, Copy, Debug)]
pub struct CommandLimits {
    /// Most ranges in one sequence set.
    pub max_sequence_ranges: usize,
    /// Deepest nesting of search keys (OR, NOT, parentheses).
    pub max_search_depth: usize,
    /// Most search keys in one command.
    pub max_search_keys: usize,
}

struct Args<'a> {
    tokens: std::slice::Iter<'a, Token>,
    limits: CommandLimits,
    search_keys: usize,
}

type R<T> = Result<T, String>;

impl<'a> Args<'a> {
    fn next(&mut self) -> R<&'a Token> {
        self.tokens.next().ok_or_else(|| "Missing argument".into())
    }

    fn peek(&self) -> Option<&'a Token> {
        self.tokens.clone().next()
    }

    fn astring(&mut self) -> R<String> {
        self.next()?
            .as_astring()
            .ok_or_else(|| "Expected a string".into())
    }

    fn atom(&mut self) -> R<&'a str> {
        self.next()?
            .as_atom()
            .ok_or_else(|| "Expected an atom".into())
    }

    fn number(&mut self) -> R<u64> {
        let a = self.atom()?;
        parse_number(a)
    }

    fn list(&mut self) -> R<&'a [Token]> {
        match self.next()? {
            Token::List(l) => Ok(l),
            _ => Err("Expected a parenthesised list".into()),
        }
    }

    fn seq_set(&mut self) -> R<SequenceSet> {
        let a = self.atom()?;
        if a == "$" {
            return Err("SEARCHRES ($) is not supported".into());
        }
        SequenceSet::parse(a, self.limits.max_sequence_ranges)
    }

    /// Arguments inside a parenthesised list.
    fn nested(tokens: &'a [Token], limits: CommandLimits) -> Args<'a> {
        Args {
            tokens: tokens.iter(),
            limits,
            search_keys: 0,
        }
    }

    fn end(&mut self) -> R<()> {
        match self.tokens.next() {
            None => Ok(()),
            Some(t) => Err(format!("Unexpected argument {t:?}")),
        }
    }
}

fn parse_number(a: &str) -> R<u64> {
    if a.is_empty() || a.len() > 20 || !a.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("Expected a number, got {a:?}"));
    }
    a.parse().map_err(|_| format!("Number out of range: {a}"))
}

fn flag_list(tokens: &[Token]) -> R<Vec<String>> {
    tokens
        .iter()
        .map(|t| {
            t.as_atom()
                .map(str::to_owned)
                .ok_or_else(|| "Expected a flag".into())
        })
        .collect()
}

/// Interprets a tokenised command.
pub fn parse_command(tokens: &[Token], limits: CommandLimits) -> Result<Command, String> {
    let mut args = Args::nested(tokens, limits);
    let name = args.atom()?.to_ascii_uppercase();
    let command = match name.as_str() {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "LOGOUT" => Command::Logout,
        "STARTTLS" => Command::StartTls,
        "CHECK" => Command::Check,
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "IDLE" => Command::Idle,
        "NAMESPACE" => Command::Namespace,
        "EXPUNGE" => Command::Expunge(None),
        "LOGIN" => Command::Login {
            user: args.astring()?,
            password: args.astring()?,
        },
        "AUTHENTICATE" => Command::Authenticate {
            mechanism: args.atom()?.to_ascii_uppercase(),
            initial: match args.tokens.next() {
                None => None,
                Some(t) => Some(t.as_astring().ok_or("Expected an initial response")?),
            },
        },
        "ENABLE" => {
            let mut caps = Vec::new();
            for t in args.tokens.by_ref() {
                caps.push(
                    t.as_atom()
                        .ok_or("Expected a capability")?
                        .to_ascii_uppercase(),
                );
            }
            if caps.is_empty() {
                return Err("ENABLE needs a capability".into());
            }
            Command::Enable(caps)
        }
        "ID" => {
            // Parameters are only for logs; accepted and not kept.
            let _ = args.next()?;
            Command::Id
        }
        "SELECT" | "EXAMINE" => {
            let mailbox = args.astring()?;
            let mut condstore = false;
            let mut qresync = None;
            if let Some(Token::List(params)) = args.peek() {
                args.next()?;
                let mut p = Args::nested(params, limits);
                while let Some(t) = p.tokens.next() {
                    match t.as_atom().map(str::to_ascii_uppercase).as_deref() {
                        Some("CONDSTORE") => condstore = true,
                        Some("QRESYNC") => {
                            let q = p.list()?;
                            let mut q = Args::nested(q, limits);
                            let uid_validity = u32::try_from(q.number()?)
                                .map_err(|_| "UIDVALIDITY out of range")?;
                            let modseq = q.number()?;
                            let known_uids = match q.peek() {
                                Some(Token::Atom(_)) => Some(q.seq_set()?),
                                _ => None,
                            };
                            // The optional sequence match data is not needed:
                            // VANISHED (EARLIER) lists every expunged UID.
                            qresync = Some(Qresync {
                                uid_validity,
                                modseq,
                                known_uids,
                            });
                        }
                        _ => return Err(format!("Unknown SELECT parameter {t:?}")),
                    }
                }
            }
            Command::Select {
                mailbox,
                read_only: name == "EXAMINE",
                condstore,
                qresync,
            }
        }
        "CREATE" => {
            let m = args.astring()?;
            // Optional (USE (...)) parameters of RFC 6154 are ignored.
            Command::Create(m)
        }
        "DELETE" => Command::Delete(args.astring()?),
        "RENAME" => Command::Rename(args.astring()?, args.astring()?),
        "SUBSCRIBE" => Command::Subscribe(args.astring()?),
        "UNSUBSCRIBE" => Command::Unsubscribe(args.astring()?),
        "LIST" | "LSUB" => {
            let mut options = ListOptions {
                lsub: name == "LSUB",
                ..Default::default()
            };
            if let (false, Some(Token::List(sel))) = (options.lsub, args.peek()) {
                args.next()?;
                for t in sel {
                    match t.as_atom().map(str::to_ascii_uppercase).as_deref() {
                        Some("SUBSCRIBED") => options.subscribed_only = true,
                        Some("SPECIAL-USE") => options.special_use_only = true,
                        Some("RECURSIVEMATCH") => options.recursive_match = true,
                        Some("REMOTE") => {}
                        _ => return Err(format!("Unknown LIST selection option {t:?}")),
                    }
                }
            }
            let reference = args.astring()?;
            let patterns = match args.next()? {
                Token::List(l) if !options.lsub => l
                    .iter()
                    .map(|t| t.as_astring().ok_or("Expected a pattern"))
                    .collect::<Result<Vec<_>, _>>()?,
                t => vec![t.as_astring().ok_or("Expected a pattern")?],
            };
            if !options.lsub
                && let Some(t) = args.tokens.next()
            {
                if t.as_atom().map(str::to_ascii_uppercase).as_deref() != Some("RETURN") {
                    return Err("Expected RETURN".into());
                }
                let ret = args.list()?;
                let mut r = Args::nested(ret, limits);
                while let Some(t) = r.tokens.next() {
                    match t.as_atom().map(str::to_ascii_uppercase).as_deref() {
                        Some("SUBSCRIBED") => options.return_subscribed = true,
                        Some("CHILDREN") => options.return_children = true,
                        Some("SPECIAL-USE") => options.return_special_use = true,
                        Some("STATUS") => options.return_status = Some(status_items(r.list()?)?),
                        _ => return Err(format!("Unknown LIST return option {t:?}")),
                    }
                }
            }
            if options.recursive_match && !options.subscribed_only {
                return Err("RECURSIVEMATCH needs another selection option".into());
            }
            Command::List {
                reference,
                patterns,
                options,
            }
        }
        "STATUS" => Command::Status {
            mailbox: args.astring()?,
            items: status_items(args.list()?)?,
        },
        "APPEND" => {
            let mailbox = args.astring()?;
            let mut flags = Vec::new();
            let mut date = None;
            if let Some(Token::List(l)) = args.peek() {
                args.next()?;
                flags = flag_list(l)?;
            }
            if let Some(Token::Str(s)) = args.peek()
                && args.tokens.len() > 1
            {
                args.next()?;
                let text = std::str::from_utf8(s).map_err(|_| "Invalid date-time")?;
                date = Some(parse_date_time(text).ok_or("Invalid date-time")?);
            }
            let message = match args.next()? {
                Token::Str(s) => s.clone(),
                _ => return Err("APPEND needs the message as a literal".into()),
            };
            Command::Append {
                mailbox,
                flags,
                date,
                message,
            }
        }
        "UID" => {
            let sub = args.atom()?.to_ascii_uppercase();
            parse_uid_command(&sub, &mut args)?
        }
        "SEARCH" => parse_search(false, &mut args)?,
        "FETCH" => parse_fetch(false, &mut args)?,
        "STORE" => parse_store(false, &mut args)?,
        "COPY" | "MOVE" => Command::Copy {
            uid: false,
            remove: name == "MOVE",
            set: args.seq_set()?,
            mailbox: args.astring()?,
        },
        "GETQUOTA" => Command::GetQuota(args.astring()?),
        "GETQUOTAROOT" => Command::GetQuotaRoot(args.astring()?),
        "SORT" => parse_sort(false, &mut args)?,
        "THREAD" => parse_thread(false, &mut args)?,
        other => return Err(format!("Unknown command {other}")),
    };
    args.end()?;
    Ok(command)
}

fn parse_uid_command(sub: &str, args: &mut Args<'_>) -> R<Command> {
    let command = match sub {
        "SEARCH" => parse_search(true, args)?,
        "FETCH" => parse_fetch(true, args)?,
        "STORE" => parse_store(true, args)?,
        "SORT" => parse_sort(true, args)?,
        "THREAD" => parse_thread(true, args)?,
        "COPY" | "MOVE" => Command::Copy {
            uid: true,
            remove: sub == "MOVE",
            set: args.seq_set()?,
            mailbox: args.astring()?,
        },
        "EXPUNGE" => Command::Expunge(Some(args.seq_set()?)),
        other => return Err(format!("Unknown UID command {other}")),
    };
    Ok(command)
}

fn status_items(tokens: &[Token]) -> R<Vec<StatusItem>> {
    tokens
        .iter()
        .map(|t| {
            Ok(
                match t
                    .as_atom()
                    .map(str::to_ascii_uppercase)
                    .as_deref()
                    .unwrap_or("")
                {
                    "MESSAGES" => StatusItem::Messages,
                    "RECENT" => StatusItem::Recent,
                    "UIDNEXT" => StatusItem::UidNext,
                    "UIDVALIDITY" => StatusItem::UidValidity,
                    "UNSEEN" => StatusItem::Unseen,
                    "DELETED" => StatusItem::Deleted,
                    "SIZE" => StatusItem::Size,
                    "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                    "APPENDLIMIT" => StatusItem::AppendLimit,
                    "MAILBOXID" => StatusItem::MailboxId,
                    _ => return Err(format!("Unknown STATUS item {t:?}")),
                },
            )
        })
        .collect()
}

fn parse_search(uid: bool, args: &mut Args<'_>) -> R<Command> {
    let mut ret = None;
    if let Some(Token::Atom(a)) = args.peek()
        && a.eq_ignore_ascii_case("RETURN")
    {
        args.next()?;
        let mut r = SearchReturn::default();
        for t in args.list()? {
            match t.as_atom().map(str::to_ascii_uppercase).as_deref() {
                Some("MIN") => r.min = true,
                Some("MAX") => r.max = true,
                Some("ALL") => r.all = true,
                Some("COUNT") => r.count = true,
                Some("SAVE") => return Err("SEARCHRES (SAVE) is not supported".into()),
                _ => return Err(format!("Unknown RETURN option {t:?}")),
            }
        }
        if r == SearchReturn::default() {
            r.all = true;
        }
        ret = Some(r);
    }
    charset(args)?;
    let key = search_keys(args, 0)?;
    Ok(Command::Search { uid, ret, key })
}

/// Accepts only the charsets searches understand.
fn supported_charset(cs: &str) -> R<()> {
    if cs.eq_ignore_ascii_case("UTF-8") || cs.eq_ignore_ascii_case("US-ASCII") {
        Ok(())
    } else {
        Err("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset".into())
    }
}

/// Takes an optional `CHARSET x`; only UTF-8 and US-ASCII are accepted.
fn charset(args: &mut Args<'_>) -> R<()> {
    if let Some(Token::Atom(a)) = args.peek()
        && a.eq_ignore_ascii_case("CHARSET")
    {
        args.next()?;
        supported_charset(&args.astring()?)?;
    }
    Ok(())
}

fn search_keys(args: &mut Args<'_>, depth: usize) -> R<SearchKey> {
    let mut keys = Vec::new();
    while args.peek().is_some() {
        keys.push(search_key(args, depth)?);
    }
    match keys.len() {
        0 => Err("Missing search criteria".into()),
        1 => Ok(keys.pop().unwrap_or(SearchKey::All)),
        _ => Ok(SearchKey::And(keys)),
    }
}

fn search_key(args: &mut Args<'_>, depth: usize) -> R<SearchKey> {
    use rampart_core::store::SystemFlags as F;
    if depth > args.limits.max_search_depth {
        return Err(format!(
            "[LIMIT] Search nested deeper than {}",
            args.limits.max_search_depth
        ));
    }
    args.search_keys += 1;
    if args.search_keys > args.limits.max_search_keys {
        return Err(format!(
            "[LIMIT] More than {} search keys",
            args.limits.max_search_keys
        ));
    }
    let token = args.next()?;
    let word = match token {
        Token::List(inner) => {
            let mut sub = Args {
                tokens: inner.iter(),
                limits: args.limits,
                search_keys: args.search_keys,
            };
            let key = search_keys(&mut sub, depth + 1)?;
            args.search_keys = sub.search_keys;
            return Ok(key);
        }
        Token::Atom(a) => a.to_ascii_uppercase(),
        Token::Str(_) => return Err("Expected a search key".into()),
    };
    let date = |args: &mut Args<'_>| -> R<i64> {
        let s = args.astring()?;
        parse_date(&s).ok_or_else(|| format!("Invalid date {s:?}"))
    };
    Ok(match word.as_str() {
        "ALL" => SearchKey::All,
        "ANSWERED" => SearchKey::Flag(F::ANSWERED),
        "DELETED" => SearchKey::Flag(F::DELETED),
        "DRAFT" => SearchKey::Flag(F::DRAFT),
        "FLAGGED" => SearchKey::Flag(F::FLAGGED),
        "SEEN" => SearchKey::Flag(F::SEEN),
        "UNANSWERED" => SearchKey::NoFlag(F::ANSWERED),
        "UNDELETED" => SearchKey::NoFlag(F::DELETED),
        "UNDRAFT" => SearchKey::NoFlag(F::DRAFT),
        "UNFLAGGED" => SearchKey::NoFlag(F::FLAGGED),
        "UNSEEN" => SearchKey::NoFlag(F::SEEN),
        "RECENT" => SearchKey::Recent,
        "NEW" => SearchKey::New,
        "OLD" => SearchKey::Old,
        "KEYWORD" => SearchKey::Keyword(args.atom()?.to_owned()),
        "UNKEYWORD" => SearchKey::Unkeyword(args.atom()?.to_owned()),
        "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => {
            SearchKey::Header(word.clone(), args.astring()?)
        }
        "HEADER" => {
            let field = args.astring()?;
            SearchKey::Header(field.to_ascii_uppercase(), args.astring()?)
        }
        "BODY" => SearchKey::Body(args.astring()?),
        "TEXT" => SearchKey::Text(args.astring()?),
        "BEFORE" => SearchKey::Before(date(args)?),
        "ON" => SearchKey::On(date(args)?),
        "SINCE" => SearchKey::Since(date(args)?),
        "SENTBEFORE" => SearchKey::SentBefore(date(args)?),
        "SENTON" => SearchKey::SentOn(date(args)?),
        "SENTSINCE" => SearchKey::SentSince(date(args)?),
        "LARGER" => SearchKey::Larger(args.number()?),
        "SMALLER" => SearchKey::Smaller(args.number()?),
        "UID" => SearchKey::Uid(args.seq_set()?),
        "NOT" => SearchKey::Not(Box::new(search_key(args, depth + 1)?)),
        "OR" => {
            let a = search_key(args, depth + 1)?;
            let b = search_key(args, depth + 1)?;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        "MODSEQ" => {
            // MODSEQ [entry-name entry-type] n
            let first = args.next()?;
            let n = match first {
                Token::Str(_) => {
                    args.atom()?;
                    args.number()?
                }
                Token::Atom(a) => parse_number(a)?,
                Token::List(_) => return Err("Invalid MODSEQ".into()),
            };
            SearchKey::ModSeq(n)
        }
        "EMAILID" => SearchKey::EmailId(args.astring()?),
        "THREADID" => SearchKey::ThreadId(args.astring()?),
        "YOUNGER" => SearchKey::Younger(args.number()?),
        "OLDER" => SearchKey::Older(args.number()?),
        _ if word
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'*') =>
        {
            SearchKey::SeqSet(SequenceSet::parse(&word, args.limits.max_sequence_ranges)?)
        }
        _ => return Err(format!("Unknown search key {word}")),
    })
}

fn parse_fetch(uid: bool, args: &mut Args<'_>) -> R<Command> {
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
        Token::List(l) => {
            for t in l {
                atts.push(fetch_att(t.as_atom().ok_or("Expected a fetch item")?)?);
            }
        }
        Token::Str(_) => return Err("Expected fetch items".into()),
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

fn part_numbers(s: &str) -> R<Vec<u32>> {
    if s.is_empty() {
        return Ok(vec![]);
    }
    s.split('.')
        .map(|p| match p.parse::<u32>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(format!("Invalid part number {p:?}")),
        })
        .collect()
}

fn parse_section(s: &str) -> R<Section> {
    let mut part = Vec::new();
    let mut rest = s;
    while let Some(first) = rest.bytes().next() {
        if !first.is_ascii_digit() {
            break;
        }
        let end = rest.find('.').unwrap_or(rest.len());
        let n: u32 = rest[..end]
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or("Invalid part number")?;
        part.push(n);
        if part.len() > 64 {
            return Err("[LIMIT] Part path too deep".into());
        }
        rest = rest.get(end + 1..).unwrap_or("");
        if end == s.len() {
            break;
        }
    }
    if rest.is_empty() {
        return Ok(Section { part, text: None });
    }
    let upper = rest.to_ascii_uppercase();
    let text = match upper.as_str() {
        "HEADER" => SectionText::Header,
        "TEXT" => SectionText::Text,
        "MIME" if !part.is_empty() => SectionText::Mime,
        _ => {
            let (kind, _) = upper.split_once(' ').ok_or("Invalid section")?;
            // Field names keep the client's spelling: it is echoed back.
            let (_, fields) = rest.split_once(' ').ok_or("Invalid section")?;
            let fields = fields
                .strip_prefix('(')
                .and_then(|f| f.strip_suffix(')'))
                .ok_or("Invalid header field list")?;
            let names: Vec<String> = fields
                .split(' ')
                .filter(|f| !f.is_empty())
                .map(|f| f.trim_matches('"').to_owned())
                .collect();
            if names.is_empty() {
                return Err("Empty header field list".into());
            }
            match kind {
                "HEADER.FIELDS" => SectionText::HeaderFields(names),
                "HEADER.FIELDS.NOT" => SectionText::HeaderFieldsNot(names),
                _ => return Err("Invalid section".into()),
            }
        }
    };
    Ok(Section {
        part,
        text: Some(text),
    })
}

fn parse_store(uid: bool, args: &mut Args<'_>) -> R<Command> {
    let set = args.seq_set()?;
    let mut unchanged_since = None;
    if let Some(Token::List(mods)) = args.peek() {
        args.next()?;
        let mut m = Args::nested(mods, args.limits);
        while let Some(t) = m.tokens.next() {
            match t.as_atom().map(str::to_ascii_uppercase).as_deref() {
                Some("UNCHANGEDSINCE") => unchanged_since = Some(m.number()?),
                _ => return Err(format!("Unknown STORE modifier {t:?}")),
            }
        }
    }
    let item = args.atom()?.to_ascii_uppercase();
    let (mode, rest) = match item.as_bytes().first() {
        Some(b'+') => (StoreMode::Add, &item[1..]),
        Some(b'-') => (StoreMode::Remove, &item[1..]),
        _ => (StoreMode::Replace, &item[..]),
    };
    let silent = match rest {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => return Err(format!("Unknown STORE item {item}")),
    };
    let flags = match args.next()? {
        Token::List(l) => flag_list(l)?,
        Token::Atom(a) => {
            let mut flags = vec![a.clone()];
            for t in args.tokens.by_ref() {
                flags.push(t.as_atom().ok_or("Expected a flag")?.to_owned());
            }
            flags
        }
        Token::Str(_) => return Err("Expected flags".into()),
    };
    args.end()?;
    Ok(Command::Store {
        uid,
        set,
        unchanged_since,
        mode,
        silent,
        flags,
    })
}

fn parse_sort(uid: bool, args: &mut Args<'_>) -> R<Command> {
    let mut criteria = Vec::new();
    let mut reverse = false;
    for t in args.list()? {
        let word = t
            .as_atom()
            .ok_or("Expected a sort key")?
            .to_ascii_uppercase();
        let key = match word.as_str() {
            "REVERSE" => {
                reverse = true;
                continue;
            }
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            _ => return Err(format!("Unknown sort key {word}")),
        };
        criteria.push((reverse, key));
        reverse = false;
    }
    if criteria.is_empty() || reverse {
        return Err("Invalid sort criteria".into());
    }
    supported_charset(&args.astring()?)?;
    let key = search_keys(args, 0)?;
    Ok(Command::Sort { uid, criteria, key })
}

fn parse_thread(uid: bool, args: &mut Args<'_>) -> R<Command> {
    let algorithm = match args.atom()?.to_ascii_uppercase().as_str() {
        "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        "REFERENCES" => ThreadAlgorithm::References,
        other => return Err(format!("Unknown thread algorithm {other}")),
    };
    supported_charset(&args.astring()?)?;
    let key = search_keys(args, 0)?;
    Ok(Command::Thread {
        uid,
        algorithm,
        key,
    })
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

pub use rampart_core::calendar::{civil_from_days, days_from_civil};

/// The English month abbreviation (1-based).
pub fn month_name(m: u32) -> &'static str {
    [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m.clamp(1, 12) - 1) as usize]
}

/// `1-Feb-1994` as days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let d: u32 = it.next()?.trim().parse().ok()?;
    let m = it.next()?.to_ascii_uppercase();
    let y: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    let m = MONTHS.iter().position(|x| *x == m)? as u32 + 1;
    Some(days_from_civil(y, m, d))
}

/// `17-Jul-1996 02:44:25 -0700` as milliseconds since the epoch.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (date, rest) = s.split_once(' ')?;
    let days = parse_date(date)?;
    let (time, zone) = rest.split_once(' ')?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3 || t[0] > 23 || t[1] > 59 || t[2] > 60 {
        return None;
    }
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset =
        sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?);
    Some(((days * 86400 + t[0] * 3600 + t[1] * 60 + t[2]) - offset * 60) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::tokenize;

    const LIMITS: CommandLimits = CommandLimits {
        max_sequence_ranges: 100,
        max_search_depth: 8,
        max_search_keys: 100,
    };

    fn parse(s: &str) -> Result<Command, String> {
        let (_, tokens) = tokenize(s.as_bytes(), 8).map_err(|e| e.reason)?;
        parse_command(&tokens, LIMITS)
    }

    #[test]
    fn parses_fetch() {
        let c = parse("a UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.512>) (CHANGEDSINCE 12 VANISHED)").unwrap();
        let Command::Fetch {
            uid: true,
            atts,
            changed_since: Some(12),
            vanished: true,
            ..
        } = c
        else {
            panic!("{c:?}")
        };
        assert_eq!(atts[0], FetchAtt::Uid);
        assert_eq!(
            atts[2],
            FetchAtt::Section {
                name: SectionName::Body,
                peek: true,
                section: Section {
                    part: vec![1, 2],
                    text: Some(SectionText::HeaderFields(vec![
                        "From".into(),
                        "Subject".into()
                    ]))
                },
                partial: Some((0, 512))
            }
        );
        assert!(parse("a FETCH 1 BODY[0]").is_err());
        assert!(parse("a FETCH 1 BINARY[1.TEXT]").is_err());
        assert!(parse("a FETCH 1 (FLAGS) (VANISHED)").is_err());
        assert!(parse("a FETCH 1:x FLAGS").is_err());
    }

    #[test]
    fn parses_search() {
        let c = parse("a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM alice (UNSEEN SINCE 1-Feb-2026) NOT 1:5").unwrap();
        let Command::Search {
            ret: Some(r),
            key: SearchKey::And(keys),
            ..
        } = c
        else {
            panic!("{c:?}")
        };
        assert!(r.min && r.count && !r.all);
        assert_eq!(keys.len(), 2);
        assert!(
            parse("a SEARCH CHARSET KOI8-R ALL")
                .unwrap_err()
                .contains("BADCHARSET")
        );
        let deep = format!("a SEARCH {}ALL", "NOT ".repeat(20));
        assert!(parse(&deep).unwrap_err().contains("LIMIT"));
        assert!(parse("a SEARCH").is_err());
        assert!(parse("a SEARCH FROB").is_err());
    }

    #[test]
    fn parses_list_and_dates() {
        let c = parse("a LIST (SUBSCRIBED) \"\" (\"*\" \"Work/%\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))").unwrap();
        let Command::List {
            patterns, options, ..
        } = c
        else {
            panic!()
        };
        assert_eq!(patterns, vec!["*", "Work/%"]);
        assert!(options.subscribed_only && options.return_children);
        assert_eq!(
            options.return_status,
            Some(vec![StatusItem::Messages, StatusItem::Unseen])
        );
        assert_eq!(parse_date("1-Jan-1970"), Some(0));
        assert_eq!(
            parse_date("29-Feb-2024"),
            Some(days_from_civil(2024, 2, 29))
        );
        assert_eq!(
            civil_from_days(days_from_civil(2026, 11, 27)),
            (2026, 11, 27)
        );
        assert_eq!(parse_date_time(" 1-Jan-1970 01:00:00 +0100"), Some(0));
        assert_eq!(
            parse_date_time("17-Jul-1996 02:44:25 -0700"),
            Some(837596665000)
        );
        assert_eq!(compact_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        let set = SequenceSet::parse("1:3,9:*", 10).unwrap();
        assert!(set.contains(12, 20) && !set.contains(5, 20));
        assert!(SequenceSet::parse("0", 10).is_err());
        assert!(SequenceSet::parse("1,2,3", 2).is_err());
    }
}
