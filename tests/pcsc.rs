//! Our card client over PC/SC (`--card pcsc:`), against the emulated card
//! plugged into a private pcscd through vsmartcard's vpcd
//! (`shomei card serve-vpcd`): read-cert, status, a signature openssl
//! verifies, phone provisioning from a card on a reader, PIN blocking, and a
//! card removed mid-session. OpenSC's own tools (`pkcs15-tool`,
//! `pkcs11-tool`, through `scripts/opensc-check.sh --check` and directly)
//! use the same authority-issued card served by the real binary, and the
//! card is found by SELECT of the JPKI AP when another reader holds a card
//! with the same ATR but no JPKI AP.
//!
//! Built only with `--features pcsc` (scripts/test.sh enables it). Needs
//! pcscd, the vpcd driver and OpenSC (`scripts/opensc-check.sh
//! --install-only`) and root for pcscd; without them the tests say why and
//! pass, unless `CI` is set, where a missing tool is a failure.
#![cfg(feature = "pcsc")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{failure, free_port, json_of, openssl, shomei_env};

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const CARD_PW: &str = "TANAKA01";
const CARD_PIN: &str = "1357";
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
const PKCS11_MODULE: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
/// The My Number Card ATR that `serve-vpcd` gives (`shomei_card::vpcd::ATR`).
const JPKI_ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What is missing to run the tests: pcscd, vpcd, openssl, root, and with
/// `opensc` OpenSC's tools and PKCS#11 module too.
fn missing(opensc: bool) -> Vec<String> {
    let mut m = Vec::new();
    let mut files = vec![VPCD_DRIVER];
    let mut tools = vec!["pcscd", "openssl", "perl", "bash"];
    if opensc {
        files.push(PKCS11_MODULE);
        tools.extend(["opensc-tool", "pkcs15-tool", "pkcs11-tool"]);
    }
    for file in files {
        if !Path::new(file).exists() {
            m.push(file.to_owned());
        }
    }
    for tool in tools {
        if !in_path(tool) {
            m.push(tool.to_owned());
        }
    }
    // pcscd writes /run/pcscd/pcscd.pid: root only.
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    if String::from_utf8_lossy(&uid).trim() != "0" {
        m.push("root (for pcscd)".into());
    }
    m
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

/// True if the test can run; false (after saying why) if it must skip.
/// Under `CI` a missing tool fails the test instead.
fn can_run(opensc: bool) -> bool {
    let missing = missing(opensc);
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs these for the PC/SC test: {missing:?} \
         (run scripts/opensc-check.sh --install-only)"
    );
    eprintln!("skipping: missing {missing:?}");
    false
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private pcscd with the vpcd reader (two slots: `port` and `port + 1`),
/// stopped on drop.
struct Pcscd {
    dir: tempfile::TempDir,
    socket: String,
}

impl Pcscd {
    /// Starts pcscd with vpcd on a free port pair; returns it and the port.
    /// Another test may take a port between our probe and pcscd's bind, so
    /// a start refused for a busy port is retried on another pair.
    fn start() -> (Self, u16) {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new("bash")
                .arg(root().join("scripts/opensc-check.sh"))
                .args(["--start-pcscd", &port.to_string()])
                .arg(dir.path())
                .output()
                .unwrap();
            if !out.status.success() {
                last = String::from_utf8_lossy(&out.stderr).into_owned();
                continue;
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let socket = text
                .lines()
                .find_map(|l| l.strip_prefix("PCSCLITE_CSOCK_NAME="))
                .expect("the socket")
                .to_owned();
            return (Self { dir, socket }, port);
        }
        panic!("pcscd did not start: {last}");
    }
}

impl Pcscd {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default()
    }

    /// Unless APDU logging was asked for (SHOMEI_PCSCD_APDU_LOG=1), the
    /// pcscd log holds no APDU and none of the secrets sent in VERIFY.
    fn assert_log_holds_no_apdu(&self, secrets: &[&str]) {
        if std::env::var("SHOMEI_PCSCD_APDU_LOG").as_deref() == Ok("1") {
            return;
        }
        let log = self.log().to_uppercase();
        assert!(!log.is_empty(), "pcscd wrote no log");
        assert!(!log.contains("APDU:"), "pcscd logged APDUs");
        for secret in secrets {
            let spaced = secret
                .bytes()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(" ");
            assert!(!log.contains(&spaced), "a secret in pcscd.log");
            assert!(
                !log.contains(&hex_upper(secret.as_bytes())),
                "a secret in pcscd.log"
            );
        }
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        // A failed test shows what pcscd saw. Its log holds no APDUs (so no
        // PIN, no My Number) unless SHOMEI_PCSCD_APDU_LOG=1 was set, and
        // nothing here reads APDU lines from it.
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- pcscd.log (last 80 lines)");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = Command::new("bash")
            .arg(root().join("scripts/opensc-check.sh"))
            .arg("--stop-pcscd")
            .arg(self.dir.path())
            .output();
    }
}

