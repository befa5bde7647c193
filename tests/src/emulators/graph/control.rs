//! The emulator's own control routes for tests (`/emulator/…`): add a calendar, expire the
//! delta tokens, queue faults, read the counters; and the `$batch` counter.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{Calendar, Shared};

pub(super) async fn control_add_calendar(
    State(st): State<Shared>,
    Json(b): Json<Value>,
) -> Response {
    let id = b["id"].as_str().unwrap_or_default().to_string();
    let name = b["name"].as_str().unwrap_or(&id).to_string();
    st.lock()
        .expect("emulator lock")
        .calendars
        .entry(id)
        .or_insert_with(|| Calendar {
            name,
            ..Default::default()
        });
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn control_expire(State(st): State<Shared>) -> Response {
    st.lock().expect("emulator lock").delta.expire_all();
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn control_faults(State(st): State<Shared>, Json(b): Json<Value>) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let ra = b["retry_after"]
        .as_u64()
        .unwrap_or(s.config.retry_after_secs);
    let status = b["status"].as_u64().unwrap_or(503) as u16;
    let n = b["count"].as_u64().unwrap_or(1) as usize;
    s.faults.extend(std::iter::repeat_n((status, ra), n));
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn control_stats(State(st): State<Shared>) -> Response {
    let s = st.lock().expect("emulator lock");
    Json(
        json!({"requests": s.requests, "throttled": s.throttled, "max_inflight": s.max_inflight,
        "batches": s.batches}),
    )
    .into_response()
}

/// Count one `$batch` envelope.
pub(crate) fn count_batch(st: &Shared) {
    st.lock().expect("emulator lock").batches += 1;
}
