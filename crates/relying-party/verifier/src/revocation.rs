//! Revocation: a [`ValidatedCert`] becomes a [`CheckedCert`] through an OCSP
//! response (with the request's nonce) or a verified, current CRL shard.
//! Sans-IO: the caller fetches the bytes (the adapter does HTTP).

use std::collections::HashMap;

use const_oid::db::rfc5280;
use der::Decode;
use shomei_core::{RevocationReason, Serial, Timestamp};
use shomei_pki::ocsp::{CertIdHash, CertState};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

use crate::VerifyError;
use crate::cert::{ValidatedCert, asn1_time};

/// Largest CRL accepted (bytes): a shard of a million-entry CRL split 16
/// ways is about 2.5 MB.
pub const MAX_CRL_LEN: usize = 32 * 1024 * 1024;
/// Clock skew allowed between us and the responder.
pub const SKEW: time::Duration = time::Duration::minutes(5);

/// A certificate's revocation status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Not revoked nor suspended (when checked).
    Good,
    /// Revoked, with the reason.
    Revoked {
        /// RFC 5280 reason.
        reason: RevocationReason,
        /// revocationTime.
        at: Timestamp,
    },
    /// On hold (certificateHold).
    Suspended {
        /// Since when.
        at: Timestamp,
    },
    /// The responder does not know it.
    Unknown,
    /// No revocation source was consulted (real JPKI roots: J-LIS serves
    /// CRLs and OCSP to registered verifiers only).
    NotChecked,
}

impl CertStatus {
    /// `good`, `revoked`, `suspended`, `unknown`, `not_checked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Revoked { .. } => "revoked",
            Self::Suspended { .. } => "suspended",
            Self::Unknown => "unknown",
            Self::NotChecked => "not_checked",
        }
    }

    /// The status as an error, unless good.
    pub fn require_good(self) -> Result<(), VerifyError> {
        match self {
            Self::Good => Ok(()),
            Self::Revoked { reason, .. } => Err(VerifyError::Revoked {
                reason: reason.as_str(),
            }),
            Self::Suspended { .. } => Err(VerifyError::Suspended),
            Self::Unknown => Err(VerifyError::UnknownCertificate),
            Self::NotChecked => Err(VerifyError::StatusNotChecked),
        }
    }

    fn from_state(state: CertState) -> Self {
        match state {
            CertState::Good => Self::Good,
            CertState::Revoked {
                reason: RevocationReason::CertificateHold,
                at,
            } => Self::Suspended { at },
            CertState::Revoked { at, reason } => Self::Revoked { reason, at },
            CertState::Unknown => Self::Unknown,
        }
    }
}

/// How the status was learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// A signed OCSP response carrying our nonce.
    Ocsp,
    /// A signed, current CRL shard.
    Crl,
    /// Nothing consulted.
    NotChecked,
}

/// Proof that a validated certificate's status was established (or
/// explicitly not checked). Made only by [`check_ocsp`], [`check_crl`] and
/// [`not_checked`].
#[derive(Clone, Debug)]
pub struct CheckedCert {
    cert: ValidatedCert,
    status: CertStatus,
    source: StatusSource,
    /// Until when the status may be reused (OCSP/CRL nextUpdate).
    fresh_until: Option<Timestamp>,
}

impl CheckedCert {
    /// The validated certificate.
    pub fn cert(&self) -> &ValidatedCert {
        &self.cert
    }

    /// The status.
    pub fn status(&self) -> CertStatus {
        self.status
    }

    /// Where it came from.
    pub fn source(&self) -> StatusSource {
        self.source
    }

    /// Until when the status may be reused without asking again.
    pub fn fresh_until(&self) -> Option<Timestamp> {
        self.fresh_until
    }
}

/// A fresh OCSP request for `cert` (SHA-256 CertID) carrying `nonce`
/// (RFC 8954: 32 random octets recommended).
pub fn ocsp_request(cert: &ValidatedCert, nonce: &[u8]) -> Result<Vec<u8>, VerifyError> {
    shomei_pki::ocsp::build_request(
        cert.der(),
        cert.issuer_der(),
        CertIdHash::Sha256,
        Some(nonce),
    )
    .map_err(|e| VerifyError::from_pki("OCSP request", e))
}

