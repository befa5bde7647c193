//! calcard under guard: a parser panic on hostile input becomes `None`, component trees
//! too deep are cut, and an RRULE's BY* product is bounded (invariant 9).

use calcard::icalendar::{ICalendar, ICalendarComponentType};
use calcard::Entry;

/// Run a calcard call so that a bug in the parser on hostile input becomes `None`, not a
/// crashed Lambda (invariant 9: nothing panics on input).
pub(super) fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// Deepest component nesting calsync reads (VCALENDAR › VEVENT › VALARM is 3; RFC 5545
/// defines no deeper one). Deeper subtrees are cut off at this depth and their top-level
/// component reported, so that no recursion over the tree can exhaust the stack.
pub const MAX_DEPTH: usize = 16;

/// Most instants one RRULE may generate per period of its FREQ: the product of its BY*
/// list lengths (RFC 5545 §3.3.10 expands each BYxxx over the others). Calendar rules stay
/// far below: even `BYMONTH` 12 × `BYMONTHDAY` 31 × `BYHOUR` 24 is 8,928, while
/// `BYHOUR` 24 × `BYMINUTE` 60 × `BYSECOND` 60 (86,400 a period, ~31 M a year under
/// `FREQ=DAILY`) is refused.
pub const MAX_BY_PRODUCT: u64 = 10_000;

/// Parse with calcard, guarded ([`guard`]) and with subtrees deeper than [`MAX_DEPTH`] cut
/// off. Returns the calendar and the ids of the top-level components that were cut.
/// `None` when the parser failed on the input.
pub(crate) fn parse_guarded(text: &str) -> Option<Result<(ICalendar, Vec<u32>), Entry>> {
    let mut ical = match guard(|| ICalendar::parse(text))? {
        Ok(i) => i,
        Err(e) => return Some(Err(e)),
    };
    let cut = prune_deep(&mut ical, MAX_DEPTH);
    Some(Ok((ical, cut)))
}

/// Cut every component at depth `cap` (the root is depth 1) off from its children;
/// iterative. Returns the top-level components (children of the root) whose subtree was cut.
///
/// Calendar-level components nested inside another component (a VEVENT in a VEVENT or a
/// VALARM, a VCALENDAR in a VEVENT: what an unterminated component leaves behind) are
/// detached too, without an error: RFC 5545 §3.6 puts them only in a VCALENDAR, and kept
/// they would expand as phantom occurrences of the event that holds them (a fuzz finding).
fn prune_deep(ical: &mut ICalendar, cap: usize) -> Vec<u32> {
    let mut cut = Vec::new();
    let calendar_level: Vec<bool> = ical
        .components
        .iter()
        .map(|c| {
            matches!(
                c.component_type,
                ICalendarComponentType::VCalendar
                    | ICalendarComponentType::VEvent
                    | ICalendarComponentType::VTodo
                    | ICalendarComponentType::VJournal
                    | ICalendarComponentType::VFreebusy
                    | ICalendarComponentType::VTimezone
                    | ICalendarComponentType::VAvailability
            )
        })
        .collect();
    let Some(root) = ical.components.first() else {
        return cut;
    };
    // (component id, depth, top-level ancestor)
    let mut stack: Vec<(u32, usize, u32)> = root.component_ids.iter().map(|&c| (c, 2, c)).collect();
    let mut seen = vec![false; ical.components.len()];
    while let Some((id, depth, top)) = stack.pop() {
        let Some(comp) = ical.components.get_mut(id as usize) else {
            continue;
        };
        // A component listed twice (never by calcard's parser) is not walked twice.
        if std::mem::replace(&mut seen[id as usize], true) {
            comp.component_ids.clear();
            continue;
        }
        comp.component_ids
            .retain(|&c| !calendar_level.get(c as usize).copied().unwrap_or(false));
        if depth >= cap && !comp.component_ids.is_empty() {
            comp.component_ids.clear();
            if !cut.contains(&top) {
                cut.push(top);
            }
            continue;
        }
        stack.extend(comp.component_ids.iter().map(|&c| (c, depth + 1, top)));
    }
    cut
}

/// The product of an RRULE value's BY* list lengths (saturating), see [`MAX_BY_PRODUCT`].
pub fn rrule_by_product(rule: &str) -> u64 {
    rule.split(';')
        .filter_map(|part| part.split_once('='))
        .filter(|(k, _)| {
            let k = k.trim().to_ascii_uppercase();
            k.starts_with("BY") && k != "BYSETPOS"
        })
        .map(|(_, v)| v.split(',').count() as u64)
        .fold(1u64, |acc, n| acc.saturating_mul(n))
}

/// The RRULE value of a content line as calcard writes it (`RRULE:FREQ=…`), unfolded.
pub(super) fn rrule_value(line: &str) -> String {
    let unfolded = line.replace("\r\n ", "").replace("\r\n\t", "");
    unfolded
        .split_once(':')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}
