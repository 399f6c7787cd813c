//! The command parser against RFC 9051's own text: every command line of
//! the examples in §6 (fed through the framer as a client sends it,
//! literals included), and the §9 ABNF at its edges: `[` and `]` in
//! mailbox names, dates that do not exist, quoted-string escapes,
//! LITERAL+ and literal8, sequence sets with `*` and `$`.

#[path = "parser/abnf.rs"]
mod abnf;
#[path = "parser/rfc9051_examples.rs"]
mod rfc9051_examples;

use rampart_imap::command::{
    Command, CommandLimits, FetchAtt, SearchKey, SearchReturn, Section, SectionName, SectionText,
    SeqNum, SequenceSet, StoreMode, days_from_civil, parse_command, parse_date,
};
use rampart_imap::parser::{Frame, FrameLimits, Framer, tokenize};

const FRAME: FrameLimits = FrameLimits {
    max_command_bytes: 64 * 1024,
    max_append_bytes: 1024 * 1024,
    max_list_depth: 8,
};

const LIMITS: CommandLimits = CommandLimits {
    max_sequence_ranges: 100,
    max_search_depth: 8,
    max_search_keys: 100,
};

/// Frames `wire` (a client's bytes, CRLFs included) into its commands,
/// answering continuations as a server would; each one parsed.
fn parse_wire(wire: &[u8]) -> Vec<Result<Command, String>> {
    let mut framer = Framer::new(FRAME);
    framer.push(wire);
    let mut out = Vec::new();
    while let Some(frame) = framer.next_frame() {
        match frame {
            Frame::Continue => {}
            Frame::Command(raw) => out.push(
                tokenize(&raw, FRAME.max_list_depth)
                    .map_err(|e| e.reason)
                    .and_then(|(_, tokens)| parse_command(&tokens, LIMITS)),
            ),
            Frame::Refused { text, .. } => out.push(Err(text)),
        }
    }
    assert!(!framer.has_input(), "bytes left unframed in {wire:?}");
    out
}

/// One command line (CRLF added).
fn parse(line: &str) -> Result<Command, String> {
    let mut results = parse_wire(format!("{line}\r\n").as_bytes());
    assert_eq!(results.len(), 1, "{line}");
    results.pop().unwrap()
}

fn ok(line: &str) -> Command {
    parse(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn bad(line: &str) -> String {
    match parse(line) {
        Ok(c) => panic!("{line} parsed as {c:?}"),
        Err(e) => e,
    }
}

fn seq(s: &str) -> SequenceSet {
    SequenceSet::parse(s, 100).unwrap()
}

/// A SEARCH command's parts.
fn search(line: &str) -> (bool, Option<SearchReturn>, SearchKey) {
    match ok(line) {
        Command::Search { uid, ret, key } => (uid, ret, key),
        c => panic!("{line}: {c:?}"),
    }
}
