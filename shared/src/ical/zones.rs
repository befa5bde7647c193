//! Windows time-zone names (Outlook, Exchange) to IANA names by the CLDR map.

use std::collections::BTreeMap;

use calcard::icalendar::{ICalendar, ICalendarProperty};

/// The IANA name for a Windows time-zone name (e.g. `W. Europe Standard Time` →
/// `Europe/Berlin`) by the CLDR `windowsZones` map (territory 001), as carried by the
/// `windows-timezones` crate; `None` for IANA names and unknown names.
pub fn windows_to_iana(tzid: &str) -> Option<&'static str> {
    use std::str::FromStr;
    if chrono_tz_is_iana(tzid) {
        return None;
    }
    windows_timezones::WindowsTimezone::from_str(tzid.trim())
        .ok()
        .map(|w| w.tzdb_id())
}

fn chrono_tz_is_iana(tzid: &str) -> bool {
    tzid.parse::<chrono_tz::Tz>().is_ok()
}

/// Rewrite Windows TZIDs (Outlook / Exchange) to IANA names, in TZID parameters and in
/// VTIMEZONE TZID properties, so every member and the hub see one canonical zone name.
/// calcard's own Windows table predates CLDR 48 for a few zones (e.g. Central Asia Standard
/// Time → Asia/Bishkek), so the CLDR map decides.
pub(super) fn normalize_windows_tzids(ical: &mut ICalendar) {
    use calcard::common::timezone::Tz as CalTz;
    use calcard::icalendar::{ICalendarParameterName, ICalendarParameterValue, ICalendarValue};
    // TZIDs that are neither IANA nor Windows names but whose VTIMEZONE calcard ties to an
    // IANA zone (X-LIC-LOCATION, Exchange's X-MICROSOFT-CDO-TZID, an old Outlook display
    // name such as "Pacific Time (US & Canada), Tijuana"): written under that IANA name,
    // with their VTIMEZONE, so Google and Graph (IANA only) take them too.
    let mut by_vtimezone: BTreeMap<String, String> = BTreeMap::new();
    for comp in &ical.components {
        if let Some((name, CalTz::Tz(tz))) = comp.timezone() {
            if !chrono_tz_is_iana(name) && windows_to_iana(name).is_none() && tz != chrono_tz::UTC {
                by_vtimezone.insert(name.to_string(), tz.name().to_string());
            }
        }
    }
    let rename = |t: &mut String| {
        if let Some(iana) = windows_to_iana(t) {
            *t = iana.to_string();
        } else if let Some(iana) = by_vtimezone.get(t.as_str()) {
            *t = iana.clone();
        }
    };
    for comp in &mut ical.components {
        for entry in &mut comp.entries {
            if entry.name == ICalendarProperty::Tzid {
                for v in &mut entry.values {
                    if let ICalendarValue::Text(t) = v {
                        rename(t);
                    }
                }
            }
            for p in &mut entry.params {
                if p.name == ICalendarParameterName::Tzid {
                    if let ICalendarParameterValue::Text(t) = &mut p.value {
                        rename(t);
                    }
                }
            }
        }
    }
}
