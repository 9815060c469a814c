//! APDU-level tests of the chip, named after the behaviour they pin down.

use super::*;
use crate::testutil::{AUTH_PIN, SIGN_PW, card, send, sw};
use crate::{FileMemory, MemoryChip};

const SELECT_JPKI: &str = "00A4040C0AD392F000260100000001";

fn jpki(variant: Variant) -> (Card, MemoryChip) {
    let (mut c, chip) = card(variant);
    assert_eq!(send(&mut c, SELECT_JPKI), "9000");
    (c, chip)
}

fn select(c: &mut Card, fid: u16) -> String {
    send(c, &format!("00A4020C02{fid:04X}"))
}

fn verify(c: &mut Card, kind: PinKind, pin: &str) -> String {
    assert_eq!(select(c, kind.fid()), "9000");
    send(c, &format!("00200080{:02X}{}", pin.len(), hex::encode(pin)))
}

fn counter(c: &mut Card, kind: PinKind) -> String {
    assert_eq!(select(c, kind.fid()), "9000");
    send(c, "00200080")
}

fn sign(c: &mut Card, key: KeyKind, digest_info: &[u8]) -> String {
    assert_eq!(select(c, key.fid()), "9000");
    send(
        c,
        &format!(
            "802A0080{:02X}{}00",
            digest_info.len(),
            hex::encode(digest_info)
        ),
    )
}

/// Writes all four certificate EFs with small DER-looking contents.
fn personalise(c: &mut Card) {
    for kind in CertKind::ALL {
        assert_eq!(select(c, kind.fid()), "9000");
        assert_eq!(send(c, "00D6000004300200FF"), "9000");
    }
}

fn tries_in_memory(chip: &MemoryChip, kind: PinKind) -> u8 {
    let image: Image = serde_json::from_slice(&chip.image().unwrap()).unwrap();
    image.pin(kind).tries_left
}

// ---------------------------------------------------------------- framing

#[test]
fn short_or_inconsistent_apdus_answer_67_00() {
    let (mut c, _) = card(Variant::Card);
    for apdu in [
        "",
        "00",
        "00A404",
        "00A4040C0AD392",
        "00B0000000FF00",
        "00B00000000102",
    ] {
        assert_eq!(send(&mut c, apdu), "6700", "{apdu}");
    }
}

#[test]
fn unknown_class_6e_00_and_instruction_6d_00() {
    let (mut c, _) = jpki(Variant::Card);
    assert_eq!(send(&mut c, "0CB0000004"), "6E00");
    assert_eq!(send(&mut c, "80B0000004"), "6D00");
    assert_eq!(send(&mut c, "002A008001AA00"), "6D00");
    assert_eq!(send(&mut c, "00CA0000"), "6D00");
}

// ---------------------------------------------------------------- SELECT

#[test]
fn select_jpki_succeeds_and_unknown_aid_is_6a_82() {
    let (mut c, _) = card(Variant::Card);
    assert_eq!(send(&mut c, SELECT_JPKI), "9000");
    // D392100031000101 0401: an AP of real cards this chip does not have.
    assert_eq!(send(&mut c, "00A4040C0AD3921000310001010401"), "6A82");
    // A failed SELECT keeps the current DF.
    assert_eq!(select(&mut c, fid::TOKEN), "9000");
}

#[test]
fn select_ef_needs_the_jpki_df_and_unknown_fid_is_6a_82() {
    let (mut c, _) = card(Variant::Card);
    assert_eq!(select(&mut c, fid::TOKEN), "6A82");
    send(&mut c, SELECT_JPKI);
    for id in [
        0x0001, 0x0002, 0x0006, 0x000A, 0x000B, 0x0017, 0x0018, 0x001A, 0x001B,
    ] {
        assert_eq!(select(&mut c, id), "9000", "{id:04X}");
    }
    for id in [0x0000, 0x0005, 0x001C, 0x3F00, 0xFFFF] {
        assert_eq!(select(&mut c, id), "6A82", "{id:04X}");
    }
}

