#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Our ISO 18013-5 DeviceResponse, checked by two verifiers nobody here
//! wrote: `pymdoccbor` (PyPI, issuer signature + x5chain to the IACA +
//! value digests) and `@auth0/mdl` (npm, chain to the IACA, MSO, digests,
//! validity, and device authentication — signature and MAC).
//!
//! A My Number Card mdoc (`org.iso.23220.1.jp.mnc`) is issued here under a
//! test IACA + DS, presented in memory (reader request for a subset →
//! holder response), and the decrypted DeviceResponse, the
//! SessionTranscriptBytes, the IACA PEM and (for MAC) the reader's
//! ephemeral private key go to a temp folder for the checker scripts in
//! `tests/mdoc_checkers/`, which print one JSON line each. Every checker is
//! also shown a tampered response and must refuse it.
//!
//! Time: everything here is made at the fixed instant [`NOW`] (IACA, DS
//! for 365 days, MSO for 30 days), and the checkers' clocks are pinned to
//! [`CHECK_AT`] with `--now` (neither library takes a verification time;
//! the scripts say how they pin it), so the test does not depend on the
//! real date.
//!
//! Missing tools (python module, node_modules) make a test pass with a
//! note, unless `CI` is set, where they fail (`scripts/test.sh` installs
//! them).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use shomei_core::{BasicFour, BirthDate, MyNumber, RandomSource, Sex, Signer};
use shomei_mdoc::device_auth::DeviceSigned;
use shomei_mdoc::issuer::{DocumentContent, StatusCheck};
use shomei_mdoc::jp::{self, MyNumberCardData, NS_ISO23220, NS_JP, elements};
use shomei_mdoc::mso::DeviceKey;
use shomei_mdoc::present::{ConsentPolicy, DeviceResponse, Presenter, ResponseDocument, STATUS_OK};
use shomei_mdoc::reader::{DeviceAuthKind, Reader};
use shomei_mdoc::request::{ItemsRequest, parse_device_request};
use shomei_mdoc::session::{
    DeviceEngagement, EphemeralKey, Handover, KeyAgreement, Role, SessionEncryption, SessionKeys,
    SessionTranscript, parse_session_establishment,
};
use shomei_pki::EcdsaP256Signer;

use common::{NOW, Pki, TestRng};

/// When the IACA, the DS certificate and the MSO are made.
/// The checkers' (pinned) clock: one hour after [`NOW`].
const CHECK_AT: &str = "2026-11-21T05:00:00Z";
/// After the MSO's 30 days, inside the DS certificate's 365.
const AFTER_MSO: &str = "2027-01-15T00:00:00Z";
/// After the DS certificate's 365 days.
const AFTER_DS: &str = "2027-12-01T00:00:00Z";
/// A stand-in portrait; unique bytes, so the tamper test can find them.
const PORTRAIT: &[u8] = b"\xff\xd8\xff\xe0 Shomei independent-checker portrait, not a JPEG";
/// pymdoccbor version pinned in scripts/test.sh.
const PYMDOCCBOR: &str = "1.4.0";

/// What the reader asks for: a subset (no address, no individual number).
const WANTED: &[(&str, &str)] = &[
    (NS_JP, elements::FULL_NAME),
    (NS_JP, elements::PORTRAIT),
    (NS_ISO23220, elements::BIRTH_DATE),
    (NS_ISO23220, "age_over_20"),
];

// ------------------------------------------------------------------ tools

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn checkers_dir() -> PathBuf {
    root().join("tests/mdoc_checkers")
}

fn missing_python() -> Vec<String> {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, sys; \
             sys.exit(m.version('pymdoccbor') != sys.argv[1])",
            PYMDOCCBOR,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Vec::new()
    } else {
        vec![format!(
            "python3 with pymdoccbor=={PYMDOCCBOR} (python3 -m pip install pymdoccbor=={PYMDOCCBOR})"
        )]
    }
}

fn missing_node() -> Vec<String> {
    let mut m = Vec::new();
    if Command::new("node").arg("--version").output().is_err() {
        m.push("node".to_owned());
    }
    let pkg = checkers_dir().join("node_modules/@auth0/mdl/package.json");
    let version = std::fs::read(&pkg)
        .ok()
        .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
        .and_then(|j| j["version"].as_str().map(str::to_owned));
    if version.as_deref() != Some("3.0.1") {
        m.push("tests/mdoc_checkers/node_modules with @auth0/mdl 3.0.1 (npm install there)".into());
    }
    m
}

