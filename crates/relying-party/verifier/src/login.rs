//! The bytes a holder's key signs to log in: one builder for both sides.
//!
//! A login page (any web page the holder is sent to) chooses the
//! challenge. Were the key to sign the challenge as it is, a hostile page
//! could pass off as "challenge" bytes that mean something else to another
//! verifier, and the holder's PIN or signing password would then buy it:
//!
//! * the DER `SET OF` signed attributes of a CMS document (they start
//!   with `0x31`): the consent signature with the signing key would be a
//!   valid CMS signature over a document the holder never saw (and
//!   without signed attributes, over any short "document" at all);
//! * the authority's holder-proof message (`shomei/holder-proof/v1` 0x00
//!   action 0x00 serial 0x00 challenge, or the `device:` form): the
//!   authentication signature would be a proof that revokes a certificate
//!   or wipes a phone.
//!
//! So the holder signs, and the provider verifies, only
//!
//! ```text
//! "shomei-login-v1" 0x00 purpose 0x00 issuer 0x00 client_id 0x00 challenge
//! ```
//!
//! with `purpose` `authentication` (the authentication key) or `consent`
//! (the signing key, releasing the basic four), `issuer` the provider's
//! issuer URL (the holder checks the login URL is under it), `client_id`
//! the relying party asking, and `challenge` exactly
//! [`LOGIN_CHALLENGE_LEN`] random bytes. It starts with the ASCII `s`
//! (0x73), never `0x31`, so it is never DER signed attributes; it differs
//! from `shomei/holder-proof/v1` and `shomei/phone-provision/v1` at the
//! seventh byte; its fields hold no 0x00, so it parses one way only; and
//! the issuer inside means a signature made for one provider is refused
//! by another (a relayed login).

use crate::VerifyError;

/// The label every login message starts with.
pub const LOGIN_CONTEXT: &[u8] = b"shomei-login-v1";
/// The size of a login challenge (the provider's random bytes).
pub const LOGIN_CHALLENGE_LEN: usize = 32;
/// Longest issuer URL or client_id accepted in a login message.
const MAX_FIELD_LEN: usize = 2048;

/// Which key answers, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginPurpose {
    /// The authentication key: who is logging in.
    Authentication,
    /// The signing key: consent to release the basic four.
    Consent,
}

impl LoginPurpose {
    /// The word in the message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Consent => "consent",
        }
    }
}

/// What a login is bound to.
#[derive(Clone, Copy, Debug)]
pub struct LoginContext<'a> {
    /// The provider's issuer URL (no trailing slash).
    pub issuer: &'a str,
    /// The relying party (client_id).
    pub client_id: &'a str,
    /// The provider's challenge ([`LOGIN_CHALLENGE_LEN`] bytes).
    pub challenge: &'a [u8],
}

/// The message the holder signs for `purpose` in `ctx` (see the module
/// docs). Refuses a challenge that is not [`LOGIN_CHALLENGE_LEN`] bytes and
/// an issuer or client_id that is empty, too long, or holds a 0x00 — the
/// holder calls this before unlocking a key, so a hostile page gets nothing
/// signed.
pub fn login_message(
    purpose: LoginPurpose,
    ctx: &LoginContext<'_>,
) -> Result<Vec<u8>, VerifyError> {
    if ctx.challenge.len() != LOGIN_CHALLENGE_LEN {
        return Err(VerifyError::malformed(
            "login challenge",
            format!(
                "{} bytes, expected {LOGIN_CHALLENGE_LEN}",
                ctx.challenge.len()
            ),
        ));
    }
    for (what, field) in [("issuer", ctx.issuer), ("client_id", ctx.client_id)] {
        if field.is_empty() || field.len() > MAX_FIELD_LEN || field.as_bytes().contains(&0) {
            return Err(VerifyError::malformed(
                "login challenge",
                format!("{what}: 1–{MAX_FIELD_LEN} bytes without NUL"),
            ));
        }
    }
    let purpose = purpose.as_str();
    let mut m = Vec::with_capacity(
        LOGIN_CONTEXT.len() + purpose.len() + ctx.issuer.len() + ctx.client_id.len() + 4 + 32,
    );
    m.extend_from_slice(LOGIN_CONTEXT);
    m.push(0);
    m.extend_from_slice(purpose.as_bytes());
    m.push(0);
    m.extend_from_slice(ctx.issuer.as_bytes());
    m.push(0);
    m.extend_from_slice(ctx.client_id.as_bytes());
    m.push(0);
    m.extend_from_slice(ctx.challenge);
    Ok(m)
}
