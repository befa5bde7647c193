//! The sync-back a pull queues for the other members of its group when it changed the hub:
//! at the end of the pull (through the outbox, `handlers::job`), and already after the first
//! page that changed the hub when more pages follow ([`EarlySyncBack`]), so that a large
//! calendar's events start reaching the other members while the rest of it is pulled.

use crate::config::Ctx;
use crate::engine::EarlyChanges;
use crate::model::{Link, LinkStatus};
use crate::queue::{QueueKind, SyncJob};
use crate::store::{Store, StoreError};

use super::SYNC_BACK;

/// The sync-back jobs for `link`'s group's other members, deduplicated by `slot` (SQS FIFO:
/// one job per member and slot): members that can be written and are not waiting for
/// their user to reconnect (they get their pending changes from the first sync after it).
///
/// Errors: DynamoDB failure.
pub async fn sync_back_jobs(
    store: &Store,
    link: &Link,
    slot: &str,
) -> Result<Vec<SyncJob>, StoreError> {
    Ok(store
        .links_of_group(&link.group_id)
        .await?
        .into_iter()
        .filter(|other| {
            other.link_id != link.link_id
                && !other.read_only()
                && other.status != LinkStatus::ReconnectNeeded
        })
        .map(|other| SyncJob::coalesced(&other.link_id, SYNC_BACK, slot))
        .collect())
}

/// Queues the other members' sync-back once a pull's first pages changed the hub
/// ([`EarlyChanges`]). Its slot differs from the end-of-pull one, so that both are sent;
/// the end-of-pull one carries what the later pages changed. A failure is only logged: the
/// end of the pull sends its jobs through the outbox as always.
pub struct EarlySyncBack<'a> {
    /// The function's context.
    pub ctx: &'a Ctx,
    /// The link being pulled.
    pub link: &'a Link,
    /// The pull's run id.
    pub run_id: &'a str,
}

#[async_trait::async_trait]
impl EarlyChanges for EarlySyncBack<'_> {
    async fn hub_changed(&self) {
        let slot = format!("{}:early", self.run_id);
        let sent = match sync_back_jobs(&self.ctx.store(), self.link, &slot).await {
            Ok(jobs) if jobs.is_empty() => Ok(0),
            Ok(jobs) => self
                .ctx
                .queues()
                .send(QueueKind::SyncBack, &jobs)
                .await
                .map(|_| jobs.len()),
            Err(e) => Err(e.into()),
        };
        match sent {
            Ok(n) => {
                tracing::info!(link = %self.link.link_id, members = n, "early sync-back queued")
            }
            Err(e) => {
                tracing::warn!(link = %self.link.link_id, error = %e, "early sync-back not queued")
            }
        }
    }
}
