//! APDU-level tests of the text, visual and manufacture-number APs.

use shomei_core::{BasicFour, BirthDate, MyNumber, Sex, Signer as _, Timestamp};
use shomei_pki::EcdsaP256Signer;
use shomei_pki::cardface::{self, FaceFiles, FaceInput};

use crate::testutil::{AUTH_PIN, SIGN_PW, card, cert, send};
use crate::{
    Card, CardError, Certificates, ChipMemory, FacePin, FaceRead, InProcess, JpkiClient,
    MemoryChip, OtherAp, PinKind, Variant,
};

const MY_NUMBER: &str = "123456789018";
/// Birth 1990-04-01 (YYMMDD 900401), expiry 2035, code 4321.
const PIN_B: &str = "90040120354321";
const SELECT_TEXT: &str = "00A4040C0AD39210003100010104 08";
const SELECT_VISUAL: &str = "00A4040C0AD39210003100010104 02";
const SELECT_MFR: &str = "00A4040C0AD39210003100010101 00";
const SELECT_JPKI: &str = "00A4040C0AD392F000260100000001";

fn face_key() -> &'static EcdsaP256Signer {
    static KEY: std::sync::OnceLock<EcdsaP256Signer> = std::sync::OnceLock::new();
    KEY.get_or_init(|| EcdsaP256Signer::generate().unwrap())
}

fn files() -> FaceFiles {
    let birth: BirthDate = "1990-04-01".parse().unwrap();
    let holder = BasicFour::new("山田花子", "東京都千代田区1-1", birth, Sex::Female).unwrap();
    let n = MyNumber::parse(MY_NUMBER).unwrap();
    // 2035-01-01 (only the year is part of PIN B).
    let expiry = Timestamp::UNIX_EPOCH.date().replace_year(2035).unwrap();
    cardface::build(
        &FaceInput {
            holder: &holder,
            my_number: &n,
            expiry,
            security_code: "4321",
            photo: b"not really a JPEG 2000",
            issuer: "test",
        },
        face_key(),
    )
    .unwrap()
}

/// A personalised card with face data, not yet activated, and its memory.
fn personalised() -> (JpkiClient<InProcess>, MemoryChip) {
    let (c, chip) = card(Variant::Card);
    let mut client = JpkiClient::new(InProcess::new(c));
    let certs = [cert(1), cert(2), cert(3), cert(4)];
    client
        .personalise(&Certificates {
            sign: &certs[0],
            sign_ca: &certs[1],
            auth: &certs[2],
            auth_ca: &certs[3],
        })
        .unwrap();
    client.write_face(&files()).unwrap();
    (client, chip)
}

/// An activated card with face data.
fn issued() -> (Card, MemoryChip) {
    let (mut client, chip) = personalised();
    client.activate().unwrap();
    let mut c = client.into_transport().into_card();
    c.reset();
    (c, chip)
}

fn select(c: &mut Card, fid: u16) -> String {
    send(c, &format!("00A4020C02{fid:04X}"))
}

fn verify(c: &mut Card, fid: u16, pin: &str) -> String {
    assert_eq!(select(c, fid), "9000");
    send(c, &format!("00200080{:02X}{}", pin.len(), hex::encode(pin)))
}

fn tries_in_memory(chip: &MemoryChip, pin: &str) -> u64 {
    let image: serde_json::Value = serde_json::from_slice(&chip.load().unwrap()).unwrap();
    image["other_aps"][pin]["tries_left"].as_u64().unwrap()
}

// ---------------------------------------------------------------- selection

