//! The phone's JPKI applet: the card's APDU state machine
//! ([`shomei_card::JpkiApplet`]) over the secure element.
//!
//! * Token `JPKIAPGPSETOKEN` ([`Variant::Phone`]): reading the
//!   authentication certificate (`000A`) needs the auth PIN first, as on an
//!   Android GP-SE (jpki.md §3.2); the signing certificate needs the signing
//!   password, as on the card.
//! * **Keys and PINs are the secure element's**: VERIFY is
//!   [`SecureElement::verify_pin`] on the matching gate (the element counts
//!   the try durably before comparing, with its own persisted retry
//!   counter), and COMPUTE DIGITAL SIGNATURE is
//!   [`SecureElement::sign_digest_info`] with the unlock that VERIFY
//!   returned. A biometric never unlocks anything through APDUs.
//! * **Certificates are the wallet's** (public data, [`WalletCertificates`]);
//!   the applet is always operational: nothing is written by APDU.
//!
//! One difference from the card: a PIN that can never be valid (wrong
//! length, lower case…) is refused with `6A 80` without spending a try,
//! because the element checks the format before counting.

use std::sync::MutexGuard;

use shomei_card::{
    AppletError, AppletFiles, AppletSecrets, CertKind, JpkiApplet, KeyKind, Phase, PinKind, Variant,
};
use shomei_secure_element::{
    GateId, KeyHandle, MAX_SESSION_TTL, SeError, SecureElement, SharedElement, Unlock, UnlockScope,
};

use crate::{AUTH_KEY_LABEL, PhoneError, SIGN_KEY_LABEL, WalletCertificates};

/// The phone's JPKI applet.
pub type PhoneApplet = JpkiApplet<SeBackend>;

/// How long a VERIFY through the applet keeps its key unlocked (the
/// element's longest session), and for how many signatures.
pub const APPLET_UNLOCK: UnlockScope = UnlockScope::Session {
    ttl: MAX_SESSION_TTL,
    max_uses: 64,
};

/// The secure element and the wallet's certificates as the applet's backend.
pub struct SeBackend {
    element: SharedElement,
    auth_key: Option<(KeyHandle, Vec<u8>)>,
    sign_key: Option<(KeyHandle, Vec<u8>)>,
    certs: WalletCertificates,
    auth_unlock: Option<Unlock>,
    sign_unlock: Option<Unlock>,
}

impl SeBackend {
    /// A backend over `element`'s JPKI keys (labels [`SIGN_KEY_LABEL`],
    /// [`AUTH_KEY_LABEL`]; a missing key answers `69 86`) and the wallet's
    /// certificates.
    pub fn new(element: SharedElement, certs: WalletCertificates) -> Result<Self, PhoneError> {
        let (auth_key, sign_key) = {
            let se = lock(&element);
            (key(&**se, AUTH_KEY_LABEL)?, key(&**se, SIGN_KEY_LABEL)?)
        };
        Ok(Self {
            element,
            auth_key,
            sign_key,
            certs,
            auth_unlock: None,
            sign_unlock: None,
        })
    }

    /// The applet over this backend, powered up.
    pub fn into_applet(self) -> PhoneApplet {
        JpkiApplet::new(self)
    }

    /// The secure element.
    pub fn element(&self) -> &SharedElement {
        &self.element
    }

    fn key(&self, kind: KeyKind) -> Option<&(KeyHandle, Vec<u8>)> {
        match kind {
            KeyKind::Auth => self.auth_key.as_ref(),
            KeyKind::Sign => self.sign_key.as_ref(),
        }
    }

    fn unlock_slot(&mut self, pin: PinKind) -> &mut Option<Unlock> {
        match pin {
            PinKind::Auth => &mut self.auth_unlock,
            PinKind::Sign => &mut self.sign_unlock,
        }
    }
}

impl core::fmt::Debug for SeBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SeBackend")
            .field("auth_key", &self.auth_key.is_some())
            .field("sign_key", &self.sign_key.is_some())
            .field("auth_unlocked", &self.auth_unlock.is_some())
            .field("sign_unlocked", &self.sign_unlock.is_some())
            .finish_non_exhaustive()
    }
}

