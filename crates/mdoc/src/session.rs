//! ISO/IEC 18013-5 §9.1.1 session establishment and encryption, sans-IO.
//!
//! * [`DeviceEngagement`]: built by the mdoc, parsed by the reader from the
//!   QR `mdoc:` URI ([`DeviceEngagement::to_uri`], [`parse_device_engagement_uri`]).
//!   The exact received bytes are kept and are what the transcript uses:
//!   a re-encoding would drop unknown keys and change the HKDF salt.
//! * [`SessionEstablishment`] / [`SessionData`]: the messages.
//! * [`SessionTranscript`] → [`SessionTranscriptBytes`] (`#6.24`).
//! * [`SessionKeys`]: ECDH P-256 then HKDF-SHA256 (salt = SHA-256 of the
//!   transcript bytes) → SKReader / SKDevice.
//! * [`SessionEncryption`]: AES-256-GCM per role with the per-direction
//!   message counters; refuses replays, reordering and reflected messages
//!   with specific errors, and ends on status 10/11/20.

use core::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::{digest, hkdf};
use ciborium::Value;

use crate::cbor;
use crate::error::MdocError;

/// Largest DeviceEngagement accepted (a QR code holds under 3 KiB).
pub const MAX_ENGAGEMENT_LEN: usize = 4096;
/// Largest SessionEstablishment / SessionData message accepted.
pub const MAX_SESSION_MESSAGE_LEN: usize = 4 * 1024 * 1024;
/// Most retrieval methods accepted in one engagement.
pub const MAX_RETRIEVAL_METHODS: usize = 16;
/// How far back and forward a failed decryption looks to name the cause.
const DIAGNOSE_WINDOW: u32 = 32;

/// The one cipher suite of 18013-5 (ECDH P-256, AES-256-GCM, HKDF-SHA256).
pub const CIPHER_SUITE_1: i64 = 1;

// ------------------------------------------------------------------ keys

/// DER prefix of a P-256 SubjectPublicKeyInfo, up to the point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Whether an uncompressed point is a valid P-256 public key (aws-lc-rs
/// validates the point when it parses a verification key).
fn on_curve(point: &[u8]) -> bool {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).is_ok()
}

/// A P-256 public key (affine coordinates): the session's ephemeral keys,
/// and the MSO's device key ([`crate::mso::DeviceKey`]).
#[derive(Clone, PartialEq, Eq)]
pub struct EcPublicKey {
    x: [u8; 32],
    y: [u8; 32],
}

impl fmt::Debug for EcPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EcPublicKey({:02x?}…)",
            self.x.get(..4).unwrap_or_default()
        )
    }
}

impl EcPublicKey {
    /// From the 65-byte uncompressed SEC1 point `04 ‖ x ‖ y`.
    pub fn from_uncompressed(point: &[u8]) -> Result<Self, MdocError> {
        match point {
            [0x04, rest @ ..] if rest.len() == 64 => {
                let (x, y) = rest.split_at(32);
                Self::from_xy(x, y)
            }
            _ => Err(MdocError::Invalid("P-256 point")),
        }
    }

    /// From the two 32-byte coordinates.
    pub fn from_xy(x: &[u8], y: &[u8]) -> Result<Self, MdocError> {
        let x: [u8; 32] = x.try_into().map_err(|_| MdocError::Invalid("P-256 x"))?;
        let y: [u8; 32] = y.try_into().map_err(|_| MdocError::Invalid("P-256 y"))?;
        Ok(Self { x, y })
    }

