"""SMTP scenarios driven by Python's smtplib (and raw sockets where smtplib
cannot say what we need), against a running Rampart. Called by
crates/rampart/tests/smtp.rs as:

    python3 smtp_client.py SCENARIO MX_PORT SUBMISSION_PORT SUBMISSIONS_PORT CAFILE

Each scenario asserts what it sees and exits non-zero on the first surprise.
"""

import base64
import smtplib
import socket
import ssl
import sys

scenario, mx_port, sub_port, subs_port, cafile = sys.argv[1:6]
mx_port, sub_port, subs_port = int(mx_port), int(sub_port), int(subs_port)
HOST = "localhost"  # the self-signed certificate names localhost
USER, PASSWORD = "alice@example.org", "alice's long password"


def tls_context():
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def expect(code_and_text, code, enhanced=None):
    got_code, text = code_and_text
    text = text.decode() if isinstance(text, bytes) else text
    enhanced = enhanced.decode() if isinstance(enhanced, bytes) else enhanced
    assert got_code == code, f"expected {code}, got {got_code} {text}"
    if enhanced:
        assert text.startswith(enhanced), f"expected {enhanced}, got {text}"


def message(sender, to, subject, body="Hello from smtplib.\r\n"):
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@test>\r\n\r\n{body}"
    )


