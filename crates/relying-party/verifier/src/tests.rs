#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use shomei_core::{
    BasicFour, BirthDate, CertClass, RevocationReason, Root, Serial, Sex, Signer, Timestamp,
};
use shomei_pki::crl::{RevokedEntry, build_crl};
use shomei_pki::ocsp::{CertState, Responder, ResponderIdentity, parse_request};
use shomei_pki::profile::{
    EndEntityRequest, PublicationPoints, RootCa, card_not_after, issue_end_entity,
    issue_ocsp_responder,
};
use shomei_pki::{EcdsaP256Signer, RsaSigner};
use time::Duration;
use time::macros::datetime;

use super::*;

const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);
const BASE: &str = "http://127.0.0.1:8700";

struct Pki {
    sign_root: RootCa,
    auth_root: RootCa,
    responder: Responder,
    holder: BasicFour,
    card_sign: (Vec<u8>, Arc<RsaSigner>),
    card_auth: (Vec<u8>, Arc<RsaSigner>),
    phone_sign: Vec<u8>,
    phone_auth: Vec<u8>,
}

fn key() -> Arc<RsaSigner> {
    Arc::new(RsaSigner::generate().unwrap())
}

fn issue(ca: &RootCa, class: CertClass, holder: &BasicFour, key: &dyn Signer, n: u8) -> Vec<u8> {
    let csr = shomei_pki::csr::check_csr(&shomei_pki::csr::build_csr(key, "x").unwrap()).unwrap();
    issue_end_entity(
        ca,
        &PublicationPoints::new(BASE),
        &EndEntityRequest {
            class,
            csr: &csr,
            holder,
            serial: &Serial::from_be_bytes(&[0x40, n]).unwrap(),
            now: NOW,
            not_after: card_not_after(holder, NOW),
            shard: 1,
        },
    )
    .unwrap()
}

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| {
        let serial = Serial::from_be_bytes(&[1]).unwrap();
        let sign_root = RootCa::create(Root::Sign, "Test Authority", key(), &serial, NOW).unwrap();
        let auth_root = RootCa::create(Root::Auth, "Test Authority", key(), &serial, NOW).unwrap();
        let holder = BasicFour::new(
            "山田 花子",
            "東京都千代田区霞が関1-1",
            BirthDate::from_jpki_encoding("419900401").unwrap(),
            Sex::Female,
        )
        .unwrap();
        let (cs, ca) = (key(), key());
        let card_sign = (
            issue(&sign_root, CertClass::CardSign, &holder, cs.as_ref(), 1),
            cs,
        );
        let card_auth = (
            issue(&auth_root, CertClass::CardAuth, &holder, ca.as_ref(), 2),
            ca,
        );
        let phone_sign = issue(&sign_root, CertClass::PhoneSign, &holder, key().as_ref(), 3);
        let phone_auth = issue(&auth_root, CertClass::PhoneAuth, &holder, key().as_ref(), 4);
        let identities = [(Root::Sign, &sign_root), (Root::Auth, &auth_root)]
            .into_iter()
            .map(|(root, ca)| {
                let signer = Arc::new(EcdsaP256Signer::generate().unwrap());
                let cert = issue_ocsp_responder(
                    ca,
                    signer.as_ref(),
                    &Serial::from_be_bytes(&[9]).unwrap(),
                    NOW,
                    30,
                )
                .unwrap();
                ResponderIdentity {
                    root,
                    root_cert_der: ca.cert_der().to_vec(),
                    responder_cert_der: cert,
                    signer,
                }
            })
            .collect();
        let responder = Responder::new(identities, Duration::hours(1)).unwrap();
        Pki {
            sign_root,
            auth_root,
            responder,
            holder,
            card_sign,
            card_auth,
            phone_sign,
            phone_auth,
        }
    })
}

fn store() -> TrustStore {
    let p = pki();
    let mut s = TrustStore::new();
    s.add(Purpose::Signing, p.sign_root.cert_der(), RootSource::Shomei)
        .unwrap();
    s.add(
        Purpose::Authentication,
        p.auth_root.cert_der(),
        RootSource::Shomei,
    )
    .unwrap();
    s
}

fn ocsp_answer(cert: &ValidatedCert, nonce: &[u8], state: CertState, at: Timestamp) -> Vec<u8> {
    let req = parse_request(&ocsp_request(cert, nonce).unwrap()).unwrap();
    pki().responder.respond(&req, |_, _| state, at).unwrap()
}

