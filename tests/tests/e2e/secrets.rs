//! Invariant 10: the CalDAV password lives in Secrets Manager only — it never appears in the
//! logs (captured at debug level, AWS SDK and HTTP client included) or in any DynamoDB item.

use calsync_e2e::fixtures::{self, pair, simple_event, PASSWORD};
use calsync_e2e::local_ctx;

#[tokio::test]
async fn the_caldav_password_reaches_neither_logs_nor_dynamodb() {
    let capture = calsync_e2e::logs::capture();
    let ctx = local_ctx().await;
    let p = pair(&ctx, "secret", &[simple_event("secret-1", "S", 9)])
        .await
        .unwrap();
    // A failing run too: its error text goes to the run record and the link status.
    let mut broken = p.r.clone();
    broken.url = broken.url.replace("/alice/", "/alice-does-not-exist/");
    ctx.store().put_link(&broken).await.unwrap();
    fixtures::sync_link(&ctx, &broken.link_id).await.unwrap();

    let logs = capture.text();
    assert!(logs.contains("run finished"), "logs were captured");
    assert!(!logs.contains(PASSWORD), "password in the logs");

    let ddb = &ctx.clients.ddb;
    let cfg = &ctx.config;
    let mut scanned = 0;
    for table in [
        &cfg.links_table,
        &cfg.events_table,
        &cfg.mappings_table,
        &cfg.cursors_table,
        &cfg.leases_table,
        &cfg.runs_table,
    ] {
        let items = ddb
            .scan()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        for item in items {
            scanned += 1;
            let text = format!("{item:?}");
            assert!(!text.contains(PASSWORD), "password in {table}: {text}");
        }
    }
    assert!(scanned > 5, "items were scanned");
    let link = ctx
        .store()
        .get_link(&broken.link_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        link.secret_arn.unwrap().contains("secretsmanager"),
        "the link holds an ARN"
    );
}