    /// The uncompressed SEC1 point.
    pub fn uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.x);
        out[33..].copy_from_slice(&self.y);
        out
    }

    /// From a P-256 SubjectPublicKeyInfo (DER, uncompressed point), as
    /// [`shomei_core::Signer::public_key_spki`] gives it.
    pub fn from_spki(spki: &[u8]) -> Result<Self, MdocError> {
        match spki.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) => Self::from_uncompressed(point),
            None => Err(MdocError::Unsupported("public key (P-256 SPKI only)")),
        }
    }

    /// The x coordinate.
    pub fn x(&self) -> &[u8; 32] {
        &self.x
    }

    /// The y coordinate.
    pub fn y(&self) -> &[u8; 32] {
        &self.y
    }

    /// Parses a COSE_Key (RFC 9053: kty 2 EC2, crv 1 P-256, x, y).
    pub fn from_cose_key(bytes: &[u8]) -> Result<Self, MdocError> {
        let v = cbor::decode(bytes, 1024, "COSE_Key")?;
        Self::from_cose_key_value(&v)
    }

    /// As [`EcPublicKey::from_cose_key`], from a decoded value.
    pub fn from_cose_key_value(v: &Value) -> Result<Self, MdocError> {
        let m = cbor::as_map(v, "COSE_Key")?;
        let kty = cbor::get_int(m, 1)?.ok_or(MdocError::MalformedCbor("COSE_Key kty"))?;
        if cbor::as_int(kty, "COSE_Key kty")? != 2 {
            return Err(MdocError::Unsupported("COSE_Key type (EC2 only)"));
        }
        let crv = cbor::get_int(m, -1)?.ok_or(MdocError::MalformedCbor("COSE_Key crv"))?;
        if cbor::as_int(crv, "COSE_Key crv")? != 1 {
            return Err(MdocError::Unsupported("curve (P-256 only)"));
        }
        let x = cbor::get_int(m, -2)?.ok_or(MdocError::MalformedCbor("COSE_Key x"))?;
        let y = cbor::get_int(m, -3)?.ok_or(MdocError::MalformedCbor("COSE_Key y"))?;
        let x = cbor::as_bytes(x, "COSE_Key x")?;
        let y = match y {
            Value::Bytes(b) => b.as_slice(),
            _ => return Err(MdocError::Unsupported("compressed COSE_Key")),
        };
        let key = Self::from_xy(x, y)?;
        // An off-curve point is refused here, not at first use.
        if !on_curve(&key.uncompressed()) {
            return Err(MdocError::Invalid("COSE_Key: point not on P-256"));
        }
        Ok(key)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki(&self) -> Vec<u8> {
        let mut v = P256_SPKI_PREFIX.to_vec();
        v.extend_from_slice(&self.uncompressed());
        v
    }

    /// The COSE_Key `{1: 2, -1: 1, -2: x, -3: y}` (the order Annex D uses).
    pub fn to_cose_key(&self) -> Result<Vec<u8>, MdocError> {
        cbor::encode(&self.to_cose_key_value())
    }

    /// The COSE_Key as a CBOR value (as the MSO's `deviceKey` holds it).
    pub fn to_cose_key_value(&self) -> Value {
        Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(-1), Value::from(1)),
            (Value::from(-2), Value::Bytes(self.x.to_vec())),
            (Value::from(-3), Value::Bytes(self.y.to_vec())),
        ])
    }
}

/// An ECDH shared secret (the x coordinate, 32 bytes). Not printable.
pub struct SharedSecret([u8; 32]);

impl SharedSecret {
    /// Wraps an x coordinate agreed elsewhere (a [`KeyAgreement`] whose
    /// private key lives in a secure element).
    pub fn from_bytes(z: [u8; 32]) -> Self {
        Self(z)
    }

    /// The secret bytes, for a KDF.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// A P-256 key that can do ECDH without exporting the private key: the
/// ephemeral keys ([`EphemeralKey`]) and, for DeviceMac, the mdoc's static
/// device key in a secure element.
pub trait KeyAgreement {
    /// The public key.
    fn public_key(&self) -> EcPublicKey;
    /// ECDH with `peer`.
    fn agree(&self, peer: &EcPublicKey) -> Result<SharedSecret, MdocError>;
}

/// An in-memory P-256 ECDH key (aws-lc-rs); ephemeral by intent.
pub struct EphemeralKey {
    private: PrivateKey,
    public: EcPublicKey,
}

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl EphemeralKey {
    /// A fresh key from aws-lc-rs' RNG.
    pub fn generate() -> Result<Self, MdocError> {
        let private = PrivateKey::generate(&ECDH_P256)
            .map_err(|_| MdocError::Crypto("ECDH key generation"))?;
        Self::from_private(private)
    }

    /// From a 32-byte big-endian private scalar (test vectors, secure elements).
    pub fn from_scalar(d: &[u8]) -> Result<Self, MdocError> {
        let private = PrivateKey::from_private_key(&ECDH_P256, d)
            .map_err(|_| MdocError::Invalid("P-256 private scalar"))?;
        Self::from_private(private)
    }

    fn from_private(private: PrivateKey) -> Result<Self, MdocError> {
        let public = private
            .compute_public_key()
            .map_err(|_| MdocError::Crypto("ECDH public key"))?;
        let public = EcPublicKey::from_uncompressed(public.as_ref())?;
        Ok(Self { private, public })
    }
}

impl KeyAgreement for EphemeralKey {
    fn public_key(&self) -> EcPublicKey {
        self.public.clone()
    }

    fn agree(&self, peer: &EcPublicKey) -> Result<SharedSecret, MdocError> {
        let point = peer.uncompressed();
        agreement::agree(
            &self.private,
            UnparsedPublicKey::new(&ECDH_P256, &point[..]),
            MdocError::Invalid("peer public key not on P-256"),
            |z| {
                let z: [u8; 32] = z.try_into().map_err(|_| MdocError::Crypto("ECDH length"))?;
                Ok(SharedSecret(z))
            },
        )
    }
}

/// HKDF-SHA256(ikm, salt = SHA-256(SessionTranscriptBytes), info) → 32 bytes.
pub(crate) fn hkdf_sha256_32(
    ikm: &[u8],
    transcript: &SessionTranscriptBytes,
    info: &[u8],
) -> Result<[u8; 32], MdocError> {
    let salt = digest::digest(&digest::SHA256, transcript.as_bytes());
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt.as_ref()).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, hkdf::HKDF_SHA256)
        .map_err(|_| MdocError::Crypto("HKDF"))?;
    let mut out = [0u8; 32];
    okm.fill(&mut out).map_err(|_| MdocError::Crypto("HKDF"))?;
    Ok(out)
}

