//! `shomei sandbox`: the whole story as far as it exists, step by step, on
//! an embedded authority (SQLite) in a fresh folder.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::json;
use shomei_authority_server::SystemClock;
use shomei_authority_server::home::{Home, InitOptions};
use shomei_card::{CertKind, KeyKind, PinKind};
use shomei_core::{BasicFour, Sex};

use crate::card_cmd;
use crate::cli::SandboxArgs;
use crate::phone_cmd;

pub(crate) struct Story {
    json: bool,
    step: usize,
    log: Vec<serde_json::Value>,
}

impl Story {
    pub(crate) fn step(&mut self, title: &str, lines: &[String]) {
        self.step += 1;
        if !self.json {
            println!("\n[{}] {title}", self.step);
            for l in lines {
                println!("    {l}");
            }
        }
        self.log
            .push(json!({"step": self.step, "title": title, "details": lines}));
    }
}

pub async fn run(args: SandboxArgs, json: bool) -> anyhow::Result<()> {
    let dir = match &args.data {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("shomei-sandbox-{}", std::process::id())),
    };
    let mut story = Story {
        json,
        step: 0,
        log: Vec::new(),
    };
    // The URLs go into the certificates, so pick the port first.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let auth_dir = dir.join("authority");
    std::fs::create_dir_all(&dir)?;
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    Home::init(
        &auth_dir,
        &InitOptions {
            name: "Shomei Sandbox Authority".into(),
            base_url: base.clone(),
            crl_shards: 4,
            manufacturer_roots: vec![],
        },
        now,
    )
    .with_context(|| {
        format!(
            "cannot create the sandbox authority in {}",
            auth_dir.display()
        )
    })?;
    // The phone's secure elements come from a simulated manufacturer whose
    // root the authority trusts for key attestation.
    let mfr_dir = dir.join("se-manufacturer");
    let manufacturer = phone_cmd::manufacturer(&mfr_dir)?;
    let state = shomei_authority_server::load_with(
        &auth_dir,
        None,
        Arc::new(SystemClock),
        shomei_authority_server::Options {
            manufacturer_roots: vec![manufacturer.root_cert_der().to_vec()],
            ..Default::default()
        },
    )
    .await?;
    let running =
        shomei_authority_server::serve(state, SocketAddr::from(([127, 0, 0, 1], port))).await?;
    story.step(
        "The authority starts (the J-LIS role)",
        &[
            format!("folder {}: two RSA-2048 roots (signing, authentication), OCSP responders, SQLite registry", auth_dir.display()),
            format!("listening on {base}; trust anchors at {base}/ca/sign.pem and {base}/ca/auth.pem"),
        ],
    );

    let token = std::fs::read_to_string(auth_dir.join("operator.token"))?;
    let holder = BasicFour::new(
        "山田 花子",
        "東京都千代田区千代田1-1",
        "1990-04-01".parse()?,
        Sex::Female,
    )?;
    let card_path = dir.join("hanako.card");
    let _ = std::fs::remove_file(&card_path);
    let issued = card_cmd::issue(
        &base,
        token.trim(),
        &holder,
        "HANAKO2026",
        "1234",
        &card_path,
    )
    .await?;
    let sign_serial = issued
        .sign_serial
        .clone()
        .context("an adult holder gets a signing certificate")?;
    story.step(
        "A holder is enrolled and her card is issued",
        &[
            "the card generates two RSA-2048 keys on the chip; they never leave it".into(),
            "the card signs both CSRs (after VERIFY of the PIN and the signing password)".into(),
            format!("the authority issues signing certificate {sign_serial} (with the basic four) and authentication certificate {}", issued.auth_serial),
            format!("the card is personalised with them and closed for writing: {}", card_path.display()),
        ],
    );

    // A clinic's reception reads the card face with the 4-digit PIN
    // (券面事項入力補助AP) and checks the authority's face signature.
    let face_key = crate::face_cmd::fetch_face_key(&base).await?;
    let mut client = card_cmd::open(&card_path)?;
    let read = client
        .read_card_face(shomei_card::FaceRead::TextPin("1234"))
        .map_err(card_cmd::card_error)?;
    let face = shomei_pki::cardface::verify_face(&read.face, &face_key)
        .map_err(|e| anyhow::anyhow!("the card face does not verify: {e}"))?;
    drop(client);
    story.step(
        "A clinic checks her in from the card face",
        &[
            format!(
                "with the 4-digit PIN the 券面事項入力補助AP gives {} / {} / born {} / sex {}",
                read.attributes.name, read.attributes.address, read.attributes.birth, read.attributes.sex
            ),
            format!(
                "the 券面AP's face (name and address images, photo) carries the authority's signature: valid; card expiry {}",
                face.expiry
            ),
            "the My Number was read by the card client but is never shown or stored here".into(),
        ],
    );

    let doc = dir.join("application.txt");
    std::fs::write(&doc, "転入届 / moving-in notification\n")?;
    let mut client = card_cmd::open(&card_path)?;
    card_cmd::verify(&mut client, PinKind::Sign, "HANAKO2026")?;
    let cert = client
        .read_certificate(CertKind::Sign)
        .map_err(card_cmd::card_error)?;
    let p7s = card_cmd::sign_with_card(client, KeyKind::Sign, &cert, &std::fs::read(&doc)?)?;
    let sig_path = dir.join("application.txt.p7s");
    std::fs::write(&sig_path, &p7s)?;
    story.step(
        "She signs an application with the card",
        &[
            format!("{} → {} (detached CMS SignedData, {} bytes)", doc.display(), sig_path.display(), p7s.len()),
            format!(
                "check it yourself: openssl cms -verify -binary -inform DER -in {} -content {} -CAfile {}/ca/sign.pem -purpose any",
                sig_path.display(),
                doc.display(),
                auth_dir.display()
            ),
        ],
    );

    let verified = shomei_pki::cms::verify_detached(&p7s, &std::fs::read(&doc)?)?;
    shomei_pki::cms::check_issued_by(&verified.signer_cert_der, &running.state.sign_root_der)
        .context("the signer certificate does not chain to the signing root")?;
    let status = ocsp_status(
        &base,
        &verified.signer_cert_der,
        &running.state.sign_root_der,
    )
    .await?;
    story.step(
        "A relying party checks the signature",
        &[
            "the CMS signature and message digest verify, the signer certificate chains to the signing root".into(),
            format!("OCSP at {base}/ocsp/sign says: {status}"),
        ],
    );
    if status != "good" {
        bail!("expected a good certificate, OCSP said {status}");
    }

    let phones = phone_story(&mut story, &dir, &base, &card_path, &manufacturer, &running).await?;

    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/v1/certificates/{sign_serial}/revoke"))
        .bearer_auth(token.trim())
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "revocation failed: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let started = std::time::Instant::now();
    let status = ocsp_status(
        &base,
        &verified.signer_cert_der,
        &running.state.sign_root_der,
    )
    .await?;
    let ocsp_ms = started.elapsed().as_millis();
    let class = running
        .state
        .status
        .class_of(&sign_serial.parse()?)
        .context("the authority knows its certificate")?;
    let shard = sign_serial
        .parse::<shomei_core::Serial>()?
        .shard(running.state.authority.config().crl_shards);
    let crl_url = running
        .state
        .authority
        .config()
        .points
        .crl_url(class, shard);
    let crl = http.get(&crl_url).send().await?.bytes().await?;
    let listed = shomei_pki::crl::parse_crl_summary(&crl)?;
    let phone_status =
        ocsp_status(&base, &phones.new_sign_cert, &running.state.sign_root_der).await?;
    story.step(
        "The operator revokes the card's signing certificate (keyCompromise)",
        &[
            format!(
                "OCSP now says: {status} (answered {ocsp_ms} ms after the revoke call returned)"
            ),
            format!("the phone signing certificate derived from it ends with it: OCSP says {phone_status}"),
            format!(
                "CRL shard {crl_url}: CRL number {}, {} entr{} listed",
                listed.crl_number,
                listed.entries,
                if listed.entries == 1 { "y" } else { "ies" }
            ),
        ],
    );
    if !status.starts_with("revoked") {
        bail!("expected the certificate to be revoked, OCSP said {status}");
    }

    if json {
        println!(
            "{}",
            json!({"data": dir, "authority": base, "steps": story.log})
        );
    }
    if args.serve {
        if !json {
            println!(
                "\nservices left running (Ctrl-C to stop):\n    authority {base}\n    OpenAPI   {base}/openapi.json\n    relying party (OpenID Connect) {}/.well-known/openid-configuration",
                phones.rp.running.issuer
            );
        }
        running.wait().await;
    } else {
        phones.rp.running.stop().await;
        running.stop().await;
        if !json {
            println!("\ndone. Files are in {}", dir.display());
        }
    }
    Ok(())
}

