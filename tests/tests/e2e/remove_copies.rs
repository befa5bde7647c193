//! "Disconnect and remove the copies": `DELETE /v1/links/{id}?remove_copies=true` marks the
//! link `removing`, sync-back deletes calsync's copies of events made elsewhere from that
//! calendar, then the link is disconnected. The calendar's own events, and a copy the user
//! edited there since calsync wrote it, stay; the other calendars keep everything; the
//! application is told once ("Link Disconnected"). Needs the local stack (`make test`
//! starts it).

use calsync_e2e::api::ApiServer;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::emulators::graph::Config as GraphConfig;
use calsync_e2e::fixtures::{self, new_calendar, unique, Server};
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::notifications::of_group;
use calsync_e2e::outlook::LocalOutlook;
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

use super::transforms::{at, connect, event};

/// A `Title` event on `day` at noon, with the UID `<prefix>-<what>`.
fn noon(prefix: &str, what: &str, title: &str, day: i64) -> String {
    event(
        &format!("{prefix}-{what}"),
        title,
        &format!("DTSTART:{}", at(day, 12)),
        &format!("DTEND:{}", at(day, 13)),
    )
}

/// The titles of the CalDAV calendar at `url`, sorted.
async fn titles(ctx: &calsync::config::Ctx, url: &str) -> Vec<String> {
    fixtures::titles_in(ctx, url).await.unwrap()
}

/// A new group named `name` with a Radicale calendar of three events ("Home a" to "Home c",
/// UIDs `<prefix>-a` …) linked as "personal"; the group id.
async fn group_with_home(
    ctx: &calsync::config::Ctx,
    api: &calsync_e2e::api::ApiClient,
    prefix: &str,
    name: &str,
) -> String {
    let home_cal = new_calendar(ctx, Server::Radicale, &unique(prefix))
        .await
        .unwrap();
    for (what, day) in [("a", 2), ("b", 3), ("c", 4)] {
        let e = noon(prefix, what, &format!("Home {what}"), day);
        fixtures::client_put(ctx, &home_cal, &e).await.unwrap();
    }
    let group = api.create_group(name).await.unwrap();
    connect(api, &group, &home_cal, "personal").await;
    group
}

/// A CalDAV work calendar linked with a personal one: its own planning meeting stays, and
/// so does the copy of the lunch the user retitled there after calsync wrote it; the
/// copies of the personal standup and of the application's review are deleted. While it
/// is `removing` the link refuses a sync; afterwards it is gone, and the personal calendar
/// keeps all four events.
#[tokio::test]
async fn a_caldav_calendar_loses_calsyncs_copies_and_keeps_its_own_and_edited_events() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fixtures::fresh_user());
    let p = "rmcopies";
    let home_cal = new_calendar(&ctx, Server::Radicale, &unique(p))
        .await
        .unwrap();
    let work_cal = new_calendar(&ctx, Server::Xandikos, &unique(p))
        .await
        .unwrap();
    for (cal, what, title, day) in [
        (&home_cal, "standup", "Standup", 2),
        (&home_cal, "lunch", "Lunch", 3),
        (&work_cal, "planning", "Planning", 4),
    ] {
        fixtures::client_put(&ctx, cal, &noon(p, what, title, day))
            .await
            .unwrap();
    }
    let group = api.create_group("remove copies").await.unwrap();
    let personal = connect(&api, &group, &home_cal, "personal").await;
    let work = connect(&api, &group, &work_cal, "work").await;
    let made = api
        .put_ical(
            &format!("/v1/groups/{group}/events/{p}-review"),
            &noon(p, "review", "Review", 5),
            &[],
        )
        .await
        .unwrap();
    assert!(made.status < 300, "{}", made.body);
    runner::drain(&ctx).await.unwrap();
    let all = ["Lunch", "Planning", "Review", "Standup"];
    assert_eq!(titles(&ctx, &work_cal).await, all);
    assert_eq!(titles(&ctx, &home_cal).await, all);

    // The user retitles the lunch's copy on the work calendar; no sync reads it before.
    fixtures::client_retitle(
        &ctx,
        &work_cal,
        &format!("{p}-lunch"),
        "Lunch",
        "Lunch (mine)",
    )
    .await
    .unwrap();
    let link = format!("/v1/links/{work}");
    let _ = of_group(&ctx, &group).await.unwrap();
    let asked = api
        .delete(&format!("{link}?remove_copies=true"))
        .await
        .unwrap();
    assert_eq!(asked.status, 202, "{}", asked.body);
    assert_eq!(asked.body["status"], "removing");
    assert_eq!(api.get(&link).await.unwrap().body["status"], "removing");
    let sync = api.post(&format!("{link}/sync"), &json!({})).await.unwrap();
    assert_eq!(
        sync.status, 409,
        "a link being removed is not synced: {}",
        sync.body
    );

    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        titles(&ctx, &work_cal).await,
        ["Lunch (mine)", "Planning"],
        "the calendar's own event and the edited copy stay; calsync's copies are gone"
    );
    assert_eq!(api.get(&link).await.unwrap().status, 404, "disconnected");
    assert!(ctx
        .store()
        .mappings_of_link(&work)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        titles(&ctx, &home_cal).await,
        all,
        "the other calendar keeps every event"
    );
    let runs = ctx.store().runs_of_link(&work).await.unwrap();
    let removal = runs
        .iter()
        .find(|r| r.trigger == calsync::disconnect::REMOVE_COPIES)
        .expect("the removal's run record");
    assert_eq!((removal.outcome.as_str(), removal.deleted), ("ok", 2));
    assert_eq!(
        removal
            .notices
            .iter()
            .map(|n| n.event_id.as_str())
            .collect::<Vec<_>>(),
        [format!("{p}-lunch")],
        "the edited copy is noted as kept"
    );
    // The application hears of it once: what went and what stayed.
    let heard = of_group(&ctx, &group).await.unwrap();
    let kinds: Vec<&str> = heard.iter().map(|d| d.detail_type.as_str()).collect();
    assert_eq!(kinds, ["Link Disconnected"], "{heard:#?}");
    let d = &heard[0].detail;
    assert_eq!(
        (&d["link_id"], &d["copies_removed"], &d["copies_kept"]),
        (&json!(work), &json!(2), &json!([format!("{p}-lunch")]))
    );
    // The personal calendar syncs on, alone.
    fixtures::sync_link(&ctx, &personal).await.unwrap();
    assert_eq!(titles(&ctx, &home_cal).await, all);
}