/// Checks an OCSP response for `cert`: signed by the issuing root or its
/// delegated responder, about this serial, current at `now`, and — when
/// `nonce` is given — echoing it.
pub fn check_ocsp(
    cert: ValidatedCert,
    response: &[u8],
    nonce: Option<&[u8]>,
    now: Timestamp,
) -> Result<CheckedCert, VerifyError> {
    let summary = shomei_pki::ocsp::parse_response(response, cert.issuer_der(), now).map_err(
        |e| match e {
            shomei_pki::PkiError::BadSignature { .. } => VerifyError::BadSignature {
                what: "OCSP response",
            },
            other => VerifyError::from_pki("OCSP response", other),
        },
    )?;
    if let Some(n) = nonce
        && summary.nonce.as_deref() != Some(n)
    {
        return Err(VerifyError::OcspMismatch("the nonce does not match"));
    }
    let single = summary
        .status_of(cert.serial())
        .ok_or(VerifyError::OcspMismatch("no status for this certificate"))?;
    if !single.is_current(now, SKEW) {
        return Err(VerifyError::OcspMismatch(
            "the status is outside thisUpdate..nextUpdate",
        ));
    }
    Ok(CheckedCert {
        status: CertStatus::from_state(single.state),
        source: StatusSource::Ocsp,
        fresh_until: single.next_update,
        cert,
    })
}

/// Marks the status as not checked (for roots without a revocation source;
/// callers decide whether that is acceptable).
pub fn not_checked(cert: ValidatedCert) -> CheckedCert {
    CheckedCert {
        cert,
        status: CertStatus::NotChecked,
        source: StatusSource::NotChecked,
        fresh_until: None,
    }
}

/// A CRL whose signature was verified against a root: the index of its
/// entries, for fast lookups from a warm cache.
#[derive(Clone, Debug)]
pub struct VerifiedCrl {
    issuer_der: Vec<u8>,
    idp_uri: Option<String>,
    crl_number: Option<u64>,
    this_update: Timestamp,
    next_update: Timestamp,
    revoked: HashMap<Vec<u8>, (RevocationReason, Timestamp)>,
}

