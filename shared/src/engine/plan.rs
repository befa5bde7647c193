//! Pull planning: pure functions from a snapshot (the remote object, its mapping, the hub
//! version, the link's policy and the member's projection) to the actions that bring the
//! hub and the mapping up to date. No I/O: [`super::pull`] reads the snapshot, carries the
//! actions out with conditional writes and, when a hub write loses a race, re-reads that one
//! event and plans it again.
//!
//! The invariants of `docs/design-brief.md` live here as decisions, each covered by the
//! table tests at the end of this file: an echo of our own write is no change; an edit
//! beats a delete; both sides' changes merge field by field under the link's policy
//! ([`super::merge`]); a read-only member's version always wins for its own events.

use crate::ical::EventSeries;
use crate::model::{ConflictPolicy, EventStatus, HubEvent, Link, Mapping, NoticeKind};
use crate::provider::{Author, Etag, RemoteId};

use super::{merge, transform};

/// A hub write planned by a pull: `event` replaces the hub event if its stored version is
/// still `expected` (`None`: the event must not exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct HubWrite {
    /// The new hub event (version already incremented).
    pub event: HubEvent,
    /// The version the plan was made against.
    pub expected: Option<i64>,
}

/// Which run counter an action adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// An event new to the hub.
    Created,
    /// A hub event changed.
    Updated,
    /// A hub event deleted (tombstoned).
    Deleted,
    /// An event that could not be read or written (status `error`).
    Error,
}

/// The actions for one remote object, in order: the hub write (if any), then the mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPlan {
    /// Hub write, conditional on the version planned against.
    pub hub: Option<HubWrite>,
    /// The mapping as it is after the actions.
    pub mapping: Mapping,
    /// Run counter to add one to.
    pub count: Option<Count>,
    /// The event entered `conflict` or `error`: notify the application once.
    pub notice: Option<(NoticeKind, String)>,
    /// Fields changed on both sides (resolved by policy, or left for manual resolution).
    pub conflicts: Vec<String>,
}

impl ItemPlan {
    fn mapping_only(mapping: Mapping) -> Self {
        ItemPlan {
            hub: None,
            mapping,
            count: None,
            notice: None,
            conflicts: Vec::new(),
        }
    }
}

/// What a pull knows when it plans one remote object.
pub struct Snapshot<'a> {
    /// The member, for its policy, transforms and whether it is read-only.
    pub link: &'a Link,
    /// The remote object, parsed.
    pub remote: &'a EventSeries,
    /// Its id and version tag on the member.
    pub href: &'a RemoteId,
    /// Who wrote it, when the provider can tell ([`Author`]).
    pub author: Author,
    /// Version tag (`None` when the listing gave none).
    pub etag: Option<&'a Etag>,
    /// The hub event with the same UID (live or tombstone), if any.
    pub hub: Option<&'a HubEvent>,
    /// This link's mapping for the UID, if any.
    pub mapping: Option<&'a Mapping>,
    /// What the member shows of an iCalendar text under these transforms, parsed
    /// ([`transform::view`], then [`crate::provider::Provider::project`]); `None` when it
    /// holds the text as it is. The plan passes the link's transforms, or none for the
    /// member's own events ([`transform::for_mapping`]).
    pub view: &'a dyn Fn(&transform::Transforms, &str) -> Option<EventSeries>,
    /// Now (epoch ms), stamped on what the plan writes.
    pub now_ms: i64,
}

impl Snapshot<'_> {
    /// The hub event this pull writes; `made_on` as [`HubEvent::made_on`].
    fn new_hub(&self, ical: String, version: i64, made_on: Option<String>) -> HubEvent {
        HubEvent {
            group_id: self.link.group_id.clone(),
            uid: self.remote.uid.clone(),
            version,
            ical,
            deleted: false,
            updated_ms: self.now_ms,
            origin_link: self.link.link_id.clone(),
            made_on,
        }
    }

    fn policy(&self) -> ConflictPolicy {
        if self.link.read_only() {
            ConflictPolicy::PreferRemote
        } else {
            self.link.conflict_policy
        }
    }
}

