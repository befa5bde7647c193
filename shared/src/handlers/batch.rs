//! One SQS batch of sync jobs: the batch's FIFO message groups (one per link) run
//! [`GROUPS_IN_FLIGHT`] at a time, each group's messages in their order, so that a batch of
//! jobs for several links takes about as long as its slowest link, not the sum of them
//! (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html: a FIFO batch may
//! hold messages of several groups, in order within each).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures_util::StreamExt;

use super::{covered_in_batch, run_job_until, Direction, JobError, JOB_MIN_SECS};
use crate::config::Ctx;
use crate::queue::SyncJob;

/// Message groups of one batch worked on at once. Each job holds one link's page of events
/// (a few MB), so four stay well inside the functions' 256 MB.
pub const GROUPS_IN_FLIGHT: usize = 4;

/// The batch's message indices by FIFO group (`groups[i]` is message `i`'s group), the
/// groups in the order of their first message, each group's indices ascending.
pub fn by_group(groups: &[&str]) -> Vec<Vec<usize>> {
    let mut order: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        match order.iter_mut().find(|(name, _)| name == g) {
            Some((_, v)) => v.push(i),
            None => order.push((g, vec![i])),
        }
    }
    order.into_iter().map(|(_, v)| v).collect()
}

/// One message, ready to run.
struct Entry {
    index: usize,
    id: String,
    job: Result<SyncJob, JobError>,
    covered: bool,
}

/// Run the batch `records` (see [`super::handle_sqs_until`] for the rules) and answer the
/// messages to deliver again, in the batch's order.
pub(super) async fn run(
    ctx: &Ctx,
    records: Vec<SqsMessage>,
    dir: Direction,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    let min_left = deadline.map(|d| {
        let total = d.saturating_duration_since(std::time::Instant::now());
        std::time::Duration::from_secs(JOB_MIN_SECS).min(total / 2)
    });
    let jobs: Vec<Result<SyncJob, JobError>> = records
        .iter()
        .map(|msg| {
            serde_json::from_str(msg.body.as_deref().unwrap_or("")).map_err(|e| {
                JobError::BadMessage(msg.message_id.clone().unwrap_or_default(), e.to_string())
            })
        })
        .collect();
    let covered = covered_in_batch(
        &jobs.iter().map(|j| j.as_ref().ok()).collect::<Vec<_>>(),
        dir,
    );
    // The first job that runs always runs: it had the whole invocation.
    let first = covered.iter().position(|c| !c);
    let names: Vec<String> = records
        .iter()
        .map(|m| {
            m.attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let plan = by_group(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let mut entries: Vec<Option<Entry>> = records
        .into_iter()
        .zip(jobs)
        .zip(covered)
        .enumerate()
        .map(|(index, ((msg, job), covered))| {
            Some(Entry {
                index,
                id: msg.message_id.unwrap_or_default(),
                job,
                covered,
            })
        })
        .collect();
    let groups: Vec<Vec<Entry>> = plan
        .into_iter()
        .map(|idx| idx.into_iter().filter_map(|i| entries[i].take()).collect())
        .collect();
    let mut failed: Vec<(usize, String)> = futures_util::stream::iter(groups)
        .map(|group| run_group(ctx, group, dir, deadline, min_left, first))
        .buffer_unordered(GROUPS_IN_FLIGHT)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    failed.sort();
    let mut resp = SqsBatchResponse::default();
    for (_, id) in failed {
        resp.add_failure(id);
    }
    resp
}

/// One group's messages in order; a failed message fails the rest of its group, so their
/// order holds when SQS delivers them again. Answers the failed `(index, message id)`s.
async fn run_group(
    ctx: &Ctx,
    group: Vec<Entry>,
    dir: Direction,
    deadline: Option<std::time::Instant>,
    min_left: Option<std::time::Duration>,
    first: Option<usize>,
) -> Vec<(usize, String)> {
    let mut failed = Vec::new();
    let mut group_failed = false;
    for e in group {
        if group_failed {
            failed.push((e.index, e.id));
            continue;
        }
        if e.covered {
            // A later pull of the same link in this batch starts after this notification
            // was counted: it lists the change (the message succeeds without a run).
            tracing::info!(message = %e.id, "push notification covered by a later job of the batch");
            continue;
        }
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let short = matches!((left, min_left), (Some(l), Some(m)) if l <= m);
        if short && first != Some(e.index) {
            tracing::info!(message = %e.id, "too close to the deadline; left for redelivery");
            group_failed = true;
            failed.push((e.index, e.id));
            continue;
        }
        let result = match e.job {
            Ok(job) => run_job_until(ctx, &job, dir, deadline).await.map(|_| ()),
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {}
            // Nothing will ever make these succeed: drop them instead of cycling to the DLQ.
            Err(err @ (JobError::UnknownLink(_) | JobError::BadMessage(..))) => {
                tracing::error!(error = %err, "dropping message");
            }
            Err(err) => {
                tracing::warn!(error = %err, "job failed; will be retried");
                group_failed = true;
                failed.push((e.index, e.id));
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::by_group;

    #[test]
    fn a_batch_splits_into_its_groups_in_order() {
        let table: &[(&[&str], &[&[usize]])] = &[
            (&[], &[]),
            (&["a"], &[&[0]]),
            (&["a", "b", "a"], &[&[0, 2], &[1]]),
            (&["b", "a", "b", "c", "a"], &[&[0, 2], &[1, 4], &[3]]),
            (&["", "", "x"], &[&[0, 1], &[2]]),
        ];
        for (groups, want) in table {
            let got = by_group(groups);
            let want: Vec<Vec<usize>> = want.iter().map(|g| g.to_vec()).collect();
            assert_eq!(got, want, "{groups:?}");
        }
    }
}
