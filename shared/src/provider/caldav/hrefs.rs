//! Where a CalDAV client goes: the deterministic file name of an event in a collection, and
//! which hrefs a server returns may be followed (within the calendar's origin, iCloud's
//! partitions excepted).

use reqwest::Url;
use sha2::Digest;

use crate::provider::ProviderError;

/// The file name we give the event `uid` in a collection: the UID itself when it is made of
/// URL-safe characters (so other clients see a familiar name), else its SHA-256. The same UID
/// always gets the same name, which makes creates idempotent (invariant 2).
pub fn deterministic_name(uid: &str) -> String {
    let safe = !uid.is_empty()
        && uid.len() <= 200
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if safe {
        format!("{uid}.ics")
    } else {
        format!(
            "{}.ics",
            &hex::encode(sha2::Sha256::digest(uid.as_bytes()))[..40]
        )
    }
}

/// May a CalDAV client for `base` follow an href to `target`? Only within `base`'s origin
/// (scheme, host, port), except that an iCloud account (https, a host under `icloud.com`) may
/// move to its partition hosts (`pNN-caldav.icloud.com`, also https). Untrusted hrefs can
/// thus not send our credentials, or our requests, anywhere else.
pub fn may_follow(base: &Url, target: &Url) -> bool {
    if base.origin() == target.origin() {
        return true;
    }
    let icloud = |u: &Url| {
        u.scheme() == "https"
            && u.port().is_none()
            && u.host_str()
                .is_some_and(|h| h == "icloud.com" || h.ends_with(".icloud.com"))
    };
    icloud(base) && icloud(target)
}

pub(super) fn confined(base: &Url, target: Url) -> Result<Url, ProviderError> {
    if may_follow(base, &target) {
        Ok(target)
    } else {
        Err(ProviderError::Forbidden {
            url: crate::provider::redacted(base.as_str()),
            detail: format!(
                "the server pointed to {}, outside the calendar's origin",
                crate::provider::redacted(target.as_str())
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_stay_within_the_calendar_origin() {
        let u = |s: &str| Url::parse(s).unwrap();
        let cases = [
            (
                "http://127.0.0.1:5232/alice/cal/",
                "http://127.0.0.1:5232/alice/cal/x.ics",
                true,
            ),
            (
                "http://127.0.0.1:5232/alice/cal/",
                "http://127.0.0.1:5233/x.ics",
                false,
            ),
            (
                "http://127.0.0.1:5232/alice/cal/",
                "http://127.0.0.2:5232/x.ics",
                false,
            ),
            (
                "https://dav.example.com/c/",
                "http://dav.example.com/c/x.ics",
                false,
            ),
            (
                "https://dav.example.com/c/",
                "https://evil.example.com/c/x.ics",
                false,
            ),
            (
                "https://caldav.icloud.com/",
                "https://p42-caldav.icloud.com/123/calendars/",
                true,
            ),
            (
                "https://p42-caldav.icloud.com/1/",
                "https://p07-caldav.icloud.com/1/x.ics",
                true,
            ),
            (
                "https://caldav.icloud.com/",
                "http://p42-caldav.icloud.com/",
                false,
            ),
            (
                "https://caldav.icloud.com/",
                "https://icloud.com.evil.example/",
                false,
            ),
            (
                "https://dav.example.com/",
                "https://p42-caldav.icloud.com/",
                false,
            ),
        ];
        for (base, target, want) in cases {
            assert_eq!(may_follow(&u(base), &u(target)), want, "{base} -> {target}");
        }
    }

    #[test]
    fn names_are_deterministic_and_safe() {
        assert_eq!(deterministic_name("abc-1.x"), "abc-1.x.ics");
        let n = deterministic_name("weird uid/with@chars");
        assert_eq!(n, deterministic_name("weird uid/with@chars"));
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
        assert_ne!(n, deterministic_name("weird uid/with@chars2"));
    }
}
