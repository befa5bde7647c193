//! The token refresher (scheduled): keeps the access token of every link connected through
//! OAuth fresh and its push channel alive, so sync runs and notifications never wait on
//! either.

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
    for link in links
        .iter_mut()
        .filter(|l| l.status != LinkStatus::ReconnectNeeded)
    {
        let Some(profile) = link.provider.module().oauth() else {
            continue;
        };
        report.links += 1;
        let Some(arn) = link.secret_arn.clone() else {
            continue;
        };
        match oauth::access_token(ctx, profile, &arn, MARGIN_SECS).await {
            Ok(_) => report.tokens_ok += 1,
            Err(e) if e.needs_reconnect() => {
                report.reconnect_needed += 1;
                tracing::warn!(link = %link.link_id, reason = %e, "reconnect needed");
                store
                    .set_link_status(
                        &link.link_id,
                        LinkStatus::ReconnectNeeded,
                        Some(&e.to_string()),
                    )
                    .await?;
                let notes = crate::notify::decide(
                    link,
                    LinkStatus::ReconnectNeeded,
                    Some(&e.to_string()),
                    link.consecutive_failures,
                    &crate::model::RunRecord::default(),
                );
                crate::notify::send(ctx, &notes).await;
                link.status = LinkStatus::ReconnectNeeded;
            }
            Err(e) => {
                report.failed += 1;
                tracing::warn!(link = %link.link_id, error = %e, "token refresh failed; retried next run");
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
