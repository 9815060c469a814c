//! Scenario tests of the authority over real HTTP on loopback, checked with
//! outside tools (openssl, Python `cryptography`). Each scenario runs on the
//! embedded SQLite registry and, when `SHOMEI_TEST_POSTGRES_URL` is set, on
//! PostgreSQL too (in CI the variable must be set).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{Backend, PgDb, init_authority, on_both_backends, postgres_db};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use shomei_authority_server::{RunningAuthority, SystemClock};
use shomei_pki::RsaSigner;
use shomei_pki::csr::build_csr;

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: String,
    token: String,
    running: Option<RunningAuthority>,
    http: reqwest::Client,
    _pg: Option<PgDb>,
}

async fn start(backend: Backend) -> Option<Env> {
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(postgres_db("shomei_srv").await?),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    init_authority(&dir, &base, now);
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
        _pg: pg,
    })
}

impl Env {
    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            assert_eq!(ct, "application/problem+json", "errors are problem+json");
            assert!(v["code"].is_string(), "problem has a stable code: {v}");
        }
        (status, v)
    }

    async fn get_bytes(&self, url: &str) -> Vec<u8> {
        let r = self.http.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.bytes().await.unwrap().to_vec()
    }

    /// Enrols an adult with fresh keys; returns (response, sign cert DER, auth cert DER).
    async fn enrol_adult(&self) -> (Value, Vec<u8>, Vec<u8>) {
        let (v, s, a, _) = self.enrol_adult_keys().await;
        (v, s, a)
    }

    /// As [`Env::enrol_adult`], also handing back the authentication key (the "card").
    async fn enrol_adult_keys(&self) -> (Value, Vec<u8>, Vec<u8>, RsaSigner) {
        let (s, a) = (
            RsaSigner::generate().unwrap(),
            RsaSigner::generate().unwrap(),
        );
        let (code, v) = self
            .post(
                "/v1/cards",
                json!({
                    "holder": {"name": "山田 太郎", "address": "東京都千代田区千代田1-1", "birth_date": "1990-04-01", "sex": "1"},
                    "sign_csr": B64.encode(build_csr(&s, "s").unwrap()),
                    "auth_csr": B64.encode(build_csr(&a, "a").unwrap()),
                }),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        let sign = B64.decode(v["sign_cert"].as_str().unwrap()).unwrap();
        let auth = B64.decode(v["auth_cert"].as_str().unwrap()).unwrap();
        (v, sign, auth, a)
    }

    /// A holder proof made with `key` (the card's authentication key) for `verb` on `serial`.
    async fn proof(&self, key: &RsaSigner, cert: &[u8], verb: &str, serial: &str) -> Value {
        let r: Value = self
            .http
            .post(format!("{}/v1/challenges", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let challenge = B64.decode(r["challenge"].as_str().unwrap()).unwrap();
        let msg = shomei_ca::holder_proof_message(verb, &serial.parse().unwrap(), &challenge);
        let sig = shomei_core::Signer::sign(key, &msg).unwrap();
        json!({"certificate": B64.encode(cert), "challenge": B64.encode(&challenge), "signature": B64.encode(sig)})
    }

    /// POST without the operator token.
    async fn post_as_holder(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
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

fn der_to_pem(der: &Path, pem: &Path, kind: &str) {
    let (ok, out) = openssl(&[
        kind,
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-out",
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
}

fn crl_url_of(cert: &Path) -> String {
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    assert!(ok, "{text}");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("URI:"))
        .expect("CDP URI")
        .to_owned()
}

fn ocsp_url_of(cert: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-ocsp_uri"]);
    assert!(ok, "{text}");
    text.trim().to_owned()
}

on_both_backends!(
    revocation_shows_in_openssl_crl_check_and_ocsp,
    |env: Env| async move {
        let (v, sign, _auth) = env.enrol_adult().await;
        let serial = v["sign_serial"].as_str().unwrap().to_owned();
        let ee = env.file("ee.der", &sign);
        let ee_pem = env.dir.join("ee.pem");
        der_to_pem(&ee, &ee_pem, "x509");
        let ca_pem = env.file(
            "sign.pem",
            &env.get_bytes(&format!("{}/ca/sign.pem", env.base)).await,
        );
        let crl_url = crl_url_of(&ee_pem);
        let ocsp_url = ocsp_url_of(&ee_pem);
        assert!(crl_url.starts_with(&env.base) && ocsp_url.starts_with(&env.base));

        // Before: openssl verify with the CRL from the certificate's own CDP says OK.
        let crl_der = env.file("crl.der", &env.get_bytes(&crl_url).await);
        let crl_pem = env.dir.join("crl.pem");
        der_to_pem(&crl_der, &crl_pem, "crl");
        let verify = |crl: &Path| {
            openssl(&[
                "verify",
                "-crl_check",
                "-CRLfile",
                crl.to_str().unwrap(),
                "-CAfile",
                ca_pem.to_str().unwrap(),
                ee_pem.to_str().unwrap(),
            ])
        };
        let (ok, out) = verify(&crl_pem);
        assert!(ok, "{out}");
        let (ok, out) = openssl(&[
            "crl",
            "-in",
            crl_der.to_str().unwrap(),
            "-inform",
            "DER",
            "-CAfile",
            ca_pem.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(
            ok && out.contains("verify OK")
                && out.contains("Issuing Distribution Point: critical")
                && out.contains(&crl_url),
            "{out}"
        );
        let ocsp = |extra: &[&str]| {
            // A digest option must come before -cert.
            let mut args = vec!["ocsp"];
            args.extend_from_slice(extra);
            args.extend([
                "-issuer",
                ca_pem.to_str().unwrap(),
                "-cert",
                ee_pem.to_str().unwrap(),
                "-url",
                &ocsp_url,
                "-CAfile",
                ca_pem.to_str().unwrap(),
                "-resp_text",
            ]);
            openssl(&args)
        };
        let (ok, out) = ocsp(&[]);
        assert!(
            ok && out.contains("Response verify OK")
                && out.contains(": good")
                && out.contains("OCSP Nonce"),
            "{out}"
        );

        // Revoke: the answer to the call means OCSP already says revoked.
        let (code, r) = env
            .post(
                &format!("/v1/certificates/{serial}/revoke"),
                json!({"reason": "keyCompromise"}),
            )
            .await;
        assert_eq!(code, 200, "{r}");
        assert_eq!(r["status"], "revoked");
        let (ok, out) = ocsp(&["-sha256"]);
        assert!(
            ok && out.contains(": revoked") && out.contains("keyCompromise"),
            "{out}"
        );

        // The CRL shard from the CDP lists it, with a higher CRL number.
        let crl_der = env.file("crl2.der", &env.get_bytes(&crl_url).await);
        let crl2_pem = env.dir.join("crl2.pem");
        der_to_pem(&crl_der, &crl2_pem, "crl");
        let (ok, out) = verify(&crl2_pem);
        assert!(!ok && out.contains("certificate revoked"), "{out}");
        let (_, text) = openssl(&["crl", "-in", crl2_pem.to_str().unwrap(), "-noout", "-text"]);
        assert!(
            text.contains(&serial) && text.contains("Key Compromise"),
            "{text}"
        );

        // Python cryptography agrees on the signature and the entry.
        let script = format!(
            "from cryptography import x509\nca=x509.load_pem_x509_certificate(open('{}','rb').read())\ncrl=x509.load_der_x509_crl(open('{}','rb').read())\nassert crl.is_signature_valid(ca.public_key())\nassert crl.get_revoked_certificate_by_serial_number(int('{serial}',16)) is not None\nprint('ok')",
            ca_pem.display(),
            crl_der.display()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.stop().await;
    }
);

on_both_backends!(suspend_resume_then_revoke_is_final, |env: Env| async move {
    let (v, sign, _) = env.enrol_adult().await;
    let serial = v["sign_serial"].as_str().unwrap().to_owned();
    let ee = env.file("ee.der", &sign);
    let ee_pem = env.dir.join("ee.pem");
    der_to_pem(&ee, &ee_pem, "x509");
    let ca_pem = env.file(
        "sign.pem",
        &env.get_bytes(&format!("{}/ca/sign.pem", env.base)).await,
    );
    let ocsp_url = ocsp_url_of(&ee_pem);
    let ocsp = || {
        openssl(&[
            "ocsp",
            "-issuer",
            ca_pem.to_str().unwrap(),
            "-cert",
            ee_pem.to_str().unwrap(),
            "-url",
            &ocsp_url,
            "-CAfile",
            ca_pem.to_str().unwrap(),
        ])
    };

    assert_eq!(
        env.post(&format!("/v1/certificates/{serial}/suspend"), json!({}))
            .await
            .0,
        200
    );
    let (_, out) = ocsp();
    assert!(
        out.contains("revoked") && out.contains("certificateHold"),
        "{out}"
    );
    let (code, p) = env
        .post(&format!("/v1/certificates/{serial}/suspend"), json!({}))
        .await;
    assert_eq!((code, p["code"].as_str()), (409, Some("already_suspended")));
    assert_eq!(
        env.post(&format!("/v1/certificates/{serial}/resume"), json!({}))
            .await
            .0,
        200
    );
    let (_, out) = ocsp();
    assert!(out.contains(": good"), "{out}");
    let (code, p) = env
        .post(
            &format!("/v1/certificates/{serial}/revoke"),
            json!({"reason": "certificateHold"}),
        )
        .await;
    assert_eq!(
        (code, p["code"].as_str()),
        (400, Some("hold_is_not_revocation"))
    );
    assert_eq!(
        env.post(
            &format!("/v1/certificates/{serial}/revoke"),
            json!({"reason": "cessationOfOperation"})
        )
        .await
        .0,
        200
    );
    let (code, p) = env
        .post(&format!("/v1/certificates/{serial}/resume"), json!({}))
        .await;
    assert_eq!((code, p["code"].as_str()), (409, Some("certificate_final")));
    let (_, out) = ocsp();
    assert!(
        out.contains("revoked") && out.contains("cessationOfOperation"),
        "{out}"
    );

    // The history says who did what.
    let r = env
        .http
        .get(format!(
            "{}/v1/holders/{}/events",
            env.base,
            v["holder_id"].as_str().unwrap()
        ))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    let events: Value = r.json().await.unwrap();
    let actions: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "issued").count(), 2);
    for a in ["suspended", "resumed", "revoked"] {
        assert!(actions.iter().any(|x| x == a), "{actions:?}");
    }
    env.stop().await;
});

on_both_backends!(
    change_of_address_revokes_signing_only,
    |env: Env| async move {
        let (v, _, _) = env.enrol_adult().await;
        let holder = v["holder_id"].as_str().unwrap();
        let r = env
        .http
        .put(format!("{}/v1/holders/{holder}", env.base))
        .bearer_auth(&env.token)
        .json(&json!({"holder": {"name": "山田 太郎", "address": "大阪府大阪市北区1-1", "birth_date": "1990-04-01", "sex": "1"}}))
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        for (k, want) in [("sign_serial", "revoked"), ("auth_serial", "active")] {
            let serial = v[k].as_str().unwrap();
            let c: Value = env
                .http
                .get(format!("{}/v1/certificates/{serial}", env.base))
                .bearer_auth(&env.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(c["status"], want, "{k}: {c}");
            if want == "revoked" {
                assert_eq!(c["reason"], "affiliationChanged");
            }
        }
        env.stop().await;
    }
);

on_both_backends!(
    bad_input_gets_problem_json_and_changes_nothing,
    |env: Env| async move {
        let (v, _, _) = env.enrol_adult().await;
        let serial = v["sign_serial"].as_str().unwrap().to_owned();
        // No token / wrong token.
        let r = env
            .http
            .post(format!("{}/v1/cards", env.base))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = env
            .http
            .post(format!("{}/v1/certificates/{serial}/revoke", env.base))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "unauthorized");
        // Malformed CSR, bad JSON, missing field, bad sex code, minor with sign CSR.
        let k = RsaSigner::generate().unwrap();
        let csr = B64.encode(build_csr(&k, "x").unwrap());
        let cases = [
            (
                json!({"holder": {"name": "A", "address": "B", "birth_date": "1990-04-01", "sex": "1"}, "auth_csr": B64.encode(b"not a csr")}),
                400,
                "malformed_der",
            ),
            (
                json!({"holder": {"name": "A", "address": "B", "birth_date": "1990-04-01", "sex": "9"}, "auth_csr": csr}),
                400,
                "bad_request",
            ),
            (
                json!({"holder": {"name": "A", "address": "B", "birth_date": "1990-02-30", "sex": "1"}, "auth_csr": csr}),
                400,
                "bad_request",
            ),
            (
                json!({"holder": {"name": "A", "address": "B", "birth_date": "2015-01-01", "sex": "2"}, "sign_csr": csr, "auth_csr": csr}),
                422,
                "minor_cannot_sign",
            ),
            (
                json!({"holder": {"name": "A", "address": "B", "birth_date": "1990-04-01", "sex": "1"}}),
                400,
                "missing_auth_csr",
            ),
        ];
        for (body, status, code) in cases {
            let (s, p) = env.post("/v1/cards", body).await;
            assert_eq!((s, p["code"].as_str().unwrap()), (status, code), "{p}");
            assert!(
                !p["detail"].as_str().unwrap().contains("1990"),
                "no personal data echoed: {p}"
            );
        }
        let r = env
            .http
            .post(format!("{}/v1/cards", env.base))
            .bearer_auth(&env.token)
            .header("content-type", "application/json")
            .body("{\"holder\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        // Unknown serials, bad serials, unknown reasons and actions.
        assert_eq!(
            env.post("/v1/certificates/ABCDEF/revoke", json!({}))
                .await
                .0,
            404
        );
        assert_eq!(
            env.post("/v1/certificates/zz/revoke", json!({})).await.0,
            400
        );
        let (s, p) = env
            .post(
                &format!("/v1/certificates/{serial}/revoke"),
                json!({"reason": "bored"}),
            )
            .await;
        assert_eq!((s, p["code"].as_str()), (400, Some("unknown_reason")));
        assert_eq!(
            env.post(&format!("/v1/certificates/{serial}/explode"), json!({}))
                .await
                .0,
            404
        );
        // Nothing changed: the certificate is still active and the history holds only the issuance.
        let c: Value = env
            .http
            .get(format!("{}/v1/certificates/{serial}", env.base))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["status"], "active");
        let e: Value = env
            .http
            .get(format!(
                "{}/v1/holders/{}/events",
                env.base,
                v["holder_id"].as_str().unwrap()
            ))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(e["events"].as_array().unwrap().len(), 2);
        // Malformed OCSP: a malformedRequest OCSP response, not an HTTP error page.
        let r = env
            .http
            .post(format!("{}/ocsp/sign", env.base))
            .header("content-type", "application/ocsp-request")
            .body(vec![0x30, 0x03, 0x02, 0x01])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert_eq!(
            &body[..],
            &shomei_pki::ocsp::error_response(
                shomei_pki::ocsp::OcspResponseStatus::MalformedRequest
            )[..]
        );
        env.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_get_form_unknown_serial_and_openapi() {
    let env = start(Backend::Sqlite).await.unwrap();
    let (_v, sign, _) = env.enrol_adult().await;
    let ca = env.get_bytes(&format!("{}/ca/sign.der", env.base)).await;
    // RFC 6960 A.1 GET: base64, URL-encoded.
    let req = shomei_pki::ocsp::build_request(&sign, &ca, shomei_pki::ocsp::CertIdHash::Sha1, None)
        .unwrap();
    let b64 = B64
        .encode(&req)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let resp = env
        .get_bytes(&format!("{}/ocsp/sign/{b64}", env.base))
        .await;
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    let summary = shomei_pki::ocsp::parse_response(&resp, &ca, now).unwrap();
    assert_eq!(summary.statuses[0].state, shomei_pki::ocsp::CertState::Good);
    // A serial this authority never issued is `unknown`.
    let ca_pem = env.file(
        "sign.pem",
        &env.get_bytes(&format!("{}/ca/sign.pem", env.base)).await,
    );
    let url = format!("{}/ocsp/sign", env.base);
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        ca_pem.to_str().unwrap(),
        "-serial",
        "0x4012345678",
        "-url",
        &url,
        "-CAfile",
        ca_pem.to_str().unwrap(),
    ]);
    assert!(ok && out.contains(": unknown"), "{out}");
    // The mobile-ID IACA is published, with its CRL at the IACA's own CDP.
    let iaca = env.file(
        "iaca.pem",
        &env.get_bytes(&format!("{}/ca/iaca.pem", env.base)).await,
    );
    let (ok, text) = openssl(&["x509", "-in", iaca.to_str().unwrap(), "-noout", "-text"]);
    assert!(
        ok && text.contains("pathlen:0") && text.contains("prime256v1"),
        "{text}"
    );
    let crl = env.file(
        "iaca.crl",
        &env.get_bytes(&format!("{}/crl/iaca.crl", env.base)).await,
    );
    let (ok, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        iaca.to_str().unwrap(),
        "-noout",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    // The OpenAPI document lists every route.
    let doc: Value =
        serde_json::from_slice(&env.get_bytes(&format!("{}/openapi.json", env.base)).await)
            .unwrap();
    for p in shomei_authority_server::openapi::PATHS {
        assert!(doc["paths"].get(*p).is_some(), "{p} undocumented");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_registry_and_statuses() {
    let mut env = start(Backend::Sqlite).await.unwrap();
    let (v, sign, _) = env.enrol_adult().await;
    let serial = v["sign_serial"].as_str().unwrap().to_owned();
    assert_eq!(
        env.post(
            &format!("/v1/certificates/{serial}/revoke"),
            json!({"reason": "keyCompromise"})
        )
        .await
        .0,
        200
    );
    let addr = env.running.as_ref().unwrap().addr;
    env.running.take().unwrap().stop().await;
    let state = shomei_authority_server::load(&env.dir, None, Arc::new(SystemClock))
        .await
        .unwrap();
    env.running = Some(shomei_authority_server::serve(state, addr).await.unwrap());
    let ca = env.get_bytes(&format!("{}/ca/sign.der", env.base)).await;
    let req = shomei_pki::ocsp::build_request(
        &sign,
        &ca,
        shomei_pki::ocsp::CertIdHash::Sha256,
        Some(b"n1"),
    )
    .unwrap();
    let resp = env
        .http
        .post(format!("{}/ocsp/sign", env.base))
        .body(req)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    let s = shomei_pki::ocsp::parse_response(&resp, &ca, now).unwrap();
    assert!(matches!(
        s.statuses[0].state,
        shomei_pki::ocsp::CertState::Revoked { .. }
    ));
    env.stop().await;
}

on_both_backends!(
    holder_suspends_and_resumes_with_a_card_proof,
    |env: Env| async move {
        let (v, _sign, auth, key) = env.enrol_adult_keys().await;
        let serial = v["sign_serial"].as_str().unwrap().to_owned();
        // No token, no proof: 401.
        let (code, p) = env
            .post_as_holder(&format!("/v1/certificates/{serial}/suspend"), json!({}))
            .await;
        assert_eq!((code, p["code"].as_str()), (401, Some("unauthorized")));
        // A proof for another action does not work for this one (and spends its challenge).
        let wrong = env.proof(&key, &auth, "revoke", &serial).await;
        let (code, p) = env
            .post_as_holder(
                &format!("/v1/certificates/{serial}/suspend"),
                json!({"proof": wrong}),
            )
            .await;
        assert_eq!(
            (code, p["code"].as_str()),
            (403, Some("bad_holder_proof")),
            "{p}"
        );
        let (code, p) = env
            .post_as_holder(
                &format!("/v1/certificates/{serial}/revoke"),
                json!({"proof": wrong}),
            )
            .await;
        assert_eq!(
            (code, p["code"].as_str()),
            (403, Some("unknown_challenge")),
            "replay refused: {p}"
        );
        // The right proof suspends; replaying it is refused.
        let good = env.proof(&key, &auth, "suspend", &serial).await;
        let (code, p) = env
            .post_as_holder(
                &format!("/v1/certificates/{serial}/suspend"),
                json!({"proof": good}),
            )
            .await;
        assert_eq!(
            (code, p["status"].as_str()),
            (200, Some("suspended")),
            "{p}"
        );
        let (code, _) = env
            .post_as_holder(
                &format!("/v1/certificates/{serial}/suspend"),
                json!({"proof": good}),
            )
            .await;
        assert_eq!(code, 403);
        // Another holder's card cannot touch it.
        let (_, _, other_auth, other_key) = env.enrol_adult_keys().await;
        let foreign = env.proof(&other_key, &other_auth, "resume", &serial).await;
        let (code, p) = env
            .post_as_holder(
                &format!("/v1/certificates/{serial}/resume"),
                json!({"proof": foreign}),
            )
            .await;
        assert_eq!(
            (code, p["code"].as_str()),
            (403, Some("not_your_certificate")),
            "{p}"
        );
        // Resume with her own card.
        let resume = env.proof(&key, &auth, "resume", &serial).await;
        let (code, p) = env
            .post_as_holder(
                &format!("/v1/certificates/{serial}/resume"),
                json!({"proof": resume}),
            )
            .await;
        assert_eq!((code, p["status"].as_str()), (200, Some("active")), "{p}");
        // The history names the holder as the actor.
        let e: Value = env
            .http
            .get(format!(
                "{}/v1/holders/{}/events",
                env.base,
                v["holder_id"].as_str().unwrap()
            ))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let holder_actions = e["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"].as_str().unwrap().starts_with("holder:"))
            .count();
        assert_eq!(holder_actions, 2);
        env.stop().await;
    }
);

on_both_backends!(
    renewal_supersedes_the_old_certificate,
    |env: Env| async move {
        let (v, _, _) = env.enrol_adult().await;
        let old = v["sign_serial"].as_str().unwrap().to_owned();
        let key = RsaSigner::generate().unwrap();
        let (code, r) = env
            .post(
                &format!("/v1/certificates/{old}/renew"),
                json!({"csr": B64.encode(build_csr(&key, "n").unwrap())}),
            )
            .await;
        assert_eq!(code, 201, "{r}");
        assert_eq!(r["replaces"], old.as_str());
        let new = r["serial"].as_str().unwrap();
        let c_old: Value = env
            .http
            .get(format!("{}/v1/certificates/{old}", env.base))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (c_old["status"].as_str(), c_old["reason"].as_str()),
            (Some("revoked"), Some("superseded"))
        );
        let c_new: Value = env
            .http
            .get(format!("{}/v1/certificates/{new}", env.base))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (
                c_new["status"].as_str(),
                c_new["replaces"].as_str(),
                c_new["class"].as_str()
            ),
            (Some("active"), Some(old.as_str()), Some("card-sign"))
        );
        assert_eq!(c_new["pair"], v["auth_serial"]);
        // Renewing the superseded one again is refused and changes nothing.
        let (code, p) = env
            .post(
                &format!("/v1/certificates/{old}/renew"),
                json!({"csr": B64.encode(build_csr(&key, "n").unwrap())}),
            )
            .await;
        assert_eq!((code, p["code"].as_str()), (409, Some("certificate_final")));
        // A bad CSR is refused before anything is revoked.
        let (code, _) = env
            .post(
                &format!("/v1/certificates/{new}/renew"),
                json!({"csr": B64.encode(b"junk")}),
            )
            .await;
        assert_eq!(code, 400);
        let c_new: Value = env
            .http
            .get(format!("{}/v1/certificates/{new}", env.base))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c_new["status"], "active");
        env.stop().await;
    }
);
