//! Sharded certificate revocation lists (RFC 5280 §5).
//!
//! Every end-entity certificate names one CRL shard in its CRL distribution
//! point (`{base}/crl/{class}/{shard}.crl`, see
//! [`PublicationPoints::crl_url`]); each shard is a complete, separately
//! signed CRL whose critical Issuing Distribution Point carries that same URI,
//! so a relying party can tell that the CRL it fetched covers the certificate
//! it checks (RFC 5280 §6.3.3 (b)(2)). This is the explicit sharding
//! Let's Encrypt and EJBCA's partitioned CRLs use.
//!
//! ```text
//! CertificateList  ::=  SEQUENCE  {
//!      tbsCertList          TBSCertList,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING  }
//!
//! TBSCertList  ::=  SEQUENCE  {
//!      version                 Version OPTIONAL, -- v2
//!      signature               AlgorithmIdentifier,
//!      issuer                  Name,
//!      thisUpdate              Time,
//!      nextUpdate              Time OPTIONAL,
//!      revokedCertificates     SEQUENCE OF SEQUENCE  {
//!           userCertificate         CertificateSerialNumber,
//!           revocationDate          Time,
//!           crlEntryExtensions      Extensions OPTIONAL } OPTIONAL,
//!      crlExtensions           [0]  EXPLICIT Extensions OPTIONAL }
//! ```
//!
//! Suspended certificates appear with reason `certificateHold` and leave the
//! list again when resumed.

use std::collections::HashSet;

use der::Decode;
use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope,
    KeyIdMethod, RevokedCertParams, SerialNumber,
};
use shomei_core::{CertClass, RevocationReason, Serial, Timestamp};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

use crate::PkiError;
use crate::profile::{PublicationPoints, RootCa};

/// One line of a CRL: a revoked (or, with [`RevocationReason::CertificateHold`],
/// suspended) certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial.
    pub serial: Serial,
    /// When it was revoked or suspended (`revocationDate`).
    pub at: Timestamp,
    /// Why (`reasonCode` entry extension; omitted for `unspecified`, as
    /// RFC 5280 §5.3.1 recommends).
    pub reason: RevocationReason,
}

/// Builds and signs the CRL for one shard of one certificate class.
///
/// The result is a DER CRL v2 signed by the class's root (`ca` must be that
/// root) with: AKI (the root's SKI), CRL number `crl_number`, thisUpdate,
/// nextUpdate, and a critical Issuing Distribution Point whose fullName is
/// `points.crl_url(class, shard)` — byte-for-byte the URI written into the
/// certificates' CDP — with `onlyContainsUserCerts`. Each entry carries its
/// reasonCode (none for `unspecified`).
///
/// Refused: a root that does not issue `class`, `next_update <= this_update`,
/// and duplicate serials. Times are truncated to whole seconds.
#[allow(clippy::too_many_arguments)]
pub fn build_crl(
    ca: &RootCa,
    points: &PublicationPoints,
    class: CertClass,
    shard: u32,
    crl_number: u64,
    this_update: Timestamp,
    next_update: Timestamp,
    entries: &[RevokedEntry],
) -> Result<Vec<u8>, PkiError> {
    if ca.root() != class.root() {
        return Err(PkiError::Build(format!(
            "{} CRLs are signed by the {} root, not the {} root",
            class.as_str(),
            class.root().as_str(),
            ca.root().as_str()
        )));
    }
    let this_update = whole_seconds(this_update);
    let next_update = whole_seconds(next_update);
    if next_update <= this_update {
        return Err(PkiError::Build(
            "CRL nextUpdate must lie after thisUpdate".into(),
        ));
    }
    let mut seen = HashSet::with_capacity(entries.len());
    let mut revoked_certs = Vec::with_capacity(entries.len());
    for e in entries {
        if !seen.insert(&e.serial) {
            return Err(PkiError::Build(format!(
                "serial {} is listed twice on the CRL",
                e.serial
            )));
        }
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(e.serial.as_bytes()),
            revocation_time: whole_seconds(e.at),
            reason_code: Some(rcgen_reason(e.reason)),
            invalidity_date: None,
        });
    }
    // The AKI must equal the root's SKI; take it from the certificate so a
    // loaded root whose SKI was computed differently still matches.
    let key_identifier_method = match subject_key_identifier(ca.cert_der())? {
        Some(ski) => KeyIdMethod::PreSpecified(ski),
        None => KeyIdMethod::Sha256,
    };
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(crl_number),
        issuing_distribution_point: Some(CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec![points.crl_url(class, shard)],
            },
            scope: Some(CrlScope::UserCertsOnly),
        }),
        revoked_certs,
        key_identifier_method,
    };
    let crl = params
        .signed_by(&ca.issuer())
        .map_err(|e| PkiError::Build(format!("CRL: {e}")))?;
    Ok(crl.der().to_vec())
}

