//! The crate's one error type, [`MdocError`], with stable [`MdocError::code`]
//! strings for callers and logs. Errors never carry personal data: element
//! identifiers and doc types are names from the standard, not values.

use core::fmt;

use shomei_core::SignError;

/// Everything that can go wrong in the mdoc core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MdocError {
    /// The bytes are not the CBOR structure expected here (what was wrong).
    MalformedCbor(&'static str),
    /// Input over a size or count limit (which limit).
    LimitExceeded(&'static str),
    /// Well-formed but not supported (version, cipher suite, curve, algorithm).
    Unsupported(&'static str),
    /// A COSE_Sign1 signature does not verify.
    BadSignature,
    /// A COSE_Mac0 tag does not verify.
    BadMac,
    /// AES-GCM session data did not authenticate under any key or counter we
    /// could expect (tampered, truncated, or from another session).
    DecryptionFailed,
    /// The message authenticates under a counter already used: a replay.
    Replayed {
        /// The counter it was encrypted with.
        counter: u32,
    },
    /// The message authenticates under a later counter than expected: a
    /// message was lost or messages arrived out of order.
    OutOfOrder {
        /// The counter we expected.
        expected: u32,
        /// The counter it was encrypted with.
        got: u32,
    },
    /// The message counter would wrap.
    CounterExhausted,
    /// The message authenticates under the other direction's session key
    /// (a reflected message, or the peers disagree about their roles).
    WrongSessionKey,
    /// The session has ended (status 20 sent or received) or failed before.
    SessionClosed,
    /// A digest in the MSO does not match the disclosed item.
    DigestMismatch {
        /// Name space of the item.
        namespace: String,
        /// Element identifier of the item.
        element: String,
    },
    /// Outside its validity period: past the end.
    Expired,
    /// Outside its validity period: before the start.
    NotYetValid,
    /// The document signer does not chain to a trusted IACA.
    UntrustedIaca,
    /// A doc type we do not know or that does not match.
    UnknownDocType(String),
    /// A disclosed element that the request did not ask for.
    ElementNotRequested {
        /// Name space of the element.
        namespace: String,
        /// Element identifier.
        element: String,
    },
    /// The credential is revoked.
    Revoked,
    /// The credential is suspended.
    Suspended,
    /// The signer failed.
    Signer(SignError),
    /// A cryptographic primitive failed for a reason other than the input
    /// (randomness, key generation).
    Crypto(&'static str),
    /// Anything else that is invalid (what).
    Invalid(&'static str),
    /// Issuer side: the MSO's docType differs from the document's.
    DocTypeMismatch,
    /// Issuer side: a disclosed item's digestID is not in the MSO.
    UnknownDigestId {
        /// Name space of the item.
        namespace: String,
        /// Element identifier of the item.
        element: String,
    },
    /// Issuer side: a disclosed name space has no digests in the MSO.
    UnknownNamespace(String),
    /// A certificate (document signer, IACA, status list signer) is outside
    /// its validity period at `now`.
    CertificateNotValid,
    /// The status list reference points past the end of the list.
    StatusIndexOutOfRange,
    /// The status list supplied is not the one the MSO points to (uri/sub).
    StatusListMismatch,
    /// The Status List Token is past its `exp`.
    StatusListExpired,
    /// The peer ended the session with an error status (SessionData
    /// status 10 or 11).
    PeerError {
        /// The status code received.
        status: u64,
    },
    /// The DeviceResponse's `status` is not 0 (OK).
    DeviceResponseStatus(u64),
    /// Reader authentication: the readerAuth is not a well-formed ES256
    /// COSE_Sign1 with an x5chain holding a P-256 reader certificate (what).
    ReaderAuthMalformed(&'static str),
    /// Reader authentication: the signature does not verify over this
    /// session's transcript and the ItemsRequestBytes received.
    BadReaderSignature,
    /// Reader authentication: the reader certificate is not issued by a
    /// trusted reader CA.
    UntrustedReader,
    /// Reader authentication: the reader certificate or its CA is outside
    /// its validity period at `now`.
    ReaderCertificateNotValid,
    /// Reader authentication: the reader certificate lacks the extended key
    /// usage id-mdl-kp-mdlReaderAuth (1.0.18013.5.1.6).
    ReaderCertificateUsage,
    /// Reader authentication: the reader certificate is on its reader CA's
    /// CRL (revoked, e.g. its key was stolen).
    ReaderCertificateRevoked,
}

impl MdocError {
    /// A stable, machine-readable code (snake_case); never changes meaning.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedCbor(_) => "malformed_cbor",
            Self::LimitExceeded(_) => "limit_exceeded",
            Self::Unsupported(_) => "unsupported",
            Self::BadSignature => "bad_signature",
            Self::BadMac => "bad_mac",
            Self::DecryptionFailed => "decryption_failed",
            Self::Replayed { .. } => "replayed",
            Self::OutOfOrder { .. } => "out_of_order",
            Self::CounterExhausted => "counter_exhausted",
            Self::WrongSessionKey => "wrong_session_key",
            Self::SessionClosed => "session_closed",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UntrustedIaca => "untrusted_iaca",
            Self::UnknownDocType(_) => "unknown_doc_type",
            Self::ElementNotRequested { .. } => "element_not_requested",
            Self::Revoked => "revoked",
            Self::Suspended => "suspended",
            Self::Signer(_) => "signer",
            Self::Crypto(_) => "crypto",
            Self::Invalid(_) => "invalid",
            Self::DocTypeMismatch => "doc_type_mismatch",
            Self::UnknownDigestId { .. } => "unknown_digest_id",
            Self::UnknownNamespace(_) => "unknown_namespace",
            Self::CertificateNotValid => "certificate_not_valid",
            Self::StatusIndexOutOfRange => "status_index_out_of_range",
            Self::StatusListMismatch => "status_list_mismatch",
            Self::StatusListExpired => "status_list_expired",
            Self::PeerError { .. } => "peer_error",
            Self::DeviceResponseStatus(_) => "device_response_status",
            Self::ReaderAuthMalformed(_) => "reader_auth_malformed",
            Self::BadReaderSignature => "bad_reader_signature",
            Self::UntrustedReader => "untrusted_reader",
            Self::ReaderCertificateNotValid => "reader_certificate_not_valid",
            Self::ReaderCertificateUsage => "reader_certificate_usage",
            Self::ReaderCertificateRevoked => "reader_certificate_revoked",
        }
    }

    /// Whether this is a reader-authentication failure (a request whose
    /// readerAuth is present but invalid).
    pub fn is_reader_auth(&self) -> bool {
        matches!(
            self,
            Self::ReaderAuthMalformed(_)
                | Self::BadReaderSignature
                | Self::UntrustedReader
                | Self::ReaderCertificateNotValid
                | Self::ReaderCertificateUsage
                | Self::ReaderCertificateRevoked
        )
    }
}

impl fmt::Display for MdocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedCbor(what) => write!(f, "malformed CBOR: {what}"),
            Self::LimitExceeded(what) => write!(f, "limit exceeded: {what}"),
            Self::Unsupported(what) => write!(f, "unsupported: {what}"),
            Self::BadSignature => f.write_str("signature does not verify"),
            Self::BadMac => f.write_str("MAC does not verify"),
            Self::DecryptionFailed => f.write_str("session data does not decrypt"),
            Self::Replayed { counter } => {
                write!(f, "replayed message (counter {counter} already used)")
            }
            Self::OutOfOrder { expected, got } => {
                write!(
                    f,
                    "message out of order (expected counter {expected}, got {got})"
                )
            }
            Self::CounterExhausted => f.write_str("message counter exhausted"),
            Self::WrongSessionKey => {
                f.write_str("message encrypted with the other direction's session key")
            }
            Self::SessionClosed => f.write_str("session closed"),
            Self::DigestMismatch { namespace, element } => {
                write!(f, "digest mismatch for {namespace}/{element}")
            }
            Self::Expired => f.write_str("expired"),
            Self::NotYetValid => f.write_str("not yet valid"),
            Self::UntrustedIaca => f.write_str("document signer does not chain to a trusted IACA"),
            Self::UnknownDocType(t) => write!(f, "unknown doc type {t}"),
            Self::ElementNotRequested { namespace, element } => {
                write!(f, "element {namespace}/{element} was not requested")
            }
            Self::Revoked => f.write_str("revoked"),
            Self::Suspended => f.write_str("suspended"),
            Self::Signer(e) => write!(f, "{e}"),
            Self::Crypto(what) => write!(f, "cryptographic failure: {what}"),
            Self::Invalid(what) => write!(f, "invalid: {what}"),
            Self::DocTypeMismatch => f.write_str("the MSO's docType differs from the document's"),
            Self::UnknownDigestId { namespace, element } => {
                write!(f, "no digest in the MSO for {namespace}/{element}")
            }
            Self::UnknownNamespace(ns) => write!(f, "no digests in the MSO for name space {ns}"),
            Self::CertificateNotValid => f.write_str("certificate outside its validity period"),
            Self::StatusIndexOutOfRange => f.write_str("status list index out of range"),
            Self::StatusListMismatch => f.write_str("status list is not the one referenced"),
            Self::StatusListExpired => f.write_str("status list token expired"),
            Self::PeerError { status } => {
                write!(f, "the peer ended the session with status {status}")
            }
            Self::DeviceResponseStatus(s) => write!(f, "DeviceResponse status {s}"),
            Self::ReaderAuthMalformed(what) => write!(f, "reader authentication malformed: {what}"),
            Self::BadReaderSignature => f.write_str(
                "reader authentication signature does not verify over this session's request",
            ),
            Self::UntrustedReader => {
                f.write_str("reader certificate does not chain to a trusted reader CA")
            }
            Self::ReaderCertificateNotValid => {
                f.write_str("reader certificate outside its validity period")
            }
            Self::ReaderCertificateUsage => f.write_str(
                "reader certificate lacks the mdoc reader authentication extended key usage",
            ),
            Self::ReaderCertificateRevoked => {
                f.write_str("reader certificate is revoked (on the reader CA's CRL)")
            }
        }
    }
}