/// Prints a log file if the test fails while this guard lives.
struct ShowOnPanic(PathBuf);

impl Drop for ShowOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("--- {}\n{text}", self.0.display());
        }
    }
}

/// `shomei ARGS` talking to the pcscd behind `socket`.
fn shomei(socket: &str, args: &[&str]) -> Output {
    shomei_env(args, &[("PCSCLITE_CSOCK_NAME", socket)])
}

/// `authority serve` on a fresh authority folder; stopped on drop.
struct Authority {
    url: String,
    dir: PathBuf,
    _process: Kill,
    _log: ShowOnPanic,
}

impl Authority {
    fn start(tmp: &Path) -> Self {
        let dir = tmp.join("auth");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        json_of(&shomei(
            "",
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
            ],
        ));
        let log = tmp.join("authority.log");
        let process = Kill(
            Command::new(env!("CARGO_BIN_EXE_shomei"))
                .args([
                    "authority",
                    "serve",
                    "--data",
                    dir.to_str().unwrap(),
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                ])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let show = ShowOnPanic(log);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "authority did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            url,
            dir,
            _process: process,
            _log: show,
        }
    }

    /// Issues Tanaka's card into `card` with `shomei card issue`; its JSON.
    fn issue(&self, card: &Path) -> Value {
        json_of(&shomei(
            "",
            &[
                "card",
                "issue",
                "--authority",
                &self.url,
                "--operator-token-file",
                self.dir.join("operator.token").to_str().unwrap(),
                "--name",
                "田中 次郎",
                "--address",
                "大阪府大阪市北区1-1",
                "--birth",
                "1975-09-09",
                "--sex",
                "1",
                "--sign-password",
                CARD_PW,
                "--auth-pin",
                CARD_PIN,
                "--out",
                card.to_str().unwrap(),
                "--json",
            ],
        ))
    }
}

