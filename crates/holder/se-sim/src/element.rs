//! The simulated secure element: sealed image, gates, sessions, keys.

use core::fmt;
use core::time::Duration;
use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::aead::{LessSafeKey, NONCE_LEN};
use aws_lc_rs::agreement;
use serde::{Deserialize, Serialize};
use shomei_core::{RandomSource, Signer as _};
use shomei_pki::{EcdsaP256Signer, RsaSigner, SystemRandom};
use shomei_secure_element::{
    AttestationChain, BIOMETRIC_MAX_TRIES, BiometricStatus, DeviceId, GateId, GateStatus,
    KeyDescription, KeyHandle, KeyInfo, KeyKind, KeyPolicy, MAX_CHALLENGE_LEN,
    MAX_SEAL_CONTEXT_LEN, SeError, SecureElement, SharedSecret, TamperKind, Unlock, UnlockMethod,
    UnlockScope, WipeReason,
};
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::device::{DeviceRoot, FileDeviceRoot};
use crate::manufacturer::DeviceCa;
use crate::seal;
use crate::storage::{FileStore, SealedStore};

/// The sealed storage file in a device folder.
pub const SEALED_FILE: &str = "se.sealed";
/// The hardware stand-in file in a device folder (see [`crate::device`]).
pub const DEVICE_FILE: &str = "DEVICE.key";

const IMAGE_FORMAT: u32 = 1;
const SALT_LEN: usize = 16;
const PIN_DOMAIN: &[u8] = b"shomei-se-sim PIN v1\0";
const BIO_DOMAIN: &[u8] = b"shomei-se-sim biometric v1\0";
/// How long a [`UnlockScope::Once`] unlock waits for its one operation.
pub const ONCE_TTL: Duration = Duration::from_secs(60);
/// Live unlock sessions kept at most (the oldest is dropped first).
pub const MAX_SESSIONS: usize = 16;
/// Largest simulated biometric template or sample.
pub const MAX_TEMPLATE_LEN: usize = 4096;

/// What the element runs with besides its storage: the session clock and
/// the randomness for nonces, salts, tickets and key ids (key generation
/// itself uses aws-lc-rs' generator).
pub struct SimOptions {
    /// Monotonic clock for unlock expiry.
    pub clock: Box<dyn Clock>,
    /// Randomness.
    pub rng: Box<dyn RandomSource>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            clock: Box::new(SystemClock::new()),
            rng: Box::new(SystemRandom::new()),
        }
    }
}

/// A simulated secure element (see the crate documentation).
pub struct SimSecureElement {
    store: Box<dyn SealedStore>,
    device: Box<dyn DeviceRoot>,
    seal_key: LessSafeKey,
    /// The app's data-sealing key of the current epoch (`image.data_epoch`).
    data_key: LessSafeKey,
    /// The key of `image.retiring_epoch`, for unsealing only.
    retiring_key: Option<LessSafeKey>,
    ca: DeviceCa,
    image: Image,
    loaded: HashMap<[u8; 16], LoadedKey>,
    sessions: Vec<Session>,
    /// Random per open: unlocks from another instance are refused.
    instance: [u8; 16],
    /// The write counter of the image on record.
    counter: u64,
    /// A commit failed: refuse everything until reopened.
    poisoned: bool,
    clock: Box<dyn Clock>,
    rng: Box<dyn RandomSource>,
}

/// The element's durable state, sealed as JSON.
#[derive(Clone, Serialize, Deserialize)]
struct Image {
    format: u32,
    auth_pin: Option<PinRecord>,
    sign_password: Option<PinRecord>,
    biometric: Option<BioRecord>,
    /// Bumped by every enrolment change; biometric sessions remember it.
    bio_generation: u64,
    keys: Vec<StoredKey>,
    wipe: Option<WipeReason>,
    /// The epoch of the app's data-sealing key (raised by every requested
    /// wipe; mirrored in the device root, which survives a tamper wipe).
    /// Absent in images written before sealed app data existed.
    #[serde(default)]
    data_epoch: u64,
    /// Set by a requested wipe to the epoch of the app's last stored data
    /// (the one before, unless that was never confirmed stored either): its
    /// key still unseals, while the element holds no keys, until the app
    /// confirms storing data sealed in the new epoch
    /// ([`SecureElement::sealed_data_stored`]), which clears it. So a crash
    /// between a wipe and the app's next write does not lock the app out.
    #[serde(default)]
    retiring_epoch: Option<u64>,
}

/// A retry counter and salted hash of a PIN.
#[derive(Clone, Serialize, Deserialize)]
struct PinRecord {
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    #[serde(with = "hex_bytes")]
    hash: Vec<u8>,
    tries_left: u8,
}

/// The simulated biometric: a salted hash of the template (a sample
/// "matches" when it is the same bytes).
#[derive(Clone, Serialize, Deserialize)]
struct BioRecord {
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    #[serde(with = "hex_bytes")]
    hash: Vec<u8>,
    /// The auth PIN was verified since this enrolment.
    confirmed: bool,
    tries_left: u8,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    #[serde(with = "hex_bytes")]
    id: Vec<u8>,
    label: String,
    kind: KeyKind,
    policy: KeyPolicy,
    /// PKCS#8 of the private key: exists only inside the sealed image.
    pkcs8: Secret,
    /// The key attestation certificate (DER).
    #[serde(with = "hex_bytes")]
    attestation: Vec<u8>,
}

