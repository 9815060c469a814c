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
//! for the holder's consent decision.
//!
//! Revocation: the holder keeps its reader CA's CRL ([`ReaderCrl::verify`],
//! fetched at sync) and asks [`check_reader_revocation`]: a reader
//! certificate on the CRL is [`MdocError::ReaderCertificateRevoked`] (the
//! request is refused like any invalid readerAuth); no CRL, or one past
//! nextUpdate + [`READER_CRL_GRACE`], is
//! [`ReaderRevocationStatus::NotChecked`]: the reader is authenticated but
//! its revocation is unknown, and the caller withholds what only an
//! authenticated reader may get.

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

/// Largest reader CRL accepted (bytes).
pub const MAX_READER_CRL: usize = 1 << 20;

/// How long past its nextUpdate a reader CRL is still used (the phone may
/// not have synced for a while): 7 days.
pub const READER_CRL_GRACE: time::Duration = time::Duration::days(7);

/// A reader CA's CRL whose signature was checked under a trusted reader CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderCrl {
    issuer: Vec<u8>,
    this_update: Timestamp,
    next_update: Timestamp,
    revoked: std::collections::BTreeSet<Vec<u8>>,
}

impl ReaderCrl {
    /// Verifies a DER CRL: at most [`MAX_READER_CRL`] bytes, issued (name
    /// and signature) by one of `trust`'s CAs, with a nextUpdate. Refused
    /// as [`MdocError::Invalid`] (malformed) or [`MdocError::UntrustedReader`]
    /// (no trusted CA signed it).
    pub fn verify(der_bytes: &[u8], trust: &TrustedReaderCas) -> Result<Self, MdocError> {
        use der::{Decode as _, Encode as _};
        if der_bytes.len() > MAX_READER_CRL {
            return Err(MdocError::LimitExceeded("reader CRL size"));
        }
        let bad = |_| MdocError::Invalid("reader CRL is not a DER CRL");
        let crl = x509_cert::crl::CertificateList::from_der(der_bytes).map_err(bad)?;
        let tbs = &crl.tbs_cert_list;
        let tbs_der = tbs.to_der().map_err(bad)?;
        let issuer = tbs.issuer.to_der().map_err(bad)?;
        let signature = crl
            .signature
            .as_bytes()
            .ok_or(MdocError::Invalid("reader CRL signature has unused bits"))?;
        let signed_by_trusted = trust.certs.iter().any(|ca_der| {
            CertView::parse(ca_der).is_ok_and(|ca| {
                ca.subject == issuer
                    && shomei_pki::cms::verify_signature(
                        &ca.spki,
                        crl.signature_algorithm.oid,
                        &tbs_der,
                        signature,
                        "reader CRL",
                    )
                    .is_ok()
            })
        });
        if !signed_by_trusted {
            return Err(MdocError::UntrustedReader);
        }
        let time = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs())
                .ok()
                .and_then(|s| Timestamp::from_unix_timestamp(s).ok())
                .ok_or(MdocError::Invalid("reader CRL time out of range"))
        };
        let this_update = time(tbs.this_update)?;
        let next_update = time(
            tbs.next_update
                .ok_or(MdocError::Invalid("reader CRL without nextUpdate"))?,
        )?;
        let revoked = tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|e| e.serial_number.as_bytes().to_vec())
            .collect();
        Ok(Self {
            issuer,
            this_update,
            next_update,
            revoked,
        })
    }

    /// thisUpdate.
    pub fn this_update(&self) -> Timestamp {
        self.this_update
    }

    /// nextUpdate.
    pub fn next_update(&self) -> Timestamp {
        self.next_update
    }

    /// How many certificates it lists.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// What [`check_reader_revocation`] found out about an authenticated
/// reader that is not revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderRevocationStatus {
    /// Its CA's CRL is current and does not list it.
    Good,
    /// Revocation could not be checked (why, for the holder): no CRL of its
    /// CA, or the CRL is past nextUpdate + [`READER_CRL_GRACE`].
    NotChecked(&'static str),
}

/// Checks an authenticated reader's certificate against the CRLs of its
/// CA: listed is [`MdocError::ReaderCertificateRevoked`] (even on a stale
/// CRL: revocation is final); otherwise see [`ReaderRevocationStatus`].
pub fn check_reader_revocation(
    reader: &ReaderIdentity,
    crls: &[ReaderCrl],
    now: Timestamp,
) -> Result<ReaderRevocationStatus, MdocError> {
    use der::Decode as _;
    let cert = x509_cert::Certificate::from_der(&reader.certificate)
        .map_err(|_| MdocError::ReaderAuthMalformed("reader certificate is not DER X.509"))?;
    let issuer = der::Encode::to_der(&cert.tbs_certificate.issuer)
        .map_err(|_| MdocError::ReaderAuthMalformed("reader certificate issuer"))?;
    let serial = cert.tbs_certificate.serial_number.as_bytes();
    let mine: Vec<&ReaderCrl> = crls.iter().filter(|c| c.issuer == issuer).collect();
    if mine.iter().any(|c| c.revoked.contains(serial)) {
        return Err(MdocError::ReaderCertificateRevoked);
    }
    let Some(newest) = mine.iter().max_by_key(|c| c.next_update) else {
        return Ok(ReaderRevocationStatus::NotChecked(
            "no CRL of the reader CA (run `phone sync`)",
        ));
    };
    if now > newest.next_update + READER_CRL_GRACE {
        return Ok(ReaderRevocationStatus::NotChecked(
            "the reader CA's CRL is stale (past nextUpdate + 7 days; run `phone sync`)",
        ));
    }
    Ok(ReaderRevocationStatus::Good)
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
