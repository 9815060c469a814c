//! The Mobile Security Object (ISO/IEC 18013-5 §9.1.2.4) and the pieces it
//! is made of: the device key as a COSE_Key, the validity window as `tdate`s,
//! and the 2nd-edition `status` reference into a Token Status List.
//!
//! ```text
//! MobileSecurityObject = {
//!   "version": "1.0", "digestAlgorithm": "SHA-256",
//!   "valueDigests": { NameSpace => { DigestID => bstr } },
//!   "deviceKeyInfo": { "deviceKey": COSE_Key },
//!   "docType": tstr,
//!   "validityInfo": { "signed": tdate, "validFrom": tdate, "validUntil": tdate },
//!   ? "status": { "status_list": { "idx": uint, "uri": tstr } }
//! }
//! MobileSecurityObjectBytes = #6.24(bstr .cbor MobileSecurityObject)
//! ```
//!
//! Encoding is deterministic in the sense 18013-5 asks for (shortest integers
//! and lengths, definite lengths); maps are written in the order above.
//! Parsing never panics and ignores unknown MSO keys.

use std::collections::BTreeMap;

use ciborium::Value;
use shomei_core::Timestamp;
use time::format_description::well_known::Rfc3339;

use crate::error::MdocError;

/// The only MSO version.
pub const MSO_VERSION: &str = "1.0";
/// The digest algorithm we issue and accept.
pub const DIGEST_ALGORITHM: &str = "SHA-256";
/// CBOR tag 24: encoded CBOR data item.
pub const TAG_ENCODED_CBOR: u64 = 24;
/// CBOR tag 0: date/time string (`tdate`).
pub const TAG_TDATE: u64 = 0;
/// CBOR tag 1004: RFC 8943 full-date string.
pub const TAG_FULL_DATE: u64 = 1004;
/// Largest CBOR input we decode in one piece (an MSO, an item, a list token).
pub const MAX_CBOR_BYTES: usize = 16 * 1024 * 1024;

/// The MSO's `deviceKey` (COSE_Key, kty EC2, crv P-256): the same P-256
/// key type the session uses.
pub type DeviceKey = crate::session::EcPublicKey;

/// `validityInfo`. All three instants are whole seconds, written in UTC with
/// `Z` (18013-5 §9.1.2.4: no fractions, no offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidityInfo {
    /// When the MSO was signed.
    pub signed: Timestamp,
    /// Start of validity.
    pub valid_from: Timestamp,
    /// End of validity.
    pub valid_until: Timestamp,
    /// Optional expected next update (issuer hint), written only if set.
    pub expected_update: Option<Timestamp>,
}

impl ValidityInfo {
    /// `signed = valid_from = now`, `valid_until = now + lifetime`, all
    /// truncated to the second.
    pub fn starting(now: Timestamp, lifetime: time::Duration) -> Self {
        let now = whole_seconds(now);
        Self {
            signed: now,
            valid_from: now,
            valid_until: whole_seconds(now + lifetime),
            expected_update: None,
        }
    }

    /// Checks the window at `now`: `signed ≤ now`, `validFrom ≤ now ≤ validUntil`.
    pub fn check(&self, now: Timestamp) -> Result<(), MdocError> {
        if self.signed > now || self.valid_from > now {
            return Err(MdocError::NotYetValid);
        }
        if now > self.valid_until {
            return Err(MdocError::Expired);
        }
        Ok(())
    }

    fn to_value(self) -> Result<Value, MdocError> {
        let mut m = vec![
            (Value::from("signed"), tdate(self.signed)?),
            (Value::from("validFrom"), tdate(self.valid_from)?),
            (Value::from("validUntil"), tdate(self.valid_until)?),
        ];
        if let Some(t) = self.expected_update {
            m.push((Value::from("expectedUpdate"), tdate(t)?));
        }
        Ok(Value::Map(m))
    }

    fn from_value(v: &Value) -> Result<Self, MdocError> {
        let m = as_map(v, "validityInfo")?;
        let get = |k: &str| {
            text_key(m, k)
                .ok_or(MdocError::MalformedCbor("validityInfo: missing date"))
                .and_then(parse_tdate)
        };
        let vi = Self {
            signed: get("signed")?,
            valid_from: get("validFrom")?,
            valid_until: get("validUntil")?,
            expected_update: text_key(m, "expectedUpdate").map(parse_tdate).transpose()?,
        };
        if vi.valid_until < vi.valid_from {
            return Err(MdocError::Invalid(
                "validityInfo: validUntil before validFrom",
            ));
        }
        Ok(vi)
    }
}

