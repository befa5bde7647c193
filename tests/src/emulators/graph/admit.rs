//! Every API request passes [`admit`]: injected faults, the bearer token, the mailbox's
//! request budget and concurrency (429 `ApplicationThrottled` / `MailboxConcurrency` with
//! `Retry-After`), then the configured latency.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{gerror, Shared};

fn throttled(code: &str, retry_after: u64) -> Response {
    let mut r = json!({"error": {"code": code, "message": "Application is over its MailboxConcurrency limit.",
        "innerError": {"code": "429", "date": chrono::Utc::now().to_rfc3339()}}});
    if code == "ApplicationThrottled" {
        r["error"]["message"] = json!("Application is over its request limit for this mailbox.");
    }
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(r)).into_response();
    resp.headers_mut().insert(
        "retry-after",
        retry_after.to_string().parse().expect("number header"),
    );
    resp
}

/// Every API request: injected faults, bearer token, mailbox budget and concurrency, latency.
pub(super) async fn admit(
    State(st): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let bearer = crate::emulators::bearer(req.headers()).map(str::to_string);
    let latency = {
        let mut s = st.lock().expect("emulator lock");
        s.requests += 1;
        if let Some((status, ra)) = s.faults.pop_front() {
            if status == 429 {
                s.throttled += 1;
                return throttled("ApplicationThrottled", ra);
            }
            let mut r = gerror(status, "serviceNotAvailable", "Injected failure.");
            if status == 503 {
                r.headers_mut().insert(
                    "retry-after",
                    ra.to_string().parse().expect("number header"),
                );
            }
            return r;
        }
        let ok = match &bearer {
            None => false,
            Some(t) => !s.config.require_issued_tokens || s.oauth.access_valid(t),
        };
        if !ok {
            return gerror(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty or invalid.",
            );
        }
        let now = Instant::now();
        while s
            .budget
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(600))
        {
            s.budget.pop_front();
        }
        s.inflight += 1;
        s.max_inflight = s.max_inflight.max(s.inflight);
        let ra = s.config.retry_after_secs;
        if s.inflight > s.config.max_concurrency {
            s.inflight -= 1;
            s.throttled += 1;
            return throttled("MailboxConcurrency", ra);
        }
        if s.budget.len() >= s.config.budget_per_10min {
            s.inflight -= 1;
            s.throttled += 1;
            return throttled("ApplicationThrottled", ra);
        }
        s.budget.push_back(now);
        s.config.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = next.run(req).await;
    st.lock().expect("emulator lock").inflight -= 1;
    resp
}