#[test]
fn card_signing_certificate_validates_with_basic_four() {
    let v = validate(&store(), &pki().card_sign.0, Purpose::Signing, NOW).unwrap();
    assert_eq!(v.medium(), Medium::Card);
    assert_eq!(v.source(), RootSource::Shomei);
    assert_eq!(v.serial().to_hex(), "4001");
    let b = v.basic_four().unwrap();
    assert_eq!(b.name(), "山田\u{3000}花子");
    assert_eq!(b.address(), "東京都千代田区霞が関1-1");
    // The era-coded 419900401 (Heisei 2) reads as the ISO date.
    assert_eq!(b.birth_date().to_iso(), "1990-04-01");
    assert_eq!(b.sex(), Sex::Female);
    assert_eq!(v.ocsp_url(), Some("http://127.0.0.1:8700/ocsp/sign"));
    assert_eq!(v.crl_urls().len(), 1);
}

#[test]
fn phone_certificates_are_told_apart_by_policy() {
    let s = store();
    let sign = validate(&s, &pki().phone_sign, Purpose::Signing, NOW).unwrap();
    assert_eq!(sign.medium(), Medium::Phone);
    assert_eq!(sign.basic_four(), Some(&pki().holder));
    let auth = validate(&s, &pki().phone_auth, Purpose::Authentication, NOW).unwrap();
    assert_eq!(auth.medium(), Medium::Phone);
    assert!(auth.basic_four().is_none());
    let card = validate(&s, &pki().card_auth.0, Purpose::Authentication, NOW).unwrap();
    assert_eq!(card.medium(), Medium::Card);
}

#[test]
fn root_sets_are_never_mixed() {
    let s = store();
    let e = validate(&s, &pki().card_auth.0, Purpose::Signing, NOW).unwrap_err();
    assert_eq!(e.code(), "wrong_purpose");
    let e = validate(&s, &pki().card_sign.0, Purpose::Authentication, NOW).unwrap_err();
    assert_eq!(e.code(), "wrong_purpose");
    // A store with only the signing root does not know the auth root at all.
    let mut only_sign = TrustStore::new();
    only_sign
        .add(
            Purpose::Signing,
            pki().sign_root.cert_der(),
            RootSource::Shomei,
        )
        .unwrap();
    let e = validate(&only_sign, &pki().card_auth.0, Purpose::Authentication, NOW).unwrap_err();
    assert_eq!(e, VerifyError::UnknownRoot);
}

#[test]
fn validity_window_is_enforced() {
    let s = store();
    let e = validate(
        &s,
        &pki().card_sign.0,
        Purpose::Signing,
        NOW - Duration::days(1),
    )
    .unwrap_err();
    assert_eq!(e.code(), "not_yet_valid");
    let late = card_not_after(&pki().holder, NOW) + Duration::seconds(1);
    let e = validate(&s, &pki().card_sign.0, Purpose::Signing, late).unwrap_err();
    assert_eq!(e.code(), "expired");
}

#[test]
fn tampered_certificate_fails_its_signature() {
    let mut der = pki().card_sign.0.clone();
    // Flip a byte inside the basic four (the name), keeping the DER shape.
    let at = der
        .windows("花子".len())
        .position(|w| w == "花子".as_bytes())
        .unwrap();
    der[at + 2] ^= 0x01;
    let e = validate(&store(), &der, Purpose::Signing, NOW).unwrap_err();
    assert_eq!(
        e,
        VerifyError::BadSignature {
            what: "certificate"
        }
    );
}

#[test]
fn another_authoritys_root_of_the_same_name_is_an_unknown_root() {
    // Two authorities named alike (every `authority init` names its roots
    // the same way): the other one's root, pinned alone, is not the
    // issuer of our certificate (its key identifier differs), so the
    // certificate does not chain to a trusted root; it is not a forgery.
    let twin = RootCa::create(
        Root::Sign,
        "Test Authority",
        key(),
        &Serial::from_be_bytes(&[1]).unwrap(),
        NOW,
    )
    .unwrap();
    let mut s = TrustStore::new();
    s.add(Purpose::Signing, twin.cert_der(), RootSource::Shomei)
        .unwrap();
    let e = validate(&s, &pki().card_sign.0, Purpose::Signing, NOW).unwrap_err();
    assert_eq!(e, VerifyError::UnknownRoot);
    // Both trusted: the right one is found.
    s.add(
        Purpose::Signing,
        pki().sign_root.cert_der(),
        RootSource::Shomei,
    )
    .unwrap();
    let v = validate(&s, &pki().card_sign.0, Purpose::Signing, NOW).unwrap();
    assert_eq!(v.issuer_der(), pki().sign_root.cert_der());
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    for bytes in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x01", &[0xff; 64]] {
        let e = validate(&store(), bytes, Purpose::Signing, NOW).unwrap_err();
        assert_eq!(e.code(), "malformed", "{bytes:?}");
    }
}

