//! Scenario tests of the simulated secure element, named after the cases
//! they prove. One manufacturer, one device and one RSA key are made once
//! (RSA key generation is slow) and replayed into fresh in-memory elements.

use std::sync::OnceLock;
use std::time::Duration;

use shomei_core::{Signer, Timestamp};
use shomei_secure_element::attestation::AttestationError;
use shomei_secure_element::{
    BiometricStatus, GateId, GateStatus, KeyHandle, KeyKind, KeyPolicy, SeError, SeSigner,
    SecureElement, SharedElement, TamperKind, Unlock, UnlockMethod, UnlockScope, WipeReason,
    verify_attestation,
};
use time::macros::datetime;

use crate::device::DeviceRoot as _;
use crate::manufacturer;
use crate::{
    DEVICE_FILE, FusedIdentity, ManualClock, MemoryDeviceRoot, MemoryStore, SEALED_FILE,
    SimManufacturer, SimOptions, SimSecureElement,
};

const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);
const AUTH_PIN: &str = "1234";
const SIGN_PW: &str = "ABC123";
const FINGER: &[u8] = b"simulated fingerprint template #1";
const OTHER_FINGER: &[u8] = b"simulated fingerprint template #2";
const SIGN_CHALLENGE: &[u8] = b"authority challenge for the signing key";
const AUTH_CHALLENGE: &[u8] = b"authority challenge for the auth key";

/// A provisioned element with both PINs set, an RSA signing key `jpki.sign`
/// (signing password only) and a P-256 key `jpki.auth` (auth PIN or biometric).
struct Fixture {
    root: Vec<u8>,
    identity: FusedIdentity,
    sealed: Vec<u8>,
    counter: u64,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let m = SimManufacturer::generate(NOW).unwrap();
        let identity = m.new_device(NOW).unwrap();
        let store = MemoryStore::new();
        let device = MemoryDeviceRoot::new(identity.clone());
        let mut se =
            SimSecureElement::provision(store.clone(), device.clone(), SimOptions::default())
                .unwrap();
        se.set_pin(GateId::AuthPin, AUTH_PIN).unwrap();
        se.set_pin(GateId::SignPassword, SIGN_PW).unwrap();
        se.create_key(
            "jpki.sign",
            KeyKind::Rsa2048,
            KeyPolicy::PHONE_SIGN,
            SIGN_CHALLENGE,
        )
        .unwrap();
        se.create_key(
            "jpki.auth",
            KeyKind::EcP256,
            KeyPolicy::PHONE_AUTH,
            AUTH_CHALLENGE,
        )
        .unwrap();
        Fixture {
            root: m.root_cert_der().to_vec(),
            identity,
            sealed: store.sealed().unwrap(),
            counter: device.counter().unwrap(),
        }
    })
}

/// What a test holds besides the element: its storage, hardware and clock.
struct Rig {
    store: MemoryStore,
    device: MemoryDeviceRoot,
    clock: ManualClock,
}

impl Rig {
    fn new() -> Self {
        let f = fixture();
        let store = MemoryStore::new();
        store.set_sealed(Some(f.sealed.clone()));
        let device = MemoryDeviceRoot::new(f.identity.clone());
        device.set_counter(f.counter);
        Self {
            store,
            device,
            clock: ManualClock::new(),
        }
    }

    fn open(&self) -> Result<SimSecureElement, SeError> {
        SimSecureElement::open_with(
            self.store.clone(),
            self.device.clone(),
            SimOptions {
                clock: Box::new(self.clock.clone()),
                rng: Box::new(shomei_pki::SystemRandom::new()),
            },
        )
    }
}

fn open() -> (SimSecureElement, Rig) {
    let rig = Rig::new();
    (rig.open().unwrap(), rig)
}

fn keys(se: &SimSecureElement) -> (KeyHandle, KeyHandle) {
    (
        se.find_key("jpki.sign").unwrap(),
        se.find_key("jpki.auth").unwrap(),
    )
}

fn session() -> UnlockScope {
    UnlockScope::Session {
        ttl: Duration::from_secs(300),
        max_uses: 100,
    }
}

fn verify_ec(spki: &[u8], msg: &[u8], sig: &[u8]) {
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        shomei_pki::keys::spki_subject_public_key(spki).unwrap(),
    )
    .verify(msg, sig)
    .unwrap();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The DER prefix every RSA PKCS#8 key starts its body with:
