//! The relying party as outside tools meet it: `shomei verifier serve` (an
//! OpenID Connect provider) driven by a real OIDC client (authlib, in
//! `tests/oidc_client.py`) and by hand, with the phone answering through
//! `shomei phone login`; `shomei verify signature` on signatures made by
//! the card, the phone and openssl, and ours checked by openssl.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{failure, free_port, json_of, one_json_line, openssl, shomei};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};

const CARD_PW: &str = "SUZUKI01";
const CARD_PIN: &str = "4321";
const PHONE_PW: &str = "PHONE2026";
const PHONE_PIN: &str = "2468";
const NAME: &str = "鈴木 一郎";
/// As the authority keeps it: the parts joined by a full-width space (JPKI).
const NAME_KEPT: &str = "鈴木\u{3000}一郎";
const ADDRESS: &str = "北海道札幌市中央区1-1";
const BIRTH: &str = "1980-02-03";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shomei")
}

/// `openssl cms -sign -binary` of `doc` by `cert`/`key` (SHA-256, DER,
/// detached unless `extra` says otherwise) into `out`.
fn openssl_cms_sign(doc: &Path, cert: &Path, key: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["cms", "-sign", "-binary"];
    args.extend_from_slice(extra);
    args.extend([
        "-in",
        doc.to_str().unwrap(),
        "-signer",
        cert.to_str().unwrap(),
        "-inkey",
        key.to_str().unwrap(),
        "-md",
        "sha256",
        "-outform",
        "DER",
        "-out",
        out.to_str().unwrap(),
    ]);
    let (ok, text) = openssl(&args);
    assert!(ok, "{text}");
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Kills (and reaps) a child server when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An authority (`authority init` + `serve`) with one card holder.
struct World {
    /// First, so that it is stopped before its folder goes.
    _authority: Server,
    tmp: tempfile::TempDir,
    dir: PathBuf,
    url: String,
    token: String,
    card: PathBuf,
    /// `card issue --json`: holder_id, sign_serial, auth_serial.
    issued: Value,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("auth");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    json_of(&shomei(&[
        "authority",
        "init",
        "--data",
        dir.to_str().unwrap(),
        "--base-url",
        &url,
        "--crl-shards",
        "2",
        "--json",
    ]));
    #[allow(clippy::zombie_processes)] // Server::drop kills and waits
    let child = Command::new(bin())
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
    let authority = Server(child);
    let token = std::fs::read_to_string(dir.join("operator.token"))
        .unwrap()
        .trim()
        .to_owned();
    let card = tmp.path().join("ichiro.card");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "authority did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let issued = json_of(&shomei(&[
        "card",
        "issue",
        "--authority",
        &url,
        "--operator-token-file",
        dir.join("operator.token").to_str().unwrap(),
        "--name",
        NAME,
        "--address",
        ADDRESS,
        "--birth",
        BIRTH,
        "--sex",
        "1",
        "--sign-password",
        CARD_PW,
        "--auth-pin",
        CARD_PIN,
        "--out",
        card.to_str().unwrap(),
        "--json",
    ]));
    World {
        _authority: authority,
        tmp,
        dir,
        url,
        token,
        card,
        issued,
    }
}

/// `verifier serve`, with the JSON line it printed.
struct Verifier {
    issuer: String,
    started: Value,
    _stdout: BufReader<ChildStdout>,
    _server: Server,
}

impl World {
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Provisions a phone from the card: (phone dir, `phone provision --json`).
    fn provision(&self, name: &str) -> (PathBuf, Value) {
        let phone = self.path(name);
        let v = json_of(&shomei(&[
            "phone",
            "provision",
            "--authority",
            &self.url,
            "--card",
            self.card.to_str().unwrap(),
            "--card-password",
            CARD_PW,
            "--phone",
            phone.to_str().unwrap(),
            "--sign-password",
            PHONE_PW,
            "--auth-pin",
            PHONE_PIN,
            "--json",
        ]));
        (phone, v)
    }

    /// Starts `verifier serve` on a free loopback port.
    fn verifier(&self, extra: &[&str]) -> Verifier {
        let mut args = vec![
            "verifier",
            "serve",
            "--authority",
            &self.url,
            "--listen",
            "127.0.0.1:0",
            "--json",
        ];
        args.extend_from_slice(extra);
        #[allow(clippy::zombie_processes)] // Server::drop kills and waits
        let mut child = Command::new(bin())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let server = Server(child);
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "verifier serve ended before serving");
        let started: Value = serde_json::from_str(line.trim()).unwrap();
        let issuer = started["issuer"].as_str().unwrap().to_owned();
        Verifier {
            issuer,
            started,
            _stdout: stdout,
            _server: server,
        }
    }

    /// An operator POST (bearer token).
    fn operator(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = http()
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    }

    fn verify(&self, doc: &Path, sig: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify",
            "signature",
            "--authority",
            &self.url,
            "--in",
            doc.to_str().unwrap(),
            "--sig",
            sig.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        shomei(&args)
    }

    /// `card sign` (kind sign with the password, auth with the PIN).
    fn card_sign(&self, kind: &str, doc: &Path, out: &Path) {
        let (flag, secret) = if kind == "sign" {
            ("--password", CARD_PW)
        } else {
            ("--pin", CARD_PIN)
        };
        json_of(&shomei(&[
            "card",
            "sign",
            "--card",
            self.card.to_str().unwrap(),
            "--kind",
            kind,
            flag,
            secret,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]));
    }

    fn phone_sign(&self, phone: &Path, doc: &Path, out: &Path) {
        json_of(&shomei(&[
            "phone",
            "sign",
            "--phone",
            phone.to_str().unwrap(),
            "--password",
            PHONE_PW,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]));
    }

    fn card_sign_serial(&self) -> String {
        self.issued["sign_serial"].as_str().unwrap().to_owned()
    }

    /// The holder's audit events (operator).
    fn events(&self) -> Vec<Value> {
        let holder = self.issued["holder_id"].as_str().unwrap();
        let resp = http()
            .get(format!("{}/v1/holders/{holder}/events", self.url))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().unwrap();
        v["events"].as_array().unwrap().clone()
    }
}

fn same_serial(a: &Value, b: &str) -> bool {
    a.as_str().is_some_and(|a| a.eq_ignore_ascii_case(b))
}

fn the_holder() -> Value {
    json!({"name": NAME_KEPT, "address": ADDRESS, "birth_date": BIRTH, "sex": "1"})
}

// ---------------------------------------------------------------- OIDC by hand

