//! The functions as Lambda starts them: each release binary's size, and its cold init time
//! through the Lambda runtime API — from the process's start to its first
//! `GET /2018-06-01/runtime/invocation/next`, which a runtime sends once its init code has
//! run (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>). A small HTTP
//! listener here plays the runtime API; the function's own init (configuration, AWS SDK
//! clients, the tracing subscriber) is what is timed.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// The Lambda functions (binary names, `functions/*`).
pub const FUNCTIONS: [&str; 6] = [
    "autosync",
    "sync-worker",
    "sync-back",
    "token-refresher",
    "webhook-receiver",
    "api",
];

/// One function's numbers.
#[derive(Debug)]
pub struct Cold {
    /// Binary name.
    pub name: &'static str,
    /// Size of the release binary, bytes.
    pub size: u64,
    /// Process start to its first `invocation/next` request.
    pub init: Duration,
    /// Resident set size once init is done (kB, `VmRSS`).
    pub rss_kb: u64,
}

/// Start each function binary in `dir` against a listener that plays the runtime API and
/// time it to its first request for an invocation; the process is killed then.
///
/// Errors: a binary is missing, does not start, or sends no request within 10 s.
pub async fn measure(dir: &Path) -> anyhow::Result<Vec<Cold>> {
    let mut out = Vec::new();
    for name in FUNCTIONS {
        let bin = dir.join(name);
        let size = std::fs::metadata(&bin)
            .map_err(|e| {
                anyhow::anyhow!("{}: {e} (build with cargo build --release)", bin.display())
            })?
            .len();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?.to_string();
        let start = Instant::now();
        let mut child = tokio::process::Command::new(&bin)
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .map_err(|_| anyhow::anyhow!("{name} sent no runtime API request within 10 s"))??;
        let mut head = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut head)).await??;
        let init = start.elapsed();
        let line = String::from_utf8_lossy(&head[..n]);
        anyhow::ensure!(
            line.starts_with("GET /2018-06-01/runtime/invocation/next"),
            "{name}'s first runtime API request was {:?}",
            line.lines().next()
        );
        let rss_kb = child.id().map(rss_of).unwrap_or(0);
        child.kill().await?;
        out.push(Cold {
            name,
            size,
            init,
            rss_kb,
        });
    }
    Ok(out)
}

/// `VmRSS` of process `pid` in kB (0 when unreadable).
fn rss_of(pid: u32) -> u64 {
    status_kb(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// This process's peak resident set size (`VmHWM`, kB; 0 when unreadable).
pub fn own_peak_rss_kb() -> u64 {
    status_kb("/proc/self/status", "VmHWM:")
}

fn status_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
