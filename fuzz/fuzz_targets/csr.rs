//! `shomei_pki::csr::check_csr` on arbitrary bytes (a PKCS#10 request as
//! POSTed to the authority).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = shomei_pki::csr::check_csr(data);
    shomei_fuzz::debug(|| &result);
    if let Ok(checked) = result {
        // A CheckedCsr promises an RSA-2048 / e=65537 key.
        assert!(shomei_pki::csr::check_rsa_2048(checked.spki()).is_ok());
    }
});
