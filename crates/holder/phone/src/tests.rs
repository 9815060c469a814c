//! Unit tests of the wallet against an in-process authority mock (the real
//! authority core `shomei_ca` behind the [`AuthorityHttp`] trait, with
//! the registry reduced to a few maps). The scenarios against the real HTTP
//! authority are in the workspace's `tests/phone.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use shomei_ca::{Authority, AuthorityConfig, EnrolRequest, PhoneRequest};
use shomei_card::{
    Card, CardError, CardSigner, CertKind, Certificates, ChipMemory, InProcess, JpkiClient,
    KeyKind, MemoryChip, PinKind, SecureElement as TokenSe, TokenKind, Transport, Variant,
};
use shomei_core::{BasicFour, RandomSource, Root, Serial, SignError, Signer, Timestamp};
use shomei_pki::RsaSigner;
use shomei_pki::csr::build_csr;
use shomei_pki::profile::{PublicationPoints, RootCa};
use shomei_se_sim::{MemoryDeviceRoot, MemoryStore, SimManufacturer, SimOptions, SimSecureElement};
use shomei_secure_element::{BiometricStatus, GateId, GateStatus, SeError, TamperKind, WipeReason};
use time::macros::datetime;

use super::*;
use crate::applet::lock;

const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);
const CARD_PW: &str = "CARD2026";
const CARD_PIN: &str = "1111";
const PHONE_PW: &str = "PHONE2026";
const PHONE_PIN: &str = "2468";
const BASE: &str = "http://authority.test";
const MY_NUMBER: &str = "123456789018";
const CARD_PHOTO: &[u8] = b"\xff\xd8\xff card photo";
/// PIN B of the fixture card: birth YYMMDD + expiry year + security code.
const CARD_PIN_B: &str = "90040120364321";

struct Counter(u8);
impl RandomSource for Counter {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SignError> {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        Ok(())
    }
}

/// The authority core, a personalised card image, the card's certificates
/// and a manufacturer: made once (RSA key generation is slow).
struct Fixture {
    authority: Authority,
    /// The authority's card-face key (signs the card's 券面AP face).
    face_key: shomei_pki::EcdsaP256Signer,
    holder: BasicFour,
    card_image: Vec<u8>,
    card_sign: Vec<u8>,
    card_auth: Vec<u8>,
    manufacturer: SimManufacturer,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = |r, n: u8| {
            Arc::new(
                RootCa::create(
                    r,
                    "Test",
                    Arc::new(RsaSigner::generate().unwrap()),
                    &Serial::from_be_bytes(&[n]).unwrap(),
                    NOW,
                )
                .unwrap(),
            )
        };
        let authority = Authority::new(
            AuthorityConfig {
                points: PublicationPoints::new(BASE),
                crl_shards: 2,
            },
            root(Root::Sign, 1),
            root(Root::Auth, 2),
        );
        let holder = BasicFour::new(
            "山田 花子",
            "東京都",
            "1990-04-01".parse().unwrap(),
            shomei_core::Sex::Female,
        )
        .unwrap();
        let chip = MemoryChip::new();
        let card = Card::manufacture(chip.clone(), Variant::Card, CARD_PW, CARD_PIN).unwrap();
        let mut client = JpkiClient::new(InProcess::new(card));
        client.verify(PinKind::Sign, CARD_PW).unwrap();
        client.verify(PinKind::Auth, CARD_PIN).unwrap();
        let s = CardSigner::new(client, KeyKind::Sign).unwrap();
        let sign_csr = build_csr(&s, "s").unwrap();
        let a = CardSigner::new(s.into_client(), KeyKind::Auth).unwrap();
        let auth_csr = build_csr(&a, "a").unwrap();
        let mut client = a.into_client();
        let issued = authority
            .enrol(
                &EnrolRequest {
                    holder: &holder,
                    sign_csr: Some(&sign_csr),
                    auth_csr: &auth_csr,
                },
                NOW,
                &mut Counter(0),
            )
            .unwrap();
        let card_sign = issued.sign.unwrap().der;
        let card_auth = issued.auth.der;
        client
            .personalise(&Certificates {
                sign: &card_sign,
                sign_ca: authority.root(Root::Sign).cert_der(),
                auth: &card_auth,
                auth_ca: authority.root(Root::Auth).cert_der(),
            })
            .unwrap();
        // The card face (券面AP), signed by the authority's face key; the
        // text AP's PIN stays the auth PIN set at manufacture.
        let face_key = shomei_pki::EcdsaP256Signer::generate().unwrap();
        let face = shomei_pki::cardface::build(
            &shomei_pki::cardface::FaceInput {
                holder: &holder,
                my_number: &shomei_core::MyNumber::parse(MY_NUMBER).unwrap(),
                expiry: time::macros::date!(2036 - 04 - 01),
                security_code: "4321",
                photo: CARD_PHOTO,
                issuer: "Test",
            },
            &face_key,
        )
        .unwrap();
        client.write_face(&face).unwrap();
        client.activate().unwrap();
        Fixture {
            authority,
            face_key,
            holder,
            card_image: chip.load().unwrap().to_vec(),
            card_sign,
            card_auth,
            manufacturer: SimManufacturer::generate(NOW).unwrap(),
        }
    })
}

/// A fresh copy of the card, and its memory.
fn fresh_card() -> (JpkiClient<InProcess>, MemoryChip) {
    let chip = MemoryChip::with_image(&fixture().card_image);
    let card = Card::open(chip.clone()).unwrap();
    (JpkiClient::new(InProcess::new(card)), chip)
}

/// A new phone on in-memory storage, with handles on its storage.
struct TestPhone {
    phone: Phone,
    sealed: MemoryStore,
    root: MemoryDeviceRoot,
    wallet: MemoryWalletStore,
}

fn new_phone() -> TestPhone {
    let root = MemoryDeviceRoot::new(fixture().manufacturer.new_device(NOW).unwrap());
    let sealed = MemoryStore::new();
    let se =
        SimSecureElement::provision(sealed.clone(), root.clone(), SimOptions::default()).unwrap();
    let wallet = MemoryWalletStore::new();
    let phone = Phone::from_parts(Box::new(se), Box::new(wallet.clone())).unwrap();
    TestPhone {
        phone,
        sealed,
        root,
        wallet,
    }
}

impl TestPhone {
    /// Power cycle: reopens the element and the wallet from storage.
    fn reopen(&mut self) -> Result<(), PhoneError> {
        let se = SimSecureElement::open(self.sealed.clone(), self.root.fork(self.counter()))?;
        self.phone = Phone::from_parts(Box::new(se), Box::new(self.wallet.clone()))?;
        Ok(())
    }

    fn counter(&self) -> u64 {
        use shomei_se_sim::DeviceRoot;
        self.root.counter().unwrap()
    }
}

fn request(card_password: &str) -> ProvisionRequest<'_> {
    ProvisionRequest {
        authority: BASE,
        card_password,
        sign_password: PHONE_PW,
        auth_pin: PHONE_PIN,
        notify_email: None,
    }
}

// ---------------------------------------------------------------- the mock

#[derive(Default)]
struct MockDevice {
    token: String,
    status: &'static str,
    auth_spki: Vec<u8>,
    serials: Vec<String>,
    mdoc_spki: Option<Vec<u8>>,
}

/// A document signer under an IACA, made once.
fn document_signer() -> &'static (Vec<u8>, shomei_pki::EcdsaP256Signer) {
    static DS: OnceLock<(Vec<u8>, shomei_pki::EcdsaP256Signer)> = OnceLock::new();
    DS.get_or_init(|| {
        let points = PublicationPoints::new(BASE);
        let iaca = shomei_pki::profile::Iaca::create(
            "Mock Authority",
            &points,
            Arc::new(shomei_pki::EcdsaP256Signer::generate().unwrap()),
            &Serial::from_be_bytes(&[7]).unwrap(),
            NOW,
        )
        .unwrap();
        let ds = shomei_pki::EcdsaP256Signer::generate().unwrap();
        let cert = iaca
            .issue_document_signer(
                &points,
                &ds,
                &Serial::from_be_bytes(&[8]).unwrap(),
                NOW,
                365,
            )
            .unwrap();
        (cert, ds)
    })
}

