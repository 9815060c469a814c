//! Detached CMS `SignedData` (RFC 5652) over a file: what a holder's
//! signing certificate signs with, and what `openssl cms -verify -binary
//! -inform DER -in FILE.p7s -content FILE` checks.
//!
//! ```text
//! ContentInfo ::= SEQUENCE {
//!   contentType ContentType,                   -- id-signedData
//!   content [0] EXPLICIT ANY DEFINED BY contentType }
//!
//! SignedData ::= SEQUENCE {
//!   version CMSVersion,
//!   digestAlgorithms DigestAlgorithmIdentifiers,
//!   encapContentInfo EncapsulatedContentInfo,  -- id-data, eContent absent
//!   certificates [0] IMPLICIT CertificateSet OPTIONAL,
//!   crls [1] IMPLICIT RevocationInfoChoices OPTIONAL,
//!   signerInfos SignerInfos }
//!
//! SignerInfo ::= SEQUENCE {
//!   version CMSVersion,
//!   sid SignerIdentifier,                      -- issuerAndSerialNumber
//!   digestAlgorithm DigestAlgorithmIdentifier,
//!   signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL,
//!   signatureAlgorithm SignatureAlgorithmIdentifier,
//!   signature SignatureValue,
//!   unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
//! ```
//!
//! The signature covers the DER of `signedAttrs` re-tagged as a `SET OF`
//! (`0x31`), not as the `[0]` it is stored under (RFC 5652 §5.4).
//!
//! [`verify_detached`] checks only the *signature*: that the signed
//! attributes bind this content and that the certificate's key made the
//! signature. Whether that certificate chains to a JPKI root, is within its
//! validity, carries the right policy and is not revoked is the relying
//! party's job (the verifier crate), as is deciding whether the claimed
//! signing time is trustworthy (it is the signer's own claim).

use der::asn1::{AnyRef, ObjectIdentifier, OctetString, OctetStringRef, SetOfVec};
use der::{Any, Decode, Encode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use shomei_core::{SignatureAlgorithm, Signer, Timestamp};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

use crate::PkiError;

/// Largest `.p7s` accepted by [`verify_detached`] (bytes).
pub const MAX_P7S_LEN: usize = 256 * 1024;
/// Most certificates accepted in one `SignedData`.
pub const MAX_CERTS: usize = 8;
/// Largest single certificate accepted (bytes). JPKI certificates are under 2 KiB.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Most signed attributes accepted.
pub const MAX_SIGNED_ATTRS: usize = 16;
/// Most `SignerInfo`s accepted: a Shōmei signature has exactly one signer.
pub const MAX_SIGNER_INFOS: usize = 1;
/// Most entries accepted in `SignedData.digestAlgorithms`.
pub const MAX_DIGEST_ALGORITHMS: usize = 8;
/// The `what` of [`PkiError::Malformed`] when a SignerInfo carries no
/// signed attributes (RFC 5652 allows it; a Shōmei application never
/// lacks them, and without them the signature would be over the content
/// itself — any bytes a key once signed for another purpose).
pub const NO_SIGNED_ATTRIBUTES: &str = "CMS signed attributes";
/// The `what` of [`PkiError::Malformed`] when the SignerInfo's digest
/// algorithm is not listed in `SignedData.digestAlgorithms` (RFC 5652 §5.1).
pub const DIGEST_NOT_LISTED: &str = "CMS digestAlgorithms";

/// What [`verify_detached`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// DER of the certificate whose key made the signature (not validated:
    /// chain, validity and status are the relying party's to check).
    pub signer_cert_der: Vec<u8>,
    /// The signingTime attribute, if present (the signer's claim).
    pub signing_time: Option<Timestamp>,
    /// Every certificate carried in the SignedData, in order, as DER
    /// (intermediates for path building; the signer's is among them).
    pub certificates: Vec<Vec<u8>>,
}

/// Signs `content` as a detached CMS SignedData (DER).
///
/// SHA-256; signed attributes contentType (id-data), signingTime and
/// messageDigest; `sid` = issuerAndSerialNumber of `signer_cert_der`;
/// signatureAlgorithm `rsaEncryption` for RSA signers (what `openssl cms
/// -sign` writes) or `ecdsa-with-SHA256` for P-256 signers. The certificate
/// set holds the signer certificate and `extra_certs` (duplicates dropped).
///
/// `signer.sign` is called exactly once, over the DER `SET OF` signed
/// attributes, so a smart card signer costs one APDU exchange. The signer's
/// public key must be the certificate's.
pub fn sign_detached(
    content: &[u8],
    signer_cert_der: &[u8],
    extra_certs: &[&[u8]],
    signer: &dyn Signer,
    signing_time: Timestamp,
) -> Result<Vec<u8>, PkiError> {
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
        SignerInfos,
    };
    use const_oid::db::{rfc5911, rfc5912};

    let build = |e: der::Error| PkiError::Build(format!("CMS: {e}"));
    let cert = Certificate::from_der(signer_cert_der)
        .map_err(|e| PkiError::malformed("signer certificate", e))?;
    let cert_spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(build)?;
    if cert_spki != signer.public_key_spki() {
        return Err(PkiError::BadKey(
            "the signer's key is not the signer certificate's key".into(),
        ));
    }
    let signature_algorithm = match signer.algorithm() {
        SignatureAlgorithm::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        SignatureAlgorithm::EcdsaP256Sha256 => AlgorithmIdentifierOwned {
            oid: rfc5912::ECDSA_WITH_SHA_256,
            parameters: None,
        },
        other => {
            return Err(PkiError::Unsupported(format!("CMS signing with {other:?}")));
        }
    };
    // RFC 5754 §2: SHA-2 AlgorithmIdentifiers omit the parameters.
    let digest_alg = AlgorithmIdentifierOwned {
        oid: rfc5912::ID_SHA_256,
        parameters: None,
    };
    let digest = Digest::Sha256.digest(content);

    let attr = |oid: ObjectIdentifier, value: Any| -> Result<Attribute, PkiError> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value]).map_err(build)?,
        })
    };
    let signed_attrs = SetOfVec::try_from(vec![
        attr(
            rfc5911::ID_CONTENT_TYPE,
            Any::encode_from(&rfc5911::ID_DATA).map_err(build)?,
        )?,
        attr(
            rfc5911::ID_SIGNING_TIME,
            Any::encode_from(&cms_time(signing_time)?).map_err(build)?,
        )?,
        attr(
            rfc5911::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest).map_err(build)?).map_err(build)?,
        )?,
    ])
    .map_err(build)?;
    // The DER of the attributes as a SET OF (tag 0x31): what is signed.
    let to_sign = signed_attrs.to_der().map_err(build)?;
    let signature = signer.sign(&to_sign)?;

    let mut certs: Vec<Vec<u8>> = vec![signer_cert_der.to_vec()];
    for c in extra_certs {
        if !certs.iter().any(|have| have.as_slice() == *c) {
            certs.push(c.to_vec());
        }
    }
    let mut choices = Vec::with_capacity(certs.len());
    for c in &certs {
        let cert = Certificate::from_der(c).map_err(|e| PkiError::malformed("certificate", e))?;
        choices.push(CertificateChoices::Certificate(cert));
    }

    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::new(signature).map_err(build)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg]).map_err(build)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: rfc5911::ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(choices).map_err(build)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(build)?),
    };
    ContentInfo {
        content_type: rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(build)?,
    }
    .to_der()
    .map_err(build)
}

/// RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
fn cms_time(t: Timestamp) -> Result<x509_cert::time::Time, PkiError> {
    use der::asn1::{GeneralizedTime, UtcTime};
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| PkiError::Build("signing time before 1970".into()))?;
    let dt = der::DateTime::from_unix_duration(core::time::Duration::from_secs(secs))
        .map_err(|e| PkiError::Build(format!("signing time: {e}")))?;
    Ok(if dt.year() < 2050 {
        UtcTime::from_date_time(dt)
            .map_err(|e| PkiError::Build(format!("signing time: {e}")))?
            .into()
    } else {
        GeneralizedTime::from_date_time(dt).into()
    })
}

fn timestamp_from_time(t: x509_cert::time::Time) -> Result<Timestamp, PkiError> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| PkiError::malformed("CMS", "time out of range"))?;
    Timestamp::from_unix_timestamp(secs)
        .map_err(|_| PkiError::malformed("CMS", "time out of range"))
}

// `cms` 0.2.3 decodes SignedData into `SetOfVec`s, which (a) re-sort on
// decode, losing the exact signed bytes of `signedAttrs` a non-DER-sorting
// signer produced, and (b) sort with an insertion sort that re-encodes every
// element per comparison — quadratic work an attacker controls. So the outer
// layers are walked here element by element with `der`'s reader, with
// counts bounded before anything is decoded into owned types.

#[derive(Sequence)]
struct ContentInfoRef<'a> {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: AnyRef<'a>,
}

#[derive(Sequence)]
struct AttributeRef<'a> {
    oid: ObjectIdentifier,
    values: AnyRef<'a>,
}

fn cms_err(e: impl core::fmt::Display) -> PkiError {
    PkiError::malformed("CMS", e)
}

fn context(n: u8, constructed: bool) -> Tag {
    Tag::ContextSpecific {
        constructed,
        number: TagNumber::new(n),
    }
}

/// The elements of a constructed value (SET, SEQUENCE or implicit tag),
/// refusing more than `max`.
fn elements<'a>(value: &'a [u8], max: usize, what: &str) -> Result<Vec<AnyRef<'a>>, PkiError> {
    let mut reader = SliceReader::new(value).map_err(cms_err)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        if out.len() == max {
            return Err(PkiError::Unsupported(format!(
                "more than {max} {what} in a CMS SignedData"
            )));
        }
        out.push(AnyRef::decode(&mut reader).map_err(cms_err)?);
    }
    Ok(out)
}

/// A parsed SignerInfo, borrowing the input.
struct SignerInfoRef<'a> {
    sid: Sid<'a>,
    digest: Digest,
    signed_attrs: Option<&'a [u8]>,
    signature_algorithm: ObjectIdentifier,
    signature: &'a [u8],
}

enum Sid<'a> {
    /// Raw DER TLVs of the issuer Name and the serial INTEGER.
    IssuerSerial(AnyRef<'a>, AnyRef<'a>),
    SubjectKeyId(&'a [u8]),
}

