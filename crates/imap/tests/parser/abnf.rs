//! RFC 9051 §9 at its edges.

use super::*;

// RFC 9051 §9: `[` is an ATOM-CHAR, `]` an ASTRING-CHAR (only `]` is
// resp-special); list-char adds the wildcards. Brackets are structure only
// inside a FETCH section.

#[test]
fn brackets_in_mailbox_names() {
    for name in ["a[b", "a]b", "[", "]", "[]", "a[b]c", "][", "Work[2026]"] {
        assert_eq!(
            ok(&format!("x CREATE {name}")),
            Command::Create(name.into())
        );
        assert_eq!(
            ok(&format!("x DELETE {name}")),
            Command::Delete(name.into())
        );
        let Command::Select { mailbox, .. } = ok(&format!("x SELECT {name}")) else {
            panic!()
        };
        assert_eq!(mailbox, name);
        let Command::Select { mailbox, .. } = ok(&format!("x EXAMINE {name}")) else {
            panic!()
        };
        assert_eq!(mailbox, name);
        let Command::Status { mailbox, .. } = ok(&format!("x STATUS {name} (MESSAGES)")) else {
            panic!()
        };
        assert_eq!(mailbox, name);
        assert_eq!(
            ok(&format!("x RENAME {name} {name}x")),
            Command::Rename(name.into(), format!("{name}x"))
        );
    }
    for (line, reference, pattern) in [
        ("x LIST \"\" a[b", "", "a[b"),
        ("x LIST \"\" a]b%", "", "a]b%"),
        ("x LIST a[ *]", "a[", "*]"),
        ("x LIST \"\" [*", "", "[*"),
        ("x LSUB \"\" a[b*", "", "a[b*"),
    ] {
        let Command::List {
            reference: r,
            patterns,
            ..
        } = ok(line)
        else {
            panic!("{line}")
        };
        assert_eq!(
            (r.as_str(), patterns),
            (reference, vec![pattern.to_string()])
        );
    }
    // A word that starts like a FETCH item takes no section elsewhere.
    assert_eq!(ok("x CREATE body[x"), Command::Create("body[x".into()));
    assert_eq!(ok("x CREATE BODY[]"), Command::Create("BODY[]".into()));
    let Command::Copy { mailbox, .. } = ok("x COPY 1 BINARY[a") else {
        panic!()
    };
    assert_eq!(mailbox, "BINARY[a");
    // ...and a section with a space in it is no astring: two arguments.
    bad("x CREATE BODY[a b]");
    // Never the old "Unterminated '['" for a name.
    for line in ["x CREATE a[b", "x SELECT [", "x LIST \"\" [%"] {
        assert!(parse(line).is_ok(), "{line}");
    }
}

