//! The application's API for links end to end against the local stack: link settings and
//! disconnection, reconnection in place, manual conflicts resolved through the API, and
//! AutoSync over HTTP and AppSync acting for the caller only.

use calsync::ical::EventSeries;
use calsync_e2e::api::{ApiClient, ApiServer};
use calsync_e2e::fixtures::{self, simple_event, PASSWORD, USER};
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

use super::api::{fresh_user, summaries, two_member_group};

#[tokio::test]
async fn link_settings_and_disconnection() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fresh_user());
    let (group, radicale, _, rlink, xlink) = two_member_group(&ctx, &api, "set", "merge").await;
    let l = format!("/v1/links/{rlink}");
    let p = api
        .patch(
            &l,
            &json!({"frequency": "daily", "conflict_policy": "prefer-hub", "display_name": "Work", "write_attendees": true}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["write_attendees"], json!(true), "{}", p.body);
    assert_eq!(
        (
            p.body["frequency_secs"].clone(),
            p.body["conflict_policy"].clone()
        ),
        (json!(86400), json!("prefer-hub"))
    );
    for (bad, pointer) in [
        (json!({"frequency": 60}), "#/frequency"),
        (json!({"brake_ratio": 2.0}), "#/brake_ratio"),
        (json!({"color": "red"}), "#/"),
    ] {
        let a = api.patch(&l, &bad).await.unwrap();
        assert_eq!(
            (a.status, a.body["errors"][0]["pointer"].as_str()),
            (422, Some(pointer)),
            "{bad}: {}",
            a.body
        );
    }
    let rel = api
        .post(&format!("{l}/release-deletions"), &json!({}))
        .await
        .unwrap();
    assert_eq!(rel.status, 202);
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        api.get(&l).await.unwrap().body["allow_mass_delete"],
        false,
        "the release is used once"
    );
    // An event, then disconnect Radicale: its copy stays, its state is gone.
    let e = api
        .put_ical(
            &format!("/v1/groups/{group}/events/set-1"),
            &simple_event("set-1", "Kept", 7),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(e.status, 201);
    runner::drain(&ctx).await.unwrap();
    let arn = ctx
        .store()
        .get_link(&rlink)
        .await
        .unwrap()
        .unwrap()
        .secret_arn
        .unwrap();
    assert_eq!(api.delete(&l).await.unwrap().status, 204);
    assert_eq!(api.get(&l).await.unwrap().status, 404);
    assert!(ctx
        .store()
        .mappings_of_link(&rlink)
        .await
        .unwrap()
        .is_empty());
    assert!(
        ctx.clients
            .secrets
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .is_err(),
        "secret deleted"
    );
    assert_eq!(summaries(&ctx, &radicale).await.len(), 1, "the copy stays");
    let g = api.get(&format!("/v1/groups/{group}")).await.unwrap();
    let left: Vec<&str> = g.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["link_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [xlink.as_str()]);
}

/// A CalDAV link whose password stopped working is `reconnect_needed`; the reconnection is
/// checked with the server first (a wrong password answers 422 at `/password` and changes
/// nothing), then the link is `ok` again under the same id, and what changed meanwhile reaches
/// it once. A feed takes a new address only when it can be read.
#[tokio::test]
async fn a_link_is_reconnected_in_place_with_new_credentials() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fresh_user());
    let (group, radicale, _, rlink, _) = two_member_group(&ctx, &api, "recon", "merge").await;
    let arn = ctx
        .store()
        .get_link(&rlink)
        .await
        .unwrap()
        .unwrap()
        .secret_arn
        .unwrap();
    // The user changed the password at the server: the stored one is refused.
    calsync::secrets::replace_json(
        &ctx.clients.secrets,
        &arn,
        &json!({"username": USER, "password": "changed-elsewhere"}),
    )
    .await
    .unwrap();
    let e = api
        .put_ical(
            &format!("/v1/groups/{group}/events/recon-1"),
            &simple_event("recon-1", "Written while refused", 9),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(e.status, 201, "{}", e.body);
    runner::drain(&ctx).await.unwrap();
    let l = format!("/v1/links/{rlink}");
    assert_eq!(
        api.get(&l).await.unwrap().body["status"],
        "reconnect_needed"
    );
    let r = format!("{l}/reconnect");
    for (body, pointer) in [
        (json!({"username": USER, "password": "wrong"}), "#/password"),
        (json!({"password": PASSWORD}), "#/username"),
        (json!({"username": USER}), "#/password"),
        (json!({"token": "x"}), "#/"),
    ] {
        let a = api.post(&r, &body).await.unwrap();
        assert_eq!(
            (a.status, a.body["errors"][0]["pointer"].as_str()),
            (422, Some(pointer)),
            "{body}: {}",
            a.body
        );
    }
    assert_eq!(
        api.get(&l).await.unwrap().body["status"],
        "reconnect_needed",
        "a refused reconnection changes nothing"
    );
    let a = api
        .post(&r, &json!({"username": USER, "password": PASSWORD}))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (a.body["link_id"].as_str(), a.body["status"].as_str()),
        (Some(rlink.as_str()), Some("ok"))
    );
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        summaries(&ctx, &radicale).await,
        [("recon-1".to_string(), "Written while refused".to_string())],
        "the hub's write reached the reconnected member once"
    );
    assert_eq!(api.get(&l).await.unwrap().body["status"], "ok");
    // Another user cannot reconnect it.
    let other = srv.as_user(fresh_user());
    assert_eq!(
        other
            .post(&r, &json!({"username": USER, "password": PASSWORD}))
            .await
            .unwrap()
            .status,
        404
    );

    // A feed: an address that cannot be read is refused, a readable one replaces it.
    let feed =
        calsync_e2e::feed::FeedServer::start(&simple_event("feed-1", "From the feed", 3), true)
            .await
            .unwrap();
    let f = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "ics", "url": feed.url}),
        )
        .await
        .unwrap();
    assert_eq!(f.status, 201, "{}", f.body);
    // The same feed again, under another spelling of its address: 409 naming the link.
    let again = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "ics", "url": format!("{}/", feed.url)}),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(f.body["link_id"].as_str().unwrap()),
        "{}",
        again.body
    );
    // A feed holds no copies of calsync's: removing them is refused, naming the parameter,
    // and the feed stays linked.
    let feed_link = format!("/v1/links/{}", f.body["link_id"].as_str().unwrap());
    let refused = api
        .delete(&format!("{feed_link}?remove_copies=true"))
        .await
        .unwrap();
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("remove_copies:"),
        "{}",
        refused.body
    );
    assert_eq!(api.get(&feed_link).await.unwrap().body["status"], "ok");
    let fr = format!(
        "/v1/links/{}/reconnect",
        f.body["link_id"].as_str().unwrap()
    );
    let gone = format!("{}/gone.ics", fixtures::radicale_base());
    let a = api.post(&fr, &json!({"url": gone})).await.unwrap();
    assert_eq!(
        (a.status, a.body["errors"][0]["pointer"].as_str()),
        (422, Some("#/url")),
        "{}",
        a.body
    );
    let moved =
        calsync_e2e::feed::FeedServer::start(&simple_event("feed-1", "Moved feed", 3), true)
            .await
            .unwrap();
    let a = api.post(&fr, &json!({"url": moved.url})).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    runner::drain(&ctx).await.unwrap();
    assert!(
        summaries(&ctx, &radicale)
            .await
            .contains(&("feed-1".to_string(), "Moved feed".to_string())),
        "the feed is read at its new address"
    );
    // The link now stands for the new address: that one is refused, the old one is free.
    let post_feed = |url: String| {
        let (api, group) = (&api, &group);
        async move {
            api.post(
                &format!("/v1/groups/{group}/links"),
                &json!({"provider": "ics", "url": url}),
            )
            .await
            .unwrap()
            .status
        }
    };
    assert_eq!(post_feed(moved.url.clone()).await, 409);
    assert_eq!(post_feed(feed.url.clone()).await, 201);
}