// ------------------------------------------------------------------ engagement

/// One DeviceRetrievalMethod `[type, version, options]` (§8.2.1.1); the
/// options are kept as decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrievalMethod {
    /// 1 NFC, 2 BLE, 3 Wi-Fi Aware.
    pub kind: u64,
    /// The method's version (1).
    pub version: u64,
    /// The method's options map.
    pub options: Value,
}

/// A DeviceEngagement with the exact bytes it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceEngagement {
    bytes: Vec<u8>,
    version: String,
    e_device_key_bytes: Vec<u8>,
    e_device_key: EcPublicKey,
    retrieval_methods: Vec<RetrievalMethod>,
}

/// Parses a DeviceEngagement, keeping `bytes` exactly (fuzz entry point).
pub fn parse_device_engagement(bytes: &[u8]) -> Result<DeviceEngagement, MdocError> {
    let v = cbor::decode(bytes, MAX_ENGAGEMENT_LEN, "DeviceEngagement")?;
    let m = cbor::as_map(&v, "DeviceEngagement")?;
    let version =
        cbor::get_int(m, 0)?.ok_or(MdocError::MalformedCbor("DeviceEngagement version"))?;
    let version = cbor::as_text(version, "DeviceEngagement version")?;
    if !version.starts_with("1.") {
        return Err(MdocError::Unsupported("DeviceEngagement version"));
    }
    let security =
        cbor::get_int(m, 1)?.ok_or(MdocError::MalformedCbor("DeviceEngagement security"))?;
    let security = cbor::as_array(security, "Security")?;
    let [suite, key] = security else {
        return Err(MdocError::MalformedCbor("Security"));
    };
    if cbor::as_int(suite, "cipher suite")? != CIPHER_SUITE_1 {
        return Err(MdocError::Unsupported("cipher suite"));
    }
    let e_device_key_bytes = cbor::untag24(key, "EDeviceKeyBytes")?.to_vec();
    let e_device_key = EcPublicKey::from_cose_key(&e_device_key_bytes)?;
    let mut retrieval_methods = Vec::new();
    if let Some(methods) = cbor::get_int(m, 2)? {
        let methods = cbor::as_array(methods, "DeviceRetrievalMethods")?;
        if methods.len() > MAX_RETRIEVAL_METHODS {
            return Err(MdocError::LimitExceeded("DeviceRetrievalMethods"));
        }
        for method in methods {
            let [kind, version, options] = cbor::as_array(method, "DeviceRetrievalMethod")? else {
                return Err(MdocError::MalformedCbor("DeviceRetrievalMethod"));
            };
            let kind = u64::try_from(cbor::as_int(kind, "retrieval type")?)
                .map_err(|_| MdocError::MalformedCbor("retrieval type"))?;
            let version = u64::try_from(cbor::as_int(version, "retrieval version")?)
                .map_err(|_| MdocError::MalformedCbor("retrieval version"))?;
            cbor::as_map(options, "retrieval options")?;
            retrieval_methods.push(RetrievalMethod {
                kind,
                version,
                options: options.clone(),
            });
        }
    }
    Ok(DeviceEngagement {
        bytes: bytes.to_vec(),
        version: version.to_owned(),
        e_device_key_bytes,
        e_device_key,
        retrieval_methods,
    })
}

/// Parses the `mdoc:` URI of a QR engagement (§8.2.2.3).
pub fn parse_device_engagement_uri(uri: &str) -> Result<DeviceEngagement, MdocError> {
    let b64 = uri
        .strip_prefix("mdoc:")
        .ok_or(MdocError::Invalid("not an mdoc: URI"))?;
    if b64.len() > MAX_ENGAGEMENT_LEN * 4 / 3 + 4 {
        return Err(MdocError::LimitExceeded("DeviceEngagement"));
    }
    parse_device_engagement(&cbor::base64url_decode(b64)?)
}

impl DeviceEngagement {
    /// Builds version "1.0" with cipher suite 1 and the given methods.
    pub fn build(
        e_device_key: &EcPublicKey,
        retrieval_methods: Vec<RetrievalMethod>,
    ) -> Result<Self, MdocError> {
        if retrieval_methods.len() > MAX_RETRIEVAL_METHODS {
            return Err(MdocError::LimitExceeded("DeviceRetrievalMethods"));
        }
        let e_device_key_bytes = e_device_key.to_cose_key()?;
        let mut map = vec![
            (Value::from(0), Value::Text("1.0".into())),
            (
                Value::from(1),
                Value::Array(vec![
                    Value::from(CIPHER_SUITE_1),
                    cbor::tag24(&e_device_key_bytes),
                ]),
            ),
        ];
        if !retrieval_methods.is_empty() {
            let methods = retrieval_methods
                .iter()
                .map(|m| {
                    Value::Array(vec![
                        Value::from(m.kind),
                        Value::from(m.version),
                        m.options.clone(),
                    ])
                })
                .collect();
            map.push((Value::from(2), Value::Array(methods)));
        }
        let bytes = cbor::encode(&Value::Map(map))?;
        Ok(Self {
            bytes,
            version: "1.0".into(),
            e_device_key_bytes,
            e_device_key: e_device_key.clone(),
            retrieval_methods,
        })
    }

