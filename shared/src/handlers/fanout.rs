//! The schedule's tick: queue a sync job for every link that is due, reading the due links
//! only. Each shard of the links table's `due-index` is read page by page
//! ([`Store::due_page`]); a page's jobs are sent (SendMessageBatch, several in flight) and its
//! links' `next_sync_at` moved forward before the next page is read, so the tick's reads
//! are proportional to the due links, its memory to one page per shard in flight, and its
//! time to the due links divided by what is in flight (`docs/performance.md`, "The schedule
//! at a million links").

use futures_util::stream::{self, StreamExt};
use futures_util::FutureExt;

use crate::config::Ctx;
use crate::model::Link;
use crate::queue::{QueueKind, SyncJob};
use crate::store::{DueCursor, Store};

/// Shards of the `due-index` read at once.
pub const SHARDS_IN_FLIGHT: usize = 4;
/// `next_sync_at` updates in flight at once for one page.
pub const UPDATES_IN_FLIGHT: usize = 8;
/// The trigger of a schedule's jobs.
pub const SCHEDULE: &str = "schedule";

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Links read as due (the items the tick read).
    pub due: usize,
    /// Jobs queued.
    pub queued: usize,
    /// Due links left alone: they wait for their user to reconnect.
    pub waiting_reconnect: usize,
    /// Pages of the `due-index` read (one Query each).
    pub pages: usize,
    /// What failed, one line per shard page or link (reading a shard, sending a page's jobs,
    /// moving a link's `next_sync_at`); the rest of the tick went on.
    pub failed: Vec<String>,
}

impl TickReport {
    fn add(&mut self, other: TickReport) {
        self.due += other.due;
        self.queued += other.queued;
        self.waiting_reconnect += other.waiting_reconnect;
        self.pages += other.pages;
        self.failed.extend(other.failed);
    }
}

/// Which of a page's due links get a job: every one that syncs ([`crate::model::LinkStatus::syncs`]):
/// not those waiting for their user to reconnect (they are not retried until the user
/// does), nor those whose copies are being removed.
pub fn to_queue(links: &[Link]) -> Vec<&Link> {
    links.iter().filter(|l| l.status.syncs()).collect()
}

/// When a queued link is next due: `frequency_secs` after `now` (epoch seconds), at least a
/// minute, so that the next tick does not queue it again while its job waits in the queue.
pub fn next_due(link: &Link, now: i64) -> i64 {
    now + link.frequency_secs.max(60)
}

/// Queue every link due at `now` (epoch seconds, UTC), coalesced per schedule minute (a
/// second tick in the same minute queues nothing twice: the FIFO queue drops the repeated
/// deduplication id).
///
/// A failure in one shard or page is reported in [`TickReport::failed`]; the links of a page
/// whose jobs could not be sent keep their due time, so the next tick queues them.
pub async fn tick(ctx: &Ctx, now: i64) -> TickReport {
    let store = ctx.store();
    let slot = (now / 60).to_string();
    let shards: Vec<_> = (0..Link::DUE_SHARDS)
        .map(|shard| shard_tick(ctx, &store, shard, now, &slot).boxed())
        .collect();
    let reports: Vec<TickReport> = stream::iter(shards)
        .buffer_unordered(SHARDS_IN_FLIGHT)
        .collect()
        .await;
    let mut total = TickReport::default();
    for r in reports {
        total.add(r);
    }
    total
}

/// One shard of [`tick`], page by page.
async fn shard_tick(ctx: &Ctx, store: &Store, shard: u8, now: i64, slot: &str) -> TickReport {
    let mut report = TickReport::default();
    let mut start: Option<DueCursor> = None;
    loop {
        let (links, next) = match store.due_page(shard, now, start.take()).await {
            Ok(page) => page,
            Err(e) => {
                report.failed.push(format!("due-index shard {shard}: {e}"));
                return report;
            }
        };
        report.pages += 1;
        report.due += links.len();
        let queue = to_queue(&links);
        report.waiting_reconnect += links.len() - queue.len();
        let jobs: Vec<SyncJob> = queue
            .iter()
            .map(|l| SyncJob::coalesced(&l.link_id, SCHEDULE, slot))
            .collect();
        match ctx.queues().send(QueueKind::SyncJobs, &jobs).await {
            Ok(_) => {
                report.queued += jobs.len();
                let updates: Vec<_> = queue
                    .into_iter()
                    .map(|l| {
                        async move {
                            store
                                .set_next_sync(&l.link_id, next_due(l, now), None)
                                .await
                                .err()
                                .map(|e| format!("link {}: next_sync_at: {e}", l.link_id))
                        }
                        .boxed()
                    })
                    .collect();
                let failed: Vec<String> = stream::iter(updates)
                    .buffer_unordered(UPDATES_IN_FLIGHT)
                    .filter_map(|e| async move { e })
                    .collect()
                    .await;
                report.failed.extend(failed);
            }
            Err(e) => report
                .failed
                .push(format!("due-index shard {shard}: jobs not queued: {e}")),
        }
        match next {
            Some(c) => start = Some(c),
            None => return report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LinkStatus, ProviderKind};

    fn link(id: &str, freq: i64, status: LinkStatus) -> Link {
        let mut l = Link::new(id, "g", 1, ProviderKind::Caldav, "https://dav.example/c/");
        l.frequency_secs = freq;
        l.status = status;
        l
    }

    #[test]
    fn which_due_links_get_a_job_and_when_they_are_next_due() {
        // (frequency, status, queued, next due after now=1000)
        let table = [
            (900, LinkStatus::Ok, true, 1900),
            (3600, LinkStatus::Error, true, 4600),
            (86_400, LinkStatus::Quarantined, true, 87_400),
            (10, LinkStatus::Ok, true, 1060),
            (0, LinkStatus::Ok, true, 1060),
            (900, LinkStatus::ReconnectNeeded, false, 1900),
            (900, LinkStatus::Removing, false, 1900),
        ];
        for (i, (freq, status, queued, due)) in table.into_iter().enumerate() {
            let l = link(&format!("l{i}"), freq, status);
            assert_eq!(
                to_queue(std::slice::from_ref(&l)).len() == 1,
                queued,
                "row {i}: {status:?}"
            );
            assert_eq!(next_due(&l, 1000), due, "row {i}");
        }
    }
}
