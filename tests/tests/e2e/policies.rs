//! Least privilege, tested: each function's handlers run on the local stack while moto records
//! every AWS request (`/moto-api/recorder`), and `infra/local/policy_check.py` checks each
//! recorded call (action and resource ARN) against the IAM policies that function's role gets
//! from `infra/template.yaml` (SAM policy templates expanded by the AWS SAM translator). A
//! call the template does not allow fails the test, naming the call. moto does not enforce
//! resource-level IAM itself (see docs/architecture.md), hence the recording.

use std::path::{Path, PathBuf};

use aws_lambda_events::event::sqs::SqsEvent;
use calsync::config::{Clients, Ctx};
use calsync::handlers::{self, Direction};
use calsync_e2e::api::ApiServer;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::feed::FeedServer;
use calsync_e2e::fixtures::{self, new_calendar, simple_event, unique, Server, PASSWORD, USER};
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn moto() -> String {
    calsync_e2e::local_var("AWS_ENDPOINT_URL")
}

/// Run `f` with moto's recorder on; the recording's path.
async fn recorded<F: std::future::Future<Output = ()>>(name: &str, f: F) -> PathBuf {
    let http = reqwest::Client::new();
    for step in ["reset-recording", "start-recording"] {
        http.post(format!("{}/moto-api/recorder/{step}", moto()))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    let started = std::time::Instant::now();
    f.await;
    println!("{name}: {:.1} s", started.elapsed().as_secs_f64());
    http.post(format!("{}/moto-api/recorder/stop-recording", moto()))
        .send()
        .await
        .unwrap();
    let text = http
        .get(format!("{}/moto-api/recorder/download-recording", moto()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!(
        "calsync-recording-{name}-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// A context whose AWS clients sign with the access key id `key` (moto accepts any), so the
/// recording tells this function's calls from everything else running in the process.
async fn ctx_as(base: &Ctx, key: &str) -> Ctx {
    let sdk = calsync::config::sdk_config(
        Some(&moto()),
        Some("us-east-1"),
        aws_sdk_sqs::config::Credentials::new(key, "testing", None, None, "policy-test"),
    );
    let mut clients = Clients::with_net_policy(
        &sdk,
        calsync::net::NetPolicy::parse(calsync_e2e::LOCAL_ALLOW_NETS),
    );
    clients.http = base.clients.http.clone();
    Ctx {
        config: base.config.clone(),
        clients,
    }
}

/// Every call signed by `key` in `recording` is allowed to `function` (its logical id in the
/// template).
fn assert_allowed(function: &str, recording: &Path, key: &str) {
    let out = std::process::Command::new(root().join(".venv/bin/python"))
        .arg(root().join("infra/local/policy_check.py"))
        .arg(root().join("infra/template.yaml"))
        .arg(function)
        .arg(recording)
        .arg(key)
        .output()
        .expect("python in .venv (make venv)");
    let report = String::from_utf8_lossy(&out.stdout);
    println!(
        "{function}:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{function} makes calls its role does not allow:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sqs(link_id: &str) -> SqsEvent {
    serde_json::from_value(json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "h-1",
        "body": json!({"link_id": link_id, "trigger": "manual", "dedup": format!("{link_id}:{}", uuid::Uuid::now_v7())}).to_string(),
        "attributes": {"MessageGroupId": link_id, "ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "eventSource": "aws:sqs"
    }]}))
    .unwrap()
}

#[tokio::test]
async fn every_function_stays_within_its_template_policy() {
    let base = local_ctx().await;
    // The webhook routes (consent callback, push notifications) run as the webhook receiver.
    let google = LocalGoogle::start(&ctx_as(&base, "webhook-receiver").await, Config::default())
        .await
        .unwrap();
    let ctx = google.ctx.clone();
    let webhook_url = ctx.config.webhook_base.clone();
    let as_fn = |key: &'static str| {
        let (b, url) = (base.clone(), webhook_url.clone());
        async move {
            let mut c = ctx_as(&b, key).await;
            c.config.webhook_base = url;
            c
        }
    };
    let srv = ApiServer::start_local(as_fn("api").await).await.unwrap();
    let user = 6_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64;
    let api = srv.as_user(user);
    let name = unique("iam");
    let radicale = new_calendar(&ctx, Server::Radicale, &name).await.unwrap();
    let feed = FeedServer::start(
        &format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}",
            simple_event("iam-feed", "Feed", 2)
                .split("VERSION:2.0\r\n")
                .nth(1)
                .unwrap()
        ),
        true,
    )
    .await
    .unwrap();

    // api: groups, links, hub events, feed, conflicts, runs, settings, consent, disconnect.
    let mut ids = (String::new(), String::new(), String::new());
    let rec = recorded("api", async {
        let group = api.create_group("iam").await.unwrap();
        let l = api.post(&format!("/v1/groups/{group}/links"), &json!({"provider": "caldav", "url": radicale, "username": USER, "password": PASSWORD})).await.unwrap();
        assert_eq!(l.status, 201, "{}", l.body);
        let f = api.post(&format!("/v1/groups/{group}/links"), &json!({"provider": "ics", "url": feed.url})).await.unwrap();
        assert_eq!(f.status, 201, "{}", f.body);
        let e = api.put_ical(&format!("/v1/groups/{group}/events/iam-1"), &simple_event("iam-1", "IAM", 3), &[("idempotency-key", "k1")]).await.unwrap();
        assert_eq!(e.status, 201, "{}", e.body);
        // An event too big for a DynamoDB item: its body goes to the bodies bucket.
        let big = simple_event("iam-big", "Big", 5).replace(
            "LOCATION:Room 1\r\n",
            &format!("LOCATION:Room 1\r\nDESCRIPTION:{}\r\n", "x".repeat(150 * 1024)),
        );
        let e = api.put_ical(&format!("/v1/groups/{group}/events/iam-big"), &big, &[]).await.unwrap();
        assert_eq!(e.status, 201, "{}", e.body);
        let link = l.body["link_id"].as_str().unwrap().to_string();
        for path in [
            format!("/v1/groups/{group}/events/iam-1"), format!("/v1/groups/{group}/events/iam-big"),
            format!("/v1/groups/{group}/events"),
            format!("/v1/groups/{group}/changes"), format!("/v1/groups/{group}/conflicts"),
            format!("/v1/links/{link}/runs"), format!("/v1/groups/{group}"), "/v1/groups".into(),
        ] {
            assert_eq!(api.get(&path).await.unwrap().status, 200, "{path}");
        }
        assert_eq!(api.patch(&format!("/v1/links/{link}"), &json!({"frequency": "daily"})).await.unwrap().status, 200);
        assert_eq!(api.post(&format!("/v1/links/{link}/sync"), &json!({})).await.unwrap().status, 202);
        let b = api.post(&format!("/v1/groups/{group}/events:batch"), &json!({"items": [{"op": "upsert", "event_id": "iam-2", "ical": simple_event("iam-2", "Two", 4)}]})).await.unwrap();
        assert_eq!(b.status, 207);
        let c = api.post(&format!("/v1/groups/{group}/links/oauth/google"), &json!({"calendar_id": "iam@example.com"})).await.unwrap();
        assert_eq!(c.status, 200, "{}", c.body);
        assert_eq!(api.post("/v1/autosync", &json!({"arguments": {}})).await.unwrap().status, 200);
        ids = (group, link, f.body["link_id"].as_str().unwrap().to_string());
    })
    .await;
    assert_allowed("ApiFunction", &rec, "api");
    let (group, caldav_link, feed_link) = ids;

    // webhook-receiver: the consent begin and callback.
    let mut glink = None;
    let rec = recorded("webhook", async {
        glink = Some(
            google
                .connect(&group, user, "iam@example.com", "google")
                .await
                .unwrap(),
        );
    })
    .await;
    assert_allowed("WebhookReceiverFunction", &rec, "webhook-receiver");
    let glink = glink.unwrap();

    // api: another calendar of a CalDAV and of a Google account, from their links (the
    // link's secret read, a secret of the new link's own created).
    let second = new_calendar(&ctx, Server::Radicale, &unique("iam-two"))
        .await
        .unwrap();
    google
        .emu
        .add_calendar("iam-team@example.com", "Team", "Europe/Berlin");
    let rec = recorded("api-accounts", async {
        for (from, provider, calendar) in [
            (&caldav_link, "caldav", second.as_str()),
            (&glink.link_id, "google", "iam-team@example.com"),
        ] {
            let a = api
                .get(&format!("/v1/links/{from}/calendars"))
                .await
                .unwrap();
            assert_eq!(a.status, 200, "{}", a.body);
            let made = api
                .post(
                    &format!("/v1/groups/{group}/links"),
                    &json!({"provider": provider, "from_link": from, "calendar": calendar}),
                )
                .await
                .unwrap();
            assert_eq!(made.status, 201, "{}", made.body);
        }
    })
    .await;
    assert_allowed("ApiFunction", &rec, "api");

    // autosync: the schedule and the AutoSync call.
    let autosync = as_fn("autosync").await;
    let rec = recorded("autosync", async {
        runner::schedule_tick(&autosync).await;
        handlers::autosync(
            &autosync,
            json!({"field": "AutoSync", "arguments": {"userId": user}}),
        )
        .await;
    })
    .await;
    assert_allowed("AutoSyncFunction", &rec, "autosync");
    runner::drain(&ctx).await.unwrap();

    // sync-worker: pulls of CalDAV (with a change), the feed and Google.
    fixtures::client_put(&ctx, &radicale, &simple_event("iam-3", "From Radicale", 5))
        .await
        .unwrap();
    let worker = as_fn("sync-worker").await;
    let rec = recorded("sync-worker", async {
        for l in [&caldav_link, &feed_link, &glink.link_id] {
            let r = handlers::handle_sqs(&worker, sqs(l), Direction::Pull).await;
            assert!(r.batch_item_failures.is_empty(), "pull {l}");
        }
    })
    .await;
    assert_allowed("SyncWorkerFunction", &rec, "sync-worker");

    // sync-back: pushes of the hub's changes to CalDAV and Google.
    let put = api
        .put_ical(
            &format!("/v1/groups/{group}/events/iam-4"),
            &simple_event("iam-4", "Pushed", 6),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(put.status, 201);
    let back = as_fn("sync-back").await;
    let rec = recorded("sync-back", async {
        for l in [&caldav_link, &glink.link_id] {
            let r = handlers::handle_sqs(&back, sqs(l), Direction::Push).await;
            assert!(r.batch_item_failures.is_empty(), "push {l}");
        }
    })
    .await;
    assert_allowed("SyncBackFunction", &rec, "sync-back");

    // token-refresher: tokens and channels.
    let refresher = as_fn("token-refresher").await;
    let rec = recorded("token-refresher", async {
        calsync::refresher::run(&refresher).await.unwrap();
    })
    .await;
    assert_allowed("TokenRefresherFunction", &rec, "token-refresher");

    // api, then sync-back: disconnecting with the copies removed (the link marked under its
    // lease, the channel stopped, the job queued; then the copies deleted, the grant revoked,
    // the secret, mappings, cursor and link deleted).
    let rec = recorded("api-remove", async {
        let asked = api
            .delete(&format!("/v1/links/{}?remove_copies=true", glink.link_id))
            .await
            .unwrap();
        assert_eq!(asked.status, 202, "{}", asked.body);
    })
    .await;
    assert_allowed("ApiFunction", &rec, "api");
    let rec = recorded("sync-back-remove", async {
        let r = handlers::handle_sqs(&back, sqs(&glink.link_id), Direction::Push).await;
        assert!(r.batch_item_failures.is_empty(), "removal");
    })
    .await;
    assert_allowed("SyncBackFunction", &rec, "sync-back");
    assert!(ctx
        .store()
        .get_link(&glink.link_id)
        .await
        .unwrap()
        .is_none());

    // api again: disconnecting (channel stop, grant revocation, secret deletion).
    let rec = recorded("api-delete", async {
        assert_eq!(
            api.delete(&format!("/v1/groups/{group}"))
                .await
                .unwrap()
                .status,
            204
        );
    })
    .await;
    assert_allowed("ApiFunction", &rec, "api");
    runner::drain(&ctx).await.unwrap();
}
