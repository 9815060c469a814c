//! ES256 JSON Web Tokens (RFC 7515/7519) signed through a [`Signer`], and
//! the matching JWK (RFC 7517) with its RFC 7638 thumbprint as `kid`.
//!
//! Written here because JWT crates want the private key itself; ours stays
//! behind the `Signer` trait (the key never leaves it). JWS compact
//! serialisation is three base64url parts, and ES256 wants the raw r‖s
//! form, converted from the DER signature the signer returns.

use std::sync::Arc;

use der::Decode;
use serde_json::{Value, json};
use shomei_core::{SignatureAlgorithm, Signer};

use crate::ServiceError;
use crate::online::{b64url, sha256};

/// An ES256 token signer.
pub struct JwtSigner {
    signer: Arc<dyn Signer>,
    jwk: Value,
    kid: String,
}

impl JwtSigner {
    /// Wraps a P-256 signer.
    pub fn new(signer: Arc<dyn Signer>) -> Result<Self, ServiceError> {
        if signer.algorithm() != SignatureAlgorithm::EcdsaP256Sha256 {
            return Err(ServiceError::Internal("ID tokens need a P-256 key".into()));
        }
        let spki = spki::SubjectPublicKeyInfoRef::from_der(signer.public_key_spki())
            .map_err(|e| ServiceError::Internal(format!("signer key: {e}")))?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .filter(|p| p.len() == 65 && p[0] == 0x04)
            .ok_or_else(|| {
                ServiceError::Internal("signer key is not an uncompressed P-256 point".into())
            })?;
        let (x, y) = (b64url(&point[1..33]), b64url(&point[33..65]));
        // RFC 7638: the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64url(&sha256(canonical.as_bytes()));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": kid});
        Ok(Self { signer, jwk, kid })
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` as a compact JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, ServiceError> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let der_sig = self
            .signer
            .sign(input.as_bytes())
            .map_err(|e| ServiceError::Internal(format!("ID token signature: {e}")))?;
        let raw = shomei_pki::ecdsa_p256_der_to_fixed(&der_sig)
            .map_err(|_| ServiceError::Internal("malformed ECDSA signature".into()))?;
        Ok(format!("{input}.{}", b64url(&raw)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use base64::Engine;

    use super::*;

    #[test]
    fn es256_token_verifies_with_its_jwk() {
        let signer = Arc::new(shomei_pki::EcdsaP256Signer::generate().unwrap());
        let spki = signer.public_key_spki().to_vec();
        let jwt = JwtSigner::new(signer).unwrap();
        let token = jwt.sign(&json!({"sub": "x", "nonce": "n"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        let header: Value = serde_json::from_slice(&dec(parts[0])).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], jwt.jwk()["kid"]);
        let sig = dec(parts[2]);
        assert_eq!(sig.len(), 64);
        // The raw signature verifies with the public key (FIXED form).
        let key = spki::SubjectPublicKeyInfoRef::from_der(&spki).unwrap();
        let point = key.subject_public_key.as_bytes().unwrap();
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            point,
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .unwrap();
        // And not over other bytes.
        assert!(
            aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(b"other", &sig)
            .is_err()
        );
    }
}
