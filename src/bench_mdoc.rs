//! `shomei bench present | mdoc-verify`: the mobile ID (ISO/IEC 18013-5
//! mdoc) in person, each figure beside a baseline measured in the same run.
//!
//! The fixture is what the authority and the phone make: an IACA and a
//! document signer (P-256), the authority's document content for a holder
//! (`shomei_authority_server::mdoc::content`), a Token Status List signed by
//! the document signer, and a phone folder whose simulated secure element
//! (sealed file store, as `phone present` opens it) holds the P-256 device
//! key under the auth-PIN policy. Every device signature goes through
//! `Phone::mdoc_signer` (PIN VERIFY, then one signature in the element).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use shomei_core::{Serial, Signer as _, Timestamp};
use shomei_mdoc::issuer::{DocumentSigner, StatusCheck, TrustedIacas, issue};
use shomei_mdoc::jp;
use shomei_mdoc::mso::{DeviceKey, StatusRef, ValidityInfo};
use shomei_mdoc::present::{ConsentPolicy, Presenter};
use shomei_mdoc::reader::Reader;
use shomei_mdoc::request::ItemsRequest;
use shomei_mdoc::session::{EphemeralKey, KeyAgreement, parse_device_engagement_uri};
use shomei_mdoc::status::{
    StatusList, StatusListLimits, StatusListTokenClaims, VerifiedStatusList,
    sign_status_list_token, verify_status_list_token,
};
use shomei_phone::{AuthUnlock, FileWalletStore, Phone, WalletMdoc, WalletState, WalletStore};
use shomei_pki::EcdsaP256Signer;
use shomei_pki::profile::{Iaca, PublicationPoints};
use shomei_se_sim::SimManufacturer;
use shomei_secure_element::{GateId, KeyKind, KeyPolicy, SecureElement as _};
use tokio::io::AsyncWriteExt;

use crate::bench::{bar, machine, pct_ms};
use crate::mdoc_cmd::{
    exchange, items_request, read_frame, serve_one, tcp_address, tcp_retrieval_method, write_frame,
};
use crate::output::emit;

const BASE: &str = "http://127.0.0.1:8700";
const PIN: &str = "1234";
/// What the reader asks for: a typical age-and-identity check.
const ITEMS: [&str; 3] = ["full_name_unicode", "birth_date", "age_over_20"];
/// The holder's index in the status list.
const STATUS_IDX: u64 = 17;

/// Everything both benches share (see the module docs).
struct Fixture {
    iaca_der: Vec<u8>,
    trust: TrustedIacas,
    issuer_signed: Vec<u8>,
    status_uri: String,
    status_token: Vec<u8>,
    request: ItemsRequest,
    phone: Phone,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        // The issuer checks run against the real clock (as @auth0/mdl's
        // do): certificates and the MSO start now.
        let now = Timestamp::now_utc();
        let points = PublicationPoints::new(BASE);
        let iaca = Iaca::create(
            "Shomei Bench",
            &points,
            Arc::new(EcdsaP256Signer::generate()?),
            &Serial::from_be_bytes(&[0x41, 1, 2, 3, 4, 5, 6, 7, 8])?,
            now,
        )?;
        let ds_key = EcdsaP256Signer::generate()?;
        let ds_cert = iaca.issue_document_signer(
            &points,
            &ds_key,
            &Serial::from_be_bytes(&[0x42, 1, 2, 3, 4, 5, 6, 7, 8])?,
            now,
            90,
        )?;
        let trust = TrustedIacas::new(vec![iaca.cert_der().to_vec()])?;

