//! Notification e-mail through relays that demand TLS and authentication,
//! configured the way an operator does it: an `smtp` object in
//! `authority.json`, the relay's CA and the password in files of the
//! authority folder. The relay is a real SMTP server (Python aiosmtpd,
//! `tests/smtp_relay.py`) with a certificate from a throwaway CA.
//!
//! The transport does not depend on the registry back end, so these run on
//! the embedded SQLite registry only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{free_port, init_authority, now};

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use shomei_authority_server::{RunningAuthority, ServerError, SystemClock};
use shomei_pki::RsaSigner;
use shomei_pki::csr::build_csr;

const USER: &str = "shomei-notify";
const PASSWORD: &str = "relay-Secret-7f3a";
const HOLDER_EMAIL: &str = "hanako.notify@example.jp";

/// The relay's PKI: a CA, and a certificate for 127.0.0.1 under it.
struct RelayPki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn relay_pki() -> RelayPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "Test mail relay CA");
    let ca_cert = ca.clone().self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.distinguished_name
        .push(DnType::CommonName, "mail relay");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    RelayPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A running `smtp_relay.py`.
struct Relay {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    /// `mode`: starttls | tls | plain (see the script).
    fn start(mode: &str, dir: &Path, pki: &RelayPki) -> Self {
        let (cert, key) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
        std::fs::write(&cert, &pki.cert_pem).unwrap();
        std::fs::write(&key, &pki.key_pem).unwrap();
        let out = dir.join(format!("relay-{mode}"));
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_relay.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args([mode, &port.to_string()])
            .args([&cert, &key])
            .args([USER, PASSWORD])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "smtp_relay.py did not start");
        Self { child, port, out }
    }

    /// Mail the relay accepted, oldest first.
    fn mails(&self) -> Vec<Value> {
        (1..)
            .map(|n| self.out.join(format!("mail-{n}.json")))
            .take_while(|p| p.exists())
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        self.wait_until(|m| m.len() >= n).await
    }

    async fn wait_until(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..200 {
            let m = self.mails();
            if done(&m) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the relay did not get the expected mail: {:?}",
            self.mails()
        );
    }

    /// "ok" / "fail" per AUTH attempt.
    fn auth_attempts(&self) -> Vec<String> {
        std::fs::read_to_string(self.out.join("auth.log"))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// A fresh authority folder whose `authority.json` gets `smtp`, plus the
/// files it names.
fn authority_dir(tmp: &Path, smtp: Value, pki: &RelayPki, password: &str) -> PathBuf {
    let dir = tmp.join("authority");
    init_authority(&dir, "http://127.0.0.1:1", now());
    std::fs::write(dir.join("smtp-ca.pem"), &pki.ca_pem).unwrap();
    let secret = dir.join("smtp.password");
    std::fs::write(&secret, format!("{password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.join("authority.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["smtp"] = smtp;
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    dir
}

struct Authority {
    running: Option<RunningAuthority>,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Authority {
    async fn start(dir: &Path) -> Result<Self, ServerError> {
        let state = shomei_authority_server::load(dir, None, Arc::new(SystemClock)).await?;
        let port = free_port();
        let running =
            shomei_authority_server::serve(state, format!("127.0.0.1:{port}").parse().unwrap())
                .await
                .unwrap();
        Ok(Self {
            running: Some(running),
            base: format!("http://127.0.0.1:{port}"),
            token: std::fs::read_to_string(dir.join("operator.token"))
                .unwrap()
                .trim()
                .to_owned(),
            http: reqwest::Client::new(),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    /// Enrols a holder who opted in to e-mail, then suspends the card's
    /// signing certificate: two notices (contact change, suspension) at
    /// least, each an e-mail.
    async fn holder_with_news(&self) -> String {
        let (s, a) = (
            RsaSigner::generate().unwrap(),
            RsaSigner::generate().unwrap(),
        );
        let (code, v) = self
            .call(
                reqwest::Method::POST,
                "/v1/cards",
                json!({
                    "holder": {"name": "山田 花子", "address": "東京都千代田区千代田1-1",
                               "birth_date": "1990-04-01", "sex": "2"},
                    "sign_csr": B64.encode(build_csr(&s, "s").unwrap()),
                    "auth_csr": B64.encode(build_csr(&a, "a").unwrap()),
                }),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        let holder = v["holder_id"].as_str().unwrap().to_owned();
        let serial = v["sign_serial"].as_str().unwrap().to_owned();
        let (code, r) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/holders/{holder}/contact"),
                json!({"email": HOLDER_EMAIL, "notify_email": true}),
            )
            .await;
        assert_eq!(code, 200, "{r}");
        let (code, r) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/certificates/{serial}/suspend"),
                json!({}),
            )
            .await;
        assert_eq!(code, 200, "{r}");
        serial
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

fn text(mail: &Value) -> &str {
    mail["data"].as_str().unwrap_or_default()
}

fn smtp(port: u16, security: &str) -> Value {
    json!({
        "host": "127.0.0.1",
        "port": port,
        "from": "notify@authority.shomei.test",
        "security": security,
        "ca_file": "smtp-ca.pem",
        "username": USER,
        "password_file": "smtp.password",
    })
}

/// Waits out the notifier's retries (0.5 + 1 + 2 s), then some.
async fn after_all_retries() {
    tokio::time::sleep(Duration::from_millis(4500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_mail_goes_over_starttls_with_authentication() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = relay_pki();
    let relay = Relay::start("starttls", tmp.path(), &pki);
    let dir = authority_dir(tmp.path(), smtp(relay.port, "starttls"), &pki, PASSWORD);
    let authority = Authority::start(&dir).await.unwrap();
    let serial = authority.holder_with_news().await;
    let mails = relay
        .wait_until(|mails| mails.iter().any(|m| text(m).contains("suspended")))
        .await;
    for m in &mails {
        assert_eq!(m["tls"], true, "upgraded with STARTTLS before the mail");
        assert_eq!(m["login"], USER, "authenticated as the configured user");
        assert_eq!(m["rcpt"], json!([HOLDER_EMAIL]));
    }
    let suspended = mails
        .iter()
        .find(|m| text(m).contains("suspended"))
        .unwrap();
    assert!(text(suspended).contains(&serial), "{suspended}");
    assert!(relay.auth_attempts().iter().all(|a| a == "ok"));
    authority.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_mail_goes_over_implicit_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = relay_pki();
    let relay = Relay::start("tls", tmp.path(), &pki);
    let dir = authority_dir(tmp.path(), smtp(relay.port, "tls"), &pki, PASSWORD);
    let authority = Authority::start(&dir).await.unwrap();
    authority.holder_with_news().await;
    let mails = relay.wait_for(1).await;
    assert_eq!(mails[0]["tls"], true);
    assert_eq!(mails[0]["login"], USER);
    authority.stop().await;
}

/// Without the relay's CA the authority trusts only the system's roots:
/// the handshake fails, so no credentials and no mail leave, and the
/// requests that caused the notices still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_with_an_untrusted_certificate_gets_neither_password_nor_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = relay_pki();
    let relay = Relay::start("starttls", tmp.path(), &pki);
    let mut config = smtp(relay.port, "starttls");
    config.as_object_mut().unwrap().remove("ca_file");
    let dir = authority_dir(tmp.path(), config, &pki, PASSWORD);
    let authority = Authority::start(&dir).await.unwrap();
    authority.holder_with_news().await;
    after_all_retries().await;
    assert!(relay.mails().is_empty());
    assert!(
        relay.auth_attempts().is_empty(),
        "no AUTH before a trusted TLS session"
    );
    authority.stop().await;
}

/// STARTTLS is required, not opportunistic: a relay that does not offer
/// it (or an attacker who strips it) gets no mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_without_starttls_gets_no_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = relay_pki();
    let relay = Relay::start("plain", tmp.path(), &pki);
    let dir = authority_dir(tmp.path(), smtp(relay.port, "starttls"), &pki, PASSWORD);
    let authority = Authority::start(&dir).await.unwrap();
    authority.holder_with_news().await;
    after_all_retries().await;
    assert!(relay.mails().is_empty(), "{:?}", relay.mails());
    authority.stop().await;
}

/// A refused password is a permanent failure: no mail, and no retry storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_relay_password_gets_no_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = relay_pki();
    let relay = Relay::start("starttls", tmp.path(), &pki);
    let dir = authority_dir(
        tmp.path(),
        smtp(relay.port, "starttls"),
        &pki,
        "not-the-password",
    );
    let authority = Authority::start(&dir).await.unwrap();
    authority.holder_with_news().await;
    after_all_retries().await;
    assert!(relay.mails().is_empty());
    let attempts = relay.auth_attempts();
    assert!(!attempts.is_empty() && attempts.iter().all(|a| a == "fail"));
    // At most three notices (enrolled, contact changed, suspended), each
    // tried once: a 535 is permanent, so not the four tries of a transient failure.
    assert!(attempts.len() <= 3, "{attempts:?}");
    authority.stop().await;
}

/// Settings that cannot work stop the authority at start with one line
/// naming the setting, and never the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_smtp_settings_stop_the_start() {
    let pki = relay_pki();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "credentials in clear",
            json!({"security": "none"}),
            "would travel in clear",
        ),
        (
            "user without password",
            json!({"password_file": null}),
            "needs \"password_file\"",
        ),
        (
            "missing CA file",
            json!({"ca_file": "nowhere.pem"}),
            "cannot read ca_file",
        ),
        (
            "CA file without a certificate",
            json!({"ca_file": "smtp.password"}),
            "holds no PEM certificate",
        ),
        ("bad sender", json!({"from": "not an address"}), "\"from\""),
        ("unknown security", json!({"security": "opportunistic"}), ""),
    ];
    for (case, change, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = smtp(25, "starttls");
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(k);
            } else {
                config[k] = v.clone();
            }
        }
        let dir = authority_dir(tmp.path(), config, &pki, PASSWORD);
        let Err(e) = Authority::start(&dir).await else {
            panic!("{case}: the authority started");
        };
        let line = e.to_string();
        assert!(line.contains(expect), "{case}: {line}");
        assert!(!line.contains(PASSWORD), "{case}: {line}");
        assert!(!line.contains('\n'), "{case}: one line: {line}");
    }
    // A password file others may read is refused.
    let tmp = tempfile::tempdir().unwrap();
    let dir = authority_dir(tmp.path(), smtp(25, "starttls"), &pki, PASSWORD);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("smtp.password"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let e = Authority::start(&dir).await.err().unwrap();
    assert!(e.to_string().contains("may be read by others"), "{e}");
    // An empty password file is refused too.
    let tmp = tempfile::tempdir().unwrap();
    let dir = authority_dir(tmp.path(), smtp(25, "starttls"), &pki, "");
    let e = Authority::start(&dir).await.err().unwrap();
    assert!(e.to_string().contains("is empty"), "{e}");
}
