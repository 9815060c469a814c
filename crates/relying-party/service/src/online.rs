//! The verifier with its IO: trust anchors fetched from the authority,
//! OCSP over HTTP with a fresh nonce, CRL shards fetched and kept warm,
//! validated chains cached, and the authority's linkage service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use shomei_core::Timestamp;
use shomei_verifier::{
    CertStatus, CheckedCert, Purpose, RootSource, StatusSource, TrustStore, ValidatedCert,
    VerifiedCrl, VerifyError,
};

use crate::ServiceError;

/// Where statuses come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusMode {
    /// OCSP with a fresh nonce for every check (CRL shard if OCSP fails).
    #[default]
    Ocsp,
    /// The certificate's CRL shard, fetched when missing or past its
    /// nextUpdate and kept in memory (a warm cache answers without IO).
    Crl,
}

/// Most validated certificates kept (the cache is emptied when full).
const CHAIN_CACHE_MAX: usize = 100_000;

/// A clock (injected so tests can move time).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(time::OffsetDateTime::now_utc)
}

/// What the linkage service says about a certificate.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Linkage {
    /// The holder's pseudonym for this relying party.
    pub holder: String,
    /// The newest certificate that replaced this one, if any.
    #[serde(default)]
    pub successor: Option<String>,
}

/// Where the authority's trust anchors come from.
#[derive(Clone, Debug, Default)]
pub enum Anchors {
    /// Fetched from the authority (`/ca/sign.pem`, `/ca/auth.pem`) when
    /// connecting: trust on first use.
    #[default]
    Fetch,
    /// Given by the operator: the only anchors for the authority's
    /// certificates (made by [`Anchors::pinned`]).
    Pinned(TrustStore),
}

impl Anchors {
    /// Pins the authority's signing and authentication roots (PEM text,
    /// every `CERTIFICATE` block of each).
    pub fn pinned(sign_pem: &str, auth_pem: &str) -> Result<Self, VerifyError> {
        let mut store = TrustStore::new();
        store.add_pem(Purpose::Signing, sign_pem, RootSource::Shomei)?;
        store.add_pem(Purpose::Authentication, auth_pem, RootSource::Shomei)?;
        Ok(Self::Pinned(store))
    }
}

/// Online verification against one authority.
pub struct OnlineVerifier {
    authority: String,
    store: TrustStore,
    http: reqwest::Client,
    mode: StatusMode,
    linkage_token: Option<String>,
    /// The authority's anchors were given by the operator, not fetched.
    pinned: bool,
    crls: Mutex<HashMap<String, Arc<VerifiedCrl>>>,
    chains: Mutex<HashMap<([u8; 32], Purpose), ValidatedCert>>,
    clock: Clock,
}

