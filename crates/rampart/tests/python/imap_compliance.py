"""IMAP compliance scenarios, each written from the RFCs' own text and
examples, driven over a raw socket so every response line can be checked
exactly. Called by crates/rampart/tests/imap_compliance.rs (against Rampart)
and by crates/rampart/tests/dovecot_compliance.sh (against a private Dovecot,
to check that these expectations hold on a reference server) as:

    python3 imap_compliance.py SCENARIO HOST PORT USER PASS

Environment:
    COMPLIANCE_CAFILE           connect with implicit TLS, trusting this CA
    COMPLIANCE_SUBMISSION_PORT  SMTP submission port (STARTTLS), for sent_dedup

Each scenario asserts what it sees, raises on the first surprise and prints
"SCENARIO: ok" when everything held. A part that needs a capability the
server does not advertise prints "skipped: ..." and is not checked.
"""

import contextlib
import os
import re
import smtplib
import socket
import ssl
import sys
import time

scenario, HOST, PORT, USER, PASSWORD = sys.argv[1:6]
PORT = int(PORT)
CAFILE = os.environ.get("COMPLIANCE_CAFILE")
SUBMISSION_PORT = os.environ.get("COMPLIANCE_SUBMISSION_PORT")


def tls_context():
    ctx = ssl.create_default_context(cafile=CAFILE)
    ctx.check_hostname = True
    return ctx


FAILURES = []


@contextlib.contextmanager
def part(name):
    """One checked point of a scenario: a failed assertion is recorded and the
    scenario goes on with its next part, so one run shows every broken point."""
    try:
        yield
    except AssertionError as e:
        FAILURES.append(f"{name}: {e}")


# --- A raw IMAP client ---------------------------------------------------


def tokens(line):
    """Splits one response line (bytes, literals inline as {n}CRLF data) into
    nested lists of str: atoms and strings become str (NIL becomes None),
    parenthesised lists become lists. Brackets stay inside atoms."""
    pos = 0
    stack = [[]]
    n = len(line)
    while pos < n:
        c = line[pos : pos + 1]
        if c in (b" ", b"\r", b"\n"):
            pos += 1
        elif c == b"(":
            stack.append([])
            pos += 1
        elif c == b")":
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif c == b'"':
            pos += 1
            out = bytearray()
            while line[pos : pos + 1] != b'"':
                if line[pos : pos + 1] == b"\\":
                    pos += 1
                out += line[pos : pos + 1]
                pos += 1
            pos += 1
            stack[-1].append(out.decode("utf-8", "replace"))
        elif c == b"{":
            end = line.index(b"}", pos)
            size = int(line[pos + 1 : end].rstrip(b"+"))
            start = end + 3  # past "}\r\n"
            stack[-1].append(line[start : start + size].decode("utf-8", "replace"))
            pos = start + size
        else:
            # An atom runs to a space or parenthesis, except inside a
            # bracketed section (BODY[HEADER.FIELDS (A B)], [PERMANENTFLAGS
            # (...)]); a "[" with no "]" after it is an ordinary ATOM-CHAR.
            start = pos
            while pos < n and line[pos : pos + 1] not in (b" ", b"(", b")", b"\r", b"\n"):
                if line[pos : pos + 1] == b"[":
                    close = line.find(b"]", pos)
                    if close != -1:
                        pos = close
                pos += 1
            text = line[start:pos].decode("utf-8", "replace")
            stack[-1].append(None if text.upper() == "NIL" else text)
    return stack[0]


