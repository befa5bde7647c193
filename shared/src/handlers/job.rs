//! One job of the sync worker or sync-back: the lease, the run, its record and the link's
//! bookkeeping, the follow-up jobs.

use crate::config::{now_millis, now_secs, Ctx};
use crate::engine::{self, EngineError};
use crate::model::{Link, LinkStatus, RunRecord};
use crate::provider::{self, ProviderError};
use crate::queue::{QueueKind, SyncJob};
use crate::store::CursorState;

use super::bookkeeping::{covered_by_full_push, link_update, Completed};

use super::{
    Direction, JobError, CATCH_UP, CONTINUE, DEADLINE_MARGIN_SECS, LEASE_SECS, RENEW_EVERY_SECS,
    RETRY, RUN_TTL_SECS, SYNC_BACK, WINDOW_RECHECK_SECS,
};

/// Run one job: lease the link, pull or push, record the run, queue follow-up jobs. Not run
/// (an unrecorded [`RunRecord`] with outcome `skipped` / `covered`): links waiting for their
/// user to reconnect, pulls of links whose copies are being removed (their push removes the
/// copies: [`crate::disconnect::remove_copies`]), and push-triggered pulls a later pull
/// already covered.
pub async fn run_job(ctx: &Ctx, job: &SyncJob, dir: Direction) -> Result<RunRecord, JobError> {
    run_job_until(ctx, job, dir, None).await
}

/// The invocation deadline of a Lambda context (`Context::deadline`, epoch milliseconds) as
/// an [`std::time::Instant`].
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> std::time::Instant {
    let left = (deadline_ms as i64 - now_millis()).max(0) as u64;
    std::time::Instant::now() + std::time::Duration::from_millis(left)
}

/// [`run_job`] inside an invocation that ends at `deadline`: a push stops writing
/// [`DEADLINE_MARGIN_SECS`] before it (or at the configured run budget, whichever is
/// first) and queues its continuation.
pub async fn run_job_until(
    ctx: &Ctx,
    job: &SyncJob,
    dir: Direction,
    deadline: Option<std::time::Instant>,
) -> Result<RunRecord, JobError> {
    let calls = crate::metrics::AwsCallCounter::default();
    calls
        .scope(run_counted(ctx, job, dir, deadline, &calls))
        .await
}

/// [`run_job_until`] with the run's own AWS calls counted in `calls`.
async fn run_counted(
    ctx: &Ctx,
    job: &SyncJob,
    dir: Direction,
    deadline: Option<std::time::Instant>,
    calls: &crate::metrics::AwsCallCounter,
) -> Result<RunRecord, JobError> {
    let store = ctx.store();
    let failed = |e: anyhow::Error| JobError::Failed {
        link: job.link_id.clone(),
        source: e,
    };
    // The lease first: then the link and (for a pull) its cursor item come in one read.
    let owner = uuid::Uuid::now_v7().to_string();
    // A link's pull and push come from two queues and may meet: wait for the other job
    // (at most the configured time and a quarter of what is left of the invocation) rather
    // than send the message back for the queue's visibility timeout (minutes).
    let mut wait = std::time::Duration::from_secs(ctx.config.lease_wait_secs);
    if let Some(d) = deadline {
        wait = wait.min(d.saturating_duration_since(std::time::Instant::now()) / 4);
    }
    let Some(lease) = store
        .acquire_lease_waiting(&job.link_id, &owner, LEASE_SECS, wait)
        .await
        .map_err(|e| failed(e.into()))?
    else {
        return Err(JobError::Busy(job.link_id.clone()));
    };
    let result = leased(ctx, job, dir, deadline, &lease, calls).await;
    let _ = store.release_lease(&job.link_id, &owner).await;
    result
}

