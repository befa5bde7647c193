//! Revoking a disconnected link's OAuth grant at the provider: whether it may be revoked
//! ([`grant_may_be_shared`]) and the revocation itself ([`revoke`]).

use secrecy::ExposeSecret;

use super::{load_client, read_tokens, AuthError, OAuthProfile};
use crate::config::Ctx;
use crate::model::Link;

/// Whether revoking `link`'s grant could end another link's access: `others` (the links of
/// the same application user, `link` itself among them or not) holds another link of the
/// same provider with tokens of its own.
///
/// A provider may keep one grant per account and OAuth client, however many consents gave
/// it refresh tokens, and a revocation "will invalidate the actual token and, if
/// applicable, other tokens based on the same authorization grant" (RFC 7009 §2.1). Google
/// does: revoking one token removes the app's access to the whole account. So disconnecting
/// one of two calendars of an account must not revoke, or the other would be parked as
/// `reconnect_needed`. calsync does not record which account a link's tokens belong to,
/// so any other link of the user and provider counts as possibly the same account; the
/// grant is revoked with the user's last such link. Links of another application user
/// that happen to share the account are not seen.
pub fn grant_may_be_shared(link: &Link, others: &[Link]) -> bool {
    others.iter().any(|o| {
        o.link_id != link.link_id
            && o.user_id == link.user_id
            && o.provider == link.provider
            && o.secret_arn.is_some()
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
    use super::grant_may_be_shared;
    use crate::model::{Link, ProviderKind};

    fn link(id: &str, user: i64, provider: ProviderKind, secret: bool) -> Link {
        let mut l = Link::new(id, "g", user, provider, "https://example.invalid/cal");
        l.secret_arn = secret.then(|| format!("arn:secret:{id}"));
        l
    }

    #[test]
    fn another_link_of_the_user_and_provider_with_tokens_may_share_the_grant() {
        use ProviderKind::{Caldav, Google, Outlook};
        let me = link("a", 1, Google, true);
        let cases: &[(&str, Vec<Link>, bool)] = &[
            ("no other link", vec![], false),
            ("only itself", vec![me.clone()], false),
            (
                "another calendar of the same provider",
                vec![me.clone(), link("b", 1, Google, true)],
                true,
            ),
            ("another provider", vec![link("b", 1, Outlook, true)], false),
            ("a CalDAV link", vec![link("b", 1, Caldav, true)], false),
            ("another user's", vec![link("b", 2, Google, true)], false),
            (
                "no tokens of its own",
                vec![link("b", 1, Google, false)],
                false,
            ),
        ];
        for (what, others, want) in cases {
            assert_eq!(grant_may_be_shared(&me, others), *want, "{what}");
        }
    }
}
