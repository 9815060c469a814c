//! The client side of the card's other applications (text, visual and
//! manufacture-number APs): APDUs only, like the rest of [`JpkiClient`].
//!
//! Selecting another AP clears the JPKI AP's verified PINs; the client
//! notes it, and reselects the JPKI AP before its next JPKI command.

use shomei_core::MyNumber;
use shomei_pki::cardface::{self, FaceFiles, TextAttributes};
use zeroize::Zeroizing;

use super::{CHUNK, JpkiClient, Transport, offset_p1p2, ok, status_error};
use crate::apdu::{self, face_fid, ins, sw};
use crate::{CardError, FacePin, OtherAp};

/// Which secret opens the card face for [`JpkiClient::read_card_face`].
#[derive(Clone, Copy)]
pub enum FaceRead<'a> {
    /// The text AP's 4-digit PIN: reads the text AP (My Number included),
    /// then opens the visual AP with the My Number as PIN A.
    TextPin(&'a str),
    /// PIN A, the My Number: opens both APs.
    PinA(&'a str),
    /// PIN B (照合番号B): the face and the text attributes, not the My Number.
    PinB(&'a str),
}

impl core::fmt::Debug for FaceRead<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TextPin(_) => "TextPin(<redacted>)",
            Self::PinA(_) => "PinA(<redacted>)",
            Self::PinB(_) => "PinB(<redacted>)",
        })
    }
}

/// What [`JpkiClient::read_card_face`] read. The face's signature is not
/// checked here: see [`shomei_pki::cardface::verify_face`].
#[derive(Clone, Debug)]
pub struct CardFace {
    /// The My Number (not readable with PIN B).
    pub my_number: Option<MyNumber>,
    /// The text AP's basic four.
    pub attributes: TextAttributes,
    /// The visual AP's face EF, as read.
    pub face: Vec<u8>,
}

fn pin_fid(ap: OtherAp, pin: FacePin) -> Result<u16, CardError> {
    match (ap, pin) {
        (OtherAp::Text, FacePin::Text) => Ok(face_fid::TEXT_PIN),
        (OtherAp::Text, FacePin::A) => Ok(face_fid::TEXT_PIN_A),
        (OtherAp::Text, FacePin::B) => Ok(face_fid::TEXT_PIN_B),
        (OtherAp::Visual, FacePin::A) => Ok(face_fid::VISUAL_PIN_A),
        (OtherAp::Visual, FacePin::B) => Ok(face_fid::VISUAL_PIN_B),
        _ => Err(CardError::FileNotFound),
    }
}

impl<T: Transport> JpkiClient<T> {
    /// Selects one of the other APs (clears every AP's verified PINs).
    pub fn select_other_ap(&mut self, ap: OtherAp) -> Result<(), CardError> {
        let aid = match ap {
            OtherAp::Text => apdu::TEXT_AID,
            OtherAp::Visual => apdu::VISUAL_AID,
            OtherAp::Manufacture => apdu::MANUFACTURE_AID,
        };
        self.selected = false;
        let (_, status) = self.send(&apdu::build(0, ins::SELECT, 0x04, 0x0C, &aid, None))?;
        ok(status)
    }

    /// Tries left for a PIN of `ap` (selects the AP).
    pub fn face_tries_left(&mut self, ap: OtherAp, pin: FacePin) -> Result<u8, CardError> {
        let fid = pin_fid(ap, pin)?;
        self.select_other_ap(ap)?;
        self.select_in_ap(fid)?;
        let (_, status) = self.send(&apdu::build(0, ins::VERIFY, 0x00, 0x80, &[], None))?;
        match status_error(status) {
            CardError::WrongPin { tries_left } => Ok(tries_left),
            CardError::Blocked => Ok(0),
            e => Err(e),
        }
    }

    /// Selects `ap` and verifies one of its PINs (format-checked first, so
    /// a PIN that can never match spends no try).
    pub fn verify_face_pin(
        &mut self,
        ap: OtherAp,
        pin: FacePin,
        value: &str,
    ) -> Result<(), CardError> {
        if !pin.is_well_formed(value.as_bytes()) {
            return Err(CardError::BadFacePinFormat(pin));
        }
        let fid = pin_fid(ap, pin)?;
        self.select_other_ap(ap)?;
        self.select_in_ap(fid)?;
        let cmd = Zeroizing::new(apdu::build(
            0,
            ins::VERIFY,
            0x00,
            0x80,
            value.as_bytes(),
            None,
        ));
        let (_, status) = self.send(&cmd)?;
        ok(status)
    }

    /// Changes the text AP's PIN: verifies `old`, then sets `new`.
    pub fn change_text_pin(&mut self, old: &str, new: &str) -> Result<(), CardError> {
        if !FacePin::Text.is_well_formed(new.as_bytes()) {
            return Err(CardError::BadFacePinFormat(FacePin::Text));
        }
        self.verify_face_pin(OtherAp::Text, FacePin::Text, old)?;
        let cmd = Zeroizing::new(apdu::build(
            0,
            ins::CHANGE_REFERENCE_DATA,
            0x01,
            0x80,
            new.as_bytes(),
            None,
        ));
        let (_, status) = self.send(&cmd)?;
        ok(status)
    }

    /// The My Number (text AP selected and its PIN or PIN A verified):
    /// reads 17 bytes, as readers of real cards do.
    pub fn read_my_number(&mut self) -> Result<MyNumber, CardError> {
        self.select_in_ap(face_fid::MY_NUMBER)?;
        let raw = Zeroizing::new(self.read_binary(0, 17)?);
        cardface::parse_my_number(&raw).map_err(|e| CardError::Malformed(e.to_string()))
    }

