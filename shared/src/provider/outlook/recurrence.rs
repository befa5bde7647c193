//! RRULE (RFC 5545 §3.3.10) ↔ Graph `patternedRecurrence`
//! (https://learn.microsoft.com/graph/api/resources/patternedrecurrence; provider-semantics
//! §2.3). Pure functions; what Graph cannot express is an error naming the rule part, never a
//! silently different rule.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Value};

/// 23:59:59, the last second of a day (an all-day series' UNTIL in local time).
const END_OF_DAY: chrono::NaiveTime = match chrono::NaiveTime::from_hms_opt(23, 59, 59) {
    Some(t) => t,
    None => chrono::NaiveTime::MIN,
};

const DAYS: [(&str, &str); 7] = [
    ("SU", "sunday"),
    ("MO", "monday"),
    ("TU", "tuesday"),
    ("WE", "wednesday"),
    ("TH", "thursday"),
    ("FR", "friday"),
    ("SA", "saturday"),
];

const INDEX: [(i64, &str); 5] = [
    (1, "first"),
    (2, "second"),
    (3, "third"),
    (4, "fourth"),
    (-1, "last"),
];

fn graph_day(ical: &str) -> Option<&'static str> {
    DAYS.iter().find(|(i, _)| *i == ical).map(|(_, g)| *g)
}

/// The RFC 5545 day of a Graph `dayOfWeek` (Graph accepts `Monday` as well as `monday`).
fn ical_day(graph: &str) -> Option<&'static str> {
    DAYS.iter()
        .find(|(_, g)| g.eq_ignore_ascii_case(graph))
        .map(|(i, _)| *i)
}

/// Where the series starts, as the rule needs it: the local start date-time and whether the
/// series is all-day.
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    /// DTSTART in the series' zone (midnight for all-day series).
    pub local: NaiveDateTime,
    /// The series' zone.
    pub zone: chrono_tz::Tz,
    /// All-day series (UNTIL is a date).
    pub all_day: bool,
}

