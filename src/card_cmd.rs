//! `shomei card …`: the holder's side of the card, spoken only through APDUs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use shomei_card::{
    Card, CardError, CardSigner, CertKind, Certificates, FileMemory, InProcess, JpkiClient,
    KeyKind, PinKind, Transport, Variant,
};
use shomei_core::{BasicFour, BirthDate, Sex};

use crate::cli::{CardCmd, HolderActionArgs, KindArg};
use crate::output::{Failure, emit};

/// A card client over the in-process transport (PC/SC comes later).
/// A card client over any transport: the emulated card file, or a card on
/// a PC/SC reader (`--card pcsc:[READER]`).
pub type Client = JpkiClient<Box<dyn Transport + Send>>;

/// `--card` values starting with this name a PC/SC reader instead of a file.
pub const PCSC_PREFIX: &str = "pcsc:";

pub async fn run(cmd: CardCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        CardCmd::Issue {
            authority,
            operator_token_file,
            name,
            address,
            birth,
            sex,
            sign_password,
            sign_password_file,
            auth_pin,
            auth_pin_file,
            out,
            face,
        } => {
            let token = std::fs::read_to_string(&operator_token_file)
                .with_context(|| format!("cannot read {}", operator_token_file.display()))?;
            let holder = parse_holder(&name, &address, &birth, &sex)?;
            let sign_password = new_secret(
                sign_password,
                sign_password_file.as_deref(),
                shomei_card::PinKind::Sign,
                "signing password",
            )?;
            let auth_pin = new_secret(
                auth_pin,
                auth_pin_file.as_deref(),
                shomei_card::PinKind::Auth,
                "authentication PIN",
            )?;
            let face = face.resolve()?;
            let issued = issue_with(
                &authority,
                token.trim(),
                &holder,
                &sign_password,
                &auth_pin,
                &out,
                &face,
            )
            .await?;
            emit(
                json,
                &json!({"card": out, "card_id": issued.card_id, "holder_id": issued.holder_id, "sign_serial": issued.sign_serial, "auth_serial": issued.auth_serial, "card_face": issued.face}),
                &format!(
                    "card issued: {}\n  card id {}\n  signing certificate {}\n  authentication certificate {}",
                    out.display(),
                    issued.card_id,
                    issued
                        .sign_serial
                        .as_deref()
                        .unwrap_or("(none: holder under 15)"),
                    issued.auth_serial
                ),
            );
            Ok(())
        }
        CardCmd::ReadFace(args) => crate::face_cmd::read_face(args, json).await,
        CardCmd::ReadCert {
            card,
            kind,
            password,
            password_file,
            out,
        } => {
            let mut client = open(&card)?;
            let der = match kind {
                KindArg::Sign => {
                    let pw = secret(password, password_file.as_deref(), "signing password")?;
                    verify(&mut client, PinKind::Sign, &pw)?;
                    client
                        .read_certificate(CertKind::Sign)
                        .map_err(card_error)?
                }
                KindArg::Auth => client
                    .read_certificate(CertKind::Auth)
                    .map_err(card_error)?,
            };
            std::fs::write(&out, &der)
                .with_context(|| format!("cannot write {}", out.display()))?;
            emit(
                json,
                &json!({"out": out, "bytes": der.len()}),
                &format!("wrote {} ({} bytes)", out.display(), der.len()),
            );
            Ok(())
        }
        CardCmd::Login {
            card,
            url,
            pin,
            pin_file,
            password,
            password_file,
        } => {
            let pin = secret(pin, pin_file.as_deref(), "authentication PIN")?;
            let password = match (password, password_file) {
                (None, None) => None,
                (p, f) => Some(secret(p, f.as_deref(), "signing password")?),
            };
            tokio::task::spawn_blocking(move || login(&card, &url, &pin, password.as_deref(), json))
                .await
                .map_err(|e| anyhow::anyhow!("login task failed: {e}"))?
        }
        CardCmd::Sign {
            card,
            kind,
            password,
            password_file,
            pin,
            pin_file,
            input,
            out,
        } => {
            let content = std::fs::read(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let mut client = open(&card)?;
            let (pin_kind, key, cert) = match kind {
                KindArg::Sign => (PinKind::Sign, KeyKind::Sign, CertKind::Sign),
                KindArg::Auth => (PinKind::Auth, KeyKind::Auth, CertKind::Auth),
            };
            let secret = match kind {
                KindArg::Sign => secret(password, password_file.as_deref(), "signing password")?,
                KindArg::Auth => secret(pin, pin_file.as_deref(), "authentication PIN")?,
            };
            verify(&mut client, pin_kind, &secret)?;
            let cert_der = client.read_certificate(cert).map_err(card_error)?;
            let p7s = sign_with_card(client, key, &cert_der, &content)?;
            std::fs::write(&out, &p7s)
                .with_context(|| format!("cannot write {}", out.display()))?;
            emit(
                json,
                &json!({"out": out, "bytes": p7s.len()}),
                &format!(
                    "wrote detached CMS signature {} ({} bytes)",
                    out.display(),
                    p7s.len()
                ),
            );
            Ok(())
        }
        CardCmd::ServeVpcd { card, host, port } => {
            if !card.exists() {
                return Err(Failure::input(format!("no card at {}", card.display())));
            }
            let memory = FileMemory::exclusive(&card).map_err(card_error)?;
            let chip = Card::open(memory).map_err(card_error)?;
            if !json {
                eprintln!(
                    "serving {} to vpcd at {host}:{port} (Ctrl-C to stop)",
                    card.display()
                );
            }
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let verbose = !json;
            tokio::task::spawn_blocking(move || {
                shomei_card::vpcd::serve_vpcd_with_events(
                    chip,
                    &host,
                    port,
                    || stop.load(std::sync::atomic::Ordering::SeqCst),
                    |e| {
                        if verbose {
                            eprintln!("vpcd: {e:?}");
                        }
                    },
                )
            })
            .await?
            .map_err(card_error)?;
            emit(json, &json!({"stopped": true}), "");
            Ok(())
        }
        CardCmd::Suspend(a) => holder_action("suspend", a, json).await,
        CardCmd::Resume(a) => holder_action("resume", a, json).await,
        CardCmd::Revoke(a) => holder_action("revoke", a, json).await,
        CardCmd::Status { card } => {
            let mut client = open(&card)?;
            let st = client.status().map_err(card_error)?;
            let hex = |s: &Option<shomei_core::Serial>| s.as_ref().map(|s| s.to_hex());
            emit(
                json,
                &json!({
                    "token": format!("{:?}", st.token),
                    "auth_pin_tries_left": st.auth_tries_left,
                    "sign_password_tries_left": st.sign_tries_left,
                    "auth_serial": hex(&st.auth_serial),
                    "sign_serial": hex(&st.sign_serial),
                }),
                &format!(
                    "token: {:?}\nauthentication PIN: {} of 3 tries left\nsigning password: {} of 5 tries left\nauthentication certificate: {}\nsigning certificate: (read it with the password: shomei card read-cert --kind sign)",
                    st.token,
                    st.auth_tries_left,
                    st.sign_tries_left,
                    hex(&st.auth_serial).unwrap_or_else(|| "(none)".into())
                ),
            );
            Ok(())
        }
    }
}

