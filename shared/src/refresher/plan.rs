//! The token refresher's decisions, as pure functions of what it read: whether to read a
//! link's secret ([`token_check_due`]), what to do with the link's push channels
//! ([`channel_plan`]) and when to look at the link again ([`next_upkeep`]).

use crate::model::Link;

/// Refresh tokens expiring within this many seconds (the schedule runs every 10 minutes).
pub const MARGIN_SECS: i64 = 1200;

/// Whether the refresher reads `link`'s secret at `now` (epoch seconds): when the token
/// expiry recorded on the link ([`crate::model::Link::token_expires_at`]) falls within
/// [`MARGIN_SECS`], or none is recorded. The recorded expiry is never later than the real
/// one, so a link passed over still has a token fresh beyond the margin; one refreshed by
/// a sync run meanwhile is read once more and its newer expiry recorded.
pub fn token_check_due(link: &Link, now: i64) -> bool {
    link.token_expires_at
        .is_none_or(|at| at <= now + MARGIN_SECS)
}

/// What one look does with a link's push channels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelPlan {
    /// Channels to stop and forget: every one when the link does not sync; otherwise the
    /// expired ones and all but the latest-expiring live one (duplicates).
    pub stop: Vec<String>,
    /// The live channel kept, if any.
    pub keep: Option<String>,
    /// Renew the kept channel: it expires within the port's renewal window.
    pub renew: bool,
    /// Start a channel: the link syncs and has no live one.
    pub start: bool,
}

/// Plan a link's channels at `now_ms` (epoch ms): `syncs` is
/// [`crate::model::LinkStatus::syncs`], `address` whether a webhook URL is configured for
/// the provider (without one nothing is renewed or started, and only the channels of a link
/// that does not sync, expired ones and duplicates are stopped), `channels` the link's
/// channels as (id, expiry in epoch ms), `renew_before_ms`
/// [`crate::push::PushPort::renew_before_ms`].
pub fn channel_plan(
    syncs: bool,
    address: bool,
    channels: &[(&str, i64)],
    now_ms: i64,
    renew_before_ms: i64,
) -> ChannelPlan {
    let mut by_expiry: Vec<&(&str, i64)> = channels.iter().collect();
    by_expiry.sort_by_key(|(id, exp)| (std::cmp::Reverse(*exp), *id));
    let keep = by_expiry
        .first()
        .filter(|(_, exp)| syncs && *exp > now_ms)
        .map(|(id, exp)| (id.to_string(), *exp));
    let stop = by_expiry
        .iter()
        .map(|(id, _)| id.to_string())
        .filter(|id| keep.as_ref().is_none_or(|(k, _)| k != id))
        .collect();
    ChannelPlan {
        stop,
        renew: address
            && keep
                .as_ref()
                .is_some_and(|(_, exp)| exp - now_ms < renew_before_ms),
        start: address && syncs && keep.is_none(),
        keep: keep.map(|(id, _)| id),
    }
}

/// When a token or a channel next needs the refresher, as one look left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing to look after (no OAuth or no push, waiting for reconnection, no webhook URL).
    Nothing,
    /// At the next run: what this look tried failed.
    Retry,
    /// At this time (epoch seconds, UTC): a token's expiry less [`MARGIN_SECS`], a
    /// channel's expiry less its renewal window ([`Need::renewal`]).
    At(i64),
}

impl Need {
    /// The renewal time of a channel expiring at `expiration_ms` (epoch ms) whose port
    /// renews `renew_before_ms` ahead.
    pub fn renewal(expiration_ms: i64, renew_before_ms: i64) -> Need {
        Need::At((expiration_ms - renew_before_ms).div_euclid(1000))
    }

    /// The refresh time of a token expiring at `expires_at` (epoch seconds).
    pub fn refresh(expires_at: i64) -> Need {
        Need::At(expires_at - MARGIN_SECS)
    }
}

