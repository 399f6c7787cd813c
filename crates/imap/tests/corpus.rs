//! ENVELOPE and BODYSTRUCTURE of a corpus of real-world-style messages
//! (tests/corpus/*.eml: nested multiparts, odd charsets, malformed headers,
//! 8-bit, RFC 2231 names) against what Dovecot answers for the same bytes
//! (tests/corpus/*.dovecot, recorded by tests/dovecot-expected.sh).

use std::fs;
use std::path::Path;

use rampart_imap::mime::Mime;
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
        let expected = fs::read_to_string(path.with_extension("dovecot"))
            .unwrap_or_else(|_| panic!("no Dovecot record for {}", path.display()));
        let mut lines = expected.lines();
        let (want_env, want_body) = (lines.next().unwrap(), lines.next().unwrap());
        let mime = Mime::parse(&raw);
        let mut env = Vec::new();
        render::envelope(&mut env, &mime, &mime.root);
        let mut body = Vec::new();
        render::body_structure(&mut body, &mime, &mime.root, true);
        // doveadm prints a literal's CRLF as a bare LF; compare likewise.
        let (env, body) = (
            String::from_utf8_lossy(&env).replace("\r\n", "\\n"),
            String::from_utf8_lossy(&body).replace("\r\n", "\\n"),
        );
        let name = path.file_name().unwrap().to_string_lossy();
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
