//! Integration tests: two-way CalDAV sync between Radicale and Xandikos through the Lambda
//! handlers, state in moto (concurrent edits are in `caldav_conflicts`). Needs the local
//! stack (`make test` starts it).

use calsync::model::{EventStatus, LinkStatus};
use calsync::provider::Provider;
use calsync::queue::{QueueKind, SyncJob};
use calsync_e2e::demo::totals;
use calsync_e2e::fixtures::{
    self, client_edit, client_put, pair, simple_event, sync_link, uid_counts,
};
use calsync_e2e::local_ctx;

pub(crate) fn seed(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            simple_event(
                &format!("{tag}-{i}"),
                &format!("Event {i}"),
                (i % 27 + 1) as u32,
            )
        })
        .collect()
}

#[tokio::test]
async fn initial_sync_copies_everything_and_a_quiet_sync_costs_one_request_per_link() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "quiet", &seed("quiet", 4)).await.unwrap();
    let counts = uid_counts(&ctx, &p.xandikos).await.unwrap();
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|c| *c == 1));

    let (r0, x0) = (
        totals(&ctx, &p.r.link_id).await.unwrap(),
        totals(&ctx, &p.x.link_id).await.unwrap(),
    );
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    let (r1, x1) = (
        totals(&ctx, &p.r.link_id).await.unwrap(),
        totals(&ctx, &p.x.link_id).await.unwrap(),
    );
    assert_eq!(
        r1.requests - r0.requests,
        1,
        "radicale: one sync-collection REPORT"
    );
    assert_eq!(
        x1.requests - x0.requests,
        1,
        "xandikos: one sync-collection REPORT"
    );
    for (a, b) in [(r0, r1), (x0, x1)] {
        assert_eq!(
            (b.created, b.updated, b.deleted),
            (a.created, a.updated, a.deleted),
            "a quiet group makes no writes"
        );
    }
}

#[tokio::test]
async fn edits_and_deletes_flow_both_ways() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "flow", &seed("flow", 3)).await.unwrap();
    client_edit(&ctx, &p.xandikos, "flow-1", |t| {
        t.replace("SUMMARY:Event 1", "SUMMARY:Renamed on Xandikos")
    })
    .await
    .unwrap();
    fixtures::client_delete(&ctx, &p.radicale, "flow-2")
        .await
        .unwrap();
    client_put(
        &ctx,
        &p.xandikos,
        &simple_event("flow-new", "Born on Xandikos", 20),
    )
    .await
    .unwrap();
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    let r = fixtures::events_in(&ctx, &p.radicale).await.unwrap();
    let x = fixtures::events_in(&ctx, &p.xandikos).await.unwrap();
    let summaries = |v: &Vec<(String, calsync::ical::EventSeries)>| {
        v.iter()
            .map(|(_, s)| (s.uid.clone(), s.summary()))
            .collect::<Vec<_>>()
    };
    assert_eq!(summaries(&r), summaries(&x));
    assert_eq!(
        summaries(&r),
        vec![
            ("flow-0".into(), "Event 0".into()),
            ("flow-1".into(), "Renamed on Xandikos".into()),
            ("flow-new".into(), "Born on Xandikos".into())
        ]
    );
    let hub = ctx
        .store()
        .get_event(&p.group, "flow-2")
        .await
        .unwrap()
        .unwrap();
    assert!(hub.deleted, "the hub keeps a tombstone");
}

