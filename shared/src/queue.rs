//! Sync jobs on the FIFO queues. `MessageGroupId` = link id gives one worker per calendar at
//! a time; the deduplication id coalesces repeated triggers within SQS's 5-minute window.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Body of a message on `sync-jobs` (pull) or `sync-back` (push).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// The link to sync.
    pub link_id: String,
    /// What caused it: `schedule`, `autosync`, `push`, `sync-back`, `retry`, `continue`,
    /// `manual`.
    pub trigger: String,
    /// Deduplication id; jobs with the same id within 5 minutes are delivered once.
    pub dedup: String,
    /// For jobs queued by a push notification: the link's `push_seq` after counting it. A
    /// pull that started later covers it ([`crate::model::Link::covered_push_seq`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_seq: Option<i64>,
    /// AutoSync's `silentNotification: 1`: the run sends the application no notification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
    /// For a catch-up push: the link's [`crate::model::Link::full_push_seq`] once the pull
    /// that queued it had written everything. A full push begun after that which completed
    /// (a greater [`crate::model::Link::full_pushed_seq`]) read every write owed then, and
    /// the catch-up is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_full_push: Option<i64>,
    /// For a continuation of a push that read the whole group: where the run before it
    /// stopped, and when the chain began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<PushResume>,
}

/// Where a continuation of a full push picks up ([`SyncJob::resume`]). The chain of runs
/// reads the group's hub events once, in UID order: each continuation from the page the run
/// before it stopped in, not from the first. As the chain's earlier runs read the lower UIDs
/// before the later ones began, the chain completes as of its first run: the link's
/// watermark becomes `read_ms` and its completed full push `full_seq`
/// ([`crate::handlers::bookkeeping::Completed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResume {
    /// Hub events with a UID after this one are still to be read (`None`: from the first).
    pub after: Option<String>,
    /// When the chain's first run began reading the hub (epoch ms).
    pub read_ms: i64,
    /// The chain's [`crate::model::Link::full_push_seq`], counted by its first run.
    pub full_seq: i64,
}

impl SyncJob {
    /// A job that is never coalesced with another (unique deduplication id).
    pub fn unique(link_id: &str, trigger: &str) -> Self {
        Self {
            link_id: link_id.into(),
            trigger: trigger.into(),
            dedup: format!("{link_id}:{trigger}:{}", uuid::Uuid::now_v7().simple()),
            push_seq: None,
            silent: false,
            after_full_push: None,
            resume: None,
        }
    }

    /// A job coalesced with others of the same link, trigger and `slot` (e.g. schedule minute).
    pub fn coalesced(link_id: &str, trigger: &str, slot: &str) -> Self {
        Self {
            link_id: link_id.into(),
            trigger: trigger.into(),
            dedup: format!("{link_id}:{trigger}:{slot}"),
            push_seq: None,
            silent: false,
            after_full_push: None,
            resume: None,
        }
    }

    /// This job, with notifications suppressed when `silent`.
    pub fn silenced(mut self, silent: bool) -> Self {
        self.silent = silent;
        self
    }

    /// This catch-up, skipped once a full push counted after `seq` completes
    /// ([`SyncJob::after_full_push`]).
    pub fn after_full_push(mut self, seq: i64) -> Self {
        self.after_full_push = Some(seq);
        self
    }

    /// This continuation, picking up at `resume` (`None`: from the start).
    pub fn resuming(mut self, resume: Option<PushResume>) -> Self {
        self.resume = resume;
        self
    }

    /// This job, marked as caused by the push notification counted as `seq`.
    pub fn with_push_seq(mut self, seq: i64) -> Self {
        self.push_seq = Some(seq);
        self
    }
}

/// Which queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Pull jobs for the sync-worker.
    SyncJobs,
    /// Push jobs for sync-back.
    SyncBack,
}

/// Queue URLs by queue name, resolved once per process (GetQueueUrl).
pub type QueueUrls = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>;

/// The two job queues, resolved by name (GetQueueUrl) on first use and cached in `urls`
/// (the process's [`crate::config::Clients::queue_urls`]).
#[derive(Clone)]
pub struct Queues {
    sqs: Client,
    cfg: Config,
    urls: QueueUrls,
}

