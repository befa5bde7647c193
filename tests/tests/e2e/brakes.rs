//! Safety brakes that hold (issue 13, item 4): the deletion brake over a rolling 24 h
//! window, an override used once, no resurrection of a deleted event by a version tag
//! change, and a read-only feed that cannot touch another member's event. Needs the local
//! stack (`make test` starts it).

use calsync::handlers::{run_job, Direction};
use calsync::model::LinkStatus;
use calsync::queue::SyncJob;
use calsync_e2e::feed::FeedServer;
use calsync_e2e::fixtures::{self, pair, simple_event, sync_link, uid_counts};
use calsync_e2e::local_ctx;

fn seed(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| simple_event(&format!("{tag}-{i}"), &format!("Event {i}"), (i + 1) as u32))
        .collect()
}

async fn status(ctx: &calsync::config::Ctx, link: &str) -> calsync::model::Link {
    ctx.store().get_link(link).await.unwrap().unwrap()
}

#[tokio::test]
async fn deletions_that_drip_in_are_braked_and_an_override_is_used_once() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "drip", &seed("drip", 10)).await.unwrap();
    let delete = |range: std::ops::Range<usize>| {
        let (ctx, url) = (ctx.clone(), p.radicale.clone());
        async move {
            for i in range {
                fixtures::client_delete(&ctx, &url, &format!("drip-{i}"))
                    .await
                    .unwrap();
            }
        }
    };
    // Four of ten: under the brake's minimum of five, applied.
    delete(0..4).await;
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 6);
    // Four more in the next pull: eight of ten within 24 h, held back.
    delete(4..8).await;
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    let l = status(&ctx, &p.r.link_id).await;
    assert_eq!(l.status, LinkStatus::Quarantined, "{:?}", l.status_reason);
    assert!(
        l.status_reason.as_deref().unwrap_or("").contains("8 of 10"),
        "{:?}",
        l.status_reason
    );
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 6);
    // Let through once: applied, and the override is spent.
    let mut released = l.clone();
    released.allow_mass_delete = true;
    ctx.store().put_link(&released).await.unwrap();
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 2);
    let l = status(&ctx, &p.r.link_id).await;
    assert!(!l.allow_mass_delete, "the override is consumed");
    assert_eq!(l.status, LinkStatus::Ok);
    // The next deletion inside the window is held back again.
    delete(8..9).await;
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    assert_eq!(
        status(&ctx, &p.r.link_id).await.status,
        LinkStatus::Quarantined
    );
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_version_tag_change_does_not_bring_a_deleted_event_back() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "revive", &[simple_event("revive-1", "Gone", 4)])
        .await
        .unwrap();
    assert_eq!(uid_counts(&ctx, &p.xandikos).await.unwrap().len(), 1);
    // Deleted on Xandikos; its pull tombstones the hub event (the delete on Radicale is
    // queued, not yet run).
    fixtures::client_delete(&ctx, &p.xandikos, "revive-1")
        .await
        .unwrap();
    run_job(
        &ctx,
        &SyncJob::unique(&p.x.link_id, "manual"),
        Direction::Pull,
    )
    .await
    .unwrap();
    // Meanwhile the Radicale copy is rewritten without an edit (a server rewrite: new
    // DTSTAMP, new etag).
    fixtures::client_edit(&ctx, &p.radicale, "revive-1", |s| {
        s.replace("DTSTAMP:20260101T000000Z", "DTSTAMP:20261130T120000Z")
    })
    .await
    .unwrap();
    run_job(
        &ctx,
        &SyncJob::unique(&p.r.link_id, "manual"),
        Direction::Pull,
    )
    .await
    .unwrap();
    calsync_e2e::runner::drain(&ctx).await.unwrap();
    assert!(
        uid_counts(&ctx, &p.xandikos).await.unwrap().is_empty(),
        "not revived"
    );
    assert!(
        uid_counts(&ctx, &p.radicale).await.unwrap().is_empty(),
        "the deletion reached Radicale with the new etag"
    );
    let hub = ctx
        .store()
        .get_event(&p.group, "revive-1")
        .await
        .unwrap()
        .unwrap();
    assert!(hub.deleted);
}

#[tokio::test]
async fn a_feed_cannot_rewrite_or_delete_another_members_event() {
    let ctx = local_ctx().await;
    let p = pair(
        &ctx,
        "spoof",
        &[simple_event("spoof-meeting", "Board meeting", 5)],
    )
    .await
    .unwrap();
    let forged = simple_event("spoof-meeting", "Hijacked", 6);
    let own = simple_event("spoof-feed-1", "Feed event", 7);
    let body = |events: &[&str]| {
        let inner: String = events
            .iter()
            .map(|e| {
                let start = e.find("BEGIN:VEVENT").unwrap_or(0);
                let end = e.find("END:VCALENDAR").unwrap_or(e.len());
                e[start..end].to_string()
            })
            .collect();
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//feed//EN\r\n{inner}END:VCALENDAR\r\n")
    };
    let server = FeedServer::start(&body(&[&forged, &own]), true)
        .await
        .unwrap();
    let feed = fixtures::ics_link(&ctx, &p.group, p.user, &server.url, "feed")
        .await
        .unwrap();
    sync_link(&ctx, &feed.link_id).await.unwrap();
    let summaries = |url: String| {
        let ctx = ctx.clone();
        async move {
            let mut v: Vec<(String, String)> = fixtures::events_in(&ctx, &url)
                .await
                .unwrap()
                .into_iter()
                .map(|(_, s)| (s.uid.clone(), s.summary()))
                .collect();
            v.sort();
            v
        }
    };
    let want = vec![
        ("spoof-feed-1".to_string(), "Feed event".to_string()),
        ("spoof-meeting".to_string(), "Board meeting".to_string()),
    ];
    assert_eq!(
        summaries(p.radicale.clone()).await,
        want,
        "the feed's own event arrives, the meeting is untouched"
    );
    assert_eq!(summaries(p.xandikos.clone()).await, want);
    let m = ctx
        .store()
        .mappings_of_link(&feed.link_id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.uid == "spoof-meeting")
        .expect("recorded");
    assert!(m.foreign, "{m:?}");
    // The feed drops both: its own event goes, the meeting stays.
    server.set_body(&body(&[]));
    sync_link(&ctx, &feed.link_id).await.unwrap();
    let left = vec![("spoof-meeting".to_string(), "Board meeting".to_string())];
    assert_eq!(summaries(p.radicale.clone()).await, left);
    assert_eq!(summaries(p.xandikos.clone()).await, left);
}
