//! The emulator's reads: `calendarList.list`, `calendars.get`, `events.list` (pages, sync tokens,
//! `singleEvents`) and `events.instances`, as the discovery document and the sync guide
//! describe them (see the module above for the routes).

use super::*;

/// What an incremental list shows of a cancelled event: `id`, `status`, and for a cancelled
/// instance `recurringEventId` and `originalStartTime` (Event schema, `status` field).
pub(super) fn cancelled_view(ev: &Value) -> Value {
    let mut out = Map::new();
    for k in [
        "kind",
        "etag",
        "id",
        "status",
        "recurringEventId",
        "originalStartTime",
    ] {
        if let Some(v) = ev.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// `calendarList.list`
/// (https://developers.google.com/workspace/calendar/api/v3/reference/calendarList/list):
/// the token's account's calendars, its main one marked `primary`, `maxResults` a page
/// (default 100, at most 250; more is 400 `invalid`) and `nextPageToken` while more remain.
pub(super) async fn calendar_list(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let account = crate::emulators::bearer(&headers)
        .and_then(|t| s.oauth.account_of(t))
        .map(str::to_string);
    let main = account.clone().unwrap_or_else(|| "primary".into());
    let per_page = match q.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=250).contains(&n) => n,
        Some(_) => return bad_request("Invalid value for maxResults"),
    };
    let from = match q.get("pageToken").map(|p| p.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request("Invalid pageToken"),
    };
    let mine: Vec<Value> = s
        .calendars
        .iter()
        .filter(|(_, c)| c.owner == account)
        .map(|(id, c)| json!({"kind": "calendar#calendarListEntry", "id": id, "summary": c.summary, "timeZone": c.time_zone, "accessRole": "owner", "primary": *id == main}))
        .collect();
    let items: Vec<Value> = mine.iter().skip(from).take(per_page).cloned().collect();
    let mut body = json!({"kind": "calendar#calendarList", "etag": etag_of(s.seq), "items": items});
    if from + per_page < mine.len() {
        body["nextPageToken"] = json!((from + per_page).to_string());
    } else {
        body["nextSyncToken"] = json!(format!("cl{}", s.seq));
    }
    Json(body).into_response()
}

/// `calendars.get` (https://developers.google.com/workspace/calendar/api/v3/reference/calendars/get):
/// the calendar's metadata. `primary` is the main calendar of the token's account; a
/// calendar the account does not own is 404 `notFound`, as for a calendar not shared with
/// it.
pub(super) async fn calendars_get(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let account = crate::emulators::bearer(&headers)
        .and_then(|t| s.oauth.account_of(t))
        .map(str::to_string);
    let id = match (cal.as_str(), &account) {
        ("primary", Some(a)) => a.clone(),
        _ => cal,
    };
    match s.calendars.get(&id) {
        Some(c) if c.owner == account => Json(json!({
            "kind": "calendar#calendar",
            "etag": etag_of(s.seq),
            "id": id,
            "summary": c.summary,
            "timeZone": c.time_zone,
        }))
        .into_response(),
        _ => not_found(),
    }
}

