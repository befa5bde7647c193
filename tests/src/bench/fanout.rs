//! `make bench-fanout`: the schedule's tick and the token refresher's run against a links
//! table of `links` links (100,000 by default) on the local stack, of which cohorts of 100,
//! 1,000 and 3,000 fall due one after the other. Each tick
//! ([`calsync::handlers::fanout::tick`]) and each refresher run
//! ([`calsync::refresher::run_at`]) is measured — items read (the Queries' `ScannedCount`
//! and the items read by key), AWS calls by operation, links queued or looked after, wall —
//! beside what a Scan reads at the same moment (the fan-out before the `due-index`; the
//! refresher before the `upkeep-index`, which Scanned the links and the channels). The
//! items read should follow the due links, not the table.
//!
//! The links are written straight into the table (BatchWriteItem of 25, several in flight):
//! Google links without secrets, due for a sync and for their upkeep at the same cohort
//! time; they are never synced. A look finds no token to refresh (no secret) and no channel
//! to start (the bench's context has no webhook URL), so it reads the link's channels and
//! takes the link out of the `upkeep-index`: the reads and writes of a look, without the
//! provider's. The queued jobs are purged after each tick. The wall times are moto's, whose index Queries and writes slow
//! with the table's size (about 50 ms an UpdateItem at 100,000 items); hence cohorts of
//! thousands, not the 333,333 of a real tick at a million links (`docs/performance.md`).

use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use calsync::config::Ctx;
use calsync::handlers::fanout;
use calsync::model::{Link, ProviderKind};
use calsync::queue::QueueKind;
use calsync::refresher;
use futures_util::stream::{self, StreamExt};

/// The cohorts that fall due, in tick order.
const COHORTS: [usize; 3] = [100, 1_000, 3_000];
/// Seconds between the cohorts' due times (and the ticks).
const TICK_SECS: i64 = 300;
/// BatchWriteItem calls in flight while the table is filled.
const WRITES_IN_FLIGHT: usize = 8;

/// Fill the links table with `links` links and run one tick per cohort; print the table.
///
/// Errors: `links` smaller than the cohorts together, or the local stack failed.
pub async fn run(links: usize) -> anyhow::Result<()> {
    let cohorts: usize = COHORTS.iter().sum();
    anyhow::ensure!(
        links >= cohorts,
        "--links {links}: at least {cohorts} (the due cohorts)"
    );
    let ctx = crate::local_ctx().await;
    // The stack's own links looked after, and the refresher's one-time backfill done
    // before the table is filled (it is the one Scan the refresher still makes).
    refresher::run(&ctx).await?;
    // Far from the wall clock, so that no real link on the stack is due at these ticks.
    let base = calsync::config::now_secs() + 10 * 365 * 86_400;
    let t = Instant::now();
    fill(&ctx, links, base).await?;
    println!(
        "setup: {links} links written in {:.1} s (cohorts of {COHORTS:?} due {TICK_SECS} s apart, the rest a year later)",
        t.elapsed().as_secs_f64()
    );
    println!(
        "\nThe schedule's tick, {links} links ({} shards of the due-index; {} shards, {} SendMessageBatch and {} UpdateItem calls in flight)",
        Link::DUE_SHARDS,
        fanout::SHARDS_IN_FLIGHT,
        calsync::queue::SENDS_IN_FLIGHT,
        fanout::UPDATES_IN_FLIGHT * fanout::SHARDS_IN_FLIGHT
    );
    println!("| tick | due links | jobs queued | items read by the tick | items a Scan reads | tick / Scan | Query | SendMessageBatch | UpdateItem | wall (moto) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (k, due) in COHORTS.iter().enumerate() {
        let now = base + TICK_SECS * k as i64;
        let before = ctx.clients.aws_calls.snapshot();
        let t = Instant::now();
        let report = fanout::tick(&ctx, now).await;
        let wall = t.elapsed().as_secs_f64();
        let calls = ctx.clients.aws_calls.snapshot().since(&before);
        anyhow::ensure!(
            report.failed.is_empty(),
            "tick {k}: {:?}",
            report.failed.first()
        );
        anyhow::ensure!(
            report.queued == *due,
            "tick {k}: queued {} of {due}",
            report.queued
        );
        let scan = scan_items(&ctx, &ctx.config.links_table).await?;
        let op = |name: &str| calls.by_operation.get(name).copied().unwrap_or(0);
        println!(
            "| {} | {due} | {} | {} | {scan} | {:.3}× | {} | {} | {} | {wall:.2} s |",
            k + 1,
            report.queued,
            calls.ddb_items_read,
            calls.ddb_items_read as f64 / scan.max(1) as f64,
            op("DynamoDB:Query"),
            op("SQS:SendMessageBatch"),
            op("DynamoDB:UpdateItem"),
        );
        purge(&ctx).await?;
    }
    println!(
        "\nThe token refresher's run, {links} links ({} shards of the upkeep-index, read in order; {} links looked after at once)",
        Link::DUE_SHARDS,
        refresher::LINKS_IN_FLIGHT
    );
    println!("| run | due links | looked after | items read by the run | items the Scans read (links, channels) | run / Scans | Query | BatchGetItem | UpdateItem | wall (moto) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (k, due) in COHORTS.iter().enumerate() {
        let now = base + TICK_SECS * k as i64;
        let before = ctx.clients.aws_calls.snapshot();
        let t = Instant::now();
        let report = refresher::run_at(&ctx, now, None).await?;
        let wall = t.elapsed().as_secs_f64();
        let calls = ctx.clients.aws_calls.snapshot().since(&before);
        anyhow::ensure!(
            report.failed == 0 && report.links as usize == *due,
            "refresher run {k}: looked after {} of {due}, {} failed",
            report.links,
            report.failed
        );
        let scan = scan_items(&ctx, &ctx.config.links_table).await?
            + scan_items(&ctx, &ctx.config.channels_table).await?;
        let op = |name: &str| calls.by_operation.get(name).copied().unwrap_or(0);
        println!(
            "| {} | {due} | {} | {} | {scan} | {:.3}× | {} | {} | {} | {wall:.2} s |",
            k + 1,
            report.links,
            calls.ddb_items_read,
            calls.ddb_items_read as f64 / scan.max(1) as f64,
            op("DynamoDB:Query"),
            op("DynamoDB:BatchGetItem"),
            op("DynamoDB:UpdateItem"),
        );
    }
    Ok(())
}

