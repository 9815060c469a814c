//! Shared PKI for Shōmei: JPKI certificate profiles, CSR checks, sharded
//! CRLs, OCSP and CMS. Everything here takes bytes, `now` and a
//! [`shomei_core::Signer`] in, and hands bytes out: no IO, no clock.

#![forbid(unsafe_code)]

pub mod cardface;
pub mod cms;
pub mod crl;
pub mod csr;
pub mod error;
pub mod keys;
pub mod ocsp;
pub mod oids;
pub mod pem;
pub mod profile;

pub use error::PkiError;
pub use keys::{EcdsaP256Signer, RsaSigner, SystemRandom, ecdsa_p256_der_to_fixed};
