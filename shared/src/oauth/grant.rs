//! Revoking a disconnected link's OAuth grant at the provider: whether it may be revoked
//! ([`grant_may_be_shared`]) and the revocation itself ([`revoke`]).

use secrecy::ExposeSecret;

use super::{load_client, read_tokens, AuthError, OAuthProfile};
use crate::config::Ctx;
use crate::model::Link;

/// The stored `account` of a link whose tokens belong to the provider account `name` (what
/// [`super::DefaultCalendar::account`] points at) at the API root `api_root`: 32 hex digits
/// of SHA-256 over `<slug> <api root> <name>`, so that links of one account find each
/// other without the address being stored. An account is one within its provider's
/// deployment (Graph's national clouds have roots of their own; so does each emulator on
/// the local stack). `None` for an empty name.
pub fn account_key(p: &OAuthProfile, api_root: &str, name: &str) -> Option<String> {
    use sha2::Digest;
    if name.is_empty() {
        return None;
    }
    let api_root = api_root.trim_end_matches('/');
    let digest = sha2::Sha256::digest(format!("{} {api_root} {name}", p.slug()).as_bytes());
    Some(hex::encode(&digest[..16]))
}

/// Whether revoking `link`'s grant could end another link's access: among `others` (the
/// links of the same account, of any application user, and the links of `link`'s user;
/// `link` itself among them or not) is another link of the same provider with tokens of its
/// own that belongs to the same account — known from both `account`s, or, when either is
/// unknown (links connected before it was recorded), assumed for a link of the same user.
///
/// A provider may keep one grant per account and OAuth client, however many consents gave
/// it refresh tokens, and a revocation "will invalidate the actual token and, if
/// applicable, other tokens based on the same authorization grant" (RFC 7009 §2.1). Google
/// does: revoking one token removes the app's access to the whole account. So disconnecting
/// one of two calendars of an account, or one application user's link to an account
/// another user has connected too, must not revoke, or the other would be parked as
/// `reconnect_needed`; the grant is revoked with the account's last link.
pub fn grant_may_be_shared(link: &Link, others: &[Link]) -> bool {
    others.iter().any(|o| {
        let same_account = match (&link.account, &o.account) {
            (Some(a), Some(b)) => a == b,
            _ => o.user_id == link.user_id,
        };
        o.link_id != link.link_id
            && o.provider == link.provider
            && o.secret_arn.is_some()
            && same_account
    })
}

/// Revoke the grant whose tokens are in `arn` (the refresh token, else the access token) at
/// the client's revocation endpoint (RFC 7009 §2.1: `token=` form POST), or the profile's.
/// A token the provider no longer knows (400 `invalid_token`) counts as revoked; a provider
/// without a revocation endpoint has nothing to call.
///
/// Errors: the secret is unreadable, the endpoint fails (the message holds no token).
pub async fn revoke(ctx: &Ctx, p: &OAuthProfile, arn: &str) -> Result<(), AuthError> {
    let t = read_tokens(ctx, arn).await?;
    let client = load_client(ctx, p).await?;
    let Some(uri) = client.revoke_uri.as_deref().or(p.revoke_uri) else {
        return Ok(());
    };
    let token = t.refresh_token.unwrap_or(t.access_token);
    let resp = ctx
        .clients
        .http
        .post(uri)
        .form(&[("token", token.expose_secret())])
        .send()
        .await
        .map_err(|e| AuthError::Endpoint(format!("revoke: {}", e.without_url())))?;
    match resp.status().as_u16() {
        200..=299 | 400 => Ok(()),
        s => Err(AuthError::Endpoint(format!("revoke: HTTP {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{account_key, grant_may_be_shared};
    use crate::model::{Link, ProviderKind};

    fn link(id: &str, user: i64, provider: ProviderKind, secret: bool) -> Link {
        let mut l = Link::new(id, "g", user, provider, "https://example.invalid/cal");
        l.secret_arn = secret.then(|| format!("arn:secret:{id}"));
        l
    }

    fn of(account: &str, mut l: Link) -> Link {
        l.account = Some(account.into());
        l
    }

    #[test]
    fn another_link_of_the_same_account_with_tokens_shares_the_grant() {
        use ProviderKind::{Caldav, Google, Outlook};
        let me = link("a", 1, Google, true);
        let mine = of("acct-1", me.clone());
        let cases: &[(&str, &Link, Vec<Link>, bool)] = &[
            ("no other link", &me, vec![], false),
            ("only itself", &me, vec![me.clone()], false),
            (
                "another calendar of the same provider, accounts unknown",
                &me,
                vec![me.clone(), link("b", 1, Google, true)],
                true,
            ),
            (
                "another provider",
                &me,
                vec![link("b", 1, Outlook, true)],
                false,
            ),
            (
                "a CalDAV link",
                &me,
                vec![link("b", 1, Caldav, true)],
                false,
            ),
            (
                "another user's, accounts unknown",
                &me,
                vec![link("b", 2, Google, true)],
                false,
            ),
            (
                "no tokens of its own",
                &me,
                vec![link("b", 1, Google, false)],
                false,
            ),
            (
                "another user's link to the same account",
                &mine,
                vec![of("acct-1", link("b", 2, Google, true))],
                true,
            ),
            (
                "the same user's link to another account",
                &mine,
                vec![of("acct-2", link("b", 1, Google, true))],
                false,
            ),
            (
                "the same user's link of unknown account",
                &mine,
                vec![link("b", 1, Google, true)],
                true,
            ),
            (
                "another user's link of unknown account",
                &mine,
                vec![link("b", 2, Google, true)],
                false,
            ),
            (
                "the same account under another provider",
                &mine,
                vec![of("acct-1", link("b", 2, Outlook, true))],
                false,
            ),
        ];
        for (what, link, others, want) in cases {
            assert_eq!(grant_may_be_shared(link, others), *want, "{what}");
        }
    }

    #[test]
    fn an_account_key_is_a_digest_per_provider_deployment_and_name() {
        use crate::provider::{google, outlook};
        let root = google::API_ROOT;
        let g = account_key(&google::OAUTH, root, "ann@example.com").unwrap();
        assert_eq!(g.len(), 32);
        assert!(!g.contains("ann"));
        let table: &[(Option<String>, bool)] = &[
            (account_key(&google::OAUTH, root, "ann@example.com"), true),
            (
                account_key(&google::OAUTH, &format!("{root}/"), "ann@example.com"),
                true,
            ),
            (account_key(&google::OAUTH, root, "bob@example.com"), false),
            (account_key(&outlook::OAUTH, root, "ann@example.com"), false),
            (
                account_key(
                    &google::OAUTH,
                    "http://127.0.0.1:1/calendar/v3",
                    "ann@example.com",
                ),
                false,
            ),
        ];
        for (i, (key, same)) in table.iter().enumerate() {
            assert_eq!(key.as_deref() == Some(g.as_str()), *same, "row {i}");
        }
        assert_eq!(account_key(&google::OAUTH, root, ""), None);
    }
}