impl OnlineVerifier {
    /// Connects to one authority. Its trust anchors are either fetched
    /// from it (`/ca/sign.pem`, `/ca/auth.pem`: trust on first use) or
    /// pinned by the operator ([`Anchors::Pinned`]: nothing is fetched for
    /// trust; OCSP, CRLs and linkage still use the URL, and their answers
    /// are verified under the pinned roots). With `jpki`, the real JPKI
    /// roots are trusted too.
    pub async fn connect(
        authority: &str,
        mode: StatusMode,
        linkage_token: Option<String>,
        jpki: bool,
        anchors: Anchors,
        clock: Clock,
    ) -> Result<Self, ServiceError> {
        let authority = authority.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ServiceError::Upstream(format!("HTTP client: {e}")))?;
        let (mut store, pinned) = match anchors {
            Anchors::Pinned(store) => (store, true),
            Anchors::Fetch => {
                let mut store = TrustStore::new();
                for (purpose, path) in [
                    (Purpose::Signing, "/ca/sign.pem"),
                    (Purpose::Authentication, "/ca/auth.pem"),
                ] {
                    let url = format!("{authority}{path}");
                    let pem = get_bytes(&http, &url).await?;
                    let pem = String::from_utf8(pem)
                        .map_err(|_| ServiceError::Upstream(format!("{url}: not PEM text")))?;
                    store
                        .add_pem(purpose, &pem, RootSource::Shomei)
                        .map_err(|e| ServiceError::Upstream(format!("{url}: {e}")))?;
                }
                (store, false)
            }
        };
        if jpki {
            store.add_jpki_roots().map_err(ServiceError::Verify)?;
        }
        Ok(Self {
            authority,
            store,
            http,
            mode,
            linkage_token,
            pinned,
            crls: Mutex::new(HashMap::new()),
            chains: Mutex::new(HashMap::new()),
            clock,
        })
    }

    /// A verifier over a given trust store, without fetching anything
    /// first (tests and benchmarks; statuses still use the URLs in the
    /// certificates).
    pub fn with_store(
        authority: &str,
        store: TrustStore,
        mode: StatusMode,
        clock: Clock,
    ) -> Result<Self, ServiceError> {
        Ok(Self {
            authority: authority.trim_end_matches('/').to_owned(),
            store,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| ServiceError::Upstream(format!("HTTP client: {e}")))?,
            mode,
            linkage_token: None,
            pinned: true,
            crls: Mutex::new(HashMap::new()),
            chains: Mutex::new(HashMap::new()),
            clock,
        })
    }

    /// Puts a verified CRL shard in the cache under its distribution point
    /// URL (as a fetch would).
    pub fn insert_crl(&self, crl: VerifiedCrl) -> Result<(), ServiceError> {
        let url = crl
            .idp_uri()
            .ok_or_else(|| ServiceError::bad("crl_scope", "the CRL names no distribution point"))?
            .to_owned();
        lock(&self.crls).insert(url, Arc::new(crl));
        Ok(())
    }

    /// The authority's base URL.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The trust store.
    pub fn store(&self) -> &TrustStore {
        &self.store
    }

    /// Whether the authority's anchors were pinned by the operator (else
    /// fetched from the authority on first contact).
    pub fn anchors_pinned(&self) -> bool {
        self.pinned
    }

    /// SHA-256 fingerprints of the authority's anchors for `purpose` (not
    /// the real JPKI roots), as `openssl x509 -fingerprint -sha256` prints
    /// them: what an operator compares before pinning.
    pub fn authority_fingerprints(&self, purpose: Purpose) -> Vec<String> {
        self.store
            .anchors(purpose)
            .iter()
            .filter(|a| a.source() == RootSource::Shomei)
            .map(|a| fingerprint(a.der()))
            .collect()
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Whether linkage lookups are configured.
    pub fn has_linkage(&self) -> bool {
        self.linkage_token.is_some()
    }

    /// Validates a certificate, reusing an earlier validation of the same
    /// bytes for the same purpose (the validity window is re-checked).
    pub fn validate_cached(
        &self,
        der: &[u8],
        purpose: Purpose,
    ) -> Result<ValidatedCert, VerifyError> {
        let now = self.now();
        let key = (sha256(der), purpose);
        if let Some(v) = lock(&self.chains).get(&key).cloned() {
            v.still_valid(now)?;
            return Ok(v);
        }
        let v = shomei_verifier::validate(&self.store, der, purpose, now)?;
        let mut chains = lock(&self.chains);
        if chains.len() >= CHAIN_CACHE_MAX {
            chains.clear();
        }
        chains.insert(key, v.clone());
        Ok(v)
    }

    /// Establishes the status of a validated certificate: nothing for real
    /// JPKI roots (J-LIS serves registered verifiers only), else OCSP with a
    /// nonce or the CRL shard per the mode (OCSP falls back to the CRL when
    /// the responder cannot be reached).
    pub async fn status(&self, cert: ValidatedCert) -> Result<CheckedCert, ServiceError> {
        if cert.source() == RootSource::Jpki {
            return Ok(shomei_verifier::not_checked(cert));
        }
        match self.mode {
            StatusMode::Ocsp => match self.ocsp(cert.clone()).await {
                Err(ServiceError::Upstream(why)) => {
                    tracing::warn!(%why, "OCSP unreachable; using the CRL shard");
                    self.crl(cert).await
                }
                other => other,
            },
            StatusMode::Crl => self.crl(cert).await,
        }
    }

    async fn ocsp(&self, cert: ValidatedCert) -> Result<CheckedCert, ServiceError> {
        let url = cert
            .ocsp_url()
            .ok_or_else(|| ServiceError::Upstream("no OCSP URL in the certificate".into()))?
            .to_owned();
        let nonce = random::<32>()?;
        let req = shomei_verifier::ocsp_request(&cert, &nonce).map_err(ServiceError::Verify)?;
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/ocsp-request")
            .body(req)
            .send()
            .await
            .map_err(|e| ServiceError::Upstream(format!("OCSP {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(ServiceError::Upstream(format!(
                "OCSP {url}: HTTP {}",
                resp.status()
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ServiceError::Upstream(format!("OCSP {url}: {e}")))?;
        shomei_verifier::check_ocsp(cert, &body, Some(&nonce), self.now())
            .map_err(ServiceError::Verify)
    }

    async fn crl(&self, cert: ValidatedCert) -> Result<CheckedCert, ServiceError> {
        let now = self.now();
        let url = cert
            .crl_urls()
            .first()
            .ok_or_else(|| ServiceError::Upstream("no CRL distribution point".into()))?
            .clone();
        let cached = lock(&self.crls).get(&url).cloned();
        let crl = match cached {
            Some(c) if now < c.next_update() => c,
            _ => {
                let der = get_bytes(&self.http, &url).await?;
                let fresh = Arc::new(
                    VerifiedCrl::parse(&der, cert.issuer_der()).map_err(ServiceError::Verify)?,
                );
                lock(&self.crls).insert(url, fresh.clone());
                fresh
            }
        };
        shomei_verifier::check_crl(cert, &crl, now).map_err(ServiceError::Verify)
    }

    /// Fetches every CRL shard named by `cert` now (warming the cache).
    pub async fn warm_crl(&self, cert: &ValidatedCert) -> Result<(), ServiceError> {
        self.crl(cert.clone()).await.map(|_| ())
    }

    /// Asks the authority's linkage service about a certificate (needs a
    /// relying-party token; `None` without one).
    pub async fn linkage(&self, serial_hex: &str) -> Result<Option<Linkage>, ServiceError> {
        let Some(token) = &self.linkage_token else {
            return Ok(None);
        };
        let url = format!("{}/v1/linkage/{serial_hex}", self.authority);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| ServiceError::Upstream(format!("linkage: {e}")))?;
        if !resp.status().is_success() {
            return Err(ServiceError::Upstream(format!(
                "linkage {serial_hex}: HTTP {}",
                resp.status()
            )));
        }
        resp.json::<Linkage>()
            .await
            .map(Some)
            .map_err(|e| ServiceError::Upstream(format!("linkage: {e}")))
    }

    /// Verifies a detached CMS signature over `content`, with the signer's
    /// status: the contract's `verify signature` report.
    pub async fn verify_signature(&self, p7s: &[u8], content: &[u8]) -> SignatureReport {
        let now = self.now();
        let doc = match shomei_verifier::verify_document(&self.store, p7s, content, now) {
            Ok(d) => d,
            Err(e) => return SignatureReport::invalid(e),
        };
        let signer = doc.into_signer();
        let serial = signer.serial().to_hex();
        let kind = signer.medium();
        let holder = signer.basic_four().cloned();
        let checked = match self.status(signer).await {
            Ok(c) => c,
            Err(e) => {
                let mut r = SignatureReport::invalid_service(e);
                r.serial = Some(serial);
                r.kind = Some(kind.as_str());
                return r;
            }
        };
        let status = checked.status();
        let (status_str, status_detail) = contract_status(status);
        let error = match status.require_good() {
            Ok(()) => None,
            // Real JPKI roots: the signature and chain hold; revocation is
            // reported as not checked, which the caller may accept.
            Err(VerifyError::StatusNotChecked) => None,
            Err(e) => Some(e),
        };
        SignatureReport {
            valid: error.is_none(),
            status: status_str,
            status_detail,
            status_source: match checked.source() {
                StatusSource::Ocsp => "ocsp",
                StatusSource::Crl => "crl",
                StatusSource::NotChecked => "none",
            },
            kind: Some(kind.as_str()),
            serial: Some(serial),
            holder: holder.map(|b| HolderJson {
                name: b.name().to_owned(),
                address: b.address().to_owned(),
                birth_date: b.birth_date().to_iso(),
                sex: b.sex().code().to_string(),
            }),
            source: Some(checked.cert().source()),
            error: error.map(|e| ErrorJson {
                code: e.code(),
                message: e.to_string(),
            }),
        }
    }
}

/// The contract's `verify signature --json` object.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignatureReport {
    /// Signature, chain and status all good.
    pub valid: bool,
    /// The contract's status: `good`, `revoked`, `suspended` or `unknown`
    /// (for `unknown`, `status_detail` says why).
    pub status: &'static str,
    /// Why the status is `unknown` (absent otherwise): `not_checked` (no
    /// revocation source was consulted: a real JPKI root, verified offline,
    /// or a signature that failed before its signer's status was asked),
    /// `unknown_to_responder` (the authority's OCSP responder does not know
    /// the certificate), `unavailable` (the status could not be
    /// established: responder and CRL unreachable or their answers bad).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<&'static str>,
    /// Which source answered: `ocsp`, `crl`, or `none`.
    pub status_source: &'static str,
    /// `card` or `phone` (absent if the signer could not be validated).
    pub kind: Option<&'static str>,
    /// The signer certificate's serial (hex).
    pub serial: Option<String>,
    /// The signer's basic four.
    pub holder: Option<HolderJson>,
    /// Which root vouched (`shomei` or `jpki`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<RootSource>,
    /// Why not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorJson>,
}

