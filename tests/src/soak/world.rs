//! One schedule's world: its calendars and links, the user's intent, and the operations and
//! faults the generator draws.

use std::collections::{BTreeMap, BTreeSet};

use calsync::config::Ctx;
use calsync::handlers::{run_job, Direction};
use calsync::model::Link;
use calsync::queue::SyncJob;
use rand::rngs::StdRng;
use rand::Rng;
use secrecy::ExposeSecret;

pub use super::members::{FeedMember, GoogleMember, OutlookMember};
use super::{Env, Report};
use crate::api::ApiClient;
use crate::fixtures::{self, radicale_base};

/// Where a user operation is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// With a CalDAV client on Radicale (through the fault proxy for calsync).
    Radicale,
    /// With a CalDAV client on Xandikos.
    Xandikos,
    /// Through the application's API (`PUT`/`DELETE /v1/groups/{g}/events/{uid}`).
    Hub,
    /// With the user's own Google client.
    Google,
    /// In the user's own Outlook (Graph).
    Outlook,
    /// As the publisher of the read-only ICS feed (its events only).
    Feed,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Radicale => "Radicale",
            Target::Xandikos => "Xandikos",
            Target::Hub => "hub",
            Target::Google => "Google",
            Target::Outlook => "Outlook",
            Target::Feed => "ICS feed",
        }
    }
}

pub struct World<'a> {
    pub ctx: &'a Ctx,
    pub env: &'a Env,
    pub api: ApiClient,
    pub user: i64,
    pub group: String,
    pub radicale: String,
    pub xandikos: String,
    pub r: Link,
    pub x: Link,
    pub google: Option<GoogleMember>,
    pub outlook: Option<OutlookMember>,
    pub feed: Option<FeedMember>,
    /// The user's intent: UID → summary and start day (`None`: deleted).
    pub model: BTreeMap<String, Option<(String, u32)>>,
    /// The UIDs the feed publishes (changed only there: a read-only member's events).
    pub feed_uids: BTreeSet<String>,
    pub report: Report,
    pub seed: u64,
    pub next: usize,
    /// What happened, in order (printed with the schedule's violations).
    pub trail: Vec<String>,
}

pub fn event(uid: &str, summary: &str, day: u32) -> String {
    fixtures::simple_event(uid, summary, day)
}

