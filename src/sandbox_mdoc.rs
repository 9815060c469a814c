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
use base64::Engine as _;
use shomei_core::Signer as _;
use shomei_mdoc::issuer::{StatusOutcome, TrustedIacas};
use shomei_mdoc::jp::elements;
use shomei_mdoc::present::{ConsentPolicy, Presenter};
use shomei_mdoc::reader_auth::{ReaderAuthKey, TrustedReaderCas};
use shomei_phone::{AuthUnlock, Phone};
use shomei_pki::EcdsaP256Signer;

use crate::mdoc_cmd::{self, ReaderOutcome};
use crate::phone_cmd;
use crate::sandbox::Story;

/// The element an age check at a Japanese counter asks for.
const AGE_OVER_20: &str = "age_over_20";

/// Where the mobile ID is shown: what the reader trusts (the authority's
/// IACA), what the phone trusts (the authority's reader CA) and, for a
/// certified reader, its key and certificate.
struct Counter<'a> {
    iacas: &'a TrustedIacas,
    readers: &'a TrustedReaderCas,
    reader_auth: Option<ReaderAuthKey<'a>>,
}

/// One presentation: what the phone released, the reader it authenticated
/// (if any), and what the reader made of it.
async fn show(
    phone_path: &Path,
    pin: &str,
    items: &[&str],
    at: &Counter<'_>,
) -> anyhow::Result<(Vec<String>, Option<String>, ReaderOutcome)> {
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
        // Only what is asked, never the individual number, and her photo
        // only to a reader the authority certified.
        ConsentPolicy::Auto {
            release_individual_number: false,
            require_authenticated_reader: vec![elements::PORTRAIT.to_owned()],
        },
        vec![mdoc_cmd::tcp_retrieval_method(addr)],
        &mut rng,
        now,
    )
    .map_err(|e| anyhow::anyhow!("the mobile ID cannot be shown: {e}"))?;
    presenter.trust_readers(at.readers.clone(), now);
    let uri = presenter.engagement_uri();
    let items: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    let request = mdoc_cmd::items_request(&items)?;
    let (released, outcome) = tokio::join!(
        mdoc_cmd::serve_one(&listener, &mut presenter),
        mdoc_cmd::request_presentation(&uri, request, at.reader_auth.as_ref(), at.iacas, 30, false),
    );
    let released = released?.into_iter().map(|(_, el)| el).collect::<Vec<_>>();
    let reader = presenter.reader().map(|r| {
        format!(
            "{}{}",
            r.common_name.as_deref().unwrap_or("(no name)"),
            r.organization
                .as_deref()
                .map(|o| format!(", {o}"))
                .unwrap_or_default()
        )
    });
    Ok((released, reader, outcome?))
}

/// A relying party registers with the authority and gets a reader
/// certificate for a key it made (what `shomei reader enrol` does).
async fn certified_reader(
    base: &str,
    operator_token: &str,
    name: &str,
) -> anyhow::Result<(EcdsaP256Signer, Vec<Vec<u8>>)> {
    let http = reqwest::Client::new();
    let reg: serde_json::Value = http
        .post(format!("{base}/v1/relying-parties"))
        .bearer_auth(operator_token)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await?
        .error_for_status()
        .context("registering the city office")?
        .json()
        .await?;
    let rp_token = reg["token"].as_str().context("no relying-party token")?;
    let key = EcdsaP256Signer::generate()?;
    let public_key = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(key.public_key_spki())
    );
    let issued: serde_json::Value = http
        .post(format!("{base}/v1/reader-certificates"))
        .bearer_auth(rp_token)
        .json(&serde_json::json!({ "public_key": public_key }))
        .send()
        .await?
        .error_for_status()
        .context("the city office's reader certificate")?
        .json()
        .await?;
    let chain = shomei_pki::pem::pem_certificates(
        issued["certificate"]
            .as_str()
            .context("no certificate")?
            .as_bytes(),
    );
    if chain.is_empty() {
        bail!("the authority's reader certificate is not PEM");
    }
    Ok((key, chain))
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
    authority: (&str, &str, &Path),
) -> anyhow::Result<()> {
    let (base, operator_token, dir) = authority;
    let iacas = mdoc_cmd::trusted_iacas(&dir.join("ca").join("iaca.pem"))?;
    let readers = crate::reader_cmd::trusted_readers(&dir.join("ca").join("reader-ca.pem"))?;
    let shop = Counter {
        iacas: &iacas,
        readers: &readers,
        reader_auth: None,
    };

    let (released, _, outcome) = show(phone_path, pin, &[AGE_OVER_20], &shop).await?;
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

    let (key, chain) = certified_reader(base, operator_token, "chiyoda-city-office").await?;
    let office = Counter {
        iacas: &iacas,
        readers: &readers,
        reader_auth: Some(ReaderAuthKey {
            signer: &key,
            chain: &chain,
        }),
    };
    let asked = [
        elements::FULL_NAME,
        elements::RESIDENT_ADDRESS,
        elements::BIRTH_DATE,
        elements::SEX,
        elements::PORTRAIT,
        elements::INDIVIDUAL_NUMBER,
    ];
    let (released, reader, outcome) = show(phone_path, pin, &asked, &office).await?;
    let Some(reader) = reader else {
        bail!("the phone did not authenticate the city office's reader");
    };
    let mut lines = vec![
        "the city office registered with the authority and got a reader certificate (POST /v1/reader-certificates, 90 days)".to_owned(),
        format!("its reader asks for {}, and signs the request (ISO 18013-5 reader authentication)", asked.join(", ")),
        format!("the phone checks that signature under the authority's reader CA: {reader}"),
        format!(
            "the phone released: {} (her photo goes only to certified readers; the individual number is never released unless she allows it)",
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
    if !released.iter().any(|e| e == elements::PORTRAIT) {
        bail!("the certified reader did not get the portrait");
    }
    Ok(())
}

/// The lost (suspended) phone's mobile ID, refused by the reader.
pub(crate) async fn refused_when_lost(
    story: &mut Story,
    phone_path: &Path,
    pin: &str,
    authority_dir: &Path,
) -> anyhow::Result<()> {
    let iacas = mdoc_cmd::trusted_iacas(&authority_dir.join("ca").join("iaca.pem"))?;
    let readers =
        crate::reader_cmd::trusted_readers(&authority_dir.join("ca").join("reader-ca.pem"))?;
    let shop = Counter {
        iacas: &iacas,
        readers: &readers,
        reader_auth: None,
    };
    let (_, _, outcome) = show(phone_path, pin, &[AGE_OVER_20], &shop).await?;
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
