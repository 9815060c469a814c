//! The phone as outside tools drive it: `shomei phone …` against a real
//! `shomei authority serve`, checked with openssl (CMS, OCSP) and, for the
//! APDU surface, with the same JPKI client that reads a card.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{failure, json_of, openssl, shomei};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

const CARD_PW: &str = "SUZUKI01";
const CARD_PIN: &str = "4321";
const PHONE_PW: &str = "PHONE2026";
const PHONE_PIN: &str = "2468";

/// An authority (`authority init` + `serve`), with a card; phones come from
/// the development manufacturer, which `authority init` trusts by default
/// (the contract's path: no key exchange needed).
struct World {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    url: String,
    token: String,
    child: Child,
    card: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn world() -> World {
    world_with(&[])
}

/// [`world`], with extra `authority init` flags.
fn world_with(init_flags: &[&str]) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("auth");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    json_of(&shomei(
        &[
            "authority",
            "init",
            "--data",
            dir.to_str().unwrap(),
            "--base-url",
            &url,
            "--crl-shards",
            "2",
            "--json",
        ]
        .into_iter()
        .chain(init_flags.iter().copied())
        .collect::<Vec<_>>(),
    ));
    #[allow(clippy::zombie_processes)] // World::drop kills and waits
    let child = Command::new(env!("CARGO_BIN_EXE_shomei"))
        .args([
            "authority",
            "serve",
            "--data",
            dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let token = std::fs::read_to_string(dir.join("operator.token"))
        .unwrap()
        .trim()
        .to_owned();
    let card = tmp.path().join("ichiro.card");
    let mut w = World {
        tmp,
        dir,
        url,
        token,
        child,
        card,
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            json_of(&shomei(&[
                "card",
                "issue",
                "--authority",
                &w.url,
                "--operator-token-file",
                w.dir.join("operator.token").to_str().unwrap(),
                "--name",
                "鈴木 一郎",
                "--address",
                "北海道札幌市中央区1-1",
                "--birth",
                "1980-02-03",
                "--sex",
                "1",
                "--sign-password",
                CARD_PW,
                "--auth-pin",
                CARD_PIN,
                "--out",
                w.card.to_str().unwrap(),
                "--json",
            ]));
            return w;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    w.child.kill().unwrap();
    panic!("authority did not start");
}

impl World {
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn provision_out(&self, phone: &Path, card_password: &str) -> Output {
        self.provision_with(phone, card_password, &[])
    }

    fn provision_with(&self, phone: &Path, card_password: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "phone",
            "provision",
            "--authority",
            &self.url,
            "--card",
            self.card.to_str().unwrap(),
            "--card-password",
            card_password,
            "--phone",
            phone.to_str().unwrap(),
            "--sign-password",
            PHONE_PW,
            "--auth-pin",
            PHONE_PIN,
            "--json",
        ];
        args.extend_from_slice(extra);
        shomei(&args)
    }

    fn provision(&self, name: &str) -> (PathBuf, Value) {
        let phone = self.path(name);
        let v = json_of(&self.provision_out(&phone, CARD_PW));
        (phone, v)
    }

    fn phone(&self, args: &[&str]) -> Output {
        let mut all = vec!["phone"];
        all.extend_from_slice(args);
        all.push("--json");
        shomei(&all)
    }

    fn card(&self, args: &[&str]) -> Output {
        let mut all = vec!["card"];
        all.extend_from_slice(args);
        all.extend([
            "--authority",
            &self.url,
            "--card",
            self.card.to_str().unwrap(),
            "--pin",
            CARD_PIN,
            "--json",
        ]);
        shomei(&all)
    }

    /// An operator call (bearer token).
    fn operator(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    }

    /// Signs `content` with the phone signing key and checks the signature
    /// with `openssl cms -verify` against the authority's signing root.
    fn sign_and_verify(&self, phone: &Path, content: &str) {
        let doc = self.path("doc.txt");
        std::fs::write(&doc, content).unwrap();
        let p7s = self.path("doc.p7s");
        let v = json_of(&self.phone(&[
            "sign",
            "--phone",
            phone.to_str().unwrap(),
            "--password",
            PHONE_PW,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            p7s.to_str().unwrap(),
        ]));
        assert!(v["bytes"].as_u64().unwrap() > 1000);
        let (ok, out) = openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            p7s.to_str().unwrap(),
            "-content",
            doc.to_str().unwrap(),
            "-CAfile",
            self.dir.join("ca/sign.pem").to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ]);
        assert!(ok && out.contains("Verification successful"), "{out}");
    }

    /// The phone certificate (`sign` or `auth`) from the wallet, as PEM.
    /// (The wallet file is sealed by the phone's secure element, so it is
    /// read through the phone, which opens the element.)
    fn phone_cert(&self, phone: &Path, kind: &str) -> PathBuf {
        let wallet = serde_json::to_value(wallet_state(phone)).unwrap();
        let der = hex::decode(wallet["certificates"][kind].as_str().unwrap()).unwrap();
        assert!(!der.is_empty(), "the phone holds its {kind} certificate");
        let name = format!("{}-{kind}", phone.file_name().unwrap().to_str().unwrap());
        let der_path = self.path(&format!("{name}.der"));
        let pem_path = self.path(&format!("{name}.pem"));
        std::fs::write(&der_path, der).unwrap();
        let (ok, out) = openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            der_path.to_str().unwrap(),
            "-out",
            pem_path.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        pem_path
    }

    /// `openssl ocsp` on a phone certificate (PEM), at the URL it carries.
    fn ocsp(&self, cert_pem: &Path, root: &str) -> String {
        let ca = self.dir.join(format!("ca/{root}.pem"));
        let (ok, url) = openssl(&[
            "x509",
            "-in",
            cert_pem.to_str().unwrap(),
            "-noout",
            "-ocsp_uri",
        ]);
        assert!(ok, "{url}");
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            ca.to_str().unwrap(),
            "-cert",
            cert_pem.to_str().unwrap(),
            "-url",
            url.trim(),
            "-CAfile",
            ca.to_str().unwrap(),
        ]);
        assert!(ok && out.contains("Response verify OK"), "{out}");
        out
    }
}

/// The phone's wallet, read through its secure element.
fn wallet_state(phone: &Path) -> shomei_phone::WalletState {
    shomei_phone::Phone::open(phone).unwrap().state().clone()
}

fn status(w: &World, phone: &Path) -> Value {
    json_of(&w.phone(&["status", "--phone", phone.to_str().unwrap()]))
}

fn sync(w: &World, phone: &Path) -> Value {
    json_of(&w.phone(&["sync", "--phone", phone.to_str().unwrap()]))
}

