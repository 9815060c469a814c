//! Holder: the secure element abstraction of the phone (JPKI's
//! "スマホ用電子証明書" lives in Android's GP-SE), and the verifier the
//! authority runs on key attestations.
//!
//! This crate is the contract only — no IO, no provider. `shomei-se-sim` is
//! the simulated provider; an HSM or a real keystore would be another one.
//! The authority depends on this crate (for [`verify_attestation`]), never on
//! a provider.
//!
//! # Model
//!
//! * **Keys** are generated inside the element by
//!   [`SecureElement::create_key`] and never leave it: no method returns
//!   private bytes. Each key carries a [`KeyPolicy`]: the one gate that
//!   unlocks it and whether a biometric may stand in for that gate. The
//!   phone's signing key uses [`KeyPolicy::PHONE_SIGN`] (signing password
//!   only), its authentication key [`KeyPolicy::PHONE_AUTH`] (auth PIN or
//!   biometric).
//! * **Gates** ([`GateId`]) follow JPKI: the auth PIN is 4 digits with 3
//!   tries, the signing password 6–16 of A–Z0–9 with 5 tries. A provider
//!   decrements the retry counter and makes it durable **before** comparing
//!   (a crash must not refund a try, and no answer may depend on the PIN
//!   unless the try is on record); success resets it.
//! * **Biometrics** may replace the auth PIN, never the signing password
//!   (as on the real phones; [`KeyPolicy::new`] cannot even express the
//!   latter). A new or changed enrolment does not unlock anything until the
//!   auth PIN has been entered once; changing it also ends every biometric
//!   session.
//! * **Presence**: [`SecureElement::confirm_presence`] unlocks the auth PIN
//!   gate by a user-presence confirmation, no secret. Only
//!   [`KeyPolicy::MDOC_PRESENCE`] (the mobile ID's device key) accepts it;
//!   the JPKI keys never do.
//! * **Unlocks are proof values.** Passing a gate yields an [`Unlock`] that
//!   names a session in the issuing element's volatile table, tied to the gate
//!   and method, and good for one operation ([`UnlockScope::Once`]) or a short
//!   session ([`UnlockScope::Session`], at most [`MAX_SESSION_TTL`]). Key
//!   operations within a session must not write storage.
//! * **Attestation**: each key comes with an [`AttestationChain`] (key
//!   certificate → device attestation certificate → manufacturer root)
//!   whose leaf carries Shōmei's key-description extension
//!   ([`attestation`]), binding the authority's challenge, the key's
//!   policy, the device, "generated inside" and "not exportable".
//!
//! * **Sealing** ([`SecureElement::seal`], [`SecureElement::unseal`]): the
//!   app's own data (the phone's wallet file) encrypted with AES-256-GCM
//!   under a key that never leaves the element, bound to a `context` (the
//!   purpose) as additional data. No gate: the app opens its data at start,
//!   like Android's device-bound keys without user authentication. A wipe
//!   ([`SecureElement::wipe`]) destroys that key and starts a new one, so
//!   nothing sealed before it opens again once the app has stored data
//!   sealed under the new key ([`SecureElement::sealed_data_stored`]; until
//!   then the old key still unseals, so an interrupted wipe does not lock
//!   the app out of its data). The element also remembers that the app has
//!   ever stored sealed data, so the app can refuse plain data from then on
//!   ([`SecureElement::has_stored_sealed_data`]).
//!
//! The trait is object safe: callers hold `Box<dyn SecureElement>`.

#![forbid(unsafe_code)]

pub mod attestation;
mod error;
mod signer;
mod types;

pub use attestation::{AttestationError, AttestedKey, KeyDescription, verify_attestation};
pub use error::SeError;
pub use signer::{SeSigner, SharedElement};
pub use types::{
    AttestationChain, BIOMETRIC_MAX_TRIES, BiometricStatus, DeviceId, GateId, GateStatus,
    KeyHandle, KeyInfo, KeyKind, KeyPolicy, MAX_LABEL_LEN, MAX_SESSION_TTL, SharedSecret,
    TamperKind, Unlock, UnlockMethod, UnlockScope, WipeReason,
};

/// Longest attestation challenge a provider must accept.
pub const MAX_CHALLENGE_LEN: usize = 128;

/// Longest `context` of [`SecureElement::seal`] (it must not be empty).
pub const MAX_SEAL_CONTEXT_LEN: usize = 256;

/// Format version of a sealed blob ([`SecureElement::seal`]): its first byte.
pub const SEALED_DATA_VERSION: u8 = 1;

