//! The Lambda entry points. Each `functions/*/src/main.rs` builds a [`Ctx`] and hands its
//! events here, so the local runner and AWS run the same code.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{json, Value};

use crate::config::{now_secs, Ctx};
use crate::queue::{QueueKind, SyncJob};

/// Lease time while a link is worked on (seconds). The lease is renewed every
/// [`RENEW_EVERY_SECS`] while the job runs, so a job killed at its deadline (the Lambda
/// timeout) strands its link for at most this long, well inside the queues' visibility
/// timeout (720 s, see `docs/architecture.md`).
pub(crate) const LEASE_SECS: i64 = 60;
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
/// Trigger of the push a pull queues for the other members after it changed the hub; it
/// reads only the hub's changes since the member's push watermark.
pub const SYNC_BACK: &str = "sync-back";
/// Trigger of a push's continuation after its deadline (also from the watermark).
pub const CONTINUE: &str = "continue";
/// Trigger of the push a pull queues for its own link (owed writes found by the pull, or a
/// time window due): reads the whole group.
pub const CATCH_UP: &str = "catch-up";
/// How often a link with a time window gets a push without changes (seconds).
const WINDOW_RECHECK_SECS: i64 = 86_400;
/// Run records expire after this many seconds (TTL).
pub(crate) const RUN_TTL_SECS: i64 = 30 * 86400;

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

pub mod batch;
pub mod bookkeeping;
pub mod fanout;
pub mod job;
pub use job::{contained, deadline_from_epoch_ms, run_job, run_job_until};

/// SQS handler for sync-worker (`Pull`) and sync-back (`Push`): reports partial batch
/// failures. Messages of a FIFO group after a failed one are failed too, so their order holds.
pub async fn handle_sqs(ctx: &Ctx, event: SqsEvent, dir: Direction) -> SqsBatchResponse {
    handle_sqs_until(ctx, event, dir, None).await
}

/// [`handle_sqs`] inside an invocation that ends at `deadline` (the Lambda context's): the
/// first job always runs; a later one only with [`JOB_MIN_SECS`] (at most half the
/// invocation's time) left. The messages not started are reported as failures, so SQS
/// delivers them again instead of the timeout killing them half-way. The batch's links are
/// worked on [`batch::GROUPS_IN_FLIGHT`] at a time, each link's messages in order.
pub async fn handle_sqs_until(
    ctx: &Ctx,
    event: SqsEvent,
    dir: Direction,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    batch::run(ctx, event.records, dir, deadline).await
}

/// Which jobs of one SQS batch a later job of the same batch covers: a pull queued by a
/// push notification (`push_seq` set) when a later pull of the same link follows it. Every
/// message of the batch was counted before any of its jobs starts, so the later pull reads
/// the link after the notification and lists its change
/// ([`crate::model::Link::covered_push_seq`]); a notification burst (a bulk change, Google's
/// one notification per changed event) costs one pull per batch, not one per message.
/// `None`: an unreadable message. Pushes are never covered this way.
pub fn covered_in_batch(jobs: &[Option<&SyncJob>], dir: Direction) -> Vec<bool> {
    jobs.iter()
        .enumerate()
        .map(|(i, job)| {
            let Some(job) = job.filter(|j| dir == Direction::Pull && j.push_seq.is_some()) else {
                return false;
            };
            jobs[i + 1..]
                .iter()
                .flatten()
                .any(|later| later.link_id == job.link_id)
        })
        .collect()
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
    if payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let r = fanout::tick(ctx, now_secs()).await;
        for f in &r.failed {
            tracing::error!(failure = %f, "schedule tick");
        }
        tracing::info!(
            due = r.due,
            queued = r.queued,
            waiting_reconnect = r.waiting_reconnect,
            pages = r.pages,
            failed = r.failed.len(),
            "schedule tick"
        );
        let message = format!("{} calendar(s) queued for sync", r.queued);
        return match r.failed.first() {
            None => api_answer(true, "SU001", message),
            Some(first) => api_answer(
                false,
                "ER002",
                format!("{message}; {} failure(s), first: {first}", r.failed.len()),
            ),
        };
    }
    if payload.get("field").and_then(Value::as_str) != Some("AutoSync") {
        return api_answer(
            false,
            "ER001",
            "expected {\"field\":\"AutoSync\",\"arguments\":{\"userId\":...}} or a scheduled event"
                .into(),
        );
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
    let links = match ctx.store().links_of_user(user).await {
        Ok(l) => l,
        Err(e) => return api_answer(false, "ER002", format!("cannot read links: {e}")),
    };
    let silent = args.get("silentNotification").is_some_and(|v| {
        v.as_i64() == Some(1) || v.as_bool() == Some(true) || v.as_str() == Some("1")
    });
    let slot = uuid::Uuid::now_v7().simple().to_string();
    // Links waiting for the user to reconnect are not retried until they do.
    let jobs: Vec<SyncJob> = fanout::to_queue(&links)
        .into_iter()
        .filter(|l| ctype.is_none_or(|t| l.calendar_type() == t))
        .map(|l| SyncJob::coalesced(&l.link_id, "autosync", &slot).silenced(silent))
        .collect();
    if let Err(e) = ctx.queues().send(QueueKind::SyncJobs, &jobs).await {
        return api_answer(false, "ER002", format!("cannot queue sync jobs: {e}"));
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

/// [`init_tracing`] with another default level for when `RUST_LOG` is unset or unreadable.
///
/// `RUST_LOG` holds comma-separated `target=level` directives and a bare default level
/// (`warn,calsync=debug`), read as a [`tracing_subscriber::filter::Targets`]: the
/// directives that `EnvFilter` also reads, without its span and field filters (and without
/// the regex engine they need, 0.3 MB of each binary).
pub fn init_tracing_with_default(level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), level);
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok() {
        registry.with(fmt.json().without_time()).try_init()
    } else {
        registry.with(fmt.with_writer(std::io::stderr)).try_init()
    };
}

