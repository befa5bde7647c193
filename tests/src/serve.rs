//! `make serve`: the local stack working like the deployed system, in the foreground — the
//! API (`http://127.0.0.1:$API_PORT/v1`, default 8000) with a development token issuer
//! (`$API_PORT + 1`), the settings page (`/app/`, its signed-in link printed), the Google and Graph (Outlook) emulators and the webhook-receiver
//! routes, the queue runner
//! (every second, like the SQS event source mappings), the schedule (every `every`) and the
//! application's notifications printed as they arrive. `calsync-local token --user N` prints
//! a token the API accepts.

use std::time::Duration;

use crate::api::ApiServer;
use crate::emulators::google::Config as GoogleConfig;
use crate::google::LocalGoogle;
use crate::issuer::{DevIssuer, IssuerFile};
use crate::{notifications, runner};

/// Serve until Ctrl-C.
pub async fn run(api_port: u16, every: Duration) -> anyhow::Result<()> {
    let google = LocalGoogle::start(&crate::local_ctx().await, GoogleConfig::default()).await?;
    let ctx = google.ctx.clone();
    let outlook = crate::outlook::LocalOutlook::beside(
        &ctx,
        &google.hooks.url,
        crate::emulators::graph::Config::default(),
    )
    .await?;
    outlook.emu.add_calendar("work", "Work");
    // The emulated Google account's main calendar, which a consent without a chosen
    // calendar connects.
    google.emu.add_calendar("primary", "Main", "Europe/Berlin");
    let issuer_listener = tokio::net::TcpListener::bind(("127.0.0.1", api_port + 1)).await?;
    let issuer = DevIssuer::start(issuer_listener, None).await?;
    let saved = IssuerFile::save(&issuer)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", api_port)).await?;
    let srv = ApiServer::start(ctx.clone(), listener, issuer).await?;
    let token = srv.issuer.token(42);
    // Empty calendars to connect (the README's examples use them).
    let mut calendars = Vec::new();
    for server in [
        crate::fixtures::Server::Radicale,
        crate::fixtures::Server::Xandikos,
    ] {
        let url = server.calendar_url("work");
        if crate::fixtures::new_calendar(&ctx, server, "work")
            .await
            .is_err()
        {
            tracing::info!(%url, "calendar exists already");
        }
        calendars.push(url);
    }
    println!("calsync is serving on the local stack (Ctrl-C stops):");
    println!(
        "  API            {}/v1   (OpenAPI: {}/v1/openapi.json)",
        srv.url, srv.url
    );
    println!(
        "  token issuer   {}   (JWKS {}/.well-known/jwks.json; key in {})",
        srv.issuer.url,
        srv.issuer.url,
        saved.display()
    );
    println!(
        "  webhooks/OAuth {}   (Google and Outlook push and consent routes)",
        google.hooks.url
    );
    println!(
        "  Google         {}   (emulator; consents at once)",
        google.emu.url
    );
    println!(
        "  Outlook        {}   (Graph emulator; consents at once; calendar id `work`)",
        outlook.emu.url
    );
    println!(
        "  queues         drained every second; schedule every {} s",
        every.as_secs()
    );
    println!(
        "  calendars      {} and {} (user {}, password {})",
        calendars[0],
        calendars[1],
        crate::fixtures::USER,
        crate::fixtures::PASSWORD
    );
    println!();
    println!("the settings page, signed in as user 42 (the token lasts 1 hour):");
    println!("  {}/app/#token={token}", srv.url);
    println!();
    println!(
        "a token for user 42 (1 hour; `./target/debug/calsync-local token --user N` for others):"
    );
    println!("  export TOKEN={token}");
    println!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" {}/v1/groups",
        srv.url
    );
    println!();
    let mut schedule = tokio::time::interval(every);
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = schedule.tick() => {
                let answer = runner::schedule_tick(&ctx).await;
                println!("schedule: {}", answer["Message"].as_str().unwrap_or(""));
            }
            _ = poll.tick() => {
                let stats = runner::drain(&ctx).await?;
                if stats != runner::DrainStats::default() {
                    println!("jobs: {} pulls, {} pushes, {} retried", stats.pulls, stats.pushes, stats.failures);
                }
                for n in notifications::take_all(&ctx).await? {
                    println!("notification: {} {}", n.detail_type, n.detail);
                }
            }
        }
    }
}
