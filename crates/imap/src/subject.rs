//! The base subject of RFC 5256 §2.1, which SORT SUBJECT and both THREAD
//! algorithms compare, and whether a subject marks a reply or forward
//! (RFC 5256 §3, REFERENCES step 5).

/// The base subject of a decoded subject, case-mapped for comparison: the
/// i;ascii-casemap collation (RFC 4790 §9.2) that RFC 5256 §2.1 compares
/// with maps a-z to A-Z and compares octets, so keys compare with `Ord`.
pub fn base_subject(subject: &str) -> String {
    casemap(&extract(subject).base)
}

/// Whether extracting the base subject removed a `subj-refwd`, a `(fwd)`
/// trailer or a `[fwd: ...]` wrapper: RFC 5256 §3's "reply or forward".
pub fn is_reply_or_forward(subject: &str) -> bool {
    extract(subject).reply_or_forward
}

/// The i;ascii-casemap form of a string (RFC 4790 §9.2): ASCII letters
/// upper-cased, every other octet as it is, so `_` and `[` sort after letters.
pub fn casemap(s: &str) -> String {
    s.to_ascii_uppercase()
}

/// What the extraction of RFC 5256 §2.1 yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// The base subject, not yet case-mapped.
    pub base: String,
    /// Whether a reply or forward marker was removed on the way.
    pub reply_or_forward: bool,
}

/// RFC 5256 §2.1 steps (1) to (7), on an already decoded subject (step 1's
/// encoded-word conversion is the caller's: the summary keeps subjects decoded).
pub fn extract(subject: &str) -> Extracted {
    // (1) Tabs and continuations become spaces; runs of spaces become one.
    let mut s = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if !(c == ' ' && s.ends_with(' ')) {
            s.push(c);
        }
    }
    let mut reply_or_forward = false;
    loop {
        // (2) subj-trailer = "(fwd)" / WSP, removed until none is left.
        loop {
            if s.ends_with(' ') {
                s.pop();
            } else if s.len() >= 5 && s.as_bytes()[s.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                s.truncate(s.len() - 5);
                reply_or_forward = true;
            } else {
                break;
            }
        }
        // (3)-(5) leaders and blobs, until neither is left.
        let mut start = 0;
        loop {
            let rest = &s.as_bytes()[start..];
            // (3) subj-leader = (*subj-blob subj-refwd) / WSP
            if rest.first() == Some(&b' ') {
                start += 1;
            } else if let Some(n) = leader_refwd(rest) {
                start += n;
                reply_or_forward = true;
            // (4) A leading subj-blob goes when something is left after it.
            } else if let Some(n) = blob(rest)
                && n < rest.len()
            {
                start += n;
            } else {
                break;
            }
        }
        s.drain(..start);
        // (6) "[fwd:" ... "]" around the whole text is removed, then again from (2).
        let b = s.as_bytes();
        if b.len() >= 6 && b[..5].eq_ignore_ascii_case(b"[fwd:") && b[b.len() - 1] == b']' {
            s.truncate(s.len() - 1);
            s.drain(..5);
            reply_or_forward = true;
        } else {
            break;
        }
    }
    Extracted {
        base: s,
        reply_or_forward,
    }
}

/// Length of `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start, if there is one.
/// BLOBCHAR is any octet but `[` and `]` (and NUL).
fn blob(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = b[1..].iter().position(|&c| matches!(c, b'[' | b']' | 0))? + 1;
    if b[close] != b']' {
        return None;
    }
    Some(close + 1 + spaces(&b[close + 1..]))
}

fn spaces(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b' ').count()
}