class Raw:
    """A line-oriented raw SMTP connection."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        lines = []
        while True:
            line = self.file.readline().decode()
            assert line, "connection closed"
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()


def inbound():
    with smtplib.SMTP(HOST, mx_port) as s:
        code, ehlo = s.ehlo("sender.example.net")
        assert code == 250
        for ext in ["pipelining", "8bitmime", "smtputf8", "size", "enhancedstatuscodes",
                    "chunking", "dsn", "starttls"]:
            assert s.has_extn(ext), f"EHLO lacks {ext}: {ehlo}"
        assert not s.has_extn("auth"), "AUTH must not be offered on the MX port"
        refused = s.sendmail("carol@example.net", ["alice@example.org", "team@example.org"],
                             message("carol@example.net", "alice@example.org", "inbound one"))
        assert refused == {}, refused
        # Unknown local user: 550 5.1.1 at RCPT time.
        s.mail("carol@example.net")
        expect(s.rcpt("nobody@example.org"), 550, "5.1.1")
        # No open relay, whatever the sender claims.
        expect(s.rcpt("victim@elsewhere.example"), 550, "5.7.1")
        s.rset()
        # VRFY confirms nothing.
        expect(s.verify("alice@example.org"), 252)


def starttls_inbound():
    with smtplib.SMTP(HOST, mx_port) as s:
        s.starttls(context=tls_context())
        s.ehlo("tls.example.net")
        assert not s.has_extn("starttls")
        assert s.sendmail("dave@example.net", ["alice@example.org"],
                          message("dave@example.net", "alice@example.org", "over tls")) == {}


def limits():
    with smtplib.SMTP(HOST, mx_port) as s:
        s.ehlo("limits.example.net")
        size = int(s.esmtp_features["size"])
        # Declared too big.
        expect(s.mail("x@example.net", [f"SIZE={size + 1}"]), 552, "5.3.4")
        # Too many recipients (the test config allows 3).
        s.mail("x@example.net")
        for _ in range(3):
            expect(s.rcpt("alice@example.org"), 250)
        expect(s.rcpt("alice@example.org"), 452, "4.5.3")
        # Actually too big: cut while reading.
        expect(s.data("Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * (size // 1000 + 2)),
               552, b"5.3.4")
        # The session goes on afterwards.
        s.rset()
        expect(s.noop(), 250)
    # An over-long command line.
    r = Raw(mx_port)
    assert r.cmd("EHLO " + "a" * 5000)[0].startswith("500 5.5.2"), "long line"
    assert r.cmd("NOOP")[0].startswith("250"), "session lost after long line"


def smuggling():
    r = Raw(mx_port)
    r.cmd("EHLO smuggler.example.net")
    assert r.cmd("MAIL FROM:<a@example.net>")[0].startswith("250")
    assert r.cmd("RCPT TO:<alice@example.org>")[0].startswith("250")
    assert r.cmd("DATA")[0].startswith("354")
    r.send("Subject: smuggled\r\n\r\nhello\n.\nMAIL FROM:<admin@example.org>\r\n"
           "RCPT TO:<alice@example.org>\r\nDATA\r\nSubject: evil\r\n\r\n.\r\n")
    reply = r.reply()
    assert reply[0].startswith("550 5.6.0"), reply
    # The smuggled commands were body text: the next thing is a fresh command.
    assert r.cmd("NOOP")[0].startswith("250")


def bdat_and_pipelining():
    r = Raw(mx_port)
    r.cmd("EHLO pipe.example.net")
    body = b"Subject: chunked\r\n\r\nfirst part, "
    tail = b"second part\r\n"
    # One write: MAIL, RCPT, two BDAT chunks (PIPELINING + CHUNKING).
    r.send(b"MAIL FROM:<p@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
           + f"BDAT {len(body)}\r\n".encode() + body
           + f"BDAT {len(tail)} LAST\r\n".encode() + tail)
    replies = [r.reply()[0] for _ in range(4)]
    assert replies[0].startswith("250 2.1.0"), replies
    assert replies[1].startswith("250 2.1.5"), replies
    assert replies[2].startswith("250 2.0.0"), replies
    assert replies[3].startswith("250 2.0.0 OK accepted"), replies
    # A chunk with a bare LF is refused.
    r.send(b"MAIL FROM:<p@example.net>\r\nRCPT TO:<alice@example.org>\r\nBDAT 9 LAST\r\nbad\nline\n")
    replies = [r.reply()[0] for _ in range(3)]
    assert replies[2].startswith("550 5.6.0"), replies


def submission():
    # No AUTH before TLS.
    with smtplib.SMTP(HOST, sub_port) as s:
        s.ehlo("client")
        assert not s.has_extn("auth"), "AUTH offered before TLS"
        expect(s.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()),
               538, "5.7.11")
        expect(s.mail(USER), 530, "5.7.0")
    with smtplib.SMTP(HOST, sub_port) as s:
        s.starttls(context=tls_context())
        s.ehlo("client")
        assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
        try:
            s.login(USER, "wrong password!")
            raise AssertionError("wrong password accepted")
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 535, e
        s.login(USER, PASSWORD)
        # Only one's own addresses (or aliases) as sender.
        expect(s.mail("bob@example.org"), 553, "5.7.1")
        s.rset()
        assert s.sendmail("info@example.org", ["bob@example.org"],
                          message("info@example.org", "bob@example.org", "submitted")) == {}
    # AUTH LOGIN over implicit TLS.
    with smtplib.SMTP_SSL(HOST, subs_port, context=tls_context()) as s:
        s.ehlo("client")
        s.login = s.login  # smtplib picks the mechanism; force LOGIN below
        code, _ = s.docmd("AUTH", "LOGIN")
        assert code == 334
        code, _ = s.docmd(base64.b64encode(USER.encode()).decode())
        assert code == 334
        code, text = s.docmd(base64.b64encode(PASSWORD.encode()).decode())
        assert code == 235, text
        assert s.sendmail(USER, ["bob@example.org"], message(USER, "bob@example.org", "via 465")) == {}


def ban():
    # The test config bans after 3 failures: guess three times on one connection.
    with smtplib.SMTP(HOST, sub_port) as s:
        s.starttls(context=tls_context())
        s.ehlo("guesser")
        for i in range(3):
            guess = base64.b64encode(f"\0{USER}\0guess number {i}".encode()).decode()
            code, _ = s.docmd("AUTH", "PLAIN " + guess)
            assert code == 535, code
        # Even the right password is refused from a banned address.
        right = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
        code, text = s.docmd("AUTH", "PLAIN " + right)
        assert code == 421, (code, text)
    # Banned now, on every SMTP service.
    for port in (sub_port, mx_port):
        r = socket.create_connection((HOST, port), timeout=10)
        greeting = r.makefile("rb").readline().decode()
        assert greeting.startswith("421 4.7.0"), greeting


def sts():
    with smtplib.SMTP(HOST, sub_port) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        assert s.sendmail(USER, ["bob@remote.example", "carol@wrong.example"],
                          message(USER, "bob@remote.example", "under mta-sts")) == {}


def utf8():
    """SMTPUTF8: an internationalised domain reaches the account behind its xn-- form."""
    with smtplib.SMTP(HOST, mx_port) as s:
        s.ehlo("utf8.example.net")
        assert s.has_extn("smtputf8")
        s.command_encoding = "utf-8"
        expect(s.mail("jörg@example.net", ["SMTPUTF8"]), 250)
        expect(s.rcpt("alice@bücher.example"), 250)
        body = message("jörg@example.net", "alice@bücher.example", "grüße aus bücher")
        expect(s.data(body.encode("utf-8")), 250)


def relay_one():
    with smtplib.SMTP(HOST, sub_port) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        assert s.sendmail(USER, ["bob@remote.example"],
                          message(USER, "bob@remote.example", "one for bob")) == {}


def auth():
    """Inbound SPF/DMARC outcomes for senders whose DNS the test configured."""
    cases = [
        ("pass.example", 250),        # SPF pass, DMARC p=reject passes by alignment
        ("reject.example", 550),      # SPF fail, DMARC p=reject: refused
        ("quarantine.example", 250),  # SPF fail, DMARC p=quarantine: to Junk
        ("softfail.example", 250),    # SPF ~all, no DMARC
        ("none.example", 250),        # a TXT record that is not SPF
        ("unknown.example", 250),     # its SPF needs an A lookup that fails (temperror)
    ]
    for domain, code in cases:
        with smtplib.SMTP(HOST, mx_port) as s:
            s.ehlo(f"mx.{domain}")
            s.mail(f"sender@{domain}")
            expect(s.rcpt("alice@example.org"), 250)
            got = s.data(message(f"sender@{domain}", "alice@example.org", f"auth {domain}"))
            assert got[0] == code, (domain, got)
            if code == 550:
                assert got[1].startswith(b"5.7.1"), got


def relay():
    # Authenticated submission to other domains goes to the queue.
    with smtplib.SMTP(HOST, sub_port) as s:
        s.starttls(context=tls_context())
        s.login(USER, PASSWORD)
        # DSN requests (RFC 3461): full message back, an envelope id, and per
        # recipient what to be told about.
        expect(s.mail(USER, ["RET=FULL", "ENVID=QQ314159"]), 250)
        for rcpt, options in [
            ("bob@remote.example", ["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob@Remote.example"]),
            ("nobody@remote.example", ["NOTIFY=FAILURE"]),
            ("ghost@remote.example", ["NOTIFY=NEVER"]),
            ("x@dead.example", []),
        ]:
            expect(s.rcpt(rcpt, options), 250)
        expect(s.data(message(USER, "bob@remote.example", "going out")), 250)


def forged_results():
    """Authentication-Results fields claiming to be ours (the server is
    localhost), spelt as a forger would: each must be gone on delivery."""
    forged = [
        "Authentication-Results : localhost; dmarc=pass (fake-1)",
        "authentication-results:localhost;dkim=pass (fake-2)",
        "AUTHENTICATION-RESULTS:\r\n localhost; spf=pass (fake-3)",
        "Authentication-Results: (c) localhost; dmarc=pass (fake-4)",
        "Authentication-Results: \"LocalHost\"; dmarc=pass (fake-5)",
        "Authentication-Results: localhost;\r\n\tdkim=pass header.d=bank.example (fake-6)",
    ]
    data = (
        "Received: from relay.example.net by mx.example.net; Tue, 1 Apr 2025 10:00:00 +0000\r\n"
        + "".join(f + "\r\n" for f in forged)
        + "Authentication-Results: relay.example.net; spf=pass (kept-other)\r\n"
        + "From: mallory@example.net\r\nTo: alice@example.org\r\nSubject: forged results\r\n"
        + "Message-ID: <forged-results@test>\r\n\r\n"
        + "Authentication-Results: localhost; dmarc=pass (in-the-body)\r\n"
    )
    with smtplib.SMTP(HOST, mx_port) as s:
        s.ehlo("relay.example.net")
        assert s.sendmail("mallory@example.net", ["alice@example.org"], data.encode()) == {}


def own_domain_forged():
    """Mail from outside in our own domain's name, without our signature:
    refused whichever of envelope, From or Sender names the domain, however
    the From is written (RFC 5322 §3.6: one From; encoded words; two From)."""
    cases = [
        ("mallory@example.org", "From: Alice <mallory@example.org>"),
        ("mallory@evil.example", "From: Alice <alice@example.org>"),
        ("mallory@evil.example", "From: =?utf-8?q?Alice?= <alice@EXAMPLE.ORG>"),
        ("mallory@evil.example", "From: mallory@evil.example\r\nFrom: alice@example.org"),
        ("mallory@evil.example", "From: mallory@evil.example\r\nSender: info@example.org"),
        ("mallory@evil.example", "From: Alice <alice@example.org.>"),
        ("mallory@evil.example", "From: broken <alice@example.org"),
    ]
    for envelope, author in cases:
        data = (f"{author}\r\nTo: bob@example.org\r\nSubject: from the mayor\r\n"
                "Message-ID: <own-domain@test>\r\n\r\nPlease pay this invoice.\r\n")
        with smtplib.SMTP(HOST, mx_port) as s:
            s.ehlo("mail.evil.example")
            expect(s.mail(envelope), 250)
            expect(s.rcpt("bob@example.org"), 250)
            got = s.data(data.encode())
            assert got[0] == 550 and got[1].startswith(b"5.7.1"), (author, got)
    # Someone else's domain is not ours to judge (DMARC does that).
    with smtplib.SMTP(HOST, mx_port) as s:
        s.ehlo("mail.example.net")
        assert s.sendmail("carol@example.net", ["bob@example.org"],
                          message("carol@example.net", "bob@example.org", "not ours")) == {}


def own_domain_replay():
    """A message our server signed, come back through the MX (a list that kept
    it intact): delivered. The same without its signatures, or with a changed
    subject: refused. The message is read from the file named by REPLAY."""
    import os
    import re
    signed = open(os.environ["REPLAY"], "rb").read()
    unsigned = re.sub(rb"DKIM-Signature:.*?\r\n(?![ \t])", b"", signed, flags=re.S | re.I)
    assert b"DKIM-Signature" not in unsigned and unsigned != signed
    tampered = signed.replace(b"Subject: going out", b"Subject: going out now", 1)
    assert tampered != signed
    for data, code in [(signed, 250), (unsigned, 550), (tampered, 550)]:
        with smtplib.SMTP(HOST, mx_port) as s:
            s.ehlo("lists.remote.example")
            expect(s.mail("alice@example.org"), 250)
            expect(s.rcpt("alice@example.org"), 250)
            got = s.data(data)
            assert got[0] == code, (code, got)


def pregreet():
    """A client that talks before the greeting is dropped with 554 5.5.1; one
    that waits is greeted (RFC 5321 §3.1)."""
    sock = socket.create_connection((HOST, mx_port), timeout=10)
    sock.sendall(b"EHLO hasty.example\r\nMAIL FROM:<spam@hasty.example>\r\n")
    answer = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    assert answer.startswith(b"554 5.5.1"), answer
    assert b"220" not in answer, answer
    with smtplib.SMTP(HOST, mx_port) as s:
        code, _ = s.ehlo("patient.example")
        assert code == 250


{
    "own_domain_forged": own_domain_forged,
    "own_domain_replay": own_domain_replay,
    "pregreet": pregreet,
    "relay": relay,
    "forged_results": forged_results,
    "relay_one": relay_one,
    "utf8": utf8,
    "sts": sts,
    "auth": auth,
    "inbound": inbound,
    "starttls_inbound": starttls_inbound,
    "limits": limits,
    "smuggling": smuggling,
    "bdat_and_pipelining": bdat_and_pipelining,
    "submission": submission,
    "ban": ban,
}[scenario]()
print(f"{scenario}: ok")
