//! The wallet: what the phone keeps besides its secure element — the
//! registration at the authority (device id and token), the certificates
//! (public), the event cursor and the notification inbox — and where it
//! keeps it.
//!
//! Nothing here is a key or a PIN, but much is personal: the phone signing
//! certificate names the holder (name, address, birth date, sex), the
//! mobile ID carries the basic four (and maybe a portrait), and the device
//! token is a bearer credential for the phone's own calls (sync, wipe
//! confirmation, retire). So the file is **sealed by the secure element**
//! ([`SecureElement::seal`] with [`WALLET_SEAL_CONTEXT`]: AES-256-GCM under
//! a key that never leaves the element), written with mode 0600, and
//! `Debug` never shows the token. A copy of the file opens on no other
//! phone, and on this one not once a wallet was stored after the element's
//! next requested wipe (until then it still opens, so an interrupted wipe
//! reconciles: [`SecureElement::retiring_seal_key_open`]).
//!
//! A wallet written before sealing (plain JSON, starting with `{`) is read,
//! and sealed when the phone opens it — but only on an element that has
//! never stored a sealed wallet ([`SecureElement::has_stored_sealed_data`]):
//! afterwards a plain wallet is [`PhoneError::WalletUnsealable`], so whoever
//! can write the file but not use the element cannot swap in their own.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use shomei_card::CertKind;
use shomei_secure_element::{SeError, SecureElement, TamperKind};
use zeroize::Zeroizing;

use crate::PhoneError;

/// Version of the wallet file.
pub const WALLET_FORMAT: u32 = 1;
/// Notifications kept in the inbox (the oldest are dropped first).
pub const INBOX_LIMIT: usize = 500;
/// The purpose the wallet is sealed for ([`SecureElement::seal`]'s context):
/// a blob sealed for anything else does not open as a wallet.
pub const WALLET_SEAL_CONTEXT: &[u8] = b"shomei/phone-wallet/v1";

/// The four certificates the phone applet serves (DER; empty when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletCertificates {
    /// Phone signing certificate (EF `0001`).
    #[serde(with = "hex_bytes")]
    pub sign: Vec<u8>,
    /// Signing root (EF `0002`), as read from the card.
    #[serde(with = "hex_bytes")]
    pub sign_ca: Vec<u8>,
    /// Phone authentication certificate (EF `000A`).
    #[serde(with = "hex_bytes")]
    pub auth: Vec<u8>,
    /// Authentication root (EF `000B`), as read from the card.
    #[serde(with = "hex_bytes")]
    pub auth_ca: Vec<u8>,
}

impl WalletCertificates {
    /// The certificate behind an EF.
    pub fn get(&self, kind: CertKind) -> &[u8] {
        match kind {
            CertKind::Sign => &self.sign,
            CertKind::SignCa => &self.sign_ca,
            CertKind::Auth => &self.auth,
            CertKind::AuthCa => &self.auth_ca,
        }
    }

    /// Whether the phone holds no end-entity certificate.
    pub fn is_empty(&self) -> bool {
        self.sign.is_empty() && self.auth.is_empty()
    }
}

/// The phone as the authority knows it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Registration {
    /// The authority's base URL.
    pub authority: String,
    /// The authority's id of this phone (`d_…`).
    pub device_id: String,
    /// The holder's id at the authority.
    pub holder_id: String,
    /// The device token (bearer) for the phone's own calls; dropped once the
    /// authority has recorded the phone as wiped.
    pub(crate) device_token: Option<String>,
    /// Serial of the phone signing certificate (hex).
    pub sign_serial: String,
    /// Serial of the phone authentication certificate (hex).
    pub auth_serial: String,
}

impl core::fmt::Debug for Registration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registration")
            .field("authority", &self.authority)
            .field("device_id", &self.device_id)
            .field("holder_id", &self.holder_id)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<secret>"),
            )
            .field("sign_serial", &self.sign_serial)
            .field("auth_serial", &self.auth_serial)
            .finish()
    }
}

/// Why the phone's credentials were erased.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "cause", content = "detail")]
#[non_exhaustive]
pub enum WipeCause {
    /// The authority ordered it (superseded by a newer phone, reported
    /// lost, remote wipe).
    Authority,
    /// The phone retired itself (before sale, trade-in, repair).
    Retired,
    /// The secure element detected tampering with its storage.
    Tampered(TamperKind),
}