impl World<'_> {
    pub fn fault(&mut self, kind: &'static str) {
        *self.report.faults.entry(kind).or_default() += 1;
        self.trail.push(format!("fault: {kind}"));
    }

    pub fn links(&self) -> Vec<Link> {
        let mut out = vec![self.r.clone(), self.x.clone()];
        out.extend(self.google.iter().map(|g| g.link.clone()));
        out.extend(self.outlook.iter().map(|o| o.link.clone()));
        out.extend(self.feed.iter().map(|f| f.link.clone()));
        out
    }

    /// The places the user may change this schedule.
    pub fn places(&self) -> Vec<Target> {
        let mut out = vec![Target::Radicale, Target::Xandikos, Target::Hub];
        if self.google.is_some() {
            out.push(Target::Google);
        }
        if self.outlook.is_some() {
            out.push(Target::Outlook);
        }
        if self.feed.is_some() {
            out.push(Target::Feed);
        }
        out
    }

    /// Live UIDs `target` may change: the feed's own at the feed, the others elsewhere.
    fn live(&self, target: Target) -> Vec<String> {
        self.model
            .iter()
            .filter(|(k, v)| v.is_some() && self.feed_uids.contains(*k) == (target == Target::Feed))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// One user operation at `target`.
    pub async fn user_op(&mut self, rng: &mut StdRng, target: Target) -> anyhow::Result<()> {
        let live = self.live(target);
        let choice = if live.is_empty() {
            0
        } else {
            rng.random_range(0..4)
        };
        *self.report.ops.entry(target.name()).or_default() += 1;
        let (uid, after) = match choice {
            0 => {
                self.next += 1;
                let uid = format!("soak-{}-{}", self.seed, self.next);
                let day = rng.random_range(1..28);
                (uid, Some((format!("Created {}", self.next), day)))
            }
            1 | 2 => {
                let uid = live[rng.random_range(0..live.len())].clone();
                let Some(Some((summary, day))) = self.model.get(&uid).cloned() else {
                    return Ok(());
                };
                let after = if choice == 1 {
                    (format!("{summary}+"), day)
                } else {
                    (summary, day % 27 + 1) // a move
                };
                (uid, Some(after))
            }
            _ => (live[rng.random_range(0..live.len())].clone(), None),
        };
        let existed = matches!(self.model.get(&uid), Some(Some(_)));
        self.trail
            .push(format!("{} {uid}: {after:?}", target.name()));
        let uid = self.apply(target, &uid, after.as_ref(), existed).await?;
        if target == Target::Feed {
            self.feed_uids.insert(uid.clone());
        }
        self.model.insert(uid, after);
        if let (Target::Feed, Some(f)) = (target, &self.feed) {
            let published = self
                .model
                .iter()
                .filter(|(k, _)| self.feed_uids.contains(*k))
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)));
            f.publish(published);
        }
        Ok(())
    }

    /// Make the user's change of `uid` (`None`: delete) at `target`; the UID the event has
    /// there (Outlook picks its own for an event made in it).
    async fn apply(
        &self,
        target: Target,
        uid: &str,
        after: Option<&(String, u32)>,
        existed: bool,
    ) -> anyhow::Result<String> {
        match target {
            Target::Radicale | Target::Xandikos => {
                let url = if target == Target::Radicale {
                    &self.radicale
                } else {
                    &self.xandikos
                };
                match (after, existed) {
                    (Some((s, d)), false) => {
                        fixtures::client_put(self.ctx, url, &event(uid, s, *d)).await?;
                    }
                    (Some((s, d)), true) => {
                        let text = event(uid, s, *d);
                        fixtures::client_edit(self.ctx, url, uid, |_| text.clone()).await?;
                    }
                    (None, _) => fixtures::client_delete(self.ctx, url, uid).await?,
                }
            }
            Target::Hub => {
                let path = format!("/v1/groups/{}/events/{uid}", self.group);
                let a = match after {
                    Some((s, d)) => self.api.put_ical(&path, &event(uid, s, *d), &[]).await?,
                    None => self.api.delete(&path).await?,
                };
                anyhow::ensure!(a.status < 300, "hub {path}: {} {}", a.status, a.body);
            }
            Target::Google => {
                if let Some(g) = &self.google {
                    g.apply(uid, after).await?;
                }
            }
            Target::Outlook => {
                if let Some(o) = &self.outlook {
                    let known = existed.then_some(uid);
                    return o.apply(&self.env.outlook, known, after).await;
                }
            }
            // Published by `user_op` once the intent is updated.
            Target::Feed => {}
        }
        Ok(uid.to_string())
    }

    /// One step of syncing with a fault injected first. Errors of the step itself are the
    /// fault's effect, not a violation.
    pub async fn faulty_step(&mut self, rng: &mut StdRng) -> anyhow::Result<()> {
        let links = self.links();
        let link = links[rng.random_range(0..links.len())].clone();
        let is = |m: Option<&Link>| m.is_some_and(|l| l.link_id == link.link_id);
        let mut dir = if rng.random_bool(0.6) {
            Direction::Pull
        } else {
            Direction::Push
        };
        let mut new_user_client = false;
        let times = if is(self.google.as_ref().map(|g| &g.link)) {
            let (times, expired) = self.google_fault(rng).await?;
            if expired {
                // Every access token died (the user's own client's too): calsync's pull
                // meets the 401 and refreshes; the user's client then takes the new token.
                dir = Direction::Pull;
                new_user_client = true;
            }
            times
        } else if is(self.outlook.as_ref().map(|o| &o.link)) {
            self.outlook_fault(rng)
        } else if is(self.feed.as_ref().map(|f| &f.link)) {
            self.feed_fault(rng, &link).await?
        } else {
            match self.caldav_fault(rng, &link, dir).await? {
                Some(t) => t,
                None => return Ok(()),
            }
        };
        for _ in 0..times {
            let r = run_job(self.ctx, &SyncJob::unique(&link.link_id, "soak"), dir).await;
            self.trail
                .push(format!("{dir:?} {}: {:?}", link.display_name, r.err()));
        }
        if new_user_client {
            if let Some(g) = &mut self.google {
                g.user_api = self.env.google.user_api(&g.link).await?;
            }
        }
        if rng.random_bool(0.5) {
            let r = crate::runner::drain(self.ctx).await;
            self.trail.push(format!("drain: {r:?}"));
        }
        Ok(())
    }

    /// A fault of the CalDAV side or of the queue and database; how often to run the job
    /// (`None`: the fault ran it).
    async fn caldav_fault(
        &mut self,
        rng: &mut StdRng,
        link: &Link,
        dir: Direction,
    ) -> anyhow::Result<Option<usize>> {
        let store = self.ctx.store();
        match rng.random_range(0..11) {
            8 => {
                // Sync-collection answers cut at 1-2 members with a 507 and an
                // intermediate token, until quiescence.
                self.env.proxy.truncate_sync_reports(rng.random_range(1..3));
                self.fault("CalDAV 507 sync-collection truncated");
            }
            0 => {
                let status = [429, 503, 500, 423, 408][rng.random_range(0..5)];
                let method = ["PUT", "REPORT", "DELETE", "PROPFIND"][rng.random_range(0..4)];
                self.env
                    .proxy
                    .fail_next(method, status, rng.random_range(1..10));
                self.fault("CalDAV throttled or failing (Retry-After)");
            }
            1 => {
                store.delete_cursor(&link.link_id).await?;
                self.fault("sync-token loss");
            }
            2 => {
                let bogus = calsync::provider::Cursor::new(format!(
                    "sync:{}/sync/0-bogus",
                    radicale_base()
                ));
                store.put_cursor(&link.link_id, &bogus).await?;
                self.fault("rejected sync-token (403/409)");
            }
            3 => {
                self.fault("SQS redelivery");
                return Ok(Some(2));
            }
            4 => {
                // An expired worker's lease: taken over (with a newer fence) by this job.
                let _ = store
                    .acquire_lease(&link.link_id, "expired-worker", -1)
                    .await?;
                self.fault("lease expired mid-run");
            }
            5 => {
                // A crash between remote writes and their mapping writes: a push writes to
                // the member, its mapping writes are lost (the mappings are as they were
                // before it), and SQS delivers the job again.
                let id = &link.link_id;
                let before: BTreeMap<String, calsync::model::Mapping> = store
                    .mappings_of_link(id)
                    .await?
                    .into_iter()
                    .map(|m| (m.uid.clone(), m))
                    .collect();
                let job = SyncJob::unique(id, "soak");
                let _ = run_job(self.ctx, &job, Direction::Push).await;
                let after = store.mappings_of_link(id).await?;
                let mut lost = 0;
                for m in &after {
                    match before.get(&m.uid) {
                        Some(b) if b == m => {}
                        Some(b) => {
                            store.put_mapping(b).await?;
                            lost += 1;
                        }
                        None => {
                            store.delete_mapping(id, &m.uid).await?;
                            lost += 1;
                        }
                    }
                }
                for (uid, b) in &before {
                    if !after.iter().any(|m| &m.uid == uid) {
                        store.put_mapping(b).await?;
                        lost += 1;
                    }
                }
                if lost > 0 {
                    self.fault("crash between remote write and database write");
                }
                let _ = run_job(self.ctx, &job, Direction::Push).await;
                return Ok(None);
            }
            6 => {
                // A busy link: another worker holds the lease for this attempt.
                let _ = store
                    .acquire_lease(&link.link_id, "other-worker", 30)
                    .await?;
                // It holds on past the second this job waits for it (a job that finds a
                // lease waits before it gives up; `batches` covers the wait).
                let mut impatient = self.ctx.clone();
                impatient.config.lease_wait_secs = 1;
                let _ = run_job(&impatient, &SyncJob::unique(&link.link_id, "soak"), dir).await;
                store.release_lease(&link.link_id, "other-worker").await?;
                self.fault("lease held by another worker");
                return Ok(None);
            }
            9 => {
                // An answer that never comes in time: the client times out. A write reaches
                // Radicale first (made, its answer lost), a read only after the client gave up.
                let method = ["PUT", "DELETE", "REPORT", "PROPFIND"][rng.random_range(0..4)];
                let applied = matches!(method, "PUT" | "DELETE");
                self.env
                    .proxy
                    .stall_next(method, super::STALL, applied, rng.random_range(1..3));
                self.fault("CalDAV answer past the client timeout");
            }
            7 => {
                // A precondition that fails once (a concurrent writer's etag, as far as
                // calsync can tell): the write is re-read and retried, never duplicated.
                let method = ["PUT", "DELETE"][rng.random_range(0..2)];
                self.env.proxy.fail_next(method, 412, 1);
                self.fault("CalDAV 412 Precondition Failed");
            }
            _ => {}
        }
        Ok(Some(1))
    }

    /// A fault of Graph's; how often to run the job.
    fn outlook_fault(&mut self, rng: &mut StdRng) -> usize {
        let emu = &self.env.outlook.emu;
        match rng.random_range(0..5) {
            0 => {
                let status = [429, 503][rng.random_range(0..2)];
                emu.fail_next(status, rng.random_range(1..4));
                self.fault("Graph 429/503 (Retry-After)");
            }
            1 => {
                emu.expire_delta_tokens();
                self.fault("Graph 410 SyncStateNotFound");
            }
            2 => {
                emu.expire_delta_tokens_after(1);
                self.fault("Graph delta state lost mid-round");
            }
            3 => {
                self.fault("SQS redelivery");
                return 2;
            }
            _ => {}
        }
        1
    }

    /// A fault of the feed's link (a read-only member: its cursor and the queue); how
    /// often to run the job.
    async fn feed_fault(&mut self, rng: &mut StdRng, link: &Link) -> anyhow::Result<usize> {
        match rng.random_range(0..3) {
            0 => {
                self.ctx.store().delete_cursor(&link.link_id).await?;
                self.fault("feed validators lost");
            }
            1 => {
                self.fault("SQS redelivery");
                return Ok(2);
            }
            _ => {}
        }
        Ok(1)
    }

    /// A fault of Google's; how often to run the job, and whether the access tokens died.
    async fn google_fault(&mut self, rng: &mut StdRng) -> anyhow::Result<(usize, bool)> {
        let Some(g) = &self.google else {
            return Ok((1, false));
        };
        let emu = &self.env.google.emu;
        let http = reqwest::Client::new();
        match rng.random_range(0..10) {
            6 => {
                let sent = emu.redeliver(&g.calendar_id);
                if sent > 0 {
                    self.fault("Google push duplicated and reordered");
                }
            }
            0 => {
                let reason = ["rateLimitExceeded", "quotaExceeded"][rng.random_range(0..2)];
                emu.fail_next_reason(403, reason, rng.random_range(1..4));
                self.fault("Google 403 rate limit or quota");
            }
            1 => {
                emu.fail_next(503, rng.random_range(1..4));
                self.fault("Google 503");
            }
            2 => {
                // calsync's reads only (incremental or full), not the user's own client's.
                emu.truncate_next(
                    ["syncToken=", "showDeleted=true"][rng.random_range(0..2)],
                    1,
                );
                self.fault("Google body cut short");
            }
            3 => {
                http.post(format!(
                    "{}/emulator/calendars/{}/expire-sync-tokens",
                    emu.url, g.calendar_id
                ))
                .send()
                .await?
                .error_for_status()?;
                self.fault("Google 410 sync token expired");
            }
            4 => {
                http.post(format!("{}/emulator/oauth/expire-access", emu.url))
                    .send()
                    .await?
                    .error_for_status()?;
                self.fault("Google access token expired (401, refresh)");
                return Ok((1, true));
            }
            5 => {
                self.fault("SQS redelivery");
                return Ok((2, false));
            }
            7 => {
                emu.slow_next(super::STALL.as_millis() as u64, 1);
                self.fault("Google answer past the client timeout");
            }
            8 => {
                // The user revokes calsync's access at Google: the refresh meets
                // `invalid_grant`, the link waits for reconnection; the user reconnects it
                // through the API's consent, and the access tokens died with the grant.
                let link = g.link.clone();
                let arn = link.secret_arn.clone().unwrap_or_default();
                let t = calsync::oauth::read_tokens(self.ctx, &arn).await?;
                let refresh = t
                    .refresh_token
                    .map(|r| r.expose_secret().to_string())
                    .unwrap_or_default();
                http.post(format!("{}/emulator/oauth/revoke", emu.url))
                    .json(&serde_json::json!({"refresh_token": refresh}))
                    .send()
                    .await?
                    .error_for_status()?;
                let job = SyncJob::unique(&link.link_id, "soak");
                let r = run_job(self.ctx, &job, Direction::Pull).await;
                self.trail
                    .push(format!("pull after revocation: {:?}", r.err()));
                let answer = self
                    .api
                    .post(
                        &format!("/v1/links/{}/reconnect", link.link_id),
                        &serde_json::json!({}),
                    )
                    .await?;
                anyhow::ensure!(
                    answer.status == 200,
                    "reconnect: {} {}",
                    answer.status,
                    answer.body
                );
                let url = answer.body["consent_url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.env.google.finish_reconnect(&url).await?;
                self.fault("Google grant revoked (invalid_grant), reconnected");
                return Ok((1, true));
            }
            _ => {}
        }
        Ok((1, false))
    }

    pub fn violation(&mut self, what: String) {
        self.report
            .violations
            .push(format!("CALSYNC_SEED={}: {what}", self.seed));
    }
}
