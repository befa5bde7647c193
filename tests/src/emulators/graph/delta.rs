//! `calendarView/delta` of the Graph emulator (https://learn.microsoft.com/graph/api/event-delta,
//! https://learn.microsoft.com/graph/delta-query-overview; provider-semantics §2.2).
//!
//! A round is computed when it starts (a full listing for a window, or the changes since
//! a delta token) and served in pages: every page but the last has an `@odata.nextLink`
//! (`$skiptoken`), the last an `@odata.deltaLink` (`$deltatoken`). Tokens are opaque and fix
//! the window; a token the emulator no longer holds (stale, expired, garbage) answers 410
//! `SyncStateNotFound` with a `Location` that restarts the round.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::events::{instances_of, overlaps, render};
use super::{bad_request, gerror, preferences, Inner, Shared};

/// Longest window a delta round may span (days).
pub const MAX_WINDOW_DAYS: i64 = 1825;

#[derive(Debug, Clone)]
struct Window {
    cal: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

#[derive(Debug)]
struct Round {
    window: Window,
    items: Vec<Value>,
    offset: usize,
    seq: u64,
}

/// Delta and skip tokens the emulator holds.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    delta: HashMap<String, (Window, u64)>,
    rounds: HashMap<String, Round>,
    /// Pages still served before every token is forgotten.
    pub(crate) expire_after: Option<usize>,
}

impl Tokens {
    /// Forget every token (the service lost its sync state).
    pub(crate) fn expire_all(&mut self) {
        self.delta.clear();
        self.rounds.clear();
    }
}

fn token() -> String {
    format!("R0us{}", uuid::Uuid::new_v4().simple())
}

pub(crate) async fn events_delta_unsupported() -> Response {
    bad_request(
        "BadRequest",
        "Unsupported request: Change tracking is not supported against 'microsoft.graph.event'.",
    )
}

pub(crate) async fn default_view_delta(
    st: State<Shared>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(st, super::DEFAULT_CALENDAR_ID.to_string(), q, headers).await
}

pub(crate) async fn calendar_view_delta(
    st: State<Shared>,
    Path(cal): Path<String>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(st, cal, q, headers).await
}

fn gone(s: &Inner, cal: &str) -> Response {
    let mut r = gerror(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found. Please restart the sync without a delta token.",
    );
    let loc = format!(
        "{}/v1.0/me/calendars/{cal}/calendarView/delta?$deltatoken=",
        s.base
    );
    r.headers_mut()
        .insert("location", loc.parse().expect("header value"));
    r
}

async fn serve(
    State(st): State<Shared>,
    cal: String,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if !s.calendars.contains_key(&cal) {
        return super::not_found();
    }
    match s.delta.expire_after {
        Some(0) => {
            s.delta.expire_after = None;
            s.delta.expire_all();
        }
        Some(n) => s.delta.expire_after = Some(n - 1),
        None => {}
    }
    let page = preferences(&headers)
        .get("odata.maxpagesize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(s.config.default_page_size)
        .clamp(1, s.config.page_cap.max(1));
    let round_id = if let Some(t) = q.get("$skiptoken") {
        if !s.delta.rounds.contains_key(t) {
            return gone(&s, &cal);
        }
        t.clone()
    } else if let Some(t) = q.get("$deltatoken") {
        let Some((w, since)) = s.delta.delta.get(t).cloned() else {
            return gone(&s, &cal);
        };
        if w.cal != cal {
            return gone(&s, &cal);
        }
        start_round(&mut s, w, Some(since), &headers)
    } else {
        if let Some(k) = q.keys().find(|k| k.starts_with('$')) {
            return bad_request(
                "BadRequest",
                &format!("The query parameter {k} is not supported with delta."),
            );
        }
        let Some((from, to)) = super::events::window(&q) else {
            return bad_request("ErrorInvalidParameter", "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.");
        };
        if to <= from || (to - from).num_days() > MAX_WINDOW_DAYS {
            return bad_request(
                "ErrorInvalidParameter",
                &format!("The time window must be positive and at most {MAX_WINDOW_DAYS} days."),
            );
        }
        let w = Window {
            cal: cal.clone(),
            from,
            to,
        };
        start_round(&mut s, w, None, &headers)
    };
    let base = s.base.clone();
    let Some(mut round) = s.delta.rounds.remove(&round_id) else {
        return gone(&s, &cal);
    };
    let end = (round.offset + page).min(round.items.len());
    let value: Vec<Value> = round.items[round.offset..end].to_vec();
    round.offset = end;
    let url = format!("{base}/v1.0/me/calendars/{cal}/calendarView/delta");
    let mut out = json!({"@odata.context": format!("{base}/v1.0/$metadata#Collection(event)"), "value": value});
    if end < round.items.len() {
        let t = token();
        out["@odata.nextLink"] = json!(format!("{url}?$skiptoken={t}"));
        s.delta.rounds.insert(t, round);
    } else {
        let t = token();
        out["@odata.deltaLink"] = json!(format!("{url}?$deltatoken={t}"));
        s.delta.delta.insert(t, (round.window, round.seq));
    }
    Json(out).into_response()
}

/// What a delta page shows of an occurrence: only `id`, `seriesMasterId`, `type`, `start`,
/// `end` (and the type annotation).
fn minimal(v: &Value) -> Value {
    json!({"@odata.type": "#microsoft.graph.event", "id": v["id"], "seriesMasterId": v["seriesMasterId"],
        "type": v["type"], "start": v["start"], "end": v["end"]})
}

fn removed(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
}

/// Compute a round's items and store it under a new skip token; returns the token.
fn start_round(s: &mut Inner, w: Window, since: Option<u64>, headers: &HeaderMap) -> String {
    let c = &s.calendars[&w.cal];
    let mut items = Vec::new();
    let show = |v: &Value| render(v, headers, None).unwrap_or_else(|_| v.clone());
    for (id, i) in &c.items {
        if since.is_some_and(|t| i.seq <= t) {
            continue;
        }
        let r = &i.resource;
        if i.deleted {
            if since.is_some() {
                items.push(removed(id));
            }
            continue;
        }
        match r["type"].as_str().unwrap_or("") {
            "seriesMaster" => {
                let inst = instances_of(c, r, w.from, w.to);
                if inst.is_empty() {
                    if since.is_some() {
                        items.push(removed(id));
                    }
                    continue;
                }
                items.push(show(r));
                for o in inst {
                    if o["type"] == "occurrence" {
                        items.push(minimal(&show(&o)));
                    } else if since.is_none() {
                        items.push(show(&o));
                    }
                }
            }
            "exception" if since.is_none() => {}
            _ if overlaps(r, w.from, w.to) => items.push(show(r)),
            // Changes outside the window are reported as removals (event-delta).
            _ if since.is_some() => items.push(removed(id)),
            _ => {}
        }
    }
    let t = token();
    let seq = s.seq;
    s.delta.rounds.insert(
        t.clone(),
        Round {
            window: w,
            items,
            offset: 0,
            seq,
        },
    );
    t
}
