//! Google Calendar API v3 emulator.
//!
//! Built to the documented behaviour (`../shared/docs/provider-semantics.md` §1; discovery
//! document `calendar.v3.json`; https://developers.google.com/workspace/calendar/api/guides/sync,
//! …/guides/errors, …/guides/version-resources, …/guides/recurringevents, …/guides/batch,
//! …/guides/push):
//!
//! - `GET  /calendar/v3/users/me/calendarList`
//! - `GET  /calendar/v3/calendars/{calendarId}/events` — `maxResults` (1–2500, default 250),
//!   `pageToken`, `syncToken`, `showDeleted`, `singleEvents`, `iCalUID`; opaque page and sync
//!   tokens; pages may be short (see [`Config::page_cap`]); exactly one of `nextPageToken` /
//!   `nextSyncToken` per page; parameters forbidden with `syncToken` → 400; expired or
//!   garbage token → 410 `fullSyncRequired` with the documented body; incremental results
//!   carry cancelled events with only the documented fields.
//! - `POST …/events` (insert: client-chosen ids, base32hex 5–1024, 409 `duplicate`;
//!   `start`/`end` required) and `POST …/events/import` (keyed by `iCalUID`).
//! - `GET | PUT | PATCH | DELETE …/events/{eventId}` — etags change on every write;
//!   `If-Match` → 412 `conditionNotMet`; `If-None-Match` on GET → 304; delete of a deleted
//!   event → 410 `deleted`; PATCH merges objects, replaces arrays, `null` removes a key.
//!   Instance ids `<masterId>_<start>` of instances the rule generates ([`recurrence`]).
//! - `GET …/events/{eventId}/instances`; `POST /batch/calendar/v3` ([`batch`]);
//!   `POST …/events/watch` and `/channels/stop` with real deliveries ([`push`]).
//! - The `sendUpdates` value of every write is recorded (`GET /emulator/sends`).
//! - Per-user per-minute quota → 403 `userRateLimitExceeded` or 429 `rateLimitExceeded`.
//! - Fault injection (`POST /emulator/faults`): `{"status": S, "count": N}` — the next N API
//!   calls answer S; `{"delay_ms": D, "count": N}` — the next N API calls answer D ms late.
//! - Test setup: `POST /emulator/calendars`, `POST /emulator/calendars/{id}/expire-sync-tokens`.
//! - OAuth 2.0 consent and token endpoints: see [`oauth`]. With
//!   [`Config::require_issued_tokens`] the API accepts only unexpired access tokens issued
//!   by the token endpoint (401 `authError` otherwise).
//!
//! Not emulated (answered with 400, never silently ignored): the list filters
//! `timeMin`/`timeMax`/`updatedMin`/`q`/`orderBy`/`*ExtendedProperty`.

// Handlers return the finished HTTP response as their error; it is built once per request.
#![allow(clippy::result_large_err)]

pub mod batch;
pub mod oauth;
pub mod push;
pub mod recurrence;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// At most this many items per page, whatever `maxResults` asks (short pages are allowed
    /// by the API and clients must follow `nextPageToken`).
    pub page_cap: usize,
    /// Requests per user (bearer token) per minute before quota errors.
    pub quota_per_minute: usize,
    /// Answer quota errors with 429 instead of 403 `userRateLimitExceeded`.
    pub quota_with_429: bool,
    /// Accept only access tokens issued by the token endpoint (else any bearer token).
    pub require_issued_tokens: bool,
    /// `expires_in` of issued access tokens, in seconds (Google: about 3600).
    pub access_token_lifetime_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            page_cap: 2500,
            quota_per_minute: 600,
            quota_with_429: false,
            require_issued_tokens: false,
            access_token_lifetime_secs: 3599,
        }
    }
}

#[derive(Debug, Clone)]
struct StoredEvent {
    resource: Value,
    /// Change sequence number of the last write.
    seq: u64,
}

#[derive(Debug, Default)]
struct Calendar {
    summary: String,
    time_zone: String,
    events: BTreeMap<String, StoredEvent>,
    /// Sync tokens issued before this sequence number are expired (410).
    valid_from: u64,
}

/// One recorded write and its `sendUpdates` parameter (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SendRecord {
    /// HTTP method.
    pub method: String,
    /// Event id.
    pub event_id: String,
    /// The `sendUpdates` query parameter as sent.
    pub send_updates: Option<String>,
}

#[derive(Default)]
struct Inner {
    config: Config,
    oauth: oauth::OAuth,
    seq: u64,
    calendars: BTreeMap<String, Calendar>,
    sends: Vec<SendRecord>,
    faults: VecDeque<u16>,
    /// Error reasons for the next API calls: `(status, reason)`, e.g. `(403, "quotaExceeded")`.
    reason_faults: VecDeque<(u16, String)>,
    /// Successful answers to cut short: `(substring of path and query, count)`; the body is
    /// cut in half as a connection dropped mid-stream would leave it.
    truncations: VecDeque<(String, usize)>,
    /// Delays (ms) for the next API calls, injected by tests.
    slow: VecDeque<u64>,
    quota: HashMap<String, VecDeque<Instant>>,
    /// Calls refused because the user's quota was spent (not injected faults).
    quota_refusals: u64,
    requests: u64,
    channels: BTreeMap<String, push::WatchChannel>,
    push_log: Arc<push::PushLog>,
}

