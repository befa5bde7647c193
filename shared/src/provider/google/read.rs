//! Reading a Google calendar: the `events.list` enumeration and its incremental form behind
//! [`Provider::pull`](super::super::Provider::pull), and the series (master and exceptions,
//! one `iCalUID` list each, batched) behind `fetch`
//! (https://developers.google.com/workspace/calendar/api/guides/sync).

use reqwest::Method;
use serde_json::Value;

use super::{batch, mapping, series_etag, GoogleCalendar};
use crate::provider::{ProviderError, PullResult, RemoteRef};

impl GoogleCalendar {
    /// [`Provider::pull`](crate::provider::Provider::pull): an incremental list from the
    /// `syncToken` cursor, or the full enumeration without one or on 410. Complete series
    /// come with their data; a recurring series an incremental list shows only in part comes
    /// without, at the version of what was listed (the engine skips it when that is the
    /// mapping's version, else fetches it).
    pub(super) async fn read_changes(
        &self,
        cursor: Option<&crate::provider::Cursor>,
    ) -> Result<PullResult, ProviderError> {
        let cursor = cursor.map(crate::provider::Cursor::as_str);
        let incremental = match cursor {
            Some(token) => self.list_all(&[("syncToken", token)]).await?,
            None => None,
        };
        let full = incremental.is_none();
        let (items, next) = match incremental {
            Some(r) => r,
            None => self
                .list_all(&[("showDeleted", "true")])
                .await?
                .ok_or_else(|| ProviderError::Protocol {
                    url: self.events_url(),
                    detail: "410 on a list without syncToken".into(),
                })?,
        };
        let cursor = next.ok_or_else(|| ProviderError::Protocol {
            url: self.events_url(),
            detail: "last page without nextSyncToken".into(),
        })?;
        // A master's iCalUID is its exceptions' too (an exception names its master).
        for it in &items {
            let id = it["recurringEventId"].as_str().or(it["id"].as_str());
            if let (Some(id), Some(u)) = (id, it["iCalUID"].as_str()) {
                self.ical_uids
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.into(), u.into());
            }
        }
        let groups = mapping::group_series(&items);
        let mut out = PullResult {
            cursor: crate::provider::Cursor::new(cursor),
            full,
            ..Default::default()
        };
        for (id, members) in groups {
            let master = members.iter().find(|e| e["id"] == id.as_str());
            let master_cancelled = master.is_some_and(|m| m["status"] == "cancelled");
            if master_cancelled {
                if !full {
                    out.removed.push(id.into());
                }
                continue;
            }
            // Complete data: a full listing, or a lone non-recurring event.
            let complete = full
                || (members.len() == 1 && master.is_some_and(|m| m.get("recurrence").is_none()));
            if full && master.is_none() {
                continue; // exceptions of a series that is not ours to list (no master)
            }
            if !complete {
                // Exceptions may be unlisted: no data, and the version of what was listed.
                // It equals the mapping's version only when exactly the members this link
                // last wrote or read were listed, unchanged (the echo of our own write,
                // skipped without a call); otherwise the engine fetches the series.
                out.changed.push(RemoteRef {
                    href: id.as_str().into(),
                    etag: series_etag(&members).map(crate::provider::Etag::from),
                    data: None,
                    author: crate::provider::Author::Unknown,
                });
                continue;
            }
            match Self::remote_ref(&id, &members) {
                Ok(r) => out.changed.push(r),
                Err(reason) => out.unreadable.push((id.into(), reason)),
            }
        }
        Ok(out)
    }

    /// [`Provider::fetch`](crate::provider::Provider::fetch): the series of `hrefs` with
    /// their data; gone or unreadable ones are left out.
    pub(super) async fn read_series(
        &self,
        hrefs: &[crate::provider::RemoteId],
    ) -> Result<Vec<RemoteRef>, ProviderError> {
        let mut out = Vec::new();
        for (id, members) in self.series_many(hrefs).await? {
            let refs: Vec<&Value> = members.iter().collect();
            if let Ok(r) = Self::remote_ref(&id, &refs) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// All items of a list query, following `nextPageToken`; `Ok(None)` on 410 (sync token
    /// no longer valid).
    pub(super) async fn list_all(
        &self,
        base: &[(&str, &str)],
    ) -> Result<Option<(Vec<Value>, Option<String>)>, ProviderError> {
        let url = self.events_url();
        let mut items = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = base.to_vec();
            q.push(("maxResults", "2500"));
            if let Some(p) = &page {
                q.push(("pageToken", p));
            }
            let a = self.call(Method::GET, &url, &q, None, None).await?;
            match a.status {
                200 => {}
                410 => return Ok(None),
                _ => return Err(Self::unexpected(&url, &a)),
            }
            if let Some(arr) = a.body["items"].as_array() {
                items.extend(arr.iter().cloned());
            }
            match (
                a.body["nextPageToken"].as_str(),
                a.body["nextSyncToken"].as_str(),
            ) {
                (Some(p), _) => page = Some(p.to_string()),
                (None, s) => return Ok(Some((items, s.map(str::to_string)))),
            }
        }
    }

    /// The master and exceptions of the series `id` (cancelled ones included), or `None` when
    /// the master is gone or cancelled.
    async fn series(&self, id: &str) -> Result<Option<Vec<Value>>, ProviderError> {
        let known = self
            .ical_uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned();
        let ical_uid = match known {
            Some(u) => u,
            None => {
                let url = self.event_url(id);
                let a = self.call(Method::GET, &url, &[], None, None).await?;
                match a.status {
                    200 if a.body["status"] != "cancelled" => {}
                    200 | 404 | 410 => return Ok(None),
                    _ => return Err(Self::unexpected(&url, &a)),
                }
                match a.body["iCalUID"].as_str() {
                    Some(u) => u.to_string(),
                    None => return Ok(Some(vec![a.body])),
                }
            }
        };
        let Some((items, _)) = self
            .list_all(&[("iCalUID", &ical_uid), ("showDeleted", "true")])
            .await?
        else {
            return Ok(None);
        };
        Ok(Self::members_of(id, items))
    }

    /// The members of series `id` among `items` (an `iCalUID` listing), or `None` when its
    /// master is not among them or is cancelled.
    fn members_of(id: &str, items: Vec<Value>) -> Option<Vec<Value>> {
        let members: Vec<Value> = items
            .into_iter()
            .filter(|e| e["id"] == id || e["recurringEventId"] == id)
            .collect();
        let live = members
            .iter()
            .any(|e| e["id"] == id && e["status"] != "cancelled");
        live.then_some(members)
    }

    /// The series of `ids`: those whose iCalUID the listing taught go as one `iCalUID` list
    /// each, batched ([`Self::call_many`]); the rest (and a list with a further page) one by
    /// one through [`Self::series`]. A series that is gone is left out.
    async fn series_many(
        &self,
        ids: &[crate::provider::RemoteId],
    ) -> Result<Vec<(String, Vec<Value>)>, ProviderError> {
        let known: Vec<(String, Option<String>)> = {
            let map = self
                .ical_uids
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ids.iter()
                .map(|id| (id.to_string(), map.get(id.as_str()).cloned()))
                .collect()
        };
        let mut out = Vec::new();
        let mut one_by_one = Vec::new();
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        for (id, uid) in known {
            match uid {
                Some(uid) => {
                    calls.push(self.series_call(&uid));
                    owners.push(id);
                }
                None => one_by_one.push(id),
            }
        }
        for (id, a) in owners.into_iter().zip(self.call_many(calls).await) {
            let a = a?;
            if a.status != 200 || a.body.get("nextPageToken").is_some() {
                one_by_one.push(id);
                continue;
            }
            let items = a.body["items"].as_array().cloned().unwrap_or_default();
            if let Some(members) = Self::members_of(&id, items) {
                out.push((id, members));
            }
        }
        for id in one_by_one {
            if let Some(members) = self.series(&id).await? {
                out.push((id, members));
            }
        }
        Ok(out)
    }

    /// The list of every member of the series `ical_uid` (cancelled ones included), one page
    /// of up to 2,500, as a batchable call.
    pub(super) fn series_call(&self, ical_uid: &str) -> batch::Call {
        batch::Call::new(
            Method::GET,
            self.events_url(),
            &[
                ("iCalUID", ical_uid),
                ("showDeleted", "true"),
                ("maxResults", "2500"),
            ],
            None,
            None,
        )
    }

    fn remote_ref(id: &str, members: &[&Value]) -> Result<RemoteRef, String> {
        let data = mapping::series_to_ical(members)?;
        Ok(RemoteRef {
            href: id.into(),
            etag: series_etag(members).map(crate::provider::Etag::from),
            data: Some(data),
            author: mapping::author(members),
        })
    }
}
