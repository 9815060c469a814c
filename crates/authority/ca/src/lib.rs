//! The authority's core (the J-LIS role): decides and builds what an
//! enrolment or a lifecycle request produces, without doing any IO.
//!
//! Callers (the HTTP adapter, the CLI) hand in bytes, `now` and randomness;
//! they get back certificates plus the exact records to commit to the
//! registry. Nothing is published until the registry commit succeeds.

#![forbid(unsafe_code)]

mod phone;

use core::fmt;
use std::sync::Arc;

use shomei_core::{BasicFour, CertClass, CertStatus, RandomSource, Root, Serial, Timestamp};
use shomei_pki::PkiError;
use shomei_pki::csr::{CheckedCsr, check_csr};
use shomei_pki::profile::{
    EndEntityRequest, PublicationPoints, RootCa, card_not_after, issue_end_entity,
};
use shomei_secure_element::AttestationError;

pub use phone::{
    CheckedCardCert, IssuedPhone, MAX_DEVICE_ID_LEN, PHONE_PROVISION_CONTEXT, PhoneKey,
    PhoneRequest, check_key_policy, phone_provisioning_message,
};

/// Age under which a holder gets no signing certificate (JPKI: under-15s).
pub const SIGNING_MIN_AGE: i32 = 15;

/// The authority core's one error type. Messages never carry personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaError {
    /// A CSR or other PKI input was refused.
    Pki(PkiError),
    /// A holder under 15 asked for a signing certificate.
    MinorCannotSign,
    /// No authentication CSR was given.
    MissingAuthCsr,
    /// The two CSRs carry the same key.
    SameKeyTwice,
    /// The holder's 5th birthday after today is not after today (impossible dates).
    BadValidity,
    /// Randomness failed.
    Random,
    /// A holder proof did not check out (what, safe to show).
    BadProof(&'static str),
    /// A card certificate presented for phone provisioning was not issued by
    /// this authority (what, safe to show).
    CardNotOurs(&'static str),
    /// The card's signature over the phone provisioning message does not verify.
    BadCardSignature,
    /// A phone key's attestation was refused.
    Attestation {
        /// Which key.
        key: PhoneKey,
        /// Why.
        error: AttestationError,
    },
    /// A phone key's attested unlock policy breaks the rules.
    KeyPolicy {
        /// Which key.
        key: PhoneKey,
        /// What is wrong.
        why: &'static str,
    },
    /// The two phone keys are on different devices, or not on the device
    /// the request names.
    DeviceMismatch,
    /// The card certificate a phone certificate would derive from has expired.
    CardExpired,
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pki(e) => write!(f, "{e}"),
            Self::MinorCannotSign => write!(
                f,
                "holders under {SIGNING_MIN_AGE} get no signing certificate: omit sign_csr"
            ),
            Self::MissingAuthCsr => f.write_str("auth_csr is required"),
            Self::SameKeyTwice => f.write_str("sign_csr and auth_csr must carry different keys"),
            Self::BadValidity => {
                f.write_str("cannot compute a validity period for this birth date")
            }
            Self::Random => f.write_str("randomness source failed"),
            Self::BadProof(why) => write!(f, "holder proof refused: {why}"),
            Self::CardNotOurs(why) => write!(f, "card certificate refused: {why}"),
            Self::BadCardSignature => f.write_str(
                "the card signature over the phone provisioning message does not verify",
            ),
            Self::Attestation { key, error } => {
                write!(f, "attestation of the phone {key} refused: {error}")
            }
            Self::KeyPolicy { key, why } => {
                write!(f, "the phone {key}'s attested policy is refused: {why}")
            }
            Self::DeviceMismatch => f.write_str(
                "the phone keys are not attested by one device, or not by the device named",
            ),
            Self::CardExpired => f.write_str("the card certificate has expired"),
        }
    }
}

impl std::error::Error for CaError {}

impl From<PkiError> for CaError {
    fn from(e: PkiError) -> Self {
        Self::Pki(e)
    }
}

/// Static configuration of an authority.
#[derive(Clone, Debug)]
pub struct AuthorityConfig {
    /// Where certificates point relying parties for CRLs and OCSP.
    pub points: PublicationPoints,
    /// Number of CRL shards per certificate class (≥ 1).
    pub crl_shards: u32,
}

