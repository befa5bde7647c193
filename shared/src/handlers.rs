//! The Lambda entry points. Each `functions/*/src/main.rs` builds a [`Ctx`] and hands its
//! events here, so the local runner and AWS run the same code.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{json, Value};

use crate::config::{now_millis, now_secs, Ctx};
use crate::engine::{self, EngineError};
use crate::model::{Link, LinkStatus, RunRecord};
use crate::provider::{self, ProviderError};
use crate::queue::{QueueKind, SyncJob};
use crate::store::CursorState;

/// Lease time while a link is worked on (seconds). The lease is renewed every
/// [`RENEW_EVERY_SECS`] while the job runs, so a job killed at its deadline (the Lambda
/// timeout) strands its link for at most this long, well inside the queues' visibility
/// timeout (720 s, see `docs/architecture.md`).
const LEASE_SECS: i64 = 60;
/// How often a running job renews its lease (seconds).
const RENEW_EVERY_SECS: u64 = 20;
/// A job after the invocation's first is not started with less time than this left before
/// the invocation's deadline (seconds; at most half the invocation's time): it goes back to
/// the queue instead of being killed half-way.
pub const JOB_MIN_SECS: u64 = 60;
/// Time kept free before the deadline for recording the run (seconds; at most a quarter of
/// what is left when the job starts).
const DEADLINE_MARGIN_SECS: u64 = 30;
/// Trigger of the pull a push asks for after a precondition failure; such pulls re-enumerate.
pub const RETRY: &str = "retry";
/// How often a link with a time window gets a push without changes (seconds).
const WINDOW_RECHECK_SECS: i64 = 86_400;
/// Run records expire after this many seconds (TTL).
const RUN_TTL_SECS: i64 = 30 * 86400;

/// Which side of the sync an SQS handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// sync-worker: remote → hub.
    Pull,
    /// sync-back: hub → remote.
    Push,
}

impl Direction {
    /// The run kind recorded for this direction (`pull` / `push`).
    pub fn kind(self) -> &'static str {
        match self {
            Direction::Pull => "pull",
            Direction::Push => "push",
        }
    }
}

/// Why a job did not complete (the message is retried, then goes to the DLQ).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The message body is not a [`SyncJob`].
    #[error("message {0}: body is not a sync job: {1}")]
    BadMessage(String, String),
    /// The link does not exist (deleted after the job was queued): nothing to do.
    #[error("link {0} does not exist")]
    UnknownLink(String),
    /// Another worker holds the link's lease.
    #[error("link {0} is busy (lease held)")]
    Busy(String),
    /// The run failed.
    #[error("link {link}: {source}")]
    Failed {
        /// Link id.
        link: String,
        /// Cause.
        source: anyhow::Error,
    },
}

/// Run one job: lease the link, pull or push, record the run, queue follow-up jobs. Not run
/// (an unrecorded [`RunRecord`] with outcome `skipped` / `covered`): links waiting for their
/// user to reconnect, and push-triggered pulls a later pull already covered.
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
    let store = ctx.store();
    let aws_start = ctx.clients.aws_calls.snapshot();
    let failed = |e: anyhow::Error| JobError::Failed {
        link: job.link_id.clone(),
        source: e,
    };
    let link = store
        .get_link(&job.link_id)
        .await
        .map_err(|e| failed(e.into()))?
        .ok_or_else(|| JobError::UnknownLink(job.link_id.clone()))?;
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
    if dir == Direction::Pull && job.push_seq.is_some_and(|seq| seq <= link.covered_push_seq) {
        // A pull that began after this notification was counted has listed the change.
        tracing::info!(link = %link.link_id, push_seq = ?job.push_seq, covered = link.covered_push_seq,
            "push notification already covered by a later pull");
        return Ok(not_run("covered"));
    }
    let owner = uuid::Uuid::now_v7().to_string();
    let Some(lease) = store
        .acquire_lease(&link.link_id, &owner, LEASE_SECS)
        .await
        .map_err(|e| failed(e.into()))?
    else {
        return Err(JobError::Busy(link.link_id.clone()));
    };
    let renewer = tokio::spawn(renew_while_working(store.clone(), lease.clone()));
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
    let fenced = store.fenced(&lease);
    // Boxed: the run's future is large, and jobs are polled inside deep call stacks.
    let result = contained(Box::pin(run_leased(
        ctx,
        &fenced,
        &link,
        job,
        dir,
        push_deadline,
        &aws_start,
    )))
    .await;
    renewer.abort();
    let _ = store.release_lease(&link.link_id, &owner).await;
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

