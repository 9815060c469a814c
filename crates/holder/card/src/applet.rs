//! The JPKI AP's APDU state machine, generic over where its secrets and
//! files live.
//!
//! The state machine owns only volatile state (selection, which PINs were
//! verified in this session, a pending GET RESPONSE). Everything durable or
//! secret is behind two small traits:
//!
//! * [`AppletSecrets`] — the PINs (retry counters, counting a try **before**
//!   comparing is the backend's job) and the two private keys (read the
//!   public key template, sign a DigestInfo);
//! * [`AppletFiles`] — the token kind, the life-cycle phase and the four
//!   certificate EFs.
//!
//! The physical card ([`crate::Card`]) implements both over its chip image;
//! a phone implements them over its secure element (keys and PIN gates in
//! the element, certificates in the wallet), and then answers the same
//! APDUs with token `JPKIAPGPSETOKEN`, so the same [`crate::JpkiClient`]
//! reads either.
//!
//! The state machine asks a backend to sign only after the key's PIN was
//! verified in the current session; a backend that can (a secure element)
//! enforces that itself as well.

use core::fmt;

use crate::apdu::{self, Command, JPKI_AID, MAX_OFFSET, fid, ins, sw};
use crate::{CertKind, KeyKind, Phase, PinKind, Variant};

/// Largest certificate EF: every byte must be reachable with a 15-bit offset.
pub(crate) const MAX_FILE: usize = MAX_OFFSET + 1;

/// Why a backend refused; each maps to one status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AppletError {
    /// Wrong PIN (`63 Cx`): `tries_left` more tries (at least 1).
    WrongPin {
        /// Tries left before the PIN blocks.
        tries_left: u8,
    },
    /// The PIN is blocked, also on the try that blocks it (`69 83`).
    Blocked,
    /// The key or PIN needs a verification the backend does not hold (`69 82`).
    NotVerified,
    /// The data can never be accepted: not a supported DigestInfo, a PIN of
    /// the wrong format (`6A 80`).
    BadData,
    /// Not possible in this state, e.g. writing a certificate on a token that
    /// is never personalised by APDU (`69 86`).
    NotAllowed,
    /// Conditions of use not satisfied, e.g. activating with face data that
    /// does not parse (`69 85`).
    Conditions,
    /// Durable state could not be committed; nothing was compared (`65 81`).
    MemoryFailure,
    /// Anything else (`6F 00`).
    Failed,
}

impl AppletError {
    /// The status word answered for this error.
    pub const fn status_word(self) -> u16 {
        match self {
            Self::WrongPin { tries_left } => sw::COUNTER | (tries_left as u16 & 0x0F),
            Self::Blocked => sw::BLOCKED,
            Self::NotVerified => sw::SECURITY,
            Self::BadData => sw::BAD_DATA,
            Self::NotAllowed => sw::NOT_ALLOWED,
            Self::Conditions => sw::CONDITIONS,
            Self::MemoryFailure => sw::MEMORY_FAILURE,
            Self::Failed => sw::UNKNOWN,
        }
    }
}

impl fmt::Display for AppletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "applet status {:04X}", self.status_word())
    }
}

impl std::error::Error for AppletError {}

/// The secrets of a JPKI AP: two PINs with retry counters and two keys.
pub trait AppletSecrets {
    /// Tries left for `pin` (0 = blocked), without spending one.
    fn tries_left(&self, pin: PinKind) -> u8;

    /// Verifies `candidate` (never empty; the PIN is not blocked when this is
    /// called). The backend must spend the try durably **before** comparing
    /// (answering [`AppletError::MemoryFailure`] without comparing if that
    /// fails) and reset the counter on success; the try that uses the last
    /// attempt answers [`AppletError::Blocked`]. On `Ok` the backend holds
    /// whatever it needs to use the PIN's key until [`AppletSecrets::forget`].
    fn try_pin(&mut self, pin: PinKind, candidate: &[u8]) -> Result<(), AppletError>;

    /// Replaces a PIN that was verified in this session; `new_pin` is well
    /// formed (checked by the state machine).
    fn change_pin(&mut self, pin: PinKind, new_pin: &[u8]) -> Result<(), AppletError>;

    /// The key's ISO 7816-8 public key template (`7F49 { 81 n, 82 e }`), see
    /// [`crate::public_key_template`].
    fn public_key_template(&self, key: KeyKind) -> Result<Vec<u8>, AppletError>;

    /// PKCS#1 v1.5 signature over a DER DigestInfo with `key`, whose PIN was
    /// verified in this session.
    fn sign_digest_info(
        &mut self,
        key: KeyKind,
        digest_info: &[u8],
    ) -> Result<Vec<u8>, AppletError>;

    /// The session's verification of `pin` ended (failed try, reselection of
    /// the AP, power cycle): drop anything held for it.
    fn forget(&mut self, pin: PinKind) {
        let _ = pin;
    }
}