/// The `patternedRecurrence` of an RRULE value (`FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`) starting
/// at `anchor`; `tz_name` is the Windows name written as `recurrenceTimeZone`.
///
/// Errors: a rule Graph cannot express (HOURLY and finer, BYHOUR/BYMINUTE/BYSECOND,
/// BYYEARDAY, BYWEEKNO, several or negative BYMONTHDAY, several BYMONTH, BYSETPOS other than
/// 1–4/−1, offsets in a WEEKLY BYDAY, mixed offsets), named in the message.
pub fn to_graph(rule: &str, anchor: Anchor, tz_name: &str) -> Result<Value, String> {
    let mut parts = std::collections::BTreeMap::new();
    for p in rule.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("RRULE part {p:?} is not NAME=VALUE"))?;
        parts.insert(k.to_ascii_uppercase(), v.to_ascii_uppercase());
    }
    let cannot = |what: &str| Err(format!("RRULE {rule}: Outlook cannot express {what}"));
    for k in ["BYHOUR", "BYMINUTE", "BYSECOND", "BYYEARDAY", "BYWEEKNO"] {
        if parts.contains_key(k) {
            return cannot(k);
        }
    }
    let interval: i64 = match parts.get("INTERVAL") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|i| *i >= 1)
            .ok_or_else(|| format!("RRULE {rule}: INTERVAL {v} is not a positive number"))?,
        None => 1,
    };
    let date = anchor.local.date();
    // BYDAY → (offset, day) list.
    let byday: Vec<(Option<i64>, &'static str)> = match parts.get("BYDAY") {
        None => Vec::new(),
        Some(v) => {
            let mut out = Vec::new();
            for d in v.split(',') {
                let (num, name) = d.split_at(d.len().saturating_sub(2));
                let day = graph_day(name)
                    .ok_or_else(|| format!("RRULE {rule}: BYDAY {d} is not a day"))?;
                let off = if num.is_empty() {
                    None
                } else {
                    Some(
                        num.trim_start_matches('+')
                            .parse::<i64>()
                            .map_err(|_| format!("RRULE {rule}: BYDAY {d} has a bad offset"))?,
                    )
                };
                out.push((off, day));
            }
            out
        }
    };
    let single = |k: &str, lo: i64, hi: i64| -> Result<Option<i64>, String> {
        match parts.get(k) {
            None => Ok(None),
            Some(v) if v.contains(',') => Err(format!(
                "RRULE {rule}: Outlook cannot express several {k} values"
            )),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .map(Some)
                .ok_or_else(|| format!("RRULE {rule}: Outlook cannot express {k}={v}")),
        }
    };
    let monthday = single("BYMONTHDAY", 1, 31)?;
    let month = single("BYMONTH", 1, 12)?;
    let setpos = single("BYSETPOS", -1, 4)?.filter(|p| *p != 0);
    if parts.contains_key("BYSETPOS") && setpos.is_none() {
        return cannot("BYSETPOS=0");
    }
    let offsets: std::collections::BTreeSet<Option<i64>> = byday.iter().map(|(o, _)| *o).collect();
    if offsets.len() > 1 {
        return cannot("BYDAY days with different offsets");
    }
    let offset = offsets.into_iter().next().flatten();
    let index = match (offset, setpos) {
        (Some(_), Some(_)) => return cannot("both a BYDAY offset and BYSETPOS"),
        (o, p) => o.or(p),
    };
    let index_name = |i: i64| {
        INDEX
            .iter()
            .find(|(n, _)| *n == i)
            .map(|(_, s)| *s)
            .ok_or_else(|| format!("RRULE {rule}: Outlook cannot express the position {i}"))
    };
    let days: Vec<&str> = byday.iter().map(|(_, d)| *d).collect();
    let dow = |d: NaiveDate| {
        graph_day(&d.format("%a").to_string()[..2].to_ascii_uppercase()).unwrap_or("monday")
    };
    let wkst = parts
        .get("WKST")
        .map(|w| graph_day(w).ok_or_else(|| format!("RRULE {rule}: WKST {w} is not a day")))
        .transpose()?
        .unwrap_or("monday");
    let pattern = match parts.get("FREQ").map(String::as_str) {
        Some("DAILY") => {
            if !days.is_empty() || monthday.is_some() || month.is_some() {
                return cannot("a DAILY rule with BY… parts");
            }
            json!({"type": "daily", "interval": interval})
        }
        Some("WEEKLY") => {
            if offset.is_some() || setpos.is_some() || monthday.is_some() || month.is_some() {
                return cannot("a WEEKLY rule with offsets, BYSETPOS, BYMONTHDAY or BYMONTH");
            }
            let days = if days.is_empty() {
                vec![dow(date)]
            } else {
                days
            };
            json!({"type": "weekly", "interval": interval, "daysOfWeek": days, "firstDayOfWeek": wkst})
        }
        Some("MONTHLY") => match (index, days.is_empty(), monthday) {
            (None, true, m) => {
                json!({"type": "absoluteMonthly", "interval": interval, "dayOfMonth": m.unwrap_or(i64::from(chrono::Datelike::day(&date)))})
            }
            (Some(i), false, None) => {
                json!({"type": "relativeMonthly", "interval": interval, "daysOfWeek": days, "index": index_name(i)?})
            }
            _ => return cannot("this MONTHLY combination"),
        },
        Some("YEARLY") => {
            let m = month.unwrap_or(i64::from(chrono::Datelike::month(&date)));
            match (index, days.is_empty(), monthday) {
                (None, true, d) => {
                    json!({"type": "absoluteYearly", "interval": interval, "month": m, "dayOfMonth": d.unwrap_or(i64::from(chrono::Datelike::day(&date)))})
                }
                (Some(i), false, None) if month.is_some() => {
                    json!({"type": "relativeYearly", "interval": interval, "month": m, "daysOfWeek": days, "index": index_name(i)?})
                }
                _ => return cannot("this YEARLY combination"),
            }
        }
        Some(f) => return cannot(&format!("FREQ={f}")),
        None => return Err(format!("RRULE {rule}: FREQ is required")),
    };
    let start_date = date.format("%Y-%m-%d").to_string();
    let range = match (parts.get("COUNT"), parts.get("UNTIL")) {
        (Some(_), Some(_)) => return Err(format!("RRULE {rule}: COUNT and UNTIL together")),
        (Some(c), None) => {
            let n: i64 = c
                .parse()
                .map_err(|_| format!("RRULE {rule}: COUNT {c} is not a number"))?;
            json!({"type": "numbered", "startDate": start_date, "numberOfOccurrences": n, "recurrenceTimeZone": tz_name})
        }
        (None, Some(u)) => {
            let end = until_date(u, anchor)
                .ok_or_else(|| format!("RRULE {rule}: UNTIL {u} is not a date"))?;
            json!({"type": "endDate", "startDate": start_date, "endDate": end.format("%Y-%m-%d").to_string(), "recurrenceTimeZone": tz_name})
        }
        (None, None) => {
            json!({"type": "noEnd", "startDate": start_date, "recurrenceTimeZone": tz_name})
        }
    };
    Ok(json!({"pattern": pattern, "range": range}))
}

