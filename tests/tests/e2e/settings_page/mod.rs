//! The settings page (`/app/`) in a real browser (headless Chromium through chromedriver):
//! signed out, empty, connecting a Radicale calendar through the form (a wrong password's
//! error at the password field), setting the frequency, Sync now until the run appears, a
//! conflict made by editing both sides and resolved with "Keep this one", and Disconnect
//! behind its confirmation; the events a calendar refused, with the server's reason; a
//! calendar waiting for reconnection reconnected, a quarantined deletion let through, and a
//! Google calendar connected through its consent window (the emulator); and an application
//! on another origin framing the page and handing it the token by `postMessage`; what a
//! calendar gets of the others (title pattern, window) and, for Outlook, its attendees; a
//! calendar's older syncs, a page at a time; and a calendar disconnected with its copies
//! removed.
//! Every screen is checked with axe-core and saved as a screenshot at desktop and phone width
//! (`target/screenshots/`).

mod embedding;
mod first_use;
mod history;
mod leaving;
mod recovery;
mod what_a_calendar_gets;

use calsync_e2e::api::ApiClient;
use calsync_e2e::browser::Browser;
use calsync_e2e::fixtures::{PASSWORD, USER};
use calsync_e2e::runner;
use std::time::Duration;

/// The browser's time zone: far from UTC, so a time shown in UTC would be caught.
pub(super) const ZONE: &str = "Pacific/Auckland";

pub(super) fn fresh_user() -> i64 {
    3_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64
}

/// Drain the queues until the page's element `css` says `want` (the page polls the API on
/// its own; the queue runner stands in for the SQS event source mappings).
pub(super) async fn drain_until(
    ctx: &calsync::config::Ctx,
    b: &Browser,
    css: &str,
    want: &str,
) -> String {
    b.text_contains_while(css, want, Duration::from_secs(60), async || {
        runner::drain(ctx).await.map(|_| ())
    })
    .await
    .unwrap()
}

/// Press the card's "Sync now", run the queued pull once the page says it is queued, and
/// wait for the page to report the run; its words must contain `want`.
pub(super) async fn sync_now(ctx: &calsync::config::Ctx, b: &Browser, card: &str, want: &str) {
    b.click(&format!("{card} [data-action=sync]"))
        .await
        .unwrap();
    let progress = format!("{card} .progress");
    b.text_contains(&progress, "Sync queued").await.unwrap();
    let done = drain_until(ctx, b, &progress, "Sync finished").await;
    assert!(done.contains(want), "{done}");
}

/// Connect the CalDAV calendar at `url` to `group` through the API; the link id.
pub(super) async fn connect(api: &ApiClient, group: &str, url: &str, name: &str) -> String {
    let r = api
        .post(
            &format!("/v1/groups/{group}/links"),
            &serde_json::json!({"provider": "caldav", "url": url, "username": USER,
                                "password": PASSWORD, "display_name": name}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["link_id"].as_str().unwrap().to_string()
}