/// The part of [`run_job_until`] under the lease.
async fn leased(
    ctx: &Ctx,
    job: &SyncJob,
    dir: Direction,
    deadline: Option<std::time::Instant>,
    lease: &crate::store::Lease,
    calls: &crate::metrics::AwsCallCounter,
) -> Result<RunRecord, JobError> {
    let store = ctx.store();
    let failed = |e: anyhow::Error| JobError::Failed {
        link: job.link_id.clone(),
        source: e,
    };
    // A pull reads the cursor item too: its cursor, and the outbox of jobs an earlier pull
    // of this link recorded but may not have sent (sent again; SQS deduplicates).
    let (link, state) = match dir {
        Direction::Pull => store.link_and_cursor(&job.link_id).await,
        Direction::Push => store
            .get_link(&job.link_id)
            .await
            .map(|l| (l, CursorState::default())),
    }
    .map_err(|e| failed(e.into()))?;
    let mut link = link.ok_or_else(|| JobError::UnknownLink(job.link_id.clone()))?;
    if dir == Direction::Pull && job.push_seq.is_some() {
        // A notification's pull begins: later notifications queue their own
        // ([`crate::push`]); the ones counted so far are this pull's to cover.
        let (seq, covered) = store
            .take_pull_marker(&job.link_id)
            .await
            .map_err(|e| failed(e.into()))?
            .ok_or_else(|| JobError::UnknownLink(job.link_id.clone()))?;
        link.push_seq = link.push_seq.max(seq);
        link.covered_push_seq = link.covered_push_seq.max(covered);
    }
    let not_run = |outcome: &str| RunRecord {
        link_id: link.link_id.clone(),
        kind: dir.kind().into(),
        trigger: job.trigger.clone(),
        outcome: outcome.into(),
        ..Default::default()
    };
    if link.status == LinkStatus::ReconnectNeeded {
        // Its credentials were refused: no provider call until the user connects again.
        tracing::info!(link = %link.link_id, reason = ?link.status_reason, "skipped: reconnect needed");
        return Ok(not_run("skipped"));
    }
    if link.status == LinkStatus::Removing && dir == Direction::Pull {
        // Its copies are being removed (sync-back's job): nothing is read from it any more.
        return Ok(not_run("skipped"));
    }
    if dir == Direction::Pull && job.push_seq.is_some() && link.push_seq <= link.covered_push_seq {
        // Pulls that began after every notification counted so far (this job's and those
        // coalesced into it) have listed their changes.
        tracing::info!(link = %link.link_id, push_seq = ?job.push_seq, covered = link.covered_push_seq,
            "push notification already covered by a later pull");
        return Ok(not_run("covered"));
    }
    let renewer = tokio::spawn(calls.scope(renew_while_working(store.clone(), lease.clone())));
    let budget =
        std::time::Instant::now() + std::time::Duration::from_secs(ctx.config.run_budget_secs);
    let margin = std::time::Duration::from_secs(DEADLINE_MARGIN_SECS);
    let push_deadline = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(std::time::Instant::now());
            budget.min(d - margin.min(left / 4))
        }
        None => budget,
    };
    let fenced = store.fenced(lease);
    let (f, l) = (&fenced, &link);
    // Boxed: the run's future is large, and jobs are polled inside deep call stacks. Any
    // push of a link being removed removes its copies; none writes to it.
    let result = match link.status {
        LinkStatus::Removing => {
            let work = crate::disconnect::remove_copies(ctx, f, l, job, push_deadline, calls);
            contained(Box::pin(work)).await
        }
        _ => {
            let work = run_leased(ctx, f, l, job, dir, push_deadline, state, calls);
            contained(Box::pin(work)).await
        }
    };
    renewer.abort();
    result.map_err(failed)
}

/// Renew `lease` every [`RENEW_EVERY_SECS`] until aborted or the lease is lost.
async fn renew_while_working(store: crate::store::Store, lease: crate::store::Lease) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(RENEW_EVERY_SECS)).await;
        match store.renew_lease(&lease, LEASE_SECS).await {
            Ok(true) => {}
            Ok(false) => {
                // Taken over: the fenced writes of this job are refused from now on.
                tracing::warn!(link = %lease.key, "lease lost while working");
                return;
            }
            Err(e) => tracing::warn!(link = %lease.key, error = %e, "lease not renewed"),
        }
    }
}

/// Run `work`, turning a panic inside it into an error, so that a bug met by one job fails
/// that job only: its lease is released and the batch's other jobs run (invariant 9).
pub async fn contained<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %what, "job panicked");
            Err(anyhow::anyhow!("the job panicked: {what}"))
        }
    }
}

