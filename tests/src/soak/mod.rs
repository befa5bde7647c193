//! Generated fault schedules (issue 13, item 7): a seeded generator of workloads — creates,
//! edits, moves and deletes made by a user on Radicale, Xandikos, the hub (through the
//! application's API), Google (the user's own API client, seeds ≡ 0 mod 4), Outlook (the
//! user's own Graph client, seeds ≡ 2 mod 4) or a read-only ICS feed (its publisher, seeds
//! ≡ 0 mod 3) —
//! interleaved with faults, then quiescence, then a checker of the design brief's invariants
//! over the final state, the run records, the Google write log and the logs:
//!
//! 1. convergence: every member and the hub hold the same events, as the user left them;
//! 2. no duplicates: each UID once per calendar;
//! 3. no lost edit: each event carries its last edit;
//! 4. quiet: a sync with nothing to do writes nothing and pulls with one request per link;
//! 5. cursor loss: a full re-enumeration after the cursors are lost creates, changes and
//!    deletes nothing;
//! 6. mail-free: no write of calsync's asks Google to notify guests (`sendUpdates=none`);
//! 7. no secret (CalDAV password, OAuth client secret, the link's access and refresh tokens)
//!    in what the run logged.
//!
//! Faults ([`world`]): CalDAV 408/412/423/429/500/503 with `Retry-After`, sync-collection
//! answers truncated with 507 (RFC 6578 §3.6), sync-token loss, a
//! rejected sync-token, SQS redelivery, an expired lease, a lease held by another worker, a
//! crash between a remote write and its mapping write; Google 403 `rateLimitExceeded` /
//! `quotaExceeded`, 503, a body cut short, 410 on every sync token, expired access tokens,
//! push messages duplicated and reordered; Graph 429/503 with `Retry-After`, 410
//! `SyncStateNotFound`, delta state lost mid-round; a feed's validators lost.
//!
//! A schedule is a pure function of its seed (`CALSYNC_SEED=<seed>` replays one); the
//! system's timing is not, which is what the faults probe.

mod check;
mod members;
mod world;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use calsync::config::Ctx;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::api::ApiServer;
use crate::feed::FeedServer;
use crate::fixtures::{self, radicale_base, unique, Server};
use crate::google::LocalGoogle;
use crate::outlook::LocalOutlook;
use crate::quirks::QuirkProxy;
use world::{FeedMember, GoogleMember, OutlookMember, World};

/// What one or more schedules did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Schedules run.
    pub schedules: usize,
    /// Schedules with each optional member (`Google`, `Outlook`, `ICS feed`).
    pub members: BTreeMap<&'static str, usize>,
    /// User operations applied, per place (`Radicale`, `Xandikos`, `hub`, `Google`).
    pub ops: BTreeMap<&'static str, usize>,
    /// Faults fired, per kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Invariant violations, each naming its seed.
    pub violations: Vec<String>,
}

impl Report {
    /// Add `other` to this report.
    pub fn absorb(&mut self, other: Report) {
        self.schedules += other.schedules;
        for (k, v) in other.members {
            *self.members.entry(k).or_default() += v;
        }
        for (k, v) in other.ops {
            *self.ops.entry(k).or_default() += v;
        }
        for (k, v) in other.faults {
            *self.faults.entry(k).or_default() += v;
        }
        self.violations.extend(other.violations);
    }

    /// One line with the totals, per place and per fault kind.
    pub fn summary(&self) -> String {
        let join = |m: &BTreeMap<&'static str, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "schedules run: {} (with {}); user operations: {} ({}); faults fired: {} ({}); invariant violations: {}",
            self.schedules,
            join(&self.members),
            self.ops.values().sum::<usize>(),
            join(&self.ops),
            self.faults.values().sum::<usize>(),
            join(&self.faults),
            self.violations.len()
        )
    }
}

/// calsync's HTTP client timeout in the schedules (30 s in production).
const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a stalled answer takes: past [`HTTP_TIMEOUT`].
const STALL: std::time::Duration = std::time::Duration::from_millis(2_500);

/// What every schedule of a run shares: the fault proxy in front of Radicale, the API, the
/// Google emulator and the captured logs.
pub struct Env {
    proxy: QuirkProxy,
    api: ApiServer,
    google: LocalGoogle,
    outlook: LocalOutlook,
    logs: crate::logs::Capture,
}

impl Env {
    /// Start the shared parts on the local stack.
    ///
    /// Errors: a part does not start.
    pub async fn start(ctx: &Ctx) -> anyhow::Result<Self> {
        // A short client timeout, so that a stalled answer times out within the schedule.
        let mut ctx = ctx.clone();
        ctx.clients.http =
            calsync::net::guarded_client_with_timeout(crate::local_net_policy(), HTTP_TIMEOUT);
        let ctx = &ctx;
        // calsync's debug events (requests, plans) and the libraries' warnings: what an
        // operator's log holds, without the HTTP libraries' byte-level traces.
        let logs = crate::logs::capture_filtered("warn,calsync=debug,calsync_e2e=debug");
        let google = LocalGoogle::start(ctx, Default::default()).await?;
        // Outlook's notifications and consent callback go to the same webhook server.
        let outlook = LocalOutlook::beside(
            &google.ctx,
            &google.hooks.url,
            crate::emulators::graph::Config {
                retry_after_secs: 0,
                ..Default::default()
            },
        )
        .await?;
        Ok(Self {
            proxy: QuirkProxy::start(&radicale_base(), Default::default()).await?,
            api: ApiServer::start_local(google.ctx.clone()).await?,
            google,
            outlook,
            logs,
        })
    }
}

