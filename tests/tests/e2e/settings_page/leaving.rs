//! Disconnecting a calendar with its copies removed, in the page: the confirmation offers
//! it as a checkbox (unchecked), the card then says the copies are being removed and offers
//! no sync and no settings, and once sync-back has removed them the calendar is gone from
//! the page and keeps only its own event.

use calsync_e2e::api::ApiServer;
use calsync_e2e::browser::Browser;
use calsync_e2e::fixtures::{self, new_calendar, simple_event, unique, Server};
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

use super::{connect, fresh_user, ZONE};

/// The titles of the CalDAV calendar at `url`, sorted.
async fn titles(ctx: &calsync::config::Ctx, url: &str) -> Vec<String> {
    fixtures::titles_in(ctx, url).await.unwrap()
}

#[tokio::test]
async fn a_calendar_is_disconnected_with_its_copies_removed_from_the_page() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let group = api.create_group("leaving").await.unwrap();
    let (personal_cal, work_cal) = (
        new_calendar(&ctx, Server::Radicale, &unique("page-leave"))
            .await
            .unwrap(),
        new_calendar(&ctx, Server::Radicale, &unique("page-leave"))
            .await
            .unwrap(),
    );
    fixtures::client_put(
        &ctx,
        &personal_cal,
        &simple_event("page-leave-standup", "Standup", 2),
    )
    .await
    .unwrap();
    fixtures::client_put(
        &ctx,
        &work_cal,
        &simple_event("page-leave-planning", "Planning", 3),
    )
    .await
    .unwrap();
    let personal = connect(&api, &group, &personal_cal, "Personal").await;
    let work = connect(&api, &group, &work_cal, "Work").await;
    runner::drain(&ctx).await.unwrap();
    assert_eq!(titles(&ctx, &work_cal).await, ["Planning", "Standup"]);

    let (card, p_card) = (
        format!("[data-link=\"{work}\"]"),
        format!("[data-link=\"{personal}\"]"),
    );
    let b = Browser::start(ZONE).await.unwrap();
    let page = format!("{}/app/#token={}", srv.url, srv.issuer.token(user));
    b.open(&page, &format!("{card} [data-action=disconnect]"))
        .await
        .unwrap();
    b.click(&format!("{card} [data-action=disconnect]"))
        .await
        .unwrap();
    b.visible("#confirm-option").await.unwrap();
    let unchecked = b
        .js(
            "return document.getElementById('confirm-option-box').checked",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        unchecked,
        json!(false),
        "removing the copies is asked for, not assumed"
    );
    b.click("#confirm-option-box").await.unwrap();
    b.accessible("disconnect with the copies removed")
        .await
        .unwrap();
    b.screenshots("12-disconnect-remove-copies").await.unwrap();
    b.click("#confirm-yes").await.unwrap();
    b.text_contains("#status", "Removing the copies from Work")
        .await
        .unwrap();
    b.text_contains(
        &format!("{card} [data-status=removing]"),
        "Removing its copies",
    )
    .await
    .unwrap();
    let offered = b
        .js(
            &format!(
                "const c = document.querySelector('{}'); return [c.querySelector('[data-action=sync]') === null, c.querySelector('.settings') === null, c.querySelector('[data-action=disconnect]').textContent]",
                card.replace('\'', "\\'")
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(offered, json!([true, true, "Disconnect now"]));
    assert_eq!(
        api.get(&format!("/v1/links/{work}")).await.unwrap().body["status"],
        "removing"
    );

    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        titles(&ctx, &work_cal).await,
        ["Planning"],
        "the copy of the standup is gone"
    );
    // A new load of the page (the token travels in the fragment, read once per load).
    let again = format!("{}/app/?again#token={}", srv.url, srv.issuer.token(user));
    b.open(&again, &format!("{p_card} h3")).await.unwrap();
    let gone = b
        .js(
            &format!(
                "return document.querySelector('{}') === null",
                card.replace('\'', "\\'")
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(gone, json!(true), "the calendar left the page");
    assert_eq!(titles(&ctx, &personal_cal).await, ["Planning", "Standup"]);
    b.close().await.unwrap();
}
