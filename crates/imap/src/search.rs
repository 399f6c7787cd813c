//! Evaluating SEARCH keys against messages. Header and body keys match
//! case-insensitively on decoded text (encoded words and transfer encodings
//! undone, charsets converted to UTF-8), as RFC 9051 §6.4.4 asks.

use std::collections::HashMap;

use rampart_core::model::{SystemFlags, TextField, TextMatches};
use rampart_core::{MessageSummary, SearchableText};

use crate::command::{SearchKey, SeqNum, SequenceSet};

/// What evaluating a key needs beyond flags and sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The stored summary (sent date).
    pub summary: bool,
    /// The raw message (header and body keys).
    pub text: bool,
}

/// What a key needs to be evaluated.
pub fn needs(key: &SearchKey) -> Needs {
    match key {
        SearchKey::And(keys) => keys.iter().fold(Needs::default(), |a, k| {
            let n = needs(k);
            Needs {
                summary: a.summary || n.summary,
                text: a.text || n.text,
            }
        }),
        SearchKey::Or(a, b) => {
            let (a, b) = (needs(a), needs(b));
            Needs {
                summary: a.summary || b.summary,
                text: a.text || b.text,
            }
        }
        SearchKey::Not(k) => needs(k),
        SearchKey::Header(..) | SearchKey::Body(_) | SearchKey::Text(_) => Needs {
            summary: false,
            text: true,
        },
        SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => Needs {
            summary: true,
            text: false,
        },
        _ => Needs::default(),
    }
}

/// One message as the search sees it.
pub struct Candidate<'a> {
    /// Sequence number.
    pub seq: u32,
    /// UID.
    pub uid: u32,
    /// System flags.
    pub flags: SystemFlags,
    /// Whether the message is `\Recent` to this session (RFC 3501 §2.3.2).
    pub recent: bool,
    /// Keywords.
    pub keywords: &'a [String],
    /// MODSEQ.
    pub modseq: u64,
    /// Size in bytes.
    pub size: u64,
    /// INTERNALDATE, milliseconds since the epoch.
    pub received_at: i64,
    /// EMAILID value.
    pub email_id: &'a str,
    /// THREADID value.
    pub thread_id: &'a str,
    /// Summary, when the key needs it.
    pub summary: Option<&'a MessageSummary>,
    /// Decoded text, when the key needs it.
    pub text: Option<&'a SearchableText>,
}

/// Context of one search: the mailbox's largest sequence number and UID, and now.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// Largest sequence number (for `*`).
    pub max_seq: u32,
    /// Largest UID (for `*`).
    pub max_uid: u32,
    /// Now, milliseconds since the epoch.
    pub now: i64,
}

fn day_of(millis: i64) -> i64 {
    millis.div_euclid(86_400_000)
}

