#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A whole ISO 18013-5 proximity presentation in memory: a My Number Card
//! mobile ID issued here under a test IACA + DS, presented by
//! `present::Presenter` with a P-256 device key and checked by
//! `reader::Reader`; then every way the reader must refuse.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ciborium::Value;
use shomei_core::Signer;
use shomei_mdoc::MdocError;
use shomei_mdoc::device_auth::DeviceSigned;
use shomei_mdoc::issuer::StatusOutcome;
use shomei_mdoc::issuer::{
    DocumentContent, IssuerSigned, IssuerSignedItem, IssuerSignedItemBytes, StatusCheck,
};
use shomei_mdoc::jp::{self, NS_ISO23220, NS_JP, elements};
use shomei_mdoc::mso::{DeviceKey, StatusRef};
use shomei_mdoc::present::{ConsentPolicy, DeviceResponse, Presenter, ResponseDocument, STATUS_OK};
use shomei_mdoc::reader::{DeviceAuthKind, Reader, VerifiedPresentation};
use shomei_mdoc::request::{DeviceRequest, parse_device_request};
use shomei_mdoc::session::{
    DeviceEngagement, EphemeralKey, Handover, KeyAgreement, Role, SessionData, SessionEncryption,
    SessionKeys, SessionTranscript, SessionTranscriptBytes, parse_session_data,
    parse_session_establishment,
};
use shomei_mdoc::status::{
    STATUS_INVALID, StatusList, StatusListLimits, StatusListTokenClaims, sign_status_list_token,
    verify_status_list_token,
};
use shomei_pki::EcdsaP256Signer;

use common::{NOW, Pki, TestRng, items, items_for};

const PORTRAIT: &[u8] = b"\xff\xd8\xff\xe0 not really a JPEG";

/// The My Number Card document with the given age_over values.
fn content(ages: &[(u8, bool)]) -> DocumentContent {
    let mut iso = vec![
        (elements::SEX.to_owned(), Value::from(1)),
        (elements::AGE_IN_YEARS.to_owned(), Value::from(19)),
    ];
    for (nn, v) in ages {
        iso.push((format!("age_over_{nn:02}"), Value::Bool(*v)));
    }
    DocumentContent {
        doc_type: jp::DOC_TYPE.into(),
        name_spaces: vec![
            (
                NS_JP.into(),
                vec![
                    (elements::FULL_NAME.into(), Value::from("山田 太郎")),
                    (
                        elements::RESIDENT_ADDRESS.into(),
                        Value::from("東京都千代田区霞が関1-1"),
                    ),
                    (
                        elements::BIRTH_DATE_TEXT.into(),
                        Value::from("2007年4月1日"),
                    ),
                    (elements::SEX_TEXT.into(), Value::from("男")),
                    (elements::LOCAL_GOV_CODE.into(), Value::from("13101")),
                    (
                        elements::INDIVIDUAL_NUMBER.into(),
                        Value::from("123456789018"),
                    ),
                    (elements::PORTRAIT.into(), Value::Bytes(PORTRAIT.to_vec())),
                ],
            ),
            (NS_ISO23220.into(), iso),
        ],
    }
}

const AGES_19: &[(u8, bool)] = &[(12, true), (16, true), (18, true), (20, false), (21, false)];

/// A holder: IssuerSigned bytes and the device key they are bound to.
struct Holder {
    pki: Pki,
    key: EcdsaP256Signer,
    issuer_signed: IssuerSigned,
}

impl Holder {
    fn new(ages: &[(u8, bool)]) -> Self {
        let pki = Pki::new("Shomei Test");
        let key = EcdsaP256Signer::generate().unwrap();
        let dk = DeviceKey::from_spki(key.public_key_spki()).unwrap();
        let issuer_signed = pki.issue(&content(ages), &dk);
        Self {
            pki,
            key,
            issuer_signed,
        }
    }

    fn presenter(&self, consent: ConsentPolicy) -> Presenter<'_> {
        self.presenter_of(&self.issuer_signed, consent)
    }

    fn presenter_of(&self, is: &IssuerSigned, consent: ConsentPolicy) -> Presenter<'_> {
        Presenter::new(
            &is.to_cbor().unwrap(),
            jp::DOC_TYPE,
            &self.key,
            consent,
            &mut TestRng(0xdead_beef_1234_5678),
            NOW,
        )
        .unwrap()
    }
}