/// The log filter from `RUST_LOG`'s value (`None`: unset), else `default` (a level).
fn log_filter(rust_log: Option<&str>, default: &str) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .or_else(|| default.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_directives_and_the_default_level() {
        use tracing::Level;
        let cases: [(Option<&str>, &str, &str, Option<Level>); 6] = [
            // RUST_LOG, default, target, most verbose level let through
            (None, "info", "calsync::engine", Some(Level::INFO)),
            (Some(""), "warn", "calsync", Some(Level::WARN)),
            (Some("debug"), "info", "hyper", Some(Level::DEBUG)),
            (
                Some("warn,calsync=debug"),
                "info",
                "calsync::engine::pull",
                Some(Level::DEBUG),
            ),
            (
                Some("warn,calsync=debug"),
                "info",
                "aws_smithy_runtime",
                Some(Level::WARN),
            ),
            (
                Some("calsync=nonsense"),
                "error",
                "calsync",
                Some(Level::ERROR),
            ),
        ];
        for (rust_log, default, target, want) in cases {
            let f = log_filter(rust_log, default);
            let got = [
                Level::TRACE,
                Level::DEBUG,
                Level::INFO,
                Level::WARN,
                Level::ERROR,
            ]
            .into_iter()
            .find(|l| f.would_enable(target, l));
            assert_eq!(
                got, want,
                "RUST_LOG={rust_log:?} default={default} target={target}"
            );
        }
    }

    #[test]
    fn a_later_pull_of_the_link_in_the_batch_covers_a_notification() {
        let job = |link: &str, push_seq: Option<i64>| SyncJob {
            push_seq,
            ..SyncJob::unique(
                link,
                if push_seq.is_some() {
                    "push"
                } else {
                    "schedule"
                },
            )
        };
        let (a1, a2, a3) = (job("a", Some(1)), job("a", Some(2)), job("a", None));
        let (b1, b0) = (job("b", Some(1)), job("b", None));
        use Direction::{Pull, Push};
        type Case<'a> = (&'a str, Vec<Option<&'a SyncJob>>, Direction, Vec<bool>);
        let cases: &[Case] = &[
            (
                "a burst: only the last runs",
                vec![Some(&a1), Some(&a2)],
                Pull,
                vec![true, false],
            ),
            (
                "any later pull of the link covers",
                vec![Some(&a1), Some(&a3)],
                Pull,
                vec![true, false],
            ),
            (
                "a scheduled pull is never skipped",
                vec![Some(&a3), Some(&a1)],
                Pull,
                vec![false, false],
            ),
            (
                "another link's pull does not cover",
                vec![Some(&a1), Some(&b0)],
                Pull,
                vec![false, false],
            ),
            (
                "interleaved links",
                vec![Some(&a1), Some(&b1), Some(&a2), Some(&b0)],
                Pull,
                vec![true, true, false, false],
            ),
            (
                "an unreadable message covers nothing",
                vec![Some(&a1), None],
                Pull,
                vec![false, false],
            ),
            (
                "pushes are never covered",
                vec![Some(&a1), Some(&a2)],
                Push,
                vec![false, false],
            ),
            (
                "a lone notification runs",
                vec![Some(&a1)],
                Pull,
                vec![false],
            ),
        ];
        for (name, jobs, dir, want) in cases {
            assert_eq!(&covered_in_batch(jobs, *dir), want, "{name}");
        }
    }

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