class Raw:
    """One IMAP connection; responses come back as lists of lines (str, CRLF
    stripped, literals inline)."""

    def __init__(self):
        sock = socket.create_connection((HOST, PORT), timeout=30)
        if CAFILE:
            sock = tls_context().wrap_socket(sock, server_hostname=HOST)
        self.sock = sock
        self.file = sock.makefile("rb")
        self.greeting = self.line()
        self.n = 0
        self.caps = set()

    def raw_line(self):
        line = self.file.readline()
        assert line, "connection closed"
        # A line that ends in a literal announcement continues after the literal.
        m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
        while m:
            data = self.file.read(int(m.group(1)))
            rest = self.file.readline()
            line = line + data + rest
            m = re.search(rb"\{(\d+)\+?\}\r\n$", rest)
        return line

    def line(self):
        return self.raw_line().decode("utf-8", "replace").rstrip("\r\n")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def tag(self):
        self.n += 1
        return f"c{self.n}"

    def cmd(self, text):
        """Sends a command; returns (untagged lines, tagged line)."""
        tag = self.tag()
        self.send(f"{tag} {text}\r\n".encode() if isinstance(text, str) else tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        lines = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return lines, line
            lines.append(line)

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert tagged.split(" ")[1] == "OK", f"{text!r}: {tagged} after {untagged}"
        return untagged, tagged

    def status_of(self, text):
        """The tagged status word (OK, NO or BAD) of a command."""
        untagged, tagged = self.cmd(text)
        return tagged.split(" ")[1], untagged, tagged

    def login(self):
        self.ok(f"LOGIN {quote(USER)} {quote(PASSWORD)}")
        untagged, _ = self.ok("CAPABILITY")
        self.caps = {c.upper() for l in untagged if l.startswith("* CAPABILITY ") for c in l.split()[2:]}
        return self

    def append(self, mailbox, message, flags=None, date=None):
        """APPEND with a synchronising literal (RFC 9051 §4.3): the command
        line up to the literal, then the server's "+" continuation, then the
        octets. Returns (untagged, tagged); when the server refuses before the
        continuation, the literal is not sent."""
        tag = self.tag()
        parts = [tag, "APPEND", mailbox]
        if flags is not None:
            parts.append(f"({flags})")
        if date is not None:
            parts.append(f'"{date}"')
        self.send(" ".join(parts).encode() + b" {%d}\r\n" % len(message))
        lines = []
        while True:
            line = self.line()
            if line.startswith("+"):
                break
            if line.startswith(tag + " "):
                return lines, line
            lines.append(line)
        self.send(message + b"\r\n")
        more, tagged = self.until(tag)
        return lines + more, tagged

    def append_ok(self, mailbox, message, flags=None, date=None):
        untagged, tagged = self.append(mailbox, message, flags, date)
        assert tagged.split(" ")[1] == "OK", f"APPEND {mailbox}: {tagged}"
        return untagged, tagged

    def close(self):
        try:
            self.cmd("LOGOUT")
        except (AssertionError, OSError):
            pass
        self.sock.close()


def session():
    return Raw().login()


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def message(subject, date="Mon, 1 Jun 2026 10:00:00 +0000", headers="", body="Body.\r\n",
            sender="Bob <bob@example.org>", to="Alice <alice@example.org>"):
    head = f"From: {sender}\r\n" if sender is not None else ""
    head += f"To: {to}\r\n" if to is not None else ""
    return (f"{head}Subject: {subject}\r\nDate: {date}\r\n{headers}\r\n{body}").encode()


def numbers(untagged, word):
    """The numbers of the untagged `* WORD n n n` response (exactly one such line)."""
    found = [l for l in untagged if l.upper().startswith(f"* {word} ") or l.upper() == f"* {word}"]
    assert len(found) == 1, f"expected one * {word} in {untagged}"
    return [int(x) for x in found[0].split()[2:] if x.isdigit()]


def search(raw, criteria):
    untagged, _ = raw.ok(f"SEARCH {criteria}")
    return numbers(untagged, "SEARCH")


def expect_search(raw, criteria, expected):
    found = search(raw, criteria)
    assert found == expected, f"SEARCH {criteria}: {found}, expected {expected}"


def untagged_flags(untagged):
    """The flag lists of every untagged FLAGS response, lower-cased."""
    out = []
    for l in untagged:
        if l.upper().startswith("* FLAGS "):
            out.append([f.lower() for f in tokens(l.encode())[2]])
    return out


def permanent_flags(untagged):
    for l in untagged:
        m = re.match(r"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]", l, re.I)
        if m:
            return [f.lower() for f in m.group(1).split()]
    raise AssertionError(f"no PERMANENTFLAGS in {untagged}")


def fetch_flags(raw, seq):
    untagged, _ = raw.ok(f"FETCH {seq} (FLAGS)")
    for l in untagged:
        t = tokens(l.encode())
        if len(t) >= 4 and t[1] == str(seq) and t[2].upper() == "FETCH":
            items = t[3]
            i = [str(x).upper() for x in items].index("FLAGS")
            return [f.lower() for f in items[i + 1]]
    raise AssertionError(f"no FETCH {seq} in {untagged}")


def recent_count(untagged):
    found = [int(l.split()[1]) for l in untagged if re.match(r"\* \d+ RECENT$", l, re.I)]
    assert len(found) <= 1, untagged
    return found[0] if found else None


def exists_count(untagged):
    found = [int(l.split()[1]) for l in untagged if re.match(r"\* \d+ EXISTS$", l, re.I)]
    return found[-1] if found else None


def delimiter(raw):
    untagged, _ = raw.ok('LIST "" ""')
    t = tokens(untagged[0].encode())
    return t[3] or "/"


def list_entries(untagged, verb="LIST"):
    """(flags lower-cased, name, extended items) of each untagged LIST/LSUB line."""
    out = []
    for l in untagged:
        t = tokens(l.encode())
        if len(t) >= 5 and t[0] == "*" and t[1].upper() == verb:
            out.append(([f.lower() for f in t[2]], t[4], t[5] if len(t) > 5 else None))
    return out


def mutf7(name):
    """RFC 3501 §5.1.3 modified UTF-7: printable ASCII stands for itself
    ("&" as "&-"), anything else is base64 of UTF-16BE between "&" and "-"
    with "," for "/"."""
    import base64

    out, run = [], ""

    def flush():
        if run:
            b = base64.b64encode(run.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            run = ""
            out.append("&-" if ch == "&" else ch)
        else:
            run += ch
    flush()
    return "".join(out)


# --- 1: keywords in FLAGS and PERMANENTFLAGS ------------------------------


def scenario_keywords():
    a = session()
    a.ok("CREATE kw")
    a.append_ok("kw", message("one"), flags="$Kw1")
    with part('SELECT lists keywords in FLAGS and PERMANENTFLAGS'):
        # RFC 9051 §7.3.5: FLAGS lists the flags applicable in this mailbox (at a
        # minimum the system flags), so a keyword in use must be there; §6.3.2 and
        # §7.1: PERMANENTFLAGS lists the flags the client can change permanently,
        # with \* when new keywords can be created.
        untagged, tagged = a.ok("SELECT kw")
        assert "[READ-WRITE]" in tagged, tagged
        (flags,) = untagged_flags(untagged)
        for f in ["\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft", "$kw1"]:
            assert f in flags, f"{f} missing from FLAGS {flags}"
        perm = permanent_flags(untagged)
        assert "$kw1" in perm and "\\*" in perm, f"PERMANENTFLAGS {perm}"

    with part('STORE of a new keyword sends FLAGS first'):
        # A STORE that brings a keyword into use changes the set of applicable
        # flags: the server tells the client with a new FLAGS response ("The
        # update from the FLAGS response MUST be recorded by the client") before
        # it reports a message carrying the keyword.
        untagged, _ = a.ok("STORE 1 +FLAGS (NewKw)")
        all_flags = untagged_flags(untagged)
        assert any("newkw" in f for f in all_flags), f"no FLAGS with NewKw after STORE: {untagged}"
        flags_at = min(i for i, l in enumerate(untagged) if l.upper().startswith("* FLAGS ") and "newkw" in l.lower())
        fetch_at = min(i for i, l in enumerate(untagged) if " FETCH " in l.upper())
        assert flags_at < fetch_at, f"FLAGS must precede the FETCH that uses NewKw: {untagged}"
        assert "newkw" in fetch_flags(a, 1)

    with part('APPEND of a new keyword sends FLAGS'):
        # APPEND to the selected mailbox with a new keyword: RFC 9051 §6.3.12, the
        # server SHOULD send EXISTS at once; the response that announces the new
        # message also announces its keyword.
        untagged, _ = a.append_ok("kw", message("two"), flags="AppKw")
        if exists_count(untagged) is None:
            untagged, _ = a.ok("NOOP")
        assert exists_count(untagged) == 2, untagged
        assert any("appkw" in f for f in untagged_flags(untagged)), f"no FLAGS with AppKw beside the EXISTS: {untagged}"
        assert "appkw" in fetch_flags(a, 2)
    a.close()


# --- 3: THREAD and SORT SUBJECT (RFC 5256) --------------------------------

# The threading set. Dates are distinct so that no tie-break is involved.
THREAD_SET = [
    # (seq) Message-ID, Subject, day of June 2026, extra headers
    ("<a@t>", "topic one", 1, ""),  # 1
    ("<b@t>", "Re: topic one", 2, "In-Reply-To: <a@t>\r\nReferences: <a@t>\r\n"),  # 2
    ("<c@t>", "Re: topic one", 3, "References: <a@t> <b@t>\r\n"),  # 3
    ("<d@t>", "Re: lost parent", 4, "References: <missing@t>\r\n"),  # 4
    ("<e@t>", "Re: two orphans", 5, "References: <gone@t>\r\n"),  # 5
    ("<f@t>", "Re: two orphans", 6, "In-Reply-To: <gone@t>\r\n"),  # 6
    ("<g@t>", "Re: topic one", 7, ""),  # 7
    ("<h@t>", "lonely", 0, ""),  # 8 (the oldest: 31 May)
    ("<i@t>", "same", 8, ""),  # 9
    ("<j@t>", "same", 9, ""),  # 10
]


def june(day, time="10:00:00 +0000"):
    import datetime

    d = datetime.date(2026, 6, 1) + datetime.timedelta(days=day - 1)
    return d.strftime("%a, ") + f"{d.day} " + d.strftime("%b %Y ") + time


def scenario_thread_sort():
    a = session()
    for cap in ["THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"]:
        assert cap in a.caps, f"{cap} not advertised: {a.caps}"
    a.ok("CREATE threads")
    for mid, subject, day, extra in THREAD_SET:
        a.append_ok("threads", message(subject, date=june(day), headers=f"Message-ID: {mid}\r\n{extra}"))
    a.ok("SELECT threads")

    with part('THREAD=REFERENCES'):
        # REFERENCES, RFC 5256 §3 steps, by hand:
        # (1) links: a->b (from 2's References), b->c (3's References a b),
        #     missing->d, gone->e, gone->f (6 has no References, so the first
        #     In-Reply-To id is its parent); g, h, i, j have none.
        # (2) root set: a, [missing], [gone], g, h, i, j.
        # (3) pruning: [missing] has one child, so d is promoted to the root
        #     ("unless there is only one child"); [gone] has two children, which
        #     would become children of the root, so the dummy stays.
        # (4) sort by sent date (a dummy by its first child): h(31 May) a(1)
        #     d(4) [gone](e, 5) g(7) i(8) j(9).
        # (5) subject table: lonely->h, topic one->a, lost parent->d, two
        #     orphans->[gone], same->i. Merging: g ("Re: topic one", a reply)
        #     becomes a child of a (not a reply); j and i are both non-replies
        #     with subject "same", so a new dummy takes both.
        # (6) siblings by date: a's children b(2) g(7); b's child c; [gone]'s
        #     e f; the new dummy's i j, sorted among the roots by i (8).
        untagged, _ = a.ok("THREAD REFERENCES US-ASCII ALL")
        assert untagged == ["* THREAD (8)(1 (2 3)(7))(4)((5)(6))((9)(10))"], untagged

    with part('THREAD=ORDEREDSUBJECT'):
        # ORDEREDSUBJECT, RFC 5256 §3: sort by base subject then sent date, one
        # thread per base subject whose first message is the parent of all the
        # others (siblings, no grandchildren), threads ordered by their first
        # message's date: lonely [8], topic one [1 2 3 7], lost parent [4], two
        # orphans [5 6], same [9 10]. One child is written "(5 6)" since
        # thread-nested needs two or more thread-lists (§4 ABNF).
        untagged, _ = a.ok("THREAD ORDEREDSUBJECT US-ASCII ALL")
        assert untagged == ["* THREAD (8)(1 (2)(3)(7))(4)(5 6)(9 10)"], untagged

    # SORT SUBJECT by base subject (RFC 5256 §2.1), compared with
    # i;ascii-casemap (RFC 4790 §9.2: a-z upper-cased, then octet order, so
    # "_" 0x5F sorts after "Z" 0x5A); exact ties keep mailbox order (§3).
    sort_set = [
        "zebra",  # 1 -> ZEBRA
        "_under",  # 2 -> _UNDER (after every letter)
        "Re[2]: apple",  # 3 -> step 3, subj-refwd "re" subj-blob ":" -> apple
        "[fwd: banana]",  # 4 -> step 6, subj-fwd-hdr ... subj-fwd-trl -> banana
        "cherry (fwd)",  # 5 -> step 2, subj-trailer -> cherry
        "Apple",  # 6 -> APPLE, equal to 3: mailbox order
        "Fwd: Re: banana (fwd)",  # 7 -> trailer, then "Fwd:" and "Re:" -> banana
        "[list] Re: date",  # 8 -> subj-leader "[list] Re:" -> date
        "[list] eel",  # 9 -> step 4, a leading blob goes when text remains -> eel
    ]
    a.ok("CREATE sorting")
    for i, subject in enumerate(sort_set):
        a.append_ok("sorting", message(subject, date=june(10 - i)))
    a.ok("SELECT sorting")
    with part('SORT SUBJECT'):
        untagged, _ = a.ok("SORT (SUBJECT) UTF-8 ALL")
        # APPLE(3 6) BANANA(4 7) CHERRY(5) DATE(8) EEL(9) ZEBRA(1) _UNDER(2)
        assert numbers(untagged, "SORT") == [3, 6, 4, 7, 5, 8, 9, 1, 2], untagged
    with part('SORT REVERSE SUBJECT'):
        untagged, _ = a.ok("SORT (REVERSE SUBJECT) UTF-8 ALL")
        # REVERSE reverses the criterion (RFC 5256 §3), but messages that still
        # "exactly match according to the sorting criteria" keep mailbox order:
        # 3 before 6, 4 before 7.
        assert numbers(untagged, "SORT") == [2, 1, 9, 8, 5, 4, 7, 3, 6], untagged
    a.close()


# --- 4: SORT by address, SEARCH TO a group name ---------------------------


def scenario_sort_addresses():
    a = session()
    assert "SORT" in a.caps, a.caps
    a.ok("CREATE addrs")
    # RFC 5256 §3: FROM/TO/CC sort on the addr-mailbox (local part) of the
    # first address; a missing header is the empty string, which collates
    # first. Group syntax (RFC 5322 §3.4) is not an address: its name is
    # skipped and the first member counts.
    msgs = [
        # From key, To key, Cc key
        ('"Aaron" <zoe@b.example>', "Aardvarks: yann@x.example;", "abe@x.example"),  # zoe, yann, abe
        ('"Zack" <adam@z.example>', "bob@x.example", None),  # adam, bob, ""
        ("<mike@a.example>", "mallory@x.example, alice@x.example", '"Bee" <zed@x.example>, able@x.example'),  # mike, mallory, zed
    ]
    for i, (frm, to, cc) in enumerate(msgs):
        extra = f"Cc: {cc}\r\n" if cc else ""
        extra += f"Message-ID: <m{i}@addrs.test>\r\n"
        a.append_ok("addrs", message(f"m{i}", sender=frm, to=to, headers=extra))
    a.ok("SELECT addrs")
    with part('SORT FROM'):
        untagged, _ = a.ok("SORT (FROM) US-ASCII ALL")
        assert numbers(untagged, "SORT") == [2, 3, 1], untagged  # adam mike zoe
    with part('SORT CC'):
        untagged, _ = a.ok("SORT (CC) US-ASCII ALL")
        assert numbers(untagged, "SORT") == [2, 1, 3], untagged  # "" abe zed
    with part('SEARCH TO a group name'):
        # RFC 9051 §6.4.4: TO matches the envelope structure's TO field, which
        # carries a group's name as the mailbox of its start-of-group address
        # (FETCH ENVELOPE, §7.5.2).
        expect_search(a, 'TO "Aardvarks"', [1])
        expect_search(a, 'TO "yann"', [1])
    with part("SEARCH HEADER matches the field's text, brackets included"):
        # RFC 9051 §6.4.4 HEADER: "contains the specified string in the text
        # of the header (what comes after the colon)", here " <m1@addrs.test>".
        expect_search(a, 'HEADER Message-ID "<m1@addrs.test>"', [2])
        expect_search(a, 'HEADER Message-ID "m1@addrs"', [2])
    with part('SORT TO skips group syntax'):
        # Last, as the one point a reference server may read otherwise (Dovecot
        # 2.3 sorts message 1 by its group name "Aardvarks"): the group's name
        # is a phrase, not an addr-mailbox, so yann is the first To address.
        untagged, _ = a.ok("SORT (TO) US-ASCII ALL")
        assert numbers(untagged, "SORT") == [2, 3, 1], untagged  # bob mallory yann
    a.close()


# --- 5: SENTBEFORE/SENTON/SENTSINCE ---------------------------------------


def scenario_sent_dates():
    a = session()
    a.ok("CREATE sent-dates")
    # 1: 1 June in its own zone, 2 June 04:30 in UTC.
    a.append_ok("sent-dates", message("late", date="Mon, 1 Jun 2026 23:30:00 -0500"))
    # 2: 2 June in its own zone, 1 June 15:30 in UTC.
    a.append_ok("sent-dates", message("early", date="Tue, 2 Jun 2026 00:30:00 +0900"))
    a.ok("SELECT sent-dates")
    # RFC 9051 §6.4.4: the SENT* keys compare the Date: header "disregarding
    # time and timezone", i.e. the date as written.
    with part("SENTON/SENTBEFORE/SENTSINCE use the Date's own day"):
        expect_search(a, "SENTON 1-Jun-2026", [1])
        expect_search(a, "SENTON 2-Jun-2026", [2])
        expect_search(a, "SENTBEFORE 2-Jun-2026", [1])
        expect_search(a, "SENTSINCE 2-Jun-2026", [2])
        expect_search(a, "SENTSINCE 1-Jun-2026", [1, 2])
        expect_search(a, "SENTBEFORE 1-Jun-2026", [])
        expect_search(a, "SENTSINCE 3-Jun-2026", [])
    a.close()


# --- 6: \Recent -----------------------------------------------------------


def scenario_recent():
    # RFC 3501 §2.3.2 \Recent: "This session is the first session to have
    # been notified about this message; if the session is read-write,
    # subsequent sessions will not see \Recent set for this message."
    a, b = session(), session()
    b.ok("CREATE recent1")
    untagged, _ = a.ok("SELECT recent1")
    assert exists_count(untagged) == 0 and recent_count(untagged) == 0, untagged
    with part('the session that saw the APPEND has it \\Recent'):
        b.append_ok("recent1", message("fresh"))
        untagged, _ = a.ok("NOOP")
        assert exists_count(untagged) == 1, untagged
        assert recent_count(untagged) == 1, f"no * 1 RECENT on NOOP: {untagged}"
        assert "\\recent" in fetch_flags(a, 1)
        # RFC 3501 §6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT.
        expect_search(a, "RECENT", [1])
        expect_search(a, "NEW", [1])
        expect_search(a, "OLD", [])
    with part('a later session does not see it \\Recent'):
        c = session()
        untagged, _ = c.ok("SELECT recent1")
        assert exists_count(untagged) == 1 and recent_count(untagged) == 0, untagged
        assert "\\recent" not in fetch_flags(c, 1)
        expect_search(c, "RECENT", [])
        expect_search(c, "NEW", [])
        expect_search(c, "OLD", [1])
        c.close()

    with part('STATUS RECENT, EXAMINE does not claim'):
        # STATUS RECENT counts messages with \Recent; EXAMINE "MUST NOT cause
        # messages to lose the \Recent flag" (RFC 3501 §6.3.2).
        b.ok("CREATE recent2")
        b.append_ok("recent2", message("waiting"))
        untagged, _ = b.ok("STATUS recent2 (RECENT MESSAGES)")
        assert re.search(r"\(.*RECENT 1\b", untagged[0]), untagged
        d = session()
        untagged, tagged = d.ok("EXAMINE recent2")
        assert "[READ-ONLY]" in tagged and recent_count(untagged) == 1, untagged
        d.close()
        untagged, _ = b.ok("STATUS recent2 (RECENT)")
        assert re.search(r"RECENT 1\b", untagged[0]), f"EXAMINE claimed \\Recent: {untagged}"
        e = session()
        untagged, _ = e.ok("SELECT recent2")
        assert recent_count(untagged) == 1, untagged
        f = session()
        untagged, _ = f.ok("SELECT recent2")
        assert recent_count(untagged) == 0, f"a later SELECT still sees \\Recent: {untagged}"
        e.close()
        f.close()

    with part('no \\Recent in an IMAP4rev2 session'):
        # RFC 9051 Appendix E (changes from IMAP4rev1) removed the \Recent
        # flag and the RECENT response: an IMAP4rev2 session sees neither.
        if "IMAP4REV2" not in a.caps:
            print("skipped: IMAP4rev2 part (not advertised)")
        else:
            g = session()
            untagged, _ = g.ok("ENABLE IMAP4rev2")
            assert any(l.upper().startswith("* ENABLED") and "IMAP4REV2" in l.upper() for l in untagged), untagged
            b.ok("CREATE recent3")
            untagged, _ = g.ok("SELECT recent3")
            assert recent_count(untagged) is None, f"RECENT in an IMAP4rev2 SELECT: {untagged}"
            b.append_ok("recent3", message("rev2"))
            untagged, _ = g.ok("NOOP")
            assert exists_count(untagged) == 1, untagged
            assert recent_count(untagged) is None, f"RECENT to an IMAP4rev2 session: {untagged}"
            assert "\\recent" not in fetch_flags(g, 1)
            g.close()
    a.close()
    b.close()


# --- 7: names and dates ---------------------------------------------------


def scenario_names_dates():
    a = session()
    with part('CREATE/LIST/SELECT a[b'):
        # "[" is an ATOM-CHAR (RFC 9051 §9: only "]" is a resp-special), so a[b
        # is a valid atom and mailbox name.
        a.ok("CREATE a[b")
        untagged, _ = a.ok('LIST "" "a[b"')
        assert [e[1] for e in list_entries(untagged)] == ["a[b"], untagged
        untagged, _ = a.ok("SELECT a[b")
    with part('SELECT of a missing name is NO'):
        # A well-formed name that does not exist is a NO (RFC 9051 §6.3.2), never BAD.
        status, _, tagged = a.status_of('SELECT "nonexistent["')
        assert status == "NO", tagged
    a.ok("SELECT INBOX")
    with part('SEARCH BEFORE 31-Feb-2026 is BAD'):
        # date-day 31 of February is no date (RFC 9051 §9 date, §6.4.4): a
        # syntax error, BAD.
        status, _, tagged = a.status_of("SEARCH BEFORE 31-Feb-2026")
        assert status == "BAD", tagged
    with part('APPEND dated 29-Feb-2023 is refused'):
        # 2023 is no leap year: an APPEND date-time that names no instant fails.
        untagged, tagged = a.append("INBOX", message("leap"), date="29-Feb-2023 10:00:00 +0000")
        assert tagged.split(" ")[1] in ("BAD", "NO"), tagged
        untagged, _ = a.ok("STATUS INBOX (MESSAGES)")
        assert re.search(r"MESSAGES 0\b", untagged[0]), f"the refused APPEND stored a message: {untagged}"

    with part('NFD and NFC names are one mailbox'):
        # RFC 6855 §3 and RFC 9051 §5.1 want mailbox names in Net-Unicode
        # (RFC 5198: NFC), so the decomposed and the composed spelling of
        # "Café" name one mailbox.
        nfd, nfc = "Cafe\u0301", "Caf\u00e9"
        a.ok(f"CREATE {quote(mutf7(nfd))}")
        untagged, tagged = a.cmd(f"SELECT {quote(mutf7(nfc))}")
        assert " OK " in tagged, f"NFC name did not open the NFD-created mailbox: {tagged}"
        untagged, _ = a.ok('LIST "" "Caf*"')
        assert len(list_entries(untagged)) == 1, f"two spellings, two mailboxes: {untagged}"
        # In UTF-8 too: after ENABLE UTF8=ACCEPT (RFC 6855 §3), or ENABLE
        # IMAP4rev2, whose mailbox names are UTF-8 (RFC 9051 §5.1).
        enable = next((c for c in ["UTF8=ACCEPT", "IMAP4REV2"] if c in a.caps), None)
        if enable:
            u = session()
            u.ok(f"ENABLE {enable}")
            untagged, tagged = u.cmd(b"SELECT " + quote(nfc).encode())
            assert " OK " in tagged, f"UTF-8 NFC name after ENABLE {enable}: {tagged}"
            u.close()
        else:
            print("skipped: UTF-8 names (neither UTF8=ACCEPT nor IMAP4rev2 advertised)")
    a.close()


# --- 8: subscriptions -----------------------------------------------------


def scenario_subscriptions():
    a = session()
    sep = delimiter(a)
    with part('CREATE does not subscribe'):
        # CREATE and SUBSCRIBE are separate: RFC 9051 §6.3.4 creates a mailbox,
        # §6.3.7 adds a name to the subscribed set.
        a.ok("CREATE sub1")
        untagged, _ = a.ok('LSUB "" "sub1"')
        assert list_entries(untagged, "LSUB") == [], f"CREATE subscribed: {untagged}"
        untagged, _ = a.ok('LIST (SUBSCRIBED) "" "sub1"')
        assert list_entries(untagged) == [], untagged

    with part('DELETE keeps the subscription'):
        # "A server MUST NOT unilaterally remove an existing mailbox name from
        # the subscription list even if a mailbox by that name no longer
        # exists" (RFC 9051 §6.3.7); LSUB's flags for it are not specified, but
        # RFC 5258 §3.1 shows such a name with \NonExistent under LIST
        # (SUBSCRIBED).
        a.ok("SUBSCRIBE sub1")
        a.ok("DELETE sub1")
        untagged, _ = a.ok('LSUB "" "*"')
        lsub = {e[1]: e[0] for e in list_entries(untagged, "LSUB")}
        assert "sub1" in lsub, f"DELETE unsubscribed: {untagged}"
        untagged, _ = a.ok('LIST (SUBSCRIBED) "" "*"')
        listed = {e[1]: e[0] for e in list_entries(untagged)}
        assert "sub1" in listed and "\\nonexistent" in listed["sub1"] and "\\subscribed" in listed["sub1"], untagged

    with part('RENAME keeps the old subscription'):
        # RENAME moves the mailbox, not the subscription: the old name stays
        # subscribed (the same MUST NOT).
        a.ok("CREATE ren1")
        a.ok("SUBSCRIBE ren1")
        a.ok("RENAME ren1 ren2")
        untagged, _ = a.ok('LSUB "" "ren*"')
        assert "ren1" in [e[1] for e in list_entries(untagged, "LSUB")], f"RENAME dropped the old subscription: {untagged}"

    # RFC 5258 §3.5 (CHILDINFO) and §4 (RECURSIVEMATCH): with
    # RECURSIVEMATCH, a parent that matches "%" but is not itself
    # subscribed is returned because a descendant is, with CHILDINFO
    # ("SUBSCRIBED") and without \Subscribed.
    a.ok("CREATE par")
    a.ok(f"CREATE par{sep}kid")
    with part('LIST (SUBSCRIBED RECURSIVEMATCH) CHILDINFO'):
        a.ok(f"SUBSCRIBE par{sep}kid")
        untagged, _ = a.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        entries = {e[1]: e for e in list_entries(untagged)}
        assert "par" in entries, f"no parent of a subscribed child: {untagged}"
        flags, _, ext = entries["par"]
        assert "\\subscribed" not in flags, untagged
        assert ext and [str(x).upper() for x in ext[:1]] == ["CHILDINFO"] and [s.upper() for s in ext[1]] == ["SUBSCRIBED"], \
            f"no CHILDINFO (\"SUBSCRIBED\"): {untagged}"
        assert f"par{sep}kid" not in entries, untagged
    with part('LSUB % returns an unsubscribed parent with \\Noselect'):
        # RFC 3501 §6.3.9: "If "foo/bar" is subscribed but "foo" is not, a "%"
        # wildcard to LSUB must return foo, not foo/bar, in the LSUB response,
        # and it MUST be flagged with the \Noselect attribute."
        untagged, _ = a.ok('LSUB "" "%"')
        lsub = {e[1]: e[0] for e in list_entries(untagged, "LSUB")}
        assert "par" in lsub and "\\noselect" in lsub["par"], f"LSUB % parent: {untagged}"
        assert f"par{sep}kid" not in lsub, untagged
    a.close()


# --- 10: CONDSTORE --------------------------------------------------------


def modseqs(untagged):
    out = {}
    for l in untagged:
        m = re.match(r"\* (\d+) FETCH .*MODSEQ \((\d+)\)", l, re.I)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def scenario_condstore():
    a = session()
    assert "CONDSTORE" in a.caps and "ESEARCH" in a.caps, a.caps
    a.ok("CREATE cs")
    for i in range(3):
        a.append_ok("cs", message(f"cs{i}"))
    a.ok("SELECT cs")
    highest = []
    with part('first FETCH MODSEQ sends OK [HIGHESTMODSEQ]'):
        # RFC 7162 §3.1: FETCH with MODSEQ is a CONDSTORE-enabling command; "the
        # server MUST ... send ... an untagged OK [HIGHESTMODSEQ]" when the
        # mailbox was selected before CONDSTORE was enabled, before the tagged OK.
        untagged, _ = a.ok("FETCH 1 (MODSEQ)")
        highest += [int(m.group(1)) for l in untagged for m in [re.match(r"\* OK \[HIGHESTMODSEQ (\d+)\]", l, re.I)] if m]
        assert len(highest) == 1, f"no * OK [HIGHESTMODSEQ] after the first enabling FETCH: {untagged}"
        assert 1 in modseqs(untagged), untagged
    # Change message 2 last, so it holds the mailbox's highest mod-sequence
    # (some servers assign distinct mod-sequences only once CONDSTORE is on).
    untagged, _ = a.ok("STORE 2 +FLAGS (\\Flagged)")
    untagged, _ = a.ok("FETCH 1:3 (MODSEQ)")
    m = modseqs(untagged)
    assert sorted(m) == [1, 2, 3], m
    with part("HIGHESTMODSEQ is the highest mod-sequence"):
        # HIGHESTMODSEQ was the highest of all messages then; a later change
        # gets a greater mod-sequence (RFC 7162 §3.1).
        assert highest, "no HIGHESTMODSEQ to compare"
        assert highest[0] >= max(m[1], m[3]) and m[2] > highest[0], (highest, m)

    def esearch(options, expected):
        """SEARCH RETURN (options) MODSEQ 1 answers exactly
        `* ESEARCH (TAG "tag") expected` (RFC 4731 §3.1, RFC 4466 §2.6.2)."""
        untagged, tagged = a.ok(f"SEARCH RETURN ({options}) MODSEQ 1")
        tag = tagged.split(" ")[0]
        want = f'* ESEARCH (TAG "{tag}") {expected}'
        assert [l for l in untagged if l.upper().startswith("* ESEARCH")] == [want], f"{untagged}, expected {want}"

    with part("SEARCH RETURN (MIN MAX) MODSEQ"):
        # RFC 4731 §3.2 (restated by RFC 7162 §3.1.5): with MIN and MAX and
        # neither ALL nor COUNT, MODSEQ is the highest mod-sequence of the two
        # returned messages (1 and 3), not of every match (2 is higher).
        esearch("MIN MAX", f"MIN 1 MAX 3 MODSEQ {max(m[1], m[3])}")
    with part("SEARCH RETURN (MIN) MODSEQ"):
        # A single MIN: the found message's mod-sequence.
        esearch("MIN", f"MIN 1 MODSEQ {m[1]}")
    with part("SEARCH RETURN (ALL) MODSEQ"):
        # Otherwise, the highest of all messages being returned: ALL returns
        # every match.
        esearch("ALL", f"ALL 1:3 MODSEQ {m[2]}")
    a.close()


# --- 12: APPEND through a synchronising literal ---------------------------


def scenario_append_literal():
    a = session()
    body = message("literal", body="Line one.\r\nLine two, with {braces} and \"quotes\".\r\n")
    # Raw.append sends "APPEND INBOX {n}", waits for the "+" continuation
    # (RFC 9051 §7.6), then the octets.
    untagged, tagged = a.append("INBOX", body, flags="\\Seen")
    assert tagged.split(" ")[1] == "OK", tagged
    a.ok("SELECT INBOX")
    tag = a.tag()
    a.send(f"{tag} FETCH 1 (BODY.PEEK[] FLAGS)\r\n")
    first = a.raw_line()
    rest, tagged = a.until(tag)
    assert " OK " in tagged, tagged
    m = re.search(rb"BODY\[\] \{(\d+)\}\r\n", first)
    assert m, first
    stored = first[m.end() : m.end() + int(m.group(1))]
    assert stored == body, f"stored octets differ: {stored!r}"
    assert "\\seen" in fetch_flags(a, 1)
    a.close()


# --- 15: Sent dedup -------------------------------------------------------


def scenario_sent_dedup():
    assert SUBMISSION_PORT, "COMPLIANCE_SUBMISSION_PORT not set"
    mid = "<dedup-1@compliance.test>"
    raw = message("sent once", sender=f"Alice <{USER}>", to=f"Alice <{USER}>",
                  headers=f"Message-ID: {mid}\r\n")
    with smtplib.SMTP(HOST, int(SUBMISSION_PORT), timeout=30) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        assert s.sendmail(USER, [USER], raw) == {}
    a = session()
    # The server keeps the submitted copy in Sent; look for it, allowing for
    # a server that files it a moment after the DATA reply.
    import time

    mid_text = mid.strip("<>")  # HEADER matches a substring of the text
    for _ in range(100):
        a.ok('EXAMINE "Sent"')
        untagged, _ = a.ok(f'UID SEARCH HEADER Message-ID "{mid_text}"')
        existing = numbers(untagged, "SEARCH")
        a.ok("CLOSE")
        if existing:
            break
        time.sleep(0.1)
    assert len(existing) == 1, f"the submitted message is not in Sent: {existing}"
    # Then the client stores its own copy, as Thunderbird does after sending.
    untagged, tagged = a.append_ok('"Sent"', raw, flags="\\Seen")
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", tagged, re.I)
    assert m, f"no APPENDUID: {tagged}"
    appended_uid = int(m.group(2))
    a.ok('SELECT "Sent"')
    untagged, _ = a.ok(f'UID SEARCH HEADER Message-ID "{mid_text}"')
    uids = numbers(untagged, "SEARCH")
    with part("Sent holds one copy"):
        assert uids == existing, f"Sent holds UIDs {uids} with {mid}; only {existing} should be there"
        untagged, _ = a.ok("SEARCH ALL")
        assert len(numbers(untagged, "SEARCH")) == 1, untagged
    with part("APPENDUID names the kept copy"):
        # RFC 4315 §3: APPENDUID gives the UID of the message in the
        # mailbox; when the server keeps the copy it already had, that one's.
        assert appended_uid == existing[0], f"APPENDUID {appended_uid}, the kept copy is UID {existing[0]}"
    a.close()
def scenario_sent_copy_off():
    """15: with the server's Sent copy turned off for the user (rampart user
    sent-copy ADDRESS off), submission files nothing and the client's own
    APPEND is stored as usual."""
    assert SUBMISSION_PORT, "COMPLIANCE_SUBMISSION_PORT not set"
    raw = message("client files it", sender=f"Alice <{USER}>", to=f"Alice <{USER}>",
                  headers="Message-ID: <own-copy@compliance.test>\r\n")
    with smtplib.SMTP(HOST, int(SUBMISSION_PORT), timeout=30) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        assert s.sendmail(USER, [USER], raw) == {}
    a = session()
    with part("submission filed nothing"):
        untagged, _ = a.ok('EXAMINE "Sent"')
        assert exists_count(untagged) == 0, untagged
    with part("the client's APPEND is stored"):
        _, tagged = a.append_ok('"Sent"', raw, flags="\\Seen")
        untagged, _ = a.ok('EXAMINE "Sent"')
        assert exists_count(untagged) == 1, untagged
    a.close()


def scenario_searchres():
    """SEARCHRES (RFC 5182, RFC 9051 §6.4.4.1): SEARCH RETURN (SAVE) keeps the
    result for `$` and answers no ESEARCH; with MIN or MAX only those are
    kept; `$` works in FETCH, STORE, SEARCH and UID commands; expunged
    messages drop out of it."""
    a = session()
    for i in range(1, 6):
        a.append_ok("INBOX", message(f"m{i}"), flags="\\Flagged" if i in (2, 3, 5) else None)
    a.ok("SELECT INBOX")
    with part("SAVE alone returns no ESEARCH"):
        untagged, _ = a.ok("SEARCH RETURN (SAVE) FLAGGED")
        assert not any(l.startswith("* ESEARCH") or l.startswith("* SEARCH") for l in untagged), untagged
    with part("FETCH $"):
        untagged, _ = a.ok("FETCH $ (UID)")
        seqs = sorted(int(l.split()[1]) for l in untagged if " FETCH " in l)
        assert seqs == [2, 3, 5], untagged
    with part("SEARCH $ combined with other keys"):
        expect = [3, 5]
        untagged, _ = a.ok("SEARCH $ NOT 2")
        assert numbers(untagged, "SEARCH") == expect, untagged
    with part("STORE $"):
        a.ok("STORE $ +FLAGS.SILENT (\\Deleted)")
        untagged, _ = a.ok("SEARCH DELETED")
        assert numbers(untagged, "SEARCH") == [2, 3, 5], untagged
        a.ok("STORE $ -FLAGS.SILENT (\\Deleted)")
    with part("SAVE with MIN keeps only the lowest"):
        untagged, _ = a.ok("SEARCH RETURN (SAVE MIN) FLAGGED")
        assert any("MIN 2" in l for l in untagged), untagged
        untagged, _ = a.ok("FETCH $ (UID)")
        assert [int(l.split()[1]) for l in untagged if " FETCH " in l] == [2], untagged
    with part("expunged messages leave $"):
        a.ok("SEARCH RETURN (SAVE) FLAGGED")
        a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        untagged, _ = a.ok("FETCH $ (FLAGS)")
        # Former 3 and 5 are now 2 and 4.
        assert sorted(int(l.split()[1]) for l in untagged if " FETCH " in l) == [2, 4], untagged
    a.close()


def scenario_write_timeout():
    """13: a client that stops reading in the middle of a large FETCH is
    disconnected once a write has made no progress for the server's write
    timeout, and its connection slot is free again. Run against a server
    allowing one connection per user, with a short write timeout."""
    a = session()
    line = b"x" * 998 + b"\r\n"
    for i in range(24):
        a.append_ok("INBOX", message(f"big {i}", body=(line * 500).decode()))
    a.close()
    # A reader with a small receive window that asks for everything (about
    # 12 MB, more than the socket buffers hold) and then reads nothing.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((HOST, PORT))
    if CAFILE:
        sock = tls_context().wrap_socket(sock, server_hostname=HOST)
    stalled = Raw.__new__(Raw)
    stalled.sock, stalled.file, stalled.n, stalled.caps = sock, sock.makefile("rb"), 0, set()
    stalled.greeting = stalled.line()
    stalled.login()
    stalled.ok("SELECT INBOX")
    stalled.send(b"w1 FETCH 1:* BODY[]\r\n")
    with part("the stalled client holds the only slot"):
        try:
            Raw().login()
            held = False
        except AssertionError:
            held = True
        assert held, "a second login succeeded while the first connection was open"
    with part("the slot is free again after the timeout"):
        freed = None
        for _ in range(240):
            try:
                freed = Raw().login()
                break
            except (AssertionError, OSError):
                time.sleep(0.25)
        assert freed is not None, "no login succeeded within a minute"
        freed.ok("NOOP")
        freed.close()
    with part("the stalled connection was closed before the FETCH completed"):
        data = b""
        try:
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError):
            pass
        assert b"\r\nw1 OK" not in data, "the whole FETCH was delivered"
        assert len(data) < 24 * 500 * 1000, f"{len(data)} bytes arrived"

def scenario_forged_from():
    """Issue 12 point 4: an authenticated user cannot submit a message whose
    From (or Sender) names someone else, nor one with two From fields; the
    server answers 553 5.7.1 and signs nothing."""
    assert SUBMISSION_PORT, "COMPLIANCE_SUBMISSION_PORT not set"
    for i, headers in enumerate([
        "From: Mayor <mayor@example.org>\r\n",
        f"From: {USER}\r\nFrom: mayor@example.org\r\n",
        "From : mayor@example.org\r\n",
        f"From: {USER}\r\nSender: mayor@example.org\r\n",
    ]):
        raw = (headers + f"To: {USER}\r\nSubject: forged {i}\r\n\r\nPay this invoice.\r\n").encode()
        with part(f"forged author {i} refused"):
            with smtplib.SMTP(HOST, int(SUBMISSION_PORT), timeout=30) as s:
                s.starttls(context=tls_context())
                s.login(USER, PASSWORD)
                try:
                    s.sendmail(USER, [USER], raw)
                    refused = None
                except smtplib.SMTPDataError as e:
                    refused = e
                assert refused is not None and refused.smtp_code == 553, f"accepted: {refused!r}"
    with part("nothing was delivered"):
        a = session()
        untagged, _ = a.ok("EXAMINE INBOX")
        assert exists_count(untagged) == 0, untagged
        a.close()


SCENARIOS = {
    "keywords": scenario_keywords,
    "thread_sort": scenario_thread_sort,
    "sort_addresses": scenario_sort_addresses,
    "sent_dates": scenario_sent_dates,
    "recent": scenario_recent,
    "names_dates": scenario_names_dates,
    "subscriptions": scenario_subscriptions,
    "condstore": scenario_condstore,
    "append_literal": scenario_append_literal,
    "sent_dedup": scenario_sent_dedup,
    "write_timeout": scenario_write_timeout,
    "sent_copy_off": scenario_sent_copy_off,
    "searchres": scenario_searchres,
    "forged_from": scenario_forged_from,
}

if __name__ == "__main__":
    SCENARIOS[scenario]()
    for failure in FAILURES:
        print(f"FAILED {failure}")
    if FAILURES:
        sys.exit(f"{scenario}: {len(FAILURES)} point(s) failed: " + "; ".join(f.split(":")[0] for f in FAILURES))
    print(f"{scenario}: ok")
