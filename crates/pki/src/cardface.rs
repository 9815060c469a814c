//! The card face (券面) data the authority writes on a My Number Card's
//! other applications, and its verifier. Sans-IO.
//!
//! Two applications carry it (reference: `jpki.md` §1.7):
//!
//! * **券面事項入力補助AP** (text AP): EF `0001` the My Number, EF `0002`
//!   the basic four as text, EF `0005` basic information.
//! * **券面AP** (visual AP): EF `0002` the face — header, birth, sex, the
//!   issuer's public key, name image, address image, photo, signature,
//!   expiry, security code (jpki-rs `Surface` order) — and EF `0003` basic
//!   information.
//!
//! # Layouts (BER-TLV, lengths in short, `81 xx` or `82 xxxx` form)
//!
//! | EF | Layout |
//! |---|---|
//! | text `0001` | `DF 10 0C` + 12 ASCII digits + `FF FF` (17 bytes, what readers read) |
//! | text `0002` | `FF 20 L { DF 21 header, DF 22 name, DF 23 address, DF 24 birth YYYYMMDD, DF 25 sex }` (UTF-8) |
//! | text `0005` | `FF 50 L { DF 51 APID (the AID), DF 52 公開鍵ID (first 8 bytes of SHA-256 of the face key's SPKI) }` |
//! | visual `0002` | `FF 40 L { DF 41 header, DF 42 birth YYYYMMDD, DF 43 sex, DF 44 face key SPKI, DF 45 name PNG, DF 46 address PNG, DF 47 photo, DF 48 signature, DF 49 expiry YYYYMMDD, DF 4A security code }` |
//! | visual `0003` | `FF 50 L { DF 51 APID, DF 53 version, DF 54 issuer }` |
//!
//! Only the tag `FF 20`/`DF 21…25` of the text attributes and the field
//! order of the face come from the sources; the other tags, the header
//! texts and the basic-information contents are this project's choice.
//! Sex is the JPKI code (`1` male, `2` female, `3` not known); jpki-rs maps
//! the third code to `9` instead, a conflict the sources leave open.
//!
//! # Signature
//!
//! ECDSA P-256 with SHA-256 (DER signature in `DF 48`) by the authority's
//! card-face key over `shomei/card-face/v1\0` followed by every other TLV
//! of the face exactly as encoded, in order. The key in `DF 44` only lets a
//! reader check integrity; [`verify_face`] also requires it to be the key
//! the reader trusts (published by the authority at `/ca/card-face.pem`).
//! The My Number is **not** covered (the face can be read and checked with
//! PIN B, which does not know it).
//!
//! # Images
//!
//! The name and address images are small greyscale PNGs made with the
//! `png` crate. This crate has no font, so they cannot show Japanese
//! glyphs: each character is drawn as an outlined box, and the text itself
//! is carried in an iTXt chunk (keyword [`PNG_TEXT_KEYWORD`]), which
//! [`png_text`] reads back. Real cards carry rendered text images. The
//! photo is whatever bytes the issuer supplies (real cards: a greyscale
//! JPEG 2000); [`placeholder_photo`] makes the default.

use core::fmt;

use shomei_core::{BasicFour, MyNumber, Signer};
use time::Date;

use crate::PkiError;

/// Domain separation of the face signature.
pub const SIGNATURE_DOMAIN: &[u8] = b"shomei/card-face/v1\0";
/// iTXt keyword carrying the text drawn in a name/address PNG.
pub const PNG_TEXT_KEYWORD: &str = "shomei:text";
/// Header of the text AP's attributes EF.
pub const TEXT_HEADER: &[u8] = b"shomei text v1";
/// Header of the face EF.
pub const FACE_HEADER: &[u8] = b"shomei face v1";
/// Largest photo accepted (the face EF must fit a card EF of 32 KiB).
pub const MAX_PHOTO: usize = 24 * 1024;
/// Largest EF the card holds (15-bit offsets).
pub const MAX_EF: usize = 0x8000;
/// AID of the text AP (券面事項入力補助AP).
pub const TEXT_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
/// AID of the visual AP (券面AP).
pub const VISUAL_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02];

