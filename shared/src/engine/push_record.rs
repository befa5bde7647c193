//! The recording half of a push ([`super::push`]): each write's outcome settled as
//! [`super::push_plan::settle`] decides (a create that met our own earlier object adopts
//! it first), the chunk's mappings stored, and the run's tallies booked.

use super::push_plan::{self, Planned, Settled, Tally};
use super::{EngineError, PushOutcome};
use crate::config::now_millis;
use crate::ical::EventSeries;
use crate::model::{HubEvent, Mapping, RunRecord};
use crate::provider::{Provider, ProviderError, RemoteId, WriteOutcome};
use crate::store::Store;

use super::push::Chunk;

/// Mapping writes of one chunk in flight at once.
const RECORDS_IN_FLIGHT: usize = 8;

/// What recording one write's outcome adds to the run.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    tally: Option<Tally>,
    /// A precondition failed: the link needs a pull.
    reread: bool,
    /// The event was not written: its UID and the notice for the application.
    failed: Option<(String, Option<(crate::model::NoticeKind, String)>)>,
}

/// Record a chunk's outcomes in the chunk's order: each settled as [`settle_write`]
/// decides (a few at a time), then the chunk's mappings stored in one request where they
/// fit ([`Store::put_mappings`]), forgotten ones deleted one by one.
pub(super) async fn record_chunk<'a>(
    store: &'a Store,
    provider: &'a dyn Provider,
    chunk: Chunk,
    results: Vec<WriteOutcome>,
) -> Vec<Result<Recorded, EngineError>> {
    use futures_util::StreamExt;
    let settled: Vec<(Settled, Option<Tally>)> =
        futures_util::stream::iter(chunk.into_iter().zip(results))
            .map(|((ev, mapping, kind), result)| async move {
                settle_write(provider, &ev, mapping, kind, result).await
            })
            .buffered(RECORDS_IN_FLIGHT)
            .collect()
            .await;
    let puts: Vec<Mapping> = settled
        .iter()
        .filter_map(|(s, _)| match s {
            Settled::Record(m) | Settled::Reread(m) | Settled::Failed { mapping: m, .. } => {
                Some(m.clone())
            }
            Settled::Forget(_) | Settled::Stop(_) => None,
        })
        .collect();
    if let Err(e) = store.put_mappings(&puts).await {
        return vec![Err(e.into())];
    }
    let mut out = Vec::with_capacity(settled.len());
    for (settled, tally) in settled {
        let mut rec = Recorded {
            tally,
            ..Default::default()
        };
        match settled {
            Settled::Record(_) => {}
            Settled::Forget(m) => {
                if let Err(e) = store.delete_mapping(&m.link_id, &m.uid).await {
                    out.push(Err(e.into()));
                    continue;
                }
            }
            Settled::Reread(_) => rec.reread = true,
            Settled::Failed { mapping, notice } => {
                tracing::warn!(link = %mapping.link_id, uid = %mapping.uid, error = ?mapping.error, "event not written");
                rec.failed = Some((mapping.uid, notice));
            }
            Settled::Stop(e) => {
                out.push(Err(e.into()));
                continue;
            }
        }
        out.push(Ok(rec));
    }
    out
}

/// Add recorded outcomes to the run; the first error stops it.
pub(super) fn book(
    run: &mut RunRecord,
    out: &mut PushOutcome,
    recorded: Vec<Result<Recorded, EngineError>>,
) -> Result<(), EngineError> {
    for r in recorded {
        let r = r?;
        match r.tally {
            Some(Tally::Created) => run.created += 1,
            Some(Tally::Updated) => run.updated += 1,
            Some(Tally::Deleted) => run.deleted += 1,
            None => {}
        }
        out.needs_pull |= r.reread;
        if let Some((uid, notice)) = r.failed {
            run.errors += 1;
            if let Some((kind, why)) = notice {
                run.notice(kind, &uid, &why);
            }
        }
    }
    Ok(())
}

/// What recording one planned write's outcome comes to, as [`push_plan::settle`] decides,
/// and its tally. A create that met our own earlier object adopts it first.
async fn settle_write(
    provider: &dyn Provider,
    ev: &HubEvent,
    mapping: Mapping,
    kind: Planned,
    result: WriteOutcome,
) -> (Settled, Option<Tally>) {
    match (kind, result) {
        (Planned::Create, Err(ProviderError::AlreadyExists(href))) => {
            let (adopted, tally) = match adopt(provider, &RemoteId::from(href), ev).await {
                Ok((w, tally)) => (Ok(Some(w)), tally),
                Err(e) => (Err(e), None),
            };
            let (settled, _) = push_plan::settle(kind, ev, mapping, adopted, now_millis());
            (settled, tally)
        }
        (kind, result) => push_plan::settle(kind, ev, mapping, result, now_millis()),
    }
}

/// Create met an existing object at our deterministic id: the result of an earlier attempt
/// whose mapping write was lost. Adopt it if it already holds this content (no tally), else
/// overwrite it under `If-Match` of the version just read (`Updated`). When nothing is
/// there — the object was deleted right after the refusal, or the refusal was spurious —
/// the create is tried once more (`Created`); a second refusal is reported, never looped on.
async fn adopt(
    provider: &dyn Provider,
    href: &RemoteId,
    ev: &HubEvent,
) -> Result<(crate::provider::WriteResult, Option<Tally>), ProviderError> {
    let found = provider
        .fetch(std::slice::from_ref(href))
        .await?
        .into_iter()
        .next();
    let Some(found) = found else {
        return match provider.create(&ev.uid, &ev.ical).await {
            Ok(w) => Ok((w, Some(Tally::Created))),
            Err(ProviderError::AlreadyExists(_)) => Err(ProviderError::Rejected {
                url: href.to_string(),
                status: 412,
                detail: "create refused (If-None-Match: *) twice, but no object found at this href"
                    .into(),
            }),
            Err(e) => Err(e),
        };
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
        let w = crate::provider::WriteResult {
            href: href.clone(),
            etag: found.etag,
        };
        return Ok((w, None));
    }
    let w = provider.update(href, &ev.ical, found.etag.as_ref()).await?;
    Ok((w, Some(Tally::Updated)))
}
