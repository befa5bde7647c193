//! The same operations for AppSync direct Lambda resolvers and for AutoSync over HTTP.
//!
//! An AppSync event `{"field":"<operation id>","arguments":{...},"identity":{...}}` is turned
//! into the HTTP request of that operation (path parameters and query parameters from
//! `arguments`, the rest as the JSON body; `putEvent` takes `arguments.event` (JSCalendar)
//! or `arguments.ical`) and served by the same [`Router`](axum::Router), with the caller
//! taken from the identity AppSync verified (`identity.claims[<user claim>]`, else
//! `identity.sub`). Field names are the operation ids of `docs/openapi.json`.

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use super::{ApiState, Caller, Problem};

/// Operation id → (method, path template, query parameters).
pub const OPERATIONS: &[(&str, &str, &str, &[&str])] = &[
    ("listGroups", "GET", "/v1/groups", &[]),
    ("createGroup", "POST", "/v1/groups", &[]),
    ("getGroup", "GET", "/v1/groups/{group_id}", &[]),
    ("deleteGroup", "DELETE", "/v1/groups/{group_id}", &[]),
    ("listLinks", "GET", "/v1/groups/{group_id}/links", &[]),
    ("createLink", "POST", "/v1/groups/{group_id}/links", &[]),
    (
        "startOAuth",
        "POST",
        "/v1/groups/{group_id}/links/oauth/{provider}",
        &[],
    ),
    ("getLink", "GET", "/v1/links/{link_id}", &[]),
    ("updateLink", "PATCH", "/v1/links/{link_id}", &[]),
    ("deleteLink", "DELETE", "/v1/links/{link_id}", &[]),
    ("syncLink", "POST", "/v1/links/{link_id}/sync", &[]),
    (
        "reconnectLink",
        "POST",
        "/v1/links/{link_id}/reconnect",
        &[],
    ),
    (
        "listAccountCalendars",
        "GET",
        "/v1/links/{link_id}/calendars",
        &[],
    ),
    (
        "listRuns",
        "GET",
        "/v1/links/{link_id}/runs",
        &["limit", "cursor"],
    ),
    ("listEventErrors", "GET", "/v1/links/{link_id}/errors", &[]),
    (
        "releaseDeletions",
        "POST",
        "/v1/links/{link_id}/release-deletions",
        &[],
    ),
    (
        "listEvents",
        "GET",
        "/v1/groups/{group_id}/events",
        &["start", "end", "limit", "cursor", "expand"],
    ),
    (
        "batchEvents",
        "POST",
        "/v1/groups/{group_id}/events:batch",
        &[],
    ),
    (
        "putEvent",
        "PUT",
        "/v1/groups/{group_id}/events/{event_id}",
        &[],
    ),
    (
        "getEvent",
        "GET",
        "/v1/groups/{group_id}/events/{event_id}",
        &[],
    ),
    (
        "deleteEvent",
        "DELETE",
        "/v1/groups/{group_id}/events/{event_id}",
        &[],
    ),
    (
        "listChanges",
        "GET",
        "/v1/groups/{group_id}/changes",
        &["cursor", "limit"],
    ),
    (
        "listConflicts",
        "GET",
        "/v1/groups/{group_id}/conflicts",
        &[],
    ),
    (
        "resolveConflict",
        "POST",
        "/v1/groups/{group_id}/conflicts/{event_id}:resolve",
        &[],
    ),
    ("AutoSync", "POST", "/v1/autosync", &[]),
];

/// Is `payload` an AppSync resolver event (has `field`, no HTTP request context)?
pub fn is_appsync(payload: &Value) -> bool {
    payload.get("field").is_some_and(Value::is_string) && payload.get("requestContext").is_none()
}

fn caller_of(st: &ApiState, identity: &Value) -> Option<Caller> {
    let claim = st.auth.user_claim();
    let v = identity
        .get("claims")
        .and_then(|c| c.get(claim))
        .or_else(|| identity.get("sub"))?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .map(Caller)
}

fn enc(s: &str) -> String {
    crate::provider::percent_encode(s)
}