/// Plan one readable remote object against the hub and this link's mapping.
pub fn plan_item(s: &Snapshot<'_>) -> ItemPlan {
    let uid = &s.remote.uid;
    let remote_ical = s.remote.to_ical();
    let m = s.mapping;
    let mut mapping = m
        .cloned()
        .unwrap_or_else(|| Mapping::new(&s.link.link_id, uid));
    mapping.href = Some(s.href.clone());
    mapping.etag = s.etag.cloned();
    mapping.error = None;
    mapping.conflict_remote = None;
    mapping.updated_ms = s.now_ms;
    if s.link.read_only() {
        // A feed may change only the events it brought: a UID that names another member's
        // event (a hub event last written by someone else, with no mapping of this feed) is
        // never applied, and stays refused.
        let foreign = match m {
            Some(m) => m.foreign,
            None => s.hub.is_some_and(|h| h.origin_link != s.link.link_id),
        };
        if foreign {
            let reason = format!(
                "UID {uid} names an event of another calendar; this read-only calendar may change only its own events"
            );
            let notice = m
                .is_none_or(|m| !m.foreign)
                .then(|| (NoticeKind::Error, reason.clone()));
            mapping.foreign = true;
            mapping.status = EventStatus::Error;
            mapping.error = Some(reason);
            return ItemPlan {
                count: Some(Count::Error),
                notice,
                ..ItemPlan::mapping_only(mapping)
            };
        }
    }
    let synced = |mut mapping: Mapping, version: i64| {
        mapping.base = Some(remote_ical.clone());
        mapping.synced_version = version;
        mapping.status = EventStatus::Synced;
        mapping
    };
    // The transforms this event has on the member: none for its own events.
    let mut t = transform::for_mapping(&s.link.transforms, m);
    let Some(h) = s.hub.filter(|h| !h.deleted) else {
        // calsync's copy of an event made elsewhere, which no mapping knows (the calendar was
        // disconnected and linked again). Not the calendar's own event, which calsync may
        // have written too (an edit from elsewhere), nor one of unknown origin: those come
        // back, as any edit of a deleted event does.
        let calsyncs_copy = m.is_none()
            && s.author == Author::Calsync
            && s.hub.is_some_and(|h| made_elsewhere(h, s.link));
        let base = match m {
            Some(m) => m.base.as_deref(),
            // What calsync last wrote there may be the deleted event's last version.
            None if calsyncs_copy => s.hub.map(|h| h.ical.as_str()),
            None => None,
        };
        let base =
            base.and_then(|b| (s.view)(t, b).or_else(|| EventSeries::parse_single("base", b).ok()));
        let untouched = base.is_some_and(|b| same_but_replies(s.remote, &b));
        // Or an older version, not changed since the event was deleted: no edit after it.
        let older = calsyncs_copy
            && s.hub
                .is_some_and(|h| merge::changed_before(s.remote, h.updated_ms));
        if s.hub.is_some() && (untouched || older) {
            // Deleted in the hub, and only the version tag (a server rewrite) or attendees'
            // answers moved here (or calsync's copy is older than the deletion): not an
            // edit, so the deletion stands and is still owed to this member (with the new
            // etag).
            mapping.status = EventStatus::Pending;
            return ItemPlan::mapping_only(mapping);
        }
        // New to the hub, or an edit of an event deleted elsewhere (edit wins). An object
        // this link had not mapped was made here: the member's own event.
        if m.is_none() {
            mapping.home = true;
        }
        let made_on = if mapping.home {
            Some(s.link.calendar_key())
        } else {
            s.hub.and_then(|h| h.made_on.clone())
        };
        let version = s.hub.map(|h| h.version + 1).unwrap_or(1);
        return ItemPlan {
            hub: Some(HubWrite {
                event: s.new_hub(remote_ical.clone(), version, made_on),
                expected: s.hub.map(|h| h.version),
            }),
            count: Some(Count::Created),
            ..ItemPlan::mapping_only(synced(mapping, version))
        };
    };
    // The hub holds our own output; should it ever not parse, the remote replaces it.
    let hub_series = EventSeries::parse_single(&format!("hub:{uid}"), &h.ical).unwrap_or_default();
    if m.is_none() && h.made_on.as_deref() == Some(s.link.calendar_key().as_str()) {
        // Made on this calendar, which an earlier link of it brought into the hub (a
        // calendar disconnected and linked again): its own.
        mapping.home = true;
        t = &transform::NONE;
    }
    // What the remote can hold of the hub version ([`Provider::project`]).
    let mut hub_view = (s.view)(t, &h.ical).unwrap_or_else(|| hub_series.clone());
    if s.remote.same_content(&hub_view) {
        if m.is_none() && !mapping.home && s.author == Author::Other {
            // Not calsync's write, and the whole event as it is: the member's own copy (an
            // invitation on two calendars), which later transforms must not rewrite.
            let whole = (s.view)(&transform::NONE, &h.ical);
            mapping.home = s.remote.same_content(whole.as_ref().unwrap_or(&hub_series));
        }
        return ItemPlan::mapping_only(synced(mapping, h.version));
    }
    // An object calsync wrote is never the member's own copy; where the provider cannot
    // tell, one in the form the link's transforms give is taken for calsync's.
    let own_copy =
        s.author != Author::Calsync && (t.is_identity() || !transform::in_member_form(t, s.remote));
    if m.is_none() && !mapping.home && own_copy {
        // Not mapped here and unlike the hub event as the member shows it: the member's own
        // copy of an event another member brought (one invitation on two calendars), so
        // the link's transforms never rewrite it. Not when calsync wrote it, or (where the
        // provider cannot tell) when it has the form those transforms give ("Busy"): that
        // is calsync's own write of an older version, whose mapping a crash or a disconnect
        // lost, and its hidden fields must not count as removed.
        mapping.home = true;
        t = &transform::NONE;
        hub_view = (s.view)(t, &h.ical).unwrap_or_else(|| hub_series.clone());
    }
    let lossy = hub_view != hub_series;
    let agreed =
        m.is_some_and(|m| m.synced_version == h.version && m.status != EventStatus::Conflict);
    if agreed && !lossy {
        return ItemPlan {
            hub: Some(HubWrite {
                event: s.new_hub(remote_ical.clone(), h.version + 1, h.made_on.clone()),
                expected: Some(h.version),
            }),
            count: Some(Count::Updated),
            ..ItemPlan::mapping_only(synced(mapping, h.version + 1))
        };
    }
    // Merge base: for a lossy remote, in the remote's projection, so that what it cannot
    // hold counts as unchanged there and the hub keeps it.
    let base = if agreed {
        Some(hub_view.clone())
    } else {
        m.and_then(|m| m.base.as_deref())
            .and_then(|b| (s.view)(t, b).or_else(|| EventSeries::parse_single("base", b).ok()))
    };
    if !agreed && base.as_ref().is_some_and(|b| s.remote.same_content(b)) {
        // Only the remote version tag moved; the hub change is still to be pushed.
        mapping.status = EventStatus::Pending;
        return ItemPlan::mapping_only(mapping);
    }
    // Fields the link's transforms own (a busy copy's title, …) are not the member's to
    // change: compared against what was agreed, its edits of them are no edits. (The
    // member's copy itself is compared below as it is: a shielded edit there is written
    // over with the member's view.) Events made on the member have no transforms there.
    let shielded = match (&base, t.is_identity()) {
        (_, true) => s.remote.clone(),
        (Some(b), false) => transform::shield(t, s.remote, b),
        // No agreed version: the fields the transforms own are the hub's own (not the
        // member's view of them, which the merge would take for the member's edit).
        (None, false) => transform::shield(t, s.remote, &hub_series),
    };
    // A title template's text is the member's view: both sides' titles go back to the hub's
    // form, so that an edited title there is a title edit and an untouched one no change.
    let base = base.map(|b| transform::titles_back(t, b, &hub_series));
    let shielded = transform::titles_back(t, shielded, &hub_series);
    let policy = s.policy();
    let merged = merge::merge(base.as_ref(), &hub_series, &shielded, policy);
    let conflicts = merged.conflicts.clone();
    if policy == ConflictPolicy::Manual && !conflicts.is_empty() {
        let notice = m
            .is_none_or(|m| m.status != EventStatus::Conflict)
            .then(|| {
                let why = format!("changed on both sides: {}", conflicts.join(", "));
                (NoticeKind::Conflict, why)
            });
        mapping.status = EventStatus::Conflict;
        mapping.conflict_remote = Some(remote_ical.clone());
        mapping.error = Some(format!(
            "conflict on {}; resolve manually",
            conflicts.join(", ")
        ));
        return ItemPlan {
            notice,
            conflicts,
            ..ItemPlan::mapping_only(mapping)
        };
    }
    let mut version = h.version;
    let mut hub = None;
    if !merged.series.same_content(&hub_series) {
        version = h.version + 1;
        hub = Some(HubWrite {
            event: s.new_hub(merged.series.to_ical(), version, h.made_on.clone()),
            expected: Some(h.version),
        });
    }
    mapping.base = Some(remote_ical.clone());
    let merged_view =
        (s.view)(t, &merged.series.to_ical()).unwrap_or_else(|| merged.series.clone());
    if merged_view.same_content(s.remote) {
        mapping.synced_version = version;
        mapping.status = EventStatus::Synced;
    } else {
        mapping.synced_version = m.map(|m| m.synced_version).unwrap_or(0).min(version - 1);
        mapping.status = EventStatus::Pending;
    }
    if !conflicts.is_empty() {
        mapping.error = Some(format!(
            "conflict on {} resolved by {policy:?}",
            conflicts.join(", ")
        ));
    }
    ItemPlan {
        count: hub.as_ref().map(|_| Count::Updated),
        hub,
        mapping,
        notice: None,
        conflicts,
    }
}

