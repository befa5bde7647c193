//! Push (hub → remote) for one link: read the snapshot, plan the writes
//! ([`super::push_plan::plan_push`]), send them in chunks, record each outcome as
//! [`super::push_plan::settle`] decides.

use std::collections::{HashMap, HashSet};

use super::push_plan::{self, Planned};
use super::push_record::{book, record_chunk, Recorded};
use super::{EngineError, PushOutcome};
use crate::config::now_millis;
use crate::model::{HubEvent, Link, Mapping, RunRecord};
use crate::provider::{Provider, RemoteId, Write};
use crate::queue::PushResume;
use crate::store::{ChangeCursor, Store};

/// A targeted push reads again the hub events changed this long (ms) before its watermark:
/// room for clock skew between writers and for the `changes-index` GSI's propagation.
pub const PUSH_OVERLAP_MS: i64 = 60_000;

/// A targeted push finding more changed hub events than this reads the whole group instead.
pub const PUSH_TARGETED_MAX: usize = 100;

/// Where a push starts from.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushFrom<'a> {
    /// No chunk of writes after the first starts past this instant.
    pub deadline: Option<std::time::Instant>,
    /// The link's push watermark (epoch ms; `None`: read the whole group).
    pub watermark: Option<i64>,
    /// A continuation of a push that read the whole group: read on from where it stopped
    /// (the watermark is not used), and complete as of the chain's first run.
    pub resume: Option<&'a PushResume>,
}

