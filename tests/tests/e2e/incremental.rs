//! Work per sync in O(changes): one change among N events reads the items of that change
//! (the mappings' `href-index` and `written-index`, the hub's `changes-index`, reads by
//! key), not every mapping of the link and every hub event of the group. Needs the local
//! stack.

use calsync::handlers::Direction;
use calsync::model::RunRecord;
use calsync_e2e::fixtures::{self, client_delete, client_edit, pair, simple_event, uid_counts};
use calsync_e2e::local_ctx;

/// Events in the calendars: well above what one change may read.
const N: usize = 40;
/// DynamoDB items one job of one change may read: the link and cursor item, the mapping and
/// hub event of the change, its index entries, the run's own bookkeeping.
const ONE_CHANGE_MAX_ITEMS: u32 = 12;

#[tokio::test]
async fn one_change_among_n_reads_the_items_of_that_change_only() {
    let ctx = local_ctx().await;
    let seed: Vec<String> = (0..N)
        .map(|i| {
            simple_event(
                &format!("inc-{i}"),
                &format!("Event {i}"),
                (i % 27 + 1) as u32,
            )
        })
        .collect();
    let p = pair(&ctx, "inc", &seed).await.unwrap();
    fixtures::age_hub(&ctx, &p.group, 3_600_000).await.unwrap();
    // The first pull after calsync's own writes lists them as echoes (a long listing).
    for l in [&p.r, &p.x] {
        fixtures::job_ok(&ctx, &l.link_id, "manual", Direction::Pull).await;
    }

    // An edit on Radicale: its pull, then the sync-back to Xandikos, then Xandikos's next
    // pull (which checks that its report lists the push's write).
    client_edit(&ctx, &p.radicale, "inc-7", |t| {
        t.replace("SUMMARY:Event 7", "SUMMARY:Edited on Radicale")
    })
    .await
    .unwrap();
    let pulled = fixtures::job_ok(&ctx, &p.r.link_id, "manual", Direction::Pull).await;
    assert_eq!(pulled.updated, 1, "{pulled:?}");
    let pushed = fixtures::job_ok(&ctx, &p.x.link_id, "sync-back", Direction::Push).await;
    assert_eq!(pushed.updated, 1, "{pushed:?}");
    let echo = fixtures::job_ok(&ctx, &p.x.link_id, "manual", Direction::Pull).await;
    assert_eq!((echo.created, echo.updated, echo.deleted), (0, 0, 0));
    for (what, run) in [
        ("pull", &pulled),
        ("sync-back", &pushed),
        ("echo pull", &echo),
    ] {
        assert!(
            run.ddb_items_read <= ONE_CHANGE_MAX_ITEMS,
            "{what} of one change among {N} read {} DynamoDB items",
            run.ddb_items_read
        );
    }
    let on_x = fixtures::events_in(&ctx, &p.xandikos).await.unwrap();
    let edited = on_x
        .iter()
        .find(|(_, s)| s.uid == "inc-7")
        .map(|(_, s)| s.summary());
    assert_eq!(
        edited.as_deref(),
        Some("Edited on Radicale"),
        "the edit reached Xandikos"
    );

    // A deletion on Radicale: the pull finds its mapping through the href it reports.
    client_delete(&ctx, &p.radicale, "inc-8").await.unwrap();
    let pulled = fixtures::job_ok(&ctx, &p.r.link_id, "manual", Direction::Pull).await;
    assert_eq!(pulled.deleted, 1, "{pulled:?}");
    let pushed = fixtures::job_ok(&ctx, &p.x.link_id, "sync-back", Direction::Push).await;
    assert_eq!(pushed.deleted, 1, "{pushed:?}");
    for (what, run) in [("pull", &pulled), ("sync-back", &pushed)] {
        assert!(
            run.ddb_items_read <= ONE_CHANGE_MAX_ITEMS,
            "{what} of one deletion among {N} read {} DynamoDB items",
            run.ddb_items_read
        );
    }
    let counts = uid_counts(&ctx, &p.xandikos).await.unwrap();
    assert_eq!(counts.len(), N - 1, "one event fewer on Xandikos");
    assert!(!counts.contains_key("inc-8"));

    // A new event on Xandikos reaches Radicale the same way.
    fixtures::client_put(
        &ctx,
        &p.xandikos,
        &simple_event("inc-new", "Born on Xandikos", 3),
    )
    .await
    .unwrap();
    let pulled = fixtures::job_ok(&ctx, &p.x.link_id, "manual", Direction::Pull).await;
    assert_eq!(pulled.created, 1, "{pulled:?}");
    let pushed = fixtures::job_ok(&ctx, &p.r.link_id, "sync-back", Direction::Push).await;
    assert_eq!(pushed.created, 1, "{pushed:?}");
    assert!(
        pulled.ddb_items_read <= ONE_CHANGE_MAX_ITEMS
            && pushed.ddb_items_read <= ONE_CHANGE_MAX_ITEMS,
        "one creation among {N}: pull read {}, sync-back {}",
        pulled.ddb_items_read,
        pushed.ddb_items_read
    );
    assert_eq!(
        uid_counts(&ctx, &p.radicale).await.unwrap().get("inc-new"),
        Some(&1)
    );
}

