//! Generated fault schedules (issue 13, item 7): a seeded generator of workloads — creates,
//! edits, moves and deletes made by a user on Radicale or Xandikos — interleaved with faults
//! (throttling with `Retry-After`, server errors, sync-token loss, a rejected sync-token,
//! SQS redelivery, a lease held by an expired worker, a crash between a remote write and its
//! mapping write), then quiescence, then a checker of the design brief's invariants over the
//! final state and the run records:
//!
//! 1. convergence: Radicale, Xandikos and the hub hold the same events, as the user left them;
//! 2. no duplicates: each UID once per calendar;
//! 3. no lost edit: each event carries its last edit;
//! 4. quiet: a sync with nothing to do writes nothing and pulls with one request per link;
//! 5. cursor loss: a full re-enumeration after the cursors are lost creates, changes and
//!    deletes nothing.
//!
//! A schedule is a pure function of its seed (`CALSYNC_SEED=<seed>` replays one); the
//! system's timing is not, which is what the faults probe.

use std::collections::BTreeMap;

use calsync::config::Ctx;
use calsync::handlers::{run_job, Direction};
use calsync::model::Link;
use calsync::queue::SyncJob;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fixtures::{self, radicale_base, unique, Server};
use crate::quirks::QuirkProxy;

/// What one or more schedules did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Schedules run.
    pub schedules: usize,
    /// User operations applied.
    pub ops: usize,
    /// Faults fired, per kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Invariant violations, each naming its seed.
    pub violations: Vec<String>,
}

impl Report {
    /// Add `other` to this report.
    pub fn absorb(&mut self, other: Report) {
        self.schedules += other.schedules;
        self.ops += other.ops;
        for (k, v) in other.faults {
            *self.faults.entry(k).or_default() += v;
        }
        self.violations.extend(other.violations);
    }

    /// One line per fault kind and the totals.
    pub fn summary(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "schedules run: {}; user operations: {}; faults fired: {} ({}); invariant violations: {}",
            self.schedules,
            self.ops,
            self.faults.values().sum::<usize>(),
            faults.join(", "),
            self.violations.len()
        )
    }
}

struct World<'a> {
    ctx: &'a Ctx,
    proxy: &'a QuirkProxy,
    user: i64,
    group: String,
    radicale: String,
    xandikos: String,
    r: Link,
    x: Link,
    /// The user's intent: UID → summary and start day (`None`: deleted).
    model: BTreeMap<String, Option<(String, u32)>>,
    report: Report,
    seed: u64,
    next: usize,
}

fn event(uid: &str, summary: &str, day: u32) -> String {
    fixtures::simple_event(uid, summary, day)
}

