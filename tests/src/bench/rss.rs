//! The functions' peak RSS on a large calendar: each release binary given one SQS job as
//! Lambda would (through the stand-in runtime API, [`super::lambda::invoke`]), its `VmHWM`
//! read once it answered. `make bench-scale` runs it at its largest size; `make bench-rss`
//! on its own, against a Radicale calendar only, so that 10,000 events take minutes (no
//! 10,000 PUTs into an empty calendar first).

use std::time::{Duration, Instant};

use calsync::queue::SyncJob;

use super::peers::generated_event;
use crate::fixtures::{self, Server};

/// One job to measure: which binary, for which link, started how, and what that means.
pub struct Job<'a> {
    /// Function binary beside calsync-local (`sync-worker`, `sync-back`).
    pub bin: &'static str,
    /// Link id of the job.
    pub link: &'a str,
    /// The job's trigger (`calsync::handlers::RETRY`, `CATCH_UP`, `schedule`).
    pub trigger: &'static str,
    /// What the job does, for the table.
    pub what: &'static str,
}

/// Run each of `jobs` through its release binary, one after the other, and print the table
/// (wall, CPU, peak RSS) for an `n`-event calendar. A binary that is not built is skipped.
///
/// Errors: a job that answered with a batch item failure.
pub async fn print_jobs(n: usize, jobs: &[Job<'_>]) -> anyhow::Result<()> {
    let Some(dir) = super::binaries_dir()? else {
        return Ok(());
    };
    println!(
        "\nPeak RSS per function on the {n}-event calendar (release binaries, one job each through the runtime API)"
    );
    println!("| function | job | wall | CPU | peak RSS | target |");
    println!("|---|---|---|---|---|---|");
    for j in jobs {
        let job = SyncJob::unique(j.link, j.trigger);
        let event = serde_json::json!({"Records": [{
            "messageId": "bench-1",
            "receiptHandle": "bench",
            "body": serde_json::to_string(&job)?,
            "attributes": {"MessageGroupId": j.link, "ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench.fifo",
            "awsRegion": "us-east-1"
        }]});
        match super::lambda::invoke(&dir.join(j.bin), &event, Duration::from_secs(900)).await {
            Ok(r) => {
                anyhow::ensure!(
                    !r.response.contains("batchItemFailures\":[{"),
                    "{}: the job failed: {}",
                    j.bin,
                    r.response
                );
                println!(
                    "| {} | {} | {:.2} s | {:.2} s | {:.1} MB | < 48 MB (sync worker, 10,000 events) |",
                    j.bin,
                    j.what,
                    r.wall.as_secs_f64(),
                    r.cpu.as_secs_f64(),
                    r.peak_rss_kb as f64 / 1024.0
                );
            }
            Err(e) => println!("| {} | not measured: {e} | | | | |", j.bin),
        }
    }
    Ok(())
}

/// `make bench-rss`: the generated `n`-event calendar uploaded to Radicale and linked alone
/// to a new group; then the sync worker's initial pull of it (every event new to the hub),
/// its re-enumerating pull, and sync-back's catch-up push of the whole group (all mapped:
/// reads everything, writes nothing), each through its release binary.
///
/// Errors: the local stack or Radicale failed, or a job failed.
pub async fn run(n: usize) -> anyhow::Result<()> {
    let ctx = crate::local_ctx().await;
    let src = fixtures::new_calendar(&ctx, Server::Radicale, &fixtures::unique("rss")).await?;
    let t = Instant::now();
    let events: Vec<String> = (0..n).map(generated_event).collect();
    fixtures::radicale_upload(&src, &events).await?;
    println!(
        "setup: {n} events uploaded to Radicale in one PUT in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let user = 5_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64;
    let link =
        fixtures::caldav_link(&ctx, &fixtures::unique("rss-group"), user, &src, "radicale").await?;
    print_jobs(
        n,
        &[
            Job {
                bin: "sync-worker",
                link: &link.link_id,
                trigger: "schedule",
                what: "initial pull (every event new to the hub)",
            },
            Job {
                bin: "sync-worker",
                link: &link.link_id,
                trigger: calsync::handlers::RETRY,
                what: "pull that re-enumerates the source",
            },
            Job {
                bin: "sync-back",
                link: &link.link_id,
                trigger: calsync::handlers::CATCH_UP,
                what: "catch-up push (reads the whole group, writes nothing)",
            },
        ],
    )
    .await
}
