//! `shomei_pki::cms::verify_detached` on an arbitrary `.p7s` over a fixed
//! content (the seeds are detached signatures of exactly this content, so
//! mutations start from signatures whose messageDigest matches). The
//! `rsa-noattr` seed now walks the refusal of a SignerInfo without signed
//! attributes; the digestAlgorithms check runs on every seed.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CONTENT: &[u8] = include_bytes!("../fixtures/cms_content.txt");

fuzz_target!(|data: &[u8]| {
    let result = shomei_pki::cms::verify_detached(data, CONTENT);
    shomei_fuzz::debug(|| {
        result
            .as_ref()
            .map(|v| (&v.signing_time, v.certificates.len()))
    });
    match result {
        Ok(v) => {
            // The signer's certificate is one of the certificates carried.
            assert!(v.certificates.contains(&v.signer_cert_der));
            // Verification is a pure function of its input.
            assert_eq!(shomei_pki::cms::verify_detached(data, CONTENT).ok(), Some(v));
        }
        Err(e) => {
            // Never an error of the signing side.
            assert!(!matches!(
                e,
                shomei_pki::PkiError::Sign(_) | shomei_pki::PkiError::Build(_)
            ));
        }
    }
});
