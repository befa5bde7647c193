//! The account's calendars: `GET /me/calendars`
//! (https://learn.microsoft.com/graph/api/user-list-calendars), paged by `@odata.nextLink`,
//! for connecting another calendar of a connected account ([`crate::provider::account`]).

use reqwest::Method;
use serde_json::Value;

use super::{OutlookCalendar, OAUTH};
use crate::provider::account::{AccountCalendar, MAX_CALENDARS};
use crate::provider::ProviderError;

impl OutlookCalendar {
    /// Every calendar of the signed-in mailbox, following `@odata.nextLink` (only on the
    /// API's own origin).
    ///
    /// Errors: as any call ([`ProviderError::Unauthorized`] when the grant is gone); a
    /// paging link to another origin is [`ProviderError::Protocol`]; more than
    /// [`MAX_CALENDARS`] calendars is [`ProviderError::TooLarge`].
    pub async fn calendar_list(&self) -> Result<Vec<AccountCalendar>, ProviderError> {
        let mut url = format!(
            "{}/me/calendars?$top=100&$select=id,name,canEdit,isDefaultCalendar",
            self.api()
        );
        let mut out = Vec::new();
        loop {
            let a = self.call(Method::GET, &url, None, None).await?;
            if a.status != 200 {
                return Err(Self::unexpected(&url, &a));
            }
            out.extend(entries(self.api(), &a.body));
            if out.len() > MAX_CALENDARS {
                return Err(ProviderError::TooLarge {
                    url: crate::provider::redacted(&url),
                    detail: format!("more than {MAX_CALENDARS} calendars"),
                });
            }
            match a.body["@odata.nextLink"].as_str() {
                Some(next) => url = self.same_origin(next)?,
                None => return Ok(out),
            }
        }
    }
}

/// The calendars of one `/me/calendars` page (its `value`): `isDefaultCalendar` marks the
/// main one, `canEdit` says whether it may be written; entries without an id are skipped.
/// `api` is the API root the link URLs are built on.
pub(crate) fn entries(api: &str, page: &Value) -> Vec<AccountCalendar> {
    let Some(items) = page["value"].as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|c| {
            let id = c["id"].as_str().filter(|s| !s.is_empty())?;
            Some(AccountCalendar {
                id: id.to_string(),
                name: c["name"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(id)
                    .to_string(),
                main: c["isDefaultCalendar"].as_bool().unwrap_or(false),
                writable: c["canEdit"].as_bool().unwrap_or(false),
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
    fn me_calendars_entries_become_account_calendars() {
        let api = "https://graph.microsoft.com/v1.0";
        // (entry, expected (id, name, main, writable) or None when skipped)
        let table: Vec<(Value, Option<Row>)> = vec![
            (
                json!({"id": "AAMkAGI2TGuLAAA=", "name": "Calendar", "canEdit": true, "isDefaultCalendar": true}),
                Some(("AAMkAGI2TGuLAAA=", "Calendar", true, true)),
            ),
            (
                json!({"id": "AAMkAGI2TGuLBBB=", "name": "Geburtstage", "canEdit": false, "isDefaultCalendar": false}),
                Some(("AAMkAGI2TGuLBBB=", "Geburtstage", false, false)),
            ),
            (
                json!({"id": "AAMkC=", "name": ""}),
                Some(("AAMkC=", "AAMkC=", false, false)),
            ),
            (json!({"name": "no id", "canEdit": true}), None),
            (json!({"id": "", "name": "empty id"}), None),
        ];
        for (entry, want) in table {
            let got = entries(api, &json!({"value": [entry.clone()]}));
            assert_eq!(rows(&got), want.into_iter().collect::<Vec<_>>(), "{entry}");
        }
        let one = entries(api, &json!({"value": [{"id": "AAMkAGI2TGuLAAA="}]}));
        assert_eq!(
            one[0].url,
            "https://graph.microsoft.com/v1.0/me/calendars/AAMkAGI2TGuLAAA%3D"
        );
    }
}
