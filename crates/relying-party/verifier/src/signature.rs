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

/// Verifies a detached CMS SignedData (RFC 5652) over `content`: signed
/// attributes required and the signer's digest algorithm listed in
/// digestAlgorithms (else [`VerifyError::Malformed`] naming which), the
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
        // Named structure failures keep their name (e.g. "CMS signed
        // attributes" absent, "CMS digestAlgorithms" not listing the
        // signer's): code `malformed`, the caller's bad input.
        shomei_pki::PkiError::Malformed { what, detail } => VerifyError::Malformed { what, detail },
        other => VerifyError::from_pki("CMS signature", other),
    })?;
    let signer = validate(store, &verified.signer_cert_der, Purpose::Signing, now)?;
    Ok(SignedDocument {
        signer,
        signing_time: verified.signing_time,
    })
}

/// A login or consent signature that verified under a chain-validated
/// certificate of the right purpose; its status is the next check
/// ([`finish_login`] / [`finish_consent`]). Checking the signature before
/// the status means a garbage answer costs no OCSP query (and records no
/// use of someone else's certificate at the authority), and a refusal for
/// status is only ever given to the key's holder.
#[derive(Clone, Debug)]
pub struct SignedLogin {
    cert: ValidatedCert,
    purpose: LoginPurpose,
}

impl SignedLogin {
    /// The certificate whose key signed (for its status check).
    pub fn cert(&self) -> &ValidatedCert {
        &self.cert
    }

    /// What was signed for.
    pub fn purpose(&self) -> LoginPurpose {
        self.purpose
    }
}

fn purpose_of(p: LoginPurpose) -> Purpose {
    match p {
        LoginPurpose::Authentication => Purpose::Authentication,
        LoginPurpose::Consent => Purpose::Signing,
    }
}

/// Checks that `signature` is the RSA PKCS#1 v1.5 SHA-256 signature of
/// `cert`'s key over [`login_message`]`(purpose, ctx)` — never over the
/// bare challenge (see [`crate::login`] for why) — and that `cert` is an
/// authentication certificate (for [`LoginPurpose::Authentication`]) or a
/// signing certificate (for [`LoginPurpose::Consent`]). That is what the
/// card's `80 2A 00 80` makes over the DigestInfo of SHA-256(message).
pub fn check_login_signature(
    cert: ValidatedCert,
    purpose: LoginPurpose,
    ctx: &LoginContext<'_>,
    signature: &[u8],
) -> Result<SignedLogin, VerifyError> {
    check_signature(&cert, purpose, ctx, signature)?;
    Ok(SignedLogin { cert, purpose })
}

fn check_signature(
    cert: &ValidatedCert,
    purpose: LoginPurpose,
    ctx: &LoginContext<'_>,
    signature: &[u8],
) -> Result<(), VerifyError> {
    let wanted = purpose_of(purpose);
    if cert.purpose() != wanted {
        return Err(VerifyError::WrongPurpose {
            wanted: wanted.as_str(),
        });
    }
    let message = login_message(purpose, ctx)?;
    shomei_pki::csr::verify_rsa_sha256(cert.spki(), &message, signature).map_err(|_| {
        VerifyError::BadSignature {
            what: match purpose {
                LoginPurpose::Authentication => "login challenge",
                LoginPurpose::Consent => "consent challenge",
            },
        }
    })
}

/// `signed`'s certificate with its status, which must be good.
fn finish(
    signed: SignedLogin,
    purpose: LoginPurpose,
    checked: CheckedCert,
) -> Result<CheckedCert, VerifyError> {
    if signed.purpose != purpose {
        return Err(VerifyError::Misuse(
            "a login signature finished for the other purpose",
        ));
    }
    if checked.cert().der() != signed.cert.der() {
        return Err(VerifyError::Misuse(
            "the status is for another certificate than the signer's",
        ));
    }
    checked.status().require_good()?;
    Ok(checked)
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

/// A checked login signature whose certificate's status (`checked`, the
/// same certificate) is good.
pub fn finish_login(
    signed: SignedLogin,
    checked: CheckedCert,
) -> Result<VerifiedLogin, VerifyError> {
    finish(signed, LoginPurpose::Authentication, checked).map(|cert| VerifiedLogin { cert })
}

/// Checks a login in one step: `cert` must be an authentication
/// certificate whose status is good and `signature` its signature over the
/// authentication [`login_message`] (signature first, then status).
pub fn verify_login(
    cert: CheckedCert,
    ctx: &LoginContext<'_>,
    signature: &[u8],
) -> Result<VerifiedLogin, VerifyError> {
    // As check_login_signature + finish_login, without copying the
    // certificate (the hot path of `bench login`).
    check_signature(cert.cert(), LoginPurpose::Authentication, ctx, signature)?;
    cert.status().require_good()?;
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

/// A checked consent signature whose certificate's status is good.
pub fn finish_consent(
    signed: SignedLogin,
    checked: CheckedCert,
) -> Result<VerifiedConsent, VerifyError> {
    finish(signed, LoginPurpose::Consent, checked).map(|cert| VerifiedConsent { cert })
}

/// As [`verify_login`], for the signing key: `cert` must be a good signing
/// certificate and `signature` its RSA SHA-256 signature over
/// [`login_message`]`(Consent, ctx)`.
pub fn verify_consent(
    cert: CheckedCert,
    ctx: &LoginContext<'_>,
    signature: &[u8],
) -> Result<VerifiedConsent, VerifyError> {
    check_signature(cert.cert(), LoginPurpose::Consent, ctx, signature)?;
    cert.status().require_good()?;
    Ok(VerifiedConsent { cert })
}
