//! Pulls and pushes that go through a calendar a page at a time (issue 11, peak RSS):
//! a wide pull reads heads of every mapping and hub event and the whole records of one page
//! at a time (`engine::PULL_PAGE`), a full push reads the group's events a page at a time
//! (`engine::PUSH_PAGE`) against the heads of the link's mappings. Whatever page an event
//! falls on, its merge base must be there when it is planned and when its mapping is
//! stored. Needs the local stack.

use calsync::config::{now_millis, Ctx};
use calsync::engine::{PULL_PAGE, PUSH_PAGE};
use calsync::handlers::Direction;
use calsync::model::{EventStatus, HubEvent};
use calsync::queue::{QueueKind, SyncJob};
use calsync_e2e::fixtures::{self, client_retitle, simple_event, Server};
use calsync_e2e::{local_ctx, runner};

/// Events in the calendar: more than two pull pages and one push page.
const N: usize = 450;

/// Events edited on both sides, spread over every page.
const EDITED: [usize; 5] = [10, 150, 250, 350, 440];

fn uid(i: usize) -> String {
    format!("pg-{i:03}")
}

/// Move hub event `i` to the "Hub room" (a new version, as another member's pull would).
async fn hub_relocate(ctx: &Ctx, group: &str, i: usize) {
    let store = ctx.store();
    let old = store.get_event(group, &uid(i)).await.unwrap().unwrap();
    assert!(old.ical.contains("LOCATION:Room 1"), "{}", old.ical);
    let new = HubEvent {
        version: old.version + 1,
        ical: old.ical.replace("LOCATION:Room 1", "LOCATION:Hub room"),
        updated_ms: now_millis(),
        origin_link: "another-member".into(),
        ..old.clone()
    };
    store.put_event(&new, Some(old.version)).await.unwrap();
}

async fn hub_event(ctx: &Ctx, group: &str, i: usize) -> String {
    let e = ctx
        .store()
        .get_event(group, &uid(i))
        .await
        .unwrap()
        .unwrap();
    e.ical
}

#[tokio::test]
async fn paged_pulls_and_pushes_keep_every_merge_base() {
    assert!(N > 2 * PULL_PAGE && N > PUSH_PAGE as usize);
    let ctx = local_ctx().await;
    let url = fixtures::new_calendar(&ctx, Server::Radicale, &fixtures::unique("paging"))
        .await
        .unwrap();
    let seed: Vec<String> = (0..N)
        .map(|i| simple_event(&uid(i), &format!("Event {i}"), (i % 27 + 1) as u32))
        .collect();
    fixtures::radicale_upload(&url, &seed).await.unwrap();
    let group = fixtures::unique("group");
    let user = fixtures::fresh_user();
    let link = fixtures::caldav_link(&ctx, &group, user, &url, "radicale")
        .await
        .unwrap();
    let store = ctx.store();

    // The initial pull, three pages: every event in the hub, every mapping whole.
    fixtures::sync_user(&ctx, user).await.unwrap();
    let hub = store.events_of_group(&group).await.unwrap();
    let live = hub
        .iter()
        .filter(|e| !e.deleted && e.ical.contains("BEGIN:VEVENT"));
    assert_eq!(live.count(), N);
    let maps = store.mappings_of_link(&link.link_id).await.unwrap();
    assert_eq!(maps.len(), N);
    for m in &maps {
        assert_eq!(m.status, EventStatus::Synced, "{m:?}");
        let base = m.base.as_deref().unwrap_or_default();
        assert!(base.contains(&format!("UID:{}", m.uid)), "{m:?}");
    }

    // Each edited event: a new location in the hub, a new title on Radicale. A wide pull
    // (the cursor dropped: a full enumeration) merges the two against the base, whatever
    // page the event is on — without its base the two edits would be a conflict.
    for i in EDITED {
        hub_relocate(&ctx, &group, i).await;
        client_retitle(
            &ctx,
            &url,
            &uid(i),
            &format!("Event {i}"),
            &format!("Retitled {i}"),
        )
        .await
        .unwrap();
    }
    store.delete_cursor(&link.link_id).await.unwrap();
    let pulled = fixtures::job_ok(&ctx, &link.link_id, "manual", Direction::Pull).await;
    assert_eq!(
        (pulled.updated, pulled.conflicts, pulled.errors),
        (EDITED.len() as u32, 0, 0),
        "{pulled:?}"
    );
    for i in EDITED {
        let ical = hub_event(&ctx, &group, i).await;
        assert!(ical.contains(&format!("SUMMARY:Retitled {i}")), "{ical}");
        assert!(ical.contains("LOCATION:Hub room"), "{ical}");
    }

    // One more event edited on both sides, now without a pull in between: the full push
    // (two pages of events) writes the merged events and meets Radicale's newer version of
    // this one (412). Its mapping, planned from a head, is stored with its base, so the
    // pull that follows merges the two edits too.
    let late = 300;
    hub_relocate(&ctx, &group, late).await;
    let title = format!("Retitled {late}");
    client_retitle(&ctx, &url, &uid(late), &format!("Event {late}"), &title)
        .await
        .unwrap();
    let pushed = fixtures::job_ok(&ctx, &link.link_id, "catch-up", Direction::Push).await;
    assert_eq!(pushed.updated, EDITED.len() as u32, "{pushed:?}");
    let m = store
        .get_mapping(&link.link_id, &uid(late))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.status, EventStatus::Pending, "{m:?}");
    let base = m.base.as_deref().unwrap_or_default();
    assert!(base.contains(&format!("SUMMARY:Event {late}")), "{m:?}");
    let pulled = fixtures::job_ok(&ctx, &link.link_id, "manual", Direction::Pull).await;
    assert_eq!((pulled.updated, pulled.conflicts), (1, 0), "{pulled:?}");
    let ical = hub_event(&ctx, &group, late).await;
    assert!(ical.contains(&format!("SUMMARY:{title}")), "{ical}");
    assert!(ical.contains("LOCATION:Hub room"), "{ical}");
    // Radicale got every location, and nothing twice.
    let on_radicale = fixtures::events_in(&ctx, &url).await.unwrap();
    assert_eq!(on_radicale.len(), N);
    for (_, s) in on_radicale.iter().filter(|(_, s)| s.uid == uid(10)) {
        assert!(s.to_ical().contains("LOCATION:Hub room"), "{s:?}");
    }
}

