//! Calendars and events of the Graph emulator (https://learn.microsoft.com/graph/api/resources/event,
//! provider-semantics §2.1, §2.4, §2.5).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::recurrence::{self, instant, local, zone};
use super::{bad_request, gerror, not_found, preferences, Inner, Shared, Stored, WriteRecord};

/// The mailbox owner (organizer of everything created here).
pub const OWNER: (&str, &str) = ("Megan Bowen", "meganb@contoso.onmicrosoft.com");

use super::series::cancel_key;
pub(crate) use super::series::{instances_of, locate, occurrence_of, overlaps, Loc};

pub(crate) use super::render::{quoted, render};

fn change_key(seq: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("CQAAABYAAAD{seq:08}"))
}

/// Store `resource` as item `id` of `cal` with a new changeKey, and notify subscribers.
pub(crate) fn store(s: &mut Inner, cal: &str, id: &str, mut resource: Value, change: &str) {
    s.seq += 1;
    let seq = s.seq;
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    resource["id"] = json!(id);
    resource["changeKey"] = json!(change_key(seq));
    resource["lastModifiedDateTime"] = json!(now);
    if resource.get("createdDateTime").is_none() {
        resource["createdDateTime"] = json!(now);
    }
    let c = s.calendars.get_mut(cal).expect("calendar exists");
    c.items.insert(
        id.into(),
        Stored {
            resource,
            seq,
            deleted: false,
        },
    );
    super::subscriptions::changed(s, cal, id, change);
}

fn tombstone(s: &mut Inner, cal: &str, id: &str) {
    s.seq += 1;
    let seq = s.seq;
    if let Some(i) = s.calendars.get_mut(cal).and_then(|c| c.items.get_mut(id)) {
        i.deleted = true;
        i.seq = seq;
    }
    super::subscriptions::changed(s, cal, id, "deleted");
}

/// Check the times of a written event: zones Graph knows, end not before start, all-day
/// events midnight to midnight.
fn validate_times(ev: &Value) -> Result<(), Response> {
    for k in ["start", "end"] {
        let v = &ev[k];
        let Some(z) = v["timeZone"].as_str() else {
            return Err(bad_request(
                "ErrorInvalidRequest",
                &format!("{k}.timeZone is required"),
            ));
        };
        if zone(z).is_none() {
            return Err(bad_request(
                "ErrorTimeZoneNotSupported",
                &format!("The time zone {z} is not supported."),
            ));
        }
        if v["dateTime"].as_str().and_then(local).is_none() {
            return Err(bad_request(
                "ErrorInvalidRequest",
                &format!("{k}.dateTime is not a date-time"),
            ));
        }
    }
    let (a, b) = (instant(&ev["start"]), instant(&ev["end"]));
    if b < a {
        return Err(bad_request(
            "ErrorInvalidRequest",
            "The end time must be after the start time.",
        ));
    }
    if ev["isAllDay"].as_bool().unwrap_or(false) {
        let midnight = |k: &str| {
            ev[k]["dateTime"]
                .as_str()
                .and_then(local)
                .is_some_and(|n| n.time() == chrono::NaiveTime::MIN)
        };
        let days = match (
            ev["start"]["dateTime"].as_str().and_then(local),
            ev["end"]["dateTime"].as_str().and_then(local),
        ) {
            (Some(x), Some(y)) => (y - x).num_days() >= 1,
            _ => false,
        };
        if !midnight("start") || !midnight("end") || !days {
            return Err(bad_request(
                "ErrorInvalidRequest",
                "An all-day event must start and end at midnight, at least one day apart.",
            ));
        }
    }
    if let Some(r) = ev.get("recurrence").filter(|r| !r.is_null()) {
        recurrence::validate(r).map_err(|m| bad_request("ErrorInvalidRequest", &m))?;
    }
    Ok(())
}

fn record(s: &mut Inner, method: &str, id: &str, body: &Value) {
    s.writes.push(WriteRecord {
        method: method.into(),
        id: id.into(),
        attendees: body
            .get("attendees")
            .is_some_and(|a| a.as_array().is_some_and(|a| !a.is_empty())),
    });
}

/// Merge `patch` into `target`: top-level properties replaced, `null` clears one,
/// `singleValueExtendedProperties` upserted by id.
fn apply_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else { return };
    for (k, v) in p {
        if k == "singleValueExtendedProperties" {
            let map = target[k].as_object().cloned().unwrap_or_default();
            let mut map: Map<String, Value> = map;
            for item in v.as_array().into_iter().flatten() {
                if let (Some(id), Some(val)) = (item["id"].as_str(), item.get("value")) {
                    map.insert(id.into(), val.clone());
                }
            }
            target[k] = Value::Object(map);
        } else if matches!(
            k.as_str(),
            "id" | "type" | "changeKey" | "seriesMasterId" | "@odata.etag"
        ) {
            continue;
        } else {
            target[k] = v.clone();
        }
    }
}

