//! The PKI crate's one error type.

use core::fmt;

/// Everything that can go wrong building or checking PKI objects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkiError {
    /// Input is not well-formed DER of the expected type (what, and why).
    Malformed {
        /// What was being parsed (`"CSR"`, `"OCSP request"`, …).
        what: &'static str,
        /// Parser detail, safe to show.
        detail: String,
    },
    /// A signature did not verify.
    BadSignature {
        /// Whose signature (`"CSR"`, `"CMS signer"`, …).
        what: &'static str,
    },
    /// A key is not what the profile requires (e.g. not RSA-2048).
    BadKey(String),
    /// The signer failed.
    Sign(shomei_core::SignError),
    /// Building an object failed (detail safe to show).
    Build(String),
    /// The request is valid but asks for something unsupported.
    Unsupported(String),
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { what, detail } => write!(f, "malformed {what}: {detail}"),
            Self::BadSignature { what } => write!(f, "{what} signature does not verify"),
            Self::BadKey(m) => write!(f, "unacceptable key: {m}"),
            Self::Sign(e) => write!(f, "{e}"),
            Self::Build(m) => write!(f, "cannot build: {m}"),
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for PkiError {}

impl From<shomei_core::SignError> for PkiError {
    fn from(e: shomei_core::SignError) -> Self {
        Self::Sign(e)
    }
}

impl PkiError {
    pub(crate) fn malformed(what: &'static str, detail: impl fmt::Display) -> Self {
        Self::Malformed {
            what,
            detail: detail.to_string(),
        }
    }
}
