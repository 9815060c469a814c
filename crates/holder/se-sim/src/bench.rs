//! The cost of signing through the secure element against signing with the
//! bare aws-lc-rs key: the lead's bench calls [`measure_sign_overhead`].

use core::time::Duration;
use std::time::Instant;

use shomei_core::Signer as _;
use shomei_secure_element::{
    GateId, KeyKind, KeyPolicy, MAX_SESSION_TTL, SeError, SecureElement, UnlockScope,
};

use crate::{MemoryDeviceRoot, MemoryStore, SimManufacturer, SimOptions, SimSecureElement};

/// What [`measure_sign_overhead`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignOverhead {
    /// Signatures made each way.
    pub iterations: u32,
    /// Median time of one bare `RsaSigner::sign`.
    pub raw_per_sign: Duration,
    /// Median time of one `SecureElement::sign` within an unlocked session.
    pub element_per_sign: Duration,
    /// `(element - raw) / raw`, in percent (the goal is under 10).
    pub overhead_percent: f64,
    /// Storage commits during the element's signatures (0: signing in a
    /// session never rewrites the sealed file).
    pub commits_while_signing: usize,
}

/// Signs the same message `iterations` times with an RSA-2048 key inside a
/// fresh in-memory simulated element (one session unlock) and with an
/// independent copy of the same key, alternating one signature each way,
/// and reports the median per-signature times. One RSA key is generated;
/// the clock is read only here (it is a measurement).
pub fn measure_sign_overhead(iterations: u32) -> Result<SignOverhead, SeError> {
    let iterations = iterations.max(1);
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000)
        .map_err(|_| SeError::BadInput("bench timestamp"))?;
    let manufacturer = SimManufacturer::generate(now)?;
    let store = MemoryStore::new();
    let device = MemoryDeviceRoot::new(manufacturer.new_device(now)?);
    let mut se = SimSecureElement::provision(store.clone(), device, SimOptions::default())?;
    se.set_pin(GateId::SignPassword, "BENCH1")?;
    let key = se.create_key(
        "bench.sign",
        KeyKind::Rsa2048,
        KeyPolicy::PHONE_SIGN,
        b"bench",
    )?;
    let raw = se.baseline_rsa(&key)?;
    let unlock = se.verify_pin(
        GateId::SignPassword,
        "BENCH1",
        UnlockScope::Session {
            ttl: MAX_SESSION_TTL,
            max_uses: u32::MAX,
        },
    )?;
    let message = [0x5au8; 256];
    // Warm up both paths.
    for _ in 0..4 {
        raw.sign(&message)
            .map_err(|e| SeError::Crypto(e.to_string()))?;
        se.sign(&key, &message, &unlock)?;
    }
    let commits_before = store.commits();
    // Alternate single signatures so both paths see the same machine load,
    // and compare medians (robust against other processes on shared cores).
    let mut raw_times = Vec::with_capacity(iterations as usize);
    let mut se_times = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        let t = Instant::now();
        raw.sign(&message)
            .map_err(|e| SeError::Crypto(e.to_string()))?;
        raw_times.push(t.elapsed());
        let t = Instant::now();
        se.sign(&key, &message, &unlock)?;
        se_times.push(t.elapsed());
    }
    let raw_per_sign = median(&mut raw_times);
    let element_per_sign = median(&mut se_times);
    let overhead_percent = if raw_per_sign.is_zero() {
        0.0
    } else {
        (element_per_sign.as_secs_f64() - raw_per_sign.as_secs_f64()) / raw_per_sign.as_secs_f64()
            * 100.0
    };
    Ok(SignOverhead {
        iterations,
        raw_per_sign,
        element_per_sign,
        overhead_percent,
        commits_while_signing: store.commits() - commits_before,
    })
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