pub(crate) fn rcgen_reason(r: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match r {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
    }
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// The subjectKeyIdentifier of a certificate, if it has one.
pub(crate) fn subject_key_identifier(cert_der: &[u8]) -> Result<Option<Vec<u8>>, PkiError> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| PkiError::malformed("certificate", e))?;
    let Some(exts) = &cert.tbs_certificate.extensions else {
        return Ok(None);
    };
    for ext in exts {
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER {
            let ski = der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
                .map_err(|e| PkiError::malformed("certificate", e))?;
            return Ok(Some(ski.as_bytes().to_vec()));
        }
    }
    Ok(None)
}

/// Synthetic revocations for benchmarks and load tests: `total` entries with
/// random-looking 72-bit serials (the shape [`Serial::random`] draws),
/// grouped by `serial.shard(shards)`, revoked at `at`; every tenth is a
/// suspension (`certificateHold`), the rest `keyCompromise`. Deterministic.
/// Feed each group to [`build_crl`] and time it from the caller.
pub fn synthetic_revocations(total: u64, shards: u32, at: Timestamp) -> Vec<Vec<RevokedEntry>> {
    let shards = shards.max(1);
    let mut out: Vec<Vec<RevokedEntry>> = vec![Vec::new(); shards as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..total {
        // xorshift64: never 0, so every serial is distinct within 2^64 - 1 draws.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = [0u8; 9];
        b[0] = 0x40;
        b[1..].copy_from_slice(&x.to_be_bytes());
        let Ok(serial) = Serial::from_be_bytes(&b) else {
            continue;
        };
        let reason = if i % 10 == 0 {
            RevocationReason::CertificateHold
        } else {
            RevocationReason::KeyCompromise
        };
        if let Some(group) = out.get_mut(serial.shard(shards) as usize) {
            group.push(RevokedEntry { serial, at, reason });
        }
    }
    out
}

/// What [`parse_crl_summary`] reads from a CRL (for tests and tools; it does
/// not check the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlSummary {
    /// The cRLNumber extension (refused if absent or wider than 64 bits).
    pub crl_number: u64,
    /// thisUpdate.
    pub this_update: Timestamp,
    /// nextUpdate, if present.
    pub next_update: Option<Timestamp>,
    /// How many revokedCertificates entries.
    pub entries: usize,
    /// The first fullName URI of the Issuing Distribution Point, if any.
    pub idp_uri: Option<String>,
}

