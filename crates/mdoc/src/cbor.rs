//! Bounded CBOR helpers over [`ciborium::Value`]: decoding with a size cap,
//! a nesting limit and no trailing bytes; map look-ups; `#6.24` (embedded
//! CBOR) wrapping; base64url for the `mdoc:` URI.
//!
//! Decoding never pre-allocates from a declared length (ciborium grows its
//! vectors as items arrive), so memory stays proportional to the input, which
//! the caller caps.

use ciborium::Value;

use crate::error::MdocError;

/// Maximum nesting depth accepted anywhere in this crate.
pub const MAX_DEPTH: usize = 24;

/// The tag for embedded CBOR (`#6.24(bstr .cbor X)`).
pub const TAG_ENCODED_CBOR: u64 = 24;

/// Decodes exactly one CBOR item from `bytes` (no trailing bytes), refusing
/// inputs over `max_len` bytes and nesting over [`MAX_DEPTH`].
pub fn decode(bytes: &[u8], max_len: usize, what: &'static str) -> Result<Value, MdocError> {
    if bytes.len() > max_len {
        return Err(MdocError::LimitExceeded(what));
    }
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|_| MdocError::MalformedCbor(what))?;
    if !reader.is_empty() {
        return Err(MdocError::MalformedCbor(what));
    }
    Ok(value)
}

/// Encodes a value (preferred serialisation of lengths; map order as given).
pub fn encode(value: &Value) -> Result<Vec<u8>, MdocError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).map_err(|_| MdocError::Invalid("CBOR encoding"))?;
    Ok(out)
}

/// `#6.24(bstr)` around already-encoded CBOR.
pub fn tag24(encoded: &[u8]) -> Value {
    Value::Tag(TAG_ENCODED_CBOR, Box::new(Value::Bytes(encoded.to_vec())))
}

