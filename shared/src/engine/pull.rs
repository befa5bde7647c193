//! Pull (remote → hub) for one link: list the remote changes, read what applying them needs
//! (by key for a short incremental listing, everything otherwise), plan each object
//! ([`super::plan`]) and write the hub and the mappings.

use std::collections::{HashMap, HashSet};

use super::plan::{self, Count, HubWrite, ItemPlan, RemovalPlan, Snapshot};
use super::{transform, EngineError, PullOutcome};
use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::{HubEvent, Link, Mapping, RunRecord};
use crate::provider::{Cursor, Etag, Provider, RemoteId, RemoteRef};
use crate::store::{PairWrite, Store, StoreError};

const HUB_RETRIES: usize = 5;

/// An incremental pull listing at most this many objects (with those this link's pushes
/// wrote since the cursor) reads the mappings and hub events of those objects by key
/// ([`Store::mappings_and_events`]); a longer listing, and every full enumeration, reads
/// all of the link's mappings and the group's hub events (a few paged Queries).
pub const TARGETED_MAX: usize = 64;

/// Remote objects a wide pull reads, parses, plans and writes at a time (a few CalDAV
/// multigets' worth): what bounds its memory, whatever the calendar's size. The next
/// page's objects are read while this page's writes go out.
pub const PULL_PAGE: usize = 200;

/// What a pull holds of the link's mappings and the group's hub events.
#[derive(Debug)]
enum Loaded {
    /// A targeted pull: only these UIDs' records, whole; any other is read by key when
    /// needed.
    Keys(HashSet<String>),
    /// A wide pull: every record, as a head ([`Store::event_heads_of_group`],
    /// [`Store::mapping_heads_of_link`]); these UIDs' whole. A UID with neither a mapping
    /// nor a hub event head had none when the heads were read.
    Heads(HashSet<String>),
}

struct PullState<'a> {
    store: &'a Store,
    provider: &'a dyn Provider,
    link: &'a Link,
    maps: HashMap<String, Mapping>,
    hub: HashMap<String, HubEvent>,
    run: &'a mut RunRecord,
    hub_changed: bool,
    loaded: Loaded,
}

