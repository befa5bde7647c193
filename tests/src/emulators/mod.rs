//! Provider emulators built to the providers' documented behaviour (product parts, held to
//! `../shared/docs/provider-semantics.md`), served over HTTP on loopback.

pub mod google;
pub mod graph;

/// The bearer token of a request's `Authorization` header (RFC 6750 §2.1), as both
/// emulators' APIs read it.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}
