//! Content-line helpers shared by the provider mappings (Google, Graph): split lines
//! (RFC 5545 §3.1), date-times with their zone (§3.3.5), durations (§3.3.6), zone names.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// One content line split into name, parameters and raw value (RFC 5545 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Property name, upper case.
    pub name: String,
    /// Parameters in order, names upper case, values unquoted.
    pub params: Vec<(String, String)>,
    /// Raw value (still escaped for TEXT).
    pub value: String,
}

impl Line {
    /// The value of parameter `name` (upper case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Unfold and split content lines (`BEGIN`/`END` included as lines).
pub fn parse_lines(text: &str) -> Vec<Line> {
    let unfolded = text
        .replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "")
        .replace("\n\t", "");
    unfolded
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

/// The first content line of property `name` in a component's fields, split.
pub fn first_line(fields: &crate::ical::Fields, name: &str) -> Option<Line> {
    fields
        .get(name)
        .and_then(|v| v.first())
        .and_then(|l| parse_lines(l).into_iter().next())
}

/// Every content line of property `name` in a component's fields, split.
pub fn all_lines(fields: &crate::ical::Fields, name: &str) -> Vec<Line> {
    fields
        .get(name)
        .into_iter()
        .flatten()
        .flat_map(|l| parse_lines(l))
        .collect()
}

/// Append one VEVENT of `lines` (content lines without line ends) to `out`, CRLF each.
pub fn push_vevent(out: &mut String, lines: &[String]) {
    out.push_str("BEGIN:VEVENT\r\n");
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("END:VEVENT\r\n");
}

/// One unfolded content line, split; `None` when it has no `:`.
pub fn parse_line(l: &str) -> Option<Line> {
    let l = l.trim_end_matches('\r');
    let mut in_quote = false;
    let mut split = None;
    for (i, c) in l.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ':' if !in_quote => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let i = split?;
    let (head, value) = (&l[..i], &l[i + 1..]);
    let mut parts = Vec::new();
    let mut cur = String::new();
    in_quote = false;
    for c in head.chars() {
        match c {
            '"' => in_quote = !in_quote,
            ';' if !in_quote => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let name = parts.remove(0).to_ascii_uppercase();
    let params = parts
        .into_iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.to_ascii_uppercase(), v.to_string()))
        })
        .collect();
    Some(Line {
        name,
        params,
        value: value.to_string(),
    })
}

/// A parameter value, quoted when it holds `,`, `;` or `:` (RFC 5545 §3.2).
pub fn param_value(v: &str) -> String {
    if v.contains([',', ';', ':']) {
        format!("\"{}\"", v.replace('"', "'"))
    } else {
        v.to_string()
    }
}

/// A zone name usable with Google: the IANA name itself, or the IANA name at the end of a
/// vendor-prefixed TZID (`/mozilla.org/20050126_1/Europe/Berlin`).
pub fn iana(tzid: &str) -> Option<chrono_tz::Tz> {
    if let Ok(tz) = tzid.parse::<chrono_tz::Tz>() {
        return Some(tz);
    }
    let parts: Vec<&str> = tzid.split('/').collect();
    (1..parts.len()).find_map(|i| parts[i..].join("/").parse().ok())
}

/// Whether a TZID names UTC.
pub fn is_utc_zone(tz: &str) -> bool {
    matches!(tz, "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z")
}

/// `TRIGGER` value for a reminder `m` minutes before the start.
pub fn minutes_to_trigger(m: i64) -> String {
    if m == 0 {
        "-PT0S".into()
    } else {
        format!("-PT{m}M")
    }
}

/// A parsed DTSTART/DTEND/RECURRENCE-ID.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// `VALUE=DATE`.
    Date(NaiveDate),
    /// `…Z`, or a UTC TZID.
    Utc(DateTime<Utc>),
    /// Local time in an IANA zone.
    Zoned(NaiveDateTime, chrono_tz::Tz),
    /// No zone (read in UTC where an instant is needed).
    Floating(NaiveDateTime),
}

impl When {
    /// A DTSTART/DTEND/RECURRENCE-ID/EXDATE value with its TZID.
    ///
    /// Errors: an unreadable value, a TZID that names no IANA zone.
    pub fn parse(l: &Line) -> Result<Self, String> {
        let v = l.value.trim();
        if l.param("VALUE") == Some("DATE") || (v.len() == 8 && !v.contains('T')) {
            return NaiveDate::parse_from_str(v, "%Y%m%d")
                .map(When::Date)
                .map_err(|_| format!("{}: invalid date {v:?}", l.name));
        }
        if let Some(u) = v.strip_suffix('Z') {
            return NaiveDateTime::parse_from_str(u, "%Y%m%dT%H%M%S")
                .map(|n| When::Utc(Utc.from_utc_datetime(&n)))
                .map_err(|_| format!("{}: invalid date-time {v:?}", l.name));
        }
        let n = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S")
            .map_err(|_| format!("{}: invalid date-time {v:?}", l.name))?;
        match l.param("TZID") {
            None => Ok(When::Floating(n)),
            Some(tzid) if is_utc_zone(tzid) => Ok(When::Utc(Utc.from_utc_datetime(&n))),
            Some(tzid) => iana(tzid).map(|tz| When::Zoned(n, tz)).ok_or_else(|| {
                format!(
                    "{}: TZID {tzid:?} is not an IANA time zone (Google needs one)",
                    l.name
                )
            }),
        }
    }