/// Suspend / resume / revoke by the holder: the card's authentication key
/// signs a single-use authority challenge bound to the action and serial.
async fn holder_action(verb: &str, a: HolderActionArgs, json: bool) -> anyhow::Result<()> {
    let pin = secret(a.pin, a.pin_file.as_deref(), "authentication PIN")?;
    let mut client = open(&a.card)?;
    verify(&mut client, PinKind::Auth, &pin)?;
    let auth_cert = client
        .read_certificate(CertKind::Auth)
        .map_err(card_error)?;
    let target: shomei_core::Serial = match &a.serial {
        Some(s) => s
            .parse()
            .map_err(|e| Failure::input(format!("--serial: {e}")))?,
        None => client
            .status()
            .map_err(card_error)?
            .auth_serial
            .context("the card holds no authentication certificate")?,
    };
    let base = a.authority.trim_end_matches('/');
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/v1/challenges"))
        .send()
        .await
        .with_context(|| format!("cannot reach the authority at {base}"))?;
    let v: serde_json::Value = resp
        .json()
        .await
        .context("the authority answered with something other than JSON")?;
    let challenge = B64.decode(
        v["challenge"]
            .as_str()
            .context("no challenge in the answer")?,
    )?;
    let signer = CardSigner::new(client, KeyKind::Auth).map_err(card_error)?;
    let message = shomei_ca::holder_proof_message(verb, &target, &challenge);
    let signature =
        shomei_core::Signer::sign(&signer, &message).map_err(|e| anyhow::anyhow!("card: {e}"))?;
    let mut body = json!({"proof": {"certificate": B64.encode(&auth_cert), "challenge": B64.encode(&challenge), "signature": B64.encode(&signature)}});
    if verb == "revoke" {
        body["reason"] = json!(a.reason);
    }
    let resp = http
        .post(format!("{base}/v1/certificates/{}/{verb}", target.to_hex()))
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .await
        .context("the authority answered with something other than JSON")?;
    if !status.is_success() {
        let msg = format!(
            "the authority refused ({}): {}",
            v["code"].as_str().unwrap_or("unknown"),
            v["detail"].as_str().unwrap_or("no detail")
        );
        return Err(if status.is_client_error() {
            Failure::input(msg)
        } else {
            anyhow::anyhow!(msg)
        });
    }
    emit(
        json,
        &v,
        &format!(
            "{} is now {}",
            target.to_hex(),
            v["status"].as_str().unwrap_or("?")
        ),
    );
    Ok(())
}