/// The link's next [`crate::model::Link::upkeep_at`] after a look at `now` (epoch seconds):
/// the earlier of the two needs; `None` when neither has one (the link leaves the
/// refresher's index until a consent or a reconnection puts it back).
pub fn next_upkeep(token: Need, channel: Need, now: i64) -> Option<i64> {
    [token, channel]
        .into_iter()
        .filter_map(|n| match n {
            Need::Nothing => None,
            Need::Retry => Some(now),
            Need::At(at) => Some(at),
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProviderKind;

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

    #[test]
    fn a_link_keeps_one_live_channel_renewed_in_time() {
        let now = 10_000_000;
        let day = 86_400_000;
        let rb = day;
        // (syncs, address, channels, stop, keep, renew, start)
        #[allow(clippy::type_complexity)]
        let table: [(
            bool,
            bool,
            &[(&str, i64)],
            &[&str],
            Option<&str>,
            bool,
            bool,
        ); 12] = [
            // No channel: start one, if there is an address and the link syncs.
            (true, true, &[], &[], None, false, true),
            (true, false, &[], &[], None, false, false),
            (false, true, &[], &[], None, false, false),
            // One live channel beyond the window: kept as it is.
            (
                true,
                true,
                &[("a", now + 2 * day)],
                &[],
                Some("a"),
                false,
                false,
            ),
            // Within the window: renewed; without an address it is only kept.
            (
                true,
                true,
                &[("a", now + day - 1)],
                &[],
                Some("a"),
                true,
                false,
            ),
            (
                true,
                false,
                &[("a", now + day - 1)],
                &[],
                Some("a"),
                false,
                false,
            ),
            // Expired: stopped, and a new one started.
            (true, true, &[("a", now)], &["a"], None, false, true),
            (true, false, &[("a", now - 1)], &["a"], None, false, false),
            // Duplicates: the latest-expiring live one stays.
            (
                true,
                true,
                &[("a", now + day * 2), ("b", now + day * 3)],
                &["a"],
                Some("b"),
                false,
                false,
            ),
            (
                true,
                true,
                &[("a", now - 5), ("b", now + day / 2), ("c", now + day / 4)],
                &["a", "c"],
                Some("b"),
                true,
                false,
            ),
            // A link that does not sync (waiting for reconnection, removing): every channel stops.
            (
                false,
                true,
                &[("a", now + day * 2), ("b", now - 1)],
                &["a", "b"],
                None,
                false,
                false,
            ),
            (
                false,
                false,
                &[("a", now + day * 2)],
                &["a"],
                None,
                false,
                false,
            ),
        ];
        for (syncs, address, channels, stop, keep, renew, start) in table {
            let mut plan = channel_plan(syncs, address, channels, now, rb);
            plan.stop.sort();
            let want = ChannelPlan {
                stop: stop.iter().map(|s| s.to_string()).collect(),
                keep: keep.map(str::to_string),
                renew,
                start,
            };
            assert_eq!(plan, want, "syncs {syncs}, address {address}, {channels:?}");
        }
    }

    #[test]
    fn the_next_look_is_the_earlier_need() {
        let now = 5_000;
        // (token, channel, next)
        let table = [
            (Need::Nothing, Need::Nothing, None),
            (Need::At(9_000), Need::Nothing, Some(9_000)),
            (Need::Nothing, Need::At(7_000), Some(7_000)),
            (Need::At(9_000), Need::At(7_000), Some(7_000)),
            (Need::Retry, Need::At(7_000), Some(now)),
            (Need::At(9_000), Need::Retry, Some(now)),
            (Need::Nothing, Need::Retry, Some(now)),
        ];
        for (token, channel, next) in table {
            assert_eq!(
                next_upkeep(token, channel, now),
                next,
                "{token:?} {channel:?}"
            );
        }
        assert_eq!(Need::refresh(10_000), Need::At(10_000 - MARGIN_SECS));
        assert_eq!(Need::renewal(10_000_500, 1_000_000), Need::At(9_000));
        assert_eq!(Need::renewal(-1_500, 0), Need::At(-2));
    }
}
