//! The authority's folder: configuration, root certificates, the CA key
//! store (PKCS#8 files, mode 0600: the software stand-in for an HSM), the
//! operator token and the embedded registry.
//!
//! ```text
//! DIR/authority.json        configuration (name, base URL, CRL shards)
//! DIR/operator.token        operator bearer token (0600)
//! DIR/keys/*.p8             private keys (0600, directory 0700)
//! DIR/keys/linkage.key      32 random bytes (0600): the HMAC key of the holder
//!                           pseudonyms shown to relying parties (created on
//!                           first load if an older folder lacks it)
//! DIR/keys/card-face.p8     P-256 PKCS#8 (0600): signs the 券面AP face data
//!                           (created on first load if an older folder lacks it)
//! DIR/ca/{sign,auth}.{der,pem}, DIR/ca/ocsp-{sign,auth}.der
//! DIR/ca/iaca.{der,pem}, DIR/ca/ds.der   mobile-ID IACA and document signer
//! DIR/keys/reader-ca.p8, DIR/ca/reader-ca.{der,pem}
//!                           the mdoc reader CA (ISO 18013-5 §9.1.4): certifies
//!                           registered relying parties' readers (created on
//!                           first load if an older folder lacks it)
//! DIR/registry.sqlite       the registry (embedded default)
//! DIR/manufacturers/*.{der,pem}  secure-element manufacturer roots trusted
//!                           for phone key attestation (may be empty)
//! ```
//!
//! `authority.json` may also hold `"smtp": {"host", "port", "from", …}`: the
//! relay for holders' e-mail notifications (absent: no e-mail), with
//! STARTTLS, implicit TLS or (local relays only) none, a private CA and
//! credentials from a password file: see [`crate::notify::SmtpConfig`].
//!
//! `init` builds everything in a sibling staging folder and renames it into
//! place, so a failed init leaves nothing behind and a second init on the
//! same folder is refused before anything is written.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shomei_core::{RandomSource, Root, Serial, Signer, Timestamp};
use shomei_pki::profile::{Iaca, PublicationPoints, ReaderCa, RootCa, issue_ocsp_responder};
use shomei_pki::{EcdsaP256Signer, RsaSigner, SystemRandom};

use crate::ServerError;

/// Name of the configuration file that marks a folder as an authority.
pub const CONFIG_FILE: &str = "authority.json";

/// Days an OCSP responder certificate lives.
pub const RESPONDER_DAYS: i64 = 365;

/// Days a mobile-ID document signer certificate lives (Annex B allows 457).
pub const DS_DAYS: i64 = 365;

/// Persistent configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HomeConfig {
    /// Format version.
    pub version: u32,
    /// Authority name (in the roots' O).
    pub name: String,
    /// Public base URL written into certificates.
    pub base_url: String,
    /// CRL shards per certificate class.
    pub crl_shards: u32,
    /// SMTP relay for holder notifications (optional; absent in older folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<crate::notify::SmtpConfig>,
}

/// The folder of trusted secure-element manufacturer roots.
pub const MANUFACTURERS_DIR: &str = "manufacturers";

/// Options for `authority init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Authority name.
    pub name: String,
    /// Public base URL.
    pub base_url: String,
    /// CRL shards per class.
    pub crl_shards: u32,
    /// Secure-element manufacturer roots to trust from the start: file
    /// name (without extension) and certificate DER, written to
    /// `DIR/manufacturers/NAME.der`.
    pub manufacturer_roots: Vec<(String, Vec<u8>)>,
}

