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
    READER_CRL_GRACE, ReaderAuthKey, ReaderCrl, ReaderIdentity, ReaderRevocationStatus,
    TrustedReaderCas, authenticate_reader, check_reader_revocation, sign_reader_auth,
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

/// A reader certificate with serial `serial(b)`, as the holder sees it
/// after [`authenticate_reader`].
fn reader_identity(w: &World, b: u8) -> ReaderIdentity {
    let key = EcdsaP256Signer::generate().unwrap();
    let cert = w
        .reader_ca
        .issue_reader(
            &points(),
            key.public_key_spki(),
            "shop",
            &serial(b),
            NOW,
            90,
        )
        .unwrap();
    ReaderIdentity {
        common_name: Some("shop".into()),
        organization: None,
        certificate: cert,
    }
}

fn reader_crl(ca: &ReaderCa, this_update: Timestamp, revoked: &[u8]) -> Vec<u8> {
    let entries: Vec<_> = revoked
        .iter()
        .map(|b| shomei_pki::crl::RevokedEntry {
            serial: serial(*b),
            at: this_update,
            reason: shomei_core::RevocationReason::KeyCompromise,
        })
        .collect();
    ca.crl(1, this_update, this_update + Duration::hours(24), &entries)
        .unwrap()
}

#[test]
fn a_reader_on_its_cas_crl_is_refused_and_the_others_pass() {
    let w = World::new();
    let stolen = reader_identity(&w, 5);
    let good = reader_identity(&w, 6);
    let crl = ReaderCrl::verify(
        &reader_crl(&w.reader_ca, NOW, &[5, 7]),
        &w.trusted_readers(),
    )
    .unwrap();
    assert_eq!(crl.len(), 2);
    assert_eq!(crl.next_update() - crl.this_update(), Duration::hours(24));
    let crls = [crl];
    let err = check_reader_revocation(&stolen, &crls, NOW).unwrap_err();
    assert_eq!(err, MdocError::ReaderCertificateRevoked);
    // Refused like any invalid readerAuth (the whole request, status 10).
    assert!(err.is_reader_auth());
    assert_eq!(err.code(), "reader_certificate_revoked");
    assert_eq!(
        check_reader_revocation(&good, &crls, NOW),
        Ok(ReaderRevocationStatus::Good)
    );
}

#[test]
fn a_missing_or_stale_reader_crl_means_revocation_not_checked() {
    let w = World::new();
    let stolen = reader_identity(&w, 5);
    let good = reader_identity(&w, 6);
    assert!(matches!(
        check_reader_revocation(&good, &[], NOW),
        Ok(ReaderRevocationStatus::NotChecked(why)) if why.contains("no CRL")
    ));
    let crls =
        [ReaderCrl::verify(&reader_crl(&w.reader_ca, NOW, &[5]), &w.trusted_readers()).unwrap()];
    let next = NOW + Duration::hours(24);
    // Within nextUpdate + grace: checked.
    assert_eq!(
        check_reader_revocation(&good, &crls, next + READER_CRL_GRACE),
        Ok(ReaderRevocationStatus::Good)
    );
    // Past it: not checked.
    assert!(matches!(
        check_reader_revocation(&good, &crls, next + READER_CRL_GRACE + Duration::seconds(1)),
        Ok(ReaderRevocationStatus::NotChecked(why)) if why.contains("stale")
    ));
    // A revoked reader stays revoked on a stale CRL.
    assert_eq!(
        check_reader_revocation(&stolen, &crls, NOW + Duration::days(60)),
        Err(MdocError::ReaderCertificateRevoked)
    );
    // The CRL of another CA does not cover this reader.
    let other = ReaderCa::create(
        "Other",
        &points(),
        Arc::new(EcdsaP256Signer::generate().unwrap()),
        &serial(9),
        NOW - Duration::days(1),
    )
    .unwrap();
    let other_trust = TrustedReaderCas::new(vec![other.cert_der().to_vec()]).unwrap();
    let others = [ReaderCrl::verify(&reader_crl(&other, NOW, &[5]), &other_trust).unwrap()];
    assert!(matches!(
        check_reader_revocation(&stolen, &others, NOW),
        Ok(ReaderRevocationStatus::NotChecked(_))
    ));
}

