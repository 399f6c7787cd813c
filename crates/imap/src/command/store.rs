//! STORE (RFC 9051 §6.4.6, RFC 7162 UNCHANGEDSINCE).

use super::{Args, Command, R, flag, flag_list};
use crate::parser::Token;

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

/// STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] (flags) or bare flags.
pub(super) fn parse_store(uid: bool, args: &mut Args<'_>) -> R<Command> {
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
        t @ Token::Atom(_) => {
            // store-att-flags also takes the flags without parentheses.
            let mut flags = vec![flag(t)?];
            for t in args.tokens.by_ref() {
                flags.push(flag(t)?);
            }
            flags
        }
        Token::Str(_) | Token::Literal8(_) => return Err("Expected flags".into()),
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
