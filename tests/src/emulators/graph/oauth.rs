//! Microsoft identity platform v2 emulator (provider-semantics §2.9,
//! https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow,
//! …/refresh-tokens):
//!
//! - `GET /common/oauth2/v2.0/authorize?client_id&response_type=code&redirect_uri&scope&state
//!   &code_challenge&code_challenge_method` consents at once and redirects (302) with `code`
//!   and `state`; an unregistered redirect URI is 400 AADSTS50011.
//! - `POST /common/oauth2/v2.0/token` (form): `authorization_code` (single use: a second use
//!   is AADSTS54005; PKCE `S256` checked, AADSTS501481) and `refresh_token`. Every answer
//!   carries `token_type, scope, expires_in, ext_expires_in, access_token` and, when the scope
//!   had `offline_access`, a **new** `refresh_token` (they rotate on every use; old ones stay
//!   valid, as documented). A code, and every token issued for it, carries the account that
//!   signed in (`GraphEmulator::sign_in_next_as`; else the default mailbox). Errors are
//!   `{"error","error_description","error_codes","timestamp","trace_id","correlation_id"}`;
//!   a wrong secret is 401 AADSTS7000215.
//! - Control: `POST /emulator/oauth/clients`, `POST /emulator/oauth/grant-error
//!   {"code": 70008|700082|50173, "refresh_token"?}` (that refresh token, or every one, now
//!   fails with `invalid_grant` AADSTS<code>), `POST /emulator/oauth/expire-access`,
//!   `GET /emulator/oauth/stats` (`refresh_grants`, `latest_refresh_token`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
    challenge: Option<String>,
    /// The account that consented (`None`: the emulator's default mailbox).
    account: Option<String>,
}

/// A refresh token's grant.
#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: String,
    scope: String,
    /// The AADSTS code it fails with from now on (`control_grant_error`).
    failing: Option<u32>,
    account: Option<String>,
}

/// An access token's expiry and account (`None`: the default mailbox).
#[derive(Debug, Clone)]
struct AccessGrant {
    expires: Instant,
    account: Option<String>,
}

/// OAuth state of the emulator.
#[derive(Debug, Default)]
pub(crate) struct OAuth {
    clients: HashMap<String, Client>,
    codes: HashMap<String, CodeGrant>,
    used_codes: std::collections::HashSet<String>,
    refresh: HashMap<String, RefreshGrant>,
    access: HashMap<String, AccessGrant>,
    refresh_grants: u64,
    latest_refresh: Option<String>,
    all_fail: Option<u32>,
    /// The account the next consent signs in as (`GraphEmulator::sign_in_next_as`).
    pub(crate) next_account: Option<String>,
}

impl OAuth {
    /// Is `token` an unexpired access token issued here?
    pub(crate) fn access_valid(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|g| Instant::now() < g.expires)
    }

    /// The account an access token was issued to (`None`: the default mailbox, also for
    /// tokens not issued here).
    pub(crate) fn account_of(&self, token: &str) -> Option<&str> {
        self.access.get(token).and_then(|g| g.account.as_deref())
    }
}

fn aad_text(code: u32) -> &'static str {
    match code {
        70008 => "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        700082 => "The refresh token has expired due to inactivity. The token was issued on 2026-08-01T00:00:00Z and was inactive for 90.00:00:00.",
        50173 => "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
        54005 => "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        501481 => "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        50011 => "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
        7000215 => "Invalid client secret provided.",
        _ => "The request is not valid.",
    }
}

