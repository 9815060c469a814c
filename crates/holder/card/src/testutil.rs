//! Shared test fixtures: one manufactured image per variant (RSA key
//! generation is slow), replayed into fresh in-memory chips.

use std::sync::OnceLock;

use crate::{Card, ChipMemory, InProcess, JpkiClient, MemoryChip, Variant};

pub const SIGN_PW: &str = "ABC123";
pub const AUTH_PIN: &str = "1234";

/// A freshly manufactured chip image (Personalisation phase).
pub fn image(variant: Variant) -> &'static [u8] {
    static CARD: OnceLock<Vec<u8>> = OnceLock::new();
    static PHONE: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = match variant {
        Variant::Card => &CARD,
        Variant::Phone => &PHONE,
    };
    cell.get_or_init(|| {
        let chip = MemoryChip::new();
        Card::manufacture(chip.clone(), variant, SIGN_PW, AUTH_PIN).unwrap();
        chip.load().unwrap().to_vec()
    })
}

/// A new card from the cached image, and a handle on its memory.
pub fn card(variant: Variant) -> (Card, MemoryChip) {
    let chip = MemoryChip::with_image(image(variant));
    (Card::open(chip.clone()).unwrap(), chip)
}

/// A personalised, activated card behind a client, its memory, and the
/// certificates written (sign, sign CA, auth, auth CA; serials 1001–1004).
pub fn issued(variant: Variant) -> (JpkiClient<InProcess>, MemoryChip, [Vec<u8>; 4]) {
    let (card, chip) = card(variant);
    let mut client = JpkiClient::new(InProcess::new(card));
    let certs = [cert(0x1001), cert(0x1002), cert(0x1003), cert(0x1004)];
    client
        .personalise(&crate::Certificates {
            sign: &certs[0],
            sign_ca: &certs[1],
            auth: &certs[2],
            auth_ca: &certs[3],
        })
        .unwrap();
    client.activate().unwrap();
    (client, chip, certs)
}

/// A self-signed certificate with the given serial (content is irrelevant here).
pub fn cert(serial: u64) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec![format!("s{serial}.example")]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

/// Sends an APDU given in hex (spaces allowed); returns the response in hex.
pub fn send(card: &mut Card, hex_apdu: &str) -> String {
    let bytes = hex::decode(hex_apdu.replace(' ', "")).unwrap();
    hex::encode_upper(card.process_apdu(&bytes))
}

/// The status word of a response given in hex.
pub fn sw(resp: &str) -> &str {
    &resp[resp.len() - 4..]
}