/// What `open` loads from the folder.
pub struct Home {
    /// The folder.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: HomeConfig,
    /// Signing root.
    pub sign_root: Arc<RootCa>,
    /// Authentication root.
    pub auth_root: Arc<RootCa>,
    /// Delegated OCSP responders (certificate DER and key), per root.
    pub responders: Vec<(Root, Vec<u8>, Arc<dyn Signer>)>,
    /// Operator bearer token.
    pub operator_token: String,
    /// The mobile-ID issuing authority CA.
    pub iaca: Arc<Iaca>,
    /// The mobile-ID document signer: certificate DER and key.
    pub document_signer: (Vec<u8>, Arc<dyn Signer>),
    /// Secure-element manufacturer roots (DER) trusted for phone key attestation.
    pub manufacturer_roots: Vec<Vec<u8>>,
    /// The linkage secret: keys the per-relying-party holder pseudonyms.
    pub linkage_key: LinkageKey,
    /// The card-face signing key (P-256).
    pub card_face_key: Arc<EcdsaP256Signer>,
}

/// File under `DIR/keys/` holding the reader CA's key.
pub const READER_CA_KEY_FILE: &str = "reader-ca.p8";
/// Files under `DIR/ca/` holding the reader CA's certificate.
pub const READER_CA_CERT_FILE: &str = "reader-ca.der";
/// The PEM form of [`READER_CA_CERT_FILE`].
pub const READER_CA_PEM_FILE: &str = "reader-ca.pem";

fn create_reader_ca(
    name: &str,
    points: &PublicationPoints,
    rng: &mut dyn RandomSource,
    now: Timestamp,
) -> Result<(EcdsaP256Signer, ReaderCa), ServerError> {
    let key = EcdsaP256Signer::generate().map_err(ServerError::Pki)?;
    let again = EcdsaP256Signer::from_pkcs8(&key.to_pkcs8().map_err(ServerError::Pki)?)
        .map_err(ServerError::Pki)?;
    let serial =
        Serial::random(rng).map_err(|_| ServerError::Internal("randomness failed".into()))?;
    let ca =
        ReaderCa::create(name, points, Arc::new(again), &serial, now).map_err(ServerError::Pki)?;
    Ok((key, ca))
}

/// Loads the mdoc reader CA (`DIR/keys/reader-ca.p8`, `DIR/ca/reader-ca.der`),
/// creating it first if the folder predates it: the key and certificate
/// are written to temporary files and linked into place, the key first (a
/// concurrent creator that loses the race loads the winner's).
pub fn load_or_create_reader_ca(
    dir: &Path,
    config: &HomeConfig,
    now: Timestamp,
) -> Result<ReaderCa, ServerError> {
    let key_path = dir.join("keys").join(READER_CA_KEY_FILE);
    let cert_path = dir.join("ca").join(READER_CA_CERT_FILE);
    if !key_path.exists() {
        let mut rng = SystemRandom::new();
        let points = PublicationPoints::new(&config.base_url);
        let (key, ca) = create_reader_ca(&config.name, &points, &mut rng, now)?;
        let suffix = random_hex(&mut rng, 6)?;
        let tmp_key = dir
            .join("keys")
            .join(format!(".{READER_CA_KEY_FILE}.{suffix}"));
        let tmp_cert = dir
            .join("ca")
            .join(format!(".{READER_CA_CERT_FILE}.{suffix}"));
        write_private(&tmp_key, &key.to_pkcs8().map_err(ServerError::Pki)?)?;
        write_public(&tmp_cert, ca.cert_der())?;
        let linked = fs::hard_link(&tmp_key, &key_path);
        let _ = fs::remove_file(&tmp_key);
        let result = match linked {
            Ok(()) => fs::rename(&tmp_cert, &cert_path)
                .map_err(|e| ServerError::Io(format!("create reader CA certificate: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(ServerError::Io(format!("create reader CA key: {e}"))),
        };
        let _ = fs::remove_file(&tmp_cert);
        result?;
    }
    let key = EcdsaP256Signer::from_pkcs8(&read(&key_path)?).map_err(ServerError::Pki)?;
    let cert = read(&cert_path)?;
    let ca = ReaderCa::load(&config.name, cert, Arc::new(key)).map_err(ServerError::Pki)?;
    let pem_path = dir.join("ca").join(READER_CA_PEM_FILE);
    if !pem_path.exists() {
        // A convenience copy for operators (HTTP serves the loaded one); a
        // concurrent creator may have written it first.
        let _ = write_public(&pem_path, pem("CERTIFICATE", ca.cert_der()).as_bytes());
    }
    Ok(ca)
}

/// File under `DIR/keys/` holding the card-face signing key.
pub const CARD_FACE_KEY_FILE: &str = "card-face.p8";

/// Reads `DIR/keys/card-face.p8`, creating it (0600) if the folder predates
/// it; like the linkage key, a new key is linked into place atomically.
pub fn load_or_create_card_face_key(dir: &Path) -> Result<EcdsaP256Signer, ServerError> {
    let path = dir.join("keys").join(CARD_FACE_KEY_FILE);
    if !path.exists() {
        let mut rng = SystemRandom::new();
        let fresh = EcdsaP256Signer::generate().map_err(ServerError::Pki)?;
        let tmp = dir.join("keys").join(format!(
            ".{CARD_FACE_KEY_FILE}.{}",
            random_hex(&mut rng, 6)?
        ));
        write_private(&tmp, &fresh.to_pkcs8().map_err(ServerError::Pki)?)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(fresh),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ServerError::Io(format!("create card-face key: {e}"))),
        }
    }
    EcdsaP256Signer::from_pkcs8(&read(&path)?).map_err(ServerError::Pki)
}

/// File under `DIR/keys/` holding the linkage secret.
pub const LINKAGE_KEY_FILE: &str = "linkage.key";

/// The linkage secret (32 bytes). `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkageKey(pub [u8; 32]);

impl core::fmt::Debug for LinkageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LinkageKey(<redacted>)")
    }
}

