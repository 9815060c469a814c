//! `shomei_verifier::validate` on an arbitrary certificate, for both
//! purposes, against a store holding a Shōmei authority's two roots (the
//! `shomei-card-*` seeds chain to them, so mutations start from a full
//! profile check: policy, key usage, basic four) and the fuzz CA.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shomei_verifier::{Purpose, RootSource, TrustStore, validate};

const SIGN_ROOT: &[u8] = include_bytes!("../fixtures/shomei_sign_root.der");
const AUTH_ROOT: &[u8] = include_bytes!("../fixtures/shomei_auth_root.der");
const FUZZ_CA: &[u8] = include_bytes!("../fixtures/ocsp_issuer.der");

fn store() -> &'static TrustStore {
    static S: std::sync::OnceLock<TrustStore> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut s = TrustStore::new();
        for (p, der) in [
            (Purpose::Signing, SIGN_ROOT),
            (Purpose::Authentication, AUTH_ROOT),
            (Purpose::Signing, FUZZ_CA),
        ] {
            s.add(p, der, RootSource::Shomei).expect("fixture roots parse");
        }
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let now = time::macros::datetime!(2026-11-22 00:00:00 UTC);
    for purpose in [Purpose::Signing, Purpose::Authentication] {
        let r = validate(store(), data, purpose, now);
        shomei_fuzz::debug(|| r.as_ref().map(|v| (v.serial().to_hex(), v.medium())).map_err(|e| e.code()));
        if let Ok(v) = r {
            // A validated certificate is what it was offered for, and a
            // signing one always carries the basic four.
            assert_eq!(v.purpose(), purpose);
            assert_eq!(v.basic_four().is_some(), purpose == Purpose::Signing);
        }
    }
});
