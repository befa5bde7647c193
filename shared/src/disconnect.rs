//! Disconnecting a link, at once ([`disconnect`]: the copies calsync wrote stay on the
//! calendar) or with its copies removed first ([`start_removing`], then sync-back's
//! [`remove_copies`]: calsync deletes its copies of events made elsewhere, then disconnects).
//!
//! Removing is a job, not part of the API request: a calendar may hold thousands of copies,
//! and the deletes go at the provider's rate limits (Google's batch, Graph's `$batch` and
//! throttling, one CalDAV `DELETE` each). While it runs the link is
//! [`LinkStatus::Removing`]: it neither pulls nor receives the other members' changes, and
//! its push channels are stopped. Each delete is conditional on the version calsync last
//! saw (`If-Match`), so a copy the user edited on that calendar since stays; the calendar's
//! own events ([`crate::engine::copies::fate`]) are never touched.

use std::collections::HashMap;

use crate::config::{now_millis, now_secs, Ctx};
use crate::engine::copies::{fate, Fate};
use crate::model::{Link, LinkStatus, NoticeKind, RunRecord};
use crate::provider::{self, ProviderError, Write};
use crate::queue::{QueueKind, SyncJob};

/// Trigger of the sync-back job that removes a link's copies ([`remove_copies`]).
pub const REMOVE_COPIES: &str = "remove-copies";

/// Deletes sent together (one Google batch or Graph `$batch` request of this many; one by
/// one on CalDAV); the deadline is checked between them.
pub const REMOVE_PAGE: usize = 50;

/// Disconnect `link` now: stop its push channels, revoke its OAuth grant (unless another
/// link may hold the same grant: one of the same account, of any user, or one of the same
/// user and provider whose account is unknown: [`crate::oauth::grant_may_be_shared`]),
/// delete its secret, its mappings, cursor and the link. The events copied to and from it
/// stay where they are.
///
/// Errors: DynamoDB, Secrets Manager or a provider's channel stop failed (the link is then
/// still there, and a second call finishes the job).
pub async fn disconnect(ctx: &Ctx, link: &Link) -> anyhow::Result<()> {
    let store = ctx.store();
    if link.provider.module().push().is_some() {
        crate::push::stop_channels_of(ctx, &link.link_id).await?;
    }
    if let Some(profile) = link.provider.module().oauth() {
        if let Some(arn) = &link.secret_arn {
            // The account's links of every user (when it is known), and the user's own,
            // whose account may be unknown.
            let mut others = store.links_of_user(link.user_id).await?;
            if let Some(account) = &link.account {
                others.extend(store.links_of_account(account).await?);
            }
            if crate::oauth::grant_may_be_shared(link, &others) {
                // Revoking would end the other link's access too (one grant per account).
                tracing::info!(link = %link.link_id, provider = profile.slug(), "OAuth grant kept: another link may hold it");
            } else if let Err(e) = crate::oauth::revoke(ctx, profile, arn).await {
                // The grant may already be gone; the secret is deleted either way.
                tracing::warn!(link = %link.link_id, error = %e, "OAuth grant not revoked");
            }
        }
    }
    if let Some(arn) = &link.secret_arn {
        crate::secrets::delete(&ctx.clients.secrets, arn).await?;
    }
    let n = store.forget_link_state(link).await?;
    store.delete_link(&link.link_id).await?;
    tracing::info!(link = %link.link_id, mappings = n, "calendar disconnected");
    Ok(())
}

/// Why [`start_removing`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A read-only member (an ICS subscription): calsync wrote nothing on it.
    #[error("{0} is read-only: calsync put no copies on it")]
    ReadOnly(String),
    /// A sync of the link held its lease for longer than the wait: try again.
    #[error("link {0} is syncing; try again in a minute")]
    Busy(String),
    /// DynamoDB, SQS or a channel stop failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Begin disconnecting `link` with its copies removed: stop its push channels, mark it
