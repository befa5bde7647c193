//! Percent-encoding of one URL path segment (RFC 3986 §2.1), for the calendar ids the
//! Google and Outlook links hold in their URLs.

/// Percent-encode a path segment (RFC 3986 unreserved characters kept).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Decode a percent-encoded path segment (the inverse of [`percent_encode`]); a `%` not
/// followed by two hex digits is kept as it is, and bytes that are no UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_stray_percents_stay() {
        let table = [
            ("AAMkAGI2TG93AAA=", "AAMkAGI2TG93AAA%3D"),
            ("me@example.com", "me%40example.com"),
            ("a/b c", "a%2Fb%20c"),
            ("Kalender für Jürgen", "Kalender%20f%C3%BCr%20J%C3%BCrgen"),
            ("plain-id_1.~", "plain-id_1.~"),
        ];
        for (raw, encoded) in table {
            assert_eq!(percent_encode(raw), encoded);
            assert_eq!(percent_decode(encoded), raw);
        }
        for (stray, decoded) in [
            ("100%", "100%"),
            ("%4", "%4"),
            ("%zz", "%zz"),
            ("%é", "%é"),
            ("%FF", "\u{FFFD}"),
        ] {
            assert_eq!(percent_decode(stray), decoded, "{stray}");
        }
    }
}
