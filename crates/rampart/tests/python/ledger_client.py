"""Access-ledger scenarios driven by Python's imaplib against a running
Rampart. Called by crates/rampart/tests/ledger.rs as:

    python3 ledger_client.py SCENARIO IMAPS_PORT CAFILE PASSWORD [APP_PASSWORD]

intruder: the legitimate user (from 127.0.0.1, main password) fills three
mailboxes and reads and searches some mail; an intruder (from 127.0.0.2,
an app password) fetches 37 chosen messages from two mailboxes and
searches the third. Prints, as JSON, the subjects of those 37 messages and
every address in their From, To, Cc and Reply-To.

download: fetches messages one by one, appending the subject of each one
received whole to the file in argv[6], until the server goes away.

software (argv[5]: the MX port): smtplib delivers one message to the user
with the EHLO name mail.partner.example; the user (127.0.0.1) logs in and
then says it is Thunderbird with IMAP ID (RFC 2971), twice, in two
sessions; a script (127.0.0.2) says ID before login with a name holding a
terminal escape; both read the message.
"""

import imaplib
import json
import re
import smtplib
import socket
import ssl
import sys

scenario, port, cafile, password = sys.argv[1:5]
port = int(port)
USER = "alice@example.org"


class FromAddress(imaplib.IMAP4_SSL):
    """IMAP over TLS from a chosen local address (127.0.0.2 is loopback too)."""

    def __init__(self, source, *args, **kwargs):
        self.source = source
        super().__init__(*args, **kwargs)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def connect(source, secret):
    ctx = ssl.create_default_context(cafile=cafile)
    conn = FromAddress(source, "localhost", port, ssl_context=ctx, timeout=30)
    typ, _ = conn.login(USER, secret)
    assert typ == "OK"
    return conn


def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


MAILBOXES = ["INBOX", "Projekte", "Personal"]


def message(box, i):
    sender = f"sender{i}.{box.lower()}@partner.example"
    cc = f"cc{i % 7}@partner.example"
    subject = f"{box} note {i}"
    body = "Gehalt und Zulagen\r\n" if box == "Personal" and i % 4 == 0 else "Routine\r\n"
    reply = f"Reply-To: reply{i}@partner.example\r\n" if i % 5 == 0 else ""
    return subject, (
        f"From: Sender {i} <{sender}>\r\nTo: Alice <alice@example.org>\r\nCc: {cc}\r\n{reply}"
        f"Subject: {subject}\r\nDate: Tue, 1 Sep 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{box}.{i}@partner.example>\r\n\r\n{body}"
    ).encode()


def addresses(raw):
    found = set()
    for line in raw.decode().split("\r\n"):
        if line.split(":", 1)[0] in ("From", "To", "Cc", "Reply-To"):
            found.update(a.lower() for a in re.findall(r"[\w.+-]+@[\w.-]+", line))
    return found


if scenario == "intruder":
    app_password = sys.argv[5]
    messages = {}
    legit = connect("127.0.0.1", password)
    for box in MAILBOXES:
        if box != "INBOX":
            ok(legit.create(box))
        for i in range(1, 31):
            subject, raw = message(box, i)
            ok(legit.append(box, None, None, raw))
            messages[(box, i)] = (subject, raw)
    # What the user does: read and search in every mailbox.
    for box in MAILBOXES:
        ok(legit.select(box))
        ok(legit.fetch("1:10", "(BODY.PEEK[] ENVELOPE)"))
        ok(legit.search(None, "TEXT", "note"))
    legit.logout()

    intruder = connect("127.0.0.2", app_password)
    taken = []
    for box, numbers in [("INBOX", range(3, 23)), ("Projekte", [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 27, 28, 29, 30])]:
        ok(intruder.select(box, readonly=True))
        for n in numbers:
            data = ok(intruder.fetch(str(n), "(BODY.PEEK[])"))
            raw = data[0][1]
            assert raw == messages[(box, n)][1], (box, n)
            taken.append((box, n))
    ok(intruder.select("Personal", readonly=True))
    hits = ok(intruder.search(None, "TEXT", "gehalt"))[0].split()
    assert hits == [b"4", b"8", b"12", b"16", b"20", b"24", b"28"], hits
    intruder.logout()
    assert len(taken) == 37
    persons = set()
    for key in taken:
        persons |= addresses(messages[key][1])
    print(json.dumps({
        "subjects": sorted(messages[k][0] for k in taken),
        "addresses": sorted(persons),
    }))
elif scenario == "download":
    out = open(sys.argv[5], "a")
    conn = connect("127.0.0.1", password)
    ok(conn.select("INBOX", readonly=True))
    try:
        n = 0
        while True:
            n = n % 200 + 1
            data = ok(conn.fetch(str(n), "(BODY.PEEK[])"))
            subject = re.search(rb"Subject: ([^\r\n]*)", data[0][1]).group(1).decode()
            out.write(subject + "\n")
            out.flush()
    except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error, AssertionError, TypeError, IndexError):
        pass
    print("download: stopped")
elif scenario == "software":
    mx_port = int(sys.argv[5])
    with smtplib.SMTP("localhost", mx_port) as s:
        code, _ = s.ehlo("mail.partner.example")
        assert code == 250
        refused = s.sendmail("bob@partner.example", ["alice@example.org"],
                             "From: bob@partner.example\r\nTo: alice@example.org\r\n"
                             "Subject: minutes\r\nMessage-ID: <minutes@partner.example>\r\n\r\nHello\r\n")
        assert refused == {}, refused
    # imaplib knows no ID command; it is allowed in every state (RFC 2971 §3.1).
    imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")

    def ident(conn, params):
        typ, data = conn._simple_command("ID", params)
        assert typ == "OK", (typ, data)
        typ, data = conn._untagged_response(typ, data, "ID")
        assert b"Rampart" in data[0], data

    for _ in range(2):
        town = connect("127.0.0.1", password)
        ident(town, '("name" "Thunderbird" "version" "128.5.0" "os" "Windows")')
        ok(town.select("INBOX", readonly=True))
        ok(town.fetch("1", "(BODY.PEEK[])"))
        town.logout()
    ctx = ssl.create_default_context(cafile=cafile)
    script = FromAddress("127.0.0.2", "localhost", port, ssl_context=ctx, timeout=30)
    ident(script, '("name" "harvest\x1b[2J" "version" "0.1")')
    ok(script.login(USER, password))
    ok(script.select("INBOX", readonly=True))
    ok(script.fetch("1", "(BODY.PEEK[])"))
    script.logout()
    print("{}")
else:
    raise SystemExit(f"unknown scenario {scenario}")
