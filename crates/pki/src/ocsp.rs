//! OCSP (RFC 6960): the responder core, sans-IO, and a small client.
//!
//! The server hands [`parse_request`] the request bytes, then
//! [`Responder::respond`] the parsed request, a status lookup and `now`, and
//! sends back the bytes it gets (or [`error_response`]). Nothing here reads
//! a clock, a database or a socket.
//!
//! ```text
//! OCSPRequest ::= SEQUENCE {
//!     tbsRequest              TBSRequest,
//!     optionalSignature   [0] EXPLICIT Signature OPTIONAL }
//!
//! TBSRequest ::= SEQUENCE {
//!     version             [0] EXPLICIT Version DEFAULT v1,
//!     requestorName       [1] EXPLICIT GeneralName OPTIONAL,
//!     requestList             SEQUENCE OF Request,
//!     requestExtensions   [2] EXPLICIT Extensions OPTIONAL }
//!
//! Request ::= SEQUENCE {
//!     reqCert                     CertID,
//!     singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
//!
//! CertID ::= SEQUENCE {
//!     hashAlgorithm           AlgorithmIdentifier,
//!     issuerNameHash          OCTET STRING, -- Hash of issuer's DN
//!     issuerKeyHash           OCTET STRING, -- Hash of issuer's public key
//!     serialNumber            CertificateSerialNumber }
//!
//! OCSPResponse ::= SEQUENCE {
//!    responseStatus         OCSPResponseStatus,
//!    responseBytes          [0] EXPLICIT ResponseBytes OPTIONAL }
//!
//! BasicOCSPResponse ::= SEQUENCE {
//!    tbsResponseData      ResponseData,
//!    signatureAlgorithm   AlgorithmIdentifier,
//!    signature            BIT STRING,
//!    certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
//!
//! ResponseData ::= SEQUENCE {
//!    version              [0] EXPLICIT Version DEFAULT v1,
//!    responderID              ResponderID,
//!    producedAt               GeneralizedTime,
//!    responses                SEQUENCE OF SingleResponse,
//!    responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
//!
//! SingleResponse ::= SEQUENCE {
//!    certID                       CertID,
//!    certStatus                   CertStatus,
//!    thisUpdate                   GeneralizedTime,
//!    nextUpdate         [0]       EXPLICIT GeneralizedTime OPTIONAL,
//!    singleExtensions   [1]       EXPLICIT Extensions OPTIONAL }
//!
//! CertStatus ::= CHOICE {
//!     good        [0]     IMPLICIT NULL,
//!     revoked     [1]     IMPLICIT RevokedInfo,
//!     unknown     [2]     IMPLICIT UnknownInfo }
//! ```
//!
//! Decisions:
//! * Responses are signed by a **delegated responder** per root (issued by
//!   [`crate::profile::issue_ocsp_responder`], EKU id-kp-OCSPSigning),
//!   identified **byKey**, and carry that certificate in `certs`. P-256 is
//!   the default responder key (≈40× the RSA-2048 signing rate); RSA works.
//! * `thisUpdate` = `producedAt` = `now`; `nextUpdate` = `now` + the
//!   responder's validity ([`DEFAULT_VALIDITY`], one hour, unless configured).
//! * Suspended certificates are `revoked` with reason `certificateHold`
//!   (RFC 6960 §2.2); a resumed one turns `good` again.
//! * One request, one root: the root of the first CertID that names a
//!   configured issuer signs the response; CertIDs naming the other root, an
//!   unknown issuer, or an impossible serial are answered `unknown`. If no
//!   CertID names a configured issuer, every answer is `unknown`, signed by
//!   the first configured responder ([`Responder::root_of`] lets a server
//!   answer `unauthorized` instead, as RFC 5019 suggests).
//! * Signed requests are accepted, but the signature is **ignored**: status
//!   is public information and Shōmei does not authenticate OCSP clients.
//! * Nonces (RFC 8954) of 1–128 octets are echoed; 0 or more than 128 is a
//!   malformed request. Without a nonce, a response depends only on the
//!   request bytes, the status and `now`, so a server may cache it by request
//!   DER until `nextUpdate` or until that serial's status changes
//!   ([`ParsedRequest::is_cacheable`]).

use std::collections::HashMap;
use std::sync::Arc;

use der::asn1::{AnyRef, BitStringRef, GeneralizedTime, Null, ObjectIdentifier};
use der::asn1::{OctetString, OctetStringRef};
use der::{Decode, Encode, Sequence, Tagged};
use shomei_core::{RevocationReason, Root, Serial, SignatureAlgorithm, Signer, Timestamp};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    CertId, CertStatus as OcspCertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
};

use crate::PkiError;
use crate::cms::{CertView, verify_spki_signature};

/// Largest OCSP request accepted (bytes). An unsigned request for 16
/// certificates with a nonce is under 2 KiB.
pub const MAX_REQUEST_LEN: usize = 16 * 1024;
/// Largest OCSP response [`parse_response`] accepts (bytes).
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// Most CertIDs in one request.
pub const MAX_CERT_IDS: usize = 16;
/// Longest nonce accepted (RFC 8954 §2.1: reject 0 and more than 128 octets).
pub const MAX_NONCE_LEN: usize = 128;
/// How long a response stays valid by default (`nextUpdate - thisUpdate`).
pub const DEFAULT_VALIDITY: time::Duration = time::Duration::hours(1);

const NONCE_OID: ObjectIdentifier = const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
const BASIC_OID: ObjectIdentifier = const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC;

/// The hash algorithms a CertID may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    /// SHA-1 (what most clients, and `openssl ocsp` by default, send).
    Sha1,
    /// SHA-256 (`openssl ocsp -sha256`).
    Sha256,
}

impl CertIdHash {
    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => const_oid::db::rfc5912::ID_SHA_1,
            Self::Sha256 => const_oid::db::rfc5912::ID_SHA_256,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [Self::Sha1, Self::Sha256]
            .into_iter()
            .find(|h| h.oid() == oid)
    }

    fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &aws_lc_rs::digest::SHA256,
        };
        aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
    }
}

/// The OCSP error statuses a responder can send without a signature
/// (`OCSPResponseStatus` minus `successful`).
///
/// ```text
/// OCSPResponseStatus ::= ENUMERATED {
///     successful            (0),  -- Response has valid confirmations
///     malformedRequest      (1),  -- Illegal confirmation request
///     internalError         (2),  -- Internal error in issuer
///     tryLater              (3),  -- Try again later
///                                 -- (4) is not used
///     sigRequired           (5),  -- Must sign the request
///     unauthorized          (6)   -- Request unauthorized }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OcspResponseStatus {
    /// 1: the request could not be parsed or is refused by policy.
    MalformedRequest,
    /// 2: the responder failed.
    InternalError,
    /// 3: the responder is temporarily unable to answer.
    TryLater,
    /// 6: the responder is not authoritative for the certificate.
    Unauthorized,
}

impl OcspResponseStatus {
    fn code(self) -> u8 {
        match self {
            Self::MalformedRequest => 1,
            Self::InternalError => 2,
            Self::TryLater => 3,
            Self::Unauthorized => 6,
        }
    }

    /// The RFC 6960 name (`malformedRequest`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformedRequest",
            Self::InternalError => "internalError",
            Self::TryLater => "tryLater",
            Self::Unauthorized => "unauthorized",
        }
    }
}

/// DER of an unsigned error `OCSPResponse` (no responseBytes).
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    // SEQUENCE { ENUMERATED status }: five fixed bytes. Written by hand
    // because encoding with x509-ocsp returns a Result for something that
    // cannot fail, and a server needs this path to be infallible.
    vec![0x30, 0x03, 0x0a, 0x01, status.code()]
}