#[allow(clippy::too_many_arguments)] // the job's parts, each needed once
async fn run_leased(
    ctx: &Ctx,
    store: &crate::store::Store,
    link: &Link,
    job: &SyncJob,
    dir: Direction,
    push_deadline: std::time::Instant,
    state: CursorState,
    calls: &crate::metrics::AwsCallCounter,
) -> anyhow::Result<RunRecord> {
    let store = store.clone();
    let mut run = RunRecord {
        link_id: link.link_id.clone(),
        run_id: uuid::Uuid::now_v7().to_string(),
        kind: dir.kind().into(),
        trigger: job.trigger.clone(),
        started_ms: now_millis(),
        expires_at: now_secs() + RUN_TTL_SECS,
        ..Default::default()
    };
    if dir == Direction::Push && covered_by_full_push(job, link) {
        tracing::info!(link = %link.link_id, trigger = %job.trigger, after = ?job.after_full_push, full_pushed = link.full_pushed_seq,
            "push skipped: a full push begun after the pull that queued it has completed");
        run.outcome = "ok".into();
        run.ended_ms = now_millis();
        record(
            ctx,
            &store,
            link,
            job,
            &mut run,
            link.status,
            link.status_reason.as_deref(),
            None,
            calls,
        )
        .await?;
        return Ok(run);
    }
    let provider = match provider::connect(ctx, link).await {
        Ok(p) => p,
        Err(e) => {
            run.outcome = "failed".into();
            run.error = Some(e.to_string());
            run.ended_ms = now_millis();
            // A revoked grant is for the user to fix: mark the link and stop retrying.
            let reconnect = e
                .downcast_ref::<crate::oauth::AuthError>()
                .is_some_and(|a| a.needs_reconnect());
            let status = if reconnect {
                LinkStatus::ReconnectNeeded
            } else {
                LinkStatus::Error
            };
            record(
                ctx,
                &store,
                link,
                job,
                &mut run,
                status,
                Some(&e.to_string()),
                None,
                calls,
            )
            .await?;
            if reconnect {
                tracing::warn!(link = %link.link_id, reason = %e, "reconnect needed");
                return Ok(run);
            }
            if e.downcast_ref::<ProviderError>()
                .is_some_and(ProviderError::is_permanent)
            {
                tracing::warn!(link = %link.link_id, reason = %e, "link cannot be synced as configured");
                return Ok(run);
            }
            return Err(e);
        }
    };
    if !state.outbox.is_empty() {
        tracing::info!(link = %link.link_id, jobs = state.outbox.len(), "sending the outbox of an earlier pull");
        ctx.queues()
            .send(QueueKind::SyncBack, &state.outbox)
            .await?;
    }
    // Whether a pull queued its early sync-backs.
    let mut early_sent = false;
    let outcome = match dir {
        Direction::Pull => {
            // The other members' pushes start once the hub holds a page of this pull's
            // changes, while the rest is read (a long pull: an initial sync, a bulk change).
            let (first_tx, first_rx) = tokio::sync::watch::channel(false);
            let run_id = run.run_id.clone();
            let early = early_sync_back(ctx, &store, link, &run_id, first_rx);
            let (store, provider, run, state) = (&store, provider.as_ref(), &mut run, &state);
            let pulled = async move {
                // Dropped when the pull ends: `early` stops waiting.
                let first_tx = first_tx;
                // A retry after a precondition failure re-enumerates.
                let from = engine::PullFrom {
                    cursor: state.cursor.as_ref().filter(|_| job.trigger != RETRY),
                    recent_deletions: engine::plan::recent_deletions(
                        &state.deletions,
                        now_millis(),
                    ),
                    written_after: state.written_ms.map(|_| state.updated_ms),
                    first_changes: Some(&first_tx),
                };
                engine::pull(store, link, provider, run, from).await
            };
            let (pulled, sent) = futures_util::join!(pulled, early);
            early_sent = sent;
            pulled.map(|o| (Some(o), None))
        }
        Direction::Push => {
            // A sync-back (and its continuation) carries hub changes since the link's last
            // complete push; other pushes (API, catch-up, transforms) read the whole group.
            let incremental = [SYNC_BACK, CONTINUE].contains(&job.trigger.as_str());
            let from = engine::PushFrom {
                deadline: Some(push_deadline),
                watermark: link.pushed_through_ms.filter(|_| incremental),
                resume: job.resume.as_ref().filter(|_| job.trigger == CONTINUE),
            };
            engine::push(&store, link, provider.as_ref(), &mut run, from)
                .await
                .map(|o| (None, Some(o)))
        }
    };
    run.api_calls = provider.requests();
    run.ended_ms = now_millis();
    if dir == Direction::Push && run.created + run.updated + run.deleted > 0 {
        // The next pull checks that its report lists these writes (PullFrom::written_after).
        store.mark_written(&link.link_id).await?;
    }
    let (status, reason) = match &outcome {
        Ok((Some(p), _)) if p.quarantined => {
            run.outcome = "quarantined".into();
            (LinkStatus::Quarantined, run.error.clone())
        }
        Ok(_) => {
            run.outcome = "ok".into();
            (LinkStatus::Ok, None)
        }
        Err(EngineError::Provider(ProviderError::Unauthorized(_))) => {
            run.outcome = "failed".into();
            run.error = Some(
                outcome
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            );
            (
                LinkStatus::ReconnectNeeded,
                Some("the provider rejected the credentials; reconnect the calendar".to_string()),
            )
        }
        Err(e) => {
            run.outcome = "failed".into();
            run.error = Some(e.to_string());
            (LinkStatus::Error, Some(e.to_string()))
        }
    };
    let done = match &outcome {
        Ok((Some(p), _)) => Some(Completed::Pull {
            quarantined: p.quarantined,
            in_sync_at: p.in_sync_at,
        }),
        Ok((None, Some(p))) if !p.more && !p.needs_pull && !link.read_only() => {
            Some(Completed::Push {
                read_ms: p.read_ms,
                full_seq: p.full_seq,
            })
        }
        _ => None,
    };
    record(
        ctx,
        &store,
        link,
        job,
        &mut run,
        status,
        reason.as_deref(),
        done,
        calls,
    )
    .await?;
    tracing::info!(link = %link.link_id, kind = %run.kind, trigger = %run.trigger, api_calls = run.api_calls,
        aws_calls = run.aws_calls, ddb_items_read = run.ddb_items_read,
        created = run.created, updated = run.updated, deleted = run.deleted, conflicts = run.conflicts,
        errors = run.errors, outcome = %run.outcome, "run finished");
    if let Err(EngineError::Provider(e)) = &outcome {
        if e.is_permanent() {
            // Retrying cannot help (a refused address, a body over its cap): the link shows
            // the reason and the job is done; the next change of the link or of the data
            // (a schedule tick) tries again.
            tracing::warn!(link = %link.link_id, reason = %e, "sync failed permanently");
            return Ok(run);
        }
    }
    let (pull, push) = outcome?;
    let queues = ctx.queues();
    if let Some(p) = pull {
        let mut jobs = Vec::new();
        if p.hub_changed {
            jobs = sync_back_jobs(&store, link, &run.run_id, early_sent).await?;
        }
        // A time window moves with the days: once a day, push even without changes so that
        // events entering or leaving the window arrive on (or leave) the member.
        let window_due = !link.read_only()
            && link.transforms.window.is_some()
            && now_secs() - link.window_checked_at >= WINDOW_RECHECK_SECS;
        if window_due {
            store
                .update_link_fields(
                    &link.link_id,
                    vec![("window_checked_at", store.attr(now_secs())?)],
                )
                .await?;
        }
        if p.self_pending || window_due {
            // Owed writes of events older than the watermark, or a moved window: a push
            // that reads the whole group, unless a full push begun after this point (the
            // link's count read now, after the pull's writes) completes first. A moved
            // window is not something such a push would have seen coming: it always runs.
            let mut catch_up = SyncJob::coalesced(&link.link_id, CATCH_UP, &run.run_id);
            if !window_due {
                let now = store.get_link(&link.link_id).await?;
                let seq = now.map_or(link.full_push_seq, |l| l.full_push_seq);
                catch_up = catch_up.after_full_push(seq);
            }
            jobs.push(catch_up);
        }
        // Outbox: the cursor and the jobs it makes owed are one write, then the jobs are
        // sent, then the outbox is emptied. A failure in between leaves the jobs recorded,
        // and the next pull of this link sends them.
        // The brake's window: this pull's deletions join it, older ones leave.
        let now = now_millis();
        let mut deletions: Vec<(i64, u32)> = state
            .deletions
            .iter()
            .copied()
            .filter(|(t, _)| now - t < engine::plan::BRAKE_WINDOW_MS)
            .collect();
        if run.deleted > 0 {
            deletions.push((now, run.deleted));
        }
        let mut owed = CursorState {
            cursor: p.cursor.clone().or(state.cursor.clone()),
            outbox: jobs.clone(),
            deletions,
            // Kept while the cursor is (a quarantined pull saves none).
            written_ms: p.cursor.is_none().then_some(state.written_ms).flatten(),
            ..Default::default()
        };
        let news = p.cursor.is_some()
            || !jobs.is_empty()
            || !state.outbox.is_empty()
            || state.written_ms.is_some()
            || owed.deletions != state.deletions;
        if news {
            store.put_cursor_state(&link.link_id, &owed).await?;
        }
        if !jobs.is_empty() {
            queues.send(QueueKind::SyncBack, &jobs).await?;
            owed.outbox.clear();
            store.put_cursor_state(&link.link_id, &owed).await?;
        }
    }
    if let Some(p) = push.as_ref().filter(|p| p.more) {
        // Out of time with writes left: the next run carries on from the saved mappings
        // (a whole-group push: from the page it stopped in).
        let next =
            SyncJob::coalesced(&link.link_id, CONTINUE, &run.run_id).resuming(p.resume.clone());
        queues.send(QueueKind::SyncBack, &[next]).await?;
    }
    if push.as_ref().is_some_and(|p| p.needs_pull) {
        queues
            .send(
                QueueKind::SyncJobs,
                &[SyncJob::coalesced(&link.link_id, RETRY, &run.run_id)],
            )
            .await?;
    }
    Ok(run)
}