impl SignatureReport {
    /// The error when the input was not a signature this verifier can read
    /// at all (`malformed` or `unsupported` CMS or certificate): the
    /// caller's bad input (HTTP 400, exit code 2), as opposed to a
    /// well-formed signature that does not verify (`valid: false`).
    pub fn bad_input(&self) -> Option<&ErrorJson> {
        self.error
            .as_ref()
            .filter(|e| matches!(e.code, "malformed" | "unsupported"))
    }

    fn invalid(e: VerifyError) -> Self {
        let (status, status_detail) = match e {
            VerifyError::Revoked { .. } => ("revoked", None),
            VerifyError::Suspended => ("suspended", None),
            _ => ("unknown", Some("not_checked")),
        };
        Self {
            valid: false,
            status,
            status_detail,
            status_source: "none",
            kind: None,
            serial: None,
            holder: None,
            source: None,
            error: Some(ErrorJson {
                code: e.code(),
                message: e.to_string(),
            }),
        }
    }

    fn invalid_service(e: ServiceError) -> Self {
        let mut r = Self::invalid(VerifyError::StatusNotChecked);
        r.status_detail = Some("unavailable");
        r.error = Some(ErrorJson {
            code: e.code(),
            message: e.to_string(),
        });
        r
    }
}

/// A status as the contract names it, with why when it is `unknown`.
fn contract_status(status: CertStatus) -> (&'static str, Option<&'static str>) {
    match status {
        CertStatus::NotChecked => ("unknown", Some("not_checked")),
        CertStatus::Unknown => ("unknown", Some("unknown_to_responder")),
        other => (other.as_str(), None),
    }
}

