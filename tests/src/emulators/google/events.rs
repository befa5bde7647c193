//! The emulator's single-event methods: `events.insert`, `events.import`, `events.get`,
//! `events.update`, `events.patch` and `events.delete`, with etags, `If-Match` and instance
//! ids of recurring events (see the module above for the routes).

use super::*;

pub(super) fn record_send(s: &mut Inner, method: &str, id: &str, q: &[(String, String)]) {
    let send_updates = q
        .iter()
        .find(|(n, _)| n == "sendUpdates")
        .map(|(_, v)| v.clone());
    s.sends.push(SendRecord {
        method: method.into(),
        event_id: id.into(),
        send_updates,
    });
}

pub(super) fn validate_times(ev: &Value) -> Result<(), Response> {
    for k in ["start", "end"] {
        let t = &ev[k];
        if t.get("date").is_none() && t.get("dateTime").is_none() {
            let msg = if k == "start" {
                "Missing start time."
            } else {
                "Missing end time."
            };
            return Err(gerror(400, "global", "required", msg, None));
        }
    }
    Ok(())
}

/// Store a new version of an event: fresh sequence number, etag and `updated`.
pub(super) fn store_write(s: &mut Inner, cal: &str, id: &str, mut resource: Value) -> Value {
    s.seq += 1;
    let seq = s.seq;
    resource["etag"] = json!(etag_of(seq));
    resource["updated"] = json!(rfc3339_now());
    let calendar = s.calendars.get_mut(cal).expect("calendar checked");
    calendar.events.insert(
        id.into(),
        StoredEvent {
            resource: resource.clone(),
            seq,
        },
    );
    push::notify(s, cal);
    resource
}

pub(super) async fn insert_event(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(mut ev): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let id = match ev.get("id").and_then(Value::as_str) {
        Some(id) if !valid_event_id(id) => {
            return gerror(400, "global", "invalid", "Invalid resource id value.", None)
        }
        Some(id) => id.to_string(),
        None => server_event_id(),
    };
    if calendar.events.contains_key(&id) {
        return gerror(
            409,
            "global",
            "duplicate",
            "The requested identifier already exists.",
            None,
        );
    }
    if let Err(r) = validate_times(&ev) {
        return r;
    }
    record_send(&mut s, "POST", &id, &q);
    let now = rfc3339_now();
    ev["kind"] = json!("calendar#event");
    ev["id"] = json!(id);
    ev["created"] = json!(now);
    if ev.get("iCalUID").is_none() {
        ev["iCalUID"] = json!(format!("{id}@google.com"));
    }
    if ev.get("status").is_none() {
        ev["status"] = json!("confirmed");
    }
    if ev.get("sequence").is_none() {
        ev["sequence"] = json!(0);
    }
    ev["organizer"] = json!({"email": cal, "self": true});
    ev["creator"] = json!({"email": cal, "self": true});
    let stored = store_write(&mut s, &cal, &id, ev);
    Json(stored).into_response()
}

/// `events.import`: a private copy of an existing event, keyed by its `iCalUID` (required);
/// importing the same `iCalUID` again replaces that event. No `sendUpdates` (discovery).
pub(super) async fn import_event(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    Json(mut ev): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let Some(uid) = ev
        .get("iCalUID")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return gerror(400, "global", "required", "Missing iCalUID.", None);
    };
    if let Err(r) = validate_times(&ev) {
        return r;
    }
    let existing = calendar
        .events
        .iter()
        .find(|(_, e)| {
            e.resource["iCalUID"] == uid.as_str() && e.resource.get("recurringEventId").is_none()
        })
        .map(|(id, e)| (id.clone(), e.resource.clone()));
    let now = rfc3339_now();
    let id = match &existing {
        Some((id, old)) => {
            ev["created"] = old["created"].clone();
            id.clone()
        }
        None => {
            ev["created"] = json!(now);
            server_event_id()
        }
    };
    ev["kind"] = json!("calendar#event");
    ev["id"] = json!(id);
    if ev.get("status").is_none() {
        ev["status"] = json!("confirmed");
    }
    if ev.get("organizer").is_none() {
        ev["organizer"] = json!({"email": cal, "self": true});
    }
    let stored = store_write(&mut s, &cal, &id, ev);
    Json(stored).into_response()
}

pub(super) fn current<'a>(s: &'a Inner, cal: &str, id: &str) -> Result<&'a StoredEvent, Response> {
    s.calendars
        .get(cal)
        .ok_or_else(not_found)?
        .events
        .get(id)
        .ok_or_else(not_found)
}

/// The stored event `id`, or — for an id `<masterId>_<start>` of an instance of a recurring
/// master that has no exception yet — the instance as the master generates it (Google's
/// instance ids: `_<YYYYMMDDTHHMMSSZ>`, all-day `_<YYYYMMDD>`; writing to one creates the
/// exception, deleting it cancels that instance).
pub(super) fn current_or_instance(s: &Inner, cal: &str, id: &str) -> Result<Value, Response> {
    if let Ok(e) = current(s, cal, id) {
        return Ok(e.resource.clone());
    }
    let (master_id, suffix) = id.rsplit_once('_').ok_or_else(not_found)?;
    let master = current(s, cal, master_id)?.resource.clone();
    if master["status"] == "cancelled" || !recurrence::generates(&master, suffix) {
        return Err(not_found());
    }
    instance_of(&master, suffix).ok_or_else(not_found)
}

