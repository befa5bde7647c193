//! OAuth 2.0 for the providers connected through a consent (authorization code with `state`
//! and PKCE, refresh tokens), on the `oauth2` crate: RFC 6749 §4.1 (code grant), §6
//! (refresh); RFC 7636 (PKCE, `S256`). What differs between providers (scopes, extra
//! consent parameters, default endpoints, refresh-token rotation) is the provider module's
//! [`OAuthProfile`].
//!
//! Where things live:
//! - the application's client id/secret, consent and token endpoints and redirect URI: the
//!   Secrets Manager secret [`OAuthProfile::client_secret_name`] (`<stack>/<slug>-oauth-client`,
//!   `{"client_id","client_secret","auth_uri","token_uri","redirect_uri"}`);
//! - a user's tokens: one secret per connected account, named by the link's `secret_arn`
//!   (`<stack>/<slug>-tokens/<link>`, `{"access_token","refresh_token","expires_at"}`,
//!   `expires_at` in epoch seconds, UTC).
//!
//! Token values never reach logs, errors or DynamoDB: they are held as [`SecretString`],
//! errors name the secret ARN and the OAuth error code only.
//!
//! Refresh: [`access_token`] refreshes a token that expires within [`REFRESH_MARGIN_SECS`].
//! Concurrent Lambdas coordinate through a lease on `token:<secret ARN>` in the leases table:
//! one refreshes and writes the secret, the others wait for the new value. When a token
//! response carries a new refresh token (Microsoft rotates them on every use; Google does
//! not), it replaces the old. Mid-run, a provider asks its [`TokenSource`] for a fresh bearer
//! after a 401 ([`TokenSource::refresh_after_401`]).

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod fresh;
mod grant;
mod source;

pub(crate) use fresh::token_for;
pub use fresh::{access_token, fresh_tokens};
pub use grant::{account_key, grant_may_be_shared, revoke};
pub use source::{LinkTokens, StaticToken, TokenSource};

use crate::config::{now_secs, Ctx};
use crate::model::ProviderKind;
use crate::secrets::SecretError;

/// How one provider does OAuth 2.0: what its module's
/// [`crate::provider::registry::ProviderModule::oauth`] answers.
#[derive(Debug)]
pub struct OAuthProfile {
    /// The provider (its slug names routes and secrets).
    pub provider: ProviderKind,
    /// Scopes asked at consent, space-separated in the request.
    pub scopes: &'static [&'static str],
    /// Extra consent parameters (Google `access_type=offline`, `prompt=consent`).
    pub extra_params: &'static [(&'static str, &'static str)],
    /// Revocation endpoint (RFC 7009) when the client secret names none; `None`: the
    /// provider has none (a disconnect then only deletes the tokens).
    pub revoke_uri: Option<&'static str>,
    /// API root when the client secret names none (the secret's `api_root` points at an
    /// emulator on the local stack).
    pub api_root: &'static str,
    /// The calendar a consent connects when the caller names none: the account's main one.
    pub default_calendar: DefaultCalendar,
    /// A link's URL from the API root and the calendar id.
    pub calendar_url: fn(api_root: &str, calendar_id: &str) -> String,
}

/// How a consent finds the account's main calendar, which it connects when the caller names
/// no calendar, and what a reconnection checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultCalendar {
    /// Read once after consent with the new access token: `GET <api root><path>` answers a
    /// JSON object whose `id` is the main calendar's id (Google `GET /calendars/primary`,
    /// https://developers.google.com/workspace/calendar/api/v3/reference/calendars/get;
    /// Graph `GET /me/calendar`, https://learn.microsoft.com/graph/api/calendar-get). The
    /// link then names that id, which is the account's own (a Google primary calendar's id
    /// is the account's address).
    pub path: &'static str,
    /// An alias of the main calendar the API also takes (Google `primary`). Links connected
    /// before the lookup name it; a reconnection cannot tell their account from another.
    pub alias: Option<&'static str>,
    /// JSON pointer (RFC 6901) into the same answer to the account's own name, which
    /// [`account_key`] turns into the link's `account`: Google `/id` (a primary calendar's
    /// id is the account's address), Graph `/owner/address` (the mailbox's address).
    pub account: &'static str,
}

