//! Push notifications, provider-neutral: the [`PushPort`] each provider with push implements
//! (Google channels in `provider::google::push`), the webhook ([`handle`]: `/webhooks/{slug}`)
//! and the channels' life ([`start_channel`], [`renew_channel`], [`stop_channel`]; their
//! upkeep is the token refresher's, `crate::refresher::channels`).
//!
//! A port starts, renews and stops channels and reads an incoming request into
//! [`Verdict`]s; everything a verdict causes (one coalesced sync job per notified link,
//! renewals, recreation, full pulls) happens here, the same for every provider.
//! Notifications are not fully reliable, so the schedule keeps polling as well.

use std::collections::BTreeMap;

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{now_millis, Ctx};
use crate::model::{ChannelRecord, Link, ProviderKind};
use crate::queue::{QueueKind, SyncJob};

/// Trigger of the sync jobs a change notification queues.
pub const PUSH_TRIGGER: &str = "push";

/// An incoming webhook request as the receiver got it.
#[derive(Debug, Clone, Copy)]
pub struct PushRequest<'a> {
    /// HTTP method.
    pub method: &'a http::Method,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// Headers (name lookup is case-insensitive).
    pub headers: &'a http::HeaderMap,
    /// Body bytes (empty for Google).
    pub body: &'a [u8],
}

impl PushRequest<'_> {
    /// A header as text, `""` when absent or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A query parameter, if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A channel event that is not a change (Graph lifecycle notifications,
/// https://learn.microsoft.com/graph/change-notifications-lifecycle-events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The provider wants the subscription reauthorized: renew it.
    Reauthorize,
    /// The provider removed the subscription: start a new one, and pull in full.
    Removed,
    /// Notifications were lost: pull in full.
    Missed,
}

/// What one notification in a request means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A validation handshake: answer 200 `text/plain` with exactly this text.
    Handshake(String),
    /// Genuine, nothing to do (Google's `sync` message after a watch).
    Acknowledge,
    /// The link's calendar changed; `dedupe` identifies the notification (retries of the
    /// same one queue nothing new).
    Changed {
        /// Link to pull.
        link_id: String,
        /// The notification's identity.
        dedupe: String,
    },
    /// A lifecycle event of a known, verified channel.
    Lifecycle {
        /// The channel.
        channel: ChannelRecord,
        /// What happened.
        event: Lifecycle,
    },
    /// Refused without any work: HTTP status and reason.
    Reject {
        /// 400 malformed, 403 wrong secret, 404 unknown channel, 500 lookup failed.
        status: u16,
        /// Short reason.
        reason: &'static str,
    },
}

/// A provider's push mechanism.
#[async_trait::async_trait]
pub trait PushPort: Send + Sync {
    /// Status answered for accepted notifications (Google 200; Graph 202).
    fn accepted_status(&self) -> u16 {
        200
    }

    /// Channels expiring within this many milliseconds are renewed.
    fn renew_before_ms(&self) -> i64;

    /// Start a channel on `link` delivering to `address`, and return its record (the caller
    /// stores it).
    ///
    /// Errors: token or Secrets Manager failure, the provider refused.
    async fn start(&self, ctx: &Ctx, link: &Link, address: &str) -> anyhow::Result<ChannelRecord>;

    /// Extend `rec`: the record to keep (the caller stores it and, when its id differs,
    /// stops and forgets `rec`). Default: start a new channel (Google's advice: new first,
    /// then stop the old, so that the two overlap).
    ///
    /// Errors: as [`PushPort::start`].
    async fn renew(
        &self,
        ctx: &Ctx,
        link: &Link,
        _rec: &ChannelRecord,
        address: &str,
    ) -> anyhow::Result<ChannelRecord> {
        self.start(ctx, link, address).await
    }

    /// Stop `rec` at the provider. A channel the provider no longer knows is stopped.
    ///
    /// Errors: the provider or its account is unreachable (the caller logs it and forgets
    /// the record; the channel then expires).
    async fn stop(&self, ctx: &Ctx, rec: &ChannelRecord) -> anyhow::Result<()>;

    /// Read `req` into verdicts (one per notification it carries), looking channels up in
    /// the store and checking their secret with [`secret_matches`].
    async fn verify(&self, ctx: &Ctx, req: &PushRequest<'_>) -> Vec<Verdict>;
}

/// SHA-256 (hex) of a channel secret, as [`ChannelRecord::token_sha256`] holds it.
pub fn secret_digest(v: &str) -> String {
    hex::encode(Sha256::digest(v.as_bytes()))
}

/// A fresh channel secret (256 random bits, hex).
pub fn new_secret() -> SecretString {
    SecretString::from(
        hex::encode(uuid::Uuid::new_v4().as_bytes())
            + &hex::encode(uuid::Uuid::new_v4().as_bytes()),
    )
}

/// Whether `presented` is the channel's secret, compared in constant time; an empty one never is.
pub fn secret_matches(presented: &str, rec: &ChannelRecord) -> bool {
    let d = secret_digest(presented);
    !presented.is_empty() && bool::from(d.as_bytes().ct_eq(rec.token_sha256.as_bytes()))
}

/// The webhook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAnswer {
    /// HTTP status.
    pub status: u16,
    /// Plain-text body: the handshake token, or a short reason.
    pub body: String,
}

