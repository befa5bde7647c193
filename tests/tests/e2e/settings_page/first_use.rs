//! A first visit: signed out, empty, a Radicale calendar connected through the form (a
//! wrong password first), its frequency set, Sync now, a conflict resolved, and Disconnect.

use calsync_e2e::api::ApiServer;
use calsync_e2e::browser::Browser;
use calsync_e2e::fixtures::{self, new_calendar, simple_event, unique, Server, PASSWORD, USER};
use calsync_e2e::{local_ctx, runner};
use chrono::{Offset, TimeZone};
use fantoccini::{key::Key, Locator};
use serde_json::json;

use super::{fresh_user, sync_now, ZONE};

#[tokio::test]
async fn a_user_connects_syncs_and_resolves_a_conflict_in_the_settings_page() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let radicale = new_calendar(&ctx, Server::Radicale, &unique("page"))
        .await
        .unwrap();
    let b = Browser::start(ZONE).await.unwrap();
    let page = format!("{}/app/", srv.url);

    // Signed out: the page says where the sign-in comes from.
    b.open(&page, "#signin").await.unwrap();
    b.text_contains("#signin-text", "Open this page from your application")
        .await
        .unwrap();
    b.accessible("signed out").await.unwrap();
    b.screenshots("01-signed-out").await.unwrap();

    // Signed in through the fragment, which leaves the address bar at once; no group yet.
    let token = srv.issuer.token(user);
    b.open(&format!("{page}#token={token}"), "#links .empty")
        .await
        .unwrap();
    let url = b.client.current_url().await.unwrap();
    assert_eq!(
        url.fragment(),
        None,
        "the token stays in the address: {url}"
    );
    assert_eq!(
        b.js(
            "return document.getElementById('zone').textContent;",
            vec![]
        )
        .await
        .unwrap(),
        ZONE
    );
    // Keyboard: the skip link comes first, then the form's first control.
    b.js("document.activeElement.blur();", vec![])
        .await
        .unwrap();
    b.client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys(&char::from(Key::Tab).to_string())
        .await
        .unwrap();
    let focused = b
        .js("return document.activeElement.className;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "skip", "the first Tab stop");
    b.accessible("empty").await.unwrap();
    b.screenshots("02-empty").await.unwrap();

    // Connect Radicale with a wrong password: the error sits at the password field.
    b.choose("#provider", "caldav").await.unwrap();
    b.fill("#url", &radicale).await.unwrap();
    b.fill("#username", USER).await.unwrap();
    b.fill("#password", "not-the-password").await.unwrap();
    b.fill("#display_name", "Phone calendar").await.unwrap();
    b.choose("#frequency", "daily").await.unwrap();
    b.choose("#conflict_policy", "manual").await.unwrap();
    b.click("#submit-connect").await.unwrap();
    let said = b.text_contains("#password-error", "refused").await.unwrap();
    assert!(said.contains("app-specific password"), "{said}");
    let invalid = b
        .js(
            "const p = document.getElementById('password');
             return [p.getAttribute('aria-invalid'), document.activeElement === p,
                     p.getAttribute('aria-describedby')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        invalid,
        serde_json::json!(["true", true, "password-hint password-error"])
    );
    assert_eq!(
        b.js(
            "return document.querySelectorAll('[data-link]').length;",
            vec![]
        )
        .await
        .unwrap(),
        0,
        "nothing is connected with a refused password"
    );
    b.accessible("connect error").await.unwrap();
    b.screenshots("03-connect-wrong-password").await.unwrap();

    // The right password connects it, with the frequency and policy chosen.
    b.fill("#password", PASSWORD).await.unwrap();
    b.click("#submit-connect").await.unwrap();
    b.text_contains("#links", "Phone calendar").await.unwrap();
    let groups = api.get("/v1/groups").await.unwrap();
    let group = groups.body["groups"][0]["group_id"]
        .as_str()
        .unwrap()
        .to_string();
    let links = api.get(&format!("/v1/groups/{group}/links")).await.unwrap();
    let link = &links.body["links"][0];
    assert_eq!(
        (
            link["url"].as_str(),
            link["frequency_secs"].as_i64(),
            link["conflict_policy"].as_str()
        ),
        (Some(radicale.as_str()), Some(86_400), Some("manual")),
        "{link}"
    );
    let link_id = link["link_id"].as_str().unwrap().to_string();
    let card = format!("[data-link=\"{link_id}\"]");

    // Set the frequency, busy-only copies and the deletion brake in the calendar's
    // settings; a brake of 0 % is refused at its field.
    b.choose(&format!("#freq-{link_id}"), "weekly")
        .await
        .unwrap();
    b.click(&format!("#busy-{link_id}")).await.unwrap();
    b.fill(&format!("#brake-ratio-{link_id}"), "0")
        .await
        .unwrap();
    b.fill(&format!("#brake-min-{link_id}"), "3").await.unwrap();
    b.click(&format!("{card} .settings button")).await.unwrap();
    b.text_contains(
        &format!("#brake-ratio-{link_id}-error"),
        "Enter a percentage from 1 to 100",
    )
    .await
    .unwrap();
    // A brake of 0 events is the API's refusal, at its field too.
    b.fill(&format!("#brake-ratio-{link_id}"), "30")
        .await
        .unwrap();
    b.fill(&format!("#brake-min-{link_id}"), "0").await.unwrap();
    b.click(&format!("{card} .settings button")).await.unwrap();
    b.text_contains(&format!("#brake-min-{link_id}-error"), "Must be at least 1")
        .await
        .unwrap();
    b.fill(&format!("#brake-min-{link_id}"), "3").await.unwrap();
    b.fill(&format!("#brake-ratio-{link_id}"), "30")
        .await
        .unwrap();
    b.click(&format!("{card} .settings button")).await.unwrap();
    b.text_contains("#status", "saved").await.unwrap();
    let l = api.get(&format!("/v1/links/{link_id}")).await.unwrap();
    assert_eq!(
        (
            &l.body["frequency_secs"],
            &l.body["transforms"]["busy_only"],
            &l.body["transforms"]["exclude_all_day"],
            &l.body["brake_ratio"],
            &l.body["brake_min"]
        ),
        (
            &json!(604_800),
            &json!(true),
            &json!(false),
            &json!(0.3),
            &json!(3)
        ),
        "{}",
        l.body
    );
    // And back to full copies (the page was drawn again with the saved settings; the
    // status line is cleared so that the wait below sees this save's announcement).
    b.js("document.getElementById('status').textContent = ''", vec![])
        .await
        .unwrap();
    b.click(&format!("#busy-{link_id}")).await.unwrap();
    b.click(&format!("{card} .settings button")).await.unwrap();
    b.text_contains("#status", "saved").await.unwrap();
    let l = api.get(&format!("/v1/links/{link_id}")).await.unwrap();
    assert_eq!(
        (&l.body["transforms"]["busy_only"], &l.body["brake_min"]),
        (&json!(false), &json!(3)),
        "{}",
        l.body
    );

    // The first sync (queued by connecting) runs; an event then arrives on the phone, and
    // Sync now brings it, with the run shown when its record arrives.
    runner::drain(&ctx).await.unwrap();
    b.open(
        &format!("{page}#token={token}"),
        &format!("{card} tr[data-run]"),
    )
    .await
    .unwrap();
    fixtures::client_put(&ctx, &radicale, &simple_event("page-1", "Base", 9))
        .await
        .unwrap();
    sync_now(&ctx, &b, &card, "1 new").await;
    b.text_contains(&format!("{card} .runs-table"), "1 new")
        .await
        .unwrap();
    let runs = api.get(&format!("/v1/links/{link_id}/runs")).await.unwrap();
    let newest = &runs.body["runs"][0];
    assert_eq!(newest["created"], 1, "{newest}");
    // Times in the user's zone: the run's end as Auckland's clock shows it.
    let ended = newest["ended_ms"].as_i64().unwrap();
    let offset_h = chrono_tz::Pacific::Auckland
        .offset_from_utc_datetime(
            &chrono::DateTime::from_timestamp_millis(ended)
                .unwrap()
                .naive_utc(),
        )
        .fix()
        .local_minus_utc()
        / 3600;
    let shown = b
        .js(
            "return document.querySelector(arguments[0] + ' tr[data-run] time').textContent;",
            vec![serde_json::json!(card)],
        )
        .await
        .unwrap();
    assert!(
        shown.as_str().unwrap().contains(&format!("GMT+{offset_h}")),
        "run time {shown} is not in {ZONE}"
    );
    b.accessible("calendar listed").await.unwrap();
    b.screenshots("04-calendar-synced").await.unwrap();

    // Both sides edit the event before either syncs: a conflict, since the policy asks.
    let path = format!("/v1/groups/{group}/events/page-1");
    let put = api
        .put_ical(&path, &simple_event("page-1", "App title", 9), &[])
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    fixtures::client_retitle(&ctx, &radicale, "page-1", "Base", "Phone title")
        .await
        .unwrap();
    sync_now(&ctx, &b, &card, "1 in conflict").await;
    b.text_contains("#conflicts", "Phone title").await.unwrap();
    let sides = b
        .js(
            "return [...document.querySelectorAll('.conflict .version dd[data-name=title]')]
                .map((d) => d.textContent);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(sides, serde_json::json!(["App title", "Phone title"]));
    b.accessible("conflict").await.unwrap();
    b.screenshots("05-conflict").await.unwrap();

    // Keep the phone's version: the hub takes it, the conflict is gone.
    b.click(".conflict button[data-keep=remote]").await.unwrap();
    b.text_contains("#conflicts", "No conflicts").await.unwrap();
    let hub = api.get(&path).await.unwrap();
    assert_eq!(hub.body["event"]["title"], "Phone title", "{}", hub.body);
    runner::drain(&ctx).await.unwrap();
    let on_phone = fixtures::events_in(&ctx, &radicale).await.unwrap();
    assert_eq!(
        on_phone
            .iter()
            .map(|(_, s)| s.summary())
            .collect::<Vec<_>>(),
        vec!["Phone title".to_string()]
    );

    // Disconnect asks first; Cancel keeps the calendar, the confirmation removes it.
    b.click(&format!("{card} [data-action=disconnect]"))
        .await
        .unwrap();
    b.visible("#confirm").await.unwrap();
    b.accessible("disconnect confirmation").await.unwrap();
    b.screenshots("06-disconnect-confirm").await.unwrap();
    b.click("#confirm-no").await.unwrap();
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}"))
            .await
            .unwrap()
            .status,
        200
    );
    b.click(&format!("{card} [data-action=disconnect]"))
        .await
        .unwrap();
    b.click("#confirm-yes").await.unwrap();
    b.text_contains("#status", "disconnected").await.unwrap();
    b.visible("#links .empty").await.unwrap();
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}"))
            .await
            .unwrap()
            .status,
        404
    );
    b.close().await.unwrap();
}