#[test]
fn select_with_fci_wrong_p1_or_bad_lengths_is_refused() {
    let (mut c, _) = jpki(Variant::Card);
    assert_eq!(send(&mut c, "00A40400 0AD392F000260100000001"), "6A86");
    assert_eq!(send(&mut c, "00A4000C020006"), "6A86");
    assert_eq!(send(&mut c, "00A4020C03000600"), "6700");
    assert_eq!(send(&mut c, "00A4020C02000600"), "6700");
    assert_eq!(send(&mut c, "00A4020C"), "6700");
}

// ---------------------------------------------------------------- token + READ BINARY

#[test]
fn token_ef_names_card_and_phone() {
    for (variant, text) in [
        (Variant::Card, "JPKIAPICCTOKEN2"),
        (Variant::Phone, "JPKIAPGPSETOKEN"),
    ] {
        let (mut c, _) = jpki(variant);
        select(&mut c, fid::TOKEN);
        let resp = c.process_apdu(&hex::decode("00B0000020").unwrap());
        assert_eq!(resp.len(), 34);
        assert!(resp.starts_with(text.as_bytes()));
        assert!(resp[15..32].iter().all(|b| *b == b' '));
        assert_eq!(&resp[32..], [0x90, 0x00]);
    }
}

#[test]
fn read_binary_offsets_short_reads_and_le_00() {
    let (mut c, _) = jpki(Variant::Card);
    select(&mut c, fid::TOKEN);
    // Le 00 means 256: the 32-byte EF comes back short with 62 82.
    let r = send(&mut c, "00B0000000");
    assert_eq!((r.len(), sw(&r)), (64 + 4, "6282"));
    // Offset inside the EF, reading past its end: what exists, 62 82.
    let r = send(&mut c, "00B0001E08");
    assert_eq!(r, "20206282");
    // Offset at or past the end: 6B 00.
    assert_eq!(send(&mut c, "00B0002001"), "6B00");
    assert_eq!(send(&mut c, "00B07FFF01"), "6B00");
    // SFI addressing is not supported.
    assert_eq!(send(&mut c, "00B0860004"), "6A81");
    // Case 1 or case 3/4: wrong length.
    assert_eq!(send(&mut c, "00B00000"), "6700");
    assert_eq!(send(&mut c, "00B000000100"), "6700");
}

#[test]
fn read_binary_without_current_ef_is_69_86() {
    let (mut c, _) = jpki(Variant::Card);
    assert_eq!(send(&mut c, "00B0000004"), "6986");
}

#[test]
fn empty_certificate_ef_reads_6b_00() {
    let (mut c, _) = jpki(Variant::Card);
    select(&mut c, fid::SIGN_CA_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6B00");
}

#[test]
fn sign_cert_read_needs_password_69_82() {
    let (mut c, _) = jpki(Variant::Card);
    personalise(&mut c);
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
    // The auth PIN does not open it.
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "300200FF9000");
    // The CA certificates are free.
    select(&mut c, fid::SIGN_CA_CERT);
    c.reset();
    send(&mut c, SELECT_JPKI);
    select(&mut c, fid::SIGN_CA_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "300200FF9000");
}

#[test]
fn card_variant_auth_cert_is_free() {
    let (mut c, _) = jpki(Variant::Card);
    personalise(&mut c);
    select(&mut c, fid::AUTH_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "300200FF9000");
}

