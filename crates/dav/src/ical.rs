//! iCalendar intake (RFC 4791 §4.1, §5.3.2.1), time-range matching
//! (§9.9) and recurrence expansion (§9.6.5), over calcard.

use calcard::common::timezone::Tz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarProperty, ICalendarValue,
};
use calcard::{Entry, Parser};
use rampart_core::ResourceWrite;

use crate::error::DavError;
use crate::xml::CALDAV;

/// Bounds on calendar objects.
#[derive(Clone, Copy, Debug)]
pub struct IcalLimits {
    /// Most components (events, alarms, time zones...) in one object.
    pub max_components: usize,
    /// Most recurrence instances computed for one object.
    pub max_instances: usize,
}

/// A parsed calendar object resource.
pub struct CalendarObject {
    /// The parsed content.
    pub ical: ICalendar,
    /// The main component type.
    pub component: ICalendarComponentType,
}

fn invalid(condition: &'static str, reason: impl Into<String>) -> DavError {
    DavError::Precondition {
        status: 403,
        ns: CALDAV,
        condition,
        reason: reason.into(),
    }
}

/// Parses an iCalendar text.
pub fn parse(data: &str) -> Result<ICalendar, String> {
    // calcard is lenient about a missing end; a stored object must be whole.
    let tail = data.trim_end();
    let tail = tail
        .get(tail.len().saturating_sub(13)..)
        .unwrap_or_default();
    if !tail.eq_ignore_ascii_case("END:VCALENDAR") {
        return Err("the object does not end with END:VCALENDAR".into());
    }
    let mut parser = Parser::new(data);
    match parser.entry() {
        Entry::ICalendar(ical) => match parser.entry() {
            Entry::Eof => Ok(ical),
            _ => Err("more than one object in one resource".into()),
        },
        Entry::VCard(_) => Err("a vCard, not an iCalendar object".into()),
        Entry::Eof => Err("empty".into()),
        other => Err(format!("not valid iCalendar: {other:?}")),
    }
}

/// The components inside the VCALENDAR other than time zones.
fn main_components(ical: &ICalendar) -> impl Iterator<Item = (u32, &ICalendarComponent)> {
    let root = ical.components.first();
    root.into_iter()
        .flat_map(|r| r.component_ids.iter())
        .filter_map(|&id| ical.components.get(id as usize).map(|c| (id, c)))
        .filter(|(_, c)| c.component_type != ICalendarComponentType::VTimezone)
}

/// Checks a PUT's body and derives what the store keeps beside it.
/// `allowed` are the collection's component types.
pub fn intake(
    name: &str,
    data: &str,
    allowed: &[String],
    limits: IcalLimits,
) -> Result<(ResourceWrite, CalendarObject), DavError> {
    let ical = parse(data).map_err(|reason| invalid("valid-calendar-data", reason))?;
    if ical.components.len() > limits.max_components {
        return Err(DavError::Precondition {
            status: 403,
            ns: CALDAV,
            condition: "max-resource-size",
            reason: format!(
                "{} components exceed the limit of {} (config key dav.max_components)",
                ical.components.len(),
                limits.max_components
            ),
        });
    }
    if ical.components.first().map(|c| &c.component_type)
        != Some(&ICalendarComponentType::VCalendar)
    {
        return Err(invalid("valid-calendar-data", "no VCALENDAR"));
    }
    // RFC 4791 §4.1: one component type and one UID per resource (besides
    // VTIMEZONE); METHOD is for iTIP messages, not stored objects.
    if ical.components[0]
        .property(&ICalendarProperty::Method)
        .is_some()
    {
        return Err(invalid(
            "valid-calendar-object-resource",
            "a stored calendar object must not have METHOD",
        ));
    }
    let mut component = None;
    let mut uid: Option<&str> = None;
    for (_, c) in main_components(&ical) {
        match &component {
            None => component = Some(c.component_type.clone()),
            Some(t) if *t != c.component_type => {
                return Err(invalid(
                    "valid-calendar-object-resource",
                    "more than one component type in one resource",
                ));
            }
            Some(_) => {}
        }
        let this = c
            .uid()
            .ok_or_else(|| invalid("valid-calendar-object-resource", "a component without UID"))?;
        match uid {
            None => uid = Some(this),
            Some(u) if u != this => {
                return Err(invalid(
                    "valid-calendar-object-resource",
                    "more than one UID in one resource",
                ));
            }
            Some(_) => {}
        }
    }
    let component =
        component.ok_or_else(|| invalid("valid-calendar-object-resource", "no component"))?;
    let type_name = component.as_str().to_owned();
    if !matches!(
        component,
        ICalendarComponentType::VEvent
            | ICalendarComponentType::VTodo
            | ICalendarComponentType::VJournal
    ) || !allowed.iter().any(|a| a.eq_ignore_ascii_case(&type_name))
    {
        return Err(invalid(
            "supported-calendar-component",
            format!("this calendar does not take {type_name}"),
        ));
    }
    let uid = uid.unwrap_or_default().to_owned();
    let (starts_at, ends_at, recurring) = bounds(&ical, limits.max_instances);
    Ok((
        ResourceWrite {
            name: name.to_owned(),
            uid,
            component: type_name,
            starts_at,
            ends_at,
            recurring,
            data: data.to_owned(),
        },
        CalendarObject { ical, component },
    ))
}