impl Inner {
    fn fail_next(&mut self, status: u16, count: usize) {
        self.faults.extend(std::iter::repeat_n(status, count));
    }

    fn slow_next(&mut self, delay_ms: u64, count: usize) {
        self.slow.extend(std::iter::repeat_n(delay_ms, count));
    }
}

type Shared = Arc<Mutex<Inner>>;

/// A running emulator; stops when dropped.
pub struct GoogleEmulator {
    /// Base URL, e.g. `http://127.0.0.1:41000` (API under `/calendar/v3`).
    pub url: String,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GoogleEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GoogleEmulator {
    /// Start on `addr` (`127.0.0.1:0` for an ephemeral port).
    pub async fn start(addr: &str, config: Config) -> anyhow::Result<Self> {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            config,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = router(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, inner, task })
    }

    /// Create a calendar (owned by the emulated user).
    pub fn add_calendar(&self, id: &str, summary: &str, time_zone: &str) {
        let mut s = self.inner.lock().expect("emulator lock");
        s.calendars.insert(
            id.into(),
            Calendar {
                summary: summary.into(),
                time_zone: time_zone.into(),
                ..Default::default()
            },
        );
    }

    /// Every write's `sendUpdates` so far.
    pub fn sends(&self) -> Vec<SendRecord> {
        self.inner.lock().expect("emulator lock").sends.clone()
    }

    /// Push deliveries so far (channel, state, message number, receiver's status).
    pub fn push_deliveries(&self) -> Vec<push::Delivery> {
        let log = self.inner.lock().expect("emulator lock").push_log.clone();
        log.entries()
    }

    /// Wait for a push delivery, after the first `after` ones, that satisfies `pred` (woken
    /// by each delivery, no polling); `None` when none arrives within `timeout`.
    pub async fn wait_for_delivery(
        &self,
        after: usize,
        pred: impl Fn(&push::Delivery) -> bool,
        timeout: std::time::Duration,
    ) -> Option<push::Delivery> {
        let log = self.inner.lock().expect("emulator lock").push_log.clone();
        log.wait_for(after, pred, timeout).await
    }

    /// The next `count` API calls answer `status` (as `POST /emulator/faults`).
    pub fn fail_next(&self, status: u16, count: usize) {
        self.inner
            .lock()
            .expect("emulator lock")
            .fail_next(status, count);
    }

    /// The next `count` API calls answer `status` with the documented error `reason`
    /// (`quotaExceeded`, `dailyLimitExceeded`, `rateLimitExceeded`, …).
    pub fn fail_next_reason(&self, status: u16, reason: &str, count: usize) {
        self.inner
            .lock()
            .expect("emulator lock")
            .reason_faults
            .extend(std::iter::repeat_n((status, reason.to_string()), count));
    }

    /// The next `count` successful API answers to a request whose path and query contain
    /// `needle` arrive cut in half (status and headers intact).
    pub fn truncate_next(&self, needle: &str, count: usize) {
        self.inner
            .lock()
            .expect("emulator lock")
            .truncations
            .push_back((needle.to_string(), count));
    }

    /// The next `count` API calls answer `delay_ms` late (as `POST /emulator/faults`).
    pub fn slow_next(&self, delay_ms: u64, count: usize) {
        self.inner
            .lock()
            .expect("emulator lock")
            .slow_next(delay_ms, count);
    }

    /// Duplicate and reorder push messages on `calendar` ([`push::redeliver`]); the number
    /// of messages sent.
    pub fn redeliver(&self, calendar: &str) -> usize {
        push::redeliver(&mut self.inner.lock().expect("emulator lock"), calendar)
    }

    /// API requests served so far (control endpoints excluded).
    pub fn requests(&self) -> u64 {
        self.inner.lock().expect("emulator lock").requests
    }

    /// Calls refused with a quota error because the caller exceeded the per-user quota
    /// (injected faults not counted).
    pub fn quota_refusals(&self) -> u64 {
        self.inner.lock().expect("emulator lock").quota_refusals
    }
}

