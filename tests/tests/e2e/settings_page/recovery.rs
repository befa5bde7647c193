//! What goes wrong and its way out: events a calendar refused, a calendar waiting for
//! reconnection, a quarantined deletion, and Google and Outlook connected through their
//! consent windows, with another calendar of the account picked in the page (for CalDAV,
//! another calendar on the same server, with the same credentials).

use calsync_e2e::api::ApiServer;
use calsync_e2e::browser::Browser;
use calsync_e2e::fixtures::{self, new_calendar, unique, Server, PASSWORD, USER};
use calsync_e2e::{local_ctx, runner};

use super::{connect, fresh_user, ZONE};

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
    b.accessible("events in error").await.unwrap();
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
    b.accessible("reconnect needed").await.unwrap();
    b.screenshots("08-reconnect-needed").await.unwrap();
    b.click(&format!("{card} [data-action=reconnect]"))
        .await
        .unwrap();
    let password = format!("#re-password-{link_id}");
    b.fill(&format!("#re-username-{link_id}"), USER)
        .await
        .unwrap();
    b.fill(&password, "still-wrong").await.unwrap();
    b.click(&format!("{card} .reconnect-form button"))
        .await
        .unwrap();
    b.text_contains(&format!("{password}-error"), "refused")
        .await
        .unwrap();
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}")).await.unwrap().body["status"],
        "reconnect_needed"
    );
    b.fill(&password, PASSWORD).await.unwrap();
    b.click(&format!("{card} .reconnect-form button"))
        .await
        .unwrap();
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
    b.accessible("quarantined").await.unwrap();
    b.screenshots("09-quarantined").await.unwrap();
    b.click(&format!("{card} [data-action=release]"))
        .await
        .unwrap();
    b.text_contains("#status", "go through with its next sync")
        .await
        .unwrap();
    assert_eq!(
        api.get(&format!("/v1/links/{link_id}")).await.unwrap().body["allow_mass_delete"],
        true
    );
    b.close().await.unwrap();
}

/// Submit the connection form of an OAuth provider: the consent runs in a window of its own
/// (the emulators consent at once) and the page then lists the calendar `name`.
async fn connect_in_consent_window(b: &Browser, name: &str) {
    let windows = b.client.windows().await.unwrap().len();
    b.click("#submit-connect").await.unwrap();
    b.text_contains("#links", name).await.unwrap();
    assert_eq!(
        b.client.windows().await.unwrap().len(),
        windows + 1,
        "the consent ran in a window of its own"
    );
}