#[test]
fn phone_variant_needs_auth_pin_to_read_auth_cert() {
    let (mut c, _) = jpki(Variant::Phone);
    personalise(&mut c);
    select(&mut c, fid::AUTH_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    select(&mut c, fid::AUTH_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
    select(&mut c, fid::AUTH_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "300200FF9000");
    select(&mut c, fid::AUTH_CA_CERT);
    c.reset();
    send(&mut c, SELECT_JPKI);
    select(&mut c, fid::AUTH_CA_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "300200FF9000");
}

// ---------------------------------------------------------------- VERIFY

#[test]
fn counter_read_is_63_cx_and_does_not_decrement() {
    let (mut c, chip) = jpki(Variant::Card);
    let commits = chip.commits();
    for _ in 0..4 {
        assert_eq!(counter(&mut c, PinKind::Auth), "63C3");
        assert_eq!(counter(&mut c, PinKind::Sign), "63C5");
    }
    assert_eq!(chip.commits(), commits);
}

#[test]
fn counter_read_with_le_is_67_00() {
    let (mut c, _) = jpki(Variant::Card);
    select(&mut c, fid::AUTH_PIN);
    assert_eq!(send(&mut c, "0020008000"), "6700");
    assert_eq!(counter(&mut c, PinKind::Auth), "63C3");
}

#[test]
fn verify_needs_a_pin_ef_and_p2_80() {
    let (mut c, _) = jpki(Variant::Card);
    assert_eq!(send(&mut c, "00200080"), "6986");
    select(&mut c, fid::AUTH_KEY);
    assert_eq!(send(&mut c, "002000800431323334"), "6986");
    select(&mut c, fid::AUTH_PIN);
    assert_eq!(send(&mut c, "002000810431323334"), "6A86");
    assert_eq!(send(&mut c, "002001800431323334"), "6A86");
    assert_eq!(counter(&mut c, PinKind::Auth), "63C3");
}

#[test]
fn auth_pin_blocks_after_three_wrong_tries() {
    let (mut c, chip) = jpki(Variant::Card);
    assert_eq!(verify(&mut c, PinKind::Auth, "0000"), "63C2");
    assert_eq!(verify(&mut c, PinKind::Auth, "0000"), "63C1");
    // The try that uses the last attempt already answers "blocked".
    assert_eq!(verify(&mut c, PinKind::Auth, "0000"), "6983");
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "6983");
    // The counter read stays in the 63 Cx form OpenSC's jpki driver needs.
    assert_eq!(counter(&mut c, PinKind::Auth), "63C0");
    assert_eq!(tries_in_memory(&chip, PinKind::Auth), 0);
    // Blocked survives a power cycle and reopening the chip.
    let mut c = Card::open(chip.clone()).unwrap();
    send(&mut c, SELECT_JPKI);
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "6983");
    // The key stays locked.
    assert_eq!(sign(&mut c, KeyKind::Auth, &[0x30; 51]), "6982");
    // The other PIN is independent.
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
}

#[test]
fn sign_password_blocks_after_five() {
    let (mut c, chip) = jpki(Variant::Card);
    for left in (1..=4).rev() {
        assert_eq!(
            verify(&mut c, PinKind::Sign, "WRONG1"),
            format!("63C{left}")
        );
    }
    assert_eq!(verify(&mut c, PinKind::Sign, "WRONG1"), "6983");
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "6983");
    assert_eq!(counter(&mut c, PinKind::Sign), "63C0");
    assert_eq!(tries_in_memory(&chip, PinKind::Sign), 0);
}

#[test]
fn success_resets_counter() {
    let (mut c, chip) = jpki(Variant::Card);
    assert_eq!(verify(&mut c, PinKind::Sign, "WRONG1"), "63C4");
    assert_eq!(verify(&mut c, PinKind::Sign, "WRONG2"), "63C3");
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    assert_eq!(counter(&mut c, PinKind::Sign), "63C5");
    assert_eq!(tries_in_memory(&chip, PinKind::Sign), 5);
    assert_eq!(verify(&mut c, PinKind::Auth, "9999"), "63C2");
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
    assert_eq!(tries_in_memory(&chip, PinKind::Auth), 3);
}

#[test]
fn failed_verify_clears_earlier_verification() {
    let (mut c, _) = jpki(Variant::Card);
    personalise(&mut c);
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    assert_eq!(verify(&mut c, PinKind::Sign, "WRONG1"), "63C4");
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
}