#[test]
fn ocsp_good_revoked_suspended_and_nonce() {
    let s = store();
    let v = validate(&s, &pki().card_sign.0, Purpose::Signing, NOW).unwrap();
    let nonce = [7u8; 32];

    let good = check_ocsp(
        v.clone(),
        &ocsp_answer(&v, &nonce, CertState::Good, NOW),
        Some(&nonce),
        NOW,
    )
    .unwrap();
    assert_eq!(good.status(), CertStatus::Good);
    assert_eq!(good.source(), StatusSource::Ocsp);

    let revoked = CertState::Revoked {
        at: NOW,
        reason: RevocationReason::KeyCompromise,
    };
    let r = check_ocsp(
        v.clone(),
        &ocsp_answer(&v, &nonce, revoked, NOW),
        Some(&nonce),
        NOW,
    )
    .unwrap();
    assert_eq!(r.status().as_str(), "revoked");
    assert_eq!(
        r.status().require_good().unwrap_err(),
        VerifyError::Revoked {
            reason: "keyCompromise"
        }
    );

    let hold = CertState::Revoked {
        at: NOW,
        reason: RevocationReason::CertificateHold,
    };
    let h = check_ocsp(
        v.clone(),
        &ocsp_answer(&v, &nonce, hold, NOW),
        Some(&nonce),
        NOW,
    )
    .unwrap();
    assert_eq!(h.status().as_str(), "suspended");

    // A replayed answer to another request (other nonce) is refused.
    let other = ocsp_answer(&v, &[8u8; 32], CertState::Good, NOW);
    let e = check_ocsp(v.clone(), &other, Some(&nonce), NOW).unwrap_err();
    assert_eq!(e.code(), "ocsp_mismatch");

    // A stale answer (produced two hours ago, valid one hour) is refused.
    let stale = ocsp_answer(&v, &nonce, CertState::Good, NOW - Duration::hours(2));
    let e = check_ocsp(v.clone(), &stale, Some(&nonce), NOW).unwrap_err();
    assert_eq!(e.code(), "ocsp_mismatch");

    // An answer about another certificate does not vouch for this one.
    let phone = validate(&s, &pki().phone_sign, Purpose::Signing, NOW).unwrap();
    let about_phone = ocsp_answer(&phone, &nonce, CertState::Good, NOW);
    let e = check_ocsp(v, &about_phone, Some(&nonce), NOW).unwrap_err();
    assert_eq!(e.code(), "ocsp_mismatch");
}

#[test]
fn ocsp_signed_by_another_authority_is_refused() {
    // A second authority's responder answers about our certificate's
    // serial: the signature does not chain to our root.
    let v = validate(&store(), &pki().card_sign.0, Purpose::Signing, NOW).unwrap();
    let other_root = RootCa::create(
        Root::Sign,
        "Test Authority",
        key(),
        &Serial::from_be_bytes(&[1]).unwrap(),
        NOW,
    )
    .unwrap();
    let signer = Arc::new(EcdsaP256Signer::generate().unwrap());
    let cert = issue_ocsp_responder(
        &other_root,
        signer.as_ref(),
        &Serial::from_be_bytes(&[9]).unwrap(),
        NOW,
        30,
    )
    .unwrap();
    let rogue = Responder::new(
        vec![ResponderIdentity {
            root: Root::Sign,
            root_cert_der: other_root.cert_der().to_vec(),
            responder_cert_der: cert,
            signer,
        }],
        Duration::hours(1),
    )
    .unwrap();
    let nonce = [1u8; 32];
    let req = parse_request(&ocsp_request(&v, &nonce).unwrap()).unwrap();
    let answer = rogue.respond(&req, |_, _| CertState::Good, NOW).unwrap();
    assert!(check_ocsp(v, &answer, Some(&nonce), NOW).is_err());
}

fn crl(entries: &[RevokedEntry], shard: u32, this: Timestamp) -> Vec<u8> {
    build_crl(
        &pki().sign_root,
        &PublicationPoints::new(BASE),
        CertClass::CardSign,
        shard,
        3,
        this,
        this + Duration::hours(24),
        entries,
    )
    .unwrap()
}

