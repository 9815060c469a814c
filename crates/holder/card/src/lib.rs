//! Holder: an emulated My Number Card (JPKI AP over APDUs) and its client.
//!
//! # Model
//!
//! The crate has two halves that meet only at the APDU byte level, exactly
//! where a real reader would sit (reference: `jpki.md` §1 and §3.2):
//!
//! * **Chip side** — [`Card`], a sans-IO state machine:
//!   [`Card::process_apdu`] takes a command APDU and returns the response
//!   data followed by SW1 SW2. It never panics, whatever the bytes. Its
//!   non-volatile state (the "chip memory": certificates, the two RSA-2048
//!   keys as PKCS#8, salted PIN hashes, retry counters, life-cycle phase) is
//!   one serde image that goes through [`ChipMemory`]: [`FileMemory`]
//!   (a 0600 file replaced atomically, so *the file is the chip*) or
//!   [`MemoryChip`] (RAM, with simulated power loss for tests). The
//!   volatile state (selected application/EF, verified PINs, pending GET
//!   RESPONSE data) is lost on [`Card::reset`], as on a power cycle.
//! * **The state machine is generic** ([`JpkiApplet`]): the APDU logic
//!   lives once, over two small traits — [`AppletSecrets`] (PIN counters
//!   with count-before-compare, public key templates, DigestInfo signing)
//!   and [`AppletFiles`] (token kind, phase, certificate EFs). [`Card`] is
//!   the chip-image backend; a phone plugs in its secure element (keys and
//!   PIN gates in the element, certificates in the wallet) and answers the
//!   same APDUs as a `JPKIAPGPSETOKEN` token.
//! * **Client side** — [`JpkiClient`] speaks only APDUs through a
//!   [`Transport`] ([`InProcess`] wraps a [`Card`] or any [`JpkiApplet`];
//!   `pcsc::PcscTransport`, with the `pcsc` feature, reaches a card on a
//!   PC/SC reader). [`CardSigner`] puts a card key behind
//!   [`shomei_core::Signer`].
//!
//! Keys are generated inside the chip by [`Card::manufacture`] and never
//! leave it through any APDU: the key EFs answer only COMPUTE DIGITAL
//! SIGNATURE and the read-public-key form of GENERATE ASYMMETRIC KEY PAIR.
//!
//! # Life cycle
//!
//! [`Card::manufacture`] → [`Phase::Personalisation`] (certificate EFs
//! writable with UPDATE/ERASE BINARY; keys readable as public keys for the
//! CSRs) → ACTIVATE FILE → [`Phase::Operational`] (no more writes).
//!
//! # Retry counters
//!
//! A VERIFY with data first decrements the counter and commits the chip
//! memory, and only then compares; a failed commit answers `65 81` without
//! comparing. A crash mid-VERIFY therefore never refunds a try, and the
//! answer never depends on the PIN unless the try is on record.
//!
//! # Commands and status words
//!
//! | Command | APDU | Notable answers |
//! |---|---|---|
//! | SELECT AP / EF | `00 A4 04 0C Lc AID`, `00 A4 02 0C 02 FID` | `6A 82` unknown (EFs only inside the AP); `6A 86` P1/P2 other than 04/02, 0C; selecting the AP clears verified PINs |
//! | READ BINARY | `00 B0 P1 P2 Le` | `6A 81` SFI (P1 bit 8); `6B 00` offset ≥ EF size (also an empty EF); short read: data + `62 82`; `69 82` PIN needed; `69 86` key/PIN EF or no current EF |
//! | VERIFY | `00 20 00 80` / `… Lc PIN` | `63 Cx` tries left (the counter read answers `63 C0` when blocked, as OpenSC's jpki driver requires); `69 83` a PIN sent to a blocked counter (also on the try that blocks); `67 00` with Le; `65 81` if the counter could not be committed |
//! | CHANGE REFERENCE DATA | `00 24 01 80 Lc new` | `69 82` not verified; `6A 80` bad format; `69 83` blocked |
//! | GENERATE ASYMMETRIC KEY PAIR (read) | `00 47 81 00 00` | `7F49` template, `61 XX` then GET RESPONSE `00 C0 00 00 XX`; any other P1/P2 `6A 86` |
//! | COMPUTE DIGITAL SIGNATURE | `80 2A 00 80 Lc DigestInfo 00` | `69 82` PIN not verified; `6A 80` not a SHA-256/384/512 DigestInfo |
//! | UPDATE / ERASE BINARY | `00 D6 P1 P2 Lc data`, `00 0E P1 P2` | certificate EFs in personalisation only, else `69 86`; `6B 00` hole; `6A 84` past 32 KiB; ERASE truncates |
//! | ACTIVATE FILE | `00 44 00 00` | `69 85` auth cert/CA (or sign CA for a sign cert) missing; idempotent |
//!
//! Anything unparsable is `67 00`; unknown class `6E 00`; unknown
//! instruction `6D 00`; a failed commit `65 81`.
//!
//! # The other applications (`face.rs`)
//!
//! SELECT of another AID switches application and clears the verified PINs
//! of the one left; an unknown AID is `6A 82` and keeps the selection.
//!
//! | Application | AID | Files and access |
//! |---|---|---|
//! | 券面事項入力補助AP | `D3 92 10 00 31 00 01 01 04 08` | PIN `0011` (4 digits, 3 tries), PIN A `0014`, PIN B `0015`; `0001` My Number (text PIN or PIN A), `0002` basic four `FF 20 {DF 21..25}` (any of the three), `0005` basic info (free) |
//! | 券面AP | `D3 92 10 00 31 00 01 01 04 02` | PIN A `0013` (the My Number), PIN B `0012` (照合番号B, 14 digits), 10 tries each, one counter shared with the text AP's PIN A/B; `0002` the authority-signed face (PIN A or B), `0003` basic info |
//! | Manufacture number | `D3 92 10 00 31 00 01 01 01 00` | READ RECORD `00 B2 01 0C Le`: `01 0D` + 13-character 製造番号 |
//!
//! The same status words as the JPKI AP apply (count-before-compare
//! VERIFY, `63 Cx`, `69 83`, `69 82`, `6B 00`); READ RECORD adds `6A 83`
//! (record), `6A 82` (SFI), `6A 86` (P2) and `6C 0F` (Le too small).
//!
//! # Fuzzing
//!
//! [`Card::process_apdu`] is the fuzz surface. A `cargo fuzz` target keeps
//! one manufactured image and replays it into a fresh in-memory chip per
//! input:
//!
//! ```no_run
//! use shomei_card::{Card, ChipMemory, MemoryChip, Variant};
//! use std::sync::OnceLock;
//!
//! static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
//!
//! fn fuzz_one(data: &[u8]) {
//!     let image = IMAGE.get_or_init(|| {
//!         let chip = MemoryChip::new();
//!         Card::manufacture(chip.clone(), Variant::Card, "ABC123", "1234").unwrap();
//!         chip.load().unwrap().to_vec()
//!     });
//!     let mut card = Card::open(MemoryChip::with_image(image)).unwrap();
//!     // One input = several APDUs, each prefixed by its length byte.
//!     let mut rest = data;
//!     while let Some((&n, tail)) = rest.split_first() {
//!         let (apdu, tail) = tail.split_at(usize::from(n).min(tail.len()));
//!         let resp = card.process_apdu(apdu);
//!         assert!(resp.len() >= 2);
//!         rest = tail;
//!     }
//! }
//! ```
//!
//! The unit test `random_apdus_never_panic_and_always_end_in_a_status_word`
//! does the same deterministically with a seeded PRNG.

