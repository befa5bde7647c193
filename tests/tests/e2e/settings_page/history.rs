//! A calendar's sync history: the last five syncs, and older ones a page at a time.

use calsync::model::RunRecord;
use calsync_e2e::api::ApiServer;
use calsync_e2e::browser::Browser;
use calsync_e2e::fixtures::{new_calendar, unique, Server};
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

use super::{connect, fresh_user, ZONE};

#[tokio::test]
async fn older_syncs_are_shown_a_page_at_a_time() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let radicale = new_calendar(&ctx, Server::Radicale, &unique("page-history"))
        .await
        .unwrap();
    let group = api.create_group("history").await.unwrap();
    let link_id = connect(&api, &group, &radicale, "Work").await;
    runner::drain(&ctx).await.unwrap();
    // Eighteen more syncs, each a second after the one before (newest: 17 new).
    let now = calsync::config::now_millis();
    for i in 0..18u32 {
        let at = now + 1_000 * (i as i64 + 1);
        ctx.store()
            .put_run(&RunRecord {
                link_id: link_id.clone(),
                run_id: uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                    uuid::NoContext,
                    (at / 1000) as u64,
                    0,
                ))
                .to_string(),
                kind: "pull".into(),
                trigger: "schedule".into(),
                started_ms: at,
                ended_ms: at,
                created: i,
                outcome: "ok".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let all = api
        .get(&format!("/v1/links/{link_id}/runs?limit=100"))
        .await
        .unwrap()
        .body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(all.len() > 18, "{all:?}");

    let card = format!("[data-link=\"{link_id}\"]");
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    b.open(
        &format!("{}/app/#token={token}", srv.url),
        &format!("{card} tr[data-run]"),
    )
    .await
    .unwrap();
    let shown = async || {
        b.js(
            &format!("return [...document.querySelectorAll('{card} tr[data-run]')].map((r) => r.dataset.run)"),
            vec![],
        )
        .await
        .unwrap()
    };
    assert_eq!(
        shown().await,
        json!(all[..5]),
        "the last five, newest first"
    );
    b.text_contains(&format!("{card} tr[data-run]"), "17 new")
        .await
        .unwrap();
    let more = format!("{card} [data-action=older-runs]");
    b.click(&more).await.unwrap();
    b.visible(&format!("{card} tr[data-run=\"{}\"]", all[14]))
        .await
        .unwrap();
    assert_eq!(shown().await, json!(all[..15]), "ten more, in order");
    assert_eq!(
        b.js("return document.activeElement.dataset.run || null", vec![])
            .await
            .unwrap(),
        json!(all[5]),
        "the focus is on the first row added"
    );
    b.click(&more).await.unwrap();
    b.visible(&format!("{card} tr[data-run=\"{}\"]", all[all.len() - 1]))
        .await
        .unwrap();
    assert_eq!(shown().await, json!(all), "all of them");
    assert_eq!(
        b.js(
            &format!("return document.querySelector('{card} [data-action=older-runs]') === null"),
            vec![]
        )
        .await
        .unwrap(),
        json!(true),
        "no older syncs: no button"
    );
    b.accessible("older syncs").await.unwrap();
    b.close().await.unwrap();
}
