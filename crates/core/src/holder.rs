//! The holder's basic four (基本4情報): name, address, birth date, sex.
//!
//! These are personal data: their `Debug` output is redacted so they can
//! never reach a log line by accident.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

/// Why holder data was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HolderError {
    /// The name is empty, too long, or has a control character.
    BadName,
    /// The address is empty, longer than 200 characters, or has a control character.
    BadAddress,
    /// The birth date is not an ISO 8601 date (`1990-04-01`).
    BadBirthDate,
    /// The sex code is not 1, 2 or 3.
    BadSex,
    /// The birth date lies after the issuance date.
    BornInFuture,
}

impl fmt::Display for HolderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadName => "name must be 1-100 characters without control characters",
            Self::BadAddress => "address must be 1-200 characters without control characters",
            Self::BadBirthDate => "birth date must be an ISO 8601 date such as 1990-04-01",
            Self::BadSex => "sex must be 1 (male), 2 (female) or 3 (not known)",
            Self::BornInFuture => "birth date lies in the future",
        })
    }
}

impl std::error::Error for HolderError {}

/// Sex code as JPKI writes it (`1` male, `2` female, `3` not known).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Sex {
    /// `1` 男
    Male,
    /// `2` 女
    Female,
    /// `3` 不明
    NotKnown,
}

impl Sex {
    /// The JPKI code.
    pub fn code(self) -> u8 {
        match self {
            Self::Male => 1,
            Self::Female => 2,
            Self::NotKnown => 3,
        }
    }

    /// From the JPKI code.
    pub fn from_code(code: u8) -> Result<Self, HolderError> {
        match code {
            1 => Ok(Self::Male),
            2 => Ok(Self::Female),
            3 => Ok(Self::NotKnown),
            _ => Err(HolderError::BadSex),
        }
    }
}

impl fmt::Debug for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sex(<redacted>)")
    }
}

impl FromStr for Sex {
    type Err = HolderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1" => Ok(Self::Male),
            "2" => Ok(Self::Female),
            "3" => Ok(Self::NotKnown),
            _ => Err(HolderError::BadSex),
        }
    }
}

impl Serialize for Sex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code().to_string())
    }
}

impl<'de> Deserialize<'de> for Sex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u8),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Raw::Number(n) => Sex::from_code(n).map_err(serde::de::Error::custom),
        }
    }
}

/// A birth date (Gregorian), with the JPKI era encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BirthDate(Date);

impl BirthDate {
    /// Wraps a date.
    pub fn new(date: Date) -> Self {
        Self(date)
    }

    /// The date.
    pub fn date(self) -> Date {
        self.0
    }