/// A group of a Radicale calendar holding [`N`] events and an empty Xandikos calendar,
/// nothing synced yet.
struct Unsynced {
    /// The Xandikos calendar's URL.
    dst: String,
    group: String,
    /// The Radicale link and the Xandikos link.
    r: calsync::model::Link,
    x: calsync::model::Link,
}

async fn unsynced(ctx: &Ctx, tag: &str) -> Unsynced {
    unsynced_of(ctx, tag, N).await
}

/// [`unsynced_of`], pulled into the hub, the sync-backs the pull queued taken out (the test
/// runs the pushes itself).
async fn pulled(ctx: &Ctx, tag: &str, n: usize) -> Unsynced {
    let u = unsynced_of(ctx, tag, n).await;
    fixtures::job_ok(ctx, &u.r.link_id, "manual", Direction::Pull).await;
    runner::take(ctx, QueueKind::SyncBack, &u.x.link_id)
        .await
        .unwrap();
    u
}

/// [`unsynced`] with `n` events in the Radicale calendar.
async fn unsynced_of(ctx: &Ctx, tag: &str, n: usize) -> Unsynced {
    let tag = fixtures::unique(tag);
    let src = fixtures::new_calendar(ctx, Server::Radicale, &tag)
        .await
        .unwrap();
    let events: Vec<String> = (0..n)
        .map(|i| simple_event(&uid(i), &format!("Event {i}"), (i % 27 + 1) as u32))
        .collect();
    fixtures::radicale_upload(&src, &events).await.unwrap();
    let dst = fixtures::new_calendar(ctx, Server::Xandikos, &tag)
        .await
        .unwrap();
    let group = fixtures::unique(&format!("{tag}-group"));
    let user = fixtures::fresh_user();
    let r = fixtures::caldav_link(ctx, &group, user, &src, "radicale")
        .await
        .unwrap();
    let x = fixtures::caldav_link(ctx, &group, user, &dst, "xandikos")
        .await
        .unwrap();
    Unsynced { dst, group, r, x }
}

