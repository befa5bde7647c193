//! calsync tells its own writes from everyone else's: on Google and Outlook every event it
//! writes carries its UID in a private extended property, which no other copy shows; on
//! CalDAV each VEVENT it writes carries `X-CALSYNC-WRITER`. So on Google and Outlook a
//! calendar's own copy of a meeting, identical to the hub's when the link first meets it,
//! is still its own when transforms come later; and on all three a calendar linked again
//! finds its old copies of events deleted while it was away to be calsync's, and deletes
//! them instead of bringing the events back everywhere. Needs the local stack (`make test` starts it).

use calsync_e2e::api::ApiServer;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::emulators::graph::Config as GraphConfig;
use calsync_e2e::fixtures::{self, new_calendar, unique, Server};
use calsync_e2e::google::{consent_url, LocalGoogle, UserApi};
use calsync_e2e::outlook::LocalOutlook;
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

use super::transforms::{assert_quiet_round, at, connect, event};

/// The Google calendar's live events as (iCalUID, title, description), sorted.
async fn on_google(api: &UserApi) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = api
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["status"] != "cancelled")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("iCalUID"), s("summary"), s("description"))
        })
        .collect();
    v.sort();
    v
}

/// Google's `dateTime` of [`at`]'s `YYYYMMDDTHHMMSSZ`.
pub(crate) fn rfc3339(basic: &str) -> String {
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &basic[..4],
        &basic[4..6],
        &basic[6..8],
        &basic[9..11],
        &basic[11..13],
        &basic[13..15]
    )
}

/// A meeting on both calendars (an invitation to both addresses). The personal calendar
/// brings it into the hub; the work calendar on Google, linked after, holds the very same
/// event, made by Google rather than by calsync. When busy-only is set on the work calendar
/// later, its copy stays whole there (before, it was taken for calsync's own write and
/// rewritten "Busy", dropping the agenda on the organizer's side too), while the personal
/// calendar's other event becomes busy.
/// A personal Radicale calendar with a design review (day 2, 14:00–15:00 UTC) and a dentist
/// appointment (UIDs `<prefix>-review`, `<prefix>-dentist`), linked into a new group of
/// `api`'s user and synced through `ctx`: (the group, the personal link, the review's start
/// and end as `YYYYMMDDTHHMMSSZ`).
async fn personal_with_review(
    ctx: &calsync::config::Ctx,
    api: &calsync_e2e::api::ApiClient,
    prefix: &str,
) -> (String, String, String, String) {
    let home_cal = new_calendar(ctx, Server::Radicale, &unique(prefix))
        .await
        .unwrap();
    let (start, end) = (at(2, 14), at(2, 15));
    for (what, title, from, to) in [
        ("review", "Design review", start.clone(), end.clone()),
        ("dentist", "Dentist", at(3, 9), at(3, 10)),
    ] {
        let e = event(
            &format!("{prefix}-{what}"),
            title,
            &format!("DTSTART:{from}"),
            &format!("DTEND:{to}"),
        );
        fixtures::client_put(ctx, &home_cal, &e).await.unwrap();
    }
    let group = api
        .create_group("one meeting, two calendars")
        .await
        .unwrap();
    let personal = connect(api, &group, &home_cal, "personal").await;
    runner::drain(ctx).await.unwrap();
    (group, personal, start, end)
}