/// One occurrence: its start and end (ms), the component it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Start, ms since the epoch.
    pub start: i64,
    /// End, ms since the epoch (equal to the start for an instant).
    pub end: i64,
    /// The index of its component in the calendar.
    pub comp_id: u32,
}

/// The occurrences of a calendar's components, at most `limit`; the flag
/// says whether the limit cut them short.
pub fn instances(ical: &ICalendar, limit: usize) -> (Vec<Instance>, bool) {
    let expanded = ical.expand_dates(Tz::UTC, limit);
    let cut = expanded.events.len() >= limit;
    let date_exdates = date_only_exdates(ical);
    let out = expanded
        .events
        .iter()
        .filter(|e| {
            // Evolution writes date-only EXDATEs on date-time series: the
            // instance on that (local) day is the one meant.
            date_exdates.is_empty()
                || !date_exdates.contains(&(e.comp_id, e.start.format("%Y%m%d").to_string()))
        })
        .map(|e| {
            let start = e.start.timestamp_millis();
            let end = match &e.end {
                calcard::icalendar::dates::TimeOrDelta::Time(t) => t.timestamp_millis(),
                calcard::icalendar::dates::TimeOrDelta::Delta(d) => {
                    start.saturating_add(d.num_milliseconds())
                }
            };
            Instance {
                start,
                end: end.max(start),
                comp_id: e.comp_id,
            }
        })
        .collect();
    (out, cut)
}

/// The date-only EXDATEs (`YYYYMMDD`) of components whose DTSTART has a
/// time, by component.
fn date_only_exdates(ical: &ICalendar) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for (id, comp) in ical.components.iter().enumerate() {
        let timed = matches!(
            comp.property(&ICalendarProperty::Dtstart).and_then(|e| e.values.first()),
            Some(ICalendarValue::PartialDateTime(p)) if p.hour.is_some()
        );
        if !timed {
            continue;
        }
        for entry in comp
            .entries
            .iter()
            .filter(|e| e.name == ICalendarProperty::Exdate)
        {
            for v in &entry.values {
                if let ICalendarValue::PartialDateTime(p) = v
                    && p.hour.is_none()
                    && let (Some(y), Some(m), Some(d)) = (p.year, p.month, p.day)
                {
                    out.push((id as u32, format!("{y:04}{m:02}{d:02}")));
                }
            }
        }
    }
    out
}

/// The first start and the last end of an object's occurrences (ms), for
/// the store's preselection; an end of `None` when they run past what we
/// expand (an endless recurrence); and whether there is more than one
/// occurrence (so that the bounds do not stand for it exactly).
fn bounds(ical: &ICalendar, limit: usize) -> (Option<i64>, Option<i64>, bool) {
    let (found, cut) = instances(ical, limit);
    let recurring = cut || found.len() > 1 || main_components(ical).any(|(_, c)| c.is_recurrent());
    let start = found.iter().map(|i| i.start).min();
    let end = if cut {
        None
    } else {
        found.iter().map(|i| i.end).max()
    };
    match start {
        Some(s) => (Some(s), end, recurring),
        None => (None, None, recurring),
    }
}

/// Whether one occurrence `[start, end)` is in `[range_start, range_end)`
/// (RFC 4791 §9.9; an instant is in the range it starts in).
pub fn occurrence_in(start: i64, end: i64, range_start: i64, range_end: i64) -> bool {
    instance_in(
        &Instance {
            start,
            end,
            comp_id: 0,
        },
        range_start,
        range_end,
    )
}