fn parse_signer_info(si: AnyRef<'_>) -> Result<SignerInfoRef<'_>, PkiError> {
    if si.tag() != Tag::Sequence {
        return Err(cms_err("SignerInfo is not a SEQUENCE"));
    }
    let mut r = SliceReader::new(si.value()).map_err(cms_err)?;
    let _version: cms::content_info::CmsVersion = r.decode().map_err(cms_err)?;
    let sid_any: AnyRef<'_> = r.decode().map_err(cms_err)?;
    let sid = if sid_any.tag() == Tag::Sequence {
        let mut sr = SliceReader::new(sid_any.value()).map_err(cms_err)?;
        let issuer: AnyRef<'_> = sr.decode().map_err(cms_err)?;
        let serial: AnyRef<'_> = sr.decode().map_err(cms_err)?;
        if !sr.is_finished() || issuer.tag() != Tag::Sequence || serial.tag() != Tag::Integer {
            return Err(cms_err("bad issuerAndSerialNumber"));
        }
        Sid::IssuerSerial(issuer, serial)
    } else if sid_any.tag() == context(0, false) {
        Sid::SubjectKeyId(sid_any.value())
    } else {
        return Err(cms_err("bad SignerIdentifier"));
    };
    let digest_alg: AlgorithmIdentifierOwned = r.decode().map_err(cms_err)?;
    let digest = Digest::from_algorithm(&digest_alg)?;
    let mut signed_attrs = None;
    if r.peek_tag().map_err(cms_err)? == context(0, true) {
        let a: AnyRef<'_> = r.decode().map_err(cms_err)?;
        signed_attrs = Some(a.value());
    }
    let sig_alg: AlgorithmIdentifierOwned = r.decode().map_err(cms_err)?;
    let signature: OctetStringRef<'_> = r.decode().map_err(cms_err)?;
    if !r.is_finished() {
        let unsigned: AnyRef<'_> = r.decode().map_err(cms_err)?;
        if unsigned.tag() != context(1, true) || !r.is_finished() {
            return Err(cms_err("trailing data in SignerInfo"));
        }
    }
    Ok(SignerInfoRef {
        sid,
        digest,
        signed_attrs,
        signature_algorithm: sig_alg.oid,
        signature: signature.as_bytes(),
    })
}

/// Verifies a detached CMS SignedData over `content`.
///
/// Accepts one SignerInfo ([`MAX_SIGNER_INFOS`]) whose signer certificate is
/// carried in the SignedData, found by issuerAndSerialNumber or
/// subjectKeyIdentifier, and whose digest algorithm is listed in
/// `digestAlgorithms` (else [`PkiError::Malformed`] with `what`
/// [`DIGEST_NOT_LISTED`]). Signed attributes are required (else
/// `Malformed` with `what` [`NO_SIGNED_ATTRIBUTES`]): contentType must be
/// id-data, messageDigest must equal the content's digest (SHA-256, -384 or
/// -512, per digestAlgorithm), and the signature is checked over the
/// attributes re-tagged as `SET OF`. RSA PKCS#1 v1.5 (as
/// `rsaEncryption` or `shaNNNWithRSAEncryption`, 2048–8192 bits) and ECDSA
/// P-256/P-384 are supported.
///
/// This is signature verification only — see the module docs for what the
/// relying party must still check. Work is bounded: at most
/// [`MAX_P7S_LEN`] bytes, [`MAX_CERTS`] certificates of at most
/// [`MAX_CERT_LEN`] bytes, [`MAX_SIGNED_ATTRS`] attributes. Embedded
/// (attached) content is refused.
pub fn verify_detached(p7s: &[u8], content: &[u8]) -> Result<VerifiedSignature, PkiError> {
    use const_oid::db::rfc5911;

    if p7s.len() > MAX_P7S_LEN {
        return Err(cms_err("longer than 256 KiB"));
    }
    let ci = ContentInfoRef::from_der(p7s).map_err(cms_err)?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(PkiError::Unsupported(format!(
            "CMS content type {} (expected signedData)",
            ci.content_type
        )));
    }
    if ci.content.tag() != Tag::Sequence {
        return Err(cms_err("SignedData is not a SEQUENCE"));
    }
    let mut r = SliceReader::new(ci.content.value()).map_err(cms_err)?;
    let _version: cms::content_info::CmsVersion = r.decode().map_err(cms_err)?;
    let digest_algorithms: AnyRef<'_> = r.decode().map_err(cms_err)?;
    if digest_algorithms.tag() != Tag::Set {
        return Err(cms_err("digestAlgorithms is not a SET"));
    }
    let encap: AnyRef<'_> = r.decode().map_err(cms_err)?;
    let (econtent_type, econtent) = encap
        .sequence(|er| {
            let oid: ObjectIdentifier = er.decode()?;
            let content = if er.is_finished() {
                None
            } else {
                Some(er.decode::<AnyRef<'_>>()?)
            };
            Ok((oid, content))
        })
        .map_err(cms_err)?;
    if econtent_type != rfc5911::ID_DATA {
        return Err(PkiError::Unsupported(format!(
            "encapsulated content type {econtent_type} (expected id-data)"
        )));
    }
    if econtent.is_some() {
        return Err(PkiError::Unsupported(
            "the content is attached; expected a detached signature".into(),
        ));
    }
    let mut certs_any = None;
    let mut next: AnyRef<'_> = r.decode().map_err(cms_err)?;
    if next.tag() == context(0, true) {
        certs_any = Some(next);
        next = r.decode().map_err(cms_err)?;
    }
    if next.tag() == context(1, true) {
        // crls: not used here (status checking belongs to the relying party).
        next = r.decode().map_err(cms_err)?;
    }
    if next.tag() != Tag::Set || !r.is_finished() {
        return Err(cms_err("bad signerInfos"));
    }
    let signer_infos = elements(next.value(), MAX_SIGNER_INFOS, "SignerInfos")?;

    // Certificates: keep the raw DER; other CertificateChoices are skipped.
    let mut certificates: Vec<(Vec<u8>, CertView<'_>)> = Vec::new();
    if let Some(any) = certs_any {
        for c in elements(any.value(), MAX_CERTS, "certificates")? {
            if c.tag() != Tag::Sequence {
                continue;
            }
            let der = c.to_der().map_err(cms_err)?;
            if der.len() > MAX_CERT_LEN {
                return Err(PkiError::Unsupported(
                    "certificate larger than 16 KiB".into(),
                ));
            }
            certificates.push((der, CertView::from_any(c)?));
        }
    }

    let Some(si) = signer_infos.into_iter().next() else {
        return Err(cms_err("no SignerInfo"));
    };
    let si = parse_signer_info(si)?;
    // RFC 5652 §5.1: digestAlgorithms lists the signers' digest algorithms.
    // (Unknown entries are skipped, not refused: only ours must be there.)
    let listed = elements(
        digest_algorithms.value(),
        MAX_DIGEST_ALGORITHMS,
        "digestAlgorithms",
    )?
    .into_iter()
    .any(|a| {
        a.decode_as::<AlgorithmIdentifierOwned>()
            .ok()
            .and_then(|a| Digest::from_algorithm(&a).ok())
            == Some(si.digest)
    });
    if !listed {
        return Err(PkiError::malformed(
            DIGEST_NOT_LISTED,
            "the SignerInfo's digest algorithm is not listed",
        ));
    }
    let Some(attrs) = si.signed_attrs else {
        return Err(PkiError::malformed(
            NO_SIGNED_ATTRIBUTES,
            "absent (contentType and messageDigest are required)",
        ));
    };
    let signer = find_signer(&certificates, &si.sid)?;
    let spki = &signer.1.spki;

    let mut signing_time = None;
    let mut content_type = None;
    let mut message_digest = None;
    for a in elements(attrs, MAX_SIGNED_ATTRS, "signed attributes")? {
        let a: AttributeRef<'_> = a.decode_as().map_err(cms_err)?;
        if a.values.tag() != Tag::Set {
            return Err(cms_err("attribute values are not a SET"));
        }
        let single = || -> Result<AnyRef<'_>, PkiError> {
            let vals = elements(a.values.value(), 1, "attribute values")?;
            vals.into_iter()
                .next()
                .ok_or_else(|| cms_err("attribute without a value"))
        };
        let dup = || cms_err(format!("attribute {} appears twice", a.oid));
        if a.oid == rfc5911::ID_CONTENT_TYPE {
            let oid: ObjectIdentifier = single()?.decode_as().map_err(cms_err)?;
            if content_type.replace(oid).is_some() {
                return Err(dup());
            }
        } else if a.oid == rfc5911::ID_MESSAGE_DIGEST {
            let d: OctetStringRef<'_> = single()?.decode_as().map_err(cms_err)?;
            if message_digest.replace(d.as_bytes()).is_some() {
                return Err(dup());
            }
        } else if a.oid == rfc5911::ID_SIGNING_TIME {
            let t = single()?
                .to_der()
                .and_then(|d| x509_cert::time::Time::from_der(&d))
                .map_err(cms_err)?;
            if signing_time.replace(timestamp_from_time(t)?).is_some() {
                return Err(dup());
            }
        }
    }
    if content_type != Some(econtent_type) {
        return Err(cms_err("contentType attribute missing or not id-data"));
    }
    let Some(md) = message_digest else {
        return Err(cms_err("messageDigest attribute missing"));
    };
    if md != si.digest.digest(content).as_slice() {
        return Err(PkiError::BadSignature {
            what: "CMS message digest",
        });
    }
    // Re-tag [0] IMPLICIT as the universal SET OF that was signed.
    let signed = AnyRef::new(Tag::Set, attrs)
        .and_then(|a| a.to_der())
        .map_err(cms_err)?;
    verify_spki_signature(
        spki,
        si.signature_algorithm,
        Some(si.digest),
        &signed,
        si.signature,
        "CMS signer",
    )?;
    Ok(VerifiedSignature {
        signer_cert_der: signer.0.clone(),
        signing_time,
        certificates: certificates.into_iter().map(|(der, _)| der).collect(),
    })
}

fn find_signer<'c, 'v>(
    certs: &'c [(Vec<u8>, CertView<'v>)],
    sid: &Sid<'_>,
) -> Result<&'c (Vec<u8>, CertView<'v>), PkiError> {
    for c in certs {
        let view = &c.1;
        let hit = match sid {
            // Byte comparison of the raw DER, as RFC 5652 §5.3 intends.
            Sid::IssuerSerial(issuer, serial) => {
                issuer.to_der().is_ok_and(|i| i == view.issuer)
                    && serial.to_der().is_ok_and(|s| s == view.serial)
            }
            Sid::SubjectKeyId(ski) => view
                .extension(const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
                .and_then(|v| OctetStringRef::from_der(v).ok())
                .is_some_and(|k| k.as_bytes() == *ski),
        };
        if hit {
            return Ok(c);
        }
    }
    Err(cms_err("the signer's certificate is not in the SignedData"))
}

// x509-cert's `Name` decoder sorts every RDN `SET OF` with an insertion sort
// that re-encodes elements per comparison: a 16 KiB hostile name costs
// ~150 ms of CPU. Certificates from untrusted input are therefore read
// through this borrowed view, which keeps names (and the signed part) as raw
// DER and decodes only what is needed: all linear.

#[derive(Sequence)]
struct CertificateRaw<'a> {
    tbs_certificate: AnyRef<'a>,
    signature_algorithm: spki::AlgorithmIdentifierRef<'a>,
    signature: der::asn1::BitStringRef<'a>,
}

