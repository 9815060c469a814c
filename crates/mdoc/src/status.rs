//! The IETF Token Status List (draft-ietf-oauth-status-list; profiled by
//! ISO/IEC 18013-5 2nd edition §12.3.6 for MSO revocation).
//!
//! * [`StatusList`]: `bits` ∈ {1, 2, 4, 8} per entry, packed LSB-first in
//!   each byte; [`STATUS_VALID`] 0x00, [`STATUS_INVALID`] 0x01,
//!   [`STATUS_SUSPENDED`] 0x02 (needs `bits ≥ 2`). Serialised as the CBOR
//!   `{"bits": n, "lst": bstr}` with `lst` DEFLATE-compressed in the ZLIB
//!   format (RFC 1950), best compression.
//! * [`sign_status_list_token`]: the Status List Token as a CWT — a tagged
//!   COSE_Sign1 (ES256) whose protected header carries `alg`, `typ` (16)
//!   `application/statuslist+cwt` and `x5chain` (33; 18013-5 wants it
//!   protected), and whose claims are `2` sub (= the list URI), `6` iat,
//!   `4` exp, `65534` ttl and `65533` status_list.
//! * [`verify_status_list_token`]: signature, signer certificate issued by
//!   a trusted IACA and valid at `now`, `sub` = the expected URI, `exp`
//!   present and not passed, and a bounded decompression
//!   ([`StatusListLimits`]): a hostile `lst` cannot inflate past the cap.
//!
//! 18013-5 asks for `bits = 1` (VALID/INVALID only) for mDL; the Japanese
//! card may be suspended (一時停止) so the authority may publish 2-bit lists.
//! Both are parsed.

use std::io::Read;

use ciborium::Value;
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use shomei_core::{Signer, Timestamp};

use crate::error::MdocError;
use crate::issuer::{TrustedIacas, es256_sign, es256_verify, x5chain_of};
use crate::mso::{MAX_CBOR_BYTES, as_map, decode, encode, int_of, text_key, uint_of};

/// VALID.
pub const STATUS_VALID: u8 = 0x00;
/// INVALID (revoked; permanent).
pub const STATUS_INVALID: u8 = 0x01;
/// SUSPENDED (temporarily invalid).
pub const STATUS_SUSPENDED: u8 = 0x02;

/// The CWT `typ` of a Status List Token.
pub const STATUS_LIST_CWT_TYPE: &str = "application/statuslist+cwt";
/// COSE header label `typ` (RFC 9596).
pub const HEADER_TYP: i64 = 16;
/// COSE header label `x5chain` (RFC 9360).
pub const HEADER_X5CHAIN: i64 = 33;
/// CWT claim `sub`.
pub const CLAIM_SUB: i64 = 2;
/// CWT claim `exp`.
pub const CLAIM_EXP: i64 = 4;
/// CWT claim `iat`.
pub const CLAIM_IAT: i64 = 6;
/// CWT claim `ttl` (draft-ietf-oauth-status-list).
pub const CLAIM_TTL: i64 = 65534;
/// CWT claim `status_list` (draft-ietf-oauth-status-list).
pub const CLAIM_STATUS_LIST: i64 = 65533;

/// A status list: `bits` per entry, LSB-first packing.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusList {
    bits: u8,
    bytes: Vec<u8>,
}

impl core::fmt::Debug for StatusList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "StatusList(bits {}, {} entries)", self.bits, self.len())
    }
}

fn check_bits(bits: u8) -> Result<(), MdocError> {
    if matches!(bits, 1 | 2 | 4 | 8) {
        Ok(())
    } else {
        Err(MdocError::Invalid("status list bits must be 1, 2, 4 or 8"))
    }
}

impl StatusList {
    /// A list of at least `entries` entries, all VALID (rounded up to whole
    /// bytes). Pick a size much larger than the number of credentials so an
    /// index tells little (herd privacy), and hand out indices at random.
    pub fn new(bits: u8, entries: u64) -> Result<Self, MdocError> {
        check_bits(bits)?;
        let per_byte = u64::from(8 / bits);
        let n = entries.div_ceil(per_byte).max(1);
        let n = usize::try_from(n).map_err(|_| MdocError::LimitExceeded("status list size"))?;
        if n > MAX_CBOR_BYTES {
            return Err(MdocError::LimitExceeded("status list size"));
        }
        Ok(Self {
            bits,
            bytes: vec![0; n],
        })
    }