/// A PKCE verifier and its S256 challenge.
fn pkce(seed: &str) -> (String, String) {
    let verifier = format!("{seed}-{}", "v".repeat(50));
    let challenge =
        shomei_rp_service::online::b64url(&shomei_rp_service::online::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn authorize(v: &Verifier, params: &[(&str, &str)]) -> reqwest::blocking::Response {
    http()
        .get(format!("{}/authorize", v.issuer))
        .header("accept", "application/json")
        .query(params)
        .send()
        .unwrap()
}

fn good_params<'a>(challenge: &'a str, state: &'a str, nonce: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", "demo"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// The query of a redirect's Location, which must go to `redirect_uri`.
fn redirect_query(resp: &reqwest::blocking::Response, redirect_uri: &str) -> Vec<(String, String)> {
    assert!(
        resp.status().is_redirection(),
        "a redirect, not {}",
        resp.status()
    );
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    let (base, query) = loc.split_once('?').unwrap();
    assert_eq!(base, redirect_uri, "{loc}");
    url_pairs(query)
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// An authorization error: a redirect back to the client with `error`,
/// the client's `state` and the issuer, and no login started.
fn assert_redirected_error(resp: reqwest::blocking::Response, v: &Verifier, error: &str) {
    let q = redirect_query(&resp, REDIRECT);
    assert_eq!(param(&q, "error"), Some(error), "{q:?}");
    assert_eq!(param(&q, "state"), Some("st-1"), "{q:?}");
    assert_eq!(param(&q, "iss"), Some(v.issuer.as_str()), "{q:?}");
    assert_eq!(param(&q, "code"), None, "{q:?}");
    let body = resp.text().unwrap();
    assert!(!body.contains("login_url"), "no login was started: {body}");
}

fn phone_login(phone: &Path, url: &str, password: Option<&str>) -> Output {
    let mut args = vec![
        "phone",
        "login",
        "--phone",
        phone.to_str().unwrap(),
        "--pin",
        PHONE_PIN,
        "--url",
        url,
        "--json",
    ];
    if let Some(p) = password {
        args.extend(["--password", p]);
    }
    shomei(&args)
}

/// The Location's `code` after `continue_url`, checking state and iss.
fn continue_to_code(v: &Verifier, login: &Value, state: &str) -> String {
    let resp = http()
        .get(login["continue_url"].as_str().unwrap())
        .send()
        .unwrap();
    let q = redirect_query(&resp, REDIRECT);
    assert_eq!(param(&q, "state"), Some(state), "{q:?}");
    assert_eq!(param(&q, "iss"), Some(v.issuer.as_str()), "{q:?}");
    assert_eq!(param(&q, "error"), None, "{q:?}");
    param(&q, "code").unwrap().to_owned()
}

fn token(v: &Verifier, code: &str, verifier: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", "demo"),
        ("redirect_uri", REDIRECT),
        ("code", code),
    ];
    if let Some(cv) = verifier {
        form.push(("code_verifier", cv));
    }
    let resp = http()
        .post(format!("{}/token", v.issuer))
        .form(&form)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn userinfo_status(v: &Verifier, access_token: &str) -> u16 {
    http()
        .get(format!("{}/userinfo", v.issuer))
        .bearer_auth(access_token)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn jwt_payload(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap()
}

// ---------------------------------------------------------------- scenarios

#[test]
fn oidc_login_with_phone_through_a_real_oidc_client() {
    let w = world();
    let (phone, p) = w.provision("phone1");
    let v = w.verifier(&[
        "--client",
        "demo=http://127.0.0.1/callback",
        "--client",
        "kuyakusho:s3cret-Secret=http://127.0.0.1/rp/cb",
    ]);
    assert_eq!(v.started["clients"], json!(["demo", "kuyakusho"]));
    assert_eq!(
        v.started["discovery"],
        format!("{}/.well-known/openid-configuration", v.issuer)
    );
    let run = |client: &[&str], redirect: &str, scope: &str, password: Option<&str>| {
        let mut cmd = Command::new("python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc_client.py"))
            .args(["--issuer", &v.issuer])
            .args(client)
            .args(["--redirect-uri", redirect, "--scope", scope])
            .args(["--shomei", bin(), "--phone", phone.to_str().unwrap()])
            .args(["--pin", PHONE_PIN]);
        if let Some(pw) = password {
            cmd.args(["--password", pw]);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "oidc_client.py failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        one_json_line(&out)
    };

    // A confidential client (client_secret_basic) asks for the basic four.
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/rp/cb");
    let r = run(
        &[
            "--client-id",
            "kuyakusho",
            "--client-secret",
            "s3cret-Secret",
        ],
        &redirect,
        "openid name address birthdate gender",
        Some(PHONE_PW),
    );
    let c = &r["claims"];
    assert_eq!(r["alg"], "ES256");
    assert_eq!(r["token_type"], "Bearer");
    assert_eq!(r["scope"], "openid name address birthdate gender");
    assert_eq!(r["phone"]["state"], "done");
    assert_eq!(r["phone"]["medium"], "phone");
    assert_eq!(c["iss"], v.issuer.as_str());
    assert_eq!(c["aud"], "kuyakusho");
    assert_eq!(c["nonce"], r["nonce_sent"]);
    assert_eq!(c["shomei_medium"], "phone");
    assert_eq!(c["name"], NAME_KEPT);
    assert_eq!(c["address"], json!({"formatted": ADDRESS}));
    assert_eq!(c["birthdate"], BIRTH);
    assert_eq!(c["gender"], "male");
    assert_eq!(c["amr"], json!(["hwk", "pin", "mfa"]));
    let (iat, exp, auth_time) = (
        c["iat"].as_i64().unwrap(),
        c["exp"].as_i64().unwrap(),
        c["auth_time"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, r["expires_in"].as_i64().unwrap());
    assert!(auth_time <= iat && iat - auth_time < 60, "{c}");
    let sub = c["sub"].as_str().unwrap();
    assert!(sub.len() >= 40, "a pairwise hash: {sub}");
    assert!(!sub.contains(p["auth_serial"].as_str().unwrap()));
    // UserInfo says the same as the ID token.
    let u = &r["userinfo"];
    assert_eq!(u["sub"], sub);
    assert_eq!(u["name"], NAME_KEPT);
    assert_eq!(u["birthdate"], BIRTH);
    assert_eq!(u["gender"], "male");
    assert_eq!(u["shomei_medium"], "phone");
    // The client's own checks refuse what they must.
    assert_eq!(r["wrong_nonce_rejected"], true);
    assert_eq!(r["wrong_aud_rejected"], true);
    assert_eq!(r["tampered_rejected"], true);
    // The replayed code: invalid_grant, and the access token is revoked.
    assert_eq!(r["replay_error"], "invalid_grant");
    assert_eq!(r["userinfo_after_replay"], 401);

    // A public client (PKCE only) asking for `openid` alone: no password,
    // no personal data, and another pairwise subject for the same holder.
    let port = free_port();
    let r2 = run(
        &["--client-id", "demo"],
        &format!("http://127.0.0.1:{port}/callback"),
        "openid",
        None,
    );
    let c2 = &r2["claims"];
    assert_eq!(c2["aud"], "demo");
    assert_eq!(c2["shomei_medium"], "phone");
    for k in ["name", "address", "birthdate", "gender"] {
        assert!(c2.get(k).is_none(), "{k} not released for openid: {c2}");
        assert!(r2["userinfo"].get(k).is_none(), "{k}: {}", r2["userinfo"]);
    }
    assert_ne!(c2["sub"], sub, "subjects are pairwise");
    assert_eq!(r2["userinfo"]["sub"], c2["sub"]);
    assert_eq!(r2["replay_error"], "invalid_grant");
}

#[test]
fn oidc_bad_requests_create_no_session() {
    let w = world();
    let (phone, _) = w.provision("phone1");
    let v = w.verifier(&[]);
    assert_eq!(v.started["clients"], json!(["demo"]));
    let (cv, cc) = pkce("bad");

    // Missing PKCE, plain PKCE, missing nonce / state: back to the client.
    let without = |key: &str| {
        good_params(&cc, "st-1", "n-1")
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect::<Vec<_>>()
    };
    assert_redirected_error(
        authorize(&v, &without("code_challenge")),
        &v,
        "invalid_request",
    );
    assert_redirected_error(
        authorize(&v, &without("code_challenge_method")),
        &v,
        "invalid_request",
    );
    let mut plain = without("code_challenge_method");
    plain.push(("code_challenge_method", "plain"));
    assert_redirected_error(authorize(&v, &plain), &v, "invalid_request");
    let mut plain_verbatim: Vec<_> = without("code_challenge_method")
        .into_iter()
        .filter(|(k, _)| *k != "code_challenge")
        .collect();
    plain_verbatim.extend([
        ("code_challenge", cv.as_str()),
        ("code_challenge_method", "plain"),
    ]);
    assert_redirected_error(authorize(&v, &plain_verbatim), &v, "invalid_request");
    assert_redirected_error(authorize(&v, &without("nonce")), &v, "invalid_request");
    let mut no_openid = without("scope");
    no_openid.push(("scope", "name"));
    assert_redirected_error(authorize(&v, &no_openid), &v, "invalid_scope");
    let mut implicit = without("response_type");
    implicit.push(("response_type", "token"));
    assert_redirected_error(authorize(&v, &implicit), &v, "unsupported_response_type");
    let resp = authorize(&v, &without("state"));
    let q = redirect_query(&resp, REDIRECT);
    assert_eq!(param(&q, "error"), Some("invalid_request"));
    assert_eq!(param(&q, "code"), None);

    // A bad redirect URI or client: 400 here, never a redirect.
    for (key, value, error) in [
        (
            "redirect_uri",
            "http://evil.example/callback",
            "invalid_request",
        ),
        (
            "redirect_uri",
            "http://127.0.0.1:9/elsewhere",
            "invalid_request",
        ),
        ("client_id", "nobody", "invalid_client"),
    ] {
        let mut ps = without(key);
        ps.push((key, value));
        let resp = authorize(&v, &ps);
        assert_eq!(resp.status().as_u16(), 400, "{key}={value}");
        assert!(resp.headers().get("location").is_none());
        let body: Value = resp.json().unwrap();
        assert_eq!(body["error"], error, "{body}");
        assert!(body.get("login_url").is_none());
    }

    // A good request starts a login; before the phone answers there is no code.
    let resp = authorize(&v, &good_params(&cc, "st-1", "n-1"));
    assert_eq!(resp.status().as_u16(), 200);
    let login: Value = resp.json().unwrap();
    assert_eq!(login["expires_in"], 60);
    assert_eq!(login["scopes"], json!(["openid"]));
    let early = http()
        .get(login["continue_url"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(early.status().as_u16(), 409, "pending: no code yet");
    assert!(early.headers().get("location").is_none());

    let ok = json_of(&phone_login(
        &phone,
        login["login_url"].as_str().unwrap(),
        None,
    ));
    assert_eq!(ok["state"], "done");
    assert_eq!(ok["medium"], "phone");
    // The challenge is single use: a second answer on the same URL fails.
    let (code, err) = failure(&phone_login(
        &phone,
        login["login_url"].as_str().unwrap(),
        None,
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("login_used"), "{err}");

    let code = continue_to_code(&v, &login, "st-1");
    // Continuing twice gives no second code.
    let again = http()
        .get(login["continue_url"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
    assert!(again.headers().get("location").is_none());

    // Without or with a wrong code_verifier: invalid_grant (the code stays).
    let (s, e) = token(&v, &code, None);
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (wrong, _) = pkce("other");
    let (s, e) = token(&v, &code, Some(&wrong));
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (s, t) = token(&v, &code, Some(&cv));
    assert_eq!(s, 200, "{t}");
    let claims = jwt_payload(t["id_token"].as_str().unwrap());
    // The client compares the nonce it sent with the ID token's.
    assert_eq!(claims["nonce"], "n-1");
    assert_ne!(claims["nonce"], "n-2");
    assert_eq!(claims["aud"], "demo");
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&v, access), 200);
    // A reused code: invalid_grant, and its access token is revoked.
    let (s, e) = token(&v, &code, Some(&cv));
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    assert_eq!(userinfo_status(&v, access), 401);
    assert_eq!(userinfo_status(&v, "not-a-token"), 401);

    // A basic-four scope without the signing password: refused by the
    // phone before anything is sent, so the challenge can still be answered.
    let resp = authorize(
        &v,
        &without("scope")
            .into_iter()
            .chain([("scope", "openid name")])
            .collect::<Vec<_>>(),
    );
    let login2: Value = resp.json().unwrap();
    let (code, err) = failure(&phone_login(
        &phone,
        login2["login_url"].as_str().unwrap(),
        None,
    ));
    assert_eq!(code, 2);
    assert!(err.contains("--password"), "{err}");
    let status: Value = http()
        .get(login2["status_url"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["state"], "pending");
    // An unknown login id is no session either.
    let resp = http()
        .get(format!("{}/login/nope/continue", v.issuer))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}

#[test]
fn signed_application_verifies_and_names_the_signer() {
    let w = world();
    let (phone, p) = w.provision("phone1");
    let doc = w.path("tennyu.txt");
    std::fs::write(&doc, "転入届: 北海道札幌市中央区1-1\n").unwrap();

    // Signed with the card.
    let card_sig = w.path("card.p7s");
    w.card_sign("sign", &doc, &card_sig);
    let r = json_of(&w.verify(&doc, &card_sig, &[]));
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["status"], "good");
    assert_eq!(r["status_source"], "ocsp", "{r}");
    assert!(r.get("status_detail").is_none(), "{r}");
    assert_eq!(r["kind"], "card");
    assert!(same_serial(&r["serial"], &w.card_sign_serial()), "{r}");
    assert_eq!(r["holder"], the_holder());
    assert!(r.get("error").is_none(), "{r}");

    // Signed with the phone: same holder, kind phone, the phone's serial.
    let phone_sig = w.path("phone.p7s");
    w.phone_sign(&phone, &doc, &phone_sig);
    let r = json_of(&w.verify(&doc, &phone_sig, &[]));
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["status"], "good");
    assert_eq!(r["kind"], "phone");
    assert!(
        same_serial(&r["serial"], p["sign_serial"].as_str().unwrap()),
        "{r}"
    );
    assert_eq!(r["holder"], the_holder());
    // With the status from the CRL shard instead of OCSP: the same.
    let r = json_of(&w.verify(&doc, &phone_sig, &["--status", "crl"]));
    assert_eq!(
        (
            r["valid"].as_bool(),
            r["status"].as_str(),
            r["status_source"].as_str()
        ),
        (Some(true), Some("good"), Some("crl"))
    );

    // The verifier service's endpoint gives the same report.
    let v = w.verifier(&[]);
    let resp = http()
        .post(format!("{}/v1/verify/signature", v.issuer))
        .json(&json!({
            "content": B64.encode(std::fs::read(&doc).unwrap()),
            "signature": B64.encode(std::fs::read(&card_sig).unwrap()),
        }))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let r: Value = resp.json().unwrap();
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["kind"], "card");
    assert_eq!(r["holder"], the_holder());
    let resp = http()
        .post(format!("{}/v1/verify/signature", v.issuer))
        .json(&json!({
            "content": B64.encode(b"something else"),
            "signature": B64.encode(std::fs::read(&card_sig).unwrap()),
        }))
        .send()
        .unwrap();
    let r: Value = resp.json().unwrap();
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(r["error"]["code"], "content_mismatch");
}

/// Changes one digit of the signingTime (a signed attribute) in place.
fn tamper_signing_time(p7s: &mut [u8]) {
    // id-signingTime 1.2.840.113549.1.9.5, then SET { UTCTime (13 bytes) }.
    let oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05,
    ];
    let at = p7s
        .windows(oid.len())
        .position(|w| w == oid)
        .expect("a signingTime attribute");
    let t = at + oid.len();
    assert_eq!(
        &p7s[t..t + 4],
        &[0x31u8, 0x0f, 0x17, 0x0d],
        "SET {{ UTCTime }}"
    );
    // YYMMDDHHMMSSZ: the last digit of the seconds.
    let sec = t + 4 + 11;
    p7s[sec] = if p7s[sec] == b'0' { b'1' } else { b'0' };
}

#[test]
fn verify_signature_names_each_failure() {
    let w = world();
    let (phone, p) = w.provision("phone1");
    let doc = w.path("app.txt");
    std::fs::write(&doc, "申請書 v1").unwrap();
    let card_sig = w.path("card.p7s");
    w.card_sign("sign", &doc, &card_sig);
    let phone_sig = w.path("phone.p7s");
    w.phone_sign(&phone, &doc, &phone_sig);
    let invalid = |doc: &Path, sig: &Path, extra: &[&str], exit: i32| {
        let out = w.verify(doc, sig, extra);
        let (code, err) = failure(&out);
        assert_eq!(code, exit, "{err}");
        let r = one_json_line(&out);
        assert_eq!(r["valid"], false, "{r}");
        assert!(
            err.contains(r["error"]["code"].as_str().unwrap()),
            "{err} / {r}"
        );
        r
    };

    // Other content: exit 1, content_mismatch.
    let other = w.path("other.txt");
    std::fs::write(&other, "申請書 v2").unwrap();
    let r = invalid(&other, &card_sig, &[], 1);
    assert_eq!(r["error"]["code"], "content_mismatch");

    // A signed attribute changed: the signature no longer verifies.
    let mut bytes = std::fs::read(&card_sig).unwrap();
    tamper_signing_time(&mut bytes);
    let tampered = w.path("tampered.p7s");
    std::fs::write(&tampered, &bytes).unwrap();
    let r = invalid(&doc, &tampered, &[], 1);
    assert_eq!(r["error"]["code"], "bad_signature");

    // The authentication key is not for signing applications.
    let auth_sig = w.path("auth.p7s");
    w.card_sign("auth", &doc, &auth_sig);
    let r = invalid(&doc, &auth_sig, &[], 1);
    assert_eq!(r["error"]["code"], "wrong_purpose");

    // Not a signature at all: exit 2, malformed.
    let garbage = w.path("garbage.p7s");
    std::fs::write(&garbage, b"\x30\x03\x02\x01\x00 not CMS").unwrap();
    let r = invalid(&doc, &garbage, &[], 2);
    assert_eq!(r["error"]["code"], "malformed");

    // The phone signing certificate suspended: named, the signer still shown.
    let phone_serial = p["sign_serial"].as_str().unwrap();
    let (s, body) = w.operator(
        &format!("/v1/certificates/{phone_serial}/suspend"),
        json!({"reason": "certificateHold"}),
    );
    assert_eq!(s, 200, "{body}");
    let r = invalid(&doc, &phone_sig, &[], 1);
    assert_eq!(r["status"], "suspended");
    assert_eq!(r["error"]["code"], "suspended");
    assert_eq!(r["kind"], "phone");
    assert_eq!(r["holder"], the_holder());
    // The card's signature is unaffected; resumed, the phone's is good again.
    assert_eq!(json_of(&w.verify(&doc, &card_sig, &[]))["valid"], true);
    let (s, body) = w.operator(
        &format!("/v1/certificates/{phone_serial}/resume"),
        json!({}),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(json_of(&w.verify(&doc, &phone_sig, &[]))["status"], "good");

    // The card signing certificate revoked: revoked by OCSP and by CRL, and
    // the phone certificate derived from it with it.
    let card_serial = w.card_sign_serial();
    let (s, body) = w.operator(
        &format!("/v1/certificates/{card_serial}/revoke"),
        json!({"reason": "keyCompromise"}),
    );
    assert_eq!(s, 200, "{body}");
    for mode in ["ocsp", "crl"] {
        let r = invalid(&doc, &card_sig, &["--status", mode], 1);
        assert_eq!(r["status"], "revoked", "{mode}: {r}");
        assert_eq!(r["error"]["code"], "revoked", "{mode}: {r}");
        assert!(same_serial(&r["serial"], &card_serial), "{r}");
        assert_eq!(r["kind"], "card");
    }
    let r = invalid(&doc, &phone_sig, &[], 1);
    assert_eq!(r["status"], "revoked", "{r}");
}

#[test]
fn openssl_made_signature_verifies_with_ours() {
    let w = world();
    let key = |name: &str| {
        let path = w.path(name);
        let (ok, out) = openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        path
    };
    let csr = |key: &Path, name: &str| {
        let path = w.path(name);
        let (ok, out) = openssl(&[
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/CN=x",
            "-outform",
            "DER",
            "-out",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        B64.encode(std::fs::read(path).unwrap())
    };
    let (sign_key, auth_key) = (key("sign.key"), key("auth.key"));
    let holder = json!({
        "name": "山田 花子",
        "address": "大阪府大阪市北区梅田1-2-3",
        "birth_date": "1975-12-31",
        "sex": "2",
    });
    let (s, card) = w.operator(
        "/v1/cards",
        json!({
            "holder": holder,
            "sign_csr": csr(&sign_key, "sign.csr"),
            "auth_csr": csr(&auth_key, "auth.csr"),
        }),
    );
    assert_eq!(s, 201, "{card}");
    let cert_der = w.path("sign.der");
    std::fs::write(
        &cert_der,
        B64.decode(card["sign_cert"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let cert_pem = w.path("sign.pem");
    let (ok, out) = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        cert_der.to_str().unwrap(),
        "-out",
        cert_pem.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let (ok, serial) = openssl(&[
        "x509",
        "-in",
        cert_pem.to_str().unwrap(),
        "-noout",
        "-serial",
    ]);
    assert!(ok, "{serial}");
    let serial = serial.trim().trim_start_matches("serial=").to_owned();

    let doc = w.path("doc.bin");
    std::fs::write(&doc, b"binary \x00\x01\xff application\r\n").unwrap();
    let p7s = w.path("doc.p7s");
    openssl_cms_sign(&doc, &cert_pem, &sign_key, &p7s, &[]);
    let r = json_of(&w.verify(&doc, &p7s, &[]));
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["status"], "good");
    assert_eq!(r["kind"], "card");
    assert!(same_serial(&r["serial"], &serial), "{r} vs {serial}");
    let mut kept = holder.clone();
    kept["name"] = json!("山田\u{3000}花子");
    assert_eq!(r["holder"], kept);
    // …and over other content, openssl's signature is refused as such.
    let other = w.path("other.bin");
    std::fs::write(&other, b"binary \x00\x01\xff application\n").unwrap();
    let out = w.verify(&other, &p7s, &[]);
    assert_eq!(failure(&out).0, 1);
    assert_eq!(one_json_line(&out)["error"]["code"], "content_mismatch");
    // Without signed attributes (-noattr), openssl's signature is valid
    // CMS but not an application: refused by name, as bad input (exit 2).
    let noattr = w.path("noattr.p7s");
    openssl_cms_sign(&doc, &cert_pem, &sign_key, &noattr, &["-noattr"]);
    let out = w.verify(&doc, &noattr, &[]);
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("signed attributes"), "{err}");
    assert_eq!(one_json_line(&out)["error"]["code"], "malformed");
}

#[test]
fn our_signature_verifies_with_openssl() {
    let w = world();
    let pem = http()
        .get(format!("{}/ca/sign.pem", w.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(
        pem,
        std::fs::read_to_string(w.dir.join("ca/sign.pem")).unwrap(),
        "the trust anchor served is the authority's"
    );
    let sign_pem = w.path("sign-root.pem");
    std::fs::write(&sign_pem, pem).unwrap();
    let doc = w.path("doc.txt");
    std::fs::write(&doc, "確定申告 2026\n").unwrap();
    let verify = |sig: &Path, content: &Path| {
        openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            sig.to_str().unwrap(),
            "-content",
            content.to_str().unwrap(),
            "-CAfile",
            sign_pem.to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
    };
    let sig = w.path("doc.p7s");
    w.card_sign("sign", &doc, &sig);
    let (ok, out) = verify(&sig, &doc);
    assert!(ok && out.contains("Verification successful"), "{out}");
    // openssl refuses what ours refuses: other content, and the
    // authentication key (its root is not the signing root).
    let other = w.path("other.txt");
    std::fs::write(&other, "確定申告 2027\n").unwrap();
    let (ok, out) = verify(&sig, &other);
    assert!(!ok, "{out}");
    let auth_sig = w.path("auth.p7s");
    w.card_sign("auth", &doc, &auth_sig);
    let (ok, out) = verify(&auth_sig, &doc);
    assert!(!ok, "{out}");
    // And the signer openssl names is the card's signing certificate.
    let certs = w.path("signer.pem");
    let (ok, out) = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        sig.to_str().unwrap(),
        "-content",
        doc.to_str().unwrap(),
        "-CAfile",
        sign_pem.to_str().unwrap(),
        "-purpose",
        "any",
        "-signer",
        certs.to_str().unwrap(),
        "-out",
        "/dev/null",
    ]);
    assert!(ok, "{out}");
    let (ok, serial) = openssl(&["x509", "-in", certs.to_str().unwrap(), "-noout", "-serial"]);
    assert!(ok, "{serial}");
    assert!(
        serial
            .trim()
            .trim_start_matches("serial=")
            .eq_ignore_ascii_case(&w.card_sign_serial()),
        "{serial}"
    );
}

#[test]
fn login_shows_in_holder_history() {
    let w = world();
    let (phone, p) = w.provision("phone1");
    let auth_serial = p["auth_serial"].as_str().unwrap().to_owned();
    let used = |events: &[Value], via: &str| {
        events
            .iter()
            .filter(|e| {
                e["action"] == "used"
                    && same_serial(&e["serial"], &auth_serial)
                    && e["detail"]["via"] == via
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        used(&w.events(), "ocsp").is_empty(),
        "no use before the login"
    );

    // A relying party with a linkage token, so its lookup is seen too.
    let (s, rp) = w.operator("/v1/relying-parties", json!({"name": "kuyakusho"}));
    assert_eq!(s, 201, "{rp}");
    let token_file = w.path("rp.token");
    std::fs::write(&token_file, rp["token"].as_str().unwrap()).unwrap();
    let v = w.verifier(&["--rp-token-file", token_file.to_str().unwrap()]);
    assert_eq!(v.started["linkage"], true);

    let (cv, cc) = pkce("history");
    let login: Value = authorize(&v, &good_params(&cc, "st-h", "n-h"))
        .json()
        .unwrap();
    json_of(&phone_login(
        &phone,
        login["login_url"].as_str().unwrap(),
        None,
    ));
    let code = continue_to_code(&v, &login, "st-h");
    let (s, t) = token(&v, &code, Some(&cv));
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        jwt_payload(t["id_token"].as_str().unwrap())["shomei_medium"],
        "phone"
    );

    // Uses are recorded off the OCSP path (batched): poll a little.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (ocsp, linkage) = loop {
        let events = w.events();
        let (o, l) = (used(&events, "ocsp"), used(&events, "linkage"));
        if (!o.is_empty() && !l.is_empty()) || Instant::now() > deadline {
            break (o, l);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ocsp.len(), 1, "one OCSP use: {ocsp:?}");
    assert_eq!(linkage.len(), 1, "one linkage use: {linkage:?}");
    assert!(
        linkage[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("relying_party:"),
        "{linkage:?}"
    );
    // No personal data in the history.
    let all = serde_json::to_string(&w.events()).unwrap();
    for secret in [NAME, NAME_KEPT, ADDRESS, BIRTH] {
        assert!(!all.contains(secret), "{secret} in the history: {all}");
    }
}

/// One full login with `answer` answering the login URL; the ID token's claims.
fn login_with(v: &Verifier, seed: &str, answer: impl FnOnce(&str) -> Output) -> Value {
    let (cv, cc) = pkce(seed);
    let state = format!("st-{seed}");
    let nonce = format!("n-{seed}");
    let login: Value = authorize(v, &good_params(&cc, &state, &nonce))
        .json()
        .unwrap();
    let out = json_of(&answer(login["login_url"].as_str().unwrap()));
    assert_eq!(out["state"], "done", "{out}");
    let code = continue_to_code(v, &login, &state);
    let (s, t) = token(v, &code, Some(&cv));
    assert_eq!(s, 200, "{t}");
    let claims = jwt_payload(t["id_token"].as_str().unwrap());
    assert_eq!(claims["nonce"], nonce.as_str());
    claims
}

#[test]
fn same_subject_on_card_and_phone_and_after_a_new_phone() {
    let w = world();
    let (s, rp) = w.operator("/v1/relying-parties", json!({"name": "bank"}));
    assert_eq!(s, 201, "{rp}");
    let token_file = w.path("rp.token");
    std::fs::write(&token_file, rp["token"].as_str().unwrap()).unwrap();
    let v = w.verifier(&["--rp-token-file", token_file.to_str().unwrap()]);

    // The card itself (`card login`).
    let card = login_with(&v, "card", |url| {
        shomei(&[
            "card",
            "login",
            "--card",
            w.card.to_str().unwrap(),
            "--pin",
            CARD_PIN,
            "--url",
            url,
            "--json",
        ])
    });
    assert_eq!(card["shomei_medium"], "card");
    let sub = card["sub"].as_str().unwrap().to_owned();

    // The phone, by PIN: the same person, so the same subject.
    let (phone, _) = w.provision("phone1");
    let template = w.path("finger.tpl");
    std::fs::write(&template, b"left index finger minutiae").unwrap();
    json_of(&shomei(&[
        "phone",
        "biometric",
        "enrol",
        "--phone",
        phone.to_str().unwrap(),
        "--template-file",
        template.to_str().unwrap(),
        "--json",
    ]));
    let by_pin = login_with(&v, "pin", |url| phone_login(&phone, url, None));
    assert_eq!(by_pin["shomei_medium"], "phone");
    assert_eq!(
        by_pin["sub"],
        sub.as_str(),
        "card and phone share the subject"
    );
    assert!(by_pin["amr"].as_array().unwrap().contains(&json!("pin")));

    // The enrolled finger (bare `--biometric`), once the PIN was entered.
    let by_finger = login_with(&v, "bio", |url| {
        shomei(&[
            "phone",
            "login",
            "--phone",
            phone.to_str().unwrap(),
            "--biometric",
            "--url",
            url,
            "--json",
        ])
    });
    assert_eq!(by_finger["sub"], sub.as_str());
    let amr = by_finger["amr"].as_array().unwrap();
    assert!(
        amr.contains(&json!("user")) && !amr.contains(&json!("pin")),
        "{amr:?}"
    );

    // A new phone ends the old one; the subject stays.
    let (phone2, _) = w.provision("phone2");
    let new_phone = login_with(&v, "new", |url| phone_login(&phone2, url, None));
    assert_eq!(
        new_phone["sub"],
        sub.as_str(),
        "stable across a phone change"
    );

    // The old phone's certificate is superseded: its login is refused and
    // no code is issued.
    let (_, cc) = pkce("old");
    let login: Value = authorize(&v, &good_params(&cc, "st-old", "n-old"))
        .json()
        .unwrap();
    let (code, msg) = failure(&phone_login(
        &phone,
        login["login_url"].as_str().unwrap(),
        None,
    ));
    assert_ne!(code, 0);
    assert!(msg.contains("revoked"), "{msg}");
    let resp = http()
        .get(login["continue_url"].as_str().unwrap())
        .send()
        .unwrap();
    let q = redirect_query(&resp, REDIRECT);
    assert_eq!(param(&q, "error"), Some("access_denied"), "{q:?}");
    assert_eq!(param(&q, "code"), None);
}

// ------------------------------------------------- hostile login pages

/// A login page run by someone else: serves `offer` (with its own issuer
/// and the challenge it chose) and keeps every answer posted to it.
struct HostilePage {
    url: String,
    answers: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl HostilePage {
    fn start(offer: impl Fn(&str) -> Value + Send + 'static) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (kept, iss) = (answers.clone(), issuer.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let mut reader = BufReader::new(conn);
                // One connection may carry several requests (keep-alive).
                loop {
                    let mut head = String::new();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    if head.is_empty() {
                        break;
                    }
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|n| n.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).unwrap();
                    let reply = if head.starts_with("POST") {
                        kept.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        json!({"state": "done", "medium": "card"})
                    } else {
                        offer(&iss)
                    }
                    .to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if reader.get_mut().write_all(resp.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        Self {
            url: format!("{issuer}/login/abc"),
            answers,
        }
    }

    fn answers(&self) -> Vec<Value> {
        self.answers.lock().unwrap().clone()
    }
}

fn hostile_offer(issuer: &str, challenge: &[u8], consent: bool) -> Value {
    json!({
        "challenge": B64URL.encode(challenge),
        "issuer": issuer,
        "client_id": "evil",
        "scopes": if consent { json!(["openid", "name"]) } else { json!(["openid"]) },
        "needs_signing_key": consent,
    })
}

impl World {
    fn card_login(&self, url: &str, password: Option<&str>) -> Output {
        let mut args = vec![
            "card",
            "login",
            "--card",
            self.card.to_str().unwrap(),
            "--pin",
            CARD_PIN,
            "--url",
            url,
            "--json",
        ];
        if let Some(p) = password {
            args.extend(["--password", p]);
        }
        shomei(&args)
    }
}

/// The DER `SET OF` signed attributes of one of our detached signatures
/// (what its signature covers): the `[0]` after the SignerInfo's SHA-256
/// digestAlgorithm, re-tagged 0x31.
fn signed_attributes(p7s: &[u8]) -> Vec<u8> {
    let sha256 = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let at = p7s
        .windows(sha256.len())
        .rposition(|w| w == sha256)
        .expect("the SignerInfo's digestAlgorithm");
    let mut i = at + sha256.len();
    if p7s[i..].starts_with(&[0x05, 0x00]) {
        i += 2;
    }
    assert_eq!(p7s[i], 0xa0, "signedAttrs [0]");
    let (len, hdr) = match p7s[i + 1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (p7s[i + 2] as usize, 3),
        0x82 => ((p7s[i + 2] as usize) << 8 | p7s[i + 3] as usize, 4),
        n => panic!("length form {n:#x}"),
    };
    let mut set = p7s[i..i + hdr + len].to_vec();
    set[0] = 0x31;
    set
}

#[test]
fn hostile_login_page_cannot_get_a_document_signed() {
    let w = world();
    let doc = w.path("transfer.txt");
    std::fs::write(&doc, "振込依頼: 全額を攻撃者の口座へ\n").unwrap();
    let honest = w.path("honest.p7s");
    w.card_sign("sign", &doc, &honest);
    let p7s = std::fs::read(&honest).unwrap();
    assert_eq!(json_of(&w.verify(&doc, &honest, &[]))["valid"], true);
    let attrs = signed_attributes(&p7s);
    assert_eq!(attrs[0], 0x31);

    // The page passes the document's signed attributes off as the
    // challenge: the card refuses before any key is unlocked.
    let a = attrs.clone();
    let page = HostilePage::start(move |iss| hostile_offer(iss, &a, true));
    let (code, err) = failure(&w.card_login(&page.url, Some(CARD_PW)));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("challenge"), "{err}");
    assert!(page.answers().is_empty(), "nothing was signed or sent");

    // A page whose issuer is not its URL's is refused too.
    let ch = [0x42u8; 32];
    let liar = HostilePage::start(move |_| hostile_offer("http://127.0.0.1:1", &ch, true));
    let (code, err) = failure(&w.card_login(&liar.url, Some(CARD_PW)));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("issuer"), "{err}");
    assert!(liar.answers().is_empty());

    // A well-formed challenge (the attributes' first 32 bytes) is answered,
    // but what the signing key signed is the consent login message: put in
    // the place of the document's signature, it does not verify.
    let a = attrs[..32].to_vec();
    let page = HostilePage::start(move |iss| hostile_offer(iss, &a, true));
    json_of(&w.card_login(&page.url, Some(CARD_PW)));
    let answers = page.answers();
    assert_eq!(answers.len(), 1);
    let consent = B64
        .decode(answers[0]["sign_signature"].as_str().unwrap())
        .unwrap();
    assert_eq!(consent.len(), 256, "RSA-2048");
    // Our SignerInfo is last and ends with its signature.
    let mut forged = p7s.clone();
    let n = forged.len();
    forged[n - 256..].copy_from_slice(&consent);
    let forged_path = w.path("forged.p7s");
    std::fs::write(&forged_path, &forged).unwrap();
    let out = w.verify(&doc, &forged_path, &[]);
    assert_eq!(failure(&out).0, 1);
    assert_eq!(one_json_line(&out)["error"]["code"], "bad_signature");
    // (The splice itself is sound: the honest signature put back verifies.)
    forged[n - 256..].copy_from_slice(&p7s[n - 256..]);
    std::fs::write(&forged_path, &forged).unwrap();
    assert_eq!(json_of(&w.verify(&doc, &forged_path, &[]))["valid"], true);
}

#[test]
fn hostile_login_page_cannot_get_a_revocation_proof() {
    let w = world();
    let auth_serial = w.issued["auth_serial"].as_str().unwrap().to_owned();
    let target: shomei_core::Serial = auth_serial.parse().unwrap();
    let fresh_challenge = || {
        let v: Value = http()
            .post(format!("{}/v1/challenges", w.url))
            .send()
            .unwrap()
            .json()
            .unwrap();
        B64.decode(v["challenge"].as_str().unwrap()).unwrap()
    };

    // The authority's holder-proof message passed off as the challenge:
    // refused by the card before the PIN is used.
    let proof = shomei_ca::holder_proof_message("revoke", &target, &fresh_challenge());
    let page = HostilePage::start(move |iss| hostile_offer(iss, &proof, false));
    let (code, err) = failure(&w.card_login(&page.url, None));
    assert_eq!(code, 2, "{err}");
    assert!(page.answers().is_empty());

    // The authority's own challenge as the login challenge: the card
    // answers (it looks like any challenge), but the authentication
    // signature is over the login message, so the authority refuses it as
    // a proof and the certificate stays good.
    let challenge = fresh_challenge();
    assert_eq!(
        challenge.len(),
        32,
        "the authority's challenges are 32 bytes too"
    );
    let ch = challenge.clone();
    let page = HostilePage::start(move |iss| hostile_offer(iss, &ch, false));
    json_of(&w.card_login(&page.url, None));
    let answers = page.answers();
    assert_eq!(answers.len(), 1);
    let resp = http()
        .post(format!("{}/v1/certificates/{auth_serial}/revoke", w.url))
        .json(&json!({
            "reason": "keyCompromise",
            "proof": {
                "certificate": answers[0]["auth_certificate"],
                "challenge": B64.encode(&challenge),
                "signature": answers[0]["auth_signature"],
            },
        }))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().unwrap_or(Value::Null);
    assert!((400..500).contains(&status), "refused: {status} {body}");
    let st: Value = http()
        .get(format!("{}/v1/certificates/{auth_serial}", w.url))
        .bearer_auth(&w.token)
        .send()
        .unwrap()
        .json()
        .unwrap_or(Value::Null);
    assert_ne!(st["status"], "revoked", "{st}");
    // The card still logs in, so its certificate is good.
    let v = w.verifier(&[]);
    let claims = login_with(&v, "after", |url| w.card_login(url, None));
    assert_eq!(claims["shomei_medium"], "card");
}

#[test]
fn verify_signature_names_unknown_root_and_expired_signer_cli_and_http() {
    let w = world();
    let doc = w.path("app.txt");
    std::fs::write(&doc, "申請書\n").unwrap();

    // A stranger's self-signed certificate, signed by openssl.
    let (key, cert) = (w.path("stranger.key"), w.path("stranger.pem"));
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-subj",
        "/CN=stranger",
        "-days",
        "30",
    ]);
    assert!(ok, "{out}");
    let stranger = w.path("stranger.p7s");
    openssl_cms_sign(&doc, &cert, &key, &stranger, &[]);
    let out = w.verify(&doc, &stranger, &[]);
    let (code, err) = failure(&out);
    assert_eq!(
        code, 1,
        "a signature that does not verify, not bad input: {err}"
    );
    let r = one_json_line(&out);
    assert_eq!(
        (&r["valid"], &r["error"]["code"]),
        (&json!(false), &json!("unknown_root")),
        "{r}"
    );

    // The same, with the content attached (not a detached signature): bad
    // input, exit 2.
    let attached = w.path("attached.p7s");
    openssl_cms_sign(&doc, &cert, &key, &attached, &["-nodetach"]);
    let out = w.verify(&doc, &attached, &[]);
    let (code, err) = failure(&out);
    assert_eq!(code, 2, "{err}");
    assert_eq!(one_json_line(&out)["error"]["code"], "unsupported");

    // A signing certificate of this authority that expired years ago (the
    // authority's own root, a past validity), signed while it was valid.
    let home = shomei_authority_server::home::Home::open(&w.dir).unwrap();
    let signer = shomei_pki::RsaSigner::generate().unwrap();
    let csr =
        shomei_pki::csr::check_csr(&shomei_pki::csr::build_csr(&signer, "x").unwrap()).unwrap();
    let holder = shomei_core::BasicFour::new(
        NAME,
        ADDRESS,
        BIRTH.parse::<shomei_core::BirthDate>().unwrap(),
        shomei_core::Sex::Male,
    )
    .unwrap();
    let then = time::macros::datetime!(2015-04-01 00:00:00 UTC);
    let old_cert = shomei_pki::profile::issue_end_entity(
        &home.sign_root,
        &shomei_pki::profile::PublicationPoints::new(&w.url),
        &shomei_pki::profile::EndEntityRequest {
            class: shomei_core::CertClass::CardSign,
            csr: &csr,
            holder: &holder,
            serial: &shomei_core::Serial::from_be_bytes(&[0x7e, 0x01, 0x02]).unwrap(),
            now: then,
            not_after: then + time::Duration::days(365),
            shard: 0,
        },
    )
    .unwrap();
    let old_p7s = shomei_pki::cms::sign_detached(
        &std::fs::read(&doc).unwrap(),
        &old_cert,
        &[],
        &signer,
        then,
    )
    .unwrap();
    let expired = w.path("expired.p7s");
    std::fs::write(&expired, &old_p7s).unwrap();
    let out = w.verify(&doc, &expired, &[]);
    let (code, err) = failure(&out);
    assert_eq!(code, 1, "{err}");
    let r = one_json_line(&out);
    assert_eq!(
        (&r["valid"], &r["error"]["code"]),
        (&json!(false), &json!("expired")),
        "{r}"
    );
    assert!(err.contains("expired"), "{err}");

    // The verifier service's endpoint: the same names (200, valid false),
    // and a 400 problem for what is not a signature.
    let v = w.verifier(&[]);
    let post = |content: &[u8], sig: &[u8]| {
        let resp = http()
            .post(format!("{}/v1/verify/signature", v.issuer))
            .json(&json!({"content": B64.encode(content), "signature": B64.encode(sig)}))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        (status, ct, resp.json::<Value>().unwrap())
    };
    let content = std::fs::read(&doc).unwrap();
    for (sig, code) in [
        (std::fs::read(&stranger).unwrap(), "unknown_root"),
        (old_p7s, "expired"),
    ] {
        let (s, _, r) = post(&content, &sig);
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            (&r["valid"], &r["error"]["code"]),
            (&json!(false), &json!(code)),
            "{r}"
        );
    }
    for (sig, code) in [
        (b"\x30\x03\x02\x01\x00 not CMS".to_vec(), "malformed"),
        (std::fs::read(&attached).unwrap(), "unsupported"),
    ] {
        let (s, ct, r) = post(&content, &sig);
        assert_eq!(s, 400, "{r}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(r["code"], code, "{r}");
    }
}

#[test]
fn a_bad_answer_does_not_end_the_login() {
    let w = world();
    let (phone, _) = w.provision("phone1");
    let v = w.verifier(&[]);
    let (cv, cc) = pkce("garbage");
    let login: Value = authorize(&v, &good_params(&cc, "st-g", "n-g"))
        .json()
        .unwrap();
    let url = login["login_url"].as_str().unwrap();
    let post = |body: Value| {
        let resp = http().post(url).json(&body).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap())
    };
    let state = || -> Value {
        http()
            .get(login["status_url"].as_str().unwrap())
            .send()
            .unwrap()
            .json()
            .unwrap()
    };

    // Another holder's revoked authentication certificate, with a
    // signature its key never made: not the holder's answer, so neither
    // "revoked" nor the end of the login.
    let other = w.path("other.card");
    let issued = json_of(&shomei(&[
        "card",
        "issue",
        "--authority",
        &w.url,
        "--operator-token-file",
        w.dir.join("operator.token").to_str().unwrap(),
        "--name",
        "佐藤 次郎",
        "--address",
        ADDRESS,
        "--birth",
        "1970-01-01",
        "--sex",
        "1",
        "--sign-password",
        CARD_PW,
        "--auth-pin",
        CARD_PIN,
        "--out",
        other.to_str().unwrap(),
        "--json",
    ]));
    let other_auth = w.path("other-auth.der");
    json_of(&shomei(&[
        "card",
        "read-cert",
        "--card",
        other.to_str().unwrap(),
        "--kind",
        "auth",
        "--out",
        other_auth.to_str().unwrap(),
        "--json",
    ]));
    let serial = issued["auth_serial"].as_str().unwrap();
    let (s, body) = w.operator(
        &format!("/v1/certificates/{serial}/revoke"),
        json!({"reason": "keyCompromise"}),
    );
    assert_eq!(s, 200, "{body}");
    let cert = B64.encode(std::fs::read(&other_auth).unwrap());
    let (s, e) = post(json!({"auth_certificate": cert, "auth_signature": B64.encode([7u8; 256])}));
    assert_eq!((s, e["code"].as_str()), (422, Some("bad_signature")), "{e}");
    // Not a certificate at all; not base64; not the JSON shape.
    let (s, e) = post(json!({"auth_certificate": B64.encode(b"junk"), "auth_signature": "AAAA"}));
    assert_eq!((s, e["code"].as_str()), (400, Some("malformed")), "{e}");
    let (s, e) = post(json!({"auth_certificate": "!!", "auth_signature": "AAAA"}));
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_base64")), "{e}");
    let (s, e) = post(json!({"nothing": true}));
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")), "{e}");
    assert_eq!(state()["state"], "pending", "garbage ended nothing");

    // The holder's answer still logs in; after it, the login is used.
    let ok = json_of(&phone_login(&phone, url, None));
    assert_eq!(ok["state"], "done");
    let (s, e) = post(json!({"auth_certificate": cert, "auth_signature": B64.encode([7u8; 256])}));
    assert_eq!((s, e["code"].as_str()), (410, Some("login_used")), "{e}");
    let code = continue_to_code(&v, &login, "st-g");
    let (s, t) = token(&v, &code, Some(&cv));
    assert_eq!(s, 200, "{t}");
}

/// `openssl x509 -fingerprint -sha256` of a PEM file: `AB:CD:…`.
fn openssl_fingerprint(pem: &Path) -> String {
    let (ok, out) = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    out.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .trim()
        .to_ascii_uppercase()
}

#[test]
fn pinned_roots_are_the_only_trust_anchors() {
    let w = world();
    let doc = w.path("app.txt");
    std::fs::write(&doc, "申請書\n").unwrap();
    let sig = w.path("app.p7s");
    w.card_sign("sign", &doc, &sig);
    let (ours_sign, ours_auth) = (w.dir.join("ca/sign.pem"), w.dir.join("ca/auth.pem"));
    let pins = |sign: &Path, auth: &Path| {
        vec![
            "--sign-root".to_owned(),
            sign.to_str().unwrap().to_owned(),
            "--auth-root".to_owned(),
            auth.to_str().unwrap().to_owned(),
        ]
    };
    let verify = |extra: &[String]| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        w.verify(&doc, &sig, &extra)
    };

    // Our authority's roots pinned: good, as when fetched; with the real
    // JPKI roots beside them, too.
    let ours = pins(&ours_sign, &ours_auth);
    for extra in [
        ours.clone(),
        [ours.clone(), vec!["--jpki-roots".into()]].concat(),
    ] {
        let r = json_of(&verify(&extra));
        assert_eq!(
            (&r["valid"], &r["status"], &r["status_source"], &r["source"]),
            (
                &json!(true),
                &json!("good"),
                &json!("ocsp"),
                &json!("shomei")
            ),
            "{extra:?}: {r}"
        );
    }

    // Another authority's roots pinned: the URL still serves the real
    // roots, but they are not trusted, so a good signature fails.
    let other = w.path("other-authority");
    json_of(&shomei(&[
        "authority",
        "init",
        "--data",
        other.to_str().unwrap(),
        "--base-url",
        "http://127.0.0.1:9",
        "--json",
    ]));
    let theirs = pins(&other.join("ca/sign.pem"), &other.join("ca/auth.pem"));
    let out = verify(&theirs);
    let (code, err) = failure(&out);
    assert_eq!(code, 1, "{err}");
    let r = one_json_line(&out);
    assert_eq!(
        (&r["valid"], &r["error"]["code"]),
        (&json!(false), &json!("unknown_root")),
        "{r}"
    );
    assert!(err.contains("unknown_root"), "{err}");

    // Bad pins are bad input (exit 2, one stderr line): not PEM, no
    // certificate, no such file, only one of the pair.
    let garbage = w.path("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = w.path("text.pem");
    std::fs::write(&text, "not a certificate\n").unwrap();
    let missing = w.path("missing.pem");
    for (extra, names) in [
        (pins(&garbage, &ours_auth), "--sign-root"),
        (pins(&ours_sign, &text), "--auth-root"),
        (pins(&missing, &ours_auth), "--sign-root"),
        (
            vec!["--sign-root".into(), ours_sign.to_str().unwrap().to_owned()],
            "--auth-root",
        ),
    ] {
        let out = verify(&extra);
        let (code, err) = failure(&out);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(names), "{extra:?}: {err}");
        assert!(out.stdout.is_empty(), "{extra:?}");
    }

    // `verifier serve` says where its roots came from, with fingerprints
    // an operator can compare with openssl's before pinning.
    let fps = json!({
        "sign_sha256": [openssl_fingerprint(&ours_sign)],
        "auth_sha256": [openssl_fingerprint(&ours_auth)],
    });
    let v = w.verifier(&[]);
    let anchors = &v.started["trust_anchors"];
    assert_eq!(anchors["origin"], "fetched", "{}", v.started);
    assert_eq!(
        (&anchors["sign_sha256"], &anchors["auth_sha256"]),
        (&fps["sign_sha256"], &fps["auth_sha256"])
    );
    let ours_ref: Vec<&str> = ours.iter().map(String::as_str).collect();
    let v = w.verifier(&ours_ref);
    let anchors = &v.started["trust_anchors"];
    assert_eq!(anchors["origin"], "pinned", "{}", v.started);
    assert_eq!(anchors["sign_sha256"], fps["sign_sha256"]);
    // Pinned to the other authority, the service refuses our signature.
    let theirs_ref: Vec<&str> = theirs.iter().map(String::as_str).collect();
    let v = w.verifier(&theirs_ref);
    let r: Value = http()
        .post(format!("{}/v1/verify/signature", v.issuer))
        .json(&json!({
            "content": B64.encode(std::fs::read(&doc).unwrap()),
            "signature": B64.encode(std::fs::read(&sig).unwrap()),
        }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (&r["valid"], &r["error"]["code"]),
        (&json!(false), &json!("unknown_root")),
        "{r}"
    );
}

/// The JWKS `kid` a running verifier serves.
fn served_kid(v: &Verifier) -> String {
    let jwks: Value = http()
        .get(format!("{}/jwks", v.issuer))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    keys[0]["kid"].as_str().unwrap().to_owned()
}

#[test]
fn id_token_key_file_is_made_once_and_kept_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let w = world();
    let key = w.path("id-token.p8");
    let key_arg = key.to_str().unwrap();

    // First start: the file does not exist, so it is made (0600) and used.
    let v = w.verifier(&["--key", key_arg]);
    let started = &v.started["id_token_key"];
    assert_eq!(started["origin"], "created", "{}", v.started);
    let kid = served_kid(&v);
    assert_eq!(started["kid"], kid.as_str());
    drop(v);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let der = std::fs::read(&key).unwrap();
    // A PKCS#8 P-256 key as openssl reads it.
    let (ok, text) = openssl(&["pkey", "-inform", "DER", "-in", key_arg, "-noout", "-text"]);
    assert!(ok && text.contains("prime256v1"), "{text}");
    // Only the key file: no temporary file left beside it.
    let names: Vec<String> = std::fs::read_dir(w.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("id-token"))
        .collect();
    assert_eq!(names, vec!["id-token.p8".to_owned()]);

    // Restarted with the same file: loaded, same kid, file untouched.
    let v = w.verifier(&["--key", key_arg]);
    assert_eq!(v.started["id_token_key"]["origin"], "loaded");
    assert_eq!(served_kid(&v), kid);
    drop(v);
    assert_eq!(std::fs::read(&key).unwrap(), der);

    // Without --key: an ephemeral key, said so, another kid each start.
    let a = w.verifier(&[]);
    let b = w.verifier(&[]);
    assert_eq!(a.started["id_token_key"]["origin"], "ephemeral");
    let (ka, kb) = (served_kid(&a), served_kid(&b));
    assert!(ka != kid && kb != kid && ka != kb, "{ka} {kb} {kid}");

    // A key file that is not such a key, or cannot be read (a folder), or
    // a folder that does not exist: exit 2, one stderr line, nothing
    // changed.
    let garbage = w.path("garbage.p8");
    std::fs::write(&garbage, b"not a key").unwrap();
    let rsa = w.path("rsa.p8");
    let (ok, out) = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-outform",
        "DER",
        "-out",
        rsa.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let folder = w.path("a-folder");
    std::fs::create_dir(&folder).unwrap();
    let missing_dir = w.path("no-such-folder/key.p8");
    for bad in [&garbage, &rsa, &folder, &missing_dir] {
        let before = std::fs::read(bad).ok();
        let out = shomei(&[
            "verifier",
            "serve",
            "--authority",
            &w.url,
            "--listen",
            "127.0.0.1:0",
            "--key",
            bad.to_str().unwrap(),
            "--json",
        ]);
        let (code, err) = failure(&out);
        assert_eq!(code, 2, "{}: {err}", bad.display());
        assert!(err.contains("--key"), "{err}");
        assert!(out.stdout.is_empty());
        assert_eq!(std::fs::read(bad).ok(), before);
    }
    assert!(!missing_dir.exists());
    // A good new key path with another argument wrong: exit 2 and no key
    // file made (the key is created only after every other check).
    let unmade = w.path("unmade.p8");
    let out = shomei(&[
        "verifier",
        "serve",
        "--authority",
        &w.url,
        "--listen",
        "127.0.0.1:0",
        "--key",
        unmade.to_str().unwrap(),
        "--sign-root",
        unmade.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(failure(&out).0, 2);
    assert!(!unmade.exists(), "bad input created the key file");
}
