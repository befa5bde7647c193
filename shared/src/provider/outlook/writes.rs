//! Writes to Graph: single creates, updates and deletes, `$batch` for several
//! (https://learn.microsoft.com/graph/json-batching), and the follow-up writes of a series
//! (exceptions PATCHed onto their occurrences, cancelled occurrences DELETEd).

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::mapping::{self, GraphSeries};
use super::{Answer, OutlookCalendar};
use crate::ical::EventSeries;
use crate::provider::{ProviderError, Write, WriteOutcome, WriteResult};

/// Requests per `$batch` (the documented maximum).
pub const BATCH_MAX: usize = 20;
/// Items of a batch the service runs at once per mailbox (throttling-limits).
const BATCH_PARALLEL: u32 = 4;

/// The `transactionId` of the create of `uid`: the same on every attempt, so a retried
/// create answers the event it made (provider-semantics §2.5).
pub fn transaction_id(uid: &str) -> String {
    let h = hex::encode(Sha256::digest(uid.as_bytes()));
    format!("calsync-{}", &h[..32])
}

fn if_match<E: AsRef<str> + ?Sized>(etag: Option<&E>) -> Option<String> {
    etag.map(|e| format!("W/\"{}\"", e.as_ref()))
}

fn graph_of(o: &OutlookCalendar, url: &str, ical: &str) -> Result<GraphSeries, ProviderError> {
    let series = EventSeries::parse_single(url, ical).map_err(|e| ProviderError::Rejected {
        url: url.into(),
        status: 422,
        detail: e.to_string(),
    })?;
    mapping::to_graph(&series, o.options()).map_err(|detail| ProviderError::Rejected {
        url: url.into(),
        status: 422,
        detail,
    })
}

/// The outcome of a create/update answer.
fn written(url: &str, href: Option<&str>, a: &Answer) -> Result<WriteResult, ProviderError> {
    match a.status {
        200 | 201 => Ok(WriteResult {
            href: a.body["id"].as_str().or(href).unwrap_or_default().into(),
            etag: a.body["changeKey"]
                .as_str()
                .map(crate::provider::Etag::from),
        }),
        412 => Err(ProviderError::PreconditionFailed(
            href.unwrap_or(url).into(),
        )),
        404 => Err(ProviderError::NotFound(href.unwrap_or(url).into())),
        _ => Err(OutlookCalendar::unexpected(url, a)),
    }
}

/// The event a create of `uid` made earlier, found by our extended property (a create whose
/// answer was lost).
async fn find_created(o: &OutlookCalendar, uid: &str) -> Result<Option<Value>, ProviderError> {
    let filter = format!(
        "singleValueExtendedProperties/Any(ep: ep/id eq '{}' and ep/value eq '{}')",
        mapping::prop_id(mapping::UID_NAME),
        uid.replace('\'', "''")
    );
    let url = format!(
        "{}?$filter={}",
        o.events_url(),
        crate::provider::percent_encode(&filter)
    );
    let a = o.call(Method::GET, &url, None, None).await?;
    if a.status != 200 {
        return Err(OutlookCalendar::unexpected(&url, &a));
    }
    Ok(a.body["value"].as_array().and_then(|v| v.first()).cloned())
}

pub(super) async fn create(
    o: &OutlookCalendar,
    uid: &str,
    ical: &str,
) -> Result<WriteResult, ProviderError> {
    let url = o.events_url();
    let g = graph_of(o, &url, ical)?;
    let mut body = g.master.clone();
    body["transactionId"] = json!(transaction_id(uid));
    let r = match o.call(Method::POST, &url, Some(&body), None).await {
        Ok(a) => written(&url, None, &a)?,
        Err(e @ ProviderError::Unavailable { .. }) => match find_created(o, uid).await? {
            Some(ev) => WriteResult {
                href: ev["id"].as_str().unwrap_or_default().into(),
                etag: ev["changeKey"].as_str().map(crate::provider::Etag::from),
            },
            None => return Err(e),
        },
        Err(e) => return Err(e),
    };
    finish_series(o, r, &g).await
}