/// A 30-day mobile ID for `spki`, signed at `at`, as the authority answers it.
fn mock_mdoc(spki: &[u8], at: Timestamp, idx: u64) -> Value {
    use shomei_mdoc::issuer::{DocumentContent, DocumentSigner, issue};
    use shomei_mdoc::mso::{DeviceKey, StatusRef, ValidityInfo};
    let (cert, key) = document_signer();
    let ds = DocumentSigner::new(key, cert.clone()).unwrap();
    let content = DocumentContent {
        doc_type: shomei_mdoc::jp::DOC_TYPE.into(),
        name_spaces: vec![(
            shomei_mdoc::jp::NS_ISO23220.into(),
            vec![("age_over_18".into(), ciborium::Value::Bool(true))],
        )],
    };
    let signed = issue(
        &content,
        &DeviceKey::from_spki(spki).unwrap(),
        ValidityInfo::starting(at, time::Duration::days(30)),
        Some(StatusRef {
            idx,
            uri: format!("{BASE}/status/mdoc"),
        }),
        &ds,
        &mut Counter(idx as u8),
    )
    .unwrap();
    json!({
        "doc_type": shomei_mdoc::jp::DOC_TYPE,
        "issuer_signed": B64.encode(signed.to_cbor().unwrap()),
        "valid_until": "",
        "status_idx": idx,
    })
}

/// The authority's phone endpoints over `shomei_ca`, in memory.
#[derive(Default)]
struct Mock {
    challenges: HashSet<Vec<u8>>,
    devices: HashMap<String, MockDevice>,
    events: Vec<Value>,
    calls: Vec<String>,
    /// The body of the last `POST /v1/phones`, as sent.
    last_phone_body: Option<String>,
    refuse_phones: bool,
    /// Changes the `201` answer to `POST /v1/phones` after issuing (an
    /// authority or a network that answers something the phone cannot keep).
    alter_phone_answer: Option<fn(&mut Value)>,
    /// Issues phones without a mobile ID (none in the answer, none to refresh).
    no_mdoc: bool,
    /// `POST /v1/devices/{id}/wiped` calls: the device and the body's cause.
    wiped: Vec<(String, Option<String>)>,
    /// When the mock signs a refreshed mobile ID.
    clock: Option<Timestamp>,
}

impl Mock {
    fn problem(status: u16, code: &str) -> HttpResponse {
        HttpResponse {
            status,
            body: json!({"code": code, "detail": code})
                .to_string()
                .into_bytes(),
        }
    }

    fn ok(status: u16, v: Value) -> HttpResponse {
        HttpResponse {
            status,
            body: v.to_string().into_bytes(),
        }
    }

    fn event(&mut self, action: &str, serial: Option<&str>) {
        let id = self.events.len() as i64 + 1;
        self.events.push(json!({"id": id, "at": "2026-11-21T04:00:00Z", "actor": "holder:h1", "action": action, "serial": serial, "detail": {}}));
    }

    fn device_for(&self, req: &HttpRequest, id: &str) -> Result<(), HttpResponse> {
        match (self.devices.get(id), &req.bearer) {
            (Some(d), Some(t)) if d.token == *t => Ok(()),
            _ => Err(Self::problem(401, "unauthorized_device")),
        }
    }

    fn provision(&mut self, body: &Value) -> HttpResponse {
        let f = fixture();
        let b = |k: &str| B64.decode(body[k].as_str().unwrap()).unwrap();
        let chain = |k: &str| -> Vec<Vec<u8>> {
            body[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| B64.decode(c.as_str().unwrap()).unwrap())
                .collect()
        };
        let challenge = b("challenge");
        if !self.challenges.remove(&challenge) {
            return Self::problem(403, "unknown_challenge");
        }
        if self.refuse_phones {
            return Self::problem(403, "card_suspended");
        }
        assert_eq!(
            b("card_sign_cert"),
            f.card_sign,
            "the card's own certificate"
        );
        let card_sign = f
            .authority
            .check_card_certificate(&b("card_sign_cert"), Root::Sign)
            .unwrap();
        let card_auth = f
            .authority
            .check_card_certificate(&f.card_auth, Root::Auth)
            .unwrap();
        let (sign_chain, auth_chain) = (chain("sign_attestation"), chain("auth_attestation"));
        let roots = [f.manufacturer.root_cert_der().to_vec()];
        let issued = f.authority.provision_phone(
            &PhoneRequest {
                holder: &f.holder,
                card_sign: &card_sign,
                card_auth: &card_auth,
                challenge: &challenge,
                device_id: body["device"]["id"].as_str(),
                card_signature: &b("card_signature"),
                sign_csr: &b("sign_csr"),
                auth_csr: &b("auth_csr"),
                sign_attestation: &sign_chain,
                auth_attestation: &auth_chain,
            },
            NOW,
            &mut Counter(self.devices.len() as u8 * 16),
            |c, spki, ch| shomei_secure_element::verify_attestation(c, &roots, spki, ch, NOW),
        );
        let issued = match issued {
            Ok(i) => i,
            Err(e) => return Self::problem(422, &e.to_string()),
        };
        let mut superseded = Vec::new();
        for (id, d) in &mut self.devices {
            if d.status == "active" {
                d.status = "superseded";
                superseded.push(id.clone());
            }
        }
        let id = format!("d_{}", self.devices.len() + 1);
        let token = format!("sdt_{}", self.devices.len() + 1);
        let serials = vec![issued.sign.serial.to_hex(), issued.auth.serial.to_hex()];
        self.event("phone_provisioned", None);
        let mdoc_spki = body["mdoc_device_key"]
            .as_str()
            .filter(|_| !self.no_mdoc)
            .map(|k| B64.decode(k).unwrap());
        let mdoc = mdoc_spki.as_ref().map_or(Value::Null, |k| {
            mock_mdoc(k, NOW, self.devices.len() as u64)
        });
        self.devices.insert(
            id.clone(),
            MockDevice {
                token: token.clone(),
                status: "active",
                auth_spki: shomei_pki::csr::certificate_spki(&issued.auth.der).unwrap(),
                serials: serials.clone(),
                mdoc_spki,
            },
        );
        let mut answer = json!({
            "device_id": id, "device_token": token, "holder_id": "h1",
            "se_device_id": issued.device_id,
            "sign_cert": B64.encode(&issued.sign.der), "auth_cert": B64.encode(&issued.auth.der),
            "sign_serial": serials[0], "auth_serial": serials[1],
            "superseded_devices": superseded,
            "mdoc": mdoc,
        });
        if let Some(alter) = self.alter_phone_answer {
            alter(&mut answer);
        }
        Self::ok(201, answer)
    }

