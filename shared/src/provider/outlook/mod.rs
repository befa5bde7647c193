//! Microsoft Outlook through Graph v1.0 (provider-semantics §2).
//!
//! - Sync (https://learn.microsoft.com/graph/api/event-delta): `calendarView/delta` on the
//!   link's calendar over a fixed window ([`WINDOW_PAST_DAYS`] back, [`WINDOW_FUTURE_DAYS`]
//!   ahead of the day the round was anchored), paged by `@odata.nextLink` until the
//!   `@odata.deltaLink`, which is the cursor together with its window. When the window's
//!   start lies more than [`REANCHOR_DAYS`] behind the wanted one, a new full round is
//!   anchored (reconciled by changeKey, so unchanged events cost nothing). 410 /
//!   `syncStateNotFound` / `resyncRequired` / `syncStateInvalid`, also in the middle of a
//!   round, restarts the round from its window: a full listing, reconciled against the
//!   mappings, never a wipe.
//! - A series is one remote object, addressed by the master's id, versioned by the
//!   master's changeKey: its data is the master, the exceptions `/instances` lists, and an
//!   EXDATE for each occurrence the rule generates that `/instances` does not list (Graph
//!   never signals a cancelled occurrence otherwise). Occurrences and exceptions in a delta
//!   page only name their series.
//! - Removals (`@removed`, or mapped events missing from a full round) are confirmed with a
//!   GET: an event that still exists (moved outside the window) is never deleted.
//! - Writes: creates carry a deterministic `transactionId` (a retried create answers the
//!   event it made) and our UID in an extended property (a create whose answer was lost is
//!   looked up by it); `If-Match: W/"<changeKey>"` on update and delete (412
//!   `ErrorIrresolvableConflict`); several writes go through `$batch` (20 per request).
//!   Exceptions are PATCHed onto their occurrence ids, cancelled occurrences DELETEd.
//! - Throttling (https://learn.microsoft.com/graph/throttling-limits): at most
//!   [`MAILBOX_CONCURRENCY`] requests in flight per mailbox in this process; 429, 503 and
//!   504 are retried after `Retry-After` (else exponential backoff with jitter), also for
//!   single items of a batch.
//! - Every request asks `Prefer: outlook.timezone="UTC"`, `outlook.body-content-type="text"`
//!   and `IdType="ImmutableId"` (ids survive folder moves).

pub mod mapping;
pub mod module;
pub mod push;
pub mod recurrence;
mod writes;

pub use module::{MODULE, OAUTH};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::{
    transport, Cursor, Provider, ProviderError, PullResult, RemoteRef, RequestCounter, Write,
    WriteOutcome, WriteResult,
};
use crate::oauth::{AuthError, TokenSource};
use mapping::Options;

/// Days before today a delta window starts.
pub const WINDOW_PAST_DAYS: i64 = 365;
/// Days after today a delta window ends.
pub const WINDOW_FUTURE_DAYS: i64 = 730;
/// A window whose start is this many days behind the wanted one is re-anchored.
pub const REANCHOR_DAYS: i64 = 30;
/// Requests in flight per mailbox (Outlook's limit, throttling-limits).
pub const MAILBOX_CONCURRENCY: usize = 4;
/// Rounds restarted after a lost token before a pull gives up (the next pull tries again).
const MAX_RESTARTS: u32 = 3;
/// Largest Graph response read (bytes).
const MAX_BYTES: usize = 50 << 20;
/// Page size asked of delta and instances.
const PAGE: usize = 200;
/// The `Prefer` header of every request.
const PREFER: &str = "outlook.timezone=\"UTC\", outlook.body-content-type=\"text\", IdType=\"ImmutableId\", odata.maxpagesize=200";

/// Retry schedule for throttling and server errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First delay when the answer has no `Retry-After`.
    pub min_delay: Duration,
    /// Largest delay (also caps `Retry-After`).
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_retries: 8,
        }
    }
}

/// The per-mailbox gate (one per account key, shared by every calendar of the account in
/// this process).
fn gate_for(account: &str) -> Arc<Semaphore> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let mut map = GATES
        .get_or_init(Default::default)
        .lock()
        .expect("gate map");
    map.entry(account.to_string())
        .or_insert_with(|| Arc::new(Semaphore::new(MAILBOX_CONCURRENCY)))
        .clone()
}

