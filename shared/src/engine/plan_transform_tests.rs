//! Table tests of the pull plan on members with transforms: which events are the member's
//! own (made there, its own copy of a shared event, made on the same calendar before), and
//! how a templated title comes back.

use super::tests::{hub, hub_summary, ics, link, mapping, series};
use super::*;
use crate::model::ProviderKind;

/// The member's view of a text under transforms, as the pull gives it (no projection).
fn transformed(t: &transform::Transforms, text: &str) -> Option<EventSeries> {
    transform::view(t, text, chrono::Utc::now()).map(|v| series(&v))
}

/// [`plan_item`] of `remote` on `link`, seen through its transforms ([`transformed`]).
fn plan_viewed(
    link: &Link,
    remote: &EventSeries,
    h: Option<&HubEvent>,
    m: Option<&Mapping>,
) -> ItemPlan {
    plan_by(link, Author::Unknown, remote, h, m)
}

/// [`plan_viewed`] of an object written by `author`.
fn plan_by(
    link: &Link,
    author: Author,
    remote: &EventSeries,
    h: Option<&HubEvent>,
    m: Option<&Mapping>,
) -> ItemPlan {
    plan_item(&Snapshot {
        link,
        remote,
        href: &RemoteId::from("/c/e1.ics"),
        author,
        etag: Some(&Etag::from("\"new\"")),
        hub: h,
        mapping: m,
        view: &transformed,
        now_ms: 42,
    })
}

/// Which events are the member's own (made there, or its own copy of an event another
/// member brought), and what that changes: a busy-only member's title edit of its own event
/// is an edit; of another member's event, not.
#[test]
fn events_made_on_the_member_are_its_own() {
    let a = ics("A", "R1", "20270101T000000Z");
    let b = ics("B", "R1", "20270105T000000Z");
    let caldav = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    let mut busy = caldav.clone();
    busy.transforms.busy_only = true;
    let busy_a = transform::view(&busy.transforms, &a, chrono::Utc::now()).unwrap();
    let home = Mapping {
        home: true,
        ..mapping(3, &a, EventStatus::Synced)
    };
    let elsewhere = mapping(3, &a, EventStatus::Synced);
    let made_here = HubEvent {
        made_on: Some(caldav.calendar_key()),
        ..hub(3, &a, false)
    };
    let made_on_another = HubEvent {
        made_on: Some("another calendar".into()),
        ..hub(3, &a, false)
    };
    // (what, link, the member's object, hub, mapping, its own)
    type Row<'a> = (
        &'a str,
        &'a Link,
        &'a str,
        Option<HubEvent>,
        Option<&'a Mapping>,
        bool,
    );
    // calsync's busy write of an older version (a crash lost its mapping); the hub moved on.
    let moved = hub(
        4,
        &a.replace("DTSTART:20270101T100000Z", "DTSTART:20270101T120000Z"),
        false,
    );
    let rows: [Row; 10] = [
        ("new to the hub", &caldav, &b, None, None, true),
        (
            "a tombstone's UID, not mapped here",
            &caldav,
            &b,
            Some(hub(4, &a, true)),
            None,
            true,
        ),
        (
            "not mapped here, the hub's content",
            &caldav,
            &a,
            Some(hub(3, &a, false)),
            None,
            false,
        ),
        (
            "not mapped here, what a busy member is written (calsync's own write)",
            &busy,
            &busy_a,
            Some(hub(3, &a, false)),
            None,
            false,
        ),
        (
            "not mapped here, another version (the member's own copy, e.g. an invitation)",
            &busy,
            &b,
            Some(hub(3, &a, false)),
            None,
            true,
        ),
        (
            "not mapped here, in the busy form but of an older version (calsync's lost write)",
            &busy,
            &busy_a,
            Some(moved),
            None,
            false,
        ),
        (
            "not mapped here, the hub's content, made on this calendar (linked again)",
            &caldav,
            &a,
            Some(made_here.clone()),
            None,
            true,
        ),
        (
            "not mapped here, the hub's content, made on another calendar",
            &caldav,
            &a,
            Some(made_on_another),
            None,
            false,
        ),
        (
            "an edit of a deleted event made here",
            &caldav,
            &b,
            Some(hub(4, &a, true)),
            Some(&home),
            true,
        ),
        (
            "an edit of a deleted event from elsewhere",
            &caldav,
            &b,
            Some(hub(4, &a, true)),
            Some(&elsewhere),
            false,
        ),
    ];
    for (what, l, remote, h, m, want) in rows {
        let remote = series(remote);
        let p = plan_viewed(l, &remote, h.as_ref(), m);
        assert_eq!(p.mapping.home, want, "{what}");
        if what == "new to the hub" {
            let made_on = p.hub.as_ref().and_then(|w| w.event.made_on.clone());
            assert_eq!(
                made_on,
                Some(caldav.calendar_key()),
                "the hub records where it was made"
            );
        }
        if what.contains("lost write") {
            let title = p.hub.as_ref().map(|w| series(&w.event.ical).summary());
            assert!(
                title.is_none_or(|t| t == "A"),
                "the busy form never reaches the hub: {p:?}"
            );
        }
        if what.contains("own copy") {
            assert_eq!(
                hub_summary(&p).as_deref(),
                Some("B"),
                "its own copy is merged whole: {p:?}"
            );
        }
    }

    // A busy-only member: the hub holds the full event, the member shows "Busy" for other
    // members' events and its own events whole.
    for (m, want) in [(&home, Some("Lunch")), (&elsewhere, None)] {
        let t = transform::for_mapping(&busy.transforms, Some(m));
        let shown = transform::view(t, &a, chrono::Utc::now()).unwrap_or_else(|| a.clone());
        let agreed = Mapping {
            base: Some(shown.clone()),
            ..m.clone()
        };
        let title = format!("SUMMARY:{}", series(&shown).summary());
        let remote = series(&shown.replace(&title, "SUMMARY:Lunch"));
        let p = plan_viewed(&busy, &remote, Some(&hub(3, &a, false)), Some(&agreed));
        assert_eq!(hub_summary(&p).as_deref(), want, "home {}: {p:?}", m.home);
    }
}

