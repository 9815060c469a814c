//! The Japanese My Number Card document (カード代替電磁的記録) as an mdoc,
//! following what the iPhone My Number Card presents (reverse-engineered in
//! Multipaz PR #1276, `MyNumberCard.kt`; see reference/jpki.md §3.3).
//!
//! DocType [`DOC_TYPE`] `org.iso.23220.1.jp.mnc`.
//!
//! Name space [`NS_JP`] `org.iso.23220.1.jp` (the card face, as text):
//!
//! | element | value |
//! |---|---|
//! | `full_name_unicode` | tstr, the name as on the card |
//! | `resident_address_unicode` | tstr, the address as on the card |
//! | `birth_date_unicode` | tstr, `1971年9月1日` (Gregorian, no zero padding) |
//! | `sex_unicode` | tstr, `男` / `女` / `不明` (the last is our choice for JPKI code 3) |
//! | `local_gov_code_unicode` | tstr, the 市町村コード, 5 or 6 ASCII digits (e.g. `14364`) |
//! | `individual_number_unicode` | tstr, the 12-digit 個人番号 (check digit verified by [`MyNumber`]) |
//! | `portrait` | bstr, the face photo (JPEG) |
//!
//! Name space [`NS_ISO23220`] `org.iso.23220.1` (ISO/IEC 23220-2 data for
//! readers that only know the international elements):
//!
//! | element | value |
//! |---|---|
//! | `birth_date` | full-date, tag 1004 (`#6.1004("1971-09-01")`) |
//! | `sex` | uint, ISO/IEC 5218: 1 male, 2 female, 0 not known |
//! | `age_in_years` | uint, age on `now`'s date in Japan |
//! | `age_over_NN` | bool, for every NN in [`AGE_OVER`] |
//!
//! [`AGE_OVER`] = 12, 13, 14, 15, 16, 18, 20, 21, 25, 60, 65, 70, 75: the
//! ISO 18013-5 Annex D.2 set's usual thresholds plus Japan's (18 adulthood
//! and voting, 20 alcohol/tobacco/public gambling, 65 介護保険 first-class,
//! 70 高齢受給者, 75 後期高齢者医療). A reader asking for another NN gets
//! the nearest one by the ISO 18013-5 §7.2.5 rule (the presentation side's
//! job).
//!
//! Ages are taken on the calendar date of `now` in JST (UTC+9): under the
//! 年齢計算ニ関スル法律 a person reaches an age at the end of the day
//! before the birthday, i.e. at 00:00 JST on the birthday. `age_*` values
//! go stale at the next birthday, so an MSO carrying them should not be
//! valid past [`next_age_change`].

use ciborium::Value;
use shomei_core::{BasicFour, BirthDate, MyNumber, Sex, Timestamp};
use time::{Date, Duration, PrimitiveDateTime, Time, UtcOffset};

use crate::error::MdocError;
use crate::issuer::DocumentContent;
use crate::mso::full_date;

/// The My Number Card docType.
pub const DOC_TYPE: &str = "org.iso.23220.1.jp.mnc";
/// The Japanese name space.
pub const NS_JP: &str = "org.iso.23220.1.jp";
/// The ISO/IEC 23220-2 name space.
pub const NS_ISO23220: &str = "org.iso.23220.1";
/// The `age_over_NN` thresholds issued (see the module docs).
pub const AGE_OVER: [u8; 13] = [12, 13, 14, 15, 16, 18, 20, 21, 25, 60, 65, 70, 75];

/// `org.iso.23220.1.jp` element identifiers.
pub mod elements {
    /// Name.
    pub const FULL_NAME: &str = "full_name_unicode";
    /// Address.
    pub const RESIDENT_ADDRESS: &str = "resident_address_unicode";
    /// Birth date as Japanese text.
    pub const BIRTH_DATE_TEXT: &str = "birth_date_unicode";
    /// Sex as Japanese text.
    pub const SEX_TEXT: &str = "sex_unicode";
    /// 市町村コード.
    pub const LOCAL_GOV_CODE: &str = "local_gov_code_unicode";
    /// 個人番号.
    pub const INDIVIDUAL_NUMBER: &str = "individual_number_unicode";
    /// Face photo.
    pub const PORTRAIT: &str = "portrait";
    /// ISO 23220-2 birth date (full-date).
    pub const BIRTH_DATE: &str = "birth_date";
    /// ISO 23220-2 sex (ISO 5218).
    pub const SEX: &str = "sex";
    /// ISO 23220-2 age in years.
    pub const AGE_IN_YEARS: &str = "age_in_years";
}

/// Japan Standard Time.
const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// What the document is built from.
pub struct MyNumberCardData<'a> {
    /// The basic four (name, address, birth date, sex).
    pub holder: &'a BasicFour,
    /// The individual number.
    pub my_number: &'a MyNumber,
    /// 市町村コード (5 or 6 ASCII digits).
    pub local_gov_code: &'a str,
    /// Face photo (JPEG), non-empty.
    pub portrait: &'a [u8],
}