/// The sync-back jobs of `link`'s group's other members after a pull that changed the hub,
/// coalesced by `slot`. A link waiting for its user to reconnect gets its pending changes
/// from the first sync after reconnection; one whose copies are being removed gets none.
///
/// `after_early`: the pull's whole work is in the hub and it queued early sync-backs. Each
/// job then carries its member's [`Link::full_push_seq`] read now (a consistent read, one
/// per member), so that a full push begun later, such as the early sync-back's second pass
/// ([`engine::push`]), covers it ([`covered_by_full_push`]).
///
/// Errors: DynamoDB failure reading the group's links.
async fn sync_back_jobs(
    store: &crate::store::Store,
    link: &Link,
    slot: &str,
    after_early: bool,
) -> anyhow::Result<Vec<SyncJob>> {
    let members = store.links_of_group(&link.group_id).await?;
    let mut jobs = Vec::new();
    for o in members {
        if o.link_id == link.link_id || o.read_only() || !o.status.syncs() {
            continue;
        }
        let mut job = SyncJob::coalesced(&o.link_id, SYNC_BACK, slot);
        if after_early {
            match store.get_link(&o.link_id).await? {
                Some(now) => job = job.after_full_push(now.full_push_seq),
                None => continue,
            }
        }
        jobs.push(job);
    }
    Ok(jobs)
}