/// Truncates to whole seconds (tdate has no fractions).
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// `#6.0("YYYY-MM-DDThh:mm:ssZ")`, UTC, whole seconds.
pub fn tdate(t: Timestamp) -> Result<Value, MdocError> {
    let t = whole_seconds(t).to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let s = t
        .format(&fmt)
        .map_err(|_| MdocError::Invalid("date out of range for tdate"))?;
    Ok(Value::Tag(TAG_TDATE, Box::new(Value::Text(s))))
}

/// Parses a `tdate` (tag 0, RFC 3339). Fractions and offsets are accepted
/// from others; we never write them.
pub fn parse_tdate(v: &Value) -> Result<Timestamp, MdocError> {
    match v {
        Value::Tag(TAG_TDATE, inner) => match inner.as_ref() {
            Value::Text(s) => Timestamp::parse(s, &Rfc3339)
                .map_err(|_| MdocError::MalformedCbor("tdate: not RFC 3339")),
            _ => Err(MdocError::MalformedCbor("tdate: not text")),
        },
        _ => Err(MdocError::MalformedCbor("tdate: tag 0 expected")),
    }
}

/// `#6.1004("YYYY-MM-DD")`.
pub fn full_date(d: time::Date) -> Value {
    Value::Tag(
        TAG_FULL_DATE,
        Box::new(Value::Text(format!(
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        ))),
    )
}

/// The MSO's `status`: where the credential's status lives in a Token
/// Status List (`{"status_list": {"idx": n, "uri": "…"}}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRef {
    /// Index into the list.
    pub idx: u64,
    /// The list's URI (the Status List Token's `sub`).
    pub uri: String,
}

impl StatusRef {
    fn to_value(&self) -> Value {
        Value::Map(vec![(
            Value::from("status_list"),
            Value::Map(vec![
                (Value::from("idx"), Value::from(self.idx)),
                (Value::from("uri"), Value::from(self.uri.as_str())),
            ]),
        )])
    }

    /// `None` if the status carries no `status_list` (e.g. only an
    /// identifier list, which we do not use).
    fn from_value(v: &Value) -> Result<Option<Self>, MdocError> {
        let m = as_map(v, "status")?;
        let Some(sl) = text_key(m, "status_list") else {
            return Ok(None);
        };
        let sl = as_map(sl, "status_list")?;
        let idx = text_key(sl, "idx")
            .and_then(uint_of)
            .ok_or(MdocError::MalformedCbor("status_list: idx"))?;
        let uri = match text_key(sl, "uri") {
            Some(Value::Text(u)) => u.clone(),
            _ => return Err(MdocError::MalformedCbor("status_list: uri")),
        };
        Ok(Some(Self { idx, uri }))
    }
}

/// The Mobile Security Object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MobileSecurityObject {
    /// `docType`.
    pub doc_type: String,
    /// `valueDigests`: name space → digestID → SHA-256 digest.
    pub value_digests: BTreeMap<String, BTreeMap<u64, Vec<u8>>>,
    /// `deviceKeyInfo.deviceKey`.
    pub device_key: DeviceKey,
    /// `validityInfo`.
    pub validity: ValidityInfo,
    /// `status` (2nd edition), if the issuer gave one.
    pub status: Option<StatusRef>,
}

impl MobileSecurityObject {
    /// The MSO as a CBOR value.
    pub fn to_value(&self) -> Result<Value, MdocError> {
        let digests = self
            .value_digests
            .iter()
            .map(|(ns, ds)| {
                (
                    Value::from(ns.as_str()),
                    Value::Map(
                        ds.iter()
                            .map(|(id, d)| (Value::from(*id), Value::Bytes(d.clone())))
                            .collect(),
                    ),
                )
            })
            .collect();
        let mut m = vec![
            (Value::from("version"), Value::from(MSO_VERSION)),
            (
                Value::from("digestAlgorithm"),
                Value::from(DIGEST_ALGORITHM),
            ),
            (Value::from("valueDigests"), Value::Map(digests)),
            (
                Value::from("deviceKeyInfo"),
                Value::Map(vec![(
                    Value::from("deviceKey"),
                    self.device_key.to_cose_key_value(),
                )]),
            ),
            (Value::from("docType"), Value::from(self.doc_type.as_str())),
            (Value::from("validityInfo"), self.validity.to_value()?),
        ];
        if let Some(s) = &self.status {
            m.push((Value::from("status"), s.to_value()));
        }
        Ok(Value::Map(m))
    }

