//! Google push channels behind the [`PushPort`]:
//! https://developers.google.com/workspace/calendar/api/guides/push (provider-semantics
//! §1.6). A notification has no body; `X-Goog-Resource-State` is `sync` right after the
//! watch (acknowledge only) and `exists` / `not_exists` for changes; `X-Goog-Channel-Token`
//! echoes the token we set at watch time (stored as its SHA-256).

use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::GoogleCalendar;
use crate::config::Ctx;
use crate::model::{ChannelRecord, Link, ProviderKind};
use crate::push::{new_secret, secret_digest, secret_matches, PushPort, PushRequest, Verdict};

/// Channel life we ask for (seconds): Google's observed maximum, a week.
pub const CHANNEL_TTL_SECS: i64 = 604_800;
/// Channels expiring within this many milliseconds are renewed by the token refresher.
pub const RENEW_BEFORE_MS: i64 = 24 * 3600 * 1000;

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
        let g = GoogleCalendar::with_link_tokens(ctx, &link.url, arn)?;
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
            url: link.url.clone(),
            resource_id: ch.resource_id,
            token_sha256: secret_digest(token.expose_secret()),
            expiration_ms: ch.expiration_ms,
        })
    }

    async fn stop(&self, ctx: &Ctx, rec: &ChannelRecord) -> anyhow::Result<()> {
        let g = GoogleCalendar::with_link_tokens(ctx, &rec.url, &rec.secret_arn)?;
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