impl LinkageKey {
    fn generate(rng: &mut dyn RandomSource) -> Result<Self, ServerError> {
        let mut k = [0u8; 32];
        rng.fill(&mut k)
            .map_err(|_| ServerError::Internal("randomness failed".into()))?;
        Ok(Self(k))
    }

    /// Reads `DIR/keys/linkage.key`, creating it (0600) if the folder
    /// predates it. The new key is written to a temporary file and linked
    /// into place, so a reader never sees half a key and two processes
    /// racing to create it agree on one.
    pub fn load_or_create(dir: &Path) -> Result<Self, ServerError> {
        let path = dir.join("keys").join(LINKAGE_KEY_FILE);
        if !path.exists() {
            let mut rng = SystemRandom::new();
            let fresh = Self::generate(&mut rng)?;
            let tmp = dir
                .join("keys")
                .join(format!(".{LINKAGE_KEY_FILE}.{}", random_hex(&mut rng, 6)?));
            write_private(&tmp, &fresh.0)?;
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok(fresh),
                // Someone else created it meanwhile: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(ServerError::Io(format!("create linkage key: {e}"))),
            }
        }
        let raw = read(&path)?;
        <[u8; 32]>::try_from(raw.as_slice())
            .map(Self)
            .map_err(|_| ServerError::Corrupt(format!("keys/{LINKAGE_KEY_FILE} is not 32 bytes")))
    }
}

impl Home {
    /// Creates a new authority in `dir`, refusing a folder that already holds one
    /// (or any non-empty folder).
    pub fn init(dir: &Path, opts: &InitOptions, now: Timestamp) -> Result<(), ServerError> {
        if dir.join(CONFIG_FILE).exists() {
            return Err(ServerError::AlreadyInitialised(dir.display().to_string()));
        }
        if dir.exists() && fs::read_dir(dir).map_err(io("read"))?.next().is_some() {
            return Err(ServerError::AlreadyInitialised(format!(
                "{} (folder is not empty)",
                dir.display()
            )));
        }
        if opts.crl_shards == 0 || opts.crl_shards > 4096 {
            return Err(ServerError::BadInput(
                "--crl-shards must be between 1 and 4096".into(),
            ));
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io("create parent folder"))?;
        let mut rng = SystemRandom::new();
        let staging = parent.join(format!(
            ".{}.init-{}",
            dir.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("authority"),
            random_hex(&mut rng, 6)?
        ));
        let result = Self::populate(&staging, opts, now, &mut rng);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        if dir.exists() {
            fs::remove_dir(dir).map_err(io("replace empty folder"))?;
        }
        fs::rename(&staging, dir).map_err(io("move authority into place"))?;
        Ok(())
    }