/// Signs `content` with the card's `key` (PIN already verified): detached CMS.
pub fn sign_with_card(
    client: Client,
    key: KeyKind,
    cert_der: &[u8],
    content: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let signer = CardSigner::new(client, key).map_err(card_error)?;
    #[allow(clippy::disallowed_methods)] // the binary is where the clock is read
    let now = time::OffsetDateTime::now_utc();
    Ok(shomei_pki::cms::sign_detached(
        content,
        cert_der,
        &[],
        &signer,
        now,
    )?)
}

/// `card login`: the card answers a login challenge (blocking).
fn login(
    card: &Path,
    url: &str,
    pin: &str,
    password: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let http = crate::login::client()?;
    let (offer, challenge) = crate::login::fetch_offer(&http, url)?;
    if offer.needs_signing_key && password.is_none() {
        return Err(Failure::input(format!(
            "{} asks for the basic four: releasing them needs the card's signing password (--password)",
            offer.client_id
        )));
    }
    // The keys sign the domain-separated login messages, never the page's
    // bytes as they are (crate::login).
    let auth_msg = crate::login::auth_message(&offer, &challenge)?;
    let consent_msg = crate::login::consent_message(&offer, &challenge)?;
    let answer = |pin_kind: PinKind, secret: &str, cert: CertKind, key: KeyKind, msg: &[u8]| {
        let mut client = open(card)?;
        verify(&mut client, pin_kind, secret)?;
        let cert_der = client.read_certificate(cert).map_err(card_error)?;
        let signer = CardSigner::new(client, key).map_err(card_error)?;
        let sig =
            shomei_core::Signer::sign(&signer, msg).map_err(|e| anyhow::anyhow!("card: {e}"))?;
        anyhow::Ok((cert_der, sig))
    };
    let auth = answer(PinKind::Auth, pin, CertKind::Auth, KeyKind::Auth, &auth_msg)?;
    let sign = match (password, offer.needs_signing_key) {
        (Some(pw), true) => Some(answer(
            PinKind::Sign,
            pw,
            CertKind::Sign,
            KeyKind::Sign,
            &consent_msg,
        )?),
        _ => None,
    };
    let v = crate::login::post_answer(&http, url, auth, sign, "pin")?;
    emit(
        json,
        &json!({"state": v["state"], "client_id": offer.client_id, "scopes": offer.scopes, "medium": v["medium"]}),
        &format!(
            "logged in to {} with the card; released: {}",
            offer.client_id,
            offer.scopes.join(" ")
        ),
    );
    Ok(())
}