#[test]
fn wrong_sign_password_is_counted_before_comparison_and_survives_crash() {
    // 1. Wrong password: the decrement is committed before the answer.
    let (mut c, chip) = jpki(Variant::Card);
    assert_eq!(verify(&mut c, PinKind::Sign, "WRONG1"), "63C4");
    assert_eq!(tries_in_memory(&chip, PinKind::Sign), 4);

    // 2. Right password, power lost after the decrement was committed but
    //    before the reset to 5: the try stays counted after power-up.
    chip.fail_after(1);
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "6581");
    chip.heal();
    let mut c = Card::open(chip.clone()).unwrap();
    send(&mut c, SELECT_JPKI);
    assert_eq!(counter(&mut c, PinKind::Sign), "63C3");
    // ...and the half-done VERIFY did not unlock anything.
    personalise(&mut c);
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");

    // 3. The decrement itself cannot be committed: no comparison at all, so
    //    right and wrong passwords get the same answer and nothing unlocks.
    chip.fail_after(0);
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "6581");
    assert_eq!(verify(&mut c, PinKind::Sign, "WRONG1"), "6581");
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
    // RAM never refunds the tries it could not commit.
    assert_eq!(counter(&mut c, PinKind::Sign), "63C1");
    chip.heal();
    assert_eq!(tries_in_memory(&chip, PinKind::Sign), 3);
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    assert_eq!(tries_in_memory(&chip, PinKind::Sign), 5);
}

#[test]
fn reset_clears_security_state_and_selection() {
    let (mut c, _) = jpki(Variant::Card);
    personalise(&mut c);
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    c.reset();
    assert_eq!(send(&mut c, "00B0000004"), "6986");
    assert_eq!(select(&mut c, fid::SIGN_CERT), "6A82");
    send(&mut c, SELECT_JPKI);
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
    // Reselecting the AP also clears it.
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    send(&mut c, SELECT_JPKI);
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "00B0000004"), "6982");
}

// ---------------------------------------------------------------- CHANGE REFERENCE DATA

#[test]
fn change_reference_data_needs_verify_and_enforces_format() {
    let (mut c, chip) = jpki(Variant::Card);
    select(&mut c, fid::AUTH_PIN);
    assert_eq!(send(&mut c, "0024018004 35363738"), "6982");
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
    assert_eq!(send(&mut c, "0024008004 35363738"), "6A86");
    assert_eq!(send(&mut c, "0024018003 353637"), "6A80");
    assert_eq!(send(&mut c, "0024018004 3536373A"), "6A80");
    assert_eq!(send(&mut c, "00240180"), "6700");
    assert_eq!(send(&mut c, "0024018004 35363738"), "9000");
    // The sign password: verified on its own EF only.
    select(&mut c, fid::SIGN_PIN);
    assert_eq!(send(&mut c, "0024018006 58595A313233"), "6982");
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
    assert_eq!(send(&mut c, "0024018006 78797A313233"), "6A80");
    assert_eq!(send(&mut c, "0024018006 58595A313233"), "9000");
    // Persisted: a reopened chip knows only the new PINs.
    let mut c = Card::open(chip).unwrap();
    send(&mut c, SELECT_JPKI);
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "63C2");
    assert_eq!(verify(&mut c, PinKind::Auth, "5678"), "9000");
    assert_eq!(verify(&mut c, PinKind::Sign, "XYZ123"), "9000");
}

#[test]
fn change_reference_data_on_a_blocked_pin_is_69_83() {
    let (mut c, _) = jpki(Variant::Card);
    for _ in 0..3 {
        verify(&mut c, PinKind::Auth, "0000");
    }
    assert_eq!(send(&mut c, "0024018004 35363738"), "6983");
}

#[test]
fn change_reference_data_commit_failure_keeps_the_old_pin() {
    let (mut c, chip) = jpki(Variant::Card);
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
    chip.fail_after(0);
    assert_eq!(send(&mut c, "0024018004 35363738"), "6581");
    chip.heal();
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
}

// ---------------------------------------------------------------- keys

#[test]
fn compute_signature_needs_the_key_pin_and_a_digest_info() {
    let (mut c, _) = jpki(Variant::Card);
    let di = shomei_pki::keys::sha256_digest_info(b"hello");
    assert_eq!(sign(&mut c, KeyKind::Sign, &di), "6982");
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
    assert_eq!(sign(&mut c, KeyKind::Sign, &di), "6982");
    let r = sign(&mut c, KeyKind::Auth, &di);
    assert_eq!((r.len(), sw(&r)), (512 + 4, "9000"));
    assert_eq!(sign(&mut c, KeyKind::Auth, b"\x30\x00"), "6A80");
    assert_eq!(sign(&mut c, KeyKind::Auth, &di[..di.len() - 1]), "6A80");
    assert_eq!(send(&mut c, "802A0081020000 00"), "6A86");
    assert_eq!(send(&mut c, "802A008000"), "6700");
    // Not on a key EF.
    select(&mut c, fid::AUTH_PIN);
    assert_eq!(send(&mut c, "802A00800130 00"), "6986");
}

