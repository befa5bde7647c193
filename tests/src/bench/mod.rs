//! `make bench`: one generated calendar ([`peers::generated_event`]) in Radicale, synced into
//! empty Xandikos calendars by the floor (a plain sequential PUT loop, run first and again
//! after calsync, the ratios to the mean of the two), by vdirsyncer and by calsync, side by
//! side in one run on the same servers, then a no-change sync and one
//! change among N; then a Google calendar (the emulator) joins the group and is measured
//! against its quota floor. Each row prints calsync's ratio to the floor and to vdirsyncer.
//!
//! calsync's CPU is this process's own while it syncs (the handlers run in process; moto,
//! Radicale and Xandikos are other processes); vdirsyncer's is its process's, as a child.
//! AWS calls are counted by the SDK interceptor ([`calsync::metrics`]) around the sync
//! worker's and sync-back's jobs themselves, not the local queue runner's receives.
//!
//! Last, the functions as Lambda starts them ([`lambda`]): release binary size, cold init
//! through the runtime API, RSS after init; and this process's peak RSS.

pub mod fanout;
pub mod lambda;
pub mod peers;
pub mod rss;

use std::time::{Duration, Instant};

use calsync::config::Ctx;
use calsync::handlers::{run_job, Direction};
use calsync::metrics::AwsCalls;
use calsync::queue::SyncJob;

use crate::fixtures::{self, Server};
use peers::{
    cpu_time, floor_again, floor_then_peer, generated_event, xandikos_secs, ServersCpu, Vdirsyncer,
};

/// One line of the table: what, then the floor's, vdirsyncer's and calsync's values.
struct Row {
    what: String,
    floor: Option<f64>,
    peer: Option<f64>,
    ours: f64,
    unit: &'static str,
}

impl Row {
    fn new(
        what: &str,
        floor: Option<f64>,
        peer: Option<f64>,
        ours: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            what: what.into(),
            floor,
            peer,
            ours,
            unit,
        }
    }
}

fn cell(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if unit == "s" => format!("{v:.2} s"),
        // The wall per second of Xandikos CPU, whose target (1.05× the floor's) needs a
        // third decimal to tell.
        Some(v) if unit == "s/s" => format!("{v:.3}"),
        Some(v) => format!("{v:.0}{unit}"),
        None => "—".into(),
    }
}

fn ratio(ours: f64, other: Option<f64>, unit: &str) -> String {
    match other {
        Some(o) if o > 0.0 && unit == "s/s" => format!("{:.3}×", ours / o),
        Some(o) if o > 0.0 => format!("{:.2}×", ours / o),
        _ => "—".into(),
    }
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!("| what | floor (PUT loop) | vdirsyncer | calsync | calsync / floor | calsync / vdirsyncer |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.what,
            cell(r.floor, r.unit),
            cell(r.peer, r.unit),
            cell(Some(r.ours), r.unit),
            ratio(r.ours, r.floor, r.unit),
            ratio(r.ours, r.peer, r.unit)
        );
    }
}

/// Print the runs of `links` since `since_ms`, in the order they started: where an initial
/// sync's time goes. Returns when the last of them ended (epoch ms).
async fn print_runs(ctx: &Ctx, links: &[(&str, &str)], since_ms: i64) -> anyhow::Result<i64> {
    let mut runs = Vec::new();
    for (id, name) in links {
        for r in ctx.store().runs_of_link(id).await? {
            if r.started_ms >= since_ms {
                runs.push((*name, r));
            }
        }
    }
    runs.sort_by_key(|(_, r)| r.started_ms);
    let last = runs
        .iter()
        .map(|(_, r)| r.ended_ms)
        .max()
        .unwrap_or(since_ms);
    for (name, r) in runs {
        println!(
            "  run: {name} {} ({}) at +{:.1} s for {:.1} s: {} provider requests, {} AWS calls, {} items read; +{} ~{} -{}",
            r.kind,
            r.trigger,
            (r.started_ms - since_ms) as f64 / 1000.0,
            (r.ended_ms - r.started_ms) as f64 / 1000.0,
            r.api_calls,
            r.aws_calls,
            r.ddb_items_read,
            r.created,
            r.updated,
            r.deleted
        );
    }
    Ok(last)
}

