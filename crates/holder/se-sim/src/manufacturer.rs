//! The simulated manufacturer: its root CA, the per-device attestation
//! identity made at "manufacture" time, and the key attestation certificates
//! each device issues.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use shomei_core::{Signer as _, Timestamp};
use shomei_pki::EcdsaP256Signer;
use shomei_pki::profile::RcgenKey;
use shomei_secure_element::attestation::{DEVICE_ID_ARCS, KEY_DESCRIPTION_ARCS, device_id_der};
use shomei_secure_element::{DeviceId, KeyDescription, KeyKind, SeError};
use time::Duration;
use zeroize::Zeroizing;

use crate::device::{FileDeviceRoot, FusedIdentity, SEALING_KEY_LEN};
use crate::storage::{FileStore, io_error, write_atomic};
use crate::{DEVICE_FILE, SEALED_FILE, SimOptions, SimSecureElement};

/// The manufacturer root's private key file (PKCS#8 DER, mode 0600).
pub const ROOT_KEY_FILE: &str = "manufacturer-root.key";
/// The manufacturer root's certificate file (DER): what the authority trusts.
pub const ROOT_CERT_FILE: &str = "manufacturer-root.der";
/// The manufacturer root's common name.
pub const MANUFACTURER_ROOT_CN: &str = "Shomei Simulated SE Manufacturer Root";
const ORGANIZATION: &str = "Shomei Simulated SE";
const ROOT_YEARS: i64 = 20;
/// The published development root (see [`SimManufacturer::development`]).
const DEV_ROOT_KEY: &[u8] = include_bytes!("../dev/manufacturer-root.key");
const DEV_ROOT_CERT: &[u8] = include_bytes!("../dev/manufacturer-root.der");
const DEVICE_YEARS: i64 = 15;

/// The simulated secure element manufacturer: a self-signed P-256 root
/// ("Shomei Simulated SE Manufacturer Root", CA, pathLen 1, 20 years) that
/// certifies each device's attestation key at manufacture time.
pub struct SimManufacturer {
    key: RcgenKey,
    pkcs8: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
}

impl SimManufacturer {
    /// A new manufacturer in memory (root valid from `now`).
    pub fn generate(now: Timestamp) -> Result<Self, SeError> {
        let signer = EcdsaP256Signer::generate().map_err(crypto)?;
        let pkcs8 = signer.to_pkcs8().map_err(crypto)?;
        let key = RcgenKey::new(Arc::new(signer)).map_err(crypto)?;
        let mut params = root_params();
        params.serial_number = Some(random_serial()?);
        params.not_before = second(now);
        params.not_after = second(now) + Duration::days(365 * ROOT_YEARS);
        let cert = params.self_signed(&key).map_err(crypto)?;
        Ok(Self {
            key,
            pkcs8,
            cert_der: cert.der().to_vec(),
        })
    }

    /// A new manufacturer whose root key and certificate are written to
    /// `dir` ([`ROOT_KEY_FILE`], [`ROOT_CERT_FILE`]); fails if they exist.
    pub fn create(dir: &Path, now: Timestamp) -> Result<Self, SeError> {
        let (key_path, cert_path) = (dir.join(ROOT_KEY_FILE), dir.join(ROOT_CERT_FILE));
        for p in [&key_path, &cert_path] {
            if p.try_exists().map_err(|e| io_error("inspect", p, &e))? {
                return Err(SeError::AlreadyProvisioned);
            }
        }
        let m = Self::generate(now)?;
        write_atomic(&key_path, &m.pkcs8)?;
        write_atomic(&cert_path, &m.cert_der)?;
        Ok(m)
    }

    /// Loads the manufacturer from `dir`.
    pub fn load(dir: &Path) -> Result<Self, SeError> {
        let (key_path, cert_path) = (dir.join(ROOT_KEY_FILE), dir.join(ROOT_CERT_FILE));
        let pkcs8 = std::fs::read(&key_path).map_err(|e| io_error("read", &key_path, &e))?;
        let cert_der = std::fs::read(&cert_path).map_err(|e| io_error("read", &cert_path, &e))?;
        Self::from_parts(pkcs8, cert_der)
    }

