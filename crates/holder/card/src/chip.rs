//! The chip: a sans-IO JPKI application answering APDUs, over its chip image.
//!
//! The APDU state machine is [`crate::applet`]; this module is its backend
//! for a physical card (or the image-based phone variant): certificates,
//! PKCS#8 keys, salted PIN hashes and retry counters in one image committed
//! through [`ChipMemory`].

use core::fmt;

use serde::{Deserialize, Serialize};
use shomei_core::Signer as _;
use shomei_pki::RsaSigner;
use zeroize::Zeroizing;

// The APDU tests (chip/tests.rs) see the file identifiers through `use super::*`.
#[cfg(test)]
use crate::apdu::fid;
use crate::applet::{self, AppletError, AppletFiles, AppletSecrets, MAX_FILE, Session};
use crate::face::{self, FaceBackend, FaceEf, FacePin, OtherAp};
use crate::{CardError, CertKind, ChipMemory, KeyKind, PinKind, Variant, keyfmt};

/// Version of the serialised chip image.
const IMAGE_FORMAT: u32 = 1;
const SALT_LEN: usize = 16;
const PIN_HASH_DOMAIN: &[u8] = b"shomei-card PIN v1\0";

/// Life-cycle phase of the chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Just manufactured: certificate EFs may be written.
    Personalisation,
    /// After ACTIVATE FILE: nothing can be written any more.
    Operational,
}

/// An emulated My Number Card (or phone secure element) with its JPKI AP.
///
/// Non-volatile state lives in the [`ChipMemory`] and is committed before a
/// command's answer is given; volatile state (selection, verified PINs) is
/// lost on [`Card::reset`].
pub struct Card {
    memory: Box<dyn ChipMemory + Send>,
    image: Image,
    auth_key: ChipKey,
    sign_key: ChipKey,
    session: Session,
    /// Set while one of the other APs (text, visual, manufacture) is selected.
    face_session: face::Session,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("variant", &self.image.variant)
            .field("phase", &self.image.phase)
            .field("auth_tries_left", &self.image.auth_pin.tries_left)
            .field("sign_tries_left", &self.image.sign_pin.tries_left)
            .finish_non_exhaustive()
    }
}

/// The chip memory, as serialised through [`ChipMemory`].
#[derive(Clone, Serialize, Deserialize)]
struct Image {
    format: u32,
    variant: Variant,
    phase: Phase,
    #[serde(with = "hex_bytes")]
    sign_cert: Vec<u8>,
    #[serde(with = "hex_bytes")]
    sign_ca_cert: Vec<u8>,
    #[serde(with = "hex_bytes")]
    auth_cert: Vec<u8>,
    #[serde(with = "hex_bytes")]
    auth_ca_cert: Vec<u8>,
    /// PKCS#8 of the keys.
    auth_key: Secret,
    sign_key: Secret,
    auth_pin: PinRecord,
    sign_pin: PinRecord,
    /// The card's other applications (absent in images made before them,
    /// and on the phone variant: selecting them answers `6A 82`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    other_aps: Option<OtherAps>,
}

/// The text, visual and manufacture-number APs' durable state.
#[derive(Clone, Serialize, Deserialize)]
struct OtherAps {
    /// 製造番号: 13 characters, made at manufacture.
    manufacture_number: String,
    text_pin: PinRecord,
    /// Set at ACTIVATE from the written data.
    pin_a: Option<PinRecord>,
    pin_b: Option<PinRecord>,
    #[serde(with = "hex_bytes")]
    my_number: Vec<u8>,
    #[serde(with = "hex_bytes")]
    attributes: Vec<u8>,
    #[serde(with = "hex_bytes")]
    text_basic: Vec<u8>,
    #[serde(with = "hex_bytes")]
    face: Vec<u8>,
    #[serde(with = "hex_bytes")]
    visual_basic: Vec<u8>,
}

/// A retry counter and salted hash of a PIN.
///
/// The hash only keeps the PIN out of the image in plain text: the image
/// also holds the private keys, so its confidentiality (mode 0600, or a real
/// chip's physical protection) is what actually protects the keys.
#[derive(Clone, Serialize, Deserialize)]
struct PinRecord {
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    #[serde(with = "hex_bytes")]
    hash: Vec<u8>,
    tries_left: u8,
}

