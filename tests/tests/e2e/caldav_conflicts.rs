//! Concurrent edits between Radicale and Xandikos through the Lambda handlers: each
//! conflict policy (merge, prefer hub, prefer remote, manual) and an edit beating a
//! concurrent delete. Needs the local stack (`make test` starts it).

use calsync::model::{ConflictPolicy, EventStatus};
use calsync_e2e::demo::totals;
use calsync_e2e::fixtures::{self, client_edit, pair, simple_event, sync_link};
use calsync_e2e::local_ctx;

use super::caldav_sync::seed;

async fn concurrent_edit(policy: ConflictPolicy) -> (String, String, calsync_e2e::fixtures::Pair) {
    let ctx = local_ctx().await;
    let tag = format!("conflict-{policy:?}").to_lowercase();
    let uid = format!("{tag}-ev");
    let p = pair(&ctx, &tag, &[simple_event(&uid, "Original", 5)])
        .await
        .unwrap();
    for link in [&p.r, &p.x] {
        let mut l = link.clone();
        l.conflict_policy = policy;
        ctx.store().put_link(&l).await.unwrap();
    }
    // Both sides edit SUMMARY; Radicale also edits LOCATION, Xandikos adds a DESCRIPTION.
    client_edit(&ctx, &p.radicale, &uid, |t| {
        t.replace("SUMMARY:Original", "SUMMARY:Radicale title")
            .replace("LOCATION:Room 1", "LOCATION:Room R")
            .replace(
                "LAST-MODIFIED:20260101T000000Z",
                "LAST-MODIFIED:20260301T000000Z",
            )
    })
    .await
    .unwrap();
    client_edit(&ctx, &p.xandikos, &uid, |t| {
        t.replace(
            "SUMMARY:Original",
            "SUMMARY:Xandikos title\r\nDESCRIPTION:Notes from Xandikos",
        )
        .replace(
            "LAST-MODIFIED:20260101T000000Z",
            "LAST-MODIFIED:20260401T000000Z",
        )
    })
    .await
    .unwrap();
    // Radicale's pull reaches the hub first; the push to Xandikos meets its edit (412), and
    // Xandikos' pull merges under its link's policy.
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    sync_link(&ctx, &p.x.link_id).await.unwrap();
    (tag, uid, p)
}

async fn field(ctx: &calsync::config::Ctx, url: &str, uid: &str, prop: &str) -> Option<String> {
    let events = fixtures::events_in(ctx, url).await.unwrap();
    events
        .into_iter()
        .find(|(_, s)| s.uid == uid)
        .and_then(|(_, s)| s.text(prop))
}

#[tokio::test]
async fn concurrent_edits_follow_the_merge_policy() {
    let ctx = local_ctx().await;
    let (_, uid, p) = concurrent_edit(ConflictPolicy::Merge).await;
    for url in [&p.radicale, &p.xandikos] {
        assert_eq!(
            field(&ctx, url, &uid, "SUMMARY").await.as_deref(),
            Some("Xandikos title"),
            "newest wins"
        );
        assert_eq!(
            field(&ctx, url, &uid, "LOCATION").await.as_deref(),
            Some("Room R"),
            "Radicale's field kept"
        );
        assert_eq!(
            field(&ctx, url, &uid, "DESCRIPTION").await.as_deref(),
            Some("Notes from Xandikos")
        );
    }
    assert!(
        totals(&ctx, &p.x.link_id).await.unwrap().conflicts >= 1,
        "the conflict is recorded"
    );
}

#[tokio::test]
async fn concurrent_edits_follow_prefer_hub() {
    let ctx = local_ctx().await;
    let (_, uid, p) = concurrent_edit(ConflictPolicy::PreferHub).await;
    for url in [&p.radicale, &p.xandikos] {
        assert_eq!(
            field(&ctx, url, &uid, "SUMMARY").await.as_deref(),
            Some("Radicale title")
        );
        assert_eq!(
            field(&ctx, url, &uid, "LOCATION").await.as_deref(),
            Some("Room R")
        );
        assert_eq!(
            field(&ctx, url, &uid, "DESCRIPTION").await.as_deref(),
            Some("Notes from Xandikos")
        );
    }
}

#[tokio::test]
async fn concurrent_edits_follow_prefer_remote() {
    let ctx = local_ctx().await;
    let (_, uid, p) = concurrent_edit(ConflictPolicy::PreferRemote).await;
    for url in [&p.radicale, &p.xandikos] {
        assert_eq!(
            field(&ctx, url, &uid, "SUMMARY").await.as_deref(),
            Some("Xandikos title")
        );
        assert_eq!(
            field(&ctx, url, &uid, "LOCATION").await.as_deref(),
            Some("Room R")
        );
    }
}

#[tokio::test]
async fn concurrent_edits_under_manual_policy_keep_both_and_mark_conflict() {
    let ctx = local_ctx().await;
    let (_, uid, p) = concurrent_edit(ConflictPolicy::Manual).await;
    assert_eq!(
        field(&ctx, &p.radicale, &uid, "SUMMARY").await.as_deref(),
        Some("Radicale title")
    );
    assert_eq!(
        field(&ctx, &p.xandikos, &uid, "SUMMARY").await.as_deref(),
        Some("Xandikos title")
    );
    let maps = ctx.store().mappings_of_link(&p.x.link_id).await.unwrap();
    let m = maps.iter().find(|m| m.uid == uid).unwrap();
    assert_eq!(m.status, EventStatus::Conflict);
    assert!(m
        .conflict_remote
        .as_deref()
        .unwrap()
        .contains("Xandikos title"));
    assert!(
        m.error.as_deref().unwrap().contains("SUMMARY"),
        "{:?}",
        m.error
    );
    // Another round changes nothing: the conflict waits for a person.
    let before = totals(&ctx, &p.x.link_id).await.unwrap();
    fixtures::sync_user(&ctx, p.user).await.unwrap();
    let after = totals(&ctx, &p.x.link_id).await.unwrap();
    assert_eq!(
        (after.created, after.updated, after.deleted),
        (before.created, before.updated, before.deleted)
    );
    assert_eq!(
        field(&ctx, &p.xandikos, &uid, "SUMMARY").await.as_deref(),
        Some("Xandikos title")
    );
}

#[tokio::test]
async fn an_edit_beats_a_concurrent_delete() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "editdel", &seed("editdel", 2)).await.unwrap();
    // Radicale renames the event while Xandikos deletes it.
    client_edit(&ctx, &p.radicale, "editdel-0", |t| {
        t.replace("SUMMARY:Event 0", "SUMMARY:Kept by the edit")
    })
    .await
    .unwrap();
    fixtures::client_delete(&ctx, &p.xandikos, "editdel-0")
        .await
        .unwrap();
    sync_link(&ctx, &p.r.link_id).await.unwrap();
    sync_link(&ctx, &p.x.link_id).await.unwrap();
    for url in [&p.radicale, &p.xandikos] {
        let events = fixtures::events_in(&ctx, url).await.unwrap();
        let e = events
            .iter()
            .find(|(_, s)| s.uid == "editdel-0")
            .map(|(_, s)| s.summary());
        assert_eq!(e.as_deref(), Some("Kept by the edit"), "{url}");
    }
}
