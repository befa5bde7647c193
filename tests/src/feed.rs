//! A local ICS feed server: serves a replaceable body at `/feed.ics` with a strong ETag and
//! Last-Modified, answers conditional GETs with 304, and counts requests. With
//! `validators = false` it sends neither header (feeds compared by body hash).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::Digest;

struct Inner {
    body: Mutex<(String, String)>, // (body, last-modified)
    requests: AtomicU32,
    validators: bool,
}

/// A running feed server; stops when dropped.
pub struct FeedServer {
    inner: Arc<Inner>,
    /// `http://127.0.0.1:<port>/feed.ics`
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    let (body, lm) = inner.body.lock().expect("feed lock").clone();
    let etag = format!(
        "\"{}\"",
        &hex::encode(sha2::Sha256::digest(body.as_bytes()))[..16]
    );
    if inner.validators
        && headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    if inner.validators {
        h.insert("etag", HeaderValue::from_str(&etag).expect("ascii etag"));
        h.insert(
            "last-modified",
            HeaderValue::from_str(&lm).expect("ascii date"),
        );
    }
    resp
}

impl FeedServer {
    /// Start on an ephemeral loopback port serving `body`.
    pub async fn start(body: &str, validators: bool) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            body: Mutex::new((body.to_string(), http_date())),
            requests: AtomicU32::new(0),
            validators,
        });
        let app = axum::Router::new()
            .route("/feed.ics", get(serve))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/feed.ics", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { inner, url, task })
    }

    /// Replace the feed's content.
    pub fn set_body(&self, body: &str) {
        *self.inner.body.lock().expect("feed lock") = (body.to_string(), http_date());
    }

    /// Requests served so far.
    pub fn requests(&self) -> u32 {
        self.inner.requests.load(Ordering::SeqCst)
    }
}

fn http_date() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}