fn reader_for(p: &Presenter<'_>, wanted: &[(&str, &str)]) -> Reader {
    Reader::from_uri(
        &p.engagement_uri(),
        items(wanted),
        &mut TestRng(0x0bad_cafe_0bad_cafe),
    )
    .unwrap()
}

/// One round trip; returns the reader's verdict and the reader.
fn present(
    holder: &Holder,
    consent: ConsentPolicy,
    wanted: &[(&str, &str)],
) -> (Result<VerifiedPresentation, MdocError>, Reader) {
    let mut p = holder.presenter(consent);
    let mut r = reader_for(&p, wanted);
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    assert!(reply.error.is_none(), "{:?}", reply.error);
    let verdict = r.on_session_data(
        &reply.message.unwrap(),
        &holder.pki.trust,
        NOW,
        StatusCheck::NotChecked,
    );
    (verdict, r)
}

fn released(v: &VerifiedPresentation) -> Vec<(String, String)> {
    v.items
        .iter()
        .flat_map(|(ns, els)| els.keys().map(move |e| (ns.clone(), e.clone())))
        .collect()
}

fn pair(ns: &str, el: &str) -> (String, String) {
    (ns.to_owned(), el.to_owned())
}

// ------------------------------------------------------------------ happy paths

#[test]
fn age_only_request_releases_only_that_age() {
    let h = Holder::new(&[(18, true), (20, true), (21, true), (25, false)]);
    let (v, r) = present(&h, ConsentPolicy::auto(), &[(NS_ISO23220, "age_over_20")]);
    let v = v.unwrap();
    assert_eq!(v.doc_type, jp::DOC_TYPE);
    assert_eq!(v.device_auth, DeviceAuthKind::Signature);
    assert_eq!(released(&v), vec![pair(NS_ISO23220, "age_over_20")]);
    assert_eq!(v.items[NS_ISO23220]["age_over_20"], Value::Bool(true));
    // The decrypted response and transcript are available for --save-*.
    let resp = DeviceResponse::parse(r.device_response().unwrap()).unwrap();
    assert_eq!(resp.status, STATUS_OK);
    assert_eq!(resp.documents.len(), 1);
    assert_eq!(resp.documents[0].device_signed.name_spaces, vec![0xa0]);
    assert!(!r.session_transcript().as_bytes().is_empty());
}

#[test]
fn age_over_nearest_true_above() {
    // No age_over_20 held; 21 true → released instead of 25 or 18.
    let h = Holder::new(&[(18, true), (21, true), (25, true)]);
    let (v, _) = present(&h, ConsentPolicy::auto(), &[(NS_ISO23220, "age_over_20")]);
    let v = v.unwrap();
    assert_eq!(released(&v), vec![pair(NS_ISO23220, "age_over_21")]);
    assert_eq!(v.items[NS_ISO23220]["age_over_21"], Value::Bool(true));
}

#[test]
fn age_over_nearest_false_below() {
    // 17 years old: 16 true, 18 false, 21 false; asked 20 → 18 false.
    let h = Holder::new(&[(16, true), (18, false), (21, false)]);
    let (v, _) = present(&h, ConsentPolicy::auto(), &[(NS_ISO23220, "age_over_20")]);
    let v = v.unwrap();
    assert_eq!(released(&v), vec![pair(NS_ISO23220, "age_over_18")]);
    assert_eq!(v.items[NS_ISO23220]["age_over_18"], Value::Bool(false));
}

#[test]
fn age_over_nothing_provable_releases_nothing() {
    // 18 true, 21 false, asked 20: neither proves anything about 20.
    let h = Holder::new(&[(18, true), (21, false)]);
    let (v, r) = present(&h, ConsentPolicy::auto(), &[(NS_ISO23220, "age_over_20")]);
    assert!(v.unwrap().items.is_empty());
    let resp = DeviceResponse::parse(r.device_response().unwrap()).unwrap();
    assert_eq!(resp.documents[0].errors[NS_ISO23220]["age_over_20"], 0);
}

#[test]
fn age_over_exact_false_is_released() {
    let h = Holder::new(AGES_19);
    let (v, _) = present(&h, ConsentPolicy::auto(), &[(NS_ISO23220, "age_over_20")]);
    let v = v.unwrap();
    assert_eq!(released(&v), vec![pair(NS_ISO23220, "age_over_20")]);
    assert_eq!(v.items[NS_ISO23220]["age_over_20"], Value::Bool(false));
}

