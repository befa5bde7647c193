//! The other calendars of a connected account: what [`super::registry::ProviderModule::calendars`]
//! answers, so that a user can connect another calendar of the same account with the
//! credentials a link already holds (`GET /v1/links/{link_id}/calendars`, then
//! `POST /v1/groups/{group_id}/links` with `from_link`), without a second consent or password.

use serde::Serialize;

/// Most calendars read from one account's paged list (Google, Graph); a listing stops with
/// an error past it, so that an account answering endless pages cannot hold the request.
pub const MAX_CALENDARS: usize = 1000;

/// One calendar of the account behind a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountCalendar {
    /// What `POST …/links` takes as `calendar` with `from_link`: the provider's calendar id
    /// (a Google calendarList id, a Graph calendar id) or, for CalDAV, the collection's URL.
    pub id: String,
    /// The name the account shows (Google `summaryOverride` else `summary`, Graph `name`,
    /// CalDAV `DAV:displayname`; the id when it has none).
    pub name: String,
    /// The account's main calendar (Google `primary`, Graph `isDefaultCalendar`; CalDAV has
    /// none).
    pub main: bool,
    /// Whether the account may change its events (Google `accessRole` `owner` or `writer`,
    /// Graph `canEdit`; CalDAV is not asked and says `true`). A read-only calendar still
    /// syncs into the group; what calsync writes back to it is refused.
    pub writable: bool,
    /// The link URL of this calendar (kept by calsync, not shown).
    #[serde(skip)]
    pub url: String,
}

impl AccountCalendar {
    /// The calendar whose `id` is `want`, or else whose name is `want` (ids first: two
    /// calendars may share a name).
    pub fn find<'a>(all: &'a [AccountCalendar], want: &str) -> Option<&'a AccountCalendar> {
        all.iter()
            .find(|c| c.id == want)
            .or_else(|| all.iter().find(|c| c.name == want))
    }
}

/// A calendar as the providers' table tests compare it: (id, name, main, writable).
#[cfg(test)]
pub(crate) type Row<'a> = (&'a str, &'a str, bool, bool);

/// The [`Row`]s of `cals`.
#[cfg(test)]
pub(crate) fn rows(cals: &[AccountCalendar]) -> Vec<Row<'_>> {
    cals.iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.main, c.writable))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(id: &str, name: &str) -> AccountCalendar {
        AccountCalendar {
            id: id.into(),
            name: name.into(),
            main: false,
            writable: true,
            url: format!("u/{id}"),
        }
    }

    #[test]
    fn a_calendar_is_found_by_id_before_name() {
        let all = [cal("a", "Work"), cal("Work", "Home"), cal("c", "Work")];
        let table: &[(&str, Option<&str>)] = &[
            ("a", Some("a")),
            ("Work", Some("Work")), // the id wins over the first "Work" name
            ("Home", Some("Work")),
            ("c", Some("c")),
            ("nope", None),
            ("", None),
        ];
        for (want, found) in table {
            assert_eq!(
                AccountCalendar::find(&all, want).map(|c| c.id.as_str()),
                *found,
                "{want}"
            );
        }
    }
}
