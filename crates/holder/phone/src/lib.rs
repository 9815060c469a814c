//! Holder: the phone wallet — JPKI's スマホ用電子証明書 on a phone's secure
//! element (jpki.md §3.2), put there from the My Number Card.
//!
//! # Pieces
//!
//! * [`applet`] — the phone's JPKI applet: the card's APDU state machine
//!   ([`shomei_card::JpkiApplet`]) over the secure element. Token
//!   `JPKIAPGPSETOKEN`; reading the authentication certificate needs the
//!   auth PIN; keys and PIN gates (with their persisted retry counters) are
//!   the element's, certificates the wallet's. The same
//!   [`shomei_card::JpkiClient`] that reads a card reads the phone.
//! * [`Phone`] — the wallet: the element plus a small state file
//!   ([`WalletState`]: registration at the authority with the device token,
//!   certificates, event cursor, notification inbox). Provisioning from the
//!   card ([`Phone::provision`]), signing ([`Phone::sign_detached`]),
//!   [`Phone::sync`] (remote wipe, notifications), [`Phone::retire`]
//!   (self-revocation before sale), biometrics
//!   ([`Phone::enrol_biometric`], [`Phone::unlock_auth`]).
//! * [`http`] — the authority link as a trait ([`AuthorityHttp`]), so the
//!   wallet is testable without sockets; the binary supplies an HTTP client.
//!
//! # The phone folder
//!
//! ```text
//! PHONE/phone.json      the wallet (0600, sealed by the element; no keys)
//! PHONE/se/se.sealed    the secure element's sealed storage (se-sim)
//! PHONE/se/DEVICE.key   the element's "hardware" (fused keys, write counter)
//! ```
//!
//! The element's storage is sealed and rollback-checked: tampering with it
//! makes the element wipe itself on the next open ([`PhoneError::Tampered`]).
//! The wallet holds no key, but personal data (the certificates name the
//! holder, the mobile ID carries the basic four) and the device token, so
//! it is sealed by the element ([`shomei_secure_element::SecureElement::seal`],
//! context [`WALLET_SEAL_CONTEXT`]): a copy opens on no other phone, nor on
//! this one once a wallet was stored after its element's next requested
//! wipe ([`PhoneError::WalletUnsealable`], the file left as it is). A wipe
//! whose wallet write failed still opens (the element keeps the old key for
//! unsealing until the next stored wallet), so it is reconciled and
//! confirmed to the authority. A plain wallet from before sealing is read
//! and sealed on open, but only while the element has never stored a sealed
//! wallet; after that a plain wallet is [`PhoneError::WalletUnsealable`].
//! Its certificates are checked against the element's keys on every open.
//!
//! # Rules kept
//!
//! * Keys are created inside the element and never leave it; every use goes
//!   through an element unlock (PIN or, for the authentication key only, a
//!   confirmed biometric).
//! * The card's signing password is verified **on the card** (counted
//!   there); a wrong one changes nothing else.
//! * A provisioning that fails after touching the element wipes it again;
//!   one that fails after the authority issued (its `201`) also tells it,
//!   with the new device token, so it revokes what it issued. A missing or
//!   unusable mobile ID is no such failure: sync fetches it later.
//! * No PIN, password, sample or token appears in `Debug` or errors.

#![forbid(unsafe_code)]

pub mod applet;
mod error;
pub mod http;
mod mdoc_key;
mod phone;
mod state;

pub use applet::{PhoneApplet, SeBackend};
pub use error::PhoneError;
pub use http::{AuthorityHttp, HttpRequest, HttpResponse, Method};
pub use phone::{
    AuthUnlock, CardFaceSecret, Phone, PhoneClient, ProvisionRequest, Provisioned, Retired,
    SyncReport,
};
pub use state::{
    FileWalletStore, INBOX_LIMIT, MemoryWalletStore, Notification, Registration, WALLET_FORMAT,
    WALLET_SEAL_CONTEXT, WalletCertificates, WalletMdoc, WalletState, WalletStore, WipeCause,
    WipeRecord,
};

/// The wallet file in a phone folder.
pub const WALLET_FILE: &str = "phone.json";
/// The secure element's folder in a phone folder.
pub const SE_DIR: &str = "se";
/// Label of the phone signing key in the element.
pub const SIGN_KEY_LABEL: &str = "jpki-sign";
/// Label of the phone authentication key in the element.
pub const AUTH_KEY_LABEL: &str = "jpki-auth";
/// Label of the mobile ID's device key (P-256) in the element.
pub const MDOC_KEY_LABEL: &str = "mdoc-device";

pub use mdoc_key::SeKeyAgreement;

#[cfg(test)]
mod tests;