#[test]
fn the_other_aps_select_and_their_efs_exist_only_inside_them() {
    let (mut c, _) = issued();
    // EFs of the text AP are not visible from the JPKI AP and vice versa.
    assert_eq!(send(&mut c, SELECT_JPKI), "9000");
    assert_eq!(select(&mut c, 0x0011), "6A82");
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(select(&mut c, 0x0011), "9000");
    assert_eq!(select(&mut c, 0x0018), "6A82");
    assert_eq!(select(&mut c, 0x0003), "6A82");
    assert_eq!(send(&mut c, SELECT_VISUAL), "9000");
    assert_eq!(select(&mut c, 0x0003), "9000");
    assert_eq!(select(&mut c, 0x0001), "6A82");
    assert_eq!(select(&mut c, 0x0011), "6A82");
    assert_eq!(send(&mut c, SELECT_MFR), "9000");
    assert_eq!(select(&mut c, 0x0001), "6A82");
    // An unknown AID keeps the current AP.
    assert_eq!(send(&mut c, "00A4040C03D39210"), "6A82");
    assert_eq!(send(&mut c, "00B201 0C 00").len(), 34);
    // Wrong SELECT shapes.
    assert_eq!(send(&mut c, "00A4040C0AD3921000310001010408 00"), "6700");
    assert_eq!(send(&mut c, "00A40400 0AD3921000310001010408"), "6A86");
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(send(&mut c, "00A4020C03000100"), "6700");
    assert_eq!(send(&mut c, "00A4020C0200 0100"), "6700");
    assert_eq!(send(&mut c, "00A4010C020001"), "6A86");
    assert_eq!(send(&mut c, "00A4020C"), "6700");
}

#[test]
fn phone_and_older_images_have_no_other_aps() {
    let (mut phone, _) = card(Variant::Phone);
    for aid in [SELECT_TEXT, SELECT_VISUAL, SELECT_MFR] {
        assert_eq!(send(&mut phone, aid), "6A82");
    }
    // An image written before the other APs existed still opens.
    let (_, chip) = card(Variant::Card);
    let mut image: serde_json::Value = serde_json::from_slice(&chip.load().unwrap()).unwrap();
    image.as_object_mut().unwrap().remove("other_aps");
    let old = MemoryChip::with_image(&serde_json::to_vec(&image).unwrap());
    let mut c = Card::open(old).unwrap();
    assert_eq!(send(&mut c, SELECT_TEXT), "6A82");
    assert_eq!(send(&mut c, SELECT_JPKI), "9000");
}

#[test]
fn selecting_another_ap_clears_jpki_verification_and_back() {
    let (mut c, _) = issued();
    assert_eq!(send(&mut c, SELECT_JPKI), "9000");
    assert_eq!(verify(&mut c, PinKind::Sign.fid(), SIGN_PW), "9000");
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "9000");
    assert_eq!(send(&mut c, SELECT_JPKI), "9000");
    // The signing certificate needs the password again.
    assert_eq!(select(&mut c, 0x0001), "9000");
    assert_eq!(send(&mut c, "00B0000004"), "6982");
    // And the text AP needs its PIN again.
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(select(&mut c, 0x0001), "9000");
    assert_eq!(send(&mut c, "00B0000011"), "6982");
    // A power cycle forgets the AP and its verification.
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "9000");
    c.reset();
    assert_eq!(select(&mut c, 0x0001), "6A82");
}

// ---------------------------------------------------------------- text AP

#[test]
fn text_ap_reads_need_a_verified_pin() {
    let (mut c, _) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    for fid in [0x0001, 0x0002] {
        assert_eq!(select(&mut c, fid), "9000");
        assert_eq!(send(&mut c, "00B0000005"), "6982", "{fid:04X}");
    }
    // Basic information is free.
    assert_eq!(select(&mut c, 0x0005), "9000");
    assert!(send(&mut c, "00B0000000").starts_with("FF50"));
    // The text PIN starts as the authentication PIN.
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "9000");
    assert_eq!(select(&mut c, 0x0001), "9000");
    let r = send(&mut c, "00B0000011");
    assert_eq!(r, format!("DF100C{}FFFF9000", hex::encode_upper(MY_NUMBER)));
    assert_eq!(select(&mut c, 0x0002), "9000");
    assert!(send(&mut c, "00B0000002").starts_with("FF20"));
}

#[test]
fn text_pin_is_counted_before_comparison_blocks_after_three_and_persists() {
    let (mut c, chip) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(select(&mut c, 0x0011), "9000");
    assert_eq!(send(&mut c, "00200080"), "63C3");
    assert_eq!(verify(&mut c, 0x0011, "0000"), "63C2");
    assert_eq!(tries_in_memory(&chip, "text_pin"), 2);
    // A failed commit: no comparison, the right PIN does not unlock.
    chip.fail_after(0);
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "6581");
    chip.heal();
    assert_eq!(select(&mut c, 0x0001), "9000");
    assert_eq!(send(&mut c, "00B0000011"), "6982");
    assert_eq!(select(&mut c, 0x0011), "9000");
    // RAM kept the spent try: 1 left.
    assert_eq!(send(&mut c, "00200080"), "63C1");
    assert_eq!(verify(&mut c, 0x0011, "9999"), "6983");
    assert_eq!(tries_in_memory(&chip, "text_pin"), 0);
    // Blocked: even the right PIN, after a power cycle.
    let mut c = Card::open(chip.clone()).unwrap();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "6983");
    assert_eq!(send(&mut c, "00200080"), "63C0");
    // The JPKI auth PIN is a separate secret.
    assert_eq!(send(&mut c, SELECT_JPKI), "9000");
    assert_eq!(verify(&mut c, PinKind::Auth.fid(), AUTH_PIN), "9000");
}

