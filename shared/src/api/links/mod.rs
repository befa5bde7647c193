//! Links, the member calendars of a group: connect (CalDAV / iCloud with discovery, ICS
//! feeds, OAuth consent for Google and Outlook, another calendar of a connected account),
//! settings, disconnect, sync now, run history, and releasing a quarantined mass deletion.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::settings::frequency_secs;
use super::{
    decode_cursor, encode_cursor, owned_group, owned_link, ApiResult, ApiState, Caller, Problem,
};
use crate::model::{ConflictPolicy, Link};
use crate::provider::redacted;
use crate::queue::{QueueKind, SyncJob};

pub mod account;
pub mod connect;
pub mod reconnect;
pub use account::calendars;
pub use connect::{create, oauth_start};
pub use reconnect::reconnect;

/// The JSON document of a link (no secret, a feed address only redacted).
pub fn link_json(l: &Link) -> Value {
    json!({
        "link_id": l.link_id,
        "group_id": l.group_id,
        "provider": l.provider,
        "display_name": l.display_name,
        "url": if l.provider.info().url_is_public { l.url.clone() } else { redacted(&l.url) },
        "read_only": l.read_only(),
        "frequency_secs": l.frequency_secs,
        "next_sync_at": l.next_sync_at,
        "conflict_policy": l.conflict_policy,
        "brake_ratio": l.brake_ratio,
        "brake_min": l.brake_min,
        "allow_mass_delete": l.allow_mass_delete,
        "transforms": l.transforms,
        "write_attendees": l.write_attendees,
        "status": l.status,
        "status_reason": l.status_reason,
    })
}

