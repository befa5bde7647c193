//! Per-link transforms: a busy-only member and a windowed member without all-day events hold
//! what their transforms give them while the hub and the other member keep full events; an
//! edit made on a busy copy moves the event everywhere but never overwrites its hidden
//! fields; a quiet round writes nothing; removing the transforms rewrites the copies.

use calsync_e2e::api::{ApiClient, ApiServer};
use calsync_e2e::demo::totals;
use calsync_e2e::fixtures::{self, new_calendar, unique, Server, PASSWORD, USER};
use calsync_e2e::{local_ctx, runner};
use chrono::{Duration, Utc};
use serde_json::json;

pub(crate) fn event(uid: &str, title: &str, start: &str, end: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{start}\r\n{end}\r\n\
SUMMARY:{title}\r\nDESCRIPTION:Private notes\r\nLOCATION:Clinic\r\nLAST-MODIFIED:20260101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

pub(crate) fn at(days: i64, hour: u32) -> String {
    let d = Utc::now().date_naive() + Duration::days(days);
    format!("{}T{hour:02}0000Z", d.format("%Y%m%d"))
}

pub(crate) async fn connect(api: &ApiClient, group: &str, url: &str, name: &str) -> String {
    let a = api
        .post(&format!("/v1/groups/{group}/links"), &json!({"provider": "caldav", "url": url, "username": USER, "password": PASSWORD, "display_name": name}))
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["link_id"].as_str().unwrap().to_string()
}

/// Another pull of each of `links` (and the pushes it queues) writes nothing anywhere.
pub(crate) async fn assert_quiet_round(ctx: &calsync::config::Ctx, links: &[&str]) {
    let mut before = Vec::new();
    for l in links {
        before.push(totals(ctx, l).await.unwrap());
    }
    for l in links {
        fixtures::sync_link(ctx, l).await.unwrap();
    }
    for (l, a) in links.iter().zip(before) {
        let b = totals(ctx, l).await.unwrap();
        assert_eq!(
            (a.created, a.updated, a.deleted),
            (b.created, b.updated, b.deleted),
            "a quiet round writes nothing on {l}"
        );
    }
}

#[tokio::test]
async fn transformed_members_hold_their_view_and_edits_there_keep_hidden_fields() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(5_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64);
    let name = unique("tf");
    let busy_cal = new_calendar(&ctx, Server::Radicale, &name).await.unwrap();
    let win_cal = new_calendar(&ctx, Server::Xandikos, &name).await.unwrap();
    let group = api.create_group("transforms").await.unwrap();
    let busy = connect(&api, &group, &busy_cal, "busy").await;
    let windowed = connect(&api, &group, &win_cal, "windowed").await;
    let p = api
        .patch(
            &format!("/v1/links/{busy}"),
            &json!({"transforms": {"busy_only": true}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (p.status, p.body["transforms"]["busy_only"].clone()),
        (200, json!(true)),
        "{}",
        p.body
    );
    let p = api
        .patch(&format!("/v1/links/{windowed}"), &json!({"transforms": {"exclude_all_day": true, "window": {"past_days": 7, "future_days": 60}}}))
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    let bad = api
        .patch(
            &format!("/v1/links/{windowed}"),
            &json!({"transforms": {"title_template": "no placeholder"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (bad.status, bad.body["errors"][0]["pointer"].as_str()),
        (422, Some("#/transforms/title_template"))
    );

    let events = [
        (
            "tf-soon",
            event(
                "tf-soon",
                "Dentist",
                &format!("DTSTART:{}", at(10, 9)),
                &format!("DTEND:{}", at(10, 10)),
            ),
        ),
        (
            "tf-allday",
            event(
                "tf-allday",
                "Holiday",
                &format!("DTSTART;VALUE=DATE:{}", &at(12, 0)[..8]),
                &format!("DTEND;VALUE=DATE:{}", &at(13, 0)[..8]),
            ),
        ),
        (
            "tf-far",
            event(
                "tf-far",
                "Conference",
                &format!("DTSTART:{}", at(400, 9)),
                &format!("DTEND:{}", at(400, 17)),
            ),
        ),
    ];
    for (id, ical) in &events {
        let a = api
            .put_ical(&format!("/v1/groups/{group}/events/{id}"), ical, &[])
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
    }
    runner::drain(&ctx).await.unwrap();
    let on_busy = fixtures::events_in(&ctx, &busy_cal).await.unwrap();
    assert_eq!(on_busy.len(), 3);
    for (_, s) in &on_busy {
        assert_eq!(s.summary(), "Busy");
        assert!(
            !s.to_ical().contains("Private notes") && !s.to_ical().contains("Clinic"),
            "{}",
            s.to_ical()
        );
    }
    let on_window: Vec<(String, String)> = fixtures::events_in(&ctx, &win_cal)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| (s.uid.clone(), s.summary()))
        .collect();
    assert_eq!(
        on_window,
        [("tf-soon".to_string(), "Dentist".to_string())],
        "the all-day and the far event are left out"
    );
    assert!(fixtures::events_in(&ctx, &win_cal).await.unwrap()[0]
        .1
        .to_ical()
        .contains("Private notes"));

    // On the busy copy someone renames it and moves it an hour later.
    fixtures::client_edit(&ctx, &busy_cal, "tf-soon", |i| {
        i.replace("SUMMARY:Busy", "SUMMARY:Lunch")
            .replace(
                &format!("DTEND:{}", at(10, 10)),
                &format!("DTEND:{}", at(10, 11)),
            )
            .replace(
                &format!("DTSTART:{}", at(10, 9)),
                &format!("DTSTART:{}", at(10, 10)),
            )
    })
    .await
    .unwrap();
    fixtures::sync_link(&ctx, &busy).await.unwrap();
    let hub = api
        .get(&format!("/v1/groups/{group}/events/tf-soon"))
        .await
        .unwrap();
    let ical = api
        .send(
            "GET",
            &format!("/v1/groups/{group}/events/tf-soon"),
            None,
            &[("accept", "text/calendar")],
        )
        .await
        .unwrap();
    let text = ical.body.as_str().unwrap().to_string();
    assert_eq!(
        hub.body["event"]["title"], "Dentist",
        "the hidden title stays: {text}"
    );
    assert!(
        text.contains("Private notes") && text.contains("Clinic"),
        "{text}"
    );
    assert!(
        text.contains(&at(10, 10)),
        "the move reached the hub: {text}"
    );
    let moved = fixtures::events_in(&ctx, &win_cal).await.unwrap();
    assert!(
        moved[0]
            .1
            .to_ical()
            .contains(&format!("DTSTART:{}", at(10, 10))),
        "{}",
        moved[0].1.to_ical()
    );
    assert_eq!(moved[0].1.summary(), "Dentist");
    let again = fixtures::events_in(&ctx, &busy_cal).await.unwrap();
    let soon = again.iter().find(|(_, s)| s.uid == "tf-soon").unwrap();
    assert_eq!(soon.1.summary(), "Busy", "the busy copy is busy again");

    // Quiet: another round writes nothing anywhere.
    assert_quiet_round(&ctx, &[&busy, &windowed]).await;

    // Without transforms the busy member gets the full events back.
    let p = api
        .patch(&format!("/v1/links/{busy}"), &json!({"transforms": {}}))
        .await
        .unwrap();
    assert_eq!(p.status, 200);
    runner::drain(&ctx).await.unwrap();
    let full: Vec<String> = fixtures::events_in(&ctx, &busy_cal)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| s.summary())
        .collect();
    let mut sorted = full.clone();
    sorted.sort();
    assert_eq!(sorted, ["Conference", "Dentist", "Holiday"]);
}

/// The window moves with the days: a pull of a windowed link queues, once a day, a push that
/// removes the events that left the window and writes those that entered it (simulated here
/// by moving the window under the link, as the passing days would).
#[tokio::test]
async fn a_moving_window_is_applied_once_a_day_without_changes() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(5_100_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64);
    let name = unique("win");
    let cal = new_calendar(&ctx, Server::Xandikos, &name).await.unwrap();
    let group = api.create_group("window").await.unwrap();
    let link = connect(&api, &group, &cal, "windowed").await;
    let p = api
        .patch(
            &format!("/v1/links/{link}"),
            &json!({"transforms": {"window": {"past_days": 7, "future_days": 30}}}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    let old = event(
        "win-old",
        "Old",
        &format!("DTSTART:{}", at(-3, 9)),
        &format!("DTEND:{}", at(-3, 10)),
    );
    let later = event(
        "win-later",
        "Later",
        &format!("DTSTART:{}", at(45, 9)),
        &format!("DTEND:{}", at(45, 10)),
    );
    for (id, ical) in [("win-old", &old), ("win-later", &later)] {
        assert_eq!(
            api.put_ical(&format!("/v1/groups/{group}/events/{id}"), ical, &[])
                .await
                .unwrap()
                .status,
            201
        );
    }
    runner::drain(&ctx).await.unwrap();
    let uids = |ctx: calsync::config::Ctx, url: String| async move {
        fixtures::events_in(&ctx, &url)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, s)| s.uid)
            .collect::<Vec<_>>()
    };
    assert_eq!(uids(ctx.clone(), cal.clone()).await, ["win-old"]);
    // Days later: the old event has left the window and the later one entered it, and the
    // day's check is due. Nothing changed in the hub or on the member.
    let store = ctx.store();
    let mut l = store.get_link(&link).await.unwrap().unwrap();
    l.transforms.window = Some(calsync::engine::transform::Window {
        past_days: 1,
        future_days: 60,
    });
    l.window_checked_at = 0;
    store.put_link(&l).await.unwrap();
    fixtures::sync_link(&ctx, &link).await.unwrap();
    assert_eq!(
        uids(ctx.clone(), cal.clone()).await,
        ["win-later"],
        "the window moved without a change"
    );
    assert_eq!(
        api.get(&format!("/v1/groups/{group}/events/win-old"))
            .await
            .unwrap()
            .body["deleted"],
        false,
        "the hub keeps it"
    );
    // Within the same day another pull pushes nothing.
    let stats = fixtures::sync_link(&ctx, &link).await.unwrap();
    assert_eq!(stats.pushes, 0, "one window push a day: {stats:?}");
}