impl VerifiedCrl {
    /// Verifies a DER CRL issued by `issuer_der` (a root certificate, DER):
    /// signature, nextUpdate present, entries indexed. Expiry is checked
    /// at use ([`check_crl`]), so a cache can hold it until then.
    pub fn parse(der: &[u8], issuer_der: &[u8]) -> Result<Self, VerifyError> {
        if der.len() > MAX_CRL_LEN {
            return Err(VerifyError::malformed("CRL", "longer than 32 MiB"));
        }
        let bad = |e: der::Error| VerifyError::malformed("CRL", e);
        let issuer = shomei_pki::cms::CertView::parse(issuer_der)
            .map_err(|e| VerifyError::from_pki("CRL issuer", e))?;
        let crl = CertificateList::from_der(der).map_err(bad)?;
        let tbs = &crl.tbs_cert_list;
        let tbs_der = der::Encode::to_der(tbs).map_err(bad)?;
        let name_der = der::Encode::to_der(&tbs.issuer).map_err(bad)?;
        if name_der != issuer.subject {
            return Err(VerifyError::CrlScope("another issuer's CRL"));
        }
        let signature = crl
            .signature
            .as_bytes()
            .ok_or_else(|| VerifyError::malformed("CRL", "signature has unused bits"))?;
        shomei_pki::cms::verify_signature(
            &issuer.spki,
            crl.signature_algorithm.oid,
            &tbs_der,
            signature,
            "CRL",
        )
        .map_err(|e| match e {
            shomei_pki::PkiError::BadSignature { .. } => VerifyError::BadSignature { what: "CRL" },
            other => VerifyError::from_pki("CRL", other),
        })?;
        let mut idp_uri = None;
        let mut crl_number = None;
        for ext in tbs.crl_extensions.iter().flatten() {
            match ext.extn_id {
                rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT => {
                    let idp = x509_cert::ext::pkix::crl::IssuingDistributionPoint::from_der(
                        ext.extn_value.as_bytes(),
                    )
                    .map_err(bad)?;
                    if let Some(DistributionPointName::FullName(names)) = idp.distribution_point {
                        idp_uri = names.into_iter().find_map(|n| match n {
                            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
                            _ => None,
                        });
                    }
                }
                rfc5280::ID_CE_CRL_NUMBER => {
                    let n = der::asn1::Uint::from_der(ext.extn_value.as_bytes()).map_err(bad)?;
                    let b = n.as_bytes();
                    if b.len() <= 8 {
                        let mut buf = [0u8; 8];
                        buf[8 - b.len()..].copy_from_slice(b);
                        crl_number = Some(u64::from_be_bytes(buf));
                    }
                }
                other if ext.critical => {
                    return Err(VerifyError::UnknownCriticalExtension(other.to_string()));
                }
                _ => {}
            }
        }
        let next_update = tbs
            .next_update
            .map(asn1_time)
            .transpose()?
            .ok_or_else(|| VerifyError::malformed("CRL", "no nextUpdate"))?;
        let mut revoked = HashMap::new();
        for entry in tbs.revoked_certificates.iter().flatten() {
            let mut reason = RevocationReason::Unspecified;
            for ext in entry.crl_entry_extensions.iter().flatten() {
                if ext.extn_id == rfc5280::ID_CE_CRL_REASONS {
                    let code =
                        x509_cert::ext::pkix::crl::CrlReason::from_der(ext.extn_value.as_bytes())
                            .map_err(bad)?;
                    reason = RevocationReason::from_code(code as u8)
                        .unwrap_or(RevocationReason::Unspecified);
                } else if ext.critical {
                    return Err(VerifyError::UnknownCriticalExtension(
                        ext.extn_id.to_string(),
                    ));
                }
            }
            let serial = Serial::from_be_bytes(entry.serial_number.as_bytes())
                .map_err(|e| VerifyError::malformed("CRL", e))?;
            revoked.insert(
                serial.as_bytes().to_vec(),
                (reason, asn1_time(entry.revocation_date)?),
            );
        }
        Ok(Self {
            issuer_der: issuer_der.to_vec(),
            idp_uri,
            crl_number,
            this_update: asn1_time(tbs.this_update)?,
            next_update,
            revoked,
        })
    }

    /// The Issuing Distribution Point URI (the shard's URL).
    pub fn idp_uri(&self) -> Option<&str> {
        self.idp_uri.as_deref()
    }

    /// The cRLNumber.
    pub fn crl_number(&self) -> Option<u64> {
        self.crl_number
    }

    /// nextUpdate: after it the CRL is refused.
    pub fn next_update(&self) -> Timestamp {
        self.next_update
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether it lists nothing.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// Checks `cert` against a verified CRL shard: same issuer, the shard named
/// in the certificate's CRL distribution point, current at `now` (an
/// expired CRL is refused, never used as "good").
pub fn check_crl(
    cert: ValidatedCert,
    crl: &VerifiedCrl,
    now: Timestamp,
) -> Result<CheckedCert, VerifyError> {
    if crl.issuer_der != cert.issuer_der() {
        return Err(VerifyError::CrlScope("another issuer's CRL"));
    }
    match crl.idp_uri() {
        Some(uri) if cert.crl_urls().iter().any(|u| u == uri) => {}
        _ => return Err(VerifyError::CrlScope("another distribution point's shard")),
    }
    if now + SKEW < crl.this_update || now >= crl.next_update {
        return Err(VerifyError::CrlExpired);
    }
    let status = match crl.revoked.get(cert.serial().as_bytes()) {
        None => CertStatus::Good,
        Some((RevocationReason::CertificateHold, at)) => CertStatus::Suspended { at: *at },
        Some((reason, at)) => CertStatus::Revoked {
            reason: *reason,
            at: *at,
        },
    };
    Ok(CheckedCert {
        status,
        source: StatusSource::Crl,
        fresh_until: Some(crl.next_update),
        cert,
    })
}
