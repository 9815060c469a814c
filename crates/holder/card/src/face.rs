//! The card's other applications (jpki.md §1.7): the 券面事項入力補助AP
//! (text AP), the 券面AP (visual AP) and the manufacture-number AP.
//!
//! The APDU logic lives here over [`FaceBackend`]; [`crate::Card`] routes
//! commands to it while one of these APs is selected (selecting any AP
//! clears the other APs' security state, as on a card with one current DF).
//! The data layouts are [`shomei_pki::cardface`]'s.
//!
//! | AP | EF | Content | Read access |
//! |---|---|---|---|
//! | text | `0001` | My Number (`DF 10 0C` + 12 digits + `FF FF`) | text PIN or PIN A |
//! | text | `0002` | basic four (`FF 20 { DF 21..DF 25 }`) | text PIN, PIN A or PIN B |
//! | text | `0005` | basic information | free |
//! | text | `0011` / `0014` / `0015` | text PIN (4 digits, 3 tries) / PIN A / PIN B | VERIFY only |
//! | visual | `0002` | the authority-signed face | PIN A or PIN B |
//! | visual | `0003` | basic information | free |
//! | visual | `0013` / `0012` | PIN A (My Number) / PIN B (照合番号B) | VERIFY only |
//! | manufacture | record 1, SFI 1 | `01 0D` + 13-character 製造番号 | free (`00 B2 01 0C Le`) |
//!
//! PIN A and PIN B are each **one** secret reachable from an EF of both
//! APs, with one retry counter (10 tries; the sources confirm 10 for PIN B
//! only, PIN A's count is assumed equal), so two APs do not double the
//! guesses. They are set at ACTIVATE from the written data: PIN A is the
//! My Number of text EF `0001`, PIN B the birth date `YYMMDD`, expiry year
//! and security code of the face; before that they answer `69 85`. The text
//! PIN starts equal to the authentication PIN (as real cards are issued by
//! default) and can be changed with CHANGE REFERENCE DATA after VERIFY.
//! Tries are counted durably before the comparison, as for the JPKI PINs.
//!
//! Data EFs are written with UPDATE/ERASE BINARY during personalisation
//! only. Status words as in the JPKI AP, plus READ RECORD's `6A 83` (no
//! such record), `6C 0F` (Le shorter than the record) and `6A 82` (SFI
//! other than 1).

use crate::Phase;
use crate::apdu::{Command, face_fid as fid, ins, sw};
use crate::applet::{AppletError, MAX_FILE};

/// The secrets of the text and visual APs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FacePin {
    /// 券面事項入力補助用暗証番号: 4 digits, 3 tries (text AP EF `0011`).
    Text,
    /// PIN A: the 12-digit My Number (text `0014`, visual `0013`), 10 tries.
    A,
    /// PIN B: 照合番号B, birth `YYMMDD` + expiry year + 4-digit security
    /// code, 14 digits (text `0015`, visual `0012`), 10 tries.
    B,
}

impl FacePin {
    /// Tries after which the PIN blocks.
    pub const fn max_tries(self) -> u8 {
        match self {
            Self::Text => 3,
            Self::A | Self::B => 10,
        }
    }

    /// Whether `pin` has the only format the card can accept (all digits:
    /// 4, 12 or 14 of them).
    pub fn is_well_formed(self, pin: &[u8]) -> bool {
        let len = match self {
            Self::Text => 4,
            Self::A => 12,
            Self::B => 14,
        };
        pin.len() == len && pin.iter().all(u8::is_ascii_digit)
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Text => 0,
            Self::A => 1,
            Self::B => 2,
        }
    }
}

/// One of the other applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtherAp {
    /// 券面事項入力補助AP.
    Text,
    /// 券面AP.
    Visual,
    /// The manufacture-number AP.
    Manufacture,
}

impl OtherAp {
    /// The AP for a DF name, if it is one of these.
    pub fn from_aid(aid: &[u8]) -> Option<Self> {
        use crate::apdu::{MANUFACTURE_AID, TEXT_AID, VISUAL_AID};
        match aid {
            a if a == TEXT_AID => Some(Self::Text),
            a if a == VISUAL_AID => Some(Self::Visual),
            a if a == MANUFACTURE_AID => Some(Self::Manufacture),
            _ => None,
        }
    }
}

