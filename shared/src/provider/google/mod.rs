//! Google Calendar API v3 provider.
//!
//! Behaviour taken from the API documentation (provider-semantics §1):
//! - Sync (https://developers.google.com/workspace/calendar/api/guides/sync): a full
//!   `events.list` (`showDeleted=true`, `singleEvents=false`) paged by `nextPageToken` until
//!   the last page's `nextSyncToken`; incremental lists repeat the same query with `syncToken`.
//!   410 `fullSyncRequired` → full re-enumeration, reconciled by the engine against the
//!   mappings (no wipe, no duplicate).
//! - A series is one remote object, addressed by the master's event id: its data is the master
//!   plus its exceptions (`iCalUID` list). Its version is the master's etag, followed by `+` and
//!   a digest of the exceptions' etags when it has any.
//! - Writes: `events.insert` with a deterministic client id (base32hex) so a retried create
//!   meets 409 `duplicate` instead of duplicating; exceptions are written to their instance
//!   ids (`<masterId>_<originalStart UTC>`); `If-Match` on update and delete (412
//!   `conditionNotMet`); every write carries `sendUpdates=none` so sync never e-mails guests.
//!   Several writes go through the batch endpoint ([`batch`], …/guides/batch): masters in one
//!   batch, then their exceptions in another (a batch runs its calls in any order).
//! - Errors (https://developers.google.com/workspace/calendar/api/guides/errors): 403
//!   `userRateLimitExceeded`/`rateLimitExceeded`, 429 and 5xx are retried with exponential
//!   backoff and jitter; requests are paced per account below the documented 600
//!   requests/minute/user (…/guides/quota).
//! - Push (https://developers.google.com/workspace/calendar/api/guides/push): `events.watch`
//!   and `channels.stop`, see [`GoogleCalendar::watch`].

pub mod batch;
mod calendars;
pub mod mapping;
pub mod module;
pub mod push;
pub use push::Channel;
mod read;
mod write;
use write::single;

pub use module::{API_ROOT, CALENDAR_SCOPE, INFO, MODULE, OAUTH};

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    auth_failure, snippet, transport, Provider, ProviderError, PullResult, RemoteRef,
    RequestCounter, Write, WriteOutcome, WriteResult,
};
use crate::oauth::{AuthError, TokenSource};

/// Requests per minute per user the API allows (quota guide, counted over a sliding
/// minute); calsync paces at [`crate::store::quota::HEADROOM`] of it, so that with a burst
/// of [`BURST`] no minute carries more and quota errors stay the exception.
pub const USER_REQUESTS_PER_MINUTE: u32 = 600;
/// Burst allowed by the per-account pacer: the calls of one batch count at once, so the
/// engine writes in chunks of this many ([`super::registry::ProviderInfo::write_batch`]).
pub const BURST: u32 = crate::store::quota::BURST;

pub use super::RetryPolicy;

/// One Google calendar, addressed as `<api root>/calendars/<calendarId>` (the API root is
/// `https://www.googleapis.com/calendar/v3`, or an emulator's).
pub struct GoogleCalendar {
    http: reqwest::Client,
    api: String,
    calendar_id: String,
    tokens: Arc<dyn TokenSource>,
    counter: RequestCounter,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// The account's quota shared with every other Lambda ([`crate::store::SharedQuota`]).
    shared: Option<Arc<crate::store::SharedQuota>>,
    retry: RetryPolicy,
    /// Master id → iCalUID, learnt while listing (to fetch a series by iCalUID).
    ical_uids: Mutex<HashMap<String, String>>,
}

/// The account's quota shared by every Lambda ([`USER_REQUESTS_PER_MINUTE`] a minute).
pub(crate) fn shared_quota_for(
    store: &crate::store::Store,
    account: &str,
) -> Arc<crate::store::SharedQuota> {
    super::shared_quota(
        store,
        &format!("google:{account}"),
        USER_REQUESTS_PER_MINUTE,
        60_000,
    )
}

/// The per-process pacer of `account` (smooths calls within the shared quota).
fn limiter_for(account: &str) -> Arc<DefaultDirectRateLimiter> {
    static LIMITERS: OnceLock<Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>> =
        OnceLock::new();
    super::per_account(&LIMITERS, account, || {
        let per_call = std::time::Duration::from_secs_f64(
            60.0 / (f64::from(USER_REQUESTS_PER_MINUTE) * crate::store::quota::HEADROOM),
        );
        let quota = Quota::with_period(per_call)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN));
        RateLimiter::direct(quota)
    })
}