impl PullState<'_> {
    /// Read the whole mappings and hub events of `uids` not held whole yet (one
    /// BatchGetItem per 50 UIDs); in a wide pull, only those with a head.
    async fn load(&mut self, uids: impl IntoIterator<Item = String>) -> Result<(), StoreError> {
        let (maps, hub) = (&self.maps, &self.hub);
        let (whole, heads) = match &mut self.loaded {
            Loaded::Keys(s) => (s, false),
            Loaded::Heads(s) => (s, true),
        };
        let mut need: Vec<String> = uids
            .into_iter()
            .filter(|u| !whole.contains(u))
            .filter(|u| !heads || maps.contains_key(u) || hub.contains_key(u))
            .collect();
        need.sort();
        need.dedup();
        if need.is_empty() {
            return Ok(());
        }
        let (maps, events) = self
            .store
            .mappings_and_events(&self.link.link_id, Some(&self.link.group_id), &need)
            .await?;
        whole.extend(need);
        for m in maps {
            self.maps.insert(m.uid.clone(), m);
        }
        for e in events {
            self.hub.insert(e.uid.clone(), e);
        }
        Ok(())
    }

    /// `uid`'s records in memory are whole (just written or read).
    fn hold_whole(&mut self, uid: &str) {
        let (Loaded::Keys(s) | Loaded::Heads(s)) = &mut self.loaded;
        if !s.contains(uid) {
            s.insert(uid.to_string());
        }
    }

    /// In a wide pull, turn the records held whole back into heads (after a page), so
    /// that memory holds at most a page of bodies.
    fn demote(&mut self) {
        let Loaded::Heads(whole) = &mut self.loaded else {
            return;
        };
        for uid in whole.drain() {
            if let Some(e) = self.hub.get_mut(&uid) {
                e.ical = String::new();
            }
            if let Some(m) = self.maps.get_mut(&uid) {
                m.base = None;
                m.conflict_remote = None;
            }
        }
    }

    async fn save_mapping(&mut self, m: Mapping) -> Result<(), StoreError> {
        self.store.put_mapping(&m).await?;
        self.hold_whole(&m.uid);
        self.maps.insert(m.uid.clone(), m);
        Ok(())
    }

    async fn forget_mapping(&mut self, uid: &str) -> Result<(), StoreError> {
        self.store.delete_mapping(&self.link.link_id, uid).await?;
        self.maps.remove(uid);
        Ok(())
    }

    /// Carry out a planned hub write; on a lost race reload the event and return `false`
    /// (the caller plans that item again).
    async fn write_hub(&mut self, w: HubWrite) -> Result<bool, StoreError> {
        let ev = w.event;
        match self.store.put_event(&ev, w.expected).await {
            Ok(()) => {
                self.hold_whole(&ev.uid);
                self.hub.insert(ev.uid.clone(), ev);
                self.hub_changed = true;
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => {
                self.reload(&ev.uid).await?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Read hub event `uid` again (after a write lost a race to another writer).
    async fn reload(&mut self, uid: &str) -> Result<(), StoreError> {
        match self.store.get_event(&self.link.group_id, uid).await? {
            Some(fresh) => self.hub.insert(uid.to_string(), fresh),
            None => self.hub.remove(uid),
        };
        Ok(())
    }

    fn count(&mut self, c: Count) {
        match c {
            Count::Created => self.run.created += 1,
            Count::Updated => self.run.updated += 1,
            Count::Deleted => self.run.deleted += 1,
            Count::Error => self.run.errors += 1,
        }
    }

    /// Carry out one item's plan, its hub event and mapping in one transaction; `false`
    /// when its hub write lost a race (nothing written; the event is reloaded).
    async fn execute(&mut self, plan: ItemPlan) -> Result<bool, StoreError> {
        tracing::debug!(link = %self.link.link_id, ?plan, "pull plan");
        if self.store.put_pairs(&[pair_of(&plan)]).await? != [true] {
            self.reload(&plan.mapping.uid).await?;
            return Ok(false);
        }
        self.settle(plan);
        Ok(true)
    }

    /// The bookkeeping of a plan whose writes are done: counters, notices, the loaded
    /// hub event and mapping.
    fn settle(&mut self, plan: ItemPlan) {
        let uid = plan.mapping.uid.clone();
        self.hold_whole(&uid);
        if let Some(w) = plan.hub {
            self.hub.insert(w.event.uid.clone(), w.event);
            self.hub_changed = true;
        }
        if !plan.conflicts.is_empty() {
            self.run.conflicts += 1;
            tracing::info!(link = %self.link.link_id, uid = %uid, fields = ?plan.conflicts, policy = ?self.link.conflict_policy, "conflict");
        }
        if let Some((kind, why)) = &plan.notice {
            self.run.notice(*kind, &uid, why);
        }
        if let Some(c) = plan.count {
            self.count(c);
        }
        self.maps.insert(uid, plan.mapping);
    }

    /// The plan for a readable remote object against what is loaded.
    fn plan_for(&self, item: &RemoteRef, remote: &EventSeries) -> ItemPlan {
        let view = |ical: &str| self.view(ical);
        plan::plan_item(&Snapshot {
            link: self.link,
            remote,
            href: &item.href,
            etag: item.etag.as_ref(),
            hub: self.hub.get(&remote.uid),
            mapping: self.maps.get(&remote.uid),
            view: &view,
            now_ms: now_millis(),
        })
    }

    async fn mark_error(
        &mut self,
        key: String,
        href: &RemoteId,
        etag: Option<Etag>,
        reason: String,
    ) -> Result<(), StoreError> {
        tracing::warn!(link = %self.link.link_id, href = %href, %reason, "event not synced");
        Box::pin(self.load([key.clone()])).await?;
        let plan = plan::plan_unreadable(
            self.link,
            &key,
            self.maps.get(&key),
            href,
            etag.as_ref(),
            &reason,
            now_millis(),
        );
        self.execute(plan).await.map(|_| ())
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

    /// Parse `items` and load what applying them reads (their UIDs' mappings and hub
    /// events, and the error records kept under their hrefs), then apply each.
    async fn apply_items(&mut self, items: Vec<RemoteRef>) -> Result<(), StoreError> {
        let parsed: Vec<(RemoteRef, Result<EventSeries, String>)> = items
            .into_iter()
            .map(|item| {
                let data = item.data.as_deref().unwrap_or_default();
                let r = EventSeries::parse_single(&item.href, data).map_err(|e| e.to_string());
                (item, r)
            })
            .collect();
        let uids = parsed.iter().flat_map(|(item, r)| {
            let uid = r.as_ref().ok().map(|r| r.uid.clone());
            uid.into_iter().chain([format!("href:{}", item.href)])
        });
        let uids: Vec<String> = uids.collect();
        self.load(uids).await?;
        // Objects of distinct UIDs (the common case) are planned first and written a few at
        // a time; the rest (unreadable, a UID listed twice, an error record under the href)
        // and any whose hub write lost a race go one by one.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (_, r) in &parsed {
            if let Ok(r) = r {
                *seen.entry(r.uid.clone()).or_default() += 1;
            }
        }
        let mut one_by_one = Vec::new();
        let mut planned = Vec::new();
        for (item, r) in parsed {
            match r {
                Ok(remote)
                    if seen.get(&remote.uid) == Some(&1)
                        && !self.maps.contains_key(&format!("href:{}", item.href)) =>
                {
                    let plan = self.plan_for(&item, &remote);
                    tracing::debug!(link = %self.link.link_id, ?plan, "pull plan");
                    planned.push((item, remote, plan));
                }
                r => one_by_one.push((item, r)),
            }
        }
        // Each hub event goes with its mapping in one transaction, many to a request
        // (`Store::put_pairs`).
        let written = {
            let pairs: Vec<PairWrite<'_>> = planned.iter().map(|(_, _, p)| pair_of(p)).collect();
            self.store.put_pairs(&pairs).await?
        };
        for ((item, remote, plan), won) in planned.into_iter().zip(written) {
            if won {
                self.settle(plan);
            } else {
                // Another writer got there first: plan it again against the fresh event.
                self.reload(&remote.uid).await?;
                one_by_one.push((item, Ok(remote)));
            }
        }
        for (item, r) in one_by_one {
            self.apply_item(item, r).await?;
        }
        Ok(())
    }

    /// [`PullState::apply_items`] a page ([`PULL_PAGE`]) at a time.
    async fn apply_pages(&mut self, items: Vec<RemoteRef>) -> Result<(), StoreError> {
        let mut items = items.into_iter();
        loop {
            let page: Vec<RemoteRef> = items.by_ref().take(PULL_PAGE).collect();
            if page.is_empty() {
                return Ok(());
            }
            self.apply_items(page).await?;
            self.demote();
        }
    }

    /// Read `hrefs` ([`Provider::fetch`]) and apply them a page at a time, each page read
    /// while the one before it is written.
    async fn fetch_and_apply(&mut self, hrefs: &[RemoteId]) -> Result<(), EngineError> {
        let provider = self.provider;
        let mut pages = hrefs.chunks(PULL_PAGE);
        let Some(first) = pages.next() else {
            return Ok(());
        };
        let mut fetched = provider.fetch(first).await?;
        for next in pages {
            let (applied, next) =
                futures_util::join!(Box::pin(self.apply_items(fetched)), provider.fetch(next));
            applied?;
            self.demote();
            fetched = next?;
        }
        self.apply_items(fetched).await?;
        self.demote();
        Ok(())
    }

    async fn apply_item(
        &mut self,
        item: RemoteRef,
        parsed: Result<EventSeries, String>,
    ) -> Result<(), StoreError> {
        let remote = match parsed {
            Ok(r) => r,
            Err(e) => {
                let key = self.key_for_href(&item.href);
                return self.mark_error(key, &item.href, item.etag, e).await;
            }
        };
        // A previous error recorded under the href is superseded by the readable version.
        let stale = format!("href:{}", item.href);
        if self.maps.contains_key(&stale) {
            self.forget_mapping(&stale).await?;
        }
        for _ in 0..HUB_RETRIES {
            let plan = self.plan_for(&item, &remote);
            if self.execute(plan).await? {
                return Ok(());
            }
        }
        Err(lost_races(&remote.uid))
    }

    async fn apply_removal(&mut self, uid: &str) -> Result<(), StoreError> {
        for _ in 0..HUB_RETRIES {
            let Some(m) = self.maps.get(uid) else {
                return Ok(());
            };
            let plan = plan::plan_removal(self.link, m, self.hub.get(uid), now_millis());
            tracing::debug!(link = %self.link.link_id, uid, ?plan, "removal plan");
            match plan {
                RemovalPlan::Forget => return self.forget_mapping(uid).await,
                RemovalPlan::Tombstone(w) => {
                    if !self.write_hub(w).await? {
                        continue;
                    }
                    self.count(Count::Deleted);
                    return self.forget_mapping(uid).await;
                }
                RemovalPlan::Recreate(m) => return self.save_mapping(m).await,
            }
        }
        Err(lost_races(uid))
    }
}

/// The writes of `plan`: its hub event (if any) and its mapping, together.
fn pair_of(plan: &ItemPlan) -> PairWrite<'_> {
    PairWrite {
        event: plan.hub.as_ref().map(|w| (&w.event, w.expected)),
        mapping: &plan.mapping,
    }
}

fn lost_races(uid: &str) -> StoreError {
    StoreError::Conflict {
        table: format!("events (uid {uid}: {HUB_RETRIES} lost races)"),
    }
}

/// Where a pull starts from.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullFrom<'a> {
    /// The cursor (`None`: enumerate the whole calendar, reconciled by etag against the
    /// mappings — also used after a push met a precondition failure, so that a server that
    /// omitted a change from its incremental report cannot make push and pull chase each
    /// other).
    pub cursor: Option<&'a Cursor>,
    /// Deletions this link's pulls applied in the brake's window before this one
    /// ([`plan::brake`]).
    pub recent_deletions: usize,
    /// Set when this link's pushes wrote to the member after the cursor was saved (epoch ms
    /// of the save): an incremental report must then list every object written since (as
    /// an echo). One it does not list was created and deleted again since the cursor —
    /// RFC 6578 lets a server leave such an object out entirely — and is looked up; if it
    /// is gone, it is a removal like any other.
    pub written_after: Option<i64>,
}

/// Pull `link`'s remote changes into the hub from `from`. Counts go into `run`; the outcome
/// carries the cursor to save unless the deletion brake fired.
pub async fn pull(
    store: &Store,
    link: &Link,
    provider: &dyn Provider,
    run: &mut RunRecord,
    from: PullFrom<'_>,
) -> Result<PullOutcome, EngineError> {
    let cursor = from.cursor;
    let recent_deletions = from.recent_deletions;
    let res = provider.pull(cursor).await?;
    let check_echoes = from.written_after.filter(|_| !res.full);
    if !res.full
        && check_echoes.is_none()
        && res.changed.is_empty()
        && res.removed.is_empty()
        && res.unreadable.is_empty()
    {
        // Nothing changed remotely: one provider request, no reads of mappings or hub events.
        // Hub changes reach this link through the sync-back jobs their pulls queue.
        return Ok(PullOutcome {
            cursor: (cursor != Some(&res.cursor)).then_some(res.cursor),
            ..Default::default()
        });
    }
    // A short incremental listing reads the items of what it lists (and of what this
    // link's pushes wrote since the cursor); a full or long one reads them all.
    let mut listed: Vec<&RemoteId> = res.changed.iter().map(|r| &r.href).collect();
    listed.extend(res.removed.iter());
    listed.extend(res.unreadable.iter().map(|(h, _)| h));
    let mut targeted = !res.full && listed.len() <= TARGETED_MAX;
    let read_ms = now_millis();
    let mut uids = Vec::new();
    if targeted {
        if let Some(after) = check_echoes {
            uids = store.uids_written_after(&link.link_id, after).await?;
            targeted = uids.len() + listed.len() <= TARGETED_MAX;
        }
    }
    let (maps, hub) = if targeted {
        uids.extend(store.uids_of_hrefs(&link.link_id, &listed).await?);
        uids.sort();
        uids.dedup();
        let (maps, hub) = store
            .mappings_and_events(&link.link_id, Some(&link.group_id), &uids)
            .await?;
        (maps, hub)
    } else {
        // Heads only: a page's bodies are read by key as it is applied.
        futures_util::future::try_join(
            Box::pin(store.mapping_heads_of_link(&link.link_id)),
            Box::pin(store.event_heads_of_group(&link.group_id)),
        )
        .await?
    };
    let hub_read_ms = (!targeted).then_some(read_ms);
    let mut st = PullState {
        store,
        provider,
        link,
        maps: maps.into_iter().map(|m| (m.uid.clone(), m)).collect(),
        hub: hub.into_iter().map(|e| (e.uid.clone(), e)).collect(),
        run,
        hub_changed: false,
        loaded: if targeted {
            Loaded::Keys(uids.into_iter().collect())
        } else {
            Loaded::Heads(HashSet::new())
        },
    };
    // An object removed that the index did not name may still be one of our own creations
    // (its href carries its UID): read that mapping by key.
    if targeted {
        let known: HashSet<&RemoteId> = st.maps.values().filter_map(|m| m.href.as_ref()).collect();
        let guesses: Vec<String> = res
            .removed
            .iter()
            .filter(|h| !known.contains(h))
            .filter_map(|h| provider.uid_of(h))
            .collect();
        st.load(guesses).await?;
    }
    let by_href: HashMap<RemoteId, String> = st
        .maps
        .values()
        .filter_map(|m| m.href.clone().map(|h| (h, m.uid.clone())))
        .collect();

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
    // Boxed: a pull's future is large in debug builds, and these nest deepest.
    Box::pin(st.apply_pages(items)).await?;
    Box::pin(st.fetch_and_apply(&to_fetch)).await?;
    for (href, reason) in res.unreadable {
        seen.insert(href.clone());
        let key = st.key_for_href(&href);
        st.mark_error(key, &href, None, reason).await?;
    }

    let mut vanished = Vec::new();
    if let Some(after) = check_echoes {
        let listed: HashSet<&RemoteId> = seen.iter().chain(res.removed.iter()).collect();
        let unlisted: Vec<RemoteId> = st
            .maps
            .values()
            .filter(|m| m.updated_ms > after)
            .filter_map(|m| m.href.clone())
            .filter(|h| !listed.contains(h))
            .collect();
        if !unlisted.is_empty() {
            let found = provider.fetch(&unlisted).await?;
            let present: HashSet<RemoteId> = found.iter().map(|r| r.href.clone()).collect();
            let changed: Vec<RemoteRef> = found
                .into_iter()
                .filter(|item| {
                    let known = by_href.get(&item.href).and_then(|u| st.maps.get(u));
                    !known.is_some_and(|m| m.etag.is_some() && m.etag == item.etag)
                })
                .collect();
            st.apply_items(changed).await?;
            vanished = unlisted
                .into_iter()
                .filter(|h| !present.contains(h))
                .collect();
            if !vanished.is_empty() {
                tracing::info!(link = %link.link_id, count = vanished.len(),
                    "objects written since the cursor are gone without a report entry");
            }
        }
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
        res.removed.into_iter().chain(vanished).collect()
    };
    let mut removed: Vec<String> = removed_hrefs
        .iter()
        .filter_map(|h| by_href.get(h).cloned())
        .filter(|uid| !uid.starts_with("href:"))
        .collect();
    removed.sort();
    // The brake weighs the deletions against every mapped object; a targeted pull counts
    // them only when the deletions reach the brake's minimum (below it, it never fires).
    let mapped = if matches!(st.loaded, Loaded::Keys(_))
        && removed.len() + recent_deletions >= link.brake_min as usize
    {
        store.count_mappings(&link.link_id).await?
    } else {
        by_href.len()
    };
    let brake = plan::brake(link, removed.len(), mapped, recent_deletions);
    let quarantined = brake.is_some();
    if let Some(reason) = brake {
        tracing::warn!(link = %link.link_id, %reason);
        st.run.error = Some(reason);
    } else {
        for page in removed.chunks(PULL_PAGE) {
            st.load(page.iter().cloned()).await?;
            for uid in page {
                st.apply_removal(uid).await?;
            }
            st.demote();
        }
    }
    for uid in removed_hrefs
        .iter()
        .filter_map(|h| by_href.get(h))
        .filter(|u| u.starts_with("href:"))
    {
        st.maps.remove(uid);
        store.delete_mapping(&link.link_id, uid).await?;
    }

    // Over what this pull read: a targeted pull's owed writes are among the events it
    // touched (older debts have their own sync-back jobs).
    let self_pending = plan::owes_push(link, st.hub.values(), |uid| st.maps.get(uid));
    Ok(PullOutcome {
        cursor: (!quarantined).then_some(res.cursor),
        hub_changed: st.hub_changed,
        self_pending,
        quarantined,
        in_sync_at: hub_read_ms.filter(|_| !self_pending && !link.read_only()),
    })
}
