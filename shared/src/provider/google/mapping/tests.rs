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
    let vendor = parse_line("DTSTART;TZID=/mozilla.org/20050126_1/Europe/Berlin:20240101T100000")
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

/// Every event calsync writes (the master and each exception) carries its private mark, so
/// what reads back without it is someone else's ([`author`]).
#[test]
fn calsyncs_writes_carry_its_mark_and_others_do_not() {
    use crate::provider::Author;
    let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:m1\r\nDTSTART:20270105T090000Z\r\nDTEND:20270105T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:m1\r\nRECURRENCE-ID:20270112T090000Z\r\nDTSTART:20270112T150000Z\r\nDTEND:20270112T160000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let g = to_google(&series(text)).expect("maps");
    assert_eq!(author(&[&g.master]), Author::Calsync);
    assert_eq!(g.exceptions.len(), 1);
    assert_eq!(author(&[&g.exceptions[0].1]), Author::Calsync);
    let users = json!({"id": "u1", "iCalUID": "m1", "summary": "Weekly",
        "extendedProperties": {"shared": {"X-CUSTOM-FIELD": "1"}}});
    assert_eq!(author(&[&users]), Author::Other);
    assert_eq!(author(&[&users, &g.master]), Author::Calsync);
}