        // The phone: a manufactured secure element in a folder, the device
        // key made as provisioning makes it, and a wallet holding the
        // mobile ID (what `POST /v1/phones` would have answered).
        let dir = tempfile::tempdir()?;
        let manufacturer = SimManufacturer::generate(now)?;
        let se_dir = dir.path().join(shomei_phone::SE_DIR);
        std::fs::create_dir_all(&se_dir)?;
        let mut se = manufacturer.manufacture_device(&se_dir, now)?;
        let spki = {
            se.set_pin(GateId::AuthPin, PIN)?;
            let key = se.create_key(
                shomei_phone::MDOC_KEY_LABEL,
                KeyKind::EcP256,
                KeyPolicy::PHONE_AUTH,
                b"bench challenge",
            )?;
            se.public_key(&key)?
        };
        let holder = crate::bench::holder(1)?;
        let content = shomei_authority_server::mdoc::content(&holder, now)
            .map_err(|e| anyhow::anyhow!("document content: {e}"))?;
        let status_uri = format!("{BASE}/status/mdoc");
        let validity = ValidityInfo::starting(now, time::Duration::days(30));
        let is = issue(
            &content,
            &DeviceKey::from_spki(&spki)?,
            validity,
            Some(StatusRef {
                idx: STATUS_IDX,
                uri: status_uri.clone(),
            }),
            &DocumentSigner::new(&ds_key, ds_cert.clone())?,
            &mut shomei_pki::SystemRandom::new(),
        )?;
        let issuer_signed = is.to_cbor()?;
        let mut state = WalletState::new(se.device_id().to_hex());
        state.mdoc = Some(WalletMdoc {
            doc_type: jp::DOC_TYPE.to_owned(),
            issuer_signed: issuer_signed.clone(),
            key_label: shomei_phone::MDOC_KEY_LABEL.to_owned(),
            valid_from: now.unix_timestamp(),
            valid_until: (now + time::Duration::days(30)).unix_timestamp(),
            status_idx: STATUS_IDX,
        });
        let mut store = FileWalletStore::new(dir.path().join(shomei_phone::WALLET_FILE));
        store.commit(&serde_json::to_vec_pretty(&state)?)?;
        drop(se); // release the element: the phone opens it as `phone present` does
        let phone = Phone::open(dir.path())?;

        // The status list (2 bits, 1 000 entries, every tenth revoked,
        // ours valid), signed by the document signer as the authority does.
        let mut list = StatusList::new(2, 1000)?;
        for i in (0..1000).step_by(10) {
            list.set(i, shomei_mdoc::status::STATUS_INVALID)?;
        }
        let status_token = sign_status_list_token(
            &list,
            &StatusListTokenClaims {
                uri: status_uri.clone(),
                issued_at: now,
                expires: now + time::Duration::days(1),
                ttl_seconds: Some(300),
            },
            &ds_key,
            &[ds_cert],
        )?;
        let items: Vec<String> = ITEMS.iter().map(|s| (*s).to_owned()).collect();
        Ok(Self {
            iaca_der: iaca.cert_der().to_vec(),
            trust,
            issuer_signed,
            status_uri,
            status_token,
            request: items_request(&items)?,
            phone,
            _dir: dir,
        })
    }

    /// The reader's status list check: the token verified under the IACA.
    fn status_list(&self, now: Timestamp) -> anyhow::Result<VerifiedStatusList> {
        verify_status_list_token(
            &self.status_token,
            &self.status_uri,
            &self.trust,
            now,
            StatusListLimits::default(),
        )
        .map_err(|e| anyhow::anyhow!("status list: {e}"))
    }

    fn iaca_pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.iaca_der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }
}

struct SystemRng;

impl shomei_core::RandomSource for SystemRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), shomei_core::SignError> {
        aws_lc_rs::rand::fill(buf)
            .map_err(|_| shomei_core::SignError::Backend("system RNG failed".into()))
    }
}

/// Timings of one presentation, in microseconds.
struct Sample {
    unlock: u64,
    presentation: u64,
    reader_verify: u64,
}

