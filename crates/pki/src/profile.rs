//! Certificate profiles: the two JPKI-style roots, the card and phone
//! end-entity certificates, and the OCSP responder certificate.
//!
//! Built with rcgen over an injected [`Signer`] (see [`RcgenKey`]): the CA's
//! private key stays in its key store. Where Shōmei departs from the real
//! JPKI profile, the departure is listed in ARCHITECTURE.md.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose,
    OtherNameValue, PublicKeyData, SanType, SerialNumber, SigningKey,
};
use shomei_core::{BasicFour, CertClass, Root, Serial, SignatureAlgorithm, Signer, Timestamp};
use time::{Duration, Time};

use crate::csr::CheckedCsr;
use crate::{PkiError, oids};

/// Where relying parties find status: the authority's public base URL
/// (`http://127.0.0.1:8700`), written into every certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicationPoints {
    base: String,
}

impl PublicationPoints {
    /// From the HTTP base URL (no trailing slash needed).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// CRL shard URL for a class: `{base}/crl/{class}/{shard}.crl`.
    pub fn crl_url(&self, class: CertClass, shard: u32) -> String {
        format!("{}/crl/{}/{shard}.crl", self.base, class.as_str())
    }

    /// OCSP URL for a root: `{base}/ocsp/{root}`.
    pub fn ocsp_url(&self, root: Root) -> String {
        format!("{}/ocsp/{}", self.base, root.as_str())
    }

    /// The IACA's CRL (revoked document signers): `{base}/crl/iaca.crl`.
    pub fn iaca_crl_url(&self) -> String {
        format!("{}/crl/iaca.crl", self.base)
    }

    /// Issuer certificate (DER) URL for a root: `{base}/ca/{root}.der`.
    pub fn ca_issuers_url(&self, root: Root) -> String {
        format!("{}/ca/{}.der", self.base, root.as_str())
    }
}

/// Adapts a [`Signer`] to rcgen's signing-key traits. rcgen only ever calls
/// `sign` with to-be-signed bytes, so the key never leaves the signer.
pub struct RcgenKey {
    signer: Arc<dyn Signer>,
    raw_public: Vec<u8>,
}

impl RcgenKey {
    /// Wraps a signer.
    pub fn new(signer: Arc<dyn Signer>) -> Result<Self, PkiError> {
        let raw_public = crate::keys::spki_subject_public_key(signer.public_key_spki())?;
        Ok(Self { signer, raw_public })
    }
}

fn rcgen_alg(alg: SignatureAlgorithm) -> &'static rcgen::SignatureAlgorithm {
    match alg {
        SignatureAlgorithm::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        _ => &rcgen::PKCS_RSA_SHA256,
    }
}

impl PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        rcgen_alg(self.signer.algorithm())
    }
}

impl SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// A subject public key taken from a checked CSR (or any SPKI).
struct SubjectKey {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// A root CA: its certificate and the signer holding its key.
pub struct RootCa {
    root: Root,
    authority_name: String,
    cert_der: Vec<u8>,
    key: RcgenKey,
}

impl RootCa {
    /// Creates a self-signed root (RSA-2048, SHA-256): critical keyUsage
    /// keyCertSign+cRLSign, critical basicConstraints CA:TRUE without a path
    /// length, SKI; ten years, ending at 14:59:59Z (23:59:59 JST).
    pub fn create(
        root: Root,
        authority_name: &str,
        signer: Arc<dyn Signer>,
        serial: &Serial,
        now: Timestamp,
    ) -> Result<Self, PkiError> {
        let key = RcgenKey::new(signer)?;
        let mut params = root_params(root, authority_name);
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = truncate_to_second(now);
        params.not_after = end_of_day_jst(
            now.date()
                .replace_year(now.year() + 10)
                .unwrap_or(now.date()),
        );
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::Build(e.to_string()))?;
        Ok(Self {
            root,
            authority_name: authority_name.to_owned(),
            cert_der: cert.der().to_vec(),
            key,
        })
    }

    /// Loads a root from its certificate and signer (the signer must hold the
    /// certificate's key).
    pub fn load(
        root: Root,
        authority_name: &str,
        cert_der: Vec<u8>,
        signer: Arc<dyn Signer>,
    ) -> Result<Self, PkiError> {
        let key = RcgenKey::new(signer)?;
        let cert_spki = crate::csr::certificate_spki(&cert_der)?;
        if cert_spki != key.signer.public_key_spki() {
            return Err(PkiError::BadKey(
                "the key does not match the root certificate".into(),
            ));
        }
        Ok(Self {
            root,
            authority_name: authority_name.to_owned(),
            cert_der,
            key,
        })
    }

    /// Which root.
    pub fn root(&self) -> Root {
        self.root
    }

    /// DER certificate.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The signer holding the root key.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.key.signer
    }

    /// An rcgen issuer for certificates and CRLs signed by this root.
    pub fn issuer(&self) -> Issuer<'_, &RcgenKey> {
        Issuer::new(root_params(self.root, &self.authority_name), &self.key)
    }
}