/// A secure element: keys that never leave it, gates that unlock them, and
/// attestation of both.
///
/// Every method that changes durable state either commits it or fails; a
/// provider whose commit failed refuses further work with
/// [`SeError::MustReopen`] until it is reopened.
pub trait SecureElement: Send {
    /// The attested device identity.
    fn device_id(&self) -> DeviceId;

    /// Why the element was last wiped, if it ever was (kept until the next
    /// wipe; creating keys does not clear it).
    fn last_wipe(&self) -> Option<WipeReason>;

    // ---- gates -------------------------------------------------------------

    /// The state of a gate.
    fn gate_status(&self, gate: GateId) -> GateStatus;

    /// Tries left before the gate blocks (0 when blocked or not set).
    fn tries_left(&self, gate: GateId) -> u8 {
        match self.gate_status(gate) {
            GateStatus::Active { tries_left } => tries_left,
            _ => 0,
        }
    }

    /// Sets a gate's PIN for the first time (full counter). Fails with
    /// [`SeError::GateAlreadySet`] if one is set.
    fn set_pin(&mut self, gate: GateId, pin: &str) -> Result<(), SeError>;

    /// Replaces a gate's PIN; `auth` must be a knowledge unlock of the same
    /// gate (a biometric cannot change the PIN). It spends one use of
    /// `auth` and ends the gate's other sessions.
    fn change_pin(&mut self, gate: GateId, auth: &Unlock, new_pin: &str) -> Result<(), SeError>;

    /// Verifies a PIN: the try is counted and committed first, then compared.
    /// Any attempt ends the gate's earlier sessions. Success resets the
    /// counter (and, for the auth PIN, confirms the biometric enrolment).
    fn verify_pin(
        &mut self,
        gate: GateId,
        pin: &str,
        scope: UnlockScope,
    ) -> Result<Unlock, SeError>;

    /// Enrols a biometric (the simulated template); it stays inactive until
    /// the auth PIN is next verified.
    fn enrol_biometric(&mut self, template: &[u8]) -> Result<(), SeError>;

    /// Replaces the enrolled biometric: ends every biometric session, and
    /// biometric unlock is suspended until the auth PIN is entered again.
    fn change_biometric_enrolment(&mut self, template: &[u8]) -> Result<(), SeError>;

    /// Removes the biometric enrolment (ends biometric sessions).
    fn remove_biometric(&mut self) -> Result<(), SeError>;

    /// The state of the biometric enrolment.
    fn biometric_status(&self) -> BiometricStatus;

    /// Unlocks `gate` with a biometric sample instead of its PIN (only
    /// gates that allow it, only after the PIN confirmed the enrolment, never
    /// while the gate is blocked). Failed matches are counted like PIN tries.
    fn verify_biometric(
        &mut self,
        gate: GateId,
        sample: &[u8],
        scope: UnlockScope,
    ) -> Result<Unlock, SeError>;

    /// Unlocks the auth PIN gate by a user-presence confirmation (the holder
    /// confirmed in the app; no secret, so no try is counted). The unlock has
    /// method [`UnlockMethod::Presence`]: only keys whose policy admits it
    /// ([`KeyPolicy::MDOC_PRESENCE`]) accept it. Refused like other unlocks
    /// while the gate is not set or blocked, and by a wiped or must-reopen
    /// element.
    fn confirm_presence(&mut self, scope: UnlockScope) -> Result<Unlock, SeError>;

    /// Ends every unlock session (screen lock, app to background).
    fn lock_all(&mut self);

    // ---- keys --------------------------------------------------------------

    /// Generates a key inside the element under `policy` (whose gate must be
    /// set) and certifies it for the attestation chain, binding
    /// `attestation_challenge` (at most [`MAX_CHALLENGE_LEN`] bytes).
    fn create_key(
        &mut self,
        label: &str,
        kind: KeyKind,
        policy: KeyPolicy,
        attestation_challenge: &[u8],
    ) -> Result<KeyHandle, SeError>;

    /// The key with this label.
    fn find_key(&self, label: &str) -> Result<KeyHandle, SeError>;

    /// Every key, in creation order.
    fn keys(&self) -> Vec<KeyInfo>;

    /// What the element tells about a key.
    fn key_info(&self, key: &KeyHandle) -> Result<KeyInfo, SeError>;

    /// Destroys a key.
    fn delete_key(&mut self, key: &KeyHandle) -> Result<(), SeError>;

    /// The key's DER SubjectPublicKeyInfo.
    fn public_key(&self, key: &KeyHandle) -> Result<Vec<u8>, SeError>;

