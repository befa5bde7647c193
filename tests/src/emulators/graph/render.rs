//! How the Graph emulator answers an item: the response zone, `@odata.etag`, text bodies,
//! expanded extended properties and extensions; and OData's quoted strings.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::recurrence::{graph_text, instant};
use super::{preferences, response_zone};

/// An item as a response shows it: times in the response zone (all-day events keep their
/// dates), `@odata.etag`, text body when asked for, extended properties and extensions only
/// when expanded.
pub(crate) fn render(
    ev: &Value,
    headers: &HeaderMap,
    expand: Option<&str>,
) -> Result<Value, Response> {
    let (zname, tz) = response_zone(headers)?;
    let text_body = preferences(headers)
        .get("outlook.body-content-type")
        .is_some_and(|v| v.eq_ignore_ascii_case("text"));
    let mut o = ev.clone();
    let all_day = ev["isAllDay"].as_bool().unwrap_or(false);
    for k in ["start", "end"] {
        let v = &ev[k];
        let shown = if all_day {
            json!({"dateTime": v["dateTime"], "timeZone": zname})
        } else {
            match instant(v) {
                Some(t) => {
                    json!({"dateTime": graph_text(t.with_timezone(&tz).naive_local()), "timeZone": zname})
                }
                None => v.clone(),
            }
        };
        o[k] = shown;
    }
    if text_body && o["body"]["contentType"] == "html" {
        let html = o["body"]["content"].as_str().unwrap_or("").to_string();
        o["body"] = json!({"contentType": "text", "content": strip_tags(&html)});
    }
    let obj = o.as_object_mut().expect("object");
    let props = obj.remove("singleValueExtendedProperties");
    let exts = obj.remove("extensions");
    if let Some(ex) = expand {
        let wanted = quoted(ex);
        if ex.starts_with("singleValueExtendedProperties") {
            let list: Vec<Value> = props
                .and_then(|p| p.as_object().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter(|(id, _)| {
                    wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(id))
                })
                .map(|(id, v)| json!({"id": id, "value": v}))
                .collect();
            obj.insert("singleValueExtendedProperties".into(), json!(list));
        } else if ex.starts_with("extensions") {
            let list: Vec<Value> = exts
                .and_then(|p| p.as_object().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter(|(id, _)| wanted.is_empty() || wanted.contains(id))
                .map(|(_, v)| v)
                .collect();
            obj.insert("extensions".into(), json!(list));
        }
    }
    let ck = obj
        .get("changeKey")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    obj.insert("@odata.etag".into(), json!(format!("W/\"{ck}\"")));
    Ok(o)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// The quoted strings of an OData expression (`''` is a quote inside one).
pub(crate) fn quoted(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match (&mut cur, c) {
            (None, '\'') => cur = Some(String::new()),
            (Some(s), '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                s.push('\'');
            }
            (Some(_), '\'') => out.push(cur.take().expect("open string")),
            (Some(s), c) => s.push(c),
            (None, _) => {}
        }
    }
    out
}
