//! The settings page (`/app/`) in a real browser (headless Chromium through chromedriver):
//! signed out, empty, connecting a Radicale calendar through the form (a wrong password's
//! error at the password field), setting the frequency, Sync now until the run appears, a
//! conflict made by editing both sides and resolved with "Keep this one", and Disconnect
//! behind its confirmation; the events a calendar refused, with the server's reason; a
//! calendar waiting for reconnection reconnected, a quarantined deletion let through, and a
//! Google calendar connected through its consent window (the emulator); and an application
//! on another origin framing the page and handing it the token by `postMessage`.
//! Every screen is checked with axe-core and saved as a screenshot at desktop and phone width
//! (`target/screenshots/`).

use calsync_e2e::api::{ApiClient, ApiServer};
use calsync_e2e::browser::Browser;
use calsync_e2e::fixtures::{self, new_calendar, simple_event, unique, Server, PASSWORD, USER};
use calsync_e2e::{local_ctx, runner};
use chrono::{Offset, TimeZone};
use fantoccini::{key::Key, Locator};
use std::time::{Duration, Instant};

/// The browser's time zone: far from UTC, so a time shown in UTC would be caught.
const ZONE: &str = "Pacific/Auckland";

fn fresh_user() -> i64 {
    3_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64
}

async fn check_a11y(b: &Browser, screen: &str) {
    let found = b.accessibility_violations().await.unwrap();
    assert!(
        found.is_empty(),
        "{screen}: axe-core found serious or critical violations:\n{}",
        found.join("\n")
    );
}