// The emulator's routes.
fn router(inner: Shared) -> axum::Router {
    axum::Router::new()
        .route("/calendar/v3/users/me/calendarList", get(calendar_list))
        .route(
            "/calendar/v3/calendars/{cal}/events",
            get(list_events).post(insert_event),
        )
        .route(
            "/calendar/v3/calendars/{cal}/events/watch",
            post(push::watch),
        )
        .route(
            "/calendar/v3/calendars/{cal}/events/import",
            post(import_event),
        )
        .route(
            "/calendar/v3/calendars/{cal}/events/{id}/instances",
            get(list_instances),
        )
        .route("/calendar/v3/channels/stop", post(push::stop))
        .route("/batch/calendar/v3", post(batch::batch))
        .route("/emulator/push", get(push::control_log))
        .route(
            "/calendar/v3/calendars/{cal}/events/{id}",
            get(get_event)
                .put(update_event)
                .patch(patch_event)
                .delete(delete_event),
        )
        .route("/o/oauth2/v2/auth", get(oauth::authorize))
        .route("/token", post(oauth::token))
        .route("/revoke", post(oauth::revoke))
        .route("/emulator/oauth/clients", post(oauth::control_client))
        .route("/emulator/oauth/revoke", post(oauth::control_revoke))
        .route("/emulator/oauth/stats", get(oauth::control_stats))
        .route(
            "/emulator/oauth/expire-access",
            post(oauth::control_expire_access),
        )
        .route("/emulator/calendars", post(control_add_calendar))
        .route(
            "/emulator/calendars/{cal}/expire-sync-tokens",
            post(control_expire),
        )
        .route("/emulator/faults", post(control_faults))
        .route("/emulator/sends", get(control_sends))
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            slow_down,
        ))
        .with_state(inner)
}

/// Injected latency: an API call (not `/emulator/…`, not a whole batch) waits the next queued
/// delay before it is handled.
async fn slow_down(
    State(st): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/calendar/v3/");
    let delay = if api {
        st.lock().expect("emulator lock").slow.pop_front()
    } else {
        None
    };
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let resp = next.run(req).await;
    if !api || !resp.status().is_success() {
        return resp;
    }
    let cut = {
        let mut s = st.lock().expect("emulator lock");
        match s.truncations.front_mut() {
            Some((needle, n)) if target.contains(needle.as_str()) => {
                *n -= 1;
                if *n == 0 {
                    s.truncations.pop_front();
                }
                true
            }
            _ => false,
        }
    };
    if !cut {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove("content-length");
    let half = bytes.slice(..bytes.len() / 2);
    Response::from_parts(parts, axum::body::Body::from(half))
}

/// The documented error envelope:
/// `{"error":{"errors":[{domain,reason,message,locationType?,location?}],"code":N,"message":…}}`.
fn gerror(
    status: u16,
    domain: &str,
    reason: &str,
    message: &str,
    location: Option<(&str, &str)>,
) -> Response {
    let mut item = json!({"domain": domain, "reason": reason, "message": message});
    if let Some((lt, l)) = location {
        item["locationType"] = json!(lt);
        item["location"] = json!(l);
    }
    let body = json!({"error": {"errors": [item], "code": status, "message": message}});
    (StatusCode::from_u16(status).expect("status"), Json(body)).into_response()
}

fn not_found() -> Response {
    gerror(404, "global", "notFound", "Not Found", None)
}

fn bad_request(message: &str) -> Response {
    gerror(400, "global", "invalid", message, None)
}

/// Authentication, fault injection and quota, in that order. `Err` is the response to send.
fn admit(s: &mut Inner, headers: &HeaderMap) -> Result<(), Response> {
    s.requests += 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .filter(|t| !s.config.require_issued_tokens || s.oauth.access_valid(t));
    let Some(token) = token else {
        return Err(gerror(
            401,
            "global",
            "authError",
            "Invalid Credentials",
            Some(("header", "Authorization")),
        ));
    };
    if let Some((status, reason)) = s.reason_faults.pop_front() {
        let message = match reason.as_str() {
            "quotaExceeded" => "Calendar usage limits exceeded.",
            "dailyLimitExceeded" => "Daily Limit Exceeded",
            _ => "Rate Limit Exceeded",
        };
        return Err(gerror(status, "usageLimits", &reason, message, None));
    }
    if let Some(status) = s.faults.pop_front() {
        return Err(match status {
            429 => gerror(
                429,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
                None,
            ),
            403 => gerror(
                403,
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
                None,
            ),
            410 => gerror(
                410,
                "calendar",
                "fullSyncRequired",
                "Sync token is no longer valid, a full sync is required.",
                Some(("parameter", "syncToken")),
            ),
            s => gerror(s, "global", "backendError", "Backend Error", None),
        });
    }
    let (limit, with_429) = (s.config.quota_per_minute, s.config.quota_with_429);
    let window = s.quota.entry(token.to_string()).or_default();
    let now = Instant::now();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
    {
        window.pop_front();
    }
    if window.len() >= limit {
        s.quota_refusals += 1;
        return Err(if with_429 {
            gerror(
                429,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
                None,
            )
        } else {
            gerror(
                403,
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
                None,
            )
        });
    }
    window.push_back(now);
    Ok(())
}

fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn etag_of(seq: u64) -> String {
    format!("\"{}\"", 3_000_000_000_000u64 + seq * 2)
}

fn encode_token(kind: &str, v: &Value) -> String {
    format!(
        "{kind}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    )
}

fn decode_token(kind: &str, t: &str) -> Option<Value> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.strip_prefix(kind)?)
        .ok()?;
    serde_json::from_slice(&raw).ok()
}