/// Whether the message matches the key.
pub fn matches(key: &SearchKey, c: &Candidate<'_>, scope: Scope) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().all(|k| matches(k, c, scope)),
        SearchKey::Or(a, b) => matches(a, c, scope) || matches(b, c, scope),
        SearchKey::Not(k) => !matches(k, c, scope),
        SearchKey::All => true,
        SearchKey::SeqSet(set) => set.contains(c.seq, scope.max_seq),
        SearchKey::Uid(set) => set.contains(c.uid, scope.max_uid),
        SearchKey::Flag(f) => c.flags.contains(*f),
        SearchKey::NoFlag(f) => !c.flags.contains(*f),
        SearchKey::Keyword(k) => c.keywords.iter().any(|w| w.eq_ignore_ascii_case(k)),
        SearchKey::Unkeyword(k) => !c.keywords.iter().any(|w| w.eq_ignore_ascii_case(k)),
        // RFC 3501 §6.4.4; a rev2 session never sees \Recent.
        SearchKey::Recent => c.recent,
        SearchKey::New => c.recent && !c.flags.contains(SystemFlags::SEEN),
        SearchKey::Old => !c.recent,
        SearchKey::Header(name, needle) => c.text.is_some_and(|t| {
            let needle = needle.to_lowercase();
            match name.as_str() {
                // An empty string matches every message that has the field.
                _ if needle.is_empty() => {
                    t.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
                }
                _ => t.header_contains(name, &needle),
            }
        }),
        SearchKey::Body(needle) => c
            .text
            .is_some_and(|t| t.body_contains(&needle.to_lowercase())),
        SearchKey::Text(needle) => c
            .text
            .is_some_and(|t| t.text_contains(&needle.to_lowercase())),
        SearchKey::Before(d) => day_of(c.received_at) < *d,
        SearchKey::On(d) => day_of(c.received_at) == *d,
        SearchKey::Since(d) => day_of(c.received_at) >= *d,
        SearchKey::SentBefore(d) => sent_day(c).is_some_and(|s| s < *d),
        SearchKey::SentOn(d) => sent_day(c).is_some_and(|s| s == *d),
        SearchKey::SentSince(d) => sent_day(c).is_some_and(|s| s >= *d),
        SearchKey::Larger(n) => c.size > *n,
        SearchKey::Smaller(n) => c.size < *n,
        SearchKey::ModSeq(n) => c.modseq >= *n,
        SearchKey::EmailId(id) => c.email_id == id,
        SearchKey::ThreadId(id) => c.thread_id == id,
        SearchKey::Younger(secs) => scope.now - c.received_at <= (*secs as i64) * 1000,
        SearchKey::Older(secs) => scope.now - c.received_at > (*secs as i64) * 1000,
    }
}

/// The day of the Date header (in its own zone, as RFC 9051 says), falling
/// back to INTERNALDATE.
fn sent_day(c: &Candidate<'_>) -> Option<i64> {
    match c.summary.and_then(|s| s.sent_day()) {
        Some(day) => Some(day),
        None => Some(day_of(c.received_at)),
    }
}

/// A lookup in the full-text index: the text it looks in and the needle.
pub type TextLookup = (TextField, String);

/// The index lookups that can spare reading messages for a key: BODY and
/// TEXT, which the index answers, and HEADER, which it narrows (the index
/// keeps all fields together).
pub fn text_lookups(key: &SearchKey, out: &mut Vec<TextLookup>) {
    let lookup = match key {
        SearchKey::And(keys) => return keys.iter().for_each(|k| text_lookups(k, out)),
        SearchKey::Or(a, b) => {
            text_lookups(a, out);
            return text_lookups(b, out);
        }
        SearchKey::Not(k) => return text_lookups(k, out),
        SearchKey::Body(needle) => (TextField::Body, needle.clone()),
        SearchKey::Text(needle) => (TextField::All, needle.clone()),
        SearchKey::Header(_, needle) if !needle.is_empty() => (TextField::Headers, needle.clone()),
        _ => return,
    };
    if !out.contains(&lookup) {
        out.push(lookup);
    }
}

/// A key matching exactly the given UIDs (sorted).
fn uid_key(uids: &[u32]) -> SearchKey {
    let mut ranges: Vec<(SeqNum, SeqNum)> = Vec::new();
    let mut iter = uids.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        ranges.push((SeqNum::Value(first), SeqNum::Value(last)));
    }
    if ranges.is_empty() {
        return SearchKey::Not(Box::new(SearchKey::All));
    }
    SearchKey::Uid(SequenceSet(ranges))
}

/// The key with `$` (RFC 5182, RFC 9051 §6.4.4.1) replaced by the UIDs
/// the last SEARCH ... RETURN (SAVE) saved.
pub fn with_saved(key: SearchKey, saved: &[u32]) -> SearchKey {
    match key {
        SearchKey::SeqSet(set) | SearchKey::Uid(set) if set.is_saved() => uid_key(saved),
        SearchKey::And(keys) => {
            SearchKey::And(keys.into_iter().map(|k| with_saved(k, saved)).collect())
        }
        SearchKey::Or(a, b) => SearchKey::Or(
            Box::new(with_saved(*a, saved)),
            Box::new(with_saved(*b, saved)),
        ),
        SearchKey::Not(k) => SearchKey::Not(Box::new(with_saved(*k, saved))),
        other => other,
    }
}

