//! The client: drives a JPKI AP through APDUs only.

use der::Decode;
use shomei_core::Serial;
use zeroize::Zeroizing;

use crate::apdu::{self, JPKI_AID, MAX_OFFSET, ins, sw};
use crate::{AppletBackend, Card, CardError, CertKind, JpkiApplet, KeyKind, PinKind, keyfmt};

mod face;
pub use face::{CardFace, FaceRead};

/// A link to a card: sends one command APDU, returns the response APDU
/// (data followed by SW1 SW2).
pub trait Transport {
    /// Exchanges one APDU.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, CardError>;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, CardError> {
        (**self).transmit(command)
    }
}

/// A transport to an emulated chip in the same process: a [`Card`] (the
/// default) or any [`JpkiApplet`] (e.g. a phone's secure element applet).
#[derive(Debug)]
pub struct InProcess<A = Card> {
    card: A,
}

impl<A> InProcess<A> {
    /// Wraps `card`.
    pub fn new(card: A) -> Self {
        Self { card }
    }

    /// The card.
    pub fn card(&self) -> &A {
        &self.card
    }

    /// The card, e.g. to [`Card::reset`] it.
    pub fn card_mut(&mut self) -> &mut A {
        &mut self.card
    }

    /// Unwraps the card.
    pub fn into_card(self) -> A {
        self.card
    }
}

impl Transport for InProcess<Card> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, CardError> {
        Ok(self.card.process_apdu(command))
    }
}

impl<B: AppletBackend> Transport for InProcess<JpkiApplet<B>> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, CardError> {
        Ok(self.card.process_apdu(command))
    }
}

/// What the token EF (`0006`) says the chip is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A My Number Card (`JPKIAPICCTOKEN2`).
    Card,
    /// A phone credential (スマホ用電子証明書).
    Phone(SecureElement),
    /// Anything else (e.g. the old 住基カード's `JPKIAPICCTOKEN`): the raw EF.
    Unknown(Vec<u8>),
}

/// Where a phone keeps its JPKI credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecureElement {
    /// GlobalPlatform secure element (Android), token `JPKIAPGPSETOKEN`.
    GpSe,
}

/// The four certificates written at personalisation (DER).
#[derive(Clone, Copy, Debug)]
pub struct Certificates<'a> {
    /// Signing certificate (EF `0001`).
    pub sign: &'a [u8],
    /// Signing CA certificate (EF `0002`).
    pub sign_ca: &'a [u8],
    /// Authentication certificate (EF `000A`).
    pub auth: &'a [u8],
    /// Authentication CA certificate (EF `000B`).
    pub auth_ca: &'a [u8],
}

/// A summary of the card, from [`JpkiClient::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardStatus {
    /// What the token EF says.
    pub token: TokenKind,
    /// Auth PIN tries left (0 = blocked).
    pub auth_tries_left: u8,
    /// Sign password tries left (0 = blocked).
    pub sign_tries_left: u8,
    /// Serial of the signing certificate, only if readable right now (the
    /// sign password was verified in this card session). It is never cached,
    /// so it cannot be stale after a card swap; `None` also for an empty EF.
    pub sign_serial: Option<Serial>,
    /// Serial of the authentication certificate (`None` if the EF is empty,
    /// or on a phone when the auth PIN has not been verified).
    pub auth_serial: Option<Serial>,
    /// Serial of the signing CA certificate (`None` if not personalised).
    pub sign_ca_serial: Option<Serial>,
    /// Serial of the authentication CA certificate (`None` if not personalised).
    pub auth_ca_serial: Option<Serial>,
}

/// Bytes per READ/UPDATE BINARY (short APDUs; `FF` avoids the Le = 00 ambiguity).
const CHUNK: usize = 0xFF;
/// Most GET RESPONSE rounds accepted for one answer (a 2048-bit key needs one).
const MAX_GET_RESPONSE: usize = 16;

/// A JPKI client over any [`Transport`].
///
/// It selects the JPKI AP once (on first use, or by [`JpkiClient::select_jpki`])
/// and never reselects it implicitly, because selecting the AP clears the
/// card's verified PINs.
#[derive(Debug)]
pub struct JpkiClient<T> {
    transport: T,
    selected: bool,
}

