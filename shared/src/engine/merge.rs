//! Three-way, field-level merge of two versions of an event series against the version they
//! last agreed on (the base). A field is one property of one component (master or a
//! RECURRENCE-ID override); see [`crate::ical`].

use std::collections::BTreeSet;

use crate::ical::{EventSeries, Fields, MASTER, VOLATILE};
use crate::model::ConflictPolicy;

/// Result of [`merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged series (for [`ConflictPolicy::Manual`] with conflicts: the hub unchanged).
    pub series: EventSeries,
    /// Fields changed on both sides to different values, as `component/PROPERTY`.
    pub conflicts: Vec<String>,
}

fn field<'a>(s: Option<&'a EventSeries>, comp: &str, name: &str) -> Option<&'a Vec<String>> {
    s.and_then(|s| s.components.get(comp))
        .and_then(|f| f.get(name))
        .filter(|v| !v.is_empty())
}

fn last_modified(s: &EventSeries) -> Option<String> {
    s.master()
        .and_then(|f| f.get("LAST-MODIFIED").or_else(|| f.get("DTSTAMP")))
        .and_then(|v| v.first())
        .and_then(|l| l.rsplit(':').next())
        .map(|v| v.trim().to_string())
}

/// True when `s` says it was last changed (LAST-MODIFIED, then DTSTAMP, in UTC) before
/// `ms` (epoch milliseconds); false when it does not say, or says otherwise.
pub fn changed_before(s: &EventSeries, ms: i64) -> bool {
    let Some(at) = chrono::DateTime::from_timestamp_millis(ms) else {
        return false;
    };
    // Both in RFC 5545's UTC form (§3.3.5), which sorts as text.
    let at = at.format("%Y%m%dT%H%M%SZ").to_string();
    last_modified(s).is_some_and(|lm| lm.ends_with('Z') && lm.len() == at.len() && lm < at)
}

/// True when the remote version is the newer one by LAST-MODIFIED (then DTSTAMP); when either
/// side has no timestamp the remote counts as newer, as it was observed last.
pub fn remote_is_newer(hub: &EventSeries, remote: &EventSeries) -> bool {
    match (last_modified(hub), last_modified(remote)) {
        (Some(h), Some(r)) => r >= h,
        _ => true,
    }
}