#[tokio::test]
async fn a_push_without_a_watermark_or_not_a_sync_back_reads_the_whole_group() {
    // A catch-up (or any push that is not a sync-back) finds writes owed from before the
    // watermark: here an event whose mapping was reset, as the transforms API does.
    let ctx = local_ctx().await;
    let seed: Vec<String> = (0..5)
        .map(|i| simple_event(&format!("wm-{i}"), &format!("Event {i}"), (i + 1) as u32))
        .collect();
    let p = pair(&ctx, "wm", &seed).await.unwrap();
    let store = ctx.store();
    let link = store.get_link(&p.x.link_id).await.unwrap().unwrap();
    assert!(
        link.pushed_through_ms.is_some(),
        "a complete push sets the watermark"
    );
    // A watermark past every hub write (as one is an hour after them).
    let later = calsync::config::now_millis() + 2 * calsync::engine::PUSH_OVERLAP_MS;
    store
        .update_link_fields(
            &p.x.link_id,
            vec![("pushed_through_ms", store.attr(later).unwrap())],
        )
        .await
        .unwrap();
    let mut m = store
        .mappings_of_link(&p.x.link_id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.uid == "wm-2")
        .unwrap();
    m.synced_version = 0;
    store.put_mapping(&m).await.unwrap();
    // A sync-back reads only changes since the watermark: the old event is not among them.
    let back = fixtures::job_ok(&ctx, &p.x.link_id, "sync-back", Direction::Push).await;
    assert_eq!(back.updated, 0, "{back:?}");
    // A catch-up reads the whole group and writes it.
    let caught = fixtures::job_ok(&ctx, &p.x.link_id, "catch-up", Direction::Push).await;
    assert_eq!(caught.updated, 1, "{caught:?}");
}

