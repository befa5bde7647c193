//! Push notifications: `events.watch`, `channels.stop` and delivery to the channel address.
//!
//! Held to https://developers.google.com/workspace/calendar/api/guides/push
//! (provider-semantics §1.6): the watch answer is `{kind:"api#channel", id, resourceId,
//! resourceUri, token, expiration}` (expiration in ms, as a string); the first message is
//! `X-Goog-Resource-State: sync` with message number 1, later changes send `exists` with
//! increasing, not necessarily consecutive, message numbers; every message carries
//! `X-Goog-Channel-ID`, `X-Goog-Message-Number`, `X-Goog-Resource-ID`,
//! `X-Goog-Resource-State`, `X-Goog-Resource-URI`, plus `X-Goog-Channel-Expiration` and
//! `X-Goog-Channel-Token` when set; no body. Channels live at most [`MAX_TTL_SECS`].
//! Difference from Google, on purpose: `http://` addresses are accepted (local stack).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{admit, bad_request, gerror, not_found, Inner, Shared};

/// Longest channel life the emulator grants (Google: about a week, seconds).
pub const MAX_TTL_SECS: i64 = 604_800;

/// One channel.
#[derive(Debug, Clone)]
pub struct WatchChannel {
    id: String,
    calendar: String,
    address: String,
    token: Option<String>,
    resource_id: String,
    expiration_ms: i64,
    message_number: u64,
}

/// One delivery attempt, for tests (`GET /emulator/push`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    /// Channel id.
    pub channel_id: String,
    /// `sync` or `exists`.
    pub state: String,
    /// `X-Goog-Message-Number`.
    pub number: u64,
    /// HTTP status the receiver answered (0: not reachable).
    pub status: u16,
}

/// Every delivery attempt, and a counter that waiters watch (no polling).
pub(super) struct PushLog {
    entries: Mutex<Vec<Delivery>>,
    count: tokio::sync::watch::Sender<usize>,
}

