//! The phone: its secure element, its wallet, and what the holder does
//! with them (provision from the card, sign, sync, retire, biometrics).

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use shomei_card::{
    CardError, CardSigner, CertKind, FaceRead, InProcess, JpkiClient, KeyKind, PinKind, TokenKind,
    Transport,
};
use shomei_core::{Signer as _, Timestamp};
use shomei_se_sim::{DEVICE_FILE, SimManufacturer, SimSecureElement};
use shomei_secure_element::{
    BiometricStatus, GateId, GateStatus, KeyHandle, KeyPolicy, SeError, SeSigner, SecureElement,
    SharedElement, Unlock, UnlockScope, WipeReason,
};

use crate::applet::{PhoneApplet, SeBackend, gate, lock};
use crate::http::{AuthorityHttp, HttpRequest, base64_field, call, text};
use crate::mdoc_key::SeKeyAgreement;
use crate::state::{
    FileWalletStore, Notification, Registration, WalletCertificates, WalletMdoc, WalletState,
    WalletStore, WipeCause, WipeRecord,
};
use crate::{AUTH_KEY_LABEL, MDOC_KEY_LABEL, PhoneError, SE_DIR, SIGN_KEY_LABEL, WALLET_FILE};

/// Most sync rounds in one [`Phone::sync`] (each returns up to 100 events).
const MAX_SYNC_ROUNDS: usize = 50;

/// A JPKI client over the phone's own applet.
pub type PhoneClient = JpkiClient<InProcess<PhoneApplet>>;

/// How the holder unlocks the phone's authentication key (or the mobile
/// ID's device key).
#[derive(Clone, Copy)]
pub enum AuthUnlock<'a> {
    /// The 4-digit authentication PIN.
    Pin(&'a str),
    /// A biometric sample (only once the PIN has confirmed the enrolment).
    Biometric(&'a [u8]),
    /// The holder's confirmation in the app, no secret: unlocks only the
    /// mobile ID's device key ([`KeyPolicy::MDOC_PRESENCE`]), never a JPKI key.
    Presence,
}

impl core::fmt::Debug for AuthUnlock<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Pin(_) => "AuthUnlock::Pin(<secret>)",
            Self::Biometric(_) => "AuthUnlock::Biometric(<sample>)",
            Self::Presence => "AuthUnlock::Presence",
        })
    }
}

/// What provisioning needs besides the card and the authority link.
#[derive(Clone, Copy)]
pub struct ProvisionRequest<'a> {
    /// The authority's base URL.
    pub authority: &'a str,
    /// The card's signing password (verified on the card, counted there).
    pub card_password: &'a str,
    /// The phone's new signing password (6–16 of A–Z0–9).
    pub sign_password: &'a str,
    /// The phone's new authentication PIN (4 digits).
    pub auth_pin: &'a str,
    /// Where the authority should e-mail use notifications, if anywhere.
    pub notify_email: Option<&'a str>,
}

impl core::fmt::Debug for ProvisionRequest<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProvisionRequest")
            .field("authority", &self.authority)
            .field("notify_email", &self.notify_email.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Which secret opens the card face when the holder brings the card's
/// photo to the phone's mobile ID ([`Phone::provision_with_card_face`]).
/// Never PIN A (the My Number): the My Number is not sent anywhere.
#[derive(Clone, Copy)]
pub enum CardFaceSecret<'a> {
    /// PIN B (照合番号B): birth date YYMMDD + expiry year YYYY + the
    /// 4-digit security code. Cannot read the My Number at all.
    PinB(&'a str),
    /// The text AP's 4-digit PIN. The card then opens its face with the My
    /// Number as PIN A (as real readers do); the phone reads it for that
    /// only, and neither keeps nor sends it.
    TextPin(&'a str),
}

impl core::fmt::Debug for CardFaceSecret<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::PinB(_) => "CardFaceSecret::PinB(<redacted>)",
            Self::TextPin(_) => "CardFaceSecret::TextPin(<redacted>)",
        })
    }
}

/// The card's face EF (券面AP), read with `secret`. Only the face leaves
/// this function: the text AP's attributes and (text PIN) the My Number
/// are dropped here.
fn read_card_face_ef<T: Transport>(
    card: &mut JpkiClient<T>,
    secret: CardFaceSecret<'_>,
) -> Result<Vec<u8>, PhoneError> {
    let with = match secret {
        CardFaceSecret::PinB(b) => FaceRead::PinB(b),
        CardFaceSecret::TextPin(p) => FaceRead::TextPin(p),
    };
    match card.read_card_face(with) {
        Ok(read) => Ok(read.face),
        Err(CardError::WrongPin { tries_left }) => Err(PhoneError::BadInput(format!(
            "the card face PIN is wrong ({tries_left} tries left on the card)"
        ))),
        Err(CardError::Blocked) => Err(PhoneError::BadInput(
            "the card face PIN is blocked: reset it at the municipal window".into(),
        )),
        Err(e @ CardError::BadFacePinFormat(_)) => Err(PhoneError::BadInput(e.to_string())),
        Err(e) => Err(PhoneError::Card(e)),
    }
}

/// What provisioning produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    /// The authority's id of this phone.
    pub device_id: String,
    /// The secure element's attested device id (hex).
    pub se_device_id: String,
    /// The holder's id.
    pub holder_id: String,
    /// Serial of the phone signing certificate (hex).
    pub sign_serial: String,
    /// Serial of the phone authentication certificate (hex).
    pub auth_serial: String,
    /// Earlier phones of the holder the authority superseded (they wipe at
    /// their next sync).
    pub superseded_devices: Vec<String>,
    /// The mobile ID the authority issued with the phone, if it did.
    pub mdoc: Option<WalletMdoc>,
}

/// What a sync found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// The phone's status at the authority (`active`, `superseded`, `lost`,
    /// `wipe_pending`, `wiped`).
    pub status: String,
    /// Whether this sync erased the phone's credentials (remote wipe).
    pub wiped_now: bool,
    /// Whether the authority has recorded the phone's wipe.
    pub wipe_confirmed: bool,
    /// The notifications this sync added to the inbox.
    pub new_notifications: Vec<Notification>,
    /// The phone's certificates at the authority: `(serial, status)`.
    pub certificates: Vec<(String, String)>,
    /// Whether this sync replaced the mobile ID with a fresh one.
    pub mdoc_refreshed: bool,
}

/// What retiring produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired {
    /// The authority's id of this phone.
    pub device_id: String,
    /// Certificates the authority revoked (hex serials).
    pub revoked: Vec<String>,
    /// Whether the authority has recorded the wipe (else the next sync does).
    pub wipe_confirmed: bool,
}

