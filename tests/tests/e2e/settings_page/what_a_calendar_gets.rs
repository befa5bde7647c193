//! What a calendar gets of the group's other calendars, set in the page: a title pattern and
//! a window of days around today, each refused at its field when wrong (the pattern by the
//! API, the window's days by the page), kept when other settings are
//! saved, and cleared; for an Outlook calendar alone, whether attendees are written; and
//! no invitations the user declined, once the page has their address.

use calsync_e2e::api::ApiServer;
use calsync_e2e::browser::Browser;
use calsync_e2e::emulators::graph::Config as GraphConfig;
use calsync_e2e::fixtures::{self, new_calendar, unique, Server};
use calsync_e2e::local_ctx;
use calsync_e2e::outlook::LocalOutlook;
use calsync_e2e::runner;
use serde_json::json;

use super::{connect, fresh_user, ZONE};

#[tokio::test]
async fn a_calendars_title_pattern_window_and_attendees_are_set_in_the_page() {
    let lo = LocalOutlook::start(&local_ctx().await, GraphConfig::default())
        .await
        .unwrap();
    let srv = ApiServer::start_local(lo.ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let group = api.create_group("what it gets").await.unwrap();
    let radicale = new_calendar(&lo.ctx, Server::Radicale, &unique("page-gets"))
        .await
        .unwrap();
    let work = connect(&api, &group, &radicale, "Work").await;
    let consent = lo.consent_url(&group, user, "", "Outlook").await.unwrap();
    let outlook = lo.open_consent(&consent).await.unwrap().link_id;
    let (card, o_card) = (
        format!("[data-link=\"{work}\"]"),
        format!("[data-link=\"{outlook}\"]"),
    );
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    b.open(
        &format!("{}/app/#token={token}", srv.url),
        &format!("#template-{work}"),
    )
    .await
    .unwrap();
    let save = async |card: &str| {
        b.js("document.getElementById('status').textContent = ''", vec![])
            .await
            .unwrap();
        b.click(&format!("{card} .settings button")).await.unwrap();
    };
    let link = async |id: &str| api.get(&format!("/v1/links/{id}")).await.unwrap().body;
    // No transforms, as the API shows them.
    let none = link(&work).await["transforms"].clone();
    assert!(none.get("title_template").is_none(), "{none}");

    // A pattern without {title} is the API's refusal, at its field.
    b.fill(&format!("#template-{work}"), "Personal")
        .await
        .unwrap();
    save(&card).await;
    b.text_contains(&format!("#template-{work}-error"), "Must contain {title}")
        .await
        .unwrap();
    // Days beyond ten years are the page's.
    b.fill(&format!("#template-{work}"), "{title} (personal)")
        .await
        .unwrap();
    b.fill(&format!("#past-{work}"), "4000").await.unwrap();
    save(&card).await;
    b.text_contains(&format!("#window-{work}-error"), "Enter whole days")
        .await
        .unwrap();
    assert_eq!(
        b.js(
            &format!("const e = document.getElementById('template-{work}-error'); return [e.hidden, document.getElementById('template-{work}').hasAttribute('aria-invalid')]"),
            vec![]
        )
        .await
        .unwrap(),
        json!([true, false]),
        "the earlier error is cleared"
    );
    // A window of no days at all, too.
    b.fill(&format!("#past-{work}"), "0").await.unwrap();
    b.fill(&format!("#future-{work}"), "0").await.unwrap();
    save(&card).await;
    b.text_contains(&format!("#window-{work}-error"), "Enter at least one day")
        .await
        .unwrap();
    assert_eq!(link(&work).await["transforms"], none, "nothing saved yet");
    b.accessible("what a calendar gets, refused").await.unwrap();
    b.screenshots("11-what-a-calendar-gets").await.unwrap();

    b.fill(&format!("#past-{work}"), "7").await.unwrap();
    b.fill(&format!("#future-{work}"), "60").await.unwrap();
    save(&card).await;
    b.text_contains("#status", "saved").await.unwrap();
    let want = json!({"title_template": "{title} (personal)", "window": {"past_days": 7, "future_days": 60}});
    let t = &link(&work).await["transforms"];
    assert_eq!(
        (&t["title_template"], &t["window"], &t["busy_only"]),
        (&want["title_template"], &want["window"], &json!(false)),
        "{t}"
    );
    // Another setting saved: the pattern and the window stay (the form shows them).
    b.choose(&format!("#freq-{work}"), "daily").await.unwrap();
    save(&card).await;
    b.text_contains("#status", "saved").await.unwrap();
    let l = link(&work).await;
    assert_eq!(
        (&l["frequency_secs"], &l["transforms"]["window"]),
        (&json!(86_400), &want["window"])
    );
    // Both cleared.
    b.fill(&format!("#template-{work}"), "").await.unwrap();
    b.fill(&format!("#past-{work}"), "").await.unwrap();
    b.fill(&format!("#future-{work}"), "").await.unwrap();
    save(&card).await;
    b.text_contains("#status", "saved").await.unwrap();
    assert_eq!(link(&work).await["transforms"], none);

    // Attendees: a choice of the Outlook calendar only.
    assert_eq!(
        b.js(
            &format!("return document.getElementById('attendees-{work}') === null"),
            vec![]
        )
        .await
        .unwrap(),
        json!(true)
    );
    assert_eq!(link(&outlook).await["write_attendees"], json!(false));
    b.click(&format!("#attendees-{outlook}")).await.unwrap();
    save(&o_card).await;
    b.text_contains("#status", "saved").await.unwrap();
    let l = link(&outlook).await;
    assert_eq!(
        (&l["write_attendees"], &l["transforms"]),
        (&json!(true), &none),
        "only the attendees changed"
    );
    b.accessible("what a calendar gets").await.unwrap();
    b.close().await.unwrap();
}

/// "Leave out the invitations you declined": the page asks for the address the invitations
/// come to (refused at that field without one), saves both, and the calendar then gets the
/// other calendar's events but the meeting its user declined.
#[tokio::test]
async fn invitations_the_user_declined_are_left_out_once_the_page_has_their_address() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let user = fresh_user();
    let api = srv.as_user(user);
    let group = api.create_group("what it gets: declined").await.unwrap();
    let work_cal = new_calendar(&ctx, Server::Radicale, &unique("page-declined"))
        .await
        .unwrap();
    let work = connect(&api, &group, &work_cal, "Work").await;
    let card = format!("[data-link=\"{work}\"]");
    let b = Browser::start(ZONE).await.unwrap();
    let token = srv.issuer.token(user);
    b.open(
        &format!("{}/app/#token={token}", srv.url),
        &format!("#declined-{work}"),
    )
    .await
    .unwrap();
    let save = async || {
        b.js("document.getElementById('status').textContent = ''", vec![])
            .await
            .unwrap();
        b.click(&format!("{card} .settings button")).await.unwrap();
    };
    let transforms =
        async || api.get(&format!("/v1/links/{work}")).await.unwrap().body["transforms"].clone();
    let none = transforms().await;

    // The box alone: the page asks for the address, at its field.
    b.click(&format!("#declined-{work}")).await.unwrap();
    save().await;
    b.text_contains(&format!("#self-{work}-error"), "Enter the address")
        .await
        .unwrap();
    assert_eq!(transforms().await, none, "nothing saved");
    b.accessible("declined invitations, refused").await.unwrap();
    b.fill(&format!("#self-{work}"), "me@example.com")
        .await
        .unwrap();
    save().await;
    b.text_contains("#status", "saved").await.unwrap();
    let t = transforms().await;
    assert_eq!(
        (&t["exclude_declined"], &t["self_address"]),
        (&json!(true), &json!("me@example.com")),
        "{t}"
    );

    // The other calendar's events arrive: all but the meeting declined there.
    let home_cal = new_calendar(&ctx, Server::Radicale, &unique("page-declined-home"))
        .await
        .unwrap();
    let declined = fixtures::simple_event("page-declined-1", "Planning", 4).replace(
        "LOCATION:Room 1\r\n",
        "LOCATION:Room 1\r\nORGANIZER:mailto:boss@example.com\r\n\
ATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com\r\n",
    );
    fixtures::client_put(&ctx, &home_cal, &declined)
        .await
        .unwrap();
    fixtures::client_put(
        &ctx,
        &home_cal,
        &fixtures::simple_event("page-declined-2", "Lunch", 5),
    )
    .await
    .unwrap();
    connect(&api, &group, &home_cal, "Home").await;
    runner::drain(&ctx).await.unwrap();
    assert_eq!(
        fixtures::titles_in(&ctx, &home_cal).await.unwrap(),
        ["Lunch", "Planning"]
    );
    assert_eq!(
        fixtures::titles_in(&ctx, &work_cal).await.unwrap(),
        ["Lunch"],
        "the declined meeting is left out"
    );
    b.accessible("declined invitations").await.unwrap();
    b.close().await.unwrap();
}