/// One presentation over loopback TCP: the holder's task binds, shows its
/// engagement and serves one session (`serve_one`); the reader's task
/// parses the engagement, connects (`exchange`), decrypts, verifies the
/// status list token and the DeviceResponse, and ends the session.
async fn present_once(fx: &mut Fixture) -> anyhow::Result<Sample> {
    let t0 = Instant::now();
    let signer = tokio::task::block_in_place(|| fx.phone.mdoc_signer(AuthUnlock::Pin(PIN)))
        .map_err(|e| anyhow::anyhow!("unlocking the device key: {e}"))?;
    let unlock = t0.elapsed();

    let t1 = Instant::now();
    let issuer_signed = fx.issuer_signed.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let holder = tokio::spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut presenter = Presenter::with_retrieval_methods(
            &issuer_signed,
            jp::DOC_TYPE,
            &signer,
            ConsentPolicy::auto(),
            vec![tcp_retrieval_method(addr)],
            &mut SystemRng,
            Timestamp::now_utc(),
        )
        .map_err(|e| anyhow::anyhow!("presenter: {e}"))?;
        tx.send(presenter.engagement_uri())
            .map_err(|_| anyhow::anyhow!("the reader went away"))?;
        serve_one(&listener, &mut presenter).await
    });
    let (request, trust, token, uri) = (
        fx.request.clone(),
        fx.trust.clone(),
        fx.status_token.clone(),
        fx.status_uri.clone(),
    );
    let reader = tokio::spawn(async move {
        let engagement_uri = rx.await.context("no engagement")?;
        let engagement = parse_device_engagement_uri(&engagement_uri)?;
        let addr = tcp_address(&engagement).context("no TCP retrieval method")?;
        let mut reader = Reader::new(engagement.as_bytes(), request, &mut SystemRng)?;
        let (mut stream, answer) = exchange(&reader, addr).await?;
        let t = Instant::now();
        reader.open_session_data(&answer)?;
        let now = Timestamp::now_utc();
        let list =
            verify_status_list_token(&token, &uri, &trust, now, StatusListLimits::default())?;
        let verified = reader.verify(&trust, now, StatusCheck::List(&list))?;
        let verify = t.elapsed();
        write_frame(&mut stream, &reader.terminate()?).await?;
        let _ = stream.shutdown().await;
        anyhow::Ok((verified, verify))
    });
    let (released, read) = tokio::join!(holder, reader);
    let released = released??;
    let (verified, verify) = read??;
    let presentation = t1.elapsed();
    if released.len() != ITEMS.len()
        || verified.items.values().map(|m| m.len()).sum::<usize>() != ITEMS.len()
    {
        anyhow::bail!("the presentation released {released:?}, expected {ITEMS:?}");
    }
    if verified.status != shomei_mdoc::issuer::StatusOutcome::Valid {
        anyhow::bail!("the status list was not checked");
    }
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    Ok(Sample {
        unlock: us(unlock),
        presentation: us(presentation),
        reader_verify: us(verify),
    })
}

/// Baseline 1: the bare TCP round trip with the same framing (bind,
/// connect, one frame each way of the presentation's sizes).
async fn tcp_round_trip(request_len: usize, answer_len: usize) -> anyhow::Result<u64> {
    let t = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        read_frame(&mut s).await?;
        write_frame(&mut s, &vec![0u8; answer_len]).await?;
        anyhow::Ok(())
    });
    let mut c = tokio::net::TcpStream::connect(addr).await?;
    write_frame(&mut c, &vec![0u8; request_len]).await?;
    read_frame(&mut c).await?;
    server.await??;
    Ok(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// Baseline 2: the crypto floor of one presentation, bare aws-lc-rs: two
/// ephemeral P-256 keys and both ECDH agreements (session keys), one P-256
/// signature (DeviceSignature) and four P-256 verifications (document
/// signer certificate, MSO, DeviceSignature, status list token).
struct Floor {
    signer: EcdsaP256Signer,
    public: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

impl Floor {
    fn new() -> anyhow::Result<Self> {
        let signer = EcdsaP256Signer::generate()?;
        let public = shomei_pki::keys::spki_subject_public_key(signer.public_key_spki())?;
        let msg = vec![0x5a; 600];
        let sig = signer.sign(&msg)?;
        Ok(Self {
            signer,
            public,
            msg,
            sig,
        })
    }

    fn verify(&self) -> anyhow::Result<()> {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &self.public,
        )
        .verify(&self.msg, &self.sig)
        .map_err(|_| anyhow::anyhow!("baseline signature does not verify"))
    }

    fn presentation(&self) -> anyhow::Result<u64> {
        let t = Instant::now();
        let (a, b) = (EphemeralKey::generate()?, EphemeralKey::generate()?);
        a.agree(&b.public_key())?;
        b.agree(&a.public_key())?;
        self.signer.sign(&self.msg)?;
        for _ in 0..4 {
            self.verify()?;
        }
        Ok(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX))
    }
}

/// CPU time so far in clock ticks: (whole machine busy, this process).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle, iowait.
    let busy = cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = me.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((busy, own))
}

/// Cores busy during a measurement: the machine's and this process's
/// (100 ticks per second, as Linux reports them to user space).
struct CpuWatch(Option<(u64, u64)>, Instant);

impl CpuWatch {
    fn start() -> Self {
        Self(cpu_ticks(), Instant::now())
    }