/// The fixed parts of a root's parameters (rebuilt identically on every load,
/// so the issuer DN and key identifier always match the certificate).
fn root_params(root: Root, authority_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = root_dn(root, authority_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn root_dn(root: Root, authority_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("JP".try_into().unwrap_or_else(|_| unreachable_printable())),
    );
    // rcgen keeps one value per attribute type, so where JPKI has two OUs
    // the authority's name goes into O.
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(authority_name.into()),
    );
    let ou = match root {
        Root::Sign => "Shomei for digital signature",
        Root::Auth => "Shomei for user authentication",
    };
    dn.push(
        DnType::OrganizationalUnitName,
        DnValue::Utf8String(ou.into()),
    );
    dn
}

// "JP" is always a valid PrintableString; this exists only to avoid a panic path.
fn unreachable_printable() -> rcgen::string::PrintableString {
    rcgen::string::PrintableString::try_from("JP".to_string())
        .unwrap_or_else(|_| unreachable_printable())
}

/// 23:59:59 JST on `day` = 14:59:59Z, as JPKI ends every validity.
pub fn end_of_day_jst(day: time::Date) -> Timestamp {
    day.with_time(Time::from_hms(14, 59, 59).unwrap_or(Time::MIDNIGHT))
        .assume_utc()
}

fn truncate_to_second(t: Timestamp) -> Timestamp {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// What to issue for one end-entity certificate.
pub struct EndEntityRequest<'a> {
    /// The certificate class (decides root, key usage, policies, basic four).
    pub class: CertClass,
    /// The subject key, from a checked CSR.
    pub csr: &'a CheckedCsr,
    /// The holder's basic four (written only into signing-class certificates).
    pub holder: &'a BasicFour,
    /// Fresh random serial.
    pub serial: &'a Serial,
    /// Issuance time.
    pub now: Timestamp,
    /// Ends the validity: by default the holder's 5th birthday after issuance;
    /// phone certificates are capped at their card certificate's notAfter.
    pub not_after: Timestamp,
    /// CRL shard (written into the CDP URL).
    pub shard: u32,
}

/// notAfter for a card certificate: the holder's 5th birthday after `now`,
/// at 23:59:59 JST.
pub fn card_not_after(holder: &BasicFour, now: Timestamp) -> Timestamp {
    end_of_day_jst(holder.birth_date().nth_birthday_after(now.date(), 5))
}

/// Issues an end-entity certificate under `ca` (which must be the class's root).
pub fn issue_end_entity(
    ca: &RootCa,
    points: &PublicationPoints,
    req: &EndEntityRequest<'_>,
) -> Result<Vec<u8>, PkiError> {
    if ca.root() != req.class.root() {
        return Err(PkiError::Build(format!(
            "{} certificates are issued by the {} root",
            req.class.as_str(),
            req.class.root().as_str()
        )));
    }
    let mut p = CertificateParams::default();
    p.serial_number = Some(SerialNumber::from_slice(req.serial.as_bytes()));
    p.not_before = truncate_to_second(req.now);
    p.not_after = req.not_after;
    if p.not_after <= p.not_before {
        return Err(PkiError::Build("notAfter must lie after notBefore".into()));
    }
    // Subject: country and an opaque per-issuance value (the serial), never
    // the holder's name — relying parties read the basic four from the SAN.
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("JP".try_into().unwrap_or_else(|_| unreachable_printable())),
    );
    dn.push(DnType::CommonName, DnValue::Utf8String(req.serial.to_hex()));
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.key_usages = if req.class.carries_basic_four() {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ]
    } else {
        vec![KeyUsagePurpose::DigitalSignature]
    };
    if req.class.carries_basic_four() {
        p.subject_alt_names = basic_four_san(req.holder);
    }
    p.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![points.crl_url(req.class, req.shard)],
    }];
    let (policy, critical) = match req.class {
        CertClass::CardSign => (oids::POLICY_SIGN, true),
        CertClass::PhoneSign => (oids::POLICY_PHONE_SIGN, true),
        CertClass::CardAuth => (oids::POLICY_AUTH, false),
        CertClass::PhoneAuth => (oids::POLICY_PHONE_AUTH, false),
    };
    let mut policies =
        CustomExtension::from_oid_content(oids::CERTIFICATE_POLICIES, der_policies(policy));
    policies.set_criticality(critical);
    p.custom_extensions.push(policies);
    p.custom_extensions.push(CustomExtension::from_oid_content(
        oids::AUTHORITY_INFO_ACCESS,
        der_aia(
            &points.ocsp_url(req.class.root()),
            &points.ca_issuers_url(req.class.root()),
        ),
    ));
    let subject = SubjectKey {
        raw: crate::keys::spki_subject_public_key(req.csr.spki())?,
        alg: &rcgen::PKCS_RSA_SHA256,
    };
    let cert = p
        .signed_by(&subject, &ca.issuer())
        .map_err(|e| PkiError::Build(e.to_string()))?;
    Ok(cert.der().to_vec())
}

