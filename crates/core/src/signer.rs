//! The one way to reach a private key.
//!
//! The card, the phone's secure element and the authority's key store (later
//! an HSM) all implement [`Signer`]: callers get the public key and a
//! signature over bytes they hand in, never the key itself.

use core::fmt;

/// Signature algorithms Shōmei produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`sha256WithRSAEncryption`): every JPKI key.
    RsaPkcs1Sha256,
    /// ECDSA P-256 with SHA-256, DER-encoded signature (OCSP responder, mdoc keys).
    EcdsaP256Sha256,
}

/// A signing failure. It never carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The key store refused or failed (detail is safe to show).
    Backend(String),
    /// The key is locked: a PIN or password must be verified first.
    Locked,
    /// The randomness source failed.
    Random,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backend(m) => write!(f, "signing failed: {m}"),
            Self::Locked => f.write_str("signing key is locked: verify the PIN first"),
            Self::Random => f.write_str("randomness source failed"),
        }
    }
}

impl std::error::Error for SignError {}

/// A private key that signs but never leaves its store.
pub trait Signer: Send + Sync {
    /// DER SubjectPublicKeyInfo of the key.
    fn public_key_spki(&self) -> &[u8];

    /// The algorithm [`Signer::sign`] uses.
    fn algorithm(&self) -> SignatureAlgorithm;

    /// Signs `tbs` (the to-be-signed bytes; hashing is part of the algorithm).
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// A source of randomness, injected so tests are deterministic.
pub trait RandomSource: Send {
    /// Fill `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SignError>;
}
