//! Another calendar of a connected account: `GET /v1/links/{link_id}/calendars` lists the
//! account's calendars (Google's calendar list, the Outlook mailbox's calendars across
//! pages, the CalDAV account's calendar home), and `POST …/links` with `from_link` connects
//! one of them with a copy of the link's credentials — no second consent, no password —
//! and it syncs. Needs the local stack.

use calsync_e2e::api::{ApiClient, ApiServer};
use calsync_e2e::emulators::google::Config as GoogleConfig;
use calsync_e2e::emulators::graph::Config as GraphConfig;
use calsync_e2e::fixtures::{self, Server};
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::local_ctx;
use calsync_e2e::outlook::LocalOutlook;
use serde_json::{json, Value};

/// The calendar named `name` in a `GET …/calendars` answer.
fn entry<'a>(listing: &'a Value, name: &str) -> &'a Value {
    listing["calendars"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no calendar {name:?} in {listing}"))
}

/// `POST /v1/groups/{group}/links` with `body`: the status and the first error's pointer.
async fn refused(api: &ApiClient, group: &str, body: Value) -> (u16, Value, String) {
    let a = api
        .post(&format!("/v1/groups/{group}/links"), &body)
        .await
        .expect("post");
    let detail = a.body["errors"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (a.status, a.body["errors"][0]["pointer"].clone(), detail)
}

/// Whether the group's hub holds an event whose text contains `summary`.
async fn hub_has(api: &ApiClient, group: &str, summary: &str) -> bool {
    let events = api
        .get(&format!("/v1/groups/{group}/events"))
        .await
        .expect("events");
    events.body.to_string().contains(summary)
}

/// A Google user connected "Home" through a consent. The API lists the account's calendars
/// (only this account's, "Home" marked as linked), connects "Work" from the Home link with
/// the settings chosen and without a consent, and Work's events reach the group. The two
/// links hold their tokens in secrets of their own, and disconnecting Home keeps the grant
/// Work still uses. Wrong `from_link` bodies are 422 at the field they concern.
#[tokio::test]
async fn another_calendar_of_a_google_account_connects_without_a_second_consent() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, GoogleConfig::default())
        .await
        .expect("google");
    let user = fixtures::fresh_user();
    let srv = ApiServer::start_local(lg.ctx.clone()).await.expect("api");
    let api = srv.as_user(user);
    let group = api.create_group("google account").await.expect("group");
    let home = lg
        .connect(&group, user, "home@example.com", "Home")
        .await
        .expect("connect home");
    lg.emu
        .add_calendar("work1@group.calendar.google.com", "Work", "Europe/Berlin");
    lg.emu.add_account("stranger@example.com", "Europe/Berlin");

    let listing = api
        .get(&format!("/v1/links/{}/calendars", home.link_id))
        .await
        .expect("calendars");
    assert_eq!(listing.status, 200, "{}", listing.body);
    let names: Vec<&str> = listing.body["calendars"]
        .as_array()
        .expect("calendars")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        !names.contains(&"stranger@example.com"),
        "another account's calendar is listed: {names:?}"
    );
    assert_eq!(
        entry(&listing.body, "Home")["link_ids"],
        json!([home.link_id])
    );
    let work = entry(&listing.body, "Work");
    assert_eq!(
        (&work["id"], &work["writable"], &work["link_ids"]),
        (
            &json!("work1@group.calendar.google.com"),
            &json!(true),
            &json!([])
        )
    );

    // Refusals name the field.
    let stranger = fixtures::fresh_user();
    let theirs = srv
        .as_user(stranger)
        .create_group("theirs")
        .await
        .expect("group");
    let from = home.link_id.as_str();
    for (body, target_group, pointer) in [
        (
            json!({"provider": "google", "from_link": from, "calendar": "Nope"}),
            group.as_str(),
            "#/calendar",
        ),
        (
            json!({"provider": "google", "from_link": from}),
            group.as_str(),
            "#/calendar",
        ),
        (
            json!({"provider": "outlook", "from_link": from, "calendar": "Work"}),
            group.as_str(),
            "#/from_link",
        ),
        (
            json!({"provider": "google", "from_link": from, "calendar": "Work", "password": "x"}),
            group.as_str(),
            "#/password",
        ),
    ] {
        let (status, got, detail) = refused(&api, target_group, body.clone()).await;
        assert_eq!((status, got), (422, json!(pointer)), "{body}: {detail}");
    }
    let (_, _, detail) = refused(
        &api,
        &group,
        json!({"provider": "google", "from_link": from, "calendar": "Nope"}),
    )
    .await;
    assert!(
        detail.contains("\"Work\""),
        "the answer names the calendars: {detail}"
    );
    // Another user can use neither the link nor the listing.
    let other = srv.as_user(stranger);
    let (status, pointer, _) = refused(
        &other,
        &theirs,
        json!({"provider": "google", "from_link": from, "calendar": "Work"}),
    )
    .await;
    assert_eq!((status, pointer), (422, json!("#/from_link")));
    let a = other
        .get(&format!("/v1/links/{from}/calendars"))
        .await
        .expect("get");
    assert_eq!(a.status, 404, "{}", a.body);

    // Connect Work from the Home link: no consent, the settings chosen, a secret of its own.
    let consents = lg.hooks.callbacks_seen();
    let made = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "google", "from_link": from, "calendar": "Work", "frequency": "daily"}),
        )
        .await
        .expect("post");
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        (&made.body["display_name"], &made.body["frequency_secs"]),
        (&json!("Work"), &json!(86_400))
    );
    assert_eq!(lg.hooks.callbacks_seen(), consents, "no second consent");
    let work_link = lg
        .ctx
        .store()
        .get_link(made.body["link_id"].as_str().expect("id"))
        .await
        .expect("get")
        .expect("link");
    assert_ne!(work_link.secret_arn, home.secret_arn, "a secret of its own");
    let copied = calsync::oauth::read_tokens(&lg.ctx, work_link.secret_arn.as_deref().unwrap())
        .await
        .expect("tokens");
    assert_eq!(
        work_link.token_expires_at,
        Some(copied.expires_at),
        "the copied tokens' expiry is recorded"
    );
    assert!(work_link
        .url
        .ends_with("/calendars/work1%40group.calendar.google.com"));
    let listing = api
        .get(&format!("/v1/links/{from}/calendars"))
        .await
        .expect("calendars");
    assert_eq!(
        entry(&listing.body, "Work")["link_ids"],
        json!([work_link.link_id])
    );

    // Work's events reach the group.
    lg.user_api(&work_link)
        .await
        .expect("user api")
        .insert(json!({"summary": "Planned in Work",
            "start": {"dateTime": "2031-03-04T10:00:00Z"}, "end": {"dateTime": "2031-03-04T11:00:00Z"}}))
        .await
        .expect("insert");
    let stats = fixtures::sync_link(&lg.ctx, &work_link.link_id)
        .await
        .expect("sync");
    let runs = api
        .get(&format!("/v1/links/{}/runs", work_link.link_id))
        .await
        .expect("runs");
    assert_eq!(stats.failures, 0, "{stats:?} {}", runs.body);
    assert!(hub_has(&api, &group, "Planned in Work").await);

    // Disconnecting Home keeps the grant Work's tokens belong to.
    let gone = api
        .delete(&format!("/v1/links/{from}"))
        .await
        .expect("delete");
    assert_eq!(gone.status, 204, "{}", gone.body);
    calsync_e2e::accounts::assert_still_refreshes(&lg.ctx, &work_link).await;
}

