//! OpenSC sees the emulated card as a My Number Card.
//!
//! A card is manufactured in a temporary file and personalised with
//! certificates over its own keys, `shomei_card::vpcd::serve_vpcd` plugs it
//! into a private pcscd running vsmartcard's `vpcd` driver (started by
//! `scripts/opensc-check.sh --start-pcscd`), and the real outside tools
//! check it: `opensc-tool` (reader, ATR, JPKI driver), `pkcs15-tool`
//! (certificates byte for byte, PINs and their counters), `pkcs11-tool`
//! (a login and a SHA256-RSA-PKCS signature with each key) and `openssl`
//! (that signature verifies against the certificate read by OpenSC).
//!
//! Needs the Debian packages `pcscd opensc vsmartcard-vpcd` plus `openssl`
//! and `perl` (`scripts/opensc-check.sh --install-only` installs them), and
//! root (pcscd writes `/run/pcscd/pcscd.pid`). Without them the test prints
//! why and passes, unless the environment variable `CI` is set: then a
//! missing tool is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shomei_card::{
    Card, CardError, Certificates, FileMemory, InProcess, JpkiClient, KeyKind, Variant, vpcd,
};

const SIGN_PW: &str = "ABC123";
const AUTH_PIN: &str = "1234";
const PKCS11_MODULE: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/opensc-check.sh")
}

/// Whether `program` is an executable file in `$PATH`.
fn in_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// What is missing to run the test (empty: nothing).
fn missing_tools() -> Vec<String> {
    let mut missing: Vec<String> = [
        "pcscd",
        "opensc-tool",
        "pkcs15-tool",
        "pkcs11-tool",
        "openssl",
        "perl",
        "bash",
    ]
    .into_iter()
    .filter(|tool| !in_path(tool))
    .map(String::from)
    .collect();
    for file in [VPCD_DRIVER, PKCS11_MODULE] {
        if !Path::new(file).exists() {
            missing.push(file.into());
        }
    }
    missing
}

// ---------------------------------------------------------------- the card

/// The subject key of a certificate: a card key given as a DER SPKI.
struct CardKey {
    rsa_public_key: Vec<u8>,
}

impl rcgen::PublicKeyData for CardKey {
    fn der_bytes(&self) -> &[u8] {
        &self.rsa_public_key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// A self-signed CA and a certificate for the card key `spki` under it.
fn issue(ca_name: &str, holder: &str, spki: &[u8], serial: u64) -> (Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.serial_number = Some(rcgen::SerialNumber::from(serial + 1000));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let mut ee = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ee.distinguished_name
        .push(rcgen::DnType::CommonName, holder);
    ee.serial_number = Some(rcgen::SerialNumber::from(serial));
    ee.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::ContentCommitment,
    ];
    let key = CardKey {
        rsa_public_key: shomei_pki::keys::spki_subject_public_key(spki).unwrap(),
    };
    let cert = ee.signed_by(&key, &issuer).unwrap();
    (cert.der().to_vec(), ca_cert.der().to_vec())
}

struct IssuedCard {
    card: Card,
    auth_cert: Vec<u8>,
    sign_cert: Vec<u8>,
    auth_spki: Vec<u8>,
    sign_spki: Vec<u8>,
}

/// Manufactures a card in `path` and personalises it with certificates
/// over its own keys, as the authority would.
fn issued_card(path: &Path) -> IssuedCard {
    let card = Card::manufacture(FileMemory::new(path), Variant::Card, SIGN_PW, AUTH_PIN).unwrap();
    let mut client = JpkiClient::new(InProcess::new(card));
    let auth_spki = client.public_key_spki(KeyKind::Auth).unwrap();
    let sign_spki = client.public_key_spki(KeyKind::Sign).unwrap();
    let (auth_cert, auth_ca) = issue(
        "Test JPKI Auth CA",
        "YAMADA TARO (auth)",
        &auth_spki,
        0x0A01,
    );
    let (sign_cert, sign_ca) = issue(
        "Test JPKI Sign CA",
        "YAMADA TARO (sign)",
        &sign_spki,
        0x0A02,
    );
    // OpenSC's jpki driver takes the EF size from bytes 2..4 (`30 82 LL LL`).
    assert_eq!(auth_cert[..2], [0x30, 0x82]);
    client
        .personalise(&Certificates {
            sign: &sign_cert,
            sign_ca: &sign_ca,
            auth: &auth_cert,
            auth_ca: &auth_ca,
        })
        .unwrap();
    client.activate().unwrap();
    IssuedCard {
        card: client.into_transport().into_card(),
        auth_cert,
        sign_cert,
        auth_spki,
        sign_spki,
    }
}

// ------------------------------------------------------- pcscd and the link

/// A port P such that P and P+1 (vpcd's two slots) are free on all interfaces.
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        if TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("0.0.0.0", next)).is_ok()
        {
            return port;
        }
    }
    panic!("no free pair of TCP ports");
}