/// Key bytes, wiped on drop and never printed.
#[derive(Clone, Serialize, Deserialize)]
struct Secret(#[serde(with = "hex_secret")] Zeroizing<Vec<u8>>);

struct ChipKey {
    signer: RsaSigner,
    /// `7F49` public key template, answered to "read public key".
    template: Vec<u8>,
}

impl Card {
    /// Manufactures a chip in `memory`: generates both RSA-2048 keys inside,
    /// stores the salted PIN hashes with full retry counters, and commits the
    /// image in [`Phase::Personalisation`].
    pub fn manufacture(
        mut memory: impl ChipMemory + Send + 'static,
        variant: Variant,
        sign_password: &str,
        auth_pin: &str,
    ) -> Result<Self, CardError> {
        PinKind::Sign.check(sign_password)?;
        PinKind::Auth.check(auth_pin)?;
        let key = |what: &str| {
            let signer = RsaSigner::generate()
                .map_err(|e| CardError::Key(format!("{what} key generation: {e}")))?;
            let pkcs8 = signer
                .to_pkcs8()
                .map_err(|e| CardError::Key(format!("{what} key encoding: {e}")))?;
            Ok::<_, CardError>(Secret(pkcs8))
        };
        let image = Image {
            format: IMAGE_FORMAT,
            variant,
            phase: Phase::Personalisation,
            sign_cert: Vec::new(),
            sign_ca_cert: Vec::new(),
            auth_cert: Vec::new(),
            auth_ca_cert: Vec::new(),
            auth_key: key("authentication")?,
            sign_key: key("signing")?,
            auth_pin: PinRecord::new(PinKind::Auth, auth_pin.as_bytes())
                .map_err(|()| CardError::Key("random source failed".into()))?,
            sign_pin: PinRecord::new(PinKind::Sign, sign_password.as_bytes())
                .map_err(|()| CardError::Key("random source failed".into()))?,
            other_aps: match variant {
                Variant::Card => Some(OtherAps::manufacture(auth_pin)?),
                Variant::Phone => None,
            },
        };
        memory.commit(&image.to_bytes()?)?;
        Self::from_image(Box::new(memory), image)
    }

    /// Powers up a chip whose memory was committed before.
    pub fn open(memory: impl ChipMemory + Send + 'static) -> Result<Self, CardError> {
        let bytes = memory.load()?;
        let image: Image = serde_json::from_slice(&bytes)
            .map_err(|e| CardError::Malformed(format!("chip image: {e}")))?;
        Self::from_image(Box::new(memory), image)
    }

    fn from_image(memory: Box<dyn ChipMemory + Send>, image: Image) -> Result<Self, CardError> {
        image.validate()?;
        Ok(Self {
            auth_key: ChipKey::load(&image.auth_key)?,
            sign_key: ChipKey::load(&image.sign_key)?,
            memory,
            image,
            session: Session::default(),
            face_session: face::Session::default(),
        })
    }

    /// Token or secure element this chip emulates.
    pub fn variant(&self) -> Variant {
        self.image.variant
    }

    /// Current life-cycle phase.
    pub fn phase(&self) -> Phase {
        self.image.phase
    }

    /// Power cycle: forgets the selection, verified PINs and pending response.
    pub fn reset(&mut self) {
        let mut session = core::mem::take(&mut self.session);
        applet::reset(&mut self.state(), &mut session);
        self.session = session;
        self.face_session = face::Session::default();
    }

    /// Processes one command APDU; returns response data followed by SW1 SW2.
    /// Never panics.
    pub fn process_apdu(&mut self, command: &[u8]) -> Vec<u8> {
        // SELECT of a DF by name chooses the application that answers.
        if let Some(c) = crate::apdu::Command::parse(command)
            .filter(|c| (c.cla, c.ins, c.p1) == (0x00, crate::apdu::ins::SELECT, 0x04))
        {
            if c.data == crate::apdu::JPKI_AID {
                self.face_session = face::Session::default();
            } else if let Some(ap) =
                OtherAp::from_aid(c.data).filter(|_| self.image.other_aps.is_some())
            {
                let status = if c.le.is_some() {
                    crate::apdu::sw::WRONG_LENGTH
                } else if c.p2 != 0x0C {
                    crate::apdu::sw::BAD_P1P2
                } else {
                    // Leaving the JPKI AP (or another AP) clears its security state.
                    let mut session = core::mem::take(&mut self.session);
                    applet::reset(&mut self.state(), &mut session);
                    self.session = session;
                    self.face_session = face::Session::selected(ap);
                    crate::apdu::sw::OK
                };
                return status.to_be_bytes().to_vec();
            }
        }
        if self.face_session.ap.is_some() {
            let mut session = core::mem::take(&mut self.face_session);
            let response = face::process(&mut self.state(), &mut session, command);
            self.face_session = session;
            return response;
        }
        let mut session = core::mem::take(&mut self.session);
        let response = applet::process(&mut self.state(), &mut session, command);
        self.session = session;
        response
    }

    /// The chip's parts as the applet's backend, for one command. (A view,
    /// not a public trait implementation on [`Card`]: the backend signs
    /// without checking the PIN, which only the state machine may ask for.)
    fn state(&mut self) -> ChipState<'_> {
        ChipState {
            memory: &mut self.memory,
            image: &mut self.image,
            auth_key: &self.auth_key,
            sign_key: &self.sign_key,
        }
    }

    /// The SubjectPublicKeyInfo of a chip key, straight from the key (tests only).
    #[cfg(test)]
    pub(crate) fn key_spki(&self, kind: KeyKind) -> Vec<u8> {
        match kind {
            KeyKind::Auth => &self.auth_key,
            KeyKind::Sign => &self.sign_key,
        }
        .signer
        .public_key_spki()
        .to_vec()
    }
}