/// [`LinkStatus::Removing`] and queue the sync-back job [`REMOVE_COPIES`]. The status is
/// written under the link's lease (waiting at most `wait`), so that no sync of the link
/// that is running writes its own status over it. Returns the link as it now is.
///
/// Errors: [`StartError`].
pub async fn start_removing(
    ctx: &Ctx,
    link: &Link,
    wait: std::time::Duration,
) -> Result<Link, StartError> {
    if link.read_only() {
        return Err(StartError::ReadOnly(link.link_id.clone()));
    }
    let store = ctx.store();
    let owner = uuid::Uuid::now_v7().to_string();
    let lease = store
        .acquire_lease_waiting(&link.link_id, &owner, crate::handlers::LEASE_SECS, wait)
        .await
        .map_err(anyhow::Error::from)?;
    if lease.is_none() {
        return Err(StartError::Busy(link.link_id.clone()));
    }
    let marked = store
        .set_link_status(&link.link_id, LinkStatus::Removing, None)
        .await;
    let _ = store.release_lease(&link.link_id, &owner).await;
    marked.map_err(anyhow::Error::from)?;
    if link.provider.module().push().is_some() {
        crate::push::stop_channels_of(ctx, &link.link_id).await?;
    }
    queue_removal(ctx, &link.link_id).await?;
    tracing::info!(link = %link.link_id, "removing the calendar's copies, then disconnecting");
    let mut now = link.clone();
    now.status = LinkStatus::Removing;
    now.status_reason = None;
    Ok(now)
}

/// Go on removing the copies of `link_id`, which is [`LinkStatus::Removing`], after its
/// credentials were replaced (a reconnection, a new consent): the reason it stopped is
/// cleared and the sync-back job [`REMOVE_COPIES`] queued again.
///
/// Errors: DynamoDB or SQS.
pub async fn resume_removing(ctx: &Ctx, link_id: &str) -> anyhow::Result<()> {
    ctx.store()
        .set_link_status(link_id, LinkStatus::Removing, None)
        .await?;
    queue_removal(ctx, link_id).await?;
    tracing::info!(link = %link_id, "credentials replaced: removing the copies goes on");
    Ok(())
}

/// Queue the sync-back job [`REMOVE_COPIES`] of `link_id` (a unique one: never coalesced).
async fn queue_removal(ctx: &Ctx, link_id: &str) -> anyhow::Result<()> {
    let job = SyncJob::unique(link_id, REMOVE_COPIES);
    ctx.queues().send(QueueKind::SyncBack, &[job]).await?;
    Ok(())
}

/// Record `run`, which refused credentials stopped, and keep the link `removing` with the
/// run's error as its reason (a reconnection goes on: [`resume_removing`]).
async fn stopped_by_credentials(
    store: &crate::store::Store,
    link: &Link,
    run: RunRecord,
) -> anyhow::Result<RunRecord> {
    store.put_run(&run).await?;
    store
        .set_link_status(&link.link_id, LinkStatus::Removing, run.error.as_deref())
        .await?;
    Ok(run)
}

