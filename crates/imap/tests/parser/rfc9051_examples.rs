//! RFC 9051 §6.1-§6.5: the example command lines.

use super::*;

// RFC 9051 §6.1-§6.4: every command line of the examples, one test per
// section. The server's lines and the GSSAPI continuation data are not
// commands and are left out.

#[test]
fn section_6_1_any_state() {
    for line in [
        "abcd CAPABILITY",
        "efgh STARTTLS",
        "ijkl CAPABILITY",
        "a002 NOOP",
        "a047 NOOP",
        "A023 LOGOUT",
    ] {
        ok(line);
    }
    assert_eq!(ok("abcd CAPABILITY"), Command::Capability);
    assert_eq!(ok("a047 NOOP"), Command::Noop);
    assert_eq!(ok("A023 LOGOUT"), Command::Logout);
}

#[test]
fn section_6_2_not_authenticated() {
    for line in [
        "a001 CAPABILITY",
        "a002 STARTTLS",
        "a003 CAPABILITY",
        "A01 STARTTLS",
        "A02 CAPABILITY",
        "C01 CAPABILITY",
    ] {
        ok(line);
    }
    assert_eq!(
        ok("a004 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q="),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial: Some("dGVzdAB0ZXN0AHRlc3Q=".into())
        }
    );
    ok("A03 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=");
    assert_eq!(
        ok("A001 AUTHENTICATE GSSAPI"),
        Command::Authenticate {
            mechanism: "GSSAPI".into(),
            initial: None
        }
    );
    ok("A01 AUTHENTICATE PLAIN");
    // A zero-length initial response is a single "=" (§6.2.2).
    assert_eq!(
        ok("A01 AUTHENTICATE EXTERNAL ="),
        Command::Authenticate {
            mechanism: "EXTERNAL".into(),
            initial: Some("=".into())
        }
    );
    assert_eq!(
        ok("a001 LOGIN SMITH SESAME"),
        Command::Login {
            user: "SMITH".into(),
            password: "SESAME".into()
        }
    );
}

#[test]
fn section_6_3_1_to_6_3_8_mailboxes() {
    ok("t1 CAPABILITY");
    assert_eq!(
        ok("t2 ENABLE CONDSTORE X-GOOD-IDEA"),
        Command::Enable(vec!["CONDSTORE".into(), "X-GOOD-IDEA".into()])
    );
    ok("t3 CAPABILITY");
    ok("a1 ENABLE CONDSTORE");
    for (line, name, read_only) in [
        ("A142 SELECT INBOX", "INBOX", false),
        ("A143 SELECT Drafts", "Drafts", false),
        ("A932 EXAMINE blurdybloop", "blurdybloop", true),
    ] {
        let Command::Select {
            mailbox,
            read_only: ro,
            condstore: false,
            qresync: None,
        } = ok(line)
        else {
            panic!("{line}")
        };
        assert_eq!((mailbox.as_str(), ro), (name, read_only));
    }
    assert_eq!(
        ok("A003 CREATE owatagusiam/"),
        Command::Create("owatagusiam/".into())
    );
    ok("A004 CREATE owatagusiam/blurdybloop");
    ok("A005 CREATE NonNormalized");
    for line in [
        "A682 LIST \"\" *",
        "A686 LIST \"\" *",
        "A82 LIST \"\" *",
        "A85 LIST \"\" *",
        "A86 LIST \"\" %",
        "Z432 LIST \"\" *",
        "Z434 LIST \"\" *",
        "A685 LIST \"\" *",
    ] {
        ok(line);
    }
    for (line, name) in [
        ("A683 DELETE blurdybloop", "blurdybloop"),
        ("A684 DELETE foo", "foo"),
        ("A685 DELETE foo/bar", "foo/bar"),
        ("A687 DELETE foo", "foo"),
        ("A83 DELETE blurdybloop", "blurdybloop"),
        ("A84 DELETE foo", "foo"),
    ] {
        assert_eq!(ok(line), Command::Delete(name.into()));
    }
    assert_eq!(
        ok("A683 RENAME blurdybloop sarasoop"),
        Command::Rename("blurdybloop".into(), "sarasoop".into())
    );
    ok("A684 RENAME foo zowie");
    assert_eq!(
        ok("Z433 RENAME INBOX old-mail"),
        Command::Rename("INBOX".into(), "old-mail".into())
    );
    ok("1001 RENAME X Y");
    assert_eq!(ok("1002 SUBSCRIBE Y"), Command::Subscribe("Y".into()));
    assert_eq!(ok("1003 UNSUBSCRIBE X"), Command::Unsubscribe("X".into()));
    assert_eq!(
        ok("A002 SUBSCRIBE #news.comp.mail.mime"),
        Command::Subscribe("#news.comp.mail.mime".into())
    );
    ok("A002 UNSUBSCRIBE #news.comp.mail.mime");
}

