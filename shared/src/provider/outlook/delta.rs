//! Reading Outlook: `calendarView/delta` rounds, whole series, and what a pull reports
//! (see the module docs of [`super`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;

use super::{
    mapping, OutlookCalendar, MAX_RESTARTS, PAGE, REANCHOR_DAYS, WINDOW_FUTURE_DAYS,
    WINDOW_PAST_DAYS,
};
use crate::provider::{Author, Cursor, Etag, ProviderError, PullResult, RemoteId, RemoteRef};

/// The cursor: the round's `@odata.deltaLink` and its window (UTC).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct DeltaCursor {
    delta: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// The window a round anchored now covers.
pub fn wanted_window(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    (
        day - chrono::Duration::days(WINDOW_PAST_DAYS),
        day + chrono::Duration::days(WINDOW_FUTURE_DAYS),
    )
}

/// Codes that mean the delta token is gone (delta-query-overview, errors).
fn token_lost(status: u16, body: &Value) -> bool {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    status == 410
        || matches!(
            code.as_str(),
            "syncstatenotfound" | "syncstateinvalid" | "resyncrequired"
        )
}

impl OutlookCalendar {
    /// Every page of a delta round starting at `url`; `Ok(None)` when the token is gone.
    async fn round(&self, url: &str) -> Result<Option<(Vec<Value>, String)>, ProviderError> {
        let mut items = Vec::new();
        let mut next = url.to_string();
        loop {
            let a = self.call(Method::GET, &next, None, None).await?;
            if token_lost(a.status, &a.body) {
                return Ok(None);
            }
            if a.status != 200 {
                return Err(Self::unexpected(&next, &a));
            }
            items.extend(a.body["value"].as_array().cloned().unwrap_or_default());
            if let Some(n) = a.body["@odata.nextLink"].as_str() {
                next = self.same_origin(n)?;
                continue;
            }
            let delta =
                a.body["@odata.deltaLink"]
                    .as_str()
                    .ok_or_else(|| ProviderError::Protocol {
                        url: next.clone(),
                        detail: "a delta page with neither nextLink nor deltaLink".into(),
                    })?;
            return Ok(Some((items, self.same_origin(delta)?)));
        }
    }

    fn initial_url(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!(
            "{}/calendarView/delta?startDateTime={}&endDateTime={}",
            self.calendar_url(),
            f(from),
            f(to)
        )
    }

    /// The window a series' instances are read in: from the series' start to the window's
    /// end, so exceptions and cancellations before the window are read too and a series
    /// reads back whole.
    fn instances_window(&self, master: &Value) -> (DateTime<Utc>, DateTime<Utc>) {
        let to = self.window().1;
        let from = mapping::utc_of(&master["start"])
            .map(|t| t - chrono::Duration::days(1))
            .unwrap_or(self.window().0);
        (from, to)
    }

    /// The series (or single event) `id` as VCALENDAR text and its version.
    async fn read_series(&self, id: &str) -> Result<Option<RemoteRef>, ProviderError> {
        let Some(ev) = self.get_event(id).await? else {
            return Ok(None);
        };
        let inst = if ev["type"] == "seriesMaster" {
            let (from, to) = self.instances_window(&ev);
            self.instances(id, from, to).await?
        } else {
            Vec::new()
        };
        self.series_ref(id, &ev, &inst).map(Some)
    }

    /// A series as the engine sees it, from its master (or single event) and instances.
    fn series_ref(&self, id: &str, ev: &Value, inst: &[Value]) -> Result<RemoteRef, ProviderError> {
        let data = if ev["type"] == "seriesMaster" {
            let exceptions: Vec<Value> = inst
                .iter()
                .filter(|i| i["type"] == "exception")
                .cloned()
                .collect();
            let cancelled = cancelled_occurrences(ev, inst, self.instances_window(ev));
            mapping::to_ical(ev, &exceptions, &cancelled)
        } else {
            mapping::to_ical(ev, &[], &[])
        };
        data.map(|d| RemoteRef {
            href: id.into(),
            etag: ev["changeKey"].as_str().map(Etag::from),
            data: Some(d),
            author: mapping::author(ev),
        })
        .map_err(|reason| ProviderError::Protocol {
            url: self.event_url(id),
            detail: reason,
        })
    }

