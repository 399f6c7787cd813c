//! SEARCH keys and result options (RFC 9051 §6.4.4), with SORT and THREAD
//! (RFC 5256), which take the same keys.

use super::{Args, Command, R, SequenceSet, keyword, parse_date, parse_number};
use crate::parser::Token;

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
    /// Message sequence numbers (or `$`, see [`SequenceSet::is_saved`]).
    SeqSet(SequenceSet),
    /// UIDs.
    Uid(SequenceSet),
    /// A system flag is set (bit of [`rampart_core::model::SystemFlags`]).
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

/// SEARCH result options (RFC 9051 §6.4.4; RFC 4731, RFC 5182).
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
    /// SAVE: keep the result as `$` (RFC 9051 §6.4.4.1). Alone, it also
    /// suppresses the ESEARCH response, so then the four above are false.
    pub save: bool,
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

/// SEARCH [RETURN (...)] [CHARSET x] keys.
pub(super) fn parse_search(uid: bool, args: &mut Args<'_>) -> R<Command> {
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
                Some("SAVE") => r.save = true,
                _ => return Err(format!("Unknown RETURN option {t:?}")),
            }
        }
        // RFC 9051 §6.4.4: no option, or "()", means ALL; SAVE alone
        // asks for no ESEARCH at all.
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
    use rampart_core::model::SystemFlags as F;
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
        Token::Str(_) | Token::Literal8(_) => return Err("Expected a search key".into()),
    };
    // A date that is no day (31-Feb-2026) is a BAD, as any other syntax
    // error, and never the day it would roll over to.
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
        "KEYWORD" => SearchKey::Keyword(keyword(args.next()?)?),
        "UNKEYWORD" => SearchKey::Unkeyword(keyword(args.next()?)?),
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
                Token::List(_) | Token::Literal8(_) => return Err("Invalid MODSEQ".into()),
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
            .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$') =>
        {
            SearchKey::SeqSet(SequenceSet::parse(&word, args.limits.max_sequence_ranges)?)
        }
        _ => return Err(format!("Unknown search key {word}")),
    })
}

/// SORT (criteria) charset keys (RFC 5256 §3).
pub(super) fn parse_sort(uid: bool, args: &mut Args<'_>) -> R<Command> {
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

/// THREAD algorithm charset keys (RFC 5256 §3).
pub(super) fn parse_thread(uid: bool, args: &mut Args<'_>) -> R<Command> {
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
