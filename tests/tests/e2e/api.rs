//! The application's API end to end against the local stack: tokens, tenant isolation,
//! connecting CalDAV calendars through discovery, hub writes reaching every member, ETags and
//! If-Match, batches, pages and the change feed, Idempotency-Key. Link settings,
//! reconnection, manual conflicts and AutoSync through the API are in `api_links`.

use calsync_e2e::api::{ApiClient, ApiServer};
use calsync_e2e::fixtures::{self, new_calendar, simple_event, unique, Server, PASSWORD, USER};
use calsync_e2e::{local_ctx, runner};
use serde_json::{json, Value};

pub(crate) fn fresh_user() -> i64 {
    2_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64
}

/// Connect a fresh Radicale and a fresh Xandikos calendar to a new group of `api`'s user
/// through the API; returns (group, radicale url, xandikos url, radicale link, xandikos link).
pub(crate) async fn two_member_group(
    ctx: &calsync::config::Ctx,
    api: &ApiClient,
    tag: &str,
    policy: &str,
) -> (String, String, String, String, String) {
    let name = unique(tag);
    let radicale = new_calendar(ctx, Server::Radicale, &name).await.unwrap();
    let xandikos = new_calendar(ctx, Server::Xandikos, &name).await.unwrap();
    let group = api.create_group(tag).await.unwrap();
    // Radicale by its collection URL.
    let r = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "caldav", "url": radicale, "username": USER, "password": PASSWORD,
                    "display_name": "radicale", "conflict_policy": policy}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    // Xandikos by its server root and the calendar's name, through discovery.
    let x = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "caldav", "url": format!("{}/", fixtures::xandikos_base()),
                    "username": USER, "password": "unused", "calendar": name, "display_name": "xandikos"}),
        )
        .await
        .unwrap();
    assert_eq!(x.status, 201, "{}", x.body);
    assert_eq!(x.body["url"].as_str().unwrap(), xandikos);
    runner::drain(ctx).await.unwrap();
    (
        group,
        radicale,
        xandikos,
        r.body["link_id"].as_str().unwrap().into(),
        x.body["link_id"].as_str().unwrap().into(),
    )
}

pub(crate) async fn summaries(ctx: &calsync::config::Ctx, url: &str) -> Vec<(String, String)> {
    fixtures::events_in(ctx, url)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| (s.uid.clone(), s.summary()))
        .collect()
}

#[tokio::test]
async fn only_valid_tokens_get_in_and_they_do_no_work_otherwise() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let iss = &srv.issuer;
    let other = calsync_e2e::issuer::new_key();
    let mut wrong_aud = iss.claims(user, 3600);
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = iss.claims(user, 3600);
    wrong_iss["iss"] = json!("https://evil.example");
    let mut not_int = iss.claims(user, 3600);
    not_int["sub"] = json!("alice");
    let refused: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("garbage", Some("not-a-jwt".into())),
        ("expired", Some(iss.sign(&iss.claims(user, -120)))),
        ("wrong audience", Some(iss.sign(&wrong_aud))),
        ("wrong issuer", Some(iss.sign(&wrong_iss))),
        (
            "forged",
            Some(calsync_e2e::issuer::sign(
                &other,
                iss.kid(),
                &iss.claims(user, 3600),
            )),
        ),
        ("user claim not an integer", Some(iss.sign(&not_int))),
    ];
    for (what, token) in refused {
        let c = ApiClient::new(&srv.url, token);
        let a = c.post("/v1/groups", &json!({"name": "x"})).await.unwrap();
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{what}"
        );
        assert!(
            a.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "{what}"
        );
    }
    assert!(
        ctx.store().groups_of_user(user).await.unwrap().is_empty(),
        "no work done"
    );
    let ok = srv
        .as_user(user)
        .post("/v1/groups", &json!({"name": "mine"}))
        .await
        .unwrap();
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ctx.store().groups_of_user(user).await.unwrap().len(), 1);
}