/// The error status a server should send when [`parse_request`] or
/// [`Responder::respond`] fails with `err`.
pub fn status_for_error(err: &PkiError) -> OcspResponseStatus {
    match err {
        PkiError::Malformed { .. } | PkiError::Unsupported(_) => {
            OcspResponseStatus::MalformedRequest
        }
        PkiError::Sign(shomei_core::SignError::Locked) => OcspResponseStatus::TryLater,
        _ => OcspResponseStatus::InternalError,
    }
}

/// One CertID of a request, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedCert {
    /// The CertID's hash algorithm.
    pub hash: CertIdHash,
    /// Hash of the issuer's DN.
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's public key (the BIT STRING value).
    pub issuer_key_hash: Vec<u8>,
    /// The serial, or `None` if it cannot be one of ours (zero, negative, or
    /// longer than 20 octets): answered `unknown`.
    pub serial: Option<Serial>,
    /// The CertID as received, echoed in the response.
    cert_id: CertId,
}

/// A parsed OCSP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The CertIDs, in request order (1..=[`MAX_CERT_IDS`]).
    pub certs: Vec<RequestedCert>,
    /// The nonce value (the OCTET STRING's contents), if the client sent one.
    pub nonce: Option<Vec<u8>>,
    /// Whether the request carried a signature (accepted, not checked).
    pub signed: bool,
}

impl ParsedRequest {
    /// Whether the response may be cached and reused for the same request
    /// bytes: true when there is no nonce to echo.
    pub fn is_cacheable(&self) -> bool {
        self.nonce.is_none()
    }
}

/// Parses a DER `OCSPRequest` (as POSTed, or base64-decoded from a GET).
///
/// Refused with [`PkiError::Malformed`]: more than [`MAX_REQUEST_LEN`]
/// bytes, bad DER, no CertID, issuer hashes of the wrong length, a
/// duplicated nonce extension, a nonce of 0 or more than [`MAX_NONCE_LEN`]
/// octets. Refused with [`PkiError::Unsupported`]: more than
/// [`MAX_CERT_IDS`] CertIDs, a CertID hash other than SHA-1/SHA-256, an
/// unknown *critical* extension. Unknown non-critical extensions are
/// ignored; a request signature is accepted but not checked. Never panics.
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, PkiError> {
    let bad = |e: &dyn core::fmt::Display| PkiError::malformed("OCSP request", e);
    if der.len() > MAX_REQUEST_LEN {
        return Err(bad(&"longer than 16 KiB"));
    }
    let req = OcspRequestRaw::from_der(der).map_err(|e| bad(&e))?;
    let tbs = req.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(bad(&"no CertID"));
    }
    if tbs.request_list.len() > MAX_CERT_IDS {
        return Err(PkiError::Unsupported(format!(
            "more than {MAX_CERT_IDS} CertIDs in one OCSP request"
        )));
    }
    let mut certs = Vec::with_capacity(tbs.request_list.len());
    for r in tbs.request_list {
        check_extensions(r.single_request_extensions.as_deref(), &[])?;
        let id = r.req_cert;
        let hash = CertIdHash::from_oid(id.hash_algorithm.oid).ok_or_else(|| {
            PkiError::Unsupported(format!(
                "CertID hash algorithm {} (SHA-1 or SHA-256 only)",
                id.hash_algorithm.oid
            ))
        })?;
        if id
            .hash_algorithm
            .parameters
            .as_ref()
            .is_some_and(|p| !p.is_null())
        {
            return Err(bad(&"CertID hash algorithm with parameters"));
        }
        let name = id.issuer_name_hash.as_bytes();
        let key = id.issuer_key_hash.as_bytes();
        if name.len() != hash.len() || key.len() != hash.len() {
            return Err(bad(&"CertID hash of the wrong length"));
        }
        certs.push(RequestedCert {
            hash,
            issuer_name_hash: name.to_vec(),
            issuer_key_hash: key.to_vec(),
            serial: serial_from_der_int(id.serial_number.as_bytes()),
            cert_id: id,
        });
    }
    let exts = tbs.request_extensions.as_deref();
    check_extensions(exts, &[NONCE_OID])?;
    let mut nonce = None;
    for e in exts.unwrap_or_default() {
        if e.extn_id == NONCE_OID {
            if nonce.is_some() {
                return Err(bad(&"two nonce extensions"));
            }
            nonce = Some(nonce_value(e.extn_value.as_bytes()).map_err(|m| bad(&m))?);
        }
    }
    Ok(ParsedRequest {
        certs,
        nonce,
        signed: req.optional_signature.is_some(),
    })
}

// x509-ocsp's `OcspRequest` would decode requestorName and the signature's
// certificates, whose `Name`s x509-cert decodes with quadratic work (see
// `cms::CertView`). Shōmei ignores both, so they are kept as raw DER.

#[derive(Sequence)]
struct OcspRequestRaw<'a> {
    tbs_request: TbsRequestRaw<'a>,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    optional_signature: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct TbsRequestRaw<'a> {
    #[asn1(
        context_specific = "0",
        default = "Default::default",
        tag_mode = "EXPLICIT"
    )]
    version: x509_ocsp::Version,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    requestor_name: Option<AnyRef<'a>>,
    request_list: Vec<x509_ocsp::Request>,
    #[asn1(context_specific = "2", optional = "true", tag_mode = "EXPLICIT")]
    request_extensions: Option<x509_cert::ext::Extensions>,
}

/// ResponseData with the responderID kept raw (a byName responderID is a
/// `Name`; see [`OcspRequestRaw`]).
#[derive(Sequence)]
struct ResponseDataRaw<'a> {
    #[asn1(
        context_specific = "0",
        default = "Default::default",
        tag_mode = "EXPLICIT"
    )]
    version: x509_ocsp::Version,
    responder_id: AnyRef<'a>,
    produced_at: OcspGeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    response_extensions: Option<x509_cert::ext::Extensions>,
}

/// RFC 8954: the nonce extension's value is `Nonce ::= OCTET STRING`.
fn nonce_value(extn_value: &[u8]) -> Result<Vec<u8>, &'static str> {
    let n = OctetStringRef::from_der(extn_value).map_err(|_| "nonce is not an OCTET STRING")?;
    let n = n.as_bytes();
    if n.is_empty() || n.len() > MAX_NONCE_LEN {
        return Err("nonce must be 1 to 128 octets");
    }
    Ok(n.to_vec())
}

fn check_extensions(
    exts: Option<&[Extension]>,
    known: &[ObjectIdentifier],
) -> Result<(), PkiError> {
    for e in exts.unwrap_or_default() {
        if e.critical && !known.contains(&e.extn_id) {
            return Err(PkiError::Unsupported(format!(
                "critical OCSP extension {}",
                e.extn_id
            )));
        }
    }
    Ok(())
}

/// A DER INTEGER's content octets as one of our serials, if it can be one.
fn serial_from_der_int(bytes: &[u8]) -> Option<Serial> {
    match bytes.first() {
        Some(b) if b & 0x80 == 0 => Serial::from_be_bytes(bytes).ok(),
        _ => None,
    }
}

/// The CertID hashes of one issuer, for SHA-1 and SHA-256: the hash of the
/// issuer's DN (the DER of its certificate's `subject`) and of its public
/// key (the value of the `subjectPublicKey` BIT STRING, RFC 6960 §4.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerHashes {
    sha1_name: Vec<u8>,
    sha1_key: Vec<u8>,
    sha256_name: Vec<u8>,
    sha256_key: Vec<u8>,
}