/// The chip image as the applet's backend.
struct ChipState<'a> {
    memory: &'a mut Box<dyn ChipMemory + Send>,
    image: &'a mut Image,
    auth_key: &'a ChipKey,
    sign_key: &'a ChipKey,
}

impl ChipState<'_> {
    fn key(&self, kind: KeyKind) -> &ChipKey {
        match kind {
            KeyKind::Auth => self.auth_key,
            KeyKind::Sign => self.sign_key,
        }
    }

    /// Commits the image as it is in RAM.
    fn persist(&mut self) -> Result<(), AppletError> {
        let bytes = self
            .image
            .to_bytes()
            .map_err(|_| AppletError::MemoryFailure)?;
        self.memory
            .commit(&bytes)
            .map_err(|_| AppletError::MemoryFailure)
    }

    /// Commits `next` and, only if that worked, makes it the image in RAM.
    fn replace(&mut self, next: Image) -> Result<(), AppletError> {
        let bytes = next.to_bytes().map_err(|_| AppletError::MemoryFailure)?;
        self.memory
            .commit(&bytes)
            .map_err(|_| AppletError::MemoryFailure)?;
        *self.image = next;
        Ok(())
    }
}

impl ChipState<'_> {
    /// The one PIN check of the chip: spends a try of the record `pick`
    /// selects, durably, BEFORE comparing. If the commit fails, answer
    /// "memory failure" without comparing, so the answer never depends on
    /// the PIN unless the try is on record. The in-RAM counter stays
    /// decremented: nothing ever refunds a try.
    fn spend_and_compare(
        &mut self,
        max_tries: u8,
        candidate: &[u8],
        pick: impl Fn(&mut Image) -> Option<&mut PinRecord>,
    ) -> Result<(), AppletError> {
        let record = pick(self.image).ok_or(AppletError::NotAllowed)?;
        let tries = record.tries_left;
        if tries == 0 {
            return Err(AppletError::Blocked);
        }
        let left = tries - 1;
        record.tries_left = left;
        self.persist()?;
        let matches = pick(self.image).is_some_and(|r| r.matches(candidate));
        if !matches {
            // The try that used the last attempt already answers "blocked".
            return Err(if left == 0 {
                AppletError::Blocked
            } else {
                AppletError::WrongPin { tries_left: left }
            });
        }
        // Success resets the counter; if that cannot be committed the PIN is
        // not marked verified and RAM keeps the (stricter) committed counter.
        let mut next = self.image.clone();
        if let Some(r) = pick(&mut next) {
            r.tries_left = max_tries;
        }
        self.replace(next)
    }
}

