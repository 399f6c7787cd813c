//! Recurrence expansion of any object over any range ends within the
//! instance limit and writes whole components.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_dav::ical::{expand, instances, overlaps, parse};

const LIMIT: usize = 500;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (range, rest) = data.split_at(16);
    let start = i64::from_le_bytes(range[..8].try_into().unwrap()) % (400 * 365 * 86_400_000);
    let len = (u64::from_le_bytes(range[8..].try_into().unwrap()) % (3 * 365 * 86_400_000)) as i64;
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(ical) = parse(text) else {
        return;
    };
    let (found, _) = instances(&ical, LIMIT);
    assert!(found.len() <= LIMIT + ical.components.len());
    let _ = overlaps(&ical, start, start + len, LIMIT);
    let out = expand(&ical, start, start + len, LIMIT);
    assert!(out.starts_with("BEGIN:VCALENDAR\r\n") && out.ends_with("END:VCALENDAR\r\n"));
});
