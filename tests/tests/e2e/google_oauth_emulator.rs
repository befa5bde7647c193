//! The Google OAuth 2.0 emulator: authorization code with state and PKCE, refresh without
//! rotation, invalid_grant after revocation, issued tokens required by the API.

use base64::Engine as _;
use calsync_e2e::emulators::google::{Config, GoogleEmulator};
use serde_json::{json, Value};
use sha2::Digest;

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

async fn setup(lifetime: u64) -> (GoogleEmulator, reqwest::Client) {
    let emu = GoogleEmulator::start(
        "127.0.0.1:0",
        Config {
            require_issued_tokens: true,
            access_token_lifetime_secs: lifetime,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    emu.add_calendar("primary", "Main", "UTC");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/emulator/oauth/clients", emu.url))
        .json(&json!({"client_id": "cid.apps.googleusercontent.com", "client_secret": "csecret", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    (emu, http)
}

async fn consent(
    emu: &GoogleEmulator,
    http: &reqwest::Client,
    challenge: &str,
    redirect: &str,
) -> reqwest::Response {
    http.get(format!("{}/o/oauth2/v2/auth", emu.url))
        .query(&[
            ("client_id", "cid.apps.googleusercontent.com"),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "https://www.googleapis.com/auth/calendar"),
            ("state", "xyz-state"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("access_type", "offline"),
        ])
        .send()
        .await
        .unwrap()
}

fn form<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn token(
    emu: &GoogleEmulator,
    http: &reqwest::Client,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let r = http
        .post(format!("{}/token", emu.url))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn code_flow_with_pkce_refresh_and_revocation() {
    let (emu, http) = setup(3599).await;
    let verifier = "a-very-long-random-verifier-string-of-at-least-43-characters-123";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));

    assert_eq!(
        consent(&emu, &http, &challenge, "http://evil.example/cb")
            .await
            .status()
            .as_u16(),
        400,
        "unregistered redirect"
    );
    let resp = consent(&emu, &http, &challenge, REDIRECT).await;
    assert_eq!(resp.status().as_u16(), 303, "redirect back to the app");
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz-state");
    let code = q["code"].clone();

    let base = [
        ("client_id", "cid.apps.googleusercontent.com"),
        ("client_secret", "csecret"),
        ("redirect_uri", REDIRECT),
    ];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        base.iter()
            .map(|(k, v)| (*k, v.to_string()))
            .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
            .collect()
    };

    let wrong = with(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("code_verifier", "not-the-verifier"),
    ]);
    let (status, err) = token(&emu, &http, &form(&wrong)).await;
    assert_eq!(
        (status, err["error"].clone()),
        (400, json!("invalid_grant"))
    );
    // The code was single-use: the failed exchange consumed it. Ask again.
    let resp = consent(&emu, &http, &challenge, REDIRECT).await;
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let good = with(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("code_verifier", verifier),
    ]);
    let (status, tokens) = token(&emu, &http, &form(&good)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3599);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (status, _) = token(&emu, &http, &form(&good)).await;
    assert_eq!(status, 400, "a code works once");

    let api = format!("{}/calendar/v3/calendars/primary/events", emu.url);
    assert_eq!(
        http.get(&api)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        http.get(&api)
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    let refresh_form = with(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]);
    let (status, refreshed) = token(&emu, &http, &form(&refresh_form)).await;
    assert_eq!(status, 200);
    assert!(
        refreshed.get("refresh_token").is_none(),
        "Google does not rotate refresh tokens"
    );
    assert_ne!(refreshed["access_token"], json!(access));
    let bad_secret: Vec<(&str, &str)> = form(&refresh_form)
        .into_iter()
        .map(|(k, v)| {
            if k == "client_secret" {
                (k, "nope")
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(
        token(&emu, &http, &bad_secret).await.1["error"],
        "invalid_client"
    );

    let r = http
        .post(format!("{}/emulator/oauth/revoke", emu.url))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (status, revoked) = token(&emu, &http, &form(&refresh_form)).await;
    assert_eq!(status, 400);
    assert_eq!(
        revoked,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
    let stats: Value = http
        .get(format!("{}/emulator/oauth/stats", emu.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["refresh_grants"], 1);
}

#[tokio::test]
async fn expired_access_tokens_are_rejected() {
    let (emu, http) = setup(0).await;
    let resp = consent(&emu, &http, "plain-challenge", REDIRECT).await;
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    // code_challenge_method S256 was requested with a challenge that is not a hash: the
    // verifier equal to the challenge must fail.
    let (status, _) = token(
        &emu,
        &http,
        &[
            ("client_id", "cid.apps.googleusercontent.com"),
            ("client_secret", "csecret"),
            ("redirect_uri", REDIRECT),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", "plain-challenge"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    let resp = consent(
        &emu,
        &http,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"v")),
        REDIRECT,
    )
    .await;
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let (status, tokens) = token(
        &emu,
        &http,
        &[
            ("client_id", "cid.apps.googleusercontent.com"),
            ("client_secret", "csecret"),
            ("redirect_uri", REDIRECT),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", "v"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let api = format!("{}/calendar/v3/calendars/primary/events", emu.url);
    let r = http
        .get(&api)
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "a token with expires_in 0 is already expired"
    );
}
