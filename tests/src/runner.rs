//! The local stand-in for Lambda's SQS event source mappings and the EventBridge schedule:
//! receives up to 10 messages, hands them to the same handler the Lambda binaries run (as the
//! JSON event Lambda would deliver), deletes what succeeded and makes failures visible again.

use aws_lambda_events::event::sqs::SqsEvent;
use calsync::config::Ctx;
use calsync::handlers::{self, Direction};
use calsync::queue::{QueueKind, SyncJob};
use serde_json::json;

/// What a drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainStats {
    /// Pull jobs handled.
    pub pulls: u32,
    /// Push jobs handled.
    pub pushes: u32,
    /// Messages reported as failed (retried).
    pub failures: u32,
    /// ReceiveMessage calls made by [`drain_side_by_side`] (the pollers', not a function's).
    pub receives: u32,
}

/// Process one batch from a queue; returns the number of messages received.
pub async fn step(ctx: &Ctx, kind: QueueKind, stats: &mut DrainStats) -> anyhow::Result<usize> {
    let msgs = receive(ctx, kind, 0).await?;
    let n = msgs.len();
    handle(ctx, kind, msgs, stats).await?;
    Ok(n)
}

/// Receive up to 10 messages from a queue, waiting up to `wait_secs` seconds for one
/// (SQS `WaitTimeSeconds`: a long poll, as Lambda's event source mappings poll).
///
/// Without the SDK's stalled-stream protection: it wakes the waiting task every 100 ms (a
/// tenth of its 1 s check window) for as long as the request is in flight, which on this
/// one-threaded runtime polls every job being handled beside it too. A long poll sends
/// nothing and receives nothing for most of its wait; Lambda's pollers are not in the
/// function's process, and the bench counts this process's CPU.
async fn receive(
    ctx: &Ctx,
    kind: QueueKind,
    wait_secs: i32,
) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
    let url = ctx.queues().url(kind).await?;
    let out = ctx
        .clients
        .sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .customize()
        .config_override(
            aws_sdk_sqs::config::Builder::default().stalled_stream_protection(
                aws_sdk_sqs::config::StalledStreamProtectionConfig::disabled(),
            ),
        )
        .send()
        .await?;
    Ok(out.messages.unwrap_or_default())
}

/// The jobs waiting on `kind`'s queue, in the order SQS delivers them, each with when SQS
/// received it (`SentTimestamp`, epoch ms); every message is left visible again.
///
/// Errors: SQS failure, a body that is not a job.
pub async fn peek(ctx: &Ctx, kind: QueueKind) -> anyhow::Result<Vec<(SyncJob, i64)>> {
    take_where(ctx, kind, |_| false).await
}

/// Remove the jobs of `link_id` waiting on `kind`'s queue and return them in the order SQS
/// delivers them (a test then runs them itself); the other jobs are left visible again.
///
/// Errors: SQS failure, a body that is not a job.
pub async fn take(ctx: &Ctx, kind: QueueKind, link_id: &str) -> anyhow::Result<Vec<SyncJob>> {
    let mine = |j: &SyncJob| j.link_id == link_id;
    let all = take_where(ctx, kind, mine).await?;
    Ok(all.into_iter().map(|(j, _)| j).filter(mine).collect())
}

/// Every job waiting on `kind`'s queue with its `SentTimestamp`; those `remove` picks are
/// deleted, the others made visible again.
async fn take_where(
    ctx: &Ctx,
    kind: QueueKind,
    remove: impl Fn(&SyncJob) -> bool,
) -> anyhow::Result<Vec<(SyncJob, i64)>> {
    let url = ctx.queues().url(kind).await?;
    let mut seen = Vec::new();
    loop {
        let msgs = receive(ctx, kind, 0).await?;
        if msgs.is_empty() {
            break;
        }
        seen.extend(msgs);
    }
    let mut jobs = Vec::new();
    for m in &seen {
        let job: SyncJob = serde_json::from_str(m.body().unwrap_or_default())?;
        let handle = m.receipt_handle().unwrap_or_default();
        settle(ctx, &url, handle, remove(&job)).await?;
        let sent = m
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp))
            .and_then(|t| t.parse().ok())
            .unwrap_or_default();
        jobs.push((job, sent));
    }
    Ok(jobs)
}

/// Hand `msgs` (received from `kind`) to the handler as Lambda would, then delete what
/// succeeded and make the failures visible again.
async fn handle(
    ctx: &Ctx,
    kind: QueueKind,
    msgs: Vec<aws_sdk_sqs::types::Message>,
    stats: &mut DrainStats,
) -> anyhow::Result<()> {
    if msgs.is_empty() {
        return Ok(());
    }
    let url = ctx.queues().url(kind).await?;
    let records: Vec<serde_json::Value> = msgs
        .iter()
        .map(|m| {
            let attrs: serde_json::Map<String, serde_json::Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attrs,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records }))?;
    let dir = match kind {
        QueueKind::SyncJobs => Direction::Pull,
        QueueKind::SyncBack => Direction::Push,
    };
    let resp = handlers::handle_sqs(ctx, event, dir).await;
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for m in &msgs {
        let handle = m.receipt_handle().unwrap_or_default();
        let ok = !failed.contains(&m.message_id().unwrap_or_default());
        match (ok, dir) {
            (false, _) => stats.failures += 1,
            (true, Direction::Pull) => stats.pulls += 1,
            (true, Direction::Push) => stats.pushes += 1,
        }
        settle(ctx, &url, handle, ok).await?;
    }
    Ok(())
}

