//! Outlook accounts against the Graph emulator: subscriptions (handshake, forged clientState,
//! lifecycle events, renewal, deletion), refresh-token rotation and expired grants, attendee
//! opt-in, AutoSync's calendarType 2. Needs the local stack (`make test` starts it).

use calsync_e2e::accounts;
use calsync_e2e::emulators::graph::Config;
use calsync_e2e::fixtures::{self, sync_user};
use calsync_e2e::outlook::outlook_pair;

#[tokio::test]
async fn subscriptions_answer_the_handshake_refuse_forgeries_and_follow_lifecycle_events() {
    let (lo, _p, o) = outlook_pair(
        "osub",
        &[fixtures::simple_event("sub-1@calsync.test", "Watched", 9)],
        Config::default(),
    )
    .await;
    let ctx = &lo.ctx;
    let channel = |ctx: &calsync::config::Ctx| {
        let (ctx, link) = (ctx.clone(), o.link_id.clone());
        async move {
            let mut v: Vec<_> = ctx
                .store()
                .all_channels()
                .await
                .expect("channels")
                .into_iter()
                .filter(|c| c.link_id == link)
                .collect();
            assert_eq!(v.len(), 1, "{v:?}");
            v.pop().expect("one")
        }
    };
    let seq = || async {
        ctx.store()
            .get_link(&o.link_id)
            .await
            .expect("get")
            .expect("link")
            .push_seq
    };
    let hook = format!("{}/webhooks/outlook", lo.hooks.as_ref().expect("hooks").url);
    let http = reqwest::Client::new();
    let ch = channel(ctx).await;
    assert_eq!(lo.emu.subscriptions().len(), 1);

    // The handshake answers the decoded token as text/plain.
    let r = http
        .post(format!(
            "{hook}?validationToken=Validation%3A%20Testing%20reachability"
        ))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "Validation: Testing reachability");

    // A forged clientState and an unknown subscription do no work.
    let before = seq().await;
    let forged = |sub: &str, state: &str| {
        serde_json::json!({"value": [{"subscriptionId": sub, "clientState": state,
        "changeType": "updated", "resource": "Users/x/Events/y", "resourceData": {"id": "y"}}]})
    };
    let r = http
        .post(&hook)
        .json(&forged(&ch.channel_id, "not-the-secret"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = http
        .post(&hook)
        .json(&forged("00000000-0000-0000-0000-000000000000", "x"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    assert_eq!(seq().await, before, "nothing queued for forgeries");

    let lifecycle = |id: String, event: &'static str| {
        let (http, url) = (
            http.clone(),
            format!("{}/emulator/subscriptions/{id}/lifecycle", lo.emu.url),
        );
        async move {
            let v: serde_json::Value = http
                .post(url)
                .json(&serde_json::json!({"event": event}))
                .send()
                .await
                .expect("post")
                .json()
                .await
                .expect("json");
            v["status"].as_u64()
        }
    };
    // Missed notifications: a full pull is queued.
    assert_eq!(lifecycle(ch.channel_id.clone(), "missed").await, Some(202));
    assert_eq!(seq().await, before + 1);
    // Reauthorization: the subscription is renewed in place.
    assert_eq!(
        lifecycle(ch.channel_id.clone(), "reauthorizationRequired").await,
        Some(202)
    );
    let renewed = channel(ctx).await;
    assert_eq!(renewed.channel_id, ch.channel_id);
    assert!(renewed.expiration_ms >= ch.expiration_ms);
    // Removed: a new subscription replaces it, and a full pull is queued.
    assert_eq!(
        lifecycle(ch.channel_id.clone(), "subscriptionRemoved").await,
        Some(202)
    );
    let new = channel(ctx).await;
    assert_ne!(new.channel_id, ch.channel_id, "recreated");
    let live = lo.emu.subscriptions();
    assert_eq!(
        live.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        vec![new.channel_id.clone()]
    );
    assert_eq!(seq().await, before + 2);
    // The token refresher renews a subscription that expires within a day (PATCH, same id).
    let mut soon = channel(ctx).await;
    soon.expiration_ms = calsync::config::now_millis() + 3_600_000;
    ctx.store().put_channel(&soon).await.expect("put");
    // The link's next look comes (it would have been the renewal time).
    ctx.store()
        .want_upkeep(&o.link_id, calsync::config::now_secs())
        .await
        .expect("due");
    let report = calsync::refresher::run(ctx).await.expect("refresher");
    assert!(report.channels_renewed >= 1, "{report:?}");
    let renewed = channel(ctx).await;
    assert_eq!(renewed.channel_id, soon.channel_id);
    assert!(renewed.expiration_ms > calsync::config::now_millis() + 6 * 24 * 3_600_000);
    // Disconnecting deletes the subscription.
    calsync::push::stop_channels_of(ctx, &o.link_id)
        .await
        .expect("stop");
    assert!(lo.emu.subscriptions().is_empty());
}

#[tokio::test]
async fn refresh_tokens_rotate_the_newest_is_kept_and_an_expired_grant_needs_reconnect() {
    let logs = calsync_e2e::logs::capture();
    let (lo, p, o) = outlook_pair(
        "orot",
        &[fixtures::simple_event("rot-1@calsync.test", "Tokens", 11)],
        Config::default(),
    )
    .await;
    let ctx = &lo.ctx;
    let arn = o.secret_arn.clone().expect("arn");
    let oauth = &calsync::provider::outlook::OAUTH;
    let stats = || async {
        let v: serde_json::Value = reqwest::get(format!("{}/emulator/oauth/stats", lo.emu.url))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        v
    };
    accounts::expire_stored_access_token(ctx, &arn)
        .await
        .expect("expire");
    let before = stats().await["refresh_grants"].as_u64().unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (c, a) = (ctx.clone(), arn.clone());
        set.spawn(async move {
            calsync::oauth::access_token(&c, oauth, &a, 60)
                .await
                .map(|_| ())
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task").expect("token");
    }
    let s = stats().await;
    assert_eq!(
        s["refresh_grants"].as_u64().unwrap() - before,
        1,
        "one refresh for eight callers"
    );
    use secrecy::ExposeSecret;
    let stored = calsync::oauth::read_tokens(ctx, &arn)
        .await
        .expect("tokens");
    let newest = stored
        .refresh_token
        .as_ref()
        .expect("refresh token")
        .expose_secret()
        .to_string();
    assert_eq!(
        Some(newest.as_str()),
        s["latest_refresh_token"].as_str(),
        "the rotated refresh token is stored"
    );
    // A refresher that answers late with older tokens does not put them back.
    let older = calsync::oauth::TokenSet {
        access_token: secrecy::SecretString::from("old-access"),
        refresh_token: Some(secrecy::SecretString::from("old-refresh")),
        expires_at: stored.expires_at,
        issued_ms: stored.issued_ms - 1_000,
    };
    assert!(!calsync::oauth::store_refreshed(ctx, &arn, &older)
        .await
        .expect("store"));
    let kept = calsync::oauth::read_tokens(ctx, &arn)
        .await
        .expect("tokens");
    assert_eq!(kept.refresh_token.as_ref().unwrap().expose_secret(), newest);

    // No token value in DynamoDB or the logs.
    let values = [
        stored.access_token.expose_secret().to_string(),
        newest.clone(),
    ];
    let dump = format!(
        "{:?}{:?}{:?}",
        ctx.store().all_links().await.expect("links"),
        ctx.store().all_channels().await.expect("channels"),
        ctx.store()
            .mappings_of_link(&o.link_id)
            .await
            .expect("maps"),
    );
    let text = logs.text();
    for v in &values {
        assert!(!dump.contains(v.as_str()), "a token reached DynamoDB");
        assert!(!text.contains(v.as_str()), "a token reached the logs");
    }

    // The grant expired (AADSTS700082): the link waits for the user, with the reason.
    reqwest::Client::new()
        .post(format!("{}/emulator/oauth/grant-error", lo.emu.url))
        .json(&serde_json::json!({"code": 700082}))
        .send()
        .await
        .expect("grant error");
    accounts::expire_stored_access_token(ctx, &arn)
        .await
        .expect("expire");
    fixtures::sync_link(ctx, &o.link_id).await.expect("sync");
    let link = ctx
        .store()
        .get_link(&o.link_id)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(link.status, calsync::model::LinkStatus::ReconnectNeeded);
    assert!(
        link.status_reason
            .as_deref()
            .unwrap_or("")
            .contains("AADSTS700082"),
        "{link:?}"
    );
    // AutoSync's calendarType 2 selects Outlook links, and no longer this one.
    let v = calsync::handlers::autosync(ctx, serde_json::json!({"field": "AutoSync", "arguments": {"userId": p.user, "calendarType": 2}})).await;
    assert!(v.to_string().contains("0 calendar(s) queued"), "{v}");
}

#[tokio::test]
async fn autosync_calendar_type_2_selects_outlook_links() {
    let (lo, p, _o) = outlook_pair("otype", &[], Config::default()).await;
    let v = calsync::handlers::autosync(&lo.ctx, serde_json::json!({"field": "AutoSync", "arguments": {"userId": p.user, "calendarType": 2}})).await;
    assert!(v.to_string().contains("1 calendar(s) queued"), "{v}");
    let v = calsync::handlers::autosync(&lo.ctx, serde_json::json!({"field": "AutoSync", "arguments": {"userId": p.user, "calendarType": 3}})).await;
    assert!(v.to_string().contains("2 calendar(s) queued"), "{v}");
    calsync_e2e::runner::drain(&lo.ctx).await.expect("drain");
}

#[tokio::test]
async fn attendees_are_written_only_for_the_owners_events_when_the_link_opts_in() {
    let owner = calsync_e2e::emulators::graph::events::OWNER.1;
    let meeting = |uid: &str, organizer: &str, day: u32| {
        fixtures::simple_event(uid, "Meeting", day).replace(
            "LOCATION:Room 1\r\n",
            &format!("LOCATION:Room 1\r\nORGANIZER:mailto:{organizer}\r\nATTENDEE;CN=Guest:mailto:guest@example.com\r\n"),
        )
    };
    let (lo, p, o) = outlook_pair(
        "oatt",
        &[meeting("att-0@calsync.test", owner, 3)],
        Config::default(),
    )
    .await;
    let ctx = &lo.ctx;
    // Off (the default): the owner's own meeting went without its attendees.
    assert!(
        lo.emu.writes().iter().all(|w| !w.attendees),
        "{:?}",
        lo.emu.writes()
    );
    // The link opts in: the owner's meetings carry their attendees, others' do not.
    let mut link = ctx
        .store()
        .get_link(&o.link_id)
        .await
        .expect("get")
        .expect("link");
    link.write_attendees = true;
    ctx.store().put_link(&link).await.expect("put");
    let before = lo.emu.writes().len();
    fixtures::client_put(ctx, &p.radicale, &meeting("att-1@calsync.test", owner, 4))
        .await
        .expect("put");
    fixtures::client_put(
        ctx,
        &p.radicale,
        &meeting("att-2@calsync.test", "someone@example.com", 5),
    )
    .await
    .expect("put");
    sync_user(ctx, p.user).await.expect("sync");
    let new: Vec<_> = lo
        .emu
        .writes()
        .into_iter()
        .skip(before)
        .filter(|w| w.method == "POST")
        .collect();
    assert_eq!(new.len(), 2, "{new:?}");
    let with: Vec<bool> = lo
        .emu
        .items(o.url.rsplit('/').next().unwrap())
        .iter()
        .filter(|i| i["subject"] == "Meeting")
        .map(|i| i["attendees"].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    assert_eq!(
        with.iter().filter(|w| **w).count(),
        1,
        "only the owner's new meeting: {with:?}"
    );
    assert_eq!(new.iter().filter(|w| w.attendees).count(), 1, "{new:?}");
}

#[tokio::test]
async fn a_consent_without_a_calendar_id_connects_the_main_calendar_with_the_settings_chosen() {
    use calsync_e2e::emulators::graph::DEFAULT_CALENDAR_ID;
    use serde_json::json;
    let lo = calsync_e2e::outlook::LocalOutlook::start(
        &calsync_e2e::local_ctx().await,
        Config::default(),
    )
    .await
    .unwrap();
    let srv = calsync_e2e::api::ApiServer::start_local(lo.ctx.clone())
        .await
        .unwrap();
    let api = srv.as_user(fixtures::fresh_user());
    let group = api.create_group("main calendar").await.unwrap();
    let start = format!("/v1/groups/{group}/links/oauth/outlook");
    // The choices are checked before any consent is prepared.
    for (body, pointer) in [
        (json!({"frequency": "fortnightly"}), "#/frequency"),
        (json!({"conflict_policy": "coin-flip"}), "#/conflict_policy"),
    ] {
        let a = api.post(&start, &body).await.unwrap();
        assert_eq!(
            (a.status, &a.body["errors"][0]["pointer"]),
            (422, &json!(pointer)),
            "{}",
            a.body
        );
    }
    let a = api
        .post(
            &start,
            &json!({"display_name": "Work", "frequency": "daily", "conflict_policy": "manual"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let (status, body) = calsync_e2e::google::Browser::default()
        .open(a.body["consent_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let links = api.get(&format!("/v1/groups/{group}/links")).await.unwrap();
    let l = &links.body["links"][0];
    assert_eq!(
        (
            &l["display_name"],
            &l["frequency_secs"],
            &l["conflict_policy"]
        ),
        (&json!("Work"), &json!(86_400), &json!("manual")),
        "{}",
        links.body
    );
    let link = lo
        .ctx
        .store()
        .get_link(l["link_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        link.url,
        format!(
            "{}/me/calendars/{}",
            lo.emu.api_root(),
            calsync::provider::percent_encode(DEFAULT_CALENDAR_ID)
        )
    );
    // It syncs: an event made in the main calendar reaches the application's calendar.
    let day = (chrono::Utc::now() + chrono::Duration::days(14)).date_naive();
    lo.user(&link)
        .await
        .unwrap()
        .create(json!({"subject": "Made in the main calendar",
            "start": {"dateTime": format!("{day}T10:00:00"), "timeZone": "UTC"},
            "end": {"dateTime": format!("{day}T11:00:00"), "timeZone": "UTC"}}))
        .await
        .unwrap();
    calsync_e2e::runner::drain(&lo.ctx).await.unwrap();
    let events = api
        .get(&format!("/v1/groups/{group}/events"))
        .await
        .unwrap();
    assert!(
        events
            .body
            .to_string()
            .contains("Made in the main calendar"),
        "{} {}",
        events.body,
        api.get(&format!("/v1/links/{}/runs", link.link_id))
            .await
            .unwrap()
            .body
    );
}

/// A user with two Microsoft accounts reconnects a parked Outlook link and signs in with the
/// other one: Graph's `me` is then the other mailbox, where the link's calendar id is
/// `ErrorItemNotFound`. The reconnection is refused (409, with a reason that says so) and
/// nothing changes: the link stays parked with its own tokens, so it never pulls the other
/// mailbox into the group. With the account that connected it, the same link is renewed.
#[tokio::test]
async fn a_reconnection_signed_in_to_another_microsoft_account_is_refused() {
    use calsync::model::LinkStatus;
    let lo = calsync_e2e::outlook::LocalOutlook::start(
        &calsync_e2e::local_ctx().await,
        Config::default(),
    )
    .await
    .expect("outlook");
    let (alice, bob) = ("alice@contoso.com", "bob@fabrikam.com");
    let alice_main = lo.emu.add_account(alice);
    lo.emu.add_account(bob);
    let group = fixtures::unique("oaccount");
    let user = fixtures::fresh_user();
    // Connected as alice, for her main calendar (no calendar named): the link names its id.
    lo.emu.sign_in_next_as(alice);
    let start = lo
        .consent_url(&group, user, "", "main")
        .await
        .expect("start");
    let o = lo.open_consent(&start).await.expect("connect");
    let oauth = &calsync::provider::outlook::OAUTH;
    assert_eq!(o.url, (oauth.calendar_url)(&lo.emu.api_root(), &alice_main));
    let store = lo.ctx.store();
    store
        .set_link_status(
            &o.link_id,
            LinkStatus::ReconnectNeeded,
            Some("the grant expired"),
        )
        .await
        .expect("park");
    let arn = o.secret_arn.clone().expect("arn");
    let before = accounts::stored_token_values(&lo.ctx, &arn)
        .await
        .expect("tokens");
    let parked = store
        .get_link(&o.link_id)
        .await
        .expect("get")
        .expect("link");

    lo.emu.sign_in_next_as(bob);
    let outlook = &lo;
    accounts::assert_reconnection_refused(&lo.ctx, &parked, |url| async move {
        outlook.open_consent(&url).await
    })
    .await;

    lo.emu.sign_in_next_as(alice);
    let url = calsync::connect::start_reconnect(&lo.ctx, &parked)
        .await
        .expect("reconnect consent");
    let back = lo.open_consent(&url).await.expect("alice renews it");
    assert_eq!(
        (back.link_id.as_str(), back.status),
        (o.link_id.as_str(), LinkStatus::Ok)
    );
    assert_ne!(
        accounts::stored_token_values(&lo.ctx, &arn)
            .await
            .expect("tokens"),
        before,
        "alice's new tokens were stored"
    );
}
