//! IMAP commands, interpreted from tokens (RFC 9051 §6 and the extensions
//! Rampart announces). One file per concern: sequence sets, dates, FETCH
//! items, SEARCH keys (with SORT and THREAD), mailbox commands, STORE.

mod date;
mod fetch;
mod mailbox;
mod search;
mod sequence;
mod store;

pub use date::{
    civil_from_days, days_from_civil, format_date_time, month_name, parse_date, parse_date_time,
};
pub use fetch::{FetchAtt, Section, SectionName, SectionText};
pub use mailbox::{ListOptions, Qresync, StatusItem};
pub use search::{SearchKey, SearchReturn, SortKey, ThreadAlgorithm};
pub use sequence::{SeqNum, SequenceSet, compact_set};
pub use store::StoreMode;

use crate::parser::{Token, is_atom_char};

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
    /// ID (...) or ID NIL: the client's software ("name" and "version"
    /// joined), when it told them (RFC 2971 §3.3).
    Id(Option<String>),
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

/// The arguments of a command (or of a list in it), read left to right.
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

    /// A sequence set, or `$` (RFC 9051 §6.4.4.1).
    fn seq_set(&mut self) -> R<SequenceSet> {
        let a = self.atom()?;
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

/// The client's software from ID's parameters (RFC 2971 §3.3: NIL, or a
/// list of field and value pairs, field names case-insensitive, values
/// strings or NIL): its "name" and "version", joined by a space. A list
/// that breaks the grammar is still accepted, as before, and yields what
/// it holds in well-formed pairs; core sanitises the text.
fn id_software(params: &Token) -> Option<String> {
    let Token::List(items) = params else {
        return None;
    };
    let mut name = None;
    let mut version = None;
    for pair in items.chunks_exact(2) {
        let (Token::Str(field), Token::Str(value)) = (&pair[0], &pair[1]) else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        if field.eq_ignore_ascii_case(b"name") {
            name.get_or_insert(value);
        } else if field.eq_ignore_ascii_case(b"version") {
            version.get_or_insert(value);
        }
    }
    match (name, version) {
        (Some(n), Some(v)) => Some(format!("{n} {v}")),
        (Some(n), None) => Some(n),
        (None, Some(v)) => Some(v),
        (None, None) => None,
    }
}

fn parse_number(a: &str) -> R<u64> {
    if a.is_empty() || a.len() > 20 || !a.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("Expected a number, got {a:?}"));
    }
    a.parse().map_err(|_| format!("Number out of range: {a}"))
}

/// One flag (RFC 9051 §9 `flag`): `\` atom for system flags and flag
/// extensions, or an atom for a keyword. An atom has no `]`, `%`, `*` or
/// `\`, so a keyword can never break the `[PERMANENTFLAGS (...)]` it is
/// listed in.
fn flag(t: &Token) -> R<String> {
    let a = t.as_atom().ok_or("Expected a flag")?;
    let name = a.strip_prefix('\\').unwrap_or(a);
    if name.is_empty() || !name.bytes().all(is_atom_char) {
        return Err(format!("Invalid flag {a:?}"));
    }
    Ok(a.to_owned())
}

/// A keyword (RFC 9051 §9 `flag-keyword`): an atom.
fn keyword(t: &Token) -> R<String> {
    match t.as_atom() {
        Some(a) if !a.is_empty() && a.bytes().all(is_atom_char) => Ok(a.to_owned()),
        _ => Err(format!("Invalid keyword {t:?}")),
    }
}

/// The flags of a `flag-list`: `(` [flag *(SP flag)] `)`.
fn flag_list(tokens: &[Token]) -> R<Vec<String>> {
    tokens.iter().map(flag).collect()
}

/// Interprets a tokenised command. An `Err` is the text of a tagged BAD,
/// except that one starting with `[BADCHARSET` is a NO (RFC 9051 §6.4.4).
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
        "ID" => Command::Id(id_software(args.next()?)),
        "SELECT" | "EXAMINE" => mailbox::parse_select(name == "EXAMINE", &mut args)?,
        "CREATE" => {
            // RFC 6154's (USE (...)) needs CREATE-SPECIAL-USE, which is not
            // announced: the parameter list is a BAD.
            Command::Create(args.astring()?)
        }
        "DELETE" => Command::Delete(args.astring()?),
        "RENAME" => Command::Rename(args.astring()?, args.astring()?),
        "SUBSCRIBE" => Command::Subscribe(args.astring()?),
        "UNSUBSCRIBE" => Command::Unsubscribe(args.astring()?),
        "LIST" | "LSUB" => mailbox::parse_list(name == "LSUB", &mut args)?,
        "STATUS" => Command::Status {
            mailbox: args.astring()?,
            items: mailbox::status_items(args.list()?)?,
        },
        "APPEND" => mailbox::parse_append(&mut args)?,
        "UID" => {
            let sub = args.atom()?.to_ascii_uppercase();
            parse_uid_command(&sub, &mut args)?
        }
        "SEARCH" => search::parse_search(false, &mut args)?,
        "FETCH" => fetch::parse_fetch(false, &mut args)?,
        "STORE" => store::parse_store(false, &mut args)?,
        "COPY" | "MOVE" => Command::Copy {
            uid: false,
            remove: name == "MOVE",
            set: args.seq_set()?,
            mailbox: args.astring()?,
        },
        "GETQUOTA" => Command::GetQuota(args.astring()?),
        "GETQUOTAROOT" => Command::GetQuotaRoot(args.astring()?),
        "SORT" => search::parse_sort(false, &mut args)?,
        "THREAD" => search::parse_thread(false, &mut args)?,
        other => return Err(format!("Unknown command {other}")),
    };
    args.end()?;
    Ok(command)
}

/// RFC 9051 §6.4.9: the UID forms of SEARCH, FETCH, STORE, COPY, MOVE and
/// EXPUNGE (and of SORT and THREAD, RFC 5256).
fn parse_uid_command(sub: &str, args: &mut Args<'_>) -> R<Command> {
    let command = match sub {
        "SEARCH" => search::parse_search(true, args)?,
        "FETCH" => fetch::parse_fetch(true, args)?,
        "STORE" => store::parse_store(true, args)?,
        "SORT" => search::parse_sort(true, args)?,
        "THREAD" => search::parse_thread(true, args)?,
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

    /// RFC 2971 §3.3 and its example in §4.
    #[test]
    fn id_tells_the_client_software() {
        let id = |s: &str| match parse(s).unwrap() {
            Command::Id(software) => software,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            id(r#"a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")"#),
            Some("sodr 19.34".into())
        );
        assert_eq!(id("a ID NIL"), None);
        assert_eq!(
            id(r#"a ID ("NAME" "Thunderbird" "Version" NIL)"#),
            Some("Thunderbird".into())
        );
        assert_eq!(
            id(r#"a ID ("os" "Linux" "version" "1.0")"#),
            Some("1.0".into())
        );
        // A malformed list is still accepted, as clients send odd IDs.
        assert_eq!(id(r#"a ID ("name")"#), None);
        assert!(parse("a ID").is_err());
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
