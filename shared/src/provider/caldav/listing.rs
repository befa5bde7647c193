//! Listing a collection's changes: RFC 6578 sync-collection rounds, the CS:getctag +
//! Depth 1 PROPFIND fallback, and the Depth 1 listing of an initial pull.

use super::xml::{parse_multistatus, xml_escape};
use super::{CalDav, Response, CTAG_PREFIX, SYNC_PREFIX};
use crate::provider::{Author, Cursor, Etag, ProviderError, PullResult, RemoteId, RemoteRef};

impl CalDav {
    /// One sync-collection round: (changed, removed, token, truncated).
    async fn sync_collection(
        &self,
        token: &str,
    ) -> Result<Result<(Vec<RemoteRef>, Vec<String>, String, bool), Response>, ProviderError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#,
            xml_escape(token)
        );
        let r = self
            .request(
                "REPORT",
                &self.collection,
                &[
                    ("Depth", "0"),
                    ("Content-Type", "application/xml; charset=utf-8"),
                ],
                Some(body),
            )
            .await?;
        if r.status.as_u16() != 207 {
            return Ok(Err(r));
        }
        let (rs, new_token) = parse_multistatus(self.collection.as_str(), &r.body)?;
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        let mut truncated = false;
        for resp in rs {
            let is_self = self.is_collection(&resp.href);
            match resp.status {
                Some(507) if is_self => truncated = true,
                Some(404) => removed.push(resp.href),
                _ if is_self => {}
                _ if resp.href.ends_with('/') => {}
                _ => changed.push(RemoteRef {
                    href: resp.href.into(),
                    etag: resp.etag.map(Etag::from),
                    data: None,
                    author: Author::Unknown,
                }),
            }
        }
        let token = new_token.ok_or_else(|| ProviderError::Protocol {
            url: self.collection.to_string(),
            detail: "sync-collection response without DAV:sync-token".into(),
        })?;
        Ok(Ok((changed, removed, token, truncated)))
    }

    pub(super) async fn pull_sync(
        &self,
        token: Option<&str>,
    ) -> Result<Option<PullResult>, ProviderError> {
        let mut result = PullResult {
            full: token.is_none(),
            ..Default::default()
        };
        let mut token = token.unwrap_or("").to_string();
        // Bounded truncation loop (RFC 6578 §3.6): each round returns a newer token.
        for _ in 0..1000 {
            match self.sync_collection(&token).await? {
                Ok((changed, removed, new_token, truncated)) => {
                    result.changed.extend(changed);
                    result
                        .removed
                        .extend(removed.into_iter().map(RemoteId::from));
                    token = new_token;
                    if !truncated {
                        result.cursor = Cursor::new(format!("{SYNC_PREFIX}{token}"));
                        return Ok(Some(result));
                    }
                }
                Err(r) if !token.is_empty() && r.status.is_client_error() => {
                    // DAV:valid-sync-token (403 sabre/dav, 409 others): start over, full.
                    tracing::warn!(collection = %self.collection, status = r.status.as_u16(), "sync-token rejected; full re-enumeration");
                    result = PullResult {
                        full: true,
                        ..Default::default()
                    };
                    token.clear();
                }
                Err(r) if r.status.is_client_error() => return Ok(None), // no RFC 6578 support
                Err(r) => return Err(Self::rejected(&self.collection, &r)),
            }
        }
        Err(ProviderError::Protocol {
            url: self.collection.to_string(),
            detail: "sync-collection kept answering 507 (truncated) 1000 times".into(),
        })
    }

    pub(super) async fn pull_ctag(
        &self,
        cursor: Option<&str>,
    ) -> Result<PullResult, ProviderError> {
        let old = cursor.and_then(|c| c.strip_prefix(CTAG_PREFIX));
        let (rs, _) = self
            .propfind(&self.collection, "0", "<cs:getctag/>")
            .await?;
        let ctag = rs.into_iter().find_map(|r| r.ctag);
        if let (Some(old), Some(new)) = (old, ctag.as_deref()) {
            if old == new {
                return Ok(PullResult {
                    cursor: Cursor::new(format!("{CTAG_PREFIX}{new}")),
                    ..Default::default()
                });
            }
        }
        Ok(PullResult {
            changed: self.members().await?,
            full: true,
            // Without a ctag every pull lists everything; the etags still avoid refetching.
            cursor: Cursor::new(
                ctag.map(|c| format!("{CTAG_PREFIX}{c}"))
                    .unwrap_or_default(),
            ),
            ..Default::default()
        })
    }

    /// The collection's members with their etags: one Depth 1 PROPFIND (RFC 4918 §9.1),
    /// the collection itself and sub-collections left out.
    pub(super) async fn members(&self) -> Result<Vec<RemoteRef>, ProviderError> {
        let (rs, _) = self
            .propfind(&self.collection, "1", "<d:getetag/><d:resourcetype/>")
            .await?;
        Ok(rs
            .into_iter()
            .filter(|r| !r.href.ends_with('/') && !self.is_collection(&r.href))
            .map(|r| RemoteRef {
                href: r.href.into(),
                etag: r.etag.map(Etag::from),
                data: None,
                author: Author::Unknown,
            })
            .collect())
    }

    /// Whether a multistatus `href` names the collection itself (by path; an href that does
    /// not resolve does not).
    fn is_collection(&self, href: &str) -> bool {
        self.resolve(href)
            .is_ok_and(|u| u.path() == self.collection.path())
    }
}