/// Where the provider tells calsync's writes from others' (Google, Outlook: [`Author`]), an
/// object no mapping knows is the member's own copy exactly when calsync did not write it
/// and it holds the whole event (or another version of it); calsync's own write is never
/// the member's, in any form.
#[test]
fn what_calsync_did_not_write_is_the_members_own() {
    let a = ics("A", "R1", "20270101T000000Z");
    let b = ics("B", "R1", "20270105T000000Z");
    let plain = link(ProviderKind::Google, ConflictPolicy::Merge);
    let mut busy = plain.clone();
    busy.transforms.busy_only = true;
    let mut no_all_day = plain.clone();
    no_all_day.transforms.exclude_all_day = true;
    let busy_a = transform::view(&busy.transforms, &a, chrono::Utc::now()).unwrap();
    // (what, link, author, the member's object, its own)
    let rows = [
        (
            "the hub's content, not calsync's (one invitation on both calendars)",
            &plain,
            Author::Other,
            &a,
            true,
        ),
        (
            "the hub's content, calsync's write",
            &plain,
            Author::Calsync,
            &a,
            false,
        ),
        (
            "the hub's content, the provider cannot tell",
            &plain,
            Author::Unknown,
            &a,
            false,
        ),
        (
            "the hub's content, not calsync's, under transforms that leave it as it is",
            &no_all_day,
            Author::Other,
            &a,
            true,
        ),
        (
            "in the busy form, not calsync's: not the whole event",
            &busy,
            Author::Other,
            &busy_a,
            false,
        ),
        (
            "another version, not calsync's",
            &plain,
            Author::Other,
            &b,
            true,
        ),
        (
            "another version, calsync's (its write of an older version, its mapping lost)",
            &plain,
            Author::Calsync,
            &b,
            false,
        ),
        (
            "another version, the provider cannot tell",
            &plain,
            Author::Unknown,
            &b,
            true,
        ),
    ];
    for (what, l, author, remote, want) in rows {
        let p = plan_by(l, author, &series(remote), Some(&hub(3, &a, false)), None);
        assert_eq!(p.mapping.home, want, "{what}: {p:?}");
    }
}

