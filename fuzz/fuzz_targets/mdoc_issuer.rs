//! The issuer-side mdoc parsers and the reader's checks (`shomei_mdoc`) on
//! every input: a DeviceResponse (documents, IssuerSigned with its MSO in
//! a COSE_Sign1, DeviceSigned) through the whole verification against the
//! ISO 18013-5 Annex D document signer (pinned) and session; a bare
//! IssuerSigned; a Token Status List CWT; a DocRequest's readerAuth
//! (COSE_Sign1 with x5chain) as the holder authenticates a reader.
//!
//! The Annex D response seed verifies (issuer signature, digests, DeviceMac
//! under the Annex D session), so mutations reach the digest, validity and
//! MAC paths, not only the decoder.
//!
//! Contracts: no panic; a parsed IssuerSigned re-encodes and parses to the
//! same value; the Annex D seeds themselves verify (the readerAuth seed up
//! to the trust decision: its reader CA is not published).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shomei_mdoc::issuer::{IssuerSigned, StatusCheck, TrustedIacas, verify_issuer_signed_pinned};
use shomei_mdoc::present::DeviceResponse;
use shomei_mdoc::reader_auth::{TrustedReaderCas, authenticate_reader};
use shomei_mdoc::session::{
    EphemeralKey, SessionTranscriptBytes, parse_session_transcript_bytes,
};
use shomei_mdoc::status::{StatusListLimits, verify_status_list_token};
use time::macros::datetime;

const DS_CERT: &[u8] = include_bytes!("../seeds/mdoc_issuer/annex-d-ds-cert.der");
const TRANSCRIPT: &[u8] =
    include_bytes!("../seeds/mdoc_session/annex-d-session-transcript-bytes.cbor");
// Annex D EReaderKey.d (the DeviceMac's EMacKey needs the reader's private key).
const READER_D: &str = "de3b4b9e5f72dd9b58406ae3091434da48a6f9fd010d88fcb0958e2cebec947c";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

struct Fixed {
    transcript: SessionTranscriptBytes,
    reader: EphemeralKey,
    trust: TrustedIacas,
    readers: TrustedReaderCas,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let f = Fixed {
            transcript: parse_session_transcript_bytes(TRANSCRIPT)
                .expect("Annex D transcript")
                .0,
            reader: EphemeralKey::from_scalar(&unhex(READER_D)).expect("Annex D reader key"),
            // Any certificate will do for the status-list path: the parser
            // runs before the signature check.
            trust: TrustedIacas::new(vec![DS_CERT.to_vec()]).unwrap_or_default(),
            readers: TrustedReaderCas::new(vec![DS_CERT.to_vec()]).unwrap_or_default(),
        };
        // The seed must pass every check, or mutations would stop early.
        assert_eq!(verify_response(&f, SEED), Ok(1), "the Annex D seed verifies");
        assert_eq!(
            reader_auth(&f, READER_AUTH_SEED),
            Err(shomei_mdoc::MdocError::UntrustedReader),
            "the Annex D readerAuth verifies up to the trust decision"
        );
        f
    })
}

const SEED: &[u8] = include_bytes!("../seeds/mdoc_issuer/annex-d-device-response.cbor");
const READER_AUTH_SEED: &[u8] = include_bytes!("../seeds/mdoc_issuer/annex-d-reader-auth.cbor");
const ITEMS_REQUEST: &[u8] = include_bytes!("../seeds/mdoc_session/annex-d-items-request.cbor");

/// The reader's checks of a DeviceResponse: each document's IssuerSigned
/// against the pinned DS, then its DeviceSigned over the Annex D session.
fn verify_response(f: &Fixed, data: &[u8]) -> Result<usize, String> {
    // Inside the Annex D MSO's validity (2020-10-01 … 2021-10-01).
    let now = datetime!(2021-01-01 00:00 UTC);
    let resp = DeviceResponse::parse(data).map_err(|e| e.to_string())?;
    for doc in &resp.documents {
        let v = verify_issuer_signed_pinned(
            &doc.doc_type,
            &doc.issuer_signed,
            DS_CERT,
            now,
            StatusCheck::NotChecked,
        )
        .map_err(|e| e.to_string())?;
        let key = v.device_public_key().map_err(|e| e.to_string())?;
        doc.device_signed
            .verify(&f.transcript, &doc.doc_type, &key, Some(&f.reader))
            .map_err(|e| e.to_string())?;
    }
    Ok(resp.documents.len())
}

fn reader_auth(f: &Fixed, data: &[u8]) -> Result<(), shomei_mdoc::MdocError> {
    authenticate_reader(
        data,
        &f.transcript,
        ITEMS_REQUEST,
        &f.readers,
        datetime!(2021-01-01 00:00 UTC),
    )
    .map(|_| ())
}

fuzz_target!(|data: &[u8]| {
    let f = fixed();
    let r = verify_response(f, data);
    shomei_fuzz::debug(|| format!("DeviceResponse: {r:?}"));

    if let Ok(is) = IssuerSigned::from_cbor(data) {
        let again = is.to_cbor().expect("a parsed IssuerSigned re-encodes");
        assert_eq!(
            IssuerSigned::from_cbor(&again).expect("re-parse IssuerSigned"),
            is
        );
    }

    let r = verify_status_list_token(
        data,
        "https://authority.example/status/mdoc",
        &f.trust,
        datetime!(2021-01-01 00:00 UTC),
        StatusListLimits::default(),
    );
    shomei_fuzz::debug(|| format!("status list: {:?}", r.map(|_| ())));

    let r = reader_auth(f, data);
    shomei_fuzz::debug(|| format!("readerAuth: {r:?}"));
});