    fn route(&mut self, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
        let parts: Vec<&str> = req.path.split(['/', '?']).collect();
        let body = req.json.clone().unwrap_or(Value::Null);
        Ok(match (req.method, parts.as_slice()) {
            (Method::Post, ["", "v1", "challenges"]) => {
                let c = vec![self.challenges.len() as u8 + 1; 32];
                self.challenges.insert(c.clone());
                Self::ok(201, json!({"challenge": B64.encode(c)}))
            }
            (Method::Post, ["", "v1", "phones"]) => {
                self.last_phone_body = Some(body.to_string());
                self.provision(&body)
            }
            (Method::Get, ["", "v1", "devices", id, "sync", query]) => {
                self.device_for(req, id)?;
                let after: i64 = query.trim_start_matches("after=").parse().unwrap();
                let d = &self.devices[*id];
                let events: Vec<Value> = if d.status == "active" {
                    self.events
                        .iter()
                        .filter(|e| e["id"].as_i64().unwrap() > after)
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                let cursor = events.last().map_or(after, |e| e["id"].as_i64().unwrap());
                let status = if d.status == "active" {
                    "good"
                } else {
                    "revoked"
                };
                Self::ok(
                    200,
                    json!({
                        "status": d.status,
                        "wipe": matches!(d.status, "superseded" | "lost" | "wipe_pending"),
                        "certificates": d.serials.iter().map(|s| json!({"serial": s, "status": status})).collect::<Vec<_>>(),
                        "events": events, "cursor": cursor, "more": false,
                    }),
                )
            }
            (Method::Post, ["", "v1", "devices", id, "mdoc"]) => {
                self.device_for(req, id)?;
                let d = &self.devices[*id];
                if d.status != "active" {
                    return Err(Self::problem(409, "device_not_active"));
                }
                let Some(spki) = d.mdoc_spki.clone() else {
                    return Err(Self::problem(404, "not_found"));
                };
                Self::ok(200, mock_mdoc(&spki, self.clock.unwrap_or(NOW), 0))
            }
            (Method::Post, ["", "v1", "devices", id, "wiped"]) => {
                self.device_for(req, id)?;
                let cause = body["cause"].as_str().map(str::to_owned);
                self.wiped.push((id.to_string(), cause.clone()));
                let d = self.devices.get_mut(*id).unwrap();
                // Without a cause, only an ordered wipe (as the authority).
                if d.status == "active" && cause.is_none() {
                    return Err(Self::problem(409, "device_conflict"));
                }
                d.status = "wiped";
                Self::ok(200, json!({"id": id, "status": "wiped"}))
            }
            (Method::Post, ["", "v1", "devices", id, "retire"]) => {
                self.device_for(req, id)?;
                let challenge = B64.decode(body["challenge"].as_str().unwrap()).unwrap();
                let signature = B64.decode(body["signature"].as_str().unwrap()).unwrap();
                if !self.challenges.remove(&challenge) {
                    return Err(Self::problem(403, "unknown_challenge"));
                }
                let d = self.devices.get_mut(*id).unwrap();
                let message = shomei_ca::device_proof_message("retire", id, &challenge);
                if shomei_pki::csr::verify_rsa_sha256(&d.auth_spki, &message, &signature).is_err() {
                    return Err(Self::problem(403, "bad_device_proof"));
                }
                d.status = "wipe_pending";
                Self::ok(
                    200,
                    json!({"device_id": id, "status": "wipe_pending", "wipe": true, "revoked": d.serials}),
                )
            }
            _ => Self::problem(404, "not_found"),
        })
    }
}

impl AuthorityHttp for Mock {
    fn send(&mut self, base: &str, req: &HttpRequest) -> Result<HttpResponse, PhoneError> {
        assert_eq!(base, BASE);
        self.calls.push(req.path.clone());
        Ok(self.route(req).unwrap_or_else(|e| e))
    }
}

/// A phone made in the folder `path` and provisioned from a fresh card.
fn provisioned_at(path: &std::path::Path, mock: &mut Mock) -> Phone {
    let mut phone = Phone::create(path, &fixture().manufacturer, NOW).unwrap();
    let (mut card, _) = fresh_card();
    phone.provision(&mut card, mock, &request(CARD_PW)).unwrap();
    phone
}

fn provisioned(mock: &mut Mock) -> TestPhone {
    let mut p = new_phone();
    let (mut card, _) = fresh_card();
    p.phone
        .provision(&mut card, mock, &request(CARD_PW))
        .unwrap();
    p
}

// ---------------------------------------------------------------- tests

#[test]
fn provisioning_puts_attested_keys_and_certificates_on_the_phone() {
    let mut mock = Mock::default();
    let mut p = new_phone();
    let (mut card, _) = fresh_card();
    let out = p
        .phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap();
    assert_eq!(out.device_id, "d_1");
    assert_eq!(mock.calls, ["/v1/challenges", "/v1/phones"]);
    // The element holds the gates and the two keys under the phone policies.
    assert_eq!(
        p.phone.gate_status(GateId::SignPassword),
        GateStatus::Active { tries_left: 5 }
    );
    assert_eq!(
        p.phone.gate_status(GateId::AuthPin),
        GateStatus::Active { tries_left: 3 }
    );
    let keys = lock(p.phone.element()).keys();
    let policies: Vec<_> = keys
        .iter()
        .map(|k| (k.handle.label().to_owned(), k.policy))
        .collect();
    assert_eq!(
        policies,
        [
            (
                SIGN_KEY_LABEL.to_owned(),
                shomei_secure_element::KeyPolicy::PHONE_SIGN
            ),
            (
                AUTH_KEY_LABEL.to_owned(),
                shomei_secure_element::KeyPolicy::PHONE_AUTH
            ),
            (
                MDOC_KEY_LABEL.to_owned(),
                shomei_secure_element::KeyPolicy::MDOC_PRESENCE
            )
        ]
    );
    // The wallet: registration, certificates, CAs from the card.
    let st = p.phone.state();
    let reg = st.registration.as_ref().unwrap();
    assert_eq!(
        (reg.device_id.as_str(), reg.authority.as_str()),
        ("d_1", BASE)
    );
    assert_eq!(reg.sign_serial, out.sign_serial);
    assert_eq!(
        st.certificates.sign_ca,
        fixture().authority.root(Root::Sign).cert_der()
    );
    assert!(
        !format!("{reg:?}").contains("sdt_1"),
        "token never in Debug"
    );
    // The card's password try was reset by the success.
    assert_eq!(card.tries_left(PinKind::Sign).unwrap(), 5);
    // It survives a power cycle, and a second provisioning is refused.
    p.reopen().unwrap();
    assert!(p.phone.is_provisioned());
    let (mut card, _) = fresh_card();
    assert_eq!(
        p.phone.provision(&mut card, &mut mock, &request(CARD_PW)),
        Err(PhoneError::AlreadyProvisioned)
    );
}

#[test]
fn wrong_card_password_is_counted_on_the_card_and_changes_nothing() {
    let mut mock = Mock::default();
    let mut p = new_phone();
    let (mut card, chip) = fresh_card();
    let err = p
        .phone
        .provision(&mut card, &mut mock, &request("WRONG999"))
        .unwrap_err();
    assert_eq!(err, PhoneError::WrongCardPassword { tries_left: 4 });
    assert!(err.is_user_error());
    assert!(err.to_string().contains("4 tries left"), "{err}");
    // Counted on the card, durably: a power cycle still shows it.
    let mut again = JpkiClient::new(InProcess::new(Card::open(chip).unwrap()));
    assert_eq!(again.tries_left(PinKind::Sign).unwrap(), 4);
    // Nothing else: no call to the authority, nothing in the element or wallet.
    assert!(mock.calls.is_empty());
    assert!(lock(p.phone.element()).keys().is_empty());
    assert_eq!(p.phone.gate_status(GateId::AuthPin), GateStatus::NotSet);
    assert_eq!(p.wallet.bytes(), None);
    // Bad phone PIN formats are refused before anything too.
    let mut bad = request(CARD_PW);
    bad.auth_pin = "12345";
    assert!(matches!(
        p.phone.provision(&mut again, &mut mock, &bad),
        Err(PhoneError::SecureElement(SeError::BadPinFormat(
            GateId::AuthPin
        )))
    ));
    assert_eq!(again.tries_left(PinKind::Sign).unwrap(), 4);
}

#[test]
fn phone_applet_answers_the_card_client() {
    let mut mock = Mock::default();
    let p = provisioned(&mut mock);
    let mut client = p.phone.client().unwrap();
    assert_eq!(client.token().unwrap(), TokenKind::Phone(TokenSe::GpSe));
    // The auth certificate needs the auth PIN on a phone: 69 82 before.
    assert_eq!(
        client.read_certificate(CertKind::Auth),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    let raw = client
        .transport_mut()
        .transmit(&hex::decode("00B0000004").unwrap())
        .unwrap();
    assert_eq!(raw, [0x69, 0x82]);
    assert_eq!(
        client.read_certificate(CertKind::AuthCa).unwrap(),
        p.phone.state().certificates.auth_ca
    );
    // A wrong PIN is counted by the element's gate, persisted.
    assert_eq!(
        client.verify(PinKind::Auth, "0000"),
        Err(CardError::WrongPin { tries_left: 2 })
    );
    assert_eq!(
        p.phone.gate_status(GateId::AuthPin),
        GateStatus::Active { tries_left: 2 }
    );
    assert_eq!(client.tries_left(PinKind::Auth).unwrap(), 2);
    client.verify(PinKind::Auth, PHONE_PIN).unwrap();
    assert_eq!(
        client.read_certificate(CertKind::Auth).unwrap(),
        p.phone.state().certificates.auth
    );
    assert_eq!(
        p.phone.gate_status(GateId::AuthPin),
        GateStatus::Active { tries_left: 3 }
    );
    // The status summary reads both serials once both PINs are verified.
    client.verify(PinKind::Sign, PHONE_PW).unwrap();
    let st = client.status().unwrap();
    assert_eq!(
        st.sign_serial.unwrap().to_hex(),
        p.phone.state().registration.as_ref().unwrap().sign_serial
    );
    // Signing through 80 2A: the element's key, matching the certificate.
    let spki = client.public_key_spki(KeyKind::Sign).unwrap();
    let cert = client.read_certificate(CertKind::Sign).unwrap();
    assert_eq!(spki, shomei_pki::csr::certificate_spki(&cert).unwrap());
    let signer = CardSigner::new(client, KeyKind::Sign).unwrap();
    let sig = signer.sign(b"form").unwrap();
    shomei_pki::csr::verify_rsa_sha256(&spki, b"form", &sig).unwrap();
    // Nothing is writable, and a reselect forgets the verification.
    let mut client = signer.into_client();
    assert_eq!(
        client.write_certificate(CertKind::Auth, b"x"),
        Err(CardError::NotAllowed)
    );
    client.select_jpki().unwrap();
    assert_eq!(
        client.sign_digest_info(KeyKind::Sign, &shomei_pki::keys::sha256_digest_info(b"x")),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    // A malformed PIN spends no try on the element (6A 80).
    let mut applet = p.phone.applet().unwrap();
    applet.process_apdu(&hex::decode("00A4040C0AD392F000260100000001").unwrap());
    applet.process_apdu(&hex::decode("00A4020C020018").unwrap());
    assert_eq!(
        applet.process_apdu(&hex::decode("0020008002ABCD").unwrap()),
        [0x6A, 0x80]
    );
    assert_eq!(
        p.phone.gate_status(GateId::AuthPin),
        GateStatus::Active { tries_left: 3 }
    );
    // Three wrong PINs block the gate, in the element too, with the card's
    // status words: 63 C2, 63 C1, then 63 C0 for the try that used the last
    // one, and 69 83 only for tries at the blocked PIN.
    for sw in [[0x63, 0xC2], [0x63, 0xC1], [0x63, 0xC0]] {
        assert_eq!(
            applet.process_apdu(&hex::decode("002000800439393939").unwrap()),
            sw
        );
    }
    assert_eq!(p.phone.gate_status(GateId::AuthPin), GateStatus::Blocked);
    assert_eq!(
        applet.process_apdu(&hex::decode("002000800439393939").unwrap()),
        [0x69, 0x83]
    );
    // The counter read of a blocked PIN is 63 C0, which OpenSC's jpki driver expects.
    assert_eq!(
        applet.process_apdu(&hex::decode("00200080").unwrap()),
        [0x63, 0xC0]
    );
    let mut client = p.phone.client().unwrap();
    assert_eq!(
        client.verify(PinKind::Auth, PHONE_PIN),
        Err(CardError::Blocked)
    );
}

#[test]
fn phone_signature_is_detached_cms_with_the_phone_certificate() {
    let mut mock = Mock::default();
    let mut p = provisioned(&mut mock);
    let p7s = p
        .phone
        .sign_detached(PHONE_PW, b"application", NOW)
        .unwrap();
    let v = shomei_pki::cms::verify_detached(&p7s, b"application").unwrap();
    assert_eq!(v.signer_cert_der, p.phone.state().certificates.sign);
    shomei_pki::cms::check_issued_by(
        &v.signer_cert_der,
        fixture().authority.root(Root::Sign).cert_der(),
    )
    .unwrap();
    assert!(matches!(
        p.phone.sign_detached("WRONG1", b"x", NOW),
        Err(PhoneError::SecureElement(SeError::WrongPin {
            gate: GateId::SignPassword,
            tries_left: 4
        }))
    ));
    let p7s = p
        .phone
        .sign_detached_auth(AuthUnlock::Pin(PHONE_PIN), b"login", NOW)
        .unwrap();
    let v = shomei_pki::cms::verify_detached(&p7s, b"login").unwrap();
    assert_eq!(v.signer_cert_der, p.phone.state().certificates.auth);
}

#[test]
fn second_phone_supersedes_first_and_old_phone_wipes_on_sync() {
    let mut mock = Mock::default();
    let mut old = provisioned(&mut mock);
    // While active, sync fills the inbox and moves the cursor.
    let r = old.phone.sync(&mut mock).unwrap();
    assert_eq!((r.status.as_str(), r.wiped_now), ("active", false));
    assert_eq!(r.new_notifications.len(), 1);
    assert_eq!(old.phone.state().cursor, 1);
    assert!(
        old.phone
            .sync(&mut mock)
            .unwrap()
            .new_notifications
            .is_empty()
    );
    let new = provisioned(&mut mock);
    assert_eq!(
        new.phone.state().registration.as_ref().unwrap().device_id,
        "d_2"
    );
    // The old phone hears it must wipe: keys, PINs, certificates go.
    let r = old.phone.sync(&mut mock).unwrap();
    assert!(r.wiped_now && r.wipe_confirmed, "{r:?}");
    assert_eq!(r.status, "superseded");
    assert_eq!(mock.devices["d_1"].status, "wiped");
    assert!(!old.phone.is_provisioned());
    assert!(lock(old.phone.element()).keys().is_empty());
    assert_eq!(
        old.phone.gate_status(GateId::SignPassword),
        GateStatus::NotSet
    );
    assert_eq!(old.phone.last_se_wipe(), Some(WipeReason::Requested));
    let wipe = old.phone.state().wipe.unwrap();
    assert_eq!((wipe.cause, wipe.confirmed), (WipeCause::Authority, true));
    assert!(matches!(
        old.phone.sign_detached(PHONE_PW, b"x", NOW),
        Err(PhoneError::NotProvisioned { .. })
    ));
    // After a power cycle it is still wiped; syncing again asks nothing.
    old.reopen().unwrap();
    let calls = mock.calls.len();
    let r = old.phone.sync(&mut mock).unwrap();
    assert!(r.wipe_confirmed && !r.wiped_now);
    assert_eq!(mock.calls.len(), calls);
    // The wiped phone can be provisioned again (and then supersedes d_2).
    let (mut card, _) = fresh_card();
    let out = old
        .phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap();
    assert_eq!(out.superseded_devices, ["d_2"]);
}

#[test]
fn self_retire_before_sale_wipes() {
    let mut mock = Mock::default();
    let mut p = provisioned(&mut mock);
    assert!(matches!(
        p.phone.retire(&mut mock, AuthUnlock::Pin("0000")),
        Err(PhoneError::SecureElement(SeError::WrongPin { .. }))
    ));
    assert!(p.phone.is_provisioned());
    let r = p
        .phone
        .retire(&mut mock, AuthUnlock::Pin(PHONE_PIN))
        .unwrap();
    assert_eq!(r.revoked.len(), 2);
    assert!(r.wipe_confirmed);
    assert_eq!(mock.devices["d_1"].status, "wiped");
    assert!(!p.phone.is_provisioned());
    assert_eq!(p.phone.state().wipe.unwrap().cause, WipeCause::Retired);
    assert!(lock(p.phone.element()).keys().is_empty());
    assert!(matches!(
        p.phone.retire(&mut mock, AuthUnlock::Pin(PHONE_PIN)),
        Err(PhoneError::NotProvisioned { .. })
    ));
}

#[test]
fn biometric_change_requires_pin_again() {
    let mut mock = Mock::default();
    let mut p = provisioned(&mut mock);
    p.phone.enrol_biometric(b"finger-1").unwrap();
    // New enrolment: not until the PIN has been entered once.
    assert_eq!(p.phone.biometric_status(), BiometricStatus::NeedsPin);
    assert!(matches!(
        p.phone.unlock_auth(AuthUnlock::Biometric(b"finger-1")),
        Err(PhoneError::SecureElement(SeError::BiometricNeedsPin))
    ));
    p.phone.unlock_auth(AuthUnlock::Pin(PHONE_PIN)).unwrap();
    let p7s = p
        .phone
        .sign_detached_auth(AuthUnlock::Biometric(b"finger-1"), b"login", NOW)
        .unwrap();
    shomei_pki::cms::verify_detached(&p7s, b"login").unwrap();
    // A sample that does not match is counted.
    assert!(matches!(
        p.phone.unlock_auth(AuthUnlock::Biometric(b"finger-2")),
        Err(PhoneError::SecureElement(SeError::BiometricMismatch {
            tries_left: 4
        }))
    ));
    // Changing the enrolment suspends biometric unlock until the PIN again.
    p.phone.change_biometric(b"finger-2").unwrap();
    assert!(matches!(
        p.phone.unlock_auth(AuthUnlock::Biometric(b"finger-2")),
        Err(PhoneError::SecureElement(SeError::BiometricNeedsPin))
    ));
    p.phone.unlock_auth(AuthUnlock::Pin(PHONE_PIN)).unwrap();
    p.phone
        .unlock_auth(AuthUnlock::Biometric(b"finger-2"))
        .unwrap();
    // Never for the signing key: the retire below works with it (auth key),
    // but the signing key's gate admits no biometric at all.
    assert_eq!(
        lock(p.phone.element())
            .verify_biometric(
                GateId::SignPassword,
                b"finger-2",
                shomei_secure_element::UnlockScope::Once
            )
            .unwrap_err(),
        SeError::BiometricNotAllowed(GateId::SignPassword)
    );
    p.phone
        .retire(&mut mock, AuthUnlock::Biometric(b"finger-2"))
        .unwrap();
}

#[test]
fn tampered_phone_storage_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone");
    let mut mock = Mock::default();
    {
        let _phone = provisioned_at(&path, &mut mock);
        // Held exclusively while open.
        assert!(matches!(
            Phone::open(&path),
            Err(PhoneError::SecureElement(SeError::Storage(_)))
        ));
    }
    // A swapped certificate in the wallet (sealed by the element itself, so
    // only the check against its keys can catch it; a plain wallet is not
    // even read any more) is caught, and left as it is.
    let wallet = path.join(WALLET_FILE);
    let good = std::fs::read(&wallet).unwrap();
    let swapped = {
        let phone = Phone::open(&path).unwrap();
        let mut v = serde_json::to_value(phone.state()).unwrap();
        v["certificates"]["sign"] = v["certificates"]["auth"].clone();
        let plain = serde_json::to_vec(&v).unwrap();
        lock(phone.element())
            .seal(WALLET_SEAL_CONTEXT, &plain)
            .unwrap()
    };
    std::fs::write(&wallet, &swapped).unwrap();
    assert!(matches!(
        Phone::open(&path),
        Err(PhoneError::WalletMismatch(_))
    ));
    assert_eq!(std::fs::read(&wallet).unwrap(), swapped);
    std::fs::write(&wallet, &good).unwrap();
    Phone::open(&path).unwrap();
    // One flipped byte in the sealed storage: the element wipes itself.
    let sealed = path.join(SE_DIR).join(shomei_se_sim::SEALED_FILE);
    let mut bytes = std::fs::read(&sealed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();
    assert_eq!(
        Phone::open(&path).unwrap_err(),
        PhoneError::Tampered(TamperKind::Authentication)
    );
    let mut phone = Phone::open(&path).unwrap();
    assert!(!phone.is_provisioned());
    assert_eq!(
        phone.state().wipe.unwrap().cause,
        WipeCause::Tampered(TamperKind::Authentication)
    );
    assert!(matches!(
        phone.sign_detached(PHONE_PW, b"x", NOW),
        Err(PhoneError::NotProvisioned {
            wiped: Some(WipeCause::Tampered(_))
        })
    ));
    // Provisioning again from the card works and supersedes the old device.
    let (mut card, _) = fresh_card();
    let out = phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap();
    assert_eq!(out.superseded_devices, ["d_1"]);
}

#[test]
fn failed_provisioning_leaves_nothing_in_the_element() {
    let mut mock = Mock {
        refuse_phones: true,
        ..Mock::default()
    };
    let mut p = new_phone();
    p.phone.enrol_biometric(b"finger").unwrap();
    let (mut card, _) = fresh_card();
    let err = p
        .phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap_err();
    assert!(
        matches!(&err, PhoneError::Refused { status: 403, code, .. } if code == "card_suspended"),
        "{err:?}"
    );
    assert!(err.is_user_error());
    assert!(
        mock.wiped.is_empty(),
        "nothing was issued: nothing to report"
    );
    assert!(lock(p.phone.element()).keys().is_empty());
    assert_eq!(
        p.phone.gate_status(GateId::SignPassword),
        GateStatus::NotSet
    );
    assert!(!p.phone.is_provisioned());
    // A power cycle does not bring anything back.
    p.reopen().unwrap();
    assert!(lock(p.phone.element()).keys().is_empty());
    // A phone is not a card.
    let mut ok = Mock::default();
    let donor = provisioned(&mut ok);
    let mut as_card = donor.phone.client().unwrap();
    let mut other = new_phone();
    assert_eq!(
        other
            .phone
            .provision(&mut as_card, &mut ok, &request(CARD_PW)),
        Err(PhoneError::NotACard)
    );
    let _ = &mut other;
}

/// A wallet store whose writes all fail (a full disk).
struct FailingStore;

impl WalletStore for FailingStore {
    fn load(&self) -> Result<Option<Vec<u8>>, PhoneError> {
        Ok(None)
    }

    fn commit(&mut self, _: &[u8]) -> Result<(), PhoneError> {
        Err(PhoneError::Storage("disk full".into()))
    }
}

/// After a provisioning that failed past the authority's 201: the element
/// is empty, the wallet holds nothing, and the authority was told (once,
/// with the new device token) so that it revoked what it issued.
fn assert_given_up_and_reported(phone: &Phone, mock: &Mock) {
    assert!(lock(phone.element()).keys().is_empty(), "keys destroyed");
    assert_eq!(phone.gate_status(GateId::SignPassword), GateStatus::NotSet);
    assert!(!phone.is_provisioned());
    assert!(phone.state().registration.is_none());
    assert_eq!(
        mock.wiped,
        [("d_1".to_owned(), Some("provisioning_failed".to_owned()))]
    );
    assert_eq!(mock.calls.last().unwrap(), "/v1/devices/d_1/wiped");
    assert_eq!(
        mock.devices["d_1"].status, "wiped",
        "the authority ended it"
    );
}

#[test]
fn certificate_not_for_the_phone_key_after_201_is_reported_and_revoked() {
    let mut mock = Mock {
        // Both certificates are real and live, but the signing one is the
        // authentication key's: the phone cannot keep them.
        alter_phone_answer: Some(|v| v["sign_cert"] = v["auth_cert"].clone()),
        ..Mock::default()
    };
    let mut p = new_phone();
    let (mut card, _) = fresh_card();
    let err = p
        .phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap_err();
    assert!(
        matches!(&err, PhoneError::Protocol(m) if m.contains("signing certificate")),
        "{err:?}"
    );
    assert_given_up_and_reported(&p.phone, &mock);
    // Nothing comes back after a power cycle, and the phone provisions
    // again normally.
    p.reopen().unwrap();
    assert!(!p.phone.is_provisioned());
    mock.alter_phone_answer = None;
    let (mut card, _) = fresh_card();
    let out = p
        .phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap();
    assert_eq!(out.device_id, "d_2");
    assert_eq!(mock.wiped.len(), 1, "a success reports nothing");
}

#[test]
fn wallet_write_failure_after_201_is_reported_and_revoked() {
    let mut mock = Mock::default();
    let root = MemoryDeviceRoot::new(fixture().manufacturer.new_device(NOW).unwrap());
    let se = SimSecureElement::provision(MemoryStore::new(), root, SimOptions::default()).unwrap();
    let mut phone = Phone::from_parts(Box::new(se), Box::new(FailingStore)).unwrap();
    let (mut card, _) = fresh_card();
    let err = phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap_err();
    assert_eq!(err, PhoneError::Storage("disk full".into()));
    assert_given_up_and_reported(&phone, &mock);
    assert_eq!(phone.state().authority_status, None, "the wallet as before");
}

#[test]
fn unusable_mdoc_in_the_answer_keeps_the_certificates_and_sync_fetches_it() {
    let bad: [fn(&mut Value); 2] = [
        // Bound to another key.
        |v| {
            let other = shomei_pki::EcdsaP256Signer::generate().unwrap();
            v["mdoc"] = mock_mdoc(other.public_key_spki(), NOW, 9);
        },
        // Not a mobile ID at all.
        |v| v["mdoc"] = json!({"doc_type": "x", "issuer_signed": "not base64!"}),
    ];
    for alter in bad {
        let mut mock = Mock {
            alter_phone_answer: Some(alter),
            ..Mock::default()
        };
        let mut p = new_phone();
        let (mut card, _) = fresh_card();
        let out = p
            .phone
            .provision(&mut card, &mut mock, &request(CARD_PW))
            .unwrap();
        assert_eq!(out.mdoc, None, "reported missing");
        assert!(mock.wiped.is_empty(), "nothing reported to the authority");
        assert!(p.phone.is_provisioned());
        assert_eq!(p.phone.mdoc(), None);
        assert!(lock(p.phone.element()).find_key(MDOC_KEY_LABEL).is_ok());
        // The certificates work.
        let (cert, _) = p
            .phone
            .answer_challenge(AuthUnlock::Pin(PHONE_PIN), b"challenge")
            .unwrap();
        assert_eq!(cert, p.phone.state().certificates.auth);
        // The next sync fetches the mobile ID, bound to the element's key.
        let r = p.phone.sync_at(&mut mock, NOW).unwrap();
        assert!(r.mdoc_refreshed);
        assert_eq!(mock.calls.last().unwrap(), "/v1/devices/d_1/mdoc");
        let m = p.phone.mdoc().cloned().expect("fetched");
        let se_spki = {
            let se = lock(p.phone.element());
            se.public_key(&se.find_key(MDOC_KEY_LABEL).unwrap())
                .unwrap()
        };
        let parsed = shomei_mdoc::issuer::IssuerSigned::from_cbor(&m.issuer_signed).unwrap();
        let mso = shomei_mdoc::mso::MobileSecurityObject::from_tagged_bytes(
            parsed.issuer_auth.payload.as_deref().unwrap(),
        )
        .unwrap();
        assert_eq!(mso.device_key.to_spki(), se_spki);
        p.reopen().unwrap();
        assert_eq!(p.phone.mdoc(), Some(&m), "stored");
        // Once it has one, a sync before half its validity asks for none.
        let calls = mock.calls.len();
        let r = p.phone.sync_at(&mut mock, NOW).unwrap();
        assert!(!r.mdoc_refreshed);
        assert!(!mock.calls[calls..].iter().any(|c| c.ends_with("/mdoc")));
    }
}

#[test]
fn sync_without_a_mobile_id_at_the_authority_still_succeeds() {
    let mut mock = Mock {
        no_mdoc: true,
        ..Mock::default()
    };
    let mut p = provisioned(&mut mock);
    assert_eq!(p.phone.mdoc(), None);
    let r = p.phone.sync_at(&mut mock, NOW).unwrap();
    assert!(!r.mdoc_refreshed);
    assert_eq!(r.status, "active");
    assert_eq!(mock.calls.last().unwrap(), "/v1/devices/d_1/mdoc");
    assert_eq!(p.phone.mdoc(), None);
    // A superseded phone asks for none: it wipes instead.
    let _second = provisioned(&mut mock);
    let r = p.phone.sync_at(&mut mock, NOW).unwrap();
    assert!(r.wiped_now);
    assert!(!mock.calls.last().unwrap().ends_with("/mdoc"));
}

#[test]
fn provisioning_stores_the_mdoc_bound_to_the_se_key() {
    let mut mock = Mock::default();
    let mut p = provisioned(&mut mock);
    let m = p.phone.mdoc().cloned().expect("a mobile ID");
    assert_eq!(m.doc_type, shomei_mdoc::jp::DOC_TYPE);
    assert_eq!(m.key_label, MDOC_KEY_LABEL);
    assert_eq!(m.valid_until - m.valid_from, 30 * 86_400);
    let se_spki = {
        let se = lock(p.phone.element());
        let k = se.find_key(MDOC_KEY_LABEL).unwrap();
        assert_eq!(
            se.key_info(&k).unwrap().kind,
            shomei_secure_element::KeyKind::EcP256
        );
        se.public_key(&k).unwrap()
    };
    assert_eq!(
        mock.devices["d_1"].mdoc_spki.as_deref(),
        Some(se_spki.as_slice()),
        "the SE key was sent"
    );
    let parsed = shomei_mdoc::issuer::IssuerSigned::from_cbor(&m.issuer_signed).unwrap();
    let mso = shomei_mdoc::mso::MobileSecurityObject::from_tagged_bytes(
        parsed.issuer_auth.payload.as_deref().unwrap(),
    )
    .unwrap();
    assert_eq!(mso.device_key.to_spki(), se_spki);
    // Kept across a power cycle.
    p.reopen().unwrap();
    assert_eq!(p.phone.mdoc(), Some(&m));
    // The device key signs through the element, unlocked by the auth PIN only.
    assert!(p.phone.mdoc_signer(AuthUnlock::Pin("0000")).is_err());
    let signer = p.phone.mdoc_signer(AuthUnlock::Pin(PHONE_PIN)).unwrap();
    assert_eq!(signer.public_key_spki(), se_spki.as_slice());
    assert_eq!(
        signer.algorithm(),
        shomei_core::SignatureAlgorithm::EcdsaP256Sha256
    );
    assert!(!signer.sign(b"device authentication").unwrap().is_empty());
}

#[test]
fn mdoc_from_another_key_is_refused() {
    let mut mock = Mock::default();
    let p = provisioned(&mut mock);
    let other = shomei_pki::EcdsaP256Signer::generate().unwrap();
    let answer = mock_mdoc(other.public_key_spki(), NOW, 0);
    let se_spki = {
        let se = lock(p.phone.element());
        let k = se.find_key(MDOC_KEY_LABEL).unwrap();
        se.public_key(&k).unwrap()
    };
    assert!(crate::phone::wallet_mdoc(&answer, &se_spki).is_err());
    assert!(crate::phone::wallet_mdoc(&mock_mdoc(&se_spki, NOW, 0), &se_spki).is_ok());
}

#[test]
fn sync_refreshes_the_mdoc_past_half_validity_and_drops_it_when_superseded() {
    let mut mock = Mock::default();
    let mut p = provisioned(&mut mock);
    let first = p.phone.mdoc().cloned().unwrap();
    // Day 1: not due, no call.
    let r = p
        .phone
        .sync_at(&mut mock, NOW + time::Duration::days(1))
        .unwrap();
    assert!(!r.mdoc_refreshed);
    assert!(!mock.calls.iter().any(|c| c.ends_with("/mdoc")));
    assert_eq!(p.phone.mdoc(), Some(&first));
    // Day 16: past half, a fresh one signed then.
    let later = NOW + time::Duration::days(16);
    mock.clock = Some(later);
    let r = p.phone.sync_at(&mut mock, later).unwrap();
    assert!(r.mdoc_refreshed);
    assert!(mock.calls.iter().any(|c| c == "/v1/devices/d_1/mdoc"));
    let fresh = p.phone.mdoc().cloned().unwrap();
    assert_eq!(fresh.valid_from, later.unix_timestamp());
    assert_ne!(fresh.issuer_signed, first.issuer_signed);
    p.reopen().unwrap();
    assert_eq!(p.phone.mdoc(), Some(&fresh), "stored");

    // A newer phone supersedes this one: the next sync drops the mobile ID.
    let _second = provisioned(&mut mock);
    let r = p.phone.sync_at(&mut mock, later).unwrap();
    assert!(r.wiped_now);
    assert_eq!(p.phone.mdoc(), None);
    assert!(p.phone.mdoc_signer(AuthUnlock::Pin(PHONE_PIN)).is_err());
}

#[test]
fn provisioning_brings_the_card_face_but_never_the_my_number() {
    let f = fixture();
    for secret in [
        CardFaceSecret::PinB(CARD_PIN_B),
        CardFaceSecret::TextPin(CARD_PIN),
    ] {
        let mut mock = Mock::default();
        let mut p = new_phone();
        let (mut card, _) = fresh_card();
        p.phone
            .provision_with_card_face(&mut card, &mut mock, &request(CARD_PW), Some(secret))
            .unwrap();
        let sent = mock.last_phone_body.clone().unwrap();
        let body: Value = serde_json::from_str(&sent).unwrap();
        let face = B64.decode(body["card_face"].as_str().unwrap()).unwrap();
        let checked =
            shomei_pki::cardface::verify_face(&face, f.face_key.public_key_spki()).unwrap();
        assert_eq!(checked.photo, CARD_PHOTO, "{secret:?}");
        assert!(!sent.contains(MY_NUMBER), "{secret:?}: no My Number sent");
        // The card's signing password was verified after the face was read
        // (another AP clears it): the card still signed.
        assert!(p.phone.is_provisioned());
    }
    // Without a secret, no face; with a wrong one, the try is counted on the
    // card, nothing is sent and the phone stays empty.
    let mut mock = Mock::default();
    let mut p = new_phone();
    let (mut card, _) = fresh_card();
    p.phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap();
    let body: Value = serde_json::from_str(&mock.last_phone_body.unwrap()).unwrap();
    assert!(body.get("card_face").is_none());
    let mut mock = Mock::default();
    let mut p = new_phone();
    let (mut card, _) = fresh_card();
    let err = p
        .phone
        .provision_with_card_face(
            &mut card,
            &mut mock,
            &request(CARD_PW),
            Some(CardFaceSecret::PinB("90040120360000")),
        )
        .unwrap_err();
    assert!(matches!(err, PhoneError::BadInput(_)), "{err:?}");
    assert!(err.is_user_error());
    assert!(mock.calls.is_empty(), "nothing sent");
    assert!(!p.phone.is_provisioned());
}

#[test]
fn presence_unlocks_the_mdoc_key_but_no_jpki_key() {
    let mut mock = Mock::default();
    let mut p = provisioned(&mut mock);
    {
        let se = lock(p.phone.element());
        let k = se.find_key(MDOC_KEY_LABEL).unwrap();
        assert_eq!(
            se.key_info(&k).unwrap().policy,
            shomei_secure_element::KeyPolicy::MDOC_PRESENCE
        );
    }
    // The holder's confirmation unlocks the device key, one use, no PIN.
    let signer = p.phone.mdoc_signer(AuthUnlock::Presence).unwrap();
    assert!(!signer.sign(b"device authentication").unwrap().is_empty());
    assert_eq!(
        signer.sign(b"again").unwrap_err(),
        SignError::Locked,
        "one use"
    );
    p.phone.mdoc_agreement(AuthUnlock::Presence).unwrap();
    // No JPKI key: not the authentication key, not for a login or a
    // signature; and no try of the auth PIN is spent.
    assert!(matches!(
        p.phone.auth_signer(AuthUnlock::Presence),
        Err(PhoneError::BadInput(_))
    ));
    assert!(matches!(
        p.phone.answer_challenge(AuthUnlock::Presence, b"challenge"),
        Err(PhoneError::BadInput(_))
    ));
    assert!(matches!(
        p.phone
            .sign_detached_auth(AuthUnlock::Presence, b"document", NOW),
        Err(PhoneError::BadInput(_))
    ));
    assert_eq!(lock(p.phone.element()).tries_left(GateId::AuthPin), 3);
    // A device key made before presence existed (auth-PIN policy) answers
    // WrongGate at once; the PIN still unlocks it.
    {
        let mut se = lock(p.phone.element());
        let k = se.find_key(MDOC_KEY_LABEL).unwrap();
        se.delete_key(&k).unwrap();
        se.create_key(
            MDOC_KEY_LABEL,
            shomei_secure_element::KeyKind::EcP256,
            shomei_secure_element::KeyPolicy::PHONE_AUTH,
            b"",
        )
        .unwrap();
    }
    assert!(matches!(
        p.phone.mdoc_signer(AuthUnlock::Presence),
        Err(PhoneError::SecureElement(SeError::WrongGate {
            needed: GateId::AuthPin
        }))
    ));
    assert!(matches!(
        p.phone.mdoc_agreement(AuthUnlock::Presence),
        Err(PhoneError::SecureElement(SeError::WrongGate { .. }))
    ));
    let signer = p.phone.mdoc_signer(AuthUnlock::Pin(PHONE_PIN)).unwrap();
    assert!(!signer.sign(b"device authentication").unwrap().is_empty());
}

/// Every form in which `bytes` could show up in a file: raw, and hex
/// either case (the plain wallet kept certificates and the mobile ID as hex).
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

/// What the wallet holds that must not be readable from the file: the
/// holder's name and address (in the phone signing certificate), the
/// device token, and the certificates and mobile ID themselves.
fn personal_bytes(phone: &Phone) -> Vec<(&'static str, Vec<u8>)> {
    let st = phone.state();
    let holder = &fixture().holder;
    let reg = st.registration.as_ref().unwrap();
    let mut out = vec![
        ("name", holder.name().as_bytes().to_vec()),
        ("address", holder.address().as_bytes().to_vec()),
        (
            "device token",
            reg.device_token.clone().unwrap().into_bytes(),
        ),
        ("holder id", format!("\"{}\"", reg.holder_id).into_bytes()),
        ("signing certificate", st.certificates.sign.clone()),
        ("authentication certificate", st.certificates.auth.clone()),
    ];
    if let Some(m) = &st.mdoc {
        out.push(("mobile ID", m.issuer_signed.clone()));
    }
    out
}

#[test]
fn wallet_file_is_sealed_and_holds_no_personal_data_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone");
    let mut mock = Mock::default();
    let mut phone = provisioned_at(&path, &mut mock);
    mock.event("issued", None);
    phone.sync(&mut mock).unwrap();
    assert!(phone.mdoc().is_some());
    assert!(!phone.state().inbox.is_empty());
    let secrets = personal_bytes(&phone);
    // What the wallet holds does carry them (so this test can fail)…
    let plain = phone.state().encode().unwrap();
    for (what, bytes) in &secrets {
        assert!(
            forms(bytes).iter().any(|f| contains(&plain, f)),
            "the plain wallet holds the {what}"
        );
    }
    // …the file on disk does not, in any form; it is a sealed blob, 0600.
    let wallet = path.join(WALLET_FILE);
    let raw = std::fs::read(&wallet).unwrap();
    assert_eq!(raw[0], shomei_secure_element::SEALED_DATA_VERSION);
    assert!(!state::is_plain(&raw));
    for (what, bytes) in &secrets {
        for form in forms(bytes) {
            assert!(!contains(&raw, &form), "the wallet file shows the {what}");
        }
    }
    for needle in [&b"certificates"[..], b"registration", b"inbox", b"sdt_"] {
        assert!(!contains(&raw, needle));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&wallet).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // It opens again on this phone with everything in it.
    let before = serde_json::to_value(phone.state()).unwrap();
    drop(phone);
    let phone = Phone::open(&path).unwrap();
    assert_eq!(serde_json::to_value(phone.state()).unwrap(), before);
    assert!(phone.is_provisioned());
}

/// Makes the phone's `DEVICE.key` look as written before sealed app data
/// existed (no `sealed_data_stored`).
fn forget_sealed_data_stored(phone_dir: &std::path::Path) {
    let device = phone_dir.join("se").join(shomei_se_sim::DEVICE_FILE);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&device).unwrap()).unwrap();
    assert_eq!(v["sealed_data_stored"], true);
    v.as_object_mut().unwrap().remove("sealed_data_stored");
    std::fs::write(&device, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn legacy_plain_wallet_is_read_and_sealed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone");
    let mut mock = Mock::default();
    let phone = provisioned_at(&path, &mut mock);
    let secrets = personal_bytes(&phone);
    let before = serde_json::to_value(phone.state()).unwrap();
    // The wallet as an older version wrote it: pretty JSON in clear, on an
    // element whose device file does not yet record stored sealed data.
    let wallet = path.join(WALLET_FILE);
    std::fs::write(&wallet, serde_json::to_vec_pretty(phone.state()).unwrap()).unwrap();
    drop(phone);
    forget_sealed_data_stored(&path);
    let mut phone = Phone::open(&path).unwrap();
    assert_eq!(serde_json::to_value(phone.state()).unwrap(), before);
    // Opening it sealed it.
    let raw = std::fs::read(&wallet).unwrap();
    assert_eq!(raw[0], shomei_secure_element::SEALED_DATA_VERSION);
    for (what, bytes) in &secrets {
        for form in forms(bytes) {
            assert!(!contains(&raw, &form), "the resealed file shows the {what}");
        }
    }
    // And the phone works as before.
    phone.sign_detached(PHONE_PW, b"doc", NOW).unwrap();
    drop(phone);
    assert_eq!(
        serde_json::to_value(Phone::open(&path).unwrap().state()).unwrap(),
        before
    );
    // In memory too (the store is given sealed bytes, whatever it is).
    let mut p = provisioned(&mut Mock::default());
    let plain = p.phone.state().encode().unwrap();
    p.wallet.set_bytes(Some(plain.to_vec()));
    p.root.set_sealed_data_stored(false);
    p.reopen().unwrap();
    assert!(p.phone.is_provisioned());
    assert!(!state::is_plain(&p.wallet.bytes().unwrap()));
}

#[test]
fn wallet_copied_to_another_phone_or_changed_fails_clearly_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut mock = Mock::default();
    let mut phone = Phone::create(&a, &fixture().manufacturer, NOW).unwrap();
    let (mut card, _) = fresh_card();
    phone
        .provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap();
    let secrets = personal_bytes(&phone);
    drop(phone);
    drop(Phone::create(&b, &fixture().manufacturer, NOW).unwrap());
    let sealed_a = std::fs::read(a.join(WALLET_FILE)).unwrap();
    // Copied into another phone's folder: its element cannot open it.
    std::fs::write(b.join(WALLET_FILE), &sealed_a).unwrap();
    let err = Phone::open(&b).unwrap_err();
    assert!(matches!(err, PhoneError::WalletUnsealable(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cannot be opened"), "{msg}");
    assert!(!err.is_user_error());
    for (what, bytes) in &secrets {
        assert!(
            !contains(msg.as_bytes(), bytes),
            "the error shows the {what}"
        );
    }
    assert_eq!(std::fs::read(b.join(WALLET_FILE)).unwrap(), sealed_a);
    // One changed byte, a cut file, an empty file: the same, file untouched.
    for bad in [
        {
            let mut v = sealed_a.clone();
            let mid = v.len() / 2;
            v[mid] ^= 0x01;
            v
        },
        sealed_a[..sealed_a.len() - 1].to_vec(),
        sealed_a[..5].to_vec(),
        Vec::new(),
    ] {
        std::fs::write(a.join(WALLET_FILE), &bad).unwrap();
        assert!(matches!(
            Phone::open(&a),
            Err(PhoneError::WalletUnsealable(_))
        ));
        assert_eq!(std::fs::read(a.join(WALLET_FILE)).unwrap(), bad);
    }
    // The phone's own wallet still opens.
    std::fs::write(a.join(WALLET_FILE), &sealed_a).unwrap();
    let mut phone = Phone::open(&a).unwrap();
    // After the phone is retired (its element wiped), the wallet it had
    // before never opens again, even put back on the same phone.
    phone.retire(&mut mock, AuthUnlock::Pin(PHONE_PIN)).unwrap();
    drop(phone);
    let retired = std::fs::read(a.join(WALLET_FILE)).unwrap();
    std::fs::write(a.join(WALLET_FILE), &sealed_a).unwrap();
    assert!(matches!(
        Phone::open(&a),
        Err(PhoneError::WalletUnsealable(_))
    ));
    // The wallet written after the wipe (sealed under the new key) opens.
    std::fs::write(a.join(WALLET_FILE), &retired).unwrap();
    let phone = Phone::open(&a).unwrap();
    assert!(!phone.is_provisioned());
    assert_eq!(phone.state().wipe.unwrap().cause, WipeCause::Retired);
}

/// A wallet kept in memory whose writes fail while `failing` is set (a full
/// disk that later has room again).
struct FlakyStore {
    inner: MemoryWalletStore,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl WalletStore for FlakyStore {
    fn load(&self) -> Result<Option<Vec<u8>>, PhoneError> {
        self.inner.load()
    }

    fn commit(&mut self, bytes: &[u8]) -> Result<(), PhoneError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PhoneError::Storage("disk full".into()));
        }
        self.inner.commit(bytes)
    }
}

#[test]
fn wipe_whose_wallet_write_failed_still_opens_reconciles_and_confirms() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let mut mock = Mock::default();
    let root = MemoryDeviceRoot::new(fixture().manufacturer.new_device(NOW).unwrap());
    let sealed = MemoryStore::new();
    let wallet = MemoryWalletStore::new();
    let failing = Arc::new(AtomicBool::new(false));
    // Power on: the element and the wallet from the same storage (clones
    // of the device root share its counter and epoch).
    let power_on = || -> Result<Phone, PhoneError> {
        let se = SimSecureElement::open(sealed.clone(), root.clone())?;
        let store = FlakyStore {
            inner: wallet.clone(),
            failing: Arc::clone(&failing),
        };
        Phone::from_parts(Box::new(se), Box::new(store))
    };
    drop(SimSecureElement::provision(sealed.clone(), root.clone(), SimOptions::default()).unwrap());
    let mut old = power_on().unwrap();
    let (mut card, _) = fresh_card();
    old.provision(&mut card, &mut mock, &request(CARD_PW))
        .unwrap();
    let pre_wipe = wallet.bytes().unwrap();
    // A second phone supersedes it; on sync the old one wipes its element,
    // then cannot write its wallet (disk full).
    let _new = provisioned(&mut mock);
    failing.store(true, SeqCst);
    let err = old.sync(&mut mock).unwrap_err();
    assert!(matches!(err, PhoneError::Storage(_)), "{err:?}");
    assert!(
        lock(old.element()).keys().is_empty(),
        "the element was wiped"
    );
    assert_eq!(
        wallet.bytes().unwrap(),
        pre_wipe,
        "the stored wallet is from before"
    );
    assert!(mock.wiped.is_empty());
    drop(old);
    failing.store(false, SeqCst);
    // After a power cycle the phone opens and records the wipe it missed…
    let mut old = power_on().unwrap();
    assert!(!old.is_provisioned());
    let wipe = old.state().wipe.unwrap();
    assert_eq!((wipe.cause, wipe.confirmed), (WipeCause::Authority, false));
    let reg = old.state().registration.clone().unwrap();
    assert!(reg.device_token.is_some(), "the device token survived");
    assert_ne!(
        wallet.bytes().unwrap(),
        pre_wipe,
        "stored under the new key"
    );
    // …and can still tell the authority, with that token.
    let r = old.sync(&mut mock).unwrap();
    assert!(r.wipe_confirmed, "{r:?}");
    assert_eq!(mock.wiped, [("d_1".to_owned(), None)]);
    assert_eq!(mock.devices["d_1"].status, "wiped");
    assert!(old.state().wipe.unwrap().confirmed);
    drop(old);
    // A wallet was stored in the new epoch: the pre-wipe copy never opens
    // again, and is left as it is.
    wallet.set_bytes(Some(pre_wipe.clone()));
    assert!(matches!(power_on(), Err(PhoneError::WalletUnsealable(_))));
    assert_eq!(wallet.bytes().unwrap(), pre_wipe);
}

