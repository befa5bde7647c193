//! Hub events, the application's own calendar: upsert, read (with per-link status), delete,
//! keyset-paged listing, the incremental change feed and batches. Every write that changes
//! the hub queues sync-back for each writable member ([`super::queue_push`]).

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::decide::{self, Current, Delete, Precondition, Upsert};
use super::formats::{self, Format};
use super::{decode_cursor, encode_cursor, owned_group, queue_push, ApiResult, ApiState, Problem};
use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::HubEvent;
use crate::store::{ChangeCursor, Store, StoreError};

/// Origin recorded on hub events the API writes.
pub const API_ORIGIN: &str = "api";
/// Changes this recent (ms) are repeated by the next feed page after a caught-up page, so a
/// write whose timestamp was taken before a slower, concurrent one is never skipped.
pub const CHANGES_SETTLE_MS: i64 = 2000;
const MAX_BATCH: usize = 100;

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
        };
        match store.put_event(&ev, cur.as_ref().map(|c| c.version)).await {
            Ok(()) => {
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
            Err(StoreError::Conflict { .. }) if pre == Precondition::None => continue,
            Err(StoreError::Conflict { .. }) => {
                return Err(Problem::precondition_failed(
                    "the event changed concurrently",
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "Conflict",
        "the event keeps changing; retry",
    ))
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
        match store.put_event(&ev, Some(old.version)).await {
            Ok(()) => {
                return Ok(Written {
                    status: StatusCode::NO_CONTENT,
                    event: Some(ev),
                    changed: true,
                })
            }
            Err(StoreError::Conflict { .. }) if pre == Precondition::None => continue,
            Err(StoreError::Conflict { .. }) => {
                return Err(Problem::precondition_failed(
                    "the event changed concurrently",
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "Conflict",
        "the event keeps changing; retry",
    ))
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

/// Query of `GET …/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only events with an occurrence ending after this instant (RFC 3339).
    pub start: Option<String>,
    /// Only events with an occurrence starting before this instant (RFC 3339).
    pub end: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<usize>,
    /// The `cursor` of the previous page.
    pub cursor: Option<String>,
    /// `true`: each event carries its occurrences in the window (start and end required).
    pub expand: Option<bool>,
}

fn instant(name: &str, v: &Option<String>) -> ApiResult<Option<DateTime<Utc>>> {
    v.as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| {
                    Problem::invalid_parameter(name, format!("not an RFC 3339 instant: {e}"))
                })
        })
        .transpose()
}

fn limit_of(v: Option<usize>) -> ApiResult<usize> {
    match v {
        None => Ok(100),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_parameter("limit", "must be 1 to 500")),
    }
}

