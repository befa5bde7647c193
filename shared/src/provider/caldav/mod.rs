//! CalDAV provider (RFC 4791), incremental by RFC 6578 sync-collection with a CS:getctag +
//! getetag fallback.
//!
//! - Discovery: `current-user-principal` (RFC 5397) → `calendar-home-set` (RFC 4791 §6.2.1)
//!   → Depth 1 listing; hrefs are resolved against the URL that returned them, so absolute
//!   hrefs on another host (iCloud partitions `pNN-caldav.icloud.com`) are kept.
//! - Initial pull: a Depth 1 PROPFIND listing (RFC 4918 §9.1) whose objects are read and
//!   applied before the first sync-token is asked for (`PullResult::settle`): Radicale
//!   walks every object before it answers a first sync-collection (about 1 s for 1,000).
//! - Pull: `sync-collection` REPORT with Depth 0 (RFC 6578 §3.3); a member with status 404 is
//!   removed; a 507 on the request-URI means truncated, so we repeat with the new token
//!   (§3.6); a rejected token (403/409 `DAV:valid-sync-token`, or any 4xx on a tokened
//!   request) restarts with an empty token = full enumeration.
//! - Data: `calendar-multiget` REPORT (RFC 4791 §7.9), 50 hrefs per request.
//! - Writes: PUT with `If-None-Match: *` at a deterministic href for creates, `If-Match` for
//!   updates and deletes (RFC 4791 §5.3.2); when a PUT response has no ETag (server changed
//!   the data, §5.3.4) the etag is re-read with PROPFIND.

mod dav_error;
mod discovery;
mod hrefs;
mod listing;
pub mod mark;
pub mod module;
mod writes;
mod xml;

use dav_error::dav_error_text;

pub use hrefs::{deterministic_name, may_follow};
pub use module::{INFO, MODULE};
pub use xml::parse_multistatus_for_fuzzing;

use hrefs::confined;
use xml::{parse_multistatus, xml_escape, MsResponse};

use std::collections::HashMap;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use super::{
    snippet, transport, ProviderError, PullResult, RemoteRef, RequestCounter, Write, WriteOutcome,
    WriteResult,
};

const DAV: &str = "DAV:";
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
const CS: &str = "http://calendarserver.org/ns/";
const MULTIGET_CHUNK: usize = 50;

/// Cursor prefixes stored in the cursors table.
const SYNC_PREFIX: &str = "sync:";
const CTAG_PREFIX: &str = "ctag:";
/// The cursor of an initial pull's PROPFIND listing ([`super::PullResult::settle`]): a pull
/// from it asks sync-collection for a first token, a full listing. Never meant to be kept,
/// and harmless if it is: it is then a full enumeration like any other.
const LIST_CURSOR: &str = "list:";

/// One calendar collection found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarInfo {
    /// Absolute URL of the collection.
    pub url: String,
    /// DAV:displayname.
    pub display_name: String,
}

/// A CalDAV client for one calendar collection.
pub struct CalDav {
    http: reqwest::Client,
    collection: Url,
    username: String,
    password: SecretString,
    force_ctag: bool,
    counter: RequestCounter,
    retry: super::RetryPolicy,
}

impl std::fmt::Debug for CalDav {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalDav")
            .field("collection", &self.collection.as_str())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Statuses that mean "try again later" rather than "no": 408 Request Timeout, 423 Locked
/// (RFC 4918 §11.3, a WebDAV lock held by another client), 429 Too Many Requests (RFC 6585
/// §4), and every 5xx. Never the sign of a rejected sync-token or of a server without
/// RFC 6578: a REPORT answered 429 is tried again, not answered with a full re-enumeration
/// or ctag mode.
pub fn transient(status: u16) -> bool {
    matches!(status, 408 | 423 | 429) || (500..600).contains(&status)
}

struct Response {
    status: StatusCode,
    etag: Option<String>,
    body: String,
    url: Url,
}

impl CalDav {
    /// Client for the collection at `collection_url` (a trailing `/` is added if missing).
    ///
    /// Errors: the URL does not parse or is not http(s).
    pub fn new(
        http: reqwest::Client,
        collection_url: &str,
        username: &str,
        password: SecretString,
        force_ctag: bool,
    ) -> Result<Self, ProviderError> {
        let mut url = collection_url.to_string();
        if !url.ends_with('/') {
            url.push('/');
        }
        let collection = Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ProviderError::Protocol {
                url: "(calendar URL)".into(),
                detail: "not an http(s) URL".into(),
            })?;
        crate::net::check_address(&collection).map_err(|e| ProviderError::Forbidden {
            url: super::redacted(collection.as_str()),
            detail: e.to_string(),
        })?;
        if !collection.username().is_empty() || collection.password().is_some() {
            // Credentials belong in Secrets Manager; never echo them back.
            return Err(ProviderError::Protocol {
                url: super::redacted(collection.as_str()),
                detail:
                    "the calendar URL carries credentials; store them in Secrets Manager instead"
                        .into(),
            });
        }
        Ok(Self {
            http,
            collection,
            username: username.into(),
            password,
            force_ctag,
            counter: RequestCounter::default(),
            retry: super::RetryPolicy::default(),
        })
    }