/// A pull of more than one page queues the other members' sync-backs as soon as its first
/// page is in the hub, while it reads and writes the rest, so that their pushes need not
/// wait for the whole pull (issue 11: the initial sync's wall); its own sync-backs follow
/// when it ends, and nothing is written twice.
#[tokio::test]
async fn a_long_pull_queues_the_sync_back_once_its_first_page_is_in_the_hub() {
    let ctx = local_ctx().await;
    let Unsynced { dst, group, r, x } = unsynced(&ctx, "early").await;

    let pulled = fixtures::job_ok(&ctx, &r.link_id, "manual", Direction::Pull).await;
    assert_eq!(pulled.created as usize, N, "{pulled:?}");
    let queued: Vec<(SyncJob, i64)> = runner::peek(&ctx, QueueKind::SyncBack)
        .await
        .unwrap()
        .into_iter()
        .filter(|(j, _)| j.link_id == x.link_id)
        .collect();
    let slots: Vec<&str> = queued.iter().map(|(j, _)| j.dedup.as_str()).collect();
    let own = format!("{}:sync-back:{}", x.link_id, pulled.run_id);
    assert_eq!(slots, [format!("{own}:first"), own], "{queued:?}");
    // The first was queued while the pull still wrote: later pages' hub events are newer.
    let first_sent = queued[0].1;
    let heads = ctx.store().event_heads_of_group(&group).await.unwrap();
    let written_after = heads.iter().filter(|e| e.updated_ms > first_sent).count();
    assert!(
        written_after >= N - 2 * PULL_PAGE,
        "{written_after} of {N} hub events written after the first sync-back was queued"
    );

    let drained = runner::drain(&ctx).await.unwrap();
    assert_eq!(drained.failures, 0, "{drained:?}");
    let counts = fixtures::uid_counts(&ctx, &dst).await.unwrap();
    assert_eq!(counts.len(), N);
    assert!(
        counts.values().all(|c| *c == 1),
        "written twice: {counts:?}"
    );
    let pushes: Vec<_> = ctx
        .store()
        .runs_of_link(&x.link_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|run| run.kind == "push")
        .collect();
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    let created: u32 = pushes.iter().map(|run| run.created).sum();
    assert_eq!(created as usize, N, "{pushes:?}");
    // The early sync-back began its full push after the pull had ended (the queues were
    // drained after it), so the pull's own sync-back is covered: it reads the link, not
    // the group, and writes nothing.
    let skipped: Vec<_> = pushes.iter().filter(|run| run.created == 0).collect();
    assert_eq!(skipped.len(), 1, "{pushes:?}");
    assert!(
        skipped[0].ddb_items_read < 10 && skipped[0].api_calls == 0,
        "the pull's own sync-back read the group: {pushes:?}"
    );
}

/// `n` new hub events of `group` (UIDs `late-000`…, before the calendar's `pg-` ones), as
/// the pull of `origin` would make them.
async fn hub_late_events(ctx: &Ctx, group: &str, origin: &str, n: usize) {
    for i in 0..n {
        let uid = format!("late-{i:03}");
        let ics = simple_event(&uid, &format!("Late {i}"), (i % 27 + 1) as u32);
        let series = calsync::ical::EventSeries::parse_single("late", &ics).unwrap();
        let ev = HubEvent {
            group_id: group.to_string(),
            uid,
            version: 1,
            ical: series.to_ical(),
            deleted: false,
            updated_ms: now_millis(),
            origin_link: origin.to_string(),
            made_on: None,
        };
        ctx.store().put_event(&ev, None).await.unwrap();
    }
}

/// A hub event made while a full push runs, with a UID before where the push has read, is
/// one the push cannot see. When more such changes than a targeted push takes
/// (`engine::PUSH_TARGETED_MAX`) came in during the push, the run that finishes the read
/// counts a second full push and reads the group again: it writes what came in, and leaves
/// alone the events it wrote itself (issue 11: the early sync-back of an initial sync,
/// which began while the pull still wrote).
#[tokio::test]
async fn a_full_push_reads_the_group_again_when_the_hub_took_many_changes_meanwhile() {
    const LATE: usize = calsync::engine::PUSH_TARGETED_MAX + 20;
    let mut ctx = local_ctx().await;
    let Unsynced { dst, group, r, x } = pulled(&ctx, "second-pass", N).await;
    let before = ctx.store().get_link(&x.link_id).await.unwrap().unwrap();

    ctx.config.run_budget_secs = 0;
    let (job, written) = chain_past_first_page(&ctx, &x.link_id).await;
    // Events the chain has read past (UIDs before `pg-`), made after it began.
    hub_late_events(&ctx, &group, &r.link_id, LATE).await;

    // The last run has time: it finishes the first read, then reads the group again.
    let last = run_with_time(&mut ctx, &job).await;
    let queued = runner::take(&ctx, QueueKind::SyncBack, &x.link_id)
        .await
        .unwrap();
    assert!(queued.is_empty(), "{queued:?}");
    assert_eq!(written + last.created as usize, N + LATE, "{last:?}");
    // One request a write: nothing the run wrote in its first read was written again.
    assert_eq!(last.api_calls, last.created, "{last:?}");
    let counts = fixtures::uid_counts(&ctx, &dst).await.unwrap();
    assert_eq!(counts.len(), N + LATE);
    assert!(
        counts.values().all(|c| *c == 1),
        "written twice: {counts:?}"
    );
    // Two full pushes counted, both complete.
    let after = ctx.store().get_link(&x.link_id).await.unwrap().unwrap();
    assert_eq!(after.full_push_seq, before.full_push_seq + 2, "{after:?}");
    assert_eq!(after.full_pushed_seq, after.full_push_seq, "{after:?}");
}

