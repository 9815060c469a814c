//! The `shomei` binary as outside tools drive it (CONTRACT.md): exit codes,
//! `--json`, and the card commands checked with openssl.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{json_of, shomei, stderr_line};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Authority {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    url: String,
    child: Child,
}

impl Drop for Authority {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn authority() -> Authority {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("auth");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = shomei(&[
        "authority",
        "init",
        "--data",
        dir.to_str().unwrap(),
        "--base-url",
        &url,
        "--crl-shards",
        "2",
        "--json",
    ]);
    let v = json_of(&out);
    assert!(Path::new(v["operator_token_file"].as_str().unwrap()).exists());
    #[allow(clippy::zombie_processes)] // Authority::drop kills and waits
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
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Authority {
                _tmp: tmp,
                dir,
                url,
                child,
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("authority did not start");
}

/// `card issue`'s arguments for 鈴木 一郎 born `birth`, into `card`: no
/// secrets and no `--json`, for the caller to add.
fn issue_args(a: &Authority, card: &Path, birth: &str) -> Vec<String> {
    [
        "card",
        "issue",
        "--authority",
        &a.url,
        "--operator-token-file",
        a.dir.join("operator.token").to_str().unwrap(),
        "--name",
        "鈴木 一郎",
        "--address",
        "北海道札幌市中央区1-1",
        "--birth",
        birth,
        "--sex",
        "1",
        "--out",
        card.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `card issue` with the password SUZUKI01, the PIN 4321, `--json` and `extra`.
fn issue_with(a: &Authority, card: &Path, birth: &str, extra: &[&str]) -> Output {
    let mut args = issue_args(a, card, birth);
    args.extend(
        [
            "--sign-password",
            "SUZUKI01",
            "--auth-pin",
            "4321",
            "--json",
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned()),
    );
    shomei(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn issue(a: &Authority, card: &Path, birth: &str) -> Output {
    issue_with(a, card, birth, &[])
}

#[test]
fn second_authority_init_is_refused_with_exit_2_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    assert!(
        shomei(&["authority", "init", "--data", dir.to_str().unwrap()])
            .status
            .success()
    );
    let token = std::fs::read(dir.join("operator.token")).unwrap();
    let out = shomei(&["authority", "init", "--data", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("already holds an authority"));
    assert_eq!(std::fs::read(dir.join("operator.token")).unwrap(), token);
    let out = shomei(&[
        "authority",
        "serve",
        "--data",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn card_issue_sign_and_openssl_cms_verify() {
    let a = authority();
    let card = a.dir.join("ichiro.card");
    let v = json_of(&issue(&a, &card, "1985-06-15"));
    let sign_serial = v["sign_serial"].as_str().unwrap().to_owned();

    // Status needs no PIN; the signing serial is not shown without the password.
    let st = json_of(&shomei(&[
        "card",
        "status",
        "--card",
        card.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(st["auth_pin_tries_left"], 3);
    assert_eq!(st["sign_password_tries_left"], 5);
    assert_eq!(st["auth_serial"], v["auth_serial"]);

    // read-cert: the signing certificate needs the password; openssl reads it.
    let der = a.dir.join("sign.der");
    let out = shomei(&[
        "card",
        "read-cert",
        "--card",
        card.to_str().unwrap(),
        "--kind",
        "sign",
        "--out",
        der.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "password required");
    json_of(&shomei(&[
        "card",
        "read-cert",
        "--card",
        card.to_str().unwrap(),
        "--kind",
        "sign",
        "--password",
        "SUZUKI01",
        "--out",
        der.to_str().unwrap(),
        "--json",
    ]));
    let x = Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-in",
            der.to_str().unwrap(),
            "-noout",
            "-serial",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&x.stdout).trim(),
        format!("serial={sign_serial}")
    );

    // sign → openssl cms -verify with the authority's signing root.
    let doc = a.dir.join("doc.txt");
    std::fs::write(&doc, "申請書\n").unwrap();
    let p7s = a.dir.join("doc.txt.p7s");
    json_of(&shomei(&[
        "card",
        "sign",
        "--card",
        card.to_str().unwrap(),
        "--kind",
        "sign",
        "--password",
        "SUZUKI01",
        "--in",
        doc.to_str().unwrap(),
        "--out",
        p7s.to_str().unwrap(),
        "--json",
    ]));
    let ca = a.dir.join("ca/sign.pem");
    let out = Command::new("openssl")
        .args([
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
            ca.to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Tampered content fails.
    std::fs::write(&doc, "改ざん\n").unwrap();
    let out = Command::new("openssl")
        .args([
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
            ca.to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // The authentication key signs too (login-style), with the PIN.
    let p7s_auth = a.dir.join("doc.auth.p7s");
    json_of(&shomei(&[
        "card",
        "sign",
        "--card",
        card.to_str().unwrap(),
        "--kind",
        "auth",
        "--pin",
        "4321",
        "--in",
        doc.to_str().unwrap(),
        "--out",
        p7s_auth.to_str().unwrap(),
        "--json",
    ]));
    let out = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            p7s_auth.to_str().unwrap(),
            "-content",
            doc.to_str().unwrap(),
            "-CAfile",
            a.dir.join("ca/auth.pem").to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Issuing onto an existing card file is refused and leaves it alone.
    let before = std::fs::read(&card).unwrap();
    let out = issue(&a, &card, "1985-06-15");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&card).unwrap(), before);
}

#[test]
fn wrong_pin_is_counted_on_the_card_and_blocks_after_three() {
    let a = authority();
    let card = a.dir.join("c.card");
    json_of(&issue(&a, &card, "1985-06-15"));
    let doc = a.dir.join("d");
    std::fs::write(&doc, "x").unwrap();
    let sign = |pin: &str| {
        shomei(&[
            "card",
            "sign",
            "--card",
            card.to_str().unwrap(),
            "--kind",
            "auth",
            "--pin",
            pin,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            a.dir.join("d.p7s").to_str().unwrap(),
        ])
    };
    for left in [2, 1] {
        let out = sign("0000");
        assert_eq!(out.status.code(), Some(2));
        let line = stderr_line(&out);
        assert!(line.contains(&format!("{left}")), "{line}");
        assert!(
            !line.contains("0000") && !line.contains("4321"),
            "no PIN in errors: {line}"
        );
        let st = json_of(&shomei(&[
            "card",
            "status",
            "--card",
            card.to_str().unwrap(),
            "--json",
        ]));
        assert_eq!(
            st["auth_pin_tries_left"], left,
            "the try survives the process"
        );
    }
    assert_eq!(sign("0000").status.code(), Some(2));
    // Blocked: even the right PIN is refused now.
    let out = sign("4321");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).to_lowercase().contains("block"));
    // A badly formed PIN is refused before it reaches the card (no try burnt on the sign password).
    let out = shomei(&[
        "card",
        "read-cert",
        "--card",
        card.to_str().unwrap(),
        "--kind",
        "sign",
        "--password",
        "lower",
        "--out",
        a.dir.join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        json_of(&shomei(&[
            "card",
            "status",
            "--card",
            card.to_str().unwrap(),
            "--json"
        ]))["sign_password_tries_left"],
        5
    );
}

#[test]
fn minor_card_has_no_signing_certificate() {
    let a = authority();
    let card = a.dir.join("kid.card");
    let v = json_of(&issue(&a, &card, "2016-01-01"));
    assert!(v["sign_serial"].is_null());
    assert!(v["auth_serial"].is_string());
}

#[test]
fn bad_holder_input_exits_2_without_a_card() {
    let a = authority();
    let card = a.dir.join("bad.card");
    let out = issue(&a, &card, "1990-13-01");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("birth"));
    assert!(!card.exists());
}

#[test]
fn sandbox_runs_the_story_and_prints_one_json_object() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json_of(&shomei(&[
        "sandbox",
        "--data",
        tmp.path().join("s").to_str().unwrap(),
        "--json",
    ]));
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.len() >= 5, "{v}");
    let last = steps.last().unwrap()["details"].to_string();
    assert!(last.contains("revoked (keyCompromise)"), "{last}");
    // The mobile ID chapter: only age_over_20 leaves the phone, the full
    // check never gets the individual number, the lost phone is refused.
    let step = |needle: &str| {
        steps
            .iter()
            .find(|s| s["title"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no step {needle:?}: {v}"))["details"]
            .to_string()
    };
    let age = step("over 20");
    assert!(age.contains("the phone released: age_over_20\""), "{age}");
    assert!(age.contains("status list: valid"), "{age}");
    let full = step("full identity");
    assert!(full.contains("verified full_name_unicode"), "{full}");
    assert!(full.contains("verified portrait"), "{full}");
    assert!(
        full.contains("under the authority's reader CA: chiyoda-city-office"),
        "the office's reader is authenticated: {full}"
    );
    assert!(!full.contains("verified individual_number"), "{full}");
    let lost = step("cannot use its mobile ID");
    assert!(lost.contains("suspended"), "{lost}");
    // The relying-party chapter: the login ends in an ID token for a
    // pairwise subject with the released claims, the eKYC check reads the
    // basic four from a phone signature that OCSP calls good, and both
    // the bank's checks and the OCSP queries about the phone's signing
    // certificate are in her history.
    let login = step("logs in to the bank");
    assert!(login.contains("ES256 ID token for sub "), "{login}");
    assert!(login.contains("birthdate 1990-04-01, via phone"), "{login}");
    let ekyc = step("eKYC");
    assert!(ekyc.contains("OCSP: good"), "{ekyc}");
    assert!(ekyc.contains("1990-04-01 / sex 2"), "{ekyc}");
    let signed = step("signs with the phone");
    let phone_sign = signed
        .split("phone signing certificate ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .unwrap_or_else(|| panic!("no phone signing serial: {signed}"))
        .to_owned();
    let history = step("shows in her history");
    assert!(
        history.contains(&format!("{phone_sign} by system")),
        "the OCSP check of the phone signature is a used event: {history}"
    );
    assert!(
        history.contains("by relying_party:demo-bank"),
        "the bank's linkage lookups are used events: {history}"
    );
}

#[test]
fn holder_suspends_and_resumes_with_the_card() {
    let a = authority();
    let card = a.dir.join("h.card");
    let v = json_of(&issue(&a, &card, "1985-06-15"));
    let sign = v["sign_serial"].as_str().unwrap();
    let act = |verb: &str, pin: &str| {
        shomei(&[
            "card",
            verb,
            "--authority",
            &a.url,
            "--card",
            card.to_str().unwrap(),
            "--pin",
            pin,
            "--serial",
            sign,
            "--json",
        ])
    };
    let out = act("suspend", "9999");
    assert_eq!(out.status.code(), Some(2), "wrong PIN refused on the card");
    let r = json_of(&act("suspend", "4321"));
    assert_eq!(r["status"], "suspended");
    let r = json_of(&act("resume", "4321"));
    assert_eq!(r["status"], "active");
    let out = act("resume", "4321");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("not_suspended"));
}

#[test]
fn card_face_issue_read_face_round_trip_and_a_tampered_face_is_refused() {
    let a = authority();
    let card = a.dir.join("face.card");
    let portrait = a.dir.join("portrait.jp2");
    std::fs::write(&portrait, b"\x00\x00\x00\x0cjP  \r\n\x87\nnot a real photo").unwrap();
    let token = a.dir.join("operator.token");
    let issue = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "card",
            "issue",
            "--authority",
            &a.url,
            "--operator-token-file",
            token.to_str().unwrap(),
            "--name",
            "鈴木一郎",
            "--address",
            "北海道札幌市中央区1-1",
            "--birth",
            "1985-06-15",
            "--sex",
            "1",
            "--sign-password",
            "SUZUKI01",
            "--auth-pin",
            "4321",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        shomei(&args)
    };
    // A My Number with a wrong check digit is refused before anything is
    // made, and the error does not repeat it.
    let bad = issue(&["--my-number", "123456789019"], &a.dir.join("bad.card"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("123456789019"));
    assert!(!a.dir.join("bad.card").exists());

    let out = issue(
        &[
            "--my-number",
            "123456789018",
            "--pin-text",
            "2468",
            "--portrait",
            portrait.to_str().unwrap(),
        ],
        &card,
    );
    let v = json_of(&out);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("123456789018"));
    let face = &v["card_face"];
    let code = face["security_code"].as_str().unwrap();
    let expiry = face["expiry"].as_str().unwrap();
    assert_eq!(code.len(), 4);
    // Adult: the card lives until the 10th birthday after issuance.
    assert!(expiry.ends_with("-06-15"), "{expiry}");
    assert_eq!(face["manufacture_number"].as_str().unwrap().len(), 13);

    let read = |extra: &[&str]| {
        let mut args = vec![
            "card",
            "read-face",
            "--card",
            card.to_str().unwrap(),
            "--authority",
            &a.url,
            "--json",
        ];
        args.extend_from_slice(extra);
        shomei(&args)
    };
    // The text PIN set at issuance opens everything.
    let v = json_of(&read(&["--pin-text", "2468", "--show-my-number"]));
    assert_eq!(v["name"], "鈴木一郎");
    assert_eq!(v["address"], "北海道札幌市中央区1-1");
    assert_eq!(v["birth"], "19850615");
    assert_eq!(v["sex"], "1");
    assert_eq!(v["my_number"], "123456789018");
    assert_eq!(v["signature"], "valid");
    assert_eq!(v["signer"], "authority");
    assert_eq!(v["matches_text_ap"], true);
    assert_eq!(v["face_name"], "鈴木一郎");
    // PIN A; the My Number only when asked.
    let v = json_of(&read(&["--pin-a", "123456789018"]));
    assert!(v.get("my_number").is_none());
    assert_eq!(v["signer"], "authority");
    // PIN B: birth YYMMDD + expiry year + security code; no My Number.
    let pin_b = format!("850615{}{code}", &expiry[..4]);
    let v = json_of(&read(&["--pin-b", &pin_b, "--show-my-number"]));
    assert_eq!(v["my_number"], serde_json::Value::Null);
    assert_eq!(v["signature"], "valid");
    // The auth PIN is no longer the text PIN: a wrong PIN exits 2.
    let wrong = read(&["--pin-text", "4321"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr_line(&wrong));

    // The published face key is a P-256 public key openssl reads.
    let pem = reqwest::blocking::get(format!("{}/ca/card-face.pem", a.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let key_file = a.dir.join("face.pem");
    std::fs::write(&key_file, &pem).unwrap();
    let ossl = Command::new("openssl")
        .args([
            "pkey",
            "-pubin",
            "-in",
            key_file.to_str().unwrap(),
            "-noout",
            "-text",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ossl.stdout).contains("P-256"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.dir.join("keys/card-face.p8"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The My Number is on the card only: not in the registry.
    for f in std::fs::read_dir(&a.dir).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().contains("registry.sqlite") {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(12).any(|w| w == b"123456789018"),
                "{}",
                p.display()
            );
        }
    }

    // Tamper with the face on the chip (sex 1 → 2): refused.
    let image = std::fs::read_to_string(&card).unwrap();
    assert_eq!(image.matches("DF430131").count(), 1);
    std::fs::write(&card, image.replace("DF430131", "DF430132")).unwrap();
    let t = read(&["--pin-a", "123456789018"]);
    assert_eq!(t.status.code(), Some(1));
    assert!(stderr_line(&t).contains("altered"));
    // Another authority's key: the signature verifies but the signer is unknown.
    std::fs::write(&card, &image).unwrap();
    let other = authority();
    let t = shomei(&[
        "card",
        "read-face",
        "--card",
        card.to_str().unwrap(),
        "--authority",
        &other.url,
        "--pin-a",
        "123456789018",
    ]);
    assert_eq!(t.status.code(), Some(1));
    assert!(stderr_line(&t).contains("not by this authority"));
}

/// Runs `shomei ARGS` on a pseudo-terminal (tests/pty_answer.py), typing
/// `answers` at its prompts: (exit code, what the terminal showed).
fn on_terminal(answers: &[&str], args: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pty_answer.py");
    let out = Command::new("python3")
        .arg(script)
        .args(answers)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_shomei"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unused_answers"], 0, "every prompt came: {v}");
    (
        v["status"].as_i64().unwrap() as i32,
        v["terminal"].as_str().unwrap().to_owned(),
    )
}

/// CONTRACT: secrets may be typed at a prompt when stdin is a terminal,
/// never echoed; without a terminal a missing secret is one line and exit 2.
#[test]
fn secrets_are_asked_at_the_terminal_and_never_echoed() {
    let a = authority();
    let card = a.dir.join("typed.card");
    let issue = issue_args(&a, &card, "1985-06-15");
    // New secrets are typed twice; a malformed entry and two entries that
    // differ are asked again, never set.
    let (code, shown) = on_terminal(
        &[
            "typed77", "TYPED77", "TYPED78", "TYPED77", "TYPED77", "9753", "9753",
        ],
        &issue.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("new signing password (6 to 16 of A-Z and 0-9): "),
        "{shown}"
    );
    assert!(shown.contains("that is not a signing password"), "{shown}");
    assert!(shown.contains("the two entries differ"), "{shown}");
    assert!(shown.contains("new authentication PIN again: "), "{shown}");
    for typed in ["typed77", "TYPED77", "TYPED78", "9753"] {
        assert!(!shown.contains(typed), "{typed} echoed: {shown}");
    }

    // The typed secrets are the card's: a signature with the typed password…
    let doc = a.dir.join("doc.txt");
    std::fs::write(&doc, b"application").unwrap();
    let sig = a.dir.join("doc.p7s");
    let sign = [
        "card",
        "sign",
        "--card",
        card.to_str().unwrap(),
        "--kind",
        "sign",
        "--in",
        doc.to_str().unwrap(),
        "--out",
        sig.to_str().unwrap(),
    ];
    let (code, shown) = on_terminal(&["TYPED77"], &sign);
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("TYPED77"), "echoed: {shown}");
    assert!(sig.exists());
    // …and the typed PIN opens the authentication key.
    let out = shomei(&[
        "card",
        "sign",
        "--card",
        card.to_str().unwrap(),
        "--kind",
        "auth",
        "--pin",
        "9753",
        "--in",
        doc.to_str().unwrap(),
        "--out",
        a.dir.join("doc-auth.sig").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No terminal, no secret: one line, exit 2, nothing counted on the card.
    let out = shomei(&sign);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("give the signing password"));
}

/// The My Number and PIN B can come from files (not the process list).
#[test]
fn my_number_and_face_pins_come_from_files() {
    let a = authority();
    let card = a.dir.join("file.card");
    let number = a.dir.join("my-number.txt");
    std::fs::write(&number, "123456789018\n").unwrap();
    let out = issue_with(
        &a,
        &card,
        "1985-06-15",
        &["--my-number-file", number.to_str().unwrap()],
    );
    let v = json_of(&out);
    let face = &v["card_face"];
    let pin_b = format!(
        "850615{}{}",
        &face["expiry"].as_str().unwrap()[..4],
        face["security_code"].as_str().unwrap()
    );
    let pin_b_file = a.dir.join("pin-b.txt");
    std::fs::write(&pin_b_file, &pin_b).unwrap();
    let read = |flag: &str, file: &Path| {
        shomei(&[
            "card",
            "read-face",
            "--card",
            card.to_str().unwrap(),
            flag,
            file.to_str().unwrap(),
            "--show-my-number",
            "--json",
        ])
    };
    // PIN A from its file: the My Number read back is the one from the file.
    let v = json_of(&read("--pin-a-file", &number));
    assert_eq!(v["my_number"], "123456789018", "{v}");
    // PIN B from its file opens the face but never the My Number.
    let out = read("--pin-b-file", &pin_b_file);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("123456789018"), "{text}");
    // A wrong PIN B from a file is refused without repeating it.
    std::fs::write(&pin_b_file, "850615".to_owned() + "20000000").unwrap();
    let out = read("--pin-b-file", &pin_b_file);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr_line(&out).contains("85061520000000"));
}