impl WebhookAnswer {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

/// Serve one webhook request for the provider `kind`: a handshake is answered at once; a
/// request whose notifications are all refused gets the first refusal; otherwise every
/// notified link gets one sync job (several notifications for one link in a request are one
/// job), lifecycle events are acted on, and the answer is the port's accepted status. A
/// failure to queue answers 500 so that the provider retries.
pub async fn handle(ctx: &Ctx, kind: ProviderKind, req: &PushRequest<'_>) -> WebhookAnswer {
    let Some(port) = kind.module().push() else {
        return WebhookAnswer::new(404, "this provider has no push notifications");
    };
    let verdicts = port.verify(ctx, req).await;
    if let Some(Verdict::Handshake(t)) = verdicts.first() {
        return WebhookAnswer::new(200, t.clone());
    }
    let accepted = verdicts
        .iter()
        .any(|v| !matches!(v, Verdict::Reject { .. }));
    if !accepted {
        return match verdicts.into_iter().next() {
            Some(Verdict::Reject { status, reason }) => {
                tracing::warn!(
                    provider = kind.info().slug,
                    status,
                    reason,
                    "notification refused"
                );
                WebhookAnswer::new(status, reason)
            }
            _ => WebhookAnswer::new(400, "no notification in the request"),
        };
    }
    let mut changed: BTreeMap<String, String> = BTreeMap::new();
    let mut failed = false;
    for v in verdicts {
        match v {
            Verdict::Changed { link_id, dedupe } => {
                changed.entry(link_id).or_insert(dedupe);
            }
            Verdict::Lifecycle { channel, event } => {
                if let Err(e) = lifecycle(ctx, port, &channel, event).await {
                    tracing::error!(channel_id = %channel.channel_id, error = %e, ?event, "lifecycle notification not handled");
                    failed = true;
                }
            }
            Verdict::Handshake(_) | Verdict::Acknowledge | Verdict::Reject { .. } => {}
        }
    }
    for (link_id, dedupe) in changed {
        match queue_pull(ctx, &link_id, PUSH_TRIGGER, &dedupe).await {
            Err(e) => {
                tracing::error!(link = %link_id, error = %e, "push: cannot queue the sync");
                failed = true;
            }
            Ok(true) => tracing::info!(link = %link_id, %dedupe, "push: sync queued"),
            Ok(false) => {
                tracing::debug!(link = %link_id, %dedupe, "push: covered by the queued sync");
            }
        }
    }
    if failed {
        WebhookAnswer::new(500, "cannot queue the sync")
    } else {
        WebhookAnswer::new(port.accepted_status(), "accepted")
    }
}

/// Count a notification on the link (a pull that reads the link after this knows it covers
/// it) and queue one coalesced pull, unless a pull queued earlier has not begun yet: that
/// one covers this notification ([`crate::store::Store::count_notification`]), so a burst
/// of notifications (a bulk change, Google's one per changed event) queues one job per
/// pull, not one per notification. `false`: coalesced into the queued pull.
async fn queue_pull(ctx: &Ctx, link_id: &str, trigger: &str, dedupe: &str) -> anyhow::Result<bool> {
    let store = ctx.store();
    let now = now_millis();
    let counted = store.count_notification(link_id, now).await?;
    if !counted.queue {
        return Ok(false);
    }
    let job = SyncJob::coalesced(link_id, trigger, dedupe).with_push_seq(counted.seq);
    if let Err(e) = ctx.queues().send(QueueKind::SyncJobs, &[job]).await {
        // Give the marker back: the provider's retry of this notification queues the pull.
        if let Err(r) = store.release_pull_marker(link_id, now).await {
            tracing::warn!(link = %link_id, error = %r, "pull marker not released; it goes stale");
        }
        return Err(e);
    }
    Ok(true)
}

/// Act on a lifecycle event: renew, or recreate and pull in full, or pull in full.
async fn lifecycle(
    ctx: &Ctx,
    port: &dyn PushPort,
    rec: &ChannelRecord,
    event: Lifecycle,
) -> anyhow::Result<()> {
    let store = ctx.store();
    let link = store.get_link(&rec.link_id).await?;
    let full_pull = |trigger: &'static str| {
        let dedupe = format!("{}-{trigger}-{}", rec.channel_id, now_millis());
        async move { queue_pull(ctx, &rec.link_id, crate::handlers::RETRY, &dedupe).await }
    };
    match (event, link) {
        (_, None) => {
            stop_channel(ctx, rec).await?;
        }
        (Lifecycle::Reauthorize, Some(l)) => {
            let addr = ctx
                .config
                .webhook_url(rec.provider.info().slug)
                .ok_or_else(|| anyhow::anyhow!("no webhook URL configured"))?;
            renew_channel(ctx, port, &l, rec, &addr).await?;
        }
        (Lifecycle::Removed, Some(l)) => {
            store.delete_channel(&rec.channel_id).await?;
            if let Some(addr) = ctx.config.webhook_url(rec.provider.info().slug) {
                if let Err(e) = start_channel(ctx, &l, &addr).await {
                    // The token refresher starts one at its next run.
                    tracing::warn!(link = %l.link_id, error = %e, "removed subscription not replaced");
                    store
                        .want_upkeep(&l.link_id, crate::config::now_secs())
                        .await?;
                }
            }
            full_pull("removed").await?;
        }
        (Lifecycle::Missed, Some(_)) => {
            full_pull("missed").await?;
        }
    }
    Ok(())
}