/// A push that reads the whole group and runs out of time hands its continuation the events
/// page it stopped in: the chain reads the group once rather than once a run, writes each
/// event once, and completes as of its first run (issue 11: at 10,000 events into Xandikos,
/// six continuations each read the whole group again).
#[tokio::test]
async fn a_continuation_reads_on_from_the_page_the_push_before_it_stopped_in() {
    let mut ctx = local_ctx().await;
    let Unsynced { dst, x, .. } = pulled(&ctx, "resume", N).await;
    let before = ctx.store().get_link(&x.link_id).await.unwrap().unwrap();

    // One chunk of writes a run (the CalDAV write batch, 50): nine runs.
    ctx.config.run_budget_secs = 0;
    let mut job = SyncJob::unique(&x.link_id, "api"); // a push that reads the whole group
    let mut runs = Vec::new();
    loop {
        let run = calsync::handlers::run_job(&ctx, &job, Direction::Push)
            .await
            .unwrap();
        assert_eq!(run.outcome, "ok", "{run:?}");
        runs.push(run);
        let queued = runner::take(&ctx, QueueKind::SyncBack, &x.link_id)
            .await
            .unwrap();
        match queued.into_iter().find(|j| j.trigger == "continue") {
            Some(next) => job = next,
            None => break,
        }
        assert!(runs.len() < 20, "the chain does not end: {runs:?}");
    }
    let created: Vec<u32> = runs.iter().map(|run| run.created).collect();
    assert_eq!(created, vec![50; N / 50], "{runs:?}");
    let counts = fixtures::uid_counts(&ctx, &dst).await.unwrap();
    assert_eq!(counts.len(), N);
    assert!(
        counts.values().all(|c| *c == 1),
        "written twice: {counts:?}"
    );
    // Past the first events page (PUSH_PAGE), a run reads the events and mapping heads
    // after the page it resumes at, not the whole group again.
    let first_page_runs = PUSH_PAGE as usize / 50;
    for run in &runs[first_page_runs..] {
        assert!(
            (run.ddb_items_read as usize) < N,
            "a continuation in the second page read {} items: {runs:?}",
            run.ddb_items_read
        );
    }
    // The chain completes as of its first run: one full push counted, its watermark the
    // first run's read.
    let after = ctx.store().get_link(&x.link_id).await.unwrap().unwrap();
    assert_eq!(after.full_push_seq, before.full_push_seq + 1, "{after:?}");
    assert_eq!(after.full_pushed_seq, after.full_push_seq, "{after:?}");
    let watermark = after.pushed_through_ms.expect("the chain completed");
    assert!(
        (runs[0].started_ms..=runs[0].ended_ms).contains(&watermark),
        "watermark {watermark}, first run {}..{}",
        runs[0].started_ms,
        runs[0].ended_ms
    );

    // In sync now: a full push reads each events page with the mapping heads of its UID
    // range and writes nothing, wherever a page begins or ends (an event planned without
    // its head would be a PUT).
    let job = SyncJob::unique(&x.link_id, "api");
    let quiet = calsync::handlers::run_job(&ctx, &job, Direction::Push)
        .await
        .unwrap();
    assert_eq!(quiet.outcome, "ok", "{quiet:?}");
    assert_eq!(
        (quiet.api_calls, quiet.created, quiet.updated, quiet.deleted),
        (0, 0, 0, 0),
        "{quiet:?}"
    );
}

