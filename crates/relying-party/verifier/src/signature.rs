//! Signed applications (detached CMS) and login answers (signatures over
//! the domain-separated [`login_message`]).

use shomei_core::Timestamp;

use crate::VerifyError;
use crate::cert::{Purpose, ValidatedCert, validate};
use crate::login::{LoginContext, LoginPurpose, login_message};
use crate::revocation::CheckedCert;
use crate::trust::TrustStore;

/// A detached CMS signature whose signer certificate validated for
/// signing: the next step is its revocation status.
#[derive(Clone, Debug)]
pub struct SignedDocument {
    signer: ValidatedCert,
    signing_time: Option<Timestamp>,
}

impl SignedDocument {
    /// The signer's validated certificate (basic four inside).
    pub fn signer(&self) -> &ValidatedCert {
        &self.signer
    }

    /// Takes the signer certificate out, for the status check.
    pub fn into_signer(self) -> ValidatedCert {
        self.signer
    }

    /// The signingTime attribute (the signer's claim), if any.
    pub fn signing_time(&self) -> Option<Timestamp> {
        self.signing_time
    }
}

/// Verifies a detached CMS SignedData (RFC 5652) over `content`: the
/// signature (over the signed attributes, with contentType and
/// messageDigest checked), then the signer certificate for signing at
/// `now` — so an authentication key's signature is refused as
/// [`VerifyError::WrongPurpose`].
pub fn verify_document(
    store: &TrustStore,
    p7s: &[u8],
    content: &[u8],
    now: Timestamp,
) -> Result<SignedDocument, VerifyError> {
    let verified = shomei_pki::cms::verify_detached(p7s, content).map_err(|e| match e {
        shomei_pki::PkiError::BadSignature {
            what: "CMS message digest",
        } => VerifyError::ContentMismatch,
        shomei_pki::PkiError::BadSignature { .. } => {
            VerifyError::BadSignature { what: "CMS signer" }
        }
        other => VerifyError::from_pki("CMS signature", other),
    })?;
    let signer = validate(store, &verified.signer_cert_der, Purpose::Signing, now)?;
    Ok(SignedDocument {
        signer,
        signing_time: verified.signing_time,
    })
}

/// Proof that the holder of a good authentication certificate signed the
/// login challenge.
#[derive(Clone, Debug)]
pub struct VerifiedLogin {
    cert: CheckedCert,
}

impl VerifiedLogin {
    /// The authentication certificate and its status (good).
    pub fn cert(&self) -> &CheckedCert {
        &self.cert
    }
}

/// Checks a login: `cert` must be an authentication certificate whose
/// status is good, and `signature` its RSA PKCS#1 v1.5 SHA-256 signature
/// over [`login_message`]`(Authentication, ctx)` — never over the bare
/// challenge (see [`crate::login`] for why). That is what the card's
/// `80 2A 00 80` makes over the DigestInfo of SHA-256(message).
pub fn verify_login(
    cert: CheckedCert,
    ctx: &LoginContext<'_>,
    signature: &[u8],
) -> Result<VerifiedLogin, VerifyError> {
    if cert.cert().purpose() != Purpose::Authentication {
        return Err(VerifyError::WrongPurpose {
            wanted: Purpose::Authentication.as_str(),
        });
    }
    cert.status().require_good()?;
    let message = login_message(LoginPurpose::Authentication, ctx)?;
    shomei_pki::csr::verify_rsa_sha256(cert.cert().spki(), &message, signature).map_err(|_| {
        VerifyError::BadSignature {
            what: "login challenge",
        }
    })?;
    Ok(VerifiedLogin { cert })
}

/// Proof that the holder of a good signing certificate signed a login
/// challenge (consent to release the basic four, which needs the signing
/// password as the Digital Agency's app does).
#[derive(Clone, Debug)]
pub struct VerifiedConsent {
    cert: CheckedCert,
}

impl VerifiedConsent {
    /// The signing certificate (basic four inside) and its status (good).
    pub fn cert(&self) -> &CheckedCert {
        &self.cert
    }
}

/// As [`verify_login`], for the signing key: `cert` must be a good signing
/// certificate and `signature` its RSA SHA-256 signature over
/// [`login_message`]`(Consent, ctx)`.
pub fn verify_consent(
    cert: CheckedCert,
    ctx: &LoginContext<'_>,
    signature: &[u8],
) -> Result<VerifiedConsent, VerifyError> {
    if cert.cert().purpose() != Purpose::Signing {
        return Err(VerifyError::WrongPurpose {
            wanted: Purpose::Signing.as_str(),
        });
    }
    cert.status().require_good()?;
    let message = login_message(LoginPurpose::Consent, ctx)?;
    shomei_pki::csr::verify_rsa_sha256(cert.cert().spki(), &message, signature).map_err(|_| {
        VerifyError::BadSignature {
            what: "consent challenge",
        }
    })?;
    Ok(VerifiedConsent { cert })
}
