//! Google on the local stack: the emulator, the webhook-receiver routes served over HTTP (the
//! same [`calsync::http_api::route`] the Lambda runs), the OAuth client in Secrets Manager,
//! and connecting a calendar through the real consent round trip.

use calsync::config::Ctx;
use calsync::model::Link;
use calsync::provider::google::GoogleCalendar;
use serde_json::json;

use crate::emulators::google::{Config, GoogleEmulator};

/// OAuth client id registered with the emulator (a local demo value).
pub const CLIENT_ID: &str = "calsync-local.apps.googleusercontent.com";
/// Its client secret (a local demo value, not a credential anywhere).
pub const CLIENT_SECRET: &str = "local-demo-client-secret";

/// The webhook-receiver routes on a local port.
pub struct WebhookServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookServer {
    /// Serve [`calsync::http_api::route`] for `ctx` on `listener`.
    pub async fn start(ctx: Ctx, listener: tokio::net::TcpListener) -> anyhow::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let ctx = std::sync::Arc::new(ctx);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let ctx = ctx.clone();
            async move {
                let (parts, _) = req.into_parts();
                let a = calsync::http_api::route(
                    &ctx,
                    parts.method,
                    parts.uri.path().to_string(),
                    parts.uri.query().unwrap_or("").to_string(),
                    parts.headers,
                )
                .await;
                let mut resp = axum::http::Response::builder().status(a.status);
                if let Some(l) = a.location {
                    resp = resp.header("location", l);
                }
                resp.body(axum::body::Body::from(a.body))
                    .expect("static response parts")
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, task })
    }

    /// The Google push route.
    pub fn push_url(&self) -> String {
        format!("{}/webhooks/google", self.url)
    }
}

/// Google on the local stack: emulator, webhook server, and a context whose webhook URL
/// points at that server.
pub struct LocalGoogle {
    /// The emulator.
    pub emu: GoogleEmulator,
    /// The webhook receiver.
    pub hooks: WebhookServer,
    /// Context with `webhook_url` set.
    pub ctx: Ctx,
}

impl LocalGoogle {
    /// Start the emulator (API accepting only tokens it issued) and the webhook server,
    /// register the OAuth client with the emulator and store it in Secrets Manager.
    pub async fn start(base: &Ctx, config: Config) -> anyhow::Result<Self> {
        let emu = GoogleEmulator::start(
            "127.0.0.1:0",
            Config {
                require_issued_tokens: true,
                ..config
            },
        )
        .await?;
        let mut ctx = base.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        ctx.config.webhook_url = Some(format!("http://{}/webhooks/google", listener.local_addr()?));
        let hooks = WebhookServer::start(ctx.clone(), listener).await?;
        let redirect = format!("{}/oauth/google/callback", hooks.url);
        let http = reqwest::Client::new();
        http.post(format!("{}/emulator/oauth/clients", emu.url))
            .json(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect]}))
            .send()
            .await?
            .error_for_status()?;
        let client = json!({
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "auth_uri": format!("{}/o/oauth2/v2/auth", emu.url),
            "token_uri": format!("{}/token", emu.url),
            "redirect_uri": redirect,
            "api_root": format!("{}/calendar/v3", emu.url),
        });
        put_secret(&ctx, &ctx.config.google_client_secret, &client.to_string()).await?;
        Ok(Self { emu, hooks, ctx })
    }

    /// Connect the emulator calendar `calendar_id` (created here) to `group` through the
    /// consent round trip: start → consent page (auto-consent) → redirect to our callback.
    pub async fn connect(
        &self,
        group: &str,
        user_id: i64,
        calendar_id: &str,
        name: &str,
    ) -> anyhow::Result<Link> {
        self.emu.add_calendar(calendar_id, name, "Europe/Berlin");
        let start = format!(
            "{}/oauth/google/start?group_id={group}&user_id={user_id}&calendar_id={calendar_id}&display_name={name}",
            self.hooks.url
        );
        // Follows: our start (302) → emulator consent (302) → our callback (200).
        let resp = reqwest::Client::new().get(start).send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        anyhow::ensure!(status.is_success(), "connect failed: {status} {body}");
        let link_id = body
            .strip_prefix("connected: link ")
            .ok_or_else(|| anyhow::anyhow!("unexpected callback answer {body:?}"))?;
        self.ctx
            .store()
            .get_link(link_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("link {link_id} not stored"))
    }

    /// A provider for `link` with its current access token, acting as calsync does.
    pub async fn provider(&self, link: &Link) -> anyhow::Result<GoogleCalendar> {
        let arn = link.secret_arn.as_deref().unwrap_or_default();
        let token = calsync::oauth::access_token(&self.ctx, arn, 60).await?;
        Ok(GoogleCalendar::new(
            self.ctx.clients.http.clone(),
            &link.url,
            token,
            arn,
        )?)
    }

    /// A user's own Google client (another app): raw API calls with a fresh token.
    pub async fn user_api(&self, link: &Link) -> anyhow::Result<UserApi> {
        let arn = link.secret_arn.as_deref().unwrap_or_default();
        let token = calsync::oauth::access_token(&self.ctx, arn, 60).await?;
        use secrecy::ExposeSecret;
        Ok(UserApi {
            events: format!("{}/events", link.url),
            token: token.expose_secret().to_string(),
            http: reqwest::Client::new(),
        })
    }
}

