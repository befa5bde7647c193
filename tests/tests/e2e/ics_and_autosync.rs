//! Integration tests: ICS subscriptions (conditional GET, hashes, malformed events) and the
//! AutoSync fan-out. Needs the local stack (`make test` starts it).

use calsync::model::{EventStatus, LinkStatus};
use calsync_e2e::demo::totals;
use calsync_e2e::feed::FeedServer;
use calsync_e2e::fixtures::{self, pair, sync_link, uid_counts};
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

fn feed(events: &[(&str, &str)], extra: &str) -> String {
    let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//feed//EN\r\n");
    for (i, (uid, summary)) in events.iter().enumerate() {
        s.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:202703{:02}\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n",
            i + 1
        ));
    }
    s.push_str(extra);
    s.push_str("END:VCALENDAR\r\n");
    s
}

#[tokio::test]
async fn feed_events_reach_members_and_a_304_costs_one_request() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "feed", &[]).await.unwrap();
    let server = FeedServer::start(&feed(&[("f1", "One"), ("f2", "Two")], ""), true)
        .await
        .unwrap();
    let link = fixtures::ics_link(&ctx, &p.group, p.user, &server.url, "feed")
        .await
        .unwrap();
    sync_link(&ctx, &link.link_id).await.unwrap();
    for url in [&p.radicale, &p.xandikos] {
        let counts = uid_counts(&ctx, url).await.unwrap();
        assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), vec!["f1", "f2"]);
    }
    let served = server.requests();
    let before = ctx.store().events_of_group(&p.group).await.unwrap();
    let t0 = totals(&ctx, &link.link_id).await.unwrap();
    sync_link(&ctx, &link.link_id).await.unwrap();
    let t1 = totals(&ctx, &link.link_id).await.unwrap();
    assert_eq!(server.requests() - served, 1, "one conditional GET");
    assert_eq!(t1.requests - t0.requests, 1);
    assert_eq!(
        ctx.store().events_of_group(&p.group).await.unwrap(),
        before,
        "nothing changed"
    );

    // The next feed change wins, and UIDs missing from the snapshot are deleted everywhere.
    server.set_body(&feed(&[("f1", "One, renamed by the feed")], ""));
    sync_link(&ctx, &link.link_id).await.unwrap();
    for url in [&p.radicale, &p.xandikos] {
        let events = fixtures::events_in(&ctx, url).await.unwrap();
        let got: Vec<(String, String)> = events
            .iter()
            .map(|(_, s)| (s.uid.clone(), s.summary()))
            .collect();
        assert_eq!(
            got,
            vec![("f1".to_string(), "One, renamed by the feed".to_string())]
        );
    }
}

#[tokio::test]
async fn feed_without_validators_is_compared_by_hash() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "hash", &[]).await.unwrap();
    let server = FeedServer::start(&feed(&[("h1", "One")], ""), false)
        .await
        .unwrap();
    let link = fixtures::ics_link(&ctx, &p.group, p.user, &server.url, "feed")
        .await
        .unwrap();
    sync_link(&ctx, &link.link_id).await.unwrap();
    let before = ctx.store().events_of_group(&p.group).await.unwrap();
    let maps_before = ctx.store().mappings_of_link(&p.x.link_id).await.unwrap();
    sync_link(&ctx, &link.link_id).await.unwrap();
    assert_eq!(ctx.store().events_of_group(&p.group).await.unwrap(), before);
    assert_eq!(
        ctx.store().mappings_of_link(&p.x.link_id).await.unwrap(),
        maps_before
    );
}

#[tokio::test]
async fn a_malformed_event_is_marked_error_and_the_rest_syncs() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "malformed", &[]).await.unwrap();
    let bad = "BEGIN:VEVENT\r\nUID:bad-one\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:not-a-date\r\nSUMMARY:Broken\r\nEND:VEVENT\r\n";
    let server = FeedServer::start(
        &feed(
            &[("ok1", "Fine"), ("ok2", "Also fine"), ("ok3", "Fine too")],
            bad,
        ),
        true,
    )
    .await
    .unwrap();
    let link = fixtures::ics_link(&ctx, &p.group, p.user, &server.url, "feed")
        .await
        .unwrap();
    sync_link(&ctx, &link.link_id).await.unwrap();
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 3);
    let maps = ctx.store().mappings_of_link(&link.link_id).await.unwrap();
    let bad = maps
        .iter()
        .find(|m| m.uid == "bad-one")
        .expect("the bad event has a status");
    assert_eq!(bad.status, EventStatus::Error);
    assert!(
        bad.error.as_deref().unwrap().contains("bad-one"),
        "{:?}",
        bad.error
    );
    let runs = ctx.store().runs_of_link(&link.link_id).await.unwrap();
    assert_eq!(runs.last().unwrap().errors, 1);
    assert_eq!(
        ctx.store()
            .get_link(&link.link_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        LinkStatus::Ok
    );
    // The unreadable event is not taken for a deletion on the next change of the feed.
    server.set_body(&feed(
        &[("ok1", "Fine"), ("ok2", "Also fine"), ("ok3", "Changed")],
        "BEGIN:VEVENT\r\nUID:bad-one\r\nDTSTART:still-bad\r\nEND:VEVENT\r\n",
    ));
    sync_link(&ctx, &link.link_id).await.unwrap();
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 3);
}