#[test]
fn signature_without_le_and_with_small_le_is_chained() {
    let (mut c, _) = jpki(Variant::Card);
    verify(&mut c, PinKind::Auth, AUTH_PIN);
    select(&mut c, fid::AUTH_KEY);
    let di = hex::encode(shomei_pki::keys::sha256_digest_info(b"x"));
    let whole = send(&mut c, &format!("802A008033{di}"));
    assert_eq!((whole.len(), sw(&whole)), (516, "9000"));
    let first = send(&mut c, &format!("802A008033{di}80"));
    assert_eq!((first.len(), sw(&first)), (256 + 4, "6180"));
    let rest = send(&mut c, "00C0000080");
    assert_eq!(format!("{}{}", &first[..256], rest), whole);
}

#[test]
fn read_public_key_needs_no_pin_and_chains_with_get_response() {
    let (mut c, _) = jpki(Variant::Card);
    select(&mut c, fid::SIGN_KEY);
    let first = send(&mut c, "0047810000");
    // 7F49 82 0109 | 81 82 0100 <256> | 82 03 010001 = 270 bytes: 256 now, 14 later.
    assert_eq!(sw(&first), "610E");
    assert!(first.starts_with("7F4982010981820100"));
    let rest = send(&mut c, "00C000000E");
    assert_eq!(
        (rest.len(), &rest[rest.len() - 14..]),
        (14 * 2 + 4, "82030100019000")
    );
    let template = hex::decode(format!("{}{}", &first[..512], &rest[..rest.len() - 4])).unwrap();
    let spki = keyfmt::spki_from_template(&template).unwrap();
    assert_eq!(spki, c.sign_key.signer.public_key_spki());
    // The pending answer is gone after any other command.
    send(&mut c, "0047810000");
    select(&mut c, fid::SIGN_KEY);
    assert_eq!(send(&mut c, "00C000000E"), "6985");
}

#[test]
fn read_public_key_refuses_generation_other_efs_and_bad_lengths() {
    let (mut c, _) = jpki(Variant::Card);
    select(&mut c, fid::AUTH_KEY);
    assert_eq!(send(&mut c, "0047800000"), "6A86");
    assert_eq!(send(&mut c, "00478100"), "6700");
    assert_eq!(send(&mut c, "004781000100"), "6700");
    select(&mut c, fid::AUTH_CERT);
    assert_eq!(send(&mut c, "0047810000"), "6986");
    assert_eq!(send(&mut c, "00C0000000"), "6985");
    assert_eq!(send(&mut c, "00C0010000"), "6A86");
}

