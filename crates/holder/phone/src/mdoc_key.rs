//! The mobile ID's device key in the secure element as an mdoc
//! [`KeyAgreement`], for device authentication by MAC (ISO/IEC 18013-5
//! §9.1.3.5): the ECDH runs inside the element, gated like a signature.

use shomei_mdoc::MdocError;
use shomei_mdoc::session::{EcPublicKey, KeyAgreement, SharedSecret};
use shomei_secure_element::{KeyHandle, SharedElement, Unlock};

use crate::PhoneError;
use crate::applet::lock;

/// One P-256 key of a shared element, with an unlock, as a
/// [`KeyAgreement`] (see [`crate::Phone::mdoc_agreement`]).
///
/// Each [`KeyAgreement::agree`] spends one use of the unlock; once it is
/// spent or expired the element refuses ([`shomei_core::SignError::Locked`]
/// inside [`MdocError::Signer`]). The private key never leaves the element.
pub struct SeKeyAgreement {
    element: SharedElement,
    key: KeyHandle,
    unlock: Unlock,
    public: EcPublicKey,
}

impl core::fmt::Debug for SeKeyAgreement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SeKeyAgreement")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SeKeyAgreement {
    /// Wraps `key` of `element` (a P-256 key), agreeing with `unlock`.
    pub fn new(element: SharedElement, key: KeyHandle, unlock: Unlock) -> Result<Self, PhoneError> {
        let spki = lock(&element).public_key(&key)?;
        let public = EcPublicKey::from_spki(&spki).map_err(|e| {
            PhoneError::BadInput(format!("the key cannot do P-256 key agreement: {e}"))
        })?;
        Ok(Self {
            element,
            key,
            unlock,
            public,
        })
    }

    /// The key.
    pub fn key(&self) -> &KeyHandle {
        &self.key
    }
}

impl KeyAgreement for SeKeyAgreement {
    fn public_key(&self) -> EcPublicKey {
        self.public.clone()
    }

    fn agree(&self, peer: &EcPublicKey) -> Result<SharedSecret, MdocError> {
        let z = lock(&self.element)
            .agree(&self.key, &peer.uncompressed(), &self.unlock)
            .map_err(|e| MdocError::from(shomei_core::SignError::from(e)))?;
        Ok(SharedSecret::from_bytes(*z.as_bytes()))
    }
}
