//! Path validation of a JPKI end-entity certificate to the right root set.
//!
//! JPKI is one tier deep (end entities are issued directly by the
//! self-signed root), so "path building" is finding the root of the right
//! set whose subject is the certificate's issuer and whose key made its
//! signature. This is written here rather than with rustls-webpki because
//! the JPKI profile needs what webpki does not offer: a critical
//! certificatePolicies extension (which webpki rejects as an unknown
//! critical extension), policy-based card/phone classification, and the
//! basic four read from otherName SANs.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280;
use der::Decode;
use shomei_core::{BasicFour, BirthDate, Serial, Sex, Timestamp};
use shomei_pki::cms::CertView;
use shomei_pki::oids;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, KeyUsage, KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};

use crate::VerifyError;
use crate::trust::{Anchor, RootSource, TrustStore};

/// Largest certificate accepted (bytes); JPKI certificates are under 2 KiB.
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// What a certificate is offered for; each purpose has its own root set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Signatures (署名用電子証明書): the signing roots.
    Signing,
    /// Logins (利用者証明用電子証明書): the authentication roots.
    Authentication,
}

impl Purpose {
    /// `"signing"` / `"authentication"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Authentication => "authentication",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Signing => Self::Authentication,
            Self::Authentication => Self::Signing,
        }
    }
}

/// Where the key lives: the card's chip or a phone's secure element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    /// A My Number Card.
    Card,
    /// A phone (スマホ用電子証明書).
    Phone,
}

impl Medium {
    /// `"card"` / `"phone"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Phone => "phone",
        }
    }
}

/// Proof that a certificate chains to a trusted root of the right set, is
/// inside its validity at the given time, and fits the JPKI profile for
/// its purpose (key usage, policy, end entity, no unknown critical
/// extension). Only [`validate`] makes one. Revocation is the next step
/// ([`crate::revocation`]).
#[derive(Clone, Debug)]
pub struct ValidatedCert {
    pub(crate) der: Vec<u8>,
    pub(crate) anchor: Anchor,
    pub(crate) serial: Serial,
    pub(crate) purpose: Purpose,
    pub(crate) medium: Medium,
    pub(crate) spki: Vec<u8>,
    pub(crate) not_after: Timestamp,
    pub(crate) basic_four: Option<BasicFour>,
    pub(crate) ocsp_url: Option<String>,
    pub(crate) crl_urls: Vec<String>,
}

impl ValidatedCert {
    /// The certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The issuing root (DER).
    pub fn issuer_der(&self) -> &[u8] {
        &self.anchor.der
    }

    /// Who runs the root.
    pub fn source(&self) -> RootSource {
        self.anchor.source
    }

    /// The serial (発行番号).
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// Signing or authentication.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// Card or phone (from the certificate policy).
    pub fn medium(&self) -> Medium {
        self.medium
    }

    /// The subject public key (DER SPKI).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// notAfter.
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    /// The basic four (signing certificates only).
    pub fn basic_four(&self) -> Option<&BasicFour> {
        self.basic_four.as_ref()
    }

    /// The OCSP responder URL from Authority Information Access, if any.
    pub fn ocsp_url(&self) -> Option<&str> {
        self.ocsp_url.as_deref()
    }

    /// The HTTP CRL distribution point URLs (real JPKI writes directory
    /// names instead, so there are none).
    pub fn crl_urls(&self) -> &[String] {
        &self.crl_urls
    }

    /// Re-checks the validity period at another time (for cached proofs).
    pub fn still_valid(&self, now: Timestamp) -> Result<(), VerifyError> {
        if now > self.not_after {
            return Err(VerifyError::Expired {
                not_after: rfc3339(self.not_after),
            });
        }
        if now > self.anchor.not_after {
            return Err(VerifyError::RootExpired);
        }
        Ok(())
    }
}