/// `shomei card serve-vpcd` (the binary) for `card` on vpcd's `port`;
/// killed on drop (the card is pulled out).
fn serve_vpcd(card: &Path, port: u16, log: &Path) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_shomei"))
            .args([
                "card",
                "serve-vpcd",
                "--card",
                card.to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// `card status --card CARD --json` once it succeeds (pcscd polls the vpcd
/// link, so a card just plugged in shows up after a moment).
fn wait_for_status(socket: &str, card: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = shomei(socket, &["card", "status", "--card", card, "--json"]);
        if out.status.success() {
            return serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no card over PC/SC: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `read-cert --card CARD --kind KIND [--password P]` into `out`; its bytes.
fn read_cert(socket: &str, card: &str, kind: &str, out: &Path) -> Vec<u8> {
    let mut args = vec![
        "card",
        "read-cert",
        "--card",
        card,
        "--kind",
        kind,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    if kind == "sign" {
        args.extend(["--password", CARD_PW]);
    }
    json_of(&shomei(socket, &args));
    std::fs::read(out).unwrap()
}

// ------------------------------------------------------- OpenSC's own tools

/// OpenSC's tools on the private pcscd, with a HOME of their own (no OpenSC
/// file cache shared with other runs: every JPKI card has the same serial).
struct OpenSc {
    socket: String,
    home: PathBuf,
}

impl OpenSc {
    fn run(&self, program: &str, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(program)
            .args(args)
            .env("PCSCLITE_CSOCK_NAME", &self.socket)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.success(), stdout, all)
    }

    /// The PKCS#11 slot whose token label contains `pin_label`.
    fn slot_of(&self, pin_label: &str) -> String {
        let (ok, stdout, all) =
            self.run("pkcs11-tool", &["--module", PKCS11_MODULE, "--list-slots"]);
        assert!(ok, "pkcs11-tool --list-slots: {all}");
        let mut slot = None;
        for line in stdout.lines() {
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
        panic!("no PKCS#11 token labelled …{pin_label}…:\n{all}");
    }

    /// `pkcs11-tool --login --pin PIN [extra…]` on the authentication key's slot.
    fn auth_login(&self, pin: &str, extra: &[&str]) -> (bool, String, String) {
        let slot = self.slot_of("User Authentication PIN");
        let mut args = vec![
            "--module",
            PKCS11_MODULE,
            "--slot",
            &slot,
            "--login",
            "--pin",
            pin,
        ];
        args.extend_from_slice(extra);
        self.run("pkcs11-tool", &args)
    }
}

// ------------------------------------------------- a card without JPKI

/// A card in vpcd's slot at `port` with the My Number Card's ATR but no
/// JPKI application: every SELECT answers `6A 82`, anything else `6D 00`.
/// Counts the SELECTs it refused; unplugged on drop.
struct StubCard {
    stop: Arc<AtomicBool>,
    selects: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubCard {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let selects = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, selects) = (Arc::clone(&stop), Arc::clone(&selects));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match TcpStream::connect(("127.0.0.1", port)) {
                        Ok(mut link) => {
                            link.set_read_timeout(Some(Duration::from_millis(200)))
                                .unwrap();
                            link.set_nodelay(true).unwrap();
                            stub_session(&mut link, &stop, &selects);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
        };
        Self {
            stop,
            selects,
            thread: Some(thread),
        }
    }

    fn selects(&self) -> usize {
        self.selects.load(Ordering::SeqCst)
    }
}

impl Drop for StubCard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The stub's side of vpcd's protocol (2-byte lengths; `00 01 0x` control
/// codes) until the link drops or the test stops it.
fn stub_session(link: &mut TcpStream, stop: &AtomicBool, selects: &AtomicUsize) {
    loop {
        let mut len = [0u8; 2];
        if !read_full(link, &mut len, stop) {
            return;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !read_full(link, &mut message, stop) {
            return;
        }
        let answer = match message.as_slice() {
            [] | [0x00..=0x02] => continue,
            [0x04] => JPKI_ATR.to_vec(),
            [_, 0xA4, ..] => {
                selects.fetch_add(1, Ordering::SeqCst);
                vec![0x6A, 0x82]
            }
            _ => vec![0x6D, 0x00],
        };
        let mut frame = u16::try_from(answer.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&answer);
        if link.write_all(&frame).is_err() {
            return;
        }
    }
}

/// Fills `buf`; false if the link closed or the test stopped.
fn read_full(link: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        match link.read(&mut buf[filled..]) {
            Ok(0) => return false,
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

// ------------------------------------------------------------------ tests

#[test]
fn card_client_over_pcsc_reads_signs_provisions_and_survives_removal() {
    if !can_run(true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let authority = Authority::start(tmp.path());
    let card = tmp.path().join("tanaka.card");
    let issued = authority.issue(&card);

    // What the authority issued, as the card file holds it (read before the
    // card is plugged in), chains to the authority's roots.
    let card_file = card.to_str().unwrap();
    let issued_auth = tmp.path().join("issued-auth.der");
    let issued_sign = tmp.path().join("issued-sign.der");
    let issued_auth_der = read_cert("", card_file, "auth", &issued_auth);
    let issued_sign_der = read_cert("", card_file, "sign", &issued_sign);
    for (der, root) in [(&issued_auth, "auth"), (&issued_sign, "sign")] {
        let pem = der.with_extension("pem");
        let (ok, msg) = openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            der.to_str().unwrap(),
            "-out",
            pem.to_str().unwrap(),
        ]);
        assert!(ok, "{msg}");
        let ca = authority.dir.join(format!("ca/{root}.pem"));
        let (ok, msg) = openssl(&[
            "verify",
            "-CAfile",
            ca.to_str().unwrap(),
            "-purpose",
            "any",
            pem.to_str().unwrap(),
        ]);
        assert!(ok, "{root} certificate under the authority's root: {msg}");
    }

    // pcscd with the vpcd reader, and the card plugged in through it.
    let (pcscd, vpcd_port) = Pcscd::start();
    let sock = pcscd.socket.as_str();
    let vpcd_log = tmp.path().join("serve-vpcd.log");
    let mut vpcd = serve_vpcd(&card, vpcd_port, &vpcd_log);
    let _show_vpcd_log = ShowOnPanic(vpcd_log);
    // The card is found by SELECT of the JPKI AP over PC/SC.
    let status = wait_for_status(sock, "pcsc:");
    assert_eq!(status["token"], "Card");
    assert_eq!(status["auth_pin_tries_left"], 3);
    assert_eq!(status["auth_serial"], issued["auth_serial"]);

    // The certificates, read over PC/SC, are the ones issued, byte for byte.
    let auth_der = tmp.path().join("auth.der");
    let sign_der = tmp.path().join("sign.der");
    assert_eq!(read_cert(sock, "pcsc:", "auth", &auth_der), issued_auth_der);
    assert_eq!(read_cert(sock, "pcsc:", "sign", &sign_der), issued_sign_der);
    let serial = Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-serial",
            "-in",
            auth_der.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let serial = String::from_utf8_lossy(&serial.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    assert_eq!(
        serial.to_uppercase(),
        issued["auth_serial"].as_str().unwrap().to_uppercase()
    );

    // OpenSC's own tools on the same card, served by the real binary. First
    // the script CI and the README use: ATR, OpenSC's jpki driver, both
    // certificates byte for byte against what `card read-cert` returned,
    // the PINs, a PKCS#11 signature with each key that openssl verifies.
    let check = Command::new("bash")
        .arg(root().join("scripts/opensc-check.sh"))
        .arg("--check")
        .arg(&auth_der)
        .arg(CARD_PIN)
        .arg(&sign_der)
        .arg(CARD_PW)
        .env("PCSCLITE_CSOCK_NAME", sock)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let check_text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        check.status.success() && check_text.contains("all OpenSC checks passed"),
        "opensc-check.sh --check:\n{check_text}"
    );
    // Then the tools directly, with the certificate the authority issued.
    let home = tmp.path().join("opensc-home");
    std::fs::create_dir_all(&home).unwrap();
    let opensc = OpenSc {
        socket: sock.to_owned(),
        home,
    };
    let (ok, list, all) = opensc.run("pkcs15-tool", &["--list-certificates"]);
    assert!(
        ok && list.contains("User Authentication Certificate"),
        "{all}"
    );
    let (ok, pem, all) = opensc.run("pkcs15-tool", &["--read-certificate", "01"]);
    assert!(ok && pem.contains("BEGIN CERTIFICATE"), "{all}");
    let opensc_pem = tmp.path().join("opensc-auth.pem");
    let opensc_der = tmp.path().join("opensc-auth.der");
    std::fs::write(&opensc_pem, &pem).unwrap();
    let (ok, msg) = openssl(&[
        "x509",
        "-in",
        opensc_pem.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        opensc_der.to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    assert_eq!(
        std::fs::read(&opensc_der).unwrap(),
        issued_auth_der,
        "pkcs15-tool read another certificate than the authority issued"
    );
    let data = tmp.path().join("opensc-data.txt");
    std::fs::write(&data, "ログイン by pkcs11-tool over PC/SC\n").unwrap();
    let sig = tmp.path().join("opensc.sig");
    let (ok, _, all) = opensc.auth_login(
        CARD_PIN,
        &[
            "--sign",
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--id",
            "01",
            "--input-file",
            data.to_str().unwrap(),
            "--output-file",
            sig.to_str().unwrap(),
        ],
    );
    assert!(ok, "pkcs11-tool --sign: {all}");
    let issued_pub = tmp.path().join("issued-auth.pub");
    let (ok, msg) = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        issued_auth.to_str().unwrap(),
        "-noout",
        "-pubkey",
        "-out",
        issued_pub.to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    let verify = |file: &Path| {
        openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            issued_pub.to_str().unwrap(),
            "-signature",
            sig.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
    };
    let (ok, msg) = verify(&data);
    assert!(ok && msg.contains("Verified OK"), "{msg}");
    // The same signature over other bytes does not verify: the check bites.
    let other = tmp.path().join("opensc-other.txt");
    std::fs::write(&other, "ログアウト\n").unwrap();
    let (ok, msg) = verify(&other);
    assert!(!ok, "{msg}");
    // OpenSC spent no try of either PIN.
    let status = json_of(&shomei(
        sock,
        &["card", "status", "--card", "pcsc:", "--json"],
    ));
    assert_eq!(status["auth_pin_tries_left"], 3, "{status}");
    assert_eq!(status["sign_password_tries_left"], 5, "{status}");

    // A signature made over PC/SC verifies with openssl against the root.
    let doc = tmp.path().join("doc.txt");
    std::fs::write(&doc, "申請書 over PC/SC\n").unwrap();
    let p7s = tmp.path().join("doc.p7s");
    json_of(&shomei(
        sock,
        &[
            "card",
            "sign",
            "--card",
            "pcsc:",
            "--kind",
            "sign",
            "--password",
            CARD_PW,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            p7s.to_str().unwrap(),
            "--json",
        ],
    ));
    let v = Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .args([
            "-in",
            p7s.to_str().unwrap(),
            "-content",
            doc.to_str().unwrap(),
        ])
        .args([
            "-CAfile",
            authority.dir.join("ca/sign.pem").to_str().unwrap(),
            "-out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&v.stderr)
    );

    // A phone provisioned from the card on the reader.
    let phone = tmp.path().join("phone");
    let p = json_of(&shomei(
        sock,
        &[
            "phone",
            "provision",
            "--authority",
            &authority.url,
            "--card",
            "pcsc:",
            "--card-password",
            CARD_PW,
            "--phone",
            phone.to_str().unwrap(),
            "--sign-password",
            "PHONE2026",
            "--auth-pin",
            "2468",
            "--json",
        ],
    ));
    assert!(
        p["sign_serial"].is_string() && p["auth_serial"].is_string(),
        "{p}"
    );

    // Three wrong PINs over PC/SC block the key; each try was counted.
    for left in [2, 1, 0] {
        let (code, msg) = failure(&shomei(
            sock,
            &[
                "card",
                "sign",
                "--card",
                "pcsc:",
                "--kind",
                "auth",
                "--pin",
                "0000",
                "--in",
                doc.to_str().unwrap(),
                "--out",
                tmp.path().join("x.p7s").to_str().unwrap(),
            ],
        ));
        assert_eq!(code, 2, "{msg}");
        if left > 0 {
            assert!(msg.contains(&left.to_string()), "{left} tries left: {msg}");
        }
    }
    let status = json_of(&shomei(
        sock,
        &["card", "status", "--card", "pcsc:", "--json"],
    ));
    assert_eq!(status["auth_pin_tries_left"], 0);
    let (code, msg) = failure(&shomei(
        sock,
        &[
            "card",
            "sign",
            "--card",
            "pcsc:",
            "--kind",
            "auth",
            "--pin",
            CARD_PIN,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            tmp.path().join("y.p7s").to_str().unwrap(),
        ],
    ));
    assert_eq!(code, 2);
    assert!(msg.to_lowercase().contains("blocked"), "{msg}");
    // OpenSC sees the key blocked too: no try left, and a PKCS#11 login
    // with the right PIN is refused as locked.
    let (ok, pins, all) = opensc.run("pkcs15-tool", &["--list-pins"]);
    assert!(ok, "{all}");
    let auth_pin_tries: Vec<&str> = pins
        .split("PIN [")
        .filter(|block| block.starts_with("User Authentication PIN"))
        .filter_map(|block| block.lines().find(|l| l.contains("Tries left")))
        .collect();
    assert_eq!(auth_pin_tries.len(), 1, "{all}");
    assert!(
        auth_pin_tries[0].trim_end().ends_with(": 0")
            || auth_pin_tries[0].trim_end().ends_with(" 0"),
        "{all}"
    );
    let (ok, _, all) = opensc.auth_login(CARD_PIN, &["--list-objects"]);
    assert!(!ok && all.contains("CKR_PIN_LOCKED"), "{all}");

    // The card is pulled out (vpcd goes away): a clear one-line error, no panic.
    // pcscd notices the dropped link on its next poll; until then a command
    // may still find the reader "present", so wait for the first failure.
    let _ = vpcd.0.kill();
    let _ = vpcd.0.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = shomei(sock, &["card", "status", "--card", "pcsc:", "--json"]);
        if !out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, msg) = failure(&out);
    assert_ne!(code, 0);
    assert!(!msg.contains("panicked"), "{msg}");
    assert!(out.stdout.is_empty());

    // PINs and passwords went through pcscd in VERIFY; its log kept none.
    pcscd.assert_log_holds_no_apdu(&[CARD_PIN, CARD_PW, "0000", "PHONE2026"]);
}

#[test]
fn card_is_found_by_selecting_jpki_never_by_atr() {
    if !can_run(false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let authority = Authority::start(tmp.path());
    let card = tmp.path().join("tanaka.card");
    let issued = authority.issue(&card);

    // vpcd's first slot (PORT, reader "… 00 00") holds a card with the My
    // Number Card's ATR but no JPKI AP; the second (PORT+1, "… 00 01") ours.
    let (pcscd, port) = Pcscd::start();
    let sock = pcscd.socket.as_str();
    let stub = StubCard::start(port);
    let vpcd_log = tmp.path().join("serve-vpcd.log");
    let _vpcd = serve_vpcd(&card, port + 1, &vpcd_log);
    let _show_vpcd_log = ShowOnPanic(vpcd_log);

    // Naming the stub's reader: exit 2 and one line saying why, once pcscd
    // has seen the stub (before that the reader is empty: exit 1).
    let stub_reader = "pcsc:Shomei vpcd 00 00";
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = shomei(sock, &["card", "status", "--card", stub_reader, "--json"]);
        if out.status.code() != Some(1) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, msg) = failure(&out);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("no JPKI application"), "{msg}");
    assert!(out.stdout.is_empty());
    let refused = stub.selects();
    assert!(refused >= 1, "the stub was never asked to SELECT");

    // Without a name, the client tries the stub first (its ATR is the My
    // Number Card's), is refused the SELECT, and finds our card in the next
    // reader.
    let status = wait_for_status(sock, "pcsc:");
    assert_eq!(status["token"], "Card");
    assert_eq!(status["auth_serial"], issued["auth_serial"]);
    assert!(
        stub.selects() > refused,
        "the first reader was skipped without a SELECT"
    );
    // Our reader by name works too.
    let status = json_of(&shomei(
        sock,
        &[
            "card",
            "status",
            "--card",
            "pcsc:Shomei vpcd 00 01",
            "--json",
        ],
    ));
    assert_eq!(status["auth_serial"], issued["auth_serial"]);
}