impl OAuthProfile {
    /// The provider's route and name segment (`google`).
    pub fn slug(&self) -> &'static str {
        self.provider.info().slug
    }

    /// Secrets Manager name of the application's OAuth client: `<stack>/<slug>-oauth-client`.
    pub fn client_secret_name(&self, stack: &str) -> String {
        format!("{stack}/{}-oauth-client", self.slug())
    }

    /// Secrets Manager name of one link's tokens: `<stack>/<slug>-tokens/<link_id>`.
    pub fn token_secret_name(&self, stack: &str, link_id: &str) -> String {
        format!("{stack}/{}-tokens/{link_id}", self.slug())
    }
}

/// Refresh access tokens that expire within this many seconds.
pub const REFRESH_MARGIN_SECS: i64 = 300;
/// How long one refresher holds the per-account lease (seconds).
pub(crate) const REFRESH_LEASE_SECS: i64 = 30;

/// The application's OAuth client, as stored in Secrets Manager.
#[derive(Deserialize)]
pub struct OAuthClient {
    /// Client id (Google Cloud console, Microsoft Entra app registration).
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretString,
    /// Consent endpoint (`https://accounts.google.com/o/oauth2/v2/auth`,
    /// `https://login.microsoftonline.com/common/oauth2/v2.0/authorize`).
    pub auth_uri: String,
    /// Token endpoint (`https://oauth2.googleapis.com/token`, `…/oauth2/v2.0/token`).
    pub token_uri: String,
    /// Registered redirect URI (our `/oauth/<slug>/callback`).
    pub redirect_uri: String,
    /// Revocation endpoint (RFC 7009); absent: [`OAuthProfile::revoke_uri`].
    #[serde(default)]
    pub revoke_uri: Option<String>,
    /// Calendar API root; absent: [`OAuthProfile::api_root`] (an emulator's root on the
    /// local stack).
    #[serde(default)]
    pub api_root: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

/// Access and refresh token of one account.
pub struct TokenSet {
    /// Bearer token for API calls.
    pub access_token: SecretString,
    /// Long-lived refresh token (absent when consent was not `access_type=offline`).
    pub refresh_token: Option<SecretString>,
    /// Expiry of the access token, epoch seconds (UTC).
    pub expires_at: i64,
    /// When the token endpoint issued these tokens, epoch milliseconds (UTC); 0 when unknown.
    /// A refresh stores its tokens only when nothing issued later is stored.
    pub issued_ms: i64,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Deserialize)]
struct StoredTokens {
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    expires_at: i64,
    #[serde(default)]
    issued_ms: i64,
}

impl TokenSet {
    fn to_json(&self) -> String {
        serde_json::json!({
            "access_token": self.access_token.expose_secret(),
            "refresh_token": self.refresh_token.as_ref().map(|t| t.expose_secret().to_string()),
            "expires_at": self.expires_at,
            "issued_ms": self.issued_ms,
        })
        .to_string()
    }
}

/// OAuth failures. Messages carry OAuth error codes and secret ARNs, never token values.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The grant was revoked or expired (`invalid_grant`, `interaction_required`): the user
    /// must reconnect.
    #[error("the provider revoked the access or it expired ({0}); reconnect the calendar")]
    InvalidGrant(String),
    /// The token secret holds no refresh token and the access token expired.
    #[error(
        "secret {0}: access token expired and no refresh token stored; reconnect the calendar"
    )]
    NoRefreshToken(String),
    /// Secrets Manager failed or a secret has the wrong shape.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The token endpoint failed otherwise (worth a retry).
    #[error("token endpoint: {0}")]
    Endpoint(String),
    /// Another worker is refreshing and did not finish in time (retry later).
    #[error("token refresh for {0} is in progress elsewhere")]
    Busy(String),
}

impl AuthError {
    /// True when only the user can fix it (the link becomes `reconnect_needed`).
    pub fn needs_reconnect(&self) -> bool {
        matches!(
            self,
            AuthError::InvalidGrant(_) | AuthError::NoRefreshToken(_)
        )
    }
}

