//! Table tests of [`super::link_update`] and [`super::covered_by_full_push`].

use super::*;
use crate::handlers::CONTINUE;

fn pull(quarantined: bool) -> Option<Completed> {
    Some(Completed::Pull {
        quarantined,
        in_sync_at: None,
    })
}

fn run(outcome: &str) -> RunRecord {
    RunRecord {
        outcome: outcome.into(),
        ..Default::default()
    }
}

/// (link, status, reason, outcome, done) and the update they make.
type Case<'a> = (
    &'a Link,
    LinkStatus,
    Option<&'a str>,
    &'a str,
    Option<Completed>,
    LinkRunUpdate,
);

#[test]
fn a_run_writes_only_what_changed_on_its_link() {
    let mut healthy = Link::new("l", "g", 1, crate::model::ProviderKind::Caldav, "u");
    healthy.frequency_secs = 900;
    healthy.push_seq = 7;
    let mut failing = healthy.clone();
    failing.status = LinkStatus::Error;
    failing.status_reason = Some("503".into());
    failing.consecutive_failures = 2;
    let mut released = healthy.clone();
    released.allow_mass_delete = true;
    // Queued by the schedule's tick, which moved its due time; no notification since its
    // last pull.
    let mut scheduled = healthy.clone();
    scheduled.next_sync_at = 1_600;
    scheduled.covered_push_seq = 7;
    let mut notified = scheduled.clone();
    notified.covered_push_seq = 6;
    let mut unindexed = scheduled.clone();
    unindexed.due_shard = None;
    let ok = LinkStatus::Ok;
    // (link, status, reason, outcome, done) → the update.
    let cases: Vec<Case> = vec![
        // A quiet pull of a healthy link: only the next due time.
        (
            &healthy,
            ok,
            None,
            "ok",
            pull(false),
            LinkRunUpdate {
                next_sync: Some((1_900, 7)),
                ..Default::default()
            },
        ),
        // A push of a healthy link that stopped at its deadline: nothing at all.
        (&healthy, ok, None, "ok", None, LinkRunUpdate::default()),
        // A complete push: its watermark only.
        (
            &healthy,
            ok,
            None,
            "ok",
            Some(Completed::Push {
                read_ms: 5,
                full_seq: None,
            }),
            LinkRunUpdate {
                pushed_through_ms: Some(5),
                ..Default::default()
            },
        ),
        // A complete push that read the whole group: its count too.
        (
            &healthy,
            ok,
            None,
            "ok",
            Some(Completed::Push {
                read_ms: 5,
                full_seq: Some(3),
            }),
            LinkRunUpdate {
                pushed_through_ms: Some(5),
                full_pushed_seq: Some(3),
                ..Default::default()
            },
        ),
        // Recovery: status, reason and streak.
        (
            &failing,
            ok,
            None,
            "ok",
            pull(false),
            LinkRunUpdate {
                status: Some((ok, None)),
                consecutive_failures: Some(0),
                next_sync: Some((1_900, 7)),
                ..Default::default()
            },
        ),
        // The same failure again: the streak only.
        (
            &failing,
            LinkStatus::Error,
            Some("503"),
            "failed",
            None,
            LinkRunUpdate {
                consecutive_failures: Some(3),
                ..Default::default()
            },
        ),
        // A full pull that found nothing owed: the push watermark too.
        (
            &healthy,
            ok,
            None,
            "ok",
            Some(Completed::Pull {
                quarantined: false,
                in_sync_at: Some(9),
            }),
            LinkRunUpdate {
                next_sync: Some((1_900, 7)),
                pushed_through_ms: Some(9),
                ..Default::default()
            },
        ),
        // A released mass deletion went through; a quarantined pull keeps the release.
        (
            &released,
            ok,
            None,
            "ok",
            pull(false),
            LinkRunUpdate {
                next_sync: Some((1_900, 7)),
                mass_delete_used: true,
                ..Default::default()
            },
        ),
        (
            &released,
            LinkStatus::Quarantined,
            Some("brake"),
            "quarantined",
            pull(true),
            LinkRunUpdate {
                status: Some((LinkStatus::Quarantined, Some("brake".into()))),
                next_sync: Some((1_900, 7)),
                ..Default::default()
            },
        ),
        // A quiet scheduled pull: no news, no write at all.
        (
            &scheduled,
            ok,
            None,
            "ok",
            pull(false),
            LinkRunUpdate::default(),
        ),
        // A notification arrived since the last pull: the pull covers it, and the next
        // poll waits a whole interval.
        (
            &notified,
            ok,
            None,
            "ok",
            pull(false),
            LinkRunUpdate {
                next_sync: Some((1_900, 7)),
                ..Default::default()
            },
        ),
        // A link written before the due index gets its shard with the write.
        (
            &unindexed,
            ok,
            None,
            "ok",
            pull(false),
            LinkRunUpdate {
                next_sync: Some((1_900, 7)),
                ..Default::default()
            },
        ),
        // A quiet scheduled pull that failed: its streak only.
        (
            &scheduled,
            LinkStatus::Error,
            Some("503"),
            "failed",
            None,
            LinkRunUpdate {
                status: Some((LinkStatus::Error, Some("503".into()))),
                consecutive_failures: Some(1),
                ..Default::default()
            },
        ),
    ];
    for (i, (link, status, reason, outcome, pulled, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            link_update(link, status, reason, &run(outcome), pulled, 1_000),
            want,
            "case {i}"
        );
    }
}

#[test]
fn a_pulls_push_is_skipped_only_after_a_full_push_begun_after_the_pull_completed() {
    let mut link = Link::new("l", "g", 1, crate::model::ProviderKind::Caldav, "u");
    link.full_pushed_seq = 4;
    // (trigger, the pull's count, covered)
    let cases = [
        (CATCH_UP, Some(3), true),
        (CATCH_UP, Some(4), false), // that push began before the pull's writes were done
        (CATCH_UP, Some(5), false),
        (CATCH_UP, None, false), // a moved window, or a job from before the count
        // A long pull's own sync-back, after its early ones (handlers::job).
        (SYNC_BACK, Some(3), true),
        (SYNC_BACK, Some(4), false),
        (SYNC_BACK, None, false), // any other sync-back: its changes may be newer
        (CONTINUE, Some(3), false),
        ("manual", Some(3), false),
    ];
    for (trigger, after, covered) in cases {
        let mut job = SyncJob::coalesced("l", trigger, "r");
        job.after_full_push = after;
        assert_eq!(
            covered_by_full_push(&job, &link),
            covered,
            "{trigger} after {after:?}"
        );
    }
}