/// `1971年9月1日`.
pub fn birth_date_unicode(b: BirthDate) -> String {
    let d = b.date();
    format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day())
}

/// `男`, `女` or `不明`.
pub fn sex_unicode(s: Sex) -> &'static str {
    match s {
        Sex::Male => "男",
        Sex::Female => "女",
        _ => "不明",
    }
}

/// ISO/IEC 5218 code: 1 male, 2 female, 0 not known.
pub fn sex_iso5218(s: Sex) -> u8 {
    match s {
        Sex::Male => 1,
        Sex::Female => 2,
        _ => 0,
    }
}

/// `now`'s calendar date in Japan.
pub fn date_in_japan(now: Timestamp) -> Date {
    now.to_offset(JST).date()
}

/// The next instant an age element changes: 00:00 JST on the next
/// birthday after `now`'s Japanese date.
pub fn next_age_change(birth: BirthDate, now: Timestamp) -> Timestamp {
    let day = birth.nth_birthday_after(date_in_japan(now), 1);
    PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_offset(JST)
}

/// Builds the document's content (both name spaces, in the order above).
pub fn document(data: &MyNumberCardData<'_>, now: Timestamp) -> Result<DocumentContent, MdocError> {
    let code = data.local_gov_code;
    if !(code.len() == 5 || code.len() == 6) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MdocError::Invalid("local government code: 5 or 6 digits"));
    }
    if data.portrait.is_empty() {
        return Err(MdocError::Invalid("portrait is empty"));
    }
    let h = data.holder;
    let birth = h.birth_date();
    let today = date_in_japan(now);
    if birth.date() > today {
        return Err(MdocError::Invalid("born after now"));
    }
    let age = birth.age_on(today);
    let age_u = u64::try_from(age).map_err(|_| MdocError::Invalid("age"))?;
    let jp = vec![
        (elements::FULL_NAME.to_owned(), Value::from(h.name())),
        (
            elements::RESIDENT_ADDRESS.to_owned(),
            Value::from(h.address()),
        ),
        (
            elements::BIRTH_DATE_TEXT.to_owned(),
            Value::from(birth_date_unicode(birth)),
        ),
        (
            elements::SEX_TEXT.to_owned(),
            Value::from(sex_unicode(h.sex())),
        ),
        (elements::LOCAL_GOV_CODE.to_owned(), Value::from(code)),
        (
            elements::INDIVIDUAL_NUMBER.to_owned(),
            Value::from(data.my_number.as_str()),
        ),
        (
            elements::PORTRAIT.to_owned(),
            Value::Bytes(data.portrait.to_vec()),
        ),
    ];
    let mut iso = vec![
        (elements::BIRTH_DATE.to_owned(), full_date(birth.date())),
        (elements::SEX.to_owned(), Value::from(sex_iso5218(h.sex()))),
        (elements::AGE_IN_YEARS.to_owned(), Value::from(age_u)),
    ];
    for nn in AGE_OVER {
        iso.push((
            format!("age_over_{nn:02}"),
            Value::Bool(age >= i32::from(nn)),
        ));
    }
    Ok(DocumentContent {
        doc_type: DOC_TYPE.to_owned(),
        name_spaces: vec![(NS_JP.to_owned(), jp), (NS_ISO23220.to_owned(), iso)],
    })
}