/// An id the server chooses: 32 base32hex characters (hex digits fit `[0-9a-v]`).
fn server_event_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// base32hex as the API documents for client-chosen ids: `[a-v0-9]`, 5–1024 characters.
pub fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
}

/// What an incremental list shows of a cancelled event: `id`, `status`, and for a cancelled
/// instance `recurringEventId` and `originalStartTime` (Event schema, `status` field).
fn cancelled_view(ev: &Value) -> Value {
    let mut out = Map::new();
    for k in [
        "kind",
        "etag",
        "id",
        "status",
        "recurringEventId",
        "originalStartTime",
    ] {
        if let Some(v) = ev.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

async fn calendar_list(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let items: Vec<Value> = s
        .calendars
        .iter()
        .map(|(id, c)| json!({"kind": "calendar#calendarListEntry", "id": id, "summary": c.summary, "timeZone": c.time_zone, "accessRole": "owner"}))
        .collect();
    Json(json!({"kind": "calendar#calendarList", "etag": etag_of(s.seq), "items": items}))
        .into_response()
}

/// Query parameters `events.list` honours; the names are those of the discovery document.
const LIST_PARAMS: &[&str] = &[
    "iCalUID",
    "maxResults",
    "pageToken",
    "syncToken",
    "showDeleted",
    "singleEvents",
    "timeZone",
    "maxAttendees",
    "alwaysIncludeEmail",
    "showHiddenInvitations",
    "eventTypes",
];
/// Documented parameters that are incompatible with `syncToken` (400 with one). Without a
/// sync token the emulator does not filter by them yet, so it refuses them (400) rather than
/// answer as if they had been applied.
const FORBIDDEN_WITH_SYNC: &[&str] = &[
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

async fn list_events(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let known = |n: &str| LIST_PARAMS.contains(&n) || FORBIDDEN_WITH_SYNC.contains(&n);
    if let Some((n, _)) = q.iter().find(|(n, _)| !known(n)) {
        return bad_request(&format!("Invalid parameter: {n}"));
    }
    if param("syncToken").is_none() {
        if let Some(p) = FORBIDDEN_WITH_SYNC
            .iter()
            .filter(|p| !LIST_PARAMS.contains(p))
            .find(|p| param(p).is_some())
        {
            return bad_request(&format!("The parameter {p} is not emulated"));
        }
    }
    let max_results = match max_results(param("maxResults")) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let show_deleted = param("showDeleted") == Some("true");
    let single_events = param("singleEvents") == Some("true");
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let seq_now = s.seq;
    // Sync token: the change sequence it was issued at.
    let since: Option<u64> = match param("syncToken") {
        None => None,
        Some(t) => {
            if let Some(bad) = FORBIDDEN_WITH_SYNC.iter().find(|p| param(p).is_some()) {
                return bad_request(&format!(
                    "The parameter {bad} cannot be used with syncToken"
                ));
            }
            if param("showDeleted") == Some("false") {
                return bad_request("showDeleted cannot be false with syncToken");
            }
            match decode_token("s1.", t)
                .filter(|v| v["c"] == json!(cal))
                .and_then(|v| v["s"].as_u64())
            {
                Some(n) if n >= calendar.valid_from && n <= seq_now => Some(n),
                _ => {
                    return gerror(
                        410,
                        "calendar",
                        "fullSyncRequired",
                        "Sync token is no longer valid, a full sync is required.",
                        Some(("parameter", "syncToken")),
                    )
                }
            }
        }
    };
    // Page token: (query fingerprint, snapshot sequence, last id) — keyset paging over ids.
    let fingerprint = format!(
        "{cal}|{:?}|{show_deleted}|{single_events}|{:?}",
        param("syncToken"),
        param("iCalUID")
    );
    let ical_uid = param("iCalUID").map(str::to_string);
    let (snapshot, after) = match param("pageToken") {
        None => (seq_now, String::new()),
        Some(t) => match decode_token("p1.", t).filter(|v| v["f"] == json!(fingerprint)) {
            Some(v) => (
                v["s"].as_u64().unwrap_or(seq_now),
                v["a"].as_str().unwrap_or("").to_string(),
            ),
            None => {
                return gerror(
                    400,
                    "global",
                    "invalid",
                    "Invalid page token",
                    Some(("parameter", "pageToken")),
                )
            }
        },
    };
    let page_size = max_results.min(s.config.page_cap.max(1));
    let calendar = s.calendars.get(&cal).expect("checked above");
    let view: std::borrow::Cow<'_, BTreeMap<String, StoredEvent>> = if single_events {
        std::borrow::Cow::Owned(expand_series(calendar, since.is_some()))
    } else {
        std::borrow::Cow::Borrowed(&calendar.events)
    };
    let mut matching = view
        .iter()
        .filter(|(id, _)| id.as_str() > after.as_str())
        .filter(|(_, e)| e.seq <= snapshot)
        .filter(|(_, e)| {
            ical_uid
                .as_deref()
                .is_none_or(|u| e.resource["iCalUID"] == u)
        })
        .filter(|(_, e)| match since {
            Some(n) => e.seq > n,
            None => show_deleted || e.resource["status"] != "cancelled",
        });
    let mut items = Vec::new();
    let mut last = None;
    for (id, e) in matching.by_ref().take(page_size) {
        let cancelled = e.resource["status"] == "cancelled";
        items.push(if cancelled && since.is_some() && !show_deleted {
            cancelled_view(&e.resource)
        } else {
            e.resource.clone()
        });
        last = Some(id.clone());
    }
    let more = matching.next().is_some();
    let mut body = json!({
        "kind": "calendar#events", "etag": etag_of(snapshot), "summary": calendar.summary,
        "updated": rfc3339_now(), "timeZone": calendar.time_zone, "accessRole": "owner",
        "defaultReminders": [], "items": items,
    });
    if more {
        body["nextPageToken"] = json!(encode_token(
            "p1.",
            &json!({"f": fingerprint, "s": snapshot, "a": last})
        ));
    } else {
        body["nextSyncToken"] = json!(encode_token("s1.", &json!({"c": cal, "s": snapshot})));
    }
    Json(body).into_response()
}

/// The calendar as `singleEvents=true` shows it: recurring masters replaced by their
/// instances (stored exceptions, else generated from the master, at most
/// [`recurrence::MAX_INSTANCES`] per series); one-off events as they are. A cancelled master
/// shows only in incremental listings (its cancellation is the change to report).
fn expand_series(calendar: &Calendar, incremental: bool) -> BTreeMap<String, StoredEvent> {
    let mut out = BTreeMap::new();
    for (id, e) in &calendar.events {
        let r = &e.resource;
        if r.get("recurrence").is_none() || r.get("recurringEventId").is_some() {
            out.insert(id.clone(), e.clone());
            continue;
        }
        if r["status"] == "cancelled" {
            if incremental {
                out.insert(id.clone(), e.clone());
            }
            continue;
        }
        for suffix in recurrence::suffixes(r, None, None, recurrence::MAX_INSTANCES) {
            let iid = format!("{id}_{suffix}");
            if calendar.events.contains_key(&iid) {
                continue; // the stored exception is listed as itself
            }
            if let Some(resource) = instance_of(r, &suffix) {
                out.insert(
                    iid,
                    StoredEvent {
                        resource,
                        seq: e.seq,
                    },
                );
            }
        }
    }
    out
}

/// Query parameters of `events.instances` (discovery document).
const INSTANCES_PARAMS: &[&str] = &[
    "maxResults",
    "pageToken",
    "showDeleted",
    "timeMin",
    "timeMax",
    "originalStart",
    "timeZone",
    "maxAttendees",
    "alwaysIncludeEmail",
];

/// `GET …/events/{eventId}/instances`: the instances of a recurring event in start order —
/// exceptions as stored, the others generated from the master; cancelled instances only with
/// `showDeleted=true`. `timeMin` is inclusive on the instance's end, `timeMax` exclusive on
/// its start (the reference's wording), `originalStart` picks one instance. Pages of
/// `maxResults` (≤ 2500) with an opaque `nextPageToken`; no sync token (the method has
/// none). Unknown or cancelled master: 404 / 410 `deleted`. An event without `recurrence`
/// has no instances here (empty list; Google's answer for that case is not documented).
async fn list_instances(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some((n, _)) = q
        .iter()
        .find(|(n, _)| !INSTANCES_PARAMS.contains(&n.as_str()))
    {
        return bad_request(&format!("Invalid parameter: {n}"));
    }
    let max_results = match max_results(param("maxResults")) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let time = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, Response> {
        match param(k) {
            None => Ok(None),
            Some(v) => chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| bad_request(&format!("Invalid value for: {k}"))),
        }
    };
    let (time_min, time_max) = match (time("timeMin"), time("timeMax")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let (Some(a), Some(b)) = (time_min, time_max) {
        if b <= a {
            return gerror(
                400,
                "calendar",
                "timeRangeEmpty",
                "The specified time range is empty.",
                Some(("parameter", "timeMax")),
            );
        }
    }
    let show_deleted = param("showDeleted") == Some("true");
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let Some(master) = calendar.events.get(&id).map(|e| e.resource.clone()) else {
        return not_found();
    };
    if master["status"] == "cancelled" {
        return gerror(410, "global", "deleted", "Resource has been deleted", None);
    }
    // Every instance, exceptions included (a moved exception keeps its original slot).
    let mut items: Vec<Value> = Vec::new();
    for suffix in recurrence::suffixes(&master, None, None, recurrence::MAX_INSTANCES) {
        let iid = format!("{id}_{suffix}");
        let inst = match calendar.events.get(&iid) {
            Some(e) => e.resource.clone(),
            None => match instance_of(&master, &suffix) {
                Some(i) => i,
                None => continue,
            },
        };
        if inst["status"] == "cancelled" && !show_deleted {
            continue;
        }
        items.push(inst);
    }
    let instant = |v: &Value| -> Option<chrono::DateTime<chrono::Utc>> {
        match (v["dateTime"].as_str(), v["date"].as_str()) {
            (Some(t), _) => chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc)),
            (None, Some(d)) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc()),
            _ => None,
        }
    };
    items.retain(|i| {
        let (start, end) = (instant(&i["start"]), instant(&i["end"]));
        time_min.is_none_or(|m| end.is_none_or(|e| e >= m))
            && time_max.is_none_or(|m| start.is_none_or(|s| s < m))
    });
    if let Some(o) = param("originalStart") {
        let Ok(o) = chrono::DateTime::parse_from_rfc3339(o) else {
            return bad_request("Invalid value for: originalStart");
        };
        items.retain(|i| instant(&i["originalStartTime"]) == Some(o.with_timezone(&chrono::Utc)));
    }
    items.sort_by_key(|i| instant(&i["start"]));
    let fingerprint = format!(
        "{cal}|{id}|{:?}|{:?}|{show_deleted}",
        param("timeMin"),
        param("timeMax")
    );
    let offset = match param("pageToken") {
        None => 0,
        Some(t) => match decode_token("i1.", t).filter(|v| v["f"] == json!(fingerprint)) {
            Some(v) => v["o"].as_u64().unwrap_or(0) as usize,
            None => {
                return gerror(
                    400,
                    "global",
                    "invalid",
                    "Invalid page token",
                    Some(("parameter", "pageToken")),
                )
            }
        },
    };
    let page_size = max_results.min(s.config.page_cap.max(1));
    let page: Vec<Value> = items.iter().skip(offset).take(page_size).cloned().collect();
    let mut body = json!({
        "kind": "calendar#events", "etag": etag_of(s.seq), "summary": calendar.summary,
        "updated": rfc3339_now(), "timeZone": calendar.time_zone, "accessRole": "owner",
        "defaultReminders": [], "items": page,
    });
    if offset + page_size < items.len() {
        body["nextPageToken"] = json!(encode_token(
            "i1.",
            &json!({"f": fingerprint, "o": offset + page_size})
        ));
    }
    Json(body).into_response()
}

