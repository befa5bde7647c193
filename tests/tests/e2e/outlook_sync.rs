//! Outlook (Graph emulator) ↔ Google (emulator) ↔ Radicale ↔ Xandikos: connection through the
//! Microsoft consent, four-way convergence, API economy, lost delta tokens, occurrences moved
//! and cancelled in Outlook, idempotent creates, 412 races, throttling storms, batched reads.
//! Subscriptions and tokens: `outlook_accounts.rs`. Needs the local stack (`make test` starts
//! it).

use std::collections::BTreeSet;

use calsync::ical::{EventSeries, Occurrence};
use calsync::provider::Provider;
use calsync_e2e::accounts;
use calsync_e2e::emulators::graph::Config;
use calsync_e2e::fixtures::{self, pair, sync_user};
use calsync_e2e::google::{google_series, LocalGoogle};
use calsync_e2e::local_ctx;
use calsync_e2e::outlook::{outlook_pair, rfc_occurrences, LocalOutlook};

async fn caldav(ctx: &calsync::config::Ctx, url: &str) -> Vec<EventSeries> {
    fixtures::events_in(ctx, url)
        .await
        .expect("events")
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

fn diff(a: &BTreeSet<Occurrence>, b: &BTreeSet<Occurrence>) -> String {
    let only_a: Vec<_> = a.difference(b).take(4).collect();
    let only_b: Vec<_> = b.difference(a).take(4).collect();
    format!("only left: {only_a:?}\nonly right: {only_b:?}")
}

/// Four-way convergence for a calendar with the occurrence sets equal; Outlook holds the
/// projection of every CalDAV event; a no-change sync costs Outlook one request; no write
/// carried attendees.
async fn converge(tag: &str, ical_file: Option<&str>) {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Default::default())
        .await
        .expect("google");
    let lo = LocalOutlook::beside(&lg.ctx, &lg.hooks.url, Config::default())
        .await
        .expect("outlook");
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
        .expect("connect google");
    let o = lo
        .connect(&p.group, p.user, &fixtures::unique("cal"), "outlook")
        .await
        .expect("connect outlook");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let rad = caldav(&ctx, &p.radicale).await;
    let xan = caldav(&ctx, &p.xandikos).await;
    let out = lo.series(&o).await.expect("outlook events");
    let goo = google_series(&lg.provider(&g).await.expect("provider"))
        .await
        .expect("google events");
    assert_eq!(
        out.len(),
        parsed.series.len(),
        "every series in Outlook once"
    );
    let provider = lo.provider(&o).expect("provider");
    for s in &rad {
        let projected = provider.project(&s.to_ical()).expect("writable");
        let projected = EventSeries::parse_single("p", &projected).expect("parses");
        let x = out.iter().find(|x| x.uid == s.uid).expect("in Outlook");
        assert!(
            x.same_content(&projected),
            "{}: Outlook\n{}\nvs projection of Radicale\n{}",
            s.uid,
            x.to_ical(),
            projected.to_ical()
        );
    }
    let (r, x, ol, go) = (
        rfc_occurrences(&rad),
        rfc_occurrences(&xan),
        rfc_occurrences(&out),
        rfc_occurrences(&goo),
    );
    assert!(!r.is_empty());
    assert!(r == x, "Radicale and Xandikos differ:\n{}", diff(&r, &x));
    assert!(r == ol, "Radicale and Outlook differ:\n{}", diff(&r, &ol));
    assert!(r == go, "Radicale and Google differ:\n{}", diff(&r, &go));

    // No change: one request for the Outlook pull, no writes anywhere.
    let writes = lo.emu.writes().len();
    let stats = sync_user(&lg.ctx, p.user).await.expect("sync");
    assert_eq!(stats.pushes, 0, "nothing to push: {stats:?}");
    let runs = ctx.store().runs_of_link(&o.link_id).await.expect("runs");
    let last = runs.last().expect("run");
    assert_eq!(
        (last.kind.as_str(), last.api_calls),
        ("pull", 1),
        "{last:?}"
    );
    assert_eq!(lo.emu.writes().len(), writes);
    assert!(
        lo.emu.writes().iter().all(|w| !w.attendees),
        "no attendees written"
    );
}

#[tokio::test]
async fn sample_calendar_converges_four_ways() {
    converge("osample", None).await;
}

#[tokio::test]
async fn recurring_corpus_calendars_converge_four_ways() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/ics/recurring-ical-events"
    );
    for f in ["issue_62_moved_event.ics", "issue_48_dst.ics"] {
        converge("orecur", Some(&format!("{dir}/{f}"))).await;
    }
}