    /// Several series at once: the events in `$batch` requests of 20, then the first page of
    /// each master's instances the same way (later pages one by one). Ids that are gone are
    /// left out; a series that cannot be read is `Err` in its place.
    async fn read_many(
        &self,
        ids: &[RemoteId],
    ) -> Result<Vec<(RemoteId, Result<RemoteRef, ProviderError>)>, ProviderError> {
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let gets: Vec<(Method, String, Option<Value>)> = ids
            .iter()
            .map(|h| {
                (
                    Method::GET,
                    format!(
                        "{}?$expand={}",
                        self.event_path(h),
                        crate::provider::percent_encode(&self.expand())
                    ),
                    None,
                )
            })
            .collect();
        let events = super::writes::batch(self, &gets, &[]).await?;
        let mut found: Vec<(RemoteId, Value)> = Vec::new();
        for (h, a) in ids.iter().zip(events) {
            match a.status {
                200 => found.push((h.clone(), a.body)),
                404 => {}
                _ => return Err(Self::unexpected(&self.event_url(h), &a)),
            }
        }
        let masters: Vec<usize> = (0..found.len())
            .filter(|i| found[*i].1["type"] == "seriesMaster")
            .collect();
        let pages: Vec<(Method, String, Option<Value>)> = masters
            .iter()
            .map(|i| {
                let (from, to) = self.instances_window(&found[*i].1);
                (
                    Method::GET,
                    format!(
                        "{}/instances?startDateTime={}&endDateTime={}&$top={PAGE}",
                        self.event_path(&found[*i].0),
                        f(from),
                        f(to)
                    ),
                    None,
                )
            })
            .collect();
        let first = if pages.is_empty() {
            Vec::new()
        } else {
            super::writes::batch(self, &pages, &[]).await?
        };
        let mut instances: std::collections::HashMap<usize, Vec<Value>> = Default::default();
        for (i, a) in masters.iter().zip(first) {
            if a.status != 200 {
                return Err(Self::unexpected(&self.event_url(&found[*i].0), &a));
            }
            let mut list = a.body["value"].as_array().cloned().unwrap_or_default();
            let mut next = a.body["@odata.nextLink"].as_str().map(str::to_string);
            while let Some(n) = next {
                let url = self.same_origin(&n)?;
                let p = self.call(Method::GET, &url, None, None).await?;
                if p.status != 200 {
                    return Err(Self::unexpected(&url, &p));
                }
                list.extend(p.body["value"].as_array().cloned().unwrap_or_default());
                next = p.body["@odata.nextLink"].as_str().map(str::to_string);
            }
            instances.insert(*i, list);
        }
        Ok(found
            .iter()
            .enumerate()
            .map(|(i, (h, ev))| {
                let inst = instances.remove(&i).unwrap_or_default();
                (h.clone(), self.series_ref(h, ev, &inst))
            })
            .collect())
    }

