//! Change-notification subscriptions of the Graph emulator
//! (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks,
//! …/change-notifications-lifecycle-events, …/api/resources/subscription; provider-semantics
//! §2.8):
//!
//! - `POST /v1.0/subscriptions`: the notification URL (and the lifecycle URL) must answer
//!   `POST <url>?validationToken=<token>` with 200 `text/plain` and exactly the decoded token
//!   within [`super::Config::validation_timeout`], else 400 and nothing is created;
//!   `expirationDateTime` in the future and within the maximum lifetime; `clientState` at most
//!   128 characters.
//! - `PATCH /v1.0/subscriptions/{id}` renews, `DELETE` removes, `POST …/reauthorize`.
//! - Each change to an event of a subscribed calendar is delivered, in order, as
//!   `{"value":[{subscriptionId, subscriptionExpirationDateTime, changeType, resource,
//!   resourceData, clientState, tenantId}]}`; expired subscriptions deliver nothing.
//! - Control: `POST /emulator/subscriptions/{id}/lifecycle {"event"}` delivers a lifecycle
//!   notification (`reauthorizationRequired`, `subscriptionRemoved` — which also removes the
//!   subscription — or `missed`) and answers the status the receiver gave.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{bad_request, not_found, Inner, Shared};

/// Tenant id in notifications.
pub const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";

#[derive(Debug, Clone)]
pub(crate) struct Sub {
    id: String,
    resource: String,
    cal: String,
    change_types: Vec<String>,
    url: String,
    lifecycle_url: Option<String>,
    client_state: Option<String>,
    expires: DateTime<Utc>,
}

impl Sub {
    fn json(&self) -> Value {
        json!({"id": self.id, "resource": self.resource, "changeType": self.change_types.join(","),
            "notificationUrl": self.url, "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": self.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "clientState": self.client_state, "applicationId": "24d3b144-21ae-4080-943f-7067b395b913",
            "creatorId": "8ee44408-0679-472c-bc2a-692812af3437", "latestSupportedTlsVersion": "v1_2"})
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    /// Subscription.
    pub subscription_id: String,
    /// `created` / `updated` / `deleted`, or the lifecycle event.
    pub kind: String,
    /// Event id (change notifications).
    pub event_id: Option<String>,
    /// What the receiver answered (`None`: unreachable).
    pub status: Option<u16>,
}

struct Outgoing {
    sub: String,
    kind: String,
    event_id: String,
    url: String,
    body: Value,
}

/// Subscriptions and their delivery queue.
pub(crate) struct Subs {
    map: BTreeMap<String, Sub>,
    pub log: Vec<Delivery>,
    tx: Option<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    seen: tokio::sync::watch::Sender<usize>,
}

impl Default for Subs {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            log: Vec::new(),
            tx: None,
            seen: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Subs {
    /// A receiver woken by every delivery.
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<usize> {
        self.seen.subscribe()
    }

    fn record(&mut self, d: Delivery) {
        self.log.push(d);
        self.seen.send_replace(self.log.len());
    }

    /// Live subscriptions (id, expiry).
    pub(crate) fn list(&self) -> Vec<(String, DateTime<Utc>)> {
        self.map
            .values()
            .map(|s| (s.id.clone(), s.expires))
            .collect()
    }
}

/// The calendar a subscription resource names: `/me/calendars/{id}/events`,
/// `/users/{user}/calendars/{id}/events`, or `me/events` (the default calendar).
fn calendar_of(s: &Inner, resource: &str) -> Option<String> {
    let r = resource.trim_start_matches('/');
    let parts: Vec<&str> = r.split('/').collect();
    match parts.as_slice() {
        ["me", "events"] => Some(super::DEFAULT_CALENDAR_ID.to_string()),
        ["me", "calendars", id, "events"] | ["users", _, "calendars", id, "events"] => {
            s.calendars.contains_key(*id).then(|| id.to_string())
        }
        _ => None,
    }
}

/// An event of `cal` changed: queue a notification for each live subscription on it.
pub(crate) fn changed(s: &mut Inner, cal: &str, id: &str, change: &str) {
    let now = Utc::now();
    if s.subs.tx.is_none() {
        return;
    }
    let etag = s.calendars[cal]
        .items
        .get(id)
        .map(|i| format!("W/\"{}\"", i.resource["changeKey"].as_str().unwrap_or("")));
    let out: Vec<Outgoing> = s
        .subs
        .map
        .values()
        .filter(|sub| {
            sub.cal == cal && sub.expires > now && sub.change_types.iter().any(|c| c == change)
        })
        .map(|sub| {
            let resource = format!("Users/{}/Events/{id}", super::events::OWNER.1);
            Outgoing {
                sub: sub.id.clone(),
                kind: change.into(),
                event_id: id.into(),
                url: sub.url.clone(),
                body: json!({"value": [{
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": sub.expires.to_rfc3339(),
                    "changeType": change, "resource": resource, "clientState": sub.client_state,
                    "tenantId": TENANT,
                    "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                        "@odata.etag": etag, "id": id},
                }]}),
            }
        })
        .collect();
    if let Some(tx) = &s.subs.tx {
        for o in out {
            let _ = tx.send(o);
        }
    }
}

/// Start the delivery loop of `st` (one POST at a time, in order).
pub(crate) fn start_delivery(st: &Shared) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
    st.lock().expect("emulator lock").subs.tx = Some(tx);
    let st = st.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .expect("client");
        while let Some(o) = rx.recv().await {
            let status = http
                .post(&o.url)
                .json(&o.body)
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16());
            st.lock().expect("emulator lock").subs.record(Delivery {
                subscription_id: o.sub,
                kind: o.kind,
                event_id: Some(o.event_id),
                status,
            });
        }
    })
}

