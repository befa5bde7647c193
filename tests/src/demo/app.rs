//! The application's part of `make run`: a hub event written and edited through the API
//! (`PUT /v1/groups/{group}/events/{id}`, `If-Match`) reaching every member, and a manual
//! conflict listed and resolved through the API.

use calsync::config::Ctx;
use calsync::model::Link;

use super::{expect_summary, step};
use crate::api::ApiClient;
use crate::fixtures;

const API_EVENT: &str = "calsync-api-event@calsync.example";

fn api_event(summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//demo app//EN\r\nBEGIN:VEVENT\r\nUID:{API_EVENT}\r\n\
DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:{day}T150000\r\nDTEND;TZID=Europe/Berlin:{day}T160000\r\n\
SUMMARY:{summary}\r\nLOCATION:Café Zürich\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        day = super::calendars::demo_day(100)
    )
}

/// Connect a calendar through `POST /v1/groups/{group}/links`; the stored link.
pub(super) async fn connect_link(
    ctx: &Ctx,
    api: &ApiClient,
    group: &str,
    body: serde_json::Value,
) -> anyhow::Result<Link> {
    let a = api
        .post(&format!("/v1/groups/{group}/links"), &body)
        .await?;
    anyhow::ensure!(a.status == 201, "connect {body}: {} {}", a.status, a.body);
    let id = a.body["link_id"].as_str().unwrap_or_default();
    ctx.store()
        .get_link(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("link {id} not stored"))
}

/// Write the hub event through the API (`If-Match` when given); its new ETag.
async fn put_api_event(
    api: &ApiClient,
    group: &str,
    summary: &str,
    if_match: Option<&str>,
) -> anyhow::Result<String> {
    let headers: Vec<(&str, &str)> = if_match.map(|m| vec![("if-match", m)]).unwrap_or_default();
    let a = api
        .put_ical(
            &format!("/v1/groups/{group}/events/{API_EVENT}"),
            &api_event(summary),
            &headers,
        )
        .await?;
    anyhow::ensure!(
        a.status == 200 || a.status == 201,
        "PUT event: {} {}",
        a.status,
        a.body
    );
    a.header("etag").ok_or_else(|| anyhow::anyhow!("no ETag"))
}

/// The hub event's round trip and the manual conflict; `members` are the Radicale and
/// Xandikos calendar URLs, `r_link` the Radicale link (its policy becomes `manual`).
pub(super) async fn writes_and_conflict(
    ctx: &Ctx,
    api: &ApiClient,
    group: &str,
    user_id: i64,
    members: [&str; 2],
    r_link: &str,
) -> anyhow::Result<()> {
    let [radicale, xandikos] = members;
    // The application writes to its own calendar (the hub) through the API.
    let etag = put_api_event(api, group, "Planning (written through the API)", None).await?;
    step(
        ctx,
        user_id,
        "PUT /v1/groups/…/events/… (a hub event from the application)",
    )
    .await?;
    for url in [radicale, xandikos] {
        expect_summary(
            ctx,
            url,
            API_EVENT,
            Some("Planning (written through the API)"),
        )
        .await?;
    }
    let etag = put_api_event(api, group, "Planning (edited through the API)", Some(&etag)).await?;
    step(ctx, user_id, "editing it through the API (If-Match)").await?;
    expect_summary(
        ctx,
        xandikos,
        API_EVENT,
        Some("Planning (edited through the API)"),
    )
    .await?;
    // A manual conflict: Radicale's link asks for manual resolution; the same event is
    // changed in the application and on Radicale before either syncs.
    let p = api
        .patch(
            &format!("/v1/links/{r_link}"),
            &serde_json::json!({"conflict_policy": "manual"}),
        )
        .await?;
    anyhow::ensure!(p.status == 200, "PATCH link: {} {}", p.status, p.body);
    put_api_event(api, group, "Planning (app's title)", Some(&etag)).await?;
    fixtures::client_edit(ctx, radicale, API_EVENT, |_| {
        api_event("Planning (phone's title)").replace(
            "DTSTAMP:20260101T000000Z",
            "DTSTAMP:20260101T000000Z\r\nLAST-MODIFIED:20260102T000000Z",
        )
    })
    .await?;
    fixtures::sync_link(ctx, r_link).await?;
    let conflicts = api.get(&format!("/v1/groups/{group}/conflicts")).await?;
    let n = conflicts.body["conflicts"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(n == 1, "expected one conflict, got {}", conflicts.body);
    let resolved = api
        .post(
            &format!("/v1/groups/{group}/conflicts/{API_EVENT}:resolve"),
            &serde_json::json!({"keep": "remote"}),
        )
        .await?;
    anyhow::ensure!(
        resolved.status == 200,
        "resolve: {} {}",
        resolved.status,
        resolved.body
    );
    step(
        ctx,
        user_id,
        "a manual conflict resolved through the API (keep the phone's title)",
    )
    .await?;
    for url in [radicale, xandikos] {
        expect_summary(ctx, url, API_EVENT, Some("Planning (phone's title)")).await?;
    }

    Ok(())
}