    /// The UTC instant (dates at midnight UTC; a local time in a DST gap an hour later).
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            When::Date(d) => Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)),
            When::Utc(u) => u,
            When::Zoned(n, tz) => tz
                .from_local_datetime(&n)
                .earliest()
                .or_else(|| {
                    n.checked_add_signed(Duration::hours(1))
                        .and_then(|later| tz.from_local_datetime(&later).earliest())
                })
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&n)),
            // Floating times are read in UTC (Google needs an offset or a zone).
            When::Floating(n) => Utc.from_utc_datetime(&n),
        }
    }

    /// This time plus `d` (dates: whole days, at least one); `None` past the representable
    /// range (a `DURATION:P20000000W` must not panic a worker).
    pub fn plus(self, d: Duration) -> Option<Self> {
        Some(match self {
            When::Date(x) => {
                When::Date(x.checked_add_signed(Duration::try_days(d.num_days().max(1))?)?)
            }
            When::Utc(x) => When::Utc(x.checked_add_signed(d)?),
            When::Zoned(n, tz) => When::Zoned(n.checked_add_signed(d)?, tz),
            When::Floating(n) => When::Floating(n.checked_add_signed(d)?),
        })
    }

    /// Where a component that starts at `self` ends: its DTEND, else DTSTART plus DURATION,
    /// else (RFC 5545 §3.6.1) the next day for a date and the start itself for a date-time.
    ///
    /// Errors: an unreadable DTEND or DURATION, or an end past the representable range.
    pub fn end(self, dtend: Option<&Line>, duration: Option<&Line>) -> Result<Self, String> {
        match (dtend, duration) {
            (Some(l), _) => When::parse(l),
            (None, Some(d)) => parse_duration(&d.value)
                .and_then(|dur| self.plus(dur))
                .ok_or_else(|| format!("DURATION: invalid or out of range {:?}", d.value)),
            (None, None) => match self {
                When::Date(_) => self
                    .plus(Duration::days(1))
                    .ok_or_else(|| "DTSTART: the last representable date".to_string()),
                other => Ok(other),
            },
        }
    }

    /// The calendar date as written (UTC date for `…Z` values).
    pub fn as_date(self) -> Self {
        match self {
            When::Date(d) => When::Date(d),
            When::Utc(t) => When::Date(t.date_naive()),
            When::Zoned(n, _) | When::Floating(n) => When::Date(n.date()),
        }
    }
}

/// RFC 5545 §3.3.6 duration to a chrono duration (`-P1DT2H`, `PT15M`, `P1W`); `None` when
/// unreadable or out of chrono's range.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let (neg, rest) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let rest = rest.strip_prefix('P')?;
    let mut total = Duration::zero();
    let mut num = String::new();
    let mut in_time = false;
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => num.push(c),
            unit => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                let part = match (unit, in_time) {
                    ('W', false) => Duration::try_weeks(n)?,
                    ('D', false) => Duration::try_days(n)?,
                    ('H', true) => Duration::try_hours(n)?,
                    ('M', true) => Duration::try_minutes(n)?,
                    ('S', true) => Duration::try_seconds(n)?,
                    _ => return None,
                };
                total = total.checked_add(&part)?;
            }
        }
    }
    if !num.is_empty() {
        return None;
    }
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused_not_panicked_on() {
        let cases = [
            ("PT15M", Some(Duration::minutes(15))),
            ("-P1DT2H", Some(-(Duration::days(1) + Duration::hours(2)))),
            ("P20000000W", Some(Duration::weeks(20_000_000))),
            ("P99999999999999999999D", None),
            ("PT9223372036854775807S", None),
            ("P1X", None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_duration(v), want, "{v}");
        }
        let start = When::parse(&parse_line("DTSTART:20240101T090000Z").unwrap()).unwrap();
        assert!(start.plus(Duration::days(1)).is_some());
        assert!(start.plus(Duration::MAX).is_none());
        assert!(
            start.plus(Duration::weeks(20_000_000)).is_none(),
            "past year 262143"
        );
        let day = When::parse(&parse_line("DTSTART;VALUE=DATE:20240101").unwrap()).unwrap();
        assert!(day.plus(Duration::MAX).is_none());
    }
}
