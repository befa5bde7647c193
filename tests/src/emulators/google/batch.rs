//! The batch endpoint, `POST /batch/calendar/v3` (the discovery document's `batchPath`),
//! held to https://developers.google.com/workspace/calendar/api/guides/batch
//! (provider-semantics §1.5):
//!
//! - the body is `multipart/mixed`; each part is `Content-Type: application/http` with an
//!   optional `Content-ID`, and holds one HTTP request with a path only (no host);
//! - the outer request's headers, except `Content-*`, apply to every call unless the call
//!   sets its own; every call counts against the quota (n calls = n requests);
//! - at most 1000 calls (more: 400); every call must go to the Calendar API (else 400);
//! - the answer is `multipart/mixed`, one part per call in the order of the calls, each a
//!   whole HTTP response, with `Content-ID: <response-…>` echoing the call's id.
//!
//! "The server might perform your calls in any order": the emulator runs them last to first,
//! so a client that relies on the order of calls inside one batch fails its tests.

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;

use super::{bad_request, router, Shared};

/// Most calls in one batch (the guide's limit).
pub const MAX_CALLS: usize = 1000;

struct Part {
    content_id: Option<String>,
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// `multipart/mixed; boundary=…` → the boundary.
fn boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get("content-type")?.to_str().ok()?;
    if !ct.to_ascii_lowercase().starts_with("multipart/mixed") {
        return None;
    }
    ct.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// Headers up to the first empty line, and the rest.
fn split_head(text: &str) -> (Vec<&str>, &str) {
    let text = text.trim_start_matches(['\r', '\n']);
    let (head, rest) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&text[..b], &text[b + 2..]),
        (Some(a), _) => (&text[..a], &text[a + 4..]),
        (None, Some(b)) => (&text[..b], &text[b + 2..]),
        (None, None) => (text, ""),
    };
    (
        head.lines().map(|l| l.trim_end_matches('\r')).collect(),
        rest,
    )
}

fn parse_parts(body: &str, boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut sections = body.split(delimiter.as_str());
    sections.next(); // preamble
    for section in sections {
        if section.starts_with("--") {
            break; // close delimiter
        }
        let (part_headers, inner) = split_head(section);
        let mut content_id = None;
        let mut is_http = false;
        for h in part_headers {
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-type" => is_http = v.trim().starts_with("application/http"),
                    "content-id" => content_id = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        if !is_http {
            return Err("each part must be Content-Type: application/http".into());
        }
        let (request_head, body) = split_head(inner);
        let mut lines = request_head.into_iter();
        let request_line = lines.next().ok_or("a part without a request line")?;
        let mut words = request_line.split_whitespace();
        let method = words
            .next()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or_else(|| format!("bad request line {request_line:?}"))?;
        let target = words
            .next()
            .ok_or_else(|| format!("bad request line {request_line:?}"))?
            .to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        parts.push(Part {
            content_id,
            method,
            target,
            headers,
            body: body.trim_end_matches(['\r', '\n']).to_string(),
        });
    }
    Ok(parts)
}

/// `POST /batch/calendar/v3`.
pub(super) async fn batch(State(st): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let Some(boundary) = boundary(&headers) else {
        return bad_request("batch requests are multipart/mixed with a boundary");
    };
    let parts = match parse_parts(&body, &boundary) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    if parts.is_empty() {
        return bad_request("empty batch");
    }
    if parts.len() > MAX_CALLS {
        return bad_request(&format!("a batch holds at most {MAX_CALLS} calls"));
    }
    if let Some(p) = parts
        .iter()
        .find(|p| !p.target.starts_with("/calendar/v3/"))
    {
        return bad_request(&format!(
            "all calls of a batch go to the Calendar API; got {}",
            p.target
        ));
    }
    let app = router(st.clone());
    let mut answers: Vec<Option<(StatusCode, HeaderMap, String)>> = vec![None; parts.len()];
    for (i, p) in parts.iter().enumerate().rev() {
        let mut req = Request::builder().method(p.method.clone()).uri(&p.target);
        // Outer headers (not Content-*) apply unless the call sets its own.
        for (k, v) in headers.iter() {
            let own = p
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(k.as_str()));
            if !k.as_str().starts_with("content-") && !own {
                req = req.header(k, v);
            }
        }
        for (k, v) in &p.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                req = req.header(k, v);
            }
        }
        let Ok(req) = req.body(Body::from(p.body.clone())) else {
            return bad_request(&format!("bad call {}", p.target));
        };
        let resp = match app.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts_of, body) = resp.into_parts();
        let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
        answers[i] = Some((
            parts_of.status,
            parts_of.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    let out_boundary = format!("batch_{}", uuid::Uuid::new_v4().simple());
    let mut out = String::new();
    for (p, a) in parts.iter().zip(answers) {
        let (status, h, body) = a.expect("every call answered");
        out.push_str(&format!(
            "--{out_boundary}\r\nContent-Type: application/http\r\n"
        ));
        if let Some(id) = &p.content_id {
            let inner = id.trim_start_matches('<').trim_end_matches('>');
            out.push_str(&format!("Content-ID: <response-{inner}>\r\n"));
        }
        out.push_str(&format!(
            "\r\nHTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
        for (k, v) in h.iter() {
            if let Ok(v) = v.to_str() {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!("\r\n{body}\r\n"));
    }
    out.push_str(&format!("--{out_boundary}--\r\n"));
    (
        StatusCode::OK,
        [(
            "content-type",
            format!("multipart/mixed; boundary={out_boundary}"),
        )],
        out,
    )
        .into_response()
}
