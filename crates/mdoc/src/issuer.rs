//! Issuer-signed data (ISO/IEC 18013-5 §9.1.2): the items, their digests,
//! the MSO signed by a document signer (DS) under the IACA, and the reader's
//! checks of all of it.
//!
//! ```text
//! IssuerSigned = { "nameSpaces": { NameSpace => [+ IssuerSignedItemBytes] },
//!                  "issuerAuth": COSE_Sign1 }          ; payload = MobileSecurityObjectBytes
//! IssuerSignedItemBytes = #6.24(bstr .cbor { "digestID": uint, "random": bstr,
//!                                            "elementIdentifier": tstr, "elementValue": any })
//! ```
//!
//! Issuing ([`issue`]): each item gets ≥ 16 bytes (we use 32) from the
//! injected [`RandomSource`] and a random, unique 32-bit digestID (never
//! sequential: neither the count nor the order of elements leaks); the
//! digest is SHA-256 over the tag-24 encoding exactly as it is sent. The
//! MSO is signed ES256 through [`Signer`] (DER ECDSA turned into raw
//! `r ‖ s`); `alg` is protected, the DS certificate is `x5chain` (33) in the
//! unprotected header.
//!
//! Verifying ([`verify_issuer_signed`]) checks, each with its own error:
//! the DS certificate is issued by a trusted IACA
//! ([`MdocError::UntrustedIaca`]), both are valid at `now`
//! ([`MdocError::CertificateNotValid`]), the DS has the mdlDS EKU, the
//! COSE_Sign1 signature ([`MdocError::BadSignature`]), the MSO's docType
//! ([`MdocError::DocTypeMismatch`]), the validity window
//! ([`MdocError::NotYetValid`], [`MdocError::Expired`]), each disclosed
//! item's name space ([`MdocError::UnknownNamespace`]), digestID
//! ([`MdocError::UnknownDigestId`]) and digest ([`MdocError::DigestMismatch`]),
//! and the status ([`MdocError::Revoked`], [`MdocError::Suspended`]).
//! The result, [`VerifiedIssuerSigned`], is the only way to the elements and
//! the device key for the device-authentication step.
//!
//! Digests are computed over the received tag-24 item re-encoded with
//! shortest lengths (the inner bytes are kept exactly as received): an item
//! whose sender used a longer-than-needed bstr length fails as a digest
//! mismatch — closed, never open.

use std::collections::{BTreeMap, BTreeSet};

use ciborium::Value;
use coset::{AsCborValue, CoseSign1, CoseSign1Builder, HeaderBuilder};
use shomei_core::{RandomSource, SignatureAlgorithm, Signer, Timestamp};
use shomei_pki::cms::CertView;

use crate::error::MdocError;
use crate::mso::{
    DeviceKey, MobileSecurityObject, StatusRef, TAG_ENCODED_CBOR, ValidityInfo, as_map, decode,
    encode, text_key, uint_of, untag24, whole_seconds,
};
use crate::status::{HEADER_X5CHAIN, VerifiedStatusList};

/// Random bytes per item (18013-5 asks for at least 16).
pub const ITEM_RANDOM_LEN: usize = 32;
/// The shortest `random` we accept from other issuers.
pub const MIN_ITEM_RANDOM_LEN: usize = 16;

/// DER of the OID id-mdl-kp-mdlDS (1.0.18013.5.1.2), tag and length included.
const MDL_DS_EKU_DER: [u8; 9] = [0x06, 0x07, 0x28, 0x81, 0x8c, 0x5d, 0x05, 0x01, 0x02];

/// One IssuerSignedItem.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuerSignedItem {
    /// `digestID`.
    pub digest_id: u64,
    /// `random` (salt).
    pub random: Vec<u8>,
    /// `elementIdentifier`.
    pub element_identifier: String,
    /// `elementValue`.
    pub element_value: Value,
}

impl IssuerSignedItem {
    fn to_value(&self) -> Value {
        Value::Map(vec![
            (Value::from("digestID"), Value::from(self.digest_id)),
            (Value::from("random"), Value::Bytes(self.random.clone())),
            (
                Value::from("elementIdentifier"),
                Value::from(self.element_identifier.as_str()),
            ),
            (Value::from("elementValue"), self.element_value.clone()),
        ])
    }

    fn from_value(v: &Value) -> Result<Self, MdocError> {
        let m = as_map(v, "IssuerSignedItem")?;
        let digest_id = text_key(m, "digestID")
            .and_then(uint_of)
            .ok_or(MdocError::MalformedCbor("IssuerSignedItem: digestID"))?;
        let Some(Value::Bytes(random)) = text_key(m, "random") else {
            return Err(MdocError::MalformedCbor("IssuerSignedItem: random"));
        };
        let Some(Value::Text(id)) = text_key(m, "elementIdentifier") else {
            return Err(MdocError::MalformedCbor(
                "IssuerSignedItem: elementIdentifier",
            ));
        };
        let value = text_key(m, "elementValue")
            .ok_or(MdocError::MalformedCbor("IssuerSignedItem: elementValue"))?;
        Ok(Self {
            digest_id,
            random: random.clone(),
            element_identifier: id.clone(),
            element_value: value.clone(),
        })
    }
}

/// IssuerSignedItemBytes: the item and its tag-24 encoding as sent.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuerSignedItemBytes {
    item: IssuerSignedItem,
    tagged: Vec<u8>,
}

impl IssuerSignedItemBytes {
    /// Encodes an item as `#6.24(bstr .cbor item)`.
    pub fn new(item: IssuerSignedItem) -> Result<Self, MdocError> {
        let inner = encode(&item.to_value())?;
        let tagged = encode(&Value::Tag(TAG_ENCODED_CBOR, Box::new(Value::Bytes(inner))))?;
        Ok(Self { item, tagged })
    }

    /// The item.
    pub fn item(&self) -> &IssuerSignedItem {
        &self.item
    }