#[tokio::test]
async fn invalidated_sync_token_reconciles_with_zero_creates_and_deletes() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "token", &seed("token", 5)).await.unwrap();
    let store = ctx.store();
    let before = store.events_of_group(&p.group).await.unwrap();
    for link in [&p.r, &p.x] {
        let cursor = store.get_cursor(&link.link_id).await.unwrap().unwrap();
        assert!(cursor.as_str().starts_with("sync:"), "{cursor}");
        store
            .put_cursor(
                &link.link_id,
                &calsync::provider::Cursor::new(format!("{cursor}-invalidated")),
            )
            .await
            .unwrap();
    }
    let (r0, x0) = (
        totals(&ctx, &p.r.link_id).await.unwrap(),
        totals(&ctx, &p.x.link_id).await.unwrap(),
    );
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    let (r1, x1) = (
        totals(&ctx, &p.r.link_id).await.unwrap(),
        totals(&ctx, &p.x.link_id).await.unwrap(),
    );
    for (a, b) in [(r0, r1), (x0, x1)] {
        assert_eq!(
            (b.created, b.updated, b.deleted),
            (a.created, a.updated, a.deleted)
        );
        assert!(
            b.requests - a.requests >= 2,
            "rejected token, then a full enumeration"
        );
    }
    let after = store.events_of_group(&p.group).await.unwrap();
    assert_eq!(before, after, "hub untouched");
    for link in [&p.r, &p.x] {
        let cursor = store.get_cursor(&link.link_id).await.unwrap().unwrap();
        assert!(
            !cursor.as_str().ends_with("-invalidated"),
            "a fresh token was stored"
        );
    }
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 5);
}

#[tokio::test]
async fn redelivered_jobs_create_no_duplicates() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "redeliver", &[]).await.unwrap();
    client_put(&ctx, &p.radicale, &simple_event("redeliver-a", "A", 3))
        .await
        .unwrap();
    // The same pull and push jobs delivered three times each (SQS at-least-once).
    let pull = SyncJob::unique(&p.r.link_id, "manual");
    let push = SyncJob::unique(&p.x.link_id, "sync-back");
    for _ in 0..3 {
        calsync::handlers::run_job(&ctx, &pull, calsync::handlers::Direction::Pull)
            .await
            .unwrap();
        calsync::handlers::run_job(&ctx, &push, calsync::handlers::Direction::Push)
            .await
            .unwrap();
    }
    calsync_e2e::runner::drain(&ctx).await.unwrap();
    assert_eq!(
        uid_counts(&ctx, &p.xandikos)
            .await
            .unwrap()
            .get("redeliver-a"),
        Some(&1)
    );
    assert_eq!(totals(&ctx, &p.x.link_id).await.unwrap().created, 1);
}

#[tokio::test]
async fn crash_between_remote_write_and_mapping_write_creates_no_duplicate() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "crash", &[]).await.unwrap();
    client_put(&ctx, &p.radicale, &simple_event("crash-a", "A", 4))
        .await
        .unwrap();
    // Pull only: the hub has the event, Xandikos does not yet.
    let pull = SyncJob::unique(&p.r.link_id, "manual");
    calsync::handlers::run_job(&ctx, &pull, calsync::handlers::Direction::Pull)
        .await
        .unwrap();
    let hub = ctx
        .store()
        .get_event(&p.group, "crash-a")
        .await
        .unwrap()
        .unwrap();
    // The remote write of a push happens, then the worker dies before writing the mapping.
    let x = fixtures::client(&ctx, &p.xandikos);
    x.create("crash-a", &hub.ical).await.unwrap();
    assert!(ctx
        .store()
        .mappings_of_link(&p.x.link_id)
        .await
        .unwrap()
        .is_empty());
    // The retried push finds the object at the deterministic href and adopts it.
    calsync_e2e::runner::drain(&ctx).await.unwrap();
    let push = SyncJob::unique(&p.x.link_id, "retry");
    calsync::handlers::run_job(&ctx, &push, calsync::handlers::Direction::Push)
        .await
        .unwrap();
    assert_eq!(
        uid_counts(&ctx, &p.xandikos).await.unwrap().get("crash-a"),
        Some(&1)
    );
    let maps = ctx.store().mappings_of_link(&p.x.link_id).await.unwrap();
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].status, EventStatus::Synced);
    assert_eq!(maps[0].synced_version, hub.version);
}

