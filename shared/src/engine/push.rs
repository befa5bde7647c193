//! Push (hub → remote) for one link: plan the writes the link needs (creates at a
//! deterministic id, updates and deletes with `If-Match`, under the link's transforms),
//! send them in chunks, record each outcome (write receipts, per-event status).

use std::collections::HashMap;

use super::{transform, EngineError, PushOutcome};
use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::{EventStatus, HubEvent, Link, Mapping, NoticeKind, RunRecord};
use crate::provider::{Provider, ProviderError, RemoteId, Write, WriteOutcome};
use crate::store::Store;

/// Push hub changes to `link`. Per-event rejections mark the event `error` and go on. With a
/// `deadline`, no chunk of writes after the first starts past it; the outcome then says
/// `more`.
pub async fn push(
    store: &Store,
    link: &Link,
    provider: &dyn Provider,
    run: &mut RunRecord,
    deadline: Option<std::time::Instant>,
) -> Result<PushOutcome, EngineError> {
    let mut out = PushOutcome::default();
    if link.read_only() {
        return Ok(out);
    }
    let mut maps: HashMap<String, Mapping> = store
        .mappings_of_link(&link.link_id)
        .await?
        .into_iter()
        .map(|m| (m.uid.clone(), m))
        .collect();
    let mut events = store.events_of_group(&link.group_id).await?;
    events.sort_by(|a, b| a.uid.cmp(&b.uid));
    // Plan: which writes this link needs.
    let mut plan: Vec<(HubEvent, Mapping, Planned)> = Vec::new();
    let now = chrono::Utc::now();
    let t = &link.transforms;
    for mut ev in events {
        let m = maps.remove(&ev.uid);
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
                        Some(m) if m.href.is_some() => plan.push((ev, m, Planned::Delete)),
                        m => {
                            let m = m.unwrap_or_else(|| Mapping::new(&link.link_id, &ev.uid));
                            store.put_mapping(&excluded(m, ev.version)).await?;
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
            let Some(m) = m else { continue };
            if m.href.is_none() {
                store.delete_mapping(&link.link_id, &ev.uid).await?;
                continue;
            }
            plan.push((ev, m, Planned::Delete));
            continue;
        }
        if !owed {
            continue;
        }
        let needs_create = m.as_ref().is_none_or(|m| m.href.is_none());
        let mapping = m.unwrap_or_else(|| Mapping::new(&link.link_id, &ev.uid));
        let kind = if needs_create {
            Planned::Create
        } else {
            Planned::Update
        };
        plan.push((ev, mapping, kind));
    }
    // Write in chunks (one bulk request per chunk where the provider has one), recording
    // each chunk's outcome before the next, so a crash loses at most one chunk's receipts.
    let batch = link.provider.module().write_batch().max(1);
    for (n, chunk) in plan.chunks(batch).enumerate() {
        // Every run writes at least one chunk, so continuations always progress.
        if n > 0 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            out.more = true;
            break;
        }
        let writes: Vec<Write<'_>> = chunk
            .iter()
            .map(|(ev, m, kind)| match kind {
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
            })
            .collect();
        let results = provider.write_all(&writes).await;
        for ((ev, mapping, kind), result) in chunk.iter().cloned().zip(results) {
            record_write(store, provider, run, &mut out, ev, mapping, kind, result).await?;
        }
    }
    Ok(out)
}

/// `m` as the mapping of an event the link's transforms leave out at hub `version`: nothing
/// on the member, nothing owed to it.
fn excluded(mut m: Mapping, version: i64) -> Mapping {
    m.href = None;
    m.etag = None;
    m.excluded = true;
    m.synced_version = version;
    m.status = EventStatus::Synced;
    m.error = Some("left out by the link's transforms".into());
    m.updated_ms = now_millis();
    m
}

/// The write a push plans for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    Create,
    Update,
    Delete,
}

