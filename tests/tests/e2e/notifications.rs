//! Notifications to the application (EventBridge bus → the local queue): each kind emitted
//! once with the user, group, link, event and a readable reason, no secret in it; none for
//! runs AutoSync started with `silentNotification: 1`.

use calsync::model::ConflictPolicy;
use calsync_e2e::feed::FeedServer;
use calsync_e2e::fixtures::{self, client_edit, pair, simple_event, unique, PASSWORD};
use calsync_e2e::notifications::{of_group, Delivered};
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

fn kinds(ds: &[Delivered]) -> Vec<&str> {
    ds.iter().map(|d| d.detail_type.as_str()).collect()
}

fn no_secret(ds: &[Delivered]) {
    for d in ds {
        assert!(!d.raw.contains(PASSWORD), "a password in {}", d.raw);
        assert!(d.detail["reason"].is_string(), "{}", d.raw);
    }
}

#[tokio::test]
async fn conflict_quarantine_and_reconnect_are_each_notified_once() {
    let ctx = local_ctx().await;
    let seed: Vec<String> = (0..6)
        .map(|i| simple_event(&format!("nt-{i}"), &format!("E{i}"), i + 1))
        .collect();
    let p = pair(&ctx, "notes", &seed).await.unwrap();
    let _ = of_group(&ctx, &p.group).await.unwrap();
    // A manual conflict: the same field changed on both members before a sync.
    let store = ctx.store();
    let mut r = store.get_link(&p.r.link_id).await.unwrap().unwrap();
    r.conflict_policy = ConflictPolicy::Manual;
    store.put_link(&r).await.unwrap();
    let mut x = store.get_link(&p.x.link_id).await.unwrap().unwrap();
    x.conflict_policy = ConflictPolicy::Manual;
    store.put_link(&x).await.unwrap();
    client_edit(&ctx, &p.xandikos, "nt-0", |i| {
        i.replace("SUMMARY:E0", "SUMMARY:On X")
    })
    .await
    .unwrap();
    fixtures::sync_link(&ctx, &p.x.link_id).await.unwrap();
    client_edit(&ctx, &p.radicale, "nt-0", |i| {
        i.replace("SUMMARY:On X", "SUMMARY:On R")
            .replace("SUMMARY:E0", "SUMMARY:On R")
    })
    .await
    .unwrap();
    client_edit(&ctx, &p.xandikos, "nt-0", |i| {
        i.replace("SUMMARY:On X", "SUMMARY:On X again")
    })
    .await
    .unwrap();
    fixtures::sync_link(&ctx, &p.x.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &p.r.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &p.r.link_id).await.unwrap();
    let got = of_group(&ctx, &p.group).await.unwrap();
    assert_eq!(kinds(&got), ["Event Conflict"], "{got:#?}");
    let d = &got[0].detail;
    assert_eq!(
        (d["event_id"].as_str(), d["user_id"].as_i64()),
        (Some("nt-0"), Some(p.user))
    );
    assert!(d["resolve"]["path"]
        .as_str()
        .unwrap()
        .ends_with("/conflicts/nt-0:resolve"));
    no_secret(&got);

    // A mass deletion on Radicale: quarantined, notified once however often it syncs.
    for i in 1..6 {
        fixtures::client_delete(&ctx, &p.radicale, &format!("nt-{i}"))
            .await
            .unwrap();
    }
    fixtures::sync_link(&ctx, &p.r.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &p.r.link_id).await.unwrap();
    let got = of_group(&ctx, &p.group).await.unwrap();
    assert_eq!(kinds(&got), ["Link Quarantined"], "{got:#?}");
    assert_eq!(got[0].detail["link_id"], p.r.link_id.as_str());
    assert!(got[0].detail["reason"]
        .as_str()
        .unwrap()
        .contains("deletion brake"));
    no_secret(&got);

    // The Xandikos member's credentials stop working (Radicale checks them): reconnect.
    let radicale_only = unique("rc");
    let url = fixtures::new_calendar(&ctx, fixtures::Server::Radicale, &radicale_only)
        .await
        .unwrap();
    let mut l = calsync::model::Link::new(
        &unique("wrongpw"),
        &p.group,
        p.user,
        calsync::model::ProviderKind::Caldav,
        &url,
    );
    let arn = calsync::secrets::put_caldav_credentials(
        &ctx.clients.secrets,
        &format!("calsync/test/{}", l.link_id),
        fixtures::USER,
        &secrecy::SecretString::from("not-the-password".to_string()),
    )
    .await
    .unwrap();
    l.secret_arn = Some(arn);
    store.put_link(&l).await.unwrap();
    fixtures::sync_link(&ctx, &l.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &l.link_id).await.unwrap();
    let got = of_group(&ctx, &p.group).await.unwrap();
    assert_eq!(kinds(&got), ["Link Reconnect Needed"], "{got:#?}");
    assert_eq!(
        got[0].detail["reconnect"],
        json!({"method": "POST", "path": format!("/v1/groups/{}/links", p.group)})
    );
    no_secret(&got);
    runner::drain(&ctx).await.unwrap();
}

#[tokio::test]
async fn event_errors_and_failing_links_are_notified_and_silent_runs_are_not() {
    let ctx = local_ctx().await;
    let user = 4_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64;
    let group = unique("fail");
    let bad = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:bad-note\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:not-a-date\r\nSUMMARY:Broken\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let feed = FeedServer::start(bad, true).await.unwrap();
    let link = fixtures::ics_link(&ctx, &group, user, &feed.url, "feed")
        .await
        .unwrap();
    // Silent AutoSync: the broken event is marked, nobody is told.
    let a = calsync::handlers::autosync(
        &ctx,
        json!({"field": "AutoSync", "arguments": {"userId": user, "silentNotification": 1}}),
    )
    .await;
    assert_eq!(a["Statuscode"], "SU001", "{a}");
    runner::drain(&ctx).await.unwrap();
    assert!(
        of_group(&ctx, &group).await.unwrap().is_empty(),
        "silentNotification"
    );
    let marked = ctx.store().mappings_of_link(&link.link_id).await.unwrap();
    assert!(
        marked
            .iter()
            .any(|m| m.status == calsync::model::EventStatus::Error),
        "{marked:?}"
    );
    // A new broken event in a normal run is notified.
    feed.set_body(&bad.replace("bad-note", "bad-two"));
    fixtures::sync_link(&ctx, &link.link_id).await.unwrap();
    let got = of_group(&ctx, &group).await.unwrap();
    assert_eq!(kinds(&got), ["Event Sync Error"], "{got:#?}");
    // A feed that keeps failing: "Sync Failing" once, at the third failed run in a row.
    let down = FeedServer::start("", true).await.unwrap();
    let failing = fixtures::ics_link(
        &ctx,
        &group,
        user,
        &format!("{}/gone", down.url.trim_end_matches('/')),
        "down",
    )
    .await
    .unwrap();
    drop(down);
    for _ in 0..4 {
        let _ = fixtures::sync_link(&ctx, &failing.link_id).await;
    }
    let got = of_group(&ctx, &group).await.unwrap();
    let failing_notes: Vec<&Delivered> = got
        .iter()
        .filter(|d| d.detail_type == "Sync Failing")
        .collect();
    assert_eq!(failing_notes.len(), 1, "{got:#?}");
    assert_eq!(failing_notes[0].detail["consecutive_failures"], 3);
    runner::drain(&ctx).await.unwrap();
}
