//! A card key behind [`shomei_core::Signer`].

use std::sync::{Mutex, MutexGuard};

use shomei_core::{SignError, SignatureAlgorithm, Signer};
use shomei_pki::keys::sha256_digest_info;

use crate::{CardError, JpkiClient, KeyKind, Transport};

/// One of the card's keys as a [`Signer`] (RSASSA-PKCS1-v1_5 / SHA-256):
/// `sign(tbs)` hashes on the host and sends the DigestInfo to the card.
///
/// It holds no PIN: verify the key's PIN through the client before
/// [`CardSigner::new`] (or via [`CardSigner::client`]); signing with a
/// locked key fails with [`SignError::Locked`].
pub struct CardSigner<T> {
    client: Mutex<JpkiClient<T>>,
    key: KeyKind,
    spki: Vec<u8>,
}

impl<T: Transport> CardSigner<T> {
    /// Reads the key's public key from the card and wraps the client.
    pub fn new(mut client: JpkiClient<T>, key: KeyKind) -> Result<Self, CardError> {
        let spki = client.public_key_spki(key)?;
        Ok(Self {
            client: Mutex::new(client),
            key,
            spki,
        })
    }

    /// Which key signs.
    pub fn key(&self) -> KeyKind {
        self.key
    }

    /// The client, e.g. to verify the PIN again.
    pub fn client(&self) -> MutexGuard<'_, JpkiClient<T>> {
        // A panic while the lock was held cannot leave the client in an
        // unsafe state (the card checks everything), so poison is ignored.
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unwraps the client.
    pub fn into_client(self) -> JpkiClient<T> {
        self.client.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> core::fmt::Debug for CardSigner<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CardSigner")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<T: Transport + Send> Signer for CardSigner<T> {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RsaPkcs1Sha256
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest_info = sha256_digest_info(tbs);
        match self.client().sign_digest_info(self.key, &digest_info) {
            Ok(signature) => Ok(signature),
            Err(CardError::SecurityStatusNotSatisfied) => Err(SignError::Locked),
            Err(e) => Err(SignError::Backend(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use shomei_pki::keys::spki_subject_public_key;

    use super::*;
    use crate::testutil::{AUTH_PIN, SIGN_PW, issued};
    use crate::{InProcess, PinKind, Variant};

    fn verify_with(spki: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        let key = spki_subject_public_key(spki).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
            .verify(msg, sig)
            .is_ok()
    }

    #[test]
    fn signature_from_card_verifies_with_its_public_key() {
        let (mut client, _, _) = issued(Variant::Card);
        client.verify(PinKind::Sign, SIGN_PW).unwrap();
        client.verify(PinKind::Auth, AUTH_PIN).unwrap();
        let sign = CardSigner::new(client, KeyKind::Sign).unwrap();
        assert_eq!(sign.algorithm(), SignatureAlgorithm::RsaPkcs1Sha256);
        let sig = sign.sign(b"application form").unwrap();
        assert_eq!(sig.len(), 256);
        assert!(verify_with(
            sign.public_key_spki(),
            b"application form",
            &sig
        ));
        assert!(!verify_with(sign.public_key_spki(), b"tampered form", &sig));
        // The auth key is a different key, used the same way.
        let auth = CardSigner::new(sign.into_client(), KeyKind::Auth).unwrap();
        let sig = auth.sign(b"challenge").unwrap();
        assert!(verify_with(auth.public_key_spki(), b"challenge", &sig));
        assert!(!verify_with(
            auth.client()
                .public_key_spki(KeyKind::Sign)
                .unwrap()
                .as_slice(),
            b"challenge",
            &sig
        ));
    }

    #[test]
    fn card_signer_is_locked_without_the_pin() {
        let (client, _, _) = issued(Variant::Phone);
        let signer = CardSigner::new(client, KeyKind::Auth).unwrap();
        assert_eq!(signer.sign(b"x"), Err(SignError::Locked));
        signer.client().verify(PinKind::Auth, AUTH_PIN).unwrap();
        assert!(signer.sign(b"x").is_ok());
        signer.client().transport_mut().card_mut().reset();
        signer.client().select_jpki().unwrap();
        assert_eq!(signer.sign(b"x"), Err(SignError::Locked));
        assert!(format!("{signer:?}").contains("Auth"));
    }

    #[test]
    fn card_signer_is_send_and_sync() {
        fn assert_signer<S: Signer>() {}
        assert_signer::<CardSigner<InProcess>>();
    }
}