/// Push hub changes to `link`. Per-event rejections mark the event `error` and go on. With a
/// `deadline`, no chunk of writes after the first starts past it; the outcome then says
/// `more`.
///
/// With `from.watermark` (the link's [`Link::pushed_through_ms`]), only hub events changed
/// since [`PUSH_OVERLAP_MS`] before it are read (GSI `changes-index`, then their mappings
/// by key); more than [`PUSH_TARGETED_MAX`] of them, or none given, and the whole group is
/// read. The outcome's `read_ms` is the next watermark once the push is complete. A whole
/// group push that stops at its deadline says in `resume` where its continuation picks up
/// (the events page it stopped in); one given `from.resume` reads the events and mapping
/// heads after that UID only, so that a chain of runs reads the group once. A whole group
/// push during which the hub took many changes reads the group a second time in the same
/// run ([`second_pass`]); the outcome's `read_ms` and `full_seq` are then the second
/// pass's.
pub async fn push(
    store: &Store,
    link: &Link,
    provider: &dyn Provider,
    run: &mut RunRecord,
    from: PushFrom<'_>,
) -> Result<PushOutcome, EngineError> {
    let mut out = PushOutcome {
        read_ms: now_millis(),
        ..Default::default()
    };
    if link.read_only() {
        return Ok(out);
    }
    let changed = match from.watermark.filter(|_| from.resume.is_none()) {
        Some(w) => {
            let since = ChangeCursor {
                ms: w - PUSH_OVERLAP_MS,
                uid: String::new(),
            };
            store
                .changes_within(&link.group_id, &since, PUSH_TARGETED_MAX)
                .await?
        }
        None => None,
    };
    let mut w = Writer {
        store,
        link,
        provider,
        run,
        out: &mut out,
        deadline: from.deadline,
        batch: link.provider.info().write_batch.max(1),
        chunks: 0,
        pending: None,
        stopped: false,
        attempted: HashMap::new(),
    };
    match changed {
        Some(events) => w.page_by_key(events).await?,
        None => {
            // The whole group (from where the run before stopped), a page of events at a
            // time against the heads of the link's mappings: memory holds two pages'
            // bodies, whatever the group's size.
            let (after, mut full_seq) = match from.resume {
                Some(r) => {
                    w.out.read_ms = r.read_ms;
                    (r.after.clone(), r.full_seq)
                }
                None => (None, store.begin_full_push(&link.link_id).await?),
            };
            // A page of events with the heads of the mappings in its UID range, so that the
            // first writes wait for one page's reads only (memory: two pages' bodies and
            // heads, whatever the group's size).
            let read_page = move |after: Option<String>| async move {
                let page = store
                    .events_page(&link.group_id, after.as_deref(), PUSH_PAGE)
                    .await?;
                let heads = store
                    .mapping_heads_of_link_between(
                        &link.link_id,
                        after.as_deref(),
                        page.next.as_deref(),
                    )
                    .await?;
                Ok::<_, crate::store::StoreError>((page, heads))
            };
            // Each page is written while the next one is read, so that the member is not
            // kept waiting for the store between pages. The last page of the first pass
            // is written while a second pass, when one is owed ([`second_pass`]), counts
            // itself and reads its first page.
            let mut page_after = after;
            let mut second = false;
            let (mut page, mut heads) = read_page(page_after.clone()).await?;
            loop {
                let mut events = page.items;
                if second {
                    let again = w.leave_attempted(&mut events);
                    if !again.is_empty() {
                        // Written by the first pass and changed since: their mappings as
                        // recorded, once the first pass's receipts are in.
                        w.flush().await?;
                        w.page_by_key(again).await?;
                    }
                }
                let uids: HashSet<&str> = events.iter().map(|e| e.uid.as_str()).collect();
                // Mappings of UIDs the group no longer holds are not the push's.
                let maps = heads
                    .into_iter()
                    .filter(|m| uids.contains(m.uid.as_str()))
                    .map(|m| (m.uid.clone(), m))
                    .collect();
                let next_after = page.next.clone();
                let read_ms = w.out.read_ms;
                let ahead = async {
                    match &next_after {
                        Some(a) => Ok(Some((read_page(Some(a.clone())).await?, None))),
                        None if !second && second_pass(store, link, read_ms, full_seq).await? => {
                            let read_ms = now_millis();
                            let seq = store.begin_full_push(&link.link_id).await?;
                            Ok(Some((read_page(None).await?, Some((seq, read_ms)))))
                        }
                        None => Ok::<_, crate::store::StoreError>(None),
                    }
                };
                let (written, ahead) =
                    futures_util::future::join(w.page(maps, events, true), ahead).await;
                written?;
                match ahead? {
                    Some((n, pass)) if !w.stopped => {
                        if let Some((seq, read_ms)) = pass {
                            tracing::info!(link = %link.link_id, full_seq = seq,
                                "the hub changed during the full push: a second pass");
                            (second, full_seq) = (true, seq);
                            w.out.read_ms = read_ms;
                        }
                        (page, heads) = n;
                        page_after = next_after;
                    }
                    _ => break,
                }
                if w.past_deadline() {
                    w.out.more = true;
                    break;
                }
            }
            // The pass this run read last: the second, when it began one.
            w.out.full_seq = Some(full_seq);
            // Out of time: in the page read after `page_after` (stopped in it, or before
            // it), or in none (a stop that queues no continuation).
            if w.out.more {
                w.out.resume = Some(PushResume {
                    after: page_after,
                    read_ms: w.out.read_ms,
                    full_seq,
                });
            }
        }
    }
    w.finish().await?;
    Ok(out)
}

/// Hub events a full push reads, plans and writes at a time (one Query each).
pub const PUSH_PAGE: i32 = 250;

