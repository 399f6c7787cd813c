#!/usr/bin/env python3
"""IMAP helper for dovecot-expected.sh: a small client over a raw socket that
keeps the exact bytes of every answer (imaplib hides literal8 and NIL).

  corpus-record.py PORT append FILE        APPEND FILE as literal8 (~{n})
  corpus-record.py PORT fetch UID ITEM...  one line per item, as corpus.rs reads

Each fetch line is `ITEM<TAB>FORM<TAB>DATA`: FORM is `NIL`, `string` (quoted
or literal), `literal8`, `number` or `NO` (DATA is then the tagged reply's
response code); DATA escapes backslash, CR, LF, TAB and bytes outside
printable ASCII as \\\\, \\r, \\n, \\t and \\xHH.
"""

import re
import socket
import sys


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.n = 0
        self.line()  # greeting

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response_line(self):
        """One response with its literals inlined as (kind, bytes) pieces."""
        pieces = []
        while True:
            line = self.line()
            m = re.search(rb"(~?)\{(\d+)\+?\}$", line)
            if not m:
                pieces.append(("text", line))
                return pieces
            pieces.append(("text", line[: m.start()]))
            kind = "literal8" if m.group(1) else "literal"
            pieces.append((kind, self.take(int(m.group(2)))))

    def command(self, text, literal=None):
        self.n += 1
        tag = b"t%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" ~{%d+}\r\n" % len(literal) + literal + b"\r\n")
        untagged = []
        while True:
            pieces = self.response_line()
            first = pieces[0][1]
            if first.startswith(tag + b" "):
                return untagged, first[len(tag) + 1 :]
            untagged.append(pieces)


def escape(data):
    out = []
    for b in data:
        c = chr(b)
        if c == "\\":
            out.append("\\\\")
        elif c == "\r":
            out.append("\\r")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def unquote(text):
    """The value of a quoted string at the start of text, and the rest."""
    assert text.startswith(b'"'), text
    out = bytearray()
    i = 1
    while text[i : i + 1] != b'"':
        if text[i : i + 1] == b"\\":
            i += 1
        out += text[i : i + 1]
        i += 1
    return bytes(out), text[i + 1 :]


def fetch_item(client, uid, item):
    untagged, status = client.command(b"UID FETCH %d (%s)" % (uid, item.encode()))
    if not status.startswith(b"OK"):
        code = re.match(rb"NO (\[[^\]]*\])?", status)
        return "NO", (code.group(1) or b"").decode() if code else status.decode()
    # The answer's label is the item, with BINARY.SIZE/BODY.PEEK spelled back.
    label = item.upper().replace("BODY.PEEK[", "BODY[").encode()
    for pieces in untagged:
        flat_text = b"".join(p[1] for p in pieces if p[0] == "text")
        if b" FETCH " not in flat_text:
            continue
        for i, (kind, data) in enumerate(pieces):
            if kind != "text":
                continue
            at = data.upper().find(label + b" ")
            if at < 0:
                continue
            rest = data[at + len(label) + 1 :]
            if rest == b"" and i + 1 < len(pieces):
                nxt_kind, nxt = pieces[i + 1]
                return ("literal8" if nxt_kind == "literal8" else "string"), escape(nxt)
            if rest.startswith(b"NIL"):
                return "NIL", ""
            if rest.startswith(b'"'):
                value, _ = unquote(rest)
                return "string", escape(value)
            number = re.match(rb"\d+", rest)
            if number:
                return "number", number.group(0).decode()
    raise RuntimeError("no %s in the answer to UID FETCH %d" % (item, uid))


def main():
    port = int(sys.argv[1])
    client = Client(port)
    _, status = client.command(b"LOGIN corpus x")
    assert status.startswith(b"OK"), status
    if sys.argv[2] == "append":
        with open(sys.argv[3], "rb") as f:
            raw = f.read()
        _, status = client.command(b"APPEND INBOX", literal=raw)
        assert status.startswith(b"OK"), status
        return
    _, status = client.command(b"EXAMINE INBOX")
    assert status.startswith(b"OK"), status
    uid = int(sys.argv[3])
    for item in sys.argv[4:]:
        form, data = fetch_item(client, uid, item)
        print("%s\t%s\t%s" % (item, form, data))


if __name__ == "__main__":
    main()