const FULL: &[(&str, &str)] = &[
    (NS_JP, elements::FULL_NAME),
    (NS_JP, elements::RESIDENT_ADDRESS),
    (NS_JP, elements::BIRTH_DATE_TEXT),
    (NS_JP, elements::SEX_TEXT),
    (NS_JP, elements::PORTRAIT),
    (NS_JP, elements::INDIVIDUAL_NUMBER),
];

#[test]
fn full_identity_with_portrait_withholds_the_individual_number_under_auto() {
    let h = Holder::new(AGES_19);
    let (v, r) = present(&h, ConsentPolicy::auto(), FULL);
    let v = v.unwrap();
    let jp_items = &v.items[NS_JP];
    assert_eq!(jp_items[elements::FULL_NAME], Value::from("山田 太郎"));
    assert_eq!(
        jp_items[elements::PORTRAIT],
        Value::Bytes(PORTRAIT.to_vec())
    );
    assert_eq!(jp_items.len(), 5);
    assert!(!jp_items.contains_key(elements::INDIVIDUAL_NUMBER));
    assert!(!v.items.contains_key(NS_ISO23220));
    let resp = DeviceResponse::parse(r.device_response().unwrap()).unwrap();
    assert_eq!(
        resp.documents[0].errors[NS_JP][elements::INDIVIDUAL_NUMBER],
        0
    );
}

#[test]
fn individual_number_never_goes_to_an_unauthenticated_reader() {
    // Even when the holder allows it: the individual number goes only to
    // an authenticated reader (tests/reader_auth.rs has the released case).
    let h = Holder::new(AGES_19);
    let (v, _) = present(
        &h,
        ConsentPolicy::Auto {
            release_individual_number: true,
            require_authenticated_reader: Vec::new(),
        },
        FULL,
    );
    let v = v.unwrap();
    assert!(!v.items[NS_JP].contains_key(elements::INDIVIDUAL_NUMBER));
    assert!(v.items[NS_JP].contains_key(elements::FULL_NAME));
}

#[test]
fn ask_policy_decides_per_element() {
    let h = Holder::new(AGES_19);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let consent = ConsentPolicy::Ask(Box::new(move |q| {
        log.lock().unwrap().push(q.element.to_owned());
        q.element == elements::FULL_NAME
    }));
    let (v, _) = present(
        &h,
        consent,
        &[(NS_JP, elements::FULL_NAME), (NS_JP, elements::PORTRAIT)],
    );
    assert_eq!(
        released(&v.unwrap()),
        vec![pair(NS_JP, elements::FULL_NAME)]
    );
    let mut asked = asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, vec![elements::FULL_NAME, elements::PORTRAIT]);
}

#[test]
fn reply_lists_exactly_the_released_elements() {
    let h = Holder::new(AGES_19);
    let mut p = h.presenter(ConsentPolicy::auto());
    let r = reader_for(
        &p,
        &[(NS_JP, elements::SEX_TEXT), (NS_JP, "no_such_element")],
    );
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    assert_eq!(reply.released, vec![pair(NS_JP, elements::SEX_TEXT)]);
    // A second establishment is refused.
    assert_eq!(
        p.on_session_establishment(r.session_establishment())
            .unwrap_err(),
        MdocError::SessionClosed
    );
}

#[test]
fn termination_ends_both_sides() {
    let h = Holder::new(AGES_19);
    let mut p = h.presenter(ConsentPolicy::auto());
    let mut r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    r.on_session_data(
        &reply.message.unwrap(),
        &h.pki.trust,
        NOW,
        StatusCheck::NotChecked,
    )
    .unwrap();
    let end = r.terminate().unwrap();
    let reply = p.on_session_data(&end).unwrap();
    assert!(reply.ended && reply.error.is_none() && reply.message.is_none());
    assert!(p.is_closed());
}

#[test]
fn presenter_refuses_a_key_the_mso_is_not_bound_to() {
    let h = Holder::new(AGES_19);
    let other = EcdsaP256Signer::generate().unwrap();
    let err = Presenter::new(
        &h.issuer_signed.to_cbor().unwrap(),
        jp::DOC_TYPE,
        &other,
        ConsentPolicy::auto(),
        &mut TestRng(1),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, MdocError::Invalid(_)));
    let err = Presenter::new(
        &h.issuer_signed.to_cbor().unwrap(),
        "org.example.other",
        &h.key,
        ConsentPolicy::auto(),
        &mut TestRng(1),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err, MdocError::DocTypeMismatch);
}