impl IssuerHashes {
    /// From the issuer's DER certificate.
    pub fn from_cert(issuer_der: &[u8]) -> Result<Self, PkiError> {
        Ok(Self::from_view(&CertView::parse(issuer_der)?))
    }

    fn from_view(issuer: &CertView<'_>) -> Self {
        let (name, key) = (&issuer.subject, issuer.public_key);
        Self {
            sha1_name: CertIdHash::Sha1.digest(name),
            sha1_key: CertIdHash::Sha1.digest(key),
            sha256_name: CertIdHash::Sha256.digest(name),
            sha256_key: CertIdHash::Sha256.digest(key),
        }
    }

    /// issuerNameHash for `hash`.
    pub fn name_hash(&self, hash: CertIdHash) -> &[u8] {
        match hash {
            CertIdHash::Sha1 => &self.sha1_name,
            CertIdHash::Sha256 => &self.sha256_name,
        }
    }

    /// issuerKeyHash for `hash`.
    pub fn key_hash(&self, hash: CertIdHash) -> &[u8] {
        match hash {
            CertIdHash::Sha1 => &self.sha1_key,
            CertIdHash::Sha256 => &self.sha256_key,
        }
    }

    /// Whether a CertID names this issuer.
    pub fn matches(&self, cert: &RequestedCert) -> bool {
        self.name_hash(cert.hash) == cert.issuer_name_hash.as_slice()
            && self.key_hash(cert.hash) == cert.issuer_key_hash.as_slice()
    }
}

/// A certificate's status as the responder reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertState {
    /// Issued by us and neither revoked nor suspended (RFC 6960: "good"
    /// says nothing about expiry).
    Good,
    /// Revoked at `at`; suspended certificates are `Revoked` with
    /// [`RevocationReason::CertificateHold`].
    Revoked {
        /// revocationTime.
        at: Timestamp,
        /// revocationReason (omitted on the wire for `unspecified`).
        reason: RevocationReason,
    },
    /// Not a certificate this responder knows.
    Unknown,
}

/// What a [`Responder`] needs for one root.
pub struct ResponderIdentity {
    /// Which root.
    pub root: Root,
    /// The root's DER certificate (the issuer CertIDs name).
    pub root_cert_der: Vec<u8>,
    /// The delegated responder certificate, issued by the root with
    /// [`crate::profile::issue_ocsp_responder`].
    pub responder_cert_der: Vec<u8>,
    /// The responder certificate's key (P-256 recommended; RSA works).
    pub signer: Arc<dyn Signer>,
}

struct Entry {
    root: Root,
    hashes: IssuerHashes,
    responder_cert_der: Vec<u8>,
    responder_not_after: Timestamp,
    key_hash: OctetString,
    sig_alg: AlgorithmIdentifierOwned,
    signer: Arc<dyn Signer>,
}

/// The OCSP responder for the configured roots.
pub struct Responder {
    entries: Vec<Entry>,
    /// issuerKeyHash (SHA-1 and SHA-256 forms) → index into `entries`.
    by_key_hash: HashMap<Vec<u8>, usize>,
    validity: time::Duration,
}

impl Responder {
    /// Builds a responder. Each responder certificate must be issued (and
    /// signed) by its root, carry id-kp-OCSPSigning, and hold the signer's
    /// key; roots must be distinct; `validity` must be positive.
    pub fn new(
        identities: Vec<ResponderIdentity>,
        validity: time::Duration,
    ) -> Result<Self, PkiError> {
        if identities.is_empty() {
            return Err(PkiError::Build("an OCSP responder needs a root".into()));
        }
        if validity <= time::Duration::ZERO {
            return Err(PkiError::Build(
                "OCSP response validity must be positive".into(),
            ));
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(identities.len());
        let mut by_key_hash = HashMap::new();
        for id in identities {
            if entries.iter().any(|e| e.root == id.root) {
                return Err(PkiError::Build(format!(
                    "root {} configured twice",
                    id.root.as_str()
                )));
            }
            let root_view = CertView::parse(&id.root_cert_der)?;
            let responder = check_responder_cert(&root_view, &id.responder_cert_der)?;
            if responder.spki != id.signer.public_key_spki() {
                return Err(PkiError::BadKey(
                    "the responder signer does not hold the responder certificate's key".into(),
                ));
            }
            let sig_alg = match id.signer.algorithm() {
                SignatureAlgorithm::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
                    oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                    parameters: Some(Null.into()),
                },
                SignatureAlgorithm::EcdsaP256Sha256 => AlgorithmIdentifierOwned {
                    oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
                    parameters: None,
                },
                other => {
                    return Err(PkiError::Unsupported(format!(
                        "OCSP signing with {other:?}"
                    )));
                }
            };
            let key_hash = OctetString::new(CertIdHash::Sha1.digest(responder.public_key))
                .map_err(|e| PkiError::Build(e.to_string()))?;
            let responder_not_after = cert_time(responder.not_after)?;
            let hashes = IssuerHashes::from_view(&root_view);
            let index = entries.len();
            for h in [CertIdHash::Sha1, CertIdHash::Sha256] {
                by_key_hash.insert(hashes.key_hash(h).to_vec(), index);
            }
            entries.push(Entry {
                root: id.root,
                hashes,
                responder_cert_der: id.responder_cert_der,
                responder_not_after,
                key_hash,
                sig_alg,
                signer: id.signer,
            });
        }
        Ok(Self {
            entries,
            by_key_hash,
            validity,
        })
    }

    /// `nextUpdate - thisUpdate` of every response: how long a cached
    /// response may be served.
    pub fn validity(&self) -> time::Duration {
        self.validity
    }

    /// The root the response to `req` is about: that of the first CertID
    /// naming a configured root, or `None` if none does.
    pub fn root_of(&self, req: &ParsedRequest) -> Option<Root> {
        req.certs
            .iter()
            .find_map(|c| self.entry_for(c))
            .map(|e| e.root)
    }

    fn entry_for(&self, cert: &RequestedCert) -> Option<&Entry> {
        let entry = self
            .entries
            .get(*self.by_key_hash.get(cert.issuer_key_hash.as_slice())?)?;
        entry.hashes.matches(cert).then_some(entry)
    }

