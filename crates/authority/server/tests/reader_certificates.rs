//! Reader certificates for registered relying parties (ISO/IEC 18013-5
//! §9.1.4) over real HTTP on loopback: the reader CA at /ca/reader-ca.pem,
//! POST /v1/reader-certificates with a relying party's token, the
//! certificate checked with openssl (chain, EKU 1.0.18013.5.1.6, CN, 90
//! days), refusals with stable codes that store nothing, and an authority
//! folder from before the reader CA.
//!
//! Each scenario runs on the embedded SQLite registry and, when
//! `SHOMEI_TEST_POSTGRES_URL` is set, on PostgreSQL too (in CI it must be).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{
    Backend, PgDb, free_port, init_authority, now, on_both_backends, postgres_db, send_checked,
};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use shomei_authority_server::{RunningAuthority, SystemClock};
use shomei_core::{Serial, Signer};
use shomei_pki::{EcdsaP256Signer, RsaSigner};

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: String,
    token: String,
    running: Option<RunningAuthority>,
    http: reqwest::Client,
    pg: Option<PgDb>,
}

async fn start(backend: Backend) -> Option<Env> {
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(postgres_db("shomei_readercert").await?),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    init_authority(&dir, "http://127.0.0.1:1", now());
    let mut env = Env {
        _tmp: tmp,
        dir,
        base: String::new(),
        token: String::new(),
        running: None,
        http: reqwest::Client::new(),
        pg,
    };
    env.serve().await;
    Some(env)
}

impl Env {
    async fn serve(&mut self) {
        let port = free_port();
        self.base = format!("http://127.0.0.1:{port}");
        let state = shomei_authority_server::load(
            &self.dir,
            self.pg.as_ref().map(|p| p.url.as_str()),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        self.running = Some(
            shomei_authority_server::serve(state, format!("127.0.0.1:{port}").parse().unwrap())
                .await
                .unwrap(),
        );
        self.token = std::fs::read_to_string(self.dir.join("operator.token"))
            .unwrap()
            .trim()
            .to_owned();
    }

    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        send_checked(req, &[]).await
    }

