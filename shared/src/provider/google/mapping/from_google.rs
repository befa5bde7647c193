//! Google → iCalendar: Event resources grouped into series and written as VEVENTs.

use super::*;

/// Render a Google time (`{date}` or `{dateTime, timeZone?}`) as an iCalendar date-time
/// property `name`; `zone` is the zone to use when the time carries none.
pub(super) fn time_line(name: &str, t: &Value, zone: Option<&str>) -> Result<String, String> {
    if let Some(d) = t.get("date").and_then(Value::as_str) {
        let d = NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("{name}: invalid date {d:?}"))?;
        return Ok(format!("{name};VALUE=DATE:{}", d.format("%Y%m%d")));
    }
    let Some(dt) = t.get("dateTime").and_then(Value::as_str) else {
        return Err(format!("{name}: neither date nor dateTime"));
    };
    let tz = t.get("timeZone").and_then(Value::as_str).or(zone);
    let instant = match DateTime::parse_from_rfc3339(dt) {
        Ok(i) => i.with_timezone(&Utc),
        // Without an offset the time is local to `timeZone` (Event schema, start.dateTime).
        Err(_) => {
            let local = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S")
                .map_err(|_| format!("{name}: invalid dateTime {dt:?}"))?;
            let when = match tz.filter(|z| !is_utc_zone(z)).and_then(iana) {
                Some(z) => When::Zoned(local, z),
                None => When::Utc(Utc.from_utc_datetime(&local)),
            };
            when.instant()
        }
    };
    match tz
        .filter(|z| !is_utc_zone(z))
        .and_then(|z| iana(z).map(|t| (z, t)))
    {
        Some((_, tz)) => Ok(format!(
            "{name};TZID={}:{}",
            tz.name(),
            instant.with_timezone(&tz).format("%Y%m%dT%H%M%S")
        )),
        None => Ok(format!("{name}:{}", instant.format("%Y%m%dT%H%M%SZ"))),
    }
}

