//! `make bench`: a generated calendar synced Radicale → Xandikos, then a no-change sync; then
//! a Google calendar (the emulator) joins the group: initial sync through batch requests and a
//! no-change sync, with HTTP requests and quota calls.

use std::time::Instant;

use crate::fixtures::{self, Server};

fn generated_event(i: usize) -> String {
    let day = 1 + (i % 28);
    let month = 1 + (i / 28) % 12;
    let hour = 8 + (i % 9);
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}@calsync.example\r\n\
DTSTAMP:20260101T000000Z\r\nDTSTART:2027{month:02}{day:02}T{hour:02}0000Z\r\nDTEND:2027{month:02}{day:02}T{hour:02}3000Z\r\n\
SUMMARY:Generated event {i}\r\nDESCRIPTION:Benchmark event number {i}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Run the benchmark with `n` events and print the numbers.
pub async fn run(n: usize) -> anyhow::Result<()> {
    let ctx = crate::local_ctx().await;
    let tag = fixtures::unique("bench");
    let src = fixtures::new_calendar(&ctx, Server::Radicale, &tag).await?;
    let dst = fixtures::new_calendar(&ctx, Server::Xandikos, &tag).await?;
    let t = Instant::now();
    for i in 0..n {
        fixtures::client_put(&ctx, &src, &generated_event(i)).await?;
    }
    println!(
        "setup: {n} PUTs into Radicale in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let group = fixtures::unique("bench-group");
    let user = 900_000 + (uuid::Uuid::now_v7().as_u128() % 100_000) as i64;
    let a = fixtures::caldav_link(&ctx, &group, user, &src, "radicale").await?;
    let b = fixtures::caldav_link(&ctx, &group, user, &dst, "xandikos").await?;

    let t = Instant::now();
    fixtures::sync_user(&ctx, user).await?;
    let initial = t.elapsed();
    let (ta, tb) = (
        crate::demo::totals(&ctx, &a.link_id).await?,
        crate::demo::totals(&ctx, &b.link_id).await?,
    );
    println!(
        "initial sync Radicale -> Xandikos, {n} events: {:.2} s wall, {} provider requests (radicale {}, xandikos {}), {} created on Xandikos",
        initial.as_secs_f64(),
        ta.requests + tb.requests,
        ta.requests,
        tb.requests,
        tb.created
    );
    let t = Instant::now();
    fixtures::sync_user(&ctx, user).await?;
    let quiet = t.elapsed();
    let (ua, ub) = (
        crate::demo::totals(&ctx, &a.link_id).await?,
        crate::demo::totals(&ctx, &b.link_id).await?,
    );
    println!(
        "no-change incremental sync: {:.3} s wall, {} provider requests (radicale {}, xandikos {})",
        quiet.as_secs_f64(),
        (ua.requests + ub.requests) - (ta.requests + tb.requests),
        ua.requests - ta.requests,
        ub.requests - tb.requests
    );

    // Google joins: creates go out in batch requests; each call still counts for the quota
    // (600 calls/minute/user), which paces the initial sync.
    let google =
        crate::google::LocalGoogle::start(&ctx, crate::emulators::google::Config::default())
            .await?;
    let g = google
        .connect(&group, user, &format!("{tag}@calsync.example"), "google")
        .await?;
    let t = Instant::now();
    fixtures::sync_user(&google.ctx, user).await?;
    let initial = t.elapsed();
    let tg = crate::demo::totals(&ctx, &g.link_id).await?;
    println!(
        "initial sync to Google, {n} events: {:.2} s wall (paced at 600 calls/min), {} HTTP requests, {} API calls (quota), {} created",
        initial.as_secs_f64(),
        tg.requests,
        google.emu.requests(),
        tg.created
    );
    let calls = google.emu.requests();
    let t = Instant::now();
    fixtures::sync_user(&google.ctx, user).await?;
    let ug = crate::demo::totals(&ctx, &g.link_id).await?;
    println!(
        "no-change sync with Google: {:.3} s wall, {} Google HTTP requests, {} API calls",
        t.elapsed().as_secs_f64(),
        ug.requests - tg.requests,
        google.emu.requests() - calls
    );
    Ok(())
}
