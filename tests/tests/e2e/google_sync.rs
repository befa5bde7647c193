//! Google ↔ Radicale ↔ Xandikos through the Google emulator: convergence, API economy, 410,
//! duplicates, 412 races, quota storms, reverted occurrences and pushes past their budget.
//! Push notifications are in `google_push`, tokens and grants in `google_accounts`, the
//! consent in `google_consent`. Needs the local stack (`make test` starts it).

use std::collections::BTreeSet;

use calsync::model::RunRecord;
use calsync::provider::Provider;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::fixtures::{self, pair, simple_event, sync_user};
use calsync_e2e::google::{all_occurrences, google_series, LocalGoogle};
use calsync_e2e::local_ctx;
use serde_json::json;

pub(crate) async fn runs(ctx: &calsync::config::Ctx, link: &str) -> Vec<RunRecord> {
    ctx.store().runs_of_link(link).await.expect("runs")
}

/// Edit `item`'s summary through the Google API as its user would, and wait until the
/// emulator has delivered the `exists` notification for it to our webhook (answered 200).
pub(crate) async fn edit_on_google(
    lg: &LocalGoogle,
    api: &calsync_e2e::google::UserApi,
    item: &serde_json::Value,
    summary: &str,
) {
    let delivered_before = lg.emu.push_deliveries().len();
    api.patch(
        item["id"].as_str().expect("id"),
        json!({ "summary": summary }),
    )
    .await
    .expect("patch");
    lg.emu
        .wait_for_delivery(
            delivered_before,
            |d| d.state == "exists" && d.status == 200,
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|| panic!("no push delivered: {:?}", lg.emu.push_deliveries()));
}

pub(crate) fn assert_no_notifications(lg: &LocalGoogle) {
    let sends: Vec<_> = lg
        .emu
        .sends()
        .into_iter()
        .filter(|s| s.send_updates.as_deref() != Some(calsync_e2e::google::USER_SEND_UPDATES))
        .collect();
    assert!(!sends.is_empty(), "no writes recorded");
    for s in &sends {
        assert_eq!(s.send_updates.as_deref(), Some("none"), "{s:?}");
    }
}

pub(crate) async fn caldav_occurrences(
    ctx: &calsync::config::Ctx,
    url: &str,
) -> BTreeSet<calsync::ical::Occurrence> {
    let events = fixtures::events_in(ctx, url).await.expect("events");
    all_occurrences(events.iter().map(|(_, s)| s))
}

/// Three-way convergence for a calendar; then a sync with no change costs one Google request
/// and writes nothing; no write asks Google to e-mail guests.
async fn converge(tag: &str, ical_file: Option<&str>) {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let text = match ical_file {
        Some(p) => std::fs::read_to_string(p).expect("corpus file"),
        None => calsync_e2e::demo::SAMPLE.to_string(),
    };
    let parsed = calsync::ical::parse_calendar("seed", &text).expect("parses");
    let seed: Vec<String> = parsed.series.iter().map(|s| s.to_ical()).collect();
    let p = pair(&lg.ctx, tag, &seed).await.expect("pair");
    let g = lg
        .connect(&p.group, p.user, &format!("{tag}@example.com"), "google")
        .await
        .expect("connect");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let provider = lg.provider(&g).await.expect("provider");
    let google = google_series(&provider).await.expect("google events");
    let r = caldav_occurrences(&ctx, &p.radicale).await;
    let x = caldav_occurrences(&ctx, &p.xandikos).await;
    let gocc = all_occurrences(&google);
    assert_eq!(
        google.len(),
        parsed.series.len(),
        "every series in Google once"
    );
    assert!(!r.is_empty());
    let diff = |a: &BTreeSet<calsync::ical::Occurrence>,
                b: &BTreeSet<calsync::ical::Occurrence>| {
        let only_a: Vec<_> = a.difference(b).take(4).collect();
        let only_b: Vec<_> = b.difference(a).take(4).collect();
        format!("only left: {only_a:?}\nonly right: {only_b:?}")
    };
    // Google holds, for every event, exactly what it can hold of the CalDAV version (the
    // projection); the CalDAV members keep the rest (compared by occurrence below).
    let rad = fixtures::events_in(&ctx, &p.radicale)
        .await
        .expect("events");
    assert_eq!(
        rad.iter()
            .map(|(_, s)| s.uid.clone())
            .collect::<BTreeSet<_>>(),
        google
            .iter()
            .map(|s| s.uid.clone())
            .collect::<BTreeSet<_>>()
    );
    for (_, s) in &rad {
        let projected =
            calsync::provider::google::mapping::project(&s.to_ical()).expect("writable");
        let projected = calsync::ical::EventSeries::parse_single("p", &projected).expect("parses");
        let g = google.iter().find(|g| g.uid == s.uid).expect("in Google");
        assert!(
            g.same_content(&projected),
            "{}: Google\n{}\nvs projection of Radicale\n{}",
            s.uid,
            g.to_ical(),
            projected.to_ical()
        );
    }
    assert!(!gocc.is_empty());
    assert!(r == x, "Radicale and Xandikos differ:\n{}", diff(&r, &x));
    // The same occurrences (RFC 5545 reading: an override replaces the instance it names).
    let rad_series: Vec<calsync::ical::EventSeries> = rad.iter().map(|(_, s)| s.clone()).collect();
    let (g_rfc, r_rfc) = (
        calsync_e2e::outlook::rfc_occurrences(&google),
        calsync_e2e::outlook::rfc_occurrences(&rad_series),
    );
    assert!(
        g_rfc == r_rfc,
        "Google and Radicale differ:\n{}",
        diff(&g_rfc, &r_rfc)
    );

    // No change: one request for the Google pull, no writes anywhere.
    let writes = lg.emu.sends().len();
    let before = runs(&ctx, &g.link_id).await.len();
    let stats = sync_user(&lg.ctx, p.user).await.expect("sync");
    assert_eq!(stats.pushes, 0, "nothing to push: {stats:?}");
    let after = runs(&ctx, &g.link_id).await;
    assert_eq!(after.len(), before + 1);
    let last = after.last().expect("run");
    assert_eq!(
        (last.kind.as_str(), last.api_calls),
        ("pull", 1),
        "{last:?}"
    );
    assert_eq!(lg.emu.sends().len(), writes);
    assert_no_notifications(&lg);
}
#[tokio::test]
async fn sample_calendar_converges_three_ways() {
    converge("gsample", None).await;
}