impl core::fmt::Display for WipeCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Authority => f.write_str("wiped on the authority's order"),
            Self::Retired => f.write_str("retired by the holder"),
            Self::Tampered(k) => write!(f, "wiped after tampering was detected: {k}"),
        }
    }
}

/// A wipe the phone carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeRecord {
    /// Why.
    pub cause: WipeCause,
    /// Whether the authority has recorded it (`POST /v1/devices/{id}/wiped`).
    pub confirmed: bool,
}

/// One event about the holder, as the authority reported it at sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The event id (the sync cursor).
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// What happened (`issued`, `revoked`, `phone_provisioned`, …).
    pub action: String,
    /// Who did it (`operator:…`, `holder:…`, `system`).
    #[serde(default)]
    pub actor: String,
    /// The certificate concerned, if any (hex serial).
    #[serde(default)]
    pub serial: Option<String>,
    /// Details (never personal data).
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// The mobile ID (ISO 18013-5 mdoc) the authority issued for the phone's
/// device key: public data (the holder's elements, signed), no key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletMdoc {
    /// `org.iso.23220.1.jp.mnc`.
    pub doc_type: String,
    /// IssuerSigned (CBOR).
    #[serde(with = "hex_bytes")]
    pub issuer_signed: Vec<u8>,
    /// The device key's label in the secure element.
    pub key_label: String,
    /// validFrom (Unix seconds).
    pub valid_from: i64,
    /// validUntil (Unix seconds).
    pub valid_until: i64,
    /// Index in the authority's status list.
    pub status_idx: u64,
}

impl WalletMdoc {
    /// Whether more than half of its validity has passed at `now` (Unix
    /// seconds): time to ask for a fresh one.
    pub fn refresh_due(&self, now: i64) -> bool {
        let half = self.valid_from + (self.valid_until - self.valid_from) / 2;
        now >= half
    }
}

/// Everything in the wallet file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WalletState {
    /// File format version.
    pub format: u32,
    /// The secure element's attested device id (lower-case hex).
    pub se_device_id: String,
    /// The kind of device reported to the authority (`android`).
    pub kind: String,
    /// The registration at the authority, once provisioned.
    pub registration: Option<Registration>,
    /// The certificates (empty until provisioned, and after a wipe).
    pub certificates: WalletCertificates,
    /// The last event id seen at sync.
    pub cursor: i64,
    /// Events about the holder, oldest first.
    pub inbox: Vec<Notification>,
    /// The phone's status at the authority as of the last sync.
    pub authority_status: Option<String>,
    /// The certificates' status at the authority as of the last sync
    /// (`(serial, status)`).
    #[serde(default)]
    pub certificate_status: Vec<(String, String)>,
    /// The last wipe, if the credentials were erased.
    pub wipe: Option<WipeRecord>,
    /// The mobile ID, if the authority issued one (absent in older wallets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdoc: Option<WalletMdoc>,
}

