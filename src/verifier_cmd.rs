//! `shomei verifier serve` and `shomei verify signature`: the relying party.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use shomei_rp_service::oidc::Client;
use shomei_rp_service::{Anchors, Config, OnlineVerifier, ServiceError, StatusMode, system_clock};
use shomei_verifier::{Purpose, RootSource, TrustStore};

use crate::output::{Failure, emit};

/// The client registered when none is given: a public (PKCE) client whose
/// redirect URI is any loopback port's `/callback` (RFC 8252 §7.3).
pub const DEMO_CLIENT: &str = "demo=http://127.0.0.1/callback";

#[derive(Subcommand, Debug)]
pub enum VerifierCmd {
    /// Serve the OpenID Connect provider ("log in with My Number") and the
    /// signature verification endpoint.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The authority's base URL (OCSP, CRLs, linkage; trust anchors unless
    /// pinned with --sign-root/--auth-root).
    #[arg(long)]
    pub authority: String,
    #[arg(long, default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// Public issuer URL (default: http://LISTEN).
    #[arg(long)]
    pub issuer: Option<String>,
    /// A client: ID=REDIRECT_URI[,…] (public, PKCE) or
    /// ID:SECRET=REDIRECT_URI[,…]; repeatable. Default: `demo`, any
    /// loopback port's /callback.
    #[arg(long = "client")]
    pub clients: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The relying-party token (`authority register-rp`) for the
    /// authority's linkage service: stable subjects across renewals and
    /// between card and phone.
    #[arg(long, env = "SHOMEI_RP_TOKEN_FILE")]
    pub rp_token_file: Option<PathBuf>,
    /// The ID-token key file (PKCS#8 DER, P-256), kept across restarts so
    /// relying parties' cached JWKS stay good: made there (mode 0600) when
    /// the file does not exist, then loaded. Without it, a new key each
    /// start (the JWKS `kid` changes).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Options shared by the verifier's commands.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Where statuses come from.
    #[arg(long, value_enum, default_value = "ocsp")]
    pub status: StatusArg,
    /// Also trust the real JPKI roots (J-LIS); their certificates verify
    /// offline, with status "unknown" and status_detail "not_checked".
    #[arg(long)]
    pub jpki_roots: bool,
    /// Pin the authority's signing root (PEM; with --auth-root): the only
    /// anchor for its signing certificates, and nothing is fetched for
    /// trust (OCSP, CRLs and linkage still use the URL, their answers
    /// verified under the pinned roots). Without the pair, the roots are
    /// fetched from the authority's /ca/sign.pem and /ca/auth.pem on first
    /// contact (trust on first use).
    #[arg(long, value_name = "PEM")]
    pub sign_root: Option<PathBuf>,
    /// Pin the authority's authentication root (PEM; with --sign-root).
    #[arg(long, value_name = "PEM")]
    pub auth_root: Option<PathBuf>,
}

impl CommonArgs {
    /// The authority's trust anchors: pinned from the PEM files when given
    /// (a file that cannot be read or holds no certificate is bad input),
    /// else fetched.
    fn anchors(&self) -> anyhow::Result<Anchors> {
        // Checked here rather than by clap, for the one-line failure.
        let (sign, auth) = match (&self.sign_root, &self.auth_root) {
            (None, None) => return Ok(Anchors::Fetch),
            (Some(s), Some(a)) => (s, a),
            _ => {
                return Err(Failure::input(
                    "--sign-root and --auth-root go together: give both (pinned roots) or neither (roots fetched from --authority)",
                ));
            }
        };
        let sign = read_root("--sign-root", sign, Purpose::Signing)?;
        let auth = read_root("--auth-root", auth, Purpose::Authentication)?;
        Anchors::pinned(&sign, &auth)
            .map_err(|e| Failure::input(format!("--sign-root/--auth-root: {e}")))
    }
}

