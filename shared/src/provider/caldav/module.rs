//! What the CalDAV provider is, for the registry ([`crate::provider::registry`]): two-way,
//! credentials (username + password) in Secrets Manager, no push.

use async_trait::async_trait;

use super::CalDav;
use crate::config::Ctx;
use crate::model::{Link, ProviderKind};
use crate::provider::registry::ProviderModule;
use crate::provider::Provider;

/// The CalDAV provider (RFC 4791): iCloud, Fastmail, Nextcloud, Radicale, Xandikos.
pub struct CalDavModule;

/// The registry entry.
pub static MODULE: CalDavModule = CalDavModule;

#[async_trait]
impl ProviderModule for CalDavModule {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Caldav
    }
    fn slug(&self) -> &'static str {
        "caldav"
    }
    fn display_name(&self) -> &'static str {
        "CalDAV"
    }
    fn calendar_type(&self) -> i64 {
        3
    }
    fn url_is_public(&self) -> bool {
        true
    }
    async fn connect(&self, ctx: &Ctx, link: &Link) -> anyhow::Result<Box<dyn Provider>> {
        let arn = link.required_secret()?;
        let creds = crate::secrets::caldav_credentials(&ctx.clients.secrets, arn).await?;
        Ok(Box::new(CalDav::new(
            ctx.clients.http.clone(),
            &link.url,
            &creds.username,
            creds.password,
            link.force_ctag,
        )?))
    }
}
