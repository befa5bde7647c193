//! Graph `event` resources ↔ the canonical iCalendar series (provider-semantics §2.1–§2.5;
//! https://learn.microsoft.com/graph/api/resources/event).
//!
//! A Graph series is a `seriesMaster` (with `recurrence`) whose occurrences are generated;
//! a modified occurrence is an `exception` (`seriesMasterId`, `originalStart`), a deleted one
//! is simply absent from `/instances`. In iCalendar that is one VEVENT per RECURRENCE-ID and
//! EXDATE on the master.
//!
//! | Graph                                            | iCalendar                               |
//! |--------------------------------------------------|-----------------------------------------|
//! | `start`/`end` (read in UTC) + `originalStartTimeZone` (Windows name) | `DTSTART;TZID=<IANA>` (CLDR map), UTC as `…Z` |
//! | `isAllDay` (midnight to midnight)                | `DTSTART;VALUE=DATE` (the date as written, never shifted) |
//! | `recurrence`                                     | `RRULE` ([`super::recurrence`])         |
//! | `exception` (`originalStart`)                    | VEVENT with `RECURRENCE-ID`             |
//! | occurrence missing from `/instances`             | `EXDATE`                                |
//! | `subject`, `body` (text), `location.displayName`, `categories` | SUMMARY, DESCRIPTION, LOCATION, CATEGORIES |
//! | `showAs`                                         | `TRANSP` (+ `X-MICROSOFT-CDO-BUSYSTATUS` for tentative, oof, workingElsewhere) |
//! | `sensitivity` private/confidential               | `CLASS`                                 |
//! | `isReminderOn` + `reminderMinutesBeforeStart`    | one `VALARM` (`TRIGGER:-PT<n>M`)        |
//! | `onlineMeeting.joinUrl`                          | `CONFERENCE;VALUE=URI;FEATURE=VIDEO` (RFC 7986) |
//! | `attendees`, `organizer` (when there are attendees) | ATTENDEE, ORGANIZER                  |
//! | `singleValueExtendedProperties` `String {PS_PUBLIC_STRINGS} Name X-…` | custom `X-…` properties (value only) |
//! | … `Name calsyncUid`                              | `UID` (the hub's id survives any iCalUId) |
//!
//! Attendees are written only for events the calendar's owner organizes, and only when the
//! link opts in ([`Options::organizer`]): Graph sends invitations for every attendee it is
//! given and has no way to suppress them, so invariant 8 (sync sends no mail) holds by not
//! writing them otherwise.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::recurrence::{self, Anchor};
use crate::ical::lines::{all_lines, first_line, parse_duration, parse_lines, Line, When};
use crate::ical::text::unescape;
use crate::ical::{EventSeries, Fields, MASTER};

pub use super::reading::{author, series_zone, to_ical, uid_of};

/// The property set of our named extended properties (PS_PUBLIC_STRINGS).
pub const PROP_SET: &str = "{00020329-0000-0000-C000-000000000046}";
/// Name of the extended property holding the hub UID.
pub const UID_NAME: &str = "calsyncUid";
/// Name of the extended property holding the custom `X-` properties as a JSON object (Graph
/// reads extended properties only by id, so they travel in one property of known id).
pub const X_NAME: &str = "calsyncX";

/// The id of the named extended property `name` (`String {guid} Name <name>`).
pub fn prop_id(name: &str) -> String {
    format!("String {PROP_SET} Name {name}")
}

/// How a link writes to Graph.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The calendar owner's address when the link opts in to attendees
    /// ([`crate::model::Link::write_attendees`]): events whose ORGANIZER is this address are
    /// written with their `attendees` (Graph then invites them). `None`: never.
    pub organizer: Option<String>,
}

impl Options {
    /// Whether the event with these fields is written with its attendees.
    fn attendees_for(&self, fields: &Fields) -> bool {
        let Some(owner) = &self.organizer else {
            return false;
        };
        first_line(fields, "ORGANIZER").is_some_and(|o| {
            let addr = o
                .value
                .strip_prefix("mailto:")
                .or_else(|| o.value.strip_prefix("MAILTO:"))
                .unwrap_or(&o.value);
            addr.eq_ignore_ascii_case(owner)
        })
    }
}

/// A series in Graph's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSeries {
    /// Body of the master or single event (no `id`).
    pub master: Value,
    /// `(original start, body)` per overridden occurrence.
    pub exceptions: Vec<(DateTime<Utc>, Value)>,
    /// Original starts of cancelled occurrences (EXDATE).
    pub cancelled: Vec<DateTime<Utc>>,
}

