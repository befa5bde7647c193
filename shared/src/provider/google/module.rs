//! What the Google provider is, for the registry ([`crate::provider::registry`]): its
//! OAuth profile (https://developers.google.com/identity/protocols/oauth2/web-server) and how
//! a link connects.

use std::sync::Arc;

use async_trait::async_trait;

use super::{percent_encode, GoogleCalendar};
use crate::config::Ctx;
use crate::model::{Link, ProviderKind};
use crate::oauth::{DefaultCalendar, LinkTokens, OAuthProfile};
use crate::provider::account::AccountCalendar;
use crate::provider::registry::{ProviderInfo, ProviderModule};
use crate::provider::Provider;
use crate::push::PushPort;

/// Default API root (https://developers.google.com/workspace/calendar/api/v3/reference).
pub const API_ROOT: &str = "https://www.googleapis.com/calendar/v3";

/// Scope for two-way event sync (https://developers.google.com/workspace/calendar/api/auth).
pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar";

/// Google's OAuth 2.0: the calendar scope, a refresh token asked for with
/// `access_type=offline` and `prompt=consent`, revocation at
/// https://oauth2.googleapis.com/revoke (…/web-server#tokenrevoke).
pub static OAUTH: OAuthProfile = OAuthProfile {
    provider: ProviderKind::Google,
    scopes: &[CALENDAR_SCOPE],
    extra_params: &[("access_type", "offline"), ("prompt", "consent")],
    revoke_uri: Some("https://oauth2.googleapis.com/revoke"),
    api_root: API_ROOT,
    default_calendar: DefaultCalendar {
        path: "/calendars/primary",
        alias: Some("primary"),
        account: "/id",
    },
    calendar_url,
};

/// `<api root>/calendars/<calendarId>`.
fn calendar_url(api_root: &str, calendar_id: &str) -> String {
    format!(
        "{}/calendars/{}",
        api_root.trim_end_matches('/'),
        percent_encode(calendar_id)
    )
}

/// The Google provider.
pub struct Google;

/// The registry entry.
pub static MODULE: Google = Google;

impl GoogleCalendar {
    /// The calendar at `url` with the tokens in the secret `arn`, refreshed on 401, paced
    /// under the link's `account` ([`crate::provider::quota_key`]; `None`: unknown, the
    /// secret's ARN stands in).
    ///
    /// Errors: `url` is not a Google calendar URL.
    pub fn with_link_tokens(
        ctx: &Ctx,
        url: &str,
        arn: &str,
        account: Option<&str>,
    ) -> anyhow::Result<Self> {
        let key = crate::provider::quota_key(account, arn);
        let quota = super::shared_quota_for(&ctx.store(), key);
        Ok(GoogleCalendar::new(
            ctx.clients.http.clone(),
            url,
            Arc::new(LinkTokens::new(ctx, &OAUTH, arn)),
            key,
        )?
        .with_shared_quota(quota))
    }
}

/// What Google Calendar is, for the registry. A batch's calls count at once against the
/// per-user quota, so a push hands it chunks of the pacer's burst.
pub static INFO: ProviderInfo = ProviderInfo {
    write_batch: super::BURST as usize,
    ..ProviderInfo::new(ProviderKind::Google, "google", "Google Calendar", 1)
};

#[async_trait]
impl ProviderModule for Google {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }
    fn oauth(&self) -> Option<&'static OAuthProfile> {
        Some(&OAUTH)
    }
    fn push(&self) -> Option<&'static dyn PushPort> {
        Some(&super::push::PUSH)
    }
    /// The account's `calendarList` ([`GoogleCalendar::calendar_list`]).
    async fn calendars(
        &self,
        ctx: &Ctx,
        link: &Link,
    ) -> anyhow::Result<Option<Vec<AccountCalendar>>> {
        let arn = link.required_secret()?;
        let g = GoogleCalendar::with_link_tokens(ctx, &link.url, arn, link.account.as_deref())?;
        Ok(Some(g.calendar_list().await?))
    }
    async fn connect(&self, ctx: &Ctx, link: &Link) -> anyhow::Result<Box<dyn Provider>> {
        let arn = link.required_secret()?;
        let g = GoogleCalendar::with_link_tokens(ctx, &link.url, arn, link.account.as_deref())?;
        // Fail here, before the run, when the grant is gone (reconnect needed).
        g.bearer().await?;
        Ok(Box::new(g))
    }
}