#[test]
fn keys_never_readable_by_apdu() {
    let (mut c, chip) = jpki(Variant::Card);
    personalise(&mut c);
    let image: Image = serde_json::from_slice(&chip.image().unwrap()).unwrap();
    // Windows of the private parts of both PKCS#8 keys (past the modulus).
    let secrets: Vec<Vec<u8>> = [&image.auth_key.0, &image.sign_key.0]
        .iter()
        .flat_map(|k| k[300..].chunks(16).map(<[u8]>::to_vec).collect::<Vec<_>>())
        .filter(|w| w.len() == 16)
        .collect();
    verify(&mut c, PinKind::Auth, AUTH_PIN);
    verify(&mut c, PinKind::Sign, SIGN_PW);
    for id in [fid::AUTH_KEY, fid::SIGN_KEY, fid::AUTH_PIN, fid::SIGN_PIN] {
        assert_eq!(select(&mut c, id), "9000");
        assert_eq!(send(&mut c, "00B0000000"), "6986", "{id:04X}");
        assert_eq!(send(&mut c, "00D6000001FF"), "6986", "{id:04X}");
        assert_eq!(send(&mut c, "000E0000"), "6986", "{id:04X}");
        // Every instruction, both classes, a few parameter shapes.
        for cla in [0x00u8, 0x80] {
            for ins in 0..=0xFFu8 {
                for tail in [
                    &[0x00u8, 0x00, 0x00][..],
                    &[0x81, 0x00, 0x00],
                    &[0x00, 0x80, 0x00],
                ] {
                    let mut apdu = vec![cla, ins];
                    apdu.extend_from_slice(tail);
                    let resp = c.process_apdu(&apdu);
                    for s in &secrets {
                        assert!(
                            !resp.windows(16).any(|w| w == s.as_slice()),
                            "key bytes leaked by {apdu:02X?}"
                        );
                    }
                    assert_eq!(select(&mut c, id), "9000");
                }
            }
        }
    }
    // The PIN hashes do not leak either, and Debug shows no secrets.
    let debug = format!("{c:?}");
    assert!(!debug.contains(&hex::encode_upper(&image.sign_pin.hash)));
    assert!(!debug.contains(SIGN_PW) && !debug.contains(AUTH_PIN));
}

// ---------------------------------------------------------------- personalisation

#[test]
fn update_binary_writes_at_offsets_and_grows_files() {
    let (mut c, _) = jpki(Variant::Card);
    select(&mut c, fid::AUTH_CA_CERT);
    assert_eq!(send(&mut c, "00D6000003AABBCC"), "9000");
    assert_eq!(send(&mut c, "00D6000202DDEE"), "9000");
    assert_eq!(send(&mut c, "00B0000010"), "AABBDDEE6282");
    // No holes: offset past the end.
    assert_eq!(send(&mut c, "00D6000501FF"), "6B00");
    // Files stop at 32 KiB.
    assert_eq!(send(&mut c, "00D6800001FF"), "6A81");
    let mut len = 4;
    while len < 0x7FF0 {
        let n = (0x7FF0 - len).min(0xF0);
        let apdu = format!("00D6{len:04X}{n:02X}{}", "00".repeat(n));
        assert_eq!(send(&mut c, &apdu), "9000");
        len += n;
    }
    assert_eq!(
        send(&mut c, &format!("00D67FF0F0{}", "00".repeat(0xF0))),
        "6A84"
    );
    assert_eq!(
        send(&mut c, &format!("00D67FF010{}", "00".repeat(0x10))),
        "9000"
    );
    assert_eq!(send(&mut c, "00B07FFF00"), "006282");
    // Erase truncates.
    assert_eq!(send(&mut c, "000E0002"), "9000");
    assert_eq!(send(&mut c, "00B0000000"), "AABB6282");
    assert_eq!(send(&mut c, "000E0003"), "6B00");
    assert_eq!(send(&mut c, "00D60000"), "6700");
    assert_eq!(send(&mut c, "000E000001FF"), "6700");
    // The token EF is fixed.
    select(&mut c, fid::TOKEN);
    assert_eq!(send(&mut c, "00D6000001FF"), "6986");
}

#[test]
fn personalisation_closes_after_activate() {
    let (mut c, chip) = jpki(Variant::Card);
    assert_eq!(c.phase(), Phase::Personalisation);
    // Not before the certificates are there.
    assert_eq!(send(&mut c, "00440000"), "6985");
    personalise(&mut c);
    assert_eq!(send(&mut c, "00440001"), "6A86");
    assert_eq!(send(&mut c, "0044000000"), "6700");
    assert_eq!(send(&mut c, "00440000"), "9000");
    assert_eq!(c.phase(), Phase::Operational);
    // Idempotent.
    assert_eq!(send(&mut c, "00440000"), "9000");
    for kind in CertKind::ALL {
        select(&mut c, kind.fid());
        assert_eq!(send(&mut c, "00D6000001FF"), "6986");
        assert_eq!(send(&mut c, "000E0000"), "6986");
    }
    // Persisted.
    let mut c = Card::open(chip).unwrap();
    assert_eq!(c.phase(), Phase::Operational);
    send(&mut c, SELECT_JPKI);
    select(&mut c, fid::SIGN_CA_CERT);
    assert_eq!(send(&mut c, "00D6000001FF"), "6986");
    assert_eq!(send(&mut c, "00B0000004"), "300200FF9000");
}

