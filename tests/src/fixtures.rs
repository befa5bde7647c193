//! Fixtures: fresh CalDAV calendars on Radicale and Xandikos, links with credentials in
//! Secrets Manager, and helpers to act like a user's CalDAV client.

use calsync::config::Ctx;
use calsync::ical::EventSeries;
use calsync::model::{Link, ProviderKind};
use calsync::provider::caldav::CalDav;
use calsync::provider::Provider;
use calsync::queue::{QueueKind, SyncJob};
use secrecy::SecretString;

/// Radicale's base URL: `CALSYNC_RADICALE_URL`, default `http://127.0.0.1:5232`.
pub fn radicale_base() -> String {
    std::env::var("CALSYNC_RADICALE_URL").unwrap_or_else(|_| "http://127.0.0.1:5232".into())
}

/// Xandikos' base URL: `CALSYNC_XANDIKOS_URL`, default `http://127.0.0.1:8080`.
pub fn xandikos_base() -> String {
    std::env::var("CALSYNC_XANDIKOS_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}
/// Demo/test account on both servers (Radicale htpasswd; Xandikos has no auth).
pub const USER: &str = "alice";
/// Its password (a local demo credential, see README).
pub const PASSWORD: &str = "alice-demo-pw";

/// Which local CalDAV server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Radicale (127.0.0.1:5232).
    Radicale,
    /// Xandikos (127.0.0.1:8080).
    Xandikos,
}

impl Server {
    /// URL of the calendar collection `name` for [`USER`].
    pub fn calendar_url(self, name: &str) -> String {
        match self {
            Server::Radicale => format!("{}/{USER}/{name}/", radicale_base()),
            Server::Xandikos => format!("{}/{USER}/calendars/{name}/", xandikos_base()),
        }
    }
}

/// A CalDAV client for a calendar, acting as the user's own client.
pub fn client(ctx: &Ctx, url: &str) -> CalDav {
    CalDav::new(
        ctx.clients.http.clone(),
        url,
        USER,
        SecretString::from(PASSWORD.to_string()),
        false,
    )
    .expect("valid URL")
}

/// Create an empty calendar `name` on `server` and return its URL.
pub async fn new_calendar(ctx: &Ctx, server: Server, name: &str) -> anyhow::Result<String> {
    let url = server.calendar_url(name);
    let c = client(ctx, &url);
    // Discovery also makes Radicale create the principal's home on first login.
    let root = match server {
        Server::Radicale => radicale_base(),
        Server::Xandikos => xandikos_base(),
    };
    c.discover(&format!("{root}/")).await?;
    c.mkcalendar(name).await?;
    Ok(url)
}

/// A unique id with a readable prefix.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

/// Store the CalDAV credentials in Secrets Manager and the link in DynamoDB.
pub async fn add_caldav_link(ctx: &Ctx, link: &mut Link) -> anyhow::Result<()> {
    let arn = calsync::secrets::put_caldav_credentials(
        &ctx.clients.secrets,
        &format!("calsync/{}", link.link_id),
        USER,
        &SecretString::from(PASSWORD.to_string()),
    )
    .await?;
    link.secret_arn = Some(arn);
    ctx.store().put_link(link).await?;
    Ok(())
}

/// A CalDAV link with the defaults, stored with its secret.
pub async fn caldav_link(
    ctx: &Ctx,
    group: &str,
    user_id: i64,
    url: &str,
    name: &str,
) -> anyhow::Result<Link> {
    let mut link = Link::new(&unique(name), group, user_id, ProviderKind::Caldav, url);
    link.display_name = name.into();
    add_caldav_link(ctx, &mut link).await?;
    Ok(link)
}

/// An ICS subscription link.
pub async fn ics_link(
    ctx: &Ctx,
    group: &str,
    user_id: i64,
    url: &str,
    name: &str,
) -> anyhow::Result<Link> {
    let mut link = Link::new(&unique(name), group, user_id, ProviderKind::Ics, url);
    link.display_name = name.into();
    ctx.store().put_link(&link).await?;
    Ok(link)
}

/// Queue a pull of one link and run the queues until they drain.
pub async fn sync_link(ctx: &Ctx, link_id: &str) -> anyhow::Result<crate::runner::DrainStats> {
    ctx.queues()
        .send(QueueKind::SyncJobs, &[SyncJob::unique(link_id, "manual")])
        .await?;
    crate::runner::drain(ctx).await
}

/// Queue pulls of all links of `user_id` (AutoSync) and run the queues until they drain.
pub async fn sync_user(ctx: &Ctx, user_id: i64) -> anyhow::Result<crate::runner::DrainStats> {
    let answer = crate::runner::autosync_user(ctx, user_id).await;
    anyhow::ensure!(answer["Status"] == "OK", "AutoSync answered {answer}");
    crate::runner::drain(ctx).await
}

/// Every event series currently in a CalDAV calendar (one full listing, as a client would).
pub async fn events_in(ctx: &Ctx, url: &str) -> anyhow::Result<Vec<(String, EventSeries)>> {
    let c = client(ctx, url);
    let listing = c.pull(None).await?;
    let hrefs: Vec<calsync::provider::RemoteId> =
        listing.changed.into_iter().map(|r| r.href).collect();
    let mut out = Vec::new();
    for r in c.fetch(&hrefs).await? {
        let s = EventSeries::parse_single(&r.href, r.data.as_deref().unwrap_or(""))?;
        out.push((r.href.to_string(), s));
    }
    out.sort_by(|a, b| a.1.uid.cmp(&b.1.uid));
    Ok(out)
}

/// Put an event into a calendar the way a CalDAV client does (PUT `<uid>.ics`).
pub async fn client_put(ctx: &Ctx, url: &str, ical: &str) -> anyhow::Result<String> {
    let s = EventSeries::parse_single("fixture", ical)?;
    let name = calsync::provider::caldav::deterministic_name(&format!("client-{}", s.uid));
    let target = reqwest::Url::parse(url)?.join(&name)?;
    raw_put(ctx, target.as_str(), ical).await?;
    Ok(target.path().to_string())
}

/// Fill the Radicale calendar at `url` with `events` (VCALENDAR texts) in one request: a PUT
/// of the whole calendar to the collection, which Radicale splits into one object per UID
/// (its import; seconds for 10,000 events where a PUT each takes minutes). Radicale only.
pub async fn radicale_upload(url: &str, events: &[String]) -> anyhow::Result<()> {
    let series = events
        .iter()
        .map(|e| EventSeries::parse_single("fixture", e))
        .collect::<Result<Vec<_>, _>>()?;
    let collection = if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    };
    // Radicale takes minutes for 10,000 events: longer than the clients' own timeout.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3600))
        .build()?;
    let resp = http
        .put(&collection)
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "text/calendar; charset=utf-8")
        .body(calsync::ical::write_calendar(&series))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "PUT {collection}: HTTP {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    Ok(())
}