/// (id, title) of the live events of a Google calendar, by title.
async fn live_events(google: &calsync_e2e::google::UserApi) -> Vec<(String, String)> {
    let mut live: Vec<(String, String)> = google
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["status"] != "cancelled")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("summary"))
        })
        .collect();
    live.sort_by(|a, b| a.1.cmp(&b.1));
    live
}

/// A Google calendar: the copies are deleted, the calendar's own event stays, and
/// the grant is revoked once they are gone.
#[tokio::test]
async fn a_google_calendar_loses_calsyncs_copies_then_its_grant() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default()).await.unwrap();
    let srv = ApiServer::start_local(lg.ctx.clone()).await.unwrap();
    let user = fixtures::fresh_user();
    let api = srv.as_user(user);
    let group = group_with_home(&ctx, &api, "grmcopies", "remove google copies").await;
    let calendar = "grmcopies-work@example.com";
    let work = lg.connect(&group, user, calendar, "work").await.unwrap();
    let google = lg.user_api(&work).await.unwrap();
    google
        .insert(json!({
            "summary": "Work own",
            "start": {"dateTime": super::calsync_copies::rfc3339(&at(5, 12))},
            "end": {"dateTime": super::calsync_copies::rfc3339(&at(5, 13))}
        }))
        .await
        .unwrap();
    runner::drain(&lg.ctx).await.unwrap();
    let live = live_events(&google).await;
    let titles: Vec<&str> = live.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(titles, ["Home a", "Home b", "Home c", "Work own"]);

    let sent = lg.emu.sends().len();
    let revoked = lg.revocations().await.unwrap();
    let asked = api
        .delete(&format!("/v1/links/{}?remove_copies=true", work.link_id))
        .await
        .unwrap();
    assert_eq!(asked.status, 202, "{}", asked.body);
    runner::drain(&lg.ctx).await.unwrap();
    // The grant is revoked now: what happened is read from the emulator's record.
    let mut writes: Vec<(String, String)> = lg.emu.sends()[sent..]
        .iter()
        .map(|w| (w.method.clone(), w.event_id.clone()))
        .collect();
    writes.sort();
    let mut copies: Vec<(String, String)> = live[..3]
        .iter()
        .map(|(id, _)| ("DELETE".to_string(), id.clone()))
        .collect();
    copies.sort();
    assert_eq!(
        writes, copies,
        "the three copies are deleted; the calendar's own event is not touched, nothing else is written"
    );
    assert_eq!(
        lg.revocations().await.unwrap(),
        revoked + 1,
        "the grant is revoked after the copies are gone"
    );
    assert_eq!(
        api.get(&format!("/v1/links/{}", work.link_id))
            .await
            .unwrap()
            .status,
        404
    );
}