/// What the consent redirect needs to be checked and exchanged later.
pub struct Authorization {
    /// URL to send the user to.
    pub url: String,
    /// The `state` value (CSRF protection, RFC 6749 §10.12); the callback must return it.
    pub state: String,
    /// PKCE verifier (RFC 7636 §4.1) to present with the code.
    pub verifier: SecretString,
}

/// oauth2's client with the consent and token endpoints set.
type OAuth = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn build(c: &OAuthClient) -> Result<OAuth, AuthError> {
    let bad = |what: &str| AuthError::Endpoint(format!("OAuth client: invalid {what}"));
    Ok(BasicClient::new(ClientId::new(c.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            c.client_secret.expose_secret().to_string(),
        ))
        .set_auth_uri(AuthUrl::new(c.auth_uri.clone()).map_err(|_| bad("auth_uri"))?)
        .set_token_uri(TokenUrl::new(c.token_uri.clone()).map_err(|_| bad("token_uri"))?)
        .set_redirect_uri(
            RedirectUrl::new(c.redirect_uri.clone()).map_err(|_| bad("redirect_uri"))?,
        )
        .set_auth_type(AuthType::RequestBody))
}

/// The consent URL for the profile's scopes and extra parameters, with a fresh `state` and
/// PKCE `S256` challenge.
///
/// Errors: the client's URLs are invalid.
pub fn authorization_url(c: &OAuthClient, p: &OAuthProfile) -> Result<Authorization, AuthError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = build(c)?;
    let mut req = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(p.scopes.iter().map(|s| Scope::new((*s).into())))
        .set_pkce_challenge(challenge);
    for (k, v) in p.extra_params {
        req = req.add_extra_param(*k, *v);
    }
    let (url, state) = req.url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.secret().clone(),
        verifier: SecretString::from(verifier.secret().clone()),
    })
}

/// oauth2's HTTP port on our reqwest client.
struct Http<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(self.0, request))
    }
}

async fn send(
    http: &reqwest::Client,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, std::io::Error> {
    let io = |e: reqwest::Error| std::io::Error::other(e.without_url().to_string());
    let (parts, body) = req.into_parts();
    let resp = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(io)?;
    let mut out = http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let bytes = resp.bytes().await.map_err(io)?;
    out.body(bytes.to_vec()).map_err(std::io::Error::other)
}

fn token_set(t: &oauth2::basic::BasicTokenResponse, keep: Option<SecretString>) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(t.access_token().secret().clone()),
        refresh_token: t
            .refresh_token()
            .map(|r| SecretString::from(r.secret().clone()))
            .or(keep),
        expires_at: now_secs() + t.expires_in().map(|d| d.as_secs() as i64).unwrap_or(3600),
        issued_ms: crate::config::now_millis(),
    }
}

fn endpoint_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(r)
            if *r.error() == BasicErrorResponseType::InvalidGrant
                || r.error().as_ref() == "interaction_required" =>
        {
            AuthError::InvalidGrant(grant_error(&r))
        }
        RequestTokenError::ServerResponse(r) => AuthError::Endpoint(format!("error {}", r.error())),
        RequestTokenError::Request(e) => AuthError::Endpoint(format!("request failed: {e}")),
        RequestTokenError::Parse(_, _) => AuthError::Endpoint("unreadable token response".into()),
        RequestTokenError::Other(o) => AuthError::Endpoint(o),
    }
}

/// The error code and, for Microsoft, the AADSTS number (`invalid_grant AADSTS70008`): the
/// description's first word when it is one; never the rest of the description.
fn grant_error(r: &oauth2::basic::BasicErrorResponse) -> String {
    let code = r.error().as_ref().to_string();
    match r
        .error_description()
        .and_then(|d| d.split([':', ' ']).next())
        .filter(|w| w.starts_with("AADSTS") && w[6..].bytes().all(|b| b.is_ascii_digit()))
    {
        Some(aad) => format!("{code} {aad}"),
        None => code,
    }
}