/// A plain PUT without preconditions, as simple clients do.
async fn raw_put(ctx: &Ctx, url: &str, ical: &str) -> anyhow::Result<()> {
    let resp = ctx
        .clients
        .http
        .put(url)
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "text/calendar; charset=utf-8")
        .body(ical.to_string())
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "PUT {url}: HTTP {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    Ok(())
}

/// The titles (SUMMARY) of the events in the CalDAV calendar at `url`, sorted.
///
/// Errors: the calendar cannot be read.
pub async fn titles_in(ctx: &Ctx, url: &str) -> anyhow::Result<Vec<String>> {
    let mut t: Vec<String> = events_in(ctx, url)
        .await?
        .into_iter()
        .map(|(_, s)| s.summary())
        .collect();
    t.sort();
    Ok(t)
}

/// Replace the event with `uid` in a calendar (as a client edit), whatever its etag.
pub async fn client_edit(
    ctx: &Ctx,
    url: &str,
    uid: &str,
    edit: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let events = events_in(ctx, url).await?;
    let (href, s) = events
        .iter()
        .find(|(_, s)| s.uid == uid)
        .ok_or_else(|| anyhow::anyhow!("{uid} not in {url}"))?;
    let target = reqwest::Url::parse(url)?.join(href)?;
    raw_put(ctx, target.as_str(), &edit(&s.to_ical())).await
}

/// Retitle a [`simple_event`] in a calendar as a client would, later than its creation
/// (SUMMARY `from` → `to`, LAST-MODIFIED moved to 2026-06-01).
pub async fn client_retitle(
    ctx: &Ctx,
    url: &str,
    uid: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    client_edit(ctx, url, uid, |ical| {
        ical.replace(&format!("SUMMARY:{from}"), &format!("SUMMARY:{to}"))
            .replace(
                "LAST-MODIFIED:20260101T000000Z",
                "LAST-MODIFIED:20260601T000000Z",
            )
    })
    .await
}

/// Delete the event with `uid` from a calendar (as a client would).
pub async fn client_delete(ctx: &Ctx, url: &str, uid: &str) -> anyhow::Result<()> {
    let events = events_in(ctx, url).await?;
    let (href, _) = events
        .iter()
        .find(|(_, s)| s.uid == uid)
        .ok_or_else(|| anyhow::anyhow!("{uid} not in {url}"))?;
    client(ctx, url)
        .delete(&calsync::provider::RemoteId::from(href.as_str()), None)
        .await?;
    Ok(())
}

