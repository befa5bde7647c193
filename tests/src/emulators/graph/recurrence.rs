//! Series expansion for the Graph emulator: `patternedRecurrence` (provider-semantics §2.3,
//! https://learn.microsoft.com/graph/api/resources/patternedrecurrence) turned into an RRULE
//! and expanded with the `rrule` crate, so that the emulator shares no expansion code with
//! the adapter it tests.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// Most occurrences the emulator generates for one series.
pub const MAX_OCCURRENCES: u16 = 5000;

/// The IANA zone of a Graph `timeZone` value: a Windows name (CLDR map), an IANA name, or
/// UTC. `None`: not a zone Graph accepts.
pub fn zone(name: &str) -> Option<chrono_tz::Tz> {
    if name.eq_ignore_ascii_case("UTC") || name.eq_ignore_ascii_case("Coordinated Universal Time") {
        return Some(chrono_tz::UTC);
    }
    if let Some(iana) = calsync::ical::windows_to_iana(name) {
        return iana.parse().ok();
    }
    name.parse().ok()
}

/// `dateTimeTimeZone.dateTime` (`2024-01-08T09:00:00.0000000`, fractions optional) as a
/// local date-time.
pub fn local(dt: &str) -> Option<NaiveDateTime> {
    let base = dt.split('.').next()?;
    NaiveDateTime::parse_from_str(base, "%Y-%m-%dT%H:%M:%S").ok()
}

/// The UTC instant of a `dateTimeTimeZone` object.
pub fn instant(v: &Value) -> Option<DateTime<Utc>> {
    let tz = zone(v["timeZone"].as_str().unwrap_or("UTC"))?;
    let n = local(v["dateTime"].as_str()?)?;
    tz.from_local_datetime(&n)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Graph's `dateTime` text for a local date-time (seven fraction digits, as Graph writes).
pub fn graph_text(n: NaiveDateTime) -> String {
    n.format("%Y-%m-%dT%H:%M:%S.0000000").to_string()
}

fn day(d: &str) -> Option<&'static str> {
    Some(match d.to_ascii_lowercase().as_str() {
        "sunday" => "SU",
        "monday" => "MO",
        "tuesday" => "TU",
        "wednesday" => "WE",
        "thursday" => "TH",
        "friday" => "FR",
        "saturday" => "SA",
        _ => return None,
    })
}

fn setpos(i: &str) -> Option<i32> {
    Some(match i.to_ascii_lowercase().as_str() {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "last" => -1,
        _ => return None,
    })
}

/// Why `recurrence` is not one Graph accepts ("Any property that you include that does not
/// have a supported value would result in an error", …/resources/recurrencepattern).
pub fn validate(recurrence: &Value) -> Result<(), String> {
    rrule_of(recurrence, "UTC").map(|_| ())
}

/// The RRULE line of a `patternedRecurrence`, UNTIL as the end of `range.endDate` in
/// `tz` (converted to UTC).
fn rrule_of(r: &Value, tz: &str) -> Result<String, String> {
    let p = &r["pattern"];
    let range = &r["range"];
    let interval = p["interval"].as_i64().unwrap_or(0);
    if interval < 1 {
        return Err("pattern.interval must be at least 1".into());
    }
    let days = || -> Result<String, String> {
        let list = p["daysOfWeek"]
            .as_array()
            .ok_or("pattern.daysOfWeek is required")?;
        let d: Option<Vec<&str>> = list.iter().map(|v| v.as_str().and_then(day)).collect();
        let d = d.ok_or("pattern.daysOfWeek holds an unknown day")?;
        if d.is_empty() {
            return Err("pattern.daysOfWeek is empty".into());
        }
        Ok(d.join(","))
    };
    let month_day = || {
        p["dayOfMonth"]
            .as_i64()
            .filter(|d| (1..=31).contains(d))
            .ok_or("pattern.dayOfMonth must be 1-31")
    };
    let month = || {
        p["month"]
            .as_i64()
            .filter(|m| (1..=12).contains(m))
            .ok_or("pattern.month must be 1-12")
    };
    let index =
        || setpos(p["index"].as_str().unwrap_or("first")).ok_or("pattern.index is not first…last");
    let mut rule = match p["type"].as_str().unwrap_or("") {
        "daily" => format!("FREQ=DAILY;INTERVAL={interval}"),
        "weekly" => {
            let wkst = day(p["firstDayOfWeek"].as_str().unwrap_or("sunday"))
                .ok_or("pattern.firstDayOfWeek is not a day")?;
            format!(
                "FREQ=WEEKLY;INTERVAL={interval};BYDAY={};WKST={wkst}",
                days()?
            )
        }
        "absoluteMonthly" => format!(
            "FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={}",
            month_day()?
        ),
        "relativeMonthly" => format!(
            "FREQ=MONTHLY;INTERVAL={interval};BYDAY={};BYSETPOS={}",
            days()?,
            index()?
        ),
        "absoluteYearly" => format!(
            "FREQ=YEARLY;INTERVAL={interval};BYMONTH={};BYMONTHDAY={}",
            month()?,
            month_day()?
        ),
        "relativeYearly" => format!(
            "FREQ=YEARLY;INTERVAL={interval};BYMONTH={};BYDAY={};BYSETPOS={}",
            month()?,
            days()?,
            index()?
        ),
        other => return Err(format!("pattern.type {other:?} is not supported")),
    };
    range["startDate"]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or("range.startDate is required (YYYY-MM-DD)")?;
    match range["type"].as_str().unwrap_or("") {
        "noEnd" => {}
        "numbered" => {
            let n = range["numberOfOccurrences"]
                .as_i64()
                .filter(|n| *n >= 1)
                .ok_or("range.numberOfOccurrences must be at least 1")?;
            rule.push_str(&format!(";COUNT={n}"));
        }
        "endDate" => {
            let end = range["endDate"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or("range.endDate is required (YYYY-MM-DD)")?;
            let zone =
                zone(range["recurrenceTimeZone"].as_str().unwrap_or(tz)).unwrap_or(chrono_tz::UTC);
            let last = end.and_hms_opt(23, 59, 59).expect("end of day");
            let utc = zone
                .from_local_datetime(&last)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&last));
            rule.push_str(&format!(";UNTIL={}", utc.format("%Y%m%dT%H%M%SZ")));
        }
        other => return Err(format!("range.type {other:?} is not supported")),
    }
    Ok(rule)
}

