//! Canonical event model and iCalendar (RFC 5545) parse / write / expand.
//!
//! Parsing, writing of content lines, time-zone resolution (VTIMEZONE, IANA and Windows
//! names) and RRULE expansion are done by the `calcard` crate; this module groups the parsed
//! components into [`EventSeries`] — one UID, the master plus its RECURRENCE-ID overrides
//! (RFC 4791 §4.1: one calendar object resource per UID) — and gives the sync engine a
//! field-level view of an event for three-way merging.
//!
//! A series is held as a map of *fields*: for each component (key `""` for the master, the
//! RECURRENCE-ID content line for an override) the property name maps to the list of content
//! lines carrying that property, as written by calcard (so the same value always has the same
//! text). Nested components such as VALARM are fields named `BEGIN:VALARM`. Properties that
//! servers and clients rewrite without a user edit ([`VOLATILE`]) are kept but ignored when
//! comparing content.

mod guarded;
pub mod lines;
pub mod repair;
mod scheduling;
pub mod text;
mod zones;

pub(crate) use guarded::parse_guarded;
use guarded::{guard, rrule_value};
pub use guarded::{rrule_by_product, MAX_BY_PRODUCT, MAX_DEPTH};
pub use scheduling::schedule_agent_client;
use zones::normalize_windows_tzids;
pub use zones::windows_to_iana;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use calcard::common::timezone::Tz;
use calcard::icalendar::dates::TimeOrDelta;
use calcard::icalendar::{ICalendar, ICalendarComponentType, ICalendarProperty};
use calcard::Entry;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Properties that change without a user edit (timestamps, sequence) and are ignored when
/// comparing two versions of an event.
pub const VOLATILE: &[&str] = &["DTSTAMP", "LAST-MODIFIED", "CREATED", "SEQUENCE"];

/// Key of the master component in [`EventSeries::components`].
pub const MASTER: &str = "";

/// Property name to list of content lines (each ending in CRLF, folded at 75 octets).
pub type Fields = BTreeMap<String, Vec<String>>;

/// Error produced while reading iCalendar data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: line {line}: {reason}")]
pub struct IcalError {
    /// Name of the input (file path, href or URL) the data came from.
    pub source_name: String,
    /// 1-based line number of the offending line (0 when not known).
    pub line: usize,
    /// What is wrong, in words.
    pub reason: String,
}

/// One event series: every VEVENT of one UID plus the VTIMEZONEs they reference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventSeries {
    /// The iCalendar UID (RFC 5545 §3.8.4.7) shared by all components.
    pub uid: String,
    /// Component key ([`MASTER`] or the RECURRENCE-ID line) to its fields.
    pub components: BTreeMap<String, Fields>,
    /// TZID to the VTIMEZONE block (BEGIN..END, CRLF lines).
    pub timezones: BTreeMap<String, String>,
}

/// One expanded occurrence, in UTC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Occurrence {
    /// UID of the series.
    pub uid: String,
    /// Start instant (UTC). All-day and floating times are read in UTC.
    pub start: DateTime<Utc>,
    /// End instant (UTC), exclusive.
    pub end: DateTime<Utc>,
    /// SUMMARY of the component that produced the occurrence (empty when absent).
    pub summary: String,
}

/// Result of parsing a whole calendar: the series that parsed, and one error per series
/// that did not (missing UID, invalid DTSTART, invalid RRULE, ...).
#[derive(Debug, Default)]
pub struct ParsedCalendar {
    /// Series keyed by nothing in particular, in input order.
    pub series: Vec<EventSeries>,
    /// Per-series problems; the UID is given where one was found.
    pub errors: Vec<(Option<String>, IcalError)>,
}

fn line_of(text: &str, needle: &str) -> usize {
    let needle = needle.trim();
    if needle.is_empty() {
        return 0;
    }
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(0)
}

fn entry_error(source_name: &str, text: &str, entry: Entry) -> IcalError {
    let (line, reason) = match entry {
        Entry::InvalidLine(l) => (line_of(text, &l), format!("invalid line {l:?}")),
        Entry::UnexpectedComponentEnd { expected, found } => (
            line_of(text, &format!("END:{}", found.as_str())),
            format!(
                "unexpected END:{} while in {}",
                found.as_str(),
                expected.as_str()
            ),
        ),
        Entry::UnterminatedComponent(c) => (
            text.lines().count(),
            format!("component {c} is not terminated"),
        ),
        Entry::TooManyComponents => (0, "too many components".into()),
        Entry::VCard(_) => (1, "expected VCALENDAR, found VCARD".into()),
        Entry::Eof => (0, "no VCALENDAR object found".into()),
        _ => (0, "unexpected content".into()),
    };
    IcalError {
        source_name: source_name.to_string(),
        line,
        reason,
    }
}