/// Tags.
pub mod tag {
    /// Text AP My Number.
    pub const MY_NUMBER: u16 = 0xDF10;
    /// Text AP attributes (constructed).
    pub const ATTRIBUTES: u16 = 0xFF20;
    /// Header.
    pub const T_HEADER: u16 = 0xDF21;
    /// Name.
    pub const T_NAME: u16 = 0xDF22;
    /// Address.
    pub const T_ADDRESS: u16 = 0xDF23;
    /// Birth date YYYYMMDD.
    pub const T_BIRTH: u16 = 0xDF24;
    /// Sex code.
    pub const T_SEX: u16 = 0xDF25;
    /// Visual AP face (constructed).
    pub const FACE: u16 = 0xFF40;
    /// Face fields, in order.
    pub const F_HEADER: u16 = 0xDF41;
    /// Birth YYYYMMDD.
    pub const F_BIRTH: u16 = 0xDF42;
    /// Sex code.
    pub const F_SEX: u16 = 0xDF43;
    /// Face key SPKI.
    pub const F_PUBLIC_KEY: u16 = 0xDF44;
    /// Name PNG.
    pub const F_NAME: u16 = 0xDF45;
    /// Address PNG.
    pub const F_ADDRESS: u16 = 0xDF46;
    /// Photo.
    pub const F_PHOTO: u16 = 0xDF47;
    /// Signature.
    pub const F_SIGNATURE: u16 = 0xDF48;
    /// Expiry YYYYMMDD.
    pub const F_EXPIRY: u16 = 0xDF49;
    /// Security code (4 digits).
    pub const F_CODE: u16 = 0xDF4A;
    /// Basic information (constructed).
    pub const BASIC: u16 = 0xFF50;
    /// APID.
    pub const B_APID: u16 = 0xDF51;
    /// Public key id.
    pub const B_KEY_ID: u16 = 0xDF52;
    /// Version.
    pub const B_VERSION: u16 = 0xDF53;
    /// Issuer.
    pub const B_ISSUER: u16 = 0xDF54;
}

/// Why face data was refused. Never carries the data itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaceError {
    /// Not the TLV layout described above (what was wrong).
    Malformed(&'static str),
    /// The signature does not verify with the key in the face.
    BadSignature,
    /// The face verifies with its own key, but that is not the trusted key.
    UntrustedKey,
}

impl fmt::Display for FaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(m) => write!(f, "card face data malformed: {m}"),
            Self::BadSignature => f.write_str("card face signature does not verify"),
            Self::UntrustedKey => {
                f.write_str("card face is signed by a key other than the trusted face key")
            }
        }
    }
}

impl std::error::Error for FaceError {}

/// What the authority decides for one card's face.
pub struct FaceInput<'a> {
    /// The holder.
    pub holder: &'a BasicFour,
    /// The My Number.
    pub my_number: &'a MyNumber,
    /// Expiry of the card.
    pub expiry: Date,
    /// The 4-digit security code printed on the face.
    pub security_code: &'a str,
    /// Photo bytes (real cards: JPEG 2000).
    pub photo: &'a [u8],
    /// Issuer name for the basic information EF.
    pub issuer: &'a str,
}

/// The EF contents of both applications, ready to write to a card.
#[derive(Clone, PartialEq, Eq)]
pub struct FaceFiles {
    /// Text AP EF `0001`.
    pub text_my_number: Vec<u8>,
    /// Text AP EF `0002`.
    pub text_attributes: Vec<u8>,
    /// Text AP EF `0005`.
    pub text_basic: Vec<u8>,
    /// Visual AP EF `0002` (signed).
    pub visual_face: Vec<u8>,
    /// Visual AP EF `0003`.
    pub visual_basic: Vec<u8>,
}

impl fmt::Debug for FaceFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaceFiles(<personal data>)")
    }
}

/// The text AP's attributes (EF `0002`).
#[derive(Clone, PartialEq, Eq)]
pub struct TextAttributes {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Birth date `YYYYMMDD`.
    pub birth: String,
    /// Sex code (`1`, `2`, `3`).
    pub sex: String,
}

impl fmt::Debug for TextAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TextAttributes(<personal data>)")
    }
}