#[tokio::test]
async fn another_users_things_answer_404() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let (a, b) = (srv.as_user(fresh_user()), srv.as_user(fresh_user()));
    let (group, _, _, link, _) = two_member_group(&ctx, &a, "iso", "manual").await;
    let put = a
        .put_ical(
            &format!("/v1/groups/{group}/events/iso-1"),
            &simple_event("iso-1", "Mine", 3),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.body);
    let g = format!("/v1/groups/{group}");
    let l = format!("/v1/links/{link}");
    let probes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", g.clone(), None),
        ("DELETE", g.clone(), None),
        ("GET", format!("{g}/links"), None),
        (
            "POST",
            format!("{g}/links"),
            Some(json!({"provider": "ics", "url": "http://127.0.0.1:9/x.ics"})),
        ),
        ("POST", format!("{g}/links/oauth/google"), Some(json!({}))),
        ("GET", l.clone(), None),
        ("PATCH", l.clone(), Some(json!({"frequency": "daily"}))),
        ("DELETE", l.clone(), None),
        ("POST", format!("{l}/sync"), None),
        ("GET", format!("{l}/runs"), None),
        ("POST", format!("{l}/release-deletions"), None),
        ("GET", format!("{g}/events"), None),
        ("GET", format!("{g}/events/iso-1"), None),
        ("DELETE", format!("{g}/events/iso-1"), None),
        ("GET", format!("{g}/changes"), None),
        (
            "POST",
            format!("{g}/events:batch"),
            Some(json!({"items": [{"op": "delete", "event_id": "iso-1"}]})),
        ),
        ("GET", format!("{g}/conflicts"), None),
        (
            "POST",
            format!("{g}/conflicts/iso-1:resolve"),
            Some(json!({"keep": "hub"})),
        ),
    ];
    for (m, path, body) in &probes {
        let ans = b.send(m, path, body.as_ref(), &[]).await.unwrap();
        assert_eq!(ans.status, 404, "{m} {path}: {}", ans.body);
    }
    let steal = b
        .put_ical(
            &format!("{g}/events/iso-1"),
            &simple_event("iso-1", "Stolen", 3),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(steal.status, 404);
    // Nothing of A's changed.
    let mine = a.get(&format!("{g}/events/iso-1")).await.unwrap();
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["version"], 1);
    assert_eq!(a.get(&l).await.unwrap().body["frequency_secs"], 3600);
    assert_eq!(b.get("/v1/groups").await.unwrap().body["groups"], json!([]));
}

#[tokio::test]
async fn connecting_refuses_what_the_server_refuses_and_stores_nothing() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let group = api.create_group("refusals").await.unwrap();
    let cal = new_calendar(&ctx, Server::Radicale, &unique("refuse"))
        .await
        .unwrap();
    let links = format!("/v1/groups/{group}/links");
    let cases = [
        (
            json!({"provider": "caldav", "url": cal, "username": USER, "password": "wrong"}),
            "#/password",
        ),
        (
            json!({"provider": "caldav", "url": format!("{}/{USER}/", fixtures::radicale_base()), "username": USER, "password": PASSWORD}),
            "#/url",
        ),
        (
            json!({"provider": "caldav", "url": "ftp://example.com/", "username": USER, "password": PASSWORD}),
            "#/url",
        ),
        (
            json!({"provider": "caldav", "url": cal, "password": PASSWORD}),
            "#/username",
        ),
        (
            json!({"provider": "caldav", "url": cal, "username": USER, "password": PASSWORD, "frequency": "4m"}),
            "#/frequency",
        ),
        (
            json!({"provider": "caldav", "url": cal, "username": USER, "password": PASSWORD, "conflict_policy": "coin"}),
            "#/conflict_policy",
        ),
        (json!({"provider": "exchange", "url": cal}), "#/provider"),
        (json!({"provider": "outlook"}), "#/provider"),
    ];
    for (body, pointer) in cases {
        let a = api.post(&links, &body).await.unwrap();
        assert_eq!(a.status, 422, "{body}: {}", a.body);
        assert_eq!(a.body["errors"][0]["pointer"], pointer, "{}", a.body);
    }
    // OAuth providers: an unknown one is named.
    let a = api
        .post(&format!("{links}/oauth/exchange"), &json!({}))
        .await
        .unwrap();
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body["errors"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("google or outlook"),
        "{}",
        a.body
    );
    // The server's own words reach the user: the account's calendars are listed.
    let a = api
        .post(&links, &json!({"provider": "caldav", "url": format!("{}/{USER}/", fixtures::radicale_base()), "username": USER, "password": PASSWORD}))
        .await
        .unwrap();
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("not a calendar collection"),
        "{}",
        a.body
    );
    assert!(
        ctx.store().links_of_user(user).await.unwrap().is_empty(),
        "nothing stored"
    );
    // Every page: the stack holds the secrets of every test that ran before.
    let caldav_secrets = || async {
        let pages: Vec<_> = ctx
            .clients
            .secrets
            .list_secrets()
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .unwrap();
        pages
            .iter()
            .flat_map(|p| p.secret_list())
            .filter_map(|s| s.name())
            .filter(|n| n.contains("/caldav/"))
            .count()
    };
    let wrong = caldav_secrets().await;
    let ok = api
        .post(&links, &json!({"provider": "caldav", "url": cal, "username": USER, "password": PASSWORD, "frequency": "15m"}))
        .await
        .unwrap();
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ok.body["frequency_secs"], 900);
    assert!(ok.body.get("secret_arn").is_none() && !ok.body.to_string().contains(PASSWORD));
    let n = caldav_secrets().await;
    assert_eq!(n, wrong + 1, "one secret for the one connected calendar");
}

