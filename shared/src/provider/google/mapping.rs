//! Google Calendar Event resources ↔ the canonical iCalendar series.
//!
//! A Google series is a master event (with `recurrence` lines) plus exception events that
//! carry `recurringEventId` and `originalStartTime`; a cancelled exception is a deleted
//! instance. In iCalendar (RFC 5545) that is one VEVENT per RECURRENCE-ID and EXDATE on the
//! master. Field mapping (Event schema, discovery document `calendar.v3.json`;
//! https://developers.google.com/workspace/calendar/api/v3/reference/events):
//!
//! | Google                                   | iCalendar                                      |
//! |------------------------------------------|------------------------------------------------|
//! | `start/end.date`                         | `DTSTART;VALUE=DATE` (all day, end exclusive)  |
//! | `start/end.dateTime` + `timeZone`        | `DTSTART;TZID=<IANA>` (UTC: `…Z`)              |
//! | `recurrence[]` (RRULE/RDATE/EXDATE lines)| the same lines on the master                   |
//! | exception (`recurringEventId`)           | VEVENT with `RECURRENCE-ID`                    |
//! | cancelled exception                      | `EXDATE` on the master                         |
//! | `reminders.overrides[]` (`useDefault: false`) | `VALARM` (`TRIGGER:-PT<n>M`, popup→DISPLAY, email→EMAIL) |
//! | `conferenceData.entryPoints[video].uri`, `hangoutLink` | `CONFERENCE;VALUE=URI;FEATURE=VIDEO` (RFC 7986) |
//! | `attendees[]`, `organizer`               | `ATTENDEE`, `ORGANIZER` (with attendees only)  |
//! | `status` tentative                       | `STATUS:TENTATIVE` (confirmed is the default)  |
//! | `transparency` transparent               | `TRANSP:TRANSPARENT`                           |
//! | `visibility` public/private/confidential | `CLASS`                                        |
//! | `colorId` 1–11                           | `COLOR` (RFC 7986 CSS3 name, nearest to Google's palette) |
//! | `extendedProperties.shared["X-…"]`       | custom `X-…` properties (value only)           |
//! | `extendedProperties.private.calsyncUid`  | `UID` (our id survives any iCalUID rewrite)    |
//!
//! What Google cannot hold (CATEGORIES, URL, GEO, PRIORITY, ATTACH, absolute or
//! end-related alarms, parameters of X- properties, a custom VTIMEZONE) is dropped by
//! [`to_google`]; [`project`] shows an event as it will read back, so the engine keeps those
//! properties in the hub instead of taking their absence for a remote deletion.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::ical::lines::{
    iana, is_utc_zone, minutes_to_trigger, param_value, parse_duration, When,
};
pub use crate::ical::lines::{parse_line, parse_lines, Line};
use crate::ical::{EventSeries, MASTER};

/// Private extended property holding the hub UID.
pub const UID_PROP: &str = "calsyncUid";
/// Private extended properties holding the ORGANIZER we wrote (Google sets the organizer to
/// the calendar owner on insert; https://developers.google.com/workspace/calendar/api/v3/reference/events/insert).
const ORGANIZER_PROP: &str = "calsyncOrganizer";
const ORGANIZER_CN_PROP: &str = "calsyncOrganizerCn";

/// Google's event palette (`colors.get`, `event`) and the CSS3 colour names we write as
/// RFC 7986 `COLOR`.
const COLORS: &[(&str, &str)] = &[
    ("1", "lavender"),
    ("2", "mediumaquamarine"),
    ("3", "plum"),
    ("4", "salmon"),
    ("5", "gold"),
    ("6", "sandybrown"),
    ("7", "mediumturquoise"),
    ("8", "lightgray"),
    ("9", "royalblue"),
    ("10", "mediumseagreen"),
    ("11", "crimson"),
];

pub use crate::ical::text::{escape, unescape};

// ---------------------------------------------------------------- Google → iCalendar

/// Render a Google time (`{date}` or `{dateTime, timeZone?}`) as an iCalendar date-time
/// property `name`; `zone` is the zone to use when the time carries none.
fn time_line(name: &str, t: &Value, zone: Option<&str>) -> Result<String, String> {
    if let Some(d) = t.get("date").and_then(Value::as_str) {
        let d = NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("{name}: invalid date {d:?}"))?;
        return Ok(format!("{name};VALUE=DATE:{}", d.format("%Y%m%d")));
    }
    let Some(dt) = t.get("dateTime").and_then(Value::as_str) else {
        return Err(format!("{name}: neither date nor dateTime"));
    };
    let tz = t.get("timeZone").and_then(Value::as_str).or(zone);
    let instant = match DateTime::parse_from_rfc3339(dt) {
        Ok(i) => i.with_timezone(&Utc),
        // Without an offset the time is local to `timeZone` (Event schema, start.dateTime).
        Err(_) => {
            let local = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S")
                .map_err(|_| format!("{name}: invalid dateTime {dt:?}"))?;
            let when = match tz.filter(|z| !is_utc_zone(z)).and_then(iana) {
                Some(z) => When::Zoned(local, z),
                None => When::Utc(Utc.from_utc_datetime(&local)),
            };
            when.instant()
        }
    };
    match tz
        .filter(|z| !is_utc_zone(z))
        .and_then(|z| iana(z).map(|t| (z, t)))
    {
        Some((_, tz)) => Ok(format!(
            "{name};TZID={}:{}",
            tz.name(),
            instant.with_timezone(&tz).format("%Y%m%dT%H%M%S")
        )),
        None => Ok(format!("{name}:{}", instant.format("%Y%m%dT%H%M%SZ"))),
    }
}

