//! Repairs of real-world iCalendar that is not quite RFC 5545, applied to the text before it
//! is parsed, so that what calsync reads it can also write to any server. Each repair is a
//! documented choice (issue 13, item 6):
//!
//! - **A VEVENT without UID** (Exchange 2010 publishing, festival and event sites) gets
//!   `UID:derived-<hash>@calsync` where the hash is SHA-256 over the component's content lines
//!   except the timestamps ([`super::VOLATILE`]): stable across refreshes of the same feed,
//!   different for different events. An event edited at its source gets a new UID (the old
//!   one is removed), which is all a feed without UIDs allows.
//! - **`VALUE=DATE` on a date-time value** (`DTSTART;VALUE=DATE:20240101T100000`) is read as
//!   the date-time it carries: the parameter is dropped.
//! - **An all-day series whose `UNTIL` is a date-time** (RFC 5545 §3.3.10: UNTIL must have
//!   DTSTART's value type): UNTIL becomes the date of that date-time.
//! - **`RDATE;VALUE=PERIOD`** (§3.8.5.2), refused by servers built on python-icalendar
//!   (Radicale) and not representable in Google or Graph: each period becomes an RDATE of its
//!   start plus an override (`RECURRENCE-ID` = the start) whose DTEND is the period's end —
//!   the same occurrences, in a shape every server and provider takes.
//! - **Control characters** other than HTAB (NUL, DEL, …), which no content line may carry
//!   (RFC 5545 §3.1: `VALUE-CHAR`, `SAFE-CHAR` and `QSAFE-CHAR` all exclude CTL), are
//!   removed: a value carrying them could not be written back the way it was read.
//! - **A line that is not a content line** (§3.1: `name *(";" param) ":" value`, the name a
//!   token of letters, digits and `-`; `_` is kept, some exporters use it): when its value
//!   can still be told apart (the first `:` outside double quotes), its parameters are
//!   rewritten — one without `name=` dropped, a value with stray `"` unquoted and quoted
//!   whole when it holds `;`, `:` or `,` — so a parser reads it one way only; otherwise it is
//!   dropped (it names no property, and a parser can only guess where its value starts,
//!   differently on every read).

use sha2::{Digest, Sha256};

mod syntax;
use syntax::{content_line, head_end, name_of, params_of, unfold, value_of};

/// Apply every repair to `text`; returns the text unchanged (borrowed) when none applied.
pub fn repair(text: &str) -> std::borrow::Cow<'_, str> {
    match without_controls(text) {
        std::borrow::Cow::Borrowed(t) => repair_lines(t),
        std::borrow::Cow::Owned(t) => std::borrow::Cow::Owned(repair_lines(&t).into_owned()),
    }
}