    fn populate(
        dir: &Path,
        opts: &InitOptions,
        now: Timestamp,
        rng: &mut SystemRandom,
    ) -> Result<(), ServerError> {
        fs::create_dir_all(dir.join("keys")).map_err(io("create keys folder"))?;
        fs::set_permissions(dir.join("keys"), fs::Permissions::from_mode(0o700))
            .map_err(io("chmod keys"))?;
        fs::create_dir_all(dir.join("ca")).map_err(io("create ca folder"))?;
        fs::create_dir_all(dir.join(MANUFACTURERS_DIR))
            .map_err(io("create manufacturers folder"))?;
        for (name, der) in &opts.manufacturer_roots {
            let safe = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !safe {
                return Err(ServerError::BadInput(format!(
                    "manufacturer root name {name:?}: use letters, digits, - and _"
                )));
            }
            shomei_pki::csr::certificate_spki(der).map_err(|e| {
                ServerError::BadInput(format!("manufacturer root {name}: not a certificate ({e})"))
            })?;
            write_public(
                &dir.join(MANUFACTURERS_DIR).join(format!("{name}.der")),
                der,
            )?;
        }
        for root in [Root::Sign, Root::Auth] {
            let key = RsaSigner::generate().map_err(ServerError::Pki)?;
            write_private(
                &dir.join("keys").join(format!("{}-root.p8", root.as_str())),
                &key.to_pkcs8().map_err(ServerError::Pki)?,
            )?;
            let serial = Serial::random(rng)
                .map_err(|_| ServerError::Internal("randomness failed".into()))?;
            let ca = RootCa::create(root, &opts.name, Arc::new(key), &serial, now)
                .map_err(ServerError::Pki)?;
            write_public(
                &dir.join("ca").join(format!("{}.der", root.as_str())),
                ca.cert_der(),
            )?;
            write_public(
                &dir.join("ca").join(format!("{}.pem", root.as_str())),
                pem("CERTIFICATE", ca.cert_der()).as_bytes(),
            )?;
            let responder = EcdsaP256Signer::generate().map_err(ServerError::Pki)?;
            write_private(
                &dir.join("keys").join(format!("ocsp-{}.p8", root.as_str())),
                &responder.to_pkcs8().map_err(ServerError::Pki)?,
            )?;
            let serial = Serial::random(rng)
                .map_err(|_| ServerError::Internal("randomness failed".into()))?;
            let cert = issue_ocsp_responder(&ca, &responder, &serial, now, RESPONDER_DAYS)
                .map_err(ServerError::Pki)?;
            write_public(
                &dir.join("ca").join(format!("ocsp-{}.der", root.as_str())),
                &cert,
            )?;
        }
        // Mobile-ID trust material (ISO/IEC 18013-5 Annex B): IACA and document signer, P-256.
        let points = PublicationPoints::new(&opts.base_url);
        let iaca_key = EcdsaP256Signer::generate().map_err(ServerError::Pki)?;
        write_private(
            &dir.join("keys").join("iaca.p8"),
            &iaca_key.to_pkcs8().map_err(ServerError::Pki)?,
        )?;
        let serial =
            Serial::random(rng).map_err(|_| ServerError::Internal("randomness failed".into()))?;
        let iaca = Iaca::create(&opts.name, &points, Arc::new(iaca_key), &serial, now)
            .map_err(ServerError::Pki)?;
        write_public(&dir.join("ca").join("iaca.der"), iaca.cert_der())?;
        write_public(
            &dir.join("ca").join("iaca.pem"),
            pem("CERTIFICATE", iaca.cert_der()).as_bytes(),
        )?;
        let ds_key = EcdsaP256Signer::generate().map_err(ServerError::Pki)?;
        write_private(
            &dir.join("keys").join("ds.p8"),
            &ds_key.to_pkcs8().map_err(ServerError::Pki)?,
        )?;
        let serial =
            Serial::random(rng).map_err(|_| ServerError::Internal("randomness failed".into()))?;
        let ds = iaca
            .issue_document_signer(&points, &ds_key, &serial, now, DS_DAYS)
            .map_err(ServerError::Pki)?;
        write_public(&dir.join("ca").join("ds.der"), &ds)?;
        // The mdoc reader CA (ISO/IEC 18013-5 §9.1.4), P-256, beside the IACA.
        let (reader_key, reader_ca) = create_reader_ca(&opts.name, &points, rng, now)?;
        write_private(
            &dir.join("keys").join(READER_CA_KEY_FILE),
            &reader_key.to_pkcs8().map_err(ServerError::Pki)?,
        )?;
        write_public(
            &dir.join("ca").join(READER_CA_CERT_FILE),
            reader_ca.cert_der(),
        )?;
        write_public(
            &dir.join("ca").join(READER_CA_PEM_FILE),
            pem("CERTIFICATE", reader_ca.cert_der()).as_bytes(),
        )?;
        write_private(&dir.join("operator.token"), random_hex(rng, 32)?.as_bytes())?;
        write_private(
            &dir.join("keys").join(LINKAGE_KEY_FILE),
            &LinkageKey::generate(rng)?.0,
        )?;
        write_private(
            &dir.join("keys").join(CARD_FACE_KEY_FILE),
            &EcdsaP256Signer::generate()
                .and_then(|k| k.to_pkcs8())
                .map_err(ServerError::Pki)?,
        )?;
        let config = HomeConfig {
            version: 1,
            name: opts.name.clone(),
            base_url: opts.base_url.trim_end_matches('/').to_owned(),
            crl_shards: opts.crl_shards,
            smtp: None,
        };
        let json =
            serde_json::to_vec_pretty(&config).map_err(|e| ServerError::Internal(e.to_string()))?;
        write_public(&dir.join(CONFIG_FILE), &json)?;
        Ok(())
    }

