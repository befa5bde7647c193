//! Per-link transforms, applied when writing other members' events to that member only
//! (the hub and the other members keep the full event): `busy_only` (title "Busy"; no
//! description, location, attendees, organizer, conference or URL), `title_template`
//! (`{title}` stands for the title, e.g. `"{title} (work)"`), and exclusions:
//! `exclude_all_day`, `exclude_declined` (events the link's `self_address` declined,
//! RFC 5545 `PARTSTAT=DECLINED`), `window` (only series with an occurrence from `past_days`
//! before to `future_days` after the write).
//!
//! Events made on the member itself (by this link, or by an earlier link of the same
//! calendar: [`crate::model::HubEvent::made_on`]), and its own copies of events another
//! member brought (one invitation on both calendars), are its own: no transform touches them there, whether
//! they are written back after an edit elsewhere or read from it ([`for_mapping`],
//! [`crate::model::Mapping::home`]). A work calendar that shows personal events as busy
//! keeps its own meetings whole, and their edits there reach every member.
//!
//! Reading back, the fields a transform owns are shielded ([`shield`]): an edit of the title
//! of a busy copy, or a description added to it, never reaches the hub, while edits of the
//! fields the member does hold (times, recurrence) do. A templated title is taken back
//! through its template ([`titles_back`]): "Dentist at 4 (work)" edited there is the title
//! "Dentist at 4". Pure functions, tested with tables.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ical::EventSeries;
use crate::model::Mapping;

/// The title of a busy-only copy.
pub const BUSY: &str = "Busy";
/// Properties a busy-only copy does not carry (and whose edits there are ignored).
pub const BUSY_HIDDEN: &[&str] = &[
    "DESCRIPTION",
    "LOCATION",
    "ATTENDEE",
    "ORGANIZER",
    "CONFERENCE",
    "URL",
    "ATTACH",
    "COMMENT",
    "CONTACT",
];

/// The time window of a member (whole days around the time of the write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Days before now.
    pub past_days: u32,
    /// Days after now.
    pub future_days: u32,
}

/// The transforms of one link (all off by default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transforms {
    /// Title "Busy", no description, location, attendees, organizer, conference, URL.
    #[serde(default)]
    pub busy_only: bool,
    /// Title pattern with `{title}`, e.g. `"{title} (work)"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_template: Option<String>,
    /// Leave out events the link's `self_address` declined.
    #[serde(default)]
    pub exclude_declined: bool,
    /// The member's own calendar address (`mailto:` optional), for `exclude_declined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_address: Option<String>,
    /// Leave out all-day events.
    #[serde(default)]
    pub exclude_all_day: bool,
    /// Only series with an occurrence in this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// No transform at all (what an event made on the member gets there).
pub static NONE: Transforms = Transforms {
    busy_only: false,
    title_template: None,
    exclude_declined: false,
    self_address: None,
    exclude_all_day: false,
    window: None,
};

/// The transforms that apply to one event on a member whose transforms are `t`: [`NONE`]
/// for an event made on that member (its mapping `m` is [`Mapping::home`]), `t` for every
/// other event (from another member or the application, or not on the member yet).
pub fn for_mapping<'a>(t: &'a Transforms, m: Option<&Mapping>) -> &'a Transforms {
    if m.is_some_and(|m| m.home) {
        &NONE
    } else {
        t
    }
}

impl Transforms {
    /// No transform at all.
    pub fn is_identity(&self) -> bool {
        *self == Transforms::default()
    }

    /// Can these transforms leave events out of the member (rather than only rewrite them)?
    pub fn may_exclude(&self) -> bool {
        self.exclude_all_day || self.exclude_declined || self.window.is_some()
    }

