//! What the CalDAV provider is, for the registry ([`crate::provider::registry`]): two-way,
//! credentials (username + password) in Secrets Manager, no push.

use async_trait::async_trait;

use super::CalDav;
use crate::config::Ctx;
use crate::model::{Link, ProviderKind};
use crate::provider::account::AccountCalendar;
use crate::provider::registry::{ProviderInfo, ProviderModule};
use crate::provider::Provider;

/// The CalDAV provider (RFC 4791): iCloud, Fastmail, Nextcloud, Radicale, Xandikos.
pub struct CalDavModule;

/// The registry entry.
pub static MODULE: CalDavModule = CalDavModule;

/// What CalDAV is, for the registry: a calendar's URL holds no secret (the credentials are
/// in Secrets Manager), so it is shown as it is.
pub static INFO: ProviderInfo = ProviderInfo {
    url_is_public: true,
    ..ProviderInfo::new(ProviderKind::Caldav, "caldav", "CalDAV", 3)
};

#[async_trait]
impl ProviderModule for CalDavModule {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }
    /// The account's calendars, discovered from the link's own calendar URL
    /// ([`CalDav::discover`]: current-user-principal → calendar-home-set → listing). CalDAV
    /// names no main calendar and is not asked whether each may be written.
    async fn calendars(
        &self,
        ctx: &Ctx,
        link: &Link,
    ) -> anyhow::Result<Option<Vec<AccountCalendar>>> {
        let client = self.client(ctx, link).await?;
        // One PROPFIND answer, bounded by the response cap of `crate::net`.
        let found = client.discover(&link.url).await?;
        Ok(Some(
            found
                .into_iter()
                .map(|c| AccountCalendar {
                    name: if c.display_name.is_empty() {
                        c.url.clone()
                    } else {
                        c.display_name
                    },
                    id: c.url.clone(),
                    main: false,
                    writable: true,
                    url: c.url,
                })
                .collect(),
        ))
    }
    async fn connect(&self, ctx: &Ctx, link: &Link) -> anyhow::Result<Box<dyn Provider>> {
        Ok(Box::new(self.client(ctx, link).await?))
    }
}

impl CalDavModule {
    /// The CalDAV client of `link`, with the username and password of its secret.
    async fn client(&self, ctx: &Ctx, link: &Link) -> anyhow::Result<CalDav> {
        let arn = link.required_secret()?;
        let creds = crate::secrets::caldav_credentials(&ctx.clients.secrets, arn).await?;
        Ok(CalDav::new(
            ctx.clients.http.clone(),
            &link.url,
            &creds.username,
            creds.password,
            link.force_ctag,
        )?)
    }
}
