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
//!   [`MAILBOX_CONCURRENCY`] requests in flight per mailbox in this process, and
//!   [`MAILBOX_REQUESTS_PER_10_MIN`] per mailbox across every Lambda (a `$batch` counts as
//!   its requests, [`crate::store::SharedQuota`]); 429, 503 and
//!   504 are retried after `Retry-After` (else exponential backoff with jitter), also for
//!   single items of a batch.
//! - Every request asks `Prefer: outlook.timezone="UTC"`, `outlook.body-content-type="text"`
//!   and `IdType="ImmutableId"` (ids survive folder moves).

mod calendars;
mod delta;
pub mod mapping;
pub mod module;
pub mod push;
mod reading;
pub mod recurrence;
mod writes;

pub use delta::{cancelled_occurrences, wanted_window};
pub use module::{INFO, MODULE, OAUTH};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::{
    auth_failure, transport, Cursor, Provider, ProviderError, PullResult, RemoteRef,
    RequestCounter, Write, WriteOutcome, WriteResult,
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

/// Requests per mailbox per 10 minutes Outlook allows one application
/// (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits: 10,000).
pub const MAILBOX_REQUESTS_PER_10_MIN: u32 = 10_000;

/// The mailbox's quota shared by every Lambda ([`MAILBOX_REQUESTS_PER_10_MIN`]).
pub(crate) fn shared_quota_for(
    store: &crate::store::Store,
    account: &str,
) -> Arc<crate::store::SharedQuota> {
    super::shared_quota(
        store,
        &format!("outlook:{account}"),
        MAILBOX_REQUESTS_PER_10_MIN,
        600_000,
    )
}
/// Rounds restarted after a lost token before a pull gives up (the next pull tries again).
const MAX_RESTARTS: u32 = 3;
/// Largest Graph response read (bytes).
const MAX_BYTES: usize = 50 << 20;
/// Page size asked of delta and instances.
const PAGE: usize = 200;
/// The `Prefer` header of every request.
const PREFER: &str = "outlook.timezone=\"UTC\", outlook.body-content-type=\"text\", IdType=\"ImmutableId\", odata.maxpagesize=200";

pub use super::RetryPolicy;

/// The per-mailbox gate (one per account key, shared by every calendar of the account in
/// this process).
fn gate_for(account: &str) -> Arc<Semaphore> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    super::per_account(&GATES, account, || Semaphore::new(MAILBOX_CONCURRENCY))
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
    /// The mailbox's quota shared with every other Lambda ([`crate::store::SharedQuota`]).
    shared: Option<Arc<crate::store::SharedQuota>>,
    retry: RetryPolicy,
    opts: Options,
    /// The window of the current round (set by `pull`; fetches list instances in it).
    window: Mutex<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Split a calendar URL into API root and (decoded) calendar id: the URL holds the id
/// percent-encoded, and Graph's ids often end in `=`.
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
    Ok((api.to_string(), super::percent_decode(id)))
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
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
            shared: None,
            retry: RetryPolicy {
                max_delay: Duration::from_secs(30),
                max_retries: 8,
                ..RetryPolicy::default()
            },
            opts: Options::default(),
            window: Mutex::new(wanted_window(Utc::now())),
        })
    }

    /// Count every request against `quota`, the mailbox's quota shared by all Lambdas (a
    /// `$batch` envelope counts as the requests it carries).
    pub fn with_shared_quota(mut self, quota: Arc<crate::store::SharedQuota>) -> Self {
        self.shared = Some(quota);
        self
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
        *self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn delays(&self) -> backon::ExponentialBackoff {
        self.retry.backoff()
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
            if let Some(q) = &self.shared {
                q.take(permits.max(1))
                    .await
                    .map_err(|e| ProviderError::Unavailable {
                        url: url.into(),
                        detail: format!("shared quota: {e}"),
                    })?;
            }
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
                    let after = super::retry_after(resp.headers());
                    let text =
                        super::body_text(|| url.to_string(), resp, MAX_BYTES, "Graph response")
                            .await?;
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
                Ok((status, after, text)) if retryable(status) => {
                    match self.retry.next_wait(&mut delays, after) {
                        Some(wait) => {
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
                    }
                }
                Ok((status, _, text)) => match super::json_body(url, status, &text) {
                    Ok(body) => return Ok(Answer { status, body }),
                    // Cut short in transit: tried again like a transport failure.
                    Err(e) => match delays.next().filter(|_| transport_retries < 2) {
                        Some(d) => {
                            transport_retries += 1;
                            tracing::info!(url, error = %e, "Graph body incomplete; trying again");
                            tokio::time::sleep(d).await;
                        }
                        None => return Err(e),
                    },
                },
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

    /// The `$expand` that brings our extended properties (UID, `X-` properties).
    fn expand(&self) -> String {
        format!(
            "singleValueExtendedProperties($filter=id eq '{}' or id eq '{}')",
            mapping::prop_id(mapping::UID_NAME),
            mapping::prop_id(mapping::X_NAME)
        )
    }

    /// The event `id` with our extended properties, `None` when it is gone.
    async fn get_event(&self, id: &str) -> Result<Option<Value>, ProviderError> {
        let url = format!(
            "{}?$expand={}",
            self.event_url(id),
            super::percent_encode(&self.expand())
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
}

#[async_trait]
impl Provider for OutlookCalendar {
    async fn pull(&self, cursor: Option<&Cursor>) -> Result<PullResult, ProviderError> {
        delta::pull(self, cursor).await
    }

    async fn fetch(&self, hrefs: &[super::RemoteId]) -> Result<Vec<RemoteRef>, ProviderError> {
        delta::fetch(self, hrefs).await
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_calendar_url_gives_its_id_decoded() {
        let (api, id) =
            super::parse_calendar_url("https://graph.microsoft.com/v1.0/me/calendars/AAMkAGI2%3D")
                .unwrap();
        assert_eq!(
            (api.as_str(), id.as_str()),
            ("https://graph.microsoft.com/v1.0", "AAMkAGI2=")
        );
        for bad in [
            "https://graph.microsoft.com/v1.0/me/calendar",
            "https://graph.microsoft.com/v1.0/me/calendars/",
            "https://graph.microsoft.com/v1.0/me/calendars/a/events",
        ] {
            assert!(super::parse_calendar_url(bad).is_err(), "{bad}");
        }
    }
}