/// The files of a JPKI AP: what kind of token it is, its phase, and the
/// four certificate EFs.
pub trait AppletFiles {
    /// The token kind (token EF text, auth certificate access rule).
    fn variant(&self) -> Variant;

    /// The life-cycle phase: certificate EFs are writable by APDU only in
    /// [`Phase::Personalisation`].
    fn phase(&self) -> Phase;

    /// The content of a certificate EF (empty if not written).
    fn certificate(&self, kind: CertKind) -> &[u8];

    /// Durably replaces a certificate EF (personalisation only; at most
    /// 32768 bytes, checked by the state machine).
    fn write_certificate(&mut self, kind: CertKind, content: Vec<u8>) -> Result<(), AppletError>;

    /// Durably ends personalisation (the state machine checked the files).
    fn activate(&mut self) -> Result<(), AppletError>;
}

/// A complete backend.
pub trait AppletBackend: AppletSecrets + AppletFiles {}

impl<T: AppletSecrets + AppletFiles + ?Sized> AppletBackend for T {}

/// A JPKI AP over any backend: answers APDUs, keeps the volatile state.
pub struct JpkiApplet<B> {
    backend: B,
    session: Session,
}

impl<B: AppletBackend> JpkiApplet<B> {
    /// A powered-up applet over `backend` (nothing selected or verified).
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            session: Session::default(),
        }
    }

    /// Processes one command APDU; returns response data followed by SW1 SW2.
    /// Never panics.
    pub fn process_apdu(&mut self, command: &[u8]) -> Vec<u8> {
        process(&mut self.backend, &mut self.session, command)
    }

    /// Power cycle: forgets the selection, verified PINs and pending response.
    pub fn reset(&mut self) {
        reset(&mut self.backend, &mut self.session);
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (e.g. to refresh a phone's certificates).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Unwraps the backend (its verifications are forgotten).
    pub fn into_backend(mut self) -> B {
        self.reset();
        self.backend
    }
}

impl<B: AppletFiles> fmt::Debug for JpkiApplet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JpkiApplet")
            .field("variant", &self.backend.variant())
            .field("phase", &self.backend.phase())
            .finish_non_exhaustive()
    }
}

/// Volatile state, cleared by a power cycle.
#[derive(Default)]
pub(crate) struct Session {
    /// JPKI AP is the current DF.
    jpki: bool,
    current: Option<Ef>,
    auth_verified: bool,
    sign_verified: bool,
    /// Response bytes still to fetch with GET RESPONSE.
    pending: Vec<u8>,
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

/// Power cycle of an applet whose parts are held separately.
pub(crate) fn reset<B: AppletSecrets + ?Sized>(backend: &mut B, session: &mut Session) {
    *session = Session::default();
    backend.forget(PinKind::Auth);
    backend.forget(PinKind::Sign);
}

/// Processes one command APDU against `backend` with the volatile `session`.
pub(crate) fn process<B: AppletBackend + ?Sized>(
    backend: &mut B,
    session: &mut Session,
    command: &[u8],
) -> Vec<u8> {
    Machine {
        b: backend,
        s: session,
    }
    .process_apdu(command)
}

/// The state machine for one APDU: a backend and the session.
struct Machine<'a, B: ?Sized> {
    b: &'a mut B,
    s: &'a mut Session,
}