/// The original start instants (UTC) of `master`'s occurrences starting in `[from, to)`,
/// in order. The first occurrence is on `range.startDate` at the master's start time in its
/// zone. Empty for a master whose rule cannot be read.
pub fn occurrence_starts(
    master: &Value,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let start = &master["start"];
    let tzname = master["originalStartTimeZone"]
        .as_str()
        .or(start["timeZone"].as_str())
        .unwrap_or("UTC");
    let Some(tz) = zone(tzname) else {
        return Vec::new();
    };
    let (Some(first), Some(date)) = (
        instant(start),
        master["recurrence"]["range"]["startDate"]
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
    ) else {
        return Vec::new();
    };
    let Ok(rule) = rrule_of(&master["recurrence"], tzname) else {
        return Vec::new();
    };
    let time = first.with_timezone(&tz).time();
    let dtstart = date.and_time(time);
    let text = format!(
        "DTSTART;TZID={}:{}\nRRULE:{rule}",
        tz.name(),
        dtstart.format("%Y%m%dT%H%M%S")
    );
    let Ok(set) = text.parse::<rrule::RRuleSet>() else {
        return Vec::new();
    };
    let utc = rrule::Tz::UTC;
    set.after(from.with_timezone(&utc))
        .before(to.with_timezone(&utc))
        .all(MAX_OCCURRENCES)
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .filter(|d| *d >= from && *d < to)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_expand_as_documented() {
        let master = |pattern: Value, range: Value| {
            json!({"start": {"dateTime": "2024-01-01T09:00:00.0000000", "timeZone": "W. Europe Standard Time"},
                   "originalStartTimeZone": "W. Europe Standard Time",
                   "recurrence": {"pattern": pattern, "range": range}})
        };
        let from = Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let weekly = master(
            json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "sunday"}),
            json!({"type": "numbered", "startDate": "2024-01-01", "numberOfOccurrences": 4}),
        );
        let got = occurrence_starts(&weekly, from, to);
        let want: Vec<_> = [(1, 8), (3, 8), (8, 8), (10, 8)]
            .iter()
            .map(|(d, h)| Utc.with_ymd_and_hms(2024, 1, *d, *h, 0, 0).unwrap())
            .collect();
        assert_eq!(got, want, "09:00 Berlin is 08:00 UTC in winter");
        let last_friday = master(
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"}),
            json!({"type": "endDate", "startDate": "2024-01-01", "endDate": "2024-03-31"}),
        );
        let got: Vec<u32> = occurrence_starts(&last_friday, from, to)
            .iter()
            .map(chrono::Datelike::day)
            .collect();
        assert_eq!(got, vec![26, 23, 29]);
        for bad in [
            json!({"pattern": {"type": "hourly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2024-01-01"}}),
            json!({"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2024-01-01"}}),
            json!({"pattern": {"type": "daily", "interval": 0}, "range": {"type": "noEnd", "startDate": "2024-01-01"}}),
            json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2024-01-01"}}),
        ] {
            assert!(validate(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            zone("Pacific Standard Time"),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(zone("Nowhere Standard Time"), None);
    }
}
