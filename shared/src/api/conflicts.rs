//! Manual conflicts (links with policy `manual`): the hub version and the remote version
//! kept aside, and their resolution — keep the hub's, keep the remote's, or a merged event —
//! which is then pushed to every member.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::decide;
use super::events::API_ORIGIN;
use super::formats;
use super::{owned_group, queue_push, ApiResult, ApiState, Caller, Problem};
use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::{HubEvent, Mapping};
use crate::store::StoreError;

/// `GET /v1/groups/{group_id}/conflicts`: every event in conflict on a member, with both
/// versions as JSCalendar.
#[utoipa::path(
    get,
    path = "/v1/groups/{group_id}/conflicts",
    operation_id = "listConflicts",
    tag = "conflicts",
    params(("group_id" = String, Path, description = "Sync group id")),
    responses(
        (status = 200, description = "`{conflicts: [{event_id, link_id, hub, remote, detail}]}`"),
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
    let store = st.ctx.store();
    let mut out = Vec::new();
    for l in store.links_of_group(&group_id).await? {
        for m in store
            .mappings_in_status(&l.link_id, crate::model::EventStatus::Conflict)
            .await?
        {
            let hub = store.get_event(&group_id, &m.uid).await?;
            out.push(json!({
                "event_id": m.uid,
                "link_id": l.link_id,
                "link_name": l.display_name,
                "detail": m.error,
                "hub": hub.as_ref().filter(|h| !h.deleted).map(|h| formats::to_jscalendar(&h.ical)),
                "hub_etag": hub.as_ref().map(|h| decide::etag(h.version)),
                "remote": m.conflict_remote.as_deref().map(formats::to_jscalendar),
            }));
        }
    }
    Ok(Json(json!({ "conflicts": out })))
}

/// Body of `POST …/conflicts/{event_id}:resolve`: exactly one of `keep` or `event` / `ical`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// `hub` or `remote`.
    #[serde(default)]
    pub keep: Option<String>,
    /// A merged event (JSCalendar).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event: Option<Value>,
    /// A merged event (iCalendar).
    #[serde(default)]
    pub ical: Option<String>,
    /// Only the conflict on this link (default: every link where the event is in conflict;
    /// required with `keep: remote` when several links hold different remote versions).
    #[serde(default)]
    pub link_id: Option<String>,
}

/// `POST /v1/groups/{group_id}/conflicts/{event_id}:resolve`: apply the chosen version to
/// the hub, clear the conflict, and push the result everywhere. 200 with the hub event.
#[utoipa::path(
    post,
    path = "/v1/groups/{group_id}/conflicts/{event_id}:resolve",
    operation_id = "resolveConflict",
    tag = "conflicts",
    params(("group_id" = String, Path, description = "Sync group id"), ("event_id" = String, Path, description = "Event id (the iCalendar UID), chosen by the application"), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 422")),
    request_body = Resolve,
    responses(
        (status = 200, description = "The resolved hub event; pushed to every member"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn resolve(
    State(st): State<ApiState>,
    caller: Caller,
    Path((group_id, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    owned_group(&st, caller, &group_id).await?;
    let Some(event_id) = action.strip_suffix(":resolve") else {
        return Err(Problem::not_found("route"));
    };
    let r: Resolve = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid_field("/", format!("not a resolution: {e}")))?;
    let store = st.ctx.store();
    let mut conflicts: Vec<Mapping> = Vec::new();
    for l in store.links_of_group(&group_id).await? {
        if r.link_id.as_ref().is_some_and(|want| *want != l.link_id) {
            continue;
        }
        if let Some(m) = store.get_mapping(&l.link_id, event_id).await? {
            if m.status == crate::model::EventStatus::Conflict && m.conflict_remote.is_some() {
                conflicts.push(m);
            }
        }
    }
    if conflicts.is_empty() {
        return Err(Problem::not_found(format!(
            "conflict on event {event_id:?}"
        )));
    }
    let hub = store
        .get_event(&group_id, event_id)
        .await?
        .filter(|h| !h.deleted)
        .ok_or_else(|| Problem::not_found(format!("event {event_id:?}")))?;
    let parse = |text: &str| EventSeries::parse_single(event_id, text).ok();
    let hub_series = parse(&hub.ical).ok_or_else(|| Problem::internal("unreadable hub event"))?;
    let merged = formats::event_member(r.event.as_ref(), r.ical.as_deref(), event_id, "")?;
    let chosen: EventSeries = match (r.keep.as_deref(), merged) {
        (Some("hub"), None) => hub_series.clone(),
        (Some("remote"), None) => {
            let remotes: Vec<EventSeries> = conflicts
                .iter()
                .filter_map(|m| m.conflict_remote.as_deref().and_then(parse))
                .collect();
            let first = remotes
                .first()
                .cloned()
                .ok_or_else(|| Problem::internal("unreadable remote version"))?;
            if remotes.iter().any(|s| !s.same_content(&first)) {
                return Err(Problem::invalid_field(
                    "/link_id",
                    "the links hold different remote versions: name the link whose version to keep",
                ));
            }
            first
        }
        (Some(other), None) => {
            return Err(Problem::invalid_field(
                "/keep",
                format!("expected hub or remote, got {other:?}"),
            ))
        }
        (None, Some(series)) => series,
        _ => {
            return Err(Problem::invalid_field(
                "/",
                "give exactly one of keep (hub | remote), event (JSCalendar) or ical",
            ))
        }
    };
    let chosen_is_hub = chosen.same_content(&hub_series);
    let mut version = hub.version;
    for m in conflicts {
        let remote = m.conflict_remote.as_deref().and_then(parse);
        let is_remote = remote.as_ref().is_some_and(|s| s.same_content(&chosen));
        let res = decide::resolve(hub.version, chosen_is_hub, is_remote);
        if let Some(v) = res.hub_version {
            if version != v {
                let ev = HubEvent {
                    version: v,
                    ical: chosen.to_ical(),
                    updated_ms: now_millis(),
                    origin_link: API_ORIGIN.into(),
                    ..hub.clone()
                };
                match store.put_event(&ev, Some(hub.version)).await {
                    Ok(()) => version = v,
                    Err(StoreError::Conflict { .. }) => {
                        return Err(Problem::new(
                            axum::http::StatusCode::CONFLICT,
                            "Conflict",
                            "the hub event changed meanwhile; read the conflict again",
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut m = m;
        m.base = m.conflict_remote.take();
        m.status = res.status;
        m.synced_version = res.synced_version;
        m.error = None;
        m.updated_ms = now_millis();
        store.put_mapping(&m).await?;
    }
    queue_push(&st, &group_id).await?;
    let ev = store
        .get_event(&group_id, event_id)
        .await?
        .ok_or_else(|| Problem::internal("hub event vanished"))?;
    Ok(Json(super::events::event_json(&ev)))
}
