//! Google ↔ Radicale ↔ Xandikos through the Google emulator: connection by OAuth, convergence,
//! API economy, 410, duplicates, 412 races, quota storms, push notifications, forged
//! webhooks, token refresh and revocation. Needs the local stack (`make test` starts it).

use std::collections::BTreeSet;

use calsync::model::{LinkStatus, RunRecord};
use calsync::provider::Provider;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::fixtures::{self, pair, simple_event, sync_user};
use calsync_e2e::google::{all_occurrences, google_series, LocalGoogle};
use calsync_e2e::local_ctx;
use serde_json::json;

async fn runs(ctx: &calsync::config::Ctx, link: &str) -> Vec<RunRecord> {
    ctx.store().runs_of_link(link).await.expect("runs")
}

/// Edit `item`'s summary through the Google API as its user would, and wait until the
/// emulator has delivered the `exists` notification for it to our webhook (answered 200).
async fn edit_on_google(
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

fn assert_no_notifications(lg: &LocalGoogle) {
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

async fn caldav_occurrences(
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
async fn push_notification_syncs_and_forged_webhooks_are_refused() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let p = pair(
        &lg.ctx,
        "gpush",
        &[simple_event("push-1@test", "Before", 5)],
    )
    .await
    .expect("pair");
    let g = lg
        .connect(&p.group, p.user, "push@example.com", "google")
        .await
        .expect("connect");
    sync_user(&lg.ctx, p.user).await.expect("sync");
    let channels: Vec<_> = ctx
        .store()
        .all_channels()
        .await
        .expect("channels")
        .into_iter()
        .filter(|c| c.link_id == g.link_id)
        .collect();
    assert_eq!(channels.len(), 1, "one channel per Google link");

    // Forged: unknown channel, then the right channel with a wrong token → 4xx, no job.
    let http = reqwest::Client::new();
    let post = |id: &str, token: &str| {
        http.post(lg.hooks.push_url())
            .header("X-Goog-Channel-ID", id)
            .header("X-Goog-Channel-Token", token)
            .header("X-Goog-Resource-State", "exists")
            .header("X-Goog-Message-Number", "99")
            .header("X-Goog-Resource-ID", "res")
            .send()
    };
    assert_eq!(post("nope", "x").await.expect("post").status(), 404);
    assert_eq!(
        post(&channels[0].channel_id, "forged")
            .await
            .expect("post")
            .status(),
        403
    );
    let stats = calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    assert_eq!(
        (stats.pulls, stats.pushes),
        (0, 0),
        "forged webhooks queued work"
    );

    // An edit in Google: the emulator delivers `exists`, our webhook queues the sync.
    let api = lg.user_api(&g).await.expect("api");
    let item = api
        .list()
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("event");
    edit_on_google(&lg, &api, &item, "Edited on Google").await;
    let stats = calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    assert!(stats.pulls >= 1 && stats.pushes >= 1, "{stats:?}");
    let r = fixtures::events_in(&ctx, &p.radicale)
        .await
        .expect("events");
    assert_eq!(r[0].1.summary(), "Edited on Google");
    let x = fixtures::events_in(&ctx, &p.xandikos)
        .await
        .expect("events");
    assert_eq!(x[0].1.summary(), "Edited on Google");
    assert!(runs(&ctx, &g.link_id)
        .await
        .iter()
        .any(|r| r.trigger == "push"));
    assert!(lg
        .emu
        .push_deliveries()
        .iter()
        .any(|d| d.state == "sync" && d.number == 1));

    // A burst of edits: one notification each, but the first one queues the pull and the
    // others, counted while it is still queued, are coalesced into it: one message, one
    // pull, no Google request for the others.
    let pulls_before = runs(&ctx, &g.link_id)
        .await
        .iter()
        .filter(|r| r.trigger == "push")
        .count();
    let delivered_before = lg.emu.push_deliveries().len();
    for i in 1..=4 {
        api.patch(
            item["id"].as_str().expect("id"),
            json!({"summary": format!("Burst {i}")}),
        )
        .await
        .expect("patch");
    }
    for n in 0..4 {
        lg.emu
            .wait_for_delivery(
                delivered_before + n,
                |d| d.state == "exists" && d.status == 200,
                std::time::Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let requests_before = lg.emu.requests();
    let drained = calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    assert_eq!(
        drained.pulls, 1,
        "four notifications, one queued job: {drained:?}"
    );
    let push_pulls = runs(&ctx, &g.link_id)
        .await
        .iter()
        .filter(|r| r.trigger == "push")
        .count()
        - pulls_before;
    assert_eq!(push_pulls, 1, "four notifications, one pull");
    let x = fixtures::events_in(&ctx, &p.xandikos)
        .await
        .expect("events");
    assert_eq!(x[0].1.summary(), "Burst 4");
    assert!(
        lg.emu.requests() - requests_before <= 2,
        "one list (and at most one series read): {}",
        lg.emu.requests() - requests_before
    );

    // That pull took the marker: the next edit's notification queues a pull of its own.
    edit_on_google(&lg, &api, &item, "After the burst").await;
    let drained = calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    assert_eq!(drained.pulls, 1, "{drained:?}");
    let x = fixtures::events_in(&ctx, &p.xandikos)
        .await
        .expect("events");
    assert_eq!(x[0].1.summary(), "After the burst");
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

#[tokio::test]
async fn token_refresh_is_single_under_concurrency_and_revocation_needs_reconnect() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let logs = calsync_e2e::logs::capture();
    let p = pair(&lg.ctx, "gtok", &[simple_event("tok@test", "T", 3)])
        .await
        .expect("pair");
    let g = lg
        .connect(&p.group, p.user, "tok@example.com", "google")
        .await
        .expect("connect");
    let arn = g.secret_arn.clone().expect("arn");
    let stats_url = format!("{}/emulator/oauth/stats", lg.emu.url);
    let refreshes = || async {
        let v: serde_json::Value = reqwest::get(&stats_url)
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        v["refresh_grants"].as_u64().expect("count")
    };
    // Expire the stored access token; eight workers want a token at once.
    let mut t = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .expect("tokens");
    let old_access = {
        use secrecy::ExposeSecret;
        t.access_token.expose_secret().to_string()
    };
    t.expires_at = 0;
    calsync::oauth::write_tokens(&lg.ctx, &arn, &t)
        .await
        .expect("write");
    let before = refreshes().await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = lg.ctx.clone();
        let a = arn.clone();
        set.spawn(async move {
            calsync::oauth::access_token(&c, &calsync::provider::google::OAUTH, &a, 60)
                .await
                .map(|_| ())
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task").expect("token");
    }
    assert_eq!(
        refreshes().await - before,
        1,
        "one refresh for eight concurrent callers"
    );

    // Token values appear nowhere in DynamoDB.
    let fresh = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .expect("tokens");
    let values: Vec<String> = {
        use secrecy::ExposeSecret;
        let mut v = vec![old_access, fresh.access_token.expose_secret().to_string()];
        v.extend(
            fresh
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_string()),
        );
        v
    };
    let dump = format!(
        "{:?}{:?}{:?}{:?}",
        ctx.store().all_links().await.expect("links"),
        ctx.store().all_channels().await.expect("channels"),
        runs(&ctx, &g.link_id).await,
        ctx.store()
            .mappings_of_link(&g.link_id)
            .await
            .expect("maps"),
    );
    for v in &values {
        assert!(!dump.contains(v.as_str()), "a token value reached DynamoDB");
    }

    // An access token that dies before its expiry: the run gets a 401, refreshes once,
    // retries and succeeds; the link stays ok.
    reqwest::Client::new()
        .post(format!("{}/emulator/oauth/expire-access", lg.emu.url))
        .send()
        .await
        .expect("expire")
        .error_for_status()
        .expect("expired");
    let before = refreshes().await;
    let stats = fixtures::sync_link(&lg.ctx, &g.link_id)
        .await
        .expect("sync");
    assert_eq!(stats.failures, 0, "{stats:?}");
    assert_eq!(refreshes().await - before, 1, "one refresh after the 401");
    let link = ctx
        .store()
        .get_link(&g.link_id)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(link.status, LinkStatus::Ok, "{link:?}");
    let last = runs(&ctx, &g.link_id).await.pop().expect("a run");
    assert_eq!(last.outcome, "ok", "{last:?}");

    // Revocation: the link becomes reconnect_needed with a readable reason, and the
    // fan-out stops queueing it.
    reqwest::Client::new()
        .post(format!("{}/emulator/oauth/revoke", lg.emu.url))
        .json(&json!({"refresh_token": values.last().expect("refresh token")}))
        .send()
        .await
        .expect("revoke")
        .error_for_status()
        .expect("revoked");
    let mut t = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .expect("tokens");
    t.expires_at = 0;
    calsync::oauth::write_tokens(&lg.ctx, &arn, &t)
        .await
        .expect("write");
    let stats = fixtures::sync_link(&lg.ctx, &g.link_id)
        .await
        .expect("sync");
    assert_eq!(stats.failures, 0, "not retried: {stats:?}");
    let link = ctx
        .store()
        .get_link(&g.link_id)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(link.status, LinkStatus::ReconnectNeeded);
    assert!(
        link.status_reason
            .as_deref()
            .unwrap_or("")
            .contains("reconnect"),
        "{link:?}"
    );
    // A job for it (say, queued before the revocation) runs no request and records no run;
    // edits elsewhere queue no sync-back for it.
    let (runs_before, refreshes_before, calls_before) = (
        runs(&ctx, &g.link_id).await.len(),
        refreshes().await,
        lg.emu.requests(),
    );
    fixtures::sync_link(&lg.ctx, &g.link_id)
        .await
        .expect("sync");
    fixtures::client_edit(&ctx, &p.radicale, "tok@test", |t| {
        t.replace("SUMMARY:T", "SUMMARY:Edited while disconnected")
    })
    .await
    .expect("edit");
    fixtures::sync_link(&lg.ctx, &p.r.link_id)
        .await
        .expect("sync");
    let x = fixtures::events_in(&ctx, &p.xandikos)
        .await
        .expect("events");
    assert_eq!(
        x[0].1.summary(),
        "Edited while disconnected",
        "the others sync"
    );
    assert_eq!(runs(&ctx, &g.link_id).await.len(), runs_before);
    assert_eq!(refreshes().await, refreshes_before);
    assert_eq!(
        lg.emu.requests(),
        calls_before,
        "no Google call for a disconnected link"
    );
    let answer = calsync_e2e::runner::autosync_user(&lg.ctx, p.user).await;
    assert!(
        answer["Message"]
            .as_str()
            .unwrap_or("")
            .starts_with("2 calendar"),
        "{answer}"
    );
    calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    // Issue 3: no token value in logs (the connect, refresh, sync, revocation and failure
    // paths above, at trace level for calsync, debug for HTTP and the AWS SDK) or in the
    // error text the link now carries.
    let text = logs.text();
    assert!(text.contains("run finished"), "logs were captured");
    assert!(
        text.contains("reconnect needed"),
        "the revocation was logged"
    );
    let dump = format!("{:?}", ctx.store().all_links().await.expect("links"));
    for v in &values {
        assert!(!text.contains(v.as_str()), "a token value reached the logs");
        assert!(
            !dump.contains(v.as_str()),
            "a token value reached a link's status"
        );
    }
    // The refresher leaves it alone too and stops its channel.
    let report = calsync::refresher::run(&lg.ctx).await.expect("refresher");
    assert!(
        ctx.store()
            .all_channels()
            .await
            .expect("channels")
            .iter()
            .all(|c| c.link_id != g.link_id),
        "{report:?}"
    );
}

/// A grant revoked at Google (`invalid_grant` on refresh) parks the link; a new consent for
/// the same link renews it in place: the same link id, mappings and cursor, the edits of both
/// sides made meanwhile reach the other once, and a push channel runs again.
#[tokio::test]
async fn a_revoked_grant_is_renewed_in_place_by_a_new_consent() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let p = pair(
        &lg.ctx,
        "grenew",
        &[simple_event("renew@test", "Before", 3)],
    )
    .await
    .expect("pair");
    let g = lg
        .connect(&p.group, p.user, "renew@example.com", "google")
        .await
        .expect("connect");
    calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    let arn = g.secret_arn.clone().expect("arn");
    let t = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .expect("tokens");
    let refresh = {
        use secrecy::ExposeSecret;
        t.refresh_token
            .expect("refresh token")
            .expose_secret()
            .to_string()
    };
    reqwest::Client::new()
        .post(format!("{}/emulator/oauth/revoke", lg.emu.url))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .expect("revoke")
        .error_for_status()
        .expect("revoked");
    fixtures::sync_link(&lg.ctx, &g.link_id)
        .await
        .expect("sync");
    let store = ctx.store();
    let parked = store
        .get_link(&g.link_id)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(parked.status, LinkStatus::ReconnectNeeded, "{parked:?}");
    // Meanwhile the user edits the CalDAV copy.
    fixtures::client_edit(&ctx, &p.radicale, "renew@test", |t| {
        t.replace("SUMMARY:Before", "SUMMARY:Edited while parked")
    })
    .await
    .expect("edit");
    fixtures::sync_link(&lg.ctx, &p.r.link_id)
        .await
        .expect("sync");
    let mappings = store.mappings_of_link(&g.link_id).await.expect("mappings");
    let url = calsync::connect::start_reconnect(&lg.ctx, &parked)
        .await
        .expect("reconnect consent");
    let back = lg.finish_reconnect(&url).await.expect("consent");
    assert_eq!(
        (back.link_id.as_str(), back.status),
        (g.link_id.as_str(), LinkStatus::Ok)
    );
    assert_eq!(
        back.secret_arn.as_deref(),
        Some(arn.as_str()),
        "same secret"
    );
    // The user's own Google client makes an event while calsync catches up.
    let user = lg.user_api(&back).await.expect("user api");
    user.insert(json!({"summary": "From Google", "iCalUID": "renew-google@test",
        "start": {"dateTime": "2027-03-03T10:00:00Z"}, "end": {"dateTime": "2027-03-03T11:00:00Z"}}))
        .await
        .expect("insert");
    calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    fixtures::sync_link(&lg.ctx, &g.link_id)
        .await
        .expect("sync");
    let google: Vec<String> = user
        .list()
        .await
        .expect("list")
        .iter()
        .filter(|e| e["status"] != "cancelled")
        .map(|e| e["summary"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut google = google;
    google.sort();
    assert_eq!(google, ["Edited while parked", "From Google"], "once each");
    let x: Vec<String> = fixtures::events_in(&ctx, &p.xandikos)
        .await
        .expect("events")
        .iter()
        .map(|(_, e)| e.summary())
        .collect();
    assert_eq!(x.len(), 2, "{x:?}");
    assert!(x.contains(&"From Google".to_string()), "{x:?}");
    let links = store.links_of_group(&p.group).await.expect("links");
    assert_eq!(links.len(), 3, "no second Google link: {links:?}");
    assert!(
        store
            .mappings_of_link(&g.link_id)
            .await
            .expect("mappings")
            .len()
            >= mappings.len(),
        "the mappings were kept"
    );
    assert!(
        store
            .all_channels()
            .await
            .expect("channels")
            .iter()
            .any(|c| c.link_id == g.link_id),
        "a push channel runs again"
    );
}

/// `calsync-local connect-google` (`make connect-google`): the command serves the callback on
/// its port, the person opens the printed address and consents, the command returns the
/// link; a forged callback makes it fail with the refusal instead of waiting.
#[tokio::test]
async fn command_line_connect_waits_for_the_consent_redirect() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    lg.emu
        .add_calendar("cli@example.com", "cli", "Europe/Berlin");
    // The command: its callback server on a port of its own, waiting for the redirect.
    let command = || async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let ctx = lg.ctx.clone();
        let (tx, printed) = tokio::sync::oneshot::channel();
        let run = async move {
            let timeout = std::time::Duration::from_secs(30);
            calsync_e2e::google::connect_interactively(
                ctx,
                listener,
                &calsync::connect::ConnectRequest {
                    provider: calsync::model::ProviderKind::Google,
                    group_id: "gcli-group".into(),
                    user_id: 77_001,
                    calendar_id: "cli@example.com".into(),
                    display_name: "cli".into(),
                    choices: Default::default(),
                },
                timeout,
                Some(tx),
            )
            .await
        };
        (addr, run, printed)
    };
    let (addr, cli, printed) = command().await;
    lg.use_redirect(&format!("http://{addr}/oauth/google/callback"))
        .await
        .expect("redirect");
    let person = async {
        // What the command printed; the emulator's consent page consents at once.
        let url = printed.await.expect("consent URL printed");
        assert!(
            url.starts_with(&format!("http://{addr}/oauth/google/begin?state=")),
            "{url}"
        );
        calsync_e2e::google::Browser::default()
            .open(&url)
            .await
            .expect("consent round trip")
    };
    let (link, (status, body)) = tokio::join!(cli, person);
    assert_eq!(status, 200, "{body}");
    let link = link.expect("connected");
    assert_eq!(
        (
            link.group_id.as_str(),
            link.user_id,
            link.display_name.as_str()
        ),
        ("gcli-group", 77_001, "cli")
    );
    assert!(
        link.url.ends_with("/calendars/cli%40example.com"),
        "{}",
        link.url
    );
    let arn = link.secret_arn.as_deref().expect("token secret");
    calsync::oauth::read_tokens(&lg.ctx, arn)
        .await
        .expect("tokens stored");
    // The first sync it queued runs while the emulator is up (the queues are shared).
    calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    let first = runs(&ctx, &link.link_id).await;
    assert!(
        first.iter().any(|r| r.kind == "pull" && r.outcome == "ok"),
        "{first:?}"
    );

    let (addr, cli, _printed) = command().await;
    let forged = async {
        reqwest::get(format!(
            "http://{addr}/oauth/google/callback?code=stolen&state=forged"
        ))
        .await
        .expect("callback")
        .status()
        .as_u16()
    };
    let (refused, status) = tokio::join!(cli, forged);
    assert!((400..500).contains(&status), "{status}");
    let err = refused.expect_err("a forged callback does not connect");
    assert!(err.to_string().contains("connect refused"), "{err}");
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

/// The consent is bound to the browser that began it: a callback carrying the code and
/// state but not that browser's cookie connects nothing (login CSRF / a stolen consent
/// link), the begin URL works once, and the state is used up by the refused attempt.
#[tokio::test]
async fn a_consent_finishes_only_in_the_browser_that_began_it() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    lg.emu
        .add_calendar("bound@example.com", "bound", "Europe/Berlin");
    let user = 88_001;
    let url = calsync_e2e::google::consent_url(
        &lg.ctx,
        "bound-group",
        user,
        "bound@example.com",
        "bound",
    )
    .await
    .expect("consent url");
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The victim's browser begins: it gets the cookie and goes to the consent page.
    let begun = no_follow.get(&url).send().await.unwrap();
    assert_eq!(begun.status().as_u16(), 302);
    let cookie = begun.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-calsync-oauth=")
            && cookie.contains("Secure")
            && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let consent = begun.headers()["location"].to_str().unwrap().to_string();
    // The begin URL is single-use.
    assert_eq!(
        no_follow.get(&url).send().await.unwrap().status().as_u16(),
        400
    );
    let back = no_follow.get(&consent).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.contains("/oauth/google/callback?"), "{callback}");
    // Another browser (no cookie, or someone else's) brings the callback: refused.
    let stolen = no_follow
        .get(&callback)
        .header("cookie", "__Host-calsync-oauth=someone-elses-state")
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status().as_u16(), 400);
    assert!(stolen.text().await.unwrap().contains("another browser"));
    // The state is used up: even the right browser cannot finish with it now.
    let kv = cookie.split(';').next().unwrap().to_string();
    let late = no_follow
        .get(&callback)
        .header("cookie", kv)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status().as_u16(), 400);
    assert!(
        ctx.store().links_of_user(user).await.unwrap().is_empty(),
        "nothing connected"
    );
}