    async fn register(&self, name: &str) -> String {
        let (code, v) = self
            .send(
                self.http
                    .post(self.url("/v1/relying-parties"))
                    .bearer_auth(&self.token)
                    .json(&json!({ "name": name })),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    async fn request_cert(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url("/v1/reader-certificates"))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    async fn reader_ca_pem(&self) -> String {
        let r = self
            .http
            .get(self.url("/ca/reader-ca.pem"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    }

    /// Every event in the registry (count), straight from the database.
    async fn event_count(&self) -> i64 {
        use sqlx::{Connection, Row};
        let q = "SELECT COUNT(*) AS n FROM events";
        match &self.pg {
            Some(pg) => {
                let mut c = sqlx::PgConnection::connect(&pg.url).await.unwrap();
                sqlx::query(q).fetch_one(&mut c).await.unwrap().get("n")
            }
            None => {
                let url = format!("sqlite:{}", self.dir.join("registry.sqlite").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(q).fetch_one(&mut c).await.unwrap().get("n")
            }
        }
    }
}

fn pem_public_key(spki: &[u8]) -> String {
    let b64 = B64.encode(spki);
    let mut out = "-----BEGIN PUBLIC KEY-----\n".to_owned();
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out + "-----END PUBLIC KEY-----\n"
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
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

on_both_backends!(
    a_registered_relying_party_gets_a_reader_certificate,
    |mut env: Env| async move {
        let token = env.register("city-office.jp").await;
        let key = EcdsaP256Signer::generate().unwrap();
        let before = env.event_count().await;
        let (code, v) = env
            .request_cert(
                Some(&token),
                json!({"public_key": pem_public_key(key.public_key_spki())}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["subject"]["common_name"], "city-office.jp");
        let ca_pem = env.reader_ca_pem().await;
        assert_eq!(v["reader_ca"], ca_pem.as_str());
        let cert_pem = v["certificate"].as_str().unwrap();
        let der = B64.decode(v["certificate_der"].as_str().unwrap()).unwrap();
        assert_eq!(
            shomei_pki::pem::pem_certificates(cert_pem.as_bytes()),
            vec![der.clone()]
        );
        // openssl: chains to the reader CA, the right subject, EKU, key, 90 days.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(tmp.path().join("reader.pem"), cert_pem).unwrap();
        let (ok, out) = openssl(
            tmp.path(),
            &[
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
                "reader.pem",
            ],
        );
        assert!(ok, "{out}");
        let (ok, text) = openssl(
            tmp.path(),
            &["x509", "-noout", "-text", "-in", "reader.pem"],
        );
        assert!(ok, "{text}");
        assert!(
            text.contains("Subject: C = JP, CN = city-office.jp"),
            "{text}"
        );
        assert!(
            text.contains("CN = Test Authority mdoc reader CA"),
            "{text}"
        );
        assert!(
            text.contains("X509v3 Extended Key Usage: critical\n                1.0.18013.5.1.6"),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert_eq!(
            shomei_pki::csr::certificate_spki(&der).unwrap(),
            key.public_key_spki()
        );
        let nb = time::OffsetDateTime::parse(
            v["not_before"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let na = time::OffsetDateTime::parse(
            v["not_after"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(na - nb, time::Duration::days(90));
        // Base64 DER works too; each request gets its own serial.
        let (code, v2) = env
            .request_cert(
                Some(&token),
                json!({"public_key": B64.encode(key.public_key_spki())}),
            )
            .await;
        assert_eq!(code, 201, "{v2}");
        assert_ne!(v2["serial"], v["serial"]);
        // One event per certificate, actor the relying party.
        assert_eq!(env.event_count().await, before + 2);
        let registry = env.running.as_ref().unwrap().state.registry.clone();
        let serial: Serial = v["serial"].as_str().unwrap().parse().unwrap();
        let events = registry.events_for_certificate(&serial).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "reader_certificate_issued");
        assert!(events[0].holder_id.is_none());
        // The reader CA is the same after a restart.
        env.stop().await;
        env.serve().await;
        assert_eq!(env.reader_ca_pem().await, ca_pem);
        let der_ca = env
            .http
            .get(env.url("/ca/reader-ca.der"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            shomei_pki::pem::pem_certificates(ca_pem.as_bytes()),
            vec![der_ca.to_vec()]
        );
        env.stop().await;
    }
);

on_both_backends!(
    refusals_have_stable_codes_and_store_nothing,
    |mut env: Env| async move {
        let token = env.register("shop").await;
        let good = EcdsaP256Signer::generate().unwrap();
        let body = json!({"public_key": pem_public_key(good.public_key_spki())});
        let before = env.event_count().await;
        // No token, an unknown one, the operator's (not a relying party): 401.
        let operator = env.token.clone();
        for t in [None, Some("srp_nope"), Some(""), Some(operator.as_str())] {
            let (code, v) = env.request_cert(t, body.clone()).await;
            assert_eq!(
                (code, v["code"].as_str()),
                (401, Some("unauthorized")),
                "{t:?}"
            );
        }
        // Bad bodies: 400 bad_request.
        let rsa = RsaSigner::generate().unwrap();
        let mut off_curve = good.public_key_spki().to_vec();
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        for (body, status, code) in [
            (json!({}), 400, "bad_request"),
            (json!({"public_key": 5}), 400, "bad_request"),
            (json!({"public_key": "x", "extra": 1}), 400, "bad_request"),
            (json!({"public_key": "not base64!"}), 400, "bad_request"),
            (
                json!({"public_key": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}),
                400,
                "bad_request",
            ),
            (
                json!({"public_key": B64.encode(b"junk")}),
                400,
                "bad_request",
            ),
            (json!({"public_key": "A".repeat(5000)}), 400, "bad_request"),
            (
                json!({"public_key": pem_public_key(rsa.public_key_spki())}),
                422,
                "unsupported_key",
            ),
            (
                json!({"public_key": B64.encode(&off_curve)}),
                422,
                "bad_key",
            ),
        ] {
            let (got, v) = env.request_cert(Some(&token), body.clone()).await;
            assert_eq!(
                (got, v["code"].as_str()),
                (status, Some(code)),
                "{body}: {v}"
            );
        }
        let (code, _) = env
            .send(
                env.http
                    .post(env.url("/v1/reader-certificates"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await;
        assert_eq!(code, 400);
        assert_eq!(env.event_count().await, before, "refusals store nothing");
        env.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_from_before_the_reader_ca_gets_one_on_load() {
    let mut env = start(Backend::Sqlite).await.unwrap();
    env.stop().await;
    for f in ["keys/reader-ca.p8", "ca/reader-ca.der", "ca/reader-ca.pem"] {
        std::fs::remove_file(env.dir.join(f)).unwrap();
    }
    env.serve().await;
    let ca_pem = env.reader_ca_pem().await;
    assert_eq!(
        std::fs::read_to_string(env.dir.join("ca/reader-ca.pem")).unwrap(),
        ca_pem
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.dir.join("keys/reader-ca.p8"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = env.register("late").await;
    let key = EcdsaP256Signer::generate().unwrap();
    let (code, v) = env
        .request_cert(
            Some(&token),
            json!({"public_key": pem_public_key(key.public_key_spki())}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    // Loaded, not re-created, the next time.
    env.stop().await;
    env.serve().await;
    assert_eq!(env.reader_ca_pem().await, ca_pem);
    env.stop().await;
}

impl Env {
    async fn revoke(&self, token: &str, serial: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(&format!("/v1/reader-certificates/{serial}/revoke")))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    async fn reader_crl(&self) -> Vec<u8> {
        let r = self
            .http
            .get(self.url("/ca/reader-ca.crl"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "application/pkix-crl");
        r.bytes().await.unwrap().to_vec()
    }

    async fn issue_reader(&self, token: &str) -> Value {
        let key = EcdsaP256Signer::generate().unwrap();
        let (code, v) = self
            .request_cert(
                Some(token),
                json!({"public_key": pem_public_key(key.public_key_spki())}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        v
    }
}

on_both_backends!(
    a_revoked_reader_certificate_is_on_the_reader_crl,
    |mut env: Env| async move {
        let shop = env.register("shop").await;
        let bank = env.register("bank").await;
        let stolen = env.issue_reader(&shop).await;
        let good = env.issue_reader(&shop).await;
        let banks = env.issue_reader(&bank).await;
        let serial = stolen["serial"].as_str().unwrap();
        let ca_pem = env.reader_ca_pem().await;
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("reader-ca.pem"), &ca_pem).unwrap();
        std::fs::write(
            tmp.path().join("stolen.pem"),
            stolen["certificate"].as_str().unwrap(),
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("good.pem"),
            good["certificate"].as_str().unwrap(),
        )
        .unwrap();
        // Before: an empty CRL, verified by openssl under the reader CA.
        let empty = env.reader_crl().await;
        let summary = shomei_pki::crl::parse_crl_summary(&empty).unwrap();
        assert_eq!(summary.entries, 0);
        assert_eq!(
            summary.next_update.unwrap() - summary.this_update,
            time::Duration::hours(24)
        );
        let events_before = env.event_count().await;
        // Refusals: another relying party's certificate, a bad serial, an
        // unknown one, a bad reason, a hold; none changes anything.
        let (code, v) = env
            .revoke(&bank, serial, json!({"reason": "keyCompromise"}))
            .await;
        assert_eq!(
            (code, v["code"].as_str()),
            (403, Some("not_your_reader_certificate")),
            "{v}"
        );
        let (code, v) = env
            .revoke(&shop, "zz-not-hex", json!({"reason": "keyCompromise"}))
            .await;
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("bad_request")),
            "{v}"
        );
        let (code, v) = env
            .revoke(
                &shop,
                "4001020304050607",
                json!({"reason": "keyCompromise"}),
            )
            .await;
        assert_eq!((code, v["code"].as_str()), (404, Some("not_found")), "{v}");
        let (code, v) = env.revoke(&shop, serial, json!({"reason": "stolen"})).await;
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("unknown_reason")),
            "{v}"
        );
        let (code, v) = env
            .revoke(&shop, serial, json!({"reason": "certificateHold"}))
            .await;
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("hold_is_not_revocation")),
            "{v}"
        );
        let (code, v) = env
            .revoke("srp_nobody", serial, json!({"reason": "keyCompromise"}))
            .await;
        assert_eq!(
            (code, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{v}"
        );
        assert_eq!(env.event_count().await, events_before);
        let crl = env.reader_crl().await;
        assert_eq!(shomei_pki::crl::parse_crl_summary(&crl).unwrap().entries, 0);
        // The relying party revokes its own certificate.
        let (code, v) = env
            .revoke(&shop, serial, json!({"reason": "keyCompromise"}))
            .await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["status"], "revoked");
        assert_eq!(v["reason"], "keyCompromise");
        assert_eq!(env.event_count().await, events_before + 1);
        // Again: already revoked, nothing changes.
        let (code, v) = env
            .revoke(&env.token, serial, json!({"reason": "superseded"}))
            .await;
        assert_eq!(
            (code, v["code"].as_str()),
            (409, Some("already_revoked")),
            "{v}"
        );
        assert_eq!(env.event_count().await, events_before + 1);
        // The operator may revoke any relying party's certificate.
        let (code, v) = env
            .revoke(
                &env.token,
                banks["serial"].as_str().unwrap(),
                json!({"reason": "unspecified"}),
            )
            .await;
        assert_eq!(code, 200, "{v}");
        // The CRL lists both, signed again at once; openssl agrees.
        let crl = env.reader_crl().await;
        let summary = shomei_pki::crl::parse_crl_summary(&crl).unwrap();
        assert_eq!(summary.entries, 2);
        std::fs::write(tmp.path().join("reader-ca.crl"), &crl).unwrap();
        let (ok, out) = openssl(
            tmp.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                "reader-ca.crl",
                "-CAfile",
                "reader-ca.pem",
                "-noout",
            ],
        );
        assert!(ok && out.contains("verify OK"), "{out}");
        let (ok, text) = openssl(
            tmp.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                "reader-ca.crl",
                "-noout",
                "-text",
            ],
        );
        assert!(ok, "{text}");
        assert!(
            text.contains(&format!("Serial Number: {}", serial.to_uppercase()))
                || text.to_uppercase().contains(&serial.to_uppercase()),
            "{text}"
        );
        assert!(text.contains("Key Compromise"), "{text}");
        assert!(text.contains("ecdsa-with-SHA256"), "{text}");
        let (ok, _) = openssl(
            tmp.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                "reader-ca.crl",
                "-out",
                "reader-ca.crl.pem",
            ],
        );
        assert!(ok);
        let verify = |cert: &str| {
            openssl(
                tmp.path(),
                &[
                    "verify",
                    "-crl_check",
                    "-CRLfile",
                    "reader-ca.crl.pem",
                    "-CAfile",
                    "reader-ca.pem",
                    "-purpose",
                    "any",
                    cert,
                ],
            )
        };
        let (ok, out) = verify("stolen.pem");
        assert!(!ok && out.contains("certificate revoked"), "{out}");
        let (ok, out) = verify("good.pem");
        assert!(ok, "{out}");
        // Durable: after a restart the CRL still lists them.
        env.stop().await;
        env.serve().await;
        let crl = env.reader_crl().await;
        assert_eq!(shomei_pki::crl::parse_crl_summary(&crl).unwrap().entries, 2);
        let (code, v) = env
            .revoke(&shop, serial, json!({"reason": "keyCompromise"}))
            .await;
        assert_eq!(
            (code, v["code"].as_str()),
            (409, Some("already_revoked")),
            "{v}"
        );
        env.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_reader_certificate_route() {
    let mut env = start(Backend::Sqlite).await.unwrap();
    let r = env.http.get(env.url("/openapi.json")).send().await.unwrap();
    let doc: Value = r.json().await.unwrap();
    let p = "/v1/reader-certificates";
    assert!(shomei_authority_server::openapi::PATHS.contains(&p));
    let revoke = &doc["paths"]["/v1/reader-certificates/{serial}/revoke"]["post"];
    for code in ["200", "400", "401", "403", "404", "409"] {
        assert!(revoke["responses"].get(code).is_some(), "{code}");
    }
    assert!(doc["paths"]["/ca/reader-ca.crl"]["get"].is_object());
    let post = &doc["paths"][p]["post"];
    for code in ["201", "400", "401", "422"] {
        assert!(post["responses"].get(code).is_some(), "{code}");
    }
    assert!(
        doc["paths"]["/ca/{file}"]["get"]["summary"]
            .as_str()
            .unwrap()
            .contains("reader-ca.pem")
    );
    env.stop().await;
}