/// Write the component `id` and its subtree (iterative: depth is bounded by
/// [`prune_deep`], but the writer does not rely on it).
fn write_subtree(ical: &ICalendar, id: u32, out: &mut String) {
    enum Step {
        Open(u32),
        Close(u32),
    }
    let mut steps = vec![Step::Open(id)];
    while let Some(step) = steps.pop() {
        match step {
            Step::Open(id) => {
                let Some(comp) = ical.components.get(id as usize) else {
                    continue;
                };
                let _ = write!(out, "BEGIN:{}\r\n", comp.component_type.as_str());
                for e in &comp.entries {
                    let _ = e.write_to(out);
                }
                steps.push(Step::Close(id));
                steps.extend(comp.component_ids.iter().rev().map(|&c| Step::Open(c)));
            }
            Step::Close(id) => {
                if let Some(comp) = ical.components.get(id as usize) {
                    let _ = write!(out, "END:{}\r\n", comp.component_type.as_str());
                }
            }
        }
    }
}

fn entry_line(e: &calcard::icalendar::ICalendarEntry) -> String {
    let mut s = String::new();
    let _ = e.write_to(&mut s);
    s
}

/// Parse an iCalendar stream (one VCALENDAR) into event series grouped by UID.
///
/// `source_name` names the input in errors. A stream that cannot be read at all is an
/// `Err` naming the line; a series with a problem (no DTSTART, unreadable date, invalid
/// RRULE, no UID) is reported in [`ParsedCalendar::errors`] while the others are returned.
pub fn parse_calendar(source_name: &str, text: &str) -> Result<ParsedCalendar, IcalError> {
    // Real-world files that are not quite RFC 5545 are repaired first (see [`repair`]).
    let repaired = repair::repair(text);
    let text: &str = &repaired;
    let (ical, too_deep) = match parse_guarded(text) {
        Some(Ok(i)) => i,
        Some(Err(e)) => return Err(entry_error(source_name, text, e)),
        None => {
            return Err(IcalError {
                source_name: source_name.into(),
                line: 0,
                reason: "the iCalendar parser failed on this input".into(),
            })
        }
    };
    let mut ical = ical;
    normalize_windows_tzids(&mut ical);
    if !matches!(
        ical.components.first().map(|c| &c.component_type),
        Some(ICalendarComponentType::VCalendar)
    ) {
        return Err(IcalError {
            source_name: source_name.into(),
            line: 1,
            reason: "expected BEGIN:VCALENDAR".into(),
        });
    }
    // Per-component validity from calcard's expansion (bounded to a handful of instances).
    let expand = guard(|| ical.expand_dates(Tz::UTC, 4)).unwrap_or_default();
    let mut bad: BTreeMap<u32, String> = BTreeMap::new();
    for e in &expand.errors {
        bad.insert(e.comp_id, format!("{:?}", e.error));
    }
    for id in too_deep {
        bad.insert(id, format!("components nested deeper than {MAX_DEPTH}"));
    }

    let mut timezones: BTreeMap<String, String> = BTreeMap::new();
    for (id, comp) in ical.components.iter().enumerate() {
        if comp.component_type == ICalendarComponentType::VTimezone {
            let tzid = comp
                .property(&ICalendarProperty::Tzid)
                .and_then(|e| e.values.first())
                .and_then(|v| v.as_text());
            if let Some(tzid) = tzid {
                let mut s = String::new();
                write_subtree(&ical, id as u32, &mut s);
                timezones.insert(tzid.to_string(), s);
            }
        }
    }

    let mut out = ParsedCalendar::default();
    let mut by_uid: BTreeMap<String, (usize, EventSeries)> = BTreeMap::new();
    let mut failed_uids: BTreeMap<String, IcalError> = BTreeMap::new();
    let top_level = ical.components[0].component_ids.clone();
    for id in top_level {
        let comp = &ical.components[id as usize];
        if comp.component_type != ICalendarComponentType::VEvent {
            continue;
        }
        let uid = comp.uid().map(str::to_string);
        let first_line = comp.entries.first().map(entry_line).unwrap_or_default();
        let err_at = |reason: String| IcalError {
            source_name: source_name.into(),
            line: line_of(text, first_line.lines().next().unwrap_or("")),
            reason,
        };
        let Some(uid) = uid.filter(|u| !u.trim().is_empty()) else {
            out.errors
                .push((None, err_at("VEVENT without UID".to_string())));
            continue;
        };
        if let Some(reason) = bad.get(&id) {
            failed_uids.insert(uid.clone(), err_at(format!("UID {uid}: {reason}")));
            continue;
        }
        // An RRULE calcard could not read as a RECUR value (RFC 5545 §3.3.10) would be kept
        // as text, expanded as no rule at all, and written back escaped once more on every
        // round (a fuzz finding): the event is refused with the rule named.
        if let Some(bad_rule) = comp.entries.iter().find(|e| {
            e.name == ICalendarProperty::Rrule
                && !e
                    .values
                    .iter()
                    .all(|v| matches!(v, calcard::icalendar::ICalendarValue::RecurrenceRule(_)))
        }) {
            let line = entry_line(bad_rule);
            let shown: String = line.trim_end().chars().take(80).collect();
            failed_uids.insert(
                uid.clone(),
                err_at(format!(
                    "UID {uid}: {shown:?} is not a recurrence rule (RFC 5545 §3.3.10)"
                )),
            );
            continue;
        }
        let mut fields = Fields::new();
        let mut key = MASTER.to_string();
        for e in &comp.entries {
            let line = entry_line(e);
            if e.name == ICalendarProperty::RecurrenceId {
                key = line.trim_end().to_string();
            }
            fields
                .entry(e.name.as_str().to_ascii_uppercase())
                .or_default()
                .push(line);
        }
        let by_product = fields
            .get("RRULE")
            .into_iter()
            .flatten()
            .map(|l| rrule_by_product(&rrule_value(l)))
            .max()
            .unwrap_or(1);
        if by_product > MAX_BY_PRODUCT {
            failed_uids.insert(
                uid.clone(),
                err_at(format!(
                    "UID {uid}: RRULE generates up to {by_product} instants per period (the BY* lists multiply; limit {MAX_BY_PRODUCT})"
                )),
            );
            continue;
        }
        for child in &comp.component_ids {
            let c = &ical.components[*child as usize];
            let mut s = String::new();
            write_subtree(&ical, *child, &mut s);
            fields
                .entry(format!("BEGIN:{}", c.component_type.as_str()))
                .or_default()
                .push(s);
        }
        let n = by_uid.len();
        let slot = by_uid.entry(uid.clone()).or_insert_with(|| {
            (
                n,
                EventSeries {
                    uid: uid.clone(),
                    ..Default::default()
                },
            )
        });
        if slot.1.components.insert(key.clone(), fields).is_some() {
            failed_uids.insert(
                uid.clone(),
                err_at(format!(
                    "UID {uid}: two components with the same key {key:?}"
                )),
            );
        }
    }
    let mut ordered: Vec<(usize, EventSeries)> = by_uid.into_values().collect();
    ordered.sort_by_key(|(i, _)| *i);
    for (_, mut s) in ordered {
        if let Some(err) = failed_uids.remove(&s.uid) {
            out.errors.push((Some(s.uid.clone()), err));
            continue;
        }
        s.timezones = s
            .referenced_tzids()
            .into_iter()
            .filter_map(|t| timezones.get(&t).map(|b| (t, b.clone())))
            .collect();
        out.series.push(s);
    }
    for (uid, err) in failed_uids {
        out.errors.push((Some(uid), err));
    }
    Ok(out)
}

