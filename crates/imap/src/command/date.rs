//! Dates of SEARCH and date-times of APPEND (RFC 9051 §9 `date`,
//! `date-time`), checked field by field: `31-Feb-2026` or hour 24 is an
//! error, never a date that rolls over into the next month or day. The
//! grammar's shape is checked here; the calendar (month names, month
//! lengths, leap years) is jiff's.

use jiff::civil::Date;
use jiff::fmt::strtime;
use jiff::{Timestamp, ToSpan};

/// The epoch's date, from which SEARCH counts days.
const EPOCH: Date = jiff::civil::date(1970, 1, 1);

/// Days since 1970-01-01 of a civil date (`d` past the month's end runs
/// on into the next, as day arithmetic does); 0 for a year jiff cannot
/// represent (outside -9999..=9999).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let first = i16::try_from(y)
        .ok()
        .zip(i8::try_from(m).ok())
        .and_then(|(y, m)| Date::new(y, m, 1).ok());
    first
        .and_then(|f| f.checked_add((i64::from(d) - 1).days()).ok())
        .map_or(0, |date| i64::from((date - EPOCH).get_days()))
}

/// The civil date (year, month, day) of days since 1970-01-01 (clamped to
/// jiff's range of years).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let date =
        EPOCH
            .checked_add(days.days())
            .unwrap_or(if days < 0 { Date::MIN } else { Date::MAX });
    (
        i64::from(date.year()),
        date.month() as u32,
        date.day() as u32,
    )
}

/// The English month abbreviation (1-based), as IMAP and RFC 5322 write it.
pub fn month_name(m: u32) -> String {
    let m = i8::try_from(m.clamp(1, 12)).unwrap_or(1);
    jiff::civil::date(2000, m, 1).strftime("%b").to_string()
}

/// Exactly `n` ASCII digits as a number (`str::parse` would take a sign).
fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `date-text` as a date: date-day "-" date-month "-" date-year.
fn date(s: &str) -> Option<Date> {
    let (day, rest) = s.split_once('-')?;
    let (month, year) = rest.split_once('-')?;
    // date-day = 1*2DIGIT
    let d = digits(day, 1).or_else(|| digits(day, 2))?;
    // date-month = "Jan" / ... (case-insensitive, as all ABNF strings):
    // three letters, which jiff names.
    if month.len() != 3 || !month.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let m = strtime::parse("%b", month).ok()?.month()?;
    // date-year = 4DIGIT; year 0 is refused as before, nothing dates it.
    let y = digits(year, 4)?;
    if y == 0 {
        return None;
    }
    Date::new(i16::try_from(y).ok()?, m, i8::try_from(d).ok()?).ok()
}

/// `date-text` (`1-Feb-1994`) as days since the epoch; `None` if
/// malformed or no such day.
pub fn parse_date(s: &str) -> Option<i64> {
    date(s).map(|d| i64::from((d - EPOCH).get_days()))
}

/// The text of a `date-time` (`17-Jul-1996 02:44:25 -0700`) as
/// milliseconds since the epoch; `None` if malformed or out of range.
///
/// date-day-fixed is `(SP DIGIT) / 2DIGIT`; a lone digit is taken too, as
/// Dovecot does. Hours are 00-23, minutes 00-59, seconds 00-60 (a leap
/// second, counted as the next minute's first). The zone's minutes are
/// 00-59 and it lies within -9959..+9959, as RFC 5322 §3.3 bounds the same
/// `zone` (wider than the ±25:59 jiff's offsets hold, so it is applied
/// here as minutes).
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.strip_prefix(' ').unwrap_or(s);
    let mut fields = s.split(' ');
    let (day, time, zone) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let day = date(day)?;
    // time = 2DIGIT ":" 2DIGIT ":" 2DIGIT
    let mut t = time.split(':');
    let (h, mi, sec) = (
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
    );
    if t.next().is_some() || sec > 60 {
        return None;
    }
    // Time::new refuses hour 24 and minute 60 (`at` would panic on them).
    let hm = jiff::civil::Time::new(i8::try_from(h).ok()?, i8::try_from(mi).ok()?, 0, 0).ok()?;
    let minute = day
        .to_datetime(hm)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    // zone = ("+" / "-") 4DIGIT
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (zh, zm) = (digits(zone.get(1..3)?, 2)?, digits(zone.get(3..)?, 2)?);
    if zm > 59 {
        return None;
    }
    let offset_seconds = sign * i64::from(zh * 60 + zm) * 60;
    let local = minute.as_second() + i64::from(sec);
    Some((local - offset_seconds) * 1000)
}

/// A time as RFC 9051's `date-time` in UTC (`27-Nov-2026 07:14:10 +0000`:
/// date-day-fixed, so a day below 10 has a leading space).
pub fn format_date_time(millis: i64) -> String {
    let t = Timestamp::from_millisecond(millis).unwrap_or(if millis < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .strftime("%e-%b-%Y %H:%M:%S +0000")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_edges() {
        // Leap years by the Gregorian rule: 2000 yes, 1900 and 2100 no.
        assert!(parse_date("29-Feb-2000").is_some());
        assert!(parse_date("29-Feb-1900").is_none());
        assert!(parse_date("29-Feb-2100").is_none());
        assert_eq!(parse_date("1-Mar-2024"), Some(days_from_civil(2024, 3, 1)));
        assert_eq!(
            parse_date("1-Mar-2024").unwrap() - parse_date("28-Feb-2024").unwrap(),
            2
        );
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2024, 1, 32), days_from_civil(2024, 2, 1));
        assert_eq!(month_name(1), "Jan");
        assert_eq!(month_name(12), "Dec");
        assert!(parse_date("1-January-2026").is_none());
        // A zone east of UTC puts the instant on the previous UTC day.
        assert_eq!(
            parse_date_time(" 1-Mar-2024 00:30:00 +0100"),
            Some((days_from_civil(2024, 2, 29) * 86_400 + 23 * 3600 + 30 * 60) * 1000)
        );
        // -0000 (RFC 5322 §3.3: UTC, local zone unknown) is UTC.
        assert_eq!(parse_date_time("01-Jan-1970 00:00:00 -0000"), Some(0));
        // A leap second counts as the next minute's first.
        assert_eq!(
            parse_date_time("31-Dec-2016 23:59:60 +0000"),
            parse_date_time("01-Jan-2017 00:00:00 +0000")
        );
    }

    #[test]
    fn date_times_format_with_a_fixed_day() {
        assert_eq!(format_date_time(0), " 1-Jan-1970 00:00:00 +0000");
        assert_eq!(
            format_date_time(parse_date_time("29-Feb-2024 23:59:59 +0000").unwrap()),
            "29-Feb-2024 23:59:59 +0000"
        );
        assert_eq!(format_date_time(-1000), "31-Dec-1969 23:59:59 +0000");
        let t = parse_date_time("17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(format_date_time(t), "17-Jul-1996 09:44:25 +0000");
    }
}
