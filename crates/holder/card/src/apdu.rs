//! Wire constants shared by the chip and the client, and the short-APDU parser.
//!
//! Only short APDUs exist here (as on real cards over NFC, see jpki.md §1.1):
//! Lc and Le are one byte, Le `00` means 256, and responses longer than Le
//! are continued with `61 XX` + GET RESPONSE.

/// DF name (AID) of the JPKI application.
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

/// DF name of the 券面事項入力補助AP (text AP), jpki.md §1.7.
pub const TEXT_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
/// DF name of the 券面AP (visual AP), jpki.md §1.7.
pub const VISUAL_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02];
/// DF name of the manufacture-number AP, jpki.md §1.7.
pub const MANUFACTURE_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x01, 0x00];

/// File identifiers inside the text and visual APs (jpki.md §1.7).
pub mod face_fid {
    /// Text AP: the My Number.
    pub const MY_NUMBER: u16 = 0x0001;
    /// Text AP: the basic four (`FF 20` TLV); visual AP: the signed face.
    pub const ATTRIBUTES: u16 = 0x0002;
    /// Visual AP: the signed face.
    pub const FACE: u16 = 0x0002;
    /// Visual AP: basic information.
    pub const VISUAL_BASIC: u16 = 0x0003;
    /// Text AP: basic information.
    pub const TEXT_BASIC: u16 = 0x0005;
    /// Text AP: its own 4-digit PIN (3 tries).
    pub const TEXT_PIN: u16 = 0x0011;
    /// Visual AP: PIN B (照合番号B).
    pub const VISUAL_PIN_B: u16 = 0x0012;
    /// Visual AP: PIN A (the My Number).
    pub const VISUAL_PIN_A: u16 = 0x0013;
    /// Text AP: PIN A (the My Number).
    pub const TEXT_PIN_A: u16 = 0x0014;
    /// Text AP: PIN B (照合番号B).
    pub const TEXT_PIN_B: u16 = 0x0015;
}

/// File identifiers inside the JPKI application (jpki.md §1.3).
pub mod fid {
    /// Signing certificate (署名用電子証明書); readable after the sign password.
    pub const SIGN_CERT: u16 = 0x0001;
    /// Signing CA certificate.
    pub const SIGN_CA_CERT: u16 = 0x0002;
    /// Token EF: 32 bytes naming the kind of token.
    pub const TOKEN: u16 = 0x0006;
    /// Authentication certificate (利用者証明用電子証明書).
    pub const AUTH_CERT: u16 = 0x000A;
    /// Authentication CA certificate.
    pub const AUTH_CA_CERT: u16 = 0x000B;
    /// Authentication private key (internal EF).
    pub const AUTH_KEY: u16 = 0x0017;
    /// Authentication PIN (4 digits, 3 tries).
    pub const AUTH_PIN: u16 = 0x0018;
    /// Signing private key (internal EF).
    pub const SIGN_KEY: u16 = 0x001A;
    /// Signing password (6–16 of A–Z 0–9, 5 tries).
    pub const SIGN_PIN: u16 = 0x001B;
}

/// Token EF text of a physical card.
pub const TOKEN_CARD: &[u8] = b"JPKIAPICCTOKEN2";
/// Token EF text of a phone's GlobalPlatform secure element (Android).
pub const TOKEN_GPSE: &[u8] = b"JPKIAPGPSETOKEN";
/// Length of the token EF.
pub const TOKEN_LEN: usize = 32;

/// Status words.
pub mod sw {
    /// Success.
    pub const OK: u16 = 0x9000;
    /// More response bytes: `61 XX`, fetch with GET RESPONSE (low byte = count, 00 = 256).
    pub const MORE_DATA: u16 = 0x6100;
    /// Wrong PIN, `63 Cx` with x tries left (low nibble).
    pub const COUNTER: u16 = 0x63C0;
    /// End of file reached before Le bytes were read (data is returned).
    pub const END_OF_FILE: u16 = 0x6282;
    /// Memory failure: the chip could not commit its memory.
    pub const MEMORY_FAILURE: u16 = 0x6581;
    /// Wrong length (Lc/Le absent, present or inconsistent).
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Security status not satisfied (PIN not verified).
    pub const SECURITY: u16 = 0x6982;
    /// Authentication method blocked (PIN blocked).
    pub const BLOCKED: u16 = 0x6983;
    /// Conditions of use not satisfied.
    pub const CONDITIONS: u16 = 0x6985;
    /// Command not allowed (no current EF, wrong kind of EF, or wrong phase).
    pub const NOT_ALLOWED: u16 = 0x6986;
    /// Incorrect parameters in the data field.
    pub const BAD_DATA: u16 = 0x6A80;
    /// Function not supported.
    pub const UNSUPPORTED: u16 = 0x6A81;
    /// File or application not found.
    pub const NOT_FOUND: u16 = 0x6A82;
    /// Record not found.
    pub const RECORD_NOT_FOUND: u16 = 0x6A83;
    /// Wrong Le: `6C XX` with XX the exact length.
    pub const WRONG_LE: u16 = 0x6C00;
    /// Not enough memory space in the file.
    pub const FILE_FULL: u16 = 0x6A84;
    /// Incorrect P1-P2.
    pub const BAD_P1P2: u16 = 0x6A86;
    /// Wrong parameters: offset outside the EF.
    pub const BAD_OFFSET: u16 = 0x6B00;
    /// Instruction not supported.
    pub const BAD_INS: u16 = 0x6D00;
    /// Class not supported.
    pub const BAD_CLA: u16 = 0x6E00;
    /// No precise diagnosis.
    pub const UNKNOWN: u16 = 0x6F00;
}

