//! The API's decisions as pure functions (I/O stays in the routes): what an upsert or a
//! delete does to a hub event under its precondition, and what resolving a manual conflict
//! does to the hub and the mapping. Tested with tables below.

use axum::http::HeaderMap;

use crate::model::EventStatus;

/// The entity tag of hub version `v` (RFC 9110 §8.8.3): `"v<version>"`.
pub fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

/// A request's precondition on a hub event (RFC 9110 §13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match` / `If-None-Match`.
    None,
    /// `If-Match: "v<n>"` (`Some(n)`) or `If-Match: *` (`None`: any live version).
    IfMatch(Option<i64>),
    /// `If-None-Match: *`: only if the event does not exist (or is deleted).
    IfNoneMatch,
}

/// The precondition of `headers`. An `If-Match` value that is no etag of ours can match
/// nothing (`IfMatch(Some(-1))`), so it answers 412 as RFC 9110 §13.1.1 wants.
pub fn precondition(headers: &HeaderMap) -> Precondition {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = get("if-match") {
        if v == "*" {
            return Precondition::IfMatch(None);
        }
        let first = v.split(',').next().unwrap_or("").trim();
        let first = first.strip_prefix("W/").unwrap_or(first);
        let n = first
            .strip_prefix("\"v")
            .and_then(|r| r.strip_suffix('"'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1);
        return Precondition::IfMatch(Some(n));
    }
    if get("if-none-match") == Some("*") {
        return Precondition::IfNoneMatch;
    }
    Precondition::None
}

/// The stored state of a hub event, as far as a write decides on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Its version.
    pub version: i64,
    /// A tombstone.
    pub deleted: bool,
    /// The new body has the same content (volatile properties aside).
    pub same_content: bool,
}

/// What an upsert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// Write version `0` as a new (or revived) event: 201.
    Create(i64),
    /// Write version `0`: 200.
    Update(i64),
    /// Same content as the live version: nothing written, nothing pushed (200).
    Unchanged,
    /// 412 with this reason.
    Failed(&'static str),
}

/// Decide an upsert of an event whose stored state is `cur` under `pre`.
pub fn upsert(cur: Option<Current>, pre: Precondition) -> Upsert {
    let live = cur.filter(|c| !c.deleted);
    match (live, pre) {
        (None, Precondition::IfMatch(_)) => Upsert::Failed("the event does not exist"),
        (None, _) => Upsert::Create(cur.map_or(1, |c| c.version + 1)),
        (Some(_), Precondition::IfNoneMatch) => Upsert::Failed("the event exists"),
        (Some(c), Precondition::IfMatch(Some(v))) if v != c.version => {
            Upsert::Failed("the event changed since that version")
        }
        (Some(c), _) if c.same_content => Upsert::Unchanged,
        (Some(c), _) => Upsert::Update(c.version + 1),
    }
}

/// What a delete does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delete {
    /// Write a tombstone at version `0`: 204.
    Tombstone(i64),
    /// Already deleted: 204, nothing written.
    Gone,
    /// Never existed: 404.
    NotFound,
    /// 412 with this reason.
    Failed(&'static str),
}

/// Decide a delete of an event whose stored state is `cur` under `pre`.
pub fn delete(cur: Option<Current>, pre: Precondition) -> Delete {
    match (cur, pre) {
        (None, _) => Delete::NotFound,
        (Some(c), Precondition::IfMatch(_)) if c.deleted => {
            Delete::Failed("the event does not exist")
        }
        (Some(c), _) if c.deleted => Delete::Gone,
        (Some(c), Precondition::IfMatch(Some(v))) if v != c.version => {
            Delete::Failed("the event changed since that version")
        }
        (Some(c), _) => Delete::Tombstone(c.version + 1),
    }
}

/// The outcome of resolving a manual conflict on one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// New hub version to write with the chosen content (`None`: the hub keeps its version).
    pub hub_version: Option<i64>,
    /// The link's mapping status afterwards.
    pub status: EventStatus,
    /// The mapping's `synced_version` afterwards (below the hub version: push writes it).
    pub synced_version: i64,
}

/// Resolve a conflict between hub version `hub_version` and the remote version kept aside
/// on a link: `chosen_is_hub` / `chosen_is_remote` say whether the chosen content equals
/// either side. The remote version becomes the mapping's merge base either way.
pub fn resolve(hub_version: i64, chosen_is_hub: bool, chosen_is_remote: bool) -> Resolution {
    let version = if chosen_is_hub {
        hub_version
    } else {
        hub_version + 1
    };
    Resolution {
        hub_version: (!chosen_is_hub).then_some(version),
        status: if chosen_is_remote {
            EventStatus::Synced
        } else {
            EventStatus::Pending
        },
        synced_version: if chosen_is_remote {
            version
        } else {
            version - 1
        },
    }
}