/// The delegated OCSP responder certificate for `ca` (RFC 6960 §4.2.2.2):
/// EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck, short validity.
pub fn issue_ocsp_responder(
    ca: &RootCa,
    responder: &dyn Signer,
    serial: &Serial,
    now: Timestamp,
    days: i64,
) -> Result<Vec<u8>, PkiError> {
    let mut p = CertificateParams::default();
    p.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    p.not_before = truncate_to_second(now) - Duration::minutes(5);
    p.not_after = truncate_to_second(now) + Duration::days(days);
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("JP".try_into().unwrap_or_else(|_| unreachable_printable())),
    );
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String("Shomei".into()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(format!("Shomei OCSP responder ({})", ca.root().as_str())),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    p.custom_extensions.push(CustomExtension::from_oid_content(
        oids::OCSP_NOCHECK,
        vec![0x05, 0x00],
    ));
    let raw = crate::keys::spki_subject_public_key(responder.public_key_spki())?;
    let subject = SubjectKey {
        raw,
        alg: rcgen_alg(responder.algorithm()),
    };
    let cert = p
        .signed_by(&subject, &ca.issuer())
        .map_err(|e| PkiError::Build(e.to_string()))?;
    Ok(cert.der().to_vec())
}

/// subjectAltName otherNames for the basic four, in the order real cards use
/// (1 name, 4 birth date, 3 sex, 5 address, 2 and 6 substitute-character flags).
fn basic_four_san(h: &BasicFour) -> Vec<SanType> {
    let utf8 =
        |oid: &[u64], v: String| SanType::OtherName((oid.to_vec(), OtherNameValue::Utf8String(v)));
    // Shōmei stores names as given (no JIS substitution), so every flag is 0.
    let flags = |s: &str| "0".repeat(s.chars().count());
    vec![
        utf8(oids::PD_COMMON_NAME, h.name().to_owned()),
        utf8(oids::PD_DATE_OF_BIRTH, h.birth_date().jpki_encoding()),
        utf8(oids::PD_GENDER, h.sex().code().to_string()),
        utf8(oids::PD_ADDRESS, h.address().to_owned()),
        utf8(oids::PD_SUBST_COMMON_NAME, flags(h.name())),
        utf8(oids::PD_SUBST_ADDRESS, flags(h.address())),
    ]
}

// rcgen has no certificatePolicies or AIA support, so their (small, fixed)
// DER is written here with the `der` crate.
fn der_policies(policy: &[u64]) -> Vec<u8> {
    use der::Encode;
    let oid = arcs_to_oid(policy);
    let info = x509_cert::ext::pkix::certpolicy::PolicyInformation {
        policy_identifier: oid,
        policy_qualifiers: None,
    };
    x509_cert::ext::pkix::CertificatePolicies(vec![info])
        .to_der()
        .unwrap_or_default()
}

fn der_aia(ocsp: &str, ca_issuers: &str) -> Vec<u8> {
    use der::Encode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
    let uri = |s: &str| der::asn1::Ia5String::new(s).map(GeneralName::UniformResourceIdentifier);
    let (Ok(ocsp), Ok(issuers)) = (uri(ocsp), uri(ca_issuers)) else {
        return Vec::new();
    };
    AuthorityInfoAccessSyntax(vec![
        AccessDescription {
            access_method: const_oid::db::rfc5280::ID_AD_OCSP,
            access_location: ocsp,
        },
        AccessDescription {
            access_method: const_oid::db::rfc5280::ID_AD_CA_ISSUERS,
            access_location: issuers,
        },
    ])
    .to_der()
    .unwrap_or_default()
}

fn arcs_to_oid(arcs: &[u64]) -> const_oid::ObjectIdentifier {
    let text = arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    const_oid::ObjectIdentifier::new(&text).unwrap_or(const_oid::db::rfc5280::ANY_POLICY)
}

/// id-mdl-kp-mdlDS (ISO/IEC 18013-5 Annex B): extended key usage of a
/// document signer.
pub const MDL_DS_EKU: &[u64] = &[1, 0, 18013, 5, 1, 2];

/// The mobile-ID issuing authority CA (IACA, ISO/IEC 18013-5 Annex B.1.2):
/// a self-signed P-256 root with critical keyUsage keyCertSign+cRLSign,
/// critical basicConstraints CA with pathLen 0, issuerAltName (URI), a CRL
/// distribution point, SKI, and a non-sequential serial.
pub struct Iaca {
    root: MdocRoot,
}

/// How long the IACA lives (Annex B allows at most 20 years).
pub const IACA_YEARS: i32 = 10;

impl Iaca {
    /// Creates the IACA.
    pub fn create(
        authority_name: &str,
        points: &PublicationPoints,
        signer: Arc<dyn Signer>,
        serial: &Serial,
        now: Timestamp,
    ) -> Result<Self, PkiError> {
        let root = MdocRoot::create(
            authority_name,
            iaca_params(authority_name, points),
            signer,
            serial,
            now,
        )?;
        Ok(Self { root })
    }

    /// Loads the IACA from its certificate and key.
    pub fn load(
        authority_name: &str,
        cert_der: Vec<u8>,
        signer: Arc<dyn Signer>,
    ) -> Result<Self, PkiError> {
        let root = MdocRoot::load(authority_name, cert_der, signer, "IACA")?;
        Ok(Self { root })
    }

    /// DER certificate.
    pub fn cert_der(&self) -> &[u8] {
        &self.root.cert_der
    }

