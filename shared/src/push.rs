//! Google push notifications: the webhook (channel lookup, token check, one sync job per
//! change) and the channels' life (watch, renew, stop).
//!
//! https://developers.google.com/workspace/calendar/api/guides/push (provider-semantics
//! §1.6): a notification has no body; `X-Goog-Resource-State` is `sync` right after the
//! watch (acknowledge only) and `exists` / `not_exists` for changes; `X-Goog-Channel-Token`
//! echoes the token we set. Notifications are not fully reliable, so the schedule keeps
//! polling as well.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{now_millis, Ctx};
use crate::model::{ChannelRecord, Link, ProviderKind};
use crate::provider::google::GoogleCalendar;
use crate::queue::{QueueKind, SyncJob};

/// Channel life we ask for (seconds): Google's observed maximum, a week.
pub const CHANNEL_TTL_SECS: i64 = 604_800;
/// Channels expiring within this many milliseconds are renewed by the token refresher.
pub const RENEW_BEFORE_MS: i64 = 24 * 3600 * 1000;
/// Trigger of the sync jobs a notification queues.
pub const PUSH_TRIGGER: &str = "push";

/// The webhook's answer: HTTP status and a short plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAnswer {
    /// HTTP status (2xx: accepted; Google retries 5xx).
    pub status: u16,
    /// Reason, for logs and the response body.
    pub reason: &'static str,
}

fn sha256_hex(v: &str) -> String {
    hex::encode(Sha256::digest(v.as_bytes()))
}

/// Handle one Google notification given its headers (name lookup is case-insensitive).
/// Unknown channel → 404, wrong or missing token → 403, both without any work; `sync` → 200;
/// `exists`/`not_exists` → one sync job for the link, deduplicated per message number, 200.
pub async fn google_notification(ctx: &Ctx, headers: &http::HeaderMap) -> WebhookAnswer {
    let h = |n: &'static str| -> String {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (channel_id, state, number, token) = (
        h("x-goog-channel-id"),
        h("x-goog-resource-state"),
        h("x-goog-message-number"),
        h("x-goog-channel-token"),
    );
    if channel_id.is_empty() || state.is_empty() {
        return WebhookAnswer {
            status: 400,
            reason:
                "not a Google push notification (X-Goog-Channel-ID / X-Goog-Resource-State missing)",
        };
    }
    let channel = match ctx.store().get_channel(&channel_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::warn!(%channel_id, "notification for an unknown channel");
            return WebhookAnswer {
                status: 404,
                reason: "unknown channel",
            };
        }
        Err(e) => {
            tracing::error!(error = %e, "channel lookup failed");
            return WebhookAnswer {
                status: 500,
                reason: "channel lookup failed",
            };
        }
    };
    let presented = sha256_hex(&token);
    let token_ok: bool = presented
        .as_bytes()
        .ct_eq(channel.token_sha256.as_bytes())
        .into();
    if !token_ok || token.is_empty() {
        tracing::warn!(%channel_id, "notification with a wrong channel token");
        return WebhookAnswer {
            status: 403,
            reason: "channel token mismatch",
        };
    }
    if state == "sync" {
        return WebhookAnswer {
            status: 200,
            reason: "channel confirmed",
        };
    }
    // Counted before queueing: a pull that reads the link after this knows it covers it.
    let seq = match ctx.store().bump_push_seq(&channel.link_id).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "push: cannot count the notification");
            return WebhookAnswer {
                status: 500,
                reason: "cannot queue the sync",
            };
        }
    };
    let job = SyncJob::coalesced(
        &channel.link_id,
        PUSH_TRIGGER,
        &format!("{channel_id}-{number}"),
    )
    .with_push_seq(seq);
    match ctx.queues().send(QueueKind::SyncJobs, &[job]).await {
        Ok(_) => {
            tracing::info!(link = %channel.link_id, %channel_id, %number, %state, "push: sync queued");
            WebhookAnswer {
                status: 200,
                reason: "sync queued",
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "push: cannot queue");
            WebhookAnswer {
                status: 500,
                reason: "cannot queue the sync",
            }
        }
    }
}

fn provider_for(
    http: &reqwest::Client,
    url: &str,
    token: SecretString,
    arn: &str,
) -> anyhow::Result<GoogleCalendar> {
    Ok(GoogleCalendar::new(http.clone(), url, token, arn)?)
}

