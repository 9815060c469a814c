//! 個人番号 (My Number): twelve digits, the last a check digit.
//!
//! The check digit follows 総務省令 (個人番号の指定に関する省令) §5:
//! with `Pn` the n-th digit of the first eleven counted from the **right**
//! (P1 is the eleventh digit), `Qn = n + 1` for `1 ≤ n ≤ 6` and `n − 5` for
//! `7 ≤ n ≤ 11`, the check digit is `11 − (Σ Pn·Qn mod 11)`, or `0` when
//! the remainder is 0 or 1.
//!
//! A My Number is personal data of the most sensitive kind: [`MyNumber`]'s
//! `Debug` never shows it and it is wiped on drop. It belongs on the card
//! only (never in logs, events, error messages or the registry).

use core::fmt;

use zeroize::Zeroizing;

use crate::RandomSource;

/// A well-formed My Number (12 ASCII digits with a valid check digit).
#[derive(Clone, PartialEq, Eq)]
pub struct MyNumber(Zeroizing<String>);

/// Why a string is not a My Number (never says what the string was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MyNumberError {
    /// Not exactly 12 ASCII digits.
    Format,
    /// The twelfth digit is not the check digit of the first eleven.
    CheckDigit,
}

impl fmt::Display for MyNumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Format => "a My Number is exactly 12 digits",
            Self::CheckDigit => "the My Number's check digit (12th digit) is wrong",
        })
    }
}

impl std::error::Error for MyNumberError {}

/// The check digit of the first eleven digits (each `0..=9`).
pub fn check_digit(first_eleven: &[u8; 11]) -> u8 {
    let sum: u32 = first_eleven
        .iter()
        .rev()
        .enumerate()
        .map(|(i, p)| {
            let n = i as u32 + 1;
            let q = if n <= 6 { n + 1 } else { n - 5 };
            u32::from(*p) * q
        })
        .sum();
    let r = sum % 11;
    if r <= 1 { 0 } else { (11 - r) as u8 }
}

impl MyNumber {
    /// Parses and checks 12 ASCII digits.
    pub fn parse(text: &str) -> Result<Self, MyNumberError> {
        let b = text.as_bytes();
        if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
            return Err(MyNumberError::Format);
        }
        let mut first = [0u8; 11];
        for (d, c) in first.iter_mut().zip(b) {
            *d = c - b'0';
        }
        if b.get(11).map(|c| c - b'0') != Some(check_digit(&first)) {
            return Err(MyNumberError::CheckDigit);
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// A uniformly random valid number (the authority's default).
    pub fn generate(rng: &mut dyn RandomSource) -> Result<Self, crate::SignError> {
        let mut first = [0u8; 11];
        for d in &mut first {
            // Rejection sampling keeps every digit uniform.
            *d = loop {
                let mut b = [0u8; 1];
                rng.fill(&mut b)?;
                if b[0] < 250 {
                    break b[0] % 10;
                }
            };
        }
        let check = check_digit(&first);
        let text: String = first
            .iter()
            .chain([&check])
            .map(|d| char::from(b'0' + d))
            .collect();
        Ok(Self(Zeroizing::new(text)))
    }

    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MyNumber(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> [u8; 11] {
        let mut out = [0u8; 11];
        for (d, c) in out.iter_mut().zip(s.bytes()) {
            *d = c - b'0';
        }
        out
    }

    #[test]
    fn check_digits_computed_by_hand() {
        // 12345678901: P1..P11 = 1,0,9,8,7,6,5,4,3,2,1; Q = 2..7,2..6;
        // Σ = 2+0+36+40+42+42+10+12+12+10+6 = 212; 212 mod 11 = 3 → 8.
        assert_eq!(check_digit(&digits("12345678901")), 8);
        // 11111111111: Σ Q = 47; 47 mod 11 = 3 → 8.
        assert_eq!(check_digit(&digits("11111111111")), 8);
        // All zeros: remainder 0 → 0.
        assert_eq!(check_digit(&digits("00000000000")), 0);
        // 00000000001: P1 = 1, Q1 = 2 → remainder 2 → 9.
        assert_eq!(check_digit(&digits("00000000001")), 9);
        // 00000000010: P2 = 1, Q2 = 3 → 8.
        assert_eq!(check_digit(&digits("00000000010")), 8);
        // 10000000000: P11 = 1, Q11 = 6 → 5.
        assert_eq!(check_digit(&digits("10000000000")), 5);
        // 00001000000: P7 = 1, Q7 = 2 → 9 (the Q sequence restarts at 2).
        assert_eq!(check_digit(&digits("00001000000")), 9);
        // 00000500000: P6 = 5, Q6 = 7 → 35 mod 11 = 2 → 9.
        assert_eq!(check_digit(&digits("00000500000")), 9);
        // Remainder 1 → 0: 00000000005: P1 = 5 → 10 mod 11 = 10 → 1; 00000000006 → 12 mod 11 = 1 → 0.
        assert_eq!(check_digit(&digits("00000000005")), 1);
        assert_eq!(check_digit(&digits("00000000006")), 0);
    }

    #[test]
    fn parse_accepts_valid_and_refuses_the_rest() {
        for ok in [
            "123456789018",
            "111111111118",
            "000000000000",
            "000000000060",
        ] {
            assert_eq!(MyNumber::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(
            MyNumber::parse("123456789019"),
            Err(MyNumberError::CheckDigit)
        );
        for bad in [
            "12345678901",
            "1234567890180",
            "12345678901a",
            "１２３４５６７８９０１８",
        ] {
            assert_eq!(MyNumber::parse(bad), Err(MyNumberError::Format));
        }
        let n = MyNumber::parse("123456789018").unwrap();
        assert_eq!(format!("{n:?}"), "MyNumber(<redacted>)");
        assert!(!MyNumberError::CheckDigit.to_string().contains("1234"));
    }

    #[test]
    fn generated_numbers_are_valid() {
        struct Counter(u8);
        impl RandomSource for Counter {
            fn fill(&mut self, buf: &mut [u8]) -> Result<(), crate::SignError> {
                for b in buf {
                    self.0 = self.0.wrapping_add(97);
                    *b = self.0;
                }
                Ok(())
            }
        }
        let mut rng = Counter(0);
        for _ in 0..200 {
            let n = MyNumber::generate(&mut rng).unwrap();
            assert!(MyNumber::parse(n.as_str()).is_ok());
        }
    }
}
