//! Writing a Google calendar: a chunk of writes as batch requests, masters first and their
//! exceptions after (https://developers.google.com/workspace/calendar/api/guides/batch),
//! under the deterministic event ids and `If-Match` described in the provider's doc.

use reqwest::Method;
use serde_json::{json, Value};

use super::{batch, event_id_for, mapping, master_etag, series_etag, GoogleCalendar};
use crate::ical::EventSeries;
use crate::provider::{ProviderError, Write, WriteOutcome, WriteResult};

/// Query of every write: no e-mails to guests, conference data honoured.
const WRITE_QUERY: [(&str, &str); 2] = [("sendUpdates", "none"), ("conferenceDataVersion", "1")];

/// The one result of a one-write [`Provider::write_all`](crate::provider::Provider::write_all).
pub(super) fn single(mut r: Vec<WriteOutcome>) -> Result<WriteResult, ProviderError> {
    match r.pop() {
        Some(Ok(Some(w))) => Ok(w),
        Some(Err(e)) => Err(e),
        _ => Err(ProviderError::Protocol {
            url: String::new(),
            detail: "a write without its result".into(),
        }),
    }
}

impl GoogleCalendar {
    /// [`Provider::write_all`](crate::provider::Provider::write_all): one outcome per write,
    /// in order.
    pub(super) async fn write_chunk(&self, writes: &[Write<'_>]) -> Vec<WriteOutcome> {
        let n = writes.len();
        let mut results: Vec<Option<WriteOutcome>> = (0..n).map(|_| None).collect();
        let mut series: Vec<Option<(String, mapping::GoogleSeries)>> =
            (0..n).map(|_| None).collect();
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let (id, g) = match *w {
                Write::Delete { href, etag } => {
                    calls.push(batch::Call::new(
                        Method::DELETE,
                        self.event_url(href),
                        &[("sendUpdates", "none")],
                        None,
                        etag.map(|e| master_etag(e)),
                    ));
                    owners.push(i);
                    continue;
                }
                Write::Create { uid, ical } => (event_id_for(uid), Self::to_google(uid, ical)),
                Write::Update { href, ical, .. } => (href.to_string(), Self::to_google(href, ical)),
            };
            let g = match g {
                Ok(g) => g,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let mut body = g.master.clone();
            let call = match *w {
                Write::Update { etag, .. } => batch::Call::new(
                    Method::PUT,
                    self.event_url(&id),
                    &WRITE_QUERY,
                    Some(body),
                    etag.map(|e| master_etag(e)),
                ),
                _ => {
                    body["id"] = json!(id);
                    batch::Call::new(
                        Method::POST,
                        self.events_url(),
                        &WRITE_QUERY,
                        Some(body),
                        None,
                    )
                }
            };
            calls.push(call);
            owners.push(i);
            series[i] = Some((id, g));
        }
        // The exceptions Google holds now for the recurring series being updated (one list
        // by iCalUID each, batched): those the new version has no override for are put back
        // to what the new master generates, or they would keep stale or dropped changes.
        let existing = self.existing_exceptions(writes, &series).await;
        let urls: Vec<String> = calls.iter().map(|c| c.url.clone()).collect();
        let answers = self.call_many(calls).await;
        let mut masters: Vec<Option<Value>> = (0..n).map(|_| None).collect();
        for ((i, url), a) in owners.into_iter().zip(urls).zip(answers) {
            let a = match a {
                Ok(a) => a,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let id = series[i].as_ref().map(|(id, _)| id.as_str());
            let outcome = match (&writes[i], a.status, id) {
                (Write::Delete { .. }, 200 | 204 | 404 | 410, _) => Ok(None),
                (Write::Delete { href, .. } | Write::Update { href, .. }, 412, _) => {
                    Err(ProviderError::PreconditionFailed(href.to_string()))
                }
                (Write::Update { href, .. }, 404 | 410, _) => {
                    Err(ProviderError::NotFound(href.to_string()))
                }
                (Write::Create { .. } | Write::Update { .. }, 200, Some(_)) => {
                    masters[i] = Some(a.body);
                    continue;
                }
                (Write::Create { .. }, 409, Some(id)) => {
                    let revived = match series.get(i).and_then(|s| s.as_ref()) {
                        Some((_, g)) => self.revive(id, &g.master).await,
                        None => Err(Self::unexpected(&url, &a)),
                    };
                    match revived {
                        Ok(m) => {
                            masters[i] = Some(m);
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => Err(Self::unexpected(&url, &a)),
            };
            results[i] = Some(outcome);
        }
        // Exceptions, once their masters exist; and occurrences whose override the new
        // version drops, put back to what the master generates (`revert`: an instance the
        // rule no longer generates is gone already, 404/410).
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (i, s) in series.iter().enumerate() {
            if let (Some(written), Some((id, g))) = (&masters[i], s) {
                let reverts = mapping::reset_instances(&existing[i], g, written);
                let all = g
                    .exceptions
                    .iter()
                    .map(|e| (e, false))
                    .chain(reverts.iter().map(|e| (e, true)));
                for ((suffix, body), revert) in all {
                    calls.push(batch::Call::new(
                        Method::PUT,
                        self.event_url(&format!("{id}_{suffix}")),
                        &WRITE_QUERY,
                        Some(body.clone()),
                        None,
                    ));
                    owners.push((i, revert));
                }
            }
        }
        let urls: Vec<String> = calls.iter().map(|c| c.url.clone()).collect();
        let answers = self.call_many(calls).await;
        let mut written: Vec<Vec<Value>> = (0..n).map(|_| Vec::new()).collect();
        let mut failed: Vec<Option<ProviderError>> = (0..n).map(|_| None).collect();
        for (((i, revert), url), a) in owners.into_iter().zip(urls).zip(answers) {
            match a {
                Ok(a) if a.status == 200 => written[i].push(a.body),
                Ok(a) if revert && matches!(a.status, 404 | 410) => {}
                Ok(a) => {
                    failed[i].get_or_insert(Self::unexpected(&url, &a));
                }
                Err(e) => {
                    failed[i].get_or_insert(e);
                }
            }
        }
        for i in 0..n {
            let (Some(master), Some((id, _))) = (masters[i].take(), series[i].as_ref()) else {
                continue;
            };
            results[i] = Some(match failed[i].take() {
                None => Ok(Some(Self::write_result(
                    id,
                    master,
                    std::mem::take(&mut written[i]),
                ))),
                Some(e) => {
                    let refused = matches!(
                        e,
                        ProviderError::Rejected { .. } | ProviderError::NotFound(_)
                    );
                    if refused && matches!(writes[i], Write::Create { .. }) {
                        let url = self.event_url(id);
                        let _ = self
                            .call(Method::DELETE, &url, &[("sendUpdates", "none")], None, None)
                            .await;
                    }
                    Err(e)
                }
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ProviderError::Protocol {
                        url: self.events_url(),
                        detail: "write without an answer".into(),
                    })
                })
            })
            .collect()
    }

    /// For each write: the exceptions Google holds for the series an update rewrites (empty
    /// for other writes, one-off events, and when the list fails: then nothing is reset).
    async fn existing_exceptions(
        &self,
        writes: &[Write<'_>],
        series: &[Option<(String, mapping::GoogleSeries)>],
    ) -> Vec<Vec<Value>> {
        let mut out: Vec<Vec<Value>> = (0..writes.len()).map(|_| Vec::new()).collect();
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let (Write::Update { .. }, Some((_, g))) = (w, &series[i]) else {
                continue;
            };
            let Some(uid) = g.master["iCalUID"].as_str() else {
                continue;
            };
            if g.master.get("recurrence").is_none() {
                continue;
            }
            calls.push(self.series_call(uid));
            owners.push(i);
        }
        for (i, a) in owners.into_iter().zip(self.call_many(calls).await) {
            let Ok(a) = a else { continue };
            let Some((id, _)) = &series[i] else { continue };
            out[i] = a.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["recurringEventId"] == id.as_str())
                .cloned()
                .collect();
        }
        out
    }

    /// `events.insert` met 409 at our deterministic id `id`: Google keeps deleted ids, so a
    /// cancelled event there is revived with `g`'s master (`Some(master)`); a live one is
    /// ours from an earlier attempt ([`ProviderError::AlreadyExists`], the engine adopts it).
    async fn revive(&self, id: &str, master: &Value) -> Result<Value, ProviderError> {
        let eurl = self.event_url(id);
        let cur = self.call(Method::GET, &eurl, &[], None, None).await?;
        if cur.status == 200 && cur.body["status"] == "cancelled" {
            let mut revived = master.clone();
            revived["status"] = json!("confirmed");
            let etag = cur.body["etag"].as_str().map(str::to_string);
            let r = self
                .call(
                    Method::PUT,
                    &eurl,
                    &WRITE_QUERY,
                    Some(&revived),
                    etag.as_deref(),
                )
                .await?;
            if r.status != 200 {
                return Err(Self::unexpected(&eurl, &r));
            }
            return Ok(r.body);
        }
        Err(ProviderError::AlreadyExists(id.into()))
    }

    fn to_google(href: &str, ical: &str) -> Result<mapping::GoogleSeries, ProviderError> {
        let series =
            EventSeries::parse_single(href, ical).map_err(|e| ProviderError::Rejected {
                url: href.into(),
                status: 400,
                detail: e.to_string(),
            })?;
        mapping::to_google(&series).map_err(|e| ProviderError::Rejected {
            url: href.into(),
            status: 400,
            detail: format!("cannot be written to Google: {e}"),
        })
    }

    fn write_result(id: &str, master: Value, exceptions: Vec<Value>) -> WriteResult {
        let mut all = vec![master];
        all.extend(exceptions);
        let refs: Vec<&Value> = all.iter().collect();
        WriteResult {
            href: id.into(),
            etag: series_etag(&refs).map(crate::provider::Etag::from),
        }
    }
}