/// `a` and `b` have the same content once attendees' lines (their answers, PARTSTAT) are
/// left out: an RSVP is not an edit that brings a deleted event back.
/// Was `h` made on a calendar other than `link`'s, or by the application (its
/// [`HubEvent::made_on`] recorded, and not this calendar's)?
fn made_elsewhere(h: &HubEvent, link: &Link) -> bool {
    h.made_on
        .as_deref()
        .is_some_and(|o| o != link.calendar_key())
}

fn same_but_replies(a: &EventSeries, b: &EventSeries) -> bool {
    let strip = |s: &EventSeries| {
        let mut c = s.content();
        for f in c.values_mut() {
            f.remove("ATTENDEE");
        }
        c
    };
    strip(a) == strip(b)
}

/// Plan a remote object that could not be read: its mapping (under `key`) gets status
/// `error` with `reason`, keeping what it had agreed; the application hears of it once per
/// reason.
pub fn plan_unreadable(
    link: &Link,
    key: &str,
    mapping: Option<&Mapping>,
    href: &RemoteId,
    etag: Option<&Etag>,
    reason: &str,
    now_ms: i64,
) -> ItemPlan {
    let mut m = mapping
        .cloned()
        .unwrap_or_else(|| Mapping::new(&link.link_id, key));
    let notice = (m.status != EventStatus::Error || m.error.as_deref() != Some(reason))
        .then(|| (NoticeKind::Error, reason.to_string()));
    m.href = Some(href.clone());
    m.etag = etag.cloned();
    m.status = EventStatus::Error;
    m.error = Some(reason.to_string());
    m.updated_ms = now_ms;
    ItemPlan {
        count: Some(Count::Error),
        notice,
        ..ItemPlan::mapping_only(m)
    }
}