fn new_id() -> String {
    format!("AAMkAD{}", uuid::Uuid::new_v4().simple())
}

/// A new event from a create's `body`: Graph's defaults, then the body, then what Graph
/// sets itself (`type`, the original time zones, an `iCalUId` unless `ical_uid` gives one).
fn new_event(body: &Value, ical_uid: Option<&str>) -> Value {
    let mut ev = json!({
        "subject": "", "body": {"contentType": "text", "content": ""}, "categories": [],
        "showAs": "busy", "sensitivity": "normal", "importance": "normal", "isAllDay": false,
        "isCancelled": false, "isReminderOn": true, "reminderMinutesBeforeStart": 15,
        "attendees": [], "isOrganizer": true, "location": {"displayName": ""},
        "organizer": {"emailAddress": {"name": OWNER.0, "address": OWNER.1}},
    });
    apply_patch(&mut ev, body);
    ev["iCalUId"] = json!(ical_uid.map(str::to_string).unwrap_or_else(|| format!(
        "040000008200E00074C5B7101A82E008{}",
        uuid::Uuid::new_v4().simple()
    )));
    ev["originalStartTimeZone"] = body["start"]["timeZone"].clone();
    ev["originalEndTimeZone"] = body["end"]["timeZone"].clone();
    let recurring = ev.get("recurrence").is_some_and(|r| !r.is_null());
    ev["type"] = json!(if recurring {
        "seriesMaster"
    } else {
        "singleInstance"
    });
    if recurring {
        ev["cancelledOccurrences"] = json!([]);
    } else {
        ev["recurrence"] = Value::Null;
    }
    ev
}

/// Put an event that arrived from outside Graph's API into calendar `cal`: an invitation
/// delivered by mail, or an imported `.ics`. Exchange keeps the iCalendar UID of such an
/// event as its `iCalUId` ("a unique identifier for an event across calendars",
/// https://learn.microsoft.com/graph/api/resources/event), which no API create can set.
/// `body` is as a create's; the event's id.
pub(crate) fn arrive(s: &mut Inner, cal: &str, body: &Value, ical_uid: &str) -> String {
    let id = new_id();
    let ev = new_event(body, Some(ical_uid));
    store(s, cal, &id, ev, "created");
    id
}

/// `GET …/calendars/{cal}/events`: single instances and series masters; only the
/// `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')` filter.
pub(crate) async fn list_events(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = st.lock().expect("emulator lock");
    let Some(c) = s.calendars.get(&cal) else {
        return not_found();
    };
    let filter = match q.get("$filter") {
        None => None,
        Some(f) if f.starts_with("singleValueExtendedProperties/Any(") => {
            let v = quoted(f);
            if v.len() != 2 {
                return bad_request("BadRequest", "Invalid filter clause");
            }
            Some((v[0].clone(), v[1].clone()))
        }
        Some(_) => {
            return bad_request(
                "ErrorInvalidUrlQueryFilter",
                "The filter is not supported here.",
            )
        }
    };
    let mut value = Vec::new();
    for i in c.items.values().filter(|i| !i.deleted) {
        let t = i.resource["type"].as_str().unwrap_or("");
        if t != "singleInstance" && t != "seriesMaster" {
            continue;
        }
        if let Some((id, val)) = &filter {
            let props = i.resource["singleValueExtendedProperties"].as_object();
            let hit = props.is_some_and(|p| {
                p.iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(id) && v.as_str() == Some(val))
            });
            if !hit {
                continue;
            }
        }
        match render(&i.resource, &headers, q.get("$expand").map(String::as_str)) {
            Ok(v) => value.push(v),
            Err(r) => return r,
        }
    }
    Json(json!({"value": value})).into_response()
}

pub(crate) async fn create_default(
    st: State<Shared>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    create(st, super::DEFAULT_CALENDAR_ID.to_string(), headers, body).await
}

pub(crate) async fn create_in(
    st: State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    create(st, cal, headers, body).await
}