// ------------------------------------------------------------------ refusals

#[test]
fn reader_refuses_a_tampered_element() {
    let h = Holder::new(AGES_19);
    let mut tampered = h.issuer_signed.clone();
    for item in tampered.name_spaces.get_mut(NS_ISO23220).unwrap() {
        if item.item().element_identifier == "age_over_20" {
            let mut i: IssuerSignedItem = item.item().clone();
            i.element_value = Value::Bool(true);
            *item = IssuerSignedItemBytes::new(i).unwrap();
        }
    }
    let mut p = h.presenter_of(&tampered, ConsentPolicy::auto());
    let mut r = reader_for(&p, &[(NS_ISO23220, "age_over_20")]);
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    let err = r
        .on_session_data(
            &reply.message.unwrap(),
            &h.pki.trust,
            NOW,
            StatusCheck::NotChecked,
        )
        .unwrap_err();
    assert!(matches!(err, MdocError::DigestMismatch { .. }), "{err:?}");
}

#[test]
fn reader_refuses_an_expired_mso() {
    let h = Holder::new(AGES_19);
    let mut p = h.presenter(ConsentPolicy::auto());
    let mut r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    let later = NOW + time::Duration::days(31);
    let err = r
        .on_session_data(
            &reply.message.unwrap(),
            &h.pki.trust,
            later,
            StatusCheck::NotChecked,
        )
        .unwrap_err();
    assert_eq!(err, MdocError::Expired);
}

#[test]
fn reader_refuses_an_untrusted_iaca() {
    let h = Holder::new(AGES_19);
    let stranger = Pki::new("Someone Else");
    let mut p = h.presenter(ConsentPolicy::auto());
    let mut r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    let err = r
        .on_session_data(
            &reply.message.unwrap(),
            &stranger.trust,
            NOW,
            StatusCheck::NotChecked,
        )
        .unwrap_err();
    assert_eq!(err, MdocError::UntrustedIaca);
}

#[test]
fn unknown_doc_type_gets_document_errors_and_the_reader_refuses() {
    let h = Holder::new(AGES_19);
    let mut p = h.presenter(ConsentPolicy::auto());
    let mut r = Reader::from_uri(
        &p.engagement_uri(),
        items_for(
            "org.iso.18013.5.1.mDL",
            &[("org.iso.18013.5.1", "family_name")],
        ),
        &mut TestRng(5),
    )
    .unwrap();
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    assert!(reply.released.is_empty());
    let err = r
        .on_session_data(
            &reply.message.unwrap(),
            &h.pki.trust,
            NOW,
            StatusCheck::NotChecked,
        )
        .unwrap_err();
    assert_eq!(
        err,
        MdocError::UnknownDocType("org.iso.18013.5.1.mDL".into())
    );
    let resp = DeviceResponse::parse(r.device_response().unwrap()).unwrap();
    assert!(resp.documents.is_empty());
    assert_eq!(resp.document_errors["org.iso.18013.5.1.mDL"], 0);
    assert_eq!(resp.status, STATUS_OK);
}

