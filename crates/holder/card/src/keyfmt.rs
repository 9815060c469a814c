//! Public-key encodings: DER SubjectPublicKeyInfo (what X.509 and CSRs
//! carry) ⇄ the ISO 7816-8 public key template `7F49 { 81 modulus, 82
//! exponent }` (what the card answers to "read public key").

use der::asn1::{AnyRef, BitString, Null, ObjectIdentifier, UintRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use crate::CardError;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const TAG_TEMPLATE: &[u8] = &[0x7F, 0x49];
const TAG_MODULUS: &[u8] = &[0x81];
const TAG_EXPONENT: &[u8] = &[0x82];

/// PKCS#1 RSAPublicKey.
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn malformed(what: &str) -> CardError {
    CardError::Malformed(what.to_owned())
}

/// The `7F49` template for an RSA SubjectPublicKeyInfo.
pub(crate) fn template_from_spki(spki: &[u8]) -> Result<Vec<u8>, CardError> {
    let info = SubjectPublicKeyInfoRef::from_der(spki)
        .map_err(|e| CardError::Malformed(format!("public key: {e}")))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(malformed("public key is not RSA"));
    }
    let bits = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| malformed("public key has unused bits"))?;
    let key = RsaPublicKey::from_der(bits)
        .map_err(|e| CardError::Malformed(format!("RSA public key: {e}")))?;
    let mut inner = tlv(TAG_MODULUS, key.modulus.as_bytes());
    inner.extend(tlv(TAG_EXPONENT, key.public_exponent.as_bytes()));
    Ok(tlv(TAG_TEMPLATE, &inner))
}

/// The DER SubjectPublicKeyInfo for a `7F49` template (trailing bytes refused).
pub(crate) fn spki_from_template(template: &[u8]) -> Result<Vec<u8>, CardError> {
    let (inner, rest) = take_tlv(template, TAG_TEMPLATE)?;
    if !rest.is_empty() {
        return Err(malformed("bytes after the public key template"));
    }
    let (modulus, inner) = take_tlv(inner, TAG_MODULUS)?;
    let (exponent, inner) = take_tlv(inner, TAG_EXPONENT)?;
    if !inner.is_empty() {
        return Err(malformed("unexpected object in the public key template"));
    }
    let bad = |e: der::Error| CardError::Malformed(format!("RSA public key: {e}"));
    let key = RsaPublicKey {
        modulus: UintRef::new(modulus).map_err(bad)?,
        public_exponent: UintRef::new(exponent).map_err(bad)?,
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(AnyRef::from(Null).into()),
        },
        subject_public_key: BitString::from_bytes(&key.to_der().map_err(bad)?).map_err(bad)?,
    };
    spki.to_der().map_err(bad)
}

/// BER-TLV with a definite length (short form, `81 xx` or `82 xx xx`).
fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    let len = value.len();
    match u8::try_from(len) {
        Ok(l) if l < 0x80 => out.push(l),
        Ok(l) => out.extend([0x81, l]),
        // Templates here are a few hundred bytes; u16 always suffices.
        Err(_) => {
            out.push(0x82);
            out.extend(u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

/// Takes one TLV with `tag` from the front of `input`: (value, rest).
fn take_tlv<'a>(input: &'a [u8], tag: &[u8]) -> Result<(&'a [u8], &'a [u8]), CardError> {
    let rest = input
        .strip_prefix(tag)
        .ok_or_else(|| malformed("unexpected tag in the public key template"))?;
    let (len, rest) = match rest {
        [l, rest @ ..] if *l < 0x80 => (usize::from(*l), rest),
        [0x81, l, rest @ ..] => (usize::from(*l), rest),
        [0x82, h, l, rest @ ..] => (usize::from(u16::from_be_bytes([*h, *l])), rest),
        _ => return Err(malformed("bad length in the public key template")),
    };
    if rest.len() < len {
        return Err(malformed("truncated public key template"));
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_template_round_trip_is_byte_exact() {
        let key = shomei_pki::RsaSigner::generate().unwrap();
        let spki = shomei_core::Signer::public_key_spki(&key);
        let t = template_from_spki(spki).unwrap();
        assert_eq!(&t[..4], &[0x7F, 0x49, 0x82, 0x01]);
        assert_eq!(spki_from_template(&t).unwrap(), spki);
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(spki_from_template(&[]).is_err());
        assert!(spki_from_template(&[0x7F, 0x49, 0x05, 0x81, 0x01, 0x01]).is_err());
        assert!(spki_from_template(&[0x7F, 0x49, 0x03, 0x81, 0x01, 0x01]).is_err());
        assert!(spki_from_template(&[0x7F, 0x49, 0x00, 0x00]).is_err());
        assert!(template_from_spki(b"\x30\x00").is_err());
    }
}