/// Merge `hub` and `remote` against `base` (None: no agreed version, every difference is a
/// conflict) under `policy`.
pub fn merge(
    base: Option<&EventSeries>,
    hub: &EventSeries,
    remote: &EventSeries,
    policy: ConflictPolicy,
) -> Merged {
    let remote_wins_conflicts = match policy {
        ConflictPolicy::Merge => remote_is_newer(hub, remote),
        ConflictPolicy::PreferHub | ConflictPolicy::Manual => false,
        ConflictPolicy::PreferRemote => true,
    };
    let comps: BTreeSet<&String> = hub
        .components
        .keys()
        .chain(remote.components.keys())
        .collect();
    let mut out = EventSeries {
        uid: hub.uid.clone(),
        ..Default::default()
    };
    let mut conflicts = Vec::new();
    let mut remote_changed_any = false;
    for comp in &comps {
        let names: BTreeSet<&String> = [hub, remote]
            .iter()
            .filter_map(|s| s.components.get(*comp))
            .flat_map(|f| f.keys())
            .collect();
        let mut fields = Fields::new();
        for name in names {
            if VOLATILE.contains(&name.as_str()) {
                continue;
            }
            let b = field(base, comp, name);
            let h = field(Some(hub), comp, name);
            let r = field(Some(remote), comp, name);
            let chosen = if h == r {
                h
            } else if base.is_some() && h == b {
                remote_changed_any = true;
                r
            } else if base.is_some() && r == b {
                h
            } else {
                let label = if comp.as_str() == MASTER {
                    "master"
                } else {
                    comp.as_str()
                };
                conflicts.push(format!("{label}/{name}"));
                if remote_wins_conflicts {
                    remote_changed_any = true;
                    r
                } else {
                    h
                }
            };
            if let Some(v) = chosen {
                fields.insert(name.clone(), v.clone());
            }
        }
        if !fields.is_empty() {
            out.components.insert((*comp).clone(), fields);
        }
    }
    // Timestamps follow the side whose changes were taken.
    let stamp_source = if remote_changed_any { remote } else { hub };
    for (comp, fields) in out.components.iter_mut() {
        for v in VOLATILE {
            if let Some(val) =
                field(Some(stamp_source), comp, v).or_else(|| field(Some(hub), comp, v))
            {
                fields.insert((*v).to_string(), val.clone());
            }
        }
    }
    let mut tz = hub.timezones.clone();
    tz.extend(remote.timezones.clone());
    let referenced = out.referenced_tzids();
    out.timezones = tz
        .into_iter()
        .filter(|(k, _)| referenced.contains(k))
        .collect();
    if policy == ConflictPolicy::Manual && !conflicts.is_empty() {
        return Merged {
            series: hub.clone(),
            conflicts,
        };
    }
    Merged {
        series: out,
        conflicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(summary: &str, location: &str, lm: &str) -> EventSeries {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:m1\r\nDTSTART:20240101T100000Z\r\nDTEND:20240101T110000Z\r\nSUMMARY:{summary}\r\nLOCATION:{location}\r\nLAST-MODIFIED:{lm}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        EventSeries::parse_single("t", &text).unwrap()
    }

    /// When a version says it last changed, against a moment in epoch milliseconds.
    #[test]
    fn changed_before_reads_last_modified_then_dtstamp_in_utc() {
        let at = chrono::DateTime::parse_from_rfc3339("2027-01-03T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        let text = |props: &str| {
            format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:m1\r\nDTSTART:20240101T100000Z\r\n{props}SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        };
        let rows = [
            (
                "LAST-MODIFIED before",
                "LAST-MODIFIED:20270102T235959Z\r\n",
                true,
            ),
            (
                "LAST-MODIFIED at the moment",
                "LAST-MODIFIED:20270103T000000Z\r\n",
                false,
            ),
            (
                "LAST-MODIFIED after",
                "LAST-MODIFIED:20270104T000000Z\r\n",
                false,
            ),
            (
                "DTSTAMP before, no LAST-MODIFIED",
                "DTSTAMP:20270101T000000Z\r\n",
                true,
            ),
            (
                "local time: not comparable",
                "LAST-MODIFIED:20270101T000000\r\n",
                false,
            ),
            ("nothing said", "", false),
        ];
        for (what, props, want) in rows {
            let s = EventSeries::parse_single("t", &text(props)).unwrap();
            assert_eq!(changed_before(&s, at), want, "{what}");
        }
    }

    #[test]
    fn different_fields_merge_without_conflict() {
        let base = ev("A", "Room 1", "20240101T000000Z");
        let hub = ev("B", "Room 1", "20240102T000000Z");
        let remote = ev("A", "Room 2", "20240103T000000Z");
        for p in [
            ConflictPolicy::Merge,
            ConflictPolicy::PreferHub,
            ConflictPolicy::PreferRemote,
            ConflictPolicy::Manual,
        ] {
            let m = merge(Some(&base), &hub, &remote, p);
            assert!(m.conflicts.is_empty());
            assert_eq!(m.series.summary(), "B");
            assert_eq!(m.series.text("LOCATION").as_deref(), Some("Room 2"));
        }
    }

    #[test]
    fn same_field_follows_policy() {
        let base = ev("A", "R", "20240101T000000Z");
        let hub = ev("Hub", "R", "20240103T000000Z");
        let remote = ev("Remote", "R", "20240102T000000Z");
        let m = merge(Some(&base), &hub, &remote, ConflictPolicy::Merge);
        assert_eq!(m.conflicts, vec!["master/SUMMARY".to_string()]);
        assert_eq!(m.series.summary(), "Hub", "hub edit is newer");
        let newer_remote = ev("Remote", "R", "20240104T000000Z");
        assert_eq!(
            merge(Some(&base), &hub, &newer_remote, ConflictPolicy::Merge)
                .series
                .summary(),
            "Remote"
        );
        assert_eq!(
            merge(Some(&base), &hub, &remote, ConflictPolicy::PreferHub)
                .series
                .summary(),
            "Hub"
        );
        assert_eq!(
            merge(Some(&base), &hub, &remote, ConflictPolicy::PreferRemote)
                .series
                .summary(),
            "Remote"
        );
        let manual = merge(Some(&base), &hub, &remote, ConflictPolicy::Manual);
        assert_eq!(manual.series, hub);
        assert_eq!(manual.conflicts.len(), 1);
    }

    #[test]
    fn equal_edits_are_not_conflicts() {
        let base = ev("A", "R", "20240101T000000Z");
        let hub = ev("Same", "R", "20240102T000000Z");
        let remote = ev("Same", "R", "20240103T000000Z");
        let m = merge(Some(&base), &hub, &remote, ConflictPolicy::Manual);
        assert!(m.conflicts.is_empty());
        assert_eq!(m.series.summary(), "Same");
    }
}
