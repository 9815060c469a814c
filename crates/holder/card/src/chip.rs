//! The chip: a sans-IO JPKI application answering APDUs.

use core::fmt;

use serde::{Deserialize, Serialize};
use shomei_core::Signer as _;
use shomei_pki::RsaSigner;
use zeroize::Zeroizing;

use crate::apdu::{self, Command, JPKI_AID, MAX_OFFSET, fid, ins, sw};
use crate::{CardError, CertKind, ChipMemory, KeyKind, PinKind, Variant, keyfmt};

/// Version of the serialised chip image.
const IMAGE_FORMAT: u32 = 1;
/// Largest certificate EF: every byte must be reachable with a 15-bit offset.
const MAX_FILE: usize = MAX_OFFSET + 1;
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

/// Volatile state, cleared by a power cycle.
#[derive(Default)]
struct Session {
    /// JPKI AP is the current DF.
    jpki: bool,
    current: Option<Ef>,
    auth_verified: bool,
    sign_verified: bool,
    /// Response bytes still to fetch with GET RESPONSE.
    pending: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ef {
    Cert(CertKind),
    Token,
    Key(KeyKind),
    Pin(PinKind),
}

impl Ef {
    fn from_fid(id: u16) -> Option<Self> {
        Some(match id {
            fid::SIGN_CERT => Self::Cert(CertKind::Sign),
            fid::SIGN_CA_CERT => Self::Cert(CertKind::SignCa),
            fid::TOKEN => Self::Token,
            fid::AUTH_CERT => Self::Cert(CertKind::Auth),
            fid::AUTH_CA_CERT => Self::Cert(CertKind::AuthCa),
            fid::AUTH_KEY => Self::Key(KeyKind::Auth),
            fid::AUTH_PIN => Self::Pin(PinKind::Auth),
            fid::SIGN_KEY => Self::Key(KeyKind::Sign),
            fid::SIGN_PIN => Self::Pin(PinKind::Sign),
            _ => return None,
        })
    }
}

/// A handler's answer: response data and `90 00`/`61 XX`/`62 82`, or an
/// error status word without data.
type Reply = Result<(Vec<u8>, u16), u16>;

fn ok() -> Reply {
    Ok((Vec::new(), sw::OK))
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
        self.session = Session::default();
    }

    /// Processes one command APDU; returns response data followed by SW1 SW2.
    /// Never panics.
    pub fn process_apdu(&mut self, command: &[u8]) -> Vec<u8> {
        // Any command other than GET RESPONSE abandons a pending response.
        let pending = core::mem::take(&mut self.session.pending);
        let reply = match Command::parse(command) {
            Some(cmd) => self.dispatch(&cmd, pending),
            // Shorter than a header, extended length, or Lc inconsistent with
            // the body: ISO 7816-4 "wrong length".
            None => Err(sw::WRONG_LENGTH),
        };
        let (mut data, status) = reply.unwrap_or_else(|status| (Vec::new(), status));
        data.extend_from_slice(&status.to_be_bytes());
        data
    }

    fn dispatch(&mut self, c: &Command<'_>, pending: Vec<u8>) -> Reply {
        match (c.cla, c.ins) {
            (0x00, ins::SELECT) => self.select(c),
            (0x00, ins::READ_BINARY) => self.read_binary(c),
            (0x00, ins::VERIFY) => self.verify(c),
            (0x00, ins::CHANGE_REFERENCE_DATA) => self.change_reference_data(c),
            (0x00, ins::GENERATE_KEY_PAIR) => self.read_public_key(c),
            (0x00, ins::UPDATE_BINARY) => self.update_binary(c),
            (0x00, ins::ERASE_BINARY) => self.erase_binary(c),
            (0x00, ins::ACTIVATE) => self.activate(c),
            (0x00, ins::GET_RESPONSE) => self.get_response(c, pending),
            // The card's signing command uses the proprietary class (jpki.md §1.5).
            (0x80, ins::COMPUTE_SIGNATURE) => self.compute_signature(c),
            // Known class, unknown instruction.
            (0x00 | 0x80, _) => Err(sw::BAD_INS),
            // Secure messaging, chaining, logical channels: not supported.
            _ => Err(sw::BAD_CLA),
        }
    }