/// Start a push channel for a Google `link` delivering to `address`, and record it.
///
/// Errors: not a Google link, token or Secrets Manager failure, `events.watch` refused.
pub async fn start_channel(ctx: &Ctx, link: &Link, address: &str) -> anyhow::Result<ChannelRecord> {
    anyhow::ensure!(
        link.provider == ProviderKind::Google,
        "link {} is not a Google link",
        link.link_id
    );
    let arn = link
        .secret_arn
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("link {}: Google link without secret_arn", link.link_id))?;
    let access = crate::oauth::access_token(ctx, arn, crate::oauth::REFRESH_MARGIN_SECS).await?;
    let g = provider_for(&ctx.clients.http, &link.url, access, arn)?;
    let channel_id = format!("calsync-{}", uuid::Uuid::now_v7().simple());
    let token = SecretString::from(
        hex::encode(uuid::Uuid::new_v4().as_bytes())
            + &hex::encode(uuid::Uuid::new_v4().as_bytes()),
    );
    let ch = g
        .watch(&channel_id, address, &token, CHANNEL_TTL_SECS)
        .await?;
    let rec = ChannelRecord {
        channel_id: ch.id,
        link_id: link.link_id.clone(),
        secret_arn: arn.into(),
        url: link.url.clone(),
        resource_id: ch.resource_id,
        token_sha256: sha256_hex(token.expose_secret()),
        expiration_ms: ch.expiration_ms,
    };
    ctx.store().put_channel(&rec).await?;
    tracing::info!(link = %link.link_id, channel_id = %rec.channel_id, expiration_ms = rec.expiration_ms, "push channel started");
    Ok(rec)
}

/// Stop a channel at Google (if its account is still reachable) and forget it.
///
/// Errors: DynamoDB failure. A stop Google refuses is logged and the record still removed.
pub async fn stop_channel(ctx: &Ctx, rec: &ChannelRecord) -> anyhow::Result<()> {
    let stopped = async {
        let access =
            crate::oauth::access_token(ctx, &rec.secret_arn, crate::oauth::REFRESH_MARGIN_SECS)
                .await?;
        let g = provider_for(&ctx.clients.http, &rec.url, access, &rec.secret_arn)?;
        g.stop_channel(&rec.channel_id, &rec.resource_id).await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = stopped {
        tracing::warn!(channel_id = %rec.channel_id, error = %e, "channel not stopped at Google; it will expire");
    }
    ctx.store().delete_channel(&rec.channel_id).await?;
    Ok(())
}

/// What [`maintain_channels`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChannelReport {
    /// Channels started for links without one.
    pub started: u32,
    /// Channels replaced because they expire soon.
    pub renewed: u32,
    /// Channels stopped because their link is gone, or replaced.
    pub stopped: u32,
    /// Failures (logged).
    pub failed: u32,
}

/// Keep one live channel per Google link: start missing ones, renew those expiring within
/// [`RENEW_BEFORE_MS`] (new channel first, then stop the old: Google's advice for an
/// overlap), stop orphans (link deleted) and expired records. Without a webhook URL only
/// orphans are stopped.
pub async fn maintain_channels(ctx: &Ctx, links: &[Link]) -> anyhow::Result<ChannelReport> {
    let store = ctx.store();
    let mut report = ChannelReport::default();
    let now = now_millis();
    let mut channels = store.all_channels().await?;
    channels.sort_by_key(|c| std::cmp::Reverse(c.expiration_ms));
    let mut covered = std::collections::HashSet::new();
    for c in &channels {
        let link = links.iter().find(|l| l.link_id == c.link_id);
        let orphan = link.is_none_or(|l| l.status == crate::model::LinkStatus::ReconnectNeeded);
        let expired = c.expiration_ms <= now;
        let duplicate = covered.contains(&c.link_id);
        if orphan || expired || duplicate {
            stop_channel(ctx, c).await?;
            report.stopped += 1;
            continue;
        }
        if c.expiration_ms - now < RENEW_BEFORE_MS {
            if let (Some(addr), Some(l)) = (&ctx.config.webhook_url, link) {
                match start_channel(ctx, l, addr).await {
                    Ok(_) => {
                        stop_channel(ctx, c).await?;
                        report.renewed += 1;
                        covered.insert(c.link_id.clone());
                    }
                    Err(e) => {
                        tracing::warn!(link = %l.link_id, error = %e, "channel renewal failed");
                        report.failed += 1;
                        covered.insert(c.link_id.clone());
                    }
                }
                continue;
            }
        }
        covered.insert(c.link_id.clone());
    }
    if let Some(addr) = &ctx.config.webhook_url {
        for l in links.iter().filter(|l| {
            l.provider == ProviderKind::Google
                && l.status != crate::model::LinkStatus::ReconnectNeeded
                && !covered.contains(&l.link_id)
        }) {
            match start_channel(ctx, l, addr).await {
                Ok(_) => report.started += 1,
                Err(e) => {
                    tracing::warn!(link = %l.link_id, error = %e, "channel start failed");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}
