//! `make run`: the main job on the local stack.
//!
//! Imports a calendar (the built-in sample, or `--ics FILE`) into a Radicale calendar the way
//! a user's client would (one PUT per UID). Then, as an application would, through the API
//! (`/v1`, a development token): creates a sync group and connects that calendar, an empty
//! Xandikos calendar, a small ICS subscription and a Google calendar (the emulator, through
//! the consent URL the API answers), syncs to quiescence through the Lambda handlers, and
//! shows both directions: a demo event created on Xandikos, edited on Radicale, deleted on
//! Xandikos, one occurrence of a demo series moved, a hub event written and edited through
//! the API arriving everywhere, a manual conflict resolved through the API, and the series
//! renamed on Google, then on Outlook, each reaching the CalDAV members through a push
//! notification (Google channel, Graph subscription) without
//! the schedule. Prints a report (with the Google requests and the API calls) and whether
//! all members converged.

use std::collections::BTreeSet;
use std::time::Instant;

use calsync::config::Ctx;
use calsync::ical::{EventSeries, Occurrence};
use calsync::model::Link;
use chrono::{Duration, Utc};

use crate::api::ApiServer;
use crate::emulators::google::Config as GoogleConfig;
use crate::feed::FeedServer;
use crate::fixtures::{self, Server};
use crate::google::{google_series, LocalGoogle};

mod app;
mod calendars;
mod import;
mod outlook;

pub use calendars::SAMPLE;
use calendars::{demo_event, demo_series, feed, DEMO_EVENT, DEMO_SERIES, MOVED_SUMMARY};

const USER_ID: i64 = 282;
const RENAMED_ON_GOOGLE: &str = "Demo series (renamed on Google)";

/// Occurrences of a set of series in `[now, now + 365 days)`.
pub fn occurrences_next_year<'a>(
    series: impl IntoIterator<Item = &'a EventSeries>,
) -> BTreeSet<Occurrence> {
    let from = Utc::now();
    let to = from + Duration::days(365);
    series
        .into_iter()
        .flat_map(|s| s.occurrences(from, to, 50_000).0)
        .collect()
}

/// A calendar's state as seen by a client: UIDs and occurrences in the next 365 days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Distinct UIDs.
    pub uids: BTreeSet<String>,
    /// Occurrences in the next 365 days.
    pub occurrences: BTreeSet<Occurrence>,
}

impl Snapshot {
    /// The snapshot without the given UIDs.
    pub fn without(mut self, uids: &BTreeSet<String>) -> Self {
        self.uids.retain(|u| !uids.contains(u));
        self.occurrences.retain(|o| !uids.contains(&o.uid));
        self
    }
}

/// Snapshot of a CalDAV calendar.
pub async fn snapshot(ctx: &Ctx, url: &str) -> anyhow::Result<Snapshot> {
    let events = fixtures::events_in(ctx, url).await?;
    Ok(Snapshot {
        uids: events.iter().map(|(_, s)| s.uid.clone()).collect(),
        occurrences: occurrences_next_year(events.iter().map(|(_, s)| s)),
    })
}

/// Snapshot of the hub (live events of the group).
pub async fn hub_snapshot(ctx: &Ctx, group: &str) -> anyhow::Result<Snapshot> {
    let events = ctx.store().events_of_group(group).await?;
    let series: Vec<EventSeries> = events
        .iter()
        .filter(|e| !e.deleted)
        .filter_map(|e| EventSeries::parse_single(&e.uid, &e.ical).ok())
        .collect();
    Ok(Snapshot {
        uids: series.iter().map(|s| s.uid.clone()).collect(),
        occurrences: occurrences_next_year(&series),
    })
}

/// Totals of a link's run records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkTotals {
    /// Provider requests.
    pub requests: u32,
    /// Created, updated, deleted.
    pub created: u32,
    /// Updated.
    pub updated: u32,
    /// Deleted.
    pub deleted: u32,
    /// Conflicts.
    pub conflicts: u32,
    /// Events in error.
    pub errors: u32,
    /// Runs.
    pub runs: u32,
}