/// The visual AP's face (EF `0002`), parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct Face {
    /// Birth date `YYYYMMDD`.
    pub birth: String,
    /// Sex code.
    pub sex: String,
    /// The signer's SPKI.
    pub public_key: Vec<u8>,
    /// Name image (PNG).
    pub name_png: Vec<u8>,
    /// Address image (PNG).
    pub address_png: Vec<u8>,
    /// Photo.
    pub photo: Vec<u8>,
    /// Signature (DER ECDSA).
    pub signature: Vec<u8>,
    /// Expiry `YYYYMMDD`.
    pub expiry: String,
    /// Security code.
    pub security_code: String,
    /// The bytes the signature covers.
    signed: Vec<u8>,
}

impl fmt::Debug for Face {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Face(<personal data>)")
    }
}

impl Face {
    /// 照合番号B: birth `YYMMDD` + expiry year `YYYY` + security code.
    pub fn pin_b(&self) -> String {
        pin_b(&self.birth, &self.expiry, &self.security_code)
    }

    /// The name drawn in the name image (from its iTXt chunk).
    pub fn name(&self) -> Option<String> {
        png_text(&self.name_png)
    }

    /// The address drawn in the address image (from its iTXt chunk).
    pub fn address(&self) -> Option<String> {
        png_text(&self.address_png)
    }
}

/// 照合番号B from birth `YYYYMMDD`, expiry `YYYYMMDD` and the 4-digit code.
pub fn pin_b(birth: &str, expiry: &str, code: &str) -> String {
    format!(
        "{}{}{}",
        birth.get(2..8).unwrap_or_default(),
        expiry.get(..4).unwrap_or_default(),
        code
    )
}

fn yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Builds the EFs of both applications and signs the face with `signer`
/// (the authority's card-face key, P-256).
pub fn build(input: &FaceInput<'_>, signer: &dyn Signer) -> Result<FaceFiles, PkiError> {
    let code = input.security_code;
    if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PkiError::Build("security code must be 4 digits".into()));
    }
    if input.photo.len() > MAX_PHOTO {
        return Err(PkiError::Build(format!(
            "portrait larger than {MAX_PHOTO} bytes"
        )));
    }
    let h = input.holder;
    let birth = yyyymmdd(h.birth_date().date());
    let sex = h.sex().code().to_string();
    let mut my_number = tlv(tag::MY_NUMBER, input.my_number.as_str().as_bytes());
    my_number.extend_from_slice(&[0xFF, 0xFF]);
    let text_attributes = tlv(
        tag::ATTRIBUTES,
        &[
            tlv(tag::T_HEADER, TEXT_HEADER),
            tlv(tag::T_NAME, h.name().as_bytes()),
            tlv(tag::T_ADDRESS, h.address().as_bytes()),
            tlv(tag::T_BIRTH, birth.as_bytes()),
            tlv(tag::T_SEX, sex.as_bytes()),
        ]
        .concat(),
    );
    let spki = signer.public_key_spki();
    let key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    let text_basic = tlv(
        tag::BASIC,
        &[
            tlv(tag::B_APID, &TEXT_AID),
            tlv(tag::B_KEY_ID, key_id.as_ref().get(..8).unwrap_or_default()),
        ]
        .concat(),
    );
    let before = [
        tlv(tag::F_HEADER, FACE_HEADER),
        tlv(tag::F_BIRTH, birth.as_bytes()),
        tlv(tag::F_SEX, sex.as_bytes()),
        tlv(tag::F_PUBLIC_KEY, spki),
        tlv(tag::F_NAME, &text_png(h.name())?),
        tlv(tag::F_ADDRESS, &text_png(h.address())?),
        tlv(tag::F_PHOTO, input.photo),
    ]
    .concat();
    let after = [
        tlv(tag::F_EXPIRY, yyyymmdd(input.expiry).as_bytes()),
        tlv(tag::F_CODE, code.as_bytes()),
    ]
    .concat();
    let signature = signer
        .sign(&[SIGNATURE_DOMAIN, &before, &after].concat())
        .map_err(PkiError::Sign)?;
    let visual_face = tlv(
        tag::FACE,
        &[before, tlv(tag::F_SIGNATURE, &signature), after].concat(),
    );
    if visual_face.len() > MAX_EF {
        return Err(PkiError::Build("card face larger than a card EF".into()));
    }
    let visual_basic = tlv(
        tag::BASIC,
        &[
            tlv(tag::B_APID, &VISUAL_AID),
            tlv(tag::B_VERSION, b"1"),
            tlv(tag::B_ISSUER, input.issuer.as_bytes()),
        ]
        .concat(),
    );
    Ok(FaceFiles {
        text_my_number: my_number,
        text_attributes,
        text_basic,
        visual_face,
        visual_basic,
    })
}

