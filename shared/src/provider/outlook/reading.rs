//! Graph `event` resources → the canonical iCalendar series (the reading half of
//! [`super::mapping`], whose module docs give the table).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::mapping::{local, prop_id, read_zone, utc_of, UID_NAME, X_NAME};
use super::recurrence::{self, Anchor};
use crate::ical::lines::{minutes_to_trigger, param_value, push_vevent};
use crate::ical::text::escape;

/// calsync's UID extended property on a Graph event (read with the `$expand` of
/// `OutlookCalendar::expand`), if it carries one.
fn our_uid(ev: &Value) -> Option<&str> {
    let ours = prop_id(UID_NAME);
    ev["singleValueExtendedProperties"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&ours))
        })
        .and_then(|p| p["value"].as_str())
}

/// Who wrote a Graph event (a single event or a series master): [`Author::Calsync`] when
/// it carries calsync's UID extended property, which every calsync write sets, else
/// [`Author::Other`]. An extended property is set on the one event resource calsync
/// created or updated; an event made by the user, another app or an invitation has none.
/// <https://learn.microsoft.com/en-us/graph/api/resources/extended-properties-overview>
///
/// [`Author::Calsync`]: crate::provider::Author::Calsync
/// [`Author::Other`]: crate::provider::Author::Other
pub fn author(ev: &Value) -> crate::provider::Author {
    crate::provider::Author::from_marker(our_uid(ev).is_some())
}

