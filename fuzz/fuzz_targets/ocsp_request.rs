//! `shomei_pki::ocsp::parse_request` on arbitrary bytes (an OCSP request as
//! POSTed to the responder, or base64-decoded from a GET).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shomei_pki::ocsp::{MAX_CERT_IDS, MAX_NONCE_LEN, parse_request};

fuzz_target!(|data: &[u8]| {
    let result = parse_request(data);
    shomei_fuzz::debug(|| &result);
    if let Ok(req) = result {
        // Documented contract of a parsed request.
        assert!((1..=MAX_CERT_IDS).contains(&req.certs.len()));
        if let Some(nonce) = &req.nonce {
            assert!((1..=MAX_NONCE_LEN).contains(&nonce.len()));
        }
        assert_eq!(req.is_cacheable(), req.nonce.is_none());
    }
});