/// `GET /v1/groups/{group_id}/links`.
#[utoipa::path(
    get,
    path = "/v1/groups/{group_id}/links",
    operation_id = "listLinks",
    tag = "links",
    params(("group_id" = String, Path, description = "Sync group id")),
    responses(
        (status = 200, description = "`{links: [...]}`"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn list(
    State(st): State<ApiState>,
    caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Json<Value>> {
    owned_group(&st, caller, &group_id).await?;
    let mut ls = st.ctx.store().links_of_group(&group_id).await?;
    ls.sort_by(|a, b| a.link_id.cmp(&b.link_id));
    Ok(Json(
        json!({"links": ls.iter().map(link_json).collect::<Vec<_>>()}),
    ))
}

/// `GET /v1/links/{link_id}`.
#[utoipa::path(
    get,
    path = "/v1/links/{link_id}",
    operation_id = "getLink",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id")),
    responses(
        (status = 200, description = "The link: provider, status, reason, frequency, policy, brake. `status`: `ok`, `error` (the last sync failed; `status_reason` says why), `quarantined` (a sync would have deleted too much: release-deletions lets it through once), `reconnect_needed` (the credentials were refused: reconnect), `removing` (its copies are being removed before it is disconnected)"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn get(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(link_json(&owned_link(&st, caller, &link_id).await?)))
}

/// Body of `PATCH /v1/links/{link_id}` (every member optional).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    /// Name shown to the user.
    #[serde(default)]
    pub display_name: Option<String>,
    /// See [`frequency_secs`].
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "15m")]
    pub frequency: Option<Value>,
    /// `merge`, `prefer-hub`, `prefer-remote`, `manual`.
    #[serde(default)]
    pub conflict_policy: Option<String>,
    /// Deletion brake: share of mapped events (0 < r ≤ 1)…
    #[serde(default)]
    pub brake_ratio: Option<f64>,
    /// …and least number of deletions that quarantine a pull.
    #[serde(default)]
    pub brake_min: Option<u32>,
    /// What this member gets of the other members' events (replaces the link's transforms;
    /// `{}` for none); events made on the member stay whole there. A change rewrites the
    /// member's copies of the other members' events.
    #[serde(default)]
    pub transforms: Option<crate::engine::transform::Transforms>,
    /// Outlook: write the attendees of events the calendar's owner organizes (Graph then
    /// sends them invitations, which it cannot be told not to). Default off.
    #[serde(default)]
    pub write_attendees: Option<bool>,
}

/// `PATCH /v1/links/{link_id}`: change settings; 200 with the link.
#[utoipa::path(
    patch,
    path = "/v1/links/{link_id}",
    operation_id = "updateLink",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id")),
    request_body = LinkPatch,
    responses(
        (status = 200, description = "The changed link"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn patch(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    refuse_removing(&owned_link(&st, caller, &link_id).await?)?;
    let p: LinkPatch = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid_field("/", format!("not a link patch: {e}")))?;
    let store = st.ctx.store();
    let mut fields = Vec::new();
    if let Some(n) = &p.display_name {
        if n.trim().is_empty() || n.chars().count() > 200 {
            return Err(Problem::invalid_field(
                "/display_name",
                "must be 1 to 200 characters",
            ));
        }
        fields.push(("display_name", store.attr(n.trim())?));
    }
    if let Some(f) = &p.frequency {
        let secs = frequency_secs(f).map_err(|e| Problem::invalid_field("/frequency", e))?;
        fields.push(("frequency_secs", store.attr(secs)?));
        // The new frequency counts from now.
        fields.push((
            "next_sync_at",
            store.attr(crate::config::now_secs() + secs)?,
        ));
    }
    if let Some(c) = &p.conflict_policy {
        let c: ConflictPolicy = c
            .parse()
            .map_err(|e: String| Problem::invalid_field("/conflict_policy", e))?;
        fields.push(("conflict_policy", store.attr(c)?));
    }
    if let Some(r) = p.brake_ratio {
        if !(r > 0.0 && r <= 1.0) {
            return Err(Problem::invalid_field(
                "/brake_ratio",
                "must be above 0 and at most 1",
            ));
        }
        fields.push(("brake_ratio", store.attr(r)?));
    }
    if let Some(m) = p.brake_min {
        if m == 0 {
            return Err(Problem::invalid_field("/brake_min", "must be at least 1"));
        }
        fields.push(("brake_min", store.attr(m)?));
    }
    if let Some(w) = p.write_attendees {
        fields.push(("write_attendees", store.attr(w)?));
    }
    let before = owned_link(&st, caller, &link_id).await?;
    let rewrite = p
        .transforms
        .as_ref()
        .is_some_and(|t| *t != before.transforms);
    if let Some(t) = &p.transforms {
        if before.read_only() && !t.is_identity() {
            return Err(Problem::invalid_field(
                "/transforms",
                "a read-only feed is not written to",
            ));
        }
        t.validate()
            .map_err(|(at, why)| Problem::invalid_field(at, why))?;
        fields.push(("transforms", store.attr(t)?));
    }
    store.update_link_fields(&link_id, fields).await?;
    if rewrite {
        // Every copy of another member's event is written again under the new transforms
        // (the member's own events have none).
        for mut m in store.mappings_of_link(&link_id).await? {
            if m.home {
                continue;
            }
            m.synced_version = 0;
            store.put_mapping(&m).await?;
        }
        st.ctx
            .queues()
            .send(
                QueueKind::SyncBack,
                &[SyncJob::unique(&link_id, "transforms")],
            )
            .await
            .map_err(Problem::internal)?;
    }
    let l = owned_link(&st, caller, &link_id).await?;
    Ok(Json(link_json(&l)))
}

/// Refuse a second link to a calendar the group already links (409 naming that link):
/// two links of one calendar in a group would pull and push every event twice, and
/// disconnecting either would look like the calendar left. Compared by
/// [`crate::provider::account::linked_already`] (feeds, whose links keep a redacted
/// address, by its digest).
///
/// Errors: 409, or DynamoDB.
pub(crate) async fn refuse_linked_twice(
    ctx: &crate::config::Ctx,
    group_id: &str,
    provider: crate::model::ProviderKind,
    url: &str,
) -> ApiResult<()> {
    let links = ctx.store().links_of_group(group_id).await?;
    match crate::provider::account::linked_already(&links, provider, url) {
        Some(l) => Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "this calendar is already linked to the group as {} ({:?}); change or reconnect that link instead",
                l.link_id, l.display_name
            ),
        )),
        None => Ok(()),
    }
}

