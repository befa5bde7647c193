//! Reading a WebDAV / CalDAV `DAV:error` answer body (RFC 4918 §16: the precondition or
//! postcondition element, with an optional `DAV:responsedescription`, as Xandikos sends for
//! invalid data: RFC 4791 §5.3.2.1 `CALDAV:valid-calendar-data`).

use super::{CALDAV, DAV};

/// The precondition element named by a `DAV:error` body, e.g. `valid-calendar-data`, or
/// `None` when the body is not such a document.
pub(super) fn dav_precondition(body: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).ok()?;
    let root = doc.root_element();
    if !root.has_tag_name((DAV, "error")) {
        return None;
    }
    root.children()
        .find(|n| n.is_element() && !n.has_tag_name((DAV, "responsedescription")))
        .map(|n| n.tag_name().name().to_string())
}

/// A `DAV:error` body for people: `CALDAV:valid-calendar-data: Not a valid calendar file …`
/// (the condition with its namespace's usual prefix, then the server's description, at most
/// 300 characters); `None` when the body is not such a document.
pub(super) fn dav_error_text(body: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).ok()?;
    let root = doc.root_element();
    if !root.has_tag_name((DAV, "error")) {
        return None;
    }
    let mut parts = Vec::new();
    for n in root.children().filter(|n| n.is_element()) {
        if n.has_tag_name((DAV, "responsedescription")) {
            continue;
        }
        let prefix = match n.tag_name().namespace() {
            Some(DAV) => "DAV:",
            Some(CALDAV) => "CALDAV:",
            _ => "",
        };
        parts.push(format!("{prefix}{}", n.tag_name().name()));
    }
    let said: String = root
        .children()
        .find(|n| n.has_tag_name((DAV, "responsedescription")))
        .and_then(|n| n.text())
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut text = parts.join(", ");
    if !said.is_empty() {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    (!text.is_empty()).then(|| text.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const XANDIKOS: &str = r#"<ns0:error xmlns:ns0="DAV:" xmlns:ns1="urn:ietf:params:xml:ns:caldav"><ns1:valid-calendar-data /><ns0:responsedescription>Not a valid calendar file: Offset must be less than 24 hours, was +5328</ns0:responsedescription></ns0:error>"#;

    #[test]
    fn dav_error_bodies_name_their_precondition() {
        assert_eq!(
            dav_precondition(XANDIKOS).as_deref(),
            Some("valid-calendar-data")
        );
        assert_eq!(dav_precondition(""), None);
        assert_eq!(dav_precondition("<html>412</html>"), None);
    }

    #[test]
    fn dav_error_bodies_in_words() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                XANDIKOS,
                Some("CALDAV:valid-calendar-data: Not a valid calendar file: Offset must be less than 24 hours, was +5328"),
            ),
            (
                r#"<D:error xmlns:D="DAV:"><D:lock-token-submitted/></D:error>"#,
                Some("DAV:lock-token-submitted"),
            ),
            (
                r#"<D:error xmlns:D="DAV:" xmlns:x="urn:x"><x:quota-exceeded/><D:responsedescription>
                   over   quota </D:responsedescription></D:error>"#,
                Some("quota-exceeded: over quota"),
            ),
            (r#"<D:error xmlns:D="DAV:"/>"#, None),
            ("<html>412</html>", None),
            ("not xml", None),
        ];
        for (body, want) in cases {
            assert_eq!(dav_error_text(body).as_deref(), *want, "{body}");
        }
    }
}
