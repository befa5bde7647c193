//! Faults that once lost data or stranded events (issue 13, item 2): errors are classified
//! once, by provider — a transport failure or a body cut short is tried again and never read
//! as "empty"; rate limits and quota delay a write but never mark the event `error`; a
//! throttled REPORT keeps its sync-token. Needs the local stack (`make test` starts it).

use calsync::model::EventStatus;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::fixtures::{
    self, pair, radicale_base, simple_event, sync_link, sync_user, unique, Server,
};
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::local_ctx;
use calsync_e2e::quirks::{QuirkProxy, Quirks};
use serde_json::json;

/// A Radicale calendar linked through the fault proxy and a Xandikos calendar linked
/// directly, in one group; both synced once.
async fn proxied_pair(
    tag: &str,
    proxy: &QuirkProxy,
) -> (
    i64,
    calsync::model::Link,
    calsync::model::Link,
    String,
    String,
) {
    let ctx = local_ctx().await;
    let name = unique(tag);
    let radicale = fixtures::new_calendar(&ctx, Server::Radicale, &name)
        .await
        .unwrap();
    let xandikos = fixtures::new_calendar(&ctx, Server::Xandikos, &name)
        .await
        .unwrap();
    fixtures::client_put(
        &ctx,
        &radicale,
        &simple_event(&format!("{tag}-1"), "One", 3),
    )
    .await
    .unwrap();
    let group = unique("group");
    let user = 2_000_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64;
    let proxied = radicale.replace(&radicale_base(), &proxy.url);
    let r = fixtures::caldav_link(&ctx, &group, user, &proxied, "radicale-via-proxy")
        .await
        .unwrap();
    let x = fixtures::caldav_link(&ctx, &group, user, &xandikos, "xandikos")
        .await
        .unwrap();
    sync_user(&ctx, user).await.unwrap();
    (user, r, x, radicale, xandikos)
}

#[tokio::test]
async fn a_throttled_report_keeps_its_sync_token() {
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(&radicale_base(), Quirks::default())
        .await
        .unwrap();
    let (_, r, _, radicale, xandikos) = proxied_pair("throttled-report", &proxy).await;
    let before = ctx.store().get_cursor(&r.link_id).await.unwrap();
    assert!(before
        .as_ref()
        .is_some_and(|c| c.as_str().starts_with("sync:")));
    fixtures::client_put(
        &ctx,
        &radicale,
        &simple_event("throttled-report-2", "Two", 4),
    )
    .await
    .unwrap();
    // Two 429s (with Retry-After: 0) on the tokened REPORT: the same REPORT again, within
    // the run, not a full re-enumeration, and never ctag mode.
    proxy.fail_next("REPORT", 429, 2);
    let stats = sync_link(&ctx, &r.link_id).await.unwrap();
    assert_eq!(stats.failures, 0, "absorbed by the backoff: {stats:?}");
    let after = ctx.store().get_cursor(&r.link_id).await.unwrap();
    assert!(
        after
            .as_ref()
            .is_some_and(|c| c.as_str().starts_with("sync:")),
        "still sync-collection: {after:?}"
    );
    assert_ne!(before, after, "the new token was saved");
    let uids = fixtures::uid_counts(&ctx, &xandikos).await.unwrap();
    assert_eq!(uids.get("throttled-report-2"), Some(&1), "{uids:?}");
    let runs = ctx.store().runs_of_link(&r.link_id).await.unwrap();
    let last = runs.last().unwrap();
    assert_eq!(
        (last.created, last.deleted),
        (1, 0),
        "an incremental pull, not a full re-read: {last:?}"
    );
}

/// The event `uid` is in the calendar at `url` once, and its mapping on `link_id` is
/// `synced` and was never marked error.
async fn written_once_and_synced(ctx: &calsync::config::Ctx, url: &str, link_id: &str, uid: &str) {
    let uids = fixtures::uid_counts(ctx, url).await.unwrap();
    assert_eq!(uids.get(uid), Some(&1), "{uids:?}");
    let m = ctx
        .store()
        .mappings_of_link(link_id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.uid == uid)
        .expect("mapped");
    assert_eq!(m.status, EventStatus::Synced, "{m:?}");
    assert_eq!(m.failed_version, None, "never marked error: {m:?}");
}