    /// From the uncompressed byte array.
    pub fn from_bytes(bits: u8, bytes: Vec<u8>) -> Result<Self, MdocError> {
        check_bits(bits)?;
        if bytes.is_empty() {
            return Err(MdocError::Invalid("empty status list"));
        }
        Ok(Self { bits, bytes })
    }

    /// Bits per entry.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * u64::from(8 / self.bits)
    }

    /// Never true (a list has at least one byte); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The uncompressed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn locate(&self, idx: u64) -> Result<(usize, u32, u8), MdocError> {
        if idx >= self.len() {
            return Err(MdocError::StatusIndexOutOfRange);
        }
        let per_byte = u64::from(8 / self.bits);
        let byte = usize::try_from(idx / per_byte).map_err(|_| MdocError::StatusIndexOutOfRange)?;
        let shift = u32::try_from((idx % per_byte) * u64::from(self.bits))
            .map_err(|_| MdocError::StatusIndexOutOfRange)?;
        let mask = u8::try_from((1u16 << self.bits) - 1).unwrap_or(u8::MAX);
        Ok((byte, shift, mask))
    }

    /// The status at `idx`.
    pub fn get(&self, idx: u64) -> Result<u8, MdocError> {
        let (byte, shift, mask) = self.locate(idx)?;
        Ok((self.bytes[byte] >> shift) & mask)
    }

    /// Sets the status at `idx` (the value must fit in `bits`).
    pub fn set(&mut self, idx: u64, status: u8) -> Result<(), MdocError> {
        let (byte, shift, mask) = self.locate(idx)?;
        if status & !mask != 0 {
            return Err(MdocError::Invalid(
                "status value does not fit the list's bits",
            ));
        }
        self.bytes[byte] = (self.bytes[byte] & !(mask << shift)) | (status << shift);
        Ok(())
    }

    /// `lst`: the bytes DEFLATE-compressed in ZLIB format, best compression.
    pub fn compressed(&self) -> Result<Vec<u8>, MdocError> {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&self.bytes)
            .map_err(|_| MdocError::Crypto("zlib compression"))?;
        enc.finish()
            .map_err(|_| MdocError::Crypto("zlib compression"))
    }

    /// From `bits` and a ZLIB-compressed `lst`, inflating at most
    /// `limits.max_bytes` bytes: anything longer is
    /// [`MdocError::LimitExceeded`] (a decompression bomb never gets past
    /// the cap). Trailing garbage and bad checksums are refused.
    pub fn from_compressed(
        bits: u8,
        lst: &[u8],
        limits: StatusListLimits,
    ) -> Result<Self, MdocError> {
        check_bits(bits)?;
        let mut dec = flate2::read::ZlibDecoder::new(lst);
        let mut out = Vec::new();
        let cap = u64::try_from(limits.max_bytes).unwrap_or(u64::MAX);
        (&mut dec)
            .take(cap.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|_| MdocError::Invalid("status list: bad zlib data"))?;
        if out.len() > limits.max_bytes {
            return Err(MdocError::LimitExceeded("status list decompressed size"));
        }
        if dec.total_in() != lst.len() as u64 {
            return Err(MdocError::Invalid(
                "status list: bytes after the zlib stream",
            ));
        }
        Self::from_bytes(bits, out)
    }

    /// The CBOR `StatusList` `{"bits": n, "lst": bstr}`.
    pub fn to_value(&self) -> Result<Value, MdocError> {
        Ok(Value::Map(vec![
            (Value::from("bits"), Value::from(self.bits)),
            (Value::from("lst"), Value::Bytes(self.compressed()?)),
        ]))
    }

    /// Parses the CBOR `StatusList`.
    pub fn from_value(v: &Value, limits: StatusListLimits) -> Result<Self, MdocError> {
        let m = as_map(v, "StatusList")?;
        let bits = text_key(m, "bits")
            .and_then(uint_of)
            .and_then(|b| u8::try_from(b).ok())
            .ok_or(MdocError::MalformedCbor("StatusList: bits"))?;
        let Some(Value::Bytes(lst)) = text_key(m, "lst") else {
            return Err(MdocError::MalformedCbor("StatusList: lst"));
        };
        Self::from_compressed(bits, lst, limits)
    }
}

/// Bounds on what a status list may inflate to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusListLimits {
    /// Largest decompressed list in bytes (16 MiB by default: 134 million
    /// 1-bit entries, more than Japan's population).
    pub max_bytes: usize,
}