#[tokio::test]
async fn a_catch_up_is_skipped_when_a_full_push_begun_after_its_pull_completed() {
    // A calendar joins a group of 10 events: its first pull finds all of them owed and
    // queues a catch-up; a full push (here the API's, in the bench the sync-back that was
    // already queued) then writes them. The catch-up reads nothing: that push read the
    // group after the pull. A write owed after that push is caught up as before.
    let ctx = local_ctx().await;
    let seed: Vec<String> = (0..10)
        .map(|i| simple_event(&format!("cu-{i}"), &format!("Event {i}"), (i + 1) as u32))
        .collect();
    let p = pair(&ctx, "cu", &seed).await.unwrap();
    calsync_e2e::runner::drain(&ctx).await.unwrap();
    let url = fixtures::new_calendar(&ctx, fixtures::Server::Xandikos, &fixtures::unique("cu"))
        .await
        .unwrap();
    let c = fixtures::caldav_link(&ctx, &p.group, p.user, &url, "joined")
        .await
        .unwrap();
    fixtures::job_ok(&ctx, &c.link_id, "manual", Direction::Pull).await;
    let full = fixtures::job_ok(&ctx, &c.link_id, "manual", Direction::Push).await;
    assert_eq!(full.created, 10, "{full:?}");
    calsync_e2e::runner::drain(&ctx).await.unwrap();
    let catch_ups = |runs: Vec<RunRecord>| -> Vec<RunRecord> {
        runs.into_iter()
            .filter(|r| r.trigger == "catch-up")
            .collect()
    };
    let store = ctx.store();
    let skipped = catch_ups(store.runs_of_link(&c.link_id).await.unwrap());
    assert_eq!(
        skipped.len(),
        1,
        "the pull queued one catch-up: {skipped:?}"
    );
    assert_eq!(skipped[0].outcome, "ok");
    assert_eq!(skipped[0].created + skipped[0].updated, 0);
    assert!(
        skipped[0].ddb_items_read <= 3,
        "a covered catch-up reads no mapping or hub event (a full read is >= 20 items): {:?}",
        skipped[0]
    );
    assert_eq!(uid_counts(&ctx, &url).await.unwrap().len(), 10);

    // Owed after that push: the next pull's catch-up runs.
    let mut m = store
        .mappings_of_link(&c.link_id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.uid == "cu-4")
        .unwrap();
    m.synced_version = 0;
    store.put_mapping(&m).await.unwrap();
    fixtures::job_ok(&ctx, &c.link_id, "manual", Direction::Pull).await;
    calsync_e2e::runner::drain(&ctx).await.unwrap();
    let runs = catch_ups(store.runs_of_link(&c.link_id).await.unwrap());
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter().any(|r| r.updated == 1),
        "the second catch-up wrote the owed event: {runs:?}"
    );
}

#[tokio::test]
async fn an_initial_sync_writes_its_hub_events_and_mappings_many_to_a_request() {
    // The pull writes each hub event with its mapping in one transaction, 50 pairs to a
    // request; the push records a chunk's mappings in one. Before, each event cost a
    // request for its hub event and one for each mapping (85 AWS calls for this pull).
    let ctx = local_ctx().await;
    let name = fixtures::unique("tx");
    let radicale = fixtures::new_calendar(&ctx, fixtures::Server::Radicale, &name)
        .await
        .unwrap();
    let xandikos = fixtures::new_calendar(&ctx, fixtures::Server::Xandikos, &name)
        .await
        .unwrap();
    for i in 0..N {
        let ical = simple_event(
            &format!("tx-{i}"),
            &format!("Event {i}"),
            (i % 27 + 1) as u32,
        );
        fixtures::client_put(&ctx, &radicale, &ical).await.unwrap();
    }
    let group = fixtures::unique("group");
    let user = fixtures::fresh_user();
    let r = fixtures::caldav_link(&ctx, &group, user, &radicale, "radicale")
        .await
        .unwrap();
    let x = fixtures::caldav_link(&ctx, &group, user, &xandikos, "xandikos")
        .await
        .unwrap();
    let pulled = fixtures::job_ok(&ctx, &r.link_id, "manual", Direction::Pull).await;
    assert_eq!(pulled.created, N as u32, "{pulled:?}");
    let pushed = fixtures::job_ok(&ctx, &x.link_id, "manual", Direction::Push).await;
    assert_eq!(pushed.created, N as u32, "{pushed:?}");
    for (what, run) in [("pull", &pulled), ("push", &pushed)] {
        assert!(
            run.aws_calls <= 14,
            "the initial {what} of {N} events made {} AWS calls",
            run.aws_calls
        );
    }
    let store = ctx.store();
    for l in [&r, &x] {
        let maps = store.mappings_of_link(&l.link_id).await.unwrap();
        assert_eq!(maps.len(), N, "{}", l.display_name);
        assert!(maps.iter().all(|m| m.href.is_some() && m.etag.is_some()));
    }
    assert_eq!(store.events_of_group(&group).await.unwrap().len(), N);
    assert_eq!(uid_counts(&ctx, &xandikos).await.unwrap().len(), N);
}

