//! mdoc authentication (§9.1.3): DeviceAuthentication, signed
//! (DeviceSignature, COSE_Sign1 ES256 with detached payload, through
//! [`shomei_core::Signer`]) or MACed (DeviceMac, COSE_Mac0 HMAC 256/256 with
//! EMacKey); and reader authentication's signature (§9.1.4).
//!
//! ```text
//! DeviceAuthentication = ["DeviceAuthentication", SessionTranscript, DocType, DeviceNameSpacesBytes]
//! DeviceAuthenticationBytes = #6.24(bstr .cbor DeviceAuthentication)      (the detached payload)
//! EMacKey = HKDF-SHA256(ECDH(SDeviceKey, EReaderKey), SHA-256(SessionTranscriptBytes), "EMacKey")
//! ```
//! EMacKey uses the mdoc's *static* device key (from the MSO) and the
//! reader's *ephemeral* key, never the mdoc's ephemeral key.
//! The transcript and DeviceNameSpacesBytes go in exactly as received.

use aws_lc_rs::{hmac, signature};
use ciborium::Value;
use shomei_core::{SignatureAlgorithm, Signer};

use crate::cbor;
use crate::error::MdocError;
use crate::session::{EcPublicKey, KeyAgreement, SessionTranscriptBytes, hkdf_sha256_32};

/// COSE algorithm ES256.
pub const COSE_ALG_ES256: i64 = -7;
/// COSE algorithm HMAC 256/256.
pub const COSE_ALG_HMAC256: i64 = 5;
/// COSE header label x5chain.
pub const COSE_HEADER_X5CHAIN: i64 = 33;
/// Largest DeviceResponse accepted by [`parse_device_response_device_signed`].
pub const MAX_DEVICE_RESPONSE_LEN: usize = 4 * 1024 * 1024;
/// Most documents in one DeviceResponse.
pub const MAX_DOCUMENTS: usize = 16;

const TAG_COSE_SIGN1: u64 = 18;
const TAG_COSE_MAC0: u64 = 17;

/// A COSE_Sign1 (RFC 9052 §4.2), protected header bytes kept exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct CoseSign1 {
    /// The protected header, serialised.
    pub protected: Vec<u8>,
    /// The unprotected header map.
    pub unprotected: Value,
    /// The payload; `None` when detached.
    pub payload: Option<Vec<u8>>,
    /// The raw r‖s signature.
    pub signature: Vec<u8>,
}

/// A COSE_Mac0 (RFC 9052 §6.2), protected header bytes kept exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct CoseMac0 {
    /// The protected header, serialised.
    pub protected: Vec<u8>,
    /// The unprotected header map.
    pub unprotected: Value,
    /// The payload; `None` when detached.
    pub payload: Option<Vec<u8>>,
    /// The tag.
    pub tag: Vec<u8>,
}

type CoseParts = (Vec<u8>, Value, Option<Vec<u8>>, Vec<u8>);

fn parse_cose4(v: &Value, tag: u64, what: &'static str) -> Result<CoseParts, MdocError> {
    let v = match v {
        Value::Tag(t, inner) if *t == tag => inner.as_ref(),
        Value::Tag(..) => return Err(MdocError::MalformedCbor(what)),
        v => v,
    };
    let [protected, unprotected, payload, last] = cbor::as_array(v, what)? else {
        return Err(MdocError::MalformedCbor(what));
    };
    let protected = cbor::as_bytes(protected, what)?.to_vec();
    cbor::as_map(unprotected, what)?;
    let payload = match payload {
        Value::Null => None,
        p => Some(cbor::as_bytes(p, what)?.to_vec()),
    };
    let last = cbor::as_bytes(last, what)?.to_vec();
    Ok((protected, unprotected.clone(), payload, last))
}

fn encode_cose4(
    p: &[u8],
    u: &Value,
    payload: Option<&[u8]>,
    last: &[u8],
) -> Result<Vec<u8>, MdocError> {
    cbor::encode(&to_value4(p, u, payload, last))
}

fn to_value4(p: &[u8], u: &Value, payload: Option<&[u8]>, last: &[u8]) -> Value {
    Value::Array(vec![
        Value::Bytes(p.to_vec()),
        u.clone(),
        payload.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        Value::Bytes(last.to_vec()),
    ])
}