/// The My Number in a text AP EF `0001` (trailing padding ignored).
pub fn parse_my_number(ef: &[u8]) -> Result<MyNumber, FaceError> {
    let (t, v, _) = read_tlv(ef).ok_or(FaceError::Malformed("My Number EF"))?;
    if t != tag::MY_NUMBER {
        return Err(FaceError::Malformed("My Number EF tag"));
    }
    let text = core::str::from_utf8(v).map_err(|_| FaceError::Malformed("My Number EF"))?;
    MyNumber::parse(text).map_err(|_| FaceError::Malformed("not a valid My Number"))
}

/// The text AP's attributes EF `0002`.
pub fn parse_attributes(ef: &[u8]) -> Result<TextAttributes, FaceError> {
    let (t, v, _) = read_tlv(ef).ok_or(FaceError::Malformed("attributes EF"))?;
    if t != tag::ATTRIBUTES {
        return Err(FaceError::Malformed("attributes EF tag"));
    }
    let fields = children(v)?;
    let get = |want: u16| -> Result<String, FaceError> {
        let v = fields
            .iter()
            .find(|(t, _, _)| *t == want)
            .map(|(_, v, _)| *v)
            .ok_or(FaceError::Malformed("attribute missing"))?;
        String::from_utf8(v.to_vec()).map_err(|_| FaceError::Malformed("attribute not UTF-8"))
    };
    Ok(TextAttributes {
        name: get(tag::T_NAME)?,
        address: get(tag::T_ADDRESS)?,
        birth: get(tag::T_BIRTH)?,
        sex: get(tag::T_SEX)?,
    })
}

/// Parses the visual AP's face EF `0002` (the signature is not checked:
/// see [`verify_face`]).
pub fn parse_face(ef: &[u8]) -> Result<Face, FaceError> {
    let (t, v, _) = read_tlv(ef).ok_or(FaceError::Malformed("face EF"))?;
    if t != tag::FACE {
        return Err(FaceError::Malformed("face EF tag"));
    }
    let fields = children(v)?;
    let order = [
        tag::F_HEADER,
        tag::F_BIRTH,
        tag::F_SEX,
        tag::F_PUBLIC_KEY,
        tag::F_NAME,
        tag::F_ADDRESS,
        tag::F_PHOTO,
        tag::F_SIGNATURE,
        tag::F_EXPIRY,
        tag::F_CODE,
    ];
    if fields.len() != order.len() || fields.iter().zip(order).any(|((t, _, _), o)| *t != o) {
        return Err(FaceError::Malformed("face fields missing or out of order"));
    }
    let value = |i: usize| {
        fields
            .get(i)
            .map(|(_, v, _)| v.to_vec())
            .unwrap_or_default()
    };
    let text = |i: usize| {
        String::from_utf8(value(i)).map_err(|_| FaceError::Malformed("face field not UTF-8"))
    };
    let mut signed = SIGNATURE_DOMAIN.to_vec();
    for (i, (_, _, raw)) in fields.iter().enumerate() {
        if i != 7 {
            signed.extend_from_slice(raw);
        }
    }
    Ok(Face {
        birth: text(1)?,
        sex: text(2)?,
        public_key: value(3),
        name_png: value(4),
        address_png: value(5),
        photo: value(6),
        signature: value(7),
        expiry: text(8)?,
        security_code: text(9)?,
        signed,
    })
}

