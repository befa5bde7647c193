//! Series of the Graph emulator: occurrence ids, cancelled occurrences, generated
//! occurrences and the instances of a master in a window.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::recurrence::{self, graph_text, instant, zone};
use super::{Inner, Stored};

/// Where an id points.
#[derive(Debug, Clone)]
pub(crate) enum Loc {
    /// A stored item (single instance, master, exception).
    Item { cal: String, id: String },
    /// A generated occurrence of a master.
    Occurrence {
        cal: String,
        master: String,
        start: DateTime<Utc>,
    },
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The id of `master`'s occurrence originally starting at `t` (opaque to clients).
pub(crate) fn occurrence_id(master: &str, t: DateTime<Utc>) -> String {
    format!(
        "AAMkOCC{}",
        b64().encode(format!("{master}|{}", t.format("%Y%m%dT%H%M%SZ")))
    )
}

fn parse_occurrence_id(id: &str) -> Option<(String, DateTime<Utc>)> {
    let raw = b64().decode(id.strip_prefix("AAMkOCC")?).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (m, t) = text.split_once('|')?;
    let t = chrono::NaiveDateTime::parse_from_str(t.strip_suffix('Z')?, "%Y%m%dT%H%M%S").ok()?;
    Some((m.to_string(), t.and_utc()))
}

/// Find `id`: a stored live item, or an occurrence its master generates (and that is not
/// cancelled).
pub(crate) fn locate(s: &Inner, id: &str) -> Option<Loc> {
    for (cal, c) in &s.calendars {
        if c.items.get(id).is_some_and(|i| !i.deleted) {
            return Some(Loc::Item {
                cal: cal.clone(),
                id: id.into(),
            });
        }
    }
    let (master, start) = parse_occurrence_id(id)?;
    for (cal, c) in &s.calendars {
        let Some(m) = c.items.get(&master).filter(|i| !i.deleted) else {
            continue;
        };
        let generates = recurrence::occurrence_starts(
            &m.resource,
            start - Duration::seconds(1),
            start + Duration::seconds(1),
        )
        .contains(&start);
        if generates && !cancelled(&m.resource, start) {
            return Some(Loc::Occurrence {
                cal: cal.clone(),
                master,
                start,
            });
        }
    }
    None
}

/// `cancelledOccurrences` entry of the occurrence at `t`: `OID.<masterId>.<yyyy-MM-dd>`.
pub(crate) fn cancel_key(master: &Value, t: DateTime<Utc>) -> String {
    let tz =
        zone(master["originalStartTimeZone"].as_str().unwrap_or("UTC")).unwrap_or(chrono_tz::UTC);
    format!(
        "OID.{}.{}",
        master["id"].as_str().unwrap_or(""),
        t.with_timezone(&tz).format("%Y-%m-%d")
    )
}

pub(crate) fn cancelled(master: &Value, t: DateTime<Utc>) -> bool {
    let key = cancel_key(master, t);
    master["cancelledOccurrences"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(&key)))
}

/// The generated occurrence of `master` at `t` as a full resource (master's properties).
pub(crate) fn occurrence_of(master: &Value, t: DateTime<Utc>) -> Value {
    let tzname = master["originalStartTimeZone"].as_str().unwrap_or("UTC");
    let tz = zone(tzname).unwrap_or(chrono_tz::UTC);
    let dur = duration(master);
    let mut o = master.clone();
    let obj = o.as_object_mut().expect("object");
    for k in ["recurrence", "cancelledOccurrences", "transactionId"] {
        obj.remove(k);
    }
    let mid = master["id"].as_str().unwrap_or("");
    obj.insert("id".into(), json!(occurrence_id(mid, t)));
    obj.insert("type".into(), json!("occurrence"));
    obj.insert("seriesMasterId".into(), json!(mid));
    obj.insert(
        "originalStart".into(),
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    obj.insert(
        "start".into(),
        json!({"dateTime": graph_text(t.with_timezone(&tz).naive_local()), "timeZone": tzname}),
    );
    let end = t + dur;
    let endzone = master["originalEndTimeZone"].as_str().unwrap_or(tzname);
    let etz = zone(endzone).unwrap_or(tz);
    obj.insert(
        "end".into(),
        json!({"dateTime": graph_text(end.with_timezone(&etz).naive_local()), "timeZone": endzone}),
    );
    o
}

fn duration(ev: &Value) -> Duration {
    match (instant(&ev["start"]), instant(&ev["end"])) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::zero(),
    }
}

/// Every live occurrence and exception of `master` (in calendar `c`) overlapping
/// `[from, to)`, as full resources, by start.
pub(crate) fn instances_of(
    c: &super::Calendar,
    master: &Value,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Value> {
    let mid = master["id"].as_str().unwrap_or("");
    let dur = duration(master);
    let exceptions: Vec<&Stored> = c
        .items
        .values()
        .filter(|i| !i.deleted && i.resource["seriesMasterId"].as_str() == Some(mid))
        .collect();
    let mut out: Vec<Value> = recurrence::occurrence_starts(master, from - dur, to)
        .into_iter()
        .filter(|t| *t + dur > from || dur.is_zero())
        .filter(|t| !cancelled(master, *t))
        .filter(|t| {
            !exceptions
                .iter()
                .any(|e| e.resource["id"].as_str() == Some(&occurrence_id(mid, *t)))
        })
        .map(|t| occurrence_of(master, t))
        .collect();
    out.extend(
        exceptions
            .iter()
            .filter(|e| overlaps(&e.resource, from, to))
            .map(|e| e.resource.clone()),
    );
    out.sort_by_key(|v| instant(&v["start"]));
    out
}

/// Whether an item's `[start, end)` overlaps `[from, to)`.
pub(crate) fn overlaps(ev: &Value, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    match (instant(&ev["start"]), instant(&ev["end"])) {
        (Some(a), Some(b)) => a < to && (b > from || (a == b && a >= from)),
        _ => false,
    }
}
