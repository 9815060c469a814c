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

struct Story {
    json: bool,
    step: usize,
    log: Vec<serde_json::Value>,
}

impl Story {
    fn step(&mut self, title: &str, lines: &[String]) {
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
        },
        now,
    )
    .with_context(|| {
        format!(
            "cannot create the sandbox authority in {}",
            auth_dir.display()
        )
    })?;
    let state = shomei_authority_server::load(&auth_dir, None, Arc::new(SystemClock)).await?;
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
    story.step(
        "The operator revokes the signing certificate (keyCompromise)",
        &[
            format!(
                "OCSP now says: {status} (answered {ocsp_ms} ms after the revoke call returned)"
            ),
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
                "\nservices left running (Ctrl-C to stop):\n    authority {base}\n    OpenAPI   {base}/openapi.json"
            );
        }
        running.wait().await;
    } else {
        running.stop().await;
        if !json {
            println!("\ndone. Files are in {}", dir.display());
        }
    }
    Ok(())
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