/// Validates `cert_der` for `purpose` against `store` at `now`.
pub fn validate(
    store: &TrustStore,
    cert_der: &[u8],
    purpose: Purpose,
    now: Timestamp,
) -> Result<ValidatedCert, VerifyError> {
    if cert_der.len() > MAX_CERT_LEN {
        return Err(VerifyError::malformed("certificate", "longer than 16 KiB"));
    }
    let view = CertView::parse(cert_der).map_err(|e| VerifyError::from_pki("certificate", e))?;

    // The issuer: a root of the wanted set with the same name (and, when
    // both carry key identifiers, the key the certificate names: another
    // authority's root of the same name is not its issuer, as OpenSSL
    // matches issuers) whose key made the signature. A match in the other
    // set is named as such.
    let aki = key_id(&view.extensions, rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER);
    let named: Vec<&Anchor> = store
        .anchors(purpose)
        .iter()
        .filter(|a| a.may_have_issued(&view.issuer, aki.as_deref()))
        .collect();
    if named.is_empty() {
        let other = store.anchors(purpose.other()).iter().any(|a| {
            a.may_have_issued(&view.issuer, aki.as_deref()) && verify_by(&view, a).is_ok()
        });
        return Err(if other {
            VerifyError::WrongPurpose {
                wanted: purpose.as_str(),
            }
        } else {
            VerifyError::UnknownRoot
        });
    }
    let anchor = named
        .into_iter()
        .find(|a| verify_by(&view, a).is_ok())
        .ok_or(VerifyError::BadSignature {
            what: "certificate",
        })?;
    let not_before = asn1_time(view.not_before)?;
    let not_after = asn1_time(view.not_after)?;
    if now < not_before {
        return Err(VerifyError::NotYetValid {
            not_before: rfc3339(not_before),
        });
    }
    if now > not_after {
        return Err(VerifyError::Expired {
            not_after: rfc3339(not_after),
        });
    }
    if now < anchor.not_before || now > anchor.not_after {
        return Err(VerifyError::RootExpired);
    }

    let ext = Extensions::read(&view.extensions)?;
    if ext.is_ca {
        return Err(VerifyError::NotEndEntity);
    }
    let ku = ext
        .key_usage
        .ok_or(VerifyError::KeyUsage("no keyUsage extension"))?;
    match purpose {
        Purpose::Signing => {
            if !ku.0.contains(KeyUsages::DigitalSignature)
                || !ku.0.contains(KeyUsages::NonRepudiation)
            {
                return Err(VerifyError::KeyUsage(
                    "a signing certificate needs digitalSignature and nonRepudiation",
                ));
            }
        }
        Purpose::Authentication => {
            if !ku.0.contains(KeyUsages::DigitalSignature) {
                return Err(VerifyError::KeyUsage(
                    "an authentication certificate needs digitalSignature",
                ));
            }
            if ku.0.contains(KeyUsages::NonRepudiation) {
                return Err(VerifyError::KeyUsage(
                    "an authentication certificate must not carry nonRepudiation",
                ));
            }
        }
    }
    let medium = policy_medium(&ext.policies, purpose, anchor.source)?;
    let basic_four = match purpose {
        Purpose::Signing => Some(basic_four(&ext.other_names)?),
        Purpose::Authentication => None,
    };
    let serial =
        x509_cert::serial_number::SerialNumber::<x509_cert::certificate::Rfc5280>::from_der(
            &view.serial,
        )
        .ok()
        .and_then(|s| Serial::from_be_bytes(s.as_bytes()).ok())
        .ok_or_else(|| VerifyError::malformed("certificate", "serial number out of range"))?;
    Ok(ValidatedCert {
        der: cert_der.to_vec(),
        anchor: anchor.clone(),
        serial,
        purpose,
        medium,
        spki: view.spki.clone(),
        not_after,
        basic_four,
        ocsp_url: ext.ocsp_url,
        crl_urls: ext.crl_urls,
    })
}

fn verify_by(view: &CertView<'_>, anchor: &Anchor) -> Result<(), VerifyError> {
    shomei_pki::cms::verify_signature(
        &anchor.spki,
        view.sig_alg,
        &view.tbs,
        view.signature,
        "certificate",
    )
    .map_err(|e| VerifyError::from_pki("certificate", e))
}

/// The extensions the profile looks at.
#[derive(Default)]
struct Extensions {
    is_ca: bool,
    key_usage: Option<KeyUsage>,
    policies: Vec<ObjectIdentifier>,
    other_names: Vec<(ObjectIdentifier, String)>,
    ocsp_url: Option<String>,
    crl_urls: Vec<String>,
}

