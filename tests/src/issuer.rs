//! A development token issuer for the local stack (`make serve`, `calsync-local token`, the
//! API tests): an Ed25519 key made at start, its JWKS served at
//! `<url>/.well-known/jwks.json`, and tokens signed with it (EdDSA, RFC 8037). The key lives
//! in memory only; `calsync-local serve` writes its private key to `.local/dev-issuer.key`
//! (mode 0600, a development key that signs nothing outside this machine) so that
//! `calsync-local token` can sign for the running server.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
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

/// What `calsync-local serve` leaves in `.local/dev-issuer.json` for `calsync-local token`:
/// the issuer URL, key id and private key (a development key of this machine only; the
/// file is mode 0600 and `.local/` is not in the repository).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct IssuerFile {
    /// Issuer URL.
    pub url: String,
    /// Key id.
    pub kid: String,
    /// PKCS#8 PEM of the Ed25519 key.
    pub key_pem: String,
}

impl IssuerFile {
    /// Where the running `serve` keeps it (`$CALSYNC_LOCAL_DIR` or `.local/`).
    pub fn path() -> std::path::PathBuf {
        std::path::PathBuf::from(
            std::env::var("CALSYNC_LOCAL_DIR").unwrap_or_else(|_| ".local".into()),
        )
        .join("dev-issuer.json")
    }

    /// Write it for `issuer` (mode 0600).
    pub fn save(issuer: &DevIssuer) -> anyhow::Result<std::path::PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = IssuerFile {
            url: issuer.url.clone(),
            kid: issuer.kid.clone(),
            key_pem: issuer.key_pem(),
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        out.write_all(serde_json::to_string(&f)?.as_bytes())?;
        Ok(path)
    }

    /// A token for `user` valid `ttl_secs`, signed with the saved key.
    ///
    /// Errors: no running `serve` left the file, or it is unreadable.
    pub fn token(user: i64, ttl_secs: i64) -> anyhow::Result<String> {
        let path = Self::path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}; start `make serve` first", path.display()))?;
        let f: IssuerFile = serde_json::from_str(&text)?;
        let key = SigningKey::from_pkcs8_pem(&f.key_pem)
            .map_err(|e| anyhow::anyhow!("dev issuer key: {e}"))?;
        let now = calsync::config::now_secs();
        let claims = json!({"iss": f.url, "aud": AUDIENCE, "sub": user.to_string(), "iat": now, "exp": now + ttl_secs});
        Ok(sign(&key, &f.kid, &claims))
    }
}