/// Opens a card: an emulated card file, or with `pcsc:` (first reader
/// holding a card with the JPKI AP) or `pcsc:READER NAME`, a card on a PC/SC
/// reader. Either way the JPKI AP is selected.
pub fn open(path: &Path) -> anyhow::Result<Client> {
    if let Some(reader) = path.to_str().and_then(|p| p.strip_prefix(PCSC_PREFIX)) {
        return open_pcsc((!reader.is_empty()).then_some(reader));
    }
    if !path.exists() {
        return Err(Failure::input(format!("no card at {}", path.display())));
    }
    let card = Card::open(FileMemory::new(path))
        .map_err(|e| anyhow::anyhow!("cannot open card {}: {e}", path.display()))?;
    let transport: Box<dyn Transport + Send> = Box::new(InProcess::new(card));
    let mut client = JpkiClient::new(transport);
    client.select_jpki().map_err(card_error)?;
    Ok(client)
}

#[cfg(feature = "pcsc")]
fn open_pcsc(reader: Option<&str>) -> anyhow::Result<Client> {
    let t = shomei_card::pcsc::PcscTransport::connect(reader).map_err(|e| match e {
        CardError::FileNotFound => Failure::input(format!(
            "the card in {} has no JPKI application (not a My Number Card)",
            reader.unwrap_or("the reader")
        )),
        other => anyhow::anyhow!("PC/SC: {other}"),
    })?;
    tracing::info!(reader = t.reader(), "card found by SELECT of the JPKI AP");
    let transport: Box<dyn Transport + Send> = Box::new(t);
    let mut client = JpkiClient::new(transport);
    client.select_jpki().map_err(card_error)?;
    Ok(client)
}

#[cfg(not(feature = "pcsc"))]
fn open_pcsc(_reader: Option<&str>) -> anyhow::Result<Client> {
    Err(Failure::input(
        "this shomei was built without PC/SC: build it with `cargo build --release --features pcsc` (needs libpcsclite-dev)",
    ))
}

/// Verifies a PIN, mapping wrong/blocked/badly formed PINs to exit code 2.
pub fn verify(client: &mut Client, kind: PinKind, pin: &str) -> anyhow::Result<()> {
    client.verify(kind, pin).map_err(card_error)
}

/// Card errors that are the user's input (wrong PIN…) exit with 2.
pub fn card_error(e: CardError) -> anyhow::Error {
    match e {
        CardError::WrongPin { .. }
        | CardError::Blocked
        | CardError::BadPinFormat(_)
        | CardError::BadFacePinFormat(_)
        | CardError::SecurityStatusNotSatisfied => Failure::input(e.to_string()),
        other => anyhow::anyhow!("card: {other}"),
    }
}

fn parse_holder(name: &str, address: &str, birth: &str, sex: &str) -> anyhow::Result<BasicFour> {
    let birth: BirthDate = birth
        .parse()
        .map_err(|e| Failure::input(format!("--birth: {e}")))?;
    let sex: Sex = sex
        .parse()
        .map_err(|e| Failure::input(format!("--sex: {e}")))?;
    BasicFour::new(name, address, birth, sex).map_err(|e| Failure::input(e.to_string()))
}

/// Entries a holder gets at the terminal for a new PIN or password.
const NEW_SECRET_ATTEMPTS: usize = 3;