/// `maxResults` of `events.list` and `events.instances`: 1–2500, default 250 (discovery).
fn max_results(v: Option<&str>) -> Result<usize, Response> {
    match v.map(str::parse::<usize>) {
        None => Ok(250),
        Some(Ok(n)) if (1..=2500).contains(&n) => Ok(n),
        Some(_) => Err(gerror(
            400,
            "global",
            "invalid",
            "Invalid value for: maxResults",
            Some(("parameter", "maxResults")),
        )),
    }
}

fn record_send(s: &mut Inner, method: &str, id: &str, q: &[(String, String)]) {
    let send_updates = q
        .iter()
        .find(|(n, _)| n == "sendUpdates")
        .map(|(_, v)| v.clone());
    s.sends.push(SendRecord {
        method: method.into(),
        event_id: id.into(),
        send_updates,
    });
}

fn validate_times(ev: &Value) -> Result<(), Response> {
    for k in ["start", "end"] {
        let t = &ev[k];
        if t.get("date").is_none() && t.get("dateTime").is_none() {
            let msg = if k == "start" {
                "Missing start time."
            } else {
                "Missing end time."
            };
            return Err(gerror(400, "global", "required", msg, None));
        }
    }
    Ok(())
}

/// Store a new version of an event: fresh sequence number, etag and `updated`.
fn store_write(s: &mut Inner, cal: &str, id: &str, mut resource: Value) -> Value {
    s.seq += 1;
    let seq = s.seq;
    resource["etag"] = json!(etag_of(seq));
    resource["updated"] = json!(rfc3339_now());
    let calendar = s.calendars.get_mut(cal).expect("calendar checked");
    calendar.events.insert(
        id.into(),
        StoredEvent {
            resource: resource.clone(),
            seq,
        },
    );
    push::notify(s, cal);
    resource
}

