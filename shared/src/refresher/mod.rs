//! The token refresher (scheduled, every 10 minutes): keeps the access token of every link
//! connected through OAuth fresh and its push channel alive, so sync runs and notifications
//! never wait on either.
//!
//! A run reads only the links that are due: the links table's key-only GSI `upkeep-index`
//! names them by [`crate::model::Link::upkeep_at`], one Query per shard; they are read by
//! key 100 at a time, the longest overdue first, and looked after [`LINKS_IN_FLIGHT`] at a
//! time (the token, then the channels: [`channels::look_after`]), and each link's next look
//! is written back ([`plan::next_upkeep`]) with the token's new expiry. A run stops reading
//! links [`DEADLINE_MARGIN_SECS`] before its invocation's deadline. Links written before the index are put into it once by
//! [`backfill`].

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::config::Ctx;
use crate::model::{Link, LinkStatus};
use crate::oauth;

pub mod backfill;
pub mod channels;
pub mod plan;

pub use plan::{token_check_due, MARGIN_SECS};

/// What one refresher run did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RefreshReport {
    /// Links the `upkeep-index` named as due (and looked after).
    pub links: u32,
    /// Links whose token was fresh or is now refreshed.
    pub tokens_ok: u32,
    /// Links due for their channel whose secret was not read: their recorded token expiry
    /// is beyond the margin ([`token_check_due`]).
    pub tokens_recorded_fresh: u32,
    /// Links whose grant was refused: set to `reconnect_needed` (or, while their copies are
    /// removed, kept `removing` with the reason).
    pub reconnect_needed: u32,
    /// Links whose refresh or channel upkeep failed (retried next run).
    pub failed: u32,
    /// Push channels started.
    pub channels_started: u32,
    /// Push channels renewed.
    pub channels_renewed: u32,
    /// Push channels stopped (expired, duplicates, of a link that does not sync, or, in the
    /// backfill, of a link that is gone).
    pub channels_stopped: u32,
    /// Links written before the due index that got their shard ([`Link::due_shard`]; the
    /// backfill).
    pub due_shards_set: u32,
    /// Links written before the `upkeep-index` put into it (the backfill).
    pub upkeep_set: u32,
    /// Due links not looked after: the run reached its deadline ([`run_until`]).
    pub left_due: u32,
}

/// Links looked after at once: a refresh waits on the provider's token endpoint
/// (≈ 150 ms), a channel start or renewal on the provider (`docs/performance.md`, "The
/// token refresher at a million links").
pub const LINKS_IN_FLIGHT: usize = 32;

/// Time kept free before the invocation's deadline (seconds): a run reads no more links
/// after it; the links left are still due and the next run looks after them.
pub const DEADLINE_MARGIN_SECS: u64 = 30;

/// Links read by key in one BatchGetItem, and looked after before the next are read.
const LINKS_PER_READ: usize = 100;

/// What the token check found for one link.
#[derive(Debug)]
enum Check {
    /// Nothing to refresh: no OAuth, waiting for reconnection, or no secret.
    Skipped,
    /// The recorded expiry (epoch seconds) is beyond the margin: the secret was not read.
    RecordedFresh(i64),
    /// The token is fresh or now refreshed, and expires then (epoch seconds); `true`: not
    /// what the link records (recorded with the link's next look).
    Fresh(i64, bool),
    /// The grant is refused (the reason).
    Reconnect(String),
    /// Another failure (retried next run).
    Failed(String),
}

impl Check {
    /// When the token next needs the refresher.
    fn need(&self) -> plan::Need {
        match self {
            Check::Skipped | Check::Reconnect(_) => plan::Need::Nothing,
            Check::RecordedFresh(at) | Check::Fresh(at, _) => plan::Need::refresh(*at),
            Check::Failed(_) => plan::Need::Retry,
        }
    }
}