/// The `alg` (label 1) of a serialised protected header.
fn protected_alg(protected: &[u8]) -> Result<i64, MdocError> {
    if protected.is_empty() {
        return Err(MdocError::MalformedCbor("protected header without alg"));
    }
    let v = cbor::decode(protected, 4096, "protected header")?;
    let m = cbor::as_map(&v, "protected header")?;
    let alg =
        cbor::get_int(m, 1)?.ok_or(MdocError::MalformedCbor("protected header without alg"))?;
    cbor::as_int(alg, "alg")
}

fn protected_with_alg(alg: i64) -> Result<Vec<u8>, MdocError> {
    cbor::encode(&Value::Map(vec![(Value::from(1), Value::from(alg))]))
}

/// `[context, protected, external_aad = h'', payload]` serialised.
fn to_be_authenticated(
    context: &str,
    protected: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>, MdocError> {
    cbor::encode(&Value::Array(vec![
        Value::Text(context.to_owned()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

impl CoseSign1 {
    /// Parses a COSE_Sign1 (tagged 18 or untagged).
    pub fn parse(bytes: &[u8]) -> Result<Self, MdocError> {
        Self::from_value(&cbor::decode(bytes, MAX_DEVICE_RESPONSE_LEN, "COSE_Sign1")?)
    }

    fn from_value(v: &Value) -> Result<Self, MdocError> {
        let (protected, unprotected, payload, signature) =
            parse_cose4(v, TAG_COSE_SIGN1, "COSE_Sign1")?;
        Ok(Self {
            protected,
            unprotected,
            payload,
            signature,
        })
    }

    /// Encodes it untagged.
    pub fn encode(&self) -> Result<Vec<u8>, MdocError> {
        encode_cose4(
            &self.protected,
            &self.unprotected,
            self.payload.as_deref(),
            &self.signature,
        )
    }

    fn to_value(&self) -> Value {
        to_value4(
            &self.protected,
            &self.unprotected,
            self.payload.as_deref(),
            &self.signature,
        )
    }

    /// Signs `payload` (detached: not carried) with ES256 through `signer`.
    pub fn sign_detached(
        signer: &dyn Signer,
        unprotected: Value,
        payload: &[u8],
    ) -> Result<Self, MdocError> {
        if signer.algorithm() != SignatureAlgorithm::EcdsaP256Sha256 {
            return Err(MdocError::Unsupported("signer algorithm (ES256 only)"));
        }
        let protected = protected_with_alg(COSE_ALG_ES256)?;
        let tbs = to_be_authenticated("Signature1", &protected, payload)?;
        let der = signer.sign(&tbs)?;
        let signature = crate::issuer::ecdsa_fixed(&der)?.to_vec();
        Ok(Self {
            protected,
            unprotected,
            payload: None,
            signature,
        })
    }

    /// Verifies an ES256 signature over `payload` (detached, or the
    /// carried payload when `payload` is `None`).
    pub fn verify(&self, key: &EcPublicKey, payload: Option<&[u8]>) -> Result<(), MdocError> {
        if protected_alg(&self.protected)? != COSE_ALG_ES256 {
            return Err(MdocError::Unsupported("COSE_Sign1 algorithm (ES256 only)"));
        }
        let payload = payload
            .or(self.payload.as_deref())
            .ok_or(MdocError::Invalid("COSE_Sign1 without payload"))?;
        let tbs = to_be_authenticated("Signature1", &self.protected, payload)?;
        let point = key.uncompressed();
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point[..])
            .verify(&tbs, &self.signature)
            .map_err(|_| MdocError::BadSignature)
    }

    /// The x5chain certificates (unprotected label 33, one bstr or an array).
    pub fn x5chain(&self) -> Result<Vec<Vec<u8>>, MdocError> {
        let m = cbor::as_map(&self.unprotected, "unprotected header")?;
        match cbor::get_int(m, COSE_HEADER_X5CHAIN)? {
            None => Ok(Vec::new()),
            Some(Value::Bytes(b)) => Ok(vec![b.clone()]),
            Some(Value::Array(items)) if items.len() <= 8 => items
                .iter()
                .map(|i| cbor::as_bytes(i, "x5chain").map(<[u8]>::to_vec))
                .collect(),
            Some(_) => Err(MdocError::MalformedCbor("x5chain")),
        }
    }
}

impl CoseMac0 {
    /// Parses a COSE_Mac0 (tagged 17 or untagged).
    pub fn parse(bytes: &[u8]) -> Result<Self, MdocError> {
        Self::from_value(&cbor::decode(bytes, MAX_DEVICE_RESPONSE_LEN, "COSE_Mac0")?)
    }

    fn from_value(v: &Value) -> Result<Self, MdocError> {
        let (protected, unprotected, payload, tag) = parse_cose4(v, TAG_COSE_MAC0, "COSE_Mac0")?;
        Ok(Self {
            protected,
            unprotected,
            payload,
            tag,
        })
    }

    /// Encodes it untagged.
    pub fn encode(&self) -> Result<Vec<u8>, MdocError> {
        encode_cose4(
            &self.protected,
            &self.unprotected,
            self.payload.as_deref(),
            &self.tag,
        )
    }

    fn to_value(&self) -> Value {
        to_value4(
            &self.protected,
            &self.unprotected,
            self.payload.as_deref(),
            &self.tag,
        )
    }

    /// HMAC 256/256 over `payload`, detached.
    pub fn create_detached(key: &MacKey, payload: &[u8]) -> Result<Self, MdocError> {
        let protected = protected_with_alg(COSE_ALG_HMAC256)?;
        let tbm = to_be_authenticated("MAC0", &protected, payload)?;
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key.0), &tbm);
        Ok(Self {
            protected,
            unprotected: Value::Map(Vec::new()),
            payload: None,
            tag: tag.as_ref().to_vec(),
        })
    }

    /// Verifies the tag (constant time) over `payload` or the carried payload.
    pub fn verify(&self, key: &MacKey, payload: Option<&[u8]>) -> Result<(), MdocError> {
        if protected_alg(&self.protected)? != COSE_ALG_HMAC256 {
            return Err(MdocError::Unsupported(
                "COSE_Mac0 algorithm (HMAC 256/256 only)",
            ));
        }
        let payload = payload
            .or(self.payload.as_deref())
            .ok_or(MdocError::Invalid("COSE_Mac0 without payload"))?;
        let tbm = to_be_authenticated("MAC0", &self.protected, payload)?;
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key.0), &tbm, &self.tag)
            .map_err(|_| MdocError::BadMac)
    }
}

/// EMacKey (32 bytes). Not printable.
pub struct MacKey([u8; 32]);

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// EMacKey: on the mdoc, `own` is the static device key and `peer` the
    /// reader's ephemeral key; on the reader, `own` is its ephemeral key and
    /// `peer` the device key from the MSO.
    pub fn derive(
        own: &dyn KeyAgreement,
        peer: &EcPublicKey,
        transcript: &SessionTranscriptBytes,
    ) -> Result<Self, MdocError> {
        let z = own.agree(peer)?;
        Ok(Self(hkdf_sha256_32(z.as_bytes(), transcript, b"EMacKey")?))
    }

    /// The key bytes (interop tests).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// DeviceAuthenticationBytes: `#6.24` of the DeviceAuthentication array,
/// assembled from the exact transcript and DeviceNameSpacesBytes.
pub fn device_authentication_bytes(
    transcript: &SessionTranscriptBytes,
    doc_type: &str,
    device_name_spaces: &[u8],
) -> Result<Vec<u8>, MdocError> {
    let mut inner = vec![0x84];
    inner.extend(cbor::encode_text("DeviceAuthentication")?);
    inner.extend_from_slice(transcript.transcript());
    inner.extend(cbor::encode_text(doc_type)?);
    inner.extend(cbor::encode_tag24(device_name_spaces)?);
    cbor::encode_tag24(&inner)
}

/// ReaderAuthenticationBytes: `#6.24` of
/// `["ReaderAuthentication", SessionTranscript, ItemsRequestBytes]`.
pub fn reader_authentication_bytes(
    transcript: &SessionTranscriptBytes,
    items_request: &[u8],
) -> Result<Vec<u8>, MdocError> {
    let mut inner = vec![0x83];
    inner.extend(cbor::encode_text("ReaderAuthentication")?);
    inner.extend_from_slice(transcript.transcript());
    inner.extend(cbor::encode_tag24(items_request)?);
    cbor::encode_tag24(&inner)
}

/// Verifies a DocRequest's readerAuth signature with the reader's key
/// (certificate path validation is the caller's).
pub fn verify_reader_auth(
    reader_auth: &[u8],
    transcript: &SessionTranscriptBytes,
    items_request: &[u8],
    reader_key: &EcPublicKey,
) -> Result<(), MdocError> {
    let sign1 = CoseSign1::parse(reader_auth)?;
    sign1.verify(
        reader_key,
        Some(&reader_authentication_bytes(transcript, items_request)?),
    )
}

/// DeviceAuth: a signature or a MAC.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceAuth {
    /// deviceSignature.
    Signature(CoseSign1),
    /// deviceMac.
    Mac(CoseMac0),
}