/// `INTEGER 0, SEQUENCE { rsaEncryption, NULL }`.
const RSA_PKCS8_PREFIX: &[u8] = &[
    0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    0x05, 0x00,
];
/// …and every EC one: `INTEGER 0, SEQUENCE { id-ecPublicKey, prime256v1 }`.
const EC_PKCS8_PREFIX: &[u8] = &[
    0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// Every form in which key bytes could show up: raw, and hex either case.
fn forms(bytes: &[u8]) -> [Vec<u8>; 3] {
    [
        bytes.to_vec(),
        hex::encode(bytes).into_bytes(),
        hex::encode_upper(bytes).into_bytes(),
    ]
}

#[test]
fn keys_never_exported() {
    let (mut se, rig) = open();
    let (sign, auth) = keys(&se);
    let rsa_p8 = se.pkcs8_for_test(&sign);
    let ec_p8 = se.pkcs8_for_test(&auth);
    assert!(contains(&rsa_p8, RSA_PKCS8_PREFIX));
    assert!(contains(&ec_p8, EC_PKCS8_PREFIX));
    assert_eq!(ec_p8[34..36], [0x04, 0x20], "the private scalar follows");
    // Private-only slices: the tail of the RSA key (CRT values) and the
    // middle of d; the EC private scalar sits right after the prefix.
    let needles: Vec<&[u8]> = vec![
        &rsa_p8[rsa_p8.len() - 48..],
        &rsa_p8[420..452],
        &ec_p8[36..68],
        RSA_PKCS8_PREFIX,
        EC_PKCS8_PREFIX,
    ];

    // Everything any API answers.
    let mut outputs: Vec<Vec<u8>> = Vec::new();
    let s = se
        .verify_pin(GateId::SignPassword, SIGN_PW, session())
        .unwrap();
    let a = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    for k in [&sign, &auth] {
        outputs.push(se.public_key(k).unwrap());
        outputs.extend(se.attest(k).unwrap().into_certs());
        outputs.push(format!("{:?}", se.key_info(k).unwrap()).into_bytes());
    }
    outputs.push(se.sign(&sign, b"msg", &s).unwrap());
    outputs.push(
        se.sign_digest_info(&sign, &shomei_pki::keys::sha256_digest_info(b"msg"), &s)
            .unwrap(),
    );
    outputs.push(se.sign(&auth, b"msg", &a).unwrap());
    outputs.push(format!("{se:?} {:?} {s:?} {a:?}", se.keys()).into_bytes());
    for output in &outputs {
        for needle in &needles {
            for form in forms(needle) {
                assert!(!contains(output, &form), "an API output holds key bytes");
            }
        }
    }

    // The sealed image (in memory and as a file) holds no key in clear.
    let sealed = rig.store.sealed().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = SimManufacturer::create(dir.path(), NOW).unwrap();
    let device_dir = dir.path().join("phone");
    std::fs::create_dir(&device_dir).unwrap();
    let mut file_se = m.manufacture_device(&device_dir, NOW).unwrap();
    file_se.set_pin(GateId::AuthPin, AUTH_PIN).unwrap();
    let k = file_se
        .create_key("k", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"c")
        .unwrap();
    let file_p8 = file_se.pkcs8_for_test(&k);
    let on_disk = std::fs::read(device_dir.join(SEALED_FILE)).unwrap();
    for (image, extra) in [(&sealed, &rsa_p8), (&on_disk, &file_p8)] {
        for needle in needles
            .iter()
            .copied()
            .chain([extra.as_slice(), &extra[36..68]])
        {
            for form in forms(needle) {
                assert!(!contains(image, &form), "the sealed image holds key bytes");
            }
        }
    }
}

#[test]
fn pin_try_counted_before_comparison_survives_crash() {
    // 1. The try is committed, then the power fails before the reset: even
    //    the right PIN leaves the counter decremented after the crash.
    let (mut se, rig) = open();
    rig.store.fail_after(1);
    let err = se
        .verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap_err();
    assert!(matches!(err, SeError::Storage(_)), "{err}");
    assert_eq!(se.tries_left(GateId::AuthPin), 2, "RAM never refunds");
    assert_eq!(
        se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
            .unwrap_err(),
        SeError::MustReopen
    );
    drop(se);
    rig.store.heal();
    let se = rig.open().unwrap();
    assert_eq!(se.tries_left(GateId::AuthPin), 2);

    // 2. The try itself cannot be committed: no comparison happens, so
    //    right and wrong PINs get the same answer and nothing is learnt.
    for pin in [AUTH_PIN, "9999"] {
        let mut se2 = rig.open().unwrap();
        rig.store.fail_after(0);
        let err = se2
            .verify_pin(GateId::AuthPin, pin, UnlockScope::Once)
            .unwrap_err();
        assert!(matches!(err, SeError::Storage(_)), "{err}");
        rig.store.heal();
    }
    drop(se);
    let mut se = rig.open().unwrap();
    assert_eq!(se.tries_left(GateId::AuthPin), 2);

    // 3. A crash between writing the image and raising the device counter
    //    is not mistaken for a rollback: the next open catches up.
    rig.device.fail_after(0);
    assert!(matches!(
        se.verify_pin(GateId::AuthPin, "9999", UnlockScope::Once),
        Err(SeError::Storage(_))
    ));
    drop(se);
    rig.device.heal();
    let mut se = rig.open().unwrap();
    assert_eq!(se.tries_left(GateId::AuthPin), 1);
    assert_eq!(se.last_wipe(), None);
    // And success still resets.
    se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    assert_eq!(se.tries_left(GateId::AuthPin), 3);
}

#[test]
fn auth_pin_blocks_after_three() {
    let (mut se, rig) = open();
    let (_, auth) = keys(&se);
    // A malformed PIN costs no try.
    assert_eq!(
        se.verify_pin(GateId::AuthPin, "12345", UnlockScope::Once)
            .unwrap_err(),
        SeError::BadPinFormat(GateId::AuthPin)
    );
    // A wrong try, then the right PIN: reset to 3.
    assert_eq!(
        se.verify_pin(GateId::AuthPin, "0000", UnlockScope::Once)
            .unwrap_err(),
        SeError::WrongPin {
            gate: GateId::AuthPin,
            tries_left: 2
        }
    );
    let before = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    assert_eq!(se.tries_left(GateId::AuthPin), 3);
    for left in [2, 1] {
        assert_eq!(
            se.verify_pin(GateId::AuthPin, "0000", UnlockScope::Once)
                .unwrap_err(),
            SeError::WrongPin {
                gate: GateId::AuthPin,
                tries_left: left
            }
        );
    }
    // An attempt ends earlier unlocks of the gate.
    assert_eq!(
        se.sign(&auth, b"m", &before).unwrap_err(),
        SeError::NotUnlocked
    );
    // The third wrong try answers "blocked"; then even the right PIN does.
    assert_eq!(
        se.verify_pin(GateId::AuthPin, "0000", UnlockScope::Once)
            .unwrap_err(),
        SeError::Blocked(GateId::AuthPin)
    );
    assert_eq!(
        se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
            .unwrap_err(),
        SeError::Blocked(GateId::AuthPin)
    );
    assert_eq!(se.gate_status(GateId::AuthPin), GateStatus::Blocked);
    assert_eq!(se.tries_left(GateId::AuthPin), 0);
    // The biometric cannot get around a blocked PIN.
    se.enrol_biometric(FINGER).unwrap();
    assert_eq!(
        se.verify_biometric(GateId::AuthPin, FINGER, UnlockScope::Once)
            .unwrap_err(),
        SeError::Blocked(GateId::AuthPin)
    );
    // Durable, and the other gate is untouched.
    drop(se);
    let se = rig.open().unwrap();
    assert_eq!(se.gate_status(GateId::AuthPin), GateStatus::Blocked);
    assert_eq!(se.tries_left(GateId::SignPassword), 5);
}

#[test]
fn sign_password_blocks_after_five() {
    let (mut se, rig) = open();
    let (sign, _) = keys(&se);
    assert_eq!(
        se.verify_pin(GateId::SignPassword, "abc123", UnlockScope::Once)
            .unwrap_err(),
        SeError::BadPinFormat(GateId::SignPassword)
    );
    assert_eq!(se.tries_left(GateId::SignPassword), 5);
    for left in [4, 3, 2, 1] {
        assert_eq!(
            se.verify_pin(GateId::SignPassword, "WRONG1", UnlockScope::Once)
                .unwrap_err(),
            SeError::WrongPin {
                gate: GateId::SignPassword,
                tries_left: left
            }
        );
    }
    assert_eq!(
        se.verify_pin(GateId::SignPassword, "WRONG1", UnlockScope::Once)
            .unwrap_err(),
        SeError::Blocked(GateId::SignPassword)
    );
    assert_eq!(
        se.verify_pin(GateId::SignPassword, SIGN_PW, UnlockScope::Once)
            .unwrap_err(),
        SeError::Blocked(GateId::SignPassword)
    );
    drop(se);
    let mut se = rig.open().unwrap();
    assert_eq!(se.gate_status(GateId::SignPassword), GateStatus::Blocked);
    // A blocked gate creates no more keys either.
    assert_eq!(
        se.create_key("x", KeyKind::EcP256, KeyPolicy::PHONE_SIGN, b"")
            .unwrap_err(),
        SeError::Blocked(GateId::SignPassword)
    );
    // The signing key is unusable: nothing can unlock it.
    let a = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    assert_eq!(
        se.sign(&sign, b"m", &a).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::SignPassword
        }
    );
}

#[test]
fn biometric_unlocks_auth_key_not_signing_key() {
    let (mut se, _rig) = open();
    let (sign, auth) = keys(&se);
    assert_eq!(se.biometric_status(), BiometricStatus::NotEnrolled);
    assert_eq!(
        se.verify_biometric(GateId::AuthPin, FINGER, UnlockScope::Once)
            .unwrap_err(),
        SeError::BiometricNotEnrolled
    );
    se.enrol_biometric(FINGER).unwrap();
    assert_eq!(
        se.enrol_biometric(FINGER).unwrap_err(),
        SeError::BiometricAlreadyEnrolled
    );
    // A new enrolment waits for the PIN.
    assert_eq!(se.biometric_status(), BiometricStatus::NeedsPin);
    assert_eq!(
        se.verify_biometric(GateId::AuthPin, FINGER, UnlockScope::Once)
            .unwrap_err(),
        SeError::BiometricNeedsPin
    );
    se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    assert_eq!(
        se.biometric_status(),
        BiometricStatus::Ready { tries_left: 5 }
    );

    let bio = se
        .verify_biometric(GateId::AuthPin, FINGER, session())
        .unwrap();
    assert_eq!(
        (bio.gate(), bio.method()),
        (GateId::AuthPin, UnlockMethod::Biometric)
    );
    let sig = se.sign(&auth, b"login", &bio).unwrap();
    verify_ec(&se.public_key(&auth).unwrap(), b"login", &sig);
    // The same unlock does not reach the signing key…
    assert_eq!(
        se.sign(&sign, b"contract", &bio).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::SignPassword
        }
    );
    // …nor can a biometric unlock the signing password gate, nor change the PIN.
    assert_eq!(
        se.verify_biometric(GateId::SignPassword, FINGER, UnlockScope::Once)
            .unwrap_err(),
        SeError::BiometricNotAllowed(GateId::SignPassword)
    );
    assert_eq!(
        KeyPolicy::new(GateId::SignPassword, true).unwrap_err(),
        SeError::BiometricNotAllowed(GateId::SignPassword)
    );
    assert_eq!(
        se.change_pin(GateId::AuthPin, &bio, "5678").unwrap_err(),
        SeError::WrongGate {
            needed: GateId::AuthPin
        }
    );
    // Only the signing password signs.
    let pw = se
        .verify_pin(GateId::SignPassword, SIGN_PW, UnlockScope::Once)
        .unwrap();
    let sig = se.sign(&sign, b"contract", &pw).unwrap();
    shomei_pki::csr::verify_rsa_sha256(&se.public_key(&sign).unwrap(), b"contract", &sig).unwrap();

    // Five failed matches suspend the biometric until the PIN.
    for left in (0..5).rev() {
        assert_eq!(
            se.verify_biometric(GateId::AuthPin, OTHER_FINGER, UnlockScope::Once)
                .unwrap_err(),
            SeError::BiometricMismatch { tries_left: left }
        );
    }
    assert_eq!(
        se.verify_biometric(GateId::AuthPin, FINGER, UnlockScope::Once)
            .unwrap_err(),
        SeError::BiometricNeedsPin
    );
    se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    se.verify_biometric(GateId::AuthPin, FINGER, UnlockScope::Once)
        .unwrap();
}

