//! Software keys backed by aws-lc-rs, behind [`shomei_core::Signer`].
//!
//! These are the authority's key store for now (an HSM would be another
//! `Signer`), and the key inside the emulated card. Private keys leave this
//! module only as PKCS#8 for sealed storage by their owner (the CA key file,
//! the chip image), never through the `Signer` interface.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use shomei_core::{RandomSource, SignError, SignatureAlgorithm, Signer};
use zeroize::Zeroizing;

use crate::PkiError;

/// An RSA-2048 key with PKCS#1 v1.5 / SHA-256 signing.
pub struct RsaSigner {
    key: KeyPair,
    spki: Vec<u8>,
}

impl RsaSigner {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| PkiError::Build("RSA key generation failed".into()))?;
        Self::from_key(key)
    }

    /// Loads a PKCS#8 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, PkiError> {
        let key = KeyPair::from_pkcs8(der)
            .map_err(|e| PkiError::BadKey(format!("RSA PKCS#8 rejected: {e}")))?;
        Self::from_key(key)
    }

    fn from_key(key: KeyPair) -> Result<Self, PkiError> {
        if key.public_modulus_len() != 256 {
            return Err(PkiError::BadKey("RSA modulus must be 2048 bits".into()));
        }
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| PkiError::Build("cannot encode public key".into()))?
            .as_ref()
            .to_vec();
        Ok(Self { key, spki })
    }

    /// PKCS#8 DER of the private key, for sealed storage by the key's owner.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&self.key)
            .map_err(|_| PkiError::Build("cannot encode private key".into()))?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    /// Raw PKCS#1 v1.5 signature over an already-encoded DigestInfo, as the
    /// card's `80 2A 00 80` does: the card pads whatever it is handed.
    pub fn sign_digest_info(&self, digest_info: &[u8]) -> Result<Vec<u8>, SignError> {
        sign_digest_info_with(&self.key, digest_info)
    }
}

impl Signer for RsaSigner {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RsaPkcs1Sha256
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &rng, tbs, &mut sig)
            .map_err(|_| SignError::Backend("RSA signing failed".into()))?;
        Ok(sig)
    }
}

/// An ECDSA P-256 key (the OCSP responder's; later mdoc keys).
pub struct EcdsaP256Signer {
    key: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl EcdsaP256Signer {
    /// Generates a fresh P-256 key.
    pub fn generate() -> Result<Self, PkiError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| PkiError::Build("P-256 key generation failed".into()))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// Loads a PKCS#8 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, PkiError> {
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|e| PkiError::BadKey(format!("P-256 PKCS#8 rejected: {e}")))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| PkiError::Build("cannot encode public key".into()))?
            .as_ref()
            .to_vec();
        Ok(Self { key, spki })
    }

    /// PKCS#8 DER of the private key, for sealed storage by the key's owner.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let der = self
            .key
            .to_pkcs8v1()
            .map_err(|_| PkiError::Build("cannot encode private key".into()))?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }
}

impl Signer for EcdsaP256Signer {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::EcdsaP256Sha256
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self
            .key
            .sign(&rng, tbs)
            .map_err(|_| SignError::Backend("ECDSA signing failed".into()))?;
        Ok(sig.as_ref().to_vec())
    }
}

/// The operating system's CSPRNG (through aws-lc-rs).
#[derive(Default)]
pub struct SystemRandom(aws_lc_rs::rand::SystemRandom);

impl SystemRandom {
    /// A new handle.
    pub fn new() -> Self {
        Self(aws_lc_rs::rand::SystemRandom::new())
    }
}

impl RandomSource for SystemRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SignError> {
        self.0.fill(buf).map_err(|_| SignError::Random)
    }
}

/// DER prefixes of DigestInfo for the hashes the card accepts (RFC 8017 §9.2 note 1).
const DIGEST_INFO_PREFIXES: [(
    &[u8],
    &aws_lc_rs::digest::Algorithm,
    &signature::RsaSignatureEncoding,
); 3] = [
    (
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        &aws_lc_rs::digest::SHA256,
        &signature::RSA_PKCS1_SHA256,
    ),
    (
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        &aws_lc_rs::digest::SHA384,
        &signature::RSA_PKCS1_SHA384,
    ),
    (
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        &aws_lc_rs::digest::SHA512,
        &signature::RSA_PKCS1_SHA512,
    ),
];

