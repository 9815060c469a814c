//! Putting a holder's certificates on a phone (スマホ用電子証明書), decided
//! without IO.
//!
//! The phone asks with its card: the card's **signing** key (unlocked by the
//! card's signing password) signs [`phone_provisioning_message`], which binds
//! a single-use authority challenge, the secure element's device id and
//! both new public keys. Each new key comes with an attestation chain from
//! the phone's secure element, binding the same challenge and showing which
//! gate unlocks it: this is how the authority checks the rules of the new
//! phone passwords without ever seeing them (the signing key must be gated
//! by a signing password — 6–16 of A–Z0–9, 5 tries — with no biometric; the
//! authentication key by a 4-digit PIN with 3 tries, biometric allowed).
//!
//! The caller (the HTTP adapter) checks against the registry that the card
//! certificates are live card certificates of one holder, supplies the
//! holder's current basic four and verifies attestations against the
//! manufacturer roots it trusts (see [`Authority::provision_phone`]).

use core::fmt;

use shomei_core::{BasicFour, CertClass, RandomSource, Root, Serial, Timestamp};
use shomei_pki::csr::{CheckedCsr, check_csr};
use shomei_secure_element::{AttestationError, AttestedKey, GateId, KeyKind};

use crate::{Authority, CaError, IssuedCertificate, MAX_PROOF_CERT};

/// Domain separation for provisioning signatures, so a card signature made
/// for a phone can never pass as a document signature or a holder proof.
pub const PHONE_PROVISION_CONTEXT: &[u8] = b"shomei/phone-provision/v1";

/// Longest device id accepted in a provisioning message (bytes).
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// The bytes the card's signing key signs to put its holder's certificates
/// on a phone:
///
/// ```text
/// "shomei/phone-provision/v1" 0x00
/// len(challenge) challenge        -- the authority's single-use challenge (raw bytes)
/// len(device_id) device_id        -- the secure element's device id, lower-case hex (UTF-8)
/// len(sign_spki) sign_spki        -- DER SubjectPublicKeyInfo of the phone signing key
/// len(auth_spki) auth_spki        -- DER SubjectPublicKeyInfo of the phone auth key
/// ```
///
/// where each `len` is the field's length as a 4-byte big-endian unsigned
/// integer. The card signs it as any document (RSA PKCS#1 v1.5 over the
/// SHA-256 DigestInfo of these bytes).
pub fn phone_provisioning_message(
    challenge: &[u8],
    device_id: &str,
    sign_spki: &[u8],
    auth_spki: &[u8],
) -> Vec<u8> {
    let fields = [challenge, device_id.as_bytes(), sign_spki, auth_spki];
    let mut m = Vec::with_capacity(
        PHONE_PROVISION_CONTEXT.len() + 1 + fields.iter().map(|f| 4 + f.len()).sum::<usize>(),
    );
    m.extend_from_slice(PHONE_PROVISION_CONTEXT);
    m.push(0);
    for f in fields {
        // Fields longer than 4 GiB cannot reach here (request bodies are capped far below).
        let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(f);
    }
    m
}

/// Which of the phone's two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhoneKey {
    /// The signing key (PhoneSign certificate).
    Sign,
    /// The authentication key (PhoneAuth certificate).
    Auth,
}

impl PhoneKey {
    /// `sign` or `auth`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::Auth => "auth",
        }
    }

    /// The certificate class it gets.
    pub fn class(self) -> CertClass {
        match self {
            Self::Sign => CertClass::PhoneSign,
            Self::Auth => CertClass::PhoneAuth,
        }
    }
}

impl fmt::Display for PhoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sign => "signing key",
            Self::Auth => "authentication key",
        })
    }
}

/// A card certificate checked to be issued by this authority's root for
/// its class. Only [`Authority::check_card_certificate`] makes one.
#[derive(Clone, Debug)]
pub struct CheckedCardCert {
    serial: Serial,
    root: Root,
    spki: Vec<u8>,
    not_after: Timestamp,
}

impl CheckedCardCert {
    /// Its serial (what the caller looks up in the registry).
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// The root that issued it.
    pub fn root(&self) -> Root {
        self.root
    }