#[test]
fn biometric_change_invalidates_until_pin() {
    let (mut se, rig) = open();
    let (_, auth) = keys(&se);
    se.enrol_biometric(FINGER).unwrap();
    se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    let bio = se
        .verify_biometric(GateId::AuthPin, FINGER, session())
        .unwrap();
    let pin = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    // (verify_pin ended the earlier biometric session of the same gate)
    assert_eq!(
        se.sign(&auth, b"m", &bio).unwrap_err(),
        SeError::NotUnlocked
    );
    let bio = se
        .verify_biometric(GateId::AuthPin, FINGER, session())
        .unwrap();
    se.sign(&auth, b"m", &bio).unwrap();

    se.change_biometric_enrolment(OTHER_FINGER).unwrap();
    // The live biometric session is gone; the PIN session is not.
    assert_eq!(
        se.sign(&auth, b"m", &bio).unwrap_err(),
        SeError::NotUnlocked
    );
    se.sign(&auth, b"m", &pin).unwrap();
    // Neither the old nor the new finger unlocks, and it survives a reopen.
    assert_eq!(se.biometric_status(), BiometricStatus::NeedsPin);
    for finger in [FINGER, OTHER_FINGER] {
        assert_eq!(
            se.verify_biometric(GateId::AuthPin, finger, UnlockScope::Once)
                .unwrap_err(),
            SeError::BiometricNeedsPin
        );
    }
    drop(se);
    let mut se = rig.open().unwrap();
    assert_eq!(se.biometric_status(), BiometricStatus::NeedsPin);
    // The PIN, once, restores it — for the new finger only.
    se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    assert_eq!(
        se.verify_biometric(GateId::AuthPin, FINGER, UnlockScope::Once)
            .unwrap_err(),
        SeError::BiometricMismatch { tries_left: 4 }
    );
    let bio = se
        .verify_biometric(GateId::AuthPin, OTHER_FINGER, UnlockScope::Once)
        .unwrap();
    se.sign(&auth, b"m", &bio).unwrap();
    // Removing the enrolment ends biometric unlocks too.
    let bio = se
        .verify_biometric(GateId::AuthPin, OTHER_FINGER, session())
        .unwrap();
    se.remove_biometric().unwrap();
    assert_eq!(
        se.sign(&auth, b"m", &bio).unwrap_err(),
        SeError::NotUnlocked
    );
    assert_eq!(se.biometric_status(), BiometricStatus::NotEnrolled);
}

/// A device folder with both PINs and one EC key, its manufacturer, and a
/// copy of the sealed file as it was before the key was created.
fn file_device(root: &std::path::Path, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    let m = SimManufacturer::load(root).unwrap();
    let mut se = m.manufacture_device(&dir, NOW).unwrap();
    se.set_pin(GateId::AuthPin, AUTH_PIN).unwrap();
    let older = std::fs::read(dir.join(SEALED_FILE)).unwrap();
    se.create_key("k", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"c")
        .unwrap();
    (dir, older)
}

fn assert_wiped(dir: &std::path::Path, kind: TamperKind) {
    let err = SimSecureElement::open_dir(dir).unwrap_err();
    assert_eq!(err, SeError::Tampered(kind), "{err}");
    assert!(err.to_string().contains("wiped"), "{err}");
    let se = SimSecureElement::open_dir(dir).unwrap();
    assert_eq!(se.last_wipe(), Some(WipeReason::Tampered(kind)));
    assert!(se.keys().is_empty());
    assert_eq!(se.gate_status(GateId::AuthPin), GateStatus::NotSet);
    assert_eq!(se.biometric_status(), BiometricStatus::NotEnrolled);
}

#[test]
fn tampered_file_is_detected_and_wipes() {
    let tmp = tempfile::tempdir().unwrap();
    SimManufacturer::create(tmp.path(), NOW).unwrap();
    let edit = |dir: &std::path::Path, f: &dyn Fn(&mut Vec<u8>)| {
        let p = dir.join(SEALED_FILE);
        let mut bytes = std::fs::read(&p).unwrap();
        f(&mut bytes);
        std::fs::write(&p, bytes).unwrap();
    };
    // An untouched device opens with its key.
    let (dir, _) = file_device(tmp.path(), "intact");
    assert_eq!(SimSecureElement::open_dir(&dir).unwrap().keys().len(), 1);

    // Byte flips: in the ciphertext, the tag, the counter, the magic, the device id.
    for (name, at, kind) in [
        ("flip-body", 60, TamperKind::Authentication),
        ("flip-tag", usize::MAX, TamperKind::Authentication),
        ("flip-counter", 33, TamperKind::Authentication),
        ("flip-magic", 0, TamperKind::BadHeader),
        ("flip-device", 12, TamperKind::WrongDevice),
    ] {
        let (dir, _) = file_device(tmp.path(), name);
        edit(&dir, &|b| {
            let i = at.min(b.len() - 1);
            b[i] ^= 0x40;
        });
        assert_wiped(&dir, kind);
    }
    // Truncation: into the ciphertext, and below a header.
    let (dir, _) = file_device(tmp.path(), "cut-body");
    edit(&dir, &|b| b.truncate(b.len() - 20));
    assert_wiped(&dir, TamperKind::Authentication);
    let (dir, _) = file_device(tmp.path(), "cut-header");
    edit(&dir, &|b| b.truncate(30));
    assert_wiped(&dir, TamperKind::Truncated);

    // Rollback: the copy from before the key was created, put back.
    let (dir, older) = file_device(tmp.path(), "rollback");
    std::fs::write(dir.join(SEALED_FILE), &older).unwrap();
    assert_wiped(&dir, TamperKind::Rollback);
    // …and putting the tampered file back after the wipe is a rollback too.
    std::fs::write(dir.join(SEALED_FILE), &older).unwrap();
    assert_wiped(&dir, TamperKind::Rollback);

    // Another device's (authentic) file, and a deleted file.
    let (dir, _) = file_device(tmp.path(), "swap");
    let (other, _) = file_device(tmp.path(), "other");
    std::fs::copy(other.join(SEALED_FILE), dir.join(SEALED_FILE)).unwrap();
    assert_wiped(&dir, TamperKind::WrongDevice);
    let (dir, _) = file_device(tmp.path(), "deleted");
    std::fs::remove_file(dir.join(SEALED_FILE)).unwrap();
    assert_wiped(&dir, TamperKind::Missing);

    // The device identity survives the wipe: new keys still attest.
    let mut se = SimSecureElement::open_dir(&dir).unwrap();
    se.set_pin(GateId::AuthPin, AUTH_PIN).unwrap();
    let k = se
        .create_key("again", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"n")
        .unwrap();
    let root = std::fs::read(tmp.path().join(crate::manufacturer::ROOT_CERT_FILE)).unwrap();
    verify_attestation(
        se.attest(&k).unwrap().certs(),
        &[root],
        &se.public_key(&k).unwrap(),
        b"n",
        NOW,
    )
    .unwrap();
    assert!(dir.join(DEVICE_FILE).exists());

    // In memory too: a rolled-back device counter (image ahead) is caught.
    let rig = Rig::new();
    rig.device.set_counter(fixture().counter - 2);
    assert_eq!(
        rig.open().unwrap_err(),
        SeError::Tampered(TamperKind::CounterAhead)
    );
}