#[test]
fn success_resets_the_text_pin_counter() {
    let (mut c, chip) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(verify(&mut c, 0x0011, "0000"), "63C2");
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "9000");
    assert_eq!(tries_in_memory(&chip, "text_pin"), 3);
    // A failed try clears the earlier verification.
    assert_eq!(verify(&mut c, 0x0011, "0000"), "63C2");
    assert_eq!(select(&mut c, 0x0002), "9000");
    assert_eq!(send(&mut c, "00B0000002"), "6982");
}

#[test]
fn text_pin_change_needs_verify_and_four_digits_and_pins_a_b_never_change() {
    let (mut c, _) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(select(&mut c, 0x0011), "9000");
    assert_eq!(send(&mut c, "0024018004 35363738"), "6982");
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "9000");
    assert_eq!(send(&mut c, "0024018003 353637"), "6A80");
    assert_eq!(send(&mut c, "0024018004 3536373A"), "6A80");
    assert_eq!(send(&mut c, "0024000004 35363738"), "6A86");
    assert_eq!(send(&mut c, "0024018004 35363738 00"), "6700");
    assert_eq!(send(&mut c, "00240180"), "6700");
    assert_eq!(send(&mut c, "0024018004 35363738"), "9000");
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "63C2");
    assert_eq!(verify(&mut c, 0x0011, "5678"), "9000");
    assert_eq!(verify(&mut c, 0x0014, MY_NUMBER), "9000");
    assert_eq!(send(&mut c, "002401800C 313131313131313131313138"), "6986");
}

#[test]
fn pin_b_opens_the_attributes_but_not_the_my_number() {
    let (mut c, _) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(verify(&mut c, 0x0015, PIN_B), "9000");
    assert_eq!(select(&mut c, 0x0002), "9000");
    assert!(send(&mut c, "00B0000002").starts_with("FF20"));
    assert_eq!(select(&mut c, 0x0001), "9000");
    assert_eq!(send(&mut c, "00B0000011"), "6982");
    // PIN A opens it.
    assert_eq!(verify(&mut c, 0x0014, MY_NUMBER), "9000");
    assert_eq!(select(&mut c, 0x0001), "9000");
    assert!(send(&mut c, "00B0000011").ends_with("9000"));
}

// ---------------------------------------------------------------- visual AP

#[test]
fn visual_face_needs_pin_a_or_b_and_verifies() {
    for (fid, pin) in [(0x0013, MY_NUMBER), (0x0012, PIN_B)] {
        let (mut c, _) = issued();
        assert_eq!(send(&mut c, SELECT_VISUAL), "9000");
        assert_eq!(select(&mut c, 0x0002), "9000");
        assert_eq!(send(&mut c, "00B0000005"), "6982");
        assert_eq!(select(&mut c, 0x0003), "9000");
        assert!(send(&mut c, "00B0000000").starts_with("FF50"));
        assert_eq!(verify(&mut c, fid, pin), "9000");
        assert_eq!(select(&mut c, 0x0002), "9000");
        let head = send(&mut c, "00B0000005");
        assert!(head.starts_with("FF4082"), "{head}");
    }
    // Through the client, the face verifies with the authority's key.
    let (c, _) = issued();
    let mut client = JpkiClient::new(InProcess::new(c));
    let read = client.read_card_face(FaceRead::PinB(PIN_B)).unwrap();
    assert!(read.my_number.is_none());
    let face = cardface::verify_face(&read.face, face_key().public_key_spki()).unwrap();
    assert_eq!(face.name().as_deref(), Some("山田花子"));
    assert_eq!(read.attributes.sex, "2");
}