#[tokio::test]
async fn a_put_throttled_past_its_retries_is_written_by_a_later_run() {
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(&radicale_base(), Quirks::default())
        .await
        .unwrap();
    let (_, r, x, radicale, xandikos) = proxied_pair("throttled-put", &proxy).await;
    fixtures::client_put(&ctx, &xandikos, &simple_event("throttled-put-2", "Two", 5))
        .await
        .unwrap();
    // More 429s than one run retries (1 + 7): the push job fails, the event stays pending,
    // the redelivered job writes it.
    proxy.fail_next("PUT", 429, 8);
    let stats = sync_link(&ctx, &x.link_id).await.unwrap();
    assert!(
        stats.failures >= 1,
        "the throttled push failed once: {stats:?}"
    );
    written_once_and_synced(&ctx, &radicale, &r.link_id, "throttled-put-2").await;
}

#[tokio::test]
async fn a_refused_create_with_nothing_there_is_tried_again_not_marked_error() {
    // A create refused with 412 (If-None-Match: *) while nothing is at the href — the object
    // was deleted right after, or the refusal was spurious (a soak finding): the create is
    // tried once more, and the event reaches the member.
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(&radicale_base(), Quirks::default())
        .await
        .unwrap();
    let (_, r, x, radicale, xandikos) = proxied_pair("refused-create", &proxy).await;
    fixtures::client_put(&ctx, &xandikos, &simple_event("refused-create-2", "Two", 5))
        .await
        .unwrap();
    proxy.fail_next("PUT", 412, 1);
    sync_link(&ctx, &x.link_id).await.unwrap();
    written_once_and_synced(&ctx, &radicale, &r.link_id, "refused-create-2").await;
}

#[tokio::test]
async fn google_quota_exceeded_delays_a_write_but_never_marks_it_error() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let seed = vec![simple_event("quota-1@test", "Q", 6)];
    let p = pair(&lg.ctx, "gquota", &seed).await.expect("pair");
    let g = lg
        .connect(&p.group, p.user, "quota@example.com", "google")
        .await
        .expect("connect");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    fixtures::client_put(&ctx, &p.radicale, &simple_event("quota-2@test", "Q2", 7))
        .await
        .unwrap();
    for reason in ["quotaExceeded", "dailyLimitExceeded"] {
        lg.emu.fail_next_reason(403, reason, 2);
    }
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let api = lg.user_api(&g).await.expect("user api");
    let summaries: Vec<String> = api
        .list()
        .await
        .expect("list")
        .iter()
        .filter_map(|e| e["summary"].as_str().map(str::to_string))
        .collect();
    assert!(summaries.contains(&"Q2".to_string()), "{summaries:?}");
    let maps = lg.ctx.store().mappings_of_link(&g.link_id).await.unwrap();
    assert!(
        maps.iter().all(|m| m.status == EventStatus::Synced),
        "{maps:?}"
    );
}

const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\nBEGIN:VEVENT\r\nUID:trunc-series@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20270104T090000Z\r\nDTEND:20270104T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

#[tokio::test]
async fn a_google_body_cut_short_deletes_nothing() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let p = pair(&lg.ctx, "gtrunc", &[WEEKLY.to_string()])
        .await
        .expect("pair");
    let g = lg
        .connect(&p.group, p.user, "trunc@example.com", "google")
        .await
        .expect("connect");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let api = lg.user_api(&g).await.expect("user api");
    let master = api
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|e| e.get("recurrence").is_some())
        .expect("the series in Google");
    let id = master["id"].as_str().expect("id").to_string();
    api.patch(&id, json!({"summary": "Weekly renamed"}))
        .await
        .expect("patch");
    // The read of the changed series (events.list by iCalUID) arrives cut in half, twice.
    lg.emu.truncate_next("iCalUID=", 2);
    sync_user(&lg.ctx, p.user).await.expect("sync");
    for url in [&p.radicale, &p.xandikos] {
        let events = fixtures::events_in(&ctx, url).await.expect("events");
        let summaries: Vec<String> = events.iter().map(|(_, s)| s.summary()).collect();
        assert_eq!(summaries, ["Weekly renamed"], "{url}");
    }
    let hub = lg.ctx.store().events_of_group(&p.group).await.expect("hub");
    assert!(
        hub.iter().all(|e| !e.deleted),
        "nothing tombstoned: {hub:?}"
    );
}

