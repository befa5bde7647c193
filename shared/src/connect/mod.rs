//! Connecting a calendar through OAuth 2.0 (any provider whose registry module has an
//! [`OAuthProfile`]): the consent round trip that ends in a new link.
//!
//! 1. [`start`] (an authenticated API call, bound to the calling user and their group): a
//!    consent with `state` and a PKCE challenge waits in the oauth-states table (single use,
//!    10 minutes); the answer is our begin URL `…/oauth/<slug>/begin?state=…`.
//! 2. [`begin`]: the user's browser opens it; the state is marked begun (once) and bound to
//!    that browser by the cookie [`STATE_COOKIE`] (`__Host-`, Secure, HttpOnly,
//!    SameSite=Lax), and the browser is redirected to the provider's consent page.
//! 3. The user consents; the provider redirects to `redirect_uri` (our
//!    `/oauth/<slug>/callback`, served by the webhook-receiver function, or the CLI) with
//!    `code` and `state`.
//! 4. [`finish`]: the callback must come from the browser that began (its cookie names the
//!    state), the state is taken (a replayed or forged state finds nothing), the code is
//!    exchanged with the verifier, the tokens go to a new Secrets Manager secret, the link is
//!    created, a push channel is started when a webhook URL is configured, and a first sync
//!    is queued.

use secrecy::{ExposeSecret, SecretString};

use crate::config::{now_secs, Ctx};
use crate::model::{Link, LinkChoices, OAuthState, ProviderKind};
use crate::oauth::{self, OAuthProfile};
use crate::queue::{QueueKind, SyncJob};

mod calendar;
use calendar::{calendar_of, main_calendar, same_calendar};

/// Seconds a consent may take.
const STATE_TTL_SECS: i64 = 600;
/// The cookie binding a consent to the browser that began it (RFC 6265bis `__Host-` prefix:
/// Secure, no Domain, Path=/).
pub const STATE_COOKIE: &str = "__Host-calsync-oauth";

/// Who connects which calendar.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The provider (its registry module must have an OAuth profile).
    pub provider: ProviderKind,
    /// Sync group to join.
    pub group_id: String,
    /// Application user.
    pub user_id: i64,
    /// Calendar id in the provider's terms (a Google calendarList id, an Outlook
    /// `/me/calendars` id); empty: the account's main calendar (the profile's
    /// [`oauth::DefaultCalendar`]).
    pub calendar_id: String,
    /// Name shown in reports.
    pub display_name: String,
    /// Frequency and conflict policy of the new link.
    pub choices: LinkChoices,
}

/// The OAuth profile of `kind`.
///
/// Errors: the provider does not connect through OAuth.
pub fn profile(kind: ProviderKind) -> anyhow::Result<&'static OAuthProfile> {
    kind.module().oauth().ok_or_else(|| {
        anyhow::anyhow!(
            "{} calendars do not connect through OAuth",
            kind.info().display_name
        )
    })
}

/// Prepare a consent for `req` (whose user the caller has verified): returns the begin URL to
/// send the user's browser to, `<base>/oauth/<slug>/begin?state=…`, where `<base>` is the
/// OAuth client's `redirect_uri` less `/oauth/<slug>/callback`.
///
/// Errors: the provider has no OAuth profile; the OAuth client secret is missing or
/// malformed; DynamoDB failure.
pub async fn start(ctx: &Ctx, req: &ConnectRequest) -> anyhow::Result<String> {
    start_consent(ctx, req, None).await
}

/// Prepare a consent that renews the grant of `link` (a link of an OAuth provider whose
/// user the caller has verified, typically `reconnect_needed` after `invalid_grant`): the
/// same begin URL as [`start`]; [`finish`] then replaces the link's tokens in its secret,
/// sets it `ok` and queues a sync, keeping its mappings and cursor, so nothing is copied
/// twice.
///
/// Errors: as [`start`].
pub async fn start_reconnect(ctx: &Ctx, link: &Link) -> anyhow::Result<String> {
    let req = ConnectRequest {
        provider: link.provider,
        group_id: link.group_id.clone(),
        user_id: link.user_id,
        calendar_id: String::new(),
        display_name: link.display_name.clone(),
        choices: LinkChoices::default(),
    };
    start_consent(ctx, &req, Some(&link.link_id)).await
}