#[test]
fn crl_shards_answer_from_a_warm_cache() {
    let s = store();
    let v = validate(&s, &pki().card_sign.0, Purpose::Signing, NOW).unwrap();
    let issuer = pki().sign_root.cert_der();

    let empty = VerifiedCrl::parse(&crl(&[], 1, NOW), issuer).unwrap();
    assert_eq!(empty.crl_number(), Some(3));
    let good = check_crl(v.clone(), &empty, NOW).unwrap();
    assert_eq!(
        (good.status(), good.source()),
        (CertStatus::Good, StatusSource::Crl)
    );

    let entry = RevokedEntry {
        serial: v.serial().clone(),
        at: NOW,
        reason: RevocationReason::AffiliationChanged,
    };
    let listed = VerifiedCrl::parse(&crl(std::slice::from_ref(&entry), 1, NOW), issuer).unwrap();
    let r = check_crl(v.clone(), &listed, NOW).unwrap();
    assert_eq!(
        r.status(),
        CertStatus::Revoked {
            reason: RevocationReason::AffiliationChanged,
            at: NOW
        }
    );

    // An expired CRL is refused, never read as "good".
    let e = check_crl(v.clone(), &empty, NOW + Duration::hours(25)).unwrap_err();
    assert_eq!(e, VerifyError::CrlExpired);
    // Another shard does not cover the certificate.
    let other_shard = VerifiedCrl::parse(&crl(&[], 0, NOW), issuer).unwrap();
    assert_eq!(
        check_crl(v, &other_shard, NOW).unwrap_err().code(),
        "crl_scope"
    );
    // A CRL checked against the wrong root fails.
    assert!(VerifiedCrl::parse(&crl(&[], 1, NOW), pki().auth_root.cert_der()).is_err());
    // A tampered CRL fails its signature.
    let mut bad = crl(std::slice::from_ref(&entry), 1, NOW);
    let n = bad.len();
    bad[n - 10] ^= 0x01;
    assert!(VerifiedCrl::parse(&bad, issuer).is_err());
}

fn cms(content: &[u8], cert: &[u8], key: &dyn Signer) -> Vec<u8> {
    shomei_pki::cms::sign_detached(content, cert, &[], key, NOW).unwrap()
}

#[test]
fn signed_application_names_each_failure() {
    let s = store();
    let p = pki();
    let doc = b"application for a residence certificate";
    let p7s = cms(doc, &p.card_sign.0, p.card_sign.1.as_ref());

    let ok = verify_document(&s, &p7s, doc, NOW).unwrap();
    assert_eq!(ok.signer().basic_four(), Some(&p.holder));
    assert_eq!(ok.signing_time(), Some(NOW));

    // Wrong content.
    let e = verify_document(&s, &p7s, b"another application", NOW).unwrap_err();
    assert_eq!(e, VerifyError::ContentMismatch);
    // Tampered signed attributes: flip a byte of the signingTime.
    let mut tampered = p7s.clone();
    let time = b"261121040000Z";
    let at = tampered
        .windows(time.len())
        .rposition(|w| w == time)
        .expect("signingTime as UTCTime (after the certificates)");
    tampered[at + 1] ^= 0x01;
    let e = verify_document(&s, &tampered, doc, NOW).unwrap_err();
    assert_eq!(e, VerifyError::BadSignature { what: "CMS signer" });
    // The authentication key used for signing.
    let by_auth = cms(doc, &p.card_auth.0, p.card_auth.1.as_ref());
    let e = verify_document(&s, &by_auth, doc, NOW).unwrap_err();
    assert_eq!(e.code(), "wrong_purpose");
    // Expired signer certificate.
    let late = card_not_after(&p.holder, NOW) + Duration::days(1);
    assert_eq!(
        verify_document(&s, &p7s, doc, late).unwrap_err().code(),
        "expired"
    );
    // Unknown root.
    assert_eq!(
        verify_document(&TrustStore::new(), &p7s, doc, NOW).unwrap_err(),
        VerifyError::UnknownRoot
    );
    // The signer's digest algorithm not listed in digestAlgorithms (the
    // first SHA-256 OID; the signature still holds): named, malformed.
    let sha256 = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let mut unlisted = p7s.clone();
    let at = unlisted
        .windows(sha256.len())
        .position(|w| w == sha256)
        .unwrap();
    unlisted[at + sha256.len() - 1] = 0x03;
    assert!(matches!(
        verify_document(&s, &unlisted, doc, NOW).unwrap_err(),
        VerifyError::Malformed {
            what: "CMS digestAlgorithms",
            ..
        }
    ));
    // Not CMS at all.
    assert_eq!(
        verify_document(&s, b"\x30\x00", doc, NOW)
            .unwrap_err()
            .code(),
        "malformed"
    );
}

const ISSUER: &str = "https://op.example";