/// A phone: the secure element (keys, PIN gates, biometric) and the wallet.
pub struct Phone {
    element: SharedElement,
    store: Box<dyn WalletStore>,
    state: WalletState,
}

impl core::fmt::Debug for Phone {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Phone")
            .field("se_device_id", &self.state.se_device_id)
            .field("registration", &self.state.registration)
            .field("provisioned", &self.is_provisioned())
            .finish_non_exhaustive()
    }
}

impl Phone {
    /// Manufactures a new phone in `dir`: its secure element in `dir/se`
    /// (made by `manufacturer`, held exclusively by this process) and an
    /// empty wallet. Fails if `dir` already holds a phone.
    pub fn create(
        dir: &Path,
        manufacturer: &SimManufacturer,
        now: Timestamp,
    ) -> Result<Self, PhoneError> {
        let se_dir = dir.join(SE_DIR);
        if dir.join(WALLET_FILE).exists() || se_dir.join(DEVICE_FILE).exists() {
            return Err(PhoneError::BadInput(format!(
                "{} already holds a phone",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&se_dir)
            .map_err(|e| PhoneError::Storage(format!("cannot create {}: {e}", se_dir.display())))?;
        #[cfg(unix)]
        for d in [dir, se_dir.as_path()] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                PhoneError::Storage(format!("cannot restrict {}: {e}", d.display()))
            })?;
        }
        let se = manufacturer.manufacture_device(&se_dir, now)?;
        let mut phone = Self::from_parts(
            Box::new(se),
            Box::new(FileWalletStore::new(dir.join(WALLET_FILE))),
        )?;
        phone.commit()?;
        Ok(phone)
    }

    /// Whether `dir` holds a phone.
    pub fn exists(dir: &Path) -> bool {
        dir.join(SE_DIR).join(DEVICE_FILE).exists()
    }

    /// Opens the phone in `dir`, holding its secure element exclusively.
    ///
    /// If the element finds its sealed storage tampered with (a changed
    /// byte, an old copy, another device's file, a missing file), it wipes
    /// itself; the wallet then drops the certificates, records why, and this
    /// answers [`PhoneError::Tampered`] once. Opening again gives the empty
    /// phone, ready to be provisioned from the card again.
    pub fn open(dir: &Path) -> Result<Self, PhoneError> {
        let se_dir = dir.join(SE_DIR);
        if !Self::exists(dir) {
            return Err(PhoneError::BadInput(format!(
                "no phone at {}",
                dir.display()
            )));
        }
        let (se, tampered) = match SimSecureElement::open_dir(&se_dir) {
            Ok(se) => (se, None),
            Err(SeError::Tampered(kind)) => (SimSecureElement::open_dir(&se_dir)?, Some(kind)),
            Err(e) => return Err(e.into()),
        };
        // A missing wallet (interrupted creation) is an empty one.
        let store = FileWalletStore::new(dir.join(WALLET_FILE));
        let phone = Self::from_parts(Box::new(se), Box::new(store))?;
        match tampered {
            Some(kind) => Err(PhoneError::Tampered(kind)),
            None => Ok(phone),
        }
    }

    /// A phone from an element and a wallet store (tests inject in-memory
    /// ones). The wallet is sealed by the element: one it cannot open
    /// (changed, another phone's, sealed before a wipe after which a wallet
    /// was stored) is [`PhoneError::WalletUnsealable`] and is left as it is;
    /// so is a plain one once the element has stored a sealed wallet. A
    /// plain one from before sealing, or one sealed before a wipe whose
    /// wallet update was interrupted (the element's retiring key), is read
    /// and sealed again at once. The wallet must
    /// belong to the element; certificates without their keys are
    /// reconciled with the element's last wipe (a wipe whose wallet update
    /// was interrupted) and refused otherwise, as are certificates whose key
    /// is not the element's.
    pub fn from_parts(
        element: Box<dyn SecureElement>,
        store: Box<dyn WalletStore>,
    ) -> Result<Self, PhoneError> {
        let se_device_id = element.device_id().to_hex();
        // A plain wallet is read only while the element has stored no sealed
        // one (`unseal` checks), so `has_stored_sealed_data` covers it below.
        let (state, loaded) = match store.load()? {
            Some(bytes) => (WalletState::unseal(element.as_ref(), &bytes)?.0, true),
            None => (WalletState::new(se_device_id.clone()), false),
        };
        if state.se_device_id != se_device_id {
            return Err(PhoneError::WalletMismatch(
                "the wallet belongs to another secure element".into(),
            ));
        }
        let mut phone = Self {
            element: Arc::new(Mutex::new(element)),
            store,
            state,
        };
        phone.reconcile()?;
        // Sealed (again) now unless reconciling did: a plain wallet, one
        // sealed before the element recorded stored data, or one read with
        // the key a requested wipe is retiring.
        let pending = {
            let se = lock(&phone.element);
            !se.has_stored_sealed_data() || se.retiring_seal_key_open()
        };
        if loaded && pending {
            phone.commit()?;
        }
        Ok(phone)
    }

    /// Checks the wallet's certificates against the element's keys.
    fn reconcile(&mut self) -> Result<(), PhoneError> {
        if self.state.certificates.is_empty() {
            return Ok(());
        }
        let (keys, last_wipe) = {
            let se = lock(&self.element);
            let spki = |label| se.find_key(label).and_then(|k| se.public_key(&k)).ok();
            ((spki(SIGN_KEY_LABEL), spki(AUTH_KEY_LABEL)), se.last_wipe())
        };
        match keys {
            (Some(sign), Some(auth)) => {
                let certs = &self.state.certificates;
                for (what, cert, spki) in [
                    ("signing", &certs.sign, &sign),
                    ("authentication", &certs.auth, &auth),
                ] {
                    let cert_spki = shomei_pki::csr::certificate_spki(cert).map_err(|_| {
                        PhoneError::WalletMismatch(format!("the {what} certificate is unreadable"))
                    })?;
                    if cert_spki != *spki {
                        return Err(PhoneError::WalletMismatch(format!(
                            "the {what} certificate is not for the secure element's key"
                        )));
                    }
                }
                Ok(())
            }
            // The element was wiped but the wallet did not hear of it.
            _ => match last_wipe {
                Some(WipeReason::Tampered(kind)) => self.record_wipe(WipeCause::Tampered(kind)),
                Some(_) => self.record_wipe(WipeCause::Authority),
                None => Err(PhoneError::WalletMismatch(
                    "the secure element holds no keys for the wallet's certificates".into(),
                )),
            },
        }
    }

    // ---- reading -----------------------------------------------------------

