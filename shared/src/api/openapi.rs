//! The OpenAPI 3.1 document of the API, generated from the route annotations
//! (`#[utoipa::path]` on every handler) and served at `GET /v1/openapi.json`; the committed
//! copy is `docs/openapi.json` (a test fails when the two differ). Its operation ids are the
//! AppSync field names ([`super::appsync::OPERATIONS`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{appsync, conflicts, events, groups, links};

/// RFC 9457 problem details, the error body of every route.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ProblemDoc {
    /// `about:blank`.
    r#type: String,
    /// Short summary of the problem type.
    title: String,
    /// HTTP status.
    status: u16,
    /// What happened.
    detail: String,
    /// The bad inputs: `{detail, pointer | parameter | header}`.
    errors: Option<Vec<InputErrorDoc>>,
}

/// One bad input of a request.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct InputErrorDoc {
    /// What is wrong with it.
    detail: String,
    /// JSON pointer into the body (`#/url`).
    pointer: Option<String>,
    /// Query or path parameter.
    parameter: Option<String>,
    /// Request header.
    header: Option<String>,
}

/// No valid bearer token (RFC 6750; `WWW-Authenticate: Bearer`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
#[response(status = 401, content_type = "application/problem+json")]
pub struct Unauthorized(#[to_schema] ProblemDoc);

/// Not found, or another user's (the two are not told apart).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
#[response(status = 404, content_type = "application/problem+json")]
pub struct NotFound(#[to_schema] ProblemDoc);

/// A bad input, named in `errors`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
#[response(status = 422, content_type = "application/problem+json")]
pub struct Invalid(#[to_schema] ProblemDoc);

/// `If-Match` / `If-None-Match` did not hold.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
#[response(status = 412, content_type = "application/problem+json")]
pub struct PreconditionFailed(#[to_schema] ProblemDoc);

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A token of the issuer the stack trusts (JwtIssuer); the user id is its user claim"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "calsync API",
        description = "The application's API over sync groups, links, hub events (JSCalendar or iCalendar), the change feed, conflicts and runs. Errors are RFC 9457 problem details.",
        license(name = "Apache-2.0")
    ),
    paths(
        groups::list, groups::create, groups::get, groups::delete,
        links::connect::create, links::connect::oauth_start, links::list, links::get, links::patch, links::delete,
        links::sync_now, links::reconnect::reconnect, links::account::calendars, links::runs, links::errors, links::release_deletions,
        events::put, events::get, events::delete, events::pages::list, events::pages::changes,
        events::batch::batch,
        conflicts::list, conflicts::resolve,
        appsync::autosync,
    ),
    components(schemas(ProblemDoc, InputErrorDoc)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The document as pretty JSON (what `GET /v1/openapi.json` answers).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".into())
}

/// `GET /v1/openapi.json` (no token needed).
pub async fn serve() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_appsync_operation_is_in_the_document_with_its_route() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for (op, method, path, _) in appsync::OPERATIONS {
            let got = &doc["paths"][*path][method.to_ascii_lowercase()]["operationId"];
            assert_eq!(got, op, "{method} {path}");
        }
        let ops: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            ops,
            appsync::OPERATIONS.len(),
            "every route has an AppSync field"
        );
    }

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let committed = include_str!("../../../docs/openapi.json");
        assert!(
            committed.trim_end() == document().trim_end(),
            "docs/openapi.json is stale: run `cargo run -p calsync-e2e --bin calsync-local -- openapi > docs/openapi.json`"
        );
    }
}
