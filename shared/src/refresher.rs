//! The token refresher (scheduled): keeps the access token of every link connected through
//! OAuth fresh and its push channel alive, so sync runs and notifications never wait on
//! either.

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::config::Ctx;
use crate::model::LinkStatus;
use crate::oauth;
use crate::push::{self, ChannelReport};

/// Refresh tokens expiring within this many seconds (the schedule runs every 10 minutes).
pub const MARGIN_SECS: i64 = 1200;

/// What one refresher run did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RefreshReport {
    /// OAuth links looked at.
    pub links: u32,
    /// Links whose token was fresh or is now refreshed.
    pub tokens_ok: u32,
    /// Links not read at all: their recorded token expiry is beyond the margin
    /// ([`token_check_due`]).
    pub tokens_recorded_fresh: u32,
    /// Links set to `reconnect_needed` (revoked grant).
    pub reconnect_needed: u32,
    /// Links whose refresh failed for another reason (retried next run).
    pub failed: u32,
    /// Push channels started.
    pub channels_started: u32,
    /// Push channels renewed.
    pub channels_renewed: u32,
    /// Push channels stopped (orphaned, expired or replaced).
    pub channels_stopped: u32,
    /// Links written before the due index that got their shard ([`crate::model::Link::due_shard`]).
    pub due_shards_set: u32,
}

/// Whether the refresher reads `link`'s secret at `now` (epoch seconds): when the token
/// expiry recorded on the link ([`crate::model::Link::token_expires_at`]) falls within
/// [`MARGIN_SECS`], or none is recorded. The recorded expiry is never later than the real
/// one, so a link passed over still has a token fresh beyond the margin; one refreshed by
/// a sync run meanwhile is read once more and its newer expiry recorded.
pub fn token_check_due(link: &crate::model::Link, now: i64) -> bool {
    link.token_expires_at
        .is_none_or(|at| at <= now + MARGIN_SECS)
}

/// Token checks in flight at once: a refresh waits on the provider's token endpoint
/// (≈ 150 ms), and one run has [`MARGIN_SECS`] of links to get through within its timeout.
pub const TOKENS_IN_FLIGHT: usize = 16;

/// What [`check_token`] found for one link.
enum Check {
    /// Its recorded expiry is beyond the margin: the secret was not read.
    RecordedFresh,
    /// The token is fresh or now refreshed; `Some`: a new expiry, now recorded.
    Fresh(Option<i64>),
    /// An OAuth link without a secret.
    NoSecret,
    /// The grant is refused (the reason).
    Reconnect(String),
    /// Another failure (retried next run).
    Failed(String),
}

/// Check the token of `link` at `now`: `None` for links without OAuth or waiting for
/// reconnection. A fresh token's expiry is recorded on the link when it moved.
fn check_token<'a>(
    ctx: &'a Ctx,
    link: &'a crate::model::Link,
    now: i64,
) -> Option<impl std::future::Future<Output = Check> + 'a> {
    let profile = link.provider.module().oauth()?;
    if link.status == LinkStatus::ReconnectNeeded {
        return None;
    }
    Some(async move {
        let Some(arn) = link.secret_arn.as_deref() else {
            return Check::NoSecret;
        };
        if !token_check_due(link, now) {
            return Check::RecordedFresh;
        }
        match oauth::fresh_tokens(ctx, profile, arn, MARGIN_SECS).await {
            Ok(t) if link.token_expires_at == Some(t.expires_at) => Check::Fresh(None),
            Ok(t) => match ctx
                .store()
                .set_token_expiry(&link.link_id, t.expires_at)
                .await
            {
                Ok(()) => Check::Fresh(Some(t.expires_at)),
                // Deleted meanwhile: read again next run, if it is back.
                Err(error) => {
                    tracing::warn!(link = %link.link_id, %error, "token expiry not recorded");
                    Check::Fresh(None)
                }
            },
            Err(e) if e.needs_reconnect() => Check::Reconnect(e.to_string()),
            Err(e) => Check::Failed(e.to_string()),
        }
    })
}

/// One run: refresh tokens of OAuth links that expire soon (one refresher per account, see
/// [`oauth::access_token`]), mark revoked ones `reconnect_needed`, then maintain channels.
///
/// Errors: DynamoDB failures reading links or channels.
pub async fn run(ctx: &Ctx) -> anyhow::Result<RefreshReport> {
    let store = ctx.store();
    let mut links = store.all_links().await?;
    let mut report = RefreshReport::default();
    for link in links.iter().filter(|l| l.due_shard.is_none()) {
        let shard = crate::model::Link::due_shard_of(&link.link_id);
        store
            .update_link_fields(&link.link_id, vec![("due_shard", store.attr(shard)?)])
            .await?;
        report.due_shards_set += 1;
    }
    // The tokens are checked several at a time (a refresh waits on the provider's token
    // endpoint); what a check found is applied to the links in order afterwards.
    let now = crate::config::now_secs();
    let pending: Vec<_> = links
        .iter()
        .enumerate()
        .filter_map(|(i, l)| check_token(ctx, l, now).map(|f| async move { (i, f.await) }))
        .collect();
    let checks: Vec<(usize, Check)> = stream::iter(pending)
        .buffer_unordered(TOKENS_IN_FLIGHT)
        .collect()
        .await;
    for (i, check) in checks {
        let link = &mut links[i];
        report.links += 1;
        match check {
            Check::RecordedFresh => report.tokens_recorded_fresh += 1,
            Check::Fresh(at) => {
                report.tokens_ok += 1;
                link.token_expires_at = at.or(link.token_expires_at);
            }
            Check::NoSecret => {}
            Check::Reconnect(reason) => {
                report.reconnect_needed += 1;
                tracing::warn!(link = %link.link_id, reason = %reason, "reconnect needed");
                store
                    .set_link_status(&link.link_id, LinkStatus::ReconnectNeeded, Some(&reason))
                    .await?;
                let notes = crate::notify::decide(
                    link,
                    LinkStatus::ReconnectNeeded,
                    Some(&reason),
                    link.consecutive_failures,
                    &crate::model::RunRecord::default(),
                );
                crate::notify::send(ctx, &notes).await;
                link.status = LinkStatus::ReconnectNeeded;
            }
            Check::Failed(error) => {
                report.failed += 1;
                tracing::warn!(link = %link.link_id, %error, "token refresh failed; retried next run");
            }
        }
    }
    let ChannelReport {
        started,
        renewed,
        stopped,
        failed,
    } = push::maintain_channels(ctx, &links).await?;
    report.channels_started = started;
    report.channels_renewed = renewed;
    report.channels_stopped = stopped;
    report.failed += failed;
    tracing::info!(?report, "token refresher finished");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Link, ProviderKind};

    #[test]
    fn the_refresher_reads_a_secret_only_when_its_recorded_expiry_is_near_or_unknown() {
        let now = 1_000_000;
        // (recorded expiry, read)
        let table = [
            (None, true),
            (Some(now - 60), true),
            (Some(now), true),
            (Some(now + MARGIN_SECS), true),
            (Some(now + MARGIN_SECS + 1), false),
            (Some(now + 3_600), false),
        ];
        for (at, read) in table {
            let mut l = Link::new("l", "g", 1, ProviderKind::Google, "https://x/");
            l.token_expires_at = at;
            assert_eq!(token_check_due(&l, now), read, "{at:?}");
        }
    }
}