/// An Outlook calendar: the copies go in one `$batch`, the mailbox's own event stays.
#[tokio::test]
async fn an_outlook_calendar_loses_calsyncs_copies_in_a_batch() {
    let ctx = local_ctx().await;
    let lo = LocalOutlook::start(&ctx, GraphConfig::default())
        .await
        .unwrap();
    let srv = ApiServer::start_local(lo.ctx.clone()).await.unwrap();
    let user = fixtures::fresh_user();
    let api = srv.as_user(user);
    let group = group_with_home(&ctx, &api, "ormcopies", "remove outlook copies").await;
    let work = lo
        .connect(&group, user, "ormcopies-work", "work")
        .await
        .unwrap();
    lo.user(&work)
        .await
        .unwrap()
        .create(json!({"subject": "Work own",
            "start": {"dateTime": "2027-02-01T10:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2027-02-01T11:00:00", "timeZone": "W. Europe Standard Time"}}))
        .await
        .unwrap();
    runner::drain(&lo.ctx).await.unwrap();
    let cal = work.url.rsplit('/').next().unwrap().to_string();
    let subjects = || {
        let mut s: Vec<String> = lo
            .emu
            .items(&cal)
            .iter()
            .map(|i| i["subject"].as_str().unwrap_or_default().to_string())
            .collect();
        s.sort();
        s
    };
    assert_eq!(subjects(), ["Home a", "Home b", "Home c", "Work own"]);

    assert_eq!(lo.emu.subscriptions().len(), 1, "the link's subscription");
    let batches = lo.emu.stats().batches;
    let asked = api
        .delete(&format!("/v1/links/{}?remove_copies=true", work.link_id))
        .await
        .unwrap();
    assert_eq!(asked.status, 202, "{}", asked.body);
    runner::drain(&lo.ctx).await.unwrap();
    assert_eq!(subjects(), ["Work own"]);
    assert_eq!(lo.emu.stats().batches, batches + 1, "one $batch of deletes");
    assert!(
        lo.emu.subscriptions().is_empty(),
        "the subscription was deleted when removing began"
    );
    assert_eq!(
        api.get(&format!("/v1/links/{}", work.link_id))
            .await
            .unwrap()
            .status,
        404
    );
}

/// A removal that outlasts its run's time budget goes on in a new job: with no budget, each
/// job removes one page (50 copies) and queues the next, and the last one disconnects.
#[tokio::test]
async fn a_removal_past_its_time_budget_goes_on_in_a_new_job() {
    let mut ctx = local_ctx().await;
    let seed: Vec<String> = (0..55)
        .map(|i| fixtures::simple_event(&format!("rmbudget-{i}"), &format!("E{i}"), 1 + i % 28))
        .collect();
    let p = fixtures::pair(&ctx, "rmbudget", &seed).await.unwrap();
    assert_eq!(titles(&ctx, &p.xandikos).await.len(), 55);
    ctx.config.run_budget_secs = 0;
    let link = ctx.store().get_link(&p.x.link_id).await.unwrap().unwrap();
    calsync::disconnect::start_removing(&ctx, &link, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    runner::drain(&ctx).await.unwrap();
    assert!(
        titles(&ctx, &p.xandikos).await.is_empty(),
        "every copy is gone"
    );
    assert!(ctx.store().get_link(&p.x.link_id).await.unwrap().is_none());
    let mut runs: Vec<(String, u32)> = ctx
        .store()
        .runs_of_link(&p.x.link_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.trigger == calsync::disconnect::REMOVE_COPIES)
        .map(|r| (r.outcome, r.deleted))
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        [("continued".to_string(), 50), ("ok".to_string(), 5)],
        "one page, then the rest in the continuation"
    );
    assert_eq!(
        titles(&ctx, &p.radicale).await.len(),
        55,
        "the source keeps its events"
    );
}

/// A calendar that refuses the credentials stops the removal, with the reason on the link;
/// reconnecting it with the right password goes on, and the link is then disconnected.
#[tokio::test]
async fn a_removal_stopped_by_refused_credentials_goes_on_after_a_reconnection() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(fixtures::fresh_user());
    let group = group_with_home(&ctx, &api, "rmrecon", "remove after reconnecting").await;
    let work_cal = new_calendar(&ctx, Server::Radicale, &unique("rmrecon"))
        .await
        .unwrap();
    let work = connect(&api, &group, &work_cal, "work").await;
    runner::drain(&ctx).await.unwrap();
    let copies = ["Home a", "Home b", "Home c"];
    assert_eq!(titles(&ctx, &work_cal).await, copies);
    // The password calsync holds is no longer the server's.
    let arn = ctx
        .store()
        .get_link(&work)
        .await
        .unwrap()
        .unwrap()
        .secret_arn
        .unwrap();
    let wrong = json!({"username": fixtures::USER, "password": "not the password"});
    calsync::secrets::replace_json(&ctx.clients.secrets, &arn, &wrong)
        .await
        .unwrap();
    let link = format!("/v1/links/{work}");
    let asked = api
        .delete(&format!("{link}?remove_copies=true"))
        .await
        .unwrap();
    assert_eq!(asked.status, 202, "{}", asked.body);
    runner::drain(&ctx).await.unwrap();
    let stuck = api.get(&link).await.unwrap().body;
    assert_eq!(stuck["status"], "removing", "{stuck}");
    assert!(
        stuck["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be removed"),
        "{stuck}"
    );
    assert_eq!(titles(&ctx, &work_cal).await, copies, "nothing removed yet");

    let right = json!({"username": fixtures::USER, "password": fixtures::PASSWORD});
    let again = api
        .post(&format!("{link}/reconnect"), &right)
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["status"], "removing");
    runner::drain(&ctx).await.unwrap();
    assert!(
        titles(&ctx, &work_cal).await.is_empty(),
        "the copies are gone"
    );
    assert_eq!(api.get(&link).await.unwrap().status, 404, "disconnected");
}

