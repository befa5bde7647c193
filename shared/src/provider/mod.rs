//! The provider port and its implementations, one module per provider.
//!
//! A provider enumerates changes since a cursor, fetches event data, and writes events with
//! preconditions (create only if absent, update/delete only if unchanged). It counts every
//! HTTP request it makes so that each run records its API calls (invariant 5).

pub mod account;
mod author;
pub mod caldav;
pub mod google;
pub mod ics;
pub mod outlook;
mod percent;
pub mod registry;

pub use author::Author;
pub use percent::{percent_decode, percent_encode};

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;

/// A provider's position in a calendar's change history, opaque to the engine: CalDAV
/// `sync:<DAV:sync-token>` or `ctag:<CS:getctag>`, Google `nextSyncToken`, an ICS feed's
/// validators (JSON). Stored as it is in the cursors table.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// A cursor from its stored text.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// From its text.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            /// Its text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, o: &str) -> bool {
                self.0 == o
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, o: &&str) -> bool {
                self.0 == *o
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, o: &String) -> bool {
                &self.0 == o
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// A remote object's id in its provider: a CalDAV href, a Google or Graph event (or series
    /// master) id, `ics:<uid>` for a feed event.
    RemoteId
);

impl RemoteId {
    /// The empty id (no object).
    pub fn none() -> &'static RemoteId {
        static NONE: RemoteId = RemoteId(String::new());
        &NONE
    }
}

string_newtype!(
    /// A remote object's version: a strong CalDAV etag, a Google etag (series: with a digest of
    /// its exceptions), a Graph changeKey, a feed event's content hash.
    Etag
);

/// A remote calendar object seen in a pull: its id, version and (when already fetched) data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// Remote id.
    pub href: RemoteId,
    /// Remote version.
    pub etag: Option<Etag>,
    /// VCALENDAR data when the listing already carried it (ICS), else fetched on demand.
    pub data: Option<String>,
    /// Who wrote the object, as far as the provider can tell (known only with `data`).
    pub author: Author,
}

/// What a pull found.
#[derive(Debug, Default)]
pub struct PullResult {
    /// Objects that are new or changed since the cursor (all objects when `full`).
    pub changed: Vec<RemoteRef>,
    /// Ids removed since the cursor (empty when `full`: removals are then the mapped ids not
    /// listed in `changed` or `unreadable`).
    pub removed: Vec<RemoteId>,
    /// Objects present but unusable, with the reason (id, reason).
    pub unreadable: Vec<(RemoteId, String)>,
    /// Cursor to store after applying this result.
    pub cursor: Cursor,
    /// True when this is a complete enumeration (initial sync, token loss, ctag listing, feed).
    pub full: bool,
    /// True when this full listing was taken without a resumable cursor, so that its
    /// objects can be read and applied before the server has issued one: after applying
    /// it, the engine pulls again from `cursor`, which lists everything once more with the
    /// cursor to keep, and applies what changed between the two listings (by etag). An
    /// initial CalDAV pull lists with a Depth 1 PROPFIND (RFC 4918 §9.1) this way, because
    /// a server may walk every object to issue its first sync-token (RFC 6578 §3.4):
    /// Radicale 3 spends about 1 ms of CPU per object on it, before its first byte.
    pub settle: bool,
}

/// Result of a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// Where the object now lives.
    pub href: RemoteId,
    /// Its version after our write (the write receipt).
    pub etag: Option<Etag>,
}

/// One write of a bulk push ([`Provider::write_all`]).
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// [`Provider::create`].
    Create {
        /// Event UID.
        uid: &'a str,
        /// VCALENDAR text.
        ical: &'a str,
    },
    /// [`Provider::update`].
    Update {
        /// Remote id.
        href: &'a RemoteId,
        /// VCALENDAR text.
        ical: &'a str,
        /// Version the write is conditional on.
        etag: Option<&'a Etag>,
    },
    /// [`Provider::delete`].
    Delete {
        /// Remote id.
        href: &'a RemoteId,
        /// Version the delete is conditional on.
        etag: Option<&'a Etag>,
    },
}