/// A push that finds more than `PUSH_TARGETED_MAX` changes reads the whole group instead, so
/// it stops reading changes at the first Query past the limit, even when every change shares
/// one millisecond (one pull's writes can). The change feed (`changes_after`) still reads
/// that millisecond whole, for a cursor that does not split it.
#[tokio::test]
async fn a_push_stops_reading_changes_past_its_limit_within_one_millisecond() {
    use calsync::engine::PUSH_TARGETED_MAX;
    use calsync::model::HubEvent;
    use calsync::store::ChangeCursor;
    let ctx = local_ctx().await;
    let store = ctx.store();
    let group = fixtures::unique("same-ms");
    let ms = calsync::config::now_millis();
    let n = 3 * PUSH_TARGETED_MAX;
    for i in 0..n {
        let uid = format!("same-ms-{i:03}");
        let ev = HubEvent {
            group_id: group.clone(),
            uid: uid.clone(),
            version: 1,
            ical: simple_event(&uid, "One millisecond", 3),
            deleted: false,
            updated_ms: ms,
            origin_link: "a-pull".into(),
            made_on: None,
        };
        store.put_event(&ev, None).await.unwrap();
    }
    let since = ChangeCursor {
        ms: ms - 1,
        uid: String::new(),
    };

    use calsync::metrics::AwsCallCounter;
    let calls = AwsCallCounter::default();
    let within = calls
        .scope(store.changes_within(&group, &since, PUSH_TARGETED_MAX))
        .await
        .unwrap();
    assert!(within.is_none(), "more than the limit");
    let read = calls.snapshot();
    assert_eq!(
        read.by_operation.get("DynamoDB:Query"),
        Some(&1),
        "{read:?}"
    );
    assert!(
        read.ddb_items_read <= (PUSH_TARGETED_MAX + 1) as u64,
        "{read:?}"
    );

    let all = store
        .changes_within(&group, &since, n)
        .await
        .unwrap()
        .expect("all of them fit");
    assert_eq!(all.len(), n);
    assert!(all.windows(2).all(|w| w[0].uid < w[1].uid), "in order");

    let calls = AwsCallCounter::default();
    let (page, more) = calls
        .scope(store.changes_after(&group, &since, PUSH_TARGETED_MAX))
        .await
        .unwrap();
    assert_eq!(page.len(), PUSH_TARGETED_MAX);
    assert!(more);
    let uids = |events: &[HubEvent]| events.iter().map(|e| e.uid.clone()).collect::<Vec<_>>();
    assert_eq!(
        uids(&page),
        uids(&all[..PUSH_TARGETED_MAX]),
        "the first of the millisecond in uid order"
    );
    assert_eq!(
        calls.snapshot().ddb_items_read,
        n as u64,
        "the millisecond whole"
    );
}

#[tokio::test]
async fn a_sync_back_after_a_large_pull_reads_its_changes_only_up_to_the_limit() {
    // One pull's hub writes share a few milliseconds: the sync-back that follows finds more
    // than PUSH_TARGETED_MAX changes since its watermark and reads the whole group, but
    // must not first read all of those changes (Store::changes_within, not changes_after).
    use calsync::engine::PUSH_TARGETED_MAX;
    use calsync::model::HubEvent;
    let ctx = local_ctx().await;
    let seed: Vec<String> = (0..3)
        .map(|i| simple_event(&format!("big-{i}"), &format!("Seed {i}"), (i + 1) as u32))
        .collect();
    let p = pair(&ctx, "bigpull", &seed).await.unwrap();
    let store = ctx.store();
    assert!(store
        .get_link(&p.x.link_id)
        .await
        .unwrap()
        .unwrap()
        .pushed_through_ms
        .is_some());
    // What a pull of a large calendar writes to the hub: events in one millisecond.
    let n = 2 * PUSH_TARGETED_MAX;
    let ms = calsync::config::now_millis();
    for i in 0..n {
        let uid = format!("big-pulled-{i:03}");
        let ev = HubEvent {
            group_id: p.group.clone(),
            uid: uid.clone(),
            version: 1,
            ical: simple_event(&uid, "Pulled", (i % 27 + 1) as u32),
            deleted: false,
            updated_ms: ms,
            origin_link: p.r.link_id.clone(),
            made_on: None,
        };
        store.put_event(&ev, None).await.unwrap();
    }
    let pushed = fixtures::job_ok(&ctx, &p.x.link_id, "sync-back", Direction::Push).await;
    assert_eq!(pushed.created as usize, n, "{pushed:?}");
    // The whole group once (n + seed events) and the link's seed mappings, at most
    // PUSH_TARGETED_MAX + 1 changes, and the run's bookkeeping; reading the changes whole
    // would add another n.
    let bound = n + seed.len() + seed.len() + PUSH_TARGETED_MAX + 1 + ONE_CHANGE_MAX_ITEMS as usize;
    assert!(
        (pushed.ddb_items_read as usize) <= bound,
        "the sync-back read {} DynamoDB items (at most {bound})",
        pushed.ddb_items_read
    );
    let counts = uid_counts(&ctx, &p.xandikos).await.unwrap();
    assert_eq!(counts.len(), n + seed.len());
    assert!(counts.values().all(|c| *c == 1), "each event once");
}