#[test]
fn section_6_3_9_list() {
    let list = |line: &str| match ok(line) {
        Command::List {
            reference,
            patterns,
            options,
        } => (reference, patterns, options),
        c => panic!("{line}: {c:?}"),
    };
    let (r, p, _) = list("A101 LIST \"\" \"\"");
    assert_eq!((r.as_str(), p), ("", vec![String::new()]));
    let (r, p, _) = list("A102 LIST #news.comp.mail.misc \"\"");
    assert_eq!(
        (r.as_str(), p),
        ("#news.comp.mail.misc", vec![String::new()])
    );
    let (r, _, _) = list("A103 LIST /usr/staff/jones \"\"");
    assert_eq!(r, "/usr/staff/jones");
    let (r, p, _) = list("A202 LIST ~/Mail/ %");
    assert_eq!((r.as_str(), p), ("~/Mail/", vec!["%".to_string()]));
    for line in [
        "A01 LIST \"\" \"*\"",
        "A02 LIST (SUBSCRIBED) \"\" \"*\"",
        "A03 LIST () \"\" \"%\" RETURN (CHILDREN)",
        "A04 LIST (REMOTE) \"\" \"%\" RETURN (CHILDREN)",
        "A05 LIST (REMOTE SUBSCRIBED) \"\" \"*\"",
        "A06 LIST (REMOTE) \"\" \"*\" RETURN (SUBSCRIBED)",
        "C01 LIST \"\" \"*\"",
        "CA3 LIST \"\" \"%\" RETURN (CHILDREN)",
        "C02 LIST (SUBSCRIBED) \"\" \"*\"",
        "C04 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"",
        "C04 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)",
        "D01 LIST \"\" \"*\"",
        "D02 LIST (SUBSCRIBED) \"\" \"*\"",
        "D03 LIST (RECURSIVEMATCH SUBSCRIBED) \"\" \"*2\"",
        "D03 LIST (RECURSIVEMATCH SUBSCRIBED) \"\" \"*\"",
        "a2 LIST (SUBSCRIBED) \"\" \"foo/*\"",
        "a1 LIST (REMOTE) \"\" *",
        "a2 LIST () \"\" %",
        "a3 LIST (REMOTE) \"\" %",
    ] {
        list(line);
    }
    let (_, p, _) = list("a1 LIST \"\" (\"foo\")");
    assert_eq!(p, vec!["foo"]);
    let (_, p, o) = list("a3 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" foo RETURN (CHILDREN)");
    assert_eq!(p, vec!["foo"]);
    assert!(o.subscribed_only && o.recursive_match && o.return_children);
    let (_, p, _) = list("a3.1 LIST \"\" (% music/rock)");
    assert_eq!(p, vec!["%", "music/rock"]);
    let (_, _, o) = list("A01 LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))");
    assert_eq!(o.return_status.map(|s| s.len()), Some(2));
    let (_, _, o) = list("A02 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (STATUS (MESSAGES))");
    assert_eq!(o.return_status.map(|s| s.len()), Some(1));
    // §6.3.9.1: RECURSIVEMATCH alone, or only with REMOTE, is a BAD.
    bad("x LIST (RECURSIVEMATCH) \"\" %");
    bad("x LIST (REMOTE RECURSIVEMATCH) \"\" %");
}

#[test]
fn section_6_3_10_to_6_3_11_namespace_and_status() {
    assert_eq!(ok("A001 NAMESPACE"), Command::Namespace);
    assert_eq!(
        ok("A002 CREATE \"INBOX.Sent Mail\""),
        Command::Create("INBOX.Sent Mail".into())
    );
    for line in [
        "A002 LIST (SPECIAL-USE) \"\" \"*\"",
        "A003 LIST (SPECIAL-USE) \"#mh/\" \"*\"",
        "A002 LIST \"\" \"Other Users/%\"",
        "A002 LIST \"\" \"#Users/%\"",
        "A003 LIST \"\" \"#Users/Mike/%\"",
        "A002 LIST \"\" \"~mark/%\"",
    ] {
        ok(line);
    }
    ok("A004 CREATE \"Sent Mail\"");
    ok("A005 CREATE \"Delete Items\"");
    assert_eq!(
        ok("A006 CREATE \"#mh/Deleted Items\""),
        Command::Create("#mh/Deleted Items".into())
    );
    let Command::Status { mailbox, items } = ok("A042 STATUS blurdybloop (UIDNEXT MESSAGES)")
    else {
        panic!()
    };
    assert_eq!((mailbox.as_str(), items.len()), ("blurdybloop", 2));
}

/// The message of §6.3.12's examples, CRLF line ends, with `host` for the
/// domain the example uses.
fn meeting(from: &str, to: &str, id: &str) -> String {
    format!(
        "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n\
         From: Fred Foobar <foobar@{from}>\r\n\
         Subject: afternoon meeting\r\n\
         To: mooch@{to}\r\n\
         Message-Id: <B27397-0100000@{id}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\
         \r\n\
         Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    )
}

#[test]
fn section_6_3_12_append() {
    // The synchronising literal: the framer asks for the 326 octets.
    let message = meeting(
        "Blurdybloop.example",
        "owatagu.siam.edu.example",
        "Blurdybloop.example",
    );
    assert_eq!(message.len(), 326);
    let wire = format!("A003 APPEND saved-messages (\\Seen) {{326}}\r\n{message}\r\n");
    let mut framer = Framer::new(FRAME);
    framer.push(wire.as_bytes());
    assert_eq!(framer.next_frame(), Some(Frame::Continue));
    let results = parse_wire(wire.as_bytes());
    assert_eq!(
        results,
        vec![Ok(Command::Append {
            mailbox: "saved-messages".into(),
            flags: vec!["\\Seen".into()],
            date: None,
            message: message.clone().into_bytes(),
        })]
    );

    // LITERAL+ (`{297+}`), then the COPYs and SELECT of the same example.
    let message = meeting("example.com", "example.com", "example.com");
    assert_eq!(message.len(), 297);
    let wire = format!(
        "A003 APPEND saved-messages (\\Seen) {{297+}}\r\n{message}\r\n\
         A004 COPY 2:4 meeting\r\n\
         A005 UID COPY 305:310 meeting\r\n\
         A006 COPY 2 funny\r\n\
         A007 SELECT funny\r\n"
    );
    let mut framer = Framer::new(FRAME);
    framer.push(wire.as_bytes());
    assert!(matches!(framer.next_frame(), Some(Frame::Command(_))));
    let results = parse_wire(wire.as_bytes());
    assert_eq!(results.len(), 5);
    let Ok(Command::Append { message: m, .. }) = &results[0] else {
        panic!("{:?}", results[0])
    };
    assert_eq!(m, message.as_bytes());
    assert_eq!(
        results[1],
        Ok(Command::Copy {
            uid: false,
            remove: false,
            set: seq("2:4"),
            mailbox: "meeting".into()
        })
    );
    assert_eq!(
        results[2],
        Ok(Command::Copy {
            uid: true,
            remove: false,
            set: seq("305:310"),
            mailbox: "meeting".into()
        })
    );
    assert!(results[3..].iter().all(Result::is_ok));
}

#[test]
fn section_6_3_13_idle() {
    ok("A001 SELECT INBOX");
    for tag in ["A002", "A004", "A006"] {
        assert_eq!(ok(&format!("{tag} IDLE")), Command::Idle);
    }
    for line in ["A003 FETCH 4 ALL", "A005 FETCH 3 ALL"] {
        let Command::Fetch { atts, .. } = ok(line) else {
            panic!()
        };
        // The ALL macro (§6.4.5).
        assert_eq!(
            atts,
            vec![
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
                FetchAtt::Envelope
            ]
        );
    }
}

#[test]
fn section_6_4_1_to_6_4_3_close_unselect_expunge() {
    assert_eq!(ok("A341 CLOSE"), Command::Close);
    assert_eq!(ok("A342 UNSELECT"), Command::Unselect);
    assert_eq!(ok("A202 EXPUNGE"), Command::Expunge(None));
}

#[test]
fn section_6_4_4_search() {
    let (_, ret, key) =
        search("A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"");
    let r = ret.unwrap();
    assert!(r.min && r.count && !r.max && !r.all && !r.save);
    assert_eq!(
        key,
        SearchKey::And(vec![
            SearchKey::Flag(rampart_core::model::SystemFlags::FLAGGED),
            SearchKey::Since(days_from_civil(1994, 2, 1)),
            SearchKey::Not(Box::new(SearchKey::Header("FROM".into(), "Smith".into()))),
        ])
    );
    // "()" means ALL.
    let (_, ret, _) = search("A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"");
    assert_eq!(
        ret,
        Some(SearchReturn {
            all: true,
            ..Default::default()
        })
    );
    let (_, ret, key) = search("A284 SEARCH TEXT \"string not in mailbox\"");
    assert_eq!(
        (ret, key),
        (None, SearchKey::Text("string not in mailbox".into()))
    );
    // A synchronising literal of 12 UTF-8 octets.
    let results = parse_wire("A285 SEARCH CHARSET UTF-8 TEXT {12}\r\nотпуск\r\n".as_bytes());
    assert_eq!(
        results,
        vec![Ok(Command::Search {
            uid: false,
            ret: None,
            key: SearchKey::Text("отпуск".into())
        })]
    );
    search("A284 SEARCH RETURN (MIN) UNSEEN");
    let (uid, ret, key) = search("A285 UID SEARCH RETURN (MIN MAX) 1:5000");
    assert!(uid && ret.is_some_and(|r| r.min && r.max));
    assert_eq!(key, SearchKey::SeqSet(seq("1:5000")));
    search("A286 SEARCH RETURN (COUNT) DELETED");
    // §6.4.9's text: a sequence set and a UID range intersected.
    let (uid, _, key) = search("x UID SEARCH 1:100 UID 443:557");
    assert!(uid);
    assert_eq!(
        key,
        SearchKey::And(vec![
            SearchKey::SeqSet(seq("1:100")),
            SearchKey::Uid(seq("443:557"))
        ])
    );
}

#[test]
fn section_6_4_4_4_search_result_variable() {
    for line in [
        "A282 SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        "A300 SEARCH RETURN (SAVE) SINCE 1-Jan-2004 NOT FROM \"Smith\"",
        "P282 SEARCH RETURN (SAVE) SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        "B282 SEARCH RETURN (SAVE) SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        "E282 SEARCH RETURN (SAVE) SINCE 28-Oct-2006 NOT FROM \"Eric\"",
        "F282 SEARCH RETURN (SAVE) KEYWORD $Junk",
        "G282 SEARCH RETURN (SAVE) KEYWORD $Junk",
        "H282 SEARCH RETURN (SAVE) KEYWORD $Junk",
        "H283 SEARCH RETURN (SAVE) SINCE 28-Oct-2006 FROM \"Eric\"",
    ] {
        // SAVE alone: saved, and no ESEARCH asked for.
        let (_, ret, _) = search(line);
        assert_eq!(
            ret,
            Some(SearchReturn {
                save: true,
                ..Default::default()
            }),
            "{line}"
        );
    }
    let (_, ret, key) = search("F282 SEARCH RETURN (SAVE) KEYWORD $Junk");
    assert!(ret.is_some_and(|r| r.save));
    assert_eq!(key, SearchKey::Keyword("$Junk".into()));
    for (line, min, max, all, count) in [
        (
            "G283 SEARCH RETURN (ALL) SINCE 28-Oct-2006 FROM \"Eric\"",
            false,
            false,
            true,
            false,
        ),
        (
            "C282 SEARCH RETURN (ALL) SINCE 12-Feb-2006 NOT FROM \"Smith\"",
            false,
            false,
            true,
            false,
        ),
        (
            "C283 SEARCH RETURN (ALL SAVE) SINCE 12-Feb-2006 NOT FROM \"Smith\"",
            false,
            false,
            true,
            false,
        ),
        (
            "C284 SEARCH RETURN (SAVE MIN) SINCE 12-Feb-2006 NOT FROM \"Smith\"",
            true,
            false,
            false,
            false,
        ),
        (
            "C285 SEARCH RETURN (MAX SAVE MIN) SINCE 12-Feb-2006 NOT FROM \"Smith\"",
            true,
            true,
            false,
            false,
        ),
        (
            "C286 SEARCH RETURN (MAX SAVE MIN COUNT) SINCE 12-Feb-2006 NOT FROM \"Smith\"",
            true,
            true,
            false,
            true,
        ),
        (
            "C286 SEARCH RETURN (ALL SAVE MIN) SINCE 12-Feb-2006 NOT FROM \"Smith\"",
            true,
            false,
            true,
            false,
        ),
    ] {
        let r = search(line).1.unwrap();
        assert_eq!(
            (r.min, r.max, r.all, r.count),
            (min, max, all, count),
            "{line}"
        );
        assert_eq!(r.save, line.contains("SAVE"), "{line}");
    }

    // "$" wherever a sequence set goes.
    let Command::Fetch { set, atts, .. } =
        ok("A283 FETCH $ (UID INTERNALDATE FLAGS BODY.PEEK[HEADER])")
    else {
        panic!()
    };
    assert!(set.is_saved());
    assert_eq!(
        atts[3],
        FetchAtt::Section {
            name: SectionName::Body,
            peek: true,
            section: Section {
                part: vec![],
                text: Some(SectionText::Header)
            },
            partial: None
        }
    );
    let (_, _, key) = search("A301 UID SEARCH UID $ SMALLER 4096");
    assert_eq!(
        key,
        SearchKey::And(vec![
            SearchKey::Uid(SequenceSet::saved()),
            SearchKey::Smaller(4096)
        ])
    );
    let (_, _, key) = search("A301 UID SEARCH $ SMALLER 4096");
    assert_eq!(
        key,
        SearchKey::And(vec![
            SearchKey::SeqSet(SequenceSet::saved()),
            SearchKey::Smaller(4096)
        ])
    );
    let results =
        parse_wire("P283 SEARCH CHARSET UTF-8 (OR $ 1,3000:3021) TEXT {8+}\r\nмать\r\n".as_bytes());
    assert_eq!(
        results,
        vec![Ok(Command::Search {
            uid: false,
            ret: None,
            key: SearchKey::And(vec![
                SearchKey::Or(
                    Box::new(SearchKey::SeqSet(SequenceSet::saved())),
                    Box::new(SearchKey::SeqSet(seq("1,3000:3021")))
                ),
                SearchKey::Text("мать".into())
            ])
        })]
    );
    // An unknown charset parses, and is answered NO [BADCHARSET].
    let results = parse_wire(
        b"B283 SEARCH RETURN (SAVE) CHARSET KOI8-R (OR $ 1,3000:3021) TEXT {4}\r\nXXXX\r\n",
    );
    assert!(matches!(&results[..], [Err(e)] if e.starts_with("[BADCHARSET")));
    for (line, mailbox) in [
        ("E283 COPY $ \"Other Messages\"", "Other Messages"),
        ("F283 COPY $ \"Junk\"", "Junk"),
    ] {
        assert_eq!(
            ok(line),
            Command::Copy {
                uid: false,
                remove: false,
                set: SequenceSet::saved(),
                mailbox: mailbox.into()
            }
        );
    }
    assert_eq!(
        ok("F284 STORE $ +FLAGS.Silent (\\Deleted)"),
        Command::Store {
            uid: false,
            set: SequenceSet::saved(),
            unchanged_since: None,
            mode: StoreMode::Add,
            silent: true,
            flags: vec!["\\Deleted".into()]
        }
    );
}

#[test]
fn section_6_4_5_to_6_4_9_messages() {
    let Command::Fetch { set, atts, .. } =
        ok("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])")
    else {
        panic!()
    };
    assert_eq!(set, seq("2:4"));
    assert_eq!(
        atts,
        vec![
            FetchAtt::Flags,
            FetchAtt::Section {
                name: SectionName::Body,
                peek: false,
                section: Section {
                    part: vec![],
                    text: Some(SectionText::HeaderFields(vec![
                        "DATE".into(),
                        "FROM".into()
                    ]))
                },
                partial: None
            }
        ]
    );
    assert_eq!(
        ok("A003 STORE 2:4 +FLAGS (\\Deleted)"),
        Command::Store {
            uid: false,
            set: seq("2:4"),
            unchanged_since: None,
            mode: StoreMode::Add,
            silent: false,
            flags: vec!["\\Deleted".into()]
        }
    );
    ok("A003 COPY 2:4 MEETING");
    assert_eq!(
        ok("a UID MOVE 42:69 foo"),
        Command::Copy {
            uid: true,
            remove: true,
            set: seq("42:69"),
            mailbox: "foo".into()
        }
    );
    assert_eq!(
        ok("A003 UID EXPUNGE 3000:3002"),
        Command::Expunge(Some(seq("3000:3002")))
    );
    let Command::Fetch { uid, set, atts, .. } = ok("A999 UID FETCH 4827313:4828442 FLAGS") else {
        panic!()
    };
    // A UID FETCH answers with the UID whether asked or not (§6.4.9).
    assert!(uid);
    assert_eq!(set, seq("4827313:4828442"));
    assert_eq!(atts, vec![FetchAtt::Uid, FetchAtt::Flags]);
}

#[test]
fn section_6_5_unknown_extension_commands_are_bad() {
    ok("a441 CAPABILITY");
    // XPIG-LATIN is not announced, so it is an unknown command.
    assert!(bad("A442 XPIG-LATIN").contains("Unknown command"));
}