#[test]
fn activate_needs_auth_cert_and_cas_but_not_a_sign_cert() {
    let write = |c: &mut Card, kind: CertKind| {
        assert_eq!(select(c, kind.fid()), "9000");
        assert_eq!(send(c, "00D6000004300200FF"), "9000");
    };
    let (mut c, _) = jpki(Variant::Card);
    write(&mut c, CertKind::Auth);
    assert_eq!(send(&mut c, "00440000"), "6985");
    write(&mut c, CertKind::Sign);
    write(&mut c, CertKind::AuthCa);
    // A sign certificate without its CA.
    assert_eq!(send(&mut c, "00440000"), "6985");
    select(&mut c, fid::SIGN_CERT);
    assert_eq!(send(&mut c, "000E0000"), "9000");
    // Under 15: no signing certificate at all is fine.
    assert_eq!(send(&mut c, "00440000"), "9000");
    assert_eq!(c.phase(), Phase::Operational);
}

#[test]
fn activate_needs_the_jpki_df_and_a_working_memory() {
    let (mut c, chip) = card(Variant::Card);
    assert_eq!(send(&mut c, "00440000"), "6986");
    send(&mut c, SELECT_JPKI);
    personalise(&mut c);
    chip.fail_after(0);
    assert_eq!(send(&mut c, "00440000"), "6581");
    assert_eq!(c.phase(), Phase::Personalisation);
}

// ---------------------------------------------------------------- manufacture / memory

#[test]
fn manufacture_checks_pin_formats() {
    for (pw, pin, kind) in [
        ("abc123", "1234", PinKind::Sign),
        ("ABC12", "1234", PinKind::Sign),
        ("ABC123", "123", PinKind::Auth),
        ("ABC123", "12345", PinKind::Auth),
    ] {
        let err = Card::manufacture(MemoryChip::new(), Variant::Card, pw, pin).unwrap_err();
        assert_eq!(err, CardError::BadPinFormat(kind));
    }
}

#[test]
fn open_refuses_bad_images() {
    assert!(matches!(
        Card::open(MemoryChip::new()),
        Err(CardError::Memory(_))
    ));
    assert!(matches!(
        Card::open(MemoryChip::with_image(b"{}")),
        Err(CardError::Malformed(_))
    ));
    let mut value: serde_json::Value =
        serde_json::from_slice(crate::testutil::image(Variant::Card)).unwrap();
    value["format"] = 2.into();
    let err = Card::open(MemoryChip::with_image(&serde_json::to_vec(&value).unwrap())).unwrap_err();
    assert!(err.to_string().contains("format version"), "{err}");
    let mut value: serde_json::Value =
        serde_json::from_slice(crate::testutil::image(Variant::Card)).unwrap();
    value["auth_pin"]["tries_left"] = 4.into();
    assert!(Card::open(MemoryChip::with_image(&serde_json::to_vec(&value).unwrap())).is_err());
}

#[test]
fn image_holds_no_plaintext_pin() {
    let image = crate::testutil::image(Variant::Card);
    let text = String::from_utf8_lossy(image);
    assert!(!text.contains(SIGN_PW));
    assert!(!text.contains(&hex::encode_upper(SIGN_PW)));
    assert!(!text.contains(&hex::encode_upper(AUTH_PIN)));
}