    /// The collection URL.
    pub fn collection(&self) -> &str {
        self.collection.as_str()
    }

    fn resolve(&self, href: &str) -> Result<Url, ProviderError> {
        let url = self
            .collection
            .join(href)
            .map_err(|_| ProviderError::Protocol {
                url: self.collection.to_string(),
                detail: format!("invalid href {href:?}"),
            })?;
        confined(&self.collection, url)
    }

    /// Replace the retry schedule (tests use short delays).
    pub fn with_retry(mut self, retry: super::RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// One request, tried again with exponential backoff (a `Retry-After` first) on
    /// transport failures, bodies cut off mid-stream, and the statuses that say "later"
    /// ([`transient`]). Returns the response for every other status; 401 →
    /// [`ProviderError::Unauthorized`]; still failing after the retries →
    /// [`ProviderError::Unavailable`] (the run stops, its events stay `pending`).
    async fn request(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Response, ProviderError> {
        let m = Method::from_bytes(method.as_bytes()).map_err(|_| ProviderError::Protocol {
            url: url.to_string(),
            detail: format!("invalid method name {method:?}"),
        })?;
        // Bytes: each try sends the same body without copying it.
        let body = body.map(bytes::Bytes::from);
        let mut delays = self.retry.backoff();
        loop {
            let (outcome, after) = self.attempt(&m, url, headers, body.clone()).await;
            let failure = match outcome {
                Ok(r) if transient(r.status.as_u16()) => ProviderError::Unavailable {
                    url: url.to_string(),
                    detail: format!("HTTP {}: {}", r.status.as_u16(), snippet(&r.body)),
                },
                Ok(r) => return Ok(r),
                Err(e @ ProviderError::Unavailable { .. }) => e,
                Err(e) => return Err(e),
            };
            match self.retry.next_wait(&mut delays, after) {
                Some(wait) => {
                    tracing::info!(url = %super::redacted(url.as_str()), error = %failure,
                        delay_ms = wait.as_millis() as u64, "CalDAV server busy; backing off");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(failure),
            }
        }
    }

    /// One try of [`Self::request`], with the `Retry-After` the answer carried.
    async fn attempt(
        &self,
        m: &Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<bytes::Bytes>,
    ) -> (Result<Response, ProviderError>, Option<std::time::Duration>) {
        self.counter.hit();
        let mut req = self
            .http
            .request(m.clone(), url.clone())
            .basic_auth(&self.username, Some(self.password.expose_secret()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return (Err(transport(url.as_str(), e)), None),
        };
        let status = resp.status();
        let after = super::retry_after(resp.headers());
        let final_url = resp.url().clone();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match super::body_text(
            || super::redacted(url.as_str()),
            resp,
            crate::net::CALDAV_MAX_BYTES,
            "CalDAV response",
        )
        .await
        {
            Ok(b) => b,
            Err(e) => return (Err(e), after),
        };
        if status == StatusCode::UNAUTHORIZED {
            return (Err(ProviderError::Unauthorized(url.to_string())), None);
        }
        let r = Response {
            status,
            etag,
            body,
            url: final_url,
        };
        (Ok(r), after)
    }

    fn rejected(url: &Url, r: &Response) -> ProviderError {
        ProviderError::Rejected {
            url: url.to_string(),
            status: r.status.as_u16(),
            detail: dav_error_text(&r.body).unwrap_or_else(|| snippet(&r.body)),
        }
    }

    async fn propfind(
        &self,
        url: &Url,
        depth: &str,
        props: &str,
    ) -> Result<(Vec<MsResponse>, Url), ProviderError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:c="{CALDAV}" xmlns:cs="{CS}"><d:prop>{props}</d:prop></d:propfind>"#
        );
        let r = self
            .request(
                "PROPFIND",
                url,
                &[
                    ("Depth", depth),
                    ("Content-Type", "application/xml; charset=utf-8"),
                ],
                Some(body),
            )
            .await?;
        if r.status.as_u16() != 207 {
            return Err(Self::rejected(url, &r));
        }
        Ok((parse_multistatus(url.as_str(), &r.body)?.0, r.url))
    }
}

#[async_trait]
impl super::Provider for CalDav {
    async fn pull(&self, cursor: Option<&super::Cursor>) -> Result<PullResult, ProviderError> {
        let cursor = cursor.map(super::Cursor::as_str);
        if self.force_ctag || cursor.is_some_and(|c| c.starts_with(CTAG_PREFIX)) {
            return self.pull_ctag(cursor).await;
        }
        if cursor.is_none() {
            // Listed at once; the first sync-token is asked for after the objects are in
            // (PullResult::settle), from LIST_CURSOR, which is no sync-token: a full listing.
            match self.members().await {
                Ok(changed) => {
                    return Ok(PullResult {
                        changed,
                        full: true,
                        settle: true,
                        cursor: super::Cursor::new(LIST_CURSOR.to_string()),
                        ..Default::default()
                    })
                }
                // A server that refuses a Depth 1 PROPFIND (some limit it on large
                // collections) is listed by sync-collection alone.
                Err(ProviderError::Rejected { status, .. }) if (400..500).contains(&status) => {
                    tracing::info!(collection = %self.collection, status,
                        "Depth 1 PROPFIND refused; listing with sync-collection");
                }
                Err(e) => return Err(e),
            }
        }
        let token = cursor
            .and_then(|c| c.strip_prefix(SYNC_PREFIX))
            .filter(|t| !t.is_empty());
        match self.pull_sync(token).await? {
            Some(r) => Ok(r),
            None => self.pull_ctag(None).await,
        }
    }

    async fn fetch(&self, hrefs: &[super::RemoteId]) -> Result<Vec<RemoteRef>, ProviderError> {
        let mut out = Vec::new();
        for chunk in hrefs.chunks(MULTIGET_CHUNK) {
            let refs: String = chunk
                .iter()
                .map(|h| format!("<d:href>{}</d:href>", xml_escape(h)))
                .collect();
            let body = format!(
                r#"<?xml version="1.0" encoding="utf-8"?><c:calendar-multiget xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:prop><d:getetag/><c:calendar-data/></d:prop>{refs}</c:calendar-multiget>"#
            );
            let r = self
                .request(
                    "REPORT",
                    &self.collection,
                    &[
                        ("Depth", "1"),
                        ("Content-Type", "application/xml; charset=utf-8"),
                    ],
                    Some(body),
                )
                .await?;
            if r.status.as_u16() != 207 {
                return Err(Self::rejected(&self.collection, &r));
            }
            let (rs, _) = parse_multistatus(self.collection.as_str(), &r.body)?;
            // Servers may answer with a differently encoded href; map back to what we asked.
            let asked: HashMap<String, &super::RemoteId> = chunk
                .iter()
                .filter_map(|h| self.resolve(h).ok().map(|u| (u.path().to_string(), h)))
                .collect();
            for resp in rs {
                let Some(data) = resp.data else {
                    continue;
                };
                let href = self
                    .resolve(&resp.href)
                    .ok()
                    .and_then(|u| asked.get(u.path()).map(|h| (*h).clone()))
                    .unwrap_or_else(|| resp.href.into());
                let (data, author) = mark::unmarked(&data);
                out.push(RemoteRef {
                    href,
                    etag: resp.etag.map(super::Etag::from),
                    data: Some(crate::ical::schedule_agent_client(&data, false)),
                    author,
                });
            }
        }
        Ok(out)
    }

    async fn create(&self, uid: &str, ical: &str) -> Result<WriteResult, ProviderError> {
        let url = self.resolve(&deterministic_name(uid))?;
        let href = url.path().to_string();
        self.put_at(&href, url, ical, ("If-None-Match", "*")).await
    }

    async fn update(
        &self,
        href: &super::RemoteId,
        ical: &str,
        etag: Option<&super::Etag>,
    ) -> Result<WriteResult, ProviderError> {
        match etag {
            Some(e) => self.put(href, ical, ("If-Match", e)).await,
            None => self.put(href, ical, ("If-Match", "*")).await,
        }
    }

    async fn delete(
        &self,
        href: &super::RemoteId,
        etag: Option<&super::Etag>,
    ) -> Result<(), ProviderError> {
        let url = self.resolve(href)?;
        let headers: Vec<(&str, &str)> = etag
            .map(|e| vec![("If-Match", e.as_str())])
            .unwrap_or_default();
        let r = self.request("DELETE", &url, &headers, None).await?;
        match r.status.as_u16() {
            200..=299 | 404 | 410 => Ok(()),
            412 => Err(ProviderError::PreconditionFailed(href.to_string())),
            _ => Err(Self::rejected(&url, &r)),
        }
    }

    /// [`WRITES_IN_FLIGHT`] requests at a time, results in the order of `writes`: a
    /// server's round trip is most of a write's time (iCloud's is 100–200 ms), and the
    /// writes of one push are to distinct objects.
    async fn write_all(&self, writes: &[Write<'_>]) -> Vec<WriteOutcome> {
        use futures_util::stream::{self, StreamExt};
        use futures_util::FutureExt;
        // Unordered, so that a slow answer does not hold back the next request's start
        // (`buffered` counts finished results waiting behind it as in flight); the
        // outcomes are put back in the order of `writes`.
        let calls: Vec<_> = writes
            .iter()
            .enumerate()
            .map(|(i, w)| self.write_one(w).map(move |r| (i, r)).boxed())
            .collect();
        let mut done: Vec<(usize, WriteOutcome)> = stream::iter(calls)
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }

    fn requests(&self) -> u32 {
        self.counter.get()
    }
}

/// PUT and DELETE requests of one push in flight at once, per calendar. Small enough for
/// servers that limit a client's concurrent requests (a 503 with `Retry-After` is retried
/// like any other, [`super::RetryPolicy`]).
pub const WRITES_IN_FLIGHT: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_refused_without_being_repeated() {
        crate::net::install_tls();
        let e = CalDav::new(
            reqwest::Client::new(),
            "https://bob:hunter2@dav.example.com/cal/",
            "bob",
            SecretString::from("x".to_string()),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("Secrets Manager"), "{e}");
    }
}