/// A Google grant revoked meanwhile stops the removal, with the reason on the link; a new
/// consent for the link goes on removing (the consent path of `disconnect::resume_removing`),
/// and once the copies are gone the link is disconnected.
#[tokio::test]
async fn a_removal_stopped_by_a_revoked_grant_goes_on_after_a_new_consent() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default()).await.unwrap();
    let srv = ApiServer::start_local(lg.ctx.clone()).await.unwrap();
    let user = fixtures::fresh_user();
    let api = srv.as_user(user);
    let group = group_with_home(&ctx, &api, "grmrenew", "remove after a new consent").await;
    let work = lg
        .connect(&group, user, "grmrenew-work@example.com", "work")
        .await
        .unwrap();
    runner::drain(&lg.ctx).await.unwrap();
    let google = lg.user_api(&work).await.unwrap();
    let copies = live_events(&google).await;
    let titles: Vec<&str> = copies.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(titles, ["Home a", "Home b", "Home c"]);
    // The grant is revoked below: what calsync wrote is read from the emulator's record.
    let sent = lg.emu.sends().len();
    let deletes = || {
        let mut d: Vec<String> = lg.emu.sends()[sent..]
            .iter()
            .filter(|w| w.method == "DELETE")
            .map(|w| w.event_id.clone())
            .collect();
        d.sort();
        d
    };
    // The user revokes calsync's access at Google.
    lg.revoke_grant(&work).await.unwrap();
    let arn = work.secret_arn.clone().unwrap();
    let mut tokens = calsync::oauth::read_tokens(&lg.ctx, &arn).await.unwrap();
    // An access token still valid would delete at once: let the job need a refresh.
    tokens.expires_at = 0;
    calsync::oauth::write_tokens(&lg.ctx, &arn, &tokens)
        .await
        .unwrap();
    let link = format!("/v1/links/{}", work.link_id);
    let asked = api
        .delete(&format!("{link}?remove_copies=true"))
        .await
        .unwrap();
    assert_eq!(asked.status, 202, "{}", asked.body);
    runner::drain(&lg.ctx).await.unwrap();
    let stuck = api.get(&link).await.unwrap().body;
    assert_eq!(stuck["status"], "removing", "{stuck}");
    assert!(stuck["status_reason"].is_string(), "{stuck}");
    assert!(deletes().is_empty(), "nothing removed yet");
    // The token refresher meets the refused grant too, and leaves the link removing.
    let now = calsync::config::now_secs();
    lg.ctx
        .store()
        .update_link_fields(
            &work.link_id,
            vec![
                ("token_expires_at", lg.ctx.store().attr(now).unwrap()),
                ("upkeep_at", lg.ctx.store().attr(now).unwrap()),
            ],
        )
        .await
        .unwrap();
    calsync::refresher::run(&lg.ctx).await.unwrap();
    let still = api.get(&link).await.unwrap().body;
    assert_eq!(still["status"], "removing", "{still}");

    let parked = ctx.store().get_link(&work.link_id).await.unwrap().unwrap();
    let url = calsync::connect::start_reconnect(&lg.ctx, &parked)
        .await
        .unwrap();
    let back = lg.finish_reconnect(&url).await.unwrap();
    assert_eq!(back.link_id, work.link_id, "the same link");
    assert_eq!(back.status, calsync::model::LinkStatus::Removing);
    runner::drain(&lg.ctx).await.unwrap();
    let mut ids: Vec<String> = copies.into_iter().map(|(id, _)| id).collect();
    ids.sort();
    assert_eq!(deletes(), ids, "the copies are gone");
    assert_eq!(api.get(&link).await.unwrap().status, 404, "disconnected");
}