impl World<'_> {
    fn fault(&mut self, kind: &'static str) {
        *self.report.faults.entry(kind).or_default() += 1;
    }

    fn live(&self) -> Vec<String> {
        self.model
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// One user operation on `url`.
    async fn user_op(&mut self, rng: &mut StdRng, url: &str) -> anyhow::Result<()> {
        let live = self.live();
        let choice = if live.is_empty() {
            0
        } else {
            rng.random_range(0..4)
        };
        self.report.ops += 1;
        match choice {
            0 => {
                self.next += 1;
                let uid = format!("soak-{}-{}", self.seed, self.next);
                let day = rng.random_range(1..28);
                let summary = format!("Created {}", self.next);
                fixtures::client_put(self.ctx, url, &event(&uid, &summary, day)).await?;
                self.model.insert(uid, Some((summary, day)));
            }
            1 | 2 => {
                let uid = live[rng.random_range(0..live.len())].clone();
                let Some(Some((summary, day))) = self.model.get(&uid).cloned() else {
                    return Ok(());
                };
                let (summary, day) = if choice == 1 {
                    (format!("{summary}+"), day)
                } else {
                    (summary, day % 27 + 1) // a move
                };
                let text = event(&uid, &summary, day);
                fixtures::client_edit(self.ctx, url, &uid, |_| text.clone()).await?;
                self.model.insert(uid, Some((summary, day)));
            }
            _ => {
                let uid = live[rng.random_range(0..live.len())].clone();
                fixtures::client_delete(self.ctx, url, &uid).await?;
                self.model.insert(uid, None);
            }
        }
        Ok(())
    }

    /// One step of syncing with a fault injected first. Errors of the step itself are the
    /// fault's effect, not a violation.
    async fn faulty_step(&mut self, rng: &mut StdRng) -> anyhow::Result<()> {
        let link = if rng.random_bool(0.5) {
            self.r.clone()
        } else {
            self.x.clone()
        };
        let store = self.ctx.store();
        let dir = if rng.random_bool(0.6) {
            Direction::Pull
        } else {
            Direction::Push
        };
        let mut times = 1;
        match rng.random_range(0..9) {
            0 => {
                let status = [429, 503, 500, 423, 408][rng.random_range(0..5)];
                let method = ["PUT", "REPORT", "DELETE", "PROPFIND"][rng.random_range(0..4)];
                self.proxy
                    .fail_next(method, status, rng.random_range(1..10));
                self.fault("throttled or failing server (Retry-After)");
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
                times = 2;
                self.fault("SQS redelivery");
            }
            4 => {
                // An expired worker's lease: taken over (with a newer fence) by this job.
                let _ = store
                    .acquire_lease(&link.link_id, "expired-worker", -1)
                    .await?;
                self.fault("lease expired mid-run");
            }
            5 => {
                // A crash between a remote write and its mapping write: the mapping is gone.
                let maps = store.mappings_of_link(&link.link_id).await?;
                if !maps.is_empty() {
                    let m = &maps[rng.random_range(0..maps.len())];
                    store.delete_mapping(&link.link_id, &m.uid).await?;
                    self.fault("crash between remote write and database write");
                }
            }
            6 => {
                // A busy link: another worker holds the lease for this attempt.
                let _ = store
                    .acquire_lease(&link.link_id, "other-worker", 30)
                    .await?;
                let _ = run_job(self.ctx, &SyncJob::unique(&link.link_id, "soak"), dir).await;
                store.release_lease(&link.link_id, "other-worker").await?;
                self.fault("lease held by another worker");
                return Ok(());
            }
            _ => {}
        }
        for _ in 0..times {
            let _ = run_job(self.ctx, &SyncJob::unique(&link.link_id, "soak"), dir).await;
        }
        if rng.random_bool(0.5) {
            let _ = crate::runner::drain(self.ctx).await;
        }
        Ok(())
    }

    fn violation(&mut self, what: String) {
        self.report
            .violations
            .push(format!("CALSYNC_SEED={}: {what}", self.seed));
    }

    /// What a calendar holds: UID → (summary, day, copies).
    async fn holds(&self, url: &str) -> anyhow::Result<BTreeMap<String, (String, u32, usize)>> {
        let mut out: BTreeMap<String, (String, u32, usize)> = BTreeMap::new();
        for (_, s) in fixtures::events_in(self.ctx, url).await? {
            let day = s
                .master()
                .and_then(|m| m.get("DTSTART"))
                .and_then(|v| v.first())
                .and_then(|l| l.trim_end().get(14..16))
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            let e = out.entry(s.uid.clone()).or_insert((s.summary(), day, 0));
            e.2 += 1;
        }
        Ok(out)
    }

    /// Quiescence (faults cleared, queues drained, every link synced) and the checks.
    async fn settle_and_check(&mut self, epoch: usize) -> anyhow::Result<()> {
        self.proxy.clear_faults();
        for _ in 0..3 {
            fixtures::sync_user(self.ctx, self.user).await?;
        }
        let want: BTreeMap<String, (String, u32)> = self
            .model
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for (name, url) in [
            ("Radicale", self.radicale.clone()),
            ("Xandikos", self.xandikos.clone()),
        ] {
            let held = self.holds(&url).await?;
            for (uid, (_, _, n)) in &held {
                if *n > 1 {
                    self.violation(format!("epoch {epoch}: {name} holds {uid} {n} times"));
                }
            }
            let got: BTreeMap<String, (String, u32)> =
                held.into_iter().map(|(k, (s, d, _))| (k, (s, d))).collect();
            if got != want {
                self.violation(format!(
                    "epoch {epoch}: {name} differs from the user's intent: has {got:?}, want {want:?}"
                ));
            }
        }
        let hub: Vec<String> = self
            .ctx
            .store()
            .events_of_group(&self.group)
            .await?
            .into_iter()
            .filter(|e| !e.deleted)
            .map(|e| e.uid)
            .collect();
        if hub != want.keys().cloned().collect::<Vec<_>>() {
            self.violation(format!("epoch {epoch}: hub holds {hub:?}"));
        }
        // Quiet: nothing to write, one request per pull.
        let before = self.run_counts().await?;
        let stats = fixtures::sync_user(self.ctx, self.user).await?;
        if stats.pushes != 0 {
            self.violation(format!("epoch {epoch}: a quiet sync pushed {stats:?}"));
        }
        for (link, runs) in self.new_runs(&before).await? {
            for r in runs {
                if r.kind == "pull" && (r.api_calls > 1 || r.created + r.updated + r.deleted > 0) {
                    self.violation(format!("epoch {epoch}: quiet pull of {link}: {r:?}"));
                }
            }
        }
        // Cursor loss: a full re-enumeration changes nothing.
        for l in [&self.r, &self.x] {
            self.ctx.store().delete_cursor(&l.link_id).await?;
        }
        let before = self.run_counts().await?;
        fixtures::sync_user(self.ctx, self.user).await?;
        for (link, runs) in self.new_runs(&before).await? {
            for r in runs {
                if r.created + r.updated + r.deleted > 0 {
                    self.violation(format!("epoch {epoch}: after cursor loss, {link}: {r:?}"));
                }
            }
        }
        Ok(())
    }

    async fn run_counts(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut out = BTreeMap::new();
        for l in [&self.r, &self.x] {
            let n = self.ctx.store().runs_of_link(&l.link_id).await?.len();
            out.insert(l.link_id.clone(), n);
        }
        Ok(out)
    }

    async fn new_runs(
        &self,
        before: &BTreeMap<String, usize>,
    ) -> anyhow::Result<Vec<(String, Vec<calsync::model::RunRecord>)>> {
        let mut out = Vec::new();
        for l in [&self.r, &self.x] {
            let runs = self.ctx.store().runs_of_link(&l.link_id).await?;
            let skip = before.get(&l.link_id).copied().unwrap_or(0);
            out.push((
                l.display_name.clone(),
                runs.into_iter().skip(skip).collect(),
            ));
        }
        Ok(out)
    }
}