#[test]
fn attestation_chain_verifies_and_binds_challenge() {
    let (se, _rig) = open();
    let f = fixture();
    let (sign, auth) = keys(&se);
    let roots = [f.root.clone()];
    let chain = se.attest(&sign).unwrap();
    assert_eq!(chain.certs().len(), 3);
    let spki = se.public_key(&sign).unwrap();
    let ok = verify_attestation(chain.certs(), &roots, &spki, SIGN_CHALLENGE, NOW).unwrap();
    assert_eq!(ok.device_id, se.device_id());
    assert_eq!(ok.policy, KeyPolicy::PHONE_SIGN);
    assert_eq!(ok.kind, KeyKind::Rsa2048);
    let auth_ok = verify_attestation(
        se.attest(&auth).unwrap().certs(),
        &roots,
        &se.public_key(&auth).unwrap(),
        AUTH_CHALLENGE,
        NOW,
    )
    .unwrap();
    assert_eq!(auth_ok.policy, KeyPolicy::PHONE_AUTH);
    assert_eq!(auth_ok.kind, KeyKind::EcP256);
    // Without the root in the chain, anchored by the trusted root.
    verify_attestation(&chain.certs()[..2], &roots, &spki, SIGN_CHALLENGE, NOW).unwrap();

    let check = |certs: &[Vec<u8>], roots: &[Vec<u8>], spki: &[u8], c: &[u8], now| {
        verify_attestation(certs, roots, spki, c, now).unwrap_err()
    };
    // Another challenge, another key.
    assert_eq!(
        check(chain.certs(), &roots, &spki, AUTH_CHALLENGE, NOW),
        AttestationError::ChallengeMismatch
    );
    assert_eq!(
        check(
            chain.certs(),
            &roots,
            &se.public_key(&auth).unwrap(),
            SIGN_CHALLENGE,
            NOW
        ),
        AttestationError::KeyMismatch
    );
    // Another manufacturer's root is not trusted.
    let stranger = SimManufacturer::generate(NOW).unwrap();
    assert_eq!(
        check(
            chain.certs(),
            &[stranger.root_cert_der().to_vec()],
            &spki,
            SIGN_CHALLENGE,
            NOW
        ),
        AttestationError::UntrustedRoot
    );
    // Outside the validity (the key certificate shares the device's).
    assert_eq!(
        check(
            chain.certs(),
            &roots,
            &spki,
            SIGN_CHALLENGE,
            NOW + time::Duration::days(365 * 16)
        ),
        AttestationError::Expired { position: 0 }
    );
    assert_eq!(
        check(
            chain.certs(),
            &roots,
            &spki,
            SIGN_CHALLENGE,
            NOW - time::Duration::days(1)
        ),
        AttestationError::NotYetValid { position: 0 }
    );
    // Another device's certificate in the middle.
    let other = stranger.new_device(NOW).unwrap();
    let mut swapped = chain.certs().to_vec();
    swapped[1] = other.device_cert().to_vec();
    swapped[2] = stranger.root_cert_der().to_vec();
    assert_eq!(
        check(
            &swapped,
            &[stranger.root_cert_der().to_vec()],
            &spki,
            SIGN_CHALLENGE,
            NOW
        ),
        AttestationError::BadSignature { position: 0 }
    );
    // A changed byte in the signed part of the leaf.
    let mut bent = chain.certs().to_vec();
    let n = bent[0].len();
    bent[0][n / 2] ^= 0x01;
    assert!(matches!(
        check(&bent, &roots, &spki, SIGN_CHALLENGE, NOW),
        AttestationError::BadSignature { position: 0 } | AttestationError::Malformed { .. }
    ));
    // The key certificate cannot act as an issuer.
    let leaf_as_ca = vec![chain.certs()[0].clone(), chain.certs()[0].clone()];
    assert!(verify_attestation(&leaf_as_ca, &roots, &spki, SIGN_CHALLENGE, NOW).is_err());
}

#[test]
fn attestation_chain_passes_openssl() {
    let (se, _rig) = open();
    let (sign, _) = keys(&se);
    let chain = se.attest(&sign).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str, der: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, der).unwrap();
        let out = dir.path().join(format!("{name}.pem"));
        let st = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&p)
            .arg("-out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        out
    };
    let leaf = pem("leaf", &chain.certs()[0]);
    let device = pem("device", &chain.certs()[1]);
    let root = pem("root", &chain.certs()[2]);
    let at = (NOW + time::Duration::days(1)).unix_timestamp().to_string();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-attime", &at, "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&device)
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wipe_removes_everything() {
    let (mut se, rig) = open();
    let (sign, auth) = keys(&se);
    se.enrol_biometric(FINGER).unwrap();
    let unlock = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    se.wipe().unwrap();
    assert_eq!(se.last_wipe(), Some(WipeReason::Requested));
    assert!(se.keys().is_empty());
    for gate in GateId::ALL {
        assert_eq!(se.gate_status(gate), GateStatus::NotSet);
    }
    assert_eq!(se.biometric_status(), BiometricStatus::NotEnrolled);
    assert_eq!(
        se.sign(&auth, b"m", &unlock).unwrap_err(),
        SeError::UnknownKey
    );
    assert_eq!(se.public_key(&sign).unwrap_err(), SeError::UnknownKey);
    assert_eq!(se.attest(&sign).unwrap_err(), SeError::UnknownKey);
    // A new key with the old label is not reachable through the old handle,
    // and the old unlock does not open it.
    se.set_pin(GateId::AuthPin, "4321").unwrap();
    let fresh = se
        .create_key("jpki.auth", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"")
        .unwrap();
    assert_ne!(fresh, auth);
    assert_eq!(se.public_key(&auth).unwrap_err(), SeError::UnknownKey);
    assert_eq!(
        se.sign(&fresh, b"m", &unlock).unwrap_err(),
        SeError::NotUnlocked
    );
    // Durable, and the sealed image no longer holds the old key even
    // encrypted: its PKCS#8 is gone from the decrypted image.
    drop(se);
    let se = rig.open().unwrap();
    assert_eq!(se.last_wipe(), Some(WipeReason::Requested));
    assert_eq!(se.keys().len(), 1);
    assert_eq!(se.find_key("jpki.sign").unwrap_err(), SeError::UnknownKey);
}

#[test]
fn sign_overhead() {
    let r = crate::bench::measure_sign_overhead(64).unwrap();
    eprintln!(
        "sign overhead: raw {:?}/sign, secure element {:?}/sign, {:+.2}% ({} iterations, {} commits while signing)",
        r.raw_per_sign,
        r.element_per_sign,
        r.overhead_percent,
        r.iterations,
        r.commits_while_signing
    );
    assert_eq!(r.commits_while_signing, 0, "signing must not write storage");
}

#[test]
fn unlock_scopes_and_proofs() {
    let (mut se, rig) = open();
    let (sign, auth) = keys(&se);
    // Once: one operation.
    let once = se
        .verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    se.sign(&auth, b"1", &once).unwrap();
    assert_eq!(
        se.sign(&auth, b"2", &once).unwrap_err(),
        SeError::NotUnlocked
    );
    // A once-unlock also expires.
    let once = se
        .verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    rig.clock.advance(crate::ONCE_TTL);
    assert_eq!(
        se.sign(&auth, b"x", &once).unwrap_err(),
        SeError::NotUnlocked
    );
    // Session: bounded uses, and expiry by the injected clock.
    let s = se
        .verify_pin(
            GateId::AuthPin,
            AUTH_PIN,
            UnlockScope::Session {
                ttl: Duration::from_secs(30),
                max_uses: 2,
            },
        )
        .unwrap();
    se.sign(&auth, b"1", &s).unwrap();
    se.sign(&auth, b"2", &s).unwrap();
    assert_eq!(se.sign(&auth, b"3", &s).unwrap_err(), SeError::NotUnlocked);
    let s = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    rig.clock.advance(Duration::from_secs(299));
    se.sign(&auth, b"ok", &s).unwrap();
    rig.clock.advance(Duration::from_secs(1));
    assert_eq!(
        se.sign(&auth, b"late", &s).unwrap_err(),
        SeError::NotUnlocked
    );
    // Too long a session is refused before any try is spent.
    assert!(matches!(
        se.verify_pin(
            GateId::AuthPin,
            AUTH_PIN,
            UnlockScope::Session {
                ttl: Duration::from_secs(3600),
                max_uses: 1
            }
        ),
        Err(SeError::BadInput(_))
    ));
    assert_eq!(se.tries_left(GateId::AuthPin), 3);
    // lock_all ends sessions; a forged unlock is refused; so is one from
    // before a reopen, and one for the wrong gate is not spent.
    let s = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    se.lock_all();
    assert_eq!(se.sign(&auth, b"m", &s).unwrap_err(), SeError::NotUnlocked);
    let forged = Unlock::issue([0; 16], [0; 16], GateId::AuthPin, UnlockMethod::Knowledge);
    assert_eq!(
        se.sign(&auth, b"m", &forged).unwrap_err(),
        SeError::NotUnlocked
    );
    let once = se
        .verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    assert_eq!(
        se.sign(&sign, b"m", &once).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::SignPassword
        }
    );
    se.sign(&auth, b"m", &once).unwrap();
    let s = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    drop(se);
    let mut se = rig.open().unwrap();
    assert_eq!(se.sign(&auth, b"m", &s).unwrap_err(), SeError::NotUnlocked);
}

