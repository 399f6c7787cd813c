"""IMAP scenarios driven by Python's imaplib (and a raw socket client where
imaplib cannot say what we need), against a running Rampart. Called by
crates/rampart/tests/imap.rs as:

    python3 imap_client.py SCENARIO IMAP_PORT IMAPS_PORT SMTP_PORT CAFILE

Each scenario asserts what it sees and exits non-zero on the first surprise.
"""

import base64
import imaplib
import re
import smtplib
import socket
import ssl
import sys
import time

scenario, imap_port, imaps_port, smtp_port, cafile = sys.argv[1:6]
imap_port, imaps_port, smtp_port = int(imap_port), int(imaps_port), int(smtp_port)
HOST = "localhost"  # the self-signed certificate names localhost
USER, PASSWORD = "alice@example.org", "alice's long password"

imaplib.Commands.setdefault("MOVE", ("SELECTED",))
imaplib.Commands.setdefault("ENABLE", ("AUTH",))
imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
imaplib.Commands.setdefault("UNSELECT", ("SELECTED",))


def tls_context():
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def login(user=USER, password=PASSWORD):
    conn = imaplib.IMAP4_SSL(HOST, imaps_port, ssl_context=tls_context(), timeout=20)
    typ, _ = conn.login(user, password)
    assert typ == "OK"
    return conn


def ok(result, what=""):
    typ, data = result
    assert typ == "OK", f"{what}: expected OK, got {typ} {data}"
    return data


def expect_bad(call):
    """imaplib raises on a tagged BAD; returns its text."""
    try:
        result = call()
    except imaplib.IMAP4.error as e:
        return str(e)
    raise AssertionError(f"expected BAD, got {result}")


def message(subject, body="Hello.\r\n", sender="bob@example.org", extra=""):
    return (
        f"From: Bob <{sender}>\r\nTo: Alice <alice@example.org>\r\nSubject: {subject}\r\n"
        f"Date: Tue, 1 Sep 2026 10:00:00 +0000\r\nMessage-ID: <{abs(hash(subject))}@test>\r\n"
        f"{extra}\r\n{body}"
    ).encode()


class Raw:
    """A raw IMAP connection that returns every line of a response, literals inline."""

    def __init__(self, port=None, tls=True):
        sock = socket.create_connection((HOST, port or (imaps_port if tls else imap_port)), timeout=20)
        if tls:
            sock = tls_context().wrap_socket(sock, server_hostname=HOST)
        self.sock = sock
        self.file = sock.makefile("rb")
        self.greeting = self.line()
        self.n = 0

    def line(self):
        line = self.file.readline()
        assert line, "connection closed"
        # Literals are read whole and appended to the line that announced them.
        m = re.search(rb"\{(\d+)\}\r\n$", line)
        while m:
            data = self.file.read(int(m.group(1)))
            rest = self.file.readline()
            line = line + data + rest
            m = re.search(rb"\{(\d+)\}\r\n$", rest)
        return line.decode("utf-8", "replace")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, text):
        """Sends a command; returns (untagged lines, tagged line)."""
        self.n += 1
        tag = f"r{self.n}"
        self.send(f"{tag} {text}\r\n")
        return self.until(tag)

    def until(self, tag):
        lines = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return lines, line.rstrip("\r\n")
            lines.append(line.rstrip("\r\n"))

    def login(self, user=USER, password=PASSWORD):
        _, tagged = self.cmd(f'LOGIN "{user}" "{password}"')
        assert " OK " in tagged, tagged
        return self