/// A scheduled sync that finds nothing new writes nothing to its link: the schedule's tick
/// moved its due time when it queued the job, and no notification arrived since the last
/// pull. Its job makes five AWS calls (the lease, the BatchGetItem of link and cursor, the
/// credentials, the run record, the lease's release). A pull after a notification records
/// what it covers and moves the due time.
#[tokio::test]
async fn a_quiet_scheduled_sync_writes_nothing_to_its_link() {
    let ctx = local_ctx().await;
    let p = fixtures::pair(&ctx, "quiet", &[simple_event("quiet-1", "Quiet", 3)])
        .await
        .unwrap();
    let store = ctx.store();
    let link = |id: String| {
        let store = ctx.store();
        async move { store.get_link(&id).await.unwrap().unwrap() }
    };
    // As the tick leaves it: due again in 15 minutes.
    let due_at = calsync::config::now_secs() + 900;
    store
        .set_next_sync(&p.r.link_id, due_at, None)
        .await
        .unwrap();
    let before = link(p.r.link_id.clone()).await;
    assert_eq!(before.push_seq, before.covered_push_seq);

    // The job counts its calls in a scope of its own: read the clients' counter around it.
    let before = ctx.clients.aws_calls.snapshot();
    fixtures::job_ok(&ctx, &p.r.link_id, "schedule", Direction::Pull).await;
    let made = ctx.clients.aws_calls.snapshot().since(&before);
    let ops: Vec<(&str, u64)> = made
        .by_operation
        .iter()
        .map(|(op, n)| (op.as_str(), *n))
        .collect();
    assert_eq!(
        ops,
        [
            ("DynamoDB:BatchGetItem", 1),
            ("DynamoDB:DeleteItem", 1),
            ("DynamoDB:PutItem", 1),
            ("DynamoDB:UpdateItem", 1),
            ("Secrets Manager:GetSecretValue", 1),
        ],
        "the lease (UpdateItem), link and cursor, credentials, run record, release"
    );
    let after = link(p.r.link_id.clone()).await;
    assert_eq!(after.next_sync_at, due_at, "not written");

    // A notification since: the pull covers it.
    store
        .count_notification(&p.r.link_id, calsync::config::now_millis())
        .await
        .unwrap();
    let before = ctx.clients.aws_calls.snapshot();
    fixtures::job_ok(&ctx, &p.r.link_id, "push", Direction::Pull).await;
    assert_eq!(
        ctx.clients
            .aws_calls
            .snapshot()
            .since(&before)
            .by_operation
            .get("DynamoDB:UpdateItem"),
        Some(&2),
        "the lease and the link"
    );
    let after = link(p.r.link_id.clone()).await;
    assert_eq!(after.covered_push_seq, after.push_seq);
    assert!(
        after.next_sync_at > due_at,
        "a whole interval from this pull"
    );
}