    /// Loads an authority folder.
    pub fn open(dir: &Path) -> Result<Self, ServerError> {
        let raw = fs::read(dir.join(CONFIG_FILE))
            .map_err(|_| ServerError::NotInitialised(dir.display().to_string()))?;
        let config: HomeConfig = serde_json::from_slice(&raw)
            .map_err(|e| ServerError::Corrupt(format!("{CONFIG_FILE}: {e}")))?;
        let load_root = |root: Root| -> Result<Arc<RootCa>, ServerError> {
            let key = RsaSigner::from_pkcs8(&read(
                &dir.join("keys").join(format!("{}-root.p8", root.as_str())),
            )?)
            .map_err(ServerError::Pki)?;
            let cert = read(&dir.join("ca").join(format!("{}.der", root.as_str())))?;
            RootCa::load(root, &config.name, cert, Arc::new(key))
                .map(Arc::new)
                .map_err(ServerError::Pki)
        };
        let sign_root = load_root(Root::Sign)?;
        let auth_root = load_root(Root::Auth)?;
        let mut responders = Vec::new();
        for root in [Root::Sign, Root::Auth] {
            let key = EcdsaP256Signer::from_pkcs8(&read(
                &dir.join("keys").join(format!("ocsp-{}.p8", root.as_str())),
            )?)
            .map_err(ServerError::Pki)?;
            let cert = read(&dir.join("ca").join(format!("ocsp-{}.der", root.as_str())))?;
            responders.push((root, cert, Arc::new(key) as Arc<dyn Signer>));
        }
        let operator_token = String::from_utf8(read(&dir.join("operator.token"))?)
            .map_err(|_| ServerError::Corrupt("operator.token is not text".into()))?
            .trim()
            .to_owned();
        let iaca_key = EcdsaP256Signer::from_pkcs8(&read(&dir.join("keys").join("iaca.p8"))?)
            .map_err(ServerError::Pki)?;
        let iaca_cert = read(&dir.join("ca").join("iaca.der"))?;
        let iaca =
            Iaca::load(&config.name, iaca_cert, Arc::new(iaca_key)).map_err(ServerError::Pki)?;
        let ds_key = EcdsaP256Signer::from_pkcs8(&read(&dir.join("keys").join("ds.p8"))?)
            .map_err(ServerError::Pki)?;
        let ds_cert = read(&dir.join("ca").join("ds.der"))?;
        let linkage_key = LinkageKey::load_or_create(dir)?;
        let card_face_key = Arc::new(load_or_create_card_face_key(dir)?);
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            sign_root,
            auth_root,
            responders,
            operator_token,
            iaca: Arc::new(iaca),
            document_signer: (ds_cert, Arc::new(ds_key) as Arc<dyn Signer>),
            manufacturer_roots: load_manufacturer_roots(&dir.join(MANUFACTURERS_DIR))?,
            linkage_key,
            card_face_key,
        })
    }

    /// The default registry URL: the embedded SQLite file in the folder.
    pub fn default_database(&self) -> String {
        format!("sqlite:{}", self.dir.join("registry.sqlite").display())
    }
}