/// Take the lease as `owner`, trying again within the same millisecond (fences are
/// acquisition times and must increase).
async fn take(
    store: &calsync::store::Store,
    key: &str,
    owner: &str,
    ttl: i64,
) -> calsync::store::Lease {
    for _ in 0..1000 {
        if let Some(l) = store.acquire_lease(key, owner, ttl).await.unwrap() {
            return l;
        }
    }
    panic!("lease {key} not acquired");
}

#[tokio::test]
async fn an_expired_lease_holders_writes_are_refused() {
    let ctx = local_ctx().await;
    let store = ctx.store();
    let key = unique("fenced-link");
    // A's lease has already expired (a stalled worker); B takes the link over.
    let a = take(&store, &key, "a", -5).await;
    let b = take(&store, &key, "b", 60).await;
    assert!(b.fence > a.fence, "{a:?} {b:?}");
    assert!(
        store.acquire_lease(&key, "c", 60).await.unwrap().is_none(),
        "B's lease is held"
    );
    let (sa, sb) = (store.fenced(&a), store.fenced(&b));
    let cursor = |c: &str| calsync::provider::Cursor::new(c.to_string());
    sb.put_cursor(&key, &cursor("sync:b")).await.unwrap();
    let refused = sa.put_cursor(&key, &cursor("sync:a")).await;
    assert!(
        matches!(refused, Err(calsync::store::StoreError::Fenced { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.get_cursor(&key).await.unwrap(),
        Some(cursor("sync:b")),
        "the newer holder's cursor stands"
    );
    let m = calsync::model::Mapping::new(&key, "e1");
    sb.put_mapping(&m).await.unwrap();
    assert!(matches!(
        sa.put_mapping(&m).await,
        Err(calsync::store::StoreError::Fenced { .. })
    ));
    assert!(matches!(
        sa.delete_mapping(&key, "e1").await,
        Err(calsync::store::StoreError::Fenced { .. })
    ));
    assert_eq!(store.mappings_of_link(&key).await.unwrap().len(), 1);
    // Renewal: only the holder renews; a released lease is free again, with a newer fence.
    assert!(store.renew_lease(&b, 60).await.unwrap());
    assert!(!store.renew_lease(&a, 60).await.unwrap());
    store.release_lease(&key, "b").await.unwrap();
    let c = take(&store, &key, "c", 60).await;
    assert!(c.fence > b.fence);
    store.fenced(&c).delete_mapping(&key, "e1").await.unwrap();
}

#[tokio::test]
async fn jobs_are_not_started_past_the_invocations_deadline() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "deadline", &[]).await.unwrap();
    let mut before = Vec::new();
    for l in [&p.r, &p.x] {
        before.push(ctx.store().runs_of_link(&l.link_id).await.unwrap().len());
    }
    let jobs = [&p.r, &p.x, &p.r].map(|l| calsync::queue::SyncJob::unique(&l.link_id, "manual"));
    let records: Vec<serde_json::Value> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            json!({"messageId": format!("m{i}"), "body": serde_json::to_string(j).unwrap(),
                   "attributes": {"MessageGroupId": j.link_id}})
        })
        .collect();
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(json!({ "Records": records })).unwrap();
    // The invocation is out of time: its first job runs (it had the whole invocation), the
    // others go back to the queue unstarted.
    let deadline = std::time::Instant::now();
    let resp = calsync::handlers::handle_sqs_until(
        &ctx,
        event,
        calsync::handlers::Direction::Pull,
        Some(deadline),
    )
    .await;
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m1", "m2"], "left for redelivery");
    for (l, n) in [&p.r, &p.x].into_iter().zip(before) {
        let runs = ctx.store().runs_of_link(&l.link_id).await.unwrap();
        let ran = usize::from(l.link_id == p.r.link_id);
        assert_eq!(runs.len(), n + ran, "only the first job ran");
        assert!(
            ctx.store()
                .acquire_lease(&l.link_id, "probe", 1)
                .await
                .unwrap()
                .is_some(),
            "no lease left behind"
        );
    }
}

