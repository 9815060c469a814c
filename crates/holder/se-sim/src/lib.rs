//! Holder: a simulated secure element, the provider of
//! [`shomei_secure_element::SecureElement`] that the phone runs on in
//! Shōmei (a stand-in for Android's GP-SE / StrongBox).
//!
//! # Pieces
//!
//! * [`SimManufacturer`] — the simulated manufacturer: a self-signed P-256
//!   root ("Shomei Simulated SE Manufacturer Root") in two files
//!   ([`manufacturer::ROOT_KEY_FILE`], [`manufacturer::ROOT_CERT_FILE`]).
//!   The authority is configured to trust its certificate. At "manufacture"
//!   it makes each device's hardware ([`FusedIdentity`]): a device id, a
//!   sealing key, and a P-256 attestation key with a certificate it issues.
//! * [`DeviceRoot`] — the hardware: the fused identity and a monotonic
//!   write counter. [`FileDeviceRoot`] keeps both in `DEVICE.key` (0600),
//!   **a file standing in for fuses and RPMB**; tests inject
//!   [`MemoryDeviceRoot`].
//! * [`SealedStore`] — where the sealed image lives: [`FileStore`] (one file,
//!   atomic replace: temp + fsync + rename + fsync dir, mode 0600, optional
//!   inter-process lock) or [`MemoryStore`] (tests, simulated power loss).
//! * [`SimSecureElement`] — the element itself.
//!
//! # Sealed storage
//!
//! All durable state (PIN records and counters, the biometric enrolment,
//! keys as PKCS#8, their attestation certificates, the last wipe reason) is
//! one JSON image, sealed with AES-256-GCM under a key derived from the
//! fused sealing key, with a fresh random nonce per write and the header
//! (magic, format version, device id, write counter, nonce) as additional
//! authenticated data. See [`seal`] for the byte layout.
//!
//! **Rollback is detected.** Every write carries the next counter value; the
//! image is written first, then the device counter is raised. On open the
//! image's counter must equal the device's (or exceed it by one: a crash
//! between the two writes, caught up on open). An older copy put back is
//! refused. A failed write poisons the element until it is reopened, so at
//! most one image beyond the counter can exist. Limits: someone who can
//! roll back `DEVICE.key` together with the sealed file is not detected
//! (real hardware keeps the counter where the OS cannot write); and a
//! sealed image whose write reported failure may, if it reached the disk
//! (e.g. a leftover temporary file), be swapped with the one written after
//! it at the same counter value.
//!
//! **Tampering wipes.** A flipped byte, a cut file, another device's file,
//! an older copy or a missing file is detected on open: the element commits
//! a fresh empty image that records why, answers
//! [`SeError::Tampered`](shomei_secure_element::SeError::Tampered), and
//! after reopening reports the reason through
//! [`SecureElement::last_wipe`](shomei_secure_element::SecureElement::last_wipe).
//! The device identity (attestation) survives, as on a real phone.
//!
//! **The app's sealed data.** [`SecureElement::seal`](shomei_secure_element::SecureElement::seal)
//! encrypts the app's own data (the phone's wallet) under a key derived from
//! the fused sealing key and a *data epoch* (see [`seal`]); the key itself is
//! never stored. A requested wipe raises the epoch (in the sealed image and
//! in the device root), so blobs sealed before it never open again once the
//! app has stored data sealed in the new epoch
//! ([`SecureElement::sealed_data_stored`](shomei_secure_element::SecureElement::sealed_data_stored));
//! until then, and only while the element holds no keys, the previous
//! epoch's key still unseals (never seals), so a crash between the wipe and
//! the app's next write does not lock the app out of its data. A wipe after
//! tampering keeps the epoch (it is read back from the device root), so the
//! phone can still read its wallet and tell the authority. The device root
//! also records, once and for good, that the app has stored sealed data
//! ([`SecureElement::has_stored_sealed_data`](shomei_secure_element::SecureElement::has_stored_sealed_data)):
//! no wipe, not even one after tampering, forgets it.
//!
//! # Unlocks and the sign path
//!
//! Unlock sessions live in RAM only (random tickets, expiry by an injected
//! monotonic [`Clock`]). Only PIN and biometric counters, PIN changes,
//! enrolments, key creation/deletion and wipes write the sealed file;
//! signing within an unlocked session never does (see [`mod@bench`]).
//!
//! # Attestation
//!
//! Each created key gets a certificate issued by the device attestation key
//! with Shōmei's key description extension
//! ([`shomei_secure_element::attestation`]); [`SecureElement::attest`](shomei_secure_element::SecureElement::attest)
//! returns `[key cert, device cert, manufacturer root]`, which the
//! authority checks with
//! [`shomei_secure_element::verify_attestation`]. The key certificate has
//! the device certificate's validity (the element has no wall clock); the
//! challenge gives freshness.

#![forbid(unsafe_code)]

pub mod bench;
mod clock;
pub mod device;
mod element;
pub mod manufacturer;
pub mod seal;
mod storage;

pub use clock::{Clock, ManualClock, SystemClock};
pub use device::{DeviceRoot, FileDeviceRoot, FusedIdentity, MemoryDeviceRoot};
pub use element::{
    DEVICE_FILE, MAX_SESSIONS, MAX_TEMPLATE_LEN, ONCE_TTL, SEALED_FILE, SimOptions,
    SimSecureElement,
};
pub use manufacturer::SimManufacturer;
pub use storage::{FileStore, MemoryStore, SealedStore};

#[cfg(test)]
mod tests;