    /// The exact DeviceEngagement bytes (as received or as built).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The COSE_Key bytes inside EDeviceKeyBytes, exactly.
    pub fn e_device_key_bytes(&self) -> &[u8] {
        &self.e_device_key_bytes
    }

    /// The mdoc's ephemeral public key.
    pub fn e_device_key(&self) -> &EcPublicKey {
        &self.e_device_key
    }

    /// The retrieval methods (empty when absent).
    pub fn retrieval_methods(&self) -> &[RetrievalMethod] {
        &self.retrieval_methods
    }

    /// `mdoc:` + base64url (no padding) of the exact bytes.
    pub fn to_uri(&self) -> String {
        format!("mdoc:{}", cbor::base64url_encode(&self.bytes))
    }
}

// ------------------------------------------------------------------ messages

/// SessionEstablishment `{eReaderKey: #6.24(COSE_Key), data: bstr}`.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionEstablishment {
    e_reader_key_bytes: Vec<u8>,
    e_reader_key: EcPublicKey,
    data: Vec<u8>,
}

/// Parses a SessionEstablishment (fuzz entry point).
pub fn parse_session_establishment(bytes: &[u8]) -> Result<SessionEstablishment, MdocError> {
    let v = cbor::decode(bytes, MAX_SESSION_MESSAGE_LEN, "SessionEstablishment")?;
    let m = cbor::as_map(&v, "SessionEstablishment")?;
    let key = cbor::get_text(m, "eReaderKey")?
        .ok_or(MdocError::MalformedCbor("SessionEstablishment eReaderKey"))?;
    let e_reader_key_bytes = cbor::untag24(key, "EReaderKeyBytes")?.to_vec();
    let e_reader_key = EcPublicKey::from_cose_key(&e_reader_key_bytes)?;
    let data =
        cbor::get_text(m, "data")?.ok_or(MdocError::MalformedCbor("SessionEstablishment data"))?;
    let data = cbor::as_bytes(data, "SessionEstablishment data")?.to_vec();
    Ok(SessionEstablishment {
        e_reader_key_bytes,
        e_reader_key,
        data,
    })
}

impl SessionEstablishment {
    /// From the reader's key and the encrypted DeviceRequest.
    pub fn new(e_reader_key: &EcPublicKey, data: Vec<u8>) -> Result<Self, MdocError> {
        Ok(Self {
            e_reader_key_bytes: e_reader_key.to_cose_key()?,
            e_reader_key: e_reader_key.clone(),
            data,
        })
    }

    /// Encodes `{"eReaderKey": …, "data": …}`.
    pub fn encode(&self) -> Result<Vec<u8>, MdocError> {
        cbor::encode(&Value::Map(vec![
            (
                Value::Text("eReaderKey".into()),
                cbor::tag24(&self.e_reader_key_bytes),
            ),
            (Value::Text("data".into()), Value::Bytes(self.data.clone())),
        ]))
    }

    /// The COSE_Key bytes inside EReaderKeyBytes, exactly as received.
    pub fn e_reader_key_bytes(&self) -> &[u8] {
        &self.e_reader_key_bytes
    }

    /// The reader's ephemeral public key.
    pub fn e_reader_key(&self) -> &EcPublicKey {
        &self.e_reader_key
    }

    /// The encrypted DeviceRequest.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// The SessionData status codes (§9.1.1.4, table 20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// 10: error, session encryption.
    EncryptionError,
    /// 11: error, CBOR decoding.
    DecodingError,
    /// 20: session termination.
    Termination,
}

impl SessionStatus {
    /// The code on the wire.
    pub fn code(self) -> u64 {
        match self {
            Self::EncryptionError => 10,
            Self::DecodingError => 11,
            Self::Termination => 20,
        }
    }

    /// From the code on the wire.
    pub fn from_code(code: u64) -> Result<Self, MdocError> {
        match code {
            10 => Ok(Self::EncryptionError),
            11 => Ok(Self::DecodingError),
            20 => Ok(Self::Termination),
            _ => Err(MdocError::Unsupported("SessionData status")),
        }
    }

    /// The status to send back for a failure to handle a message.
    pub fn for_error(e: &MdocError) -> Self {
        match e {
            MdocError::MalformedCbor(_) | MdocError::LimitExceeded(_) => Self::DecodingError,
            _ => Self::EncryptionError,
        }
    }
}

/// SessionData `{? data: bstr, ? status: uint}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionData {
    /// Encrypted payload.
    pub data: Option<Vec<u8>>,
    /// Status.
    pub status: Option<SessionStatus>,
}

