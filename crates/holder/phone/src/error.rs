//! The phone crate's one error type.

use core::fmt;

use shomei_card::CardError;
use shomei_secure_element::{SeError, TamperKind};

use crate::WipeCause;

/// Everything the phone wallet can refuse or fail at.
///
/// No variant carries a PIN, a password, a biometric sample, a device token
/// or key material, so `Display` and `Debug` are safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneError {
    /// An argument is unacceptable (what).
    BadInput(String),
    /// The card's signing password was wrong; the try was counted on the
    /// card and nothing else changed.
    WrongCardPassword {
        /// Tries left on the card before its signing password blocks.
        tries_left: u8,
    },
    /// The card's signing password is blocked (municipal window).
    CardPasswordBlocked,
    /// The chip presented as the card is not a My Number Card (e.g. a phone).
    NotACard,
    /// Any other card failure.
    Card(CardError),
    /// The secure element refused or failed (wrong PIN, blocked gate,
    /// biometric needing the PIN…).
    SecureElement(SeError),
    /// The secure element found its storage tampered with and wiped itself.
    Tampered(TamperKind),
    /// The phone's wallet file does not match its secure element (what).
    WalletMismatch(String),
    /// The wallet file is sealed but this phone's secure element cannot open
    /// it (why): changed, copied from another phone, or sealed before the
    /// element was wiped; or it is plain although this phone already stored
    /// a sealed wallet. Nothing was read from it or written over it.
    WalletUnsealable(&'static str),
    /// The phone holds no certificates (never provisioned, or wiped).
    NotProvisioned {
        /// Why it was wiped, if it was.
        wiped: Option<WipeCause>,
    },
    /// The phone already holds credentials: retire it (or let the authority
    /// wipe it) before provisioning it again.
    AlreadyProvisioned,
    /// The authority answered with an error (`application/problem+json`).
    Refused {
        /// HTTP status.
        status: u16,
        /// The problem's stable `code`.
        code: String,
        /// The problem's `detail`.
        detail: String,
    },
    /// The authority could not be reached (what).
    Http(String),
    /// The authority answered something unexpected (what).
    Protocol(String),
    /// The wallet file could not be read or written (what).
    Storage(String),
    /// A certificate, CSR or signature could not be built or read (what).
    Pki(String),
}

impl PhoneError {
    /// Whether the error is the user's input (exit code 2 in the CLI):
    /// bad arguments, wrong or blocked PINs and passwords, biometric
    /// refusals, and the authority refusing the request (4xx).
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::BadInput(_)
            | Self::WrongCardPassword { .. }
            | Self::CardPasswordBlocked
            | Self::NotACard
            | Self::NotProvisioned { .. }
            | Self::AlreadyProvisioned => true,
            Self::Card(e) => matches!(
                e,
                CardError::WrongPin { .. }
                    | CardError::Blocked
                    | CardError::BadPinFormat(_)
                    | CardError::SecurityStatusNotSatisfied
            ),
            Self::SecureElement(e) => matches!(
                e,
                SeError::BadPinFormat(_)
                    | SeError::WrongPin { .. }
                    | SeError::Blocked(_)
                    | SeError::GateNotSet(_)
                    | SeError::BiometricNotAllowed(_)
                    | SeError::BiometricNotEnrolled
                    | SeError::BiometricAlreadyEnrolled
                    | SeError::BiometricNeedsPin
                    | SeError::BiometricMismatch { .. }
                    | SeError::BadInput(_)
            ),
            Self::Refused { status, .. } => (400..500).contains(status) && *status != 401,
            _ => false,
        }
    }
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadInput(m) => f.write_str(m),
            Self::WrongCardPassword { tries_left } => write!(
                f,
                "wrong card signing password: {tries_left} tries left on the card before it blocks (nothing was changed)"
            ),
            Self::CardPasswordBlocked => f.write_str(
                "the card's signing password is blocked: have it reset at the municipal window",
            ),
            Self::NotACard => {
                f.write_str("the chip given as the card is not a My Number Card (token)")
            }
            Self::Card(e) => write!(f, "card: {e}"),
            Self::SecureElement(e) => write!(f, "secure element: {e}"),
            Self::Tampered(kind) => write!(
                f,
                "the phone's secure element storage was tampered with ({kind}); it wiped itself: \
                 provision the phone again from the card"
            ),
            Self::WalletMismatch(m) => write!(
                f,
                "the phone's wallet does not match its secure element ({m}): it was tampered with"
            ),
            Self::WalletUnsealable(why) => write!(
                f,
                "the phone's wallet file cannot be opened by this phone's secure element ({why}); \
                 it was left as it is: move it away to start an empty wallet, then provision \
                 the phone again from the card"
            ),
            Self::NotProvisioned { wiped: None } => {
                f.write_str("the phone holds no certificates: provision it from the card first")
            }
            Self::NotProvisioned { wiped: Some(why) } => write!(
                f,
                "the phone holds no certificates ({why}): provision it again from the card"
            ),
            Self::AlreadyProvisioned => f.write_str(
                "the phone already holds certificates: retire it first (shomei phone retire)",
            ),
            Self::Refused {
                status,
                code,
                detail,
            } => write!(f, "the authority refused ({status} {code}): {detail}"),
            Self::Http(m) => write!(f, "cannot reach the authority: {m}"),
            Self::Protocol(m) => write!(f, "unexpected answer from the authority: {m}"),
            Self::Storage(m) => write!(f, "phone storage: {m}"),
            Self::Pki(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for PhoneError {}

impl From<SeError> for PhoneError {
    fn from(e: SeError) -> Self {
        match e {
            SeError::Tampered(kind) => Self::Tampered(kind),
            other => Self::SecureElement(other),
        }
    }
}

impl From<shomei_pki::PkiError> for PhoneError {
    fn from(e: shomei_pki::PkiError) -> Self {
        Self::Pki(e.to_string())
    }
}
