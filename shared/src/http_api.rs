//! The HTTP routes of the webhook-receiver function (API Gateway HTTP API), independent of
//! the Lambda runtime so the local stack serves the same code. `{slug}` is a provider's
//! registry name ([`crate::provider::registry::ProviderInfo::slug`]):
//!
//! - `POST …/webhooks/{slug}` — push notifications and validation handshakes, read by the
//!   provider's [`crate::push::PushPort`] ([`crate::push::handle`]).
//! - `GET  …/oauth/{slug}/begin?state` — the consent URL the API answered
//!   (`POST /v1/groups/{group_id}/links/oauth/{slug}`, [`crate::connect::start`]): binds the
//!   consent to this browser with a cookie and 302s to the provider
//!   ([`crate::connect::begin`]).
//! - `GET  …/oauth/{slug}/callback?code&state` (or `error`) — the consent redirect, accepted
//!   only from the browser that began ([`crate::connect::finish`]).
//!
//! Paths match by suffix so that stage prefixes (`/prod/…`) work.

use crate::config::Ctx;
use crate::connect::{self, CallbackError, Finished};
use crate::consent_page::{self, Outcome};
use crate::model::ProviderKind;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Headers (`content-type` always; `location`, `set-cookie`,
    /// `content-security-policy` where they apply).
    pub headers: Vec<(&'static str, String)>,
    /// Body (plain text, or the consent page's HTML).
    pub body: String,
}

impl HttpAnswer {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type", "text/plain; charset=utf-8".into())],
            body: body.into(),
        }
    }

    /// The consent window's page ([`crate::consent_page`]), never cached or framed.
    fn page(status: u16, html: String) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type", "text/html; charset=utf-8".into()),
                ("content-security-policy", crate::consent_page::CSP.into()),
                ("cache-control", "no-store".into()),
                ("x-content-type-options", "nosniff".into()),
            ],
            body: html,
        }
    }

    /// The value of header `name` (lowercase), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
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

/// One request to the webhook receiver.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method.
    pub method: http::Method,
    /// Path (any stage prefix included).
    pub path: String,
    /// Raw query string, without `?`.
    pub query: String,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Serve one request. The future is boxed as `Send` here, where its lifetimes are concrete,
/// so that Lambda and axum services can hold it.
pub fn route(
    ctx: &Ctx,
    req: HttpRequest,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpAnswer> + Send + '_>> {
    Box::pin(route_inner(ctx, req))
}

/// `(first, second)` of a path ending in `/<first>/<second>` (`/oauth/google/begin` →
/// `("google", "begin")` under `oauth`), for the segment names `prefix`.
fn tail<'a>(path: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let mut it = path.rsplit('/');
    let last = it.next()?;
    let slug = it.next()?;
    (it.next()? == prefix).then_some((slug, last))
}

/// `slug` of a path ending in `/webhooks/<slug>`.
fn webhook_slug(path: &str) -> Option<&str> {
    let (head, slug) = path.rsplit_once('/')?;
    (head.rsplit('/').next()? == "webhooks").then_some(slug)
}

async fn route_inner(ctx: &Ctx, req: HttpRequest) -> HttpAnswer {
    let q = query_pairs(&req.query);
    let get = |k: &'static str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let path = req.path.trim_end_matches('/');
    if let Some(slug) = webhook_slug(path) {
        if req.method != http::Method::POST {
            return HttpAnswer::text(405, "POST only");
        }
        let Some(kind) = ProviderKind::from_slug(slug) else {
            return HttpAnswer::text(404, "no such provider");
        };
        let pr = crate::push::PushRequest {
            method: &req.method,
            query: &q,
            headers: &req.headers,
            body: &req.body,
        };
        let a = crate::push::handle(ctx, kind, &pr).await;
        return HttpAnswer::text(a.status, a.body);
    }
    let Some((slug, step)) = tail(path, "oauth") else {
        return HttpAnswer::text(404, "no such route");
    };
    let Some(kind) = ProviderKind::from_slug(slug).filter(|k| k.module().oauth().is_some()) else {
        return HttpAnswer::text(404, "no such provider");
    };
    if step == "begin" && req.method == http::Method::GET {
        let Some(state) = get("state") else {
            return HttpAnswer::text(400, "state is required");
        };
        return match connect::begin(ctx, &state).await {
            Ok((url, cookie)) => HttpAnswer {
                status: 302,
                headers: vec![
                    ("content-type", "text/plain; charset=utf-8".into()),
                    ("location", url),
                    ("set-cookie", cookie),
                ],
                body: String::new(),
            },
            Err(e @ CallbackError::BadState) => HttpAnswer::text(400, e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "OAuth begin failed");
                HttpAnswer::text(500, "cannot start the connection")
            }
        };
    }
    if step == "callback" && req.method == http::Method::GET {
        let provider = kind.info().display_name;
        let refused = |status: u16, reason: String| {
            HttpAnswer::page(
                status,
                consent_page::render(provider, Outcome::Refused { reason: &reason }),
            )
        };
        if let Some(err) = get("error") {
            // The state is left to expire; nothing was created.
            return refused(400, CallbackError::Denied(err).to_string());
        }
        let (Some(code), Some(state)) = (get("code"), get("state")) else {
            return refused(400, "code and state are required".into());
        };
        let cookie = connect::state_cookie(&req.headers);
        return match connect::finish(ctx, kind, &code, &state, cookie.as_deref()).await {
            Ok(done) => {
                let link = done.link();
                let (calendar, link_id) = (link.display_name.as_str(), link.link_id.as_str());
                let outcome = if matches!(done, Finished::Renewed(_)) {
                    Outcome::Renewed { calendar, link_id }
                } else {
                    Outcome::Connected { calendar, link_id }
                };
                HttpAnswer::page(200, consent_page::render(provider, outcome))
            }
            Err(e @ (CallbackError::BadState | CallbackError::OtherBrowser)) => {
                refused(400, e.to_string())
            }
            Err(e @ CallbackError::OtherAccount(_)) => {
                tracing::warn!(error = %e, "OAuth reconnection with another account refused");
                refused(409, e.to_string())
            }
            Err(e) => {
                tracing::error!(error = %e, "OAuth callback failed");
                refused(502, format!("the connection failed: {e}"))
            }
        };
    }
    HttpAnswer::text(404, "no such route")
}

#[cfg(test)]
mod tests {
    #[test]
    fn oauth_paths_name_provider_and_step() {
        let t = super::tail;
        assert_eq!(t("/oauth/google/begin", "oauth"), Some(("google", "begin")));
        assert_eq!(
            t("/prod/oauth/outlook/callback", "oauth"),
            Some(("outlook", "callback"))
        );
        assert_eq!(t("/x/google/begin", "oauth"), None);
        assert_eq!(t("/begin", "oauth"), None);
        assert_eq!(super::webhook_slug("/prod/webhooks/google"), Some("google"));
        assert_eq!(super::webhook_slug("/webhooks/outlook"), Some("outlook"));
        assert_eq!(super::webhook_slug("/hooks/google"), None);
    }
}
