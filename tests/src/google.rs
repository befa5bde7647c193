//! Google on the local stack: the emulator, the webhook-receiver routes served over HTTP (the
//! same [`calsync::http_api::route`] the Lambda runs), the OAuth client in Secrets Manager,
//! and connecting a calendar through the real consent round trip.

use calsync::config::Ctx;
use calsync::model::Link;
use calsync::provider::google::{GoogleCalendar, OAUTH as GOOGLE_OAUTH};
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
    /// Answers of completed OAuth callbacks (status and the consent page), in order.
    callbacks: tokio::sync::watch::Receiver<Vec<(u16, String)>>,
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
        let (done, callbacks) = tokio::sync::watch::channel(Vec::new());
        let done = std::sync::Arc::new(done);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (ctx, done) = (ctx.clone(), done.clone());
            async move {
                let (parts, body) = req.into_parts();
                let callback = parts.uri.path().ends_with("/callback");
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                let req = calsync::http_api::HttpRequest {
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or("").to_string(),
                    method: parts.method,
                    headers: parts.headers,
                    body,
                };
                let a = calsync::http_api::route(&ctx, req).await;
                if callback {
                    let body = a.body.clone();
                    done.send_modify(|v| v.push((a.status, body)));
                }
                let mut resp = axum::http::Response::builder().status(a.status);
                for (name, value) in a.headers {
                    resp = resp.header(name, value);
                }
                resp.body(axum::body::Body::from(a.body))
                    .expect("static response parts")
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            callbacks,
            task,
        })
    }

    /// Completed OAuth callbacks so far.
    pub fn callbacks_seen(&self) -> usize {
        self.callbacks.borrow().len()
    }

    /// Wait for the OAuth callback after the first `after` ones (woken by it, no polling);
    /// returns the new link id, or the refusal as an error; `timeout` bounds the wait.
    pub async fn wait_connected(
        &self,
        after: usize,
        timeout: std::time::Duration,
    ) -> anyhow::Result<String> {
        let mut rx = self.callbacks.clone();
        let seen = tokio::time::timeout(timeout, rx.wait_for(|v| v.len() > after))
            .await
            .map_err(|_| anyhow::anyhow!("no OAuth callback within {} s", timeout.as_secs()))?
            .map_err(|_| anyhow::anyhow!("webhook server stopped"))?;
        let (status, body) = seen[after].clone();
        anyhow::ensure!(status == 200, "connect refused: {status} {body}");
        calsync::consent_page::link_id_of(&body)
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("unexpected callback answer {body:?}"))
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
    /// Context with `webhook_base` set.
    pub ctx: Ctx,
}