    /// MobileSecurityObjectBytes: `#6.24(bstr .cbor MSO)`, encoded.
    pub fn to_tagged_bytes(&self) -> Result<Vec<u8>, MdocError> {
        let inner = encode(&self.to_value()?)?;
        encode(&Value::Tag(TAG_ENCODED_CBOR, Box::new(Value::Bytes(inner))))
    }

    /// Parses MobileSecurityObjectBytes (the COSE_Sign1 payload).
    pub fn from_tagged_bytes(bytes: &[u8]) -> Result<Self, MdocError> {
        let inner = untag24(&decode(bytes)?)?;
        Self::from_value(&decode(&inner)?)
    }

    /// Parses the MSO map. Only version 1.0 with SHA-256 is accepted.
    pub fn from_value(v: &Value) -> Result<Self, MdocError> {
        let m = as_map(v, "MSO")?;
        let text = |k: &str| match text_key(m, k) {
            Some(Value::Text(t)) => Ok(t.as_str()),
            _ => Err(MdocError::MalformedCbor("MSO: missing text field")),
        };
        if text("version")? != MSO_VERSION {
            return Err(MdocError::Unsupported("MSO version"));
        }
        if text("digestAlgorithm")? != DIGEST_ALGORITHM {
            return Err(MdocError::Unsupported(
                "MSO digest algorithm (SHA-256 only)",
            ));
        }
        let doc_type = text("docType")?.to_owned();
        let vd =
            text_key(m, "valueDigests").ok_or(MdocError::MalformedCbor("MSO: valueDigests"))?;
        let mut value_digests = BTreeMap::new();
        for (ns, ds) in as_map(vd, "valueDigests")? {
            let Value::Text(ns) = ns else {
                return Err(MdocError::MalformedCbor(
                    "valueDigests: name space not text",
                ));
            };
            let mut ids = BTreeMap::new();
            for (id, d) in as_map(ds, "DigestIDs")? {
                let id = uint_of(id).ok_or(MdocError::MalformedCbor("digestID not uint"))?;
                let Value::Bytes(d) = d else {
                    return Err(MdocError::MalformedCbor("digest not bstr"));
                };
                if d.len() != 32 || ids.insert(id, d.clone()).is_some() {
                    return Err(MdocError::MalformedCbor("digest: 32 bytes, unique id"));
                }
            }
            if value_digests.insert(ns.clone(), ids).is_some() {
                return Err(MdocError::MalformedCbor(
                    "valueDigests: duplicate name space",
                ));
            }
        }
        let dki =
            text_key(m, "deviceKeyInfo").ok_or(MdocError::MalformedCbor("MSO: deviceKeyInfo"))?;
        let dk = text_key(as_map(dki, "deviceKeyInfo")?, "deviceKey")
            .ok_or(MdocError::MalformedCbor("MSO: deviceKey"))?;
        let device_key = DeviceKey::from_cose_key_value(dk)?;
        let validity = ValidityInfo::from_value(
            text_key(m, "validityInfo").ok_or(MdocError::MalformedCbor("MSO: validityInfo"))?,
        )?;
        let status = match text_key(m, "status") {
            Some(s) => StatusRef::from_value(s)?,
            None => None,
        };
        Ok(Self {
            doc_type,
            value_digests,
            device_key,
            validity,
            status,
        })
    }
}

// ---- small CBOR helpers (crate-internal) ----

/// Encodes a value (definite lengths, shortest integers).
pub(crate) fn encode(v: &Value) -> Result<Vec<u8>, MdocError> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|_| MdocError::MalformedCbor("cannot encode"))?;
    Ok(out)
}

