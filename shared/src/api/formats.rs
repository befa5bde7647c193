//! Event bodies of the API: iCalendar (`text/calendar`, RFC 5545) or JSCalendar
//! (`application/jscalendar+json`, RFC 8984), converted through calcard. The hub stores
//! iCalendar; JSCalendar is its view for JSON clients.

use axum::http::{header, HeaderMap};
use calcard::jscalendar::import::ConversionOptions;
use calcard::jscalendar::JSCalendar;
use serde_json::Value;

use super::Problem;
use crate::ical::EventSeries;

/// Media type of RFC 8984 objects.
pub const JSCALENDAR: &str = "application/jscalendar+json";
/// Media type of RFC 5545 objects.
pub const ICALENDAR: &str = "text/calendar";

/// What an answer's body should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The API's JSON document (the event as JSCalendar plus its sync status).
    Json,
    /// The bare JSCalendar object.
    JsCalendar,
    /// The bare VCALENDAR.
    ICalendar,
}

/// The format an `Accept` header asks for (JSON when absent or `*/*`).
pub fn wanted(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains(ICALENDAR) {
        Format::ICalendar
    } else if accept.contains(JSCALENDAR) {
        Format::JsCalendar
    } else {
        Format::Json
    }
}

/// The JSCalendar Event for a VCALENDAR (overrides become `recurrenceOverrides`);
/// `Value::Null` when calcard cannot read it.
pub fn to_jscalendar(ical: &str) -> Value {
    let Some(Ok((cal, _))) = crate::ical::parse_guarded(ical) else {
        return Value::Null;
    };
    let js = cal.into_jscalendar_with_opt::<String, String>(ConversionOptions {
        include_ical_components: false,
        return_first: true,
    });
    serde_json::from_str(&js.to_string_pretty()).unwrap_or(Value::Null)
}

/// A VCALENDAR from a JSCalendar Event or Group.
///
/// Errors: not a JSCalendar object calcard can convert (422 at `pointer`).
pub fn from_jscalendar(mut v: Value, uid: &str, pointer: &str) -> Result<String, Problem> {
    let Some(obj) = v.as_object_mut() else {
        return Err(Problem::invalid_field(
            pointer,
            "expected a JSCalendar object",
        ));
    };
    let is_event = obj.get("@type").and_then(Value::as_str) == Some("Event");
    if is_event && !obj.contains_key("uid") {
        obj.insert("uid".into(), Value::String(uid.into()));
    }
    // calcard writes a VCALENDAR for a Group; a bare Event becomes the Group's one entry.
    if is_event {
        v = serde_json::json!({"@type": "Group", "entries": [v]});
    }
    let text = v.to_string();
    let js = JSCalendar::<String, String>::parse(&text)
        .map_err(|e| Problem::invalid_field(pointer, format!("not JSCalendar: {e}")))?;
    let cal = js
        .into_icalendar()
        .ok_or_else(|| Problem::invalid_field(pointer, "not a JSCalendar object"))?;
    Ok(cal.to_string())
}

/// The event series a request body carries, for event `uid`.
///
/// `text/calendar`: one VCALENDAR with one UID; `application/jscalendar+json` or
/// `application/json`: a JSCalendar Event (its `uid` defaults to `uid`). The series' UID must
/// be `uid`.
///
/// Errors: 400 unknown content type or unreadable body; 422 invalid calendar data or another
/// UID.
pub fn parse_event_body(
    headers: &HeaderMap,
    body: &[u8],
    uid: &str,
) -> Result<EventSeries, Problem> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text =
        std::str::from_utf8(body).map_err(|_| Problem::bad_request("the body is not UTF-8"))?;
    if ctype.starts_with(ICALENDAR) {
        parse_ical(text, uid, "")
    } else if ctype.starts_with(JSCALENDAR) || ctype.starts_with("application/json") {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Problem::bad_request(format!("the body is not JSON: {e}")))?;
        let ical = from_jscalendar(v, uid, "")?;
        parse_ical(&ical, uid, "")
    } else {
        Err(Problem::header(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            "Content-Type",
            format!("expected {ICALENDAR} or {JSCALENDAR}, got {ctype:?}"),
        ))
    }
}

