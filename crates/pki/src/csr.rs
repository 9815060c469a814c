//! PKCS#10 certificate requests: parse, check the profile's key rules and
//! the proof of possession, and hand back a [`CheckedCsr`] proof value.

use der::{Decode, Encode};
use x509_cert::request::CertReq;

use crate::PkiError;

/// A CSR whose self-signature verified and whose key is RSA-2048 with
/// e = 65537. Only [`check_csr`] makes one, so issuance cannot skip the check.
#[derive(Clone, Debug)]
pub struct CheckedCsr {
    spki: Vec<u8>,
}

impl CheckedCsr {
    /// DER SubjectPublicKeyInfo of the requested key.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }
}

/// Largest CSR accepted (bytes); a 2048-bit request is under 1 KiB.
pub const MAX_CSR_LEN: usize = 16 * 1024;

/// Parses and checks a DER PKCS#10 request.
pub fn check_csr(der: &[u8]) -> Result<CheckedCsr, PkiError> {
    if der.len() > MAX_CSR_LEN {
        return Err(PkiError::malformed("CSR", "longer than 16 KiB"));
    }
    let req = CertReq::from_der(der).map_err(|e| PkiError::malformed("CSR", e))?;
    let spki = req
        .info
        .public_key
        .to_der()
        .map_err(|e| PkiError::malformed("CSR", e))?;
    let tbs = req
        .info
        .to_der()
        .map_err(|e| PkiError::malformed("CSR", e))?;
    // DER is canonical: the re-encoded info must be the bytes that were signed.
    if !contains(der, &tbs) {
        return Err(PkiError::malformed("CSR", "not DER-encoded"));
    }
    if req.algorithm.oid != const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
        return Err(PkiError::Unsupported(
            "CSR must be signed with sha256WithRSAEncryption".into(),
        ));
    }
    check_rsa_2048(&spki)?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| PkiError::malformed("CSR", "signature has unused bits"))?;
    verify_rsa_sha256(&spki, &tbs, sig).map_err(|_| PkiError::BadSignature { what: "CSR" })?;
    Ok(CheckedCsr { spki })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Refuses anything but an RSA key with a 2048-bit modulus and e = 65537.
pub fn check_rsa_2048(spki: &[u8]) -> Result<(), PkiError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki)
        .map_err(|e| PkiError::malformed("public key", e))?;
    if info.algorithm.oid != const_oid::db::rfc5912::RSA_ENCRYPTION {
        return Err(PkiError::BadKey("key must be RSA".into()));
    }
    let bits = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| PkiError::BadKey("bad key bits".into()))?;
    let key = RsaPublicKey::from_der(bits).map_err(|e| PkiError::malformed("RSA public key", e))?;
    let modulus = key.modulus.as_bytes();
    if modulus.len() != 256 || modulus[0] & 0x80 == 0 {
        return Err(PkiError::BadKey("RSA modulus must be 2048 bits".into()));
    }
    if key.public_exponent.as_bytes() != [0x01, 0x00, 0x01] {
        return Err(PkiError::BadKey("RSA public exponent must be 65537".into()));
    }
    Ok(())
}

/// RFC 8017 RSAPublicKey.
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

/// Verifies an RSA PKCS#1 v1.5 SHA-256 signature with a DER SPKI.
pub fn verify_rsa_sha256(spki: &[u8], message: &[u8], signature: &[u8]) -> Result<(), PkiError> {
    let raw = crate::keys::spki_subject_public_key(spki)?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        raw,
    )
    .verify(message, signature)
    .map_err(|_| PkiError::BadSignature { what: "RSA" })
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn certificate_spki(cert_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| PkiError::malformed("certificate", e))?;
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| PkiError::malformed("certificate", e))
}

/// Builds a PKCS#10 request for `signer`'s key (subject `CN=<cn>`), signed by
/// the signer itself: how a card or a phone asks for a certificate.
pub fn build_csr(signer: &dyn shomei_core::Signer, cn: &str) -> Result<Vec<u8>, PkiError> {
    use std::str::FromStr;
    use x509_cert::request::CertReqInfo;
    let subject = x509_cert::name::Name::from_str(&format!("CN={cn}"))
        .map_err(|e| PkiError::Build(e.to_string()))?;
    let public_key = spki::SubjectPublicKeyInfoOwned::from_der(signer.public_key_spki())
        .map_err(|e| PkiError::malformed("public key", e))?;
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject,
        public_key,
        attributes: Default::default(),
    };
    let tbs = info.to_der().map_err(|e| PkiError::Build(e.to_string()))?;
    let sig = signer.sign(&tbs)?;
    let req = CertReq {
        info,
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        signature: der::asn1::BitString::from_bytes(&sig)
            .map_err(|e| PkiError::Build(e.to_string()))?,
    };
    req.to_der().map_err(|e| PkiError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RsaSigner;

    #[test]
    fn built_csr_checks_and_tampered_one_does_not() {
        let key = RsaSigner::generate().unwrap();
        let csr = build_csr(&key, "card").unwrap();
        let checked = check_csr(&csr).unwrap();
        assert_eq!(checked.spki(), shomei_core::Signer::public_key_spki(&key));
        let mut bad = csr.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert_eq!(
            check_csr(&bad).unwrap_err(),
            PkiError::BadSignature { what: "CSR" }
        );
        assert!(matches!(
            check_csr(&csr[..10]),
            Err(PkiError::Malformed { .. })
        ));
        assert!(matches!(check_csr(b""), Err(PkiError::Malformed { .. })));
    }

    #[test]
    fn non_rsa_keys_are_refused() {
        let key = crate::EcdsaP256Signer::generate().unwrap();
        assert!(matches!(
            check_rsa_2048(shomei_core::Signer::public_key_spki(&key)),
            Err(PkiError::BadKey(_))
        ));
    }
}
