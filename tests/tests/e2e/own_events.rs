//! A transformed member's own events: those made on it (also before it was disconnected and
//! linked again), and its own copy of an event another member brought (one invitation on two
//! calendars), stay whole there whatever its transforms; their edits there, and a title edited inside its title template, reach the
//! other members.

use calsync_e2e::api::ApiServer;
use calsync_e2e::demo::totals;
use calsync_e2e::fixtures::{self, new_calendar, unique, Server};
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

use super::transforms::{assert_quiet_round, at, connect, event};

/// Each event in the calendar at `url`: (UID, title, whether its text holds `marker`), by UID.
async fn titles_in(
    ctx: &calsync::config::Ctx,
    url: &str,
    marker: &str,
) -> Vec<(String, String, bool)> {
    fixtures::events_in(ctx, url)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| {
            let has = s.to_ical().contains(marker);
            (s.uid.clone(), s.summary(), has)
        })
        .collect()
}

/// One row of [`titles_in`].
fn row(uid: &str, title: &str, has: bool) -> (String, String, bool) {
    (uid.to_string(), title.to_string(), has)
}

/// Events made on a transformed member are its own. A work calendar that shows the other
/// member's events as busy, without all-day events and within a window keeps its own
/// meeting, all-day event and far event whole: linked, after an edit of one elsewhere, and
/// after its transforms change. Its own edits reach the other member in full, and so does a
/// title edited inside its title template.
#[tokio::test]
async fn a_transformed_member_keeps_its_own_events_whole() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(5_200_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64);
    let name = unique("own");
    let work_cal = new_calendar(&ctx, Server::Radicale, &name).await.unwrap();
    let home_cal = new_calendar(&ctx, Server::Xandikos, &name).await.unwrap();
    let made = [
        (
            &work_cal,
            event(
                "own-meeting",
                "Standup",
                &format!("DTSTART:{}", at(3, 9)),
                &format!("DTEND:{}", at(3, 10)),
            ),
        ),
        (
            &work_cal,
            event(
                "own-allday",
                "Offsite",
                &format!("DTSTART;VALUE=DATE:{}", &at(5, 0)[..8]),
                &format!("DTEND;VALUE=DATE:{}", &at(6, 0)[..8]),
            ),
        ),
        (
            &work_cal,
            event(
                "own-far",
                "Planning",
                &format!("DTSTART:{}", at(400, 9)),
                &format!("DTEND:{}", at(400, 10)),
            ),
        ),
        (
            &home_cal,
            event(
                "their-dentist",
                "Dentist",
                &format!("DTSTART:{}", at(4, 9)),
                &format!("DTEND:{}", at(4, 10)),
            ),
        ),
    ];
    for (cal, ical) in &made {
        fixtures::client_put(&ctx, cal, ical).await.unwrap();
    }
    let group = api.create_group("own events").await.unwrap();
    let work = connect(&api, &group, &work_cal, "work").await;
    let personal = connect(&api, &group, &home_cal, "personal").await;
    let p = api
        .patch(&format!("/v1/links/{work}"), &json!({"transforms": {"busy_only": true, "exclude_all_day": true, "window": {"past_days": 7, "future_days": 60}}}))
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    runner::drain(&ctx).await.unwrap();

    // (uid, title, has the private notes) on each calendar.
    let notes = "Private notes";
    assert_eq!(
        titles_in(&ctx, &work_cal, notes).await,
        [
            row("own-allday", "Offsite", true),
            row("own-far", "Planning", true),
            row("own-meeting", "Standup", true),
            row("their-dentist", "Busy", false),
        ],
        "the work calendar's own events are untouched; the other member's is busy"
    );
    assert_eq!(
        titles_in(&ctx, &home_cal, notes).await,
        [
            row("own-allday", "Offsite", true),
            row("own-far", "Planning", true),
            row("own-meeting", "Standup", true),
            row("their-dentist", "Dentist", true),
        ],
        "the other member gets the work calendar's events whole"
    );

    // Retitled on the work calendar: an edit, which the other member gets.
    fixtures::client_edit(&ctx, &work_cal, "own-meeting", |i| {
        i.replace("SUMMARY:Standup", "SUMMARY:Standup (room 4)")
            .replace(
                "LAST-MODIFIED:20260101T000000Z",
                "LAST-MODIFIED:20260601T000000Z",
            )
    })
    .await
    .unwrap();
    fixtures::sync_link(&ctx, &work).await.unwrap();
    let on_home = titles_in(&ctx, &home_cal, notes).await;
    assert!(
        on_home.contains(&row("own-meeting", "Standup (room 4)", true)),
        "{on_home:?}"
    );

    // Moved on the personal calendar: the work calendar gets it whole, not busy.
    fixtures::client_edit(&ctx, &home_cal, "own-meeting", |i| {
        i.replace(&at(3, 9), &at(3, 11))
            .replace(&at(3, 10), &at(3, 12))
            .replace(
                "LAST-MODIFIED:20260601T000000Z",
                "LAST-MODIFIED:20260701T000000Z",
            )
    })
    .await
    .unwrap();
    fixtures::sync_link(&ctx, &personal).await.unwrap();
    let meeting = fixtures::events_in(&ctx, &work_cal)
        .await
        .unwrap()
        .into_iter()
        .find(|(_, s)| s.uid == "own-meeting")
        .unwrap()
        .1
        .to_ical();
    assert!(
        meeting.contains(&format!("DTSTART:{}", at(3, 11)))
            && meeting.contains("SUMMARY:Standup (room 4)")
            && meeting.contains("Private notes")
            && meeting.contains("Clinic"),
        "{meeting}"
    );

    // New transforms rewrite the other member's copies only.
    let before = totals(&ctx, &work).await.unwrap();
    let p = api
        .patch(
            &format!("/v1/links/{work}"),
            &json!({"transforms": {"title_template": "{title} (personal)"}}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        titles_in(&ctx, &work_cal, notes).await,
        [
            row("own-allday", "Offsite", true),
            row("own-far", "Planning", true),
            row("own-meeting", "Standup (room 4)", true),
            row("their-dentist", "Dentist (personal)", true),
        ]
    );
    let after = totals(&ctx, &work).await.unwrap();
    assert_eq!(
        (after.created, after.updated, after.deleted),
        (before.created, before.updated + 1, before.deleted),
        "one write: the other member's event"
    );
    // Its title edited inside the template on the work calendar: a title edit, without the
    // template's text.
    fixtures::client_edit(&ctx, &work_cal, "their-dentist", |i| {
        i.replace(
            "SUMMARY:Dentist (personal)",
            "SUMMARY:Dentist at 4 (personal)",
        )
    })
    .await
    .unwrap();
    fixtures::sync_link(&ctx, &work).await.unwrap();
    let on_home = titles_in(&ctx, &home_cal, notes).await;
    assert!(
        on_home.contains(&row("their-dentist", "Dentist at 4", true)),
        "{on_home:?}"
    );
    let on_work = titles_in(&ctx, &work_cal, notes).await;
    assert!(
        on_work.contains(&row("their-dentist", "Dentist at 4 (personal)", true)),
        "{on_work:?}"
    );

    // Quiet: another round writes nothing anywhere.
    assert_quiet_round(&ctx, &[&work, &personal]).await;
}