#[tokio::test]
async fn deletion_brake_quarantines_a_mass_deletion() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "brake", &seed("brake", 8)).await.unwrap();
    for i in 0..6 {
        fixtures::client_delete(&ctx, &p.radicale, &format!("brake-{i}"))
            .await
            .unwrap();
    }
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    let link = ctx.store().get_link(&p.r.link_id).await.unwrap().unwrap();
    assert_eq!(link.status, LinkStatus::Quarantined);
    assert!(
        link.status_reason.as_deref().unwrap().contains("6 of 8"),
        "{:?}",
        link.status_reason
    );
    assert_eq!(
        uid_counts(&ctx, &p.xandikos).await.unwrap().len(),
        8,
        "nothing deleted elsewhere"
    );
    let live = ctx
        .store()
        .events_of_group(&p.group)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.deleted)
        .count();
    assert_eq!(live, 8);
    let runs = ctx.store().runs_of_link(&p.r.link_id).await.unwrap();
    assert_eq!(runs.last().unwrap().outcome, "quarantined");

    // An operator lets it through once.
    let mut l = link.clone();
    l.allow_mass_delete = true;
    ctx.store().put_link(&l).await.unwrap();
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 2);
    assert_eq!(
        ctx.store()
            .get_link(&p.r.link_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        LinkStatus::Ok
    );
}

#[tokio::test]
async fn ctag_fallback_detects_changes_and_costs_one_request_when_quiet() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "ctag", &[]).await.unwrap();
    let mut l = p.r.clone();
    l.force_ctag = true;
    ctx.store().put_link(&l).await.unwrap();
    ctx.store().delete_cursor(&l.link_id).await.unwrap();
    client_put(&ctx, &p.radicale, &simple_event("ctag-a", "A", 6))
        .await
        .unwrap();
    sync_link(&ctx, &l.link_id).await.unwrap();
    assert_eq!(
        uid_counts(&ctx, &p.xandikos).await.unwrap().get("ctag-a"),
        Some(&1)
    );
    assert!(ctx
        .store()
        .get_cursor(&l.link_id)
        .await
        .unwrap()
        .unwrap()
        .as_str()
        .starts_with("ctag:"));
    let before = totals(&ctx, &l.link_id).await.unwrap();
    sync_link(&ctx, &l.link_id).await.unwrap();
    let after = totals(&ctx, &l.link_id).await.unwrap();
    assert_eq!(
        after.requests - before.requests,
        1,
        "one PROPFIND for CS:getctag"
    );
}

