//! ISO/IEC 18013-5 mobile ID (mdoc) for Shōmei, sans-IO: bytes and `now`
//! in, bytes out; keys only through [`shomei_core::Signer`].
//!
//! * `session`: device engagement, session establishment, the session
//!   transcript, SKDevice/SKReader (ECDH P-256 + HKDF-SHA256) and
//!   AES-256-GCM session data with the §9.1.1 counters.
//! * `issuer`: IssuerSignedItems, the Mobile Security Object and its
//!   COSE_Sign1 by a document signer under the IACA, and their checks.
//! * `mso`: the Mobile Security Object (device key as COSE_Key, validity
//!   as whole-second UTC `tdate`s, the 2nd-edition `status` reference).
//! * `status`: the IETF Token Status List the authority publishes, and its
//!   signed CWT (bounded decompression on the reader's side).
//! * `reader_auth`: reader authentication (§9.1.4): the reader signs its
//!   request, the holder checks it against trusted reader CAs.
//! * `jp`: the My Number Card document `org.iso.23220.1.jp.mnc`.
//!
//! Conformance: the Annex D vectors in `tests/data/` pass byte for byte.

#![forbid(unsafe_code)]

pub mod cbor;
pub mod device_auth;
pub mod error;
pub mod issuer;
pub mod jp;
pub mod mso;
pub mod present;
pub mod reader;
pub mod reader_auth;
pub mod request;
pub mod session;
pub mod status;

/// The CBOR value type of the public API (element values).
pub use ciborium::Value as CborValue;
pub use error::MdocError;
pub use request::parse_device_request;
pub use session::{parse_device_engagement, parse_session_data, parse_session_establishment};