/// Parses a SessionData (fuzz entry point). At least one member is required.
pub fn parse_session_data(bytes: &[u8]) -> Result<SessionData, MdocError> {
    let v = cbor::decode(bytes, MAX_SESSION_MESSAGE_LEN, "SessionData")?;
    let m = cbor::as_map(&v, "SessionData")?;
    let data = cbor::get_text(m, "data")?
        .map(|d| cbor::as_bytes(d, "SessionData data").map(<[u8]>::to_vec))
        .transpose()?;
    let status = cbor::get_text(m, "status")?
        .map(|s| {
            let code = u64::try_from(cbor::as_int(s, "SessionData status")?)
                .map_err(|_| MdocError::MalformedCbor("SessionData status"))?;
            SessionStatus::from_code(code)
        })
        .transpose()?;
    if data.is_none() && status.is_none() {
        return Err(MdocError::MalformedCbor(
            "SessionData without data or status",
        ));
    }
    Ok(SessionData { data, status })
}

impl SessionData {
    /// Encodes it (`data` first, as Annex D).
    pub fn encode(&self) -> Result<Vec<u8>, MdocError> {
        let mut map = Vec::new();
        if let Some(d) = &self.data {
            map.push((Value::Text("data".into()), Value::Bytes(d.clone())));
        }
        if let Some(s) = self.status {
            map.push((Value::Text("status".into()), Value::from(s.code())));
        }
        cbor::encode(&Value::Map(map))
    }

    /// A bare status message (e.g. termination, `a16673746174757314`).
    pub fn status(status: SessionStatus) -> Self {
        Self {
            data: None,
            status: Some(status),
        }
    }
}

// ------------------------------------------------------------------ transcript

/// The Handover element of the transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handover {
    /// QR engagement: `null`.
    Qr,
    /// NFC static or negotiated handover: `[HandoverSelect, HandoverRequest / null]`.
    Nfc {
        /// The Handover Select message bytes.
        select: Vec<u8>,
        /// The Handover Request message bytes (negotiated handover only).
        request: Option<Vec<u8>>,
    },
}

impl Handover {
    fn to_value(&self) -> Value {
        match self {
            Self::Qr => Value::Null,
            Self::Nfc { select, request } => Value::Array(vec![
                Value::Bytes(select.clone()),
                request
                    .as_ref()
                    .map_or(Value::Null, |r| Value::Bytes(r.clone())),
            ]),
        }
    }

    fn from_value(v: &Value) -> Result<Self, MdocError> {
        match v {
            Value::Null => Ok(Self::Qr),
            Value::Array(items) => match items.as_slice() {
                [select, request] => Ok(Self::Nfc {
                    select: cbor::as_bytes(select, "HandoverSelect")?.to_vec(),
                    request: match request {
                        Value::Null => None,
                        r => Some(cbor::as_bytes(r, "HandoverRequest")?.to_vec()),
                    },
                }),
                _ => Err(MdocError::MalformedCbor("NFCHandover")),
            },
            _ => Err(MdocError::Unsupported("handover")),
        }
    }
}

/// SessionTranscript = [DeviceEngagementBytes, EReaderKeyBytes, Handover],
/// holding the exact inner bytes of both `#6.24` items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTranscript {
    /// The DeviceEngagement bytes exactly as received.
    pub device_engagement: Vec<u8>,
    /// The reader's COSE_Key bytes exactly as received.
    pub e_reader_key: Vec<u8>,
    /// The handover.
    pub handover: Handover,
}

impl SessionTranscript {
    /// From the engagement and establishment as received.
    pub fn new(
        engagement: &DeviceEngagement,
        establishment: &SessionEstablishment,
        handover: Handover,
    ) -> Self {
        Self {
            device_engagement: engagement.as_bytes().to_vec(),
            e_reader_key: establishment.e_reader_key_bytes().to_vec(),
            handover,
        }
    }

    /// `#6.24(bstr .cbor SessionTranscript)`.
    pub fn to_bytes(&self) -> Result<SessionTranscriptBytes, MdocError> {
        let inner = cbor::encode(&Value::Array(vec![
            cbor::tag24(&self.device_engagement),
            cbor::tag24(&self.e_reader_key),
            self.handover.to_value(),
        ]))?;
        SessionTranscriptBytes::from_inner(inner)
    }
}

/// SessionTranscriptBytes: the `#6.24` item and the SessionTranscript array
/// encoding inside it, both exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTranscriptBytes {
    outer: Vec<u8>,
    inner_start: usize,
}

/// Parses SessionTranscriptBytes (e.g. from an online handover), keeping
/// the bytes; returns the parts too.
pub fn parse_session_transcript_bytes(
    bytes: &[u8],
) -> Result<(SessionTranscriptBytes, SessionTranscript), MdocError> {
    let v = cbor::decode(bytes, MAX_SESSION_MESSAGE_LEN, "SessionTranscriptBytes")?;
    let inner = cbor::untag24(&v, "SessionTranscriptBytes")?;
    let t = cbor::decode(inner, MAX_SESSION_MESSAGE_LEN, "SessionTranscript")?;
    let [de, rk, handover] = cbor::as_array(&t, "SessionTranscript")? else {
        return Err(MdocError::MalformedCbor("SessionTranscript"));
    };
    let transcript = SessionTranscript {
        device_engagement: cbor::untag24(de, "DeviceEngagementBytes")?.to_vec(),
        e_reader_key: cbor::untag24(rk, "EReaderKeyBytes")?.to_vec(),
        handover: Handover::from_value(handover)?,
    };
    let inner_start = bytes.len() - inner.len();
    Ok((
        SessionTranscriptBytes {
            outer: bytes.to_vec(),
            inner_start,
        },
        transcript,
    ))
}