/// The calendar date of an UNTIL value in the series' zone.
fn until_date(u: &str, a: Anchor) -> Option<NaiveDate> {
    if u.len() == 8 {
        return NaiveDate::parse_from_str(u, "%Y%m%d").ok();
    }
    let n = NaiveDateTime::parse_from_str(u.trim_end_matches('Z'), "%Y%m%dT%H%M%S").ok()?;
    if u.ends_with('Z') {
        Some(
            Utc.from_utc_datetime(&n)
                .with_timezone(&a.zone)
                .date_naive(),
        )
    } else {
        Some(n.date())
    }
}

/// The RRULE value of a `patternedRecurrence` (canonical: INTERVAL only when above 1, WKST
/// only when it matters), UNTIL at the end of `range.endDate` in the series' zone (UTC), or
/// the date itself for all-day series.
///
/// Errors: a pattern or range type Graph does not define, missing required fields.
pub fn to_rrule(r: &Value, anchor: Anchor) -> Result<String, String> {
    let p = &r["pattern"];
    let interval = p["interval"].as_i64().unwrap_or(1);
    let days = || -> Result<String, String> {
        let d: Option<Vec<&str>> = p["daysOfWeek"]
            .as_array()
            .ok_or("recurrence: daysOfWeek missing")?
            .iter()
            .map(|v| v.as_str().and_then(ical_day))
            .collect();
        Ok(d.ok_or("recurrence: unknown day in daysOfWeek")?.join(","))
    };
    let index = || -> Result<i64, String> {
        let i = p["index"].as_str().unwrap_or("first");
        INDEX
            .iter()
            .find(|(_, s)| s.eq_ignore_ascii_case(i))
            .map(|(n, _)| *n)
            .ok_or_else(|| format!("recurrence: index {i:?}"))
    };
    let mut rule = match p["type"].as_str().unwrap_or("") {
        "daily" => "FREQ=DAILY".to_string(),
        "weekly" => {
            let mut r = format!("FREQ=WEEKLY;BYDAY={}", days()?);
            let wkst = p["firstDayOfWeek"]
                .as_str()
                .and_then(ical_day)
                .unwrap_or("SU");
            if interval > 1 && wkst != "MO" {
                r.push_str(&format!(";WKST={wkst}"));
            }
            r
        }
        "absoluteMonthly" => format!(
            "FREQ=MONTHLY;BYMONTHDAY={}",
            p["dayOfMonth"]
                .as_i64()
                .ok_or("recurrence: dayOfMonth missing")?
        ),
        "relativeMonthly" => format!("FREQ=MONTHLY;BYDAY={};BYSETPOS={}", days()?, index()?),
        "absoluteYearly" => format!(
            "FREQ=YEARLY;BYMONTH={};BYMONTHDAY={}",
            p["month"].as_i64().ok_or("recurrence: month missing")?,
            p["dayOfMonth"]
                .as_i64()
                .ok_or("recurrence: dayOfMonth missing")?
        ),
        "relativeYearly" => format!(
            "FREQ=YEARLY;BYMONTH={};BYDAY={};BYSETPOS={}",
            p["month"].as_i64().ok_or("recurrence: month missing")?,
            days()?,
            index()?
        ),
        other => return Err(format!("recurrence: pattern type {other:?}")),
    };
    if interval > 1 {
        let (head, tail) = rule.split_at(rule.find(';').unwrap_or(rule.len()));
        rule = format!("{head};INTERVAL={interval}{tail}");
    }
    let range = &r["range"];
    match range["type"].as_str().unwrap_or("noEnd") {
        "noEnd" => {}
        "numbered" => rule.push_str(&format!(
            ";COUNT={}",
            range["numberOfOccurrences"]
                .as_i64()
                .ok_or("recurrence: numberOfOccurrences missing")?
        )),
        "endDate" => {
            let end = range["endDate"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or("recurrence: endDate missing")?;
            if anchor.all_day {
                rule.push_str(&format!(";UNTIL={}", end.format("%Y%m%d")));
            } else {
                let last = end.and_time(END_OF_DAY);
                let utc = anchor
                    .zone
                    .from_local_datetime(&last)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|| Utc.from_utc_datetime(&last));
                rule.push_str(&format!(";UNTIL={}", utc.format("%Y%m%dT%H%M%SZ")));
            }
        }
        other => return Err(format!("recurrence: range type {other:?}")),
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor() -> Anchor {
        Anchor {
            local: NaiveDate::from_ymd_opt(2024, 1, 1)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap(),
            zone: chrono_tz::Europe::Berlin,
            all_day: false,
        }
    }

    #[test]
    fn rules_round_trip_to_an_equivalent_rule() {
        let cases = [
            ("FREQ=DAILY", "FREQ=DAILY"),
            (
                "FREQ=DAILY;INTERVAL=2;COUNT=5",
                "FREQ=DAILY;INTERVAL=2;COUNT=5",
            ),
            ("FREQ=WEEKLY", "FREQ=WEEKLY;BYDAY=MO"),
            (
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU",
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU",
            ),
            ("FREQ=MONTHLY;BYDAY=2TU", "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2"),
            (
                "FREQ=MONTHLY;BYDAY=-1FR",
                "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1",
            ),
            (
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            ),
            ("FREQ=MONTHLY", "FREQ=MONTHLY;BYMONTHDAY=1"),
            (
                "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
                "FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYSETPOS=-1",
            ),
            ("FREQ=YEARLY", "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1"),
            (
                "FREQ=WEEKLY;BYDAY=MO;UNTIL=20240131T080000Z",
                "FREQ=WEEKLY;BYDAY=MO;UNTIL=20240131T225959Z",
            ),
        ];
        for (input, want) in cases {
            let g = to_graph(input, anchor(), "W. Europe Standard Time")
                .unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(to_rrule(&g, anchor()).unwrap(), want, "{input} via {g}");
        }
    }

    #[test]
    fn what_outlook_cannot_express_is_refused_by_name() {
        for (rule, named) in [
            ("FREQ=HOURLY", "FREQ=HOURLY"),
            ("FREQ=DAILY;BYHOUR=9,17", "BYHOUR"),
            ("FREQ=MONTHLY;BYMONTHDAY=1,15", "several BYMONTHDAY"),
            ("FREQ=MONTHLY;BYMONTHDAY=-1", "BYMONTHDAY=-1"),
            ("FREQ=YEARLY;BYWEEKNO=20", "BYWEEKNO"),
            ("FREQ=MONTHLY;BYDAY=1MO,-1FR", "different offsets"),
            ("FREQ=MONTHLY;BYDAY=5MO", "position 5"),
            ("FREQ=WEEKLY;BYDAY=1MO", "WEEKLY"),
        ] {
            let e = to_graph(rule, anchor(), "UTC").expect_err(rule);
            assert!(e.contains(named), "{rule}: {e}");
        }
    }

    #[test]
    fn all_day_series_end_on_a_date() {
        let a = Anchor {
            all_day: true,
            ..anchor()
        };
        let g = to_graph("FREQ=DAILY;UNTIL=20240110", a, "UTC").unwrap();
        assert_eq!(g["range"]["endDate"], "2024-01-10");
        assert_eq!(to_rrule(&g, a).unwrap(), "FREQ=DAILY;UNTIL=20240110");
    }
}