/// Whether a full push counted as `full_seq` that read the whole group from `read_ms`
/// (epoch ms) reads it once more in the same run: more than [`PUSH_TARGETED_MAX`] hub
/// events changed since, so that the sync-backs queued for them would read the whole group
/// anyway, and no full push of the link began after this one (a consistent read of
/// [`Link::full_push_seq`]; a later one reads those changes itself, as when a long initial
/// sync's two pushes run as interleaved chains of continuations). This is an initial
/// sync's early sync-back: it began on the pull's first page, and read in UID order while
/// the pull wrote the rest. Its second pass begins after the pull ended, and so covers the
/// pull's own sync-back ([`crate::handlers::bookkeeping::covered_by_full_push`]), which is
/// then skipped; read while the first pass's last page is written, it keeps the member
/// from waiting between the two (issue 11, the initial sync's wall).
///
/// Errors: DynamoDB failure reading the `changes-index` GSI or the link.
async fn second_pass(
    store: &Store,
    link: &Link,
    read_ms: i64,
    full_seq: i64,
) -> Result<bool, crate::store::StoreError> {
    let since = ChangeCursor {
        ms: read_ms,
        uid: String::new(),
    };
    let many = store
        .changes_within(&link.group_id, &since, PUSH_TARGETED_MAX)
        .await?
        .is_none();
    Ok(many
        && store
            .get_link(&link.link_id)
            .await?
            .is_some_and(|now| now.full_push_seq == full_seq))
}

/// A chunk of planned writes, owned by the recording that follows it.
pub(super) type Chunk = Vec<(HubEvent, Mapping, Planned)>;

/// A push's writing half: plans each page of events, sends its writes in chunks (one bulk
/// request per chunk where the provider has one) and records them. A chunk's receipts are
/// recorded while the next chunk is written (the mapping writes overlap the provider's),
/// so a crash loses at most two chunks' receipts; the next push finds those objects at
/// their deterministic ids and adopts them. A chunk whose results stop the run
/// (credentials refused, outage) is recorded before anything else is sent.
struct Writer<'a, 'r> {
    store: &'a Store,
    link: &'a Link,
    provider: &'a dyn Provider,
    run: &'r mut RunRecord,
    out: &'r mut PushOutcome,
    deadline: Option<std::time::Instant>,
    batch: usize,
    /// Chunks sent so far: every run writes at least one, so continuations progress.
    chunks: usize,
    pending: Option<futures_util::future::BoxFuture<'a, Vec<Result<Recorded, EngineError>>>>,
    /// No more writes: the deadline passed or a result stopped the run.
    stopped: bool,
    /// The hub version of each event this run sent a write for, by UID: a second pass
    /// leaves them be, since their mapping heads may have been read before their receipts
    /// were recorded.
    attempted: HashMap<String, i64>,
}