impl SessionTranscriptBytes {
    fn from_inner(inner: Vec<u8>) -> Result<Self, MdocError> {
        let outer = cbor::encode_tag24(&inner)?;
        let inner_start = outer.len() - inner.len();
        Ok(Self { outer, inner_start })
    }

    /// The whole `#6.24(bstr)` item (hashed for the HKDF salt).
    pub fn as_bytes(&self) -> &[u8] {
        &self.outer
    }

    /// The SessionTranscript array encoding (embedded in DeviceAuthentication).
    pub fn transcript(&self) -> &[u8] {
        self.outer.get(self.inner_start..).unwrap_or_default()
    }
}

// ------------------------------------------------------------------ encryption

/// Which end of the session we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The mdoc reader (sends with SKReader).
    Reader,
    /// The mdoc (sends with SKDevice).
    Device,
}

/// SKReader and SKDevice. Not printable.
#[derive(Clone)]
pub struct SessionKeys {
    sk_reader: [u8; 32],
    sk_device: [u8; 32],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    /// ECDH(own, peer) then HKDF-SHA256 with salt SHA-256(transcript bytes),
    /// infos "SKReader" and "SKDevice" (§9.1.5.2).
    pub fn derive(
        own: &dyn KeyAgreement,
        peer: &EcPublicKey,
        transcript: &SessionTranscriptBytes,
    ) -> Result<Self, MdocError> {
        let z = own.agree(peer)?;
        Ok(Self {
            sk_reader: hkdf_sha256_32(z.as_bytes(), transcript, b"SKReader")?,
            sk_device: hkdf_sha256_32(z.as_bytes(), transcript, b"SKDevice")?,
        })
    }

    /// From known keys (tests, interop).
    pub fn from_keys(sk_reader: [u8; 32], sk_device: [u8; 32]) -> Self {
        Self {
            sk_reader,
            sk_device,
        }
    }

    /// SKReader.
    pub fn sk_reader(&self) -> &[u8; 32] {
        &self.sk_reader
    }

    /// SKDevice.
    pub fn sk_device(&self) -> &[u8; 32] {
        &self.sk_device
    }
}

/// What an incoming SessionData carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The decrypted payload, if any.
    pub data: Option<Vec<u8>>,
    /// The status, if any; any status ends the session.
    pub status: Option<SessionStatus>,
}

/// One role's session encryption state (§9.1.1.5): AES-256-GCM, IV =
/// identifier (reader `00…00`, mdoc `00…01`, 8 bytes) ‖ counter (4 bytes,
/// big-endian, from 1, per direction). Any failure closes the session.
pub struct SessionEncryption {
    role: Role,
    keys: SessionKeys,
    send_counter: u32,
    recv_counter: u32,
    closed: bool,
}

impl fmt::Debug for SessionEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEncryption")
            .field("role", &self.role)
            .field("send_counter", &self.send_counter)
            .field("recv_counter", &self.recv_counter)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn iv(sender: Role, counter: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    if sender == Role::Device {
        iv[7] = 1;
    }
    iv[8..].copy_from_slice(&counter.to_be_bytes());
    iv
}

fn aes_key(key: &[u8; 32]) -> Result<LessSafeKey, MdocError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| MdocError::Crypto("AES key"))
}

fn try_open(key: &LessSafeKey, sender: Role, counter: u32, ct: &[u8]) -> Option<Vec<u8>> {
    let mut buf = ct.to_vec();
    let nonce = Nonce::assume_unique_for_key(iv(sender, counter));
    let len = key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?.len();
    buf.truncate(len);
    Some(buf)
}

impl SessionEncryption {
    /// A fresh state for `role`; both counters start at 1.
    pub fn new(role: Role, keys: SessionKeys) -> Self {
        Self {
            role,
            keys,
            send_counter: 1,
            recv_counter: 1,
            closed: false,
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn peer(&self) -> Role {
        match self.role {
            Role::Reader => Role::Device,
            Role::Device => Role::Reader,
        }
    }

    fn key_of(&self, sender: Role) -> &[u8; 32] {
        match sender {
            Role::Reader => &self.keys.sk_reader,
            Role::Device => &self.keys.sk_device,
        }
    }

    /// Encrypts the next outgoing message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, MdocError> {
        if self.closed {
            return Err(MdocError::SessionClosed);
        }
        let counter = self.send_counter;
        let next = counter.checked_add(1).ok_or(MdocError::CounterExhausted)?;
        let key = aes_key(self.key_of(self.role))?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(iv(self.role, counter)),
            Aad::empty(),
            &mut buf,
        )
        .map_err(|_| MdocError::Crypto("AES-GCM seal"))?;
        self.send_counter = next;
        Ok(buf)
    }