/// Delete a received message (`done`), or make it visible again at once.
async fn settle(ctx: &Ctx, url: &str, handle: &str, done: bool) -> anyhow::Result<()> {
    let sqs = &ctx.clients.sqs;
    if done {
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(handle)
            .send()
            .await?;
    } else {
        sqs.change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await?;
    }
    Ok(())
}

/// Handle jobs until both queues are empty (bounded to `max_rounds` rounds).
pub async fn drain(ctx: &Ctx) -> anyhow::Result<DrainStats> {
    let mut stats = DrainStats::default();
    for _ in 0..2000 {
        let pulled = step(ctx, QueueKind::SyncJobs, &mut stats).await?;
        let pushed = step(ctx, QueueKind::SyncBack, &mut stats).await?;
        if pulled == 0 && pushed == 0 {
            return Ok(stats);
        }
    }
    anyhow::bail!("queues did not drain after 2000 rounds: {stats:?}")
}

/// The longest SQS long poll (`WaitTimeSeconds`, seconds), what Lambda's event source
/// mappings use: <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html>.
const LONG_POLL_SECS: i32 = 20;

/// Handle jobs until both queues are empty, each queue polled by a loop of its own as
/// Lambda's two event source mappings poll theirs (sync-worker and sync-back side by side):
/// a push starts while pulls still run. Ends when each queue's last poll found it empty, both
/// polls begun after the last batch was handled and none is being handled (only jobs queue
/// jobs, so nothing can arrive then); bounded to 20,000 polls per queue.
///
/// Each receive is a long poll: up to [`LONG_POLL_SECS`] while the other queue's batch is
/// being handled (the drain cannot end before that batch does; a message its job sends here
/// ends the wait at once, as on SQS), so that this process, whose CPU the bench counts,
/// does not spend it on a receive a second while a long push runs (Lambda's pollers are not
/// in the function's process). Up to a second when neither queue is being handled, so the
/// drain ends soon after the last job.
///
/// Errors: SQS failure; the queues did not empty.
pub async fn drain_side_by_side(ctx: &Ctx) -> anyhow::Result<DrainStats> {
    use std::sync::Mutex;
    #[derive(Default)]
    struct Seen {
        /// Batches handled so far.
        handled: u64,
        /// A batch is being handled.
        handling: [bool; 2],
        /// Per queue: `handled` when its last poll, which found it empty, began.
        empty_since: [Option<u64>; 2],
    }
    let seen = Mutex::new(Seen::default());
    let stats = Mutex::new(DrainStats::default());
    let poll = |me: usize, kind: QueueKind| {
        let (seen, stats) = (&seen, &stats);
        async move {
            for _ in 0..20_000 {
                let (began, wait) = {
                    let s = seen.lock().expect("seen");
                    let wait = if s.handling[1 - me] {
                        LONG_POLL_SECS
                    } else {
                        1
                    };
                    (s.handled, wait)
                };
                let msgs = receive(ctx, kind, wait).await?;
                stats.lock().expect("stats").receives += 1;
                {
                    let mut s = seen.lock().expect("seen");
                    if msgs.is_empty() {
                        s.empty_since[me] = Some(began);
                        let done = s.empty_since.iter().all(|e| *e == Some(s.handled))
                            && !s.handling.iter().any(|h| *h);
                        if done {
                            return Ok(());
                        }
                        continue;
                    }
                    s.handling[me] = true;
                    s.empty_since[me] = None;
                }
                let mut mine = DrainStats::default();
                let handled = handle(ctx, kind, msgs, &mut mine).await;
                {
                    let mut s = seen.lock().expect("seen");
                    s.handling[me] = false;
                    s.handled += 1;
                }
                handled?;
                let mut s = stats.lock().expect("stats");
                s.pulls += mine.pulls;
                s.pushes += mine.pushes;
                s.failures += mine.failures;
            }
            anyhow::bail!("{kind:?} did not drain after 20,000 polls")
        }
    };
    tokio::try_join!(poll(0, QueueKind::SyncJobs), poll(1, QueueKind::SyncBack))?;
    Ok(stats.into_inner().expect("stats"))
}

/// Fire the AutoSync fan-out for `user_id` (all calendar types), as AppSync would.
pub async fn autosync_user(ctx: &Ctx, user_id: i64) -> serde_json::Value {
    handlers::autosync(
        ctx,
        json!({"field": "AutoSync", "arguments": {"userId": user_id}}),
    )
    .await
}

/// Fire the scheduled AutoSync, as EventBridge would.
pub async fn schedule_tick(ctx: &Ctx) -> serde_json::Value {
    handlers::autosync(
        ctx,
        json!({"version": "0", "id": uuid::Uuid::now_v7().to_string(), "detail-type": "Scheduled Event",
               "source": "aws.events", "time": chrono::Utc::now().to_rfc3339(), "resources": [], "detail": {}}),
    )
    .await
}