#[test]
fn a_reader_crl_must_be_signed_by_a_trusted_reader_ca() {
    let w = World::new();
    // Same name, another key: not trusted.
    let impostor = ReaderCa::create(
        "Shomei Test",
        &points(),
        Arc::new(EcdsaP256Signer::generate().unwrap()),
        &serial(3),
        NOW - Duration::days(400),
    )
    .unwrap();
    assert_eq!(
        ReaderCrl::verify(&reader_crl(&impostor, NOW, &[]), &w.trusted_readers()),
        Err(MdocError::UntrustedReader)
    );
    assert_eq!(
        ReaderCrl::verify(
            &reader_crl(&w.reader_ca, NOW, &[]),
            &TrustedReaderCas::default()
        ),
        Err(MdocError::UntrustedReader)
    );
    // One flipped bit anywhere in the signed part or signature: refused.
    let good = reader_crl(&w.reader_ca, NOW, &[5]);
    for i in [20, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 1;
        assert!(
            ReaderCrl::verify(&bad, &w.trusted_readers()).is_err(),
            "byte {i}"
        );
    }
    // Junk and oversized input: errors, no panic.
    for junk in [
        &[][..],
        &[0x30],
        &[0x30, 0x03, 0x02, 0x01, 0x00],
        &good[..good.len() / 2],
    ] {
        assert!(ReaderCrl::verify(junk, &w.trusted_readers()).is_err());
    }
    assert!(matches!(
        ReaderCrl::verify(
            &vec![0x30; shomei_mdoc::reader_auth::MAX_READER_CRL + 1],
            &w.trusted_readers()
        ),
        Err(MdocError::LimitExceeded(_))
    ));
}

#[test]
fn presenter_refuses_a_revoked_reader_and_withholds_when_revocation_is_not_checked() {
    let h = Holder::new();
    let allow = || ConsentPolicy::Auto {
        release_individual_number: true,
        require_authenticated_reader: Vec::new(),
    };
    // World::reader certifies serial(4).
    let (key, chain) = h.world.reader("city-office", NOW, 90);
    let auth = ReaderAuthKey {
        signer: &key,
        chain: &chain,
    };
    let trust = h.world.trusted_readers();
    let crl = |at: Timestamp, revoked: &[u8]| {
        ReaderCrl::verify(&reader_crl(&h.world.reader_ca, at, revoked), &trust).unwrap()
    };
    // On the CRL: the whole request is refused, nothing released.
    let mut p = h.presenter(allow());
    p.check_reader_revocation(vec![crl(NOW, &[4])]);
    let (reply, v) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert_refused(&reply, v, &MdocError::ReaderCertificateRevoked);
    // A current CRL without it: authenticated, the individual number released.
    let mut p = h.presenter(allow());
    p.check_reader_revocation(vec![crl(NOW, &[5])]);
    let (reply, v) = round_trip(&mut p, &h, ALL, Some(&auth));
    assert!(reply.reader.is_some());
    assert_eq!(v.unwrap()[elements::INDIVIDUAL_NUMBER], Value::from(NUMBER));
    assert_eq!(p.revocation_not_checked(), None);
    // No CRL, or a stale one: not authenticated, the number withheld, and why.
    for (crls, why) in [
        (vec![], "no CRL"),
        (vec![crl(NOW - Duration::days(10), &[5])], "stale"),
    ] {
        let mut p = h.presenter(allow());
        p.check_reader_revocation(crls);
        let (reply, v) = round_trip(&mut p, &h, ALL, Some(&auth));
        assert!(reply.reader.is_none());
        let v = v.unwrap();
        assert!(!v.contains_key(elements::INDIVIDUAL_NUMBER));
        assert!(v.contains_key(elements::FULL_NAME));
        assert!(p.revocation_not_checked().unwrap().contains(why));
    }
}