/// Query parameters `events.list` honours; the names are those of the discovery document.
pub(super) const LIST_PARAMS: &[&str] = &[
    "iCalUID",
    "maxResults",
    "pageToken",
    "syncToken",
    "showDeleted",
    "singleEvents",
    "timeZone",
    "maxAttendees",
    "alwaysIncludeEmail",
    "showHiddenInvitations",
    "eventTypes",
];
/// Documented parameters that are incompatible with `syncToken` (400 with one). Without a
/// sync token the emulator does not filter by them yet, so it refuses them (400) rather than
/// answer as if they had been applied.
pub(super) const FORBIDDEN_WITH_SYNC: &[&str] = &[
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

pub(super) async fn list_events(
    State(st): State<Shared>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let known = |n: &str| LIST_PARAMS.contains(&n) || FORBIDDEN_WITH_SYNC.contains(&n);
    if let Some((n, _)) = q.iter().find(|(n, _)| !known(n)) {
        return bad_request(&format!("Invalid parameter: {n}"));
    }
    if param("syncToken").is_none() {
        if let Some(p) = FORBIDDEN_WITH_SYNC
            .iter()
            .filter(|p| !LIST_PARAMS.contains(p))
            .find(|p| param(p).is_some())
        {
            return bad_request(&format!("The parameter {p} is not emulated"));
        }
    }
    let max_results = match max_results(param("maxResults")) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let show_deleted = param("showDeleted") == Some("true");
    let single_events = param("singleEvents") == Some("true");
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let seq_now = s.seq;
    // Sync token: the change sequence it was issued at.
    let since: Option<u64> = match param("syncToken") {
        None => None,
        Some(t) => {
            if let Some(bad) = FORBIDDEN_WITH_SYNC.iter().find(|p| param(p).is_some()) {
                return bad_request(&format!(
                    "The parameter {bad} cannot be used with syncToken"
                ));
            }
            if param("showDeleted") == Some("false") {
                return bad_request("showDeleted cannot be false with syncToken");
            }
            match decode_token("s1.", t)
                .filter(|v| v["c"] == json!(cal))
                .and_then(|v| v["s"].as_u64())
            {
                Some(n) if n >= calendar.valid_from && n <= seq_now => Some(n),
                _ => {
                    return gerror(
                        410,
                        "calendar",
                        "fullSyncRequired",
                        "Sync token is no longer valid, a full sync is required.",
                        Some(("parameter", "syncToken")),
                    )
                }
            }
        }
    };
    // Page token: (query fingerprint, snapshot sequence, last id) — keyset paging over ids.
    let fingerprint = format!(
        "{cal}|{:?}|{show_deleted}|{single_events}|{:?}",
        param("syncToken"),
        param("iCalUID")
    );
    let ical_uid = param("iCalUID").map(str::to_string);
    let (snapshot, after) = match param("pageToken") {
        None => (seq_now, String::new()),
        Some(t) => match decode_token("p1.", t).filter(|v| v["f"] == json!(fingerprint)) {
            Some(v) => (
                v["s"].as_u64().unwrap_or(seq_now),
                v["a"].as_str().unwrap_or("").to_string(),
            ),
            None => {
                return gerror(
                    400,
                    "global",
                    "invalid",
                    "Invalid page token",
                    Some(("parameter", "pageToken")),
                )
            }
        },
    };
    let page_size = max_results.min(s.config.page_cap.max(1));
    let calendar = s.calendars.get(&cal).expect("checked above");
    let view: std::borrow::Cow<'_, BTreeMap<String, StoredEvent>> = if single_events {
        std::borrow::Cow::Owned(expand_series(calendar, since.is_some()))
    } else {
        std::borrow::Cow::Borrowed(&calendar.events)
    };
    let mut matching = view
        .iter()
        .filter(|(id, _)| id.as_str() > after.as_str())
        .filter(|(_, e)| e.seq <= snapshot)
        .filter(|(_, e)| {
            ical_uid
                .as_deref()
                .is_none_or(|u| e.resource["iCalUID"] == u)
        })
        .filter(|(_, e)| match since {
            Some(n) => e.seq > n,
            None => show_deleted || e.resource["status"] != "cancelled",
        });
    let mut items = Vec::new();
    let mut last = None;
    for (id, e) in matching.by_ref().take(page_size) {
        let cancelled = e.resource["status"] == "cancelled";
        items.push(if cancelled && since.is_some() && !show_deleted {
            cancelled_view(&e.resource)
        } else {
            e.resource.clone()
        });
        last = Some(id.clone());
    }
    let more = matching.next().is_some();
    let mut body = json!({
        "kind": "calendar#events", "etag": etag_of(snapshot), "summary": calendar.summary,
        "updated": rfc3339_now(), "timeZone": calendar.time_zone, "accessRole": "owner",
        "defaultReminders": [], "items": items,
    });
    if more {
        body["nextPageToken"] = json!(encode_token(
            "p1.",
            &json!({"f": fingerprint, "s": snapshot, "a": last})
        ));
    } else {
        body["nextSyncToken"] = json!(encode_token("s1.", &json!({"c": cal, "s": snapshot})));
    }
    Json(body).into_response()
}

/// The calendar as `singleEvents=true` shows it: recurring masters replaced by their
/// instances (stored exceptions, else generated from the master, at most
/// [`recurrence::MAX_INSTANCES`] per series); one-off events as they are. A cancelled master
/// shows only in incremental listings (its cancellation is the change to report).
pub(super) fn expand_series(
    calendar: &Calendar,
    incremental: bool,
) -> BTreeMap<String, StoredEvent> {
    let mut out = BTreeMap::new();
    for (id, e) in &calendar.events {
        let r = &e.resource;
        if r.get("recurrence").is_none() || r.get("recurringEventId").is_some() {
            out.insert(id.clone(), e.clone());
            continue;
        }
        if r["status"] == "cancelled" {
            if incremental {
                out.insert(id.clone(), e.clone());
            }
            continue;
        }
        for suffix in recurrence::suffixes(r, None, None, recurrence::MAX_INSTANCES) {
            let iid = format!("{id}_{suffix}");
            if calendar.events.contains_key(&iid) {
                continue; // the stored exception is listed as itself
            }
            if let Some(resource) = instance_of(r, &suffix) {
                out.insert(
                    iid,
                    StoredEvent {
                        resource,
                        seq: e.seq,
                    },
                );
            }
        }
    }
    out
}

/// Query parameters of `events.instances` (discovery document).
pub(super) const INSTANCES_PARAMS: &[&str] = &[
    "maxResults",
    "pageToken",
    "showDeleted",
    "timeMin",
    "timeMax",
    "originalStart",
    "timeZone",
    "maxAttendees",
    "alwaysIncludeEmail",
];

