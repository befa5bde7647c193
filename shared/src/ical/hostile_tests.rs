//! Hostile content: inputs that once crashed or stalled a worker, each read into a clear
//! per-event error while the rest of the calendar is kept (invariant 9).

use super::*;

fn calendar(events: &[String]) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{}END:VCALENDAR\r\n",
        events.concat()
    )
}

fn event(uid: &str, extra: &str) -> String {
    format!("BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\nSUMMARY:{uid}\r\n{extra}END:VEVENT\r\n")
}

fn list(n: usize) -> String {
    (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

#[test]
fn a_huge_by_product_is_refused_with_a_reason() {
    let rule = format!(
        "RRULE:FREQ=YEARLY;BYHOUR={};BYMINUTE={};BYSECOND={}\r\n",
        list(24),
        list(60),
        list(60)
    );
    let text = calendar(&[
        event("huge", &rule),
        event("fine", "RRULE:FREQ=WEEKLY;COUNT=3\r\n"),
    ]);
    let parsed = parse_calendar("feed.ics", &text).unwrap();
    assert_eq!(parsed.series.len(), 1, "the other event is kept");
    assert_eq!(parsed.series[0].uid, "fine");
    let (uid, err) = &parsed.errors[0];
    assert_eq!(uid.as_deref(), Some("huge"));
    assert!(
        err.reason.contains("86400 instants per period"),
        "{}",
        err.reason
    );
    assert!(
        err.to_string().contains("feed.ics"),
        "the error names the input: {err}"
    );
    // A realistic rule is far below the limit.
    assert_eq!(
        rrule_by_product(
            "FREQ=YEARLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;BYMONTHDAY=1,15;BYSETPOS=1"
        ),
        24
    );
}

#[test]
fn deep_nesting_is_cut_without_recursion() {
    let depth = 100_000;
    let nested = format!(
        "{}{}",
        "BEGIN:X-A\r\n".repeat(depth),
        "END:X-A\r\n".repeat(depth)
    );
    let text = calendar(&[event("deep", &nested), event("fine", "")]);
    let parsed = parse_calendar("deep.ics", &text).unwrap();
    assert_eq!(
        parsed
            .series
            .iter()
            .map(|s| s.uid.as_str())
            .collect::<Vec<_>>(),
        ["fine"]
    );
    let (uid, err) = &parsed.errors[0];
    assert_eq!(uid.as_deref(), Some("deep"));
    assert!(
        err.reason.contains("nested deeper than 16"),
        "{}",
        err.reason
    );
    // Every other reader of iCalendar text takes the same guarded path.
    assert_eq!(schedule_agent_client(&text, true), text);
    let from = chrono::DateTime::<Utc>::MIN_UTC;
    let (occ, _) = occurrences_of(&text, from, chrono::DateTime::<Utc>::MAX_UTC, 10);
    assert!(occ.iter().any(|o| o.uid == "fine"));
}

#[test]
fn shallow_alarms_are_kept() {
    let alarm =
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:x\r\nEND:VALARM\r\n";
    let parsed = parse_calendar("a.ics", &calendar(&[event("a", alarm)])).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert!(parsed.series[0].to_ical().contains("BEGIN:VALARM"));
}

#[test]
fn an_outlook_display_name_tzid_with_its_vtimezone_becomes_iana() {
    // An Exchange meeting request: the TZID is an old Outlook display name; its VTIMEZONE
    // carries Exchange's zone number (X-MICROSOFT-CDO-TZID 13 = Pacific).
    let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:Microsoft CDO for Microsoft Exchange\r\nBEGIN:VTIMEZONE\r\nTZID:Pacific Time (US & Canada)\\, Tijuana\r\nX-MICROSOFT-CDO-TZID:13\r\nBEGIN:STANDARD\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:-0700\r\nTZOFFSETTO:-0800\r\nRRULE:FREQ=YEARLY;WKST=MO;INTERVAL=1;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:-0800\r\nTZOFFSETTO:-0700\r\nRRULE:FREQ=YEARLY;WKST=MO;INTERVAL=1;BYMONTH=4;BYDAY=1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:m1\r\nDTSTART;TZID=\"Pacific Time (US & Canada), Tijuana\":20041011T223000\r\nDTEND;TZID=\"Pacific Time (US & Canada), Tijuana\":20041012T000000\r\nSUMMARY:Meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let s = EventSeries::parse_single("exchange.ics", text).unwrap();
    let out = s.to_ical();
    assert!(
        out.contains("DTSTART;TZID=America/Los_Angeles:20041011T223000"),
        "{out}"
    );
    assert!(
        out.contains("TZID:America/Los_Angeles"),
        "its VTIMEZONE goes with it: {out}"
    );
    let (occ, _) = s.occurrences(
        chrono::DateTime::<Utc>::MIN_UTC,
        chrono::DateTime::<Utc>::MAX_UTC,
        10,
    );
    assert_eq!(occ[0].start.to_rfc3339(), "2004-10-12T05:30:00+00:00");
}

#[test]
fn control_characters_and_lines_that_name_no_property_are_dropped_once() {
    // A fuzz finding: a NUL-laden SUMMARY and a line whose "name" is `>?QUEST-STATUS` with
    // an unbalanced quote, which calcard wrote back with one more ':' on every round.
    let extra = "X-NOTE:a\u{0}b\u{7f}c\r\n>\u{fffd}QUEST-STATUS;LANGUAGE<\"a:0.0;b;a:\r\nX_LOTUS_ID:kept\r\n";
    let text = calendar(&[event("a", extra), event("b", "")]);
    let parsed = parse_calendar("garbage.ics", &text).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.series.len(), 2, "the other event is kept");
    let once = parsed.series[0].to_ical();
    assert!(once.contains("X-NOTE:abc\r\n"), "{once}");
    assert!(once.contains("X_LOTUS_ID:kept"), "{once}");
    assert!(!once.contains("QUEST-STATUS"), "{once}");
    let again = EventSeries::parse_single("again.ics", &once).unwrap();
    assert_eq!(again.to_ical(), once, "a fixed point after one round");
}

#[test]
fn calendar_level_components_nested_in_an_event_are_detached() {
    // A fuzz finding: VEVENTs inside a VEVENT's VALARM (what unterminated components leave)
    // expanded as phantom occurrences of the event that held them.
    let nested: String = (0..60)
        .map(|i| {
            format!(
                "BEGIN:VEVENT\r\nUID:n{i}\r\nDTSTART:2027020{}T100000Z\r\nEND:VEVENT\r\n",
                i % 9 + 1
            )
        })
        .collect();
    let alarm =
        format!("BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\n{nested}END:VALARM\r\n");
    let parsed = parse_calendar("nested.ics", &calendar(&[event("a", &alarm)])).unwrap();
    let s = &parsed.series[0];
    let out = s.to_ical();
    assert_eq!(out.matches("BEGIN:VEVENT").count(), 1, "{out}");
    assert!(
        out.contains("BEGIN:VALARM"),
        "the alarm itself is kept: {out}"
    );
    let (occ, _) = s.occurrences(
        chrono::DateTime::<Utc>::MIN_UTC,
        chrono::DateTime::<Utc>::MAX_UTC,
        50,
    );
    assert_eq!(occ.len(), 1);
}

#[test]
fn an_rrule_that_is_not_a_recurrence_rule_is_refused_with_its_text() {
    // A fuzz finding: an UNTIL that is no date was kept as text and escaped again on every
    // write, so the stored event changed on every round.
    let bad = event("bad", "RRULE:FREQ=WEEKLY;UNTIL=2023BEGIN:X;CN=a\\, b\r\n");
    let text = calendar(&[bad, event("good", "RRULE:FREQ=WEEKLY;COUNT=3\r\n")]);
    let parsed = parse_calendar("rules.ics", &text).unwrap();
    assert_eq!(parsed.series.len(), 1, "the good series is kept");
    assert_eq!(parsed.series[0].uid, "good");
    let (_, err) = &parsed.errors[0];
    assert!(
        err.reason.contains("UID bad") && err.reason.contains("not a recurrence rule"),
        "{err:?}"
    );
}
