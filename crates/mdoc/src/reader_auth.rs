//! Reader authentication (ISO/IEC 18013-5 §9.1.4), both sides, sans-IO.
//!
//! ```text
//! ReaderAuthentication      = ["ReaderAuthentication", SessionTranscript, ItemsRequestBytes]
//! ReaderAuthenticationBytes = #6.24(bstr .cbor ReaderAuthentication)   (the detached payload)
//! readerAuth                = COSE_Sign1, ES256, payload nil, unprotected {33: x5chain}
//! ```
//!
//! The reader signs through a [`Signer`] ([`ReaderAuthKey`]; the key never
//! leaves its store). The holder ([`authenticate_reader`]) checks, in this
//! order, each failure with its own [`MdocError`]:
//!
//! 1. the COSE_Sign1 is well formed and carries an x5chain
//!    ([`MdocError::ReaderAuthMalformed`]);
//! 2. the signature, with the key of the chain's first certificate, over
//!    ReaderAuthenticationBytes built from **this session's exact
//!    SessionTranscript and the exact ItemsRequestBytes received**
//!    ([`MdocError::BadReaderSignature`]: a tampered request, another
//!    session's signature);
//! 3. that certificate is issued (name and signature) directly by one of the
//!    trusted reader CAs ([`MdocError::UntrustedReader`]; further
//!    certificates in the chain are ignored);
//! 4. the CA and the reader certificate are valid at `now`
//!    ([`MdocError::ReaderCertificateNotValid`]);
//! 5. the reader certificate lists the extended key usage
//!    id-mdl-kp-mdlReaderAuth 1.0.18013.5.1.6
//!    ([`MdocError::ReaderCertificateUsage`]).
//!
//! The result is a [`ReaderIdentity`]: the certificate subject's CN and O,
//! for the holder's consent decision. Revocation of reader certificates is
//! not checked (they are short-lived).

use ciborium::Value;
use shomei_core::{Signer, Timestamp};
use shomei_pki::cms::CertView;

use crate::device_auth::{COSE_HEADER_X5CHAIN, CoseSign1, reader_authentication_bytes};
use crate::error::MdocError;
use crate::issuer::{check_valid_at, has_eku};
use crate::session::{EcPublicKey, SessionTranscriptBytes};

/// DER of the OID id-mdl-kp-mdlReaderAuth, 1.0.18013.5.1.6.
pub const MDL_READER_AUTH_EKU_DER: [u8; 9] = [0x06, 0x07, 0x28, 0x81, 0x8c, 0x5d, 0x05, 0x01, 0x06];

/// Most certificates accepted in a reader's x5chain.
pub const MAX_READER_CHAIN: usize = 4;

/// The reader's signing key and certificate chain (reader certificate
/// first), for [`crate::reader::Reader`].
#[derive(Clone, Copy)]
pub struct ReaderAuthKey<'a> {
    /// Signs ReaderAuthentication (P-256, ES256); the key stays inside.
    pub signer: &'a dyn Signer,
    /// DER certificates, the reader certificate first.
    pub chain: &'a [Vec<u8>],
}

impl std::fmt::Debug for ReaderAuthKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderAuthKey")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Signs a DocRequest's readerAuth: COSE_Sign1 (ES256, detached payload)
/// over ReaderAuthenticationBytes, x5chain in the unprotected header (one
/// bstr for one certificate, else an array). Returns it encoded.
pub fn sign_reader_auth(
    key: &ReaderAuthKey<'_>,
    transcript: &SessionTranscriptBytes,
    items_request_bytes: &[u8],
) -> Result<Vec<u8>, MdocError> {
    let x5chain = match key.chain {
        [] => {
            return Err(MdocError::Invalid(
                "reader authentication needs a certificate",
            ));
        }
        [one] => Value::Bytes(one.clone()),
        many if many.len() <= MAX_READER_CHAIN => {
            Value::Array(many.iter().cloned().map(Value::Bytes).collect())
        }
        _ => return Err(MdocError::LimitExceeded("reader x5chain")),
    };
    let leaf = CertView::parse(&key.chain[0])
        .map_err(|_| MdocError::Invalid("reader certificate is not DER X.509"))?;
    if leaf.spki != key.signer.public_key_spki() {
        return Err(MdocError::Invalid(
            "the reader certificate is not for the reader's key",
        ));
    }
    let unprotected = Value::Map(vec![(Value::from(COSE_HEADER_X5CHAIN), x5chain)]);
    let payload = reader_authentication_bytes(transcript, items_request_bytes)?;
    CoseSign1::sign_detached(key.signer, unprotected, &payload)?.encode()
}