/// Parses the face and checks its signature with the key it carries, and
/// that this key is `trusted_spki` (the authority's published face key).
pub fn verify_face(ef: &[u8], trusted_spki: &[u8]) -> Result<Face, FaceError> {
    let face = parse_face(ef)?;
    let point = crate::keys::spki_subject_public_key(&face.public_key)
        .map_err(|_| FaceError::Malformed("face public key"))?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &point,
    )
    .verify(&face.signed, &face.signature)
    .map_err(|_| FaceError::BadSignature)?;
    if face.public_key != trusted_spki {
        return Err(FaceError::UntrustedKey);
    }
    Ok(face)
}

/// A small greyscale PNG for `text`: one outlined 8×16 box per character
/// (no font is available to draw the glyphs), with `text` itself in an
/// iTXt chunk under [`PNG_TEXT_KEYWORD`].
pub fn text_png(text: &str) -> Result<Vec<u8>, PkiError> {
    let cells = text.chars().count().clamp(1, 128);
    let (w, h) = (cells * 8, 16usize);
    let mut pixels = vec![0xFFu8; w * h];
    for (i, p) in pixels.iter_mut().enumerate() {
        let (x, y) = (i % w, i / w);
        let cx = x % 8;
        if (y == 2 || y == 13) && (1..7).contains(&cx)
            || (2..14).contains(&y) && (cx == 1 || cx == 6)
        {
            *p = 0x20;
        }
    }
    encode_png(w, h, &pixels, Some(text))
}

/// A 16×16 greyscale placeholder portrait (a head-and-shoulders outline).
pub fn placeholder_photo() -> Result<Vec<u8>, PkiError> {
    let mut pixels = vec![0xC0u8; 256];
    for (i, p) in pixels.iter_mut().enumerate() {
        let (x, y) = ((i % 16) as i32, (i / 16) as i32);
        let head = (x - 8).pow(2) + (y - 6).pow(2) <= 9;
        let shoulders = y >= 11 && (x - 8).abs() <= y - 6;
        if head || shoulders {
            *p = 0x40;
        }
    }
    encode_png(16, 16, &pixels, None)
}

fn encode_png(w: usize, h: usize, pixels: &[u8], text: Option<&str>) -> Result<Vec<u8>, PkiError> {
    let bad = |e: png::EncodingError| PkiError::Build(format!("PNG: {e}"));
    let mut out = Vec::new();
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| PkiError::Build("PNG too wide".into()))?,
        u32::try_from(h).map_err(|_| PkiError::Build("PNG too high".into()))?,
    );
    let mut enc = png::Encoder::new(&mut out, w32, h32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    if let Some(t) = text {
        enc.add_itxt_chunk(PNG_TEXT_KEYWORD.to_owned(), t.to_owned())
            .map_err(bad)?;
    }
    let mut writer = enc.write_header().map_err(bad)?;
    writer.write_image_data(pixels).map_err(bad)?;
    writer.finish().map_err(bad)?;
    Ok(out)
}

/// The text in a PNG's iTXt chunk [`PNG_TEXT_KEYWORD`], if any.
pub fn png_text(png_bytes: &[u8]) -> Option<String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let reader = decoder.read_info().ok()?;
    reader
        .info()
        .utf8_text
        .iter()
        .find(|c| c.keyword == PNG_TEXT_KEYWORD)
        .and_then(|c| c.get_text().ok())
}

