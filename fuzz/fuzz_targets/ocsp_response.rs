//! `shomei_pki::ocsp::parse_response` (the client side) on arbitrary bytes,
//! against a fixed issuer certificate (fixtures/ocsp_issuer.der, the CA that
//! signed the seed responses) at a fixed time inside its validity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shomei_pki::ocsp::parse_response;

const ISSUER: &[u8] = include_bytes!("../fixtures/ocsp_issuer.der");

fuzz_target!(|data: &[u8]| {
    // 2030-06-01T00:00:00Z: inside the fixture certificates' validity.
    let Ok(now) = time::OffsetDateTime::from_unix_timestamp(1_906_502_400) else {
        return;
    };
    let result = parse_response(data, ISSUER, now);
    shomei_fuzz::debug(|| &result);
});
