#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Reader authentication (ISO/IEC 18013-5 §9.1.4) end to end in memory: a
//! reader signs its request with a key certified by a reader CA, the
//! holder checks it against the exact session and the trusted CAs, shows
//! who asks to the consent decision, and refuses the whole request when
//! readerAuth is present but wrong.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ciborium::Value;
use shomei_core::{Serial, Signer, Timestamp};
use shomei_mdoc::MdocError;
use shomei_mdoc::issuer::{
    DocumentContent, DocumentSigner, IssuerSigned, StatusCheck, TrustedIacas, issue,
};
use shomei_mdoc::jp::{self, NS_JP, elements};
use shomei_mdoc::mso::{DeviceKey, ValidityInfo};
use shomei_mdoc::present::{ConsentPolicy, DeviceResponse, Presenter, Reply, STATUS_GENERAL_ERROR};
use shomei_mdoc::reader::Reader;
use shomei_mdoc::reader_auth::{
    ReaderAuthKey, ReaderIdentity, TrustedReaderCas, authenticate_reader, sign_reader_auth,
};
use shomei_mdoc::request::{DeviceRequest, DocRequest, ItemsRequest};
use shomei_mdoc::session::{
    EphemeralKey, Handover, KeyAgreement, Role, SessionEncryption, SessionKeys, SessionTranscript,
    SessionTranscriptBytes, parse_session_data,
};
use shomei_pki::EcdsaP256Signer;
use shomei_pki::profile::{Iaca, PublicationPoints, ReaderCa};
use time::Duration;

use common::{NOW, TestRng};

const NUMBER: &str = "123456789018";