pub(super) async fn update(
    o: &OutlookCalendar,
    href: &str,
    ical: &str,
    etag: Option<&str>,
) -> Result<WriteResult, ProviderError> {
    let url = o.event_url_of(href);
    let g = graph_of(o, &url, ical)?;
    let a = o
        .call(
            Method::PATCH,
            &url,
            Some(&g.master),
            if_match(etag).as_deref(),
        )
        .await?;
    let r = written(&url, Some(href), &a)?;
    finish_series(o, r, &g).await
}

pub(super) async fn delete(
    o: &OutlookCalendar,
    href: &str,
    etag: Option<&str>,
) -> Result<(), ProviderError> {
    let url = o.event_url_of(href);
    let a = o
        .call(Method::DELETE, &url, None, if_match(etag).as_deref())
        .await?;
    match a.status {
        200 | 204 | 404 => Ok(()),
        412 => Err(ProviderError::PreconditionFailed(href.to_string())),
        _ => Err(OutlookCalendar::unexpected(&url, &a)),
    }
}

/// After the master of a series is written: PATCH each exception onto its occurrence, reset
/// exceptions the series no longer has, DELETE cancelled occurrences; the version is then
/// the master's changeKey as it stands.
async fn finish_series(
    o: &OutlookCalendar,
    r: WriteResult,
    g: &GraphSeries,
) -> Result<WriteResult, ProviderError> {
    if g.master.get("recurrence").is_none_or(|v| v.is_null()) {
        return Ok(r);
    }
    let starts: Vec<DateTime<Utc>> = g
        .exceptions
        .iter()
        .map(|(t, _)| *t)
        .chain(g.cancelled.iter().copied())
        .collect();
    let day = chrono::Duration::days(1);
    let (from, to) = match (starts.iter().min(), starts.iter().max()) {
        (Some(a), Some(b)) => (*a - day, *b + day),
        _ => return Ok(r),
    };
    let instances = o.instances(&r.href, from, to).await?;
    let start_of = |i: &Value| {
        i["originalStart"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let all_day = g.master["isAllDay"].as_bool().unwrap_or(false);
    let same = |a: DateTime<Utc>, b: DateTime<Utc>| {
        if all_day {
            a.date_naive() == b.date_naive()
        } else {
            a == b
        }
    };
    let mut calls: Vec<(Method, String, Option<Value>)> = Vec::new();
    for (t, body) in &g.exceptions {
        if let Some(i) = instances
            .iter()
            .find(|i| start_of(i).is_some_and(|s| same(s, *t)))
        {
            calls.push((
                Method::PATCH,
                o.event_path(i["id"].as_str().unwrap_or_default()),
                Some(body.clone()),
            ));
        }
    }
    for i in instances.iter().filter(|i| i["type"] == "exception") {
        let Some(t) = start_of(i) else { continue };
        if g.exceptions.iter().any(|(e, _)| same(*e, t)) || g.cancelled.iter().any(|c| same(*c, t))
        {
            continue;
        }
        // An exception the hub no longer has: back to the series' own values.
        let mut reset = json!({});
        for k in [
            "subject",
            "body",
            "location",
            "categories",
            "showAs",
            "sensitivity",
            "isReminderOn",
        ] {
            if let Some(v) = g.master.get(k) {
                reset[k] = v.clone();
            }
        }
        if let (Some(s), Some(e)) = (
            mapping::utc_of(&g.master["start"]),
            mapping::utc_of(&g.master["end"]),
        ) {
            let dur = e - s;
            let zone = g.master["start"]["timeZone"].clone();
            let tz = mapping::read_zone(zone.as_str().unwrap_or("UTC")).unwrap_or(chrono_tz::UTC);
            let fmt = |x: DateTime<Utc>| {
                x.with_timezone(&tz)
                    .naive_local()
                    .format("%Y-%m-%dT%H:%M:%S.0000000")
                    .to_string()
            };
            reset["start"] = json!({"dateTime": fmt(t), "timeZone": zone});
            if let Some(end) = t.checked_add_signed(dur) {
                reset["end"] = json!({"dateTime": fmt(end), "timeZone": zone});
            }
        }
        calls.push((
            Method::PATCH,
            o.event_path(i["id"].as_str().unwrap_or_default()),
            Some(reset),
        ));
    }
    for c in &g.cancelled {
        if let Some(i) = instances
            .iter()
            .find(|i| start_of(i).is_some_and(|s| same(s, *c)))
        {
            calls.push((
                Method::DELETE,
                o.event_path(i["id"].as_str().unwrap_or_default()),
                None,
            ));
        }
    }
    if calls.is_empty() {
        return Ok(r);
    }
    let answers = batch(o, &calls, &[]).await?;
    for (a, (m, path, _)) in answers.iter().zip(&calls) {
        let ok = a.status < 300 || (*m == Method::DELETE && a.status == 404);
        if !ok {
            return Err(ProviderError::Rejected {
                url: format!("{}{path}", o.api()),
                status: a.status,
                detail: format!(
                    "an occurrence of the series was refused: {} {}",
                    a.body["error"]["code"].as_str().unwrap_or(""),
                    a.body["error"]["message"].as_str().unwrap_or("")
                ),
            });
        }
    }
    let etag = o
        .get(&r.href)
        .await?
        .and_then(|m| m["changeKey"].as_str().map(crate::provider::Etag::from));
    Ok(WriteResult { href: r.href, etag })
}

/// Send `calls` (method, path under the API root, body) through `$batch`, 20 per request;
/// items answered 429/503/504 are sent again after the largest `Retry-After` among them.
/// `if_match[i]`, when given, is item i's `If-Match`. Answers in call order.
///
/// Errors: a batch envelope that fails as a whole.
pub(super) async fn batch(
    o: &OutlookCalendar,
    calls: &[(Method, String, Option<Value>)],
    if_match: &[Option<String>],
) -> Result<Vec<Answer>, ProviderError> {
    let mut out: Vec<Option<Answer>> = (0..calls.len()).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..calls.len()).collect();
    let mut delays = o.backoff();
    let url = format!("{}/$batch", o.api());
    while !pending.is_empty() {
        let mut busy = Vec::new();
        let mut wait = None;
        for chunk in pending.chunks(BATCH_MAX) {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|i| {
                    let (m, path, body) = &calls[*i];
                    let mut r = json!({"id": i.to_string(), "method": m.as_str(), "url": path});
                    let mut headers = serde_json::Map::new();
                    if let Some(b) = body {
                        r["body"] = b.clone();
                        headers.insert("Content-Type".into(), json!("application/json"));
                    }
                    if let Some(Some(e)) = if_match.get(*i) {
                        headers.insert("If-Match".into(), json!(e));
                    }
                    if !headers.is_empty() {
                        r["headers"] = Value::Object(headers);
                    }
                    r
                })
                .collect();
            o.count_batch();
            let a = o
                .call_n(
                    Method::POST,
                    &url,
                    Some(&json!({"requests": requests})),
                    None,
                    BATCH_PARALLEL,
                )
                .await?;
            if a.status != 200 {
                return Err(OutlookCalendar::unexpected(&url, &a));
            }
            for r in a.body["responses"].as_array().into_iter().flatten() {
                let Some(i) = r["id"]
                    .as_str()
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|i| chunk.contains(i))
                else {
                    continue;
                };
                let status = r["status"].as_u64().unwrap_or(500) as u16;
                if super::retryable(status) {
                    let ra = r["headers"]["Retry-After"]
                        .as_str()
                        .or(r["headers"]["retry-after"].as_str())
                        .and_then(|v| v.parse::<u64>().ok());
                    wait = wait.max(ra);
                    busy.push(i);
                } else {
                    out[i] = Some(Answer {
                        status,
                        body: r["body"].clone(),
                    });
                }
            }
        }
        if busy.is_empty() {
            break;
        }
        match o.next_delay(&mut delays) {
            Some(d) => {
                let d = wait
                    .map(std::time::Duration::from_secs)
                    .map(|w| w.min(o.max_delay()))
                    .unwrap_or(d);
                tracing::info!(
                    calls = busy.len(),
                    delay_ms = d.as_millis() as u64,
                    "Graph throttled items of a batch; waiting"
                );
                tokio::time::sleep(d).await;
            }
            None => {
                for i in &busy {
                    out[*i] = Some(Answer {
                        status: 503,
                        body: json!({"error": {"code": "serviceNotAvailable", "message": "still throttled after retries"}}),
                    });
                }
                busy.clear();
            }
        }
        pending = busy;
    }
    Ok(out
        .into_iter()
        .map(|a| a.unwrap_or(Answer { status: 502, body: json!({"error": {"code": "noAnswer", "message": "the batch gave no answer for this item"}}) }))
        .collect())
}

