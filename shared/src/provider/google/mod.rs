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
pub mod mapping;
pub mod module;
pub mod push;

pub use module::{API_ROOT, CALENDAR_SCOPE, MODULE, OAUTH};

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
use crate::ical::EventSeries;
use crate::oauth::{AuthError, TokenSource};

/// Requests per minute per user the API allows (quota guide, counted over a sliding
/// minute); calsync paces at [`crate::store::quota::HEADROOM`] of it, so that with a burst
/// of [`BURST`] no minute carries more and quota errors stay the exception.
pub const USER_REQUESTS_PER_MINUTE: u32 = 600;
/// Burst allowed by the per-account pacer: the calls of one batch count at once, so the
/// engine writes in chunks of this many ([`super::registry::ProviderModule::write_batch`]).
pub const BURST: u32 = crate::store::quota::BURST;

pub use super::RetryPolicy;

/// A push channel as `events.watch` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Our channel id (`X-Goog-Channel-ID`).
    pub id: String,
    /// Google's id of the watched resource (`X-Goog-Resource-ID`), needed to stop it.
    pub resource_id: String,
    /// Expiry, milliseconds since the Unix epoch (UTC).
    pub expiration_ms: i64,
}

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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
                        url,
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

    /// All items of a list query, following `nextPageToken`; `Ok(None)` on 410 (sync token
    /// no longer valid).
    async fn list_all(
        &self,
        base: &[(&str, &str)],
    ) -> Result<Option<(Vec<Value>, Option<String>)>, ProviderError> {
        let url = self.events_url();
        let mut items = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = base.to_vec();
            q.push(("maxResults", "2500"));
            if let Some(p) = &page {
                q.push(("pageToken", p));
            }
            let a = self.call(Method::GET, &url, &q, None, None).await?;
            match a.status {
                200 => {}
                410 => return Ok(None),
                _ => return Err(Self::unexpected(&url, &a)),
            }
            if let Some(arr) = a.body["items"].as_array() {
                items.extend(arr.iter().cloned());
            }
            match (
                a.body["nextPageToken"].as_str(),
                a.body["nextSyncToken"].as_str(),
            ) {
                (Some(p), _) => page = Some(p.to_string()),
                (None, s) => return Ok(Some((items, s.map(str::to_string)))),
            }
        }
    }

    /// The master and exceptions of the series `id` (cancelled ones included), or `None` when
    /// the master is gone or cancelled.
    async fn series(&self, id: &str) -> Result<Option<Vec<Value>>, ProviderError> {
        let known = self
            .ical_uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned();
        let ical_uid = match known {
            Some(u) => u,
            None => {
                let url = self.event_url(id);
                let a = self.call(Method::GET, &url, &[], None, None).await?;
                match a.status {
                    200 if a.body["status"] != "cancelled" => {}
                    200 | 404 | 410 => return Ok(None),
                    _ => return Err(Self::unexpected(&url, &a)),
                }
                match a.body["iCalUID"].as_str() {
                    Some(u) => u.to_string(),
                    None => return Ok(Some(vec![a.body])),
                }
            }
        };
        let Some((items, _)) = self
            .list_all(&[("iCalUID", &ical_uid), ("showDeleted", "true")])
            .await?
        else {
            return Ok(None);
        };
        Ok(Self::members_of(id, items))
    }

    /// The members of series `id` among `items` (an `iCalUID` listing), or `None` when its
    /// master is not among them or is cancelled.
    fn members_of(id: &str, items: Vec<Value>) -> Option<Vec<Value>> {
        let members: Vec<Value> = items
            .into_iter()
            .filter(|e| e["id"] == id || e["recurringEventId"] == id)
            .collect();
        let live = members
            .iter()
            .any(|e| e["id"] == id && e["status"] != "cancelled");
        live.then_some(members)
    }

    /// The series of `ids`: those whose iCalUID the listing taught go as one `iCalUID` list
    /// each, batched ([`Self::call_many`]); the rest (and a list with a further page) one by
    /// one through [`Self::series`]. A series that is gone is left out.
    async fn series_many(
        &self,
        ids: &[super::RemoteId],
    ) -> Result<Vec<(String, Vec<Value>)>, ProviderError> {
        let known: Vec<(String, Option<String>)> = {
            let map = self
                .ical_uids
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ids.iter()
                .map(|id| (id.to_string(), map.get(id.as_str()).cloned()))
                .collect()
        };
        let mut out = Vec::new();
        let mut one_by_one = Vec::new();
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (id, uid) in known {
            match uid {
                Some(uid) => {
                    calls.push(self.series_call(&uid));
                    owners.push(id);
                }
                None => one_by_one.push(id),
            }
        }
        for (id, a) in owners.into_iter().zip(self.call_many(calls).await) {
            let a = a?;
            if a.status != 200 || a.body.get("nextPageToken").is_some() {
                one_by_one.push(id);
                continue;
            }
            let items = a.body["items"].as_array().cloned().unwrap_or_default();
            if let Some(members) = Self::members_of(&id, items) {
                out.push((id, members));
            }
        }
        for id in one_by_one {
            if let Some(members) = self.series(&id).await? {
                out.push((id, members));
            }
        }
        Ok(out)
    }

    /// The list of every member of the series `ical_uid` (cancelled ones included), one page
    /// of up to 2,500, as a batchable call.
    fn series_call(&self, ical_uid: &str) -> batch::Call {
        batch::Call::new(
            Method::GET,
            self.events_url(),
            &[
                ("iCalUID", ical_uid),
                ("showDeleted", "true"),
                ("maxResults", "2500"),
            ],
            None,
            None,
        )
    }

    fn remote_ref(id: &str, members: &[&Value]) -> Result<RemoteRef, String> {
        let data = mapping::series_to_ical(members)?;
        Ok(RemoteRef {
            href: id.into(),
            etag: series_etag(members).map(super::Etag::from),
            data: Some(data),
        })
    }

    /// For each write: the exceptions Google holds for the series an update rewrites (empty
    /// for other writes, one-off events, and when the list fails: then nothing is reset).
    async fn existing_exceptions(
        &self,
        writes: &[Write<'_>],
        series: &[Option<(String, mapping::GoogleSeries)>],
    ) -> Vec<Vec<Value>> {
        let mut out: Vec<Vec<Value>> = (0..writes.len()).map(|_| Vec::new()).collect();
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let (Write::Update { .. }, Some((_, g))) = (w, &series[i]) else {
                continue;
            };
            let Some(uid) = g.master["iCalUID"].as_str() else {
                continue;
            };
            if g.master.get("recurrence").is_none() {
                continue;
            }
            calls.push(self.series_call(uid));
            owners.push(i);
        }
        for (i, a) in owners.into_iter().zip(self.call_many(calls).await) {
            let Ok(a) = a else { continue };
            let Some((id, _)) = &series[i] else { continue };
            out[i] = a.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["recurringEventId"] == id.as_str())
                .cloned()
                .collect();
        }
        out
    }

    /// `events.insert` met 409 at our deterministic id `id`: Google keeps deleted ids, so a
    /// cancelled event there is revived with `g`'s master (`Some(master)`); a live one is
    /// ours from an earlier attempt ([`ProviderError::AlreadyExists`], the engine adopts it).
    async fn revive(&self, id: &str, master: &Value) -> Result<Value, ProviderError> {
        let eurl = self.event_url(id);
        let cur = self.call(Method::GET, &eurl, &[], None, None).await?;
        if cur.status == 200 && cur.body["status"] == "cancelled" {
            let mut revived = master.clone();
            revived["status"] = json!("confirmed");
            let etag = cur.body["etag"].as_str().map(str::to_string);
            let r = self
                .call(
                    Method::PUT,
                    &eurl,
                    &WRITE_QUERY,
                    Some(&revived),
                    etag.as_deref(),
                )
                .await?;
            if r.status != 200 {
                return Err(Self::unexpected(&eurl, &r));
            }
            return Ok(r.body);
        }
        Err(ProviderError::AlreadyExists(id.into()))
    }

    fn to_google(href: &str, ical: &str) -> Result<mapping::GoogleSeries, ProviderError> {
        let series =
            EventSeries::parse_single(href, ical).map_err(|e| ProviderError::Rejected {
                url: href.into(),
                status: 400,
                detail: e.to_string(),
            })?;
        mapping::to_google(&series).map_err(|e| ProviderError::Rejected {
            url: href.into(),
            status: 400,
            detail: format!("cannot be written to Google: {e}"),
        })
    }

    fn write_result(id: &str, master: Value, exceptions: Vec<Value>) -> WriteResult {
        let mut all = vec![master];
        all.extend(exceptions);
        let refs: Vec<&Value> = all.iter().collect();
        WriteResult {
            href: id.into(),
            etag: series_etag(&refs).map(super::Etag::from),
        }
    }

    /// Start a push channel on this calendar's events (`events.watch`). `ttl_secs` is asked
    /// through `params.ttl`; the answer's `expiration` is what counts.
    ///
    /// Errors: any non-200 answer.
    pub async fn watch(
        &self,
        channel_id: &str,
        address: &str,
        token: &SecretString,
        ttl_secs: i64,
    ) -> Result<Channel, ProviderError> {
        let url = format!("{}/watch", self.events_url());
        let ttl = ttl_secs.to_string();
        let body = json!({"id": channel_id, "type": "web_hook", "address": address,
            "token": token.expose_secret(), "params": {"ttl": ttl}});
        let a = self
            .call(Method::POST, &url, &[], Some(&body), None)
            .await?;
        if a.status != 200 {
            return Err(Self::unexpected(&url, &a));
        }
        let expiration_ms = match &a.body["expiration"] {
            Value::String(s) => s.parse().unwrap_or(0),
            v => v.as_i64().unwrap_or(0),
        };
        Ok(Channel {
            id: channel_id.into(),
            resource_id: a.body["resourceId"].as_str().unwrap_or_default().into(),
            expiration_ms,
        })
    }

    /// Stop a push channel (`channels.stop`). A channel Google no longer knows is stopped.
    pub async fn stop_channel(
        &self,
        channel_id: &str,
        resource_id: &str,
    ) -> Result<(), ProviderError> {
        let url = format!("{}/channels/stop", self.api);
        let body = json!({"id": channel_id, "resourceId": resource_id});
        let a = self
            .call(Method::POST, &url, &[], Some(&body), None)
            .await?;
        match a.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(Self::unexpected(&url, &a)),
        }
    }
}