impl AppletSecrets for ChipState<'_> {
    fn tries_left(&self, pin: PinKind) -> u8 {
        self.image.pin(pin).tries_left
    }

    fn try_pin(&mut self, kind: PinKind, candidate: &[u8]) -> Result<(), AppletError> {
        self.spend_and_compare(kind.max_tries(), candidate, |image| {
            Some(image.pin_mut(kind))
        })
    }

    fn change_pin(&mut self, kind: PinKind, new_pin: &[u8]) -> Result<(), AppletError> {
        let mut next = self.image.clone();
        // Randomness failure: no precise diagnosis.
        *next.pin_mut(kind) = PinRecord::new(kind, new_pin).map_err(|()| AppletError::Failed)?;
        self.replace(next)
    }

    fn public_key_template(&self, key: KeyKind) -> Result<Vec<u8>, AppletError> {
        Ok(self.key(key).template.clone())
    }

    fn sign_digest_info(
        &mut self,
        key: KeyKind,
        digest_info: &[u8],
    ) -> Result<Vec<u8>, AppletError> {
        // Not a SHA-256/384/512 DigestInfo.
        self.key(key)
            .signer
            .sign_digest_info(digest_info)
            .map_err(|_| AppletError::BadData)
    }
}

impl AppletFiles for ChipState<'_> {
    fn variant(&self) -> Variant {
        self.image.variant
    }

    fn phase(&self) -> Phase {
        self.image.phase
    }

    fn certificate(&self, kind: CertKind) -> &[u8] {
        self.image.cert(kind)
    }

    fn write_certificate(&mut self, kind: CertKind, content: Vec<u8>) -> Result<(), AppletError> {
        let mut next = self.image.clone();
        *next.cert_mut(kind) = content;
        self.replace(next)
    }

    fn activate(&mut self) -> Result<(), AppletError> {
        let mut next = self.image.clone();
        next.phase = Phase::Operational;
        if let Some(aps) = next.other_aps.as_mut() {
            aps.derive_pins()?;
        }
        self.replace(next)
    }
}

impl FaceBackend for ChipState<'_> {
    fn phase(&self) -> Phase {
        self.image.phase
    }

    fn face_tries_left(&self, pin: FacePin) -> Option<u8> {
        self.image
            .other_aps
            .as_ref()
            .and_then(|a| a.pin(pin))
            .map(|r| r.tries_left)
    }

    fn face_try_pin(&mut self, pin: FacePin, candidate: &[u8]) -> Result<(), AppletError> {
        self.spend_and_compare(pin.max_tries(), candidate, |image| {
            image.other_aps.as_mut().and_then(|a| a.pin_mut(pin))
        })
    }

    fn face_change_pin(&mut self, pin: FacePin, new_pin: &[u8]) -> Result<(), AppletError> {
        let mut next = self.image.clone();
        let record = next
            .other_aps
            .as_mut()
            .and_then(|a| a.pin_mut(pin))
            .ok_or(AppletError::NotAllowed)?;
        *record =
            PinRecord::with_tries(pin.max_tries(), new_pin).map_err(|()| AppletError::Failed)?;
        self.replace(next)
    }

    fn face_file(&self, ef: FaceEf) -> &[u8] {
        self.image.other_aps.as_ref().map_or(&[], |a| a.file(ef))
    }

    fn face_write(&mut self, ef: FaceEf, content: Vec<u8>) -> Result<(), AppletError> {
        let mut next = self.image.clone();
        *next
            .other_aps
            .as_mut()
            .ok_or(AppletError::NotAllowed)?
            .file_mut(ef) = content;
        self.replace(next)
    }

    fn manufacture_number(&self) -> &str {
        self.image
            .other_aps
            .as_ref()
            .map_or("", |a| a.manufacture_number.as_str())
    }
}