impl Default for StatusListLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What goes into a Status List Token besides the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusListTokenClaims {
    /// `sub`: the URI the list is served at (what MSOs reference).
    pub uri: String,
    /// `iat`.
    pub issued_at: Timestamp,
    /// `exp` (18013-5 requires it).
    pub expires: Timestamp,
    /// `ttl` in seconds: how long a relying party may cache it.
    pub ttl_seconds: Option<u64>,
}

/// Signs a Status List Token (CWT: tagged COSE_Sign1, ES256). `chain` is the
/// signer's certificate (issued by the IACA) first, then any others.
pub fn sign_status_list_token(
    list: &StatusList,
    claims: &StatusListTokenClaims,
    signer: &dyn Signer,
    chain: &[Vec<u8>],
) -> Result<Vec<u8>, MdocError> {
    let Some(first) = chain.first() else {
        return Err(MdocError::Invalid("status list token needs a certificate"));
    };
    let x5chain = if chain.len() == 1 {
        Value::Bytes(first.clone())
    } else {
        Value::Array(chain.iter().map(|c| Value::Bytes(c.clone())).collect())
    };
    let mut cl = vec![
        (Value::from(CLAIM_SUB), Value::from(claims.uri.as_str())),
        (
            Value::from(CLAIM_IAT),
            Value::from(claims.issued_at.unix_timestamp()),
        ),
        (
            Value::from(CLAIM_EXP),
            Value::from(claims.expires.unix_timestamp()),
        ),
    ];
    if let Some(ttl) = claims.ttl_seconds {
        cl.push((Value::from(CLAIM_TTL), Value::from(ttl)));
    }
    cl.push((Value::from(CLAIM_STATUS_LIST), list.to_value()?));
    let payload = encode(&Value::Map(cl))?;
    let protected = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::ES256)
        .value(HEADER_TYP, Value::from(STATUS_LIST_CWT_TYPE))
        .value(HEADER_X5CHAIN, x5chain)
        .build();
    let unsigned = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .build();
    let signed = es256_sign(unsigned, signer)?;
    signed
        .to_tagged_vec()
        .map_err(|_| MdocError::MalformedCbor("cannot encode COSE_Sign1"))
}

/// A Status List Token whose signature, signer, `sub` and `exp` were
/// checked; only [`verify_status_list_token`] makes one.
#[derive(Clone, Debug)]
pub struct VerifiedStatusList {
    uri: String,
    list: StatusList,
    issued_at: Timestamp,
    expires: Timestamp,
    ttl_seconds: Option<u64>,
    iaca_der: Vec<u8>,
}

impl VerifiedStatusList {
    /// The list URI (`sub`).
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// The list.
    pub fn list(&self) -> &StatusList {
        &self.list
    }
    /// `iat`.
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }
    /// `exp`.
    pub fn expires(&self) -> Timestamp {
        self.expires
    }
    /// `ttl`, if given.
    pub fn ttl_seconds(&self) -> Option<u64> {
        self.ttl_seconds
    }
    /// The IACA the signer chained to (DER).
    pub fn iaca_der(&self) -> &[u8] {
        &self.iaca_der
    }

    /// The status of a referenced token at `idx`: Ok for VALID,
    /// [`MdocError::Revoked`] for INVALID, [`MdocError::Suspended`] for
    /// SUSPENDED, [`MdocError::Invalid`] for other (application-specific)
    /// values, [`MdocError::StatusIndexOutOfRange`] past the end.
    pub fn check(&self, idx: u64) -> Result<(), MdocError> {
        match self.list.get(idx)? {
            STATUS_VALID => Ok(()),
            STATUS_INVALID => Err(MdocError::Revoked),
            STATUS_SUSPENDED => Err(MdocError::Suspended),
            _ => Err(MdocError::Invalid(
                "status value is neither valid nor known",
            )),
        }
    }
}

