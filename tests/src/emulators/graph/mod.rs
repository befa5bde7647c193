//! Microsoft Graph v1.0 emulator (Outlook calendars): a default mailbox (`/me`), and other
//! accounts' mailboxes for tests of who signed in ([`GraphEmulator::add_account`]).
//!
//! Built to the documented behaviour (`../shared/docs/provider-semantics.md` §2, the CSDL and
//! OpenAPI subsets and docs examples in `../shared/corpus/graph/`):
//!
//! - `GET /v1.0/me/calendars`, `GET /v1.0/me/calendar` (the main one) and
//!   `GET /v1.0/me/calendars/{id}` answer the token's account's calendars: another
//!   mailbox's calendar is 404 `ErrorItemNotFound` ([`calendars`]). The other routes do not
//!   check the account. `GET|POST /v1.0/me/calendars/{cal}/events` (list: single
//!   instances and series masters; `$filter=singleValueExtendedProperties/Any(…)`; create:
//!   201, `transactionId` answers the event it created before) ([`events`]).
//! - `GET|PATCH|DELETE /v1.0/me/events/{id}` — `@odata.etag` = `W/"<changeKey>"`, a new
//!   changeKey on every write, `If-Match` → 412 `ErrorIrresolvableConflict`; an occurrence
//!   id PATCHed becomes an `exception`, DELETEd a cancelled occurrence (the master changes,
//!   nothing else is signalled); `$expand=singleValueExtendedProperties(…)` / `extensions`.
//!   `POST …/events/{id}/extensions` (open extensions). `GET …/events/{id}/instances` with
//!   `startDateTime`/`endDateTime` (occurrences and exceptions, cancelled ones absent).
//! - `GET /v1.0/me/calendars/{cal}/calendarView/delta` and `/me/calendarView/delta` — window
//!   required (400 without, 400 over 1825 days), fixed for the token's life;
//!   `Prefer: odata.maxpagesize`; `@odata.nextLink` / `@odata.deltaLink`; `@removed` with
//!   `reason`, also for changes outside the window; occurrences carry only `id`,
//!   `seriesMasterId`, `type`, `start`, `end`; a stale or garbage token → 410
//!   `SyncStateNotFound` with a `Location` to restart; `…/events/delta` → 400 ([`delta`]).
//! - `Prefer: outlook.timezone` (Windows or IANA names; default UTC); `isAllDay` events must
//!   run midnight to midnight and are never shifted by the response zone.
//! - `POST /v1.0/$batch` — at most 20 requests, unique ids, `dependsOn` (424 when a
//!   dependency failed), per-request status in a 200 envelope, answered in any order; items
//!   run at most 4 at a time and are throttled one by one ([`batch`]).
//! - Throttling per mailbox: more than [`Config::max_concurrency`] requests in flight → 429
//!   `MailboxConcurrency` with `Retry-After`; more than [`Config::budget_per_10min`] in ten
//!   minutes → 429 `ApplicationThrottled`. The highest concurrency seen is recorded
//!   (module `admit`).
//! - Subscriptions with the `validationToken` handshake (10 s), `clientState`, renewal,
//!   deletion, a maximum lifetime, change and lifecycle notifications ([`subscriptions`]).
//! - Microsoft identity platform v2 authorize and token endpoints, rotating refresh tokens,
//!   AADSTS errors ([`oauth`]). With [`Config::require_issued_tokens`] the API accepts only
//!   unexpired access tokens it issued (401 `InvalidAuthenticationToken`).
//! - Fault injection (`POST /emulator/faults`): `{"status": S, "count": N, "retry_after": R}`;
//!   test setup under `/emulator/…`.

// Handlers return the finished HTTP response as their error; it is built once per request.
#![allow(clippy::result_large_err)]