/// DeviceSigned `{nameSpaces: DeviceNameSpacesBytes, deviceAuth}`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSigned {
    /// The DeviceNameSpaces bytes inside `#6.24`, exactly (`a0` when none).
    pub name_spaces: Vec<u8>,
    /// The authentication.
    pub device_auth: DeviceAuth,
}

impl DeviceSigned {
    /// The mdoc signs DeviceAuthentication through `signer` (its static
    /// device key).
    pub fn sign(
        signer: &dyn Signer,
        transcript: &SessionTranscriptBytes,
        doc_type: &str,
        name_spaces: Vec<u8>,
    ) -> Result<Self, MdocError> {
        let payload = device_authentication_bytes(transcript, doc_type, &name_spaces)?;
        let sig = CoseSign1::sign_detached(signer, Value::Map(Vec::new()), &payload)?;
        Ok(Self {
            name_spaces,
            device_auth: DeviceAuth::Signature(sig),
        })
    }

    /// The mdoc MACs DeviceAuthentication with EMacKey from its static
    /// device key and the reader's ephemeral key.
    ///
    /// `static_device_key` may be a key held in a secure element (anything
    /// implementing [`KeyAgreement`]); only the ECDH goes through it.
    pub fn mac(
        static_device_key: &dyn KeyAgreement,
        e_reader_key: &EcPublicKey,
        transcript: &SessionTranscriptBytes,
        doc_type: &str,
        name_spaces: Vec<u8>,
    ) -> Result<Self, MdocError> {
        let key = MacKey::derive(static_device_key, e_reader_key, transcript)?;
        Self::mac_with_key(&key, transcript, doc_type, name_spaces)
    }

