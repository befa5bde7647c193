//! Windows time-zone names (as Outlook / Exchange feeds use in TZID) resolve to the IANA zone
//! the CLDR map (`../shared/corpus/tz/cldr-windowsZones.json`) gives, checked by the UTC
//! instant of a local time in winter and in summer.

use std::path::Path;

use calsync::ical::EventSeries;
use chrono::{NaiveDate, TimeZone, Utc};

#[test]
fn windows_tzids_resolve_like_the_cldr_map() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/tz/cldr-windowsZones.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("SKIPPED: {} not found (shared/ absent)", path.display());
        return;
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let zones = json["supplemental"]["windowsZones"]["mapTimezones"]
        .as_array()
        .unwrap();
    let (mut checked, mut wrong) = (0, Vec::new());
    for z in zones
        .iter()
        .map(|z| &z["mapZone"])
        .filter(|z| z["_territory"] == "001")
    {
        let windows = z["_other"].as_str().unwrap();
        let iana: chrono_tz::Tz = z["_type"].as_str().unwrap().parse().unwrap();
        for (m, d) in [(1, 15), (7, 15)] {
            let local = NaiveDate::from_ymd_opt(2026, m, d)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap();
            let want = iana
                .from_local_datetime(&local)
                .single()
                .unwrap()
                .with_timezone(&Utc);
            let ics = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTART;TZID=\"{windows}\":2026{m:02}{d:02}T120000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            );
            let s = EventSeries::parse_single(windows, &ics).unwrap();
            let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let to = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
            let (occ, _) = s.occurrences(from, to, 10);
            let got = occ.first().map(|o| o.start);
            checked += 1;
            if got != Some(want) {
                wrong.push(format!(
                    "{windows} ({iana}) 2026-{m:02}-{d:02}: got {got:?}, want {want}"
                ));
            }
        }
    }
    println!("windows zones: {checked} checks, {} wrong", wrong.len());
    for w in &wrong {
        println!("  {w}");
    }
    assert!(checked > 200, "{checked}");
    assert!(
        wrong.is_empty(),
        "{} Windows zone names resolve differently from CLDR",
        wrong.len()
    );
}