/// BER-TLV with a two-byte tag.
pub fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_be_bytes().to_vec();
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xFF {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        let n16 = u16::try_from(n).unwrap_or(u16::MAX);
        out.push(0x82);
        out.extend_from_slice(&n16.to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// One TLV at the start of `bytes`: (tag, value, the whole TLV's bytes).
pub fn read_tlv(bytes: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let (&[t0, t1], rest) = bytes.split_first_chunk::<2>()?;
    let (len, head): (usize, usize) = match rest {
        [l, ..] if *l < 0x80 => (usize::from(*l), 3),
        [0x81, l, ..] => (usize::from(*l), 4),
        [0x82, h, l, ..] => (usize::from(u16::from_be_bytes([*h, *l])), 5),
        _ => return None,
    };
    let end = head.checked_add(len)?;
    Some((
        u16::from_be_bytes([t0, t1]),
        bytes.get(head..end)?,
        bytes.get(..end)?,
    ))
}

type Tlv<'a> = (u16, &'a [u8], &'a [u8]);

fn children(mut v: &[u8]) -> Result<Vec<Tlv<'_>>, FaceError> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let item = read_tlv(v).ok_or(FaceError::Malformed("truncated field"))?;
        v = v.get(item.2.len()..).unwrap_or_default();
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use shomei_core::{BirthDate, Sex};

    use super::*;
    use crate::EcdsaP256Signer;

    fn holder() -> BasicFour {
        let birth: BirthDate = "1990-04-01".parse().unwrap();
        BasicFour::new("山田花子", "東京都千代田区霞が関1-1", birth, Sex::Female).unwrap()
    }

    fn files(key: &EcdsaP256Signer) -> FaceFiles {
        let h = holder();
        let n = MyNumber::parse("123456789018").unwrap();
        let photo = placeholder_photo().unwrap();
        build(
            &FaceInput {
                holder: &h,
                my_number: &n,
                expiry: time::macros::date!(2035 - 04 - 01),
                security_code: "4321",
                photo: &photo,
                issuer: "Shōmei test",
            },
            key,
        )
        .unwrap()
    }

    #[test]
    fn builds_parses_and_verifies() {
        let key = EcdsaP256Signer::generate().unwrap();
        let f = files(&key);
        assert_eq!(f.text_my_number.len(), 17);
        assert_eq!(&f.text_my_number[..3], &[0xDF, 0x10, 0x0C]);
        assert_eq!(
            parse_my_number(&f.text_my_number).unwrap().as_str(),
            "123456789018"
        );
        let a = parse_attributes(&f.text_attributes).unwrap();
        assert_eq!(
            (a.name.as_str(), a.birth.as_str(), a.sex.as_str()),
            ("山田花子", "19900401", "2")
        );
        assert_eq!(&f.text_attributes[..2], &[0xFF, 0x20]);
        let face = verify_face(&f.visual_face, key.public_key_spki()).unwrap();
        assert_eq!(face.name().as_deref(), Some("山田花子"));
        assert_eq!(face.address().as_deref(), Some("東京都千代田区霞が関1-1"));
        assert_eq!(face.pin_b(), "90040120354321");
        assert_eq!(face.expiry, "20350401");
        assert_eq!(format!("{face:?}"), "Face(<personal data>)");
        // The images are real PNGs.
        assert!(face.name_png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(face.photo.starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn tampering_or_another_key_is_refused() {
        let key = EcdsaP256Signer::generate().unwrap();
        let f = files(&key);
        // Change the sex code ('2' → '1'): the signature no longer verifies.
        let mut bad = f.visual_face.clone();
        let at = bad
            .windows(4)
            .position(|w| w == [0xDF, 0x43, 0x01, b'2'])
            .unwrap();
        bad[at + 3] = b'1';
        assert_eq!(
            verify_face(&bad, key.public_key_spki()),
            Err(FaceError::BadSignature)
        );
        // A face signed by another key is untrusted even though it verifies.
        let other = EcdsaP256Signer::generate().unwrap();
        let g = files(&other);
        assert!(verify_face(&g.visual_face, other.public_key_spki()).is_ok());
        assert_eq!(
            verify_face(&g.visual_face, key.public_key_spki()),
            Err(FaceError::UntrustedKey)
        );
        // Truncated or garbage data is malformed, not a panic.
        for cut in [0, 1, 5, 100, f.visual_face.len() - 1] {
            assert!(matches!(
                verify_face(&f.visual_face[..cut], key.public_key_spki()),
                Err(FaceError::Malformed(_))
            ));
        }
        assert!(parse_my_number(&[0xDF, 0x10, 0x0C, b'1']).is_err());
        assert!(parse_attributes(&[0xFF, 0x20, 0x82, 0xFF]).is_err());
    }

    #[test]
    fn tlv_length_forms() {
        for n in [0usize, 0x7F, 0x80, 0xFF, 0x100, 0x7000] {
            let v = vec![7u8; n];
            let t = tlv(0xDF47, &v);
            let (tag, value, raw) = read_tlv(&t).unwrap();
            assert_eq!((tag, value.len(), raw.len()), (0xDF47, n, t.len()));
        }
    }
}
