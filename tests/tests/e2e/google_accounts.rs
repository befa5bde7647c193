//! A Google account's tokens: one refresh under concurrency, a revoked grant parks the link
//! and a new consent renews it in place (one signed in to another account is refused).
//! Disconnecting and the grant: `google_disconnect`; the refresher's reads: `refresher`.
//! Needs the local stack.

use calsync::model::LinkStatus;
use calsync_e2e::accounts;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::fixtures::{self, pair, simple_event};
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::local_ctx;
use serde_json::json;

use super::google_sync::runs;

/// Refresh grants the emulator's token endpoint has answered (`/emulator/oauth/stats`).
pub(crate) async fn refresh_grants(lg: &LocalGoogle) -> u64 {
    let v: serde_json::Value = reqwest::get(format!("{}/emulator/oauth/stats", lg.emu.url))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    v["refresh_grants"].as_u64().expect("count")
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
    let refreshes = || refresh_grants(&lg);
    // Expire the stored access token; eight workers want a token at once.
    let old_access = accounts::stored_token_values(&lg.ctx, &arn)
        .await
        .expect("tokens")
        .0;
    accounts::expire_stored_access_token(&lg.ctx, &arn)
        .await
        .expect("expire");
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
    accounts::expire_stored_access_token(&lg.ctx, &arn)
        .await
        .expect("expire");
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
    // The refresher leaves it alone too and stops its channel, when its next look comes.
    ctx.store()
        .want_upkeep(&g.link_id, calsync::config::now_secs())
        .await
        .expect("due");
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
    lg.revoke_grant(&g).await.expect("revoked");
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

/// A user with two Google accounts reconnects a parked link and picks the other account in
/// Google's account chooser: the reconnection is refused (409, with a reason that says so)
/// and nothing changes — the link stays parked with its own tokens, so it never pulls the
/// other account's calendar into the group. With the account that connected it, the same
/// link is renewed, and records its account if it had none (a link connected before links
/// recorded it).
#[tokio::test]
async fn a_reconnection_signed_in_to_another_google_account_is_refused() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let (alice, bob) = ("alice@example.com", "bob@example.com");
    lg.emu.add_account(alice, "Europe/Berlin");
    lg.emu.add_account(bob, "Europe/Berlin");
    let group = fixtures::unique("gaccount");
    let user = 700_000 + (uuid::Uuid::now_v7().as_u128() % 100_000) as i64;
    // Connected as alice, for her main calendar (no calendar named): the link names its id.
    let g = lg
        .connect_as(&group, user, alice, "")
        .await
        .expect("connect");
    assert!(
        g.url.ends_with("/calendars/alice%40example.com"),
        "{}",
        g.url
    );
    let store = ctx.store();
    store
        .set_link_status(
            &g.link_id,
            LinkStatus::ReconnectNeeded,
            Some("the grant was revoked"),
        )
        .await
        .expect("park");
    let parked = store
        .get_link(&g.link_id)
        .await
        .expect("get")
        .expect("link");

    lg.emu.sign_in_next_as(bob);
    let google = &lg;
    accounts::assert_reconnection_refused(&lg.ctx, &parked, |url| async move {
        google.open_consent(&url).await
    })
    .await;

    // As a link connected before links recorded their account: the reconnection records it.
    assert!(g.account.is_some(), "{g:?}");
    ctx.clients
        .ddb
        .update_item()
        .table_name(&ctx.config.links_table)
        .key(
            "link_id",
            aws_sdk_dynamodb::types::AttributeValue::S(g.link_id.clone()),
        )
        .update_expression("REMOVE account")
        .send()
        .await
        .expect("forget the account");
    lg.emu.sign_in_next_as(alice);
    let url = calsync::connect::start_reconnect(&lg.ctx, &parked)
        .await
        .expect("reconnect consent");
    let back = lg.open_consent(&url).await.expect("alice renews it");
    assert_eq!(
        (back.link_id.as_str(), back.status),
        (g.link_id.as_str(), LinkStatus::Ok)
    );
    assert_eq!(
        back.account, g.account,
        "the reconnection records the account"
    );
}

/// Two calendars of one Google account, each connected through its own consent, hold two
/// token secrets but are one Google user, whose per-user quota Google counts across both.
/// Their calls are paced and reserved under the account the links record, in one shared
/// quota item, not one per secret (which let the two links together spend twice the quota).
#[tokio::test]
async fn two_calendars_of_one_google_account_spend_one_quota() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let owner = "quota@example.com";
    lg.emu.add_account(owner, "Europe/Berlin");
    let work = "quota-work@group.calendar.google.com";
    lg.emu.add_calendar_of(owner, work, "Work", "Europe/Berlin");
    let user = fixtures::fresh_user();
    let group = fixtures::unique("gquota");
    let first = lg
        .connect_as(&group, user, owner, "")
        .await
        .expect("connect the main calendar");
    let second = lg
        .connect_as(&group, user, owner, work)
        .await
        .expect("connect Work");
    let account = first
        .account
        .clone()
        .expect("a consent records the account");
    assert_eq!(second.account.as_deref(), Some(account.as_str()));
    calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    let key = format!("google:{account}");
    let reserved = || async {
        accounts::quota_reserved(&lg.ctx, &key)
            .await
            .expect("quota")
            .unwrap_or(0)
    };
    let (reserved_before, served_before) = (reserved().await, lg.emu.requests());

    // Twelve events made in the first calendar are pulled and written to the second: calls
    // of both links.
    let google = lg.user_api(&first).await.expect("user api");
    for i in 0..12 {
        google
            .insert(json!({"summary": format!("Quota {i}"),
                "start": {"dateTime": format!("2031-05-{:02}T10:00:00Z", i + 1)},
                "end": {"dateTime": format!("2031-05-{:02}T11:00:00Z", i + 1)}}))
            .await
            .expect("insert");
    }
    let served_by_user = lg.emu.requests() - served_before;
    let stats = fixtures::sync_user(&lg.ctx, user).await.expect("sync");
    assert_eq!(stats.failures, 0, "{stats:?}");
    let served = (lg.emu.requests() - served_before - served_by_user) as i64;
    let in_second = lg
        .user_api(&second)
        .await
        .expect("user api")
        .list()
        .await
        .expect("list")
        .len();
    assert_eq!(in_second, 12, "the second calendar got the events");
    let used = reserved().await - reserved_before;
    // Every call reserved first, in blocks of 10 (a block's rest may stay unspent).
    assert!(
        used >= served - 10 && used <= served + 10,
        "{used} calls reserved under the account for {served} calsync made"
    );
    for link in [&first, &second] {
        let arn = link.secret_arn.as_deref().expect("arn");
        assert_eq!(
            accounts::quota_reserved(&lg.ctx, &format!("google:{arn}"))
                .await
                .expect("quota"),
            None,
            "nothing is counted under a token secret"
        );
    }
}