fn serial(b: u8) -> Serial {
    Serial::from_be_bytes(&[0x40 | b, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap()
}

fn points() -> PublicationPoints {
    PublicationPoints::new("http://127.0.0.1:8700")
}

/// The authority's trust material: IACA + DS for the document, a reader CA.
struct World {
    iaca: Iaca,
    trust: TrustedIacas,
    ds_key: EcdsaP256Signer,
    ds_cert: Vec<u8>,
    reader_ca: ReaderCa,
}

impl World {
    fn new() -> Self {
        let iaca = Iaca::create(
            "Shomei Test",
            &points(),
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            &serial(1),
            NOW - Duration::days(400),
        )
        .unwrap();
        let ds_key = EcdsaP256Signer::generate().unwrap();
        let ds_cert = iaca
            .issue_document_signer(&points(), &ds_key, &serial(2), NOW, 365)
            .unwrap();
        let trust = TrustedIacas::new(vec![iaca.cert_der().to_vec()]).unwrap();
        let reader_ca = ReaderCa::create(
            "Shomei Test",
            &points(),
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            &serial(3),
            NOW - Duration::days(400),
        )
        .unwrap();
        Self {
            iaca,
            trust,
            ds_key,
            ds_cert,
            reader_ca,
        }
    }

    fn trusted_readers(&self) -> TrustedReaderCas {
        TrustedReaderCas::new(vec![self.reader_ca.cert_der().to_vec()]).unwrap()
    }

    /// A reader key and its certificate from this world's reader CA.
    fn reader(&self, name: &str, issued: Timestamp, days: i64) -> (EcdsaP256Signer, Vec<Vec<u8>>) {
        let key = EcdsaP256Signer::generate().unwrap();
        let cert = self
            .reader_ca
            .issue_reader(
                &points(),
                key.public_key_spki(),
                name,
                &serial(4),
                issued,
                days,
            )
            .unwrap();
        (key, vec![cert])
    }
}

fn content() -> DocumentContent {
    DocumentContent {
        doc_type: jp::DOC_TYPE.into(),
        name_spaces: vec![(
            NS_JP.into(),
            vec![
                (elements::FULL_NAME.into(), Value::from("山田 太郎")),
                (elements::INDIVIDUAL_NUMBER.into(), Value::from(NUMBER)),
                (elements::PORTRAIT.into(), Value::Bytes(b"jpeg".to_vec())),
            ],
        )],
    }
}

struct Holder {
    world: World,
    key: EcdsaP256Signer,
    issuer_signed: IssuerSigned,
}

impl Holder {
    fn new() -> Self {
        let world = World::new();
        let key = EcdsaP256Signer::generate().unwrap();
        let dk = DeviceKey::from_spki(key.public_key_spki()).unwrap();
        let ds = DocumentSigner::new(&world.ds_key, world.ds_cert.clone()).unwrap();
        let issuer_signed = issue(
            &content(),
            &dk,
            ValidityInfo::starting(NOW, Duration::days(30)),
            None,
            &ds,
            &mut TestRng(0x1234_5678_9abc_def1),
        )
        .unwrap();
        Self {
            world,
            key,
            issuer_signed,
        }
    }

    /// A presenter trusting the world's reader CA.
    fn presenter(&self, consent: ConsentPolicy) -> Presenter<'_> {
        let mut p = Presenter::new(
            &self.issuer_signed.to_cbor().unwrap(),
            jp::DOC_TYPE,
            &self.key,
            consent,
            &mut TestRng(0xdead_beef_1234_5678),
            NOW,
        )
        .unwrap();
        p.trust_readers(self.world.trusted_readers(), NOW);
        p
    }
}

fn items(wanted: &[&str]) -> ItemsRequest {
    let mut els = BTreeMap::new();
    for e in wanted {
        els.insert((*e).to_owned(), false);
    }
    ItemsRequest {
        doc_type: jp::DOC_TYPE.into(),
        name_spaces: [(NS_JP.to_owned(), els)].into_iter().collect(),
    }
}

const ALL: &[&str] = &[elements::FULL_NAME, elements::INDIVIDUAL_NUMBER];

/// A whole round trip through `Reader` (signed with `auth` when given).
fn round_trip(
    p: &mut Presenter<'_>,
    holder: &Holder,
    wanted: &[&str],
    auth: Option<&ReaderAuthKey<'_>>,
) -> (Reply, Result<BTreeMap<String, Value>, MdocError>) {
    let engagement = p.engagement().as_bytes().to_vec();
    let mut r =
        Reader::new_authenticated(&engagement, items(wanted), auth, &mut TestRng(77)).unwrap();
    assert_eq!(r.is_authenticated(), auth.is_some());
    let reply = p
        .on_session_establishment(r.session_establishment())
        .unwrap();
    let verdict = r
        .on_session_data(
            reply.message.as_deref().unwrap(),
            &holder.world.trust,
            NOW,
            StatusCheck::NotChecked,
        )
        .map(|v| v.items.get(NS_JP).cloned().unwrap_or_default());
    (reply, verdict)
}

/// (element, the reader's CN as the consent callback saw it).
type Asked = (String, Option<String>);

#[test]
fn signed_request_is_accepted_and_the_reader_is_named_to_the_holder() {
    let h = Holder::new();
    let (key, chain) = h.world.reader("shop-1", NOW - Duration::days(1), 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let seen: Arc<Mutex<Vec<Asked>>> = Arc::default();
    let log = Arc::clone(&seen);
    let consent = ConsentPolicy::Ask(Box::new(move |q| {
        log.lock().unwrap().push((
            q.element.to_owned(),
            q.reader.and_then(|r| r.common_name.clone()),
        ));
        true
    }));
    let mut p = h.presenter(consent);
    let (reply, verdict) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert!(reply.error.is_none(), "{:?}", reply.error);
    let reader = reply.reader.clone().expect("authenticated");
    assert_eq!(reader.common_name.as_deref(), Some("shop-1"));
    assert_eq!(reader.organization, None);
    assert_eq!(reader.display_name(), "shop-1");
    assert_eq!(reader.certificate, chain[0]);
    assert_eq!(p.reader(), Some(&reader));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (elements::FULL_NAME.to_owned(), Some("shop-1".to_owned())),
            (
                elements::INDIVIDUAL_NUMBER.to_owned(),
                Some("shop-1".to_owned())
            ),
        ]
    );
    let items = verdict.unwrap();
    assert_eq!(items[elements::INDIVIDUAL_NUMBER], Value::from(NUMBER));
}

#[test]
fn unsigned_request_is_answered_as_unauthenticated() {
    let h = Holder::new();
    let seen: Arc<Mutex<Vec<bool>>> = Arc::default();
    let log = Arc::clone(&seen);
    let consent = ConsentPolicy::Ask(Box::new(move |q| {
        log.lock().unwrap().push(q.reader.is_some());
        true
    }));
    let mut p = h.presenter(consent);
    let (reply, verdict) = round_trip(&mut p, &h, ALL, None);
    assert!(reply.error.is_none());
    assert!(reply.reader.is_none());
    // The individual number is not even asked about: never to an unauthenticated reader.
    assert_eq!(*seen.lock().unwrap(), vec![false]);
    let items = verdict.unwrap();
    assert!(items.contains_key(elements::FULL_NAME));
    assert!(!items.contains_key(elements::INDIVIDUAL_NUMBER));
}

