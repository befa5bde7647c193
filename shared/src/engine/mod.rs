//! The sync engine: pull (remote → hub) and push (hub → remote) for one link.
//!
//! State per (link, UID) is a [`Mapping`]: remote id and version, the content last agreed
//! (the merge base) and the hub version the remote reflects (`synced_version`).
//!
//! - Echo suppression: a pulled object whose version equals the mapping's etag — the write
//!   receipt of our own push, or simply unchanged — is skipped without fetching it.
//! - Pull: a remote change to an event the hub has not changed since they agreed replaces
//!   the hub version; if both changed, [`merge::merge`] decides field by field under the
//!   link's [`ConflictPolicy`]. ICS members always win for their own events (the next feed
//!   change wins). Removals tombstone the hub event unless the hub changed it since (an edit
//!   beats a delete: the event is recreated). A pull that would delete more than the link's
//!   brake allows is quarantined: its other changes apply, its deletions and cursor do not.
//! - Push: creates at a deterministic id with `If-None-Match: *` (a crash between the remote
//!   write and the mapping write finds the object on retry and adopts it), updates and
//!   deletes with `If-Match`; a 412 asks for a pull of that link, which merges.
//! - Hub writes are conditional on the version read; a lost race re-reads and retries.

pub mod copies;
pub mod merge;
pub mod plan;
mod push;
pub mod push_plan;
mod push_record;
pub mod transform;

mod pull;
mod pull_state;
pub use pull::{pull, PullFrom, PULL_PAGE, TARGETED_MAX};
pub use push::{push, PushFrom, PUSH_OVERLAP_MS, PUSH_PAGE, PUSH_TARGETED_MAX};

use crate::provider::{Cursor, ProviderError};
use crate::store::StoreError;

/// Engine failures that stop a run (per-event problems never do).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The provider failed for the calendar as a whole.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// DynamoDB failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a pull changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The cursor to save (`None`: keep the stored one — unchanged, or held back by the
    /// deletion brake). The caller saves it together with the jobs the pull makes owed
    /// (the outbox, [`crate::store::CursorState`]).
    pub cursor: Option<Cursor>,
    /// The hub changed: other members need a push.
    pub hub_changed: bool,
    /// This link itself has hub changes waiting to be pushed.
    pub self_pending: bool,
    /// Deletions were held back by the brake.
    pub quarantined: bool,
    /// The pull read the whole group at this time (epoch ms) and the link owes none of its
    /// events a write: as good a push watermark as a complete push's
    /// ([`crate::model::Link::pushed_through_ms`]).
    pub in_sync_at: Option<i64>,
}

/// What a push left undone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// A precondition failed: pull this link to merge the remote change, then push again.
    pub needs_pull: bool,
    /// The run stopped at its deadline with writes left: push again (a continuation).
    pub more: bool,
    /// When the push began reading the hub (epoch ms): the link's next watermark
    /// ([`crate::model::Link::pushed_through_ms`]) once the push is complete.
    pub read_ms: i64,
    /// It read the whole group, counted as this [`crate::model::Link::full_push_seq`] before
    /// the read (`None`: it read the changes since the watermark).
    pub full_seq: Option<i64>,
    /// With `more` after reading the whole group: where its continuation picks up.
    pub resume: Option<crate::queue::PushResume>,
}
