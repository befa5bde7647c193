//! Who calls: the application user id, from a verified JWT bearer token (RFC 6750), never
//! from the request itself.
//!
//! The token is checked here even behind API Gateway's JWT authorizer, so the binary is safe
//! behind a Function URL and locally: signature against the issuer's JWKS (RFC 7517; RS256,
//! ES256, EdDSA…; symmetric keys and `alg: none` are refused), `iss`, `aud`, `exp` and `nbf`
//! (30 s leeway). The JWKS is cached for an hour and fetched again when a token names a key
//! id it does not hold (at most once a minute). Configuration (environment):
//! `CALSYNC_JWT_ISSUER`, `CALSYNC_JWT_AUDIENCE`, `CALSYNC_JWT_USER_CLAIM` (default `sub`;
//! e.g. `custom:userId`), `CALSYNC_JWKS_URL` (default `<issuer>/.well-known/jwks.json`).

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::RwLock;

use super::{ApiState, Problem};

/// How long a fetched JWKS is used before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// A token with an unknown key id fetches the JWKS again at most this often.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(60);
/// Largest JWKS document read (bytes).
const JWKS_MAX_BYTES: usize = 1 << 20;

/// The issuer the API trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Claim holding the application's integer user id (`sub`, `custom:userId`, …).
    pub user_claim: String,
    /// Where the issuer publishes its JWKS.
    pub jwks_url: String,
}

impl AuthConfig {
    /// From the environment (see the module docs); `None` when no issuer is configured, in
    /// which case every request is refused with 401.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let issuer = var("CALSYNC_JWT_ISSUER")?;
        Some(Self {
            jwks_url: var("CALSYNC_JWKS_URL").unwrap_or_else(|| {
                format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
            }),
            audience: var("CALSYNC_JWT_AUDIENCE").unwrap_or_else(|| "calsync".into()),
            user_claim: var("CALSYNC_JWT_USER_CLAIM").unwrap_or_else(|| "sub".into()),
            issuer,
        })
    }
}

/// Why a token was refused (the 401's detail; never echoes the token).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token (Authorization: Bearer <JWT>)")]
    Missing,
    /// The API has no issuer configured.
    #[error("API authentication is not configured (CALSYNC_JWT_ISSUER)")]
    NotConfigured,
    /// Signature, issuer, audience, expiry or shape is wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The JWKS could not be read.
    #[error("cannot read the issuer's keys: {0}")]
    Jwks(String),
}

struct CachedKeys {
    set: JwkSet,
    fetched: Instant,
}

/// Verifies bearer tokens against one issuer; shared by all requests of a container.
pub struct Verifier {
    cfg: Option<AuthConfig>,
    http: reqwest::Client,
    keys: RwLock<Option<CachedKeys>>,
}

impl Verifier {
    /// A verifier for `cfg` (`None`: refuse everything) fetching keys with `http`.
    pub fn new(cfg: Option<AuthConfig>, http: reqwest::Client) -> Self {
        Self {
            cfg,
            http,
            keys: RwLock::new(None),
        }
    }

    /// The claim holding the user id (`sub` when unconfigured).
    pub fn user_claim(&self) -> &str {
        self.cfg.as_ref().map_or("sub", |c| c.user_claim.as_str())
    }

    /// The user id a valid token carries.
    ///
    /// Errors: [`AuthError`]; a user claim that is not an integer (or a string of one) is
    /// [`AuthError::Invalid`].
    pub async fn verify(&self, token: &str) -> Result<i64, AuthError> {
        let cfg = self.cfg.as_ref().ok_or(AuthError::NotConfigured)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(AuthError::Invalid(
                "symmetric algorithms are not accepted".into(),
            ));
        }
        let jwk = self.key_for(cfg, header.kid.as_deref()).await?;
        if jwk
            .common
            .key_algorithm
            .is_some_and(|a| a.to_string() != format!("{:?}", header.alg))
        {
            return Err(AuthError::Invalid(
                "the token's alg does not match its key".into(),
            ));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&cfg.issuer]);
        v.set_audience(&[&cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = 30;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claim = data.claims.get(&cfg.user_claim);
        claim
            .and_then(|c| {
                c.as_i64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or_else(|| {
                AuthError::Invalid(format!(
                    "claim {:?} must hold an integer user id",
                    cfg.user_claim
                ))
            })
    }

    async fn key_for(&self, cfg: &AuthConfig, kid: Option<&str>) -> Result<Jwk, AuthError> {
        let pick = |set: &JwkSet| -> Option<Jwk> {
            match kid {
                Some(k) => set.find(k).cloned(),
                None if set.keys.len() == 1 => set.keys.first().cloned(),
                None => None,
            }
        };
        let stale = {
            let guard = self.keys.read().await;
            match guard.as_ref() {
                Some(c) if c.fetched.elapsed() < JWKS_TTL => {
                    if let Some(k) = pick(&c.set) {
                        return Ok(k);
                    }
                    c.fetched.elapsed() >= JWKS_MIN_REFETCH
                }
                _ => true,
            }
        };
        if !stale {
            return Err(AuthError::Invalid("unknown key id".into()));
        }
        let set = self.fetch_jwks(cfg).await?;
        let found = pick(&set);
        *self.keys.write().await = Some(CachedKeys {
            set,
            fetched: Instant::now(),
        });
        found.ok_or_else(|| AuthError::Invalid("unknown key id".into()))
    }

    async fn fetch_jwks(&self, cfg: &AuthConfig) -> Result<JwkSet, AuthError> {
        let resp = self
            .http
            .get(&cfg.jwks_url)
            .send()
            .await
            .map_err(|e| AuthError::Jwks(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(AuthError::Jwks(format!("HTTP {}", resp.status().as_u16())));
        }
        let body = crate::net::read_capped(resp, JWKS_MAX_BYTES, "JWKS")
            .await
            .map_err(|e| AuthError::Jwks(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| AuthError::Jwks(e.to_string()))
    }
}

/// The verified application user making the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub i64);

/// The bearer token of a request, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, st: &ApiState) -> Result<Self, Problem> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(*c);
        }
        let c = authenticate(st, &parts.headers).await?;
        parts.extensions.insert(c);
        Ok(c)
    }
}

/// Verify the request's bearer token.
///
/// Errors: 401 problem naming what is wrong.
pub async fn authenticate(
    st: &ApiState,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, Problem> {
    let token =
        bearer(headers).ok_or_else(|| Problem::unauthorized(AuthError::Missing.to_string()))?;
    st.auth.verify(token).await.map(Caller).map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        Problem::unauthorized(e.to_string())
    })
}