/// Reads every `*.der` and `*.pem` certificate in `dir` (missing folder:
/// none), in file-name order. A file that holds no certificate is refused.
pub fn load_manufacturer_roots(dir: &Path) -> Result<Vec<Vec<u8>>, ServerError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ServerError::Io(format!("{}: {e}", dir.display()))),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "der" || x == "pem"))
        .collect();
    paths.sort();
    let mut roots = Vec::new();
    for path in paths {
        let raw = read(&path)?;
        let ders = if path.extension().is_some_and(|x| x == "pem") {
            shomei_pki::pem::pem_certificates(&raw)
        } else {
            vec![raw]
        };
        if ders.is_empty() {
            return Err(ServerError::Corrupt(format!(
                "{}: no certificate",
                path.display()
            )));
        }
        for der in ders {
            shomei_pki::csr::certificate_spki(&der).map_err(|e| {
                ServerError::Corrupt(format!("{}: not a certificate ({e})", path.display()))
            })?;
            roots.push(der);
        }
    }
    Ok(roots)
}

/// PEM armour (RFC 7468).
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn random_hex(rng: &mut dyn RandomSource, n: usize) -> Result<String, ServerError> {
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf)
        .map_err(|_| ServerError::Internal("randomness failed".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> ServerError {
    move |e| ServerError::Io(format!("{what}: {e}"))
}

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    fs::read(path).map_err(|e| ServerError::Corrupt(format!("{}: {e}", path.display())))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create key file"))?;
    f.write_all(bytes).map_err(io("write key file"))?;
    f.sync_all().map_err(io("sync key file"))
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(io("create file"))?;
    f.write_all(bytes).map_err(io("write file"))?;
    f.sync_all().map_err(io("sync file"))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn opts() -> InitOptions {
        InitOptions {
            name: "Test Authority".into(),
            base_url: "http://127.0.0.1:8700/".into(),
            crl_shards: 4,
            manufacturer_roots: vec![],
        }
    }

    #[test]
    fn card_face_key_is_made_at_init_kept_and_made_for_older_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("auth");
        Home::init(&dir, &opts(), datetime!(2026-11-21 0:00 UTC)).unwrap();
        let path = dir.join("keys").join(CARD_FACE_KEY_FILE);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        let spki = |h: &Home| h.card_face_key.public_key_spki().to_vec();
        let first = spki(&Home::open(&dir).unwrap());
        assert_eq!(spki(&Home::open(&dir).unwrap()), first);
        // A folder from before card faces gets a key on first load, kept after.
        fs::remove_file(&path).unwrap();
        let made = spki(&Home::open(&dir).unwrap());
        assert_ne!(made, first);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(spki(&Home::open(&dir).unwrap()), made);
        // A damaged key is refused, not replaced.
        fs::write(&path, b"not a key").unwrap();
        assert!(Home::open(&dir).is_err());
    }

    #[test]
    fn linkage_key_is_made_at_init_kept_and_made_for_older_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("auth");
        Home::init(&dir, &opts(), datetime!(2026-11-21 0:00 UTC)).unwrap();
        let path = dir.join("keys").join(LINKAGE_KEY_FILE);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        let first = fs::read(&path).unwrap();
        assert_eq!(first.len(), 32);
        assert_ne!(first, vec![0u8; 32]);
        let home = Home::open(&dir).unwrap();
        assert_eq!(home.linkage_key.0.to_vec(), first);
        assert_eq!(format!("{:?}", home.linkage_key), "LinkageKey(<redacted>)");
        assert_eq!(Home::open(&dir).unwrap().linkage_key, home.linkage_key);
        // A folder from before linkage gets a new key on first load, kept after.
        fs::remove_file(&path).unwrap();
        let made = Home::open(&dir).unwrap().linkage_key;
        assert_ne!(made.0.to_vec(), first);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(Home::open(&dir).unwrap().linkage_key, made);
        let stray: Vec<_> = fs::read_dir(dir.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
        // A damaged key is refused, not replaced.
        fs::write(&path, b"short").unwrap();
        assert!(matches!(Home::open(&dir), Err(ServerError::Corrupt(_))));
    }

    #[test]
    fn init_then_open_and_second_init_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("auth");
        Home::init(&dir, &opts(), datetime!(2026-11-21 0:00 UTC)).unwrap();
        let token_mode = fs::metadata(dir.join("operator.token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(token_mode, 0o600);
        let home = Home::open(&dir).unwrap();
        assert_eq!(home.config.base_url, "http://127.0.0.1:8700");
        assert_eq!(home.operator_token.len(), 64);
        let before: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let err = Home::init(&dir, &opts(), datetime!(2026-11-21 0:00 UTC)).unwrap_err();
        assert!(matches!(err, ServerError::AlreadyInitialised(_)));
        let after: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before.len(), after.len());
        assert_eq!(
            Home::open(&dir).unwrap().operator_token,
            home.operator_token,
            "token unchanged"
        );
    }

    #[test]
    fn manufacturer_roots_load_from_der_and_pem_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("auth");
        Home::init(&dir, &opts(), datetime!(2026-11-21 0:00 UTC)).unwrap();
        assert!(Home::open(&dir).unwrap().manufacturer_roots.is_empty());
        let m = dir.join(MANUFACTURERS_DIR);
        // Any certificate will do for loading (trust is the verifier's business).
        let cert = fs::read(dir.join("ca").join("sign.der")).unwrap();
        let other = fs::read(dir.join("ca").join("auth.der")).unwrap();
        fs::write(m.join("a.der"), &cert).unwrap();
        fs::write(
            m.join("b.pem"),
            format!(
                "{}{}",
                pem("CERTIFICATE", &other),
                pem("CERTIFICATE", &cert)
            ),
        )
        .unwrap();
        fs::write(m.join("README.txt"), "ignored").unwrap();
        let roots = Home::open(&dir).unwrap().manufacturer_roots;
        assert_eq!(roots, vec![cert.clone(), other, cert]);
        fs::write(m.join("c.der"), b"junk").unwrap();
        assert!(matches!(Home::open(&dir), Err(ServerError::Corrupt(_))));
        // Older folders have no manufacturers folder: none trusted.
        assert!(
            load_manufacturer_roots(&tmp.path().join("nope"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn open_of_missing_folder_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            Home::open(&tmp.path().join("nope")),
            Err(ServerError::NotInitialised(_))
        ));
    }
}