/// `text` without the control characters RFC 5545 §3.1 allows nowhere (all but HTAB and
/// the CR LF that end lines).
fn without_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let stray = |c: char| c.is_control() && !matches!(c, '\t' | '\r' | '\n');
    if text.contains(stray) {
        std::borrow::Cow::Owned(text.chars().filter(|c| !stray(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn repair_lines(text: &str) -> std::borrow::Cow<'_, str> {
    let needs = text.contains("VALUE=DATE:")
        || text.contains("VALUE=PERIOD")
        || text.contains("UNTIL=")
        || missing_uid(text)
        || text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .any(|l| !l.starts_with([' ', '\t']) && !l.is_empty() && head_end(l).is_none());
    if !needs {
        return std::borrow::Cow::Borrowed(text);
    }
    let read = unfold(text);
    let lines: Vec<String> = read.iter().filter_map(|l| content_line(l)).collect();
    let mut changed = lines != read;
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut extra: Vec<Vec<String>> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].eq_ignore_ascii_case("BEGIN:VEVENT") {
            let Some(len) = lines[i..]
                .iter()
                .position(|l| l.eq_ignore_ascii_case("END:VEVENT"))
            else {
                out.extend(lines[i..].iter().cloned());
                break;
            };
            let block = &lines[i..=i + len];
            let (fixed, overrides) = repair_event(block);
            changed |= fixed.as_slice() != block || !overrides.is_empty();
            out.extend(fixed);
            extra.extend(overrides);
            i += len + 1;
            continue;
        }
        if lines[i].eq_ignore_ascii_case("END:VCALENDAR") {
            // Overrides made from periods go in the same calendar, after the events.
            for o in extra.drain(..) {
                out.extend(o);
            }
        }
        out.push(lines[i].clone());
        i += 1;
    }
    for o in extra.drain(..) {
        out.extend(o);
    }
    if !changed {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut s = out.join("\r\n");
    s.push_str("\r\n");
    std::borrow::Cow::Owned(s)
}

/// True when some VEVENT of `text` has no UID line (a cheap scan).
fn missing_uid(text: &str) -> bool {
    let mut in_event = false;
    let mut depth = 0usize;
    let mut has = false;
    for line in text.lines() {
        let l = line.trim_end_matches('\r');
        if l.eq_ignore_ascii_case("BEGIN:VEVENT") {
            in_event = true;
            depth = 0;
            has = false;
        } else if in_event
            && l.len() > 6
            && l.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("BEGIN:"))
        {
            depth += 1;
        } else if in_event && l.eq_ignore_ascii_case("END:VEVENT") {
            if !has {
                return true;
            }
            in_event = false;
        } else if in_event
            && l.len() > 4
            && l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("END:"))
        {
            depth = depth.saturating_sub(1);
        } else if in_event && depth == 0 && name_of(l) == "UID" {
            has = true;
        }
    }
    false
}

