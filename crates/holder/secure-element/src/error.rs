//! The secure element's error type (the attestation verifier has its own,
//! [`crate::AttestationError`], since its caller is the authority, not the holder).

use core::fmt;

use crate::{GateId, TamperKind};

/// Everything a secure element can refuse or fail at.
///
/// No variant ever carries a PIN, a biometric sample, a ticket or key
/// material, so `Display` and `Debug` are safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeError {
    /// The PIN or password can never be valid for this gate (checked before
    /// counting, so no try is spent).
    BadPinFormat(GateId),
    /// Wrong PIN; `tries_left` more before the gate blocks (at least 1).
    WrongPin {
        /// The gate.
        gate: GateId,
        /// Tries left.
        tries_left: u8,
    },
    /// The gate is blocked (also answered to the try that blocks it).
    Blocked(GateId),
    /// No PIN is set for the gate yet.
    GateNotSet(GateId),
    /// The gate's PIN is already set (change it with an unlock instead).
    GateAlreadySet(GateId),
    /// The unlock is not (or no longer) valid here: issued by another element
    /// or before a reopen, expired, used up, or invalidated by a later event.
    NotUnlocked,
    /// The unlock is for another gate, or by a method the key's policy (or
    /// the operation) does not accept.
    WrongGate {
        /// The gate the key or operation needs.
        needed: GateId,
    },
    /// A biometric cannot unlock this gate (the signing password).
    BiometricNotAllowed(GateId),
    /// No biometric is enrolled.
    BiometricNotEnrolled,
    /// A biometric is already enrolled (change it instead).
    BiometricAlreadyEnrolled,
    /// The biometric enrolment is new or changed, or failed too often: enter
    /// the auth PIN once first.
    BiometricNeedsPin,
    /// The biometric sample did not match; `tries_left` more before it needs the PIN.
    BiometricMismatch {
        /// Failed matches left.
        tries_left: u8,
    },
    /// No such key (or the handle is from before a wipe).
    UnknownKey,
    /// A key with this label exists.
    LabelTaken,
    /// A label must be 1–64 of ASCII letters, digits, `.`, `_`, `-`.
    BadLabel,
    /// The key or element cannot do this (what).
    Unsupported(&'static str),
    /// An argument is unacceptable (what).
    BadInput(&'static str),
    /// Sealed storage failed its check on open; the element has been wiped.
    Tampered(TamperKind),
    /// The element has never been provisioned.
    NotProvisioned,
    /// The element (or its storage) is already provisioned.
    AlreadyProvisioned,
    /// A storage commit failed: nothing more is done until the element is
    /// reopened (as after a power loss).
    MustReopen,
    /// Storage could not be read or written (detail safe to show).
    Storage(String),
    /// A cryptographic operation failed (detail safe to show).
    Crypto(String),
    /// Sealed app data ([`crate::SecureElement::unseal`]) does not open
    /// here (why: cut short, unknown format, or it does not authenticate:
    /// changed, sealed for another purpose, by another element, or before
    /// the element was wiped).
    Unsealable(&'static str),
}

impl fmt::Display for SeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPinFormat(GateId::AuthPin) => {
                f.write_str("authentication PIN must be exactly 4 digits")
            }
            Self::BadPinFormat(GateId::SignPassword) => {
                f.write_str("signing password must be 6 to 16 characters of upper-case A-Z and 0-9")
            }
            Self::WrongPin { gate, tries_left } => {
                write!(f, "wrong {gate}: {tries_left} tries left before it blocks")
            }
            Self::Blocked(gate) => write!(f, "the {gate} is blocked"),
            Self::GateNotSet(gate) => write!(f, "no {gate} is set"),
            Self::GateAlreadySet(gate) => write!(f, "the {gate} is already set"),
            Self::NotUnlocked => {
                f.write_str("not unlocked: the unlock is unknown, expired, used up or invalidated")
            }
            Self::WrongGate { needed } => write!(f, "this needs the {needed}"),
            Self::BiometricNotAllowed(gate) => {
                write!(f, "a biometric cannot stand in for the {gate}")
            }
            Self::BiometricNotEnrolled => f.write_str("no biometric is enrolled"),
            Self::BiometricAlreadyEnrolled => f.write_str("a biometric is already enrolled"),
            Self::BiometricNeedsPin => f.write_str(
                "biometric unlock is suspended: enter the authentication PIN once first",
            ),
            Self::BiometricMismatch { tries_left } => write!(
                f,
                "biometric did not match: {tries_left} tries left before the PIN is needed"
            ),
            Self::UnknownKey => f.write_str("no such key in the secure element"),
            Self::LabelTaken => f.write_str("a key with this label exists"),
            Self::BadLabel => f.write_str(
                "a key label is 1 to 64 characters of ASCII letters, digits, '.', '_' and '-'",
            ),
            Self::Unsupported(what) => write!(f, "unsupported: {what}"),
            Self::BadInput(what) => write!(f, "bad input: {what}"),
            Self::Tampered(kind) => write!(
                f,
                "{kind}: the secure element has been wiped (keys and PINs are gone)"
            ),
            Self::NotProvisioned => f.write_str("the secure element has not been provisioned"),
            Self::AlreadyProvisioned => f.write_str("the secure element is already provisioned"),
            Self::MustReopen => {
                f.write_str("a storage write failed: reopen the secure element before using it")
            }
            Self::Storage(m) => write!(f, "secure element storage failure: {m}"),
            Self::Crypto(m) => write!(f, "secure element crypto failure: {m}"),
            Self::Unsealable(why) => write!(f, "sealed data cannot be opened: {why}"),
        }
    }
}

impl std::error::Error for SeError {}

impl From<SeError> for shomei_core::SignError {
    fn from(e: SeError) -> Self {
        match e {
            SeError::NotUnlocked | SeError::WrongGate { .. } => Self::Locked,
            other => Self::Backend(other.to_string()),
        }
    }
}