/// The basic four as JSON (ISO birth date, JPKI sex code).
#[derive(Clone, Debug, serde::Serialize)]
pub struct HolderJson {
    /// 氏名.
    pub name: String,
    /// 住所.
    pub address: String,
    /// ISO 8601 date.
    pub birth_date: String,
    /// `1`, `2` or `3`.
    pub sex: String,
}

/// A failure with its stable code.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ErrorJson {
    /// Stable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

async fn get_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, ServiceError> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| ServiceError::Upstream(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(ServiceError::Upstream(format!(
            "{url}: HTTP {}",
            resp.status()
        )));
    }
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| ServiceError::Upstream(format!("{url}: {e}")))
}

/// Locks, recovering the data of a poisoned mutex (no state here is left
/// half-changed by a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `N` random bytes from the OS.
pub fn random<const N: usize>() -> Result<[u8; N], ServiceError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut out = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| ServiceError::Internal("randomness failed".into()))?;
    Ok(out)
}

/// A certificate's SHA-256 fingerprint as `openssl x509 -fingerprint
/// -sha256` prints it (upper-case hex pairs joined by colons).
pub fn fingerprint(der: &[u8]) -> String {
    sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Base64url without padding.
pub fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use shomei_core::{Root, Serial};
    use shomei_pki::RsaSigner;
    use shomei_pki::profile::RootCa;
    use time::macros::datetime;

    use super::*;

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);

    fn root_pem(kind: Root) -> (Vec<u8>, String) {
        let ca = RootCa::create(
            kind,
            "Pinned Test Authority",
            Arc::new(RsaSigner::generate().unwrap()),
            &Serial::from_be_bytes(&[1]).unwrap(),
            NOW,
        )
        .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(ca.cert_der());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        );
        (ca.cert_der().to_vec(), pem)
    }

    #[tokio::test]
    async fn pinned_anchors_are_the_only_ones_and_nothing_is_fetched() {
        let (sign_der, sign_pem) = root_pem(Root::Sign);
        let (auth_der, auth_pem) = root_pem(Root::Auth);
        let clock: Clock = Arc::new(|| NOW);
        // Nothing listens on port 9: fetching the anchors fails, pinning
        // needs no contact with the authority.
        let dead = "http://127.0.0.1:9";
        assert!(matches!(
            OnlineVerifier::connect(
                dead,
                StatusMode::Ocsp,
                None,
                false,
                Anchors::Fetch,
                clock.clone()
            )
            .await,
            Err(ServiceError::Upstream(_))
        ));
        let anchors = Anchors::pinned(&sign_pem, &auth_pem).unwrap();
        let v = OnlineVerifier::connect(dead, StatusMode::Ocsp, None, true, anchors, clock)
            .await
            .unwrap();
        assert!(v.anchors_pinned());
        // The pinned roots, each in its own set; the JPKI roots beside them
        // but not among the authority's fingerprints.
        assert_eq!(
            v.authority_fingerprints(Purpose::Signing),
            vec![fingerprint(&sign_der)]
        );
        assert_eq!(
            v.authority_fingerprints(Purpose::Authentication),
            vec![fingerprint(&auth_der)]
        );
        assert!(v.store().anchors(Purpose::Signing).len() > 1);
        let fp = fingerprint(&sign_der);
        assert_eq!((fp.len(), fp.matches(':').count()), (95, 31));
        assert_eq!(fp, fp.to_uppercase());
    }

    #[test]
    fn pinning_needs_certificates_in_both_files() {
        let (_, pem) = root_pem(Root::Sign);
        for (s, a) in [
            ("not PEM at all", pem.as_str()),
            (pem.as_str(), ""),
            (
                pem.as_str(),
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
        ] {
            assert!(Anchors::pinned(s, a).is_err(), "{s:?} / {a:?}");
        }
    }
}
