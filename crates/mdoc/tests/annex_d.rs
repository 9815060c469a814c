//! ISO/IEC 18013-5 Annex D conformance: every check compares bytes with the
//! vectors in `tests/data/iso18013-5-annex-d.json` (D.3 engagement, D.4.1
//! request/response, D.5.1 session encryption, D.5.3 mdoc MAC, D.5.4 reader
//! authentication).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use shomei_mdoc::MdocError;
use shomei_mdoc::cbor;
use shomei_mdoc::device_auth::{
    DeviceAuth, DeviceSigned, parse_device_response_device_signed, verify_reader_auth,
};
use shomei_mdoc::request::parse_device_request;
use shomei_mdoc::session::{
    DeviceEngagement, EcPublicKey, EphemeralKey, KeyAgreement, Role, SessionData,
    SessionEncryption, SessionKeys, SessionStatus, SessionTranscript, SessionTranscriptBytes,
    parse_device_engagement, parse_device_engagement_uri, parse_session_data,
    parse_session_establishment, parse_session_transcript_bytes,
};

use common::annex_d as v;

const MDL: &str = "org.iso.18013.5.1.mDL";
const MDL_NS: &str = "org.iso.18013.5.1";

fn key(prefix: &str) -> EcPublicKey {
    EcPublicKey::from_xy(&v(&format!("{prefix}_X")), &v(&format!("{prefix}_Y"))).unwrap()
}

fn transcript() -> SessionTranscriptBytes {
    parse_session_transcript_bytes(&v("SESSION_TRANSCRIPT_BYTES"))
        .unwrap()
        .0
}

fn reader_key() -> EphemeralKey {
    EphemeralKey::from_scalar(&v("EPHEMERAL_READER_KEY_D")).unwrap()
}

fn device_key() -> EphemeralKey {
    EphemeralKey::from_scalar(&v("EPHEMERAL_DEVICE_KEY_D")).unwrap()
}

fn static_device_key() -> EphemeralKey {
    EphemeralKey::from_scalar(&v("STATIC_DEVICE_KEY_D")).unwrap()
}

fn keys() -> SessionKeys {
    SessionKeys::derive(&device_key(), &key("EPHEMERAL_READER_KEY"), &transcript()).unwrap()
}

#[test]
fn vector_private_keys_match_their_public_keys() {
    assert_eq!(reader_key().public_key(), key("EPHEMERAL_READER_KEY"));
    assert_eq!(device_key().public_key(), key("EPHEMERAL_DEVICE_KEY"));
    assert_eq!(static_device_key().public_key(), key("STATIC_DEVICE_KEY"));
}

#[test]
fn device_engagement_parses_and_rebuilds_byte_for_byte() {
    let bytes = v("DEVICE_ENGAGEMENT");
    let de = parse_device_engagement(&bytes).unwrap();
    assert_eq!(de.as_bytes(), bytes);
    assert_eq!(de.version(), "1.0");
    assert_eq!(de.e_device_key(), &key("EPHEMERAL_DEVICE_KEY"));
    assert_eq!(
        cbor::encode_tag24(de.e_device_key_bytes()).unwrap(),
        v("E_DEVICE_KEY_BYTES")
    );
    assert_eq!(
        de.e_device_key().to_cose_key().unwrap(),
        de.e_device_key_bytes()
    );
    let [ble] = de.retrieval_methods() else {
        panic!("one retrieval method")
    };
    assert_eq!((ble.kind, ble.version), (2, 1));
    // The builder reproduces the vector exactly.
    let built =
        DeviceEngagement::build(de.e_device_key(), de.retrieval_methods().to_vec()).unwrap();
    assert_eq!(built.as_bytes(), bytes);
    // QR: mdoc: + base64url without padding, and back.
    let uri = de.to_uri();
    assert!(uri.starts_with("mdoc:") && !uri.contains('='));
    assert_eq!(parse_device_engagement_uri(&uri).unwrap().as_bytes(), bytes);
}

#[test]
fn session_establishment_parses_and_reencodes() {
    let bytes = v("SESSION_ESTABLISHMENT");
    let se = parse_session_establishment(&bytes).unwrap();
    assert_eq!(se.e_reader_key(), &key("EPHEMERAL_READER_KEY"));
    assert_eq!(se.encode().unwrap(), bytes);
}

#[test]
fn session_transcript_rebuilt_from_parts_byte_for_byte() {
    let vector = v("SESSION_TRANSCRIPT_BYTES");
    let (_, parts) = parse_session_transcript_bytes(&vector).unwrap();
    // DeviceEngagement (NFC engagement: no retrieval methods) built from EDeviceKey.
    let de = DeviceEngagement::build(&key("EPHEMERAL_DEVICE_KEY"), Vec::new()).unwrap();
    assert_eq!(parts.device_engagement, de.as_bytes());
    let se = parse_session_establishment(&v("SESSION_ESTABLISHMENT")).unwrap();
    let rebuilt = SessionTranscript::new(&de, &se, parts.handover.clone())
        .to_bytes()
        .unwrap();
    assert_eq!(rebuilt.as_bytes(), vector);
    assert!(matches!(
        parts.handover,
        shomei_mdoc::session::Handover::Nfc {
            request: Some(_),
            ..
        }
    ));
}