/// Once `first` turns `true` (the pull's first page of changes is in the hub, more follow:
/// [`engine::PullFrom::first_changes`]), queue the other members' sync-backs, so that their
/// pushes write that page while the pull reads the rest. The pull's own sync-backs follow
/// when it ends (another slot; FIFO order per link runs them after these): they read what
/// these did not push, or are skipped when one of these, or its second pass, began a full
/// push after the pull ended and completed it. Nothing when the pull ends first. A failure
/// is logged only: the pull's own sync-backs carry everything. Returns whether jobs were
/// queued.
async fn early_sync_back(
    ctx: &Ctx,
    store: &crate::store::Store,
    link: &Link,
    run_id: &str,
    mut first: tokio::sync::watch::Receiver<bool>,
) -> bool {
    if first.wait_for(|fired| *fired).await.is_err() {
        return false;
    }
    let sent = async {
        let jobs = sync_back_jobs(store, link, &format!("{run_id}:first"), false).await?;
        if !jobs.is_empty() {
            ctx.queues().send(QueueKind::SyncBack, &jobs).await?;
        }
        anyhow::Ok(jobs.len())
    };
    match sent.await {
        Ok(n) => {
            tracing::info!(link = %link.link_id, jobs = n, "first page of changes in the hub: sync-backs queued while the pull goes on");
            n > 0
        }
        Err(e) => {
            tracing::warn!(link = %link.link_id, error = %e, "early sync-backs not queued; the pull's own follow");
            false
        }
    }
}

/// Record the run: its AWS calls, the run record, what it changed on the link (one write at
/// most, [`link_update`]), and the application's notifications unless the job is silent
/// ([`crate::notify::decide`]; never fails the run). `done`: the run completed.
///
/// Errors: DynamoDB failure writing the record or the link.
#[allow(clippy::too_many_arguments)] // the run's parts, each needed once
async fn record(
    ctx: &Ctx,
    store: &crate::store::Store,
    link: &Link,
    job: &SyncJob,
    run: &mut RunRecord,
    status: LinkStatus,
    reason: Option<&str>,
    done: Option<Completed>,
    calls: &crate::metrics::AwsCallCounter,
) -> anyhow::Result<()> {
    let aws = calls.snapshot();
    run.count_aws(&aws);
    tracing::debug!(link = %link.link_id, aws = %aws.timed_summary(), "AWS calls of the run");
    store.put_run(run).await?;
    let update = link_update(link, status, reason, run, done, now_secs());
    store.finish_link_run(&link.link_id, &update).await?;
    if !job.silent {
        let failures = update
            .consecutive_failures
            .unwrap_or(link.consecutive_failures);
        let notes = crate::notify::decide(link, status, reason, failures, run);
        crate::notify::send(ctx, &notes).await;
    }
    Ok(())
}