    /// The wallet.
    pub fn state(&self) -> &WalletState {
        &self.state
    }

    /// Whether the phone holds certificates.
    pub fn is_provisioned(&self) -> bool {
        !self.state.certificates.is_empty()
    }

    /// The secure element (shared; lock it briefly).
    pub fn element(&self) -> &SharedElement {
        &self.element
    }

    /// A gate's state (tries left, blocked, not set).
    pub fn gate_status(&self, gate: GateId) -> GateStatus {
        lock(&self.element).gate_status(gate)
    }

    /// The biometric enrolment's state.
    pub fn biometric_status(&self) -> BiometricStatus {
        lock(&self.element).biometric_status()
    }

    /// Why the element was last wiped, if it was.
    pub fn last_se_wipe(&self) -> Option<WipeReason> {
        lock(&self.element).last_wipe()
    }

    /// The phone's JPKI applet (token `JPKIAPGPSETOKEN`), powered up.
    pub fn applet(&self) -> Result<PhoneApplet, PhoneError> {
        Ok(SeBackend::new(self.element.clone(), self.state.certificates.clone())?.into_applet())
    }

    /// A [`JpkiClient`] on the phone's applet: the same client that reads a card.
    pub fn client(&self) -> Result<PhoneClient, PhoneError> {
        Ok(JpkiClient::new(InProcess::new(self.applet()?)))
    }

    // ---- biometrics --------------------------------------------------------

    /// Enrols a biometric (the simulated template). It unlocks the
    /// authentication key only after the auth PIN has been entered once.
    pub fn enrol_biometric(&mut self, template: &[u8]) -> Result<(), PhoneError> {
        Ok(lock(&self.element).enrol_biometric(template)?)
    }

    /// Replaces the enrolment: biometric unlock stops until the auth PIN is
    /// entered again.
    pub fn change_biometric(&mut self, template: &[u8]) -> Result<(), PhoneError> {
        Ok(lock(&self.element).change_biometric_enrolment(template)?)
    }

    /// Removes the enrolment.
    pub fn remove_biometric(&mut self) -> Result<(), PhoneError> {
        Ok(lock(&self.element).remove_biometric()?)
    }

    /// Unlocks the authentication key for one operation: by the auth PIN
    /// (counted by the element; success also confirms a biometric
    /// enrolment) or by a biometric sample. The signing key is never
    /// unlocked by a biometric, and no JPKI key by presence
    /// ([`AuthUnlock::Presence`] is [`PhoneError::BadInput`] here).
    pub fn unlock_auth(&mut self, how: AuthUnlock<'_>) -> Result<Unlock, PhoneError> {
        let mut se = lock(&self.element);
        Ok(match how {
            AuthUnlock::Pin(pin) => se.verify_pin(GateId::AuthPin, pin, UnlockScope::Once)?,
            AuthUnlock::Biometric(sample) => {
                se.verify_biometric(GateId::AuthPin, sample, UnlockScope::Once)?
            }
            AuthUnlock::Presence => {
                return Err(PhoneError::BadInput(
                    "the authentication key needs the PIN or a biometric".into(),
                ));
            }
        })
    }

    /// Unlocks the mobile ID's device key `key` for one operation: like
    /// [`Phone::unlock_auth`], or by presence if the key's policy admits it
    /// (a key made before presence existed answers [`SeError::WrongGate`]
    /// at once, before anything is shown to a reader).
    fn unlock_mdoc(&mut self, key: &KeyHandle, how: AuthUnlock<'_>) -> Result<Unlock, PhoneError> {
        match how {
            AuthUnlock::Presence => {
                let mut se = lock(&self.element);
                if !se.key_info(key)?.policy.presence_allowed() {
                    return Err(SeError::WrongGate {
                        needed: GateId::AuthPin,
                    }
                    .into());
                }
                Ok(se.confirm_presence(UnlockScope::Once)?)
            }
            other => self.unlock_auth(other),
        }
    }

    /// The authentication key as a [`shomei_core::Signer`], for one signature.
    pub fn auth_signer(&mut self, how: AuthUnlock<'_>) -> Result<SeSigner, PhoneError> {
        self.require_provisioned()?;
        let key = self.key(AUTH_KEY_LABEL)?;
        let unlock = self.unlock_auth(how)?;
        Ok(SeSigner::new(self.element.clone(), key, unlock)?)
    }

    // ---- mobile ID ---------------------------------------------------------

    /// The mobile ID (IssuerSigned and what the wallet knows of it), if any.
    pub fn mdoc(&self) -> Option<&WalletMdoc> {
        self.state.mdoc.as_ref()
    }

    /// The mobile ID's device key as a [`shomei_core::Signer`] (ECDSA P-256,
    /// DER signatures), for one device authentication, unlocked by the auth
    /// PIN, a biometric, or the holder's presence confirmation
    /// ([`AuthUnlock::Presence`], keys made under
    /// [`KeyPolicy::MDOC_PRESENCE`] only).
    pub fn mdoc_signer(&mut self, how: AuthUnlock<'_>) -> Result<SeSigner, PhoneError> {
        let label = match &self.state.mdoc {
            Some(m) => m.key_label.clone(),
            None => {
                return Err(PhoneError::NotProvisioned {
                    wiped: self.state.wipe.map(|w| w.cause),
                });
            }
        };
        let key = self.key(&label)?;
        let unlock = self.unlock_mdoc(&key, how)?;
        Ok(SeSigner::new(self.element.clone(), key, unlock)?)
    }

    /// The mobile ID's device key for key agreement (ECDH P-256 inside the
    /// element), for one device authentication by MAC (ISO/IEC 18013-5
    /// §9.1.3.5); unlocked like [`Phone::mdoc_signer`] (auth PIN,
    /// biometric or presence; the same gate and retry counter).
    pub fn mdoc_agreement(&mut self, how: AuthUnlock<'_>) -> Result<SeKeyAgreement, PhoneError> {
        let label = match &self.state.mdoc {
            Some(m) => m.key_label.clone(),
            None => {
                return Err(PhoneError::NotProvisioned {
                    wiped: self.state.wipe.map(|w| w.cause),
                });
            }
        };
        let key = self.key(&label)?;
        let unlock = self.unlock_mdoc(&key, how)?;
        SeKeyAgreement::new(self.element.clone(), key, unlock)
    }

