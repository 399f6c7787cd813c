//! Times on the ledger's command line: which zone a report speaks in, how
//! `--since/--until` are read, and how times are shown (always with their
//! offset, so a time means one instant wherever the report is read).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// The zone reports use: `--tz`, else `[server] time_zone`, else the
/// system's (`TZ`, `/etc/localtime`), else UTC. Zone names are looked up in
/// the system's database (`/usr/share/zoneinfo`), else in the copy built
/// into the binary.
pub fn zone(flag: Option<&str>, configured: Option<&str>) -> anyhow::Result<TimeZone> {
    match flag.or(configured) {
        Some(name) => named(name),
        None => Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC)),
    }
}

/// A zone by IANA name (`Europe/Berlin`), or `UTC`.
pub fn named(name: &str) -> anyhow::Result<TimeZone> {
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| {
        anyhow::anyhow!("{name:?} is not a known time zone (such as Europe/Berlin or UTC): {e}")
    })
}

/// How a zone is named in a report.
pub fn zone_name(tz: &TimeZone) -> String {
    match tz.iana_name() {
        Some(name) => name.to_owned(),
        None if tz == &TimeZone::UTC => "UTC".into(),
        None => format!("UTC{}", tz.to_offset(Timestamp::now())),
    }
}

/// Reads a time for `--since`/`--until`: an instant with its offset
/// (`2026-11-27T10:00:00Z`, `2026-11-27T11:00+01:00`), a time with its zone
/// (`2026-11-27T11:00[Europe/Berlin]`), a local time or date in `tz`
/// (`2026-11-27T11:00`, `2026-11-27 11:00`, `2026-11-27`: midnight), or
/// milliseconds since 1970. A local time a clock change skips or repeats is
/// read as RFC 9557 and Temporal's "compatible" rule says: the later offset
/// for a gap, the earlier for a fold.
pub fn parse_time(s: &str, tz: &TimeZone) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        format!(
            "{s:?} is not a time: use 2026-11-27, 2026-11-27T10:00 (local time, or --tz), \
             2026-11-27T10:00:00Z or 2026-11-27T10:00+01:00"
        )
    };
    let instant = if let Ok(z) = s.parse::<ZonedDateTime>() {
        z.timestamp()
    } else if let Ok(t) = s.parse::<Timestamp>() {
        t
    } else if let Ok(dt) = s.parse::<DateTime>() {
        dt.to_zoned_datetime(tz.clone())
            .map_err(|_| bad())?
            .timestamp()
    } else if let Ok(d) = s.parse::<Date>() {
        d.to_zoned_datetime(tz.clone())
            .map_err(|_| bad())?
            .timestamp()
    } else {
        return Err(bad());
    };
    Ok(instant.as_millisecond())
}

/// A time in `tz` as RFC 3339 with its offset (`2026-11-27T11:05:09+01:00`;
/// `Z` where the offset is zero).
pub fn format_in(ms: i64, tz: &TimeZone) -> String {
    let Ok(t) = Timestamp::from_millisecond(ms) else {
        return format!("{ms} ms (out of range)");
    };
    let z = t.to_zoned_datetime(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// A time in UTC (`2026-11-27T10:05:09Z`).
pub fn format_utc(ms: i64) -> String {
    format_in(ms, &TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let utc = TimeZone::UTC;
        let t = parse_time("2026-11-27T10:05:09Z", &utc).unwrap();
        assert_eq!(format_utc(t), "2026-11-27T10:05:09Z");
        assert_eq!(parse_time("1970-01-02", &utc).unwrap(), 86_400_000);
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_utc(parse_time("2024-02-29 23:59", &utc).unwrap()),
            "2024-02-29T23:59:00Z"
        );
        assert!(parse_time("yesterday", &utc).is_err());
        assert!(parse_time("2026-13-01", &utc).is_err());
        // Not a leap year.
        assert!(parse_time("2026-02-29", &utc).is_err());
        assert!(parse_time("2024-02-29", &utc).is_ok());
    }

    #[test]
    fn local_times_mean_the_given_zone() {
        let berlin = named("Europe/Berlin").unwrap();
        // November: CET, UTC+1.
        let t = parse_time("2026-11-01T08:00", &berlin).unwrap();
        assert_eq!(format_utc(t), "2026-11-01T07:00:00Z");
        assert_eq!(format_in(t, &berlin), "2026-11-01T08:00:00+01:00");
        // July: CEST, UTC+2; a date is local midnight.
        let t = parse_time("2026-07-01", &berlin).unwrap();
        assert_eq!(format_utc(t), "2026-06-30T22:00:00Z");
        // An offset or a zone in the text wins over --tz.
        let t = parse_time("2026-11-01T08:00-05:00", &berlin).unwrap();
        assert_eq!(format_utc(t), "2026-11-01T13:00:00Z");
        let t = parse_time("2026-07-01T08:00[America/New_York]", &berlin).unwrap();
        assert_eq!(format_utc(t), "2026-07-01T12:00:00Z");
        // 02:30 on 29 March 2026 does not exist in Berlin (clocks go from
        // 02:00 to 03:00): read with the offset after the gap.
        let t = parse_time("2026-03-29T02:30", &berlin).unwrap();
        assert_eq!(format_in(t, &berlin), "2026-03-29T03:30:00+02:00");
        // 02:30 on 25 October 2026 happens twice: the first one.
        let t = parse_time("2026-10-25T02:30", &berlin).unwrap();
        assert_eq!(format_in(t, &berlin), "2026-10-25T02:30:00+02:00");
        assert_eq!(zone_name(&berlin), "Europe/Berlin");
        assert_eq!(zone_name(&TimeZone::UTC), "UTC");
        assert!(named("Mars/Olympus_Mons").is_err());
        assert_eq!(named("utc").unwrap(), TimeZone::UTC);
    }
}
