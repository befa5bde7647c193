//! The Lambda binaries themselves, through the Lambda runtime API: `cargo lambda watch`
//! serves the functions, `cargo lambda invoke --data-file events/...` calls them, and the
//! effects are checked on the local stack.
//!
//! Needs the local stack and cargo-lambda (the project virtualenv's `.venv/bin`, or on PATH).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use calsync_e2e::fixtures::{self, pair, simple_event};
use calsync_e2e::local_ctx;
use serde_json::{json, Value};

const PORT: &str = "9111";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo_lambda() -> Command {
    let venv = root().join(".venv/bin");
    let path = format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("cargo");
    c.arg("lambda").env("PATH", path).current_dir(root());
    c
}

struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn invoke(function: &str, data: Invoke) -> Value {
    let mut c = cargo_lambda();
    c.args(["invoke", "-P", PORT, function]);
    match data {
        Invoke::File(f) => c.args([
            "--data-file",
            &root().join("events").join(f).display().to_string(),
        ]),
        Invoke::Json(v) => c.args(["--data-ascii", &v.to_string()]),
    };
    let out = c.output().expect("cargo lambda invoke runs");
    assert!(
        out.status.success(),
        "invoke {function} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{function}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

enum Invoke<'a> {
    File(&'a str),
    Json(Value),
}

fn sqs_event(link_id: &str) -> Value {
    json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "h-1",
        "body": json!({"link_id": link_id, "trigger": "manual", "dedup": format!("{link_id}:manual")}).to_string(),
        "attributes": {"MessageGroupId": link_id, "ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "eventSource": "aws:sqs"
    }]})
}

#[tokio::test]
async fn lambda_binaries_answer_through_the_runtime_api() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "lambda", &[]).await.unwrap();
    fixtures::client_put(
        &ctx,
        &p.radicale,
        &simple_event("lambda-a", "Through the runtime API", 8),
    )
    .await
    .unwrap();

    let child = cargo_lambda()
        .args(["watch", "-P", PORT, "--ignore-changes"])
        // The binaries read the AWS endpoint, credentials and the outbound policy from the
        // environment, as in Lambda; the local stack's servers are on 127.0.0.1.
        .envs(calsync_e2e::local_env())
        .env(
            "CALSYNC_BODIES_BUCKET",
            calsync_e2e::local_bodies_bucket("calsync", "us-east-1"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo lambda watch starts (is cargo-lambda installed? make venv)");
    let _watch = Watch(child);
    // Readiness: the runtime API accepts connections (bounded wait).
    let mut ready = false;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(format!("127.0.0.1:{PORT}"))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "cargo lambda watch did not listen on {PORT}");

    // autosync: the sample payloads, then this pair's user.
    let a = invoke("autosync", Invoke::File("autosync-appsync.json"));
    assert_eq!(a["Statuscode"], "SU001", "{a}");
    let bad = invoke("autosync", Invoke::File("autosync-bad-payload.json"));
    assert_eq!(bad["Statuscode"], "ER001", "{bad}");
    let sched = invoke("autosync", Invoke::File("autosync-schedule.json"));
    assert_eq!(sched["Status"], "OK", "{sched}");
    let gw = invoke("autosync", Invoke::File("autosync-apigw.json"));
    assert_eq!(gw["Statuscode"], "SU001", "{gw}");

    // sync-worker pulls Radicale into the hub; sync-back pushes the hub to Xandikos.
    let pulled = invoke("sync-worker", Invoke::Json(sqs_event(&p.r.link_id)));
    assert_eq!(pulled, json!({"batchItemFailures": []}));
    let hub = ctx.store().get_event(&p.group, "lambda-a").await.unwrap();
    assert!(
        hub.is_some_and(|e| !e.deleted),
        "the sync-worker binary wrote the hub event"
    );
    let pushed = invoke("sync-back", Invoke::Json(sqs_event(&p.x.link_id)));
    assert_eq!(pushed, json!({"batchItemFailures": []}));
    let counts = fixtures::uid_counts(&ctx, &p.xandikos).await.unwrap();
    assert_eq!(
        counts.get("lambda-a"),
        Some(&1),
        "the sync-back binary wrote to Xandikos"
    );

    // The sample SQS events name a link that does not exist: dropped, not failed.
    for (f, file) in [
        ("sync-worker", "sync-worker-sqs.json"),
        ("sync-back", "sync-back-sqs.json"),
    ] {
        assert_eq!(
            invoke(f, Invoke::File(file)),
            json!({"batchItemFailures": []})
        );
    }
    // webhook-receiver (lambda_http): the sample notification names a channel that does not
    // exist → 404, nothing queued; token-refresher with no Google links does nothing.
    let hook = invoke(
        "webhook-receiver",
        Invoke::File("webhook-google-forged.json"),
    );
    assert_eq!(hook["statusCode"], 404, "{hook}");
    // Graph: the validation handshake is answered with the decoded token as text/plain; a
    // notification for an unknown subscription is refused (404), nothing queued.
    let shake = invoke(
        "webhook-receiver",
        Invoke::File("webhook-outlook-validation.json"),
    );
    assert_eq!(shake["statusCode"], 200, "{shake}");
    assert_eq!(
        shake["body"],
        "Validation: Testing client application reachability for subscription Request-Id: 25ff3cc1-fe7b-4b16-8f44-45a7e6e8b4f4"
    );
    assert!(
        shake["headers"]["content-type"]
            .as_str()
            .unwrap_or("")
            .starts_with("text/plain"),
        "{shake}"
    );
    let forged = invoke(
        "webhook-receiver",
        Invoke::File("webhook-outlook-forged.json"),
    );
    assert_eq!(forged["statusCode"], 404, "{forged}");
    let refresher = invoke(
        "token-refresher",
        Invoke::File("token-refresher-schedule.json"),
    );
    assert!(refresher["links"].is_u64(), "{refresher}");
    // api: an AppSync resolver event (the identity AppSync verified) and an HTTP request
    // without a token (401 problem, nothing done).
    let groups = invoke("api", Invoke::File("api-appsync-list-groups.json"));
    assert!(groups["groups"].is_array(), "{groups}");
    let auto = invoke("api", Invoke::File("api-appsync-autosync.json"));
    assert_eq!(auto["Statuscode"], "SU001", "{auto}");
    let anon = invoke("api", Invoke::File("api-http-no-token.json"));
    assert_eq!(anon["statusCode"], 401, "{anon}");
    calsync_e2e::runner::drain(&ctx).await.unwrap();
}