#![forbid(unsafe_code)]

pub mod apdu;
mod applet;
mod chip;
mod client;
mod error;
mod face;
mod keyfmt;
mod memory;
#[cfg(feature = "pcsc")]
pub mod pcsc;
mod signer;
#[cfg(test)]
mod testutil;
pub mod vpcd;

pub use applet::{AppletBackend, AppletError, AppletFiles, AppletSecrets, JpkiApplet};
pub use chip::{Card, Phase};
pub use client::{
    CardFace, CardStatus, Certificates, FaceRead, InProcess, JpkiClient, SecureElement, TokenKind,
    Transport,
};
pub use error::CardError;
pub use face::{FacePin, OtherAp};
pub use memory::{ChipMemory, FileMemory, MemoryChip};
pub use signer::CardSigner;

use serde::{Deserialize, Serialize};

/// The ISO 7816-8 public key template (`7F49 { 81 modulus, 82 exponent }`)
/// of an RSA SubjectPublicKeyInfo: what "read public key" answers, for
/// [`AppletSecrets::public_key_template`].
pub fn public_key_template(spki: &[u8]) -> Result<Vec<u8>, CardError> {
    keyfmt::template_from_spki(spki)
}

/// What kind of token the chip emulates (it changes the token EF and the
/// access rule of the authentication certificate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Variant {
    /// A physical My Number Card: token `JPKIAPICCTOKEN2`, auth cert free to read.
    Card,
    /// A phone's GP secure element: token `JPKIAPGPSETOKEN`, auth cert behind the auth PIN.
    Phone,
}

