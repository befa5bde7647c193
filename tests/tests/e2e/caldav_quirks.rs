//! CalDAV behaviours of other servers (iCloud, sabre/dav, DAViCal) that Radicale and Xandikos
//! do not show, injected by a proxy in front of the real Radicale: 507 truncation, 409 on a
//! rejected sync-token, ETag-less PUT responses, a calendar home on a partition host.

use calsync_e2e::demo::totals;
use calsync_e2e::fixtures::{self, radicale_base, simple_event, unique, Server};
use calsync_e2e::local_ctx;
use calsync_e2e::quirks::{QuirkProxy, Quirks};

struct Setup {
    user: i64,
    radicale: String,
    xandikos: String,
    via_proxy: calsync::model::Link,
    direct: calsync::model::Link,
}

/// A Radicale calendar linked through the proxy and a Xandikos calendar linked directly.
async fn setup(tag: &str, proxy: &QuirkProxy, seed_radicale: usize, seed_xandikos: usize) -> Setup {
    let ctx = local_ctx().await;
    let name = unique(tag);
    let radicale = fixtures::new_calendar(&ctx, Server::Radicale, &name)
        .await
        .unwrap();
    let xandikos = fixtures::new_calendar(&ctx, Server::Xandikos, &name)
        .await
        .unwrap();
    for i in 0..seed_radicale {
        fixtures::client_put(
            &ctx,
            &radicale,
            &simple_event(&format!("{tag}-r{i}"), "R", (i + 1) as u32),
        )
        .await
        .unwrap();
    }
    for i in 0..seed_xandikos {
        fixtures::client_put(
            &ctx,
            &xandikos,
            &simple_event(&format!("{tag}-x{i}"), "X", (i + 1) as u32),
        )
        .await
        .unwrap();
    }
    let group = unique("group");
    let user = 2_000_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000_000) as i64;
    let proxied_url = radicale.replace(&radicale_base(), &proxy.url);
    let via_proxy = fixtures::caldav_link(&ctx, &group, user, &proxied_url, "radicale-via-proxy")
        .await
        .unwrap();
    let direct = fixtures::caldav_link(&ctx, &group, user, &xandikos, "xandikos")
        .await
        .unwrap();
    Setup {
        user,
        radicale,
        xandikos,
        via_proxy,
        direct,
    }
}