#[derive(Sequence)]
struct TbsCertificateRaw<'a> {
    #[asn1(
        context_specific = "0",
        default = "Default::default",
        tag_mode = "EXPLICIT"
    )]
    version: x509_cert::certificate::Version,
    serial_number: AnyRef<'a>,
    signature: AnyRef<'a>,
    issuer: AnyRef<'a>,
    validity: x509_cert::time::Validity,
    subject: AnyRef<'a>,
    subject_public_key_info: AnyRef<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_unique_id: Option<der::asn1::BitStringRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_unique_id: Option<der::asn1::BitStringRef<'a>>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<x509_cert::ext::Extension>>,
}

/// A certificate read without decoding its names (see above). Parsing
/// checks no signature.
/// A certificate read without copying its parts out of the DER more than
/// needed: what signature checks and CertIDs need.
pub struct CertView<'a> {
    /// DER of tbsCertificate (the signed bytes).
    pub tbs: Vec<u8>,
    /// The outer signatureAlgorithm.
    pub sig_alg: ObjectIdentifier,
    /// The signature value.
    pub signature: &'a [u8],
    /// DER TLV of the serialNumber INTEGER.
    pub serial: Vec<u8>,
    /// DER TLV of the issuer Name.
    pub issuer: Vec<u8>,
    /// DER TLV of the subject Name.
    pub subject: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// The subjectPublicKey BIT STRING's value (what key hashes cover).
    pub public_key: &'a [u8],
    /// notBefore.
    pub not_before: x509_cert::time::Time,
    /// notAfter.
    pub not_after: x509_cert::time::Time,
    /// Extensions (empty if none).
    pub extensions: Vec<x509_cert::ext::Extension>,
}