impl<T: Transport> JpkiClient<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            transport,
            selected: false,
        }
    }

    /// The transport (e.g. to reach the [`InProcess`] card).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Unwraps the transport.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Selects the JPKI AP (this also clears the card's verified PINs).
    /// `FileNotFound` means the chip has no JPKI AP.
    pub fn select_jpki(&mut self) -> Result<(), CardError> {
        self.selected = false;
        let (_, status) = self.send(&apdu::build(0, ins::SELECT, 0x04, 0x0C, &JPKI_AID, None))?;
        ok(status)?;
        self.selected = true;
        Ok(())
    }

    /// Reads the token EF to tell a card from a phone.
    pub fn token(&mut self) -> Result<TokenKind, CardError> {
        self.select_ef(apdu::fid::TOKEN)?;
        let raw = self.read_binary(0, apdu::TOKEN_LEN)?;
        let text = raw
            .iter()
            .rposition(|b| *b != b' ' && *b != 0)
            .map_or(&raw[..0], |last| &raw[..=last]);
        Ok(match text {
            apdu::TOKEN_CARD => TokenKind::Card,
            apdu::TOKEN_GPSE => TokenKind::Phone(SecureElement::GpSe),
            _ => TokenKind::Unknown(raw),
        })
    }

    /// Tries left for `kind` (0 = blocked), without spending one.
    pub fn tries_left(&mut self, kind: PinKind) -> Result<u8, CardError> {
        self.select_ef(kind.fid())?;
        let (_, status) = self.send(&apdu::build(0, ins::VERIFY, 0x00, 0x80, &[], None))?;
        match status_error(status) {
            CardError::WrongPin { tries_left } => Ok(tries_left),
            CardError::Blocked => Ok(0),
            e => Err(e),
        }
    }

    /// Verifies a PIN. A PIN that can never be valid is refused with
    /// [`CardError::BadPinFormat`] before it reaches the card (no try spent).
    ///
    /// Never retry automatically after a [`CardError::Transport`] error: the
    /// try may or may not have been counted.
    pub fn verify(&mut self, kind: PinKind, pin: &str) -> Result<(), CardError> {
        kind.check(pin)?;
        self.select_ef(kind.fid())?;
        let cmd = Zeroizing::new(apdu::build(
            0,
            ins::VERIFY,
            0x00,
            0x80,
            pin.as_bytes(),
            None,
        ));
        let (_, status) = self.send(&cmd)?;
        ok(status)
    }

    /// Changes a PIN: verifies `old`, then sets `new` (both format-checked first).
    pub fn change_pin(&mut self, kind: PinKind, old: &str, new: &str) -> Result<(), CardError> {
        kind.check(old)?;
        kind.check(new)?;
        self.verify(kind, old)?;
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

    /// Reads a certificate (DER): its first bytes give the DER length, then
    /// it is read in chunks of at most 255 bytes.
    pub fn read_certificate(&mut self, kind: CertKind) -> Result<Vec<u8>, CardError> {
        self.select_ef(kind.fid())?;
        let mut der = match self.read_binary(0, 4) {
            Err(CardError::UnexpectedStatus(sw::BAD_OFFSET)) => {
                return Err(CardError::CertificateMissing);
            }
            other => other?,
        };
        let total = der_total_len(&der)?;
        if total > MAX_OFFSET + 1 {
            return Err(CardError::Malformed(
                "certificate longer than a card EF".into(),
            ));
        }
        der.truncate(total);
        while der.len() < total {
            let want = (total - der.len()).min(CHUNK);
            let chunk = self.read_binary(der.len(), want)?;
            if chunk.len() != want {
                return Err(CardError::Malformed(
                    "certificate EF shorter than its DER length".into(),
                ));
            }
            der.extend_from_slice(&chunk);
        }
        Ok(der)
    }

    /// The key's DER SubjectPublicKeyInfo, read without a PIN (for CSRs).
    pub fn public_key_spki(&mut self, kind: KeyKind) -> Result<Vec<u8>, CardError> {
        self.select_ef(kind.fid())?;
        let (template, status) = self.send(&apdu::build(
            0,
            ins::GENERATE_KEY_PAIR,
            0x81,
            0x00,
            &[],
            Some(0),
        ))?;
        ok(status)?;
        keyfmt::spki_from_template(&template)
    }

    /// Signs a DER DigestInfo with a card key (its PIN must be verified).
    pub fn sign_digest_info(
        &mut self,
        kind: KeyKind,
        digest_info: &[u8],
    ) -> Result<Vec<u8>, CardError> {
        if digest_info.is_empty() || digest_info.len() > 0xFF {
            return Err(CardError::Malformed(
                "DigestInfo must be 1 to 255 bytes".into(),
            ));
        }
        self.select_ef(kind.fid())?;
        let (signature, status) = self.send(&apdu::build(
            0x80,
            ins::COMPUTE_SIGNATURE,
            0x00,
            0x80,
            digest_info,
            Some(0),
        ))?;
        ok(status)?;
        Ok(signature)
    }

    /// Writes one certificate EF (personalisation phase only): erases the
    /// EF, then writes it in chunks of at most 255 bytes. An empty `der`
    /// leaves the EF empty (e.g. no signing certificate under 15).
    pub fn write_certificate(&mut self, kind: CertKind, der: &[u8]) -> Result<(), CardError> {
        if der.len() > MAX_OFFSET + 1 {
            return Err(CardError::Malformed(
                "certificate longer than a card EF (32768 bytes)".into(),
            ));
        }
        self.select_ef(kind.fid())?;
        let (_, status) = self.send(&apdu::build(0, ins::ERASE_BINARY, 0, 0, &[], None))?;
        ok(status)?;
        for (i, chunk) in der.chunks(CHUNK).enumerate() {
            let [p1, p2] = offset_p1p2(i * CHUNK)?;
            let cmd = apdu::build(0, ins::UPDATE_BINARY, p1, p2, chunk, None);
            let (_, status) = self.send(&cmd)?;
            ok(status)?;
        }
        Ok(())
    }

    /// Writes the four certificates (personalisation phase only); an empty
    /// one leaves its EF empty.
    pub fn personalise(&mut self, certs: &Certificates<'_>) -> Result<(), CardError> {
        self.write_certificate(CertKind::Sign, certs.sign)?;
        self.write_certificate(CertKind::SignCa, certs.sign_ca)?;
        self.write_certificate(CertKind::Auth, certs.auth)?;
        self.write_certificate(CertKind::AuthCa, certs.auth_ca)
    }

    /// Ends personalisation (idempotent). `NotAllowed` if the auth
    /// certificate or its CA is missing, or a sign certificate lacks its CA.
    pub fn activate(&mut self) -> Result<(), CardError> {
        self.ensure_selected()?;
        let (_, status) = self.send(&apdu::build(0, ins::ACTIVATE, 0, 0, &[], None))?;
        ok(status)
    }

    /// Tries left per PIN and the serials of the certificates readable now;
    /// see [`CardStatus::sign_serial`] for the sign certificate.
    pub fn status(&mut self) -> Result<CardStatus, CardError> {
        Ok(CardStatus {
            token: self.token()?,
            auth_tries_left: self.tries_left(PinKind::Auth)?,
            sign_tries_left: self.tries_left(PinKind::Sign)?,
            sign_serial: self.serial_if_readable(CertKind::Sign)?,
            auth_serial: self.serial_if_readable(CertKind::Auth)?,
            sign_ca_serial: self.serial_if_readable(CertKind::SignCa)?,
            auth_ca_serial: self.serial_if_readable(CertKind::AuthCa)?,
        })
    }

    fn serial_if_readable(&mut self, kind: CertKind) -> Result<Option<Serial>, CardError> {
        match self.read_certificate(kind) {
            Ok(der) => certificate_serial(&der).map(Some),
            Err(CardError::SecurityStatusNotSatisfied | CardError::CertificateMissing) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn ensure_selected(&mut self) -> Result<(), CardError> {
        if self.selected {
            Ok(())
        } else {
            self.select_jpki()
        }
    }

    fn select_ef(&mut self, fid: u16) -> Result<(), CardError> {
        self.ensure_selected()?;
        let cmd = apdu::build(0, ins::SELECT, 0x02, 0x0C, &fid.to_be_bytes(), None);
        let (_, status) = self.send(&cmd)?;
        ok(status)
    }

    /// READ BINARY of `len` ≤ 256 bytes at `offset`; a short read (`62 82`) is fine.
    fn read_binary(&mut self, offset: usize, len: usize) -> Result<Vec<u8>, CardError> {
        let [p1, p2] = offset_p1p2(offset)?;
        let le = u8::try_from(len).unwrap_or(0);
        let (data, status) = self.send(&apdu::build(0, ins::READ_BINARY, p1, p2, &[], Some(le)))?;
        match status {
            sw::OK | sw::END_OF_FILE => Ok(data),
            other => Err(status_error(other)),
        }
    }

    /// Sends one command, following `61 XX` with GET RESPONSE; returns the
    /// whole data and the final status word.
    fn send(&mut self, command: &[u8]) -> Result<(Vec<u8>, u16), CardError> {
        let mut response = Zeroizing::new(self.transport.transmit(command)?);
        let mut data = Vec::new();
        for _ in 0..=MAX_GET_RESPONSE {
            let (part, status) = apdu::split_response(&response).ok_or_else(|| {
                CardError::Malformed("response shorter than a status word".into())
            })?;
            data.extend_from_slice(part);
            if status & 0xFF00 != sw::MORE_DATA {
                return Ok((data, status));
            }
            let [_, xx] = status.to_be_bytes();
            let get = apdu::build(0, ins::GET_RESPONSE, 0, 0, &[], Some(xx));
            response = Zeroizing::new(self.transport.transmit(&get)?);
        }
        Err(CardError::Malformed(
            "response never ends (61 XX loop)".into(),
        ))
    }
}

fn ok(status: u16) -> Result<(), CardError> {
    if status == sw::OK {
        Ok(())
    } else {
        Err(status_error(status))
    }
}

/// The error for a status word that is not success.
fn status_error(status: u16) -> CardError {
    match status {
        // 63 C0 is how some cards say "blocked" on the last wrong try.
        0x63C0 => CardError::Blocked,
        s if s & 0xFFF0 == sw::COUNTER => CardError::WrongPin {
            tries_left: u8::try_from(s & 0x0F).unwrap_or(0),
        },
        sw::BLOCKED => CardError::Blocked,
        sw::SECURITY => CardError::SecurityStatusNotSatisfied,
        sw::NOT_FOUND => CardError::FileNotFound,
        sw::NOT_ALLOWED | sw::CONDITIONS => CardError::NotAllowed,
        sw::MEMORY_FAILURE => CardError::Memory("card reported memory failure (65 81)".into()),
        other => CardError::UnexpectedStatus(other),
    }
}

fn offset_p1p2(offset: usize) -> Result<[u8; 2], CardError> {
    u16::try_from(offset)
        .ok()
        .filter(|o| usize::from(*o) <= MAX_OFFSET)
        .map(u16::to_be_bytes)
        .ok_or_else(|| CardError::Malformed("offset beyond 0x7FFF".into()))
}

/// Total length of the DER SEQUENCE starting `head` (tag, length, contents).
fn der_total_len(head: &[u8]) -> Result<usize, CardError> {
    let bad = || CardError::Malformed("certificate EF does not start with a DER SEQUENCE".into());
    match head {
        [0x30, l, ..] if *l < 0x80 => Ok(2 + usize::from(*l)),
        [0x30, 0x81, l, ..] if *l >= 0x80 => Ok(3 + usize::from(*l)),
        [0x30, 0x82, h, l, ..] if *h != 0 => Ok(4 + usize::from(u16::from_be_bytes([*h, *l]))),
        _ => Err(bad()),
    }
}

/// The serial number of a DER certificate.
fn certificate_serial(der: &[u8]) -> Result<Serial, CardError> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| CardError::Malformed(format!("certificate: {e}")))?;
    Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())
        .map_err(|e| CardError::Malformed(format!("certificate serial: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_length_forms() {
        assert_eq!(der_total_len(&[0x30, 0x03, 1, 2]).unwrap(), 5);
        assert_eq!(der_total_len(&[0x30, 0x81, 0x90, 0]).unwrap(), 0x93);
        assert_eq!(der_total_len(&[0x30, 0x82, 0x05, 0x10]).unwrap(), 0x514);
        // Non-minimal, indefinite, too long, wrong tag, too short.
        for bad in [
            &[0x30, 0x81, 0x10, 0][..],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x83, 1, 0],
            &[0x31, 0x03, 0, 0],
            &[0x30],
        ] {
            assert!(der_total_len(bad).is_err(), "{bad:02X?}");
        }
    }

    #[test]
    fn status_words_map_to_errors() {
        assert_eq!(status_error(0x63C2), CardError::WrongPin { tries_left: 2 });
        assert_eq!(status_error(0x63C0), CardError::Blocked);
        assert_eq!(status_error(0x6983), CardError::Blocked);
        assert_eq!(status_error(0x6982), CardError::SecurityStatusNotSatisfied);
        assert_eq!(status_error(0x6A82), CardError::FileNotFound);
        assert_eq!(status_error(0x6986), CardError::NotAllowed);
        assert!(matches!(status_error(0x6581), CardError::Memory(_)));
        assert_eq!(status_error(0x6D00), CardError::UnexpectedStatus(0x6D00));
    }

    use crate::testutil::{AUTH_PIN, SIGN_PW, card, cert, issued};
    use crate::{Phase, Variant};

    fn serial(n: u64) -> Option<Serial> {
        Some(Serial::from_be_bytes(&n.to_be_bytes()).unwrap())
    }

    #[test]
    fn client_personalises_and_reads_a_card_end_to_end() {
        let (mut client, _, [sign, sign_ca, auth, auth_ca]) = issued(Variant::Card);
        assert_eq!(client.transport_mut().card().phase(), Phase::Operational);
        assert_eq!(client.token().unwrap(), TokenKind::Card);
        assert_eq!(client.read_certificate(CertKind::Auth).unwrap(), auth);
        assert_eq!(client.read_certificate(CertKind::AuthCa).unwrap(), auth_ca);
        assert_eq!(client.read_certificate(CertKind::SignCa).unwrap(), sign_ca);
        assert_eq!(
            client.read_certificate(CertKind::Sign),
            Err(CardError::SecurityStatusNotSatisfied)
        );
        client.verify(PinKind::Sign, SIGN_PW).unwrap();
        assert_eq!(client.read_certificate(CertKind::Sign).unwrap(), sign);
        // Writing after activation is refused.
        assert_eq!(
            client.write_certificate(CertKind::Auth, &auth),
            Err(CardError::NotAllowed)
        );
    }

    #[test]
    fn status_reports_tries_and_the_serials_readable_now() {
        let (mut client, _, _) = issued(Variant::Card);
        client.verify(PinKind::Auth, "0000").unwrap_err();
        let status = client.status().unwrap();
        assert_eq!(
            status,
            CardStatus {
                token: TokenKind::Card,
                auth_tries_left: 2,
                sign_tries_left: 5,
                sign_serial: None,
                auth_serial: serial(0x1003),
                sign_ca_serial: serial(0x1002),
                auth_ca_serial: serial(0x1004),
            }
        );
        assert_eq!(status.auth_serial.unwrap().to_string(), "1003");
        client.verify(PinKind::Sign, SIGN_PW).unwrap();
        assert_eq!(client.status().unwrap().sign_serial, serial(0x1001));
    }

    #[test]
    fn phone_status_needs_the_auth_pin_for_the_auth_serial() {
        let (mut client, _, _) = issued(Variant::Phone);
        let status = client.status().unwrap();
        assert_eq!(status.token, TokenKind::Phone(SecureElement::GpSe));
        assert_eq!(status.auth_serial, None);
        client.verify(PinKind::Auth, AUTH_PIN).unwrap();
        assert_eq!(client.status().unwrap().auth_serial, serial(0x1003));
    }

    #[test]
    fn client_refuses_bad_pin_format_without_spending_a_try() {
        let (c, _) = card(Variant::Card);
        let mut client = JpkiClient::new(InProcess::new(c));
        for pin in ["123", "12345", "abcd", ""] {
            assert_eq!(
                client.verify(PinKind::Auth, pin),
                Err(CardError::BadPinFormat(PinKind::Auth))
            );
        }
        for pw in ["abc123", "ABC12", "ABCDEFGHIJKLMNOPQ", "ABC 123"] {
            assert_eq!(
                client.verify(PinKind::Sign, pw),
                Err(CardError::BadPinFormat(PinKind::Sign))
            );
        }
        assert_eq!(client.tries_left(PinKind::Auth).unwrap(), 3);
        assert_eq!(client.tries_left(PinKind::Sign).unwrap(), 5);
    }

    #[test]
    fn client_maps_wrong_and_blocked_pins() {
        let (c, _) = card(Variant::Card);
        let mut client = JpkiClient::new(InProcess::new(c));
        assert_eq!(
            client.verify(PinKind::Auth, "0000"),
            Err(CardError::WrongPin { tries_left: 2 })
        );
        assert_eq!(
            client.verify(PinKind::Auth, "0000"),
            Err(CardError::WrongPin { tries_left: 1 })
        );
        assert_eq!(
            client.verify(PinKind::Auth, "0000"),
            Err(CardError::Blocked)
        );
        assert_eq!(
            client.verify(PinKind::Auth, AUTH_PIN),
            Err(CardError::Blocked)
        );
        assert_eq!(client.tries_left(PinKind::Auth).unwrap(), 0);
    }

    #[test]
    fn client_changes_pins() {
        let (c, _) = card(Variant::Card);
        let mut client = JpkiClient::new(InProcess::new(c));
        assert_eq!(
            client.change_pin(PinKind::Auth, AUTH_PIN, "12"),
            Err(CardError::BadPinFormat(PinKind::Auth))
        );
        client.change_pin(PinKind::Auth, AUTH_PIN, "4321").unwrap();
        client
            .change_pin(PinKind::Sign, SIGN_PW, "NEWPASS99")
            .unwrap();
        client.select_jpki().unwrap();
        assert_eq!(
            client.verify(PinKind::Auth, AUTH_PIN),
            Err(CardError::WrongPin { tries_left: 2 })
        );
        client.verify(PinKind::Auth, "4321").unwrap();
        client.verify(PinKind::Sign, "NEWPASS99").unwrap();
        assert_eq!(
            client.change_pin(PinKind::Sign, "WRONG1", "NEWPASS98"),
            Err(CardError::WrongPin { tries_left: 4 })
        );
    }

    #[test]
    fn client_reads_public_keys_equal_to_the_chip_keys() {
        let (c, _) = card(Variant::Card);
        let expected = [c.key_spki(KeyKind::Auth), c.key_spki(KeyKind::Sign)];
        let mut client = JpkiClient::new(InProcess::new(c));
        let auth = client.public_key_spki(KeyKind::Auth).unwrap();
        let sign = client.public_key_spki(KeyKind::Sign).unwrap();
        assert_eq!([auth.clone(), sign.clone()], expected);
        assert_ne!(auth, sign);
    }

    #[test]
    fn client_reports_missing_certificates_and_personalises_long_ones() {
        let (c, _) = card(Variant::Card);
        let mut client = JpkiClient::new(InProcess::new(c));
        assert_eq!(
            client.read_certificate(CertKind::AuthCa),
            Err(CardError::CertificateMissing)
        );
        assert_eq!(client.activate(), Err(CardError::NotAllowed));
        // A 3000-byte "certificate" crosses many 255-byte chunks.
        let mut long = vec![0x30, 0x82, 0x0B, 0xB8];
        long.extend((0..3000u32).map(|i| (i % 251) as u8));
        client.write_certificate(CertKind::AuthCa, &long).unwrap();
        assert_eq!(client.read_certificate(CertKind::AuthCa).unwrap(), long);
        // Rewriting with a shorter one leaves no tail behind.
        let short = cert(7);
        client.write_certificate(CertKind::AuthCa, &short).unwrap();
        assert_eq!(client.read_certificate(CertKind::AuthCa).unwrap(), short);
        // A DER length pointing past the EF is caught.
        client
            .write_certificate(CertKind::Auth, &[0x30, 0x82, 0x01, 0x00, 1, 2])
            .unwrap();
        assert!(matches!(
            client.read_certificate(CertKind::Auth),
            Err(CardError::Malformed(_))
        ));
    }

    #[test]
    fn card_without_signing_certificate_can_be_issued() {
        let (c, _) = card(Variant::Card);
        let mut client = JpkiClient::new(InProcess::new(c));
        let (sign_ca, auth, auth_ca) = (cert(2), cert(3), cert(4));
        client
            .personalise(&Certificates {
                sign: &[],
                sign_ca: &sign_ca,
                auth: &auth,
                auth_ca: &auth_ca,
            })
            .unwrap();
        client.activate().unwrap();
        client.verify(PinKind::Sign, SIGN_PW).unwrap();
        assert_eq!(
            client.read_certificate(CertKind::Sign),
            Err(CardError::CertificateMissing)
        );
        let status = client.status().unwrap();
        assert_eq!((status.sign_serial, status.auth_serial), (None, serial(3)));
    }

    #[test]
    fn errors_never_show_pins() {
        let (c, _) = card(Variant::Card);
        let mut client = JpkiClient::new(InProcess::new(c));
        let e = client.verify(PinKind::Sign, "WRONGPW9").unwrap_err();
        let e2 = client.verify(PinKind::Sign, "wrongpw9").unwrap_err();
        for text in [
            e.to_string(),
            format!("{e:?}"),
            e2.to_string(),
            format!("{e2:?}"),
            format!("{client:?}"),
        ] {
            assert!(!text.to_uppercase().contains("WRONGPW9"), "{text}");
        }
    }

    #[test]
    fn offsets_stop_at_15_bits() {
        assert_eq!(offset_p1p2(0x7FFF).unwrap(), [0x7F, 0xFF]);
        assert!(offset_p1p2(0x8000).is_err());
    }
}