/// Check the token of `link` at `now` (epoch seconds), refreshing it when it expires within
/// [`MARGIN_SECS`].
async fn check_token(ctx: &Ctx, link: &Link, now: i64) -> Check {
    let Some(profile) = link.provider.module().oauth() else {
        return Check::Skipped;
    };
    let Some(arn) = link.secret_arn.as_deref() else {
        return Check::Skipped;
    };
    if link.status == LinkStatus::ReconnectNeeded {
        return Check::Skipped;
    }
    if let Some(at) = link
        .token_expires_at
        .filter(|_| !token_check_due(link, now))
    {
        return Check::RecordedFresh(at);
    }
    match oauth::fresh_tokens(ctx, profile, arn, MARGIN_SECS).await {
        Ok(t) => Check::Fresh(t.expires_at, link.token_expires_at != Some(t.expires_at)),
        Err(e) if e.needs_reconnect() => Check::Reconnect(e.to_string()),
        Err(e) => Check::Failed(e.to_string()),
    }
}

/// Park `link` for its user to reconnect (its grant was refused) and tell the application.
/// A link whose copies are being removed stays `removing`, with the reason: a reconnection
/// goes on removing ([`crate::disconnect::resume_removing`]), as when the removal itself
/// meets the refusal.
///
/// Errors: DynamoDB failure.
async fn park(ctx: &Ctx, link: &mut Link, reason: &str) -> anyhow::Result<()> {
    if link.status == LinkStatus::Removing {
        tracing::warn!(link = %link.link_id, reason = %reason, "credentials refused while removing copies");
        ctx.store()
            .set_link_status(&link.link_id, LinkStatus::Removing, Some(reason))
            .await?;
        return Ok(());
    }
    tracing::warn!(link = %link.link_id, reason = %reason, "reconnect needed");
    ctx.store()
        .set_link_status(&link.link_id, LinkStatus::ReconnectNeeded, Some(reason))
        .await?;
    let notes = crate::notify::decide(
        link,
        LinkStatus::ReconnectNeeded,
        Some(reason),
        link.consecutive_failures,
        &crate::model::RunRecord::default(),
    );
    crate::notify::send(ctx, &notes).await;
    link.status = LinkStatus::ReconnectNeeded;
    Ok(())
}

/// Look after one due link at `now` (epoch seconds): its token, then its channels, then
/// its next look. What it did goes into a report of its own.
async fn look_after(ctx: &Ctx, mut link: Link, now: i64) -> RefreshReport {
    let mut report = RefreshReport {
        links: 1,
        ..RefreshReport::default()
    };
    let mut check = check_token(ctx, &link, now).await;
    match &check {
        Check::Skipped => {}
        Check::RecordedFresh(_) => report.tokens_recorded_fresh += 1,
        Check::Fresh(..) => report.tokens_ok += 1,
        Check::Reconnect(reason) => {
            let reason = reason.clone();
            match park(ctx, &mut link, &reason).await {
                Ok(()) => report.reconnect_needed += 1,
                Err(e) => check = Check::Failed(format!("{reason}; not parked: {e}")),
            }
        }
        Check::Failed(_) => {}
    }
    if let Check::Failed(error) = &check {
        report.failed += 1;
        tracing::warn!(link = %link.link_id, %error, "token refresh failed; retried next run");
    }
    let (ch, channel_need) =
        channels::look_after(ctx, &link, link.status.syncs(), now * 1000).await;
    report.channels_started = ch.started;
    report.channels_renewed = ch.renewed;
    report.channels_stopped = ch.stopped;
    report.failed += ch.failed;
    let next = plan::next_upkeep(check.need(), channel_need, now);
    let token = match check {
        Check::Fresh(at, true) => Some(at),
        _ => None,
    };
    let store = ctx.store();
    let recorded = match store
        .set_upkeep(&link.link_id, link.upkeep_at, next, token)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::debug!(link = %link.link_id, "upkeep_at moved meanwhile; kept");
            match token {
                // Deleted meanwhile, or recorded at the next look.
                Some(at) => store.set_token_expiry(&link.link_id, at).await,
                None => Ok(()),
            }
        }
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        tracing::warn!(link = %link.link_id, error = %e, "next look not recorded; looked at again next run");
        report.failed += 1;
    }
    report
}

