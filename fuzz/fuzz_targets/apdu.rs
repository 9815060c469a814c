//! The chip: `shomei_card::Card::process_apdu` on a sequence of APDUs.
//!
//! Input format: a sequence of `len: u8` + `len` bytes of command APDU
//! (a truncated last APDU is used as is). `len = 0` is a power cycle
//! (`Card::reset`) rather than an empty APDU.
//!
//! One chip is manufactured per process (two RSA-2048 key generations, so
//! only once); every input starts from a copy of that image in a fresh
//! in-memory chip, so inputs are independent and reproducible.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shomei_card::{Card, ChipMemory, MemoryChip, Variant};

static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();

fn image() -> &'static [u8] {
    IMAGE.get_or_init(|| {
        let chip = MemoryChip::new();
        Card::manufacture(chip.clone(), Variant::Card, "ABC123", "1234")
            .expect("manufacture the fuzz chip");
        chip.load().expect("the manufactured image").to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut card = Card::open(MemoryChip::with_image(image())).expect("open the fuzz chip");
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        if n == 0 {
            card.reset();
            rest = tail;
            continue;
        }
        let (apdu, tail) = tail.split_at(usize::from(n).min(tail.len()));
        let resp = card.process_apdu(apdu);
        shomei_fuzz::debug(|| {
            format!(
                "{:02X?} -> {} bytes, SW {:02X?}",
                apdu.get(..4).unwrap_or(apdu),
                resp.len().saturating_sub(2),
                resp.get(resp.len().saturating_sub(2)..).unwrap_or_default()
            )
        });
        // Always ends in SW1 SW2; short APDUs carry at most 256 data bytes.
        assert!(resp.len() >= 2, "response without a status word");
        assert!(
            resp.len() <= 258,
            "response longer than a short APDU allows: {}",
            resp.len()
        );
        rest = tail;
    }
});
