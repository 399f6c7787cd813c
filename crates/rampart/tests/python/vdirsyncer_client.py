#!/usr/bin/env python3
"""vdirsyncer (a real synchronising client) against a running Rampart: a
calendar and an address book synced both ways twice; the second run must
change nothing.

Usage: vdirsyncer_client.py HTTPS_PORT CA_FILE WORK_DIR
Prints "vdirsyncer: ok" at the end; any failed check raises.
"""

import os
import subprocess
import sys
from pathlib import Path

import niquests

HOST = "localhost"
USER, PASSWORD = "alice@example.org", "alice's long password"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def run(config, *args):
    out = subprocess.run(
        ["vdirsyncer", "-c", str(config), *args],
        input="y\n" * 20,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise AssertionError(f"vdirsyncer {' '.join(args)} failed:\n{text}")
    return text


def main():
    port, cafile, work = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    base = f"https://{HOST}:{port}"
    http = niquests.Session()
    http.auth = (USER, PASSWORD)

    def req(method, path, body=None, headers=None):
        r = http.request(method, base + path, data=body.encode() if body else None, headers=headers or {}, verify=cafile, timeout=30)
        return r

    # Something on the server first, in the default calendar and address book.
    cal = "/dav/calendars/alice@example.org/calendar/"
    book = "/dav/addressbooks/alice@example.org/contacts/"
    r = req("PROPFIND", cal, None, {"Depth": "0"})
    check(r.status_code == 207, "the default calendar exists")
    r = req(
        "PUT",
        cal + "server-event.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:server-event@example.org\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260601T090000Z\r\nDTEND:20260601T100000Z\r\nSUMMARY:Made on the server\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        {"Content-Type": "text/calendar"},
    )
    check(r.status_code == 201, "an event made on the server")
    r = req(
        "PUT",
        book + "server-card.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:server-card@example.org\r\nFN:Server Card\r\nEMAIL:card@example.org\r\nEND:VCARD\r\n",
        {"Content-Type": "text/vcard"},
    )
    check(r.status_code == 201, "a card made on the server")

    local_cal = work / "cal"
    local_book = work / "book"
    for d in (local_cal, local_book, work / "status"):
        d.mkdir(parents=True, exist_ok=True)
    config = work / "config"
    config.write_text(
        f"""[general]
status_path = "{work}/status/"

[pair cal]
a = "cal_local"
b = "cal_remote"
collections = ["calendar"]

[storage cal_local]
type = "filesystem"
path = "{local_cal}/"
fileext = ".ics"

[storage cal_remote]
type = "caldav"
url = "{base}/"
username = "{USER}"
password = "{PASSWORD}"
verify = "{cafile}"

[pair book]
a = "book_local"
b = "book_remote"
collections = ["contacts"]

[storage book_local]
type = "filesystem"
path = "{local_book}/"
fileext = ".vcf"

[storage book_remote]
type = "carddav"
url = "{base}/"
username = "{USER}"
password = "{PASSWORD}"
verify = "{cafile}"
"""
    )
    run(config, "discover")
    first = run(config, "sync")
    local_events = list((local_cal / "calendar").glob("*.ics"))
    check(any("Made on the server" in p.read_text() for p in local_events), "the server's event reached the local calendar")
    local_cards = list((local_book / "contacts").glob("*.vcf"))
    check(any("Server Card" in p.read_text() for p in local_cards), "the server's card reached the local address book")

    # Local changes go up.
    (local_cal / "calendar" / "local-event.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:local-event@example.org\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260602T090000Z\r\nDTEND:20260602T100000Z\r\nSUMMARY:Made locally\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (local_book / "contacts" / "local-card.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:local-card@example.org\r\nFN:Local Card\r\nEND:VCARD\r\n"
    )
    for p in local_events:
        if "Made on the server" in p.read_text():
            p.write_text(p.read_text().replace("Made on the server", "Changed locally"))
    second = run(config, "sync")
    r = req("REPORT", cal, '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>', {"Depth": "1", "Content-Type": "application/xml"})
    check("Made locally" in r.text and "Changed locally" in r.text, "local new and changed events reached the server")
    check("Local Card" in req("REPORT", book, '<?xml version="1.0"?><CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><CR:address-data/></D:prop></CR:addressbook-query>', {"Depth": "1", "Content-Type": "application/xml"}).text, "the local card reached the server")

    # A run with nothing changed on either side changes nothing.
    third = run(config, "sync")
    moved = [line for line in third.splitlines() if any(w in line for w in ("Copying", "Updating", "Deleting"))]
    check(not moved, f"the next sync changes nothing: {moved}")
    print("vdirsyncer: ok")


if __name__ == "__main__":
    main()