/// Serve one AppSync event. `Ok` is the operation's JSON answer; `Err` is the RFC 9457
/// problem (AppSync reports it as the field's error).
pub async fn handle(st: &ApiState, payload: Value) -> Result<Value, Value> {
    let field = payload.get("field").and_then(Value::as_str).unwrap_or("");
    let Some((_, method, template, query)) = OPERATIONS.iter().find(|o| o.0 == field) else {
        return Err(Problem::bad_request(format!("unknown field {field:?}")).to_json());
    };
    let caller =
        caller_of(st, payload.get("identity").unwrap_or(&Value::Null)).ok_or_else(|| {
            Problem::unauthorized("the AppSync identity carries no integer user id").to_json()
        })?;
    let mut args: Map<String, Value> = payload
        .get("arguments")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut path = template.to_string();
    while let Some(start) = path.find('{') {
        let end = path[start..]
            .find('}')
            .map(|e| start + e)
            .unwrap_or(path.len() - 1);
        let name = path[start + 1..end].to_string();
        let value = match args.remove(&name) {
            Some(Value::String(s)) => s,
            Some(v) => v.to_string(),
            None => {
                return Err(Problem::invalid_field(&format!("/{name}"), "is required").to_json())
            }
        };
        path.replace_range(start..=end, &enc(&value));
    }
    let q: Vec<String> = query
        .iter()
        .filter_map(|k| {
            args.remove(*k).map(|v| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                format!("{k}={}", enc(&v))
            })
        })
        .collect();
    if !q.is_empty() {
        path = format!("{path}?{}", q.join("&"));
    }
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET))
        .uri(&path);
    let body = if *method == "PUT" {
        match (args.remove("event"), args.remove("ical")) {
            (Some(js), _) => {
                req = req.header("content-type", super::formats::JSCALENDAR);
                js.to_string()
            }
            (None, Some(Value::String(ical))) => {
                req = req.header("content-type", super::formats::ICALENDAR);
                ical
            }
            _ => {
                return Err(
                    Problem::invalid_field("/event", "give event (JSCalendar) or ical").to_json(),
                )
            }
        }
    } else if matches!(*method, "POST" | "PATCH") {
        req = req.header("content-type", "application/json");
        Value::Object(args).to_string()
    } else {
        String::new()
    };
    let mut req = req
        .body(Body::from(body))
        .map_err(|e| Problem::internal(e).to_json())?;
    req.extensions_mut().insert(caller);
    let resp = super::router(st.clone())
        .oneshot(req)
        .await
        .map_err(|e| Problem::internal(e).to_json())?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .map_err(|e| Problem::internal(e).to_json())?;
    let v: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    if status.is_client_error() || status.is_server_error() {
        Err(v)
    } else {
        Ok(v)
    }
}

/// `POST /v1/autosync` (and AppSync `AutoSync`): the AutoSync call of the MiPlanIt design,
/// `{"field":"AutoSync","arguments":{"userId":…,"calendarType":…}}` or just the arguments,
/// for the calling user only: a `userId` other than the caller's is refused (403,
/// `ER003`); absent, it is the caller's.
#[utoipa::path(
    post,
    path = "/v1/autosync",
    operation_id = "AutoSync",
    tag = "autosync",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 422")),
    request_body(
        content((Object = "application/json")),
        description = "`{\"field\":\"AutoSync\",\"arguments\":{\"userId\",\"calendarType\",\"silentNotification\"}}`, or just the arguments"
    ),
    responses(
        (status = 200, description = "`{Status: OK, Statuscode: SU001, Message}`"),
        (status = 403, description = "`userId` is not the caller (ER003)"),
        crate::api::openapi::Unauthorized
    ),
)]
pub async fn autosync(
    axum::extract::State(st): axum::extract::State<ApiState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut args = v.get("arguments").cloned().unwrap_or(v);
    if !args.is_object() {
        args = json!({});
    }
    let asked = args.get("userId").cloned();
    let matches = match &asked {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(caller.0),
        Some(Value::String(s)) => s.parse::<i64>().ok() == Some(caller.0),
        Some(_) => false,
    };
    if !matches {
        let answer = json!({"Status": "Error", "Statuscode": "ER003",
            "Message": "arguments.userId must be the calling user's id"});
        return (axum::http::StatusCode::FORBIDDEN, axum::Json(answer)).into_response();
    }
    args["userId"] = json!(caller.0);
    let answer =
        crate::handlers::autosync(&st.ctx, json!({"field": "AutoSync", "arguments": args})).await;
    let status = if answer["Status"] == "OK" {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, axum::Json(answer)).into_response()
}
