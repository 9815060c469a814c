//! Fixtures shared by the integration tests: the fixed clock, a
//! deterministic RNG, the authority's document PKI (IACA + document
//! signer) and items requests. Each test binary uses a part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use shomei_core::{RandomSource, Serial, SignError, Timestamp};
use shomei_mdoc::issuer::{DocumentContent, DocumentSigner, IssuerSigned, TrustedIacas, issue};
use shomei_mdoc::jp;
use shomei_mdoc::mso::{DeviceKey, StatusRef, ValidityInfo};
use shomei_mdoc::request::ItemsRequest;
use shomei_pki::EcdsaP256Signer;
use shomei_pki::profile::{Iaca, PublicationPoints};
use time::macros::datetime;

/// The tests' "now".
pub const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);

/// A xorshift generator: the same bytes on every run.
pub struct TestRng(pub u64);

impl RandomSource for TestRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SignError> {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
        Ok(())
    }
}

/// An IACA and a document signer under it, both valid at [`NOW`].
pub struct Pki {
    pub iaca_der: Vec<u8>,
    pub trust: TrustedIacas,
    pub ds_key: EcdsaP256Signer,
    pub ds_cert: Vec<u8>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let points = PublicationPoints::new("http://127.0.0.1:8700");
        let iaca = Iaca::create(
            name,
            &points,
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            &Serial::from_be_bytes(&[0x41, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap(),
            NOW,
        )
        .unwrap();
        let ds_key = EcdsaP256Signer::generate().unwrap();
        let ds_cert = iaca
            .issue_document_signer(
                &points,
                &ds_key,
                &Serial::from_be_bytes(&[0x42, 1, 1, 1, 1, 1, 1, 1, 1]).unwrap(),
                NOW,
                365,
            )
            .unwrap();
        Self {
            iaca_der: iaca.cert_der().to_vec(),
            trust: TrustedIacas::new(vec![iaca.cert_der().to_vec()]).unwrap(),
            ds_key,
            ds_cert,
        }
    }

    /// `content` bound to `device_key`, valid 30 days from [`NOW`].
    pub fn issue(&self, content: &DocumentContent, device_key: &DeviceKey) -> IssuerSigned {
        self.issue_with_status(content, device_key, None)
    }

    /// As [`Pki::issue`], with a status list reference.
    pub fn issue_with_status(
        &self,
        content: &DocumentContent,
        device_key: &DeviceKey,
        status: Option<StatusRef>,
    ) -> IssuerSigned {
        let ds = DocumentSigner::new(&self.ds_key, self.ds_cert.clone()).unwrap();
        issue(
            content,
            device_key,
            ValidityInfo::starting(NOW, time::Duration::days(30)),
            status,
            &ds,
            &mut TestRng(0x1234_5678_9abc_def1),
        )
        .unwrap()
    }
}

/// A request for the jp document's `(name space, element)` pairs (no
/// intent to retain).
pub fn items(wanted: &[(&str, &str)]) -> ItemsRequest {
    items_for(jp::DOC_TYPE, wanted)
}

/// As [`items`], for another document type.
pub fn items_for(doc_type: &str, wanted: &[(&str, &str)]) -> ItemsRequest {
    let mut name_spaces: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for (ns, el) in wanted {
        name_spaces
            .entry((*ns).to_owned())
            .or_default()
            .insert((*el).to_owned(), false);
    }
    ItemsRequest {
        doc_type: doc_type.into(),
        name_spaces,
    }
}

/// An ISO/IEC 18013-5 Annex D vector by its short name (`DEVICE_RESPONSE`,
/// `EPHEMERAL_READER_KEY_D`, …) from tests/data/iso18013-5-annex-d.json.
pub fn annex_d(name: &str) -> Vec<u8> {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../data/iso18013-5-annex-d.json")).unwrap();
    let key = format!("ISO_18013_5_ANNEX_D_{name}");
    hex::decode(
        json[&key]
            .as_str()
            .unwrap_or_else(|| panic!("no vector {key}")),
    )
    .unwrap()
}
