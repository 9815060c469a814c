//! The phone (スマホ用電子証明書) at the authority, over real HTTP on
//! loopback: provisioning from the card with secure-element attestations
//! (made by the simulated secure element `shomei-se-sim`), one phone per
//! holder with remote wipe, lifecycle cascades from the card, self-retire,
//! "certificate used" events from OCSP, the event stream (SSE) and e-mail
//! notifications through a real SMTP server (Python aiosmtpd).
//!
//! Each scenario runs on the embedded SQLite registry and, when
//! `SHOMEI_TEST_POSTGRES_URL` is set, on PostgreSQL too (in CI it must be).
//! Every refusal is checked to have changed nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{
    Backend, PgDb, free_port, init_authority, now, on_both_backends, postgres_db, rand_label,
    send_checked,
};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use shomei_authority_server::home::MANUFACTURERS_DIR;
use shomei_authority_server::{Options, RunningAuthority, SmtpConfig, SystemClock};
use shomei_core::Signer;
use shomei_pki::RsaSigner;
use shomei_pki::csr::build_csr;
use shomei_se_sim::{MemoryDeviceRoot, MemoryStore, SimManufacturer, SimOptions, SimSecureElement};
use shomei_secure_element::{
    GateId, KeyHandle, KeyKind, KeyPolicy, SeSigner, SecureElement, SharedElement, UnlockScope,
};

const NAME: &str = "山田 太郎";
const ADDRESS: &str = "東京都千代田区千代田1-1";
const BIRTH: &str = "1990-04-01";
const SIGN_PASSWORD: &str = "PHONE123";
const AUTH_PIN: &str = "4321";

// ---------------------------------------------------------------------------
// Harness

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: String,
    token: String,
    running: Option<RunningAuthority>,
    http: reqwest::Client,
    manufacturer: SimManufacturer,
    _pg: Option<PgDb>,
    _smtp: Option<SmtpSink>,
}

/// A real SMTP server (Python aiosmtpd) writing what it receives to a maildir.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let maildir = dir.join("maildir");
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                maildir.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        let sink = Self {
            child,
            port,
            maildir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sink;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    /// The messages received so far (raw RFC 5322 text), oldest first.
    fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} message(s), got {}", self.messages().len());
    }
}

async fn start(backend: Backend) -> Option<Env> {
    start_with(backend, false).await
}

async fn start_with(backend: Backend, smtp: bool) -> Option<Env> {
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(postgres_db("shomei_phone").await?),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    init_authority(&dir, &base, now());
    // The authority trusts the simulated manufacturer through its folder.
    let manufacturer = SimManufacturer::generate(now()).unwrap();
    std::fs::write(
        dir.join(MANUFACTURERS_DIR).join("shomei-sim.der"),
        manufacturer.root_cert_der(),
    )
    .unwrap();
    let sink = smtp.then(|| SmtpSink::start(tmp.path()));
    let options = Options {
        smtp: sink
            .as_ref()
            .map(|s| SmtpConfig::plain("127.0.0.1", s.port, "notify@authority.shomei.test")),
        ..Options::default()
    };
    let state = shomei_authority_server::load_with(
        &dir,
        pg.as_ref().map(|p| p.url.as_str()),
        Arc::new(SystemClock),
        options,
    )
    .await
    .unwrap();
    let running =
        shomei_authority_server::serve(state, format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap();
    let token = std::fs::read_to_string(dir.join("operator.token"))
        .unwrap()
        .trim()
        .to_owned();
    Some(Env {
        _tmp: tmp,
        dir,
        base,
        token,
        running: Some(running),
        http: reqwest::Client::new(),
        manufacturer,
        _pg: pg,
        _smtp: sink,
    })
}

/// A card as issued: its certificates and keys.
struct Card {
    holder_id: String,
    sign_serial: String,
    auth_serial: String,
    sign_cert: Vec<u8>,
    auth_cert: Vec<u8>,
    sign_key: RsaSigner,
    auth_key: RsaSigner,
}

/// A phone: its simulated secure element.
struct Phone {
    se: SharedElement,
}

/// What a provisioning produced, seen from the phone.
struct Provisioned {
    device_id: String,
    token: String,
    sign_serial: String,
    auth_serial: String,
    sign_cert: Vec<u8>,
    auth_cert: Vec<u8>,
    auth_key: KeyHandle,
    sign_key: KeyHandle,
    /// The mobile-ID device key sent (SPKI), if any.
    mdoc_spki: Option<Vec<u8>>,
}

/// Whether and how the request carries a mobile-ID device key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MdocKey {
    /// A P-256 key of the same element, same challenge, under the mobile
    /// ID's policy (auth PIN gate; PIN, biometric or presence).
    Good,
    /// Like `Good` but with the authentication key's policy (phones made
    /// before presence existed): still accepted.
    LegacyAuthPolicy,
    /// Attested for another challenge.
    WrongChallenge,
    /// Made in another phone's element.
    OtherDevice,
    /// Gated by the signing password instead.
    WrongPolicy,
    /// The auth PIN without biometric or presence: not the rule either.
    PinOnlyPolicy,
}

/// How to build a provisioning request (defaults: everything right).
struct Recipe {
    sign_policy: KeyPolicy,
    auth_policy: KeyPolicy,
    /// Sign the provisioning message with this key instead of the card's.
    forge_with: Option<RsaSigner>,
    /// Send the auth key's chain as the sign key's.
    swap_chains: bool,
    notify_email: Option<String>,
    mdoc: Option<MdocKey>,
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            sign_policy: KeyPolicy::PHONE_SIGN,
            auth_policy: KeyPolicy::PHONE_AUTH,
            forge_with: None,
            swap_chains: false,
            notify_email: None,
            mdoc: None,
        }
    }
}

impl Phone {
    fn with(m: &SimManufacturer) -> Self {
        let root = MemoryDeviceRoot::new(m.new_device(now()).unwrap());
        let mut se =
            SimSecureElement::provision(MemoryStore::new(), root, SimOptions::default()).unwrap();
        se.set_pin(GateId::SignPassword, SIGN_PASSWORD).unwrap();
        se.set_pin(GateId::AuthPin, AUTH_PIN).unwrap();
        Self {
            se: Arc::new(Mutex::new(Box::new(se))),
        }
    }

    fn device_id(&self) -> String {
        self.se.lock().unwrap().device_id().to_hex()
    }

    /// A new RSA key under `policy`, bound to `challenge`: handle, CSR, chain (base64).
    fn key(
        &self,
        label: &str,
        policy: KeyPolicy,
        challenge: &[u8],
    ) -> (KeyHandle, Vec<u8>, Vec<String>) {
        let (handle, chain, unlock) = {
            let mut se = self.se.lock().unwrap();
            let handle = se
                .create_key(label, KeyKind::Rsa2048, policy, challenge)
                .unwrap();
            let chain = se
                .attest(&handle)
                .unwrap()
                .into_certs()
                .iter()
                .map(|c| B64.encode(c))
                .collect();
            let pin = match policy.gate() {
                GateId::SignPassword => SIGN_PASSWORD,
                _ => AUTH_PIN,
            };
            let unlock = se
                .verify_pin(policy.gate(), pin, UnlockScope::Once)
                .unwrap();
            (handle, chain, unlock)
        };
        let signer = SeSigner::new(self.se.clone(), handle.clone(), unlock).unwrap();
        (handle, build_csr(&signer, label).unwrap(), chain)
    }

    /// Signs with a key of the element (PIN-gated keys only: the auth key).
    fn sign(&self, key: &KeyHandle, gate: GateId, msg: &[u8]) -> Vec<u8> {
        let mut se = self.se.lock().unwrap();
        let pin = match gate {
            GateId::SignPassword => SIGN_PASSWORD,
            _ => AUTH_PIN,
        };
        let unlock = se.verify_pin(gate, pin, UnlockScope::Once).unwrap();
        se.sign(key, msg, &unlock).unwrap()
    }
}

fn spki_of_csr(csr: &[u8]) -> Vec<u8> {
    shomei_pki::csr::check_csr(csr).unwrap().spki().to_vec()
}