    /// Signs a message: RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys) or ECDSA
    /// P-256 with SHA-256, DER signature (EC keys). `auth` must satisfy the
    /// key's policy; an accepted unlock spends one use even if signing fails.
    fn sign(&mut self, key: &KeyHandle, tbs: &[u8], auth: &Unlock) -> Result<Vec<u8>, SeError>;

    /// ECDH on P-256 (SP 800-56A, the x coordinate) of the key with `peer`,
    /// an uncompressed SEC1 point (`04 ‖ X ‖ Y`, 65 bytes) — what ISO/IEC
    /// 18013-5 DeviceMac needs from the mdoc's device key. EC keys only
    /// ([`SeError::Unsupported`] for RSA); a peer that is not a point on
    /// P-256 is [`SeError::BadInput`]. Gated exactly like
    /// [`SecureElement::sign`]: `auth` must satisfy the key's policy, and an
    /// accepted unlock spends one use even if the agreement fails. The private
    /// key never leaves the element; the secret is returned, not kept.
    fn agree(
        &mut self,
        key: &KeyHandle,
        peer: &[u8],
        auth: &Unlock,
    ) -> Result<SharedSecret, SeError>;

    /// Raw PKCS#1 v1.5 signature over an encoded DigestInfo (SHA-256/384/512),
    /// as the JPKI applet's `80 2A 00 80` does. RSA keys only.
    fn sign_digest_info(
        &mut self,
        key: &KeyHandle,
        digest_info: &[u8],
        auth: &Unlock,
    ) -> Result<Vec<u8>, SeError>;

    /// The key's attestation chain (see [`verify_attestation`]).
    fn attest(&self, key: &KeyHandle) -> Result<AttestationChain, SeError>;

    // ---- the app's own data -------------------------------------------------

    /// Seals `plaintext` for `context` (1 to [`MAX_SEAL_CONTEXT_LEN`] bytes
    /// naming the purpose, e.g. `b"shomei/phone-wallet/v1"`) under the
    /// element's data-sealing key, which never leaves it: AES-256-GCM with a
    /// fresh random 96-bit nonce and `context` in the additional data.
    ///
    /// ```text
    /// version (1 byte, SEALED_DATA_VERSION) ‖ nonce (12) ‖ ciphertext ‖ tag (16)
    /// ```
    ///
    /// The additional data is `version ‖ context`, so a blob opens only for
    /// the purpose it was sealed for. No gate unlocks this (the app reads its
    /// data at start); refused by an element that must be reopened.
    fn seal(&mut self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SeError>;

    /// Opens what [`SecureElement::seal`] made for the same `context` on this
    /// element since its last requested wipe — or before it, while the
    /// retiring key is still open (see [`SecureElement::wipe`]). Anything
    /// else — a changed or cut blob, another context, another element's
    /// blob, one sealed before a wipe — is [`SeError::Unsealable`], never a
    /// panic.
    fn unseal(&self, context: &[u8], sealed: &[u8])
    -> Result<zeroize::Zeroizing<Vec<u8>>, SeError>;

    /// The app tells the element it has durably stored data sealed by
    /// [`SecureElement::seal`] (call it after every such write; it writes
    /// nothing when there is nothing to record). From then on the data key
    /// of before the last requested wipe is gone for good
    /// ([`SecureElement::retiring_seal_key_open`] is false) and
    /// [`SecureElement::has_stored_sealed_data`] is true.
    fn sealed_data_stored(&mut self) -> Result<(), SeError>;

    /// Whether the app has ever confirmed storing sealed data
    /// ([`SecureElement::sealed_data_stored`]) on this element. Survives
    /// every wipe: once true, no plain (unsealed) copy of the app's data
    /// should be trusted.
    fn has_stored_sealed_data(&self) -> bool;

    /// Whether data sealed before the last requested wipe still unseals: a
    /// wipe keeps the previous data key for [`SecureElement::unseal`] only,
    /// until the app confirms storing data under the new key, and only while
    /// the element holds no keys. The app should then seal and store its
    /// data again at once.
    fn retiring_seal_key_open(&self) -> bool;

    /// Destroys every key, PIN and enrolment and ends every session; the
    /// device identity stays. [`SecureElement::last_wipe`] then reports
    /// [`WipeReason::Requested`]. A new data-sealing key takes the place of
    /// the old one: data sealed after the wipe opens under it. The old key
    /// is kept for [`SecureElement::unseal`] only (never for sealing) until
    /// the app confirms it has stored data sealed under the new key
    /// ([`SecureElement::sealed_data_stored`]) or the element holds keys
    /// again; from then on data sealed before the wipe never opens again.
    /// (After two wipes without such a confirmation, the key kept is the
    /// one of the last stored data: the oldest.)
    fn wipe(&mut self) -> Result<(), SeError>;
}
