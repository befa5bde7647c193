//! The account's calendars: `calendarList.list`
//! (https://developers.google.com/workspace/calendar/api/v3/reference/calendarList/list),
//! for connecting another calendar of a connected account ([`crate::provider::account`]).

use reqwest::Method;
use serde_json::Value;

use super::{GoogleCalendar, OAUTH};
use crate::provider::account::{AccountCalendar, MAX_CALENDARS};
use crate::provider::ProviderError;

/// Entries a page asks for (the API's maximum; its default is 100).
const PAGE: &str = "250";

impl GoogleCalendar {
    /// Every calendar on the account's calendar list, following `nextPageToken`; deleted
    /// entries are left out.
    ///
    /// Errors: as any call ([`ProviderError::Unauthorized`] when the grant is gone); a list
    /// longer than [`MAX_CALENDARS`] is [`ProviderError::TooLarge`].
    pub async fn calendar_list(&self) -> Result<Vec<AccountCalendar>, ProviderError> {
        let url = format!("{}/users/me/calendarList", self.api);
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut q = vec![("maxResults", PAGE)];
            if let Some(p) = &page {
                q.push(("pageToken", p));
            }
            let a = self.call(Method::GET, &url, &q, None, None).await?;
            if a.status != 200 {
                return Err(Self::unexpected(&url, &a));
            }
            out.extend(entries(&self.api, &a.body));
            if out.len() > MAX_CALENDARS {
                return Err(ProviderError::TooLarge {
                    url,
                    detail: format!("more than {MAX_CALENDARS} calendars"),
                });
            }
            match a.body["nextPageToken"].as_str() {
                Some(p) if !p.is_empty() => page = Some(p.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

/// The calendars of one `calendarList` page (its `items`): `primary` marks the main one,
/// `accessRole` `owner` or `writer` may write; entries without an id or marked `deleted`
/// are skipped. `api` is the API root the link URLs are built on.
pub(crate) fn entries(api: &str, page: &Value) -> Vec<AccountCalendar> {
    let Some(items) = page["items"].as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|e| !e["deleted"].as_bool().unwrap_or(false))
        .filter_map(|e| {
            let id = e["id"].as_str().filter(|s| !s.is_empty())?;
            let name = ["summaryOverride", "summary"]
                .iter()
                .find_map(|k| e[*k].as_str().filter(|s| !s.is_empty()))
                .unwrap_or(id);
            Some(AccountCalendar {
                id: id.to_string(),
                name: name.to_string(),
                main: e["primary"].as_bool().unwrap_or(false),
                writable: matches!(e["accessRole"].as_str(), Some("owner" | "writer")),
                url: (OAUTH.calendar_url)(api, id),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::account::{rows, Row};
    use serde_json::json;

    #[test]
    fn calendar_list_entries_become_account_calendars() {
        let api = "https://www.googleapis.com/calendar/v3";
        // (entry, expected (id, name, main, writable) or None when skipped)
        let table: Vec<(Value, Option<Row>)> = vec![
            (
                json!({"id": "ann@example.com", "summary": "ann@example.com", "primary": true, "accessRole": "owner"}),
                Some(("ann@example.com", "ann@example.com", true, true)),
            ),
            (
                json!({"id": "w1@group.calendar.google.com", "summary": "Work", "summaryOverride": "Büro", "accessRole": "writer"}),
                Some(("w1@group.calendar.google.com", "Büro", false, true)),
            ),
            (
                json!({"id": "de.german#holiday@group.v.calendar.google.com", "summary": "Feiertage", "accessRole": "reader"}),
                Some((
                    "de.german#holiday@group.v.calendar.google.com",
                    "Feiertage",
                    false,
                    false,
                )),
            ),
            (
                json!({"id": "fb@x", "accessRole": "freeBusyReader", "summary": ""}),
                Some(("fb@x", "fb@x", false, false)),
            ),
            (
                json!({"id": "gone@x", "summary": "Old", "deleted": true, "accessRole": "owner"}),
                None,
            ),
            (json!({"summary": "no id"}), None),
            (json!({"id": 7}), None),
        ];
        for (entry, want) in table {
            let got = entries(api, &json!({"items": [entry.clone()]}));
            assert_eq!(rows(&got), want.into_iter().collect::<Vec<_>>(), "{entry}");
        }
        let one = entries(
            api,
            &json!({"items": [{"id": "de.german#holiday@group.v.calendar.google.com"}]}),
        );
        assert_eq!(
            one[0].url,
            "https://www.googleapis.com/calendar/v3/calendars/de.german%23holiday%40group.v.calendar.google.com"
        );
        assert!(entries(api, &json!({"kind": "calendar#calendarList"})).is_empty());
    }
}
