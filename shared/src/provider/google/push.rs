//! Google push channels behind the [`PushPort`]:
//! https://developers.google.com/workspace/calendar/api/guides/push (provider-semantics
//! §1.6). A notification has no body; `X-Goog-Resource-State` is `sync` right after the
//! watch (acknowledge only) and `exists` / `not_exists` for changes; `X-Goog-Channel-Token`
//! echoes the token we set at watch time (stored as its SHA-256).

use async_trait::async_trait;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::GoogleCalendar;
use crate::config::Ctx;
use crate::model::{ChannelRecord, Link, ProviderKind};
use crate::provider::ProviderError;
use crate::push::{new_secret, secret_digest, secret_matches, PushPort, PushRequest, Verdict};

/// Channel life we ask for (seconds): Google's observed maximum, a week.
pub const CHANNEL_TTL_SECS: i64 = 604_800;
/// Channels expiring within this many milliseconds are renewed by the token refresher.
pub const RENEW_BEFORE_MS: i64 = 24 * 3600 * 1000;

/// A push channel as `events.watch` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Our channel id (`X-Goog-Channel-ID`).
    pub id: String,
    /// Google's id of the watched resource (`X-Goog-Resource-ID`), needed to stop it.
    pub resource_id: String,
    /// Expiry, milliseconds since the Unix epoch (UTC).
    pub expiration_ms: i64,
}

impl GoogleCalendar {
    /// Start a push channel on this calendar's events (`events.watch`). `ttl_secs` is asked
    /// through `params.ttl`; the answer's `expiration` is what counts.
    ///
    /// Errors: any non-200 answer.
    pub async fn watch(
        &self,
        channel_id: &str,
        address: &str,
        token: &SecretString,
        ttl_secs: i64,
    ) -> Result<Channel, ProviderError> {
        let url = format!("{}/watch", self.events_url());
        let ttl = ttl_secs.to_string();
        let body = json!({"id": channel_id, "type": "web_hook", "address": address,
            "token": token.expose_secret(), "params": {"ttl": ttl}});
        let a = self
            .call(Method::POST, &url, &[], Some(&body), None)
            .await?;
        if a.status != 200 {
            return Err(Self::unexpected(&url, &a));
        }
        let expiration_ms = match &a.body["expiration"] {
            Value::String(s) => s.parse().unwrap_or(0),
            v => v.as_i64().unwrap_or(0),
        };
        Ok(Channel {
            id: channel_id.into(),
            resource_id: a.body["resourceId"].as_str().unwrap_or_default().into(),
            expiration_ms,
        })
    }

    /// Stop a push channel (`channels.stop`). A channel Google no longer knows is stopped.
    pub async fn stop_channel(
        &self,
        channel_id: &str,
        resource_id: &str,
    ) -> Result<(), ProviderError> {
        let url = format!("{}/channels/stop", self.api);
        let body = json!({"id": channel_id, "resourceId": resource_id});
        let a = self
            .call(Method::POST, &url, &[], Some(&body), None)
            .await?;
        match a.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(Self::unexpected(&url, &a)),
        }
    }
}

/// Google's channels.
pub struct GooglePush;

/// The port instance the registry hands out.
pub static PUSH: GooglePush = GooglePush;

#[async_trait]
impl PushPort for GooglePush {
    fn renew_before_ms(&self) -> i64 {
        RENEW_BEFORE_MS
    }

    async fn start(&self, ctx: &Ctx, link: &Link, address: &str) -> anyhow::Result<ChannelRecord> {
        let arn = link.required_secret()?;
        let g = GoogleCalendar::with_link_tokens(ctx, &link.url, arn, link.account.as_deref())?;
        let channel_id = format!("calsync-{}", uuid::Uuid::now_v7().simple());
        let token = new_secret();
        let ch = g
            .watch(&channel_id, address, &token, CHANNEL_TTL_SECS)
            .await?;
        Ok(ChannelRecord {
            channel_id: ch.id,
            link_id: link.link_id.clone(),
            provider: ProviderKind::Google,
            secret_arn: arn.into(),
            account: link.account.clone(),
            url: link.url.clone(),
            resource_id: ch.resource_id,
            token_sha256: secret_digest(token.expose_secret()),
            expiration_ms: ch.expiration_ms,
        })
    }

    async fn stop(&self, ctx: &Ctx, rec: &ChannelRecord) -> anyhow::Result<()> {
        let g = GoogleCalendar::with_link_tokens(
            ctx,
            &rec.url,
            &rec.secret_arn,
            rec.account.as_deref(),
        )?;
        g.stop_channel(&rec.channel_id, &rec.resource_id).await?;
        Ok(())
    }

    /// Unknown channel → 404, wrong or missing token → 403, missing headers → 400, all
    /// without any work; `sync` → acknowledge; `exists`/`not_exists` → changed, deduplicated
    /// per message number.
    async fn verify(&self, ctx: &Ctx, req: &PushRequest<'_>) -> Vec<Verdict> {
        let reject = |status, reason| vec![Verdict::Reject { status, reason }];
        let (channel_id, state, number, token) = (
            req.header("x-goog-channel-id"),
            req.header("x-goog-resource-state"),
            req.header("x-goog-message-number"),
            req.header("x-goog-channel-token"),
        );
        if channel_id.is_empty() || state.is_empty() {
            return reject(
                400,
                "not a Google push notification (X-Goog-Channel-ID / X-Goog-Resource-State missing)",
            );
        }
        let channel = match ctx.store().get_channel(channel_id).await {
            Ok(Some(c)) if c.provider == ProviderKind::Google => c,
            Ok(_) => return reject(404, "unknown channel"),
            Err(e) => {
                tracing::error!(error = %e, "channel lookup failed");
                return reject(500, "channel lookup failed");
            }
        };
        if !secret_matches(token, &channel) {
            return reject(403, "channel token mismatch");
        }
        if state == "sync" {
            return vec![Verdict::Acknowledge];
        }
        vec![Verdict::Changed {
            link_id: channel.link_id,
            dedupe: format!("{channel_id}-{number}"),
        }]
    }
}
