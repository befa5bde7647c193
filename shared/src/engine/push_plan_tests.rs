//! Table tests of the push plan and of how write outcomes settle, with no server.

use super::*;
use crate::model::ProviderKind;
use crate::provider::{Etag, RemoteId};

const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:UIDX\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\nSUMMARY:S\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

fn hub(uid: &str, version: i64, deleted: bool) -> HubEvent {
    HubEvent {
        group_id: "g".into(),
        uid: uid.into(),
        version,
        ical: ICS.replace("UIDX", uid),
        deleted,
        updated_ms: 1,
        origin_link: "o".into(),
        made_on: None,
    }
}

fn mapped(uid: &str, synced: i64, status: EventStatus) -> Mapping {
    Mapping {
        href: Some(RemoteId::from(format!("/c/{uid}.ics"))),
        etag: Some(Etag::from("\"1\"")),
        synced_version: synced,
        status,
        ..Mapping::new("l", uid)
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

#[test]
fn plan_table() {
    let link = Link::new("l", "g", 1, ProviderKind::Caldav, "https://example.com/c/");
    let unwritten = Mapping::new("l", "f");
    let failed = Mapping {
        failed_version: Some(3),
        ..mapped("e", 2, EventStatus::Error)
    };
    // (what, hub event, mapping, planned write or None, forgotten)
    type Row = (
        &'static str,
        HubEvent,
        Option<Mapping>,
        Option<Planned>,
        bool,
    );
    let rows: Vec<Row> = vec![
        (
            "new event: create",
            hub("a", 1, false),
            None,
            Some(Planned::Create),
            false,
        ),
        (
            "mapped without href: create",
            hub("f", 2, false),
            Some(unwritten.clone()),
            Some(Planned::Create),
            false,
        ),
        (
            "newer hub version: update",
            hub("b", 3, false),
            Some(mapped("b", 2, EventStatus::Synced)),
            Some(Planned::Update),
            false,
        ),
        (
            "up to date: nothing",
            hub("c", 3, false),
            Some(mapped("c", 3, EventStatus::Synced)),
            None,
            false,
        ),
        (
            "deleted and on the member: delete",
            hub("d", 4, true),
            Some(mapped("d", 3, EventStatus::Synced)),
            Some(Planned::Delete),
            false,
        ),
        (
            "deleted, never written: forget",
            hub("f", 4, true),
            Some(unwritten),
            None,
            true,
        ),
        (
            "deleted, never mapped: nothing",
            hub("g", 4, true),
            None,
            None,
            false,
        ),
        (
            "in conflict: left for the user",
            hub("h", 3, false),
            Some(mapped("h", 2, EventStatus::Conflict)),
            None,
            false,
        ),
        (
            "rejected at this version: not retried",
            hub("e", 3, false),
            Some(failed.clone()),
            None,
            false,
        ),
        (
            "rejected at an older version: retried",
            hub("e", 4, false),
            Some(failed),
            Some(Planned::Update),
            false,
        ),
    ];
    for (what, ev, m, want, forgotten) in rows {
        let maps = m.map(|m| (m.uid.clone(), m)).into_iter().collect();
        let uid = ev.uid.clone();
        let plan = plan_push(&link, maps, vec![ev], now());
        let got = plan.writes.first().map(|(_, _, k)| *k);
        assert_eq!(got, want, "{what}");
        assert_eq!(plan.forget == vec![uid], forgotten, "{what}: forget");
    }
    let feed = Link::new("l", "g", 1, ProviderKind::Ics, "https://example.com/f.ics");
    assert_eq!(
        plan_push(&feed, HashMap::new(), vec![hub("a", 1, false)], now()),
        PushPlan::default(),
        "a read-only member gets no writes"
    );
}

#[test]
fn writes_come_in_uid_order() {
    let link = Link::new("l", "g", 1, ProviderKind::Caldav, "https://example.com/c/");
    let events = vec![hub("z", 1, false), hub("a", 1, false), hub("m", 1, false)];
    let plan = plan_push(&link, HashMap::new(), events, now());
    let uids: Vec<&str> = plan.writes.iter().map(|(e, _, _)| e.uid.as_str()).collect();
    assert_eq!(uids, ["a", "m", "z"]);
}

/// A member's transforms rewrite and leave out other members' events, never its own.
#[test]
fn transforms_spare_the_members_own_events() {
    let mut link = Link::new("l", "g", 1, ProviderKind::Caldav, "https://example.com/c/");
    link.transforms.busy_only = true;
    link.transforms.window = Some(transform::Window {
        past_days: 1,
        future_days: 1,
    });
    // Both events (2027-01-01) are out of the window around 2026-06-01, both owed a write.
    let late = now() - chrono::Duration::days(200);
    let own = Mapping {
        home: true,
        ..mapped("own", 1, EventStatus::Synced)
    };
    let other = mapped("other", 1, EventStatus::Synced);
    let maps = HashMap::from([("own".to_string(), own), ("other".to_string(), other)]);
    let plan = plan_push(
        &link,
        maps,
        vec![hub("own", 2, false), hub("other", 2, false)],
        late,
    );
    let writes: Vec<(&str, Planned, String)> = plan
        .writes
        .iter()
        .map(|(e, _, k)| (e.uid.as_str(), *k, e.ical.clone()))
        .collect();
    assert_eq!(
        writes.iter().map(|(u, k, _)| (*u, *k)).collect::<Vec<_>>(),
        [("other", Planned::Delete), ("own", Planned::Update)],
        "the window takes the other member's event off, the member's own is written"
    );
    assert!(
        writes[1].2.contains("SUMMARY:S"),
        "its own title: {}",
        writes[1].2
    );
    // Inside the window, the other member's event is written busy.
    let maps = HashMap::from([("other".to_string(), mapped("other", 1, EventStatus::Synced))]);
    let plan = plan_push(&link, maps, vec![hub("other", 2, false)], now());
    assert!(
        plan.writes[0].0.ical.contains("SUMMARY:Busy"),
        "{:?}",
        plan.writes
    );
}

fn written(href: &str) -> Result<Option<WriteResult>, ProviderError> {
    Ok(Some(WriteResult {
        href: RemoteId::from(href),
        etag: Some(Etag::from("\"2\"")),
    }))
}

#[test]
fn settle_table() {
    let ev = hub("b", 3, false);
    let gone = hub("b", 4, true);
    let m = mapped("b", 2, EventStatus::Synced);
    let rejected = || ProviderError::Rejected {
        url: "/c/b.ics".into(),
        status: 403,
        detail: "no".into(),
    };
    let precondition = || ProviderError::PreconditionFailed("/c/b.ics".into());

    let (s, t) = settle(Planned::Update, &ev, m.clone(), written("/c/b.ics"), 9);
    assert_eq!(t, Some(Tally::Updated));
    let Settled::Record(r) = s else {
        panic!("update: {s:?}")
    };
    assert_eq!((r.synced_version, r.status), (3, EventStatus::Synced));
    assert_eq!(
        r.etag.as_deref(),
        Some("\"2\""),
        "the write receipt is the new etag"
    );
    assert_eq!(r.base.as_deref(), Some(ev.ical.as_str()));

    let (s, t) = settle(
        Planned::Create,
        &ev,
        Mapping::new("l", "b"),
        written("/c/b.ics"),
        9,
    );
    assert_eq!(t, Some(Tally::Created));
    assert!(matches!(s, Settled::Record(r) if r.href.as_deref() == Some("/c/b.ics")));

    let (s, t) = settle(Planned::Delete, &gone, m.clone(), Ok(None), 9);
    assert_eq!(t, Some(Tally::Deleted));
    assert!(matches!(s, Settled::Forget(f) if f.uid == "b"));

    let (s, _) = settle(Planned::Delete, &ev, m.clone(), Ok(None), 9);
    assert!(
        matches!(&s, Settled::Record(r) if r.excluded && r.href.is_none() && r.synced_version == 3),
        "a live event deleted by the transforms is recorded as left out: {s:?}"
    );

    // 412 first: re-read; the same 412 again with nothing pulled between: error.
    let (s, t) = settle(Planned::Update, &ev, m.clone(), Err(precondition()), 9);
    assert_eq!(t, None);
    let Settled::Reread(r) = s else {
        panic!("412: {s:?}")
    };
    assert_eq!(r.error.as_deref(), Some(PRECONDITION_NOTE));
    let (s, _) = settle(Planned::Update, &ev, r, Err(precondition()), 9);
    assert!(matches!(s, Settled::Failed { ref mapping, .. } if mapping.failed_version == Some(3)));

    // 404 on an update is a precondition failure too; on a delete it is an error.
    let nf = || ProviderError::NotFound("/c/b.ics".into());
    assert!(matches!(
        settle(Planned::Update, &ev, m.clone(), Err(nf()), 9).0,
        Settled::Reread(_)
    ));

    // A data rejection: error, notified once per version.
    let (s, _) = settle(Planned::Update, &ev, m.clone(), Err(rejected()), 9);
    let Settled::Failed { mapping, notice } = s else {
        panic!()
    };
    assert!(notice.is_some());
    let (s, _) = settle(Planned::Update, &ev, mapping, Err(rejected()), 9);
    assert!(matches!(s, Settled::Failed { notice: None, .. }));

    // A failure of the whole calendar stops the run.
    let (s, _) = settle(
        Planned::Update,
        &ev,
        m.clone(),
        Err(ProviderError::Unauthorized("token".into())),
        9,
    );
    assert!(matches!(s, Settled::Stop(_)));
    let (s, _) = settle(Planned::Create, &ev, m, Ok(None), 9);
    assert!(
        matches!(s, Settled::Failed { .. }),
        "a write without a location: {s:?}"
    );
}