#[test]
fn session_keys_from_vector_private_keys() {
    let t = transcript();
    let device_side = keys();
    let reader_side = SessionKeys::derive(&reader_key(), &key("EPHEMERAL_DEVICE_KEY"), &t).unwrap();
    assert_eq!(device_side.sk_reader(), reader_side.sk_reader());
    assert_eq!(device_side.sk_device(), reader_side.sk_device());
    // SKReader as published with the vectors (58d277d8…dfc9).
    let sk = hex::encode(device_side.sk_reader());
    assert!(sk.starts_with("58d277d8") && sk.ends_with("dfc9"), "{sk}");
}

#[test]
fn establishment_decrypts_to_device_request_and_reencrypts() {
    let se = parse_session_establishment(&v("SESSION_ESTABLISHMENT")).unwrap();
    let mut device = SessionEncryption::new(Role::Device, keys());
    assert_eq!(device.open_establishment(&se).unwrap(), v("DEVICE_REQUEST"));
    let mut reader = SessionEncryption::new(Role::Reader, keys());
    let again = reader
        .establish(&reader_key().public_key(), &v("DEVICE_REQUEST"))
        .unwrap();
    assert_eq!(again.data(), se.data());
    assert_eq!(again.encode().unwrap(), v("SESSION_ESTABLISHMENT"));
}

#[test]
fn session_data_decrypts_to_device_response_and_reencrypts() {
    let sd = parse_session_data(&v("SESSION_DATA")).unwrap();
    assert_eq!(sd.status, None);
    let mut reader = SessionEncryption::new(Role::Reader, keys());
    reader.encrypt(&v("DEVICE_REQUEST")).unwrap();
    let inbound = reader.open(&sd).unwrap();
    assert_eq!(inbound.data.unwrap(), v("DEVICE_RESPONSE"));
    assert!(!reader.is_closed());

    let mut device = SessionEncryption::new(Role::Device, keys());
    device
        .open_establishment(&parse_session_establishment(&v("SESSION_ESTABLISHMENT")).unwrap())
        .unwrap();
    assert_eq!(
        device
            .seal(&v("DEVICE_RESPONSE"))
            .unwrap()
            .encode()
            .unwrap(),
        v("SESSION_DATA")
    );
}

#[test]
fn session_termination() {
    let bytes = v("SESSION_TERMINATION");
    assert_eq!(
        SessionData::status(SessionStatus::Termination)
            .encode()
            .unwrap(),
        bytes
    );
    let mut reader = SessionEncryption::new(Role::Reader, keys());
    let inbound = reader.open(&parse_session_data(&bytes).unwrap()).unwrap();
    assert_eq!(inbound.status, Some(SessionStatus::Termination));
    assert_eq!(inbound.data, None);
    assert!(reader.is_closed());
    assert_eq!(reader.encrypt(b"late"), Err(MdocError::SessionClosed));
    let mut device = SessionEncryption::new(Role::Device, keys());
    assert_eq!(device.terminate(None).unwrap().encode().unwrap(), bytes);
}

#[test]
fn device_mac_verifies_with_emac_key_from_static_device_key() {
    let docs = parse_device_response_device_signed(&v("DEVICE_RESPONSE")).unwrap();
    let [(doc_type, signed)] = docs.as_slice() else {
        panic!("one document")
    };
    assert_eq!(doc_type, MDL);
    assert_eq!(signed.name_spaces, [0xa0]);
    let DeviceAuth::Mac(mac) = &signed.device_auth else {
        panic!("DeviceMac expected")
    };
    let t = transcript();
    let reader = reader_key();
    signed
        .verify(&t, MDL, &key("STATIC_DEVICE_KEY"), Some(&reader))
        .unwrap();

    // The mdoc side recomputes the same tag, byte for byte.
    let ours = DeviceSigned::mac(
        &static_device_key(),
        &reader.public_key(),
        &t,
        MDL,
        vec![0xa0],
    )
    .unwrap();
    let DeviceAuth::Mac(our_mac) = &ours.device_auth else {
        panic!("mac")
    };
    assert_eq!(our_mac.encode().unwrap(), mac.encode().unwrap());

    // Pitfall: EMacKey from the mdoc's ephemeral key instead of the static one.
    assert_eq!(
        signed.verify(&t, MDL, &key("EPHEMERAL_DEVICE_KEY"), Some(&reader)),
        Err(MdocError::BadMac)
    );
    let wrong =
        DeviceSigned::mac(&device_key(), &reader.public_key(), &t, MDL, vec![0xa0]).unwrap();
    assert_eq!(
        wrong.verify(&t, MDL, &key("STATIC_DEVICE_KEY"), Some(&reader)),
        Err(MdocError::BadMac)
    );
    // Another doc type or transcript: refused.
    assert_eq!(
        signed.verify(
            &t,
            "org.example.other",
            &key("STATIC_DEVICE_KEY"),
            Some(&reader)
        ),
        Err(MdocError::BadMac)
    );
}

