//! The enrolment JSON body: `serde_json::from_slice::<BasicFour>` on
//! arbitrary bytes. An accepted value must survive a JSON round trip
//! unchanged (the normalisation in `BasicFour::new` is idempotent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shomei_core::BasicFour;

fuzz_target!(|data: &[u8]| {
    let result = serde_json::from_slice::<BasicFour>(data);
    shomei_fuzz::debug(|| {
        result
            .as_ref()
            .map(|b| (b.birth_date().to_iso(), b.sex().code()))
    });
    if let Ok(b) = result {
        let json = serde_json::to_vec(&b).expect("a BasicFour serialises");
        let back: BasicFour = serde_json::from_slice(&json).expect("a serialised BasicFour parses");
        assert!(back == b, "BasicFour JSON round trip changed the value");
    }
});