/// Sync-back's job for a link in [`LinkStatus::Removing`] (any trigger), run under the
/// link's lease with `store` fenced by it: delete from the calendar every object
/// [`fate`] gives [`Fate::Remove`], [`REMOVE_PAGE`] at a time, each conditional on the
/// version calsync last saw, and forget its mapping. A copy edited on the calendar since
/// (HTTP 412) stays and is noted in the run; one already gone counts as removed. Past
/// `deadline` (checked after each page, so one page always goes) the job queues its
/// continuation. When none is left, [`disconnect`].
///
/// Returns the run record (kind `push`, written here; `deleted` counts the removed
/// copies). A calendar that refuses the credentials leaves the link `removing` with the
/// reason in `status_reason`: reconnecting it goes on removing ([`resume_removing`]),
/// disconnecting it without removing the copies ends it.
///
/// Errors: the provider is unreachable or DynamoDB fails (SQS delivers the job again).
pub async fn remove_copies(
    ctx: &Ctx,
    store: &crate::store::Store,
    link: &Link,
    job: &SyncJob,
    deadline: std::time::Instant,
    calls: &crate::metrics::AwsCallCounter,
) -> anyhow::Result<RunRecord> {
    let mut run = RunRecord {
        link_id: link.link_id.clone(),
        run_id: uuid::Uuid::now_v7().to_string(),
        kind: "push".into(),
        trigger: job.trigger.clone(),
        started_ms: now_millis(),
        expires_at: now_secs() + crate::handlers::RUN_TTL_SECS,
        ..Default::default()
    };
    // The run's end: its outcome, provider requests, AWS calls and end time.
    let ended = |run: &mut RunRecord, outcome: &str, requests: u32| {
        run.outcome = outcome.into();
        run.api_calls = requests;
        run.count_aws(&calls.snapshot());
        run.ended_ms = now_millis();
    };
    let stopped = |run: &mut RunRecord, e: &dyn std::fmt::Display, requests: u32| {
        run.error = Some(format!("the copies could not be removed: {e}"));
        ended(run, "failed", requests);
    };
    let provider = match provider::connect(ctx, link).await {
        Ok(p) => p,
        Err(e) if permanent(&e) => {
            stopped(&mut run, &e, 0);
            return stopped_by_credentials(store, link, run).await;
        }
        Err(e) => return Err(e),
    };
    let maps = store.mapping_heads_of_link(&link.link_id).await?;
    let heads: HashMap<String, crate::model::HubEvent> = store
        .event_heads_of_group(&link.group_id)
        .await?
        .into_iter()
        .map(|h| (h.uid.clone(), h))
        .collect();
    let key = link.calendar_key();
    let doomed: Vec<_> = maps
        .iter()
        .filter(|m| fate(m, heads.get(&m.uid), &key) == Fate::Remove)
        .filter_map(|m| m.href.as_ref().map(|h| (m, h)))
        .collect();
    for (i, page) in doomed.chunks(REMOVE_PAGE).enumerate() {
        // One page at least, so that a job started late still gets on.
        if i > 0 && std::time::Instant::now() >= deadline {
            queue_removal(ctx, &link.link_id).await?;
            ended(&mut run, "continued", provider.requests());
            store.put_run(&run).await?;
            return Ok(run);
        }
        let writes: Vec<Write> = page
            .iter()
            .map(|(m, href)| Write::Delete {
                href,
                etag: m.etag.as_ref(),
            })
            .collect();
        let outcomes = provider.write_all(&writes).await;
        for ((m, _), outcome) in page.iter().zip(outcomes) {
            match outcome {
                Ok(_) | Err(ProviderError::NotFound(_)) => run.deleted += 1,
                Err(ProviderError::PreconditionFailed(_)) => run.notice(
                    NoticeKind::Kept,
                    &m.uid,
                    "edited on this calendar since calsync wrote it: kept",
                ),
                Err(e @ (ProviderError::Unauthorized(_) | ProviderError::Unavailable { .. })) => {
                    // The calendar as a whole: the rest of the page failed the same way.
                    stopped(&mut run, &e, provider.requests());
                    if matches!(e, ProviderError::Unauthorized(_)) {
                        return stopped_by_credentials(store, link, run).await;
                    }
                    store.put_run(&run).await?;
                    return Err(e.into());
                }
                Err(e) => {
                    run.errors += 1;
                    run.notice(NoticeKind::Error, &m.uid, &format!("not removed: {e}"));
                }
            }
            store.delete_mapping(&link.link_id, &m.uid).await?;
        }
    }
    ended(&mut run, "ok", provider.requests());
    store.put_run(&run).await?;
    tracing::info!(link = %link.link_id, removed = run.deleted, kept = run.notices.len(), "copies removed");
    disconnect(ctx, link).await?;
    if !job.silent {
        crate::notify::send(ctx, &[crate::notify::removed(link, &run)]).await;
    }
    Ok(run)
}

/// A connect failure that retrying does not cure: refused credentials, a provider's
/// permanent refusal.
fn permanent(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::oauth::AuthError>()
        .is_some_and(|a| a.needs_reconnect())
        || e.downcast_ref::<ProviderError>()
            .is_some_and(|p| p.is_permanent() || matches!(p, ProviderError::Unauthorized(_)))
}