/// Run the schedule of `seed` with `epochs` epochs against the local stack.
///
/// Errors: the schedule could not be set up or checked (not a violation: those are in the
/// report).
pub async fn run_schedule(env: &Env, seed: u64, epochs: usize) -> anyhow::Result<Report> {
    let ctx = &env.google.ctx;
    let mut rng = StdRng::seed_from_u64(seed);
    let name = unique(&format!("soak{seed}"));
    let radicale = fixtures::new_calendar(ctx, Server::Radicale, &name).await?;
    let xandikos = fixtures::new_calendar(ctx, Server::Xandikos, &name).await?;
    let user = 3_000_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64;
    let api = env.api.as_user(user);
    let group = api.create_group(&name).await?;
    let proxied = radicale.replace(&radicale_base(), &env.proxy.url);
    let r = fixtures::caldav_link(ctx, &group, user, &proxied, "radicale").await?;
    let x = fixtures::caldav_link(ctx, &group, user, &xandikos, "xandikos").await?;
    let google = if seed.is_multiple_of(4) {
        let cal = format!("{name}@group.calendar.google.com");
        let link = env.google.connect(&group, user, &cal, "google").await?;
        let user_api = env.google.user_api(&link).await?;
        Some(GoogleMember {
            link,
            user_api,
            calendar_id: cal,
        })
    } else {
        None
    };
    let outlook = if seed % 4 == 2 {
        let link = env
            .outlook
            .connect(&group, user, &unique("soak-cal"), "outlook")
            .await?;
        let user = env.outlook.user(&link).await?;
        Some(OutlookMember { link, user })
    } else {
        None
    };
    let feed = if seed.is_multiple_of(3) {
        let server = FeedServer::start(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync soak feed//EN\r\nEND:VCALENDAR\r\n",
            true,
        )
        .await?;
        let link = fixtures::ics_link(ctx, &group, user, &server.url, "feed").await?;
        Some(FeedMember { link, server })
    } else {
        None
    };
    let mut w = World {
        ctx,
        env,
        api,
        user,
        group,
        radicale,
        xandikos,
        r,
        x,
        google,
        outlook,
        feed,
        model: BTreeMap::new(),
        feed_uids: Default::default(),
        report: Report {
            schedules: 1,
            ..Default::default()
        },
        seed,
        next: 0,
        trail: Vec::new(),
    };
    for (present, name) in [
        (w.google.is_some(), "Google"),
        (w.outlook.is_some(), "Outlook"),
        (w.feed.is_some(), "ICS feed"),
    ] {
        if present {
            w.report.members.insert(name, 1);
        }
    }
    fixtures::sync_user(ctx, user).await?;
    for epoch in 0..epochs {
        // The user edits one place per epoch (edits of two sides at once are conflicts,
        // which the merge tests cover); syncing with faults runs in between.
        let places = w.places();
        let target = places[rng.random_range(0..places.len())];
        for _ in 0..rng.random_range(1..5) {
            w.user_op(&mut rng, target).await?;
            if rng.random_bool(0.5) {
                w.faulty_step(&mut rng).await?;
            }
        }
        for _ in 0..rng.random_range(0..3) {
            w.faulty_step(&mut rng).await?;
        }
        w.settle_and_check(epoch).await?;
    }
    w.check_secrets_not_logged().await?;
    // Leave the stack as it was (run records deleted, links disconnected, hub events
    // purged): a long run then costs the same per schedule (moto reads a whole table for
    // every Query).
    let runs_table = &ctx.config.runs_table;
    for l in w.links() {
        for r in ctx.store().runs_of_link(&l.link_id).await? {
            ctx.clients
                .ddb
                .delete_item()
                .table_name(runs_table)
                .key("link_id", AttributeValue::S(l.link_id.clone()))
                .key("run_id", AttributeValue::S(r.run_id))
                .send()
                .await?;
        }
    }
    let gone = w.api.delete(&format!("/v1/groups/{}", w.group)).await?;
    anyhow::ensure!(
        gone.status == 204,
        "group not deleted: {} {}",
        gone.status,
        gone.body
    );
    if !w.report.violations.is_empty() {
        println!(
            "CALSYNC_SEED={seed}, what happened:\n  {}",
            w.trail.join("\n  ")
        );
    }
    Ok(w.report)
}

/// Run `count` schedules from `first_seed` (or only `CALSYNC_SEED` when set), printing each
/// violation as it is found (a schedule that fails to run counts as one).
///
/// Errors: the shared parts did not start.
pub async fn run_many(
    ctx: &Ctx,
    first_seed: u64,
    count: u64,
    epochs: usize,
) -> anyhow::Result<Report> {
    let env = Env::start(ctx).await?;
    let seeds: Vec<u64> = match std::env::var("CALSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (first_seed..first_seed + count).collect(),
    };
    let mut total = Report::default();
    let started = std::time::Instant::now();
    for seed in seeds {
        // A schedule that could not be set up or checked is reported, and the run goes on.
        let r = run_schedule(&env, seed, epochs)
            .await
            .unwrap_or_else(|e| Report {
                schedules: 1,
                violations: vec![format!("CALSYNC_SEED={seed}: the schedule failed: {e:#}")],
                ..Default::default()
            });
        for v in &r.violations {
            println!("VIOLATION {v}");
        }
        total.absorb(r);
        if total.schedules.is_multiple_of(100) {
            println!(
                "after {:.0} s: {}",
                started.elapsed().as_secs_f64(),
                total.summary()
            );
        }
    }
    Ok(total)
}
