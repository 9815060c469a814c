//! The card crate's one error type.

use core::fmt;

use crate::{FacePin, PinKind};

/// Everything that can go wrong on either side of the APDU link.
///
/// No variant ever carries a PIN, a password or key material, so `Display`
/// and `Debug` are safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardError {
    /// The PIN did not match (`63 Cx`); `tries_left` more tries before it blocks.
    WrongPin {
        /// Tries left before the PIN blocks (at least 1).
        tries_left: u8,
    },
    /// The PIN is blocked (`69 83`): only the municipal window can reset it.
    Blocked,
    /// The command needs a PIN verified first (`69 82`).
    SecurityStatusNotSatisfied,
    /// The application or file does not exist (`6A 82`).
    FileNotFound,
    /// The card refused the command in its current state (`69 86`, `69 85`),
    /// e.g. writing a certificate after activation.
    NotAllowed,
    /// The certificate EF is empty: the card has not been personalised.
    CertificateMissing,
    /// The PIN or password can never be valid for this kind (checked before
    /// sending, so no try is burnt, and on the card for a new PIN).
    BadPinFormat(PinKind),
    /// A text/visual AP PIN that can never be valid (checked before sending).
    BadFacePinFormat(FacePin),
    /// Chip memory could not be read or written (or the card reported `65 81`).
    Memory(String),
    /// The link to the card failed.
    Transport(String),
    /// A status word this crate does not expect for the command.
    UnexpectedStatus(u16),
    /// A response, image or argument is not well-formed (what was wrong).
    Malformed(String),
    /// Generating or loading a key failed.
    Key(String),
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongPin { tries_left } => {
                write!(f, "wrong PIN: {tries_left} tries left before it blocks")
            }
            Self::Blocked => f.write_str("PIN is blocked: reset it at the municipal window"),
            Self::SecurityStatusNotSatisfied => {
                f.write_str("security status not satisfied: verify the PIN first")
            }
            Self::FileNotFound => f.write_str("application or file not found on the card"),
            Self::NotAllowed => f.write_str("command not allowed in the card's current state"),
            Self::CertificateMissing => {
                f.write_str("no certificate on the card (not personalised)")
            }
            Self::BadPinFormat(PinKind::Auth) => {
                f.write_str("authentication PIN must be exactly 4 digits")
            }
            Self::BadPinFormat(PinKind::Sign) => {
                f.write_str("signing password must be 6 to 16 characters of upper-case A-Z and 0-9")
            }
            Self::BadFacePinFormat(FacePin::Text) => {
                f.write_str("the text AP PIN (券面事項入力補助用暗証番号) must be exactly 4 digits")
            }
            Self::BadFacePinFormat(FacePin::A) => {
                f.write_str("PIN A must be the 12-digit My Number")
            }
            Self::BadFacePinFormat(FacePin::B) => f.write_str(
                "PIN B must be 14 digits: birth date YYMMDD, expiry year YYYY, security code",
            ),
            Self::Memory(m) => write!(f, "chip memory failure: {m}"),
            Self::Transport(m) => write!(f, "card link failed: {m}"),
            Self::UnexpectedStatus(sw) => write!(f, "card answered unexpected status {sw:04X}"),
            Self::Malformed(m) => write!(f, "malformed: {m}"),
            Self::Key(m) => write!(f, "key failure: {m}"),
        }
    }
}

impl std::error::Error for CardError {}
