//! A job's bookkeeping decisions, pure and table-tested: what a run changes on its link
//! ([`link_update`]) and whether a push queued by a pull is already covered
//! ([`covered_by_full_push`]).

use crate::model::{Link, LinkStatus, RunRecord};
use crate::queue::SyncJob;
use crate::store::LinkRunUpdate;

use super::{CATCH_UP, SYNC_BACK};

/// Whether push `job`, queued by a pull that had written everything it carries (a
/// catch-up, or a long pull's own sync-back after its early ones), is covered by a complete
/// full push of `link` begun after that pull ([`SyncJob::after_full_push`]): that push read
/// the whole group after every change the job carries was in it.
pub fn covered_by_full_push(job: &SyncJob, link: &Link) -> bool {
    [CATCH_UP, SYNC_BACK].contains(&job.trigger.as_str())
        && job
            .after_full_push
            .is_some_and(|seq| link.full_pushed_seq > seq)
}

/// A run that completed, as its link's bookkeeping needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// A pull; `quarantined`: the deletion brake held its deletions back.
    Pull {
        /// The brake fired.
        quarantined: bool,
        /// It read the whole group then and found nothing owed to the link: its push
        /// watermark ([`crate::engine::PullOutcome::in_sync_at`]).
        in_sync_at: Option<i64>,
    },
    /// A push that wrote everything it planned; `read_ms` is its watermark
    /// ([`Link::pushed_through_ms`]).
    Push {
        /// When it began reading the hub (epoch ms).
        read_ms: i64,
        /// It read the whole group as this full push ([`Link::full_push_seq`]).
        full_seq: Option<i64>,
    },
}

/// What a run changes on its link (`now`: epoch seconds): the status when it differs, the
/// failure streak when it moved (a failed run adds one, any other ends it), after a
/// completed pull the next due time with the push notifications it covers and, when a
/// released mass deletion went through, the release used up; after a complete push its
/// watermark.
///
/// A completed pull leaves the due time alone when it carries no news: the link is not due
/// (the schedule's tick moved `next_sync_at` when it queued the job, or the pull came
/// early), no notification arrived since the last pull ([`Link::covered_push_seq`]), and
/// the link is in the due index. So a quiet scheduled sync does not write its link at all:
/// each write of the link item also writes every index it is in (`docs/performance.md`,
/// "Cost per 1,000 links per month").
pub fn link_update(
    link: &Link,
    status: LinkStatus,
    reason: Option<&str>,
    run: &RunRecord,
    done: Option<Completed>,
    now: i64,
) -> LinkRunUpdate {
    let pulled = match done {
        Some(Completed::Pull { quarantined, .. }) => Some(quarantined),
        _ => None,
    };
    let failures = if run.outcome == "failed" {
        link.consecutive_failures + 1
    } else {
        0
    };
    LinkRunUpdate {
        status: (link.status != status || link.status_reason.as_deref() != reason)
            .then(|| (status, reason.map(str::to_string))),
        consecutive_failures: (failures != link.consecutive_failures).then_some(failures),
        next_sync: pulled
            .filter(|_| {
                link.next_sync_at <= now
                    || link.push_seq != link.covered_push_seq
                    || link.due_shard.is_none()
            })
            .map(|_| (now + link.frequency_secs.max(60), link.push_seq)),
        mass_delete_used: link.allow_mass_delete && pulled == Some(false),
        pushed_through_ms: match done {
            Some(Completed::Push { read_ms, .. }) => Some(read_ms),
            Some(Completed::Pull { in_sync_at, .. }) => in_sync_at,
            None => None,
        },
        full_pushed_seq: match done {
            Some(Completed::Push { full_seq, .. }) => full_seq,
            _ => None,
        },
    }
}

#[cfg(test)]
#[path = "bookkeeping_tests.rs"]
mod tests;
