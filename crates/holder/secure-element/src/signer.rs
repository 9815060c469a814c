//! A secure element key behind [`shomei_core::Signer`] (for CSRs, CMS).

use std::sync::{Arc, Mutex, MutexGuard};

use shomei_core::{SignError, SignatureAlgorithm, Signer};

use crate::{KeyHandle, SeError, SecureElement, Unlock};

/// A secure element shared between signers (one element, one lock).
pub type SharedElement = Arc<Mutex<Box<dyn SecureElement>>>;

/// One key of a shared element, with an unlock, as a [`Signer`].
///
/// Each [`Signer::sign`] spends one use of the unlock; once it is spent or
/// expired, signing answers [`SignError::Locked`].
pub struct SeSigner {
    element: SharedElement,
    key: KeyHandle,
    unlock: Unlock,
    spki: Vec<u8>,
    algorithm: SignatureAlgorithm,
}

impl SeSigner {
    /// Wraps `key` of `element`, signing with `unlock`.
    pub fn new(element: SharedElement, key: KeyHandle, unlock: Unlock) -> Result<Self, SeError> {
        let (spki, algorithm) = {
            let se = lock(&element);
            let info = se.key_info(&key)?;
            (se.public_key(&key)?, info.kind.algorithm())
        };
        Ok(Self {
            element,
            key,
            unlock,
            spki,
            algorithm,
        })
    }

    /// The key.
    pub fn key(&self) -> &KeyHandle {
        &self.key
    }

    /// Gives the unlock back (e.g. to reuse it for another key of the same gate).
    pub fn into_unlock(self) -> Unlock {
        self.unlock
    }
}

fn lock(element: &SharedElement) -> MutexGuard<'_, Box<dyn SecureElement>> {
    // A panic elsewhere cannot leave the element half-changed from the
    // outside: its own methods commit or fail. So a poisoned lock is usable.
    element.lock().unwrap_or_else(|e| e.into_inner())
}

impl Signer for SeSigner {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, SignError> {
        lock(&self.element)
            .sign(&self.key, tbs, &self.unlock)
            .map_err(SignError::from)
    }
}
