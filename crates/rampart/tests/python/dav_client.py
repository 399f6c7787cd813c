#!/usr/bin/env python3
"""CalDAV and CardDAV against a running Rampart, with the Python `caldav`
library (and its DAVClient for the raw requests the library does not make).

Usage: dav_client.py SCENARIO HTTPS_PORT CA_FILE
Prints "SCENARIO: ok" at the end; any failed check raises.
"""

import sys
import uuid
from datetime import date, datetime, timedelta, timezone

import caldav
import niquests
from caldav.lib.error import AuthorizationError, DAVError

HOST = "localhost"  # the self-signed certificate names localhost
ALICE = ("alice@example.org", "alice's long password")
BOB = ("bob@example.org", "bob's long password too")


def client(port, cafile, who=ALICE, path="/"):
    return caldav.DAVClient(
        url=f"https://{HOST}:{port}{path}",
        username=who[0],
        password=who[1],
        ssl_verify_cert=cafile,
        timeout=30,
    )


class Raw:
    """Raw HTTP requests (niquests, caldav's own HTTP library), for what
    the caldav library does not send or raises on."""

    def __init__(self, port, cafile, who=ALICE):
        self.base = f"https://{HOST}:{port}"
        self.session = niquests.Session()
        self.cafile = cafile
        if who:
            self.session.auth = who

    def request(self, url, method="GET", body=None, headers=None):
        if url.startswith("/"):
            url = self.base + url
        r = self.session.request(method, url, data=body.encode() if isinstance(body, str) else body, headers=headers or {}, timeout=30, verify=self.cafile)
        r.raw = r.text or ""
        r.status = r.status_code
        return r


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


BERLIN = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Rampart tests//EN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:council-weekly@example.org
DTSTAMP:20260101T000000Z
SUMMARY:Council meeting
DTSTART;TZID=Europe/Berlin:20260319T100000
DTEND;TZID=Europe/Berlin:20260319T110000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE;TZID=Europe/Berlin:20260402T100000
END:VEVENT
BEGIN:VEVENT
UID:council-weekly@example.org
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20260409T100000
SUMMARY:Council meeting (moved)
DTSTART;TZID=Europe/Berlin:20260409T140000
DTEND;TZID=Europe/Berlin:20260409T150000
END:VEVENT
END:VCALENDAR
"""

ALL_DAY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Rampart tests//EN
BEGIN:VEVENT
UID:unity-day@example.org
DTSTAMP:20260101T000000Z
SUMMARY:German Unity Day
DTSTART;VALUE=DATE:20261003
DTEND;VALUE=DATE:20261004
END:VEVENT
END:VCALENDAR
"""

TODO = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Rampart tests//EN
BEGIN:VTODO
UID:budget-todo@example.org
DTSTAMP:20260101T000000Z
SUMMARY:Prepare the budget
DUE:20260401T170000Z
END:VTODO
END:VCALENDAR
"""

EXPAND_REPORT = """<?xml version="1.0" encoding="utf-8" ?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data>
    <C:expand start="20260401T000000Z" end="20260501T000000Z"/>
  </C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="20260401T000000Z" end="20260501T000000Z"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


