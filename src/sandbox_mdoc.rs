//! The sandbox's in-person chapter: the phone shows its mobile ID (ISO
//! 18013-5 mdoc) to a reader over loopback TCP, once for an age check and
//! once for a full identity check with the portrait; after the phone is
//! lost, the reader refuses it.
//!
//! Holder and reader are the very code paths of `phone present` and
//! `reader request` (`mdoc_cmd::serve_one` / `request_presentation`), run
//! side by side in this process.

use std::path::Path;

use anyhow::{Context, bail};
use shomei_mdoc::issuer::{StatusOutcome, TrustedIacas};
use shomei_mdoc::jp::elements;
use shomei_mdoc::present::{ConsentPolicy, Presenter};
use shomei_phone::{AuthUnlock, Phone};

use crate::mdoc_cmd::{self, ReaderOutcome};
use crate::phone_cmd;
use crate::sandbox::Story;

/// The element an age check at a Japanese counter asks for.
const AGE_OVER_20: &str = "age_over_20";

/// One presentation: what the phone released, and what the reader made of it.
async fn show(
    phone_path: &Path,
    pin: &str,
    items: &[&str],
    trust: &TrustedIacas,
) -> anyhow::Result<(Vec<String>, ReaderOutcome)> {
    let mut phone = Phone::open(phone_path).map_err(phone_cmd::phone_error)?;
    let mdoc = phone
        .mdoc()
        .cloned()
        .context("the phone holds no mobile ID")?;
    let signer = phone
        .mdoc_signer(AuthUnlock::Pin(pin))
        .map_err(phone_cmd::phone_error)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut rng = shomei_pki::SystemRandom::new();
    #[allow(clippy::disallowed_methods)] // the binary is where the clock is read
    let now = time::OffsetDateTime::now_utc();
    let mut presenter = Presenter::with_retrieval_methods(
        &mdoc.issuer_signed,
        &mdoc.doc_type,
        &signer,
        // The default of `phone present`: only what is asked, and never the
        // individual number.
        ConsentPolicy::Auto {
            release_individual_number: false,
            require_authenticated_reader: Vec::new(),
        },
        vec![mdoc_cmd::tcp_retrieval_method(addr)],
        &mut rng,
        now,
    )
    .map_err(|e| anyhow::anyhow!("the mobile ID cannot be shown: {e}"))?;
    let uri = presenter.engagement_uri();
    let items: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    let request = mdoc_cmd::items_request(&items)?;
    let (released, outcome) = tokio::join!(
        mdoc_cmd::serve_one(&listener, &mut presenter),
        mdoc_cmd::request_presentation(&uri, request, trust, 30, false),
    );
    let released = released?.into_iter().map(|(_, el)| el).collect::<Vec<_>>();
    Ok((released, outcome?))
}

fn verified_lines(o: &ReaderOutcome) -> anyhow::Result<Vec<String>> {
    if let Some(e) = &o.status_failure {
        bail!("the reader could not get the status list: {e:#}");
    }
    let v = o
        .verdict
        .as_ref()
        .map_err(|e| anyhow::anyhow!("the reader refused the mobile ID: {e} ({})", e.code()))?;
    if v.status != StatusOutcome::Valid {
        bail!("the reader did not check the status list");
    }
    let mut lines = vec![format!(
        "the reader verified the MSO (document signer under the authority's IACA), every digest, the validity window, the device {} over this session's transcript, and the status list: valid",
        v.device_auth.as_str()
    )];
    for els in v.items.values() {
        for (el, value) in els {
            lines.push(format!("  verified {el}: {}", mdoc_cmd::human_value(value)));
        }
    }
    Ok(lines)
}

/// The age check and the identity check with the working phone.
pub(crate) async fn chapter(
    story: &mut Story,
    phone_path: &Path,
    pin: &str,
    iaca_pem: &Path,
) -> anyhow::Result<()> {
    let trust = mdoc_cmd::trusted_iacas(iaca_pem)?;

    let (released, outcome) = show(phone_path, pin, &[AGE_OVER_20], &trust).await?;
    let mut lines = vec![
        "the phone shows an mdoc: QR code (device engagement); the shop's reader scans it and opens an encrypted session (ECDH P-256, HKDF, AES-256-GCM)".to_owned(),
        "the reader asks for age_over_20 only".to_owned(),
        format!("the phone released: {}", released.join(", ")),
    ];
    lines.extend(verified_lines(&outcome)?);
    story.step(
        "At a shop counter she proves she is over 20 with her phone (mobile ID)",
        &lines,
    );
    let v = outcome
        .verdict
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let all: Vec<&String> = v.items.values().flat_map(|m| m.keys()).collect();
    if released != [AGE_OVER_20] || all != [AGE_OVER_20] {
        bail!("the age check released more than age_over_20: {released:?}");
    }

    let asked = [
        elements::FULL_NAME,
        elements::RESIDENT_ADDRESS,
        elements::BIRTH_DATE,
        elements::SEX,
        elements::PORTRAIT,
        elements::INDIVIDUAL_NUMBER,
    ];
    let (released, outcome) = show(phone_path, pin, &asked, &trust).await?;
    let mut lines = vec![
        format!("the city office's reader asks for {}", asked.join(", ")),
        format!(
            "the phone released: {} (the individual number is never released unless the holder allows it)",
            released.join(", ")
        ),
    ];
    lines.extend(verified_lines(&outcome)?);
    story.step(
        "At the city office: a full identity check with the portrait",
        &lines,
    );
    if released.iter().any(|e| e == elements::INDIVIDUAL_NUMBER) {
        bail!("the phone released the individual number under the default consent");
    }
    Ok(())
}

/// The lost (suspended) phone's mobile ID, refused by the reader.
pub(crate) async fn refused_when_lost(
    story: &mut Story,
    phone_path: &Path,
    pin: &str,
    iaca_pem: &Path,
) -> anyhow::Result<()> {
    let trust = mdoc_cmd::trusted_iacas(iaca_pem)?;
    let (_, outcome) = show(phone_path, pin, &[AGE_OVER_20], &trust).await?;
    let why = match (&outcome.status_failure, &outcome.verdict) {
        (Some(e), _) => bail!("the reader could not get the status list: {e:#}"),
        (None, Ok(_)) => bail!("the reader accepted the lost phone's mobile ID"),
        (None, Err(e)) => format!("the status list says {e} (code {})", e.code()),
    };
    story.step(
        "Whoever finds the phone cannot use its mobile ID",
        &[
            "the same age check with the lost phone: the signature and digests still verify, but the authority's status list (IETF Token Status List, fetched by the reader) marks it".into(),
            format!("the reader refuses: {why}"),
        ],
    );
    Ok(())
}