/// The data EFs of the text and visual APs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FaceEf {
    MyNumber,
    Attributes,
    TextBasic,
    Face,
    VisualBasic,
}

impl FaceEf {
    pub(crate) const ALL: [Self; 5] = [
        Self::MyNumber,
        Self::Attributes,
        Self::TextBasic,
        Self::Face,
        Self::VisualBasic,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ef {
    Data(FaceEf),
    Pin(FacePin),
}

fn ef_in(ap: OtherAp, id: u16) -> Option<Ef> {
    Some(match (ap, id) {
        (OtherAp::Text, fid::MY_NUMBER) => Ef::Data(FaceEf::MyNumber),
        (OtherAp::Text, fid::ATTRIBUTES) => Ef::Data(FaceEf::Attributes),
        (OtherAp::Text, fid::TEXT_BASIC) => Ef::Data(FaceEf::TextBasic),
        (OtherAp::Text, fid::TEXT_PIN) => Ef::Pin(FacePin::Text),
        (OtherAp::Text, fid::TEXT_PIN_A) => Ef::Pin(FacePin::A),
        (OtherAp::Text, fid::TEXT_PIN_B) => Ef::Pin(FacePin::B),
        (OtherAp::Visual, fid::FACE) => Ef::Data(FaceEf::Face),
        (OtherAp::Visual, fid::VISUAL_BASIC) => Ef::Data(FaceEf::VisualBasic),
        (OtherAp::Visual, fid::VISUAL_PIN_A) => Ef::Pin(FacePin::A),
        (OtherAp::Visual, fid::VISUAL_PIN_B) => Ef::Pin(FacePin::B),
        _ => return None,
    })
}

/// Which PINs open a data EF (any one of them).
fn readers(ef: FaceEf) -> &'static [FacePin] {
    match ef {
        FaceEf::MyNumber => &[FacePin::Text, FacePin::A],
        FaceEf::Attributes => &[FacePin::Text, FacePin::A, FacePin::B],
        FaceEf::Face => &[FacePin::A, FacePin::B],
        FaceEf::TextBasic | FaceEf::VisualBasic => &[],
    }
}

/// Where the other APs keep their durable state.
pub(crate) trait FaceBackend {
    fn phase(&self) -> Phase;
    /// Tries left, or `None` if the PIN is not set yet (before ACTIVATE).
    fn face_tries_left(&self, pin: FacePin) -> Option<u8>;
    /// As [`crate::AppletSecrets::try_pin`]: count durably, then compare.
    fn face_try_pin(&mut self, pin: FacePin, candidate: &[u8]) -> Result<(), AppletError>;
    fn face_change_pin(&mut self, pin: FacePin, new_pin: &[u8]) -> Result<(), AppletError>;
    fn face_file(&self, ef: FaceEf) -> &[u8];
    fn face_write(&mut self, ef: FaceEf, content: Vec<u8>) -> Result<(), AppletError>;
    fn manufacture_number(&self) -> &str;
}

/// Volatile state of the other APs.
#[derive(Default)]
pub(crate) struct Session {
    pub(crate) ap: Option<OtherAp>,
    current: Option<Ef>,
    verified: [bool; 3],
}

impl Session {
    /// The session right after selecting `ap`.
    pub(crate) fn selected(ap: OtherAp) -> Self {
        Self {
            ap: Some(ap),
            ..Self::default()
        }
    }
}

type Reply = Result<(Vec<u8>, u16), u16>;

/// Processes one APDU for the selected other AP (`session.ap` is `Some`).
/// SELECT of a DF by name is handled by the caller.
pub(crate) fn process<B: FaceBackend + ?Sized>(
    b: &mut B,
    s: &mut Session,
    command: &[u8],
) -> Vec<u8> {
    let reply = match (Command::parse(command), s.ap) {
        (None, _) => Err(sw::WRONG_LENGTH),
        (Some(_), None) => Err(sw::NOT_ALLOWED),
        (Some(c), Some(ap)) => dispatch(b, s, ap, &c),
    };
    let (mut data, status) = reply.unwrap_or_else(|status| (Vec::new(), status));
    data.extend_from_slice(&status.to_be_bytes());
    data
}

fn dispatch<B: FaceBackend + ?Sized>(
    b: &mut B,
    s: &mut Session,
    ap: OtherAp,
    c: &Command<'_>,
) -> Reply {
    match (c.cla, c.ins) {
        (0x00, ins::SELECT) => select_ef(s, ap, c),
        (0x00, ins::READ_BINARY) => read_binary(b, s, c),
        (0x00, ins::READ_RECORD) => read_record(b, ap, c),
        (0x00, ins::VERIFY) => verify(b, s, c),
        (0x00, ins::CHANGE_REFERENCE_DATA) => change(b, s, c),
        (0x00, ins::UPDATE_BINARY) => update(b, s, c),
        (0x00, ins::ERASE_BINARY) => erase(b, s, c),
        (0x00, ins::GET_RESPONSE) => Err(sw::CONDITIONS),
        (0x00 | 0x80, _) => Err(sw::BAD_INS),
        _ => Err(sw::BAD_CLA),
    }
}

/// SELECT EF `00 A4 02 0C 02 FID` (SELECT of a known DF name is the card's).
fn select_ef(s: &mut Session, ap: OtherAp, c: &Command<'_>) -> Reply {
    if c.le.is_some() || c.data.is_empty() {
        return Err(sw::WRONG_LENGTH);
    }
    if c.p2 != 0x0C {
        return Err(sw::BAD_P1P2);
    }
    match c.p1 {
        // A DF name the card did not route here: unknown application, the
        // current selection stays.
        0x04 => return Err(sw::NOT_FOUND),
        0x02 => {}
        _ => return Err(sw::BAD_P1P2),
    }
    let id: [u8; 2] = c.data.try_into().map_err(|_| sw::WRONG_LENGTH)?;
    s.current = Some(ef_in(ap, u16::from_be_bytes(id)).ok_or(sw::NOT_FOUND)?);
    Ok((Vec::new(), sw::OK))
}

fn read_binary<B: FaceBackend + ?Sized>(b: &B, s: &Session, c: &Command<'_>) -> Reply {
    if c.p1 & 0x80 != 0 {
        return Err(sw::UNSUPPORTED);
    }
    let le = match (c.data.is_empty(), c.le) {
        (true, Some(le)) => le,
        _ => return Err(sw::WRONG_LENGTH),
    };
    let ef = match s.current {
        Some(Ef::Data(ef)) => ef,
        // No current EF, or a PIN EF (never readable).
        _ => return Err(sw::NOT_ALLOWED),
    };
    let needs = readers(ef);
    if !needs.is_empty() && !needs.iter().any(|p| s.verified[p.index()]) {
        return Err(sw::SECURITY);
    }
    let content = b.face_file(ef);
    let offset = usize::from(u16::from_be_bytes([c.p1, c.p2]));
    if offset >= content.len() {
        return Err(sw::BAD_OFFSET);
    }
    let end = offset.saturating_add(le).min(content.len());
    let data = content.get(offset..end).unwrap_or_default().to_vec();
    let status = if data.len() < le {
        sw::END_OF_FILE
    } else {
        sw::OK
    };
    Ok((data, status))
}

/// READ RECORD `00 B2 01 0C Le`: record 1 of SFI 1 in the manufacture-number AP.
fn read_record<B: FaceBackend + ?Sized>(b: &B, ap: OtherAp, c: &Command<'_>) -> Reply {
    let le = match (c.data.is_empty(), c.le) {
        (true, Some(le)) => le,
        _ => return Err(sw::WRONG_LENGTH),
    };
    if ap != OtherAp::Manufacture {
        // Transparent EFs only: "command incompatible with file structure".
        return Err(sw::NOT_ALLOWED);
    }
    // P2 = SFI << 3 | 4 ("record number in P1").
    if c.p2 & 0x07 != 0x04 {
        return Err(sw::BAD_P1P2);
    }
    if c.p2 >> 3 != 1 {
        return Err(sw::NOT_FOUND);
    }
    if c.p1 != 1 {
        return Err(sw::RECORD_NOT_FOUND);
    }
    let number = b.manufacture_number().as_bytes();
    let mut record = vec![0x01, u8::try_from(number.len()).unwrap_or(0)];
    record.extend_from_slice(number);
    if le < record.len() {
        // Wrong Le: tell the exact length, as ISO 7816-4 does for records.
        return Err(sw::WRONG_LE | u16::try_from(record.len()).unwrap_or(0));
    }
    Ok((record, sw::OK))
}

fn verify<B: FaceBackend + ?Sized>(b: &mut B, s: &mut Session, c: &Command<'_>) -> Reply {
    if (c.p1, c.p2) != (0x00, 0x80) {
        return Err(sw::BAD_P1P2);
    }
    if c.le.is_some() {
        return Err(sw::WRONG_LENGTH);
    }
    let Some(Ef::Pin(pin)) = s.current else {
        return Err(sw::NOT_ALLOWED);
    };
    // PIN A/B exist only once the card is activated.
    let tries = b.face_tries_left(pin).ok_or(sw::CONDITIONS)?;
    if c.data.is_empty() {
        // The counter read answers 63 Cx, 63 C0 once blocked (as the JPKI AP).
        return Err(sw::COUNTER | u16::from(tries));
    }
    if tries == 0 {
        return Err(sw::BLOCKED);
    }
    s.verified[pin.index()] = false;
    b.face_try_pin(pin, c.data)
        .map_err(AppletError::status_word)?;
    s.verified[pin.index()] = true;
    Ok((Vec::new(), sw::OK))
}

/// CHANGE REFERENCE DATA `00 24 01 80 Lc new`: the text PIN only, after VERIFY.
fn change<B: FaceBackend + ?Sized>(b: &mut B, s: &Session, c: &Command<'_>) -> Reply {
    if (c.p1, c.p2) != (0x01, 0x80) {
        return Err(sw::BAD_P1P2);
    }
    if c.le.is_some() || c.data.is_empty() {
        return Err(sw::WRONG_LENGTH);
    }
    let Some(Ef::Pin(pin)) = s.current else {
        return Err(sw::NOT_ALLOWED);
    };
    // PIN A and B follow from the card's data: they cannot be changed.
    if pin != FacePin::Text {
        return Err(sw::NOT_ALLOWED);
    }
    if b.face_tries_left(pin) == Some(0) {
        return Err(sw::BLOCKED);
    }
    if !s.verified[pin.index()] {
        return Err(sw::SECURITY);
    }
    if !pin.is_well_formed(c.data) {
        return Err(sw::BAD_DATA);
    }
    b.face_change_pin(pin, c.data)
        .map_err(AppletError::status_word)?;
    Ok((Vec::new(), sw::OK))
}

fn writable<B: FaceBackend + ?Sized>(
    b: &B,
    s: &Session,
    c: &Command<'_>,
) -> Result<(FaceEf, usize), u16> {
    if c.p1 & 0x80 != 0 {
        return Err(sw::UNSUPPORTED);
    }
    match (b.phase(), s.current) {
        (Phase::Personalisation, Some(Ef::Data(ef))) => {
            Ok((ef, usize::from(u16::from_be_bytes([c.p1, c.p2]))))
        }
        _ => Err(sw::NOT_ALLOWED),
    }
}

fn update<B: FaceBackend + ?Sized>(b: &mut B, s: &Session, c: &Command<'_>) -> Reply {
    let (ef, offset) = writable(b, s, c)?;
    if c.data.is_empty() || c.le.is_some() {
        return Err(sw::WRONG_LENGTH);
    }
    let mut file = b.face_file(ef).to_vec();
    if offset > file.len() {
        return Err(sw::BAD_OFFSET);
    }
    let end = offset + c.data.len();
    if end > MAX_FILE {
        return Err(sw::FILE_FULL);
    }
    if end > file.len() {
        file.resize(end, 0);
    }
    file.get_mut(offset..end)
        .ok_or(sw::UNKNOWN)?
        .copy_from_slice(c.data);
    b.face_write(ef, file).map_err(AppletError::status_word)?;
    Ok((Vec::new(), sw::OK))
}

fn erase<B: FaceBackend + ?Sized>(b: &mut B, s: &Session, c: &Command<'_>) -> Reply {
    let (ef, offset) = writable(b, s, c)?;
    if !c.data.is_empty() || c.le.is_some() {
        return Err(sw::WRONG_LENGTH);
    }
    let mut file = b.face_file(ef).to_vec();
    if offset > file.len() {
        return Err(sw::BAD_OFFSET);
    }
    file.truncate(offset);
    b.face_write(ef, file).map_err(AppletError::status_word)?;
    Ok((Vec::new(), sw::OK))
}

#[cfg(test)]
mod tests;