#[test]
fn brackets_in_fetch_sections_and_flags() {
    let fetch = |line: &str| match ok(line) {
        Command::Fetch { atts, .. } => atts,
        c => panic!("{line}: {c:?}"),
    };
    let atts = fetch("x FETCH 1 (body.peek[1.2.mime] BINARY[1]<0.10> BINARY.SIZE[2] BODY[])");
    assert_eq!(
        atts[0],
        FetchAtt::Section {
            name: SectionName::Body,
            peek: true,
            section: Section {
                part: vec![1, 2],
                text: Some(SectionText::Mime)
            },
            partial: None
        }
    );
    assert_eq!(
        atts[1],
        FetchAtt::Section {
            name: SectionName::Binary,
            peek: false,
            section: Section {
                part: vec![1],
                text: None
            },
            partial: Some((0, 10))
        }
    );
    assert_eq!(atts[2], FetchAtt::BinarySize(vec![2]));
    // header-fld-name is an astring: quoted (with `]` and escapes) or an
    // atom that may hold `]`.
    let atts = fetch("x FETCH 1 BODY[HEADER.FIELDS.NOT (\"X]Y\" \"a\\\"b\" Subject)]<5.7>");
    assert_eq!(
        atts,
        vec![FetchAtt::Section {
            name: SectionName::Body,
            peek: false,
            section: Section {
                part: vec![],
                text: Some(SectionText::HeaderFieldsNot(vec![
                    "X]Y".into(),
                    "a\"b".into(),
                    "Subject".into()
                ]))
            },
            partial: Some((5, 7))
        }]
    );
    for line in [
        "x FETCH 1 BODY[",
        "x FETCH 1 BODY[1.]",
        "x FETCH 1 BODY[.1]",
        "x FETCH 1 BODY[0]",
        "x FETCH 1 BODY[MIME]",
        "x FETCH 1 BODY[1HEADER]",
        "x FETCH 1 BODY[HEADER.FIELDS ()]",
        "x FETCH 1 BODY[HEADER.FIELDS]",
        "x FETCH 1 BODY[TEXT (a)]",
        "x FETCH 1 BINARY[1.TEXT]",
        "x FETCH 1 BINARY.SIZE[1]<0.5>",
        "x FETCH 1 BODY[]<0.0>",
        "x FETCH 1 BODY[]<5>",
        "x FETCH 1 ()",
    ] {
        bad(line);
    }
    // flag-keyword is an atom: `[` may be in it, `]` `%` `*` `\` not.
    let Command::Store { flags, .. } = ok("x STORE 1 +FLAGS (a[b \\Seen $Junk)") else {
        panic!()
    };
    assert_eq!(flags, vec!["a[b", "\\Seen", "$Junk"]);
    let Command::Store { flags, .. } = ok("x STORE 1 FLAGS \\Seen \\Answered") else {
        panic!()
    };
    assert_eq!(flags, vec!["\\Seen", "\\Answered"]);
    for line in [
        "x STORE 1 +FLAGS (a]b)",
        "x STORE 1 +FLAGS (a%b)",
        "x STORE 1 +FLAGS (a*)",
        "x STORE 1 +FLAGS (\\*)",
        "x STORE 1 +FLAGS (a\\b)",
        "x STORE 1 +FLAGS (\\)",
        "x STORE 1 +FLAGS a]b",
        "x SEARCH KEYWORD a]b",
        "x SEARCH UNKEYWORD \\Seen",
        "x APPEND box (a]b) {1+}\r\nx",
    ] {
        bad(line);
    }
    assert!(matches!(
        ok("x SEARCH KEYWORD a[b"),
        Command::Search { key: SearchKey::Keyword(k), .. } if k == "a[b"
    ));
}

// date = date-text / DQUOTE date-text DQUOTE; date-day = 1*2DIGIT;
// date-year = 4DIGIT. A day the month does not have is no date.

#[test]
fn search_dates_must_exist() {
    for key in ["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"] {
        for date in [
            "31-Feb-2026",
            "29-Feb-2023",
            "29-Feb-1900",
            "31-Apr-2026",
            "31-Jun-2026",
            "31-Sep-2026",
            "31-Nov-2026",
            "32-Jan-2026",
            "0-Jan-2026",
            "00-Jan-2026",
            "001-Jan-2026",
            "1-Jan-26",
            "1-Jan-02026",
            "+1-Jan-2026",
            "1-Jan-+202",
            "1-Jnu-2026",
            "1 Jan 2026",
            "1-Jan-2026-1",
        ] {
            let e = bad(&format!("x SEARCH {key} {date}"));
            assert!(e.contains("Invalid date"), "{key} {date}: {e}");
        }
    }
    for (date, (y, m, d)) in [
        ("29-Feb-2024", (2024, 2, 29)),
        ("29-Feb-2000", (2000, 2, 29)),
        ("28-Feb-2023", (2023, 2, 28)),
        ("30-Apr-2026", (2026, 4, 30)),
        ("31-Dec-2026", (2026, 12, 31)),
        ("1-feb-1994", (1994, 2, 1)),
        ("01-FEB-1994", (1994, 2, 1)),
        ("\"1-Feb-1994\"", (1994, 2, 1)),
    ] {
        let (_, _, key) = search(&format!("x SEARCH SINCE {date}"));
        assert_eq!(key, SearchKey::Since(days_from_civil(y, m, d)), "{date}");
    }
    assert_eq!(parse_date("1-Jan-1970"), Some(0));
    assert_eq!(parse_date("31-Feb-2026"), None);
}

