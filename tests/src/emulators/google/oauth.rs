//! Google OAuth 2.0 emulator: the consent endpoint (auto-consent) and the token endpoint.
//!
//! Held to https://developers.google.com/identity/protocols/oauth2/web-server and
//! provider-semantics §1.9:
//! - `GET /o/oauth2/v2/auth?client_id&redirect_uri&response_type=code&scope&state
//!   &code_challenge&code_challenge_method&access_type` redirects (302) to the registered
//!   `redirect_uri` with `code` and `state`; an unregistered redirect URI is a 400
//!   `redirect_uri_mismatch`.
//! - `POST /token` (form): `grant_type=authorization_code` (one-time code, `redirect_uri`
//!   must match, PKCE `S256`/`plain` verified) answers `{access_token, expires_in, scope,
//!   token_type:"Bearer"}` plus `refresh_token` when `access_type=offline`;
//!   `grant_type=refresh_token` answers a new access token and **no** new refresh token
//!   (Google does not rotate); a revoked or unknown refresh token is 400
//!   `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`;
//!   a wrong client secret is 401 `invalid_client`.
//! - `POST /revoke` (`token=`): Google's revocation endpoint (RFC 7009); it ends the whole
//!   grant of the token's account to the client, every refresh token of it; 400
//!   `invalid_token` for an unknown or revoked token.
//! - Control: `POST /emulator/oauth/clients`, `POST /emulator/oauth/revoke`,
//!   `POST /emulator/oauth/expire-access` (access tokens die early, grants stay),
//!   `GET /emulator/oauth/stats` (refresh grants served).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest;

use super::Shared;

#[derive(Debug, Clone)]
struct Client {
    secret: String,
    redirect_uris: Vec<String>,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    scope: String,
    challenge: Option<(String, String)>,
    offline: bool,
    /// The Google account that consented (`None`: the emulator's default account).
    account: Option<String>,
}

#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: String,
    scope: String,
    revoked: bool,
    account: Option<String>,
}

/// An access token issued here: until when, and to which account (`None`: the default).
#[derive(Debug, Clone)]
struct AccessGrant {
    expires: Instant,
    account: Option<String>,
}

/// OAuth state of the emulator.
#[derive(Debug, Default)]
pub(super) struct OAuth {
    clients: HashMap<String, Client>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    access: HashMap<String, AccessGrant>,
    refresh_grants: u64,
    revocations: u64,
    /// The account the next consent signs in as (`GoogleEmulator::sign_in_next_as`).
    pub(super) next_account: Option<String>,
}

impl OAuth {
    /// Is `token` an unexpired access token issued here?
    pub(super) fn access_valid(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|g| Instant::now() < g.expires)
    }

    /// The account an access token was issued to (`None`: the default account, also for
    /// tokens not issued here).
    pub(super) fn account_of(&self, token: &str) -> Option<&str> {
        self.access.get(token).and_then(|g| g.account.as_deref())
    }

    /// End the grant of `account` to `client_id` (`None`: every client): Google keeps one
    /// grant per account and client, however many consents gave it refresh tokens, and a
    /// revocation ends the whole grant (RFC 7009 §2.1: "other tokens based on the same
    /// authorization grant"), so every refresh token of it stops working. Access tokens
    /// all end (the emulator does not tie them to a grant).
    fn revoke_grant(&mut self, client_id: Option<&str>, account: &Option<String>) {
        for g in self.refresh.values_mut() {
            if client_id.is_none_or(|c| c == g.client_id) && g.account == *account {
                g.revoked = true;
            }
        }
        self.access.clear();
    }

    /// Revoke the grant that `token` (a refresh or an access token) belongs to; `false`
    /// when the token is unknown or already revoked.
    fn revoke_token(&mut self, token: &str) -> bool {
        if let Some(g) = self.refresh.get(token).filter(|g| !g.revoked).cloned() {
            self.revoke_grant(Some(&g.client_id), &g.account);
            return true;
        }
        match self.access.get(token).cloned() {
            Some(a) => {
                self.revoke_grant(None, &a.account);
                true
            }
            None => false,
        }
    }
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub(super) async fn authorize(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let Some(client) = s.oauth.clients.get(&client_id) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    };
    if !client.redirect_uris.contains(&redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "The redirect URI in the request does not match the ones authorized for the OAuth client.");
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            "response_type must be code",
        );
    }
    let challenge = q.get("code_challenge").map(|c| {
        (
            c.clone(),
            q.get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into()),
        )
    });
    let code = random_token("4/0A");
    let scope = q.get("scope").cloned().unwrap_or_default();
    let offline = q.get("access_type").map(String::as_str) == Some("offline");
    let account = s.oauth.next_account.take();
    s.oauth.codes.insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            scope: scope.clone(),
            challenge,
            offline,
            account,
        },
    );
    let mut target = reqwest::Url::parse(&redirect_uri).expect("registered redirect URIs are URLs");
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("scope", &scope);
    if let Some(state) = q.get("state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(target.as_str()).into_response()
}

