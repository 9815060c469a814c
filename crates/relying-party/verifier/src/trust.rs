//! Trust anchors: two separate sets, one for signatures and one for logins,
//! as JPKI keeps them. An anchor is parsed once when added.

use shomei_pki::cms::CertView;

use crate::VerifyError;
use crate::cert::{Purpose, asn1_time};

/// Who runs a root: a Shōmei authority, or the real J-LIS (JPKI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSource {
    /// A Shōmei authority (its `/ca/sign.pem`, `/ca/auth.pem`).
    Shomei,
    /// The real JPKI roots of J-LIS (embedded; no revocation source, since
    /// J-LIS gives CRLs and OCSP only to registered verifiers).
    Jpki,
}

/// One trusted root, parsed.
#[derive(Clone, Debug)]
pub struct Anchor {
    pub(crate) der: Vec<u8>,
    pub(crate) subject: Vec<u8>,
    pub(crate) spki: Vec<u8>,
    /// Its Subject Key Identifier, if it has one.
    pub(crate) key_id: Option<Vec<u8>>,
    pub(crate) not_before: shomei_core::Timestamp,
    pub(crate) not_after: shomei_core::Timestamp,
    pub(crate) source: RootSource,
}

impl Anchor {
    /// The root certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Who runs it.
    pub fn source(&self) -> RootSource {
        self.source
    }

    /// Whether this root may be the issuer of a certificate naming
    /// `issuer` and, optionally, the authority key identifier `aki`: same
    /// name, and the same key identifier when both sides carry one.
    pub(crate) fn may_have_issued(&self, issuer: &[u8], aki: Option<&[u8]>) -> bool {
        self.subject == issuer
            && match (aki, self.key_id.as_deref()) {
                (Some(a), Some(k)) => a == k,
                _ => true,
            }
    }
}

/// The real JPKI roots (2015 and 2023 generations), as published in
/// `jpki/myna` and copied into `jpki-roots/`.
const JPKI_SIGN_ROOTS: [&str; 2] = [
    include_str!("../jpki-roots/sign_ca_2015.pem"),
    include_str!("../jpki-roots/sign_ca_2023.pem"),
];
const JPKI_AUTH_ROOTS: [&str; 2] = [
    include_str!("../jpki-roots/auth_ca_2015.pem"),
    include_str!("../jpki-roots/auth_ca_2023.pem"),
];

/// The trust store: signing roots and authentication roots, never mixed.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    sign: Vec<Anchor>,
    auth: Vec<Anchor>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a root (DER) for `purpose`. The certificate must parse; its
    /// self-signature is not required (JPKI roots are trusted as given).
    pub fn add(
        &mut self,
        purpose: Purpose,
        der: &[u8],
        source: RootSource,
    ) -> Result<(), VerifyError> {
        let view =
            CertView::parse(der).map_err(|e| VerifyError::from_pki("root certificate", e))?;
        let anchor = Anchor {
            der: der.to_vec(),
            subject: view.subject.clone(),
            spki: view.spki.clone(),
            key_id: crate::cert::key_id(
                &view.extensions,
                const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            ),
            not_before: asn1_time(view.not_before)?,
            not_after: asn1_time(view.not_after)?,
            source,
        };
        let set = match purpose {
            Purpose::Signing => &mut self.sign,
            Purpose::Authentication => &mut self.auth,
        };
        if !set.iter().any(|a| a.der == anchor.der) {
            set.push(anchor);
        }
        Ok(())
    }

    /// Adds every `CERTIFICATE` block of PEM text for `purpose`.
    pub fn add_pem(
        &mut self,
        purpose: Purpose,
        pem: &str,
        source: RootSource,
    ) -> Result<usize, VerifyError> {
        let ders = shomei_pki::pem::pem_certificates(pem.as_bytes());
        if ders.is_empty() {
            return Err(VerifyError::malformed(
                "root certificate",
                "no CERTIFICATE block in the PEM text",
            ));
        }
        for der in &ders {
            self.add(purpose, der, source)?;
        }
        Ok(ders.len())
    }

    /// Adds the real JPKI roots (J-LIS, 2015 and 2023 generations).
    pub fn add_jpki_roots(&mut self) -> Result<(), VerifyError> {
        for pem in JPKI_SIGN_ROOTS {
            self.add_pem(Purpose::Signing, pem, RootSource::Jpki)?;
        }
        for pem in JPKI_AUTH_ROOTS {
            self.add_pem(Purpose::Authentication, pem, RootSource::Jpki)?;
        }
        Ok(())
    }

    /// The anchors for `purpose`.
    pub fn anchors(&self, purpose: Purpose) -> &[Anchor] {
        match purpose {
            Purpose::Signing => &self.sign,
            Purpose::Authentication => &self.auth,
        }
    }
}