async fn insert_event(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(mut ev): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let id = match ev.get("id").and_then(Value::as_str) {
        Some(id) if !valid_event_id(id) => {
            return gerror(400, "global", "invalid", "Invalid resource id value.", None)
        }
        Some(id) => id.to_string(),
        None => server_event_id(),
    };
    if calendar.events.contains_key(&id) {
        return gerror(
            409,
            "global",
            "duplicate",
            "The requested identifier already exists.",
            None,
        );
    }
    if let Err(r) = validate_times(&ev) {
        return r;
    }
    record_send(&mut s, "POST", &id, &q);
    let now = rfc3339_now();
    ev["kind"] = json!("calendar#event");
    ev["id"] = json!(id);
    ev["created"] = json!(now);
    if ev.get("iCalUID").is_none() {
        ev["iCalUID"] = json!(format!("{id}@google.com"));
    }
    if ev.get("status").is_none() {
        ev["status"] = json!("confirmed");
    }
    if ev.get("sequence").is_none() {
        ev["sequence"] = json!(0);
    }
    ev["organizer"] = json!({"email": cal, "self": true});
    ev["creator"] = json!({"email": cal, "self": true});
    let stored = store_write(&mut s, &cal, &id, ev);
    Json(stored).into_response()
}

/// `events.import`: a private copy of an existing event, keyed by its `iCalUID` (required);
/// importing the same `iCalUID` again replaces that event. No `sendUpdates` (discovery).
async fn import_event(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    Json(mut ev): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let Some(uid) = ev
        .get("iCalUID")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return gerror(400, "global", "required", "Missing iCalUID.", None);
    };
    if let Err(r) = validate_times(&ev) {
        return r;
    }
    let existing = calendar
        .events
        .iter()
        .find(|(_, e)| {
            e.resource["iCalUID"] == uid.as_str() && e.resource.get("recurringEventId").is_none()
        })
        .map(|(id, e)| (id.clone(), e.resource.clone()));
    let now = rfc3339_now();
    let id = match &existing {
        Some((id, old)) => {
            ev["created"] = old["created"].clone();
            id.clone()
        }
        None => {
            ev["created"] = json!(now);
            server_event_id()
        }
    };
    ev["kind"] = json!("calendar#event");
    ev["id"] = json!(id);
    if ev.get("status").is_none() {
        ev["status"] = json!("confirmed");
    }
    if ev.get("organizer").is_none() {
        ev["organizer"] = json!({"email": cal, "self": true});
    }
    let stored = store_write(&mut s, &cal, &id, ev);
    Json(stored).into_response()
}