fn ctx(challenge: &[u8]) -> LoginContext<'_> {
    LoginContext {
        issuer: ISSUER,
        client_id: "bank",
        challenge,
    }
}

fn good_auth() -> CheckedCert {
    let p = pki();
    let v = validate(&store(), &p.card_auth.0, Purpose::Authentication, NOW).unwrap();
    let nonce = [3u8; 32];
    check_ocsp(
        v.clone(),
        &ocsp_answer(&v, &nonce, CertState::Good, NOW),
        Some(&nonce),
        NOW,
    )
    .unwrap()
}

fn good_sign() -> CheckedCert {
    let p = pki();
    let v = validate(&store(), &p.card_sign.0, Purpose::Signing, NOW).unwrap();
    let nonce = [4u8; 32];
    check_ocsp(
        v.clone(),
        &ocsp_answer(&v, &nonce, CertState::Good, NOW),
        Some(&nonce),
        NOW,
    )
    .unwrap()
}

#[test]
fn login_needs_a_good_auth_certificate_and_the_challenge_signature() {
    let p = pki();
    let checked = good_auth();
    let v = checked.cert().clone();
    let nonce = [3u8; 32];
    let challenge = [7u8; LOGIN_CHALLENGE_LEN];
    let message = login_message(LoginPurpose::Authentication, &ctx(&challenge)).unwrap();
    let sig = p.card_auth.1.sign(&message).unwrap();
    let login = verify_login(checked.clone(), &ctx(&challenge), &sig).unwrap();
    assert_eq!(login.cert().cert().serial(), v.serial());

    let e = verify_login(checked, &ctx(&[8u8; 32]), &sig).unwrap_err();
    assert_eq!(
        e,
        VerifyError::BadSignature {
            what: "login challenge"
        }
    );

    let hold = CertState::Revoked {
        at: NOW,
        reason: RevocationReason::CertificateHold,
    };
    let suspended = check_ocsp(
        v.clone(),
        &ocsp_answer(&v, &nonce, hold, NOW),
        Some(&nonce),
        NOW,
    )
    .unwrap();
    assert_eq!(
        verify_login(suspended, &ctx(&challenge), &sig).unwrap_err(),
        VerifyError::Suspended
    );
    assert_eq!(
        verify_login(not_checked(v), &ctx(&challenge), &sig).unwrap_err(),
        VerifyError::StatusNotChecked
    );
}

#[test]
fn login_signature_is_bound_to_purpose_issuer_and_client() {
    let p = pki();
    let challenge = [7u8; LOGIN_CHALLENGE_LEN];
    let message = login_message(LoginPurpose::Authentication, &ctx(&challenge)).unwrap();
    assert!(message.starts_with(b"shomei-login-v1\0authentication\0https://op.example\0bank\0"));
    assert!(message.ends_with(&challenge));
    let sig = p.card_auth.1.sign(&message).unwrap();
    let bad = VerifyError::BadSignature {
        what: "login challenge",
    };
    // The bare challenge signed (what a key did before): refused.
    let raw = p.card_auth.1.sign(&challenge).unwrap();
    assert_eq!(
        verify_login(good_auth(), &ctx(&challenge), &raw).unwrap_err(),
        bad
    );
    // Made for another provider (a relayed login) or another client.
    let other_op = LoginContext {
        issuer: "https://evil.example",
        ..ctx(&challenge)
    };
    assert_eq!(verify_login(good_auth(), &other_op, &sig).unwrap_err(), bad);
    let other_client = LoginContext {
        client_id: "shop",
        ..ctx(&challenge)
    };
    assert_eq!(
        verify_login(good_auth(), &other_client, &sig).unwrap_err(),
        bad
    );
    // A consent signature is over the consent message only.
    let consent = login_message(LoginPurpose::Consent, &ctx(&challenge)).unwrap();
    let csig = p.card_sign.1.sign(&consent).unwrap();
    verify_consent(good_sign(), &ctx(&challenge), &csig).unwrap();
    let by_auth_message = p.card_sign.1.sign(&message).unwrap();
    assert_eq!(
        verify_consent(good_sign(), &ctx(&challenge), &by_auth_message).unwrap_err(),
        VerifyError::BadSignature {
            what: "consent challenge"
        }
    );
    // Challenges other than 32 bytes, and NULs in the fields, are refused
    // before anything is signed or verified.
    for c in [&[][..], &[1u8; 31][..], &[1u8; 33][..]] {
        assert_eq!(
            login_message(LoginPurpose::Authentication, &ctx(c))
                .unwrap_err()
                .code(),
            "malformed"
        );
    }
    let nul = LoginContext {
        client_id: "bank\0consent",
        ..ctx(&challenge)
    };
    assert!(login_message(LoginPurpose::Authentication, &nul).is_err());
    assert!(verify_login(good_auth(), &nul, &sig).is_err());
}

