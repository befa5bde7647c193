//! Push planning: pure functions from a snapshot (this link's mappings, the hub's events,
//! the link's transforms, now) to the writes the member needs, and from a write's outcome
//! to what is recorded. No I/O: [`super::push`] sends the writes in chunks and records each
//! outcome as [`settle`] decides.

use std::collections::HashMap;

use super::transform;
use crate::model::{EventStatus, HubEvent, Link, Mapping, NoticeKind};
use crate::provider::{ProviderError, WriteResult};

/// The write a push plans for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// At the event's deterministic id, `If-None-Match: *`.
    Create,
    /// `If-Match` of the mapping's etag.
    Update,
    /// `If-Match` of the mapping's etag (a hub deletion, or the transforms leave it out).
    Delete,
}

/// What a push does, in order: the mapping-only records first, then the writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushPlan {
    /// Writes, by UID: the event as the member gets it, its mapping before the write.
    pub writes: Vec<(HubEvent, Mapping, Planned)>,
    /// Mappings to store without a write (events the transforms leave out).
    pub records: Vec<Mapping>,
    /// Mappings to forget (hub deletions of events never written to the member).
    pub forget: Vec<String>,
}

/// Plan the writes `link` needs for the hub's `events` given its mappings `maps` (consumed),
/// rendering each owed event through the link's transforms at `now` (other members' events
/// only: [`transform::for_mapping`]).
pub fn plan_push(
    link: &Link,
    mut maps: HashMap<String, Mapping>,
    mut events: Vec<HubEvent>,
    now: chrono::DateTime<chrono::Utc>,
) -> PushPlan {
    let mut plan = PushPlan::default();
    if link.read_only() {
        return plan;
    }
    events.sort_by(|a, b| a.uid.cmp(&b.uid));
    for mut ev in events {
        let m = maps.remove(&ev.uid);
        // The link's transforms, or none for an event made on the member.
        let t = transform::for_mapping(&link.transforms, m.as_ref());
        // Rendering parses (and for a window expands) the event: only for events owed a
        // write, or, where the transforms can leave events out, for every live event (its
        // inclusion can change with the days).
        let owed = m
            .as_ref()
            .is_none_or(|m| m.href.is_none() || m.synced_version < ev.version);
        if !ev.deleted && !t.is_identity() && (owed || t.may_exclude()) {
            match transform::render(t, &ev.ical, now) {
                transform::Rendered::Write(shown) => ev.ical = shown,
                transform::Rendered::Exclude => {
                    if m.as_ref()
                        .is_some_and(|m| m.excluded && m.synced_version >= ev.version)
                    {
                        continue;
                    }
                    match m {
                        // On the member from before: take it away there.
                        Some(m) if m.href.is_some() => {
                            plan.writes.push((ev, m, Planned::Delete));
                        }
                        m => {
                            let m = m.unwrap_or_else(|| Mapping::new(&link.link_id, &ev.uid));
                            let version = ev.version;
                            plan.records
                                .push(excluded(m, version, now.timestamp_millis()));
                        }
                    }
                    continue;
                }
            }
        }
        if m.as_ref()
            .is_some_and(|m| m.status == EventStatus::Conflict || m.failed_at(ev.version))
        {
            continue;
        }
        if ev.deleted {
            match m {
                None => {}
                Some(m) if m.href.is_none() => plan.forget.push(ev.uid),
                Some(m) => plan.writes.push((ev, m, Planned::Delete)),
            }
            continue;
        }
        if !owed {
            continue;
        }
        let kind = match &m {
            Some(m) if m.href.is_some() => Planned::Update,
            _ => Planned::Create,
        };
        let mapping = m.unwrap_or_else(|| Mapping::new(&link.link_id, &ev.uid));
        plan.writes.push((ev, mapping, kind));
    }
    plan
}

/// `m` as the mapping of an event the link's transforms leave out at hub `version`: nothing
/// on the member, nothing owed to it.
pub fn excluded(mut m: Mapping, version: i64, now_ms: i64) -> Mapping {
    m.href = None;
    m.etag = None;
    m.excluded = true;
    m.synced_version = version;
    m.status = EventStatus::Synced;
    m.error = Some("left out by the link's transforms".into());
    m.updated_ms = now_ms;
    m
}

/// Note left on a mapping whose write met a precondition failure, until a pull looks again.
pub const PRECONDITION_NOTE: &str = "precondition failed; re-reading the calendar";