/// Write several series as one VCALENDAR stream (CRLF line endings).
pub fn write_calendar<'a>(series: impl IntoIterator<Item = &'a EventSeries>) -> String {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//EN\r\n");
    let mut tzs = BTreeMap::new();
    let mut body = String::new();
    for s in series {
        for (k, v) in &s.timezones {
            tzs.entry(k.clone()).or_insert_with(|| v.clone());
        }
        s.write_components(&mut body);
    }
    for v in tzs.values() {
        out.push_str(v);
    }
    out.push_str(&body);
    out.push_str("END:VCALENDAR\r\n");
    out
}

impl EventSeries {
    /// Parse a calendar object resource holding exactly one UID (RFC 4791 §4.1).
    ///
    /// Errors: unreadable data, no VEVENT, more than one UID, or an invalid component.
    pub fn parse_single(source_name: &str, text: &str) -> Result<Self, IcalError> {
        let mut parsed = parse_calendar(source_name, text)?;
        if let Some((_, e)) = parsed.errors.pop() {
            return Err(e);
        }
        match parsed.series.len() {
            1 if parsed.series.len() == 1 => match parsed.series.pop() {
                Some(s) => Ok(s),
                None => Err(IcalError {
                    source_name: source_name.into(),
                    line: 0,
                    reason: "no VEVENT".into(),
                }),
            },
            0 => Err(IcalError {
                source_name: source_name.into(),
                line: 0,
                reason: "no VEVENT found".into(),
            }),
            n => Err(IcalError {
                source_name: source_name.into(),
                line: 0,
                reason: format!("{n} UIDs in one calendar object resource"),
            }),
        }
    }

