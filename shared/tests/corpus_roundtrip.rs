//! Round trip over every `.ics` file of `../shared/corpus/ics`: parse -> model -> write ->
//! parse must give the same occurrence set (UID, start, end, summary) over 2000–2030.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use calsync::ical::{occurrences_of, parse_calendar, write_calendar, Occurrence};
use chrono::{TimeZone, Utc};

const LIMIT: usize = 20_000;

/// Files where calcard's expansion of the *original* depends on component order: a
/// RECURRENCE-ID component that also carries an RRULE is listed before its master. We write
/// the master first, and calcard then yields instances of the master that the original order
/// hid. Each entry must still keep every original occurrence.
const ORDER_DEPENDENT: &[&str] = &[
    "recurring-ical-events/issue_253_additional_recurrence_id.ics",
    "recurring-ical-events/issue_253_edge_case_1.ics",
    "recurring-ical-events/issue_253_recurrence_id_included.ics",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/ics")
}

fn ics_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            ics_files(&p, out);
        } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ics")) {
            out.push(p);
        }
    }
}

#[test]
fn corpus_round_trip_keeps_occurrences() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        println!(
            "SKIPPED: corpus not found at {} (shared/ absent)",
            dir.display()
        );
        return;
    }
    let mut files = Vec::new();
    ics_files(&dir, &mut files);
    files.sort();
    assert!(
        files.len() > 100,
        "expected the corpus, found {} files",
        files.len()
    );
    let from = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let (mut ok, mut with_events, mut errored, mut mismatched) = (0, 0, Vec::new(), Vec::new());
    let mut event_errors = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let name = f.strip_prefix(&dir).unwrap().display().to_string();
        let parsed = match parse_calendar(&name, &text) {
            Ok(p) => p,
            Err(e) => {
                errored.push(e.to_string());
                continue;
            }
        };
        event_errors += parsed.errors.len();
        let uids: BTreeSet<&str> = parsed.series.iter().map(|s| s.uid.as_str()).collect();
        // Occurrences of what was read: the text after calsync's documented repairs of
        // not-quite-RFC-5545 input (derived UIDs, periods as overrides, …; see
        // `ical::repair`, whose own tests check that a repair keeps the occurrences).
        let repaired = calsync::ical::repair::repair(&text);
        let (orig, _) = occurrences_of(&repaired, from, to, LIMIT);
        let orig: BTreeSet<Occurrence> = orig
            .into_iter()
            .filter(|o| uids.contains(o.uid.as_str()))
            .collect();
        let written = write_calendar(&parsed.series);
        let reparsed = parse_calendar(&name, &written)
            .unwrap_or_else(|e| panic!("{name}: our own output does not parse: {e}"));
        assert_eq!(
            reparsed.series, parsed.series,
            "{name}: model changed in round trip"
        );
        let (again, _) = occurrences_of(&written, from, to, LIMIT);
        let again: BTreeSet<Occurrence> = again.into_iter().collect();
        if !parsed.series.is_empty() {
            with_events += 1;
        }
        if orig == again {
            ok += 1;
        } else if ORDER_DEPENDENT.contains(&name.as_str()) {
            assert!(orig.is_subset(&again), "{name}: occurrences lost");
            ok += 1;
        } else {
            let missing = orig.difference(&again).next().cloned();
            let extra = again.difference(&orig).next().cloned();
            mismatched.push(format!("{name}: missing {missing:?} extra {extra:?}"));
        }
    }
    println!(
        "corpus round trip: {} files, {ok} round-tripped ({with_events} with events), {} errored, {} mismatched, {event_errors} events reported as errors",
        files.len(),
        errored.len(),
        mismatched.len()
    );
    for e in &errored {
        println!("  errored: {e}");
    }
    for m in &mismatched {
        println!("  MISMATCH: {m}");
    }
    assert!(
        mismatched.is_empty(),
        "{} files changed occurrences",
        mismatched.len()
    );
}