#[test]
fn pin_b_has_ten_tries_shared_by_both_aps_and_blocks() {
    let (mut c, chip) = issued();
    assert_eq!(send(&mut c, SELECT_VISUAL), "9000");
    assert_eq!(select(&mut c, 0x0012), "9000");
    assert_eq!(send(&mut c, "00200080"), "63CA");
    assert_eq!(verify(&mut c, 0x0012, "00000000000000"), "63C9");
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(select(&mut c, 0x0015), "9000");
    assert_eq!(send(&mut c, "00200080"), "63C9");
    for left in (1..=8).rev() {
        assert_eq!(
            verify(&mut c, 0x0015, "00000000000000"),
            format!("63C{left:X}")
        );
    }
    assert_eq!(tries_in_memory(&chip, "pin_b"), 1);
    assert_eq!(verify(&mut c, 0x0015, "00000000000000"), "6983");
    assert_eq!(verify(&mut c, 0x0015, PIN_B), "6983");
    assert_eq!(send(&mut c, SELECT_VISUAL), "9000");
    assert_eq!(verify(&mut c, 0x0012, PIN_B), "6983");
    // PIN A is a separate counter.
    assert_eq!(verify(&mut c, 0x0013, MY_NUMBER), "9000");
}

#[test]
fn pins_a_and_b_exist_only_after_activation() {
    let (client, _) = personalised();
    let mut c = client.into_transport().into_card();
    assert_eq!(send(&mut c, SELECT_VISUAL), "9000");
    assert_eq!(verify(&mut c, 0x0013, MY_NUMBER), "6985");
    assert_eq!(select(&mut c, 0x0012), "9000");
    assert_eq!(send(&mut c, "00200080"), "6985");
    // The text PIN works (it is set at manufacture).
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "9000");
}

#[test]
fn activation_refuses_face_data_that_does_not_parse() {
    let (mut client, _) = personalised();
    let mut bad = files();
    bad.text_my_number = b"\xDF\x10\x0C123456789019\xFF\xFF".to_vec(); // bad check digit
    client.write_face(&bad).unwrap();
    assert_eq!(client.activate(), Err(CardError::NotAllowed)); // 69 85
    client.write_face(&files()).unwrap();
    client.activate().unwrap();
}

#[test]
fn face_files_are_written_in_personalisation_only() {
    let (mut c, _) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(select(&mut c, 0x0002), "9000");
    assert_eq!(send(&mut c, "00D6000001AA"), "6986");
    assert_eq!(send(&mut c, "000E0000"), "6986");
    // PIN EFs never.
    let (client, _) = personalised();
    let mut c = client.into_transport().into_card();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(select(&mut c, 0x0011), "9000");
    assert_eq!(send(&mut c, "00D6000001AA"), "6986");
    assert_eq!(select(&mut c, 0x0005), "9000");
    assert_eq!(send(&mut c, "00D6100001AA"), "6B00");
    assert_eq!(send(&mut c, "00D6800001AA"), "6A81");
    assert_eq!(send(&mut c, "00D60000"), "6700");
    assert_eq!(send(&mut c, "000E0000 01AA"), "6700");
    assert_eq!(send(&mut c, "00D67FFF02AAAA"), "6B00");
}

// ---------------------------------------------------------------- bad shapes

#[test]
fn read_binary_shapes_offsets_and_internal_efs() {
    let (mut c, _) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    // No current EF.
    assert_eq!(send(&mut c, "00B0000004"), "6986");
    assert_eq!(verify(&mut c, 0x0011, AUTH_PIN), "9000");
    // PIN EFs are never readable.
    assert_eq!(send(&mut c, "00B0000004"), "6986");
    assert_eq!(select(&mut c, 0x0001), "9000");
    assert_eq!(send(&mut c, "00B00000"), "6700");
    assert_eq!(send(&mut c, "00B0000001AA00"), "6700");
    assert_eq!(send(&mut c, "00B0810000"), "6A81");
    // The My Number EF is 17 bytes: offset 17 is past it; a long Le is a short read.
    assert_eq!(send(&mut c, "00B0001101"), "6B00");
    assert_eq!(send(&mut c, "00B07FFF01"), "6B00");
    assert_eq!(send(&mut c, "00B0001002"), "FF6282");
    // Other instructions and classes.
    assert_eq!(send(&mut c, "00CA0000"), "6D00");
    assert_eq!(send(&mut c, "802A008001AA00"), "6D00");
    assert_eq!(send(&mut c, "0CB0000004"), "6E00");
    assert_eq!(send(&mut c, "00C0000010"), "6985");
    assert_eq!(send(&mut c, "00B2010C00"), "6986");
    assert_eq!(send(&mut c, "00"), "6700");
}