    /// Issues a document signer (DS) certificate (Annex B.1.3): critical
    /// keyUsage digitalSignature, critical EKU id-mdl-kp-mdlDS, issuerAltName,
    /// CDP, AKI/SKI, at most 457 days.
    pub fn issue_document_signer(
        &self,
        points: &PublicationPoints,
        ds: &dyn Signer,
        serial: &Serial,
        now: Timestamp,
        days: i64,
    ) -> Result<Vec<u8>, PkiError> {
        if !(1..=457).contains(&days) {
            return Err(PkiError::Build(
                "a document signer lives 1 to 457 days".into(),
            ));
        }
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        p.not_before = truncate_to_second(now);
        p.not_after = truncate_to_second(now) + Duration::days(days);
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CountryName,
            DnValue::PrintableString("JP".try_into().unwrap_or_else(|_| unreachable_printable())),
        );
        dn.push(
            DnType::OrganizationName,
            DnValue::Utf8String(self.root.authority_name.clone()),
        );
        dn.push(
            DnType::CommonName,
            DnValue::Utf8String(format!(
                "{} mobile ID document signer",
                self.root.authority_name
            )),
        );
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // rcgen writes EKU non-critical; Annex B wants it critical, so it is a custom extension.
        let mut eku = CustomExtension::from_oid_content(&[2, 5, 29, 37], der_eku(MDL_DS_EKU));
        eku.set_criticality(true);
        p.custom_extensions.push(eku);
        p.custom_extensions.push(CustomExtension::from_oid_content(
            oids::ISSUER_ALT_NAME,
            der_uri_names(points.base()),
        ));
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![points.iaca_crl_url()],
        }];
        let raw = crate::keys::spki_subject_public_key(ds.public_key_spki())?;
        let subject = SubjectKey {
            raw,
            alg: rcgen_alg(ds.algorithm()),
        };
        let issuer = Issuer::new(
            iaca_params(&self.root.authority_name, points),
            &self.root.key,
        );
        let cert = p
            .signed_by(&subject, &issuer)
            .map_err(|e| PkiError::Build(e.to_string()))?;
        Ok(cert.der().to_vec())
    }

    /// The IACA's CRL (revoked document signers), signed by the IACA.
    pub fn crl(
        &self,
        points: &PublicationPoints,
        number: u64,
        this_update: Timestamp,
        next_update: Timestamp,
        revoked: &[(Serial, Timestamp)],
    ) -> Result<Vec<u8>, PkiError> {
        let params = rcgen::CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|(s, at)| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s.as_bytes()),
                    revocation_time: *at,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::new(
            iaca_params(&self.root.authority_name, points),
            &self.root.key,
        );
        params
            .signed_by(&issuer)
            .map(|c| c.der().to_vec())
            .map_err(|e| PkiError::Build(e.to_string()))
    }
}

/// A self-signed P-256 root of the mobile ID (the IACA, the reader CA): the
/// authority's name, the certificate and its key.
struct MdocRoot {
    authority_name: String,
    cert_der: Vec<u8>,
    key: RcgenKey,
}

impl MdocRoot {
    /// Self-signs `params` with `serial`, valid from `now` for [`IACA_YEARS`].
    fn create(
        authority_name: &str,
        mut params: CertificateParams,
        signer: Arc<dyn Signer>,
        serial: &Serial,
        now: Timestamp,
    ) -> Result<Self, PkiError> {
        let key = RcgenKey::new(signer)?;
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = truncate_to_second(now);
        params.not_after = end_of_day_jst(
            now.date()
                .replace_year(now.year() + IACA_YEARS)
                .unwrap_or(now.date()),
        );
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::Build(e.to_string()))?;
        Ok(Self {
            authority_name: authority_name.to_owned(),
            cert_der: cert.der().to_vec(),
            key,
        })
    }

    /// A loaded root, its key checked against its certificate (`what` names
    /// the root in the error).
    fn load(
        authority_name: &str,
        cert_der: Vec<u8>,
        signer: Arc<dyn Signer>,
        what: &str,
    ) -> Result<Self, PkiError> {
        let key = RcgenKey::new(signer)?;
        if crate::csr::certificate_spki(&cert_der)? != key.signer.public_key_spki() {
            return Err(PkiError::BadKey(format!(
                "the key does not match the {what} certificate"
            )));
        }
        Ok(Self {
            authority_name: authority_name.to_owned(),
            cert_der,
            key,
        })
    }
}

/// A mobile-ID root (C=JP, O=authority, CN=authority + `role`): critical
/// basicConstraints CA pathLen 0, keyCertSign+cRLSign, SKI, issuerAltName.
fn mdoc_root_params(
    authority_name: &str,
    role: &str,
    points: &PublicationPoints,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("JP".try_into().unwrap_or_else(|_| unreachable_printable())),
    );
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(authority_name.into()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(format!("{authority_name} {role}")),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.custom_extensions.push(CustomExtension::from_oid_content(
        oids::ISSUER_ALT_NAME,
        der_uri_names(points.base()),
    ));
    p
}

fn iaca_params(authority_name: &str, points: &PublicationPoints) -> CertificateParams {
    let mut p = mdoc_root_params(authority_name, "IACA", points);
    p.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![points.iaca_crl_url()],
    }];
    p
}

fn der_eku(oid: &[u64]) -> Vec<u8> {
    use der::Encode;
    x509_cert::ext::pkix::ExtendedKeyUsage(vec![arcs_to_oid(oid)])
        .to_der()
        .unwrap_or_default()
}