/// The key with the index's answers put in: a BODY or TEXT key becomes the
/// UIDs the index found (plus the key itself, for messages the index does
/// not cover); a HEADER key is limited to the UIDs whose header text holds
/// the needle. Keys without an answer stay as they are.
pub fn apply_index(key: SearchKey, answers: &HashMap<TextLookup, TextMatches>) -> SearchKey {
    let answer = |field, needle: &String| answers.get(&(field, needle.clone()));
    match key {
        SearchKey::And(keys) => {
            SearchKey::And(keys.into_iter().map(|k| apply_index(k, answers)).collect())
        }
        SearchKey::Or(a, b) => SearchKey::Or(
            Box::new(apply_index(*a, answers)),
            Box::new(apply_index(*b, answers)),
        ),
        SearchKey::Not(k) => SearchKey::Not(Box::new(apply_index(*k, answers))),
        SearchKey::Body(ref needle) | SearchKey::Text(ref needle) => {
            let field = match key {
                SearchKey::Body(_) => TextField::Body,
                _ => TextField::All,
            };
            let Some(m) = answer(field, needle) else {
                return key;
            };
            let found = uid_key(&m.matched.iter().map(|(uid, _)| *uid).collect::<Vec<_>>());
            if m.unindexed.is_empty() {
                found
            } else {
                let rest = SearchKey::And(vec![uid_key(&m.unindexed), key]);
                SearchKey::Or(Box::new(found), Box::new(rest))
            }
        }
        SearchKey::Header(_, ref needle) => {
            let Some(m) = answer(TextField::Headers, needle) else {
                return key;
            };
            let mut uids: Vec<u32> = m.matched.iter().map(|(uid, _)| *uid).collect();
            uids.extend(&m.unindexed);
            uids.sort_unstable();
            SearchKey::And(vec![uid_key(&uids), key])
        }
        other => other,
    }
}

/// Whether a message with this UID can match at all, judged by the key's
/// UID sets only: the messages a search need not read.
pub fn may_match(key: &SearchKey, uid: u32, scope: Scope) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().all(|k| may_match(k, uid, scope)),
        SearchKey::Or(a, b) => may_match(a, uid, scope) || may_match(b, uid, scope),
        SearchKey::Uid(set) => set.contains(uid, scope.max_uid),
        SearchKey::Not(k) if matches!(**k, SearchKey::All) => false,
        _ => true,
    }
}

/// Whether a key uses MODSEQ (then SEARCH responses carry the highest one).
pub fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(keys) => keys.iter().any(uses_modseq),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::Not(k) => uses_modseq(k),
        _ => false,
    }
}

