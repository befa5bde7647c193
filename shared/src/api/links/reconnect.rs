//! Reconnecting a link whose credentials stopped working (`reconnect_needed` after a refused
//! password or an `invalid_grant`, or any link whose credentials the user changed): the
//! link keeps its id, mappings and cursor, so nothing is copied twice.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::connect::{caldav_problem, feed_readable};
use super::link_json;
use crate::api::{owned_link, ApiResult, ApiState, Caller, Problem};
use crate::model::{Link, LinkStatus, ProviderKind};
use crate::provider::caldav::CalDav;
use crate::provider::redacted;
use crate::queue::{QueueKind, SyncJob};

/// Body of `POST /v1/links/{link_id}/reconnect`: nothing for an OAuth provider (the answer
/// is a consent URL), the account name and new password for CalDAV, the feed's new address
/// for an ICS subscription.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    /// CalDAV: the account name (Apple ID for iCloud).
    #[serde(default)]
    pub username: Option<String>,
    /// CalDAV: the password (iCloud: a new app-specific password from appleid.apple.com).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
    /// ICS: the feed's address (private feeds carry a key that their publisher may renew).
    #[serde(default)]
    pub url: Option<String>,
}

/// `POST /v1/links/{link_id}/reconnect`. OAuth providers: 200 `{"consent_url"}`, to send the
/// user's browser to; when the consent completes the link gets the new grant and is `ok`
/// again. CalDAV: the server is asked with the new credentials first (a refused password is
/// 422 at `/password`), then they replace the old ones; ICS: the new address is read first.
/// Either way the link is `ok` again, a sync is queued, and the answer is 200 with the link.
#[utoipa::path(
    post,
    path = "/v1/links/{link_id}/reconnect",
    operation_id = "reconnectLink",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id")),
    request_body = Reconnect,
    responses(
        (status = 200, description = "OAuth: `{consent_url}`; CalDAV and ICS: the link, `ok`, its sync queued"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn reconnect(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let link = owned_link(&st, caller, &link_id).await?;
    let b: Reconnect = if body.is_empty() {
        Reconnect::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::invalid_field("/", format!("not a reconnection: {e}")))?
    };
    if link.provider.module().oauth().is_some() {
        let url = crate::connect::start_reconnect(&st.ctx, &link)
            .await
            .map_err(Problem::internal)?;
        return Ok(Json(json!({"consent_url": url})));
    }
    let arn = link
        .secret_arn
        .clone()
        .ok_or_else(|| Problem::internal(anyhow::anyhow!("link {link_id} has no secret")))?;
    let secret = match link.provider {
        ProviderKind::Ics => feed_secret(&st, &link, &b).await?,
        _ => caldav_secret(&st, &link, &b).await?,
    };
    let ctx = &st.ctx;
    crate::secrets::replace_json(&ctx.clients.secrets, &arn, &secret)
        .await
        .map_err(Problem::internal)?;
    if link.status == LinkStatus::Removing {
        // Its copies were being removed when the calendar refused the old credentials.
        crate::disconnect::resume_removing(ctx, &link_id)
            .await
            .map_err(Problem::internal)?;
        let l = owned_link(&st, caller, &link_id).await?;
        return Ok(Json(link_json(&l)));
    }
    let store = ctx.store();
    store
        .set_link_status(&link_id, LinkStatus::Ok, None)
        .await?;
    ctx.queues()
        .send(
            QueueKind::SyncJobs,
            &[SyncJob::unique(&link_id, "reconnected")],
        )
        .await
        .map_err(Problem::internal)?;
    crate::connect::queue_catch_up(ctx, &link_id)
        .await
        .map_err(Problem::internal)?;
    tracing::info!(link = %link_id, "calendar reconnected");
    let l = owned_link(&st, caller, &link_id).await?;
    Ok(Json(link_json(&l)))
}

/// The CalDAV secret for `b`, once the server accepted it for the link's calendar.
async fn caldav_secret(st: &ApiState, link: &Link, b: &Reconnect) -> ApiResult<Value> {
    let username = b
        .username
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Problem::invalid_field("/username", "is required"))?;
    let password = b
        .password
        .clone()
        .ok_or_else(|| Problem::invalid_field("/password", "is required"))?;
    let client = CalDav::new(
        st.ctx.clients.http.clone(),
        &link.url,
        &username,
        password.clone(),
        false,
    )
    .map_err(|e| Problem::invalid_field("/url", e.to_string()))?;
    if client.probe().await.map_err(caldav_problem)?.is_none() {
        return Err(Problem::invalid_field(
            "/username",
            "this account cannot see the linked calendar; connect the other account's calendar as a new link",
        ));
    }
    use secrecy::ExposeSecret;
    Ok(json!({"username": username, "password": password.expose_secret()}))
}

/// The feed secret for `b`, once the new address was read; the link shows its redacted form.
async fn feed_secret(st: &ApiState, link: &Link, b: &Reconnect) -> ApiResult<Value> {
    let url = b
        .url
        .clone()
        .ok_or_else(|| Problem::invalid_field("/url", "is required"))?;
    feed_readable(&st.ctx, &url).await?;
    let store = st.ctx.store();
    store
        .update_link_fields(
            &link.link_id,
            vec![
                ("url", store.attr(redacted(&url))?),
                (
                    "url_digest",
                    store.attr(crate::provider::account::url_digest(&url))?,
                ),
            ],
        )
        .await?;
    Ok(json!({"url": url}))
}