/// Write `links` links: the cohorts due at `base`, `base + TICK_SECS`, …, the rest a year
/// after `base`.
async fn fill(ctx: &Ctx, links: usize, base: i64) -> anyhow::Result<()> {
    let table = ctx.config.links_table.clone();
    let due_at = |i: usize| -> i64 {
        let mut end = 0;
        for (k, c) in COHORTS.iter().enumerate() {
            end += c;
            if i < end {
                return base + TICK_SECS * k as i64;
            }
        }
        base + 365 * 86_400
    };
    let request = |i: usize| -> anyhow::Result<WriteRequest> {
        let id = format!("fanout-{i:07}");
        let mut l = Link::new(
            &id,
            &format!("fanout-group-{}", i / 2),
            1_000_000 + (i / 2) as i64,
            ProviderKind::Google,
            "primary",
        );
        l.frequency_secs = 900;
        l.next_sync_at = due_at(i);
        l.upkeep_at = Some(due_at(i));
        let item: std::collections::HashMap<String, AttributeValue> = serde_dynamo::to_item(l)?;
        Ok(WriteRequest::builder()
            .put_request(PutRequest::builder().set_item(Some(item)).build()?)
            .build())
    };
    // Each batch's items are made when it is sent: the bench holds a few batches, not the
    // table.
    let batches = (0..links).step_by(25).map(|first| {
        let chunk: anyhow::Result<Vec<WriteRequest>> =
            (first..(first + 25).min(links)).map(request).collect();
        let table = table.clone();
        async move { write_batch(ctx, &table, chunk?).await }
    });
    let results: Vec<anyhow::Result<()>> = stream::iter(batches)
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// One BatchWriteItem, its unprocessed items sent again until none are left.
async fn write_batch(ctx: &Ctx, table: &str, mut chunk: Vec<WriteRequest>) -> anyhow::Result<()> {
    for _ in 0..10 {
        let out = ctx
            .clients
            .ddb
            .batch_write_item()
            .request_items(table, chunk)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "BatchWriteItem: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?;
        match out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .filter(|v| !v.is_empty())
        {
            Some(left) => chunk = left,
            None => return Ok(()),
        }
    }
    anyhow::bail!("BatchWriteItem: items left unprocessed after 10 attempts")
}

/// The items a full Scan of `table` reads (`Select: COUNT`, every page).
async fn scan_items(ctx: &Ctx, table: &str) -> anyhow::Result<u64> {
    let mut items = 0u64;
    let mut start = None;
    loop {
        let out = ctx
            .clients
            .ddb
            .scan()
            .table_name(table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("Scan: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e))
            })?;
        items += u64::try_from(out.scanned_count).unwrap_or(0);
        match out.last_evaluated_key.filter(|k| !k.is_empty()) {
            Some(k) => start = Some(k),
            None => return Ok(items),
        }
    }
}

/// Empty the sync-jobs queue: the simulated links are never synced.
async fn purge(ctx: &Ctx) -> anyhow::Result<()> {
    let url = ctx.queues().url(QueueKind::SyncJobs).await?;
    ctx.clients
        .sqs
        .purge_queue()
        .queue_url(url)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("PurgeQueue: {}", aws_sdk_sqs::error::DisplayErrorContext(e))
        })?;
    Ok(())
}