#[test]
fn signatures_verify_and_digest_info_matches() {
    let (mut se, _rig) = open();
    let (sign, auth) = keys(&se);
    let pw = se
        .verify_pin(GateId::SignPassword, SIGN_PW, session())
        .unwrap();
    let spki = se.public_key(&sign).unwrap();
    let a = se.sign(&sign, b"JPKI", &pw).unwrap();
    let b = se
        .sign_digest_info(&sign, &shomei_pki::keys::sha256_digest_info(b"JPKI"), &pw)
        .unwrap();
    assert_eq!(a, b, "PKCS#1 v1.5 is deterministic");
    shomei_pki::csr::verify_rsa_sha256(&spki, b"JPKI", &a).unwrap();
    assert!(matches!(
        se.sign_digest_info(&sign, b"\x30\x00", &pw),
        Err(SeError::BadInput(_))
    ));
    let au = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    assert!(matches!(
        se.sign_digest_info(&auth, &shomei_pki::keys::sha256_digest_info(b"x"), &au),
        Err(SeError::Unsupported(_))
    ));
}

#[test]
fn se_signer_builds_a_csr_the_authority_accepts() {
    let (mut se, _rig) = open();
    let (sign, _) = keys(&se);
    let pw = se
        .verify_pin(GateId::SignPassword, SIGN_PW, UnlockScope::Once)
        .unwrap();
    let boxed: Box<dyn SecureElement> = Box::new(se);
    let shared: SharedElement = std::sync::Arc::new(std::sync::Mutex::new(boxed));
    let signer = SeSigner::new(shared.clone(), sign, pw).unwrap();
    let csr = shomei_pki::csr::build_csr(&signer, "phone").unwrap();
    let checked = shomei_pki::csr::check_csr(&csr).unwrap();
    assert_eq!(checked.spki(), signer.public_key_spki());
    // The once-unlock is spent: the next signature is refused as locked.
    assert_eq!(
        signer.sign(b"again").unwrap_err(),
        shomei_core::SignError::Locked
    );
}

#[test]
fn gates_and_keys_refuse_bad_requests() {
    let (mut se, rig) = open();
    assert_eq!(
        se.set_pin(GateId::AuthPin, "1111").unwrap_err(),
        SeError::GateAlreadySet(GateId::AuthPin)
    );
    assert_eq!(
        se.create_key("jpki.sign", KeyKind::EcP256, KeyPolicy::PHONE_SIGN, b"")
            .unwrap_err(),
        SeError::LabelTaken
    );
    assert_eq!(
        se.create_key("no spaces", KeyKind::EcP256, KeyPolicy::PHONE_SIGN, b"")
            .unwrap_err(),
        SeError::BadLabel
    );
    assert!(matches!(
        se.create_key("x", KeyKind::EcP256, KeyPolicy::PHONE_SIGN, &[0; 129]),
        Err(SeError::BadInput(_))
    ));
    // Change the signing password: needs a knowledge unlock of that gate.
    let pw = se
        .verify_pin(GateId::SignPassword, SIGN_PW, UnlockScope::Once)
        .unwrap();
    assert_eq!(
        se.change_pin(GateId::SignPassword, &pw, "short")
            .unwrap_err(),
        SeError::BadPinFormat(GateId::SignPassword)
    );
    se.change_pin(GateId::SignPassword, &pw, "NEWPASS9")
        .unwrap();
    assert_eq!(
        se.verify_pin(GateId::SignPassword, SIGN_PW, UnlockScope::Once)
            .unwrap_err(),
        SeError::WrongPin {
            gate: GateId::SignPassword,
            tries_left: 4
        }
    );
    se.verify_pin(GateId::SignPassword, "NEWPASS9", UnlockScope::Once)
        .unwrap();
    // Errors and Debug never show a PIN.
    let text = format!(
        "{:?} {}",
        SeError::WrongPin {
            gate: GateId::AuthPin,
            tries_left: 1
        },
        SeError::BadPinFormat(GateId::SignPassword)
    );
    assert!(
        !text.contains(AUTH_PIN) && !text.contains("NEWPASS9"),
        "{text}"
    );
    // An empty element is not provisioned; a provisioned one cannot be again.
    let empty = MemoryStore::new();
    let hw = MemoryDeviceRoot::new(fixture().identity.clone());
    assert_eq!(
        SimSecureElement::open(empty.clone(), hw.clone()).unwrap_err(),
        SeError::NotProvisioned
    );
    assert_eq!(
        SimSecureElement::provision(rig.store.clone(), rig.device.clone(), SimOptions::default())
            .unwrap_err(),
        SeError::AlreadyProvisioned
    );
    // Gate must be set before a key can be created under it.
    let mut blank = SimSecureElement::provision(empty, hw, SimOptions::default()).unwrap();
    assert_eq!(
        blank
            .create_key("k", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"")
            .unwrap_err(),
        SeError::GateNotSet(GateId::AuthPin)
    );
    // The trait is object safe.
    let boxed: Box<dyn SecureElement> = Box::new(blank);
    assert_eq!(boxed.device_id(), fixture().identity.device_id());
}

#[test]
fn manufacturer_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let m = SimManufacturer::create(dir.path(), NOW).unwrap();
    assert!(matches!(
        SimManufacturer::create(dir.path(), NOW),
        Err(SeError::AlreadyProvisioned)
    ));
    let loaded = SimManufacturer::load(dir.path()).unwrap();
    assert_eq!(loaded.root_cert_der(), m.root_cert_der());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join(crate::manufacturer::ROOT_KEY_FILE);
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let phone = dir.path().join("phone");
    std::fs::create_dir(&phone).unwrap();
    let se = loaded.manufacture_device(&phone, NOW).unwrap();
    assert_eq!(se.manufacturer_root(), m.root_cert_der());
    // The folder is held while the element lives.
    assert!(SimSecureElement::open_dir(&phone).is_err());
    drop(se);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [DEVICE_FILE, SEALED_FILE] {
            let mode = std::fs::metadata(phone.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    SimSecureElement::open_dir(&phone).unwrap();
    assert!(matches!(
        loaded.manufacture_device(&phone, NOW),
        Err(SeError::AlreadyProvisioned)
    ));
}

#[test]
fn development_manufacturer_loads_and_attests_devices() {
    let m = SimManufacturer::development().unwrap();
    assert_eq!(m.root_cert_der(), SimManufacturer::development_root_der());
    // Its devices chain to the published root.
    let dev = m.new_device(NOW).unwrap();
    assert_eq!(dev.root_cert(), SimManufacturer::development_root_der());
}

/// Rewrites `dev/` with a new development root valid 2026-01-01 to 2046.
#[test]
#[ignore = "rewrites the committed development root"]
fn regenerate_development_manufacturer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dev");
    for f in [manufacturer::ROOT_KEY_FILE, manufacturer::ROOT_CERT_FILE] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    SimManufacturer::create(&dir, datetime!(2026-01-01 00:00:00 UTC)).unwrap();
}

// ------------------------------------------------------------------ key agreement

/// A peer's P-256 ECDH key, outside any element.
fn peer_key() -> (aws_lc_rs::agreement::PrivateKey, Vec<u8>) {
    use aws_lc_rs::agreement::{ECDH_P256, PrivateKey};
    let private = PrivateKey::generate(&ECDH_P256).unwrap();
    let public = private.compute_public_key().unwrap().as_ref().to_vec();
    (private, public)
}