impl Default for PushLog {
    fn default() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            count: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl PushLog {
    fn record(&self, d: Delivery) {
        let n = {
            let mut e = self.entries.lock().expect("push log");
            e.push(d);
            e.len()
        };
        self.count.send_replace(n);
    }

    /// Deliveries so far, oldest first.
    pub(super) fn entries(&self) -> Vec<Delivery> {
        self.entries.lock().expect("push log").clone()
    }

    /// Wait until a delivery after the first `after` ones satisfies `pred`; `None` after
    /// `timeout`.
    pub(super) async fn wait_for(
        &self,
        after: usize,
        pred: impl Fn(&Delivery) -> bool,
        timeout: std::time::Duration,
    ) -> Option<Delivery> {
        let mut rx = self.count.subscribe();
        let find = || self.entries().into_iter().skip(after).find(|d| pred(d));
        tokio::time::timeout(timeout, async {
            loop {
                // Subscribed before the first look: a delivery recorded after any look
                // wakes `changed`, so none is missed.
                if let Some(d) = find() {
                    return Some(d);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

fn deliveries(s: &mut Inner) -> Arc<PushLog> {
    s.push_log.clone()
}

fn deliver(log: Arc<PushLog>, ch: &WatchChannel, state: &'static str) {
    let ch = ch.clone();
    tokio::spawn(async move {
        let expires = chrono::DateTime::from_timestamp_millis(ch.expiration_ms)
            .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
            .unwrap_or_default();
        let mut req = reqwest::Client::new()
            .post(&ch.address)
            .header(
                "User-Agent",
                "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
            )
            .header("X-Goog-Channel-ID", &ch.id)
            .header("X-Goog-Message-Number", ch.message_number.to_string())
            .header("X-Goog-Resource-ID", &ch.resource_id)
            .header("X-Goog-Resource-State", state)
            .header(
                "X-Goog-Resource-URI",
                format!(
                    "https://www.googleapis.com/calendar/v3/calendars/{}/events?alt=json",
                    ch.calendar
                ),
            )
            .header("X-Goog-Channel-Expiration", expires)
            .header("Content-Length", "0");
        if let Some(t) = &ch.token {
            req = req.header("X-Goog-Channel-Token", t);
        }
        let status = match req.send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        log.record(Delivery {
            channel_id: ch.id.clone(),
            state: state.into(),
            number: ch.message_number,
            status,
        });
    });
}

/// Each live channel watching `calendar` gets its last message again and then one with an
/// older message number: a duplicate and a reordered delivery, as Google's retries and
/// parallel deliveries produce (receivers must not rely on order or uniqueness). Returns
/// the messages sent.
pub(super) fn redeliver(s: &mut Inner, calendar: &str) -> usize {
    let now = chrono::Utc::now().timestamp_millis();
    let log = deliveries(s);
    let mut sent = 0;
    for ch in s.channels.values() {
        if ch.calendar == calendar && ch.expiration_ms > now {
            deliver(log.clone(), ch, "exists");
            let mut older = ch.clone();
            older.message_number = ch.message_number.saturating_sub(1).max(1);
            deliver(log.clone(), &older, "exists");
            sent += 2;
        }
    }
    sent
}

/// A change in `calendar`: one `exists` message on each live channel watching it.
pub(super) fn notify(s: &mut Inner, calendar: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    let log = deliveries(s);
    let seq = s.seq;
    for ch in s.channels.values_mut() {
        if ch.calendar == calendar && ch.expiration_ms > now {
            // Increasing, not necessarily consecutive (the guide's words).
            ch.message_number += 1 + seq % 2;
            deliver(log.clone(), ch, "exists");
        }
    }
}

/// `POST …/calendars/{calendarId}/events/watch`.
pub(super) async fn watch(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    if !s.calendars.contains_key(&cal) {
        return not_found();
    }
    let Some(id) = b["id"].as_str().filter(|i| !i.is_empty() && i.len() <= 64) else {
        return bad_request("channel id required (at most 64 characters)");
    };
    if !matches!(b["type"].as_str(), Some("web_hook" | "webhook")) {
        return bad_request("type must be web_hook");
    }
    let Some(address) = b["address"].as_str().filter(|a| a.starts_with("http")) else {
        return bad_request("address required");
    };
    let token = b["token"].as_str().map(str::to_string);
    if token.as_ref().is_some_and(|t| t.len() > 256) {
        return bad_request("token longer than 256 characters");
    }
    if s.channels.contains_key(id) {
        return gerror(
            400,
            "push",
            "channelIdNotUnique",
            "Channel id not unique",
            None,
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let ttl = b["params"]["ttl"]
        .as_str()
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(MAX_TTL_SECS)
        .clamp(1, MAX_TTL_SECS);
    let mut expiration_ms = now + ttl * 1000;
    if let Some(e) = b["expiration"]
        .as_str()
        .and_then(|e| e.parse::<i64>().ok())
        .or_else(|| b["expiration"].as_i64())
    {
        expiration_ms = expiration_ms.min(e);
    }
    let ch = WatchChannel {
        id: id.into(),
        calendar: cal.clone(),
        address: address.into(),
        token: token.clone(),
        resource_id: format!("res-{}", uuid::Uuid::new_v4().simple()),
        expiration_ms,
        message_number: 1,
    };
    let log = deliveries(&mut s);
    deliver(log, &ch, "sync");
    s.channels.insert(id.into(), ch.clone());
    Json(json!({
        "kind": "api#channel", "id": ch.id, "resourceId": ch.resource_id,
        "resourceUri": format!("https://www.googleapis.com/calendar/v3/calendars/{cal}/events?alt=json"),
        "token": token, "expiration": expiration_ms.to_string(),
    }))
    .into_response()
}

/// `POST /calendar/v3/channels/stop` with `{id, resourceId}`.
pub(super) async fn stop(
    State(st): State<Shared>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let (Some(id), Some(res)) = (b["id"].as_str(), b["resourceId"].as_str()) else {
        return bad_request("id and resourceId required");
    };
    match s.channels.get(id) {
        Some(ch) if ch.resource_id == res => {
            s.channels.remove(id);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found(),
    }
}

/// `GET /emulator/push`: deliveries so far, and the live channel ids.
pub(super) async fn control_log(State(st): State<Shared>) -> Response {
    let s = st.lock().expect("emulator lock");
    let log = s.push_log.entries();
    let live: Vec<&String> = s.channels.keys().collect();
    Json(json!({"deliveries": log, "channels": live})).into_response()
}
