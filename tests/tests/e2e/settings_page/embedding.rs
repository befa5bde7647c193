//! The page inside an application: framed from another origin and handed the token by
//! `postMessage`, and the headers it is served with.

use calsync_e2e::api::ApiServer;
use calsync_e2e::browser::Browser;
use calsync_e2e::local_ctx;

use super::{fresh_user, ZONE};

/// An application's page on its own origin framing the settings page: it answers the page's
/// `calsync:ready` with a token that is refused, then, told `calsync:token-expired`, with a
/// good one; what it receives goes into `#log`.
fn embedder_html(page_origin: &str, bad: &str, good: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><title>The application</title>
<iframe id="f" src="{page_origin}/app/" title="Calendar settings" width="1100" height="900"></iframe>
<p id="log"></p>
<script>
const frame = document.getElementById("f");
window.addEventListener("message", (ev) => {{
  if (ev.origin !== "{page_origin}") return;
  document.getElementById("log").textContent += ev.data.type + " ";
  const token = ev.data.type === "calsync:ready" ? "{bad}" : "{good}";
  frame.contentWindow.postMessage({{type: "calsync:token", token}}, "{page_origin}");
}});
</script></html>"#
    )
}

#[tokio::test]
async fn an_application_embeds_the_page_and_hands_it_the_token_by_post_message() {
    let ctx = local_ctx().await;
    let parent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let parent_origin = format!("http://{}", parent.local_addr().unwrap());
    let issuer = calsync_e2e::issuer::DevIssuer::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        None,
    )
    .await
    .unwrap();
    let page = calsync::api::app::AppConfig {
        parent_origins: vec![parent_origin.clone()],
    };
    let srv = ApiServer::start_with_page(
        ctx,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        issuer,
        &page,
    )
    .await
    .unwrap();
    let csp = reqwest::get(format!("{}/app/", srv.url))
        .await
        .unwrap()
        .headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.ends_with(&format!("frame-ancestors {parent_origin}")),
        "{csp}"
    );
    let html = embedder_html(&srv.url, "not-a-token", &srv.issuer.token(fresh_user()));
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    let served = tokio::spawn(async move { axum::serve(parent, app).await });
    let b = Browser::start(ZONE).await.unwrap();
    b.open(&format!("{parent_origin}/"), "#f").await.unwrap();
    // The refused token is reported to the application, which then sends a good one.
    b.text_contains("#log", "calsync:ready calsync:token-expired")
        .await
        .unwrap();
    b.client.enter_frame(0).await.unwrap();
    b.visible("#links .empty").await.unwrap();
    assert_eq!(
        b.js("return location.hash;", vec![]).await.unwrap(),
        "",
        "the token never was in the address"
    );
    b.client.enter_parent_frame().await.unwrap();
    b.accessible("embedded").await.unwrap();
    b.close().await.unwrap();
    served.abort();
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_needs_no_token() {
    let ctx = local_ctx().await;
    let srv = ApiServer::start_local(ctx).await.unwrap();
    let http = reqwest::Client::new();
    let index = http.get(format!("{}/app/", srv.url)).send().await.unwrap();
    assert_eq!(index.status(), 200);
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(index.headers()["x-content-type-options"], "nosniff");
    let etag = index.headers()["etag"].to_str().unwrap().to_string();
    let body = index.text().await.unwrap();
    assert!(
        !body.contains("<script>") && !body.contains("style="),
        "inline code"
    );
    let again = http
        .get(format!("{}/app/", srv.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let js = http
        .get(format!("{}/app/app.js", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    for bad in [
        "/app/../v1/groups",
        "/app/nothing.js",
        "/app/%2e%2e%2fCargo.toml",
    ] {
        let r = http.get(format!("{}{bad}", srv.url)).send().await.unwrap();
        assert!(
            r.status() == 404 || r.status() == 401,
            "{bad}: {}",
            r.status()
        );
    }
    let bare = http.get(format!("{}/app", srv.url)).send().await.unwrap();
    assert_eq!(bare.status(), 200);
    assert_eq!(bare.text().await.unwrap(), body, "/app serves the page too");
}
