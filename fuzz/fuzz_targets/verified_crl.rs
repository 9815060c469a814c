//! `shomei_verifier::VerifiedCrl::parse` (decode, issuer match, signature,
//! entry index) on an arbitrary CRL issued, supposedly, by the fuzz CA.
#![no_main]

use libfuzzer_sys::fuzz_target;

const ISSUER: &[u8] = include_bytes!("../fixtures/ocsp_issuer.der");

fuzz_target!(|data: &[u8]| {
    let r = shomei_verifier::VerifiedCrl::parse(data, ISSUER);
    shomei_fuzz::debug(|| r.as_ref().map(|c| (c.len(), c.crl_number())).map_err(|e| e.code()));
});