/// An initial pull lists with a Depth 1 PROPFIND (the first sync-token is asked for last,
/// `PullResult::settle`); a server that refuses that listing is listed by sync-collection.
#[tokio::test]
async fn a_refused_member_listing_falls_back_to_sync_collection() {
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(
        &radicale_base(),
        Quirks {
            refuse_member_listing: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = setup("nolist", &proxy, 3, 0).await;
    fixtures::sync_user(&ctx, s.user).await.unwrap();
    assert_eq!(
        proxy.refused_listings(),
        1,
        "the initial pull tried the listing"
    );
    assert_eq!(
        fixtures::uid_counts(&ctx, &s.xandikos).await.unwrap().len(),
        3,
        "all members, listed by sync-collection"
    );
    let before = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &s.via_proxy.link_id)
        .await
        .unwrap();
    let after = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    assert_eq!(after.requests - before.requests, 1, "then incremental");
    assert_eq!(proxy.refused_listings(), 1);
}

#[tokio::test]
async fn a_truncated_sync_collection_is_followed_to_the_end() {
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(
        &radicale_base(),
        Quirks {
            truncate: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = setup("trunc", &proxy, 5, 0).await;
    fixtures::sync_user(&ctx, s.user).await.unwrap();
    assert_eq!(
        fixtures::uid_counts(&ctx, &s.xandikos).await.unwrap().len(),
        5,
        "all members despite 507s"
    );
    assert!(
        proxy.sync_reports() >= 3,
        "5 members in pages of 2: {} REPORTs",
        proxy.sync_reports()
    );
    let before = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &s.via_proxy.link_id)
        .await
        .unwrap();
    let after = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    assert_eq!(after.requests - before.requests, 1);
    assert_eq!(
        (after.created, after.updated, after.deleted),
        (before.created, before.updated, before.deleted)
    );
}

#[tokio::test]
async fn a_409_on_the_sync_token_restarts_with_zero_creates_and_deletes() {
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(
        &radicale_base(),
        Quirks {
            conflict_on_bad_token: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = setup("t409", &proxy, 3, 0).await;
    fixtures::sync_user(&ctx, s.user).await.unwrap();
    let store = ctx.store();
    let cursor = store
        .get_cursor(&s.via_proxy.link_id)
        .await
        .unwrap()
        .unwrap();
    store
        .put_cursor(
            &s.via_proxy.link_id,
            &calsync::provider::Cursor::new("sync:http://radicale.org/ns/sync/not-a-real-token"),
        )
        .await
        .unwrap();
    let before = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    let xb = totals(&ctx, &s.direct.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &s.via_proxy.link_id)
        .await
        .unwrap();
    let after = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    let xa = totals(&ctx, &s.direct.link_id).await.unwrap();
    assert_eq!(
        (after.created, after.updated, after.deleted),
        (before.created, before.updated, before.deleted)
    );
    assert_eq!(
        (xa.created, xa.updated, xa.deleted),
        (xb.created, xb.updated, xb.deleted)
    );
    assert_eq!(
        after.requests - before.requests,
        2,
        "the 409, then one full sync-collection"
    );
    let fresh = store
        .get_cursor(&s.via_proxy.link_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        fresh.as_str().starts_with("sync:") && !fresh.as_str().contains("not-a-real-token"),
        "{fresh} (was {cursor})"
    );
}

#[tokio::test]
async fn a_put_without_etag_is_reread_and_the_next_sync_is_quiet() {
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(
        &radicale_base(),
        Quirks {
            strip_put_etag: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = setup("noetag", &proxy, 0, 2).await;
    fixtures::sync_user(&ctx, s.user).await.unwrap();
    assert_eq!(
        fixtures::uid_counts(&ctx, &s.radicale).await.unwrap().len(),
        2
    );
    let maps = ctx
        .store()
        .mappings_of_link(&s.via_proxy.link_id)
        .await
        .unwrap();
    let listing = fixtures::events_in(&ctx, &s.radicale).await.unwrap();
    assert_eq!(maps.len(), 2);
    for m in &maps {
        assert!(
            m.etag.is_some(),
            "etag re-read after an ETag-less PUT: {m:?}"
        );
        assert!(listing
            .iter()
            .any(|(href, _)| Some(href.as_str()) == m.href.as_deref()));
    }
    let before = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    fixtures::sync_link(&ctx, &s.via_proxy.link_id)
        .await
        .unwrap();
    let after = totals(&ctx, &s.via_proxy.link_id).await.unwrap();
    assert_eq!(
        after.requests - before.requests,
        1,
        "our own writes are recognised by etag"
    );
    assert_eq!(
        (after.created, after.updated),
        (before.created, before.updated)
    );
}

/// A calendar-home-set on another origin (what iCloud's `pNN-caldav.icloud.com` partitions
/// look like) is followed only for iCloud hosts (`calsync::provider::caldav::may_follow`,
/// unit-tested); any other server pointing elsewhere is refused, so an href cannot send our
/// requests and credentials to a host the user did not name.
#[tokio::test]
async fn discovery_refuses_a_calendar_home_on_another_origin() {
    let ctx = local_ctx().await;
    let proxy = QuirkProxy::start(
        &radicale_base(),
        Quirks {
            partition_home: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let name = unique("partition");
    fixtures::new_calendar(&ctx, Server::Radicale, &name)
        .await
        .unwrap();
    let client = fixtures::client(&ctx, &format!("{}/", proxy.url));
    let err = client
        .discover(&format!("{}/", proxy.url))
        .await
        .expect_err("the home on the other origin is refused");
    assert!(
        matches!(&err, calsync::provider::ProviderError::Forbidden { detail, .. } if detail.contains("outside the calendar's origin")),
        "{err}"
    );
    // The same server without the cross-origin home is discovered as usual.
    let plain = fixtures::client(&ctx, &format!("{}/", radicale_base()));
    let calendars = plain
        .discover(&format!("{}/", radicale_base()))
        .await
        .unwrap();
    assert!(calendars
        .iter()
        .any(|c| c.url.ends_with(&format!("/{name}/"))));
}