#[tokio::test]
async fn a_failure_between_cursor_and_fan_out_still_converges() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "outbox", &[]).await.unwrap();
    fixtures::client_put(&ctx, &p.radicale, &simple_event("outbox-1", "Owed", 9))
        .await
        .unwrap();
    // The pull saves its cursor, then cannot reach the sync-back queue.
    let mut broken = ctx.clone();
    broken.config.sync_back_queue = "calsync-no-such-queue.fifo".into();
    let job = calsync::queue::SyncJob::unique(&p.r.link_id, "manual");
    let failed =
        calsync::handlers::run_job(&broken, &job, calsync::handlers::Direction::Pull).await;
    assert!(failed.is_err(), "the fan-out failed: {failed:?}");
    let state = ctx.store().get_cursor_state(&p.r.link_id).await.unwrap();
    assert!(state.cursor.is_some(), "the cursor moved on");
    assert_eq!(
        state
            .outbox
            .iter()
            .map(|j| j.link_id.as_str())
            .collect::<Vec<_>>(),
        [p.x.link_id.as_str()],
        "the owed sync-back is recorded with it"
    );
    // The next pull of the link (no remote change) sends what is owed.
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    let uids = fixtures::uid_counts(&ctx, &p.xandikos).await.unwrap();
    assert_eq!(uids.get("outbox-1"), Some(&1), "{uids:?}");
    let state = ctx.store().get_cursor_state(&p.r.link_id).await.unwrap();
    assert!(state.outbox.is_empty(), "sent and cleared: {state:?}");
}

#[tokio::test]
async fn an_event_written_and_deleted_since_the_sync_token_is_still_a_removal() {
    let ctx = local_ctx().await;
    // The pair's first sync pulls Xandikos (empty), then pushes the event there: Xandikos'
    // stored sync-token predates the event.
    let p = pair(
        &ctx,
        "vanished",
        &[simple_event("vanished-1", "Short-lived", 8)],
    )
    .await
    .unwrap();
    assert_eq!(
        fixtures::uid_counts(&ctx, &p.xandikos).await.unwrap().len(),
        1
    );
    // Deleted there before any pull: the report since the old token may leave it out
    // entirely (RFC 6578), yet the deletion must reach the hub and Radicale.
    fixtures::client_delete(&ctx, &p.xandikos, "vanished-1")
        .await
        .unwrap();
    sync_link(&ctx, &p.x.link_id).await.unwrap();
    assert!(fixtures::uid_counts(&ctx, &p.radicale)
        .await
        .unwrap()
        .is_empty());
    let hub = ctx.store().get_event(&p.group, "vanished-1").await.unwrap();
    assert!(hub.is_some_and(|h| h.deleted));
    let state = ctx.store().get_cursor_state(&p.x.link_id).await.unwrap();
    assert_eq!(state.written_ms, None, "checked and cleared");
}

#[tokio::test]
async fn two_lambdas_calls_for_one_account_share_one_quota() {
    use calsync::store::{Grant, SharedQuota};
    let ctx = local_ctx().await;
    let key = unique("account");
    // Two processes (each its own reservation), one account: 400 calls an hour (a burst of
    // 20, then one call every 9.5 s), blocks of 5.
    let a = SharedQuota::new(ctx.store(), &key, 400, 3_600_000, 5);
    let b = SharedQuota::new(ctx.store(), &key, 400, 3_600_000, 5);
    let mut granted = 0;
    let mut refused_at = None;
    for i in 0..30 {
        let q = if i % 2 == 0 { &a } else { &b };
        match q.try_take(1).await.unwrap() {
            Grant::Go => granted += 1,
            Grant::WaitUntil(t) => {
                refused_at.get_or_insert(t);
            }
        }
    }
    // At most the burst goes at once.
    let retry_at = refused_at.expect("the shared quota ran out");
    assert!(retry_at > calsync::config::now_millis());
    assert!(
        (16..=20).contains(&granted),
        "together they got {granted} of a burst of 20 (blocks left unspent locally: ≤ 4)"
    );
}

