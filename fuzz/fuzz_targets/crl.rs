//! `shomei_pki::crl::parse_crl_summary` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = shomei_pki::crl::parse_crl_summary(data);
    shomei_fuzz::debug(|| &result);
});