mod admit;
pub mod batch;
mod calendars;
mod control;
pub mod delta;
pub mod events;
pub mod oauth;
pub mod recurrence;
mod render;
mod series;
pub mod subscriptions;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Requests in flight per mailbox before 429 `MailboxConcurrency` (Outlook: 4).
    pub max_concurrency: usize,
    /// Requests per mailbox per 10 minutes before 429 `ApplicationThrottled` (10,000).
    pub budget_per_10min: usize,
    /// `Retry-After` seconds of throttling answers.
    pub retry_after_secs: u64,
    /// Page size of delta and instance pages when no `Prefer: odata.maxpagesize` is sent.
    pub default_page_size: usize,
    /// Accept only access tokens issued by the token endpoint (else any bearer token).
    pub require_issued_tokens: bool,
    /// `expires_in` of issued access tokens (seconds).
    pub access_token_lifetime_secs: u64,
    /// Longest subscription lifetime accepted (minutes; events: 10,080).
    pub max_subscription_minutes: i64,
    /// Time a notification URL has to answer the validation handshake.
    pub validation_timeout: Duration,
    /// Delay before each API answer (latency, so that concurrency can build up).
    pub latency: Duration,
    /// Most items per delta or instances page, whatever `Prefer: odata.maxpagesize` asks
    /// (a preference the service may answer with fewer).
    pub page_cap: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrency: 4,
            budget_per_10min: 10_000,
            retry_after_secs: 1,
            default_page_size: 10,
            require_issued_tokens: false,
            access_token_lifetime_secs: 3599,
            max_subscription_minutes: 10_080,
            validation_timeout: Duration::from_secs(10),
            latency: Duration::ZERO,
            page_cap: 1000,
        }
    }
}

/// One stored item: a single instance, series master or exception (never a plain
/// occurrence: those are generated from the master).
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The resource as Graph holds it (times in the zone they were written in).
    pub resource: Value,
    /// Change sequence number of the last write.
    pub seq: u64,
    /// Deleted (kept for delta's `@removed`).
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Calendar {
    pub name: String,
    /// The account whose mailbox holds it (`None`: the default mailbox).
    pub owner: Option<String>,
    pub items: BTreeMap<String, Stored>,
    /// `transactionId` → event id.
    pub transactions: HashMap<String, String>,
}

/// One write the emulator served, for tests (`attendees` sent or not).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteRecord {
    /// `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// Event id.
    pub id: String,
    /// Whether the body carried `attendees`.
    pub attendees: bool,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub config: Config,
    pub base: String,
    pub calendars: BTreeMap<String, Calendar>,
    pub seq: u64,
    pub delta: delta::Tokens,
    pub oauth: oauth::OAuth,
    pub subs: subscriptions::Subs,
    pub writes: Vec<WriteRecord>,
    faults: VecDeque<(u16, u64)>,
    inflight: usize,
    max_inflight: usize,
    budget: VecDeque<Instant>,
    requests: u64,
    throttled: u64,
    batches: u64,
}

pub(crate) type Shared = Arc<Mutex<Inner>>;

/// The id of the mailbox's main calendar (`GET /me/calendar`, where `POST /me/events`
/// creates), which every emulator starts with, named "Calendar".
pub const DEFAULT_CALENDAR_ID: &str = "AAMkADefaultCalendarAAA=";

/// The id of the main calendar of account `address` (`None`: the default mailbox's,
/// [`DEFAULT_CALENDAR_ID`]), shaped like Graph's base64 ids.
pub(crate) fn main_calendar_of(address: Option<&str>) -> String {
    use base64::Engine as _;
    match address {
        None => DEFAULT_CALENDAR_ID.to_string(),
        Some(a) => format!(
            "AAMkAD{}AAA=",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(a)
        ),
    }
}

/// A running emulator.
pub struct GraphEmulator {
    /// Base URL (`http://127.0.0.1:<port>`); the API root is `<url>/v1.0`.
    pub url: String,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
    delivery: tokio::task::JoinHandle<()>,
}

impl Drop for GraphEmulator {
    fn drop(&mut self) {
        self.task.abort();
        self.delivery.abort();
    }
}

/// What the emulator counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// API requests served (batch items included, envelopes excluded).
    pub requests: u64,
    /// Requests answered 429.
    pub throttled: u64,
    /// Most API requests in flight at once.
    pub max_inflight: usize,
    /// `$batch` envelopes served.
    pub batches: u64,
}

impl GraphEmulator {
    /// Serve on `addr` (`127.0.0.1:0` for any port).
    ///
    /// Errors: the address cannot be bound.
    pub async fn start(addr: &str, config: Config) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut calendars = BTreeMap::new();
        // Every mailbox has its main calendar, named "Calendar".
        calendars.insert(
            DEFAULT_CALENDAR_ID.to_string(),
            Calendar {
                name: "Calendar".into(),
                ..Default::default()
            },
        );
        let inner: Shared = Arc::new(Mutex::new(Inner {
            config,
            base: url.clone(),
            calendars,
            ..Default::default()
        }));
        let app = router(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let delivery = subscriptions::start_delivery(&inner);
        Ok(Self {
            url,
            inner,
            task,
            delivery,
        })
    }

