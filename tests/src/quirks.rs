//! A quirk-injecting proxy in front of a real CalDAV server (Radicale), for the documented
//! behaviours Radicale and Xandikos do not show but other servers do
//! (provider-semantics §3.3–3.6):
//!
//! - `truncate`: sync-collection answers carry at most N members plus a 507 on the
//!   request-URI and an intermediate token (RFC 6578 §3.6);
//! - `conflict_on_bad_token`: a rejected sync-token answers 409 instead of Radicale's 403;
//! - `strip_put_etag`: PUT responses carry no ETag (RFC 4791 §5.3.4, sabre/dav, DAViCal);
//! - `partition_home`: `calendar-home-set` is an absolute URL on a second host:port (another
//!   origin, which calsync refuses outside iCloud), as
//!   iCloud's `pNN-caldav.icloud.com` partition hosts are.
//!
//! Everything else is forwarded unchanged, so the data is Radicale's.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// Which quirks to inject.
#[derive(Debug, Clone, Default)]
pub struct Quirks {
    /// Members per sync-collection answer before a 507.
    pub truncate: Option<usize>,
    /// Answer 409 where the upstream rejects a sync-token with 403.
    pub conflict_on_bad_token: bool,
    /// Drop ETag from PUT responses.
    pub strip_put_etag: bool,
    /// Report calendar-home-set as an absolute URL on the second listener.
    pub partition_home: bool,
    /// Answer 403 to a Depth 1 PROPFIND of a calendar's members (`getetag`), as servers
    /// that limit PROPFIND depth on large collections do.
    pub refuse_member_listing: bool,
}

/// What the proxy does to a request it was told to fault ([`QuirkProxy::fail_next`],
/// [`QuirkProxy::stall_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    /// Answer this status with `Retry-After: 0`; nothing reaches the upstream.
    Status(u16),
    /// Answer only after this long (past the client's timeout): when `applied`, the request
    /// reaches the upstream first (a write that happened, its answer lost), otherwise after.
    Stall {
        after: std::time::Duration,
        applied: bool,
    },
}

struct Inner {
    /// Injected faults: `(method, fault, count)`, the first in line applies to the next
    /// requests with that method.
    faults: std::sync::Mutex<std::collections::VecDeque<(String, Injected, usize)>>,
    upstream: String,
    quirks: Quirks,
    partition: String,
    http: reqwest::Client,
    reports: AtomicU32,
    /// Member listings refused ([`Quirks::refuse_member_listing`]).
    refused: AtomicU32,
    /// Members per sync-collection answer set at run time ([`QuirkProxy::truncate_sync_reports`]);
    /// 0: as `quirks.truncate` says.
    truncating: AtomicUsize,
}