/// Record the outcome of one planned write: the mapping (href, receipt etag, base) on
/// success; a precondition failure asks for a re-reading pull; other failures mark the
/// event `error`. A create that met our own earlier object adopts it.
#[allow(clippy::too_many_arguments)]
async fn record_write(
    store: &Store,
    provider: &dyn Provider,
    run: &mut RunRecord,
    out: &mut PushOutcome,
    ev: HubEvent,
    mut mapping: Mapping,
    kind: Planned,
    result: WriteOutcome,
) -> Result<(), EngineError> {
    if kind == Planned::Delete {
        return match result {
            Ok(_) if !ev.deleted => {
                // Taken off the member by its transforms (the hub keeps it): the mapping
                // says so, and the link owes nothing for this version.
                run.deleted += 1;
                store.put_mapping(&excluded(mapping, ev.version)).await?;
                Ok(())
            }
            Ok(_) => {
                run.deleted += 1;
                store.delete_mapping(&mapping.link_id, &ev.uid).await?;
                Ok(())
            }
            Err(e @ ProviderError::PreconditionFailed(_)) => {
                precondition_failed(store, mapping, e, ev.version, run, out).await
            }
            Err(e) => event_failed(store, mapping, e, ev.version, run).await,
        };
    }
    let written = match (kind, result) {
        (Planned::Create, Ok(Some(w))) => {
            run.created += 1;
            Ok(w)
        }
        (Planned::Create, Err(ProviderError::AlreadyExists(href))) => {
            adopt(provider, &RemoteId::from(href), &ev, run).await
        }
        (_, Ok(Some(w))) => {
            run.updated += 1;
            Ok(w)
        }
        (_, Ok(None)) => Err(ProviderError::Protocol {
            url: mapping.href.clone().unwrap_or_default().to_string(),
            detail: "a write reported no location".into(),
        }),
        (_, Err(e)) => Err(e),
    };
    match written {
        Ok(w) => {
            mapping.href = Some(w.href);
            mapping.etag = w.etag;
            mapping.base = Some(ev.ical.clone());
            mapping.synced_version = ev.version;
            mapping.status = EventStatus::Synced;
            mapping.error = None;
            mapping.failed_version = None;
            mapping.excluded = false;
            mapping.updated_ms = now_millis();
            store.put_mapping(&mapping).await?;
            Ok(())
        }
        Err(e @ (ProviderError::PreconditionFailed(_) | ProviderError::NotFound(_))) => {
            precondition_failed(store, mapping, e, ev.version, run, out).await
        }
        Err(e) => event_failed(store, mapping, e, ev.version, run).await,
    }
}

/// Create met an existing object at our deterministic id: the result of an earlier attempt
/// whose mapping write was lost. Adopt it if it already holds this content, else overwrite it
/// under `If-Match` of the version just read.
async fn adopt(
    provider: &dyn Provider,
    href: &RemoteId,
    ev: &HubEvent,
    run: &mut RunRecord,
) -> Result<crate::provider::WriteResult, ProviderError> {
    let found = provider
        .fetch(std::slice::from_ref(href))
        .await?
        .into_iter()
        .next();
    let Some(found) = found else {
        // The server refuses the create yet holds nothing there: report, do not loop.
        return Err(ProviderError::Rejected {
            url: href.to_string(),
            status: 412,
            detail: "create refused (If-None-Match: *) but no object found at this href".into(),
        });
    };
    let same = match (
        found
            .data
            .as_deref()
            .map(|d| EventSeries::parse_single(href, d)),
        EventSeries::parse_single("hub", &ev.ical),
    ) {
        (Some(Ok(r)), Ok(h)) => r.same_content(&h),
        _ => false,
    };
    if same {
        return Ok(crate::provider::WriteResult {
            href: href.clone(),
            etag: found.etag,
        });
    }
    let w = provider.update(href, &ev.ical, found.etag.as_ref()).await?;
    run.updated += 1;
    Ok(w)
}

/// Note left on a mapping whose write met a precondition failure, until a pull looks again.
const PRECONDITION_NOTE: &str = "precondition failed; re-reading the calendar";

/// A write met 412 (or 404): the remote changed, so ask for a full pull that merges it. If
/// the same write fails again with nothing new pulled in between (the note is still there),
/// the server's preconditions cannot be satisfied: the event gets status `error` instead of
/// push and pull chasing each other.
async fn precondition_failed(
    store: &Store,
    mut m: Mapping,
    e: ProviderError,
    version: i64,
    run: &mut RunRecord,
    out: &mut PushOutcome,
) -> Result<(), EngineError> {
    if m.status == EventStatus::Pending && m.error.as_deref() == Some(PRECONDITION_NOTE) {
        let url = m.href.clone().unwrap_or_default().to_string();
        let detail = format!("{e} again after a full re-read");
        return event_failed(
            store,
            m,
            ProviderError::Rejected {
                url,
                status: 412,
                detail,
            },
            version,
            run,
        )
        .await;
    }
    m.status = EventStatus::Pending;
    m.error = Some(PRECONDITION_NOTE.into());
    m.updated_ms = now_millis();
    store.put_mapping(&m).await?;
    out.needs_pull = true;
    Ok(())
}

/// A per-event provider failure: mark the event `error` for hub `version` (not retried until
/// the event changes), unless the failure concerns the whole calendar (auth, outage), which
/// stops the run.
async fn event_failed(
    store: &Store,
    mut m: Mapping,
    e: ProviderError,
    version: i64,
    run: &mut RunRecord,
) -> Result<(), EngineError> {
    match e {
        ProviderError::Unauthorized(_) | ProviderError::Unavailable { .. } => Err(e.into()),
        e => {
            tracing::warn!(link = %m.link_id, uid = %m.uid, error = %e, "event not written");
            run.errors += 1;
            if !m.failed_at(version) {
                run.notice(NoticeKind::Error, &m.uid, &e.to_string());
            }
            m.status = EventStatus::Error;
            m.error = Some(e.to_string());
            m.failed_version = Some(version);
            m.updated_ms = now_millis();
            store.put_mapping(&m).await?;
            Ok(())
        }
    }
}
