//! Table tests of the pull plan: each row is one invariant's decision, with no server.

use super::*;
use crate::model::ProviderKind;

pub(super) fn ics(summary: &str, location: &str, lm: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\nSUMMARY:{summary}\r\nLOCATION:{location}\r\nLAST-MODIFIED:{lm}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

pub(super) fn series(text: &str) -> EventSeries {
    EventSeries::parse_single("t", text).unwrap()
}

pub(super) fn hub(version: i64, text: &str, deleted: bool) -> HubEvent {
    HubEvent {
        group_id: "g".into(),
        uid: "e1".into(),
        version,
        ical: series(text).to_ical(),
        deleted,
        updated_ms: 1,
        origin_link: "other".into(),
        made_on: None,
    }
}

pub(super) fn mapping(synced: i64, base: &str, status: EventStatus) -> Mapping {
    Mapping {
        href: Some(RemoteId::from("/c/e1.ics")),
        etag: Some(Etag::from("\"old\"")),
        base: Some(series(base).to_ical()),
        synced_version: synced,
        status,
        ..Mapping::new("l", "e1")
    }
}

pub(super) fn link(kind: ProviderKind, policy: ConflictPolicy) -> Link {
    let mut l = Link::new("l", "g", 1, kind, "https://example.com/c/");
    l.conflict_policy = policy;
    l
}

fn no_view(_: &transform::Transforms, _: &str) -> Option<EventSeries> {
    None
}

fn plan(link: &Link, remote: &str, h: Option<&HubEvent>, m: Option<&Mapping>) -> ItemPlan {
    let remote = series(remote);
    plan_item(&Snapshot {
        link,
        remote: &remote,
        href: &RemoteId::from("/c/e1.ics"),
        author: Author::Unknown,
        etag: Some(&Etag::from("\"new\"")),
        hub: h,
        mapping: m,
        view: &no_view,
        now_ms: 42,
    })
}

pub(super) fn hub_summary(p: &ItemPlan) -> Option<String> {
    p.hub.as_ref().map(|w| series(&w.event.ical).summary())
}

#[test]
fn pull_item_table() {
    let a = ics("A", "R1", "20270101T000000Z");
    let b_remote = ics("B", "R1", "20270103T000000Z");
    let hub_loc = ics("A", "R2", "20270102T000000Z");
    let hub_sum = ics("Hub", "R1", "20270104T000000Z");
    let caldav = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    let manual = link(ProviderKind::Caldav, ConflictPolicy::Manual);
    let prefer_hub = link(ProviderKind::Caldav, ConflictPolicy::PreferHub);
    let feed = link(ProviderKind::Ics, ConflictPolicy::Manual);
    let agreed = mapping(3, &a, EventStatus::Synced);
    let behind = mapping(2, &a, EventStatus::Pending);
    let in_conflict = mapping(2, &a, EventStatus::Conflict);
    struct Row<'a> {
        what: &'a str,
        link: &'a Link,
        remote: &'a str,
        hub: Option<HubEvent>,
        mapping: Option<&'a Mapping>,
        // (hub write summary, expected version, mapping status, synced_version, count)
        want_hub: Option<(&'a str, Option<i64>)>,
        want_status: EventStatus,
        want_synced: i64,
        want_count: Option<Count>,
        want_notice: bool,
    }
    let rows = [
        Row {
            what: "new to the hub: created at version 1, must not exist yet",
            link: &caldav,
            remote: &a,
            hub: None,
            mapping: None,
            want_hub: Some(("A", None)),
            want_status: EventStatus::Synced,
            want_synced: 1,
            want_count: Some(Count::Created),
            want_notice: false,
        },
        Row {
            what: "edit of an event deleted elsewhere: the edit wins over the tombstone",
            link: &caldav,
            remote: &b_remote,
            hub: Some(hub(4, &a, true)),
            mapping: Some(&agreed),
            want_hub: Some(("B", Some(4))),
            want_status: EventStatus::Synced,
            want_synced: 5,
            want_count: Some(Count::Created),
            want_notice: false,
        },
        Row {
            what: "same content as the hub (an echo with a new etag): mapping only",
            link: &caldav,
            remote: &a,
            hub: Some(hub(3, &a, false)),
            mapping: Some(&behind),
            want_hub: None,
            want_status: EventStatus::Synced,
            want_synced: 3,
            want_count: None,
            want_notice: false,
        },
        Row {
            what: "remote edit, hub unchanged since agreed: the remote replaces the hub",
            link: &caldav,
            remote: &b_remote,
            hub: Some(hub(3, &a, false)),
            mapping: Some(&agreed),
            want_hub: Some(("B", Some(3))),
            want_status: EventStatus::Synced,
            want_synced: 4,
            want_count: Some(Count::Updated),
            want_notice: false,
        },
        Row {
            what: "only the remote tag moved while the hub changed: still owed a push",
            link: &caldav,
            remote: &a,
            hub: Some(hub(3, &hub_loc, false)),
            mapping: Some(&behind),
            want_hub: None,
            want_status: EventStatus::Pending,
            want_synced: 2,
            want_count: None,
            want_notice: false,
        },
        Row {
            what: "both changed, different fields: merged, pushed back",
            link: &caldav,
            remote: &b_remote,
            hub: Some(hub(3, &hub_loc, false)),
            mapping: Some(&behind),
            want_hub: Some(("B", Some(3))),
            want_status: EventStatus::Pending,
            want_synced: 2,
            want_count: Some(Count::Updated),
            want_notice: false,
        },
        Row {
            what: "both changed the title, prefer hub: hub kept, remote owed the hub's",
            link: &prefer_hub,
            remote: &b_remote,
            hub: Some(hub(3, &hub_sum, false)),
            mapping: Some(&behind),
            want_hub: None,
            want_status: EventStatus::Pending,
            want_synced: 2,
            want_count: None,
            want_notice: false,
        },
        Row {
            what: "both changed the title, manual: conflict kept aside, notified once",
            link: &manual,
            remote: &b_remote,
            hub: Some(hub(3, &hub_sum, false)),
            mapping: Some(&behind),
            want_hub: None,
            want_status: EventStatus::Conflict,
            want_synced: 2,
            want_count: None,
            want_notice: true,
        },
        Row {
            what: "a conflict already notified is not notified again",
            link: &manual,
            remote: &b_remote,
            hub: Some(hub(3, &hub_sum, false)),
            mapping: Some(&in_conflict),
            want_hub: None,
            want_status: EventStatus::Conflict,
            want_synced: 2,
            want_count: None,
            want_notice: false,
        },
        Row {
            what: "a read-only feed wins for its own events whatever the link's policy",
            link: &feed,
            remote: &b_remote,
            hub: Some(hub(3, &hub_sum, false)),
            mapping: Some(&behind),
            want_hub: Some(("B", Some(3))),
            want_status: EventStatus::Synced,
            want_synced: 4,
            want_count: Some(Count::Updated),
            want_notice: false,
        },
    ];
    for r in rows {
        let p = plan(r.link, r.remote, r.hub.as_ref(), r.mapping);
        let got_hub = p
            .hub
            .as_ref()
            .map(|w| (hub_summary(&p).unwrap_or_default(), w.expected));
        let want_hub = r.want_hub.map(|(s, e)| (s.to_string(), e));
        assert_eq!(got_hub, want_hub, "{}: hub write", r.what);
        assert_eq!(p.mapping.status, r.want_status, "{}: status", r.what);
        assert_eq!(
            p.mapping.synced_version, r.want_synced,
            "{}: synced",
            r.what
        );
        assert_eq!(p.count, r.want_count, "{}: count", r.what);
        assert_eq!(p.notice.is_some(), r.want_notice, "{}: notice", r.what);
        assert_eq!(
            p.mapping.etag.as_deref(),
            Some("\"new\""),
            "{}: the mapping records the version read",
            r.what
        );
        assert_eq!(p.mapping.updated_ms, 42, "{}", r.what);
    }
}

#[test]
fn manual_conflict_keeps_the_remote_version_aside() {
    let a = ics("A", "R1", "20270101T000000Z");
    let l = link(ProviderKind::Caldav, ConflictPolicy::Manual);
    let m = mapping(2, &a, EventStatus::Pending);
    let remote = ics("B", "R1", "20270103T000000Z");
    let p = plan(
        &l,
        &remote,
        Some(&hub(3, &ics("Hub", "R1", "20270104T000000Z"), false)),
        Some(&m),
    );
    assert_eq!(p.conflicts, vec!["master/SUMMARY".to_string()]);
    assert_eq!(
        p.mapping.conflict_remote.map(|c| series(&c).summary()),
        Some("B".into())
    );
    assert_eq!(
        p.mapping.base.map(|b| series(&b).summary()),
        Some("A".into()),
        "the base stays what was agreed"
    );
}

#[test]
fn unreadable_table() {
    let l = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    let href = RemoteId::from("/c/bad.ics");
    let fresh = plan_unreadable(&l, "href:/c/bad.ics", None, &href, None, "no UID", 7);
    assert_eq!(fresh.mapping.status, EventStatus::Error);
    assert_eq!(fresh.count, Some(Count::Error));
    assert!(fresh.notice.is_some(), "a new error is notified");
    let again = plan_unreadable(
        &l,
        "href:/c/bad.ics",
        Some(&fresh.mapping),
        &href,
        None,
        "no UID",
        8,
    );
    assert!(again.notice.is_none(), "the same error is notified once");
    let other = plan_unreadable(
        &l,
        "href:/c/bad.ics",
        Some(&fresh.mapping),
        &href,
        None,
        "bad DTSTART",
        9,
    );
    assert!(other.notice.is_some(), "a different reason is news");
    assert!(
        again.hub.is_none() && other.hub.is_none(),
        "the hub is never touched"
    );
}

#[test]
fn tombstones_come_back_only_for_edits() {
    let a = ics("A", "R1", "20270101T000000Z");
    let caldav = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    let agreed = mapping(3, &a, EventStatus::Synced);
    let gone = hub(4, &a, true);
    // Same content, new etag (a server rewrite): the deletion stands, still owed here.
    let p = plan(
        &caldav,
        &ics("A", "R1", "20270105T000000Z"),
        Some(&gone),
        Some(&agreed),
    );
    assert_eq!(p.hub, None, "no resurrection: {p:?}");
    assert_eq!(p.mapping.status, EventStatus::Pending);
    assert_eq!(
        p.mapping.etag.as_deref(),
        Some("\"new\""),
        "deleted with the new etag"
    );
    // An attendee's answer: not an edit either.
    let rsvp = a.replace(
        "LAST-MODIFIED",
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:guest@example.com\r\nLAST-MODIFIED",
    );
    let p = plan(&caldav, &rsvp, Some(&gone), Some(&agreed));
    assert_eq!(p.hub, None, "an RSVP does not resurrect: {p:?}");
    // A real edit: the edit wins over the deletion.
    let p = plan(
        &caldav,
        &ics("B", "R1", "20270105T000000Z"),
        Some(&gone),
        Some(&agreed),
    );
    assert_eq!(hub_summary(&p).as_deref(), Some("B"));
    assert_eq!(
        p.hub.map(|w| (w.event.version, w.event.deleted)),
        Some((5, false))
    );
}

#[test]
fn a_feed_may_change_only_its_own_events() {
    let a = ics("A", "R1", "20270101T000000Z");
    let feed = link(ProviderKind::Ics, ConflictPolicy::Merge);
    // The user's meeting, brought by another member; the feed carries its UID.
    let meeting = hub(3, &a, false);
    let p = plan(
        &feed,
        &ics("Spoofed", "R9", "20270109T000000Z"),
        Some(&meeting),
        None,
    );
    assert_eq!(p.hub, None, "never applied: {p:?}");
    assert!(p.mapping.foreign);
    assert_eq!(p.mapping.status, EventStatus::Error);
    assert!(p.notice.is_some(), "the application hears of it once");
    let again = plan(
        &feed,
        &ics("Spoofed 2", "R9", "20270110T000000Z"),
        Some(&meeting),
        Some(&p.mapping),
    );
    assert_eq!(again.hub, None);
    assert!(again.notice.is_none());
    assert_eq!(
        plan_removal(&feed, &p.mapping, Some(&meeting), 5),
        RemovalPlan::Forget,
        "nor deleted when the feed drops it"
    );
    // Its own event (last written by the feed) it may change.
    let own = HubEvent {
        origin_link: "l".into(),
        ..hub(3, &a, false)
    };
    let p = plan(&feed, &ics("B", "R1", "20270105T000000Z"), Some(&own), None);
    assert_eq!(hub_summary(&p).as_deref(), Some("B"));
}

#[test]
fn removal_table() {
    let a = ics("A", "R1", "20270101T000000Z");
    let caldav = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    let feed = link(ProviderKind::Ics, ConflictPolicy::Merge);
    let agreed = mapping(3, &a, EventStatus::Synced);
    let live = hub(3, &a, false);
    let edited = hub(4, &a, false);
    let gone = hub(4, &a, true);
    // Agreed: tombstone conditional on the version read.
    match plan_removal(&caldav, &agreed, Some(&live), 5) {
        RemovalPlan::Tombstone(w) => {
            assert!(w.event.deleted);
            assert_eq!((w.event.version, w.expected), (4, Some(3)));
            assert_eq!(w.event.origin_link, "l");
        }
        p => panic!("agreed removal: {p:?}"),
    }
    // Edited in the hub since: the edit wins, the member gets it again.
    match plan_removal(&caldav, &agreed, Some(&edited), 5) {
        RemovalPlan::Recreate(m) => {
            assert!(m.href.is_none() && m.etag.is_none());
            assert_eq!(m.status, EventStatus::Pending);
        }
        p => panic!("edit beats delete: {p:?}"),
    }
    // A read-only feed's removal of its own event applies even after a hub edit.
    assert!(matches!(
        plan_removal(&feed, &agreed, Some(&edited), 5),
        RemovalPlan::Tombstone(_)
    ));
    // Already deleted or never in the hub: forget the mapping.
    assert_eq!(
        plan_removal(&caldav, &agreed, Some(&gone), 5),
        RemovalPlan::Forget
    );
    assert_eq!(plan_removal(&caldav, &agreed, None, 5), RemovalPlan::Forget);
}

#[test]
fn brake_table() {
    let mut l = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    // (removed, mapped, deleted in the last 24 h, fires)
    for (removed, mapped, recent, fires) in [
        (4, 4, 0, false),      // fewer than brake_min (5)
        (5, 10, 0, false),     // exactly half is not more than half
        (6, 10, 0, true),      // more than half, at least 5
        (5, 5, 0, true),       // all of a small calendar
        (100, 1000, 0, false), // a tenth
        (4, 6, 4, true),       // a drip: 4 now after 4 earlier, 8 of 10
        (4, 10, 1, false),     // 5 of 11: not more than half
        (0, 2, 8, false),      // nothing removed now: nothing to hold back
    ] {
        assert_eq!(
            brake(&l, removed, mapped, recent).is_some(),
            fires,
            "{removed} of {mapped} after {recent}"
        );
    }
    let reason = brake(&l, 4, 6, 4).unwrap_or_default();
    assert!(
        reason.contains("8 of 10") && reason.contains("last 24 h"),
        "{reason}"
    );
    l.allow_mass_delete = true;
    assert!(
        brake(&l, 10, 10, 0).is_none(),
        "the override lets it through"
    );
    // The window: deletions older than 24 h no longer count.
    let now = BRAKE_WINDOW_MS * 3;
    let window = [(now - BRAKE_WINDOW_MS - 1, 7), (now - 1000, 2), (now, 1)];
    assert_eq!(recent_deletions(&window, now), 3);
}

#[test]
fn owes_push_table() {
    let a = ics("A", "R1", "20270101T000000Z");
    let caldav = link(ProviderKind::Caldav, ConflictPolicy::Merge);
    let feed = link(ProviderKind::Ics, ConflictPolicy::Merge);
    let live = hub(3, &a, false);
    let gone = hub(3, &a, true);
    let synced = mapping(3, &a, EventStatus::Synced);
    let behind = mapping(2, &a, EventStatus::Pending);
    let conflict = mapping(2, &a, EventStatus::Conflict);
    let failed = Mapping {
        status: EventStatus::Error,
        failed_version: Some(3),
        ..behind.clone()
    };
    let excluded = Mapping {
        excluded: true,
        href: None,
        ..synced.clone()
    };
    let no_href = Mapping {
        href: None,
        ..synced.clone()
    };
    // (link, hub event, mapping, owes)
    let rows: [(&Link, &HubEvent, Option<&Mapping>, bool); 9] = [
        (&caldav, &live, None, true),
        (&caldav, &gone, None, false),
        (&caldav, &live, Some(&synced), false),
        (&caldav, &live, Some(&behind), true),
        (&caldav, &live, Some(&conflict), false),
        (&caldav, &live, Some(&failed), false),
        (&caldav, &live, Some(&excluded), false),
        (&caldav, &gone, Some(&synced), true),
        (&feed, &live, None, false),
    ];
    for (i, (l, h, m, owes)) in rows.into_iter().enumerate() {
        assert_eq!(owes_push(l, [h], |_| m), owes, "row {i}");
    }
    assert!(owes_push(&caldav, [&live], |_| Some(&no_href)));
}