/// ECDH done by the peer with its own private key and the element key's
/// public point (the independent side of the agreement).
fn peer_side_ecdh(private: &aws_lc_rs::agreement::PrivateKey, spki: &[u8]) -> Vec<u8> {
    use aws_lc_rs::agreement::{ECDH_P256, UnparsedPublicKey, agree};
    let point = shomei_pki::keys::spki_subject_public_key(spki).unwrap();
    agree(
        private,
        UnparsedPublicKey::new(&ECDH_P256, point),
        (),
        |z| Ok(z.to_vec()),
    )
    .unwrap()
}

#[test]
fn agree_is_gated_like_sign_and_matches_an_independent_ecdh() {
    let (mut se, _rig) = open();
    let (_, auth) = keys(&se);
    let spki = se.public_key(&auth).unwrap();
    let (peer, peer_point) = peer_key();
    let expected = peer_side_ecdh(&peer, &spki);
    assert_eq!(expected.len(), 32);

    // No unlock: a hand-made one names no session.
    let forged = Unlock::issue([0; 16], [7; 16], GateId::AuthPin, UnlockMethod::Knowledge);
    assert_eq!(
        se.agree(&auth, &peer_point, &forged).unwrap_err(),
        SeError::NotUnlocked
    );
    // The signing password does not open the auth-PIN key.
    let pw = se
        .verify_pin(GateId::SignPassword, SIGN_PW, UnlockScope::Once)
        .unwrap();
    assert_eq!(
        se.agree(&auth, &peer_point, &pw).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::AuthPin
        }
    );
    // A wrong PIN counts against the same retry counter as for signing.
    assert_eq!(
        se.verify_pin(GateId::AuthPin, "0000", UnlockScope::Once)
            .unwrap_err(),
        SeError::WrongPin {
            gate: GateId::AuthPin,
            tries_left: 2
        }
    );
    assert_eq!(se.tries_left(GateId::AuthPin), 2);

    // The PIN unlocks one agreement; it matches the peer's own ECDH.
    let once = se
        .verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    let secret = se.agree(&auth, &peer_point, &once).unwrap();
    assert_eq!(secret.as_bytes().as_slice(), expected.as_slice());
    assert_eq!(format!("{secret:?}"), "SharedSecret(..)");
    // …and only one: the unlock is spent, as for a signature.
    assert_eq!(
        se.agree(&auth, &peer_point, &once).unwrap_err(),
        SeError::NotUnlocked
    );
    // One unlock, one use, whichever operation spends it.
    let once = se
        .verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    se.sign(&auth, b"m", &once).unwrap();
    assert_eq!(
        se.agree(&auth, &peer_point, &once).unwrap_err(),
        SeError::NotUnlocked
    );

    // A confirmed biometric stands in for the auth PIN, as for signing.
    se.enrol_biometric(FINGER).unwrap();
    se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    let bio = se
        .verify_biometric(GateId::AuthPin, FINGER, session())
        .unwrap();
    let again = se.agree(&auth, &peer_point, &bio).unwrap();
    assert_eq!(again.as_bytes(), secret.as_bytes());
    // A new enrolment ends the biometric session.
    se.change_biometric_enrolment(OTHER_FINGER).unwrap();
    assert_eq!(
        se.agree(&auth, &peer_point, &bio).unwrap_err(),
        SeError::NotUnlocked
    );
    // Locking ends PIN sessions too.
    let s = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    se.agree(&auth, &peer_point, &s).unwrap();
    se.lock_all();
    assert_eq!(
        se.agree(&auth, &peer_point, &s).unwrap_err(),
        SeError::NotUnlocked
    );
}

#[test]
fn agree_refuses_rsa_keys_and_bad_points() {
    let (mut se, _rig) = open();
    let (sign, auth) = keys(&se);
    let (_, peer_point) = peer_key();
    // RSA: a typed refusal, and the unlock is not spent on it.
    let pw = se
        .verify_pin(GateId::SignPassword, SIGN_PW, UnlockScope::Once)
        .unwrap();
    assert!(matches!(
        se.agree(&sign, &peer_point, &pw).unwrap_err(),
        SeError::Unsupported(_)
    ));
    se.sign(&sign, b"still unlocked", &pw).unwrap();

    let s = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    // Not an uncompressed point: refused before the unlock is looked at.
    for bad in [&peer_point[1..], &peer_point[..33], &[][..]] {
        assert!(matches!(
            se.agree(&auth, bad, &s).unwrap_err(),
            SeError::BadInput(_)
        ));
    }
    let mut compressed_tag = peer_point.clone();
    compressed_tag[0] = 0x02;
    assert!(matches!(
        se.agree(&auth, &compressed_tag, &s).unwrap_err(),
        SeError::BadInput(_)
    ));
    // Well formed but not on the curve.
    let mut off_curve = peer_point.clone();
    off_curve[64] ^= 1;
    assert!(matches!(
        se.agree(&auth, &off_curve, &s).unwrap_err(),
        SeError::BadInput(_)
    ));
    se.agree(&auth, &peer_point, &s).unwrap();
}

#[test]
fn agree_on_a_wiped_element_is_refused() {
    let (mut se, _rig) = open();
    let (_, auth) = keys(&se);
    let (_, peer_point) = peer_key();
    let s = se.verify_pin(GateId::AuthPin, AUTH_PIN, session()).unwrap();
    se.agree(&auth, &peer_point, &s).unwrap();
    se.wipe().unwrap();
    assert_eq!(
        se.agree(&auth, &peer_point, &s).unwrap_err(),
        SeError::UnknownKey
    );
    // A new key under the old label is not reachable with the old unlock.
    se.set_pin(GateId::AuthPin, "4321").unwrap();
    let fresh = se
        .create_key("jpki.auth", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"")
        .unwrap();
    assert_eq!(
        se.agree(&fresh, &peer_point, &s).unwrap_err(),
        SeError::NotUnlocked
    );
}

/// A P-256 key `mdoc.device` under [`KeyPolicy::MDOC_PRESENCE`].
fn presence_key(se: &mut SimSecureElement) -> KeyHandle {
    se.create_key(
        "mdoc.device",
        KeyKind::EcP256,
        KeyPolicy::MDOC_PRESENCE,
        b"mdoc challenge",
    )
    .unwrap()
}

#[test]
fn presence_unlocks_only_the_mdoc_presence_key() {
    let (mut se, rig) = open();
    let (sign, auth) = keys(&se);
    let mdoc = presence_key(&mut se);
    let counter = rig.device.counter().unwrap();

    // A presence unlock signs (and agrees) with the presence key; nothing
    // secret was compared, so no try is counted and nothing is written.
    let once = se.confirm_presence(UnlockScope::Once).unwrap();
    assert_eq!(
        (once.gate(), once.method()),
        (GateId::AuthPin, UnlockMethod::Presence)
    );
    let sig = se.sign(&mdoc, b"device authentication", &once).unwrap();
    verify_ec(
        &se.public_key(&mdoc).unwrap(),
        b"device authentication",
        &sig,
    );
    // Spent by that one operation.
    assert_eq!(
        se.sign(&mdoc, b"again", &once).unwrap_err(),
        SeError::NotUnlocked
    );
    let (peer, peer_point) = peer_key();
    let s = se.confirm_presence(session()).unwrap();
    let z = se.agree(&mdoc, &peer_point, &s).unwrap();
    assert_eq!(
        z.as_bytes().to_vec(),
        peer_side_ecdh(&peer, &se.public_key(&mdoc).unwrap())
    );
    assert_eq!(se.tries_left(GateId::AuthPin), 3);
    assert_eq!(rig.device.counter().unwrap(), counter);

    // The JPKI keys refuse it: the auth key (PHONE_AUTH) and the signing
    // key (PHONE_SIGN), for signing, ECDH and DigestInfo alike.
    assert_eq!(
        se.sign(&auth, b"m", &s).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::AuthPin
        }
    );
    assert_eq!(
        se.agree(&auth, &peer_point, &s).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::AuthPin
        }
    );
    assert_eq!(
        se.sign(&sign, b"m", &s).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::SignPassword
        }
    );
    assert_eq!(
        se.sign_digest_info(&sign, &[0; 51], &s).unwrap_err(),
        SeError::WrongGate {
            needed: GateId::SignPassword
        }
    );
    // Nor can it change the PIN.
    assert_eq!(
        se.change_pin(GateId::AuthPin, &s, "9999").unwrap_err(),
        SeError::WrongGate {
            needed: GateId::AuthPin
        }
    );
    // The PIN and a confirmed biometric still unlock the presence key.
    let pin = se
        .verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    se.sign(&mdoc, b"m", &pin).unwrap();
    se.enrol_biometric(FINGER).unwrap();
    se.verify_pin(GateId::AuthPin, AUTH_PIN, UnlockScope::Once)
        .unwrap();
    let bio = se
        .verify_biometric(GateId::AuthPin, FINGER, UnlockScope::Once)
        .unwrap();
    se.sign(&mdoc, b"m", &bio).unwrap();
    // Locking ends presence sessions like any other.
    let s = se.confirm_presence(session()).unwrap();
    se.lock_all();
    assert_eq!(se.sign(&mdoc, b"m", &s).unwrap_err(), SeError::NotUnlocked);
    // Bad scopes are refused.
    assert!(
        se.confirm_presence(UnlockScope::Session {
            ttl: Duration::from_secs(601),
            max_uses: 1,
        })
        .is_err()
    );

    // The attestation carries the policy, so the authority can tell.
    let attested = verify_attestation(
        se.attest(&mdoc).unwrap().certs(),
        &[fixture().root.clone()],
        &se.public_key(&mdoc).unwrap(),
        b"mdoc challenge",
        NOW,
    )
    .unwrap();
    assert_eq!(attested.policy, KeyPolicy::MDOC_PRESENCE);
    // And it survives a reopen (the image stores the policy).
    drop(se);
    let se = rig.open().unwrap();
    let info = se.key_info(&se.find_key("mdoc.device").unwrap()).unwrap();
    assert_eq!(info.policy, KeyPolicy::MDOC_PRESENCE);
    assert_eq!(se.key_info(&auth).unwrap().policy, KeyPolicy::PHONE_AUTH);
}

