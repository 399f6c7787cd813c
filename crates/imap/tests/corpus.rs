//! ENVELOPE, BODYSTRUCTURE and body sections of a corpus of real-world-style
//! messages (tests/corpus/*.eml: nested multiparts and message/rfc822 parts,
//! odd charsets, malformed headers, 8-bit and binary content, RFC 2231
//! names, groups and source routes) against what Dovecot answers for the
//! same bytes (tests/corpus/*.dovecot, recorded by tests/dovecot-expected.sh;
//! the sections fetched are listed in tests/corpus/sections.txt). Messages
//! with binary content are compared as APPEND stores them, after
//! `encode_binary_parts`, as Dovecot converts them at an APPEND of literal8.

use std::fs;
use std::path::Path;

use rampart_imap::command::{Section, SectionText};
use rampart_imap::mime::{self, DecodeError, Mime};
use rampart_imap::render;

/// Writes literals that hold short printable ASCII as quoted strings, so that
/// the comparison does not depend on which of the two equal forms a server
/// chose (Dovecot sends text that had a tab in the message as a literal).
fn normalize(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let parsed = after.find("}\\n").and_then(|close| {
            let n: usize = after[..close].parse().ok()?;
            let body = after.get(close + 3..close + 3 + n)?;
            Some((close + 3 + n, body))
        });
        match parsed {
            Some((len, body))
                if body
                    .bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') =>
            {
                out.push_str(&rest[..open]);
                out.push('"');
                out.push_str(body);
                out.push('"');
                rest = &after[len..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn strip_parens(s: &str) -> &str {
    s.strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(s)
}

#[test]
fn envelope_and_bodystructure_match_dovecot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "corpus too small: {}", names.len());
    let mut failures = Vec::new();
    for path in &names {
        let raw = fs::read(path).unwrap();
        let raw = mime::encode_binary_parts(&raw).unwrap_or(raw);
        let expected = fs::read_to_string(path.with_extension("dovecot"))
            .unwrap_or_else(|_| panic!("no Dovecot record for {}", path.display()));
        let mut lines = expected.lines();
        let (want_env, want_body) = (lines.next().unwrap(), lines.next().unwrap());
        let mime = Mime::parse(&raw);
        let name = path.file_name().unwrap().to_string_lossy();
        let lines: Vec<&str> = lines.collect();
        for line in &lines {
            let mut fields = line.splitn(3, '\t');
            let (item, form, data) = (
                fields.next().unwrap(),
                fields.next().unwrap(),
                fields.next().unwrap_or(""),
            );
            let mut want = (form.to_owned(), unescape(data));
            // RFC 3516 §4.2: BINARY.SIZE is the size of what BINARY returns.
            // Dovecot 2.3 counts differently for quoted-printable with white
            // space before a soft line break, so its BINARY answer, where
            // recorded, is what the size must match.
            let binary = item.strip_prefix("BINARY.SIZE").and_then(|spec| {
                let label = format!("BINARY{spec}\t");
                lines.iter().find_map(|l| l.strip_prefix(label.as_str()))
            });
            if let Some(("string" | "literal8", data)) = binary.and_then(|b| b.split_once('\t')) {
                want = (
                    "number".to_owned(),
                    unescape(data).len().to_string().into_bytes(),
                );
            }
            let got = fetch(&mime, item);
            // RFC 3516 §4.3: 8-bit data without NUL may go as either string
            // or literal8 (Dovecot sends literal8, Rampart a string).
            let same_form = got.0 == want.0
                || (got.0 == "string" && want.0 == "literal8" && !want.1.contains(&0));
            if !same_form || got.1 != want.1 {
                failures.push(format!(
                    "{name} {item}\n  rampart: {} {:?}\n  dovecot: {} {:?}",
                    got.0,
                    String::from_utf8_lossy(&got.1),
                    want.0,
                    String::from_utf8_lossy(&want.1)
                ));
            }
        }
        let mut env = Vec::new();
        render::envelope(&mut env, &mime, &mime.root);
        let mut body = Vec::new();
        render::body_structure(&mut body, &mime, &mime.root, true);
        // doveadm prints a literal's CRLF as a bare LF; compare likewise.
        let (env, body) = (
            String::from_utf8_lossy(&env).replace("\r\n", "\\n"),
            String::from_utf8_lossy(&body).replace("\r\n", "\\n"),
        );
        let (env, body) = (normalize(&env), normalize(&body));
        let (want_env, want_body) = (normalize(want_env), normalize(want_body));
        if strip_parens(&env) != want_env {
            failures.push(format!(
                "{name} ENVELOPE\n  rampart: {}\n  dovecot: {want_env}",
                strip_parens(&env)
            ));
        }
        if strip_parens(&body) != want_body {
            failures.push(format!(
                "{name} BODYSTRUCTURE\n  rampart: {}\n  dovecot: {want_body}",
                strip_parens(&body)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} messages differ from Dovecot:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// Undoes corpus-record.py's escapes (\\, \r, \n, \t, \xHH).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'x' => {
                out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                i += 2;
            }
            other => out.push(other),
        }
        i += 2;
    }
    out
}

/// `BODY[2.1.MIME]` as (name, part numbers, text).
fn parse_item(item: &str) -> (&str, Vec<u32>, Option<SectionText>) {
    let (name, rest) = item.split_once('[').unwrap();
    let spec = rest.strip_suffix(']').unwrap();
    let mut part = Vec::new();
    let mut text = None;
    for piece in spec.split('.').filter(|p| !p.is_empty()) {
        match piece.parse() {
            Ok(n) if text.is_none() => part.push(n),
            _ => {
                text = Some(match piece {
                    "HEADER" => SectionText::Header,
                    "TEXT" => SectionText::Text,
                    "MIME" => SectionText::Mime,
                    other => panic!("unsupported section text {other} in {item}"),
                })
            }
        }
    }
    (name, part, text)
}

/// Rampart's answer to one FETCH item, in corpus-record.py's forms.
fn fetch(m: &Mime<'_>, item: &str) -> (String, Vec<u8>) {
    let (name, part, text) = parse_item(item);
    let no = |code: &str| ("NO".to_owned(), code.as_bytes().to_vec());
    match name {
        "BODY" => match m.section(&Section { part, text }) {
            // RFC 9051 §4.3: a literal cannot carry NUL.
            Some(d) if d.contains(&0) => no("NUL in a BODY section"),
            Some(d) => ("string".to_owned(), d),
            None => ("NIL".to_owned(), Vec::new()),
        },
        "BINARY" => match m.binary(&part) {
            Some(Ok(d)) if d.contains(&0) => ("literal8".to_owned(), d),
            Some(Ok(d)) => ("string".to_owned(), d),
            Some(Err(DecodeError::UnknownEncoding(_))) => no("[UNKNOWN-CTE]"),
            Some(Err(DecodeError::Corrupt(_))) => no("[PARSE]"),
            None => ("NIL".to_owned(), Vec::new()),
        },
        "BINARY.SIZE" => match m.binary(&part) {
            Some(Ok(d)) => ("number".to_owned(), d.len().to_string().into_bytes()),
            Some(Err(_)) => no("[UNKNOWN-CTE]"),
            None => ("NIL".to_owned(), Vec::new()),
        },
        other => panic!("unsupported item {other}"),
    }
}