/// Disconnect a link now ([`crate::disconnect::disconnect`]): the events copied to and
/// from it stay where they are.
pub async fn disconnect(st: &ApiState, link: &Link) -> ApiResult<()> {
    crate::disconnect::disconnect(&st.ctx, link)
        .await
        .map_err(Problem::internal)
}

/// Refuse to change or sync a link whose copies are being removed (409): it is on its way
/// out. Disconnecting it (`DELETE` without `remove_copies`), and reconnecting it when its
/// calendar refused the credentials (the removal then goes on), is what may still be asked.
pub(crate) fn refuse_removing(l: &Link) -> ApiResult<()> {
    if l.status != crate::model::LinkStatus::Removing {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "link {} is being disconnected (its copies are being removed); it can only be disconnected or reconnected now",
            l.link_id
        ),
    ))
}

/// Query of `DELETE /v1/links/{link_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true`: first delete from the calendar the copies calsync put there of events made
    /// elsewhere (202, the link `removing` until they are gone, then disconnected); the
    /// calendar's own events and copies edited there since stay. Default `false`: disconnect
    /// now (204), the copies stay.
    #[serde(default)]
    pub remove_copies: bool,
}

/// `DELETE /v1/links/{link_id}`: [`disconnect`]; 204.
#[utoipa::path(
    delete,
    path = "/v1/links/{link_id}",
    operation_id = "deleteLink",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id"), DeleteQuery),
    responses(
        (status = 204, description = "Disconnected now: push channels stopped, grant revoked (kept while another link of the same account, of any user, holds it), secret and mappings deleted; the copies stay, marked as calsync's, so a later link of the calendar removes the copies of events deleted meanwhile (its own events stay). Also the answer to a link that was `removing`: removing stops, the copies not yet removed stay"),
        (status = 202, description = "`remove_copies=true`: the link, now `removing`. It no longer syncs; sync-back deletes calsync's copies of events made elsewhere from the calendar (at the provider's rate limits), its run records count them, and then the link is disconnected as with 204 (`GET` answers 404). A calendar that refuses the credentials meanwhile leaves the link `removing` with the reason in `status_reason`; `POST …/reconnect` (or a new consent) then goes on removing"),
        (status = 409, description = "`remove_copies=true` while a sync of the link runs: try again in a minute"),
        (status = 422, description = "`remove_copies=true` on a read-only subscription: calsync put nothing on it"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn delete(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Response> {
    let l = owned_link(&st, caller, &link_id).await?;
    if !q.remove_copies {
        disconnect(&st, &l).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    use crate::disconnect::StartError;
    let wait = std::time::Duration::from_secs(st.ctx.config.lease_wait_secs);
    match crate::disconnect::start_removing(&st.ctx, &l, wait).await {
        Ok(now) => Ok((StatusCode::ACCEPTED, Json(link_json(&now))).into_response()),
        Err(e @ StartError::ReadOnly(_)) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Content",
            format!("remove_copies: {e}"),
        )),
        Err(e @ StartError::Busy(_)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            e.to_string(),
        )),
        Err(StartError::Failed(e)) => Err(Problem::internal(e)),
    }
}

/// `POST /v1/links/{link_id}/sync`: queue a pull now (its changes then reach the other
/// members); 202.
#[utoipa::path(
    post,
    path = "/v1/links/{link_id}/sync",
    operation_id = "syncLink",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id"), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 422")),
    responses(
        (status = 202, description = "A pull is queued"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn sync_now(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
) -> ApiResult<Response> {
    let l = owned_link(&st, caller, &link_id).await?;
    refuse_removing(&l)?;
    let job = SyncJob::unique(&l.link_id, "manual");
    st.ctx
        .queues()
        .send(QueueKind::SyncJobs, std::slice::from_ref(&job))
        .await
        .map_err(Problem::internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"link_id": l.link_id, "queued": true})),
    )
        .into_response())
}