/// Key bytes, wiped on drop and never printed.
#[derive(Clone, Serialize, Deserialize)]
struct Secret(#[serde(with = "hex_secret")] Zeroizing<Vec<u8>>);

/// A parsed private key, in RAM only.
enum LoadedKey {
    Rsa(RsaSigner),
    Ec(EcdsaP256Signer),
}

/// One live unlock (volatile).
struct Session {
    ticket: [u8; 16],
    gate: GateId,
    method: UnlockMethod,
    expires: Duration,
    uses_left: u32,
    bio_generation: u64,
}

impl SimSecureElement {
    /// Provisions a new element: writes the first (empty) sealed image.
    /// Fails with [`SeError::AlreadyProvisioned`] if the store holds an
    /// image or the device counter has moved.
    pub fn provision(
        store: impl SealedStore + 'static,
        device: impl DeviceRoot + 'static,
        options: SimOptions,
    ) -> Result<Self, SeError> {
        let mut se = Self::unopened(Box::new(store), Box::new(device), options)?;
        if se.counter != 0 || se.store.load()?.is_some() {
            return Err(SeError::AlreadyProvisioned);
        }
        se.persist()?;
        Ok(se)
    }

    /// Opens a provisioned element with the system clock and randomness.
    pub fn open(
        store: impl SealedStore + 'static,
        device: impl DeviceRoot + 'static,
    ) -> Result<Self, SeError> {
        Self::open_with(store, device, SimOptions::default())
    }

    /// Opens the element in a device folder made by
    /// [`crate::SimManufacturer::manufacture_device`], holding it exclusively.
    pub fn open_dir(dir: &Path) -> Result<Self, SeError> {
        let store = FileStore::exclusive(dir.join(SEALED_FILE))?;
        let device = FileDeviceRoot::open(dir.join(DEVICE_FILE))?;
        Self::open(store, device)
    }

    /// Opens a provisioned element.
    ///
    /// The sealed image must authenticate under the device's key, name the
    /// device, and carry the device counter's value (or one more: a crash
    /// between writing the image and the counter, which is then caught up).
    /// Anything else — a flipped byte, a cut file, another device's file,
    /// an older copy, a missing file — **wipes** the element (a fresh empty
    /// image recording the reason is committed; the device identity stays)
    /// and answers [`SeError::Tampered`]. Open it again to use the empty
    /// element; [`SecureElement::last_wipe`] tells why it was wiped.
    pub fn open_with(
        store: impl SealedStore + 'static,
        device: impl DeviceRoot + 'static,
        options: SimOptions,
    ) -> Result<Self, SeError> {
        let mut se = Self::unopened(Box::new(store), Box::new(device), options)?;
        let recorded = se.counter;
        let Some(sealed) = se.store.load()? else {
            return Err(if recorded == 0 {
                SeError::NotProvisioned
            } else {
                se.wipe_after_tamper(TamperKind::Missing, recorded)
            });
        };
        let device_id = se.device.identity().device_id();
        let (counter, plain) = match seal::unseal(&se.seal_key, &device_id, &sealed) {
            Ok(opened) => opened,
            Err(kind) => return Err(se.wipe_after_tamper(kind, recorded)),
        };
        if counter < recorded {
            return Err(se.wipe_after_tamper(TamperKind::Rollback, recorded));
        }
        if counter > recorded.saturating_add(1) {
            return Err(se.wipe_after_tamper(TamperKind::CounterAhead, counter));
        }
        let image = match Image::decode(&plain) {
            Ok(image) => image,
            Err(()) => return Err(se.wipe_after_tamper(TamperKind::Malformed, counter)),
        };
        if counter > recorded {
            se.device.advance_counter(counter)?;
        }
        se.counter = counter;
        // The image's epoch is ahead of the device's after a crash between
        // a wipe's commit and the epoch write: caught up like the counter.
        let mut image = image;
        let epoch = image.data_epoch.max(se.image.data_epoch);
        if epoch > se.image.data_epoch {
            se.device.advance_data_epoch(epoch)?;
            se.data_key = seal::data_key(se.device.identity().sealing_key(), epoch)?;
        }
        image.data_epoch = epoch;
        se.install(image)?;
        se.retiring_key = se.derive_retiring_key()?;
        Ok(se)
    }

    /// The manufacturer root this element's attestations chain to.
    pub fn manufacturer_root(&self) -> &[u8] {
        self.device.identity().root_cert()
    }

    fn unopened(
        store: Box<dyn SealedStore>,
        device: Box<dyn DeviceRoot>,
        mut options: SimOptions,
    ) -> Result<Self, SeError> {
        let seal_key = seal::sealing_key(device.identity().sealing_key())?;
        let data_epoch = device.data_epoch()?;
        let data_key = seal::data_key(device.identity().sealing_key(), data_epoch)?;
        let ca = DeviceCa::load(device.identity())?;
        let counter = device.counter()?;
        let mut instance = [0u8; 16];
        fill(&mut *options.rng, &mut instance)?;
        let mut image = Image::empty(None);
        image.data_epoch = data_epoch;
        Ok(Self {
            store,
            device,
            seal_key,
            data_key,
            retiring_key: None,
            ca,
            image,
            loaded: HashMap::new(),
            sessions: Vec::new(),
            instance,
            counter,
            poisoned: false,
            clock: options.clock,
            rng: options.rng,
        })
    }

    /// Commits an empty image recording the tamper, above every counter
    /// value seen; answers the error to return (the storage error if even
    /// the wipe could not be committed).
    fn wipe_after_tamper(&mut self, kind: TamperKind, floor: u64) -> SeError {
        self.counter = floor;
        // The app's data-sealing key stays: the phone must still read its
        // wallet to tell the authority (the device root kept the epoch).
        let data_epoch = self.image.data_epoch;
        self.image = Image::empty(Some(WipeReason::Tampered(kind)));
        self.image.data_epoch = data_epoch;
        // The image that knew of a retiring key is not to be trusted.
        self.retiring_key = None;
        self.loaded.clear();
        self.sessions.clear();
        match self.persist() {
            Ok(()) => SeError::Tampered(kind),
            Err(e) => e,
        }
    }

    /// The key of the image's retiring epoch, if it has one (and it is
    /// older than the current epoch).
    fn derive_retiring_key(&self) -> Result<Option<LessSafeKey>, SeError> {
        match self.image.retiring_epoch {
            Some(epoch) if epoch < self.image.data_epoch => Ok(Some(seal::data_key(
                self.device.identity().sealing_key(),
                epoch,
            )?)),
            _ => Ok(None),
        }
    }

    /// Makes `image` current, parsing its keys.
    fn install(&mut self, image: Image) -> Result<(), SeError> {
        let mut loaded = HashMap::new();
        for k in &image.keys {
            loaded.insert(key_id(&k.id)?, LoadedKey::load(k.kind, &k.pkcs8.0)?);
        }
        self.image = image;
        self.loaded = loaded;
        Ok(())
    }

    fn check_ready(&self) -> Result<(), SeError> {
        if self.poisoned {
            Err(SeError::MustReopen)
        } else {
            Ok(())
        }
    }

    /// Commits the image as it is in RAM.
    fn persist(&mut self) -> Result<(), SeError> {
        let plain = self.image.encode()?;
        self.commit_plain(&plain)
    }

    /// Commits `next` and, only if that worked, makes it the image in RAM.
    fn replace(&mut self, next: Image) -> Result<(), SeError> {
        let plain = next.encode()?;
        self.commit_plain(&plain)?;
        self.image = next;
        Ok(())
    }

    /// Seals and writes an image as the next counter value, then records the
    /// counter. Either failure poisons the element: at most one image beyond
    /// the recorded counter can ever exist, which is what `open` accepts.
    fn commit_plain(&mut self, plain: &[u8]) -> Result<(), SeError> {
        self.check_ready()?;
        let next = self
            .counter
            .checked_add(1)
            .ok_or_else(|| SeError::Storage("write counter exhausted".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        fill(&mut *self.rng, &mut nonce)?;
        let device_id = self.device.identity().device_id();
        let sealed = seal::seal(&self.seal_key, &device_id, next, nonce, plain)?;
        if let Err(e) = self.store.commit(&sealed) {
            self.poisoned = true;
            return Err(e);
        }
        if let Err(e) = self.device.advance_counter(next) {
            self.poisoned = true;
            return Err(e);
        }
        self.counter = next;
        Ok(())
    }

    fn index(&self, key: &KeyHandle) -> Result<usize, SeError> {
        self.image
            .keys
            .iter()
            .position(|k| k.id.as_slice() == key.id() && k.label == key.label())
            .ok_or(SeError::UnknownKey)
    }

    fn loaded(&self, key: &KeyHandle) -> Result<&LoadedKey, SeError> {
        self.index(key)?;
        self.loaded.get(key.id()).ok_or(SeError::UnknownKey)
    }

    fn mint(
        &mut self,
        gate: GateId,
        method: UnlockMethod,
        scope: UnlockScope,
    ) -> Result<Unlock, SeError> {
        let (ttl, uses) = match scope {
            UnlockScope::Session { ttl, max_uses } => (ttl, max_uses),
            _ => (ONCE_TTL, 1),
        };
        let mut ticket = [0u8; 16];
        fill(&mut *self.rng, &mut ticket)?;
        let now = self.clock.elapsed();
        self.sessions.retain(|s| s.expires > now);
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.remove(0);
        }
        self.sessions.push(Session {
            ticket,
            gate,
            method,
            expires: now.saturating_add(ttl),
            uses_left: uses,
            bio_generation: self.image.bio_generation,
        });
        Ok(Unlock::issue(self.instance, ticket, gate, method))
    }

    /// Checks `unlock` for an operation needing `needed` (accepted as
    /// `accepts` says) and spends one use. Touches no storage.
    fn authorize(
        &mut self,
        unlock: &Unlock,
        needed: GateId,
        accepts: &dyn Fn(GateId, UnlockMethod) -> bool,
    ) -> Result<(), SeError> {
        if unlock.element() != &self.instance {
            return Err(SeError::NotUnlocked);
        }
        let now = self.clock.elapsed();
        self.sessions.retain(|s| s.expires > now);
        let idx = self
            .sessions
            .iter()
            .position(|s| {
                aws_lc_rs::constant_time::verify_slices_are_equal(&s.ticket, unlock.ticket())
                    .is_ok()
            })
            .ok_or(SeError::NotUnlocked)?;
        let (gate, method, generation) = {
            let s = &self.sessions[idx];
            (s.gate, s.method, s.bio_generation)
        };
        if !accepts(gate, method) {
            return Err(SeError::WrongGate { needed });
        }
        let gate_open = matches!(self.gate_status(gate), GateStatus::Active { .. });
        let bio_ok = method != UnlockMethod::Biometric
            || (generation == self.image.bio_generation
                && matches!(self.biometric_status(), BiometricStatus::Ready { .. }));
        if !(gate_open && bio_ok) {
            self.sessions.remove(idx);
            return Err(SeError::NotUnlocked);
        }
        let s = &mut self.sessions[idx];
        s.uses_left = s.uses_left.saturating_sub(1);
        if s.uses_left == 0 {
            self.sessions.remove(idx);
        }
        Ok(())
    }

    fn end_sessions(&mut self, which: impl Fn(&Session) -> bool) {
        self.sessions.retain(|s| !which(s));
    }

    /// A second, independent copy of an RSA key (the bench's baseline).
    pub(crate) fn baseline_rsa(&self, key: &KeyHandle) -> Result<RsaSigner, SeError> {
        let stored = &self.image.keys[self.index(key)?];
        RsaSigner::from_pkcs8(&stored.pkcs8.0).map_err(crypto)
    }

    /// The PKCS#8 of a key, for tests that look for it where it must not be.
    #[cfg(test)]
    pub(crate) fn pkcs8_for_test(&self, key: &KeyHandle) -> Vec<u8> {
        self.image.keys[self.index(key).unwrap()].pkcs8.0.to_vec()
    }
}

impl SecureElement for SimSecureElement {
    fn device_id(&self) -> DeviceId {
        self.device.identity().device_id()
    }

    fn last_wipe(&self) -> Option<WipeReason> {
        self.image.wipe
    }

    fn gate_status(&self, gate: GateId) -> GateStatus {
        match self.image.pin(gate) {
            None => GateStatus::NotSet,
            Some(r) if r.tries_left == 0 => GateStatus::Blocked,
            Some(r) => GateStatus::Active {
                tries_left: r.tries_left,
            },
        }
    }

    fn set_pin(&mut self, gate: GateId, pin: &str) -> Result<(), SeError> {
        self.check_ready()?;
        gate.check_format(pin)?;
        if self.image.pin(gate).is_some() {
            return Err(SeError::GateAlreadySet(gate));
        }
        let record = PinRecord::new(gate, pin.as_bytes(), &mut *self.rng)?;
        let mut next = self.image.clone();
        *next.pin_slot(gate) = Some(record);
        self.replace(next)
    }

    fn change_pin(&mut self, gate: GateId, auth: &Unlock, new_pin: &str) -> Result<(), SeError> {
        self.check_ready()?;
        gate.check_format(new_pin)?;
        if self.image.pin(gate).is_none() {
            return Err(SeError::GateNotSet(gate));
        }
        self.authorize(auth, gate, &|g, m| {
            g == gate && m == UnlockMethod::Knowledge
        })?;
        let record = PinRecord::new(gate, new_pin.as_bytes(), &mut *self.rng)?;
        let mut next = self.image.clone();
        *next.pin_slot(gate) = Some(record);
        self.replace(next)?;
        self.end_sessions(|s| s.gate == gate);
        Ok(())
    }

    fn verify_pin(
        &mut self,
        gate: GateId,
        pin: &str,
        scope: UnlockScope,
    ) -> Result<Unlock, SeError> {
        self.check_ready()?;
        scope.check()?;
        let tries = match self.image.pin(gate) {
            None => return Err(SeError::GateNotSet(gate)),
            Some(r) => r.tries_left,
        };
        if tries == 0 {
            return Err(SeError::Blocked(gate));
        }
        // A PIN of the wrong shape can never match: refused without a try.
        gate.check_format(pin)?;
        // An attempt ends the gate's earlier unlocks.
        self.end_sessions(|s| s.gate == gate);
        // Count the try and make it durable BEFORE comparing. If the commit
        // fails, answer without comparing (the element is then poisoned),
        // so no answer depends on the PIN unless the try is on record. The
        // counter in RAM stays decremented: nothing ever refunds a try.
        let left = tries - 1;
        if let Some(r) = self.image.pin_slot(gate).as_mut() {
            r.tries_left = left;
        }
        self.persist()?;
        let matches = self
            .image
            .pin(gate)
            .is_some_and(|r| r.matches(pin.as_bytes()));
        if !matches {
            return Err(if left == 0 {
                SeError::Blocked(gate)
            } else {
                SeError::WrongPin {
                    gate,
                    tries_left: left,
                }
            });
        }
        // Success resets the counter and (auth PIN) confirms the biometric
        // enrolment; if that cannot be committed, nothing is unlocked.
        let mut next = self.image.clone();
        if let Some(r) = next.pin_slot(gate).as_mut() {
            r.tries_left = gate.max_tries();
        }
        if gate.allows_biometric()
            && let Some(b) = next.biometric.as_mut()
        {
            b.confirmed = true;
            b.tries_left = BIOMETRIC_MAX_TRIES;
        }
        self.replace(next)?;
        self.mint(gate, UnlockMethod::Knowledge, scope)
    }

    fn enrol_biometric(&mut self, template: &[u8]) -> Result<(), SeError> {
        self.check_ready()?;
        if self.image.biometric.is_some() {
            return Err(SeError::BiometricAlreadyEnrolled);
        }
        self.set_biometric(Some(template))
    }

    fn change_biometric_enrolment(&mut self, template: &[u8]) -> Result<(), SeError> {
        self.check_ready()?;
        if self.image.biometric.is_none() {
            return Err(SeError::BiometricNotEnrolled);
        }
        self.set_biometric(Some(template))
    }

    fn remove_biometric(&mut self) -> Result<(), SeError> {
        self.check_ready()?;
        if self.image.biometric.is_none() {
            return Err(SeError::BiometricNotEnrolled);
        }
        self.set_biometric(None)
    }

    fn biometric_status(&self) -> BiometricStatus {
        match &self.image.biometric {
            None => BiometricStatus::NotEnrolled,
            Some(b) if !b.confirmed || b.tries_left == 0 => BiometricStatus::NeedsPin,
            Some(b) => BiometricStatus::Ready {
                tries_left: b.tries_left,
            },
        }
    }

    fn verify_biometric(
        &mut self,
        gate: GateId,
        sample: &[u8],
        scope: UnlockScope,
    ) -> Result<Unlock, SeError> {
        self.check_ready()?;
        scope.check()?;
        if !gate.allows_biometric() {
            return Err(SeError::BiometricNotAllowed(gate));
        }
        match self.gate_status(gate) {
            GateStatus::NotSet => return Err(SeError::GateNotSet(gate)),
            GateStatus::Blocked => return Err(SeError::Blocked(gate)),
            _ => {}
        }
        let tries = match self.biometric_status() {
            BiometricStatus::NotEnrolled => return Err(SeError::BiometricNotEnrolled),
            BiometricStatus::Ready { tries_left } => tries_left,
            _ => return Err(SeError::BiometricNeedsPin),
        };
        if sample.is_empty() || sample.len() > MAX_TEMPLATE_LEN {
            return Err(SeError::BadInput("a biometric sample is 1 to 4096 bytes"));
        }
        self.end_sessions(|s| s.method == UnlockMethod::Biometric);
        // Counted and committed before matching, like a PIN try.
        let left = tries - 1;
        if let Some(b) = self.image.biometric.as_mut() {
            b.tries_left = left;
        }
        self.persist()?;
        let matches = self
            .image
            .biometric
            .as_ref()
            .is_some_and(|b| b.matches(sample));
        if !matches {
            // At 0 the status is NeedsPin until the auth PIN is verified.
            return Err(SeError::BiometricMismatch { tries_left: left });
        }
        let mut next = self.image.clone();
        if let Some(b) = next.biometric.as_mut() {
            b.tries_left = BIOMETRIC_MAX_TRIES;
        }
        self.replace(next)?;
        self.mint(gate, UnlockMethod::Biometric, scope)
    }

    fn confirm_presence(&mut self, scope: UnlockScope) -> Result<Unlock, SeError> {
        self.check_ready()?;
        scope.check()?;
        let gate = GateId::AuthPin;
        match self.gate_status(gate) {
            GateStatus::NotSet => return Err(SeError::GateNotSet(gate)),
            GateStatus::Blocked => return Err(SeError::Blocked(gate)),
            _ => {}
        }
        // Nothing secret is compared, so nothing is counted or written; the
        // session is volatile like every other (`authorize` refuses it once
        // the gate blocks, and only presence-admitting policies accept it).
        self.mint(gate, UnlockMethod::Presence, scope)
    }

    fn lock_all(&mut self) {
        self.sessions.clear();
    }

    fn create_key(
        &mut self,
        label: &str,
        kind: KeyKind,
        policy: KeyPolicy,
        attestation_challenge: &[u8],
    ) -> Result<KeyHandle, SeError> {
        self.check_ready()?;
        KeyHandle::check_label(label)?;
        if attestation_challenge.len() > MAX_CHALLENGE_LEN {
            return Err(SeError::BadInput(
                "an attestation challenge is at most 128 bytes",
            ));
        }
        if self.image.keys.iter().any(|k| k.label == label) {
            return Err(SeError::LabelTaken);
        }
        match self.gate_status(policy.gate()) {
            GateStatus::NotSet => return Err(SeError::GateNotSet(policy.gate())),
            GateStatus::Blocked => return Err(SeError::Blocked(policy.gate())),
            _ => {}
        }
        let (loaded, pkcs8) = LoadedKey::generate(kind)?;
        let mut id = [0u8; 16];
        fill(&mut *self.rng, &mut id)?;
        let description = KeyDescription {
            challenge: attestation_challenge.to_vec(),
            device_id: self.device_id(),
            kind,
            policy,
            generated_inside: true,
            exportable: false,
        };
        let attestation = self.ca.certify_key(loaded.spki(), &description)?;
        let mut next = self.image.clone();
        next.keys.push(StoredKey {
            id: id.to_vec(),
            label: label.to_owned(),
            kind,
            policy,
            pkcs8: Secret(pkcs8),
            attestation,
        });
        self.replace(next)?;
        self.loaded.insert(id, loaded);
        Ok(KeyHandle::new(id, label))
    }

    fn find_key(&self, label: &str) -> Result<KeyHandle, SeError> {
        self.image
            .keys
            .iter()
            .find(|k| k.label == label)
            .map(StoredKey::handle)
            .transpose()?
            .ok_or(SeError::UnknownKey)
    }

    fn keys(&self) -> Vec<KeyInfo> {
        self.image
            .keys
            .iter()
            .filter_map(|k| k.info().ok())
            .collect()
    }

    fn key_info(&self, key: &KeyHandle) -> Result<KeyInfo, SeError> {
        self.image.keys[self.index(key)?].info()
    }

    fn delete_key(&mut self, key: &KeyHandle) -> Result<(), SeError> {
        self.check_ready()?;
        let idx = self.index(key)?;
        let mut next = self.image.clone();
        next.keys.remove(idx);
        self.replace(next)?;
        self.loaded.remove(key.id());
        Ok(())
    }

    fn public_key(&self, key: &KeyHandle) -> Result<Vec<u8>, SeError> {
        Ok(self.loaded(key)?.spki().to_vec())
    }

    fn sign(&mut self, key: &KeyHandle, tbs: &[u8], auth: &Unlock) -> Result<Vec<u8>, SeError> {
        self.check_ready()?;
        let policy = self.image.keys[self.index(key)?].policy;
        self.authorize(auth, policy.gate(), &|g, m| policy.accepts(g, m))?;
        self.loaded(key)?.sign(tbs)
    }

    fn agree(
        &mut self,
        key: &KeyHandle,
        peer: &[u8],
        auth: &Unlock,
    ) -> Result<SharedSecret, SeError> {
        self.check_ready()?;
        let idx = self.index(key)?;
        let policy = self.image.keys[idx].policy;
        let LoadedKey::Ec(_) = self.loaded(key)? else {
            return Err(SeError::Unsupported("key agreement needs an EC P-256 key"));
        };
        if peer.len() != 65 || peer.first() != Some(&0x04) {
            return Err(SeError::BadInput(
                "the peer key must be an uncompressed P-256 point (65 bytes)",
            ));
        }
        self.authorize(auth, policy.gate(), &|g, m| policy.accepts(g, m))?;
        // The ECDH key is parsed from the sealed PKCS#8 for this one
        // operation and dropped with it; nothing leaves but the secret.
        let private = agreement::PrivateKey::from_private_key_der(
            &agreement::ECDH_P256,
            &self.image.keys[idx].pkcs8.0,
        )
        .map_err(|_| SeError::Crypto("the EC key cannot do ECDH".into()))?;
        agreement::agree(
            &private,
            agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer),
            SeError::BadInput("the peer key is not a point on P-256"),
            SharedSecret::from_slice,
        )
    }

    fn sign_digest_info(
        &mut self,
        key: &KeyHandle,
        digest_info: &[u8],
        auth: &Unlock,
    ) -> Result<Vec<u8>, SeError> {
        self.check_ready()?;
        let policy = self.image.keys[self.index(key)?].policy;
        let LoadedKey::Rsa(_) = self.loaded(key)? else {
            return Err(SeError::Unsupported("DigestInfo signing needs an RSA key"));
        };
        self.authorize(auth, policy.gate(), &|g, m| policy.accepts(g, m))?;
        match self.loaded(key)? {
            LoadedKey::Rsa(k) => k.sign_digest_info(digest_info).map_err(|_| {
                SeError::BadInput("DigestInfo must carry a SHA-256, SHA-384 or SHA-512 hash")
            }),
            LoadedKey::Ec(_) => Err(SeError::Unsupported("DigestInfo signing needs an RSA key")),
        }
    }

    fn attest(&self, key: &KeyHandle) -> Result<AttestationChain, SeError> {
        let stored = &self.image.keys[self.index(key)?];
        let identity = self.device.identity();
        Ok(AttestationChain::new(vec![
            stored.attestation.clone(),
            identity.device_cert().to_vec(),
            identity.root_cert().to_vec(),
        ]))
    }

    fn seal(&mut self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SeError> {
        self.check_ready()?;
        check_seal_context(context)?;
        let mut nonce = [0u8; NONCE_LEN];
        fill(&mut *self.rng, &mut nonce)?;
        seal::seal_data(&self.data_key, nonce, context, plaintext)
    }

    fn unseal(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SeError> {
        self.check_ready()?;
        check_seal_context(context)?;
        match seal::unseal_data(&self.data_key, context, sealed) {
            Err(SeError::Unsealable(why)) => match &self.retiring_key {
                Some(old) if self.image.keys.is_empty() => {
                    seal::unseal_data(old, context, sealed).map_err(|_| SeError::Unsealable(why))
                }
                _ => Err(SeError::Unsealable(why)),
            },
            other => other,
        }
    }

    fn sealed_data_stored(&mut self) -> Result<(), SeError> {
        self.check_ready()?;
        if !self.device.sealed_data_stored()? {
            self.device.mark_sealed_data_stored()?;
        }
        if self.image.retiring_epoch.is_some() {
            let mut next = self.image.clone();
            next.retiring_epoch = None;
            self.replace(next)?;
        }
        self.retiring_key = None;
        Ok(())
    }

    fn has_stored_sealed_data(&self) -> bool {
        // A device root that cannot be read counts as "stored": the safe
        // answer (plain data is then refused).
        self.device.sealed_data_stored().unwrap_or(true)
    }

    fn retiring_seal_key_open(&self) -> bool {
        self.retiring_key.is_some() && self.image.keys.is_empty()
    }

    fn wipe(&mut self) -> Result<(), SeError> {
        self.check_ready()?;
        let epoch = self
            .image
            .data_epoch
            .checked_add(1)
            .ok_or_else(|| SeError::Storage("data-sealing epoch exhausted".into()))?;
        let data_key = seal::data_key(self.device.identity().sealing_key(), epoch)?;
        let mut next = Image::empty(Some(WipeReason::Requested));
        next.bio_generation = self.image.bio_generation.saturating_add(1);
        next.data_epoch = epoch;
        // Until the app has stored data sealed under the new key, the key of
        // its last stored data still unseals (an interrupted wipe must not
        // lock it out): the previous epoch's, or an older one still retiring.
        next.retiring_epoch = Some(self.image.retiring_epoch.unwrap_or(self.image.data_epoch));
        // The committed image is what counts (open catches the device's
        // epoch up to it): the old key seals nothing from here on.
        self.replace(next)?;
        self.data_key = data_key;
        self.retiring_key = self.derive_retiring_key()?;
        self.loaded.clear();
        self.sessions.clear();
        if let Err(e) = self.device.advance_data_epoch(epoch) {
            self.poisoned = true;
            return Err(e);
        }
        Ok(())
    }
}

impl SimSecureElement {
    /// Replaces (or removes) the biometric enrolment: unconfirmed until the
    /// auth PIN is next verified; every biometric session ends.
    fn set_biometric(&mut self, template: Option<&[u8]>) -> Result<(), SeError> {
        let record = match template {
            Some(t) if t.is_empty() || t.len() > MAX_TEMPLATE_LEN => {
                return Err(SeError::BadInput("a biometric template is 1 to 4096 bytes"));
            }
            Some(t) => Some(BioRecord::new(t, &mut *self.rng)?),
            None => None,
        };
        let mut next = self.image.clone();
        next.biometric = record;
        next.bio_generation = next.bio_generation.saturating_add(1);
        self.replace(next)?;
        self.end_sessions(|s| s.method == UnlockMethod::Biometric);
        Ok(())
    }
}

impl fmt::Debug for SimSecureElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSecureElement")
            .field("device_id", &self.device_id())
            .field("keys", &self.image.keys.len())
            .field("auth_pin", &self.gate_status(GateId::AuthPin))
            .field("sign_password", &self.gate_status(GateId::SignPassword))
            .field("biometric", &self.biometric_status())
            .field("sessions", &self.sessions.len())
            .field("counter", &self.counter)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Image {
    fn empty(wipe: Option<WipeReason>) -> Self {
        Self {
            format: IMAGE_FORMAT,
            auth_pin: None,
            sign_password: None,
            biometric: None,
            bio_generation: 0,
            keys: Vec::new(),
            wipe,
            data_epoch: 0,
            retiring_epoch: None,
        }
    }

    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, SeError> {
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|e| SeError::Storage(format!("cannot encode the image: {e}")))
    }

    /// Parses and checks an image (authentic input; `Err` means a bug or a
    /// foreign writer with the key).
    fn decode(bytes: &[u8]) -> Result<Self, ()> {
        let image: Self = serde_json::from_slice(bytes).map_err(|_| ())?;
        if image.format != IMAGE_FORMAT {
            return Err(());
        }
        for gate in GateId::ALL {
            if let Some(r) = image.pin(gate)
                && (r.tries_left > gate.max_tries()
                    || r.salt.len() != SALT_LEN
                    || r.hash.len() != aws_lc_rs::digest::SHA256_OUTPUT_LEN)
            {
                return Err(());
            }
        }
        if let Some(b) = &image.biometric
            && (b.tries_left > BIOMETRIC_MAX_TRIES || b.salt.len() != SALT_LEN)
        {
            return Err(());
        }
        let mut labels = std::collections::HashSet::new();
        for k in &image.keys {
            if k.id.len() != 16
                || KeyHandle::check_label(&k.label).is_err()
                || !labels.insert(k.label.as_str())
            {
                return Err(());
            }
        }
        Ok(image)
    }

    fn pin(&self, gate: GateId) -> Option<&PinRecord> {
        match gate {
            GateId::SignPassword => self.sign_password.as_ref(),
            _ => self.auth_pin.as_ref(),
        }
    }

    fn pin_slot(&mut self, gate: GateId) -> &mut Option<PinRecord> {
        match gate {
            GateId::SignPassword => &mut self.sign_password,
            _ => &mut self.auth_pin,
        }
    }
}

impl PinRecord {
    fn new(gate: GateId, pin: &[u8], rng: &mut dyn RandomSource) -> Result<Self, SeError> {
        let mut salt = vec![0u8; SALT_LEN];
        fill(rng, &mut salt)?;
        let hash = salted_hash(PIN_DOMAIN, &salt, pin);
        Ok(Self {
            salt,
            hash,
            tries_left: gate.max_tries(),
        })
    }

    fn matches(&self, pin: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            &salted_hash(PIN_DOMAIN, &self.salt, pin),
            &self.hash,
        )
        .is_ok()
    }
}

impl BioRecord {
    fn new(template: &[u8], rng: &mut dyn RandomSource) -> Result<Self, SeError> {
        let mut salt = vec![0u8; SALT_LEN];
        fill(rng, &mut salt)?;
        Ok(Self {
            hash: salted_hash(BIO_DOMAIN, &salt, template),
            salt,
            confirmed: false,
            tries_left: BIOMETRIC_MAX_TRIES,
        })
    }

    fn matches(&self, sample: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            &salted_hash(BIO_DOMAIN, &self.salt, sample),
            &self.hash,
        )
        .is_ok()
    }
}