/// The actions for a UID the member no longer holds.
#[derive(Debug, Clone, PartialEq)]
pub enum RemovalPlan {
    /// Nothing to do in the hub (already gone): forget the mapping.
    Forget,
    /// Tombstone the hub event (conditional on the version read), then forget the mapping.
    Tombstone(HubWrite),
    /// The hub changed the event after the member deleted it: the edit wins; the mapping
    /// loses its href so the next push recreates the event there.
    Recreate(Mapping),
}

/// Plan the removal of `mapping`'s event from the member, against the hub event `hub`.
pub fn plan_removal(
    link: &Link,
    mapping: &Mapping,
    hub: Option<&HubEvent>,
    now_ms: i64,
) -> RemovalPlan {
    match hub.filter(|h| !h.deleted) {
        None => RemovalPlan::Forget,
        // Never applied, so never deleted either.
        Some(_) if mapping.foreign => RemovalPlan::Forget,
        Some(h) if h.version == mapping.synced_version || link.read_only() => {
            RemovalPlan::Tombstone(HubWrite {
                event: HubEvent {
                    version: h.version + 1,
                    deleted: true,
                    updated_ms: now_ms,
                    origin_link: link.link_id.clone(),
                    ..h.clone()
                },
                expected: Some(h.version),
            })
        }
        Some(_) => {
            let mut m = mapping.clone();
            m.href = None;
            m.etag = None;
            m.status = EventStatus::Pending;
            m.updated_ms = now_ms;
            RemovalPlan::Recreate(m)
        }
    }
}