fn cert_status(sync: &Value, serial: &str) -> String {
    sync["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["serial"] == serial)
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{serial} not in {sync}"))
}

// ---------------------------------------------------------------- scenarios

#[test]
fn phone_provisioned_from_card_signs_and_openssl_verifies() {
    let w = world();
    let (phone, v) = w.provision("phone1");
    assert!(v["device_id"].as_str().unwrap().starts_with("d_"));
    assert_eq!(v["superseded_devices"], json!([]));
    // The mobile ID came with the phone; status shows it.
    assert_eq!(v["mdoc"]["doc_type"], "org.iso.23220.1.jp.mnc", "{v}");
    assert!(v["mdoc"]["status_idx"].is_u64(), "{v}");
    assert!(v["mdoc"]["valid_until"].is_string(), "{v}");
    assert_eq!(status(&w, &phone)["mdoc"], v["mdoc"]);
    w.sign_and_verify(&phone, "転入届 / moving-in notification\n");
    // The authentication key signs too (PIN), and its certificate chains to
    // the authentication root.
    let doc = w.path("login.txt");
    std::fs::write(&doc, "challenge").unwrap();
    let p7s = w.path("login.p7s");
    json_of(&w.phone(&[
        "sign",
        "--phone",
        phone.to_str().unwrap(),
        "--kind",
        "auth",
        "--pin",
        PHONE_PIN,
        "--in",
        doc.to_str().unwrap(),
        "--out",
        p7s.to_str().unwrap(),
    ]));
    let (ok, out) = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        p7s.to_str().unwrap(),
        "-content",
        doc.to_str().unwrap(),
        "-CAfile",
        w.dir.join("ca/auth.pem").to_str().unwrap(),
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    ]);
    assert!(ok, "{out}");
    // Status: the serials, the element's PIN counters, the token.
    let st = status(&w, &phone);
    assert_eq!(st["provisioned"], true);
    assert_eq!(st["sign_serial"], v["sign_serial"]);
    assert_eq!(st["token"], "JPKIAPGPSETOKEN");
    assert_eq!(st["auth_pin_tries_left"], 3);
    assert_eq!(st["sign_password_tries_left"], 5);
    // OCSP says good; the phone signing certificate carries the basic four
    // in its subjectAltName like a card's, and its own policy.
    let pem = w.phone_cert(&phone, "sign");
    assert!(w.ocsp(&pem, "sign").contains(": good"));
    // A wrong phone password is counted by the secure element (exit 2).
    let out = w.phone(&[
        "sign",
        "--phone",
        phone.to_str().unwrap(),
        "--password",
        "WRONG1",
        "--in",
        doc.to_str().unwrap(),
        "--out",
        p7s.to_str().unwrap(),
    ]);
    let (code, err) = failure(&out);
    assert_eq!(code, 2);
    assert!(err.contains("4 tries left"), "{err}");
    assert_eq!(status(&w, &phone)["sign_password_tries_left"], 4);
    // Sync fills the inbox with the holder's events.
    let s = sync(&w, &phone);
    assert_eq!(s["status"], "active");
    let actions: Vec<_> = s["new_notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.contains(&"phone_provisioned".to_owned()),
        "{actions:?}"
    );
    // Provisioning the same phone twice is refused (exit 2).
    let (code, err) = failure(&w.provision_out(&phone, CARD_PW));
    assert_eq!(code, 2);
    assert!(err.contains("already holds certificates"), "{err}");
}

#[test]
fn phone_applet_answers_the_card_client() {
    use shomei_card::{CardError, CertKind, PinKind, TokenKind, Transport};
    let w = world();
    let (phone, v) = w.provision("phone1");
    {
        let p = shomei_phone::Phone::open(&phone).unwrap();
        let mut client = p.client().unwrap();
        assert_eq!(
            client.token().unwrap(),
            TokenKind::Phone(shomei_card::SecureElement::GpSe)
        );
        // 000A needs the auth PIN on a GP-SE: 69 82 before.
        assert_eq!(
            client.read_certificate(CertKind::Auth),
            Err(CardError::SecurityStatusNotSatisfied)
        );
        let raw = client
            .transport_mut()
            .transmit(&hex::decode("00B0000004").unwrap())
            .unwrap();
        assert_eq!(raw, [0x69, 0x82]);
        // The CA certificates are free, as on the card.
        client.read_certificate(CertKind::AuthCa).unwrap();
        // A wrong PIN is counted by the element (persisted, seen by another process).
        assert_eq!(
            client.verify(PinKind::Auth, "0000"),
            Err(CardError::WrongPin { tries_left: 2 })
        );
        client.verify(PinKind::Auth, PHONE_PIN).unwrap();
        let st = client.status().unwrap();
        assert_eq!(
            st.auth_serial.unwrap().to_hex(),
            v["auth_serial"].as_str().unwrap()
        );
        assert_eq!(
            st.sign_serial, None,
            "the sign certificate needs the password"
        );
        client.verify(PinKind::Auth, "0000").unwrap_err();
    }
    assert_eq!(status(&w, &phone)["auth_pin_tries_left"], 2);
    // The card, read by the same client, is still a card.
    let card = shomei_card::Card::open(shomei_card::FileMemory::new(&w.card)).unwrap();
    let mut c = shomei_card::JpkiClient::new(shomei_card::InProcess::new(card));
    assert_eq!(c.token().unwrap(), TokenKind::Card);
}