    /// ISO 8601 (`1990-04-01`).
    pub fn to_iso(self) -> String {
        format!(
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }

    /// JPKI `EYYYYMMDD`: era code (1 明治, 2 大正, 3 昭和, 4 平成, 5 令和,
    /// 0 unknown) followed by the Gregorian date.
    pub fn jpki_encoding(self) -> String {
        let era = era_code(self.0);
        format!(
            "{era}{:04}{:02}{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }

    /// Parses the JPKI `EYYYYMMDD` form (the era digit must match the date).
    pub fn from_jpki_encoding(s: &str) -> Result<Self, HolderError> {
        if s.len() != 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HolderError::BadBirthDate);
        }
        let era: u8 = s[..1].parse().map_err(|_| HolderError::BadBirthDate)?;
        let date = parse_ymd(&s[1..5], &s[5..7], &s[7..9])?;
        if era_code(date) != era {
            return Err(HolderError::BadBirthDate);
        }
        Ok(Self(date))
    }

    /// The `n`-th birthday strictly after `day` (29 February falls on 28 February
    /// in common years). JPKI card certificates are valid until the 5th.
    pub fn nth_birthday_after(self, day: Date, n: u8) -> Date {
        let mut year = day.year();
        let mut found = 0;
        loop {
            let candidate = birthday_in(self.0, year);
            if candidate > day {
                found += 1;
                if found >= n {
                    return candidate;
                }
            }
            year += 1;
        }
    }

    /// Age in whole years on `day`.
    pub fn age_on(self, day: Date) -> i32 {
        let mut age = day.year() - self.0.year();
        if birthday_in(self.0, day.year()) > day {
            age -= 1;
        }
        age
    }
}

fn birthday_in(born: Date, year: i32) -> Date {
    Date::from_calendar_date(year, born.month(), born.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .unwrap_or(born)
}

fn parse_ymd(y: &str, m: &str, d: &str) -> Result<Date, HolderError> {
    let year: i32 = y.parse().map_err(|_| HolderError::BadBirthDate)?;
    let month: u8 = m.parse().map_err(|_| HolderError::BadBirthDate)?;
    let day: u8 = d.parse().map_err(|_| HolderError::BadBirthDate)?;
    let month = Month::try_from(month).map_err(|_| HolderError::BadBirthDate)?;
    Date::from_calendar_date(year, month, day).map_err(|_| HolderError::BadBirthDate)
}

/// Japanese era of a Gregorian date, as the JPKI era digit.
fn era_code(date: Date) -> u8 {
    // First days of each era (Gregorian).
    const ERAS: [(i32, u8, u8, u8); 5] = [
        (2019, 5, 1, 5),   // 令和
        (1989, 1, 8, 4),   // 平成
        (1926, 12, 25, 3), // 昭和
        (1912, 7, 30, 2),  // 大正
        (1868, 10, 23, 1), // 明治
    ];
    let key = (date.year(), u8::from(date.month()), date.day());
    for (y, m, d, code) in ERAS {
        if key >= (y, m, d) {
            return code;
        }
    }
    0
}

impl FromStr for BirthDate {
    type Err = HolderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
            return Err(HolderError::BadBirthDate);
        }
        parse_ymd(parts[0], parts[1], parts[2]).map(Self)
    }
}

impl fmt::Debug for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BirthDate(<redacted>)")
    }
}

impl Serialize for BirthDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_iso())
    }
}

impl<'de> Deserialize<'de> for BirthDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The basic four (基本4情報). Constructed only through [`BasicFour::new`],
/// which checks each field.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawBasicFour")]
pub struct BasicFour {
    name: String,
    address: String,
    birth_date: BirthDate,
    sex: Sex,
}

#[derive(Deserialize)]
struct RawBasicFour {
    name: String,
    address: String,
    birth_date: BirthDate,
    sex: Sex,
}

impl TryFrom<RawBasicFour> for BasicFour {
    type Error = HolderError;
    fn try_from(r: RawBasicFour) -> Result<Self, Self::Error> {
        Self::new(&r.name, &r.address, r.birth_date, r.sex)
    }
}

impl BasicFour {
    /// Checks and builds the basic four. Runs of ASCII or full-width spaces in
    /// the name become one full-width space (U+3000), as JPKI joins surname
    /// and given name.
    pub fn new(
        name: &str,
        address: &str,
        birth_date: BirthDate,
        sex: Sex,
    ) -> Result<Self, HolderError> {
        let name = name
            .split([' ', '\u{3000}'])
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\u{3000}");
        let name_len = name.chars().count();
        if name_len == 0 || name_len > 100 || name.chars().any(char::is_control) {
            return Err(HolderError::BadName);
        }
        let address = address.trim().to_owned();
        let address_len = address.chars().count();
        if address_len == 0 || address_len > 200 || address.chars().any(char::is_control) {
            return Err(HolderError::BadAddress);
        }
        Ok(Self {
            name,
            address,
            birth_date,
            sex,
        })
    }

    /// 氏名, parts joined by a full-width space.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// 住所.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// 生年月日.
    pub fn birth_date(&self) -> BirthDate {
        self.birth_date
    }

    /// 性別.
    pub fn sex(&self) -> Sex {
        self.sex
    }
}

