//! The CalDAV XML: multistatus bodies (RFC 4918 §13, with the RFC 4791 and RFC 6578
//! properties this provider reads) parsed into [`MsResponse`]s, and text escaped for the
//! request bodies.

use super::{CALDAV, CS, DAV};
use crate::provider::ProviderError;

/// A `DAV:response` element of a multistatus body.
#[derive(Debug, Default)]
pub(super) struct MsResponse {
    pub(super) href: String,
    pub(super) status: Option<u16>,
    pub(super) etag: Option<String>,
    pub(super) data: Option<String>,
    pub(super) ctag: Option<String>,
    pub(super) sync_token: Option<String>,
    pub(super) is_calendar: bool,
    pub(super) display_name: Option<String>,
    pub(super) home_set: Option<String>,
    pub(super) principal: Option<String>,
}

/// [`parse_multistatus`] for the fuzz target ([`crate::fuzzing::multistatus`]).
#[doc(hidden)]
pub fn parse_multistatus_for_fuzzing(body: &str) -> Result<usize, ProviderError> {
    parse_multistatus("https://fuzz.example/cal/", body).map(|(r, _)| r.len())
}

pub(super) fn parse_multistatus(
    url: &str,
    body: &str,
) -> Result<(Vec<MsResponse>, Option<String>), ProviderError> {
    let doc = roxmltree::Document::parse(body).map_err(|e| ProviderError::Protocol {
        url: url.into(),
        detail: format!("invalid XML: {e}"),
    })?;
    let root = doc.root_element();
    let mut out = Vec::new();
    let mut token = None;
    for node in root.children().filter(|n| n.is_element()) {
        if node.has_tag_name((DAV, "sync-token")) {
            token = node.text().map(|t| t.trim().to_string());
        }
        if !node.has_tag_name((DAV, "response")) {
            continue;
        }
        let mut r = MsResponse::default();
        for child in node.children().filter(|n| n.is_element()) {
            if child.has_tag_name((DAV, "href")) {
                r.href = child.text().unwrap_or("").trim().to_string();
            } else if child.has_tag_name((DAV, "status")) {
                r.status = parse_status(child.text().unwrap_or(""));
            } else if child.has_tag_name((DAV, "propstat")) {
                let ok = child
                    .children()
                    .find(|n| n.has_tag_name((DAV, "status")))
                    .and_then(|n| parse_status(n.text().unwrap_or("")))
                    .is_none_or(|s| (200..300).contains(&s));
                if !ok {
                    continue;
                }
                for prop in child.descendants().filter(|n| n.is_element()) {
                    let text = || prop.text().map(|t| t.to_string());
                    if prop.has_tag_name((DAV, "getetag")) {
                        r.etag = text().map(|t| t.trim().to_string());
                    } else if prop.has_tag_name((CALDAV, "calendar-data")) {
                        r.data = text();
                    } else if prop.has_tag_name((CS, "getctag")) {
                        r.ctag = text().map(|t| t.trim().to_string());
                    } else if prop.has_tag_name((DAV, "sync-token")) {
                        r.sync_token = text().map(|t| t.trim().to_string());
                    } else if prop.has_tag_name((CALDAV, "calendar")) {
                        r.is_calendar = true;
                    } else if prop.has_tag_name((DAV, "displayname")) {
                        r.display_name = text();
                    } else if prop.has_tag_name((CALDAV, "calendar-home-set")) {
                        r.home_set = href_in(prop);
                    } else if prop.has_tag_name((DAV, "current-user-principal")) {
                        r.principal = href_in(prop);
                    }
                }
            }
        }
        out.push(r);
    }
    Ok((out, token))
}

fn href_in(node: roxmltree::Node) -> Option<String> {
    node.children()
        .find(|n| n.has_tag_name((DAV, "href")))
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
}

fn parse_status(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_collection_response_with_removal_and_truncation() {
        let body = r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">
<d:response><d:href>/cal/a.ics</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/cal/b.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>
<d:response><d:href>/cal/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>
<d:sync-token>http://example/ns/sync/7</d:sync-token></d:multistatus>"#;
        let (rs, token) = parse_multistatus("u", body).unwrap();
        assert_eq!(token.as_deref(), Some("http://example/ns/sync/7"));
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].etag.as_deref(), Some("\"1\""));
        assert_eq!(rs[1].status, Some(404));
        assert_eq!(rs[2].status, Some(507));
    }

    #[test]
    fn malformed_xml_is_a_protocol_error() {
        let e = parse_multistatus("http://x/cal/", "<d:multistatus").unwrap_err();
        assert!(matches!(e, ProviderError::Protocol { .. }));
    }
}