async fn start_consent(
    ctx: &Ctx,
    req: &ConnectRequest,
    link_id: Option<&str>,
) -> anyhow::Result<String> {
    let p = profile(req.provider)?;
    let client = oauth::load_client(ctx, p).await?;
    let auth = oauth::authorization_url(&client, p)?;
    ctx.store()
        .put_oauth_state(&OAuthState {
            state: auth.state.clone(),
            verifier: auth.verifier.expose_secret().to_string(),
            group_id: req.group_id.clone(),
            user_id: req.user_id,
            provider: req.provider,
            calendar_id: req.calendar_id.clone(),
            display_name: req.display_name.clone(),
            auth_url: auth.url.clone(),
            begun: false,
            link_id: link_id.map(str::to_string),
            choices: req.choices,
            expires_at: now_secs() + STATE_TTL_SECS,
        })
        .await?;
    let slug = p.slug();
    let callback = format!("/oauth/{slug}/callback");
    let base = client
        .redirect_uri
        .trim_end_matches('/')
        .trim_end_matches(callback.as_str());
    Ok(format!(
        "{base}/oauth/{slug}/begin?state={}",
        crate::provider::percent_encode(&auth.state)
    ))
}

/// The browser opens the begin URL: mark the consent begun (once) and answer the provider's
/// consent page and the `Set-Cookie` value that binds the consent to this browser.
///
/// Errors: [`CallbackError::BadState`] for an unknown, expired or already begun state.
pub async fn begin(ctx: &Ctx, state: &str) -> Result<(String, String), CallbackError> {
    let st = ctx
        .store()
        .begin_oauth_state(state)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or(CallbackError::BadState)?;
    let cookie = format!(
        "{STATE_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={STATE_TTL_SECS}",
        st.state
    );
    Ok((st.auth_url, cookie))
}

/// The value of the [`STATE_COOKIE`] in a `Cookie` request header, if any.
pub fn state_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == STATE_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// Unknown, used or expired `state`.
    #[error("unknown or expired OAuth state; start the connection again")]
    BadState,
    /// The callback did not come from the browser that began the consent.
    #[error("this consent was started in another browser; start the connection again")]
    OtherBrowser,
    /// The user refused consent (`error=access_denied`) or the provider reported another error.
    #[error("consent not given: {0}")]
    Denied(String),
    /// A reconnection signed in to another account than the one that connected the link
    /// (see `same_calendar`); nothing changed.
    #[error("{0}; reconnect with the account that connected this calendar")]
    OtherAccount(String),
    /// Exchange, secret or link creation failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// What a completed consent did.
#[derive(Debug, Clone)]
pub enum Finished {
    /// A new link.
    Connected(Link),
    /// An existing link got the new tokens: the consent's reconnection, or a calendar the
    /// group links already.
    Renewed(Link),
}

impl Finished {
    /// The link connected or renewed.
    pub fn link(&self) -> &Link {
        match self {
            Finished::Connected(l) | Finished::Renewed(l) => l,
        }
    }
}