/// The validation handshake: `POST <url>?validationToken=<token>`, 200 with the token.
async fn validate(url: &str, timeout: std::time::Duration) -> bool {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return false;
    };
    u.query_pairs_mut().append_pair("validationToken", &token);
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client");
    match http
        .post(u)
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
    {
        Ok(r) if r.status() == StatusCode::OK => {
            let plain = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain"));
            plain && r.text().await.is_ok_and(|t| t == token)
        }
        _ => false,
    }
}

fn expiry(s: &Inner, v: &Value) -> Result<DateTime<Utc>, Response> {
    let t = v
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            bad_request(
                "ExtensionError",
                "expirationDateTime is required (ISO 8601).",
            )
        })?;
    let max = Utc::now() + chrono::Duration::minutes(s.config.max_subscription_minutes);
    if t <= Utc::now() || t > max + chrono::Duration::minutes(1) {
        return Err(bad_request(
            "ExtensionError",
            &format!(
                "Subscription expiration can only be {} minutes in the future.",
                s.config.max_subscription_minutes
            ),
        ));
    }
    Ok(t)
}

pub(crate) async fn create(State(st): State<Shared>, Json(b): Json<Value>) -> Response {
    let (sub, timeout) = {
        let s = st.lock().expect("emulator lock");
        let resource = b["resource"].as_str().unwrap_or("").to_string();
        let Some(cal) = calendar_of(&s, &resource) else {
            return bad_request(
                "InvalidRequest",
                "The resource is not one that supports subscriptions.",
            );
        };
        let expires = match expiry(&s, &b["expirationDateTime"]) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let client_state = b["clientState"].as_str().map(str::to_string);
        if client_state.as_ref().is_some_and(|c| c.len() > 128) {
            return bad_request(
                "InvalidRequest",
                "clientState is limited to 128 characters.",
            );
        }
        let change_types: Vec<String> = b["changeType"]
            .as_str()
            .unwrap_or("")
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        if change_types
            .iter()
            .any(|c| !matches!(c.as_str(), "created" | "updated" | "deleted"))
        {
            return bad_request(
                "InvalidRequest",
                "changeType must be created, updated and/or deleted.",
            );
        }
        let Some(url) = b["notificationUrl"]
            .as_str()
            .filter(|u| u.starts_with("http"))
        else {
            return bad_request("InvalidRequest", "notificationUrl is required.");
        };
        (
            Sub {
                id: uuid::Uuid::new_v4().to_string(),
                resource,
                cal,
                change_types,
                url: url.into(),
                lifecycle_url: b["lifecycleNotificationUrl"].as_str().map(str::to_string),
                client_state,
                expires,
            },
            s.config.validation_timeout,
        )
    };
    let mut urls = vec![sub.url.clone()];
    urls.extend(sub.lifecycle_url.clone());
    for u in &urls {
        if !validate(u, timeout).await {
            return bad_request(
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            );
        }
    }
    let body = sub.json();
    st.lock()
        .expect("emulator lock")
        .subs
        .map
        .insert(sub.id.clone(), sub);
    (StatusCode::CREATED, Json(body)).into_response()
}

pub(crate) async fn list(State(st): State<Shared>) -> Response {
    let s = st.lock().expect("emulator lock");
    let value: Vec<Value> = s.subs.map.values().map(Sub::json).collect();
    Json(json!({"value": value})).into_response()
}

pub(crate) async fn renew(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let t = match expiry(&s, &b["expirationDateTime"]) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Some(sub) = s.subs.map.get_mut(&id) else {
        return not_found();
    };
    sub.expires = t;
    Json(sub.json()).into_response()
}

pub(crate) async fn delete(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    match st.lock().expect("emulator lock").subs.map.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found(),
    }
}

pub(crate) async fn reauthorize(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    match st.lock().expect("emulator lock").subs.map.contains_key(&id) {
        true => StatusCode::OK.into_response(),
        false => not_found(),
    }
}

pub(crate) async fn control_lifecycle(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let event = b["event"].as_str().unwrap_or("").to_string();
    if !matches!(
        event.as_str(),
        "reauthorizationRequired" | "subscriptionRemoved" | "missed"
    ) {
        return bad_request(
            "InvalidRequest",
            "event must be reauthorizationRequired, subscriptionRemoved or missed",
        );
    }
    let sub = {
        let mut s = st.lock().expect("emulator lock");
        let sub = match s.subs.map.get(&id) {
            Some(sub) => sub.clone(),
            None => return not_found(),
        };
        if event == "subscriptionRemoved" {
            s.subs.map.remove(&id);
        }
        sub
    };
    let Some(url) = sub.lifecycle_url.clone() else {
        return bad_request(
            "InvalidRequest",
            "the subscription has no lifecycleNotificationUrl",
        );
    };
    let body = json!({"value": [{"subscriptionId": sub.id, "subscriptionExpirationDateTime": sub.expires.to_rfc3339(),
        "tenantId": TENANT, "clientState": sub.client_state, "lifecycleEvent": event}]});
    let status = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());
    st.lock().expect("emulator lock").subs.record(Delivery {
        subscription_id: sub.id,
        kind: event,
        event_id: None,
        status,
    });
    Json(json!({"status": status})).into_response()
}

pub(crate) async fn control_deliveries(State(st): State<Shared>) -> Response {
    Json(json!(st.lock().expect("emulator lock").subs.log)).into_response()
}
