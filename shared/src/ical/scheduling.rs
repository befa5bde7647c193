//! `SCHEDULE-AGENT=CLIENT` on the scheduling properties of sync writes (RFC 6638 §7.1).

use calcard::icalendar::ICalendarProperty;

use super::parse_guarded;

/// Set or clear `SCHEDULE-AGENT=CLIENT` (RFC 6638 §7.1) on every ORGANIZER and ATTENDEE.
///
/// Sync writes are marked so that a CalDAV server with scheduling (iCloud, sabre/dav) sends
/// no invitation or cancellation for them (invariant 8); data read back is unmarked so the
/// mark never looks like an edit. Data that does not parse is returned unchanged.
pub fn schedule_agent_client(ical: &str, mark: bool) -> String {
    use calcard::icalendar::{
        ICalendarParameter, ICalendarParameterName, ICalendarParameterValue,
        ICalendarScheduleAgentValue,
    };
    // Most events have neither property: then there is nothing to mark or unmark, and no
    // reason to parse the whole calendar (a parse per write and per read, docs/performance.md).
    if !has_scheduling_property(ical) {
        return ical.to_string();
    }
    let Some(Ok((mut cal, _))) = parse_guarded(ical) else {
        return ical.to_string();
    };
    let mut touched = false;
    for comp in &mut cal.components {
        for entry in &mut comp.entries {
            if !matches!(
                entry.name,
                ICalendarProperty::Organizer | ICalendarProperty::Attendee
            ) {
                continue;
            }
            let is_client = |p: &ICalendarParameter| {
                p.name == ICalendarParameterName::ScheduleAgent
                    && matches!(
                        p.value,
                        ICalendarParameterValue::ScheduleAgent(ICalendarScheduleAgentValue::Client)
                    )
            };
            let had = entry.params.iter().any(is_client);
            if mark
                && !entry
                    .params
                    .iter()
                    .any(|p| p.name == ICalendarParameterName::ScheduleAgent)
            {
                entry.params.push(ICalendarParameter {
                    name: ICalendarParameterName::ScheduleAgent,
                    value: ICalendarParameterValue::ScheduleAgent(
                        ICalendarScheduleAgentValue::Client,
                    ),
                });
                touched = true;
            } else if !mark && had {
                entry.params.retain(|p| !is_client(p));
                touched = true;
            }
        }
    }
    if touched {
        cal.to_string()
    } else {
        ical.to_string()
    }
}

/// Does `ical` hold a content line whose property name ends with `ORGANIZER` or `ATTENDEE`
/// (any case, unfolded: RFC 5545 §3.1 lets a fold fall anywhere, even inside the name)?
/// A cheap, conservative test before a parse: it may say yes where calcard would find no
/// such property (a `X-ATTENDEE`, a name in a group), never no where calcard would find one.
/// Line breaks are CRLF, LF or a lone CR, as a lenient parser takes them.
fn has_scheduling_property(ical: &str) -> bool {
    const NAMES: [&[u8]; 2] = [b"ORGANIZER", b"ATTENDEE"];
    let b = ical.as_bytes();
    // The last bytes of the current line's name, upper case, and whether it is still open.
    // The window starts zeroed and no name holds a zero byte, so it can only match once the
    // name has that many bytes.
    let mut tail = [0u8; 9];
    let mut in_name = true;
    let ends_with_name = |tail: &[u8; 9]| NAMES.iter().any(|n| tail[9 - n.len()..] == **n);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\r' || c == b'\n' {
            i += if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            if matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1; // a fold: the logical line goes on
                continue;
            }
            if in_name && ends_with_name(&tail) {
                return true;
            }
            (tail, in_name) = ([0; 9], true);
            continue;
        }
        if in_name {
            if c == b';' || c == b':' {
                if ends_with_name(&tail) {
                    return true;
                }
                in_name = false;
            } else {
                tail.rotate_left(1);
                tail[8] = c.to_ascii_uppercase();
            }
        }
        i += 1;
    }
    in_name && ends_with_name(&tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::EventSeries;

    #[test]
    fn schedule_agent_is_marked_for_writes_and_unmarked_on_read() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTART:20270101T100000Z\r\n\
ORGANIZER;CN=Ann:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let marked = schedule_agent_client(text, true);
        assert_eq!(
            marked.matches("SCHEDULE-AGENT=CLIENT").count(),
            2,
            "{marked}"
        );
        let back = schedule_agent_client(&marked, false);
        assert!(!back.contains("SCHEDULE-AGENT"), "{back}");
        let a = EventSeries::parse_single("a", text).unwrap();
        let b = EventSeries::parse_single("b", &back).unwrap();
        assert!(a.same_content(&b));
        // No attendees: untouched, byte for byte.
        let plain = text
            .replace("ORGANIZER;CN=Ann:mailto:ann@example.com\r\n", "")
            .replace("ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n", "");
        assert_eq!(schedule_agent_client(&plain, true), plain);
    }

    #[test]
    fn scheduling_properties_are_found_however_written() {
        for (text, want) in [
            ("BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\n", false),
            ("BEGIN:VEVENT\r\nATTENDEE:mailto:b@x\r\n", true),
            ("BEGIN:VEVENT\r\nORGANIZER;CN=A:mailto:a@x\r\n", true),
            ("BEGIN:VEVENT\nattendee:mailto:b@x\n", true),
            ("BEGIN:VEVENT\rAttendee:mailto:b@x\r", true),
            // folded inside the name, with CRLF, LF and a tab
            ("BEGIN:VEVENT\r\nATTEN\r\n DEE:mailto:b@x\r\n", true),
            ("BEGIN:VEVENT\nORGA\n\tNIZER:mailto:a@x\n", true),
            // a name in a group, an extension property: a parse decides
            ("BEGIN:VEVENT\r\ng.ATTENDEE:mailto:b@x\r\n", true),
            ("BEGIN:VEVENT\r\nX-ATTENDEE:1\r\n", true),
            // the words in values, parameters or descriptions are not properties
            ("BEGIN:VEVENT\r\nSUMMARY:ATTENDEE list\r\n", false),
            ("BEGIN:VEVENT\r\nDESCRIPTION:see\r\n ATTENDEE:x\r\n", false),
            ("BEGIN:VEVENT\r\nX-A;ROLE=ATTENDEE:1\r\n", false),
            ("BEGIN:VEVENT\r\nATTENDEES:x\r\n", false),
            // no value separator at the end of the text
            ("ATTENDEE", true),
            ("", false),
        ] {
            assert_eq!(has_scheduling_property(text), want, "{text:?}");
        }
    }
}
