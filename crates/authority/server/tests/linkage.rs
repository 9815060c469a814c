//! Linkage for relying parties (証明書紐付け情報 / 証明書新旧紐付け情報) over
//! real HTTP on loopback: registering relying parties, looking certificates
//! up with their tokens, holder pseudonyms (checked against an independent
//! HMAC of DIR/keys/linkage.key), successors through renewal and the re-issue
//! after an address change, the current certificates after a phone change,
//! and "used" events from lookups about phone certificates.
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
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};
use sha2::Digest;
use shomei_authority_server::home::MANUFACTURERS_DIR;
use shomei_authority_server::{RunningAuthority, SystemClock};
use shomei_core::Signer;
use shomei_pki::RsaSigner;
use shomei_pki::csr::build_csr;
use shomei_se_sim::{MemoryDeviceRoot, MemoryStore, SimManufacturer, SimOptions, SimSecureElement};
use shomei_secure_element::{
    GateId, KeyKind, KeyPolicy, SeSigner, SecureElement, SharedElement, UnlockScope,
};

const NAME: &str = "山田 太郎";
const ADDRESS: &str = "東京都千代田区千代田1-1";
const NEW_ADDRESS: &str = "大阪府大阪市北区1-1";
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
    pg: Option<PgDb>,
}

async fn start(backend: Backend) -> Option<Env> {
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(postgres_db("shomei_linkage").await?),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    init_authority(&dir, &base, now());
    let manufacturer = SimManufacturer::generate(now()).unwrap();
    std::fs::write(
        dir.join(MANUFACTURERS_DIR).join("shomei-sim.der"),
        manufacturer.root_cert_der(),
    )
    .unwrap();
    let state = shomei_authority_server::load(
        &dir,
        pg.as_ref().map(|p| p.url.as_str()),
        Arc::new(SystemClock),
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
        pg,
    })
}

/// A card as issued.
struct Card {
    holder_id: String,
    sign_serial: String,
    auth_serial: String,
    sign_cert: Vec<u8>,
    sign_key: RsaSigner,
}

/// A phone's certificates as provisioned.
struct Provisioned {
    sign_serial: String,
    auth_serial: String,
    auth_cert: Vec<u8>,
}

/// A registered relying party.
struct Rp {
    id: String,
    name: String,
    token: String,
}

fn new_phone(m: &SimManufacturer) -> SharedElement {
    let root = MemoryDeviceRoot::new(m.new_device(now()).unwrap());
    let mut se =
        SimSecureElement::provision(MemoryStore::new(), root, SimOptions::default()).unwrap();
    se.set_pin(GateId::SignPassword, SIGN_PASSWORD).unwrap();
    se.set_pin(GateId::AuthPin, AUTH_PIN).unwrap();
    Arc::new(Mutex::new(Box::new(se)))
}

