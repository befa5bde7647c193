//! The Google consent itself: the command line's `connect-google` waits for the redirect,
//! and a consent finishes only in the browser that began it. Needs the local stack.

use calsync_e2e::emulators::google::Config;
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::local_ctx;

use super::google_sync::runs;

/// `calsync-local connect-google` (`make connect-google`): the command serves the callback on
/// its port, the person opens the printed address and consents, the command returns the
/// link; a forged callback makes it fail with the refusal instead of waiting.
#[tokio::test]
async fn command_line_connect_waits_for_the_consent_redirect() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    lg.emu
        .add_calendar("cli@example.com", "cli", "Europe/Berlin");
    // The command: its callback server on a port of its own, waiting for the redirect.
    let command = || async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let ctx = lg.ctx.clone();
        let (tx, printed) = tokio::sync::oneshot::channel();
        let run = async move {
            let timeout = std::time::Duration::from_secs(30);
            calsync_e2e::google::connect_interactively(
                ctx,
                listener,
                &calsync::connect::ConnectRequest {
                    provider: calsync::model::ProviderKind::Google,
                    group_id: "gcli-group".into(),
                    user_id: 77_001,
                    calendar_id: "cli@example.com".into(),
                    display_name: "cli".into(),
                    choices: Default::default(),
                },
                timeout,
                Some(tx),
            )
            .await
        };
        (addr, run, printed)
    };
    let (addr, cli, printed) = command().await;
    lg.use_redirect(&format!("http://{addr}/oauth/google/callback"))
        .await
        .expect("redirect");
    let person = async {
        // What the command printed; the emulator's consent page consents at once.
        let url = printed.await.expect("consent URL printed");
        assert!(
            url.starts_with(&format!("http://{addr}/oauth/google/begin?state=")),
            "{url}"
        );
        calsync_e2e::google::Browser::default()
            .open(&url)
            .await
            .expect("consent round trip")
    };
    let (link, (status, body)) = tokio::join!(cli, person);
    assert_eq!(status, 200, "{body}");
    let link = link.expect("connected");
    assert_eq!(
        (
            link.group_id.as_str(),
            link.user_id,
            link.display_name.as_str()
        ),
        ("gcli-group", 77_001, "cli")
    );
    assert!(
        link.url.ends_with("/calendars/cli%40example.com"),
        "{}",
        link.url
    );
    let arn = link.secret_arn.as_deref().expect("token secret");
    calsync::oauth::read_tokens(&lg.ctx, arn)
        .await
        .expect("tokens stored");
    // The first sync it queued runs while the emulator is up (the queues are shared).
    calsync_e2e::runner::drain(&lg.ctx).await.expect("drain");
    let first = runs(&ctx, &link.link_id).await;
    assert!(
        first.iter().any(|r| r.kind == "pull" && r.outcome == "ok"),
        "{first:?}"
    );

    let (addr, cli, _printed) = command().await;
    let forged = async {
        reqwest::get(format!(
            "http://{addr}/oauth/google/callback?code=stolen&state=forged"
        ))
        .await
        .expect("callback")
        .status()
        .as_u16()
    };
    let (refused, status) = tokio::join!(cli, forged);
    assert!((400..500).contains(&status), "{status}");
    let err = refused.expect_err("a forged callback does not connect");
    assert!(err.to_string().contains("connect refused"), "{err}");
}

/// The consent is bound to the browser that began it: a callback carrying the code and
/// state but not that browser's cookie connects nothing (login CSRF / a stolen consent
/// link), the begin URL works once, and the state is used up by the refused attempt.
#[tokio::test]
async fn a_consent_finishes_only_in_the_browser_that_began_it() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    lg.emu
        .add_calendar("bound@example.com", "bound", "Europe/Berlin");
    let user = 88_001;
    let url = calsync_e2e::google::consent_url(
        &lg.ctx,
        "bound-group",
        user,
        "bound@example.com",
        "bound",
    )
    .await
    .expect("consent url");
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The victim's browser begins: it gets the cookie and goes to the consent page.
    let begun = no_follow.get(&url).send().await.unwrap();
    assert_eq!(begun.status().as_u16(), 302);
    let cookie = begun.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-calsync-oauth=")
            && cookie.contains("Secure")
            && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let consent = begun.headers()["location"].to_str().unwrap().to_string();
    // The begin URL is single-use.
    assert_eq!(
        no_follow.get(&url).send().await.unwrap().status().as_u16(),
        400
    );
    let back = no_follow.get(&consent).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.contains("/oauth/google/callback?"), "{callback}");
    // Another browser (no cookie, or someone else's) brings the callback: refused.
    let stolen = no_follow
        .get(&callback)
        .header("cookie", "__Host-calsync-oauth=someone-elses-state")
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status().as_u16(), 400);
    assert!(stolen.text().await.unwrap().contains("another browser"));
    // The state is used up: even the right browser cannot finish with it now.
    let kv = cookie.split(';').next().unwrap().to_string();
    let late = no_follow
        .get(&callback)
        .header("cookie", kv)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status().as_u16(), 400);
    assert!(
        ctx.store().links_of_user(user).await.unwrap().is_empty(),
        "nothing connected"
    );
}

/// A consent for a calendar the group links already — the user clicked Connect again
/// instead of Reconnect, or consented twice — renews that link with the new tokens (as a
/// reconnection) instead of making a second link that would sync every event twice, and
/// the consent window's page says so.
#[tokio::test]
async fn a_consent_for_a_calendar_the_group_links_already_renews_that_link() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let owner = "twice@example.com";
    lg.emu.add_account(owner, "Europe/Berlin");
    let user = calsync_e2e::fixtures::fresh_user();
    let group = calsync_e2e::fixtures::unique("gtwice");
    let first = lg
        .connect_as(&group, user, owner, "")
        .await
        .expect("connect");
    let arn = first.secret_arn.clone().expect("arn");
    let tokens = calsync_e2e::accounts::stored_token_values(&lg.ctx, &arn)
        .await
        .expect("tokens");
    // What the consent window shows: the calendar was there already and is renewed.
    lg.emu.sign_in_next_as(owner);
    let start = calsync_e2e::google::consent_url(&lg.ctx, &group, user, "", "main")
        .await
        .expect("start");
    let (status, page) = calsync_e2e::google::Browser::default()
        .open(&start)
        .await
        .expect("consent");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<h1>Calendar reconnected</h1>")
            && page.contains("was connected already")
            && page.contains(&format!("data-link-id=\"{}\"", first.link_id)),
        "{page}"
    );
    let again = ctx
        .store()
        .get_link(&first.link_id)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(again.secret_arn.as_deref(), Some(arn.as_str()));
    let links = ctx.store().links_of_group(&group).await.expect("links");
    assert_eq!(links.len(), 1, "no second link: {links:?}");
    assert_ne!(
        calsync_e2e::accounts::stored_token_values(&lg.ctx, &arn)
            .await
            .expect("tokens"),
        tokens,
        "the new consent's tokens are stored"
    );
    // The same calendar in another group is another link.
    let other = calsync_e2e::fixtures::unique("gtwice-other");
    let elsewhere = lg
        .connect_as(&other, user, owner, "")
        .await
        .expect("connect");
    assert_ne!(elsewhere.link_id, first.link_id);
    assert_eq!(elsewhere.url, first.url);
}
