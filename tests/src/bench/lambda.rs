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

/// Starts timed per function: one start on a shared 2-core machine moves by more than the
/// 30 ms target, the median of several does not.
pub const STARTS: usize = 9;

/// One function's numbers.
#[derive(Debug)]
pub struct Cold {
    /// Binary name.
    pub name: &'static str,
    /// Size of the release binary, bytes.
    pub size: u64,
    /// Size of the binary deflated at the default level (bytes): what the zip that SAM and
    /// cargo-lambda upload holds for it as `bootstrap`, less the zip's headers (about 100
    /// bytes). Lambda's own limits are on that zip (50 MB zipped, 250 MB unzipped:
    /// https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
    pub deflated: u64,
    /// Process start to its first `invocation/next` request over [`STARTS`] starts,
    /// sorted: the median is `init[STARTS / 2]`.
    pub init: Vec<Duration>,
    /// Resident set size once init is done (kB, `VmRSS`), at the last start.
    pub rss_kb: u64,
}

impl Cold {
    /// The median init time.
    pub fn median(&self) -> Duration {
        self.init
            .get(self.init.len() / 2)
            .copied()
            .unwrap_or_default()
    }
}

/// Start each function binary in `dir` [`STARTS`] times against a listener that plays the
/// runtime API and time it to its first request for an invocation; the process is killed
/// then.
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
        let deflated = deflated_size(&bin)?;
        let mut init = Vec::with_capacity(STARTS);
        let mut rss_kb = 0;
        for _ in 0..STARTS {
            let (took, rss) = start_once(&bin, name).await?;
            init.push(took);
            rss_kb = rss;
        }
        init.sort();
        out.push(Cold {
            name,
            size,
            deflated,
            init,
            rss_kb,
        });
    }
    Ok(out)
}

/// The size of file `path` deflated at the default level (6, as `zip` and Python's
/// `zipfile` write by default), in bytes.
///
/// Errors: the file cannot be read.
fn deflated_size(path: &Path) -> anyhow::Result<u64> {
    let mut enc =
        flate2::write::DeflateEncoder::new(std::io::sink(), flate2::Compression::default());
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut enc)?;
    enc.try_finish()?;
    Ok(enc.total_out())
}

/// One cold start of `bin`: the time to its first `invocation/next` and its `VmRSS` (kB)
/// then.
async fn start_once(bin: &Path, name: &str) -> anyhow::Result<(Duration, u64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let start = Instant::now();
    let mut child = as_lambda(bin, &api, name).spawn()?;
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
    Ok((init, rss_kb))
}

/// Function binary `bin` as Lambda starts it: the runtime API at `api` (host:port), the
/// function's environment, its output discarded, killed when dropped.
fn as_lambda(bin: &Path, api: &str, name: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.envs(crate::local_env())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
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

/// What one invocation of a function binary cost ([`invoke`]).
#[derive(Debug)]
pub struct Invoked {
    /// The function's response body (`invocation/{id}/response` or `/error`).
    pub response: String,
    /// From the event handed out to the response.
    pub wall: Duration,
    /// Peak resident set size of the process (`VmHWM`, kB) once it answered.
    pub peak_rss_kb: u64,
    /// The process's user + system CPU until it answered (init included).
    pub cpu: Duration,
}

/// Start function binary `bin` against a stand-in runtime API that hands it `event` as one
/// invocation (deadline `timeout` ahead), wait for its response, and read the process's
/// peak RSS and CPU before killing it: a function as Lambda runs it, on a real job. The
/// process inherits this one's environment (the local stack's endpoints); its log goes to
/// `bench-logs/{name}.log` beside the binary.
///
/// Errors: the binary does not start, or does not answer within `timeout`.
pub async fn invoke(
    bin: &Path,
    event: &serde_json::Value,
    timeout: Duration,
) -> anyhow::Result<Invoked> {
    use axum::extract::State;
    use axum::routing::{get, post};
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct Api {
        event: Arc<Mutex<Option<String>>>,
        deadline_ms: i64,
        handed_out: Arc<Mutex<Option<Instant>>>,
        answered: tokio::sync::mpsc::Sender<(String, Instant)>,
    }
    async fn next(State(api): State<Api>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let body = api.event.lock().ok().and_then(|mut e| e.take());
        match body {
            Some(body) => {
                if let Ok(mut h) = api.handed_out.lock() {
                    *h = Some(Instant::now());
                }
                (
                    [
                        ("lambda-runtime-aws-request-id", "bench-1".to_string()),
                        ("lambda-runtime-deadline-ms", api.deadline_ms.to_string()),
                        (
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:000000000000:function:bench".to_string(),
                        ),
                        ("content-type", "application/json".to_string()),
                    ],
                    body,
                )
                    .into_response()
            }
            // The one invocation is handed out: the next one never comes.
            None => std::future::pending().await,
        }
    }
    async fn answer(State(api): State<Api>, body: String) -> axum::http::StatusCode {
        let _ = api.answered.send((body, Instant::now())).await;
        axum::http::StatusCode::ACCEPTED
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let api = Api {
        event: Arc::new(Mutex::new(Some(event.to_string()))),
        deadline_ms: calsync::config::now_millis()
            + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
        handed_out: Arc::new(Mutex::new(None)),
        answered: tx,
    };
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(answer))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(answer))
        .route("/2018-06-01/runtime/init/error", post(answer))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The function's log (JSON lines on stdout, as in Lambda) goes to target/bench-logs/.
    let log_dir = bin
        .parent()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf)
        .join("bench-logs");
    std::fs::create_dir_all(&log_dir)?;
    let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
    let mut child = as_lambda(bin, &addr, &name)
        .stdout(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("{}: {e}", bin.display()))?;
    let answered = tokio::time::timeout(timeout, rx.recv()).await;
    let pid = child.id();
    let peak_rss_kb = pid.map(peak_rss_of).unwrap_or(0);
    let cpu = pid
        .and_then(|p| super::peers::cpu_time_at(&format!("/proc/{p}/stat"), false).ok())
        .unwrap_or_default();
    child.kill().await?;
    server.abort();
    let (response, at) = answered
        .map_err(|_| anyhow::anyhow!("{name} did not answer within {timeout:?}"))?
        .ok_or_else(|| anyhow::anyhow!("{name}: the runtime API stopped"))?;
    let start = api.handed_out.lock().ok().and_then(|h| *h).unwrap_or(at);
    Ok(Invoked {
        response,
        wall: at.saturating_duration_since(start),
        peak_rss_kb,
        cpu,
    })
}

/// `VmHWM` of process `pid` in kB (0 when unreadable).
fn peak_rss_of(pid: u32) -> u64 {
    status_kb(&format!("/proc/{pid}/status"), "VmHWM:")
}
