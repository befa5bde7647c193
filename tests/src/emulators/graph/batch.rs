//! JSON batching of the Graph emulator (https://learn.microsoft.com/graph/json-batching,
//! provider-semantics §2.6): at most 20 requests with unique ids; each item is served by the
//! same routes (so it is authenticated and throttled on its own, and a 429 shows inside the
//! 200 envelope); with `dependsOn` the items run in order and an item whose dependency
//! failed answers 424; otherwise they run at most 4 at a time (Outlook's per-mailbox
//! concurrency). Answers come in any order (here: reversed).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{bad_request, Shared};

/// Most requests in one batch.
pub const MAX_REQUESTS: usize = 20;
/// Items of one batch served at once.
const PARALLEL: usize = 4;

pub(crate) async fn batch(
    State(st): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    super::control::count_batch(&st);
    let Some(reqs) = body["requests"].as_array().cloned() else {
        return bad_request("BadRequest", "Invalid batch payload format.");
    };
    if reqs.is_empty() || reqs.len() > MAX_REQUESTS {
        return bad_request(
            "BadRequest",
            &format!("Number of batch request steps exceeds the maximum of {MAX_REQUESTS}."),
        );
    }
    let mut ids = std::collections::HashSet::new();
    for r in &reqs {
        let Some(id) = r["id"].as_str() else {
            return bad_request("BadRequest", "Each batch request needs an id.");
        };
        if !ids.insert(id.to_string()) {
            return bad_request("BadRequest", "Batch request ids must be unique.");
        }
        if r.get("body").is_some()
            && !r["headers"]
                .as_object()
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")))
        {
            return bad_request(
                "BadRequest",
                "Content-Type header is required for a request with a body.",
            );
        }
    }
    let sequential = reqs.iter().any(|r| r.get("dependsOn").is_some());
    let app = super::router(st.clone());
    let mut answers: Vec<Value> = Vec::new();
    if sequential {
        let mut status_of: std::collections::HashMap<String, u16> = Default::default();
        for r in &reqs {
            let failed_dep = r["dependsOn"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|d| status_of.get(d).is_none_or(|s| *s >= 400));
            let a = if failed_dep {
                json!({"id": r["id"], "status": 424, "body": {"error": {"code": "FailedDependency", "message": "A dependency failed."}}})
            } else {
                item(app.clone(), &headers, r).await
            };
            status_of.insert(
                r["id"].as_str().unwrap_or("").into(),
                a["status"].as_u64().unwrap_or(500) as u16,
            );
            answers.push(a);
        }
    } else {
        for chunk in reqs.chunks(PARALLEL) {
            // The items of a chunk are in flight at the same time.
            let mut set = tokio::task::JoinSet::new();
            for (n, r) in chunk.iter().cloned().enumerate() {
                let (app, headers) = (app.clone(), headers.clone());
                set.spawn(async move { (n, item(app, &headers, &r).await) });
            }
            let mut got: Vec<(usize, Value)> = set.join_all().await;
            got.sort_by_key(|(n, _)| *n);
            answers.extend(got.into_iter().map(|(_, v)| v));
        }
    }
    answers.reverse();
    (StatusCode::OK, Json(json!({"responses": answers}))).into_response()
}

/// Serve one batch item through the routes; its answer as `{id, status, headers, body}`.
async fn item(app: axum::Router, outer: &HeaderMap, r: &Value) -> Value {
    let method = r["method"].as_str().unwrap_or("GET").to_ascii_uppercase();
    let url = r["url"].as_str().unwrap_or("");
    let path = if url.starts_with('/') {
        format!("/v1.0{url}")
    } else {
        format!("/v1.0/{url}")
    };
    let mut b = Request::builder().method(method.as_str()).uri(path);
    if let Some(a) = outer.get("authorization") {
        b = b.header("authorization", a);
    }
    for p in outer.get_all("prefer") {
        b = b.header("prefer", p);
    }
    for (k, v) in r["headers"].as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            b = b.header(k.as_str(), v);
        }
    }
    let body = match r.get("body") {
        Some(v) => Body::from(v.to_string()),
        None => Body::empty(),
    };
    let resp = match b.body(body) {
        Ok(req) => app.oneshot(req).await.expect("infallible router"),
        Err(_) => {
            return json!({"id": r["id"], "status": 400, "body": {"error": {"code": "BadRequest", "message": "Invalid request."}}})
        }
    };
    let status = resp.status().as_u16();
    let mut headers = serde_json::Map::new();
    for (k, v) in resp.headers() {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_string(), json!(v));
        }
    }
    let bytes = axum::body::to_bytes(resp.into_body(), 4 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut out = json!({"id": r["id"], "status": status, "headers": headers});
    if !body.is_null() {
        out["body"] = body;
    }
    out
}