    /// The tag-24 encoding (what the digest covers).
    pub fn tagged_bytes(&self) -> &[u8] {
        &self.tagged
    }

    /// SHA-256 over the tag-24 encoding.
    pub fn digest(&self) -> Vec<u8> {
        sha256(&self.tagged)
    }

    /// The tag-24 value, for embedding.
    pub fn to_value(&self) -> Result<Value, MdocError> {
        decode(&self.tagged)
    }

    /// From a received `#6.24(bstr)` value (inner bytes kept as received).
    pub fn from_value(v: &Value) -> Result<Self, MdocError> {
        let inner = untag24(v)?;
        let item = IssuerSignedItem::from_value(&decode(&inner)?)?;
        let tagged = encode(&Value::Tag(TAG_ENCODED_CBOR, Box::new(Value::Bytes(inner))))?;
        Ok(Self { item, tagged })
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// IssuerSigned: the items per name space and the signed MSO.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuerSigned {
    /// `nameSpaces`.
    pub name_spaces: BTreeMap<String, Vec<IssuerSignedItemBytes>>,
    /// `issuerAuth`.
    pub issuer_auth: CoseSign1,
}

impl IssuerSigned {
    /// The CBOR value.
    pub fn to_value(&self) -> Result<Value, MdocError> {
        let mut ns = Vec::new();
        for (name, items) in &self.name_spaces {
            let items = items
                .iter()
                .map(IssuerSignedItemBytes::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            ns.push((Value::from(name.as_str()), Value::Array(items)));
        }
        let auth = self
            .issuer_auth
            .clone()
            .to_cbor_value()
            .map_err(|_| MdocError::MalformedCbor("cannot encode issuerAuth"))?;
        Ok(Value::Map(vec![
            (Value::from("nameSpaces"), Value::Map(ns)),
            (Value::from("issuerAuth"), auth),
        ]))
    }

    /// Encoded CBOR.
    pub fn to_cbor(&self) -> Result<Vec<u8>, MdocError> {
        encode(&self.to_value()?)
    }

    /// From encoded CBOR.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, MdocError> {
        Self::from_value(&decode(bytes)?)
    }

    /// From the CBOR value (e.g. a Document's `issuerSigned` in a
    /// DeviceResponse). `nameSpaces` may be absent (nothing disclosed).
    pub fn from_value(v: &Value) -> Result<Self, MdocError> {
        let m = as_map(v, "IssuerSigned")?;
        let mut name_spaces = BTreeMap::new();
        if let Some(ns) = text_key(m, "nameSpaces") {
            for (name, items) in as_map(ns, "nameSpaces")? {
                let (Value::Text(name), Value::Array(items)) = (name, items) else {
                    return Err(MdocError::MalformedCbor("nameSpaces: text => array"));
                };
                let items = items
                    .iter()
                    .map(IssuerSignedItemBytes::from_value)
                    .collect::<Result<Vec<_>, _>>()?;
                if name_spaces.insert(name.clone(), items).is_some() {
                    return Err(MdocError::MalformedCbor("nameSpaces: duplicate name space"));
                }
            }
        }
        let auth = text_key(m, "issuerAuth").ok_or(MdocError::MalformedCbor("issuerAuth"))?;
        let issuer_auth = CoseSign1::from_cbor_value(auth.clone())
            .map_err(|_| MdocError::MalformedCbor("issuerAuth: not COSE_Sign1"))?;
        Ok(Self {
            name_spaces,
            issuer_auth,
        })
    }

    /// Selective disclosure (the holder's side): the same issuerAuth with
    /// only the items `keep(name space, element)` accepts.
    pub fn disclose(&self, keep: impl Fn(&str, &str) -> bool) -> Self {
        let name_spaces = self
            .name_spaces
            .iter()
            .filter_map(|(ns, items)| {
                let kept: Vec<_> = items
                    .iter()
                    .filter(|i| keep(ns, &i.item.element_identifier))
                    .cloned()
                    .collect();
                (!kept.is_empty()).then(|| (ns.clone(), kept))
            })
            .collect();
        Self {
            name_spaces,
            issuer_auth: self.issuer_auth.clone(),
        }
    }
}

/// A document signer: its key (behind [`Signer`], P-256) and certificate.
pub struct DocumentSigner<'a> {
    signer: &'a dyn Signer,
    cert_der: Vec<u8>,
    not_after: Timestamp,
}

impl<'a> DocumentSigner<'a> {
    /// Pairs a P-256 signer with its DS certificate (the key must match).
    pub fn new(signer: &'a dyn Signer, cert_der: Vec<u8>) -> Result<Self, MdocError> {
        if signer.algorithm() != SignatureAlgorithm::EcdsaP256Sha256 {
            return Err(MdocError::Unsupported(
                "document signer: ES256 (P-256) only",
            ));
        }
        let view = parse_cert(&cert_der)?;
        if view.spki != signer.public_key_spki() {
            return Err(MdocError::Invalid(
                "document signer key does not match its certificate",
            ));
        }
        let (_, not_after) = cert_window(&view)?;
        Ok(Self {
            signer,
            cert_der,
            not_after,
        })
    }

    /// The DS certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
}

/// What a document says, before it is signed: name spaces in order, each
/// with its elements.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentContent {
    /// `docType`.
    pub doc_type: String,
    /// Name space → (element identifier, value), in order.
    pub name_spaces: Vec<(String, Vec<(String, Value)>)>,
}

