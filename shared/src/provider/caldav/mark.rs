//! calsync's mark on the CalDAV objects it writes: one non-standard property in each
//! VEVENT (RFC 5545 §3.8.8.2, `X-CALSYNC-WRITER:calsync`), added when writing and taken
//! out when reading, so the engine and the hub never see it.
//!
//! It tells calsync's copies from the member's own where nothing else can (calsync names
//! its objects `<UID>.ics`, as Apple's clients do): a calendar linked again finds its old
//! copies marked ([`Author::Calsync`]). A server or client may drop an unknown property, so
//! an object without the mark is [`Author::Unknown`], never taken for the member's own.
//!
//! [`Author::Calsync`]: crate::provider::Author::Calsync
//! [`Author::Unknown`]: crate::provider::Author::Unknown

use crate::provider::Author;

/// The property's name (compared without regard to case when reading, RFC 5545 §2).
pub const MARK_NAME: &str = "X-CALSYNC-WRITER";
/// The whole content line written.
const MARK_LINE: &str = "X-CALSYNC-WRITER:calsync";

/// `ical` with calsync's mark in each VEVENT (before its `END:VEVENT`), any mark it already
/// had taken out first. Other components and text that is not iCalendar pass as they are.
pub fn marked(ical: &str) -> String {
    let (clean, _) = unmarked(ical);
    let mut out = String::with_capacity(clean.len() + 32);
    for line in clean.split_inclusive('\n') {
        if line
            .trim_end_matches(['\r', '\n'])
            .eq_ignore_ascii_case("END:VEVENT")
        {
            out.push_str(MARK_LINE);
            out.push_str("\r\n");
        }
        out.push_str(line);
    }
    out
}

/// `ical` without calsync's mark (each marked content line with its folded continuation
/// lines, RFC 5545 §3.1), and who wrote it: [`Author::Calsync`] when a mark was there.
pub fn unmarked(ical: &str) -> (String, Author) {
    // Most objects have no mark to take out (they came from clients): no copy.
    if !ical.split('\n').any(is_mark) {
        return (ical.to_string(), Author::Unknown);
    }
    let mut out = String::with_capacity(ical.len());
    let mut found = false;
    let mut skipping = false;
    for line in ical.split_inclusive('\n') {
        if skipping && (line.starts_with(' ') || line.starts_with('\t')) {
            continue;
        }
        skipping = is_mark(line);
        if skipping {
            found = true;
            continue;
        }
        out.push_str(line);
    }
    let author = if found {
        Author::Calsync
    } else {
        Author::Unknown
    };
    (out, author)
}

/// Is `line` a content line of the mark (`X-CALSYNC-WRITER` then `:` or `;`)?
fn is_mark(line: &str) -> bool {
    line.get(..MARK_NAME.len())
        .is_some_and(|n| n.eq_ignore_ascii_case(MARK_NAME))
        && matches!(line.as_bytes().get(MARK_NAME.len()), Some(b':' | b';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nRRULE:FREQ=WEEKLY\r\nBEGIN:VALARM\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID:20270101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn each_vevent_is_marked_once_and_reads_back_unmarked() {
        let m = marked(SERIES);
        assert_eq!(m.matches(MARK_LINE).count(), 2, "{m}");
        assert!(m.contains("END:VALARM\r\nX-CALSYNC-WRITER:calsync\r\nEND:VEVENT"));
        assert_eq!(marked(&m), m, "marking twice marks once");
        assert_eq!(unmarked(&m), (SERIES.to_string(), Author::Calsync));
        assert_eq!(unmarked(SERIES), (SERIES.to_string(), Author::Unknown));
    }

    /// How a server or client may give the mark back: refolded, in another case, with a
    /// parameter, with bare LF line ends. A look-alike property is not the mark.
    #[test]
    fn the_mark_is_taken_out_however_it_comes_back() {
        let rows = [
            (
                "folded",
                "X-CALSYNC-WRITER:cal\r\n sync\r\n",
                Author::Calsync,
            ),
            (
                "lower case",
                "x-calsync-writer:calsync\r\n",
                Author::Calsync,
            ),
            (
                "a parameter",
                "X-CALSYNC-WRITER;X-P=1:calsync\r\n",
                Author::Calsync,
            ),
            ("bare LF", "X-CALSYNC-WRITER:calsync\n", Author::Calsync),
            ("look-alike", "X-CALSYNC-WRITERS:x\r\n", Author::Unknown),
        ];
        for (what, mark, author) in rows {
            let text = SERIES.replacen("UID:a\r\n", &format!("UID:a\r\n{mark}"), 1);
            let (clean, got) = unmarked(&text);
            assert_eq!(got, author, "{what}");
            if author == Author::Calsync {
                assert_eq!(clean, SERIES, "{what}");
            } else {
                assert_eq!(clean, text, "{what}");
            }
        }
    }
}