/// `GET /v1/groups/{group_id}/events?start&end&limit&cursor&expand`: live events in event
/// id order, keyset-paged (`cursor` continues after the last event of a page).
#[utoipa::path(
    get,
    path = "/v1/groups/{group_id}/events",
    operation_id = "listEvents",
    tag = "events",
    params(("group_id" = String, Path, description = "Sync group id"), ListQuery),
    responses(
        (status = 200, description = "`{events: [...], cursor}` in event id order"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn list(
    State(st): State<ApiState>,
    caller: Caller,
    Path(group_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    owned_group(&st, caller, &group_id).await?;
    let limit = limit_of(q.limit)?;
    let (start, end) = (instant("start", &q.start)?, instant("end", &q.end)?);
    let expand = q.expand.unwrap_or(false);
    if expand && (start.is_none() || end.is_none()) {
        return Err(Problem::invalid_parameter(
            "expand",
            "expand=true needs start and end",
        ));
    }
    let window = match (start, end) {
        (None, None) => None,
        (s, e) => Some((
            s.unwrap_or(DateTime::<Utc>::MIN_UTC),
            e.unwrap_or(DateTime::<Utc>::MAX_UTC),
        )),
    };
    if window.is_some_and(|(s, e)| s >= e) {
        return Err(Problem::invalid_parameter("end", "must be after start"));
    }
    let mut after: Option<String> = match &q.cursor {
        Some(c) => Some(decode_cursor::<String>(c)?),
        None => None,
    };
    let store = st.ctx.store();
    let mut out = Vec::new();
    let mut next = None;
    'pages: loop {
        let page = store
            .events_page(&group_id, after.as_deref(), limit as i32)
            .await?;
        for ev in &page.items {
            after = Some(ev.uid.clone());
            if ev.deleted {
                continue;
            }
            let mut doc = event_json(ev);
            if let Some((from, to)) = window {
                let (occ, _) = crate::ical::occurrences_of(&ev.ical, from, to, 5000);
                // occurrences_of keeps those starting in the window; also keep one that
                // started before it and is still running.
                let (before, _) = crate::ical::occurrences_of(
                    &ev.ical,
                    from - chrono::Duration::days(366),
                    from,
                    5000,
                );
                let running: Vec<_> = before.into_iter().filter(|o| o.end > from).collect();
                if occ.is_empty() && running.is_empty() {
                    continue;
                }
                if expand {
                    doc["occurrences"] = running
                        .iter()
                        .chain(occ.iter())
                        .map(|o| json!({"start": o.start.to_rfc3339(), "end": o.end.to_rfc3339(), "title": o.summary}))
                        .collect();
                }
            }
            out.push(doc);
            if out.len() == limit {
                next = Some(ev.uid.clone());
                break 'pages;
            }
        }
        if page.next.is_none() {
            break;
        }
    }
    Ok(Json(json!({
        "events": out,
        "cursor": next.map(|n| encode_cursor(&n)),
    })))
}

/// Query of `GET …/changes`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The `cursor` of the previous page; absent: from the beginning.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<usize>,
}

/// `GET /v1/groups/{group_id}/changes?cursor&limit`: every hub change after the cursor in
/// change order, tombstones included (`deleted: true`). `more: true` means call again right
/// away; a caught-up page's cursor repeats the last [`CHANGES_SETTLE_MS`] of changes, so a
/// change may be delivered twice (apply by `version`) but is never skipped.
#[utoipa::path(
    get,
    path = "/v1/groups/{group_id}/changes",
    operation_id = "listChanges",
    tag = "events",
    params(("group_id" = String, Path, description = "Sync group id"), ChangesQuery),
    responses(
        (status = 200, description = "`{changes: [...], cursor, more}`, tombstones included"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn changes(
    State(st): State<ApiState>,
    caller: Caller,
    Path(group_id): Path<String>,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Json<Value>> {
    owned_group(&st, caller, &group_id).await?;
    let limit = limit_of(q.limit)?;
    let cursor: ChangeCursor = match &q.cursor {
        Some(c) => decode_cursor(c)?,
        None => ChangeCursor::default(),
    };
    let (items, more) = st
        .ctx
        .store()
        .changes_after(&group_id, &cursor, limit)
        .await?;
    let next = match (items.last(), more) {
        (Some(last), true) => ChangeCursor {
            ms: last.updated_ms,
            uid: last.uid.clone(),
        },
        (Some(last), false) => ChangeCursor {
            ms: (last.updated_ms - CHANGES_SETTLE_MS).max(cursor.ms),
            uid: String::new(),
        },
        (None, _) => cursor,
    };
    Ok(Json(json!({
        "changes": items.iter().map(event_json).collect::<Vec<_>>(),
        "cursor": encode_cursor(&next),
        "more": more,
    })))
}

/// One item of `POST …/events:batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// `upsert` or `delete`.
    pub op: String,
    /// The event id.
    pub event_id: String,
    /// Upsert: the event as JSCalendar…
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event: Option<Value>,
    /// …or as iCalendar text.
    #[serde(default)]
    pub ical: Option<String>,
    /// Optional precondition (an `ETag` value).
    #[serde(default)]
    pub if_match: Option<String>,
}

/// Body of `POST …/events:batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// 1–100 operations, applied in order; one failing does not undo the others.
    pub items: Vec<BatchItem>,
}

async fn batch_item(
    store: &Store,
    group_id: &str,
    i: usize,
    item: &BatchItem,
) -> ApiResult<Written> {
    let at = |f: &str| format!("/items/{i}/{f}");
    valid_event_id(&item.event_id).map_err(|e| Problem::invalid_field(&at("event_id"), e))?;
    let pre = match &item.if_match {
        Some(v) => {
            let mut h = HeaderMap::new();
            let v = v
                .parse()
                .map_err(|_| Problem::invalid_field(&at("if_match"), "not an entity tag"))?;
            h.insert(header::IF_MATCH, v);
            decide::precondition(&h)
        }
        None => Precondition::None,
    };
    match item.op.as_str() {
        "upsert" => {
            let series = formats::event_member(
                item.event.as_ref(),
                item.ical.as_deref(),
                &item.event_id,
                &format!("/items/{i}"),
            )?
            .ok_or_else(|| {
                Problem::invalid_field(
                    &format!("/items/{i}"),
                    "an upsert needs event (JSCalendar) or ical",
                )
            })?;
            upsert(store, group_id, &series, pre).await
        }
        "delete" => remove(store, group_id, &item.event_id, pre).await,
        other => Err(Problem::invalid_field(
            &at("op"),
            format!("expected upsert or delete, got {other:?}"),
        )),
    }
}

/// `POST /v1/groups/{group_id}/events:batch`: up to 100 upserts / deletes, applied in order
/// without rollback; 207 with one result per item (`status`, `etag`, or `problem`).
#[utoipa::path(
    post,
    path = "/v1/groups/{group_id}/events:batch",
    operation_id = "batchEvents",
    tag = "events",
    params(("group_id" = String, Path, description = "Sync group id"), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 422")),
    request_body = Batch,
    responses(
        (status = 207, description = "`{results: [{event_id, status, etag | problem}]}`"),
        crate::api::openapi::NotFound,
        crate::api::openapi::Invalid,
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn batch(
    State(st): State<ApiState>,
    caller: Caller,
    Path(group_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    owned_group(&st, caller, &group_id).await?;
    let b: Batch = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid_field("/items", format!("not a batch: {e}")))?;
    if b.items.is_empty() || b.items.len() > MAX_BATCH {
        return Err(Problem::invalid_field(
            "/items",
            format!("1 to {MAX_BATCH} items"),
        ));
    }
    let ids: BTreeSet<&str> = b.items.iter().map(|i| i.event_id.as_str()).collect();
    if ids.len() != b.items.len() {
        return Err(Problem::invalid_field(
            "/items",
            "each event_id at most once per batch",
        ));
    }
    let store = st.ctx.store();
    let mut results = Vec::new();
    let mut changed = false;
    for (i, item) in b.items.iter().enumerate() {
        match batch_item(&store, &group_id, i, item).await {
            Ok(w) => {
                changed |= w.changed;
                results.push(json!({
                    "event_id": item.event_id,
                    "status": w.status.as_u16(),
                    "etag": w.event.as_ref().filter(|e| !e.deleted).map(|e| decide::etag(e.version)),
                }));
            }
            Err(p) => results.push(json!({
                "event_id": item.event_id,
                "status": p.status.as_u16(),
                "problem": p.to_json(),
            })),
        }
    }
    if changed {
        queue_push(&st, &group_id).await?;
    }
    Ok((
        StatusCode::MULTI_STATUS,
        Json(json!({ "results": results })),
    )
        .into_response())
}