#[tokio::test]
async fn recurring_corpus_calendars_converge_three_ways() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/ics/recurring-ical-events"
    );
    for f in ["issue_62_moved_event.ics", "issue_48_dst.ics"] {
        converge("grecur", Some(&format!("{dir}/{f}"))).await;
    }
}

/// Real-world files that are not quite RFC 5545 (issue 13, item 6): a monthly BYDAY series
/// with a period RDATE and an EXDATE, an Exchange meeting request (an old Outlook display
/// name as TZID with its VTIMEZONE, attendees, X-MICROSOFT-* properties), and an event
/// without UID: all reach Google with the same occurrences as on CalDAV.
#[tokio::test]
async fn real_world_calendars_converge_three_ways() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/ics");
    for f in [
        "recurring-ical-events/issue_113_period_in_rdate.ics",
        "ical4j/invalid/tmeher.ics",
        "khal/without_uid.ics",
    ] {
        converge("greal", Some(&format!("{dir}/{f}"))).await;
    }
}

#[tokio::test]
async fn sync_token_loss_duplicate_create_and_412_race() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(
        &ctx,
        Config {
            page_cap: 2,
            ..Config::default()
        },
    )
    .await
    .expect("google");
    let seed: Vec<String> = (1..=5)
        .map(|i| simple_event(&format!("tok-{i}@test"), &format!("E{i}"), i))
        .collect();
    let p = pair(&lg.ctx, "g410", &seed).await.expect("pair");
    let g = lg
        .connect(&p.group, p.user, "g410@example.com", "google")
        .await
        .expect("connect");
    sync_user(&lg.ctx, p.user).await.expect("sync");

    // 410: the next pull re-enumerates (short pages), creates and deletes nothing.
    reqwest::Client::new()
        .post(format!(
            "{}/emulator/calendars/g410@example.com/expire-sync-tokens",
            lg.emu.url
        ))
        .send()
        .await
        .expect("expire");
    let writes = lg.emu.sends().len();
    fixtures::sync_link(&lg.ctx, &g.link_id)
        .await
        .expect("sync");
    let last = runs(&ctx, &g.link_id)
        .await
        .into_iter()
        .rfind(|r| r.kind == "pull")
        .expect("run");
    assert_eq!(
        (last.created, last.deleted, last.updated),
        (0, 0, 0),
        "{last:?}"
    );
    assert!(last.api_calls >= 4, "410 then paged full listing: {last:?}");
    assert_eq!(lg.emu.sends().len(), writes, "410 wrote to Google");
    let provider = lg.provider(&g).await.expect("provider");
    assert_eq!(google_series(&provider).await.expect("list").len(), 5);

    // Crash after the insert: the event is in Google, the mapping write was lost. The retry
    // meets 409 on the deterministic id and adopts the event.
    let uid = "crash-1@test";
    let ical = simple_event(uid, "Crash", 20);
    provider.create(uid, &ical).await.expect("first attempt");
    fixtures::client_put(&ctx, &p.radicale, &ical)
        .await
        .expect("put");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let google = google_series(&provider).await.expect("list");
    assert_eq!(
        google.iter().filter(|s| s.uid == uid).count(),
        1,
        "no duplicate"
    );
    assert_eq!(google.len(), 6);

    // 412 race: the same event edited in Google (summary) and in Radicale (location) before
    // either syncs; the Radicale change is pushed with a stale If-Match, the 412 makes calsync
    // re-read Google and merge (policy merge): both edits survive everywhere.
    let api = lg.user_api(&g).await.expect("api");
    let item = api
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|e| e["extendedProperties"]["private"]["calsyncUid"] == "tok-1@test")
        .expect("tok-1");
    api.patch(
        item["id"].as_str().expect("id"),
        json!({"summary": "Google title"}),
    )
    .await
    .expect("patch");
    fixtures::client_edit(&ctx, &p.radicale, "tok-1@test", |s| {
        s.replace("LOCATION:Room 1", "LOCATION:Room 9")
    })
    .await
    .expect("edit");
    fixtures::sync_link(&lg.ctx, &p.r.link_id)
        .await
        .expect("sync");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    for url in [&p.radicale, &p.xandikos] {
        let ev = fixtures::events_in(&ctx, url).await.expect("events");
        let s = &ev
            .iter()
            .find(|(_, s)| s.uid == "tok-1@test")
            .expect("tok-1")
            .1;
        assert_eq!(s.summary(), "Google title", "{url}");
        assert_eq!(s.text("LOCATION").as_deref(), Some("Room 9"), "{url}");
    }
    let s = google_series(&provider).await.expect("list");
    let t = s.iter().find(|s| s.uid == "tok-1@test").expect("tok-1");
    assert_eq!(
        (t.summary().as_str(), t.text("LOCATION").as_deref()),
        ("Google title", Some("Room 9"))
    );
    assert_no_notifications(&lg);
}