/// A new PIN or password (one being set, not verified) from its flag or
/// file or, at a terminal, typed twice: a typo would set a secret the
/// holder does not know, and every later guess at it costs a counted try.
/// The format is checked at once, so a bad entry is asked again rather than
/// refused after the other prompts.
pub fn new_secret(
    flag: Option<String>,
    file: Option<&Path>,
    kind: shomei_card::PinKind,
    what: &str,
) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if flag.is_some() || file.is_some() || !std::io::stdin().is_terminal() {
        return secret(flag, file, what);
    }
    let rule = match kind {
        shomei_card::PinKind::Auth => "4 digits",
        shomei_card::PinKind::Sign => "6 to 16 of A-Z and 0-9",
    };
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map_err(|e| Failure::input(format!("cannot read the {what} at the prompt: {e}")))
    };
    for _ in 0..NEW_SECRET_ATTEMPTS {
        let first = ask(format!("new {what} ({rule}): "))?;
        if !kind.is_well_formed(first.as_bytes()) {
            eprintln!("that is not a {what}: {rule}. Try again.");
            continue;
        }
        if ask(format!("new {what} again: "))? == first {
            return Ok(first);
        }
        eprintln!("the two entries differ. Try again.");
    }
    Err(Failure::input(format!(
        "no {what} set: {NEW_SECRET_ATTEMPTS} entries were not a {rule} {what} typed twice alike"
    )))
}

