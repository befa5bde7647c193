//! Recurrence expansion for the emulator, on the `rrule` crate (RFC 5545 §3.3.10), so that
//! the emulator does not share the expansion code of the engine it tests.
//!
//! A master's `start` gives DTSTART (`dateTime` + `timeZone`, or `date` for all-day series),
//! its `recurrence` lines give RRULE/RDATE/EXDATE (EXRULE lines are ignored: deprecated in
//! RFC 5545). Google names an instance `<masterId>_<suffix>` with the suffix being the
//! instance's original start: `YYYYMMDD` for all-day series, UTC `YYYYMMDDTHHMMSSZ`
//! otherwise (https://developers.google.com/workspace/calendar/api/guides/recurringevents).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// Most instances the emulator generates for one series in a listing (an endless rule is
/// cut there; Google's own cut-off for `singleEvents` listings is undocumented).
pub const MAX_INSTANCES: u16 = 730;

/// The instance-id suffixes of `master`, in start order, with start in `[from, to)` (UTC;
/// open ends when `None`), at most `limit`. Empty when the master is not recurring or its
/// rule cannot be read.
pub fn suffixes(
    master: &Value,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: u16,
) -> Vec<String> {
    let Some((set, all_day)) = rule_set(master) else {
        return Vec::new();
    };
    let utc = rrule::Tz::UTC;
    let mut set = set;
    if let Some(f) = from {
        set = set.after(f.with_timezone(&utc));
    }
    if let Some(t) = to {
        set = set.before(t.with_timezone(&utc));
    }
    set.all(limit)
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .filter(|d| from.is_none_or(|f| *d >= f) && to.is_none_or(|t| *d < t))
        .map(|d| suffix_of(d, all_day))
        .collect()
}

/// Whether `suffix` names an instance `master` generates.
pub fn generates(master: &Value, suffix: &str) -> bool {
    let Some(t) = suffix_instant(suffix) else {
        return false;
    };
    let window = chrono::Duration::seconds(1);
    suffixes(master, Some(t - window), Some(t + window), 3)
        .iter()
        .any(|s| s == suffix)
}

/// The UTC instant an instance suffix stands for (all-day: midnight UTC of that date).
pub fn suffix_instant(suffix: &str) -> Option<DateTime<Utc>> {
    if suffix.len() == 8 {
        let d = NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()?;
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    let t =
        chrono::NaiveDateTime::parse_from_str(suffix.strip_suffix('Z')?, "%Y%m%dT%H%M%S").ok()?;
    Some(t.and_utc())
}

fn suffix_of(d: DateTime<Utc>, all_day: bool) -> String {
    if all_day {
        d.format("%Y%m%d").to_string()
    } else {
        d.format("%Y%m%dT%H%M%SZ").to_string()
    }
}

/// The master as an `rrule` set and whether it is all-day. All-day series are expanded at
/// midnight UTC (their dates are what counts), with date-valued UNTIL/RDATE/EXDATE moved to
/// the same clock.
fn rule_set(master: &Value) -> Option<(rrule::RRuleSet, bool)> {
    let lines: Vec<&str> = master["recurrence"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let start = &master["start"];
    let (dtstart, all_day) = match (start["date"].as_str(), start["dateTime"].as_str()) {
        (Some(d), _) => {
            let d = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
            (
                format!("DTSTART;TZID=UTC:{}T000000", d.format("%Y%m%d")),
                true,
            )
        }
        (None, Some(t)) => {
            let t = DateTime::parse_from_rfc3339(t).ok()?;
            let tz: chrono_tz::Tz = start["timeZone"]
                .as_str()
                .and_then(|z| z.parse().ok())
                .unwrap_or(chrono_tz::UTC);
            let local = t.with_timezone(&tz).naive_local();
            (
                format!(
                    "DTSTART;TZID={}:{}",
                    tz.name(),
                    local.format("%Y%m%dT%H%M%S")
                ),
                false,
            )
        }
        _ => return None,
    };
    let mut text = dtstart;
    for l in lines {
        let upper = l.to_ascii_uppercase();
        let line = if upper.starts_with("RRULE") {
            fix_until(l, all_day)
        } else if upper.starts_with("RDATE") || upper.starts_with("EXDATE") {
            fix_dates(l, all_day)
        } else {
            continue;
        };
        text.push('\n');
        text.push_str(&line);
    }
    let set: rrule::RRuleSet = text.parse().ok()?;
    Some((set, all_day))
}

/// A date-only UNTIL becomes the UTC date-time `rrule` needs: midnight for all-day series
/// (inclusive of that date), end of day otherwise.
fn fix_until(line: &str, all_day: bool) -> String {
    let (head, rule) = line.split_once(':').unwrap_or(("RRULE", line));
    let parts: Vec<String> = rule
        .split(';')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("UNTIL") && v.len() == 8 => {
                format!("UNTIL={v}T{}Z", if all_day { "000000" } else { "235959" })
            }
            _ => p.to_string(),
        })
        .collect();
    format!("{head}:{}", parts.join(";"))
}

/// Date-valued RDATE/EXDATE of an all-day series on the midnight-UTC clock.
fn fix_dates(line: &str, all_day: bool) -> String {
    let Some((head, values)) = line.split_once(':') else {
        return line.to_string();
    };
    let name = head.split(';').next().unwrap_or(head);
    let dates: Vec<&str> = values.split(',').collect();
    if all_day && dates.iter().all(|v| v.len() == 8) {
        let moved: Vec<String> = dates.iter().map(|v| format!("{v}T000000")).collect();
        return format!("{name};TZID=UTC:{}", moved.join(","));
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_day_yearly_with_date_until() {
        let m = json!({"start": {"date": "2002-12-26"},
            "recurrence": ["RRULE:FREQ=YEARLY;UNTIL=20041226;BYMONTH=12"]});
        assert_eq!(
            suffixes(&m, None, None, 10),
            ["20021226", "20031226", "20041226"]
        );
        assert!(generates(&m, "20031226"));
        assert!(!generates(&m, "20031227"));
    }

    #[test]
    fn timed_series_in_its_zone_with_exdate_and_rdate() {
        let m = json!({"start": {"dateTime": "2027-03-26T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=3", "EXDATE;TZID=Europe/Berlin:20270327T090000",
                           "RDATE:20270401T120000Z"]});
        // 28 March 2027: summer time starts in Berlin, 09:00 local is 07:00Z.
        assert_eq!(
            suffixes(&m, None, None, 10),
            ["20270326T080000Z", "20270328T070000Z", "20270401T120000Z"]
        );
        assert!(!generates(&m, "20270327T080000Z"));
    }

    #[test]
    fn windows_and_endless_rules() {
        let m = json!({"start": {"dateTime": "2027-01-04T09:00:00Z"},
            "recurrence": ["RRULE:FREQ=WEEKLY"]});
        let from = "2027-02-01T00:00:00Z".parse().ok();
        let to = "2027-02-16T00:00:00Z".parse().ok();
        assert_eq!(
            suffixes(&m, from, to, 10),
            ["20270201T090000Z", "20270208T090000Z", "20270215T090000Z"]
        );
        assert_eq!(suffixes(&m, None, None, 5).len(), 5);
        assert!(suffixes(&json!({"start": {"date": "2027-01-01"}}), None, None, 5).is_empty());
    }
}