#[test]
fn individual_number_goes_only_to_an_authenticated_reader_when_allowed() {
    let h = Holder::new();
    let allow = || ConsentPolicy::Auto {
        release_individual_number: true,
        require_authenticated_reader: Vec::new(),
    };
    // Unauthenticated, although allowed: withheld.
    let mut p = h.presenter(allow());
    let (_, v) = round_trip(&mut p, &h, ALL, None);
    let v = v.unwrap();
    assert!(!v.contains_key(elements::INDIVIDUAL_NUMBER));
    assert!(v.contains_key(elements::FULL_NAME));
    // Authenticated and allowed: released.
    let (key, chain) = h.world.reader("city-office", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let mut p = h.presenter(allow());
    let (reply, v) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert_eq!(
        reply.reader.unwrap().common_name.as_deref(),
        Some("city-office")
    );
    assert_eq!(v.unwrap()[elements::INDIVIDUAL_NUMBER], Value::from(NUMBER));
    // Authenticated but not allowed: withheld.
    let mut p = h.presenter(ConsentPolicy::auto());
    let (_, v) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert!(!v.unwrap().contains_key(elements::INDIVIDUAL_NUMBER));
}

#[test]
fn auto_policy_can_require_an_authenticated_reader_for_chosen_elements() {
    let h = Holder::new();
    let policy = || ConsentPolicy::Auto {
        release_individual_number: false,
        require_authenticated_reader: vec![elements::PORTRAIT.to_owned()],
    };
    let wanted = &[elements::FULL_NAME, elements::PORTRAIT];
    let mut p = h.presenter(policy());
    let (_, v) = round_trip(&mut p, &h, wanted, None);
    let v = v.unwrap();
    assert!(v.contains_key(elements::FULL_NAME));
    assert!(!v.contains_key(elements::PORTRAIT));
    let (key, chain) = h.world.reader("shop-1", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let mut p = h.presenter(policy());
    let (_, v) = round_trip(&mut p, &h, wanted, Some(&auth));
    assert!(v.unwrap().contains_key(elements::PORTRAIT));
}

/// Asserts that the reply refuses the whole request with `expected`.
fn assert_refused(
    reply: &Reply,
    verdict: Result<BTreeMap<String, Value>, MdocError>,
    expected: &MdocError,
) {
    assert_eq!(reply.error.as_ref(), Some(expected));
    assert!(reply.released.is_empty());
    assert!(reply.ended);
    assert!(reply.reader.is_none());
    assert_eq!(
        verdict.unwrap_err(),
        MdocError::DeviceResponseStatus(STATUS_GENERAL_ERROR)
    );
}

#[test]
fn untrusted_reader_ca_is_refused() {
    let h = Holder::new();
    let other = World::new();
    let (key, chain) = other.reader("shop-1", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let mut p = h.presenter(ConsentPolicy::auto());
    let (reply, verdict) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert_refused(&reply, verdict, &MdocError::UntrustedReader);
    assert_eq!(MdocError::UntrustedReader.code(), "untrusted_reader");
    assert!(p.is_closed());
}

#[test]
fn no_trusted_reader_ca_refuses_a_signed_request() {
    let h = Holder::new();
    let (key, chain) = h.world.reader("shop-1", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let mut p = Presenter::new(
        &h.issuer_signed.to_cbor().unwrap(),
        jp::DOC_TYPE,
        &h.key,
        ConsentPolicy::auto(),
        &mut TestRng(5),
        NOW,
    )
    .unwrap();
    let (reply, verdict) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert_refused(&reply, verdict, &MdocError::UntrustedReader);
}

#[test]
fn expired_or_not_yet_valid_reader_certificate_is_refused() {
    let h = Holder::new();
    for (issued, days) in [
        (NOW - Duration::days(100), 90),
        (NOW + Duration::days(1), 90),
    ] {
        let (key, chain) = h.world.reader("shop-1", issued, days);
        let auth = ReaderAuthKey {
            signer: &key,
            chain: &chain,
        };
        let mut p = h.presenter(ConsentPolicy::auto());
        let (reply, verdict) = round_trip(&mut p, &h, ALL, Some(&auth));
        assert_refused(&reply, verdict, &MdocError::ReaderCertificateNotValid);
    }
    assert_eq!(
        MdocError::ReaderCertificateNotValid.code(),
        "reader_certificate_not_valid"
    );
}

#[test]
fn certificate_without_the_reader_auth_eku_is_refused() {
    // A document signer certificate (EKU mdlDS) used as a reader certificate,
    // with its IACA trusted as a reader CA.
    let h = Holder::new();
    let chain = vec![h.world.ds_cert.clone()];
    let auth = ReaderAuthKey {
        signer: &h.world.ds_key,
        chain: &chain,
    };
    let mut p = h.presenter(ConsentPolicy::auto());
    p.trust_readers(
        TrustedReaderCas::new(vec![h.world.iaca.cert_der().to_vec()]).unwrap(),
        NOW,
    );
    let (reply, verdict) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert_refused(&reply, verdict, &MdocError::ReaderCertificateUsage);
}

/// What a reader sends, built by hand: `build` gets this session's
/// transcript and returns the DeviceRequest. Returns the holder's reply and
/// the DeviceResponse decrypted from it.
fn hand_made(
    p: &mut Presenter<'_>,
    build: impl FnOnce(&SessionTranscriptBytes) -> DeviceRequest,
) -> (Reply, DeviceResponse) {
    let eph = EphemeralKey::from_scalar(&[7u8; 32]).unwrap();
    let transcript = SessionTranscript {
        device_engagement: p.engagement().as_bytes().to_vec(),
        e_reader_key: eph.public_key().to_cose_key().unwrap(),
        handover: Handover::Qr,
    }
    .to_bytes()
    .unwrap();
    let keys = SessionKeys::derive(&eph, p.engagement().e_device_key(), &transcript).unwrap();
    let mut enc = SessionEncryption::new(Role::Reader, keys);
    let request = build(&transcript).encode().unwrap();
    let establishment = enc.establish(&eph.public_key(), &request).unwrap();
    let reply = p
        .on_session_establishment(&establishment.encode().unwrap())
        .unwrap();
    let inbound = enc
        .open(&parse_session_data(reply.message.as_deref().unwrap()).unwrap())
        .unwrap();
    let response = DeviceResponse::parse(&inbound.data.unwrap()).unwrap();
    (reply, response)
}

fn assert_hand_made_refused(reply: &Reply, response: &DeviceResponse, expected: &MdocError) {
    assert_eq!(reply.error.as_ref(), Some(expected));
    assert!(reply.released.is_empty() && reply.ended);
    assert_eq!(response.status, STATUS_GENERAL_ERROR);
    assert!(response.documents.is_empty());
}

#[test]
fn tampered_request_is_refused() {
    let h = Holder::new();
    let (key, chain) = h.world.reader("shop-1", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let mut p = h.presenter(ConsentPolicy::auto());
    // Signed for the full name; sent asking for the individual number too.
    let (reply, response) = hand_made(&mut p, |t| {
        let signed = DocRequest::new(items(&[elements::FULL_NAME])).unwrap();
        let ra = sign_reader_auth(&auth, t, &signed.items_request_bytes).unwrap();
        let mut sent = DocRequest::new(items(ALL)).unwrap();
        sent.reader_auth = Some(ra);
        DeviceRequest::new(vec![sent]).unwrap()
    });
    assert_hand_made_refused(&reply, &response, &MdocError::BadReaderSignature);
    assert_eq!(MdocError::BadReaderSignature.code(), "bad_reader_signature");
}

#[test]
fn signature_over_another_session_is_refused() {
    let h = Holder::new();
    let (key, chain) = h.world.reader("shop-1", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let mut p = h.presenter(ConsentPolicy::auto());
    let (reply, response) = hand_made(&mut p, |_| {
        // The transcript of another session (another reader ephemeral key).
        let other_eph = EphemeralKey::from_scalar(&[9u8; 32]).unwrap();
        let other = SessionTranscript {
            device_engagement: h
                .presenter(ConsentPolicy::auto())
                .engagement()
                .as_bytes()
                .to_vec(),
            e_reader_key: other_eph.public_key().to_cose_key().unwrap(),
            handover: Handover::Qr,
        }
        .to_bytes()
        .unwrap();
        let mut doc = DocRequest::new(items(ALL)).unwrap();
        doc.reader_auth = Some(sign_reader_auth(&auth, &other, &doc.items_request_bytes).unwrap());
        DeviceRequest::new(vec![doc]).unwrap()
    });
    assert_hand_made_refused(&reply, &response, &MdocError::BadReaderSignature);
}

#[test]
fn garbage_reader_auth_is_refused() {
    let h = Holder::new();
    let mut p = h.presenter(ConsentPolicy::auto());
    let (reply, response) = hand_made(&mut p, |_| {
        let mut doc = DocRequest::new(items(ALL)).unwrap();
        // An array, so it parses as a DocRequest, but no COSE_Sign1.
        doc.reader_auth = Some(vec![0x82, 0x01, 0x02]);
        DeviceRequest::new(vec![doc]).unwrap()
    });
    assert!(matches!(
        reply.error,
        Some(MdocError::ReaderAuthMalformed(_))
    ));
    assert_eq!(response.status, STATUS_GENERAL_ERROR);
    assert!(response.documents.is_empty());
}

#[test]
fn mixed_signed_and_unsigned_doc_requests_count_as_unauthenticated() {
    let h = Holder::new();
    let (key, chain) = h.world.reader("shop-1", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let mut p = h.presenter(ConsentPolicy::Auto {
        release_individual_number: true,
        require_authenticated_reader: Vec::new(),
    });
    let (reply, response) = hand_made(&mut p, |t| {
        let mut signed = DocRequest::new(items(&[elements::FULL_NAME])).unwrap();
        signed.reader_auth = Some(sign_reader_auth(&auth, t, &signed.items_request_bytes).unwrap());
        let unsigned = DocRequest::new(items(&[elements::INDIVIDUAL_NUMBER])).unwrap();
        DeviceRequest::new(vec![signed, unsigned]).unwrap()
    });
    assert!(reply.error.is_none());
    assert!(reply.reader.is_none());
    assert_eq!(response.status, 0);
    assert_eq!(
        response.documents[0].errors[NS_JP][elements::INDIVIDUAL_NUMBER],
        0
    );
}

#[test]
fn authenticate_reader_directly() {
    let w = World::new();
    let (key, chain) = w.reader("shop-1", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let eph = EphemeralKey::from_scalar(&[3u8; 32]).unwrap();
    let t = SessionTranscript {
        device_engagement: vec![0xa0],
        e_reader_key: eph.public_key().to_cose_key().unwrap(),
        handover: Handover::Qr,
    }
    .to_bytes()
    .unwrap();
    let irb = items(ALL).encode().unwrap();
    let ra = sign_reader_auth(&auth, &t, &irb).unwrap();
    let id: ReaderIdentity = authenticate_reader(&ra, &t, &irb, &w.trusted_readers(), NOW).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("shop-1"));
    // After its 90 days: not valid.
    assert_eq!(
        authenticate_reader(
            &ra,
            &t,
            &irb,
            &w.trusted_readers(),
            NOW + Duration::days(91)
        ),
        Err(MdocError::ReaderCertificateNotValid)
    );
    // A flipped signature byte.
    let mut bad = ra.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        authenticate_reader(&bad, &t, &irb, &w.trusted_readers(), NOW),
        Err(MdocError::BadReaderSignature)
    );
    // The signer must match the certificate.
    let stranger = EcdsaP256Signer::generate().unwrap();
    let wrong = ReaderAuthKey {
        signer: &stranger,
        chain: &chain,
    };
    assert!(sign_reader_auth(&wrong, &t, &irb).is_err());
    assert!(
        sign_reader_auth(
            &ReaderAuthKey {
                signer: &key,
                chain: &[]
            },
            &t,
            &irb
        )
        .is_err()
    );
    // Never panics on junk.
    for junk in [
        &[][..],
        &[0xff],
        &[0x84, 0x40, 0xa0, 0xf6, 0x40],
        &ra[..ra.len() / 2],
    ] {
        assert!(authenticate_reader(junk, &t, &irb, &w.trusted_readers(), NOW).is_err());
    }
}
