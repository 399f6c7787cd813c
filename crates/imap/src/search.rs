//! Evaluating SEARCH keys against messages. Header and body keys match
//! case-insensitively on decoded text (encoded words and transfer encodings
//! undone, charsets converted to UTF-8), as RFC 9051 §6.4.4 asks.

use mail_parser::{HeaderValue, MessageParser};
use rampart_core::MessageSummary;
use rampart_core::store::SystemFlags;

use crate::command::SearchKey;

/// Decoded, lower-cased text of a message for header and body keys.
pub struct SearchText {
    /// (lower-case field name, lower-case decoded value).
    headers: Vec<(String, String)>,
    /// Lower-case decoded text of the text parts.
    body: String,
}

impl SearchText {
    /// Decodes a raw message for searching.
    pub fn new(raw: &[u8]) -> Self {
        let Some(message) = MessageParser::default().parse(raw) else {
            let text = String::from_utf8_lossy(raw).to_lowercase();
            return SearchText {
                headers: Vec::new(),
                body: text,
            };
        };
        let mut headers = Vec::new();
        for h in message.headers() {
            let value = match h.value() {
                HeaderValue::Text(t) => t.to_string(),
                HeaderValue::TextList(l) => l.join(" "),
                HeaderValue::Address(a) => a
                    .iter()
                    .map(|addr| {
                        format!(
                            "{} <{}>",
                            addr.name().unwrap_or(""),
                            addr.address().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => {
                    let (s, e) = (h.offset_start() as usize, h.offset_end() as usize);
                    String::from_utf8_lossy(raw.get(s..e).unwrap_or_default())
                        .trim()
                        .to_owned()
                }
            };
            headers.push((h.name().to_ascii_lowercase(), value.to_lowercase()));
        }
        let mut body = String::new();
        for i in 0..message.text_body_count() {
            if let Some(t) = message.body_text(i) {
                body.push_str(&t.to_lowercase());
                body.push('\n');
            }
        }
        SearchText { headers, body }
    }

    fn header_contains(&self, name: &str, needle: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.contains(needle))
    }
}

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
    pub text: Option<&'a SearchText>,
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
        // Rampart never sets \Recent (RFC 9051 removed it).
        SearchKey::Recent | SearchKey::New => false,
        SearchKey::Old => true,
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
            .is_some_and(|t| t.body.contains(&needle.to_lowercase())),
        SearchKey::Text(needle) => c.text.is_some_and(|t| {
            let needle = needle.to_lowercase();
            t.body.contains(&needle)
                || t.headers
                    .iter()
                    .any(|(n, v)| n.contains(&needle) || v.contains(&needle))
        }),
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
    match c.summary.and_then(|s| s.date) {
        Some(secs) => Some(secs.div_euclid(86_400)),
        None => Some(day_of(c.received_at)),
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

/// The base subject of RFC 5256 §2.1, lower-cased, for SORT and THREAD.
pub fn base_subject(subject: &str) -> String {
    let mut s = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let before = s.clone();
        // Trailing "(fwd)" and blobs are dropped, then leading re:/fwd:/fw:.
        while let Some(rest) = s.strip_suffix("(fwd)") {
            s = rest.trim_end().to_owned();
        }
        let lower = s.to_lowercase();
        for prefix in ["re:", "fwd:", "fw:", "aw:", "wg:"] {
            if lower.starts_with(prefix) {
                s = s[prefix.len()..].trim_start().to_owned();
                break;
            }
        }
        if let Some(rest) = s.strip_prefix('[')
            && let Some(end) = rest.find(']')
            && !rest[end + 1..].trim().is_empty()
        {
            s = rest[end + 1..].trim_start().to_owned();
        }
        if s == before {
            break;
        }
    }
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{SequenceSet, parse_date};

    #[test]
    fn matches_keys() {
        let raw = "From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: Hallo\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Sch=F6ne Gr=FC=DFe\r\n";
        let text = SearchText::new(raw.as_bytes());
        let keywords = vec!["$Important".to_string()];
        let c = Candidate {
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
        assert_eq!(
            base_subject("Re: AW: [list] Fwd: Hello  World (fwd)"),
            "hello world"
        );
    }
}