fn der_uri_names(uri: &str) -> Vec<u8> {
    use der::Encode;
    use x509_cert::ext::pkix::name::GeneralName;
    match der::asn1::Ia5String::new(uri) {
        Ok(u) => vec![GeneralName::UniformResourceIdentifier(u)]
            .to_der()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// id-mdl-kp-mdlReaderAuth (ISO/IEC 18013-5 Annex B): extended key usage
/// of an mdoc reader authentication certificate.
pub const MDL_READER_AUTH_EKU: &[u64] = &[1, 0, 18013, 5, 1, 6];

/// Longest life of a reader authentication certificate issued here.
pub const MAX_READER_CERT_DAYS: i64 = 397;

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// Checks that `spki` is a P-256 SubjectPublicKeyInfo (uncompressed point
/// on the curve); returns the SEC1 point.
pub fn p256_spki_point(spki: &[u8]) -> Result<&[u8], PkiError> {
    if spki.first() != Some(&0x30) {
        return Err(PkiError::malformed("public key", "not a DER SEQUENCE"));
    }
    if spki.len() != P256_SPKI_PREFIX.len() + 64 || !spki.starts_with(&P256_SPKI_PREFIX) {
        return Err(PkiError::Unsupported(
            "public key: a P-256 SubjectPublicKeyInfo (uncompressed point) only".into(),
        ));
    }
    let point = &spki[P256_SPKI_PREFIX.len() - 1..];
    aws_lc_rs::agreement::ParsedPublicKey::try_from(aws_lc_rs::agreement::UnparsedPublicKey::new(
        &aws_lc_rs::agreement::ECDH_P256,
        point,
    ))
    .map_err(|_| PkiError::BadKey("the public key is not a point on P-256".into()))?;
    Ok(point)
}

/// The mdoc reader CA (ISO/IEC 18013-5 §9.1.4, Annex B): a self-signed
/// P-256 root like the IACA (critical keyUsage keyCertSign+cRLSign,
/// critical basicConstraints CA pathLen 0) that certifies the readers of
/// registered relying parties for reader authentication.
pub struct ReaderCa {
    root: MdocRoot,
}

impl ReaderCa {
    /// Creates the reader CA (lives [`IACA_YEARS`]).
    pub fn create(
        authority_name: &str,
        points: &PublicationPoints,
        signer: Arc<dyn Signer>,
        serial: &Serial,
        now: Timestamp,
    ) -> Result<Self, PkiError> {
        let root = MdocRoot::create(
            authority_name,
            reader_ca_params(authority_name, points),
            signer,
            serial,
            now,
        )?;
        Ok(Self { root })
    }

    /// Loads the reader CA from its certificate and key.
    pub fn load(
        authority_name: &str,
        cert_der: Vec<u8>,
        signer: Arc<dyn Signer>,
    ) -> Result<Self, PkiError> {
        let root = MdocRoot::load(authority_name, cert_der, signer, "reader CA")?;
        Ok(Self { root })
    }

    /// DER certificate.
    pub fn cert_der(&self) -> &[u8] {
        &self.root.cert_der
    }

    /// Issues a reader authentication certificate for the P-256 key
    /// `reader_spki`: subject C=JP, CN=`common_name`; critical keyUsage
    /// digitalSignature, critical EKU id-mdl-kp-mdlReaderAuth
    /// (1.0.18013.5.1.6), AKI/SKI, not a CA, `days` (1 to
    /// [`MAX_READER_CERT_DAYS`]) from `now`.
    pub fn issue_reader(
        &self,
        points: &PublicationPoints,
        reader_spki: &[u8],
        common_name: &str,
        serial: &Serial,
        now: Timestamp,
        days: i64,
    ) -> Result<Vec<u8>, PkiError> {
        if !(1..=MAX_READER_CERT_DAYS).contains(&days) {
            return Err(PkiError::Build(format!(
                "a reader certificate lives 1 to {MAX_READER_CERT_DAYS} days"
            )));
        }
        if common_name.is_empty() || common_name.len() > 64 {
            return Err(PkiError::Build(
                "a reader's common name has 1 to 64 bytes".into(),
            ));
        }
        let point = p256_spki_point(reader_spki)?;
        if reader_spki == self.root.key.signer.public_key_spki() {
            return Err(PkiError::BadKey(
                "the reader key is the reader CA's own key".into(),
            ));
        }
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        p.not_before = truncate_to_second(now);
        p.not_after = truncate_to_second(now) + Duration::days(days);
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CountryName,
            DnValue::PrintableString("JP".try_into().unwrap_or_else(|_| unreachable_printable())),
        );
        dn.push(
            DnType::CommonName,
            DnValue::Utf8String(common_name.to_owned()),
        );
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut eku =
            CustomExtension::from_oid_content(&[2, 5, 29, 37], der_eku(MDL_READER_AUTH_EKU));
        eku.set_criticality(true);
        p.custom_extensions.push(eku);
        p.custom_extensions.push(CustomExtension::from_oid_content(
            oids::ISSUER_ALT_NAME,
            der_uri_names(points.base()),
        ));
        let subject = SubjectKey {
            raw: point.to_vec(),
            alg: rcgen_alg(SignatureAlgorithm::EcdsaP256Sha256),
        };
        let issuer = Issuer::new(
            reader_ca_params(&self.root.authority_name, points),
            &self.root.key,
        );
        let cert = p
            .signed_by(&subject, &issuer)
            .map_err(|e| PkiError::Build(e.to_string()))?;
        Ok(cert.der().to_vec())
    }
}

impl ReaderCa {
    /// The reader CA's CRL (RFC 5280 v2, ECDSA P-256 with SHA-256): revoked
    /// reader certificates, each with its reasonCode (none for
    /// `unspecified`), cRLNumber `number`, AKI = the CA's SKI, thisUpdate
    /// and nextUpdate (whole seconds). Refused: `next_update <=
    /// this_update`, a serial listed twice.
    pub fn crl(
        &self,
        number: u64,
        this_update: Timestamp,
        next_update: Timestamp,
        revoked: &[crate::crl::RevokedEntry],
    ) -> Result<Vec<u8>, PkiError> {
        let this_update = truncate_to_second(this_update);
        let next_update = truncate_to_second(next_update);
        if next_update <= this_update {
            return Err(PkiError::Build(
                "CRL nextUpdate must lie after thisUpdate".into(),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(revoked.len());
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for e in revoked {
            if !seen.insert(&e.serial) {
                return Err(PkiError::Build(format!(
                    "serial {} is listed twice on the CRL",
                    e.serial
                )));
            }
            revoked_certs.push(rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(e.serial.as_bytes()),
                revocation_time: truncate_to_second(e.at),
                reason_code: match e.reason {
                    shomei_core::RevocationReason::Unspecified => None,
                    r => Some(crate::crl::rcgen_reason(r)),
                },
                invalidity_date: None,
            });
        }
        let key_identifier_method = match crate::crl::subject_key_identifier(&self.root.cert_der)? {
            Some(ski) => KeyIdMethod::PreSpecified(ski),
            None => KeyIdMethod::Sha256,
        };
        let params = rcgen::CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method,
        };
        // Only the issuer's name and key matter for a CRL: the publication
        // points in the params are not written into it.
        let issuer = Issuer::new(
            reader_ca_params(&self.root.authority_name, &PublicationPoints::new("")),
            &self.root.key,
        );
        params
            .signed_by(&issuer)
            .map(|c| c.der().to_vec())
            .map_err(|e| PkiError::Build(format!("CRL: {e}")))
    }
}

fn reader_ca_params(authority_name: &str, points: &PublicationPoints) -> CertificateParams {
    mdoc_root_params(authority_name, "mdoc reader CA", points)
}

#[cfg(test)]
mod iaca_tests {
    use std::process::Command;

    use time::macros::datetime;

    use super::*;
    use crate::EcdsaP256Signer;

    fn text(der: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.der");
        std::fs::write(&p, der).unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn reader_ca_crl_lists_revoked_readers_and_verifies_with_openssl() {
        use shomei_core::RevocationReason;

        use crate::crl::RevokedEntry;
        let now = datetime!(2026-11-21 04:00:00.5 UTC);
        let points = PublicationPoints::new("http://127.0.0.1:8700");
        let ca = ReaderCa::create(
            "Shomei Test",
            &points,
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            &Serial::from_be_bytes(&[0x43, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap(),
            now,
        )
        .unwrap();
        let entry = |b: u8, reason| RevokedEntry {
            serial: Serial::from_be_bytes(&[0x44, b, 1, 1, 1, 1, 1, 1, 1]).unwrap(),
            at: now,
            reason,
        };
        let entries = [
            entry(1, RevocationReason::KeyCompromise),
            entry(2, RevocationReason::Unspecified),
        ];
        let next = now + Duration::hours(24);
        let der = ca.crl(7, now, next, &entries).unwrap();
        let summary = crate::crl::parse_crl_summary(&der).unwrap();
        assert_eq!(summary.crl_number, 7);
        assert_eq!(summary.entries, 2);
        assert_eq!(summary.this_update, datetime!(2026-11-21 04:00:00 UTC));
        assert_eq!(
            summary.next_update,
            Some(datetime!(2026-11-22 04:00:00 UTC))
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("crl.der"), &der).unwrap();
        std::fs::write(dir.path().join("ca.der"), ca.cert_der()).unwrap();
        let ca_pem = Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in", "ca.der", "-out", "ca.pem"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(ca_pem.success());
        let out = Command::new("openssl")
            .args([
                "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem",
            ])
            .args(["-noout", "-text"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.contains("verify OK"), "{text}");
        assert!(text.contains("Key Compromise"), "{text}");
        assert!(text.contains("ecdsa-with-SHA256"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        // Refused: a serial twice, nextUpdate not after thisUpdate.
        let twice = [entries[0].clone(), entries[0].clone()];
        assert!(ca.crl(8, now, next, &twice).is_err());
        assert!(ca.crl(8, now, now, &entries).is_err());
        // An empty CRL is fine.
        assert_eq!(
            crate::crl::parse_crl_summary(&ca.crl(9, now, next, &[]).unwrap())
                .unwrap()
                .entries,
            0
        );
    }

    #[test]
    fn reader_ca_and_reader_certificate() {
        let now = datetime!(2026-11-21 04:00:00 UTC);
        let points = PublicationPoints::new("http://127.0.0.1:8700");
        let ca = ReaderCa::create(
            "Shomei Test",
            &points,
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            &Serial::from_be_bytes(&[0x43, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap(),
            now,
        )
        .unwrap();
        let t = text(ca.cert_der());
        assert!(t.contains("CN = Shomei Test mdoc reader CA"), "{t}");
        assert!(
            t.contains("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"),
            "{t}"
        );
        let reader = EcdsaP256Signer::generate().unwrap();
        let serial = Serial::from_be_bytes(&[0x44, 1, 1, 1, 1, 1, 1, 1, 1]).unwrap();
        let cert = ca
            .issue_reader(
                &points,
                reader.public_key_spki(),
                "shop-1",
                &serial,
                now,
                90,
            )
            .unwrap();
        let t = text(&cert);
        assert!(t.contains("Subject: C = JP, CN = shop-1"), "{t}");
        assert!(
            t.contains("X509v3 Extended Key Usage: critical\n                1.0.18013.5.1.6"),
            "{t}"
        );
        assert!(t.contains("Not After : Feb 19 04:00:00 2027 GMT"), "{t}");
        crate::cms::check_issued_by(&cert, ca.cert_der()).unwrap();
        // Not P-256, the CA's own key, bad lengths: refused.
        let rsa = crate::RsaSigner::generate().unwrap();
        assert!(matches!(
            ca.issue_reader(&points, rsa.public_key_spki(), "x", &serial, now, 90),
            Err(PkiError::Unsupported(_))
        ));
        let mut off_curve = reader.public_key_spki().to_vec();
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        assert!(matches!(
            ca.issue_reader(&points, &off_curve, "x", &serial, now, 90),
            Err(PkiError::BadKey(_))
        ));
        assert!(
            ca.issue_reader(&points, b"junk", "x", &serial, now, 90)
                .is_err()
        );
        assert!(
            ca.issue_reader(&points, reader.public_key_spki(), "x", &serial, now, 0)
                .is_err()
        );
        assert!(
            ca.issue_reader(&points, reader.public_key_spki(), "", &serial, now, 9)
                .is_err()
        );
        let again = ReaderCa::load("Shomei Test", ca.cert_der().to_vec(), Arc::new(reader));
        assert!(again.is_err(), "wrong key");
    }

    #[test]
    fn iaca_and_document_signer_follow_annex_b() {
        let now = datetime!(2026-11-21 04:00:00 UTC);
        let points = PublicationPoints::new("http://127.0.0.1:8700");
        let iaca = Iaca::create(
            "Shomei Test",
            &points,
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            &Serial::from_be_bytes(&[0x41, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap(),
            now,
        )
        .unwrap();
        let t = text(iaca.cert_der());
        assert!(
            t.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"),
            "{t}"
        );
        assert!(
            t.contains("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"),
            "{t}"
        );
        assert!(
            t.contains("X509v3 Issuer Alternative Name") && t.contains("URI:http://127.0.0.1:8700"),
            "{t}"
        );
        assert!(
            t.contains("URI:http://127.0.0.1:8700/crl/iaca.crl") && t.contains("prime256v1"),
            "{t}"
        );
        let ds_key = EcdsaP256Signer::generate().unwrap();
        let ds = iaca
            .issue_document_signer(
                &points,
                &ds_key,
                &Serial::from_be_bytes(&[0x42, 1, 1, 1, 1, 1, 1, 1, 1]).unwrap(),
                now,
                365,
            )
            .unwrap();
        let t = text(&ds);
        assert!(
            t.contains("X509v3 Extended Key Usage: critical\n                1.0.18013.5.1.2"),
            "{t}"
        );
        assert!(
            t.contains("X509v3 Key Usage: critical\n                Digital Signature"),
            "{t}"
        );
        assert!(t.contains("X509v3 Authority Key Identifier"), "{t}");
        assert!(
            iaca.issue_document_signer(
                &points,
                &ds_key,
                &Serial::from_be_bytes(&[1]).unwrap(),
                now,
                500
            )
            .is_err()
        );
        // openssl verifies the DS under the IACA.
        let dir = tempfile::tempdir().unwrap();
        for (n, d) in [("iaca", iaca.cert_der()), ("ds", &ds[..])] {
            std::fs::write(dir.path().join(format!("{n}.der")), d).unwrap();
            let st = Command::new("openssl")
                .args(["x509", "-inform", "DER", "-in"])
                .arg(dir.path().join(format!("{n}.der")))
                .arg("-out")
                .arg(dir.path().join(format!("{n}.pem")))
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = Command::new("openssl")
            .args([
                "verify",
                "-attime",
                "1800000000",
                "-purpose",
                "any",
                "-CAfile",
            ])
            .arg(dir.path().join("iaca.pem"))
            .arg(dir.path().join("ds.pem"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let crl = iaca
            .crl(&points, 1, now, now + Duration::days(1), &[])
            .unwrap();
        std::fs::write(dir.path().join("iaca.crl"), &crl).unwrap();
        let out = Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-CAfile"])
            .arg(dir.path().join("iaca.pem"))
            .arg("-in")
            .arg(dir.path().join("iaca.crl"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("verify OK")
                || String::from_utf8_lossy(&out.stdout).contains("verify OK")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use time::macros::datetime;

    use super::*;
    use crate::RsaSigner;

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);

    fn holder() -> BasicFour {
        BasicFour::new(
            "山田 太郎",
            "東京都千代田区千代田1-1",
            "1990-04-01".parse().unwrap(),
            shomei_core::Sex::Male,
        )
        .unwrap()
    }

    fn root(root: Root) -> RootCa {
        let serial = Serial::from_be_bytes(&[root as u8 + 1]).unwrap();
        RootCa::create(
            root,
            "Shomei Test Authority",
            Arc::new(RsaSigner::generate().unwrap()),
            &serial,
            NOW,
        )
        .unwrap()
    }

    fn issue(ca: &RootCa, class: CertClass) -> Vec<u8> {
        let key = RsaSigner::generate().unwrap();
        let csr = crate::csr::check_csr(&crate::csr::build_csr(&key, "x").unwrap()).unwrap();
        let h = holder();
        let serial = Serial::from_be_bytes(&[0x40, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let req = EndEntityRequest {
            class,
            csr: &csr,
            holder: &h,
            serial: &serial,
            now: NOW,
            not_after: card_not_after(&h, NOW),
            shard: 3,
        };
        issue_end_entity(ca, &PublicationPoints::new("http://127.0.0.1:8700"), &req).unwrap()
    }

    fn openssl_text(der: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.der");
        std::fs::write(&p, der).unwrap();
        let out = Command::new("openssl")
            .args([
                "x509", "-inform", "DER", "-noout", "-text", "-nameopt", "utf8", "-in",
            ])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn signing_certificate_follows_jpki_profile_per_openssl() {
        let ca = root(Root::Sign);
        let text = openssl_text(&issue(&ca, CertClass::CardSign));
        assert!(
            text.contains(
                "X509v3 Key Usage: critical\n                Digital Signature, Non Repudiation"
            ),
            "{text}"
        );
        assert!(
            text.contains("X509v3 Certificate Policies: critical"),
            "{text}"
        );
        assert!(text.contains("1.2.392.200149.8.5.1.1.20"));
        assert!(text.contains("URI:http://127.0.0.1:8700/crl/card-sign/3.crl"));
        assert!(text.contains("OCSP - URI:http://127.0.0.1:8700/ocsp/sign"));
        assert!(
            text.contains("Not After : Apr  1 14:59:59 2031 GMT"),
            "{text}"
        );
        assert!(text.contains("sha256WithRSAEncryption"));
        assert!(text.contains("Public-Key: (2048 bit)"));
        // otherName values are printed by OpenSSL 3 as "othername: 1.2.392…::<value>"
        for v in ["山田\u{3000}太郎", "419900401", "東京都千代田区千代田1-1"] {
            assert!(text.contains(v), "missing {v} in {text}");
        }
        let root_text = openssl_text(ca.cert_der());
        assert!(
            root_text.contains("OU=Shomei for digital signature"),
            "{root_text}"
        );
        assert!(root_text.contains("CA:TRUE") && root_text.contains("Certificate Sign, CRL Sign"));
    }

    #[test]
    fn authentication_certificate_has_no_personal_data() {
        let ca = root(Root::Auth);
        let der = issue(&ca, CertClass::CardAuth);
        let text = openssl_text(&der);
        assert!(
            text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"),
            "{text}"
        );
        for v in ["山田", "太郎", "東京", "19900401", "othername"] {
            assert!(!text.contains(v), "{v} leaked into {text}");
        }
        // Not even as raw bytes anywhere in the DER.
        assert!(!der.windows("山田".len()).any(|w| w == "山田".as_bytes()));
    }

    #[test]
    fn openssl_verifies_the_chain() {
        let ca = root(Root::Sign);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.der"), ca.cert_der()).unwrap();
        std::fs::write(dir.path().join("ee.der"), issue(&ca, CertClass::CardSign)).unwrap();
        for f in ["ca", "ee"] {
            let st = Command::new("openssl")
                .args(["x509", "-inform", "DER", "-in"])
                .arg(dir.path().join(format!("{f}.der")))
                .arg("-out")
                .arg(dir.path().join(format!("{f}.pem")))
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = Command::new("openssl")
            .args(["verify", "-attime", "1800000000", "-CAfile"])
            .arg(dir.path().join("ca.pem"))
            .arg(dir.path().join("ee.pem"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn class_must_match_root() {
        let ca = root(Root::Auth);
        let key = RsaSigner::generate().unwrap();
        let csr = crate::csr::check_csr(&crate::csr::build_csr(&key, "x").unwrap()).unwrap();
        let h = holder();
        let serial = Serial::from_be_bytes(&[9]).unwrap();
        let req = EndEntityRequest {
            class: CertClass::CardSign,
            csr: &csr,
            holder: &h,
            serial: &serial,
            now: NOW,
            not_after: card_not_after(&h, NOW),
            shard: 0,
        };
        assert!(issue_end_entity(&ca, &PublicationPoints::new("http://x"), &req).is_err());
    }

    #[test]
    fn loaded_root_must_match_its_key() {
        let ca = root(Root::Sign);
        let other: Arc<dyn Signer> = Arc::new(RsaSigner::generate().unwrap());
        assert!(
            RootCa::load(
                Root::Sign,
                "Shomei Test Authority",
                ca.cert_der().to_vec(),
                other
            )
            .is_err()
        );
        assert!(
            RootCa::load(
                Root::Sign,
                "Shomei Test Authority",
                ca.cert_der().to_vec(),
                ca.signer().clone()
            )
            .is_ok()
        );
    }
}