/// Set busy-only on `link` through the API and sync.
async fn set_busy_only(ctx: &calsync::config::Ctx, api: &calsync_e2e::api::ApiClient, link: &str) {
    let p = api
        .patch(
            &format!("/v1/links/{link}"),
            &json!({"transforms": {"busy_only": true}}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    runner::drain(ctx).await.unwrap();
}

#[tokio::test]
async fn a_google_calendars_identical_copy_of_a_shared_meeting_stays_its_own() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default()).await.unwrap();
    let srv = ApiServer::start_local(lg.ctx.clone()).await.unwrap();
    let user = fixtures::fresh_user();
    let api = srv.as_user(user);
    let (group, personal, start, end) = personal_with_review(&lg.ctx, &api, "gcopy").await;

    let work = lg
        .connect(&group, user, "gcopy-work@example.com", "work")
        .await
        .unwrap();
    let google = lg.user_api(&work).await.unwrap();
    // The invitation Google put on the work calendar: the same event, not calsync's write.
    google
        .insert(json!({
            "iCalUID": "gcopy-review",
            "summary": "Design review",
            "description": "Private notes",
            "location": "Clinic",
            "start": {"dateTime": rfc3339(&start)},
            "end": {"dateTime": rfc3339(&end)},
        }))
        .await
        .unwrap();
    runner::drain(&lg.ctx).await.unwrap();
    let row = |uid: &str, title: &str, notes: &str| {
        (uid.to_string(), title.to_string(), notes.to_string())
    };
    assert_eq!(
        on_google(&google).await,
        [
            row("gcopy-dentist", "Dentist", "Private notes"),
            row("gcopy-review", "Design review", "Private notes"),
        ],
        "one copy of each, the meeting not written twice"
    );

    set_busy_only(&lg.ctx, &api, &work.link_id).await;
    assert_eq!(
        on_google(&google).await,
        [
            row("gcopy-dentist", "Busy", ""),
            row("gcopy-review", "Design review", "Private notes"),
        ],
        "the work calendar's own copy stays whole; the personal event is busy"
    );
    assert_quiet_round(&lg.ctx, &[&work.link_id, &personal]).await;
}

/// The same on Outlook: the invitation arrives in the work mailbox by mail, so Exchange
/// gives it the organizer's UID as its `iCalUId` (the emulator's `arrive`), without
/// calsync's UID property. It is the work calendar's own copy: not written twice, and whole
/// under busy-only, while the personal event becomes "Busy".
#[tokio::test]
async fn an_outlook_calendars_copy_of_a_shared_meeting_stays_its_own() {
    let ctx = local_ctx().await;
    let lo = LocalOutlook::start(&ctx, GraphConfig::default())
        .await
        .unwrap();
    let srv = ApiServer::start_local(lo.ctx.clone()).await.unwrap();
    let user = fixtures::fresh_user();
    let api = srv.as_user(user);
    let (group, personal, start, end) = personal_with_review(&lo.ctx, &api, "ocopy").await;

    let work = lo
        .connect(&group, user, "ocopy-work", "work")
        .await
        .unwrap();
    let cal = work.url.rsplit('/').next().unwrap().to_string();
    let graph_time = |basic: &str| rfc3339(basic).trim_end_matches('Z').to_string();
    lo.emu.arrive(
        &cal,
        &json!({
            "subject": "Design review",
            "body": {"contentType": "text", "content": "Private notes"},
            "location": {"displayName": "Clinic"},
            // Exchange adds the mailbox's default reminder; without it the copy is the
            // hub's event exactly, which is the case this test is for.
            "isReminderOn": false,
            "start": {"dateTime": graph_time(&start), "timeZone": "UTC"},
            "end": {"dateTime": graph_time(&end), "timeZone": "UTC"},
        }),
        "ocopy-review",
    );
    runner::drain(&lo.ctx).await.unwrap();
    // (subject, body, whether its iCalUId is the invitation's) of the mailbox's events:
    // calsync's own creates get an iCalUId Graph makes.
    let items = || {
        let mut v: Vec<(String, String, bool)> = lo
            .emu
            .items(&cal)
            .iter()
            .map(|i| {
                let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                (
                    s(&i["subject"]),
                    s(&i["body"]["content"]),
                    i["iCalUId"] == "ocopy-review",
                )
            })
            .collect();
        v.sort();
        v
    };
    let row = |title: &str, notes: &str, invitation: bool| {
        (title.to_string(), notes.to_string(), invitation)
    };
    assert_eq!(
        items(),
        [
            row("Dentist", "Private notes", false),
            row("Design review", "Private notes", true),
        ],
        "one copy of each, the meeting not written twice"
    );

    set_busy_only(&lo.ctx, &api, &work.link_id).await;
    assert_eq!(
        items(),
        [
            row("Busy", "", false),
            row("Design review", "Private notes", true),
        ],
        "the mailbox's own copy stays whole; the personal event is busy"
    );
    assert_quiet_round(&lo.ctx, &[&work.link_id, &personal]).await;
}

