//! Outbound requests to user-supplied addresses (ICS feeds, CalDAV servers, the hrefs they
//! return) reach only public addresses plus the local stack's own 127.0.0.1: a feed or CalDAV
//! URL, a redirect, or a server href pointing at a forbidden address (127.0.0.2 here) is
//! refused and that address receives zero requests; a body over its cap is "too large" for
//! that link while the other jobs succeed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::response::IntoResponse;
use calsync::model::LinkStatus;
use calsync_e2e::api::ApiServer;
use calsync_e2e::feed::FeedServer;
use calsync_e2e::fixtures::{self, simple_event, unique};
use calsync_e2e::{local_ctx, runner};
use serde_json::json;

/// A listener on the forbidden loopback address that counts what reaches it.
struct Forbidden {
    base: String,
    hits: Arc<AtomicU32>,
    _task: tokio::task::JoinHandle<()>,
}

async fn forbidden() -> Forbidden {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Forbidden {
        base,
        hits,
        _task: task,
    }
}

/// An allowed server on 127.0.0.1 answering every request with `answer`.
async fn allowed(
    answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let a = answer.clone();
        async move { a() }
    });
    (
        base,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

#[tokio::test]
async fn forbidden_addresses_are_refused_and_receive_nothing() {
    let ctx = local_ctx().await;
    let target = forbidden().await;
    let srv = ApiServer::start_local(ctx.clone()).await.unwrap();
    let api = srv.as_user(3_000_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64);
    let group = api.create_group("ssrf").await.unwrap();
    let links = format!("/v1/groups/{group}/links");
    // A redirect from an allowed server to the forbidden one.
    let to = format!("{}/feed.ics", target.base);
    let (redirector, _r) =
        allowed(move || axum::response::Redirect::temporary(&to).into_response()).await;
    // A CalDAV server whose principal href points at the forbidden address.
    let principal = format!("{}/principal/", target.base);
    let (evil_dav, _d) = allowed(move || {
        let body = format!(
            r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype><d:current-user-principal><d:href>{principal}</d:href></d:current-user-principal></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"#
        );
        (axum::http::StatusCode::MULTI_STATUS, [("content-type", "application/xml")], body).into_response()
    })
    .await;
    let cases = [
        json!({"provider": "ics", "url": format!("{}/feed.ics", target.base)}),
        json!({"provider": "ics", "url": format!("webcal://127.0.0.2:{}/feed.ics", target.base.rsplit(':').next().unwrap())}),
        json!({"provider": "ics", "url": format!("{redirector}/feed.ics")}),
        json!({"provider": "caldav", "url": format!("{}/", target.base), "username": "u", "password": "p"}),
        json!({"provider": "caldav", "url": format!("{evil_dav}/"), "username": "u", "password": "p"}),
        json!({"provider": "ics", "url": "http://169.254.169.254/latest/meta-data/"}),
        json!({"provider": "ics", "url": "http://[::ffff:127.0.0.2]/x.ics"}),
    ];
    for body in cases {
        let a = api.post(&links, &body).await.unwrap();
        assert_eq!(a.status, 422, "{body}: {}", a.body);
        assert_eq!(a.body["errors"][0]["pointer"], "#/url", "{}", a.body);
        assert!(
            a.body["detail"].as_str().unwrap().contains("refused"),
            "{body}: {}",
            a.body
        );
    }
    assert_eq!(
        target.hits.load(Ordering::SeqCst),
        0,
        "the forbidden address received requests"
    );
    assert!(api.get(&links).await.unwrap().body["links"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_feed_over_its_cap_fails_alone_and_the_others_sync() {
    let ctx = local_ctx().await;
    let user = 3_100_000 + (uuid::Uuid::now_v7().as_u128() % 1_000_000) as i64;
    let group = unique("cap");
    // 11 MB: one event with a long description.
    let big = simple_event("big-1", "Big", 3).replace(
        "LOCATION:Room 1\r\n",
        &format!("DESCRIPTION:{}\r\n", "x".repeat(11 << 20)),
    );
    let huge = FeedServer::start(&big, true).await.unwrap();
    let small = FeedServer::start(
        &format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}END:VCALENDAR\r\n",
            simple_event("small-1", "Small", 4)
                .split("VERSION:2.0\r\n")
                .nth(1)
                .unwrap()
                .split("END:VCALENDAR")
                .next()
                .unwrap()
        ),
        true,
    )
    .await
    .unwrap();
    let big_link = fixtures::ics_link(&ctx, &group, user, &huge.url, "huge")
        .await
        .unwrap();
    let ok_link = fixtures::ics_link(&ctx, &group, user, &small.url, "small")
        .await
        .unwrap();
    let stats = fixtures::sync_user(&ctx, user).await.unwrap();
    assert_eq!(
        stats.failures, 0,
        "a permanent failure is not retried: {stats:?}"
    );
    let b = ctx
        .store()
        .get_link(&big_link.link_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status, LinkStatus::Error);
    assert!(
        b.status_reason
            .as_deref()
            .unwrap_or("")
            .contains("too large"),
        "{:?}",
        b.status_reason
    );
    let o = ctx
        .store()
        .get_link(&ok_link.link_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.status, LinkStatus::Ok, "{:?}", o.status_reason);
    let hub = ctx.store().events_of_group(&group).await.unwrap();
    let uids: Vec<&str> = hub.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids, ["small-1"]);
    runner::drain(&ctx).await.unwrap();
}