    /// API root (`<url>/v1.0`).
    pub fn api_root(&self) -> String {
        format!("{}/v1.0", self.url)
    }

    /// Create the calendar `id` (idempotent).
    pub fn add_calendar(&self, id: &str, name: &str) {
        self.lock()
            .calendars
            .entry(id.into())
            .or_insert_with(|| Calendar {
                name: name.into(),
                ..Default::default()
            });
    }

    /// Add the account `address` with a mailbox of its own and its main calendar ("Calendar"),
    /// whose id this returns. Its tokens come from a consent after
    /// [`Self::sign_in_next_as`]; with them `GET /me/calendar` answers this calendar, and
    /// `GET /me/calendars/{id}` of another mailbox's calendar is 404 `ErrorItemNotFound`, as
    /// Graph answers an id the signed-in user cannot see
    /// (https://learn.microsoft.com/graph/api/calendar-get). Every other calendar is the
    /// default mailbox's.
    pub fn add_account(&self, address: &str) -> String {
        let id = main_calendar_of(Some(address));
        self.lock().calendars.insert(
            id.clone(),
            Calendar {
                name: "Calendar".into(),
                owner: Some(address.into()),
                ..Default::default()
            },
        );
        id
    }

    /// The next consent signs in as `address` (an account of [`Self::add_account`]), as a
    /// user picks an account on Microsoft's sign-in page; later ones as the default mailbox.
    pub fn sign_in_next_as(&self, address: &str) {
        self.lock().oauth.next_account = Some(address.into());
    }

    /// An event arrives in calendar `cal` from outside the API (an invitation by mail, an
    /// imported `.ics`) with the iCalendar UID `ical_uid` as its `iCalUId`; `body` as a
    /// create's. Its id.
    pub fn arrive(&self, cal: &str, body: &Value, ical_uid: &str) -> String {
        events::arrive(&mut self.lock(), cal, body, ical_uid)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let s = self.lock();
        Stats {
            requests: s.requests,
            throttled: s.throttled,
            max_inflight: s.max_inflight,
            batches: s.batches,
        }
    }

    /// The next `count` API requests answer `status` (with `Retry-After` for 429/503).
    pub fn fail_next(&self, status: u16, count: usize) {
        let ra = self.lock().config.retry_after_secs;
        let mut s = self.lock();
        s.faults.extend(std::iter::repeat_n((status, ra), count));
    }

    /// Change settings while running.
    pub fn configure(&self, f: impl FnOnce(&mut Config)) {
        f(&mut self.lock().config)
    }

