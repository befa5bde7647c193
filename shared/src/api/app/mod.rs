//! The calendar settings page at `/app/`: static HTML, CSS and JavaScript modules embedded in
//! the binary, talking only to the `/v1` API with the user's bearer token (which the page
//! takes from the URL fragment `#token=…` or from a `postMessage` of the embedding
//! application, and keeps in memory only).
//!
//! The assets need no token (they hold no data and no secret); every answer carries a strict
//! Content-Security-Policy (no inline script or style, connections to this origin only) whose
//! `frame-ancestors` names the origins allowed to embed the page
//! (`CALSYNC_APP_FRAME_ANCESTORS`, [`AppConfig::from_env`]).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::Digest;
use std::sync::Arc;

/// One embedded file: name under `/app/`, content type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: &str = include_str!("index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// An [`Asset`] of this directory.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!($name),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("connect.js", JS),
    asset!("links.js", JS),
    asset!("account.js", JS),
    asset!("conflicts.js", JS),
];

/// The placeholder in `index.html` replaced by the origins allowed to send a token.
const PARENT_ORIGINS_SLOT: &str = "{{parent_origins}}";

/// Who may embed the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Origins (`https://app.example.com`) allowed to frame the page and to send it a token
    /// by `postMessage`; empty: no framing, the token comes in the URL fragment only.
    pub parent_origins: Vec<String>,
}

impl AppConfig {
    /// From `CALSYNC_APP_FRAME_ANCESTORS` (origins separated by spaces or commas). Entries
    /// that are no origin are left out with a warning (see [`parse_origins`]).
    pub fn from_env() -> Self {
        let raw = std::env::var("CALSYNC_APP_FRAME_ANCESTORS").unwrap_or_default();
        let (parent_origins, refused) = parse_origins(&raw);
        for r in refused {
            tracing::warn!(entry = %r, "CALSYNC_APP_FRAME_ANCESTORS: not an origin, left out");
        }
        Self { parent_origins }
    }

    /// The `Content-Security-Policy` of every answer under `/app/` (CSP Level 3,
    /// <https://www.w3.org/TR/CSP3/>).
    pub fn csp(&self) -> String {
        let ancestors = if self.parent_origins.is_empty() {
            "'none'".to_string()
        } else {
            self.parent_origins.join(" ")
        };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
        )
    }
}

/// Origins from a list separated by spaces or commas: `(accepted, refused)`. An origin is
/// `https://host[:port]`, or `http://` for `localhost` / `127.0.0.1` only, with a host of
/// letters, digits, dots and hyphens and no path, query, user or wildcard (RFC 6454 §4: scheme, host, port); the accepted ones are
/// lower-cased and without a trailing slash.
pub fn parse_origins(raw: &str) -> (Vec<String>, Vec<String>) {
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for entry in raw.split([' ', ',', '\n', '\t']).filter(|e| !e.is_empty()) {
        match origin(entry) {
            Some(o) if !ok.contains(&o) => ok.push(o),
            Some(_) => {}
            None => refused.push(entry.to_string()),
        }
    }
    (ok, refused)
}

fn origin(entry: &str) -> Option<String> {
    let u = url::Url::parse(entry).ok()?;
    let host = u.host_str()?;
    let local = matches!(host, "localhost" | "127.0.0.1");
    let scheme_ok = u.scheme() == "https" || (u.scheme() == "http" && local);
    let bare = u.path() == "/"
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none()
        && !entry.trim_end_matches('/').ends_with(':');
    let plain_host = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !scheme_ok || !bare || !plain_host {
        return None;
    }
    Some(u.origin().ascii_serialization())
}

struct Served {
    csp: HeaderValue,
    index: String,
    index_etag: String,
}

/// The `/app` routes (no token needed; they serve no data).
pub fn router<S: Clone + Send + Sync + 'static>(cfg: &AppConfig) -> Router<S> {
    let csp = HeaderValue::from_str(&cfg.csp()).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; frame-ancestors 'none'",
    ));
    let index = INDEX.replace(PARENT_ORIGINS_SLOT, &cfg.parent_origins.join(" "));
    let served = Arc::new(Served {
        csp,
        index_etag: etag(&index),
        index,
    });
    Router::new()
        // API Gateway's `/app/{proxy+}` does not match `/app/`: both paths serve the page,
        // whose assets are addressed absolutely.
        .route("/app", get(index_page))
        .route("/app/", get(index_page))
        .route("/app/{asset}", get(asset))
        .with_state(served)
}

fn etag(body: &str) -> String {
    let d = sha2::Sha256::digest(body.as_bytes());
    format!("\"{}\"", hex::encode(&d[..12]))
}

fn answer(served: &Served, req: &HeaderMap, content_type: &str, body: String) -> Response {
    let tag = if content_type.starts_with("text/html") {
        served.index_etag.clone()
    } else {
        etag(&body)
    };
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type.to_string())], body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, served.csp.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    resp
}

async fn index_page(State(served): State<Arc<Served>>, req: HeaderMap) -> Response {
    answer(
        &served,
        &req,
        "text/html; charset=utf-8",
        served.index.clone(),
    )
}

async fn asset(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
    req: HeaderMap,
) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => answer(&served, &req, a.content_type, a.body.to_string()),
        None => super::Problem::not_found(format!("page asset {name:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("", &[], &[]),
            (
                "https://App.Example.com https://b.example:8443/",
                &["https://app.example.com", "https://b.example:8443"],
                &[],
            ),
            (
                "http://localhost:3000,http://127.0.0.1:8000",
                &["http://localhost:3000", "http://127.0.0.1:8000"],
                &[],
            ),
            (
                "http://app.example.com https://a.example/path https://*.example 'self' https://u@a.example",
                &[],
                &[
                    "http://app.example.com",
                    "https://a.example/path",
                    "https://*.example",
                    "'self'",
                    "https://u@a.example",
                ],
            ),
            (
                "https://a.example;script-src https://a.example",
                &["https://a.example"],
                &["https://a.example;script-src"],
            ),
        ];
        for (raw, ok, refused) in cases {
            let (o, r) = parse_origins(raw);
            assert_eq!(o, *ok, "{raw}");
            assert_eq!(r, *refused, "{raw}");
        }
    }

    #[test]
    fn csp_names_the_embedders_or_none() {
        let none = AppConfig {
            parent_origins: vec![],
        };
        assert!(none.csp().ends_with("frame-ancestors 'none'"));
        assert!(none.csp().contains("script-src 'self';"));
        assert!(!none.csp().contains("unsafe"));
        let one = AppConfig {
            parent_origins: vec!["https://app.example.com".into()],
        };
        assert!(one
            .csp()
            .ends_with("frame-ancestors https://app.example.com"));
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        let mut sources: Vec<&str> = ASSETS.iter().map(|a| a.body).collect();
        sources.push(INDEX);
        for src in sources {
            for part in src.split(['"', '\'']) {
                if let Some(name) = part.strip_prefix("./").or(part.strip_prefix("/app/")) {
                    assert!(
                        ASSETS.iter().any(|a| a.name == name),
                        "{name} is imported but not served"
                    );
                }
            }
        }
        assert!(INDEX.contains(PARENT_ORIGINS_SLOT));
    }
}