/// Decodes exactly one value, refusing trailing bytes and oversize input.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, MdocError> {
    if bytes.len() > MAX_CBOR_BYTES {
        return Err(MdocError::LimitExceeded("CBOR input size"));
    }
    let mut rd = bytes;
    let v: Value =
        ciborium::from_reader(&mut rd).map_err(|_| MdocError::MalformedCbor("not CBOR"))?;
    if !rd.is_empty() {
        return Err(MdocError::MalformedCbor("trailing bytes"));
    }
    Ok(v)
}

/// The bstr inside `#6.24(bstr)`.
pub(crate) fn untag24(v: &Value) -> Result<Vec<u8>, MdocError> {
    match v {
        Value::Tag(TAG_ENCODED_CBOR, inner) => match inner.as_ref() {
            Value::Bytes(b) => Ok(b.clone()),
            _ => Err(MdocError::MalformedCbor("tag 24 without bstr")),
        },
        _ => Err(MdocError::MalformedCbor("tag 24 expected")),
    }
}

pub(crate) fn as_map<'a>(
    v: &'a Value,
    what: &'static str,
) -> Result<&'a [(Value, Value)], MdocError> {
    match v {
        Value::Map(m) => Ok(m),
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

pub(crate) fn text_key<'a>(m: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v)
}

pub(crate) fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

pub(crate) fn uint_of(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn key() -> DeviceKey {
        let s = shomei_pki::EcdsaP256Signer::generate().unwrap();
        DeviceKey::from_spki(shomei_core::Signer::public_key_spki(&s)).unwrap()
    }

    #[test]
    fn mso_round_trips_and_writes_whole_second_utc_dates() {
        let now = datetime!(2026-11-21 13:04:05.678 +09:00);
        let mut vd = BTreeMap::new();
        vd.insert("ns".to_owned(), BTreeMap::from([(7u64, vec![1u8; 32])]));
        let mso = MobileSecurityObject {
            doc_type: "d".into(),
            value_digests: vd,
            device_key: key(),
            validity: ValidityInfo::starting(now, time::Duration::days(30)),
            status: Some(StatusRef {
                idx: 42,
                uri: "https://a.example/status/1".into(),
            }),
        };
        let bytes = mso.to_tagged_bytes().unwrap();
        let back = MobileSecurityObject::from_tagged_bytes(&bytes).unwrap();
        assert_eq!(back, mso);
        let text = format!(
            "{:?}",
            decode(&untag24(&decode(&bytes).unwrap()).unwrap()).unwrap()
        );
        assert!(text.contains("2026-11-21T04:04:05Z"), "{text}");
        assert_eq!(bytes[..2], [0xd8, 0x18]);
    }

    #[test]
    fn validity_window_is_checked_at_both_ends() {
        let v = ValidityInfo::starting(datetime!(2026-01-01 0:00 UTC), time::Duration::days(1));
        assert_eq!(
            v.check(datetime!(2025-12-31 23:59:59 UTC)),
            Err(MdocError::NotYetValid)
        );
        assert_eq!(
            v.check(datetime!(2026-01-02 0:00:01 UTC)),
            Err(MdocError::Expired)
        );
        assert!(v.check(datetime!(2026-01-01 12:00 UTC)).is_ok());
    }

    #[test]
    fn cose_keys_off_curve_or_other_curves_are_refused() {
        let k = key();
        assert_eq!(
            DeviceKey::from_cose_key_value(&k.to_cose_key_value()).unwrap(),
            k
        );
        let bad = Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(-1), Value::from(1)),
            (Value::from(-2), Value::Bytes(vec![1; 32])),
            (Value::from(-3), Value::Bytes(vec![2; 32])),
        ]);
        assert!(DeviceKey::from_cose_key_value(&bad).is_err());
        let p384 = Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(-1), Value::from(2)),
        ]);
        assert!(matches!(
            DeviceKey::from_cose_key_value(&p384),
            Err(MdocError::Unsupported(_))
        ));
        assert!(DeviceKey::from_cose_key_value(&Value::Null).is_err());
    }

    #[test]
    fn decode_refuses_trailing_bytes_and_garbage() {
        assert!(decode(&[0x01, 0x02]).is_err());
        assert!(decode(&[0xff]).is_err());
        assert!(MobileSecurityObject::from_tagged_bytes(&[0xd8, 0x18, 0x41, 0x00]).is_err());
    }
}