/// A sensible MSO lifetime for this document: `max` from `now`, but never
/// past the next birthday (when the age elements change).
pub fn validity_until(birth: BirthDate, now: Timestamp, max: Duration) -> Timestamp {
    (now + max).min(next_age_change(birth, now))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::issuer::test_support::{Pki, TestRng};
    use crate::issuer::{DocumentSigner, StatusCheck, issue, verify_issuer_signed};
    use crate::mso::{DeviceKey, ValidityInfo};

    fn holder(birth: &str, sex: Sex) -> BasicFour {
        BasicFour::new(
            "山田 花子",
            "東京都千代田区霞が関1-1",
            birth.parse().unwrap(),
            sex,
        )
        .unwrap()
    }

    fn number() -> MyNumber {
        let mut first = [0u8; 11];
        for (i, d) in "12345678901".bytes().enumerate() {
            first[i] = d - b'0';
        }
        let cd = shomei_core::my_number::check_digit(&first);
        MyNumber::parse(&format!("12345678901{cd}")).unwrap()
    }

    fn get<'a>(c: &'a DocumentContent, ns: &str, id: &str) -> &'a Value {
        &c.name_spaces
            .iter()
            .find(|(n, _)| n == ns)
            .unwrap()
            .1
            .iter()
            .find(|(i, _)| i == id)
            .unwrap()
            .1
    }

    #[test]
    fn the_document_carries_the_iphone_elements() {
        let h = holder("1971-09-01", Sex::Female);
        let n = number();
        let c = document(
            &MyNumberCardData {
                holder: &h,
                my_number: &n,
                local_gov_code: "14364",
                portrait: &[0xff, 0xd8, 0xff],
            },
            datetime!(2026-11-21 04:00 UTC),
        )
        .unwrap();
        assert_eq!(c.doc_type, "org.iso.23220.1.jp.mnc");
        assert_eq!(
            get(&c, NS_JP, "birth_date_unicode"),
            &Value::from("1971年9月1日")
        );
        assert_eq!(get(&c, NS_JP, "sex_unicode"), &Value::from("女"));
        assert_eq!(
            get(&c, NS_JP, "local_gov_code_unicode"),
            &Value::from("14364")
        );
        assert_eq!(
            get(&c, NS_JP, "individual_number_unicode"),
            &Value::from(n.as_str())
        );
        assert_eq!(get(&c, NS_JP, "full_name_unicode"), &Value::from(h.name()));
        assert_eq!(
            get(&c, NS_JP, "resident_address_unicode"),
            &Value::from(h.address())
        );
        assert_eq!(
            get(&c, NS_ISO23220, "birth_date"),
            &Value::Tag(1004, Box::new(Value::from("1971-09-01")))
        );
        assert_eq!(get(&c, NS_ISO23220, "sex"), &Value::from(2));
        assert_eq!(get(&c, NS_ISO23220, "age_in_years"), &Value::from(55));
        assert_eq!(get(&c, NS_ISO23220, "age_over_20"), &Value::Bool(true));
        assert_eq!(get(&c, NS_ISO23220, "age_over_60"), &Value::Bool(false));
        assert_eq!(get(&c, NS_ISO23220, "age_over_12"), &Value::Bool(true));
        let bad = MyNumberCardData {
            holder: &h,
            my_number: &n,
            local_gov_code: "1436x",
            portrait: &[1],
        };
        assert!(document(&bad, datetime!(2026-11-21 04:00 UTC)).is_err());
    }

    #[test]
    fn ages_turn_at_midnight_in_japan() {
        let h = holder("2008-11-21", Sex::Male);
        let n = number();
        let d = MyNumberCardData {
            holder: &h,
            my_number: &n,
            local_gov_code: "131016",
            portrait: &[1],
        };
        // 2026-11-20 14:59:59 UTC = 23:59:59 JST the day before the 18th birthday.
        let before = document(&d, datetime!(2026-11-20 14:59:59 UTC)).unwrap();
        assert_eq!(
            get(&before, NS_ISO23220, "age_over_18"),
            &Value::Bool(false)
        );
        assert_eq!(get(&before, NS_ISO23220, "age_in_years"), &Value::from(17));
        let after = document(&d, datetime!(2026-11-20 15:00:00 UTC)).unwrap();
        assert_eq!(get(&after, NS_ISO23220, "age_over_18"), &Value::Bool(true));
        assert_eq!(get(&after, NS_ISO23220, "sex"), &Value::from(1));
        assert_eq!(
            next_age_change(h.birth_date(), datetime!(2026-11-01 0:00 UTC)),
            datetime!(2026-11-20 15:00:00 UTC)
        );
        assert_eq!(
            validity_until(
                h.birth_date(),
                datetime!(2026-11-01 0:00 UTC),
                Duration::days(90)
            ),
            datetime!(2026-11-20 15:00:00 UTC)
        );
    }

    #[test]
    fn a_my_number_card_mdoc_issues_and_verifies() {
        let now = datetime!(2026-11-21 04:00 UTC);
        let pki = Pki::new(now);
        let h = holder("1990-04-01", Sex::Male);
        let n = number();
        let c = document(
            &MyNumberCardData {
                holder: &h,
                my_number: &n,
                local_gov_code: "13101",
                portrait: &[0xff, 0xd8],
            },
            now,
        )
        .unwrap();
        let dk = shomei_pki::EcdsaP256Signer::generate().unwrap();
        let ds = DocumentSigner::new(&pki.ds_key, pki.ds_cert.clone()).unwrap();
        let until = validity_until(h.birth_date(), now, Duration::days(30));
        let is = issue(
            &c,
            &DeviceKey::from_spki(shomei_core::Signer::public_key_spki(&dk)).unwrap(),
            ValidityInfo::starting(now, until - now),
            None,
            &ds,
            &mut TestRng(42),
        )
        .unwrap();
        let shown = is.disclose(|ns, el| ns == NS_ISO23220 && el == "age_over_20");
        let v = verify_issuer_signed(DOC_TYPE, &shown, &pki.trust, now, StatusCheck::NotChecked)
            .unwrap();
        assert_eq!(
            v.element(NS_ISO23220, "age_over_20"),
            Some(&Value::Bool(true))
        );
        assert_eq!(v.elements().len(), 1);
        assert!(v.element(NS_JP, "individual_number_unicode").is_none());
    }
}