/// A calendar disconnected and linked again still holds calsync's copies of events deleted
/// while it was away. Where the provider shows that calsync wrote such a copy of an event
/// made elsewhere, and it is the deleted version untouched or an older one last changed
/// before the deletion, the deletion stands and is owed to the member. A copy edited after
/// the deletion (or that does not say when it changed), one the provider cannot tell, and
/// the calendar's own event (which calsync may have written an edit to) bring the event
/// back (an edit beats a delete; after a disconnect, a user may have cleared the other
/// calendar of its copies).
#[test]
fn calsyncs_untouched_copy_of_a_deleted_event_stays_deleted() {
    let a = ics("A", "R1", "20270101T000000Z");
    let b = ics("B", "R1", "20270105T000000Z");
    let google = link(ProviderKind::Google, ConflictPolicy::Merge);
    let here = google.calendar_key();
    // The event was deleted on 2027-01-03, after `older` was written, before `b`.
    let deleted_at = chrono::DateTime::parse_from_rfc3339("2027-01-03T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let older = ics("Old", "R0", "20261201T000000Z");
    let undated = older.replace("LAST-MODIFIED:20261201T000000Z\r\n", "");
    let (elsewhere, api) = ("another calendar's key", crate::model::MADE_BY_API);
    // (what, where the event was made, author, the member's object, the event comes back)
    let rows = [
        (
            "calsync's copy, untouched",
            Some(elsewhere),
            Author::Calsync,
            &a,
            false,
        ),
        (
            "calsync's copy of the application's event, untouched",
            Some(api),
            Author::Calsync,
            &a,
            false,
        ),
        (
            "calsync's copy, edited after the deletion",
            Some(elsewhere),
            Author::Calsync,
            &b,
            true,
        ),
        (
            "calsync's copy of an older version, last changed before the deletion",
            Some(elsewhere),
            Author::Calsync,
            &older,
            false,
        ),
        (
            "calsync's copy of another version, saying nothing of when it changed",
            Some(elsewhere),
            Author::Calsync,
            &undated,
            true,
        ),
        ("not calsync's", Some(elsewhere), Author::Other, &a, true),
        (
            "the provider cannot tell",
            Some(elsewhere),
            Author::Unknown,
            &a,
            true,
        ),
        (
            "the calendar's own event, which calsync wrote an edit from elsewhere to",
            Some(here.as_str()),
            Author::Calsync,
            &a,
            true,
        ),
        (
            "made before calsync recorded where",
            None,
            Author::Calsync,
            &a,
            true,
        ),
    ];
    for (what, made_on, author, remote, back) in rows {
        let tombstone = HubEvent {
            made_on: made_on.map(str::to_string),
            updated_ms: deleted_at,
            ..hub(4, &a, true)
        };
        let p = plan_by(&google, author, &series(remote), Some(&tombstone), None);
        assert_eq!(p.hub.is_some(), back, "{what}: {p:?}");
        if !back {
            assert_eq!(p.mapping.status, EventStatus::Pending, "{what}: owed");
            assert_eq!(p.count, None, "{what}");
        }
    }
}

/// Two links of one calendar, however its address is spelled, have one calendar key, which
/// does not show the address.
#[test]
fn one_calendar_one_key() {
    let key = |url: &str| Link::new("l", "g", 1, ProviderKind::Caldav, url).calendar_key();
    assert_eq!(
        key("https://Example.com/c/"),
        key("https://example.com:443/c")
    );
    assert_ne!(key("https://example.com/c/"), key("https://example.com/d/"));
    assert!(!key("https://example.com/c/").contains("example"));
    assert_eq!(key("https://example.com/c/").len(), 32);
}

/// On a member whose titles follow a template, a title edited inside the template (or with
/// its text removed) is a title edit; the template's own text never reaches the hub.
#[test]
fn a_templated_title_edited_on_the_member_is_a_title_edit() {
    let a = ics("A", "R1", "20270101T000000Z");
    let mut work = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    work.transforms.title_template = Some("{title} (work)".into());
    let shown = |text: &str| {
        transform::view(&work.transforms, text, chrono::Utc::now()).unwrap_or_default()
    };
    let agreed = mapping(3, &shown(&a), EventStatus::Synced);
    // (what, the member's title, the hub's new title, the mapping's status)
    let rows = [
        (
            "edited inside the template",
            "B (work)",
            Some("B"),
            EventStatus::Synced,
        ),
        (
            "the template's text removed: written back with it",
            "B",
            Some("B"),
            EventStatus::Pending,
        ),
        (
            "only the location edited",
            "A (work)",
            None,
            EventStatus::Synced,
        ),
    ];
    for (what, title, want, status) in rows {
        let remote = series(
            &shown(&a)
                .replace("SUMMARY:A (work)", &format!("SUMMARY:{title}"))
                .replace(
                    "LOCATION:R1",
                    if want.is_none() {
                        "LOCATION:R9"
                    } else {
                        "LOCATION:R1"
                    },
                ),
        );
        let p = plan_viewed(&work, &remote, Some(&hub(3, &a, false)), Some(&agreed));
        let hub_title = hub_summary(&p);
        match want {
            Some(w) => assert_eq!(hub_title.as_deref(), Some(w), "{what}: {p:?}"),
            None => assert_eq!(
                hub_title.as_deref(),
                Some("A"),
                "{what}: the title stays: {p:?}"
            ),
        }
        assert_eq!(p.mapping.status, status, "{what}");
    }
}