/// Reads the headline fields of a DER CRL. Decoding a CRL is linear in its
/// size; callers feeding it untrusted data should bound the size first.
pub fn parse_crl_summary(der: &[u8]) -> Result<CrlSummary, PkiError> {
    let crl = CertificateList::from_der(der).map_err(|e| PkiError::malformed("CRL", e))?;
    let tbs = &crl.tbs_cert_list;
    let mut crl_number = None;
    let mut idp_uri = None;
    for ext in tbs.crl_extensions.iter().flatten() {
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER {
            let n = der::asn1::Uint::from_der(ext.extn_value.as_bytes())
                .map_err(|e| PkiError::malformed("CRL", e))?;
            let bytes = n.as_bytes();
            if bytes.len() > 8 {
                return Err(PkiError::malformed("CRL", "CRL number wider than 64 bits"));
            }
            let mut buf = [0u8; 8];
            buf[8 - bytes.len()..].copy_from_slice(bytes);
            crl_number = Some(u64::from_be_bytes(buf));
        } else if ext.extn_id == const_oid::db::rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT {
            let idp = IssuingDistributionPoint::from_der(ext.extn_value.as_bytes())
                .map_err(|e| PkiError::malformed("CRL", e))?;
            if let Some(DistributionPointName::FullName(names)) = idp.distribution_point {
                idp_uri = names.into_iter().find_map(|n| match n {
                    GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
                    _ => None,
                });
            }
        }
    }
    Ok(CrlSummary {
        crl_number: crl_number.ok_or_else(|| PkiError::malformed("CRL", "no CRL number"))?,
        this_update: x509_time(tbs.this_update)?,
        next_update: tbs.next_update.map(x509_time).transpose()?,
        entries: tbs.revoked_certificates.as_ref().map_or(0, Vec::len),
        idp_uri,
    })
}

