//! The relying party's verifier: sans-IO checks of JPKI certificates,
//! signatures and logins, with time injected.
//!
//! The steps are types, each made only by the check before it:
//!
//! ```text
//! certificate DER ──validate──▶ ValidatedCert ──check_ocsp / check_crl / not_checked──▶ CheckedCert
//!     (right root set, validity, key usage, JPKI policy, card/phone, basic four)
//! p7s + content ──verify_document──▶ SignedDocument (signer: ValidatedCert)
//! ValidatedCert + LoginContext + signature ──check_login_signature──▶ SignedLogin
//! SignedLogin + CheckedCert (same cert, good) ──finish_login──▶ VerifiedLogin
//!     (verify_login: both steps at once)
//!     (over login_message: "shomei-login-v1" 0 purpose 0 issuer 0 client_id 0 challenge)
//! ```
//!
//! Signing roots and authentication roots are separate sets
//! ([`TrustStore`]); a certificate offered for the other purpose fails as
//! [`VerifyError::WrongPurpose`]. The real JPKI roots can be added
//! ([`TrustStore::add_jpki_roots`]) so real My Number Card signatures
//! verify offline, with the status then [`CertStatus::NotChecked`].
//! Fetching OCSP responses and CRLs is the adapter's job.

#![forbid(unsafe_code)]

pub mod cert;
mod error;
pub mod login;
pub mod revocation;
pub mod signature;
pub mod trust;

pub use cert::{Medium, Purpose, ValidatedCert, validate};
pub use error::VerifyError;
pub use login::{LOGIN_CHALLENGE_LEN, LOGIN_CONTEXT, LoginContext, LoginPurpose, login_message};
pub use revocation::{
    CertStatus, CheckedCert, StatusSource, VerifiedCrl, check_crl, check_ocsp, not_checked,
    ocsp_request,
};
pub use signature::{
    SignedDocument, SignedLogin, VerifiedConsent, VerifiedLogin, check_login_signature,
    finish_consent, finish_login, verify_consent, verify_document, verify_login,
};
pub use trust::{RootSource, TrustStore};

#[cfg(test)]
mod tests;