    /// [`Phone::sync`], then, if the mobile ID is past half its validity at
    /// `now`, a fresh one (`POST /v1/devices/{id}/mdoc`). A refusal because
    /// the phone or its certificates ended drops the mobile ID; other
    /// refusals keep the current one (it stays valid until its validUntil).
    ///
    /// A phone that holds the mobile ID's key but no mobile ID (the
    /// provisioning answer had none, or one it could not use) asks for it
    /// the same way while it is active and its certificates are live; if
    /// the authority has none either, the phone stays without one and the
    /// sync still succeeds.
    pub fn sync_at(
        &mut self,
        http: &mut dyn AuthorityHttp,
        now: Timestamp,
    ) -> Result<SyncReport, PhoneError> {
        let mut report = self.sync(http)?;
        let due = self
            .state
            .mdoc
            .as_ref()
            .is_some_and(|m| m.refresh_due(now.unix_timestamp()));
        let missing = self.mdoc_missing(&report);
        let reg = self.state.registration.clone();
        let (Some(reg), true) = (reg, due || missing) else {
            return Ok(report);
        };
        let Some(token) = reg.device_token.clone() else {
            return Ok(report);
        };
        let spki = {
            let se = lock(&self.element);
            let key = se.find_key(MDOC_KEY_LABEL)?;
            se.public_key(&key)?
        };
        let req = HttpRequest::post(format!("/v1/devices/{}/mdoc", reg.device_id), json!({}))
            .bearer(&token);
        if missing {
            // Nothing to lose: any failure leaves the phone as it was.
            if let Ok(m) = call(http, &reg.authority, &req).and_then(|v| wallet_mdoc(&v, &spki)) {
                self.state.mdoc = Some(m);
                report.mdoc_refreshed = true;
                self.commit()?;
            }
            return Ok(report);
        }
        match call(http, &reg.authority, &req) {
            Ok(v) => {
                self.state.mdoc = Some(wallet_mdoc(&v, &spki)?);
                report.mdoc_refreshed = true;
            }
            Err(PhoneError::Refused { code, .. })
                if code == "device_not_active" || code == "device_suspended" =>
            {
                if code == "device_not_active" {
                    self.state.mdoc = None;
                }
            }
            Err(e) => return Err(e),
        }
        self.commit()?;
        Ok(report)
    }

    /// Whether the phone should have a mobile ID but has none: provisioned,
    /// holding the mobile ID's key, active at the authority with live
    /// certificates (as `report`, a sync just now, says).
    fn mdoc_missing(&self, report: &SyncReport) -> bool {
        self.state.mdoc.is_none()
            && self.is_provisioned()
            && report.status == "active"
            && !report
                .certificates
                .iter()
                .any(|(_, s)| matches!(s.as_str(), "revoked" | "suspended" | "expired"))
            && lock(&self.element).find_key(MDOC_KEY_LABEL).is_ok()
    }

    // ---- signing -----------------------------------------------------------

    /// Signs `content` with the phone signing key (detached CMS SignedData,
    /// DER), through the phone's applet exactly as a card is driven: VERIFY
    /// of the signing password, READ BINARY of `0001`, `80 2A 00 80`.
    pub fn sign_detached(
        &mut self,
        sign_password: &str,
        content: &[u8],
        now: Timestamp,
    ) -> Result<Vec<u8>, PhoneError> {
        self.require_provisioned()?;
        let mut client = self.client()?;
        client
            .verify(PinKind::Sign, sign_password)
            .map_err(|e| applet_error(PinKind::Sign, e))?;
        let cert = client
            .read_certificate(CertKind::Sign)
            .map_err(|e| applet_error(PinKind::Sign, e))?;
        let signer =
            CardSigner::new(client, KeyKind::Sign).map_err(|e| applet_error(PinKind::Sign, e))?;
        Ok(shomei_pki::cms::sign_detached(
            content,
            &cert,
            &[],
            &signer,
            now,
        )?)
    }

    /// Signs `content` with the phone authentication key (detached CMS),
    /// unlocked by the auth PIN (through the applet, which also needs it to
    /// read the certificate) or by a biometric (through the element).
    pub fn sign_detached_auth(
        &mut self,
        how: AuthUnlock<'_>,
        content: &[u8],
        now: Timestamp,
    ) -> Result<Vec<u8>, PhoneError> {
        self.require_provisioned()?;
        match how {
            AuthUnlock::Pin(pin) => {
                let mut client = self.client()?;
                client
                    .verify(PinKind::Auth, pin)
                    .map_err(|e| applet_error(PinKind::Auth, e))?;
                let cert = client
                    .read_certificate(CertKind::Auth)
                    .map_err(|e| applet_error(PinKind::Auth, e))?;
                let signer = CardSigner::new(client, KeyKind::Auth)
                    .map_err(|e| applet_error(PinKind::Auth, e))?;
                Ok(shomei_pki::cms::sign_detached(
                    content,
                    &cert,
                    &[],
                    &signer,
                    now,
                )?)
            }
            AuthUnlock::Biometric(_) | AuthUnlock::Presence => {
                let signer = self.auth_signer(how)?;
                let cert = self.state.certificates.auth.clone();
                Ok(shomei_pki::cms::sign_detached(
                    content,
                    &cert,
                    &[],
                    &signer,
                    now,
                )?)
            }
        }
    }

    // ---- login challenges --------------------------------------------------

    /// Answers a login challenge with the authentication key: returns the
    /// authentication certificate (DER) and the RSA SHA-256 signature over
    /// `challenge`. Unlocked by the PIN (through the applet, as a card is
    /// driven: VERIFY, READ BINARY, `80 2A 00 80`) or by a biometric.
    pub fn answer_challenge(
        &mut self,
        how: AuthUnlock<'_>,
        challenge: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), PhoneError> {
        self.require_provisioned()?;
        match how {
            AuthUnlock::Pin(pin) => {
                let mut client = self.client()?;
                client
                    .verify(PinKind::Auth, pin)
                    .map_err(|e| applet_error(PinKind::Auth, e))?;
                let cert = client
                    .read_certificate(CertKind::Auth)
                    .map_err(|e| applet_error(PinKind::Auth, e))?;
                let signer = CardSigner::new(client, KeyKind::Auth)
                    .map_err(|e| applet_error(PinKind::Auth, e))?;
                let sig = shomei_core::Signer::sign(&signer, challenge)
                    .map_err(|e| PhoneError::Pki(e.to_string()))?;
                Ok((cert, sig))
            }
            AuthUnlock::Biometric(_) | AuthUnlock::Presence => {
                let signer = self.auth_signer(how)?;
                let sig = shomei_core::Signer::sign(&signer, challenge)
                    .map_err(|e| PhoneError::Pki(e.to_string()))?;
                Ok((self.state.certificates.auth.clone(), sig))
            }
        }
    }