#[test]
fn verify_shapes() {
    let (mut c, chip) = issued();
    assert_eq!(send(&mut c, SELECT_TEXT), "9000");
    assert_eq!(send(&mut c, "00200080"), "6986");
    assert_eq!(select(&mut c, 0x0011), "9000");
    assert_eq!(send(&mut c, "0020008000"), "6700");
    assert_eq!(send(&mut c, "002000800431323334 00"), "6700");
    assert_eq!(send(&mut c, "002000810431323334"), "6A86");
    assert_eq!(send(&mut c, "0020018004 31323334"), "6A86");
    // Nothing above spent a try.
    assert_eq!(tries_in_memory(&chip, "text_pin"), 3);
    // A PIN of the wrong length is a wrong PIN, counted.
    assert_eq!(send(&mut c, "002000800131"), "63C2");
    assert_eq!(tries_in_memory(&chip, "text_pin"), 2);
}

// ---------------------------------------------------------------- manufacture AP

#[test]
fn manufacture_number_record_and_its_bad_shapes() {
    let (mut c, chip) = issued();
    assert_eq!(send(&mut c, SELECT_MFR), "9000");
    let r = send(&mut c, "00B2010C00");
    let bytes = hex::decode(&r).unwrap();
    assert_eq!(bytes.len(), 17, "{r}");
    assert_eq!(&bytes[..2], &[0x01, 0x0D]);
    let number = std::str::from_utf8(&bytes[2..15]).unwrap();
    assert!(
        number
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(&bytes[15..], &[0x90, 0x00]);
    assert_eq!(send(&mut c, "00B2010C0F"), r);
    assert_eq!(send(&mut c, "00B2010C0E"), "6C0F");
    assert_eq!(send(&mut c, "00B2020C00"), "6A83");
    assert_eq!(send(&mut c, "00B201 14 00"), "6A82");
    assert_eq!(send(&mut c, "00B2010800"), "6A86");
    assert_eq!(send(&mut c, "00B2010C"), "6700");
    assert_eq!(send(&mut c, "00B2010C01AA00"), "6700");
    assert_eq!(send(&mut c, "00B0000000"), "6986");
    assert_eq!(send(&mut c, "00200080"), "6986");
    // Stable across power cycles; the client reads it.
    let mut client = JpkiClient::new(InProcess::new(Card::open(chip).unwrap()));
    assert_eq!(client.read_manufacture_number().unwrap(), number);
}

// ---------------------------------------------------------------- client

#[test]
fn client_reads_the_face_with_each_secret_and_refuses_bad_formats() {
    let (c, _) = issued();
    let mut client = JpkiClient::new(InProcess::new(c));
    for with in [FaceRead::TextPin(AUTH_PIN), FaceRead::PinA(MY_NUMBER)] {
        let read = client.read_card_face(with).unwrap();
        assert_eq!(read.my_number.unwrap().as_str(), MY_NUMBER);
        assert_eq!(read.attributes.name, "山田花子");
        assert_eq!(read.attributes.birth, "19900401");
        cardface::verify_face(&read.face, face_key().public_key_spki()).unwrap();
    }
    // Bad formats never reach the card.
    for (pin, value) in [
        (FacePin::Text, "12345"),
        (FacePin::A, "1234"),
        (FacePin::B, "9004012035432"),
    ] {
        assert_eq!(
            client.verify_face_pin(OtherAp::Text, pin, value),
            Err(CardError::BadFacePinFormat(pin))
        );
    }
    assert_eq!(
        client
            .face_tries_left(OtherAp::Text, FacePin::Text)
            .unwrap(),
        3
    );
    assert_eq!(
        client.verify_face_pin(OtherAp::Visual, FacePin::A, "111111111118"),
        Err(CardError::WrongPin { tries_left: 9 })
    );
    assert_eq!(
        client.face_tries_left(OtherAp::Visual, FacePin::A).unwrap(),
        9
    );
    assert_eq!(
        client.face_tries_left(OtherAp::Text, FacePin::A).unwrap(),
        9
    );
    // The JPKI AP is reselected for JPKI commands.
    client.verify(PinKind::Auth, AUTH_PIN).unwrap();
    client.change_text_pin(AUTH_PIN, "2468").unwrap();
    assert!(client.read_card_face(FaceRead::TextPin("2468")).is_ok());
    assert!(matches!(
        client.read_card_face(FaceRead::TextPin(AUTH_PIN)),
        Err(CardError::WrongPin { tries_left: 2 })
    ));
}

#[test]
fn tampered_face_on_the_card_does_not_verify() {
    let (mut client, _) = personalised();
    let mut f = files();
    let at = f
        .visual_face
        .windows(4)
        .position(|w| w == [0xDF, 0x43, 0x01, b'2'])
        .unwrap();
    f.visual_face[at + 3] = b'1';
    client.write_face(&f).unwrap();
    client.activate().unwrap();
    let read = client.read_card_face(FaceRead::PinA(MY_NUMBER)).unwrap();
    assert_eq!(
        cardface::verify_face(&read.face, face_key().public_key_spki()).unwrap_err(),
        cardface::FaceError::BadSignature
    );
}

#[test]
fn random_apdus_in_the_other_aps_never_panic() {
    let corpus: Vec<Vec<u8>> = [
        SELECT_TEXT,
        SELECT_VISUAL,
        SELECT_MFR,
        SELECT_JPKI,
        "00A4020C020001",
        "00A4020C020002",
        "00A4020C020003",
        "00A4020C020005",
        "00A4020C020011",
        "00A4020C020012",
        "00A4020C020013",
        "00A4020C020014",
        "00A4020C020015",
        "00B0000000",
        "00B0000011",
        "00200080",
        "002000800431323334",
        "002000800C313233343536373839303138",
        "002000800E3930303430313230333534333231",
        "0024018004 31323334",
        "00B2010C00",
        "00D6000004 DF100C31",
        "000E0000",
        "00440000",
    ]
    .iter()
    .map(|h| hex::decode(h.replace(' ', "")).unwrap())
    .collect();
    let mut state = 0x5EED_FACE_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut c, _) = issued();
    let (mut ok, mut verified) = (0, 0);
    for i in 0..40_000u32 {
        if i % 4_000 == 0 {
            c = if i % 8_000 == 0 {
                issued().0
            } else {
                personalised().0.into_transport().into_card()
            };
        }
        let mut a = corpus[(next() % corpus.len() as u64) as usize].clone();
        for _ in 0..(next() % 3) {
            let r = next();
            match r % 4 {
                0 if !a.is_empty() => {
                    let at = (r >> 8) as usize % a.len();
                    a[at] = (r >> 16) as u8;
                }
                1 => a.truncate((r >> 8) as usize % (a.len() + 1)),
                2 => a.push((r >> 8) as u8),
                _ => {}
            }
        }
        let resp = c.process_apdu(&a);
        assert!(resp.len() >= 2, "{a:02X?}");
        if resp.ends_with(&[0x90, 0x00]) {
            ok += 1;
            verified += usize::from(a.get(..2) == Some(&[0x00, 0x20]));
        }
    }
    assert!(ok > 5_000 && verified > 50, "{ok} {verified}");
}

