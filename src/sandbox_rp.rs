//! The sandbox's relying-party chapter: a demo relying party registers
//! with the authority, the holder logs in to it with her phone, her signed
//! application is verified, and the login shows in her history.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use shomei_rp_service::{Config, StatusMode, oidc::Client};

use crate::sandbox::Story;

/// The demo relying party's redirect URI (nothing listens there; the
/// sandbox reads the code from the redirect).
const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// What the chapter leaves running.
pub struct RelyingParty {
    pub running: shomei_rp_service::RunningVerifier,
}

/// Runs the chapter with the provisioned phone at `phone_path`.
pub async fn chapter(
    story: &mut Story,
    base: &str,
    operator_token: &str,
    phone_path: &Path,
    phone_password: &str,
    phone_pin: &str,
    doc: (&[u8], &[u8]),
) -> anyhow::Result<RelyingParty> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // 1. The relying party registers with the authority (for linkage).
    let reg: Value = http
        .post(format!("{base}/v1/relying-parties"))
        .bearer_auth(operator_token)
        .json(&json!({"name": "demo-bank"}))
        .send()
        .await?
        .error_for_status()
        .context("registering the relying party")?
        .json()
        .await?;
    let rp_token = reg["token"]
        .as_str()
        .context("no relying-party token")?
        .to_owned();
    let running = shomei_rp_service::start(
        Config {
            authority: base.to_owned(),
            listen: "127.0.0.1:0".parse()?,
            issuer: None,
            clients: vec![Client::parse(&format!("demo-bank={REDIRECT}"))?],
            mode: StatusMode::Ocsp,
            linkage_token: Some(rp_token),
            jpki: false,
        },
        Arc::new(shomei_pki::EcdsaP256Signer::generate()?),
        shomei_rp_service::system_clock(),
    )
    .await?;
    let issuer = running.issuer.clone();
    story.step(
        "A bank sets up \"log in with My Number\"",
        &[
            format!("it registers with the authority as relying party {} (linkage: stable customer ids across renewals and phone changes)", reg["id"].as_str().unwrap_or("?")),
            format!("its OpenID Connect provider runs at {issuer} (discovery: {issuer}/.well-known/openid-configuration)"),
        ],
    );

    // 2. Log in with the phone: authorization code flow with PKCE.
    let flow = crate::oidc_demo::CodeFlow {
        http: &http,
        issuer: &issuer,
        client_id: "demo-bank",
        redirect: REDIRECT,
        verifier: "sandbox-pkce-verifier-0123456789abcdefghijklmnopqrstuvwxyz",
    };
    let (login_url, ch, consent) = flow
        .authorize("openid name birthdate", "sandbox-state", "sandbox-nonce")
        .await?;
    let (path, pw, pin) = (
        phone_path.to_path_buf(),
        phone_password.to_owned(),
        phone_pin.to_owned(),
    );
    let ((auth_cert, auth_sig), (sign_cert, sign_sig)) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut phone =
                shomei_phone::Phone::open(&path).map_err(crate::phone_cmd::phone_error)?;
            let a = phone
                .answer_challenge(shomei_phone::AuthUnlock::Pin(&pin), &ch)
                .map_err(crate::phone_cmd::phone_error)?;
            let s = phone
                .consent_challenge(&pw, &consent)
                .map_err(crate::phone_cmd::phone_error)?;
            Ok((a, s))
        })
        .await??;
    flow.answer(
        &login_url,
        (&auth_cert, &auth_sig),
        Some((&sign_cert, &sign_sig)),
    )
    .await?;
    let claims = flow.redeem(&login_url).await?;
    story.step(
        "She logs in to the bank with her phone",
        &[
            format!("the bank's page shows a login URL; the phone reads its single-use challenge ({login_url})"),
            "the phone signs it with its authentication key (PIN) and, to release her name and birth date, with its signing key (signing password)".into(),
            "the provider checks both chains, asks OCSP (nonce) and the authority's linkage, then redirects with a code".into(),
            format!(
                "the bank redeems the code with its PKCE verifier: ES256 ID token for sub {} — name {}, birthdate {}, via {}",
                claims["sub"].as_str().unwrap_or("?"),
                claims["name"].as_str().unwrap_or("?"),
                claims["birthdate"].as_str().unwrap_or("?"),
                claims["shomei_medium"].as_str().unwrap_or("?"),
            ),
        ],
    );
    if claims["nonce"] != "sandbox-nonce" || claims["shomei_medium"] != "phone" {
        bail!("unexpected ID token claims: {claims}");
    }

    // 3. The signed application, verified by the relying party.
    let report = running.state.verifier.verify_signature(doc.1, doc.0).await;
    if !report.valid {
        bail!(
            "the phone-signed application did not verify: {:?}",
            report.error
        );
    }
    let holder = report.holder.as_ref().context("no basic four")?;
    story.step(
        "The bank verifies her signed application (eKYC)",
        &[
            format!(
                "signature, chain to the signing root, OCSP: {}; signed on her {} (certificate {})",
                report.status,
                report.kind.unwrap_or("?"),
                report.serial.as_deref().unwrap_or("?")
            ),
            format!(
                "basic four read from the certificate: {} / {} / {} / sex {}",
                holder.name, holder.address, holder.birth_date, holder.sex
            ),
        ],
    );
    Ok(RelyingParty { running })
}

/// Shows that the authority saw uses of the phone's certificates.
pub async fn history(
    story: &mut Story,
    base: &str,
    operator_token: &str,
    holder_id: &str,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    // Use events are written off the OCSP path, debounced: poll briefly.
    let mut used = Vec::new();
    for _ in 0..40 {
        let events: Value = http
            .get(format!("{base}/v1/holders/{holder_id}/events"))
            .bearer_auth(operator_token)
            .send()
            .await?
            .json()
            .await?;
        used = events["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["action"] == "used")
                    .map(|e| {
                        format!(
                            "{} {} by {}",
                            e["at"].as_str().unwrap_or("?"),
                            e["serial"].as_str().unwrap_or("?"),
                            e["actor"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if used.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if used.is_empty() {
        bail!("the login did not show in the holder's history");
    }
    let mut lines = vec!["every check a relying party makes on a phone certificate becomes a `used` event (and a push on her next sync):".to_owned()];
    lines.extend(used.into_iter().map(|u| format!("  {u}")));
    story.step("The login shows in her history", &lines);
    Ok(())
}