/// Length of `*subj-blob subj-refwd` at the start, if there is one, where
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"` (case-insensitive,
/// as ABNF strings are).
fn leader_refwd(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(n) = blob(&b[i..]) {
        i += n;
    }
    let word = &b[i..];
    let lower = |k: usize| word.get(k).map(u8::to_ascii_lowercase);
    i += match (lower(0), lower(1), lower(2)) {
        (Some(b'r'), Some(b'e'), _) => 2,
        (Some(b'f'), Some(b'w'), Some(b'd')) => 3,
        (Some(b'f'), Some(b'w'), _) => 2,
        _ => return None,
    };
    i += spaces(&b[i..]);
    if let Some(n) = blob(&b[i..]) {
        i += n;
    }
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        // (subject, base subject before case-mapping, reply or forward)
        let table: &[(&str, &str, bool)] = &[
            ("", "", false),
            ("Hello", "Hello", false),
            // (1) tabs, continuations and runs of spaces.
            ("  Re:   hi  ", "hi", true),
            ("Hello\t\r\n  World", "Hello World", false),
            // subj-refwd: "re", "fw", "fwd", any case, optional WSP and blob before ":".
            ("Re: x", "x", true),
            ("RE: x", "x", true),
            ("re:re:x", "x", true),
            ("Re: Re: Re: x", "x", true),
            ("Fw: x", "x", true),
            ("FWD: x", "x", true),
            ("fWd : x", "x", true),
            ("Fwd[2]: x", "x", true),
            ("Re [3] : x", "x", true),
            ("Re[2]:Re[3]: x", "x", true),
            // Not subj-refwd: other words, other languages' prefixes, no colon.
            ("Review: x", "Review: x", false),
            ("Re x", "Re x", false),
            ("AW: x", "AW: x", false),
            ("Fwdd: x", "Fwdd: x", false),
            ("Re:", "", true),
            // subj-leader: blobs before a subj-refwd go with it.
            ("[foo] Re: bar", "bar", true),
            ("[a][b] Fwd: bar", "bar", true),
            // (4) a leading blob goes unless it is all that is left.
            ("[list] bar", "bar", false),
            ("[a] [b] bar", "bar", false),
            ("[blob]", "[blob]", false),
            ("[a] [b]", "[b]", false),
            ("Re: [list]", "[list]", true),
            ("[unclosed bar", "[unclosed bar", false),
            // (2) trailers, repeatedly, any case.
            ("x (fwd)", "x", true),
            ("x (FWD) (fwd)  ", "x", true),
            ("x(fwd)", "x", true),
            ("(fwd)", "", true),
            ("x (fwd) y", "x (fwd) y", false),
            ("Re: [foo] Re: bar (fwd)", "bar", true),
            // (6) [fwd: ...] around everything, then again from (2).
            ("[fwd: x]", "x", true),
            ("[fwd: Re: x]", "x", true),
            ("[FWD: [list] x (fwd)]", "x", true),
            ("[fwd: x] y", "y", false),
            ("[fwd: [fwd: x]]", "x", true),
            ("[fwd:]", "", true),
            // Non-ASCII text passes through as it is (BLOBCHAR takes 8-bit octets).
            ("Re: [Liste für] Grüße", "Grüße", true),
            ("AW: Grüße", "AW: Grüße", false),
        ];
        for &(subject, base, reply) in table {
            assert_eq!(
                extract(subject),
                Extracted {
                    base: base.to_string(),
                    reply_or_forward: reply,
                },
                "{subject:?}"
            );
            assert_eq!(base_subject(subject), base.to_ascii_uppercase());
            assert_eq!(is_reply_or_forward(subject), reply);
        }
    }

    #[test]
    fn casemap_orders_as_ascii_casemap() {
        // i;ascii-casemap upper-cases, so "_" (0x5F) and "[" (0x5B) sort after
        // every letter, and case does not matter.
        assert_eq!(casemap("abc_Ü"), "ABC_Ü");
        assert!(base_subject("_x") > base_subject("zebra"));
        assert!(base_subject("Re: [x") > base_subject("Zulu"));
        assert_eq!(
            base_subject("Re: HELLO world"),
            base_subject("hello WORLD (fwd)")
        );
        assert!(base_subject("apple") < base_subject("Banana"));
    }
}
