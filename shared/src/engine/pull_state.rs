//! A pull's working state ([`PullState`]): the mappings and hub events it holds (whole, or
//! as heads in a wide pull), and how it applies a page of remote objects — load what the
//! page needs, plan each object ([`super::plan`]), write the hub event and mapping together,
//! re-plan only an item whose write lost a race. [`super::pull`] drives it.

use std::collections::{HashMap, HashSet};

use super::plan::{self, Count, HubWrite, ItemPlan, RemovalPlan, Snapshot};
use super::pull::PULL_PAGE;
use super::{transform, EngineError};
use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::{HubEvent, Link, Mapping, RunRecord};
use crate::provider::{Etag, Provider, RemoteId, RemoteRef};
use crate::store::{PairWrite, Store, StoreError};

const HUB_RETRIES: usize = 5;

/// What a pull holds of the link's mappings and the group's hub events.
#[derive(Debug)]
pub(super) enum Loaded {
    /// A targeted pull: only these UIDs' records, whole; any other is read by key when
    /// needed.
    Keys(HashSet<String>),
    /// A wide pull: every record, as a head ([`Store::event_heads_of_group`],
    /// [`Store::mapping_heads_of_link`]); these UIDs' whole. A UID with neither a mapping
    /// nor a hub event head had none when the heads were read.
    Heads(HashSet<String>),
}

/// One pull's state; see the module doc.
pub(super) struct PullState<'a> {
    pub(super) store: &'a Store,
    pub(super) provider: &'a dyn Provider,
    pub(super) link: &'a Link,
    pub(super) maps: HashMap<String, Mapping>,
    pub(super) hub: HashMap<String, HubEvent>,
    pub(super) run: &'a mut RunRecord,
    pub(super) hub_changed: bool,
    pub(super) loaded: Loaded,
    /// Set to `true` once, after a page that changed the hub when more pages follow
    /// ([`super::PullFrom::first_changes`]).
    pub(super) first_changes: Option<&'a tokio::sync::watch::Sender<bool>>,
}

impl PullState<'_> {
    /// Read the whole mappings and hub events of `uids` not held whole yet (one
    /// BatchGetItem per 50 UIDs); in a wide pull, only those with a head.
    pub(super) async fn load(
        &mut self,
        uids: impl IntoIterator<Item = String>,
    ) -> Result<(), StoreError> {
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
    pub(super) fn demote(&mut self) {
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
        let view = |t: &transform::Transforms, ical: &str| self.view(t, ical);
        plan::plan_item(&Snapshot {
            link: self.link,
            remote,
            href: &item.href,
            author: item.author,
            etag: item.etag.as_ref(),
            hub: self.hub.get(&remote.uid),
            mapping: self.maps.get(&remote.uid),
            view: &view,
            now_ms: now_millis(),
        })
    }

    pub(super) async fn mark_error(
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
    pub(super) fn key_for_href(&self, href: &RemoteId) -> String {
        self.maps
            .values()
            .find(|m| m.href.as_ref() == Some(href))
            .map(|m| m.uid.clone())
            .or_else(|| self.provider.uid_of(href))
            .unwrap_or_else(|| format!("href:{href}"))
    }

    /// `ical` as this member shows it: what the provider reads back ([`Provider::project`])
    /// of what the transforms `t` write ([`transform::view`]), parsed; `None` when the
    /// member holds it as it is.
    fn view(&self, t: &transform::Transforms, ical: &str) -> Option<EventSeries> {
        let shown = transform::view(t, ical, chrono::Utc::now());
        let projected = self.provider.project(shown.as_deref().unwrap_or(ical));
        let p = projected.or(shown)?;
        EventSeries::parse_single("projection", &p).ok()
    }

    /// Parse `items` and load what applying them reads (their UIDs' mappings and hub
    /// events, and the error records kept under their hrefs), then apply each.
    pub(super) async fn apply_items(&mut self, items: Vec<RemoteRef>) -> Result<(), StoreError> {
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
    pub(super) async fn apply_pages(&mut self, items: Vec<RemoteRef>) -> Result<(), StoreError> {
        let mut items = items.into_iter();
        loop {
            let page: Vec<RemoteRef> = items.by_ref().take(PULL_PAGE).collect();
            if page.is_empty() {
                return Ok(());
            }
            self.apply_items(page).await?;
            self.demote();
            if items.len() > 0 {
                self.more_to_come();
            }
        }
    }

    /// A page is applied and more follow: say so once, if the hub changed
    /// ([`super::PullFrom::first_changes`]).
    fn more_to_come(&mut self) {
        if self.hub_changed {
            if let Some(tx) = self.first_changes.take() {
                tx.send_replace(true);
            }
        }
    }

    /// Read `hrefs` ([`Provider::fetch`]) and apply them a page at a time, each page read
    /// while the one before it is written.
    pub(super) async fn fetch_and_apply(&mut self, hrefs: &[RemoteId]) -> Result<(), EngineError> {
        let provider = self.provider;
        let mut pages = hrefs.chunks(PULL_PAGE);
        let Some(first) = pages.next() else {
            return Ok(());
        };
        let mut fetched = provider.fetch(first).await?;
        for next in pages {
            // Applied, the page is announced at once, not when the next one has come in.
            let apply = async {
                self.apply_items(fetched).await?;
                self.demote();
                self.more_to_come();
                Ok::<_, StoreError>(())
            };
            let (applied, next) = futures_util::join!(Box::pin(apply), provider.fetch(next));
            applied?;
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

    pub(super) async fn apply_removal(&mut self, uid: &str) -> Result<(), StoreError> {
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