async fn create(
    State(st): State<Shared>,
    cal: String,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let Some(c) = s.calendars.get(&cal) else {
        return not_found();
    };
    if let Some(tx) = body["transactionId"].as_str() {
        if let Some(id) = c.transactions.get(tx) {
            if let Some(i) = c.items.get(id).filter(|i| !i.deleted) {
                // The event this transaction created before (provider-semantics §2.5).
                return match render(&i.resource, &headers, None) {
                    Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
                    Err(r) => r,
                };
            }
        }
    }
    if let Err(r) = validate_times(&body) {
        return r;
    }
    let id = new_id();
    let ev = new_event(&body, None);
    if let Some(tx) = body["transactionId"].as_str() {
        s.calendars
            .get_mut(&cal)
            .expect("calendar")
            .transactions
            .insert(tx.into(), id.clone());
    }
    record(&mut s, "POST", &id, &body);
    store(&mut s, &cal, &id, ev, "created");
    let stored = s.calendars[&cal].items[&id].resource.clone();
    match render(&stored, &headers, None) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(r) => r,
    }
}

fn if_match_fails(headers: &HeaderMap, ev: &Value) -> bool {
    let Some(m) = headers.get("if-match").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let current = format!("W/\"{}\"", ev["changeKey"].as_str().unwrap_or(""));
    m != "*" && m != current
}

fn precondition_failed() -> Response {
    gerror(412, "ErrorIrresolvableConflict", "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.")
}

pub(crate) async fn get_event_in(
    st: State<Shared>,
    Path((_cal, id)): Path<(String, String)>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    get_event(st, Path(id), q, headers).await
}