#[tokio::test]
async fn a_busy_link_fails_its_message_for_retry() {
    let mut ctx = local_ctx().await;
    // The lease is held for a minute: past the second this job waits for it.
    ctx.config.lease_wait_secs = 1;
    let p = pair(&ctx, "lease", &[]).await.unwrap();
    fixtures::hold_lease(&ctx, &p.r.link_id, 60).await;
    let job = SyncJob::unique(&p.r.link_id, "manual");
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
        {"messageId": "m1", "body": serde_json::to_string(&job).unwrap(), "attributes": {"MessageGroupId": p.r.link_id}},
        {"messageId": "m2", "body": serde_json::to_string(&job).unwrap(), "attributes": {"MessageGroupId": p.r.link_id}},
        {"messageId": "m3", "body": "not json", "attributes": {"MessageGroupId": "other"}}
    ]}))
    .unwrap();
    let resp = calsync::handlers::handle_sqs(&ctx, event, calsync::handlers::Direction::Pull).await;
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["m1", "m2"],
        "busy link retried in order; a bad body is dropped, not retried"
    );
    ctx.store()
        .release_lease(&p.r.link_id, "someone-else")
        .await
        .unwrap();
    assert!(ctx
        .store()
        .acquire_lease(&p.r.link_id, "me", 60)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn queues_hold_jobs_per_link_group() {
    let ctx = local_ctx().await;
    let calls = ctx
        .queues()
        .send(
            QueueKind::SyncJobs,
            &(0..23)
                .map(|i| SyncJob::unique(&format!("nolink-{i}"), "manual"))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(calls, 3, "SendMessageBatch calls of 10");
    // Jobs for links that do not exist are dropped by the worker, not retried forever.
    let stats = calsync_e2e::runner::drain(&ctx).await.unwrap();
    assert_eq!(stats.failures, 0);
}

#[tokio::test]
async fn recurrence_exceptions_travel_as_one_series() {
    let ctx = local_ctx().await;
    let series = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:rec-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20270315T090000\r\nDTEND;TZID=Europe/Berlin:20270315T093000\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let p = pair(&ctx, "rec", &[series.to_string()]).await.unwrap();
    // On Xandikos: cancel the 2nd occurrence with EXDATE and move the 4th (across DST start).
    client_edit(&ctx, &p.xandikos, "rec-1", |t| {
        t.replace("RRULE:FREQ=WEEKLY;COUNT=4\r\n", "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20270322T090000\r\n")
            .replace(
                "END:VCALENDAR",
                "BEGIN:VEVENT\r\nUID:rec-1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20270405T090000\r\n\
DTSTART;TZID=Europe/Berlin:20270406T150000\r\nDTEND;TZID=Europe/Berlin:20270406T153000\r\nSUMMARY:Weekly (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR",
            )
    })
    .await
    .unwrap();
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    let events = fixtures::events_in(&ctx, &p.radicale).await.unwrap();
    assert_eq!(
        events.len(),
        1,
        "master and override stay one calendar object resource"
    );
    let from = chrono::DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let to = chrono::DateTime::parse_from_rfc3339("2028-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let (occ, _) = events[0].1.occurrences(from, to, 100);
    let got: Vec<(String, String)> = occ
        .iter()
        .map(|o| (o.start.to_rfc3339(), o.summary.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "2027-03-15T08:00:00+00:00".to_string(),
                "Weekly".to_string()
            ),
            (
                "2027-03-29T07:00:00+00:00".to_string(),
                "Weekly".to_string()
            ),
            (
                "2027-04-06T13:00:00+00:00".to_string(),
                "Weekly (moved)".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn sync_writes_carry_schedule_agent_client_and_stay_quiet() {
    let ctx = local_ctx().await;
    let meeting = simple_event("invite-1", "Meeting", 12).replace(
        "LOCATION:Room 1\r\n",
        "LOCATION:Room 1\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\nATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\n",
    );
    let p = pair(&ctx, "invite", &[meeting]).await.unwrap();
    let events = fixtures::events_in(&ctx, &p.xandikos).await.unwrap();
    let (href, _) = events.iter().find(|(_, s)| s.uid == "invite-1").unwrap();
    let url = reqwest::Url::parse(&p.xandikos)
        .unwrap()
        .join(href)
        .unwrap();
    let stored = fixtures::raw_get(&ctx, url.as_str()).await.unwrap();
    let unfolded = stored.replace("\r\n ", "");
    assert!(
        unfolded.contains("ORGANIZER;CN=Ann;SCHEDULE-AGENT=CLIENT:")
            || unfolded.contains("SCHEDULE-AGENT=CLIENT;CN=Ann"),
        "{stored}"
    );
    assert_eq!(
        unfolded.matches("SCHEDULE-AGENT=CLIENT").count(),
        2,
        "{stored}"
    );
    let hub = ctx
        .store()
        .get_event(&p.group, "invite-1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !hub.ical.contains("SCHEDULE-AGENT"),
        "the mark stays out of the hub"
    );
    let (r0, x0) = (
        totals(&ctx, &p.r.link_id).await.unwrap(),
        totals(&ctx, &p.x.link_id).await.unwrap(),
    );
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    let (r1, x1) = (
        totals(&ctx, &p.r.link_id).await.unwrap(),
        totals(&ctx, &p.x.link_id).await.unwrap(),
    );
    assert_eq!(
        (r1.updated, x1.updated, r1.created, x1.created),
        (r0.updated, x0.updated, r0.created, x0.created)
    );
}

#[tokio::test]
async fn data_one_server_rejects_is_marked_error_without_a_retry_loop() {
    let ctx = local_ctx().await;
    let odd = fixtures::xandikos_rejects();
    let p = pair(&ctx, "reject", &[odd, simple_event("reject-ok", "Fine", 3)])
        .await
        .unwrap();
    let counts = uid_counts(&ctx, &p.xandikos).await.unwrap();
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        vec!["reject-ok"],
        "the rest of the calendar synced"
    );
    let maps = ctx.store().mappings_of_link(&p.x.link_id).await.unwrap();
    let bad = maps
        .iter()
        .find(|m| m.uid == "odd-tz")
        .expect("status recorded");
    assert_eq!(bad.status, EventStatus::Error);
    assert!(
        bad.error
            .as_deref()
            .unwrap()
            .contains("valid-calendar-data"),
        "{:?}",
        bad.error
    );
    // Quiet afterwards: the error is not retried in a loop.
    let before = totals(&ctx, &p.x.link_id).await.unwrap();
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    let after = totals(&ctx, &p.x.link_id).await.unwrap();
    assert_eq!(after.requests - before.requests, 1);
    // Once the event changes (edited on Radicale, its zone repaired), it is written again.
    // (A VTIMEZONE change alone is not an edit: servers rewrite VTIMEZONEs freely.)
    client_edit(&ctx, &p.radicale, "odd-tz", |t| {
        t.replace("TZOFFSETFROM:+5328", "TZOFFSETFROM:+0100")
            .replace("SUMMARY:Odd zone", "SUMMARY:Repaired zone")
    })
    .await
    .unwrap();
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 2);
    let maps = ctx.store().mappings_of_link(&p.x.link_id).await.unwrap();
    assert_eq!(
        maps.iter().find(|m| m.uid == "odd-tz").unwrap().status,
        EventStatus::Synced
    );
}

/// The same calendar linked twice into one group (a second connect of the same address):
/// both links map its objects to the same hub events by UID, so nothing is copied into it
/// again, and edits, new events and deletions still reach the other member once, with no
/// failed run.
#[tokio::test]
async fn the_same_calendar_linked_twice_copies_nothing_twice() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "twice", &seed("twice", 3)).await.unwrap();
    let again = fixtures::caldav_link(&ctx, &p.group, p.user, &p.xandikos, "xandikos again")
        .await
        .unwrap();
    let first = fixtures::sync_user(&ctx, p.user).await.unwrap();
    assert_eq!(first.failures, 0, "{first:?}");
    let once = |n: usize, prefix: &str| {
        (0..n)
            .map(|i| (format!("{prefix}-{i}"), 1))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        uid_counts(&ctx, &p.xandikos).await.unwrap(),
        once(3, "twice")
    );
    assert_eq!(
        uid_counts(&ctx, &p.radicale).await.unwrap(),
        once(3, "twice")
    );

    client_edit(&ctx, &p.radicale, "twice-0", |t| {
        t.replace("SUMMARY:Event 0", "SUMMARY:Renamed on Radicale")
    })
    .await
    .unwrap();
    client_put(
        &ctx,
        &p.xandikos,
        &simple_event("twice-3", "Born on Xandikos", 21),
    )
    .await
    .unwrap();
    fixtures::client_delete(&ctx, &p.radicale, "twice-1")
        .await
        .unwrap();
    let later = fixtures::sync_user(&ctx, p.user).await.unwrap();
    assert_eq!(later.failures, 0, "{later:?}");
    let summaries = |v: Vec<(String, calsync::ical::EventSeries)>| {
        v.into_iter()
            .map(|(_, s)| (s.uid.clone(), s.summary()))
            .collect::<Vec<_>>()
    };
    let want = vec![
        ("twice-0".to_string(), "Renamed on Radicale".to_string()),
        ("twice-2".to_string(), "Event 2".to_string()),
        ("twice-3".to_string(), "Born on Xandikos".to_string()),
    ];
    assert_eq!(
        summaries(fixtures::events_in(&ctx, &p.xandikos).await.unwrap()),
        want
    );
    assert_eq!(
        summaries(fixtures::events_in(&ctx, &p.radicale).await.unwrap()),
        want
    );
    for link in [&p.r, &p.x, &again] {
        let l = ctx.store().get_link(&link.link_id).await.unwrap().unwrap();
        assert_eq!(l.status, LinkStatus::Ok, "{l:?}");
    }
}