    /// SELECT: `00 A4 04 0C Lc AID` (DF by name) or `00 A4 02 0C 02 FID` (EF).
    fn select(&mut self, c: &Command<'_>) -> Reply {
        // P2 = 0C asks for no response data, so Le must be absent and Lc present.
        if c.le.is_some() || c.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        // Only "no FCI" selection is implemented.
        if c.p2 != 0x0C {
            return Err(sw::BAD_P1P2);
        }
        match c.p1 {
            0x04 => {
                if c.data != JPKI_AID {
                    // Unknown application; the current selection stays (ISO 7816-4).
                    return Err(sw::NOT_FOUND);
                }
                // Entering the DF resets its security state.
                self.session = Session {
                    jpki: true,
                    ..Session::default()
                };
                ok()
            }
            0x02 => {
                let id: [u8; 2] = c.data.try_into().map_err(|_| sw::WRONG_LENGTH)?;
                // EFs exist only inside the JPKI DF.
                let ef = Ef::from_fid(u16::from_be_bytes(id))
                    .filter(|_| self.session.jpki)
                    .ok_or(sw::NOT_FOUND)?;
                self.session.current = Some(ef);
                ok()
            }
            _ => Err(sw::BAD_P1P2),
        }
    }

    /// READ BINARY: `00 B0 P1 P2 Le` on the current EF.
    fn read_binary(&mut self, c: &Command<'_>) -> Reply {
        // SFI addressing (P1 bit 8) is not implemented: select the EF instead.
        if c.p1 & 0x80 != 0 {
            return Err(sw::UNSUPPORTED);
        }
        let le = match (c.data.is_empty(), c.le) {
            (true, Some(le)) => le,
            // Case 2 only: Le needed, no data.
            _ => return Err(sw::WRONG_LENGTH),
        };
        // No current EF.
        let ef = self.session.current.ok_or(sw::NOT_ALLOWED)?;
        let token;
        let content: &[u8] = match ef {
            Ef::Token => {
                token = self.token();
                &token
            }
            Ef::Cert(kind) => {
                self.check_cert_read(kind)?;
                self.image.cert(kind)
            }
            // Internal EFs: no PIN ever makes them readable, so "not allowed"
            // rather than "security status not satisfied".
            Ef::Key(_) | Ef::Pin(_) => return Err(sw::NOT_ALLOWED),
        };
        let offset = usize::from(u16::from_be_bytes([c.p1, c.p2]));
        // Offset at or past the end of the EF (also: an empty EF).
        if offset >= content.len() {
            return Err(sw::BAD_OFFSET);
        }
        let end = offset.saturating_add(le).min(content.len());
        let data = content.get(offset..end).unwrap_or_default().to_vec();
        // Fewer bytes than Le: return them with the ISO warning "end of file".
        let status = if data.len() < le {
            sw::END_OF_FILE
        } else {
            sw::OK
        };
        Ok((data, status))
    }

    fn check_cert_read(&self, kind: CertKind) -> Result<(), u16> {
        let needs = match (kind, self.image.variant) {
            (CertKind::Sign, _) => Some(PinKind::Sign),
            // On the phone's GP-SE the auth cert is behind the auth PIN (jpki.md §3.2).
            (CertKind::Auth, Variant::Phone) => Some(PinKind::Auth),
            _ => None,
        };
        match needs {
            Some(pin) if !self.session.verified(pin) => Err(sw::SECURITY),
            _ => Ok(()),
        }
    }

    fn token(&self) -> Vec<u8> {
        let text = match self.image.variant {
            Variant::Card => apdu::TOKEN_CARD,
            Variant::Phone => apdu::TOKEN_GPSE,
        };
        text.iter()
            .copied()
            .chain(core::iter::repeat(b' '))
            .take(apdu::TOKEN_LEN)
            .collect()
    }

    /// VERIFY: `00 20 00 80` (read counter) or `00 20 00 80 Lc PIN` on the current PIN EF.
    fn verify(&mut self, c: &Command<'_>) -> Reply {
        // P2 80: PIN reference local to the current DF, given by the current EF.
        if (c.p1, c.p2) != (0x00, 0x80) {
            return Err(sw::BAD_P1P2);
        }
        // Real cards answer 67 00 to `00 20 00 80 00` (jpki.md §1.5).
        if c.le.is_some() {
            return Err(sw::WRONG_LENGTH);
        }
        // No PIN EF selected.
        let Some(Ef::Pin(kind)) = self.session.current else {
            return Err(sw::NOT_ALLOWED);
        };
        let tries = self.image.pin(kind).tries_left;
        if tries == 0 {
            return Err(sw::BLOCKED);
        }
        if c.data.is_empty() {
            // Case 1 reads the counter without spending a try.
            return Err(sw::COUNTER | u16::from(tries));
        }
        // An attempt invalidates the previous verification (ISO 7816-4).
        self.session.set_verified(kind, false);
        // Count the try and make it durable BEFORE comparing. If the commit
        // fails, answer "memory failure" without comparing, so the answer
        // never depends on the PIN unless the try is on record. The in-RAM
        // counter stays decremented: nothing ever refunds a try.
        let left = tries - 1;
        self.image.pin_mut(kind).tries_left = left;
        self.persist()?;
        if !self.image.pin(kind).matches(c.data) {
            // The try that used the last attempt already answers "blocked".
            return Err(if left == 0 {
                sw::BLOCKED
            } else {
                sw::COUNTER | u16::from(left)
            });
        }
        // Success resets the counter; if that cannot be committed the PIN is
        // not marked verified and RAM keeps the (stricter) committed counter.
        let mut next = self.image.clone();
        next.pin_mut(kind).tries_left = kind.max_tries();
        self.replace(next)?;
        self.session.set_verified(kind, true);
        ok()
    }