fn x509_time(t: x509_cert::time::Time) -> Result<Timestamp, PkiError> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| PkiError::malformed("CRL", "time out of range"))?;
    Timestamp::from_unix_timestamp(secs)
        .map_err(|_| PkiError::malformed("CRL", "time out of range"))
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::Arc;

    use shomei_core::{BasicFour, Root, Signer};
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::RsaSigner;
    use crate::profile::{EndEntityRequest, card_not_after, issue_end_entity};

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);
    const BASE: &str = "http://127.0.0.1:8700";

    fn root(root: Root) -> RootCa {
        RootCa::create(
            root,
            "Shomei Test Authority",
            Arc::new(RsaSigner::generate().unwrap()),
            &Serial::from_be_bytes(&[root as u8 + 1]).unwrap(),
            NOW,
        )
        .unwrap()
    }

    fn issue(
        ca: &RootCa,
        key: &dyn Signer,
        serial: &Serial,
        class: CertClass,
        shard: u32,
    ) -> Vec<u8> {
        let csr = crate::csr::check_csr(&crate::csr::build_csr(key, "x").unwrap()).unwrap();
        let h = BasicFour::new(
            "山田 太郎",
            "東京都千代田区千代田1-1",
            "1990-04-01".parse().unwrap(),
            shomei_core::Sex::Male,
        )
        .unwrap();
        let req = EndEntityRequest {
            class,
            csr: &csr,
            holder: &h,
            serial,
            now: NOW,
            not_after: card_not_after(&h, NOW),
            shard,
        };
        issue_end_entity(ca, &PublicationPoints::new(BASE), &req).unwrap()
    }

    fn pem(kind: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {kind}-----\n{}\n-----END {kind}-----\n",
            lines.join("\n")
        )
    }

    fn run(cmd: &mut Command) -> (bool, String) {
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn entry(serial: &Serial, reason: RevocationReason) -> RevokedEntry {
        RevokedEntry {
            serial: serial.clone(),
            at: NOW + Duration::minutes(10),
            reason,
        }
    }

    #[test]
    fn openssl_and_pyca_accept_the_crl_and_openssl_rejects_the_revoked_cert() {
        let ca = root(Root::Sign);
        let points = PublicationPoints::new(BASE);
        let key = RsaSigner::generate().unwrap();
        let good_serial = Serial::from_be_bytes(&[0x40, 1, 2, 3, 4, 5, 6, 7, 3]).unwrap();
        let bad_serial = Serial::from_be_bytes(&[0x40, 9, 9, 9, 9, 9, 9, 9, 3]).unwrap();
        let held_serial = Serial::from_be_bytes(&[0x40, 7, 7, 7, 7, 7, 7, 7, 3]).unwrap();
        let good = issue(&ca, &key, &good_serial, CertClass::CardSign, 3);
        let bad = issue(&ca, &key, &bad_serial, CertClass::CardSign, 3);
        let crl = build_crl(
            &ca,
            &points,
            CertClass::CardSign,
            3,
            42,
            NOW + Duration::hours(1),
            NOW + Duration::hours(25),
            &[
                entry(&bad_serial, RevocationReason::KeyCompromise),
                entry(&held_serial, RevocationReason::CertificateHold),
            ],
        )
        .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let p = |f: &str| dir.path().join(f);
        std::fs::write(p("crl.der"), &crl).unwrap();
        std::fs::write(p("crl.pem"), pem("X509 CRL", &crl)).unwrap();
        std::fs::write(p("ca.pem"), pem("CERTIFICATE", ca.cert_der())).unwrap();
        std::fs::write(p("ca.der"), ca.cert_der()).unwrap();
        std::fs::write(p("good.pem"), pem("CERTIFICATE", &good)).unwrap();
        std::fs::write(p("bad.pem"), pem("CERTIFICATE", &bad)).unwrap();

        // openssl crl: signature, IDP, CRL number, reasons.
        let (ok, text) = run(Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(p("crl.der"))
            .arg("-CAfile")
            .arg(p("ca.pem")));
        assert!(ok, "{text}");
        assert!(text.contains("verify OK"), "{text}");
        assert!(
            text.contains("X509v3 Issuing Distribution Point: critical"),
            "{text}"
        );
        assert!(
            text.contains("URI:http://127.0.0.1:8700/crl/card-sign/3.crl"),
            "{text}"
        );
        assert!(text.contains("Only User Certificates"), "{text}");
        assert!(
            text.contains("X509v3 CRL Number: \n                42"),
            "{text}"
        );
        assert!(text.contains("Key Compromise"), "{text}");
        assert!(text.contains("Certificate Hold"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");

        // openssl verify with CRL check (the IDP must match the cert's CDP).
        let verify = |cert: &str| {
            run(Command::new("openssl")
                .args(["verify", "-attime"])
                .arg((NOW + Duration::hours(2)).unix_timestamp().to_string())
                .arg("-crl_check")
                .arg("-CRLfile")
                .arg(p("crl.pem"))
                .arg("-CAfile")
                .arg(p("ca.pem"))
                .arg(p(cert)))
        };
        let (ok, text) = verify("good.pem");
        assert!(ok && text.contains("OK"), "{text}");
        let (ok, text) = verify("bad.pem");
        assert!(!ok && text.contains("certificate revoked"), "{text}");

        // pyca/cryptography.
        let script = r#"
import sys
from cryptography import x509
ca = x509.load_der_x509_certificate(open(sys.argv[1], 'rb').read())
crl = x509.load_der_x509_crl(open(sys.argv[2], 'rb').read())
assert crl.is_signature_valid(ca.public_key()), 'signature'
idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
assert idp.critical
assert idp.value.only_contains_user_certs
print('IDP', idp.value.full_name[0].value)
r = crl.get_revoked_certificate_by_serial_number(int(sys.argv[3], 16))
print('REASON', r.extensions.get_extension_for_class(x509.CRLReason).value.reason.name)
print('NUMBER', crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
print('OK')
"#;
        let (ok, text) = run(Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(p("ca.der"))
            .arg(p("crl.der"))
            .arg(bad_serial.to_hex()));
        assert!(ok, "{text}");
        assert!(
            text.contains("IDP http://127.0.0.1:8700/crl/card-sign/3.crl"),
            "{text}"
        );
        assert!(text.contains("REASON key_compromise"), "{text}");
        assert!(text.contains("NUMBER 42") && text.contains("OK"), "{text}");

        let summary = parse_crl_summary(&crl).unwrap();
        assert_eq!(summary.crl_number, 42);
        assert_eq!(summary.entries, 2);
        assert_eq!(summary.this_update, NOW + Duration::hours(1));
        assert_eq!(summary.next_update, Some(NOW + Duration::hours(25)));
        assert_eq!(
            summary.idp_uri.as_deref(),
            Some("http://127.0.0.1:8700/crl/card-sign/3.crl")
        );
    }

    #[test]
    fn crl_for_wrong_root_bad_times_and_duplicates_are_refused() {
        let ca = root(Root::Auth);
        let points = PublicationPoints::new(BASE);
        let s = Serial::from_be_bytes(&[5]).unwrap();
        let e = [entry(&s, RevocationReason::Superseded)];
        let later = NOW + Duration::hours(1);
        assert!(matches!(
            build_crl(&ca, &points, CertClass::CardSign, 0, 1, NOW, later, &e),
            Err(PkiError::Build(_))
        ));
        assert!(matches!(
            build_crl(&ca, &points, CertClass::CardAuth, 0, 1, NOW, NOW, &e),
            Err(PkiError::Build(_))
        ));
        let dup = [e[0].clone(), e[0].clone()];
        assert!(matches!(
            build_crl(&ca, &points, CertClass::PhoneAuth, 0, 1, NOW, later, &dup),
            Err(PkiError::Build(_))
        ));
        // Empty CRLs are fine (a shard with nothing revoked yet).
        let empty = build_crl(&ca, &points, CertClass::PhoneAuth, 7, 0, NOW, later, &[]).unwrap();
        let s = parse_crl_summary(&empty).unwrap();
        assert_eq!((s.entries, s.crl_number), (0, 0));
        assert_eq!(
            s.idp_uri.as_deref(),
            Some("http://127.0.0.1:8700/crl/phone-auth/7.crl")
        );
        assert!(parse_crl_summary(&empty[..empty.len() - 1]).is_err());
        assert!(parse_crl_summary(b"").is_err());
    }

    /// Size and time of 1,000,000 revoked entries spread over 64 shards.
    /// Run with `cargo test -p shomei-pki --release -- --ignored --nocapture crl_million`.
    #[test]
    #[ignore = "slow measurement; prints figures"]
    fn crl_million_entries_size_and_time() {
        const TOTAL: u64 = 1_000_000;
        const SHARDS: u32 = 64;
        let ca = root(Root::Sign);
        let points = PublicationPoints::new(BASE);
        let shards = synthetic_revocations(TOTAL, SHARDS, NOW);
        assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), TOTAL as usize);
        let start = std::time::Instant::now();
        let mut bytes = 0usize;
        for (i, entries) in shards.iter().enumerate() {
            let crl = build_crl(
                &ca,
                &points,
                CertClass::CardSign,
                i as u32,
                1,
                NOW,
                NOW + Duration::days(1),
                entries,
            )
            .unwrap();
            bytes += crl.len();
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        println!(
            "CRL: {TOTAL} entries over {SHARDS} shards: {bytes} bytes ({:.1} B/entry), \
             build+sign {ms:.0} ms ({:.3} µs/entry)",
            bytes as f64 / TOTAL as f64,
            ms * 1000.0 / TOTAL as f64
        );
        let all = shards.concat();
        let start = std::time::Instant::now();
        let one = build_crl(
            &ca,
            &points,
            CertClass::CardSign,
            0,
            1,
            NOW,
            NOW + Duration::days(1),
            &all,
        )
        .unwrap();
        println!(
            "CRL: one unsharded CRL of {TOTAL} entries: {} bytes, build+sign {:.0} ms",
            one.len(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        let start = std::time::Instant::now();
        let s = parse_crl_summary(&one).unwrap();
        assert_eq!(s.entries, all.len());
        println!(
            "CRL: parse_crl_summary of it: {:.0} ms",
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
}