fn salted_hash(domain: &[u8], salt: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(domain);
    ctx.update(salt);
    ctx.update(secret);
    ctx.finish().as_ref().to_vec()
}

impl StoredKey {
    fn handle(&self) -> Result<KeyHandle, SeError> {
        Ok(KeyHandle::new(key_id(&self.id)?, &self.label))
    }

    fn info(&self) -> Result<KeyInfo, SeError> {
        Ok(KeyInfo {
            handle: self.handle()?,
            kind: self.kind,
            policy: self.policy,
        })
    }
}

impl LoadedKey {
    fn generate(kind: KeyKind) -> Result<(Self, Zeroizing<Vec<u8>>), SeError> {
        match kind {
            KeyKind::Rsa2048 => {
                let k = RsaSigner::generate().map_err(crypto)?;
                let p8 = k.to_pkcs8().map_err(crypto)?;
                Ok((Self::Rsa(k), p8))
            }
            KeyKind::EcP256 => {
                let k = EcdsaP256Signer::generate().map_err(crypto)?;
                let p8 = k.to_pkcs8().map_err(crypto)?;
                Ok((Self::Ec(k), p8))
            }
            _ => Err(SeError::Unsupported("key kind")),
        }
    }

    fn load(kind: KeyKind, pkcs8: &[u8]) -> Result<Self, SeError> {
        match kind {
            KeyKind::Rsa2048 => RsaSigner::from_pkcs8(pkcs8).map(Self::Rsa).map_err(crypto),
            KeyKind::EcP256 => EcdsaP256Signer::from_pkcs8(pkcs8)
                .map(Self::Ec)
                .map_err(crypto),
            _ => Err(SeError::Unsupported("key kind")),
        }
    }