async fn run_leased(
    ctx: &Ctx,
    store: &crate::store::Store,
    link: &Link,
    job: &SyncJob,
    dir: Direction,
    push_deadline: std::time::Instant,
    aws_start: &crate::metrics::AwsCalls,
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
    let provider = match provider::connect(ctx, link).await {
        Ok(p) => p,
        Err(e) => {
            run.outcome = "failed".into();
            run.error = Some(e.to_string());
            run.ended_ms = now_millis();
            store.put_run(&run).await?;
            // A revoked grant is for the user to fix: mark the link and stop retrying.
            let reconnect = e
                .downcast_ref::<crate::oauth::AuthError>()
                .is_some_and(|a| a.needs_reconnect());
            let status = if reconnect {
                LinkStatus::ReconnectNeeded
            } else {
                LinkStatus::Error
            };
            store
                .set_link_status(&link.link_id, status, Some(&e.to_string()))
                .await?;
            finish_notices(ctx, link, job, status, Some(&e.to_string()), &run).await;
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
    // A pull reads the cursor item: its cursor, and the outbox of jobs an earlier pull of
    // this link recorded but may not have sent (sent again now; SQS deduplicates).
    let state = match dir {
        Direction::Pull => store.get_cursor_state(&link.link_id).await?,
        Direction::Push => CursorState::default(),
    };
    if !state.outbox.is_empty() {
        tracing::info!(link = %link.link_id, jobs = state.outbox.len(), "sending the outbox of an earlier pull");
        ctx.queues()
            .send(QueueKind::SyncBack, &state.outbox)
            .await?;
    }
    let outcome = match dir {
        Direction::Pull => {
            // A retry after a precondition failure re-enumerates.
            let from = engine::PullFrom {
                cursor: state.cursor.as_ref().filter(|_| job.trigger != RETRY),
                recent_deletions: engine::plan::recent_deletions(&state.deletions, now_millis()),
                written_after: state.written_ms.map(|_| state.updated_ms),
            };
            engine::pull(&store, link, provider.as_ref(), &mut run, from)
                .await
                .map(|o| (Some(o), None))
        }
        Direction::Push => engine::push(
            &store,
            link,
            provider.as_ref(),
            &mut run,
            Some(push_deadline),
        )
        .await
        .map(|o| (None, Some(o))),
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
    let aws = ctx.clients.aws_calls.snapshot().since(aws_start);
    run.aws_calls = u32::try_from(aws.total()).unwrap_or(u32::MAX);
    run.ddb_items_read = u32::try_from(aws.ddb_items_read).unwrap_or(u32::MAX);
    tracing::debug!(link = %link.link_id, aws = %aws.summary(), "AWS calls of the run");
    store.put_run(&run).await?;
    store
        .set_link_status(&link.link_id, status, reason.as_deref())
        .await?;
    finish_notices(ctx, link, job, status, reason.as_deref(), &run).await;
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
        if link.allow_mass_delete && !p.quarantined {
            // A released mass deletion goes through once; the brake holds again afterwards.
            store
                .update_link_fields(
                    &link.link_id,
                    vec![("allow_mass_delete", store.attr(false)?)],
                )
                .await?;
        }
        store
            .set_next_sync(
                &link.link_id,
                now_secs() + link.frequency_secs.max(60),
                Some(link.push_seq),
            )
            .await?;
        let mut jobs = Vec::new();
        if p.hub_changed {
            for other in store.links_of_group(&link.group_id).await? {
                // A link waiting for its user to reconnect gets its pending changes from
                // the first sync after reconnection.
                if other.link_id != link.link_id
                    && !other.read_only()
                    && other.status != LinkStatus::ReconnectNeeded
                {
                    jobs.push(SyncJob::coalesced(&other.link_id, "sync-back", &run.run_id));
                }
            }
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
            jobs.push(SyncJob::coalesced(&link.link_id, "sync-back", &run.run_id));
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
    if push.is_some_and(|p| p.more) {
        // Out of time with writes left: the next run carries on from the saved mappings.
        queues
            .send(
                QueueKind::SyncBack,
                &[SyncJob::coalesced(&link.link_id, "continue", &run.run_id)],
            )
            .await?;
    }
    if push.is_some_and(|p| p.needs_pull) {
        queues
            .send(
                QueueKind::SyncJobs,
                &[SyncJob::coalesced(&link.link_id, RETRY, &run.run_id)],
            )
            .await?;
    }
    Ok(run)
}

/// Count the run towards the link's failure streak and tell the application what changed
/// ([`crate::notify::decide`]), unless the job is silent. Never fails the run.
async fn finish_notices(
    ctx: &Ctx,
    link: &Link,
    job: &SyncJob,
    status: LinkStatus,
    reason: Option<&str>,
    run: &RunRecord,
) {
    let store = ctx.store();
    let failures = if run.outcome == "failed" {
        link.consecutive_failures + 1
    } else {
        0
    };
    if failures != link.consecutive_failures {
        let set = match store.attr(failures) {
            Ok(v) => {
                store
                    .update_link_fields(&link.link_id, vec![("consecutive_failures", v)])
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = set {
            tracing::warn!(link = %link.link_id, error = %e, "failure count not saved");
        }
    }
    if job.silent {
        return;
    }
    let notes = crate::notify::decide(link, status, reason, failures, run);
    crate::notify::send(ctx, &notes).await;
}

/// SQS handler for sync-worker (`Pull`) and sync-back (`Push`): reports partial batch
/// failures. Messages of a FIFO group after a failed one are failed too, so their order holds.
pub async fn handle_sqs(ctx: &Ctx, event: SqsEvent, dir: Direction) -> SqsBatchResponse {
    handle_sqs_until(ctx, event, dir, None).await
}

/// [`handle_sqs`] inside an invocation that ends at `deadline` (the Lambda context's): the
/// first job always runs; a later one only with [`JOB_MIN_SECS`] (at most half the
/// invocation's time) left. The messages not started are reported as failures, so SQS
/// delivers them again instead of the timeout killing them half-way.
pub async fn handle_sqs_until(
    ctx: &Ctx,
    event: SqsEvent,
    dir: Direction,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    let mut resp = SqsBatchResponse::default();
    let mut failed_groups: Vec<String> = Vec::new();
    let min_left = deadline.map(|d| {
        let total = d.saturating_duration_since(std::time::Instant::now());
        std::time::Duration::from_secs(JOB_MIN_SECS).min(total / 2)
    });
    let mut started = false;
    for msg in event.records {
        let id = msg.message_id.clone().unwrap_or_default();
        let group = msg
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        if failed_groups.contains(&group) {
            resp.add_failure(id);
            continue;
        }
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let short = matches!((left, min_left), (Some(l), Some(m)) if l <= m);
        if started && short {
            tracing::info!(message = %id, "too close to the deadline; left for redelivery");
            failed_groups.push(group);
            resp.add_failure(id);
            continue;
        }
        let job: Result<SyncJob, JobError> =
            serde_json::from_str(msg.body.as_deref().unwrap_or(""))
                .map_err(|e| JobError::BadMessage(id.clone(), e.to_string()));
        started = true;
        let result = match job {
            Ok(job) => run_job_until(ctx, &job, dir, deadline).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {}
            // Nothing will ever make these succeed: drop them instead of cycling to the DLQ.
            Err(e @ (JobError::UnknownLink(_) | JobError::BadMessage(..))) => {
                tracing::error!(error = %e, "dropping message");
            }
            Err(e) => {
                tracing::warn!(error = %e, "job failed; will be retried");
                failed_groups.push(group);
                resp.add_failure(id);
            }
        }
    }
    resp
}

fn api_answer(ok: bool, code: &str, message: String) -> Value {
    json!({"Status": if ok { "OK" } else { "Error" }, "Statuscode": code, "Message": message})
}

/// AutoSync fan-out.
///
/// - EventBridge scheduled event (`"detail-type": "Scheduled Event"`): queue every link whose
///   `next_sync_at` is due, coalesced per schedule minute.
/// - `{"field":"AutoSync","arguments":{"userId":282,"calendarType":1,"silentNotification":1}}`
///   (AppSync / API Gateway): queue that user's links of that `calendarType` (all types when
///   absent) and answer `{"Status":"OK","Statuscode":"SU001","Message":"..."}`.
/// - Anything else: `{"Status":"Error","Statuscode":"ER001",...}` naming what was wrong;
///   `ER002` when queuing failed.
pub async fn autosync(ctx: &Ctx, payload: Value) -> Value {
    let payload = match payload
        .get("body")
        .and_then(Value::as_str)
        .map(serde_json::from_str::<Value>)
    {
        Some(Ok(inner)) => inner, // API Gateway proxy event: the call is in the body
        _ => payload,
    };
    let store = ctx.store();
    let is_schedule = payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    let (links, trigger, slot) = if is_schedule {
        match store.due_links(now_secs()).await {
            Ok(l) => (l, "schedule", (now_secs() / 60).to_string()),
            Err(e) => return api_answer(false, "ER002", format!("cannot read links: {e}")),
        }
    } else {
        if payload.get("field").and_then(Value::as_str) != Some("AutoSync") {
            return api_answer(false, "ER001", "expected {\"field\":\"AutoSync\",\"arguments\":{\"userId\":...}} or a scheduled event".into());
        }
        let args = payload.get("arguments").cloned().unwrap_or(Value::Null);
        let user = match args.get("userId") {
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            Some(Value::String(s)) if s.parse::<i64>().is_ok() => s.parse().unwrap_or_default(),
            Some(other) => {
                return api_answer(
                    false,
                    "ER001",
                    format!("arguments.userId must be an integer, got {other}"),
                )
            }
            None => return api_answer(false, "ER001", "arguments.userId is required".into()),
        };
        let ctype = match args.get("calendarType") {
            None | Some(Value::Null) => None,
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(t) => Some(t),
                None => {
                    return api_answer(
                        false,
                        "ER001",
                        format!("arguments.calendarType must be an integer, got {v}"),
                    )
                }
            },
        };
        match store.links_of_user(user).await {
            Ok(l) => (
                l.into_iter()
                    .filter(|l| ctype.is_none_or(|t| l.calendar_type() == t))
                    .collect(),
                "autosync",
                uuid::Uuid::now_v7().simple().to_string(),
            ),
            Err(e) => return api_answer(false, "ER002", format!("cannot read links: {e}")),
        }
    };
    // Links waiting for the user to reconnect are not retried until they do.
    let links: Vec<Link> = links
        .into_iter()
        .filter(|l| l.status != LinkStatus::ReconnectNeeded)
        .collect();
    let silent = !is_schedule
        && payload
            .get("arguments")
            .and_then(|a| a.get("silentNotification"))
            .is_some_and(|v| {
                v.as_i64() == Some(1) || v.as_bool() == Some(true) || v.as_str() == Some("1")
            });
    let jobs: Vec<SyncJob> = links
        .iter()
        .map(|l| SyncJob::coalesced(&l.link_id, trigger, &slot).silenced(silent))
        .collect();
    if let Err(e) = ctx.queues().send(QueueKind::SyncJobs, &jobs).await {
        return api_answer(false, "ER002", format!("cannot queue sync jobs: {e}"));
    }
    if is_schedule {
        for l in &links {
            // Push the due time forward now so the next tick does not queue it again.
            let _ = store
                .set_next_sync(&l.link_id, now_secs() + l.frequency_secs.max(60), None)
                .await;
        }
    }
    api_answer(
        true,
        "SU001",
        format!("{} calendar(s) queued for sync", jobs.len()),
    )
}

/// Initialise tracing: JSON lines in Lambda, plain text locally; level from `RUST_LOG`.
pub fn init_tracing() {
    init_tracing_with_default("info");
}

/// [`init_tracing`] with another default level for when `RUST_LOG` is unset.
pub fn init_tracing_with_default(level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok() {
        builder.json().without_time().try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_fails_only_its_job() {
        let boom = contained(async {
            if std::hint::black_box(true) {
                panic!("index out of bounds: the len is 0");
            }
            Ok(1)
        })
        .await;
        let err = boom.expect_err("a panic is an error");
        assert!(err.to_string().contains("index out of bounds"), "{err}");
        assert_eq!(contained(async { Ok(2) }).await.ok(), Some(2));
    }
}