/// Complete a consent from the callback of provider `kind` (its route) with `code` and
/// `state`, and the state cookie the browser sent (`cookie`); returns the new link. A state
/// begun for another provider is refused as unknown. When the group links the consent's
/// calendar already, that link is renewed with the new tokens (as a reconnection) and
/// returned, and no second link is made.
///
/// Errors: see [`CallbackError`]; the state is used up even when the browser is wrong.
pub async fn finish(
    ctx: &Ctx,
    kind: ProviderKind,
    code: &str,
    state: &str,
    cookie: Option<&str>,
) -> Result<Finished, CallbackError> {
    use subtle::ConstantTimeEq;
    let store = ctx.store();
    let pending = store
        .take_oauth_state(state)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or(CallbackError::BadState)?;
    let same_browser = cookie.is_some_and(|c| bool::from(c.as_bytes().ct_eq(state.as_bytes())));
    if pending.provider != kind {
        tracing::warn!(group = %pending.group_id, "OAuth callback on another provider's route refused");
        return Err(CallbackError::BadState);
    }
    if !pending.begun || !same_browser {
        tracing::warn!(group = %pending.group_id, "OAuth callback from another browser refused");
        return Err(CallbackError::OtherBrowser);
    }
    let p = profile(pending.provider)?;
    let client = oauth::load_client(ctx, p)
        .await
        .map_err(anyhow::Error::from)?;
    let verifier = SecretString::from(pending.verifier.clone());
    let tokens = oauth::exchange_code(&ctx.clients.http, &client, code, &verifier)
        .await
        .map_err(anyhow::Error::from)?;
    let api_root = client.api_root.as_deref().unwrap_or(p.api_root);
    if let Some(link_id) = &pending.link_id {
        return renew(ctx, &pending, link_id, api_root, &tokens)
            .await
            .map(Finished::Renewed);
    }
    let (calendar_id, account) =
        calendar_of(ctx, p, api_root, &pending.calendar_id, &tokens).await?;
    let url = (p.calendar_url)(api_root, &calendar_id);
    // The group links this calendar already: the consent renews that link, not a second
    // one that would sync every event twice.
    let group = store
        .links_of_group(&pending.group_id)
        .await
        .map_err(anyhow::Error::from)?;
    if let Some(l) = crate::provider::account::linked_already(&group, pending.provider, &url) {
        tracing::info!(link = %l.link_id, group = %pending.group_id, "the consent's calendar is linked already: that link is renewed");
        return renew(ctx, &pending, &l.link_id, api_root, &tokens)
            .await
            .map(Finished::Renewed);
    }
    let link_id = format!("{}-{}", p.slug(), uuid::Uuid::now_v7().simple());
    let secret_name = p.token_secret_name(&ctx.config.stack, &link_id);
    let arn = oauth::store_tokens(ctx, &secret_name, &tokens)
        .await
        .map_err(anyhow::Error::from)?;
    let mut link = Link::new(
        &link_id,
        &pending.group_id,
        pending.user_id,
        pending.provider,
        &url,
    );
    link.secret_arn = Some(arn);
    link.token_expires_at = Some(tokens.expires_at);
    link.account = account;
    link.display_name = pending.display_name.clone();
    pending.choices.apply(&mut link);
    store.put_link(&link).await.map_err(anyhow::Error::from)?;
    start_push_and_sync(ctx, &link, "connected").await?;
    tracing::info!(link = %link.link_id, group = %link.group_id, provider = p.slug(), "calendar connected");
    Ok(Finished::Connected(link))
}

/// The reconnection half of [`finish`]: the link of the consent (still there, of the same
/// group, user and provider) gets the new tokens in its own secret and is `ok` again; its
/// push channels are started anew and a sync is queued.
async fn renew(
    ctx: &Ctx,
    pending: &OAuthState,
    link_id: &str,
    api_root: &str,
    tokens: &oauth::TokenSet,
) -> Result<Link, CallbackError> {
    let store = ctx.store();
    let link = store
        .get_link(link_id)
        .await
        .map_err(anyhow::Error::from)?
        .filter(|l| {
            l.group_id == pending.group_id
                && l.user_id == pending.user_id
                && l.provider == pending.provider
        })
        .ok_or_else(|| {
            CallbackError::Failed(anyhow::anyhow!(
                "the calendar to reconnect was disconnected meanwhile; connect it again"
            ))
        })?;
    let arn = link.secret_arn.as_deref().ok_or_else(|| {
        CallbackError::Failed(anyhow::anyhow!("link {link_id} has no token secret"))
    })?;
    let p = profile(link.provider)?;
    same_calendar(ctx, p, &link, tokens).await?;
    oauth::write_tokens(ctx, arn, tokens)
        .await
        .map_err(anyhow::Error::from)?;
    // The new token may expire before the old one did (Microsoft's last 60 to 90 minutes).
    store
        .set_token_expiry(link_id, tokens.expires_at)
        .await
        .map_err(anyhow::Error::from)?;
    record_account(ctx, p, &link, api_root, tokens).await?;
    if link.status == crate::model::LinkStatus::Removing {
        // Its copies were being removed when the grant was refused: that goes on.
        crate::disconnect::resume_removing(ctx, link_id).await?;
        return store
            .get_link(link_id)
            .await
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| CallbackError::Failed(anyhow::anyhow!("link {link_id} vanished")));
    }
    store
        .set_link_status(link_id, crate::model::LinkStatus::Ok, None)
        .await
        .map_err(anyhow::Error::from)?;
    if p.provider.module().push().is_some() {
        // The old channels were started with the revoked grant.
        if let Err(e) = crate::push::stop_channels_of(ctx, link_id).await {
            tracing::warn!(link = %link_id, error = %e, "old push channels not stopped");
        }
    }
    start_push_and_sync(ctx, &link, "reconnected").await?;
    queue_catch_up(ctx, link_id).await?;
    tracing::info!(link = %link_id, group = %link.group_id, provider = p.slug(), "calendar reconnected");
    store
        .get_link(link_id)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| CallbackError::Failed(anyhow::anyhow!("link {link_id} vanished")))
}