    /// Writes served so far.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.lock().writes.clone()
    }

    /// Every delta and skip token stops working (410 `SyncStateNotFound`).
    pub fn expire_delta_tokens(&self) {
        self.lock().delta.expire_all();
    }

    /// Every token stops working once `pages` more delta pages have been served (the
    /// service loses its sync state in the middle of a round).
    pub fn expire_delta_tokens_after(&self, pages: usize) {
        self.lock().delta.expire_after = Some(pages);
    }

    /// Wait until a delivery after the first `after` satisfies `pred` (woken by each
    /// delivery); `None` when `timeout` passes first.
    pub async fn wait_for_delivery(
        &self,
        after: usize,
        pred: impl Fn(&subscriptions::Delivery) -> bool,
        timeout: Duration,
    ) -> Option<subscriptions::Delivery> {
        let mut rx = self.lock().subs.watch();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(d) = self
                    .lock()
                    .subs
                    .log
                    .iter()
                    .skip(after)
                    .find(|d| pred(d))
                    .cloned()
                {
                    return Some(d);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        found.ok().flatten()
    }

    /// Live items of calendar `cal` (single instances, masters, exceptions) as stored.
    pub fn items(&self, cal: &str) -> Vec<Value> {
        self.lock()
            .calendars
            .get(cal)
            .map(|c| {
                c.items
                    .values()
                    .filter(|i| !i.deleted)
                    .map(|i| i.resource.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live subscriptions: id and expiry.
    pub fn subscriptions(&self) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
        self.lock().subs.list()
    }

    /// Subscription deliveries so far.
    pub fn deliveries(&self) -> Vec<subscriptions::Delivery> {
        self.lock().subs.log.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("emulator lock")
    }
}

fn router(inner: Shared) -> axum::Router {
    let api = axum::Router::new()
        .route("/v1.0/me/calendars", get(calendars::list_calendars))
        .route("/v1.0/me/calendar", get(calendars::get_default_calendar))
        .route("/v1.0/me/calendars/{cal}", get(calendars::get_calendar))
        .route(
            "/v1.0/me/calendars/{cal}/events",
            get(events::list_events).post(events::create_in),
        )
        .route("/v1.0/me/events", post(events::create_default))
        .route(
            "/v1.0/me/calendars/{cal}/events/delta",
            get(delta::events_delta_unsupported),
        )
        .route(
            "/v1.0/me/calendars/{cal}/calendarView/delta",
            get(delta::calendar_view_delta),
        )
        .route(
            "/v1.0/me/calendarView/delta",
            get(delta::default_view_delta),
        )
        .route(
            "/v1.0/me/events/{id}",
            get(events::get_event)
                .patch(events::patch_event)
                .delete(events::delete_event),
        )
        .route(
            "/v1.0/me/calendars/{cal}/events/{id}",
            get(events::get_event_in)
                .patch(events::patch_event_in)
                .delete(events::delete_event_in),
        )
        .route("/v1.0/me/events/{id}/instances", get(events::instances))
        .route(
            "/v1.0/me/events/{id}/extensions",
            post(events::add_extension),
        )
        .route(
            "/v1.0/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/v1.0/subscriptions/{id}",
            axum::routing::patch(subscriptions::renew).delete(subscriptions::delete),
        )
        .route(
            "/v1.0/subscriptions/{id}/reauthorize",
            post(subscriptions::reauthorize),
        )
        .layer(axum::middleware::from_fn_with_state(
            inner.clone(),
            admit::admit,
        ));
    axum::Router::new()
        .merge(api)
        .route("/v1.0/$batch", post(batch::batch))
        .route("/common/oauth2/v2.0/authorize", get(oauth::authorize))
        .route("/common/oauth2/v2.0/token", post(oauth::token))
        .route("/emulator/oauth/clients", post(oauth::control_client))
        .route(
            "/emulator/oauth/grant-error",
            post(oauth::control_grant_error),
        )
        .route(
            "/emulator/oauth/expire-access",
            post(oauth::control_expire_access),
        )
        .route("/emulator/oauth/stats", get(oauth::control_stats))
        .route("/emulator/calendars", post(control::control_add_calendar))
        .route(
            "/emulator/expire-delta-tokens",
            post(control::control_expire),
        )
        .route("/emulator/faults", post(control::control_faults))
        .route("/emulator/stats", get(control::control_stats))
        .route(
            "/emulator/subscriptions/{id}/lifecycle",
            post(subscriptions::control_lifecycle),
        )
        .route(
            "/emulator/deliveries",
            get(subscriptions::control_deliveries),
        )
        .with_state(inner)
}

/// The documented error envelope
/// `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
pub(crate) fn gerror(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": uuid::Uuid::new_v4().to_string(),
        "client-request-id": uuid::Uuid::new_v4().to_string(),
    }}});
    (StatusCode::from_u16(status).expect("status"), Json(body)).into_response()
}

pub(crate) fn not_found() -> Response {
    gerror(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

pub(crate) fn bad_request(code: &str, message: &str) -> Response {
    gerror(400, code, message)
}

/// The values of a `Prefer` header (several headers or comma-separated), lower-cased keys:
/// `outlook.timezone`, `odata.maxpagesize`, `outlook.body-content-type`, `idtype`.
pub(crate) fn preferences(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for v in headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for p in v.split(',') {
            if let Some((k, val)) = p.split_once('=') {
                out.insert(
                    k.trim().to_ascii_lowercase(),
                    val.trim().trim_matches('"').to_string(),
                );
            }
        }
    }
    out
}

/// The zone responses use: `Prefer: outlook.timezone` (default UTC).
pub(crate) fn response_zone(headers: &HeaderMap) -> Result<(String, chrono_tz::Tz), Response> {
    let name = preferences(headers)
        .remove("outlook.timezone")
        .unwrap_or_else(|| "UTC".into());
    match recurrence::zone(&name) {
        Some(tz) => Ok((name, tz)),
        None => Err(bad_request(
            "ErrorTimeZoneNotSupported",
            &format!("The time zone {name} is not supported."),
        )),
    }
}