/// A private pcscd (own socket, own reader.conf) with vpcd on `port`;
/// stopped on drop.
struct Pcscd {
    dir: PathBuf,
    socket: String,
}

impl Pcscd {
    fn start(port: u16, dir: &Path) -> Self {
        let out = Command::new("bash")
            .arg(script())
            .args(["--start-pcscd", &port.to_string()])
            .arg(dir)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("--- opensc-check.sh --start-pcscd {port}\n{stdout}");
        assert!(out.status.success(), "could not start pcscd: {stdout}");
        let socket = stdout
            .lines()
            .find_map(|l| l.strip_prefix("PCSCLITE_CSOCK_NAME="))
            .expect("socket path printed")
            .to_owned();
        assert!(
            stdout.lines().any(|l| l.starts_with("PCSCD_PID=")),
            "pid printed"
        );
        Self {
            dir: dir.to_owned(),
            socket,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pcscd.log")).unwrap_or_default()
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("--stop-pcscd")
            .arg(&self.dir)
            .status();
    }
}

/// `serve_vpcd` on a thread; stopped on drop.
struct Served {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), CardError>>>,
}

impl Served {
    fn start(card: Card, port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            vpcd::serve_vpcd(card, "127.0.0.1", port, || flag.load(Ordering::SeqCst))
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Result<(), CardError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ------------------------------------------------------------- the tools

struct Tools {
    socket: String,
    home: PathBuf,
}

struct Run {
    ok: bool,
    stdout: String,
    /// stdout and stderr, for messages.
    all: String,
}

impl Tools {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        // The private pcscd, and no OpenSC cache shared with other runs.
        cmd.env("PCSCLITE_CSOCK_NAME", &self.socket)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> Run {
        let out: Output = self.command(program).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let all = format!("{stdout}{stderr}");
        println!(
            "--- $ {program} {}  [{}]\n{all}",
            args.join(" "),
            out.status
        );
        Run {
            ok: out.status.success(),
            stdout,
            all,
        }
    }

    /// Runs and insists on success.
    fn ok(&self, program: &str, args: &[&str]) -> Run {
        let run = self.run(program, args);
        assert!(run.ok, "{program} {args:?} failed:\n{}", run.all);
        run
    }
}

fn pem_to_der(tools: &Tools, pem: &str, dir: &Path, name: &str) -> Vec<u8> {
    let pem_path = dir.join(format!("{name}.pem"));
    let der_path = dir.join(format!("{name}.der"));
    std::fs::write(&pem_path, pem).unwrap();
    tools.ok(
        "openssl",
        &[
            "x509",
            "-in",
            pem_path.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            der_path.to_str().unwrap(),
        ],
    );
    std::fs::read(der_path).unwrap()
}

/// The PKCS#11 slot whose token label contains `pin_label`.
fn slot_of(tools: &Tools, pin_label: &str) -> String {
    let run = tools.ok("pkcs11-tool", &["--module", PKCS11_MODULE, "--list-slots"]);
    let mut slot = None;
    for line in run.stdout.lines() {
        if let Some(rest) = line.strip_prefix("Slot ") {
            // "Slot 0 (0x0): Shomei vpcd 00 00"
            slot = rest
                .split_once("(0x")
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(hex, _)| format!("0x{hex}"));
        }
        if line.contains("token label") && line.contains(pin_label) {
            return slot.clone().expect("slot line before token label");
        }
    }
    panic!("no PKCS#11 token labelled …{pin_label}…:\n{}", run.all);
}

/// Signs `data` with `pkcs11-tool` (SHA256-RSA-PKCS) and checks the
/// signature with `openssl` against the certificate PEM OpenSC read.
fn pkcs11_sign_and_verify(
    tools: &Tools,
    dir: &Path,
    pin_label: &str,
    pin: &str,
    key_id: &str,
    cert_pem: &Path,
    spki: &[u8],
) {
    let data = dir.join("data.txt");
    std::fs::write(&data, b"Shomei: signed through PC/SC by OpenSC\n").unwrap();
    let sig = dir.join(format!("sig-{key_id}.bin"));
    let slot = slot_of(tools, pin_label);
    tools.ok(
        "pkcs11-tool",
        &[
            "--module",
            PKCS11_MODULE,
            "--slot",
            &slot,
            "--login",
            "--pin",
            pin,
            "--sign",
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--id",
            key_id,
            "--input-file",
            data.to_str().unwrap(),
            "--output-file",
            sig.to_str().unwrap(),
        ],
    );
    let signature = std::fs::read(&sig).unwrap();
    assert_eq!(signature.len(), 256, "RSA-2048 signature");
    // Independently of OpenSSL: the card key's SPKI verifies it.
    shomei_pki::csr::verify_rsa_sha256(spki, &std::fs::read(&data).unwrap(), &signature)
        .expect("signature made by the card key");
    let pubkey = dir.join(format!("pub-{key_id}.pem"));
    let out = tools.ok(
        "openssl",
        &[
            "x509",
            "-in",
            cert_pem.to_str().unwrap(),
            "-noout",
            "-pubkey",
        ],
    );
    std::fs::write(&pubkey, out.stdout).unwrap();
    let verified = tools.ok(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            pubkey.to_str().unwrap(),
            "-signature",
            sig.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    );
    assert!(verified.stdout.contains("Verified OK"), "{}", verified.all);
}

/// "Tries left" of the PIN with this label, from `pkcs15-tool --list-pins`.
fn tries_left(tools: &Tools, pin_label: &str) -> String {
    let run = tools.ok("pkcs15-tool", &["--list-pins"]);
    let mut current = false;
    for line in run.stdout.lines() {
        if line.starts_with("PIN [") {
            current = line.contains(pin_label);
        }
        if current && let Some((_, n)) = line.split_once("Tries left") {
            return n.trim_start_matches([' ', ':']).trim().to_owned();
        }
    }
    panic!("no tries left for {pin_label}:\n{}", run.all);
}

// ------------------------------------------------------------------ the test

#[test]
fn opensc_reads_and_uses_the_card_through_pcscd() {
    let missing = missing_tools();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but these are missing: {missing:?} \
             (run scripts/opensc-check.sh --install-only)"
        );
        println!(
            "SKIPPED opensc test: missing {missing:?}; \
             install with scripts/opensc-check.sh --install-only"
        );
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let issued = issued_card(&dir.path().join("card.json"));
    let port = free_port_pair();
    let pcscd = Pcscd::start(port, &dir.path().join("pcscd"));
    let served = Served::start(issued.card, port);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tools = Tools {
        socket: pcscd.socket.clone(),
        home,
    };