fn pkce_ok(challenge: &Option<(String, String)>, verifier: Option<&String>) -> bool {
    match (challenge, verifier) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((c, m)), Some(v)) if m == "S256" => {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(v.as_bytes()))
                == *c
        }
        (Some((c, _)), Some(v)) => c == v,
    }
}

pub(super) async fn token(
    State(st): State<Shared>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let lifetime = Duration::from_secs(s.config.access_token_lifetime_secs);
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    let secret_ok = s
        .oauth
        .clients
        .get(&client_id)
        .is_some_and(|c| Some(&c.secret) == f.get("client_secret"));
    if !secret_ok {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    let issue_access = |s: &mut super::Inner, account: Option<String>| {
        let t = random_token("ya29.");
        s.oauth.access.insert(
            t.clone(),
            AccessGrant {
                expires: Instant::now() + lifetime,
                account,
            },
        );
        t
    };
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = f.get("code").cloned().unwrap_or_default();
            // Codes are single-use: taken out whatever the outcome.
            let Some(grant) = s.oauth.codes.remove(&code) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Malformed auth code.",
                );
            };
            if grant.client_id != client_id
                || f.get("redirect_uri") != Some(&grant.redirect_uri)
                || !pkce_ok(&grant.challenge, f.get("code_verifier"))
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
            }
            let access = issue_access(&mut s, grant.account.clone());
            let mut body = json!({"access_token": access, "expires_in": lifetime.as_secs(), "scope": grant.scope, "token_type": "Bearer"});
            if grant.offline {
                let refresh = random_token("1//0g");
                s.oauth.refresh.insert(
                    refresh.clone(),
                    RefreshGrant {
                        client_id,
                        scope: grant.scope,
                        revoked: false,
                        account: grant.account,
                    },
                );
                body["refresh_token"] = json!(refresh);
            }
            Json(body).into_response()
        }
        Some("refresh_token") => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            let grant = s.oauth.refresh.get(&rt).cloned();
            match grant {
                Some(g) if !g.revoked && g.client_id == client_id => {
                    s.oauth.refresh_grants += 1;
                    let access = issue_access(&mut s, g.account);
                    Json(json!({"access_token": access, "expires_in": lifetime.as_secs(), "scope": g.scope, "token_type": "Bearer"})).into_response()
                }
                _ => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Token has been expired or revoked.",
                ),
            }
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type",
        ),
    }
}

/// `{"client_id","client_secret","redirect_uris":[...]}`
pub(super) async fn control_client(State(st): State<Shared>, Json(b): Json<Value>) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let (Some(id), Some(secret)) = (b["client_id"].as_str(), b["client_secret"].as_str()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let redirect_uris = b["redirect_uris"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    s.oauth.clients.insert(
        id.into(),
        Client {
            secret: secret.into(),
            redirect_uris,
        },
    );
    StatusCode::CREATED.into_response()
}

/// `POST /revoke` (`token` in the form body or the query), Google's token revocation
/// endpoint (https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke,
/// RFC 7009): revoking a refresh token ends the account's whole grant to the client (every
/// refresh token of it) and the access tokens; revoking an access token ends its account's
/// grant too ("If the token is an access token and it has a corresponding refresh token,
/// the refresh token will also be revoked"). Unknown or already revoked: 400
/// `invalid_token`.
pub(super) async fn revoke(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    s.oauth.revocations += 1;
    let token = f
        .get("token")
        .or_else(|| q.get("token"))
        .cloned()
        .unwrap_or_default();
    if s.oauth.revoke_token(&token) {
        StatusCode::OK.into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_token", "error_description": "Token expired or revoked"}),
            ),
        )
            .into_response()
    }
}

/// `{"refresh_token": "..."}`: the user removes the app's access in their Google account:
/// the grant that token belongs to ends, with every refresh and access token of it.
pub(super) async fn control_revoke(State(st): State<Shared>, Json(b): Json<Value>) -> Response {
    let mut s = st.lock().expect("emulator lock");
    match b["refresh_token"]
        .as_str()
        .and_then(|t| s.oauth.refresh.get(t))
        .cloned()
    {
        Some(g) => {
            s.oauth.revoke_grant(Some(&g.client_id), &g.account);
            StatusCode::NO_CONTENT.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Every access token stops working before its expiry (a session ended early); refresh
/// grants stay valid.
pub(super) async fn control_expire_access(State(st): State<Shared>) -> Response {
    st.lock().expect("emulator lock").oauth.access.clear();
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn control_stats(State(st): State<Shared>) -> Response {
    let s = st.lock().expect("emulator lock");
    Json(json!({"refresh_grants": s.oauth.refresh_grants, "revocations": s.oauth.revocations}))
        .into_response()
}