#[tokio::test]
async fn autosync_api_queues_a_users_links_and_rejects_bad_payloads() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "api", &[]).await.unwrap();
    let ok = calsync::handlers::autosync(
        &ctx,
        json!({"field": "AutoSync", "arguments": {"userId": p.user, "calendarType": 3, "silentNotification": 1}}),
    )
    .await;
    assert_eq!(ok["Status"], "OK");
    assert_eq!(ok["Statuscode"], "SU001");
    assert!(ok["Message"].as_str().unwrap().starts_with("2 "), "{ok}");
    let none = calsync::handlers::autosync(
        &ctx,
        json!({"field": "AutoSync", "arguments": {"userId": p.user, "calendarType": 1}}),
    )
    .await;
    assert!(
        none["Message"].as_str().unwrap().starts_with("0 "),
        "{none}"
    );
    // API Gateway delivers the call as a JSON string body.
    let gw = calsync::handlers::autosync(&ctx, json!({"body": json!({"field": "AutoSync", "arguments": {"userId": p.user.to_string()}}).to_string()})).await;
    assert_eq!(gw["Statuscode"], "SU001", "{gw}");
    for bad in [
        json!({}),
        json!({"field": "Other"}),
        json!({"field": "AutoSync", "arguments": {}}),
        json!({"field": "AutoSync", "arguments": {"userId": "x"}}),
        json!({"field": "AutoSync", "arguments": {"userId": 1, "calendarType": "y"}}),
        json!(42),
    ] {
        let a = calsync::handlers::autosync(&ctx, bad.clone()).await;
        assert_eq!(a["Status"], "Error", "{bad} -> {a}");
        assert_eq!(a["Statuscode"], "ER001");
        assert!(!a["Message"].as_str().unwrap().is_empty());
    }
    runner::drain(&ctx).await.unwrap();
}

#[tokio::test]
async fn schedule_queues_only_due_links_and_frequency_sets_the_next_sync() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "sched", &[]).await.unwrap();
    let store = ctx.store();
    let now = chrono::Utc::now().timestamp();
    // After the pair's first sync, next_sync_at = now + frequency (3600 s by default).
    let r = store.get_link(&p.r.link_id).await.unwrap().unwrap();
    assert!(
        (r.next_sync_at - now - 3600).abs() < 120,
        "next sync in about an hour: {}",
        r.next_sync_at - now
    );
    let x_before = store
        .get_link(&p.x.link_id)
        .await
        .unwrap()
        .unwrap()
        .next_sync_at;
    let mut due = r.clone();
    due.next_sync_at = now - 1;
    due.frequency_secs = 900;
    store.put_link(&due).await.unwrap();
    let answer = runner::schedule_tick(&ctx).await;
    assert_eq!(answer["Status"], "OK", "{answer}");
    let l = store.get_link(&p.r.link_id).await.unwrap().unwrap();
    assert!(
        (l.next_sync_at - now - 900).abs() < 120,
        "15-minute link moves 15 minutes ahead"
    );
    let x = store.get_link(&p.x.link_id).await.unwrap().unwrap();
    assert_eq!(x.next_sync_at, x_before, "not due, not touched");
    let runs_before = store.runs_of_link(&p.r.link_id).await.unwrap().len();
    runner::drain(&ctx).await.unwrap();
    let runs = store.runs_of_link(&p.r.link_id).await.unwrap();
    assert!(runs.len() > runs_before);
    assert!(runs.iter().any(|r| r.trigger == "schedule"));
}

/// The schedule reads the `due-index` (one Query per shard), so a link item written before
/// the index, without its shard, is not seen by a tick until the token refresher's pass
/// gives it one.
#[tokio::test]
async fn a_link_from_before_the_due_index_is_scheduled_after_the_refresher_pass() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "shard", &[]).await.unwrap();
    let store = ctx.store();
    let now = chrono::Utc::now().timestamp();
    let mut old = store.get_link(&p.r.link_id).await.unwrap().unwrap();
    assert_eq!(
        old.due_shard,
        Some(calsync::model::Link::due_shard_of(&old.link_id))
    );
    old.due_shard = None;
    old.next_sync_at = now - 1;
    store.put_link(&old).await.unwrap();
    runner::schedule_tick(&ctx).await;
    let l = store.get_link(&p.r.link_id).await.unwrap().unwrap();
    assert_eq!(l.next_sync_at, now - 1, "not in the index, not queued");
    // A stack from before the indexes: the refresher's backfill has not run.
    store
        .set_backfill_done(calsync::refresher::backfill::NAME, false)
        .await
        .unwrap();
    let report = calsync::refresher::run(&ctx).await.unwrap();
    assert!(report.due_shards_set >= 1, "{report:?}");
    runner::schedule_tick(&ctx).await;
    let l = store.get_link(&p.r.link_id).await.unwrap().unwrap();
    assert!(l.next_sync_at > now, "queued once in the index");
    assert!(l.due_shard.is_some());
    runner::drain(&ctx).await.unwrap();
}
