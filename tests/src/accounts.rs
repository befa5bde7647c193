//! OAuth links in tests, whichever provider: a stored access token made to expire, and a
//! reconnection with another account checked to change nothing.

use std::future::Future;

use calsync::config::Ctx;
use calsync::model::{Link, LinkStatus};
use calsync::oauth::TokenSet;
use secrecy::ExposeSecret;

/// Mark the access token in the token secret `arn` expired (`expires_at` 0), so that the
/// next use refreshes it; returns the tokens as now stored (the values unchanged).
///
/// Errors: Secrets Manager.
pub async fn expire_stored_access_token(ctx: &Ctx, arn: &str) -> anyhow::Result<TokenSet> {
    let mut t = calsync::oauth::read_tokens(ctx, arn).await?;
    t.expires_at = 0;
    calsync::oauth::write_tokens(ctx, arn, &t).await?;
    Ok(t)
}

/// `link`'s grant still works: with its stored access token expired, its next sync must
/// refresh it with the link's own refresh token (which a revoked grant would refuse), sync
/// without a failure and leave the link `ok`.
///
/// Panics: when any of that does not hold (a test assertion).
pub async fn assert_still_refreshes(ctx: &Ctx, link: &Link) {
    let arn = link.secret_arn.as_deref().expect("a token secret");
    expire_stored_access_token(ctx, arn).await.expect("expire");
    let stats = crate::fixtures::sync_link(ctx, &link.link_id)
        .await
        .expect("sync");
    assert_eq!(stats.failures, 0, "{stats:?}");
    let now = ctx
        .store()
        .get_link(&link.link_id)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(now.status, LinkStatus::Ok, "{now:?}");
}

/// The access and refresh token values in the token secret `arn`.
///
/// Errors: Secrets Manager.
pub async fn stored_token_values(ctx: &Ctx, arn: &str) -> anyhow::Result<(String, String)> {
    let t = calsync::oauth::read_tokens(ctx, arn).await?;
    Ok((
        t.access_token.expose_secret().to_string(),
        t.refresh_token
            .map(|r| r.expose_secret().to_string())
            .unwrap_or_default(),
    ))
}

/// Reconnect `parked` (an OAuth link parked as `reconnect_needed`) through `open`, a
/// consent window whose sign-in picks another account than the link's (the emulator's
/// `sign_in_next_as`): the callback must refuse with 409 and say to reconnect with the
/// account that connected the calendar, and nothing may change: the link stays parked,
/// with its URL and the tokens in its secret.
///
/// Panics: when any of that does not hold (a test assertion).
pub async fn assert_reconnection_refused<F, Fut>(ctx: &Ctx, parked: &Link, open: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<Link>>,
{
    let arn = parked.secret_arn.as_deref().expect("a token secret");
    let before = stored_token_values(ctx, arn).await.expect("tokens");
    let url = calsync::connect::start_reconnect(ctx, parked)
        .await
        .expect("reconnect consent");
    let refused = open(url)
        .await
        .expect_err("another account cannot renew the link")
        .to_string();
    assert!(
        refused.contains("409") && refused.contains("reconnect with the account"),
        "{refused}"
    );
    let still = ctx
        .store()
        .get_link(&parked.link_id)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(still.status, LinkStatus::ReconnectNeeded, "{still:?}");
    assert_eq!(still.url, parked.url);
    assert_eq!(
        stored_token_values(ctx, arn).await.expect("tokens"),
        before,
        "the other account's tokens were not stored"
    );
}

/// The calls ever reserved from the shared quota `key` (`<provider slug>:<account key>`,
/// as [`calsync::store::SharedQuota`] keeps it in the leases table); `None` when no call was
/// ever reserved under it.
///
/// Errors: DynamoDB.
pub async fn quota_reserved(ctx: &Ctx, key: &str) -> anyhow::Result<Option<i64>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = ctx
        .clients
        .ddb
        .get_item()
        .table_name(&ctx.config.leases_table)
        .key("link_id", AttributeValue::S(format!("quota:{key}")))
        .consistent_read(true)
        .send()
        .await?
        .item;
    Ok(item.map(|i| {
        i.get("reserved")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }))
}