#[test]
fn second_phone_supersedes_first_and_old_phone_wipes_on_sync() {
    let w = world();
    let (old, v1) = w.provision("phone1");
    let old_sign = w.phone_cert(&old, "sign");
    let (new, v2) = w.provision("phone2");
    assert_eq!(v2["superseded_devices"], json!([v1["device_id"]]));
    // At the authority the old phone's certificates are already revoked.
    let ocsp = w.ocsp(&old_sign, "sign");
    assert!(
        ocsp.contains("revoked") && ocsp.contains("superseded"),
        "{ocsp}"
    );
    // The old phone learns it at its next sync and erases itself, and
    // stops trusting readers; the new phone keeps the reader CA at sync.
    assert!(old.join("trusted-readers.pem").exists());
    let s = sync(&w, &old);
    assert_eq!(s["status"], "superseded");
    assert!(!old.join("trusted-readers.pem").exists());
    std::fs::remove_file(new.join("trusted-readers.pem")).unwrap();
    sync(&w, &new);
    assert!(
        new.join("trusted-readers.pem").exists(),
        "refreshed at sync"
    );
    assert!(
        status(&w, &old)["mdoc"].is_null(),
        "the mobile ID is dropped"
    );
    assert_eq!(
        (s["wiped"].as_bool(), s["wipe_confirmed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        cert_status(&s, v1["sign_serial"].as_str().unwrap()),
        "revoked"
    );
    let st = status(&w, &old);
    assert_eq!(st["provisioned"], false);
    assert_eq!(st["wipe"]["cause"]["cause"], "authority");
    assert_eq!(st["auth_pin"]["state"], "not_set");
    let doc = w.path("d.txt");
    std::fs::write(&doc, "x").unwrap();
    let (code, err) = failure(&w.phone(&[
        "sign",
        "--phone",
        old.to_str().unwrap(),
        "--password",
        PHONE_PW,
        "--in",
        doc.to_str().unwrap(),
        "--out",
        w.path("d.p7s").to_str().unwrap(),
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("no certificates"), "{err}");
    // Syncing again is quiet; the new phone works.
    assert_eq!(sync(&w, &old)["wiped"], false);
    w.sign_and_verify(&new, "new phone");
    assert_eq!(sync(&w, &new)["status"], "active");
}

#[test]
fn card_revoked_ends_phone() {
    let w = world();
    let (phone, v) = w.provision("phone1");
    let sign_pem = w.phone_cert(&phone, "sign");
    assert!(w.ocsp(&sign_pem, "sign").contains(": good"));
    let card = json_of(&shomei(&[
        "card",
        "read-cert",
        "--card",
        w.card.to_str().unwrap(),
        "--kind",
        "sign",
        "--password",
        CARD_PW,
        "--out",
        w.path("card-sign.der").to_str().unwrap(),
        "--json",
    ]));
    assert!(card["bytes"].as_u64().unwrap() > 0);
    let (ok, serial) = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        w.path("card-sign.der").to_str().unwrap(),
        "-noout",
        "-serial",
    ]);
    assert!(ok);
    let card_serial = serial.trim().trim_start_matches("serial=").to_owned();
    // The operator revokes the card's signing certificate…
    let (code, r) = w.operator(
        &format!("/v1/certificates/{card_serial}/revoke"),
        json!({"reason": "keyCompromise"}),
    );
    assert_eq!(code, 200, "{r}");
    // …and the phone signing certificate derived from it ends with it.
    let out = w.ocsp(&sign_pem, "sign");
    assert!(out.contains("revoked"), "{out}");
    let s = sync(&w, &phone);
    assert_eq!(
        cert_status(&s, v["sign_serial"].as_str().unwrap()),
        "revoked"
    );
}

#[test]
fn lost_phone_suspended_then_resumed_with_card_proof() {
    let w = world();
    let (phone, v) = w.provision("phone1");
    let serial = v["sign_serial"].as_str().unwrap();
    let pem = w.phone_cert(&phone, "sign");
    // The holder, with the card (auth PIN), suspends the phone certificate.
    let r = json_of(&w.card(&["suspend", "--serial", serial]));
    assert_eq!(r["status"], "suspended");
    let out = w.ocsp(&pem, "sign");
    assert!(out.contains("certificateHold"), "{out}");
    assert_eq!(cert_status(&sync(&w, &phone), serial), "suspended");
    // Found again: resumed with the card.
    let r = json_of(&w.card(&["resume", "--serial", serial]));
    assert_eq!(r["status"], "active");
    assert!(w.ocsp(&pem, "sign").contains(": good"));
    assert_eq!(cert_status(&sync(&w, &phone), serial), "active");
    w.sign_and_verify(&phone, "found it");
    // A wrong card PIN proves nothing (exit 2) and changes nothing.
    let out = shomei(&[
        "card",
        "suspend",
        "--authority",
        &w.url,
        "--card",
        w.card.to_str().unwrap(),
        "--pin",
        "0000",
        "--serial",
        serial,
        "--json",
    ]);
    assert_eq!(failure(&out).0, 2);
    assert!(w.ocsp(&pem, "sign").contains(": good"));
}

#[test]
fn lost_phone_revoked_then_recovered_on_new_phone() {
    let w = world();
    let (lost, v1) = w.provision("phone1");
    let lost_sign = w.phone_cert(&lost, "sign");
    // Reported lost: the operator queues a remote wipe and revokes.
    let (code, r) = w.operator(
        &format!("/v1/devices/{}/wipe", v1["device_id"].as_str().unwrap()),
        json!({"lost": true}),
    );
    assert_eq!(code, 200, "{r}");
    let out = w.ocsp(&lost_sign, "sign");
    assert!(
        out.contains("revoked") && out.contains("keyCompromise"),
        "{out}"
    );
    // Recovered from the card on a new phone, in one provisioning.
    let (new, v2) = w.provision("phone2");
    assert_eq!(
        v2["superseded_devices"],
        json!([]),
        "the lost phone was no longer active"
    );
    w.sign_and_verify(&new, "recovered");
    assert!(
        w.ocsp(&w.phone_cert(&new, "sign"), "sign")
            .contains(": good")
    );
    // If the lost phone ever comes online, it wipes itself.
    let s = sync(&w, &lost);
    assert_eq!(s["status"], "lost");
    assert_eq!(s["wiped"], true);
    assert_eq!(status(&w, &lost)["provisioned"], false);
}

#[test]
fn self_retire_before_sale_wipes() {
    let w = world();
    let (phone, v) = w.provision("phone1");
    let pem = w.phone_cert(&phone, "auth");
    // A wrong PIN retires nothing.
    let (code, _) = failure(&w.phone(&[
        "retire",
        "--phone",
        phone.to_str().unwrap(),
        "--pin",
        "0000",
    ]));
    assert_eq!(code, 2);
    assert_eq!(status(&w, &phone)["provisioned"], true);
    let r = json_of(&w.phone(&[
        "retire",
        "--phone",
        phone.to_str().unwrap(),
        "--pin",
        PHONE_PIN,
    ]));
    assert_eq!(r["device_id"], v["device_id"]);
    assert_eq!(r["revoked"].as_array().unwrap().len(), 2);
    assert_eq!(
        (r["wiped"].as_bool(), r["wipe_confirmed"].as_bool()),
        (Some(true), Some(true))
    );
    let out = w.ocsp(&pem, "auth");
    assert!(
        out.contains("revoked") && out.contains("cessationOfOperation"),
        "{out}"
    );
    let st = status(&w, &phone);
    assert_eq!(st["provisioned"], false);
    assert_eq!(st["wipe"]["cause"]["cause"], "retired");
    assert_eq!(st["authority_status"], "wiped");
    // Nothing more to hear; the phone can be sold, or provisioned again.
    assert_eq!(sync(&w, &phone)["wiped"], false);
    let (code, _) = failure(&w.phone(&[
        "retire",
        "--phone",
        phone.to_str().unwrap(),
        "--pin",
        PHONE_PIN,
    ]));
    assert_eq!(code, 2);
    let again = json_of(&w.provision_out(&phone, CARD_PW));
    assert_eq!(again["superseded_devices"], json!([]));
}

#[test]
fn biometric_change_requires_pin_again() {
    let w = world();
    let (phone, _) = w.provision("phone1");
    let p = phone.to_str().unwrap();
    let (finger1, finger2) = (w.path("finger1"), w.path("finger2"));
    std::fs::write(&finger1, "left index").unwrap();
    std::fs::write(&finger2, "right thumb").unwrap();
    let doc = w.path("c.txt");
    std::fs::write(&doc, "challenge").unwrap();
    let out = w.path("c.p7s");
    let auth_sign = |extra: &[&str]| {
        let mut args = vec![
            "sign",
            "--phone",
            p,
            "--kind",
            "auth",
            "--in",
            doc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        w.phone(&args)
    };
    let e = json_of(&w.phone(&[
        "biometric",
        "enrol",
        "--phone",
        p,
        "--template-file",
        finger1.to_str().unwrap(),
    ]));
    assert_eq!(e["biometric"]["state"], "needs_pin");
    // Not before the PIN confirms the enrolment.
    let (code, err) = failure(&auth_sign(&["--biometric", finger1.to_str().unwrap()]));
    assert_eq!(code, 2);
    assert!(err.contains("enter the authentication PIN"), "{err}");
    json_of(&auth_sign(&["--pin", PHONE_PIN]));
    json_of(&auth_sign(&["--biometric", finger1.to_str().unwrap()]));
    // Never for the signing key.
    let (code, err) = failure(&w.phone(&[
        "sign",
        "--phone",
        p,
        "--biometric",
        finger1.to_str().unwrap(),
        "--in",
        doc.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("never unlocks the signing key"), "{err}");
    // A new enrolment suspends biometric unlock until the PIN again.
    let c = json_of(&w.phone(&[
        "biometric",
        "change",
        "--phone",
        p,
        "--template-file",
        finger2.to_str().unwrap(),
    ]));
    assert_eq!(c["biometric"]["state"], "needs_pin");
    assert_eq!(
        failure(&auth_sign(&["--biometric", finger2.to_str().unwrap()])).0,
        2
    );
    json_of(&auth_sign(&["--pin", PHONE_PIN]));
    assert_eq!(status(&w, &phone)["biometric"]["state"], "ready");
    // The old sample no longer matches (counted); the new one works, also to retire.
    let (code, err) = failure(&auth_sign(&["--biometric", finger1.to_str().unwrap()]));
    assert_eq!(code, 2);
    assert!(err.contains("did not match"), "{err}");
    json_of(&w.phone(&[
        "retire",
        "--phone",
        p,
        "--biometric",
        finger2.to_str().unwrap(),
    ]));
}

#[test]
fn tampered_phone_storage_is_detected() {
    let w = world();
    let (phone, _) = w.provision("phone1");
    let old_sign = w.phone_cert(&phone, "sign");
    let sealed = phone.join("se/se.sealed");
    let mut bytes = std::fs::read(&sealed).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&sealed, bytes).unwrap();
    // The first open finds it: the element wipes itself, exit 1, one line.
    let (code, err) = failure(&w.phone(&["status", "--phone", phone.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(
        err.contains("tampered") && err.contains("wiped itself"),
        "{err}"
    );
    // Afterwards the phone is empty and says why.
    let st = status(&w, &phone);
    assert_eq!(st["provisioned"], false);
    assert_eq!(st["wipe"]["cause"]["cause"], "tampered");
    assert_eq!(st["sign_password"]["state"], "not_set");
    let doc = w.path("t.txt");
    std::fs::write(&doc, "x").unwrap();
    assert_eq!(
        failure(&w.phone(&[
            "sign",
            "--phone",
            phone.to_str().unwrap(),
            "--password",
            PHONE_PW,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            w.path("t.p7s").to_str().unwrap(),
        ]))
        .0,
        2
    );
    // At its next sync the phone tells the authority, which ends the
    // certificates whose keys are gone (keyCompromise) and records the wipe.
    let s = sync(&w, &phone);
    assert_eq!(s["status"], "wiped", "{s}");
    assert_eq!(s["wipe_confirmed"], true, "{s}");
    let ocsp = w.ocsp(&old_sign, "sign");
    assert!(
        ocsp.contains("revoked") && ocsp.contains("keyCompromise"),
        "{ocsp}"
    );
    // The card puts the holder back on the phone (the old device is over).
    let v2 = json_of(&w.provision_out(&phone, CARD_PW));
    assert_eq!(v2["superseded_devices"], json!([]));
    // A swapped certificate in a plain wallet written over the sealed one is
    // not even read: once the phone has stored a sealed wallet, a plain one
    // is refused and left as it is (a sealed swap is caught against the
    // element's keys: the phone crate's tampered_phone_storage_is_detected).
    let wallet = phone.join("phone.json");
    let good = std::fs::read(&wallet).unwrap();
    let mut doc_v = serde_json::to_value(wallet_state(&phone)).unwrap();
    doc_v["certificates"]["sign"] = doc_v["certificates"]["auth"].clone();
    let swapped = serde_json::to_vec(&doc_v).unwrap();
    std::fs::write(&wallet, &swapped).unwrap();
    let (code, err) = failure(&w.phone(&["status", "--phone", phone.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(err.contains("cannot be opened"), "{err}");
    assert_eq!(std::fs::read(&wallet).unwrap(), swapped);
    std::fs::write(&wallet, &good).unwrap();
    w.sign_and_verify(&phone, "back");
    // An old copy put back (to refund a password try) is a rollback: wiped.
    let before = std::fs::read(&sealed).unwrap();
    let out = w.phone(&[
        "sign",
        "--phone",
        phone.to_str().unwrap(),
        "--password",
        "WRONG1",
        "--in",
        doc.to_str().unwrap(),
        "--out",
        w.path("t.p7s").to_str().unwrap(),
    ]);
    assert!(failure(&out).1.contains("4 tries left"));
    std::fs::write(&sealed, before).unwrap();
    let (code, err) = failure(&w.phone(&["status", "--phone", phone.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(status(&w, &phone)["provisioned"], false);
}

/// Every form in which `bytes` could show up in a file: raw, and hex.
fn forms(bytes: &[u8]) -> [Vec<u8>; 3] {
    [
        bytes.to_vec(),
        hex::encode(bytes).into_bytes(),
        hex::encode_upper(bytes).into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn phone_wallet_file_is_sealed_and_shows_no_personal_data() {
    let w = world();
    let (phone, p) = w.provision("phone1");
    let s = sync(&w, &phone);
    assert_eq!(s["status"], "active", "{s}");
    let raw = std::fs::read(phone.join("phone.json")).unwrap();
    let state = wallet_state(&phone);
    assert!(state.mdoc.is_some(), "the mobile ID is in the wallet");
    let holder_id = p["holder_id"].as_str().unwrap();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("name", "鈴木".as_bytes().to_vec()),
        ("given name", "一郎".as_bytes().to_vec()),
        ("address", "北海道札幌市中央区1-1".as_bytes().to_vec()),
        ("holder id", holder_id.as_bytes().to_vec()),
        ("device token", b"sdt_".to_vec()),
        ("signing certificate", state.certificates.sign.clone()),
        (
            "mobile ID",
            state.mdoc.as_ref().unwrap().issuer_signed.clone(),
        ),
    ];
    // The wallet does hold them (so this test can fail)…
    let plain = serde_json::to_vec_pretty(&state).unwrap();
    for (what, bytes) in &secrets {
        assert!(
            forms(bytes).iter().any(|f| contains(&plain, f)),
            "the wallet holds the {what}"
        );
    }
    // …the file does not show any of them: it is sealed (version byte 1).
    assert_eq!(raw[0], 1, "a sealed wallet, not JSON");
    for (what, bytes) in &secrets {
        for form in forms(bytes) {
            assert!(!contains(&raw, &form), "phone.json shows the {what}");
        }
    }
    // Copied into another phone's folder, it does not open there, and is
    // left as it is; the phone it belongs to still works.
    // (Provisioning the second phone supersedes the first at the authority;
    // that does not matter here: neither syncs again.)
    let other = w.path("phone2");
    let second = w.provision_out(&other, CARD_PW);
    assert!(second.status.success());
    std::fs::write(other.join("phone.json"), &raw).unwrap();
    let (code, err) = failure(&w.phone(&["status", "--phone", other.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot be opened"), "{err}");
    assert!(!err.contains(holder_id), "{err}");
    assert_eq!(std::fs::read(other.join("phone.json")).unwrap(), raw);
    assert_eq!(status(&w, &phone)["provisioned"], true);
}

#[test]
fn wrong_card_password_is_counted_on_the_card_and_changes_nothing() {
    let w = world();
    let phone = w.path("phone1");
    let (code, err) = failure(&w.provision_out(&phone, "WRONG999"));
    assert_eq!(code, 2);
    assert!(
        err.contains("card signing password") && err.contains("4 tries left"),
        "{err}"
    );
    // Counted on the card (durably), and nothing else happened.
    let st = json_of(&shomei(&[
        "card",
        "status",
        "--card",
        w.card.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(st["sign_password_tries_left"], 4);
    assert!(!phone.exists(), "no phone folder is left behind");
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/v1/holders/{}", w.url, holder_id(&w)))
        .bearer_auth(&w.token)
        .send()
        .unwrap();
    let h: Value = resp.json().unwrap();
    assert_eq!(
        h["certificates"].as_array().unwrap().len(),
        2,
        "only the card's: {h}"
    );
    // The right password works, and resets the card's counter.
    w.provision("phone1");
    let st = json_of(&shomei(&[
        "card",
        "status",
        "--card",
        w.card.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(st["sign_password_tries_left"], 5);
}

/// Nothing a refusal may print: the secrets given and the holder's personal data.
fn assert_no_secrets(err: &str, secrets: &[&str]) {
    for s in secrets
        .iter()
        .chain(&["鈴木", "一郎", "北海道", "札幌", "1980-02-03", "19800203"])
    {
        assert!(!err.contains(s), "no secret or personal data: {err}");
    }
}

#[test]
fn blocked_card_password_refuses_provisioning_and_changes_nothing() {
    let w = world();
    let phone = w.path("phone1");
    let card_tries = || {
        json_of(&shomei(&[
            "card",
            "status",
            "--card",
            w.card.to_str().unwrap(),
            "--json",
        ]))["sign_password_tries_left"]
            .as_u64()
            .unwrap()
    };
    // The card's signing password has 5 tries (jpki.md §1.6); each wrong
    // one is counted on the card, the fifth blocks it.
    for left in (0..5u64).rev() {
        let (code, err) = failure(&w.provision_out(&phone, "WRONG999"));
        assert_eq!(code, 2, "{err}");
        assert_eq!(card_tries(), left);
        if left > 0 {
            assert!(err.contains(&format!("{left} tries left")), "{err}");
        }
        assert!(!phone.exists(), "no phone folder is left behind");
    }
    // Blocked: even the right password is refused, on one line, with nothing secret in it.
    let (code, err) = failure(&w.provision_out(&phone, CARD_PW));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("blocked"), "{err}");
    assert_no_secrets(&err, &[CARD_PW, CARD_PIN, PHONE_PW, PHONE_PIN, "WRONG999"]);
    assert_eq!(card_tries(), 0, "still blocked");
    assert!(!phone.exists(), "no phone folder is left behind");
    // An existing empty phone folder is not filled either.
    std::fs::create_dir(&phone).unwrap();
    let (code, _) = failure(&w.provision_out(&phone, CARD_PW));
    assert_eq!(code, 2);
    assert_eq!(std::fs::read_dir(&phone).unwrap().count(), 0);
    // The authority has only the card's certificates and no phone.
    let h: Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/holders/{}", w.url, holder_id(&w)))
        .bearer_auth(&w.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    // In any order (the registry lists them by serial, which is random).
    let mut classes: Vec<_> = h["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["class"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    classes.sort_unstable();
    assert_eq!(
        classes,
        [("card-auth", "active"), ("card-sign", "active")],
        "{h}"
    );
    assert_eq!(h["devices"], json!([]), "{h}");
}

#[test]
fn phone_sign_with_blocked_password_or_pin_is_refused() {
    let w = world();
    let (phone, _) = w.provision("phone1");
    let doc = w.path("doc.txt");
    std::fs::write(&doc, "契約書").unwrap();
    let out = w.path("doc.p7s");
    let sign = |kind: &str, secret_flag: &str, secret: &str| {
        w.phone(&[
            "sign",
            "--phone",
            phone.to_str().unwrap(),
            "--kind",
            kind,
            secret_flag,
            secret,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let st = || status(&w, &phone);
    // The phone's own signing password: 5 tries in the secure element.
    for left in (0..5u64).rev() {
        let (code, err) = failure(&sign("sign", "--password", "WRONG0000"));
        assert_eq!(code, 2, "{err}");
        assert_eq!(st()["sign_password_tries_left"], left);
    }
    let (code, err) = failure(&sign("sign", "--password", PHONE_PW));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("blocked"), "{err}");
    assert_no_secrets(&err, &[PHONE_PW, PHONE_PIN, "WRONG0000"]);
    assert!(!out.exists(), "no signature written");
    // Only that gate: the authentication key still signs with its PIN.
    json_of(&sign("auth", "--pin", PHONE_PIN));
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    // The authentication PIN: 3 tries, then blocked too.
    for left in (0..3u64).rev() {
        let (code, err) = failure(&sign("auth", "--pin", "0000"));
        assert_eq!(code, 2, "{err}");
        assert_eq!(st()["auth_pin_tries_left"], left);
    }
    let (code, err) = failure(&sign("auth", "--pin", PHONE_PIN));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("blocked"), "{err}");
    assert_no_secrets(&err, &[PHONE_PW, PHONE_PIN]);
    assert!(!out.exists(), "no signature written");
    // Blocked locally: the phone and its certificates stay as they were.
    let s = st();
    assert_eq!(s["provisioned"], true);
    assert_eq!(s["sign_password_tries_left"], 0);
}

/// The card holder's id, from the authority (via the card's auth certificate).
fn holder_id(w: &World) -> String {
    let st = json_of(&shomei(&[
        "card",
        "status",
        "--card",
        w.card.to_str().unwrap(),
        "--json",
    ]));
    let serial = st["auth_serial"].as_str().unwrap();
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/v1/certificates/{serial}", w.url))
        .bearer_auth(&w.token)
        .send()
        .unwrap();
    let c: Value = resp.json().unwrap();
    c["holder_id"].as_str().unwrap().to_owned()
}

#[test]
fn provisioning_with_suspended_card_is_refused() {
    let w = world();
    // The holder suspends the card (its authentication certificate, by default).
    let r = json_of(&w.card(&["suspend"]));
    assert_eq!(r["status"], "suspended");
    let phone = w.path("phone1");
    let (code, err) = failure(&w.provision_out(&phone, CARD_PW));
    assert_eq!(code, 2);
    assert!(err.contains("card_suspended"), "{err}");
    assert!(!phone.exists());
    // Resumed, the card can vouch for a phone again.
    json_of(&w.card(&["resume"]));
    let (phone, _) = w.provision("phone1");
    w.sign_and_verify(&phone, "after resume");
}

#[test]
fn untrusted_manufacturer_refused_until_trusted_without_restart() {
    // A production authority: the development root is not trusted.
    let w = world_with(&["--no-development-manufacturer"]);
    let phone = w.path("phone");
    let (code, msg) = failure(&w.provision_out(&phone, CARD_PW));
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("development manufacturer"), "{msg}");
    assert!(!phone.exists(), "a refused phone leaves nothing behind");

    // A manufacturer of its own, trusted in the folder while the authority
    // runs: the next provisioning accepts it, no restart.
    let mfr = w.path("mfr");
    let m = json_of(&shomei(&[
        "phone",
        "manufacturer",
        "--dir",
        mfr.to_str().unwrap(),
        "--trust",
        w.dir.to_str().unwrap(),
        "--json",
    ]));
    assert!(Path::new(m["trusted_in"].as_str().unwrap()).exists());
    let other = w.path("other-mfr");
    let (code, msg) = failure(&w.provision_with(
        &phone,
        CARD_PW,
        &["--manufacturer", other.to_str().unwrap()],
    ));
    assert_eq!(code, 2, "an untrusted manufacturer stays refused: {msg}");
    let v = json_of(&w.provision_with(&phone, CARD_PW, &["--manufacturer", mfr.to_str().unwrap()]));
    assert!(v["sign_serial"].is_string(), "{v}");
}

/// `phone present` in the background: (child, engagement URI).
fn present(phone: &Path, extra: &[&str]) -> (Child, String) {
    use std::io::BufRead as _;
    let mut args = vec![
        "phone",
        "present",
        "--phone",
        phone.to_str().unwrap(),
        "--pin",
        PHONE_PIN,
        "--json",
    ];
    args.extend_from_slice(extra);
    #[allow(clippy::zombie_processes)] // the caller waits
    let mut child = Command::new(env!("CARGO_BIN_EXE_shomei"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // Keep reading the rest in the background so the child never blocks.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, line.trim().to_owned())
}

fn reader(w: &World, uri: &str, items: &str) -> Output {
    shomei(&[
        "reader",
        "request",
        "--engagement",
        uri,
        "--items",
        items,
        "--trust",
        w.dir.join("ca/iaca.pem").to_str().unwrap(),
        "--json",
    ])
}

#[test]
fn mobile_id_shown_in_person_age_only_then_refused_once_suspended() {
    let w = world();
    let (phone, p) = w.provision("phone1");
    assert_eq!(p["mdoc"]["doc_type"], "org.iso.23220.1.jp.mnc", "{p}");

    // Age check: only age_over_20 leaves the phone.
    let (mut child, uri) = present(&phone, &[]);
    assert!(uri.starts_with("mdoc:"), "{uri}");
    let v = json_of(&reader(&w, &uri, "age_over_20"));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["device_auth"], "signature");
    assert_eq!(v["items"], json!({"age_over_20": true}));
    assert!(child.wait().unwrap().success());

    // A fuller check: name and birth date, and never the individual number
    // under the default consent (the authority does not put it in anyway).
    let (mut child, uri) = present(&phone, &[]);
    let v = json_of(&reader(&w, &uri, "full_name_unicode,birth_date"));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["items"]["full_name_unicode"], "鈴木\u{3000}一郎", "{v}");
    assert!(v["items"].get("individual_number_unicode").is_none());
    assert!(child.wait().unwrap().success());

    // The phone is suspended: the reader reads the status list and refuses.
    for serial in [
        p["sign_serial"].as_str().unwrap(),
        p["auth_serial"].as_str().unwrap(),
    ] {
        let (s, body) = w.operator(&format!("/v1/certificates/{serial}/suspend"), json!({}));
        assert_eq!(s, 200, "{body}");
    }
    let (mut child, uri) = present(&phone, &[]);
    let out = reader(&w, &uri, "age_over_20");
    let (code, msg) = failure(&out);
    assert_ne!(code, 0);
    assert!(msg.to_lowercase().contains("suspended"), "{msg}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The engagement QR code (terminal and PNG) carries exactly the URI the
/// phone prints; the PNG is decoded by zbar (`zbarimg`, Debian zbar-tools),
/// a scanner nobody here wrote.
#[test]
fn engagement_qr_code_scans_back_to_the_uri() {
    use std::io::{BufRead as _, Read as _};
    let w = world();
    let (phone, _) = w.provision("phone1");
    let png = w.path("engagement.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shomei"))
        .args(["phone", "present", "--phone", phone.to_str().unwrap()])
        .args(["--pin", PHONE_PIN, "--qr", "always", "--qr-png"])
        .arg(&png)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut uri = String::new();
    out.read_line(&mut uri).unwrap();
    let uri = uri.trim().to_owned();
    assert!(uri.starts_with("mdoc:"), "{uri}");
    // No reader comes: stop the phone and read what it drew.
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let rows: Vec<&str> = err.lines().filter(|l| l.contains('█')).collect();
    assert!(rows.len() > 10, "a QR code on stderr: {err}");
    let width = rows[0].chars().count();
    assert!(rows.iter().all(|r| r.chars().count() == width), "{err}");
    assert!(!err.contains(&uri), "the URI goes to stdout only");

    match Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png)
        .output()
    {
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), uri);
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs zbarimg (zbar-tools): {e}"
            );
            eprintln!("skipping the scan: zbarimg missing ({e})");
        }
    }
}

/// The holder puts the card's photo on the phone: `card issue --portrait`,
/// then `phone provision --face-pin-b` (PIN B from the card's face: birth
/// YYMMDD + expiry year + security code); a reader asking for `portrait`
/// gets exactly the card's photo. A wrong PIN B stops the provisioning.
#[test]
fn mobile_id_portrait_comes_from_the_card_face() {
    use base64::Engine as _;
    let w = world();
    let photo_bytes: Vec<u8> = b"\xff\xd8\xff\xe0 card photo "
        .iter()
        .copied()
        .chain((0..3000u32).map(|i| (i % 253) as u8))
        .collect();
    let photo = w.path("photo.jpg");
    std::fs::write(&photo, &photo_bytes).unwrap();
    let card = w.path("hanako.card");
    let issued = json_of(&shomei(&[
        "card",
        "issue",
        "--authority",
        &w.url,
        "--operator-token-file",
        w.dir.join("operator.token").to_str().unwrap(),
        "--name",
        "鈴木 花子",
        "--address",
        "北海道札幌市中央区2-2",
        "--birth",
        "1984-06-07",
        "--sex",
        "2",
        "--sign-password",
        CARD_PW,
        "--auth-pin",
        CARD_PIN,
        "--portrait",
        photo.to_str().unwrap(),
        "--out",
        card.to_str().unwrap(),
        "--json",
    ]));
    let face = &issued["card_face"];
    let pin_b = format!(
        "840607{}{}",
        &face["expiry"].as_str().unwrap()[..4],
        face["security_code"].as_str().unwrap()
    );
    let provision = |phone: &Path, pin_b: &str| {
        shomei(&[
            "phone",
            "provision",
            "--authority",
            &w.url,
            "--card",
            card.to_str().unwrap(),
            "--card-password",
            CARD_PW,
            "--phone",
            phone.to_str().unwrap(),
            "--sign-password",
            PHONE_PW,
            "--auth-pin",
            PHONE_PIN,
            "--face-pin-b",
            pin_b,
            "--json",
        ])
    };
    // A wrong PIN B: refused as the user's error, no phone is made.
    let phone = w.path("phone-hanako");
    let wrong = if pin_b.ends_with('0') {
        format!("{}1", &pin_b[..pin_b.len() - 1])
    } else {
        format!("{}0", &pin_b[..pin_b.len() - 1])
    };
    let (code, msg) = failure(&provision(&phone, &wrong));
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("PIN"), "{msg}");
    assert!(!msg.contains(&wrong), "the PIN is not echoed: {msg}");
    assert!(!phone.join("phone.json").exists());

    let p = json_of(&provision(&phone, &pin_b));
    assert_eq!(p["mdoc"]["doc_type"], "org.iso.23220.1.jp.mnc", "{p}");
    let (mut child, uri) = present(&phone, &[]);
    let v = json_of(&reader(&w, &uri, "portrait,full_name_unicode"));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(
        v["items"]["portrait"].as_str().unwrap(),
        base64::engine::general_purpose::STANDARD.encode(&photo_bytes),
        "{v}"
    );
    assert_eq!(v["items"]["full_name_unicode"], "鈴木\u{3000}花子");
    assert!(child.wait().unwrap().success());
}

/// ISO 18013-5 device authentication by MAC (§9.1.3.5): the phone's secure
/// element does the ECDH of the mobile ID's device key with the reader's
/// ephemeral key (the key never leaves it), gated by the auth PIN like a
/// signature; the reader verifies the DeviceMac.
#[test]
fn mobile_id_device_mac_through_the_secure_element() {
    let w = world();
    let (phone, p) = w.provision("phone1");
    assert_eq!(p["mdoc"]["doc_type"], "org.iso.23220.1.jp.mnc", "{p}");

    let (mut child, uri) = present(&phone, &["--device-auth", "mac"]);
    assert!(uri.starts_with("mdoc:"), "{uri}");
    let v = json_of(&reader(&w, &uri, "age_over_20,full_name_unicode"));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["device_auth"], "mac", "{v}");
    assert_eq!(v["items"]["age_over_20"], true, "{v}");
    assert_eq!(v["items"]["full_name_unicode"], "鈴木\u{3000}一郎", "{v}");
    assert!(child.wait().unwrap().success());

    // The same gate as for a signature: a wrong PIN opens nothing.
    let phone_arg = phone.to_str().unwrap();
    let (code, msg) = failure(&shomei(&[
        "phone",
        "present",
        "--phone",
        phone_arg,
        "--pin",
        "0000",
        "--device-auth",
        "mac",
        "--qr",
        "never",
        "--json",
    ]));
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("PIN"), "{msg}");

    // The default is still a signature.
    let (mut child, uri) = present(&phone, &[]);
    let v = json_of(&reader(&w, &uri, "age_over_20"));
    assert_eq!(v["device_auth"], "signature", "{v}");
    assert!(child.wait().unwrap().success());
}

/// The contract form: `phone present --phone P` names no PIN — the holder's
/// presence (running `present` under its consent policy) unlocks the device
/// key inside the secure element — and a reader gets a valid response, by
/// signature and by MAC; no try of the authentication PIN is spent.
#[test]
fn present_without_pin_follows_the_contract() {
    use std::io::BufRead as _;
    let w = world();
    let (phone, p) = w.provision("phone1");
    assert_eq!(p["mdoc"]["doc_type"], "org.iso.23220.1.jp.mnc", "{p}");
    let spawn = |extra: &[&str]| {
        #[allow(clippy::zombie_processes)] // waited below
        let mut child = Command::new(env!("CARGO_BIN_EXE_shomei"))
            .args(["phone", "present", "--phone", phone.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        (child, line.trim().to_owned())
    };

    let (mut child, uri) = spawn(&["--json"]);
    assert!(uri.starts_with("mdoc:"), "{uri}");
    let v = json_of(&reader(&w, &uri, "age_over_20"));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["device_auth"], "signature", "{v}");
    assert_eq!(v["items"], json!({"age_over_20": true}));
    assert!(child.wait().unwrap().success());

    // The same by MAC (ECDH inside the element), with the contract's flags.
    let (mut child, uri) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--consent",
        "auto",
        "--device-auth",
        "mac",
        "--json",
    ]);
    let v = json_of(&reader(&w, &uri, "age_over_20,full_name_unicode"));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["device_auth"], "mac", "{v}");
    assert_eq!(v["items"]["full_name_unicode"], "鈴木\u{3000}一郎", "{v}");
    assert!(child.wait().unwrap().success());
    assert_eq!(status(&w, &phone)["auth_pin_tries_left"], 3);

    // The PIN still works, and a wrong one is still counted and refused.
    let (mut child, uri) = present(&phone, &[]);
    assert_eq!(json_of(&reader(&w, &uri, "age_over_20"))["valid"], true);
    assert!(child.wait().unwrap().success());
    let (code, msg) = failure(&w.phone(&[
        "present",
        "--phone",
        phone.to_str().unwrap(),
        "--pin",
        "0000",
    ]));
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("PIN"), "{msg}");
}

/// Reader authentication (ISO 18013-5 §9.1.4) end to end: a registered
/// relying party's reader enrols (`reader enrol`: key made locally, the
/// certificate from the authority), signs its request (`reader request
/// --reader-key --reader-cert`), and `phone present --trusted-readers`
/// reports the reader authenticated by its registered name; with
/// `--require-authenticated-reader` chosen elements go only to such a
/// reader (as the individual number always does — the authority's mobile
/// ID does not carry it). A reader the phone's trust does not cover is
/// refused whole.
/// `phone present --require-authenticated-reader full_name_unicode --json
/// EXTRA` started: the child, its stdout, and the engagement URI (the
/// first line).
fn present_for_reader(
    phone: &Path,
    extra: &[&str],
) -> (Child, std::io::BufReader<std::process::ChildStdout>, String) {
    use std::io::BufRead as _;
    #[allow(clippy::zombie_processes)] // present_result waits for it
    let mut child = Command::new(env!("CARGO_BIN_EXE_shomei"))
        .args(["phone", "present", "--phone", phone.to_str().unwrap()])
        .args([
            "--require-authenticated-reader",
            "full_name_unicode",
            "--json",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    (child, stdout, line.trim().to_owned())
}

/// Waits for a `present_for_reader` phone: success, the rest of its stdout
/// (the result JSON), its stderr.
fn present_result(
    mut child: Child,
    mut stdout: std::io::BufReader<std::process::ChildStdout>,
) -> (bool, String, String) {
    use std::io::Read as _;
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let ok = child.wait().unwrap().success();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (ok, rest, err)
}

/// `reader enrol --json` into `out` for the relying party of `token_file`.
fn reader_enrol(w: &World, token_file: &Path, out: &Path) -> Value {
    json_of(&shomei(&[
        "reader",
        "enrol",
        "--authority",
        &w.url,
        "--rp-token-file",
        token_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]))
}

/// `reader request` for the full name and age_over_20 at `uri`, trusting
/// `iaca`, signed with the reader `(key, certificate)` when given.
fn reader_request(uri: &str, iaca: &Path, reader: Option<(&PathBuf, &PathBuf)>) -> Output {
    let mut args = vec![
        "reader",
        "request",
        "--engagement",
        uri,
        "--items",
        "full_name_unicode,age_over_20",
        "--trust",
        iaca.to_str().unwrap(),
        "--json",
    ];
    if let Some((key, cert)) = reader {
        args.extend([
            "--reader-key",
            key.to_str().unwrap(),
            "--reader-cert",
            cert.to_str().unwrap(),
        ]);
    }
    shomei(&args)
}

#[test]
fn reader_enrol_and_signed_request_are_authenticated_by_the_phone() {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let w = world();
    let (phone, _) = w.provision("phone1");
    // Provisioning stored the authority's reader CA as the phone's default trust.
    let stored = std::fs::read_to_string(phone.join("trusted-readers.pem")).unwrap();
    let reader_ca = w.dir.join("ca/reader-ca.pem");
    assert_eq!(stored, std::fs::read_to_string(&reader_ca).unwrap());

    let (code, rp) = w.operator("/v1/relying-parties", json!({"name": "city-office.jp"}));
    assert_eq!(code, 201, "{rp}");
    let token_file = w.path("rp.token");
    std::fs::write(&token_file, rp["token"].as_str().unwrap()).unwrap();
    let out = w.path("reader");
    let e = reader_enrol(&w, &token_file, &out);
    assert_eq!(e["name"], "city-office.jp", "{e}");
    let key = out.join("reader.p8");
    let cert = out.join("reader.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, msg) = openssl(&[
        "verify",
        "-CAfile",
        reader_ca.to_str().unwrap(),
        "-purpose",
        "any",
        cert.to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    let (ok, msg) = openssl(&[
        "pkey",
        "-inform",
        "DER",
        "-in",
        key.to_str().unwrap(),
        "-noout",
    ]);
    assert!(ok, "{msg}");
    // Enrolling into the same folder again is refused (nothing overwritten).
    let (code, msg) = failure(&shomei(&[
        "reader",
        "enrol",
        "--authority",
        &w.url,
        "--rp-token-file",
        token_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, 2, "{msg}");

    // The phone, its result JSON read after the session.
    let spawn = |extra: &[&str]| present_for_reader(&phone, extra);
    let finish = |child, stdout| {
        let (ok, rest, _) = present_result(child, stdout);
        (ok, rest)
    };
    let iaca = w.dir.join("ca/iaca.pem");
    let request =
        |uri: &str, signed: bool| reader_request(uri, &iaca, signed.then_some((&key, &cert)));

    // Signed, trusted explicitly: authenticated, the full name released.
    let (child, stdout, uri) = spawn(&["--trusted-readers", reader_ca.to_str().unwrap()]);
    let v = json_of(&request(&uri, true));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["reader_auth"], true, "{v}");
    assert!(v["items"]["full_name_unicode"].is_string(), "{v}");
    let (ok, rest) = finish(child, stdout);
    assert!(ok, "{rest}");
    let p: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(
        p["reader"],
        json!({"authenticated": true, "name": "city-office.jp", "organization": null, "revocation_not_checked": null}),
        "{p}"
    );
    assert!(
        p["released"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().ends_with("/full_name_unicode")),
        "{p}"
    );

    // The default trust (stored at provisioning) authenticates it too.
    let (child, stdout, uri) = spawn(&[]);
    assert_eq!(json_of(&request(&uri, true))["valid"], true);
    let (ok, rest) = finish(child, stdout);
    assert!(ok, "{rest}");
    let p: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(p["reader"]["authenticated"], true, "{p}");

    // Unsigned: not authenticated, so the full name is withheld.
    let (child, stdout, uri) = spawn(&[]);
    let v = json_of(&request(&uri, false));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["reader_auth"], false, "{v}");
    assert!(v["items"].get("full_name_unicode").is_none(), "{v}");
    assert_eq!(v["items"]["age_over_20"], true, "{v}");
    let (ok, rest) = finish(child, stdout);
    assert!(ok, "{rest}");
    let p: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(
        p["reader"],
        json!({"authenticated": false, "name": null, "organization": null, "revocation_not_checked": null})
    );

    // Signed under a CA the phone does not trust: the whole request is refused.
    let (mut child, mut stdout, uri) = spawn(&["--trusted-readers", iaca.to_str().unwrap()]);
    let r = request(&uri, true);
    assert!(!r.status.success());
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&r.stdout).trim()).unwrap();
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["items"], json!({}), "{v}");
    assert_eq!(v["error"]["code"], "device_response_status", "{v}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the phone reports the refusal"
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("untrusted_reader") || err.contains("trusted reader CA"),
        "{err}"
    );
}

/// Reader revocation end to end: a relying party enrols two readers, one
/// key is stolen and its certificate revoked
/// (`POST /v1/reader-certificates/{serial}/revoke` with the relying
/// party's own token); after `phone sync` (which fetches and verifies
/// /ca/reader-ca.crl) the phone refuses the revoked reader's signed request
/// whole (status 10, nothing released), while the other reader is still
/// authenticated and gets the element reserved for authenticated readers.
/// Without a CRL, a signed reader is "revocation not checked": not
/// authenticated, the element withheld, and the JSON result says why.
#[test]
fn a_revoked_reader_is_refused_after_phone_sync_and_a_good_one_still_served() {
    let w = world();
    let (phone, _) = w.provision("phone1");
    // Provisioning stored the reader CA's CRL next to the reader CA.
    assert!(phone.join("reader-ca.crl").exists());
    let (code, rp) = w.operator("/v1/relying-parties", json!({"name": "city-office.jp"}));
    assert_eq!(code, 201, "{rp}");
    let rp_token = rp["token"].as_str().unwrap().to_owned();
    let token_file = w.path("rp.token");
    std::fs::write(&token_file, &rp_token).unwrap();
    let enrol = |dir: &str| {
        let out = w.path(dir);
        let e = reader_enrol(&w, &token_file, &out);
        (out, e["serial"].as_str().unwrap().to_owned())
    };
    let (stolen, stolen_serial) = enrol("reader-stolen");
    let (good, _) = enrol("reader-good");

    let spawn = || present_for_reader(&phone, &[]);
    let finish = present_result;
    let iaca = w.dir.join("ca/iaca.pem");
    let request = |uri: &str, reader: &Path| {
        let (key, cert) = (reader.join("reader.p8"), reader.join("reader.pem"));
        reader_request(uri, &iaca, Some((&key, &cert)))
    };

    // Before revocation the (soon) stolen reader is authenticated.
    let (child, stdout, uri) = spawn();
    let v = json_of(&request(&uri, &stolen));
    assert_eq!(v["reader_auth"], true, "{v}");
    assert!(v["items"]["full_name_unicode"].is_string(), "{v}");
    let (ok, rest, err) = finish(child, stdout);
    assert!(ok, "{rest}{err}");

    // The relying party revokes the stolen reader's certificate itself.
    let resp = reqwest::blocking::Client::new()
        .post(format!(
            "{}/v1/reader-certificates/{stolen_serial}/revoke",
            w.url
        ))
        .bearer_auth(&rp_token)
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let old_crl = std::fs::read(phone.join("reader-ca.crl")).unwrap();
    let synced = json_of(&shomei(&[
        "phone",
        "sync",
        "--phone",
        phone.to_str().unwrap(),
        "--json",
    ]));
    assert!(synced.is_object(), "{synced}");
    assert_ne!(std::fs::read(phone.join("reader-ca.crl")).unwrap(), old_crl);

    // The revoked reader: the whole request refused, nothing released.
    let (child, stdout, uri) = spawn();
    let r = request(&uri, &stolen);
    assert!(!r.status.success());
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&r.stdout).trim()).unwrap();
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["items"], json!({}), "{v}");
    assert_eq!(v["error"]["code"], "device_response_status", "{v}");
    let (ok, _, err) = finish(child, stdout);
    assert!(!ok, "the phone reports the refusal");
    assert!(err.contains("reader certificate is revoked"), "{err}");

    // The good reader: authenticated, the reserved element released.
    let (child, stdout, uri) = spawn();
    let v = json_of(&request(&uri, &good));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["reader_auth"], true, "{v}");
    assert!(v["items"]["full_name_unicode"].is_string(), "{v}");
    let (ok, rest, err) = finish(child, stdout);
    assert!(ok, "{rest}{err}");
    let p: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(p["reader"]["authenticated"], true, "{p}");
    assert_eq!(p["reader"]["revocation_not_checked"], Value::Null, "{p}");

    // No CRL on the phone: revocation not checked, so the good reader is
    // not authenticated and the reserved element is withheld.
    std::fs::remove_file(phone.join("reader-ca.crl")).unwrap();
    let (child, stdout, uri) = spawn();
    let v = json_of(&request(&uri, &good));
    assert_eq!(v["valid"], true, "{v}");
    assert!(v["items"].get("full_name_unicode").is_none(), "{v}");
    assert_eq!(v["items"]["age_over_20"], true, "{v}");
    let (ok, rest, err) = finish(child, stdout);
    assert!(ok, "{rest}{err}");
    let p: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(p["reader"]["authenticated"], false, "{p}");
    assert!(
        p["reader"]["revocation_not_checked"]
            .as_str()
            .unwrap()
            .contains("no CRL"),
        "{p}"
    );
    assert!(
        !p["released"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().ends_with("/full_name_unicode")),
        "{p}"
    );
}
