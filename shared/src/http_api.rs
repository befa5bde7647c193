//! The HTTP routes of the webhook-receiver function (API Gateway HTTP API), independent of
//! the Lambda runtime so the local stack serves the same code:
//!
//! - `POST …/webhooks/google` — Google push notifications ([`crate::push`]).
//! - `GET  …/oauth/google/start?group_id&user_id&calendar_id[&display_name]` — 302 to the
//!   consent page ([`crate::connect::start`]). Call it from the application backend for a
//!   signed-in user.
//! - `GET  …/oauth/google/callback?code&state` (or `error`) — the consent redirect
//!   ([`crate::connect::finish`]).
//!
//! Paths match by suffix so that stage prefixes (`/prod/…`) work.

use crate::config::Ctx;
use crate::connect::{self, CallbackError, ConnectRequest};

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// `Location` header (redirects).
    pub location: Option<String>,
    /// Plain-text body.
    pub body: String,
}

impl HttpAnswer {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            location: None,
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
    if path.ends_with("/oauth/google/start") && method == http::Method::GET {
        let (Some(group_id), Some(user_id)) = (get("group_id"), get("user_id")) else {
            return HttpAnswer::text(400, "group_id and user_id are required");
        };
        let Ok(user_id) = user_id.parse::<i64>() else {
            return HttpAnswer::text(400, format!("user_id must be an integer, got {user_id:?}"));
        };
        let req = ConnectRequest {
            group_id,
            user_id,
            calendar_id: get("calendar_id").unwrap_or_else(|| "primary".into()),
            display_name: get("display_name").unwrap_or_else(|| "Google".into()),
        };
        return match connect::start(ctx, &req).await {
            Ok(url) => HttpAnswer {
                status: 302,
                location: Some(url),
                body: String::new(),
            },
            Err(e) => {
                tracing::error!(error = %e, "OAuth start failed");
                HttpAnswer::text(500, format!("cannot start the connection: {e}"))
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
        return match connect::finish(ctx, &code, &state).await {
            Ok(link) => HttpAnswer::text(200, format!("connected: link {}", link.link_id)),
            Err(e @ CallbackError::BadState) => HttpAnswer::text(400, e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "OAuth callback failed");
                HttpAnswer::text(502, format!("connection failed: {e}"))
            }
        };
    }
    HttpAnswer::text(404, "no such route")
}