impl Extensions {
    fn read(list: &[x509_cert::ext::Extension]) -> Result<Self, VerifyError> {
        let bad = |e: der::Error| VerifyError::malformed("certificate extension", e);
        let mut out = Self::default();
        for e in list {
            let value = e.extn_value.as_bytes();
            match e.extn_id {
                rfc5280::ID_CE_BASIC_CONSTRAINTS => {
                    out.is_ca = BasicConstraints::from_der(value).map_err(bad)?.ca;
                }
                rfc5280::ID_CE_KEY_USAGE => {
                    out.key_usage = Some(KeyUsage::from_der(value).map_err(bad)?);
                }
                rfc5280::ID_CE_CERTIFICATE_POLICIES => {
                    out.policies = CertificatePolicies::from_der(value)
                        .map_err(bad)?
                        .0
                        .into_iter()
                        .map(|p| p.policy_identifier)
                        .collect();
                }
                rfc5280::ID_CE_SUBJECT_ALT_NAME => {
                    for name in SubjectAltName::from_der(value).map_err(bad)?.0 {
                        if let GeneralName::OtherName(o) = name {
                            let text = o
                                .value
                                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                                .map_err(bad)?;
                            out.other_names.push((o.type_id, text.as_str().to_owned()));
                        }
                    }
                }
                rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS => {
                    for dp in CrlDistributionPoints::from_der(value).map_err(bad)?.0 {
                        if let Some(DistributionPointName::FullName(names)) = dp.distribution_point
                        {
                            out.crl_urls.extend(names.into_iter().filter_map(uri));
                        }
                    }
                }
                rfc5280::ID_PE_AUTHORITY_INFO_ACCESS => {
                    out.ocsp_url = AuthorityInfoAccessSyntax::from_der(value)
                        .map_err(bad)?
                        .0
                        .into_iter()
                        .filter(|a| a.access_method == rfc5280::ID_AD_OCSP)
                        .find_map(|a| uri(a.access_location));
                }
                rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER
                | rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER
                | rfc5280::ID_CE_ISSUER_ALT_NAME
                | rfc5280::ID_CE_EXT_KEY_USAGE => {}
                other if e.critical => {
                    return Err(VerifyError::UnknownCriticalExtension(other.to_string()));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The key identifier of an Authority (or Subject) Key Identifier
/// extension, if present and readable (only used to tell issuers apart;
/// an unreadable one counts as absent).
pub(crate) fn key_id(
    exts: &[x509_cert::ext::Extension],
    which: ObjectIdentifier,
) -> Option<Vec<u8>> {
    let e = exts.iter().find(|e| e.extn_id == which)?;
    let value = e.extn_value.as_bytes();
    if which == rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER {
        AuthorityKeyIdentifier::from_der(value)
            .ok()?
            .key_identifier
            .map(|k| k.as_bytes().to_vec())
    } else {
        SubjectKeyIdentifier::from_der(value)
            .ok()
            .map(|k| k.0.as_bytes().to_vec())
    }
}

fn uri(name: GeneralName) -> Option<String> {
    match name {
        GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
        _ => None,
    }
}

fn oid(arcs: &[u64]) -> Option<ObjectIdentifier> {
    let text = arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    ObjectIdentifier::new(&text).ok()
}

/// Card or phone, from the JPKI policy for the purpose. Phone policies are
/// Shōmei's (real JPKI's mobile policy OIDs are not public), so a JPKI
/// root only vouches for card policies.
fn policy_medium(
    policies: &[ObjectIdentifier],
    purpose: Purpose,
    source: RootSource,
) -> Result<Medium, VerifyError> {
    let table: [(&[u64], Medium); 2] = match purpose {
        Purpose::Signing => [
            (oids::POLICY_SIGN, Medium::Card),
            (oids::POLICY_PHONE_SIGN, Medium::Phone),
        ],
        Purpose::Authentication => [
            (oids::POLICY_AUTH, Medium::Card),
            (oids::POLICY_PHONE_AUTH, Medium::Phone),
        ],
    };
    for (arcs, medium) in table {
        if medium == Medium::Phone && source == RootSource::Jpki {
            continue;
        }
        if oid(arcs).is_some_and(|o| policies.contains(&o)) {
            return Ok(medium);
        }
    }
    Err(VerifyError::Policy)
}

/// The basic four from the JPKI personal-data otherNames.
fn basic_four(names: &[(ObjectIdentifier, String)]) -> Result<BasicFour, VerifyError> {
    let get = |o: ObjectIdentifier, what: &'static str| {
        names
            .iter()
            .find(|(t, _)| *t == o)
            .map(|(_, v)| v.as_str())
            .ok_or(VerifyError::NoBasicFour(what))
    };
    let name = get(oids::PD_COMMON_NAME_OID, "no name")?;
    let address = get(oids::PD_ADDRESS_OID, "no address")?;
    let birth = BirthDate::from_jpki_encoding(get(oids::PD_DATE_OF_BIRTH_OID, "no birth date")?)
        .map_err(|_| VerifyError::NoBasicFour("the birth date is not EYYYYMMDD"))?;
    let sex = get(oids::PD_GENDER_OID, "no sex")?
        .parse::<u8>()
        .ok()
        .and_then(|c| Sex::from_code(c).ok())
        .ok_or(VerifyError::NoBasicFour("the sex code is not 1, 2 or 3"))?;
    BasicFour::new(name, address, birth, sex)
        .map_err(|_| VerifyError::NoBasicFour("name or address out of the profile"))
}

/// An X.509 time as a timestamp.
pub(crate) fn asn1_time(t: x509_cert::time::Time) -> Result<Timestamp, VerifyError> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| VerifyError::malformed("time", "out of range"))?;
    Timestamp::from_unix_timestamp(secs).map_err(|e| VerifyError::malformed("time", e))
}

/// RFC 3339 text of a timestamp (for messages).
pub(crate) fn rfc3339(t: Timestamp) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