    /// CHANGE REFERENCE DATA: `00 24 01 80 Lc newPIN` after VERIFY of the current PIN EF.
    fn change_reference_data(&mut self, c: &Command<'_>) -> Reply {
        // P1 01: new reference data only (the old one was just verified).
        if (c.p1, c.p2) != (0x01, 0x80) {
            return Err(sw::BAD_P1P2);
        }
        if c.le.is_some() || c.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        let Some(Ef::Pin(kind)) = self.session.current else {
            return Err(sw::NOT_ALLOWED);
        };
        if self.image.pin(kind).tries_left == 0 {
            return Err(sw::BLOCKED);
        }
        if !self.session.verified(kind) {
            return Err(sw::SECURITY);
        }
        // The card enforces the format too: a PIN it could never accept.
        if !kind.is_well_formed(c.data) {
            return Err(sw::BAD_DATA);
        }
        let mut next = self.image.clone();
        // Randomness failure: no precise diagnosis.
        *next.pin_mut(kind) = PinRecord::new(kind, c.data).map_err(|()| sw::UNKNOWN)?;
        self.replace(next)?;
        ok()
    }

    /// GENERATE ASYMMETRIC KEY PAIR in read mode: `00 47 81 00 00` on a key EF.
    fn read_public_key(&mut self, c: &Command<'_>) -> Reply {
        // Only P1 81 "read the public key": generating would replace a
        // certified key, which the JPKI AP never allows by APDU.
        if (c.p1, c.p2) != (0x81, 0x00) {
            return Err(sw::BAD_P1P2);
        }
        let le = match (c.data.is_empty(), c.le) {
            (true, Some(le)) => le,
            _ => return Err(sw::WRONG_LENGTH),
        };
        let Some(Ef::Key(kind)) = self.session.current else {
            return Err(sw::NOT_ALLOWED);
        };
        // Public data: no PIN needed.
        let template = self.key(kind).template.clone();
        Ok(self.respond(template, le))
    }

    /// COMPUTE DIGITAL SIGNATURE: `80 2A 00 80 Lc DigestInfo 00` on a key EF.
    fn compute_signature(&mut self, c: &Command<'_>) -> Reply {
        if (c.p1, c.p2) != (0x00, 0x80) {
            return Err(sw::BAD_P1P2);
        }
        if c.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        let Some(Ef::Key(kind)) = self.session.current else {
            return Err(sw::NOT_ALLOWED);
        };
        if !self.session.verified(kind.pin()) {
            return Err(sw::SECURITY);
        }
        // Not a SHA-256/384/512 DigestInfo.
        let signature = self
            .key(kind)
            .signer
            .sign_digest_info(c.data)
            .map_err(|_| sw::BAD_DATA)?;
        // Without Le, answer as if Le = 00 (256, the signature's length).
        Ok(self.respond(signature, c.le.unwrap_or(256)))
    }

    /// UPDATE BINARY: `00 D6 P1 P2 Lc data` on a certificate EF, during personalisation.
    fn update_binary(&mut self, c: &Command<'_>) -> Reply {
        let (kind, offset) = self.writable_cert(c)?;
        if c.data.is_empty() || c.le.is_some() {
            return Err(sw::WRONG_LENGTH);
        }
        let mut next = self.image.clone();
        let file = next.cert_mut(kind);
        // Writing may extend the file but not leave a hole.
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
        self.replace(next)?;
        ok()
    }

    /// ERASE BINARY: `00 0E P1 P2` erases (here: truncates) a certificate EF
    /// from the offset on, so a shorter certificate can replace a longer one.
    fn erase_binary(&mut self, c: &Command<'_>) -> Reply {
        let (kind, offset) = self.writable_cert(c)?;
        if !c.data.is_empty() || c.le.is_some() {
            return Err(sw::WRONG_LENGTH);
        }
        let mut next = self.image.clone();
        let file = next.cert_mut(kind);
        if offset > file.len() {
            return Err(sw::BAD_OFFSET);
        }
        file.truncate(offset);
        self.replace(next)?;
        ok()
    }

