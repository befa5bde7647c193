//! The demo's calendar: read the file (or the built-in sample), repair and parse it, and
//! import calsync's own serialization of each series into Radicale, as a client that read
//! the file would write it.

use anyhow::Context as _;
use calsync::config::Ctx;
use calsync::ical::{parse_calendar, ParsedCalendar};

use super::SAMPLE;
use crate::fixtures;

/// What the import did.
pub struct Imported {
    /// The file as calsync read it.
    pub parsed: ParsedCalendar,
    /// Series Radicale refused.
    pub rejected: usize,
    /// The file has VEVENTs at all (an import of none of them is a failure).
    pub had_events: bool,
}

/// Read `ics` (a path; `None`: the built-in sample) and import it into `radicale`.
pub async fn seed(ctx: &Ctx, ics: Option<&str>, radicale: &str) -> anyhow::Result<Imported> {
    let (name, text) = match ics {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
            (
                path.to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        }
        None => ("built-in sample".to_string(), SAMPLE.to_string()),
    };
    let parsed = parse_calendar(&name, &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "calendar: {name}: {} event series, {} unreadable",
        parsed.series.len(),
        parsed.errors.len()
    );
    for (_, e) in &parsed.errors {
        println!("  skipped: {e}");
    }
    let had_events = text.to_ascii_uppercase().contains("BEGIN:VEVENT");
    if matches!(
        calsync::ical::repair::repair(&text),
        std::borrow::Cow::Owned(_)
    ) {
        let derived = parsed
            .series
            .iter()
            .filter(|s| s.uid.starts_with("derived-"))
            .count();
        println!(
            "  repaired on reading (not quite RFC 5545; see ical::repair): {derived} series without UID got one derived from their content; periods, VALUE=DATE date-times and all-day UNTILs made valid"
        );
    }
    println!(
        "  importing calsync's own serialization of each series (valid RFC 5545), as a client that read the file would write it — not the file's raw bytes"
    );

    let mut rejected = 0;
    for (i, s) in parsed.series.iter().enumerate() {
        if let Err(e) = fixtures::client_put(ctx, radicale, &s.to_ical()).await {
            rejected += 1;
            println!("  Radicale rejected {}: {e}", s.uid);
        }
        if (i + 1) % 200 == 0 {
            println!(
                "  imported {} of {} (Radicale's cost per PUT grows with the calendar)",
                i + 1,
                parsed.series.len()
            );
        }
    }
    println!(
        "imported {} series into {radicale} ({rejected} rejected by the server)",
        parsed.series.len() - rejected
    );

    Ok(Imported {
        parsed,
        rejected,
        had_events,
    })
}