    /// Check the settings.
    ///
    /// Errors: `(JSON pointer, reason)` of the first bad member.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(t) = &self.title_template {
            if !t.contains("{title}") || t.chars().count() > 200 {
                return Err((
                    "/transforms/title_template",
                    "must contain {title} and be at most 200 characters".into(),
                ));
            }
        }
        if self.exclude_declined
            && self
                .self_address
                .as_deref()
                .is_none_or(|a| !a.contains('@'))
        {
            return Err((
                "/transforms/self_address",
                "exclude_declined needs the member's own address (name@example.com)".into(),
            ));
        }
        if let Some(w) = self.window {
            if w.past_days > 3650 || w.future_days > 3650 || w.past_days + w.future_days == 0 {
                return Err((
                    "/transforms/window",
                    "past_days and future_days: 0 to 3650, not both 0".into(),
                ));
            }
        }
        Ok(())
    }
}

/// What a member gets of a hub event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// This content.
    Write(String),
    /// Nothing: the event is left out of (or removed from) this member.
    Exclude,
}

/// `SUMMARY` content line for `title`.
fn summary_line(title: &str) -> String {
    format!("SUMMARY:{}\r\n", crate::ical::text::escape(title))
}

/// The title `template` makes of `title`; a title that already has the template's form is
/// kept (so applying twice is applying once).
pub fn templated(template: &str, title: &str) -> String {
    let (pre, post) = template.split_once("{title}").unwrap_or((template, ""));
    if title.starts_with(pre) && title.ends_with(post) && title.len() >= pre.len() + post.len() {
        return title.to_string();
    }
    template.replacen("{title}", title, 1)
}

fn declined_by(series: &EventSeries, me: &str) -> bool {
    let me = me.trim_start_matches("mailto:").to_ascii_lowercase();
    let Some(master) = series
        .master()
        .or_else(|| series.components.values().next())
    else {
        return false;
    };
    master.get("ATTENDEE").into_iter().flatten().any(|line| {
        let upper = line.to_ascii_uppercase();
        let address = line
            .rsplit_once(':')
            .map(|(_, a)| a.trim().to_ascii_lowercase())
            .unwrap_or_default();
        upper.contains("PARTSTAT=DECLINED") && address.trim_start_matches("mailto:") == me
    })
}

fn all_day(series: &EventSeries) -> bool {
    series
        .master()
        .or_else(|| series.components.values().next())
        .and_then(|f| f.get("DTSTART"))
        .and_then(|l| l.first())
        .is_some_and(|l| {
            l.to_ascii_uppercase().contains("VALUE=DATE")
                && !l.to_ascii_uppercase().contains("VALUE=DATE-TIME")
        })
}

fn in_window(series: &EventSeries, w: Window, now: DateTime<Utc>) -> bool {
    let from = now - Duration::days(w.past_days as i64);
    let to = now + Duration::days(w.future_days as i64);
    // An occurrence running into the window counts too (started up to a year before).
    let (occ, _) = series.occurrences(from - Duration::days(366), to, 5000);
    occ.iter().any(|o| o.end > from && o.start < to)
}

/// What `t` makes of the hub event `ical` for its member, at `now`.
pub fn render(t: &Transforms, ical: &str, now: DateTime<Utc>) -> Rendered {
    if t.is_identity() {
        return Rendered::Write(ical.to_string());
    }
    let Ok(mut series) = EventSeries::parse_single("hub", ical) else {
        return Rendered::Write(ical.to_string());
    };
    if (t.exclude_all_day && all_day(&series))
        || (t.exclude_declined
            && t.self_address
                .as_deref()
                .is_some_and(|me| declined_by(&series, me)))
        || t.window.is_some_and(|w| !in_window(&series, w, now))
    {
        return Rendered::Exclude;
    }
    for fields in series.components.values_mut() {
        if t.busy_only {
            for p in BUSY_HIDDEN {
                fields.remove(*p);
            }
            fields.insert("SUMMARY".into(), vec![summary_line(BUSY)]);
        }
        if let Some(tpl) = &t.title_template {
            if !t.busy_only {
                let title = fields
                    .get("SUMMARY")
                    .and_then(|l| l.first())
                    .map(|l| crate::ical::text::line_value(l))
                    .unwrap_or_default();
                fields.insert(
                    "SUMMARY".into(),
                    vec![summary_line(&templated(tpl, &title))],
                );
            }
        }
    }
    Rendered::Write(series.to_ical())
}