/// Issues IssuerSigned for `content`, bound to `device_key`, valid for
/// `validity` (made whole seconds; `validUntil` may not pass the DS
/// certificate's notAfter), with an optional `status` reference.
pub fn issue(
    content: &DocumentContent,
    device_key: &DeviceKey,
    validity: ValidityInfo,
    status: Option<StatusRef>,
    ds: &DocumentSigner<'_>,
    rng: &mut dyn RandomSource,
) -> Result<IssuerSigned, MdocError> {
    let validity = ValidityInfo {
        signed: whole_seconds(validity.signed),
        valid_from: whole_seconds(validity.valid_from),
        valid_until: whole_seconds(validity.valid_until),
        expected_update: validity.expected_update.map(whole_seconds),
    };
    if validity.valid_until < validity.valid_from || validity.valid_from < validity.signed {
        return Err(MdocError::Invalid(
            "validity: signed ≤ validFrom ≤ validUntil",
        ));
    }
    if validity.valid_until > ds.not_after {
        return Err(MdocError::Invalid(
            "validity: validUntil after the document signer's notAfter",
        ));
    }
    let mut used_ids = BTreeSet::new();
    let mut name_spaces = BTreeMap::new();
    let mut value_digests = BTreeMap::new();
    for (ns, elements) in &content.name_spaces {
        if ns.is_empty() || elements.is_empty() {
            return Err(MdocError::Invalid("empty name space"));
        }
        let mut names = BTreeSet::new();
        let mut items = Vec::with_capacity(elements.len());
        let mut digests = BTreeMap::new();
        for (id, value) in elements {
            if !names.insert(id.as_str()) {
                return Err(MdocError::Invalid("duplicate element identifier"));
            }
            let digest_id = loop {
                let mut b = [0u8; 4];
                rng.fill(&mut b)?;
                let candidate = u64::from(u32::from_be_bytes(b));
                if used_ids.insert(candidate) {
                    break candidate;
                }
            };
            let mut random = vec![0u8; ITEM_RANDOM_LEN];
            rng.fill(&mut random)?;
            let item = IssuerSignedItemBytes::new(IssuerSignedItem {
                digest_id,
                random,
                element_identifier: id.clone(),
                element_value: value.clone(),
            })?;
            digests.insert(digest_id, item.digest());
            items.push(item);
        }
        if name_spaces.insert(ns.clone(), items).is_some() {
            return Err(MdocError::Invalid("duplicate name space"));
        }
        value_digests.insert(ns.clone(), digests);
    }
    let mso = MobileSecurityObject {
        doc_type: content.doc_type.clone(),
        value_digests,
        device_key: device_key.clone(),
        validity,
        status,
    };
    let unsigned = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(coset::iana::Algorithm::ES256)
                .build(),
        )
        .unprotected(
            HeaderBuilder::new()
                .value(HEADER_X5CHAIN, Value::Bytes(ds.cert_der.clone()))
                .build(),
        )
        .payload(mso.to_tagged_bytes()?)
        .build();
    Ok(IssuerSigned {
        name_spaces,
        issuer_auth: es256_sign(unsigned, ds.signer)?,
    })
}

// ---- COSE ES256 through a Signer ----

/// Signs a COSE_Sign1 (external AAD empty) with a P-256 [`Signer`]: its DER
/// ECDSA signature becomes the raw 64-byte `r ‖ s` COSE wants.
pub(crate) fn es256_sign(unsigned: CoseSign1, signer: &dyn Signer) -> Result<CoseSign1, MdocError> {
    if signer.algorithm() != SignatureAlgorithm::EcdsaP256Sha256 {
        return Err(MdocError::Unsupported("ES256 needs a P-256 signer"));
    }
    let mut sign1 = unsigned;
    let der = signer.sign(&sign1.tbs_data(b""))?;
    sign1.signature = ecdsa_fixed(&der)?.to_vec();
    Ok(sign1)
}

/// A signer's DER ECDSA signature in the fixed `r ‖ s` form COSE carries.
pub(crate) fn ecdsa_fixed(der: &[u8]) -> Result<[u8; 64], MdocError> {
    shomei_pki::ecdsa_p256_der_to_fixed(der)
        .map_err(|_| MdocError::Invalid("signer returned a malformed ECDSA signature"))
}

/// Verifies an ES256 COSE_Sign1 (protected `alg` ES256, external AAD
/// empty) with the P-256 key of a certificate.
pub(crate) fn es256_verify(sign1: &CoseSign1, cert_der: &[u8]) -> Result<(), MdocError> {
    let es256 = coset::RegisteredLabelWithPrivate::Assigned(coset::iana::Algorithm::ES256);
    if sign1.protected.header.alg.as_ref() != Some(&es256) {
        return Err(MdocError::Unsupported(
            "COSE alg: ES256 in the protected header only",
        ));
    }
    let view = parse_cert(cert_der)?;
    let key = DeviceKey::from_spki(&view.spki)
        .map_err(|_| MdocError::Unsupported("signer certificate: P-256 key only"))?;
    sign1.verify_signature(b"", |sig, tbs| {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            key.uncompressed(),
        )
        .verify(tbs, sig)
        .map_err(|_| MdocError::BadSignature)
    })
}

/// The certificates in `x5chain` (label 33), unprotected or protected:
/// one bstr, or an array of bstr (end entity first).
pub(crate) fn x5chain_of(sign1: &CoseSign1) -> Result<Vec<Vec<u8>>, MdocError> {
    let find = |h: &coset::Header| {
        h.rest
            .iter()
            .find(|(l, _)| *l == coset::Label::Int(HEADER_X5CHAIN))
            .map(|(_, v)| v.clone())
    };
    let v = find(&sign1.unprotected)
        .or_else(|| find(&sign1.protected.header))
        .ok_or(MdocError::MalformedCbor("x5chain missing"))?;
    match v {
        Value::Bytes(b) => Ok(vec![b]),
        Value::Array(a) if !a.is_empty() => a
            .into_iter()
            .map(|c| match c {
                Value::Bytes(b) => Ok(b),
                _ => Err(MdocError::MalformedCbor("x5chain: bstr expected")),
            })
            .collect(),
        _ => Err(MdocError::MalformedCbor("x5chain: bstr or array")),
    }
}