/// Disconnecting a Google calendar through the API stops its push channel at Google, revokes
/// the grant (RFC 7009 at the revocation endpoint) and deletes the token secret; the copies
/// stay in Google.
#[tokio::test]
async fn disconnecting_google_stops_the_channel_and_revokes_the_grant() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let user = 89_001 + (uuid::Uuid::now_v7().as_u128() % 1_000) as i64;
    let link = lg
        .connect("gone-group", user, "gone@example.com", "gone")
        .await
        .expect("connect");
    fixtures::sync_link(&lg.ctx, &link.link_id)
        .await
        .expect("sync");
    let arn = link.secret_arn.clone().expect("token secret");
    let refresh = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .unwrap()
        .refresh_token
        .expect("refresh token");
    let channels = |ctx: calsync::config::Ctx, id: String| async move {
        ctx.store()
            .all_channels()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.link_id == id)
            .count()
    };
    assert_eq!(channels(lg.ctx.clone(), link.link_id.clone()).await, 1);
    let srv = calsync_e2e::api::ApiServer::start_local(lg.ctx.clone())
        .await
        .unwrap();
    let gone = srv
        .as_user(user)
        .delete(&format!("/v1/links/{}", link.link_id))
        .await
        .unwrap();
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(
        channels(lg.ctx.clone(), link.link_id.clone()).await,
        0,
        "channel record gone"
    );
    let stats: serde_json::Value = reqwest::get(format!("{}/emulator/oauth/stats", lg.emu.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["revocations"], 1, "{stats}");
    let client = calsync::oauth::load_client(&lg.ctx, &calsync::provider::google::OAUTH)
        .await
        .unwrap();
    let again = calsync::oauth::refresh(&lg.ctx.clients.http, &client, &refresh).await;
    assert!(
        again.is_err_and(|e| e.needs_reconnect()),
        "the grant is revoked"
    );
    assert!(
        lg.ctx
            .clients
            .secrets
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .is_err(),
        "secret deleted"
    );
    assert!(lg
        .ctx
        .store()
        .get_link(&link.link_id)
        .await
        .unwrap()
        .is_none());
}