    /// As [`DeviceSigned::mac`] with EMacKey already derived (for the same
    /// `transcript`): one key agreement serves every response of a session.
    pub fn mac_with_key(
        key: &MacKey,
        transcript: &SessionTranscriptBytes,
        doc_type: &str,
        name_spaces: Vec<u8>,
    ) -> Result<Self, MdocError> {
        let payload = device_authentication_bytes(transcript, doc_type, &name_spaces)?;
        let mac = CoseMac0::create_detached(key, &payload)?;
        Ok(Self {
            name_spaces,
            device_auth: DeviceAuth::Mac(mac),
        })
    }

    /// The reader verifies: `device_key` is the static key from the MSO's
    /// DeviceKeyInfo; `e_reader_key` (the reader's ephemeral key) is needed
    /// for a MAC.
    pub fn verify(
        &self,
        transcript: &SessionTranscriptBytes,
        doc_type: &str,
        device_key: &EcPublicKey,
        e_reader_key: Option<&dyn KeyAgreement>,
    ) -> Result<(), MdocError> {
        let payload = device_authentication_bytes(transcript, doc_type, &self.name_spaces)?;
        match &self.device_auth {
            DeviceAuth::Signature(sig) => sig.verify(device_key, Some(&payload)),
            DeviceAuth::Mac(mac) => {
                let own =
                    e_reader_key.ok_or(MdocError::Invalid("DeviceMac needs the reader key"))?;
                let key = MacKey::derive(own, device_key, transcript)?;
                mac.verify(&key, Some(&payload))
            }
        }
    }

    /// Parses a decoded DeviceSigned map.
    pub fn from_value(v: &Value) -> Result<Self, MdocError> {
        let m = cbor::as_map(v, "DeviceSigned")?;
        let ns = cbor::get_text(m, "nameSpaces")?
            .ok_or(MdocError::MalformedCbor("DeviceSigned nameSpaces"))?;
        let name_spaces = cbor::untag24(ns, "DeviceNameSpacesBytes")?.to_vec();
        let auth = cbor::get_text(m, "deviceAuth")?
            .ok_or(MdocError::MalformedCbor("DeviceSigned deviceAuth"))?;
        let am = cbor::as_map(auth, "DeviceAuth")?;
        let device_auth = match (
            cbor::get_text(am, "deviceSignature")?,
            cbor::get_text(am, "deviceMac")?,
        ) {
            (Some(s), None) => DeviceAuth::Signature(CoseSign1::from_value(s)?),
            (None, Some(m)) => DeviceAuth::Mac(CoseMac0::from_value(m)?),
            _ => {
                return Err(MdocError::MalformedCbor(
                    "DeviceAuth needs exactly one of signature, MAC",
                ));
            }
        };
        Ok(Self {
            name_spaces,
            device_auth,
        })
    }