/// A new key in the phone's element bound to `challenge`: CSR and attestation chain.
fn phone_key(se: &SharedElement, policy: KeyPolicy, challenge: &[u8]) -> (Vec<u8>, Vec<String>) {
    let label = format!("jpki-{:x}", rand_label());
    let (handle, chain, unlock) = {
        let mut e = se.lock().unwrap();
        let handle = e
            .create_key(&label, KeyKind::Rsa2048, policy, challenge)
            .unwrap();
        let chain = e
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
        let unlock = e.verify_pin(policy.gate(), pin, UnlockScope::Once).unwrap();
        (handle, chain, unlock)
    };
    let signer = SeSigner::new(se.clone(), handle, unlock).unwrap();
    (build_csr(&signer, &label).unwrap(), chain)
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
        send_checked(req, &[NAME, ADDRESS, NEW_ADDRESS, BIRTH]).await
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

    async fn get(&self, path: &str) -> Value {
        let (code, v) = self
            .send(self.http.get(self.url(path)).bearer_auth(&self.token))
            .await;
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    async fn register(&self, name: &str) -> Rp {
        let (code, v) = self
            .post("/v1/relying-parties", json!({ "name": name }))
            .await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["name"], name);
        Rp {
            id: v["id"].as_str().unwrap().into(),
            name: name.into(),
            token: v["token"].as_str().unwrap().into(),
        }
    }

    /// GET /v1/linkage/{serial} with `token` (None: no Authorization header).
    async fn linkage_with(&self, token: Option<&str>, serial: &str) -> (u16, Value) {
        let mut req = self.http.get(self.url(&format!("/v1/linkage/{serial}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// A successful lookup by `rp`.
    async fn linkage(&self, rp: &Rp, serial: &str) -> Value {
        let (code, v) = self.linkage_with(Some(&rp.token), serial).await;
        assert_eq!(code, 200, "linkage of {serial}: {v}");
        v
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
            sign_key: s,
        }
    }

    /// Provisions a new phone from `card`; must succeed.
    async fn provision(&self, card: &Card) -> Provisioned {
        let se = new_phone(&self.manufacturer);
        let (code, r) = self
            .send(self.http.post(self.url("/v1/challenges")).json(&json!({})))
            .await;
        assert_eq!(code, 201);
        let challenge = B64.decode(r["challenge"].as_str().unwrap()).unwrap();
        let (sign_csr, sign_chain) = phone_key(&se, KeyPolicy::PHONE_SIGN, &challenge);
        let (auth_csr, auth_chain) = phone_key(&se, KeyPolicy::PHONE_AUTH, &challenge);
        let device_id = se.lock().unwrap().device_id().to_hex();
        let message = shomei_ca::phone_provisioning_message(
            &challenge,
            &device_id,
            &spki_of_csr(&sign_csr),
            &spki_of_csr(&auth_csr),
        );
        let body = json!({
            "device": {"id": device_id, "kind": "android"},
            "card_sign_cert": B64.encode(&card.sign_cert),
            "challenge": B64.encode(&challenge),
            "card_signature": B64.encode(card.sign_key.sign(&message).unwrap()),
            "sign_csr": B64.encode(&sign_csr),
            "auth_csr": B64.encode(&auth_csr),
            "sign_attestation": sign_chain,
            "auth_attestation": auth_chain,
        });
        let (code, v) = self
            .send(self.http.post(self.url("/v1/phones")).json(&body))
            .await;
        assert_eq!(code, 201, "{v}");
        Provisioned {
            sign_serial: v["sign_serial"].as_str().unwrap().into(),
            auth_serial: v["auth_serial"].as_str().unwrap().into(),
            auth_cert: B64.decode(v["auth_cert"].as_str().unwrap()).unwrap(),
        }
    }

    /// Renews `serial` (operator) for a fresh key: the new serial.
    async fn renew(&self, serial: &str) -> String {
        let (code, v) = self.try_renew(serial).await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["replaces"], serial);
        v["serial"].as_str().unwrap().into()
    }

    async fn try_renew(&self, serial: &str) -> (u16, Value) {
        let key = RsaSigner::generate().unwrap();
        self.post(
            &format!("/v1/certificates/{serial}/renew"),
            json!({"csr": B64.encode(build_csr(&key, "n").unwrap())}),
        )
        .await
    }

    async fn change_address(&self, holder: &str) -> Value {
        let (code, v) = self
            .send(
                self.http
                    .put(self.url(&format!("/v1/holders/{holder}")))
                    .bearer_auth(&self.token)
                    .json(&json!({"holder": {"name": NAME, "address": NEW_ADDRESS, "birth_date": BIRTH, "sex": "1"}})),
            )
            .await;
        assert_eq!(code, 200, "{v}");
        v
    }

    async fn events(&self, holder: &str) -> Vec<Value> {
        self.get(&format!("/v1/holders/{holder}/events")).await["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn used_events(&self, holder: &str) -> Vec<Value> {
        self.events(holder)
            .await
            .into_iter()
            .filter(|e| e["action"] == "used")
            .collect()
    }

    /// Waits until the holder has `n` "used" events; returns them.
    async fn wait_for_used(&self, holder: &str, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let used = self.used_events(holder).await;
            if used.len() >= n {
                return used;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {n} used events");
    }

    /// Everything a refusal must leave alone, for one holder.
    async fn snapshot(&self, holder: &str) -> (Value, usize) {
        let mut h = self.get(&format!("/v1/holders/{holder}")).await;
        h["certificates"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .for_each(|c| {
                c.as_object_mut().unwrap().remove("certificate");
            });
        (h, self.events(holder).await.len())
    }

    /// The pseudonym computed independently: HMAC-SHA256 under
    /// DIR/keys/linkage.key of `rp id ‖ 0x00 ‖ holder id`, base64url.
    fn expected_pseudonym(&self, rp_id: &str, holder_id: &str) -> String {
        let key = std::fs::read(self.dir.join("keys").join("linkage.key")).unwrap();
        assert_eq!(key.len(), 32);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
        let mut msg = rp_id.as_bytes().to_vec();
        msg.push(0);
        msg.extend_from_slice(holder_id.as_bytes());
        B64URL.encode(aws_lc_rs::hmac::sign(&key, &msg).as_ref())
    }
}

/// The serial as `openssl x509 -serial` prints it (`serial=…` stripped).
fn openssl_serial(dir: &Path, der: &[u8]) -> String {
    let p = dir.join(format!("c{}.der", rand_label()));
    std::fs::write(&p, der).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-serial", "-in"])
        .arg(&p)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .strip_prefix("serial=")
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------
// Scenarios

on_both_backends!(
    registration_is_for_the_operator_and_names_are_unique,
    |env: Env| async move {
        let url = env.url("/v1/relying-parties");
        // No token, a wrong token: 401 before the body is even looked at.
        let (code, v) = env
            .send(env.http.post(&url).json(&json!({"name": "bank"})))
            .await;
        assert_eq!((code, v["code"].as_str()), (401, Some("unauthorized")));
        let (code, _) = env
            .send(
                env.http
                    .post(&url)
                    .bearer_auth("nope")
                    .json(&json!({"name": "bank"})),
            )
            .await;
        assert_eq!(code, 401);
        let bank = env.register("example-bank.jp_1").await;
        assert!(bank.id.starts_with("rp_"), "{}", bank.id);
        // The token: base64url, at least 32 random bytes.
        assert!(bank.token.len() >= 43, "{}", bank.token);
        assert!(
            bank.token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{}",
            bank.token
        );
        // A relying party cannot register others.
        let (code, _) = env
            .send(
                env.http
                    .post(&url)
                    .bearer_auth(&bank.token)
                    .json(&json!({"name": "evil"})),
            )
            .await;
        assert_eq!(code, 401);
        // Bad names and bodies.
        for body in [
            json!({"name": ""}),
            json!({"name": "has space"}),
            json!({"name": "銀行"}),
            json!({"name": "x".repeat(65)}),
            json!({"name": "ok", "extra": 1}),
            json!({}),
        ] {
            let (code, v) = env.post("/v1/relying-parties", body.clone()).await;
            assert_eq!(code, 400, "{body}: {v}");
        }
        // The same name again: 409 with a stable code; the first token still works.
        let (code, v) = env
            .post("/v1/relying-parties", json!({"name": "example-bank.jp_1"}))
            .await;
        assert_eq!(
            (code, v["code"].as_str()),
            (409, Some("relying_party_exists"))
        );
        let registry = env.running.as_ref().unwrap().state.registry.clone();
        let found = registry
            .relying_party_by_token_hash(&sha2::Sha256::digest(bank.token.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id.as_str(), found.name.as_str()),
            (bank.id.as_str(), bank.name.as_str())
        );
        // 64 characters is the limit, not beyond; names are distinct, tokens too.
        let long = env.register(&"x".repeat(64)).await;
        assert_ne!(long.token, bank.token);
        assert_ne!(long.id, bank.id);
        // Only the hash is stored: the token is nowhere in the SQLite files.
        if env.pg.is_none() {
            for f in ["registry.sqlite", "registry.sqlite-wal"] {
                if let Ok(bytes) = std::fs::read(env.dir.join(f)) {
                    let hay = String::from_utf8_lossy(&bytes);
                    assert!(!hay.contains(&bank.token), "token stored in {f}");
                    assert!(!hay.contains(&bank.token[4..]), "token stored in {f}");
                }
            }
        }
        env.stop().await;
    }
);

on_both_backends!(
    one_pseudonym_per_holder_and_relying_party,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = env.provision(&card).await;
        let bank = env.register("bank").await;
        let shop = env.register("shop").await;
        let want = env.expected_pseudonym(&bank.id, &card.holder_id);
        // The exact shape, for a card signing certificate.
        let v = env.linkage(&bank, &card.sign_serial).await;
        assert_eq!(
            v,
            json!({
                "serial": card.sign_serial,
                "class": "card_sign",
                "medium": "card",
                "status": "good",
                "revocation_reason": null,
                "successor": null,
                "current": {"sign": card.sign_serial, "auth": card.auth_serial},
                "holder": want,
            })
        );
        // Card auth, phone sign and auth: same pseudonym; phone certificates
        // show the phone's current certificates.
        let v = env.linkage(&bank, &card.auth_serial).await;
        assert_eq!(
            (v["class"].as_str(), v["holder"].as_str()),
            (Some("card_auth"), Some(want.as_str()))
        );
        for (serial, class) in [
            (&phone.sign_serial, "phone_sign"),
            (&phone.auth_serial, "phone_auth"),
        ] {
            let v = env.linkage(&bank, serial).await;
            assert_eq!(
                v,
                json!({
                    "serial": serial,
                    "class": class,
                    "medium": "phone",
                    "status": "good",
                    "revocation_reason": null,
                    "successor": null,
                    "current": {"sign": phone.sign_serial, "auth": phone.auth_serial},
                    "holder": want,
                })
            );
        }
        // The serial as openssl prints it, and in lower case, name the same certificate.
        let printed = openssl_serial(&env.dir, &phone.auth_cert);
        assert_eq!(
            env.linkage(&bank, &printed).await["serial"],
            phone.auth_serial.as_str()
        );
        let lower = card.sign_serial.to_lowercase();
        assert_ne!(lower, card.sign_serial);
        assert_eq!(env.linkage(&bank, &lower).await["holder"], want.as_str());
        // Another relying party sees another pseudonym, the same for all certificates.
        let other = env.expected_pseudonym(&shop.id, &card.holder_id);
        assert_ne!(other, want);
        for serial in [
            &card.sign_serial,
            &card.auth_serial,
            &phone.sign_serial,
            &phone.auth_serial,
        ] {
            assert_eq!(env.linkage(&shop, serial).await["holder"], other.as_str());
        }
        // Another holder, another pseudonym; nothing reveals the holder id.
        let second = env.enrol().await;
        let theirs = env.linkage(&bank, &second.sign_serial).await["holder"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(theirs, env.expected_pseudonym(&bank.id, &second.holder_id));
        assert_ne!(theirs, want);
        assert!(!want.contains(&card.holder_id) && !want.contains(&card.holder_id[2..]));
        let text = env.linkage(&bank, &card.sign_serial).await.to_string();
        for secret in [card.holder_id.as_str(), NAME, ADDRESS, BIRTH] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // The operator token is accepted too (its own pseudonym space).
        let (code, v) = env.linkage_with(Some(&env.token), &card.sign_serial).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(
            v["holder"],
            env.expected_pseudonym("operator", &card.holder_id).as_str()
        );
        env.stop().await;
    }
);

on_both_backends!(successor_follows_phone_changes, |env: Env| async move {
    let card = env.enrol().await;
    let first = env.provision(&card).await;
    let second = env.provision(&card).await;
    let bank = env.register("bank").await;
    // The first phone's certificates lead to the second's, class by class.
    for (old, new) in [
        (&first.sign_serial, &second.sign_serial),
        (&first.auth_serial, &second.auth_serial),
    ] {
        let v = env.linkage(&bank, old).await;
        assert_eq!(
            (
                v["status"].as_str(),
                v["revocation_reason"].as_str(),
                v["successor"].as_str()
            ),
            (Some("revoked"), Some("superseded"), Some(new.as_str())),
            "{v}"
        );
    }
    // A third phone: the chain is followed to the newest; the newest has none.
    let third = env.provision(&card).await;
    let v = env.linkage(&bank, &first.sign_serial).await;
    assert_eq!(v["successor"], third.sign_serial.as_str(), "{v}");
    assert_eq!(v["current"]["sign"], third.sign_serial.as_str());
    let v = env.linkage(&bank, &second.auth_serial).await;
    assert_eq!(v["successor"], third.auth_serial.as_str(), "{v}");
    let v = env.linkage(&bank, &third.sign_serial).await;
    assert_eq!(v["successor"], Value::Null);
    // A card certificate is never a phone's predecessor.
    let v = env.linkage(&bank, &card.sign_serial).await;
    assert_eq!(v["successor"], Value::Null);
    env.stop().await;
});

on_both_backends!(
    successor_follows_renewal_and_address_change,
    |env: Env| async move {
        let card = env.enrol().await;
        let bank = env.register("bank").await;
        let pseudonym = env.expected_pseudonym(&bank.id, &card.holder_id);
        let s1 = card.sign_serial.clone();
        // Renewal: the old one is superseded and points to the new one.
        let s2 = env.renew(&s1).await;
        let v = env.linkage(&bank, &s1).await;
        assert_eq!(
            (
                v["status"].as_str(),
                v["revocation_reason"].as_str(),
                v["successor"].as_str()
            ),
            (Some("revoked"), Some("superseded"), Some(s2.as_str()))
        );
        assert_eq!(v["current"], json!({"sign": s2, "auth": card.auth_serial}));
        // An address change revokes the signing certificate (affiliationChanged)…
        let changed = env.change_address(&card.holder_id).await;
        assert_eq!(changed["revoked"], json!([s2]));
        let v = env.linkage(&bank, &s2).await;
        assert_eq!(
            (
                v["status"].as_str(),
                v["revocation_reason"].as_str(),
                v["successor"].clone()
            ),
            (Some("revoked"), Some("affiliationChanged"), Value::Null)
        );
        assert_eq!(
            v["current"],
            json!({"sign": null, "auth": card.auth_serial})
        );
        // …and the new signing certificate for the new address is linked to it.
        let s3 = env.renew(&s2).await;
        for old in [&s1, &s2] {
            let v = env.linkage(&bank, old).await;
            assert_eq!(v["successor"], s3.as_str(), "from {old}");
            assert_eq!(v["current"]["sign"], s3.as_str());
            assert_eq!(v["holder"], pseudonym.as_str());
        }
        let v = env.linkage(&bank, &s3).await;
        assert_eq!(
            (
                v["status"].as_str(),
                v["successor"].clone(),
                v["holder"].as_str()
            ),
            (Some("good"), Value::Null, Some(pseudonym.as_str()))
        );
        // Only once: a second re-issue is refused and changes nothing.
        let before = env.snapshot(&card.holder_id).await;
        let (code, p) = env.try_renew(&s2).await;
        assert_eq!((code, p["code"].as_str()), (409, Some("already_replaced")));
        let (code, p) = env.try_renew(&s1).await;
        assert_eq!((code, p["code"].as_str()), (409, Some("certificate_final")));
        assert_eq!(env.snapshot(&card.holder_id).await, before);
        // The authentication certificate stayed through the move; renewing it links too.
        let a2 = env.renew(&card.auth_serial).await;
        let v = env.linkage(&bank, &card.auth_serial).await;
        assert_eq!(v["successor"], a2.as_str());
        assert_eq!(v["current"], json!({"sign": s3, "auth": a2}));
        assert_eq!(v["holder"], pseudonym.as_str());
        env.stop().await;
    }
);

on_both_backends!(current_follows_a_phone_change, |env: Env| async move {
    let card = env.enrol().await;
    let bank = env.register("bank").await;
    let pseudonym = env.expected_pseudonym(&bank.id, &card.holder_id);
    let first = env.provision(&card).await;
    let second = env.provision(&card).await;
    for serial in [&first.sign_serial, &first.auth_serial] {
        let v = env.linkage(&bank, serial).await;
        assert_eq!(
            (
                v["status"].as_str(),
                v["revocation_reason"].as_str(),
                v["medium"].as_str()
            ),
            (Some("revoked"), Some("superseded"), Some("phone"))
        );
        assert_eq!(
            v["current"],
            json!({"sign": second.sign_serial, "auth": second.auth_serial})
        );
        assert_eq!(v["holder"], pseudonym.as_str());
    }
    let v = env.linkage(&bank, &second.auth_serial).await;
    assert_eq!(
        (v["status"].as_str(), v["holder"].as_str()),
        (Some("good"), Some(pseudonym.as_str()))
    );
    // The card's view is unchanged by phones.
    let v = env.linkage(&bank, &card.sign_serial).await;
    assert_eq!(
        v["current"],
        json!({"sign": card.sign_serial, "auth": card.auth_serial})
    );
    // Suspending the phone's auth certificate: it is no longer current.
    let (code, v) = env
        .post(
            &format!("/v1/certificates/{}/suspend", second.auth_serial),
            json!({}),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let v = env.linkage(&bank, &second.auth_serial).await;
    assert_eq!(
        (v["status"].as_str(), v["revocation_reason"].clone()),
        (Some("suspended"), Value::Null)
    );
    assert_eq!(
        v["current"],
        json!({"sign": second.sign_serial, "auth": null})
    );
    env.stop().await;
});

on_both_backends!(refusals_change_nothing, |env: Env| async move {
    let card = env.enrol().await;
    let phone = env.provision(&card).await;
    let bank = env.register("bank").await;
    let before = env.snapshot(&card.holder_id).await;
    // 401: no token, an unknown one, an empty one, a device-style one — even for a bad serial.
    for (token, serial) in [
        (None, phone.auth_serial.as_str()),
        (
            Some("srp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            phone.auth_serial.as_str(),
        ),
        (
            Some(&bank.token[..bank.token.len() - 1]),
            phone.sign_serial.as_str(),
        ),
        (Some(""), phone.auth_serial.as_str()),
        (None, "not-hex"),
    ] {
        let (code, v) = env.linkage_with(token, serial).await;
        assert_eq!(
            (code, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{token:?} {serial}"
        );
    }
    // 400: malformed serials.
    for serial in ["xyz", "12G4", &"A".repeat(200), "%20"] {
        let (code, v) = env.linkage_with(Some(&bank.token), serial).await;
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("bad_request")),
            "{serial}: {v}"
        );
    }
    // 404: well-formed but never issued.
    for serial in ["4000000000000000FF", "01"] {
        let (code, v) = env.linkage_with(Some(&bank.token), serial).await;
        assert_eq!(
            (code, v["code"].as_str()),
            (404, Some("not_found")),
            "{serial}: {v}"
        );
    }
    // Nothing was written (give the usage writer time to have written, had it been fed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.snapshot(&card.holder_id).await, before);
    assert!(env.used_events(&card.holder_id).await.is_empty());
    env.stop().await;
});

on_both_backends!(
    phone_lookups_are_uses_the_holder_sees,
    |env: Env| async move {
        let card = env.enrol().await;
        let phone = env.provision(&card).await;
        let bank = env.register("bank").await;
        let shop = env.register("shop").await;
        // Card lookups are not recorded.
        env.linkage(&bank, &card.sign_serial).await;
        env.linkage(&bank, &card.auth_serial).await;
        // A phone lookup is, once per relying party and serial (debounced).
        env.linkage(&bank, &phone.auth_serial).await;
        env.linkage(&bank, &phone.auth_serial).await;
        let used = env.wait_for_used(&card.holder_id, 1).await;
        assert_eq!(used[0]["actor"], "relying_party:bank");
        assert_eq!(used[0]["serial"], phone.auth_serial.as_str());
        assert_eq!(used[0]["detail"], json!({"via": "linkage"}));
        // Another relying party's lookup is its own use.
        env.linkage(&shop, &phone.auth_serial).await;
        let used = env.wait_for_used(&card.holder_id, 2).await;
        assert_eq!(used[1]["actor"], "relying_party:shop");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let used = env.used_events(&card.holder_id).await;
        assert_eq!(
            used.iter()
                .map(|e| (e["actor"].as_str().unwrap(), e["serial"].as_str().unwrap()))
                .collect::<Vec<_>>(),
            vec![
                ("relying_party:bank", phone.auth_serial.as_str()),
                ("relying_party:shop", phone.auth_serial.as_str())
            ],
            "no card certificate uses, no repeats"
        );
        // The phone's signing certificate is a separate use.
        env.linkage(&bank, &phone.sign_serial).await;
        let used = env.wait_for_used(&card.holder_id, 3).await;
        assert_eq!(used[2]["serial"], phone.sign_serial.as_str());
        env.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_linkage_routes() {
    let env = start(Backend::Sqlite).await.unwrap();
    let doc = env.get("/openapi.json").await;
    for p in ["/v1/relying-parties", "/v1/linkage/{serial}"] {
        assert!(shomei_authority_server::openapi::PATHS.contains(&p), "{p}");
        assert!(doc["paths"].get(p).is_some(), "{p} undocumented");
    }
    let props = &doc["paths"]["/v1/linkage/{serial}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["properties"];
    for field in [
        "serial",
        "class",
        "medium",
        "status",
        "revocation_reason",
        "successor",
        "current",
        "holder",
    ] {
        assert!(props.get(field).is_some(), "{field}");
    }
    env.stop().await;
}
