//! A development token issuer for the local stack (`make serve`, `calsync-local token`, the
//! API tests): an Ed25519 key made at start, its JWKS served at
//! `<url>/.well-known/jwks.json`, and tokens signed with it (EdDSA, RFC 8037). The key lives
//! in memory only; `calsync-local serve` writes its private key to `.local/dev-issuer.key`
//! (mode 0600, a development key that signs nothing outside this machine) so that
//! `calsync-local token` can sign for the running server.

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

/// Audience of the development tokens (the API's default `CALSYNC_JWT_AUDIENCE`).
pub const AUDIENCE: &str = "calsync";

/// A running development issuer.
pub struct DevIssuer {
    /// Its issuer URL (`iss`), e.g. `http://127.0.0.1:41234`.
    pub url: String,
    key: SigningKey,
    kid: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh random Ed25519 key.
pub fn new_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("OS randomness");
    SigningKey::from_bytes(&seed)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWKS of `key` under key id `kid`.
pub fn jwks(key: &SigningKey, kid: &str) -> Value {
    json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
        "x": b64(key.verifying_key().as_bytes()),
    }]})
}

/// Sign `claims` with `key` as `kid` (EdDSA).
pub fn sign(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let der = key.to_pkcs8_der().expect("PKCS#8 encoding");
    let mut h = Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(der.as_bytes())).expect("signing")
}

impl DevIssuer {
    /// Serve a new issuer on `listener` (a fresh key, or `key`).
    pub async fn start(
        listener: tokio::net::TcpListener,
        key: Option<SigningKey>,
    ) -> anyhow::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let key = key.unwrap_or_else(new_key);
        let kid = hex::encode(&key.verifying_key().as_bytes()[..8]);
        let doc = jwks(&key, &kid);
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            key,
            kid,
            task,
        })
    }

    /// The API's trust settings for this issuer.
    pub fn auth_config(&self) -> calsync::api::auth::AuthConfig {
        calsync::api::auth::AuthConfig {
            issuer: self.url.clone(),
            audience: AUDIENCE.into(),
            user_claim: "sub".into(),
            jwks_url: format!("{}/.well-known/jwks.json", self.url),
        }
    }

    /// The standard claims for `user` valid for `ttl_secs` from now.
    pub fn claims(&self, user: i64, ttl_secs: i64) -> Value {
        let now = calsync::config::now_secs();
        json!({"iss": self.url, "aud": AUDIENCE, "sub": user.to_string(), "iat": now, "exp": now + ttl_secs})
    }

    /// A token for `user`, valid for an hour.
    pub fn token(&self, user: i64) -> String {
        self.sign(&self.claims(user, 3600))
    }

    /// `claims` signed by this issuer's key.
    pub fn sign(&self, claims: &Value) -> String {
        sign(&self.key, &self.kid, claims)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8 PEM (for `calsync-local token`).
    pub fn key_pem(&self) -> String {
        self.key
            .to_pkcs8_pem(Default::default())
            .expect("PEM encoding")
            .to_string()
    }
}