impl Queues {
    /// Queues named in `cfg`, their URLs cached in `urls`.
    pub fn new(sqs: Client, cfg: Config, urls: QueueUrls) -> Self {
        Self { sqs, cfg, urls }
    }

    /// The queue URL (GetQueueUrl by name, cached).
    pub async fn url(&self, kind: QueueKind) -> anyhow::Result<String> {
        let name = match kind {
            QueueKind::SyncJobs => &self.cfg.sync_jobs_queue,
            QueueKind::SyncBack => &self.cfg.sync_back_queue,
        };
        if let Some(u) = self.urls.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(u);
        }
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "GetQueueUrl {name}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        let url = out
            .queue_url
            .ok_or_else(|| anyhow::anyhow!("GetQueueUrl {name}: no URL"))?;
        if let Ok(mut m) = self.urls.lock() {
            m.insert(name.clone(), url.clone());
        }
        Ok(url)
    }

    /// Send jobs in SendMessageBatch calls of 10, [`SENDS_IN_FLIGHT`] calls at a time;
    /// returns the number of batch calls made.
    ///
    /// Errors when any entry fails, naming the link ids that were not queued (the other
    /// batches are still sent).
    pub async fn send(&self, kind: QueueKind, jobs: &[SyncJob]) -> anyhow::Result<usize> {
        use futures_util::stream::{self, StreamExt};
        use futures_util::FutureExt;
        let url = self.url(kind).await?;
        let batches: Vec<_> = jobs
            .chunks(10)
            .map(|chunk| self.send_batch(&url, chunk).boxed())
            .collect();
        let results: Vec<anyhow::Result<()>> = stream::iter(batches)
            .buffer_unordered(SENDS_IN_FLIGHT)
            .collect()
            .await;
        let calls = results.len();
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(Result::err)
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            anyhow::bail!("{}", errors.join("; "));
        }
        Ok(calls)
    }

    /// One SendMessageBatch of at most 10 jobs.
    async fn send_batch(&self, url: &str, chunk: &[SyncJob]) -> anyhow::Result<()> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, j)| {
                anyhow::Ok(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(j)?)
                        .message_group_id(&j.link_id)
                        .message_deduplication_id(dedup_id(&j.dedup))
                        .build()?,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = self
            .sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "SendMessageBatch: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        if !out.failed.is_empty() {
            let failed: Vec<String> = out
                .failed
                .iter()
                .filter_map(|f| f.id.parse::<usize>().ok())
                .filter_map(|i| chunk.get(i).map(|j| j.link_id.clone()))
                .collect();
            anyhow::bail!("SendMessageBatch: jobs for links {failed:?} not queued");
        }
        Ok(())
    }
}

/// SendMessageBatch calls in flight at once ([`Queues::send`]): a tick of a million links
/// at 15-minute frequencies queues about 33,000 batches (`docs/performance.md`).
pub const SENDS_IN_FLIGHT: usize = 8;

/// SQS deduplication ids are at most 128 characters of `[A-Za-z0-9!-/:-@[-`{-~]`; longer ids
/// are replaced by their SHA-256.
fn dedup_id(raw: &str) -> String {
    if raw.len() <= 128 && raw.chars().all(|c| c.is_ascii_graphic()) {
        raw.to_string()
    } else {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(raw.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_ids_fit_sqs_rules() {
        assert_eq!(dedup_id("l1:schedule:5"), "l1:schedule:5");
        let long = "x".repeat(200);
        assert_eq!(dedup_id(&long).len(), 64);
        assert_eq!(dedup_id("a b").len(), 64);
    }

    #[test]
    fn unique_jobs_do_not_coalesce() {
        assert_ne!(
            SyncJob::unique("l", "t").dedup,
            SyncJob::unique("l", "t").dedup
        );
        assert_eq!(
            SyncJob::coalesced("l", "t", "1").dedup,
            SyncJob::coalesced("l", "t", "1").dedup
        );
    }
}
