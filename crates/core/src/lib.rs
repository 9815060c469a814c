//! Shōmei's shared core: the identity types every role agrees on, the
//! credential lifecycle rules, and the signer trait through which every
//! private key is reached.
//!
//! This crate does no IO and never reads the clock: `now` is always a
//! parameter, randomness comes through [`RandomSource`], and keys stay behind
//! [`Signer`].

#![forbid(unsafe_code)]

pub mod holder;
pub mod lifecycle;
pub mod my_number;
pub mod serial;
pub mod signer;

pub use holder::{BasicFour, BirthDate, HolderError, Sex};
pub use lifecycle::{
    Action, CertClass, CertStatus, Credential, LifecycleError, Plan, RevocationReason, Root,
    StatusChange,
};
pub use my_number::{MyNumber, MyNumberError};
pub use serial::{Serial, SerialError};
pub use signer::{RandomSource, SignError, SignatureAlgorithm, Signer};

/// A point in time. Core logic takes it as a parameter; only adapters read a clock.
pub type Timestamp = time::OffsetDateTime;