impl Writer<'_, '_> {
    fn past_deadline(&self) -> bool {
        self.chunks > 0
            && self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// Plan `events` against their mappings `maps` and carry the plan out. With `heads`,
    /// `maps` are heads ([`Store::mapping_heads_of_link`]): the bodies of those the plan
    /// writes back are read first.
    async fn page(
        &mut self,
        maps: HashMap<String, Mapping>,
        events: Vec<HubEvent>,
        heads: bool,
    ) -> Result<(), EngineError> {
        if self.stopped {
            return Ok(());
        }
        let had: HashSet<String> = if heads {
            maps.keys().cloned().collect()
        } else {
            HashSet::new()
        };
        let mut plan = push_plan::plan_push(self.link, maps, events, chrono::Utc::now());
        tracing::debug!(link = %self.link.link_id, ?plan, "push plan");
        if heads {
            self.restore_bodies(&mut plan, &had).await?;
        }
        self.store.put_mappings(&plan.records).await?;
        for uid in &plan.forget {
            self.store.delete_mapping(&self.link.link_id, uid).await?;
        }
        let mut writes = plan.writes.into_iter();
        loop {
            let chunk: Chunk = writes.by_ref().take(self.batch).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            if self.past_deadline() {
                self.out.more = true;
                self.stopped = true;
                return Ok(());
            }
            self.send(chunk).await?;
            if self.stopped {
                return Ok(());
            }
        }
    }

    /// [`Writer::page`] for `events` with their whole mappings, read by key.
    async fn page_by_key(&mut self, events: Vec<HubEvent>) -> Result<(), EngineError> {
        let uids: Vec<String> = events.iter().map(|e| e.uid.clone()).collect();
        let (maps, _) = self
            .store
            .mappings_and_events(&self.link.link_id, None, &uids)
            .await?;
        let maps = maps.into_iter().map(|m| (m.uid.clone(), m)).collect();
        self.page(maps, events, false).await
    }

    /// Put back the merge bases and kept-aside versions of the planned mappings that came
    /// from heads (`had`), read by key: a mapping is never stored without them.
    async fn restore_bodies(
        &self,
        plan: &mut push_plan::PushPlan,
        had: &HashSet<String>,
    ) -> Result<(), EngineError> {
        let written = plan.writes.iter_mut().map(|(_, m, _)| m);
        let mut planned: HashMap<String, &mut Mapping> = written
            .chain(plan.records.iter_mut())
            .filter(|m| had.contains(&m.uid))
            .map(|m| (m.uid.clone(), m))
            .collect();
        if planned.is_empty() {
            return Ok(());
        }
        let uids: Vec<String> = planned.keys().cloned().collect();
        let (whole, _) = self
            .store
            .mappings_and_events(&self.link.link_id, None, &uids)
            .await?;
        for w in whole {
            if let Some(m) = planned.get_mut(&w.uid) {
                m.base = w.base;
                m.conflict_remote = w.conflict_remote;
            }
        }
        Ok(())
    }

    /// Take out of `events` those this run sent a write for: those at the version written
    /// are dropped, and those changed since are returned.
    fn leave_attempted(&self, events: &mut Vec<HubEvent>) -> Vec<HubEvent> {
        let (sent, rest): (Vec<HubEvent>, Vec<HubEvent>) = std::mem::take(events)
            .into_iter()
            .partition(|e| self.attempted.contains_key(&e.uid));
        *events = rest;
        sent.into_iter()
            .filter(|e| self.attempted.get(&e.uid).is_some_and(|v| *v < e.version))
            .collect()
    }

    /// Send one chunk while the previous one's outcomes are recorded.
    async fn send(&mut self, chunk: Chunk) -> Result<(), EngineError> {
        self.chunks += 1;
        for (ev, _, _) in &chunk {
            self.attempted.insert(ev.uid.clone(), ev.version);
        }
        let results = {
            let writes: Vec<Write<'_>> = chunk
                .iter()
                .map(|(ev, m, kind)| write_of(ev, m, *kind))
                .collect();
            let earlier = self.pending.take();
            let (results, recorded) =
                futures_util::future::join(self.provider.write_all(&writes), async {
                    match earlier {
                        Some(f) => f.await,
                        None => Vec::new(),
                    }
                })
                .await;
            book(self.run, self.out, recorded)?;
            results
        };
        let stop = results.iter().any(push_plan::stops_run);
        let recording = Box::pin(record_chunk(self.store, self.provider, chunk, results));
        if stop {
            self.stopped = true;
            book(self.run, self.out, recording.await)?;
        } else {
            self.pending = Some(recording);
        }
        Ok(())
    }

    /// Record what is still in flight.
    async fn flush(&mut self) -> Result<(), EngineError> {
        if let Some(f) = self.pending.take() {
            book(self.run, self.out, f.await)?;
        }
        Ok(())
    }

    /// Record what is still in flight, at the push's end.
    async fn finish(mut self) -> Result<(), EngineError> {
        self.flush().await
    }
}

/// The provider write for a planned one.
fn write_of<'e>(ev: &'e HubEvent, m: &'e Mapping, kind: Planned) -> Write<'e> {
    match kind {
        Planned::Create => Write::Create {
            uid: &ev.uid,
            ical: &ev.ical,
        },
        Planned::Update => Write::Update {
            href: m.href.as_ref().unwrap_or(RemoteId::none()),
            ical: &ev.ical,
            etag: m.etag.as_ref(),
        },
        Planned::Delete => Write::Delete {
            href: m.href.as_ref().unwrap_or(RemoteId::none()),
            etag: m.etag.as_ref(),
        },
    }
}