impl std::error::Error for MdocError {}

impl From<SignError> for MdocError {
    fn from(e: SignError) -> Self {
        Self::Signer(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            MdocError::MalformedCbor("x"),
            MdocError::LimitExceeded("x"),
            MdocError::Unsupported("x"),
            MdocError::BadSignature,
            MdocError::BadMac,
            MdocError::DecryptionFailed,
            MdocError::Replayed { counter: 1 },
            MdocError::OutOfOrder {
                expected: 1,
                got: 2,
            },
            MdocError::CounterExhausted,
            MdocError::WrongSessionKey,
            MdocError::SessionClosed,
            MdocError::DigestMismatch {
                namespace: "n".into(),
                element: "e".into(),
            },
            MdocError::Expired,
            MdocError::NotYetValid,
            MdocError::UntrustedIaca,
            MdocError::UnknownDocType("t".into()),
            MdocError::ElementNotRequested {
                namespace: "n".into(),
                element: "e".into(),
            },
            MdocError::Revoked,
            MdocError::Suspended,
            MdocError::Signer(SignError::Locked),
            MdocError::Crypto("x"),
            MdocError::Invalid("x"),
            MdocError::DocTypeMismatch,
            MdocError::UnknownDigestId {
                namespace: "n".into(),
                element: "e".into(),
            },
            MdocError::UnknownNamespace("n".into()),
            MdocError::CertificateNotValid,
            MdocError::StatusIndexOutOfRange,
            MdocError::StatusListMismatch,
            MdocError::StatusListExpired,
            MdocError::PeerError { status: 10 },
            MdocError::DeviceResponseStatus(10),
            MdocError::ReaderAuthMalformed("x"),
            MdocError::BadReaderSignature,
            MdocError::UntrustedReader,
            MdocError::ReaderCertificateNotValid,
            MdocError::ReaderCertificateUsage,
            MdocError::ReaderCertificateRevoked,
        ];
        let mut codes: Vec<_> = all.iter().map(MdocError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|e| !e.to_string().is_empty()));
    }
}
