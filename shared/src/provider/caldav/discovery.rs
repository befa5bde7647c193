//! Finding and making calendars: discovery from any URL on a server (RFC 5397
//! `current-user-principal` → RFC 4791 §6.2.1 `calendar-home-set` → Depth 1 listing), the
//! probe of a configured calendar, and MKCALENDAR (RFC 4791 §5.3.1).

use reqwest::Url;

use super::{confined, xml_escape, CalDav, CalendarInfo, CALDAV};
use crate::provider::ProviderError;

impl CalDav {
    /// Find the calendars of the account that `start_url` belongs to (server root or any URL
    /// on it): current-user-principal → calendar-home-set → Depth 1 listing.
    pub async fn discover(&self, start_url: &str) -> Result<Vec<CalendarInfo>, ProviderError> {
        let start = Url::parse(start_url).map_err(|_| ProviderError::Protocol {
            url: start_url.into(),
            detail: "not a URL".into(),
        })?;
        crate::net::check_address(&start).map_err(|e| ProviderError::Forbidden {
            url: crate::provider::redacted(start_url),
            detail: e.to_string(),
        })?;
        let (rs, base) = self
            .propfind(&start, "0", "<d:current-user-principal/>")
            .await?;
        let principal =
            rs.iter()
                .find_map(|r| r.principal.clone())
                .ok_or_else(|| ProviderError::Protocol {
                    url: start_url.into(),
                    detail: "no current-user-principal".into(),
                })?;
        let principal = base.join(&principal).map_err(|_| ProviderError::Protocol {
            url: start_url.into(),
            detail: "bad principal href".into(),
        })?;
        let principal = confined(&start, principal)?;
        let (rs, base) = self
            .propfind(&principal, "0", "<c:calendar-home-set/>")
            .await?;
        let home =
            rs.iter()
                .find_map(|r| r.home_set.clone())
                .ok_or_else(|| ProviderError::Protocol {
                    url: principal.to_string(),
                    detail: "no calendar-home-set".into(),
                })?;
        // An absolute href on another host (iCloud partition) is kept as is by join().
        let home = base.join(&home).map_err(|_| ProviderError::Protocol {
            url: principal.to_string(),
            detail: "bad calendar-home-set href".into(),
        })?;
        let home = confined(&start, home)?;
        let (rs, base) = self
            .propfind(&home, "1", "<d:resourcetype/><d:displayname/>")
            .await?;
        Ok(rs
            .into_iter()
            .filter(|r| r.is_calendar)
            .filter_map(|r| {
                let url = confined(&start, base.join(&r.href).ok()?).ok()?;
                Some(CalendarInfo {
                    url: url.to_string(),
                    display_name: r.display_name.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Is this client's URL a calendar collection? `Some` with its display name when it is,
    /// `None` when the server answers but the URL is another kind of resource (an account
    /// or server URL: run [`CalDav::discover`] from it). One PROPFIND, Depth 0.
    ///
    /// Errors: [`ProviderError::Unauthorized`] for refused credentials; other failures.
    pub async fn probe(&self) -> Result<Option<CalendarInfo>, ProviderError> {
        let (rs, base) = self
            .propfind(&self.collection, "0", "<d:resourcetype/><d:displayname/>")
            .await?;
        Ok(rs
            .into_iter()
            .find(|r| r.is_calendar)
            .map(|r| CalendarInfo {
                url: base.as_str().to_string(),
                display_name: r.display_name.unwrap_or_default(),
            }))
    }

    /// Create this client's collection with MKCALENDAR (RFC 4791 §5.3.1). An existing
    /// collection is an error.
    pub async fn mkcalendar(&self, display_name: &str) -> Result<(), ProviderError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:set><d:prop><d:displayname>{}</d:displayname><c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>"#,
            xml_escape(display_name)
        );
        let r = self
            .request(
                "MKCALENDAR",
                &self.collection,
                &[("Content-Type", "application/xml; charset=utf-8")],
                Some(body),
            )
            .await?;
        if r.status.is_success() {
            Ok(())
        } else {
            Err(Self::rejected(&self.collection, &r))
        }
    }
}