/// Result of one write of [`Provider::write_all`]: where the object lives now and its
/// version (`None` for a delete).
pub type WriteOutcome = Result<Option<WriteResult>, ProviderError>;

/// Provider failures. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// If-Match failed: the remote object changed since we read it (HTTP 412).
    #[error("precondition failed: {0} changed remotely")]
    PreconditionFailed(String),
    /// If-None-Match: * failed: an object already exists at this id (HTTP 412).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The object is gone (HTTP 404/410 on an object).
    #[error("not found: {0}")]
    NotFound(String),
    /// Credentials rejected (HTTP 401).
    #[error("authentication failed for {0}")]
    Unauthorized(String),
    /// The provider refused the data or request (other 4xx).
    #[error("{url}: HTTP {status}: {detail}")]
    Rejected {
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// First part of the response body.
        detail: String,
    },
    /// Server error or transport failure; worth a retry.
    #[error("{url}: {detail}")]
    Unavailable {
        /// Request URL.
        url: String,
        /// What happened.
        detail: String,
    },
    /// Writes to a read-only member (ICS subscription).
    #[error("{0} is read-only")]
    ReadOnly(String),
    /// The address is not one calsync connects to (private, loopback, link-local, a
    /// redirect downgrade): see [`crate::net`]. Permanent until the link changes.
    #[error("{url}: refused: {detail}")]
    Forbidden {
        /// Request URL (redacted).
        url: String,
        /// Why.
        detail: String,
    },
    /// A response larger than its cap ([`crate::net`]). Permanent until the data shrinks.
    #[error("{url}: {detail}")]
    TooLarge {
        /// Request URL (redacted).
        url: String,
        /// What and the cap.
        detail: String,
    },
    /// The response could not be understood.
    #[error("{url}: unexpected response: {detail}")]
    Protocol {
        /// Request URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

/// The port every provider implements.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Changes since `cursor` (`None`: initial full enumeration). A cursor the server no longer
    /// accepts leads to a full enumeration (`full = true`), never to an error.
    async fn pull(&self, cursor: Option<&Cursor>) -> Result<PullResult, ProviderError>;

    /// Data of the given ids: `(href, etag, data)`; ids that no longer exist are left out.
    async fn fetch(&self, hrefs: &[RemoteId]) -> Result<Vec<RemoteRef>, ProviderError>;

    /// Of mapped ids a full pull did not list, those really gone. Providers that list only a
    /// window of the calendar (Graph's calendarView) check each one, so that an event moved
    /// outside the window is not taken for deleted. Default: all of them.
    async fn confirm_removed(&self, hrefs: &[RemoteId]) -> Result<Vec<RemoteId>, ProviderError> {
        Ok(hrefs.to_vec())
    }

    /// Create the event `uid` at its deterministic id, only if nothing is there
    /// (`If-None-Match: *`). [`ProviderError::AlreadyExists`] carries the id when taken.
    async fn create(&self, uid: &str, ical: &str) -> Result<WriteResult, ProviderError>;

    /// Replace the object at `href` if its version is still `etag` (`If-Match`).
    async fn update(
        &self,
        href: &RemoteId,
        ical: &str,
        etag: Option<&Etag>,
    ) -> Result<WriteResult, ProviderError>;

    /// Delete the object at `href` if its version is still `etag`. Already gone is success.
    async fn delete(&self, href: &RemoteId, etag: Option<&Etag>) -> Result<(), ProviderError>;

    /// Several writes with the semantics of [`Provider::create`], [`Provider::update`] and
    /// [`Provider::delete`]; one result per write, in order. Providers with a bulk endpoint
    /// (Google's batch) send them together; the default sends them one by one.
    async fn write_all(&self, writes: &[Write<'_>]) -> Vec<WriteOutcome> {
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(self.write_one(w).await);
        }
        out
    }

    /// One write of [`Provider::write_all`]: [`Provider::create`], [`Provider::update`] or
    /// [`Provider::delete`].
    async fn write_one(&self, write: &Write<'_>) -> WriteOutcome {
        match *write {
            Write::Create { uid, ical } => self.create(uid, ical).await.map(Some),
            Write::Update { href, ical, etag } => self.update(href, ical, etag).await.map(Some),
            Write::Delete { href, etag } => self.delete(href, etag).await.map(|()| None),
        }
    }

    /// How `ical` reads back after a write to this provider, when the provider cannot hold
    /// every property (Google): the engine then compares and merges in that projection, so
    /// properties the provider drops stay in the hub instead of being taken for remote
    /// deletions. `None`: the provider stores iCalendar as written (CalDAV, ICS).
    fn project(&self, _ical: &str) -> Option<String> {
        None
    }

    /// The event UID a remote id names by construction (ICS `ics:<uid>`), used to key an
    /// object that is not mapped yet and cannot be read. `None`: ids carry no UID.
    fn uid_of(&self, _href: &RemoteId) -> Option<String> {
        None
    }

    /// HTTP requests made so far.
    fn requests(&self) -> u32;
}

