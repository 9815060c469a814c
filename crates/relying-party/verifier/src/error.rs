//! The verifier's one error type.

use std::fmt;

/// Why a certificate, signature, status or login was not accepted. Each
/// variant has a stable [`code`](VerifyError::code) for JSON problems; no
/// message carries personal data (names, addresses, dates of birth).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// Bytes that do not decode (certificate, CMS, OCSP, CRL…).
    Malformed {
        /// What was being read.
        what: &'static str,
        /// The decoder's complaint (no content of the input).
        detail: String,
    },
    /// No trust anchor of the required set issued the certificate.
    UnknownRoot,
    /// The certificate chains to a root of the other set: an authentication
    /// certificate offered for a signature, or a signing certificate for a
    /// login (the JPKI sets are never mixed).
    WrongPurpose {
        /// The purpose the certificate was offered for.
        wanted: &'static str,
    },
    /// A signature (certificate, CMS, challenge, OCSP, CRL) does not verify.
    BadSignature {
        /// Whose signature.
        what: &'static str,
    },
    /// Outside its validity period at the verification time.
    Expired {
        /// The certificate's notAfter (RFC 3339).
        not_after: String,
    },
    /// Not yet valid at the verification time.
    NotYetValid {
        /// The certificate's notBefore (RFC 3339).
        not_before: String,
    },
    /// The trust anchor itself is outside its validity period.
    RootExpired,
    /// Key usage does not allow the purpose.
    KeyUsage(&'static str),
    /// No JPKI certificate policy of the purpose.
    Policy,
    /// A critical extension this verifier does not understand.
    UnknownCriticalExtension(String),
    /// A CA certificate offered as an end entity.
    NotEndEntity,
    /// The signing certificate does not carry the basic four.
    NoBasicFour(&'static str),
    /// The CMS content does not match (messageDigest).
    ContentMismatch,
    /// The certificate is revoked.
    Revoked {
        /// The CRL reason (RFC 5280 name).
        reason: &'static str,
    },
    /// The certificate is suspended (certificateHold).
    Suspended,
    /// The responder does not know the certificate.
    UnknownCertificate,
    /// The OCSP response is not about this certificate, is stale, or its
    /// nonce does not match the request's.
    OcspMismatch(&'static str),
    /// The CRL is past its nextUpdate (or not yet valid).
    CrlExpired,
    /// The CRL does not cover this certificate (issuer or distribution point).
    CrlScope(&'static str),
    /// The status was not checked (no revocation source) and the caller
    /// required it.
    StatusNotChecked,
    /// Unsupported algorithm or structure.
    Unsupported(String),
    /// The caller paired proof values that do not belong together (a
    /// programming error on the verifier's side, never the holder's doing).
    Misuse(&'static str),
}

impl VerifyError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::UnknownRoot => "unknown_root",
            Self::WrongPurpose { .. } => "wrong_purpose",
            Self::BadSignature { .. } => "bad_signature",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::RootExpired => "root_expired",
            Self::KeyUsage(_) => "key_usage",
            Self::Policy => "policy",
            Self::UnknownCriticalExtension(_) => "unknown_critical_extension",
            Self::NotEndEntity => "not_end_entity",
            Self::NoBasicFour(_) => "no_basic_four",
            Self::ContentMismatch => "content_mismatch",
            Self::Revoked { .. } => "revoked",
            Self::Suspended => "suspended",
            Self::UnknownCertificate => "unknown_certificate",
            Self::OcspMismatch(_) => "ocsp_mismatch",
            Self::CrlExpired => "crl_expired",
            Self::CrlScope(_) => "crl_scope",
            Self::StatusNotChecked => "status_not_checked",
            Self::Unsupported(_) => "unsupported",
            Self::Misuse(_) => "internal",
        }
    }

    pub(crate) fn malformed(what: &'static str, e: impl fmt::Display) -> Self {
        Self::Malformed {
            what,
            detail: e.to_string(),
        }
    }

    /// Maps a PKI-layer error met while reading `what`.
    pub(crate) fn from_pki(what: &'static str, e: shomei_pki::PkiError) -> Self {
        use shomei_pki::PkiError as P;
        match e {
            P::BadSignature { what } => Self::BadSignature { what },
            P::Unsupported(s) => Self::Unsupported(s),
            P::Malformed { detail, .. } => Self::Malformed { what, detail },
            other => Self::Malformed {
                what,
                detail: other.to_string(),
            },
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { what, detail } => write!(f, "malformed {what}: {detail}"),
            Self::UnknownRoot => f.write_str("the certificate does not chain to a trusted root"),
            Self::WrongPurpose { wanted } => write!(
                f,
                "the certificate belongs to the other JPKI root set, not to {wanted}"
            ),
            Self::BadSignature { what } => write!(f, "the {what} signature does not verify"),
            Self::Expired { not_after } => write!(f, "the certificate expired at {not_after}"),
            Self::NotYetValid { not_before } => {
                write!(f, "the certificate is not valid before {not_before}")
            }
            Self::RootExpired => f.write_str("the trust anchor is outside its validity"),
            Self::KeyUsage(s) => write!(f, "key usage: {s}"),
            Self::Policy => f.write_str("the certificate carries no JPKI policy for this purpose"),
            Self::UnknownCriticalExtension(oid) => {
                write!(f, "unknown critical extension {oid}")
            }
            Self::NotEndEntity => f.write_str("a CA certificate is not an end entity"),
            Self::NoBasicFour(s) => write!(f, "no basic four in the certificate: {s}"),
            Self::ContentMismatch => f.write_str("the signature is over different content"),
            Self::Revoked { reason } => write!(f, "the certificate is revoked ({reason})"),
            Self::Suspended => f.write_str("the certificate is suspended"),
            Self::UnknownCertificate => f.write_str("the authority does not know the certificate"),
            Self::OcspMismatch(s) => write!(f, "OCSP response: {s}"),
            Self::CrlExpired => f.write_str("the CRL is outside its thisUpdate..nextUpdate window"),
            Self::CrlScope(s) => write!(f, "the CRL does not cover the certificate: {s}"),
            Self::StatusNotChecked => f.write_str("the certificate status was not checked"),
            Self::Unsupported(s) => write!(f, "unsupported: {s}"),
            Self::Misuse(s) => write!(f, "verifier misuse: {s}"),
        }
    }
}

impl std::error::Error for VerifyError {}