    /// A manufacturer from its root key (PKCS#8) and certificate (DER),
    /// which must match.
    fn from_parts(pkcs8: Vec<u8>, cert_der: Vec<u8>) -> Result<Self, SeError> {
        let pkcs8 = Zeroizing::new(pkcs8);
        let signer = EcdsaP256Signer::from_pkcs8(&pkcs8).map_err(crypto)?;
        if shomei_pki::csr::certificate_spki(&cert_der).map_err(crypto)? != signer.public_key_spki()
        {
            return Err(SeError::Crypto(
                "the manufacturer key does not match its certificate".into(),
            ));
        }
        Ok(Self {
            key: RcgenKey::new(Arc::new(signer)).map_err(crypto)?,
            pkcs8,
            cert_der,
        })
    }

    /// The **development** manufacturer: a fixed root whose private key is
    /// published in this repository (`crates/holder/se-sim/dev/`), like the
    /// software attestation root of Android's emulator. It lets a fresh
    /// `authority init` + `phone provision` work with no key exchange, and
    /// it proves nothing: anyone can forge its attestations. A production
    /// authority is initialised without it (`authority init
    /// --no-development-manufacturer`). Regenerate with
    /// `cargo test -p shomei-se-sim -- --ignored regenerate_development_manufacturer`.
    pub fn development() -> Result<Self, SeError> {
        Self::from_parts(DEV_ROOT_KEY.to_vec(), DEV_ROOT_CERT.to_vec())
    }

    /// The development root certificate (DER), without loading its key.
    pub fn development_root_der() -> &'static [u8] {
        DEV_ROOT_CERT
    }

    /// The root certificate (DER), for the authority's trust list.
    pub fn root_cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Makes one device's hardware: a random device id and sealing key, a
    /// P-256 attestation key, and its certificate (CA, pathLen 0, carrying
    /// the device id extension, valid 15 years from `now` but never past
    /// the root).
    pub fn new_device(&self, now: Timestamp) -> Result<FusedIdentity, SeError> {
        let mut id = [0u8; 16];
        random(&mut id)?;
        let device_id = DeviceId::from_bytes(id);
        let mut sealing_key = Zeroizing::new([0u8; SEALING_KEY_LEN]);
        random(sealing_key.as_mut_slice())?;
        let signer = EcdsaP256Signer::generate().map_err(crypto)?;
        let attestation_key = signer.to_pkcs8().map_err(crypto)?;
        let subject = RcgenKey::new(Arc::new(signer)).map_err(crypto)?;

        let root_not_after = validity(&self.cert_der)?.1;
        let mut params = device_params(&device_id)?;
        params.serial_number = Some(random_serial()?);
        params.not_before = second(now);
        params.not_after = (second(now) + Duration::days(365 * DEVICE_YEARS)).min(root_not_after);
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::new(root_params(), &self.key);
        let cert = params.signed_by(&subject, &issuer).map_err(crypto)?;
        Ok(FusedIdentity::new(
            device_id,
            sealing_key,
            attestation_key,
            cert.der().to_vec(),
            self.cert_der.clone(),
        ))
    }

    /// Manufactures a device in `dir`: its hardware file ([`DEVICE_FILE`])
    /// and its provisioned, empty sealed storage ([`SEALED_FILE`]), held
    /// exclusively by the returned element. Fails if either exists.
    pub fn manufacture_device(
        &self,
        dir: &Path,
        now: Timestamp,
    ) -> Result<SimSecureElement, SeError> {
        let sealed = dir.join(SEALED_FILE);
        if sealed
            .try_exists()
            .map_err(|e| io_error("inspect", &sealed, &e))?
        {
            return Err(SeError::AlreadyProvisioned);
        }
        let store = FileStore::exclusive(sealed)?;
        let root = FileDeviceRoot::create(dir.join(DEVICE_FILE), self.new_device(now)?)?;
        SimSecureElement::provision(store, root, SimOptions::default())
    }
}