    /// The basic four of the text AP (text AP selected, a PIN verified).
    pub fn read_text_attributes(&mut self) -> Result<TextAttributes, CardError> {
        let raw = self.read_tlv_ef(face_fid::ATTRIBUTES)?;
        cardface::parse_attributes(&raw).map_err(|e| CardError::Malformed(e.to_string()))
    }

    /// The visual AP's face EF (visual AP selected, PIN A or B verified).
    pub fn read_face(&mut self) -> Result<Vec<u8>, CardError> {
        self.read_tlv_ef(face_fid::FACE)
    }

    /// Reads the card face with one secret; see [`FaceRead`].
    pub fn read_card_face(&mut self, with: FaceRead<'_>) -> Result<CardFace, CardError> {
        let (my_number, attributes) = match with {
            FaceRead::TextPin(pin) => {
                self.verify_face_pin(OtherAp::Text, FacePin::Text, pin)?;
                (Some(self.read_my_number()?), self.read_text_attributes()?)
            }
            FaceRead::PinA(n) => {
                self.verify_face_pin(OtherAp::Text, FacePin::A, n)?;
                (Some(self.read_my_number()?), self.read_text_attributes()?)
            }
            FaceRead::PinB(b) => {
                self.verify_face_pin(OtherAp::Text, FacePin::B, b)?;
                (None, self.read_text_attributes()?)
            }
        };
        match (with, &my_number) {
            (FaceRead::PinB(b), _) => self.verify_face_pin(OtherAp::Visual, FacePin::B, b)?,
            (_, Some(n)) => {
                let n = Zeroizing::new(n.as_str().to_owned());
                self.verify_face_pin(OtherAp::Visual, FacePin::A, &n)?;
            }
            (_, None) => return Err(CardError::SecurityStatusNotSatisfied),
        }
        let face = self.read_face()?;
        Ok(CardFace {
            my_number,
            attributes,
            face,
        })
    }

    /// The 13-character 製造番号 (READ RECORD 1 of SFI 1 in its AP).
    pub fn read_manufacture_number(&mut self) -> Result<String, CardError> {
        self.select_other_ap(OtherAp::Manufacture)?;
        let (record, status) =
            self.send(&apdu::build(0, ins::READ_RECORD, 0x01, 0x0C, &[], Some(0)))?;
        ok(status)?;
        let chars = record
            .get(2..15)
            .ok_or_else(|| CardError::Malformed("manufacture number record too short".into()))?;
        String::from_utf8(chars.to_vec())
            .map_err(|_| CardError::Malformed("manufacture number is not text".into()))
    }

    /// Writes the face data (personalisation phase only, before ACTIVATE;
    /// PIN A and B are set from it at ACTIVATE).
    pub fn write_face(&mut self, files: &FaceFiles) -> Result<(), CardError> {
        let plan = [
            (OtherAp::Text, face_fid::MY_NUMBER, &files.text_my_number),
            (OtherAp::Text, face_fid::ATTRIBUTES, &files.text_attributes),
            (OtherAp::Text, face_fid::TEXT_BASIC, &files.text_basic),
            (OtherAp::Visual, face_fid::FACE, &files.visual_face),
            (OtherAp::Visual, face_fid::VISUAL_BASIC, &files.visual_basic),
        ];
        let mut current = None;
        for (ap, fid, content) in plan {
            if content.len() > apdu::MAX_OFFSET + 1 {
                return Err(CardError::Malformed(
                    "face file longer than a card EF".into(),
                ));
            }
            if current != Some(ap) {
                self.select_other_ap(ap)?;
                current = Some(ap);
            }
            self.select_in_ap(fid)?;
            let (_, status) = self.send(&apdu::build(0, ins::ERASE_BINARY, 0, 0, &[], None))?;
            ok(status)?;
            for (i, chunk) in content.chunks(CHUNK).enumerate() {
                let [p1, p2] = offset_p1p2(i * CHUNK)?;
                let (_, status) =
                    self.send(&apdu::build(0, ins::UPDATE_BINARY, p1, p2, chunk, None))?;
                ok(status)?;
            }
        }
        Ok(())
    }

    /// SELECT EF inside the currently selected other AP.
    fn select_in_ap(&mut self, fid: u16) -> Result<(), CardError> {
        let cmd = apdu::build(0, ins::SELECT, 0x02, 0x0C, &fid.to_be_bytes(), None);
        let (_, status) = self.send(&cmd)?;
        ok(status)
    }

    /// Reads a whole EF holding one BER-TLV (2-byte tag).
    fn read_tlv_ef(&mut self, fid: u16) -> Result<Vec<u8>, CardError> {
        self.select_in_ap(fid)?;
        let mut data = match self.read_binary(0, 5) {
            Err(CardError::UnexpectedStatus(sw::BAD_OFFSET)) => {
                return Err(CardError::Malformed("the card holds no face data".into()));
            }
            other => other?,
        };
        let total = match data.as_slice() {
            [_, _, l, ..] if *l < 0x80 => 3 + usize::from(*l),
            [_, _, 0x81, l, ..] => 4 + usize::from(*l),
            [_, _, 0x82, h, l, ..] => 5 + usize::from(u16::from_be_bytes([*h, *l])),
            _ => return Err(CardError::Malformed("EF does not start with a TLV".into())),
        };
        if total > apdu::MAX_OFFSET + 1 {
            return Err(CardError::Malformed("TLV longer than a card EF".into()));
        }
        data.truncate(total);
        while data.len() < total {
            let want = (total - data.len()).min(CHUNK);
            let chunk = self.read_binary(data.len(), want)?;
            if chunk.len() != want {
                return Err(CardError::Malformed("EF shorter than its TLV".into()));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }
}
