//! Local runner for calsync on the local stack (not a Lambda function).
//!
//! ```text
//! calsync-local demo [--ics FILE] [--name N]   the main job (make run)
//! calsync-local drain               run the queues until empty, as Lambda's SQS triggers would
//! calsync-local schedule            fire the EventBridge schedule once, then drain
//! calsync-local serve [--every S] [--api-port P]
//!                                   the API on 127.0.0.1:P (8000) with a development token
//!                                   issuer, webhook routes, Google emulator, queue runner,
//!                                   schedule every S seconds (60), notifications (make serve)
//! calsync-local token --user N [--ttl S]  a development token for user N (needs serve)
//! calsync-local openapi             print the API's OpenAPI document (docs/openapi.json)
//! calsync-local bench [--events N] [--no-google]  side by side with the floor and vdirsyncer (make bench)
//! calsync-local bench-scale [--sizes A,B,C] [--peers-up-to N]  the growth table and the functions' peak RSS (make bench-scale)
//! calsync-local bench-rss [--events N]  the functions' peak RSS on an N-event calendar (make bench-rss)
//! calsync-local bench-fanout [--links N]  the schedule's tick against N links (make bench-fanout)
//! calsync-local bench-functions     the functions' binary size, cold init and RSS (make bench-functions)
//! calsync-local connect-google --group G --user U [--calendar C] [--name N] [--port P]
//!                                   OAuth consent for a Google calendar: serves the callback on
//!                                   127.0.0.1:P (8765), prints the consent URL, waits (10 min)
//! ```
use std::process::ExitCode;

use calsync_e2e::{bench, demo, local_ctx, runner};

fn main() -> ExitCode {
    // The bench runs the handlers on the runtime the functions use (one thread); the rest
    // (the local queue runner, serve, soak) on the multi-threaded one.
    let bench = matches!(
        std::env::args().nth(1).as_deref(),
        Some("bench" | "bench-scale" | "bench-rss" | "bench-functions")
    );
    let mut builder = if bench {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Reports go to stdout; logs (stderr) only for warnings unless RUST_LOG says otherwise.
    // The soak captures the logs itself (it checks that no secret reaches them).
    if args.first().map(String::as_str) != Some("soak") {
        calsync::handlers::init_tracing_with_default("warn");
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo::run(flag("--ics").as_deref(), flag("--name").as_deref())
            .await
            .inspect(|ok| {
                if !ok {
                    eprintln!("error: the members did not converge (see the report above)");
                }
            }),
        Some("drain") => {
            let ctx = local_ctx().await;
            runner::drain(&ctx).await.map(|s| {
                println!("{s:?}");
                true
            })
        }
        Some("schedule") => {
            let ctx = local_ctx().await;
            println!("{}", runner::schedule_tick(&ctx).await);
            runner::drain(&ctx).await.map(|s| {
                println!("{s:?}");
                true
            })
        }
        Some("serve") => {
            let every = flag("--every")
                .and_then(|v| v.parse().ok())
                .unwrap_or(60u64);
            let port = flag("--api-port")
                .and_then(|v| v.parse().ok())
                .unwrap_or(8000u16);
            calsync_e2e::serve::run(port, std::time::Duration::from_secs(every))
                .await
                .map(|_| true)
        }
        Some("soak") => {
            let ctx = local_ctx().await;
            let n = flag("--schedules")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000u64);
            let epochs = flag("--epochs")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1usize);
            let first = flag("--first-seed")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1u64);
            calsync_e2e::soak::run_many(&ctx, first, n, epochs)
                .await
                .map(|r| {
                    println!("{}", r.summary());
                    r.violations.is_empty()
                })
        }
        Some("openapi") => {
            print!("{}", calsync::api::openapi::document());
            Ok(true)
        }
        Some("token") => {
            let Some(user) = flag("--user").and_then(|u| u.parse::<i64>().ok()) else {
                eprintln!("token needs --user N (an integer)");
                return ExitCode::from(2);
            };
            let ttl = flag("--ttl").and_then(|v| v.parse().ok()).unwrap_or(3600);
            calsync_e2e::issuer::IssuerFile::token(user, ttl).map(|t| {
                println!("{t}");
                true
            })
        }
        Some("bench") => {
            let n = flag("--events")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            let google = !std::env::args().any(|a| a == "--no-google");
            bench::run(n, google).await.map(|_| true)
        }
        Some("bench-scale") => {
            let sizes: Vec<usize> = flag("--sizes")
                .unwrap_or_else(|| "1000,5000,10000".into())
                .split(',')
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            let peers_up_to = flag("--peers-up-to")
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            bench::scale(&sizes, peers_up_to).await.map(|_| true)
        }
        Some("bench-rss") => {
            let n = flag("--events")
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            bench::rss::run(n).await.map(|_| true)
        }
        Some("bench-functions") => bench::functions().await.map(|_| true),
        Some("bench-fanout") => {
            let links = flag("--links")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100_000);
            bench::fanout::run(links).await.map(|_| true)
        }
        Some("connect-google") => {
            let (Some(group), Some(user)) = (flag("--group"), flag("--user")) else {
                eprintln!("connect-google needs --group G and --user U (an integer)");
                return ExitCode::from(2);
            };
            let Ok(user) = user.parse::<i64>() else {
                eprintln!("--user must be an integer, got {user:?}");
                return ExitCode::from(2);
            };
            let port = flag("--port").unwrap_or_else(|| "8765".into());
            match tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await {
                Err(e) => Err(anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}")),
                Ok(listener) => calsync_e2e::google::connect_interactively(
                    local_ctx().await,
                    listener,
                    &calsync::connect::ConnectRequest {
                        provider: calsync::model::ProviderKind::Google,
                        group_id: group,
                        user_id: user,
                        calendar_id: flag("--calendar").unwrap_or_else(|| "primary".into()),
                        display_name: flag("--name").unwrap_or_else(|| "Google".into()),
                        choices: Default::default(),
                    },
                    std::time::Duration::from_secs(600),
                    None,
                )
                .await
                .map(|_| true),
            }
        }
        _ => {
            eprintln!(
                "usage: calsync-local demo [--ics FILE] [--name N] | drain | schedule | serve [--every S] [--api-port P] | token --user N [--ttl S] | bench [--events N] [--no-google] | bench-scale [--sizes 1000,5000,10000] [--peers-up-to N] | bench-rss [--events 10000] | bench-fanout [--links N] | bench-functions | soak [--schedules N] [--epochs E] [--first-seed S] | connect-google --group G --user U [--calendar C] [--name N] [--port P]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
