//! Errors of the API as RFC 9457 problem details (`application/problem+json`): `type`,
//! `title`, `status`, `detail`, and an `errors` extension listing each bad input by JSON
//! pointer into the body (`pointer`), query parameter (`parameter`) or header (`header`),
//! as in RFC 9457 §3's example.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Where a bad input was (one of the three is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputError {
    /// What is wrong with it.
    pub detail: String,
    /// JSON pointer into the request body (`#/url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Query or path parameter name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Request header name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// An RFC 9457 problem: the error answer of every route.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Short, stable summary of the problem type.
    pub title: &'static str,
    /// What happened in this case (never a secret).
    pub detail: String,
    /// Bad inputs, if the problem is about the request.
    pub errors: Vec<InputError>,
    /// Extra answer headers (`WWW-Authenticate`).
    pub headers: Vec<(HeaderName, String)>,
}

/// Result of a route.
pub type ApiResult<T> = Result<T, Problem>;

impl Problem {
    /// A problem with no input errors.
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 404: `what` does not exist, or belongs to another user (the two are not told apart).
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("{} not found", what.into()),
        )
    }

    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail);
        p.headers.push((
            axum::http::header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\"".into(),
        ));
        p
    }

    /// 400: the request cannot be read at all (not JSON, wrong content type).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// 422: body member `pointer` (a JSON pointer such as `/url`) is invalid.
    pub fn invalid_field(pointer: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid Request",
            format!("{pointer}: {detail}"),
        );
        p.errors.push(InputError {
            detail,
            pointer: Some(format!("#{pointer}")),
            parameter: None,
            header: None,
        });
        p
    }

    /// 422: query or path parameter `name` is invalid.
    pub fn invalid_parameter(name: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid Request",
            format!("{name}: {detail}"),
        );
        p.errors.push(InputError {
            detail,
            pointer: None,
            parameter: Some(name.into()),
            header: None,
        });
        p
    }

    /// `status` about request header `name`.
    pub fn header(
        status: StatusCode,
        title: &'static str,
        name: &str,
        detail: impl Into<String>,
    ) -> Self {
        let detail = detail.into();
        let mut p = Self::new(status, title, format!("{name}: {detail}"));
        p.errors.push(InputError {
            detail,
            pointer: None,
            parameter: None,
            header: Some(name.into()),
        });
        p
    }

    /// 412: `If-Match` does not name the current version.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::header(
            StatusCode::PRECONDITION_FAILED,
            "Precondition Failed",
            "If-Match",
            detail,
        )
    }

    /// 500 for a failure of ours; the cause goes to the log, the answer names no internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "the request could not be completed; it can be retried",
        )
    }

    /// The problem as a JSON value (AppSync answers and batch item results).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            v["errors"] = serde_json::to_value(&self.errors).unwrap_or_default();
        }
        v
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Problem::internal(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.to_json().to_string();
        let mut r = (self.status, body).into_response();
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }
}