    fn write_components(&self, out: &mut String) {
        // Master first, then overrides in key order.
        for fields in self.components.values() {
            out.push_str("BEGIN:VEVENT\r\n");
            let mut nested = Vec::new();
            for (name, lines) in fields {
                if name.starts_with("BEGIN:") {
                    nested.extend(lines.iter());
                } else {
                    lines.iter().for_each(|l| out.push_str(l));
                }
            }
            nested.into_iter().for_each(|l| out.push_str(l));
            out.push_str("END:VEVENT\r\n");
        }
    }

    /// The series as a complete VCALENDAR object (RFC 5545), CRLF line endings.
    pub fn to_ical(&self) -> String {
        write_calendar(std::iter::once(self))
    }

    /// TZIDs referenced by any property of any component.
    pub fn referenced_tzids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for fields in self.components.values() {
            for lines in fields.values() {
                for l in lines {
                    let head = l.split(':').next().unwrap_or("");
                    for p in head.split(';').skip(1) {
                        if let Some(v) = p.strip_prefix("TZID=") {
                            let v = v.trim_matches('"').to_string();
                            if !out.contains(&v) {
                                out.push(v);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The fields of the master component, if the series has one.
    pub fn master(&self) -> Option<&Fields> {
        self.components.get(MASTER)
    }

    /// Text value of a property of the master (or first) component, unescaped.
    pub fn text(&self, prop: &str) -> Option<String> {
        let fields = self.master().or_else(|| self.components.values().next())?;
        let line = fields.get(prop)?.first()?;
        let ical = ICalendar::parse(format!(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n{line}END:VEVENT\r\nEND:VCALENDAR\r\n"
        ))
        .ok()?;
        let comp = ical.components.get(1)?;
        comp.entries
            .first()
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_text())
            .map(str::to_string)
    }

    /// SUMMARY of the series (master), or empty.
    pub fn summary(&self) -> String {
        self.text("SUMMARY").unwrap_or_default()
    }

    /// Fields with the [`VOLATILE`] properties removed, for content comparison.
    pub fn content(&self) -> BTreeMap<String, Fields> {
        self.components
            .iter()
            .map(|(k, f)| {
                let f = f
                    .iter()
                    .filter(|(n, _)| !VOLATILE.contains(&n.as_str()))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                (k.clone(), f)
            })
            .collect()
    }

    /// True when both versions carry the same content (volatile properties ignored).
    pub fn same_content(&self, other: &EventSeries) -> bool {
        self.content() == other.content()
    }

    /// SHA-256 (hex) of the content (volatile properties ignored): a stable version tag.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for (k, fields) in self.content() {
            h.update(k.as_bytes());
            h.update([0]);
            for (n, lines) in fields {
                h.update(n.as_bytes());
                for l in lines {
                    h.update(l.as_bytes());
                }
                h.update([1]);
            }
        }
        hex::encode(h.finalize())
    }

    /// Expand into occurrences starting in `[from, to)` (UTC).
    ///
    /// Expansion is bounded by `limit` generated instances per rule (counted from the first
    /// instance), so that SECONDLY/MINUTELY rules cannot run away; the bool is `true` when
    /// the bound was reached before `to`.
    pub fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> (Vec<Occurrence>, bool) {
        occurrences_of(&self.to_ical(), from, to, limit)
    }
}

/// Expand every VEVENT of a VCALENDAR text into occurrences starting in `[from, to)` (UTC);
/// see [`EventSeries::occurrences`] for the bound.
pub fn occurrences_of(
    text: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> (Vec<Occurrence>, bool) {
    let Some(Ok((ical, _))) = parse_guarded(text) else {
        return (Vec::new(), false);
    };
    let Some(expand) = guard(|| ical.expand_dates(Tz::UTC, limit)) else {
        return (Vec::new(), false);
    };
    let truncated = expand.events.len() >= limit;
    let mut out = Vec::new();
    for ev in expand.events {
        let Some(comp) = ical.components.get(ev.comp_id as usize) else {
            continue;
        };
        if comp.component_type != ICalendarComponentType::VEvent {
            continue;
        }
        let start = ev.start.to_utc();
        let end = match ev.end {
            TimeOrDelta::Time(t) => t.to_utc(),
            TimeOrDelta::Delta(d) => match start.checked_add_signed(d) {
                Some(end) => end,
                None => continue,
            },
        };
        if start < from || start >= to {
            continue;
        }
        let summary = comp
            .property(&ICalendarProperty::Summary)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_text())
            .unwrap_or("")
            .to_string();
        out.push(Occurrence {
            uid: comp.uid().unwrap_or("").to_string(),
            start,
            end,
            summary,
        });
    }
    out.sort();
    out.dedup();
    (out, truncated)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "hostile_tests.rs"]
mod hostile_tests;