#[test]
fn key_policy_serde_is_backward_compatible() {
    // Images written before presence existed name no `presence`.
    let old: KeyPolicy = serde_json::from_str(r#"{"gate":"auth_pin","biometric":true}"#).unwrap();
    assert_eq!(old, KeyPolicy::PHONE_AUTH);
    assert_eq!(
        serde_json::to_string(&KeyPolicy::PHONE_AUTH).unwrap(),
        r#"{"gate":"auth_pin","biometric":true}"#
    );
    let text = serde_json::to_string(&KeyPolicy::MDOC_PRESENCE).unwrap();
    assert_eq!(
        serde_json::from_str::<KeyPolicy>(&text).unwrap(),
        KeyPolicy::MDOC_PRESENCE
    );
    assert!(
        serde_json::from_str::<KeyPolicy>(
            r#"{"gate":"sign_password","biometric":false,"presence":true}"#
        )
        .is_err()
    );
}

#[test]
fn presence_is_refused_while_the_auth_pin_is_blocked() {
    let (mut se, _rig) = open();
    let mdoc = presence_key(&mut se);
    let earlier = se.confirm_presence(session()).unwrap();
    for _ in 0..3 {
        se.verify_pin(GateId::AuthPin, "0000", UnlockScope::Once)
            .unwrap_err();
    }
    assert_eq!(se.gate_status(GateId::AuthPin), GateStatus::Blocked);
    assert_eq!(
        se.confirm_presence(UnlockScope::Once).unwrap_err(),
        SeError::Blocked(GateId::AuthPin)
    );
    // A session from before the block no longer unlocks.
    assert_eq!(
        se.sign(&mdoc, b"m", &earlier).unwrap_err(),
        SeError::NotUnlocked
    );
}

#[test]
fn presence_is_refused_on_a_wiped_element() {
    let (mut se, _rig) = open();
    let mdoc = presence_key(&mut se);
    let s = se.confirm_presence(session()).unwrap();
    se.wipe().unwrap();
    assert_eq!(
        se.confirm_presence(UnlockScope::Once).unwrap_err(),
        SeError::GateNotSet(GateId::AuthPin)
    );
    assert_eq!(se.sign(&mdoc, b"m", &s).unwrap_err(), SeError::UnknownKey);
    // A new presence key under the old label is not reachable with the old unlock.
    se.set_pin(GateId::AuthPin, "4321").unwrap();
    let fresh = presence_key(&mut se);
    assert_eq!(se.sign(&fresh, b"m", &s).unwrap_err(), SeError::NotUnlocked);
}

const WALLET_CONTEXT: &[u8] = b"shomei/phone-wallet/v1";
const WALLET: &[u8] = br#"{"holder":"YAMADA TARO","address":"1-2-3 Chiyoda"}"#;

fn unsealable(r: Result<zeroize::Zeroizing<Vec<u8>>, SeError>) -> bool {
    matches!(r, Err(SeError::Unsealable(_)))
}

#[test]
fn sealed_data_round_trips_and_survives_reopening() {
    let (mut se, rig) = open();
    let a = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    let b = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    // Version byte, fresh nonce per seal, no plaintext in the blob.
    assert_eq!(a[0], shomei_secure_element::SEALED_DATA_VERSION);
    assert_eq!(a.len(), 1 + 12 + WALLET.len() + 16);
    assert_ne!(a[1..13], b[1..13]);
    assert!(!contains(&a, b"YAMADA"));
    assert_eq!(se.unseal(WALLET_CONTEXT, &a).unwrap().as_slice(), WALLET);
    // No gate is needed, and the key survives reopening from storage
    // (it is not in the sealed image either: that holds only the epoch).
    se.lock_all();
    drop(se);
    let se = rig.open().unwrap();
    assert_eq!(se.unseal(WALLET_CONTEXT, &b).unwrap().as_slice(), WALLET);
    assert_eq!(se.unseal(WALLET_CONTEXT, &a).unwrap().as_slice(), WALLET);
    // An empty plaintext is data too.
    let mut se = se;
    let empty = se.seal(WALLET_CONTEXT, b"").unwrap();
    assert!(se.unseal(WALLET_CONTEXT, &empty).unwrap().is_empty());
}

#[test]
fn sealed_data_for_another_context_is_refused() {
    let (mut se, _rig) = open();
    let blob = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    for other in [
        &b"shomei/phone-wallet/v2"[..],
        b"shomei/phone-wallet/v",
        b"x",
    ] {
        assert!(unsealable(se.unseal(other, &blob)), "{other:?}");
    }
    // A context is 1 to 256 bytes.
    for bad in [&[][..], &[b'c'; 257][..]] {
        assert!(matches!(se.seal(bad, WALLET), Err(SeError::BadInput(_))));
        assert!(matches!(se.unseal(bad, &blob), Err(SeError::BadInput(_))));
    }
    let long = [b'c'; 256];
    let blob = se.seal(&long, WALLET).unwrap();
    assert_eq!(se.unseal(&long, &blob).unwrap().as_slice(), WALLET);
}

#[test]
fn tampered_sealed_data_is_refused() {
    let (mut se, _rig) = open();
    let blob = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    for i in 0..blob.len() {
        for bit in [0x01, 0x80] {
            let mut bad = blob.clone();
            bad[i] ^= bit;
            assert!(unsealable(se.unseal(WALLET_CONTEXT, &bad)), "byte {i}");
        }
    }
    for len in 0..blob.len() {
        assert!(
            unsealable(se.unseal(WALLET_CONTEXT, &blob[..len])),
            "len {len}"
        );
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &longer)));
    // Garbage and a plain-JSON file are errors, not panics.
    for junk in [
        &b"{\"format\":1}"[..],
        &[0xff; 64][..],
        &[1; 29][..],
        &[1][..],
    ] {
        assert!(unsealable(se.unseal(WALLET_CONTEXT, junk)));
    }
    // The untouched blob still opens.
    assert_eq!(se.unseal(WALLET_CONTEXT, &blob).unwrap().as_slice(), WALLET);
}

#[test]
fn another_element_cannot_unseal() {
    let (mut se, _rig) = open();
    let blob = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    let m = SimManufacturer::generate(NOW).unwrap();
    let mut other = SimSecureElement::provision(
        MemoryStore::new(),
        MemoryDeviceRoot::new(m.new_device(NOW).unwrap()),
        SimOptions::default(),
    )
    .unwrap();
    assert!(unsealable(other.unseal(WALLET_CONTEXT, &blob)));
    let theirs = other.seal(WALLET_CONTEXT, WALLET).unwrap();
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &theirs)));
}

