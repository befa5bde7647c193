//! A fresh access token for an account, refreshed by one worker at a time: the lease
//! `token:<secret ARN>` in the leases table ([`super::REFRESH_LEASE_SECS`]); the others wait
//! for the new value in the secret.

use secrecy::{ExposeSecret, SecretString};

use super::{
    load_client, read_tokens, refresh, store_refreshed, AuthError, OAuthProfile, TokenSet,
    REFRESH_LEASE_SECS,
};
use crate::config::{now_secs, Ctx};

/// A valid access token for the account whose tokens are in `arn`, refreshing it first if it
/// expires within `margin_secs`; one refresher per account at a time (see module docs).
///
/// Errors: [`AuthError::InvalidGrant`] / [`AuthError::NoRefreshToken`] (reconnect needed),
/// secret or endpoint failures, [`AuthError::Busy`] when another refresher did not finish.
pub async fn access_token(
    ctx: &Ctx,
    p: &OAuthProfile,
    arn: &str,
    margin_secs: i64,
) -> Result<SecretString, AuthError> {
    token_for(ctx, p, arn, margin_secs, None).await
}

/// [`access_token`] with the whole token set: the access token and when it expires, for
/// the token refresher to record on the link ([`crate::model::Link::token_expires_at`]).
///
/// Errors: as [`access_token`].
pub async fn fresh_tokens(
    ctx: &Ctx,
    p: &OAuthProfile,
    arn: &str,
    margin_secs: i64,
) -> Result<TokenSet, AuthError> {
    tokens_for(ctx, p, arn, margin_secs, None).await
}

/// [`access_token`], and when `rejected` is given (the provider answered 401 to it), a token
/// other than that one: refreshed now unless another worker already replaced it.
pub(crate) async fn token_for(
    ctx: &Ctx,
    p: &OAuthProfile,
    arn: &str,
    margin_secs: i64,
    rejected: Option<&SecretString>,
) -> Result<SecretString, AuthError> {
    tokens_for(ctx, p, arn, margin_secs, rejected)
        .await
        .map(|t| t.access_token)
}

/// [`token_for`] with the whole token set.
async fn tokens_for(
    ctx: &Ctx,
    p: &OAuthProfile,
    arn: &str,
    margin_secs: i64,
    rejected: Option<&SecretString>,
) -> Result<TokenSet, AuthError> {
    let usable = |t: &TokenSet| {
        fresh(t, margin_secs)
            && rejected.is_none_or(|r| r.expose_secret() != t.access_token.expose_secret())
    };
    let t = read_tokens(ctx, arn).await?;
    if usable(&t) {
        return Ok(t);
    }
    let store = ctx.store();
    let lease = format!("token:{arn}");
    let owner = uuid::Uuid::now_v7().to_string();
    for _ in 0..40 {
        let got = store
            .acquire_lease(&lease, &owner, REFRESH_LEASE_SECS)
            .await
            .map_err(|e| AuthError::Endpoint(format!("refresh lease: {e}")))?;
        if got.is_some() {
            let result = refresh_locked(ctx, p, arn, &usable).await;
            let _ = store.release_lease(&lease, &owner).await;
            return result;
        }
        // Another worker is refreshing: its new token will appear in the secret.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let t = read_tokens(ctx, arn).await?;
        if usable(&t) {
            return Ok(t);
        }
    }
    Err(AuthError::Busy(arn.into()))
}

fn fresh(t: &TokenSet, margin_secs: i64) -> bool {
    t.expires_at > now_secs() + margin_secs
}

async fn refresh_locked(
    ctx: &Ctx,
    p: &OAuthProfile,
    arn: &str,
    usable: &(dyn Fn(&TokenSet) -> bool + Sync),
) -> Result<TokenSet, AuthError> {
    // Re-read under the lease: the previous holder may have refreshed already.
    let t = read_tokens(ctx, arn).await?;
    if usable(&t) {
        return Ok(t);
    }
    let rt = t
        .refresh_token
        .ok_or_else(|| AuthError::NoRefreshToken(arn.into()))?;
    let client = load_client(ctx, p).await?;
    let new = refresh(&ctx.clients.http, &client, &rt).await?;
    store_refreshed(ctx, arn, &new).await?;
    tracing::info!(
        secret = arn,
        expires_at = new.expires_at,
        "access token refreshed"
    );
    Ok(new)
}