impl fmt::Debug for BasicFour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BasicFour(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn era_codes_follow_era_boundaries() {
        let cases = [
            (date!(1980 - 12 - 31), "319801231"),
            (date!(1989 - 01 - 07), "319890107"),
            (date!(1989 - 01 - 08), "419890108"),
            (date!(2019 - 04 - 30), "420190430"),
            (date!(2019 - 05 - 01), "520190501"),
            (date!(1926 - 12 - 24), "219261224"),
            (date!(1912 - 07 - 29), "119120729"),
            (date!(1868 - 01 - 01), "018680101"),
        ];
        for (d, want) in cases {
            let b = BirthDate::new(d);
            assert_eq!(b.jpki_encoding(), want);
            assert_eq!(BirthDate::from_jpki_encoding(want).unwrap(), b);
        }
        assert!(
            BirthDate::from_jpki_encoding("419801231").is_err(),
            "era digit must match"
        );
    }

    #[test]
    fn fifth_birthday_after_issuance() {
        let b: BirthDate = "1990-04-01".parse().unwrap();
        assert_eq!(
            b.nth_birthday_after(date!(2026 - 11 - 21), 5),
            date!(2031 - 04 - 01)
        );
        // Issued on the birthday itself: that day does not count.
        assert_eq!(
            b.nth_birthday_after(date!(2026 - 04 - 01), 5),
            date!(2031 - 04 - 01)
        );
        assert_eq!(
            b.nth_birthday_after(date!(2026 - 03 - 31), 5),
            date!(2030 - 04 - 01)
        );
        let leap: BirthDate = "2000-02-29".parse().unwrap();
        assert_eq!(
            leap.nth_birthday_after(date!(2026 - 11 - 21), 5),
            date!(2031 - 02 - 28)
        );
        assert_eq!(
            leap.nth_birthday_after(date!(2026 - 11 - 21), 2),
            date!(2028 - 02 - 29)
        );
    }

    #[test]
    fn age_counts_whole_years() {
        let b: BirthDate = "2011-11-22".parse().unwrap();
        assert_eq!(b.age_on(date!(2026 - 11 - 21)), 14);
        assert_eq!(b.age_on(date!(2026 - 11 - 22)), 15);
    }

    #[test]
    fn names_are_joined_by_full_width_space() {
        let b = BasicFour::new(
            "  山田  太郎 ",
            "東京都千代田区",
            "1990-04-01".parse().unwrap(),
            Sex::Male,
        )
        .unwrap();
        assert_eq!(b.name(), "山田\u{3000}太郎");
        assert!(BasicFour::new("", "x", b.birth_date(), Sex::Male).is_err());
        assert!(BasicFour::new("a\u{7}", "x", b.birth_date(), Sex::Male).is_err());
        assert!(BasicFour::new("a", &"x".repeat(201), b.birth_date(), Sex::Male).is_err());
    }

    #[test]
    fn debug_output_never_shows_personal_data() {
        let b = BasicFour::new(
            "山田 太郎",
            "東京都",
            "1990-04-01".parse().unwrap(),
            Sex::Female,
        )
        .unwrap();
        let dbg = format!("{b:?} {:?} {:?}", b.birth_date(), b.sex());
        assert!(!dbg.contains("山田") && !dbg.contains("1990") && !dbg.contains("東京"));
    }

    #[test]
    fn json_round_trip_and_validation() {
        let json = r#"{"name":"山田 太郎","address":"東京都","birth_date":"1990-04-01","sex":"2"}"#;
        let b: BasicFour = serde_json::from_str(json).unwrap();
        assert_eq!(b.sex(), Sex::Female);
        let back = serde_json::to_value(&b).unwrap();
        assert_eq!(back["birth_date"], "1990-04-01");
        assert!(
            serde_json::from_str::<BasicFour>(
                r#"{"name":"","address":"a","birth_date":"1990-04-01","sex":1}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<BasicFour>(
                r#"{"name":"a","address":"a","birth_date":"1990-4-1","sex":1}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<BasicFour>(
                r#"{"name":"a","address":"a","birth_date":"1990-04-01","sex":9}"#
            )
            .is_err()
        );
    }
}