impl<B: AppletBackend + ?Sized> Machine<'_, B> {
    fn process_apdu(&mut self, command: &[u8]) -> Vec<u8> {
        // Any command other than GET RESPONSE abandons a pending response.
        let pending = core::mem::take(&mut self.s.pending);
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
                reset(self.b, self.s);
                self.s.jpki = true;
                ok()
            }
            0x02 => {
                let id: [u8; 2] = c.data.try_into().map_err(|_| sw::WRONG_LENGTH)?;
                // EFs exist only inside the JPKI DF.
                let ef = Ef::from_fid(u16::from_be_bytes(id))
                    .filter(|_| self.s.jpki)
                    .ok_or(sw::NOT_FOUND)?;
                self.s.current = Some(ef);
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
        let ef = self.s.current.ok_or(sw::NOT_ALLOWED)?;
        let token;
        let content: &[u8] = match ef {
            Ef::Token => {
                token = self.token();
                &token
            }
            Ef::Cert(kind) => {
                self.check_cert_read(kind)?;
                self.b.certificate(kind)
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
        let needs = match (kind, self.b.variant()) {
            (CertKind::Sign, _) => Some(PinKind::Sign),
            // On the phone's GP-SE the auth cert is behind the auth PIN (jpki.md §3.2).
            (CertKind::Auth, Variant::Phone) => Some(PinKind::Auth),
            _ => None,
        };
        match needs {
            Some(pin) if !self.s.verified(pin) => Err(sw::SECURITY),
            _ => Ok(()),
        }
    }

    fn token(&self) -> Vec<u8> {
        let text = match self.b.variant() {
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
        let Some(Ef::Pin(kind)) = self.s.current else {
            return Err(sw::NOT_ALLOWED);
        };
        let tries = self.b.tries_left(kind);
        if c.data.is_empty() {
            // Case 1 reads the counter without spending a try; a blocked
            // PIN reads `63 C0` (OpenSC's jpki driver accepts only 63 Cx
            // here and would refuse the whole token on `69 83`).
            return Err(sw::COUNTER | u16::from(tries));
        }
        if tries == 0 {
            return Err(sw::BLOCKED);
        }
        // An attempt invalidates the previous verification (ISO 7816-4).
        self.s.set_verified(kind, false);
        self.b.forget(kind);
        // The backend counts the try durably before comparing.
        self.b
            .try_pin(kind, c.data)
            .map_err(AppletError::status_word)?;
        self.s.set_verified(kind, true);
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
        let Some(Ef::Pin(kind)) = self.s.current else {
            return Err(sw::NOT_ALLOWED);
        };
        if self.b.tries_left(kind) == 0 {
            return Err(sw::BLOCKED);
        }
        if !self.s.verified(kind) {
            return Err(sw::SECURITY);
        }
        // The card enforces the format too: a PIN it could never accept.
        if !kind.is_well_formed(c.data) {
            return Err(sw::BAD_DATA);
        }
        self.b
            .change_pin(kind, c.data)
            .map_err(AppletError::status_word)?;
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
        let Some(Ef::Key(kind)) = self.s.current else {
            return Err(sw::NOT_ALLOWED);
        };
        // Public data: no PIN needed.
        let template = self
            .b
            .public_key_template(kind)
            .map_err(AppletError::status_word)?;
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
        let Some(Ef::Key(kind)) = self.s.current else {
            return Err(sw::NOT_ALLOWED);
        };
        if !self.s.verified(kind.pin()) {
            return Err(sw::SECURITY);
        }
        let signature = self
            .b
            .sign_digest_info(kind, c.data)
            .map_err(AppletError::status_word)?;
        // Without Le, answer as if Le = 00 (256, the signature's length).
        Ok(self.respond(signature, c.le.unwrap_or(256)))
    }

    /// UPDATE BINARY: `00 D6 P1 P2 Lc data` on a certificate EF, during personalisation.
    fn update_binary(&mut self, c: &Command<'_>) -> Reply {
        let (kind, offset) = self.writable_cert(c)?;
        if c.data.is_empty() || c.le.is_some() {
            return Err(sw::WRONG_LENGTH);
        }
        let mut file = self.b.certificate(kind).to_vec();
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
        self.b
            .write_certificate(kind, file)
            .map_err(AppletError::status_word)?;
        ok()
    }

    /// ERASE BINARY: `00 0E P1 P2` erases (here: truncates) a certificate EF
    /// from the offset on, so a shorter certificate can replace a longer one.
    fn erase_binary(&mut self, c: &Command<'_>) -> Reply {
        let (kind, offset) = self.writable_cert(c)?;
        if !c.data.is_empty() || c.le.is_some() {
            return Err(sw::WRONG_LENGTH);
        }
        let mut file = self.b.certificate(kind).to_vec();
        if offset > file.len() {
            return Err(sw::BAD_OFFSET);
        }
        file.truncate(offset);
        self.b
            .write_certificate(kind, file)
            .map_err(AppletError::status_word)?;
        ok()
    }

    /// Common checks of UPDATE/ERASE BINARY: (certificate EF, offset).
    fn writable_cert(&self, c: &Command<'_>) -> Result<(CertKind, usize), u16> {
        if c.p1 & 0x80 != 0 {
            return Err(sw::UNSUPPORTED);
        }
        let ef = self.s.current.ok_or(sw::NOT_ALLOWED)?;
        // After activation nothing is writable; token, key and PIN EFs never are.
        match (self.b.phase(), ef) {
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
        if !self.s.jpki {
            return Err(sw::NOT_ALLOWED);
        }
        // Idempotent, so a client can retry after losing the answer.
        if self.b.phase() == Phase::Operational {
            return ok();
        }
        // Conditions of use: the authentication certificate and its CA are
        // mandatory; the signing certificate is optional (holders under 15
        // get none), but if present its CA must be too.
        let has = |k| !self.b.certificate(k).is_empty();
        let complete = has(CertKind::Auth)
            && has(CertKind::AuthCa)
            && (!has(CertKind::Sign) || has(CertKind::SignCa));
        if !complete {
            return Err(sw::CONDITIONS);
        }
        self.b.activate().map_err(AppletError::status_word)?;
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
        self.s.pending = rest;
        (data, sw::MORE_DATA | u16::from(xx))
    }
}