/// Repair one VEVENT block (`BEGIN:VEVENT` … `END:VEVENT`, unfolded); returns the block and
/// the overrides made from its periods.
fn repair_event(block: &[String]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines: Vec<String> = block.to_vec();
    // Top-level lines only (depth 0 inside the VEVENT).
    let top = |lines: &[String]| -> Vec<usize> {
        let mut depth = 0usize;
        let mut idx = Vec::new();
        for (i, l) in lines.iter().enumerate().skip(1) {
            let n = name_of(l);
            if n == "BEGIN" {
                depth += 1;
            } else if n == "END" {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else if depth == 0 {
                idx.push(i);
            }
        }
        idx
    };
    // VALUE=DATE on a date-time value.
    for i in top(&lines) {
        let l = &lines[i];
        let v = value_of(l);
        if params_of(l).to_ascii_uppercase().contains(";VALUE=DATE")
            && !params_of(l)
                .to_ascii_uppercase()
                .contains(";VALUE=DATE-TIME")
            && v.len() >= 15
            && v.as_bytes().get(8) == Some(&b'T')
        {
            lines[i] = drop_param(l, "VALUE");
        }
    }
    // UNTIL of an all-day series.
    let all_day = top(&lines).iter().any(|&i| {
        name_of(&lines[i]) == "DTSTART"
            && params_of(&lines[i])
                .to_ascii_uppercase()
                .contains("VALUE=DATE")
            && !value_of(&lines[i]).contains('T')
    });
    if all_day {
        for i in top(&lines) {
            if name_of(&lines[i]) == "RRULE" {
                lines[i] = until_as_date(&lines[i]);
            }
        }
    }
    // Periods.
    let mut overrides = Vec::new();
    if top(&lines).iter().any(|&i| {
        name_of(&lines[i]) == "RDATE"
            && params_of(&lines[i])
                .to_ascii_uppercase()
                .contains("VALUE=PERIOD")
    }) {
        let idx = top(&lines);
        overrides = split_periods(&mut lines, &idx);
    }
    // UID.
    if !top(&lines).iter().any(|&i| name_of(&lines[i]) == "UID") {
        let mut h = Sha256::new();
        for &i in &top(&lines) {
            if !super::VOLATILE.contains(&name_of(&lines[i]).as_str()) {
                h.update(lines[i].as_bytes());
                h.update(b"\n");
            }
        }
        let uid = format!("derived-{}@calsync", &hex::encode(h.finalize())[..24]);
        lines.insert(1, format!("UID:{uid}"));
        for o in &mut overrides {
            o.insert(1, format!("UID:{uid}"));
        }
    }
    (lines, overrides)
}

/// `line` without the parameter `name`.
fn drop_param(line: &str, name: &str) -> String {
    let v = value_of(line);
    let head = line.get(..line.len() - v.len()).unwrap_or(line);
    let head = head.strip_suffix(':').unwrap_or(head);
    let mut parts = head.split(';');
    let prop = parts.next().unwrap_or("");
    let kept: Vec<&str> = parts
        .filter(|p| {
            !p.to_ascii_uppercase()
                .starts_with(&format!("{}=", name.to_ascii_uppercase()))
        })
        .collect();
    let mut out = prop.to_string();
    for p in kept {
        out.push(';');
        out.push_str(p);
    }
    out.push(':');
    out.push_str(v);
    out
}

/// An RRULE line with `UNTIL=<date>T<time>[Z]` cut to `UNTIL=<date>`.
fn until_as_date(line: &str) -> String {
    let v = value_of(line);
    let parts: Vec<String> = v
        .split(';')
        .map(|p| match p.split_once('=') {
            Some((k, u))
                if k.eq_ignore_ascii_case("UNTIL")
                    && u.len() > 8
                    && u.as_bytes().get(8) == Some(&b'T') =>
            {
                format!("UNTIL={}", u.get(..8).unwrap_or(u))
            }
            _ => p.to_string(),
        })
        .collect();
    let head = line.get(..line.len() - v.len()).unwrap_or(line);
    format!("{head}{}", parts.join(";"))
}

/// Turn the RDATE;VALUE=PERIOD lines of an event into RDATEs of the starts, and return one
/// override per period (the master's top-level lines, less its rules, with
/// RECURRENCE-ID and DTSTART at the start and DTEND at the period's end).
fn split_periods(lines: &mut [String], top: &[usize]) -> Vec<Vec<String>> {
    let dropped = [
        "RRULE",
        "RDATE",
        "EXDATE",
        "EXRULE",
        "RECURRENCE-ID",
        "DTSTART",
        "DTEND",
        "DURATION",
    ];
    let mut overrides = Vec::new();
    // A start given twice is one instance (RFC 5545 §3.8.5.2: the recurrence set is a set);
    // two overrides of it could not both stand.
    let mut seen = std::collections::BTreeSet::new();
    let has_recurrence_id = top.iter().any(|&i| name_of(&lines[i]) == "RECURRENCE-ID");
    for &i in top {
        let l = lines[i].clone();
        if name_of(&l) != "RDATE" || !params_of(&l).to_ascii_uppercase().contains("VALUE=PERIOD") {
            continue;
        }
        let params = drop_param(&l, "VALUE");
        let params = params_of(&params).to_string();
        let mut starts = Vec::new();
        for period in value_of(&l).split(',') {
            let Some((start, end)) = period.split_once('/') else {
                continue;
            };
            if !seen.insert(start.to_string()) {
                continue;
            }
            starts.push(start.to_string());
            if has_recurrence_id {
                continue; // an override's own RDATE: no nested overrides
            }
            let end_line = if end.starts_with('P') || end.starts_with("-P") || end.starts_with("+P")
            {
                format!("DURATION:{end}")
            } else {
                format!("DTEND{params}:{end}")
            };
            let mut o = vec!["BEGIN:VEVENT".to_string()];
            o.push(format!("RECURRENCE-ID{params}:{start}"));
            o.push(format!("DTSTART{params}:{start}"));
            o.push(end_line);
            for &j in top {
                if !dropped.contains(&name_of(&lines[j]).as_str()) {
                    o.push(lines[j].clone());
                }
            }
            o.push("END:VEVENT".to_string());
            overrides.push(o);
        }
        lines[i] = format!("RDATE{params}:{}", starts.join(","));
    }
    overrides
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::EventSeries;

    fn cal(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{body}END:VCALENDAR\r\n")
    }

    #[test]
    fn untouched_text_is_borrowed() {
        let t = cal("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20270101T100000Z\r\nEND:VEVENT\r\n");
        assert!(matches!(repair(&t), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn a_missing_uid_is_derived_stably_from_the_content() {
        let ev = |summary: &str, stamp: &str| {
            cal(&format!("BEGIN:VEVENT\r\nSUMMARY:{summary}\r\nDTSTART;VALUE=DATE:20140409\r\nDTSTAMP:{stamp}\r\nEND:VEVENT\r\n"))
        };
        let uid = |t: &str| {
            EventSeries::parse_single("t", t)
                .map(|s| s.uid)
                .unwrap_or_default()
        };
        let a = uid(&ev("An Event", "20140401T234817Z"));
        assert!(a.starts_with("derived-") && a.ends_with("@calsync"), "{a}");
        assert_eq!(
            a,
            uid(&ev("An Event", "20261201T000000Z")),
            "a refresh (new DTSTAMP) keeps it"
        );
        assert_ne!(a, uid(&ev("Another", "20140401T234817Z")));
    }

    #[test]
    fn value_date_on_a_date_time_is_a_date_time() {
        let t = cal("BEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20270101T100000\r\nDTEND;VALUE=DATE:20270101T110000\r\nEND:VEVENT\r\n");
        let s = EventSeries::parse_single("t", &t).expect("readable after repair");
        let start = s
            .master()
            .and_then(|m| m.get("DTSTART"))
            .map(|v| v.concat())
            .unwrap_or_default();
        assert!(start.starts_with("DTSTART:20270101T100000"), "{start}");
    }

    #[test]
    fn an_all_day_series_gets_a_date_until() {
        let t = cal("BEGIN:VEVENT\r\nUID:u\r\nDTSTART;VALUE=DATE:20270101\r\nRRULE:FREQ=DAILY;UNTIL=20270105T000000Z\r\nEND:VEVENT\r\n");
        let s = EventSeries::parse_single("t", &t).unwrap();
        let rule = s
            .master()
            .and_then(|m| m.get("RRULE"))
            .map(|v| v.concat())
            .unwrap_or_default();
        assert!(
            rule.contains("UNTIL=20270105") && !rule.contains("UNTIL=20270105T"),
            "{rule}"
        );
    }

    #[test]
    fn periods_become_rdates_and_overrides_with_the_same_occurrences() {
        use chrono::TimeZone;
        let t = cal("BEGIN:VEVENT\r\nUID:p\r\nSUMMARY:Talk\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\nRDATE;VALUE=PERIOD:20270105T100000Z/20270105T130000Z,20270107T090000Z/PT30M\r\nEND:VEVENT\r\n");
        let s = EventSeries::parse_single("t", &t).unwrap();
        let out = s.to_ical();
        assert!(!out.contains("PERIOD"), "{out}");
        assert_eq!(s.components.len(), 3, "master and two overrides: {out}");
        let from = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let to = chrono::Utc.with_ymd_and_hms(2028, 1, 1, 0, 0, 0).unwrap();
        let (occ, _) = s.occurrences(from, to, 100);
        let starts: std::collections::BTreeSet<String> = occ
            .iter()
            .map(|o| o.start.format("%m%dT%H%M").to_string())
            .collect();
        assert_eq!(
            starts.into_iter().collect::<Vec<_>>(),
            ["0101T1000", "0105T1000", "0107T0900"]
        );
        // Each period's end is on its override (the RFC 5545 reading of an override
        // replacing the instance it names).
        let ends: Vec<String> = s
            .components
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(_, f)| {
                f.get("DTEND")
                    .or_else(|| f.get("DURATION"))
                    .map(|v| v.concat())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(ends, ["DTEND:20270105T130000Z\r\n", "DURATION:PT30M\r\n"]);
        assert!(occ.iter().all(|o| o.summary == "Talk"));
    }
}
