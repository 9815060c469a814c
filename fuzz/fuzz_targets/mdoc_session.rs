//! The mdoc session and presentation parsers (`shomei_mdoc`), all on every
//! input: DeviceRequest, SessionEstablishment, SessionData, DeviceEngagement,
//! SessionTranscriptBytes, a DeviceResponse's deviceSigned; plus decryption
//! of SessionEstablishment / SessionData under the ISO 18013-5 Annex D
//! session keys (the Annex D seeds decrypt, so mutations reach the
//! counter-diagnosis paths).
//!
//! Contracts: whatever parses re-encodes and parses to the same value
//! (DeviceRequest, SessionData, SessionEstablishment); a parsed
//! engagement keeps the exact input bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shomei_mdoc::device_auth::parse_device_response_device_signed;
use shomei_mdoc::parse_device_request;
use shomei_mdoc::session::{
    EcPublicKey, EphemeralKey, Role, SessionEncryption, SessionKeys, parse_device_engagement,
    parse_session_data, parse_session_establishment, parse_session_transcript_bytes,
};

const TRANSCRIPT: &[u8] =
    include_bytes!("../seeds/mdoc_session/annex-d-session-transcript-bytes.cbor");
// Annex D EDeviceKey.d and EReaderKey (x, y).
const DEVICE_D: &str = "c1917a1579949a042f1ba9fc53a2df9b1bc47adf31c10f813ed75702d1c1f136";
const READER_X: &str = "60e3392385041f51403051f2415531cb56dd3f999c71687013aac6768bc8187e";
const READER_Y: &str = "e58deb8fdbe907f7dd5368245551a34796f7d2215c440c339bb0f7b67beccdfa";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn keys() -> &'static SessionKeys {
    static KEYS: OnceLock<SessionKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (t, _) = parse_session_transcript_bytes(TRANSCRIPT).expect("Annex D transcript");
        let device = EphemeralKey::from_scalar(&unhex(DEVICE_D)).expect("Annex D device key");
        let reader = EcPublicKey::from_xy(&unhex(READER_X), &unhex(READER_Y)).expect("reader key");
        SessionKeys::derive(&device, &reader, &t).expect("Annex D session keys")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_device_request(data) {
        let again = req.encode().expect("re-encode DeviceRequest");
        assert_eq!(
            parse_device_request(&again).expect("re-parse DeviceRequest"),
            req
        );
        shomei_fuzz::debug(|| format!("DeviceRequest: {} doc requests", req.doc_requests.len()));
    }
    if let Ok(se) = parse_session_establishment(data) {
        let again = se.encode().expect("re-encode SessionEstablishment");
        assert_eq!(parse_session_establishment(&again).expect("re-parse"), se);
        let mut device = SessionEncryption::new(Role::Device, keys().clone());
        let r = device.open_establishment(&se);
        shomei_fuzz::debug(|| format!("SessionEstablishment: {:?}", r.as_ref().map(Vec::len)));
    }
    if let Ok(sd) = parse_session_data(data) {
        let again = sd.encode().expect("re-encode SessionData");
        assert_eq!(
            parse_session_data(&again).expect("re-parse SessionData"),
            sd
        );
        let mut reader = SessionEncryption::new(Role::Reader, keys().clone());
        let r = reader.open(&sd);
        if sd.status.is_some() && r.is_ok() {
            assert!(reader.is_closed(), "a status must end the session");
        }
        shomei_fuzz::debug(|| format!("SessionData: {:?}", r.map(|i| i.data.map(|d| d.len()))));
    }
    if let Ok(de) = parse_device_engagement(data) {
        assert_eq!(de.as_bytes(), data, "engagement bytes must be kept exactly");
        shomei_fuzz::debug(|| format!("DeviceEngagement: {}", de.to_uri()));
    }
    if let Ok((t, _)) = parse_session_transcript_bytes(data) {
        assert_eq!(t.as_bytes(), data);
    }
    let r = parse_device_response_device_signed(data);
    shomei_fuzz::debug(|| format!("DeviceResponse: {:?}", r.map(|d| d.len())));
});