/// Start a channel for `link` delivering to `address` through its provider's port, and
/// record it.
///
/// Errors: the provider has no push, token or Secrets Manager failure, the provider refused.
pub async fn start_channel(ctx: &Ctx, link: &Link, address: &str) -> anyhow::Result<ChannelRecord> {
    let port = link
        .provider
        .module()
        .push()
        .ok_or_else(|| anyhow::anyhow!("link {}: the provider has no push", link.link_id))?;
    let rec = port.start(ctx, link, address).await?;
    ctx.store().put_channel(&rec).await?;
    tracing::info!(link = %link.link_id, channel_id = %rec.channel_id, expiration_ms = rec.expiration_ms, "push channel started");
    Ok(rec)
}

/// Extend `rec` of `link` through `port` ([`PushPort::renew`]) and record the channel to
/// keep; when the port started a new one in its place, stop and forget `rec`. Returns the
/// record kept.
///
/// Errors: the provider refused, token, Secrets Manager or DynamoDB failure.
pub async fn renew_channel(
    ctx: &Ctx,
    port: &dyn PushPort,
    link: &Link,
    rec: &ChannelRecord,
    address: &str,
) -> anyhow::Result<ChannelRecord> {
    let new = port.renew(ctx, link, rec, address).await?;
    ctx.store().put_channel(&new).await?;
    if new.channel_id != rec.channel_id {
        stop_channel(ctx, rec).await?;
    }
    Ok(new)
}

/// Stop a channel at its provider (if its account is still reachable) and forget it.
///
/// Errors: DynamoDB failure. A stop the provider refuses is logged and the record still removed.
pub async fn stop_channel(ctx: &Ctx, rec: &ChannelRecord) -> anyhow::Result<()> {
    if let Some(port) = rec.provider.module().push() {
        if let Err(e) = port.stop(ctx, rec).await {
            tracing::warn!(channel_id = %rec.channel_id, error = %e, "channel not stopped at the provider; it will expire");
        }
    }
    ctx.store().delete_channel(&rec.channel_id).await?;
    Ok(())
}

/// Stop and forget every channel of `link_id`.
///
/// Errors: DynamoDB failure.
pub async fn stop_channels_of(ctx: &Ctx, link_id: &str) -> anyhow::Result<()> {
    for ch in ctx.store().channels_of_link(link_id).await? {
        stop_channel(ctx, &ch).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn rec(secret: &str) -> ChannelRecord {
        ChannelRecord {
            channel_id: "c".into(),
            link_id: "l".into(),
            provider: ProviderKind::Google,
            secret_arn: "arn".into(),
            account: None,
            url: "u".into(),
            resource_id: "r".into(),
            token_sha256: secret_digest(secret),
            expiration_ms: 0,
        }
    }

    #[test]
    fn secrets_match_exactly_and_never_when_empty() {
        let cases = [
            ("s3cret", "s3cret", true),
            ("s3cret", "s3creT", false),
            ("", "", false),
            ("x", "", false),
        ];
        for (stored, presented, want) in cases {
            assert_eq!(
                secret_matches(presented, &rec(stored)),
                want,
                "{stored:?} vs {presented:?}"
            );
        }
        assert_ne!(new_secret().expose_secret(), new_secret().expose_secret());
        assert_eq!(new_secret().expose_secret().len(), 64);
    }
}