    /// Its notAfter.
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }
}

/// A phone provisioning request, decoded from its wire form.
pub struct PhoneRequest<'a> {
    /// The holder's current basic four (from the registry): written into the
    /// phone signing certificate.
    pub holder: &'a BasicFour,
    /// The card's signing certificate (its key signed the request).
    pub card_sign: &'a CheckedCardCert,
    /// The card's authentication certificate (the sign certificate's pair).
    pub card_auth: &'a CheckedCardCert,
    /// The authority challenge the card signature and the attestations bind
    /// (the caller has already spent it).
    pub challenge: &'a [u8],
    /// The device id the phone claims (lower-case hex), if it sent one; it
    /// must be the attested one.
    pub device_id: Option<&'a str>,
    /// RSA PKCS#1 v1.5 SHA-256 signature by the card's signing key over
    /// [`phone_provisioning_message`].
    pub card_signature: &'a [u8],
    /// DER PKCS#10 for the phone signing key.
    pub sign_csr: &'a [u8],
    /// DER PKCS#10 for the phone authentication key.
    pub auth_csr: &'a [u8],
    /// The signing key's attestation chain (DER, leaf first).
    pub sign_attestation: &'a [Vec<u8>],
    /// The authentication key's attestation chain (DER, leaf first).
    pub auth_attestation: &'a [Vec<u8>],
}

/// What provisioning produced: two certificates to commit, then return.
#[derive(Clone, Debug)]
pub struct IssuedPhone {
    /// The attested device id of the secure element (lower-case hex).
    pub device_id: String,
    /// The PhoneSign certificate (parent: the card signing certificate).
    pub sign: IssuedCertificate,
    /// The PhoneAuth certificate (parent: the card authentication certificate).
    pub auth: IssuedCertificate,
}

/// Checks an attested key policy against the JPKI rules for `key`.
///
/// * Signing key: unlocked only by the signing password gate (6–16 of
///   A–Z0–9, 5 tries), never by a biometric.
/// * Authentication key: unlocked by the 4-digit PIN gate (3 tries); a
///   biometric may stand in.
/// * Both: RSA-2048, as every JPKI key, and never unlocked by a mere
///   presence confirmation (that is for the mobile ID's device key only).
pub fn check_key_policy(key: PhoneKey, attested: &AttestedKey) -> Result<(), CaError> {
    let refuse = |why: &'static str| Err(CaError::KeyPolicy { key, why });
    if attested.kind != KeyKind::Rsa2048 {
        return refuse("the key must be RSA-2048");
    }
    if attested.policy.presence_allowed() {
        return refuse("a presence confirmation must not unlock a JPKI key");
    }
    let gate = attested.policy.gate();
    match key {
        PhoneKey::Sign => {
            if gate != GateId::SignPassword || GateId::SignPassword.max_tries() != 5 {
                return refuse(
                    "the signing key must be gated by a signing password (6-16 of A-Z0-9, 5 tries)",
                );
            }
            if attested.policy.biometric_allowed() {
                return refuse("a biometric must not unlock the signing key");
            }
        }
        PhoneKey::Auth => {
            if gate != GateId::AuthPin || GateId::AuthPin.max_tries() != 3 {
                return refuse("the authentication key must be gated by a 4-digit PIN (3 tries)");
            }
        }
    }
    Ok(())
}

fn cert_time(t: x509_cert::time::Time) -> Option<Timestamp> {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).ok()?;
    Timestamp::from_unix_timestamp(secs).ok()
}

