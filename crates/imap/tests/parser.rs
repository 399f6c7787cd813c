//! The command parser against RFC 9051's own text: every command line of
//! the examples in §6 (fed through the framer as a client sends it,
//! literals included), and the §9 ABNF at its edges: `[` and `]` in
//! mailbox names, dates that do not exist, quoted-string escapes,
//! LITERAL+ and literal8, sequence sets with `*` and `$`.

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

fn search(line: &str) -> (bool, Option<SearchReturn>, SearchKey) {
    match ok(line) {
        Command::Search { uid, ret, key } => (uid, ret, key),
        c => panic!("{line}: {c:?}"),
    }
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
            SearchKey::Flag(rampart_core::store::SystemFlags::FLAGGED),
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
