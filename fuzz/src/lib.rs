//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use std::fmt::Debug;
use std::sync::OnceLock;

/// Prints what a target made of its input when `SHOMEI_FUZZ_DEBUG` is set,
/// e.g. to check that the seeds are accepted:
///
/// ```text
/// SHOMEI_FUZZ_DEBUG=1 fuzz/target/x86_64-unknown-linux-gnu/release/cms fuzz/seeds/cms/*
/// ```
///
/// `what` runs only then, so it costs nothing while fuzzing.
pub fn debug<T: Debug>(what: impl FnOnce() -> T) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("SHOMEI_FUZZ_DEBUG").is_some()) {
        eprintln!("shomei-fuzz: {:?}", what());
    }
}
