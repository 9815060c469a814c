#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Device authentication by MAC (ISO/IEC 18013-5 §9.1.3.5) end to end:
//! `present::Presenter` in MAC mode, its static device key reached only
//! through `session::KeyAgreement` (as a secure element would offer it),
//! checked by `reader::Reader`; and a MAC made with the wrong private key
//! is refused.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use ciborium::Value;
use shomei_mdoc::MdocError;
use shomei_mdoc::device_auth::{DeviceAuth, DeviceSigned, parse_device_response_device_signed};
use shomei_mdoc::issuer::{DocumentContent, IssuerSigned, StatusCheck};
use shomei_mdoc::jp::{self, NS_ISO23220, NS_JP, elements};
use shomei_mdoc::present::{ConsentPolicy, DeviceAuthKey, Presenter};
use shomei_mdoc::reader::{DeviceAuthKind, Reader, VerifiedPresentation};
use shomei_mdoc::session::{
    EcPublicKey, EphemeralKey, KeyAgreement, SharedSecret, parse_session_establishment,
};
use shomei_pki::EcdsaP256Signer;

use common::{NOW, Pki, TestRng, items};

/// The static device key as a secure element offers it: ECDH only, the
/// private key out of reach. Counts agreements; may lie about which
/// private key it uses (`actual`), as a wrong key would.
struct ElementKey {
    public: EcPublicKey,
    actual: EphemeralKey,
    agreements: AtomicU32,
}

impl ElementKey {
    fn honest(key: EphemeralKey) -> Self {
        Self {
            public: key.public_key(),
            actual: key,
            agreements: AtomicU32::new(0),
        }
    }
}

impl KeyAgreement for ElementKey {
    fn public_key(&self) -> EcPublicKey {
        self.public.clone()
    }

    fn agree(&self, peer: &EcPublicKey) -> Result<SharedSecret, MdocError> {
        self.agreements.fetch_add(1, Ordering::Relaxed);
        let z = self.actual.agree(peer)?;
        Ok(SharedSecret::from_bytes(*z.as_bytes()))
    }
}

/// The document every test here issues.
fn content() -> DocumentContent {
    DocumentContent {
        doc_type: jp::DOC_TYPE.into(),
        name_spaces: vec![
            (
                NS_JP.into(),
                vec![
                    (elements::FULL_NAME.into(), Value::from("山田 太郎")),
                    (elements::SEX_TEXT.into(), Value::from("男")),
                ],
            ),
            (
                NS_ISO23220.into(),
                vec![
                    ("age_over_18".to_owned(), Value::Bool(true)),
                    ("age_over_20".to_owned(), Value::Bool(false)),
                ],
            ),
        ],
    }
}

fn presenter<'a>(is: &IssuerSigned, key: &'a (dyn KeyAgreement + Sync)) -> Presenter<'a> {
    Presenter::with_device_auth(
        &is.to_cbor().unwrap(),
        jp::DOC_TYPE,
        DeviceAuthKey::Mac(key),
        ConsentPolicy::auto(),
        Vec::new(),
        &mut TestRng(0xdead_beef_1234_5678),
        NOW,
    )
    .unwrap()
}

fn reader_for(p: &Presenter<'_>, wanted: &[(&str, &str)]) -> Reader {
    Reader::from_uri(
        &p.engagement_uri(),
        items(wanted),
        &mut TestRng(0x0bad_cafe_0bad_cafe),
    )
    .unwrap()
}

/// One round trip through the presenter; the reader's verdict and the reader.
fn round_trip(
    pki: &Pki,
    p: &mut Presenter<'_>,
    wanted: &[(&str, &str)],
) -> (Result<VerifiedPresentation, MdocError>, Reader) {
    let mut r = reader_for(p, wanted);
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    assert!(reply.error.is_none(), "{:?}", reply.error);
    let verdict = r.on_session_data(
        &reply.message.unwrap(),
        &pki.trust,
        NOW,
        StatusCheck::NotChecked,
    );
    (verdict, r)
}