/// Run the schedule of `seed` with `epochs` epochs against the local stack, Radicale behind
/// `proxy` (which injects the server faults).
pub async fn run_schedule(
    ctx: &Ctx,
    proxy: &QuirkProxy,
    seed: u64,
    epochs: usize,
) -> anyhow::Result<Report> {
    let mut rng = StdRng::seed_from_u64(seed);
    let name = unique(&format!("soak{seed}"));
    let radicale = fixtures::new_calendar(ctx, Server::Radicale, &name).await?;
    let xandikos = fixtures::new_calendar(ctx, Server::Xandikos, &name).await?;
    let group = unique("soak-group");
    let user = 3_000_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64;
    let proxied = radicale.replace(&radicale_base(), &proxy.url);
    let r = fixtures::caldav_link(ctx, &group, user, &proxied, "radicale").await?;
    let x = fixtures::caldav_link(ctx, &group, user, &xandikos, "xandikos").await?;
    let mut w = World {
        ctx,
        proxy,
        user,
        group,
        radicale,
        xandikos,
        r,
        x,
        model: BTreeMap::new(),
        report: Report {
            schedules: 1,
            ..Default::default()
        },
        seed,
        next: 0,
    };
    fixtures::sync_user(ctx, user).await?;
    for epoch in 0..epochs {
        // The user edits one calendar per epoch (edits of both sides at once are conflicts,
        // which the merge tests cover); syncing with faults runs in between.
        let url = if rng.random_bool(0.5) {
            w.radicale.clone()
        } else {
            w.xandikos.clone()
        };
        for _ in 0..rng.random_range(1..5) {
            w.user_op(&mut rng, &url).await?;
            if rng.random_bool(0.5) {
                w.faulty_step(&mut rng).await?;
            }
        }
        for _ in 0..rng.random_range(0..3) {
            w.faulty_step(&mut rng).await?;
        }
        w.settle_and_check(epoch).await?;
    }
    Ok(w.report)
}

/// Run `count` schedules from `first_seed` (or only `CALSYNC_SEED` when set).
pub async fn run_many(
    ctx: &Ctx,
    first_seed: u64,
    count: u64,
    epochs: usize,
) -> anyhow::Result<Report> {
    let proxy = QuirkProxy::start(&radicale_base(), Default::default()).await?;
    let seeds: Vec<u64> = match std::env::var("CALSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (first_seed..first_seed + count).collect(),
    };
    let mut total = Report::default();
    for seed in seeds {
        let r = run_schedule(ctx, &proxy, seed, epochs)
            .await
            .map_err(|e| anyhow::anyhow!("CALSYNC_SEED={seed}: {e:#}"))?;
        for v in &r.violations {
            println!("VIOLATION {v}");
        }
        total.absorb(r);
    }
    Ok(total)
}