/// A full push that reads the whole group one chunk a run (`run_budget_secs` 0), run until
/// its chain reads on past the first events page: the continuation job, and the events
/// written so far.
async fn chain_past_first_page(ctx: &Ctx, link_id: &str) -> (SyncJob, usize) {
    let mut job = SyncJob::unique(link_id, "api");
    let mut written = 0;
    loop {
        let run = calsync::handlers::run_job(ctx, &job, Direction::Push)
            .await
            .unwrap();
        assert_eq!(run.outcome, "ok", "{run:?}");
        written += run.created as usize;
        let queued = runner::take(ctx, QueueKind::SyncBack, link_id)
            .await
            .unwrap();
        job = queued
            .into_iter()
            .find(|j| j.trigger == "continue")
            .expect("a continuation");
        if job.resume.as_ref().and_then(|r| r.after.as_ref()).is_some() {
            return (job, written);
        }
        assert!(written < N, "the chain never left its first page");
    }
}

/// Push `job` with the default run budget (420 s): a run that is not stopped for time.
async fn run_with_time(ctx: &mut Ctx, job: &SyncJob) -> calsync::model::RunRecord {
    ctx.config.run_budget_secs = 420;
    let run = calsync::handlers::run_job(ctx, job, Direction::Push)
        .await
        .unwrap();
    assert_eq!(run.outcome, "ok", "{run:?}");
    run
}

/// No second pass when a full push of the link began after this one (at 10,000 events an
/// initial sync's early sync-back and the pull's own run as interleaved chains): the later
/// push reads what came in, so this one completes after its one read.
#[tokio::test]
async fn no_second_pass_when_a_later_full_push_began() {
    const LATE: usize = calsync::engine::PUSH_TARGETED_MAX + 20;
    let mut ctx = local_ctx().await;
    let Unsynced { group, r, x, .. } = pulled(&ctx, "later-push", N).await;
    ctx.config.run_budget_secs = 0;
    let (job, written) = chain_past_first_page(&ctx, &x.link_id).await;
    hub_late_events(&ctx, &group, &r.link_id, LATE).await;
    let later = ctx.store().begin_full_push(&x.link_id).await.unwrap();

    let last = run_with_time(&mut ctx, &job).await;
    assert_eq!(written + last.created as usize, N, "{last:?}");
    let after = ctx.store().get_link(&x.link_id).await.unwrap().unwrap();
    assert_eq!(after.full_push_seq, later, "{after:?}");
    assert_eq!(after.full_pushed_seq, later - 1, "{after:?}");
}

/// A second pass reads its first page while the first pass's last page is written, so the
/// mapping heads it reads can predate that page's receipts: it leaves alone every event the
/// run has sent a write for. Here the group is one events page, so the second pass reads
/// the heads of the very events the first pass is writing.
#[tokio::test]
async fn a_second_pass_leaves_alone_what_its_run_wrote() {
    const SMALL: usize = 60;
    const LATE: usize = calsync::engine::PUSH_TARGETED_MAX + 20;
    let mut ctx = local_ctx().await;
    let Unsynced { dst, group, r, x } = pulled(&ctx, "second-heads", SMALL).await;
    // The chain's first run writes one chunk and stops.
    ctx.config.run_budget_secs = 0;
    let first =
        calsync::handlers::run_job(&ctx, &SyncJob::unique(&x.link_id, "api"), Direction::Push)
            .await
            .unwrap();
    assert_eq!(first.created, 50, "{first:?}");
    let job = runner::take(&ctx, QueueKind::SyncBack, &x.link_id)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.trigger == "continue")
        .expect("a continuation");
    hub_late_events(&ctx, &group, &r.link_id, LATE).await;

    // The continuation reads the one page (the late events among it) and writes it; as more
    // than PUSH_TARGETED_MAX changed since the chain began, a second pass reads the page
    // again meanwhile, before the writes are recorded.
    let last = run_with_time(&mut ctx, &job).await;
    assert_eq!(last.created as usize, SMALL - 50 + LATE, "{last:?}");
    // One request a write: no create sent again (a 412 and the fetch that adopts).
    assert_eq!(last.api_calls, last.created, "{last:?}");
    let counts = fixtures::uid_counts(&ctx, &dst).await.unwrap();
    assert_eq!(counts.len(), SMALL + LATE);
    let after = ctx.store().get_link(&x.link_id).await.unwrap().unwrap();
    assert_eq!(after.full_pushed_seq, after.full_push_seq, "{after:?}");
}