#[test]
fn reader_refuses_a_replayed_message() {
    let h = Holder::new(AGES_19);
    let mut p = h.presenter(ConsentPolicy::auto());
    let mut r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    let msg = reply.message.unwrap();
    r.on_session_data(&msg, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap();
    let err = r
        .on_session_data(&msg, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(err, MdocError::Replayed { counter: 1 });
}

/// A hand-driven mdoc, for answers the Presenter would never give.
struct ManualDevice {
    eph: EphemeralKey,
    engagement: DeviceEngagement,
}

struct ManualSession {
    enc: SessionEncryption,
    transcript: SessionTranscriptBytes,
    request: DeviceRequest,
}

impl ManualDevice {
    fn new() -> Self {
        let eph = EphemeralKey::generate().unwrap();
        let engagement = DeviceEngagement::build(&eph.public_key(), Vec::new()).unwrap();
        Self { eph, engagement }
    }

    fn accept(&self, establishment: &[u8]) -> ManualSession {
        let est = parse_session_establishment(establishment).unwrap();
        let transcript = SessionTranscript::new(&self.engagement, &est, Handover::Qr)
            .to_bytes()
            .unwrap();
        let keys = SessionKeys::derive(&self.eph, est.e_reader_key(), &transcript).unwrap();
        let mut enc = SessionEncryption::new(Role::Device, keys);
        let request = parse_device_request(&enc.open_establishment(&est).unwrap()).unwrap();
        ManualSession {
            enc,
            transcript,
            request,
        }
    }
}

fn response_with(issuer_signed: IssuerSigned, device_signed: DeviceSigned) -> Vec<u8> {
    DeviceResponse {
        version: "1.0".into(),
        documents: vec![ResponseDocument {
            doc_type: jp::DOC_TYPE.into(),
            issuer_signed,
            device_signed,
            errors: BTreeMap::new(),
        }],
        document_errors: BTreeMap::new(),
        status: STATUS_OK,
    }
    .encode()
    .unwrap()
}

fn manual_reader(d: &ManualDevice, wanted: &[(&str, &str)]) -> Reader {
    manual_reader_seeded(d, wanted, 77)
}

fn manual_reader_seeded(d: &ManualDevice, wanted: &[(&str, &str)], seed: u64) -> Reader {
    Reader::new(d.engagement.as_bytes(), items(wanted), &mut TestRng(seed)).unwrap()
}

fn keep_only(is: &IssuerSigned, keep: &'static [&'static str]) -> IssuerSigned {
    is.disclose(|_, el| keep.contains(&el))
}

#[test]
fn manual_device_honest_answer_is_accepted() {
    // Control for the manual-device refusals below.
    let h = Holder::new(AGES_19);
    let d = ManualDevice::new();
    let mut r = manual_reader(&d, &[(NS_JP, elements::SEX_TEXT)]);
    let mut s = d.accept(r.session_establishment());
    assert_eq!(s.request.doc_requests.len(), 1);
    let ds = DeviceSigned::sign(&h.key, &s.transcript, jp::DOC_TYPE, vec![0xa0]).unwrap();
    let resp = response_with(keep_only(&h.issuer_signed, &[elements::SEX_TEXT]), ds);
    let msg = s.enc.seal(&resp).unwrap().encode().unwrap();
    let v = r
        .on_session_data(&msg, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap();
    assert_eq!(released(&v), vec![pair(NS_JP, elements::SEX_TEXT)]);
}

#[test]
fn reader_refuses_an_element_disclosed_but_not_requested() {
    let h = Holder::new(AGES_19);
    let d = ManualDevice::new();
    let mut r = manual_reader(&d, &[(NS_JP, elements::SEX_TEXT)]);
    let mut s = d.accept(r.session_establishment());
    let ds = DeviceSigned::sign(&h.key, &s.transcript, jp::DOC_TYPE, vec![0xa0]).unwrap();
    let resp = response_with(
        keep_only(
            &h.issuer_signed,
            &[elements::SEX_TEXT, elements::INDIVIDUAL_NUMBER],
        ),
        ds,
    );
    let msg = s.enc.seal(&resp).unwrap().encode().unwrap();
    let err = r
        .on_session_data(&msg, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(
        err,
        MdocError::ElementNotRequested {
            namespace: NS_JP.into(),
            element: elements::INDIVIDUAL_NUMBER.into(),
        }
    );
}

#[test]
fn reader_refuses_an_age_substitute_against_the_rule() {
    // Asked age_over_20, answered age_over_21 = false: proves nothing.
    let h = Holder::new(AGES_19);
    let d = ManualDevice::new();
    let mut r = manual_reader(&d, &[(NS_ISO23220, "age_over_20")]);
    let mut s = d.accept(r.session_establishment());
    let ds = DeviceSigned::sign(&h.key, &s.transcript, jp::DOC_TYPE, vec![0xa0]).unwrap();
    let resp = response_with(keep_only(&h.issuer_signed, &["age_over_21"]), ds);
    let msg = s.enc.seal(&resp).unwrap().encode().unwrap();
    let err = r
        .on_session_data(&msg, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert!(
        matches!(err, MdocError::ElementNotRequested { .. }),
        "{err:?}"
    );
}

#[test]
fn reader_refuses_a_device_signature_over_another_transcript() {
    let h = Holder::new(AGES_19);
    let d = ManualDevice::new();
    let mut r = manual_reader(&d, &[(NS_JP, elements::SEX_TEXT)]);
    let mut s = d.accept(r.session_establishment());
    // A transcript of another session (another reader key).
    let other_reader = manual_reader_seeded(&d, &[(NS_JP, elements::SEX_TEXT)], 78);
    let other = d.accept(other_reader.session_establishment()).transcript;
    assert_ne!(other, s.transcript);
    let ds = DeviceSigned::sign(&h.key, &other, jp::DOC_TYPE, vec![0xa0]).unwrap();
    let resp = response_with(keep_only(&h.issuer_signed, &[elements::SEX_TEXT]), ds);
    let msg = s.enc.seal(&resp).unwrap().encode().unwrap();
    let err = r
        .on_session_data(&msg, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(err, MdocError::BadSignature);
}

#[test]
fn reader_refuses_a_device_signature_by_another_key() {
    let h = Holder::new(AGES_19);
    let d = ManualDevice::new();
    let mut r = manual_reader(&d, &[(NS_JP, elements::SEX_TEXT)]);
    let mut s = d.accept(r.session_establishment());
    let thief = EcdsaP256Signer::generate().unwrap();
    let ds = DeviceSigned::sign(&thief, &s.transcript, jp::DOC_TYPE, vec![0xa0]).unwrap();
    let resp = response_with(keep_only(&h.issuer_signed, &[elements::SEX_TEXT]), ds);
    let msg = s.enc.seal(&resp).unwrap().encode().unwrap();
    let err = r
        .on_session_data(&msg, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(err, MdocError::BadSignature);
}

#[test]
fn device_mac_is_verified() {
    // An mdoc whose static device key does ECDH (DeviceMac, §9.1.3.5).
    let pki = Pki::new("Shomei Test");
    let static_key = EphemeralKey::generate().unwrap();
    let dk = DeviceKey::from_uncompressed(&static_key.public_key().uncompressed()).unwrap();
    let is = pki.issue(&content(AGES_19), &dk);
    let d = ManualDevice::new();
    let mut r = manual_reader(&d, &[(NS_JP, elements::SEX_TEXT)]);
    let mut s = d.accept(r.session_establishment());
    let e_reader = parse_session_establishment(r.session_establishment())
        .unwrap()
        .e_reader_key()
        .clone();
    let ds = DeviceSigned::mac(
        &static_key,
        &e_reader,
        &s.transcript,
        jp::DOC_TYPE,
        vec![0xa0],
    )
    .unwrap();
    let good = response_with(keep_only(&is, &[elements::SEX_TEXT]), ds);
    let msg = s.enc.seal(&good).unwrap().encode().unwrap();
    let v = r
        .on_session_data(&msg, &pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap();
    assert_eq!(v.device_auth, DeviceAuthKind::Mac);

    // The same MAC in another session fails.
    let mut r2 = manual_reader_seeded(&d, &[(NS_JP, elements::SEX_TEXT)], 79);
    let mut s2 = d.accept(r2.session_establishment());
    let msg = s2.enc.seal(&good).unwrap().encode().unwrap();
    let err = r2
        .on_session_data(&msg, &pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(err, MdocError::BadMac);
}

#[test]
fn reader_refuses_reordered_messages() {
    let h = Holder::new(AGES_19);
    let d = ManualDevice::new();
    let mut r = manual_reader(&d, &[(NS_JP, elements::SEX_TEXT)]);
    let mut s = d.accept(r.session_establishment());
    let ds = DeviceSigned::sign(&h.key, &s.transcript, jp::DOC_TYPE, vec![0xa0]).unwrap();
    let resp = response_with(keep_only(&h.issuer_signed, &[elements::SEX_TEXT]), ds);
    let _first = s.enc.seal(&resp).unwrap().encode().unwrap();
    let second = s.enc.seal(&resp).unwrap().encode().unwrap();
    let err = r
        .on_session_data(&second, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(
        err,
        MdocError::OutOfOrder {
            expected: 1,
            got: 2
        }
    );
}

#[test]
fn reader_refuses_a_wrong_session_key() {
    let h = Holder::new(AGES_19);
    // Its own SessionEstablishment reflected back (SKReader, not SKDevice).
    let p = h.presenter(ConsentPolicy::auto());
    let mut r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
    let est = parse_session_establishment(r.session_establishment()).unwrap();
    let reflected = SessionData {
        data: Some(est.data().to_vec()),
        status: None,
    }
    .encode()
    .unwrap();
    let err = r
        .on_session_data(&reflected, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(err, MdocError::WrongSessionKey);

    // A message from another session: keys unknown to this reader.
    let mut p1 = h.presenter(ConsentPolicy::auto());
    let r1 = reader_for(&p1, &[(NS_JP, elements::SEX_TEXT)]);
    let foreign = p1
        .on_session_establishment(r1.session_establishment())
        .unwrap()
        .message
        .unwrap();
    let p2 = h.presenter(ConsentPolicy::auto());
    let mut r2 = Reader::from_uri(
        &p2.engagement_uri(),
        items(&[(NS_JP, elements::SEX_TEXT)]),
        &mut TestRng(99),
    )
    .unwrap();
    let err = r2
        .on_session_data(&foreign, &h.pki.trust, NOW, StatusCheck::NotChecked)
        .unwrap_err();
    assert_eq!(err, MdocError::DecryptionFailed);
}

#[test]
fn holder_answers_garbage_with_a_status_and_never_panics() {
    let h = Holder::new(AGES_19);
    for garbage in [
        &b""[..],
        b"\xa0",
        b"\xff\xff",
        b"\xa2\x6aeReaderKey\xd8\x18\x41\x00",
    ] {
        let mut p = h.presenter(ConsentPolicy::auto());
        let reply = p.on_session_establishment(garbage).unwrap();
        assert!(reply.ended && reply.error.is_some());
        let status = parse_session_data(&reply.message.unwrap()).unwrap();
        assert!(status.data.is_none() && status.status.is_some());
    }
    // A corrupted establishment from a real reader: status 10.
    let mut p = h.presenter(ConsentPolicy::auto());
    let r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
    let mut est = r.session_establishment().to_vec();
    let last = est.len() - 1;
    est[last] ^= 1;
    let reply = p.on_session_establishment(&est).unwrap();
    assert_eq!(reply.error, Some(MdocError::DecryptionFailed));
    let status = parse_session_data(&reply.message.unwrap()).unwrap();
    assert_eq!(status.status.map(|s| s.code()), Some(10));
}

#[test]
fn reader_reports_the_peer_status() {
    let h = Holder::new(AGES_19);
    let p = h.presenter(ConsentPolicy::auto());
    let mut r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
    let err = r
        .on_session_data(
            &[0xa1, 0x66, b's', b't', b'a', b't', b'u', b's', 0x0a],
            &h.pki.trust,
            NOW,
            StatusCheck::NotChecked,
        )
        .unwrap_err();
    assert_eq!(err, MdocError::PeerError { status: 10 });
}

const STATUS_URI: &str = "http://127.0.0.1:8700/status/mdoc";

#[test]
fn status_list_is_checked_in_two_steps() {
    let mut list = StatusList::new(2, 64).unwrap();
    list.set(5, STATUS_INVALID).unwrap();
    for (idx, expect) in [
        (4u64, Ok(StatusOutcome::Valid)),
        (5, Err(MdocError::Revoked)),
    ] {
        let pki = Pki::new("Shomei Test");
        let key = EcdsaP256Signer::generate().unwrap();
        let dk = DeviceKey::from_spki(key.public_key_spki()).unwrap();
        let is = pki.issue_with_status(
            &content(AGES_19),
            &dk,
            Some(StatusRef {
                idx,
                uri: STATUS_URI.into(),
            }),
        );
        let token = sign_status_list_token(
            &list,
            &StatusListTokenClaims {
                uri: STATUS_URI.into(),
                issued_at: NOW,
                expires: NOW + time::Duration::days(1),
                ttl_seconds: None,
            },
            &pki.ds_key,
            std::slice::from_ref(&pki.ds_cert),
        )
        .unwrap();
        let h = Holder {
            pki,
            key,
            issuer_signed: is,
        };
        let mut p = h.presenter(ConsentPolicy::auto());
        let mut r = reader_for(&p, &[(NS_JP, elements::SEX_TEXT)]);
        let reply = p
            .on_session_establishment(r.session_establishment())
            .unwrap();
        assert!(r.status_reference().is_none());
        r.open_session_data(&reply.message.unwrap()).unwrap();
        let reference = r.status_reference().unwrap();
        assert_eq!((reference.uri.as_str(), reference.idx), (STATUS_URI, idx));
        let verified = verify_status_list_token(
            &token,
            &reference.uri,
            &h.pki.trust,
            NOW,
            StatusListLimits::default(),
        )
        .unwrap();
        let got = r
            .verify(&h.pki.trust, NOW, StatusCheck::List(&verified))
            .map(|v| v.status);
        assert_eq!(got, expect);
    }
}