/// Is `series`, an object on a member with transforms `t`, already in the form they give
/// (what calsync writes there: "Busy" without the hidden fields, a templated title, not
/// left out)? Then it may be calsync's own write. An object that is not cannot be: it is
/// the member's own copy. Always true without transforms.
pub fn in_member_form(t: &Transforms, series: &EventSeries) -> bool {
    let ical = series.to_ical();
    match render(t, &ical, Utc::now()) {
        Rendered::Write(shown) if shown == ical => true,
        Rendered::Write(shown) => {
            EventSeries::parse_single("member", &shown).is_ok_and(|s| s.same_content(series))
        }
        Rendered::Exclude => false,
    }
}

/// The view of a hub event on its member, for comparing: [`render`]'s content, or the event
/// itself when it is excluded there.
pub fn view(t: &Transforms, ical: &str, now: DateTime<Utc>) -> Option<String> {
    match render(t, ical, now) {
        Rendered::Write(v) if v != ical => Some(v),
        _ => None,
    }
}

/// A title `shown` on a member whose titles follow `template`, as a hub title, given the
/// hub's title `hub`: `None` when the member shows `hub` unchanged (the hub's title stands),
/// else `shown` without the template's text around it, or as it is when someone removed
/// that text.
fn title_back(template: &str, shown: &str, hub: &str) -> Option<String> {
    if templated(template, hub) == shown {
        return None;
    }
    let (pre, post) = template.split_once("{title}").unwrap_or((template, ""));
    if shown.len() >= pre.len() + post.len() && shown.starts_with(pre) && shown.ends_with(post) {
        return Some(shown[pre.len()..shown.len() - post.len()].to_string());
    }
    Some(shown.to_string())
}

/// `series` (a member's copy, or the version it last agreed, as the member shows it) with
/// each component's title taken back through the link's `title_template` against the same
/// component of `hub` (else its master): the template's text is the member's view, not an
/// edit, while a title edited on the templated copy is an edit of the title, which reaches
/// the hub. A title the member shows unchanged becomes the hub's own `SUMMARY` (its
/// parameters too). `series` as it is unless the link has a template and is not busy-only
/// (a busy copy's title is not the member's: [`shield`]).
pub fn titles_back(t: &Transforms, series: EventSeries, hub: &EventSeries) -> EventSeries {
    let Some(tpl) = t.title_template.as_deref().filter(|_| !t.busy_only) else {
        return series;
    };
    let title = |f: Option<&crate::ical::Fields>| {
        f.and_then(|f| f.get("SUMMARY"))
            .and_then(|l| l.first())
            .map(|l| crate::ical::text::line_value(l))
    };
    let mut out = series;
    for (key, fields) in out.components.iter_mut() {
        let Some(shown) = title(Some(fields)) else {
            continue;
        };
        let hub_fields = hub.components.get(key).or_else(|| hub.master());
        match title_back(tpl, &shown, &title(hub_fields).unwrap_or_default()) {
            Some(edited) => {
                fields.insert("SUMMARY".into(), vec![summary_line(&edited)]);
            }
            None => match hub_fields.and_then(|f| f.get("SUMMARY")) {
                Some(lines) => {
                    fields.insert("SUMMARY".into(), lines.clone());
                }
                None => {
                    fields.remove("SUMMARY");
                }
            },
        }
    }
    out
}

/// `remote` with the fields the transforms own taken from `base` (the version last agreed,
/// as the member shows it): edits of those fields on the member's copy are not changes.
pub fn shield(t: &Transforms, remote: &EventSeries, base: &EventSeries) -> EventSeries {
    let mut owned: Vec<&str> = Vec::new();
    if t.busy_only {
        owned.extend(BUSY_HIDDEN);
        owned.push("SUMMARY");
    }
    if owned.is_empty() {
        return remote.clone();
    }
    let mut out = remote.clone();
    for (key, fields) in out.components.iter_mut() {
        let from = base.components.get(key).or_else(|| base.master());
        for p in &owned {
            match from.and_then(|f| f.get(*p)) {
                Some(v) => {
                    fields.insert((*p).to_string(), v.clone());
                }
                None => {
                    fields.remove(*p);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "transform_tests.rs"]
mod tests;