/// A personal Radicale calendar with a standup and a lunch in a new group of `api`'s user,
/// linked and synced: (its URL, the group, the link).
async fn personal_with_lunch(
    ctx: &calsync::config::Ctx,
    api: &calsync_e2e::api::ApiClient,
    prefix: &str,
) -> (String, String, String) {
    let home_cal = new_calendar(ctx, Server::Radicale, &unique(prefix))
        .await
        .unwrap();
    for (what, title, day) in [("standup", "Standup", 2), ("lunch", "Lunch", 3)] {
        let e = event(
            &format!("{prefix}-{what}"),
            title,
            &format!("DTSTART:{}", at(day, 12)),
            &format!("DTEND:{}", at(day, 13)),
        );
        fixtures::client_put(ctx, &home_cal, &e).await.unwrap();
    }
    let group = api.create_group("linked again").await.unwrap();
    let personal = connect(api, &group, &home_cal, "personal").await;
    (home_cal, group, personal)
}

/// Disconnect `link` (calsync's copies stay on its calendar), then delete the lunch on the
/// personal calendar and sync it there: the hub holds the lunch's tombstone.
async fn disconnect_then_delete_lunch(
    ctx: &calsync::config::Ctx,
    api: &calsync_e2e::api::ApiClient,
    link: &str,
    (home_cal, personal): (&str, &str),
    prefix: &str,
) {
    let gone = api.delete(&format!("/v1/links/{link}")).await.unwrap();
    assert_eq!(gone.status, 204, "{}", gone.body);
    fixtures::client_delete(ctx, home_cal, &format!("{prefix}-lunch"))
        .await
        .unwrap();
    fixtures::sync_link(ctx, personal).await.unwrap();
}

/// The titles of the CalDAV calendar at `url`, sorted.
async fn caldav_titles(ctx: &calsync::config::Ctx, url: &str) -> Vec<String> {
    fixtures::titles_in(ctx, url).await.unwrap()
}

/// The personal calendar holds only the standup: what was deleted did not come back.
async fn assert_lunch_stays_deleted(ctx: &calsync::config::Ctx, home_cal: &str) {
    assert_eq!(
        caldav_titles(ctx, home_cal).await,
        ["Standup"],
        "what was deleted stays deleted"
    );
}

/// A Google calendar disconnected (calsync's copies stay on it; the grant is revoked, so
/// Google is read again only after the new consent) and linked again after one of the
/// events was deleted on the other calendar: the old copy of the deleted event is
/// calsync's, untouched, so the deletion stands and reaches Google, instead of the event
/// coming back to every calendar. The other event keeps one copy each.
#[tokio::test]
async fn a_google_calendar_linked_again_does_not_bring_back_what_was_deleted_meanwhile() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default()).await.unwrap();
    let srv = ApiServer::start_local(lg.ctx.clone()).await.unwrap();
    let user = fixtures::fresh_user();
    let api = srv.as_user(user);
    let (home_cal, group, personal) = personal_with_lunch(&ctx, &api, "grelink").await;
    let calendar = "grelink-work@example.com";
    let work = lg.connect(&group, user, calendar, "work").await.unwrap();
    runner::drain(&lg.ctx).await.unwrap();
    let titles = |v: Vec<(String, String, String)>| -> Vec<String> {
        v.into_iter().map(|(_, t, _)| t).collect()
    };
    let google = lg.user_api(&work).await.unwrap();
    assert_eq!(titles(on_google(&google).await), ["Lunch", "Standup"]);
    let home = (home_cal.as_str(), personal.as_str());
    disconnect_then_delete_lunch(&lg.ctx, &api, &work.link_id, home, "grelink").await;

    let sent = lg.emu.sends().len();
    let start = consent_url(&lg.ctx, &group, user, calendar, "work again")
        .await
        .unwrap();
    let again = lg.open_consent(&start).await.unwrap();
    runner::drain(&lg.ctx).await.unwrap();
    assert_lunch_stays_deleted(&ctx, &home_cal).await;
    let google = lg.user_api(&again).await.unwrap();
    assert_eq!(
        titles(on_google(&google).await),
        ["Standup"],
        "the old copy of the lunch is gone from Google, the standup there once"
    );
    let writes: Vec<String> = lg.emu.sends()[sent..]
        .iter()
        .map(|w| w.method.clone())
        .collect();
    assert_eq!(
        writes,
        ["DELETE"],
        "the disconnect left both copies; the new link deleted the lunch's and wrote nothing else"
    );
    assert_quiet_round(&lg.ctx, &[&again.link_id, &personal]).await;
}