/// Reads a pinned root's PEM file and checks that it holds a certificate.
fn read_root(flag: &str, path: &Path, purpose: Purpose) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::input(format!("{flag} {}: cannot read: {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::input(format!("{flag} {}: not PEM text", path.display())))?;
    TrustStore::new()
        .add_pem(purpose, &text, RootSource::Shomei)
        .map_err(|e| Failure::input(format!("{flag} {}: {e}", path.display())))?;
    Ok(text)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatusArg {
    /// OCSP with a fresh nonce (falls back to the CRL shard).
    Ocsp,
    /// The CRL shard (cached until its nextUpdate).
    Crl,
}

impl From<StatusArg> for StatusMode {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Ocsp => Self::Ocsp,
            StatusArg::Crl => Self::Crl,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum VerifyCmd {
    /// Verify a detached CMS signature (a signed application) and read the
    /// signer's basic four.
    Signature(SignatureArgs),
}

#[derive(Args, Debug)]
pub struct SignatureArgs {
    /// The authority's base URL (OCSP, CRLs; trust anchors unless pinned
    /// with --sign-root/--auth-root).
    #[arg(long)]
    pub authority: String,
    /// The signed document.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// The detached CMS SignedData (DER).
    #[arg(long)]
    pub sig: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run_verifier(cmd: VerifierCmd, json: bool) -> anyhow::Result<()> {
    let VerifierCmd::Serve(a) = cmd;
    let specs = if a.clients.is_empty() {
        vec![DEMO_CLIENT.to_owned()]
    } else {
        a.clients.clone()
    };
    let clients = specs
        .iter()
        .map(|s| Client::parse(s).map_err(|e| Failure::input(format!("--client {s}: {e}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let linkage_token = match &a.rp_token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let anchors = a.common.anchors()?;
    // Last of the checks: a key file is created only once every other
    // argument is good (bad input changes nothing).
    let (signer, key_origin) = match &a.key {
        Some(f) => load_or_create_key(f)?,
        None => (
            shomei_pki::EcdsaP256Signer::generate()?,
            KeyOrigin::Ephemeral,
        ),
    };
    let signer: Arc<dyn shomei_core::Signer> = Arc::new(signer);
    let has_linkage = linkage_token.is_some();
    let config = Config {
        authority: a.authority.clone(),
        listen: a.listen,
        issuer: a.issuer.clone(),
        clients,
        mode: a.common.status.into(),
        linkage_token,
        jpki: a.common.jpki_roots,
    };
    let running = shomei_rp_service::start_with(config, anchors, signer, system_clock())
        .await
        .map_err(service_failure)?;
    let client_ids: Vec<&str> = specs
        .iter()
        .filter_map(|s| s.split(['=', ':']).next())
        .collect();
    let kid = running.state.provider.jwks()["keys"][0]["kid"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let key_line = format!(
        "  ID-token key: kid {kid}, {}",
        match (key_origin, &a.key) {
            (KeyOrigin::Ephemeral, _) | (_, None) => "EPHEMERAL: a new key each start, so relying parties' cached JWKS break on restart; keep one with --key FILE".to_owned(),
            (KeyOrigin::Created, Some(f)) => format!("created in {} (0600)", f.display()),
            (KeyOrigin::Loaded, Some(f)) => format!("loaded from {}", f.display()),
        }
    );
    let verifier = &running.state.verifier;
    let pinned = verifier.anchors_pinned();
    let sign_fp = verifier.authority_fingerprints(Purpose::Signing);
    let auth_fp = verifier.authority_fingerprints(Purpose::Authentication);
    let anchors_line = format!(
        "  trust anchors: {}\n    signing root SHA-256: {}\n    authentication root SHA-256: {}",
        if pinned {
            "pinned (--sign-root, --auth-root)".to_owned()
        } else {
            format!(
                "fetched from {} on first contact, NOT pinned; check these fingerprints and pin the roots with --sign-root/--auth-root",
                verifier.authority()
            )
        },
        sign_fp.join(", "),
        auth_fp.join(", "),
    );
    emit(
        json,
        &json!({
            "issuer": running.issuer,
            "discovery": format!("{}/.well-known/openid-configuration", running.issuer),
            "clients": client_ids,
            "linkage": has_linkage,
            "id_token_key": {
                "kid": kid,
                "origin": key_origin.as_str(),
                "file": a.key.as_ref().map(|f| f.display().to_string()),
            },
            "trust_anchors": {
                "origin": if pinned { "pinned" } else { "fetched" },
                "sign_sha256": sign_fp,
                "auth_sha256": auth_fp,
            },
        }),
        &format!(
            "OpenID Connect provider at {}\n  discovery: {}/.well-known/openid-configuration\n  clients: {}\n  subjects: {}\n{key_line}\n{anchors_line}\nCtrl-C stops it.",
            running.issuer,
            running.issuer,
            client_ids.join(", "),
            if has_linkage {
                "stable per holder (authority linkage)"
            } else {
                "per certificate (no --rp-token-file: not stable across renewals)"
            }
        ),
    );
    running.wait().await;
    Ok(())
}

pub async fn run_verify(cmd: VerifyCmd, json: bool) -> anyhow::Result<()> {
    let VerifyCmd::Signature(a) = cmd;
    let content = std::fs::read(&a.input)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", a.input.display())))?;
    let p7s = std::fs::read(&a.sig)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", a.sig.display())))?;
    let v = OnlineVerifier::connect(
        &a.authority,
        a.common.status.into(),
        None,
        a.common.jpki_roots,
        a.common.anchors()?,
        system_clock(),
    )
    .await
    .map_err(service_failure)?;
    let report = v.verify_signature(&p7s, &content).await;
    let value = serde_json::to_value(&report)?;
    let human = match (&report.holder, &report.error) {
        (Some(h), None) => format!(
            "valid signature by the {} certificate {} (status {})\n  name: {}\n  address: {}\n  birth date: {}\n  sex: {}",
            report.kind.unwrap_or("?"),
            report.serial.as_deref().unwrap_or("?"),
            match (report.status_detail, report.status_source) {
                (Some("not_checked"), _) => format!(
                    "{}: not checked, real JPKI root verified offline",
                    report.status
                ),
                (Some(why), _) => format!("{}: {why}", report.status),
                (None, source) => format!("{} by {source}", report.status),
            },
            h.name,
            h.address,
            h.birth_date,
            h.sex
        ),
        _ => String::new(),
    };
    if let Some(err) = &report.error {
        // The result still goes to stdout for scripts; the failure is the
        // one stderr line and the exit code (2: not a signature at all —
        // malformed or unsupported CMS or certificate; 1: a signature that
        // does not verify or whose signer is not good).
        if json {
            println!("{value}");
        }
        let msg = format!("the signature is not valid: {} ({})", err.message, err.code);
        return Err(if report.bad_input().is_some() {
            Failure::input(msg)
        } else {
            anyhow::anyhow!(msg)
        });
    }
    emit(json, &value, &human);
    Ok(())
}

/// Where the ID-token key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyOrigin {
    /// Made for this run only (no --key).
    Ephemeral,
    /// Made in the --key file now (it did not exist).
    Created,
    /// Read from the --key file.
    Loaded,
}

impl KeyOrigin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ephemeral => "ephemeral",
            Self::Created => "created",
            Self::Loaded => "loaded",
        }
    }
}

/// The ID-token key in `path` (PKCS#8 DER, P-256): loaded when the file
/// exists (unreadable or not such a key: bad input); else generated,
/// written to a new 0600 temporary file in the same folder, synced, and
/// linked into place (a link never replaces an existing file, so a key
/// another process made meanwhile wins and is the one loaded), then loaded
/// from the file like any other.
fn load_or_create_key(path: &Path) -> anyhow::Result<(shomei_pki::EcdsaP256Signer, KeyOrigin)> {
    let origin = match std::fs::read(path) {
        Ok(der) => return Ok((key_from_pkcs8(path, &der)?, KeyOrigin::Loaded)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path)?,
        Err(e) => {
            return Err(Failure::input(format!(
                "--key {}: cannot read: {e}",
                path.display()
            )));
        }
    };
    let der = std::fs::read(path)
        .map_err(|e| Failure::input(format!("--key {}: cannot read: {e}", path.display())))?;
    Ok((key_from_pkcs8(path, &der)?, origin))
}

fn key_from_pkcs8(path: &Path, der: &[u8]) -> anyhow::Result<shomei_pki::EcdsaP256Signer> {
    shomei_pki::EcdsaP256Signer::from_pkcs8(der).map_err(|e| {
        Failure::input(format!(
            "--key {}: not a PKCS#8 P-256 key ({e}); give another file or remove it to make a new key",
            path.display()
        ))
    })
}

/// Makes a new key in `path` unless one appears there first: `Created`,
/// or `Loaded` when another process made it meanwhile.
fn create_key_file(path: &Path) -> anyhow::Result<KeyOrigin> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let pkcs8 = shomei_pki::EcdsaP256Signer::generate()?.to_pkcs8()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Failure::input(format!("--key {}: not a file name", path.display())))?;
    let nonce = hex::encode(shomei_rp_service::online::random::<8>()?);
    let tmp = dir.join(format!(".{}.{nonce}.tmp", name.to_string_lossy()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&pkcs8)?;
        f.sync_all()
    })();
    let placed = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match placed {
        Ok(()) => {
            // The new name is durable once the folder is synced.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(KeyOrigin::Created)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(KeyOrigin::Loaded),
        Err(e) => {
            let msg = format!("--key {}: cannot create the key file: {e}", path.display());
            // No such folder, or not ours to write: the path given is wrong.
            Err(match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    Failure::input(msg)
                }
                _ => anyhow::anyhow!(msg),
            })
        }
    }
}

fn service_failure(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::BadRequest { .. } => Failure::input(e.to_string()),
        other => anyhow::anyhow!(other.to_string()),
    }
}