/// Split a calendar URL into API root and (decoded) calendar id.
///
/// Errors: the URL has no `/calendars/<id>` part.
pub fn parse_calendar_url(url: &str) -> Result<(String, String), ProviderError> {
    let bad = || ProviderError::Protocol {
        url: super::redacted(url),
        detail: "a Google calendar URL is <api root>/calendars/<calendarId>".into(),
    };
    let (api, rest) = url
        .trim_end_matches('/')
        .split_once("/calendars/")
        .ok_or_else(bad)?;
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    let id = percent_decode(rest);
    Ok((api.to_string(), id))
}

use super::percent_decode;
pub use super::percent_encode;

/// The client event id we give the event `uid`: base32hex (`[0-9a-v]`), 42 characters, the
/// same on every attempt (https://developers.google.com/workspace/calendar/api/v3/reference/events#id).
pub fn event_id_for(uid: &str) -> String {
    let digest = hex::encode(Sha256::digest(uid.as_bytes()));
    format!("cs{}", &digest[..40])
}

/// Version of a series: the master etag, plus a digest of the exceptions' etags.
fn series_etag(items: &[&Value]) -> Option<String> {
    let master = items.iter().find(|e| e.get("recurringEventId").is_none())?;
    let metag = master["etag"].as_str()?.to_string();
    let mut rest: Vec<String> = items
        .iter()
        .filter(|e| e.get("recurringEventId").is_some())
        .map(|e| {
            format!(
                "{}={}",
                e["id"].as_str().unwrap_or(""),
                e["etag"].as_str().unwrap_or("")
            )
        })
        .collect();
    if rest.is_empty() {
        return Some(metag);
    }
    rest.sort();
    let digest = hex::encode(Sha256::digest(rest.join("\n").as_bytes()));
    Some(format!("{metag}+{}", &digest[..16]))
}

/// The master's etag inside a series version (for `If-Match`).
fn master_etag(version: &str) -> &str {
    match version.rsplit_once("\"+") {
        Some((m, _)) => &version[..m.len() + 1],
        None => version,
    }
}