/// True when the tools are there; otherwise says why and (outside CI)
/// lets the test pass.
fn have(missing: Vec<String>) -> bool {
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs these for the independent mdoc checkers: {missing:?}"
    );
    eprintln!("skipped: missing {missing:?}");
    false
}

fn json_line(tool: &str, out: &std::process::Output) -> Json {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{tool}: no JSON line ({e}); status {}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn pymdoccbor(dir: &Path, response: &str, iaca: &str, now: &str) -> Json {
    let out = Command::new("python3")
        .arg(checkers_dir().join("check_pymdoccbor.py"))
        .arg("--response")
        .arg(dir.join(response))
        .arg("--iaca")
        .arg(dir.join(iaca))
        .args(["--now", now])
        .output()
        .expect("python3");
    let j = json_line("pymdoccbor", &out);
    eprintln!("pymdoccbor {response} {iaca} @{now}: {j}");
    j
}

fn auth0(
    dir: &Path,
    response: &str,
    transcript: &str,
    iaca: &str,
    reader_key_hex: Option<&str>,
    now: &str,
) -> Json {
    let mut cmd = Command::new("node");
    cmd.current_dir(checkers_dir())
        .arg("check_auth0.mjs")
        .arg("--response")
        .arg(dir.join(response))
        .arg("--transcript")
        .arg(dir.join(transcript))
        .arg("--iaca")
        .arg(dir.join(iaca))
        .args(["--now", now]);
    if let Some(k) = reader_key_hex {
        cmd.args(["--reader-key-hex", k]);
    }
    let out = cmd.output().expect("node");
    let j = json_line("@auth0/mdl", &out);
    eprintln!("@auth0/mdl {response} {transcript} {iaca} @{now}: {j}");
    j
}

// ------------------------------------------------------------------ fixtures

/// A throw-away folder for the checkers' input files.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "shomei-mdoc-checkers-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(name), bytes).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The jp document as the authority builds it (born 2000-04-01: 26 on NOW).
fn content() -> DocumentContent {
    let holder = BasicFour::new(
        "山田 花子",
        "東京都千代田区霞が関1-1",
        BirthDate::new(time::macros::date!(2000 - 04 - 01)),
        Sex::Female,
    )
    .unwrap();
    let number = MyNumber::parse("123456789018").unwrap();
    jp::document(
        &MyNumberCardData {
            holder: &holder,
            my_number: &number,
            local_gov_code: "13101",
            portrait: PORTRAIT,
        },
        NOW,
    )
    .unwrap()
}

fn items() -> ItemsRequest {
    common::items(WANTED)
}

/// The files of one presentation, in a temp folder: `response.cbor`,
/// `transcript.cbor`, `iaca.pem`, `other-iaca.pem` (an IACA that did not
/// issue it), `tampered.cbor` (one byte of the disclosed portrait flipped).
struct Presented {
    dir: TempDir,
    /// The reader's ephemeral private scalar (hex), for DeviceMac.
    reader_key_hex: String,
}

fn write_files(name: &str, pki: &Pki, response: &[u8], transcript: &[u8]) -> TempDir {
    let dir = TempDir::new(name);
    dir.write("response.cbor", response);
    dir.write("transcript.cbor", transcript);
    dir.write("iaca.pem", pem("CERTIFICATE", &pki.iaca_der).as_bytes());
    let other = Pki::new("Shomei Other");
    dir.write(
        "other-iaca.pem",
        pem("CERTIFICATE", &other.iaca_der).as_bytes(),
    );
    let mut tampered = response.to_vec();
    let at = tampered
        .windows(PORTRAIT.len())
        .position(|w| w == PORTRAIT)
        .expect("the portrait is disclosed");
    tampered[at + PORTRAIT.len() - 1] ^= 0x01;
    dir.write("tampered.cbor", &tampered);
    // One byte of the MSO's COSE_Sign1 signature (issuerAuth) flipped.
    let parsed = DeviceResponse::parse(response).unwrap();
    let sig = &parsed.documents[0].issuer_signed.issuer_auth.signature;
    let at = response
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .expect("the issuer signature is in the response");
    let mut bad_sig = response.to_vec();
    bad_sig[at + 10] ^= 0x01;
    dir.write("bad-issuer-sig.cbor", &bad_sig);
    dir
}

const READER_SEED: u64 = 0x0bad_cafe_0bad_cafe;

/// The reader's ephemeral scalar as `present::ephemeral_key` draws it from
/// the reader's RNG (the first 32 bytes; checked against the key sent).
fn reader_scalar(seed: u64) -> [u8; 32] {
    let mut d = [0u8; 32];
    TestRng(seed).fill(&mut d).unwrap();
    d
}

/// Device signature: the holder's `Presenter` answers our `Reader`.
fn signature_presentation() -> Presented {
    let pki = Pki::new("Shomei Test");
    let key = EcdsaP256Signer::generate().unwrap();
    let is = pki.issue(
        &content(),
        &DeviceKey::from_spki(key.public_key_spki()).unwrap(),
    );
    let mut p = Presenter::new(
        &is.to_cbor().unwrap(),
        jp::DOC_TYPE,
        &key,
        ConsentPolicy::auto(),
        &mut TestRng(0xdead_beef_1234_5678),
        NOW,
    )
    .unwrap();
    let mut r = Reader::from_uri(&p.engagement_uri(), items(), &mut TestRng(READER_SEED)).unwrap();
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    assert!(reply.error.is_none(), "{:?}", reply.error);
    // Our own reader accepts it (control).
    let v = r
        .on_session_data(
            &reply.message.unwrap(),
            &pki.trust,
            NOW,
            StatusCheck::NotChecked,
        )
        .unwrap();
    assert_eq!(v.device_auth, DeviceAuthKind::Signature);
    let dir = write_files(
        "sig",
        &pki,
        r.device_response().unwrap(),
        r.session_transcript().as_bytes(),
    );
    Presented {
        dir,
        reader_key_hex: hex::encode(reader_scalar(READER_SEED)),
    }
}

/// Device MAC (§9.1.3.5): the mdoc's static key does ECDH with the reader's
/// ephemeral key. `Presenter` signs only, so the holder side is assembled
/// from the library's pieces (session, request, `DeviceSigned::mac`).
fn mac_presentation() -> Presented {
    let pki = Pki::new("Shomei Test");
    let static_key = EphemeralKey::from_scalar(&reader_scalar(0x5eed_0000_0000_0051)).unwrap();
    let is = pki.issue(
        &content(),
        &DeviceKey::from_uncompressed(&static_key.public_key().uncompressed()).unwrap(),
    );
    let e_device = EphemeralKey::from_scalar(&reader_scalar(0x5eed_0000_0000_00ed)).unwrap();
    let engagement = DeviceEngagement::build(&e_device.public_key(), Vec::new()).unwrap();
    let mut r = Reader::new(engagement.as_bytes(), items(), &mut TestRng(READER_SEED)).unwrap();

    // The holder.
    let est = parse_session_establishment(r.session_establishment()).unwrap();
    let d = reader_scalar(READER_SEED);
    assert_eq!(
        EphemeralKey::from_scalar(&d).unwrap().public_key(),
        *est.e_reader_key(),
        "reader key reproduced"
    );
    let transcript = SessionTranscript::new(&engagement, &est, Handover::Qr)
        .to_bytes()
        .unwrap();
    let keys = SessionKeys::derive(&e_device, est.e_reader_key(), &transcript).unwrap();
    let mut enc = SessionEncryption::new(Role::Device, keys);
    let request = parse_device_request(&enc.open_establishment(&est).unwrap()).unwrap();
    let asked = &request.doc_requests[0].items_request.name_spaces;
    let disclosed = is.disclose(|ns, el| asked.get(ns).is_some_and(|m| m.contains_key(el)));
    let ds = DeviceSigned::mac(
        &static_key,
        est.e_reader_key(),
        &transcript,
        jp::DOC_TYPE,
        vec![0xa0],
    )
    .unwrap();
    let response = DeviceResponse {
        version: "1.0".into(),
        documents: vec![ResponseDocument {
            doc_type: jp::DOC_TYPE.into(),
            issuer_signed: disclosed,
            device_signed: ds,
            errors: BTreeMap::new(),
        }],
        document_errors: BTreeMap::new(),
        status: STATUS_OK,
    }
    .encode()
    .unwrap();
    let msg = enc.seal(&response).unwrap().encode().unwrap();

    // Our own reader accepts it (control).
    let v = r
        .on_session_data(&msg, &pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap();
    assert_eq!(v.device_auth, DeviceAuthKind::Mac);
    let dir = write_files(
        "mac",
        &pki,
        r.device_response().unwrap(),
        r.session_transcript().as_bytes(),
    );
    Presented {
        dir,
        reader_key_hex: hex::encode(d),
    }
}

// ------------------------------------------------------------------ assertions

fn expected_disclosed() -> Json {
    let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (ns, el) in WANTED {
        m.entry(ns).or_default().push(el);
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    serde_json::to_value(m).unwrap()
}

fn strings(j: &Json) -> Vec<String> {
    j.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The checker decoded each value as the CBOR type we meant: a bool stays a
/// bool, the portrait a bstr, and birth_date's `#6.1004` full-date becomes
/// a date in both libraries.
fn assert_types(j: &Json) {
    for (ns, el, t) in [
        (NS_JP, elements::PORTRAIT, "bytes"),
        (NS_JP, elements::FULL_NAME, "string"),
        (NS_ISO23220, "age_over_20", "boolean"),
        (NS_ISO23220, elements::BIRTH_DATE, "date"),
    ] {
        assert_eq!(j["types"][format!("{ns}/{el}")], t, "{j}");
    }
}

fn check_pymdoccbor(p: &Presented) {
    let dir = &p.dir.0;
    let j = pymdoccbor(dir, "response.cbor", "iaca.pem", CHECK_AT);
    assert_eq!(j["valid"], true, "{j}");
    assert_eq!(j["documents"], 1, "{j}");
    assert_eq!(j["documents_invalid"], 0, "{j}");
    assert_eq!(j["doc_type"], jp::DOC_TYPE, "{j}");
    assert_eq!(j["disclosed"], expected_disclosed(), "{j}");
    assert_eq!(j["digests_verified"], WANTED.len(), "{j}");
    assert_eq!(j["digests_total"], WANTED.len(), "{j}");
    assert_types(&j);

    // One byte of the disclosed portrait flipped: its digest fails.
    let j = pymdoccbor(dir, "tampered.cbor", "iaca.pem", CHECK_AT);
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(
        strings(&j["failed"]),
        vec![format!("{NS_JP}/{}: hash mismatch", elements::PORTRAIT)],
        "{j}"
    );
    assert_eq!(j["digests_verified"], WANTED.len() - 1, "{j}");

    // The MSO signature broken.
    let j = pymdoccbor(dir, "bad-issuer-sig.cbor", "iaca.pem", CHECK_AT);
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(j["documents_invalid"], 1, "{j}");
    assert_eq!(j["issuer_signature_failed"], true, "{j}");

    // An IACA that did not sign the DS certificate.
    let j = pymdoccbor(dir, "response.cbor", "other-iaca.pem", CHECK_AT);
    assert_eq!(j["valid"], false, "{j}");
    assert!(
        j["log_errors"]
            .to_string()
            .contains("not signed by any trusted root"),
        "{j}"
    );

    // After the DS certificate's 365 days (pymdoccbor checks its dates).
    let j = pymdoccbor(dir, "response.cbor", "iaca.pem", AFTER_DS);
    assert_eq!(j["valid"], false, "{j}");
    assert!(
        j["log_errors"]
            .to_string()
            .contains("DS certificate expired"),
        "{j}"
    );
}

fn check_auth0(p: &Presented, kind: &str, validity_id: &str) {
    let dir = &p.dir.0;
    let key = (kind == "mac").then_some(p.reader_key_hex.as_str());
    let j = auth0(
        dir,
        "response.cbor",
        "transcript.cbor",
        "iaca.pem",
        key,
        CHECK_AT,
    );
    assert_eq!(j["valid"], true, "{j}");
    assert_eq!(j["failed"], serde_json::json!([]), "{j}");
    assert_eq!(j["device_auth"], kind, "{j}");
    assert_eq!(j["doc_type"], jp::DOC_TYPE, "{j}");
    assert_eq!(j["documents"], 1, "{j}");
    assert_eq!(j["issuer_auth_valid"], true, "{j}");
    assert_eq!(j["device_auth_valid"], true, "{j}");
    assert_eq!(j["data_integrity_valid"], true, "{j}");
    assert_eq!(j["disclosed"], expected_disclosed(), "{j}");
    assert_eq!(j["issuer_alg"], "ES256", "{j}");
    assert_eq!(
        j["device_alg"],
        if kind == "mac" { "HS256" } else { "ES256" },
        "{j}"
    );
    let passed = strings(&j["passed"]);
    for id in [
        "ISSUER_CERTIFICATE_VALIDITY",
        "ISSUER_SIGNATURE_VALIDITY",
        "MSO_VALIDITY_AT_VERIFICATION_TIME",
        "ATTRIBUTE_DIGEST_MATCH",
        validity_id,
    ] {
        assert!(passed.iter().any(|p| p == id), "{id} not passed: {j}");
    }
    assert_types(&j);

    // One byte of the disclosed portrait flipped: its digest fails.
    let j = auth0(
        dir,
        "tampered.cbor",
        "transcript.cbor",
        "iaca.pem",
        key,
        CHECK_AT,
    );
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(strings(&j["failed"]), vec!["ATTRIBUTE_DIGEST_MATCH"], "{j}");
    assert_eq!(
        strings(&j["digest_mismatch"]),
        vec![format!("{NS_JP}/{}", elements::PORTRAIT)],
        "{j}"
    );

    // The MSO signature broken.
    let j = auth0(
        dir,
        "bad-issuer-sig.cbor",
        "transcript.cbor",
        "iaca.pem",
        key,
        CHECK_AT,
    );
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(
        strings(&j["failed"]),
        vec!["ISSUER_SIGNATURE_VALIDITY"],
        "{j}"
    );

    // Another IACA: the chain fails.
    let j = auth0(
        dir,
        "response.cbor",
        "transcript.cbor",
        "other-iaca.pem",
        key,
        CHECK_AT,
    );
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(
        strings(&j["failed"]),
        vec!["ISSUER_CERTIFICATE_VALIDITY"],
        "{j}"
    );

    // After the MSO's validUntil.
    let j = auth0(
        dir,
        "response.cbor",
        "transcript.cbor",
        "iaca.pem",
        key,
        AFTER_MSO,
    );
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(
        strings(&j["failed"]),
        vec!["MSO_VALIDITY_AT_VERIFICATION_TIME"],
        "{j}"
    );
}

// ------------------------------------------------------------------ tests

#[test]
fn pymdoccbor_verifies_the_issuer_signature_and_digests() {
    if !have(missing_python()) {
        return;
    }
    check_pymdoccbor(&signature_presentation());
    check_pymdoccbor(&mac_presentation());
}

#[test]
fn auth0_mdl_verifies_a_device_signature_response() {
    if !have(missing_node()) {
        return;
    }
    let p = signature_presentation();
    check_auth0(&p, "signature", "DEVICE_SIGNATURE_VALIDITY");

    // The device signature bound to another session transcript fails.
    let other = mac_presentation();
    std::fs::copy(
        other.dir.0.join("transcript.cbor"),
        p.dir.0.join("other-transcript.cbor"),
    )
    .unwrap();
    let j = auth0(
        &p.dir.0,
        "response.cbor",
        "other-transcript.cbor",
        "iaca.pem",
        None,
        CHECK_AT,
    );
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(
        strings(&j["failed"]),
        vec!["DEVICE_SIGNATURE_VALIDITY"],
        "{j}"
    );
}

#[test]
fn auth0_mdl_verifies_a_device_mac_response() {
    if !have(missing_node()) {
        return;
    }
    let p = mac_presentation();
    check_auth0(&p, "mac", "DEVICE_MAC_VALIDITY");

    // Another reader key: another EMacKey, the MAC fails.
    let wrong = hex::encode(reader_scalar(READER_SEED ^ 1));
    let j = auth0(
        &p.dir.0,
        "response.cbor",
        "transcript.cbor",
        "iaca.pem",
        Some(&wrong),
        CHECK_AT,
    );
    assert_eq!(j["valid"], false, "{j}");
    assert_eq!(strings(&j["failed"]), vec!["DEVICE_MAC_VALIDITY"], "{j}");
}