/// The cursor: the round's `@odata.deltaLink` and its window (UTC).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct DeltaCursor {
    delta: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// One Graph answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
}

/// One Outlook calendar, addressed as `<api root>/me/calendars/<calendarId>` (the API root
/// is `https://graph.microsoft.com/v1.0`, or an emulator's).
pub struct OutlookCalendar {
    http: reqwest::Client,
    api: String,
    calendar_id: String,
    tokens: Arc<dyn TokenSource>,
    counter: RequestCounter,
    batches: AtomicU32,
    gate: Arc<Semaphore>,
    retry: RetryPolicy,
    opts: Options,
    /// The window of the current round (set by `pull`; fetches list instances in it).
    window: Mutex<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Split a calendar URL into API root and calendar id.
///
/// Errors: the URL has no `/me/calendars/<id>` part.
pub fn parse_calendar_url(url: &str) -> Result<(String, String), ProviderError> {
    let (api, id) = url
        .rsplit_once("/me/calendars/")
        .ok_or_else(|| ProviderError::Protocol {
            url: super::redacted(url),
            detail: "not an Outlook calendar URL (<api root>/me/calendars/<id>)".into(),
        })?;
    if id.is_empty() || id.contains('/') || !api.starts_with("http") {
        return Err(ProviderError::Protocol {
            url: super::redacted(url),
            detail: "not an Outlook calendar URL (<api root>/me/calendars/<id>)".into(),
        });
    }
    Ok((api.to_string(), id.to_string()))
}

/// The window a round anchored now covers.
pub fn wanted_window(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    (
        day - chrono::Duration::days(WINDOW_PAST_DAYS),
        day + chrono::Duration::days(WINDOW_FUTURE_DAYS),
    )
}

/// Codes that mean the delta token is gone (delta-query-overview, errors).
fn token_lost(status: u16, body: &Value) -> bool {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    status == 410
        || matches!(
            code.as_str(),
            "syncstatenotfound" | "syncstateinvalid" | "resyncrequired"
        )
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

fn auth_failure(url: &str, e: AuthError) -> ProviderError {
    if e.needs_reconnect() {
        ProviderError::Unauthorized(url.into())
    } else {
        ProviderError::Unavailable {
            url: url.into(),
            detail: e.to_string(),
        }
    }
}

impl OutlookCalendar {
    /// A provider for the calendar at `url` whose bearer tokens come from `tokens`; requests
    /// are gated per `account` (any stable key of the mailbox, e.g. its secret ARN).
    ///
    /// Errors: `url` is not `<api root>/me/calendars/<calendarId>`.
    pub fn new(
        http: reqwest::Client,
        url: &str,
        tokens: Arc<dyn TokenSource>,
        account: &str,
    ) -> Result<Self, ProviderError> {
        let (api, calendar_id) = parse_calendar_url(url)?;
        Ok(Self {
            http,
            api,
            calendar_id,
            tokens,
            counter: RequestCounter::default(),
            batches: AtomicU32::new(0),
            gate: gate_for(account),
            retry: RetryPolicy::default(),
            opts: Options::default(),
            window: Mutex::new(wanted_window(Utc::now())),
        })
    }

    /// Replace the retry schedule (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `$batch` requests sent so far.
    pub fn batch_requests(&self) -> u32 {
        self.batches.load(Ordering::Relaxed)
    }

    /// The current bearer token.
    ///
    /// Errors: see [`AuthError`].
    pub async fn bearer(&self) -> Result<SecretString, AuthError> {
        self.tokens.bearer().await
    }

    fn calendar_url(&self) -> String {
        format!(
            "{}/me/calendars/{}",
            self.api,
            super::percent_encode(&self.calendar_id)
        )
    }

    fn event_url(&self, id: &str) -> String {
        format!("{}/me/events/{}", self.api, super::percent_encode(id))
    }

    fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        *self.window.lock().expect("window")
    }

    fn delays(&self) -> backon::ExponentialBackoff {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter()
            .build()
    }

    /// One request (bearer, `Prefer`, the mailbox gate), retried on throttling and server
    /// errors after `Retry-After`; a 401 refreshes the token once.
    pub(crate) async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Answer, ProviderError> {
        self.call_n(method, url, body, if_match, 1).await
    }

    /// [`Self::call`] holding `permits` of the mailbox gate (a `$batch` envelope holds as
    /// many as the service runs of it at once).
    pub(crate) async fn call_n(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        permits: u32,
    ) -> Result<Answer, ProviderError> {
        let mut delays = self.delays();
        let mut refreshed = false;
        let mut transport_retries = 0;
        loop {
            let bearer = self
                .tokens
                .bearer()
                .await
                .map_err(|e| auth_failure(url, e))?;
            let permit =
                self.gate
                    .acquire_many(permits)
                    .await
                    .map_err(|_| ProviderError::Unavailable {
                        url: url.into(),
                        detail: "mailbox gate closed".into(),
                    })?;
            self.counter.hit();
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(bearer.expose_secret())
                .header("prefer", PREFER);
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(e) = if_match {
                req = req.header("if-match", e);
            }
            let sent = req.send().await;
            let outcome = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let after = retry_after(resp.headers());
                    let text = super::body_text(url, resp, MAX_BYTES, "Graph response").await?;
                    Ok((status, after, text))
                }
                Err(e) => Err(transport(url, e)),
            };
            drop(permit);
            match outcome {
                Err(e) if e.is_permanent() => return Err(e),
                // A transport failure is tried again twice; the job's own retry does the rest.
                Err(e) => match delays.next().filter(|_| transport_retries < 2) {
                    Some(d) => {
                        transport_retries += 1;
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return Err(e),
                },
                Ok((401, _, _)) if !refreshed => {
                    refreshed = true;
                    self.tokens
                        .refresh_after_401(&bearer)
                        .await
                        .map_err(|e| auth_failure(url, e))?;
                }
                Ok((401, _, _)) => return Err(ProviderError::Unauthorized(url.into())),
                Ok((status, after, text)) if retryable(status) => match delays.next() {
                    Some(d) => {
                        let wait = after.map(|a| a.min(self.retry.max_delay)).unwrap_or(d);
                        tracing::info!(
                            url,
                            status,
                            delay_ms = wait.as_millis() as u64,
                            "Graph throttled or busy; waiting"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        return Err(ProviderError::Unavailable {
                            url: url.into(),
                            detail: format!(
                                "HTTP {status} after {} retries: {}",
                                self.retry.max_retries,
                                super::snippet(&text)
                            ),
                        })
                    }
                },
                Ok((status, _, text)) => {
                    let body = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::Null)
                    };
                    return Ok(Answer { status, body });
                }
            }
        }
    }

    fn unexpected(url: &str, a: &Answer) -> ProviderError {
        let detail = format!(
            "{} {}",
            a.body["error"]["code"].as_str().unwrap_or(""),
            a.body["error"]["message"].as_str().unwrap_or("")
        );
        if a.status >= 500 {
            ProviderError::Unavailable {
                url: url.into(),
                detail,
            }
        } else {
            ProviderError::Rejected {
                url: url.into(),
                status: a.status,
                detail,
            }
        }
    }

    /// Every page of a delta round starting at `url`; `Ok(None)` when the token is gone.
    async fn round(&self, url: &str) -> Result<Option<(Vec<Value>, String)>, ProviderError> {
        let mut items = Vec::new();
        let mut next = url.to_string();
        loop {
            let a = self.call(Method::GET, &next, None, None).await?;
            if token_lost(a.status, &a.body) {
                return Ok(None);
            }
            if a.status != 200 {
                return Err(Self::unexpected(&next, &a));
            }
            items.extend(a.body["value"].as_array().cloned().unwrap_or_default());
            if let Some(n) = a.body["@odata.nextLink"].as_str() {
                next = self.same_origin(n)?;
                continue;
            }
            let delta =
                a.body["@odata.deltaLink"]
                    .as_str()
                    .ok_or_else(|| ProviderError::Protocol {
                        url: next.clone(),
                        detail: "a delta page with neither nextLink nor deltaLink".into(),
                    })?;
            return Ok(Some((items, self.same_origin(delta)?)));
        }
    }

    /// A link the service answered, accepted only on the API's own origin (a page must not
    /// send the bearer token elsewhere).
    fn same_origin(&self, link: &str) -> Result<String, ProviderError> {
        let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
        if origin(link).is_some() && origin(link) == origin(&self.api) {
            Ok(link.to_string())
        } else {
            Err(ProviderError::Protocol {
                url: super::redacted(&self.api),
                detail: "a paging link to another origin".into(),
            })
        }
    }

    fn initial_url(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!(
            "{}/calendarView/delta?startDateTime={}&endDateTime={}",
            self.calendar_url(),
            f(from),
            f(to)
        )
    }

    /// The event `id` with our extended properties, `None` when it is gone.
    async fn get_event(&self, id: &str) -> Result<Option<Value>, ProviderError> {
        let expand = format!(
            "singleValueExtendedProperties($filter=id eq '{}' or id eq '{}')",
            mapping::prop_id(mapping::UID_NAME),
            mapping::prop_id(mapping::X_NAME)
        );
        let url = format!(
            "{}?$expand={}",
            self.event_url(id),
            super::percent_encode(&expand)
        );
        let a = self.call(Method::GET, &url, None, None).await?;
        match a.status {
            200 => Ok(Some(a.body)),
            404 => Ok(None),
            _ => Err(Self::unexpected(&url, &a)),
        }
    }

    /// Occurrences and exceptions of the master `id` starting in `[from, to)`, every page.
    pub(crate) async fn instances(
        &self,
        id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Value>, ProviderError> {
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut url = format!(
            "{}/instances?startDateTime={}&endDateTime={}&$top={PAGE}",
            self.event_url(id),
            f(from),
            f(to)
        );
        let mut out = Vec::new();
        loop {
            let a = self.call(Method::GET, &url, None, None).await?;
            if a.status != 200 {
                return Err(Self::unexpected(&url, &a));
            }
            out.extend(a.body["value"].as_array().cloned().unwrap_or_default());
            match a.body["@odata.nextLink"].as_str() {
                Some(n) => url = self.same_origin(n)?,
                None => return Ok(out),
            }
        }
    }

    /// The series (or single event) `id` as VCALENDAR text and its version.
    async fn read_series(&self, id: &str) -> Result<Option<RemoteRef>, ProviderError> {
        let Some(ev) = self.get_event(id).await? else {
            return Ok(None);
        };
        let etag = ev["changeKey"].as_str().map(super::Etag::from);
        let data = if ev["type"] == "seriesMaster" {
            // From the series' start to the window's end: exceptions and cancellations
            // before the window are read too, so a series reads back whole.
            let to = self.window().1;
            let from = mapping::utc_of(&ev["start"])
                .map(|t| t - chrono::Duration::days(1))
                .unwrap_or(self.window().0);
            let inst = self.instances(id, from, to).await?;
            let exceptions: Vec<Value> = inst
                .iter()
                .filter(|i| i["type"] == "exception")
                .cloned()
                .collect();
            let cancelled = cancelled_occurrences(&ev, &inst, (from, to));
            mapping::to_ical(&ev, &exceptions, &cancelled)
        } else {
            mapping::to_ical(&ev, &[], &[])
        };
        match data {
            Ok(d) => Ok(Some(RemoteRef {
                href: id.into(),
                etag,
                data: Some(d),
            })),
            Err(reason) => Err(ProviderError::Protocol {
                url: self.event_url(id),
                detail: reason,
            }),
        }
    }
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The original starts of the occurrences `master`'s rule generates in the window that
/// `/instances` does not list: Graph's cancelled occurrences. All-day series compare dates.
pub fn cancelled_occurrences(
    master: &Value,
    instances: &[Value],
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<DateTime<Utc>> {
    let Ok(ical) = mapping::to_ical(master, &[], &[]) else {
        return Vec::new();
    };
    let all_day = master["isAllDay"].as_bool().unwrap_or(false);
    let zone = mapping::series_zone(master).unwrap_or(chrono_tz::UTC);
    let key = |t: DateTime<Utc>| {
        if all_day {
            t.with_timezone(&zone)
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
        } else {
            t
        }
    };
    let listed: std::collections::HashSet<DateTime<Utc>> = instances
        .iter()
        .filter_map(|i| i["originalStart"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| key(t.with_timezone(&Utc)))
        .collect();
    let (occ, _) = crate::ical::occurrences_of(&ical, window.0, window.1, 5000);
    occ.into_iter()
        .map(|o| {
            if all_day {
                o.start
                    .date_naive()
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight")
                    .and_utc()
            } else {
                o.start
            }
        })
        .filter(|t| !listed.contains(t))
        .collect()
}

/// Group a round's items into series: id → (version when the item itself was listed).
fn group(items: &[Value]) -> (BTreeMap<String, Option<super::Etag>>, Vec<String>) {
    let mut series: BTreeMap<String, Option<super::Etag>> = BTreeMap::new();
    let mut removed = Vec::new();
    for it in items {
        let id = it["id"].as_str().unwrap_or_default().to_string();
        if it.get("@removed").is_some() {
            removed.push(id);
            continue;
        }
        match it["type"].as_str().unwrap_or("singleInstance") {
            "occurrence" | "exception" => {
                if let Some(m) = it["seriesMasterId"].as_str() {
                    series.entry(m.to_string()).or_insert(None);
                }
            }
            _ => {
                series.insert(id, it["changeKey"].as_str().map(super::Etag::from));
            }
        }
    }
    (series, removed)
}

#[async_trait]
impl Provider for OutlookCalendar {
    async fn pull(&self, cursor: Option<&Cursor>) -> Result<PullResult, ProviderError> {
        let wanted = wanted_window(Utc::now());
        let stored: Option<DeltaCursor> =
            cursor.and_then(|c| serde_json::from_str(c.as_str()).ok());
        let current = stored.filter(|c| (wanted.0 - c.from).num_days() <= REANCHOR_DAYS);
        let (mut full, mut window, mut url) = match &current {
            Some(c) => (false, (c.from, c.to), c.delta.clone()),
            None => (true, wanted, self.initial_url(wanted.0, wanted.1)),
        };
        *self.window.lock().expect("window") = window;
        let mut restarts = 0;
        let (items, delta) = loop {
            match self.round(&url).await? {
                Some(r) => break r,
                None if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::info!(calendar = %self.calendar_id, "delta token lost; full round over the window");
                    full = true;
                    window = current.as_ref().map(|c| (c.from, c.to)).unwrap_or(wanted);
                    url = self.initial_url(window.0, window.1);
                }
                None => {
                    return Err(ProviderError::Protocol {
                        url: super::redacted(&url),
                        detail: "the service refused a new delta round (410)".into(),
                    })
                }
            }
        };
        let (series, removed_ids) = group(&items);
        let mut changed: Vec<RemoteRef> = series
            .into_iter()
            .map(|(href, etag)| RemoteRef {
                href: href.into(),
                etag,
                data: None,
            })
            .collect();
        let mut removed = Vec::new();
        // A removal may be a move out of the window: only what is gone is removed.
        for id in removed_ids {
            if changed.iter().any(|c| c.href == id) {
                continue;
            }
            match self.get_event(&id).await? {
                None => removed.push(super::RemoteId::from(id)),
                Some(ev) if ev["type"] == "occurrence" || ev["type"] == "exception" => {
                    if let Some(m) = ev["seriesMasterId"].as_str() {
                        changed.push(RemoteRef {
                            href: m.into(),
                            etag: None,
                            data: None,
                        });
                    }
                }
                Some(ev) => changed.push(RemoteRef {
                    href: id.into(),
                    etag: ev["changeKey"].as_str().map(super::Etag::from),
                    data: None,
                }),
            }
        }
        let c = DeltaCursor {
            delta,
            from: window.0,
            to: window.1,
        };
        Ok(PullResult {
            changed,
            removed,
            unreadable: Vec::new(),
            cursor: Cursor::new(serde_json::to_string(&c).unwrap_or_default()),
            full,
        })
    }

    async fn fetch(&self, hrefs: &[super::RemoteId]) -> Result<Vec<RemoteRef>, ProviderError> {
        let mut out = Vec::new();
        for h in hrefs {
            match self.read_series(h).await {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                // One unreadable series must not stop the others (as for Google, it is
                // left out; issue 13 makes these the event's `error`).
                Err(ProviderError::Protocol { detail, .. }) => {
                    tracing::warn!(href = %h, %detail, "Outlook event cannot be read; left out");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn confirm_removed(
        &self,
        hrefs: &[super::RemoteId],
    ) -> Result<Vec<super::RemoteId>, ProviderError> {
        let mut gone = Vec::new();
        for h in hrefs {
            if self.get_event(h).await?.is_none() {
                gone.push(h.clone());
            }
        }
        Ok(gone)
    }

    async fn create(&self, uid: &str, ical: &str) -> Result<WriteResult, ProviderError> {
        writes::create(self, uid, ical).await
    }

    async fn update(
        &self,
        href: &super::RemoteId,
        ical: &str,
        etag: Option<&super::Etag>,
    ) -> Result<WriteResult, ProviderError> {
        writes::update(self, href, ical, etag.map(|e| e.as_str())).await
    }

    async fn delete(
        &self,
        href: &super::RemoteId,
        etag: Option<&super::Etag>,
    ) -> Result<(), ProviderError> {
        writes::delete(self, href, etag.map(|e| e.as_str())).await
    }

    async fn write_all(&self, w: &[Write<'_>]) -> Vec<WriteOutcome> {
        writes::write_all(self, w).await
    }

    fn project(&self, ical: &str) -> Option<String> {
        let to = self.window().1;
        mapping::project(ical, &self.opts, DateTime::<Utc>::MIN_UTC, to)
    }

    fn requests(&self) -> u32 {
        self.counter.get()
    }
}

impl OutlookCalendar {
    /// Every series of the calendar (`GET …/events`, all pages), each read whole with its
    /// instances up to `to` (tools and tests: the delta window does not limit it).
    ///
    /// Errors: as for a pull.
    pub async fn read_all(&self, to: DateTime<Utc>) -> Result<Vec<RemoteRef>, ProviderError> {
        let mut url = format!("{}?$top={PAGE}", self.events_url());
        let mut ids = Vec::new();
        loop {
            let a = self.call(Method::GET, &url, None, None).await?;
            if a.status != 200 {
                return Err(Self::unexpected(&url, &a));
            }
            ids.extend(
                a.body["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["id"].as_str().map(str::to_string)),
            );
            match a.body["@odata.nextLink"].as_str() {
                Some(n) => url = self.same_origin(n)?,
                None => break,
            }
        }
        let keep = self.window();
        *self.window.lock().expect("window") = (keep.0, to);
        let ids: Vec<super::RemoteId> = ids.into_iter().map(super::RemoteId::from).collect();
        let out = self.fetch(&ids).await;
        *self.window.lock().expect("window") = keep;
        out
    }

    pub(crate) fn options(&self) -> &Options {
        &self.opts
    }

    /// Write attendees of the events the calendar's owner organizes (the link opted in):
    /// the owner's address is read from the calendar (`GET /me/calendars/{id}`, `owner`).
    ///
    /// Errors: the calendar cannot be read.
    pub async fn with_owner_attendees(mut self) -> Result<Self, ProviderError> {
        let url = self.calendar_url();
        let a = self.call(Method::GET, &url, None, None).await?;
        if a.status != 200 {
            return Err(Self::unexpected(&url, &a));
        }
        self.opts.organizer = a.body["owner"]["address"].as_str().map(str::to_string);
        Ok(self)
    }
    pub(crate) fn api(&self) -> &str {
        &self.api
    }
    pub(crate) fn events_url(&self) -> String {
        format!("{}/events", self.calendar_url())
    }
    pub(crate) fn event_path(&self, id: &str) -> String {
        format!("/me/events/{}", super::percent_encode(id))
    }
    pub(crate) fn calendar_path(&self) -> String {
        format!(
            "/me/calendars/{}/events",
            super::percent_encode(&self.calendar_id)
        )
    }
    pub(crate) fn event_url_of(&self, id: &str) -> String {
        self.event_url(id)
    }
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Value>, ProviderError> {
        self.get_event(id).await
    }
    pub(crate) fn count_batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn next_delay(&self, delays: &mut backon::ExponentialBackoff) -> Option<Duration> {
        delays.next()
    }
    pub(crate) fn backoff(&self) -> backon::ExponentialBackoff {
        self.delays()
    }
    pub(crate) fn max_delay(&self) -> Duration {
        self.retry.max_delay
    }
}