/// A secret from its flag or file or, when neither is given and stdin is a
/// terminal, typed at a prompt on the terminal (rpassword: prompt and
/// input on /dev/tty, echo off, so stdout stays the command's output).
pub fn secret(flag: Option<String>, file: Option<&Path>, what: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    match (flag, file) {
        (Some(s), _) => Ok(s),
        (None, Some(f)) => Ok(std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the {what} file {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_owned()),
        (None, None) if std::io::stdin().is_terminal() => {
            let typed = rpassword::prompt_password(format!("{what}: ")).map_err(|e| {
                Failure::input(format!("cannot read the {what} at the prompt: {e}"))
            })?;
            if typed.is_empty() {
                return Err(Failure::input(format!("no {what} typed")));
            }
            Ok(typed)
        }
        (None, None) => Err(Failure::input(format!(
            "give the {what} (flag or file, or run on a terminal to be asked)"
        ))),
    }
}

/// What `card issue` produced.
pub struct Issued {
    pub card_id: String,
    pub holder_id: String,
    pub sign_serial: Option<String>,
    pub auth_serial: String,
    /// Card face facts printed on the card (expiry, security code, 製造番号);
    /// never the My Number.
    pub face: serde_json::Value,
}

/// Manufactures a card at `out`, has the authority enrol its holder from the
/// card-signed CSRs, and personalises the card with the certificates. Nothing
/// is left at `out` if any step fails.
pub async fn issue(
    authority: &str,
    token: &str,
    holder: &BasicFour,
    sign_password: &str,
    auth_pin: &str,
    out: &Path,
) -> anyhow::Result<Issued> {
    let face = crate::face_cmd::FaceOptions::default();
    issue_with(
        authority,
        token,
        holder,
        sign_password,
        auth_pin,
        out,
        &face,
    )
    .await
}

/// As [`issue`], with the card face options of `card issue`.
pub async fn issue_with(
    authority: &str,
    token: &str,
    holder: &BasicFour,
    sign_password: &str,
    auth_pin: &str,
    out: &Path,
    face: &crate::face_cmd::FaceOptions,
) -> anyhow::Result<Issued> {
    if out.exists() {
        return Err(Failure::input(format!(
            "{} already exists: choose another --out",
            out.display()
        )));
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let _ = std::fs::remove_file(&partial);
    let result = issue_into(
        authority,
        token,
        holder,
        sign_password,
        auth_pin,
        &partial,
        face,
    )
    .await;
    // The card was held exclusively through a sidecar lock file; it is free again now.
    if let (Some(dir), Some(name)) = (partial.parent(), partial.file_name()) {
        let _ = std::fs::remove_file(dir.join(format!(".{}.lock", name.to_string_lossy())));
    }
    match result {
        Ok(issued) => {
            std::fs::rename(&partial, out)
                .with_context(|| format!("cannot move the card to {}", out.display()))?;
            Ok(issued)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

async fn issue_into(
    authority: &str,
    token: &str,
    holder: &BasicFour,
    sign_password: &str,
    auth_pin: &str,
    path: &Path,
    face: &crate::face_cmd::FaceOptions,
) -> anyhow::Result<Issued> {
    let card = Card::manufacture(
        FileMemory::new(path),
        Variant::Card,
        sign_password,
        auth_pin,
    )
    .map_err(card_error)?;
    let mut client = JpkiClient::new(InProcess::new(card));
    client.select_jpki().map_err(card_error)?;
    #[allow(clippy::disallowed_methods)]
    let today = time::OffsetDateTime::now_utc().date();
    let adult = holder.birth_date().age_on(today) >= shomei_ca::SIGNING_MIN_AGE;
    // The CSRs are signed on the card, proving the keys live there.
    client.verify(PinKind::Auth, auth_pin).map_err(card_error)?;
    let signer = CardSigner::new(client, KeyKind::Auth).map_err(card_error)?;
    let auth_csr = shomei_pki::csr::build_csr(&signer, "shomei card authentication key")?;
    let mut client = signer.into_client();
    let sign_csr = if adult {
        client
            .verify(PinKind::Sign, sign_password)
            .map_err(card_error)?;
        let signer = CardSigner::new(client, KeyKind::Sign).map_err(card_error)?;
        let csr = shomei_pki::csr::build_csr(&signer, "shomei card signing key")?;
        client = signer.into_client();
        Some(csr)
    } else {
        None
    };
    let http = reqwest::Client::new();
    let base = authority.trim_end_matches('/');
    let mut body = json!({"holder": holder, "auth_csr": B64.encode(&auth_csr)});
    if let Some(csr) = &sign_csr {
        body["sign_csr"] = json!(B64.encode(csr));
    }
    face.add_to_request(&mut body);
    let resp = http
        .post(format!("{base}/v1/cards"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the authority at {base}"))?;
    let status = resp.status();
    let value: serde_json::Value = resp
        .json()
        .await
        .context("the authority answered with something other than JSON")?;
    if !status.is_success() {
        let detail = value["detail"].as_str().unwrap_or("no detail");
        let code = value["code"].as_str().unwrap_or("unknown");
        let msg = format!("the authority refused the enrolment ({code}): {detail}");
        return Err(if status.is_client_error() && status.as_u16() != 401 {
            Failure::input(msg)
        } else {
            anyhow::anyhow!(msg)
        });
    }
    let field = |k: &str| -> anyhow::Result<Vec<u8>> {
        let s = value[k]
            .as_str()
            .with_context(|| format!("authority response lacks {k}"))?;
        Ok(B64.decode(s)?)
    };
    let auth_cert = field("auth_cert")?;
    let sign_cert = if sign_csr.is_some() {
        field("sign_cert")?
    } else {
        Vec::new()
    };
    let sign_ca = fetch(&http, &format!("{base}/ca/sign.der")).await?;
    let auth_ca = fetch(&http, &format!("{base}/ca/auth.der")).await?;
    client
        .personalise(&Certificates {
            sign: &sign_cert,
            sign_ca: &sign_ca,
            auth: &auth_cert,
            auth_ca: &auth_ca,
        })
        .map_err(card_error)?;
    // The other APs' data, before ACTIVATE (which sets PIN A and B from it).
    let face_summary = crate::face_cmd::personalise(&mut client, &value, auth_pin, face)?;
    client.activate().map_err(card_error)?;
    let text = |k: &str| value[k].as_str().map(str::to_owned);
    let Some(card_id) = text("card_id") else {
        bail!("authority response lacks card_id")
    };
    Ok(Issued {
        card_id,
        holder_id: text("holder_id").unwrap_or_default(),
        sign_serial: text("sign_serial"),
        auth_serial: text("auth_serial").unwrap_or_default(),
        face: face_summary,
    })
}

async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let resp = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !resp.status().is_success() {
        bail!("GET {url}: {}", resp.status());
    }
    Ok(resp.bytes().await?.to_vec())
}