#[test]
fn plain_wallet_written_over_a_sealed_one_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone");
    let mut mock = Mock::default();
    let phone = provisioned_at(&path, &mut mock);
    let wallet = path.join(WALLET_FILE);
    let sealed = std::fs::read(&wallet).unwrap();
    // A forged plain wallet, built from the real one: another authority,
    // token and inbox (a valid wallet, so only its being plain refuses it).
    let mut forged = serde_json::to_value(phone.state()).unwrap();
    forged["registration"]["authority"] = json!("http://attacker.test");
    forged["registration"]["device_token"] = json!("sdt_forged");
    forged["inbox"] = json!([]);
    let forged = serde_json::to_vec_pretty(&forged).unwrap();
    assert!(WalletState::decode(&forged).is_ok());
    drop(phone);
    std::fs::write(&wallet, &forged).unwrap();
    let err = Phone::open(&path).unwrap_err();
    assert!(matches!(err, PhoneError::WalletUnsealable(_)), "{err:?}");
    assert!(!err.to_string().contains("sdt_"), "{err}");
    assert_eq!(std::fs::read(&wallet).unwrap(), forged, "left as it is");
    // The phone's own wallet still opens.
    std::fs::write(&wallet, &sealed).unwrap();
    assert!(Phone::open(&path).unwrap().is_provisioned());
    // Making the element wipe itself (tampering with its storage) does not
    // bring the migration back: the record lives beside the data epoch.
    let se_file = path.join("se").join(shomei_se_sim::SEALED_FILE);
    let mut bytes = std::fs::read(&se_file).unwrap();
    bytes[60] ^= 0x40;
    std::fs::write(&se_file, bytes).unwrap();
    assert!(matches!(Phone::open(&path), Err(PhoneError::Tampered(_))));
    std::fs::write(&wallet, &forged).unwrap();
    assert!(matches!(
        Phone::open(&path),
        Err(PhoneError::WalletUnsealable(_))
    ));
    assert_eq!(std::fs::read(&wallet).unwrap(), forged);
    // In memory too.
    let mut p = provisioned(&mut Mock::default());
    let plain = p.phone.state().encode().unwrap().to_vec();
    p.wallet.set_bytes(Some(plain.clone()));
    assert!(matches!(p.reopen(), Err(PhoneError::WalletUnsealable(_))));
    assert_eq!(p.wallet.bytes().unwrap(), plain);
}