/// The one result of a one-write [`Provider::write_all`].
fn single(mut r: Vec<WriteOutcome>) -> Result<WriteResult, ProviderError> {
    match r.pop() {
        Some(Ok(Some(w))) => Ok(w),
        Some(Err(e)) => Err(e),
        _ => Err(ProviderError::Protocol {
            url: String::new(),
            detail: "a write without its result".into(),
        }),
    }
}

/// Query of every write: no e-mails to guests, conference data honoured.
const WRITE_QUERY: [(&str, &str); 2] = [("sendUpdates", "none"), ("conferenceDataVersion", "1")];

#[async_trait]
impl Provider for GoogleCalendar {
    async fn pull(&self, cursor: Option<&super::Cursor>) -> Result<PullResult, ProviderError> {
        let cursor = cursor.map(super::Cursor::as_str);
        let incremental = match cursor {
            Some(token) => self.list_all(&[("syncToken", token)]).await?,
            None => None,
        };
        let full = incremental.is_none();
        let (items, next) = match incremental {
            Some(r) => r,
            None => self
                .list_all(&[("showDeleted", "true")])
                .await?
                .ok_or_else(|| ProviderError::Protocol {
                    url: self.events_url(),
                    detail: "410 on a list without syncToken".into(),
                })?,
        };
        let cursor = next.ok_or_else(|| ProviderError::Protocol {
            url: self.events_url(),
            detail: "last page without nextSyncToken".into(),
        })?;
        // A master's iCalUID is its exceptions' too (an exception names its master).
        for it in &items {
            let id = it["recurringEventId"].as_str().or(it["id"].as_str());
            if let (Some(id), Some(u)) = (id, it["iCalUID"].as_str()) {
                self.ical_uids
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.into(), u.into());
            }
        }
        let groups = mapping::group_series(&items);
        let mut out = PullResult {
            cursor: super::Cursor::new(cursor),
            full,
            ..Default::default()
        };
        for (id, members) in groups {
            let master = members.iter().find(|e| e["id"] == id.as_str());
            let master_cancelled = master.is_some_and(|m| m["status"] == "cancelled");
            if master_cancelled {
                if !full {
                    out.removed.push(id.into());
                }
                continue;
            }
            // Complete data: a full listing, or a lone non-recurring event.
            let complete = full
                || (members.len() == 1 && master.is_some_and(|m| m.get("recurrence").is_none()));
            if full && master.is_none() {
                continue; // exceptions of a series that is not ours to list (no master)
            }
            if !complete {
                // Exceptions may be unlisted: no data, and the version of what was listed.
                // It equals the mapping's version only when exactly the members this link
                // last wrote or read were listed, unchanged (the echo of our own write,
                // skipped without a call); otherwise the engine fetches the series.
                out.changed.push(RemoteRef {
                    href: id.as_str().into(),
                    etag: series_etag(&members).map(super::Etag::from),
                    data: None,
                });
                continue;
            }
            match Self::remote_ref(&id, &members) {
                Ok(r) => out.changed.push(r),
                Err(reason) => out.unreadable.push((id.into(), reason)),
            }
        }
        Ok(out)
    }

    async fn fetch(&self, hrefs: &[super::RemoteId]) -> Result<Vec<RemoteRef>, ProviderError> {
        let mut out = Vec::new();
        for (id, members) in self.series_many(hrefs).await? {
            let refs: Vec<&Value> = members.iter().collect();
            if let Ok(r) = Self::remote_ref(&id, &refs) {
                out.push(r);
            }
        }
        Ok(out)
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
        let n = writes.len();
        let mut results: Vec<Option<WriteOutcome>> = (0..n).map(|_| None).collect();
        let mut series: Vec<Option<(String, mapping::GoogleSeries)>> =
            (0..n).map(|_| None).collect();
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let (id, g) = match *w {
                Write::Delete { href, etag } => {
                    calls.push(batch::Call::new(
                        Method::DELETE,
                        self.event_url(href),
                        &[("sendUpdates", "none")],
                        None,
                        etag.map(|e| master_etag(e)),
                    ));
                    owners.push(i);
                    continue;
                }
                Write::Create { uid, ical } => (event_id_for(uid), Self::to_google(uid, ical)),
                Write::Update { href, ical, .. } => (href.to_string(), Self::to_google(href, ical)),
            };
            let g = match g {
                Ok(g) => g,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let mut body = g.master.clone();
            let call = match *w {
                Write::Update { etag, .. } => batch::Call::new(
                    Method::PUT,
                    self.event_url(&id),
                    &WRITE_QUERY,
                    Some(body),
                    etag.map(|e| master_etag(e)),
                ),
                _ => {
                    body["id"] = json!(id);
                    batch::Call::new(
                        Method::POST,
                        self.events_url(),
                        &WRITE_QUERY,
                        Some(body),
                        None,
                    )
                }
            };
            calls.push(call);
            owners.push(i);
            series[i] = Some((id, g));
        }
        // The exceptions Google holds now for the recurring series being updated (one list
        // by iCalUID each, batched): those the new version has no override for are put back
        // to what the new master generates, or they would keep stale or dropped changes.
        let existing = self.existing_exceptions(writes, &series).await;
        let urls: Vec<String> = calls.iter().map(|c| c.url.clone()).collect();
        let answers = self.call_many(calls).await;
        let mut masters: Vec<Option<Value>> = (0..n).map(|_| None).collect();
        for ((i, url), a) in owners.into_iter().zip(urls).zip(answers) {
            let a = match a {
                Ok(a) => a,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let id = series[i].as_ref().map(|(id, _)| id.as_str());
            let outcome = match (&writes[i], a.status, id) {
                (Write::Delete { .. }, 200 | 204 | 404 | 410, _) => Ok(None),
                (Write::Delete { href, .. } | Write::Update { href, .. }, 412, _) => {
                    Err(ProviderError::PreconditionFailed(href.to_string()))
                }
                (Write::Update { href, .. }, 404 | 410, _) => {
                    Err(ProviderError::NotFound(href.to_string()))
                }
                (Write::Create { .. } | Write::Update { .. }, 200, Some(_)) => {
                    masters[i] = Some(a.body);
                    continue;
                }
                (Write::Create { .. }, 409, Some(id)) => {
                    let revived = match series.get(i).and_then(|s| s.as_ref()) {
                        Some((_, g)) => self.revive(id, &g.master).await,
                        None => Err(Self::unexpected(&url, &a)),
                    };
                    match revived {
                        Ok(m) => {
                            masters[i] = Some(m);
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => Err(Self::unexpected(&url, &a)),
            };
            results[i] = Some(outcome);
        }
        // Exceptions, once their masters exist; and occurrences whose override the new
        // version drops, put back to what the master generates (`revert`: an instance the
        // rule no longer generates is gone already, 404/410).
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (i, s) in series.iter().enumerate() {
            if let (Some(written), Some((id, g))) = (&masters[i], s) {
                let reverts = mapping::reset_instances(&existing[i], g, written);
                let all = g
                    .exceptions
                    .iter()
                    .map(|e| (e, false))
                    .chain(reverts.iter().map(|e| (e, true)));
                for ((suffix, body), revert) in all {
                    calls.push(batch::Call::new(
                        Method::PUT,
                        self.event_url(&format!("{id}_{suffix}")),
                        &WRITE_QUERY,
                        Some(body.clone()),
                        None,
                    ));
                    owners.push((i, revert));
                }
            }
        }
        let urls: Vec<String> = calls.iter().map(|c| c.url.clone()).collect();
        let answers = self.call_many(calls).await;
        let mut written: Vec<Vec<Value>> = (0..n).map(|_| Vec::new()).collect();
        let mut failed: Vec<Option<ProviderError>> = (0..n).map(|_| None).collect();
        for (((i, revert), url), a) in owners.into_iter().zip(urls).zip(answers) {
            match a {
                Ok(a) if a.status == 200 => written[i].push(a.body),
                Ok(a) if revert && matches!(a.status, 404 | 410) => {}
                Ok(a) => {
                    failed[i].get_or_insert(Self::unexpected(&url, &a));
                }
                Err(e) => {
                    failed[i].get_or_insert(e);
                }
            }
        }
        for i in 0..n {
            let (Some(master), Some((id, _))) = (masters[i].take(), series[i].as_ref()) else {
                continue;
            };
            results[i] = Some(match failed[i].take() {
                None => Ok(Some(Self::write_result(
                    id,
                    master,
                    std::mem::take(&mut written[i]),
                ))),
                Some(e) => {
                    let refused = matches!(
                        e,
                        ProviderError::Rejected { .. } | ProviderError::NotFound(_)
                    );
                    if refused && matches!(writes[i], Write::Create { .. }) {
                        let url = self.event_url(id);
                        let _ = self
                            .call(Method::DELETE, &url, &[("sendUpdates", "none")], None, None)
                            .await;
                    }
                    Err(e)
                }
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ProviderError::Protocol {
                        url: self.events_url(),
                        detail: "write without an answer".into(),
                    })
                })
            })
            .collect()
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