/// The authority: its two roots and its configuration.
pub struct Authority {
    config: AuthorityConfig,
    sign_root: Arc<RootCa>,
    auth_root: Arc<RootCa>,
}

/// One certificate just built, with what the registry needs to store.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// Its serial.
    pub serial: Serial,
    /// Its class.
    pub class: CertClass,
    /// DER.
    pub der: Vec<u8>,
    /// Validity start.
    pub not_before: Timestamp,
    /// Validity end.
    pub not_after: Timestamp,
    /// CRL shard.
    pub shard: u32,
}

/// The result of an enrolment: certificates to commit, then return.
#[derive(Clone, Debug)]
pub struct IssuedCard {
    /// The signing certificate (absent for holders under 15).
    pub sign: Option<IssuedCertificate>,
    /// The authentication certificate.
    pub auth: IssuedCertificate,
}

/// An enrolment request, already decoded from its wire form.
pub struct EnrolRequest<'a> {
    /// The holder's basic four.
    pub holder: &'a BasicFour,
    /// DER PKCS#10 for the signing key, if any.
    pub sign_csr: Option<&'a [u8]>,
    /// DER PKCS#10 for the authentication key.
    pub auth_csr: &'a [u8],
}

impl Authority {
    /// Assembles an authority from its roots.
    pub fn new(config: AuthorityConfig, sign_root: Arc<RootCa>, auth_root: Arc<RootCa>) -> Self {
        let config = AuthorityConfig {
            crl_shards: config.crl_shards.max(1),
            ..config
        };
        Self {
            config,
            sign_root,
            auth_root,
        }
    }

    /// Configuration.
    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }

    /// The root for `root`.
    pub fn root(&self, root: Root) -> &Arc<RootCa> {
        match root {
            Root::Sign => &self.sign_root,
            Root::Auth => &self.auth_root,
        }
    }

    /// Checks an enrolment and builds the card's certificates. Pure: nothing
    /// is stored; the caller commits the result to the registry.
    pub fn enrol(
        &self,
        req: &EnrolRequest<'_>,
        now: Timestamp,
        rng: &mut dyn RandomSource,
    ) -> Result<IssuedCard, CaError> {
        let age = req.holder.birth_date().age_on(now.date());
        if age < 0 {
            return Err(CaError::Pki(PkiError::Unsupported(
                "birth date lies in the future".into(),
            )));
        }
        let auth_csr = check_csr(req.auth_csr)?;
        let sign_csr = match req.sign_csr {
            Some(_) if age < SIGNING_MIN_AGE => return Err(CaError::MinorCannotSign),
            Some(der) => Some(check_csr(der)?),
            None => None,
        };
        if sign_csr
            .as_ref()
            .is_some_and(|s| s.spki() == auth_csr.spki())
        {
            return Err(CaError::SameKeyTwice);
        }
        let not_after = card_not_after(req.holder, now);
        let sign = match &sign_csr {
            Some(csr) => {
                Some(self.issue(CertClass::CardSign, csr, req.holder, now, not_after, rng)?)
            }
            None => None,
        };
        let auth = self.issue(
            CertClass::CardAuth,
            &auth_csr,
            req.holder,
            now,
            not_after,
            rng,
        )?;
        Ok(IssuedCard { sign, auth })
    }

    /// Issues one end-entity certificate of `class` for a checked CSR, with a
    /// fresh random serial, capped at `not_after`.
    pub fn issue(
        &self,
        class: CertClass,
        csr: &CheckedCsr,
        holder: &BasicFour,
        now: Timestamp,
        not_after: Timestamp,
        rng: &mut dyn RandomSource,
    ) -> Result<IssuedCertificate, CaError> {
        let serial = Serial::random(rng).map_err(|_| CaError::Random)?;
        let shard = serial.shard(self.config.crl_shards);
        if not_after <= now {
            return Err(CaError::BadValidity);
        }
        let req = EndEntityRequest {
            class,
            csr,
            holder,
            serial: &serial,
            now,
            not_after,
            shard,
        };
        let der = issue_end_entity(self.root(class.root()), &self.config.points, &req)?;
        let not_before = now.replace_nanosecond(0).unwrap_or(now);
        Ok(IssuedCertificate {
            serial,
            class,
            der,
            not_before,
            not_after,
            shard,
        })
    }
}

/// Domain separation for holder proofs, so a proof signature can never be
/// mistaken for a document or login signature.
pub const HOLDER_PROOF_CONTEXT: &[u8] = b"shomei/holder-proof/v1";

