//! Pitfall from `mobile-id.md`: re-encoding the engagement. The
//! SessionTranscript holds the DeviceEngagement exactly as the mdoc sent it
//! (`#6.24(bstr)` of the scanned bytes); a reader that parses the QR code
//! and encodes the structure again derives other session keys whenever the
//! mdoc's encoding is valid CBOR but not the one the reader would write.
//!
//! The mdoc here is the Annex D one (its ephemeral private key is in the
//! vectors), with its engagement written in a valid, non-preferred
//! encoding: the version `"1.0"` with a one-byte length argument
//! (`78 03`) instead of the short form (`63`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestRng, annex_d as v};
use shomei_mdoc::MdocError;
use shomei_mdoc::reader::Reader;
use shomei_mdoc::request::{ItemsRequest, parse_device_request};
use shomei_mdoc::session::{
    DeviceEngagement, EphemeralKey, Handover, Role, SessionEncryption, SessionKeys,
    SessionTranscript, parse_device_engagement, parse_session_establishment,
};

/// The Annex D engagement with `"1.0"` written `78 03 31 2E 30`.
fn non_preferred_engagement() -> (Vec<u8>, Vec<u8>) {
    let preferred = v("DEVICE_ENGAGEMENT");
    let short = [0x63, b'1', b'.', b'0'];
    let at = preferred
        .windows(short.len())
        .position(|w| w == short)
        .expect("the version string in the vector");
    let mut long = preferred[..at].to_vec();
    long.extend_from_slice(&[0x78, 0x03, b'1', b'.', b'0']);
    long.extend_from_slice(&preferred[at + short.len()..]);
    (preferred, long)
}

fn age_request() -> ItemsRequest {
    common::items_for(
        "org.iso.18013.5.1.mDL",
        &[("org.iso.18013.5.1", "age_over_21")],
    )
}

/// The mdoc's side: its session keys over the transcript built from the
/// engagement bytes *it* sent and the reader's establishment.
fn mdoc_opens(sent_engagement: &[u8], establishment: &[u8]) -> Result<Vec<u8>, MdocError> {
    let device = EphemeralKey::from_scalar(&v("EPHEMERAL_DEVICE_KEY_D"))?;
    let se = parse_session_establishment(establishment)?;
    let transcript = SessionTranscript {
        device_engagement: sent_engagement.to_vec(),
        e_reader_key: se.e_reader_key_bytes().to_vec(),
        handover: Handover::Qr,
    }
    .to_bytes()?;
    let keys = SessionKeys::derive(&device, se.e_reader_key(), &transcript)?;
    SessionEncryption::new(Role::Device, keys).open_establishment(&se)
}

#[test]
fn parsed_engagement_keeps_the_scanned_bytes() {
    let (preferred, long) = non_preferred_engagement();
    let de = parse_device_engagement(&long).unwrap();
    assert_eq!(de.version(), "1.0");
    assert_eq!(de.as_bytes(), long, "the bytes as scanned, not re-encoded");
    // Encoding the same structure again gives the preferred form: the very
    // bytes a re-encoding reader would wrongly put in the transcript.
    let rebuilt =
        DeviceEngagement::build(de.e_device_key(), de.retrieval_methods().to_vec()).unwrap();
    assert_eq!(rebuilt.as_bytes(), preferred);
    assert_ne!(rebuilt.as_bytes(), long);
    // The URI round trip keeps them too.
    let back = shomei_mdoc::session::parse_device_engagement_uri(&de.to_uri()).unwrap();
    assert_eq!(back.as_bytes(), long);
}

#[test]
fn reader_transcript_holds_the_engagement_as_sent_so_the_mdoc_can_decrypt() {
    let (_, long) = non_preferred_engagement();
    let reader = Reader::new(&long, age_request(), &mut TestRng(1)).unwrap();
    // Our reader: the transcript embeds the scanned bytes (tag 24, bstr).
    let mut embedded = vec![0xD8, 0x18, 0x58, u8::try_from(long.len()).unwrap()];
    embedded.extend_from_slice(&long);
    let t = reader.session_transcript().transcript();
    assert!(t.windows(embedded.len()).any(|w| w == embedded));
    // …so the mdoc, keyed over what it sent, decrypts the request.
    let request = mdoc_opens(&long, reader.session_establishment()).unwrap();
    let parsed = parse_device_request(&request).unwrap();
    assert_eq!(parsed.doc_requests.len(), 1);
}

#[test]
fn a_re_encoding_reader_derives_keys_the_mdoc_does_not_have() {
    let (preferred, long) = non_preferred_engagement();
    // A reader that re-encoded the engagement before building its
    // transcript is, in effect, a reader of the preferred bytes.
    let re_encoding = Reader::new(&preferred, age_request(), &mut TestRng(1)).unwrap();
    let err = mdoc_opens(&long, re_encoding.session_establishment()).unwrap_err();
    assert!(matches!(err, MdocError::DecryptionFailed), "{err}");
}
