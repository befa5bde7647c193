//! Content-line syntax (RFC 5545 §3.1) for the repairs: unfolding, names, parameters and
//! where a value starts.

/// Content lines of `text`, unfolded (RFC 5545 §3.1), without line ends.
pub(super) fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match (
            line.strip_prefix(' ').or_else(|| line.strip_prefix('\t')),
            out.last_mut(),
        ) {
            (Some(rest), Some(prev)) => prev.push_str(rest),
            _ if line.is_empty() => {}
            _ => out.push(line.to_string()),
        }
    }
    out
}

pub(super) fn name_of(line: &str) -> String {
    let end = line.find([';', ':']).unwrap_or(line.len());
    line.get(..end).unwrap_or("").to_ascii_uppercase()
}

/// True when `line` starts with a property name (RFC 5545 §3.1 `name`, plus `_`) followed
/// by `;`, `:` or the end.
pub(super) fn named(line: &str) -> bool {
    let end = line.find([';', ':']).unwrap_or(line.len());
    let name = line.get(..end).unwrap_or("");
    let name = name.strip_suffix('\r').unwrap_or(name);
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Byte offset of the value of a well-formed content line (RFC 5545 §3.1): a name token,
/// then `;name=value[,value]` parameters whose values are quoted strings or paramtext,
/// then `:`. `None` for anything else.
pub(super) fn head_end(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let token = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut i = b.iter().take_while(|&&c| token(c)).count();
    if i == 0 {
        return None;
    }
    loop {
        match b.get(i)? {
            b':' => return Some(i + 1),
            b';' => {
                i += 1;
                let n = b.get(i..)?.iter().take_while(|&&c| token(c)).count();
                if n == 0 || b.get(i + n) != Some(&b'=') {
                    return None;
                }
                i += n + 1;
                loop {
                    if b.get(i) == Some(&b'"') {
                        let n = b.get(i + 1..)?.iter().position(|&c| c == b'"')?;
                        i += n + 2;
                    } else {
                        i += b
                            .get(i..)?
                            .iter()
                            .take_while(|&&c| !matches!(c, b'"' | b';' | b':' | b','))
                            .count();
                    }
                    match b.get(i)? {
                        b',' => i += 1,
                        b'"' => return None,
                        _ => break,
                    }
                }
            }
            _ => return None,
        }
    }
}

/// `line` as a content line a parser reads one way only: unchanged when well formed
/// ([`head_end`]), its parameters rewritten when its value can still be found, `None` (to
/// be dropped) otherwise.
pub(super) fn content_line(line: &str) -> Option<String> {
    if head_end(line).is_some() {
        return Some(line.to_string());
    }
    let vs = value_start(line)?;
    let head = line.get(..vs.checked_sub(1)?)?;
    let value = line.get(vs..)?;
    let name_end = head.find(';').unwrap_or(head.len());
    let mut out = head.get(..name_end)?.to_string();
    for param in split_outside_quotes(head.get(name_end..)?) {
        let Some((pn, pv)) = param.split_once('=') else {
            continue;
        };
        if pn.is_empty() || !named(pn) {
            continue;
        }
        let trial = format!("X;{pn}={pv}:");
        let pv = if head_end(&trial).is_some() {
            pv.to_string()
        } else {
            let bare = pv.replace('"', "");
            if bare.contains([';', ':', ',']) {
                format!("\"{bare}\"")
            } else {
                bare
            }
        };
        out.push(';');
        out.push_str(pn);
        out.push('=');
        out.push_str(&pv);
    }
    out.push(':');
    out.push_str(value);
    head_end(&out).map(|_| out)
}

/// The `;`-separated parts of a parameter list (leading `;` dropped), `;` inside double
/// quotes kept.
pub(super) fn split_outside_quotes(params: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in params.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                if i > start {
                    out.extend(params.get(start..i));
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if params.len() > start {
        out.extend(params.get(start..));
    }
    out
}

/// Byte offset of the value: after the first ':' outside a quoted parameter value.
pub(super) fn value_start(line: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

pub(super) fn value_of(line: &str) -> &str {
    value_start(line).and_then(|i| line.get(i..)).unwrap_or("")
}

pub(super) fn params_of(line: &str) -> &str {
    let v = value_of(line);
    let head = line.get(..line.len() - v.len()).unwrap_or(line);
    let head = head.strip_suffix(':').unwrap_or(head);
    head.find(';').and_then(|i| head.get(i..)).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lines_are_read_one_way_only() {
        for (line, want) in [
            // Well formed: unchanged.
            ("SUMMARY:a: b", Some("SUMMARY:a: b")),
            (
                "ATTENDEE;CN=\"Doe, J\";ROLE=CHAIR:mailto:j@x",
                Some("ATTENDEE;CN=\"Doe, J\";ROLE=CHAIR:mailto:j@x"),
            ),
            ("X-A;MEMBER=\"a\",\"b\":v", Some("X-A;MEMBER=\"a\",\"b\":v")),
            // Stray quotes inside a value: unquoted, quoted whole when it needs it.
            (
                "ATTENDEE;CN=John \"JJ\" Smith:mailto:j@x",
                Some("ATTENDEE;CN=John JJ Smith:mailto:j@x"),
            ),
            // A parameter without name=: dropped, the value kept.
            (
                "ORGANIZER;C\"iCal Chair\":mailto:c@x",
                Some("ORGANIZER:mailto:c@x"),
            ),
            // No value to be found (an unbalanced quote): dropped.
            ("ORGANIZER;C\"iCal Chair/x:mailto:c@x", None),
            ("no colon at all", None),
            (">BAD-NAME:x", None),
        ] {
            assert_eq!(content_line(line).as_deref(), want, "{line}");
        }
    }
}
