//! Push channel upkeep for one link the refresher looks after: keep one live channel per
//! link that syncs and whose provider has push ([`crate::push::PushPort`]): start a missing
//! one, renew one that expires within the port's window, stop expired ones, duplicates and
//! the channels of a link that does not sync. The decision is [`super::plan::channel_plan`];
//! this carries it out.

use crate::config::Ctx;
use crate::model::Link;
use crate::push;

use super::plan::{channel_plan, Need};

/// What one link's channel upkeep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChannelReport {
    /// Channels started for links without one.
    pub started: u32,
    /// Channels renewed because they expire soon.
    pub renewed: u32,
    /// Channels stopped: expired, duplicates, or of a link that does not sync.
    pub stopped: u32,
    /// Failures (logged; retried at the next run).
    pub failed: u32,
}

/// Look after `link`'s channels at `now_ms` (epoch ms; `syncs`: whether the link syncs
/// after this look's token check); returns what was done and when its channel next needs a
/// look.
pub async fn look_after(ctx: &Ctx, link: &Link, syncs: bool, now_ms: i64) -> (ChannelReport, Need) {
    let mut report = ChannelReport::default();
    let Some(port) = link.provider.module().push() else {
        return (report, Need::Nothing);
    };
    let address = ctx.config.webhook_url(link.provider.info().slug);
    let channels = match ctx.store().channels_of_link(&link.link_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(link = %link.link_id, error = %e, "channels not read");
            report.failed += 1;
            return (report, Need::Retry);
        }
    };
    let ids: Vec<(&str, i64)> = channels
        .iter()
        .map(|c| (c.channel_id.as_str(), c.expiration_ms))
        .collect();
    let plan = channel_plan(
        syncs,
        address.is_some(),
        &ids,
        now_ms,
        port.renew_before_ms(),
    );
    let mut stop_failed = false;
    for c in channels
        .iter()
        .filter(|c| plan.stop.contains(&c.channel_id))
    {
        match push::stop_channel(ctx, c).await {
            Ok(()) => report.stopped += 1,
            Err(e) => {
                tracing::warn!(link = %link.link_id, error = %e, "channel not forgotten");
                report.failed += 1;
                stop_failed = true;
            }
        }
    }
    let kept = channels
        .iter()
        .find(|c| plan.keep.as_deref() == Some(c.channel_id.as_str()));
    let renewal = |exp| Need::renewal(exp, port.renew_before_ms());
    let channel_need = match (kept, address) {
        (Some(c), Some(addr)) if plan.renew => {
            match push::renew_channel(ctx, port, link, c, &addr).await {
                Ok(new) => {
                    report.renewed += 1;
                    renewal(new.expiration_ms)
                }
                Err(e) => {
                    tracing::warn!(link = %link.link_id, error = %e, "channel renewal failed");
                    report.failed += 1;
                    Need::Retry
                }
            }
        }
        (Some(c), Some(_)) => renewal(c.expiration_ms),
        (None, Some(addr)) if plan.start => match push::start_channel(ctx, link, &addr).await {
            Ok(new) => {
                report.started += 1;
                renewal(new.expiration_ms)
            }
            Err(e) => {
                tracing::warn!(link = %link.link_id, error = %e, "channel start failed");
                report.failed += 1;
                Need::Retry
            }
        },
        // Without an address nothing is renewed or started.
        _ => Need::Nothing,
    };
    // A channel not forgotten is tried again at the next run.
    (
        report,
        if stop_failed {
            Need::Retry
        } else {
            channel_need
        },
    )
}
