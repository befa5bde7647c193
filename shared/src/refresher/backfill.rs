//! The one-time backfill that puts links written before the links table's indexes into
//! them: the schedule's `due-index` (`due_shard`) and the refresher's `upkeep-index`
//! (`upkeep_at`). It is the only part of calsync that reads every link (a Scan) and every
//! channel, and it runs at each refresher run until one pass completes without a failure;
//! a marker in the leases table ([`NAME`]) then says it is done, and no run reads the whole
//! table again. A stack deployed with the indexes runs it once, over whatever is there.

use std::collections::HashSet;

use crate::config::Ctx;
use crate::model::Link;

use super::RefreshReport;

/// The backfill's name in the marker item.
pub const NAME: &str = "upkeep-index";

/// Whether the refresher looks after `link` at all: it holds OAuth tokens or a push channel.
pub fn needs_upkeep(link: &Link) -> bool {
    let module = link.provider.module();
    module.oauth().is_some() || module.push().is_some()
}

/// Run the backfill at `now` (epoch seconds) unless it has completed: every link gets its
/// `due_shard`; every link [`needs_upkeep`] without an `upkeep_at` is due at once (its next
/// look finds its token and channels and records when it is next due); every channel whose
/// link is gone is stopped. Returns what it did.
///
/// Errors: DynamoDB failures reading the tables or the marker.
pub async fn run(ctx: &Ctx, now: i64) -> anyhow::Result<RefreshReport> {
    let store = ctx.store();
    let mut report = RefreshReport::default();
    if store.backfill_done(NAME).await? {
        return Ok(report);
    }
    // Channels first: a channel recorded after this read is of a link the links' read finds.
    let channels = store.all_channels().await?;
    let links = store.all_links().await?;
    let mut failed = 0u32;
    for link in &links {
        let mut fields = Vec::new();
        if link.due_shard.is_none() {
            fields.push(("due_shard", store.attr(Link::due_shard_of(&link.link_id))?));
            report.due_shards_set += 1;
        }
        if link.upkeep_at.is_none() && needs_upkeep(link) {
            fields.push(("upkeep_at", store.attr(now)?));
            report.upkeep_set += 1;
        }
        if let Err(e) = store.update_link_fields(&link.link_id, fields).await {
            tracing::warn!(link = %link.link_id, error = %e, "backfill: link not updated");
            failed += 1;
        }
    }
    let known: HashSet<&str> = links.iter().map(|l| l.link_id.as_str()).collect();
    for c in channels {
        if known.contains(c.link_id.as_str()) {
            continue;
        }
        match crate::push::stop_channel(ctx, &c).await {
            Ok(()) => report.channels_stopped += 1,
            Err(e) => {
                tracing::warn!(channel_id = %c.channel_id, error = %e, "backfill: orphan channel not forgotten");
                failed += 1;
            }
        }
    }
    report.failed = failed;
    if failed == 0 {
        store.set_backfill_done(NAME, true).await?;
    }
    tracing::info!(?report, "backfill of the links' indexes");
    Ok(report)
}