/// The titles of the Outlook calendar of `link`, sorted.
async fn titles_on(lo: &LocalOutlook, link: &calsync::model::Link) -> Vec<String> {
    let mut t: Vec<String> = lo
        .series(link)
        .await
        .unwrap()
        .iter()
        .map(|s| s.summary())
        .collect();
    t.sort();
    t
}

/// The same on Outlook, whose mark is a single-value extended property.
#[tokio::test]
async fn an_outlook_calendar_linked_again_does_not_bring_back_what_was_deleted_meanwhile() {
    let ctx = local_ctx().await;
    let lo = LocalOutlook::start(&ctx, GraphConfig::default())
        .await
        .unwrap();
    let srv = ApiServer::start_local(lo.ctx.clone()).await.unwrap();
    let user = fixtures::fresh_user();
    let api = srv.as_user(user);
    let (home_cal, group, personal) = personal_with_lunch(&ctx, &api, "orelink").await;
    let calendar = "orelink-work";
    let work = lo.connect(&group, user, calendar, "work").await.unwrap();
    runner::drain(&lo.ctx).await.unwrap();
    assert_eq!(titles_on(&lo, &work).await, ["Lunch", "Standup"]);
    let home = (home_cal.as_str(), personal.as_str());
    disconnect_then_delete_lunch(&lo.ctx, &api, &work.link_id, home, "orelink").await;

    let start = lo
        .consent_url(&group, user, calendar, "work again")
        .await
        .unwrap();
    let again = lo.open_consent(&start).await.unwrap();
    runner::drain(&lo.ctx).await.unwrap();
    assert_lunch_stays_deleted(&ctx, &home_cal).await;
    assert_eq!(
        titles_on(&lo, &again).await,
        ["Standup"],
        "the old copy of the lunch is gone from Outlook, the standup there once"
    );
    assert_quiet_round(&lo.ctx, &[&again.link_id, &personal]).await;
}