/// The Windows name Graph is given for `tz` (CLDR map); UTC as `UTC`; a zone without a
/// Windows name keeps its IANA name.
pub fn graph_zone(tz: chrono_tz::Tz) -> String {
    if tz == chrono_tz::UTC || tz == chrono_tz::Etc::UTC {
        return "UTC".into();
    }
    match windows_timezones::WindowsTimezone::try_from(tz) {
        Ok(w) => w.name().to_string(),
        Err(_) => tz.name().to_string(),
    }
}

/// The IANA zone of a Graph zone name (Windows or IANA); `None` for UTC, unknown names and
/// `tzone://Microsoft/Custom`.
pub fn read_zone(name: &str) -> Option<chrono_tz::Tz> {
    if name.is_empty() || name.eq_ignore_ascii_case("UTC") {
        return None;
    }
    if let Some(i) = crate::ical::windows_to_iana(name) {
        return i.parse().ok();
    }
    name.parse().ok().filter(|t| *t != chrono_tz::UTC)
}

/// Graph's `dateTime` text of a local date-time.
fn text(n: NaiveDateTime) -> String {
    n.format("%Y-%m-%dT%H:%M:%S.0000000").to_string()
}

/// A Graph `dateTime` (fractions optional) as a local date-time.
pub fn local(v: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(v.split('.').next()?, "%Y-%m-%dT%H:%M:%S").ok()
}