/// `sendUpdates` of the user's own writes (a person may notify guests; calsync never does), so
/// tests can tell them from calsync's writes in the emulator's record.
pub const USER_SEND_UPDATES: &str = "externalOnly";

/// Raw Google API access, as the user's own apps would change their calendar.
pub struct UserApi {
    events: String,
    token: String,
    http: reqwest::Client,
}

impl UserApi {
    /// `events.list`, all pages.
    pub async fn list(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut q = vec![("maxResults".to_string(), "2500".to_string())];
            if let Some(p) = &page {
                q.push(("pageToken".into(), p.clone()));
            }
            let v: serde_json::Value = self
                .http
                .get(&self.events)
                .query(&q)
                .bearer_auth(&self.token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            out.extend(v["items"].as_array().cloned().unwrap_or_default());
            match v["nextPageToken"].as_str() {
                Some(p) => page = Some(p.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// `events.patch` of one event.
    pub async fn patch(
        &self,
        id: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .http
            .patch(format!("{}/{id}", self.events))
            .query(&[("sendUpdates", USER_SEND_UPDATES)])
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// `events.insert`.
    pub async fn insert(&self, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .http
            .post(&self.events)
            .query(&[("sendUpdates", USER_SEND_UPDATES)])
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

async fn put_secret(ctx: &Ctx, name: &str, value: &str) -> anyhow::Result<()> {
    let sm = &ctx.clients.secrets;
    if sm
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .is_err()
    {
        sm.put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await?;
    }
    Ok(())
}

/// Occurrences of a set of series between 1970 and 2040 (corpus calendars lie in the past),
/// at most 2,000 per series.
pub fn all_occurrences<'a>(
    series: impl IntoIterator<Item = &'a calsync::ical::EventSeries>,
) -> std::collections::BTreeSet<calsync::ical::Occurrence> {
    let from = chrono::DateTime::from_timestamp(0, 0).expect("epoch");
    let to = chrono::DateTime::from_timestamp(2_208_988_800, 0).expect("2040");
    series
        .into_iter()
        .flat_map(|s| s.occurrences(from, to, 2_000).0)
        .collect()
}

/// The events of a Google calendar as calsync reads them, by UID.
pub async fn google_series(
    provider: &GoogleCalendar,
) -> anyhow::Result<Vec<calsync::ical::EventSeries>> {
    use calsync::provider::Provider;
    let listing = provider.pull(None).await?;
    anyhow::ensure!(
        listing.unreadable.is_empty(),
        "unreadable: {:?}",
        listing.unreadable
    );
    let mut out = Vec::new();
    for r in listing.changed {
        out.push(calsync::ical::EventSeries::parse_single(
            &r.href,
            r.data.as_deref().unwrap_or(""),
        )?);
    }
    out.sort_by(|a, b| a.uid.cmp(&b.uid));
    Ok(out)
}
