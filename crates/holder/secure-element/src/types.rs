//! The vocabulary of the secure element: gates, keys, policies, unlocks.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};
use shomei_core::SignatureAlgorithm;

use crate::SeError;

/// A gate: a secret (or its biometric stand-in) that unlocks keys.
///
/// The rules are those of JPKI: the authentication PIN (利用者証明用暗証番号)
/// is exactly 4 digits with 3 tries; the signing password (署名用パスワード)
/// is 6–16 characters of upper-case A–Z and 0–9 with 5 tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GateId {
    /// The 4-digit authentication PIN; a confirmed biometric may stand in for it.
    AuthPin,
    /// The signing password; nothing ever stands in for it.
    SignPassword,
}

impl GateId {
    /// Both gates.
    pub const ALL: [Self; 2] = [Self::AuthPin, Self::SignPassword];

    /// Tries after which the gate blocks (and to which success resets it).
    pub const fn max_tries(self) -> u8 {
        match self {
            Self::AuthPin => 3,
            Self::SignPassword => 5,
        }
    }

    /// Whether an enrolled biometric may unlock this gate (the auth PIN
    /// only, as on the real phones).
    pub const fn allows_biometric(self) -> bool {
        matches!(self, Self::AuthPin)
    }

    /// Whether `pin` has the only format the gate can ever accept: auth PIN
    /// exactly 4 ASCII digits; signing password 6–16 of A–Z and 0–9.
    pub fn is_well_formed(self, pin: &[u8]) -> bool {
        match self {
            Self::AuthPin => pin.len() == 4 && pin.iter().all(u8::is_ascii_digit),
            Self::SignPassword => {
                (6..=16).contains(&pin.len())
                    && pin
                        .iter()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
        }
    }

    /// [`GateId::is_well_formed`] as a result ([`SeError::BadPinFormat`]).
    pub fn check_format(self, pin: &str) -> Result<(), SeError> {
        if self.is_well_formed(pin.as_bytes()) {
            Ok(())
        } else {
            Err(SeError::BadPinFormat(self))
        }
    }

    /// Stable name (`auth_pin`, `sign_password`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthPin => "auth_pin",
            Self::SignPassword => "sign_password",
        }
    }
}

impl fmt::Display for GateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AuthPin => "authentication PIN",
            Self::SignPassword => "signing password",
        })
    }
}

/// Failed biometric matches allowed before the biometric needs the PIN again
/// (Android's lockout after 5 failures).
pub const BIOMETRIC_MAX_TRIES: u8 = 5;

/// The state of a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum GateStatus {
    /// No PIN has been set: keys under this gate cannot be created yet.
    NotSet,
    /// Set; `tries_left` more wrong entries block it.
    Active {
        /// Tries left (1 ..= max).
        tries_left: u8,
    },
    /// Blocked: no unlock is possible through this gate (not even biometric).
    Blocked,
}

/// The state of the biometric stand-in for the auth PIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum BiometricStatus {
    /// Nothing enrolled.
    NotEnrolled,
    /// Enrolled, but the enrolment is new or changed (or too many failed
    /// matches): the auth PIN must be entered once before biometrics unlock.
    NeedsPin,
    /// Enrolled and confirmed by the auth PIN.
    Ready {
        /// Failed matches left before it needs the PIN again.
        tries_left: u8,
    },
}

/// How an [`Unlock`] was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnlockMethod {
    /// The PIN or password itself.
    Knowledge,
    /// A biometric match standing in for the auth PIN.
    Biometric,
    /// A user-presence confirmation with no secret (the holder confirmed
    /// in the app, e.g. a consent screen): only keys whose policy admits it
    /// ([`KeyPolicy::MDOC_PRESENCE`]) accept it; never a JPKI key.
    Presence,
}

/// Longest session an [`Unlock`] may open.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(10 * 60);

/// For how long an [`Unlock`] is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnlockScope {
    /// One key operation (it is spent by the first operation that accepts it).
    Once,
    /// Up to `max_uses` key operations within `ttl` (at most
    /// [`MAX_SESSION_TTL`]), until the element is locked, reopened or wiped.
    /// Operations in a session touch no storage.
    Session {
        /// How long after the verification the unlock expires.
        ttl: Duration,
        /// How many operations it allows (at least 1).
        max_uses: u32,
    },
}