/// A running proxy with two listeners (main host and "partition" host); stops when dropped.
pub struct QuirkProxy {
    /// Base URL of the main listener, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Base URL of the partition listener.
    pub partition: String,
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for QuirkProxy {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl QuirkProxy {
    /// Start a proxy to `upstream` (e.g. Radicale's base URL).
    pub async fn start(upstream: &str, quirks: Quirks) -> anyhow::Result<Self> {
        let main = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let part = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", main.local_addr()?);
        let partition = format!("http://{}", part.local_addr()?);
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            quirks,
            partition: partition.clone(),
            http: reqwest::Client::new(),
            reports: AtomicU32::new(0),
            refused: AtomicU32::new(0),
            truncating: AtomicUsize::new(0),
            faults: Default::default(),
        });
        let mut tasks = Vec::new();
        for listener in [main, part] {
            let app = axum::Router::new()
                .fallback(proxy)
                .with_state(inner.clone());
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(Self {
            url,
            partition,
            inner,
            tasks,
        })
    }

    /// The next `count` requests with `method` are answered `status` (e.g. 429, 503, 423)
    /// with `Retry-After: 0`, as a busy server would; nothing reaches the upstream.
    pub fn fail_next(&self, method: &str, status: u16, count: usize) {
        self.inject(method, Injected::Status(status), count);
    }

    /// The next `count` requests with `method` are answered only after `after` (longer than
    /// the client waits, so the client times out). With `applied` each reaches the upstream
    /// at once (a write the server made whose answer never arrives); otherwise it is
    /// forwarded after the stall, when the client has given up.
    pub fn stall_next(
        &self,
        method: &str,
        after: std::time::Duration,
        applied: bool,
        count: usize,
    ) {
        self.inject(method, Injected::Stall { after, applied }, count);
    }

    fn inject(&self, method: &str, fault: Injected, count: usize) {
        self.inner
            .faults
            .lock()
            .expect("fault lock")
            .push_back((method.to_string(), fault, count));
    }

    /// From now on, sync-collection answers carry at most `members` members plus a 507
    /// (RFC 6578 §3.6), until [`Self::clear_faults`].
    pub fn truncate_sync_reports(&self, members: usize) {
        self.inner.truncating.store(members, Ordering::SeqCst);
    }

    /// Drop every injected answer not yet given, and a run-time truncation.
    pub fn clear_faults(&self) {
        self.inner.faults.lock().expect("fault lock").clear();
        self.inner.truncating.store(0, Ordering::SeqCst);
    }

    /// sync-collection REPORTs seen so far.
    pub fn sync_reports(&self) -> u32 {
        self.inner.reports.load(Ordering::SeqCst)
    }

    /// Member listings refused so far ([`Quirks::refuse_member_listing`]).
    pub fn refused_listings(&self) -> u32 {
        self.inner.refused.load(Ordering::SeqCst)
    }
}

async fn forward(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> reqwest::Result<(StatusCode, HeaderMap, String)> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method");
    let mut req = inner
        .http
        .request(m, format!("{}{path}", inner.upstream))
        .body(body);
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            req = req.header(k.as_str(), v.as_bytes());
        }
    }
    let resp = req.send().await?;
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
    let mut out = HeaderMap::new();
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
                axum::http::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                out.insert(k, v);
            }
        }
    }
    Ok((status, out, resp.text().await?))
}

fn respond(status: StatusCode, headers: HeaderMap, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().extend(headers);
    r
}

const QUIRK: &str = "quirk:";

async fn proxy(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let injected = {
        let mut f = inner.faults.lock().expect("fault lock");
        match f.front_mut() {
            Some((m, fault, n)) if m.as_str() == method.as_str() => {
                let fault = *fault;
                *n -= 1;
                if *n == 0 {
                    f.pop_front();
                }
                Some(fault)
            }
            _ => None,
        }
    };
    if let Some(Injected::Stall { after, applied }) = injected {
        // The fault itself is the wait: the client's timeout fires during it.
        if applied {
            let answer = forward(&inner, &method, &uri, &headers, body).await;
            tokio::time::sleep(after).await;
            return match answer {
                Ok((status, h, text)) => respond(status, h, text),
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            };
        }
        tokio::time::sleep(after).await;
        return match forward(&inner, &method, &uri, &headers, body).await {
            Ok((status, h, text)) => respond(status, h, text),
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        };
    }
    if let Some(Injected::Status(status)) = injected {
        let mut r = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "busy",
        )
            .into_response();
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("0"));
        return r;
    }
    if inner.quirks.refuse_member_listing
        && method.as_str() == "PROPFIND"
        && headers.get("depth").is_some_and(|d| d.as_bytes() == b"1")
        && text.contains("getetag")
    {
        inner.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::FORBIDDEN, "depth 1 not allowed here").into_response();
    }
    let is_sync = method.as_str() == "REPORT" && text.contains("sync-collection");
    if is_sync {
        inner.reports.fetch_add(1, Ordering::SeqCst);
    }
    // Decode our intermediate token back to (original token, offset).
    let mut offset = 0usize;
    let mut body = body;
    if is_sync {
        if let Some(token) = between(&text, "sync-token>", "</") {
            if let Some(rest) = token.strip_prefix(QUIRK) {
                if let Some((orig, off)) = rest.rsplit_once(':') {
                    let orig = String::from_utf8(
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(orig)
                            .unwrap_or_default(),
                    )
                    .unwrap_or_default();
                    offset = off.parse().unwrap_or(0);
                    body = Bytes::from(text.replace(token, &orig));
                }
            }
        }
    }
    let original_token = between(&String::from_utf8_lossy(&body), "sync-token>", "</")
        .unwrap_or("")
        .to_string();
    let Ok((status, mut out_headers, resp)) = forward(&inner, &method, &uri, &headers, body).await
    else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if is_sync && status == StatusCode::FORBIDDEN && inner.quirks.conflict_on_bad_token {
        return respond(StatusCode::CONFLICT, out_headers, resp);
    }
    if is_sync && status.as_u16() == 207 {
        let n = match inner.truncating.load(Ordering::SeqCst) {
            0 => inner.quirks.truncate,
            n => Some(n),
        };
        if let Some(n) = n {
            return respond(
                status,
                out_headers,
                truncate(&resp, &original_token, offset, n, uri.path()),
            );
        }
    }
    if method == Method::PUT && inner.quirks.strip_put_etag {
        out_headers.remove("etag");
    }
    if method.as_str() == "PROPFIND"
        && inner.quirks.partition_home
        && resp.contains("calendar-home-set")
    {
        return respond(status, out_headers, partition_home(&resp, &inner.partition));
    }
    respond(status, out_headers, resp)
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