    /// Answers a parsed request: a DER `OCSPResponse` (successful,
    /// BasicOCSPResponse) signed by the responder of the request's root.
    ///
    /// `lookup(root, serial)` gives each certificate's state; it is called
    /// only for CertIDs that name the chosen root and carry a possible
    /// serial. Each SingleResponse echoes its CertID exactly as received.
    /// Fails if the responder certificate has expired at `now` or the
    /// signer fails (send [`status_for_error`] then).
    pub fn respond(
        &self,
        req: &ParsedRequest,
        lookup: impl Fn(Root, &Serial) -> CertState,
        now: Timestamp,
    ) -> Result<Vec<u8>, PkiError> {
        let build = |e: der::Error| PkiError::Build(format!("OCSP response: {e}"));
        let entry = match req.certs.iter().find_map(|c| self.entry_for(c)) {
            Some(e) => e,
            None => self
                .entries
                .first()
                .ok_or_else(|| PkiError::Build("no OCSP responder configured".into()))?,
        };
        if now > entry.responder_not_after {
            return Err(PkiError::Build(format!(
                "the {} OCSP responder certificate has expired",
                entry.root.as_str()
            )));
        }
        let this_update = ocsp_time(now)?;
        let next_update = ocsp_time(now + self.validity)?;
        let mut responses = Vec::with_capacity(req.certs.len());
        for c in &req.certs {
            let state = match &c.serial {
                Some(serial) if entry.hashes.matches(c) => lookup(entry.root, serial),
                _ => CertState::Unknown,
            };
            responses.push(SingleResponse {
                cert_id: c.cert_id.clone(),
                cert_status: ocsp_status(state)?,
                this_update,
                next_update: Some(next_update),
                single_extensions: None,
            });
        }
        let response_extensions = match &req.nonce {
            Some(n) => Some(vec![Extension {
                extn_id: NONCE_OID,
                critical: false,
                extn_value: OctetString::new(
                    OctetStringRef::new(n)
                        .and_then(|o| o.to_der())
                        .map_err(build)?,
                )
                .map_err(build)?,
            }]),
            None => None,
        };
        let tbs = ResponseData {
            version: x509_ocsp::Version::V1,
            responder_id: ResponderId::ByKey(entry.key_hash.clone()),
            produced_at: this_update,
            responses,
            response_extensions,
        }
        .to_der()
        .map_err(build)?;
        let signature = entry.signer.sign(&tbs)?;
        let basic = BasicOcspResponseRef {
            tbs_response_data: AnyRef::from_der(&tbs).map_err(build)?,
            signature_algorithm: entry.sig_alg.clone(),
            signature: BitStringRef::from_bytes(&signature).map_err(build)?,
            certs: Some(vec![
                AnyRef::from_der(&entry.responder_cert_der).map_err(build)?,
            ]),
        }
        .to_der()
        .map_err(build)?;
        OcspResponse {
            response_status: x509_ocsp::OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: BASIC_OID,
                response: OctetString::new(basic).map_err(build)?,
            }),
        }
        .to_der()
        .map_err(build)
    }
}

/// BasicOCSPResponse with the signed `tbsResponseData` and the certificates
/// kept as raw DER, so the bytes signed are exactly the bytes sent (and, when
/// parsing, exactly the bytes verified) without re-encoding.
#[derive(Sequence)]
struct BasicOcspResponseRef<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitStringRef<'a>,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    certs: Option<Vec<AnyRef<'a>>>,
}

fn ocsp_status(state: CertState) -> Result<OcspCertStatus, PkiError> {
    Ok(match state {
        CertState::Good => OcspCertStatus::good(),
        CertState::Unknown => OcspCertStatus::unknown(),
        CertState::Revoked { at, reason } => OcspCertStatus::Revoked(RevokedInfo {
            revocation_time: ocsp_time(at)?,
            revocation_reason: crl_reason(reason),
        }),
    })
}

fn crl_reason(r: RevocationReason) -> Option<CrlReason> {
    Some(match r {
        RevocationReason::Unspecified => return None,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    })
}

fn ocsp_time(t: Timestamp) -> Result<OcspGeneralizedTime, PkiError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| PkiError::Build("time before 1970".into()))?;
    GeneralizedTime::from_unix_duration(core::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(|e| PkiError::Build(format!("time: {e}")))
}

fn from_ocsp_time(t: OcspGeneralizedTime) -> Result<Timestamp, PkiError> {
    let secs = i64::try_from(t.0.to_unix_duration().as_secs())
        .map_err(|_| PkiError::malformed("OCSP response", "time out of range"))?;
    Timestamp::from_unix_timestamp(secs)
        .map_err(|_| PkiError::malformed("OCSP response", "time out of range"))
}

fn context_tag(n: u8) -> der::Tag {
    der::Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber::new(n),
    }
}

fn cert_time(t: x509_cert::time::Time) -> Result<Timestamp, PkiError> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| PkiError::malformed("certificate", "time out of range"))?;
    Timestamp::from_unix_timestamp(secs)
        .map_err(|_| PkiError::malformed("certificate", "time out of range"))
}

/// Checks that `cert_der` is an OCSP-signing certificate issued by
/// `issuer`: names match, the issuer's key signed it, and it carries
/// id-kp-OCSPSigning.
fn check_responder_cert<'c>(
    issuer: &CertView<'_>,
    cert_der: &'c [u8],
) -> Result<CertView<'c>, PkiError> {
    let cert = CertView::parse(cert_der)?;
    cert.verify_issued_by(issuer, "OCSP responder certificate")?;
    let has_ocsp_eku = cert
        .extension(const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .and_then(|v| x509_cert::ext::pkix::ExtendedKeyUsage::from_der(v).ok())
        .is_some_and(|eku| eku.0.contains(&const_oid::db::rfc5280::ID_KP_OCSP_SIGNING));
    if !has_ocsp_eku {
        return Err(PkiError::BadKey(
            "the responder certificate lacks id-kp-OCSPSigning".into(),
        ));
    }
    Ok(cert)
}

/// Builds an unsigned OCSP request for one certificate (client side: tests
/// and the relying party). `nonce`, if given, must be 1–128 octets
/// (RFC 8954 recommends 32).
pub fn build_request(
    cert_der: &[u8],
    issuer_der: &[u8],
    hash: CertIdHash,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, PkiError> {
    let build = |e: der::Error| PkiError::Build(format!("OCSP request: {e}"));
    let cert = CertView::parse(cert_der)?;
    let issuer = CertView::parse(issuer_der)?;
    if cert.issuer != issuer.subject {
        return Err(PkiError::Build(
            "the certificate was not issued by this issuer".into(),
        ));
    }
    let hashes = IssuerHashes::from_view(&issuer);
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: hash.oid(),
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(hashes.name_hash(hash)).map_err(build)?,
        issuer_key_hash: OctetString::new(hashes.key_hash(hash)).map_err(build)?,
        serial_number: x509_cert::serial_number::SerialNumber::from_der(&cert.serial)
            .map_err(|e| PkiError::malformed("certificate", e))?,
    };
    let request_extensions = match nonce {
        Some(n) => {
            if n.is_empty() || n.len() > MAX_NONCE_LEN {
                return Err(PkiError::Build("nonce must be 1 to 128 octets".into()));
            }
            Some(vec![Extension {
                extn_id: NONCE_OID,
                critical: false,
                extn_value: OctetString::new(
                    OctetStringRef::new(n)
                        .and_then(|o| o.to_der())
                        .map_err(build)?,
                )
                .map_err(build)?,
            }])
        }
        None => None,
    };
    OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(build)
}

/// One certificate's status in a verified response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleStatus {
    /// The certificate's serial.
    pub serial: Serial,
    /// Good, revoked (with reason; absent reason reads as `unspecified`) or unknown.
    pub state: CertState,
    /// thisUpdate.
    pub this_update: Timestamp,
    /// nextUpdate, if given.
    pub next_update: Option<Timestamp>,
}

impl SingleStatus {
    /// Whether the status is current at `now`, allowing `skew` of clock
    /// difference: `thisUpdate <= now + skew` and `now - skew < nextUpdate`
    /// (a status without nextUpdate is current only up to `skew` after
    /// thisUpdate).
    pub fn is_current(&self, now: Timestamp, skew: time::Duration) -> bool {
        let until = self.next_update.unwrap_or(self.this_update);
        self.this_update <= now + skew && now - skew < until
    }
}

/// A verified OCSP response (see [`parse_response`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseSummary {
    /// producedAt.
    pub produced_at: Timestamp,
    /// The echoed nonce value, if any (compare it with the one sent).
    pub nonce: Option<Vec<u8>>,
    /// One entry per SingleResponse about a certificate of the given issuer.
    pub statuses: Vec<SingleStatus>,
}

impl ResponseSummary {
    /// The status reported for `serial`, if any.
    pub fn status_of(&self, serial: &Serial) -> Option<&SingleStatus> {
        self.statuses.iter().find(|s| &s.serial == serial)
    }
}

