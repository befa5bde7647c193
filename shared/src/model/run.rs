//! The record of one sync run on a link, with the events that entered `conflict` or `error`
//! in it.

use serde::{Deserialize, Serialize};

/// Counts and outcome of one sync operation on one link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Partition key.
    pub link_id: String,
    /// uuid v7 (time-ordered), sort key.
    pub run_id: String,
    /// `pull` or `push`.
    pub kind: String,
    /// What started it: `schedule`, `autosync`, `webhook`, `sync-back`, `retry`, `manual`.
    pub trigger: String,
    /// Start (epoch ms).
    pub started_ms: i64,
    /// End (epoch ms).
    pub ended_ms: i64,
    /// Provider HTTP requests made.
    pub api_calls: u32,
    /// AWS calls the run made before this record was written ([`crate::metrics`]; the
    /// record's own write, the link's status and the lease's release follow it).
    #[serde(default)]
    pub aws_calls: u32,
    /// DynamoDB items those calls read (as DynamoDB charges reads: what a Query scanned).
    #[serde(default)]
    pub ddb_items_read: u32,
    /// Events created (in the hub on pull, remotely on push).
    pub created: u32,
    /// Events updated.
    pub updated: u32,
    /// Events deleted.
    pub deleted: u32,
    /// Conflicts met (resolved by policy or left for manual resolution).
    pub conflicts: u32,
    /// Events that ended in status `error`.
    pub errors: u32,
    /// `ok`, `quarantined`, `busy` (lease held elsewhere) or `failed`.
    pub outcome: String,
    /// Failure or quarantine reason.
    #[serde(default)]
    pub error: Option<String>,
    /// Events that entered status `conflict` or `error` in this run (at most
    /// [`RunRecord::MAX_NOTICES`]), each notified to the application once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<EventNotice>,
    /// TTL attribute (epoch seconds): records expire after 30 days.
    pub expires_at: i64,
}

impl RunRecord {
    /// Most notices a run record keeps.
    pub const MAX_NOTICES: usize = 50;

    /// Record the run's own AWS calls and DynamoDB items read (saturating at `u32::MAX`).
    pub fn count_aws(&mut self, aws: &crate::metrics::AwsCalls) {
        self.aws_calls = u32::try_from(aws.total()).unwrap_or(u32::MAX);
        self.ddb_items_read = u32::try_from(aws.ddb_items_read).unwrap_or(u32::MAX);
    }

    /// Note that `event_id` entered `kind` in this run, for `reason`.
    pub fn notice(&mut self, kind: NoticeKind, event_id: &str, reason: &str) {
        if self.notices.len() < Self::MAX_NOTICES {
            self.notices.push(EventNotice {
                kind,
                event_id: event_id.into(),
                reason: reason.into(),
            });
        }
    }
}

/// What happened to one event in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Manual policy: both versions kept, waiting for the application to resolve.
    Conflict,
    /// The provider refused the event, or its data could not be read.
    Error,
    /// Left on the member where calsync would have deleted it: a copy edited there since
    /// calsync wrote it, when the link's copies were removed
    /// ([`crate::disconnect::remove_copies`]).
    Kept,
}

/// One event's change of status in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventNotice {
    /// Conflict or error.
    pub kind: NoticeKind,
    /// Hub UID (or `href:<href>` for unreadable remote data).
    pub event_id: String,
    /// Readable reason (the provider's words; never a secret).
    pub reason: String,
}