/// Drain the queues until the page's element `css` says `want` (the page polls the API on
/// its own; the queue runner stands in for the SQS event source mappings).
async fn drain_until(ctx: &calsync::config::Ctx, b: &Browser, css: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        runner::drain(ctx).await.unwrap();
        if let Ok(e) = b.client.find(Locator::Css(css)).await {
            let text = e.text().await.unwrap_or_default();
            if text.contains(want) {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{css} never said {want:?} while the queues drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Press the card's "Sync now", run the queued pull once the page says it is queued, and
/// wait for the page to report the run; its words must contain `want`.
async fn sync_now(ctx: &calsync::config::Ctx, b: &Browser, card: &str, want: &str) {
    click(b, &format!("{card} [data-action=sync]")).await;
    let progress = format!("{card} .progress");
    b.text_contains(&progress, "Sync queued").await.unwrap();
    let done = drain_until(ctx, b, &progress, "Sync finished").await;
    assert!(done.contains(want), "{done}");
}

/// Connect the CalDAV calendar at `url` to `group` through the API; the link id.
async fn connect(api: &ApiClient, group: &str, url: &str, name: &str) -> String {
    let r = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &serde_json::json!({"provider": "caldav", "url": url, "username": USER,
                                "password": PASSWORD, "display_name": name}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["link_id"].as_str().unwrap().to_string()
}

async fn fill(b: &Browser, css: &str, value: &str) {
    let e = b.visible(css).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn choose(b: &Browser, css: &str, value: &str) {
    b.visible(css)
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

async fn click(b: &Browser, css: &str) {
    b.visible(css).await.unwrap().click().await.unwrap();
}

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
    check_a11y(&b, "signed out").await;
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
    check_a11y(&b, "empty").await;
    b.screenshots("02-empty").await.unwrap();

    // Connect Radicale with a wrong password: the error sits at the password field.
    choose(&b, "#provider", "caldav").await;
    fill(&b, "#url", &radicale).await;
    fill(&b, "#username", USER).await;
    fill(&b, "#password", "not-the-password").await;
    fill(&b, "#display_name", "Phone calendar").await;
    choose(&b, "#frequency", "daily").await;
    choose(&b, "#conflict_policy", "manual").await;
    click(&b, "#submit-connect").await;
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
    check_a11y(&b, "connect error").await;
    b.screenshots("03-connect-wrong-password").await.unwrap();

    // The right password connects it, with the frequency and policy chosen.
    fill(&b, "#password", PASSWORD).await;
    click(&b, "#submit-connect").await;
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

    // Set the frequency in the calendar's settings.
    choose(&b, &format!("#freq-{link_id}"), "weekly").await;
    click(&b, &format!("{card} .settings button")).await;
    b.text_contains("#status", "saved").await.unwrap();
    let l = api.get(&format!("/v1/links/{link_id}")).await.unwrap();
    assert_eq!(l.body["frequency_secs"], 604_800);

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
    check_a11y(&b, "calendar listed").await;
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
    check_a11y(&b, "conflict").await;
    b.screenshots("05-conflict").await.unwrap();

    // Keep the phone's version: the hub takes it, the conflict is gone.
    click(&b, ".conflict button[data-keep=remote]").await;
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
    click(&b, &format!("{card} [data-action=disconnect]")).await;
    b.visible("#confirm").await.unwrap();
    check_a11y(&b, "disconnect confirmation").await;
    b.screenshots("06-disconnect-confirm").await.unwrap();
    click(&b, "#confirm-no").await;
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}"))
            .await
            .unwrap()
            .status,
        200
    );
    click(&b, &format!("{card} [data-action=disconnect]")).await;
    click(&b, "#confirm-yes").await;
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

#[tokio::test]
async fn events_a_calendar_refused_are_listed_with_the_servers_reason() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let name = unique("page-err");
    let radicale = new_calendar(&ctx, Server::Radicale, &name).await.unwrap();
    let xandikos = new_calendar(&ctx, Server::Xandikos, &name).await.unwrap();
    fixtures::client_put(&ctx, &radicale, &fixtures::xandikos_rejects())
        .await
        .unwrap();
    let group = api.create_group("errors").await.unwrap();
    connect(&api, &group, &radicale, "Radicale").await;
    let xlink = connect(&api, &group, &xandikos, "Xandikos").await;
    runner::drain(&ctx).await.unwrap();
    let listed = api.get(&format!("/v1/links/{xlink}/errors")).await.unwrap();
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["total"], 1, "{}", listed.body);
    let e = &listed.body["errors"][0];
    assert_eq!(
        (e["event_id"].as_str(), e["title"].as_str()),
        (Some("odd-tz"), Some("Odd zone"))
    );
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("valid-calendar-data"),
        "{e}"
    );

    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    let card = format!("[data-link=\"{xlink}\"]");
    b.open(
        &format!("{}/app/#token={token}", srv.url),
        &format!("{card} .problems li[data-event=\"odd-tz\"]"),
    )
    .await
    .unwrap();
    let said = b
        .text_contains(&format!("{card} .problems"), "Odd zone")
        .await
        .unwrap();
    assert!(said.contains("CALDAV:valid-calendar-data"), "{said}");
    assert!(
        said.contains("Offset must be less than 24 hours") && !said.contains('<'),
        "the server's words, not its XML: {said}"
    );
    check_a11y(&b, "events in error").await;
    b.screenshots("07-events-in-error").await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_parked_calendar_is_reconnected_and_held_deletions_let_through_from_the_page() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let radicale = new_calendar(&ctx, Server::Radicale, &unique("page-park"))
        .await
        .unwrap();
    let group = api.create_group("parked").await.unwrap();
    let link_id = connect(&api, &group, &radicale, "Work").await;
    runner::drain(&ctx).await.unwrap();
    let card = format!("[data-link=\"{link_id}\"]");
    let store = ctx.store();
    // The engine parks a link whose password the server refuses; here it is parked directly.
    store
        .set_link_status(
            &link_id,
            calsync::model::LinkStatus::ReconnectNeeded,
            Some("the server refused the username or password (HTTP 401)"),
        )
        .await
        .unwrap();
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    let page = format!("{}/app/#token={token}", srv.url);
    b.open(&page, &format!("{card} [data-status=reconnect_needed]"))
        .await
        .unwrap();
    b.text_contains(&format!("{card} .reason"), "HTTP 401")
        .await
        .unwrap();
    check_a11y(&b, "reconnect needed").await;
    b.screenshots("08-reconnect-needed").await.unwrap();
    click(&b, &format!("{card} [data-action=reconnect]")).await;
    let password = format!("#re-password-{link_id}");
    fill(&b, &format!("#re-username-{link_id}"), USER).await;
    fill(&b, &password, "still-wrong").await;
    click(&b, &format!("{card} .reconnect-form button")).await;
    b.text_contains(&format!("{password}-error"), "refused")
        .await
        .unwrap();
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}")).await.unwrap().body["status"],
        "reconnect_needed"
    );
    fill(&b, &password, PASSWORD).await;
    click(&b, &format!("{card} .reconnect-form button")).await;
    b.visible(&format!("{card} [data-status=ok]"))
        .await
        .unwrap();
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}")).await.unwrap().body["status"],
        "ok"
    );

    // A quarantined pull: the held deletions go through once from the page.
    store
        .set_link_status(
            &link_id,
            calsync::model::LinkStatus::Quarantined,
            Some("a pull would delete 8 of 10 events; deletions held back"),
        )
        .await
        .unwrap();
    b.open(&page, &format!("{card} [data-status=quarantined]"))
        .await
        .unwrap();
    check_a11y(&b, "quarantined").await;
    b.screenshots("09-quarantined").await.unwrap();
    click(&b, &format!("{card} [data-action=release]")).await;
    b.text_contains("#status", "go through with its next sync")
        .await
        .unwrap();
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}")).await.unwrap().body["allow_mass_delete"],
        true
    );
    b.close().await.unwrap();
}