/// Instruction bytes.
pub mod ins {
    /// SELECT.
    pub const SELECT: u8 = 0xA4;
    /// READ BINARY.
    pub const READ_BINARY: u8 = 0xB0;
    /// UPDATE BINARY.
    pub const UPDATE_BINARY: u8 = 0xD6;
    /// ERASE BINARY.
    pub const ERASE_BINARY: u8 = 0x0E;
    /// VERIFY.
    pub const VERIFY: u8 = 0x20;
    /// CHANGE REFERENCE DATA.
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    /// COMPUTE DIGITAL SIGNATURE (proprietary class 0x80).
    pub const COMPUTE_SIGNATURE: u8 = 0x2A;
    /// GENERATE ASYMMETRIC KEY PAIR (here only in read-public-key mode).
    pub const GENERATE_KEY_PAIR: u8 = 0x47;
    /// ACTIVATE FILE.
    pub const ACTIVATE: u8 = 0x44;
    /// GET RESPONSE.
    pub const GET_RESPONSE: u8 = 0xC0;
    /// READ RECORD (manufacture-number AP).
    pub const READ_RECORD: u8 = 0xB2;
}

/// Highest READ/UPDATE BINARY offset: P1 bit 8 means SFI addressing, so 15 bits.
pub const MAX_OFFSET: usize = 0x7FFF;

/// A parsed short command APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// Command data (empty when Lc is absent).
    pub data: &'a [u8],
    /// Ne, when Le is present (`00` = 256).
    pub le: Option<usize>,
}

impl<'a> Command<'a> {
    /// Parses the four ISO 7816-4 short cases; `None` for anything else
    /// (shorter than a header, extended length, Lc not matching the body).
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (&[cla, ins, p1, p2], body) = bytes.split_first_chunk::<4>()?;
        let ne = |b: u8| if b == 0 { 256 } else { usize::from(b) };
        let (data, le): (&[u8], _) = match body {
            [] => (&[], None),
            [le] => (&[], Some(ne(*le))),
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                // Lc = 00 with a longer body would be extended length: refused.
                if lc == 0 {
                    return None;
                }
                match rest.len().checked_sub(lc)? {
                    0 => (rest, None),
                    1 => (rest.get(..lc)?, rest.last().map(|b| ne(*b))),
                    _ => return None,
                }
            }
        };
        Some(Self {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
    }
}

/// Builds a short command APDU (`data` empty → no Lc; `le` `None` → no Le).
///
/// `data` longer than 255 bytes is the caller's bug; the client checks first.
pub(crate) fn build(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + data.len());
    out.extend_from_slice(&[cla, ins, p1, p2]);
    if !data.is_empty() {
        out.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(data);
    }
    if let Some(le) = le {
        out.push(le);
    }
    out
}

/// Splits a response APDU into data and status word; `None` if shorter than 2 bytes.
pub(crate) fn split_response(resp: &[u8]) -> Option<(&[u8], u16)> {
    let (data, sw) = resp.split_last_chunk::<2>()?;
    Some((data, u16::from_be_bytes(*sw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_short_cases() {
        let c = Command::parse(&[0, 0x20, 0, 0x80]).unwrap();
        assert_eq!((c.data, c.le), (&[][..], None));
        let c = Command::parse(&[0, 0xB0, 0, 0, 0]).unwrap();
        assert_eq!((c.data, c.le), (&[][..], Some(256)));
        let c = Command::parse(&[0, 0x20, 0, 0x80, 2, b'1', b'2']).unwrap();
        assert_eq!((c.data, c.le), (&b"12"[..], None));
        let c = Command::parse(&[0x80, 0x2A, 0, 0x80, 1, 9, 0x10]).unwrap();
        assert_eq!((c.data, c.le), (&[9][..], Some(16)));
    }

    #[test]
    fn refuses_short_extended_and_inconsistent_lengths() {
        assert_eq!(Command::parse(&[0, 0xA4, 4]), None);
        assert_eq!(Command::parse(&[0, 0xB0, 0, 0, 0, 1, 0]), None);
        assert_eq!(Command::parse(&[0, 0x20, 0, 0x80, 3, 1]), None);
        assert_eq!(Command::parse(&[0, 0x20, 0, 0x80, 1, 1, 2, 3]), None);
    }

    #[test]
    fn build_and_split_round_trip() {
        let apdu = build(0, 0xA4, 2, 0x0C, &[0, 6], None);
        assert_eq!(apdu, [0, 0xA4, 2, 0x0C, 2, 0, 6]);
        assert_eq!(split_response(&[1, 0x90, 0]), Some((&[1][..], 0x9000)));
        assert_eq!(split_response(&[0x90]), None);
    }
}