impl OtherAps {
    /// Fresh APs: a random 製造番号, the text PIN equal to the auth PIN.
    fn manufacture(text_pin: &str) -> Result<Self, CardError> {
        let random = |n: usize| {
            let mut b = vec![0u8; n];
            aws_lc_rs::rand::fill(&mut b)
                .map_err(|_| CardError::Key("random source failed".into()))?;
            Ok::<_, CardError>(b)
        };
        // Two letters and eleven digits (the real format is not documented).
        let letters = random(2)?;
        let digits = random(11)?;
        let manufacture_number = letters
            .iter()
            .map(|b| char::from(b'A' + b % 26))
            .chain(digits.iter().map(|b| char::from(b'0' + b % 10)))
            .collect();
        Ok(Self {
            manufacture_number,
            text_pin: PinRecord::with_tries(FacePin::Text.max_tries(), text_pin.as_bytes())
                .map_err(|()| CardError::Key("random source failed".into()))?,
            pin_a: None,
            pin_b: None,
            my_number: Vec::new(),
            attributes: Vec::new(),
            text_basic: Vec::new(),
            face: Vec::new(),
            visual_basic: Vec::new(),
        })
    }

    /// PIN A from the My Number EF, PIN B from the face (at ACTIVATE). A
    /// card personalised without face data keeps them unset; written data
    /// that does not parse refuses activation (`69 85`).
    fn derive_pins(&mut self) -> Result<(), AppletError> {
        use shomei_pki::cardface;
        if !self.my_number.is_empty() {
            let n =
                cardface::parse_my_number(&self.my_number).map_err(|_| AppletError::Conditions)?;
            self.pin_a = Some(
                PinRecord::with_tries(FacePin::A.max_tries(), n.as_str().as_bytes())
                    .map_err(|()| AppletError::Failed)?,
            );
        }
        if !self.face.is_empty() {
            let face = cardface::parse_face(&self.face).map_err(|_| AppletError::Conditions)?;
            let pin_b = zeroize::Zeroizing::new(face.pin_b());
            if !FacePin::B.is_well_formed(pin_b.as_bytes()) {
                return Err(AppletError::Conditions);
            }
            self.pin_b = Some(
                PinRecord::with_tries(FacePin::B.max_tries(), pin_b.as_bytes())
                    .map_err(|()| AppletError::Failed)?,
            );
        }
        Ok(())
    }

    fn pin(&self, pin: FacePin) -> Option<&PinRecord> {
        match pin {
            FacePin::Text => Some(&self.text_pin),
            FacePin::A => self.pin_a.as_ref(),
            FacePin::B => self.pin_b.as_ref(),
        }
    }

    fn pin_mut(&mut self, pin: FacePin) -> Option<&mut PinRecord> {
        match pin {
            FacePin::Text => Some(&mut self.text_pin),
            FacePin::A => self.pin_a.as_mut(),
            FacePin::B => self.pin_b.as_mut(),
        }
    }

    fn file(&self, ef: FaceEf) -> &[u8] {
        match ef {
            FaceEf::MyNumber => &self.my_number,
            FaceEf::Attributes => &self.attributes,
            FaceEf::TextBasic => &self.text_basic,
            FaceEf::Face => &self.face,
            FaceEf::VisualBasic => &self.visual_basic,
        }
    }

    fn file_mut(&mut self, ef: FaceEf) -> &mut Vec<u8> {
        match ef {
            FaceEf::MyNumber => &mut self.my_number,
            FaceEf::Attributes => &mut self.attributes,
            FaceEf::TextBasic => &mut self.text_basic,
            FaceEf::Face => &mut self.face,
            FaceEf::VisualBasic => &mut self.visual_basic,
        }
    }