/// The shared quota holds over a sliding window, not only a fixed one: two processes taking
/// calls as fast as they can for 1.5 windows never get more than the quota in any stretch of
/// a window's length, wherever it starts (a fixed-window counter let up to twice the quota
/// through across a window's end; Google counts over a sliding minute).
#[tokio::test]
async fn a_shared_quota_holds_over_every_sliding_window() {
    use calsync::store::{Grant, SharedQuota};
    let ctx = local_ctx().await;
    let key = unique("sliding");
    let (limit, window_ms) = (400u32, 2_000i64);
    let a = SharedQuota::new(ctx.store(), &key, limit, window_ms, 10);
    let b = SharedQuota::new(ctx.store(), &key, limit, window_ms, 10);
    let start = calsync::config::now_millis();
    let mut granted: Vec<i64> = Vec::new();
    let mut i = 0u32;
    while calsync::config::now_millis() - start < window_ms * 3 / 2 {
        let q = if i.is_multiple_of(2) { &a } else { &b };
        i += 1;
        if q.try_take(1).await.unwrap() == Grant::Go {
            granted.push(calsync::config::now_millis());
        }
    }
    let worst = granted
        .iter()
        .map(|t| {
            granted
                .iter()
                .filter(|u| **u >= *t && **u < t + window_ms)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        worst <= limit as usize,
        "{worst} calls in one {window_ms} ms stretch, quota {limit}"
    );
    // And it does not starve: at 95 % of the rate plus the burst, up to 1.5 × 380 + 20 go
    // (fewer when the loop is slower than the rate).
    assert!(granted.len() >= 300, "only {} calls in 3 s", granted.len());
}

#[tokio::test]
async fn a_transaction_loses_only_the_pairs_whose_event_moved_and_none_after_a_takeover() {
    use calsync::model::{HubEvent, Mapping};
    use calsync::store::{PairWrite, StoreError};
    let ctx = local_ctx().await;
    let store = ctx.store();
    let group = unique("tx-group");
    let link = unique("tx-link");
    let ev = |uid: &str| HubEvent {
        group_id: group.clone(),
        uid: uid.into(),
        version: 1,
        ical: simple_event(uid, "Transaction", 3),
        deleted: false,
        updated_ms: 1,
        origin_link: String::new(),
        made_on: None,
    };
    // Another writer created tx-7 first: its pair, planned as new, loses; the rest stand.
    store.put_event(&ev("tx-7"), None).await.unwrap();
    // 60 pairs are 120 actions: more than one transaction holds (100).
    let uids: Vec<String> = (0..60).map(|i| format!("tx-{i}")).collect();
    let events: Vec<HubEvent> = uids.iter().map(|u| ev(u)).collect();
    let maps: Vec<Mapping> = uids.iter().map(|u| Mapping::new(&link, u)).collect();
    let pairs: Vec<PairWrite<'_>> = events
        .iter()
        .zip(&maps)
        .map(|(e, m)| PairWrite {
            event: Some((e, None)),
            mapping: m,
        })
        .collect();
    let before = ctx.clients.aws_calls.snapshot();
    let written = store.put_pairs(&pairs).await.unwrap();
    let calls = ctx.clients.aws_calls.snapshot().since(&before);
    let lost: Vec<usize> = (0..written.len()).filter(|i| !written[*i]).collect();
    assert_eq!(lost, [7], "{written:?}");
    // Two transactions, the first sent again without the pair that lost.
    assert_eq!(calls.total(), 3, "{}", calls.summary());
    assert_eq!(
        calls.by_operation.get("DynamoDB:TransactWriteItems"),
        Some(&3)
    );
    let mut stored: Vec<String> = store
        .mappings_of_link(&link)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.uid)
        .collect();
    stored.sort();
    let mut expected: Vec<String> = uids.iter().filter(|u| *u != "tx-7").cloned().collect();
    expected.sort();
    assert_eq!(stored, expected, "no mapping for the pair that lost");
    assert_eq!(store.events_of_group(&group).await.unwrap().len(), 60);

    // After a takeover the stalled holder's transaction writes nothing, not even the pair
    // whose mapping no newer holder has written.
    let a = take(&store, &link, "a", -5).await;
    let b = take(&store, &link, "b", 60).await;
    store.fenced(&b).put_mappings(&maps[..1]).await.unwrap();
    let fresh = ev("tx-new");
    let fresh_map = Mapping::new(&link, "tx-new");
    let refused = store
        .fenced(&a)
        .put_pairs(&[
            PairWrite {
                event: Some((&fresh, None)),
                mapping: &fresh_map,
            },
            PairWrite {
                event: None,
                mapping: &maps[0],
            },
        ])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    assert!(store.get_event(&group, "tx-new").await.unwrap().is_none());
    assert_eq!(store.mappings_of_link(&link).await.unwrap().len(), 59);
}
