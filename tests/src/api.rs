//! The application's API on the local stack: the same [`calsync::api::router`] the api Lambda
//! runs, served over HTTP with a development issuer ([`crate::issuer`]) as its trusted token
//! issuer, and a small client that calls it as an application would.

use std::sync::Arc;

use calsync::api::app::AppConfig;
use calsync::api::{ApiState, Verifier};
use calsync::config::Ctx;
use serde_json::Value;

use crate::issuer::DevIssuer;

/// The API served on a local port.
pub struct ApiServer {
    /// Base URL without `/v1`, e.g. `http://127.0.0.1:41235`.
    pub url: String,
    /// The issuer whose tokens it trusts.
    pub issuer: DevIssuer,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    /// Serve the API for `ctx` on `listener`, trusting `issuer` (the settings page's
    /// embedders from the environment).
    pub async fn start(
        ctx: Ctx,
        listener: tokio::net::TcpListener,
        issuer: DevIssuer,
    ) -> anyhow::Result<Self> {
        Self::start_with_page(ctx, listener, issuer, &AppConfig::from_env()).await
    }

    /// [`ApiServer::start`] with the origins allowed to embed the settings page.
    pub async fn start_with_page(
        ctx: Ctx,
        listener: tokio::net::TcpListener,
        issuer: DevIssuer,
        page: &AppConfig,
    ) -> anyhow::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let http = ctx.clients.http.clone();
        let state = ApiState {
            ctx: Arc::new(ctx),
            auth: Arc::new(Verifier::new(Some(issuer.auth_config()), http)),
        };
        let app = calsync::api::router_with(state, page);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, issuer, task })
    }

    /// Serve on ephemeral loopback ports (API and issuer).
    pub async fn start_local(ctx: Ctx) -> anyhow::Result<Self> {
        let issuer =
            DevIssuer::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, None).await?;
        Self::start(
            ctx,
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            issuer,
        )
        .await
    }

    /// A client acting for `user` with a valid token.
    pub fn as_user(&self, user: i64) -> ApiClient {
        ApiClient::new(&self.url, Some(self.issuer.token(user)))
    }
}

/// One answer: status, headers and body (JSON when it parses, else `Value::String`).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Answer headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON, or the text as a JSON string.
    pub body: Value,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Calls the API with one bearer token (or none). Counts the calls it makes.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    calls: Arc<std::sync::atomic::AtomicU32>,
}

impl ApiClient {
    /// A client for `base` (without `/v1`) sending `token`.
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').into(),
            token,
            http: reqwest::Client::new(),
            calls: Default::default(),
        }
    }

    /// API calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Send `method path` (path from `/v1`) with optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(m, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.raw(req).await
    }

    /// Send a prepared request and read the answer.
    pub async fn raw(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// PUT an iCalendar body.
    pub async fn put_ical(
        &self,
        path: &str,
        ical: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .put(format!("{}{path}", self.base))
            .header("content-type", "text/calendar")
            .body(ical.to_string());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.raw(req).await
    }

    /// `GET`, `POST`, `PATCH`, `DELETE` shorthands.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send("GET", path, None, &[]).await
    }
    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.send("POST", path, Some(body), &[]).await
    }
    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.send("PATCH", path, Some(body), &[]).await
    }
    /// DELETE.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        self.send("DELETE", path, None, &[]).await
    }

    /// Create a group named `name`; its id.
    pub async fn create_group(&self, name: &str) -> anyhow::Result<String> {
        let a = self
            .post("/v1/groups", &serde_json::json!({"name": name}))
            .await?;
        anyhow::ensure!(a.status == 201, "create group: {} {}", a.status, a.body);
        Ok(a.body["group_id"].as_str().unwrap_or_default().to_string())
    }
}