/// An ECDSA P-256 signature as signers return it (`ECDSA-Sig-Value ::=
/// SEQUENCE { r INTEGER, s INTEGER }`, DER) → the fixed 64-byte `r ‖ s`
/// that COSE (RFC 9053 §2.1) and JWS ES256 (RFC 7518 §3.4) carry. r and s
/// must be positive and fit in 32 bytes. The one converter for the mobile
/// ID (MSO, device and reader signatures) and the ID tokens.
pub fn ecdsa_p256_der_to_fixed(der_sig: &[u8]) -> Result<[u8; 64], PkiError> {
    use der::Decode as _;
    #[derive(der::Sequence)]
    struct EcdsaSigValue<'a> {
        r: der::asn1::UintRef<'a>,
        s: der::asn1::UintRef<'a>,
    }
    let bad = |detail: &str| PkiError::Malformed {
        what: "ECDSA signature",
        detail: detail.to_owned(),
    };
    let sig = EcdsaSigValue::from_der(der_sig).map_err(|_| bad("not an ECDSA-Sig-Value"))?;
    let mut out = [0u8; 64];
    for (i, n) in [sig.r, sig.s].iter().enumerate() {
        let b = n.as_bytes();
        if b.len() > 32 || b.iter().all(|x| *x == 0) {
            return Err(bad("r or s is zero or longer than 32 bytes"));
        }
        let end = 32 * (i + 1);
        out[end - b.len()..end].copy_from_slice(b);
    }
    Ok(out)
}

/// The DER DigestInfo for a SHA-256 hash (what the card is handed).
pub fn sha256_digest_info(message: &[u8]) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
    let mut out = DIGEST_INFO_PREFIXES[0].0.to_vec();
    out.extend_from_slice(digest.as_ref());
    out
}

fn sign_digest_info_with(key: &KeyPair, digest_info: &[u8]) -> Result<Vec<u8>, SignError> {
    for (prefix, alg, encoding) in DIGEST_INFO_PREFIXES {
        if let Some(hash) = digest_info.strip_prefix(prefix) {
            let digest = aws_lc_rs::digest::Digest::import_less_safe(hash, alg).map_err(|_| {
                SignError::Backend("digest length does not match its algorithm".into())
            })?;
            let mut sig = vec![0u8; key.public_modulus_len()];
            key.sign_digest(encoding, &digest, &mut sig)
                .map_err(|_| SignError::Backend("RSA signing failed".into()))?;
            return Ok(sig);
        }
    }
    Err(SignError::Backend(
        "DigestInfo must carry a SHA-256, SHA-384 or SHA-512 hash".into(),
    ))
}

/// The subjectPublicKey bits of a DER SubjectPublicKeyInfo (what aws-lc-rs
/// verification keys take).
pub fn spki_subject_public_key(spki: &[u8]) -> Result<Vec<u8>, PkiError> {
    use der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki)
        .map_err(|e| PkiError::malformed("public key", e))?;
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| PkiError::malformed("public key", "unused bits in key"))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    use super::*;

    #[test]
    fn digest_info_signature_equals_ordinary_signature() {
        let key = RsaSigner::generate().unwrap();
        let msg = b"JPKI";
        let a = key.sign(msg).unwrap();
        let b = key.sign_digest_info(&sha256_digest_info(msg)).unwrap();
        assert_eq!(a, b, "PKCS#1 v1.5 is deterministic");
        let spki = key.public_key_spki();
        // SPKI -> RSAPublicKey: aws-lc-rs verification wants the PKCS#1 key; use the SPKI form it accepts.
        let pk = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            crate::keys::spki_subject_public_key(spki).unwrap(),
        );
        pk.verify(msg, &a).unwrap();
        assert!(key.sign_digest_info(b"\x30\x00").is_err());
        let p8 = key.to_pkcs8().unwrap();
        assert_eq!(RsaSigner::from_pkcs8(&p8).unwrap().public_key_spki(), spki);
    }

    #[test]
    fn ecdsa_round_trip() {
        let key = EcdsaP256Signer::generate().unwrap();
        let sig = key.sign(b"x").unwrap();
        let pk = UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_ASN1,
            crate::keys::spki_subject_public_key(key.public_key_spki()).unwrap(),
        );
        pk.verify(b"x", &sig).unwrap();
    }

    #[test]
    fn ecdsa_der_to_fixed_pads_strips_and_refuses() {
        let key = EcdsaP256Signer::generate().unwrap();
        let der = key.sign(b"message").unwrap();
        let fixed = ecdsa_p256_der_to_fixed(&der).unwrap();
        // The fixed form verifies with aws-lc-rs's FIXED algorithm.
        let spki_key = crate::keys::spki_subject_public_key(key.public_key_spki()).unwrap();
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &spki_key)
            .verify(b"message", &fixed)
            .unwrap();
        // Short integers are left-padded; a leading sign byte is stripped.
        let short = [0x30, 0x07, 0x02, 0x01, 0x05, 0x02, 0x02, 0x00, 0x85];
        let f = ecdsa_p256_der_to_fixed(&short).unwrap();
        assert_eq!((f[31], f[63], f[62]), (5, 0x85, 0));
        for bad in [
            &[][..],
            &[0x30, 0x00],
            &[0x30, 0x06, 0x02, 0x01, 0x85, 0x02, 0x01, 0x07], // negative r
            &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x07], // r = 0
            &[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07, 0x00], // trailing
        ] {
            assert!(ecdsa_p256_der_to_fixed(bad).is_err(), "{bad:02x?}");
        }
        let mut long = vec![0x30, 0x26, 0x02, 0x21, 0x01];
        long.extend([0u8; 32]);
        long.extend([0x02, 0x01, 0x01]);
        assert!(ecdsa_p256_der_to_fixed(&long).is_err());
    }
}