/// On the connected calendar, open "Other calendars of this account" and connect the
/// calendar "Team" from it: the list shows Team and the connected main calendar (`ids`:
/// main, Team), passes axe (and is photographed as `screenshot`), and the connection opens
/// no consent window.
async fn pick_team_in_page(b: &Browser, (main, team): (&str, &str), screenshot: Option<&str>) {
    b.click(r#"[data-action="other-calendars"]"#).await.unwrap();
    b.text_contains(".account-calendars", "Team").await.unwrap();
    b.text_contains(&format!(r#"[data-calendar="{main}"]"#), "Connected")
        .await
        .unwrap();
    b.accessible("the account's calendars").await.unwrap();
    if let Some(name) = screenshot {
        b.screenshots(name).await.unwrap();
    }
    let windows = b.client.windows().await.unwrap().len();
    b.click(&format!(
        r#"[data-calendar="{team}"] [data-action="connect-calendar"]"#
    ))
    .await
    .unwrap();
    b.text_contains("#status", "Team is connected")
        .await
        .unwrap();
    assert_eq!(
        b.client.windows().await.unwrap().len(),
        windows,
        "no consent window"
    );
}

/// (provider, display name) of each link of the caller's first group.
async fn link_names(api: &calsync_e2e::api::ApiClient) -> Vec<(String, String)> {
    let groups = api.get("/v1/groups").await.unwrap();
    let group = groups.body["groups"][0]["group_id"].as_str().unwrap();
    let links = api.get(&format!("/v1/groups/{group}/links")).await.unwrap();
    links.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_string();
            (s("provider"), s("display_name"))
        })
        .collect()
}

#[tokio::test]
async fn google_connects_through_its_consent_window() {
    let lg = calsync_e2e::google::LocalGoogle::start(
        &local_ctx().await,
        calsync_e2e::emulators::google::Config::default(),
    )
    .await
    .unwrap();
    // The account's main calendar, which the consent connects (no calendar chosen).
    lg.emu.add_calendar("primary", "Main", "Europe/Berlin");
    let srv = ApiServer::start_local(lg.ctx.clone()).await.unwrap();
    let user = fresh_user();
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    b.open(&format!("{}/app/#token={token}", srv.url), "#links .empty")
        .await
        .unwrap();
    b.choose("#provider", "google").await.unwrap();
    b.fill("#display_name", "Google work").await.unwrap();
    b.choose("#frequency", "daily").await.unwrap();
    b.choose("#conflict_policy", "manual").await.unwrap();
    connect_in_consent_window(&b, "Google work").await;
    let api = srv.as_user(user);
    let groups = api.get("/v1/groups").await.unwrap();
    let group = groups.body["groups"][0]["group_id"].as_str().unwrap();
    let links = api.get(&format!("/v1/groups/{group}/links")).await.unwrap();
    let l = &links.body["links"][0];
    assert_eq!(
        (
            l["provider"].as_str(),
            l["display_name"].as_str(),
            l["frequency_secs"].as_i64(),
            l["conflict_policy"].as_str()
        ),
        (
            Some("google"),
            Some("Google work"),
            Some(86_400),
            Some("manual")
        ),
        "the frequency and conflict policy chosen in the form: {}",
        links.body
    );
    b.text_contains("#status", "Connected Google work")
        .await
        .unwrap();

    // Another calendar of the same account, picked from the account's list: connected
    // with the link's grant, without a second consent window.
    lg.emu
        .add_calendar("team@group.calendar.google.com", "Team", "Europe/Berlin");
    let shown = Some("10-other-calendars");
    pick_team_in_page(&b, ("primary", "team@group.calendar.google.com"), shown).await;
    b.text_contains("#links", "Team").await.unwrap();
    let names = link_names(&api).await;
    assert!(
        names.contains(&("google".into(), "Team".into())),
        "the picked calendar is a link of the group: {names:?}"
    );
    runner::drain(&lg.ctx).await.unwrap();
    b.close().await.unwrap();
}

/// Outlook shows calendar ids in none of its apps, so the page is how an Outlook user
/// reaches a calendar other than the main one: the consent window connects the main
/// calendar, and "Other calendars of this account" lists the mailbox's calendars to
/// connect one with the same grant.
#[tokio::test]
async fn outlook_connects_its_main_calendar_and_another_is_picked_in_the_page() {
    use calsync_e2e::emulators::graph::DEFAULT_CALENDAR_ID;
    let lo = calsync_e2e::outlook::LocalOutlook::start(
        &local_ctx().await,
        calsync_e2e::emulators::graph::Config::default(),
    )
    .await
    .unwrap();
    let srv = ApiServer::start_local(lo.ctx.clone()).await.unwrap();
    let user = fresh_user();
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    b.open(&format!("{}/app/#token={token}", srv.url), "#links .empty")
        .await
        .unwrap();
    b.choose("#provider", "outlook").await.unwrap();
    b.fill("#display_name", "Outlook main").await.unwrap();
    connect_in_consent_window(&b, "Outlook main").await;
    b.text_contains("#status", "Connected Outlook main")
        .await
        .unwrap();

    lo.emu.add_calendar("AAMkADTeamCalendarAAA=", "Team");
    pick_team_in_page(&b, (DEFAULT_CALENDAR_ID, "AAMkADTeamCalendarAAA="), None).await;
    let mut names = link_names(&srv.as_user(user)).await;
    names.sort();
    let want = [("outlook", "Outlook main"), ("outlook", "Team")];
    assert_eq!(names, want.map(|(p, n)| (p.to_string(), n.to_string())));
    runner::drain(&lo.ctx).await.unwrap();
    b.close().await.unwrap();
}

/// A CalDAV calendar's other calendars on the same server are listed on its card, and one
/// is connected from the list with the same credentials (no password asked again).
#[tokio::test]
async fn a_caldav_calendars_neighbour_on_the_server_is_picked_in_the_page() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let group = api.create_group("caldav account").await.unwrap();
    let home = new_calendar(&ctx, Server::Radicale, &unique("page-acc"))
        .await
        .unwrap();
    let team_name = unique("page-team");
    let team = new_calendar(&ctx, Server::Radicale, &team_name)
        .await
        .unwrap();
    let link = connect(&api, &group, &home, "Home").await;
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    let toggle = format!(r#"[data-link="{link}"] [data-action="other-calendars"]"#);
    b.open(&format!("{}/app/#token={token}", srv.url), &toggle)
        .await
        .unwrap();
    b.click(&toggle).await.unwrap();
    b.text_contains(&format!(r#"[data-calendar="{home}"]"#), "Connected")
        .await
        .unwrap();
    b.text_contains(&format!(r#"[data-calendar="{team}"]"#), &team_name)
        .await
        .unwrap();
    b.click(&format!(
        r#"[data-calendar="{team}"] [data-action="connect-calendar"]"#
    ))
    .await
    .unwrap();
    b.text_contains("#status", "is connected").await.unwrap();
    let links = api.get(&format!("/v1/groups/{group}/links")).await.unwrap();
    let mut urls: Vec<(String, String)> = links.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_string();
            (s("provider"), s("url"))
        })
        .collect();
    urls.sort();
    let mut want = vec![("caldav".to_string(), home), ("caldav".to_string(), team)];
    want.sort();
    assert_eq!(
        urls, want,
        "the neighbour is linked, with the first one's credentials"
    );
    b.close().await.unwrap();
}