/// An event (UID `odd-tz`, "Odd zone") whose VTIMEZONE Radicale accepts and Xandikos rejects
/// ("Offset must be less than 24 hours") with 412 + CALDAV:valid-calendar-data (khal's
/// invalid_tzoffset.ics).
pub fn xandikos_rejects() -> String {
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n\
DTSTART:18930401T000000\r\nRDATE:18930401T000000\r\nTZNAME:CEST\r\nTZOFFSETFROM:+5328\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:19810329T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nTZNAME:CEST\r\nTZOFFSETFROM:+0100\r\n\
TZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:odd-tz\r\nDTSTAMP:20121120T195239Z\r\n\
DTSTART;TZID=Europe/Berlin:20271202T080000\r\nDTEND;TZID=Europe/Berlin:20271202T093000\r\nSUMMARY:Odd zone\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".to_string()
}

/// A simple one-off event.
pub fn simple_event(uid: &str, summary: &str, day: u32) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n\
DTSTART:202701{day:02}T090000Z\r\nDTEND:202701{day:02}T100000Z\r\nSUMMARY:{summary}\r\nLOCATION:Room 1\r\n\
LAST-MODIFIED:20260101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// A fresh sync group of one Radicale and one Xandikos calendar, for one fresh user.
pub struct Pair {
    /// Group id.
    pub group: String,
    /// Application user id (unique per pair).
    pub user: i64,
    /// Radicale calendar URL.
    pub radicale: String,
    /// Xandikos calendar URL.
    pub xandikos: String,
    /// The Radicale link.
    pub r: Link,
    /// The Xandikos link.
    pub x: Link,
}

/// An application user id no other test uses (1,000,000 and up).
pub fn fresh_user() -> i64 {
    1_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64
}

/// Take `link_id`'s lease for `secs` seconds as another job would ("someone-else"), and
/// assert that it was free.
pub async fn hold_lease(ctx: &Ctx, link_id: &str, secs: i64) {
    assert!(
        ctx.store()
            .acquire_lease(link_id, "someone-else", secs)
            .await
            .unwrap()
            .is_some(),
        "the lease on {link_id} was held"
    );
}

/// Run one job of `trigger` for `link_id` in direction `dir` in process, and assert that
/// it ended `ok`.
pub async fn job_ok(
    ctx: &Ctx,
    link_id: &str,
    trigger: &str,
    dir: calsync::handlers::Direction,
) -> calsync::model::RunRecord {
    let job = calsync::queue::SyncJob::unique(link_id, trigger);
    let run = calsync::handlers::run_job(ctx, &job, dir).await.unwrap();
    assert_eq!(run.outcome, "ok", "{dir:?} of {link_id}: {run:?}");
    run
}

/// Create a [`Pair`], put `seed` events into Radicale as a client would, and sync until the
/// queues drain.
pub async fn pair(ctx: &Ctx, tag: &str, seed: &[String]) -> anyhow::Result<Pair> {
    let name = unique(tag);
    let radicale = new_calendar(ctx, Server::Radicale, &name).await?;
    let xandikos = new_calendar(ctx, Server::Xandikos, &name).await?;
    for ical in seed {
        client_put(ctx, &radicale, ical).await?;
    }
    let group = unique("group");
    let user = fresh_user();
    let r = caldav_link(ctx, &group, user, &radicale, "radicale").await?;
    let x = caldav_link(ctx, &group, user, &xandikos, "xandikos").await?;
    sync_user(ctx, user).await?;
    Ok(Pair {
        group,
        user,
        radicale,
        xandikos,
        r,
        x,
    })
}

/// UIDs with their number of copies in a calendar.
pub async fn uid_counts(
    ctx: &Ctx,
    url: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, usize>> {
    let mut out = std::collections::BTreeMap::new();
    for (_, s) in events_in(ctx, url).await? {
        *out.entry(s.uid).or_insert(0) += 1;
    }
    Ok(out)
}

/// The stored body of a calendar object, by a plain GET.
pub async fn raw_get(ctx: &Ctx, url: &str) -> anyhow::Result<String> {
    let resp = ctx
        .clients
        .http
        .get(url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "GET {url}: HTTP {}",
        resp.status()
    );
    Ok(resp.text().await?)
}

/// Date the group's hub writes `ms` back, as the group is that long after them (a
/// sync-back reads again the changes of the minute before its watermark,
/// [`calsync::engine::PUSH_OVERLAP_MS`]; a test or the bench that changes an event right
/// after the initial sync would otherwise measure that minute's overlap).
///
/// Errors: DynamoDB failure.
pub async fn age_hub(ctx: &Ctx, group: &str, ms: i64) -> anyhow::Result<()> {
    let store = ctx.store();
    for mut ev in store.events_of_group(group).await? {
        ev.updated_ms -= ms;
        let v = ev.version;
        store.put_event(&ev, Some(v)).await?;
    }
    Ok(())
}
