//! The HTTP routes of the webhook-receiver function (API Gateway HTTP API), independent of
//! the Lambda runtime so the local stack serves the same code:
//!
//! - `POST …/webhooks/google` — Google push notifications ([`crate::push`]).
//! - `GET  …/oauth/google/begin?state` — the consent URL the API answered
//!   (`POST /v1/groups/{group_id}/links/oauth/google`, [`crate::connect::start`]): binds the
//!   consent to this browser with a cookie and 302s to Google ([`crate::connect::begin`]).
//! - `GET  …/oauth/google/callback?code&state` (or `error`) — the consent redirect, accepted
//!   only from the browser that began ([`crate::connect::finish`]).
//!
//! Paths match by suffix so that stage prefixes (`/prod/…`) work.

use crate::config::Ctx;
use crate::connect::{self, CallbackError};

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// `Location` header (redirects).
    pub location: Option<String>,
    /// `Set-Cookie` header.
    pub set_cookie: Option<String>,
    /// Plain-text body.
    pub body: String,
}

impl HttpAnswer {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            location: None,
            set_cookie: None,
            body: body.into(),
        }
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://q/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Serve one request. The future is boxed as `Send` here, where its lifetimes are concrete,
/// so that Lambda and axum services can hold it.
pub fn route(
    ctx: &Ctx,
    method: http::Method,
    path: String,
    query: String,
    headers: http::HeaderMap,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpAnswer> + Send + '_>> {
    Box::pin(route_inner(ctx, method, path, query, headers))
}

async fn route_inner(
    ctx: &Ctx,
    method: http::Method,
    path: String,
    query: String,
    headers: http::HeaderMap,
) -> HttpAnswer {
    let q = query_pairs(&query);
    let get = |k: &'static str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let path = path.trim_end_matches('/');
    if path.ends_with("/webhooks/google") && method == http::Method::POST {
        let a = crate::push::google_notification(ctx, &headers).await;
        return HttpAnswer::text(a.status, a.reason);
    }
    if path.ends_with("/oauth/google/begin") && method == http::Method::GET {
        let Some(state) = get("state") else {
            return HttpAnswer::text(400, "state is required");
        };
        return match connect::begin(ctx, &state).await {
            Ok((url, cookie)) => HttpAnswer {
                status: 302,
                location: Some(url),
                set_cookie: Some(cookie),
                body: String::new(),
            },
            Err(e @ CallbackError::BadState) => HttpAnswer::text(400, e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "OAuth begin failed");
                HttpAnswer::text(500, "cannot start the connection")
            }
        };
    }
    if path.ends_with("/oauth/google/callback") && method == http::Method::GET {
        if let Some(err) = get("error") {
            // The state is left to expire; nothing was created.
            return HttpAnswer::text(400, CallbackError::Denied(err).to_string());
        }
        let (Some(code), Some(state)) = (get("code"), get("state")) else {
            return HttpAnswer::text(400, "code and state are required");
        };
        let cookie = connect::state_cookie(&headers);
        return match connect::finish(ctx, &code, &state, cookie.as_deref()).await {
            Ok(link) => HttpAnswer::text(200, format!("connected: link {}", link.link_id)),
            Err(e @ (CallbackError::BadState | CallbackError::OtherBrowser)) => {
                HttpAnswer::text(400, e.to_string())
            }
            Err(e) => {
                tracing::error!(error = %e, "OAuth callback failed");
                HttpAnswer::text(502, format!("connection failed: {e}"))
            }
        };
    }
    HttpAnswer::text(404, "no such route")
}