/// Run one job of `link_id` as the queues would (a pull as a schedule's, a push as the
/// sync-back a pull queues) and count its AWS calls.
async fn job_calls(ctx: &Ctx, link_id: &str, dir: Direction) -> anyhow::Result<AwsCalls> {
    let before = ctx.clients.aws_calls.snapshot();
    let trigger = match dir {
        Direction::Pull => "schedule",
        Direction::Push => calsync::handlers::SYNC_BACK,
    };
    run_job(ctx, &SyncJob::unique(link_id, trigger), dir).await?;
    Ok(ctx.clients.aws_calls.snapshot().since(&before))
}

/// What the Radicale → Xandikos part measured at one size ([`caldav`]).
struct Caldav {
    n: usize,
    rows: Vec<Row>,
    group: String,
    user: i64,
    tag: String,
    /// The Radicale link (the source) and the Xandikos link (the target).
    source: String,
    target: String,
    /// The floor's wall (the mean of its two loops); `None` when the peers were left out.
    floor: Option<f64>,
    peer_initial: Option<f64>,
    initial: f64,
    /// calsync's initial-sync wall per second of Xandikos CPU, and the floor's.
    per_xandikos: f64,
    floor_per_xandikos: Option<f64>,
    cpu: f64,
    quiet_calls: f64,
    change_calls: u64,
    change_items: u64,
}

/// Run the benchmark with `n` events and print the table; with `google`, the Google rows too.
///
/// Errors: a server or the local stack failed.
pub async fn run(n: usize, google: bool) -> anyhow::Result<()> {
    let ctx = crate::local_ctx().await;
    let m = caldav(&ctx, n, true).await?;
    print_table(
        &format!("Radicale → Xandikos, {n} events (2 cores; the same servers and calendar for all three)"),
        &m.rows,
    );
    println!(
        "peak RSS of this process (every handler in process, the bench's own data too): {} MB",
        lambda::own_peak_rss_kb() / 1024
    );
    functions().await?;
    if !google {
        return Ok(());
    }
    self::google(&ctx, &m.group, m.user, &m.tag, n).await
}

/// `make bench-scale`: the Radicale → Xandikos part at each size in `sizes` (ascending),
/// each size's table, then the growth table and, at the largest size, the sync worker's and
/// sync-back's peak RSS as Lambda runs them ([`lambda::invoke`]).
///
/// The floor and vdirsyncer run at the sizes up to `peers_up_to` events only: Xandikos's
/// cost per PUT grows with its collection, so each of their syncs of 10,000 events takes
/// about an hour on a 2-core machine. Above it calsync runs alone, and its wall per second
/// of Xandikos CPU (the floor's is 1.03 in every run so far) is what compares it.
///
/// Errors: a server or the local stack failed.
pub async fn scale(sizes: &[usize], peers_up_to: usize) -> anyhow::Result<()> {
    let ctx = crate::local_ctx().await;
    let mut measured = Vec::new();
    for &n in sizes {
        let m = caldav(&ctx, n, n <= peers_up_to).await?;
        print_table(&format!("Radicale → Xandikos, {n} events"), &m.rows);
        measured.push((m, lambda::own_peak_rss_kb()));
    }
    println!("\nGrowth (Radicale → Xandikos; the same servers, one run)");
    println!("| events | floor (PUT loop) | vdirsyncer | calsync | calsync / floor | calsync / vdirsyncer | wall per second of Xandikos CPU: calsync (floor) | calsync CPU per 1,000 | no-change AWS calls per link | one change: AWS calls | one change: items read | peak RSS of the bench so far |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (m, rss) in &measured {
        println!(
            "| {} | {} | {} | {:.1} s | {} | {} | {:.3} ({}) | {:.2} s | {:.0} | {} | {} | {} MB |",
            m.n,
            cell(m.floor, "s"),
            cell(m.peer_initial, "s"),
            m.initial,
            ratio(m.initial, m.floor, "s"),
            ratio(m.initial, m.peer_initial, "s"),
            m.per_xandikos,
            cell(m.floor_per_xandikos, "s/s"),
            m.cpu * 1000.0 / m.n as f64,
            m.quiet_calls,
            m.change_calls,
            m.change_items,
            rss / 1024
        );
    }
    if let Some((last, _)) = measured.last() {
        rss::print_jobs(
            last.n,
            &[
                rss::Job {
                    bin: "sync-worker",
                    link: &last.source,
                    trigger: calsync::handlers::RETRY,
                    what: "pull that re-enumerates the source",
                },
                rss::Job {
                    bin: "sync-back",
                    link: &last.target,
                    trigger: calsync::handlers::CATCH_UP,
                    what: "catch-up push (reads the whole group)",
                },
            ],
        )
        .await?;
    }
    Ok(())
}