/// Sum of the run records of a link.
pub async fn totals(ctx: &Ctx, link_id: &str) -> anyhow::Result<LinkTotals> {
    let mut t = LinkTotals::default();
    for r in ctx.store().runs_of_link(link_id).await? {
        t.requests += r.api_calls;
        t.created += r.created;
        t.updated += r.updated;
        t.deleted += r.deleted;
        t.conflicts += r.conflicts;
        t.errors += r.errors;
        t.runs += 1;
    }
    Ok(t)
}

/// Run the demo; returns `Ok(true)` when all members converged. `name` names the demo
/// calendars and group (default `demo`), so several demos can share one stack.
pub async fn run(ics: Option<&str>, name: Option<&str>) -> anyhow::Result<bool> {
    let name_tag = name.unwrap_or("demo");
    let user_id = match name {
        None => USER_ID,
        Some(n) => {
            10_000
                + (n.bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
                    % 1_000_000_000) as i64
        }
    };
    let started = Instant::now();
    // The Google emulator and the webhook receiver's routes on local ports; the context's
    // webhook URL points at them, so channels started for the Google link deliver there.
    let google = LocalGoogle::start(&crate::local_ctx().await, GoogleConfig::default()).await?;
    let ctx = google.ctx.clone();
    // The Graph emulator beside it, on the same webhook receiver.
    let lo = crate::outlook::LocalOutlook::beside(
        &ctx,
        &google.hooks.url,
        crate::emulators::graph::Config::default(),
    )
    .await?;
    let radicale = fixtures::new_calendar(&ctx, Server::Radicale, name_tag).await?;
    let xandikos = fixtures::new_calendar(&ctx, Server::Xandikos, name_tag).await?;
    let import::Imported {
        parsed,
        rejected,
        had_events,
    } = import::seed(&ctx, ics, &radicale).await?;

    let feed = FeedServer::start(&feed(), true).await?;
    // The application's side: the API with a development issuer, a token for the user.
    let srv = ApiServer::start_local(ctx.clone()).await?;
    let api = srv.as_user(user_id);
    let group = &api.create_group(name_tag).await?;
    let caldav = |url: &str, name: &str| {
        serde_json::json!({"provider": "caldav", "url": url, "username": fixtures::USER,
            "password": fixtures::PASSWORD, "display_name": name})
    };
    let mut links: Vec<Link> = vec![
        app::connect_link(&ctx, &api, group, caldav(&radicale, "radicale")).await?,
        app::connect_link(&ctx, &api, group, caldav(&xandikos, "xandikos")).await?,
        app::connect_link(
            &ctx,
            &api,
            group,
            serde_json::json!({"provider": "ics", "url": feed.url, "display_name": "holiday-feed"}),
        )
        .await?,
    ];
    let gcal = format!("{name_tag}@calsync.example");
    let consent = api
        .post(
            &format!("/v1/groups/{group}/links/oauth/google"),
            &serde_json::json!({"calendar_id": gcal, "display_name": "google"}),
        )
        .await?;
    anyhow::ensure!(
        consent.status == 200,
        "consent URL: {} {}",
        consent.status,
        consent.body
    );
    let url = consent.body["consent_url"].as_str().unwrap_or_default();
    let g = google.finish_consent(&gcal, "google", url).await?;
    println!(
        "API {}/v1: group {group}; connected Radicale, Xandikos and the feed (POST …/links), and \
Google calendar {gcal} (emulator at {}) through the consent URL the API answered: tokens in \
Secrets Manager ({}), push channel to {}",
        srv.url,
        google.emu.url,
        g.secret_arn.as_deref().unwrap_or("?"),
        google.hooks.push_url()
    );
    links.push(g.clone());
    let o = outlook::connect(&api, group, &lo, name_tag).await?;
    links.push(o.clone());

    step(&ctx, user_id, "linking").await?;
    // A second round reaches quiescence: nothing left to write anywhere.
    step(&ctx, user_id, "quiescence check").await?;

    fixtures::client_put(
        &ctx,
        &xandikos,
        &demo_event("Demo event (created on Xandikos)"),
    )
    .await?;
    fixtures::client_put(&ctx, &xandikos, &demo_series(false)).await?;
    step(
        &ctx,
        user_id,
        "creating a demo event and a demo series on Xandikos",
    )
    .await?;
    expect_summary(
        &ctx,
        &radicale,
        DEMO_EVENT,
        Some("Demo event (created on Xandikos)"),
    )
    .await?;

    fixtures::client_edit(&ctx, &radicale, DEMO_EVENT, |_| {
        demo_event("Demo event (edited on Radicale)")
    })
    .await?;
    step(&ctx, user_id, "editing it on Radicale").await?;
    expect_summary(
        &ctx,
        &xandikos,
        DEMO_EVENT,
        Some("Demo event (edited on Radicale)"),
    )
    .await?;

    fixtures::client_delete(&ctx, &xandikos, DEMO_EVENT).await?;
    step(&ctx, user_id, "deleting it on Xandikos").await?;
    expect_summary(&ctx, &radicale, DEMO_EVENT, None).await?;

    fixtures::client_edit(&ctx, &radicale, DEMO_SERIES, |_| demo_series(true)).await?;
    step(
        &ctx,
        user_id,
        "moving one occurrence of the demo series on Radicale",
    )
    .await?;

    app::writes_and_conflict(
        &ctx,
        &api,
        group,
        user_id,
        [&radicale, &xandikos],
        &links[0].link_id,
    )
    .await?;

    // A person renames the series in Google (another app): Google notifies our webhook, which
    // queues the sync; the queues are drained, the schedule is not fired.
    let gapi = google.user_api(&g).await?;
    let master = gapi
        .list()
        .await?
        .into_iter()
        .find(|e| e["iCalUID"] == DEMO_SERIES && e["recurringEventId"].is_null())
        .ok_or_else(|| anyhow::anyhow!("{DEMO_SERIES} not in Google"))?;
    let delivered = google.emu.push_deliveries().len();
    gapi.patch(
        master["id"].as_str().unwrap_or_default(),
        serde_json::json!({"summary": RENAMED_ON_GOOGLE}),
    )
    .await?;
    let push = google
        .emu
        .wait_for_delivery(
            delivered,
            |d| d.state == "exists",
            std::time::Duration::from_secs(30),
        )
        .await
        .ok_or_else(|| anyhow::anyhow!("Google sent no push notification within 30 s"))?;
    anyhow::ensure!(
        push.status == 200,
        "the webhook receiver answered {} to the push notification",
        push.status
    );
    let stats = crate::runner::drain(&ctx).await?;
    println!(
        "renaming the series on Google: push message #{} → webhook 200 → sync job; no schedule: {} pulls, {} pushes",
        push.number, stats.pulls, stats.pushes
    );
    expect_summary(&ctx, &radicale, DEMO_SERIES, Some(RENAMED_ON_GOOGLE)).await?;
    expect_summary(&ctx, &xandikos, DEMO_SERIES, Some(RENAMED_ON_GOOGLE)).await?;

    // And renamed once more in Outlook, through a Graph change notification.
    outlook::rename(&ctx, &lo, &o, DEMO_SERIES).await?;
    expect_summary(
        &ctx,
        &radicale,
        DEMO_SERIES,
        Some(outlook::RENAMED_ON_OUTLOOK),
    )
    .await?;
    expect_summary(
        &ctx,
        &xandikos,
        DEMO_SERIES,
        Some(outlook::RENAMED_ON_OUTLOOK),
    )
    .await?;

    // Report.
    // Invariant 1 holds modulo reported provider limits: events a member refused (status
    // `error` on its link) are listed and left out of the comparison.
    let mut refused = BTreeSet::new();
    for l in &links {
        for m in ctx.store().mappings_of_link(&l.link_id).await? {
            if m.status == calsync::model::EventStatus::Error {
                println!(
                    "not on {}: {} — {}",
                    l.display_name,
                    m.uid,
                    m.error.as_deref().unwrap_or("error")
                );
                refused.insert(m.uid);
            }
        }
    }
    let hub = hub_snapshot(&ctx, group).await?.without(&refused);
    let r = snapshot(&ctx, &radicale).await?.without(&refused);
    let x = snapshot(&ctx, &xandikos).await?.without(&refused);
    let google_requests_before_report = google.emu.requests();
    let gseries: Vec<EventSeries> = google_series(&google.provider(&g).await?)
        .await?
        .into_iter()
        .filter(|s| !refused.contains(&s.uid))
        .collect();
    let gs = Snapshot {
        uids: gseries.iter().map(|s| s.uid.clone()).collect(),
        occurrences: occurrences_next_year(&gseries),
    };
    // Google holds, of every event, what Google can hold (its projection); properties it
    // cannot carry stay in the hub and on the CalDAV members.
    let mut unlike_google = Vec::new();
    for (_, s) in fixtures::events_in(&ctx, &radicale).await? {
        if refused.contains(&s.uid) {
            continue;
        }
        let projected = calsync::provider::google::mapping::project(&s.to_ical())
            .and_then(|p| EventSeries::parse_single("projection", &p).ok());
        let held = gseries.iter().find(|g| g.uid == s.uid);
        match (projected, held) {
            (Some(p), Some(h)) if h.same_content(&p) => {}
            _ => unlike_google.push(s.uid.clone()),
        }
    }
    let rad_series: Vec<EventSeries> = fixtures::events_in(&ctx, &radicale)
        .await?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let out = outlook::report(&lo, &o, &rad_series, &refused).await?;
    let os = Snapshot {
        uids: out.series.iter().map(|s| s.uid.clone()).collect(),
        occurrences: occurrences_next_year(&out.series),
    };
    let moved = x.occurrences.iter().any(|o| o.summary == MOVED_SUMMARY);
    println!();
    println!(
        "{:<14} {:>7} {:>22}",
        "calendar", "events", "occurrences (365 days)"
    );
    println!(
        "{:<14} {:>7} {:>22}",
        "hub",
        hub.uids.len(),
        hub.occurrences.len()
    );
    println!(
        "{:<14} {:>7} {:>22}",
        "radicale",
        r.uids.len(),
        r.occurrences.len()
    );
    println!(
        "{:<14} {:>7} {:>22}",
        "xandikos",
        x.uids.len(),
        x.occurrences.len()
    );
    println!(
        "{:<14} {:>7} {:>22}",
        "google",
        gs.uids.len(),
        gs.occurrences.len()
    );
    println!(
        "{:<14} {:>7} {:>22}",
        "outlook",
        os.uids.len(),
        os.occurrences.len()
    );
    println!();
    println!(
        "{:<14} {:>5} {:>9} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "link", "runs", "requests", "created", "updated", "deleted", "conflicts", "errors"
    );
    for l in &links {
        let t = totals(&ctx, &l.link_id).await?;
        println!(
            "{:<14} {:>5} {:>9} {:>8} {:>8} {:>8} {:>9} {:>7}",
            l.display_name,
            t.runs,
            t.requests,
            t.created,
            t.updated,
            t.deleted,
            t.conflicts,
            t.errors
        );
    }
    let sends = google.emu.sends();
    let calsync_writes: Vec<_> = sends
        .iter()
        .filter(|w| w.send_updates.as_deref() != Some(crate::google::USER_SEND_UPDATES))
        .collect();
    let notifying = calsync_writes
        .iter()
        .filter(|w| w.send_updates.as_deref() != Some("none"))
        .count();
    let deliveries = google.emu.push_deliveries();
    println!();
    println!(
        "Google emulator: {google_requests_before_report} API calls served during the sync (each \
call of a batch counts, as for quota; {} writes by calsync, {notifying} of them with \
sendUpdates other than none); {} push messages delivered ({} answered 200)",
        calsync_writes.len(),
        deliveries.len(),
        deliveries.iter().filter(|d| d.status == 200).count()
    );
    println!(
        "API: {} calls as user {user_id} (groups, links, consent, hub event writes, conflict listing and resolution)",
        api.calls()
    );
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "calendars: {radicale} and {xandikos} (user {}, password {}); feed {}",
        fixtures::USER,
        fixtures::PASSWORD,
        feed.url
    );
    let feed_in_all = [
        "feed-holiday-1@calsync.example",
        "feed-holiday-2@calsync.example",
    ]
    .iter()
    .all(|u| r.uids.contains(*u) && x.uids.contains(*u) && gs.uids.contains(*u));
    let google_same = gs.uids == x.uids && unlike_google.is_empty();
    let outlook_same = os.uids == x.uids && out.unlike.is_empty();
    let converged =
        r == x && x == hub && google_same && outlook_same && feed_in_all && moved && notifying == 0;
    if converged {
        let note = if refused.is_empty() {
            String::new()
        } else {
            format!(" ({} refused by a server, listed above)", refused.len())
        };
        println!(
            "converged: yes — hub, Radicale, Xandikos, Google and Outlook hold the same {} events and {} occurrences{note}",
            hub.uids.len(),
            hub.occurrences.len()
        );
    } else {
        let diff: Vec<&String> = r.uids.symmetric_difference(&x.uids).collect();
        println!(
            "converged: NO — UIDs differing between Radicale and Xandikos: {diff:?}; occurrences equal: {}; hub equal: {}; feed events everywhere: {feed_in_all}; moved occurrence arrived: {moved}; Google differs on {unlike_google:?} (UIDs equal: {}); Google writes notifying guests: {notifying}; Outlook differs on {:?} (UIDs equal: {})",
            r.occurrences == x.occurrences,
            x == hub,
            gs.uids == x.uids,
            out.unlike,
            os.uids == x.uids
        );
    }
    println!(
        "events not synced: {} unreadable in the file, {rejected} refused on import, {} refused by a member",
        parsed.errors.len(),
        refused.len()
    );
    let imported_none = had_events && parsed.series.len() == rejected;
    if imported_none {
        println!("error: the calendar has events, but none could be imported (see above)");
    }
    // The emulators stop with this process: stop the links' push channels while they can
    // answer. The links themselves go with the emulators when `google` and `lo` are dropped
    // ([`crate::forget_links_at`]), so later schedules (`calsync-local serve`) and the token
    // refresher do not try a dead address.
    calsync::push::stop_channels_of(&ctx, &o.link_id).await?;
    calsync::push::stop_channels_of(&ctx, &g.link_id).await?;
    Ok(converged && !imported_none)
}

pub(crate) async fn step(ctx: &Ctx, user_id: i64, label: &str) -> anyhow::Result<()> {
    let stats = fixtures::sync_user(ctx, user_id).await?;
    println!(
        "sync after {label}: {} pulls, {} pushes, {} retried",
        stats.pulls, stats.pushes, stats.failures
    );
    Ok(())
}

pub(crate) async fn expect_summary(
    ctx: &Ctx,
    url: &str,
    uid: &str,
    want: Option<&str>,
) -> anyhow::Result<()> {
    let events = fixtures::events_in(ctx, url).await?;
    let got = events
        .iter()
        .find(|(_, s)| s.uid == uid)
        .map(|(_, s)| s.summary());
    anyhow::ensure!(
        got.as_deref() == want,
        "{url}: {uid}: expected {want:?}, found {got:?}"
    );
    Ok(())
}
