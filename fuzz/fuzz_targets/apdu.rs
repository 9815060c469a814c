//! The chip and the phone: `process_apdu` on a sequence of APDUs, sent to
//! one of three applets chosen by the first input byte (modulo 3):
//!
//! * `0`: the card (`shomei_card::Card`, [`Variant::Card`] image: the JPKI
//!   AP and the card's other APs);
//! * `1`: the card chip with the phone token ([`Variant::Phone`] image);
//! * `2`: the phone's JPKI applet (`shomei_phone::PhoneApplet`: the card's
//!   APDU state machine over a simulated secure element holding the PINs
//!   and the two RSA keys, certificates from the wallet).
//!
//! The rest: a sequence of `len: u8` + `len` bytes of command APDU (a
//! truncated last APDU is used as is). `len = 0` is a power cycle
//! (`reset` on the card; on the phone, the element ends its unlock sessions
//! and the applet is rebuilt over it, as when the phone app restarts) rather than an empty APDU.
//!
//! The chips and the element are made once per process (RSA key generation
//! is slow); every input starts from a copy of that state in fresh
//! in-memory storage, so inputs are independent and reproducible. The
//! element runs on a manual clock and counter randomness.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use shomei_card::{Card, ChipMemory, MemoryChip, Variant};
use shomei_core::{RandomSource, SignError};
use shomei_phone::{AUTH_KEY_LABEL, PhoneApplet, SIGN_KEY_LABEL, SeBackend, WalletCertificates};
use shomei_se_sim::{
    DeviceRoot, ManualClock, MemoryDeviceRoot, MemoryStore, SimManufacturer, SimOptions,
    SimSecureElement,
};
use shomei_secure_element::{GateId, KeyKind, KeyPolicy, SecureElement, SharedElement};

const SIGN_PW: &str = "ABC123";
const AUTH_PIN: &str = "1234";

/// A manufactured chip image: the card's, or with `phone` the phone token's.
fn chip_image(phone: bool) -> &'static [u8] {
    static CARD: OnceLock<Vec<u8>> = OnceLock::new();
    static PHONE: OnceLock<Vec<u8>> = OnceLock::new();
    let (cell, variant) = if phone {
        (&PHONE, Variant::Phone)
    } else {
        (&CARD, Variant::Card)
    };
    cell.get_or_init(|| {
        let chip = MemoryChip::new();
        Card::manufacture(chip.clone(), variant, SIGN_PW, AUTH_PIN)
            .expect("manufacture the fuzz chip");
        chip.load().expect("the manufactured image").to_vec()
    })
}

/// Counter "randomness": the element's tickets, salts and nonces, reproducible.
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

fn options() -> SimOptions {
    SimOptions {
        clock: Box::new(ManualClock::new()),
        rng: Box::new(Counter(0)),
    }
}

/// A provisioned phone element: its sealed image, its hardware (counter
/// value at sealing) and the wallet's certificates.
struct PhoneImage {
    sealed: Vec<u8>,
    device: MemoryDeviceRoot,
    counter: u64,
    certs: WalletCertificates,
}

fn phone_image() -> &'static PhoneImage {
    static IMAGE: OnceLock<PhoneImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let now = time::macros::datetime!(2026-11-21 04:00:00 UTC);
        let manufacturer = SimManufacturer::generate(now).expect("manufacturer");
        let device = MemoryDeviceRoot::new(manufacturer.new_device(now).expect("device"));
        let store = MemoryStore::new();
        let mut se = SimSecureElement::provision(store.clone(), device.clone(), options())
            .expect("provision the element");
        se.set_pin(GateId::SignPassword, SIGN_PW)
            .expect("sign password");
        se.set_pin(GateId::AuthPin, AUTH_PIN).expect("auth PIN");
        se.create_key(
            SIGN_KEY_LABEL,
            KeyKind::Rsa2048,
            KeyPolicy::PHONE_SIGN,
            b"fuzz",
        )
        .expect("sign key");
        se.create_key(
            AUTH_KEY_LABEL,
            KeyKind::Rsa2048,
            KeyPolicy::PHONE_AUTH,
            b"fuzz",
        )
        .expect("auth key");
        drop(se);
        // Any certificates: the applet serves the wallet's bytes as they are.
        let sign_root = include_bytes!("../fixtures/shomei_sign_root.der").to_vec();
        let auth_root = include_bytes!("../fixtures/shomei_auth_root.der").to_vec();
        PhoneImage {
            sealed: store.sealed().expect("a sealed image"),
            counter: device.counter().expect("the device counter"),
            device,
            certs: WalletCertificates {
                sign: auth_root.clone(),
                sign_ca: sign_root.clone(),
                auth: sign_root,
                auth_ca: auth_root,
            },
        }
    })
}

/// A fresh phone element from the image.
fn phone_element() -> SharedElement {
    let image = phone_image();
    let store = MemoryStore::new();
    store.set_sealed(Some(image.sealed.clone()));
    let se = SimSecureElement::open_with(store, image.device.fork(image.counter), options())
        .expect("open the fuzz element");
    let se: Box<dyn SecureElement> = Box::new(se);
    Arc::new(Mutex::new(se))
}

fn phone_applet(element: &SharedElement) -> Box<PhoneApplet> {
    Box::new(
        SeBackend::new(Arc::clone(element), phone_image().certs.clone())
            .expect("the phone applet")
            .into_applet(),
    )
}

enum Target {
    Card(Box<Card>),
    Phone(SharedElement, Box<PhoneApplet>),
}

impl Target {
    fn new(selector: u8) -> Self {
        match selector % 3 {
            n @ (0 | 1) => Self::Card(Box::new(
                Card::open(MemoryChip::with_image(chip_image(n == 1))).expect("open the fuzz chip"),
            )),
            _ => {
                let element = phone_element();
                let applet = phone_applet(&element);
                Self::Phone(element, applet)
            }
        }
    }

    fn reset(&mut self) {
        match self {
            Self::Card(card) => card.reset(),
            Self::Phone(element, applet) => {
                // The app restarts: the element ends every unlock session.
                element.lock().unwrap_or_else(|e| e.into_inner()).lock_all();
                *applet = phone_applet(element);
            }
        }
    }

    fn process_apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        match self {
            Self::Card(card) => card.process_apdu(apdu),
            Self::Phone(_, applet) => applet.process_apdu(apdu),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let mut target = Target::new(selector);
    while let Some((&n, tail)) = rest.split_first() {
        if n == 0 {
            target.reset();
            rest = tail;
            continue;
        }
        let (apdu, tail) = tail.split_at(usize::from(n).min(tail.len()));
        let resp = target.process_apdu(apdu);
        shomei_fuzz::debug(|| {
            format!(
                "[{}] {:02X?} -> {} bytes, SW {:02X?}",
                selector % 3,
                apdu.get(..4).unwrap_or(apdu),
                resp.len().saturating_sub(2),
                resp.get(resp.len().saturating_sub(2)..).unwrap_or_default()
            )
        });
        // Always ends in SW1 SW2; short APDUs carry at most 256 data bytes.
        assert!(resp.len() >= 2, "response without a status word");
        assert!(
            resp.len() <= 258,
            "response longer than a short APDU allows: {}",
            resp.len()
        );
        rest = tail;
    }
});
