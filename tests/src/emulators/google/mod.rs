//! Google Calendar API v3 emulator.
//!
//! Built to the documented behaviour (`../shared/docs/provider-semantics.md` §1; discovery
//! document `calendar.v3.json`; https://developers.google.com/workspace/calendar/api/guides/sync,
//! …/guides/errors, …/guides/version-resources, …/guides/recurringevents, …/guides/batch,
//! …/guides/push):
//!
//! - `GET  /calendar/v3/users/me/calendarList`
//! - `GET  /calendar/v3/calendars/{calendarId}` (calendars.get; `primary` is the token's
//!   account's main calendar; another account's calendar is 404 `notFound`; accounts:
//!   [`GoogleEmulator::add_account`]. The other routes do not check the account.)
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
mod events;
mod list;
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

use events::*;
use list::*;

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
    /// The account that owns it (`None`: the default account; see `add_account`).
    owner: Option<String>,
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
        self.insert_calendar(id, summary, time_zone, None);
    }

    /// Add a Google account `email` with its primary calendar, whose id is `email` (as
    /// Google's are). Its tokens come from a consent after [`Self::sign_in_next_as`];
    /// `calendars/primary` then means this calendar, and `calendars.get` of another
    /// account's calendar is 404 `notFound`. Every other calendar belongs to the default
    /// account, whose main calendar is the one with the id `primary`.
    pub fn add_account(&self, email: &str, time_zone: &str) {
        self.insert_calendar(email, email, time_zone, Some(email));
    }

    /// Add a calendar `id` of the account `owner` (one of [`Self::add_account`]) beside its
    /// primary one, as a secondary calendar the account made ("Work").
    pub fn add_calendar_of(&self, owner: &str, id: &str, summary: &str, time_zone: &str) {
        self.insert_calendar(id, summary, time_zone, Some(owner));
    }

    /// A calendar of `owner` (`None`: the default account).
    fn insert_calendar(&self, id: &str, summary: &str, time_zone: &str, owner: Option<&str>) {
        let mut s = self.inner.lock().expect("emulator lock");
        s.calendars.insert(
            id.into(),
            Calendar {
                summary: summary.into(),
                time_zone: time_zone.into(),
                owner: owner.map(str::to_string),
                ..Default::default()
            },
        );
    }

    /// The next consent signs in as `email` (an account of [`Self::add_account`]), as a
    /// user picks an account in Google's account chooser; later ones as the default again.
    pub fn sign_in_next_as(&self, email: &str) {
        self.inner.lock().expect("emulator lock").oauth.next_account = Some(email.into());
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
        .route("/calendar/v3/calendars/{cal}", get(calendars_get))
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
    let token = super::bearer(headers)
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
