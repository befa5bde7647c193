//! Events too big for a DynamoDB item (400 KB) sync through the stack's bodies bucket in S3
//! (issue 13, item 5): created, edited and deleted across a Radicale and a Xandikos
//! calendar, the hub and mapping items carrying only the object's key. Needs the local stack
//! (`make test` starts it).

use aws_sdk_dynamodb::types::AttributeValue;
use calsync_e2e::fixtures::{self, pair, simple_event, sync_user, unique};
use calsync_e2e::local_ctx;

/// A one-off event whose DESCRIPTION is about `kib` KiB of non-ASCII text.
fn big_event(uid: &str, summary: &str, kib: usize) -> String {
    // Commas escaped (RFC 5545 §3.3.11): Radicale cuts a TEXT value at a bare one.
    let line = "Protokoll der Sitzung: Änderungen am Zeitplan\\, Grüße aus Köln — ";
    let mut text = String::new();
    while text.len() < kib * 1024 {
        text.push_str(line);
        text.push_str(&text.len().to_string());
        text.push_str("\\n");
    }
    simple_event(uid, summary, 5).replace(
        "LOCATION:Room 1\r\n",
        &format!("LOCATION:Room 1\r\nDESCRIPTION:{text}\r\n"),
    )
}

async fn raw_item(
    ctx: &calsync::config::Ctx,
    table: &str,
    pk: (&str, &str),
    uid: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    ctx.clients
        .ddb
        .get_item()
        .table_name(table)
        .key(pk.0, AttributeValue::S(pk.1.into()))
        .key("uid", AttributeValue::S(uid.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

async fn object_exists(ctx: &calsync::config::Ctx, key: &str) -> bool {
    ctx.clients
        .s3
        .head_object()
        .bucket(ctx.config.bodies_bucket.as_deref().unwrap())
        .key(key)
        .send()
        .await
        .is_ok()
}

fn s3_key(item: &std::collections::HashMap<String, AttributeValue>, attr: &str) -> String {
    match item.get(&format!("{attr}_s3")) {
        Some(AttributeValue::S(k)) => k.clone(),
        other => panic!(
            "{attr} is not kept in S3: {other:?} (item has {:?})",
            item.keys()
        ),
    }
}

#[tokio::test]
async fn a_500_kb_event_syncs_through_s3() {
    let ctx = local_ctx().await;
    let uid = unique("big");
    let p = pair(
        &ctx,
        "big-events",
        &[
            big_event(&uid, "Big", 500),
            simple_event(&unique("small"), "Small", 6),
        ],
    )
    .await
    .unwrap();

    // Created: on the other member, whole, and the items point at S3.
    let on_x = fixtures::events_in(&ctx, &p.xandikos).await.unwrap();
    assert_eq!(on_x.len(), 2, "both events reach Xandikos");
    let big = on_x.iter().find(|(_, s)| s.uid == uid).unwrap();
    let written = big.1.to_ical();
    assert!(written.len() > 500 * 1024, "{} bytes", written.len());
    assert!(written.contains("Grüße aus Köln"));
    let hub = raw_item(&ctx, &ctx.config.events_table, ("group_id", &p.group), &uid)
        .await
        .unwrap();
    assert!(!hub.contains_key("ical"), "the hub item holds no body");
    let hub_key = s3_key(&hub, "ical");
    assert!(object_exists(&ctx, &hub_key).await);
    let mapping = raw_item(
        &ctx,
        &ctx.config.mappings_table,
        ("link_id", &p.x.link_id),
        &uid,
    )
    .await
    .unwrap();
    assert!(object_exists(&ctx, &s3_key(&mapping, "base")).await);
    let stored = ctx
        .store()
        .get_event(&p.group, &uid)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.ical.contains("Grüße aus Köln"), "read back whole");

    // Edited on Radicale: the edit reaches Xandikos; the hub now names a new object.
    fixtures::client_edit(&ctx, &p.radicale, &uid, |ical| {
        ical.replace("SUMMARY:Big", "SUMMARY:Big (edited)")
    })
    .await
    .unwrap();
    sync_user(&ctx, p.user).await.unwrap();
    let on_x = fixtures::events_in(&ctx, &p.xandikos).await.unwrap();
    let big = on_x.iter().find(|(_, s)| s.uid == uid).unwrap();
    assert!(big.1.to_ical().contains("SUMMARY:Big (edited)"));
    let hub = raw_item(&ctx, &ctx.config.events_table, ("group_id", &p.group), &uid)
        .await
        .unwrap();
    assert_ne!(s3_key(&hub, "ical"), hub_key, "a new body is a new object");
    assert!(
        object_exists(&ctx, &hub_key).await,
        "the old body stays for readers of the older item"
    );
    let mapping = raw_item(
        &ctx,
        &ctx.config.mappings_table,
        ("link_id", &p.x.link_id),
        &uid,
    )
    .await
    .unwrap();
    let base_key = s3_key(&mapping, "base");

    // Deleted on Radicale: gone from Xandikos, the mapping and its bodies with it.
    fixtures::client_delete(&ctx, &p.radicale, &uid)
        .await
        .unwrap();
    sync_user(&ctx, p.user).await.unwrap();
    let left: Vec<String> = fixtures::events_in(&ctx, &p.xandikos)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| s.uid)
        .collect();
    assert_eq!(left.len(), 1, "only the small event is left: {left:?}");
    assert!(raw_item(
        &ctx,
        &ctx.config.mappings_table,
        ("link_id", &p.x.link_id),
        &uid
    )
    .await
    .is_none());
    assert!(
        !object_exists(&ctx, &base_key).await,
        "a removed mapping's body goes with it"
    );
    let statuses = ctx.store().mappings_of_link(&p.r.link_id).await.unwrap();
    assert!(statuses.iter().all(|m| m.error.is_none()), "{statuses:?}");
}

#[tokio::test]
async fn without_a_bucket_a_big_event_is_refused_naming_the_setting() {
    let ctx = local_ctx().await;
    let store = calsync::store::Store::new(ctx.clients.ddb.clone(), ctx.config.clone());
    let uid = unique("too-big");
    let ev = calsync::model::HubEvent {
        group_id: unique("group"),
        uid: uid.clone(),
        version: 1,
        ical: big_event(&uid, "Big", 200),
        deleted: false,
        updated_ms: 1,
        origin_link: String::new(),
        made_on: None,
    };
    let err = store.put_event(&ev, None).await.unwrap_err().to_string();
    assert!(
        err.contains("ical") && err.contains("CALSYNC_BODIES_BUCKET"),
        "{err}"
    );
    assert!(store.get_event(&ev.group_id, &uid).await.unwrap().is_none());
}
