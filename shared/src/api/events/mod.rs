//! Hub events, the application's own calendar: upsert, read (with per-link status), delete,
//! keyset-paged listing, the incremental change feed and batches. Every write that changes
//! the hub queues sync-back for each writable member ([`super::queue_push`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Caller;
use super::decide::{self, Current, Delete, Precondition, Upsert};
use super::formats::{self, Format};
use super::{owned_group, queue_push, ApiResult, ApiState, Problem};
use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::HubEvent;
use crate::store::{Store, StoreError};

pub mod batch;
pub mod pages;

/// Origin recorded on hub events the API writes.
pub const API_ORIGIN: &str = "api";
/// Changes this recent (ms) are repeated by the next feed page after a caught-up page, so a
/// write whose timestamp was taken before a slower, concurrent one is never skipped.
pub const CHANGES_SETTLE_MS: i64 = 2000;

/// Checks an event id from a path or a batch item: 1–255 printable characters, no `/`.
pub fn valid_event_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 255 {
        return Err("must be 1 to 255 characters".into());
    }
    if id.chars().any(|c| c.is_control() || c == '/') || id.starts_with("href:") {
        return Err("must not contain control characters or '/', nor start with \"href:\"".into());
    }
    Ok(())
}

fn series_of(ev: &HubEvent) -> Option<EventSeries> {
    EventSeries::parse_single(&ev.uid, &ev.ical).ok()
}

/// The outcome of one upsert or delete.
pub(super) struct Written {
    pub status: StatusCode,
    pub event: Option<HubEvent>,
    pub changed: bool,
}

/// Write `ev` if the stored version is still `expected`: `false` when it lost a race that is
/// worth another attempt (no precondition was given).
///
/// Errors: 412 when a precondition was given and the event changed meanwhile; store failures.
async fn put_conditional(
    store: &Store,
    ev: &HubEvent,
    expected: Option<i64>,
    pre: Precondition,
) -> ApiResult<bool> {
    match store.put_event(ev, expected).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict { .. }) if pre == Precondition::None => Ok(false),
        Err(StoreError::Conflict { .. }) => Err(Problem::precondition_failed(
            "the event changed concurrently",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The answer when every attempt lost a race.
fn keeps_changing() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "Conflict",
        "the event keeps changing; retry",
    )
}

/// Upsert `series` as hub event `uid` of `group_id` under `pre` (one conditional write; a
/// lost race answers 412 when a precondition was given, else is retried).
pub(super) async fn upsert(
    store: &Store,
    group_id: &str,
    series: &EventSeries,
    pre: Precondition,
) -> ApiResult<Written> {
    for _ in 0..5 {
        let cur = store.get_event(group_id, &series.uid).await?;
        let state = cur.as_ref().map(|c| Current {
            version: c.version,
            deleted: c.deleted,
            same_content: series_of(c).is_some_and(|s| s.same_content(series)),
        });
        let version = match decide::upsert(state, pre) {
            Upsert::Failed(why) => return Err(Problem::precondition_failed(why)),
            Upsert::Unchanged => {
                return Ok(Written {
                    status: StatusCode::OK,
                    event: cur,
                    changed: false,
                })
            }
            Upsert::Create(v) | Upsert::Update(v) => v,
        };
        let ev = HubEvent {
            group_id: group_id.into(),
            uid: series.uid.clone(),
            version,
            ical: series.to_ical(),
            deleted: false,
            updated_ms: now_millis(),
            origin_link: API_ORIGIN.into(),
            // An edit keeps the calendar the event was made on; a new event is the
            // application's.
            made_on: match cur.as_ref().filter(|c| !c.deleted) {
                Some(c) => c.made_on.clone(),
                None => Some(crate::model::MADE_BY_API.into()),
            },
        };
        if !put_conditional(store, &ev, cur.as_ref().map(|c| c.version), pre).await? {
            continue;
        }
        let created = cur.as_ref().is_none_or(|c| c.deleted);
        return Ok(Written {
            status: if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            event: Some(ev),
            changed: true,
        });
    }
    Err(keeps_changing())
}

/// Tombstone hub event `uid` of `group_id` under `pre`.
pub(super) async fn remove(
    store: &Store,
    group_id: &str,
    uid: &str,
    pre: Precondition,
) -> ApiResult<Written> {
    for _ in 0..5 {
        let cur = store.get_event(group_id, uid).await?;
        let state = cur.as_ref().map(|c| Current {
            version: c.version,
            deleted: c.deleted,
            same_content: false,
        });
        let version = match decide::delete(state, pre) {
            Delete::NotFound => return Err(Problem::not_found(format!("event {uid:?}"))),
            Delete::Failed(why) => return Err(Problem::precondition_failed(why)),
            Delete::Gone => {
                return Ok(Written {
                    status: StatusCode::NO_CONTENT,
                    event: cur,
                    changed: false,
                })
            }
            Delete::Tombstone(v) => v,
        };
        let Some(old) = cur else { continue };
        let ev = HubEvent {
            version,
            deleted: true,
            updated_ms: now_millis(),
            origin_link: API_ORIGIN.into(),
            ..old.clone()
        };
        if !put_conditional(store, &ev, Some(old.version), pre).await? {
            continue;
        }
        return Ok(Written {
            status: StatusCode::NO_CONTENT,
            event: Some(ev),
            changed: true,
        });
    }
    Err(keeps_changing())
}

