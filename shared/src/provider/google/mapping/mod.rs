//! Google Calendar Event resources ↔ the canonical iCalendar series.
//!
//! A Google series is a master event (with `recurrence` lines) plus exception events that
//! carry `recurringEventId` and `originalStartTime`; a cancelled exception is a deleted
//! instance. In iCalendar (RFC 5545) that is one VEVENT per RECURRENCE-ID and EXDATE on the
//! master. Field mapping (Event schema, discovery document `calendar.v3.json`;
//! https://developers.google.com/workspace/calendar/api/v3/reference/events):
//!
//! | Google                                   | iCalendar                                      |
//! |------------------------------------------|------------------------------------------------|
//! | `start/end.date`                         | `DTSTART;VALUE=DATE` (all day, end exclusive)  |
//! | `start/end.dateTime` + `timeZone`        | `DTSTART;TZID=<IANA>` (UTC: `…Z`)              |
//! | `recurrence[]` (RRULE/RDATE/EXDATE lines)| the same lines on the master                   |
//! | exception (`recurringEventId`)           | VEVENT with `RECURRENCE-ID`                    |
//! | cancelled exception                      | `EXDATE` on the master                         |
//! | `reminders.overrides[]` (`useDefault: false`) | `VALARM` (`TRIGGER:-PT<n>M`, popup→DISPLAY, email→EMAIL) |
//! | `conferenceData.entryPoints[video].uri`, `hangoutLink` | `CONFERENCE;VALUE=URI;FEATURE=VIDEO` (RFC 7986) |
//! | `attendees[]`, `organizer`               | `ATTENDEE`, `ORGANIZER` (with attendees only)  |
//! | `status` tentative                       | `STATUS:TENTATIVE` (confirmed is the default)  |
//! | `transparency` transparent               | `TRANSP:TRANSPARENT`                           |
//! | `visibility` public/private/confidential | `CLASS`                                        |
//! | `colorId` 1–11                           | `COLOR` (RFC 7986 CSS3 name, nearest to Google's palette) |
//! | `extendedProperties.shared["X-…"]`       | custom `X-…` properties (value only)           |
//! | `extendedProperties.private.calsyncUid`  | `UID` (our id survives any iCalUID rewrite)    |
//!
//! What Google cannot hold (CATEGORIES, URL, GEO, PRIORITY, ATTACH, absolute or
//! end-related alarms, parameters of X- properties, a custom VTIMEZONE) is dropped by
//! [`to_google`]; [`project`] shows an event as it will read back, so the engine keeps those
//! properties in the hub instead of taking their absence for a remote deletion.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::ical::lines::{
    all_lines, first_line, iana, is_utc_zone, minutes_to_trigger, param_value, parse_duration,
    push_vevent, When,
};
pub use crate::ical::lines::{parse_line, parse_lines, Line};
use crate::ical::{EventSeries, MASTER};

/// Private extended property holding the hub UID.
pub const UID_PROP: &str = "calsyncUid";
/// Private extended properties holding the ORGANIZER we wrote (Google sets the organizer to
/// the calendar owner on insert; https://developers.google.com/workspace/calendar/api/v3/reference/events/insert).
const ORGANIZER_PROP: &str = "calsyncOrganizer";
const ORGANIZER_CN_PROP: &str = "calsyncOrganizerCn";

/// Google's event palette (`colors.get`, `event`) and the CSS3 colour names we write as
/// RFC 7986 `COLOR`.
const COLORS: &[(&str, &str)] = &[
    ("1", "lavender"),
    ("2", "mediumaquamarine"),
    ("3", "plum"),
    ("4", "salmon"),
    ("5", "gold"),
    ("6", "sandybrown"),
    ("7", "mediumturquoise"),
    ("8", "lightgray"),
    ("9", "royalblue"),
    ("10", "mediumseagreen"),
    ("11", "crimson"),
];

pub use crate::ical::text::{escape, unescape};

mod from_google;
mod into_google;
#[cfg(test)]
mod tests;

pub use from_google::*;
pub use into_google::*;
