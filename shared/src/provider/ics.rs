//! ICS (webcal) subscription provider: a read-only member.
//!
//! - `webcal://` (IANA provisional scheme, HTTP assumed) and `webcals://` are fetched over
//!   `https://`; loopback hosts over `http://` (the local stack).
//! - Conditional GET (RFC 9110 §13.1): `If-None-Match` with the stored ETag and
//!   `If-Modified-Since` with the stored Last-Modified; a 304 costs one request and nothing else.
//! - A server that sends no validators is compared by a SHA-256 of the body.
//! - A feed is a full snapshot: every pull is a full enumeration; UIDs missing from the new
//!   snapshot are deletions. Each event's version is the hash of its content.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{
    redacted, snippet, transport, ProviderError, PullResult, RemoteRef, RequestCounter, WriteResult,
};
use crate::ical::parse_calendar;
use crate::provider::registry::ProviderInfo;

/// Validators stored as the link's cursor (JSON).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCursor {
    /// ETag of the last body.
    #[serde(default)]
    pub etag: Option<String>,
    /// Last-Modified of the last body.
    #[serde(default)]
    pub last_modified: Option<String>,
    /// SHA-256 (hex) of the last body.
    #[serde(default)]
    pub hash: String,
}

/// A subscription to one feed.
pub struct IcsFeed {
    http: reqwest::Client,
    url: String,
    /// The URL as shown in errors and logs: scheme and host only, because feed paths are
    /// often secret (private calendar addresses carry a key in the path or query).
    shown: String,
    counter: RequestCounter,
}

/// The URL to fetch for a subscription URL: `webcal(s)://` becomes `https://`, or `http://`
/// for loopback hosts. Errors: a scheme other than http, https, webcal, webcals.
pub fn fetch_url(url: &str) -> Result<String, ProviderError> {
    let bad = || ProviderError::Protocol {
        url: redacted(url),
        detail: "expected an http, https, webcal or webcals URL".into(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let host = rest.split(['/', ':', '?']).next().unwrap_or("");
    let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(url.to_string()),
        "webcal" | "webcals" if loopback => Ok(format!("http://{rest}")),
        "webcal" | "webcals" => Ok(format!("https://{rest}")),
        _ => Err(bad()),
    }
}

impl IcsFeed {
    /// Subscription to `url` (http, https, webcal, webcals).
    ///
    /// Errors: another scheme; an address the outbound policy refuses ([`crate::net`]).
    pub fn new(http: reqwest::Client, url: &str) -> Result<Self, ProviderError> {
        let url = fetch_url(url)?;
        let parsed = reqwest::Url::parse(&url).map_err(|_| ProviderError::Protocol {
            url: redacted(&url),
            detail: "not a URL".into(),
        })?;
        crate::net::check_address(&parsed).map_err(|e| ProviderError::Forbidden {
            url: redacted(&url),
            detail: e.to_string(),
        })?;
        Ok(Self {
            http,
            shown: redacted(&url),
            url,
            counter: RequestCounter::default(),
        })
    }

    /// The id under which a feed event is mapped (`ics:<uid>`).
    pub fn href_of(uid: &str) -> super::RemoteId {
        super::RemoteId::new(format!("ics:{uid}"))
    }
}

#[async_trait]
impl super::Provider for IcsFeed {
    fn uid_of(&self, href: &super::RemoteId) -> Option<String> {
        href.strip_prefix("ics:").map(str::to_string)
    }

    async fn pull(&self, cursor: Option<&super::Cursor>) -> Result<PullResult, ProviderError> {
        let cursor = cursor.map(super::Cursor::as_str);
        let old: FeedCursor = cursor
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        self.counter.hit();
        let mut req = self.http.get(&self.url);
        if let Some(e) = &old.etag {
            req = req.header("If-None-Match", e);
        }
        if let Some(lm) = &old.last_modified {
            req = req.header("If-Modified-Since", lm);
        }
        let resp = req.send().await.map_err(|e| transport(&self.shown, e))?;
        let status = resp.status();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header("etag"), header("last-modified"));
        if status.as_u16() == 304 {
            return Ok(PullResult {
                cursor: super::Cursor::new(cursor.unwrap_or_default()),
                ..Default::default()
            });
        }
        let body = super::body_text(
            || self.shown.clone(),
            resp,
            crate::net::ICS_MAX_BYTES,
            "ICS feed",
        )
        .await?;
        if !status.is_success() {
            let detail = format!("HTTP {}: {}", status.as_u16(), snippet(&body));
            return Err(if status.is_server_error() {
                ProviderError::Unavailable {
                    url: self.shown.clone(),
                    detail,
                }
            } else {
                ProviderError::Rejected {
                    url: self.shown.clone(),
                    status: status.as_u16(),
                    detail: snippet(&body),
                }
            });
        }
        let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        let new_cursor = serde_json::to_string(&FeedCursor {
            etag,
            last_modified,
            hash: hash.clone(),
        })
        .unwrap_or_default();
        if !old.hash.is_empty() && old.hash == hash {
            return Ok(PullResult {
                cursor: super::Cursor::new(new_cursor),
                ..Default::default()
            });
        }
        // Feeds are sent as text/calendar, text/plain or octet-stream: sniff the content.
        if !body
            .trim_start_matches('\u{feff}')
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("BEGIN:VCALENDAR")
        {
            return Err(ProviderError::Protocol {
                url: self.shown.clone(),
                detail: "body is not an iCalendar stream (no BEGIN:VCALENDAR)".into(),
            });
        }
        let parsed = parse_calendar(&self.shown, &body).map_err(|e| ProviderError::Protocol {
            url: self.shown.clone(),
            detail: e.to_string(),
        })?;
        let mut result = PullResult {
            cursor: super::Cursor::new(new_cursor),
            full: true,
            ..Default::default()
        };
        for s in parsed.series {
            result.changed.push(RemoteRef {
                href: Self::href_of(&s.uid),
                etag: Some(super::Etag::new(s.content_hash())),
                data: Some(s.to_ical()),
                author: super::Author::Unknown,
            });
        }
        for (uid, err) in parsed.errors {
            let href = uid
                .as_deref()
                .map(Self::href_of)
                .unwrap_or_else(|| super::RemoteId::new(format!("ics:line:{}", err.line)));
            result.unreadable.push((href, err.to_string()));
        }
        Ok(result)
    }

    async fn fetch(&self, _hrefs: &[super::RemoteId]) -> Result<Vec<RemoteRef>, ProviderError> {
        // Pull always carries the data of a feed.
        Ok(Vec::new())
    }

    async fn create(&self, _uid: &str, _ical: &str) -> Result<WriteResult, ProviderError> {
        Err(ProviderError::ReadOnly(self.shown.clone()))
    }

    async fn update(
        &self,
        _href: &super::RemoteId,
        _ical: &str,
        _etag: Option<&super::Etag>,
    ) -> Result<WriteResult, ProviderError> {
        Err(ProviderError::ReadOnly(self.shown.clone()))
    }

    async fn delete(
        &self,
        _href: &super::RemoteId,
        _etag: Option<&super::Etag>,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::ReadOnly(self.shown.clone()))
    }

    fn requests(&self) -> u32 {
        self.counter.get()
    }
}

