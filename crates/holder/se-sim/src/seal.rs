//! The sealed file format (pure functions).
//!
//! ```text
//! offset  len  field
//!      0    8  magic "SHSESEAL"
//!      8    2  format version (big-endian, 1)
//!     10   16  device id
//!     26    8  write counter (big-endian)
//!     34   12  AES-GCM nonce (fresh random per write)
//!     46    n  AES-256-GCM ciphertext of the image, then the 16-byte tag
//! ```
//!
//! The whole 46-byte header is the additional authenticated data, so the
//! version, device id and counter cannot be changed without failing
//! authentication. The AES key is derived from the fused sealing key with
//! HKDF-SHA-256 (info `shomei-se-sim sealed storage v1`).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use shomei_secure_element::{DeviceId, SeError, TamperKind};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"SHSESEAL";
const VERSION: u16 = 1;
/// Header length (also the AAD).
pub(crate) const HEADER_LEN: usize = 8 + 2 + 16 + 8 + NONCE_LEN;
const TAG_LEN: usize = 16;
const HKDF_INFO: &[u8] = b"shomei-se-sim sealed storage v1";

/// The AEAD key for sealed storage, derived from the fused key.
pub(crate) fn sealing_key(fused: &[u8; 32]) -> Result<LessSafeKey, SeError> {
    let prk = Salt::new(HKDF_SHA256, &[]).extract(fused);
    let okm = prk
        .expand(&[HKDF_INFO], &AES_256_GCM)
        .map_err(|_| SeError::Crypto("sealing key derivation failed".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn header(device: &DeviceId, counter: u64, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_be_bytes());
    h[10..26].copy_from_slice(device.as_bytes());
    h[26..34].copy_from_slice(&counter.to_be_bytes());
    h[34..].copy_from_slice(nonce);
    h
}

/// Seals `image` as write number `counter`.
pub(crate) fn seal(
    key: &LessSafeKey,
    device: &DeviceId,
    counter: u64,
    nonce: [u8; NONCE_LEN],
    image: &[u8],
) -> Result<Vec<u8>, SeError> {
    let header = header(device, counter, &nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + image.len() + TAG_LEN);
    out.extend_from_slice(&header);
    let mut body = Zeroizing::new(image.to_vec());
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&header[..]),
        &mut *body,
    )
    .map_err(|_| SeError::Crypto("sealing failed".into()))?;
    // `body` is ciphertext now; the zeroizing wrapper is harmless.
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a sealed image: `(counter, image)`, or what is wrong with it.
pub(crate) fn unseal(
    key: &LessSafeKey,
    device: &DeviceId,
    sealed: &[u8],
) -> Result<(u64, Zeroizing<Vec<u8>>), TamperKind> {
    if sealed.len() < HEADER_LEN + TAG_LEN {
        return Err(TamperKind::Truncated);
    }
    let (head, body) = sealed.split_at(HEADER_LEN);
    if &head[0..8] != MAGIC || head[8..10] != VERSION.to_be_bytes() {
        return Err(TamperKind::BadHeader);
    }
    if &head[10..26] != device.as_bytes() {
        return Err(TamperKind::WrongDevice);
    }
    let mut counter = [0u8; 8];
    counter.copy_from_slice(&head[26..34]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&head[34..]);
    let mut buf = Zeroizing::new(body.to_vec());
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(head),
            &mut buf,
        )
        .map_err(|_| TamperKind::Authentication)?
        .len();
    buf.truncate(plain_len);
    Ok((u64::from_be_bytes(counter), buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_authenticated() {
        let key = sealing_key(&[7; 32]).unwrap();
        let dev = DeviceId::from_bytes([1; 16]);
        let sealed = seal(&key, &dev, 42, [9; NONCE_LEN], b"image").unwrap();
        let (c, image) = unseal(&key, &dev, &sealed).unwrap();
        assert_eq!((c, image.as_slice()), (42, &b"image"[..]));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = unseal(&key, &dev, &bad).unwrap_err();
            let expected = match i {
                0..10 => TamperKind::BadHeader,
                10..26 => TamperKind::WrongDevice,
                _ => TamperKind::Authentication,
            };
            assert_eq!(err, expected, "byte {i}");
        }
        for len in [0, HEADER_LEN, sealed.len() - 1] {
            assert!(unseal(&key, &dev, &sealed[..len]).is_err(), "len {len}");
        }
        let other = sealing_key(&[8; 32]).unwrap();
        assert_eq!(
            unseal(&other, &dev, &sealed).unwrap_err(),
            TamperKind::Authentication
        );
    }
}