    fn json(&self) -> serde_json::Value {
        let secs = self.1.elapsed().as_secs_f64().max(1e-9);
        match (self.0, cpu_ticks()) {
            (Some((b0, o0)), Some((b1, o1))) => {
                let cores = |t: u64| (t as f64 / 100.0) / secs;
                let (busy, own) = (cores(b1 - b0), cores(o1 - o0));
                json!({"machine_busy_cores": busy, "this_process_cores": own, "other_cores": (busy - own).max(0.0)})
            }
            _ => serde_json::Value::Null,
        }
    }
}

fn stats(mut us: Vec<u64>) -> serde_json::Value {
    us.sort_unstable();
    json!({
        "min": pct_ms(&us, 0.0), "p50": pct_ms(&us, 50.0), "p95": pct_ms(&us, 95.0),
        "p99": pct_ms(&us, 99.0), "max": pct_ms(&us, 100.0),
    })
}

fn cpu_text(cpu: &serde_json::Value) -> String {
    let f = |k: &str| cpu[k].as_f64().unwrap_or(0.0);
    if cpu.is_null() {
        return "not available".into();
    }
    format!(
        "machine {:.2} cores busy, this process {:.2}, other processes {:.2}",
        f("machine_busy_cores"),
        f("this_process_cores"),
        f("other_cores")
    )
}

fn row(name: &str, v: &serde_json::Value) -> String {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    format!(
        "{name:<58} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        f("p50"),
        f("p95"),
        f("p99"),
        f("max")
    )
}