#[test]
fn login_signature_is_checked_before_the_status() {
    let p = pki();
    let challenge = [7u8; LOGIN_CHALLENGE_LEN];
    let v = validate(&store(), &p.card_auth.0, Purpose::Authentication, NOW).unwrap();
    let nonce = [5u8; 32];
    let revoked = check_ocsp(
        v.clone(),
        &ocsp_answer(
            &v,
            &nonce,
            CertState::Revoked {
                at: NOW,
                reason: RevocationReason::KeyCompromise,
            },
            NOW,
        ),
        Some(&nonce),
        NOW,
    )
    .unwrap();
    // Someone else's revoked certificate with a signature its key never
    // made: a bad signature, never "revoked".
    assert_eq!(
        verify_login(revoked.clone(), &ctx(&challenge), &[0u8; 256]).unwrap_err(),
        VerifyError::BadSignature {
            what: "login challenge"
        }
    );
    // Signed by the key: then the status refuses it.
    let message = login_message(LoginPurpose::Authentication, &ctx(&challenge)).unwrap();
    let sig = p.card_auth.1.sign(&message).unwrap();
    let signed = check_login_signature(
        v.clone(),
        LoginPurpose::Authentication,
        &ctx(&challenge),
        &sig,
    )
    .unwrap();
    assert_eq!(
        finish_login(signed.clone(), revoked).unwrap_err().code(),
        "revoked"
    );
    // The status must be the signer certificate's, and of the purpose:
    // pairing them wrongly is the verifier's own mistake (misuse, reported
    // as internal so a provider does not blame the holder).
    for e in [
        finish_login(signed.clone(), good_sign()).unwrap_err(),
        finish_consent(signed.clone(), good_auth()).unwrap_err(),
    ] {
        assert!(matches!(e, VerifyError::Misuse(_)), "{e:?}");
        assert_eq!(e.code(), "internal");
    }
    finish_login(signed, good_auth()).unwrap();
    // A signing certificate cannot answer for authentication.
    let sv = validate(&store(), &p.card_sign.0, Purpose::Signing, NOW).unwrap();
    assert_eq!(
        check_login_signature(sv, LoginPurpose::Authentication, &ctx(&challenge), &sig)
            .unwrap_err()
            .code(),
        "wrong_purpose"
    );
}

/// A signer that records what it was asked to sign and answers with a
/// given signature (to put a login signature where a CMS one goes).
struct Replay<'a> {
    key: &'a RsaSigner,
    seen: std::sync::Mutex<Vec<u8>>,
    answer: Option<Vec<u8>>,
}

impl Signer for Replay<'_> {
    fn public_key_spki(&self) -> &[u8] {
        self.key.public_key_spki()
    }
    fn algorithm(&self) -> shomei_core::SignatureAlgorithm {
        self.key.algorithm()
    }
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, shomei_core::SignError> {
        *self.seen.lock().unwrap() = tbs.to_vec();
        match &self.answer {
            Some(sig) => Ok(sig.clone()),
            None => self.key.sign(tbs),
        }
    }
}

#[test]
fn a_login_page_cannot_obtain_a_cms_signature_over_a_document() {
    let s = store();
    let p = pki();
    let doc = b"I hereby transfer my savings to the login page's owner";
    // What a hostile page would pass off as the challenge: the DER signed
    // attributes of a CMS SignedData over its document (a SET, 0x31).
    let key = p.card_sign.1.as_ref();
    let probe = Replay {
        key,
        seen: Default::default(),
        answer: None,
    };
    let honest = shomei_pki::cms::sign_detached(doc, &p.card_sign.0, &[], &probe, NOW).unwrap();
    let attrs = probe.seen.lock().unwrap().clone();
    assert_eq!(attrs[0], 0x31, "signed attributes are a DER SET");
    verify_document(&s, &honest, doc, NOW).unwrap();

    // Control: a key that signed the challenge as it is gave the page a
    // CMS signature that verifies over the document (the old weakness).
    let forged_raw = Replay {
        key,
        seen: Default::default(),
        answer: Some(key.sign(&attrs).unwrap()),
    };
    let p7s = shomei_pki::cms::sign_detached(doc, &p.card_sign.0, &[], &forged_raw, NOW).unwrap();
    verify_document(&s, &p7s, doc, NOW).unwrap();

    // Now the holder builds the consent message first: the attributes are
    // not a challenge at all…
    assert_eq!(
        login_message(LoginPurpose::Consent, &ctx(&attrs))
            .unwrap_err()
            .code(),
        "malformed"
    );
    // …and a signature over any login message (here with the attributes'
    // first 32 bytes as challenge) does not verify as the CMS signature.
    for purpose in [LoginPurpose::Consent, LoginPurpose::Authentication] {
        let m = login_message(purpose, &ctx(&attrs[..LOGIN_CHALLENGE_LEN])).unwrap();
        assert_ne!(m[0], 0x31);
        let forged = Replay {
            key,
            seen: Default::default(),
            answer: Some(key.sign(&m).unwrap()),
        };
        let p7s = shomei_pki::cms::sign_detached(doc, &p.card_sign.0, &[], &forged, NOW).unwrap();
        assert_eq!(
            verify_document(&s, &p7s, doc, NOW).unwrap_err(),
            VerifyError::BadSignature { what: "CMS signer" },
            "{purpose:?}"
        );
    }
}