/// The emulator's links go with it ([`crate::forget_links_at`]).
impl Drop for LocalGoogle {
    fn drop(&mut self) {
        crate::forget_links_at(&self.emu.url);
    }
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
        ctx.config.webhook_base = Some(format!("http://{}", listener.local_addr()?));
        let hooks = WebhookServer::start(ctx.clone(), listener).await?;
        let redirect = format!("{}/oauth/google/callback", hooks.url);
        let http = reqwest::Client::new();
        http.post(format!("{}/emulator/oauth/clients", emu.url))
            .json(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect]}))
            .send()
            .await?
            .error_for_status()?;
        let client = client_json(&emu.url, &redirect);
        put_secret(
            &ctx,
            &GOOGLE_OAUTH.client_secret_name(&ctx.config.stack),
            &client.to_string(),
        )
        .await?;
        Ok(Self { emu, hooks, ctx })
    }

    /// Register `redirect` as the OAuth client's redirect URI, with the emulator and in
    /// Secrets Manager (as a person would for `calsync-local connect-google`).
    pub async fn use_redirect(&self, redirect: &str) -> anyhow::Result<()> {
        reqwest::Client::new()
            .post(format!("{}/emulator/oauth/clients", self.emu.url))
            .json(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect]}))
            .send()
            .await?
            .error_for_status()?;
        put_secret(
            &self.ctx,
            &GOOGLE_OAUTH.client_secret_name(&self.ctx.config.stack),
            &client_json(&self.emu.url, redirect).to_string(),
        )
        .await
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
        let start = consent_url(&self.ctx, group, user_id, calendar_id, name).await?;
        self.finish_consent(calendar_id, name, &start).await
    }

    /// Connect `calendar_id` (empty: the account's main calendar) of the emulator account
    /// `account` (one of [`GoogleEmulator::add_account`]) into `group` for `user_id`: the
    /// consent signs in as that account, as a person picking it in Google's account chooser.
    pub async fn connect_as(
        &self,
        group: &str,
        user_id: i64,
        account: &str,
        calendar_id: &str,
    ) -> anyhow::Result<Link> {
        self.emu.sign_in_next_as(account);
        let start = consent_url(&self.ctx, group, user_id, calendar_id, account).await?;
        self.open_consent(&start).await
    }

    /// Create the emulator calendar `calendar_id` and open `consent_url` (what the API's
    /// `POST /v1/groups/{group}/links/oauth/google` answered) in a browser: our begin (302,
    /// cookie) → emulator consent (302) → our callback (200). Returns the new link.
    pub async fn finish_consent(
        &self,
        calendar_id: &str,
        name: &str,
        consent_url: &str,
    ) -> anyhow::Result<Link> {
        self.emu.add_calendar(calendar_id, name, "Europe/Berlin");
        self.open_consent(consent_url).await
    }

    /// Open `consent_url` of a reconnection (what `POST /v1/links/{link_id}/reconnect`
    /// answered) in a browser, as [`Self::finish_consent`] does; returns the renewed link.
    pub async fn finish_reconnect(&self, consent_url: &str) -> anyhow::Result<Link> {
        self.open_consent(consent_url).await
    }

    /// Open a connection's or a reconnection's `consent_url` in a browser (the emulator's
    /// consent signs in as its default account unless `sign_in_next_as` said otherwise);
    /// returns the link the callback stored or renewed. Errors: the callback did not answer
    /// 200 (its status and text are in the error).
    pub async fn open_consent(&self, consent_url: &str) -> anyhow::Result<Link> {
        let seen = self.hooks.callbacks_seen();
        let (status, body) = Browser::default().open(consent_url).await?;
        anyhow::ensure!(status == 200, "connect failed: {status} {body}");
        let link_id = self
            .hooks
            .wait_connected(seen, std::time::Duration::from_secs(10))
            .await?;
        self.ctx
            .store()
            .get_link(&link_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("link {link_id} not stored"))
    }

    /// How many revocations the emulator's revocation endpoint has taken
    /// (`GET /emulator/oauth/stats`).
    ///
    /// Errors: the emulator did not answer.
    pub async fn revocations(&self) -> anyhow::Result<u64> {
        let v: serde_json::Value = reqwest::get(format!("{}/emulator/oauth/stats", self.emu.url))
            .await?
            .json()
            .await?;
        v["revocations"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no revocation count in {v}"))
    }

    /// The user revokes calsync's access at Google: the refresh token in `link`'s secret is
    /// revoked at the emulator's revocation endpoint (its access tokens with it).
    ///
    /// Errors: the secret is unreadable or the emulator refused.
    pub async fn revoke_grant(&self, link: &Link) -> anyhow::Result<()> {
        let arn = link.secret_arn.as_deref().unwrap_or_default();
        let tokens = calsync::oauth::read_tokens(&self.ctx, arn).await?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no refresh token in {arn}"))?;
        use secrecy::ExposeSecret;
        reqwest::Client::new()
            .post(format!("{}/emulator/oauth/revoke", self.emu.url))
            .json(&serde_json::json!({"refresh_token": refresh.expose_secret()}))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Whether Google refuses `refresh_token` as a revoked grant (`invalid_grant`).
    ///
    /// Errors: the OAuth client secret is unreadable.
    pub async fn grant_revoked(
        &self,
        refresh_token: &secrecy::SecretString,
    ) -> anyhow::Result<bool> {
        let client = calsync::oauth::load_client(&self.ctx, &GOOGLE_OAUTH).await?;
        let again = calsync::oauth::refresh(&self.ctx.clients.http, &client, refresh_token).await;
        Ok(again.is_err_and(|e| e.needs_reconnect()))
    }

    /// A provider for `link` with its current access token, acting as calsync does.
    pub async fn provider(&self, link: &Link) -> anyhow::Result<GoogleCalendar> {
        let arn = link.secret_arn.as_deref().unwrap_or_default();
        GoogleCalendar::with_link_tokens(&self.ctx, &link.url, arn, link.account.as_deref())
    }

    /// A user's own Google client (another app): raw API calls with a fresh token.
    pub async fn user_api(&self, link: &Link) -> anyhow::Result<UserApi> {
        let arn = link.secret_arn.as_deref().unwrap_or_default();
        let token = calsync::oauth::access_token(&self.ctx, &GOOGLE_OAUTH, arn, 60).await?;
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

    /// A write as the user's app sends it: [`USER_SEND_UPDATES`], the user's token; `id` is
    /// the event or instance id (`None`: the collection).
    async fn write(
        &self,
        method: reqwest::Method,
        id: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = match id {
            Some(id) => format!("{}/{id}", self.events),
            None => self.events.clone(),
        };
        let mut req = self
            .http
            .request(method, url)
            .query(&[("sendUpdates", USER_SEND_UPDATES)])
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Ok(req.send().await?.error_for_status()?)
    }

    /// `events.patch` of one event.
    pub async fn patch(
        &self,
        id: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let resp = self.write(reqwest::Method::PATCH, Some(id), Some(body));
        Ok(resp.await?.json().await?)
    }

    /// `events.delete` of one event or instance (an instance becomes a cancelled exception).
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.write(reqwest::Method::DELETE, Some(id), None).await?;
        Ok(())
    }

    /// `events.insert`.
    pub async fn insert(&self, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let resp = self.write(reqwest::Method::POST, None, Some(body));
        Ok(resp.await?.json().await?)
    }
}

/// The OAuth client secret's JSON for the emulator at `emu_url`.
fn client_json(emu_url: &str, redirect: &str) -> serde_json::Value {
    json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "auth_uri": format!("{emu_url}/o/oauth2/v2/auth"),
        "token_uri": format!("{emu_url}/token"),
        "revoke_uri": format!("{emu_url}/revoke"),
        "redirect_uri": redirect,
        "api_root": format!("{emu_url}/calendar/v3"),
    })
}

