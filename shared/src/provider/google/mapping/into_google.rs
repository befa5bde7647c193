//! iCalendar → Google: a series as a master Event body and its exception bodies.

use super::*;

/// A series in Google's shape: the master body and, per RECURRENCE-ID, the instance id
/// suffix (`20240108T090000Z`, all day `20240108`) and the exception body.
#[derive(Debug, Clone, PartialEq)]
pub struct GoogleSeries {
    /// Body of the master event (no `id`).
    pub master: Value,
    /// `(instance id suffix, body)` per overridden instance.
    pub exceptions: Vec<(String, Value)>,
}

impl When {
    /// The Google `EventDateTime`; recurring events need a `timeZone`.
    fn google(self, recurring: bool) -> Value {
        match self {
            When::Date(d) => json!({"date": d.format("%Y-%m-%d").to_string()}),
            When::Zoned(_, tz) => json!({
                "dateTime": self.instant().with_timezone(&tz).to_rfc3339(),
                "timeZone": tz.name(),
            }),
            When::Utc(_) | When::Floating(_) => {
                let mut v = json!({"dateTime": self.instant().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
                if recurring {
                    v["timeZone"] = json!("UTC");
                }
                v
            }
        }
    }

    /// Google's instance id suffix for an occurrence starting here.
    fn instance_suffix(self) -> String {
        match self {
            When::Date(d) => d.format("%Y%m%d").to_string(),
            other => other.instant().format("%Y%m%dT%H%M%SZ").to_string(),
        }
    }
}

/// Reminder minutes of a VALARM block (a relative TRIGGER before the start), with its method.
pub(super) fn alarm(block: &str) -> Option<Value> {
    let lines = parse_lines(block);
    let trigger = lines.iter().find(|l| l.name == "TRIGGER")?;
    if trigger.param("VALUE") == Some("DATE-TIME") || trigger.param("RELATED") == Some("END") {
        return None;
    }
    let d = parse_duration(&trigger.value)?;
    let minutes = -d.num_minutes();
    if d > Duration::zero() || !(0..=40320).contains(&minutes) || d.num_seconds() % 60 != 0 {
        return None;
    }
    let email = lines
        .iter()
        .any(|l| l.name == "ACTION" && l.value.eq_ignore_ascii_case("EMAIL"));
    Some(json!({"method": if email { "email" } else { "popup" }, "minutes": minutes}))
}

/// The Google body of one VEVENT's fields. `recurring`: the series has a recurrence rule.
pub(super) fn component_body(
    fields: &BTreeMap<String, Vec<String>>,
    recurring: bool,
    is_master: bool,
) -> Result<(Value, Option<When>), String> {
    let one = |name: &str| first_line(fields, name);
    let all = |name: &str| all_lines(fields, name);
    let mut ev = Map::new();
    let start = When::parse(&one("DTSTART").ok_or("no DTSTART")?)?;
    let end = start.end(one("DTEND").as_ref(), one("DURATION").as_ref())?;
    ev.insert("start".into(), start.google(recurring));
    ev.insert("end".into(), end.google(recurring));
    for (prop, key) in [
        ("SUMMARY", "summary"),
        ("DESCRIPTION", "description"),
        ("LOCATION", "location"),
    ] {
        if let Some(l) = one(prop) {
            ev.insert(key.into(), json!(unescape(&l.value)));
        }
    }
    if is_master {
        let rec: Vec<String> = ["RRULE", "RDATE", "EXDATE"]
            .iter()
            .flat_map(|p| fields.get(*p).into_iter().flatten())
            .map(|l| l.replace("\r\n ", "").replace("\r\n", ""))
            .collect();
        if !rec.is_empty() {
            ev.insert("recurrence".into(), json!(rec));
        }
    }
    if let Some(s) = one("STATUS") {
        if s.value.eq_ignore_ascii_case("TENTATIVE") {
            ev.insert("status".into(), json!("tentative"));
        }
        // A cancelled instance of a series is a cancelled exception (read back as EXDATE);
        // left live, Google would show it as happening.
        if !is_master && s.value.eq_ignore_ascii_case("CANCELLED") {
            ev.insert("status".into(), json!("cancelled"));
        }
    }
    if one("TRANSP").is_some_and(|l| l.value.eq_ignore_ascii_case("TRANSPARENT")) {
        ev.insert("transparency".into(), json!("transparent"));
    }
    if let Some(c) = one("CLASS") {
        let v = c.value.to_ascii_lowercase();
        if ["public", "private", "confidential"].contains(&v.as_str()) {
            ev.insert("visibility".into(), json!(v));
        }
    }
    if let Some(c) = one("COLOR") {
        if let Some((id, _)) = COLORS
            .iter()
            .find(|(_, css)| css.eq_ignore_ascii_case(c.value.trim()))
        {
            ev.insert("colorId".into(), json!(id));
        }
    }
    if let Some(c) = all("CONFERENCE")
        .into_iter()
        .find(|l| l.value.contains("://"))
    {
        ev.insert(
            "conferenceData".into(),
            json!({
                "conferenceSolution": {"key": {"type": "addOn"}, "name": "Video call"},
                "entryPoints": [{"entryPointType": "video", "uri": c.value}],
            }),
        );
    }
    let mut private = Map::new();
    let attendees: Vec<Value> = all("ATTENDEE")
        .into_iter()
        .filter_map(|a| {
            let email = a
                .value
                .strip_prefix("mailto:")
                .or_else(|| a.value.strip_prefix("MAILTO:"))?;
            let mut v = json!({"email": email});
            if let Some(cn) = a.param("CN") {
                v["displayName"] = json!(cn);
            }
            v["responseStatus"] = json!(match a.param("PARTSTAT").unwrap_or("NEEDS-ACTION") {
                "ACCEPTED" => "accepted",
                "DECLINED" => "declined",
                "TENTATIVE" => "tentative",
                _ => "needsAction",
            });
            if a.param("ROLE") == Some("OPT-PARTICIPANT") {
                v["optional"] = json!(true);
            }
            Some(v)
        })
        .collect();
    if !attendees.is_empty() {
        if let Some(o) = one("ORGANIZER") {
            private.insert(ORGANIZER_PROP.into(), json!(o.value));
            if let Some(cn) = o.param("CN") {
                private.insert(ORGANIZER_CN_PROP.into(), json!(cn));
            }
        }
        ev.insert("attendees".into(), json!(attendees));
    }
    let mut shared = Map::new();
    for (name, lines) in fields {
        if name.starts_with("X-") && name.len() <= 44 {
            if let Some(l) = lines
                .first()
                .and_then(|l| parse_lines(l).into_iter().next())
            {
                if l.value.len() <= 1024 {
                    shared.insert(name.clone(), json!(l.value));
                }
            }
        }
    }
    if !shared.is_empty() {
        ev.insert("extendedProperties".into(), json!({"shared": shared}));
    }
    if !private.is_empty() {
        let ext = ev.entry("extendedProperties").or_insert_with(|| json!({}));
        if let Some(ext) = ext.as_object_mut() {
            ext.insert("private".into(), Value::Object(private));
        }
    }
    let overrides: Vec<Value> = fields
        .get("BEGIN:VALARM")
        .into_iter()
        .flatten()
        .filter_map(|b| alarm(b))
        .take(5)
        .collect();
    if overrides.is_empty() {
        ev.insert("reminders".into(), json!({"useDefault": true}));
    } else {
        ev.insert(
            "reminders".into(),
            json!({"useDefault": false, "overrides": overrides}),
        );
    }
    let rid = match one("RECURRENCE-ID") {
        Some(l) => Some(When::parse(&l)?),
        None => None,
    };
    Ok((Value::Object(ev), rid))
}

/// The Google shape of a canonical series. Errors name the offending property.
pub fn to_google(series: &EventSeries) -> Result<GoogleSeries, String> {
    let master_fields = series
        .components
        .get(MASTER)
        .ok_or("series has no master VEVENT (only RECURRENCE-ID overrides)")?;
    let recurring = ["RRULE", "RDATE"]
        .iter()
        .any(|p| master_fields.contains_key(*p));
    let (mut master, _) = component_body(master_fields, recurring, true)?;
    if let Some(body) = master.as_object_mut() {
        let ext = body
            .entry("extendedProperties")
            .or_insert_with(|| json!({}));
        ext["private"][UID_PROP] = json!(series.uid);
        body.insert("iCalUID".into(), json!(series.uid));
    }
    let mut exceptions = Vec::new();
    if recurring {
        for (key, fields) in series
            .components
            .iter()
            .filter(|(k, _)| k.as_str() != MASTER)
        {
            let (mut body, rid) = component_body(fields, true, false)?;
            let mut rid = rid.ok_or_else(|| format!("override {key:?} without RECURRENCE-ID"))?;
            // RFC 5545 §3.8.4.4: RECURRENCE-ID has DTSTART's value type. Some producers give
            // an all-day series date-time RECURRENCE-IDs (`…T000000Z`); Google names the
            // instances of an all-day series by date (`<id>_20021226`), so use the date.
            if master["start"]["date"].is_string() {
                rid = rid.as_date();
            }
            body["originalStartTime"] = rid.google(true);
            body["extendedProperties"]["private"][UID_PROP] = json!(series.uid);
            exceptions.push((rid.instance_suffix(), body));
        }
    }
    Ok(GoogleSeries { master, exceptions })
}

/// An event as it reads back after a round trip through Google: what [`to_google`] keeps,
/// rendered by [`series_to_ical`]. `None` when it cannot be written at all.
pub fn project(ical: &str) -> Option<String> {
    let series = EventSeries::parse_single("hub", ical).ok()?;
    let g = to_google(&series).ok()?;
    let master_id = "projection";
    let mut master = g.master.clone();
    master["id"] = json!(master_id);
    let mut items = vec![master];
    for (suffix, mut body) in g.exceptions {
        body["id"] = json!(format!("{master_id}_{suffix}"));
        body["recurringEventId"] = json!(master_id);
        items.push(body);
    }
    let refs: Vec<&Value> = items.iter().collect();
    series_to_ical(&refs).ok()
}
