use super::*;
use chrono::TimeZone;

const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n\
TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:w1\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20240318T100000\r\n\
DTEND;TZID=Europe/Berlin:20240318T110000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n\
EXDATE;TZID=Europe/Berlin:20240325T100000\r\nSUMMARY:Standup Ü\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:w1\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240401T100000\r\n\
DTSTART;TZID=Europe/Berlin:20240401T150000\r\nDTEND;TZID=Europe/Berlin:20240401T160000\r\n\
SUMMARY:Standup moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

#[test]
fn series_groups_master_and_overrides_and_expands_across_dst() {
    let s = EventSeries::parse_single("weekly", WEEKLY).unwrap();
    assert_eq!(s.uid, "w1");
    assert_eq!(s.components.len(), 2);
    assert_eq!(s.timezones.len(), 1);
    assert_eq!(s.summary(), "Standup Ü");
    let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let (occ, truncated) = s.occurrences(from, to, 1000);
    assert!(!truncated);
    let starts: Vec<String> = occ.iter().map(|o| o.start.to_rfc3339()).collect();
    // 18 Mar (CET, UTC+1), 25 Mar excluded, 1 Apr moved (CEST, UTC+2), 8 Apr (CEST).
    assert_eq!(
        starts,
        vec![
            "2024-03-18T09:00:00+00:00",
            "2024-04-01T13:00:00+00:00",
            "2024-04-08T08:00:00+00:00"
        ]
    );
    assert_eq!(occ[1].summary, "Standup moved");
}

#[test]
fn write_then_parse_is_identity() {
    let s = EventSeries::parse_single("weekly", WEEKLY).unwrap();
    let again = EventSeries::parse_single("again", &s.to_ical()).unwrap();
    assert_eq!(s, again);
    assert_eq!(s.content_hash(), again.content_hash());
}

#[test]
fn volatile_properties_do_not_change_content() {
    let s = EventSeries::parse_single("weekly", WEEKLY).unwrap();
    let t = EventSeries::parse_single(
        "stamp",
        &WEEKLY.replace("DTSTAMP:20240101T000000Z", "DTSTAMP:20250101T000000Z"),
    )
    .unwrap();
    assert!(s.same_content(&t));
    let u = EventSeries::parse_single("edit", &WEEKLY.replace("Standup Ü", "Retro")).unwrap();
    assert!(!s.same_content(&u));
}

#[test]
fn bad_event_is_reported_and_others_survive() {
    let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:good\r\nDTSTART:20240101T100000Z\r\nSUMMARY:ok\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:bad\r\nDTSTART:garbage\r\nSUMMARY:broken\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let p = parse_calendar("feed.ics", text).unwrap();
    assert_eq!(p.series.len(), 1);
    assert_eq!(p.series[0].uid, "good");
    assert_eq!(p.errors.len(), 1);
    assert_eq!(p.errors[0].0.as_deref(), Some("bad"));
    assert!(p.errors[0].1.to_string().contains("feed.ics"));
}

#[test]
fn unreadable_stream_names_source_and_line() {
    let err = parse_calendar("x.ics", "hello\r\nworld\r\n").unwrap_err();
    assert!(err.to_string().starts_with("x.ics: line"), "{err}");
    // calcard is tolerant of a missing END; the event itself is still unusable.
    let p = parse_calendar("y.ics", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\n").unwrap();
    assert!(p.series.is_empty());
    assert_eq!(
        p.errors[0].1.to_string(),
        "y.ics: line 3: UID a: MissingDtStart"
    );
}

#[test]
fn windows_tzids_become_iana() {
    assert_eq!(
        windows_to_iana("W. Europe Standard Time"),
        Some("Europe/Berlin")
    );
    assert_eq!(windows_to_iana("Europe/Berlin"), None);
    assert_eq!(windows_to_iana("UTC"), None);
    let text = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Central Asia Standard Time\r\nBEGIN:STANDARD\r\n\
DTSTART:16010101T000000\r\nTZOFFSETFROM:+0600\r\nTZOFFSETTO:+0600\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:o\r\nDTSTART;TZID=Central Asia Standard Time:20260115T120000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let s = EventSeries::parse_single("outlook", text).unwrap();
    assert!(
        s.to_ical()
            .contains("DTSTART;TZID=Asia/Bishkek:20260115T120000"),
        "{}",
        s.to_ical()
    );
    assert_eq!(s.timezones.keys().collect::<Vec<_>>(), vec!["Asia/Bishkek"]);
}

#[test]
fn secondly_rule_is_bounded() {
    let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTART:20000101T000000Z\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let s = EventSeries::parse_single("s", text).unwrap();
    let from = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let (occ, truncated) = s.occurrences(from, to, 5000);
    assert!(truncated);
    assert_eq!(occ.len(), 5000);
}