/// `calsync-local connect-google`: serve the webhook-receiver routes on `listener` (its
/// address is the redirect URI registered for the OAuth client,
/// `http://127.0.0.1:<port>/oauth/google/callback`), print the consent URL for the person to
/// open (also sent to `printed`), and wait for Google's redirect; returns the new link. The
/// OAuth client comes from Secrets Manager (`{stack}/google-oauth-client`), as for the Lambda.
pub async fn connect_interactively(
    ctx: Ctx,
    listener: tokio::net::TcpListener,
    req: &calsync::connect::ConnectRequest,
    timeout: std::time::Duration,
    printed: Option<tokio::sync::oneshot::Sender<String>>,
) -> anyhow::Result<Link> {
    let hooks = WebhookServer::start(ctx.clone(), listener).await?;
    let seen = hooks.callbacks_seen();
    let url = calsync::connect::start(&ctx, req).await?;
    println!(
        "open this address in a browser and consent (waiting {} s):\n  {url}",
        timeout.as_secs(),
    );
    if let Some(tx) = printed {
        let _ = tx.send(url);
    }
    let link_id = hooks.wait_connected(seen, timeout).await?;
    let link = ctx
        .store()
        .get_link(&link_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("link {link_id} not stored"))?;
    println!(
        "connected: link {} ({}), first sync queued; `calsync-local drain` runs it",
        link.link_id, link.display_name
    );
    Ok(link)
}

/// The consent URL for a calendar, as `POST /v1/groups/{group}/links/oauth/google` answers
/// it to the authenticated `user_id` ([`calsync::connect::start`]).
pub async fn consent_url(
    ctx: &Ctx,
    group: &str,
    user_id: i64,
    calendar_id: &str,
    name: &str,
) -> anyhow::Result<String> {
    calsync::connect::start(
        ctx,
        &calsync::connect::ConnectRequest {
            provider: calsync::model::ProviderKind::Google,
            group_id: group.into(),
            user_id,
            calendar_id: calendar_id.into(),
            display_name: name.into(),
            choices: Default::default(),
        },
    )
    .await
}

/// A minimal browser for consent round trips: follows redirects itself and keeps the cookies
/// each host sets (name=value only; `Secure` cookies are kept on loopback http as browsers do
/// for localhost), so the callback carries the state cookie that [`calsync::connect::begin`]
/// set.
#[derive(Default)]
pub struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    /// GET `url` and follow up to 10 redirects; returns the final status and body.
    pub async fn open(&mut self, url: &str) -> anyhow::Result<(u16, String)> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut url = reqwest::Url::parse(url)?;
        for _ in 0..10 {
            let origin = url.origin().ascii_serialization();
            let jar: Vec<String> = self
                .cookies
                .iter()
                .filter(|(o, _)| *o == origin)
                .map(|(_, c)| c.clone())
                .collect();
            let mut req = http.get(url.clone());
            if !jar.is_empty() {
                req = req.header("cookie", jar.join("; "));
            }
            let resp = req.send().await?;
            for c in resp.headers().get_all("set-cookie") {
                if let Some(kv) = c.to_str().ok().and_then(|c| c.split(';').next()) {
                    self.cookies.push((origin.clone(), kv.trim().to_string()));
                }
            }
            if resp.status().is_redirection() {
                let loc = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| anyhow::anyhow!("redirect without Location"))?;
                url = url.join(loc)?;
                continue;
            }
            let status = resp.status().as_u16();
            return Ok((status, resp.text().await?));
        }
        anyhow::bail!("too many redirects")
    }
}

pub(crate) async fn put_secret(ctx: &Ctx, name: &str, value: &str) -> anyhow::Result<()> {
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
