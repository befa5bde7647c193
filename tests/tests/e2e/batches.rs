//! One SQS batch of jobs for several links (`calsync::handlers::batch`): the links are
//! worked on side by side, each link's messages in their order, and each run records its
//! own AWS calls. Needs the local stack.

use calsync::handlers::Direction;
use calsync::model::RunRecord;
use calsync_e2e::fixtures::{self, pair, simple_event};
use calsync_e2e::local_ctx;
use serde_json::json;

#[tokio::test]
async fn a_batchs_links_run_side_by_side_and_each_run_counts_its_own_aws_calls() {
    let ctx = local_ctx().await;
    let seed: Vec<String> = (0..20)
        .map(|i| simple_event(&format!("side-{i}"), &format!("Side {i}"), i % 27 + 1))
        .collect();
    let p = pair(&ctx, "side", &seed).await.unwrap();
    // The first pull after calsync's own writes lists them as echoes; then a no-change pull
    // of each link alone, and what it cost.
    for l in [&p.r, &p.x] {
        fixtures::job_ok(&ctx, &l.link_id, "manual", Direction::Pull).await;
    }
    let mut alone = Vec::new();
    for l in [&p.r, &p.x] {
        let run = fixtures::job_ok(&ctx, &l.link_id, "manual", Direction::Pull).await;
        alone.push((run.aws_calls, run.ddb_items_read));
    }
    let runs_before = |id: &str| {
        let ctx = ctx.clone();
        let id = id.to_string();
        async move { ctx.store().runs_of_link(&id).await.unwrap().len() }
    };
    let before = [
        runs_before(&p.r.link_id).await,
        runs_before(&p.x.link_id).await,
    ];

    // Another job holds the Radicale link for about a second more: worked on side by side,
    // the Xandikos link's two jobs are done before the Radicale link's first one starts;
    // one link after the other, they would start after it.
    fixtures::hold_lease(&ctx, &p.r.link_id, 1).await;
    // One batch: Radicale, Xandikos, Radicale, Xandikos.
    let links = [&p.r, &p.x, &p.r, &p.x];
    let records: Vec<serde_json::Value> = links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let job = calsync::queue::SyncJob::unique(&l.link_id, "manual");
            json!({"messageId": format!("m{i}"), "body": serde_json::to_string(&job).unwrap(),
                   "attributes": {"MessageGroupId": l.link_id}})
        })
        .collect();
    let event = serde_json::from_value(json!({ "Records": records })).unwrap();
    let resp = calsync::handlers::handle_sqs(&ctx, event, Direction::Pull).await;
    assert!(
        resp.batch_item_failures.is_empty(),
        "{:?}",
        resp.batch_item_failures
    );

    let mut ran: Vec<Vec<RunRecord>> = Vec::new();
    for (l, n) in [&p.r, &p.x].into_iter().zip(before) {
        let mut runs = ctx.store().runs_of_link(&l.link_id).await.unwrap();
        runs.sort_by_key(|r| r.started_ms);
        let new = runs.split_off(n);
        assert_eq!(new.len(), 2, "both of the link's messages ran: {new:?}");
        ran.push(new);
    }
    let (r, x) = (&ran[0], &ran[1]);
    // The Radicale link's first job also counts its own tries for the lease: more calls,
    // the same items read.
    for (run, cost) in [(&r[1], alone[0]), (&x[0], alone[1]), (&x[1], alone[1])] {
        assert_eq!(run.outcome, "ok", "{run:?}");
        assert_eq!(
            (run.aws_calls, run.ddb_items_read),
            cost,
            "a run counts its own AWS calls, not its neighbour's: {run:?}"
        );
    }
    assert_eq!(r[0].outcome, "ok", "{:?}", r[0]);
    assert!(r[0].aws_calls > alone[0].0, "{:?}", r[0]);
    assert_eq!(r[0].ddb_items_read, alone[0].1, "{:?}", r[0]);
    for runs in [r, x] {
        assert!(
            runs[0].ended_ms <= runs[1].started_ms,
            "a link's messages run in order: {runs:?}"
        );
    }
    assert!(
        x[1].ended_ms <= r[0].started_ms,
        "the two links were worked on side by side: {x:?} {:?}",
        r[0]
    );
}

#[tokio::test]
async fn a_job_waits_for_the_lease_another_job_lets_go_of() {
    let ctx = local_ctx().await;
    let p = pair(&ctx, "wait", &[simple_event("wait-1", "Waited for", 3)])
        .await
        .unwrap();
    // Another job (the link's push, say) holds the link for about a second more.
    fixtures::hold_lease(&ctx, &p.r.link_id, 1).await;
    // The pull waits for it instead of bouncing its message back to the queue for the
    // queue's visibility timeout (minutes).
    let run = fixtures::job_ok(&ctx, &p.r.link_id, "manual", Direction::Pull).await;
    assert_eq!(run.kind, "pull");
}