/// The account the reconnection's tokens belong to becomes the link's `account`: links
/// connected before accounts were recorded get theirs, and a shared calendar reconnected
/// with another account that can open it follows the grant it now holds. One read of the
/// main calendar; when it fails, the recorded account stays as it was.
///
/// Errors: DynamoDB.
async fn record_account(
    ctx: &Ctx,
    p: &OAuthProfile,
    link: &Link,
    api_root: &str,
    tokens: &oauth::TokenSet,
) -> anyhow::Result<()> {
    let account = match main_calendar(ctx, p, api_root, tokens).await {
        Ok((_, account)) => account,
        Err(e) => {
            tracing::warn!(link = %link.link_id, detail = %e.detail, "the account's main calendar could not be read; the link's account stays as it was");
            None
        }
    };
    match account {
        Some(a) if link.account.as_deref() != Some(a.as_str()) => {
            let store = ctx.store();
            store
                .update_link_fields(&link.link_id, vec![("account", store.attr(a)?)])
                .await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A reconnected link missed the hub's writes while it waited (no sync-back is queued for a
/// `reconnect_needed` link): queue one, beside the pull, so that they reach it.
///
/// Errors: SQS failure.
pub async fn queue_catch_up(ctx: &Ctx, link_id: &str) -> anyhow::Result<()> {
    ctx.queues()
        .send(
            QueueKind::SyncBack,
            &[SyncJob::unique(link_id, "reconnected")],
        )
        .await?;
    Ok(())
}

/// Start a push channel for the new or renewed `link` when its provider has push and a
/// webhook URL is set (a failure is logged: polling still syncs, the refresher retries),
/// put the link in the token refresher's view ([`crate::model::Link::upkeep_at`]: its next
/// run looks after the new token and the channel), then queue a sync with `reason`.
///
/// Errors: DynamoDB (the link is gone) or SQS failure.
pub async fn start_push_and_sync(ctx: &Ctx, link: &Link, reason: &str) -> anyhow::Result<()> {
    let module = link.provider.module();
    let push_url = module
        .push()
        .and(ctx.config.webhook_url(module.info().slug));
    if let Some(addr) = push_url {
        if let Err(e) = crate::push::start_channel(ctx, link, &addr).await {
            // Polling still syncs the link; the token refresher retries the channel.
            tracing::warn!(link = %link.link_id, error = %e, "push channel not started");
        }
    }
    if crate::refresher::backfill::needs_upkeep(link) {
        ctx.store()
            .want_upkeep(&link.link_id, crate::config::now_secs())
            .await?;
    }
    ctx.queues()
        .send(
            QueueKind::SyncJobs,
            &[SyncJob::unique(&link.link_id, reason)],
        )
        .await?;
    Ok(())
}