    /// Signs a login challenge with the signing key (consent to release
    /// the basic four; needs the signing password, never a biometric):
    /// the signing certificate (DER) and the signature.
    pub fn consent_challenge(
        &mut self,
        sign_password: &str,
        challenge: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), PhoneError> {
        self.require_provisioned()?;
        let mut client = self.client()?;
        client
            .verify(PinKind::Sign, sign_password)
            .map_err(|e| applet_error(PinKind::Sign, e))?;
        let cert = client
            .read_certificate(CertKind::Sign)
            .map_err(|e| applet_error(PinKind::Sign, e))?;
        let signer =
            CardSigner::new(client, KeyKind::Sign).map_err(|e| applet_error(PinKind::Sign, e))?;
        let sig = shomei_core::Signer::sign(&signer, challenge)
            .map_err(|e| PhoneError::Pki(e.to_string()))?;
        Ok((cert, sig))
    }

    // ---- provisioning ------------------------------------------------------

    /// Puts the card holder's certificates on this phone, in one step:
    ///
    /// 1. reads the card through APDUs (token, CA certificates) and VERIFYs
    ///    its signing password — counted on the card; a wrong one answers
    ///    [`PhoneError::WrongCardPassword`] and nothing else changes;
    /// 2. asks the authority for a single-use challenge;
    /// 3. sets the phone's own signing password and auth PIN in the secure
    ///    element (its format rules apply) and creates the two RSA-2048 keys
    ///    inside it under [`KeyPolicy::PHONE_SIGN`] / [`KeyPolicy::PHONE_AUTH`],
    ///    attested with the challenge;
    /// 4. builds both CSRs with the element's keys, and has the **card's
    ///    signing key** sign [`shomei_ca::phone_provisioning_message`]
    ///    (challenge, attested device id, both public keys);
    /// 5. `POST /v1/phones`, then stores the certificates and device token.
    ///
    /// If anything fails after step 3 the element is wiped again, so a
    /// failed provisioning leaves no keys or PINs behind. Once the authority
    /// has answered `201` it has issued live certificates, so a failure
    /// after that (an answer whose certificates are not for the element's
    /// keys, the wallet not written) is also reported to it, best effort,
    /// with the new device token (`POST /v1/devices/{id}/wiped`, cause
    /// `provisioning_failed`): it revokes them. A missing or unusable
    /// mobile ID in that answer is no failure: the phone keeps its
    /// certificates without one, and [`Phone::sync_at`] fetches it.
    pub fn provision<T: Transport>(
        &mut self,
        card: &mut JpkiClient<T>,
        http: &mut dyn AuthorityHttp,
        req: &ProvisionRequest<'_>,
    ) -> Result<Provisioned, PhoneError> {
        self.provision_with_card_face(card, http, req, None)
    }

    /// [`Phone::provision`], and with `face` the holder brings the card's
    /// photo to the mobile ID: before anything else the phone reads the
    /// card face (券面AP) over the same transport with that secret (a wrong
    /// one is counted on the card and answers [`PhoneError::BadInput`]) and
    /// sends the face EF as `card_face`; the authority checks that it is
    /// its own and this holder's, and the mobile ID then carries the photo
    /// as `portrait`. The My Number is never sent.
    pub fn provision_with_card_face<T: Transport>(
        &mut self,
        card: &mut JpkiClient<T>,
        http: &mut dyn AuthorityHttp,
        req: &ProvisionRequest<'_>,
        face: Option<CardFaceSecret<'_>>,
    ) -> Result<Provisioned, PhoneError> {
        if self.is_provisioned() {
            return Err(PhoneError::AlreadyProvisioned);
        }
        GateId::SignPassword.check_format(req.sign_password)?;
        GateId::AuthPin.check_format(req.auth_pin)?;
        let base = req.authority.trim_end_matches('/');
        if base.is_empty() {
            return Err(PhoneError::BadInput("the authority URL is empty".into()));
        }

        // 0. The card face, first: selecting the card's other APs clears
        //    the JPKI AP's verified PINs, so it cannot come between the
        //    signing password and the card's signature.
        let card_face = face.map(|f| read_card_face_ef(card, f)).transpose()?;

        // 1. The card, through APDUs only.
        card.select_jpki().map_err(PhoneError::Card)?;
        if card.token().map_err(PhoneError::Card)? != TokenKind::Card {
            return Err(PhoneError::NotACard);
        }
        let sign_ca = card
            .read_certificate(CertKind::SignCa)
            .map_err(PhoneError::Card)?;
        let auth_ca = card
            .read_certificate(CertKind::AuthCa)
            .map_err(PhoneError::Card)?;
        match card.verify(PinKind::Sign, req.card_password) {
            Ok(()) => {}
            Err(CardError::WrongPin { tries_left }) => {
                return Err(PhoneError::WrongCardPassword { tries_left });
            }
            Err(CardError::Blocked) => return Err(PhoneError::CardPasswordBlocked),
            Err(e) => return Err(PhoneError::Card(e)),
        }
        let card_sign_cert = card
            .read_certificate(CertKind::Sign)
            .map_err(PhoneError::Card)?;

        // 2. The challenge.
        let v = call(http, base, &HttpRequest::post("/v1/challenges", json!({})))?;
        let challenge = base64_field(&v, "challenge")?;

        // 3–5 change the element: undo on failure.
        self.clear_leftovers()?;
        let kept = self.state.clone();
        let outcome = self
            .provision_keys(
                card,
                http,
                base,
                req,
                &challenge,
                &card_sign_cert,
                card_face.as_deref(),
            )
            .and_then(|(provisioned, registration, sign, auth)| {
                let issued = Issued::of(&registration);
                self.state.registration = Some(registration);
                self.state.certificates = WalletCertificates {
                    sign,
                    sign_ca,
                    auth,
                    auth_ca,
                };
                self.state.cursor = 0;
                self.state.inbox.clear();
                self.state.authority_status = Some("active".into());
                self.state.certificate_status = vec![
                    (provisioned.sign_serial.clone(), "active".into()),
                    (provisioned.auth_serial.clone(), "active".into()),
                ];
                self.state.wipe = None;
                self.state.mdoc = provisioned.mdoc.clone();
                match self.commit() {
                    Ok(()) => Ok(provisioned),
                    Err(error) => Err(Failed { error, issued }),
                }
            });
        match outcome {
            Ok(provisioned) => Ok(provisioned),
            Err(Failed { error, issued }) => {
                // Keys and PINs of a failed provisioning must not linger.
                self.state = kept;
                let _ = lock(&self.element).wipe();
                // The stored wallet is under the key the wipe retired (it
                // only unseals until a wallet is stored): seal it under the
                // new one (best effort; the error to report is `error`).
                let _ = self.commit();
                // Once the authority has answered 201 it has issued live
                // certificates (and superseded the previous phone): tell it
                // their keys are gone, so it revokes them. Best effort: if
                // this does not arrive, the next provisioning from the card
                // supersedes them anyway.
                if let Some(issued) = issued {
                    let req = HttpRequest::post(
                        format!("/v1/devices/{}/wiped", issued.device_id),
                        json!({"cause": "provisioning_failed"}),
                    )
                    .bearer(&issued.token);
                    let _ = call(http, base, &req);
                }
                Err(error)
            }
        }
    }