#[tokio::test]
async fn a_hub_write_reaches_every_member_once_with_etags_and_if_match() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fresh_user());
    let (group, radicale, xandikos, rlink, _) = two_member_group(&ctx, &api, "hubw", "merge").await;
    let path = format!("/v1/groups/{group}/events/hubw-1");
    let first = api
        .put_ical(&path, &simple_event("hubw-1", "Planning", 5), &[])
        .await
        .unwrap();
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("etag").as_deref(), Some("\"v1\""));
    assert_eq!(
        first.body["event"]["title"], "Planning",
        "JSCalendar view: {}",
        first.body
    );
    // The same upsert again: nothing new, nothing pushed.
    let again = api
        .put_ical(&path, &simple_event("hubw-1", "Planning", 5), &[])
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.header("etag")),
        (200, Some("\"v1\"".into()))
    );
    runner::drain(&ctx).await.unwrap();
    for url in [&radicale, &xandikos] {
        assert_eq!(
            summaries(&ctx, url).await,
            vec![("hubw-1".to_string(), "Planning".to_string())],
            "{url}"
        );
    }
    let got = api.get(&path).await.unwrap();
    let statuses: Vec<&str> = got.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["synced", "synced"], "{}", got.body);
    // Optimistic concurrency.
    let stale = api
        .put_ical(
            &path,
            &simple_event("hubw-1", "Stale", 5),
            &[("if-match", "\"v0\"")],
        )
        .await
        .unwrap();
    assert_eq!(stale.status, 412, "{}", stale.body);
    let create_only = api
        .put_ical(
            &path,
            &simple_event("hubw-1", "Other", 5),
            &[("if-none-match", "*")],
        )
        .await
        .unwrap();
    assert_eq!(create_only.status, 412);
    // JSCalendar in, with the current ETag.
    let mut js = got.body["event"].clone();
    js["title"] = json!("Planning (moved)");
    let upd = api
        .send(
            "PUT",
            &path,
            Some(&js),
            &[
                ("if-match", "\"v1\""),
                ("content-type", "application/jscalendar+json"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (upd.status, upd.header("etag")),
        (200, Some("\"v2\"".into())),
        "{}",
        upd.body
    );
    let ical = api
        .send("GET", &path, None, &[("accept", "text/calendar")])
        .await
        .unwrap();
    assert!(ical
        .body
        .as_str()
        .unwrap()
        .contains("SUMMARY:Planning (moved)"));
    runner::drain(&ctx).await.unwrap();
    for url in [&radicale, &xandikos] {
        assert_eq!(
            summaries(&ctx, url).await,
            vec![("hubw-1".to_string(), "Planning (moved)".to_string())],
            "{url}"
        );
    }
    // Delete reaches both; a second delete is still 204.
    assert_eq!(api.delete(&path).await.unwrap().status, 204);
    assert_eq!(api.delete(&path).await.unwrap().status, 204);
    runner::drain(&ctx).await.unwrap();
    for url in [&radicale, &xandikos] {
        assert!(summaries(&ctx, url).await.is_empty(), "{url}");
    }
    // Run history of a member, newest first, paged.
    let runs = api
        .get(&format!("/v1/links/{rlink}/runs?limit=2"))
        .await
        .unwrap();
    let rs = runs.body["runs"].as_array().unwrap();
    assert_eq!(rs.len(), 2, "{}", runs.body);
    assert!(rs[0]["run_id"].as_str() > rs[1]["run_id"].as_str());
    let cursor = runs.body["cursor"].as_str().unwrap();
    let older = api
        .get(&format!("/v1/links/{rlink}/runs?limit=2&cursor={cursor}"))
        .await
        .unwrap();
    assert!(older.body["runs"][0]["run_id"].as_str() < rs[1]["run_id"].as_str());
}

#[tokio::test]
async fn batches_pages_and_the_change_feed_cover_everything() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fresh_user());
    let group = api.create_group("pages").await.unwrap();
    let mut items: Vec<Value> = (1..=6)
        .map(|i| json!({"op": "upsert", "event_id": format!("pg-{i}"), "ical": simple_event(&format!("pg-{i}"), &format!("E{i}"), i)}))
        .collect();
    items.insert(3, json!({"op": "upsert", "event_id": "pg-bad", "ical": "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"}));
    let b = api
        .post(
            &format!("/v1/groups/{group}/events:batch"),
            &json!({"items": items}),
        )
        .await
        .unwrap();
    assert_eq!(b.status, 207, "{}", b.body);
    let st: Vec<u64> = b.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(st, [201, 201, 201, 422, 201, 201, 201]);
    assert_eq!(
        b.body["results"][3]["problem"]["errors"][0]["pointer"],
        "#/items/3/ical"
    );
    let del = api
        .post(
            &format!("/v1/groups/{group}/events:batch"),
            &json!({"items": [{"op": "delete", "event_id": "pg-2"}]}),
        )
        .await
        .unwrap();
    assert_eq!(del.body["results"][0]["status"], 204);
    // Pages of 2: the union is the full set of live events, each once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let p = api
            .get(&format!("/v1/groups/{group}/events?limit=2{q}"))
            .await
            .unwrap();
        assert_eq!(p.status, 200, "{}", p.body);
        for e in p.body["events"].as_array().unwrap() {
            seen.push(e["event_id"].as_str().unwrap().to_string());
        }
        match p.body["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["pg-1", "pg-3", "pg-4", "pg-5", "pg-6"]);
    // A window and expansion: 2027-01-04..06 holds pg-4 and pg-5.
    let w = api
        .get(&format!("/v1/groups/{group}/events?start=2027-01-04T00:00:00Z&end=2027-01-06T00:00:00Z&expand=true"))
        .await
        .unwrap();
    let ids: Vec<&str> = w.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pg-4", "pg-5"], "{}", w.body);
    assert_eq!(
        w.body["events"][0]["occurrences"][0]["start"],
        "2027-01-04T09:00:00+00:00"
    );
    // The change feed in pages of 3 covers every event, the deleted one as a tombstone.
    let mut latest = std::collections::BTreeMap::new();
    let mut cursor = String::new();
    for _ in 0..20 {
        let q = if cursor.is_empty() {
            String::new()
        } else {
            format!("&cursor={cursor}")
        };
        let p = api
            .get(&format!("/v1/groups/{group}/changes?limit=3{q}"))
            .await
            .unwrap();
        for c in p.body["changes"].as_array().unwrap() {
            latest.insert(
                c["event_id"].as_str().unwrap().to_string(),
                c["deleted"].as_bool().unwrap(),
            );
        }
        cursor = p.body["cursor"].as_str().unwrap().to_string();
        if p.body["more"] == false {
            break;
        }
    }
    let want: std::collections::BTreeMap<String, bool> =
        (1..=6).map(|i| (format!("pg-{i}"), i == 2)).collect();
    assert_eq!(latest, want);
    let bad = api
        .get(&format!("/v1/groups/{group}/changes?cursor=%21%21"))
        .await
        .unwrap();
    assert_eq!(
        (bad.status, bad.body["errors"][0]["parameter"].clone()),
        (422, json!("cursor"))
    );
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let body = json!({"name": "once"});
    let k = [("idempotency-key", "k-123")];
    let first = api
        .send("POST", "/v1/groups", Some(&body), &k)
        .await
        .unwrap();
    let replay = api
        .send("POST", "/v1/groups", Some(&body), &k)
        .await
        .unwrap();
    assert_eq!(first.status, 201);
    assert_eq!((replay.status, &replay.body), (201, &first.body));
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(ctx.store().groups_of_user(user).await.unwrap().len(), 1);
    let misuse = api
        .send("POST", "/v1/groups", Some(&json!({"name": "other"})), &k)
        .await
        .unwrap();
    assert_eq!(misuse.status, 422, "{}", misuse.body);
    assert_eq!(misuse.body["errors"][0]["header"], "Idempotency-Key");
    // Keys are per user: another user's same key runs its own request.
    let other = srv
        .as_user(fresh_user())
        .send("POST", "/v1/groups", Some(&body), &k)
        .await
        .unwrap();
    assert_eq!(other.status, 201);
    assert_ne!(other.body["group_id"], first.body["group_id"]);
}