#[test]
fn file_memory_round_trip_and_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    std::fs::write(&path, crate::testutil::image(Variant::Phone)).unwrap();
    let mut c = Card::open(FileMemory::new(&path)).unwrap();
    assert_eq!(c.variant(), Variant::Phone);
    send(&mut c, SELECT_JPKI);
    assert_eq!(verify(&mut c, PinKind::Auth, "0000"), "63C2");
    drop(c);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut c = Card::open(FileMemory::new(&path)).unwrap();
    send(&mut c, SELECT_JPKI);
    assert_eq!(counter(&mut c, PinKind::Auth), "63C2");
    assert_eq!(verify(&mut c, PinKind::Auth, AUTH_PIN), "9000");
    // Manufacturing straight into a file works the same.
    let fresh = dir.path().join("fresh.json");
    Card::manufacture(FileMemory::new(&fresh), Variant::Card, SIGN_PW, AUTH_PIN).unwrap();
    let mut c = Card::open(FileMemory::new(&fresh)).unwrap();
    send(&mut c, SELECT_JPKI);
    assert_eq!(verify(&mut c, PinKind::Sign, SIGN_PW), "9000");
}

// ---------------------------------------------------------------- robustness

/// SplitMix64: a tiny deterministic PRNG for the robustness test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[test]
fn random_apdus_never_panic_and_always_end_in_a_status_word() {
    let di = shomei_pki::keys::sha256_digest_info(b"fuzz");
    let hexes = [
        SELECT_JPKI.to_owned(),
        "00A4020C020001".into(),
        "00A4020C020006".into(),
        "00A4020C02000A".into(),
        "00A4020C020017".into(),
        "00A4020C020018".into(),
        "00A4020C02001A".into(),
        "00A4020C02001B".into(),
        "00B0000004".into(),
        "00B0000000".into(),
        "00B0001000".into(),
        "00200080".into(),
        "002000800431323334".into(),
        "0020008006414243313233".into(),
        "0024018004 31323334".into(),
        "0047810000".into(),
        "00C0000000".into(),
        format!("802A008033{}00", hex::encode(&di)),
        "00D6000004300200FF".into(),
        "00D6001004300200FF".into(),
        "000E0000".into(),
        "00440000".into(),
    ];
    let corpus: Vec<Vec<u8>> = hexes
        .iter()
        .map(|h| hex::decode(h.replace(' ', "")).unwrap())
        .collect();
    let mut rng = Rng(0x5EED_CA4D);
    let (mut c, _) = card(Variant::Card);
    let mut phone = false;
    let (mut successes, mut signatures) = (0, 0);
    for i in 0..120_000 {
        if i % 2_000 == 0 {
            // Fresh chip now and then, so blocked PINs do not stop exploration.
            phone = !phone;
            c = card(if phone { Variant::Phone } else { Variant::Card }).0;
        }
        let apdu: Vec<u8> = match rng.below(10) {
            // Pure noise of any length.
            0..=2 => (0..rng.below(300)).map(|_| rng.byte()).collect(),
            // A random header with well-formed or random lengths.
            3 => {
                let mut a = vec![
                    [0x00, 0x80, rng.byte()][rng.below(3)],
                    rng.byte(),
                    rng.byte(),
                    rng.byte(),
                ];
                let n = rng.below(260);
                a.extend((0..n).map(|_| rng.byte()));
                a
            }
            // Valid commands, unchanged or mutated.
            _ => {
                let mut a = corpus[rng.below(corpus.len())].clone();
                let mutations = if rng.below(2) == 0 {
                    0
                } else {
                    1 + rng.below(3)
                };
                for _ in 0..mutations {
                    match rng.below(4) {
                        0 if !a.is_empty() => {
                            let at = rng.below(a.len());
                            a[at] = rng.byte();
                        }
                        1 if !a.is_empty() => {
                            let at = rng.below(a.len());
                            a[at] ^= 1 << rng.below(8);
                        }
                        2 => a.truncate(rng.below(a.len() + 1)),
                        _ => a.push(rng.byte()),
                    }
                }
                a
            }
        };
        let resp = c.process_apdu(&apdu);
        assert!(resp.len() >= 2, "{apdu:02X?}");
        if resp.ends_with(&[0x90, 0x00]) {
            successes += 1;
            signatures += usize::from(apdu.get(..2) == Some(&[0x80, 0x2A]));
        }
        if rng.below(500) == 0 {
            c.reset();
        }
    }
    // The mutated corpus reaches deep states, not only parser errors.
    assert!(
        successes > 10_000 && signatures > 10,
        "{successes} {signatures}"
    );
}
