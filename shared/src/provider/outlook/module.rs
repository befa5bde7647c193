//! What the Outlook provider is, for the registry ([`crate::provider::registry`]): the
//! Microsoft identity platform's OAuth 2.0 profile
//! (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow) and how a
//! link connects.

use std::sync::Arc;

use async_trait::async_trait;

use super::OutlookCalendar;
use crate::config::Ctx;
use crate::model::{Link, ProviderKind};
use crate::oauth::{DefaultCalendar, LinkTokens, OAuthProfile};
use crate::provider::account::AccountCalendar;
use crate::provider::registry::{ProviderInfo, ProviderModule};
use crate::provider::Provider;
use crate::push::PushPort;

/// Graph's API root.
pub const API_ROOT: &str = "https://graph.microsoft.com/v1.0";

/// Microsoft's OAuth 2.0: `Calendars.ReadWrite` and `offline_access` (without it no refresh
/// token is issued); refresh tokens rotate on every use; no revocation endpoint (a user
/// removes the app's consent at https://myapps.microsoft.com).
pub static OAUTH: OAuthProfile = OAuthProfile {
    provider: ProviderKind::Outlook,
    scopes: &["offline_access", "Calendars.ReadWrite"],
    extra_params: &[("response_mode", "query")],
    revoke_uri: None,
    api_root: API_ROOT,
    default_calendar: DefaultCalendar {
        path: "/me/calendar",
        alias: None,
        account: "/owner/address",
    },
    calendar_url,
};

/// `<api root>/me/calendars/<id>`.
fn calendar_url(api_root: &str, calendar_id: &str) -> String {
    format!(
        "{}/me/calendars/{}",
        api_root.trim_end_matches('/'),
        crate::provider::percent_encode(calendar_id)
    )
}

/// The Outlook provider.
pub struct Outlook;

/// The registry entry.
pub static MODULE: Outlook = Outlook;

impl OutlookCalendar {
    /// The calendar at `url` with the tokens in the secret `arn`, refreshed on 401, paced
    /// under the link's `account` ([`crate::provider::quota_key`]; `None`: unknown, the
    /// secret's ARN stands in).
    ///
    /// Errors: `url` is not an Outlook calendar URL.
    pub fn with_link_tokens(
        ctx: &Ctx,
        url: &str,
        arn: &str,
        account: Option<&str>,
    ) -> anyhow::Result<Self> {
        let key = crate::provider::quota_key(account, arn);
        let quota = super::shared_quota_for(&ctx.store(), key);
        Ok(OutlookCalendar::new(
            ctx.clients.http.clone(),
            url,
            Arc::new(LinkTokens::new(ctx, &OAUTH, arn)),
            key,
        )?
        .with_shared_quota(quota))
    }
}

/// What Outlook through Graph is, for the registry: a push hands it one `$batch` of writes.
pub static INFO: ProviderInfo = ProviderInfo {
    write_batch: super::writes::BATCH_MAX,
    ..ProviderInfo::new(ProviderKind::Outlook, "outlook", "Outlook Calendar", 2)
};

#[async_trait]
impl ProviderModule for Outlook {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }
    fn oauth(&self) -> Option<&'static OAuthProfile> {
        Some(&OAUTH)
    }
    fn push(&self) -> Option<&'static dyn PushPort> {
        Some(&super::push::PUSH)
    }
    /// The mailbox's calendars ([`OutlookCalendar::calendar_list`]).
    async fn calendars(
        &self,
        ctx: &Ctx,
        link: &Link,
    ) -> anyhow::Result<Option<Vec<AccountCalendar>>> {
        let arn = link.required_secret()?;
        let o = OutlookCalendar::with_link_tokens(ctx, &link.url, arn, link.account.as_deref())?;
        Ok(Some(o.calendar_list().await?))
    }
    async fn connect(&self, ctx: &Ctx, link: &Link) -> anyhow::Result<Box<dyn Provider>> {
        let arn = link.required_secret()?;
        let mut o =
            OutlookCalendar::with_link_tokens(ctx, &link.url, arn, link.account.as_deref())?;
        o.bearer().await?;
        if link.write_attendees {
            o = o.with_owner_attendees().await?;
        }
        Ok(Box::new(o))
    }
}