fn append_date(date: &str) -> Result<Option<i64>, String> {
    let results = parse_wire(format!("x APPEND box \"{date}\" {{1+}}\r\nm\r\n").as_bytes());
    match &results[..] {
        [Ok(Command::Append { date, .. })] => Ok(*date),
        [Err(e)] => Err(e.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn append_date_times_must_exist() {
    // date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP
    // time SP zone DQUOTE
    assert_eq!(
        append_date("17-Jul-1996 02:44:25 -0700"),
        Ok(Some(837596665000))
    );
    assert_eq!(
        append_date(" 7-Feb-1994 21:52:25 -0800"),
        append_date("07-Feb-1994 21:52:25 -0800")
    );
    assert_eq!(append_date(" 1-Jan-1970 01:00:00 +0100"), Ok(Some(0)));
    assert_eq!(append_date("01-Jan-1970 00:00:00 +0000"), Ok(Some(0)));
    assert_eq!(append_date("31-Dec-1969 23:00:00 -0100"), Ok(Some(0)));
    assert!(append_date("29-Feb-2024 23:59:60 +9959").is_ok());
    for date in [
        "29-Feb-2023 12:00:00 +0000",
        "31-Feb-2026 12:00:00 +0000",
        "31-Apr-2026 12:00:00 +0000",
        "01-Jan-2026 24:00:00 +0000",
        "01-Jan-2026 12:60:00 +0000",
        "01-Jan-2026 12:00:61 +0000",
        "01-Jan-2026 12:00:00 -9999",
        "01-Jan-2026 12:00:00 +0060",
        "01-Jan-2026 12:00:00 +00:00",
        "01-Jan-2026 12:00:00 0000",
        "01-Jan-2026 12:00:00 +000",
        "01-Jan-2026 12:00:00 +00000",
        "01-Jan-2026 12:00:00 GMT",
        "01-Jan-2026 12:00:00",
        "01-Jan-2026 2:00:00 +0000",
        "01-Jan-2026 +1:00:00 +0000",
        "01-Jan-2026 12:00 +0000",
        "01-Jan-2026 12:00:00:00 +0000",
        "01-Jan-2026  12:00:00 +0000",
        "01-Jan-2026 12:00:00 +0000 x",
        "01-Jan-26 12:00:00 +0000",
        "",
    ] {
        let e = append_date(date).expect_err(date);
        assert!(e.contains("Invalid date-time"), "{date}: {e}");
    }
}

#[test]
fn quoted_strings_and_literals() {
    // quoted-specials are escaped with "\"; nothing else may be.
    assert_eq!(
        ok(r#"x LOGIN "a\"b" "c\\d""#),
        Command::Login {
            user: "a\"b".into(),
            password: "c\\d".into()
        }
    );
    assert_eq!(
        ok("x LOGIN \"\" \"\""),
        Command::Login {
            user: String::new(),
            password: String::new()
        }
    );
    for line in [
        r#"x LOGIN "a\b" c"#,
        r#"x LOGIN "a\" c"#,
        "x LOGIN \"abc",
        "x LOGIN \"a\rb\" c",
    ] {
        bad(line);
    }
    // A literal holds CR and LF; CHAR8 excludes NUL, so no astring has one.
    let results = parse_wire(b"x LOGIN {4}\r\na\r\nb {0}\r\n\r\n");
    assert_eq!(
        results,
        vec![Ok(Command::Login {
            user: "a\r\nb".into(),
            password: String::new()
        })]
    );
    let results = parse_wire(b"x LOGIN {3+}\r\na\0b c\r\n");
    assert!(matches!(&results[..], [Err(_)]));
    // LITERAL+ and LITERAL- both write `{n+}` (RFC 7888 §5); `{n-}` is no
    // literal, so the framer waits for nothing and the command is a BAD.
    let mut framer = Framer::new(FRAME);
    framer.push(b"x LOGIN {3-}\r\n");
    let Some(Frame::Command(raw)) = framer.next_frame() else {
        panic!()
    };
    assert!(tokenize(&raw, 8).is_err());
    // literal8 (RFC 3516 §4.3) may carry NUL, and is for APPEND only.
    let results =
        parse_wire(b"x APPEND box (\\Seen) ~{5}\r\na\0b\0c\r\ny APPEND box ~{2+}\r\n\0\0\r\n");
    assert_eq!(results.len(), 2);
    let Ok(Command::Append { message, .. }) = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(message, b"a\0b\0c");
    let Ok(Command::Append { message, .. }) = &results[1] else {
        panic!("{results:?}")
    };
    assert_eq!(message, b"\0\0");
    let results = parse_wire(b"x LOGIN ~{3+}\r\nabc pw\r\n");
    assert!(matches!(&results[..], [Err(_)]));
    // APPEND with every optional part, as §6.3.12 lists them.
    let results = parse_wire(
        b"x APPEND \"Sent Mail\" (\\Seen $Forwarded) \"17-Jul-1996 02:44:25 -0700\" {2+}\r\nhi\r\n",
    );
    assert_eq!(
        results,
        vec![Ok(Command::Append {
            mailbox: "Sent Mail".into(),
            flags: vec!["\\Seen".into(), "$Forwarded".into()],
            date: Some(837596665000),
            message: b"hi".to_vec()
        })]
    );
}

#[test]
fn sequence_sets() {
    // seq-number = nz-number / "*"; seq-range = seq-number ":" seq-number.
    let set = |s: &str| match ok(&format!("x FETCH {s} FLAGS")) {
        Command::Fetch { set, .. } => set,
        c => panic!("{c:?}"),
    };
    assert_eq!(
        set("*"),
        SequenceSet(vec![(SeqNum::Largest, SeqNum::Largest)])
    );
    assert_eq!(
        set("1:*"),
        SequenceSet(vec![(SeqNum::Value(1), SeqNum::Largest)])
    );
    assert_eq!(
        set("*:4,7,9:8"),
        SequenceSet(vec![
            (SeqNum::Largest, SeqNum::Value(4)),
            (SeqNum::Value(7), SeqNum::Value(7)),
            (SeqNum::Value(9), SeqNum::Value(8))
        ])
    );
    assert_eq!(
        set("4294967295"),
        SequenceSet(vec![(SeqNum::Value(u32::MAX), SeqNum::Value(u32::MAX))])
    );
    // A range's ends may come in either order (§6.4.9): 559:* holds *.
    assert!(set("559:*").contains(20, 20));
    assert_eq!(set("4:2").ranges(10), vec![(2, 4)]);
    assert!(set("$").is_saved());
    for s in [
        "0",
        "0:5",
        "1:",
        ":1",
        "1,,2",
        "1,",
        ",1",
        "4294967296",
        "1:2:3",
        "a",
        "-1",
        "1,$",
        "$:1",
        "**",
        "1.5",
    ] {
        bad(&format!("x FETCH {s} FLAGS"));
    }
    assert!(bad(&format!("x FETCH {} FLAGS", vec!["1"; 101].join(","))).contains("[LIMIT]"));
}

#[test]
fn empty_lists_the_abnf_forbids() {
    for line in [
        "x STATUS box ()",
        "x LIST \"\" % RETURN (STATUS ())",
        "x FETCH 1 ()",
        "x ENABLE",
        "x SEARCH",
        "x SEARCH ()",
        "x CREATE box (USE (\\Drafts))",
    ] {
        bad(line);
    }
}
