#![allow(clippy::unwrap_used, clippy::expect_used)]
//! ISO/IEC 18013-5 Annex D (D.4.1.2 DeviceResponse, D.5.2 issuer auth)
//! through our issuer-side verifier.
//!
//! The vector's DS certificate ("utopia ds") is issued by "utopia iaca",
//! which the vectors do not include. So the chain step is done with the DS
//! certificate pinned (`verify_issuer_signed_pinned`): the COSE_Sign1 is
//! verified with the DS certificate's key, the DS's validity and mdlDS EKU
//! are checked, and every digest, docType and the MSO window are checked as
//! for any document. With the IACA path (`verify_issuer_signed`) the vector
//! is — correctly — untrusted.

mod common;

use ciborium::Value;
use shomei_mdoc::MdocError;
use shomei_mdoc::issuer::{
    IssuerSigned, IssuerSignedItemBytes, StatusCheck, StatusOutcome, TrustedIacas,
    verify_issuer_signed, verify_issuer_signed_pinned,
};
use time::macros::datetime;

use common::annex_d;

const MDL: &str = "org.iso.18013.5.1.mDL";
const NS: &str = "org.iso.18013.5.1";

fn map_get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap()
}

/// The first document's docType and issuerSigned value.
fn document() -> (String, Value) {
    let dr: Value = ciborium::from_reader(&annex_d("DEVICE_RESPONSE")[..]).unwrap();
    let doc = &map_get(&dr, "documents").as_array().unwrap()[0];
    (
        map_get(doc, "docType").as_text().unwrap().to_owned(),
        map_get(doc, "issuerSigned").clone(),
    )
}

#[test]
fn annex_d_issuer_signed_verifies_with_the_pinned_ds() {
    let ds = annex_d("DS_CERT");
    let (doc_type, v) = document();
    assert_eq!(doc_type, MDL);
    let is = IssuerSigned::from_value(&v).unwrap();
    // Parse → encode is byte-identical.
    let mut orig = Vec::new();
    ciborium::into_writer(&v, &mut orig).unwrap();
    assert_eq!(is.to_cbor().unwrap(), orig);

    // The MSO is valid 2020-10-01T13:30:02Z … 2021-10-01T13:30:02Z, the DS
    // certificate 2020-10-01 … 2021-10-01.
    let now = datetime!(2021-01-01 00:00 UTC);
    let verified =
        verify_issuer_signed_pinned(MDL, &is, &ds, now, StatusCheck::NotChecked).unwrap();
    assert_eq!(verified.doc_type(), MDL);
    assert_eq!(verified.status(), StatusOutcome::NotChecked);
    assert_eq!(verified.ds_cert_der(), ds.as_slice());
    let els = &verified.elements()[NS];
    assert_eq!(els["family_name"], Value::from("Doe"));
    assert_eq!(els["document_number"], Value::from("123456789"));
    assert!(
        matches!(&els["portrait"], Value::Bytes(b) if *b == annex_d("DEVICE_RESPONSE_PORTRAIT_DATA"))
    );
    assert_eq!(els.len(), 6, "{:?}", els.keys().collect::<Vec<_>>());
    // The device key is the vector's static device key.
    let point = verified.device_key().uncompressed();
    assert_eq!(point[1..33], annex_d("STATIC_DEVICE_KEY_X")[..]);
    assert_eq!(point[33..], annex_d("STATIC_DEVICE_KEY_Y")[..]);
}

#[test]
fn annex_d_failures_have_their_own_errors() {
    let ds = annex_d("DS_CERT");
    let (_, v) = document();
    let is = IssuerSigned::from_value(&v).unwrap();
    let now = datetime!(2021-01-01 00:00 UTC);
    let check = |is: &IssuerSigned, now| {
        verify_issuer_signed_pinned(MDL, is, &ds, now, StatusCheck::NotChecked)
    };

    // Through the IACA path: the vector's IACA is not ours.
    let ours = TrustedIacas::new(vec![]).unwrap();
    assert_eq!(
        verify_issuer_signed(MDL, &is, &ours, now, StatusCheck::NotChecked).unwrap_err(),
        MdocError::UntrustedIaca
    );
    // Another pinned certificate.
    assert_eq!(
        verify_issuer_signed_pinned(
            MDL,
            &is,
            &annex_d("READER_CERT"),
            now,
            StatusCheck::NotChecked
        )
        .unwrap_err(),
        MdocError::UntrustedIaca
    );
    // Before the MSO's validFrom but inside the DS certificate (2020-10-01 00:00 … 13:30).
    assert_eq!(
        check(&is, datetime!(2020-10-01 12:00 UTC)).unwrap_err(),
        MdocError::NotYetValid
    );
    // After the DS certificate.
    assert_eq!(
        check(&is, datetime!(2022-01-01 00:00 UTC)).unwrap_err(),
        MdocError::CertificateNotValid
    );
    // Wrong docType.
    assert_eq!(
        verify_issuer_signed_pinned(
            "org.iso.23220.1.jp.mnc",
            &is,
            &ds,
            now,
            StatusCheck::NotChecked
        )
        .unwrap_err(),
        MdocError::DocTypeMismatch
    );
    // A changed element value.
    let mut bad = is.clone();
    let items = bad.name_spaces.get_mut(NS).unwrap();
    let i = items
        .iter()
        .position(|i| i.item().element_identifier == "family_name")
        .unwrap();
    let mut item = items[i].item().clone();
    item.element_value = Value::from("Roe");
    items[i] = IssuerSignedItemBytes::new(item).unwrap();
    assert_eq!(
        check(&bad, now).unwrap_err(),
        MdocError::DigestMismatch {
            namespace: NS.into(),
            element: "family_name".into()
        }
    );
    // A flipped signature bit.
    let mut bad = is.clone();
    bad.issuer_auth.signature[0] ^= 1;
    assert_eq!(check(&bad, now).unwrap_err(), MdocError::BadSignature);
}