/// Exchange an authorization code (RFC 6749 §4.1.3) with its PKCE verifier.
///
/// Errors: [`AuthError::InvalidGrant`] for a used, expired or mismatched code.
pub async fn exchange_code(
    http: &reqwest::Client,
    c: &OAuthClient,
    code: &str,
    verifier: &SecretString,
) -> Result<TokenSet, AuthError> {
    let client = Http(http);
    let t = build(c)?
        .exchange_code(AuthorizationCode::new(code.into()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_string()))
        .request_async(&client)
        .await
        .map_err(endpoint_error)?;
    Ok(token_set(&t, None))
}

/// Refresh an access token (RFC 6749 §6).
///
/// Errors: [`AuthError::InvalidGrant`] when the grant was revoked.
pub async fn refresh(
    http: &reqwest::Client,
    c: &OAuthClient,
    refresh_token: &SecretString,
) -> Result<TokenSet, AuthError> {
    let client = Http(http);
    let rt = RefreshToken::new(refresh_token.expose_secret().to_string());
    let t = build(c)?
        .exchange_refresh_token(&rt)
        .request_async(&client)
        .await
        .map_err(endpoint_error)?;
    Ok(token_set(&t, Some(refresh_token.clone())))
}

/// The application's OAuth client for profile `p` from Secrets Manager.
pub async fn load_client(ctx: &Ctx, p: &OAuthProfile) -> Result<OAuthClient, SecretError> {
    crate::secrets::read_json(
        &ctx.clients.secrets,
        &p.client_secret_name(&ctx.config.stack),
        r#"{"client_id","client_secret","auth_uri","token_uri","redirect_uri"}"#,
    )
    .await
}

/// The tokens stored in the secret `arn`.
pub async fn read_tokens(ctx: &Ctx, arn: &str) -> Result<TokenSet, SecretError> {
    let s: StoredTokens = crate::secrets::read_json(
        &ctx.clients.secrets,
        arn,
        r#"{"access_token","refresh_token","expires_at"}"#,
    )
    .await?;
    Ok(TokenSet {
        access_token: s.access_token,
        refresh_token: s.refresh_token,
        expires_at: s.expires_at,
        issued_ms: s.issued_ms,
    })
}

/// Replace the tokens in the secret `arn` (a new secret version).
pub async fn write_tokens(ctx: &Ctx, arn: &str, t: &TokenSet) -> Result<(), SecretError> {
    ctx.clients
        .secrets
        .put_secret_value()
        .secret_id(arn)
        .secret_string(t.to_json())
        .send()
        .await
        .map_err(|e| SecretError::Unreadable {
            arn: arn.into(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    Ok(())
}

/// Store refreshed tokens in `arn` unless tokens issued later are recorded (a refresher that
/// lost its lease while the token endpoint answered must not put back an older refresh
/// token: Microsoft rotates them on every use). The generation lives in the leases table
/// (`token-gen:<arn>`, conditional put on `issued_ms`).
///
/// Errors: DynamoDB or Secrets Manager failure.
pub async fn store_refreshed(ctx: &Ctx, arn: &str, t: &TokenSet) -> Result<bool, AuthError> {
    let newest = ctx
        .store()
        .advance_generation(&format!("token-gen:{arn}"), t.issued_ms)
        .await
        .map_err(|e| AuthError::Endpoint(format!("token generation: {e}")))?;
    if newest {
        write_tokens(ctx, arn, t).await?;
    } else {
        tracing::warn!(
            secret = arn,
            "newer tokens are stored; these are not written"
        );
    }
    Ok(newest)
}

/// Store new tokens as the secret `name` (created, or updated when it exists); returns its ARN.
pub async fn store_tokens(ctx: &Ctx, name: &str, t: &TokenSet) -> Result<String, SecretError> {
    let sm = &ctx.clients.secrets;
    match sm
        .create_secret()
        .name(name)
        .secret_string(t.to_json())
        .send()
        .await
    {
        Ok(out) => Ok(out.arn().unwrap_or(name).to_string()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_exists_exception()) =>
        {
            write_tokens(ctx, name, t).await?;
            let d = sm
                .describe_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(|e| SecretError::Unreadable {
                    arn: name.into(),
                    reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                })?;
            Ok(d.arn().unwrap_or(name).to_string())
        }
        Err(e) => Err(SecretError::Unreadable {
            arn: name.into(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        }),
    }
}
