//! Dates of SEARCH and date-times of APPEND (RFC 9051 §9 `date`,
//! `date-time`), checked field by field: `31-Feb-2026` or hour 24 is an
//! error, never a date that rolls over into the next month or day.

pub use rampart_core::calendar::{civil_from_days, days_from_civil};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The English month abbreviation (1-based).
pub fn month_name(m: u32) -> &'static str {
    MONTHS[(m.clamp(1, 12) - 1) as usize]
}

/// Days in month `m` of year `y`, leap years by the Gregorian rule.
fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Exactly `n` ASCII digits as a number (`str::parse` would take a sign).
fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `date-text` (`1-Feb-1994`: date-day "-" date-month "-" date-year) as
/// days since the epoch; `None` if malformed or no such day.
pub fn parse_date(s: &str) -> Option<i64> {
    let (day, rest) = s.split_once('-')?;
    let (month, year) = rest.split_once('-')?;
    // date-day = 1*2DIGIT
    let d = digits(day, 1).or_else(|| digits(day, 2))?;
    // date-month = "Jan" / ... (case-insensitive, as all ABNF strings)
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(month))? as u32 + 1;
    // date-year = 4DIGIT; year 0 is refused as before, nothing dates it.
    let y = i64::from(digits(year, 4)?);
    if y == 0 || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// The text of a `date-time` (`17-Jul-1996 02:44:25 -0700`) as
/// milliseconds since the epoch; `None` if malformed or out of range.
///
/// date-day-fixed is `(SP DIGIT) / 2DIGIT`; a lone digit is taken too, as
/// Dovecot does. Hours are 00-23, minutes 00-59, seconds 00-60 (a leap
/// second). The zone's minutes are 00-59 and it lies within -9959..+9959,
/// as RFC 5322 §3.3 bounds the same `zone`.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.strip_prefix(' ').unwrap_or(s);
    let mut fields = s.split(' ');
    let (date, time, zone) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let days = parse_date(date)?;
    // time = 2DIGIT ":" 2DIGIT ":" 2DIGIT
    let mut t = time.split(':');
    let (h, mi, sec) = (
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
    );
    if t.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
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
    let offset = sign * i64::from(zh * 60 + zm);
    let local = days * 86400 + i64::from(h * 3600 + mi * 60 + sec);
    Some((local - offset * 60) * 1000)
}
