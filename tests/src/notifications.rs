//! The application's notifications on the local stack: `infra/local/create_stack.py` routes
//! the bus `calsync-bus` (source `calsync`) to the SQS queue `calsync-notifications`; this
//! reads it as an application's consumer would.

use calsync::config::Ctx;
use serde_json::Value;

/// Local queue the notification rule targets.
pub const QUEUE: &str = "calsync-notifications";

/// One notification as delivered: EventBridge's `detail-type` and `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// `Event Conflict`, `Link Reconnect Needed`, …
    pub detail_type: String,
    /// The event's detail.
    pub detail: Value,
    /// The whole delivered text (to check it for secrets).
    pub raw: String,
}

/// Receive and delete everything waiting in the queue (until a receive comes back empty).
pub async fn take_all(ctx: &Ctx) -> anyhow::Result<Vec<Delivered>> {
    let sqs = &ctx.clients.sqs;
    let url = sqs
        .get_queue_url()
        .queue_name(QUEUE)
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await?;
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let raw = m.body().unwrap_or("").to_string();
            let v: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
            out.push(Delivered {
                detail_type: v["detail-type"].as_str().unwrap_or("").to_string(),
                detail: v["detail"].clone(),
                raw,
            });
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(h)
                    .send()
                    .await?;
            }
        }
    }
    Ok(out)
}

/// The delivered notifications about `group`.
pub async fn of_group(ctx: &Ctx, group: &str) -> anyhow::Result<Vec<Delivered>> {
    Ok(take_all(ctx)
        .await?
        .into_iter()
        .filter(|d| d.detail["group_id"] == group)
        .collect())
}
