//! Connecting a Google calendar: the OAuth 2.0 consent round trip that ends in a new link.
//!
//! 1. [`start`]: a consent URL with `state` and a PKCE challenge; the state and verifier wait
//!    in the oauth-states table (single use, 10 minutes).
//! 2. The user consents; Google redirects to `redirect_uri` (our `/oauth/google/callback`,
//!    served by the webhook-receiver function, or the CLI) with `code` and `state`.
//! 3. [`finish`]: the state is taken (a replayed or forged state finds nothing), the code is
//!    exchanged with the verifier, the tokens go to a new Secrets Manager secret, the link is
//!    created, a push channel is started when a webhook URL is configured, and a first sync
//!    is queued.

use secrecy::{ExposeSecret, SecretString};

use crate::config::{now_secs, Ctx};
use crate::model::{Link, OAuthState, ProviderKind};
use crate::oauth::{self, CALENDAR_SCOPE};
use crate::queue::{QueueKind, SyncJob};

/// Default API root (https://developers.google.com/workspace/calendar/api/v3/reference).
pub const GOOGLE_API_ROOT: &str = "https://www.googleapis.com/calendar/v3";
/// Seconds a consent may take.
const STATE_TTL_SECS: i64 = 600;

/// Who connects which calendar.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Sync group to join.
    pub group_id: String,
    /// Application user.
    pub user_id: i64,
    /// Google calendar id (`primary`, or an id from calendarList).
    pub calendar_id: String,
    /// Name shown in reports.
    pub display_name: String,
}

/// Begin a consent: returns the URL to send the user to.
///
/// Errors: the OAuth client secret is missing or malformed; DynamoDB failure.
pub async fn start(ctx: &Ctx, req: &ConnectRequest) -> anyhow::Result<String> {
    let client = oauth::load_client(ctx).await?;
    let auth = oauth::authorization_url(&client, CALENDAR_SCOPE)?;
    ctx.store()
        .put_oauth_state(&OAuthState {
            state: auth.state.clone(),
            verifier: auth.verifier.expose_secret().to_string(),
            group_id: req.group_id.clone(),
            user_id: req.user_id,
            calendar_id: req.calendar_id.clone(),
            display_name: req.display_name.clone(),
            expires_at: now_secs() + STATE_TTL_SECS,
        })
        .await?;
    Ok(auth.url)
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// Unknown, used or expired `state`.
    #[error("unknown or expired OAuth state; start the connection again")]
    BadState,
    /// The user refused consent (`error=access_denied`) or Google reported another error.
    #[error("consent not given: {0}")]
    Denied(String),
    /// Exchange, secret or link creation failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Complete a consent from the callback's `code` and `state`; returns the new link.
///
/// Errors: see [`CallbackError`].
pub async fn finish(ctx: &Ctx, code: &str, state: &str) -> Result<Link, CallbackError> {
    let store = ctx.store();
    let pending = store
        .take_oauth_state(state)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or(CallbackError::BadState)?;
    let client = oauth::load_client(ctx).await.map_err(anyhow::Error::from)?;
    let verifier = SecretString::from(pending.verifier.clone());
    let tokens = oauth::exchange_code(&ctx.clients.http, &client, code, &verifier)
        .await
        .map_err(anyhow::Error::from)?;
    let link_id = format!("google-{}", uuid::Uuid::now_v7().simple());
    let secret_name = format!("{}/google-tokens/{link_id}", stack_prefix(ctx));
    let arn = oauth::store_tokens(ctx, &secret_name, &tokens)
        .await
        .map_err(anyhow::Error::from)?;
    let api_root = client.api_root.as_deref().unwrap_or(GOOGLE_API_ROOT);
    let url = format!(
        "{}/calendars/{}",
        api_root.trim_end_matches('/'),
        crate::provider::google::percent_encode(&pending.calendar_id)
    );
    let mut link = Link::new(
        &link_id,
        &pending.group_id,
        pending.user_id,
        ProviderKind::Google,
        &url,
    );
    link.secret_arn = Some(arn);
    link.display_name = pending.display_name.clone();
    store.put_link(&link).await.map_err(anyhow::Error::from)?;
    if let Some(addr) = &ctx.config.webhook_url {
        if let Err(e) = crate::push::start_channel(ctx, &link, addr).await {
            // Polling still syncs the link; the token refresher retries the channel.
            tracing::warn!(link = %link.link_id, error = %e, "push channel not started");
        }
    }
    ctx.queues()
        .send(
            QueueKind::SyncJobs,
            &[SyncJob::unique(&link.link_id, "connected")],
        )
        .await?;
    tracing::info!(link = %link.link_id, group = %link.group_id, "Google calendar connected");
    Ok(link)
}

fn stack_prefix(ctx: &Ctx) -> String {
    ctx.config
        .google_client_secret
        .split('/')
        .next()
        .unwrap_or("calsync")
        .to_string()
}