    /// Decrypts the next incoming message. On failure the session closes
    /// and the error names the cause where it can: [`MdocError::Replayed`]
    /// (an earlier counter), [`MdocError::OutOfOrder`] (a later one),
    /// [`MdocError::WrongSessionKey`] (our own direction's key),
    /// else [`MdocError::DecryptionFailed`].
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, MdocError> {
        if self.closed {
            return Err(MdocError::SessionClosed);
        }
        let result = self.decrypt_inner(ciphertext);
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    fn decrypt_inner(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, MdocError> {
        let expected = self.recv_counter;
        let peer = self.peer();
        let key = aes_key(self.key_of(peer))?;
        if let Some(pt) = try_open(&key, peer, expected, ciphertext) {
            self.recv_counter = expected.checked_add(1).ok_or(MdocError::CounterExhausted)?;
            return Ok(pt);
        }
        // Diagnose, within a bounded window.
        let low = expected.saturating_sub(DIAGNOSE_WINDOW).max(1);
        for counter in (low..expected).rev() {
            if try_open(&key, peer, counter, ciphertext).is_some() {
                return Err(MdocError::Replayed { counter });
            }
        }
        let high = expected.saturating_add(DIAGNOSE_WINDOW);
        for counter in expected.saturating_add(1)..=high {
            if try_open(&key, peer, counter, ciphertext).is_some() {
                return Err(MdocError::OutOfOrder {
                    expected,
                    got: counter,
                });
            }
        }
        let own = aes_key(self.key_of(self.role))?;
        let top = self
            .send_counter
            .max(expected)
            .saturating_add(DIAGNOSE_WINDOW);
        for counter in 1..=top {
            if try_open(&own, self.role, counter, ciphertext).is_some()
                || try_open(&own, peer, counter, ciphertext).is_some()
            {
                return Err(MdocError::WrongSessionKey);
            }
        }
        Err(MdocError::DecryptionFailed)
    }

    /// Reader: the SessionEstablishment carrying the encrypted DeviceRequest
    /// (the reader's message 1).
    pub fn establish(
        &mut self,
        e_reader_key: &EcPublicKey,
        device_request: &[u8],
    ) -> Result<SessionEstablishment, MdocError> {
        if self.role != Role::Reader {
            return Err(MdocError::Invalid("only the reader establishes a session"));
        }
        let data = self.encrypt(device_request)?;
        SessionEstablishment::new(e_reader_key, data)
    }

    /// Device: decrypts the DeviceRequest in a SessionEstablishment.
    pub fn open_establishment(
        &mut self,
        establishment: &SessionEstablishment,
    ) -> Result<Vec<u8>, MdocError> {
        if self.role != Role::Device {
            return Err(MdocError::Invalid(
                "only the mdoc receives a session establishment",
            ));
        }
        self.decrypt(establishment.data())
    }

    /// A SessionData with the next encrypted message.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<SessionData, MdocError> {
        Ok(SessionData {
            data: Some(self.encrypt(plaintext)?),
            status: None,
        })
    }

    /// A SessionData ending the session (status 20), with a last message
    /// if given; the session is closed afterwards.
    pub fn terminate(&mut self, last: Option<&[u8]>) -> Result<SessionData, MdocError> {
        let data = last.map(|p| self.encrypt(p)).transpose()?;
        self.closed = true;
        Ok(SessionData {
            data,
            status: Some(SessionStatus::Termination),
        })
    }

    /// The SessionData reporting `error` to the peer (status 10 or 11);
    /// the session is closed.
    pub fn report(&mut self, error: &MdocError) -> SessionData {
        self.closed = true;
        SessionData::status(SessionStatus::for_error(error))
    }

    /// Handles an incoming SessionData: decrypts `data` (if any) and closes
    /// the session on any status.
    pub fn open(&mut self, message: &SessionData) -> Result<Inbound, MdocError> {
        if self.closed {
            return Err(MdocError::SessionClosed);
        }
        let data = message
            .data
            .as_deref()
            .map(|d| self.decrypt(d))
            .transpose()?;
        if message.status.is_some() {
            self.closed = true;
        }
        Ok(Inbound {
            data,
            status: message.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SessionEncryption, SessionEncryption) {
        let keys = SessionKeys::from_keys([1; 32], [2; 32]);
        (
            SessionEncryption::new(Role::Reader, keys.clone()),
            SessionEncryption::new(Role::Device, keys),
        )
    }

    #[test]
    fn iv_layout() {
        assert_eq!(iv(Role::Reader, 1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            iv(Role::Device, 0x0102_0304),
            [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]
        );
    }

    #[test]
    fn round_trip_both_directions() {
        let (mut r, mut d) = pair();
        for i in 0..5u8 {
            let c = r.encrypt(&[i; 3]).unwrap();
            assert_eq!(d.decrypt(&c).unwrap(), [i; 3]);
            let c = d.encrypt(&[i; 7]).unwrap();
            assert_eq!(r.decrypt(&c).unwrap(), [i; 7]);
        }
    }

    #[test]
    fn replay_reorder_reflection_tamper() {
        let (mut r, mut d) = pair();
        let m1 = r.encrypt(b"one").unwrap();
        let m2 = r.encrypt(b"two").unwrap();
        d.decrypt(&m1).unwrap();
        assert_eq!(d.decrypt(&m1), Err(MdocError::Replayed { counter: 1 }));
        assert_eq!(d.decrypt(&m2), Err(MdocError::SessionClosed));

        let (mut r, mut d) = pair();
        let _m1 = r.encrypt(b"one").unwrap();
        let m2 = r.encrypt(b"two").unwrap();
        assert_eq!(
            d.decrypt(&m2),
            Err(MdocError::OutOfOrder {
                expected: 1,
                got: 2
            })
        );

        let (mut r, _) = pair();
        let own = r.encrypt(b"mine").unwrap();
        assert_eq!(r.decrypt(&own), Err(MdocError::WrongSessionKey));

        let (mut r, mut d) = pair();
        let mut m = r.encrypt(b"one").unwrap();
        m[0] ^= 1;
        assert_eq!(d.decrypt(&m), Err(MdocError::DecryptionFailed));
        assert_eq!(d.decrypt(&[]), Err(MdocError::SessionClosed));
    }

    #[test]
    fn status_handling() {
        let (mut r, mut d) = pair();
        let end = d.terminate(Some(b"bye")).unwrap();
        assert!(d.is_closed());
        assert_eq!(d.encrypt(b"x"), Err(MdocError::SessionClosed));
        let wire = end.encode().unwrap();
        let inbound = r.open(&parse_session_data(&wire).unwrap()).unwrap();
        assert_eq!(inbound.data.as_deref(), Some(&b"bye"[..]));
        assert_eq!(inbound.status, Some(SessionStatus::Termination));
        assert!(r.is_closed());
        assert_eq!(
            SessionData::status(SessionStatus::Termination)
                .encode()
                .unwrap(),
            [0xa1, 0x66, b's', b't', b'a', b't', b'u', b's', 0x14]
        );
        let err = SessionStatus::for_error(&MdocError::MalformedCbor("x"));
        assert_eq!(err.code(), 11);
        assert_eq!(
            SessionStatus::for_error(&MdocError::DecryptionFailed).code(),
            10
        );
        assert!(parse_session_data(&[0xa0]).is_err());
        assert!(
            parse_session_data(&[0xa1, 0x66, b's', b't', b'a', b't', b'u', b's', 0x15]).is_err()
        );
    }

    #[test]
    fn engagement_round_trip_and_uri() {
        let key = EphemeralKey::generate().unwrap();
        let ble = RetrievalMethod {
            kind: 2,
            version: 1,
            options: Value::Map(vec![(Value::from(0), Value::Bool(false))]),
        };
        let de = DeviceEngagement::build(&key.public_key(), vec![ble]).unwrap();
        let uri = de.to_uri();
        assert!(uri.starts_with("mdoc:"));
        let back = parse_device_engagement_uri(&uri).unwrap();
        assert_eq!(back, de);
        assert_eq!(back.e_device_key(), &key.public_key());
        assert!(parse_device_engagement_uri("http:abc").is_err());
    }

    #[test]
    fn engagement_rejects() {
        // Cipher suite 2.
        let key = EphemeralKey::generate().unwrap().public_key();
        let bad = cbor::encode(&Value::Map(vec![
            (Value::from(0), Value::Text("1.0".into())),
            (
                Value::from(1),
                Value::Array(vec![
                    Value::from(2),
                    cbor::tag24(&key.to_cose_key().unwrap()),
                ]),
            ),
        ]))
        .unwrap();
        assert_eq!(
            parse_device_engagement(&bad),
            Err(MdocError::Unsupported("cipher suite"))
        );
        assert!(parse_device_engagement(&[0xa0]).is_err());
        assert!(parse_device_engagement(&[]).is_err());
    }

    #[test]
    fn ecdh_agrees_and_keys_match() {
        let a = EphemeralKey::generate().unwrap();
        let b = EphemeralKey::generate().unwrap();
        let t = SessionTranscript {
            device_engagement: vec![0xa0],
            e_reader_key: vec![0xa0],
            handover: Handover::Qr,
        }
        .to_bytes()
        .unwrap();
        let ka = SessionKeys::derive(&a, &b.public_key(), &t).unwrap();
        let kb = SessionKeys::derive(&b, &a.public_key(), &t).unwrap();
        assert_eq!(ka.sk_reader(), kb.sk_reader());
        assert_eq!(ka.sk_device(), kb.sk_device());
        assert_ne!(ka.sk_reader(), ka.sk_device());
        // Not on the curve.
        let off = EcPublicKey::from_xy(&[1; 32], &[2; 32]).unwrap();
        assert!(a.agree(&off).is_err());
        assert_eq!(
            t.transcript(),
            [0x83, 0xd8, 0x18, 0x41, 0xa0, 0xd8, 0x18, 0x41, 0xa0, 0xf6]
        );
    }
}