/// Keep members `offset..offset+n` of a multistatus; add a 507 for the request-URI and an
/// intermediate token while more remain.
fn truncate(
    xml: &str,
    original_token: &str,
    offset: usize,
    n: usize,
    request_path: &str,
) -> String {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return xml.to_string();
    };
    let root = doc.root_element();
    let responses: Vec<std::ops::Range<usize>> = root
        .children()
        .filter(|c| c.has_tag_name(("DAV:", "response")))
        .map(|c| c.range())
        .collect();
    let (Some(first), Some(last)) = (responses.first(), responses.last()) else {
        return xml.to_string();
    };
    let kept: String = responses
        .iter()
        .skip(offset)
        .take(n)
        .map(|r| &xml[r.clone()])
        .collect();
    let more = responses.len() > offset + n;
    let mut out = String::new();
    out.push_str(&xml[..first.start]);
    out.push_str(&kept);
    let tail = &xml[last.end..];
    if more {
        let token = format!(
            "{QUIRK}{}:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(original_token.as_bytes()),
            offset + n
        );
        out.push_str(&format!(
            "<D:response xmlns:D=\"DAV:\"><D:href>{request_path}</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>"
        ));
        out.push_str(tail);
        // The token (Radicale writes it before the responses) becomes the intermediate one.
        if let Some(ts) = out.find("sync-token>").map(|i| i + "sync-token>".len()) {
            let te = ts + out[ts..].find("</").unwrap_or(0);
            out.replace_range(ts..te, &token);
        }
    } else {
        out.push_str(tail);
    }
    out
}

/// Rewrite the calendar-home-set href to an absolute URL on the partition host.
fn partition_home(xml: &str, partition: &str) -> String {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return xml.to_string();
    };
    let href = doc
        .descendants()
        .find(|n| n.has_tag_name(("urn:ietf:params:xml:ns:caldav", "calendar-home-set")))
        .and_then(|n| n.children().find(|c| c.has_tag_name(("DAV:", "href"))));
    let Some(href) = href else {
        return xml.to_string();
    };
    let Some(text) = href.text() else {
        return xml.to_string();
    };
    let r = href.range();
    let inner = &xml[r.clone()];
    let replaced = inner.replacen(text, &format!("{partition}{}", text.trim()), 1);
    format!("{}{}{}", &xml[..r.start], replaced, &xml[r.end..])
}