    /// The DeviceSigned map as a value.
    pub fn to_value(&self) -> Value {
        let auth = match &self.device_auth {
            DeviceAuth::Signature(s) => (Value::Text("deviceSignature".into()), s.to_value()),
            DeviceAuth::Mac(m) => (Value::Text("deviceMac".into()), m.to_value()),
        };
        Value::Map(vec![
            (
                Value::Text("nameSpaces".into()),
                cbor::tag24(&self.name_spaces),
            ),
            (Value::Text("deviceAuth".into()), Value::Map(vec![auth])),
        ])
    }
}

/// Each document's docType and DeviceSigned from a DeviceResponse (the
/// issuer-signed half is `issuer`'s business).
pub fn parse_device_response_device_signed(
    bytes: &[u8],
) -> Result<Vec<(String, DeviceSigned)>, MdocError> {
    let v = cbor::decode(bytes, MAX_DEVICE_RESPONSE_LEN, "DeviceResponse")?;
    let m = cbor::as_map(&v, "DeviceResponse")?;
    let Some(docs) = cbor::get_text(m, "documents")? else {
        return Ok(Vec::new());
    };
    let docs = cbor::as_array(docs, "documents")?;
    if docs.len() > MAX_DOCUMENTS {
        return Err(MdocError::LimitExceeded("documents"));
    }
    docs.iter()
        .map(|d| {
            let dm = cbor::as_map(d, "Document")?;
            let doc_type = cbor::get_text(dm, "docType")?
                .ok_or(MdocError::MalformedCbor("Document docType"))?;
            let doc_type = cbor::as_text(doc_type, "docType")?.to_owned();
            let ds = cbor::get_text(dm, "deviceSigned")?
                .ok_or(MdocError::MalformedCbor("Document deviceSigned"))?;
            Ok((doc_type, DeviceSigned::from_value(ds)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{EphemeralKey, Handover, SessionTranscript};

    fn transcript() -> SessionTranscriptBytes {
        SessionTranscript {
            device_engagement: vec![0xa0],
            e_reader_key: vec![0xa1, 1, 2],
            handover: Handover::Qr,
        }
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn signature_through_signer() {
        let signer = shomei_pki::EcdsaP256Signer::generate().unwrap();
        let key = EcPublicKey::from_spki(signer.public_key_spki()).unwrap();
        let t = transcript();
        let ds = DeviceSigned::sign(&signer, &t, "org.iso.18013.5.1.mDL", vec![0xa0]).unwrap();
        ds.verify(&t, "org.iso.18013.5.1.mDL", &key, None).unwrap();
        let back = DeviceSigned::from_value(&ds.to_value()).unwrap();
        assert_eq!(back, ds);
        assert_eq!(
            ds.verify(&t, "other", &key, None),
            Err(MdocError::BadSignature)
        );
        let other = EcPublicKey::from_spki(
            shomei_pki::EcdsaP256Signer::generate()
                .unwrap()
                .public_key_spki(),
        )
        .unwrap();
        assert_eq!(
            ds.verify(&t, "org.iso.18013.5.1.mDL", &other, None),
            Err(MdocError::BadSignature)
        );
    }

    #[test]
    fn mac_uses_the_static_key_not_the_ephemeral_one() {
        let t = transcript();
        let static_key = EphemeralKey::generate().unwrap();
        let device_ephemeral = EphemeralKey::generate().unwrap();
        let reader = EphemeralKey::generate().unwrap();
        let ds = DeviceSigned::mac(&static_key, &reader.public_key(), &t, "d", vec![0xa0]).unwrap();
        ds.verify(&t, "d", &static_key.public_key(), Some(&reader))
            .unwrap();
        // The reader must take the device key from the MSO, not EDeviceKey.
        assert_eq!(
            ds.verify(&t, "d", &device_ephemeral.public_key(), Some(&reader)),
            Err(MdocError::BadMac)
        );
        // A MAC made (wrongly) with the mdoc's ephemeral key fails too.
        let wrong = DeviceSigned::mac(&device_ephemeral, &reader.public_key(), &t, "d", vec![0xa0])
            .unwrap();
        assert_eq!(
            wrong.verify(&t, "d", &static_key.public_key(), Some(&reader)),
            Err(MdocError::BadMac)
        );
        assert!(ds.verify(&t, "d", &static_key.public_key(), None).is_err());
    }
}