/// The base subject of RFC 5256 §2.1, case-mapped, for SORT and THREAD.
pub use crate::subject::base_subject;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{SequenceSet, parse_date};

    /// SENTON and friends take the Date header's day in its own zone,
    /// disregarding time and zone (RFC 9051 §6.4.4), whatever day it was in
    /// UTC; `-0000` (RFC 5322 §3.3: UTC, local zone unknown) is UTC.
    #[test]
    fn sent_dates_are_days_in_the_senders_zone() {
        let sent_on = |date: &str, day: &str| {
            let raw = format!("Date: {date}\r\nSubject: x\r\n\r\nx\r\n");
            let (summary, _) = rampart_core::summarize(raw.as_bytes());
            let c = Candidate {
                recent: false,
                seq: 1,
                uid: 1,
                flags: SystemFlags(0),
                keywords: &[],
                modseq: 1,
                size: 1,
                received_at: 0,
                email_id: "M1",
                thread_id: "T1",
                summary: Some(&summary),
                text: None,
            };
            let scope = Scope {
                max_seq: 1,
                max_uid: 1,
                now: 0,
            };
            matches(&SearchKey::SentOn(parse_date(day).unwrap()), &c, scope)
        };
        // 00:30 in Sydney on 2 February is 13:30 UTC on 1 February.
        assert!(sent_on("Mon, 2 Feb 2026 00:30:00 +1100", "2-Feb-2026"));
        assert!(!sent_on("Mon, 2 Feb 2026 00:30:00 +1100", "1-Feb-2026"));
        // 23:30 in Los Angeles on 28 February 2024 is 29 February UTC.
        assert!(sent_on("Wed, 28 Feb 2024 23:30:00 -0800", "28-Feb-2024"));
        assert!(sent_on("Thu, 29 Feb 2024 12:00:00 -0000", "29-Feb-2024"));
    }

    #[test]
    fn matches_keys() {
        let raw = "From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: Hallo\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Sch=F6ne Gr=FC=DFe\r\n";
        let text = SearchableText::new(raw.as_bytes());
        let keywords = vec!["$Important".to_string()];
        let c = Candidate {
            recent: false,
            seq: 3,
            uid: 30,
            flags: SystemFlags(SystemFlags::SEEN),
            keywords: &keywords,
            modseq: 7,
            size: 120,
            received_at: parse_date("2-Feb-2026").unwrap() * 86_400_000 + 5000,
            email_id: "M1",
            thread_id: "T1",
            summary: None,
            text: Some(&text),
        };
        let scope = Scope {
            max_seq: 10,
            max_uid: 100,
            now: 0,
        };
        let yes = |k: SearchKey| assert!(matches(&k, &c, scope), "{k:?}");
        let no = |k: SearchKey| assert!(!matches(&k, &c, scope), "{k:?}");
        yes(SearchKey::Header("FROM".into(), "jürgen".into()));
        yes(SearchKey::Body("SCHÖNE grüße".into()));
        yes(SearchKey::Text("hallo".into()));
        no(SearchKey::Body("hallo".into()));
        yes(SearchKey::Flag(SystemFlags::SEEN));
        no(SearchKey::NoFlag(SystemFlags::SEEN));
        yes(SearchKey::Keyword("$important".into()));
        yes(SearchKey::On(parse_date("2-Feb-2026").unwrap()));
        no(SearchKey::Before(parse_date("2-Feb-2026").unwrap()));
        yes(SearchKey::Uid(SequenceSet::parse("20:*", 10).unwrap()));
        yes(SearchKey::Not(Box::new(SearchKey::SeqSet(
            SequenceSet::parse("1:2", 10).unwrap(),
        ))));
        yes(SearchKey::Or(
            Box::new(SearchKey::Larger(1000)),
            Box::new(SearchKey::ModSeq(7)),
        ));
        yes(SearchKey::Header("SUBJECT".into(), "".into()));
        no(SearchKey::Header("X-NONE".into(), "".into()));
        // What the index answered stands in for the text keys.
        let mut lookups = Vec::new();
        let key = SearchKey::And(vec![
            SearchKey::Text("hallo".into()),
            SearchKey::Or(
                Box::new(SearchKey::Body("grüße".into())),
                Box::new(SearchKey::Header("FROM".into(), "jürgen".into())),
            ),
        ]);
        text_lookups(&key, &mut lookups);
        assert_eq!(lookups.len(), 3);
        let answers: HashMap<TextLookup, TextMatches> = [
            (
                (TextField::All, "hallo".to_string()),
                TextMatches {
                    matched: vec![(5, rampart_core::model::MessageId(1))],
                    unindexed: vec![],
                },
            ),
            (
                (TextField::Body, "grüße".to_string()),
                TextMatches {
                    matched: vec![],
                    unindexed: vec![30],
                },
            ),
        ]
        .into_iter()
        .collect();
        let applied = apply_index(key, &answers);
        // TEXT found only UID 5; BODY must read UID 30, which it matches.
        assert!(!matches(&applied, &c, scope));
        assert!(may_match(&applied, 5, scope));
        assert!(!may_match(&applied, 30, scope));
        let body_only = apply_index(SearchKey::Body("grüße".into()), &answers);
        assert!(matches(&body_only, &c, scope));
        assert!(may_match(&body_only, 30, scope) && !may_match(&body_only, 31, scope));
        assert_eq!(
            uid_key(&[1, 2, 3, 7]),
            SearchKey::Uid(SequenceSet::parse("1:3,7", 10).unwrap())
        );
        assert_eq!(
            base_subject("Re: [list] Fwd: Hello  World (fwd)"),
            "HELLO WORLD"
        );
    }
}