/// The VEVENT lines of one Google event (master or exception), without BEGIN/END.
fn event_lines(
    ev: &Value,
    uid: &str,
    zone: Option<&str>,
    exdates: &[String],
) -> Result<Vec<String>, String> {
    let mut out = vec![format!("UID:{uid}")];
    if let Some(u) = ev.get("updated").and_then(Value::as_str) {
        if let Ok(t) = DateTime::parse_from_rfc3339(u) {
            out.push(format!(
                "DTSTAMP:{}",
                t.with_timezone(&Utc).format("%Y%m%dT%H%M%SZ")
            ));
        }
    }
    if let Some(o) = ev.get("originalStartTime") {
        out.push(time_line("RECURRENCE-ID", o, zone)?);
    }
    out.push(time_line("DTSTART", &ev["start"], zone)?);
    if ev.get("end").is_some_and(|e| !e.is_null()) {
        out.push(time_line("DTEND", &ev["end"], zone)?);
    }
    for (key, prop) in [
        ("summary", "SUMMARY"),
        ("description", "DESCRIPTION"),
        ("location", "LOCATION"),
    ] {
        if let Some(v) = ev.get(key).and_then(Value::as_str) {
            out.push(format!("{prop}:{}", escape(v)));
        }
    }
    if let Some(rec) = ev.get("recurrence").and_then(Value::as_array) {
        out.extend(rec.iter().filter_map(Value::as_str).map(str::to_string));
    }
    out.extend(exdates.iter().cloned());
    if ev["status"] == "tentative" {
        out.push("STATUS:TENTATIVE".into());
    }
    if ev["transparency"] == "transparent" {
        out.push("TRANSP:TRANSPARENT".into());
    }
    if let Some(v) = ev.get("visibility").and_then(Value::as_str) {
        if v != "default" {
            out.push(format!("CLASS:{}", v.to_ascii_uppercase()));
        }
    }
    if let Some(c) = ev.get("colorId").and_then(Value::as_str) {
        if let Some((_, css)) = COLORS.iter().find(|(id, _)| *id == c) {
            out.push(format!("COLOR:{css}"));
        }
    }
    let video = ev["conferenceData"]["entryPoints"]
        .as_array()
        .and_then(|eps| {
            eps.iter()
                .find(|e| e["entryPointType"] == "video")
                .and_then(|e| e["uri"].as_str())
        })
        .or_else(|| ev.get("hangoutLink").and_then(Value::as_str));
    if let Some(uri) = video {
        out.push(format!("CONFERENCE;VALUE=URI;FEATURE=VIDEO:{uri}"));
    }
    let private = &ev["extendedProperties"]["private"];
    let attendees = ev
        .get("attendees")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !attendees.is_empty() {
        let (email, cn) = match private.get(ORGANIZER_PROP).and_then(Value::as_str) {
            Some(e) => (
                Some(e.to_string()),
                private
                    .get(ORGANIZER_CN_PROP)
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            None => (
                ev["organizer"]["email"]
                    .as_str()
                    .map(|e| format!("mailto:{e}")),
                ev["organizer"]["displayName"].as_str().map(str::to_string),
            ),
        };
        if let Some(email) = email {
            let cn = cn
                .map(|c| format!(";CN={}", param_value(&c)))
                .unwrap_or_default();
            out.push(format!("ORGANIZER{cn}:{email}"));
        }
    }
    for a in &attendees {
        let Some(email) = a["email"].as_str() else {
            continue;
        };
        let mut l = String::from("ATTENDEE");
        if let Some(cn) = a["displayName"].as_str() {
            l.push_str(&format!(";CN={}", param_value(cn)));
        }
        let partstat = match a["responseStatus"].as_str().unwrap_or("needsAction") {
            "accepted" => "ACCEPTED",
            "declined" => "DECLINED",
            "tentative" => "TENTATIVE",
            _ => "NEEDS-ACTION",
        };
        l.push_str(&format!(";PARTSTAT={partstat}"));
        if a["optional"] == true {
            l.push_str(";ROLE=OPT-PARTICIPANT");
        }
        l.push_str(&format!(":mailto:{email}"));
        out.push(l);
    }
    if let Some(shared) = ev["extendedProperties"]["shared"].as_object() {
        for (k, v) in shared {
            if k.starts_with("X-") && k.len() > 2 {
                if let Some(v) = v.as_str() {
                    out.push(format!("{}:{v}", k.to_ascii_uppercase()));
                }
            }
        }
    }
    if ev["reminders"]["useDefault"] == false {
        for o in ev["reminders"]["overrides"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(m) = o["minutes"].as_i64() else {
                continue;
            };
            let action = if o["method"] == "email" {
                "EMAIL"
            } else {
                "DISPLAY"
            };
            out.push("BEGIN:VALARM".into());
            out.push(format!("ACTION:{action}"));
            out.push(format!("TRIGGER:{}", minutes_to_trigger(m)));
            out.push("DESCRIPTION:Reminder".into());
            if action == "EMAIL" {
                out.push("SUMMARY:Reminder".into());
            }
            out.push("END:VALARM".into());
        }
    }
    Ok(out)
}

/// The UID of a Google event: ours if we wrote it, else its `iCalUID`, else its id.
pub fn uid_of(ev: &Value) -> String {
    ev["extendedProperties"]["private"][UID_PROP]
        .as_str()
        .or_else(|| ev["iCalUID"].as_str())
        .or_else(|| ev["id"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Group Google events into series: master id → the master and its exceptions
/// (`recurringEventId`), in input order.
pub fn group_series(items: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for it in items {
        let key = it["recurringEventId"]
            .as_str()
            .or_else(|| it["id"].as_str())
            .unwrap_or_default()
            .to_string();
        groups.entry(key).or_default().push(it);
    }
    groups
}

/// One Google series (master plus exceptions, cancelled ones included) as a VCALENDAR.
///
/// Errors (as text naming the event): no live master, or a time that is not a valid
/// `date`/`dateTime`.
pub fn series_to_ical(items: &[&Value]) -> Result<String, String> {
    let master = items
        .iter()
        .find(|e| e.get("recurringEventId").is_none() && e["status"] != "cancelled")
        .ok_or_else(|| "series without a live master event".to_string())?;
    let id = master["id"].as_str().unwrap_or_default();
    let uid = uid_of(master);
    let zone = master["start"]["timeZone"].as_str();
    let exceptions: Vec<&&Value> = items
        .iter()
        .filter(|e| e["recurringEventId"].as_str() == Some(id))
        .collect();
    // Cancelled instances become EXDATEs, unless the master's recurrence already has them.
    let existing: Vec<(Option<String>, String)> = exdate_values(master)
        .into_iter()
        .map(|l| (l.param("TZID").map(str::to_string), l.value))
        .collect();
    let mut exdates = Vec::new();
    for e in exceptions.iter().filter(|e| e["status"] == "cancelled") {
        let line = time_line("EXDATE", &e["originalStartTime"], zone)
            .map_err(|r| format!("event {id}: {r}"))?;
        if let Some(l) = parse_line(&line) {
            let key = (l.param("TZID").map(str::to_string), l.value.clone());
            if !existing.contains(&key) && !exdates.contains(&line) {
                exdates.push(line);
            }
        }
    }
    let mut text =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//google//EN\r\n");
    let mut push_event = |lines: Vec<String>| {
        text.push_str("BEGIN:VEVENT\r\n");
        for l in lines {
            text.push_str(&l);
            text.push_str("\r\n");
        }
        text.push_str("END:VEVENT\r\n");
    };
    push_event(event_lines(master, &uid, zone, &exdates).map_err(|r| format!("event {id}: {r}"))?);
    for e in exceptions
        .iter()
        .filter(|e| e["status"] != "cancelled" && !unmodified(e, master))
    {
        let eid = e["id"].as_str().unwrap_or_default();
        push_event(event_lines(e, &uid, zone, &[]).map_err(|r| format!("event {eid}: {r}"))?);
    }
    text.push_str("END:VCALENDAR\r\n");
    Ok(text)
}

/// The EXDATE values of a Google event's `recurrence` lines, one [`Line`] per value (a line
/// with several comma-separated values is split, its parameters kept).
fn exdate_values(master: &Value) -> Vec<Line> {
    master["recurrence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(parse_line)
        .filter(|l| l.name == "EXDATE")
        .flat_map(|l| {
            l.value
                .split(',')
                .map(|v| Line {
                    value: v.to_string(),
                    ..l.clone()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Fields in which an instance differs from its master by nature, or that the server sets.
const INSTANCE_KEYS: &[&str] = &[
    "id",
    "etag",
    "recurringEventId",
    "originalStartTime",
    "start",
    "end",
    "recurrence",
    "updated",
    "created",
    "sequence",
    "htmlLink",
    "iCalUID",
    "kind",
    "organizer",
    "creator",
];

/// A Google `EventDateTime` as an instant (`date`: midnight UTC of that date).
fn instant_of(v: &Value) -> Option<DateTime<Utc>> {
    match (v["dateTime"].as_str(), v["date"].as_str()) {
        (Some(t), _) => DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        (None, Some(d)) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc()),
        _ => None,
    }
}

fn duration_of(ev: &Value) -> Option<Duration> {
    Some(instant_of(&ev["end"])? - instant_of(&ev["start"])?)
}

/// Whether exception `e` is just the occurrence `master` generates: Google keeps exception
/// objects with the start of their original slot, the master's duration and every other field
/// as the master's (after an override is put back, and after "edit all events", as in the
/// Compass recording `edit_all_all-1.json`). Such an exception is no override, and
/// [`series_to_ical`] leaves it out.
pub fn unmodified(e: &Value, master: &Value) -> bool {
    let start = instant_of(&e["start"]);
    if start.is_none()
        || start != instant_of(&e["originalStartTime"])
        || duration_of(e) != duration_of(master)
    {
        return false;
    }
    let (Some(a), Some(b)) = (e.as_object(), master.as_object()) else {
        return false;
    };
    let confirmed = json!("confirmed");
    let field = |m: &'_ Map<String, Value>, k: &str| -> Option<Value> {
        match (k, m.get(k)) {
            ("status", None) => Some(confirmed.clone()), // the documented default
            (_, v) => v.cloned(),
        }
    };
    a.keys()
        .chain(b.keys())
        .filter(|k| !INSTANCE_KEYS.contains(&k.as_str()))
        .all(|k| field(a, k) == field(b, k))
}

/// The exceptions Google holds (`existing`) that `new` has no override for and that differ
/// from the occurrence of `written` (the master as Google answered our write of `new`), as
/// `(instance id suffix, body)` putting each back to that occurrence: the master's fields,
/// its original start, the master's duration. A cancelled instance `new` does not exclude
/// (no EXDATE for it: the occurrence was restored) is put back the same way. Empty when
/// `new` is not recurring.
pub fn reset_instances(
    existing: &[Value],
    new: &GoogleSeries,
    written: &Value,
) -> Vec<(String, Value)> {
    let Some(duration) = duration_of(&new.master) else {
        return Vec::new();
    };
    if new.master.get("recurrence").is_none() {
        return Vec::new();
    }
    let excluded: Vec<DateTime<Utc>> = exdate_values(&new.master)
        .iter()
        .filter_map(|l| When::parse(l).ok().map(When::instant))
        .collect();
    let mut out: Vec<(String, Value)> = Vec::new();
    for e in existing {
        let cancelled = e["status"] == "cancelled";
        if cancelled && instant_of(&e["originalStartTime"]).is_none_or(|t| excluded.contains(&t)) {
            continue; // still excluded
        }
        let Some(suffix) = e["id"]
            .as_str()
            .and_then(|id| id.rsplit_once('_'))
            .map(|(_, s)| s)
        else {
            continue;
        };
        if new.exceptions.iter().any(|(s, _)| s == suffix) {
            continue;
        }
        let original = &e["originalStartTime"];
        let Some(start) = instant_of(original) else {
            continue;
        };
        let Some(end_at) = start.checked_add_signed(duration) else {
            continue;
        };
        let end = match original["date"].as_str() {
            Some(_) => json!({"date": end_at.format("%Y-%m-%d").to_string()}),
            None => {
                let offset =
                    DateTime::parse_from_rfc3339(original["dateTime"].as_str().unwrap_or(""))
                        .map(|t| *t.offset())
                        .unwrap_or_else(|_| chrono::Offset::fix(&Utc));
                let mut v = json!({"dateTime": end_at.with_timezone(&offset).to_rfc3339()});
                if let Some(z) = original.get("timeZone") {
                    v["timeZone"] = z.clone();
                }
                v
            }
        };
        let mut body = new.master.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("recurrence");
            o.remove("id");
        }
        body["originalStartTime"] = original.clone();
        body["start"] = original.clone();
        body["end"] = end;
        if body.get("status").is_none() {
            body["status"] = json!("confirmed");
        }
        if !cancelled && unmodified(e, written) {
            continue; // already the generated occurrence
        }
        out.push((suffix.to_string(), body));
    }
    out
}

// ---------------------------------------------------------------- iCalendar → Google

/// A series in Google's shape: the master body and, per RECURRENCE-ID, the instance id
/// suffix (`20240108T090000Z`, all day `20240108`) and the exception body.
#[derive(Debug, Clone, PartialEq)]
pub struct GoogleSeries {
    /// Body of the master event (no `id`).
    pub master: Value,
    /// `(instance id suffix, body)` per overridden instance.
    pub exceptions: Vec<(String, Value)>,
}

impl When {
    /// The Google `EventDateTime`; recurring events need a `timeZone`.
    fn google(self, recurring: bool) -> Value {
        match self {
            When::Date(d) => json!({"date": d.format("%Y-%m-%d").to_string()}),
            When::Zoned(_, tz) => json!({
                "dateTime": self.instant().with_timezone(&tz).to_rfc3339(),
                "timeZone": tz.name(),
            }),
            When::Utc(_) | When::Floating(_) => {
                let mut v = json!({"dateTime": self.instant().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
                if recurring {
                    v["timeZone"] = json!("UTC");
                }
                v
            }
        }
    }

    /// Google's instance id suffix for an occurrence starting here.
    fn instance_suffix(self) -> String {
        match self {
            When::Date(d) => d.format("%Y%m%d").to_string(),
            other => other.instant().format("%Y%m%dT%H%M%SZ").to_string(),
        }
    }
}

/// Reminder minutes of a VALARM block (a relative TRIGGER before the start), with its method.
fn alarm(block: &str) -> Option<Value> {
    let lines = parse_lines(block);
    let trigger = lines.iter().find(|l| l.name == "TRIGGER")?;
    if trigger.param("VALUE") == Some("DATE-TIME") || trigger.param("RELATED") == Some("END") {
        return None;
    }
    let d = parse_duration(&trigger.value)?;
    let minutes = -d.num_minutes();
    if d > Duration::zero() || !(0..=40320).contains(&minutes) || d.num_seconds() % 60 != 0 {
        return None;
    }
    let email = lines
        .iter()
        .any(|l| l.name == "ACTION" && l.value.eq_ignore_ascii_case("EMAIL"));
    Some(json!({"method": if email { "email" } else { "popup" }, "minutes": minutes}))
}

/// The Google body of one VEVENT's fields. `recurring`: the series has a recurrence rule.
fn component_body(
    fields: &BTreeMap<String, Vec<String>>,
    recurring: bool,
    is_master: bool,
) -> Result<(Value, Option<When>), String> {
    let one = |name: &str| -> Option<Line> {
        fields
            .get(name)
            .and_then(|v| v.first())
            .and_then(|l| parse_lines(l).into_iter().next())
    };
    let all = |name: &str| -> Vec<Line> {
        fields
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|l| parse_lines(l))
            .collect()
    };
    let mut ev = Map::new();
    let start = When::parse(&one("DTSTART").ok_or("no DTSTART")?)?;
    let end = start.end(one("DTEND").as_ref(), one("DURATION").as_ref())?;
    ev.insert("start".into(), start.google(recurring));
    ev.insert("end".into(), end.google(recurring));
    for (prop, key) in [
        ("SUMMARY", "summary"),
        ("DESCRIPTION", "description"),
        ("LOCATION", "location"),
    ] {
        if let Some(l) = one(prop) {
            ev.insert(key.into(), json!(unescape(&l.value)));
        }
    }
    if is_master {
        let rec: Vec<String> = ["RRULE", "RDATE", "EXDATE"]
            .iter()
            .flat_map(|p| fields.get(*p).into_iter().flatten())
            .map(|l| l.replace("\r\n ", "").replace("\r\n", ""))
            .collect();
        if !rec.is_empty() {
            ev.insert("recurrence".into(), json!(rec));
        }
    }
    if let Some(s) = one("STATUS") {
        if s.value.eq_ignore_ascii_case("TENTATIVE") {
            ev.insert("status".into(), json!("tentative"));
        }
        // A cancelled instance of a series is a cancelled exception (read back as EXDATE);
        // left live, Google would show it as happening.
        if !is_master && s.value.eq_ignore_ascii_case("CANCELLED") {
            ev.insert("status".into(), json!("cancelled"));
        }
    }
    if one("TRANSP").is_some_and(|l| l.value.eq_ignore_ascii_case("TRANSPARENT")) {
        ev.insert("transparency".into(), json!("transparent"));
    }
    if let Some(c) = one("CLASS") {
        let v = c.value.to_ascii_lowercase();
        if ["public", "private", "confidential"].contains(&v.as_str()) {
            ev.insert("visibility".into(), json!(v));
        }
    }
    if let Some(c) = one("COLOR") {
        if let Some((id, _)) = COLORS
            .iter()
            .find(|(_, css)| css.eq_ignore_ascii_case(c.value.trim()))
        {
            ev.insert("colorId".into(), json!(id));
        }
    }
    if let Some(c) = all("CONFERENCE")
        .into_iter()
        .find(|l| l.value.contains("://"))
    {
        ev.insert(
            "conferenceData".into(),
            json!({
                "conferenceSolution": {"key": {"type": "addOn"}, "name": "Video call"},
                "entryPoints": [{"entryPointType": "video", "uri": c.value}],
            }),
        );
    }
    let mut private = Map::new();
    let attendees: Vec<Value> = all("ATTENDEE")
        .into_iter()
        .filter_map(|a| {
            let email = a
                .value
                .strip_prefix("mailto:")
                .or_else(|| a.value.strip_prefix("MAILTO:"))?;
            let mut v = json!({"email": email});
            if let Some(cn) = a.param("CN") {
                v["displayName"] = json!(cn);
            }
            v["responseStatus"] = json!(match a.param("PARTSTAT").unwrap_or("NEEDS-ACTION") {
                "ACCEPTED" => "accepted",
                "DECLINED" => "declined",
                "TENTATIVE" => "tentative",
                _ => "needsAction",
            });
            if a.param("ROLE") == Some("OPT-PARTICIPANT") {
                v["optional"] = json!(true);
            }
            Some(v)
        })
        .collect();
    if !attendees.is_empty() {
        if let Some(o) = one("ORGANIZER") {
            private.insert(ORGANIZER_PROP.into(), json!(o.value));
            if let Some(cn) = o.param("CN") {
                private.insert(ORGANIZER_CN_PROP.into(), json!(cn));
            }
        }
        ev.insert("attendees".into(), json!(attendees));
    }
    let mut shared = Map::new();
    for (name, lines) in fields {
        if name.starts_with("X-") && name.len() <= 44 {
            if let Some(l) = lines
                .first()
                .and_then(|l| parse_lines(l).into_iter().next())
            {
                if l.value.len() <= 1024 {
                    shared.insert(name.clone(), json!(l.value));
                }
            }
        }
    }
    if !shared.is_empty() {
        ev.insert("extendedProperties".into(), json!({"shared": shared}));
    }
    if !private.is_empty() {
        let ext = ev.entry("extendedProperties").or_insert_with(|| json!({}));
        if let Some(ext) = ext.as_object_mut() {
            ext.insert("private".into(), Value::Object(private));
        }
    }
    let overrides: Vec<Value> = fields
        .get("BEGIN:VALARM")
        .into_iter()
        .flatten()
        .filter_map(|b| alarm(b))
        .take(5)
        .collect();
    if overrides.is_empty() {
        ev.insert("reminders".into(), json!({"useDefault": true}));
    } else {
        ev.insert(
            "reminders".into(),
            json!({"useDefault": false, "overrides": overrides}),
        );
    }
    let rid = match one("RECURRENCE-ID") {
        Some(l) => Some(When::parse(&l)?),
        None => None,
    };
    Ok((Value::Object(ev), rid))
}

/// The Google shape of a canonical series. Errors name the offending property.
pub fn to_google(series: &EventSeries) -> Result<GoogleSeries, String> {
    let master_fields = series
        .components
        .get(MASTER)
        .ok_or("series has no master VEVENT (only RECURRENCE-ID overrides)")?;
    let recurring = ["RRULE", "RDATE"]
        .iter()
        .any(|p| master_fields.contains_key(*p));
    let (mut master, _) = component_body(master_fields, recurring, true)?;
    if let Some(body) = master.as_object_mut() {
        let ext = body
            .entry("extendedProperties")
            .or_insert_with(|| json!({}));
        ext["private"][UID_PROP] = json!(series.uid);
        body.insert("iCalUID".into(), json!(series.uid));
    }
    let mut exceptions = Vec::new();
    if recurring {
        for (key, fields) in series
            .components
            .iter()
            .filter(|(k, _)| k.as_str() != MASTER)
        {
            let (mut body, rid) = component_body(fields, true, false)?;
            let mut rid = rid.ok_or_else(|| format!("override {key:?} without RECURRENCE-ID"))?;
            // RFC 5545 §3.8.4.4: RECURRENCE-ID has DTSTART's value type. Some producers give
            // an all-day series date-time RECURRENCE-IDs (`…T000000Z`); Google names the
            // instances of an all-day series by date (`<id>_20021226`), so use the date.
            if master["start"]["date"].is_string() {
                rid = rid.as_date();
            }
            body["originalStartTime"] = rid.google(true);
            body["extendedProperties"]["private"][UID_PROP] = json!(series.uid);
            exceptions.push((rid.instance_suffix(), body));
        }
    }
    Ok(GoogleSeries { master, exceptions })
}

/// An event as it reads back after a round trip through Google: what [`to_google`] keeps,
/// rendered by [`series_to_ical`]. `None` when it cannot be written at all.
pub fn project(ical: &str) -> Option<String> {
    let series = EventSeries::parse_single("hub", ical).ok()?;
    let g = to_google(&series).ok()?;
    let master_id = "projection";
    let mut master = g.master.clone();
    master["id"] = json!(master_id);
    let mut items = vec![master];
    for (suffix, mut body) in g.exceptions {
        body["id"] = json!(format!("{master_id}_{suffix}"));
        body["recurringEventId"] = json!(master_id);
        items.push(body);
    }
    let refs: Vec<&Value> = items.iter().collect();
    series_to_ical(&refs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str) -> EventSeries {
        EventSeries::parse_single("t", text).expect("parses")
    }

    #[test]
    fn zoned_recurring_event_with_exception_and_cancelled_instance() {
        let master = json!({
            "id": "abc123", "iCalUID": "u1@example.com", "status": "confirmed",
            "summary": "Standup, daily", "start": {"dateTime": "2024-03-04T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2024-03-04T09:15:00+01:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=10"],
            "reminders": {"useDefault": false, "overrides": [{"method": "popup", "minutes": 10}]},
        });
        let moved = json!({
            "id": "abc123_20240305T080000Z", "recurringEventId": "abc123", "status": "confirmed",
            "summary": "Standup (moved)", "originalStartTime": {"dateTime": "2024-03-05T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "start": {"dateTime": "2024-03-05T10:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2024-03-05T10:15:00+01:00", "timeZone": "Europe/Berlin"},
        });
        let cancelled = json!({
            "id": "abc123_20240306T080000Z", "recurringEventId": "abc123", "status": "cancelled",
            "originalStartTime": {"dateTime": "2024-03-06T09:00:00+01:00", "timeZone": "Europe/Berlin"},
        });
        let ical = series_to_ical(&[&master, &moved, &cancelled]).expect("maps");
        let s = series(&ical);
        assert_eq!(s.uid, "u1@example.com");
        let m = s.master().expect("master");
        assert!(
            m["DTSTART"][0].contains("TZID=Europe/Berlin:20240304T090000"),
            "{ical}"
        );
        assert!(m["EXDATE"][0].contains("20240306T090000"), "{ical}");
        assert_eq!(m["RRULE"].len(), 1);
        assert!(m.contains_key("BEGIN:VALARM"));
        assert_eq!(s.components.len(), 2, "{ical}");
        // And back: the exception becomes an instance with Google's id suffix (UTC).
        let g = to_google(&s).expect("back");
        assert_eq!(g.exceptions.len(), 1);
        assert_eq!(g.exceptions[0].0, "20240305T080000Z");
        assert_eq!(g.master["summary"], "Standup, daily");
        assert_eq!(g.master["start"]["timeZone"], "Europe/Berlin");
        assert_eq!(g.master["reminders"]["overrides"][0]["minutes"], 10);
        assert!(g.master["recurrence"]
            .as_array()
            .expect("recurrence")
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with("EXDATE"))));
        // The projection of what we produced is itself.
        let p = project(&ical).expect("projects");
        assert!(series(&p).same_content(&s), "{p}\n---\n{ical}");
    }

    #[test]
    fn exceptions_the_new_version_drops_are_put_back_and_read_as_no_override() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20270105T100000\r\nDTEND;TZID=Europe/Berlin:20270105T110000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let new = to_google(&EventSeries::parse_single("w", text).expect("parses")).expect("maps");
        let mut master = new.master.clone();
        master["id"] = json!("m1");
        master["etag"] = json!("\"1\"");
        // Google holds a moved instance the new version no longer overrides.
        let moved = json!({"id": "m1_20270112T090000Z", "recurringEventId": "m1", "status": "confirmed",
            "summary": "Moved", "etag": "\"2\"",
            "originalStartTime": {"dateTime": "2027-01-12T10:00:00+01:00", "timeZone": "Europe/Berlin"},
            "start": {"dateTime": "2027-01-12T16:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2027-01-12T17:00:00+01:00", "timeZone": "Europe/Berlin"}});
        let resets = reset_instances(std::slice::from_ref(&moved), &new, &master);
        assert_eq!(resets.len(), 1);
        let (suffix, body) = &resets[0];
        assert_eq!(suffix, "20270112T090000Z");
        assert_eq!(body["summary"], "Weekly");
        assert_eq!(body["start"], moved["originalStartTime"]);
        assert_eq!(body["end"]["dateTime"], "2027-01-12T11:00:00+01:00");
        assert!(body.get("recurrence").is_none());

        // Read back, the put-back exception is no override; a changed one still is.
        let mut exc = body.clone();
        exc["id"] = json!("m1_20270112T090000Z");
        exc["recurringEventId"] = json!("m1");
        exc["etag"] = json!("\"3\"");
        let read = series_to_ical(&[&master, &exc]).expect("reads");
        assert!(!read.contains("RECURRENCE-ID"), "{read}");
        assert!(
            reset_instances(std::slice::from_ref(&exc), &new, &master).is_empty(),
            "nothing to reset"
        );
        let read = series_to_ical(&[&master, &moved]).expect("reads");
        assert!(read.contains("RECURRENCE-ID"), "{read}");

        // A cancelled instance comes back unless the new version excludes it.
        let cancelled = json!({"id": "m1_20270119T090000Z", "recurringEventId": "m1",
            "status": "cancelled",
            "originalStartTime": {"dateTime": "2027-01-19T10:00:00+01:00", "timeZone": "Europe/Berlin"}});
        let resets = reset_instances(std::slice::from_ref(&cancelled), &new, &master);
        assert_eq!(resets.len(), 1);
        assert_eq!(resets[0].1["status"], "confirmed");
        let excluding = text.replace(
            "RRULE:FREQ=WEEKLY;COUNT=4\r\n",
            "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20270119T100000\r\n",
        );
        let new2 =
            to_google(&EventSeries::parse_single("w", &excluding).expect("parses")).expect("maps");
        assert!(reset_instances(std::slice::from_ref(&cancelled), &new2, &master).is_empty());
    }

    #[test]
    fn all_day_series_with_date_time_recurrence_ids_use_date_instance_ids() {
        // As in ical4j's google_aus_holidays.ics: a DATE master, `…T000000Z` RECURRENCE-IDs.
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:b1\r\nDTSTAMP:20060425T020651Z\r\nDTSTART:20021226\r\nRRULE:FREQ=YEARLY;UNTIL=20041225;BYMONTH=12\r\nSUMMARY:Boxing Day\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b1\r\nDTSTAMP:20060425T020651Z\r\nRECURRENCE-ID:20031226T000000Z\r\nDTSTART;VALUE=DATE:20031226\r\nDTEND;VALUE=DATE:20031227\r\nSUMMARY:Boxing Day (observed)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let series = EventSeries::parse_single("b1", text).expect("parses");
        let g = to_google(&series).expect("maps");
        assert_eq!(g.exceptions.len(), 1);
        assert_eq!(g.exceptions[0].0, "20031226");
        assert_eq!(
            g.exceptions[0].1["originalStartTime"],
            json!({"date": "2003-12-26"})
        );
    }

    #[test]
    fn all_day_and_fields_round_trip() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:d1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;VALUE=DATE:20240701\r\nDTEND;VALUE=DATE:20240703\r\nSUMMARY:Holiday\\, beach\r\nTRANSP:TRANSPARENT\r\nCLASS:PRIVATE\r\nCOLOR:crimson\r\nSTATUS:TENTATIVE\r\nCONFERENCE;VALUE=URI;FEATURE=VIDEO:https://meet.example/abc\r\nORGANIZER;CN=\"Doe, Jane\":mailto:jane@example.com\r\nATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=OPT-PARTICIPANT:mailto:c@example.com\r\nX-CUSTOM-FIELD:project-42\r\nCATEGORIES:Lost\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let s = series(text);
        let g = to_google(&s).expect("maps");
        assert_eq!(g.master["start"], json!({"date": "2024-07-01"}));
        assert_eq!(g.master["end"], json!({"date": "2024-07-03"}));
        assert_eq!(g.master["summary"], "Holiday, beach");
        assert_eq!(g.master["transparency"], "transparent");
        assert_eq!(g.master["visibility"], "private");
        assert_eq!(g.master["colorId"], "11");
        assert_eq!(g.master["status"], "tentative");
        assert_eq!(g.master["attendees"][1]["optional"], true);
        assert_eq!(
            g.master["extendedProperties"]["shared"]["X-CUSTOM-FIELD"],
            "project-42"
        );
        assert_eq!(g.master["extendedProperties"]["private"][UID_PROP], "d1");
        assert_eq!(
            g.master["conferenceData"]["entryPoints"][0]["uri"],
            "https://meet.example/abc"
        );
        let p = series(&project(text).expect("projects"));
        let m = p.master().expect("master");
        assert!(!m.contains_key("CATEGORIES"), "not carried by Google");
        for prop in [
            "SUMMARY",
            "TRANSP",
            "CLASS",
            "COLOR",
            "STATUS",
            "CONFERENCE",
            "ORGANIZER",
            "ATTENDEE",
            "X-CUSTOM-FIELD",
            "DTSTART",
            "DTEND",
        ] {
            assert_eq!(m.get(prop), s.master().expect("m").get(prop), "{prop}");
        }
    }

    #[test]
    fn bad_input_is_named() {
        let bad = json!({"id": "x", "status": "confirmed", "start": {"dateTime": "yesterday"}, "end": {"date": "2024-01-01"}});
        let e = series_to_ical(&[&bad]).expect_err("invalid");
        assert!(e.contains("event x") && e.contains("yesterday"), "{e}");
        let line = parse_line("DTSTART;TZID=Mars/Olympus:20240101T100000").expect("line");
        let e = When::parse(&line).expect_err("no IANA zone");
        assert!(e.contains("Mars/Olympus"), "{e}");
        let vendor =
            parse_line("DTSTART;TZID=/mozilla.org/20050126_1/Europe/Berlin:20240101T100000")
                .expect("line");
        assert!(matches!(
            When::parse(&vendor),
            Ok(When::Zoned(_, chrono_tz::Europe::Berlin))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("-PT15M"), Some(Duration::minutes(-15)));
        assert_eq!(parse_duration("-P1DT2H"), Some(Duration::hours(-26)));
        assert_eq!(parse_duration("P1W"), Some(Duration::weeks(1)));
        assert_eq!(parse_duration("PX"), None);
    }
}