#[tokio::test]
async fn quota_storms_delay_but_lose_nothing() {
    let ctx = local_ctx().await;
    for with_429 in [false, true] {
        let lg = LocalGoogle::start(
            &ctx,
            Config {
                quota_with_429: with_429,
                ..Config::default()
            },
        )
        .await
        .expect("google");
        let seed: Vec<String> = (1..=4)
            .map(|i| simple_event(&format!("storm-{i}@test"), "S", i))
            .collect();
        let p = pair(&lg.ctx, "gstorm", &seed).await.expect("pair");
        let g = lg
            .connect(&p.group, p.user, "storm@example.com", "google")
            .await
            .expect("connect");
        let status = if with_429 { 429 } else { 403 };
        lg.emu.fail_next(status, 4);
        let stats = sync_user(&lg.ctx, p.user).await.expect("sync");
        assert_eq!(stats.failures, 0, "backoff absorbed the storm: {stats:?}");
        let provider = lg.provider(&g).await.expect("provider");
        assert_eq!(google_series(&provider).await.expect("list").len(), 4);
        let calls: u32 = runs(&ctx, &g.link_id)
            .await
            .iter()
            .map(|r| r.api_calls)
            .sum();
        assert!(calls >= 4 + 4, "the refused requests were retried: {calls}");
    }
}