    fn spki(&self) -> &[u8] {
        match self {
            Self::Rsa(k) => k.public_key_spki(),
            Self::Ec(k) => k.public_key_spki(),
        }
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, SeError> {
        match self {
            Self::Rsa(k) => k.sign(tbs),
            Self::Ec(k) => k.sign(tbs),
        }
        .map_err(|e| SeError::Crypto(e.to_string()))
    }
}

fn key_id(bytes: &[u8]) -> Result<[u8; 16], SeError> {
    <[u8; 16]>::try_from(bytes).map_err(|_| SeError::Storage("bad key id in the image".into()))
}

fn check_seal_context(context: &[u8]) -> Result<(), SeError> {
    if context.is_empty() || context.len() > MAX_SEAL_CONTEXT_LEN {
        return Err(SeError::BadInput("a sealing context is 1 to 256 bytes"));
    }
    Ok(())
}

fn fill(rng: &mut dyn RandomSource, buf: &mut [u8]) -> Result<(), SeError> {
    rng.fill(buf)
        .map_err(|_| SeError::Crypto("random source failed".into()))
}

fn crypto(e: impl fmt::Display) -> SeError {
    SeError::Crypto(e.to_string())
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

mod hex_secret {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(bytes: &Zeroizing<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode(bytes.as_slice())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        hex::decode(text.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| serde::de::Error::custom("key is not hexadecimal"))
    }
}
