//! Table tests of the transforms: rendering, shielding, taking titles back, validation.

use super::*;

fn ev(extra: &str, start: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:t1\r\nDTSTAMP:20260101T000000Z\r\n{start}\r\n\
SUMMARY:Dentist\\, Dr. Who\r\nDESCRIPTION:Root canal\r\nLOCATION:Main St 1\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2027-01-10T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn series(text: &str) -> EventSeries {
    EventSeries::parse_single("t", text).unwrap()
}

#[test]
fn render_table() {
    let timed = ev("", "DTSTART:20270112T090000Z\r\nDTEND:20270112T100000Z");
    let allday = ev("", "DTSTART;VALUE=DATE:20270112");
    let declined = ev(
        "ATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:x@example.com\r\n",
        "DTSTART:20270112T090000Z\r\nDTEND:20270112T100000Z",
    );
    let far = ev("", "DTSTART:20280112T090000Z\r\nDTEND:20280112T100000Z");
    let weekly_old = ev(
        "RRULE:FREQ=WEEKLY\r\n",
        "DTSTART:20200106T090000Z\r\nDTEND:20200106T100000Z",
    );
    let t = |f: fn(&mut Transforms)| {
        let mut t = Transforms::default();
        f(&mut t);
        t
    };
    let win = Some(Window {
        past_days: 7,
        future_days: 30,
    });
    let cases: Vec<(Transforms, &String, Option<&str>)> = vec![
        (
            Transforms::default(),
            &timed,
            Some("SUMMARY:Dentist\\, Dr. Who"),
        ),
        (t(|t| t.busy_only = true), &timed, Some("SUMMARY:Busy")),
        (
            t(|t| t.title_template = Some("{title} (work)".into())),
            &timed,
            Some("SUMMARY:Dentist\\, Dr. Who (work)"),
        ),
        (t(|t| t.exclude_all_day = true), &allday, None),
        (
            t(|t| t.exclude_all_day = true),
            &timed,
            Some("SUMMARY:Dentist"),
        ),
        (
            t(|t| {
                t.exclude_declined = true;
                t.self_address = Some("mailto:Me@Example.com".into())
            }),
            &declined,
            None,
        ),
        (
            t(|t| {
                t.exclude_declined = true;
                t.self_address = Some("x@example.com".into())
            }),
            &declined,
            Some("ATTENDEE"),
        ),
        (
            Transforms {
                window: win,
                ..Default::default()
            },
            &timed,
            Some("Dentist"),
        ),
        (
            Transforms {
                window: win,
                ..Default::default()
            },
            &far,
            None,
        ),
        (
            Transforms {
                window: win,
                ..Default::default()
            },
            &weekly_old,
            Some("RRULE"),
        ),
    ];
    for (t, input, want) in cases {
        match (render(&t, input, now()), want) {
            (Rendered::Write(out), Some(has)) => assert!(out.contains(has), "{t:?}: {out}"),
            (Rendered::Exclude, None) => {}
            (got, want) => panic!("{t:?}: got {got:?}, want {want:?}"),
        }
    }
    let Rendered::Write(busy) = render(&t(|t| t.busy_only = true), &timed, now()) else {
        panic!()
    };
    for hidden in ["DESCRIPTION", "LOCATION", "Root canal"] {
        assert!(!busy.contains(hidden), "{busy}");
    }
    assert!(busy.contains("DTSTART:20270112T090000Z"));
}

#[test]
fn templates_apply_once() {
    assert_eq!(templated("{title} (work)", "Lunch"), "Lunch (work)");
    assert_eq!(templated("{title} (work)", "Lunch (work)"), "Lunch (work)");
    assert_eq!(templated("[W] {title}", "[W] Lunch"), "[W] Lunch");
    let t = Transforms {
        title_template: Some("{title} (work)".into()),
        ..Default::default()
    };
    let once = view(&t, &ev("", "DTSTART:20270112T090000Z"), now()).unwrap();
    assert_eq!(
        view(&t, &once, now()),
        None,
        "rendering a rendered copy changes nothing"
    );
}

#[test]
fn what_is_in_the_members_form() {
    let timed = ev("", "DTSTART:20270112T090000Z");
    let all_day = ev("", "DTSTART;VALUE=DATE:20270112");
    let busy = Transforms {
        busy_only: true,
        ..Default::default()
    };
    let tpl = Transforms {
        title_template: Some("{title} (work)".into()),
        ..Default::default()
    };
    let no_all_day = Transforms {
        exclude_all_day: true,
        ..Default::default()
    };
    let shown = |t: &Transforms, text: &str| view(t, text, now()).unwrap();
    // (what, transforms, the object, in their form)
    let rows = [
        ("no transforms", &Transforms::default(), timed.clone(), true),
        ("busy: a busy copy", &busy, shown(&busy, &timed), true),
        ("busy: a whole event", &busy, timed.clone(), false),
        (
            "template: a templated title",
            &tpl,
            shown(&tpl, &timed),
            true,
        ),
        ("template: a plain title", &tpl, timed.clone(), false),
        (
            "no all-day: a timed event",
            &no_all_day,
            timed.clone(),
            true,
        ),
        (
            "no all-day: an all-day event",
            &no_all_day,
            all_day.clone(),
            false,
        ),
    ];
    for (what, t, text, want) in rows {
        assert_eq!(in_member_form(t, &series(&text)), want, "{what}");
    }
}

#[test]
fn templated_titles_come_back_as_titles() {
    let t = Transforms {
        title_template: Some("{title} (work)".into()),
        ..Default::default()
    };
    let with = |title: &str| {
        series(&ev("", "DTSTART:20270112T090000Z").replace("Dentist\\, Dr. Who", title))
    };
    let hub = with("Dentist\\, Dr. Who");
    // (what, the hub's title, the member's, the title going to the merge)
    let rows = [
        (
            "untouched",
            &hub,
            "Dentist\\, Dr. Who (work)",
            "Dentist, Dr. Who",
        ),
        ("edited inside the template", &hub, "Lunch (work)", "Lunch"),
        ("the template's text removed", &hub, "Lunch", "Lunch"),
        (
            "a hub title already in the template's form, untouched",
            &with("Team (work)"),
            "Team (work)",
            "Team (work)",
        ),
        (
            "a hub title already in the template's form, edited",
            &with("Team (work)"),
            "Teams (work)",
            "Teams",
        ),
    ];
    for (what, hub, shown, want) in rows {
        assert_eq!(titles_back(&t, with(shown), hub).summary(), want, "{what}");
    }
    let busy = Transforms {
        busy_only: true,
        ..t.clone()
    };
    for t in [&busy, &Transforms::default()] {
        assert_eq!(
            titles_back(t, with("Lunch (work)"), &hub),
            with("Lunch (work)")
        );
    }
}

#[test]
fn shielded_fields_keep_the_agreed_value() {
    let t = Transforms {
        busy_only: true,
        ..Default::default()
    };
    let base = series(&view(&t, &ev("", "DTSTART:20270112T090000Z"), now()).unwrap());
    // On the member: the title changed, a description added, and the time moved.
    let edited = ev("", "DTSTART:20270112T140000Z").replace("Dentist\\, Dr. Who", "Lunch");
    let out = shield(&t, &series(&edited), &base);
    assert_eq!(out.summary(), "Busy");
    assert!(out.master().unwrap().get("DESCRIPTION").is_none());
    assert!(
        out.to_ical().contains("DTSTART:20270112T140000Z"),
        "the time edit stays"
    );
    assert_eq!(
        shield(&Transforms::default(), &series(&edited), &base),
        series(&edited)
    );
}

#[test]
fn validation() {
    let bad = [
        Transforms {
            title_template: Some("work".into()),
            ..Default::default()
        },
        Transforms {
            exclude_declined: true,
            ..Default::default()
        },
        Transforms {
            window: Some(Window {
                past_days: 0,
                future_days: 0,
            }),
            ..Default::default()
        },
    ];
    for t in bad {
        assert!(t.validate().is_err(), "{t:?}");
    }
    assert!(Transforms {
        busy_only: true,
        ..Default::default()
    }
    .validate()
    .is_ok());
}