    /// Common checks of UPDATE/ERASE BINARY: (certificate EF, offset).
    fn writable_cert(&self, c: &Command<'_>) -> Result<(CertKind, usize), u16> {
        if c.p1 & 0x80 != 0 {
            return Err(sw::UNSUPPORTED);
        }
        let ef = self.session.current.ok_or(sw::NOT_ALLOWED)?;
        // After activation nothing is writable; token, key and PIN EFs never are.
        match (self.image.phase, ef) {
            (Phase::Personalisation, Ef::Cert(kind)) => {
                Ok((kind, usize::from(u16::from_be_bytes([c.p1, c.p2]))))
            }
            _ => Err(sw::NOT_ALLOWED),
        }
    }

    /// ACTIVATE FILE: `00 44 00 00` on the JPKI DF ends personalisation
    /// (`69 85` unless the auth certificate, its CA, and the sign CA for a
    /// present sign certificate are written).
    fn activate(&mut self, c: &Command<'_>) -> Reply {
        if (c.p1, c.p2) != (0x00, 0x00) {
            return Err(sw::BAD_P1P2);
        }
        if !c.data.is_empty() || c.le.is_some() {
            return Err(sw::WRONG_LENGTH);
        }
        if !self.session.jpki {
            return Err(sw::NOT_ALLOWED);
        }
        // Idempotent, so a client can retry after losing the answer.
        if self.image.phase == Phase::Operational {
            return ok();
        }
        // Conditions of use: the authentication certificate and its CA are
        // mandatory; the signing certificate is optional (holders under 15
        // get none), but if present its CA must be too.
        let has = |k| !self.image.cert(k).is_empty();
        let complete = has(CertKind::Auth)
            && has(CertKind::AuthCa)
            && (!has(CertKind::Sign) || has(CertKind::SignCa));
        if !complete {
            return Err(sw::CONDITIONS);
        }
        let mut next = self.image.clone();
        next.phase = Phase::Operational;
        self.replace(next)?;
        ok()
    }

    /// GET RESPONSE: `00 C0 00 00 Le` fetches the rest of a `61 XX` answer.
    fn get_response(&mut self, c: &Command<'_>, pending: Vec<u8>) -> Reply {
        if (c.p1, c.p2) != (0x00, 0x00) {
            return Err(sw::BAD_P1P2);
        }
        let le = match (c.data.is_empty(), c.le) {
            (true, Some(le)) => le,
            _ => return Err(sw::WRONG_LENGTH),
        };
        // Nothing to fetch.
        if pending.is_empty() {
            return Err(sw::CONDITIONS);
        }
        Ok(self.respond(pending, le))
    }

    /// Answers at most `le` bytes; the rest waits for GET RESPONSE (`61 XX`).
    fn respond(&mut self, mut data: Vec<u8>, le: usize) -> (Vec<u8>, u16) {
        if data.len() <= le {
            return (data, sw::OK);
        }
        let rest = data.split_off(le);
        // XX = bytes still available, 00 meaning 256 or more.
        let xx = u8::try_from(rest.len()).unwrap_or(0);
        self.session.pending = rest;
        (data, sw::MORE_DATA | u16::from(xx))
    }

    fn key(&self, kind: KeyKind) -> &ChipKey {
        match kind {
            KeyKind::Auth => &self.auth_key,
            KeyKind::Sign => &self.sign_key,
        }
    }

    /// The SubjectPublicKeyInfo of a chip key, straight from the key (tests only).
    #[cfg(test)]
    pub(crate) fn key_spki(&self, kind: KeyKind) -> Vec<u8> {
        self.key(kind).signer.public_key_spki().to_vec()
    }

    /// Commits the image as it is in RAM.
    fn persist(&mut self) -> Result<(), u16> {
        let bytes = self.image.to_bytes().map_err(|_| sw::MEMORY_FAILURE)?;
        self.memory.commit(&bytes).map_err(|_| sw::MEMORY_FAILURE)
    }

    /// Commits `next` and, only if that worked, makes it the image in RAM.
    fn replace(&mut self, next: Image) -> Result<(), u16> {
        let bytes = next.to_bytes().map_err(|_| sw::MEMORY_FAILURE)?;
        self.memory.commit(&bytes).map_err(|_| sw::MEMORY_FAILURE)?;
        self.image = next;
        Ok(())
    }
}

impl Session {
    fn verified(&self, kind: PinKind) -> bool {
        match kind {
            PinKind::Auth => self.auth_verified,
            PinKind::Sign => self.sign_verified,
        }
    }

    fn set_verified(&mut self, kind: PinKind, value: bool) {
        match kind {
            PinKind::Auth => self.auth_verified = value,
            PinKind::Sign => self.sign_verified = value,
        }
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
        let mut salt = vec![0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| ())?;
        let hash = pin_hash(&salt, pin);
        Ok(Self {
            salt,
            hash,
            tries_left: kind.max_tries(),
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
