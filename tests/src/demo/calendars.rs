//! What the demo writes: the built-in sample calendar, the feed, the demo event and series,
//! dated from the day the demo runs.

pub(super) const DEMO_EVENT: &str = "calsync-demo-event@calsync.example";
pub(super) const DEMO_SERIES: &str = "calsync-demo-series@calsync.example";
/// The SUMMARY of the demo series' moved occurrence, which the convergence check looks for.
pub(super) const MOVED_SUMMARY: &str = "Demo series (this occurrence moved a day later)";

/// The built-in sample calendar.
pub const SAMPLE: &str = include_str!("../sample.ics");

/// The day `offset` days after the demo's first day (`YYYYMMDD`). The demo's events lie
/// ahead of the day it runs, whatever that day is: the first day is a week after the
/// process first asked (fixed then, so that a run across midnight keeps its dates), and
/// the checks count occurrences in the 365 days from now.
pub(super) fn demo_day(offset: i64) -> String {
    static FIRST: std::sync::OnceLock<chrono::NaiveDate> = std::sync::OnceLock::new();
    let first = *FIRST.get_or_init(|| chrono::Utc::now().date_naive() + chrono::Duration::days(7));
    (first + chrono::Duration::days(offset))
        .format("%Y%m%d")
        .to_string()
}

/// The small ICS subscription added to the demo group: two all-day holidays, 30 and 60
/// days after the demo's first day.
pub fn feed() -> String {
    let (h1, h1_end, h2, h2_end) = (demo_day(30), demo_day(31), demo_day(60), demo_day(61));
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//demo feed//EN\r\n\
BEGIN:VEVENT\r\nUID:feed-holiday-1@calsync.example\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:{h1}\r\n\
DTEND;VALUE=DATE:{h1_end}\r\nSUMMARY:Bank holiday (from the holiday feed)\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:feed-holiday-2@calsync.example\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:{h2}\r\n\
DTEND;VALUE=DATE:{h2_end}\r\nSUMMARY:Second bank holiday (from the holiday feed)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

pub(super) fn demo_event(summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//demo client//EN\r\nBEGIN:VEVENT\r\nUID:{DEMO_EVENT}\r\n\
DTSTAMP:20261122T100000Z\r\nDTSTART:{day}T150000Z\r\nDTEND:{day}T160000Z\r\nSUMMARY:{summary}\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n",
        day = demo_day(14)
    )
}

/// A weekly series of six from the demo's first day; `moved`: its second occurrence moved
/// a day and four hours later.
pub(super) fn demo_series(moved: bool) -> String {
    let over = if moved {
        format!(
            "BEGIN:VEVENT\r\nUID:{DEMO_SERIES}\r\nDTSTAMP:20261122T100000Z\r\n\
RECURRENCE-ID:{second}T080000Z\r\nDTSTART:{next}T120000Z\r\nDTEND:{next}T123000Z\r\n\
SUMMARY:{MOVED_SUMMARY}\r\nEND:VEVENT\r\n",
            second = demo_day(7),
            next = demo_day(8)
        )
    } else {
        String::new()
    };
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//demo client//EN\r\nBEGIN:VEVENT\r\nUID:{DEMO_SERIES}\r\n\
DTSTAMP:20261122T100000Z\r\nDTSTART:{first}T080000Z\r\nDTEND:{first}T083000Z\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\n\
SUMMARY:Demo series\r\nEND:VEVENT\r\n{over}END:VCALENDAR\r\n",
        first = demo_day(0)
    )
}