    // The reader shows a card once pcscd has polled the link.
    let deadline = Instant::now() + Duration::from_secs(30);
    let readers = loop {
        let run = tools.run("opensc-tool", &["--list-readers"]);
        let present = run
            .stdout
            .lines()
            .any(|l| l.contains("vpcd 00 00") && l.split_whitespace().nth(1) == Some("Yes"));
        if present {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "no card in the vpcd reader:\n{}\npcscd log:\n{}",
            run.all,
            pcscd.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        readers.stdout.contains("Shomei vpcd 00 00"),
        "{}",
        readers.all
    );

    let atr = tools.ok("opensc-tool", &["--reader", "0", "--atr"]);
    assert!(
        atr.stdout.contains("3b:e0:00:ff:81:31:fe:45:14"),
        "{}",
        atr.all
    );
    let name = tools.ok("opensc-tool", &["--reader", "0", "--name"]);
    assert!(
        name.stdout.to_lowercase().contains("jpki"),
        "not the jpki driver: {}",
        name.all
    );

    // Certificates: both listed, the auth one readable without PIN and
    // identical to what was written.
    let list = tools.ok("pkcs15-tool", &["--list-certificates"]);
    assert!(
        list.stdout.contains("User Authentication Certificate"),
        "{}",
        list.all
    );
    assert!(
        list.stdout.contains("Digital Signature Certificate"),
        "{}",
        list.all
    );
    let auth = tools.ok("pkcs15-tool", &["--read-certificate", "01"]);
    let auth_pem = dir.path().join("auth-read.pem");
    std::fs::write(&auth_pem, &auth.stdout).unwrap();
    let auth_der = pem_to_der(&tools, &auth.stdout, dir.path(), "auth-from-opensc");
    assert_eq!(
        auth_der, issued.auth_cert,
        "OpenSC read a different auth certificate"
    );

    // The sign certificate is behind the signing password.
    let sign_locked = tools.run("pkcs15-tool", &["--read-certificate", "02"]);
    assert!(
        !sign_locked.ok || !sign_locked.stdout.contains("BEGIN CERTIFICATE"),
        "sign certificate readable without the password:\n{}",
        sign_locked.all
    );

    // PINs: listed with their counters; a wrong PIN costs a try, the right
    // one restores them.
    let pins = tools.ok("pkcs15-tool", &["--list-pins"]);
    assert!(
        pins.stdout.contains("User Authentication PIN"),
        "{}",
        pins.all
    );
    assert!(
        pins.stdout.contains("Digital Signature PIN"),
        "{}",
        pins.all
    );
    assert_eq!(tries_left(&tools, "User Authentication PIN"), "3");
    assert_eq!(tries_left(&tools, "Digital Signature PIN"), "5");
    let wrong = tools.run(
        "pkcs15-tool",
        &["--verify-pin", "--auth-id", "01", "--pin", "9999"],
    );
    assert!(
        !wrong.ok || wrong.all.to_lowercase().contains("incorrect"),
        "{}",
        wrong.all
    );
    assert_eq!(tries_left(&tools, "User Authentication PIN"), "2");
    let right = tools.ok(
        "pkcs15-tool",
        &["--verify-pin", "--auth-id", "01", "--pin", AUTH_PIN],
    );
    assert!(
        !right.all.to_lowercase().contains("incorrect"),
        "{}",
        right.all
    );
    assert_eq!(tries_left(&tools, "User Authentication PIN"), "3");

    // PKCS#11: sign with the authentication key, verify with openssl.
    pkcs11_sign_and_verify(
        &tools,
        dir.path(),
        "User Authentication PIN",
        AUTH_PIN,
        "01",
        &auth_pem,
        &issued.auth_spki,
    );

    // With the signing password, the sign certificate reads and its key signs.
    let sign_cert = dir.path().join("sign-read.pem");
    let sign_read = tools.ok(
        "pkcs15-tool",
        &[
            "--verify-pin",
            "--auth-id",
            "02",
            "--pin",
            SIGN_PW,
            "--read-certificate",
            "02",
        ],
    );
    let begin = sign_read
        .stdout
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no sign certificate:\n{}", sign_read.all));
    let pem = &sign_read.stdout[begin..];
    std::fs::write(&sign_cert, pem).unwrap();
    assert_eq!(
        pem_to_der(&tools, pem, dir.path(), "sign-from-opensc"),
        issued.sign_cert,
        "OpenSC read a different sign certificate"
    );
    pkcs11_sign_and_verify(
        &tools,
        dir.path(),
        "Digital Signature PIN",
        SIGN_PW,
        "02",
        &sign_cert,
        &issued.sign_spki,
    );

    // Three wrong PINs block the authentication key as OpenSC expects:
    // the counter reaches 0, the right PIN no longer opens it, and a
    // PKCS#11 login is refused as locked.
    for left in ["2", "1", "0"] {
        let wrong = tools.run(
            "pkcs15-tool",
            &["--verify-pin", "--auth-id", "01", "--pin", "0000"],
        );
        assert!(
            !wrong.ok || wrong.all.to_lowercase().contains("incorrect"),
            "{}",
            wrong.all
        );
        assert_eq!(tries_left(&tools, "User Authentication PIN"), left);
    }
    let blocked = tools.run(
        "pkcs15-tool",
        &["--verify-pin", "--auth-id", "01", "--pin", AUTH_PIN],
    );
    let text = blocked.all.to_lowercase();
    assert!(
        text.contains("blocked") || text.contains("locked"),
        "the right PIN must not open a blocked key:\n{}",
        blocked.all
    );
    assert_eq!(tries_left(&tools, "User Authentication PIN"), "0");
    let slot = slot_of(&tools, "User Authentication PIN");
    let login = tools.run(
        "pkcs11-tool",
        &[
            "--module",
            PKCS11_MODULE,
            "--slot",
            &slot,
            "--login",
            "--pin",
            AUTH_PIN,
            "--list-objects",
        ],
    );
    assert!(
        !login.ok && login.all.contains("CKR_PIN_LOCKED"),
        "PKCS#11 login on a blocked PIN:\n{}",
        login.all
    );
    // The signing password is a separate counter, untouched.
    assert_eq!(tries_left(&tools, "Digital Signature PIN"), "5");

    served.stop().unwrap();
    let _ = std::io::stdout().flush();
    drop(pcscd);
}