impl Authority {
    /// Checks that `der` is a certificate issued by this authority's `root`
    /// (signature by the root key), and reads what provisioning needs.
    /// Whether it is a live card certificate is the registry's to say.
    pub fn check_card_certificate(
        &self,
        der: &[u8],
        root: Root,
    ) -> Result<CheckedCardCert, CaError> {
        use der::Decode;
        if der.len() > MAX_PROOF_CERT {
            return Err(CaError::CardNotOurs("the certificate is too large"));
        }
        shomei_pki::cms::check_issued_by(der, self.root(root).cert_der()).map_err(|_| {
            CaError::CardNotOurs(match root {
                Root::Sign => "the card signing certificate was not issued by this authority",
                Root::Auth => {
                    "the card authentication certificate was not issued by this authority"
                }
            })
        })?;
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|_| CaError::CardNotOurs("malformed certificate"))?;
        let serial = Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())
            .map_err(|_| CaError::CardNotOurs("bad serial"))?;
        let not_after = cert_time(cert.tbs_certificate.validity.not_after)
            .ok_or(CaError::CardNotOurs("bad validity"))?;
        let spki = shomei_pki::csr::certificate_spki(der)?;
        Ok(CheckedCardCert {
            serial,
            root,
            spki,
            not_after,
        })
    }

    /// Checks a phone provisioning request and builds the phone's two
    /// certificates. Pure: nothing is stored.
    ///
    /// `verify` checks one attestation chain for `(chain, expected_spki,
    /// expected_challenge)` — in the server, `shomei_secure_element::verify_attestation`
    /// against the trusted manufacturer roots at `now`.
    ///
    /// In order: both card certificates come from the right roots; both
    /// CSRs check (signature, RSA-2048, e = 65537) and carry two keys new to
    /// this holder's card; each attestation verifies for its CSR's key and
    /// the challenge; the attested policies follow [`check_key_policy`]; both
    /// keys live on one device, the one the request names (if it does);
    /// the card signing key signed [`phone_provisioning_message`]. Then the
    /// PhoneSign certificate (with the basic four) is issued until the card
    /// signing certificate's notAfter, the PhoneAuth one until the card
    /// authentication certificate's.
    pub fn provision_phone(
        &self,
        req: &PhoneRequest<'_>,
        now: Timestamp,
        rng: &mut dyn RandomSource,
        verify: impl Fn(&[Vec<u8>], &[u8], &[u8]) -> Result<AttestedKey, AttestationError>,
    ) -> Result<IssuedPhone, CaError> {
        if req.card_sign.root != Root::Sign || req.card_auth.root != Root::Auth {
            return Err(CaError::CardNotOurs(
                "the card certificates must be a signing and an authentication certificate",
            ));
        }
        let sign_csr = check_csr(req.sign_csr)?;
        let auth_csr = check_csr(req.auth_csr)?;
        let keys = [sign_csr.spki(), auth_csr.spki()];
        if keys[0] == keys[1] {
            return Err(CaError::SameKeyTwice);
        }
        if keys
            .iter()
            .any(|k| *k == req.card_sign.spki.as_slice() || *k == req.card_auth.spki.as_slice())
        {
            return Err(CaError::Pki(shomei_pki::PkiError::BadKey(
                "a phone key must not be one of the card's keys".into(),
            )));
        }
        let mut device: Option<String> = None;
        for (key, csr, chain) in [
            (PhoneKey::Sign, &sign_csr, req.sign_attestation),
            (PhoneKey::Auth, &auth_csr, req.auth_attestation),
        ] {
            let attested = verify(chain, csr.spki(), req.challenge)
                .map_err(|error| CaError::Attestation { key, error })?;
            check_key_policy(key, &attested)?;
            let id = attested.device_id.to_hex();
            match &device {
                Some(d) if *d != id => return Err(CaError::DeviceMismatch),
                _ => device = Some(id),
            }
        }
        let device_id = device.ok_or(CaError::DeviceMismatch)?;
        if req
            .device_id
            .is_some_and(|claimed| !claimed.eq_ignore_ascii_case(&device_id))
        {
            return Err(CaError::DeviceMismatch);
        }
        let message = phone_provisioning_message(req.challenge, &device_id, keys[0], keys[1]);
        shomei_pki::csr::verify_rsa_sha256(&req.card_sign.spki, &message, req.card_signature)
            .map_err(|_| CaError::BadCardSignature)?;
        let sign = self.issue_phone(
            PhoneKey::Sign,
            &sign_csr,
            req.holder,
            now,
            req.card_sign.not_after,
            rng,
        )?;
        let auth = self.issue_phone(
            PhoneKey::Auth,
            &auth_csr,
            req.holder,
            now,
            req.card_auth.not_after,
            rng,
        )?;
        Ok(IssuedPhone {
            device_id,
            sign,
            auth,
        })
    }

    fn issue_phone(
        &self,
        key: PhoneKey,
        csr: &CheckedCsr,
        holder: &BasicFour,
        now: Timestamp,
        card_not_after: Timestamp,
        rng: &mut dyn RandomSource,
    ) -> Result<IssuedCertificate, CaError> {
        // Never past the card certificate it derives from (nor past what a
        // card issued today would get).
        let not_after = card_not_after.min(shomei_pki::profile::card_not_after(holder, now));
        if not_after <= now {
            return Err(CaError::CardExpired);
        }
        self.issue(key.class(), csr, holder, now, not_after, rng)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use shomei_core::{SignError, Signer};
    use shomei_pki::RsaSigner;
    use shomei_pki::csr::build_csr;
    use shomei_pki::profile::PublicationPoints;
    use shomei_se_sim::{
        MemoryDeviceRoot, MemoryStore, SimManufacturer, SimOptions, SimSecureElement,
    };
    use shomei_secure_element::{
        KeyPolicy, SeSigner, SecureElement, SharedElement, UnlockScope, verify_attestation,
    };
    use time::macros::datetime;

    use super::*;
    use crate::{AuthorityConfig, EnrolRequest, IssuedCard};

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);

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

    fn authority() -> Authority {
        let mk = |r: Root, n: u8| {
            Arc::new(
                shomei_pki::profile::RootCa::create(
                    r,
                    "Test",
                    Arc::new(RsaSigner::generate().unwrap()),
                    &Serial::from_be_bytes(&[n]).unwrap(),
                    NOW,
                )
                .unwrap(),
            )
        };
        Authority::new(
            AuthorityConfig {
                points: PublicationPoints::new("http://127.0.0.1:8700"),
                crl_shards: 4,
            },
            mk(Root::Sign, 1),
            mk(Root::Auth, 2),
        )
    }

    fn holder() -> BasicFour {
        BasicFour::new(
            "山田 花子",
            "東京都",
            "1990-04-01".parse().unwrap(),
            shomei_core::Sex::Female,
        )
        .unwrap()
    }

    /// A card: its certificates and its signing key.
    fn card(a: &Authority) -> (IssuedCard, RsaSigner) {
        let (k1, k2) = (
            RsaSigner::generate().unwrap(),
            RsaSigner::generate().unwrap(),
        );
        let h = holder();
        let issued = a
            .enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: Some(&build_csr(&k1, "s").unwrap()),
                    auth_csr: &build_csr(&k2, "a").unwrap(),
                },
                NOW,
                &mut Counter(0),
            )
            .unwrap();
        (issued, k1)
    }

    /// A simulated phone secure element with both gates set.
    fn phone(m: &SimManufacturer) -> SharedElement {
        let root = MemoryDeviceRoot::new(m.new_device(NOW).unwrap());
        let mut se =
            SimSecureElement::provision(MemoryStore::new(), root, SimOptions::default()).unwrap();
        se.set_pin(GateId::SignPassword, "ABC123").unwrap();
        se.set_pin(GateId::AuthPin, "1234").unwrap();
        Arc::new(Mutex::new(Box::new(se)))
    }

    /// A key in the element under `policy`: its CSR and attestation chain.
    fn key(
        se: &SharedElement,
        label: &str,
        policy: KeyPolicy,
        challenge: &[u8],
    ) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (handle, chain, unlock) = {
            let mut e = se.lock().unwrap();
            let handle = e
                .create_key(label, KeyKind::Rsa2048, policy, challenge)
                .unwrap();
            let chain = e.attest(&handle).unwrap().into_certs();
            let pin = match policy.gate() {
                GateId::SignPassword => "ABC123",
                _ => "1234",
            };
            let unlock = e.verify_pin(policy.gate(), pin, UnlockScope::Once).unwrap();
            (handle, chain, unlock)
        };
        let signer = SeSigner::new(se.clone(), handle, unlock).unwrap();
        (build_csr(&signer, label).unwrap(), chain)
    }

    struct Case {
        a: Authority,
        issued: IssuedCard,
        card_key: RsaSigner,
        root: Vec<u8>,
        challenge: Vec<u8>,
        device_id: String,
        sign: (Vec<u8>, Vec<Vec<u8>>),
        auth: (Vec<u8>, Vec<Vec<u8>>),
        signature: Vec<u8>,
        card_sign: CheckedCardCert,
        card_auth: CheckedCardCert,
        holder: BasicFour,
        se: SharedElement,
    }

    fn case() -> Case {
        let a = authority();
        let (issued, card_key) = card(&a);
        let m = SimManufacturer::generate(NOW).unwrap();
        let se = phone(&m);
        let challenge = vec![7u8; 32];
        let sign = key(&se, "jpki-sign", KeyPolicy::PHONE_SIGN, &challenge);
        let auth = key(&se, "jpki-auth", KeyPolicy::PHONE_AUTH, &challenge);
        let device_id = se.lock().unwrap().device_id().to_hex();
        let spki = |csr: &[u8]| check_csr(csr).unwrap().spki().to_vec();
        let msg =
            phone_provisioning_message(&challenge, &device_id, &spki(&sign.0), &spki(&auth.0));
        let signature = card_key.sign(&msg).unwrap();
        let card_sign = a
            .check_card_certificate(&issued.sign.as_ref().unwrap().der, Root::Sign)
            .unwrap();
        let card_auth = a
            .check_card_certificate(&issued.auth.der, Root::Auth)
            .unwrap();
        Case {
            se,
            card_sign,
            card_auth,
            holder: holder(),
            a,
            issued,
            card_key,
            root: m.root_cert_der().to_vec(),
            challenge,
            device_id,
            sign,
            auth,
            signature,
        }
    }

    impl Case {
        fn run<'a>(
            &'a self,
            edit: impl FnOnce(&mut PhoneRequest<'a>),
        ) -> Result<IssuedPhone, CaError> {
            let mut req = PhoneRequest {
                holder: &self.holder,
                card_sign: &self.card_sign,
                card_auth: &self.card_auth,
                challenge: &self.challenge,
                device_id: Some(&self.device_id),
                card_signature: &self.signature,
                sign_csr: &self.sign.0,
                auth_csr: &self.auth.0,
                sign_attestation: &self.sign.1,
                auth_attestation: &self.auth.1,
            };
            edit(&mut req);
            let roots = vec![self.root.clone()];
            self.a
                .provision_phone(&req, NOW, &mut Counter(50), |chain, spki, challenge| {
                    verify_attestation(chain, &roots, spki, challenge, NOW)
                })
        }
    }

    #[test]
    fn message_layout_is_length_prefixed_and_domain_separated() {
        let m = phone_provisioning_message(b"ch", "0a", b"S", b"AU");
        let mut want = b"shomei/phone-provision/v1\0".to_vec();
        for f in [&b"ch"[..], b"0a", b"S", b"AU"] {
            want.extend_from_slice(&(f.len() as u32).to_be_bytes());
            want.extend_from_slice(f);
        }
        assert_eq!(m, want);
        // Moving a byte between fields changes the message.
        assert_ne!(
            phone_provisioning_message(b"ab", "c", b"", b""),
            phone_provisioning_message(b"a", "bc", b"", b"")
        );
        assert!(
            crate::device_proof_message("wipe", "d_1", b"c")
                .starts_with(b"shomei/holder-proof/v1\0wipe\0device:d_1\0")
        );
    }

    #[test]
    fn a_good_request_gets_certificates_capped_at_the_card() {
        let c = case();
        let phone = c.run(|_| {}).unwrap();
        assert_eq!(phone.device_id, c.device_id);
        let card_sign = c.issued.sign.as_ref().unwrap();
        assert_eq!(phone.sign.class, CertClass::PhoneSign);
        assert_eq!(phone.auth.class, CertClass::PhoneAuth);
        assert_eq!(phone.sign.not_after, card_sign.not_after);
        assert_eq!(phone.auth.not_after, c.issued.auth.not_after);
        shomei_pki::cms::check_issued_by(&phone.sign.der, c.a.root(Root::Sign).cert_der()).unwrap();
        shomei_pki::cms::check_issued_by(&phone.auth.der, c.a.root(Root::Auth).cert_der()).unwrap();
        // Without a claimed device id, the attested one is used.
        assert_eq!(
            c.run(|r| r.device_id = None).unwrap().device_id,
            c.device_id
        );
        // The claim is case-insensitive hex.
        let upper = c.device_id.to_uppercase();
        assert!(c.run(|r| r.device_id = Some(&upper)).is_ok());
    }

    #[test]
    fn forged_or_misbound_card_signatures_are_refused() {
        let c = case();
        let other = RsaSigner::generate().unwrap();
        let spki = |csr: &[u8]| check_csr(csr).unwrap().spki().to_vec();
        let msg = phone_provisioning_message(
            &c.challenge,
            &c.device_id,
            &spki(&c.sign.0),
            &spki(&c.auth.0),
        );
        let forged = other.sign(&msg).unwrap();
        assert_eq!(
            c.run(|r| r.card_signature = &forged).unwrap_err(),
            CaError::BadCardSignature
        );
        // Signed by the card, but over other keys (swapped).
        let swapped = c
            .card_key
            .sign(&phone_provisioning_message(
                &c.challenge,
                &c.device_id,
                &spki(&c.auth.0),
                &spki(&c.sign.0),
            ))
            .unwrap();
        assert_eq!(
            c.run(|r| r.card_signature = &swapped).unwrap_err(),
            CaError::BadCardSignature
        );
        // A holder proof's signature shape is not a provisioning signature.
        let proof = c.card_key.sign(&c.challenge).unwrap();
        assert_eq!(
            c.run(|r| r.card_signature = &proof).unwrap_err(),
            CaError::BadCardSignature
        );
    }

    #[test]
    fn attestations_must_match_keys_challenge_and_roots() {
        let c = case();
        // The sign key's chain for the auth CSR.
        let err = c.run(|r| r.auth_attestation = &c.sign.1).unwrap_err();
        assert_eq!(
            err,
            CaError::Attestation {
                key: PhoneKey::Auth,
                error: AttestationError::KeyMismatch
            }
        );
        // Another challenge.
        let other = [8u8; 32];
        let err = c.run(|r| r.challenge = &other).unwrap_err();
        assert_eq!(
            err,
            CaError::Attestation {
                key: PhoneKey::Sign,
                error: AttestationError::ChallengeMismatch
            }
        );
        // Another manufacturer.
        let m2 = SimManufacturer::generate(NOW).unwrap();
        let se2 = phone(&m2);
        let foreign = key(&se2, "jpki-sign", KeyPolicy::PHONE_SIGN, &c.challenge);
        let err = c
            .run(|r| {
                r.sign_csr = &foreign.0;
                r.sign_attestation = &foreign.1;
            })
            .unwrap_err();
        assert_eq!(
            err,
            CaError::Attestation {
                key: PhoneKey::Sign,
                error: AttestationError::UntrustedRoot
            }
        );
        // Empty chain.
        let err = c.run(|r| r.sign_attestation = &[]).unwrap_err();
        assert!(matches!(err, CaError::Attestation { .. }), "{err:?}");
    }

    #[test]
    fn key_policies_follow_the_phone_password_rules() {
        let c = case();
        let se = &c.se;
        // A signing key behind the 4-digit PIN (even without biometric) is refused.
        let weak = key(
            se,
            "weak-sign",
            KeyPolicy::new(GateId::AuthPin, false).unwrap(),
            &c.challenge,
        );
        let err = c
            .run(|r| {
                r.sign_csr = &weak.0;
                r.sign_attestation = &weak.1;
            })
            .unwrap_err();
        assert!(
            matches!(
                err,
                CaError::KeyPolicy {
                    key: PhoneKey::Sign,
                    ..
                }
            ),
            "{err:?}"
        );
        // An authentication key behind the signing password is not the rule either.
        let odd = key(se, "odd-auth", KeyPolicy::PHONE_SIGN, &c.challenge);
        let err = c
            .run(|r| {
                r.auth_csr = &odd.0;
                r.auth_attestation = &odd.1;
            })
            .unwrap_err();
        assert!(
            matches!(
                err,
                CaError::KeyPolicy {
                    key: PhoneKey::Auth,
                    ..
                }
            ),
            "{err:?}"
        );
        // The policy rule on its own: biometric on the signing gate is refused.
        let attested = AttestedKey {
            device_id: shomei_secure_element::DeviceId::from_bytes([1; 16]),
            kind: KeyKind::EcP256,
            policy: KeyPolicy::PHONE_SIGN,
        };
        assert!(
            check_key_policy(PhoneKey::Sign, &attested).is_err(),
            "EC key"
        );
        let attested = AttestedKey {
            kind: KeyKind::Rsa2048,
            ..attested
        };
        assert!(check_key_policy(PhoneKey::Sign, &attested).is_ok());
        assert!(check_key_policy(PhoneKey::Auth, &attested).is_err());
        let auth = AttestedKey {
            policy: KeyPolicy::new(GateId::AuthPin, false).unwrap(),
            ..attested
        };
        assert!(check_key_policy(PhoneKey::Auth, &auth).is_ok());
        // The mobile ID's presence policy never passes for a JPKI key.
        let presence = AttestedKey {
            policy: KeyPolicy::MDOC_PRESENCE,
            ..attested
        };
        assert!(matches!(
            check_key_policy(PhoneKey::Auth, &presence),
            Err(CaError::KeyPolicy {
                key: PhoneKey::Auth,
                why
            }) if why.contains("presence")
        ));
        assert!(check_key_policy(PhoneKey::Sign, &presence).is_err());
    }

    #[test]
    fn both_keys_must_be_on_the_named_device() {
        let c = case();
        assert_eq!(
            c.run(|r| r.device_id = Some("00112233445566778899aabbccddeeff"))
                .unwrap_err(),
            CaError::DeviceMismatch
        );
        // The auth key from another phone of the same manufacturer: the
        // provisioning message names one device, so it cannot match both.
        let m = SimManufacturer::generate(NOW).unwrap();
        let c2 = Case {
            root: m.root_cert_der().to_vec(),
            ..case()
        };
        let (se_a, se_b) = (phone(&m), phone(&m));
        let sign = key(&se_a, "jpki-sign", KeyPolicy::PHONE_SIGN, &c2.challenge);
        let auth = key(&se_b, "jpki-auth", KeyPolicy::PHONE_AUTH, &c2.challenge);
        let err = c2
            .run(|r| {
                r.sign_csr = &sign.0;
                r.sign_attestation = &sign.1;
                r.auth_csr = &auth.0;
                r.auth_attestation = &auth.1;
            })
            .unwrap_err();
        assert_eq!(err, CaError::DeviceMismatch);
    }

    #[test]
    fn card_certificates_must_be_ours_and_the_right_kind() {
        let c = case();
        let b = authority();
        let (theirs, _) = card(&b);
        assert!(matches!(
            c.a.check_card_certificate(&theirs.sign.as_ref().unwrap().der, Root::Sign),
            Err(CaError::CardNotOurs(_))
        ));
        assert!(matches!(
            c.a.check_card_certificate(b"junk", Root::Sign),
            Err(CaError::CardNotOurs(_))
        ));
        // An authentication certificate is not a signing one.
        assert!(matches!(
            c.a.check_card_certificate(&c.issued.auth.der, Root::Sign),
            Err(CaError::CardNotOurs(_))
        ));
        let auth =
            c.a.check_card_certificate(&c.issued.auth.der, Root::Auth)
                .unwrap();
        assert!(matches!(
            c.run(|r| r.card_sign = &auth),
            Err(CaError::CardNotOurs(_))
        ));
        // Same key twice, or a card key reused on the phone.
        assert_eq!(
            c.run(|r| r.auth_csr = &c.sign.0).unwrap_err(),
            CaError::SameKeyTwice
        );
        let card_csr = build_csr(&c.card_key, "card").unwrap();
        assert!(matches!(
            c.run(|r| r.sign_csr = &card_csr),
            Err(CaError::Pki(shomei_pki::PkiError::BadKey(_)))
        ));
    }
}