    fn validate(&self) -> Result<(), &'static str> {
        if self.manufacture_number.len() != 13 {
            return Err("bad manufacture number");
        }
        for pin in [FacePin::Text, FacePin::A, FacePin::B] {
            if let Some(r) = self.pin(pin)
                && (r.tries_left > pin.max_tries()
                    || r.salt.len() != SALT_LEN
                    || r.hash.len() != aws_lc_rs::digest::SHA256_OUTPUT_LEN)
            {
                return Err("bad PIN record");
            }
        }
        if FaceEf::ALL.iter().any(|ef| self.file(*ef).len() > MAX_FILE) {
            return Err("face file too large");
        }
        Ok(())
    }
}

impl Image {
    fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, CardError> {
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|e| CardError::Memory(format!("cannot encode chip image: {e}")))
    }

    fn validate(&self) -> Result<(), CardError> {
        let bad = |m: &str| Err(CardError::Malformed(format!("chip image: {m}")));
        if self.format != IMAGE_FORMAT {
            return bad("unsupported format version");
        }
        for kind in [PinKind::Auth, PinKind::Sign] {
            let pin = self.pin(kind);
            if pin.tries_left > kind.max_tries() || pin.salt.len() != SALT_LEN {
                return bad("bad PIN record");
            }
            if pin.hash.len() != aws_lc_rs::digest::SHA256_OUTPUT_LEN {
                return bad("bad PIN record");
            }
        }
        if CertKind::ALL.iter().any(|k| self.cert(*k).len() > MAX_FILE) {
            return bad("certificate file too large");
        }
        if let Some(Err(m)) = self.other_aps.as_ref().map(OtherAps::validate) {
            return bad(m);
        }
        Ok(())
    }

    fn cert(&self, kind: CertKind) -> &[u8] {
        match kind {
            CertKind::Sign => &self.sign_cert,
            CertKind::SignCa => &self.sign_ca_cert,
            CertKind::Auth => &self.auth_cert,
            CertKind::AuthCa => &self.auth_ca_cert,
        }
    }

    fn cert_mut(&mut self, kind: CertKind) -> &mut Vec<u8> {
        match kind {
            CertKind::Sign => &mut self.sign_cert,
            CertKind::SignCa => &mut self.sign_ca_cert,
            CertKind::Auth => &mut self.auth_cert,
            CertKind::AuthCa => &mut self.auth_ca_cert,
        }
    }

    fn pin(&self, kind: PinKind) -> &PinRecord {
        match kind {
            PinKind::Auth => &self.auth_pin,
            PinKind::Sign => &self.sign_pin,
        }
    }

    fn pin_mut(&mut self, kind: PinKind) -> &mut PinRecord {
        match kind {
            PinKind::Auth => &mut self.auth_pin,
            PinKind::Sign => &mut self.sign_pin,
        }
    }
}

impl PinRecord {
    /// A fresh salt and hash with a full counter; `Err` if randomness failed.
    fn new(kind: PinKind, pin: &[u8]) -> Result<Self, ()> {
        Self::with_tries(kind.max_tries(), pin)
    }

    /// A fresh salt and hash with `tries` tries; `Err` if randomness failed.
    fn with_tries(tries: u8, pin: &[u8]) -> Result<Self, ()> {
        let mut salt = vec![0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| ())?;
        let hash = pin_hash(&salt, pin);
        Ok(Self {
            salt,
            hash,
            tries_left: tries,
        })
    }

    fn matches(&self, pin: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&pin_hash(&self.salt, pin), &self.hash)
            .is_ok()
    }
}

fn pin_hash(salt: &[u8], pin: &[u8]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(PIN_HASH_DOMAIN);
    ctx.update(salt);
    ctx.update(pin);
    ctx.finish().as_ref().to_vec()
}

impl ChipKey {
    fn load(secret: &Secret) -> Result<Self, CardError> {
        let signer = RsaSigner::from_pkcs8(&secret.0)
            .map_err(|e| CardError::Key(format!("chip key: {e}")))?;
        let template = keyfmt::template_from_spki(signer.public_key_spki())?;
        Ok(Self { signer, template })
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

mod hex_secret {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(bytes: &Zeroizing<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode_upper(bytes.as_slice())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        hex::decode(text.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| serde::de::Error::custom("key is not hexadecimal"))
    }
}

#[cfg(test)]
mod tests;