/// The bytes inside `#6.24(bstr)`, exactly as received.
pub fn untag24<'a>(value: &'a Value, what: &'static str) -> Result<&'a [u8], MdocError> {
    match value {
        Value::Tag(TAG_ENCODED_CBOR, inner) => match inner.as_ref() {
            Value::Bytes(b) => Ok(b),
            _ => Err(MdocError::MalformedCbor(what)),
        },
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

/// The entries of a map.
pub fn as_map<'a>(value: &'a Value, what: &'static str) -> Result<&'a [(Value, Value)], MdocError> {
    match value {
        Value::Map(m) => Ok(m),
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

/// The items of an array.
pub fn as_array<'a>(value: &'a Value, what: &'static str) -> Result<&'a [Value], MdocError> {
    match value {
        Value::Array(a) => Ok(a),
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

/// A text string.
pub fn as_text<'a>(value: &'a Value, what: &'static str) -> Result<&'a str, MdocError> {
    match value {
        Value::Text(t) => Ok(t),
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

/// A byte string.
pub fn as_bytes<'a>(value: &'a Value, what: &'static str) -> Result<&'a [u8], MdocError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

/// An integer that fits `i64`.
pub fn as_int(value: &Value, what: &'static str) -> Result<i64, MdocError> {
    match value {
        Value::Integer(i) => i64::try_from(*i).map_err(|_| MdocError::MalformedCbor(what)),
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

/// A boolean.
pub fn as_bool(value: &Value, what: &'static str) -> Result<bool, MdocError> {
    match value {
        Value::Bool(b) => Ok(*b),
        _ => Err(MdocError::MalformedCbor(what)),
    }
}

/// Looks up a text key; a key present twice is malformed.
pub fn get_text<'a>(map: &'a [(Value, Value)], key: &str) -> Result<Option<&'a Value>, MdocError> {
    let mut found = None;
    for (k, v) in map {
        if matches!(k, Value::Text(t) if t == key) {
            if found.is_some() {
                return Err(MdocError::MalformedCbor("duplicate map key"));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// Looks up an integer key; a key present twice is malformed.
pub fn get_int(map: &[(Value, Value)], key: i64) -> Result<Option<&Value>, MdocError> {
    let mut found = None;
    for (k, v) in map {
        if matches!(k, Value::Integer(i) if i64::try_from(*i) == Ok(key)) {
            if found.is_some() {
                return Err(MdocError::MalformedCbor("duplicate map key"));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// Encodes a text string item on its own (for hand-assembled arrays).
pub fn encode_text(text: &str) -> Result<Vec<u8>, MdocError> {
    encode(&Value::Text(text.to_owned()))
}

/// Encodes a byte string item on its own.
pub fn encode_bytes(bytes: &[u8]) -> Result<Vec<u8>, MdocError> {
    encode(&Value::Bytes(bytes.to_vec()))
}

/// Encodes `#6.24(bstr)` around `encoded`.
pub fn encode_tag24(encoded: &[u8]) -> Result<Vec<u8>, MdocError> {
    let mut out = vec![0xd8, 0x18];
    out.extend(encode_bytes(encoded)?);
    Ok(out)
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 4648 §5).
pub fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = ((n >> (18 - 6 * i)) & 0x3f) as usize;
            out.push(char::from(B64URL[idx]));
        }
    }
    out
}

/// Decodes base64url without padding; refuses padding, other alphabets and
/// non-canonical trailing bits.
pub fn base64url_decode(text: &str) -> Result<Vec<u8>, MdocError> {
    let bad = MdocError::Invalid("base64url");
    if text.len() % 4 == 1 {
        return Err(bad);
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.as_bytes().chunks(4) {
        let mut n: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = B64URL.iter().position(|&a| a == c).ok_or(bad.clone())?;
            n |= (v as u32) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = chunk.len() - 1;
        if bytes
            .get(keep..)
            .is_some_and(|rest| rest.iter().any(|&b| b != 0))
        {
            return Err(bad);
        }
        out.extend_from_slice(bytes.get(..keep).unwrap_or_default());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_trailing_bytes_depth_and_size() {
        assert!(decode(&[0x01], 10, "x").is_ok());
        assert_eq!(
            decode(&[0x01, 0x02], 10, "x"),
            Err(MdocError::MalformedCbor("x"))
        );
        assert_eq!(decode(&[0x01], 0, "x"), Err(MdocError::LimitExceeded("x")));
        let deep = vec![0x81; 100];
        assert_eq!(decode(&deep, 1000, "x"), Err(MdocError::MalformedCbor("x")));
        // A declared 4 GiB byte string in 9 bytes: refused, no allocation.
        let huge = [0x5a, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(decode(&huge, 1000, "x").is_err());
        let huge_array = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode(&huge_array, 1000, "x").is_err());
    }

    #[test]
    fn duplicate_keys_are_malformed() {
        let v = decode(&[0xa2, 0x01, 0x02, 0x01, 0x03], 10, "x").unwrap();
        let m = as_map(&v, "x").unwrap();
        assert!(get_int(m, 1).is_err());
        assert_eq!(get_int(m, 2), Ok(None));
    }

    #[test]
    fn tag24_round_trip() {
        let enc = encode_tag24(&[0xa0]).unwrap();
        assert_eq!(enc, [0xd8, 0x18, 0x41, 0xa0]);
        let v = decode(&enc, 10, "x").unwrap();
        assert_eq!(untag24(&v, "x").unwrap(), [0xa0]);
        assert_eq!(encode(&tag24(&[0xa0])).unwrap(), enc);
    }

    #[test]
    fn base64url() {
        for n in 0..20u8 {
            let data: Vec<u8> = (0..n)
                .map(|i| i.wrapping_mul(37).wrapping_add(250))
                .collect();
            let text = base64url_encode(&data);
            assert!(!text.contains('='));
            assert_eq!(base64url_decode(&text).unwrap(), data);
        }
        assert_eq!(base64url_encode(b"\xfb\xff"), "-_8");
        assert!(base64url_decode("-_9").is_err()); // non-zero trailing bits
        assert!(base64url_decode("ab+/").is_err());
        assert!(base64url_decode("abcde").is_err());
        assert!(base64url_decode("ab==").is_err());
    }
}