#[test]
fn device_request_and_items_request() {
    let bytes = v("DEVICE_REQUEST");
    let req = parse_device_request(&bytes).unwrap();
    assert_eq!(req.version, "1.0");
    let [doc] = req.doc_requests.as_slice() else {
        panic!("one DocRequest")
    };
    assert_eq!(doc.items_request_bytes, v("ITEMS_REQUEST"));
    assert_eq!(doc.reader_auth.as_deref(), Some(&v("READER_AUTH")[..]));
    let items = &doc.items_request;
    assert_eq!(items.doc_type, MDL);
    let ns = &items.name_spaces[MDL_NS];
    let expected = [
        ("family_name", true),
        ("document_number", true),
        ("driving_privileges", true),
        ("issue_date", true),
        ("expiry_date", true),
        ("portrait", false),
    ];
    assert_eq!(ns.len(), expected.len());
    for (e, retain) in expected {
        assert_eq!(ns.get(e), Some(&retain), "{e}");
    }
    assert_eq!(
        items
            .ensure_requested(MDL_NS, "birth_date")
            .unwrap_err()
            .code(),
        "element_not_requested"
    );
    assert_eq!(req.encode().unwrap(), bytes);
}

#[test]
fn reader_auth_signature_verifies() {
    let cert = v("READER_CERT");
    let prefix = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    let at = cert
        .windows(prefix.len())
        .position(|w| w == prefix)
        .unwrap();
    let reader_cert_key = EcPublicKey::from_spki(&cert[at..at + prefix.len() + 65]).unwrap();
    let t = transcript();
    let items = v("ITEMS_REQUEST");
    verify_reader_auth(&v("READER_AUTH"), &t, &items, &reader_cert_key).unwrap();
    let mut other = items.clone();
    *other.last_mut().unwrap() ^= 1;
    assert_eq!(
        verify_reader_auth(&v("READER_AUTH"), &t, &other, &reader_cert_key),
        Err(MdocError::BadSignature)
    );
}

#[test]
fn wrong_key_is_refused() {
    let se = parse_session_establishment(&v("SESSION_ESTABLISHMENT")).unwrap();
    let t = transcript();
    // Another device key: other session keys, nothing authenticates.
    let stranger = EphemeralKey::from_scalar(&v("STATIC_DEVICE_KEY_D")).unwrap();
    let wrong = SessionKeys::derive(&stranger, se.e_reader_key(), &t).unwrap();
    let mut device = SessionEncryption::new(Role::Device, wrong);
    assert_eq!(
        device.open_establishment(&se),
        Err(MdocError::DecryptionFailed)
    );
    // The reader's own message reflected back: the wrong direction's key.
    let mut reader = SessionEncryption::new(Role::Reader, keys());
    reader.encrypt(&v("DEVICE_REQUEST")).unwrap();
    assert_eq!(reader.decrypt(se.data()), Err(MdocError::WrongSessionKey));
}

#[test]
fn flipped_ciphertext_bit_is_refused() {
    let sd = parse_session_data(&v("SESSION_DATA")).unwrap();
    let mut data = sd.data.unwrap();
    data[100] ^= 0x01;
    let mut reader = SessionEncryption::new(Role::Reader, keys());
    let tampered = SessionData {
        data: Some(data),
        status: None,
    };
    assert_eq!(reader.open(&tampered), Err(MdocError::DecryptionFailed));
    assert!(reader.is_closed());
}

#[test]
fn replayed_counter_is_refused() {
    let se = parse_session_establishment(&v("SESSION_ESTABLISHMENT")).unwrap();
    let mut device = SessionEncryption::new(Role::Device, keys());
    device.open_establishment(&se).unwrap();
    assert_eq!(
        device.decrypt(se.data()),
        Err(MdocError::Replayed { counter: 1 })
    );
    assert_eq!(device.decrypt(se.data()), Err(MdocError::SessionClosed));

    let sd = parse_session_data(&v("SESSION_DATA")).unwrap();
    let mut reader = SessionEncryption::new(Role::Reader, keys());
    reader.open(&sd).unwrap();
    assert_eq!(reader.open(&sd), Err(MdocError::Replayed { counter: 1 }));
}

#[test]
fn reordered_messages_are_refused() {
    let mut reader = SessionEncryption::new(Role::Reader, keys());
    let first = reader
        .establish(&reader_key().public_key(), &v("DEVICE_REQUEST"))
        .unwrap();
    let second = reader.seal(b"second request").unwrap();
    let mut device = SessionEncryption::new(Role::Device, keys());
    assert_eq!(
        device.open(&second),
        Err(MdocError::OutOfOrder {
            expected: 1,
            got: 2
        })
    );
    // In order, both go through.
    let mut device = SessionEncryption::new(Role::Device, keys());
    assert_eq!(
        device.open_establishment(&first).unwrap(),
        v("DEVICE_REQUEST")
    );
    assert_eq!(
        device.open(&second).unwrap().data.unwrap(),
        b"second request"
    );
}
