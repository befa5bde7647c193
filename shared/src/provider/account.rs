//! The other calendars of a connected account: what [`super::registry::ProviderModule::calendars`]
//! answers, so that a user can connect another calendar of the same account with the
//! credentials a link already holds (`GET /v1/links/{link_id}/calendars`, then
//! `POST /v1/groups/{group_id}/links` with `from_link`), without a second consent or password.

use serde::Serialize;

use crate::model::{Link, ProviderKind};

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

/// Whether two link URLs name one calendar: equal once the scheme's and host's case, a
/// default port, percent-encoding (`%40` and `@`), a trailing `/`, userinfo and a fragment
/// are set aside (RFC 3986 §6.2.2–6.2.3 normalisation; a CalDAV server may answer an href
/// in either form, and a Google calendar URL percent-encodes its id). The query stays: it
/// can select another calendar. URLs that do not parse compare as written.
pub fn same_calendar_url(a: &str, b: &str) -> bool {
    calendar_url_key(a) == calendar_url_key(b)
}

/// The form of `u` that [`same_calendar_url`] compares.
fn calendar_url_key(u: &str) -> String {
    let Ok(p) = url::Url::parse(u.trim()) else {
        return u.trim().trim_end_matches('/').to_string();
    };
    let path = percent_encoding::percent_decode_str(p.path()).decode_utf8_lossy();
    format!(
        "{}://{}:{}{}?{}",
        p.scheme(),
        p.host_str().unwrap_or_default(),
        p.port_or_known_default().unwrap_or_default(),
        path.trim_end_matches('/'),
        p.query().unwrap_or_default()
    )
}

/// SHA-256 (hex) of the address `u` as [`same_calendar_url`] compares it: what a link whose
/// `url` is kept redacted stores ([`Link::url_digest`]). `webcal://` is read as `https://`
/// (the scheme feeds are fetched with).
pub fn url_digest(u: &str) -> String {
    use sha2::Digest;
    let u = u.trim();
    let u = match u.get(..9) {
        Some(s) if s.eq_ignore_ascii_case("webcal://") => format!("https://{}", &u[9..]),
        _ => u.to_string(),
    };
    hex::encode(sha2::Sha256::digest(calendar_url_key(&u).as_bytes()))
}

/// The link among `links` that already connects the `provider` calendar at `url`, if any
/// ([`same_calendar_url`]; a link that keeps a redacted address is compared by its
/// [`Link::url_digest`], and one without a digest never matches).
pub fn linked_already<'a>(
    links: &'a [Link],
    provider: ProviderKind,
    url: &str,
) -> Option<&'a Link> {
    links.iter().find(|l| {
        l.provider == provider
            && match &l.url_digest {
                Some(d) => *d == url_digest(url),
                None => same_calendar_url(&l.url, url) && !l.url.ends_with("/…"),
            }
    })
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

    #[test]
    fn link_urls_name_one_calendar_after_normalisation() {
        let g = "https://www.googleapis.com/calendar/v3/calendars";
        let table: &[(&str, &str, bool)] = &[
            (
                "https://dav.example.com/cal/ann/home/",
                "https://dav.example.com/cal/ann/home/",
                true,
            ),
            (
                "https://dav.example.com/cal/ann/home/",
                "https://dav.example.com/cal/ann/home",
                true,
            ),
            (
                "https://DAV.Example.com/cal/ann/home/",
                "https://dav.example.com/cal/ann/home/",
                true,
            ),
            (
                "HTTPS://dav.example.com/cal/ann/home/",
                "https://dav.example.com/cal/ann/home/",
                true,
            ),
            (
                "https://dav.example.com:443/cal/ann/home/",
                "https://dav.example.com/cal/ann/home/",
                true,
            ),
            (
                "https://ann:pw@dav.example.com/cal/ann/home/",
                "https://dav.example.com/cal/ann/home/",
                true,
            ),
            (
                "https://dav.example.com/cal/ann/home/#x",
                "https://dav.example.com/cal/ann/home/",
                true,
            ),
            (
                "https://dav.example.com/cal/ann%40example.com/home/",
                "https://dav.example.com/cal/ann@example.com/home/",
                true,
            ),
            // Another calendar, server, port, scheme or query.
            (
                "https://dav.example.com/cal/ann/work/",
                "https://dav.example.com/cal/ann/home/",
                false,
            ),
            (
                "https://dav.example.com/cal/ann/home/",
                "https://dav2.example.com/cal/ann/home/",
                false,
            ),
            (
                "https://dav.example.com:8443/cal/ann/home/",
                "https://dav.example.com/cal/ann/home/",
                false,
            ),
            (
                "http://dav.example.com/cal/ann/home/",
                "https://dav.example.com/cal/ann/home/",
                false,
            ),
            (
                "https://dav.example.com/cal?c=1",
                "https://dav.example.com/cal?c=2",
                false,
            ),
            (
                "https://dav.example.com/cal/Home/",
                "https://dav.example.com/cal/home/",
                false,
            ),
            // Google: the id percent-encoded or not.
            (
                &format!("{g}/ann%40example.com"),
                &format!("{g}/ann@example.com"),
                true,
            ),
            (
                &format!("{g}/ann%40example.com"),
                &format!("{g}/ben%40example.com"),
                false,
            ),
            // Not URLs: as written, less a trailing slash.
            ("not a url/", "not a url", true),
            ("not a url", "another", false),
        ];
        for (a, b, same) in table {
            assert_eq!(same_calendar_url(a, b), *same, "{a} vs {b}");
            assert_eq!(same_calendar_url(b, a), *same, "{b} vs {a}");
        }
        let mut home = Link::new(
            "l1",
            "g",
            1,
            ProviderKind::Caldav,
            "https://dav.example.com/cal/ann/home/",
        );
        home.display_name = "Home".into();
        let links = [
            Link::new(
                "l0",
                "g",
                1,
                ProviderKind::Google,
                "https://dav.example.com/cal/ann/home/",
            ),
            home,
        ];
        let found = |p, u| linked_already(&links, p, u).map(|l| l.link_id.as_str());
        assert_eq!(
            found(ProviderKind::Caldav, "https://dav.example.com/cal/ann/home"),
            Some("l1")
        );
        assert_eq!(
            found(ProviderKind::Google, "https://dav.example.com/cal/ann/home"),
            Some("l0")
        );
        assert_eq!(
            found(ProviderKind::Caldav, "https://dav.example.com/cal/ann/work"),
            None
        );
        // A feed's link keeps a redacted address and the digest of the real one.
        let secret = "https://cal.example.com/ical/ann%40example.com/private-k3y/basic.ics";
        let mut feed = Link::new("f1", "g", 1, ProviderKind::Ics, "https://cal.example.com/…");
        feed.url_digest = Some(url_digest(secret));
        let legacy = Link::new("f0", "g", 1, ProviderKind::Ics, "https://cal.example.com/…");
        let feeds = [legacy, feed];
        let found = |u| linked_already(&feeds, ProviderKind::Ics, u).map(|l| l.link_id.as_str());
        assert_eq!(found(secret), Some("f1"));
        assert_eq!(
            found("webcal://CAL.example.com/ical/ann@example.com/private-k3y/basic.ics"),
            Some("f1")
        );
        assert_eq!(
            found("https://cal.example.com/ical/ann%40example.com/private-other/basic.ics"),
            None,
            "another key is another feed"
        );
        assert_eq!(
            found("https://cal.example.com/…"),
            None,
            "a redacted address matches nothing"
        );
        assert!(!url_digest(secret).contains("k3y"));
    }
}