/// Parses and verifies a DER OCSP response about certificates of
/// `issuer_der` (client side).
///
/// Checks: status `successful` (any other status is
/// [`PkiError::Unsupported`] naming it), basic response type, and the
/// signature — made either by the issuer itself or by a delegated responder
/// whose certificate is among the first four in `certs`, matches the
/// responderID, is issued and
/// signed by the issuer, carries id-kp-OCSPSigning and is valid at `now`.
/// SingleResponses whose CertID does not name the issuer are left out.
///
/// Not checked here: freshness ([`SingleStatus::is_current`]) and the nonce
/// (compare [`ResponseSummary::nonce`]), both caller policy.
pub fn parse_response(
    der: &[u8],
    issuer_der: &[u8],
    now: Timestamp,
) -> Result<ResponseSummary, PkiError> {
    let bad = |e: &dyn core::fmt::Display| PkiError::malformed("OCSP response", e);
    if der.len() > MAX_RESPONSE_LEN {
        return Err(bad(&"longer than 64 KiB"));
    }
    let resp = OcspResponse::from_der(der).map_err(|e| bad(&e))?;
    if resp.response_status != x509_ocsp::OcspResponseStatus::Successful {
        return Err(PkiError::Unsupported(format!(
            "OCSP responder answered {:?}",
            resp.response_status
        )));
    }
    let bytes = resp
        .response_bytes
        .ok_or_else(|| bad(&"successful response without responseBytes"))?;
    if bytes.response_type != BASIC_OID {
        return Err(PkiError::Unsupported(format!(
            "OCSP response type {}",
            bytes.response_type
        )));
    }
    let basic = BasicOcspResponseRef::from_der(bytes.response.as_bytes()).map_err(|e| bad(&e))?;
    let tbs = basic.tbs_response_data.to_der().map_err(|e| bad(&e))?;
    let data = ResponseDataRaw::from_der(&tbs).map_err(|e| bad(&e))?;

    let issuer = CertView::parse(issuer_der)?;
    // responderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }, EXPLICIT.
    let responder_id = data.responder_id;
    let names = |c: &CertView<'_>| {
        if responder_id.tag() == context_tag(1) {
            responder_id.value() == c.subject.as_slice()
        } else if responder_id.tag() == context_tag(2) {
            OctetStringRef::from_der(responder_id.value())
                .is_ok_and(|h| h.as_bytes() == CertIdHash::Sha1.digest(c.public_key))
        } else {
            false
        }
    };
    let signer_spki = if names(&issuer) {
        issuer.spki.clone()
    } else {
        let mut found = None;
        for any in basic.certs.iter().flatten().take(4) {
            let cert_der = any.to_der().map_err(|e| bad(&e))?;
            if names(&CertView::parse(&cert_der)?) {
                found = Some(cert_der);
                break;
            }
        }
        let cert_der = found.ok_or_else(|| bad(&"no certificate matches the responderID"))?;
        let cert = check_responder_cert(&issuer, &cert_der)?;
        if now < cert_time(cert.not_before)? || now > cert_time(cert.not_after)? {
            return Err(PkiError::BadKey(
                "the OCSP responder certificate is not valid now".into(),
            ));
        }
        cert.spki
    };
    let sig = basic
        .signature
        .as_bytes()
        .ok_or_else(|| bad(&"signature has unused bits"))?;
    verify_spki_signature(
        &signer_spki,
        basic.signature_algorithm.oid,
        None,
        &tbs,
        sig,
        "OCSP response",
    )?;

    let hashes = IssuerHashes::from_view(&issuer);
    let mut statuses = Vec::new();
    for r in data.responses.iter() {
        let Some(hash) = CertIdHash::from_oid(r.cert_id.hash_algorithm.oid) else {
            continue;
        };
        if hashes.name_hash(hash) != r.cert_id.issuer_name_hash.as_bytes()
            || hashes.key_hash(hash) != r.cert_id.issuer_key_hash.as_bytes()
        {
            continue;
        }
        let Some(serial) = serial_from_der_int(r.cert_id.serial_number.as_bytes()) else {
            continue;
        };
        let state = match r.cert_status {
            OcspCertStatus::Good(_) => CertState::Good,
            OcspCertStatus::Unknown(_) => CertState::Unknown,
            OcspCertStatus::Revoked(info) => CertState::Revoked {
                at: from_ocsp_time(info.revocation_time)?,
                reason: info
                    .revocation_reason
                    .and_then(|r| RevocationReason::from_code(r as u8))
                    .unwrap_or(RevocationReason::Unspecified),
            },
        };
        statuses.push(SingleStatus {
            serial,
            state,
            this_update: from_ocsp_time(r.this_update)?,
            next_update: r.next_update.map(from_ocsp_time).transpose()?,
        });
    }
    let mut nonce = None;
    for e in data.response_extensions.iter().flatten() {
        if e.extn_id == NONCE_OID {
            nonce = Some(nonce_value(e.extn_value.as_bytes()).map_err(|m| bad(&m))?);
        }
    }
    Ok(ResponseSummary {
        produced_at: from_ocsp_time(data.produced_at)?,
        nonce,
        statuses,
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use shomei_core::{BasicFour, CertClass};
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::profile::{
        EndEntityRequest, PublicationPoints, RootCa, card_not_after, issue_end_entity,
        issue_ocsp_responder,
    };
    use crate::{EcdsaP256Signer, RsaSigner};

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);

    struct World {
        sign: RootCa,
        auth: RootCa,
        sign_responder: Vec<u8>,
        responder: Responder,
        good: Vec<u8>,
        revoked: Vec<u8>,
        unknown: Vec<u8>,
        auth_ee: Vec<u8>,
    }

    fn ee(ca: &RootCa, key: &RsaSigner, class: CertClass, last: u8) -> Vec<u8> {
        let csr = crate::csr::check_csr(&crate::csr::build_csr(key, "x").unwrap()).unwrap();
        let h = BasicFour::new(
            "山田 太郎",
            "東京都千代田区千代田1-1",
            "1990-04-01".parse().unwrap(),
            shomei_core::Sex::Male,
        )
        .unwrap();
        let serial = Serial::from_be_bytes(&[0x40, 1, 2, 3, 4, 5, 6, 7, last]).unwrap();
        let req = EndEntityRequest {
            class,
            csr: &csr,
            holder: &h,
            serial: &serial,
            now: NOW,
            not_after: card_not_after(&h, NOW),
            shard: 0,
        };
        issue_end_entity(ca, &PublicationPoints::new("http://127.0.0.1:8700"), &req).unwrap()
    }

    fn serial_of(der: &[u8]) -> Serial {
        let tlv = CertView::parse(der).unwrap().serial;
        let n =
            x509_cert::serial_number::SerialNumber::<x509_cert::certificate::Rfc5280>::from_der(
                &tlv,
            )
            .unwrap();
        serial_from_der_int(n.as_bytes()).unwrap()
    }

    /// Two RSA roots, one RSA holder key reused for every EE, P-256 responders.
    fn world() -> World {
        let mk = |root: Root, n: u8| {
            RootCa::create(
                root,
                "Shomei Test Authority",
                Arc::new(RsaSigner::generate().unwrap()),
                &Serial::from_be_bytes(&[n]).unwrap(),
                NOW,
            )
            .unwrap()
        };
        let sign = mk(Root::Sign, 1);
        let auth = mk(Root::Auth, 2);
        let key = RsaSigner::generate().unwrap();
        let identity = |ca: &RootCa, n: u8| {
            let signer = Arc::new(EcdsaP256Signer::generate().unwrap());
            let cert = issue_ocsp_responder(
                ca,
                signer.as_ref(),
                &Serial::from_be_bytes(&[0x50, n]).unwrap(),
                NOW,
                30,
            )
            .unwrap();
            ResponderIdentity {
                root: ca.root(),
                root_cert_der: ca.cert_der().to_vec(),
                responder_cert_der: cert,
                signer,
            }
        };
        let si = identity(&sign, 1);
        let sign_responder = si.responder_cert_der.clone();
        let responder = Responder::new(vec![si, identity(&auth, 2)], DEFAULT_VALIDITY).unwrap();
        World {
            good: ee(&sign, &key, CertClass::CardSign, 1),
            revoked: ee(&sign, &key, CertClass::CardSign, 2),
            unknown: ee(&sign, &key, CertClass::CardSign, 3),
            auth_ee: ee(&auth, &key, CertClass::CardAuth, 4),
            sign,
            auth,
            sign_responder,
            responder,
        }
    }

    fn lookup(w: &World) -> impl Fn(Root, &Serial) -> CertState + '_ {
        let good = serial_of(&w.good);
        let revoked = serial_of(&w.revoked);
        let auth = serial_of(&w.auth_ee);
        move |root, s| match root {
            Root::Sign if *s == good => CertState::Good,
            Root::Sign if *s == revoked => CertState::Revoked {
                at: NOW + Duration::minutes(3),
                reason: RevocationReason::KeyCompromise,
            },
            Root::Auth if *s == auth => CertState::Good,
            _ => CertState::Unknown,
        }
    }

    fn run(cmd: &mut Command) -> (bool, String) {
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn write_pem(dir: &std::path::Path, name: &str, der: &[u8]) {
        std::fs::write(dir.join(format!("{name}.der")), der).unwrap();
        let (ok, text) = run(Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(dir.join(format!("{name}.der")))
            .arg("-out")
            .arg(dir.join(format!("{name}.pem"))));
        assert!(ok, "{text}");
    }

    #[test]
    fn openssl_ocsp_accepts_our_responses() {
        let w = world();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_pem(d, "ca", w.sign.cert_der());
        write_pem(d, "responder", &w.sign_responder);
        for (name, der) in [
            ("good", &w.good),
            ("revoked", &w.revoked),
            ("unknown", &w.unknown),
        ] {
            write_pem(d, name, der);
        }
        let at = (NOW + Duration::minutes(10)).unix_timestamp().to_string();
        let lookup = lookup(&w);
        for (name, hash, want) in [
            ("good", "-sha1", "good"),
            ("revoked", "-sha1", "revoked"),
            ("unknown", "-sha1", "unknown"),
            ("good", "-sha256", "good"),
        ] {
            let req_path = d.join(format!("{name}{hash}.req"));
            let resp_path = d.join(format!("{name}{hash}.resp"));
            let (ok, text) = run(Command::new("openssl")
                .args(["ocsp", hash, "-issuer"])
                .arg(d.join("ca.pem"))
                .arg("-cert")
                .arg(d.join(format!("{name}.pem")))
                .arg("-reqout")
                .arg(&req_path));
            assert!(ok, "{text}");
            let req = parse_request(&std::fs::read(&req_path).unwrap()).unwrap();
            assert!(req.nonce.is_some(), "openssl adds a nonce by default");
            assert_eq!(
                req.certs[0].hash,
                if hash == "-sha1" {
                    CertIdHash::Sha1
                } else {
                    CertIdHash::Sha256
                }
            );
            let resp = w
                .responder
                .respond(&req, &lookup, NOW + Duration::minutes(10))
                .unwrap();
            std::fs::write(&resp_path, &resp).unwrap();
            let (ok, text) = run(Command::new("openssl")
                .args(["ocsp", "-attime", &at, "-reqin"])
                .arg(&req_path)
                .arg("-respin")
                .arg(&resp_path)
                .arg("-CAfile")
                .arg(d.join("ca.pem"))
                .arg("-verify_other")
                .arg(d.join("responder.pem"))
                .arg("-resp_text"));
            assert!(ok, "{name} {hash}: {text}");
            assert!(text.contains("Response verify OK"), "{text}");
            assert!(text.contains(&format!("Cert Status: {want}")), "{text}");
            assert!(text.contains("OCSP Nonce"), "{text}");
            assert!(!text.contains("Nonce Verify error"), "{text}");
            assert!(!text.contains("no nonce in response"), "{text}");
            if want == "revoked" {
                assert!(text.contains("Revocation Reason: keyCompromise"), "{text}");
            }
            if hash == "-sha256" {
                assert!(text.contains("Hash Algorithm: sha256"), "{text}");
            }
            // The same checks through openssl's status lookup of the cert.
            let (ok, text) = run(Command::new("openssl")
                // -attime does not move OCSP_check_validity's clock; widen its window.
                .args(["ocsp", "-attime", &at, "-validity_period", "315360000"])
                .args(["-no_nonce", hash, "-respin"])
                .arg(&resp_path)
                .arg("-issuer")
                .arg(d.join("ca.pem"))
                .arg("-cert")
                .arg(d.join(format!("{name}.pem")))
                .arg("-CAfile")
                .arg(d.join("ca.pem"))
                .arg("-verify_other")
                .arg(d.join("responder.pem")));
            assert!(
                ok && text.contains(&format!("{name}.pem: {want}")),
                "{text}"
            );
            assert!(!text.contains("WARNING"), "{text}");

            // pyca/cryptography parses it and the responder key verifies it.
            let script = r#"
import sys
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.hazmat.primitives.asymmetric import ec
r = ocsp.load_der_ocsp_response(open(sys.argv[1], 'rb').read())
assert r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
responder = x509.load_der_x509_certificate(open(sys.argv[2], 'rb').read())
assert r.certificates[0] == responder
responder.public_key().verify(r.signature, r.tbs_response_bytes, ec.ECDSA(r.signature_hash_algorithm))
print('STATUS', r.certificate_status.name, r.hash_algorithm.name)
if r.certificate_status == ocsp.OCSPCertStatus.REVOKED:
    print('REASON', r.revocation_reason.name)
print('OK')
"#;
            let (ok, text) = run(Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(&resp_path)
                .arg(d.join("responder.der")));
            assert!(ok && text.contains("OK"), "{text}");
            assert!(
                text.contains(&format!("STATUS {}", want.to_uppercase())),
                "{text}"
            );
            if want == "revoked" {
                assert!(text.contains("REASON key_compromise"), "{text}");
            }

            // Our own client agrees.
            let s = parse_response(&resp, w.sign.cert_der(), NOW).unwrap();
            assert_eq!(s.nonce, req.nonce);
            assert_eq!(s.statuses.len(), 1);
            assert!(s.statuses[0].is_current(NOW + Duration::minutes(10), Duration::ZERO));
            assert!(!s.statuses[0].is_current(NOW + Duration::hours(2), Duration::ZERO));
        }
    }

    #[test]
    fn our_client_round_trip_multi_root_and_rsa_responder() {
        let w = world();
        let lookup = lookup(&w);
        let nonce = [7u8; 32];
        // Two CertIDs, same root, SHA-256, with nonce.
        let r1 =
            build_request(&w.good, w.sign.cert_der(), CertIdHash::Sha256, Some(&nonce)).unwrap();
        let req = parse_request(&r1).unwrap();
        assert_eq!(req.nonce.as_deref(), Some(&nonce[..]));
        assert!(!req.is_cacheable());
        assert_eq!(w.responder.root_of(&req), Some(Root::Sign));
        let resp = w.responder.respond(&req, &lookup, NOW).unwrap();
        let s = parse_response(&resp, w.sign.cert_der(), NOW).unwrap();
        assert_eq!(s.nonce.as_deref(), Some(&nonce[..]));
        assert_eq!(s.produced_at, NOW);
        let st = s.status_of(&serial_of(&w.good)).unwrap();
        assert_eq!(st.state, CertState::Good);
        assert_eq!(st.next_update, Some(NOW + DEFAULT_VALIDITY));
        // The response does not verify against the other root.
        assert!(parse_response(&resp, w.auth.cert_der(), NOW).is_err());

        // Mixed roots: the first CertID's root answers, the other is unknown.
        let auth_req = parse_request(
            &build_request(&w.auth_ee, w.auth.cert_der(), CertIdHash::Sha1, None).unwrap(),
        )
        .unwrap();
        let revoked_req = parse_request(
            &build_request(&w.revoked, w.sign.cert_der(), CertIdHash::Sha1, None).unwrap(),
        )
        .unwrap();
        let mixed = ParsedRequest {
            certs: vec![auth_req.certs[0].clone(), revoked_req.certs[0].clone()],
            nonce: None,
            signed: false,
        };
        assert!(mixed.is_cacheable());
        assert_eq!(w.responder.root_of(&mixed), Some(Root::Auth));
        let resp = w.responder.respond(&mixed, &lookup, NOW).unwrap();
        let s = parse_response(&resp, w.auth.cert_der(), NOW).unwrap();
        assert_eq!(
            s.statuses.len(),
            1,
            "only the auth CertID names the auth root"
        );
        assert_eq!(s.statuses[0].state, CertState::Good);
        let basic = OcspResponse::from_der(&resp)
            .unwrap()
            .response_bytes
            .unwrap();
        let basic = BasicOcspResponseRef::from_der(basic.response.as_bytes()).unwrap();
        let data = ResponseData::from_der(&basic.tbs_response_data.to_der().unwrap()).unwrap();
        assert_eq!(data.responses.len(), 2);
        assert_eq!(data.responses[1].cert_id, revoked_req.certs[0].cert_id);
        assert!(matches!(
            data.responses[1].cert_status,
            OcspCertStatus::Unknown(_)
        ));

        // Revoked through our client, suspended = certificateHold.
        let resp = w.responder.respond(&revoked_req, &lookup, NOW).unwrap();
        let s = parse_response(&resp, w.sign.cert_der(), NOW).unwrap();
        assert_eq!(
            s.statuses[0].state,
            CertState::Revoked {
                at: NOW + Duration::minutes(3),
                reason: RevocationReason::KeyCompromise
            }
        );
        let hold = |_: Root, _: &Serial| CertState::Revoked {
            at: NOW,
            reason: RevocationReason::CertificateHold,
        };
        let resp = w.responder.respond(&revoked_req, hold, NOW).unwrap();
        let s = parse_response(&resp, w.sign.cert_der(), NOW).unwrap();
        assert!(matches!(
            s.statuses[0].state,
            CertState::Revoked {
                reason: RevocationReason::CertificateHold,
                ..
            }
        ));

        // No nonce: the same request at the same time gives the same bytes
        // (ECDSA signatures differ, so compare the signed data).
        let a = w.responder.respond(&revoked_req, &lookup, NOW).unwrap();
        let b = w.responder.respond(&revoked_req, &lookup, NOW).unwrap();
        let tbs = |r: &[u8]| {
            let rb = OcspResponse::from_der(r).unwrap().response_bytes.unwrap();
            BasicOcspResponseRef::from_der(rb.response.as_bytes())
                .unwrap()
                .tbs_response_data
                .to_der()
                .unwrap()
        };
        assert_eq!(tbs(&a), tbs(&b));

        // An RSA responder works too (signature algorithm sha256WithRSA).
        let rsa = Arc::new(RsaSigner::generate().unwrap());
        let cert = issue_ocsp_responder(
            &w.sign,
            rsa.as_ref(),
            &Serial::from_be_bytes(&[0x51]).unwrap(),
            NOW,
            30,
        )
        .unwrap();
        let rsa_responder = Responder::new(
            vec![ResponderIdentity {
                root: Root::Sign,
                root_cert_der: w.sign.cert_der().to_vec(),
                responder_cert_der: cert,
                signer: rsa,
            }],
            Duration::minutes(10),
        )
        .unwrap();
        let resp = rsa_responder.respond(&req, &lookup, NOW).unwrap();
        let s = parse_response(&resp, w.sign.cert_der(), NOW).unwrap();
        assert_eq!(s.statuses[0].next_update, Some(NOW + Duration::minutes(10)));
        // Unknown issuer entirely: all unknown, signed by the first responder.
        let alien = ParsedRequest {
            certs: vec![RequestedCert {
                issuer_key_hash: vec![0; 20],
                ..auth_req.certs[0].clone()
            }],
            nonce: None,
            signed: false,
        };
        assert_eq!(rsa_responder.root_of(&alien), None);
        assert!(rsa_responder.respond(&alien, &lookup, NOW).is_ok());
        // Expired responder certificate: refused.
        assert!(
            rsa_responder
                .respond(&req, &lookup, NOW + Duration::days(31))
                .is_err()
        );
        // A responder cert from the wrong root, or a signer that does not match, is refused.
        let p256 = Arc::new(EcdsaP256Signer::generate().unwrap());
        let wrong = issue_ocsp_responder(
            &w.auth,
            p256.as_ref(),
            &Serial::from_be_bytes(&[0x52]).unwrap(),
            NOW,
            30,
        )
        .unwrap();
        let try_new = |root_cert: &[u8], cert: Vec<u8>, signer: Arc<dyn Signer>| {
            Responder::new(
                vec![ResponderIdentity {
                    root: Root::Sign,
                    root_cert_der: root_cert.to_vec(),
                    responder_cert_der: cert,
                    signer,
                }],
                DEFAULT_VALIDITY,
            )
        };
        assert!(try_new(w.sign.cert_der(), wrong.clone(), p256.clone()).is_err());
        assert!(try_new(w.auth.cert_der(), wrong.clone(), p256).is_ok());
        let other: Arc<dyn Signer> = Arc::new(EcdsaP256Signer::generate().unwrap());
        assert!(matches!(
            try_new(w.auth.cert_der(), wrong, other),
            Err(PkiError::BadKey(_))
        ));
        // An EE certificate (no OCSPSigning EKU) is not a responder.
        let ee_key = Arc::new(RsaSigner::generate().unwrap());
        let ee_cert = {
            let csr = crate::csr::check_csr(&crate::csr::build_csr(ee_key.as_ref(), "x").unwrap())
                .unwrap();
            let h = BasicFour::new(
                "a",
                "b",
                "1990-04-01".parse().unwrap(),
                shomei_core::Sex::Male,
            )
            .unwrap();
            issue_end_entity(
                &w.sign,
                &PublicationPoints::new("http://x"),
                &EndEntityRequest {
                    class: CertClass::CardSign,
                    csr: &csr,
                    holder: &h,
                    serial: &Serial::from_be_bytes(&[0x53]).unwrap(),
                    now: NOW,
                    not_after: NOW + Duration::days(10),
                    shard: 0,
                },
            )
            .unwrap()
        };
        assert!(matches!(
            try_new(w.sign.cert_der(), ee_cert, ee_key),
            Err(PkiError::BadKey(_))
        ));
    }

    #[test]
    fn error_responses_and_bad_requests() {
        for (s, code, name) in [
            (OcspResponseStatus::MalformedRequest, 1, "malformed_request"),
            (OcspResponseStatus::InternalError, 2, "internal_error"),
            (OcspResponseStatus::TryLater, 3, "try_later"),
            (OcspResponseStatus::Unauthorized, 6, "unauthorized"),
        ] {
            let der = error_response(s);
            let parsed = OcspResponse::from_der(&der).unwrap();
            assert_eq!(parsed.response_status as u8, code);
            assert!(parsed.response_bytes.is_none());
            // pyca reads it too.
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("e.der"), &der).unwrap();
            let (ok, text) = run(Command::new("python3")
                .arg("-c")
                .arg(
                    "import sys\nfrom cryptography.x509 import ocsp\n\
                     print(ocsp.load_der_ocsp_response(open(sys.argv[1],'rb').read()).response_status.name.lower())",
                )
                .arg(dir.path().join("e.der")));
            assert!(ok && text.contains(name), "{text}");
        }
        assert_eq!(
            status_for_error(&PkiError::malformed("x", "y")),
            OcspResponseStatus::MalformedRequest
        );
        assert_eq!(
            status_for_error(&PkiError::Build("x".into())),
            OcspResponseStatus::InternalError
        );

        let w = world();
        let req = build_request(&w.good, w.sign.cert_der(), CertIdHash::Sha1, Some(b"n")).unwrap();
        // Build a request with 17 CertIDs, with a SHA-384 CertID, with a 129-octet nonce.
        let mut ocsp = OcspRequest::from_der(&req).unwrap();
        let one = ocsp.tbs_request.request_list[0].clone();
        ocsp.tbs_request.request_list = vec![one.clone(); MAX_CERT_IDS + 1];
        assert!(matches!(
            parse_request(&ocsp.to_der().unwrap()),
            Err(PkiError::Unsupported(_))
        ));
        ocsp.tbs_request.request_list = vec![one.clone(); MAX_CERT_IDS];
        assert_eq!(
            parse_request(&ocsp.to_der().unwrap()).unwrap().certs.len(),
            16
        );
        let mut sha384 = one.clone();
        sha384.req_cert.hash_algorithm.oid = const_oid::db::rfc5912::ID_SHA_384;
        ocsp.tbs_request.request_list = vec![sha384];
        assert!(matches!(
            parse_request(&ocsp.to_der().unwrap()),
            Err(PkiError::Unsupported(m)) if m.contains("hash algorithm")
        ));
        ocsp.tbs_request.request_list = vec![one];
        for bad_len in [0usize, MAX_NONCE_LEN + 1] {
            let ext = Extension {
                extn_id: NONCE_OID,
                critical: false,
                extn_value: OctetString::new(
                    OctetString::new(vec![1u8; bad_len])
                        .unwrap()
                        .to_der()
                        .unwrap(),
                )
                .unwrap(),
            };
            ocsp.tbs_request.request_extensions = Some(vec![ext]);
            assert!(matches!(
                parse_request(&ocsp.to_der().unwrap()),
                Err(PkiError::Malformed { .. })
            ));
        }
        assert!(build_request(&w.good, w.sign.cert_der(), CertIdHash::Sha1, Some(&[])).is_err());
        assert!(build_request(&w.good, w.auth.cert_der(), CertIdHash::Sha1, None).is_err());
        assert!(parse_request(&vec![0x30; MAX_REQUEST_LEN + 1]).is_err());
    }

    #[test]
    fn a_request_with_a_hostile_requestor_name_costs_linear_time() {
        use crate::cms::tests::{hostile_name, tlv};
        let w = world();
        let req = build_request(&w.good, w.sign.cert_der(), CertIdHash::Sha1, None).unwrap();
        let list = OcspRequest::from_der(&req)
            .unwrap()
            .tbs_request
            .request_list
            .to_der()
            .unwrap();
        // requestorName [1] EXPLICIT GeneralName directoryName [4] EXPLICIT Name.
        let name = tlv(0xa1, &tlv(0xa4, &hostile_name(1450)));
        let hostile = tlv(0x30, &tlv(0x30, &[name, list].concat()));
        assert!(hostile.len() <= MAX_REQUEST_LEN, "{}", hostile.len());
        let start = std::time::Instant::now();
        let p = parse_request(&hostile).unwrap();
        let elapsed = start.elapsed();
        println!("parse_request with a 16 KiB hostile requestorName: {elapsed:?}");
        assert_eq!(p.certs.len(), 1);
        assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        let w = world();
        let lookup = lookup(&w);
        let req =
            build_request(&w.good, w.sign.cert_der(), CertIdHash::Sha1, Some(&[9; 16])).unwrap();
        for n in 0..req.len() {
            assert!(parse_request(&req[..n]).is_err(), "prefix {n}");
        }
        for i in 0..req.len() {
            for bit in 0..8 {
                let mut b = req.clone();
                b[i] ^= 1 << bit;
                if let Ok(p) = parse_request(&b) {
                    // Whatever parses must also be answerable.
                    w.responder.respond(&p, &lookup, NOW).unwrap();
                }
            }
        }
        let resp = w
            .responder
            .respond(&parse_request(&req).unwrap(), &lookup, NOW)
            .unwrap();
        for n in 0..resp.len() {
            assert!(parse_response(&resp[..n], w.sign.cert_der(), NOW).is_err());
        }
        let mut verified_flips = 0;
        for i in 0..resp.len() {
            let mut b = resp.clone();
            b[i] ^= 0x01;
            if parse_response(&b, w.sign.cert_der(), NOW).is_ok() {
                verified_flips += 1;
            }
        }
        // Only flips inside the (unsigned) embedded certificate's signature
        // bits or other unsigned fields could survive; the signed data cannot.
        assert!(verified_flips < resp.len() / 4, "{verified_flips}");
        for junk in [
            &b""[..],
            b"\x30",
            b"\x30\x00",
            b"\x30\x80\x00\x00",
            b"\xff\xff\xff",
        ] {
            assert!(parse_request(junk).is_err());
            assert!(parse_response(junk, w.sign.cert_der(), NOW).is_err());
        }
    }

    /// Prints responses/s for P-256 and RSA responders (single thread, not
    /// asserted). `cargo test -p shomei-pki --release -- --nocapture ocsp_throughput`.
    #[test]
    fn ocsp_throughput() {
        let w = world();
        let lookup = lookup(&w);
        let req = parse_request(
            &build_request(&w.good, w.sign.cert_der(), CertIdHash::Sha1, Some(&[1; 32])).unwrap(),
        )
        .unwrap();
        let rsa = Arc::new(RsaSigner::generate().unwrap());
        let rsa_cert = issue_ocsp_responder(
            &w.sign,
            rsa.as_ref(),
            &Serial::from_be_bytes(&[0x51]).unwrap(),
            NOW,
            30,
        )
        .unwrap();
        let rsa_responder = Responder::new(
            vec![ResponderIdentity {
                root: Root::Sign,
                root_cert_der: w.sign.cert_der().to_vec(),
                responder_cert_der: rsa_cert,
                signer: rsa,
            }],
            DEFAULT_VALIDITY,
        )
        .unwrap();
        for (name, responder, n) in [
            ("P-256", &w.responder, 2000u32),
            ("RSA-2048", &rsa_responder, 200),
        ] {
            let start = std::time::Instant::now();
            let mut bytes = 0;
            for _ in 0..n {
                bytes = responder.respond(&req, &lookup, NOW).unwrap().len();
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "OCSP {name}: {:.0} responses/s (parse excluded, nonce, {bytes} bytes each)",
                f64::from(n) / secs
            );
        }
        let raw = build_request(&w.good, w.sign.cert_der(), CertIdHash::Sha1, None).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..2000 {
            let p = parse_request(&raw).unwrap();
            let _ = w.responder.respond(&p, &lookup, NOW).unwrap();
        }
        println!(
            "OCSP P-256 parse+respond: {:.0} /s",
            2000.0 / start.elapsed().as_secs_f64()
        );
    }
}
