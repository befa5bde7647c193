//! `Idempotency-Key` on `POST` routes (the IETF httpapi draft's semantics): the first answer
//! to a key is kept for 24 hours and a replay with the same body gets it again without
//! running the request; the same key with another body is 422. Keys are per user and route.
//! Answers of 5xx are not kept (the request may be retried with the same key).

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{auth, ApiState, Problem};
use crate::config::now_secs;
use crate::store::IdempotencyRecord;

/// The header.
pub const HEADER: &str = "idempotency-key";
/// How long an answer is kept (seconds).
pub const KEEP_SECS: i64 = 24 * 3600;
/// Largest request or answer body the layer buffers (bytes).
const MAX_BODY: usize = 6 << 20;

/// The middleware: passes requests without the header (and non-POST requests) through.
pub async fn layer(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
    else {
        return Problem::header(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )
        .into_response();
    };
    let key = key.to_string();
    let caller = match auth::authenticate(&st, req.headers()).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(caller);
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload Too Large",
            "the body is too large",
        )
        .into_response();
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    let full_key = format!("{}|{} {}|{key}", caller.0, parts.method, parts.uri.path());
    let store = st.ctx.store();
    match store.get_idempotency(&full_key).await {
        Ok(Some(rec)) if rec.request_sha256 == digest => return replay(&rec),
        Ok(Some(_)) => {
            return Problem::header(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency Key Reused",
                "Idempotency-Key",
                "this key was used with another request body",
            )
            .into_response()
        }
        Ok(None) => {}
        Err(e) => return Problem::from(e).into_response(),
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if resp.status().is_server_error() {
        return resp;
    }
    let (rparts, rbody) = resp.into_parts();
    let Ok(rbytes) = to_bytes(rbody, MAX_BODY).await else {
        return Problem::internal("answer too large to keep for Idempotency-Key").into_response();
    };
    let rec = IdempotencyRecord {
        key: full_key,
        request_sha256: digest,
        status: rparts.status.as_u16(),
        content_type: rparts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string(),
        body: String::from_utf8_lossy(&rbytes).into_owned(),
        expires_at: now_secs() + KEEP_SECS,
    };
    if let Err(e) = store.put_idempotency(&rec).await {
        tracing::warn!(error = %e, "Idempotency-Key answer not kept");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn replay(rec: &IdempotencyRecord) -> Response {
    let status = StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK);
    let mut r = (status, rec.body.clone()).into_response();
    if let Ok(v) = rec.content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        "idempotent-replayed",
        axum::http::HeaderValue::from_static("true"),
    );
    r
}