/// Query of `GET …/runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Page size 1–100 (default 20).
    pub limit: Option<i32>,
    /// The `cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/links/{link_id}/runs?limit&cursor`: run records, newest first.
#[utoipa::path(
    get,
    path = "/v1/links/{link_id}/runs",
    operation_id = "listRuns",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id"), RunsQuery),
    responses(
        (status = 200, description = "`{runs: [run records, newest first], cursor}`"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn runs(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Value>> {
    let l = owned_link(&st, caller, &link_id).await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::invalid_parameter("limit", "must be 1 to 100"));
    }
    let before: Option<String> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = st
        .ctx
        .store()
        .runs_page(&l.link_id, before.as_deref(), limit)
        .await?;
    Ok(Json(json!({
        "runs": page.items,
        "cursor": page.next.map(|n| encode_cursor(&n)),
    })))
}

/// `POST /v1/links/{link_id}/release-deletions`: let the quarantined mass deletion through
/// once (the flag resets after the next pull uses it) and queue that pull; 202.
#[utoipa::path(
    post,
    path = "/v1/links/{link_id}/release-deletions",
    operation_id = "releaseDeletions",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id"), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 422")),
    responses(
        (status = 202, description = "The next pull applies the held deletions once"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn release_deletions(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
) -> ApiResult<Response> {
    let l = owned_link(&st, caller, &link_id).await?;
    refuse_removing(&l)?;
    let store = st.ctx.store();
    store
        .update_link_fields(&l.link_id, vec![("allow_mass_delete", store.attr(true)?)])
        .await?;
    st.ctx
        .queues()
        .send(
            QueueKind::SyncJobs,
            &[SyncJob::unique(&l.link_id, "manual")],
        )
        .await
        .map_err(Problem::internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"link_id": l.link_id, "released": true})),
    )
        .into_response())
}

/// At most this many events are listed by [`errors`] (the rest are counted).
pub const MAX_LISTED_ERRORS: usize = 100;

/// `GET /v1/links/{link_id}/errors`: the events of this link in status `error`, each with
/// the provider's reason, newest first.
#[utoipa::path(
    get,
    path = "/v1/links/{link_id}/errors",
    operation_id = "listEventErrors",
    tag = "links",
    params(("link_id" = String, Path, description = "Link id")),
    responses(
        (status = 200, description = "`{errors: [{event_id, title, detail, updated_ms}], total}`: at most 100, newest first; `title` is the hub event's, null when the hub has none (an unreadable remote object, `event_id` `href:…`)"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn errors(
    State(st): State<ApiState>,
    caller: Caller,
    Path(link_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let l = owned_link(&st, caller, &link_id).await?;
    let store = st.ctx.store();
    let mut ms = store
        .mappings_in_status(&l.link_id, crate::model::EventStatus::Error)
        .await?;
    ms.sort_by_key(|m| std::cmp::Reverse(m.updated_ms));
    let total = ms.len();
    ms.truncate(MAX_LISTED_ERRORS);
    // The listed events' titles, read in one batch (an `href:` key names no hub event).
    let uids: Vec<String> = ms
        .iter()
        .filter(|m| !m.uid.starts_with("href:"))
        .map(|m| m.uid.clone())
        .collect();
    let titles: std::collections::HashMap<String, String> = store
        .events_of_uids(&l.group_id, &uids)
        .await?
        .into_iter()
        .filter(|h| !h.deleted)
        .filter_map(|h| {
            let s = crate::ical::EventSeries::parse_single(&h.uid, &h.ical).ok()?;
            Some((h.uid, s.summary()))
        })
        .collect();
    let mut out = Vec::new();
    for m in ms {
        let title = titles.get(&m.uid);
        out.push(json!({
            "event_id": m.uid,
            "title": title,
            "detail": m.error,
            "updated_ms": m.updated_ms,
        }));
    }
    Ok(Json(json!({"errors": out, "total": total})))
}
