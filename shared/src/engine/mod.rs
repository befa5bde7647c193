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

pub mod merge;
mod push;
pub mod transform;

pub use push::push;

use std::collections::{HashMap, HashSet};

use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::{ConflictPolicy, EventStatus, HubEvent, Link, Mapping, NoticeKind, RunRecord};
use crate::provider::{Etag, Provider, ProviderError, RemoteId, RemoteRef};
use crate::store::{Store, StoreError};

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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PullOutcome {
    /// The hub changed: other members need a push.
    pub hub_changed: bool,
    /// This link itself has hub changes waiting to be pushed.
    pub self_pending: bool,
    /// Deletions were held back by the brake.
    pub quarantined: bool,
}

/// What a push left undone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    /// A precondition failed: pull this link to merge the remote change, then push again.
    pub needs_pull: bool,
    /// The run stopped at its deadline with writes left: push again (a continuation).
    pub more: bool,
}

const HUB_RETRIES: usize = 5;

struct PullState<'a> {
    store: &'a Store,
    provider: &'a dyn Provider,
    link: &'a Link,
    maps: HashMap<String, Mapping>,
    hub: HashMap<String, HubEvent>,
    run: &'a mut RunRecord,
    hub_changed: bool,
}

impl PullState<'_> {
    async fn save_mapping(&mut self, mut m: Mapping) -> Result<(), StoreError> {
        m.updated_ms = now_millis();
        self.store.put_mapping(&m).await?;
        self.maps.insert(m.uid.clone(), m);
        Ok(())
    }

    /// Write a hub event conditionally; on a lost race reload it and return `false`.
    async fn write_hub(&mut self, ev: HubEvent, expected: Option<i64>) -> Result<bool, StoreError> {
        match self.store.put_event(&ev, expected).await {
            Ok(()) => {
                self.hub.insert(ev.uid.clone(), ev);
                self.hub_changed = true;
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => {
                match self.store.get_event(&ev.group_id, &ev.uid).await? {
                    Some(fresh) => self.hub.insert(ev.uid.clone(), fresh),
                    None => self.hub.remove(&ev.uid),
                };
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn new_hub(&self, uid: &str, ical: String, version: i64, deleted: bool) -> HubEvent {
        HubEvent {
            group_id: self.link.group_id.clone(),
            uid: uid.into(),
            version,
            ical,
            deleted,
            updated_ms: now_millis(),
            origin_link: self.link.link_id.clone(),
        }
    }

    async fn mark_error(
        &mut self,
        key: String,
        href: &RemoteId,
        etag: Option<Etag>,
        reason: String,
    ) -> Result<(), StoreError> {
        tracing::warn!(link = %self.link.link_id, href = %href, %reason, "event not synced");
        let mut m = self
            .maps
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Mapping::new(&self.link.link_id, &key));
        if m.status != EventStatus::Error || m.error.as_deref() != Some(reason.as_str()) {
            self.run.notice(NoticeKind::Error, &key, &reason);
        }
        m.href = Some(href.clone());
        m.etag = etag;
        m.status = EventStatus::Error;
        m.error = Some(reason);
        self.run.errors += 1;
        self.save_mapping(m).await
    }

    /// The mapping key for a remote object: the UID already mapped to `href`, the UID its
    /// id carries ([`Provider::uid_of`]), else `href:<href>`.
    fn key_for_href(&self, href: &RemoteId) -> String {
        self.maps
            .values()
            .find(|m| m.href.as_ref() == Some(href))
            .map(|m| m.uid.clone())
            .or_else(|| self.provider.uid_of(href))
            .unwrap_or_else(|| format!("href:{href}"))
    }

    /// `ical` as this member shows it: what the provider reads back ([`Provider::project`])
    /// of what the link's transforms write ([`transform::view`]), parsed; `None` when the
    /// member holds it as it is.
    fn view(&self, ical: &str) -> Option<EventSeries> {
        let t = &self.link.transforms;
        let shown = transform::view(t, ical, chrono::Utc::now());
        let projected = self.provider.project(shown.as_deref().unwrap_or(ical));
        let p = projected.or(shown)?;
        EventSeries::parse_single("projection", &p).ok()
    }

    async fn apply_item(&mut self, item: RemoteRef) -> Result<(), StoreError> {
        let data = item.data.clone().unwrap_or_default();
        let remote = match EventSeries::parse_single(&item.href, &data) {
            Ok(r) => r,
            Err(e) => {
                let key = self.key_for_href(&item.href);
                return self
                    .mark_error(key, &item.href, item.etag, e.to_string())
                    .await;
            }
        };
        // A previous error recorded under the href is superseded by the readable version.
        let stale = format!("href:{}", item.href);
        if self.maps.remove(&stale).is_some() {
            self.store
                .delete_mapping(&self.link.link_id, &stale)
                .await?;
        }
        let policy = if self.link.read_only() {
            ConflictPolicy::PreferRemote
        } else {
            self.link.conflict_policy
        };
        let uid = remote.uid.clone();
        let remote_ical = remote.to_ical();
        for _ in 0..HUB_RETRIES {
            let h = self.hub.get(&uid).cloned();
            let m = self.maps.get(&uid).cloned();
            let mut mapping = m
                .clone()
                .unwrap_or_else(|| Mapping::new(&self.link.link_id, &uid));
            mapping.href = Some(item.href.clone());
            mapping.etag = item.etag.clone();
            mapping.error = None;
            mapping.conflict_remote = None;
            let live = h.as_ref().filter(|h| !h.deleted);
            let Some(h) = live else {
                // New to the hub, or an edit of an event deleted elsewhere (edit wins).
                let version = h.as_ref().map(|h| h.version + 1).unwrap_or(1);
                let ev = self.new_hub(&uid, remote_ical.clone(), version, false);
                if !self.write_hub(ev, h.as_ref().map(|h| h.version)).await? {
                    continue;
                }
                self.run.created += 1;
                mapping.base = Some(remote_ical.clone());
                mapping.synced_version = version;
                mapping.status = EventStatus::Synced;
                return self.save_mapping(mapping).await;
            };
            // The hub holds our own output; should it ever not parse, the remote replaces it.
            let hub_series =
                EventSeries::parse_single(&format!("hub:{uid}"), &h.ical).unwrap_or_default();
            // What the remote can hold of the hub version ([`Provider::project`]).
            let hub_view = self.view(&h.ical).unwrap_or_else(|| hub_series.clone());
            let lossy = hub_view != hub_series;
            let agreed = m.as_ref().is_some_and(|m| {
                m.synced_version == h.version && m.status != EventStatus::Conflict
            });
            if remote.same_content(&hub_view) {
                mapping.base = Some(remote_ical.clone());
                mapping.synced_version = h.version;
                mapping.status = EventStatus::Synced;
                return self.save_mapping(mapping).await;
            }
            if agreed && !lossy {
                let ev = self.new_hub(&uid, remote_ical.clone(), h.version + 1, false);
                if !self.write_hub(ev, Some(h.version)).await? {
                    continue;
                }
                self.run.updated += 1;
                mapping.base = Some(remote_ical.clone());
                mapping.synced_version = h.version + 1;
                mapping.status = EventStatus::Synced;
                return self.save_mapping(mapping).await;
            }
            // Merge base: for a lossy remote, in the remote's projection, so that what it
            // cannot hold counts as unchanged there and the hub keeps it.
            let base = if agreed {
                Some(hub_view.clone())
            } else {
                m.as_ref()
                    .and_then(|m| m.base.as_deref())
                    .and_then(|b| match self.view(b) {
                        Some(v) => Some(v),
                        None => EventSeries::parse_single("base", b).ok(),
                    })
            };
            if !agreed && base.as_ref().is_some_and(|b| remote.same_content(b)) {
                // Only the remote version tag moved; the hub change is still to be pushed.
                mapping.status = EventStatus::Pending;
                return self.save_mapping(mapping).await;
            }
            // Fields the link's transforms own (a busy copy's title, …) are not the member's
            // to change: compared against what was agreed, its edits of them are no edits.
            // (The member's copy itself is compared below as it is: a shielded edit there is
            // written over with the member's view.)
            let shielded = match (&base, self.link.transforms.is_identity()) {
                (_, true) => remote.clone(),
                (Some(b), false) => transform::shield(&self.link.transforms, &remote, b),
                (None, false) => transform::shield(&self.link.transforms, &remote, &hub_view),
            };
            let merged = merge::merge(base.as_ref(), &hub_series, &shielded, policy);
            if !merged.conflicts.is_empty() {
                self.run.conflicts += 1;
                tracing::info!(link = %self.link.link_id, uid = %uid, fields = ?merged.conflicts, ?policy, "conflict");
            }
            if policy == ConflictPolicy::Manual && !merged.conflicts.is_empty() {
                if m.as_ref().is_none_or(|m| m.status != EventStatus::Conflict) {
                    let why = format!("changed on both sides: {}", merged.conflicts.join(", "));
                    self.run.notice(NoticeKind::Conflict, &uid, &why);
                }
                mapping.status = EventStatus::Conflict;
                mapping.conflict_remote = Some(remote_ical.clone());
                mapping.error = Some(format!(
                    "conflict on {}; resolve manually",
                    merged.conflicts.join(", ")
                ));
                return self.save_mapping(mapping).await;
            }
            let mut version = h.version;
            if !merged.series.same_content(&hub_series) {
                let ev = self.new_hub(&uid, merged.series.to_ical(), h.version + 1, false);
                if !self.write_hub(ev, Some(h.version)).await? {
                    continue;
                }
                self.run.updated += 1;
                version = h.version + 1;
            }
            mapping.base = Some(remote_ical.clone());
            let merged_view = self
                .view(&merged.series.to_ical())
                .unwrap_or_else(|| merged.series.clone());
            if merged_view.same_content(&remote) {
                mapping.synced_version = version;
                mapping.status = EventStatus::Synced;
            } else {
                mapping.synced_version = m
                    .as_ref()
                    .map(|m| m.synced_version)
                    .unwrap_or(0)
                    .min(version - 1);
                mapping.status = EventStatus::Pending;
            }
            if !merged.conflicts.is_empty() {
                mapping.error = Some(format!(
                    "conflict on {} resolved by {policy:?}",
                    merged.conflicts.join(", ")
                ));
            }
            return self.save_mapping(mapping).await;
        }
        Err(StoreError::Conflict {
            table: format!("events (uid {uid}: {HUB_RETRIES} lost races)"),
        })
    }

    async fn apply_removal(&mut self, uid: &str) -> Result<(), StoreError> {
        for _ in 0..HUB_RETRIES {
            let Some(m) = self.maps.get(uid).cloned() else {
                return Ok(());
            };
            let h = self.hub.get(uid).cloned().filter(|h| !h.deleted);
            match h {
                None => {
                    self.store.delete_mapping(&self.link.link_id, uid).await?;
                    self.maps.remove(uid);
                    return Ok(());
                }
                Some(h) if h.version == m.synced_version || self.link.read_only() => {
                    let ev = self.new_hub(uid, h.ical.clone(), h.version + 1, true);
                    if !self.write_hub(ev, Some(h.version)).await? {
                        continue;
                    }
                    self.run.deleted += 1;
                    self.store.delete_mapping(&self.link.link_id, uid).await?;
                    self.maps.remove(uid);
                    return Ok(());
                }
                Some(_) => {
                    // Changed in the hub after the remote deleted it: the edit wins, recreate.
                    let mut m = m;
                    m.href = None;
                    m.etag = None;
                    m.status = EventStatus::Pending;
                    return self.save_mapping(m).await;
                }
            }
        }
        Err(StoreError::Conflict {
            table: format!("events (uid {uid}: {HUB_RETRIES} lost races)"),
        })
    }
}

/// Pull `link`'s remote changes into the hub. Counts go into `run`; the cursor is saved
/// unless the deletion brake fired. `full` ignores the stored cursor and re-enumerates the
/// calendar, reconciled by etag against the mappings (used after a push met a precondition
/// failure: a server that omitted a change from its incremental report cannot make push and
/// pull chase each other).
pub async fn pull(
    store: &Store,
    link: &Link,
    provider: &dyn Provider,
    run: &mut RunRecord,
    full: bool,
) -> Result<PullOutcome, EngineError> {
    let cursor = if full {
        None
    } else {
        store.get_cursor(&link.link_id).await?
    };
    let res = provider.pull(cursor.as_ref()).await?;
    if !res.full && res.changed.is_empty() && res.removed.is_empty() && res.unreadable.is_empty() {
        // Nothing changed remotely: one provider request, no reads of mappings or hub events.
        // Hub changes reach this link through the sync-back jobs their pulls queue.
        if cursor.as_ref() != Some(&res.cursor) {
            store.put_cursor(&link.link_id, &res.cursor).await?;
        }
        return Ok(PullOutcome::default());
    }
    let maps: HashMap<String, Mapping> = store
        .mappings_of_link(&link.link_id)
        .await?
        .into_iter()
        .map(|m| (m.uid.clone(), m))
        .collect();
    let by_href: HashMap<RemoteId, String> = maps
        .values()
        .filter_map(|m| m.href.clone().map(|h| (h, m.uid.clone())))
        .collect();
    let hub = store
        .events_of_group(&link.group_id)
        .await?
        .into_iter()
        .map(|e| (e.uid.clone(), e))
        .collect();
    let mut st = PullState {
        store,
        provider,
        link,
        maps,
        hub,
        run,
        hub_changed: false,
    };

    let mut seen: HashSet<RemoteId> = HashSet::new();
    let mut items = Vec::new();
    let mut to_fetch = Vec::new();
    for r in res.changed {
        seen.insert(r.href.clone());
        let known = by_href.get(&r.href).and_then(|u| st.maps.get(u));
        if known.is_some_and(|m| m.etag.is_some() && m.etag == r.etag) {
            continue; // unchanged, or the echo of our own write
        }
        if r.data.is_some() {
            items.push(r);
        } else {
            to_fetch.push(r.href);
        }
    }
    if !to_fetch.is_empty() {
        let fetched = provider.fetch(&to_fetch).await?;
        items.extend(fetched);
    }
    for item in items {
        st.apply_item(item).await?;
    }
    for (href, reason) in res.unreadable {
        seen.insert(href.clone());
        let key = st.key_for_href(&href);
        st.mark_error(key, &href, None, reason).await?;
    }

    let removed_hrefs: Vec<RemoteId> = if res.full {
        let unseen: Vec<RemoteId> = by_href
            .keys()
            .filter(|h| !seen.contains(*h))
            .cloned()
            .collect();
        if unseen.is_empty() {
            unseen
        } else {
            provider.confirm_removed(&unseen).await?
        }
    } else {
        res.removed
    };
    let mut removed: Vec<String> = removed_hrefs
        .iter()
        .filter_map(|h| by_href.get(h).cloned())
        .filter(|uid| !uid.starts_with("href:"))
        .collect();
    removed.sort();
    let mapped = by_href.len();
    let quarantined = !link.allow_mass_delete
        && removed.len() >= link.brake_min as usize
        && removed.len() as f64 > link.brake_ratio * mapped as f64;
    if quarantined {
        let reason = format!(
            "deletion brake: the pull would delete {} of {} events (limit {:.0}% and at least {}); deletions held back",
            removed.len(),
            mapped,
            link.brake_ratio * 100.0,
            link.brake_min
        );
        tracing::warn!(link = %link.link_id, %reason);
        st.run.error = Some(reason);
    } else {
        for uid in &removed {
            st.apply_removal(uid).await?;
        }
        store.put_cursor(&link.link_id, &res.cursor).await?;
    }
    for uid in removed_hrefs
        .iter()
        .filter_map(|h| by_href.get(h))
        .filter(|u| u.starts_with("href:"))
    {
        st.maps.remove(uid);
        store.delete_mapping(&link.link_id, uid).await?;
    }

    let self_pending = !link.read_only()
        && st.hub.values().any(|h| match st.maps.get(&h.uid) {
            None => !h.deleted,
            Some(m) if m.status == EventStatus::Conflict || m.failed_at(h.version) => false,
            Some(m) if m.excluded && m.synced_version >= h.version => false,
            Some(m) => {
                (h.deleted && m.href.is_some())
                    || (!h.deleted && (m.href.is_none() || m.synced_version < h.version))
            }
        });
    Ok(PullOutcome {
        hub_changed: st.hub_changed,
        self_pending,
        quarantined,
    })
}