/// The same on a CalDAV server, where calsync's mark is a property of its own in each
/// VEVENT it writes (`X-CALSYNC-WRITER`), which the server keeps and calsync takes out
/// when it reads; and for an event the application made and deleted through the API, and
/// one renamed before it was deleted (the old copy is older than the deletion).
#[tokio::test]
async fn a_caldav_calendar_linked_again_does_not_bring_back_what_was_deleted_meanwhile() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fixtures::fresh_user());
    let (home_cal, group, personal) = personal_with_lunch(&ctx, &api, "crelink").await;
    let dinner = event(
        "crelink-dinner",
        "Dinner",
        &format!("DTSTART:{}", at(6, 19)),
        &format!("DTEND:{}", at(6, 20)),
    );
    fixtures::client_put(&ctx, &home_cal, &dinner)
        .await
        .unwrap();
    let work_cal = new_calendar(&ctx, Server::Xandikos, &unique("crelink"))
        .await
        .unwrap();
    let work = connect(&api, &group, &work_cal, "work").await;
    // And an event the application makes through the API.
    let review = format!("/v1/groups/{group}/events/crelink-review");
    let made = api
        .put_ical(
            &review,
            &event(
                "crelink-review",
                "Review",
                &format!("DTSTART:{}", at(5, 12)),
                &format!("DTEND:{}", at(5, 13)),
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(made.status < 300, "{}", made.body);
    runner::drain(&ctx).await.unwrap();
    let titles = || caldav_titles(&ctx, &work_cal);
    assert_eq!(titles().await, ["Dinner", "Lunch", "Review", "Standup"]);
    let home = (home_cal.as_str(), personal.as_str());
    disconnect_then_delete_lunch(&ctx, &api, &work, home, "crelink").await;
    let gone = api.delete(&review).await.unwrap();
    assert!(gone.status < 300, "{}", gone.body);
    // The dinner is renamed, then deleted: the work calendar's copy is of an older version.
    fixtures::client_retitle(&ctx, &home_cal, "crelink-dinner", "Dinner", "Dinner at 8")
        .await
        .unwrap();
    fixtures::sync_link(&ctx, &personal).await.unwrap();
    fixtures::client_delete(&ctx, &home_cal, "crelink-dinner")
        .await
        .unwrap();
    fixtures::sync_link(&ctx, &personal).await.unwrap();
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        titles().await,
        ["Dinner", "Lunch", "Review", "Standup"],
        "the copies stay"
    );

    let again = connect(&api, &group, &work_cal, "work again").await;
    runner::drain(&ctx).await.unwrap();
    assert_lunch_stays_deleted(&ctx, &home_cal).await;
    assert_eq!(
        titles().await,
        ["Standup"],
        "the old copies of the lunch, the application's review and the renamed dinner are gone, the standup there once"
    );
    assert_quiet_round(&ctx, &[&again, &personal]).await;
}

/// The other way round: a calendar's own event, which calsync wrote an edit from elsewhere
/// to (so it carries calsync's mark), is still the calendar's own. The user disconnects the
/// work calendar, clears its leftover copies from the personal calendar, and links the work
/// calendar again: its standup stays there and comes back to the personal calendar.
#[tokio::test]
async fn a_calendars_own_event_calsync_wrote_to_is_not_deleted_when_it_is_linked_again() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fixtures::fresh_user());
    let (home_cal, group, personal) = personal_with_lunch(&ctx, &api, "cown").await;
    // The lunch is the personal calendar's; the work calendar has a standup of its own.
    fixtures::client_delete(&ctx, &home_cal, "cown-standup")
        .await
        .unwrap();
    let work_cal = new_calendar(&ctx, Server::Xandikos, &unique("cown"))
        .await
        .unwrap();
    let standup = event(
        "cown-own",
        "Standup",
        &format!("DTSTART:{}", at(4, 9)),
        &format!("DTEND:{}", at(4, 10)),
    );
    fixtures::client_put(&ctx, &work_cal, &standup)
        .await
        .unwrap();
    let work = connect(&api, &group, &work_cal, "work").await;
    runner::drain(&ctx).await.unwrap();
    // Renamed on the personal calendar: calsync writes the edit to the work calendar.
    fixtures::client_retitle(&ctx, &home_cal, "cown-own", "Standup", "Standup (moved)")
        .await
        .unwrap();
    fixtures::sync_link(&ctx, &personal).await.unwrap();
    assert_eq!(
        caldav_titles(&ctx, &work_cal).await,
        ["Lunch", "Standup (moved)"]
    );

    // Disconnected; the user deletes the work calendar's events from the personal one.
    let gone = api.delete(&format!("/v1/links/{work}")).await.unwrap();
    assert_eq!(gone.status, 204, "{}", gone.body);
    fixtures::client_delete(&ctx, &home_cal, "cown-own")
        .await
        .unwrap();
    fixtures::sync_link(&ctx, &personal).await.unwrap();

    let again = connect(&api, &group, &work_cal, "work again").await;
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        caldav_titles(&ctx, &work_cal).await,
        ["Lunch", "Standup (moved)"],
        "the work calendar keeps its own standup"
    );
    assert_eq!(
        caldav_titles(&ctx, &home_cal).await,
        ["Lunch", "Standup (moved)"],
        "and it comes back to the personal calendar"
    );
    assert_quiet_round(&ctx, &[&again, &personal]).await;
}