/// Largest certificate accepted inside a proof.
const MAX_PROOF_CERT: usize = 16 * 1024;

/// The bytes a holder's card signs to ask for `action` on `target`, bound to
/// a single-use `challenge` from the authority:
/// `CONTEXT 0x00 action 0x00 SERIAL-HEX 0x00 challenge`.
pub fn holder_proof_message(action: &str, target: &Serial, challenge: &[u8]) -> Vec<u8> {
    let mut m =
        Vec::with_capacity(HOLDER_PROOF_CONTEXT.len() + action.len() + 48 + challenge.len());
    m.extend_from_slice(HOLDER_PROOF_CONTEXT);
    m.push(0);
    m.extend_from_slice(action.as_bytes());
    m.push(0);
    m.extend_from_slice(target.to_hex().as_bytes());
    m.push(0);
    m.extend_from_slice(challenge);
    m
}

/// The bytes a holder's card signs to ask for `action` (e.g. `wipe`) on
/// the phone `device_id`: `CONTEXT 0x00 action 0x00 "device:" device_id 0x00
/// challenge` — the holder-proof shape, with the device in the place of a
/// serial (a serial is hex, so the two can never collide).
pub fn device_proof_message(action: &str, device_id: &str, challenge: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(
        HOLDER_PROOF_CONTEXT.len() + action.len() + device_id.len() + 12 + challenge.len(),
    );
    m.extend_from_slice(HOLDER_PROOF_CONTEXT);
    m.push(0);
    m.extend_from_slice(action.as_bytes());
    m.push(0);
    m.extend_from_slice(b"device:");
    m.extend_from_slice(device_id.as_bytes());
    m.push(0);
    m.extend_from_slice(challenge);
    m
}

/// A holder proof whose signature verified under a certificate this
/// authority issued. The caller still checks, against the registry, that the
/// prover certificate is a live card certificate of the target's holder.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    /// Serial of the certificate whose key signed.
    pub prover: Serial,
}

impl Authority {
    /// Checks a holder proof: the certificate chains to one of our roots and
    /// its key signed `message` (RSA PKCS#1 v1.5, SHA-256).
    pub fn check_holder_proof(
        &self,
        prover_cert_der: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<VerifiedProof, CaError> {
        use der::Decode;
        if prover_cert_der.len() > MAX_PROOF_CERT {
            return Err(CaError::BadProof("certificate too large"));
        }
        let issued = [Root::Sign, Root::Auth].iter().any(|r| {
            shomei_pki::cms::check_issued_by(prover_cert_der, self.root(*r).cert_der()).is_ok()
        });
        if !issued {
            return Err(CaError::BadProof(
                "the certificate was not issued by this authority",
            ));
        }
        let cert = x509_cert::Certificate::from_der(prover_cert_der)
            .map_err(|_| CaError::BadProof("malformed certificate"))?;
        let spki = shomei_pki::csr::certificate_spki(prover_cert_der)?;
        shomei_pki::csr::verify_rsa_sha256(&spki, message, signature)
            .map_err(|_| CaError::BadProof("the signature does not verify"))?;
        let prover = Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())
            .map_err(|_| CaError::BadProof("bad serial"))?;
        Ok(VerifiedProof { prover })
    }

    /// A replacement certificate for a renewal: same class, fresh key from a
    /// checked CSR, new validity (card classes: the holder's 5th birthday
    /// after `now`).
    pub fn renew(
        &self,
        class: CertClass,
        csr_der: &[u8],
        holder: &BasicFour,
        now: Timestamp,
        rng: &mut dyn RandomSource,
    ) -> Result<IssuedCertificate, CaError> {
        if class.carries_basic_four() && holder.birth_date().age_on(now.date()) < SIGNING_MIN_AGE {
            return Err(CaError::MinorCannotSign);
        }
        let csr = check_csr(csr_der)?;
        self.issue(class, &csr, holder, now, card_not_after(holder, now), rng)
    }
}

