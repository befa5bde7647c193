//! Google push notifications end to end: a change at Google reaches CalDAV through the
//! channel and the webhook, and forged or stale webhooks are refused. Needs the local stack.

use calsync_e2e::emulators::google::Config;
use calsync_e2e::fixtures::{self, pair, simple_event, sync_user};
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::local_ctx;
use serde_json::json;

use super::google_sync::{edit_on_google, runs};

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