// ---- trust ----

fn parse_cert(der: &[u8]) -> Result<CertView<'_>, MdocError> {
    CertView::parse(der).map_err(|_| MdocError::Invalid("certificate is not DER X.509"))
}

fn cert_window(view: &CertView<'_>) -> Result<(Timestamp, Timestamp), MdocError> {
    let conv = |t: std::time::Duration| {
        i64::try_from(t.as_secs())
            .ok()
            .and_then(|s| Timestamp::from_unix_timestamp(s).ok())
            .ok_or(MdocError::Invalid("certificate date out of range"))
    };
    Ok((
        conv(view.not_before.to_unix_duration())?,
        conv(view.not_after.to_unix_duration())?,
    ))
}

pub(crate) fn check_valid_at(view: &CertView<'_>, now: Timestamp) -> Result<(), MdocError> {
    let (nb, na) = cert_window(view)?;
    if now < nb || now > na {
        return Err(MdocError::CertificateNotValid);
    }
    Ok(())
}

/// Whether the certificate's extendedKeyUsage lists `oid_der` (DER TLV).
pub(crate) fn has_eku(view: &CertView<'_>, oid_der: &[u8]) -> bool {
    view.extensions
        .iter()
        .filter(|e| e.extn_id.to_string() == "2.5.29.37")
        .any(|e| {
            let v = e.extn_value.as_bytes();
            // SEQUENCE OF OBJECT IDENTIFIER (short lengths suffice here).
            let Some(([0x30, len], mut rest)) = v.split_first_chunk::<2>() else {
                return false;
            };
            if usize::from(*len) != rest.len() {
                return false;
            }
            while let [0x06, l, tail @ ..] = rest {
                let end = 2 + usize::from(*l);
                if tail.len() < usize::from(*l) {
                    return false;
                }
                if rest.get(..end) == Some(oid_der) {
                    return true;
                }
                rest = &tail[usize::from(*l)..];
            }
            false
        })
}

/// The IACA certificates a reader trusts (e.g. the authority's
/// `/ca/iaca.pem`, or a VICAL's entries).
#[derive(Clone, Debug, Default)]
pub struct TrustedIacas {
    certs: Vec<Vec<u8>>,
}

impl TrustedIacas {
    /// From DER certificates (each must parse).
    pub fn new(certs: Vec<Vec<u8>>) -> Result<Self, MdocError> {
        for c in &certs {
            parse_cert(c)?;
        }
        Ok(Self { certs })
    }

    /// The chain's first certificate must be issued (name and signature) by
    /// one of the IACAs; both must be valid at `now`; with `eku` given, the
    /// first certificate must list it. Returns (IACA DER, signer DER).
    pub(crate) fn check_chain(
        &self,
        chain: &[Vec<u8>],
        now: Timestamp,
        eku: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Vec<u8>), MdocError> {
        let leaf_der = chain
            .first()
            .ok_or(MdocError::MalformedCbor("x5chain empty"))?;
        let leaf = parse_cert(leaf_der)?;
        for iaca_der in &self.certs {
            let iaca = parse_cert(iaca_der)?;
            if leaf.verify_issued_by(&iaca, "document signer").is_ok() {
                check_valid_at(&iaca, now)?;
                check_valid_at(&leaf, now)?;
                if let Some(eku) = eku
                    && !has_eku(&leaf, eku)
                {
                    return Err(MdocError::Invalid(
                        "document signer certificate lacks the mdlDS extended key usage",
                    ));
                }
                return Ok((iaca_der.clone(), leaf_der.clone()));
            }
        }
        Err(MdocError::UntrustedIaca)
    }
}

/// Whether and how to check the MSO's status.
#[derive(Clone, Copy, Debug)]
pub enum StatusCheck<'a> {
    /// Do not check (reported as [`StatusOutcome::NotChecked`]).
    NotChecked,
    /// Check against this verified list (fetched from the MSO's `uri`).
    List(&'a VerifiedStatusList),
}

/// What the status check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The list says VALID.
    Valid,
    /// The caller did not check.
    NotChecked,
    /// The MSO carries no status reference (nothing to check).
    NoStatusReference,
}

/// Issuer-signed data that passed every check; the only way to its
/// elements and device key.
#[derive(Clone, Debug)]
pub struct VerifiedIssuerSigned {
    mso: MobileSecurityObject,
    elements: BTreeMap<String, BTreeMap<String, Value>>,
    ds_cert_der: Vec<u8>,
    status: StatusOutcome,
}

impl VerifiedIssuerSigned {
    /// The docType.
    pub fn doc_type(&self) -> &str {
        &self.mso.doc_type
    }
    /// The device key, for verifying DeviceAuth.
    pub fn device_key(&self) -> &DeviceKey {
        &self.mso.device_key
    }
    /// The validity window.
    pub fn validity(&self) -> &ValidityInfo {
        &self.mso.validity
    }
    /// The device key as [`crate::session::EcPublicKey`], the type
    /// `device_auth` verifies DeviceSignature with.
    pub fn device_public_key(&self) -> Result<crate::session::EcPublicKey, MdocError> {
        Ok(self.mso.device_key.clone())
    }
    /// The verified MSO.
    pub fn mso(&self) -> &MobileSecurityObject {
        &self.mso
    }
    /// Disclosed elements: name space → element identifier → value.
    pub fn elements(&self) -> &BTreeMap<String, BTreeMap<String, Value>> {
        &self.elements
    }
    /// One disclosed element.
    pub fn element(&self, namespace: &str, element: &str) -> Option<&Value> {
        self.elements.get(namespace)?.get(element)
    }
    /// The document signer's certificate (DER).
    pub fn ds_cert_der(&self) -> &[u8] {
        &self.ds_cert_der
    }
    /// What the status check found.
    pub fn status(&self) -> StatusOutcome {
        self.status
    }
}