#[tokio::test]
async fn a_manual_conflict_is_listed_resolved_through_the_api_and_converges() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fresh_user());
    let (group, radicale, xandikos, rlink, _) =
        two_member_group(&ctx, &api, "conf", "manual").await;
    let path = format!("/v1/groups/{group}/events/conf-1");
    assert_eq!(
        api.put_ical(&path, &simple_event("conf-1", "Base", 9), &[])
            .await
            .unwrap()
            .status,
        201
    );
    runner::drain(&ctx).await.unwrap();
    // The same field edited in the app and on Radicale before either syncs.
    assert_eq!(
        api.put_ical(&path, &simple_event("conf-1", "App title", 9), &[])
            .await
            .unwrap()
            .status,
        200
    );
    fixtures::client_retitle(&ctx, &radicale, "conf-1", "Base", "Phone title")
        .await
        .unwrap();
    let sync = api
        .post(&format!("/v1/links/{rlink}/sync"), &json!({}))
        .await
        .unwrap();
    assert_eq!(sync.status, 202);
    runner::drain(&ctx).await.unwrap();
    let list = api
        .get(&format!("/v1/groups/{group}/conflicts"))
        .await
        .unwrap();
    let cs = list.body["conflicts"].as_array().unwrap();
    assert_eq!(cs.len(), 1, "{}", list.body);
    assert_eq!(
        (cs[0]["event_id"].as_str(), cs[0]["link_id"].as_str()),
        (Some("conf-1"), Some(rlink.as_str()))
    );
    assert_eq!(
        (
            cs[0]["hub"]["title"].as_str(),
            cs[0]["remote"]["title"].as_str()
        ),
        (Some("App title"), Some("Phone title"))
    );
    let bad = api
        .post(
            &format!("/v1/groups/{group}/conflicts/conf-1:resolve"),
            &json!({"keep": "both"}),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 422);
    let r = api
        .post(
            &format!("/v1/groups/{group}/conflicts/conf-1:resolve"),
            &json!({"keep": "remote"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    runner::drain(&ctx).await.unwrap();
    let want = vec![("conf-1".to_string(), "Phone title".to_string())];
    for url in [&radicale, &xandikos] {
        assert_eq!(summaries(&ctx, url).await, want, "{url}");
    }
    let hub = api.get(&path).await.unwrap();
    assert_eq!(hub.body["event"]["title"], "Phone title");
    assert_eq!(
        api.get(&format!("/v1/groups/{group}/conflicts"))
            .await
            .unwrap()
            .body["conflicts"],
        json!([])
    );
    // Quiescent afterwards: another round writes nothing.
    fixtures::sync_user(
        &ctx,
        ctx.store().get_link(&rlink).await.unwrap().unwrap().user_id,
    )
    .await
    .unwrap();
    let series: Vec<EventSeries> = fixtures::events_in(&ctx, &xandikos)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(series.len(), 1);
}

#[tokio::test]
async fn autosync_over_http_and_appsync_act_for_the_caller_only() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let (_group, _, _, _, _) = two_member_group(&ctx, &api, "auto", "merge").await;
    let other = api
        .post(
            "/v1/autosync",
            &json!({"field": "AutoSync", "arguments": {"userId": user + 1}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (other.status, other.body["Statuscode"].as_str()),
        (403, Some("ER003")),
        "{}",
        other.body
    );
    let mine = api
        .post(
            "/v1/autosync",
            &json!({"field": "AutoSync", "arguments": {"userId": user, "calendarType": 3}}),
        )
        .await
        .unwrap();
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["Message"], "2 calendar(s) queued for sync");
    let anon = ApiClient::new(&srv.url, None)
        .post("/v1/autosync", &json!({"arguments": {"userId": user}}))
        .await
        .unwrap();
    assert_eq!(anon.status, 401);
    runner::drain(&ctx).await.unwrap();
    // AppSync: the same operations by operation id, as the identity AppSync verified.
    let st = calsync::api::ApiState {
        ctx: std::sync::Arc::new(ctx.clone()),
        auth: std::sync::Arc::new(calsync::api::Verifier::new(
            Some(srv.issuer.auth_config()),
            ctx.clients.http.clone(),
        )),
    };
    let ident = |u: i64| json!({"sub": u.to_string(), "claims": {"sub": u.to_string()}});
    let made = calsync::api::appsync::handle(&st, json!({"field": "createGroup", "arguments": {"name": "via appsync"}, "identity": ident(user)}))
        .await
        .expect("createGroup");
    let gid = made["group_id"].as_str().unwrap().to_string();
    let put = calsync::api::appsync::handle(
        &st,
        json!({"field": "putEvent", "arguments": {"group_id": gid, "event_id": "as-1",
        "ical": simple_event("as-1", "From AppSync", 2)}, "identity": ident(user)}),
    )
    .await
    .expect("putEvent");
    assert_eq!(put["version"], 1);
    let theirs = calsync::api::appsync::handle(
        &st,
        json!({"field": "getGroup", "arguments": {"group_id": gid}, "identity": ident(user + 1)}),
    )
    .await
    .expect_err("another user's group");
    assert_eq!(theirs["status"], 404);
    let unknown = calsync::api::appsync::handle(
        &st,
        json!({"field": "dropTables", "arguments": {}, "identity": ident(user)}),
    )
    .await;
    assert_eq!(unknown.expect_err("unknown field")["status"], 400);
}