def scenario_auth():
    # Before TLS on 143: STARTTLS offered, login refused.
    raw = Raw(tls=False)
    assert "STARTTLS" in raw.greeting and "LOGINDISABLED" in raw.greeting, raw.greeting
    _, tagged = raw.cmd(f'LOGIN "{USER}" "{PASSWORD}"')
    assert "NO [PRIVACYREQUIRED]" in tagged, tagged
    _, tagged = raw.cmd("SELECT INBOX")
    assert " BAD " in tagged, tagged

    # imaplib's STARTTLS, then LOGIN.
    conn = imaplib.IMAP4(HOST, imap_port, timeout=20)
    ok(conn.starttls(ssl_context=tls_context()), "starttls")
    caps = ok(conn.capability(), "capability")[0].decode()
    assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps, caps
    ok(conn.login(USER, PASSWORD), "login after starttls")
    caps = ok(conn.capability(), "capability")[0].decode()
    for cap in ["IMAP4rev2", "IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "QRESYNC", "ESEARCH",
                "SORT", "THREAD=REFERENCES", "QUOTA", "BINARY", "OBJECTID", "LIST-STATUS",
                "SPECIAL-USE", "LITERAL+", "SASL-IR", "APPENDLIMIT="]:
        assert cap in caps, f"{cap} missing from {caps}"
    conn.logout()

    # Implicit TLS on 993 with AUTHENTICATE PLAIN (SASL-IR via imaplib).
    conn = imaplib.IMAP4_SSL(HOST, imaps_port, ssl_context=tls_context(), timeout=20)
    ok(conn.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode()), "authenticate")
    conn.logout()

    # Wrong password: a tagged NO with AUTHENTICATIONFAILED, session stays usable.
    raw = Raw()
    _, tagged = raw.cmd(f'LOGIN "{USER}" "wrong password"')
    assert "NO [AUTHENTICATIONFAILED]" in tagged, tagged
    # AUTHENTICATE with a continuation, then the right credentials.
    raw.send("a1 AUTHENTICATE PLAIN\r\n")
    assert raw.line().startswith("+"), "no continuation"
    raw.send(base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b"\r\n")
    _, tagged = raw.until("a1")
    assert " OK " in tagged, tagged
    # ID and NAMESPACE.
    untagged, _ = raw.cmd('ID ("name" "test")')
    assert untagged[0].startswith('* ID ("name" "Rampart"'), untagged
    untagged, _ = raw.cmd("NAMESPACE")
    assert untagged == ['* NAMESPACE (("" "/")) NIL NIL'], untagged
    _, tagged = raw.cmd("LOGOUT")
    assert " OK " in tagged