#[test]
fn a_login_message_is_never_an_authority_holder_proof() {
    // shomei_ca::holder_proof_message("revoke", serial, challenge): a
    // challenge shaped so is refused before the key is unlocked…
    let mut proof = b"shomei/holder-proof/v1\x00revoke\x00401\x00".to_vec();
    proof.extend_from_slice(&[9u8; 32]);
    assert_eq!(
        login_message(LoginPurpose::Authentication, &ctx(&proof))
            .unwrap_err()
            .code(),
        "malformed"
    );
    // …and no login message starts with the authority's contexts (the
    // byte after "shomei" differs), whatever the fields.
    let m = login_message(LoginPurpose::Authentication, &ctx(&[0u8; 32])).unwrap();
    for context in [&b"shomei/holder-proof/v1"[..], b"shomei/phone-provision/v1"] {
        assert!(!m.starts_with(context));
        assert_ne!(m[..7], context[..7]);
    }
}

#[test]
fn real_jpki_roots_load_into_their_own_sets() {
    let mut s = TrustStore::new();
    s.add_jpki_roots().unwrap();
    assert_eq!(s.anchors(Purpose::Signing).len(), 2);
    assert_eq!(s.anchors(Purpose::Authentication).len(), 2);
    for a in s.anchors(Purpose::Signing) {
        assert_eq!(a.source(), RootSource::Jpki);
    }
    // Our certificates do not chain to J-LIS.
    let e = validate(&s, &pki().card_sign.0, Purpose::Signing, NOW).unwrap_err();
    assert_eq!(e, VerifyError::UnknownRoot);
}

#[test]
fn jpki_shaped_chain_under_a_real_root_name_needs_the_real_key() {
    // A certificate naming the real 2023 JPKI signing root as issuer but
    // signed by another key: the name matches, the signature does not.
    let mut s = TrustStore::new();
    s.add_jpki_roots().unwrap();
    let real = &s.anchors(Purpose::Signing)[1];
    let forged = jpki_shaped::end_entity_named_under(real.der());
    let now = datetime!(2027-01-01 00:00:00 UTC);
    let e = validate(&s, &forged, Purpose::Signing, now).unwrap_err();
    assert_eq!(
        e,
        VerifyError::BadSignature {
            what: "certificate"
        }
    );
}

#[test]
fn jpki_shaped_chain_verifies_offline_as_not_checked() {
    // A root shaped like J-LIS's (same subject layout, one tier), trusted as
    // a JPKI root, and a card signing certificate under it: validates, is a
    // card, and its status is reported as not checked.
    let (root_der, ee_der) = jpki_shaped::chain(&pki().holder);
    let mut s = TrustStore::new();
    s.add(Purpose::Signing, &root_der, RootSource::Jpki)
        .unwrap();
    let v = validate(&s, &ee_der, Purpose::Signing, NOW).unwrap();
    assert_eq!((v.source(), v.medium()), (RootSource::Jpki, Medium::Card));
    assert!(v.ocsp_url().is_none() && v.crl_urls().is_empty());
    let checked = not_checked(v);
    assert_eq!(checked.status().as_str(), "not_checked");
}

/// JPKI-shaped certificates: the real root's subject name (taken from the
/// real 2023 signing root), one tier, and an end entity with critical KU
/// digitalSignature+nonRepudiation, the critical class-20 policy and the
/// personal-data otherNames. rcgen cannot write a name with two OUs, so
/// names are set with x509-cert and the TBS signed again.
mod jpki_shaped {
    use std::sync::Arc;