pub(crate) async fn get_event(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = st.lock().expect("emulator lock");
    let ev = match locate(&s, &id) {
        None => return not_found(),
        Some(Loc::Item { cal, id }) => s.calendars[&cal].items[&id].resource.clone(),
        Some(Loc::Occurrence { cal, master, start }) => {
            occurrence_of(&s.calendars[&cal].items[&master].resource, start)
        }
    };
    match render(&ev, &headers, q.get("$expand").map(String::as_str)) {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

pub(crate) async fn patch_event_in(
    st: State<Shared>,
    Path((_cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    patch_event(st, Path(id), headers, body).await
}

pub(crate) async fn patch_event(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let (cal, mut ev) = match locate(&s, &id) {
        None => return not_found(),
        Some(Loc::Item { cal, id }) => {
            let r = s.calendars[&cal].items[&id].resource.clone();
            (cal, r)
        }
        Some(Loc::Occurrence { cal, master, start }) => {
            let mut o = occurrence_of(&s.calendars[&cal].items[&master].resource, start);
            o["type"] = json!("exception");
            o["iCalUId"] = json!(format!(
                "040000008200E00074C5B7101A82E008{}",
                uuid::Uuid::new_v4().simple()
            ));
            (cal, o)
        }
    };
    if if_match_fails(&headers, &ev) {
        return precondition_failed();
    }
    if body
        .get("transactionId")
        .is_some_and(|t| *t != ev["transactionId"] && !ev["transactionId"].is_null())
    {
        return bad_request("ErrorInvalidRequest", "transactionId cannot be changed.");
    }
    let old_recurrence = ev["recurrence"].clone();
    apply_patch(&mut ev, &body);
    if let Some(z) = body["start"]["timeZone"].as_str() {
        ev["originalStartTimeZone"] = json!(z);
    }
    if let Some(z) = body["end"]["timeZone"].as_str() {
        ev["originalEndTimeZone"] = json!(z);
    }
    if let Err(r) = validate_times(&ev) {
        return r;
    }
    if ev["type"] == "exception" && body.get("recurrence").is_some_and(|r| !r.is_null()) {
        return bad_request(
            "ErrorInvalidRequest",
            "An occurrence cannot have a recurrence.",
        );
    }
    let master_changed = ev["type"] == "seriesMaster" && ev["recurrence"] != old_recurrence;
    record(&mut s, "PATCH", &id, &body);
    if master_changed {
        // A new pattern drops the series' exceptions and cancellations.
        ev["cancelledOccurrences"] = json!([]);
        let gone: Vec<String> = s.calendars[&cal]
            .items
            .iter()
            .filter(|(_, i)| {
                !i.deleted && i.resource["seriesMasterId"].as_str() == Some(id.as_str())
            })
            .map(|(k, _)| k.clone())
            .collect();
        for g in gone {
            tombstone(&mut s, &cal, &g);
        }
    }
    store(&mut s, &cal, &id, ev, "updated");
    let stored = s.calendars[&cal].items[&id].resource.clone();
    match render(&stored, &headers, None) {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

pub(crate) async fn delete_event_in(
    st: State<Shared>,
    Path((_cal, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    delete_event(st, Path(id), headers).await
}

pub(crate) async fn delete_event(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let loc = locate(&s, &id);
    let (cal, master, start) = match loc {
        None => return not_found(),
        Some(Loc::Item { cal, id: item }) => {
            let ev = s.calendars[&cal].items[&item].resource.clone();
            if if_match_fails(&headers, &ev) {
                return precondition_failed();
            }
            record(&mut s, "DELETE", &id, &Value::Null);
            match ev["type"].as_str() {
                Some("exception") => {
                    let master = ev["seriesMasterId"].as_str().unwrap_or("").to_string();
                    let t = ev["originalStart"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc));
                    tombstone(&mut s, &cal, &item);
                    match t {
                        Some(t) => (cal, master, t),
                        None => return StatusCode::NO_CONTENT.into_response(),
                    }
                }
                Some("seriesMaster") => {
                    let children: Vec<String> = s.calendars[&cal]
                        .items
                        .iter()
                        .filter(|(_, i)| {
                            !i.deleted
                                && i.resource["seriesMasterId"].as_str() == Some(item.as_str())
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    for c in children {
                        tombstone(&mut s, &cal, &c);
                    }
                    tombstone(&mut s, &cal, &item);
                    return StatusCode::NO_CONTENT.into_response();
                }
                _ => {
                    tombstone(&mut s, &cal, &item);
                    return StatusCode::NO_CONTENT.into_response();
                }
            }
        }
        Some(Loc::Occurrence { cal, master, start }) => {
            record(&mut s, "DELETE", &id, &Value::Null);
            (cal, master, start)
        }
    };
    // A cancelled occurrence: only the master changes (it is not signalled otherwise).
    let mut m = s.calendars[&cal].items[&master].resource.clone();
    let key = cancel_key(&m, start);
    let mut list = m["cancelledOccurrences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !list.iter().any(|v| v.as_str() == Some(&key)) {
        list.push(json!(key));
    }
    m["cancelledOccurrences"] = json!(list);
    store(&mut s, &cal, &master, m, "updated");
    StatusCode::NO_CONTENT.into_response()
}

/// Parse `startDateTime`/`endDateTime` query values (ISO 8601, offset or UTC assumed).
pub(crate) fn window(q: &HashMap<String, String>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let p = |k: &str| -> Option<DateTime<Utc>> {
        let v = q.get(k)?;
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| local(v).map(|n| Utc.from_utc_datetime(&n)))
    };
    Some((p("startDateTime")?, p("endDateTime")?))
}

/// `GET /me/events/{id}/instances?startDateTime&endDateTime` (`$top`, `$skip` paging).
pub(crate) async fn instances(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = st.lock().expect("emulator lock");
    let Some((from, to)) = window(&q) else {
        return bad_request("ErrorInvalidParameter", "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.");
    };
    let Some(Loc::Item { cal, id }) = locate(&s, &id) else {
        return not_found();
    };
    let c = &s.calendars[&cal];
    let master = &c.items[&id].resource;
    let all = if master["type"] == "seriesMaster" {
        instances_of(c, master, from, to)
    } else {
        Vec::new()
    };
    let page = preferences(&headers)
        .get("odata.maxpagesize")
        .and_then(|v| v.parse().ok())
        .or_else(|| q.get("$top").and_then(|v| v.parse().ok()))
        .unwrap_or(s.config.default_page_size)
        .clamp(1, s.config.page_cap.max(1));
    let skip: usize = q.get("$skip").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut value = Vec::new();
    for v in all.iter().skip(skip).take(page) {
        match render(v, &headers, None) {
            Ok(v) => value.push(v),
            Err(r) => return r,
        }
    }
    let mut out = json!({"value": value});
    if skip + page < all.len() {
        let enc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        out["@odata.nextLink"] =
            json!(format!(
            "{}/v1.0/me/events/{id}/instances?startDateTime={}&endDateTime={}&$top={page}&$skip={}",
            s.base, enc(from), enc(to), skip + page
        ));
    }
    Json(out).into_response()
}

/// `POST /me/events/{id}/extensions` with `{"@odata.type":"microsoft.graph.openTypeExtension","extensionName":…}`.
pub(crate) async fn add_extension(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    let Some(Loc::Item { cal, id }) = locate(&s, &id) else {
        return not_found();
    };
    let Some(name) = body["extensionName"].as_str().map(str::to_string) else {
        return bad_request("ErrorInvalidRequest", "extensionName is required");
    };
    let mut ev = s.calendars[&cal].items[&id].resource.clone();
    let mut ext = body.clone();
    ext["id"] = json!(format!(
        "Microsoft.OutlookServices.OpenTypeExtension.{name}"
    ));
    ev["extensions"][&name] = ext.clone();
    store(&mut s, &cal, &id, ev, "updated");
    (StatusCode::CREATED, Json(ext)).into_response()
}