def scenario_mailboxes():
    conn = login()
    names = ok(conn.list('""', "*"))
    text = b"\n".join(names).decode()
    for expected in ['"INBOX"', '\\Sent) "/" "Sent"', '\\Drafts) "/" "Drafts"',
                     '\\Trash) "/" "Trash"', '\\Junk) "/" "Junk"', '\\Archive) "/" "Archive"']:
        assert expected in text, f"{expected} not in {text}"
    # CREATE makes missing parents; % stops at the delimiter.
    ok(conn.create("Work/2026/Q1"), "create")
    text = b"\n".join(ok(conn.list('""', "Work/%"))).decode()
    assert '"Work/2026"' in text and "Q1" not in text, text
    assert "\\HasChildren" in text, text
    typ, data = conn.create("Work/2026")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0], data
    # Modified UTF-7 names (rev1 client).
    ok(conn.create("Entw&APw-rfe/Alt"), "utf7 create")
    text = b"\n".join(ok(conn.list('""', "Entw*"))).decode()
    assert '"Entw&APw-rfe"' in text and '"Entw&APw-rfe/Alt"' in text, text
    assert "modified UTF-7" in expect_bad(lambda: conn.create("Bad&-Name&Jjo"))
    # RENAME takes children along.
    ok(conn.rename("Work", "Job"), "rename")
    text = b"\n".join(ok(conn.list('""', "*"))).decode()
    assert '"Job/2026/Q1"' in text and '"Work' not in text, text
    typ, data = conn.rename("INBOX", "Old")
    assert typ == "NO", data
    # Subscriptions: CREATE and RENAME subscribe nothing (RFC 9051 §6.3.4,
    # §6.3.9); any name may be subscribed (§6.3.7).
    assert ok(conn.lsub('""', "Job*")) == [None], "CREATE subscribed"
    ok(conn.subscribe("Job"), "subscribe")
    ok(conn.subscribe("Job/2026"), "subscribe")
    ok(conn.unsubscribe("Job/2026"), "unsubscribe")
    lsub = b"\n".join(ok(conn.lsub('""', "Job*"))).decode()
    assert '"Job"' in lsub and '"Job/2026"' not in lsub, lsub
    ok(conn.subscribe("Nope"), "subscribe a name that does not exist")
    # LIST-EXTENDED selection and LIST-STATUS.
    typ, data = conn._simple_command("LIST", "(SUBSCRIBED)", '""', "Job*")
    lines = b"\n".join(conn.untagged_responses.pop("LIST", [])).decode()
    assert "\\Subscribed" in lines and '"Job/2026"' not in lines, lines
    raw = Raw().login()
    untagged, tagged = raw.cmd('LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN SIZE))')
    assert " OK " in tagged, tagged
    assert any(l.startswith('* STATUS "INBOX" (MESSAGES ') for l in untagged), untagged
    untagged, _ = raw.cmd('LIST (SPECIAL-USE) "" "*"')
    assert len(untagged) == 5 and all("\\Has" in l for l in untagged), untagged
    untagged, _ = raw.cmd('LIST "" ""')
    assert untagged == ['* LIST (\\Noselect) "/" ""'], untagged
    # DELETE: not with children, not INBOX, then leaf first.
    typ, data = conn.delete("Job")
    assert typ == "NO" and b"HASCHILDREN" in data[0], data
    typ, data = conn.delete("INBOX")
    assert typ == "NO", data
    ok(conn.delete("Job/2026/Q1"))
    ok(conn.delete("Job/2026"))
    ok(conn.delete("Job"))
    text = b"\n".join(ok(conn.list('""', "*"))).decode()
    assert "Job" not in text, text
    # STATUS of every kind.
    ok(conn.append("INBOX", None, None, message("status probe")))
    data = ok(conn.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT MAILBOXID)"))
    text = data[0].decode()
    for item in ["MESSAGES 1", "UNSEEN 1", "DELETED 0", "SIZE ", "HIGHESTMODSEQ ", "APPENDLIMIT ", "MAILBOXID (F"]:
        assert item in text, f"{item} not in {text}"
    conn.logout()


