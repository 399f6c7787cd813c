//! Tests of part numbering and sections (RFC 9051 §6.4.5).

use super::*;

const MSG: &[u8] = b"From: \"Doe, Jane\" <jane@example.org>\r\n\
Subject: test\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
plain\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<b>html</b>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n\
--outer\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGVsbG8gd29y\r\n\
bGQ=\r\n\
--outer--\r\n";

#[test]
fn finds_parts_and_sections() {
    let m = Mime::parse(MSG);
    let PartKind::Multipart(parts) = &m.root.kind else {
        panic!()
    };
    assert_eq!(parts.len(), 3);
    let sec = |p: Vec<u32>, t: Option<SectionText>| {
        m.section(&Section { part: p, text: t })
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(sec(vec![1, 1], None).as_deref(), Some("plain"));
    assert_eq!(sec(vec![1, 2], None).as_deref(), Some("<b>html</b>"));
    assert_eq!(
        sec(vec![2], Some(SectionText::Header)).as_deref(),
        Some("Subject: inner\r\n\r\n")
    );
    assert_eq!(
        sec(vec![2], Some(SectionText::Text)).as_deref(),
        Some("inner body")
    );
    assert_eq!(sec(vec![2, 1], None).as_deref(), Some("inner body"));
    assert_eq!(
        sec(vec![1, 1], Some(SectionText::Mime)).as_deref(),
        Some("Content-Type: text/plain; charset=utf-8\r\n\r\n")
    );
    assert_eq!(
        sec(
            vec![],
            Some(SectionText::HeaderFields(vec!["SUBJECT".into()]))
        )
        .as_deref(),
        Some("Subject: test\r\n\r\n")
    );
    assert_eq!(sec(vec![4], None), None);
    assert_eq!(m.binary(&[3]).unwrap().unwrap(), b"hello world");
}

/// The example of RFC 9051 §6.4.5, with each part's content naming it.
const RFC_EXAMPLE: &[u8] = b"Subject: top\r\nContent-Type: MULTIPART/MIXED; boundary=a\r\n\r\n\
--a\r\nContent-Type: TEXT/PLAIN\r\n\r\n1\r\n\
--a\r\nContent-Type: APPLICATION/OCTET-STREAM\r\n\r\n2\r\n\
--a\r\nContent-Type: MESSAGE/RFC822\r\n\r\n\
Subject: three\r\nContent-Type: MULTIPART/MIXED; boundary=b\r\n\r\n\
--b\r\nContent-Type: TEXT/PLAIN\r\n\r\n3.1\r\n\
--b\r\nContent-Type: APPLICATION/OCTET-STREAM\r\n\r\n3.2\r\n\
--b--\r\n\
--a\r\nContent-Type: MULTIPART/MIXED; boundary=c\r\n\r\n\
--c\r\nContent-Type: IMAGE/GIF\r\n\r\n4.1\r\n\
--c\r\nContent-Type: MESSAGE/RFC822\r\n\r\n\
Subject: four-two\r\nContent-Type: MULTIPART/MIXED; boundary=d\r\n\r\n\
--d\r\nContent-Type: TEXT/PLAIN\r\n\r\n4.2.1\r\n\
--d\r\nContent-Type: MULTIPART/ALTERNATIVE; boundary=e\r\n\r\n\
--e\r\nContent-Type: TEXT/PLAIN\r\n\r\n4.2.2.1\r\n\
--e\r\nContent-Type: TEXT/RICHTEXT\r\n\r\n4.2.2.2\r\n\
--e--\r\n--d--\r\n--c--\r\n--a--\r\n";

fn get(raw: &[u8], spec: &str) -> Option<String> {
    let (part, text) = match spec.rsplit_once('.') {
        Some((p, t)) if t.chars().all(|c| c.is_ascii_alphabetic()) => (p, Some(t)),
        _ if spec.chars().all(|c| c.is_ascii_alphabetic()) => ("", Some(spec)),
        _ => (spec, None),
    };
    let part = part
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect();
    let text = text.map(|t| match t {
        "HEADER" => SectionText::Header,
        "TEXT" => SectionText::Text,
        "MIME" => SectionText::Mime,
        other => panic!("{other}"),
    });
    Mime::parse(raw)
        .section(&Section { part, text })
        .map(|v| String::from_utf8(v).unwrap())
}

#[test]
fn numbers_parts_as_rfc_9051_example() {
    for (spec, body) in [
        ("1", "1"),
        ("2", "2"),
        ("3.1", "3.1"),
        ("3.2", "3.2"),
        ("4.1", "4.1"),
        ("4.2.1", "4.2.1"),
        ("4.2.2.1", "4.2.2.1"),
        ("4.2.2.2", "4.2.2.2"),
    ] {
        assert_eq!(get(RFC_EXAMPLE, spec).as_deref(), Some(body), "{spec}");
    }
    let header = |s: &str| format!("Subject: {s}\r\n");
    assert!(
        get(RFC_EXAMPLE, "HEADER")
            .unwrap()
            .starts_with(&header("top"))
    );
    assert!(
        get(RFC_EXAMPLE, "3.HEADER")
            .unwrap()
            .starts_with(&header("three"))
    );
    assert!(get(RFC_EXAMPLE, "3.TEXT").unwrap().starts_with("--b\r\n"));
    assert!(get(RFC_EXAMPLE, "3").unwrap().starts_with(&header("three")));
    assert!(
        get(RFC_EXAMPLE, "4.2.HEADER")
            .unwrap()
            .starts_with(&header("four-two"))
    );
    assert!(get(RFC_EXAMPLE, "4.2.TEXT").unwrap().starts_with("--d\r\n"));
    assert_eq!(
        get(RFC_EXAMPLE, "4.1.MIME").as_deref(),
        Some("Content-Type: IMAGE/GIF\r\n\r\n")
    );
    // HEADER and TEXT exist only for the message and message/rfc822 parts.
    assert_eq!(get(RFC_EXAMPLE, "1.HEADER"), None);
    assert_eq!(get(RFC_EXAMPLE, "4.TEXT"), None);
    assert_eq!(get(RFC_EXAMPLE, "5"), None);
    assert_eq!(get(RFC_EXAMPLE, "1.1"), None);
    assert_eq!(get(RFC_EXAMPLE, "0"), None);
}

/// RFC 9051 §6.4.5: a message that is not multipart has one part, its body;
/// when that body is a message/rfc822, 1.HEADER and 1.TEXT are the embedded
/// message's, and 1.1 its body (or, multipart, its first part).
#[test]
fn numbers_parts_of_a_message_rfc822_message() {
    let single = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\n\r\ninner body\r\n";
    assert_eq!(
        get(single, "1").as_deref(),
        Some("Subject: inner\r\n\r\ninner body\r\n")
    );
    assert_eq!(
        get(single, "1.HEADER").as_deref(),
        Some("Subject: inner\r\n\r\n")
    );
    assert_eq!(get(single, "1.TEXT").as_deref(), Some("inner body\r\n"));
    assert_eq!(get(single, "1.1").as_deref(), Some("inner body\r\n"));
    assert_eq!(
        get(single, "1.1.MIME").as_deref(),
        Some("Subject: inner\r\n\r\n")
    );
    assert_eq!(get(single, "1.2"), None);
    assert_eq!(get(single, "2"), None);
    let m = Mime::parse(single);
    assert_eq!(m.binary(&[1, 1]).unwrap().unwrap(), b"inner body\r\n");

    let nested = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n\
--x\r\nContent-Type: text/plain\r\n\r\none\r\n\
--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: deepest\r\n\r\ndeep body\r\n\
--x--\r\n";
    assert_eq!(get(nested, "1.1").as_deref(), Some("one"));
    assert_eq!(
        get(nested, "1.1.MIME").as_deref(),
        Some("Content-Type: text/plain\r\n\r\n")
    );
    assert_eq!(
        get(nested, "1.2.HEADER").as_deref(),
        Some("Subject: deepest\r\n\r\n")
    );
    assert_eq!(get(nested, "1.2.1").as_deref(), Some("deep body"));
    assert_eq!(
        get(nested, "1.2.1.MIME").as_deref(),
        Some("Subject: deepest\r\n\r\n")
    );
}