enum Anchor<'a> {
    Iacas(&'a TrustedIacas),
    PinnedDs(&'a [u8]),
}

/// Verifies a document's IssuerSigned for a reader (see the module docs
/// for every check). `doc_type` is the Document's `docType`.
pub fn verify_issuer_signed(
    doc_type: &str,
    issuer_signed: &IssuerSigned,
    trust: &TrustedIacas,
    now: Timestamp,
    status: StatusCheck<'_>,
) -> Result<VerifiedIssuerSigned, MdocError> {
    verify_inner(doc_type, issuer_signed, Anchor::Iacas(trust), now, status)
}

/// As [`verify_issuer_signed`], but with a pinned document signer
/// certificate instead of an IACA (the x5chain's first certificate must be
/// exactly `ds_cert_der`; its validity at `now` and mdlDS EKU are still
/// checked). For test vectors whose IACA is not published (ISO 18013-5
/// Annex D) and closed deployments; a status list can then not be tied
/// to the IACA, so only its URI is matched.
pub fn verify_issuer_signed_pinned(
    doc_type: &str,
    issuer_signed: &IssuerSigned,
    ds_cert_der: &[u8],
    now: Timestamp,
    status: StatusCheck<'_>,
) -> Result<VerifiedIssuerSigned, MdocError> {
    verify_inner(
        doc_type,
        issuer_signed,
        Anchor::PinnedDs(ds_cert_der),
        now,
        status,
    )
}

fn verify_inner(
    doc_type: &str,
    issuer_signed: &IssuerSigned,
    anchor: Anchor<'_>,
    now: Timestamp,
    status: StatusCheck<'_>,
) -> Result<VerifiedIssuerSigned, MdocError> {
    let auth = &issuer_signed.issuer_auth;
    // 1. The DS certificate and where it leads.
    let chain = x5chain_of(auth)?;
    let (iaca_der, ds_der) = match anchor {
        Anchor::Iacas(t) => {
            let (i, d) = t.check_chain(&chain, now, Some(&MDL_DS_EKU_DER))?;
            (Some(i), d)
        }
        Anchor::PinnedDs(pinned) => {
            if chain.first().map(Vec::as_slice) != Some(pinned) {
                return Err(MdocError::UntrustedIaca);
            }
            let view = parse_cert(pinned)?;
            check_valid_at(&view, now)?;
            if !has_eku(&view, &MDL_DS_EKU_DER) {
                return Err(MdocError::Invalid(
                    "document signer certificate lacks the mdlDS extended key usage",
                ));
            }
            (None, pinned.to_vec())
        }
    };
    // 2. The signature over MobileSecurityObjectBytes.
    es256_verify(auth, &ds_der)?;
    let payload = auth
        .payload
        .as_deref()
        .ok_or(MdocError::MalformedCbor("issuerAuth: detached payload"))?;
    let mso = MobileSecurityObject::from_tagged_bytes(payload)?;
    // 3. docType and validity.
    if mso.doc_type != doc_type {
        return Err(MdocError::DocTypeMismatch);
    }
    mso.validity.check(now)?;
    // 4. Every disclosed item against valueDigests.
    let mut elements: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (ns, items) in &issuer_signed.name_spaces {
        let digests = mso
            .value_digests
            .get(ns)
            .ok_or_else(|| MdocError::UnknownNamespace(ns.clone()))?;
        let out = elements.entry(ns.clone()).or_default();
        let mut seen_ids = BTreeSet::new();
        for item in items {
            let i = item.item();
            let id = &i.element_identifier;
            let expected = digests
                .get(&i.digest_id)
                .ok_or_else(|| MdocError::UnknownDigestId {
                    namespace: ns.clone(),
                    element: id.clone(),
                })?;
            if !constant_time_eq(expected, &item.digest()) {
                return Err(MdocError::DigestMismatch {
                    namespace: ns.clone(),
                    element: id.clone(),
                });
            }
            if i.random.len() < MIN_ITEM_RANDOM_LEN {
                return Err(MdocError::Invalid(
                    "IssuerSignedItem: random shorter than 16 bytes",
                ));
            }
            if !seen_ids.insert(i.digest_id)
                || out.insert(id.clone(), i.element_value.clone()).is_some()
            {
                return Err(MdocError::Invalid("element disclosed twice"));
            }
        }
    }
    // 5. Status.
    let status = match (status, &mso.status) {
        (StatusCheck::NotChecked, _) => StatusOutcome::NotChecked,
        (StatusCheck::List(_), None) => StatusOutcome::NoStatusReference,
        (StatusCheck::List(list), Some(r)) => {
            if list.uri() != r.uri {
                return Err(MdocError::StatusListMismatch);
            }
            if let Some(iaca) = &iaca_der
                && list.iaca_der() != iaca.as_slice()
            {
                // 18013-5 2nd ed. 12.3.6: the list's signer is certified by
                // the IACA that certified the MSO's DS.
                return Err(MdocError::StatusListMismatch);
            }
            list.check(r.idx)?;
            StatusOutcome::Valid
        }
    };
    Ok(VerifiedIssuerSigned {
        mso,
        elements,
        ds_cert_der: ds_der,
        status,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use shomei_core::{RandomSource, Serial, SignError};
    use shomei_pki::EcdsaP256Signer;
    use shomei_pki::profile::{Iaca, PublicationPoints};

    use super::TrustedIacas;

    /// An IACA, a trust store holding it, and a document signer.
    pub(crate) struct Pki {
        pub(crate) iaca: Iaca,
        pub(crate) trust: TrustedIacas,
        pub(crate) ds_key: EcdsaP256Signer,
        pub(crate) ds_cert: Vec<u8>,
    }

    impl Pki {
        pub(crate) fn new(now: shomei_core::Timestamp) -> Self {
            let points = PublicationPoints::new("http://127.0.0.1:8700");
            let iaca = Iaca::create(
                "Shomei Test",
                &points,
                Arc::new(EcdsaP256Signer::generate().unwrap()),
                &Serial::from_be_bytes(&[0x41, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap(),
                now,
            )
            .unwrap();
            let ds_key = EcdsaP256Signer::generate().unwrap();
            let ds_cert = iaca
                .issue_document_signer(
                    &points,
                    &ds_key,
                    &Serial::from_be_bytes(&[0x42, 1, 1, 1, 1, 1, 1, 1, 1]).unwrap(),
                    now,
                    365,
                )
                .unwrap();
            let trust = TrustedIacas::new(vec![iaca.cert_der().to_vec()]).unwrap();
            Self {
                iaca,
                trust,
                ds_key,
                ds_cert,
            }
        }
    }

    /// A deterministic RNG (xorshift) for tests.
    pub(crate) struct TestRng(pub(crate) u64);

    impl RandomSource for TestRng {
        fn fill(&mut self, buf: &mut [u8]) -> Result<(), SignError> {
            for b in buf {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                *b = (self.0 >> 24) as u8;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::test_support::{Pki, TestRng};
    use super::*;
    use crate::status::{
        STATUS_INVALID, STATUS_SUSPENDED, StatusList, StatusListLimits, StatusListTokenClaims,
        sign_status_list_token, verify_status_list_token,
    };

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);
    const DOC: &str = "org.example.test";
    const URI: &str = "http://127.0.0.1:8700/status/mdoc/1";

    fn device_key() -> DeviceKey {
        let k = shomei_pki::EcdsaP256Signer::generate().unwrap();
        DeviceKey::from_spki(k.public_key_spki()).unwrap()
    }

    fn content() -> DocumentContent {
        DocumentContent {
            doc_type: DOC.into(),
            name_spaces: vec![
                (
                    "ns.a".into(),
                    vec![
                        ("name".into(), Value::from("山田 太郎")),
                        ("age_over_18".into(), Value::Bool(true)),
                        ("age_over_65".into(), Value::Bool(false)),
                    ],
                ),
                ("ns.b".into(), vec![("x".into(), Value::from(5))]),
            ],
        }
    }

    fn issued(pki: &Pki, idx: u64) -> IssuerSigned {
        let ds = DocumentSigner::new(&pki.ds_key, pki.ds_cert.clone()).unwrap();
        issue(
            &content(),
            &device_key(),
            ValidityInfo::starting(NOW, time::Duration::days(30)),
            Some(StatusRef {
                idx,
                uri: URI.into(),
            }),
            &ds,
            &mut TestRng(0x1234_5678_9abc_def1),
        )
        .unwrap()
    }

    fn verify(
        pki: &Pki,
        is: &IssuerSigned,
        now: Timestamp,
    ) -> Result<VerifiedIssuerSigned, MdocError> {
        verify_issuer_signed(DOC, is, &pki.trust, now, StatusCheck::NotChecked)
    }

    /// Replaces issuerAuth's payload with `mso` and re-signs with `key`.
    fn resign(is: &IssuerSigned, mso: &MobileSecurityObject, key: &dyn Signer) -> IssuerSigned {
        let mut a = is.issuer_auth.clone();
        a.payload = Some(mso.to_tagged_bytes().unwrap());
        let mut out = is.clone();
        out.issuer_auth = es256_sign(a, key).unwrap();
        out
    }

    fn mso_of(is: &IssuerSigned) -> MobileSecurityObject {
        MobileSecurityObject::from_tagged_bytes(is.issuer_auth.payload.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn issue_then_verify_round_trips_through_cbor() {
        let pki = Pki::new(NOW);
        let is = issued(&pki, 3);
        let bytes = is.to_cbor().unwrap();
        let back = IssuerSigned::from_cbor(&bytes).unwrap();
        assert_eq!(back.name_spaces, is.name_spaces);
        assert_eq!(back.to_cbor().unwrap(), bytes);
        let v = verify(&pki, &back, NOW + time::Duration::days(1)).unwrap();
        assert_eq!(v.doc_type(), DOC);
        assert_eq!(v.element("ns.a", "name"), Some(&Value::from("山田 太郎")));
        assert_eq!(v.element("ns.b", "x"), Some(&Value::from(5)));
        assert_eq!(v.status(), StatusOutcome::NotChecked);
        assert_eq!(v.ds_cert_der(), pki.ds_cert.as_slice());
        assert_eq!(
            v.device_public_key().unwrap().uncompressed(),
            v.device_key().uncompressed()
        );
        assert_eq!(
            v.mso().status,
            Some(StatusRef {
                idx: 3,
                uri: URI.into()
            })
        );
        // The signature is raw r‖s and x5chain is unprotected.
        assert_eq!(is.issuer_auth.signature.len(), 64);
        assert_eq!(
            x5chain_of(&is.issuer_auth).unwrap(),
            vec![pki.ds_cert.clone()]
        );
        assert!(is.issuer_auth.protected.header.rest.is_empty());
    }

    #[test]
    fn digest_ids_are_random_unique_and_salts_long() {
        let pki = Pki::new(NOW);
        let is = issued(&pki, 0);
        let ids: Vec<u64> = is
            .name_spaces
            .values()
            .flatten()
            .map(|i| i.item().digest_id)
            .collect();
        assert_eq!(ids.len(), 4);
        let set: BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), 4);
        assert!(ids.iter().any(|&i| i > 1000), "not sequential: {ids:?}");
        for i in is.name_spaces.values().flatten() {
            assert_eq!(i.item().random.len(), ITEM_RANDOM_LEN);
            // The digest covers the tag-24 bytes as sent.
            assert_eq!(&i.tagged_bytes()[..2], &[0xd8, 0x18]);
            let mso = mso_of(&is);
            assert!(
                mso.value_digests
                    .values()
                    .any(|d| d.get(&i.item().digest_id) == Some(&i.digest()))
            );
        }
    }

    #[test]
    fn selective_disclosure_verifies_only_what_is_shown() {
        let pki = Pki::new(NOW);
        let is = issued(&pki, 0);
        let shown = is.disclose(|ns, el| ns == "ns.a" && el == "age_over_18");
        let v = verify(
            &pki,
            &IssuerSigned::from_cbor(&shown.to_cbor().unwrap()).unwrap(),
            NOW,
        )
        .unwrap();
        assert_eq!(v.elements().len(), 1);
        assert_eq!(v.element("ns.a", "age_over_18"), Some(&Value::Bool(true)));
        assert_eq!(v.element("ns.a", "name"), None);
    }

    #[test]
    fn a_changed_element_value_is_a_digest_mismatch() {
        let pki = Pki::new(NOW);
        let mut is = issued(&pki, 0);
        let items = is.name_spaces.get_mut("ns.a").unwrap();
        let mut item = items[2].item().clone();
        item.element_value = Value::Bool(true); // age_over_65: false → true
        items[2] = IssuerSignedItemBytes::new(item).unwrap();
        assert_eq!(
            verify(&pki, &is, NOW).unwrap_err(),
            MdocError::DigestMismatch {
                namespace: "ns.a".into(),
                element: "age_over_65".into()
            }
        );
    }

    #[test]
    fn a_changed_digest_in_the_mso_breaks_the_signature() {
        let pki = Pki::new(NOW);
        let mut is = issued(&pki, 0);
        let mut mso = mso_of(&is);
        for d in mso.value_digests.get_mut("ns.a").unwrap().values_mut() {
            d[0] ^= 1;
        }
        is.issuer_auth.payload = Some(mso.to_tagged_bytes().unwrap());
        assert_eq!(verify(&pki, &is, NOW).unwrap_err(), MdocError::BadSignature);
        // Re-signed by the real DS (an issuer bug): the digest check still catches it.
        let resigned = resign(&is, &mso, &pki.ds_key);
        assert!(matches!(
            verify(&pki, &resigned, NOW).unwrap_err(),
            MdocError::DigestMismatch { .. }
        ));
    }

    #[test]
    fn a_tampered_signature_or_payload_byte_is_refused() {
        let pki = Pki::new(NOW);
        let mut is = issued(&pki, 0);
        is.issuer_auth.signature[10] ^= 0x40;
        assert_eq!(verify(&pki, &is, NOW).unwrap_err(), MdocError::BadSignature);
        let mut is = issued(&pki, 0);
        let p = is.issuer_auth.payload.as_mut().unwrap();
        let n = p.len();
        p[n - 3] ^= 1;
        assert_eq!(verify(&pki, &is, NOW).unwrap_err(), MdocError::BadSignature);
    }

    #[test]
    fn a_ds_from_another_iaca_or_a_self_made_one_is_untrusted() {
        let pki = Pki::new(NOW);
        let other = Pki::new(NOW);
        // Signed by another authority's DS.
        assert_eq!(
            verify(&pki, &issued(&other, 0), NOW).unwrap_err(),
            MdocError::UntrustedIaca
        );
        // Our MSO, but x5chain swapped for a DS of another IACA (whose key did not sign).
        let mut is = issued(&pki, 0);
        is.issuer_auth.unprotected.rest = vec![(
            coset::Label::Int(HEADER_X5CHAIN),
            Value::Bytes(other.ds_cert.clone()),
        )];
        assert_eq!(
            verify(&pki, &is, NOW).unwrap_err(),
            MdocError::UntrustedIaca
        );
        // Trusting both: the swapped chain now fails on the signature.
        let both = TrustedIacas::new(vec![
            pki.iaca.cert_der().to_vec(),
            other.iaca.cert_der().to_vec(),
        ])
        .unwrap();
        assert_eq!(
            verify_issuer_signed(DOC, &is, &both, NOW, StatusCheck::NotChecked).unwrap_err(),
            MdocError::BadSignature
        );
        // No x5chain at all.
        is.issuer_auth.unprotected.rest.clear();
        assert!(matches!(
            verify(&pki, &is, NOW).unwrap_err(),
            MdocError::MalformedCbor(_)
        ));
    }

    #[test]
    fn the_mso_validity_window_is_enforced() {
        let pki = Pki::new(NOW);
        let is = issued(&pki, 0);
        assert_eq!(
            verify(&pki, &is, NOW - time::Duration::seconds(1)).unwrap_err(),
            // The DS certificate starts at NOW too: use a later DS window to reach the MSO check.
            MdocError::CertificateNotValid
        );
        assert_eq!(
            verify(&pki, &is, NOW + time::Duration::days(31)).unwrap_err(),
            MdocError::Expired
        );
        // MSO not yet valid while its DS is: validFrom in the future.
        let mut mso = mso_of(&is);
        mso.validity.valid_from = NOW + time::Duration::days(2);
        mso.validity.signed = NOW + time::Duration::days(2);
        let later = resign(&is, &mso, &pki.ds_key);
        assert_eq!(
            verify(&pki, &later, NOW + time::Duration::days(1)).unwrap_err(),
            MdocError::NotYetValid
        );
        // signed after now (but validFrom before) is also not yet valid.
        mso.validity.valid_from = NOW;
        let signed_later = resign(&is, &mso, &pki.ds_key);
        assert_eq!(
            verify(&pki, &signed_later, NOW + time::Duration::days(1)).unwrap_err(),
            MdocError::NotYetValid
        );
        // Expired DS certificate (after 365 days), even with a long MSO.
        mso.validity = ValidityInfo::starting(NOW, time::Duration::days(400));
        let long = resign(&is, &mso, &pki.ds_key);
        assert_eq!(
            verify(&pki, &long, NOW + time::Duration::days(366)).unwrap_err(),
            MdocError::CertificateNotValid
        );
    }

    #[test]
    fn the_issuer_refuses_an_mso_outliving_its_document_signer() {
        let pki = Pki::new(NOW);
        let ds = DocumentSigner::new(&pki.ds_key, pki.ds_cert.clone()).unwrap();
        let r = issue(
            &content(),
            &device_key(),
            ValidityInfo::starting(NOW, time::Duration::days(400)),
            None,
            &ds,
            &mut TestRng(7),
        );
        assert!(matches!(r, Err(MdocError::Invalid(_))));
        let other = shomei_pki::EcdsaP256Signer::generate().unwrap();
        assert!(DocumentSigner::new(&other, pki.ds_cert.clone()).is_err());
    }

    #[test]
    fn a_wrong_doc_type_is_refused() {
        let pki = Pki::new(NOW);
        let is = issued(&pki, 0);
        assert_eq!(
            verify_issuer_signed(
                "org.iso.18013.5.1.mDL",
                &is,
                &pki.trust,
                NOW,
                StatusCheck::NotChecked
            )
            .unwrap_err(),
            MdocError::DocTypeMismatch
        );
    }

    #[test]
    fn unknown_digest_ids_and_name_spaces_are_refused() {
        let pki = Pki::new(NOW);
        let mut is = issued(&pki, 0);
        let items = is.name_spaces.get_mut("ns.b").unwrap();
        let mut item = items[0].item().clone();
        item.digest_id = item.digest_id.wrapping_add(1) | (1 << 40);
        items[0] = IssuerSignedItemBytes::new(item.clone()).unwrap();
        assert_eq!(
            verify(&pki, &is, NOW).unwrap_err(),
            MdocError::UnknownDigestId {
                namespace: "ns.b".into(),
                element: "x".into()
            }
        );
        // The same item under a name space the MSO does not have.
        let mut is = issued(&pki, 0);
        let moved = is.name_spaces.remove("ns.b").unwrap();
        is.name_spaces.insert("ns.c".into(), moved);
        assert_eq!(
            verify(&pki, &is, NOW).unwrap_err(),
            MdocError::UnknownNamespace("ns.c".into())
        );
        // Moving an item between name spaces fails too (its digest is not in the other's map).
        let mut is = issued(&pki, 0);
        let b = is.name_spaces.remove("ns.b").unwrap();
        is.name_spaces.get_mut("ns.a").unwrap().extend(b);
        assert!(matches!(
            verify(&pki, &is, NOW).unwrap_err(),
            MdocError::UnknownDigestId { .. }
        ));
        // An item disclosed twice.
        let mut is = issued(&pki, 0);
        let dup = is.name_spaces["ns.b"][0].clone();
        is.name_spaces.get_mut("ns.b").unwrap().push(dup);
        assert_eq!(
            verify(&pki, &is, NOW).unwrap_err(),
            MdocError::Invalid("element disclosed twice")
        );
    }

    fn status_token(pki: &Pki, list: &StatusList) -> crate::status::VerifiedStatusList {
        let t = sign_status_list_token(
            list,
            &StatusListTokenClaims {
                uri: URI.into(),
                issued_at: NOW,
                expires: NOW + time::Duration::days(1),
                ttl_seconds: Some(600),
            },
            &pki.ds_key,
            std::slice::from_ref(&pki.ds_cert),
        )
        .unwrap();
        verify_status_list_token(&t, URI, &pki.trust, NOW, StatusListLimits::default()).unwrap()
    }

    #[test]
    fn revoked_and_suspended_status_are_refused() {
        let pki = Pki::new(NOW);
        let mut list = StatusList::new(2, 1024).unwrap();
        list.set(5, STATUS_INVALID).unwrap();
        list.set(6, STATUS_SUSPENDED).unwrap();
        let verified = status_token(&pki, &list);
        let check = |idx| {
            verify_issuer_signed(
                DOC,
                &issued(&pki, idx),
                &pki.trust,
                NOW,
                StatusCheck::List(&verified),
            )
        };
        assert_eq!(check(4).unwrap().status(), StatusOutcome::Valid);
        assert_eq!(check(5).unwrap_err(), MdocError::Revoked);
        assert_eq!(check(6).unwrap_err(), MdocError::Suspended);
        assert_eq!(check(5000).unwrap_err(), MdocError::StatusIndexOutOfRange);
        // A list signed under another IACA is not this MSO's list.
        let other = Pki::new(NOW);
        let foreign = status_token(&other, &list);
        assert_eq!(
            verify_issuer_signed(
                DOC,
                &issued(&pki, 4),
                &pki.trust,
                NOW,
                StatusCheck::List(&foreign)
            )
            .unwrap_err(),
            MdocError::StatusListMismatch
        );
        // An MSO without status: nothing to check, and said so.
        let ds = DocumentSigner::new(&pki.ds_key, pki.ds_cert.clone()).unwrap();
        let none = issue(
            &content(),
            &device_key(),
            ValidityInfo::starting(NOW, time::Duration::days(1)),
            None,
            &ds,
            &mut TestRng(9),
        )
        .unwrap();
        assert_eq!(
            verify_issuer_signed(DOC, &none, &pki.trust, NOW, StatusCheck::List(&verified))
                .unwrap()
                .status(),
            StatusOutcome::NoStatusReference
        );
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &[][..],
            &[0xa0],
            &[0xa1, 0x60, 0x60],
            &[0x82, 0x01, 0x02],
            &[0xd8, 0x18, 0x40],
        ] {
            assert!(IssuerSigned::from_cbor(bytes).is_err());
        }
        let pki = Pki::new(NOW);
        let good = issued(&pki, 0).to_cbor().unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            if let Ok(is) = IssuerSigned::from_cbor(&b) {
                let _ = verify(&pki, &is, NOW);
            }
            let _ = IssuerSigned::from_cbor(&good[..i]);
        }
    }
}