/// The two JPKI secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinKind {
    /// 利用者証明用暗証番号: 4 digits, 3 tries (EF `0018`).
    Auth,
    /// 署名用パスワード: 6–16 of A–Z and 0–9, 5 tries (EF `001B`).
    Sign,
}

impl PinKind {
    /// The PIN EF.
    pub const fn fid(self) -> u16 {
        match self {
            Self::Auth => apdu::fid::AUTH_PIN,
            Self::Sign => apdu::fid::SIGN_PIN,
        }
    }

    /// Tries after which the PIN blocks (and to which success resets it).
    pub const fn max_tries(self) -> u8 {
        match self {
            Self::Auth => 3,
            Self::Sign => 5,
        }
    }

    /// Whether `pin` has the only format the card can ever accept: auth
    /// exactly 4 ASCII digits; sign 6–16 characters of upper-case A–Z and 0–9.
    pub fn is_well_formed(self, pin: &[u8]) -> bool {
        match self {
            Self::Auth => pin.len() == 4 && pin.iter().all(u8::is_ascii_digit),
            Self::Sign => {
                (6..=16).contains(&pin.len())
                    && pin
                        .iter()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
        }
    }

    pub(crate) fn check(self, pin: &str) -> Result<(), CardError> {
        if self.is_well_formed(pin.as_bytes()) {
            Ok(())
        } else {
            Err(CardError::BadPinFormat(self))
        }
    }
}

/// The two private keys on the chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Authentication key (EF `0017`), unlocked by the auth PIN.
    Auth,
    /// Signing key (EF `001A`), unlocked by the sign password.
    Sign,
}

impl KeyKind {
    /// The key EF.
    pub const fn fid(self) -> u16 {
        match self {
            Self::Auth => apdu::fid::AUTH_KEY,
            Self::Sign => apdu::fid::SIGN_KEY,
        }
    }

    /// The PIN that unlocks this key.
    pub const fn pin(self) -> PinKind {
        match self {
            Self::Auth => PinKind::Auth,
            Self::Sign => PinKind::Sign,
        }
    }
}

/// The four certificate EFs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// Signing certificate (EF `0001`), readable after the sign password.
    Sign,
    /// Authentication certificate (EF `000A`); on a phone, after the auth PIN.
    Auth,
    /// Signing CA certificate (EF `0002`).
    SignCa,
    /// Authentication CA certificate (EF `000B`).
    AuthCa,
}

impl CertKind {
    /// All four, in EF order.
    pub const ALL: [Self; 4] = [Self::Sign, Self::SignCa, Self::Auth, Self::AuthCa];

    /// The certificate EF.
    pub const fn fid(self) -> u16 {
        match self {
            Self::Sign => apdu::fid::SIGN_CERT,
            Self::SignCa => apdu::fid::SIGN_CA_CERT,
            Self::Auth => apdu::fid::AUTH_CERT,
            Self::AuthCa => apdu::fid::AUTH_CA_CERT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_formats() {
        assert!(PinKind::Auth.is_well_formed(b"0000"));
        for bad in [&b"123"[..], b"12345", b"12a4", "１２３４".as_bytes()] {
            assert!(!PinKind::Auth.is_well_formed(bad));
        }
        assert!(PinKind::Sign.is_well_formed(b"ABC123"));
        assert!(PinKind::Sign.is_well_formed(b"ABCDEFGHIJ123456"));
        for bad in [&b"ABC12"[..], b"abc123", b"ABC-123", b"ABCDEFGHIJ1234567"] {
            assert!(!PinKind::Sign.is_well_formed(bad));
        }
        assert_eq!(
            PinKind::Sign.check("x"),
            Err(CardError::BadPinFormat(PinKind::Sign))
        );
    }
}