/// What the phone part of the story leaves for the rest of it.
struct Phones {
    /// The new phone's signing certificate (DER).
    new_sign_cert: Vec<u8>,
    /// The demo relying party (its OpenID Connect provider).
    rp: crate::sandbox_rp::RelyingParty,
}

/// Put the card on a phone, use it, lose it, recover on a new phone from
/// the card, and watch the old phone wipe itself.
async fn phone_story(
    story: &mut Story,
    dir: &std::path::Path,
    base: &str,
    card_path: &std::path::Path,
    manufacturer: &shomei_se_sim::SimManufacturer,
    running: &shomei_authority_server::RunningAuthority,
) -> anyhow::Result<Phones> {
    use shomei_phone::{CardFaceSecret, Phone, ProvisionRequest};

    let sign_root = running.state.sign_root_der.clone();
    let provision = |name: &str| {
        let path = dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        let card = card_path.to_path_buf();
        let base = base.to_owned();
        #[allow(clippy::disallowed_methods)]
        let now = time::OffsetDateTime::now_utc();
        let phone = Phone::create(&path, manufacturer, now).map_err(phone_cmd::phone_error);
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut phone = phone?;
            let mut card = card_cmd::open(&card)?;
            // She also brings the portrait from the card face (read with
            // the face PIN), for in-person checks of the mobile ID.
            let out = phone
                .provision_with_card_face(
                    &mut card,
                    &mut phone_cmd::Http::new()?,
                    &ProvisionRequest {
                        authority: &base,
                        card_password: "HANAKO2026",
                        sign_password: "HANAKOPHONE1",
                        auth_pin: "2468",
                        notify_email: None,
                    },
                    Some(CardFaceSecret::TextPin("1234")),
                )
                .map_err(phone_cmd::phone_error)?;
            let cert = phone.state().certificates.sign.clone();
            Ok((path, out, cert))
        })
    };

    let (old_path, old, old_cert) = provision("phone-old").await??;
    story.step(
        "She puts the card on her phone (one step)",
        &[
            "the phone reads the card over APDUs; the card's signing password is verified on the card".into(),
            "with the face PIN it also reads the card face, so the mobile ID can carry her portrait (the authority checks its own face signature and that it is hers)".into(),
            format!("the phone's secure element ({}) makes two RSA-2048 keys inside, attested by the simulated manufacturer; the phone sets its own password and PIN", old.se_device_id),
            "the card's signing key signs the provisioning message (challenge, device, both public keys)".into(),
            format!("the authority issues phone signing certificate {} and authentication certificate {} (device {})", old.sign_serial, old.auth_serial, old.device_id),
            format!("the phone's JPKI applet answers as token JPKIAPGPSETOKEN: {}", old_path.display()),
        ],
    );

    let doc = dir.join("phone-application.txt");
    std::fs::write(
        &doc,
        "住民票の写しの交付請求 / request for a residence certificate\n",
    )?;
    let content = std::fs::read(&doc)?;
    let sign_path = old_path.clone();
    let p7s = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut phone = Phone::open(&sign_path).map_err(phone_cmd::phone_error)?;
        #[allow(clippy::disallowed_methods)]
        let now = time::OffsetDateTime::now_utc();
        phone
            .sign_detached("HANAKOPHONE1", &content, now)
            .map_err(phone_cmd::phone_error)
    })
    .await??;
    let sig_path = dir.join("phone-application.txt.p7s");
    std::fs::write(&sig_path, &p7s)?;
    let verified = shomei_pki::cms::verify_detached(&p7s, &std::fs::read(&doc)?)?;
    shomei_pki::cms::check_issued_by(&verified.signer_cert_der, &sign_root)
        .context("the phone certificate does not chain to the signing root")?;
    let good = ocsp_status(base, &verified.signer_cert_der, &sign_root).await?;
    story.step(
        "She signs with the phone",
        &[
            format!(
                "{} → {} (detached CMS, phone signing certificate {})",
                doc.display(),
                sig_path.display(),
                old.sign_serial
            ),
            format!("the signature verifies and chains to the signing root; OCSP says: {good}"),
        ],
    );
    if good != "good" {
        bail!("expected a good phone certificate, OCSP said {good}");
    }

    let token = std::fs::read_to_string(dir.join("authority").join("operator.token"))?;
    let rp = crate::sandbox_rp::chapter(
        story,
        base,
        token.trim(),
        &old_path,
        "HANAKOPHONE1",
        "2468",
        (&std::fs::read(&doc)?, &p7s),
    )
    .await?;
    crate::sandbox_rp::history(story, base, token.trim(), &old.holder_id).await?;
    let auth_dir = dir.join("authority");
    crate::sandbox_mdoc::chapter(story, &old_path, "2468", (base, token.trim(), &auth_dir)).await?;

    let http = reqwest::Client::new();
    for serial in [&old.sign_serial, &old.auth_serial] {
        let resp = http
            .post(format!("{base}/v1/certificates/{serial}/suspend"))
            .bearer_auth(token.trim())
            .json(&json!({}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!(
                "suspension failed: {}",
                resp.text().await.unwrap_or_default()
            );
        }
    }
    let held = ocsp_status(base, &old_cert, &sign_root).await?;
    story.step(
        "She loses the phone: the operator suspends its certificates",
        &[
            format!(
                "{} and {} suspended (reversible, as a hold)",
                old.sign_serial, old.auth_serial
            ),
            format!("OCSP for the phone signing certificate now says: {held}"),
        ],
    );
    if !held.contains("certificateHold") {
        bail!("expected certificateHold, OCSP said {held}");
    }
    crate::sandbox_mdoc::refused_when_lost(story, &old_path, "2468", &auth_dir).await?;

    let (new_path, new, new_cert) = provision("phone-new").await??;
    let old_now = ocsp_status(base, &old_cert, &sign_root).await?;
    let new_now = ocsp_status(base, &new_cert, &sign_root).await?;
    story.step(
        "She recovers on a new phone from the card (one provisioning)",
        &[
            format!("new device {}: signing certificate {} (OCSP: {new_now})", new.device_id, new.sign_serial),
            format!("the old phone {} is superseded: its signing certificate is now {old_now}; a wipe is queued for it", old.device_id),
            format!("the new phone: {}", new_path.display()),
        ],
    );
    if new.superseded_devices != [old.device_id.clone()] {
        bail!(
            "unexpected superseded devices: {:?}",
            new.superseded_devices
        );
    }

    let sync_path = old_path.clone();
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut phone = Phone::open(&sync_path).map_err(phone_cmd::phone_error)?;
        let r = phone
            .sync(&mut phone_cmd::Http::new()?)
            .map_err(phone_cmd::phone_error)?;
        Ok((r, phone.is_provisioned()))
    })
    .await??;
    story.step(
        "The old phone comes back online and syncs",
        &[
            format!("the authority says: {} (wipe ordered)", report.0.status),
            format!(
                "the phone erased its keys, PINs and certificates: {}; the authority recorded the wipe: {}",
                if report.0.wiped_now && !report.1 { "yes" } else { "no" },
                if report.0.wipe_confirmed { "yes" } else { "no" }
            ),
        ],
    );
    if !report.0.wiped_now || report.1 {
        bail!("the old phone did not wipe itself: {:?}", report.0);
    }
    Ok(Phones {
        new_sign_cert: new_cert,
        rp,
    })
}

/// Asks the authority's OCSP responder (POST) about a certificate.
async fn ocsp_status(base: &str, cert: &[u8], issuer: &[u8]) -> anyhow::Result<String> {
    let req = shomei_pki::ocsp::build_request(
        cert,
        issuer,
        shomei_pki::ocsp::CertIdHash::Sha256,
        Some(b"sandbox-nonce-01"),
    )?;
    let resp = reqwest::Client::new()
        .post(format!("{base}/ocsp/sign"))
        .header("content-type", "application/ocsp-request")
        .body(req)
        .send()
        .await?
        .bytes()
        .await?;
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    let summary = shomei_pki::ocsp::parse_response(&resp, issuer, now)?;
    if summary.nonce.as_deref() != Some(b"sandbox-nonce-01".as_slice()) {
        bail!("the OCSP responder did not echo our nonce");
    }
    let first = summary.statuses.first().context("empty OCSP response")?;
    Ok(match &first.state {
        shomei_pki::ocsp::CertState::Good => "good".to_owned(),
        shomei_pki::ocsp::CertState::Revoked { reason, .. } => {
            format!("revoked ({})", reason.as_str())
        }
        shomei_pki::ocsp::CertState::Unknown => "unknown".to_owned(),
    })
}