/// One meeting on two calendars (both addresses invited): the busy-only work calendar,
/// linked after the personal one brought the meeting into the hub, keeps its own copy whole
/// (its notes, its title) instead of having it rewritten as "Busy"; the personal calendar's
/// events are still busy there.
#[tokio::test]
async fn a_members_own_copy_of_an_event_another_member_brought_stays_whole() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(5_300_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64);
    let name = unique("invite");
    let work_cal = new_calendar(&ctx, Server::Radicale, &name).await.unwrap();
    let home_cal = new_calendar(&ctx, Server::Xandikos, &name).await.unwrap();
    let (start, end) = (
        format!("DTSTART:{}", at(2, 14)),
        format!("DTEND:{}", at(2, 15)),
    );
    let meeting = event("shared-review", "Design review", &start, &end);
    // The personal copy says the user is a guest; the work copy carries the agenda.
    let personal_copy = meeting.replace("DESCRIPTION:Private notes", "DESCRIPTION:Invited");
    let work_copy = meeting.replace("DESCRIPTION:Private notes", "DESCRIPTION:Agenda attached");
    fixtures::client_put(&ctx, &home_cal, &personal_copy)
        .await
        .unwrap();
    fixtures::client_put(
        &ctx,
        &home_cal,
        &event(
            "dentist",
            "Dentist",
            &format!("DTSTART:{}", at(3, 9)),
            &format!("DTEND:{}", at(3, 10)),
        ),
    )
    .await
    .unwrap();
    fixtures::client_put(&ctx, &work_cal, &work_copy)
        .await
        .unwrap();
    let group = api
        .create_group("one meeting, two calendars")
        .await
        .unwrap();
    let personal = connect(&api, &group, &home_cal, "personal").await;
    runner::drain(&ctx).await.unwrap();
    let work = connect(&api, &group, &work_cal, "work").await;
    let p = api
        .patch(
            &format!("/v1/links/{work}"),
            &json!({"transforms": {"busy_only": true}}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    runner::drain(&ctx).await.unwrap();

    assert_eq!(
        titles_in(&ctx, &work_cal, "Agenda attached").await,
        [
            row("dentist", "Busy", false),
            row("shared-review", "Design review", true),
        ],
        "the work calendar's own copy stays whole; the personal event is busy"
    );
    // A later edit of the meeting on the personal calendar reaches the work copy whole.
    fixtures::client_edit(&ctx, &home_cal, "shared-review", |i| {
        i.replace("SUMMARY:Design review", "SUMMARY:Design review (moved)")
            .replace(
                "LAST-MODIFIED:20260101T000000Z",
                "LAST-MODIFIED:20260801T000000Z",
            )
    })
    .await
    .unwrap();
    fixtures::sync_link(&ctx, &personal).await.unwrap();
    let review = fixtures::events_in(&ctx, &work_cal)
        .await
        .unwrap()
        .into_iter()
        .find(|(_, s)| s.uid == "shared-review")
        .unwrap()
        .1;
    assert_eq!(review.summary(), "Design review (moved)");
    // Quiet: another round writes nothing anywhere.
    assert_quiet_round(&ctx, &[&work, &personal]).await;
}

/// A calendar disconnected and linked again (the usual "remove it and add it again") finds
/// the events it made as its own: busy-only set on the new link leaves them whole, while the
/// other calendar's events become busy there.
#[tokio::test]
async fn a_calendar_linked_again_keeps_its_own_events_whole() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(5_400_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64);
    let name = unique("relink");
    let work_cal = new_calendar(&ctx, Server::Radicale, &name).await.unwrap();
    let home_cal = new_calendar(&ctx, Server::Xandikos, &name).await.unwrap();
    let standup = event(
        "relink-standup",
        "Standup",
        &format!("DTSTART:{}", at(2, 9)),
        &format!("DTEND:{}", at(2, 10)),
    );
    let dentist = event(
        "relink-dentist",
        "Dentist",
        &format!("DTSTART:{}", at(3, 9)),
        &format!("DTEND:{}", at(3, 10)),
    );
    fixtures::client_put(&ctx, &work_cal, &standup)
        .await
        .unwrap();
    fixtures::client_put(&ctx, &home_cal, &dentist)
        .await
        .unwrap();
    let group = api.create_group("linked again").await.unwrap();
    let work = connect(&api, &group, &work_cal, "work").await;
    let personal = connect(&api, &group, &home_cal, "personal").await;
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        api.delete(&format!("/v1/links/{work}"))
            .await
            .unwrap()
            .status,
        204
    );
    let again = connect(&api, &group, &work_cal, "work again").await;
    runner::drain(&ctx).await.unwrap();
    let p = api
        .patch(
            &format!("/v1/links/{again}"),
            &json!({"transforms": {"busy_only": true}}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        titles_in(&ctx, &work_cal, "Private notes").await,
        [
            row("relink-dentist", "Busy", false),
            row("relink-standup", "Standup", true),
        ]
    );
    assert_quiet_round(&ctx, &[&again, &personal]).await;
}
