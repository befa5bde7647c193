//! Where a provider gets its bearer token during a run: [`TokenSource`], with the link's
//! stored tokens ([`LinkTokens`]) or a fixed one ([`StaticToken`]).

use secrecy::{ExposeSecret, SecretString};

use super::{access_token, token_for, AuthError, OAuthProfile, REFRESH_MARGIN_SECS};
use crate::config::Ctx;

/// Where a provider gets its bearer token during a run.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A token believed valid.
    ///
    /// Errors: see [`AuthError`].
    async fn bearer(&self) -> Result<SecretString, AuthError>;

    /// The provider answered 401 to `rejected`: a fresh token (refreshed at the token
    /// endpoint unless another worker already replaced it). Providers ask once per request
    /// before they report [`crate::provider::ProviderError::Unauthorized`].
    ///
    /// Errors: [`AuthError::InvalidGrant`] / [`AuthError::NoRefreshToken`] when only the
    /// user can fix it; others are worth a retry.
    async fn refresh_after_401(&self, rejected: &SecretString) -> Result<SecretString, AuthError>;
}

/// The tokens of one link in Secrets Manager ([`access_token`]), the bearer cached for the run.
pub struct LinkTokens {
    ctx: Ctx,
    profile: &'static OAuthProfile,
    arn: String,
    current: tokio::sync::Mutex<Option<SecretString>>,
}

impl LinkTokens {
    /// Tokens in the secret `arn`, refreshed through `profile`'s client.
    pub fn new(ctx: &Ctx, profile: &'static OAuthProfile, arn: &str) -> Self {
        Self {
            ctx: ctx.clone(),
            profile,
            arn: arn.into(),
            current: tokio::sync::Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for LinkTokens {
    async fn bearer(&self) -> Result<SecretString, AuthError> {
        let mut cur = self.current.lock().await;
        if let Some(t) = cur.as_ref() {
            return Ok(t.clone());
        }
        let t = access_token(&self.ctx, self.profile, &self.arn, REFRESH_MARGIN_SECS).await?;
        *cur = Some(t.clone());
        Ok(t)
    }

    async fn refresh_after_401(&self, rejected: &SecretString) -> Result<SecretString, AuthError> {
        let mut cur = self.current.lock().await;
        if let Some(t) = cur
            .as_ref()
            .filter(|t| t.expose_secret() != rejected.expose_secret())
        {
            return Ok(t.clone());
        }
        let t = token_for(
            &self.ctx,
            self.profile,
            &self.arn,
            REFRESH_MARGIN_SECS,
            Some(rejected),
        )
        .await?;
        tracing::info!(secret = %self.arn, "bearer refused (401); token refreshed");
        *cur = Some(t.clone());
        Ok(t)
    }
}

/// A fixed bearer token (tools and tests); a 401 cannot be repaired.
pub struct StaticToken(pub SecretString);

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn bearer(&self) -> Result<SecretString, AuthError> {
        Ok(self.0.clone())
    }

    async fn refresh_after_401(&self, _rejected: &SecretString) -> Result<SecretString, AuthError> {
        Err(AuthError::NoRefreshToken("(fixed token)".into()))
    }
}