impl WalletState {
    /// An empty wallet for the element `se_device_id`.
    pub fn new(se_device_id: String) -> Self {
        Self {
            format: WALLET_FORMAT,
            se_device_id,
            kind: "android".into(),
            registration: None,
            certificates: WalletCertificates::default(),
            cursor: 0,
            inbox: Vec::new(),
            authority_status: None,
            certificate_status: Vec::new(),
            wipe: None,
            mdoc: None,
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, PhoneError> {
        let state: Self = serde_json::from_slice(bytes).map_err(|e| {
            PhoneError::Storage(format!(
                "the wallet file is not valid (line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        if state.format != WALLET_FORMAT {
            return Err(PhoneError::Storage("unsupported wallet file format".into()));
        }
        Ok(state)
    }

    pub(crate) fn encode(&self) -> Result<Zeroizing<Vec<u8>>, PhoneError> {
        serde_json::to_vec_pretty(self)
            .map(Zeroizing::new)
            .map_err(|e| PhoneError::Storage(format!("cannot encode the wallet: {e}")))
    }

    /// The wallet as stored: encoded, then sealed by `element`.
    pub(crate) fn seal(&self, element: &mut dyn SecureElement) -> Result<Vec<u8>, PhoneError> {
        let plain = self.encode()?;
        Ok(element.seal(WALLET_SEAL_CONTEXT, &plain)?)
    }

    /// Reads a stored wallet: unsealed by `element`, or a plain one from
    /// before sealing (`true`: it should be sealed now), if the element has
    /// never stored a sealed one. A sealed wallet that does not open, or a
    /// plain one after sealing began, is [`PhoneError::WalletUnsealable`].
    pub(crate) fn unseal(
        element: &dyn SecureElement,
        stored: &[u8],
    ) -> Result<(Self, bool), PhoneError> {
        if is_plain(stored) {
            if element.has_stored_sealed_data() {
                return Err(PhoneError::WalletUnsealable(
                    "it is plain, but this phone has stored its wallet sealed: a plain wallet \
                     is read only once, when sealing begins",
                ));
            }
            return Ok((Self::decode(stored)?, true));
        }
        let plain = element
            .unseal(WALLET_SEAL_CONTEXT, stored)
            .map_err(|e| match e {
                SeError::Unsealable(why) => PhoneError::WalletUnsealable(why),
                other => other.into(),
            })?;
        Ok((Self::decode(&plain)?, false))
    }

    /// Adds notifications, keeping at most [`INBOX_LIMIT`].
    pub(crate) fn push_notifications(&mut self, new: impl IntoIterator<Item = Notification>) {
        self.inbox.extend(new);
        let excess = self.inbox.len().saturating_sub(INBOX_LIMIT);
        self.inbox.drain(..excess);
    }
}

/// Whether stored wallet bytes are a plain JSON wallet (from before
/// sealing): JSON text starts with `{` after optional white space, a sealed
/// blob with its version byte (1).
pub(crate) fn is_plain(stored: &[u8]) -> bool {
    stored
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// Where the wallet file lives. It stores what it is given: the phone hands
/// it sealed bytes.
pub trait WalletStore: Send {
    /// The last committed wallet, or `None` if none was ever written.
    fn load(&self) -> Result<Option<Vec<u8>>, PhoneError>;

    /// Durably and atomically replaces the wallet.
    fn commit(&mut self, bytes: &[u8]) -> Result<(), PhoneError>;
}

/// The wallet as one file, replaced atomically (temporary file with mode
/// 0600, fsync, rename, fsync of the folder).
#[derive(Debug)]
pub struct FileWalletStore {
    path: PathBuf,
}

impl FileWalletStore {
    /// The wallet at `path` (need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &str, e: &std::io::Error) -> PhoneError {
        PhoneError::Storage(format!("cannot {what} {}: {e}", self.path.display()))
    }
}

impl WalletStore for FileWalletStore {
    fn load(&self) -> Result<Option<Vec<u8>>, PhoneError> {
        match fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read", &e)),
        }
    }

    fn commit(&mut self, bytes: &[u8]) -> Result<(), PhoneError> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| PhoneError::Storage("the wallet path has no file name".into()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".tmp");
        let tmp = self.path.with_file_name(tmp_name);
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(|e| self.io("create", &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| self.io("restrict", &e))?;
        }
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io("write", &e))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(|e| self.io("replace", &e))?;
        #[cfg(unix)]
        {
            let dir = match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io("sync the folder of", &e))?;
        }
        Ok(())
    }
}

/// The wallet in RAM (tests). Clones share the bytes.
#[derive(Clone, Debug, Default)]
pub struct MemoryWalletStore {
    inner: Arc<Mutex<Option<Vec<u8>>>>,
}

impl MemoryWalletStore {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored bytes.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.lock().clone()
    }

    /// Replaces the stored bytes behind the wallet's back (tamper tests).
    pub fn set_bytes(&self, bytes: Option<Vec<u8>>) {
        *self.lock() = bytes;
    }

    fn lock(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WalletStore for MemoryWalletStore {
    fn load(&self) -> Result<Option<Vec<u8>>, PhoneError> {
        Ok(self.lock().clone())
    }

    fn commit(&mut self, bytes: &[u8]) -> Result<(), PhoneError> {
        *self.lock() = Some(bytes.to_vec());
        Ok(())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}