#[test]
fn presentation_in_mac_mode_verifies_as_mac() {
    let pki = Pki::new("Shomei MAC Test");
    let key = ElementKey::honest(EphemeralKey::generate().unwrap());
    let is = pki.issue(&content(), &key.public_key());
    let mut p = presenter(&is, &key);
    assert!(p.authenticates_by_mac());
    let (v, r) = round_trip(
        &pki,
        &mut p,
        &[(NS_ISO23220, "age_over_18"), (NS_JP, elements::SEX_TEXT)],
    );
    let v = v.unwrap();
    assert_eq!(v.device_auth, DeviceAuthKind::Mac);
    assert_eq!(v.items[NS_ISO23220]["age_over_18"], Value::Bool(true));
    assert_eq!(v.items[NS_JP][elements::SEX_TEXT], Value::from("男"));
    assert!(!v.items[NS_JP].contains_key(elements::FULL_NAME));
    // One ECDH with the static key for the session.
    assert_eq!(key.agreements.load(Ordering::Relaxed), 1);

    // What went over the air is the §9.1.3.5 MAC: recomputed here from the
    // static key, the reader's ephemeral key and the session transcript.
    let docs = parse_device_response_device_signed(r.device_response().unwrap()).unwrap();
    assert_eq!(docs.len(), 1);
    assert!(matches!(docs[0].1.device_auth, DeviceAuth::Mac(_)));
    let e_reader = parse_session_establishment(r.session_establishment())
        .unwrap()
        .e_reader_key()
        .clone();
    let expected = DeviceSigned::mac(
        &key.actual,
        &e_reader,
        r.session_transcript(),
        jp::DOC_TYPE,
        vec![0xa0],
    )
    .unwrap();
    assert_eq!(docs[0].1, expected);
}

#[test]
fn a_mac_made_with_the_wrong_key_is_refused() {
    let pki = Pki::new("Shomei MAC Test");
    let bound = EphemeralKey::generate().unwrap();
    let is = pki.issue(&content(), &bound.public_key());
    // Claims the bound public key, but agrees with another private key.
    let wrong = ElementKey {
        public: bound.public_key(),
        actual: EphemeralKey::generate().unwrap(),
        agreements: AtomicU32::new(0),
    };
    let mut p = presenter(&is, &wrong);
    let (v, _) = round_trip(&pki, &mut p, &[(NS_ISO23220, "age_over_18")]);
    assert_eq!(v.unwrap_err(), MdocError::BadMac);
    assert_eq!(wrong.agreements.load(Ordering::Relaxed), 1);
}

#[test]
fn presenter_in_mac_mode_refuses_a_key_the_mso_is_not_bound_to() {
    let pki = Pki::new("Shomei MAC Test");
    let bound = EphemeralKey::generate().unwrap();
    let is = pki.issue(&content(), &bound.public_key());
    let other = ElementKey::honest(EphemeralKey::generate().unwrap());
    let err = Presenter::with_device_auth(
        &is.to_cbor().unwrap(),
        jp::DOC_TYPE,
        DeviceAuthKey::Mac(&other),
        ConsentPolicy::auto(),
        Vec::new(),
        &mut TestRng(1),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, MdocError::Invalid(_)), "{err:?}");
    assert_eq!(other.agreements.load(Ordering::Relaxed), 0);
}

#[test]
fn signature_mode_is_unchanged_through_the_new_constructor() {
    let pki = Pki::new("Shomei MAC Test");
    let signer = EcdsaP256Signer::generate().unwrap();
    let spki_key = EcPublicKey::from_spki(shomei_core::Signer::public_key_spki(&signer)).unwrap();
    let is = pki.issue(&content(), &spki_key);
    let mut p = Presenter::with_device_auth(
        &is.to_cbor().unwrap(),
        jp::DOC_TYPE,
        DeviceAuthKey::Signature(&signer),
        ConsentPolicy::auto(),
        Vec::new(),
        &mut TestRng(2),
        NOW,
    )
    .unwrap();
    assert!(!p.authenticates_by_mac());
    let (v, _) = round_trip(&pki, &mut p, &[(NS_ISO23220, "age_over_18")]);
    assert_eq!(v.unwrap().device_auth, DeviceAuthKind::Signature);
}