def scenario_messages():
    conn = login()
    mime = (
        b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: with attachment\r\n"
        b"Date: Wed, 2 Sep 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Gr=C3=BC=C3=9Fe aus der Stadtverwaltung\r\n--b1\r\n"
        b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
        b"Content-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAECAwQ=\r\n--b1--\r\n"
    )
    uids = []
    for i, raw in enumerate([message("first", "one\r\n"), message("second", "two\r\n", sender="carol@example.net"), mime,
                             message("Re: first", "three\r\n", extra="In-Reply-To: <x@test>\r\n")]):
        typ, data = conn.append("INBOX", "(\\Flagged)" if i == 1 else None,
                                imaplib.Time2Internaldate(1700000000 + i * 86400), raw)
        assert typ == "OK", data
        m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
        assert m, data
        uids.append(int(m.group(2)))
    assert uids == sorted(uids) and len(set(uids)) == 4, uids
    typ, data = conn.select("INBOX")
    assert typ == "OK" and data == [b"4"], data

    # FETCH items.
    data = ok(conn.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"))
    text = data[0].decode()
    assert 'INTERNALDATE "14-Nov-2023 22:13:20 +0000"' in text, text
    assert '(("Bob" NIL "bob" "example.org"))' in text and '"first"' in text, text
    assert f"RFC822.SIZE {len(message('first', 'one'+chr(13)+chr(10)))}" in text, text
    data = ok(conn.fetch("3", "(BODYSTRUCTURE)"))
    text = data[0].decode()
    assert '("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable"' in text, text
    assert '("attachment" ("filename" "data.bin"))' in text and '"mixed" ("boundary" "b1")' in text, text
    data = ok(conn.fetch("3", "(BODY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[HEADER.FIELDS (Subject)])"))
    assert data[0][1] == b"Gr=C3=BC=C3=9Fe aus der Stadtverwaltung", data
    assert data[1][1] == b"\x00\x01\x02\x03\x04", data
    joined = b"".join(x if isinstance(x, bytes) else x[0] + x[1] for x in data)
    assert b"BINARY.SIZE[2] 5" in joined and b"Subject: with attachment\r\n\r\n" in joined, joined
    # Partial fetch.
    data = ok(conn.fetch("1", "(BODY.PEEK[TEXT]<0.2>)"))
    assert data[0][1] == b"on" and b"BODY[TEXT]<0>" in data[0][0], data
    # PEEK leaves \Seen alone; BODY[] sets it and reports FLAGS.
    data = ok(conn.fetch("1", "(FLAGS)"))
    assert b"\\Seen" not in data[0], data
    data = ok(conn.fetch("1", "(BODY[])"))
    assert b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data), data
    data = ok(conn.fetch("1:2", "(UID FLAGS EMAILID THREADID)"))
    assert b"EMAILID (M" in data[0] and b"THREADID (T" in data[0], data
    # RFC 8474 ids are opaque: 16 hex digits after the letter, unrelated for
    # neighbouring messages (no count of the server's messages shows), and
    # SEARCH EMAILID finds the message by its id.
    ids = [re.search(rb"EMAILID \((M[0-9a-f]{16})\)", d).group(1).decode() for d in data]
    assert ids[0] != ids[1], ids
    assert sum(a != b for a, b in zip(ids[0], ids[1])) >= 6, ids
    assert ok(conn.search(None, "EMAILID", ids[1]))[0] == b"2", ids
    assert ok(conn.search(None, "EMAILID", "M1"))[0] == b"", "a guessed row id finds nothing"

    # STORE in its forms.
    data = ok(conn.store("2", "+FLAGS", "(\\Answered $Work)"))
    assert b"\\Answered" in data[0] and b"$Work" in data[0] and b"\\Flagged" in data[0], data
    data = ok(conn.store("2", "-FLAGS", "(\\Flagged)"))
    assert b"\\Flagged" not in data[0], data
    data = ok(conn.store("4", "FLAGS.SILENT", "(\\Draft)"))
    assert data == [None], data
    assert "Bogus" in expect_bad(lambda: conn.store("1", "+FLAGS", "(\\Bogus)"))

    # SEARCH keys.
    def search(*criteria, charset=None):
        return ok(conn.search(charset, *criteria))[0].split()

    assert search("ALL") == [b"1", b"2", b"3", b"4"]
    assert search("FROM", "carol") == [b"2"]
    assert search("SUBJECT", "first") == [b"1", b"4"]
    assert search("BODY", "two") == [b"2"]
    assert search("TEXT", "stadtverwaltung") == [b"3"]
    # Substrings inside words (the index is by trigrams); needles too short
    # for it (read from the messages instead); header field names under TEXT.
    assert search("TEXT", "TADTVERW") == [b"3"]
    assert search("BODY", "wo") == [b"2"]
    assert search("TEXT", "in-reply-to") == [b"4"]
    assert search("OR", "BODY", "three", "SUBJECT", "second") == [b"2", b"4"]
    assert search("NOT", "BODY", "stadt") == [b"1", b"2", b"4"]
    assert search("FROM", "carol", "BODY", "two") == [b"2"]
    assert search("FROM", "carol", "TEXT", "one") == []
    assert search("UNSEEN") == [b"2", b"3", b"4"]
    assert search("KEYWORD", "$Work") == [b"2"]
    assert search("OR", "ANSWERED", "DRAFT") == [b"2", b"4"]
    assert search("NOT", "1:2") == [b"3", b"4"]
    assert search("LARGER", "300") == [b"3"]
    assert search("SINCE", "16-Nov-2023") == [b"3", b"4"]
    assert search("SENTON", "2-Sep-2026") == [b"3"]
    assert search("HEADER", "In-Reply-To", '""') == [b"4"]
    # Non-ASCII search with a literal, decoded from quoted-printable.
    conn.literal = "Grüße".encode()
    assert search("BODY", charset="UTF-8") == [b"3"]
    typ, data = conn.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0], (typ, data)
    uid_hits = ok(conn.uid("SEARCH", None, "UID", f"{uids[1]}:*"))[0].split()
    assert uid_hits == [str(u).encode() for u in uids[1:]], uid_hits
    raw = Raw().login()
    raw.cmd("SELECT INBOX")
    untagged, _ = raw.cmd("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert untagged == [f"* ESEARCH (TAG \"r{raw.n}\") MIN 2 MAX 4 ALL 2:4 COUNT 3"], untagged
    untagged, _ = raw.cmd("UID SORT (REVERSE ARRIVAL) UTF-8 ALL")
    assert untagged == ["* SORT " + " ".join(str(u) for u in reversed(uids))], untagged
    untagged, _ = raw.cmd("SORT (SUBJECT) UTF-8 ALL")
    # Base subjects: first, first, second, with attachment.
    assert untagged == ["* SORT 1 4 2 3"], untagged
    untagged, _ = raw.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert untagged == ["* THREAD (1 4)(2)(3)"], untagged

    # COPY with COPYUID, MOVE with COPYUID and EXPUNGE, both UID and sequence forms.
    data = ok(conn.copy("1:2", "Archive"))
    assert data[0].startswith(b"[COPYUID "), data
    untagged, tagged = raw.cmd("UID COPY 1 Archive")
    assert "[COPYUID " in tagged, tagged
    untagged, tagged = raw.cmd("MOVE 4 Trash")
    assert any("[COPYUID " in l for l in untagged) and "* 4 EXPUNGE" in untagged, untagged
    typ, data = conn.copy("1", "Nope")
    assert typ == "NO" and b"TRYCREATE" in data[0], data
    # EXPUNGE removes only \Deleted; UID EXPUNGE only those named.
    ok(conn.store("1:3", "+FLAGS", "(\\Deleted)"))
    untagged, _ = raw.cmd(f"UID EXPUNGE {uids[0]}")
    assert "* 1 EXPUNGE" in untagged, untagged
    typ, data = conn.expunge()
    assert typ == "OK", data
    untagged, _ = raw.cmd("NOOP")
    data = ok(conn.select("Archive"))
    assert data == [b"3"], data

    # Quota.
    typ, data = conn.getquotaroot("INBOX")
    assert typ == "OK", data
    assert data[0][0] == b'"INBOX" ""', data
    assert data[1][0].startswith(b'"" (STORAGE '), data

    # CONDSTORE: CHANGEDSINCE and UNCHANGEDSINCE.
    untagged, _ = raw.cmd("ENABLE CONDSTORE")
    assert untagged == ["* ENABLED CONDSTORE"], untagged
    untagged, tagged = raw.cmd("SELECT Archive")
    modseq = int(re.search(r"HIGHESTMODSEQ (\d+)", "\n".join(untagged)).group(1))
    untagged, _ = raw.cmd("STORE 1 +FLAGS (\\Flagged)")
    assert re.search(r"MODSEQ \(\d+\)", untagged[0]), untagged
    untagged, _ = raw.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})")
    assert len(untagged) == 1 and untagged[0].startswith("* 1 FETCH"), untagged
    untagged, tagged = raw.cmd(f"STORE 1,2 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert "[MODIFIED 1]" in tagged, tagged
    conn.logout()


def scenario_concurrent():
    a, b = login(), login()
    ok(a.select("INBOX"))
    a.untagged_responses.clear()
    for i in range(3):
        ok(b.append("INBOX", None, None, message(f"c{i}")))
    # A learns of new mail at its next command.
    typ, data = a.noop()
    assert a.untagged_responses.get("EXISTS") == [b"3"], a.untagged_responses
    a.untagged_responses.clear()
    ok(b.select("INBOX"))
    ok(b.store("2", "+FLAGS", "(\\Flagged)"))
    ok(b.store("3", "+FLAGS", "(\\Deleted)"))
    ok(b.expunge())
    # During FETCH A sees the flag change but no EXPUNGE; NOOP then delivers it.
    raw = Raw().login()
    raw.cmd("SELECT INBOX")
    ok(b.store("1", "+FLAGS", "(\\Deleted)"))
    ok(b.expunge())
    untagged, _ = raw.cmd("FETCH 1:* (FLAGS)")
    assert not any("EXPUNGE" in l for l in untagged), untagged
    untagged, _ = raw.cmd("NOOP")
    assert "* 1 EXPUNGE" in untagged, untagged
    typ, _ = a.noop()
    assert a.untagged_responses.get("EXPUNGE"), a.untagged_responses
    a.logout()
    b.logout()


def scenario_idle():
    raw = Raw().login()
    untagged, _ = raw.cmd("SELECT INBOX")
    exists = int(next(l for l in untagged if l.endswith(" EXISTS")).split()[1])
    raw.send("i1 IDLE\r\n")
    assert raw.line().startswith("+ "), "no IDLE continuation"
    sent = time.monotonic()
    with smtplib.SMTP(HOST, smtp_port, timeout=20) as smtp:
        smtp.sendmail("carol@example.net", ["alice@example.org"], message("pushed", sender="carol@example.net").replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"))
    line = raw.line()
    latency = time.monotonic() - sent
    assert line.strip() == f"* {exists + 1} EXISTS", line
    print(f"IDLE push {latency * 1000:.0f} ms after the SMTP client started sending")
    raw.send("DONE\r\n")
    _, tagged = raw.until("i1")
    assert " OK " in tagged, tagged
    untagged, _ = raw.cmd(f"FETCH {exists + 1} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert "Subject: pushed" in untagged[0], untagged


def scenario_qresync():
    raw = Raw().login()
    untagged, _ = raw.cmd("ENABLE QRESYNC")
    assert untagged == ["* ENABLED QRESYNC"], untagged
    conn = login()
    for i in range(5):
        ok(conn.append("INBOX", None, None, message(f"q{i}")))
    untagged, _ = raw.cmd("SELECT INBOX")
    text = "\n".join(untagged)
    validity = int(re.search(r"UIDVALIDITY (\d+)", text).group(1))
    modseq = int(re.search(r"HIGHESTMODSEQ (\d+)", text).group(1))
    uids = [int(u) for u in re.findall(r"UID (\d+)", "\n".join(raw.cmd("UID FETCH 1:* (UID)")[0]))]
    ok(conn.select("INBOX"))
    ok(conn.uid("STORE", f"{uids[0]},{uids[2]}", "+FLAGS", "(\\Deleted)"))
    ok(conn.expunge())
    ok(conn.uid("STORE", str(uids[4]), "+FLAGS", "(\\Seen)"))
    raw.cmd("UNSELECT")
    untagged, tagged = raw.cmd(f"SELECT INBOX (QRESYNC ({validity} {modseq}))")
    assert " OK " in tagged, tagged
    assert f"* VANISHED (EARLIER) {uids[0]},{uids[2]}" in untagged, untagged
    assert any(f"UID {uids[4]} FLAGS (\\Seen)" in l for l in untagged), untagged
    # Expunges now arrive as VANISHED.
    ok(conn.uid("STORE", str(uids[1]), "+FLAGS", "(\\Deleted)"))
    ok(conn.expunge())
    untagged, _ = raw.cmd("NOOP")
    assert f"* VANISHED {uids[1]}" in untagged, untagged
    untagged, _ = raw.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert untagged[0] == f"* VANISHED (EARLIER) {uids[0]}:{uids[2]}", untagged


def scenario_limits():
    raw = Raw()
    # Commands before login.
    _, tagged = raw.cmd("FETCH 1 FLAGS")
    assert " BAD " in tagged, tagged
    raw.login()
    # Syntax errors get BAD and the session goes on.
    for bad in ["FROB", "SELECT", "FETCH 1:x FLAGS", 'LIST "" "*" RETURN (NONSENSE)', "SEARCH " + "NOT " * 40 + "ALL"]:
        _, tagged = raw.cmd(bad)
        assert " BAD " in tagged, (bad, tagged)
    # A command line over the limit (4 KiB in this test's config).
    _, tagged = raw.cmd("NOOP " + "x" * 5000)
    assert "BAD [TOOBIG]" in tagged, tagged
    # A synchronising literal over the limit is refused before it is sent.
    raw.send("big LOGIN {999999}\r\n")
    line = raw.line()
    assert line.startswith("big BAD [TOOBIG]"), line
    # An APPEND over max_message_bytes.
    raw.send("ap APPEND INBOX {200000}\r\n")
    line = raw.line()
    assert line.startswith("ap BAD [TOOBIG]"), line
    # Sequence sets with too many ranges.
    raw.cmd("SELECT INBOX")
    _, tagged = raw.cmd("UID FETCH " + ",".join(str(i) for i in range(1, 300, 2)) + " FLAGS")
    assert "BAD [LIMIT]" in tagged, tagged
    _, tagged = raw.cmd("NOOP")
    assert " OK " in tagged, tagged
    # A non-synchronising literal over the limit ends the connection.
    raw.send("nb APPEND INBOX {9999999+}\r\n")
    lines = [raw.line(), raw.line()]
    assert "TOOBIG" in lines[0] and lines[1].startswith("* BYE"), lines
    # Too many bad commands in a row close the connection.
    raw = Raw().login()
    closed = False
    for i in range(30):
        try:
            raw.send(f"b{i} FROB\r\n")
            line = raw.line()
        except (AssertionError, OSError):
            closed = True
            break
        if line.startswith("* BYE"):
            closed = True
            break
    assert closed, "no BYE after many bad commands"
    # Connections per user: the test's config allows 3.
    held = [Raw().login() for _ in range(3)]
    extra = Raw()
    _, tagged = extra.cmd(f'LOGIN "{USER}" "{PASSWORD}"')
    assert "NO [LIMIT]" in tagged, tagged
    del held


def scenario_thunderbird():
    """Replays Thunderbird's account set-up and first sync, command for
    command as its IMAP log shows them (lower-case verbs included)."""
    with smtplib.SMTP(HOST, smtp_port, timeout=20) as smtp:
        for i in range(3):
            smtp.sendmail("carol@example.net", ["alice@example.org"],
                          message(f"welcome {i}", sender="carol@example.net"))
    raw = Raw(tls=False)
    untagged, tagged = raw.cmd("capability")
    assert "STARTTLS" in untagged[0] and " OK " in tagged, untagged
    _, tagged = raw.cmd("STARTTLS")
    assert " OK " in tagged, tagged
    raw.sock = tls_context().wrap_socket(raw.sock, server_hostname=HOST)
    raw.file = raw.sock.makefile("rb")
    untagged, _ = raw.cmd("capability")
    assert "AUTH=PLAIN" in untagged[0] and "LOGINDISABLED" not in untagged[0], untagged
    raw.n += 1
    tag = f"r{raw.n}"
    raw.send(f"{tag} authenticate PLAIN\r\n")
    assert raw.line().startswith("+"), "no continuation"
    raw.send(base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b"\r\n")
    _, tagged = raw.until(tag)
    assert " OK [CAPABILITY " in tagged, tagged
    untagged, tagged = raw.cmd('ID ("name" "Thunderbird" "version" "128.5.0")')
    assert untagged[0].startswith("* ID ") and " OK " in tagged, untagged
    untagged, tagged = raw.cmd("namespace")
    assert untagged == ['* NAMESPACE (("" "/")) NIL NIL'], untagged
    untagged, tagged = raw.cmd('list (subscribed) "" "*" return (special-use)')
    text = "\n".join(untagged)
    assert '\\Subscribed \\Sent' in text or '\\Sent \\Subscribed' in text, text
    assert '"INBOX"' in text and " OK " in tagged, text
    untagged, tagged = raw.cmd('list "" "INBOX"')
    assert len(untagged) == 1 and untagged[0].endswith('"INBOX"'), untagged
    untagged, tagged = raw.cmd('select "INBOX" (CONDSTORE)')
    text = "\n".join(untagged)
    assert "* 3 EXISTS" in text and "HIGHESTMODSEQ" in text and "[READ-WRITE]" in tagged, text
    modseq = int(re.search(r"HIGHESTMODSEQ (\d+)", text).group(1))
    untagged, tagged = raw.cmd('getquotaroot "INBOX"')
    assert untagged[0] == '* QUOTAROOT "INBOX" ""' and " OK " in tagged, untagged
    untagged, tagged = raw.cmd("UID fetch 1:* (FLAGS)")
    # Delivered since anyone looked: \Recent to this first IMAP4rev1 session.
    assert len(untagged) == 3 and all("FLAGS (\\Recent)" in l for l in untagged), untagged
    fields = "From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To"
    untagged, tagged = raw.cmd(f"UID fetch 1:3 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({fields})])")
    assert len(untagged) == 3 and "Subject: welcome 0" in untagged[0], untagged
    assert f"BODY[HEADER.FIELDS ({fields})]" in untagged[0], untagged[0]
    untagged, tagged = raw.cmd("UID fetch 2 (UID RFC822.SIZE BODY.PEEK[])")
    assert "Hello." in untagged[0] and "Received: from" in untagged[0], untagged
    untagged, tagged = raw.cmd("UID store 2 +Flags (\\Seen)")
    assert "\\Seen" in untagged[0] and "MODSEQ" in untagged[0], untagged
    untagged, tagged = raw.cmd(f"UID fetch 1:* (FLAGS) (CHANGEDSINCE {modseq})")
    assert len(untagged) == 1 and "UID 2" in untagged[0], untagged
    untagged, tagged = raw.cmd('STATUS "Sent" (UIDNEXT MESSAGES UNSEEN RECENT HIGHESTMODSEQ)')
    assert untagged[0].startswith('* STATUS "Sent" (UIDNEXT 1 MESSAGES 0 UNSEEN 0 RECENT 0 HIGHESTMODSEQ'), untagged
    # Thunderbird then idles on the INBOX; new mail is pushed.
    raw.send("r99 IDLE\r\n")
    assert raw.line().startswith("+ "), "no IDLE continuation"
    with smtplib.SMTP(HOST, smtp_port, timeout=20) as smtp:
        smtp.sendmail("carol@example.net", ["alice@example.org"], message("while idle", sender="carol@example.net"))
    assert raw.line().strip() == "* 4 EXISTS"
    raw.send("DONE\r\n")
    _, tagged = raw.until("r99")
    assert " OK " in tagged, tagged
    untagged, tagged = raw.cmd("UID fetch 4 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert "Subject: while idle" in untagged[0], untagged
    _, tagged = raw.cmd("logout")
    assert " OK " in tagged, tagged


SCENARIOS = {
    "thunderbird": scenario_thunderbird,
    "auth": scenario_auth,
    "mailboxes": scenario_mailboxes,
    "messages": scenario_messages,
    "concurrent": scenario_concurrent,
    "idle": scenario_idle,
    "qresync": scenario_qresync,
    "limits": scenario_limits,
}

SCENARIOS[scenario]()
print(f"{scenario}: ok")