/// What one write's outcome records.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Store the mapping.
    Record(Mapping),
    /// Forget this mapping (the event is gone from hub and member).
    Forget(Mapping),
    /// A precondition failed: store the mapping and pull the link to merge.
    Reread(Mapping),
    /// The event is in `error` for this version: store the mapping; `notice` when new.
    Failed {
        /// The mapping in status `error`.
        mapping: Mapping,
        /// The reason, to notify once.
        notice: Option<(NoticeKind, String)>,
    },
    /// The failure concerns the whole calendar (auth, outage): stop the run.
    Stop(ProviderError),
}

/// True when a write's result concerns the whole calendar (credentials refused, outage):
/// settling it stops the run ([`Settled::Stop`]), so no further writes should be sent.
pub fn stops_run(result: &crate::provider::WriteOutcome) -> bool {
    matches!(
        result,
        Err(ProviderError::Unauthorized(_) | ProviderError::Unavailable { .. })
    )
}

/// Which run counter a settled write adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// The member got a new event.
    Created,
    /// The member's event changed.
    Updated,
    /// The member's event was deleted.
    Deleted,
}

/// Decide what a write's `result` records for the event `ev` (as written) and its mapping
/// `m` before the write. `result` for a create that met our own earlier object is the
/// outcome of adopting it (see `push::adopt`).
pub fn settle(
    kind: Planned,
    ev: &HubEvent,
    mut m: Mapping,
    result: Result<Option<WriteResult>, ProviderError>,
    now_ms: i64,
) -> (Settled, Option<Tally>) {
    m.updated_ms = now_ms;
    match (kind, result) {
        // Taken off the member by its transforms (the hub keeps it): the mapping says so,
        // and the link owes nothing for this version.
        (Planned::Delete, Ok(_)) if !ev.deleted => (
            Settled::Record(excluded(m, ev.version, now_ms)),
            Some(Tally::Deleted),
        ),
        (Planned::Delete, Ok(_)) => (Settled::Forget(m), Some(Tally::Deleted)),
        (_, Ok(Some(w))) => {
            let tally = if kind == Planned::Create {
                Tally::Created
            } else {
                Tally::Updated
            };
            m.href = Some(w.href);
            m.etag = w.etag;
            m.base = Some(ev.ical.clone());
            m.synced_version = ev.version;
            m.status = EventStatus::Synced;
            m.error = None;
            m.failed_version = None;
            m.excluded = false;
            (Settled::Record(m), Some(tally))
        }
        (_, Ok(None)) => {
            let url = m.href.clone().unwrap_or_default().to_string();
            let e = ProviderError::Protocol {
                url,
                detail: "a write reported no location".into(),
            };
            (failed(m, e, ev.version), None)
        }
        (Planned::Delete, Err(e @ ProviderError::PreconditionFailed(_)))
        | (
            Planned::Create | Planned::Update,
            Err(e @ (ProviderError::PreconditionFailed(_) | ProviderError::NotFound(_))),
        ) => (precondition_failed(m, e, ev.version), None),
        (_, Err(e)) => (failed(m, e, ev.version), None),
    }
}

/// A write met 412 (or 404): the remote changed, so ask for a full pull that merges it. If
/// the same write fails again with nothing new pulled in between (the note is still there),
/// the server's preconditions cannot be satisfied: the event gets status `error` instead of
/// push and pull chasing each other.
fn precondition_failed(mut m: Mapping, e: ProviderError, version: i64) -> Settled {
    if m.status == EventStatus::Pending && m.error.as_deref() == Some(PRECONDITION_NOTE) {
        let url = m.href.clone().unwrap_or_default().to_string();
        let detail = format!("{e} again after a full re-read");
        let e = ProviderError::Rejected {
            url,
            status: 412,
            detail,
        };
        return failed(m, e, version);
    }
    m.status = EventStatus::Pending;
    m.error = Some(PRECONDITION_NOTE.into());
    Settled::Reread(m)
}

/// A per-event provider failure: the event gets status `error` for hub `version` (not
/// retried until the event changes), unless the failure concerns the whole calendar (auth,
/// outage), which stops the run.
///
/// [`stops_run`] tells the same from the result alone.
fn failed(mut m: Mapping, e: ProviderError, version: i64) -> Settled {
    match e {
        ProviderError::Unauthorized(_) | ProviderError::Unavailable { .. } => Settled::Stop(e),
        e => {
            let notice = (!m.failed_at(version)).then(|| (NoticeKind::Error, e.to_string()));
            m.status = EventStatus::Error;
            m.error = Some(e.to_string());
            m.failed_version = Some(version);
            Settled::Failed { mapping: m, notice }
        }
    }
}

#[cfg(test)]
#[path = "push_plan_tests.rs"]
mod tests;