fn aad_error(status: StatusCode, error: &str, code: u32) -> Response {
    let body = json!({"error": error,
        "error_description": format!("AADSTS{code}: {} Trace ID: {} Correlation ID: {} Timestamp: {}",
            aad_text(code), uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ")),
        "error_codes": [code], "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": uuid::Uuid::new_v4().to_string(), "correlation_id": uuid::Uuid::new_v4().to_string()});
    (status, Json(body)).into_response()
}

fn random(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub(crate) async fn authorize(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let Some(client) = s.oauth.clients.get(&client_id) else {
        return aad_error(StatusCode::BAD_REQUEST, "unauthorized_client", 700016);
    };
    if !client.redirect_uris.contains(&redirect_uri) {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_request", 50011);
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return aad_error(StatusCode::BAD_REQUEST, "unsupported_response_type", 900144);
    }
    let challenge = match (
        q.get("code_challenge"),
        q.get("code_challenge_method").map(String::as_str),
    ) {
        (Some(c), Some("S256")) => Some(c.clone()),
        (Some(_), _) => return aad_error(StatusCode::BAD_REQUEST, "invalid_request", 501491),
        (None, _) => None,
    };
    let code = random("M.C5");
    let account = s.oauth.next_account.take();
    s.oauth.codes.insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            scope: q.get("scope").cloned().unwrap_or_default(),
            challenge,
            account,
        },
    );
    let mut target = reqwest::Url::parse(&redirect_uri).expect("registered redirect URIs are URLs");
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.get("state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, target.to_string())],
    )
        .into_response()
}

pub(crate) async fn token(
    State(st): State<Shared>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let lifetime = Duration::from_secs(s.config.access_token_lifetime_secs);
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    if s.oauth
        .clients
        .get(&client_id)
        .is_none_or(|c| Some(&c.secret) != f.get("client_secret"))
    {
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
    }
    let (scope, account) = match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = f.get("code").cloned().unwrap_or_default();
            if s.oauth.used_codes.contains(&code) {
                return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", 54005);
            }
            let Some(g) = s.oauth.codes.remove(&code) else {
                return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", 70008);
            };
            s.oauth.used_codes.insert(code);
            if g.client_id != client_id || f.get("redirect_uri") != Some(&g.redirect_uri) {
                return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", 50011);
            }
            let pkce_ok = match (&g.challenge, f.get("code_verifier")) {
                (None, _) => true,
                (Some(c), Some(v)) => {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(v.as_bytes()))
                        == *c
                }
                (Some(_), None) => false,
            };
            if !pkce_ok {
                return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", 501481);
            }
            (g.scope, g.account)
        }
        Some("refresh_token") => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            let Some(g) = s.oauth.refresh.get(&rt).cloned() else {
                return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", 9002313);
            };
            if let Some(code) = g.failing.or(s.oauth.all_fail) {
                return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", code);
            }
            if g.client_id != client_id {
                return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", 70000);
            }
            s.oauth.refresh_grants += 1;
            (g.scope, g.account)
        }
        _ => return aad_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", 70003),
    };
    let access = random("EwBwA8l6");
    s.oauth.access.insert(
        access.clone(),
        AccessGrant {
            expires: Instant::now() + lifetime,
            account: account.clone(),
        },
    );
    let mut body = json!({"token_type": "Bearer", "scope": scope, "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(), "access_token": access});
    if scope.split(' ').any(|p| p == "offline_access") {
        // A new refresh token on every answer; the old one is not revoked.
        let rt = random("M.R3_BAY.");
        s.oauth.refresh.insert(
            rt.clone(),
            RefreshGrant {
                client_id,
                scope,
                failing: None,
                account,
            },
        );
        s.oauth.latest_refresh = Some(rt.clone());
        body["refresh_token"] = json!(rt);
    }
    Json(body).into_response()
}

/// `{"client_id","client_secret","redirect_uris":[...]}`
pub(crate) async fn control_client(State(st): State<Shared>, Json(b): Json<Value>) -> Response {
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

/// `{"code": 70008, "refresh_token"?}`: that refresh token (or all) fails from now on.
pub(crate) async fn control_grant_error(
    State(st): State<Shared>,
    Json(b): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let code = b["code"].as_u64().unwrap_or(70008) as u32;
    match b["refresh_token"].as_str() {
        Some(t) => match s.oauth.refresh.get_mut(t) {
            Some(g) => g.failing = Some(code),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        None => s.oauth.all_fail = Some(code),
    }
    s.oauth.access.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// Every access token stops working before its expiry; refresh tokens stay valid.
pub(crate) async fn control_expire_access(State(st): State<Shared>) -> Response {
    st.lock().expect("emulator lock").oauth.access.clear();
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn control_stats(State(st): State<Shared>) -> Response {
    let s = st.lock().expect("emulator lock");
    Json(json!({"refresh_grants": s.oauth.refresh_grants, "latest_refresh_token": s.oauth.latest_refresh}))
        .into_response()
}