/// Whether a credential in `status` may still be used to prove something.
pub fn usable(status: CertStatus) -> bool {
    status == CertStatus::Active
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shomei_core::{Sex, SignError};
    use shomei_pki::RsaSigner;
    use shomei_pki::csr::build_csr;
    use time::macros::datetime;

    use super::*;

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);

    /// Deterministic randomness for tests.
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
                RootCa::create(
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

    fn holder(birth: &str) -> BasicFour {
        BasicFour::new("山田 花子", "東京都", birth.parse().unwrap(), Sex::Female).unwrap()
    }

    #[test]
    fn adult_gets_both_certificates_with_distinct_random_serials() {
        let a = authority();
        let (k1, k2) = (
            RsaSigner::generate().unwrap(),
            RsaSigner::generate().unwrap(),
        );
        let (c1, c2) = (build_csr(&k1, "s").unwrap(), build_csr(&k2, "a").unwrap());
        let h = holder("1990-04-01");
        let card = a
            .enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: Some(&c1),
                    auth_csr: &c2,
                },
                NOW,
                &mut Counter(0),
            )
            .unwrap();
        let sign = card.sign.unwrap();
        assert_ne!(sign.serial, card.auth.serial);
        assert!(sign.serial.as_bytes().len() >= 9, "at least 64 random bits");
        assert_eq!(sign.not_after, datetime!(2031-04-01 14:59:59 UTC));
        assert_eq!(sign.shard, sign.serial.shard(4));
    }

    #[test]
    fn minor_gets_no_signing_certificate() {
        let a = authority();
        let k = RsaSigner::generate().unwrap();
        let c = build_csr(&k, "a").unwrap();
        let h = holder("2015-01-01");
        assert_eq!(
            a.enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: Some(&c),
                    auth_csr: &c
                },
                NOW,
                &mut Counter(0)
            )
            .unwrap_err(),
            CaError::MinorCannotSign
        );
        let card = a
            .enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: None,
                    auth_csr: &c,
                },
                NOW,
                &mut Counter(0),
            )
            .unwrap();
        assert!(card.sign.is_none());
    }

    #[test]
    fn holder_proof_checks_issuer_and_signature() {
        let a = authority();
        let (k1, k2) = (
            RsaSigner::generate().unwrap(),
            RsaSigner::generate().unwrap(),
        );
        let (c1, c2) = (build_csr(&k1, "s").unwrap(), build_csr(&k2, "a").unwrap());
        let h = holder("1990-04-01");
        let card = a
            .enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: Some(&c1),
                    auth_csr: &c2,
                },
                NOW,
                &mut Counter(0),
            )
            .unwrap();
        let target = card.sign.as_ref().unwrap().serial.clone();
        let msg = holder_proof_message("suspend", &target, b"challenge");
        let sig = shomei_core::Signer::sign(&k2, &msg).unwrap();
        let ok = a.check_holder_proof(&card.auth.der, &msg, &sig).unwrap();
        assert_eq!(ok.prover, card.auth.serial);
        // Signed by another key, or for another action: refused.
        let other = shomei_core::Signer::sign(&k1, &msg).unwrap();
        assert_eq!(
            a.check_holder_proof(&card.auth.der, &msg, &other)
                .unwrap_err(),
            CaError::BadProof("the signature does not verify")
        );
        let msg2 = holder_proof_message("revoke", &target, b"challenge");
        assert!(a.check_holder_proof(&card.auth.der, &msg2, &sig).is_err());
        // A certificate from another authority: refused.
        let b = authority();
        let card_b = b
            .enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: None,
                    auth_csr: &c2,
                },
                NOW,
                &mut Counter(9),
            )
            .unwrap();
        assert_eq!(
            a.check_holder_proof(&card_b.auth.der, &msg, &sig)
                .unwrap_err(),
            CaError::BadProof("the certificate was not issued by this authority")
        );
        assert!(a.check_holder_proof(b"junk", &msg, &sig).is_err());
    }

    #[test]
    fn same_key_for_both_is_refused_and_bad_csr_is_typed() {
        let a = authority();
        let k = RsaSigner::generate().unwrap();
        let c = build_csr(&k, "a").unwrap();
        let h = holder("1990-04-01");
        assert_eq!(
            a.enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: Some(&c),
                    auth_csr: &c
                },
                NOW,
                &mut Counter(0)
            )
            .unwrap_err(),
            CaError::SameKeyTwice
        );
        assert!(matches!(
            a.enrol(
                &EnrolRequest {
                    holder: &h,
                    sign_csr: None,
                    auth_csr: b"junk"
                },
                NOW,
                &mut Counter(0)
            ),
            Err(CaError::Pki(PkiError::Malformed { .. }))
        ));
    }
}