    /// Every series of the calendar (`GET …/events`, all pages), each read whole with its
    /// instances up to `to` (tools and tests: the delta window does not limit it).
    ///
    /// Errors: as for a pull.
    pub async fn read_all(&self, to: DateTime<Utc>) -> Result<Vec<RemoteRef>, ProviderError> {
        let mut url = format!("{}?$top={PAGE}", self.events_url());
        let mut ids = Vec::new();
        loop {
            let a = self.call(Method::GET, &url, None, None).await?;
            if a.status != 200 {
                return Err(Self::unexpected(&url, &a));
            }
            ids.extend(
                a.body["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["id"].as_str().map(str::to_string)),
            );
            match a.body["@odata.nextLink"].as_str() {
                Some(n) => url = self.same_origin(n)?,
                None => break,
            }
        }
        let keep = self.window();
        *self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (keep.0, to);
        let ids: Vec<RemoteId> = ids.into_iter().map(RemoteId::from).collect();
        let out = fetch(self, &ids).await;
        *self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keep;
        out
    }
}

/// The original starts of the occurrences `master`'s rule generates in the window that
/// `/instances` does not list: Graph's cancelled occurrences. All-day series compare dates.
pub fn cancelled_occurrences(
    master: &Value,
    instances: &[Value],
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<DateTime<Utc>> {
    let Ok(ical) = mapping::to_ical(master, &[], &[]) else {
        return Vec::new();
    };
    let all_day = master["isAllDay"].as_bool().unwrap_or(false);
    let zone = mapping::series_zone(master).unwrap_or(chrono_tz::UTC);
    let key = |t: DateTime<Utc>| {
        if all_day {
            t.with_timezone(&zone)
                .date_naive()
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
        } else {
            t
        }
    };
    let listed: std::collections::HashSet<DateTime<Utc>> = instances
        .iter()
        .filter_map(|i| i["originalStart"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| key(t.with_timezone(&Utc)))
        .collect();
    let (occ, _) = crate::ical::occurrences_of(&ical, window.0, window.1, 5000);
    occ.into_iter()
        .map(|o| {
            if all_day {
                o.start
                    .date_naive()
                    .and_time(chrono::NaiveTime::MIN)
                    .and_utc()
            } else {
                o.start
            }
        })
        .filter(|t| !listed.contains(t))
        .collect()
}

/// Group a round's items into series: id → (version when the item itself was listed).
fn group(items: &[Value]) -> (BTreeMap<String, Option<Etag>>, Vec<String>) {
    let mut series: BTreeMap<String, Option<Etag>> = BTreeMap::new();
    let mut removed = Vec::new();
    for it in items {
        let id = it["id"].as_str().unwrap_or_default().to_string();
        if it.get("@removed").is_some() {
            removed.push(id);
            continue;
        }
        match it["type"].as_str().unwrap_or("singleInstance") {
            "occurrence" | "exception" => {
                if let Some(m) = it["seriesMasterId"].as_str() {
                    series.entry(m.to_string()).or_insert(None);
                }
            }
            _ => {
                series.insert(id, it["changeKey"].as_str().map(Etag::from));
            }
        }
    }
    (series, removed)
}

/// One pull: a delta round (incremental from the cursor, or full over the wanted window),
/// restarted when the service lost its state; removals confirmed.
pub(super) async fn pull(
    o: &OutlookCalendar,
    cursor: Option<&Cursor>,
) -> Result<PullResult, ProviderError> {
    let wanted = wanted_window(Utc::now());
    let stored: Option<DeltaCursor> = cursor.and_then(|c| serde_json::from_str(c.as_str()).ok());
    let current = stored.filter(|c| (wanted.0 - c.from).num_days() <= REANCHOR_DAYS);
    let (mut full, mut window, mut url) = match &current {
        Some(c) => (false, (c.from, c.to), c.delta.clone()),
        None => (true, wanted, o.initial_url(wanted.0, wanted.1)),
    };
    *o.window
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = window;
    let mut restarts = 0;
    let (items, delta) = loop {
        match o.round(&url).await? {
            Some(r) => break r,
            None if restarts < MAX_RESTARTS => {
                restarts += 1;
                tracing::info!(calendar = %o.calendar_id, "delta token lost; full round over the window");
                full = true;
                window = current.as_ref().map(|c| (c.from, c.to)).unwrap_or(wanted);
                url = o.initial_url(window.0, window.1);
            }
            None => {
                return Err(ProviderError::Protocol {
                    url: crate::provider::redacted(&url),
                    detail: "the service refused a new delta round (410)".into(),
                })
            }
        }
    };
    let (series, removed_ids) = group(&items);
    let mut changed: Vec<RemoteRef> = series
        .into_iter()
        .map(|(href, etag)| RemoteRef {
            href: href.into(),
            etag,
            data: None,
            author: Author::Unknown,
        })
        .collect();
    let mut removed = Vec::new();
    // A removal may be a move out of the window: only what is gone is removed.
    for id in removed_ids {
        if changed.iter().any(|c| c.href == id) {
            continue;
        }
        match o.get_event(&id).await? {
            None => removed.push(RemoteId::from(id)),
            Some(ev) if ev["type"] == "occurrence" || ev["type"] == "exception" => {
                if let Some(m) = ev["seriesMasterId"].as_str() {
                    changed.push(RemoteRef {
                        href: m.into(),
                        etag: None,
                        data: None,
                        author: Author::Unknown,
                    });
                }
            }
            Some(ev) => changed.push(RemoteRef {
                href: id.into(),
                etag: ev["changeKey"].as_str().map(Etag::from),
                data: None,
                author: Author::Unknown,
            }),
        }
    }
    let c = DeltaCursor {
        delta,
        from: window.0,
        to: window.1,
    };
    Ok(PullResult {
        changed,
        removed,
        cursor: Cursor::new(serde_json::to_string(&c).unwrap_or_default()),
        full,
        ..Default::default()
    })
}

/// The series `hrefs`, each read whole; one that cannot be read is left out (logged).
pub(super) async fn fetch(
    o: &OutlookCalendar,
    hrefs: &[RemoteId],
) -> Result<Vec<RemoteRef>, ProviderError> {
    let read: Vec<(RemoteId, Result<RemoteRef, ProviderError>)> = if hrefs.len() == 1 {
        match o.read_series(&hrefs[0]).await {
            Ok(Some(r)) => vec![(hrefs[0].clone(), Ok(r))],
            Ok(None) => Vec::new(),
            Err(e) => vec![(hrefs[0].clone(), Err(e))],
        }
    } else {
        o.read_many(hrefs).await?
    };
    let mut out = Vec::new();
    for (h, r) in read {
        match r {
            Ok(r) => out.push(r),
            // One unreadable series must not stop the others (as for Google, it is
            // left out; issue 13 makes these the event's `error`).
            Err(ProviderError::Protocol { detail, .. }) => {
                tracing::warn!(href = %h, %detail, "Outlook event cannot be read; left out");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
