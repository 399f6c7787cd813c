//! Mailbox commands: SELECT/EXAMINE, LIST, STATUS and APPEND (RFC 9051
//! §6.3, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 7162 QRESYNC).

use super::{Args, Command, R, SequenceSet, flag_list, parse_date_time};
use crate::parser::Token;

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

/// A `status-att-list`: one item or more (RFC 9051 §9).
pub(super) fn status_items(tokens: &[Token]) -> R<Vec<StatusItem>> {
    if tokens.is_empty() {
        return Err("Empty STATUS item list".into());
    }
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

/// SELECT or EXAMINE mailbox [(CONDSTORE / QRESYNC (...))].
pub(super) fn parse_select(read_only: bool, args: &mut Args<'_>) -> R<Command> {
    let mailbox = args.astring()?;
    let mut condstore = false;
    let mut qresync = None;
    if let Some(Token::List(params)) = args.peek() {
        args.next()?;
        let mut p = Args::nested(params, args.limits);
        while let Some(t) = p.tokens.next() {
            match t.as_atom().map(str::to_ascii_uppercase).as_deref() {
                Some("CONDSTORE") => condstore = true,
                Some("QRESYNC") => {
                    let q = p.list()?;
                    let mut q = Args::nested(q, args.limits);
                    let uid_validity =
                        u32::try_from(q.number()?).map_err(|_| "UIDVALIDITY out of range")?;
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
    Ok(Command::Select {
        mailbox,
        read_only,
        condstore,
        qresync,
    })
}

/// LIST [(selection)] reference (pattern / (patterns)) [RETURN (...)], or
/// LSUB reference pattern (RFC 9051 §6.3.9, RFC 3501 §6.3.9).
pub(super) fn parse_list(lsub: bool, args: &mut Args<'_>) -> R<Command> {
    let mut options = ListOptions {
        lsub,
        ..Default::default()
    };
    if let (false, Some(Token::List(sel))) = (lsub, args.peek()) {
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
    // list-mailbox = 1*list-char / string: the tokenizer's words already
    // hold list-wildcards and `]` (RFC 9051 §9).
    let patterns = match args.next()? {
        Token::List(l) if !lsub => l
            .iter()
            .map(|t| t.as_astring().ok_or("Expected a pattern"))
            .collect::<Result<Vec<_>, _>>()?,
        t => vec![t.as_astring().ok_or("Expected a pattern")?],
    };
    if !lsub && let Some(t) = args.tokens.next() {
        if t.as_atom().map(str::to_ascii_uppercase).as_deref() != Some("RETURN") {
            return Err("Expected RETURN".into());
        }
        let ret = args.list()?;
        let mut r = Args::nested(ret, args.limits);
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
    // RFC 9051 §6.3.9.1: RECURSIVEMATCH alone (or with REMOTE) is a BAD.
    if options.recursive_match && !options.subscribed_only {
        return Err("RECURSIVEMATCH needs another selection option".into());
    }
    Ok(Command::List {
        reference,
        patterns,
        options,
    })
}

/// APPEND mailbox [flag-list] [date-time] literal (RFC 9051 §6.3.12), the
/// message a literal or, with BINARY, a literal8 (RFC 3516 §4.4).
pub(super) fn parse_append(args: &mut Args<'_>) -> R<Command> {
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
        // A date-time that is no date (29-Feb-2023, hour 24, zone -9999) is
        // a BAD. RFC 9051 §6.3.12 would allow a NO for an error in the
        // date/time, but such text breaks the date-time syntax of §9, and
        // Dovecot answers it with BAD ("Invalid internal date."), so
        // clients already meet this answer.
        let text = std::str::from_utf8(s).map_err(|_| "Invalid date-time")?;
        date = Some(parse_date_time(text).ok_or_else(|| format!("Invalid date-time {text:?}"))?);
    }
    let message = match args.next()? {
        Token::Str(s) | Token::Literal8(s) => s.clone(),
        _ => return Err("APPEND needs the message as a literal".into()),
    };
    Ok(Command::Append {
        mailbox,
        flags,
        date,
        message,
    })
}