/// Retry schedule for rate-limit, throttling and server errors (exponential backoff with
/// jitter; a `Retry-After` the provider sends comes first where the provider reads it).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First delay.
    pub min_delay: std::time::Duration,
    /// Largest delay (also caps a `Retry-After`).
    pub max_delay: std::time::Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: std::time::Duration::from_millis(250),
            max_delay: std::time::Duration::from_secs(16),
            max_retries: 7,
        }
    }
}

impl RetryPolicy {
    /// The delays of this schedule: exponential from `min_delay` to `max_delay`, with
    /// jitter, `max_retries` of them (backon).
    pub fn backoff(&self) -> backon::ExponentialBackoff {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
            .build()
    }

    /// The wait before the next try: the server's `Retry-After` (capped at `max_delay`) or
    /// the schedule's next delay; `None` when the retries are used up.
    pub fn next_wait(
        &self,
        delays: &mut backon::ExponentialBackoff,
        retry_after: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        let d = delays.next()?;
        Some(retry_after.map(|a| a.min(self.max_delay)).unwrap_or(d))
    }
}

/// A `Retry-After` header (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as a duration
/// from now (zero for a date in the past); `None` when absent or unreadable.
pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(std::time::Duration::from_millis(wait.max(0) as u64))
}

/// The JSON body of an answer with `status`. An empty body is `Null`. A success whose body
/// does not parse was cut short in transit (or is not what the API sends): it is
/// [`ProviderError::Unavailable`], retried like a transport error and never read as an
/// empty list. An error body that does not parse is kept as `{"raw": …}` for the message.
pub(crate) fn json_body(
    url: &str,
    status: u16,
    text: &str,
) -> Result<serde_json::Value, ProviderError> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if (200..300).contains(&status) => Err(ProviderError::Unavailable {
            url: url.into(),
            detail: format!(
                "HTTP {status} body is not complete JSON ({e}; {} bytes read)",
                text.len()
            ),
        }),
        Err(_) => Ok(serde_json::json!({ "raw": snippet(text) })),
    }
}

/// A token that cannot be had: the user must reconnect ([`ProviderError::Unauthorized`]) or
/// it is worth a retry ([`ProviderError::Unavailable`]).
pub(crate) fn auth_failure(url: &str, e: crate::oauth::AuthError) -> ProviderError {
    if e.needs_reconnect() {
        ProviderError::Unauthorized(url.into())
    } else {
        ProviderError::Unavailable {
            url: url.into(),
            detail: e.to_string(),
        }
    }
}

/// The value `make` builds for `account` in `map`, built once per account and process
/// (per-account pacers and gates shared by every calendar of the account).
/// The quota `key` (`<provider>:<account>`) of `limit` calls per `window_ms`, shared by
/// every Lambda ([`crate::store::SharedQuota`]); one per key and process, so a reserved block
/// is spent by all the process's calendars of the account.
/// The key under which an OAuth provider's per-process pacer or mailbox gate and its
/// [`crate::store::SharedQuota`] count a link's calls: the link's provider account
/// ([`crate::model::Link::account`], a digest) when it is recorded, so that every link of
/// one account, however many consents or `from_link` copies gave it tokens, spends one
/// per-user quota as the provider counts it (Google: per user; Graph: per mailbox). Links
/// connected before the account was recorded fall back to their token secret's ARN.
pub(crate) fn quota_key<'a>(account: Option<&'a str>, secret_arn: &'a str) -> &'a str {
    account.filter(|a| !a.is_empty()).unwrap_or(secret_arn)
}