/// The JPKI key `label` with its public key template, if the element holds it.
fn key(se: &dyn SecureElement, label: &str) -> Result<Option<(KeyHandle, Vec<u8>)>, PhoneError> {
    let handle = match se.find_key(label) {
        Ok(h) => h,
        Err(SeError::UnknownKey) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let spki = se.public_key(&handle)?;
    let template = shomei_card::public_key_template(&spki).map_err(PhoneError::Card)?;
    Ok(Some((handle, template)))
}

pub(crate) fn lock(element: &SharedElement) -> MutexGuard<'_, Box<dyn SecureElement>> {
    // The element's methods commit or fail as a whole, so a panic elsewhere
    // cannot leave it half-changed: a poisoned lock is usable.
    element.lock().unwrap_or_else(|e| e.into_inner())
}

/// The element's gate for a JPKI PIN.
pub fn gate(pin: PinKind) -> GateId {
    match pin {
        PinKind::Auth => GateId::AuthPin,
        PinKind::Sign => GateId::SignPassword,
    }
}

/// The status word an element refusal stands for.
fn applet_error(e: &SeError) -> AppletError {
    match e {
        SeError::WrongPin { tries_left, .. } => AppletError::WrongPin {
            tries_left: *tries_left,
        },
        SeError::Blocked(_) | SeError::GateNotSet(_) => AppletError::Blocked,
        SeError::NotUnlocked | SeError::WrongGate { .. } => AppletError::NotVerified,
        SeError::BadPinFormat(_) | SeError::BadInput(_) => AppletError::BadData,
        SeError::UnknownKey => AppletError::NotAllowed,
        SeError::Storage(_) | SeError::MustReopen => AppletError::MemoryFailure,
        _ => AppletError::Failed,
    }
}

impl AppletSecrets for SeBackend {
    fn tries_left(&self, pin: PinKind) -> u8 {
        lock(&self.element).tries_left(gate(pin))
    }

    fn try_pin(&mut self, pin: PinKind, candidate: &[u8]) -> Result<(), AppletError> {
        // Not UTF-8: it cannot be well formed, so no try is spent.
        let text = core::str::from_utf8(candidate).map_err(|_| AppletError::BadData)?;
        // The element counts the try and commits it before comparing.
        let mut element = lock(&self.element);
        let before = element.tries_left(gate(pin));
        let unlock = element
            .verify_pin(gate(pin), text, APPLET_UNLOCK)
            .map_err(|e| match e {
                // The element calls the try that used the last one "blocked";
                // the card answers it `63 C0` (a wrong PIN, none left) and
                // keeps `69 83` for tries at an already blocked PIN, and so
                // does the phone: the same APDU surface.
                SeError::Blocked(_) if before > 0 => AppletError::WrongPin { tries_left: 0 },
                e => applet_error(&e),
            })?;
        drop(element);
        *self.unlock_slot(pin) = Some(unlock);
        Ok(())
    }

    fn change_pin(&mut self, pin: PinKind, new_pin: &[u8]) -> Result<(), AppletError> {
        let text = core::str::from_utf8(new_pin).map_err(|_| AppletError::BadData)?;
        // Changing ends the gate's sessions, ours included.
        let unlock = self
            .unlock_slot(pin)
            .take()
            .ok_or(AppletError::NotVerified)?;
        lock(&self.element)
            .change_pin(gate(pin), &unlock, text)
            .map_err(|e| applet_error(&e))
    }

    fn public_key_template(&self, key: KeyKind) -> Result<Vec<u8>, AppletError> {
        self.key(key)
            .map(|(_, template)| template.clone())
            .ok_or(AppletError::NotAllowed)
    }

    fn sign_digest_info(
        &mut self,
        key: KeyKind,
        digest_info: &[u8],
    ) -> Result<Vec<u8>, AppletError> {
        let handle = self.key(key).ok_or(AppletError::NotAllowed)?.0.clone();
        let Some(unlock) = self.unlock_slot(key.pin()).take() else {
            return Err(AppletError::NotVerified);
        };
        let result = lock(&self.element).sign_digest_info(&handle, digest_info, &unlock);
        // A session unlock stays usable for the next signature.
        *self.unlock_slot(key.pin()) = Some(unlock);
        result.map_err(|e| applet_error(&e))
    }

    fn forget(&mut self, pin: PinKind) {
        *self.unlock_slot(pin) = None;
    }
}

impl AppletFiles for SeBackend {
    fn variant(&self) -> Variant {
        Variant::Phone
    }

    fn phase(&self) -> Phase {
        Phase::Operational
    }

    fn certificate(&self, kind: CertKind) -> &[u8] {
        self.certs.get(kind)
    }

    fn write_certificate(&mut self, _kind: CertKind, _content: Vec<u8>) -> Result<(), AppletError> {
        Err(AppletError::NotAllowed)
    }

    fn activate(&mut self) -> Result<(), AppletError> {
        Ok(())
    }
}
