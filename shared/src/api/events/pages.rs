//! Reading the hub in pages: the keyset-paged event listing (with a time window and
//! occurrences) and the incremental change feed.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{event_json, CHANGES_SETTLE_MS};
use crate::api::{decode_cursor, encode_cursor, owned_group, ApiResult, ApiState, Caller, Problem};
use crate::store::ChangeCursor;

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