/// How far back the deletion brake counts deletions already applied (milliseconds): 24 h.
pub const BRAKE_WINDOW_MS: i64 = 86_400_000;

/// The deletion brake over a rolling window ([`BRAKE_WINDOW_MS`]): `Some(reason)` when the
/// `removed` deletions of this pull, with the `recent` ones applied in the window before it,
/// reach `brake_min` and are more than `brake_ratio` of the events the link had at the
/// window's start (`mapped` now + `recent`), and the link has no override. Deletions that
/// drip in a few per pull are therefore held back like one mass deletion.
pub fn brake(link: &Link, removed: usize, mapped: usize, recent: usize) -> Option<String> {
    if removed == 0 {
        return None;
    }
    let total = removed + recent;
    let base = mapped + recent;
    let fired = !link.allow_mass_delete
        && total >= link.brake_min as usize
        && total as f64 > link.brake_ratio * base as f64;
    fired.then(|| {
        let earlier = if recent > 0 {
            format!(" (with {recent} deleted in the last 24 h)")
        } else {
            String::new()
        };
        format!(
            "deletion brake: the pull would delete {total} of {base} events{earlier} (limit {:.0}% and at least {}); deletions held back",
            link.brake_ratio * 100.0,
            link.brake_min
        )
    })
}

/// The deletions of `window` (epoch ms, count) within [`BRAKE_WINDOW_MS`] before `now_ms`.
pub fn recent_deletions(window: &[(i64, u32)], now_ms: i64) -> usize {
    window
        .iter()
        .filter(|(t, _)| now_ms - t < BRAKE_WINDOW_MS)
        .map(|(_, n)| *n as usize)
        .sum()
}

/// True when `link` owes a write for one of the hub's events after a pull (so a push of
/// it follows): an event it lacks, a newer hub version, or a deletion it still holds.
/// Conflicts, events in `error` at their version and events its transforms leave out
/// owe nothing.
pub fn owes_push<'a>(
    link: &Link,
    hub: impl IntoIterator<Item = &'a HubEvent>,
    mapping_of: impl Fn(&str) -> Option<&'a Mapping>,
) -> bool {
    !link.read_only()
        && hub.into_iter().any(|h| match mapping_of(&h.uid) {
            None => !h.deleted,
            Some(m) if m.status == EventStatus::Conflict || m.failed_at(h.version) => false,
            Some(m) if m.excluded && m.synced_version >= h.version => false,
            Some(m) => {
                (h.deleted && m.href.is_some())
                    || (!h.deleted && (m.href.is_none() || m.synced_version < h.version))
            }
        })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "plan_transform_tests.rs"]
mod transform_tests;