def calendars(port, cafile):
    # Discovery from the root URL: current-user-principal, then the home.
    c = client(port, cafile)
    raw_http = Raw(port, cafile)
    principal = c.principal()
    check("/dav/principals/alice@example.org/" in str(principal.url), f"principal at {principal.url}")
    names = sorted(str(cal.url).rstrip("/").rsplit("/", 1)[1] for cal in principal.calendars())
    check(names == ["calendar", "tasks"], f"default calendar and task list: {names}")

    work = principal.make_calendar(name="Work", cal_id="work")
    check(work.get_display_name() == "Work", "MKCALENDAR with a display name")

    weekly = work.save_event(BERLIN)
    work.save_event(ALL_DAY)
    check(len(work.events()) == 2, "two events stored")

    # The server expands: instances in April 2026, in UTC, with RECURRENCE-ID.
    body = raw_http.request(str(work.url), "REPORT", EXPAND_REPORT, {"Depth": "1", "Content-Type": "application/xml"})
    raw = body.raw if isinstance(body.raw, str) else body.raw.decode()
    check(body.status == 207, f"calendar-query answered {body.status}")
    # 10:00 CEST is 08:00Z: wall-clock time kept after the DST change.
    check("DTSTART:20260416T080000Z" in raw, "an April instance at 08:00Z (10:00 Berlin, summer time)")
    check("RECURRENCE-ID:20260416T080000Z" in raw, "instances carry RECURRENCE-ID")
    check("20260402T080000Z" not in raw, "the EXDATE'd instance is gone")
    check("DTSTART:20260409T120000Z" in raw, "the moved instance is at its new time (14:00 Berlin)")
    check("RRULE" not in raw and "VTIMEZONE" not in raw, "expanded data has no RRULE and no VTIMEZONE")

    found = work.search(
        start=datetime(2026, 4, 1, tzinfo=timezone.utc),
        end=datetime(2026, 5, 1, tzinfo=timezone.utc),
        event=True,
        expand=True,
        server_expand=True,
    )
    check(len(found) == 3, f"library search with server expansion: {len(found)} instances in April")
    march = work.search(
        start=datetime(2026, 3, 1, tzinfo=timezone.utc),
        end=datetime(2026, 3, 22, tzinfo=timezone.utc),
        event=True,
    )
    check(len(march) == 1, f"time-range query for early March finds the series: {len(march)}")
    october = work.search(
        start=datetime(2026, 10, 3, 10, tzinfo=timezone.utc),
        end=datetime(2026, 10, 3, 11, tzinfo=timezone.utc),
        event=True,
    )
    check(
        len(october) == 1 and "Unity" in october[0].data,
        "the all-day event is found by an hour inside its day",
    )
    none = work.search(
        start=datetime(2027, 1, 1, tzinfo=timezone.utc),
        end=datetime(2027, 2, 1, tzinfo=timezone.utc),
        event=True,
    )
    check(len(none) == 0, "nothing in January 2027")

    # RFC 4791 §9.9 at the edges: an instant at the range's start is in
    # it; an event that ends where the range starts is not.
    for uid, dtstart, dtend in [("instant", "20261105T090000Z", None), ("before", "20261105T080000Z", "20261105T090000Z")]:
        end_line = f"DTEND:{dtend}\n" if dtend else ""
        work.save_event(f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//EN\nBEGIN:VEVENT\nUID:{uid}@example.org\nDTSTAMP:20260101T000000Z\nDTSTART:{dtstart}\n{end_line}SUMMARY:{uid}\nEND:VEVENT\nEND:VCALENDAR\n")
    edge = work.search(
        start=datetime(2026, 11, 5, 9, tzinfo=timezone.utc),
        end=datetime(2026, 11, 5, 10, tzinfo=timezone.utc),
        event=True,
    )
    summaries = sorted(e.icalendar_component["SUMMARY"] for e in edge)
    check(summaries == ["instant"], f"range edges: {summaries}")
    for uid in ["instant", "before"]:
        work.event_by_uid(f"{uid}@example.org").delete()

    # Free/busy (RFC 4791 §7.10): busy time only, no content.
    fb = raw_http.request(str(work.url), "REPORT", '<?xml version="1.0"?><C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20260401T000000Z" end="20260501T000000Z"/></C:free-busy-query>', {"Depth": "1", "Content-Type": "application/xml"})
    check(fb.status == 200 and "BEGIN:VFREEBUSY" in fb.raw, f"free-busy-query answered {fb.status}")
    check("FREEBUSY;FBTYPE=BUSY:20260416T080000Z/20260416T090000Z" in fb.raw and "Council" not in fb.raw, "busy time of the series in April, without its summary")

    by_uid = work.event_by_uid("council-weekly@example.org")
    check("Council meeting" in by_uid.data, "event_by_uid (calendar-query on UID)")

    # sync-collection: a change after a token is all the next sync sees.
    objects = work.objects_by_sync_token(load_objects=False)
    token = objects.sync_token
    check(len(list(objects)) >= 2, "initial sync lists the resources")
    weekly.load()
    weekly.data = weekly.data.replace("SUMMARY:Council meeting\n", "SUMMARY:Council meeting (agenda)\n").replace(
        "SUMMARY:Council meeting\r\n", "SUMMARY:Council meeting (agenda)\r\n"
    )
    weekly.save()
    delta = work.objects_by_sync_token(sync_token=token, load_objects=True)
    changed = list(delta)
    check(len(changed) == 1 and "agenda" in changed[0].data, "delta sync returns the one changed event")

    # A token the server never gave: valid-sync-token, so clients start over.
    bad = raw_http.request(
        str(work.url),
        "REPORT",
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>urn:rampart:sync:1:999999</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>',
        {"Content-Type": "application/xml"},
    )
    braw = bad.raw if isinstance(bad.raw, str) else bad.raw.decode()
    check(bad.status == 403 and "valid-sync-token" in braw, f"unknown token: {bad.status} valid-sync-token")

    # Strong ETags and preconditions on PUT.
    url = str(work.url) + "unity.ics"
    put = raw_http.request(url, "PUT", ALL_DAY.replace("unity-day", "unity-2"), {"Content-Type": "text/calendar", "If-None-Match": "*"})
    check(put.status == 201 and put.headers.get("ETag", "").startswith('"'), f"PUT If-None-Match: * creates ({put.status})")
    again = raw_http.request(url, "PUT", ALL_DAY.replace("unity-day", "unity-2"), {"Content-Type": "text/calendar", "If-None-Match": "*"})
    check(again.status == 412, f"a second If-None-Match: * is refused ({again.status})")
    stale = raw_http.request(url, "PUT", ALL_DAY.replace("unity-day", "unity-2"), {"Content-Type": "text/calendar", "If-Match": '"stale"'})
    check(stale.status == 412, f"If-Match with a stale tag is refused ({stale.status})")
    clash = raw_http.request(str(work.url) + "clash.ics", "PUT", ALL_DAY, {"Content-Type": "text/calendar"})
    craw = clash.raw if isinstance(clash.raw, str) else clash.raw.decode()
    check(clash.status == 403 and "no-uid-conflict" in craw, f"a second resource with the same UID: {clash.status} no-uid-conflict")
    broken = raw_http.request(str(work.url) + "broken.ics", "PUT", "BEGIN:VCALENDAR\nthis is not ical", {"Content-Type": "text/calendar"})
    check(broken.status in (400, 403) and "valid-calendar-data" in (broken.raw if isinstance(broken.raw, str) else broken.raw.decode()), f"malformed iCalendar refused ({broken.status})")
    missing = raw_http.request(str(work.url) + "broken.ics", "GET")
    check(missing.status == 404, "nothing was stored for the malformed PUT")

    # PROPPATCH as Apple Calendar sends it: colour, order and a time zone
    # together; the ones Rampart does not interpret are kept as dead
    # properties (RFC 4918 §4.2) and come back; a live one is protected.
    apple = """<?xml version="1.0" encoding="UTF-8"?>
<A:propertyupdate xmlns:A="DAV:"><A:set><A:prop>
<B:calendar-color xmlns:B="http://apple.com/ns/ical/">#FF2968FF</B:calendar-color>
<B:calendar-order xmlns:B="http://apple.com/ns/ical/">3</B:calendar-order>
<C:calendar-timezone xmlns:C="urn:ietf:params:xml:ns:caldav">BEGIN:VCALENDAR&#13;
END:VCALENDAR</C:calendar-timezone>
<X:note xmlns:X="urn:example:notes"><X:line lang="de">Sitzungen &amp; Termine</X:line></X:note>
</A:prop></A:set></A:propertyupdate>"""
    r = raw_http.request(str(work.url), "PROPPATCH", apple, {"Content-Type": "application/xml"})
    check(r.status == 207 and "200 OK" in r.raw and "403" not in r.raw, f"Apple's PROPPATCH is taken whole: {r.raw[-300:]}")
    r = raw_http.request(str(work.url), "PROPFIND", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/" xmlns:X="urn:example:notes"><D:prop><A:calendar-order/><A:calendar-color/><X:note/></D:prop></D:propfind>', {"Depth": "0"})
    check("3</" in r.raw and "#FF2968FF" in r.raw and "Sitzungen &amp; Termine" in r.raw and "404" not in r.raw, "the properties come back")
    r = raw_http.request(str(work.url), "PROPPATCH", '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>"forged"</D:getetag><D:displayname>Renamed</D:displayname></D:prop></D:set></D:propertyupdate>', {"Content-Type": "application/xml"})
    check("403 Forbidden" in r.raw and "424 Failed Dependency" in r.raw, "a protected property fails the whole update")
    check(work.get_display_name() == "Work", "and nothing of it was applied")
    r = raw_http.request(str(work.url), "PROPPATCH", '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:remove><D:prop><X:note xmlns:X="urn:example:notes"/></D:prop></D:remove></D:propertyupdate>', {"Content-Type": "application/xml"})
    r = raw_http.request(str(work.url), "PROPFIND", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:X="urn:example:notes"><D:prop><X:note/></D:prop></D:propfind>', {"Depth": "0"})
    check("404 Not Found" in r.raw, "a removed dead property is gone")

    # COPY and MOVE between one's own calendars (RFC 4918 §9.8-9.9).
    home = str(principal.calendar(cal_id="calendar").url)
    src = url  # unity.ics in Work (UID unity-2)
    r = raw_http.request(src, "COPY", None, {"Destination": home + "copied.ics"})
    check(r.status == 201, f"COPY to the default calendar: {r.status}")
    r = raw_http.request(src, "COPY", None, {"Destination": home + "copied.ics", "Overwrite": "F"})
    check(r.status == 412, f"COPY onto an existing resource with Overwrite: F: {r.status}")
    r = raw_http.request(src, "COPY", None, {"Destination": str(work.url) + "twin.ics"})
    check(r.status == 403 and "no-uid-conflict" in r.raw, f"COPY within the calendar (same UID): {r.status}")
    r = raw_http.request(src, "MOVE", None, {"Destination": str(work.url) + "renamed.ics"})
    check(r.status == 201 and raw_http.request(src, "GET").status == 404, f"MOVE to a new name: {r.status}, source gone")
    moved = raw_http.request(str(work.url) + "renamed.ics", "GET")
    check("unity-2" in moved.raw and moved.headers.get("Last-Modified", "").endswith(" GMT"), "the moved resource has its content and a Last-Modified")
    r = raw_http.request(home + "copied.ics", "MOVE", None, {"Destination": f"https://{HOST}:{port}/dav/calendars/bob@example.org/calendar/x.ics"})
    check(r.status == 403, f"MOVE into another user's calendar: {r.status}")
    raw_http.request(home + "copied.ics", "DELETE")

    # Delete a resource, then the calendar.
    weekly.delete()
    check(len(work.events()) == 2, "after deleting the series two events remain")
    work.delete()
    names = sorted(str(cal.url).rstrip("/").rsplit("/", 1)[1] for cal in principal.calendars())
    check(names == ["calendar", "tasks"], f"the deleted calendar is gone: {names}")

    # MKCALENDAR keeps the properties it sets that Rampart does not
    # interpret (RFC 4791 §5.3.1: a time zone, Apple's order).
    mk = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>
<D:displayname>Council</D:displayname><A:calendar-order>7</A:calendar-order>
<C:calendar-timezone>BEGIN:VCALENDAR
BEGIN:VTIMEZONE
TZID:Europe/Berlin
END:VTIMEZONE
END:VCALENDAR</C:calendar-timezone>
</D:prop></D:set></C:mkcalendar>"""
    r = raw_http.request(home.replace("/calendar/", "/council/"), "MKCALENDAR", mk, {"Content-Type": "application/xml"})
    check(r.status == 201, f"MKCALENDAR with properties: {r.status}")
    r = raw_http.request(home.replace("/calendar/", "/council/"), "PROPFIND", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:prop><D:displayname/><A:calendar-order/><C:calendar-timezone/></D:prop></D:propfind>', {"Depth": "0"})
    check("Council" in r.raw and ">7<" in r.raw and "TZID:Europe/Berlin" in r.raw and "404" not in r.raw, "its properties are kept")
    raw_http.request(home.replace("/calendar/", "/council/"), "DELETE")

    # Tasks go to the task list.
    tasks = principal.calendar(cal_id="tasks")
    tasks.save_todo(TODO)
    check(len(tasks.todos()) == 1, "a VTODO in the default task list")


def isolation(port, cafile):
    a = client(port, cafile).principal()
    work = a.make_calendar(name="Private", cal_id="private")
    work.save_event(ALL_DAY)
    href = str(work.url)
    client(port, cafile, BOB).principal()
    b = Raw(port, cafile, BOB)
    for method, path in [
        ("PROPFIND", href),
        ("GET", href + "x.ics"),
        ("PROPFIND", "/dav/calendars/alice@example.org/"),
        ("REPORT", href),
        ("DELETE", href),
    ]:
        url = path if path.startswith("https") else f"https://{HOST}:{port}{path}"
        body = (
            '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>'
            if method == "REPORT"
            else None
        )
        r = b.request(url, method, body, {"Depth": "0"})
        check(r.status == 404, f"bob's {method} of alice's {path.split(str(port))[-1]}: {r.status}")
    # Alice's principal shows a colleague her name and address (what the
    # address list shows), never where her calendars are.
    r = b.request(f"https://{HOST}:{port}/dav/principals/alice@example.org/", "PROPFIND", None, {"Depth": "0"})
    check(r.status == 207 and "calendar-home-set" not in r.raw and "/dav/calendars/alice" not in r.raw, f"bob's PROPFIND of alice's principal: {r.status}, no home")
    put = b.request(href + "intruder.ics", "PUT", TODO, {"Content-Type": "text/calendar"})
    check(put.status in (404, 409), f"bob's PUT into alice's calendar: {put.status}")
    check(len(work.events()) == 1, "alice's calendar is untouched")
    # Without credentials: 401 with a Basic challenge (DAVx5, Apple).
    anon = Raw(port, cafile, None)
    r = anon.request("/dav/", "PROPFIND", None, {"Depth": "0"})
    check(r.status == 401 and "Basic" in r.headers.get("WWW-Authenticate", ""), "401 with WWW-Authenticate before login")
    # Apple clients start at the well-known URIs (RFC 6764 §5).
    for well_known in ["/.well-known/caldav", "/.well-known/carddav"]:
        r = anon.session.request("PROPFIND", anon.base + well_known, allow_redirects=False, verify=anon.cafile, timeout=30)
        check(r.status_code == 301 and r.headers.get("Location", "").endswith("/dav/"), f"{well_known} redirects to /dav/ ({r.status_code})")
    apple = caldav.DAVClient(url=f"https://{HOST}:{port}/.well-known/caldav", username=ALICE[0], password=ALICE[1], ssl_verify_cert=cafile)
    check("alice@example.org" in str(apple.principal().url), "discovery from /.well-known/caldav finds the principal")
    wrong = client(port, cafile, (ALICE[0], "not the password"))
    try:
        wrong.principal()
        raise AssertionError("a wrong password was accepted")
    except (AuthorizationError, DAVError) as e:
        check(True, f"a wrong password is refused ({type(e).__name__})")


VCARD3 = """BEGIN:VCARD
VERSION:3.0
UID:anna-3@example.org
FN:Anna Schmidt
N:Schmidt;Anna;;;
EMAIL;TYPE=INTERNET:anna.schmidt@town.example
TEL;TYPE=WORK:+49 30 1234567
END:VCARD
"""

VCARD4 = """BEGIN:VCARD
VERSION:4.0
UID:urn:uuid:0d4c0f5e-7b1a-4f55-9e0c-2f7a3c1d9a11
FN:Bernd Müller
N:Müller;Bernd;;;
EMAIL;TYPE=work:bernd.mueller@town.example
TEL;VALUE=uri;TYPE=work:tel:+49-30-7654321
END:VCARD
"""


def addressbooks(port, cafile):
    c = client(port, cafile)
    http = Raw(port, cafile)
    p = c.principal()
    base = f"https://{HOST}:{port}"
    r = c.propfind(str(p.url), '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><CR:addressbook-home-set/></D:prop></D:propfind>', 0)
    raw = r.raw if isinstance(r.raw, str) else r.raw.decode()
    check("/dav/addressbooks/alice@example.org/" in raw, "addressbook-home-set on the principal")
    home = base + "/dav/addressbooks/alice@example.org/"
    listing = c.propfind(home, '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:displayname/></D:prop></D:propfind>', 1)
    lraw = listing.raw if isinstance(listing.raw, str) else listing.raw.decode()
    check("/dav/addressbooks/alice@example.org/contacts/" in lraw and "addressbook" in lraw, "the default address book is listed")
    book = home + "contacts/"
    for name, card in [("anna.vcf", VCARD3), ("bernd.vcf", VCARD4)]:
        put = http.request(book + name, "PUT", card, {"Content-Type": "text/vcard; charset=utf-8"})
        check(put.status == 201, f"PUT {name}: {put.status}")
    query = """<?xml version="1.0" encoding="utf-8" ?>
<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><CR:address-data version="%s"/></D:prop>
  <CR:filter test="anyof">
    <CR:prop-filter name="EMAIL"><CR:text-match collation="i;unicode-casemap" match-type="contains">%s</CR:text-match></CR:prop-filter>
  </CR:filter>
</CR:addressbook-query>"""
    r = http.request(book, "REPORT", query % ("4.0", "ANNA.SCHMIDT"), {"Depth": "1", "Content-Type": "application/xml"})
    raw = r.raw if isinstance(r.raw, str) else r.raw.decode()
    check(r.status == 207 and "anna.vcf" in raw and "bernd.vcf" not in raw, "addressbook-query text-match on EMAIL")
    check("VERSION:4.0" in raw, "vCard 3.0 served as 4.0 when asked")
    r = http.request(book, "REPORT", query % ("3.0", "mueller"), {"Depth": "1", "Content-Type": "application/xml"})
    raw = r.raw if isinstance(r.raw, str) else r.raw.decode()
    check("bernd.vcf" in raw and "VERSION:3.0" in raw, "vCard 4.0 served as 3.0 when asked")
    multiget = f"""<?xml version="1.0"?><CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
<D:prop><D:getetag/><CR:address-data/></D:prop>
<D:href>/dav/addressbooks/alice@example.org/contacts/anna.vcf</D:href>
<D:href>/dav/addressbooks/alice@example.org/contacts/nobody.vcf</D:href></CR:addressbook-multiget>"""
    r = http.request(book, "REPORT", multiget, {"Depth": "1", "Content-Type": "application/xml"})
    raw = r.raw if isinstance(r.raw, str) else r.raw.decode()
    check("FN:Anna Schmidt" in raw and "404" in raw, "addressbook-multiget: one found, one 404")
    get = http.request(book + "bernd.vcf", "GET")
    check(get.status == 200 and "Müller" in (get.raw if isinstance(get.raw, str) else get.raw.decode()), "GET a vCard")
    bad = http.request(book + "nouid.vcf", "PUT", "BEGIN:VCARD\nVERSION:4.0\nFN:No Uid\nEND:VCARD\n", {"Content-Type": "text/vcard"})
    check(bad.status in (400, 403), f"a vCard without UID is refused ({bad.status})")
    sync = '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>'
    r = http.request(book, "REPORT", sync, {"Content-Type": "application/xml"})
    raw = r.raw if isinstance(r.raw, str) else r.raw.decode()
    token = raw.split("<D:sync-token>")[1].split("</D:sync-token>")[0]
    d = http.request(book + "anna.vcf", "DELETE")
    check(d.status == 204, "DELETE a vCard")
    r = http.request(book, "REPORT", sync.replace("<D:sync-token/>", f"<D:sync-token>{token}</D:sync-token>"), {"Content-Type": "application/xml"})
    raw = r.raw if isinstance(r.raw, str) else r.raw.decode()
    check("anna.vcf" in raw and "404 Not Found" in raw and "bernd.vcf" not in raw, "sync after a delete names only the deleted card")


def discovery(port, cafile):
    import xml.etree.ElementTree as ET

    anon = Raw(port, cafile, None)
    # Thunderbird's autoconfig (clientConfig 1.1), before any login.
    answers = []
    for who in ["alice@example.org", "nobody-here@example.org"]:
        r = anon.request(f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={who}")
        check(r.status == 200 and "xml" in r.headers.get("Content-Type", ""), f"autoconfig for {who}: {r.status}")
        answers.append(r.raw)
    check(answers[0] == answers[1], "autoconfig says the same for an address that does not exist")
    root = ET.fromstring(answers[0])
    check(root.tag == "clientConfig" and root.get("version") == "1.1", "a clientConfig of version 1.1")
    provider = root.find("emailProvider")
    check(provider is not None and provider.get("id") == "example.org" and provider.findtext("domain") == "example.org", "emailProvider names the domain")
    incoming = provider.findall("incomingServer")
    check(any(s.get("type") == "imap" and s.findtext("socketType") == "SSL" and s.findtext("port").isdigit() and s.findtext("username") == "%EMAILADDRESS%" and s.findtext("authentication") == "password-cleartext" for s in incoming), "an IMAP server over SSL")
    outgoing = provider.findall("outgoingServer")
    check(any(s.get("type") == "smtp" and s.findtext("socketType") in ("SSL", "STARTTLS") for s in outgoing), "an SMTP submission server")
    legacy = anon.request("/mail/config-v1.1.xml?emailaddress=alice@example.org")
    check(legacy.raw == answers[0], "the autoconfig.<domain> path answers the same")

    # Outlook's POX autodiscover (MS-OXDSCLI): request and response schemas.
    request = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>alice@example.org</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
    r = anon.request("/autodiscover/autodiscover.xml", "POST", request, {"Content-Type": "text/xml"})
    check(r.status == 200, f"autodiscover answered {r.status}")
    ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006", "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    root = ET.fromstring(r.raw)
    account = root.find("o:Response/o:Account", ns)
    check(root.tag == "{%s}Autodiscover" % ns["a"] and account is not None, "Autodiscover/Response/Account in the response schema")
    check(account.findtext("o:AccountType", namespaces=ns) == "email" and account.findtext("o:Action", namespaces=ns) == "settings", "an email account with settings")
    protocols = {p.findtext("o:Type", namespaces=ns): p for p in account.findall("o:Protocol", ns)}
    check(set(protocols) == {"IMAP", "SMTP"}, f"IMAP and SMTP protocols: {sorted(protocols)}")
    imap = protocols["IMAP"]
    check(imap.findtext("o:LoginName", namespaces=ns) == "alice@example.org" and imap.findtext("o:SSL", namespaces=ns) in (None, "on") and imap.findtext("o:Port", namespaces=ns).isdigit(), "IMAP with the address as login name")
    # The Apple configuration profile, only after login, parsed as a plist.
    import plistlib

    r = anon.request("/apple/rampart.mobileconfig")
    check(r.status == 401, f"the Apple profile needs a login ({r.status})")
    r = Raw(port, cafile).request("/apple/rampart.mobileconfig")
    check(r.status == 200 and r.headers.get("Content-Type") == "application/x-apple-aspen-config", f"the Apple profile: {r.status}")
    profile = plistlib.loads(r.content)
    types = sorted(p["PayloadType"] for p in profile["PayloadContent"])
    check(profile["PayloadType"] == "Configuration" and types == ["com.apple.caldav.account", "com.apple.carddav.account", "com.apple.mail.managed"], f"mail, CalDAV and CardDAV payloads: {types}")
    caldav_payload = next(p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.caldav.account")
    check(caldav_payload["CalDAVUsername"] == "alice@example.org" and caldav_payload["CalDAVPort"] == port and caldav_payload["CalDAVUseSSL"] is True, "CalDAV for alice on this port over TLS")
    check(b"alice's long password" not in r.content, "no password in the profile")
    bad = anon.request("/autodiscover/autodiscover.xml", "POST", "<not-autodiscover/>", {"Content-Type": "text/xml"})
    check(bad.status == 400, f"a body that is no autodiscover request: {bad.status}")


def directory(port, cafile):
    http = Raw(port, cafile)
    home = "/dav/addressbooks/alice@example.org/"
    r = http.request(home, "PROPFIND", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:displayname/><D:current-user-privilege-set/></D:prop></D:propfind>', {"Depth": "1"})
    check(r.status == 207 and home + "directory/" in r.raw, "the directory is in the address-book home")
    block = r.raw.split(home + "directory/")[1].split("</D:response>")[0]
    check("addressbook" in block and "<D:write/>" not in block and "<D:read/>" in block, "it is an address book the user may only read")
    book = home + "directory/"
    query = """<?xml version="1.0" encoding="utf-8" ?>
<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><CR:address-data/></D:prop>
  <CR:filter><CR:prop-filter name="%s"><CR:text-match match-type="contains">%s</CR:text-match></CR:prop-filter></CR:filter>
</CR:addressbook-query>"""
    r = http.request(book, "REPORT", query % ("EMAIL", "bob@"), {"Depth": "1", "Content-Type": "application/xml"})
    check(r.status == 207 and "FN:Bob Baker" in r.raw and "TITLE:Town clerk" in r.raw and "ORG:example.org;Registry" in r.raw, "bob found by address, with title and department")
    check("alice.vcf" not in r.raw, "the query returns only what matches")
    r = http.request(book, "REPORT", query % ("FN", "brigade"), {"Depth": "1", "Content-Type": "application/xml"})
    check("Fire Brigade" in r.raw, "an organisation contact found by name")
    r = http.request(book, "REPORT", query % ("EMAIL", "other.example"), {"Depth": "1", "Content-Type": "application/xml"})
    check(r.status == 207 and "carol" not in r.raw, "nobody of another organisation")
    listing = http.request(book, "PROPFIND", None, {"Depth": "1"})
    check("carol" not in listing.raw and "bob.vcf" in listing.raw and "alice.vcf" in listing.raw, "the listing holds the domain's people only")
    get = http.request(book + "bob.vcf", "GET")
    check(get.status == 200 and "BEGIN:VCARD" in get.raw and "TEL;TYPE=work;VALUE=text:+49 30 5550" in get.raw, "GET a directory card")
    v3 = http.request(book + "bob.vcf", "GET", None, {"Accept": "text/vcard; version=3.0"})
    check("VERSION:3.0" in v3.raw, "and as vCard 3.0")
    put = http.request(book + "mine.vcf", "PUT", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nFN:X\r\nEND:VCARD\r\n", {"Content-Type": "text/vcard"})
    check(put.status == 403, f"PUT into the directory is refused ({put.status})")
    d = http.request(book + "bob.vcf", "DELETE")
    check(d.status == 403, f"DELETE in the directory is refused ({d.status})")
    mk = http.request(home + "directory/", "MKCOL")
    check(mk.status in (403, 405), f"no address book can be made under its name ({mk.status})")
    sync = '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>'
    r = http.request(book, "REPORT", sync, {"Content-Type": "application/xml"})
    token = r.raw.split("<D:sync-token>")[1].split("</D:sync-token>")[0]
    again = http.request(book, "REPORT", sync.replace("<D:sync-token/>", f"<D:sync-token>{token}</D:sync-token>"), {"Content-Type": "application/xml"})
    check(again.status == 207 and "bob.vcf" not in again.raw, "a sync from the current token lists nothing")
    # Finding colleagues by name as Apple Calendar and Evolution do
    # (RFC 3744 principal-property-search), in one's own organisation only.
    search = """<?xml version="1.0" encoding="utf-8"?>
<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" test="anyof">
  <D:property-search><D:prop><D:displayname/></D:prop><D:match>%s</D:match></D:property-search>
  <D:property-search><D:prop><C:calendar-user-address-set/></D:prop><D:match>%s</D:match></D:property-search>
  <D:prop><D:displayname/><C:calendar-user-address-set/><C:calendar-user-type/></D:prop>
</D:principal-property-search>"""
    r = http.request("/dav/principals/", "REPORT", search % ("bak", "bak"), {"Depth": "0", "Content-Type": "application/xml"})
    check(r.status == 207 and "Bob Baker" in r.raw and "mailto:bob@example.org" in r.raw and "INDIVIDUAL" in r.raw, f"principal-property-search finds bob: {r.status}")
    check("alice" not in r.raw.replace("/dav/principals/", ""), "and only bob")
    # The principal a search names can be asked for the same properties.
    r = http.request("/dav/principals/bob@example.org/", "PROPFIND", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:displayname/><C:calendar-user-address-set/><C:calendar-home-set/></D:prop></D:propfind>', {"Depth": "0"})
    check(r.status == 207 and "Bob Baker" in r.raw and "mailto:bob@example.org" in r.raw and "calendars/bob" not in r.raw, "a colleague's principal shows name and address, not their calendars")
    r = http.request("/dav/principals/carol@other.example/", "PROPFIND", None, {"Depth": "0"})
    check(r.status == 404, f"a principal of another organisation is not found ({r.status})")
    r = http.request("/dav/principals/", "REPORT", search % ("carol", "other.example"), {"Depth": "0", "Content-Type": "application/xml"})
    check(r.status == 207 and "carol" not in r.raw, "nobody of another organisation")
    r = http.request("/dav/principals/", "REPORT", '<?xml version="1.0"?><D:principal-search-property-set xmlns:D="DAV:"/>', {"Depth": "0", "Content-Type": "application/xml"})
    check(r.status == 200 and "displayname" in r.raw, "principal-search-property-set")

    # Copy a directory card into one's own address book.
    c = http.request(book + "bob.vcf", "COPY", None, {"Destination": home + "contacts/bob.vcf"})
    check(c.status == 201, f"COPY a directory card into one's own book ({c.status})")


def directory_one_card(port, cafile):
    http = Raw(port, cafile)
    home = "/dav/addressbooks/alice@example.org/"
    # Polling the home and the directory's own properties reads nobody.
    r = http.request(home, "PROPFIND", None, {"Depth": "1"})
    check(r.status == 207 and "directory/" in r.raw, "the home lists the directory")
    r = http.request(home + "directory/", "PROPFIND", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>', {"Depth": "0"})
    check(r.status == 207 and "sync-token" in r.raw, "the directory's sync token")
    get = http.request(home + "directory/bob.vcf", "GET")
    check(get.status == 200 and "bob@example.org" in get.raw, "one card fetched")


SHARED_EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VEVENT
UID:budget-hearing@example.org
DTSTAMP:20260101T000000Z
DTSTART:20260505T090000Z
DTEND:20260505T100000Z
SUMMARY:Budget hearing
END:VEVENT
END:VCALENDAR
"""


def sharing_1(port, cafile):
    alice = Raw(port, cafile)
    r = alice.request("/dav/calendars/alice@example.org/calendar/hearing.ics", "PUT", SHARED_EVENT, {"Content-Type": "text/calendar"})
    check(r.status == 201, f"alice stores an event ({r.status})")


def sharing_2(port, cafile):
    # Shared for reading: bob finds it in his own home, reads it, cannot write.
    bob_lib = client(port, cafile, BOB).principal()
    names = [str(c.url).rstrip("/").rsplit("/", 1)[1] for c in bob_lib.calendars()]
    shared = [n for n in names if n.startswith("~")]
    check(shared == ["~alice@example.org~calendar"] or shared == ["~alice%40example.org~calendar"], f"alice's calendar in bob's home: {names}")
    cal = next(c for c in bob_lib.calendars() if "~" in str(c.url))
    events = cal.events()
    check(len(events) == 1 and "Budget hearing" in events[0].data, "bob reads alice's event through the share")
    bob = Raw(port, cafile, BOB)
    base = "/dav/calendars/bob@example.org/~alice@example.org~calendar/"
    r = bob.request(base + "bob.ics", "PUT", SHARED_EVENT.replace("budget-hearing", "bobs-event"), {"Content-Type": "text/calendar"})
    check(r.status == 403, f"a read share takes no writes ({r.status})")
    r = bob.request(base, "PROPPATCH", '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Mine now</D:displayname></D:prop></D:set></D:propertyupdate>')
    check(r.status == 403, f"nor property changes ({r.status})")
    r = bob.request(base, "DELETE")
    check(r.status == 403, f"nor deleting it ({r.status})")
    r = bob.request("/dav/calendars/alice@example.org/calendar/", "PROPFIND", None, {"Depth": "0"})
    check(r.status == 404, "alice's own URL stays hers")
    carol = Raw(port, cafile, ("carol@example.org", "carol's long password"))
    r = carol.request("/dav/calendars/carol@example.org/~alice@example.org~calendar/", "PROPFIND", None, {"Depth": "0"})
    check(r.status == 404, f"carol, not shared with, finds nothing ({r.status})")


def sharing_3(port, cafile):
    # Now shared for writing.
    bob = Raw(port, cafile, BOB)
    base = "/dav/calendars/bob@example.org/~alice@example.org~calendar/"
    r = bob.request(base + "bob.ics", "PUT", SHARED_EVENT.replace("budget-hearing", "bobs-event").replace("Budget hearing", "Added by Bob"), {"Content-Type": "text/calendar"})
    check(r.status == 201, f"a write share takes bob's event ({r.status})")
    alice = Raw(port, cafile)
    r = alice.request("/dav/calendars/alice@example.org/calendar/bob.ics", "GET")
    check(r.status == 200 and "Added by Bob" in r.raw, "alice sees it in her calendar")
    r = bob.request(base + "bob.ics", "DELETE")
    check(r.status == 204, "and bob may delete it")


def limits(port, cafile):
    """Hostile and oversized input, against a server with small [dav] limits
    (see tests/dav.rs): each refused with the status and reason the limit
    names, and nothing stored."""
    http = Raw(port, cafile)
    cal = "/dav/calendars/alice@example.org/calendar/"
    r = http.request(cal, "PROPFIND", None, {"Depth": "0"})
    check(r.status == 207, "the calendar is there")
    bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol2;</D:displayname></D:prop></D:propfind>'
    r = http.request(cal, "PROPFIND", bomb, {"Depth": "0"})
    check(r.status == 400 and "DOCTYPE" in r.raw, f"an entity bomb: {r.status} {r.raw.strip()}")
    external = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>&xxe;</D:prop></D:propfind>'
    r = http.request(cal, "PROPFIND", external, {"Depth": "0"})
    check(r.status == 400 and "entity" in r.raw, f"an undeclared entity: {r.status}")
    deep = '<D:propfind xmlns:D="DAV:">' + "<D:prop>" * 40 + "</D:prop>" * 40 + "</D:propfind>"
    r = http.request(cal, "PROPFIND", deep, {"Depth": "0"})
    check(r.status == 413 and "dav.max_xml_depth" in r.raw, f"XML 40 levels deep: {r.status} {r.raw.strip()}")
    wide = '<D:propfind xmlns:D="DAV:"><D:prop>' + "<D:getetag/>" * 300 + "</D:prop></D:propfind>"
    r = http.request(cal, "PROPFIND", wide, {"Depth": "0"})
    check(r.status == 413 and "dav.max_xml_elements" in r.raw, f"300 elements: {r.status}")
    big = "X" * 70000
    r = http.request(cal + "big.ics", "PUT", big, {"Content-Type": "text/calendar"})
    check(r.status == 413 and "dav.max_request_bytes" in r.raw, f"a 70 KB body: {r.status}")
    event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:long@example.org\r\nDTSTART:20260101T000000Z\r\nDESCRIPTION:" + "d" * 20000 + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    r = http.request(cal + "long.ics", "PUT", event, {"Content-Type": "text/calendar"})
    check(r.status == 403 and "max-resource-size" in r.raw, f"a 20 KB event: {r.status}")
    many = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "".join(f"BEGIN:VEVENT\r\nUID:many@example.org\r\nRECURRENCE-ID:202601{d:02}T000000Z\r\nDTSTART:202601{d:02}T000000Z\r\nEND:VEVENT\r\n" for d in range(1, 29)) + "END:VCALENDAR\r\n"
    r = http.request(cal + "many.ics", "PUT", many, {"Content-Type": "text/calendar"})
    check(r.status == 403 and "max-resource-size" in r.raw and "dav.max_components" in r.raw, f"28 components: {r.status}")
    hrefs = "".join(f"<D:href>{cal}e{i}.ics</D:href>" for i in range(60))
    r = http.request(cal, "REPORT", f'<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>{hrefs}</C:calendar-multiget>', {"Depth": "1", "Content-Type": "application/xml"})
    check(r.status in (403, 413), f"a multiget of 60 hrefs: {r.status}")
    r = http.request(cal, "REPORT", '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data><C:expand start="20000101T000000Z" end="20990101T000000Z"/></C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>', {"Depth": "1", "Content-Type": "application/xml"})
    check(r.status == 403 and "dav.max_expand_days" in r.raw, f"an expansion over a century: {r.status}")
    r = http.request(cal, "REPORT", "<not-xml", {"Content-Type": "application/xml"})
    check(r.status == 400, f"a broken body: {r.status}")
    r = http.request(cal + "bin.ics", "PUT", b"\xff\xfe\x00BEGIN", {"Content-Type": "text/calendar"})
    check(r.status == 400, f"a body that is not UTF-8: {r.status}")
    r = http.request(cal, "PROPFIND", None, {"Depth": "1"})
    check(r.status == 207 and ".ics" not in r.raw, "nothing was stored by any of it")


def main():
    scenario, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    {"calendars": calendars, "isolation": isolation, "addressbooks": addressbooks, "discovery": discovery, "directory": directory, "directory_one_card": directory_one_card, "sharing_1": sharing_1, "sharing_2": sharing_2, "sharing_3": sharing_3, "limits": limits}[scenario](port, cafile)
    print(f"{scenario}: ok")


if __name__ == "__main__":
    main()