/// The directory of this binary, where `make bench` builds the functions' release binaries
/// too (`None`: it has no parent).
pub(crate) fn binaries_dir() -> anyhow::Result<Option<std::path::PathBuf>> {
    Ok(std::env::current_exe()?
        .parent()
        .map(std::path::Path::to_path_buf))
}

/// The Radicale → Xandikos part at `n` events: the floor and vdirsyncer (with `peers`) and
/// calsync's initial sync, a no-change sync and one change among `n`.
async fn caldav(ctx: &Ctx, n: usize, peers: bool) -> anyhow::Result<Caldav> {
    let tag = fixtures::unique("bench");
    let src = fixtures::new_calendar(ctx, Server::Radicale, &tag).await?;
    let t = Instant::now();
    let events: Vec<String> = (0..n).map(generated_event).collect();
    fixtures::radicale_upload(&src, &events).await?;
    println!(
        "setup: {n} events ({} weekly series, TZID=Europe/Berlin, non-ASCII text) uploaded to Radicale in one PUT in {:.1} s",
        n.div_ceil(10),
        t.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();

    // The floor, first (and again after calsync, below), then vdirsyncer.
    let first = if peers {
        Some(floor_then_peer(ctx, &src, &tag, n).await?)
    } else {
        println!("setup: the floor and vdirsyncer left out at {n} events (calsync alone)");
        None
    };
    let peer = first.as_ref().and_then(|f| f.peer.as_ref());
    let peer_initial = first.as_ref().and_then(|f| f.peer_initial.as_ref());
    let peer_quiet = first.as_ref().and_then(|f| f.peer_quiet.as_ref());

    // calsync.
    let dst = fixtures::new_calendar(ctx, Server::Xandikos, &tag).await?;
    let group = fixtures::unique("bench-group");
    let user = 900_000 + (uuid::Uuid::now_v7().as_u128() % 100_000) as i64;
    let a = fixtures::caldav_link(ctx, &group, user, &src, "radicale").await?;
    let b = fixtures::caldav_link(ctx, &group, user, &dst, "xandikos").await?;
    // These two lines let a profiler attach for the sync alone (`make profile`).
    println!("calsync: initial sync starts (pid {})", std::process::id());
    let cpu0 = cpu_time(false)?;
    let servers = ServersCpu::now();
    let t0_ms = calsync::config::now_millis();
    let t = Instant::now();
    let answer = crate::runner::autosync_user(ctx, user).await;
    anyhow::ensure!(answer["Status"] == "OK", "AutoSync answered {answer}");
    let drain = crate::runner::drain_side_by_side(ctx).await?;
    // The process's CPU for the sync: the handlers, and the local pollers' receives (a few:
    // they long-poll), not the reads of the run records below.
    let cpu = cpu_time(false)?.saturating_sub(cpu0).as_secs_f64();
    let drained = t.elapsed().as_secs_f64();
    println!(
        "calsync: initial sync done in {drained:.1} s (the queues found empty; {} receives by the local pollers)",
        drain.receives
    );
    println!("servers' CPU during the initial sync (2 cores shared with the syncing process):");
    if let Some(f) = &first {
        println!("  floor:      {}", f.floor_servers);
        println!("  vdirsyncer: {}", f.peer_servers);
    }
    let servers_now = ServersCpu::now();
    println!("  calsync:    {}", servers_now.since(&servers));
    let xandikos = xandikos_secs(&servers, &servers_now);
    // The sync's wall: until its last job ended (the drain's last long polls come after).
    let last = print_runs(
        ctx,
        &[(&a.link_id, "radicale"), (&b.link_id, "xandikos")],
        t0_ms,
    )
    .await?;
    let initial = (last - t0_ms) as f64 / 1000.0;
    println!("calsync: its last job ended at +{initial:.1} s");
    let created = crate::demo::totals(ctx, &b.link_id).await?.created;
    anyhow::ensure!(
        created as usize == n,
        "calsync created {created} of {n} events on Xandikos"
    );
    // The floor again, now that the three syncs have run: Xandikos's cost per PUT drifts
    // within one process (about 10 % in a run), and a floor measured only first would
    // favour whatever runs first. The ratios use the mean of the two.
    let floor = match &first {
        Some(f) => Some(floor_again(ctx, &tag, n, f).await?),
        None => None,
    };
    rows.push(Row::new(
        &format!("initial sync, {n} events: wall"),
        floor.as_ref().map(|f| f.wall),
        peer_initial.map(|p| p.wall.as_secs_f64()),
        initial,
        "s",
    ));
    // Xandikos is CPU-bound, and what one PUT costs it moves by ±10 % between syncs of
    // the same run: the wall per second of its CPU is the part of the wall that is the
    // syncing tool's own (1.00 when Xandikos is never idle).
    let per_xandikos = initial / xandikos.max(0.01);
    rows.push(Row::new(
        "initial sync: wall per second of Xandikos CPU",
        floor.as_ref().map(|f| f.per_xandikos),
        first.as_ref().and_then(|f| {
            f.peer_initial
                .as_ref()
                .map(|p| p.wall.as_secs_f64() / f.peer_xandikos.max(0.01))
        }),
        per_xandikos,
        "s/s",
    ));
    let floor_cpu = first.as_ref().map(|f| f.floor_cpu);
    rows.push(Row::new(
        "initial sync: CPU (user + system)",
        floor_cpu,
        peer_initial.map(|p| p.cpu.as_secs_f64()),
        cpu,
        "s",
    ));
    rows.push(Row::new(
        "initial sync: CPU per 1,000 events",
        floor_cpu.map(|c| c * 1000.0 / n as f64),
        peer_initial.map(|p| p.cpu.as_secs_f64() * 1000.0 / n as f64),
        cpu * 1000.0 / n as f64,
        "s",
    ));
    // What the sync costs beyond the PUTs themselves (the floor's loop, on the same HTTP
    // stack): reading and parsing the source, the hub and mapping items, the bookkeeping.
    if let Some(floor_cpu) = floor_cpu {
        rows.push(Row::new(
            "initial sync: CPU beyond the floor's PUTs, per 1,000 events",
            None,
            None,
            (cpu - floor_cpu).max(0.0) * 1000.0 / n as f64,
            "s",
        ));
    }

    // No change: one pull per link (what the schedule runs), no sync-back follows. First one
    // settling pull each: the first pull after calsync's own writes lists them (and finds
    // them known), which is not yet the steady state a schedule sees.
    for l in [&a, &b] {
        run_job(ctx, &SyncJob::unique(&l.link_id, "bench"), Direction::Pull).await?;
    }
    let before = crate::demo::totals(ctx, &a.link_id).await?.requests
        + crate::demo::totals(ctx, &b.link_id).await?.requests;
    let t = Instant::now();
    let quiet_a = job_calls(ctx, &a.link_id, Direction::Pull).await?;
    let quiet_b = job_calls(ctx, &b.link_id, Direction::Pull).await?;
    let quiet = t.elapsed().as_secs_f64();
    let requests = crate::demo::totals(ctx, &a.link_id).await?.requests
        + crate::demo::totals(ctx, &b.link_id).await?.requests
        - before;
    rows.push(Row::new(
        "no-change sync (both calendars): wall",
        None,
        peer_quiet.map(|p| p.wall.as_secs_f64()),
        quiet,
        "s",
    ));
    rows.push(Row::new(
        "no-change sync: provider requests",
        None,
        None,
        f64::from(requests),
        "",
    ));
    rows.push(Row::new(
        "no-change sync: AWS calls per link",
        None,
        None,
        (quiet_a.total() + quiet_b.total()) as f64 / 2.0,
        "",
    ));
    println!(
        "no-change pull of Radicale, AWS calls: {}",
        quiet_a.summary()
    );
    println!(
        "no-change pull of Xandikos, AWS calls: {}",
        quiet_b.summary()
    );

    // One change among N: the user edits one event in Radicale; its pull, then the
    // sync-back to Xandikos. An hour later, not within the minute a sync-back reads again.
    fixtures::age_hub(ctx, &group, 3_600_000).await?;
    let uid = format!("bench-{}@calsync.example", n / 2);
    fixtures::client_edit(ctx, &src, &uid, |t| {
        t.replacen("SUMMARY:", "SUMMARY:Edited ", 1)
    })
    .await?;
    let peer_change = peer.map(Vdirsyncer::sync).transpose()?;
    let t = Instant::now();
    let pull = job_calls(ctx, &a.link_id, Direction::Pull).await?;
    let push = job_calls(ctx, &b.link_id, Direction::Push).await?;
    let change = t.elapsed().as_secs_f64();
    rows.push(Row::new(
        &format!("one change among {n}: wall (pull + sync-back)"),
        None,
        peer_change.as_ref().map(|p| p.wall.as_secs_f64()),
        change,
        "s",
    ));
    rows.push(Row::new(
        "one change: AWS calls (pull + sync-back)",
        None,
        None,
        (pull.total() + push.total()) as f64,
        "",
    ));
    rows.push(Row::new(
        "one change: DynamoDB items read",
        None,
        None,
        (pull.ddb_items_read + push.ddb_items_read) as f64,
        "",
    ));
    println!("one change, the pull's AWS calls: {}", pull.summary());
    println!("one change, the sync-back's AWS calls: {}", push.summary());
    Ok(Caldav {
        n,
        rows,
        group,
        user,
        tag,
        source: a.link_id.clone(),
        target: b.link_id.clone(),
        floor: floor.as_ref().map(|f| f.wall),
        peer_initial: peer_initial.map(|p| p.wall.as_secs_f64()),
        initial,
        per_xandikos,
        floor_per_xandikos: floor.as_ref().map(|f| f.per_xandikos),
        cpu,
        quiet_calls: (quiet_a.total() + quiet_b.total()) as f64 / 2.0,
        change_calls: pull.total() + push.total(),
        change_items: pull.ddb_items_read + push.ddb_items_read,
    })
}

/// The functions' table, from the release binaries beside this one (`make bench` builds
/// them); a note instead when they are not there. Alone: `make bench-functions` (no stack).
pub async fn functions() -> anyhow::Result<()> {
    let Some(dir) = binaries_dir()? else {
        return Ok(());
    };
    let measured = match lambda::measure(&dir).await {
        Ok(m) => m,
        Err(e) => {
            println!("functions not measured: {e}");
            return Ok(());
        }
    };
    println!(
        "\nThe functions as Lambda starts them (release binaries in {})",
        dir.display()
    );
    println!(
        "| function | binary | deflated (the deployment zip) | cold init, median of {} starts (to the first invocation/next) | fastest–slowest | RSS after init | target |",
        lambda::STARTS
    );
    println!("|---|---|---|---|---|---|---|");
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    for c in measured {
        println!(
            "| {} | {:.1} MB | {:.1} MB | {:.1} ms | {:.1}–{:.1} ms | {:.1} MB | < 8 MB, < 30 ms |",
            c.name,
            c.size as f64 / 1_048_576.0,
            c.deflated as f64 / 1_048_576.0,
            ms(c.median()),
            ms(c.init.first().copied().unwrap_or_default()),
            ms(c.init.last().copied().unwrap_or_default()),
            c.rss_kb as f64 / 1024.0
        );
    }
    Ok(())
}

/// Google joins the group: its initial sync against the quota floor (every call, batch
/// items included, takes from the user's 600 calls a minute), and a no-change sync.
async fn google(ctx: &Ctx, group: &str, user: i64, tag: &str, n: usize) -> anyhow::Result<()> {
    let google =
        crate::google::LocalGoogle::start(ctx, crate::emulators::google::Config::default()).await?;
    let g = google
        .connect(group, user, &format!("{tag}@calsync.example"), "google")
        .await?;
    let t = Instant::now();
    fixtures::sync_user(&google.ctx, user).await?;
    let initial = t.elapsed();
    let tg = crate::demo::totals(ctx, &g.link_id).await?;
    let calls = google.emu.requests();
    // The floor: one insert per event (the generated series have EXDATEs, no overrides to
    // write as instances) at the full 600 calls a minute.
    let floor = Duration::from_secs_f64(n as f64 / 10.0);
    let rows = vec![
        Row::new(
            &format!("initial sync to Google, {n} events: wall"),
            Some(floor.as_secs_f64()),
            None,
            initial.as_secs_f64(),
            "s",
        ),
        Row::new(
            "initial sync to Google: HTTP requests (batches)",
            None,
            None,
            f64::from(tg.requests),
            "",
        ),
        Row::new(
            "initial sync to Google: API calls (quota)",
            Some(n as f64),
            None,
            calls as f64,
            "",
        ),
        Row::new(
            "initial sync to Google: calls refused for quota (403)",
            None,
            None,
            google.emu.quota_refusals() as f64,
            "",
        ),
    ];
    print_table(
        "Google (emulator; floor: one insert per event at 600 calls a minute)",
        &rows,
    );
    let before = google.emu.requests();
    let quiet = job_calls(&google.ctx, &g.link_id, Direction::Pull).await?;
    println!(
        "no-change pull of Google: {} API call(s), {} AWS calls ({})",
        google.emu.requests() - before,
        quiet.total(),
        quiet.summary()
    );
    Ok(())
}
