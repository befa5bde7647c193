//! Disconnecting a Google calendar and its grant: the channel stopped and the grant revoked
//! with its account's last link, not while another calendar of the account, of any
//! application user, holds it. Needs the local stack.

use calsync_e2e::accounts;
use calsync_e2e::emulators::google::Config;
use calsync_e2e::fixtures;
use calsync_e2e::google::LocalGoogle;
use calsync_e2e::local_ctx;

/// Disconnecting a Google calendar through the API stops its push channel at Google, revokes
/// the grant (RFC 7009 at the revocation endpoint) and deletes the token secret; the copies
/// stay in Google.
#[tokio::test]
async fn disconnecting_google_stops_the_channel_and_revokes_the_grant() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let user = 89_001 + (uuid::Uuid::now_v7().as_u128() % 1_000) as i64;
    let link = lg
        .connect("gone-group", user, "gone@example.com", "gone")
        .await
        .expect("connect");
    fixtures::sync_link(&lg.ctx, &link.link_id)
        .await
        .expect("sync");
    let arn = link.secret_arn.clone().expect("token secret");
    let refresh = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .unwrap()
        .refresh_token
        .expect("refresh token");
    let channels = |ctx: calsync::config::Ctx, id: String| async move {
        ctx.store()
            .all_channels()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.link_id == id)
            .count()
    };
    assert_eq!(channels(lg.ctx.clone(), link.link_id.clone()).await, 1);
    let srv = calsync_e2e::api::ApiServer::start_local(lg.ctx.clone())
        .await
        .unwrap();
    let gone = srv
        .as_user(user)
        .delete(&format!("/v1/links/{}", link.link_id))
        .await
        .unwrap();
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(
        channels(lg.ctx.clone(), link.link_id.clone()).await,
        0,
        "channel record gone"
    );
    assert_eq!(lg.revocations().await.unwrap(), 1);
    assert!(
        lg.grant_revoked(&refresh).await.unwrap(),
        "the grant is revoked"
    );
    assert!(
        lg.ctx
            .clients
            .secrets
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .is_err(),
        "secret deleted"
    );
    assert!(lg
        .ctx
        .store()
        .get_link(&link.link_id)
        .await
        .unwrap()
        .is_none());
}

/// One user connects two calendars of one Google account (two consents). Google keeps one
/// grant per account and client, and revoking any of its tokens ends all of it (RFC 7009
/// §2.1; the emulator does the same). Disconnecting the first calendar must not revoke, or
/// the second would be parked as `reconnect_needed` at its next token refresh: it keeps
/// syncing. Disconnecting the last one revokes the grant.
#[tokio::test]
async fn disconnecting_one_of_two_calendars_of_an_account_keeps_the_others_grant() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let user = fixtures::fresh_user();
    let group = fixtures::unique("gtwo");
    let first = lg
        .connect(&group, user, "two-first@example.com", "first")
        .await
        .expect("connect first");
    let second = lg
        .connect(&group, user, "two-second@example.com", "second")
        .await
        .expect("connect second");
    let revocations = || async { lg.revocations().await.expect("revocations") };
    let srv = calsync_e2e::api::ApiServer::start_local(lg.ctx.clone())
        .await
        .expect("api");
    let api = srv.as_user(user);
    let gone = api
        .delete(&format!("/v1/links/{}", first.link_id))
        .await
        .expect("delete");
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(revocations().await, 0, "the shared grant was kept");

    // The second calendar's next sync must refresh its access token with its own refresh
    // token, which a revocation of the grant would have ended.
    accounts::assert_still_refreshes(&lg.ctx, &second).await;

    // The last calendar of the account takes the grant with it.
    let arn = second.secret_arn.clone().expect("arn");
    let refresh = calsync::oauth::read_tokens(&lg.ctx, &arn)
        .await
        .expect("tokens")
        .refresh_token
        .expect("refresh token");
    let gone = api
        .delete(&format!("/v1/links/{}", second.link_id))
        .await
        .expect("delete");
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(revocations().await, 1, "the last link revokes the grant");
    assert!(
        lg.grant_revoked(&refresh).await.expect("refresh"),
        "the grant is revoked"
    );
}

/// Two application users connect one Google account (a shared family or team account), and
/// one of them also connects an account of their own. A link records which account it
/// belongs to (a digest, not the address), so a disconnect revokes a grant exactly when
/// its account's last link goes: the first user's disconnect keeps the grant the other
/// user's link still uses (it used to be revoked, parking that link), and the second
/// user's disconnect of the shared account revokes it although they still have a Google
/// link — of another account, which keeps working.
#[tokio::test]
async fn a_grant_is_revoked_with_its_accounts_last_link_whoever_holds_it() {
    let ctx = local_ctx().await;
    let lg = LocalGoogle::start(&ctx, Config::default())
        .await
        .expect("google");
    let (shared, own) = ("family@example.com", "own@example.com");
    lg.emu.add_account(shared, "Europe/Berlin");
    lg.emu.add_account(own, "Europe/Berlin");
    let srv = calsync_e2e::api::ApiServer::start_local(lg.ctx.clone())
        .await
        .expect("api");
    let (ann, ben) = (fixtures::fresh_user(), fixtures::fresh_user());
    let connect_as = |user: i64, account: &'static str| {
        let lg = &lg;
        let srv = &srv;
        async move {
            let group = srv
                .as_user(user)
                .create_group("family")
                .await
                .expect("group");
            lg.connect_as(&group, user, account, "")
                .await
                .expect("connect")
        }
    };
    let ann_shared = connect_as(ann, shared).await;
    let ben_shared = connect_as(ben, shared).await;
    let ben_own = connect_as(ben, own).await;
    assert!(ann_shared.account.is_some(), "{ann_shared:?}");
    assert_eq!(ann_shared.account, ben_shared.account, "one account");
    assert_ne!(ben_shared.account, ben_own.account, "two accounts");
    assert!(
        !format!("{:?}", ann_shared.account).contains("family"),
        "the address is not stored"
    );
    let revocations = || async { lg.revocations().await.expect("revocations") };

    let gone = srv
        .as_user(ann)
        .delete(&format!("/v1/links/{}", ann_shared.link_id))
        .await
        .expect("delete");
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(revocations().await, 0, "Ben's link holds the shared grant");
    accounts::assert_still_refreshes(&lg.ctx, &ben_shared).await;

    let gone = srv
        .as_user(ben)
        .delete(&format!("/v1/links/{}", ben_shared.link_id))
        .await
        .expect("delete");
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(
        revocations().await,
        1,
        "the shared account's last link revokes its grant"
    );
    accounts::assert_still_refreshes(&lg.ctx, &ben_own).await;
}
