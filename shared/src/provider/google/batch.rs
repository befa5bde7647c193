//! The batch wire format (https://developers.google.com/workspace/calendar/api/guides/batch,
//! provider-semantics §1.5): up to [`MAX_CALLS`] calls in one `multipart/mixed` request to
//! the discovery document's `batchPath` (`/batch/calendar/v3`). Each part is
//! `Content-Type: application/http` with a `Content-ID`, holding one HTTP request with a path
//! only; the answer holds one whole HTTP response per call, in the order of the calls, with
//! `Content-ID: <response-…>`. The server may run the calls in any order, so calls that
//! depend on each other go in separate batches. Each call counts against the quota.

use reqwest::Method;
use serde_json::Value;

/// Most calls in one batch request (the guide's limit).
pub const MAX_CALLS: usize = 1000;

/// One call of a batch.
#[derive(Debug, Clone)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL of the call (its path and query go into the part).
    pub url: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
    /// `If-Match` value.
    pub if_match: Option<String>,
}

impl Call {
    /// A call to `url` with `query`.
    pub fn new(
        method: Method,
        url: String,
        query: &[(&str, &str)],
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Self {
        Self {
            method,
            url,
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
            if_match: if_match.map(str::to_string),
        }
    }
}

/// The batch endpoint for an API root: `https://www.googleapis.com/calendar/v3` →
/// `https://www.googleapis.com/batch/calendar/v3`. `None` when `api` is not an absolute URL.
pub fn batch_url(api: &str) -> Option<String> {
    let u = reqwest::Url::parse(api).ok()?;
    let origin = u.origin().ascii_serialization();
    Some(format!("{origin}/batch{}", u.path().trim_end_matches('/')))
}

/// The `multipart/mixed` body for `calls`, parts named `<item{i}>` (`i` from 0).
pub fn encode(calls: &[&Call], boundary: &str) -> String {
    let mut out = String::new();
    for (i, c) in calls.iter().enumerate() {
        let mut u = reqwest::Url::parse(&c.url).ok();
        let target = match u.as_mut() {
            Some(u) => {
                if !c.query.is_empty() {
                    u.query_pairs_mut().extend_pairs(c.query.iter());
                }
                match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                }
            }
            None => c.url.clone(),
        };
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <item{i}>\r\n\r\n{} {target} HTTP/1.1\r\n",
            c.method
        ));
        if let Some(m) = &c.if_match {
            out.push_str(&format!("If-Match: {m}\r\n"));
        }
        match &c.body {
            Some(b) => out.push_str(&format!(
                "Content-Type: application/json; charset=UTF-8\r\n\r\n{b}\r\n"
            )),
            None => out.push_str("\r\n"),
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
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

/// The answers of a batch of `n` calls from its `Content-Type` and body: `(status, JSON
/// body)` per call, in call order (matched by `Content-ID`, else by position).
///
/// Errors: not multipart, a part without a status line, or not exactly `n` answers.
pub fn decode(content_type: &str, body: &str, n: usize) -> Result<Vec<(u16, Value)>, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_string())
        .ok_or_else(|| format!("batch answer is not multipart: {content_type:?}"))?;
    let delimiter = format!("--{boundary}");
    let mut out: Vec<Option<(u16, Value)>> = vec![None; n];
    let mut sections = body.split(delimiter.as_str());
    sections.next();
    for (pos, section) in sections.enumerate() {
        if section.starts_with("--") {
            break;
        }
        let (part_headers, inner) = split_head(section);
        let index = part_headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-id"))
            .and_then(|(_, v)| {
                v.trim()
                    .trim_start_matches("<response-item")
                    .trim_end_matches('>')
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(pos);
        let (response_head, json) = split_head(inner);
        let status = response_head
            .first()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("batch part {pos} has no status line"))?;
        let json = json.trim();
        let value = if json.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_string()))
        };
        let slot = out
            .get_mut(index)
            .ok_or_else(|| format!("batch answer names call {index} of {n}"))?;
        *slot = Some((status, value));
    }
    out.into_iter()
        .enumerate()
        .map(|(i, a)| a.ok_or_else(|| format!("batch answer lacks call {i}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_url_of_the_api_root() {
        assert_eq!(
            batch_url("https://www.googleapis.com/calendar/v3").as_deref(),
            Some("https://www.googleapis.com/batch/calendar/v3")
        );
        assert_eq!(
            batch_url("http://127.0.0.1:4000/calendar/v3/").as_deref(),
            Some("http://127.0.0.1:4000/batch/calendar/v3")
        );
    }

    #[test]
    fn parts_carry_path_query_if_match_and_body() {
        let a = Call::new(
            Method::PUT,
            "https://www.googleapis.com/calendar/v3/calendars/a%40b.c/events/e1".into(),
            &[("sendUpdates", "none")],
            Some(json!({"summary": "x"})),
            Some("\"3\""),
        );
        let b = Call::new(
            Method::DELETE,
            "https://www.googleapis.com/calendar/v3/calendars/a%40b.c/events/e2".into(),
            &[],
            None,
            None,
        );
        let text = encode(&[&a, &b], "B");
        assert_eq!(
            text,
            "--B\r\nContent-Type: application/http\r\nContent-ID: <item0>\r\n\r\n\
PUT /calendar/v3/calendars/a%40b.c/events/e1?sendUpdates=none HTTP/1.1\r\nIf-Match: \"3\"\r\n\
Content-Type: application/json; charset=UTF-8\r\n\r\n{\"summary\":\"x\"}\r\n\
--B\r\nContent-Type: application/http\r\nContent-ID: <item1>\r\n\r\n\
DELETE /calendar/v3/calendars/a%40b.c/events/e2 HTTP/1.1\r\n\r\n--B--\r\n"
        );
    }

    #[test]
    fn answers_in_call_order_by_content_id() {
        // The guide's shape; parts deliberately out of order.
        let body = "--batch_x\r\nContent-Type: application/http\r\nContent-ID: <response-item1>\r\n\r\n\
HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n\r\n\
--batch_x\r\nContent-Type: application/http\r\nContent-ID: <response-item0>\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\nETag: \"7\"\r\n\r\n{\"id\": \"e1\"}\r\n\
--batch_x--\r\n";
        let answers = decode("multipart/mixed; boundary=batch_x", body, 2).expect("decodes");
        assert_eq!(
            answers,
            vec![(200, json!({"id": "e1"})), (204, Value::Null)]
        );
        assert!(decode("multipart/mixed; boundary=batch_x", body, 3).is_err());
        assert!(decode("application/json", "{}", 1).is_err());
    }
}
