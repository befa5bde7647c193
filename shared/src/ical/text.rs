//! RFC 5545 §3.3.11 TEXT values: escaping and unescaping, and the value of a content line.

/// RFC 5545 §3.3.11 TEXT unescaping.
pub fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 5545 §3.3.11 TEXT escaping.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
}

/// The unescaped TEXT value of a content line (`NAME;PARAM="a:b":value\r\n`): what follows
/// the first colon outside a quoted parameter value.
pub fn line_value(line: &str) -> String {
    let mut quoted = false;
    let start = line
        .char_indices()
        .find(|(_, c)| {
            if *c == '"' {
                quoted = !quoted;
            }
            *c == ':' && !quoted
        })
        .map_or(line.len(), |(i, _)| i + 1);
    unescape(line[start..].trim_end_matches(['\r', '\n']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_line_values() {
        let raw = "Dentist, Dr. Who; room\\2\nsecond line";
        assert_eq!(unescape(&escape(raw)), raw);
        assert_eq!(
            line_value("SUMMARY:Dentist\\, Dr. Who\r\n"),
            "Dentist, Dr. Who"
        );
        assert_eq!(line_value("SUMMARY;LANGUAGE=\"x:y\":A\\;B\r\n"), "A;B");
    }
}
