//! Pull (remote → hub) for one link: list the remote changes, read what applying them needs
//! (by key for a short incremental listing, the heads of everything otherwise), then apply
//! the objects a page at a time ([`super::pull_state::PullState`]: plan each with
//! [`super::plan`], write the hub and the mappings), removals and the deletion brake last.

use std::collections::{HashMap, HashSet};

use super::plan;
use super::pull_state::{Loaded, PullState};
use super::{EngineError, PullOutcome};
use crate::config::now_millis;
use crate::model::{Link, RunRecord};
use crate::provider::{Cursor, Provider, RemoteId, RemoteRef};
use crate::store::Store;

/// An incremental pull listing at most this many objects (with those this link's pushes
/// wrote since the cursor) reads the mappings and hub events of those objects by key
/// ([`Store::mappings_and_events`]); a longer listing, and every full enumeration, reads
/// the heads of all of the link's mappings and the group's hub events (a few paged
/// Queries), and each page's whole records by key ([`PULL_PAGE`]).
pub const TARGETED_MAX: usize = 64;

/// Remote objects a wide pull reads, parses, plans and writes at a time (a few CalDAV
/// multigets' worth): what bounds its memory, whatever the calendar's size. The next
/// page's objects are read while this page's writes go out.
pub const PULL_PAGE: usize = 200;

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
    /// Set to `true` once the hub holds a page of this pull's changes and more pages are
    /// still to be read and applied ([`PULL_PAGE`]): the caller may start the other
    /// members' pushes then, while the pull goes on, rather than after it. Never set by a
    /// pull of one page or less.
    pub first_changes: Option<&'a tokio::sync::watch::Sender<bool>>,
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
        first_changes: from.first_changes,
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
    let mut by_href = hrefs_of(&st);
    let mut seen: HashSet<RemoteId> = HashSet::new();
    Box::pin(apply_listed(&mut st, &by_href, res.changed, &mut seen)).await?;
    let (mut unreadable, mut res_cursor) = (res.unreadable, res.cursor);
    if res.settle {
        // The listing had no resumable cursor: ask for one now that its objects are in.
        // The answer lists everything again; what changed in between is applied, and it
        // is what the removals below are weighed against.
        // (A provider that answered with changes only would have its removals taken
        // out of what the first listing saw.)
        let again = provider.pull(Some(&res_cursor)).await?;
        by_href = hrefs_of(&st);
        if again.full {
            seen.clear();
            unreadable.clear();
        }
        Box::pin(apply_listed(&mut st, &by_href, again.changed, &mut seen)).await?;
        for h in &again.removed {
            seen.remove(h);
        }
        unreadable.extend(again.unreadable);
        res_cursor = again.cursor;
    }
    for (href, reason) in unreadable {
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
        cursor: (!quarantined).then_some(res_cursor),
        hub_changed: st.hub_changed,
        self_pending,
        quarantined,
        in_sync_at: hub_read_ms.filter(|_| !self_pending && !link.read_only()),
    })
}

/// The mapped objects' remote ids, with their UIDs.
fn hrefs_of(st: &PullState<'_>) -> HashMap<RemoteId, String> {
    st.maps
        .values()
        .filter_map(|m| m.href.clone().map(|h| (h, m.uid.clone())))
        .collect()
}

/// Apply the objects of a listing that are new or changed against their mappings (by etag;
/// an equal etag is an unchanged object or the echo of our own write), reading those the
/// listing carried no data for; every listed id goes into `seen`.
async fn apply_listed(
    st: &mut PullState<'_>,
    by_href: &HashMap<RemoteId, String>,
    changed: Vec<RemoteRef>,
    seen: &mut HashSet<RemoteId>,
) -> Result<(), EngineError> {
    let mut items = Vec::new();
    let mut to_fetch = Vec::new();
    for r in changed {
        seen.insert(r.href.clone());
        let known = by_href.get(&r.href).and_then(|u| st.maps.get(u));
        if known.is_some_and(|m| m.etag.is_some() && m.etag == r.etag) {
            continue;
        }
        if r.data.is_some() {
            items.push(r);
        } else {
            to_fetch.push(r.href);
        }
    }
    // Boxed: a pull's future is large in debug builds, and these nest deepest.
    Box::pin(st.apply_pages(items)).await?;
    Box::pin(st.fetch_and_apply(&to_fetch)).await
}