/// Whether an object has an occurrence in `[start, end)` (RFC 4791 §9.9).
/// Objects without any dated occurrence (a VTODO without DTSTART or DUE)
/// match every range; so does one whose expansion hit the limit before
/// the range ends (better one too many than a meeting missed).
pub fn overlaps(ical: &ICalendar, start: i64, end: i64, limit: usize) -> bool {
    let (found, cut) = instances(ical, limit);
    if found.is_empty() {
        return true;
    }
    if cut && found.iter().all(|i| i.start < end) {
        return true;
    }
    found.iter().any(|i| instance_in(i, start, end))
}

fn instance_in(i: &Instance, start: i64, end: i64) -> bool {
    if i.end > i.start {
        i.start < end && i.end > start
    } else {
        // A zero-duration instance is in the range if it starts in it.
        i.start >= start && i.start < end
    }
}

/// How an interval of free/busy time is busy (RFC 5545 §3.2.9 FBTYPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Busy {
    /// A tentative event.
    Tentative,
    /// A confirmed (or unmarked) event.
    Busy,
}

/// The busy intervals an object contributes within `[start, end)`,
/// clipped to it (RFC 4791 §7.10): VEVENT occurrences that are neither
/// transparent nor cancelled.
pub fn busy_intervals(
    ical: &ICalendar,
    start: i64,
    end: i64,
    limit: usize,
) -> Vec<(i64, i64, Busy)> {
    use calcard::icalendar::{ICalendarStatus, ICalendarTransparency};
    let (found, _) = instances(ical, limit);
    found
        .iter()
        .filter(|i| i.end > i.start && instance_in(i, start, end))
        .filter_map(|i| {
            let comp = ical.components.get(i.comp_id as usize)?;
            if comp.component_type != ICalendarComponentType::VEvent
                || comp.transparency() == Some(&ICalendarTransparency::Transparent)
            {
                return None;
            }
            let busy = match comp.status() {
                Some(ICalendarStatus::Cancelled) => return None,
                Some(ICalendarStatus::Tentative) => Busy::Tentative,
                _ => Busy::Busy,
            };
            Some((i.start.max(start), i.end.min(end), busy))
        })
        .collect()
}

/// A VFREEBUSY for `[start, end)` from busy intervals, overlapping ones
/// of the same kind merged.
pub fn freebusy_calendar(
    mut busy: Vec<(i64, i64, Busy)>,
    start: i64,
    end: i64,
    now: i64,
) -> String {
    busy.sort_by_key(|&(s, e, b)| (b, s, e));
    let mut merged: Vec<(i64, i64, Busy)> = Vec::new();
    for (s, e, b) in busy {
        match merged.last_mut() {
            Some(last) if last.2 == b && s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e, b)),
        }
    }
    let utc = |ms: i64| format_utc(ms, false)[1..].to_owned();
    let mut out = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Rampart//CalDAV//EN\r\nBEGIN:VFREEBUSY\r\nDTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\n",
        utc(now),
        utc(start),
        utc(end)
    );
    for (s, e, b) in merged {
        let kind = match b {
            Busy::Busy => "BUSY",
            Busy::Tentative => "BUSY-TENTATIVE",
        };
        out.push_str(&format!("FREEBUSY;FBTYPE={kind}:{}/{}\r\n", utc(s), utc(e)));
    }
    out.push_str("END:VFREEBUSY\r\nEND:VCALENDAR\r\n");
    out
}