impl<'a> CertView<'a> {
    /// Reads a DER certificate.
    pub fn parse(der: &'a [u8]) -> Result<Self, PkiError> {
        let raw = CertificateRaw::from_der(der).map_err(cert_err)?;
        Self::from_raw(raw)
    }

    fn from_any(any: AnyRef<'a>) -> Result<Self, PkiError> {
        Self::from_raw(any.decode_as::<CertificateRaw<'a>>().map_err(cert_err)?)
    }

    fn from_raw(raw: CertificateRaw<'a>) -> Result<Self, PkiError> {
        let tbs: TbsCertificateRaw<'a> = raw.tbs_certificate.decode_as().map_err(cert_err)?;
        if tbs.serial_number.tag() != Tag::Integer
            || tbs.issuer.tag() != Tag::Sequence
            || tbs.subject.tag() != Tag::Sequence
        {
            return Err(cert_err("bad TBSCertificate"));
        }
        let spki: spki::SubjectPublicKeyInfoRef<'a> =
            tbs.subject_public_key_info.decode_as().map_err(cert_err)?;
        Ok(Self {
            tbs: raw.tbs_certificate.to_der().map_err(cert_err)?,
            sig_alg: raw.signature_algorithm.oid,
            signature: raw
                .signature
                .as_bytes()
                .ok_or_else(|| cert_err("signature has unused bits"))?,
            serial: tbs.serial_number.to_der().map_err(cert_err)?,
            issuer: tbs.issuer.to_der().map_err(cert_err)?,
            subject: tbs.subject.to_der().map_err(cert_err)?,
            spki: tbs.subject_public_key_info.to_der().map_err(cert_err)?,
            public_key: spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| cert_err("key has unused bits"))?,
            not_before: tbs.validity.not_before,
            not_after: tbs.validity.not_after,
            extensions: tbs.extensions.unwrap_or_default(),
        })
    }

    /// The value of the extension `oid`, if present.
    pub fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.extensions
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// Checks that `issuer` issued this certificate: names match and the
    /// issuer's key made the signature.
    pub fn verify_issued_by(
        &self,
        issuer: &CertView<'_>,
        what: &'static str,
    ) -> Result<(), PkiError> {
        if self.issuer != issuer.subject {
            return Err(PkiError::BadKey(format!(
                "{what} is not issued by this issuer"
            )));
        }
        verify_spki_signature(
            &issuer.spki,
            self.sig_alg,
            None,
            &self.tbs,
            self.signature,
            what,
        )
    }
}

fn cert_err(e: impl core::fmt::Display) -> PkiError {
    PkiError::malformed("certificate", e)
}

/// Digest algorithms accepted in signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    fn from_algorithm(alg: &AlgorithmIdentifierOwned) -> Result<Self, PkiError> {
        use const_oid::db::rfc5912;
        if alg.parameters.as_ref().is_some_and(|p| !p.is_null()) {
            return Err(cms_err("digest algorithm with parameters"));
        }
        match alg.oid {
            rfc5912::ID_SHA_256 => Ok(Self::Sha256),
            rfc5912::ID_SHA_384 => Ok(Self::Sha384),
            rfc5912::ID_SHA_512 => Ok(Self::Sha512),
            other => Err(PkiError::Unsupported(format!("digest algorithm {other}"))),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha256 => &aws_lc_rs::digest::SHA256,
            Self::Sha384 => &aws_lc_rs::digest::SHA384,
            Self::Sha512 => &aws_lc_rs::digest::SHA512,
        };
        aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
    }
}

/// Verifies `signature` over `message` with the key in a DER SPKI, for an
/// X.509 signature algorithm (sha{256,384,512}WithRSAEncryption or
/// ecdsa-with-SHA{256,384}); `what` names the object in errors.
pub fn verify_signature(
    spki_der: &[u8],
    sig_alg: ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), PkiError> {
    verify_spki_signature(spki_der, sig_alg, None, message, signature, what)
}