/// `GET …/events/{eventId}/instances`: the instances of a recurring event in start order —
/// exceptions as stored, the others generated from the master; cancelled instances only with
/// `showDeleted=true`. `timeMin` is inclusive on the instance's end, `timeMax` exclusive on
/// its start (the reference's wording), `originalStart` picks one instance. Pages of
/// `maxResults` (≤ 2500) with an opaque `nextPageToken`; no sync token (the method has
/// none). Unknown or cancelled master: 404 / 410 `deleted`. An event without `recurrence`
/// has no instances here (empty list; Google's answer for that case is not documented).
pub(super) async fn list_instances(
    State(st): State<Shared>,
    Path((cal, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = st.lock().expect("emulator lock");
    if let Err(r) = admit(&mut s, &headers) {
        return r;
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some((n, _)) = q
        .iter()
        .find(|(n, _)| !INSTANCES_PARAMS.contains(&n.as_str()))
    {
        return bad_request(&format!("Invalid parameter: {n}"));
    }
    let max_results = match max_results(param("maxResults")) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let time = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, Response> {
        match param(k) {
            None => Ok(None),
            Some(v) => chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| bad_request(&format!("Invalid value for: {k}"))),
        }
    };
    let (time_min, time_max) = match (time("timeMin"), time("timeMax")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let (Some(a), Some(b)) = (time_min, time_max) {
        if b <= a {
            return gerror(
                400,
                "calendar",
                "timeRangeEmpty",
                "The specified time range is empty.",
                Some(("parameter", "timeMax")),
            );
        }
    }
    let show_deleted = param("showDeleted") == Some("true");
    let Some(calendar) = s.calendars.get(&cal) else {
        return not_found();
    };
    let Some(master) = calendar.events.get(&id).map(|e| e.resource.clone()) else {
        return not_found();
    };
    if master["status"] == "cancelled" {
        return gerror(410, "global", "deleted", "Resource has been deleted", None);
    }
    // Every instance, exceptions included (a moved exception keeps its original slot).
    let mut items: Vec<Value> = Vec::new();
    for suffix in recurrence::suffixes(&master, None, None, recurrence::MAX_INSTANCES) {
        let iid = format!("{id}_{suffix}");
        let inst = match calendar.events.get(&iid) {
            Some(e) => e.resource.clone(),
            None => match instance_of(&master, &suffix) {
                Some(i) => i,
                None => continue,
            },
        };
        if inst["status"] == "cancelled" && !show_deleted {
            continue;
        }
        items.push(inst);
    }
    let instant = |v: &Value| -> Option<chrono::DateTime<chrono::Utc>> {
        match (v["dateTime"].as_str(), v["date"].as_str()) {
            (Some(t), _) => chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc)),
            (None, Some(d)) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc()),
            _ => None,
        }
    };
    items.retain(|i| {
        let (start, end) = (instant(&i["start"]), instant(&i["end"]));
        time_min.is_none_or(|m| end.is_none_or(|e| e >= m))
            && time_max.is_none_or(|m| start.is_none_or(|s| s < m))
    });
    if let Some(o) = param("originalStart") {
        let Ok(o) = chrono::DateTime::parse_from_rfc3339(o) else {
            return bad_request("Invalid value for: originalStart");
        };
        items.retain(|i| instant(&i["originalStartTime"]) == Some(o.with_timezone(&chrono::Utc)));
    }
    items.sort_by_key(|i| instant(&i["start"]));
    let fingerprint = format!(
        "{cal}|{id}|{:?}|{:?}|{show_deleted}",
        param("timeMin"),
        param("timeMax")
    );
    let offset = match param("pageToken") {
        None => 0,
        Some(t) => match decode_token("i1.", t).filter(|v| v["f"] == json!(fingerprint)) {
            Some(v) => v["o"].as_u64().unwrap_or(0) as usize,
            None => {
                return gerror(
                    400,
                    "global",
                    "invalid",
                    "Invalid page token",
                    Some(("parameter", "pageToken")),
                )
            }
        },
    };
    let page_size = max_results.min(s.config.page_cap.max(1));
    let page: Vec<Value> = items.iter().skip(offset).take(page_size).cloned().collect();
    let mut body = json!({
        "kind": "calendar#events", "etag": etag_of(s.seq), "summary": calendar.summary,
        "updated": rfc3339_now(), "timeZone": calendar.time_zone, "accessRole": "owner",
        "defaultReminders": [], "items": page,
    });
    if offset + page_size < items.len() {
        body["nextPageToken"] = json!(encode_token(
            "i1.",
            &json!({"f": fingerprint, "o": offset + page_size})
        ));
    }
    Json(body).into_response()
}

/// `maxResults` of `events.list` and `events.instances`: 1–2500, default 250 (discovery).
pub(super) fn max_results(v: Option<&str>) -> Result<usize, Response> {
    match v.map(str::parse::<usize>) {
        None => Ok(250),
        Some(Ok(n)) if (1..=2500).contains(&n) => Ok(n),
        Some(_) => Err(gerror(
            400,
            "global",
            "invalid",
            "Invalid value for: maxResults",
            Some(("parameter", "maxResults")),
        )),
    }
}
