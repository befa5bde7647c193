//! `POST …/events:batch`: up to 100 upserts and deletes, applied in order without rollback.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{remove, upsert, valid_event_id, Written};
use crate::api::decide::{self, Precondition};
use crate::api::formats;
use crate::api::{owned_group, queue_push, ApiResult, ApiState, Caller, Problem};
use crate::store::Store;

const MAX_BATCH: usize = 100;

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
