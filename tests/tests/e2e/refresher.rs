//! The token refresher reads what is due and no more: a link's secret only when the token
//! expiry recorded on the link is near, only the links whose next look has come (the
//! links table's `upkeep-index`, never a Scan), and it puts the links of a stack from
//! before that index into it once. Needs the local stack.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use calsync::metrics::AwsCallCounter;
use calsync::model::{ChannelRecord, Link, LinkStatus, ProviderKind};
use calsync::refresher::{self, backfill};
use calsync_e2e::emulators::google::Config;
use calsync_e2e::fixtures::pair;
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::local_ctx;

use super::google_accounts::refresh_grants;

/// The token refresher reads a link's secret only when the token expiry recorded on the
/// link is near (or unknown). The consent records it; a run then passes the link over
/// without reading the secret (made unreadable here, which a read would report); once the
/// recorded expiry is near, a run refreshes the token and records the new expiry.
#[tokio::test]
async fn the_refresher_reads_a_secret_only_when_its_recorded_expiry_is_near() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let logs = calsync_e2e::logs::capture();
    let p = pair(&lg.ctx, "grecexp", &[]).await.expect("pair");
    let g = lg
        .connect(&p.group, p.user, "recexp@example.com", "google")
        .await
        .expect("connect");
    let arn = g.secret_arn.clone().expect("arn");
    let mut stored = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .expect("tokens");
    assert_eq!(
        g.token_expires_at,
        Some(stored.expires_at),
        "recorded at consent"
    );
    let complaints = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(&g.link_id))
            .filter(|l| l.contains("token refresh failed") || l.contains("reconnect needed"))
            .map(str::to_string)
            .collect()
    };

    lg.ctx
        .clients
        .secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("not the tokens")
        .send()
        .await
        .expect("put");
    logs.take();
    let now_before = chrono::Utc::now().timestamp();
    calsync::refresher::run(&lg.ctx).await.expect("refresher");
    assert!(
        complaints(logs.take()).is_empty(),
        "the secret was not read"
    );
    let link = |id: String| {
        let ctx = lg.ctx.clone();
        async move { ctx.store().get_link(&id).await.expect("get").expect("link") }
    };
    let looked = link(g.link_id.clone()).await;
    assert_eq!(looked.status, LinkStatus::Ok);
    let recorded = stored.expires_at;
    assert!(
        looked
            .upkeep_at
            .is_some_and(|at| at > now_before && at <= recorded - calsync::refresher::MARGIN_SECS),
        "the next look is recorded, by the token's refresh time at the latest: {:?}",
        looked.upkeep_at
    );

    // The tokens back, their access token expired; the recorded expiry now near, and with
    // it the link's next look.
    stored.expires_at = 0;
    calsync::oauth::write_tokens(&lg.ctx, &arn, &stored)
        .await
        .expect("write");
    let now = chrono::Utc::now().timestamp();
    lg.ctx
        .store()
        .update_link_fields(
            &g.link_id,
            vec![
                ("token_expires_at", lg.ctx.store().attr(now).unwrap()),
                ("upkeep_at", lg.ctx.store().attr(now).unwrap()),
            ],
        )
        .await
        .expect("update");
    let refreshes = || refresh_grants(&lg);
    let before = refreshes().await;
    calsync::refresher::run(&lg.ctx).await.expect("refresher");
    assert_eq!(refreshes().await, before + 1, "refreshed once");
    let fresh = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .expect("tokens");
    assert!(fresh.expires_at > now + 3_000, "{}", fresh.expires_at);
    assert_eq!(
        link(g.link_id.clone()).await.token_expires_at,
        Some(fresh.expires_at),
        "the new expiry is recorded"
    );
    assert!(
        complaints(logs.text()).is_empty(),
        "{:?}",
        complaints(logs.text())
    );
}

/// A Google link (OAuth and push) of its own group, with no secret, so that a look has no
/// token to read; on a context without a webhook URL none has a channel to start either, so
/// a look finds nothing to look after and takes the link out of the index.
fn upkeep_link(id: &str, upkeep_at: Option<i64>) -> Link {
    let mut l = Link::new(
        id,
        &format!("{id}-g"),
        9_000_001,
        ProviderKind::Google,
        "primary",
    );
    l.upkeep_at = upkeep_at;
    l
}