    use der::{Decode, Encode};
    use rcgen::{
        CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    use shomei_core::{BasicFour, Signer};
    use shomei_pki::RsaSigner;
    use shomei_pki::profile::RcgenKey;
    use x509_cert::Certificate;
    use x509_cert::name::Name;

    /// The real 2023 JPKI signing root's subject.
    fn real_sign_root() -> Certificate {
        let mut s = crate::TrustStore::new();
        s.add_jpki_roots().unwrap();
        Certificate::from_der(s.anchors(crate::Purpose::Signing)[1].der()).unwrap()
    }

    fn resign(der: &[u8], subject: Option<&Name>, issuer: &Name, key: &dyn Signer) -> Vec<u8> {
        let mut c = Certificate::from_der(der).unwrap();
        c.tbs_certificate.issuer = issuer.clone();
        if let Some(s) = subject {
            c.tbs_certificate.subject = s.clone();
        }
        let sig = key.sign(&c.tbs_certificate.to_der().unwrap()).unwrap();
        c.signature = der::asn1::BitString::from_bytes(&sig).unwrap();
        c.to_der().unwrap()
    }

    fn ee_params(holder: &BasicFour) -> CertificateParams {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CountryName,
            DnValue::PrintableString("JP".try_into().unwrap()),
        );
        dn.push(DnType::LocalityName, DnValue::Utf8String("東京都".into()));
        dn.push(
            DnType::CommonName,
            DnValue::Utf8String("12A3456789012345".into()),
        );
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        p.not_before = time::macros::datetime!(2026-01-05 00:00:00 UTC);
        p.not_after = time::macros::datetime!(2030-04-01 14:59:59 UTC);
        let other = |arcs: &[u64], v: String| {
            SanType::OtherName((arcs.to_vec(), rcgen::OtherNameValue::Utf8String(v)))
        };
        use shomei_pki::oids::*;
        // The order of real certificates: name, birth date, sex, address.
        p.subject_alt_names = vec![
            other(PD_COMMON_NAME, holder.name().into()),
            other(PD_DATE_OF_BIRTH, holder.birth_date().jpki_encoding()),
            other(PD_GENDER, holder.sex().code().to_string()),
            other(PD_ADDRESS, holder.address().into()),
        ];
        // certificatePolicies, critical: { 1.2.392.200149.8.5.1.1.20 }.
        let mut policy = CustomExtension::from_oid_content(
            CERTIFICATE_POLICIES,
            vec![
                0x30, 0x0f, 0x30, 0x0d, 0x06, 0x0b, 0x2a, 0x83, 0x08, 0x8c, 0x9b, 0x55, 0x08, 0x05,
                0x01, 0x01, 0x14,
            ],
        );
        policy.set_criticality(true);
        p.custom_extensions.push(policy);
        p
    }

    fn ee_signed_by(holder: &BasicFour, key: Arc<RsaSigner>) -> Vec<u8> {
        let ca = CertificateParams::default();
        let rk = RcgenKey::new(key).unwrap();
        let issuer = Issuer::new(ca, &rk);
        ee_params(holder)
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap()
            .der()
            .to_vec()
    }

    /// A root with J-LIS's name and validity but a new key, and a card
    /// signing certificate under it.
    pub fn chain(holder: &BasicFour) -> (Vec<u8>, Vec<u8>) {
        let real = real_sign_root();
        let name = real.tbs_certificate.subject.clone();
        let key = Arc::new(RsaSigner::generate().unwrap());
        let ours = shomei_pki::profile::RootCa::create(
            shomei_core::Root::Sign,
            "JPKI",
            key.clone(),
            &shomei_core::Serial::from_be_bytes(&[0x06, 0x7c]).unwrap(),
            time::macros::datetime!(2023-07-16 00:50:27 UTC),
        )
        .unwrap();
        let root = resign(ours.cert_der(), Some(&name), &name, key.as_ref());
        let ee = resign(
            &ee_signed_by(holder, key.clone()),
            None,
            &name,
            key.as_ref(),
        );
        (root, ee)
    }

    /// An end entity whose issuer name is the real 2023 root's subject,
    /// signed by a key that is not the real root's.
    pub fn end_entity_named_under(_real_root: &[u8]) -> Vec<u8> {
        let name = real_sign_root().tbs_certificate.subject;
        let key = Arc::new(RsaSigner::generate().unwrap());
        let holder = super::pki().holder.clone();
        resign(
            &ee_signed_by(&holder, key.clone()),
            None,
            &name,
            key.as_ref(),
        )
    }
}