/// The JSON document of a hub event (without per-link status).
pub fn event_json(ev: &HubEvent) -> Value {
    let mut v = json!({
        "event_id": ev.uid,
        "group_id": ev.group_id,
        "version": ev.version,
        "etag": decide::etag(ev.version),
        "deleted": ev.deleted,
        "updated_ms": ev.updated_ms,
    });
    if !ev.deleted {
        v["event"] = formats::to_jscalendar(&ev.ical);
    }
    v
}

fn answer(status: StatusCode, ev: &HubEvent, fmt: Format, doc: Value) -> Response {
    let etag = decide::etag(ev.version);
    let mut resp = match fmt {
        Format::ICalendar if !ev.deleted => (
            status,
            [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
            ev.ical.clone(),
        )
            .into_response(),
        Format::JsCalendar if !ev.deleted => (
            status,
            [(header::CONTENT_TYPE, formats::JSCALENDAR)],
            formats::to_jscalendar(&ev.ical).to_string(),
        )
            .into_response(),
        _ => (status, Json(doc)).into_response(),
    };
    if let Ok(v) = etag.parse() {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `PUT /v1/groups/{group_id}/events/{event_id}`: idempotent upsert (201 created, 200
/// updated or unchanged); `If-Match` / `If-None-Match: *` → 412 when they do not hold.
#[utoipa::path(
    put,
    path = "/v1/groups/{group_id}/events/{event_id}",
    operation_id = "putEvent",
    tag = "events",
    params(("group_id" = String, Path, description = "Sync group id"), ("event_id" = String, Path, description = "Event id (the iCalendar UID), chosen by the application"), ("If-Match" = Option<String>, Header, description = "ETag of the version this write replaces"), ("If-None-Match" = Option<String>, Header, description = "`*`: create only")),
    request_body(
        content((Object = "application/jscalendar+json"), (String = "text/calendar")),
        description = "A JSCalendar Event (RFC 8984), or one VCALENDAR (RFC 5545) whose UID is the event id"
    ),
    responses(
        (status = 201, description = "Created; `ETag` header"),
        (status = 200, description = "Updated, or unchanged (same content: nothing pushed)"),
        crate::api::openapi::NotFound,
        crate::api::openapi::PreconditionFailed,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn put(
    State(st): State<ApiState>,
    caller: Caller,
    Path((group_id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    owned_group(&st, caller, &group_id).await?;
    valid_event_id(&event_id).map_err(|e| Problem::invalid_parameter("event_id", e))?;
    let series = formats::parse_event_body(&headers, &body, &event_id)?;
    let store = st.ctx.store();
    let w = upsert(&store, &group_id, &series, decide::precondition(&headers)).await?;
    if w.changed {
        queue_push(&st, &group_id).await?;
    }
    let ev = w
        .event
        .ok_or_else(|| Problem::internal("upsert without event"))?;
    let doc = event_json(&ev);
    Ok(answer(w.status, &ev, formats::wanted(&headers), doc))
}

/// `GET /v1/groups/{group_id}/events/{event_id}`: the event and its status on each member.
#[utoipa::path(
    get,
    path = "/v1/groups/{group_id}/events/{event_id}",
    operation_id = "getEvent",
    tag = "events",
    params(("group_id" = String, Path, description = "Sync group id"), ("event_id" = String, Path, description = "Event id (the iCalendar UID), chosen by the application")),
    responses(
        (status = 200, description = "The event (JSON with JSCalendar and per-link status; or by `Accept`: JSCalendar, iCalendar)"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn get(
    State(st): State<ApiState>,
    caller: Caller,
    Path((group_id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    owned_group(&st, caller, &group_id).await?;
    let store = st.ctx.store();
    let ev = store
        .get_event(&group_id, &event_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("event {event_id:?}")))?;
    let mut doc = event_json(&ev);
    let mut links = Vec::new();
    for l in store.links_of_group(&group_id).await? {
        let m = store.get_mapping(&l.link_id, &ev.uid).await?;
        let status = decide::member_status(
            l.read_only(),
            m.as_ref().map(|m| (m.status, m.synced_version)),
            ev.version,
            ev.deleted,
        );
        links.push(json!({
            "link_id": l.link_id,
            "display_name": l.display_name,
            "status": status,
            "error": m.as_ref().and_then(|m| m.error.clone()),
        }));
    }
    doc["links"] = Value::Array(links);
    Ok(answer(StatusCode::OK, &ev, formats::wanted(&headers), doc))
}

/// `DELETE /v1/groups/{group_id}/events/{event_id}`: 204; the deletion reaches every member.
#[utoipa::path(
    delete,
    path = "/v1/groups/{group_id}/events/{event_id}",
    operation_id = "deleteEvent",
    tag = "events",
    params(("group_id" = String, Path, description = "Sync group id"), ("event_id" = String, Path, description = "Event id (the iCalendar UID), chosen by the application"), ("If-Match" = Option<String>, Header, description = "ETag of the version deleted")),
    responses(
        (status = 204, description = "Deleted everywhere (idempotent)"),
        crate::api::openapi::NotFound,
        crate::api::openapi::PreconditionFailed,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn delete(
    State(st): State<ApiState>,
    caller: Caller,
    Path((group_id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    owned_group(&st, caller, &group_id).await?;
    let store = st.ctx.store();
    let w = remove(&store, &group_id, &event_id, decide::precondition(&headers)).await?;
    if w.changed {
        queue_push(&st, &group_id).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