#[test]
fn fuzz_seed_reaches_the_other_aps_past_activation() {
    // fuzz/seeds/apdu/other-aps-personalise-activate-read (made by
    // fuzz/gen-seeds.sh): replayed as the fuzz target does.
    let seed = include_bytes!("../../../../../fuzz/seeds/apdu/other-aps-personalise-activate-read");
    let (mut c, _) = card(Variant::Card);
    let mut rest = &seed[..];
    let mut answers = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        if n == 0 {
            c.reset();
            rest = tail;
            continue;
        }
        let (apdu, tail) = tail.split_at(usize::from(n).min(tail.len()));
        answers.push(hex::encode_upper(c.process_apdu(apdu)));
        rest = tail;
    }
    // The My Number read after the text PIN, PIN B via the text AP, PIN A
    // via the visual AP, the wrong PIN B counted, the 製造番号 twice.
    let my_number = format!("DF100C{}FFFF9000", hex::encode_upper(MY_NUMBER));
    assert!(answers.contains(&my_number), "{answers:?}");
    assert_eq!(
        answers.iter().filter(|a| a.as_str() == "63C9").count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.starts_with("010D") && a.ends_with("9000"))
            .count(),
        2
    );
    assert!(answers.iter().all(|a| !a.starts_with("6F")), "{answers:?}");
}