/// The hub UID of a Graph event: our extended property, else its `iCalUId`, else its id.
pub fn uid_of(ev: &Value) -> String {
    our_uid(ev)
        .or_else(|| ev["iCalUId"].as_str())
        .or_else(|| ev["id"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The zone a series is shown in: its `originalStartTimeZone` (Windows → IANA); `None`: UTC.
pub fn series_zone(ev: &Value) -> Option<chrono_tz::Tz> {
    ev["originalStartTimeZone"].as_str().and_then(read_zone)
}

/// DTSTART-like line `name` of a Graph time read in UTC, shown in `zone`.
fn time_line(
    name: &str,
    v: &Value,
    zone: Option<chrono_tz::Tz>,
    all_day: bool,
) -> Result<String, String> {
    if all_day {
        let n = v["dateTime"]
            .as_str()
            .and_then(local)
            .ok_or_else(|| format!("{name}: invalid dateTime"))?;
        return Ok(format!("{name};VALUE=DATE:{}", n.date().format("%Y%m%d")));
    }
    let t = utc_of(v).ok_or_else(|| format!("{name}: invalid dateTime {:?}", v["dateTime"]))?;
    Ok(instant_line(name, t, zone))
}

fn instant_line(name: &str, t: DateTime<Utc>, zone: Option<chrono_tz::Tz>) -> String {
    match zone {
        Some(tz) => format!(
            "{name};TZID={}:{}",
            tz.name(),
            t.with_timezone(&tz).format("%Y%m%dT%H%M%S")
        ),
        None => format!("{name}:{}", t.format("%Y%m%dT%H%M%SZ")),
    }
}

fn date_or_instant(
    name: &str,
    t: DateTime<Utc>,
    zone: Option<chrono_tz::Tz>,
    all_day: bool,
) -> String {
    if all_day {
        format!("{name};VALUE=DATE:{}", t.date_naive().format("%Y%m%d"))
    } else {
        instant_line(name, t, zone)
    }
}

/// The VEVENT lines (without BEGIN/END) of one Graph event.
fn event_lines(
    ev: &Value,
    uid: &str,
    zone: Option<chrono_tz::Tz>,
    all_day: bool,
) -> Result<Vec<String>, String> {
    let mut out = vec![format!("UID:{}", escape(uid))];
    out.push(time_line("DTSTART", &ev["start"], zone, all_day)?);
    out.push(time_line("DTEND", &ev["end"], zone, all_day)?);
    let text = |k: &Value| k.as_str().map(str::to_string).filter(|s| !s.is_empty());
    if let Some(s) = text(&ev["subject"]) {
        out.push(format!("SUMMARY:{}", escape(&s)));
    }
    if let Some(d) = text(&ev["body"]["content"]) {
        out.push(format!("DESCRIPTION:{}", escape(&d)));
    }
    if let Some(l) = text(&ev["location"]["displayName"]) {
        out.push(format!("LOCATION:{}", escape(&l)));
    }
    let cats: Vec<String> = ev["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(escape)
        .collect();
    if !cats.is_empty() {
        out.push(format!("CATEGORIES:{}", cats.join(",")));
    }
    match ev["showAs"].as_str().unwrap_or("busy") {
        "free" => out.push("TRANSP:TRANSPARENT".into()),
        "tentative" => out.push("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE".into()),
        "oof" => out.push("X-MICROSOFT-CDO-BUSYSTATUS:OOF".into()),
        "workingElsewhere" => out.push("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE".into()),
        _ => {}
    }
    match ev["sensitivity"].as_str() {
        Some("private") => out.push("CLASS:PRIVATE".into()),
        Some("confidential") => out.push("CLASS:CONFIDENTIAL".into()),
        _ => {}
    }
    if ev["isCancelled"].as_bool() == Some(true) {
        out.push("STATUS:CANCELLED".into());
    }
    if let Some(u) = ev["onlineMeeting"]["joinUrl"]
        .as_str()
        .or(ev["onlineMeetingUrl"].as_str())
    {
        out.push(format!("CONFERENCE;VALUE=URI;FEATURE=VIDEO:{u}"));
    }
    let attendees = ev["attendees"].as_array().cloned().unwrap_or_default();
    if !attendees.is_empty() {
        if let Some(a) = ev["organizer"]["emailAddress"]["address"].as_str() {
            let cn = ev["organizer"]["emailAddress"]["name"]
                .as_str()
                .unwrap_or("");
            out.push(if cn.is_empty() {
                format!("ORGANIZER:mailto:{a}")
            } else {
                format!("ORGANIZER;CN={}:mailto:{a}", param_value(cn))
            });
        }
        for at in &attendees {
            let Some(addr) = at["emailAddress"]["address"].as_str() else {
                continue;
            };
            let mut l = String::from("ATTENDEE");
            if let Some(cn) = at["emailAddress"]["name"]
                .as_str()
                .filter(|c| !c.is_empty())
            {
                l.push_str(&format!(";CN={}", param_value(cn)));
            }
            if at["type"] == "optional" {
                l.push_str(";ROLE=OPT-PARTICIPANT");
            }
            let partstat = match at["status"]["response"].as_str() {
                Some("accepted") => "ACCEPTED",
                Some("declined") => "DECLINED",
                Some("tentativelyAccepted") => "TENTATIVE",
                _ => "NEEDS-ACTION",
            };
            l.push_str(&format!(";PARTSTAT={partstat}:mailto:{addr}"));
            out.push(l);
        }
    }
    let xid = prop_id(X_NAME);
    let xs: Map<String, Value> = ev["singleValueExtendedProperties"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&xid))
        })
        .and_then(|p| p["value"].as_str())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    for (n, v) in xs {
        if n.starts_with("X-") && !n.contains([':', ';', '\r', '\n']) {
            out.push(format!(
                "{n}:{}",
                v.as_str().unwrap_or("").replace(['\r', '\n'], "")
            ));
        }
    }
    if ev["isReminderOn"].as_bool() == Some(true) {
        let m = ev["reminderMinutesBeforeStart"].as_i64().unwrap_or(15);
        out.push(format!(
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:{}\r\nEND:VALARM",
            minutes_to_trigger(m)
        ));
    }
    Ok(out)
}

/// One series as VCALENDAR text: the master (or single event) with its RRULE and the
/// EXDATEs of `cancelled`, and one VEVENT per exception. Times are read in UTC and shown in
/// the series' zone.
///
/// Errors: unreadable times or recurrence, named with the event id.
pub fn to_ical(
    ev: &Value,
    exceptions: &[Value],
    cancelled: &[DateTime<Utc>],
) -> Result<String, String> {
    let id = ev["id"].as_str().unwrap_or_default();
    let uid = uid_of(ev);
    if uid.is_empty() {
        return Err("an event without id or iCalUId".into());
    }
    let zone = series_zone(ev);
    let all_day = ev["isAllDay"].as_bool().unwrap_or(false);
    let mut lines = event_lines(ev, &uid, zone, all_day).map_err(|e| format!("event {id}: {e}"))?;
    if ev["recurrence"].is_object() {
        let start = if all_day {
            ev["start"]["dateTime"].as_str().and_then(local)
        } else {
            utc_of(&ev["start"]).map(|t| {
                zone.map(|z| t.with_timezone(&z).naive_local())
                    .unwrap_or(t.naive_utc())
            })
        };
        let anchor = Anchor {
            local: start.ok_or_else(|| format!("event {id}: invalid start"))?,
            zone: zone.unwrap_or(chrono_tz::UTC),
            all_day,
        };
        let rule = recurrence::to_rrule(&ev["recurrence"], anchor)
            .map_err(|e| format!("event {id}: {e}"))?;
        lines.insert(3, format!("RRULE:{rule}"));
        for (i, t) in cancelled.iter().enumerate() {
            lines.insert(4 + i, date_or_instant("EXDATE", *t, zone, all_day));
        }
    }
    let mut text =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//outlook//EN\r\n");
    push_vevent(&mut text, &lines);
    for e in exceptions {
        let eid = e["id"].as_str().unwrap_or_default();
        let orig = e["originalStart"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("event {eid}: exception without originalStart"))?;
        let mut ls = event_lines(e, &uid, zone, e["isAllDay"].as_bool().unwrap_or(all_day))
            .map_err(|r| format!("event {eid}: {r}"))?;
        ls.insert(1, date_or_instant("RECURRENCE-ID", orig, zone, all_day));
        push_vevent(&mut text, &ls);
    }
    text.push_str("END:VCALENDAR\r\n");
    Ok(text)
}
