//! Hostile input without a fuzzer: thousands of deterministic mutations of
//! real requests and objects (bytes flipped, cut, repeated, spliced) go
//! through the parsers the fuzz targets cover; none may panic, and what is
//! accepted keeps the limits. (`fuzz/` runs the same with libFuzzer.)

use rampart_dav::ical::{IcalLimits, expand, intake, overlaps, parse};
use rampart_dav::vcard;
use rampart_dav::xml::{self, XmlLimits};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "BEGIN:VEVENT\r\n",
    "END:VEVENT\r\n",
    "RRULE:FREQ=SECONDLY;INTERVAL=1\r\n",
    "RRULE:FREQ=YEARLY;BYDAY=-53MO;BYMONTH=13\r\n",
    "DTSTART;TZID=Nowhere/Else:20260101T000000\r\n",
    "DTSTART;VALUE=DATE:99991231\r\n",
    "EXDATE:20260101\r\n",
    "RECURRENCE-ID;RANGE=THISANDFUTURE:20260108T000000Z\r\n",
    "DURATION:-P1W\r\n",
    "DTEND:19000101T000000Z\r\n",
    "BEGIN:VALARM\r\n",
    "END:VCALENDAR\r\n",
    "UID:\u{0}\r\n",
    " folded",
    "\r\n ",
    "ü€😀",
    "<D:prop>",
    "</D:prop>",
    "&amp;",
    "&#xD800;",
    "<![CDATA[",
    "]]>",
    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    "xmlns:D=\"DAV:\"",
    "BEGIN:VCARD\r\n",
    "VERSION:3.0\r\n",
    "N:;;;;;;;;;;\r\n",
    "item1.EMAIL;TYPE=\"a,b\":x@y\r\n",
    "PHOTO;ENCODING=b:AAAA\r\n",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            1 => bytes.truncate(at),
            2 => {
                let piece = PIECES[rng.below(PIECES.len())].as_bytes();
                bytes.splice(at..at, piece.iter().copied());
            }
            3 if !bytes.is_empty() => {
                let end = (at + rng.below(64)).min(bytes.len());
                let copy: Vec<u8> = bytes[at.min(end)..end].to_vec();
                for _ in 0..rng.below(4) {
                    bytes.splice(at..at, copy.iter().copied());
                }
            }
            _ => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const ICAL_SEEDS: &[&str] = &[
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Europe/Berlin:20260319T100000\r\nDTEND;TZID=Europe/Berlin:20260319T110000\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nEXDATE;TZID=Europe/Berlin:20260402T100000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260409T100000\r\nDTSTART;TZID=Europe/Berlin:20260409T140000\r\nDURATION:PT1H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nDUE;VALUE=DATE:20260101\r\nRRULE:FREQ=DAILY\r\nBEGIN:VALARM\r\nTRIGGER:-PT15M\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20261003\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=31;UNTIL=20301231\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
];

const VCARD_SEEDS: &[&str] = &[
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:1\r\nFN:Anna\r\nN:Schmidt;Anna;;;\r\nEMAIL;TYPE=work:a@b\r\nTEL;VALUE=uri:tel:+49\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:2\r\nFN:B\r\nADR;TYPE=WORK:;;Str. 1;Köln;;50667;DE\r\nPHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ\r\nEND:VCARD\r\n",
];

const XML_SEEDS: &[&str] = &[
    r#"<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data><C:expand start="20260401T000000Z" end="20260501T000000Z"/></C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260401T000000Z"/><C:prop-filter name="SUMMARY"><C:text-match collation="i;octet" negate-condition="yes">x &amp; y</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#,
    r#"<propfind xmlns="DAV:"><prop><resourcetype/><x:y xmlns:x="urn:x"/></prop></propfind>"#,
];

#[test]
fn mutated_calendars_never_panic() {
    let limits = IcalLimits {
        max_components: 50,
        max_instances: 300,
    };
    let allowed = vec!["VEVENT".to_owned(), "VTODO".to_owned()];
    let mut rng = Rng(0x5EED_CA1E);
    let mut accepted = 0;
    for i in 0..3000 {
        let text = mutate(&mut rng, ICAL_SEEDS[i % ICAL_SEEDS.len()]);
        if let Ok((write, _)) = intake("m.ics", &text, &allowed, limits) {
            accepted += 1;
            if let (Some(s), Some(e)) = (write.starts_at, write.ends_at) {
                assert!(s <= e, "{text:?}");
            }
        }
        if let Ok(ical) = parse(&text) {
            let start = rng.next() as i64 % 10_000_000_000_000;
            let _ = overlaps(&ical, start, start + 86_400_000 * 31, 300);
            let out = expand(&ical, start, start + 86_400_000 * 31, 300);
            assert!(out.ends_with("END:VCALENDAR\r\n"));
        }
    }
    // The mutations must leave some objects valid, or this tests nothing.
    assert!(accepted > 100, "only {accepted} accepted");
}

#[test]
fn mutated_cards_never_panic() {
    let mut rng = Rng(0xCA4D);
    let mut accepted = 0;
    for i in 0..3000 {
        let text = mutate(&mut rng, VCARD_SEEDS[i % VCARD_SEEDS.len()]);
        if vcard::intake("m.vcf", &text, 100).is_ok() {
            accepted += 1;
            let _ = vcard::in_version(&text, Some("3.0"));
            let _ = vcard::in_version(&text, Some("4.0"));
        }
    }
    assert!(accepted > 100, "only {accepted} accepted");
}

#[test]
fn mutated_requests_never_panic_and_stay_in_limits() {
    let limits = XmlLimits {
        max_depth: 12,
        max_elements: 60,
    };
    let mut rng = Rng(0x0D0C);
    let mut accepted = 0;
    for i in 0..5000 {
        let text = mutate(&mut rng, XML_SEEDS[i % XML_SEEDS.len()]);
        if let Ok(root) = xml::parse(&text, limits) {
            accepted += 1;
            assert!(root.text.len() <= text.len());
        }
    }
    assert!(accepted > 100, "only {accepted} accepted");
}

/// A rule that never yields an instance (30 February) must end, not spin.
#[test]
fn rules_without_instances_end() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for rule in [
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4,6,9,11",
            "FREQ=SECONDLY;BYHOUR=25",
            "FREQ=DAILY;BYSETPOS=400",
        ] {
            let text = format!(
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260101T000000Z\r\nRRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            );
            let allowed = vec!["VEVENT".to_owned()];
            let _ = intake(
                "x.ics",
                &text,
                &allowed,
                IcalLimits {
                    max_components: 10,
                    max_instances: 1000,
                },
            );
        }
        tx.send(()).unwrap();
    });
    // Not a timing threshold on speed: a generous bound on termination.
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("expanding a rule without instances did not end");
}