pub(crate) fn shared_quota(
    store: &crate::store::Store,
    key: &str,
    limit: u32,
    window_ms: i64,
) -> std::sync::Arc<crate::store::SharedQuota> {
    static QUOTAS: std::sync::OnceLock<
        std::sync::Mutex<
            std::collections::HashMap<String, std::sync::Arc<crate::store::SharedQuota>>,
        >,
    > = std::sync::OnceLock::new();
    per_account(&QUOTAS, key, || {
        crate::store::SharedQuota::new(store.clone(), key, limit, window_ms, SHARED_QUOTA_BLOCK)
    })
}

/// Calls reserved from a shared quota at a time (one DynamoDB write per block).
pub const SHARED_QUOTA_BLOCK: u32 = 10;

pub(crate) fn per_account<T>(
    map: &'static std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<T>>>,
    >,
    account: &str,
    make: impl FnOnce() -> T,
) -> std::sync::Arc<T> {
    let mut m = map
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.entry(account.to_string())
        .or_insert_with(|| std::sync::Arc::new(make()))
        .clone()
}

/// Counts requests; shared by the provider implementations.
#[derive(Debug, Default)]
pub struct RequestCounter(AtomicU32);

impl RequestCounter {
    /// One more request.
    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Requests so far.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Map a transport error without leaking the URL's userinfo (we never put credentials in URLs).
/// A refusal of the outbound policy ([`crate::net`]) is [`ProviderError::Forbidden`].
pub(crate) fn transport(url: &str, e: reqwest::Error) -> ProviderError {
    if let Some(detail) = crate::net::refusal(&e) {
        return ProviderError::Forbidden {
            url: url.into(),
            detail,
        };
    }
    ProviderError::Unavailable {
        url: url.into(),
        detail: format!("transport error: {}", e.without_url()),
    }
}

/// Read a body under `limit` bytes as text (lossy UTF-8). `url` gives the address an error
/// shows; it is called only on an error (a redaction parses the URL, which a body read that
/// succeeds need not pay for).
///
/// Errors: [`ProviderError::TooLarge`], or a transport failure.
pub(crate) async fn body_text(
    url: impl FnOnce() -> String,
    resp: reqwest::Response,
    limit: usize,
    what: &'static str,
) -> Result<String, ProviderError> {
    match crate::net::read_capped(resp, limit, what).await {
        Ok(b) => Ok(String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Err(e @ crate::net::BodyError::TooLarge { .. }) => Err(ProviderError::TooLarge {
            url: url(),
            detail: e.to_string(),
        }),
        Err(e) => Err(ProviderError::Unavailable {
            url: url(),
            detail: e.to_string(),
        }),
    }
}

impl ProviderError {
    /// Errors that retrying the same job cannot fix (the link is marked `error` and the job
    /// is not retried): a refused address, a body over its cap.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ProviderError::Forbidden { .. } | ProviderError::TooLarge { .. }
        )
    }
}

/// `scheme://host[:port]/…` of a URL: all that errors and logs may show of a provider
/// address, since paths and userinfo can carry secrets (private feed keys, passwords).
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparseable URL)".into(),
    }
}

/// First 300 characters of a response body, for error messages.
pub(crate) fn snippet(body: &str) -> String {
    body.chars().take(300).collect()
}

/// Build the provider of `link` through its registry module
/// ([`registry::ProviderModule::connect`]), reading its credentials from Secrets Manager.
///
/// Errors: unreadable secret (named by ARN), invalid URL, a link without its secret, a
/// revoked OAuth grant ([`crate::oauth::AuthError`]).
pub async fn connect(
    ctx: &crate::config::Ctx,
    link: &crate::model::Link,
) -> anyhow::Result<Box<dyn Provider>> {
    link.provider.module().connect(ctx, link).await
}