/// Reason of a Google error body (`error.errors[0].reason`).
fn reason_of(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

/// Rate limits, quota and server errors: backed off and tried again; when the retries are
/// used up the run stops with [`ProviderError::Unavailable`] and the events stay `pending`
/// for a later run, never `error`. Google's 403 reasons: `userRateLimitExceeded`,
/// `rateLimitExceeded`, `quotaExceeded` ("Calendar usage limits exceeded") and
/// `dailyLimitExceeded` (https://developers.google.com/workspace/calendar/api/guides/errors).
fn retryable(status: u16, body: &Value) -> bool {
    status == 429
        || status >= 500
        || (status == 403
            && matches!(
                reason_of(body),
                "userRateLimitExceeded"
                    | "rateLimitExceeded"
                    | "quotaExceeded"
                    | "dailyLimitExceeded"
            ))
}

struct Answer {
    status: u16,
    body: Value,
}

impl GoogleCalendar {
    /// A provider for the calendar at `url` whose bearer tokens come from `tokens` (a 401 asks
    /// it for a fresh one once per request); requests are paced per `account` (any stable key
    /// of the Google account, e.g. its secret ARN).
    ///
    /// Errors: `url` is not `<api root>/calendars/<calendarId>`.
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
            limiter: limiter_for(account),
            shared: None,
            retry: RetryPolicy::default(),
            ical_uids: Mutex::new(HashMap::new()),
        })
    }

    /// The current bearer token.
    ///
    /// Errors: see [`AuthError`] (a revoked grant needs the user).
    pub async fn bearer(&self) -> Result<SecretString, AuthError> {
        self.tokens.bearer().await
    }

    /// Replace the retry schedule (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Count every call against `quota`, the account's quota shared by all Lambdas (the
    /// per-process pacer still smooths calls within it).
    pub fn with_shared_quota(mut self, quota: Arc<crate::store::SharedQuota>) -> Self {
        self.shared = Some(quota);
        self
    }

    fn events_url(&self) -> String {
        format!(
            "{}/calendars/{}/events",
            self.api,
            percent_encode(&self.calendar_id)
        )
    }

    fn event_url(&self, id: &str) -> String {
        format!("{}/{}", self.events_url(), percent_encode(id))
    }

    /// One HTTP request built by `build` (the bearer token is added here), paced by
    /// `permits` calls of the per-account quota, retried with exponential backoff and jitter
    /// on transport errors, 429, 5xx and 403 rate-limit reasons. Returns status, content type
    /// and body text; 401 → [`ProviderError::Unauthorized`], still busy after the retries →
    /// [`ProviderError::Unavailable`].
    async fn send(
        &self,
        url: &str,
        permits: usize,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(u16, String, String), ProviderError> {
        let mut delays = self.delays();
        let mut refreshed = false;
        loop {
            let bearer = self
                .tokens
                .bearer()
                .await
                .map_err(|e| auth_failure(url, e))?;
            if let Some(q) = &self.shared {
                q.take(permits.max(1) as u32)
                    .await
                    .map_err(|e| ProviderError::Unavailable {
                        url: url.into(),
                        detail: format!("shared quota: {e}"),
                    })?;
            }
            for _ in 0..permits.max(1) {
                self.limiter.until_ready().await;
            }
            self.counter.hit();
            let outcome = match build().bearer_auth(bearer.expose_secret()).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let ct = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    match super::body_text(
                        || url.to_string(),
                        resp,
                        crate::net::GOOGLE_MAX_BYTES,
                        "Google response",
                    )
                    .await
                    {
                        Ok(text) => Ok((status, ct, text)),
                        // Cut off mid-stream: retried below like any transport failure.
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(transport(url, e)),
            };
            let error_body = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
            // A success whose JSON body was cut short is a transport failure, never "empty".
            let outcome = match outcome {
                Ok((status, ct, text)) if ct.contains("json") => {
                    match super::json_body(url, status, &text) {
                        Ok(_) => Ok((status, ct, text)),
                        Err(e) => Err(e),
                    }
                }
                o => o,
            };
            let retry = match &outcome {
                Ok((status, _, text)) => retryable(*status, &error_body(text)),
                Err(e) => !e.is_permanent(),
            };
            if retry {
                if let Some(d) = delays.next() {
                    tracing::info!(
                        url,
                        delay_ms = d.as_millis() as u64,
                        "Google API busy; backing off"
                    );
                    tokio::time::sleep(d).await;
                    continue;
                }
            }
            let (status, ct, text) = outcome?;
            if status == 401 && !refreshed {
                // An access token can die before its expiry (revoked session, clock skew):
                // one fresh token and one more try before the link is parked.
                refreshed = true;
                self.tokens
                    .refresh_after_401(&bearer)
                    .await
                    .map_err(|e| auth_failure(url, e))?;
                continue;
            }
            if status == 401 {
                return Err(ProviderError::Unauthorized(url.into()));
            }
            let body = error_body(&text);
            if retryable(status, &body) {
                return Err(ProviderError::Unavailable {
                    url: url.into(),
                    detail: format!(
                        "HTTP {status} {} after {} retries",
                        reason_of(&body),
                        self.retry.max_retries
                    ),
                });
            }
            return Ok((status, ct, text));
        }
    }

    fn delays(&self) -> backon::ExponentialBackoff {
        self.retry.backoff()
    }

    /// One API call (see [`Self::send`]); the answer's body parsed as JSON.
    async fn call(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Answer, ProviderError> {
        let (status, _, text) = self
            .send(url, 1, || {
                let mut req = self.http.request(method.clone(), url).query(query);
                if let Some(m) = if_match {
                    req = req.header("If-Match", m);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                req
            })
            .await?;
        let body = super::json_body(url, status, &text)?;
        Ok(Answer { status, body })
    }

    /// Several independent calls: one alone goes out as itself, more go through the batch
    /// endpoint in batches of at most [`batch::MAX_CALLS`]. Calls answered with a retryable
    /// status are sent again (backoff as for single calls). One answer per call, in order.
    async fn call_many(&self, calls: Vec<batch::Call>) -> Vec<Result<Answer, ProviderError>> {
        if calls.len() == 1 {
            let c = &calls[0];
            let q: Vec<(&str, &str)> = c
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            return vec![
                self.call(
                    c.method.clone(),
                    &c.url,
                    &q,
                    c.body.as_ref(),
                    c.if_match.as_deref(),
                )
                .await,
            ];
        }
        let mut out: Vec<Option<Result<Answer, ProviderError>>> =
            (0..calls.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..calls.len()).collect();
        let mut delays = self.delays();
        while !pending.is_empty() {
            let mut busy = Vec::new();
            for chunk in pending.chunks(batch::MAX_CALLS) {
                let part: Vec<&batch::Call> = chunk.iter().map(|i| &calls[*i]).collect();
                match self.send_batch(&part).await {
                    Err(e) => chunk.iter().for_each(|i| out[*i] = Some(Err(e.clone()))),
                    Ok(answers) => {
                        for (i, (status, body)) in chunk.iter().zip(answers) {
                            if retryable(status, &body) {
                                busy.push(*i);
                            } else if status == 401 {
                                out[*i] =
                                    Some(Err(ProviderError::Unauthorized(calls[*i].url.clone())));
                            } else {
                                out[*i] = Some(Ok(Answer { status, body }));
                            }
                        }
                    }
                }
            }
            if busy.is_empty() {
                break;
            }
            match delays.next() {
                Some(d) => {
                    tracing::info!(
                        calls = busy.len(),
                        delay_ms = d.as_millis() as u64,
                        "Google API busy inside a batch; backing off"
                    );
                    tokio::time::sleep(d).await;
                }
                None => {
                    for i in &busy {
                        out[*i] = Some(Err(ProviderError::Unavailable {
                            url: calls[*i].url.clone(),
                            detail: format!(
                                "busy inside a batch after {} retries",
                                self.retry.max_retries
                            ),
                        }));
                    }
                    busy.clear();
                }
            }
            pending = busy;
        }
        out.into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(ProviderError::Protocol {
                        url: self.api.clone(),
                        detail: "batch call without an answer".into(),
                    })
                })
            })
            .collect()
    }

    /// One batch request; `(status, body)` per call in call order. Each call takes one permit
    /// of the per-account pacer (the quota counts calls, not batches).
    async fn send_batch(&self, calls: &[&batch::Call]) -> Result<Vec<(u16, Value)>, ProviderError> {
        let url = batch::batch_url(&self.api).ok_or_else(|| ProviderError::Protocol {
            url: self.api.clone(),
            detail: "API root is not an absolute URL".into(),
        })?;
        let boundary = format!("calsync_{}", uuid::Uuid::new_v4().simple());
        let body = batch::encode(calls, &boundary);
        let (status, ct, text) = self
            .send(&url, calls.len(), || {
                self.http
                    .post(&url)
                    .header(
                        "Content-Type",
                        format!("multipart/mixed; boundary={boundary}"),
                    )
                    .body(body.clone())
            })
            .await?;
        if status != 200 {
            let body = serde_json::from_str(&text).unwrap_or(json!({"raw": snippet(&text)}));
            return Err(Self::unexpected(&url, &Answer { status, body }));
        }
        batch::decode(&ct, &text, calls.len())
            .map_err(|detail| ProviderError::Protocol { url, detail })
    }

    fn unexpected(url: &str, a: &Answer) -> ProviderError {
        ProviderError::Rejected {
            url: url.into(),
            status: a.status,
            detail: snippet(&a.body.to_string()),
        }
    }
}

