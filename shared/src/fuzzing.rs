//! Entry points of the cargo-fuzz targets (`fuzz/`, `make fuzz`): each runs one input path
//! end to end — bytes from a server or a user to calsync's model and back — and panics only
//! when an oracle is broken (a panic inside calsync is the finding itself). Not used by the
//! functions.
#![allow(clippy::panic)] // audited: a fuzz oracle reports by panicking

use crate::ical::{parse_calendar, EventSeries};

/// iCalendar bytes → parse → write → parse → write → parse: what calsync writes always
/// reads back, and after one round trip the model is a fixed point (the hub stores
/// calsync's own serialization, so a model that kept changing would make members write
/// back and forth); expansion stays bounded. (Garbage input — a parameter value with a
/// colon, a VEVENT nested in a VEVENT — may be normalized by the first round.)
pub fn ical(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = parse_calendar("fuzz", &text) else {
        return;
    };
    for s in &parsed.series {
        let written = s.to_ical();
        let once = match EventSeries::parse_single("fuzz-written", &written) {
            Ok(once) => once,
            Err(e) => panic!("our own output does not parse: {e}\n{written}"),
        };
        let rewritten = once.to_ical();
        match EventSeries::parse_single("fuzz-rewritten", &rewritten) {
            Ok(twice) if twice == once => {}
            Ok(twice) => {
                panic!("no fixed point after a round trip:\n{rewritten}\n{twice:?}\nvs\n{once:?}")
            }
            Err(e) => panic!("our own output does not parse: {e}\n{rewritten}"),
        }
        let from = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        let to = chrono::DateTime::<chrono::Utc>::MAX_UTC;
        let (occ, _) = s.occurrences(from, to, 50);
        assert!(
            occ.len() <= 50 * (s.components.len() + 1),
            "expansion unbounded"
        );
        let _ = crate::provider::google::mapping::project(&written);
        let _ = crate::provider::outlook::mapping::project(&written, &Default::default(), from, to);
    }
}

/// A CalDAV multistatus body (PROPFIND / REPORT answer) → its responses.
pub fn multistatus(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::provider::caldav::parse_multistatus_for_fuzzing(&text);
}

/// Google event JSON (one event or a list of a series' items) → iCalendar → Google again.
pub fn google_event(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let items: Vec<serde_json::Value> = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(ref o) if o.contains_key("items") => {
            v["items"].as_array().cloned().unwrap_or_default()
        }
        other => vec![other],
    };
    for group in crate::provider::google::mapping::group_series(&items).values() {
        if let Ok(ical) = crate::provider::google::mapping::series_to_ical(group) {
            if let Ok(s) = EventSeries::parse_single("google", &ical) {
                let _ = crate::provider::google::mapping::to_google(&s);
            }
        }
    }
}

/// A Google batch response body (multipart/mixed) → per-call answers.
pub fn batch(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (ct, body) = match text.split_once('\n') {
        Some((first, rest)) => (format!("multipart/mixed; boundary={}", first.trim()), rest),
        None => return,
    };
    let _ = crate::provider::google::batch::decode(&ct, body, 8);
}

/// A JSCalendar (RFC 8984) object as the API receives it → iCalendar → JSCalendar.
pub fn jscalendar(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(ical) = crate::api::formats::from_jscalendar(v, "fuzz-uid", "") {
        let _ = crate::api::formats::to_jscalendar(&ical);
    }
}