/// The virtual instance of `master` starting at the id suffix `suffix`.
pub(super) fn instance_of(master: &Value, suffix: &str) -> Option<Value> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    let master_id = master["id"].as_str()?;
    let (orig, start, end) = if suffix.len() == 8 {
        let d = NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()?;
        let ms = NaiveDate::parse_from_str(master["start"]["date"].as_str()?, "%Y-%m-%d").ok()?;
        let me = NaiveDate::parse_from_str(master["end"]["date"].as_str()?, "%Y-%m-%d").ok()?;
        let fmt = |d: NaiveDate| json!({"date": d.format("%Y-%m-%d").to_string()});
        (fmt(d), fmt(d), fmt(d + (me - ms)))
    } else {
        let t = NaiveDateTime::parse_from_str(suffix.strip_suffix('Z')?, "%Y%m%dT%H%M%S").ok()?;
        let t = Utc.from_utc_datetime(&t);
        let ms =
            chrono::DateTime::parse_from_rfc3339(master["start"]["dateTime"].as_str()?).ok()?;
        let me = chrono::DateTime::parse_from_rfc3339(master["end"]["dateTime"].as_str()?).ok()?;
        let tz = master["start"]["timeZone"].as_str();
        let fmt = |t: chrono::DateTime<Utc>| {
            let local = tz
                .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
                .map(|z| t.with_timezone(&z).to_rfc3339())
                .unwrap_or_else(|| t.to_rfc3339());
            let mut v = json!({ "dateTime": local });
            if let Some(z) = tz {
                v["timeZone"] = json!(z);
            }
            v
        };
        (fmt(t), fmt(t), fmt(t + (me - ms)))
    };
    let mut inst = master.clone();
    let o = inst.as_object_mut()?;
    o.remove("recurrence");
    o.insert("id".into(), json!(format!("{master_id}_{suffix}")));
    o.insert("recurringEventId".into(), json!(master_id));
    o.insert("originalStartTime".into(), orig);
    o.insert("start".into(), start);
    o.insert("end".into(), end);
    Some(inst)
}

pub(super) fn if_match_fails(headers: &HeaderMap, etag: &Value) -> bool {
    headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m != "*" && Some(m) != etag.as_str())
}

pub(super) fn precondition_failed() -> Response {
    gerror(
        412,
        "global",
        "conditionNotMet",
        "Precondition Failed",
        Some(("header", "If-Match")),
    )
}

pub(super) async fn get_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let e = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == e["etag"].as_str() {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    Json(e).into_response()
}

/// Fields the server owns: kept from the stored version on update.
pub(super) const SERVER_FIELDS: &[&str] = &[
    "kind",
    "id",
    "created",
    "iCalUID",
    "organizer",
    "creator",
    "htmlLink",
    "recurringEventId",
    "originalStartTime",
];

pub(super) async fn update_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(mut ev): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let old = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if if_match_fails(&headers, &old["etag"]) {
        return precondition_failed();
    }
    if let Err(r) = validate_times(&ev) {
        return r;
    }
    record_send(&mut s, "PUT", &id, &q);
    for k in SERVER_FIELDS {
        if let Some(v) = old.get(*k) {
            ev[*k] = v.clone();
        }
    }
    if ev.get("status").is_none() {
        ev["status"] = json!("confirmed");
    }
    if ev.get("sequence").is_none() {
        ev["sequence"] = old["sequence"].clone();
    }
    Json(store_write(&mut s, &cal, &id, ev)).into_response()
}

/// Patch semantics: objects merge recursively, arrays and scalars replace, `null` removes.
pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if v.is_object() && t.get(k).is_some_and(Value::is_object) {
                    merge_patch(t.get_mut(k).expect("present"), v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

pub(super) async fn patch_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(patch): Json<Value>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let mut ev = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if if_match_fails(&headers, &ev["etag"]) {
        return precondition_failed();
    }
    record_send(&mut s, "PATCH", &id, &q);
    let mut patch = patch;
    if let Value::Object(p) = &mut patch {
        for k in SERVER_FIELDS {
            p.remove(*k);
        }
    }
    merge_patch(&mut ev, &patch);
    Json(store_write(&mut s, &cal, &id, ev)).into_response()
}

pub(super) async fn delete_event(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let mut ev = match current_or_instance(&s, &cal, &id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if ev["status"] == "cancelled" {
        return gerror(410, "global", "deleted", "Resource has been deleted", None);
    }
    if if_match_fails(&headers, &ev["etag"]) {
        return precondition_failed();
    }
    record_send(&mut s, "DELETE", &id, &q);
    ev["status"] = json!("cancelled");
    store_write(&mut s, &cal, &id, ev);
    // Deleting a series cancels its exceptions too.
    let exceptions: Vec<(String, Value)> = s.calendars[&cal]
        .events
        .iter()
        .filter(|(_, e)| e.resource["recurringEventId"] == id.as_str())
        .filter(|(_, e)| e.resource["status"] != "cancelled")
        .map(|(k, e)| (k.clone(), e.resource.clone()))
        .collect();
    for (k, mut e) in exceptions {
        e["status"] = json!("cancelled");
        store_write(&mut s, &cal, &k, e);
    }
    StatusCode::NO_CONTENT.into_response()
}