/// An Outlook mailbox with more calendars than one page of `GET /me/calendars`: every one
/// is listed (the main one marked), and one connected from the main calendar's link syncs.
#[tokio::test]
async fn every_calendar_of_an_outlook_mailbox_is_listed_and_one_connects_from_the_link() {
    let lo = LocalOutlook::start(&local_ctx().await, GraphConfig::default())
        .await
        .expect("outlook");
    let user = fixtures::fresh_user();
    let srv = ApiServer::start_local(lo.ctx.clone()).await.expect("api");
    let api = srv.as_user(user);
    let group = api.create_group("outlook mailbox").await.expect("group");
    // With no calendar named, the consent connects the main calendar.
    let consent = lo
        .consent_url(&group, user, "", "Main")
        .await
        .expect("consent");
    let main = lo.open_consent(&consent).await.expect("connect");
    for i in 0..104 {
        lo.emu
            .add_calendar(&format!("AAMkProject{i:03}="), &format!("Project {i:03}"));
    }
    let listing = api
        .get(&format!("/v1/links/{}/calendars", main.link_id))
        .await
        .expect("calendars");
    assert_eq!(listing.status, 200, "{}", listing.body);
    let all = listing.body["calendars"].as_array().expect("calendars");
    assert_eq!(
        all.len(),
        105,
        "the main calendar and 104 more, over two pages"
    );
    let mains: Vec<&Value> = all.iter().filter(|c| c["main"] == true).collect();
    assert_eq!(mains.len(), 1, "{mains:?}");
    assert_eq!(mains[0]["link_ids"], json!([main.link_id]));
    assert_eq!(entry(&listing.body, "Project 103")["id"], "AAMkProject103=");

    let made = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "outlook", "from_link": main.link_id, "calendar": "AAMkProject103="}),
        )
        .await
        .expect("post");
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["display_name"], "Project 103");
    let project = lo
        .ctx
        .store()
        .get_link(made.body["link_id"].as_str().expect("id"))
        .await
        .expect("get")
        .expect("link");
    let day = (chrono::Utc::now() + chrono::Duration::days(9)).date_naive();
    lo.user(&project)
        .await
        .expect("user")
        .create(json!({"subject": "Kick-off of Project 103",
            "start": {"dateTime": format!("{day}T10:00:00"), "timeZone": "UTC"},
            "end": {"dateTime": format!("{day}T11:00:00"), "timeZone": "UTC"}}))
        .await
        .expect("create");
    calsync_e2e::runner::drain(&lo.ctx).await.expect("drain");
    assert!(hub_has(&api, &group, "Kick-off of Project 103").await);
}