impl Env {
    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        send_checked(req, &[NAME, ADDRESS, BIRTH]).await
    }

    /// POST as the operator.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    /// POST with no operator token (a holder or phone).
    async fn post_open(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    /// POST with a device token.
    async fn post_device(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> Value {
        let (code, v) = self
            .send(self.http.get(self.url(path)).bearer_auth(&self.token))
            .await;
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    async fn get_device(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    async fn bytes(&self, url: &str) -> Vec<u8> {
        let r = self.http.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.bytes().await.unwrap().to_vec()
    }

    async fn challenge(&self) -> Vec<u8> {
        let (code, r) = self.post_open("/v1/challenges", json!({})).await;
        assert_eq!(code, 201);
        B64.decode(r["challenge"].as_str().unwrap()).unwrap()
    }

    async fn enrol(&self) -> Card {
        let (s, a) = (
            RsaSigner::generate().unwrap(),
            RsaSigner::generate().unwrap(),
        );
        let (code, v) = self
            .post(
                "/v1/cards",
                json!({
                    "holder": {"name": NAME, "address": ADDRESS, "birth_date": BIRTH, "sex": "1"},
                    "sign_csr": B64.encode(build_csr(&s, "s").unwrap()),
                    "auth_csr": B64.encode(build_csr(&a, "a").unwrap()),
                }),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        Card {
            holder_id: v["holder_id"].as_str().unwrap().into(),
            sign_serial: v["sign_serial"].as_str().unwrap().into(),
            auth_serial: v["auth_serial"].as_str().unwrap().into(),
            sign_cert: B64.decode(v["sign_cert"].as_str().unwrap()).unwrap(),
            auth_cert: B64.decode(v["auth_cert"].as_str().unwrap()).unwrap(),
            sign_key: s,
            auth_key: a,
        }
    }

    /// Builds a provisioning request for `phone` from `card`, as the phone
    /// side would: challenge, keys in the secure element, attestations, and
    /// the card's signature over the provisioning message.
    async fn request(
        &self,
        card: &Card,
        phone: &Phone,
        recipe: &Recipe,
    ) -> (Value, KeyHandle, KeyHandle) {
        let challenge = self.challenge().await;
        let n = rand_label();
        let (sign_key, sign_csr, sign_chain) =
            phone.key(&format!("jpki-sign-{n}"), recipe.sign_policy, &challenge);
        let (auth_key, auth_csr, auth_chain) =
            phone.key(&format!("jpki-auth-{n}"), recipe.auth_policy, &challenge);
        let device_id = phone.device_id();
        let message = shomei_ca::phone_provisioning_message(
            &challenge,
            &device_id,
            &spki_of_csr(&sign_csr),
            &spki_of_csr(&auth_csr),
        );
        let signature = match &recipe.forge_with {
            Some(k) => k.sign(&message).unwrap(),
            None => card.sign_key.sign(&message).unwrap(),
        };
        let (sa, aa) = if recipe.swap_chains {
            (auth_chain.clone(), auth_chain)
        } else {
            (sign_chain, auth_chain)
        };
        let mut body = json!({
            "device": {"id": device_id, "kind": "android"},
            "card_sign_cert": B64.encode(&card.sign_cert),
            "challenge": B64.encode(&challenge),
            "card_signature": B64.encode(signature),
            "sign_csr": B64.encode(&sign_csr),
            "auth_csr": B64.encode(&auth_csr),
            "sign_attestation": sa,
            "auth_attestation": aa,
        });
        if let Some(e) = &recipe.notify_email {
            body["notify_email"] = json!(e);
        }
        if let Some(how) = recipe.mdoc {
            let other;
            let se = if how == MdocKey::OtherDevice {
                other = Phone::with(&self.manufacturer);
                &other.se
            } else {
                &phone.se
            };
            let bound = if how == MdocKey::WrongChallenge {
                self.challenge().await
            } else {
                challenge.clone()
            };
            let policy = match how {
                MdocKey::WrongPolicy => KeyPolicy::PHONE_SIGN,
                MdocKey::PinOnlyPolicy => KeyPolicy::new(GateId::AuthPin, false).unwrap(),
                MdocKey::LegacyAuthPolicy => KeyPolicy::PHONE_AUTH,
                _ => KeyPolicy::MDOC_PRESENCE,
            };
            let mut se = se.lock().unwrap();
            let k = se
                .create_key(&format!("mdoc-{n}"), KeyKind::EcP256, policy, &bound)
                .unwrap();
            let chain: Vec<String> = se
                .attest(&k)
                .unwrap()
                .into_certs()
                .iter()
                .map(|c| B64.encode(c))
                .collect();
            body["mdoc_device_key"] = json!(B64.encode(se.public_key(&k).unwrap()));
            body["mdoc_attestation"] = json!(chain);
        }
        (body, sign_key, auth_key)
    }

    /// Provisions `phone` from `card`; must succeed.
    async fn provision(&self, card: &Card, phone: &Phone, recipe: &Recipe) -> (Provisioned, Value) {
        let (body, sign_key, auth_key) = self.request(card, phone, recipe).await;
        let mdoc_spki = body["mdoc_device_key"]
            .as_str()
            .map(|k| B64.decode(k).unwrap());
        let (code, v) = self.post_open("/v1/phones", body).await;
        assert_eq!(code, 201, "{v}");
        (
            Provisioned {
                device_id: v["device_id"].as_str().unwrap().into(),
                token: v["device_token"].as_str().unwrap().into(),
                sign_serial: v["sign_serial"].as_str().unwrap().into(),
                auth_serial: v["auth_serial"].as_str().unwrap().into(),
                sign_cert: B64.decode(v["sign_cert"].as_str().unwrap()).unwrap(),
                auth_cert: B64.decode(v["auth_cert"].as_str().unwrap()).unwrap(),
                sign_key,
                auth_key,
                mdoc_spki,
            },
            v,
        )
    }

    /// A holder proof by the card's authentication key for `verb` on `serial`.
    /// A proof about the phone `device_id` for `action`: a fresh challenge,
    /// its device-proof message signed by `sign`, presented with `cert`.
    async fn device_proof(
        &self,
        action: &str,
        device_id: &str,
        cert: &[u8],
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Value {
        let challenge = self.challenge().await;
        let msg = shomei_ca::device_proof_message(action, device_id, &challenge);
        json!({"certificate": B64.encode(cert), "challenge": B64.encode(&challenge), "signature": B64.encode(sign(&msg))})
    }

    async fn card_proof(&self, card: &Card, verb: &str, serial: &str) -> Value {
        let challenge = self.challenge().await;
        let msg = shomei_ca::holder_proof_message(verb, &serial.parse().unwrap(), &challenge);
        let sig = card.auth_key.sign(&msg).unwrap();
        json!({"certificate": B64.encode(&card.auth_cert), "challenge": B64.encode(&challenge), "signature": B64.encode(sig)})
    }

    async fn cert(&self, serial: &str) -> Value {
        self.get(&format!("/v1/certificates/{serial}")).await
    }

    async fn events(&self, holder: &str) -> Vec<Value> {
        self.get(&format!("/v1/holders/{holder}/events")).await["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn holder(&self, holder: &str) -> Value {
        self.get(&format!("/v1/holders/{holder}")).await
    }

    async fn sync(&self, p: &Provisioned) -> Value {
        let (code, v) = self
            .get_device(&format!("/v1/devices/{}/sync", p.device_id), &p.token)
            .await;
        assert_eq!(code, 200, "{v}");
        v
    }

    /// OCSP through our own client: the state of `cert` under `root`.
    async fn ocsp(&self, cert: &[u8], root: &str) -> shomei_pki::ocsp::CertState {
        let ca = self.bytes(&self.url(&format!("/ca/{root}.der"))).await;
        let req = shomei_pki::ocsp::build_request(
            cert,
            &ca,
            shomei_pki::ocsp::CertIdHash::Sha256,
            Some(&rand_label().to_be_bytes()),
        )
        .unwrap();
        let resp = self
            .http
            .post(self.url(&format!("/ocsp/{root}")))
            .header("content-type", "application/ocsp-request")
            .body(req)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let summary = shomei_pki::ocsp::parse_response(&resp, &ca, now()).unwrap();
        summary.statuses[0].state
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn pem_file(&self, name: &str, der: &[u8]) -> PathBuf {
        let d = self.file(&format!("{name}.der"), der);
        let p = self.dir.join(format!("{name}.pem"));
        let (ok, out) = openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            d.to_str().unwrap(),
            "-out",
            p.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        p
    }

    /// Waits until the holder has `n` "used" events.
    async fn wait_for_used(&self, holder: &str, n: usize) {
        for _ in 0..200 {
            let events = self.events(holder).await;
            if events.iter().filter(|e| e["action"] == "used").count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {n} used events");
    }

    /// Everything a refusal must leave alone, for one holder.
    async fn snapshot(&self, holder: &str) -> (Value, usize) {
        let mut h = self.holder(holder).await;
        // `status` of certificates is computed at read time; all else is stored.
        h["certificates"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .for_each(|c| {
                c.as_object_mut().unwrap().remove("certificate");
            });
        (h, self.events(holder).await.len())
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn is_revoked(state: &shomei_pki::ocsp::CertState, reason: shomei_core::RevocationReason) -> bool {
    matches!(state, shomei_pki::ocsp::CertState::Revoked { reason: r, .. } if *r == reason)
}

// ---------------------------------------------------------------------------
// Scenarios

on_both_backends!(
    phone_provisioned_from_card_gets_working_certificates,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (p, v) = env.provision(&card, &phone, &Recipe::default()).await;
        assert_eq!(v["holder_id"], card.holder_id.as_str());
        assert_eq!(v["se_device_id"], phone.device_id().as_str());
        assert!(p.token.starts_with("sdt_"));
        assert_eq!(v["superseded_devices"], json!([]));

        // openssl verifies both against the roots, and OCSP says good.
        let sign_ca = env.file("sign-root.pem", &env.bytes(&env.url("/ca/sign.pem")).await);
        let auth_ca = env.file("auth-root.pem", &env.bytes(&env.url("/ca/auth.pem")).await);
        let phone_sign = env.pem_file("phone-sign", &p.sign_cert);
        let phone_auth = env.pem_file("phone-auth", &p.auth_cert);
        for (ca, cert) in [(&sign_ca, &phone_sign), (&auth_ca, &phone_auth)] {
            let (ok, out) = openssl(&[
                "verify",
                "-CAfile",
                ca.to_str().unwrap(),
                cert.to_str().unwrap(),
            ]);
            assert!(ok && out.contains(": OK"), "{out}");
            let ocsp_url = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-ocsp_uri"])
                .1
                .trim()
                .to_owned();
            let (ok, out) = openssl(&[
                "ocsp",
                "-issuer",
                ca.to_str().unwrap(),
                "-cert",
                cert.to_str().unwrap(),
                "-url",
                &ocsp_url,
                "-CAfile",
                ca.to_str().unwrap(),
            ]);
            assert!(ok && out.contains(": good"), "{out}");
        }
        // The signing certificate carries the basic four; the auth one none.
        let has = |der: &[u8], s: &str| der.windows(s.len()).any(|w| w == s.as_bytes());
        // (The name is stored with a full-width space between its parts.)
        assert!(has(&p.sign_cert, "山田\u{3000}太郎") && has(&p.sign_cert, ADDRESS));
        assert!(!has(&p.auth_cert, "太郎") && !has(&p.auth_cert, ADDRESS));
        let (_, text) = openssl(&[
            "x509",
            "-in",
            phone_sign.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(text.contains("1.2.392.200149.8.5.1.1.40"), "{text}");

        // Capped at the card: notAfter equals the card certificate's (never later).
        let card_sign_pem = env.pem_file("card-sign", &card.sign_cert);
        let card_auth_pem = env.pem_file("card-auth", &card.auth_cert);
        let end = |p: &Path| openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-enddate"]).1;
        assert_eq!(end(&phone_sign), end(&card_sign_pem));
        assert_eq!(end(&phone_auth), end(&card_auth_pem));
        let rec_sign = env.cert(&p.sign_serial).await;
        let rec_card = env.cert(&card.sign_serial).await;
        assert!(rec_sign["not_after"].as_str() <= rec_card["not_after"].as_str());

        // The registry links them: parent = the card certificate, pair, device.
        assert_eq!(rec_sign["class"], "phone-sign");
        assert_eq!(rec_sign["parent"], card.sign_serial.as_str());
        assert_eq!(rec_sign["pair"], p.auth_serial.as_str());
        assert_eq!(rec_sign["device_id"], p.device_id.as_str());
        let rec_auth = env.cert(&p.auth_serial).await;
        assert_eq!(rec_auth["parent"], card.auth_serial.as_str());

        // The keys work: a signature by the phone's auth key verifies under its certificate.
        let msg = b"login challenge from a relying party";
        let sig = phone.sign(&p.auth_key, GateId::AuthPin, msg);
        let spki = shomei_pki::csr::certificate_spki(&p.auth_cert).unwrap();
        shomei_pki::csr::verify_rsa_sha256(&spki, msg, &sig).unwrap();

        // The two status checks above are "used" events, written a moment later.
        env.wait_for_used(&card.holder_id, 2).await;
        // The phone syncs: active, both certificates good, the events so far.
        let s = env.sync(&p).await;
        assert_eq!(
            (s["status"].as_str(), s["wipe"].as_bool()),
            (Some("active"), Some(false))
        );
        let certs = s["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 2);
        assert!(certs.iter().all(|c| c["status"] == "active"));
        let actions: Vec<_> = s["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            actions.contains(&"phone_provisioned".to_owned()),
            "{actions:?}"
        );
        // The cursor moves on.
        let cursor = s["cursor"].as_i64().unwrap();
        let (_, again) = env
            .get_device(
                &format!("/v1/devices/{}/sync?after={cursor}", p.device_id),
                &p.token,
            )
            .await;
        assert_eq!(again["events"], json!([]));
        assert_eq!(again["cursor"].as_i64(), Some(cursor));
        // Another token, or none, gets nothing.
        let (code, e) = env
            .get_device(&format!("/v1/devices/{}/sync", p.device_id), "sdt_nope")
            .await;
        assert_eq!((code, e["code"].as_str()), (401, Some("unauthorized")));
        env.stop().await;
    }
);

on_both_backends!(
    second_phone_supersedes_first_and_queues_wipe,
    |env: Env| async move {
        let card = env.enrol().await;
        let (old_phone, new_phone) = (
            Phone::with(&env.manufacturer),
            Phone::with(&env.manufacturer),
        );
        let (first, _) = env.provision(&card, &old_phone, &Recipe::default()).await;
        let (second, v) = env.provision(&card, &new_phone, &Recipe::default()).await;
        assert_eq!(v["superseded_devices"], json!([first.device_id]));
        let mut revoked: Vec<_> = v["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        revoked.sort();
        let mut want = vec![first.sign_serial.clone(), first.auth_serial.clone()];
        want.sort();
        assert_eq!(revoked, want);

        // OCSP (openssl) says the old phone's certificates are revoked: superseded.
        let ca = env.file("sign-root.pem", &env.bytes(&env.url("/ca/sign.pem")).await);
        let old_sign = env.pem_file("old-sign", &first.sign_cert);
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            ca.to_str().unwrap(),
            "-cert",
            old_sign.to_str().unwrap(),
            "-url",
            &env.url("/ocsp/sign"),
            "-CAfile",
            ca.to_str().unwrap(),
        ]);
        assert!(
            ok && out.contains("revoked") && out.contains("superseded"),
            "{out}"
        );
        assert!(is_revoked(
            &env.ocsp(&first.auth_cert, "auth").await,
            shomei_core::RevocationReason::Superseded
        ));
        assert_eq!(
            env.ocsp(&second.sign_cert, "sign").await,
            shomei_pki::ocsp::CertState::Good
        );

        // The old phone's sync says: superseded, wipe; and no more of the holder's news.
        let s = env.sync(&first).await;
        assert_eq!(
            (s["status"].as_str(), s["wipe"].as_bool()),
            (Some("superseded"), Some(true))
        );
        assert!(
            s["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] == "revoked" && c["reason"] == "superseded")
        );
        assert_eq!(s["events"], json!([]));
        // The new one is active and hears about it.
        let s2 = env.sync(&second).await;
        assert_eq!(
            (s2["status"].as_str(), s2["wipe"].as_bool()),
            (Some("active"), Some(false))
        );
        assert!(
            s2["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "wipe_requested"
                    && e["detail"]["device_id"] == first.device_id.as_str())
        );
        // The old phone cannot confirm with the new one's token, nor the new one a wipe nobody asked for.
        let (code, p) = env
            .post_device(
                &format!("/v1/devices/{}/wiped", first.device_id),
                &second.token,
                json!({}),
            )
            .await;
        assert_eq!((code, p["code"].as_str()), (403, Some("wrong_device")));
        let (code, p) = env
            .post_device(
                &format!("/v1/devices/{}/wiped", second.device_id),
                &second.token,
                json!({}),
            )
            .await;
        assert_eq!((code, p["code"].as_str()), (409, Some("no_wipe_requested")));
        let (code, p) = env
            .post_device(
                &format!("/v1/devices/{}/wiped", second.device_id),
                &second.token,
                json!({"cause": "bored"}),
            )
            .await;
        assert_eq!((code, p["code"].as_str()), (400, Some("bad_request")));
        // The old phone wipes itself and confirms; confirming twice is harmless.
        old_phone.se.lock().unwrap().wipe().unwrap();
        for _ in 0..2 {
            let (code, d) = env
                .post_device(
                    &format!("/v1/devices/{}/wiped", first.device_id),
                    &first.token,
                    json!({}),
                )
                .await;
            assert_eq!((code, d["status"].as_str()), (200, Some("wiped")), "{d}");
        }
        let s = env.sync(&first).await;
        assert_eq!(
            (s["status"].as_str(), s["wipe"].as_bool()),
            (Some("wiped"), Some(false))
        );
        let d = env.get(&format!("/v1/devices/{}", first.device_id)).await;
        assert!(d["wiped_at"].is_string() && d["wipe_requested_at"].is_string());
        let h = env.holder(&card.holder_id).await;
        let statuses: Vec<_> = h["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(statuses, vec!["wiped", "active"]);
        env.stop().await;
    }
);

on_both_backends!(card_revoked_ends_phone, |env: Env| async move {
    let card = env.enrol().await;
    let phone = Phone::with(&env.manufacturer);
    let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
    // The card is reported stolen: both card certificates revoked, and with them the phone's.
    for serial in [&card.sign_serial, &card.auth_serial] {
        let (code, r) = env
            .post(
                &format!("/v1/certificates/{serial}/revoke"),
                json!({"reason": "keyCompromise"}),
            )
            .await;
        assert_eq!(code, 200, "{r}");
        assert_eq!(
            r["changed"].as_array().unwrap().len(),
            2,
            "card + phone: {r}"
        );
    }
    for serial in [&p.sign_serial, &p.auth_serial] {
        let c = env.cert(serial).await;
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("revoked"), Some("keyCompromise"))
        );
    }
    assert!(is_revoked(
        &env.ocsp(&p.sign_cert, "sign").await,
        shomei_core::RevocationReason::KeyCompromise
    ));
    assert!(is_revoked(
        &env.ocsp(&p.auth_cert, "auth").await,
        shomei_core::RevocationReason::KeyCompromise
    ));
    // The phone sees it on sync; the CRL of its class lists it.
    let s = env.sync(&p).await;
    assert!(
        s["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "revoked")
    );
    let ca = env.file("sign-root.pem", &env.bytes(&env.url("/ca/sign.pem")).await);
    let pem = env.pem_file("phone-sign", &p.sign_cert);
    let crl_url = openssl(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ])
    .1
    .lines()
    .find_map(|l| l.trim().strip_prefix("URI:").map(str::to_owned))
    .unwrap();
    assert!(crl_url.contains("/crl/phone-sign/"), "{crl_url}");
    let crl = env.file("crl.der", &env.bytes(&crl_url).await);
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        ca.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && text.contains(&p.sign_serial), "{text}");
    env.stop().await;
});

on_both_backends!(card_renewal_ends_phone_certificate, |env: Env| async move {
    let card = env.enrol().await;
    let phone = Phone::with(&env.manufacturer);
    let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
    let renew = |serial: String| {
        let env = &env;
        async move {
            let key = RsaSigner::generate().unwrap();
            let (code, r) = env
                .post(
                    &format!("/v1/certificates/{serial}/renew"),
                    json!({"csr": B64.encode(build_csr(&key, "renewed").unwrap())}),
                )
                .await;
            assert_eq!(code, 201, "{r}");
            r
        }
    };
    let state = |serial: String| {
        let env = &env;
        async move {
            let c = env.cert(&serial).await;
            (
                c["status"].as_str().unwrap().to_owned(),
                c["reason"].as_str().map(str::to_owned),
            )
        }
    };
    let superseded = ("revoked".to_owned(), Some("superseded".to_owned()));
    let active = ("active".to_owned(), None);

    // The card's signing certificate is renewed (new key, new certificate):
    // the phone signing certificate, derived from it, ends with it.
    let r = renew(card.sign_serial.clone()).await;
    let mut revoked: Vec<_> = r["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    revoked.sort();
    let mut want = vec![card.sign_serial.clone(), p.sign_serial.clone()];
    want.sort();
    assert_eq!(
        revoked, want,
        "the old card certificate and the phone's: {r}"
    );
    assert_eq!(state(card.sign_serial.clone()).await, superseded);
    assert_eq!(state(p.sign_serial.clone()).await, superseded);
    assert!(is_revoked(
        &env.ocsp(&p.sign_cert, "sign").await,
        shomei_core::RevocationReason::Superseded
    ));
    // The phone authentication certificate derives from the card's
    // authentication certificate, which did not change: the lifecycle plan
    // (Plan::for_renewal) revokes only the renewed certificate's
    // descendants, so the phone still logs in; signing needs a new
    // provisioning from the renewed card.
    assert_eq!(state(p.auth_serial.clone()).await, active);
    assert_eq!(state(card.auth_serial.clone()).await, active);
    assert_eq!(
        env.ocsp(&p.auth_cert, "auth").await,
        shomei_pki::ocsp::CertState::Good
    );
    // The phone sees it at its next sync: its signing certificate revoked,
    // and the event that says why.
    let s = env.sync(&p).await;
    let by_serial = |s: &Value, serial: &str| {
        s["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["serial"] == serial)
            .map(|c| (c["status"].clone(), c["reason"].clone()))
            .unwrap()
    };
    assert_eq!(
        by_serial(&s, &p.sign_serial),
        (json!("revoked"), json!("superseded"))
    );
    assert_eq!(
        by_serial(&s, &p.auth_serial),
        (json!("active"), json!(null))
    );
    assert_eq!(
        (s["status"].as_str(), s["wipe"].as_bool()),
        (Some("active"), Some(false)),
        "still the holder's phone, not wiped"
    );
    let told = |s: &Value, serial: &str| {
        s["events"].as_array().unwrap().iter().any(|e| {
            e["action"] == "revoked"
                && e["serial"] == serial
                && e["detail"]["reason"] == "superseded"
        })
    };
    assert!(told(&s, &p.sign_serial), "{s}");
    assert!(
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "renewed"),
        "{s}"
    );

    // Renewing the card's authentication certificate ends the phone's too.
    let cursor = s["cursor"].as_i64().unwrap();
    renew(card.auth_serial.clone()).await;
    assert_eq!(state(p.auth_serial.clone()).await, superseded);
    assert!(is_revoked(
        &env.ocsp(&p.auth_cert, "auth").await,
        shomei_core::RevocationReason::Superseded
    ));
    let (code, s) = env
        .get_device(
            &format!("/v1/devices/{}/sync?after={cursor}", p.device_id),
            &p.token,
        )
        .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        by_serial(&s, &p.auth_serial),
        (json!("revoked"), json!("superseded"))
    );
    assert!(told(&s, &p.auth_serial), "{s}");
    env.stop().await;
});

on_both_backends!(
    address_change_revokes_phone_signing_only,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
        let (code, _) = env
        .send(
            env.http
                .put(env.url(&format!("/v1/holders/{}", card.holder_id)))
                .bearer_auth(&env.token)
                .json(&json!({"holder": {"name": NAME, "address": "大阪府大阪市北区1-1", "birth_date": BIRTH, "sex": "1"}})),
        )
        .await;
        assert_eq!(code, 200);
        for (serial, want, reason) in [
            (&card.sign_serial, "revoked", Some("affiliationChanged")),
            (&p.sign_serial, "revoked", Some("affiliationChanged")),
            (&card.auth_serial, "active", None),
            (&p.auth_serial, "active", None),
        ] {
            let c = env.cert(serial).await;
            assert_eq!(
                (c["status"].as_str(), c["reason"].as_str()),
                (Some(want), reason),
                "{c}"
            );
        }
        assert!(is_revoked(
            &env.ocsp(&p.sign_cert, "sign").await,
            shomei_core::RevocationReason::AffiliationChanged
        ));
        assert_eq!(
            env.ocsp(&p.auth_cert, "auth").await,
            shomei_pki::ocsp::CertState::Good
        );
        // The phone stays the holder's phone; it can still log in, not sign.
        let s = env.sync(&p).await;
        assert_eq!(s["status"], "active");
        let by_class = |class: &str| {
            s["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["class"] == class)
                .unwrap()["status"]
                .clone()
        };
        assert_eq!(
            (by_class("phone-sign"), by_class("phone-auth")),
            (json!("revoked"), json!("active"))
        );
        assert!(
            s["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "basic_four_changed")
        );
        env.stop().await;
    }
);

on_both_backends!(
    lost_phone_suspended_by_operator_then_resumed_with_card_proof,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
        // The holder calls the hotline: the operator suspends both phone certificates.
        for serial in [&p.sign_serial, &p.auth_serial] {
            let (code, r) = env
                .post(&format!("/v1/certificates/{serial}/suspend"), json!({}))
                .await;
            assert_eq!(
                (code, r["status"].as_str()),
                (200, Some("suspended")),
                "{r}"
            );
            assert_eq!(
                r["changed"].as_array().unwrap().len(),
                1,
                "suspension does not cascade"
            );
        }
        assert!(is_revoked(
            &env.ocsp(&p.sign_cert, "sign").await,
            shomei_core::RevocationReason::CertificateHold
        ));
        assert_eq!(
            env.cert(&card.sign_serial).await["status"],
            "active",
            "the card is untouched"
        );
        // Found again: the holder resumes them with a proof made by the card.
        for serial in [&p.sign_serial, &p.auth_serial] {
            let proof = env.card_proof(&card, "resume", serial).await;
            let (code, r) = env
                .post_open(
                    &format!("/v1/certificates/{serial}/resume"),
                    json!({"proof": proof}),
                )
                .await;
            assert_eq!((code, r["status"].as_str()), (200, Some("active")), "{r}");
        }
        assert_eq!(
            env.ocsp(&p.sign_cert, "sign").await,
            shomei_pki::ocsp::CertState::Good
        );
        assert_eq!(
            env.ocsp(&p.auth_cert, "auth").await,
            shomei_pki::ocsp::CertState::Good
        );
        let actors: Vec<_> = env
            .events(&card.holder_id)
            .await
            .iter()
            .filter(|e| e["action"] == "resumed")
            .map(|e| e["actor"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(actors, vec![format!("holder:{}", card.holder_id); 2]);
        env.stop().await;
    }
);

on_both_backends!(
    resume_without_card_proof_is_refused,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
        let serial = &p.auth_serial;
        assert_eq!(
            env.post(&format!("/v1/certificates/{serial}/suspend"), json!({}))
                .await
                .0,
            200
        );
        let before = env.snapshot(&card.holder_id).await;
        // No token, no proof.
        let (code, r) = env
            .post_open(&format!("/v1/certificates/{serial}/resume"), json!({}))
            .await;
        assert_eq!((code, r["code"].as_str()), (401, Some("unauthorized")));
        // A proof made by the phone itself (its auth key) is not enough: only the card resumes.
        let challenge = env.challenge().await;
        let msg = shomei_ca::holder_proof_message("resume", &serial.parse().unwrap(), &challenge);
        let sig = phone.sign(&p.auth_key, GateId::AuthPin, &msg);
        let proof = json!({"certificate": B64.encode(&p.auth_cert), "challenge": B64.encode(&challenge), "signature": B64.encode(sig)});
        let (code, r) = env
            .post_open(
                &format!("/v1/certificates/{serial}/resume"),
                json!({"proof": proof}),
            )
            .await;
        assert_eq!(
            (code, r["code"].as_str()),
            (403, Some("proof_needs_card")),
            "{r}"
        );
        // The device token is not an operator token either.
        let (code, _) = env
            .post_device(
                &format!("/v1/certificates/{serial}/resume"),
                &p.token,
                json!({}),
            )
            .await;
        assert_eq!(code, 401);
        // A card proof for another action.
        let wrong = env.card_proof(&card, "revoke", serial).await;
        let (code, r) = env
            .post_open(
                &format!("/v1/certificates/{serial}/resume"),
                json!({"proof": wrong}),
            )
            .await;
        assert_eq!((code, r["code"].as_str()), (403, Some("bad_holder_proof")));
        assert_eq!(
            env.snapshot(&card.holder_id).await,
            before,
            "nothing changed"
        );
        assert_eq!(env.cert(serial).await["status"], "suspended");
        env.stop().await;
    }
);

on_both_backends!(
    remote_wipe_without_proof_is_refused,
    |env: Env| async move {
        let card = env.enrol().await;
        let stranger = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
        let path = format!("/v1/devices/{}/wipe", p.device_id);
        let before = env.snapshot(&card.holder_id).await;
        let stranger_before = env.snapshot(&stranger.holder_id).await;
        // No token, no proof.
        let (code, r) = env.post_open(&path, json!({"lost": true})).await;
        assert_eq!((code, r["code"].as_str()), (401, Some("unauthorized")));
        // The phone's device token is not an operator token.
        let (code, r) = env.post_device(&path, &p.token, json!({})).await;
        assert_eq!((code, r["code"].as_str()), (401, Some("unauthorized")));
        // The phone's own authentication key: only the card may order a wipe.
        let proof = env
            .device_proof("wipe", &p.device_id, &p.auth_cert, |m| {
                phone.sign(&p.auth_key, GateId::AuthPin, m)
            })
            .await;
        let (code, r) = env.post_open(&path, json!({"proof": proof})).await;
        assert_eq!(
            (code, r["code"].as_str()),
            (403, Some("proof_needs_card")),
            "{r}"
        );
        // A card proof made for another action (retire) or another verb on a certificate.
        let proof = env
            .device_proof("retire", &p.device_id, &card.auth_cert, |m| {
                card.auth_key.sign(m).unwrap()
            })
            .await;
        let (code, r) = env.post_open(&path, json!({"proof": proof})).await;
        assert_eq!(
            (code, r["code"].as_str()),
            (403, Some("bad_holder_proof")),
            "{r}"
        );
        let wrong = env.card_proof(&card, "revoke", &p.auth_serial).await;
        let (code, r) = env.post_open(&path, json!({"proof": wrong})).await;
        assert_eq!((code, r["code"].as_str()), (403, Some("bad_holder_proof")));
        // Another holder's card, with a proof right in every other way.
        let proof = env
            .device_proof("wipe", &p.device_id, &stranger.auth_cert, |m| {
                stranger.auth_key.sign(m).unwrap()
            })
            .await;
        let (code, other_holder) = env
            .post_open(&path, json!({"lost": true, "proof": proof}))
            .await;
        assert_eq!(
            (code, other_holder["code"].as_str()),
            (403, Some("not_your_certificate")),
            "{other_holder}"
        );

        // An unknown device id answers exactly as a phone one may not wipe:
        // 401 without proof, and with a card's valid proof for that id the
        // same 403 as another holder's phone (never 404).
        let unknown = "d_000000000000000000000000";
        let unknown_path = format!("/v1/devices/{unknown}/wipe");
        let (code, r) = env.post_open(&unknown_path, json!({"lost": true})).await;
        assert_eq!((code, r["code"].as_str()), (401, Some("unauthorized")));
        let (code, r) = env.post_device(&unknown_path, &p.token, json!({})).await;
        assert_eq!((code, r["code"].as_str()), (401, Some("unauthorized")));
        let proof = env
            .device_proof("wipe", unknown, &card.auth_cert, |m| {
                card.auth_key.sign(m).unwrap()
            })
            .await;
        let (code, r) = env
            .post_open(&unknown_path, json!({"lost": true, "proof": proof}))
            .await;
        assert_eq!(
            (code, &r["code"], &r["status"]),
            (403, &other_holder["code"], &other_holder["status"]),
            "{r}"
        );
        assert_eq!(r["detail"], other_holder["detail"], "same words too");

        // Nothing changed for either holder; the phone is still active and usable.
        assert_eq!(
            env.snapshot(&card.holder_id).await,
            before,
            "nothing changed"
        );
        assert_eq!(env.snapshot(&stranger.holder_id).await, stranger_before);
        let s = env.sync(&p).await;
        assert_eq!(
            (s["status"].as_str(), s["wipe"].as_bool()),
            (Some("active"), Some(false))
        );
        assert_eq!(
            env.ocsp(&p.sign_cert, "sign").await,
            shomei_pki::ocsp::CertState::Good
        );
        // Only the operator learns that an id is unknown; the card's own proof wipes.
        let (code, r) = env.post(&unknown_path, json!({})).await;
        assert_eq!((code, r["code"].as_str()), (404, Some("not_found")));
        let proof = env
            .device_proof("wipe", &p.device_id, &card.auth_cert, |m| {
                card.auth_key.sign(m).unwrap()
            })
            .await;
        let (code, r) = env.post_open(&path, json!({"proof": proof})).await;
        assert_eq!(
            (code, r["status"].as_str()),
            (200, Some("wipe_pending")),
            "{r}"
        );
        env.stop().await;
    }
);

on_both_backends!(
    provisioning_failed_report_revokes_the_new_phone,
    |env: Env| async move {
        let card = env.enrol().await;
        let (old, _) = env
            .provision(&card, &Phone::with(&env.manufacturer), &Recipe::default())
            .await;
        // The new phone got its 201 but could not keep the certificates
        // (say its wallet write failed): it destroyed the keys and says so.
        let (p, _) = env
            .provision(&card, &Phone::with(&env.manufacturer), &Recipe::default())
            .await;
        let path = format!("/v1/devices/{}/wiped", p.device_id);
        let before = env.snapshot(&card.holder_id).await;
        let (code, _) = env
            .post_open(&path, json!({"cause": "provisioning_failed"}))
            .await;
        assert_eq!(code, 401, "only the device token reports it");
        let (code, _) = env
            .post_device(&path, &old.token, json!({"cause": "provisioning_failed"}))
            .await;
        assert_eq!(code, 403, "not another phone's token");
        assert_eq!(env.snapshot(&card.holder_id).await, before);
        for _ in 0..2 {
            let (code, d) = env
                .post_device(&path, &p.token, json!({"cause": "provisioning_failed"}))
                .await;
            assert_eq!((code, d["status"].as_str()), (200, Some("wiped")), "{d}");
        }
        for serial in [&p.sign_serial, &p.auth_serial] {
            let c = env.cert(serial).await;
            assert_eq!(
                (c["status"].as_str(), c["reason"].as_str()),
                (Some("revoked"), Some("cessationOfOperation")),
                "{c}"
            );
        }
        assert!(is_revoked(
            &env.ocsp(&p.sign_cert, "sign").await,
            shomei_core::RevocationReason::CessationOfOperation
        ));
        assert!(is_revoked(
            &env.ocsp(&p.auth_cert, "auth").await,
            shomei_core::RevocationReason::CessationOfOperation
        ));
        let events = env.events(&card.holder_id).await;
        let self_wiped: Vec<_> = events
            .iter()
            .filter(|e| e["action"] == "self_wiped")
            .collect();
        assert_eq!(self_wiped.len(), 1, "recorded once");
        assert_eq!(self_wiped[0]["detail"]["cause"], "provisioning_failed");
        assert_eq!(self_wiped[0]["detail"]["device_id"], p.device_id.as_str());
        // The earlier phone stays superseded (the holder provisions again),
        // the card is untouched.
        for serial in [&old.sign_serial, &old.auth_serial] {
            assert_eq!(env.cert(serial).await["reason"], "superseded");
        }
        for serial in [&card.sign_serial, &card.auth_serial] {
            assert_eq!(env.cert(serial).await["status"], "active");
        }
        let h = env.holder(&card.holder_id).await;
        let statuses: Vec<_> = h["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(statuses, vec!["superseded", "wiped"]);
        env.stop().await;
    }
);

/// Runs a provisioning that must be refused with `(status, code)` and change nothing.
async fn refused(env: &Env, card: &Card, body: Value, status: u16, code: &str) {
    let before = env.snapshot(&card.holder_id).await;
    let (got, p) = env.post_open("/v1/phones", body).await;
    assert_eq!((got, p["code"].as_str()), (status, Some(code)), "{p}");
    assert_eq!(
        env.snapshot(&card.holder_id).await,
        before,
        "{code}: nothing changed"
    );
}

on_both_backends!(
    provisioning_with_suspended_card_is_refused,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        for serial in [&card.sign_serial, &card.auth_serial] {
            assert_eq!(
                env.post(&format!("/v1/certificates/{serial}/suspend"), json!({}))
                    .await
                    .0,
                200
            );
            let (body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
            refused(&env, &card, body, 403, "card_suspended").await;
            assert_eq!(
                env.post(&format!("/v1/certificates/{serial}/resume"), json!({}))
                    .await
                    .0,
                200
            );
        }
        assert!(
            env.holder(&card.holder_id).await["devices"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        // Resumed: it works.
        env.provision(&card, &phone, &Recipe::default()).await;
        env.stop().await;
    }
);

on_both_backends!(
    provisioning_with_revoked_card_is_refused,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (code, _) = env
            .post(
                &format!("/v1/certificates/{}/revoke", card.sign_serial),
                json!({"reason": "keyCompromise"}),
            )
            .await;
        assert_eq!(code, 200);
        let (body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
        refused(&env, &card, body, 403, "card_revoked").await;
        // A certificate that is not a card signing certificate is refused too.
        let (mut body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
        body["card_sign_cert"] = json!(B64.encode(&card.auth_cert));
        refused(&env, &card, body, 403, "card_not_ours").await;
        assert!(
            env.holder(&card.holder_id).await["devices"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        env.stop().await;
    }
);

on_both_backends!(forged_card_signature_is_refused, |env: Env| async move {
    let card = env.enrol().await;
    let phone = Phone::with(&env.manufacturer);
    let recipe = Recipe {
        forge_with: Some(RsaSigner::generate().unwrap()),
        ..Recipe::default()
    };
    let (body, _, _) = env.request(&card, &phone, &recipe).await;
    refused(&env, &card, body.clone(), 403, "bad_card_signature").await;
    // Signed by the card's authentication key instead of its signing key: refused.
    let (mut body2, _, _) = env.request(&card, &phone, &Recipe::default()).await;
    let challenge = B64.decode(body2["challenge"].as_str().unwrap()).unwrap();
    let spki = |k: &str| spki_of_csr(&B64.decode(body2[k].as_str().unwrap()).unwrap());
    let msg = shomei_ca::phone_provisioning_message(
        &challenge,
        &phone.device_id(),
        &spki("sign_csr"),
        &spki("auth_csr"),
    );
    body2["card_signature"] = json!(B64.encode(card.auth_key.sign(&msg).unwrap()));
    refused(&env, &card, body2, 403, "bad_card_signature").await;
    // A certificate of another authority's card.
    let other = start(Backend::Sqlite).await.unwrap();
    let foreign = other.enrol().await;
    let (mut body3, _, _) = env.request(&card, &phone, &Recipe::default()).await;
    body3["card_sign_cert"] = json!(B64.encode(&foreign.sign_cert));
    refused(&env, &card, body3, 403, "card_not_ours").await;
    other.stop().await;
    // The forged attempt spent its challenge.
    refused(&env, &card, body, 403, "unknown_challenge").await;
    env.stop().await;
});

on_both_backends!(replayed_challenge_is_refused, |env: Env| async move {
    let card = env.enrol().await;
    let phone = Phone::with(&env.manufacturer);
    let (body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
    let (code, v) = env.post_open("/v1/phones", body.clone()).await;
    assert_eq!(code, 201, "{v}");
    refused(&env, &card, body.clone(), 403, "unknown_challenge").await;
    // A made-up challenge is no better.
    let mut made_up = body;
    made_up["challenge"] = json!(B64.encode([9u8; 32]));
    refused(&env, &card, made_up, 403, "unknown_challenge").await;
    assert_eq!(
        env.holder(&card.holder_id).await["devices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    env.stop().await;
});

on_both_backends!(
    attestation_for_another_key_is_refused,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let recipe = Recipe {
            swap_chains: true,
            ..Recipe::default()
        };
        let (body, _, _) = env.request(&card, &phone, &recipe).await;
        refused(&env, &card, body, 422, "attestation_key_mismatch").await;
        // Chains bound to another challenge (an earlier one) are refused too.
        let (old, _, _) = env.request(&card, &phone, &Recipe::default()).await;
        let (mut body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
        for k in [
            "sign_csr",
            "auth_csr",
            "sign_attestation",
            "auth_attestation",
        ] {
            body[k] = old[k].clone();
        }
        let challenge = B64.decode(body["challenge"].as_str().unwrap()).unwrap();
        let spki = |k: &str| spki_of_csr(&B64.decode(body[k].as_str().unwrap()).unwrap());
        let msg = shomei_ca::phone_provisioning_message(
            &challenge,
            &phone.device_id(),
            &spki("sign_csr"),
            &spki("auth_csr"),
        );
        body["card_signature"] = json!(B64.encode(card.sign_key.sign(&msg).unwrap()));
        refused(&env, &card, body, 403, "attestation_challenge_mismatch").await;
        // A device id that is not the attested one.
        let (mut body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
        body["device"]["id"] = json!("00112233445566778899aabbccddeeff");
        refused(&env, &card, body, 422, "device_mismatch").await;
        env.stop().await;
    }
);

on_both_backends!(untrusted_manufacturer_is_refused, |env: Env| async move {
    let card = env.enrol().await;
    let rogue = SimManufacturer::generate(now()).unwrap();
    let phone = Phone::with(&rogue);
    let (body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
    refused(&env, &card, body, 403, "untrusted_manufacturer").await;
    // No chain at all is a bad request.
    let (mut body, _, _) = env
        .request(&card, &Phone::with(&env.manufacturer), &Recipe::default())
        .await;
    body["sign_attestation"] = json!([]);
    refused(&env, &card, body, 400, "bad_request").await;
    env.stop().await;
});

on_both_backends!(
    weak_password_policy_in_attestation_is_refused,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        // The signing key behind the 4-digit PIN instead of a signing password.
        let weak = Recipe {
            sign_policy: KeyPolicy::new(GateId::AuthPin, false).unwrap(),
            ..Recipe::default()
        };
        let (body, _, _) = env.request(&card, &phone, &weak).await;
        refused(&env, &card, body, 422, "weak_key_policy").await;
        // ... or by the PIN or a biometric.
        let bio = Recipe {
            sign_policy: KeyPolicy::PHONE_AUTH,
            ..Recipe::default()
        };
        let (body, _, _) = env.request(&card, &phone, &bio).await;
        refused(&env, &card, body, 422, "weak_key_policy").await;
        // The authentication key must be behind the PIN.
        let odd = Recipe {
            auth_policy: KeyPolicy::PHONE_SIGN,
            ..Recipe::default()
        };
        let (body, _, _) = env.request(&card, &phone, &odd).await;
        refused(&env, &card, body, 422, "weak_key_policy").await;
        // With biometric off on the auth key it is fine.
        let no_bio = Recipe {
            auth_policy: KeyPolicy::new(GateId::AuthPin, false).unwrap(),
            ..Recipe::default()
        };
        env.provision(&card, &phone, &no_bio).await;
        env.stop().await;
    }
);

on_both_backends!(
    self_retire_before_sale_revokes_and_wipes,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
        let path = format!("/v1/devices/{}/retire", p.device_id);
        let retire_body = |challenge: &[u8], sig: &[u8]| json!({"challenge": B64.encode(challenge), "signature": B64.encode(sig)});
        let before = env.snapshot(&card.holder_id).await;
        // Signed by the phone's signing key, or over another action: refused, nothing changes.
        let challenge = env.challenge().await;
        let msg = shomei_ca::device_proof_message("retire", &p.device_id, &challenge);
        let wrong_key = phone.sign(&p.sign_key, GateId::SignPassword, &msg);
        let (code, r) = env
            .post_device(&path, &p.token, retire_body(&challenge, &wrong_key))
            .await;
        assert_eq!(
            (code, r["code"].as_str()),
            (403, Some("bad_device_proof")),
            "{r}"
        );
        let challenge = env.challenge().await;
        let other = shomei_ca::device_proof_message("wipe", &p.device_id, &challenge);
        let sig = phone.sign(&p.auth_key, GateId::AuthPin, &other);
        let (code, r) = env
            .post_device(&path, &p.token, retire_body(&challenge, &sig))
            .await;
        assert_eq!((code, r["code"].as_str()), (403, Some("bad_device_proof")));
        // Without the device token: refused.
        let (code, _) = env.post_open(&path, retire_body(&challenge, &sig)).await;
        assert_eq!(code, 401);
        assert_eq!(env.snapshot(&card.holder_id).await, before);

        // The phone proves possession of its auth key: certificates end, wipe queued.
        let challenge = env.challenge().await;
        let msg = shomei_ca::device_proof_message("retire", &p.device_id, &challenge);
        let sig = phone.sign(&p.auth_key, GateId::AuthPin, &msg);
        let (code, r) = env
            .post_device(&path, &p.token, retire_body(&challenge, &sig))
            .await;
        assert_eq!(
            (code, r["status"].as_str(), r["wipe"].as_bool()),
            (200, Some("wipe_pending"), Some(true)),
            "{r}"
        );
        assert_eq!(r["revoked"].as_array().unwrap().len(), 2);
        assert!(is_revoked(
            &env.ocsp(&p.sign_cert, "sign").await,
            shomei_core::RevocationReason::CessationOfOperation
        ));
        assert!(is_revoked(
            &env.ocsp(&p.auth_cert, "auth").await,
            shomei_core::RevocationReason::CessationOfOperation
        ));
        assert_eq!(
            env.cert(&card.sign_serial).await["status"],
            "active",
            "the card is untouched"
        );
        let s = env.sync(&p).await;
        assert_eq!(
            (s["status"].as_str(), s["wipe"].as_bool()),
            (Some("wipe_pending"), Some(true))
        );
        // It wipes and confirms.
        phone.se.lock().unwrap().wipe().unwrap();
        let (code, d) = env
            .post_device(
                &format!("/v1/devices/{}/wiped", p.device_id),
                &p.token,
                json!({}),
            )
            .await;
        assert_eq!((code, d["status"].as_str()), (200, Some("wiped")));
        // Retiring again is refused.
        let challenge = env.challenge().await;
        let (code, r) = env
            .post_device(&path, &p.token, retire_body(&challenge, &sig))
            .await;
        assert_eq!((code, r["code"].as_str()), (409, Some("device_not_active")));
        // A remote wipe of a wiped phone too (operator), and a holder wipe of the
        // next phone with a card proof works.
        let (code, r) = env
            .post(&format!("/v1/devices/{}/wipe", p.device_id), json!({}))
            .await;
        assert_eq!((code, r["code"].as_str()), (409, Some("device_wiped")));
        let next = Phone::with(&env.manufacturer);
        let (p2, _) = env.provision(&card, &next, &Recipe::default()).await;
        let proof = env
            .device_proof("wipe", &p2.device_id, &card.auth_cert, |m| {
                card.auth_key.sign(m).unwrap()
            })
            .await;
        let (code, r) = env
            .post_open(
                &format!("/v1/devices/{}/wipe", p2.device_id),
                json!({"lost": true, "proof": proof}),
            )
            .await;
        assert_eq!((code, r["status"].as_str()), (200, Some("lost")), "{r}");
        assert!(is_revoked(
            &env.ocsp(&p2.auth_cert, "auth").await,
            shomei_core::RevocationReason::KeyCompromise
        ));
        assert_eq!(env.sync(&p2).await["wipe"], true);
        env.stop().await;
    }
);

on_both_backends!(
    ocsp_query_for_phone_cert_becomes_a_used_event,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
        let used = |events: &[Value]| -> Vec<Value> {
            events
                .iter()
                .filter(|e| e["action"] == "used")
                .cloned()
                .collect()
        };
        // A card certificate's status check is not a phone use.
        env.ocsp(&card.sign_cert, "sign").await;
        // A relying party checks the phone's signing certificate, several times.
        for _ in 0..5 {
            assert_eq!(
                env.ocsp(&p.sign_cert, "sign").await,
                shomei_pki::ocsp::CertState::Good
            );
        }
        let mut events = Vec::new();
        for _ in 0..100 {
            events = env.events(&card.holder_id).await;
            if !used(&events).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let u = used(&events);
        assert_eq!(u.len(), 1, "debounced to one per minute: {u:?}");
        assert_eq!(u[0]["serial"], p.sign_serial.as_str());
        assert_eq!(u[0]["actor"], "system");
        assert_eq!(u[0]["detail"], json!({"via": "ocsp"}));
        // The GET form counts too, but not within the same minute for the same serial;
        // the auth certificate is a different serial.
        env.ocsp(&p.auth_cert, "auth").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let events = env.events(&card.holder_id).await;
        let serials: Vec<_> = used(&events)
            .iter()
            .map(|e| e["serial"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(serials, vec![p.sign_serial.clone(), p.auth_serial.clone()]);
        // The phone hears about it on sync.
        let s = env.sync(&p).await;
        assert_eq!(used(s["events"].as_array().unwrap()).len(), 2);
        env.stop().await;
    }
);

/// Reads server-sent events from a response, keeping partial blocks between calls.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// Events until `done` says so (or 10 s pass).
    async fn until(&mut self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(&events) {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(v.trim().to_owned());
                    }
                }
                if let Some(data) = data {
                    let v: Value = serde_json::from_str(&data).unwrap();
                    assert_eq!(id.as_deref(), Some(v["id"].to_string().as_str()));
                    assert_eq!(name.as_deref(), v["action"].as_str());
                    events.push(v);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("SSE event in time")
                .unwrap()
                .expect("stream open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
        events
    }
}

on_both_backends!(sse_stream_delivers_events, |env: Env| async move {
    let card = env.enrol().await;
    let phone = Phone::with(&env.manufacturer);
    let (p, _) = env.provision(&card, &phone, &Recipe::default()).await;
    let path = format!("/v1/holders/{}/events/stream", card.holder_id);
    // Not without a token; not with another holder's phone.
    let r = env.http.get(env.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let other = env.enrol().await;
    let (q, _) = env
        .provision(&other, &Phone::with(&env.manufacturer), &Recipe::default())
        .await;
    let r = env
        .http
        .get(env.url(&path))
        .bearer_auth(&q.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The phone subscribes: the history first, then what happens next, live.
    let resp = env
        .http
        .get(env.url(&path))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut resp = SseReader::new(resp);
    let history = resp
        .until(|e| e.iter().filter(|e| e["action"] == "issued").count() == 4)
        .await;
    let actions: Vec<_> = history
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        vec!["issued", "issued", "phone_provisioned", "issued", "issued"]
    );
    let last = history.last().unwrap()["id"].as_i64().unwrap();
    // The operator (in another window) also follows, from the cursor.
    let op = env
        .http
        .get(env.url(&format!("{path}?after={last}")))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(op.status(), 200);
    let mut op = SseReader::new(op);
    let (code, _) = env
        .post(
            &format!("/v1/certificates/{}/suspend", p.sign_serial),
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    let live = resp.until(|e| !e.is_empty()).await;
    let suspended = &live[0];
    assert_eq!(suspended["action"], "suspended");
    assert_eq!(suspended["serial"], p.sign_serial.as_str());
    assert!(suspended["id"].as_i64().unwrap() > last);
    let seen_by_operator = op.until(|e| !e.is_empty()).await;
    assert_eq!(
        seen_by_operator[0]["id"], suspended["id"],
        "starts after the cursor"
    );
    // Another holder's events never show up on this stream.
    let (code, _) = env
        .post(
            &format!("/v1/certificates/{}/suspend", q.sign_serial),
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = env
        .post(
            &format!("/v1/certificates/{}/resume", p.sign_serial),
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    let next = resp.until(|e| !e.is_empty()).await;
    assert_eq!(next[0]["action"], "resumed");
    assert_eq!(next[0]["serial"], p.sign_serial.as_str());
    // Resuming from Last-Event-ID replays exactly what came after it.
    let again = env
        .http
        .get(env.url(&path))
        .bearer_auth(&env.token)
        .header("Last-Event-ID", suspended["id"].to_string())
        .send()
        .await
        .unwrap();
    let replay = SseReader::new(again).until(|e| !e.is_empty()).await;
    assert_eq!(replay[0]["action"], "resumed");
    env.stop().await;
});

on_both_backends!(
    email_notification_sent_over_smtp,
    true,
    |env: Env| async move {
        let sink = env._smtp.as_ref().unwrap();
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let email = "hanako.notify@example.jp";
        let recipe = Recipe {
            notify_email: Some(email.into()),
            ..Recipe::default()
        };
        let (p, _) = env.provision(&card, &phone, &recipe).await;
        // The provisioning itself is the first notice.
        let first = sink.wait_for(1).await;
        // Then a suspension of the phone's signing certificate.
        assert_eq!(
            env.post(
                &format!("/v1/certificates/{}/suspend", p.sign_serial),
                json!({})
            )
            .await
            .0,
            200
        );
        let all = sink.wait_for(2).await;
        assert_eq!(all[0], first[0]);
        for m in &all {
            assert!(m.contains(&format!("To: {email}")), "{m}");
            assert!(m.contains("From: notify@authority.shomei.test"), "{m}");
            // Never personal data: not the basic four (any part, in any form), not a My Number.
            for personal in [
                NAME,
                "山田",
                "太郎",
                ADDRESS,
                "東京都",
                BIRTH,
                "1990",
                "Sex",
                "sex:",
            ] {
                assert!(!m.contains(personal), "{personal:?} in {m}");
            }
            let body = m.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
            assert!(
                !body.contains(email),
                "the address is not repeated in the body"
            );
            let mut digits = body.clone();
            for serial in [
                &p.sign_serial,
                &p.auth_serial,
                &card.sign_serial,
                &card.auth_serial,
            ] {
                digits = digits.replace(serial.as_str(), "");
            }
            assert!(
                !digits
                    .chars()
                    .collect::<Vec<_>>()
                    .windows(12)
                    .any(|w| w.iter().all(char::is_ascii_digit)),
                "no 12-digit number (a My Number) in {body}"
            );
            assert!(m.is_ascii(), "plain ASCII text: {m}");
            assert!(m.contains("Content-Transfer-Encoding: 7bit"), "{m}");
        }
        assert!(
            all[0].contains("put on a new phone") && all[0].contains("phone-sign certificate"),
            "{}",
            all[0]
        );
        assert!(
            all[1].contains("suspended")
                && all[1].contains(&format!("phone-sign certificate, serial {}", p.sign_serial)),
            "{}",
            all[1]
        );
        // The holder opts out (from the phone): no more mail.
        let (code, r) = env
            .send(
                env.http
                    .put(env.url(&format!("/v1/holders/{}/contact", card.holder_id)))
                    .bearer_auth(&p.token)
                    .json(&json!({"email": email, "notify_email": false})),
            )
            .await;
        assert_eq!(
            (code, r["notify_email"].as_bool()),
            (200, Some(false)),
            "{r}"
        );
        assert_eq!(
            env.post(
                &format!("/v1/certificates/{}/resume", p.sign_serial),
                json!({})
            )
            .await
            .0,
            200
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(sink.messages().len(), 2, "opted out");
        // A bad address (header injection) is refused.
        let (code, r) = env
        .send(env.http.put(env.url(&format!("/v1/holders/{}/contact", card.holder_id))).bearer_auth(&env.token)
            .json(&json!({"email": "x@example.jp\r\nBcc: y@example.jp", "notify_email": true})))
        .await;
        assert_eq!((code, r["code"].as_str()), (400, Some("bad_request")));
        // The events never carry the address.
        let events = env.events(&card.holder_id).await;
        assert!(
            !serde_json::to_string(&events)
                .unwrap()
                .contains("example.jp")
        );
        env.stop().await;
    }
);

/// A relay that is down delays nothing: provisioning answers at once, and
/// the failure is logged, not returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_never_blocks_the_request() {
    let env = start_with(Backend::Sqlite, true).await.unwrap();
    let card = env.enrol().await;
    let phone = Phone::with(&env.manufacturer);
    // Kill the sink: the relay refuses connections from now on.
    let mut env = env;
    let mut sink = env._smtp.take().unwrap();
    let _ = sink.child.kill();
    let _ = sink.child.wait();
    let started = std::time::Instant::now();
    let recipe = Recipe {
        notify_email: Some("taro@example.jp".into()),
        ..Recipe::default()
    };
    let (body, _, _) = env.request(&card, &phone, &recipe).await;
    let (code, v) = env.post_open("/v1/phones", body).await;
    assert_eq!(code, 201, "{v}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(sink);
    env.stop().await;
}

/// The OpenAPI document lists every phone route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_phone_routes() {
    let env = start(Backend::Sqlite).await.unwrap();
    let doc: Value = serde_json::from_slice(&env.bytes(&env.url("/openapi.json")).await).unwrap();
    for p in shomei_authority_server::openapi::PATHS {
        assert!(doc["paths"].get(*p).is_some(), "{p} undocumented");
    }
    assert!(
        doc["paths"]["/v1/phones"]["post"]["summary"]
            .as_str()
            .unwrap()
            .contains("shomei/phone-provision/v1")
    );
    env.stop().await;
}

// ---------------------------------------------------------------------------
// The mobile ID (ISO 18013-5 mdoc) issued with the phone

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(b64.trim()).unwrap()
}

impl Env {
    async fn iacas(&self) -> shomei_mdoc::issuer::TrustedIacas {
        let pem = self.bytes(&self.url("/ca/iaca.pem")).await;
        shomei_mdoc::issuer::TrustedIacas::new(vec![pem_to_der(&pem)]).unwrap()
    }

    /// The published status list, verified under the IACA.
    async fn status_list(&self) -> shomei_mdoc::status::VerifiedStatusList {
        let r = self
            .http
            .get(self.url("/status/mdoc"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/statuslist+cwt"
        );
        let token = r.bytes().await.unwrap();
        shomei_mdoc::status::verify_status_list_token(
            &token,
            &self.url("/status/mdoc"),
            &self.iacas().await,
            now(),
            shomei_mdoc::status::StatusListLimits::default(),
        )
        .unwrap()
    }

    /// The mobile ID of an answer, verified (status checked against the list).
    async fn verify_mdoc(
        &self,
        mdoc: &Value,
    ) -> Result<shomei_mdoc::issuer::VerifiedIssuerSigned, shomei_mdoc::MdocError> {
        assert_eq!(mdoc["doc_type"], shomei_mdoc::jp::DOC_TYPE);
        let bytes = B64.decode(mdoc["issuer_signed"].as_str().unwrap()).unwrap();
        let is = shomei_mdoc::issuer::IssuerSigned::from_cbor(&bytes).unwrap();
        let list = self.status_list().await;
        shomei_mdoc::issuer::verify_issuer_signed(
            shomei_mdoc::jp::DOC_TYPE,
            &is,
            &self.iacas().await,
            now(),
            shomei_mdoc::issuer::StatusCheck::List(&list),
        )
    }

    async fn refresh_mdoc(&self, p: &Provisioned) -> (u16, Value) {
        self.post_device(
            &format!("/v1/devices/{}/mdoc", p.device_id),
            &p.token,
            json!({}),
        )
        .await
    }
}

on_both_backends!(
    mdoc_issued_with_the_phone_follows_its_status,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = Phone::with(&env.manufacturer);
        let with_mdoc = Recipe {
            mdoc: Some(MdocKey::Good),
            ..Recipe::default()
        };
        let (p, v) = env.provision(&card, &phone, &with_mdoc).await;
        let mdoc = &v["mdoc"];
        let ok = env.verify_mdoc(mdoc).await.unwrap();
        assert_eq!(
            ok.status(),
            shomei_mdoc::issuer::StatusOutcome::Valid,
            "the list says VALID"
        );
        assert_eq!(
            Some(ok.device_key().to_spki()),
            p.mdoc_spki,
            "bound to the SE key"
        );
        let status = ok.mso().status.clone().unwrap();
        assert_eq!(status.uri, env.url("/status/mdoc"));
        assert_eq!(Some(status.idx), mdoc["status_idx"].as_u64());
        // The basic four, no My Number, no local government code, no portrait.
        use shomei_mdoc::jp::{NS_ISO23220, NS_JP, elements};
        assert_eq!(
            ok.element(NS_JP, elements::FULL_NAME),
            Some(&ciborium::Value::from(NAME.replace(' ', "\u{3000}")))
        );
        assert_eq!(
            ok.element(NS_ISO23220, "age_over_18"),
            Some(&ciborium::Value::Bool(true))
        );
        for absent in [
            elements::INDIVIDUAL_NUMBER,
            elements::LOCAL_GOV_CODE,
            elements::PORTRAIT,
        ] {
            assert_eq!(ok.element(NS_JP, absent), None, "{absent}");
        }
        let validity = ok.validity();
        assert!(validity.valid_until - validity.valid_from <= time::Duration::days(30));
        assert!(validity.valid_until > now() + time::Duration::days(1));

        // A refresh: same index, same device key, still VALID.
        let (code, fresh) = env.refresh_mdoc(&p).await;
        assert_eq!(code, 200, "{fresh}");
        assert_eq!(fresh["status_idx"], mdoc["status_idx"]);
        let again = env.verify_mdoc(&fresh).await.unwrap();
        assert_eq!(again.device_key(), ok.device_key());
        // Another phone's token cannot refresh it.
        let (code, _) = env
            .post_device(
                &format!("/v1/devices/{}/mdoc", p.device_id),
                "sdt_nope",
                json!({}),
            )
            .await;
        assert_eq!(code, 401);

        // Suspending the phone: SUSPENDED, and no refresh.
        for serial in [&p.sign_serial, &p.auth_serial] {
            let (code, r) = env
                .post(&format!("/v1/certificates/{serial}/suspend"), json!({}))
                .await;
            assert_eq!(code, 200, "{r}");
        }
        assert_eq!(
            env.verify_mdoc(mdoc).await.unwrap_err(),
            shomei_mdoc::MdocError::Suspended
        );
        let (code, r) = env.refresh_mdoc(&p).await;
        assert_eq!((code, r["code"].as_str()), (409, Some("device_suspended")));

        // A new phone: the old mobile ID is INVALID, the new one VALID at
        // another index.
        let phone2 = Phone::with(&env.manufacturer);
        let (p2, v2) = env.provision(&card, &phone2, &with_mdoc).await;
        assert_eq!(
            env.verify_mdoc(mdoc).await.unwrap_err(),
            shomei_mdoc::MdocError::Revoked
        );
        let second = env.verify_mdoc(&v2["mdoc"]).await.unwrap();
        assert_ne!(v2["mdoc"]["status_idx"], mdoc["status_idx"]);
        assert_eq!(Some(second.device_key().to_spki()), p2.mdoc_spki);
        let (code, r) = env.refresh_mdoc(&p).await;
        assert_eq!((code, r["code"].as_str()), (409, Some("device_not_active")));

        // Revoking the new phone's certificate: INVALID.
        let (code, r) = env
            .post(
                &format!("/v1/certificates/{}/revoke", p2.auth_serial),
                json!({"reason": "keyCompromise"}),
            )
            .await;
        assert_eq!(code, 200, "{r}");
        assert_eq!(
            env.verify_mdoc(&v2["mdoc"]).await.unwrap_err(),
            shomei_mdoc::MdocError::Revoked
        );
        // A phone without a device key gets no mobile ID (older clients).
        let phone3 = Phone::with(&env.manufacturer);
        let (_, v3) = env.provision(&card, &phone3, &Recipe::default()).await;
        assert!(v3["mdoc"].is_null(), "{v3}");
        env.stop().await;
    }
);

on_both_backends!(forged_mdoc_attestation_is_refused, |env: Env| async move {
    let card = env.enrol().await;
    let phone = Phone::with(&env.manufacturer);
    for (how, code) in [
        (MdocKey::WrongChallenge, "bad_mdoc_attestation"),
        (MdocKey::OtherDevice, "device_mismatch"),
        (MdocKey::WrongPolicy, "bad_mdoc_key_policy"),
        (MdocKey::PinOnlyPolicy, "bad_mdoc_key_policy"),
    ] {
        let recipe = Recipe {
            mdoc: Some(how),
            ..Recipe::default()
        };
        let (body, _, _) = env.request(&card, &phone, &recipe).await;
        refused(&env, &card, body, 403, code).await;
    }
    // A key from an untrusted manufacturer.
    let stranger = SimManufacturer::generate(now()).unwrap();
    let other = Phone::with(&stranger);
    let (mut body, _, _) = env
        .request(
            &card,
            &phone,
            &Recipe {
                mdoc: Some(MdocKey::Good),
                ..Recipe::default()
            },
        )
        .await;
    let (ob, _, _) = env
        .request(
            &card,
            &other,
            &Recipe {
                mdoc: Some(MdocKey::Good),
                ..Recipe::default()
            },
        )
        .await;
    body["mdoc_device_key"] = ob["mdoc_device_key"].clone();
    body["mdoc_attestation"] = ob["mdoc_attestation"].clone();
    refused(&env, &card, body, 403, "bad_mdoc_attestation").await;
    // One field without the other.
    let (mut body, _, _) = env
        .request(
            &card,
            &phone,
            &Recipe {
                mdoc: Some(MdocKey::Good),
                ..Recipe::default()
            },
        )
        .await;
    body.as_object_mut().unwrap().remove("mdoc_attestation");
    refused(&env, &card, body, 400, "bad_request").await;
    // Nothing was allocated: the list has no entry that is not VALID and
    // the holder has no phone.
    let list = env.status_list().await;
    assert_eq!(
        list.list().get(0).unwrap(),
        shomei_mdoc::status::STATUS_VALID
    );
    // A good request still works afterwards.
    let (_, v) = env
        .provision(
            &card,
            &phone,
            &Recipe {
                mdoc: Some(MdocKey::Good),
                ..Recipe::default()
            },
        )
        .await;
    assert_eq!(
        v["mdoc"]["status_idx"], 0,
        "the refusals allocated no index"
    );
    // A device key with the authentication key's policy (phones made before
    // the presence policy) is still accepted.
    let older = Phone::with(&env.manufacturer);
    let (_, v) = env
        .provision(
            &card,
            &older,
            &Recipe {
                mdoc: Some(MdocKey::LegacyAuthPolicy),
                ..Recipe::default()
            },
        )
        .await;
    assert_eq!(v["mdoc"]["status_idx"], 1, "{v}");
    env.stop().await;
});

// ---------------------------------------------------------------------------
// The card's portrait in the mobile ID, brought from the card by the holder

/// A stand-in photo (real cards: greyscale JPEG 2000), distinct per call.
fn card_photo() -> Vec<u8> {
    let mut photo = b"\xff\xd8\xff\xe0 shomei test portrait ".to_vec();
    photo.extend_from_slice(&rand_label().to_be_bytes());
    photo.extend((0..4000u32).map(|i| (i % 251) as u8));
    photo
}

impl Env {
    /// Enrols a card for a holder with `photo` on its face: the card and the
    /// authority-signed face EF (券面AP EF 0002) the card holds.
    async fn enrol_with_face(
        &self,
        name: &str,
        address: &str,
        birth: &str,
        photo: &[u8],
    ) -> (Card, Vec<u8>) {
        let (s, a) = (
            RsaSigner::generate().unwrap(),
            RsaSigner::generate().unwrap(),
        );
        let (code, v) = self
            .post(
                "/v1/cards",
                json!({
                    "holder": {"name": name, "address": address, "birth_date": birth, "sex": "1"},
                    "sign_csr": B64.encode(build_csr(&s, "s").unwrap()),
                    "auth_csr": B64.encode(build_csr(&a, "a").unwrap()),
                    "portrait": B64.encode(photo),
                }),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        let face = B64
            .decode(v["card_face"]["visual"]["face"].as_str().unwrap())
            .unwrap();
        let card = Card {
            holder_id: v["holder_id"].as_str().unwrap().into(),
            sign_serial: v["sign_serial"].as_str().unwrap().into(),
            auth_serial: v["auth_serial"].as_str().unwrap().into(),
            sign_cert: B64.decode(v["sign_cert"].as_str().unwrap()).unwrap(),
            auth_cert: B64.decode(v["auth_cert"].as_str().unwrap()).unwrap(),
            sign_key: s,
            auth_key: a,
        };
        (card, face)
    }

    /// Provisions `phone` from `card` with a mobile-ID key and `card_face`;
    /// must succeed.
    async fn provision_with_face(
        &self,
        card: &Card,
        phone: &Phone,
        face: &[u8],
    ) -> (Provisioned, Value) {
        let recipe = Recipe {
            mdoc: Some(MdocKey::Good),
            ..Recipe::default()
        };
        let (mut body, sign_key, auth_key) = self.request(card, phone, &recipe).await;
        body["card_face"] = json!(B64.encode(face));
        let mdoc_spki = body["mdoc_device_key"]
            .as_str()
            .map(|k| B64.decode(k).unwrap());
        let (code, v) = self.post_open("/v1/phones", body).await;
        assert_eq!(code, 201, "{v}");
        (
            Provisioned {
                device_id: v["device_id"].as_str().unwrap().into(),
                token: v["device_token"].as_str().unwrap().into(),
                sign_serial: v["sign_serial"].as_str().unwrap().into(),
                auth_serial: v["auth_serial"].as_str().unwrap().into(),
                sign_cert: B64.decode(v["sign_cert"].as_str().unwrap()).unwrap(),
                auth_cert: B64.decode(v["auth_cert"].as_str().unwrap()).unwrap(),
                sign_key,
                auth_key,
                mdoc_spki,
            },
            v,
        )
    }
}

on_both_backends!(
    mobile_id_carries_the_card_portrait_when_the_holder_brings_it,
    |env: Env| async move {
        use shomei_mdoc::jp::{NS_JP, elements};
        let photo = card_photo();
        let (card, face) = env.enrol_with_face(NAME, ADDRESS, BIRTH, &photo).await;
        let phone = Phone::with(&env.manufacturer);
        let (p, v) = env.provision_with_face(&card, &phone, &face).await;
        let ok = env.verify_mdoc(&v["mdoc"]).await.unwrap();
        assert_eq!(
            ok.element(NS_JP, elements::PORTRAIT),
            Some(&ciborium::Value::Bytes(photo.clone())),
            "the card's photo, byte for byte"
        );
        assert_eq!(Some(ok.device_key().to_spki()), p.mdoc_spki);
        // Still the basic four beside it, and no My Number.
        assert_eq!(
            ok.element(NS_JP, elements::FULL_NAME),
            Some(&ciborium::Value::from(NAME.replace(' ', "\u{3000}")))
        );
        assert_eq!(ok.element(NS_JP, elements::INDIVIDUAL_NUMBER), None);

        // A refresh at sync keeps it (the authority kept it with the mobile ID).
        let (code, fresh) = env.refresh_mdoc(&p).await;
        assert_eq!(code, 200, "{fresh}");
        assert_eq!(fresh["status_idx"], v["mdoc"]["status_idx"]);
        let again = env.verify_mdoc(&fresh).await.unwrap();
        assert_eq!(
            again.element(NS_JP, elements::PORTRAIT),
            Some(&ciborium::Value::Bytes(photo.clone()))
        );
        // The photo is in no event.
        let events = serde_json::to_string(&env.events(&card.holder_id).await).unwrap();
        assert!(events.contains("mdoc_refreshed"), "{events}");
        assert!(!events.contains(&B64.encode(&photo[..48])));

        // A new phone without the face: its mobile ID has no portrait (the
        // photo went with the superseded phone's mobile ID).
        let phone2 = Phone::with(&env.manufacturer);
        let with_mdoc = Recipe {
            mdoc: Some(MdocKey::Good),
            ..Recipe::default()
        };
        let (p2, v2) = env.provision(&card, &phone2, &with_mdoc).await;
        let second = env.verify_mdoc(&v2["mdoc"]).await.unwrap();
        assert_eq!(second.element(NS_JP, elements::PORTRAIT), None);
        let (code, fresh2) = env.refresh_mdoc(&p2).await;
        assert_eq!(code, 200, "{fresh2}");
        let second = env.verify_mdoc(&fresh2).await.unwrap();
        assert_eq!(second.element(NS_JP, elements::PORTRAIT), None);
        env.stop().await;
    }
);

on_both_backends!(
    forged_card_face_is_refused_and_changes_nothing,
    |env: Env| async move {
        use shomei_pki::cardface;
        let photo = card_photo();
        let (card, face) = env.enrol_with_face(NAME, ADDRESS, BIRTH, &photo).await;
        let phone = Phone::with(&env.manufacturer);
        let with_face = |mut body: Value, face: &[u8]| {
            body["card_face"] = json!(B64.encode(face));
            body
        };
        let recipe = Recipe {
            mdoc: Some(MdocKey::Good),
            ..Recipe::default()
        };

        // The same holder's face, signed by a key that is not the authority's.
        let holder = shomei_core::BasicFour::new(
            NAME,
            ADDRESS,
            BIRTH.parse().unwrap(),
            shomei_core::Sex::Male,
        )
        .unwrap();
        let forger = shomei_pki::EcdsaP256Signer::generate().unwrap();
        let forged = cardface::build(
            &cardface::FaceInput {
                holder: &holder,
                my_number: &shomei_core::MyNumber::parse("123456789018").unwrap(),
                expiry: time::Date::from_calendar_date(2035, time::Month::April, 1).unwrap(),
                security_code: "1234",
                photo: b"\xff\xd8\xff forged",
                issuer: "Test Authority",
            },
            &forger,
        )
        .unwrap()
        .visual_face;
        let (body, _, _) = env.request(&card, &phone, &recipe).await;
        refused(&env, &card, with_face(body, &forged), 403, "bad_card_face").await;

        // The authority's face with one byte of the photo changed.
        let mut tampered = face.clone();
        let at = tampered
            .windows(photo.len())
            .position(|w| w == photo.as_slice())
            .unwrap();
        tampered[at + 100] ^= 1;
        let (body, _, _) = env.request(&card, &phone, &recipe).await;
        refused(
            &env,
            &card,
            with_face(body, &tampered),
            403,
            "bad_card_face",
        )
        .await;

        // The authority's face of another holder (another card's face).
        let (_, other_face) = env
            .enrol_with_face(
                "佐藤 花子",
                "大阪府大阪市北区1-1",
                "1985-12-24",
                &card_photo(),
            )
            .await;
        let (body, _, _) = env.request(&card, &phone, &recipe).await;
        refused(
            &env,
            &card,
            with_face(body, &other_face),
            403,
            "card_face_mismatch",
        )
        .await;

        // Not a face at all, not base64, or without a mobile-ID key.
        let (body, _, _) = env.request(&card, &phone, &recipe).await;
        refused(
            &env,
            &card,
            with_face(body, b"\x01\x02"),
            403,
            "bad_card_face",
        )
        .await;
        let (mut body, _, _) = env.request(&card, &phone, &recipe).await;
        body["card_face"] = json!("not base64!");
        refused(&env, &card, body, 400, "bad_request").await;
        let (body, _, _) = env.request(&card, &phone, &Recipe::default()).await;
        refused(&env, &card, with_face(body, &face), 400, "bad_request").await;

        // No device and no mobile ID were made: the holder has no phone, and
        // a good request afterwards gets the first status index.
        let h = env.holder(&card.holder_id).await;
        assert!(h["devices"].as_array().is_none_or(|d| d.is_empty()), "{h}");
        let (_, v) = env.provision_with_face(&card, &phone, &face).await;
        assert_eq!(
            v["mdoc"]["status_idx"], 0,
            "the refusals allocated no index"
        );
        let ok = env.verify_mdoc(&v["mdoc"]).await.unwrap();
        assert_eq!(
            ok.element(shomei_mdoc::jp::NS_JP, shomei_mdoc::jp::elements::PORTRAIT),
            Some(&ciborium::Value::Bytes(photo))
        );
        env.stop().await;
    }
);
