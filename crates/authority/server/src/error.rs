//! Errors of the authority adapter, and their problem+json form (RFC 9457).

use core::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shomei_ca::CaError;
use shomei_core::LifecycleError;
use shomei_pki::PkiError;
use shomei_registry::{DeviceStatus, RegistryError};
use shomei_secure_element::AttestationError;

/// Everything the authority adapter can fail with. Messages never carry
/// personal data, PINs or keys.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// `authority init` on a folder that already holds one.
    AlreadyInitialised(String),
    /// The folder holds no authority.
    NotInitialised(String),
    /// A file of the authority folder is unreadable or inconsistent.
    Corrupt(String),
    /// File-system failure.
    Io(String),
    /// Bad request input (detail safe to echo).
    BadInput(String),
    /// Missing or wrong operator token.
    Unauthorized,
    /// Missing or unknown device token.
    UnauthorizedDevice,
    /// Missing or unknown relying-party (or operator) token.
    UnauthorizedRelyingParty,
    /// A holder proof was refused (why, safe to show).
    Forbidden(&'static str, String),
    /// Well-formed but refused on its content (code, why safe to show): 422.
    Unprocessable(&'static str, String),
    /// The request conflicts with the current state (code, why safe to show): 409.
    Conflict(&'static str, String),
    /// No such certificate / holder.
    NotFound(&'static str),
    /// Lifecycle rules refuse the change.
    Lifecycle(LifecycleError),
    /// The authority core refused.
    Ca(CaError),
    /// PKI building/parsing failed.
    Pki(PkiError),
    /// The registry failed or refused.
    Registry(RegistryError),
    /// A setting in `authority.json` cannot be used (which and why; never a secret).
    Config(String),
    /// Anything else (detail is logged, not shown).
    Internal(String),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyInitialised(d) => write!(
                f,
                "{d} already holds an authority: choose another --data folder"
            ),
            Self::NotInitialised(d) => write!(
                f,
                "{d} holds no authority: run `shomei authority init --data {d}` first"
            ),
            Self::Corrupt(m) => write!(f, "authority folder is damaged: {m}"),
            Self::Io(m) => write!(f, "file system: {m}"),
            Self::BadInput(m) => write!(f, "{m}"),
            Self::Unauthorized => f.write_str(
                "missing or wrong operator token (Authorization: Bearer <operator.token>), and no holder proof",
            ),
            Self::UnauthorizedRelyingParty => f.write_str(
                "missing or unknown relying-party token (Authorization: Bearer <token from POST /v1/relying-parties>)",
            ),
            Self::UnauthorizedDevice => f.write_str(
                "missing or unknown device token (Authorization: Bearer <device_token from POST /v1/phones>)",
            ),
            Self::Forbidden(_, why) | Self::Unprocessable(_, why) | Self::Conflict(_, why) => {
                write!(f, "{why}")
            }
            Self::NotFound(what) => write!(f, "no such {what}"),
            Self::Lifecycle(e) => write!(f, "{e}"),
            Self::Ca(e) => write!(f, "{e}"),
            Self::Pki(e) => write!(f, "{e}"),
            Self::Registry(e) => write!(f, "registry: {e}"),
            Self::Config(m) => write!(f, "authority.json: {m}"),
            Self::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<RegistryError> for ServerError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<CaError> for ServerError {
    fn from(e: CaError) -> Self {
        Self::Ca(e)
    }
}

impl From<LifecycleError> for ServerError {
    fn from(e: LifecycleError) -> Self {
        Self::Lifecycle(e)
    }
}

impl From<PkiError> for ServerError {
    fn from(e: PkiError) -> Self {
        Self::Pki(e)
    }
}

impl ServerError {
    /// HTTP status and the stable problem `code`.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::AlreadyInitialised(_) => (S::CONFLICT, "already_initialised"),
            Self::NotInitialised(_) => (S::NOT_FOUND, "not_initialised"),
            Self::Corrupt(_) | Self::Io(_) | Self::Config(_) | Self::Internal(_) => {
                (S::INTERNAL_SERVER_ERROR, "internal")
            }
            Self::BadInput(_) => (S::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
            Self::UnauthorizedDevice | Self::UnauthorizedRelyingParty => {
                (S::UNAUTHORIZED, "unauthorized")
            }
            Self::Forbidden(code, _) => (S::FORBIDDEN, code),
            Self::Unprocessable(code, _) => (S::UNPROCESSABLE_ENTITY, code),
            Self::Conflict(code, _) => (S::CONFLICT, code),
            Self::NotFound(_) => (S::NOT_FOUND, "not_found"),
            Self::Lifecycle(e) => match e {
                LifecycleError::Final { .. } => (S::CONFLICT, "certificate_final"),
                LifecycleError::AlreadySuspended => (S::CONFLICT, "already_suspended"),
                LifecycleError::NotSuspended => (S::CONFLICT, "not_suspended"),
                LifecycleError::HoldIsNotRevocation => (S::BAD_REQUEST, "hold_is_not_revocation"),
                LifecycleError::UnknownSerial => (S::NOT_FOUND, "not_found"),
                LifecycleError::UnknownReason => (S::BAD_REQUEST, "unknown_reason"),
                _ => (S::BAD_REQUEST, "bad_request"),
            },
            Self::Ca(e) => match e {
                CaError::Pki(p) => pki_code(p),
                CaError::MinorCannotSign => (S::UNPROCESSABLE_ENTITY, "minor_cannot_sign"),
                CaError::MissingAuthCsr => (S::BAD_REQUEST, "missing_auth_csr"),
                CaError::SameKeyTwice => (S::UNPROCESSABLE_ENTITY, "same_key_twice"),
                CaError::BadProof(_) => (S::FORBIDDEN, "bad_holder_proof"),
                CaError::CardNotOurs(_) => (S::FORBIDDEN, "card_not_ours"),
                CaError::BadCardSignature => (S::FORBIDDEN, "bad_card_signature"),
                CaError::Attestation { error, .. } => match error {
                    AttestationError::UntrustedRoot => (S::FORBIDDEN, "untrusted_manufacturer"),
                    AttestationError::KeyMismatch => {
                        (S::UNPROCESSABLE_ENTITY, "attestation_key_mismatch")
                    }
                    AttestationError::ChallengeMismatch => {
                        (S::FORBIDDEN, "attestation_challenge_mismatch")
                    }
                    _ => (S::UNPROCESSABLE_ENTITY, "bad_attestation"),
                },
                CaError::KeyPolicy { .. } => (S::UNPROCESSABLE_ENTITY, "weak_key_policy"),
                CaError::DeviceMismatch => (S::UNPROCESSABLE_ENTITY, "device_mismatch"),
                CaError::CardExpired => (S::FORBIDDEN, "card_expired"),
                _ => (S::INTERNAL_SERVER_ERROR, "internal"),
            },
            Self::Pki(p) => pki_code(p),
            Self::Registry(e) => match e {
                RegistryError::Conflict { .. } => (S::CONFLICT, "concurrent_change"),
                RegistryError::DeviceConflict { status, .. } => match status {
                    DeviceStatus::Wiped => (S::CONFLICT, "device_wiped"),
                    DeviceStatus::Active => (S::CONFLICT, "no_wipe_requested"),
                    _ => (S::CONFLICT, "device_state_changed"),
                },
                RegistryError::Duplicate { .. } => (S::CONFLICT, "duplicate"),
                RegistryError::NotFound { .. } => (S::NOT_FOUND, "not_found"),
                RegistryError::Invalid(_) => (S::BAD_REQUEST, "invalid"),
                _ => (S::SERVICE_UNAVAILABLE, "registry_unavailable"),
            },
        }
    }
}

fn pki_code(p: &PkiError) -> (StatusCode, &'static str) {
    match p {
        PkiError::Malformed { .. } => (StatusCode::BAD_REQUEST, "malformed_der"),
        PkiError::BadSignature { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature"),
        PkiError::BadKey(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_key"),
        PkiError::Unsupported(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "the authority could not complete the request; see its log".to_owned()
        } else {
            self.to_string()
        };
        problem(status, code, &detail)
    }
}

/// A problem+json response with a stable `code`.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:shomei:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}
