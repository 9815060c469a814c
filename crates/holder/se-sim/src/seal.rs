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
//!
//! # The app's sealed data
//!
//! [`SecureElement::seal`](shomei_secure_element::SecureElement::seal) uses
//! a second key, also derived from the fused key with HKDF-SHA-256 (info
//! `shomei-se-sim app data v1 ‖ epoch`, the epoch as 8 bytes big-endian).
//! The epoch is raised by every requested wipe, so the key of an earlier
//! epoch can no longer be derived by the element: it derives the current
//! epoch's key, and — for unsealing only, until the app confirms it stored
//! data sealed in the new epoch, and while the element holds no keys — the
//! key of the epoch the wipe is retiring (the image's `retiring_epoch`).
//! The blob:
//!
//! ```text
//! offset  len  field
//!      0    1  version (1)
//!      1   12  AES-GCM nonce (fresh random per seal)
//!     13    n  AES-256-GCM ciphertext, then the 16-byte tag
//! ```
//!
//! with `version ‖ context` as the additional authenticated data.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use shomei_secure_element::{DeviceId, SEALED_DATA_VERSION, SeError, TamperKind};
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

const DATA_HKDF_INFO: &[u8] = b"shomei-se-sim app data v1";
/// Shortest sealed data blob: version, nonce, tag.
pub(crate) const DATA_MIN_LEN: usize = 1 + NONCE_LEN + TAG_LEN;

/// The AEAD key for the app's sealed data in wipe epoch `epoch`.
pub(crate) fn data_key(fused: &[u8; 32], epoch: u64) -> Result<LessSafeKey, SeError> {
    let prk = Salt::new(HKDF_SHA256, &[]).extract(fused);
    let epoch = epoch.to_be_bytes();
    let info = [DATA_HKDF_INFO, &epoch];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| SeError::Crypto("data key derivation failed".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn data_aad(context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + context.len());
    aad.push(SEALED_DATA_VERSION);
    aad.extend_from_slice(context);
    aad
}

/// Seals the app's `plaintext` for `context` (see the module documentation).
pub(crate) fn seal_data(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SeError> {
    let mut body = Zeroizing::new(plaintext.to_vec());
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(data_aad(context)),
        &mut *body,
    )
    .map_err(|_| SeError::Crypto("sealing failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
    out.push(SEALED_DATA_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a blob made by [`seal_data`] for `context` under `key`.
pub(crate) fn unseal_data(
    key: &LessSafeKey,
    context: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SeError> {
    if sealed.len() < DATA_MIN_LEN {
        return Err(SeError::Unsealable("the sealed data is cut short"));
    }
    let (version, rest) = sealed.split_at(1);
    if version != [SEALED_DATA_VERSION] {
        return Err(SeError::Unsealable("unknown sealed data format"));
    }
    let (nonce_bytes, body) = rest.split_at(NONCE_LEN);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(nonce_bytes);
    let mut buf = Zeroizing::new(body.to_vec());
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(data_aad(context)),
            &mut buf,
        )
        .map_err(|_| {
            SeError::Unsealable(
                "it does not authenticate (changed, sealed for another purpose, by another \
                 secure element, or before this one was wiped)",
            )
        })?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
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

    #[test]
    fn every_byte_of_sealed_data_is_authenticated_and_cuts_are_refused() {
        let key = data_key(&[7; 32], 0).unwrap();
        let sealed = seal_data(&key, [9; NONCE_LEN], b"ctx", b"wallet").unwrap();
        assert_eq!(sealed.len(), DATA_MIN_LEN + 6);
        assert_eq!(sealed[0], SEALED_DATA_VERSION);
        assert_eq!(
            unseal_data(&key, b"ctx", &sealed).unwrap().as_slice(),
            b"wallet"
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(unseal_data(&key, b"ctx", &bad), Err(SeError::Unsealable(_))),
                "byte {i}"
            );
        }
        for len in 0..sealed.len() {
            assert!(
                matches!(
                    unseal_data(&key, b"ctx", &sealed[..len]),
                    Err(SeError::Unsealable(_))
                ),
                "len {len}"
            );
        }
        // The storage key and the next epoch's key are other keys.
        for other in [
            data_key(&[7; 32], 1).unwrap(),
            data_key(&[8; 32], 0).unwrap(),
            sealing_key(&[7; 32]).unwrap(),
        ] {
            assert!(unseal_data(&other, b"ctx", &sealed).is_err());
        }
        assert!(unseal_data(&key, b"ctx2", &sealed).is_err());
        assert!(unseal_data(&key, b"", &sealed).is_err());
    }
}
