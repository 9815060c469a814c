//! `shomei phone …`: the holder's phone (スマホ用電子証明書), a folder
//! holding a simulated secure element and the wallet (see `shomei-phone`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use shomei_phone::{
    AuthUnlock, AuthorityHttp, CardFaceSecret, HttpRequest, HttpResponse, Method, Phone,
    PhoneError, ProvisionRequest,
};
use shomei_se_sim::SimManufacturer;
use shomei_se_sim::manufacturer::ROOT_CERT_FILE;
use shomei_secure_element::GateId;

use crate::card_cmd;
use crate::cli::KindArg;
use crate::output::{Failure, emit};

#[derive(Subcommand, Debug)]
pub enum PhoneCmd {
    /// Put the card's holder on a phone in one step: reads the card and
    /// verifies its signing password, sets the phone's own passwords, makes
    /// the keys in the phone's secure element and gets the certificates.
    /// Any earlier phone of the holder is revoked (it wipes at its next sync).
    Provision(ProvisionArgs),
    /// The phone: registration, certificates, PIN tries, biometric, inbox.
    Status {
        #[arg(long)]
        phone: PathBuf,
    },
    /// Sign a file with the phone: detached CMS SignedData (DER).
    Sign(SignArgs),
    /// Pick up notifications and remote-wipe orders from the authority.
    Sync {
        #[arg(long)]
        phone: PathBuf,
    },
    /// End the phone's certificates before it changes hands (sale, trade-in,
    /// repair), proving with its authentication key; then erase the phone.
    Retire {
        #[arg(long)]
        phone: PathBuf,
        #[command(flatten)]
        unlock: AuthUnlockArgs,
    },
    /// Answer a relying party's login page ("log in with My Number") with
    /// the phone's authentication key; with --password, also release the
    /// basic four by the signing key when the relying party asks for them.
    Login(LoginArgs),
    /// Show the mobile ID in person (ISO 18013-5): prints the `mdoc:`
    /// device engagement URI as the first line, then serves one reader
    /// session over TCP and releases only what was requested and allowed.
    Present(PresentArgs),
    /// Enrol, change or remove the biometric that may stand in for the
    /// authentication PIN (never for the signing password).
    #[command(subcommand)]
    Biometric(BiometricCmd),
    /// Create (or load) a simulated secure-element manufacturer; with
    /// --trust, also make an authority folder trust its root (restart the
    /// authority afterwards).
    Manufacturer {
        #[arg(long)]
        dir: PathBuf,
        /// An authority folder (`authority init --data`) to trust this manufacturer.
        #[arg(long)]
        trust: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ConsentArg {
    /// Release what the reader asks for, never the individual number unless
    /// --release-individual-number.
    Auto,
    /// Ask on the terminal for each element.
    Ask,
}

#[derive(Args, Debug)]
pub struct PresentArgs {
    #[arg(long)]
    pub phone: PathBuf,
    /// Where the reader connects (the address goes into the engagement).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    #[arg(long, value_enum, default_value = "auto")]
    pub consent: ConsentArg,
    /// With --consent auto: also release the individual number if asked.
    #[arg(long)]
    pub release_individual_number: bool,
    /// Unlock the device key by the authentication PIN (optional: without
    /// --pin, --pin-file or --biometric the holder's presence unlocks it —
    /// running `present` under its --consent policy is the holder's act)…
    #[arg(long)]
    pub pin: Option<String>,
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
    /// …or a biometric (a sample file, or nothing for the enrolled finger).
    #[arg(long, num_args = 0..=1, conflicts_with_all = ["pin", "pin_file"])]
    pub biometric: Option<Option<PathBuf>>,
    /// Draw the engagement as a QR code on stderr: `auto` when stderr is a
    /// terminal.
    #[arg(long, value_enum, default_value = "auto")]
    pub qr: QrArg,
    /// Also write the engagement QR code as a PNG (for a kiosk screen).
    #[arg(long)]
    pub qr_png: Option<PathBuf>,
    /// How the phone proves it holds the device key (ISO 18013-5 §9.1.3):
    /// an ECDSA signature, or a MAC keyed by ECDH of the device key (inside
    /// the secure element) with the reader's ephemeral key.
    #[arg(long, value_enum, default_value = "signature")]
    pub device_auth: DeviceAuthArg,
    /// The reader CA certificate(s) (PEM) that authenticate readers (ISO
    /// 18013-5 §9.1.4). Default: the authority's reader CA stored at
    /// provisioning (PHONE/trusted-readers.pem). A signed request that does
    /// not verify under them is refused whole.
    #[arg(long)]
    pub trusted_readers: Option<PathBuf>,
    /// With --consent auto: release these elements (comma separated) only to
    /// an authenticated reader (the individual number always is).
    #[arg(long, value_delimiter = ',')]
    pub require_authenticated_reader: Vec<String>,
}

/// The authority's reader CA as the phone stores it at provisioning.
pub const TRUSTED_READERS_FILE: &str = "trusted-readers.pem";

/// Fetches the authority's reader CA into PHONE/trusted-readers.pem (best
/// effort: an authority without one leaves the phone trusting no reader).
fn store_trusted_readers(http: &mut Http, authority: &str, phone: &Path) -> anyhow::Result<()> {
    let resp = http
        .send(
            authority.trim_end_matches('/'),
            &HttpRequest::get("/ca/reader-ca.pem"),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if resp.status != 200 {
        anyhow::bail!("HTTP {}", resp.status);
    }
    let certs = shomei_pki::pem::pem_certificates(&resp.body);
    shomei_mdoc::reader_auth::TrustedReaderCas::new(certs.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in it");
    }
    let tmp = phone.join(format!(".{TRUSTED_READERS_FILE}.tmp"));
    std::fs::write(&tmp, &resp.body)?;
    std::fs::rename(&tmp, phone.join(TRUSTED_READERS_FILE))?;
    Ok(())
}

/// The authority's reader-CA CRL as the phone keeps it (fetched at
/// provisioning and `phone sync`, verified under the stored reader CA).
pub const READER_CRL_FILE: &str = "reader-ca.crl";

/// Fetches the authority's reader-CA CRL into PHONE/reader-ca.crl after
/// checking its signature under PHONE/trusted-readers.pem. On failure the
/// CRL kept before stays (it goes stale by itself).
fn store_reader_crl(http: &mut Http, authority: &str, phone: &Path) -> anyhow::Result<()> {
    let trust = crate::reader_cmd::trusted_readers(&phone.join(TRUSTED_READERS_FILE))?;
    let resp = http
        .send(
            authority.trim_end_matches('/'),
            &HttpRequest::get("/ca/reader-ca.crl"),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if resp.status != 200 {
        anyhow::bail!("HTTP {}", resp.status);
    }
    shomei_mdoc::reader_auth::ReaderCrl::verify(&resp.body, &trust)
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    let tmp = phone.join(format!(".{READER_CRL_FILE}.tmp"));
    std::fs::write(&tmp, &resp.body)?;
    std::fs::rename(&tmp, phone.join(READER_CRL_FILE))?;
    Ok(())
}

/// The stored reader-CA CRL, if there is one that verifies under `trust`.
fn stored_reader_crls(
    phone: &Path,
    trust: &shomei_mdoc::reader_auth::TrustedReaderCas,
) -> Vec<shomei_mdoc::reader_auth::ReaderCrl> {
    std::fs::read(phone.join(READER_CRL_FILE))
        .ok()
        .and_then(|der| shomei_mdoc::reader_auth::ReaderCrl::verify(&der, trust).ok())
        .into_iter()
        .collect()
}

/// `phone present --device-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceAuthArg {
    /// deviceSignature (COSE_Sign1, ES256).
    Signature,
    /// deviceMac (COSE_Mac0, HMAC-SHA256 with EMacKey).
    Mac,
}

/// When `phone present` draws the QR code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QrArg {
    Auto,
    Always,
    Never,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[arg(long)]
    pub phone: PathBuf,
    /// The login URL the relying party's page shows.
    #[arg(long)]
    pub url: String,
    /// The phone's authentication PIN.
    #[arg(long)]
    pub pin: Option<String>,
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
    /// Unlock with a biometric instead of the PIN: a sample file, or
    /// nothing for the finger enrolled (the simulator's sensor sees it).
    #[arg(long, num_args = 0..=1, conflicts_with_all = ["pin", "pin_file"])]
    pub biometric: Option<Option<PathBuf>>,
    /// The phone's signing password: needed when the relying party asks
    /// for name, address, birth date or sex.
    #[arg(long)]
    pub password: Option<String>,
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    #[arg(long)]
    pub authority: String,
    #[arg(long)]
    pub card: PathBuf,
    /// The card's signing password (verified on the card).
    #[arg(long)]
    pub card_password: Option<String>,
    #[arg(long)]
    pub card_password_file: Option<PathBuf>,
    /// The phone folder (created if missing).
    #[arg(long)]
    pub phone: PathBuf,
    /// The phone's new signing password: 6-16 of A-Z0-9.
    #[arg(long)]
    pub sign_password: Option<String>,
    #[arg(long)]
    pub sign_password_file: Option<PathBuf>,
    /// The phone's new authentication PIN: 4 digits.
    #[arg(long)]
    pub auth_pin: Option<String>,
    #[arg(long)]
    pub auth_pin_file: Option<PathBuf>,
    /// E-mail use notifications here.
    #[arg(long)]
    pub notify_email: Option<String>,
    /// Put the card's photo in the mobile ID (`portrait`): the phone reads
    /// the card face (券面AP) with PIN B — birth date YYMMDD + card expiry
    /// year YYYY + 4-digit security code — and the authority checks it is
    /// its own and this holder's. Without it the mobile ID has no portrait.
    #[arg(long, conflicts_with_all = ["face_pin_b_file", "face_pin_text", "face_pin_text_file"])]
    pub face_pin_b: Option<String>,
    #[arg(long, conflicts_with_all = ["face_pin_text", "face_pin_text_file"])]
    pub face_pin_b_file: Option<PathBuf>,
    /// …or with the text AP's 4-digit PIN (the card opens its face with the
    /// My Number, which the phone neither keeps nor sends).
    #[arg(long, conflicts_with = "face_pin_text_file")]
    pub face_pin_text: Option<String>,
    #[arg(long)]
    pub face_pin_text_file: Option<PathBuf>,
    /// The simulated secure-element manufacturer that makes a new phone
    /// (created if missing; the authority must trust its root). Default:
    /// the development manufacturer, which `authority init` trusts unless
    /// told `--no-development-manufacturer`.
    #[arg(long, env = "SHOMEI_MANUFACTURER")]
    pub manufacturer: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    #[arg(long)]
    pub phone: PathBuf,
    /// Which key: the signing key (password) or the authentication key (PIN or biometric).
    #[arg(long, value_enum, default_value = "sign")]
    pub kind: KindArg,
    /// The phone's signing password.
    #[arg(long)]
    pub password: Option<String>,
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub unlock: AuthUnlockArgs,
    #[arg(long = "in")]
    pub input: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

/// How the authentication key is unlocked: the PIN, or a biometric sample.
#[derive(Args, Debug)]
pub struct AuthUnlockArgs {
    /// The phone's authentication PIN.
    #[arg(long)]
    pub pin: Option<String>,
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
    /// A biometric sample (file) instead of the PIN.
    #[arg(long, conflicts_with_all = ["pin", "pin_file"])]
    pub biometric: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum BiometricCmd {
    /// Enrol a biometric (a template file); it works once the PIN was entered.
    Enrol {
        #[arg(long)]
        phone: PathBuf,
        #[arg(long)]
        template_file: PathBuf,
    },
    /// Replace the enrolment; biometric unlock stops until the PIN is entered again.
    Change {
        #[arg(long)]
        phone: PathBuf,
        #[arg(long)]
        template_file: PathBuf,
    },
    /// Remove the enrolment.
    Remove {
        #[arg(long)]
        phone: PathBuf,
    },
}

pub async fn run(cmd: PhoneCmd, json: bool) -> anyhow::Result<()> {
    // Secure-element work, RSA key generation and the blocking HTTP client
    // all belong off the async runtime.
    tokio::task::spawn_blocking(move || run_blocking(cmd, json))
        .await
        .context("the phone command panicked")?
}

fn run_blocking(cmd: PhoneCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        PhoneCmd::Provision(a) => provision(a, json),
        PhoneCmd::Status { phone } => status(&phone, json),
        PhoneCmd::Sign(a) => sign(a, json),
        PhoneCmd::Login(a) => login(a, json),
        PhoneCmd::Present(a) => present(a, json),
        PhoneCmd::Sync { phone } => {
            let mut p = open(&phone)?;
            let mut http = Http::new()?;
            let r = p.sync_at(&mut http, now()).map_err(phone_error)?;
            // The reader CA the phone trusts follows the authority's (a
            // renewed CA arrives here); a wiped phone trusts no reader.
            let readers = phone.join(TRUSTED_READERS_FILE);
            let readers_note = match (p.is_provisioned(), &p.state().registration) {
                (true, Some(reg)) => {
                    let authority = reg.authority.clone();
                    match store_trusted_readers(&mut http, &authority, &phone) {
                        Err(e) => Some(format!("the reader CA was not refreshed ({e:#})")),
                        Ok(()) => store_reader_crl(&mut http, &authority, &phone)
                            .err()
                            .map(|e| format!("the reader CRL was not refreshed ({e:#})")),
                    }
                }
                _ => {
                    let _ = std::fs::remove_file(&readers);
                    let _ = std::fs::remove_file(phone.join(READER_CRL_FILE));
                    None
                }
            };
            let certs: Vec<_> = r
                .certificates
                .iter()
                .map(|(s, st)| json!({"serial": s, "status": st}))
                .collect();
            let mut lines = vec![format!("status at the authority: {}", r.status)];
            if r.wiped_now {
                lines.push(
                    "the authority ordered a wipe: keys, PINs and certificates were erased".into(),
                );
            }
            if p.state().wipe.is_some() {
                lines.push(format!(
                    "wipe {} by the authority",
                    if r.wipe_confirmed {
                        "recorded"
                    } else {
                        "not yet recorded"
                    }
                ));
            }
            for (s, st) in &r.certificates {
                lines.push(format!("certificate {s}: {st}"));
            }
            if r.mdoc_refreshed {
                lines.push("mobile ID refreshed".into());
            }
            if let Some(n) = readers_note {
                lines.push(n);
            }
            for n in &r.new_notifications {
                lines.push(format!(
                    "notification #{}: {} {}{}",
                    n.id,
                    n.at,
                    n.action,
                    n.serial
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ));
            }
            emit(
                json,
                &json!({
                    "status": r.status, "wiped": r.wiped_now,
                    "wipe_confirmed": p.state().wipe.map(|_| r.wipe_confirmed),
                    "provisioned": p.is_provisioned(),
                    "certificates": certs,
                    "new_notifications": r.new_notifications,
                    "inbox": p.state().inbox.len(),
                }),
                &lines.join("\n"),
            );
            Ok(())
        }
        PhoneCmd::Retire { phone, unlock } => {
            let mut p = open(&phone)?;
            let mut http = Http::new()?;
            let (pin, sample) = auth_secret(&unlock)?;
            let r = p
                .retire(&mut http, auth_unlock(&pin, &sample)?)
                .map_err(phone_error)?;
            emit(
                json,
                &json!({"device_id": r.device_id, "revoked": r.revoked, "wiped": true, "wipe_confirmed": r.wipe_confirmed}),
                &format!(
                    "phone {} retired: certificates {} revoked; keys, PINs and certificates erased{}",
                    r.device_id,
                    r.revoked.join(", "),
                    if r.wipe_confirmed {
                        ""
                    } else {
                        " (the authority will hear of the wipe at the next sync)"
                    }
                ),
            );
            Ok(())
        }
        PhoneCmd::Biometric(c) => {
            let (phone, template, verb) = match &c {
                BiometricCmd::Enrol {
                    phone,
                    template_file,
                } => (
                    phone,
                    Some(read_file(template_file, "template")?),
                    "enrolled",
                ),
                BiometricCmd::Change {
                    phone,
                    template_file,
                } => (
                    phone,
                    Some(read_file(template_file, "template")?),
                    "changed",
                ),
                BiometricCmd::Remove { phone } => (phone, None, "removed"),
            };
            let mut p = open(phone)?;
            match (&c, &template) {
                (BiometricCmd::Enrol { .. }, Some(t)) => p.enrol_biometric(t),
                (BiometricCmd::Change { .. }, Some(t)) => p.change_biometric(t),
                _ => p.remove_biometric(),
            }
            .map_err(phone_error)?;
            // The simulated sensor now "sees" the enrolled finger, so a bare
            // `--biometric` unlock uses it.
            let sensor = phone.join(SENSOR_SAMPLE);
            match &template {
                Some(t) => std::fs::write(&sensor, t)
                    .with_context(|| format!("cannot write {}", sensor.display()))?,
                None => {
                    let _ = std::fs::remove_file(&sensor);
                }
            }
            let st = p.biometric_status();
            emit(
                json,
                &json!({"biometric": st}),
                &format!(
                    "biometric {verb}; {}",
                    match st {
                        shomei_secure_element::BiometricStatus::NotEnrolled => "none enrolled",
                        shomei_secure_element::BiometricStatus::Ready { .. } => "ready",
                        _ => "it unlocks the authentication key once the PIN has been entered",
                    }
                ),
            );
            Ok(())
        }
        PhoneCmd::Manufacturer { dir, trust } => {
            let m = manufacturer(&dir)?;
            let mut trusted = None;
            if let Some(authority) = trust {
                trusted = Some(trust_manufacturer(&m, &authority)?);
            }
            let root = dir.join(ROOT_CERT_FILE);
            emit(
                json,
                &json!({"dir": dir, "root": root, "trusted_in": trusted, "root_cn": shomei_se_sim::manufacturer::MANUFACTURER_ROOT_CN}),
                &match &trusted {
                    Some(p) => format!(
                        "manufacturer root {}\ntrusted by the authority as {} (restart `authority serve` to pick it up)",
                        root.display(),
                        p.display()
                    ),
                    None => format!(
                        "manufacturer root {}\nan authority trusts it from AUTHORITY/manufacturers/*.der",
                        root.display()
                    ),
                },
            );
            Ok(())
        }
    }
}

fn provision(a: ProvisionArgs, json: bool) -> anyhow::Result<()> {
    let card_password = card_cmd::secret(
        a.card_password,
        a.card_password_file.as_deref(),
        "card signing password",
    )?;
    let sign_password = card_cmd::new_secret(
        a.sign_password,
        a.sign_password_file.as_deref(),
        shomei_card::PinKind::Sign,
        "phone signing password",
    )?;
    let auth_pin = card_cmd::new_secret(
        a.auth_pin,
        a.auth_pin_file.as_deref(),
        shomei_card::PinKind::Auth,
        "phone authentication PIN",
    )?;
    let face_pin_b = match (a.face_pin_b, a.face_pin_b_file.as_deref()) {
        (None, None) => None,
        (p, f) => Some(card_cmd::secret(p, f, "card face PIN B")?),
    };
    let face_pin_text = match (a.face_pin_text, a.face_pin_text_file.as_deref()) {
        (None, None) => None,
        (p, f) => Some(card_cmd::secret(p, f, "card text AP PIN")?),
    };
    let portrait_note = if face_pin_b.is_some() || face_pin_text.is_some() {
        ", with the card's portrait"
    } else {
        ""
    };
    let face = match (&face_pin_b, &face_pin_text) {
        (Some(b), _) => Some(CardFaceSecret::PinB(b)),
        (None, Some(t)) => Some(CardFaceSecret::TextPin(t)),
        (None, None) => None,
    };
    let mut card = card_cmd::open(&a.card)?;
    let created = !Phone::exists(&a.phone);
    // A folder the holder made beforehand is theirs: emptied, never removed.
    let folder_existed = a.phone.exists();
    let mut phone = if created {
        let m = match &a.manufacturer {
            Some(dir) => manufacturer(dir)?,
            None => SimManufacturer::development()
                .map_err(|e| anyhow::anyhow!("the development manufacturer: {e}"))?,
        };
        Phone::create(&a.phone, &m, now()).map_err(phone_error)?
    } else {
        match Phone::open(&a.phone) {
            // The element wiped itself; the phone is empty and can be provisioned.
            Err(PhoneError::Tampered(_)) => Phone::open(&a.phone),
            other => other,
        }
        .map_err(phone_error)?
    };
    let mut http = Http::new()?;
    let req = ProvisionRequest {
        authority: &a.authority,
        card_password: &card_password,
        sign_password: &sign_password,
        auth_pin: &auth_pin,
        notify_email: a.notify_email.as_deref(),
    };
    let result = phone.provision_with_card_face(&mut card, &mut http, &req, face);
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            drop(phone);
            if created {
                // Nothing is left of a phone that never got its certificates
                // (only what `Phone::create` made is removed).
                let _ = std::fs::remove_dir_all(a.phone.join(shomei_phone::SE_DIR));
                let _ = std::fs::remove_file(a.phone.join(shomei_phone::WALLET_FILE));
                if !folder_existed {
                    let _ = std::fs::remove_dir(&a.phone);
                }
            }
            return Err(match &e {
                PhoneError::Refused { code, .. } if code == "untrusted_manufacturer" => {
                    Failure::input(match &a.manufacturer {
                        Some(dir) => format!(
                            "{e} (make the authority trust it: shomei phone manufacturer --dir {} --trust AUTHORITY_DIR)",
                            dir.display()
                        ),
                        None => format!(
                            "{e} (this authority does not trust the development manufacturer; give --manufacturer DIR and trust it with shomei phone manufacturer --dir DIR --trust AUTHORITY_DIR)"
                        ),
                    })
                }
                _ => phone_error(e),
            });
        }
    };
    if let Err(e) = store_trusted_readers(&mut http, &a.authority, &a.phone) {
        eprintln!(
            "warning: the authority's reader CA could not be stored ({e:#}): `phone present` will refuse signed requests unless given --trusted-readers"
        );
    } else if let Err(e) = store_reader_crl(&mut http, &a.authority, &a.phone) {
        eprintln!(
            "warning: the authority's reader CRL could not be stored ({e:#}): until `phone sync` fetches it, `phone present` treats signed readers as not authenticated"
        );
    }
    emit(
        json,
        &json!({
            "phone": a.phone, "device_id": out.device_id, "se_device_id": out.se_device_id,
            "holder_id": out.holder_id, "sign_serial": out.sign_serial, "auth_serial": out.auth_serial,
            "superseded_devices": out.superseded_devices,
            "mdoc": out.mdoc.as_ref().map(mdoc_json),
        }),
        &format!(
            "phone provisioned: {}\n  device {} (secure element {})\n  signing certificate {}\n  authentication certificate {}{}{}",
            a.phone.display(),
            out.device_id,
            out.se_device_id,
            out.sign_serial,
            out.auth_serial,
            out.mdoc.as_ref().map_or_else(
                || "\n  mobile ID: none yet (shomei phone sync fetches it)".to_owned(),
                |m| format!(
                    "\n  mobile ID {} valid until {} (status index {}){portrait_note}",
                    m.doc_type,
                    unix_rfc3339(m.valid_until),
                    m.status_idx
                )
            ),
            if out.superseded_devices.is_empty() {
                String::new()
            } else {
                format!(
                    "\n  earlier phone(s) revoked, wiped at their next sync: {}",
                    out.superseded_devices.join(", ")
                )
            }
        ),
    );
    Ok(())
}

fn status(path: &Path, json: bool) -> anyhow::Result<()> {
    let p = open(path)?;
    let st = p.state();
    let reg = st.registration.as_ref();
    let tries = |g| match p.gate_status(g) {
        shomei_secure_element::GateStatus::Active { tries_left } => tries_left,
        _ => 0,
    };
    let certs: Vec<_> = st
        .certificate_status
        .iter()
        .map(|(s, status)| json!({"serial": s, "status": status}))
        .collect();
    let wipe = st
        .wipe
        .map(|w| json!({"cause": w.cause, "confirmed": w.confirmed}));
    let value = json!({
        "phone": path,
        "token": "JPKIAPGPSETOKEN",
        "se_device_id": st.se_device_id,
        "provisioned": p.is_provisioned(),
        "authority": reg.map(|r| &r.authority),
        "device_id": reg.map(|r| &r.device_id),
        "holder_id": reg.map(|r| &r.holder_id),
        "sign_serial": reg.filter(|_| p.is_provisioned()).map(|r| &r.sign_serial),
        "auth_serial": reg.filter(|_| p.is_provisioned()).map(|r| &r.auth_serial),
        "authority_status": st.authority_status,
        "certificates": certs,
        "auth_pin": p.gate_status(GateId::AuthPin),
        "sign_password": p.gate_status(GateId::SignPassword),
        "auth_pin_tries_left": tries(GateId::AuthPin),
        "sign_password_tries_left": tries(GateId::SignPassword),
        "biometric": p.biometric_status(),
        "wipe": wipe,
        "inbox": st.inbox,
        "mdoc": st.mdoc.as_ref().map(mdoc_json),
    });
    let mut lines = vec![
        format!(
            "phone {} (secure element {})",
            path.display(),
            st.se_device_id
        ),
        match reg {
            Some(r) => format!(
                "device {} at {} (status {} at the last sync)",
                r.device_id,
                r.authority,
                st.authority_status.as_deref().unwrap_or("unknown")
            ),
            None => "not registered at an authority".into(),
        },
    ];
    match (reg, p.is_provisioned(), st.wipe) {
        (Some(r), true, _) => {
            lines.push(format!("signing certificate {}", r.sign_serial));
            lines.push(format!("authentication certificate {}", r.auth_serial));
        }
        (_, false, Some(w)) => lines.push(format!(
            "no certificates: {}{}",
            w.cause,
            if w.confirmed {
                ""
            } else {
                " (not yet recorded by the authority)"
            }
        )),
        _ => lines.push("no certificates: provision it from the card".into()),
    }
    lines.push(format!(
        "authentication PIN: {} of 3 tries left; signing password: {} of 5 tries left",
        tries(GateId::AuthPin),
        tries(GateId::SignPassword)
    ));
    lines.push(format!("biometric: {:?}", p.biometric_status()));
    lines.push(match &st.mdoc {
        Some(m) => format!(
            "mobile ID {} valid until {} (status index {})",
            m.doc_type,
            unix_rfc3339(m.valid_until),
            m.status_idx
        ),
        None => "no mobile ID".into(),
    });
    lines.push(format!("inbox: {} notification(s)", st.inbox.len()));
    emit(json, &value, &lines.join("\n"));
    Ok(())
}

fn sign(a: SignArgs, json: bool) -> anyhow::Result<()> {
    let content =
        std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let mut p = open(&a.phone)?;
    let p7s = match a.kind {
        KindArg::Sign => {
            if a.unlock.biometric.is_some() {
                return Err(Failure::input(
                    "a biometric never unlocks the signing key: give --password",
                ));
            }
            let pw = card_cmd::secret(
                a.password,
                a.password_file.as_deref(),
                "phone signing password",
            )?;
            p.sign_detached(&pw, &content, now())
        }
        KindArg::Auth => {
            let (pin, sample) = auth_secret(&a.unlock)?;
            p.sign_detached_auth(auth_unlock(&pin, &sample)?, &content, now())
        }
    }
    .map_err(phone_error)?;
    std::fs::write(&a.out, &p7s).with_context(|| format!("cannot write {}", a.out.display()))?;
    emit(
        json,
        &json!({"out": a.out, "bytes": p7s.len()}),
        &format!(
            "wrote detached CMS signature {} ({} bytes)",
            a.out.display(),
            p7s.len()
        ),
    );
    Ok(())
}

/// The simulated biometric sensor's current sample, in the phone folder.
const SENSOR_SAMPLE: &str = "sensor.sample";

/// `phone login`: answers a relying party's login challenge.
fn login(a: LoginArgs, json: bool) -> anyhow::Result<()> {
    let http = crate::login::client()?;
    let (offer, challenge) = crate::login::fetch_offer(&http, &a.url)?;
    let (pin, sample) = match &a.biometric {
        Some(Some(f)) => (String::new(), Some(read_file(f, "biometric sample")?)),
        Some(None) => (
            String::new(),
            Some(read_file(
                &a.phone.join(SENSOR_SAMPLE),
                "biometric sensor (enrol one first)",
            )?),
        ),
        None => (
            card_cmd::secret(
                a.pin.clone(),
                a.pin_file.as_deref(),
                "authentication PIN (or --biometric)",
            )?,
            None,
        ),
    };
    let password = match (&a.password, &a.password_file) {
        (None, None) => None,
        (p, f) => Some(card_cmd::secret(
            p.clone(),
            f.as_deref(),
            "phone signing password",
        )?),
    };
    if offer.needs_signing_key && password.is_none() {
        return Err(Failure::input(format!(
            "{} asks for {}: releasing them needs the signing password (--password)",
            offer.client_id,
            offer
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // The keys sign the domain-separated login messages, never the page's
    // bytes as they are (crate::login).
    let auth_msg = crate::login::auth_message(&offer, &challenge)?;
    let consent_msg = crate::login::consent_message(&offer, &challenge)?;
    let mut p = open(&a.phone)?;
    let auth = p
        .answer_challenge(auth_unlock(&pin, &sample)?, &auth_msg)
        .map_err(phone_error)?;
    let sign = match (&password, offer.needs_signing_key) {
        (Some(pw), true) => Some(p.consent_challenge(pw, &consent_msg).map_err(phone_error)?),
        _ => None,
    };
    drop(p);
    let method = if sample.is_some() { "biometric" } else { "pin" };
    let v = crate::login::post_answer(&http, &a.url, auth, sign, method)?;
    emit(
        json,
        &json!({"state": v["state"], "client_id": offer.client_id, "scopes": offer.scopes, "medium": v["medium"]}),
        &format!(
            "logged in to {} with the phone ({}); released: {}",
            offer.client_id,
            method,
            offer.scopes.join(" ")
        ),
    );
    Ok(())
}

/// `phone present`: one in-person presentation of the mobile ID.
fn present(a: PresentArgs, json: bool) -> anyhow::Result<()> {
    use shomei_mdoc::present::{ConsentPolicy, DeviceAuthKey, Presenter};
    // The contract form (`present --phone P`) names no secret: the holder's
    // presence unlocks the device key (a user-presence confirmation in the
    // secure element, no PIN, no key export); --pin/--biometric as before.
    let (pin, sample) = match &a.biometric {
        Some(Some(f)) => (None, Some(read_file(f, "biometric sample")?)),
        Some(None) => (
            None,
            Some(read_file(
                &a.phone.join(SENSOR_SAMPLE),
                "biometric sensor (enrol one first)",
            )?),
        ),
        None if a.pin.is_none() && a.pin_file.is_none() => (None, None),
        None => (
            Some(card_cmd::secret(
                a.pin.clone(),
                a.pin_file.as_deref(),
                "authentication PIN (or --biometric): it unlocks the mobile ID's device key",
            )?),
            None,
        ),
    };
    let how = match (&sample, &pin) {
        (Some(s), _) => AuthUnlock::Biometric(s),
        (None, Some(p)) => AuthUnlock::Pin(p),
        (None, None) => AuthUnlock::Presence,
    };
    let unlock_error = |e: PhoneError| match (&e, how) {
        (
            PhoneError::SecureElement(shomei_secure_element::SeError::WrongGate { .. }),
            AuthUnlock::Presence,
        ) => Failure::input(
            "this phone's mobile ID key predates presence unlock: give --pin (or --pin-file) or --biometric",
        ),
        _ => phone_error(e),
    };
    let mut p = open(&a.phone)?;
    let mdoc = p.mdoc().cloned().ok_or_else(|| {
        Failure::input("this phone holds no mobile ID (provision it again, or sync)")
    })?;
    // The device key stays in the secure element either way; one unlock.
    let signer;
    let agreement;
    let device_auth = match a.device_auth {
        DeviceAuthArg::Signature => {
            signer = p.mdoc_signer(how).map_err(unlock_error)?;
            DeviceAuthKey::Signature(&signer)
        }
        DeviceAuthArg::Mac => {
            agreement = p.mdoc_agreement(how).map_err(unlock_error)?;
            DeviceAuthKey::Mac(&agreement)
        }
    };
    let rt = tokio::runtime::Handle::current();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(a.listen))
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let trusted_readers = match &a.trusted_readers {
        Some(path) => crate::reader_cmd::trusted_readers(path)?,
        None if a.phone.join(TRUSTED_READERS_FILE).exists() => {
            crate::reader_cmd::trusted_readers(&a.phone.join(TRUSTED_READERS_FILE))?
        }
        None => shomei_mdoc::reader_auth::TrustedReaderCas::default(),
    };
    let consent = match a.consent {
        ConsentArg::Auto => ConsentPolicy::Auto {
            release_individual_number: a.release_individual_number,
            require_authenticated_reader: a.require_authenticated_reader.clone(),
        },
        ConsentArg::Ask => {
            ConsentPolicy::Ask(Box::new(|r: &shomei_mdoc::present::ConsentRequest<'_>| {
                use std::io::Write as _;
                // Names from a verified certificate; control characters were refused.
                let who = match r.reader {
                    Some(reader) => format!(
                        "the authenticated reader \"{}\"{}",
                        reader.display_name(),
                        reader
                            .organization
                            .as_deref()
                            .filter(|o| Some(*o) != reader.common_name.as_deref())
                            .map_or(String::new(), |o| format!(" ({o})"))
                    ),
                    None => "an unauthenticated reader".to_owned(),
                };
                eprint!(
                    "{who} asks for {}/{}{}: release it? [y/N] ",
                    r.namespace,
                    r.element,
                    if r.intent_to_retain {
                        " (and intends to keep it)"
                    } else {
                        ""
                    }
                );
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).is_ok()
                    && line.trim().eq_ignore_ascii_case("y")
            }))
        }
    };
    let mut rng = shomei_pki::SystemRandom::new();
    let mut presenter = Presenter::with_device_auth(
        &mdoc.issuer_signed,
        &mdoc.doc_type,
        device_auth,
        consent,
        vec![crate::mdoc_cmd::tcp_retrieval_method(addr)],
        &mut rng,
        now(),
    )
    .map_err(|e| anyhow::anyhow!("the mobile ID cannot be shown: {e} ({})", e.code()))?;
    // Reader revocation: the stored CRL when it verifies under the CAs in
    // use; without one (or a stale one) signed readers are not authenticated.
    let reader_crls = stored_reader_crls(&a.phone, &trusted_readers);
    presenter.trust_readers(trusted_readers, now());
    presenter.check_reader_revocation(reader_crls);
    // The contract: the engagement URI is the first line of stdout; the QR
    // code goes to stderr so it never mixes with the machine-readable lines.
    let uri = presenter.engagement_uri();
    if let Some(path) = &a.qr_png {
        std::fs::write(path, crate::qr::png(&uri)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    {
        use std::io::{IsTerminal as _, Write as _};
        let draw = match a.qr {
            QrArg::Always => true,
            QrArg::Never => false,
            QrArg::Auto => std::io::stderr().is_terminal(),
        };
        if draw {
            eprintln!(
                "{}show this to the reader (ISO 18013-5 device engagement)",
                crate::qr::terminal(&uri)?
            );
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{uri}")?;
        out.flush()?;
    }
    let released = rt.block_on(crate::mdoc_cmd::serve_one(&listener, &mut presenter))?;
    let names: Vec<String> = released.iter().map(|(ns, e)| format!("{ns}/{e}")).collect();
    let reader = presenter.reader();
    let not_checked = presenter.revocation_not_checked();
    emit(
        json,
        &json!({
            "released": names,
            "reader": {
                "authenticated": reader.is_some(),
                "name": reader.map(|r| r.display_name()),
                "organization": reader.and_then(|r| r.organization.as_deref()),
                "revocation_not_checked": not_checked,
            },
        }),
        &format!(
            "reader: {}\nreleased: {}",
            match (reader, not_checked) {
                (Some(r), _) => format!("{} (authenticated)", r.display_name()),
                (None, Some(why)) => format!(
                    "not authenticated: revocation not checked ({why}); elements for authenticated readers withheld"
                ),
                (None, None) => "not authenticated".to_owned(),
            },
            if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            }
        ),
    );
    Ok(())
}

/// The PIN or the biometric sample from the flags.
fn auth_secret(a: &AuthUnlockArgs) -> anyhow::Result<(String, Option<Vec<u8>>)> {
    match &a.biometric {
        Some(f) => Ok((String::new(), Some(read_file(f, "biometric sample")?))),
        None => Ok((
            card_cmd::secret(
                a.pin.clone(),
                a.pin_file.as_deref(),
                "authentication PIN (or --biometric)",
            )?,
            None,
        )),
    }
}

fn auth_unlock<'a>(pin: &'a str, sample: &'a Option<Vec<u8>>) -> anyhow::Result<AuthUnlock<'a>> {
    Ok(match sample {
        Some(s) => AuthUnlock::Biometric(s),
        None => AuthUnlock::Pin(pin),
    })
}

fn read_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Failure::input(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })
}

/// Opens a phone folder.
fn open(path: &Path) -> anyhow::Result<Phone> {
    if !Phone::exists(path) {
        return Err(Failure::input(format!("no phone at {}", path.display())));
    }
    Phone::open(path).map_err(phone_error)
}

/// Loads the simulated manufacturer in `dir`, creating it if missing.
pub fn manufacturer(dir: &Path) -> anyhow::Result<SimManufacturer> {
    if dir.join(ROOT_CERT_FILE).exists() {
        return SimManufacturer::load(dir).map_err(|e| {
            anyhow::anyhow!("cannot load the manufacturer in {}: {e}", dir.display())
        });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    SimManufacturer::create(dir, now())
        .map_err(|e| anyhow::anyhow!("cannot create a manufacturer in {}: {e}", dir.display()))
}

/// Copies the manufacturer's root into an authority folder's trust list.
pub fn trust_manufacturer(m: &SimManufacturer, authority: &Path) -> anyhow::Result<PathBuf> {
    if !authority.join("authority.json").exists() {
        return Err(Failure::input(format!(
            "{} is not an authority folder",
            authority.display()
        )));
    }
    let dir = authority.join(shomei_authority_server::home::MANUFACTURERS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let der = m.root_cert_der();
    // Named after the root's SHA-256 (the digest sits after the 19-byte
    // DigestInfo prefix), so trusting the same root twice is idempotent.
    let digest = shomei_pki::keys::sha256_digest_info(der);
    let name = format!(
        "sim-{}.der",
        hex::encode(digest.get(19..27).unwrap_or_default())
    );
    let path = dir.join(name);
    std::fs::write(&path, der).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Phone errors that are the user's input (wrong PIN, refused request…) exit with 2.
pub fn phone_error(e: PhoneError) -> anyhow::Error {
    if e.is_user_error() {
        Failure::input(e.to_string())
    } else {
        anyhow::anyhow!(e)
    }
}

/// Unix seconds as RFC 3339 (the number itself if out of range).
fn unix_rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// The mobile ID in `--json` output (no personal data: the elements stay in
/// the IssuerSigned).
fn mdoc_json(m: &shomei_phone::WalletMdoc) -> serde_json::Value {
    json!({"doc_type": m.doc_type, "valid_until": unix_rfc3339(m.valid_until), "status_idx": m.status_idx})
}

fn now() -> shomei_core::Timestamp {
    #[allow(clippy::disallowed_methods)] // the binary is where the clock is read
    time::OffsetDateTime::now_utc()
}

/// The authority link over HTTP (blocking client; run off the async runtime).
pub struct Http {
    client: reqwest::blocking::Client,
}

impl Http {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .context("cannot start the HTTP client")?,
        })
    }
}

impl AuthorityHttp for Http {
    fn send(&mut self, base: &str, req: &HttpRequest) -> Result<HttpResponse, PhoneError> {
        let url = format!("{base}{}", req.path);
        let mut r = match req.method {
            Method::Get => self.client.get(&url),
            Method::Post => self.client.post(&url),
        };
        if let Some(t) = &req.bearer {
            r = r.bearer_auth(t);
        }
        if let Some(j) = &req.json {
            r = r.json(j);
        }
        let resp = r
            .send()
            .map_err(|e| PhoneError::Http(format!("{base}: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .map_err(|e| PhoneError::Http(format!("{base}: {e}")))?
            .to_vec();
        Ok(HttpResponse { status, body })
    }
}