fn sample_seed() -> Vec<String> {
    calsync::ical::parse_calendar("seed", calsync_e2e::demo::SAMPLE)
        .expect("parses")
        .series
        .iter()
        .map(|s| s.to_ical())
        .collect()
}

async fn summary_in(ctx: &calsync::config::Ctx, url: &str, uid: &str) -> Option<EventSeries> {
    caldav(ctx, url).await.into_iter().find(|s| s.uid == uid)
}

#[tokio::test]
async fn outlook_edits_moves_and_cancellations_arrive_through_notifications() {
    let (lo, p, o) = outlook_pair("opush", &sample_seed(), Config::default()).await;
    let ctx = &lo.ctx;
    let channels: Vec<_> = ctx
        .store()
        .all_channels()
        .await
        .expect("channels")
        .into_iter()
        .filter(|c| c.link_id == o.link_id)
        .collect();
    assert_eq!(channels.len(), 1, "one subscription per link: {channels:?}");
    assert_eq!(channels[0].provider, calsync::model::ProviderKind::Outlook);
    let user = lo.user(&o).await.expect("user");
    let events = user.events().await.expect("events");
    let uid_of = |e: &serde_json::Value| calsync::provider::outlook::mapping::uid_of(e);
    // An edit of a single event, and a moved and a cancelled occurrence of the weekly series.
    let single = events
        .iter()
        .find(|e| e["type"] == "singleInstance")
        .expect("a single event");
    let single_uid = {
        let full = lo.provider(&o).expect("provider");
        let all = full
            .read_all(chrono::Utc::now() + chrono::Duration::days(3650))
            .await
            .expect("read");
        let r = all
            .iter()
            .find(|r| r.href == single["id"].as_str().unwrap())
            .expect("read back");
        EventSeries::parse_single("x", r.data.as_deref().unwrap())
            .unwrap()
            .uid
    };
    let seen = lo.emu.deliveries().len();
    user.patch(
        single["id"].as_str().unwrap(),
        serde_json::json!({"subject": "Renamed in Outlook"}),
    )
    .await
    .expect("patch");
    let standup = events
        .iter()
        .find(|e| {
            e["type"] == "seriesMaster"
                && e["subject"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Weekly stand-up")
        })
        .expect("weekly series");
    let inst = user
        .instances(standup["id"].as_str().unwrap())
        .await
        .expect("instances");
    let occ: Vec<_> = inst.iter().filter(|i| i["type"] == "occurrence").collect();
    let (moved, cancelled) = (occ[2], occ[4]);
    user.patch(
        moved["id"].as_str().unwrap(),
        serde_json::json!({"start": {"dateTime": moved["start"]["dateTime"].as_str().unwrap().replace("T09:30", "T11:00"), "timeZone": "W. Europe Standard Time"},
                           "end": {"dateTime": moved["end"]["dateTime"].as_str().unwrap().replace("T10:00", "T11:30"), "timeZone": "W. Europe Standard Time"}}),
    )
    .await
    .expect("move");
    user.delete(cancelled["id"].as_str().unwrap())
        .await
        .expect("cancel");
    // Each change was delivered to the webhook, which accepted it (202) and queued a pull.
    for _ in 0..3 {
        lo.emu
            .wait_for_delivery(
                seen,
                |d| d.status == Some(202),
                std::time::Duration::from_secs(10),
            )
            .await
            .expect("a notification accepted");
    }
    let stats = calsync_e2e::runner::drain(ctx).await.expect("drain");
    assert!(stats.pulls >= 1, "{stats:?}");
    let r = summary_in(ctx, &p.radicale, &single_uid)
        .await
        .expect("in Radicale");
    assert_eq!(r.summary(), "Renamed in Outlook");
    let x = summary_in(ctx, &p.xandikos, &single_uid)
        .await
        .expect("in Xandikos");
    assert_eq!(x.summary(), "Renamed in Outlook");
    let s = summary_in(ctx, &p.radicale, &uid_of(standup)).await;
    let s = match s {
        Some(s) => s,
        None => {
            let rad = caldav(ctx, &p.radicale).await;
            rad.into_iter()
                .find(|s| s.summary().starts_with("Weekly stand-up"))
                .expect("series in Radicale")
        }
    };
    let text = s.to_ical();
    let moved_orig = moved["start"]["dateTime"].as_str().unwrap()[..10].replace('-', "");
    let cancelled_day = cancelled["start"]["dateTime"].as_str().unwrap()[..10].replace('-', "");
    assert!(
        text.contains(&format!(
            "RECURRENCE-ID;TZID=Europe/Berlin:{moved_orig}T093000"
        )),
        "moved occurrence arrives as an override:\n{text}"
    );
    assert!(
        text.contains(&format!("DTSTART;TZID=Europe/Berlin:{moved_orig}T110000")),
        "at its new time:\n{text}"
    );
    assert!(
        text.contains(&format!("{cancelled_day}T093000")) && text.contains("EXDATE"),
        "cancelled occurrence arrives as EXDATE:\n{text}"
    );
}

#[tokio::test]
async fn a_lost_delta_token_mid_round_creates_and_deletes_nothing() {
    let (lo, p, o) = outlook_pair(
        "olost",
        &sample_seed(),
        Config {
            page_cap: 2,
            ..Config::default()
        },
    )
    .await;
    let ctx = &lo.ctx;
    let hub_before = ctx
        .store()
        .events_of_group(&p.group)
        .await
        .expect("hub")
        .len();
    // The stored token is gone, and the new round loses its state after its first page.
    lo.emu.expire_delta_tokens();
    lo.emu.expire_delta_tokens_after(1);
    let stats = fixtures::sync_link(ctx, &o.link_id).await.expect("sync");
    assert_eq!(stats.failures, 0, "{stats:?}");
    let runs = ctx.store().runs_of_link(&o.link_id).await.expect("runs");
    let last = runs.last().expect("run");
    assert_eq!(
        (
            last.outcome.as_str(),
            last.created,
            last.deleted,
            last.updated
        ),
        ("ok", 0, 0, 0),
        "{last:?}"
    );
    assert_eq!(
        ctx.store()
            .events_of_group(&p.group)
            .await
            .expect("hub")
            .len(),
        hub_before
    );
    // And the next no-change pull is one request again.
    fixtures::sync_link(ctx, &o.link_id).await.expect("sync");
    let last = ctx
        .store()
        .runs_of_link(&o.link_id)
        .await
        .expect("runs")
        .pop()
        .expect("run");
    assert_eq!(last.api_calls, 1, "{last:?}");
    let series = lo
        .emu
        .items(o.url.rsplit('/').next().unwrap())
        .into_iter()
        .filter(|i| i["type"] != "exception")
        .count();
    assert_eq!(
        series,
        sample_seed().len(),
        "no event created or lost in Outlook"
    );
}

#[tokio::test]
async fn a_repeated_create_makes_no_duplicate() {
    let (lo, _p, o) = outlook_pair("otx", &[], Config::default()).await;
    let provider = lo.provider(&o).expect("provider");
    let ev = fixtures::simple_event("dup-1@calsync.test", "Once", 5);
    // A create whose answer was lost is retried by the engine: the transactionId answers the
    // event made the first time.
    let a = provider
        .create("dup-1@calsync.test", &ev)
        .await
        .expect("create");
    let b = provider
        .create("dup-1@calsync.test", &ev)
        .await
        .expect("create again");
    assert_eq!(a.href, b.href);
    let cal = o.url.rsplit('/').next().unwrap().to_string();
    assert_eq!(lo.emu.items(&cal).len(), 1, "one event in Outlook");
}

#[tokio::test]
async fn a_412_race_is_merged_by_policy() {
    let (lo, p, o) = outlook_pair(
        "orace",
        &[fixtures::simple_event("race-1@calsync.test", "Original", 7)],
        Config::default(),
    )
    .await;
    let ctx = &lo.ctx;
    let user = lo.user(&o).await.expect("user");
    let ev = user.events().await.expect("events").pop().expect("event");
    // Outlook renames it; Radicale moves it to another room at the same time.
    user.patch(
        ev["id"].as_str().unwrap(),
        serde_json::json!({"subject": "Renamed in Outlook"}),
    )
    .await
    .expect("patch");
    fixtures::client_edit(ctx, &p.radicale, "race-1@calsync.test", |t| {
        t.replace("LOCATION:Room 1", "LOCATION:Room 9")
    })
    .await
    .expect("edit");
    fixtures::sync_link(ctx, &p.r.link_id)
        .await
        .expect("radicale pull and push");
    sync_user(ctx, p.user).await.expect("sync");
    sync_user(ctx, p.user).await.expect("settle");
    let r = summary_in(ctx, &p.radicale, "race-1@calsync.test")
        .await
        .expect("in Radicale");
    assert_eq!(r.summary(), "Renamed in Outlook");
    assert_eq!(r.text("LOCATION").as_deref(), Some("Room 9"));
    let now = user.events().await.expect("events").pop().expect("event");
    assert_eq!(
        (
            now["subject"].as_str(),
            now["location"]["displayName"].as_str()
        ),
        (Some("Renamed in Outlook"), Some("Room 9"))
    );
}

#[tokio::test]
async fn a_mailbox_concurrency_storm_delays_but_loses_nothing() {
    let seed: Vec<String> = (1..=28)
        .map(|d| {
            fixtures::simple_event(&format!("storm-{d}@calsync.test"), &format!("Storm {d}"), d)
        })
        .collect();
    let (lo, _p, o) = outlook_pair(
        "ostorm",
        &seed,
        Config {
            max_concurrency: 2,
            retry_after_secs: 0,
            latency: std::time::Duration::from_millis(5),
            ..Config::default()
        },
    )
    .await;
    let cal = o.url.rsplit('/').next().unwrap().to_string();
    assert_eq!(lo.emu.items(&cal).len(), 28, "every event arrived");
    let stats = lo.emu.stats();
    assert!(stats.throttled > 0, "the storm happened: {stats:?}");
    assert!(
        stats.max_inflight <= 4,
        "never more than 4 in flight: {stats:?}"
    );
    assert!(stats.batches >= 2, "writes went through $batch: {stats:?}");
}

#[tokio::test]
async fn events_made_in_outlook_are_read_in_batches() {
    let (lo, p, o) = outlook_pair("obatch", &[], Config::default()).await;
    let ctx = &lo.ctx;
    let user = lo.user(&o).await.expect("user");
    for d in 1..=25 {
        user.create(serde_json::json!({"subject": format!("Made in Outlook {d}"),
            "start": {"dateTime": format!("2027-02-{d:02}T10:00:00"), "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": format!("2027-02-{d:02}T11:00:00"), "timeZone": "W. Europe Standard Time"}}))
            .await
            .expect("create");
    }
    let weekly = user
        .create(serde_json::json!({"subject": "Series made in Outlook",
            "start": {"dateTime": "2027-03-01T09:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2027-03-01T09:30:00", "timeZone": "W. Europe Standard Time"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                           "range": {"type": "numbered", "startDate": "2027-03-01", "numberOfOccurrences": 4}}}))
        .await
        .expect("series");
    assert_eq!(weekly["type"], "seriesMaster");
    let batches = lo.emu.stats().batches;
    fixtures::sync_link(ctx, &o.link_id).await.expect("pull");
    // The change notifications queued pulls too: the run that found the events is the one
    // that created them.
    let runs = ctx.store().runs_of_link(&o.link_id).await.expect("runs");
    let run = runs
        .iter()
        .filter(|r| r.kind == "pull")
        .max_by_key(|r| r.created)
        .expect("pull run");
    assert_eq!(run.created, 26, "{run:?}");
    // One delta page, two $batch requests for the 26 events, one for the series' instances.
    assert!(run.api_calls <= 4, "{run:?}");
    assert_eq!(lo.emu.stats().batches - batches, 3);
    sync_user(ctx, p.user).await.expect("sync");
    assert_eq!(caldav(ctx, &p.radicale).await.len(), 26);
}

#[tokio::test]
async fn outlook_requests_spend_the_mailboxs_shared_quota() {
    let seed: Vec<String> = (1..=12)
        .map(|i| fixtures::simple_event(&format!("oq-{i}@calsync.test"), "Quota", i))
        .collect();
    let (lo, _p, o) = outlook_pair("oquota", &seed, Config::default()).await;
    let arn = o
        .secret_arn
        .clone()
        .expect("an Outlook link has a token secret");
    let account = o
        .account
        .clone()
        .expect("a consent records the link's account");
    // The mailbox's shared quota (Outlook: 10,000 requests per 10 minutes), kept in the
    // leases table as quota:outlook:<account>, counts every call reserved.
    let used = accounts::quota_reserved(&lo.ctx, &format!("outlook:{account}"))
        .await
        .expect("quota")
        .unwrap_or(0);
    let served = lo.emu.stats().requests as i64;
    assert!(
        used >= 10 && used + 10 >= served,
        "{used} requests reserved for {served} served (12 creates through $batch and the reads)"
    );
    assert_eq!(
        accounts::quota_reserved(&lo.ctx, &format!("outlook:{arn}"))
            .await
            .expect("quota"),
        None,
        "nothing is counted under the token secret"
    );
}
