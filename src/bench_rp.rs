//! `shomei bench login | verify-doc | oidc`: the relying party's figures,
//! each beside a baseline measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use shomei_core::{BasicFour, CertClass, Serial, Signer as _};
use shomei_pki::RsaSigner;
use shomei_pki::crl::{RevokedEntry, build_crl};
use shomei_pki::profile::{
    EndEntityRequest, PublicationPoints, RootCa, card_not_after, issue_end_entity,
};
use shomei_rp_service::{OnlineVerifier, StatusMode};
use shomei_verifier::{Purpose, RootSource, TrustStore, VerifiedCrl};

use crate::bench::{bar, machine, pct_ms};
use crate::output::emit;

const BASE: &str = "http://127.0.0.1:8700";

/// An in-memory authority slice: a root of each kind, one holder's
/// certificate of the class, its key, and a CRL shard listing `revoked`
/// other serials (a realistic warm cache).
struct Pki {
    root: RootCa,
    cert: Vec<u8>,
    key: RsaSigner,
    crl: Vec<u8>,
}

fn pki(class: CertClass, revoked: u64) -> anyhow::Result<Pki> {
    let now = time::OffsetDateTime::now_utc();
    let root = RootCa::create(
        class.root(),
        "Shomei Bench Authority",
        Arc::new(RsaSigner::generate()?),
        &Serial::from_be_bytes(&[1])?,
        now,
    )?;
    let key = RsaSigner::generate()?;
    let csr = shomei_pki::csr::check_csr(&shomei_pki::csr::build_csr(&key, "bench")?)?;
    let holder: BasicFour = crate::bench::holder(1)?;
    let points = PublicationPoints::new(BASE);
    let cert = issue_end_entity(
        &root,
        &points,
        &EndEntityRequest {
            class,
            csr: &csr,
            holder: &holder,
            serial: &Serial::from_be_bytes(&[0x40, 1, 2, 3, 4, 5, 6, 7, 8])?,
            now,
            not_after: card_not_after(&holder, now),
            shard: 0,
        },
    )?;
    let entries: Vec<RevokedEntry> = (0..revoked)
        .map(|i| {
            let mut b = vec![0x41];
            b.extend_from_slice(&i.to_be_bytes());
            Ok(RevokedEntry {
                serial: Serial::from_be_bytes(&b)?,
                at: now,
                reason: shomei_core::RevocationReason::KeyCompromise,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let crl = build_crl(
        &root,
        &points,
        class,
        0,
        1,
        now,
        now + time::Duration::hours(24),
        &entries,
    )?;
    Ok(Pki {
        root,
        cert,
        key,
        crl,
    })
}

/// The service's verifier over this PKI, its CRL shard already warm.
fn warm_verifier(p: &Pki, purpose: Purpose) -> anyhow::Result<OnlineVerifier> {
    let mut store = TrustStore::new();
    store.add(purpose, p.root.cert_der(), RootSource::Shomei)?;
    let v = OnlineVerifier::with_store(
        BASE,
        store,
        StatusMode::Crl,
        shomei_rp_service::system_clock(),
    )?;
    v.insert_crl(VerifiedCrl::parse(&p.crl, p.root.cert_der())?)?;
    Ok(v)
}

/// Runs `f` repeatedly for `dur`; operations per second.
fn rate(dur: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        f()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn spki_key(spki: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(shomei_pki::keys::spki_subject_public_key(spki)?)
}

/// Raw RSA-2048 PKCS#1 v1.5 SHA-256 verification with aws-lc-rs.
fn raw_verify(key: &[u8], msg: &[u8], sig: &[u8]) -> anyhow::Result<()> {
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        key,
    )
    .verify(msg, sig)
    .map_err(|_| anyhow::anyhow!("baseline signature does not verify"))
}

/// Alternates `rounds` × (baseline, ours), `dur` each; the median rates.
fn alternate(
    rounds: usize,
    dur: Duration,
    mut baseline: impl FnMut() -> anyhow::Result<()>,
    mut ours: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    let (mut b, mut o) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        b.push(rate(dur, &mut baseline)?);
        o.push(rate(dur, &mut ours)?);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((med(&mut b), med(&mut o)))
}

/// `bench login`: a login verification from a warm cache (chain from the
/// validated-certificate cache, status from the warm CRL shard, the
/// challenge signature) vs one raw RSA-2048 verification, one core.
pub fn login(seconds: f64, revoked: u64, json: bool) -> anyhow::Result<()> {
    let p = pki(CertClass::CardAuth, revoked)?;
    let v = warm_verifier(&p, Purpose::Authentication)?;
    let challenge = [0x5au8; shomei_verifier::LOGIN_CHALLENGE_LEN];
    let ctx = shomei_verifier::LoginContext {
        issuer: "http://127.0.0.1:8800",
        client_id: "bench",
        challenge: &challenge,
    };
    let message =
        shomei_verifier::login_message(shomei_verifier::LoginPurpose::Authentication, &ctx)?;
    let sig = p.key.sign(&message)?;
    let key = spki_key(p.key.public_key_spki())?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let login_once = || -> anyhow::Result<()> {
        let cert = v.validate_cached(&p.cert, Purpose::Authentication)?;
        let checked = rt.block_on(v.status(cert))?;
        shomei_verifier::verify_login(checked, &ctx, &sig)?;
        Ok(())
    };
    // Warm the chain cache (one cold validation), and check it all works.
    login_once()?;
    let dur = Duration::from_secs_f64(seconds / 6.0);
    let pb = bar(json, 3, "login vs raw RSA verify");
    let (raw, ours) = alternate(3, dur, || raw_verify(&key, &message, &sig), login_once)?;
    pb.finish_and_clear();
    // For reference: a cold login (full chain validation each time).
    let store = v.store().clone();
    let crl = VerifiedCrl::parse(&p.crl, p.root.cert_der())?;
    let cold = rate(Duration::from_secs_f64(seconds / 6.0), || {
        let now = time::OffsetDateTime::now_utc();
        let cert = shomei_verifier::validate(&store, &p.cert, Purpose::Authentication, now)?;
        let checked = shomei_verifier::check_crl(cert, &crl, now)?;
        shomei_verifier::verify_login(checked, &ctx, &sig)?;
        Ok(())
    })?;
    let ratio = ours / raw;
    emit(
        json,
        &json!({
            "bench": "login", "threads": 1, "crl_entries": revoked,
            "login_per_s": ours, "raw_rsa_verify_per_s": raw, "ratio": ratio,
            "cold_login_per_s": cold, "goal_ratio": 0.70, "machine": machine(),
        }),
        &format!(
            "login verification (warm cache, 1 core): {ours:.0}/s\nbaseline raw RSA-2048 verify (same run): {raw:.0}/s\nratio: {:.1} % (goal ≥ 70 %)\ncold login (full chain validation + CRL lookup): {cold:.0}/s\nCRL shard in cache: {revoked} entries",
            ratio * 100.0
        ),
    );
    Ok(())
}

/// `bench verify-doc`: verification of a signed `size`-byte document
/// (CMS, chain from the cache, status from the warm CRL) vs the least any
/// verifier must do (SHA-256 of the document + one RSA verification), and
/// vs one raw RSA verification.
pub fn verify_doc(seconds: f64, size: usize, json: bool) -> anyhow::Result<()> {
    let p = pki(CertClass::CardSign, 10_000)?;
    let v = warm_verifier(&p, Purpose::Signing)?;
    let doc: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let now = time::OffsetDateTime::now_utc();
    let p7s = shomei_pki::cms::sign_detached(&doc, &p.cert, &[], &p.key, now)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let report = rt.block_on(v.verify_signature(&p7s, &doc));
    if !report.valid {
        bail!("the bench signature does not verify: {:?}", report.error);
    }
    let key = spki_key(p.key.public_key_spki())?;
    let small = b"baseline message";
    let small_sig = p.key.sign(small)?;
    let doc_sig = p.key.sign(&doc)?;
    let dur = Duration::from_secs_f64(seconds / 8.0);
    let pb = bar(json, 1, "verify 1 MB document");
    let (floor, ours) = alternate(
        3,
        dur,
        || raw_verify(&key, &doc, &doc_sig),
        || {
            let r = rt.block_on(v.verify_signature(&p7s, &doc));
            if r.valid {
                Ok(())
            } else {
                bail!("verification failed")
            }
        },
    )?;
    let raw = rate(dur, || raw_verify(&key, small, &small_sig))?;
    pb.finish_and_clear();
    emit(
        json,
        &json!({
            "bench": "verify-doc", "bytes": size, "threads": 1,
            "verify_per_s": ours, "baseline_sha256_plus_rsa_verify_per_s": floor,
            "raw_rsa_verify_per_s": raw, "ratio_to_baseline": ours / floor,
            "ratio_to_raw_rsa": ours / raw, "machine": machine(),
        }),
        &format!(
            "signed {size}-byte document, full verification (1 core): {ours:.0}/s\nbaseline SHA-256 of the document + RSA-2048 verify (same run): {floor:.0}/s → {:.1} %\nraw RSA-2048 verify of a short message: {raw:.0}/s → {:.1} % (hashing 1 MB dominates)",
            ours / floor * 100.0,
            ours / raw * 100.0
        ),
    );
    Ok(())
}

/// `bench oidc`: the full OpenID Connect round trip on loopback (authorize,
/// the phone reads the challenge and answers with its auth key, the
/// provider checks chain and OCSP, continue, token) vs one loopback HTTP
/// round trip to the same provider.
pub async fn oidc(count: usize, json: bool) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("shomei-bench-oidc-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let maker = shomei_se_sim::SimManufacturer::development()
        .map_err(|e| anyhow::anyhow!("development manufacturer: {e}"))?;
    let root_der = maker.root_cert_der().to_vec();
    let fx = crate::bench::Fixture::start_with(None, move |dir| {
        let d = dir.join(shomei_authority_server::home::MANUFACTURERS_DIR);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("development.der"), &root_der)?;
        Ok(())
    })
    .await?;
    let result = oidc_measure(&fx, &maker, work.path(), count, json).await;
    fx.stop().await;
    let (value, human) = result?;
    emit(json, &value, &human);
    Ok(())
}

async fn oidc_measure(
    fx: &crate::bench::Fixture,
    maker: &shomei_se_sim::SimManufacturer,
    work: &std::path::Path,
    count: usize,
    json: bool,
) -> anyhow::Result<(serde_json::Value, String)> {
    use crate::bench::{CARD_PASSWORD, CARD_PIN, PHONE_PASSWORD, PHONE_PIN};
    let card_path = work.join("card.jpki");
    crate::card_cmd::issue(
        &fx.base,
        &fx.token,
        &crate::bench::holder(7)?,
        CARD_PASSWORD,
        CARD_PIN,
        &card_path,
    )
    .await?;
    let phone_dir = work.join("phone");
    let mut phone = tokio::task::block_in_place(|| -> anyhow::Result<shomei_phone::Phone> {
        let mut card = crate::card_cmd::open(&card_path)?;
        let mut http = crate::phone_cmd::Http::new()?;
        let mut phone =
            shomei_phone::Phone::create(&phone_dir, maker, time::OffsetDateTime::now_utc())
                .map_err(crate::phone_cmd::phone_error)?;
        phone
            .provision(
                &mut card,
                &mut http,
                &shomei_phone::ProvisionRequest {
                    authority: &fx.base,
                    card_password: CARD_PASSWORD,
                    sign_password: PHONE_PASSWORD,
                    auth_pin: PHONE_PIN,
                    notify_email: None,
                },
            )
            .map_err(crate::phone_cmd::phone_error)?;
        Ok(phone)
    })?;
    let running = shomei_rp_service::start(
        shomei_rp_service::Config {
            authority: fx.base.clone(),
            listen: "127.0.0.1:0".parse()?,
            issuer: None,
            clients: vec![shomei_rp_service::oidc::Client::parse(
                crate::verifier_cmd::DEMO_CLIENT,
            )?],
            mode: StatusMode::Ocsp,
            linkage_token: None,
            jpki: false,
        },
        Arc::new(shomei_pki::EcdsaP256Signer::generate()?),
        shomei_rp_service::system_clock(),
    )
    .await?;
    let issuer = running.issuer.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let flow = crate::oidc_demo::CodeFlow {
        http: &http,
        issuer: &issuer,
        client_id: "demo",
        redirect: "http://127.0.0.1:9/callback",
        verifier: "bench-code-verifier-0123456789abcdefghijklmnopqrstuvwxyz",
    };
    let pb = bar(json, count as u64, "OIDC login round trip");
    let mut times = Vec::with_capacity(count);
    let mut base_times = Vec::with_capacity(count);
    let mut phone_times = Vec::with_capacity(count);
    for i in 0..count {
        // Baseline: one loopback round trip to the same server.
        let t = Instant::now();
        http.get(format!("{issuer}/healthz"))
            .send()
            .await?
            .bytes()
            .await?;
        base_times.push(t.elapsed().as_micros() as u64);

        let t = Instant::now();
        let (login_url, ch, _) = flow
            .authorize("openid", &format!("s{i}"), &format!("n{i}"))
            .await?;
        let tp = Instant::now();
        let (cert, sig) = tokio::task::block_in_place(|| {
            phone
                .answer_challenge(shomei_phone::AuthUnlock::Pin(PHONE_PIN), &ch)
                .map_err(crate::phone_cmd::phone_error)
        })?;
        phone_times.push(tp.elapsed().as_micros() as u64);
        flow.answer(&login_url, (&cert, &sig), None).await?;
        flow.redeem(&login_url).await?;
        times.push(t.elapsed().as_micros() as u64);
        pb.inc(1);
    }
    pb.finish_and_clear();
    running.stop().await;
    times.sort_unstable();
    base_times.sort_unstable();
    phone_times.sort_unstable();
    let (p50, p99) = (pct_ms(&times, 50.0), pct_ms(&times, 99.0));
    let (ph50, ph99) = (pct_ms(&phone_times, 50.0), pct_ms(&phone_times, 99.0));
    let (b50, b99) = (pct_ms(&base_times, 50.0), pct_ms(&base_times, 99.0));
    Ok((
        json!({
            "bench": "oidc", "logins": count,
            "p50_ms": p50, "p99_ms": p99,
            "phone_part_p50_ms": ph50, "phone_part_p99_ms": ph99,
            "baseline_http_round_trip_p50_ms": b50, "baseline_http_round_trip_p99_ms": b99,
            "machine": machine(),
        }),
        format!(
            "OIDC login round trip on loopback ({count} logins: authorize, challenge, phone signs with its auth key through the applet, OCSP-checked verification, continue, token):\n  p50 {p50:.2} ms, p99 {p99:.2} ms\n  of which the phone (PIN VERIFY in the simulated secure element, READ BINARY, signature): p50 {ph50:.2} ms, p99 {ph99:.2} ms\nbaseline one loopback HTTP round trip (same run): p50 {b50:.3} ms, p99 {b99:.3} ms"
        ),
    ))
}