    /// An element left with PINs or keys by an interrupted provisioning (the
    /// wallet has no certificates for them) is wiped first.
    fn clear_leftovers(&mut self) -> Result<(), PhoneError> {
        let dirty = {
            let se = lock(&self.element);
            !se.keys().is_empty()
                || GateId::ALL
                    .iter()
                    .any(|g| se.gate_status(*g) != GateStatus::NotSet)
        };
        if dirty {
            lock(&self.element).wipe()?;
            // The wallet is under the key the wipe retired: seal it anew.
            self.commit()?;
        }
        Ok(())
    }

    /// Steps 3–5. A failure after the authority's 201 carries what it
    /// issued ([`Failed::issued`]), so the caller can have it revoked.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn provision_keys<T: Transport>(
        &mut self,
        card: &mut JpkiClient<T>,
        http: &mut dyn AuthorityHttp,
        base: &str,
        req: &ProvisionRequest<'_>,
        challenge: &[u8],
        card_sign_cert: &[u8],
        card_face: Option<&[u8]>,
    ) -> Result<(Provisioned, Registration, Vec<u8>, Vec<u8>), Failed> {
        // (The mobile ID travels in `Provisioned::mdoc`.)
        let se_device_id = self.state.se_device_id.clone();
        let (
            sign_key,
            auth_key,
            sign_chain,
            auth_chain,
            sign_unlock,
            auth_unlock,
            mdoc_chain,
            mdoc_spki,
        ) = {
            let mut se = lock(&self.element);
            se.set_pin(GateId::SignPassword, req.sign_password)?;
            se.set_pin(GateId::AuthPin, req.auth_pin)?;
            let sign_key = se.create_key(
                SIGN_KEY_LABEL,
                shomei_secure_element::KeyKind::Rsa2048,
                KeyPolicy::PHONE_SIGN,
                challenge,
            )?;
            let auth_key = se.create_key(
                AUTH_KEY_LABEL,
                shomei_secure_element::KeyKind::Rsa2048,
                KeyPolicy::PHONE_AUTH,
                challenge,
            )?;
            let sign_chain = se.attest(&sign_key)?;
            let auth_chain = se.attest(&auth_key)?;
            // The mobile ID's device key: P-256 on the auth PIN gate; the
            // PIN, a confirmed biometric or the holder's presence
            // confirmation in the app (a consent screen, as real wallets)
            // unlocks it, so presenting the mobile ID is always the
            // holder's act. Never exported; no JPKI key admits presence.
            let mdoc_key = se.create_key(
                MDOC_KEY_LABEL,
                shomei_secure_element::KeyKind::EcP256,
                KeyPolicy::MDOC_PRESENCE,
                challenge,
            )?;
            let mdoc_chain = se.attest(&mdoc_key)?;
            let mdoc_spki = se.public_key(&mdoc_key)?;
            // Each CSR is signed by its key, which the new PINs unlock (a
            // success resets the counter it spends).
            let sign_unlock =
                se.verify_pin(GateId::SignPassword, req.sign_password, UnlockScope::Once)?;
            let auth_unlock = se.verify_pin(GateId::AuthPin, req.auth_pin, UnlockScope::Once)?;
            (
                sign_key,
                auth_key,
                sign_chain,
                auth_chain,
                sign_unlock,
                auth_unlock,
                mdoc_chain,
                mdoc_spki,
            )
        };
        let sign_signer = SeSigner::new(self.element.clone(), sign_key, sign_unlock)?;
        let sign_csr = shomei_pki::csr::build_csr(&sign_signer, "shomei phone signing key")?;
        let auth_signer = SeSigner::new(self.element.clone(), auth_key, auth_unlock)?;
        let auth_csr = shomei_pki::csr::build_csr(&auth_signer, "shomei phone authentication key")?;
        let sign_spki = sign_signer.public_key_spki().to_vec();
        let auth_spki = auth_signer.public_key_spki().to_vec();

        // The card's signing key vouches for the new phone (its password was
        // verified above): SHA-256 DigestInfo, `80 2A 00 80`, as CardSigner does.
        let message =
            shomei_ca::phone_provisioning_message(challenge, &se_device_id, &sign_spki, &auth_spki);
        let digest_info = shomei_pki::keys::sha256_digest_info(&message);
        let card_signature = card
            .sign_digest_info(KeyKind::Sign, &digest_info)
            .map_err(PhoneError::Card)?;

        let b64 = |b: &[u8]| B64.encode(b);
        let chain = |c: &shomei_secure_element::AttestationChain| -> Vec<String> {
            c.certs().iter().map(|d| b64(d)).collect()
        };
        let mut body = json!({
            "device": {"id": se_device_id, "kind": self.state.kind},
            "card_sign_cert": b64(card_sign_cert),
            "challenge": b64(challenge),
            "card_signature": b64(&card_signature),
            "sign_csr": b64(&sign_csr),
            "auth_csr": b64(&auth_csr),
            "sign_attestation": chain(&sign_chain),
            "auth_attestation": chain(&auth_chain),
            "mdoc_device_key": b64(&mdoc_spki),
            "mdoc_attestation": chain(&mdoc_chain),
        });
        if let Some(email) = req.notify_email {
            body["notify_email"] = json!(email);
        }
        if let Some(face) = card_face {
            body["card_face"] = json!(b64(face));
        }
        let v = call(http, base, &HttpRequest::post("/v1/phones", body))?;
        // 201: the authority has issued. From here on a failure leaves live
        // certificates at the authority, so it carries the means to end them.
        let issued = match (text(&v, "device_id"), text(&v, "device_token")) {
            (Ok(device_id), Ok(token)) => Issued { device_id, token },
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        let after = |error: PhoneError| Failed {
            error,
            issued: Some(issued.clone()),
        };
        let sign_cert = base64_field(&v, "sign_cert").map_err(after)?;
        let auth_cert = base64_field(&v, "auth_cert").map_err(after)?;
        for (what, cert, spki) in [
            ("signing", &sign_cert, &sign_spki),
            ("authentication", &auth_cert, &auth_spki),
        ] {
            if shomei_pki::csr::certificate_spki(cert).map_err(|e| after(e.into()))? != *spki {
                return Err(after(PhoneError::Protocol(format!(
                    "the {what} certificate is not for the phone's key"
                ))));
            }
        }
        let provisioned = Provisioned {
            device_id: issued.device_id.clone(),
            se_device_id,
            holder_id: text(&v, "holder_id").unwrap_or_default(),
            sign_serial: serial_hex(&sign_cert).map_err(after)?,
            auth_serial: serial_hex(&auth_cert).map_err(after)?,
            superseded_devices: v["superseded_devices"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            // The mobile ID is an extra: one missing or unusable (not
            // bound to the element's key, unreadable) does not undo the
            // certificates; the phone has none yet and `sync_at` fetches it.
            mdoc: match &v["mdoc"] {
                Value::Null => None,
                m => wallet_mdoc(m, &mdoc_spki).ok(),
            },
        };
        let registration = Registration {
            authority: base.to_owned(),
            device_id: provisioned.device_id.clone(),
            holder_id: provisioned.holder_id.clone(),
            device_token: Some(issued.token.clone()),
            sign_serial: provisioned.sign_serial.clone(),
            auth_serial: provisioned.auth_serial.clone(),
        };
        Ok((provisioned, registration, sign_cert, auth_cert))
    }

    // ---- sync, wipe, retire ------------------------------------------------

    /// Asks the authority what happened: a queued wipe erases the phone's
    /// keys, PINs and certificates (and is confirmed with `POST
    /// /v1/devices/{id}/wiped`); events about the holder go to the inbox.
    pub fn sync(&mut self, http: &mut dyn AuthorityHttp) -> Result<SyncReport, PhoneError> {
        let Some(reg) = self.state.registration.clone() else {
            return Err(PhoneError::NotProvisioned {
                wiped: self.state.wipe.map(|w| w.cause),
            });
        };
        let Some(token) = reg.device_token.clone() else {
            // Wiped and confirmed: the authority has nothing more for us.
            return Ok(SyncReport {
                status: self
                    .state
                    .authority_status
                    .clone()
                    .unwrap_or_else(|| "wiped".into()),
                wiped_now: false,
                wipe_confirmed: true,
                new_notifications: Vec::new(),
                certificates: self.state.certificate_status.clone(),
                mdoc_refreshed: false,
            });
        };
        let mut report = SyncReport {
            status: String::new(),
            wiped_now: false,
            wipe_confirmed: self.state.wipe.is_some_and(|w| w.confirmed),
            new_notifications: Vec::new(),
            certificates: Vec::new(),
            mdoc_refreshed: false,
        };
        for _ in 0..MAX_SYNC_ROUNDS {
            let path = format!(
                "/v1/devices/{}/sync?after={}",
                reg.device_id, self.state.cursor
            );
            let v = call(http, &reg.authority, &HttpRequest::get(path).bearer(&token))?;
            report.status = text(&v, "status")?;
            report.certificates = v["certificates"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| {
                            Some((
                                c["serial"].as_str()?.to_owned(),
                                c["status"].as_str()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.state.authority_status = Some(report.status.clone());
            self.state.certificate_status = report.certificates.clone();
            // A phone the authority no longer counts as active (superseded,
            // lost, wiped) or whose certificates are revoked has no mobile ID.
            if report.status != "active" || report.certificates.iter().any(|(_, s)| s == "revoked")
            {
                self.state.mdoc = None;
            }
            if v["wipe"].as_bool() == Some(true) {
                if self.is_provisioned() || self.state.wipe.is_none() {
                    self.wipe_credentials(WipeCause::Authority)?;
                    report.wiped_now = true;
                } else {
                    self.commit()?;
                }
                report.wipe_confirmed = self.confirm_wipe(http)?;
                return Ok(report);
            }
            // The element wiped itself (tampering) while the authority
            // still counts the phone active: tell it, so it ends the
            // certificates whose keys are gone.
            if self.state.wipe.is_some_and(|w| !w.confirmed) && !self.is_provisioned() {
                report.wipe_confirmed = self.confirm_wipe(http)?;
                if let Some(status) = &self.state.authority_status {
                    report.status = status.clone();
                }
                self.commit()?;
                return Ok(report);
            }
            let events: Vec<Notification> = v["events"]
                .as_array()
                .map(|a| a.iter().filter_map(notification).collect())
                .unwrap_or_default();
            if let Some(cursor) = v["cursor"].as_i64() {
                self.state.cursor = cursor.max(self.state.cursor);
            }
            report.new_notifications.extend(events.iter().cloned());
            self.state.push_notifications(events);
            self.commit()?;
            if v["more"].as_bool() != Some(true) {
                break;
            }
        }
        Ok(report)
    }

    /// Retires the phone before it changes hands (sale, trade-in, repair):
    /// the authentication key (PIN or biometric) signs an authority
    /// challenge bound to this device, the authority revokes the phone's
    /// certificates, then the phone erases its credentials.
    pub fn retire(
        &mut self,
        http: &mut dyn AuthorityHttp,
        how: AuthUnlock<'_>,
    ) -> Result<Retired, PhoneError> {
        self.require_provisioned()?;
        let reg = self
            .state
            .registration
            .clone()
            .ok_or(PhoneError::NotProvisioned { wiped: None })?;
        let token = reg
            .device_token
            .clone()
            .ok_or(PhoneError::NotProvisioned { wiped: None })?;
        let signer = self.auth_signer(how)?;
        let v = call(
            http,
            &reg.authority,
            &HttpRequest::post("/v1/challenges", json!({})),
        )?;
        let challenge = base64_field(&v, "challenge")?;
        let message = shomei_ca::device_proof_message("retire", &reg.device_id, &challenge);
        let signature = signer
            .sign(&message)
            .map_err(|e| PhoneError::Pki(format!("phone authentication key: {e}")))?;
        drop(signer);
        let v = call(
            http,
            &reg.authority,
            &HttpRequest::post(
                format!("/v1/devices/{}/retire", reg.device_id),
                json!({"challenge": B64.encode(&challenge), "signature": B64.encode(&signature)}),
            )
            .bearer(&token),
        )?;
        let revoked = v["revoked"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(status) = v["status"].as_str() {
            self.state.authority_status = Some(status.to_owned());
        }
        self.wipe_credentials(WipeCause::Retired)?;
        // The authority has already ended the certificates; if the
        // confirmation cannot be sent now, the next sync sends it.
        let wipe_confirmed = self.confirm_wipe(http).unwrap_or(false);
        Ok(Retired {
            device_id: reg.device_id,
            revoked,
            wipe_confirmed,
        })
    }

    /// Erases keys, PINs and enrolment in the element, then the
    /// certificates in the wallet; records why.
    fn wipe_credentials(&mut self, cause: WipeCause) -> Result<(), PhoneError> {
        lock(&self.element).wipe()?;
        self.record_wipe(cause)
    }

    fn record_wipe(&mut self, cause: WipeCause) -> Result<(), PhoneError> {
        self.state.certificates = WalletCertificates::default();
        self.state.mdoc = None;
        self.state.wipe = Some(WipeRecord {
            cause,
            confirmed: false,
        });
        self.commit()
    }

    /// Tells the authority the wipe is done; true once it has recorded it.
    fn confirm_wipe(&mut self, http: &mut dyn AuthorityHttp) -> Result<bool, PhoneError> {
        let Some(reg) = self.state.registration.clone() else {
            return Ok(false);
        };
        let Some(token) = reg.device_token.clone() else {
            return Ok(true);
        };
        // A wipe the element did on its own (tampering) says so: the
        // authority then ends the certificates itself.
        let body = match self.state.wipe.map(|w| w.cause) {
            Some(WipeCause::Tampered(_)) => json!({"cause": "tampered"}),
            _ => json!({}),
        };
        let v = call(
            http,
            &reg.authority,
            &HttpRequest::post(format!("/v1/devices/{}/wiped", reg.device_id), body).bearer(&token),
        )?;
        if let Some(status) = v["status"].as_str() {
            self.state.authority_status = Some(status.to_owned());
        }
        if let Some(w) = self.state.wipe.as_mut() {
            w.confirmed = true;
        }
        // The token has served its purpose: a wiped phone calls no more.
        if let Some(r) = self.state.registration.as_mut() {
            r.device_token = None;
        }
        self.commit()?;
        Ok(true)
    }

    // ---- helpers -----------------------------------------------------------

    fn require_provisioned(&self) -> Result<(), PhoneError> {
        if self.is_provisioned() {
            Ok(())
        } else {
            Err(PhoneError::NotProvisioned {
                wiped: self.state.wipe.map(|w| w.cause),
            })
        }
    }

    fn key(&self, label: &str) -> Result<KeyHandle, PhoneError> {
        Ok(lock(&self.element).find_key(label)?)
    }

    /// Seals the wallet with the element and writes it; then tells the
    /// element it is stored (which ends the key a requested wipe retired and
    /// any plain wallet's welcome), never before: a failed write leaves the
    /// stored wallet readable.
    fn commit(&mut self) -> Result<(), PhoneError> {
        let sealed = self.state.seal(&mut **lock(&self.element))?;
        self.store.commit(&sealed)?;
        Ok(lock(&self.element).sealed_data_stored()?)
    }
}

/// What the authority issued in a `201` to `POST /v1/phones`: enough to
/// tell it, with the device token, that the phone could not keep it.
#[derive(Clone)]
struct Issued {
    device_id: String,
    token: String,
}

impl Issued {
    fn of(reg: &Registration) -> Option<Self> {
        Some(Self {
            device_id: reg.device_id.clone(),
            token: reg.device_token.clone()?,
        })
    }
}

/// A failed provisioning step; `issued` once the authority had answered 201.
struct Failed {
    error: PhoneError,
    issued: Option<Issued>,
}

impl From<PhoneError> for Failed {
    fn from(error: PhoneError) -> Self {
        Self {
            error,
            issued: None,
        }
    }
}

impl From<SeError> for Failed {
    fn from(e: SeError) -> Self {
        PhoneError::from(e).into()
    }
}

impl From<shomei_pki::PkiError> for Failed {
    fn from(e: shomei_pki::PkiError) -> Self {
        PhoneError::from(e).into()
    }
}

/// A card error from the phone's own applet, in the phone's words.
fn applet_error(pin: PinKind, e: CardError) -> PhoneError {
    let gate = gate(pin);
    match e {
        CardError::WrongPin { tries_left } => {
            PhoneError::SecureElement(SeError::WrongPin { gate, tries_left })
        }
        CardError::Blocked => PhoneError::SecureElement(SeError::Blocked(gate)),
        CardError::BadPinFormat(_) => PhoneError::SecureElement(SeError::BadPinFormat(gate)),
        other => PhoneError::Card(other),
    }
}

fn notification(v: &Value) -> Option<Notification> {
    Some(Notification {
        id: v["id"].as_i64()?,
        at: v["at"].as_str().unwrap_or_default().to_owned(),
        action: v["action"].as_str()?.to_owned(),
        actor: v["actor"].as_str().unwrap_or_default().to_owned(),
        serial: v["serial"].as_str().map(str::to_owned),
        detail: v["detail"].clone(),
    })
}

/// The serial of a DER certificate, upper-case hex without leading zeros
/// (as the authority writes it).
pub(crate) fn serial_hex(der: &[u8]) -> Result<String, PhoneError> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| PhoneError::Protocol(format!("certificate: {e}")))?;
    let serial = shomei_core::Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())
        .map_err(|e| PhoneError::Protocol(format!("certificate serial: {e}")))?;
    Ok(serial.to_hex())
}

/// The mobile ID in an authority answer (`{doc_type, issuer_signed,
/// valid_until, status_idx}`), checked: it parses, and its MSO binds the
/// secure element's key `spki`.
pub(crate) fn wallet_mdoc(v: &Value, spki: &[u8]) -> Result<WalletMdoc, PhoneError> {
    let issuer_signed = base64_field(v, "issuer_signed")?;
    let bad = |what: &str| PhoneError::Protocol(format!("the mobile ID: {what}"));
    let parsed = shomei_mdoc::issuer::IssuerSigned::from_cbor(&issuer_signed)
        .map_err(|_| bad("not IssuerSigned"))?;
    let payload = parsed
        .issuer_auth
        .payload
        .as_deref()
        .ok_or_else(|| bad("no MSO"))?;
    let mso = shomei_mdoc::mso::MobileSecurityObject::from_tagged_bytes(payload)
        .map_err(|_| bad("unreadable MSO"))?;
    if mso.device_key.to_spki() != spki {
        return Err(bad("not bound to the secure element's key"));
    }
    let doc_type = text(v, "doc_type")?;
    if doc_type != mso.doc_type {
        return Err(bad("docType differs from the MSO's"));
    }
    Ok(WalletMdoc {
        doc_type,
        issuer_signed,
        key_label: MDOC_KEY_LABEL.to_owned(),
        valid_from: mso.validity.valid_from.unix_timestamp(),
        valid_until: mso.validity.valid_until.unix_timestamp(),
        status_idx: mso.status.map_or(0, |s| s.idx),
    })
}