/// `text` with a `DTSTAMP` (now, UTC) in every VEVENT that has none: RFC 5545 §3.6.1 requires
/// it, strict servers (Xandikos) refuse events without it, and JSCalendar has no such
/// property. DTSTAMP is volatile for comparisons, so adding it is never an edit.
fn with_dtstamp(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let stamp = chrono::Utc::now()
        .format("DTSTAMP:%Y%m%dT%H%M%SZ\r\n")
        .to_string();
    let mut blocks = text.split_inclusive("BEGIN:VEVENT");
    if let Some(first) = blocks.next() {
        out.push_str(first);
    }
    for block in blocks {
        let end = block.find("END:VEVENT").unwrap_or(block.len());
        let has = block[..end].lines().any(|l| l.starts_with("DTSTAMP"));
        let (nl, rest) = block.split_at(block.find('\n').map_or(0, |i| i + 1));
        out.push_str(nl);
        if !has {
            out.push_str(&stamp);
        }
        out.push_str(rest);
    }
    out
}

/// The event a JSON body member holds: `event` (a JSCalendar object) or `ical` (text), both
/// found under the JSON pointer `at` (`/items/3`, or empty for the body). `None` when the body
/// has neither; both at once is 422.
pub fn event_member(
    event: Option<&Value>,
    ical: Option<&str>,
    uid: &str,
    at: &str,
) -> Result<Option<EventSeries>, Problem> {
    match (event, ical) {
        (None, None) => Ok(None),
        (Some(js), None) => {
            let pointer = format!("{at}/event");
            let text = from_jscalendar(js.clone(), uid, &pointer)?;
            parse_ical(&text, uid, &pointer).map(Some)
        }
        (None, Some(text)) => parse_ical(text, uid, &format!("{at}/ical")).map(Some),
        (Some(_), Some(_)) => Err(Problem::invalid_field(
            if at.is_empty() { "/" } else { at },
            "give event (JSCalendar) or ical, not both",
        )),
    }
}

/// One event series from VCALENDAR text whose UID must be `uid` (422 at `pointer` otherwise).
pub fn parse_ical(text: &str, uid: &str, pointer: &str) -> Result<EventSeries, Problem> {
    let at = if pointer.is_empty() { "/" } else { pointer };
    let text = with_dtstamp(text);
    let series = EventSeries::parse_single(uid, &text)
        .map_err(|e| Problem::invalid_field(at, format!("invalid calendar data: {e}")))?;
    if series.uid != uid {
        return Err(Problem::invalid_field(
            at,
            format!(
                "the event's UID {:?} is not the event id {uid:?} of the address",
                series.uid
            ),
        ));
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:w@t\r\nDTSTAMP:20260101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20270104T090000\r\nDTEND;TZID=Europe/Berlin:20270104T100000\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\n\
EXDATE;TZID=Europe/Berlin:20270118T090000\r\nSUMMARY:Weekly\r\nLOCATION:Room 1\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:w@t\r\n\
DTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20270111T090000\r\nDTSTART;TZID=Europe/Berlin:20270111T140000\r\n\
DTEND;TZID=Europe/Berlin:20270111T150000\r\nSUMMARY:Weekly (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn jscalendar_round_trip_keeps_the_series() {
        let js = to_jscalendar(WEEKLY);
        assert_eq!(js["@type"], "Event", "{js}");
        assert_eq!(js["title"], "Weekly");
        let back = from_jscalendar(js, "w@t", "").expect("converts back");
        let a = parse_ical(WEEKLY, "w@t", "").unwrap();
        let b = parse_ical(&back, "w@t", "").unwrap();
        let (from, to) = (
            chrono::DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
                .unwrap()
                .to_utc(),
            chrono::DateTime::parse_from_rfc3339("2027-03-01T00:00:00Z")
                .unwrap()
                .to_utc(),
        );
        assert_eq!(
            a.occurrences(from, to, 100).0,
            b.occurrences(from, to, 100).0,
            "{back}"
        );
    }

    #[test]
    fn events_without_dtstamp_get_one() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let out = with_dtstamp(text);
        assert_eq!(out.matches("DTSTAMP:").count(), 1, "{out}");
        assert!(out.contains("BEGIN:VEVENT\r\nDTSTAMP:"));
        assert_eq!(with_dtstamp(&out), out, "an existing DTSTAMP is kept");
        assert_eq!(with_dtstamp(WEEKLY), WEEKLY);
    }

    #[test]
    fn a_jscalendar_event_without_uid_takes_the_event_id() {
        let js = serde_json::json!({"@type": "Event", "title": "Lunch", "start": "2027-02-01T12:00:00",
            "timeZone": "Europe/Berlin", "duration": "PT1H"});
        let ical = from_jscalendar(js, "lunch-1", "").unwrap();
        let s = parse_ical(&ical, "lunch-1", "").unwrap();
        assert_eq!(s.summary(), "Lunch");
        assert!(from_jscalendar(serde_json::json!([1]), "x", "/event").is_err());
    }
}