fn current<'a>(s: &'a Inner, cal: &str, id: &str) -> Result<&'a StoredEvent, Response> {
    s.calendars
        .get(cal)
        .ok_or_else(not_found)?
        .events
        .get(id)
        .ok_or_else(not_found)
}

/// The stored event `id`, or — for an id `<masterId>_<start>` of an instance of a recurring
/// master that has no exception yet — the instance as the master generates it (Google's
/// instance ids: `_<YYYYMMDDTHHMMSSZ>`, all-day `_<YYYYMMDD>`; writing to one creates the
/// exception, deleting it cancels that instance).
fn current_or_instance(s: &Inner, cal: &str, id: &str) -> Result<Value, Response> {
    if let Ok(e) = current(s, cal, id) {
        return Ok(e.resource.clone());
    }
    let (master_id, suffix) = id.rsplit_once('_').ok_or_else(not_found)?;
    let master = current(s, cal, master_id)?.resource.clone();
    if master["status"] == "cancelled" || !recurrence::generates(&master, suffix) {
        return Err(not_found());
    }
    instance_of(&master, suffix).ok_or_else(not_found)
}

/// The virtual instance of `master` starting at the id suffix `suffix`.
pub fn instance_of(master: &Value, suffix: &str) -> Option<Value> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    let master_id = master["id"].as_str()?;
    let (orig, start, end) = if suffix.len() == 8 {
        let d = NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()?;
        let ms = NaiveDate::parse_from_str(master["start"]["date"].as_str()?, "%Y-%m-%d").ok()?;
        let me = NaiveDate::parse_from_str(master["end"]["date"].as_str()?, "%Y-%m-%d").ok()?;
        let fmt = |d: NaiveDate| json!({"date": d.format("%Y-%m-%d").to_string()});
        (fmt(d), fmt(d), fmt(d + (me - ms)))
    } else {
        let t = NaiveDateTime::parse_from_str(suffix.strip_suffix('Z')?, "%Y%m%dT%H%M%S").ok()?;
        let t = Utc.from_utc_datetime(&t);
        let ms =
            chrono::DateTime::parse_from_rfc3339(master["start"]["dateTime"].as_str()?).ok()?;
        let me = chrono::DateTime::parse_from_rfc3339(master["end"]["dateTime"].as_str()?).ok()?;
        let tz = master["start"]["timeZone"].as_str();
        let fmt = |t: chrono::DateTime<Utc>| {
            let local = tz
                .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
                .map(|z| t.with_timezone(&z).to_rfc3339())
                .unwrap_or_else(|| t.to_rfc3339());
            let mut v = json!({ "dateTime": local });
            if let Some(z) = tz {
                v["timeZone"] = json!(z);
            }
            v
        };
        (fmt(t), fmt(t), fmt(t + (me - ms)))
    };
    let mut inst = master.clone();
    let o = inst.as_object_mut()?;
    o.remove("recurrence");
    o.insert("id".into(), json!(format!("{master_id}_{suffix}")));
    o.insert("recurringEventId".into(), json!(master_id));
    o.insert("originalStartTime".into(), orig);
    o.insert("start".into(), start);
    o.insert("end".into(), end);
    Some(inst)
}