/// A device's attestation CA, loaded from its fused identity.
pub(crate) struct DeviceCa {
    device_id: DeviceId,
    key: RcgenKey,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl DeviceCa {
    /// Loads the attestation key and checks it matches the device certificate.
    pub(crate) fn load(identity: &FusedIdentity) -> Result<Self, SeError> {
        let signer = EcdsaP256Signer::from_pkcs8(identity.attestation_key()).map_err(crypto)?;
        if shomei_pki::csr::certificate_spki(identity.device_cert()).map_err(crypto)?
            != signer.public_key_spki()
        {
            return Err(SeError::Crypto(
                "the device attestation key does not match its certificate".into(),
            ));
        }
        let (not_before, not_after) = validity(identity.device_cert())?;
        Ok(Self {
            device_id: identity.device_id(),
            key: RcgenKey::new(Arc::new(signer)).map_err(crypto)?,
            not_before,
            not_after,
        })
    }

    /// The key attestation certificate for `spki`: issued by the device
    /// attestation key, subject key = the attested key, not a CA,
    /// digitalSignature, the key description extension (non-critical), and
    /// the device certificate's validity (the element has no wall clock;
    /// freshness comes from the challenge).
    pub(crate) fn certify_key(
        &self,
        spki: &[u8],
        description: &KeyDescription,
    ) -> Result<Vec<u8>, SeError> {
        let mut p = CertificateParams::default();
        p.serial_number = Some(random_serial()?);
        p.not_before = self.not_before;
        p.not_after = self.not_after;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, country_jp());
        dn.push(
            DnType::OrganizationName,
            DnValue::Utf8String(ORGANIZATION.into()),
        );
        dn.push(
            DnType::CommonName,
            DnValue::Utf8String("Shomei SE attested key".into()),
        );
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.custom_extensions.push(CustomExtension::from_oid_content(
            KEY_DESCRIPTION_ARCS,
            description.to_der().map_err(crypto)?,
        ));
        let subject = AttestedKey {
            raw: shomei_pki::keys::spki_subject_public_key(spki).map_err(crypto)?,
            alg: match description.kind {
                KeyKind::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
                _ => &rcgen::PKCS_RSA_SHA256,
            },
        };
        let issuer = Issuer::new(device_params(&self.device_id)?, &self.key);
        p.signed_by(&subject, &issuer)
            .map(|c| c.der().to_vec())
            .map_err(crypto)
    }
}

/// The attested key as rcgen's subject key (public part only).
struct AttestedKey {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl PublicKeyData for AttestedKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// The root's fixed parameters (rebuilt identically for issuing).
fn root_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, country_jp());
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(ORGANIZATION.into()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(MANUFACTURER_ROOT_CN.into()),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

/// A device CA's fixed parameters (rebuilt identically for issuing).
fn device_params(device_id: &DeviceId) -> Result<CertificateParams, SeError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, country_jp());
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(ORGANIZATION.into()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(format!("Shomei Simulated SE device {device_id}")),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.custom_extensions.push(CustomExtension::from_oid_content(
        DEVICE_ID_ARCS,
        device_id_der(device_id).map_err(crypto)?,
    ));
    Ok(p)
}

/// (notBefore, notAfter) of a certificate.
fn validity(cert_der: &[u8]) -> Result<(Timestamp, Timestamp), SeError> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| SeError::Crypto(format!("cannot read certificate: {e}")))?;
    let v = &cert.tbs_certificate.validity;
    let ts = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs())
            .ok()
            .and_then(|s| Timestamp::from_unix_timestamp(s).ok())
            .ok_or_else(|| SeError::Crypto("certificate time out of range".into()))
    };
    Ok((ts(v.not_before)?, ts(v.not_after)?))
}

/// `C=JP` as a PrintableString (as X.520 wants for countryName).
fn country_jp() -> DnValue {
    rcgen::string::PrintableString::try_from("JP")
        .map(DnValue::PrintableString)
        .unwrap_or_else(|_| DnValue::Utf8String("JP".into()))
}

fn second(t: Timestamp) -> Timestamp {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// A positive, non-sequential 16-byte serial.
fn random_serial() -> Result<SerialNumber, SeError> {
    let mut s = [0u8; 16];
    random(&mut s)?;
    s[0] = (s[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&s))
}

fn random(buf: &mut [u8]) -> Result<(), SeError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| SeError::Crypto("random source failed".into()))
}

fn crypto(e: impl core::fmt::Display) -> SeError {
    SeError::Crypto(e.to_string())
}