/// The UTC instant of a `dateTimeTimeZone` read with `Prefer: outlook.timezone="UTC"`.
pub fn utc_of(v: &Value) -> Option<DateTime<Utc>> {
    let n = local(v["dateTime"].as_str()?)?;
    match read_zone(v["timeZone"].as_str().unwrap_or("UTC")) {
        None => Some(Utc.from_utc_datetime(&n)),
        Some(tz) => tz
            .from_local_datetime(&n)
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

fn zone_of(w: When) -> Option<chrono_tz::Tz> {
    match w {
        When::Zoned(_, tz) => Some(tz),
        _ => None,
    }
}

/// `dateTimeTimeZone` of a parsed iCalendar time.
fn graph_time(w: When) -> Value {
    match w {
        When::Date(d) => {
            json!({"dateTime": text(d.and_time(chrono::NaiveTime::MIN)), "timeZone": "UTC"})
        }
        When::Utc(t) => json!({"dateTime": text(t.naive_utc()), "timeZone": "UTC"}),
        When::Zoned(n, tz) => json!({"dateTime": text(n), "timeZone": graph_zone(tz)}),
        When::Floating(n) => json!({"dateTime": text(n), "timeZone": "UTC"}),
    }
}

/// Minutes before the start of a VALARM block with a relative, start-related TRIGGER.
fn alarm_minutes(block: &str) -> Option<i64> {
    let lines = parse_lines(block);
    let t = lines.iter().find(|l| l.name == "TRIGGER")?;
    if t.param("VALUE") == Some("DATE-TIME") || t.param("RELATED") == Some("END") {
        return None;
    }
    let d = parse_duration(&t.value)?;
    (d <= Duration::zero()).then(|| -d.num_minutes())
}

/// The request body of one VEVENT (master, single or exception) and its start.
fn component_body(fields: &Fields, opts: &Options) -> Result<(Map<String, Value>, When), String> {
    let mut ev = Map::new();
    let start = When::parse(&first_line(fields, "DTSTART").ok_or("no DTSTART")?)?;
    let end = start.end(
        first_line(fields, "DTEND").as_ref(),
        first_line(fields, "DURATION").as_ref(),
    )?;
    let all_day = matches!(start, When::Date(_));
    let end = if all_day { end.as_date() } else { end };
    ev.insert("isAllDay".into(), json!(all_day));
    ev.insert("start".into(), graph_time(start));
    ev.insert("end".into(), graph_time(end));
    ev.insert(
        "subject".into(),
        json!(first_line(fields, "SUMMARY")
            .map(|l| unescape(&l.value))
            .unwrap_or_default()),
    );
    ev.insert(
        "body".into(),
        json!({"contentType": "text", "content": first_line(fields, "DESCRIPTION").map(|l| unescape(&l.value)).unwrap_or_default()}),
    );
    ev.insert(
        "location".into(),
        json!({"displayName": first_line(fields, "LOCATION").map(|l| unescape(&l.value)).unwrap_or_default()}),
    );
    let cats: Vec<String> = all_lines(fields, "CATEGORIES")
        .iter()
        .flat_map(|l| split_list(&l.value))
        .collect();
    ev.insert("categories".into(), json!(cats));
    let busy =
        first_line(fields, "X-MICROSOFT-CDO-BUSYSTATUS").map(|l| l.value.to_ascii_uppercase());
    let transparent =
        first_line(fields, "TRANSP").is_some_and(|l| l.value.eq_ignore_ascii_case("TRANSPARENT"));
    let show_as = match busy.as_deref() {
        Some("TENTATIVE") => "tentative",
        Some("OOF") => "oof",
        Some("WORKINGELSEWHERE") => "workingElsewhere",
        _ if transparent => "free",
        _ => "busy",
    };
    ev.insert("showAs".into(), json!(show_as));
    let sensitivity = match first_line(fields, "CLASS")
        .map(|l| l.value.to_ascii_uppercase())
        .as_deref()
    {
        Some("PRIVATE") => "private",
        Some("CONFIDENTIAL") => "confidential",
        _ => "normal",
    };
    ev.insert("sensitivity".into(), json!(sensitivity));
    let reminder = fields
        .get("BEGIN:VALARM")
        .into_iter()
        .flatten()
        .find_map(|b| alarm_minutes(b));
    ev.insert("isReminderOn".into(), json!(reminder.is_some()));
    if let Some(m) = reminder {
        ev.insert("reminderMinutesBeforeStart".into(), json!(m));
    }
    if opts.attendees_for(fields) {
        let attendees: Vec<Value> = all_lines(fields, "ATTENDEE")
            .into_iter()
            .filter_map(|a| {
                let email = a.value.strip_prefix("mailto:").or_else(|| a.value.strip_prefix("MAILTO:"))?.to_string();
                let kind = if a.param("ROLE") == Some("OPT-PARTICIPANT") { "optional" } else { "required" };
                Some(json!({"emailAddress": {"address": email, "name": a.param("CN").unwrap_or("")}, "type": kind}))
            })
            .collect();
        ev.insert("attendees".into(), json!(attendees));
    }
    let mut xs = Map::new();
    for (name, lines) in fields {
        if name.starts_with("X-") && name != "X-MICROSOFT-CDO-BUSYSTATUS" {
            if let Some(l) = lines
                .first()
                .and_then(|l| parse_lines(l).into_iter().next())
            {
                xs.insert(name.clone(), json!(l.value));
            }
        }
    }
    if !xs.is_empty() {
        ev.insert(
            "singleValueExtendedProperties".into(),
            json!([{"id": prop_id(X_NAME), "value": Value::Object(xs).to_string()}]),
        );
    }
    Ok((ev, start))
}

/// Values of a comma-separated TEXT list, unescaped (RFC 5545 §3.3.11).
fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in v.chars() {
        match (esc, c) {
            (false, '\\') => {
                esc = true;
                cur.push(c);
            }
            (false, ',') => out.push(unescape(&std::mem::take(&mut cur))),
            _ => {
                esc = false;
                cur.push(c);
            }
        }
    }
    out.push(unescape(&cur));
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// The series in Graph's shape, our UID in an extended property.
///
/// Errors: no master VEVENT, unreadable times, an RRULE Graph cannot express, RDATE or
/// EXRULE (Graph has neither), named in the message.
pub fn to_graph(series: &EventSeries, opts: &Options) -> Result<GraphSeries, String> {
    let mf = series
        .components
        .get(MASTER)
        .ok_or("series has no master VEVENT (only RECURRENCE-ID overrides)")?;
    for p in ["RDATE", "EXRULE"] {
        if mf.contains_key(p) {
            return Err(format!(
                "{p}: Outlook cannot express extra or excluded rules (RDATE/EXRULE)"
            ));
        }
    }
    let (mut master, start) = component_body(mf, opts)?;
    let uid_prop = json!({"id": prop_id(UID_NAME), "value": series.uid});
    let props = master
        .entry("singleValueExtendedProperties")
        .or_insert_with(|| json!([]));
    if let Some(props) = props.as_array_mut() {
        props.push(uid_prop.clone());
    }
    let mut exceptions = Vec::new();
    let mut cancelled = Vec::new();
    if let Some(rule) = first_line(mf, "RRULE") {
        let zone = zone_of(start).unwrap_or(chrono_tz::UTC);
        let anchor = Anchor {
            local: match start {
                When::Date(d) => d.and_time(chrono::NaiveTime::MIN),
                When::Zoned(n, _) | When::Floating(n) => n,
                When::Utc(t) => t.naive_utc(),
            },
            zone,
            all_day: matches!(start, When::Date(_)),
        };
        let tz_name = master["start"]["timeZone"]
            .as_str()
            .unwrap_or("UTC")
            .to_string();
        master.insert(
            "recurrence".into(),
            recurrence::to_graph(&rule.value, anchor, &tz_name)?,
        );
        for l in all_lines(mf, "EXDATE") {
            for v in l.value.split(',') {
                let one = Line {
                    value: v.to_string(),
                    ..l.clone()
                };
                cancelled.push(original_start(When::parse(&one)?, start));
            }
        }
        for (key, fields) in series
            .components
            .iter()
            .filter(|(k, _)| k.as_str() != MASTER)
        {
            let rid = first_line(fields, "RECURRENCE-ID")
                .ok_or_else(|| format!("override {key:?} without RECURRENCE-ID"))?;
            let original = original_start(When::parse(&rid)?, start);
            // A cancelled instance is a cancelled occurrence in Graph (an exception cannot
            // be marked cancelled by a write).
            if first_line(fields, "STATUS")
                .is_some_and(|l| l.value.eq_ignore_ascii_case("CANCELLED"))
            {
                cancelled.push(original);
                continue;
            }
            let (mut body, _) = component_body(fields, opts)?;
            body.insert("singleValueExtendedProperties".into(), json!([uid_prop]));
            exceptions.push((original, Value::Object(body)));
        }
    }
    cancelled.sort();
    cancelled.dedup();
    Ok(GraphSeries {
        master: Value::Object(master),
        exceptions,
        cancelled,
    })
}

/// The instant an occurrence originally starts at: an all-day series' dates at midnight
/// UTC (Graph's `originalStart` of all-day occurrences), else the RECURRENCE-ID's instant.
fn original_start(rid: When, start: When) -> DateTime<Utc> {
    match start {
        When::Date(_) => rid.as_date().instant(),
        _ => rid.instant(),
    }
}

/// What Graph answers for a body we wrote: times read in UTC, the written zones as
/// `originalStart/EndTimeZone`, all-day dates unshifted.
pub fn as_stored(body: &Value, id: &str) -> Value {
    let mut ev = body.clone();
    ev["id"] = json!(id);
    let all_day = body["isAllDay"].as_bool().unwrap_or(false);
    for (k, orig) in [
        ("start", "originalStartTimeZone"),
        ("end", "originalEndTimeZone"),
    ] {
        ev[orig] = body[k]["timeZone"].clone();
        if !all_day {
            if let Some(t) = utc_of(&body[k]) {
                ev[k] = json!({"dateTime": text(t.naive_utc()), "timeZone": "UTC"});
            }
        } else {
            ev[k]["timeZone"] = json!("UTC");
        }
    }
    ev
}

/// An event as it reads back after a write through [`to_graph`] and a read through
/// [`to_ical`], overrides and EXDATEs outside `[from, to)` left out (a windowed read does
/// not see them). `None` when it cannot be written at all.
pub fn project(
    ical: &str,
    opts: &Options,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<String> {
    let series = EventSeries::parse_single("hub", ical).ok()?;
    let g = to_graph(&series, opts).ok()?;
    let master = as_stored(&g.master, "projection");
    let all_day = master["isAllDay"].as_bool().unwrap_or(false);
    let exceptions: Vec<Value> = g
        .exceptions
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(t, b)| {
            let mut e = as_stored(b, "projection-exception");
            e["originalStart"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            if all_day {
                e["isAllDay"] = json!(true);
            }
            e
        })
        .collect();
    let cancelled: Vec<DateTime<Utc>> = g
        .cancelled
        .iter()
        .copied()
        .filter(|t| *t >= from && *t < to)
        .collect();
    to_ical(&master, &exceptions, &cancelled).ok()
}

/// Midnight UTC of a date (`originalStart` of all-day occurrences).
pub fn date_instant(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> (DateTime<Utc>, DateTime<Utc>) {
        (
            Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:s1\r\nDTSTART;TZID=Europe/Berlin:20240101T090000\r\nDTEND;TZID=Europe/Berlin:20240101T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5\r\nEXDATE;TZID=Europe/Berlin:20240115T090000\r\nSUMMARY:Stand-up, daily\r\nCATEGORIES:Work,Team\r\nX-CUSTOM:42\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s1\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240108T090000\r\nDTSTART;TZID=Europe/Berlin:20240108T110000\r\nDTEND;TZID=Europe/Berlin:20240108T120000\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_series_maps_to_graph_and_reads_back_the_same() {
        let s = EventSeries::parse_single("t", SERIES).unwrap();
        let g = to_graph(&s, &Options::default()).unwrap();
        assert_eq!(
            g.master["start"],
            json!({"dateTime": "2024-01-01T09:00:00.0000000", "timeZone": "W. Europe Standard Time"})
        );
        assert_eq!(
            g.master["recurrence"]["pattern"]["daysOfWeek"],
            json!(["monday"])
        );
        assert_eq!(g.master["reminderMinutesBeforeStart"], 10);
        assert_eq!(g.master["categories"], json!(["Work", "Team"]));
        assert_eq!(
            g.cancelled,
            vec![Utc.with_ymd_and_hms(2024, 1, 15, 8, 0, 0).unwrap()]
        );
        assert_eq!(g.exceptions.len(), 1);
        assert_eq!(
            g.exceptions[0].0,
            Utc.with_ymd_and_hms(2024, 1, 8, 8, 0, 0).unwrap()
        );
        let (from, to) = far();
        let p = project(SERIES, &Options::default(), from, to).expect("projects");
        let back = EventSeries::parse_single("p", &p).unwrap();
        assert!(back.same_content(&s), "{p}");
        assert!(
            g.master.get("attendees").is_none(),
            "no attendees unless allowed"
        );
    }

    /// Every series calsync writes carries its UID property, so an event read back without
    /// it is someone else's ([`author`]).
    #[test]
    fn calsyncs_writes_carry_its_mark_and_others_do_not() {
        use crate::provider::Author;
        let s = EventSeries::parse_single("t", SERIES).unwrap();
        let g = to_graph(&s, &Options::default()).unwrap();
        assert_eq!(author(&as_stored(&g.master, "x")), Author::Calsync);
        let users = json!({"id": "x", "iCalUId": "s1", "subject": "Stand-up",
            "singleValueExtendedProperties": [{"id": prop_id(X_NAME), "value": "{}"}]});
        assert_eq!(author(&users), Author::Other);
    }

    #[test]
    fn all_day_events_keep_their_dates_and_unexpressible_rules_are_errors() {
        let ad = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20240301\r\nDTEND;VALUE=DATE:20240302\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let s = EventSeries::parse_single("t", ad).unwrap();
        let g = to_graph(&s, &Options::default()).unwrap();
        assert_eq!(g.master["isAllDay"], true);
        assert_eq!(g.master["start"]["dateTime"], "2024-03-01T00:00:00.0000000");
        assert_eq!(g.master["end"]["dateTime"], "2024-03-02T00:00:00.0000000");
        // Read back in a far-away response zone the dates stay.
        let mut stored = as_stored(&g.master, "x");
        stored["start"]["timeZone"] = json!("Pacific Standard Time");
        let ical = to_ical(&stored, &[], &[]).unwrap();
        assert!(ical.contains("DTSTART;VALUE=DATE:20240301"), "{ical}");
        let bad = ad.replace("SUMMARY", "RRULE:FREQ=HOURLY\r\nSUMMARY");
        let e = to_graph(
            &EventSeries::parse_single("t", &bad).unwrap(),
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.contains("HOURLY"), "{e}");
        let rdate = ad.replace(
            "SUMMARY",
            "RRULE:FREQ=DAILY\r\nRDATE;VALUE=DATE:20240310\r\nSUMMARY",
        );
        assert!(to_graph(
            &EventSeries::parse_single("t", &rdate).unwrap(),
            &Options::default()
        )
        .unwrap_err()
        .contains("RDATE"));
    }

    #[test]
    fn a_duration_past_the_representable_range_is_an_error_not_a_panic() {
        let huge = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:h\r\nDTSTART:20240101T090000Z\r\nDURATION:P20000000W\r\nSUMMARY:Forever\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let s = EventSeries::parse_single("t", huge).unwrap();
        let e = to_graph(&s, &Options::default()).unwrap_err();
        assert!(e.contains("DURATION"), "{e}");
        let g = crate::provider::google::mapping::to_google(&s).unwrap_err();
        assert!(g.contains("DURATION"), "{g}");
    }

    #[test]
    fn zones_use_windows_names_both_ways() {
        assert_eq!(
            graph_zone(chrono_tz::Europe::Berlin),
            "W. Europe Standard Time"
        );
        assert_eq!(graph_zone(chrono_tz::UTC), "UTC");
        assert_eq!(
            read_zone("Pacific Standard Time"),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(read_zone("tzone://Microsoft/Custom"), None);
        assert_eq!(read_zone("UTC"), None);
    }
}