/// The link `id` as the table holds it.
async fn stored(ctx: &calsync::config::Ctx, id: &str) -> Link {
    ctx.store().get_link(id).await.expect("get").expect("link")
}

/// Write or delete links straight into the table, 25 to a BatchWriteItem.
async fn batch_links(ctx: &calsync::config::Ctx, requests: Vec<WriteRequest>) {
    for chunk in requests.chunks(25) {
        let mut left = chunk.to_vec();
        while !left.is_empty() {
            let out = ctx
                .clients
                .ddb
                .batch_write_item()
                .request_items(&ctx.config.links_table, left)
                .send()
                .await
                .expect("BatchWriteItem");
            left = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&ctx.config.links_table))
                .unwrap_or_default();
        }
    }
}

fn put(l: &Link) -> WriteRequest {
    let item = serde_dynamo::to_item(l).expect("item");
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("put"),
        )
        .build()
}

fn delete(l: &Link) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            aws_sdk_dynamodb::types::DeleteRequest::builder()
                .key("link_id", AttributeValue::S(l.link_id.clone()))
                .build()
                .expect("delete"),
        )
        .build()
}

/// A run reads the links whose next look has come, and no other: 300 links whose next look
/// is a day away and 3 due now. It Queries the `upkeep-index` and reads the due links by
/// key; it Scans nothing, and what it reads does not grow with the 300. The due links,
/// with nothing to look after, leave the index; the others keep their time.
#[tokio::test]
async fn a_refresher_run_reads_the_links_that_are_due_only() {
    let ctx = local_ctx().await;
    let store = ctx.store();
    // The stack's backfill has run (once), and what other tests left due is looked after.
    refresher::run(&ctx).await.expect("settle");
    assert!(store.backfill_done(backfill::NAME).await.expect("marker"));
    let now = calsync::config::now_secs();
    let later = now + 86_400;
    let far: Vec<Link> = (0..300)
        .map(|i| upkeep_link(&format!("upk-far-{now}-{i}"), Some(later)))
        .collect();
    let due: Vec<Link> = (0..3)
        .map(|i| upkeep_link(&format!("upk-due-{now}-{i}"), Some(now - 60)))
        .collect();
    batch_links(&ctx, far.iter().chain(&due).map(put).collect()).await;

    let calls = AwsCallCounter::default();
    let report = calls.scope(refresher::run(&ctx)).await.expect("run");
    let read = calls.snapshot();
    assert!(report.links >= 3, "{report:?}");
    assert_eq!(read.by_operation.get("DynamoDB:Scan"), None, "{read:?}");
    assert!(
        read.by_operation
            .get("DynamoDB:Query")
            .copied()
            .unwrap_or(0)
            >= u64::from(Link::DUE_SHARDS),
        "one Query per shard: {read:?}"
    );
    assert!(
        read.ddb_items_read < 100,
        "the links not due are not read: {read:?}"
    );
    for l in &due {
        let l = stored(&ctx, &l.link_id).await;
        assert_eq!(l.upkeep_at, None, "nothing to look after: out of the index");
    }
    for l in far.iter().step_by(50) {
        let l = stored(&ctx, &l.link_id).await;
        assert_eq!(l.upkeep_at, Some(later), "not looked at");
    }
    batch_links(&ctx, far.iter().chain(&due).map(delete).collect()).await;
}

