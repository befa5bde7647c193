//! Graph change-notification subscriptions behind the [`PushPort`]
//! (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks,
//! …/change-notifications-lifecycle-events; provider-semantics §2.8):
//!
//! - start: `POST /subscriptions` on `/me/calendars/{id}/events` (created, updated,
//!   deleted) with the webhook as notification and lifecycle URL and a fresh `clientState`
//!   (stored as its SHA-256); Graph validates the URL first, which the webhook answers.
//! - renew: `PATCH /subscriptions/{id}` with a new `expirationDateTime`; stop: `DELETE`.
//! - verify: `?validationToken=` → the handshake (200 text/plain, the decoded token); a
//!   `value[]` body → one verdict per notification: unknown subscription 404, wrong
//!   `clientState` 403, `lifecycleEvent` → lifecycle, else changed. Accepted requests answer
//!   202.

use async_trait::async_trait;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::OutlookCalendar;
use crate::config::Ctx;
use crate::model::{ChannelRecord, Link, ProviderKind};
use crate::push::{
    new_secret, secret_digest, secret_matches, Lifecycle, PushPort, PushRequest, Verdict,
};

/// Lifetime asked for a subscription (minutes): under the 10,080 maximum for events.
pub const LIFETIME_MINUTES: i64 = 10_070;
/// Subscriptions expiring within this many milliseconds are renewed.
pub const RENEW_BEFORE_MS: i64 = 24 * 3600 * 1000;

/// Graph's subscriptions.
pub struct GraphPush;

/// The port instance the registry hands out.
pub static PUSH: GraphPush = GraphPush;

fn expiry() -> (String, i64) {
    let t = chrono::Utc::now() + chrono::Duration::minutes(LIFETIME_MINUTES);
    (
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        t.timestamp_millis(),
    )
}

fn calendar(
    ctx: &Ctx,
    url: &str,
    arn: &str,
    account: Option<&str>,
) -> anyhow::Result<OutlookCalendar> {
    OutlookCalendar::with_link_tokens(ctx, url, arn, account)
}

fn parse_ms(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
}

#[async_trait]
impl PushPort for GraphPush {
    fn accepted_status(&self) -> u16 {
        202
    }

    fn renew_before_ms(&self) -> i64 {
        RENEW_BEFORE_MS
    }

    async fn start(&self, ctx: &Ctx, link: &Link, address: &str) -> anyhow::Result<ChannelRecord> {
        let arn = link.required_secret()?;
        let o = calendar(ctx, &link.url, arn, link.account.as_deref())?;
        let (_, id) = super::parse_calendar_url(&link.url)?;
        let resource = format!("/me/calendars/{id}/events");
        let secret = new_secret();
        let (exp, exp_ms) = expiry();
        let body = json!({"changeType": "created,updated,deleted", "notificationUrl": address,
            "lifecycleNotificationUrl": address, "resource": resource, "expirationDateTime": exp,
            "clientState": secret.expose_secret()});
        let url = format!("{}/subscriptions", o.api());
        let a = o.call(Method::POST, &url, Some(&body), None).await?;
        anyhow::ensure!(
            a.status == 201,
            "subscription refused: HTTP {} {}",
            a.status,
            a.body["error"]["message"].as_str().unwrap_or("")
        );
        Ok(ChannelRecord {
            channel_id: a.body["id"].as_str().unwrap_or_default().into(),
            link_id: link.link_id.clone(),
            provider: ProviderKind::Outlook,
            secret_arn: arn.into(),
            account: link.account.clone(),
            url: link.url.clone(),
            resource_id: resource,
            token_sha256: secret_digest(secret.expose_secret()),
            expiration_ms: parse_ms(&a.body["expirationDateTime"]).unwrap_or(exp_ms),
        })
    }

    async fn renew(
        &self,
        ctx: &Ctx,
        _link: &Link,
        rec: &ChannelRecord,
        _address: &str,
    ) -> anyhow::Result<ChannelRecord> {
        let o = calendar(ctx, &rec.url, &rec.secret_arn, rec.account.as_deref())?;
        let (exp, exp_ms) = expiry();
        let url = format!(
            "{}/subscriptions/{}",
            o.api(),
            crate::provider::percent_encode(&rec.channel_id)
        );
        let a = o
            .call(
                Method::PATCH,
                &url,
                Some(&json!({"expirationDateTime": exp})),
                None,
            )
            .await?;
        anyhow::ensure!(
            a.status == 200,
            "subscription renewal refused: HTTP {}",
            a.status
        );
        let mut new = rec.clone();
        new.expiration_ms = parse_ms(&a.body["expirationDateTime"]).unwrap_or(exp_ms);
        Ok(new)
    }

    async fn stop(&self, ctx: &Ctx, rec: &ChannelRecord) -> anyhow::Result<()> {
        let o = calendar(ctx, &rec.url, &rec.secret_arn, rec.account.as_deref())?;
        let url = format!(
            "{}/subscriptions/{}",
            o.api(),
            crate::provider::percent_encode(&rec.channel_id)
        );
        let a = o.call(Method::DELETE, &url, None, None).await?;
        anyhow::ensure!(
            matches!(a.status, 200 | 204 | 404),
            "subscription not deleted: HTTP {}",
            a.status
        );
        Ok(())
    }

    async fn verify(&self, ctx: &Ctx, req: &PushRequest<'_>) -> Vec<Verdict> {
        if let Some(t) = req.param("validationToken") {
            return vec![Verdict::Handshake(t.to_string())];
        }
        let reject = |status, reason| Verdict::Reject { status, reason };
        let Ok(body) = serde_json::from_slice::<Value>(req.body) else {
            return vec![reject(400, "not a Graph notification (no JSON body)")];
        };
        let Some(items) = body["value"].as_array() else {
            return vec![reject(400, "not a Graph notification (no value array)")];
        };
        let mut out = Vec::new();
        for n in items {
            let sub = n["subscriptionId"].as_str().unwrap_or("");
            let channel = match ctx.store().get_channel(sub).await {
                Ok(Some(c)) if c.provider == ProviderKind::Outlook => c,
                Ok(_) => {
                    out.push(reject(404, "unknown subscription"));
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "subscription lookup failed");
                    out.push(reject(500, "subscription lookup failed"));
                    continue;
                }
            };
            if !secret_matches(n["clientState"].as_str().unwrap_or(""), &channel) {
                out.push(reject(403, "clientState mismatch"));
                continue;
            }
            let event = match n["lifecycleEvent"].as_str() {
                None => None,
                Some("reauthorizationRequired") => Some(Lifecycle::Reauthorize),
                Some("subscriptionRemoved") => Some(Lifecycle::Removed),
                Some("missed") => Some(Lifecycle::Missed),
                Some(_) => {
                    out.push(Verdict::Acknowledge);
                    continue;
                }
            };
            out.push(match event {
                Some(event) => Verdict::Lifecycle { channel, event },
                None => Verdict::Changed {
                    link_id: channel.link_id.clone(),
                    dedupe: format!(
                        "{sub}-{}-{}",
                        n["resourceData"]["id"].as_str().unwrap_or(""),
                        n["resourceData"]["@odata.etag"].as_str().unwrap_or("")
                    ),
                },
            });
        }
        if out.is_empty() {
            out.push(reject(400, "a notification without items"));
        }
        out
    }
}
