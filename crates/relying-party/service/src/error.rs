//! The service's one error type, and its HTTP forms: JSON problems
//! (RFC 9457) for the API, OAuth error objects for the token endpoint.

use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shomei_verifier::VerifyError;

/// What can go wrong in the relying-party service.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError {
    /// A check failed (certificate, status, signature…).
    Verify(VerifyError),
    /// The authority (trust anchors, OCSP, CRL, linkage) could not be used.
    Upstream(String),
    /// A bad request, with a stable code.
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// For people (no personal data).
        detail: String,
    },
    /// No such login / resource.
    NotFound(&'static str),
    /// A login that is over (expired, used).
    Gone(&'static str),
    /// A state conflict (login still pending, used twice).
    Conflict(&'static str),
    /// Anything else.
    Internal(String),
}

impl ServiceError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Verify(e) => e.code(),
            Self::Upstream(_) => "authority_unreachable",
            Self::BadRequest { code, .. } => code,
            Self::NotFound(c) | Self::Gone(c) | Self::Conflict(c) => c,
            Self::Internal(_) => "internal",
        }
    }

    pub(crate) fn bad(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Verify(VerifyError::Malformed { .. }) | Self::BadRequest { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::Verify(VerifyError::Misuse(_)) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Verify(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Gone(_) => StatusCode::GONE,
            Self::Conflict(_) => StatusCode::CONFLICT,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verify(e) => write!(f, "{e}"),
            Self::Upstream(s) => write!(f, "the authority could not be used: {s}"),
            Self::BadRequest { detail, .. } => f.write_str(detail),
            Self::NotFound(c) => write!(f, "not found ({c})"),
            Self::Gone(c) => write!(f, "no longer usable ({c})"),
            Self::Conflict(c) => write!(f, "conflict ({c})"),
            Self::Internal(s) => write!(f, "internal error: {s}"),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<VerifyError> for ServiceError {
    fn from(e: VerifyError) -> Self {
        Self::Verify(e)
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() || matches!(self, Self::Upstream(_)) {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        }
        let body = serde_json::json!({
            "type": format!("https://shomei.example/problems/{}", self.code()),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "code": self.code(),
            "detail": self.to_string(),
        });
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}
