//! Certificate serial numbers (発行番号).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// A certificate serial number: a positive integer of at most 20 octets
/// (RFC 5280 §4.1.2.2), kept as its minimal big-endian magnitude.
///
/// Displayed and parsed as upper-case hexadecimal without separators, as
/// `openssl x509 -serial` prints it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

/// Why a serial was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SerialError {
    /// Empty, zero, or longer than 20 octets.
    OutOfRange,
    /// Not hexadecimal.
    NotHex,
}

impl fmt::Display for SerialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => {
                f.write_str("serial must be a positive integer of at most 20 octets")
            }
            Self::NotHex => {
                f.write_str("serial must be hexadecimal (as `openssl x509 -serial` prints it)")
            }
        }
    }
}

impl std::error::Error for SerialError {}

impl Serial {
    /// Largest serial length allowed by RFC 5280.
    pub const MAX_LEN: usize = 20;

    /// From big-endian magnitude bytes (leading zeros are stripped).
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, SerialError> {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let magnitude = &bytes[start..];
        if magnitude.is_empty() || magnitude.len() > Self::MAX_LEN {
            return Err(SerialError::OutOfRange);
        }
        Ok(Self(magnitude.to_vec()))
    }

    /// Draws a fresh serial with 64 bits of randomness below a fixed high
    /// octet `0x40` (so the DER INTEGER is always positive and 9 octets long):
    /// 72 bits in total, 64 of them random.
    pub fn random(rng: &mut dyn crate::RandomSource) -> Result<Self, crate::SignError> {
        let mut bytes = [0u8; 9];
        rng.fill(&mut bytes[1..])?;
        bytes[0] = 0x40;
        Ok(Self(bytes.to_vec()))
    }

    /// Big-endian magnitude, no leading zero octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Shard index: the low 32 bits of the serial modulo `shards`
    /// (explicit sharding, as Let's Encrypt does).
    pub fn shard(&self, shards: u32) -> u32 {
        let shards = shards.max(1);
        let mut low = [0u8; 4];
        let n = self.0.len().min(4);
        low[4 - n..].copy_from_slice(&self.0[self.0.len() - n..]);
        u32::from_be_bytes(low) % shards
    }

    /// Upper-case hexadecimal, at least two digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(self.0.len() * 2);
        for b in &self.0 {
            s.push_str(&format!("{b:02X}"));
        }
        s
    }
}

impl FromStr for Serial {
    type Err = SerialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.len() > 2 * Self::MAX_LEN + 2 {
            return Err(SerialError::OutOfRange);
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SerialError::NotHex);
        }
        let padded = if s.len() % 2 == 1 {
            format!("0{s}")
        } else {
            s.to_owned()
        };
        let mut bytes = Vec::with_capacity(padded.len() / 2);
        for pair in padded.as_bytes().chunks(2) {
            let text = core::str::from_utf8(pair).map_err(|_| SerialError::NotHex)?;
            bytes.push(u8::from_str_radix(text, 16).map_err(|_| SerialError::NotHex)?);
        }
        Self::from_be_bytes(&bytes)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_is_case_insensitive_and_strips_leading_zeros() {
        let s: Serial = "00ab01".parse().unwrap();
        assert_eq!(s.to_hex(), "AB01");
        assert_eq!("AB01".parse::<Serial>().unwrap(), "ab01".parse().unwrap());
        assert_eq!("1".parse::<Serial>().unwrap().to_hex(), "01");
    }

    #[test]
    fn zero_overlong_and_non_hex_are_refused() {
        assert_eq!("00".parse::<Serial>(), Err(SerialError::OutOfRange));
        assert_eq!("zz".parse::<Serial>(), Err(SerialError::NotHex));
        assert_eq!(
            "01".repeat(21).parse::<Serial>(),
            Err(SerialError::OutOfRange)
        );
        assert_eq!("".parse::<Serial>(), Err(SerialError::OutOfRange));
    }

    #[test]
    fn shard_uses_low_bytes() {
        let s = Serial::from_be_bytes(&[0x40, 0, 0, 0, 0, 0, 0, 1, 3]).unwrap();
        assert_eq!(s.shard(16), 0x0103 % 16);
        assert_eq!(s.shard(0), 0);
    }
}