#[tokio::test]
async fn google_connects_through_its_consent_window() {
    let lg = calsync_e2e::google::LocalGoogle::start(
        &local_ctx().await,
        calsync_e2e::emulators::google::Config::default(),
    )
    .await
    .unwrap();
    let srv = ApiServer::start_local(lg.ctx.clone()).await.unwrap();
    let user = fresh_user();
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    b.open(&format!("{}/app/#token={token}", srv.url), "#links .empty")
        .await
        .unwrap();
    choose(&b, "#provider", "google").await;
    fill(&b, "#display_name", "Google work").await;
    let windows = b.client.windows().await.unwrap().len();
    click(&b, "#submit-connect").await;
    // The emulator's consent page consents at once; the page finds the new calendar.
    b.text_contains("#links", "Google work").await.unwrap();
    assert_eq!(
        b.client.windows().await.unwrap().len(),
        windows + 1,
        "the consent ran in a window of its own"
    );
    let api = srv.as_user(user);
    let groups = api.get("/v1/groups").await.unwrap();
    let group = groups.body["groups"][0]["group_id"].as_str().unwrap();
    let links = api.get(&format!("/v1/groups/{group}/links")).await.unwrap();
    assert_eq!(
        (
            links.body["links"][0]["provider"].as_str(),
            links.body["links"][0]["display_name"].as_str()
        ),
        (Some("google"), Some("Google work")),
        "{}",
        links.body
    );
    b.text_contains("#status", "Connected Google work")
        .await
        .unwrap();
    runner::drain(&lg.ctx).await.unwrap();
    b.close().await.unwrap();
}

/// An application's page on its own origin framing the settings page: it answers the page's
/// `calsync:ready` with a token that is refused, then, told `calsync:token-expired`, with a
/// good one; what it receives goes into `#log`.
fn embedder_html(page_origin: &str, bad: &str, good: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><title>The application</title>
<iframe id="f" src="{page_origin}/app/" title="Calendar settings" width="1100" height="900"></iframe>
<p id="log"></p>
<script>
const frame = document.getElementById("f");
window.addEventListener("message", (ev) => {{
  if (ev.origin !== "{page_origin}") return;
  document.getElementById("log").textContent += ev.data.type + " ";
  const token = ev.data.type === "calsync:ready" ? "{bad}" : "{good}";
  frame.contentWindow.postMessage({{type: "calsync:token", token}}, "{page_origin}");
}});
</script></html>"#
    )
}

#[tokio::test]
async fn an_application_embeds_the_page_and_hands_it_the_token_by_post_message() {
    let ctx = local_ctx().await;
    let parent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let parent_origin = format!("http://{}", parent.local_addr().unwrap());
    let issuer = calsync_e2e::issuer::DevIssuer::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        None,
    )
    .await
    .unwrap();
    let page = calsync::api::app::AppConfig {
        parent_origins: vec![parent_origin.clone()],
    };
    let srv = ApiServer::start_with_page(
        ctx,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        issuer,
        &page,
    )
    .await
    .unwrap();
    let csp = reqwest::get(format!("{}/app/", srv.url))
        .await
        .unwrap()
        .headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.ends_with(&format!("frame-ancestors {parent_origin}")),
        "{csp}"
    );
    let html = embedder_html(&srv.url, "not-a-token", &srv.issuer.token(fresh_user()));
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    let served = tokio::spawn(async move { axum::serve(parent, app).await });
    let b = Browser::start(ZONE).await.unwrap();
    b.open(&format!("{parent_origin}/"), "#f").await.unwrap();
    // The refused token is reported to the application, which then sends a good one.
    b.text_contains("#log", "calsync:ready calsync:token-expired")
        .await
        .unwrap();
    b.client.enter_frame(0).await.unwrap();
    b.visible("#links .empty").await.unwrap();
    assert_eq!(
        b.js("return location.hash;", vec![]).await.unwrap(),
        "",
        "the token never was in the address"
    );
    b.client.enter_parent_frame().await.unwrap();
    check_a11y(&b, "embedded").await;
    b.close().await.unwrap();
    served.abort();
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_needs_no_token() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx).await.unwrap();
    let http = reqwest::Client::new();
    let index = http.get(format!("{}/app/", srv.url)).send().await.unwrap();
    assert_eq!(index.status(), 200);
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(index.headers()["x-content-type-options"], "nosniff");
    let etag = index.headers()["etag"].to_str().unwrap().to_string();
    let body = index.text().await.unwrap();
    assert!(
        !body.contains("<script>") && !body.contains("style="),
        "inline code"
    );
    let again = http
        .get(format!("{}/app/", srv.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let js = http
        .get(format!("{}/app/app.js", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    for bad in [
        "/app/../v1/groups",
        "/app/nothing.js",
        "/app/%2e%2e%2fCargo.toml",
    ] {
        let r = http.get(format!("{}{bad}", srv.url)).send().await.unwrap();
        assert!(
            r.status() == 404 || r.status() == 401,
            "{bad}: {}",
            r.status()
        );
    }
    let bare = http.get(format!("{}/app", srv.url)).send().await.unwrap();
    assert_eq!(bare.status(), 200);
    assert_eq!(bare.text().await.unwrap(), body, "/app serves the page too");
}