/// The VEVENT lines of one Google event (master or exception), without BEGIN/END.
pub(super) fn event_lines(
    ev: &Value,
    uid: &str,
    zone: Option<&str>,
    exdates: &[String],
) -> Result<Vec<String>, String> {
    let mut out = vec![format!("UID:{uid}")];
    if let Some(u) = ev.get("updated").and_then(Value::as_str) {
        if let Ok(t) = DateTime::parse_from_rfc3339(u) {
            out.push(format!(
                "DTSTAMP:{}",
                t.with_timezone(&Utc).format("%Y%m%dT%H%M%SZ")
            ));
        }
    }
    if let Some(o) = ev.get("originalStartTime") {
        out.push(time_line("RECURRENCE-ID", o, zone)?);
    }
    out.push(time_line("DTSTART", &ev["start"], zone)?);
    if ev.get("end").is_some_and(|e| !e.is_null()) {
        out.push(time_line("DTEND", &ev["end"], zone)?);
    }
    for (key, prop) in [
        ("summary", "SUMMARY"),
        ("description", "DESCRIPTION"),
        ("location", "LOCATION"),
    ] {
        if let Some(v) = ev.get(key).and_then(Value::as_str) {
            out.push(format!("{prop}:{}", escape(v)));
        }
    }
    if let Some(rec) = ev.get("recurrence").and_then(Value::as_array) {
        out.extend(rec.iter().filter_map(Value::as_str).map(str::to_string));
    }
    out.extend(exdates.iter().cloned());
    if ev["status"] == "tentative" {
        out.push("STATUS:TENTATIVE".into());
    }
    if ev["transparency"] == "transparent" {
        out.push("TRANSP:TRANSPARENT".into());
    }
    if let Some(v) = ev.get("visibility").and_then(Value::as_str) {
        if v != "default" {
            out.push(format!("CLASS:{}", v.to_ascii_uppercase()));
        }
    }
    if let Some(c) = ev.get("colorId").and_then(Value::as_str) {
        if let Some((_, css)) = COLORS.iter().find(|(id, _)| *id == c) {
            out.push(format!("COLOR:{css}"));
        }
    }
    let video = ev["conferenceData"]["entryPoints"]
        .as_array()
        .and_then(|eps| {
            eps.iter()
                .find(|e| e["entryPointType"] == "video")
                .and_then(|e| e["uri"].as_str())
        })
        .or_else(|| ev.get("hangoutLink").and_then(Value::as_str));
    if let Some(uri) = video {
        out.push(format!("CONFERENCE;VALUE=URI;FEATURE=VIDEO:{uri}"));
    }
    let private = &ev["extendedProperties"]["private"];
    let attendees = ev
        .get("attendees")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !attendees.is_empty() {
        let (email, cn) = match private.get(ORGANIZER_PROP).and_then(Value::as_str) {
            Some(e) => (
                Some(e.to_string()),
                private
                    .get(ORGANIZER_CN_PROP)
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            None => (
                ev["organizer"]["email"]
                    .as_str()
                    .map(|e| format!("mailto:{e}")),
                ev["organizer"]["displayName"].as_str().map(str::to_string),
            ),
        };
        if let Some(email) = email {
            let cn = cn
                .map(|c| format!(";CN={}", param_value(&c)))
                .unwrap_or_default();
            out.push(format!("ORGANIZER{cn}:{email}"));
        }
    }
    for a in &attendees {
        let Some(email) = a["email"].as_str() else {
            continue;
        };
        let mut l = String::from("ATTENDEE");
        if let Some(cn) = a["displayName"].as_str() {
            l.push_str(&format!(";CN={}", param_value(cn)));
        }
        let partstat = match a["responseStatus"].as_str().unwrap_or("needsAction") {
            "accepted" => "ACCEPTED",
            "declined" => "DECLINED",
            "tentative" => "TENTATIVE",
            _ => "NEEDS-ACTION",
        };
        l.push_str(&format!(";PARTSTAT={partstat}"));
        if a["optional"] == true {
            l.push_str(";ROLE=OPT-PARTICIPANT");
        }
        l.push_str(&format!(":mailto:{email}"));
        out.push(l);
    }
    if let Some(shared) = ev["extendedProperties"]["shared"].as_object() {
        for (k, v) in shared {
            if k.starts_with("X-") && k.len() > 2 {
                if let Some(v) = v.as_str() {
                    out.push(format!("{}:{v}", k.to_ascii_uppercase()));
                }
            }
        }
    }
    if ev["reminders"]["useDefault"] == false {
        for o in ev["reminders"]["overrides"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(m) = o["minutes"].as_i64() else {
                continue;
            };
            let action = if o["method"] == "email" {
                "EMAIL"
            } else {
                "DISPLAY"
            };
            out.push("BEGIN:VALARM".into());
            out.push(format!("ACTION:{action}"));
            out.push(format!("TRIGGER:{}", minutes_to_trigger(m)));
            out.push("DESCRIPTION:Reminder".into());
            if action == "EMAIL" {
                out.push("SUMMARY:Reminder".into());
            }
            out.push("END:VALARM".into());
        }
    }
    Ok(out)
}

/// Who wrote a series (`members`: its master and exceptions as listed): [`Author::Calsync`]
/// when one of them carries calsync's private UID property (every calsync write sets it on
/// the master and each exception; a private property is "private to the copy of the event
/// that appears on this calendar"), else [`Author::Other`].
/// <https://developers.google.com/workspace/calendar/api/guides/extended-properties>
///
/// [`Author::Calsync`]: crate::provider::Author::Calsync
/// [`Author::Other`]: crate::provider::Author::Other
pub fn author(members: &[&Value]) -> crate::provider::Author {
    crate::provider::Author::from_marker(
        members
            .iter()
            .any(|ev| ev["extendedProperties"]["private"][UID_PROP].is_string()),
    )
}

/// The UID of a Google event: ours if we wrote it, else its `iCalUID`, else its id.
pub fn uid_of(ev: &Value) -> String {
    ev["extendedProperties"]["private"][UID_PROP]
        .as_str()
        .or_else(|| ev["iCalUID"].as_str())
        .or_else(|| ev["id"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Group Google events into series: master id → the master and its exceptions
/// (`recurringEventId`), in input order.
pub fn group_series(items: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for it in items {
        let key = it["recurringEventId"]
            .as_str()
            .or_else(|| it["id"].as_str())
            .unwrap_or_default()
            .to_string();
        groups.entry(key).or_default().push(it);
    }
    groups
}

/// One Google series (master plus exceptions, cancelled ones included) as a VCALENDAR.
///
/// Errors (as text naming the event): no live master, or a time that is not a valid
/// `date`/`dateTime`.
pub fn series_to_ical(items: &[&Value]) -> Result<String, String> {
    let master = items
        .iter()
        .find(|e| e.get("recurringEventId").is_none() && e["status"] != "cancelled")
        .ok_or_else(|| "series without a live master event".to_string())?;
    let id = master["id"].as_str().unwrap_or_default();
    let uid = uid_of(master);
    let zone = master["start"]["timeZone"].as_str();
    let exceptions: Vec<&&Value> = items
        .iter()
        .filter(|e| e["recurringEventId"].as_str() == Some(id))
        .collect();
    // Cancelled instances become EXDATEs, unless the master's recurrence already has them.
    let existing: Vec<(Option<String>, String)> = exdate_values(master)
        .into_iter()
        .map(|l| (l.param("TZID").map(str::to_string), l.value))
        .collect();
    let mut exdates = Vec::new();
    for e in exceptions.iter().filter(|e| e["status"] == "cancelled") {
        let line = time_line("EXDATE", &e["originalStartTime"], zone)
            .map_err(|r| format!("event {id}: {r}"))?;
        if let Some(l) = parse_line(&line) {
            let key = (l.param("TZID").map(str::to_string), l.value.clone());
            if !existing.contains(&key) && !exdates.contains(&line) {
                exdates.push(line);
            }
        }
    }
    let mut text =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//google//EN\r\n");
    push_vevent(
        &mut text,
        &event_lines(master, &uid, zone, &exdates).map_err(|r| format!("event {id}: {r}"))?,
    );
    for e in exceptions
        .iter()
        .filter(|e| e["status"] != "cancelled" && !unmodified(e, master))
    {
        let eid = e["id"].as_str().unwrap_or_default();
        push_vevent(
            &mut text,
            &event_lines(e, &uid, zone, &[]).map_err(|r| format!("event {eid}: {r}"))?,
        );
    }
    text.push_str("END:VCALENDAR\r\n");
    Ok(text)
}

/// The EXDATE values of a Google event's `recurrence` lines, one [`Line`] per value (a line
/// with several comma-separated values is split, its parameters kept).
pub(super) fn exdate_values(master: &Value) -> Vec<Line> {
    master["recurrence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(parse_line)
        .filter(|l| l.name == "EXDATE")
        .flat_map(|l| {
            l.value
                .split(',')
                .map(|v| Line {
                    value: v.to_string(),
                    ..l.clone()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Fields in which an instance differs from its master by nature, or that the server sets.
pub(super) const INSTANCE_KEYS: &[&str] = &[
    "id",
    "etag",
    "recurringEventId",
    "originalStartTime",
    "start",
    "end",
    "recurrence",
    "updated",
    "created",
    "sequence",
    "htmlLink",
    "iCalUID",
    "kind",
    "organizer",
    "creator",
];

/// A Google `EventDateTime` as an instant (`date`: midnight UTC of that date).
pub(super) fn instant_of(v: &Value) -> Option<DateTime<Utc>> {
    match (v["dateTime"].as_str(), v["date"].as_str()) {
        (Some(t), _) => DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        (None, Some(d)) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc()),
        _ => None,
    }
}

pub(super) fn duration_of(ev: &Value) -> Option<Duration> {
    Some(instant_of(&ev["end"])? - instant_of(&ev["start"])?)
}

/// Whether exception `e` is just the occurrence `master` generates: Google keeps exception
/// objects with the start of their original slot, the master's duration and every other field
/// as the master's (after an override is put back, and after "edit all events", as in the
/// Compass recording `edit_all_all-1.json`). Such an exception is no override, and
/// [`series_to_ical`] leaves it out.
pub fn unmodified(e: &Value, master: &Value) -> bool {
    let start = instant_of(&e["start"]);
    if start.is_none()
        || start != instant_of(&e["originalStartTime"])
        || duration_of(e) != duration_of(master)
    {
        return false;
    }
    let (Some(a), Some(b)) = (e.as_object(), master.as_object()) else {
        return false;
    };
    let confirmed = json!("confirmed");
    let field = |m: &'_ Map<String, Value>, k: &str| -> Option<Value> {
        match (k, m.get(k)) {
            ("status", None) => Some(confirmed.clone()), // the documented default
            (_, v) => v.cloned(),
        }
    };
    a.keys()
        .chain(b.keys())
        .filter(|k| !INSTANCE_KEYS.contains(&k.as_str()))
        .all(|k| field(a, k) == field(b, k))
}

/// The exceptions Google holds (`existing`) that `new` has no override for and that differ
/// from the occurrence of `written` (the master as Google answered our write of `new`), as
/// `(instance id suffix, body)` putting each back to that occurrence: the master's fields,
/// its original start, the master's duration. A cancelled instance `new` does not exclude
/// (no EXDATE for it: the occurrence was restored) is put back the same way. Empty when
/// `new` is not recurring.
pub fn reset_instances(
    existing: &[Value],
    new: &GoogleSeries,
    written: &Value,
) -> Vec<(String, Value)> {
    let Some(duration) = duration_of(&new.master) else {
        return Vec::new();
    };
    if new.master.get("recurrence").is_none() {
        return Vec::new();
    }
    let excluded: Vec<DateTime<Utc>> = exdate_values(&new.master)
        .iter()
        .filter_map(|l| When::parse(l).ok().map(When::instant))
        .collect();
    let mut out: Vec<(String, Value)> = Vec::new();
    for e in existing {
        let cancelled = e["status"] == "cancelled";
        if cancelled && instant_of(&e["originalStartTime"]).is_none_or(|t| excluded.contains(&t)) {
            continue; // still excluded
        }
        let Some(suffix) = e["id"]
            .as_str()
            .and_then(|id| id.rsplit_once('_'))
            .map(|(_, s)| s)
        else {
            continue;
        };
        if new.exceptions.iter().any(|(s, _)| s == suffix) {
            continue;
        }
        let original = &e["originalStartTime"];
        let Some(start) = instant_of(original) else {
            continue;
        };
        let Some(end_at) = start.checked_add_signed(duration) else {
            continue;
        };
        let end = match original["date"].as_str() {
            Some(_) => json!({"date": end_at.format("%Y-%m-%d").to_string()}),
            None => {
                let offset =
                    DateTime::parse_from_rfc3339(original["dateTime"].as_str().unwrap_or(""))
                        .map(|t| *t.offset())
                        .unwrap_or_else(|_| chrono::Offset::fix(&Utc));
                let mut v = json!({"dateTime": end_at.with_timezone(&offset).to_rfc3339()});
                if let Some(z) = original.get("timeZone") {
                    v["timeZone"] = z.clone();
                }
                v
            }
        };
        let mut body = new.master.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("recurrence");
            o.remove("id");
        }
        body["originalStartTime"] = original.clone();
        body["start"] = original.clone();
        body["end"] = end;
        if body.get("status").is_none() {
            body["status"] = json!("confirmed");
        }
        if !cancelled && unmodified(e, written) {
            continue; // already the generated occurrence
        }
        out.push((suffix.to_string(), body));
    }
    out
}