#[test]
fn wipe_destroys_the_data_key_and_old_blobs_never_unseal_again() {
    let (mut se, rig) = open();
    let before = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    se.wipe().unwrap();
    assert_eq!(rig.device.data_epoch().unwrap(), 1);
    // The wiped element seals under its new key (the phone records the wipe).
    let after = se.seal(WALLET_CONTEXT, b"wiped").unwrap();
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &after).unwrap().as_slice(),
        b"wiped"
    );
    // Once the app has stored that, the old key is gone.
    se.sealed_data_stored().unwrap();
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
    // Re-initialised (new PIN and key) and reopened: still never.
    se.set_pin(GateId::AuthPin, "4321").unwrap();
    se.create_key("k", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"c")
        .unwrap();
    drop(se);
    let mut se = rig.open().unwrap();
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &after).unwrap().as_slice(),
        b"wiped"
    );
    // A second wipe ends the second key too (once new data is stored).
    se.wipe().unwrap();
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
    se.sealed_data_stored().unwrap();
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &after)));
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
}

#[test]
fn wipe_interrupted_before_the_epoch_write_still_ends_the_old_key() {
    let (mut se, rig) = open();
    let before = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    // The image (and the counter) are written, the epoch write is lost.
    rig.device.fail_after(1);
    assert!(se.wipe().is_err());
    assert_eq!(
        se.seal(WALLET_CONTEXT, WALLET).unwrap_err(),
        SeError::MustReopen
    );
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &before).unwrap_err(),
        SeError::MustReopen
    );
    drop(se);
    rig.device.heal();
    assert_eq!(rig.device.data_epoch().unwrap(), 0);
    let mut se = rig.open().unwrap();
    assert_eq!(se.last_wipe(), Some(WipeReason::Requested));
    assert_eq!(rig.device.data_epoch().unwrap(), 1, "caught up on open");
    // The old key unseals (nothing was stored since the wipe) but seals
    // nothing; once the app stores new data it is gone.
    assert!(se.retiring_seal_key_open());
    let after = se.seal(WALLET_CONTEXT, b"wiped").unwrap();
    se.sealed_data_stored().unwrap();
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &after).unwrap().as_slice(),
        b"wiped"
    );
}

#[test]
fn tamper_wipe_keeps_the_data_key_but_a_requested_wipe_ends_it() {
    let tmp = tempfile::tempdir().unwrap();
    SimManufacturer::create(tmp.path(), NOW).unwrap();
    let (dir, _) = file_device(tmp.path(), "phone");
    let mut se = SimSecureElement::open_dir(&dir).unwrap();
    let blob = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    drop(se);
    // Tampering wipes keys and PINs, but the phone can still read its
    // wallet (to tell the authority): the epoch lives in the device root.
    let p = dir.join(SEALED_FILE);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[60] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    assert_wiped(&dir, TamperKind::Authentication);
    let mut se = SimSecureElement::open_dir(&dir).unwrap();
    assert_eq!(se.unseal(WALLET_CONTEXT, &blob).unwrap().as_slice(), WALLET);
    // A requested wipe is durable in DEVICE.key too.
    se.wipe().unwrap();
    se.sealed_data_stored().unwrap();
    drop(se);
    let device: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(DEVICE_FILE)).unwrap()).unwrap();
    assert_eq!(device["data_epoch"], 1);
    let se = SimSecureElement::open_dir(&dir).unwrap();
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &blob)));
}

#[test]
fn device_file_without_a_data_epoch_still_opens() {
    let tmp = tempfile::tempdir().unwrap();
    SimManufacturer::create(tmp.path(), NOW).unwrap();
    let (dir, _) = file_device(tmp.path(), "old");
    let mut se = SimSecureElement::open_dir(&dir).unwrap();
    let blob = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    drop(se);
    // A DEVICE.key written before sealed app data existed.
    let path = dir.join(DEVICE_FILE);
    let mut device: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    device
        .as_object_mut()
        .unwrap()
        .remove("data_epoch")
        .unwrap();
    std::fs::write(&path, serde_json::to_vec(&device).unwrap()).unwrap();
    let se = SimSecureElement::open_dir(&dir).unwrap();
    assert_eq!(se.keys().len(), 1);
    assert_eq!(se.unseal(WALLET_CONTEXT, &blob).unwrap().as_slice(), WALLET);
}

#[test]
fn interrupted_wipe_keeps_the_old_key_for_unsealing_until_new_data_is_stored() {
    let (mut se, rig) = open();
    let before = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    se.sealed_data_stored().unwrap();
    assert!(!se.retiring_seal_key_open());
    se.wipe().unwrap();
    // The app crashed before storing its wallet again: the wallet it has
    // still opens, across a power cycle, but nothing is sealed under the old
    // key any more.
    assert!(se.retiring_seal_key_open());
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &before).unwrap().as_slice(),
        WALLET
    );
    let after = se.seal(WALLET_CONTEXT, b"wiped").unwrap();
    drop(se);
    let mut se = rig.open().unwrap();
    assert!(se.retiring_seal_key_open());
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &before).unwrap().as_slice(),
        WALLET
    );
    // A second wipe before anything was stored keeps the key of what is
    // stored (the first epoch's), not the never-stored one in between.
    se.wipe().unwrap();
    assert_eq!(rig.device.data_epoch().unwrap(), 2);
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &before).unwrap().as_slice(),
        WALLET
    );
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &after)));
    // Stored under the new key: the old one is gone for good.
    let stored = se.seal(WALLET_CONTEXT, b"stored").unwrap();
    se.sealed_data_stored().unwrap();
    assert!(!se.retiring_seal_key_open());
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
    drop(se);
    let se = rig.open().unwrap();
    assert!(!se.retiring_seal_key_open());
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &stored).unwrap().as_slice(),
        b"stored"
    );
}

#[test]
fn retiring_key_is_not_honoured_once_the_element_holds_keys_again() {
    let (mut se, _rig) = open();
    let before = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    se.wipe().unwrap();
    assert_eq!(
        se.unseal(WALLET_CONTEXT, &before).unwrap().as_slice(),
        WALLET
    );
    se.set_pin(GateId::AuthPin, "4321").unwrap();
    se.create_key("k", KeyKind::EcP256, KeyPolicy::PHONE_AUTH, b"c")
        .unwrap();
    assert!(!se.retiring_seal_key_open());
    assert!(unsealable(se.unseal(WALLET_CONTEXT, &before)));
}

#[test]
fn stored_sealed_data_is_remembered_across_wipes_and_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    SimManufacturer::create(tmp.path(), NOW).unwrap();
    let (dir, _) = file_device(tmp.path(), "phone");
    let mut se = SimSecureElement::open_dir(&dir).unwrap();
    assert!(!se.has_stored_sealed_data());
    let _ = se.seal(WALLET_CONTEXT, WALLET).unwrap();
    assert!(
        !se.has_stored_sealed_data(),
        "sealing alone records nothing"
    );
    se.sealed_data_stored().unwrap();
    assert!(se.has_stored_sealed_data());
    se.wipe().unwrap();
    assert!(se.has_stored_sealed_data());
    drop(se);
    let device: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(DEVICE_FILE)).unwrap()).unwrap();
    assert_eq!(device["sealed_data_stored"], true);
    // A tamper wipe loses the image, not the record.
    let p = dir.join(SEALED_FILE);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[60] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    assert_wiped(&dir, TamperKind::Authentication);
    let se = SimSecureElement::open_dir(&dir).unwrap();
    assert!(se.has_stored_sealed_data());
    drop(se);
    // A DEVICE.key from before the record existed reads as "never stored".
    let path = dir.join(DEVICE_FILE);
    let mut device: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    device
        .as_object_mut()
        .unwrap()
        .remove("sealed_data_stored")
        .unwrap();
    std::fs::write(&path, serde_json::to_vec(&device).unwrap()).unwrap();
    let mut se = SimSecureElement::open_dir(&dir).unwrap();
    assert!(!se.has_stored_sealed_data());
    se.sealed_data_stored().unwrap();
    drop(se);
    assert!(
        SimSecureElement::open_dir(&dir)
            .unwrap()
            .has_stored_sealed_data()
    );
}
