//! Recorded Google payloads map into the canonical model: Compass' `events.list` recordings
//! (recurring series with edited, moved and cancelled instances) and the Thunderbird Google
//! provider's Google-event / jCal pairs (`../shared/corpus/google`, see its MANIFEST.md).

use std::path::PathBuf;

use calsync::ical::EventSeries;
use calsync::provider::google::mapping::{group_series, series_to_ical};
use chrono::{DateTime, Utc};
use serde_json::Value;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/google")
}

fn items_of(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn utc(ev: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ev["start"]["dateTime"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[test]
fn compass_recordings_map_into_series() {
    let mut files = 0;
    let (mut series_count, mut exceptions, mut exdates, mut unmodified_seen) = (0, 0, 0, 0);
    for dir in ["recurring", "v1"] {
        let mut paths: Vec<_> = std::fs::read_dir(corpus().join("compass").join(dir))
            .expect("corpus dir")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        for path in paths {
            let name = path.display().to_string();
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
            let items = items_of(&v);
            assert!(!items.is_empty(), "{name}: no events");
            files += 1;
            for (id, members) in group_series(&items) {
                let master = members
                    .iter()
                    .find(|e| e["id"] == id.as_str() && e["status"] != "cancelled");
                let Some(master) = master else {
                    continue; // a deleted series, or instances of a series listed elsewhere
                };
                let ical = series_to_ical(&members).unwrap_or_else(|e| panic!("{name}: {e}"));
                let s = EventSeries::parse_single(&name, &ical)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{ical}"));
                series_count += 1;
                assert_eq!(
                    s.summary(),
                    master["summary"].as_str().unwrap_or(""),
                    "{name}"
                );
                let live = members
                    .iter()
                    .filter(|e| e["recurringEventId"] == id.as_str() && e["status"] != "cancelled")
                    .count();
                let no_op = members
                    .iter()
                    .filter(|e| e["recurringEventId"] == id.as_str() && e["status"] != "cancelled")
                    .filter(|e| calsync::provider::google::mapping::unmodified(e, master))
                    .count();
                unmodified_seen += no_op;
                assert_eq!(
                    s.components.len(),
                    1 + live - no_op,
                    "{name}: one VEVENT per live exception that changes its occurrence\n{ical}"
                );
                exceptions += live;
                let cancelled = members
                    .iter()
                    .filter(|e| e["recurringEventId"] == id.as_str() && e["status"] == "cancelled")
                    .count();
                if cancelled > 0 {
                    assert!(
                        s.master().expect("master").contains_key("EXDATE"),
                        "{name}: cancelled instance → EXDATE\n{ical}"
                    );
                    exdates += 1;
                }
                // The first occurrence is the master's start instant.
                if let Some(start) = utc(master) {
                    let (occ, _) = s.occurrences(
                        start - chrono::Duration::days(1),
                        start + chrono::Duration::days(1),
                        10,
                    );
                    assert!(
                        occ.iter().any(|o| o.start == start) || live > 0 || cancelled > 0,
                        "{name}: first occurrence at {start}: {occ:?}"
                    );
                }
            }
        }
    }
    println!("compass: {files} files, {series_count} series, {exceptions} exceptions ({unmodified_seen} identical to their occurrence), {exdates} series with cancelled instances");
    assert_eq!(files, 22);
    assert!(series_count >= 20 && exceptions >= 1 && exdates >= 1);
    assert!(
        unmodified_seen >= 1,
        "Google's own no-op exceptions (edit_all_all-1.json) are in the corpus"
    );
}

/// The jCal value of property `name` in the first VEVENT.
fn jcal_prop<'a>(jcal: &'a Value, name: &str) -> Option<&'a Value> {
    let vevent = jcal["item"][2]
        .as_array()?
        .iter()
        .find(|c| c[0] == "vevent")?;
    vevent[1].as_array()?.iter().find(|p| p[0] == name)
}

#[test]
fn gdata_provider_pairs_agree_with_our_mapping() {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("gdata-provider/gcalItems.json")).expect("read"),
    )
    .expect("json");
    let j: Value = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("gdata-provider/jcalItems.json")).expect("read"),
    )
    .expect("json");
    let mut compared = 0;
    for (key, jcal) in j.as_object().expect("object") {
        let Some(gev) = g.get(key) else { continue };
        // Tasks (`tasks#task`) share the file; cancelled events and instances have no jCal twin
        // of their own.
        if gev["kind"] != "calendar#event"
            || gev["status"] == "cancelled"
            || gev.get("recurringEventId").is_some()
        {
            continue;
        }
        let ical = series_to_ical(&[gev]).unwrap_or_else(|e| panic!("{key}: {e}"));
        let s =
            EventSeries::parse_single(key, &ical).unwrap_or_else(|e| panic!("{key}: {e}\n{ical}"));
        for prop in ["summary", "location", "description"] {
            let ours = s.text(&prop.to_ascii_uppercase());
            // Some jCal twins are abridged: compare what they state.
            if let Some(theirs) = jcal_prop(jcal, prop).and_then(|p| p[3].as_str()) {
                assert_eq!(ours.as_deref(), Some(theirs), "{key}: {prop}\n{ical}");
            }
        }
        let dtstart = jcal_prop(jcal, "dtstart").expect("dtstart");
        let m = s.master().expect("master");
        let line = &m["DTSTART"][0];
        let value = dtstart[3].as_str().expect("value").replace(['-', ':'], "");
        assert!(
            line.contains(&value),
            "{key}: DTSTART {line:?} vs jCal {dtstart}"
        );
        if let Some(tz) = dtstart[1]["tzid"].as_str() {
            assert!(
                line.contains(&format!("TZID={tz}")),
                "{key}: {line:?} vs {tz}"
            );
        }
        if let Some(class) = jcal_prop(jcal, "class").and_then(|p| p[3].as_str()) {
            assert!(
                m.get("CLASS").is_some_and(|l| l[0].contains(class)),
                "{key}: CLASS {class}"
            );
        }
        compared += 1;
    }
    println!("gdata-provider: {compared} pairs compared");
    assert!(compared >= 3, "compared {compared}");
}