/// Verifies a Status List Token fetched from `expected_uri`: tagged or
/// untagged COSE_Sign1 with ES256 and the `statuslist+cwt` type, `x5chain`
/// (protected or unprotected) whose first certificate is issued by a
/// trusted IACA and valid at `now`, the signature, `sub == expected_uri`,
/// `exp` present and not passed, `iat` present, then the list (bounded).
pub fn verify_status_list_token(
    token: &[u8],
    expected_uri: &str,
    trust: &TrustedIacas,
    now: Timestamp,
    limits: StatusListLimits,
) -> Result<VerifiedStatusList, MdocError> {
    if token.len() > MAX_CBOR_BYTES {
        return Err(MdocError::LimitExceeded("status list token size"));
    }
    let sign1 = CoseSign1::from_tagged_slice(token)
        .or_else(|_| CoseSign1::from_slice(token))
        .map_err(|_| MdocError::MalformedCbor("status list token: not COSE_Sign1"))?;
    let typ = sign1
        .protected
        .header
        .rest
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(HEADER_TYP))
        .map(|(_, v)| v);
    if !matches!(typ, Some(Value::Text(t)) if t == STATUS_LIST_CWT_TYPE) {
        return Err(MdocError::Invalid("status list token: typ"));
    }
    let chain = x5chain_of(&sign1)?;
    let (iaca_der, signer_cert) = trust.check_chain(&chain, now, None)?;
    es256_verify(&sign1, &signer_cert)?;
    let payload = sign1
        .payload
        .as_deref()
        .ok_or(MdocError::MalformedCbor("status list token: no payload"))?;
    let claims = decode(payload)?;
    let m = as_map(&claims, "CWT claims")?;
    let claim = |label: i64| {
        m.iter()
            .find(|(k, _)| int_of(k) == Some(label))
            .map(|(_, v)| v)
    };
    let sub = match claim(CLAIM_SUB) {
        Some(Value::Text(s)) => s.clone(),
        _ => return Err(MdocError::MalformedCbor("status list token: sub")),
    };
    if sub != expected_uri {
        return Err(MdocError::StatusListMismatch);
    }
    let time_claim = |label, what| {
        claim(label)
            .and_then(int_of)
            .and_then(|t| Timestamp::from_unix_timestamp(t).ok())
            .ok_or(MdocError::MalformedCbor(what))
    };
    let issued_at = time_claim(CLAIM_IAT, "status list token: iat")?;
    let expires = time_claim(CLAIM_EXP, "status list token: exp")?;
    if now >= expires {
        return Err(MdocError::StatusListExpired);
    }
    let ttl_seconds = match claim(CLAIM_TTL) {
        Some(v) => Some(uint_of(v).ok_or(MdocError::MalformedCbor("status list token: ttl"))?),
        None => None,
    };
    let list = StatusList::from_value(
        claim(CLAIM_STATUS_LIST)
            .ok_or(MdocError::MalformedCbor("status list token: status_list"))?,
        limits,
    )?;
    Ok(VerifiedStatusList {
        uri: sub,
        list,
        issued_at,
        expires,
        ttl_seconds,
        iaca_der,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use time::macros::datetime;

    use super::*;
    use crate::issuer::test_support::Pki;

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);
    const URI: &str = "http://127.0.0.1:8700/status/mdoc/1";

    #[test]
    fn the_drafts_example_compresses_as_published() {
        // draft-ietf-oauth-status-list §4.1: [0xb9, 0xa3] → "eNrbuRgAAhcBXQ".
        let l = StatusList::from_bytes(1, vec![0xb9, 0xa3]).unwrap();
        let z = l.compressed().unwrap();
        assert_eq!(
            z,
            [0x78, 0xda, 0xdb, 0xb9, 0x18, 0x00, 0x02, 0x17, 0x01, 0x5d]
        );
        let back = StatusList::from_compressed(1, &z, StatusListLimits::default()).unwrap();
        assert_eq!(back, l);
        // LSB first: index 0 is bit 0 of byte 0 (0xb9 = 1011_1001).
        let got: Vec<u8> = (0..16).map(|i| l.get(i).unwrap()).collect();
        assert_eq!(got, [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]);
    }

    #[test]
    fn two_bit_lists_set_and_get_each_entry_alone() {
        let mut l = StatusList::new(2, 10).unwrap();
        assert_eq!(l.len(), 12);
        l.set(0, STATUS_INVALID).unwrap();
        l.set(5, STATUS_SUSPENDED).unwrap();
        l.set(11, 3).unwrap();
        assert_eq!(l.get(0).unwrap(), 1);
        assert_eq!(l.get(1).unwrap(), 0);
        assert_eq!(l.get(5).unwrap(), 2);
        assert_eq!(l.get(11).unwrap(), 3);
        l.set(5, STATUS_VALID).unwrap();
        assert_eq!(l.get(5).unwrap(), 0);
        assert_eq!(
            l.set(1, 4),
            Err(MdocError::Invalid(
                "status value does not fit the list's bits"
            ))
        );
        assert_eq!(l.get(12), Err(MdocError::StatusIndexOutOfRange));
        assert_eq!(l.get(u64::MAX), Err(MdocError::StatusIndexOutOfRange));
        assert!(StatusList::new(3, 1).is_err());
        let mut one = StatusList::new(1, 8).unwrap();
        assert!(one.set(0, STATUS_SUSPENDED).is_err());
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_cap() {
        // 64 MiB of zeros compress to ~64 KiB.
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 1024 * 1024);
        assert_eq!(
            StatusList::from_compressed(1, &bomb, StatusListLimits::default()),
            Err(MdocError::LimitExceeded("status list decompressed size"))
        );
        let small = StatusListLimits { max_bytes: 1000 };
        let ok = StatusList::new(1, 8000).unwrap().compressed().unwrap();
        assert!(StatusList::from_compressed(1, &ok, small).is_ok());
        let over = StatusList::new(1, 8008).unwrap().compressed().unwrap();
        assert!(matches!(
            StatusList::from_compressed(1, &over, small),
            Err(MdocError::LimitExceeded(_))
        ));
        // Raw DEFLATE without the zlib header, garbage and trailing bytes are refused.
        assert!(StatusList::from_compressed(1, &[0x03, 0x00], small).is_err());
        assert!(StatusList::from_compressed(1, b"not zlib", small).is_err());
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(StatusList::from_compressed(1, &trailing, small).is_err());
    }

    fn token(pki: &Pki, list: &StatusList, uri: &str, exp: Timestamp) -> Vec<u8> {
        sign_status_list_token(
            list,
            &StatusListTokenClaims {
                uri: uri.into(),
                issued_at: NOW,
                expires: exp,
                ttl_seconds: Some(3600),
            },
            &pki.ds_key,
            std::slice::from_ref(&pki.ds_cert),
        )
        .unwrap()
    }

    #[test]
    fn token_round_trips_and_each_check_has_its_error() {
        let pki = Pki::new(NOW);
        let mut list = StatusList::new(2, 1000).unwrap();
        list.set(7, STATUS_INVALID).unwrap();
        list.set(8, STATUS_SUSPENDED).unwrap();
        let t = token(&pki, &list, URI, NOW + time::Duration::hours(1));
        assert_eq!(t[0], 0xd2, "tagged COSE_Sign1");
        let v = verify_status_list_token(&t, URI, &pki.trust, NOW, StatusListLimits::default())
            .unwrap();
        assert_eq!(v.list(), &list);
        assert_eq!(v.uri(), URI);
        assert_eq!(v.ttl_seconds(), Some(3600));
        assert_eq!(v.expires(), NOW + time::Duration::hours(1));
        assert_eq!(v.check(1), Ok(()));
        assert_eq!(v.check(7), Err(MdocError::Revoked));
        assert_eq!(v.check(8), Err(MdocError::Suspended));
        assert_eq!(v.check(1000), Err(MdocError::StatusIndexOutOfRange));

        let limits = StatusListLimits::default();
        // Wrong URI, expired, untrusted signer, tampered.
        assert_eq!(
            verify_status_list_token(&t, "http://elsewhere/1", &pki.trust, NOW, limits)
                .unwrap_err(),
            MdocError::StatusListMismatch
        );
        assert_eq!(
            verify_status_list_token(&t, URI, &pki.trust, NOW + time::Duration::hours(2), limits)
                .unwrap_err(),
            MdocError::StatusListExpired
        );
        let other = Pki::new(NOW);
        assert_eq!(
            verify_status_list_token(&t, URI, &other.trust, NOW, limits).unwrap_err(),
            MdocError::UntrustedIaca
        );
        let mut bad = t.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(
            verify_status_list_token(&bad, URI, &pki.trust, NOW, limits).unwrap_err(),
            MdocError::BadSignature
        );
        assert!(verify_status_list_token(&[], URI, &pki.trust, NOW, limits).is_err());
    }

    #[test]
    fn a_signed_bomb_is_refused_after_the_signature() {
        let pki = Pki::new(NOW);
        let big = StatusList::new(1, 8 * 2048).unwrap();
        let t = token(&pki, &big, URI, NOW + time::Duration::hours(1));
        assert_eq!(
            verify_status_list_token(
                &t,
                URI,
                &pki.trust,
                NOW,
                StatusListLimits { max_bytes: 1024 }
            )
            .unwrap_err(),
            MdocError::LimitExceeded("status list decompressed size")
        );
    }
}