/// The ICS provider for the registry ([`crate::provider::registry`]): read-only, the feed's
/// address in Secrets Manager when connected through the API, no push.
pub struct IcsModule;

/// The registry entry.
pub static MODULE: IcsModule = IcsModule;

/// What an ICS subscription is, for the registry: read-only.
pub static INFO: ProviderInfo = ProviderInfo {
    read_only: true,
    ..ProviderInfo::new(
        crate::model::ProviderKind::Ics,
        "ics",
        "ICS subscription",
        4,
    )
};

#[async_trait]
impl crate::provider::registry::ProviderModule for IcsModule {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }
    async fn connect(
        &self,
        ctx: &crate::config::Ctx,
        link: &crate::model::Link,
    ) -> anyhow::Result<Box<dyn super::Provider>> {
        use secrecy::{ExposeSecret, SecretString};
        // A feed connected through the API keeps its address in Secrets Manager (private
        // feed URLs carry a key); the link holds only its redacted form.
        let url = match link.secret_arn.as_deref() {
            Some(arn) => {
                crate::secrets::read_json::<crate::secrets::FeedSecret>(
                    &ctx.clients.secrets,
                    arn,
                    r#"{"url"}"#,
                )
                .await?
                .url
            }
            None => SecretString::from(link.url.clone()),
        };
        Ok(Box::new(IcsFeed::new(
            ctx.clients.http.clone(),
            url.expose_secret(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webcal_urls_are_rewritten() {
        assert_eq!(
            fetch_url("webcal://example.com/a.ics").unwrap(),
            "https://example.com/a.ics"
        );
        assert_eq!(
            fetch_url("webcals://example.com/a.ics").unwrap(),
            "https://example.com/a.ics"
        );
        assert_eq!(
            fetch_url("webcal://127.0.0.1:9/a.ics").unwrap(),
            "http://127.0.0.1:9/a.ics"
        );
        assert_eq!(fetch_url("https://x/y").unwrap(), "https://x/y");
        assert!(fetch_url("ftp://x/y").is_err());
        assert!(fetch_url("nonsense").is_err());
    }

    #[test]
    fn errors_do_not_show_secret_feed_paths() {
        let shown =
            redacted("https://calendar.example.com/ical/abc%40x/private-5ecret/basic.ics?key=k");
        assert_eq!(shown, "https://calendar.example.com/…");
        let e = fetch_url("ftp://h/private-5ecret").unwrap_err().to_string();
        assert!(!e.contains("5ecret"), "{e}");
    }
}