/// Several writes: the single requests of every write in `$batch` requests of 20, then the
/// follow-up writes of series one by one.
pub(super) async fn write_all(o: &OutlookCalendar, writes: &[Write<'_>]) -> Vec<WriteOutcome> {
    let mut out: Vec<Option<WriteOutcome>> = (0..writes.len()).map(|_| None).collect();
    let mut calls = Vec::new();
    let mut matches = Vec::new();
    let mut owner = Vec::new();
    let mut series: Vec<Option<GraphSeries>> = (0..writes.len()).map(|_| None).collect();
    for (n, w) in writes.iter().enumerate() {
        match *w {
            Write::Create { uid, ical } => match graph_of(o, &o.events_url(), ical) {
                Ok(g) => {
                    let mut body = g.master.clone();
                    body["transactionId"] = json!(transaction_id(uid));
                    calls.push((Method::POST, o.calendar_path(), Some(body)));
                    matches.push(None);
                    owner.push(n);
                    series[n] = Some(g);
                }
                Err(e) => out[n] = Some(Err(e)),
            },
            Write::Update { href, ical, etag } => match graph_of(o, &o.event_url_of(href), ical) {
                Ok(g) => {
                    calls.push((Method::PATCH, o.event_path(href), Some(g.master.clone())));
                    matches.push(if_match(etag));
                    owner.push(n);
                    series[n] = Some(g);
                }
                Err(e) => out[n] = Some(Err(e)),
            },
            Write::Delete { href, etag } => {
                calls.push((Method::DELETE, o.event_path(href), None));
                matches.push(if_match(etag));
                owner.push(n);
            }
        }
    }
    if calls.len() == 1 {
        // One write: a plain request is one request too, and simpler to read in logs.
        let n = owner[0];
        let r = match writes[n] {
            Write::Create { uid, ical } => create(o, uid, ical).await.map(Some),
            Write::Update { href, ical, etag } => update(o, href, ical, etag.map(|e| e.as_str()))
                .await
                .map(Some),
            Write::Delete { href, etag } => delete(o, href, etag.map(|e| e.as_str()))
                .await
                .map(|()| None),
        };
        out[n] = Some(r);
    } else if !calls.is_empty() {
        match batch(o, &calls, &matches).await {
            Err(e) => {
                for n in &owner {
                    out[*n] = Some(Err(e.clone()));
                }
            }
            Ok(answers) => {
                for (k, a) in answers.into_iter().enumerate() {
                    let n = owner[k];
                    let url = format!("{}{}", o.api(), calls[k].1);
                    let r = match writes[n] {
                        Write::Delete { href, .. } => match a.status {
                            200 | 204 | 404 => Ok(None),
                            412 => Err(ProviderError::PreconditionFailed(href.to_string())),
                            _ => Err(OutlookCalendar::unexpected(&url, &a)),
                        },
                        Write::Update { href, .. } => written(&url, Some(href), &a).map(Some),
                        Write::Create { .. } => written(&url, None, &a).map(Some),
                    };
                    let r = match (r, series[n].as_ref()) {
                        (Ok(Some(w)), Some(g)) => finish_series(o, w, g).await.map(Some),
                        (r, _) => r,
                    };
                    out[n] = Some(r);
                }
            }
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ProviderError::Protocol {
                    url: o.api().into(),
                    detail: "a write without its result".into(),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn transaction_ids_are_stable_per_uid() {
        let a = super::transaction_id("uid-1");
        assert_eq!(a, super::transaction_id("uid-1"));
        assert_ne!(a, super::transaction_id("uid-2"));
        assert!(a.len() <= 40);
    }
}