/// `bench present`: the value printed and the human text.
async fn present_value(count: usize, json: bool) -> anyhow::Result<(serde_json::Value, String)> {
    let mut fx = tokio::task::block_in_place(Fixture::new)?;
    let floor = Floor::new()?;
    // Sizes for the TCP baseline, and a check that it all works.
    let warm = count.clamp(1, 20);
    for _ in 0..warm {
        present_once(&mut fx).await?;
        tcp_round_trip(300, 1500).await?;
        floor.presentation()?;
    }
    let pb = bar(json, count as u64, "mdoc presentations");
    let watch = CpuWatch::start();
    let (mut pres, mut unlock, mut total, mut verify, mut tcp, mut crypto) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..count {
        // Interleaved, so all three see the same machine load.
        let s = present_once(&mut fx).await?;
        pres.push(s.presentation);
        unlock.push(s.unlock);
        total.push(s.presentation + s.unlock);
        verify.push(s.reader_verify);
        tcp.push(tcp_round_trip(300, 1500).await?);
        crypto.push(tokio::task::block_in_place(|| floor.presentation())?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let cpu = watch.json();
    let (pres, unlock, total, verify, tcp, crypto) = (
        stats(pres),
        stats(unlock),
        stats(total),
        stats(verify),
        stats(tcp),
        stats(crypto),
    );
    let p50 = |v: &serde_json::Value| v["p50"].as_f64().unwrap_or(0.0);
    let over_floor = p50(&pres) / p50(&crypto).max(1e-9);
    let value = json!({
        "bench": "present", "count": count, "items": ITEMS,
        "presentation_ms": pres,
        "presentation_with_unlock_ms": total,
        "unlock_pin_verify_ms": unlock,
        "reader_verify_ms": verify,
        "baseline_tcp_round_trip_ms": tcp,
        "baseline_crypto_floor_ms": crypto,
        "p50_over_crypto_floor": over_floor,
        "cpu_during_run": cpu,
        "machine": machine(),
    });
    let human = format!(
        "{count} presentations over loopback TCP (items: {}), milliseconds:\n{:<58} {:>8} {:>8} {:>8} {:>8}\n{}\n{}\n{}\n{}\n{}\n{}\npresentation p50 = {over_floor:.1} × the crypto floor\nCPU during the run: {}",
        ITEMS.join(", "),
        "",
        "p50",
        "p95",
        "p99",
        "max",
        row(
            "presentation (engagement → verified, device key unlocked)",
            &pres
        ),
        row(
            "  of which the reader's verification (+ status list)",
            &verify
        ),
        row(
            "holder's PIN VERIFY in the secure element (unlock)",
            &unlock
        ),
        row(
            "presentation with the unlock (what `phone present` does)",
            &total
        ),
        row("baseline: bare TCP round trip, same framing", &tcp),
        row("baseline: crypto floor (2 ECDH, 1 sign, 4 verify)", &crypto),
        cpu_text(&cpu),
    );
    Ok((value, human))
}

pub async fn present(count: usize, json: bool) -> anyhow::Result<()> {
    let (value, human) = present_value(count, json).await?;
    emit(json, &value, &human);
    Ok(())
}

/// Runs `f` repeatedly for `dur`; operations per second.
fn rate(dur: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur || n == 0 {
        f()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Where `bench_auth0.mjs` and its `node_modules` live.
fn checkers_dir() -> PathBuf {
    std::env::var_os("SHOMEI_MDOC_CHECKERS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mdoc_checkers"),
        PathBuf::from,
    )
}

/// @auth0/mdl on the same response: its JSON line, or why it did not run.
fn run_auth0(
    dir: &Path,
    response: &[u8],
    transcript: &[u8],
    iaca_pem: &str,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let checkers = checkers_dir();
    let script = checkers.join("bench_auth0.mjs");
    if !script.exists() {
        anyhow::bail!("{} is missing", script.display());
    }
    if !checkers.join("node_modules/@auth0/mdl").exists() {
        anyhow::bail!(
            "@auth0/mdl is not installed (cd {} && npm install --no-audit --no-fund)",
            checkers.display()
        );
    }
    let (r, t, i) = (
        dir.join("response.cbor"),
        dir.join("transcript.cbor"),
        dir.join("iaca.pem"),
    );
    std::fs::write(&r, response)?;
    std::fs::write(&t, transcript)?;
    std::fs::write(&i, iaca_pem)?;
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(&r)
        .arg(&t)
        .arg(&i)
        .arg(format!("{seconds}"))
        .current_dir(&checkers)
        .output()
        .context("cannot run node (is Node.js installed?)")?;
    if !out.status.success() {
        anyhow::bail!(
            "node {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("bench_auth0.mjs printed no JSON line")?;
    Ok(serde_json::from_str(line)?)
}

/// `bench mdoc-verify`: the value printed and the human text. `with_node`
/// false skips @auth0/mdl (tests).
fn mdoc_verify_value(
    seconds: f64,
    json: bool,
    with_node: bool,
) -> anyhow::Result<(serde_json::Value, String)> {
    let mut fx = Fixture::new()?;
    // One presentation in memory (no TCP): the reader keeps the decrypted
    // DeviceResponse and its SessionTranscript.
    let signer = fx
        .phone
        .mdoc_signer(AuthUnlock::Pin(PIN))
        .map_err(|e| anyhow::anyhow!("unlocking the device key: {e}"))?;
    let now = Timestamp::now_utc();
    let mut presenter = Presenter::new(
        &fx.issuer_signed,
        jp::DOC_TYPE,
        &signer,
        ConsentPolicy::auto(),
        &mut SystemRng,
        now,
    )?;
    let mut reader = Reader::from_uri(
        &presenter.engagement_uri(),
        fx.request.clone(),
        &mut SystemRng,
    )?;
    let reply = presenter.on_session_establishment(reader.session_establishment())?;
    let message = reply.message.context("the presenter did not answer")?;
    reader.open_session_data(&message)?;
    let response = reader
        .device_response()
        .context("no DeviceResponse")?
        .to_vec();
    let transcript = reader.session_transcript().as_bytes().to_vec();
    let list = fx.status_list(now)?;
    reader.verify(&fx.trust, now, StatusCheck::List(&list))?;

    // The floor any verifier pays: three P-256 verifications (document
    // signer certificate under the IACA, MSO, DeviceSignature).
    let floor = Floor::new()?;
    let floor3 = || -> anyhow::Result<()> {
        for _ in 0..3 {
            floor.verify()?;
        }
        Ok(())
    };
    let ours = || -> anyhow::Result<()> {
        reader.verify(&fx.trust, Timestamp::now_utc(), StatusCheck::NotChecked)?;
        Ok(())
    };
    let ours_list = || -> anyhow::Result<()> {
        reader.verify(&fx.trust, Timestamp::now_utc(), StatusCheck::List(&list))?;
        Ok(())
    };
    let slice = Duration::from_secs_f64(seconds / 12.0);
    let pb = bar(json, 3, "mdoc verify vs floor");
    let watch = CpuWatch::start();
    let (mut f, mut o, mut ol) = (vec![], vec![], vec![]);
    for _ in 0..3 {
        f.push(rate(slice, floor3)?);
        o.push(rate(slice, ours)?);
        ol.push(rate(slice / 2, ours_list)?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let (floor_rate, ours_rate, ours_list_rate) = (median(f), median(o), median(ol));
    let cpu = watch.json();

    let node_watch = CpuWatch::start();
    let auth0 = if with_node {
        let tmp = tempfile::tempdir()?;
        match run_auth0(
            tmp.path(),
            &response,
            &transcript,
            &fx.iaca_pem(),
            seconds / 2.0,
        ) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("@auth0/mdl not measured: {e:#}");
                None
            }
        }
    } else {
        None
    };
    // The machine's busy cores while node ran (node itself is a child
    // process: its CPU comes from its own report).
    let node_cpu = node_watch.json();
    let auth0_rate = auth0
        .as_ref()
        .and_then(|v| v["ops_per_s"].as_f64())
        .filter(|r| *r > 0.0);
    let ratio = auth0_rate.map(|a| ours_rate / a);
    let value = json!({
        "bench": "mdoc-verify", "threads": 1, "items": ITEMS,
        "response_bytes": response.len(), "transcript_bytes": transcript.len(),
        "ours_per_s": ours_rate,
        "ours_with_status_list_per_s": ours_list_rate,
        "baseline_3_p256_verify_per_s": floor_rate,
        "ratio_to_floor": ours_rate / floor_rate.max(1e-9),
        "auth0_mdl": auth0,
        "ratio_ours_to_auth0": ratio,
        "cpu_during_ours": cpu,
        "machine_busy_cores_during_auth0": node_cpu["machine_busy_cores"],
        "machine": machine(),
    });
    let mut human = format!(
        "reader verification of one DeviceResponse ({} bytes, items: {}), 1 thread:\nshomei_mdoc::reader::Reader::verify: {ours_rate:.0}/s ({:.1} µs)\n  with the status list lookup (list verified once): {ours_list_rate:.0}/s\nbaseline: 3 × raw P-256 ECDSA verify (aws-lc-rs), same run: {floor_rate:.0}/s → ours = {:.1} % of the floor\nCPU while ours ran: {}",
        response.len(),
        ITEMS.join(", "),
        1e6 / ours_rate.max(1e-9),
        ours_rate / floor_rate.max(1e-9) * 100.0,
        cpu_text(&cpu),
    );
    match (&auth0, auth0_rate, ratio) {
        (Some(v), Some(a), Some(r)) => human.push_str(&format!(
            "\n@auth0/mdl {} (node {}), same response, same run: {a:.0}/s ({:.0} µs; node used {:.2} cores, the machine {:.2})\nratio ours / @auth0/mdl: {r:.1}×",
            v["version"].as_str().unwrap_or("?"),
            v["node"].as_str().unwrap_or("?"),
            1e6 / a,
            v["cpu_cores"].as_f64().unwrap_or(0.0),
            node_cpu["machine_busy_cores"].as_f64().unwrap_or(0.0),
        )),
        _ => human.push_str("\n@auth0/mdl: not measured (see stderr)"),
    }
    Ok((value, human))
}

pub fn mdoc_verify(seconds: f64, json: bool) -> anyhow::Result<()> {
    let (value, human) = mdoc_verify_value(seconds, json, true)?;
    emit(json, &value, &human);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_present_runs_and_reports_its_fields() {
        let (v, human) = present_value(2, true).await.unwrap();
        assert_eq!(v["bench"], "present");
        assert_eq!(v["count"], 2);
        for k in [
            "presentation_ms",
            "presentation_with_unlock_ms",
            "unlock_pin_verify_ms",
            "reader_verify_ms",
            "baseline_tcp_round_trip_ms",
            "baseline_crypto_floor_ms",
        ] {
            for p in ["p50", "p95", "p99"] {
                assert!(v[k][p].as_f64().unwrap() > 0.0, "{k}.{p}");
            }
        }
        assert!(human.contains("baseline"));
    }

    #[test]
    fn bench_mdoc_verify_runs_and_reports_its_fields() {
        let (v, _) = mdoc_verify_value(0.12, true, false).unwrap();
        assert_eq!(v["bench"], "mdoc-verify");
        assert!(v["ours_per_s"].as_f64().unwrap() > 0.0);
        assert!(v["ours_with_status_list_per_s"].as_f64().unwrap() > 0.0);
        assert!(v["baseline_3_p256_verify_per_s"].as_f64().unwrap() > 0.0);
        assert!(v["response_bytes"].as_u64().unwrap() > 0);
        assert!(v["auth0_mdl"].is_null());
    }
}