fn if_match_fails(headers: &HeaderMap, etag: &Value) -> bool {
    headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m != "*" && Some(m) != etag.as_str())
}

fn precondition_failed() -> Response {
    gerror(
        412,
        "global",
        "conditionNotMet",
        "Precondition Failed",
        Some(("header", "If-Match")),
    )
}

async fn get_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let e = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == e["etag"].as_str() {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    Json(e).into_response()
}

/// Fields the server owns: kept from the stored version on update.
const SERVER_FIELDS: &[&str] = &[
    "kind",
    "id",
    "created",
    "iCalUID",
    "organizer",
    "creator",
    "htmlLink",
    "recurringEventId",
    "originalStartTime",
];

async fn update_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(mut ev): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let old = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if if_match_fails(&headers, &old["etag"]) {
        return precondition_failed();
    }
    if let Err(r) = validate_times(&ev) {
        return r;
    }
    record_send(&mut s, "PUT", &id, &q);
    for k in SERVER_FIELDS {
        if let Some(v) = old.get(*k) {
            ev[*k] = v.clone();
        }
    }
    if ev.get("status").is_none() {
        ev["status"] = json!("confirmed");
    }
    if ev.get("sequence").is_none() {
        ev["sequence"] = old["sequence"].clone();
    }
    Json(store_write(&mut s, &cal, &id, ev)).into_response()
}

/// Patch semantics: objects merge recursively, arrays and scalars replace, `null` removes.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if v.is_object() && t.get(k).is_some_and(Value::is_object) {
                    merge_patch(t.get_mut(k).expect("present"), v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn patch_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(patch): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let mut ev = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if if_match_fails(&headers, &ev["etag"]) {
        return precondition_failed();
    }
    record_send(&mut s, "PATCH", &id, &q);
    let mut patch = patch;
    if let Value::Object(p) = &mut patch {
        for k in SERVER_FIELDS {
            p.remove(*k);
        }
    }
    merge_patch(&mut ev, &patch);
    Json(store_write(&mut s, &cal, &id, ev)).into_response()
}

async fn delete_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let mut ev = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if ev["status"] == "cancelled" {
        return gerror(410, "global", "deleted", "Resource has been deleted", None);
    }
    if if_match_fails(&headers, &ev["etag"]) {
        return precondition_failed();
    }
    record_send(&mut s, "DELETE", &id, &q);
    ev["status"] = json!("cancelled");
    store_write(&mut s, &cal, &id, ev);
    // Deleting a series cancels its exceptions too.
    let exceptions: Vec<(String, Value)> = s.calendars[&cal]
        .events
        .iter()
        .filter(|(_, e)| e.resource["recurringEventId"] == id.as_str())
        .filter(|(_, e)| e.resource["status"] != "cancelled")
        .map(|(k, e)| (k.clone(), e.resource.clone()))
        .collect();
    for (k, mut e) in exceptions {
        e["status"] = json!("cancelled");
        store_write(&mut s, &cal, &k, e);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn control_add_calendar(State(st): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let Some(id) = body["id"].as_str() else {
        return bad_request("id required");
    };
    s.calendars.insert(
        id.into(),
        Calendar {
            summary: body["summary"].as_str().unwrap_or(id).into(),
            time_zone: body["timeZone"].as_str().unwrap_or("UTC").into(),
            ..Default::default()
        },
    );
    StatusCode::CREATED.into_response()
}

async fn control_expire(State(st): State<Shared>, Path(cal): Path<String>) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let seq = s.seq + 1;
    s.seq = seq;
    match s.calendars.get_mut(&cal) {
        Some(c) => {
            c.valid_from = seq;
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(),
    }
}

/// `{"status": 503, "count": 2}`: the next `count` API requests answer `status`.
async fn control_faults(State(st): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let count = body["count"].as_u64().unwrap_or(1) as usize;
    match (body["status"].as_u64(), body["delay_ms"].as_u64()) {
        (Some(status), _) => s.fail_next(status as u16, count),
        (None, Some(ms)) => s.slow_next(ms, count),
        (None, None) => return bad_request("status or delay_ms required"),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn control_sends(State(st): State<Shared>) -> Response {
    Json(json!(st.lock().expect("emulator lock").sends)).into_response()
}