/// A CalDAV account's other calendars come from its calendar home, found from the linked
/// calendar's URL; one connects with the stored password (none is sent). An ICS feed has no
/// account to list: 409.
#[tokio::test]
async fn a_caldav_accounts_other_calendar_connects_with_the_stored_password() {
    let ctx = local_ctx().await;
    let user = fixtures::fresh_user();
    let srv = ApiServer::start_local(ctx.clone()).await.expect("api");
    let api = srv.as_user(user);
    let group = api.create_group("caldav account").await.expect("group");
    let first = fixtures::new_calendar(&ctx, Server::Radicale, &fixtures::unique("acc-one"))
        .await
        .expect("calendar");
    let second_name = fixtures::unique("acc-two");
    let second = fixtures::new_calendar(&ctx, Server::Radicale, &second_name)
        .await
        .expect("calendar");
    let made = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "caldav", "url": first, "username": fixtures::USER, "password": fixtures::PASSWORD}),
        )
        .await
        .expect("post");
    assert_eq!(made.status, 201, "{}", made.body);
    let from = made.body["link_id"].as_str().expect("id").to_string();
    let listing = api
        .get(&format!("/v1/links/{from}/calendars"))
        .await
        .expect("calendars");
    assert_eq!(listing.status, 200, "{}", listing.body);
    let all = listing.body["calendars"].as_array().expect("calendars");
    let by_url = |url: &str| all.iter().find(|c| c["id"] == url).cloned();
    assert_eq!(
        by_url(&first).map(|c| c["link_ids"].clone()),
        Some(json!([from])),
        "{}",
        listing.body
    );
    assert_eq!(
        by_url(&second).map(|c| c["link_ids"].clone()),
        Some(json!([])),
        "{}",
        listing.body
    );

    let made = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &json!({"provider": "caldav", "from_link": from, "calendar": second}),
        )
        .await
        .expect("post");
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["url"], json!(second));
    fixtures::client_put(
        &ctx,
        &second,
        &fixtures::simple_event(&fixtures::unique("acc-ev"), "Filed in the second", 5),
    )
    .await
    .expect("put");
    let stats = fixtures::sync_link(&ctx, made.body["link_id"].as_str().expect("id"))
        .await
        .expect("sync");
    assert_eq!(stats.failures, 0, "{stats:?}");
    assert!(hub_has(&api, &group, "Filed in the second").await);

    // Neither calendar can be linked into the group a second time, in whatever form its URL
    // is written; another group may link it.
    let second_link = made.body["link_id"].as_str().expect("id").to_string();
    for (body, existing) in [
        (
            json!({"provider": "caldav", "url": first.trim_end_matches('/'), "username": fixtures::USER, "password": fixtures::PASSWORD}),
            &from,
        ),
        (
            json!({"provider": "caldav", "from_link": from, "calendar": second}),
            &second_link,
        ),
    ] {
        let a = api
            .post(&format!("/v1/groups/{group}/links"), &body)
            .await
            .expect("post");
        assert_eq!(a.status, 409, "{body}: {}", a.body);
        assert!(
            a.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(existing.as_str()),
            "the answer names the link: {}",
            a.body
        );
    }
    let elsewhere = api.create_group("another").await.expect("group");
    let a = api
        .post(
            &format!("/v1/groups/{elsewhere}/links"),
            &json!({"provider": "caldav", "from_link": from, "calendar": second}),
        )
        .await
        .expect("post");
    assert_eq!(a.status, 201, "{}", a.body);

    // A feed is one calendar.
    let feed = fixtures::ics_link(&ctx, &group, user, "https://example.com/f.ics", "feed")
        .await
        .expect("feed");
    let a = api
        .get(&format!("/v1/links/{}/calendars", feed.link_id))
        .await
        .expect("get");
    assert_eq!(a.status, 409, "{}", a.body);
}
