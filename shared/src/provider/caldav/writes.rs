//! A write's request: PUT with its precondition (RFC 4791 §5.3.2), and the etag read back
//! when the answer carries no strong one (§5.3.4).

use super::dav_error::dav_precondition;
use super::CalDav;
use crate::provider::{ProviderError, WriteResult};

impl CalDav {
    /// The etag of `href` now (a Depth 0 PROPFIND).
    async fn current_etag(&self, href: &str) -> Result<Option<String>, ProviderError> {
        let url = self.resolve(href)?;
        let (rs, _) = self.propfind(&url, "0", "<d:getetag/>").await?;
        Ok(rs.into_iter().find_map(|r| r.etag))
    }

    /// PUT `ical` at `href` under `precondition` (`If-None-Match: *` to create, `If-Match`
    /// to update), with `SCHEDULE-AGENT=CLIENT` on its attendees.
    ///
    /// Errors: [`ProviderError::AlreadyExists`] / [`ProviderError::PreconditionFailed`] on a
    /// 412 of that precondition, [`ProviderError::NotFound`] on 404/410, a rejection naming
    /// the server's DAV precondition otherwise.
    pub(super) async fn put(
        &self,
        href: &str,
        ical: &str,
        precondition: (&str, &str),
    ) -> Result<WriteResult, ProviderError> {
        self.put_at(href, self.resolve(href)?, ical, precondition)
            .await
    }

    /// [`Self::put`] to `url`, the resolved `href`.
    pub(super) async fn put_at(
        &self,
        href: &str,
        url: reqwest::Url,
        ical: &str,
        precondition: (&str, &str),
    ) -> Result<WriteResult, ProviderError> {
        // Invariant 8: a sync write never makes the server send invitations (RFC 6638 §7.1).
        // Marked as calsync's, for a later link of the calendar ([`super::mark`]).
        let body = super::mark::marked(&crate::ical::schedule_agent_client(ical, true));
        let r = self
            .request(
                "PUT",
                &url,
                &[
                    ("Content-Type", "text/calendar; charset=utf-8"),
                    precondition,
                ],
                Some(body),
            )
            .await?;
        match r.status.as_u16() {
            200..=299 => {
                let etag = match r.etag {
                    Some(e) if !e.starts_with("W/") => Some(e),
                    // No strong ETag: the server changed our data (RFC 4791 §5.3.4); re-read.
                    _ => self.current_etag(href).await?,
                };
                Ok(WriteResult {
                    href: href.into(),
                    etag: etag.map(crate::provider::Etag::from),
                })
            }
            // A 412 that names a CalDAV/WebDAV precondition (Xandikos answers invalid data
            // with 412 + CALDAV:valid-calendar-data) is a rejection of the data, not an
            // If-Match / If-None-Match failure.
            412 if dav_precondition(&r.body).is_some() => Err(Self::rejected(&url, &r)),
            412 if precondition.0 == "If-None-Match" => {
                Err(ProviderError::AlreadyExists(href.into()))
            }
            412 => Err(ProviderError::PreconditionFailed(href.into())),
            404 | 410 => Err(ProviderError::NotFound(href.into())),
            _ => Err(Self::rejected(&url, &r)),
        }
    }
}