impl UnlockScope {
    /// Checks the limits: a session lasts 1 ms ..= [`MAX_SESSION_TTL`] and
    /// allows at least one use.
    pub fn check(self) -> Result<(), SeError> {
        match self {
            Self::Once => Ok(()),
            Self::Session { ttl, max_uses } => {
                if ttl.is_zero() || ttl > MAX_SESSION_TTL || max_uses == 0 {
                    Err(SeError::BadInput(
                        "an unlock session lasts at most 10 minutes and allows at least one use",
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Proof that a gate was passed, good for one operation or a short session.
///
/// Only the secure element that issued it accepts it: it carries an opaque
/// random ticket that the element looks up in its own volatile session table
/// (a hand-made `Unlock` names no session and is refused). It is neither
/// `Clone` nor `Copy`; dropping it does not end the session (use
/// [`crate::SecureElement::lock_all`]), and reopening the element ends every
/// session.
pub struct Unlock {
    element: [u8; 16],
    ticket: [u8; 16],
    gate: GateId,
    method: UnlockMethod,
}

impl Unlock {
    /// For providers: wraps a session the provider has recorded under
    /// `ticket` (fresh randomness) for the element instance `element`.
    pub fn issue(element: [u8; 16], ticket: [u8; 16], gate: GateId, method: UnlockMethod) -> Self {
        Self {
            element,
            ticket,
            gate,
            method,
        }
    }

    /// The gate passed.
    pub fn gate(&self) -> GateId {
        self.gate
    }

    /// How it was passed.
    pub fn method(&self) -> UnlockMethod {
        self.method
    }

    /// For providers: the element instance that issued it.
    pub fn element(&self) -> &[u8; 16] {
        &self.element
    }

    /// For providers: the session ticket.
    pub fn ticket(&self) -> &[u8; 16] {
        &self.ticket
    }
}

impl fmt::Debug for Unlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unlock")
            .field("gate", &self.gate)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// An ECDH shared secret (the 32-byte x coordinate on P-256) from
/// [`crate::SecureElement::agree`]: wiped on drop, never printed.
pub struct SharedSecret(zeroize::Zeroizing<[u8; 32]>);

impl SharedSecret {
    /// For providers: copies the agreed x coordinate (exactly 32 bytes).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SeError> {
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        if bytes.len() != out.len() {
            return Err(SeError::Crypto("ECDH secret is not 32 bytes".into()));
        }
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// The secret bytes (feed them to a KDF; do not keep them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// The key algorithms a secure element generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyKind {
    /// RSA-2048, PKCS#1 v1.5 with SHA-256 (every JPKI key).
    Rsa2048,
    /// ECDSA P-256 with SHA-256.
    EcP256,
}

impl KeyKind {
    /// The algorithm [`crate::SecureElement::sign`] uses for this kind.
    pub const fn algorithm(self) -> SignatureAlgorithm {
        match self {
            Self::Rsa2048 => SignatureAlgorithm::RsaPkcs1Sha256,
            Self::EcP256 => SignatureAlgorithm::EcdsaP256Sha256,
        }
    }
}

/// Which gate unlocks a key, whether a biometric may stand in for it, and
/// whether a user-presence confirmation may.
///
/// Only the auth PIN gate may admit biometrics or presence: [`KeyPolicy::new`]
/// refuses a signing-password policy with biometrics and
/// [`KeyPolicy::with_presence`] one with presence, so no such key can exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "KeyPolicyRepr", into = "KeyPolicyRepr")]
pub struct KeyPolicy {
    gate: GateId,
    biometric: bool,
    presence: bool,
}

impl KeyPolicy {
    /// The phone signing key's policy: the signing password, nothing else.
    pub const PHONE_SIGN: Self = Self {
        gate: GateId::SignPassword,
        biometric: false,
        presence: false,
    };

    /// The phone authentication key's policy: the auth PIN, or a confirmed biometric.
    pub const PHONE_AUTH: Self = Self {
        gate: GateId::AuthPin,
        biometric: true,
        presence: false,
    };

    /// The mobile ID (mdoc) device key's policy: the auth PIN, a confirmed
    /// biometric, or a user-presence confirmation
    /// ([`crate::SecureElement::confirm_presence`]) — as real wallets present
    /// after a consent screen. Still refused while the auth PIN is blocked.
    pub const MDOC_PRESENCE: Self = Self {
        gate: GateId::AuthPin,
        biometric: true,
        presence: true,
    };

    /// A policy without presence; [`SeError::BiometricNotAllowed`] if
    /// `biometric` is asked for a gate that does not allow it.
    pub fn new(gate: GateId, biometric: bool) -> Result<Self, SeError> {
        Self::with_presence(gate, biometric, false)
    }

    /// A policy; [`SeError::BiometricNotAllowed`] if `biometric` is asked
    /// for a gate that does not allow it, [`SeError::BadInput`] if
    /// `presence` is (only the auth PIN gate admits presence).
    pub fn with_presence(gate: GateId, biometric: bool, presence: bool) -> Result<Self, SeError> {
        if biometric && !gate.allows_biometric() {
            return Err(SeError::BiometricNotAllowed(gate));
        }
        if presence && gate != GateId::AuthPin {
            return Err(SeError::BadInput(
                "only the authentication PIN gate admits a presence confirmation",
            ));
        }
        Ok(Self {
            gate,
            biometric,
            presence,
        })
    }

    /// The gate.
    pub fn gate(&self) -> GateId {
        self.gate
    }

    /// Whether a biometric unlock of the gate is accepted.
    pub fn biometric_allowed(&self) -> bool {
        self.biometric
    }

    /// Whether a user-presence confirmation unlocks the key.
    pub fn presence_allowed(&self) -> bool {
        self.presence
    }

    /// Whether an unlock of `gate` obtained by `method` satisfies the policy.
    pub fn accepts(&self, gate: GateId, method: UnlockMethod) -> bool {
        gate == self.gate
            && match method {
                UnlockMethod::Knowledge => true,
                UnlockMethod::Biometric => self.biometric,
                UnlockMethod::Presence => self.presence,
            }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyPolicyRepr {
    gate: GateId,
    biometric: bool,
    /// Absent in images and wallets written before presence existed.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    presence: bool,
}

impl TryFrom<KeyPolicyRepr> for KeyPolicy {
    type Error = SeError;

    fn try_from(r: KeyPolicyRepr) -> Result<Self, SeError> {
        Self::with_presence(r.gate, r.biometric, r.presence)
    }
}

impl From<KeyPolicy> for KeyPolicyRepr {
    fn from(p: KeyPolicy) -> Self {
        Self {
            gate: p.gate,
            biometric: p.biometric,
            presence: p.presence,
        }
    }
}

/// Longest key label.
pub const MAX_LABEL_LEN: usize = 64;

/// Names one key inside one element. It holds no key material; a handle
/// from before a wipe never names a key created after it (the id is random).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyHandle {
    id: [u8; 16],
    label: String,
}

impl KeyHandle {
    /// For providers: a handle for the key with random `id` and `label`.
    pub fn new(id: [u8; 16], label: &str) -> Self {
        Self {
            id,
            label: label.to_owned(),
        }
    }

    /// The random id.
    pub fn id(&self) -> &[u8; 16] {
        &self.id
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Labels are 1 to [`MAX_LABEL_LEN`] characters of ASCII letters,
    /// digits, `.`, `_` and `-` ([`SeError::BadLabel`] otherwise).
    pub fn check_label(label: &str) -> Result<(), SeError> {
        let ok = (1..=MAX_LABEL_LEN).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok { Ok(()) } else { Err(SeError::BadLabel) }
    }
}

/// What the element tells about a key (never its private part).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The handle.
    pub handle: KeyHandle,
    /// Algorithm.
    pub kind: KeyKind,
    /// Unlock policy.
    pub policy: KeyPolicy,
}

/// A device's identity as attested (16 random bytes set at manufacture).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId([u8; 16]);

impl DeviceId {
    /// From its bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Its bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.to_hex())
    }
}

/// A key's attestation: DER certificates, the attested key's first, up to
/// (and including) the manufacturer's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationChain(Vec<Vec<u8>>);

impl AttestationChain {
    /// From DER certificates, leaf first.
    pub fn new(certs: Vec<Vec<u8>>) -> Self {
        Self(certs)
    }

    /// The certificates, leaf first.
    pub fn certs(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// The attestation certificate of the key itself.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.0.first().map(Vec::as_slice)
    }

    /// The certificates, leaf first.
    pub fn into_certs(self) -> Vec<Vec<u8>> {
        self.0
    }
}

/// Why an element was wiped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
#[non_exhaustive]
pub enum WipeReason {
    /// [`crate::SecureElement::wipe`] was called.
    Requested,
    /// Its sealed storage failed a check on open.
    Tampered(TamperKind),
}

impl fmt::Display for WipeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requested => f.write_str("wiped on request"),
            Self::Tampered(k) => write!(f, "wiped after tampering was detected: {k}"),
        }
    }
}

/// What was wrong with sealed storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TamperKind {
    /// Shorter than a header and a tag.
    Truncated,
    /// Unknown magic or format version.
    BadHeader,
    /// Sealed for another device.
    WrongDevice,
    /// The authenticated encryption did not verify (a changed byte, a cut
    /// ciphertext, or another key).
    Authentication,
    /// Authentic but older than the last write the device recorded (an old
    /// copy put back).
    Rollback,
    /// Authentic but newer than the device's counter allows (the counter
    /// store itself was rolled back).
    CounterAhead,
    /// Gone although the device recorded writes.
    Missing,
    /// Authentic but not a valid image.
    Malformed,
}

impl fmt::Display for TamperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "sealed storage is truncated",
            Self::BadHeader => "sealed storage has an unknown header",
            Self::WrongDevice => "sealed storage belongs to another device",
            Self::Authentication => "sealed storage failed authentication",
            Self::Rollback => "sealed storage was rolled back to an older copy",
            Self::CounterAhead => "sealed storage is ahead of the device counter",
            Self::Missing => "sealed storage is missing",
            Self::Malformed => "sealed storage holds no valid image",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_formats_follow_jpki() {
        assert!(GateId::AuthPin.is_well_formed(b"0000"));
        for bad in [&b"123"[..], b"12345", b"12a4", "１２３４".as_bytes()] {
            assert!(!GateId::AuthPin.is_well_formed(bad));
        }
        assert!(GateId::SignPassword.is_well_formed(b"ABC123"));
        assert!(GateId::SignPassword.is_well_formed(b"ABCDEFGHIJ123456"));
        for bad in [&b"ABC12"[..], b"abc123", b"ABC-123", b"ABCDEFGHIJ1234567"] {
            assert!(!GateId::SignPassword.is_well_formed(bad));
        }
        assert_eq!(GateId::AuthPin.max_tries(), 3);
        assert_eq!(GateId::SignPassword.max_tries(), 5);
    }

    #[test]
    fn biometric_never_stands_in_for_the_signing_password() {
        assert_eq!(
            KeyPolicy::new(GateId::SignPassword, true),
            Err(SeError::BiometricNotAllowed(GateId::SignPassword))
        );
        assert!(!KeyPolicy::PHONE_SIGN.accepts(GateId::SignPassword, UnlockMethod::Biometric));
        assert!(KeyPolicy::PHONE_SIGN.accepts(GateId::SignPassword, UnlockMethod::Knowledge));
        assert!(KeyPolicy::PHONE_AUTH.accepts(GateId::AuthPin, UnlockMethod::Biometric));
        assert!(!KeyPolicy::PHONE_AUTH.accepts(GateId::SignPassword, UnlockMethod::Knowledge));
        // What deserialisation goes through: an impossible policy is refused.
        assert!(
            KeyPolicy::try_from(KeyPolicyRepr {
                gate: GateId::SignPassword,
                biometric: true,
                presence: false,
            })
            .is_err()
        );
    }

    #[test]
    fn only_the_mdoc_policy_accepts_presence() {
        assert!(KeyPolicy::MDOC_PRESENCE.accepts(GateId::AuthPin, UnlockMethod::Presence));
        assert!(KeyPolicy::MDOC_PRESENCE.accepts(GateId::AuthPin, UnlockMethod::Knowledge));
        assert!(KeyPolicy::MDOC_PRESENCE.accepts(GateId::AuthPin, UnlockMethod::Biometric));
        assert!(!KeyPolicy::MDOC_PRESENCE.accepts(GateId::SignPassword, UnlockMethod::Presence));
        for p in [
            KeyPolicy::PHONE_AUTH,
            KeyPolicy::PHONE_SIGN,
            KeyPolicy::new(GateId::AuthPin, false).unwrap(),
        ] {
            assert!(!p.presence_allowed());
            for gate in GateId::ALL {
                assert!(!p.accepts(gate, UnlockMethod::Presence), "{p:?}");
            }
        }
        assert!(KeyPolicy::with_presence(GateId::SignPassword, false, true).is_err());
        assert_eq!(
            KeyPolicy::with_presence(GateId::AuthPin, true, true),
            Ok(KeyPolicy::MDOC_PRESENCE)
        );
    }

    #[test]
    fn unlock_debug_hides_the_ticket() {
        let u = Unlock::issue([7; 16], [9; 16], GateId::AuthPin, UnlockMethod::Knowledge);
        let text = format!("{u:?}");
        assert!(!text.contains('9'), "{text}");
        assert!(text.contains("AuthPin"));
    }

    #[test]
    fn labels_and_scopes() {
        assert!(KeyHandle::check_label("jpki.sign-1_a").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert_eq!(KeyHandle::check_label(bad), Err(SeError::BadLabel));
        }
        assert!(UnlockScope::Once.check().is_ok());
        let s = |secs, max_uses| UnlockScope::Session {
            ttl: Duration::from_secs(secs),
            max_uses,
        };
        assert!(s(600, 1).check().is_ok());
        assert!(s(601, 1).check().is_err());
        assert!(s(0, 1).check().is_err());
        assert!(s(10, 0).check().is_err());
    }
}