/// A stack from before the `upkeep-index`: an OAuth link with neither `due_shard` nor
/// `upkeep_at`, a CalDAV link, and a channel whose link is gone. The backfill puts the OAuth
/// link into both indexes (the CalDAV link into the schedule's only: the refresher has
/// nothing to look after on it), stops the orphan channel and records that it is done; the
/// next run reads no link it does not have to.
#[tokio::test]
async fn a_stack_from_before_the_upkeep_index_is_backfilled_once() {
    let ctx = local_ctx().await;
    let store = ctx.store();
    let now = calsync::config::now_secs();
    let mut old = upkeep_link(&format!("upk-old-{now}"), None);
    old.due_shard = None;
    let mut dav = Link::new(
        &format!("upk-dav-{now}"),
        &format!("upk-dav-{now}-g"),
        9_000_002,
        ProviderKind::Caldav,
        "https://dav.invalid/c/",
    );
    dav.due_shard = None;
    batch_links(&ctx, vec![put(&old), put(&dav)]).await;
    let orphan = ChannelRecord {
        channel_id: format!("upk-orphan-{now}"),
        link_id: format!("upk-gone-{now}"),
        provider: ProviderKind::Google,
        secret_arn:
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:calsync/google-tokens/gone".into(),
        account: None,
        url: "primary".into(),
        resource_id: "r".into(),
        token_sha256: "00".into(),
        expiration_ms: calsync::config::now_millis() + 86_400_000,
    };
    store.put_channel(&orphan).await.expect("channel");
    store
        .set_backfill_done(backfill::NAME, false)
        .await
        .expect("marker");

    let calls = AwsCallCounter::default();
    let report = calls
        .scope(backfill::run(&ctx, now))
        .await
        .expect("backfill");
    assert!(
        calls
            .snapshot()
            .by_operation
            .get("DynamoDB:Scan")
            .is_some_and(|n| *n >= 2),
        "the links and the channels are read whole, once"
    );
    assert!(report.due_shards_set >= 2, "{report:?}");
    assert!(report.upkeep_set >= 1, "{report:?}");
    assert!(report.channels_stopped >= 1, "{report:?}");
    let old_now = stored(&ctx, &old.link_id).await;
    assert_eq!(old_now.upkeep_at, Some(now), "due at once");
    assert_eq!(old_now.due_shard, Some(Link::due_shard_of(&old.link_id)));
    let dav_now = stored(&ctx, &dav.link_id).await;
    assert_eq!(dav_now.upkeep_at, None, "nothing for the refresher");
    assert_eq!(dav_now.due_shard, Some(Link::due_shard_of(&dav.link_id)));
    assert_eq!(
        store.get_channel(&orphan.channel_id).await.expect("get"),
        None
    );
    assert!(store.backfill_done(backfill::NAME).await.expect("marker"));

    let calls = AwsCallCounter::default();
    let report = calls.scope(refresher::run(&ctx)).await.expect("run");
    assert_eq!(report.due_shards_set + report.upkeep_set, 0, "{report:?}");
    assert_eq!(
        calls.snapshot().by_operation.get("DynamoDB:Scan"),
        None,
        "done once"
    );
    let old_now = stored(&ctx, &old.link_id).await;
    assert_eq!(old_now.upkeep_at, None, "looked at: nothing to look after");
    batch_links(&ctx, vec![delete(&old), delete(&dav)]).await;
}

/// A run that reaches its deadline reads no more links (the first 100 always), and the
/// links it left are still due: the next run looks after them.
#[tokio::test]
async fn a_run_past_its_deadline_leaves_the_rest_due_for_the_next() {
    let ctx = local_ctx().await;
    let store = ctx.store();
    refresher::run(&ctx).await.expect("settle");
    let now = calsync::config::now_secs();
    let due: Vec<Link> = (0..150)
        .map(|i| upkeep_link(&format!("upk-late-{now}-{i}"), Some(now - 60)))
        .collect();
    batch_links(&ctx, due.iter().map(put).collect()).await;
    let still_due = || async {
        let ids: Vec<String> = due.iter().map(|l| l.link_id.clone()).collect();
        store
            .links_by_ids(&ids)
            .await
            .expect("links")
            .iter()
            .filter(|l| l.upkeep_at.is_some())
            .count()
    };

    let report = refresher::run_until(&ctx, Some(std::time::Instant::now()))
        .await
        .expect("run");
    assert!(report.links <= 100, "one read of 100: {report:?}");
    assert!(report.left_due >= 50, "{report:?}");
    assert!(still_due().await >= 50, "left due");

    let report = refresher::run(&ctx).await.expect("run");
    assert_eq!(report.left_due, 0, "{report:?}");
    assert_eq!(still_due().await, 0, "the next run looked after the rest");
    batch_links(&ctx, due.iter().map(delete).collect()).await;
}