impl RefreshReport {
    /// Add `other`'s counts.
    fn add(&mut self, other: &RefreshReport) {
        self.links += other.links;
        self.tokens_ok += other.tokens_ok;
        self.tokens_recorded_fresh += other.tokens_recorded_fresh;
        self.reconnect_needed += other.reconnect_needed;
        self.failed += other.failed;
        self.channels_started += other.channels_started;
        self.channels_renewed += other.channels_renewed;
        self.channels_stopped += other.channels_stopped;
        self.due_shards_set += other.due_shards_set;
        self.upkeep_set += other.upkeep_set;
        self.left_due += other.left_due;
    }
}

/// One run at the current time: the backfill while it has not completed, then every link
/// whose [`Link::upkeep_at`] has come: refresh its token when it expires within
/// [`MARGIN_SECS`] (one refresher per account, see [`oauth::access_token`]), mark a refused
/// grant `reconnect_needed`, look after its channels, and record its next look.
///
/// Errors: DynamoDB failures reading the index or the links (a failure with one link is
/// counted in [`RefreshReport::failed`] and the run goes on).
pub async fn run(ctx: &Ctx) -> anyhow::Result<RefreshReport> {
    run_until(ctx, None).await
}

/// [`run`] inside an invocation that ends at `deadline` (the Lambda context's): past
/// [`DEADLINE_MARGIN_SECS`] before it, no more links are read (the first 100 always are);
/// those left are still due, for the next run ([`RefreshReport::left_due`]).
///
/// Errors: as [`run`].
pub async fn run_until(
    ctx: &Ctx,
    deadline: Option<std::time::Instant>,
) -> anyhow::Result<RefreshReport> {
    run_at(ctx, crate::config::now_secs(), deadline).await
}

/// [`run_until`] as if it were `now` (epoch seconds, UTC): the links whose `upkeep_at` is at
/// or before `now` are due, and tokens are checked against it (`make bench-fanout` runs the
/// refresher over a simulated table this way).
///
/// Errors: as [`run`].
pub async fn run_at(
    ctx: &Ctx,
    now: i64,
    deadline: Option<std::time::Instant>,
) -> anyhow::Result<RefreshReport> {
    let margin = std::time::Duration::from_secs(DEADLINE_MARGIN_SECS);
    let stop_at = deadline.map(|d| d.checked_sub(margin).unwrap_or(d));
    let store = ctx.store();
    let mut report = backfill::run(ctx, now).await?;
    let mut due = Vec::new();
    for shard in 0..Link::DUE_SHARDS {
        due.extend(store.upkeep_due(shard, now).await?);
    }
    // The longest overdue first, across the shards: a run that reaches its deadline leaves
    // the links that came due last, and the next run begins with those it left.
    due.sort_unstable();
    let due: Vec<String> = due.into_iter().map(|(_, id)| id).collect();
    for (i, ids) in due.chunks(LINKS_PER_READ).enumerate() {
        if i > 0 && stop_at.is_some_and(|t| std::time::Instant::now() >= t) {
            report.left_due = (due.len() - i * LINKS_PER_READ) as u32;
            tracing::warn!(
                left = report.left_due,
                "refresher: deadline; the rest waits for the next run"
            );
            break;
        }
        // The index is eventually consistent: a link whose look moved meanwhile waits.
        let links = store.links_by_ids(ids).await?;
        let looks: Vec<RefreshReport> = stream::iter(
            links
                .into_iter()
                .filter(|l| l.upkeep_at.is_some_and(|at| at <= now))
                .map(|l| look_after(ctx, l, now)),
        )
        .buffer_unordered(LINKS_IN_FLIGHT)
        .collect()
        .await;
        for look in &looks {
            report.add(look);
        }
    }
    tracing::info!(?report, "token refresher finished");
    Ok(report)
}