/// Who the reader is, from its verified certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderIdentity {
    /// Subject commonName (for Shōmei readers: the relying party's
    /// registered name).
    pub common_name: Option<String>,
    /// Subject organizationName.
    pub organization: Option<String>,
    /// The reader certificate (DER).
    pub certificate: Vec<u8>,
}

impl ReaderIdentity {
    /// The name to show the holder: CN, else O, else "(unnamed reader)".
    pub fn display_name(&self) -> &str {
        self.common_name
            .as_deref()
            .or(self.organization.as_deref())
            .unwrap_or("(unnamed reader)")
    }
}

/// The reader CA certificates a holder trusts (e.g. the authority's
/// `/ca/reader-ca.pem`). Empty: every signed request is refused as
/// [`MdocError::UntrustedReader`].
#[derive(Clone, Debug, Default)]
pub struct TrustedReaderCas {
    certs: Vec<Vec<u8>>,
}

impl TrustedReaderCas {
    /// From DER certificates (each must parse).
    pub fn new(certs: Vec<Vec<u8>>) -> Result<Self, MdocError> {
        for c in &certs {
            CertView::parse(c)
                .map_err(|_| MdocError::Invalid("reader CA certificate is not DER X.509"))?;
        }
        Ok(Self { certs })
    }

    /// Whether no CA is trusted.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Checks a DocRequest's readerAuth (see the module docs) and returns who
/// signed it.
pub fn authenticate_reader(
    reader_auth: &[u8],
    transcript: &SessionTranscriptBytes,
    items_request_bytes: &[u8],
    trust: &TrustedReaderCas,
    now: Timestamp,
) -> Result<ReaderIdentity, MdocError> {
    let sign1 = CoseSign1::parse(reader_auth)
        .map_err(|_| MdocError::ReaderAuthMalformed("readerAuth is not a COSE_Sign1"))?;
    let chain = sign1
        .x5chain()
        .map_err(|_| MdocError::ReaderAuthMalformed("x5chain"))?;
    if chain.len() > MAX_READER_CHAIN {
        return Err(MdocError::ReaderAuthMalformed("x5chain too long"));
    }
    let leaf_der = chain
        .first()
        .ok_or(MdocError::ReaderAuthMalformed("x5chain missing"))?;
    let leaf = CertView::parse(leaf_der)
        .map_err(|_| MdocError::ReaderAuthMalformed("reader certificate is not DER X.509"))?;
    let key = EcPublicKey::from_spki(&leaf.spki)
        .map_err(|_| MdocError::ReaderAuthMalformed("reader key: P-256 only"))?;
    let payload = reader_authentication_bytes(transcript, items_request_bytes)?;
    sign1.verify(&key, Some(&payload)).map_err(|e| match e {
        MdocError::BadSignature => MdocError::BadReaderSignature,
        MdocError::Unsupported(_) => MdocError::ReaderAuthMalformed("algorithm (ES256 only)"),
        _ => MdocError::ReaderAuthMalformed("COSE_Sign1"),
    })?;
    for ca_der in &trust.certs {
        let Ok(ca) = CertView::parse(ca_der) else {
            continue;
        };
        if leaf.verify_issued_by(&ca, "reader certificate").is_err() {
            continue;
        }
        check_valid_at(&ca, now).map_err(|_| MdocError::ReaderCertificateNotValid)?;
        check_valid_at(&leaf, now).map_err(|_| MdocError::ReaderCertificateNotValid)?;
        if !has_eku(&leaf, &MDL_READER_AUTH_EKU_DER) {
            return Err(MdocError::ReaderCertificateUsage);
        }
        let (common_name, organization) = subject_names(&leaf.subject);
        return Ok(ReaderIdentity {
            common_name,
            organization,
            certificate: leaf_der.clone(),
        });
    }
    Err(MdocError::UntrustedReader)
}

/// The subject's CN and O (first of each; UTF8String, PrintableString or
/// IA5String; anything else, or a value with control characters, is left
/// out).
fn subject_names(subject_der: &[u8]) -> (Option<String>, Option<String>) {
    use der::{Decode as _, Tagged as _};
    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";
    let Ok(name) = x509_cert::name::Name::from_der(subject_der) else {
        return (None, None);
    };
    let mut cn = None;
    let mut o = None;
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let oid = atv.oid.to_string();
            let slot = match oid.as_str() {
                CN => &mut cn,
                O => &mut o,
                _ => continue,
            };
            if slot.is_some() {
                continue;
            }
            let text = match atv.value.tag() {
                der::Tag::Utf8String | der::Tag::PrintableString | der::Tag::Ia5String => {
                    std::str::from_utf8(atv.value.value()).ok()
                }
                _ => None,
            };
            *slot = text
                .filter(|t| !t.is_empty() && t.len() <= 256 && !t.chars().any(char::is_control))
                .map(str::to_owned);
        }
    }
    (cn, o)
}