#[async_trait]
impl Provider for GoogleCalendar {
    async fn pull(&self, cursor: Option<&super::Cursor>) -> Result<PullResult, ProviderError> {
        self.read_changes(cursor).await
    }

    async fn fetch(&self, hrefs: &[super::RemoteId]) -> Result<Vec<RemoteRef>, ProviderError> {
        self.read_series(hrefs).await
    }

    async fn create(&self, uid: &str, ical: &str) -> Result<WriteResult, ProviderError> {
        single(self.write_all(&[Write::Create { uid, ical }]).await)
    }

    async fn update(
        &self,
        href: &super::RemoteId,
        ical: &str,
        etag: Option<&super::Etag>,
    ) -> Result<WriteResult, ProviderError> {
        single(self.write_all(&[Write::Update { href, ical, etag }]).await)
    }

    async fn delete(
        &self,
        href: &super::RemoteId,
        etag: Option<&super::Etag>,
    ) -> Result<(), ProviderError> {
        let mut r = self.write_all(&[Write::Delete { href, etag }]).await;
        r.pop().unwrap_or(Ok(None)).map(|_| ())
    }

    /// Masters first (inserts with deterministic ids, updates and deletes under `If-Match`),
    /// then the exceptions of the written masters at their instance ids: two batches for any
    /// number of writes (one call each when alone). A 409 on insert revives a deleted id or
    /// reports [`ProviderError::AlreadyExists`]; a refused exception rolls a created series
    /// back (a series without its exceptions and no synced base would read, on the next
    /// pull, as their removal).
    async fn write_all(&self, writes: &[Write<'_>]) -> Vec<WriteOutcome> {
        self.write_chunk(writes).await
    }

    fn project(&self, ical: &str) -> Option<String> {
        mapping::project(ical)
    }

    fn requests(&self) -> u32 {
        self.counter.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_urls() {
        let id = event_id_for("some-uid@example.com");
        assert_eq!(id, event_id_for("some-uid@example.com"));
        assert!(
            id.len() >= 5
                && id
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
        );
        let (api, cal) =
            parse_calendar_url("https://www.googleapis.com/calendar/v3/calendars/me%40example.com")
                .expect("parses");
        assert_eq!(api, "https://www.googleapis.com/calendar/v3");
        assert_eq!(cal, "me@example.com");
        assert!(parse_calendar_url("https://example.com/x").is_err());
        assert_eq!(master_etag("\"123\"+abcdef"), "\"123\"");
        assert_eq!(master_etag("\"123\""), "\"123\"");
    }

    #[test]
    fn retry_classification() {
        let rl = json!({"error": {"errors": [{"reason": "userRateLimitExceeded"}]}});
        let forbidden = json!({"error": {"errors": [{"reason": "forbiddenForNonOrganizer"}]}});
        assert!(retryable(403, &rl));
        assert!(!retryable(403, &forbidden));
        assert!(retryable(429, &json!({})));
        assert!(retryable(503, &json!({})));
        assert!(!retryable(412, &json!({})));
    }
}