/// Verifies `signature` over `message` with the key in a DER SPKI, for the
/// signature algorithm `sig_alg` (sha{256,384,512}WithRSAEncryption,
/// ecdsa-with-SHA{256,384}, or — with `digest` given, as CMS does —
/// rsaEncryption). A digest implied by `sig_alg` must agree with `digest`.
pub(crate) fn verify_spki_signature(
    spki_der: &[u8],
    sig_alg: ObjectIdentifier,
    digest: Option<Digest>,
    message: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), PkiError> {
    use aws_lc_rs::signature as sig;
    use const_oid::db::rfc5912;

    #[derive(PartialEq)]
    enum Kind {
        Rsa,
        Ec,
    }
    let (kind, implied) = match sig_alg {
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => (Kind::Rsa, Some(Digest::Sha256)),
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => (Kind::Rsa, Some(Digest::Sha384)),
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => (Kind::Rsa, Some(Digest::Sha512)),
        rfc5912::RSA_ENCRYPTION => (Kind::Rsa, None),
        rfc5912::ECDSA_WITH_SHA_256 => (Kind::Ec, Some(Digest::Sha256)),
        rfc5912::ECDSA_WITH_SHA_384 => (Kind::Ec, Some(Digest::Sha384)),
        other => {
            return Err(PkiError::Unsupported(format!(
                "signature algorithm {other}"
            )));
        }
    };
    let hash = match (implied, digest) {
        (Some(a), Some(b)) if a != b => {
            return Err(PkiError::Unsupported(
                "signature algorithm and digest algorithm disagree".into(),
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(PkiError::Unsupported(
                "rsaEncryption without a digest algorithm".into(),
            ));
        }
    };
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| PkiError::malformed("public key", e))?;
    let key = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| PkiError::malformed("public key", "unused bits in key"))?;
    let alg: &'static dyn sig::VerificationAlgorithm =
        if info.algorithm.oid == rfc5912::RSA_ENCRYPTION {
            if kind != Kind::Rsa {
                return Err(PkiError::BadKey("RSA key for an ECDSA signature".into()));
            }
            match hash {
                Digest::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Digest::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Digest::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            }
        } else if info.algorithm.oid == rfc5912::ID_EC_PUBLIC_KEY {
            if kind != Kind::Ec {
                return Err(PkiError::BadKey("EC key for an RSA signature".into()));
            }
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match (curve, hash) {
                (Some(rfc5912::SECP_256_R_1), Digest::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
                (Some(rfc5912::SECP_256_R_1), Digest::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
                (Some(rfc5912::SECP_384_R_1), Digest::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
                (Some(rfc5912::SECP_384_R_1), Digest::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
                _ => {
                    return Err(PkiError::Unsupported(
                        "EC curve/hash combination (P-256 or P-384 with SHA-256/384 only)".into(),
                    ));
                }
            }
        } else {
            return Err(PkiError::Unsupported(format!(
                "public key algorithm {}",
                info.algorithm.oid
            )));
        };
    sig::UnparsedPublicKey::new(alg, key)
        .verify(message, signature)
        .map_err(|_| PkiError::BadSignature { what })
}

/// Checks that `cert_der` names `issuer_der`'s subject as its issuer and
/// carries a valid signature by the issuer's key. Validity dates, key usage
/// and status are not checked here (the relying party's verifier does that).
pub fn check_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), PkiError> {
    let cert = CertView::parse(cert_der)?;
    let issuer = CertView::parse(issuer_der)?;
    cert.verify_issued_by(&issuer, "certificate")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::Command;
    use std::sync::Arc;

    use shomei_core::{BasicFour, CertClass, Root, Serial};
    use time::macros::datetime;

    use super::*;
    use crate::profile::{
        EndEntityRequest, PublicationPoints, RootCa, card_not_after, issue_end_entity,
    };
    use crate::{EcdsaP256Signer, RsaSigner};

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);

    fn root() -> RootCa {
        RootCa::create(
            Root::Sign,
            "Shomei Test Authority",
            Arc::new(RsaSigner::generate().unwrap()),
            &Serial::from_be_bytes(&[1]).unwrap(),
            NOW,
        )
        .unwrap()
    }

    fn issue_for_csr(ca: &RootCa, csr_der: &[u8], serial: u8) -> Vec<u8> {
        let csr = crate::csr::check_csr(csr_der).unwrap();
        let h = BasicFour::new(
            "山田 太郎",
            "東京都千代田区千代田1-1",
            "1990-04-01".parse().unwrap(),
            shomei_core::Sex::Male,
        )
        .unwrap();
        let serial = Serial::from_be_bytes(&[0x40, 1, 2, 3, 4, 5, 6, 7, serial]).unwrap();
        let req = EndEntityRequest {
            class: CertClass::CardSign,
            csr: &csr,
            holder: &h,
            serial: &serial,
            now: NOW,
            not_after: card_not_after(&h, NOW),
            shard: 0,
        };
        issue_end_entity(ca, &PublicationPoints::new("http://127.0.0.1:8700"), &req).unwrap()
    }

    fn openssl(args: &[&str], dir: &std::path::Path) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn der_to_pem(dir: &std::path::Path, der: &str, pem: &str) {
        let (ok, text) = openssl(&["x509", "-inform", "DER", "-in", der, "-out", pem], dir);
        assert!(ok, "{text}");
    }

    /// One RSA root and one RSA holder key for the whole file.
    struct Fixture {
        dir: tempfile::TempDir,
        ca: RootCa,
        key: RsaSigner,
        ee: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = root();
        let key = RsaSigner::generate().unwrap();
        let ee = issue_for_csr(&ca, &crate::csr::build_csr(&key, "x").unwrap(), 1);
        std::fs::write(dir.path().join("ca.der"), ca.cert_der()).unwrap();
        der_to_pem(dir.path(), "ca.der", "ca.pem");
        Fixture { dir, ca, key, ee }
    }

    #[test]
    fn openssl_cms_verifies_our_detached_signature() {
        let f = fixture();
        let d = f.dir.path();
        let content = b"%PDF-1.7 \x00\xff binary content\r\n".repeat(100);
        std::fs::write(d.join("f"), &content).unwrap();
        let p7s = sign_detached(&content, &f.ee, &[f.ca.cert_der()], &f.key, NOW).unwrap();
        std::fs::write(d.join("f.p7s"), &p7s).unwrap();
        let (ok, text) = openssl(
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "f.p7s",
                "-content",
                "f",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
                "-attime",
                "1800000000",
                "-out",
                "/dev/null",
            ],
            d,
        );
        assert!(ok && text.contains("Verification successful"), "{text}");
        // OpenSSL's own structure dump agrees on what we wrote.
        let (ok, text) = openssl(
            &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "f.p7s"],
            d,
        );
        assert!(ok, "{text}");
        assert!(
            text.contains(
                "signatureAlgorithm: \n          algorithm: rsaEncryption (1.2.840.113549.1.1.1)"
            ),
            "{text}"
        );
        assert!(text.contains("signingTime"), "{text}");
        assert!(text.contains("eContent: <ABSENT>"), "{text}");

        let v = verify_detached(&p7s, &content).unwrap();
        assert_eq!(v.signer_cert_der, f.ee);
        assert_eq!(v.signing_time, Some(NOW));
        assert_eq!(v.certificates.len(), 2);

        // Tampered content fails in openssl and here.
        let mut bad = content.clone();
        bad[3] ^= 1;
        std::fs::write(d.join("bad"), &bad).unwrap();
        let (ok, _) = openssl(
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "f.p7s",
                "-content",
                "bad",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
                "-attime",
                "1800000000",
            ],
            d,
        );
        assert!(!ok);
        assert_eq!(
            verify_detached(&p7s, &bad).unwrap_err(),
            PkiError::BadSignature {
                what: "CMS message digest"
            }
        );
        // Tampered signature (last bytes of the signature value).
        let pos = p7s
            .windows(8)
            .rposition(|w| w[0] == 0x04 && w[1] == 0x82 && w[2] == 0x01 && w[3] == 0x00)
            .unwrap();
        let mut bad_sig = p7s.clone();
        bad_sig[pos + 4 + 100] ^= 0x40;
        assert_eq!(
            verify_detached(&bad_sig, &content).unwrap_err(),
            PkiError::BadSignature { what: "CMS signer" }
        );
    }

    #[test]
    fn we_verify_a_detached_signature_made_by_openssl() {
        let f = fixture();
        let d = f.dir.path();
        let (ok, text) = openssl(&["genrsa", "-out", "ee.key", "2048"], d);
        assert!(ok, "{text}");
        let (ok, text) = openssl(
            &[
                "req",
                "-new",
                "-key",
                "ee.key",
                "-subj",
                "/CN=openssl",
                "-outform",
                "DER",
                "-out",
                "ee.csr",
            ],
            d,
        );
        assert!(ok, "{text}");
        let ee = issue_for_csr(&f.ca, &std::fs::read(d.join("ee.csr")).unwrap(), 2);
        std::fs::write(d.join("ee.der"), &ee).unwrap();
        der_to_pem(d, "ee.der", "ee.pem");
        let content = b"\x00\x01 signed by openssl \xfe\xff\n".repeat(50);
        std::fs::write(d.join("f"), &content).unwrap();
        let (ok, text) = openssl(
            &[
                "cms", "-sign", "-binary", "-in", "f", "-signer", "ee.pem", "-inkey", "ee.key",
                "-outform", "DER", "-out", "f.p7s",
            ],
            d,
        );
        assert!(ok, "{text}");
        let p7s = std::fs::read(d.join("f.p7s")).unwrap();
        let v = verify_detached(&p7s, &content).unwrap();
        assert_eq!(v.signer_cert_der, ee);
        assert!(v.signing_time.is_some());
        let mut bad = content.clone();
        bad[0] = 1;
        assert!(verify_detached(&p7s, &bad).is_err());

        // Without signed attributes (-noattr): valid CMS (openssl accepts
        // it), but refused here, by name — the signature would be over the
        // content itself.
        let (ok, text) = openssl(
            &[
                "cms", "-sign", "-binary", "-noattr", "-in", "f", "-signer", "ee.pem", "-inkey",
                "ee.key", "-outform", "DER", "-out", "n.p7s",
            ],
            d,
        );
        assert!(ok, "{text}");
        let (ok, text) = openssl(
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "n.p7s",
                "-content",
                "f",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
                "-attime",
                "1800000000",
                "-out",
                "/dev/null",
            ],
            d,
        );
        assert!(ok, "openssl verifies it: {text}");
        let p7s = std::fs::read(d.join("n.p7s")).unwrap();
        assert!(matches!(
            verify_detached(&p7s, &content),
            Err(PkiError::Malformed {
                what: NO_SIGNED_ATTRIBUTES,
                ..
            })
        ));

        // Attached content is refused (this API is for detached signatures).
        let (ok, text) = openssl(
            &[
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-in",
                "f",
                "-signer",
                "ee.pem",
                "-inkey",
                "ee.key",
                "-outform",
                "DER",
                "-out",
                "a.p7s",
            ],
            d,
        );
        assert!(ok, "{text}");
        let p7s = std::fs::read(d.join("a.p7s")).unwrap();
        assert!(matches!(
            verify_detached(&p7s, &content),
            Err(PkiError::Unsupported(_))
        ));
    }

    #[test]
    fn ecdsa_signer_round_trip_and_key_mismatch() {
        // A P-256 signer with a self-issued certificate (the profile only
        // issues RSA end entities, so rcgen makes this one directly).
        let key = Arc::new(EcdsaP256Signer::generate().unwrap());
        let rk = crate::profile::RcgenKey::new(key.clone()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ec.test".into()])
            .unwrap()
            .self_signed(&rk)
            .unwrap();
        let p7s = sign_detached(b"abc", cert.der(), &[], key.as_ref(), NOW).unwrap();
        let v = verify_detached(&p7s, b"abc").unwrap();
        assert_eq!(v.signer_cert_der, cert.der().to_vec());
        assert!(verify_detached(&p7s, b"abd").is_err());
        let other = EcdsaP256Signer::generate().unwrap();
        assert!(matches!(
            sign_detached(b"abc", cert.der(), &[], &other, NOW),
            Err(PkiError::BadKey(_))
        ));
    }

    #[test]
    fn signing_calls_the_signer_exactly_once() {
        struct Counting(EcdsaP256Signer, std::sync::atomic::AtomicUsize);
        impl Signer for Counting {
            fn public_key_spki(&self) -> &[u8] {
                self.0.public_key_spki()
            }
            fn algorithm(&self) -> SignatureAlgorithm {
                self.0.algorithm()
            }
            fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, shomei_core::SignError> {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.0.sign(tbs)
            }
        }
        let key = Arc::new(EcdsaP256Signer::generate().unwrap());
        let rk = crate::profile::RcgenKey::new(key.clone()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ec.test".into()])
            .unwrap()
            .self_signed(&rk)
            .unwrap();
        let pk8 = key.to_pkcs8().unwrap();
        let counting = Counting(
            EcdsaP256Signer::from_pkcs8(&pk8).unwrap(),
            Default::default(),
        );
        sign_detached(b"x", cert.der(), &[], &counting, NOW).unwrap();
        assert_eq!(counting.1.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// DER TLV (test helper for hand-made hostile inputs).
    pub(crate) fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let n = value.len();
        let mut out = vec![tag];
        match n {
            0..=127 => out.push(n as u8),
            128..=255 => out.extend([0x81, n as u8]),
            _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(value);
        out
    }

    /// A Name with one RDN of `n` attributes, in reverse DER order: the
    /// worst case for x509-cert's SET OF sorting.
    pub(crate) fn hostile_name(n: usize) -> Vec<u8> {
        let mut set = Vec::new();
        for i in (0..n).rev() {
            let oid = tlv(0x06, &[0x55, 4, 3]);
            let val = tlv(0x0c, &[0x20 | (i >> 8) as u8, i as u8]);
            set.extend(tlv(0x30, &[oid, val].concat()));
        }
        tlv(0x30, &tlv(0x31, &set))
    }

    #[test]
    fn a_certificate_with_a_hostile_name_costs_linear_time() {
        let f = fixture();
        let ee = CertView::parse(&f.ee).unwrap();
        let alg = tlv(
            0x30,
            &[
                &[
                    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
                ][..],
                &[0x05, 0x00],
            ]
            .concat(),
        );
        let time = |t: &str| tlv(0x17, t.as_bytes());
        let tbs = tlv(
            0x30,
            &[
                &[0xa0, 0x03, 0x02, 0x01, 0x02][..],
                &ee.serial,
                &alg,
                &ee.issuer,
                &tlv(
                    0x30,
                    &[time("261121000000Z"), time("311121000000Z")].concat(),
                ),
                &hostile_name(1400),
                &ee.spki,
            ]
            .concat(),
        );
        let mut sig = vec![0u8; 257];
        sig[1] = 1;
        let hostile = tlv(0x30, &[tbs, alg, tlv(0x03, &sig)].concat());
        assert!(hostile.len() <= MAX_CERT_LEN, "{}", hostile.len());
        let p7s = sign_detached(b"abc", &f.ee, &[&hostile], &f.key, NOW).unwrap();
        let start = std::time::Instant::now();
        let v = verify_detached(&p7s, b"abc").unwrap();
        let elapsed = start.elapsed();
        println!("verify_detached with a 14 KiB hostile name: {elapsed:?}");
        assert_eq!(v.certificates.len(), 2);
        assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    }

    #[test]
    fn the_signers_digest_algorithm_must_be_listed() {
        let f = fixture();
        let content = b"application";
        let p7s = sign_detached(content, &f.ee, &[], &f.key, NOW).unwrap();
        verify_detached(&p7s, content).unwrap();
        // digestAlgorithms is the first SHA-256 OID in the SignedData (the
        // SignerInfo's comes after the certificates); make it SHA-384. The
        // signature (over the signed attributes) still holds.
        let sha256 = [
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        ];
        let first = p7s.windows(sha256.len()).position(|w| w == sha256).unwrap();
        let last = p7s
            .windows(sha256.len())
            .rposition(|w| w == sha256)
            .unwrap();
        assert!(first < last, "listed and used");
        let mut other = p7s.clone();
        other[first + sha256.len() - 1] = 0x02;
        assert_eq!(
            verify_detached(&other, content).unwrap_err(),
            PkiError::Malformed {
                what: DIGEST_NOT_LISTED,
                detail: "the SignerInfo's digest algorithm is not listed".into(),
            }
        );
        // An unknown algorithm listed is skipped, not refused: only the
        // signer's must be there (here it is not).
        other[first + sha256.len() - 1] = 0x7f;
        assert!(matches!(
            verify_detached(&other, content),
            Err(PkiError::Malformed {
                what: DIGEST_NOT_LISTED,
                ..
            })
        ));
        // Patched in the SignerInfo instead (SHA-384 used, SHA-256 listed):
        // refused the same way, before any digest is compared.
        let mut used = p7s.clone();
        used[last + sha256.len() - 1] = 0x02;
        assert!(matches!(
            verify_detached(&used, content),
            Err(PkiError::Malformed {
                what: DIGEST_NOT_LISTED,
                ..
            })
        ));
    }

    #[test]
    fn garbage_and_truncated_p7s_give_typed_errors() {
        let key = Arc::new(EcdsaP256Signer::generate().unwrap());
        let rk = crate::profile::RcgenKey::new(key.clone()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ec.test".into()])
            .unwrap()
            .self_signed(&rk)
            .unwrap();
        let p7s = sign_detached(b"abc", cert.der(), &[], key.as_ref(), NOW).unwrap();
        for n in 0..p7s.len() {
            assert!(verify_detached(&p7s[..n], b"abc").is_err(), "prefix {n}");
        }
        for i in 0..p7s.len() {
            for bit in [0x01, 0x80] {
                let mut b = p7s.clone();
                b[i] ^= bit;
                // Must not panic; almost every flip must fail.
                let _ = verify_detached(&b, b"abc");
            }
        }
        assert!(verify_detached(b"", b"").is_err());
        assert!(verify_detached(&[0x30, 0x80, 0, 0], b"").is_err());
        assert!(verify_detached(&vec![0u8; MAX_P7S_LEN + 1], b"").is_err());
    }
}