/// A moved occurrence put back on CalDAV (the override removed) is put back in Google too,
/// and the next pull does not bring the old override back.
#[tokio::test]
async fn a_reverted_occurrence_is_reverted_in_google() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let series = |moved: bool| {
        let over = if moved {
            "BEGIN:VEVENT\r\nUID:rev@test\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20270112T090000Z\r\n\
DTSTART:20270112T150000Z\r\nDTEND:20270112T160000Z\r\nSUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n"
        } else {
            ""
        };
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:rev@test\r\n\
DTSTAMP:20260101T000000Z\r\nDTSTART:20270105T090000Z\r\nDTEND:20270105T100000Z\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n{over}END:VCALENDAR\r\n"
        )
    };
    let p = pair(&lg.ctx, "grev", &[series(true)]).await.expect("pair");
    let g = lg
        .connect(&p.group, p.user, "rev@example.com", "google")
        .await
        .expect("connect");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let provider = lg.provider(&g).await.expect("provider");
    let moved_in_google = || async {
        let s = google_series(&provider).await.expect("google");
        all_occurrences(&s)
            .iter()
            .any(|o| o.summary.contains("moved"))
    };
    assert!(moved_in_google().await, "the override reached Google");

    fixtures::client_edit(&ctx, &p.radicale, "rev@test", |_| series(false))
        .await
        .expect("revert");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    sync_user(&lg.ctx, p.user).await.expect("sync again");
    assert!(
        !moved_in_google().await,
        "Google still holds the moved occurrence"
    );
    for url in [&p.radicale, &p.xandikos] {
        let occ = caldav_occurrences(&ctx, url).await;
        assert_eq!(occ.len(), 4);
        assert!(
            occ.iter().all(|o| !o.summary.contains("moved")),
            "the override came back to {url}"
        );
    }

    // Google now keeps an exception object identical to its occurrence. Renaming the series
    // elsewhere renames that occurrence too (it is reset with the master, not left stale).
    fixtures::client_edit(&ctx, &p.radicale, "rev@test", |_| {
        series(false).replace("SUMMARY:Weekly", "SUMMARY:Weekly renamed")
    })
    .await
    .expect("rename");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    sync_user(&lg.ctx, p.user).await.expect("sync again");
    let google = google_series(&provider).await.expect("google");
    let summaries: BTreeSet<String> = all_occurrences(&google)
        .iter()
        .map(|o| o.summary.clone())
        .collect();
    assert_eq!(
        summaries,
        BTreeSet::from(["Weekly renamed".to_string()]),
        "every Google occurrence renamed"
    );
    for url in [&p.radicale, &p.xandikos] {
        let occ = caldav_occurrences(&ctx, url).await;
        assert!(
            occ.iter().all(|o| o.summary == "Weekly renamed"),
            "{url}: {occ:?}"
        );
    }

    // One occurrence deleted in Google (a cancelled instance) is excluded everywhere; restored
    // on Radicale (EXDATE removed), it comes back in Google too.
    let api = lg.user_api(&g).await.expect("api");
    let master = api
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|e| e["iCalUID"] == "rev@test" && e["recurringEventId"].is_null())
        .expect("master");
    let id = master["id"].as_str().expect("id");
    api.delete(&format!("{id}_20270119T090000Z"))
        .await
        .expect("delete instance");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    assert_eq!(caldav_occurrences(&ctx, &p.xandikos).await.len(), 3);
    fixtures::client_edit(&ctx, &p.radicale, "rev@test", |_| {
        series(false).replace("SUMMARY:Weekly", "SUMMARY:Weekly renamed")
    })
    .await
    .expect("restore");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    sync_user(&lg.ctx, p.user).await.expect("sync again");
    let google = google_series(&provider).await.expect("google");
    assert_eq!(all_occurrences(&google).len(), 4, "restored in Google");
    for url in [&p.radicale, &p.xandikos] {
        assert_eq!(caldav_occurrences(&ctx, url).await.len(), 4, "{url}");
    }
}

/// A push with more writes than fit in a run's time budget stops after a chunk and queues its
/// continuation: everything arrives, once, over several runs.
#[tokio::test]
async fn a_push_past_its_budget_continues_in_another_run() {
    let ctx = local_ctx().await;
    let mut lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let events: Vec<String> = (0..120)
        .map(|i| {
            simple_event(
                &format!("budget-{i}@test"),
                &format!("E{i}"),
                1 + (i % 28) as u32,
            )
        })
        .collect();
    let p = pair(&lg.ctx, "gbudget", &events).await.expect("pair");
    let g = lg
        .connect(&p.group, p.user, "budget@example.com", "google")
        .await
        .expect("connect");
    lg.ctx.config.run_budget_secs = 0; // one chunk (20 writes, the quota's burst) per run
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let pushes: Vec<RunRecord> = runs(&ctx, &g.link_id)
        .await
        .into_iter()
        .filter(|r| r.kind == "push" && r.created > 0)
        .collect();
    assert_eq!(
        pushes.iter().map(|r| r.created).collect::<Vec<_>>(),
        vec![20; 6],
        "six runs of one chunk each"
    );
    assert!(
        pushes.iter().any(|r| r.trigger == "continue"),
        "a continuation was queued: {:?}",
        pushes.iter().map(|r| &r.trigger).collect::<Vec<_>>()
    );
    let provider = lg.provider(&g).await.expect("provider");
    assert_eq!(google_series(&provider).await.expect("google").len(), 120);
}