/// The text of a calendar with each recurrence instance in `[start, end)`
/// as its own component with a RECURRENCE-ID, in UTC, without time zones
/// (RFC 4791 §9.6.5 CALDAV:expand).
pub fn expand(ical: &ICalendar, start: i64, end: i64, limit: usize) -> String {
    let (found, _) = instances(ical, limit);
    let mut out = String::from("BEGIN:VCALENDAR\r\n");
    if let Some(root) = ical.components.first() {
        for entry in &root.entries {
            let _ = entry.write_to(&mut out);
        }
    }
    for instance in found.iter().filter(|i| instance_in(i, start, end)) {
        let Some(comp) = ical.components.get(instance.comp_id as usize) else {
            continue;
        };
        let all_day = matches!(
            comp.property(&ICalendarProperty::Dtstart)
                .and_then(|e| e.values.first()),
            Some(ICalendarValue::PartialDateTime(p)) if p.hour.is_none()
        );
        let stamp = |ms: i64| format_utc(ms, all_day);
        out.push_str("BEGIN:");
        out.push_str(comp.component_type.as_str());
        out.push_str("\r\n");
        for entry in &comp.entries {
            match entry.name {
                ICalendarProperty::Dtstart
                | ICalendarProperty::Dtend
                | ICalendarProperty::Duration
                | ICalendarProperty::Rrule
                | ICalendarProperty::Rdate
                | ICalendarProperty::Exdate
                | ICalendarProperty::Exrule
                | ICalendarProperty::RecurrenceId => {}
                _ => {
                    let _ = entry.write_to(&mut out);
                }
            }
        }
        out.push_str(&format!("DTSTART{}\r\n", stamp(instance.start)));
        if instance.end > instance.start {
            out.push_str(&format!("DTEND{}\r\n", stamp(instance.end)));
        }
        if comp.is_recurrent() {
            out.push_str(&format!("RECURRENCE-ID{}\r\n", stamp(instance.start)));
        } else if let Some(rid) = comp.property(&ICalendarProperty::RecurrenceId) {
            let _ = rid.write_to(&mut out);
        }
        for &child in &comp.component_ids {
            if let Some(c) = ical.components.get(child as usize) {
                write_component(ical, c, &mut out);
            }
        }
        out.push_str("END:");
        out.push_str(comp.component_type.as_str());
        out.push_str("\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

fn write_component(ical: &ICalendar, comp: &ICalendarComponent, out: &mut String) {
    out.push_str("BEGIN:");
    out.push_str(comp.component_type.as_str());
    out.push_str("\r\n");
    for entry in &comp.entries {
        let _ = entry.write_to(out);
    }
    for &child in &comp.component_ids {
        if let Some(c) = ical.components.get(child as usize) {
            write_component(ical, c, out);
        }
    }
    out.push_str("END:");
    out.push_str(comp.component_type.as_str());
    out.push_str("\r\n");
}

/// `:20260301T090000Z`, or `;VALUE=DATE:20260301` for a date.
fn format_utc(ms: i64, date_only: bool) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if date_only {
        format!(";VALUE=DATE:{y:04}{m:02}{d:02}")
    } else {
        format!(
            ":{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01
/// (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An HTTP date (RFC 9110 §5.6.7 IMF-fixdate) of ms since the epoch.
pub fn http_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Parses a CalDAV UTC date-time attribute (`20260301T000000Z`) to ms.
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Hinnant), inverse of civil_from_days.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: IcalLimits = IcalLimits {
        max_components: 100,
        max_instances: 1000,
    };

    fn events() -> Vec<String> {
        vec!["VEVENT".into(), "VTODO".into()]
    }

    // RFC 4791 appendix B's event abcd3 in spirit: weekly in Europe/Berlin.
    const BERLIN_WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n\
BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n\
END:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:weekly@example.org\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Council\r\n\
DTSTART;TZID=Europe/Berlin:20260319T100000\r\nDTEND;TZID=Europe/Berlin:20260319T110000\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn wall_clock_time_is_kept_across_dst() {
        let (write, object) = intake("w.ics", BERLIN_WEEKLY, &events(), LIMITS).unwrap();
        assert_eq!(write.uid, "weekly@example.org");
        assert_eq!(write.component, "VEVENT");
        let (found, cut) = instances(&object.ical, 100);
        assert!(!cut);
        let starts: Vec<i64> = found.iter().map(|i| i.start).collect();
        // 10:00 CET is 09:00Z before 29 March 2026, 10:00 CEST is 08:00Z after.
        assert_eq!(
            starts,
            [
                parse_utc("20260319T090000Z").unwrap(),
                parse_utc("20260326T090000Z").unwrap(),
                parse_utc("20260402T080000Z").unwrap(),
                parse_utc("20260409T080000Z").unwrap(),
            ]
        );
        assert_eq!(write.starts_at, Some(starts[0]));
        assert_eq!(write.ends_at, Some(parse_utc("20260409T090000Z").unwrap()));
        let text = expand(
            &object.ical,
            parse_utc("20260401T000000Z").unwrap(),
            parse_utc("20260501T000000Z").unwrap(),
            100,
        );
        assert!(text.contains("DTSTART:20260402T080000Z\r\nDTEND:20260402T090000Z\r\nRECURRENCE-ID:20260402T080000Z\r\n"), "{text}");
        assert_eq!(text.matches("BEGIN:VEVENT").count(), 2, "{text}");
        assert!(
            !text.contains("RRULE") && !text.contains("VTIMEZONE"),
            "{text}"
        );
    }

    #[test]
    fn bad_objects_are_refused_with_the_rfc_precondition() {
        let cases = [
            ("not ical", "valid-calendar-data"),
            ("BEGIN:VCALENDAR\r\nthis is not ical", "valid-calendar-data"),
            (
                "BEGIN:VCALENDAR\r\nSUMMARY:Grüße aus Köln €€€€",
                "valid-calendar-data",
            ),
            (
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
                "valid-calendar-data",
            ),
            (
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART:20260101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                "valid-calendar-object-resource",
            ),
            (
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260101T000000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                "valid-calendar-object-resource",
            ),
            (
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260101T000000Z\r\nEND:VEVENT\r\nBEGIN:VTODO\r\nUID:a\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
                "valid-calendar-object-resource",
            ),
            (
                "BEGIN:VCALENDAR\r\nBEGIN:VJOURNAL\r\nUID:j\r\nDTSTART:20260101T000000Z\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n",
                "supported-calendar-component",
            ),
            (
                "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                "valid-calendar-object-resource",
            ),
        ];
        for (data, expected) in cases {
            match intake("x.ics", data, &events(), LIMITS) {
                Err(DavError::Precondition { condition, .. }) => {
                    assert_eq!(condition, expected, "{data:?}")
                }
                other => panic!("{data:?}: {:?}", other.map(|r| r.0)),
            }
        }
    }

    #[test]
    fn endless_recurrences_have_no_end_and_match_late_ranges() {
        let data = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:daily\r\nDTSTART:20200101T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (write, object) = intake("d.ics", data, &events(), LIMITS).unwrap();
        assert_eq!(write.starts_at, parse_utc("20200101T090000Z"));
        assert_eq!(write.ends_at, None);
        let far = parse_utc("20400101T000000Z").unwrap();
        assert!(overlaps(&object.ical, far, far + 86_400_000, 100));
        assert!(!overlaps(
            &object.ical,
            parse_utc("20190101T000000Z").unwrap(),
            parse_utc("20190102T000000Z").unwrap(),
            100
        ));
    }

    #[test]
    fn all_day_events_expand_as_dates_and_todos_without_dates_match() {
        let data = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:holiday\r\nDTSTART;VALUE=DATE:20261003\r\nDTEND;VALUE=DATE:20261004\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (_, object) = intake("h.ics", data, &events(), LIMITS).unwrap();
        let day = parse_utc("20261003T000000Z").unwrap();
        assert!(overlaps(
            &object.ical,
            day + 3_600_000,
            day + 7_200_000,
            100
        ));
        assert!(!overlaps(
            &object.ical,
            day + 86_400_000,
            day + 2 * 86_400_000,
            100
        ));
        let text = expand(&object.ical, day, day + 86_400_000, 100);
        assert!(text.contains("DTSTART;VALUE=DATE:20261003\r\n"), "{text}");
        let todo = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nSUMMARY:Call\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        let (write, object) = intake("t.ics", todo, &events(), LIMITS).unwrap();
        assert_eq!((write.starts_at, write.ends_at), (None, None));
        assert!(overlaps(&object.ical, 0, 1, 100));
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        // RFC 9110 §5.6.7's example.
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn utc_stamps_round_trip() {
        for s in ["19700101T000000Z", "20240229T235959Z", "21000301T120000Z"] {
            let ms = parse_utc(s).unwrap();
            assert_eq!(format_utc(ms, false), format!(":{s}"));
        }
        assert_eq!(parse_utc("2024-02-29"), None);
        assert_eq!(parse_utc("20241399T000000Z"), None);
    }
}

#[cfg(test)]
mod freebusy {
    use super::*;

    #[test]
    fn busy_time_skips_transparent_and_cancelled_and_merges() {
        let data = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\nRRULE:FREQ=DAILY;COUNT=2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let tentative = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:b\r\nSTATUS:TENTATIVE\r\nDTSTART:20260302T093000Z\r\nDTEND:20260302T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let free = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:c\r\nTRANSP:TRANSPARENT\r\nDTSTART:20260302T120000Z\r\nDTEND:20260302T130000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let cancelled = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:d\r\nSTATUS:CANCELLED\r\nDTSTART:20260302T140000Z\r\nDTEND:20260302T150000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let overlapping = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:e\r\nDTSTART:20260302T094500Z\r\nDTEND:20260302T103000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (start, end) = (
            parse_utc("20260302T000000Z").unwrap(),
            parse_utc("20260303T000000Z").unwrap(),
        );
        let mut busy = Vec::new();
        for d in [data, tentative, free, cancelled, overlapping] {
            busy.extend(busy_intervals(&parse(d).unwrap(), start, end, 100));
        }
        let text = freebusy_calendar(busy, start, end, start);
        assert!(
            text.contains("FREEBUSY;FBTYPE=BUSY:20260302T090000Z/20260302T103000Z\r\n"),
            "{text}"
        );
        assert!(
            text.contains("FREEBUSY;FBTYPE=BUSY-TENTATIVE:20260302T093000Z/20260302T110000Z\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("FREEBUSY;").count(), 2, "{text}");
        assert!(
            !text.contains("SUMMARY") && !text.contains("UID:"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod quirks {
    use super::*;

    const LIMITS: IcalLimits = IcalLimits {
        max_components: 100,
        max_instances: 1000,
    };

    fn starts(data: &str) -> Vec<i64> {
        let allowed = vec!["VEVENT".to_owned()];
        let (_, object) = intake("q.ics", data, &allowed, LIMITS).unwrap();
        let mut s: Vec<i64> = instances(&object.ical, 100)
            .0
            .iter()
            .map(|i| i.start)
            .collect();
        s.sort();
        s
    }

    fn ends(data: &str) -> Vec<i64> {
        let allowed = vec!["VEVENT".to_owned()];
        let (_, object) = intake("q.ics", data, &allowed, LIMITS).unwrap();
        let mut s: Vec<i64> = instances(&object.ical, 100)
            .0
            .iter()
            .map(|i| i.end)
            .collect();
        s.sort();
        s
    }

    #[test]
    fn thunderbird_exception_with_dtend_and_duration() {
        let data = "BEGIN:VCALENDAR\r\nPRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN\r\nBEGIN:VEVENT\r\nUID:tb\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:tb\r\nRECURRENCE-ID:20260303T090000Z\r\nDTSTART:20260303T120000Z\r\nDTEND:20260303T130000Z\r\nDURATION:PT1H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(
            starts(data),
            [
                parse_utc("20260302T090000Z").unwrap(),
                parse_utc("20260303T120000Z").unwrap(),
                parse_utc("20260304T090000Z").unwrap()
            ]
        );
        assert!(ends(data).contains(&parse_utc("20260303T130000Z").unwrap()));
    }

    #[test]
    fn evolution_date_only_exdate_on_a_date_time_series() {
        let data = "BEGIN:VCALENDAR\r\nPRODID:-//Ximian//NONSGML Evolution Calendar//EN\r\nBEGIN:VEVENT\r\nUID:evo\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEXDATE;VALUE=DATE:20260303\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(
            starts(data),
            [
                parse_utc("20260302T090000Z").unwrap(),
                parse_utc("20260304T090000Z").unwrap()
            ]
        );
    }

    #[test]
    fn outlook_windows_time_zone_names() {
        // Without a VTIMEZONE: the Windows name alone must resolve.
        let bare = "BEGIN:VCALENDAR\r\nPRODID:CalDavSynchronizer\r\nBEGIN:VEVENT\r\nUID:ol\r\nDTSTART;TZID=W. Europe Standard Time:20260319T100000\r\nDTEND;TZID=W. Europe Standard Time:20260319T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(starts(bare), [parse_utc("20260319T090000Z").unwrap()]);
        // In summer, with the VTIMEZONE Outlook sends.
        let with_tz = "BEGIN:VCALENDAR\r\nPRODID:CalDavSynchronizer\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:ol2\r\nDTSTART;TZID=W. Europe Standard Time:20260710T100000\r\nDTEND;TZID=W. Europe Standard Time:20260710T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(starts(with_tz), [parse_utc("20260710T080000Z").unwrap()]);
    }
}