/// The sync status of hub event version `version` on one member, as the API reports it:
/// `synced`, `pending`, `error`, `conflict`, or `read_only` for a feed the hub does not
/// write to. `mapping` is the member's (status, synced_version) for the event, if any.
pub fn member_status(
    read_only: bool,
    mapping: Option<(EventStatus, i64)>,
    version: i64,
    deleted: bool,
) -> &'static str {
    match mapping {
        Some((EventStatus::Synced, synced)) if synced < version && read_only => "read_only",
        Some((EventStatus::Synced, synced)) if synced < version => "pending",
        Some((EventStatus::Synced, _)) => "synced",
        Some((EventStatus::Pending, _)) => "pending",
        Some((EventStatus::Error, _)) => "error",
        Some((EventStatus::Conflict, _)) => "conflict",
        None if read_only => "read_only",
        None if deleted => "synced",
        None => "pending",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(version: i64, deleted: bool, same: bool) -> Option<Current> {
        Some(Current {
            version,
            deleted,
            same_content: same,
        })
    }

    #[test]
    fn upsert_table() {
        use Precondition as P;
        let cases: &[(Option<Current>, Precondition, Upsert)] = &[
            (None, P::None, Upsert::Create(1)),
            (None, P::IfNoneMatch, Upsert::Create(1)),
            (
                None,
                P::IfMatch(None),
                Upsert::Failed("the event does not exist"),
            ),
            (cur(4, true, false), P::None, Upsert::Create(5)),
            (cur(4, true, false), P::IfNoneMatch, Upsert::Create(5)),
            (cur(4, false, false), P::None, Upsert::Update(5)),
            (cur(4, false, true), P::None, Upsert::Unchanged),
            (cur(4, false, false), P::IfMatch(Some(4)), Upsert::Update(5)),
            (cur(4, false, false), P::IfMatch(None), Upsert::Update(5)),
            (
                cur(4, false, false),
                P::IfMatch(Some(3)),
                Upsert::Failed("the event changed since that version"),
            ),
            (
                cur(4, false, true),
                P::IfMatch(Some(-1)),
                Upsert::Failed("the event changed since that version"),
            ),
            (
                cur(4, false, true),
                P::IfNoneMatch,
                Upsert::Failed("the event exists"),
            ),
        ];
        for (c, p, want) in cases {
            assert_eq!(upsert(*c, *p), *want, "{c:?} {p:?}");
        }
    }

    #[test]
    fn delete_table() {
        use Precondition as P;
        let cases: &[(Option<Current>, Precondition, Delete)] = &[
            (None, P::None, Delete::NotFound),
            (cur(2, true, false), P::None, Delete::Gone),
            (
                cur(2, true, false),
                P::IfMatch(Some(2)),
                Delete::Failed("the event does not exist"),
            ),
            (cur(2, false, false), P::None, Delete::Tombstone(3)),
            (
                cur(2, false, false),
                P::IfMatch(Some(2)),
                Delete::Tombstone(3),
            ),
            (
                cur(2, false, false),
                P::IfMatch(Some(1)),
                Delete::Failed("the event changed since that version"),
            ),
        ];
        for (c, p, want) in cases {
            assert_eq!(delete(*c, *p), *want, "{c:?} {p:?}");
        }
    }

    #[test]
    fn resolution_table() {
        // (hub version, chosen is hub, chosen is remote) -> (new hub version, status, synced)
        let cases = [
            ((7, true, false), (None, EventStatus::Pending, 6)),
            ((7, false, true), (Some(8), EventStatus::Synced, 8)),
            ((7, false, false), (Some(8), EventStatus::Pending, 7)),
            ((7, true, true), (None, EventStatus::Synced, 7)),
        ];
        for ((v, h, r), (hv, st, sv)) in cases {
            let got = resolve(v, h, r);
            assert_eq!(
                (got.hub_version, got.status, got.synced_version),
                (hv, st, sv),
                "{v} {h} {r}"
            );
        }
    }

    #[test]
    fn member_status_table() {
        use EventStatus as S;
        let cases = [
            ((false, Some((S::Synced, 3)), 3, false), "synced"),
            ((false, Some((S::Synced, 2)), 3, false), "pending"),
            ((true, Some((S::Synced, 2)), 3, false), "read_only"),
            ((true, Some((S::Synced, 3)), 3, false), "synced"),
            ((false, Some((S::Error, 3)), 3, false), "error"),
            ((false, Some((S::Conflict, 2)), 3, false), "conflict"),
            ((false, Some((S::Pending, 2)), 3, false), "pending"),
            ((false, None, 3, false), "pending"),
            ((false, None, 3, true), "synced"),
            ((true, None, 3, false), "read_only"),
        ];
        for ((ro, m, v, d), want) in cases {
            assert_eq!(member_status(ro, m, v, d), want, "{ro} {m:?} {v} {d}");
        }
    }

    #[test]
    fn preconditions_from_headers() {
        let h = |k: &str, v: &str| {
            let mut m = HeaderMap::new();
            m.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
            m
        };
        assert_eq!(precondition(&HeaderMap::new()), Precondition::None);
        assert_eq!(
            precondition(&h("if-match", "\"v12\"")),
            Precondition::IfMatch(Some(12))
        );
        assert_eq!(
            precondition(&h("if-match", "W/\"v3\", \"v4\"")),
            Precondition::IfMatch(Some(3))
        );
        assert_eq!(
            precondition(&h("if-match", "*")),
            Precondition::IfMatch(None)
        );
        assert_eq!(
            precondition(&h("if-match", "\"abc\"")),
            Precondition::IfMatch(Some(-1))
        );
        assert_eq!(
            precondition(&h("if-none-match", "*")),
            Precondition::IfNoneMatch
        );
        assert_eq!(etag(5), "\"v5\"");
    }
}
