//! Token amounts in base units.

use bytes::BufMut;
use commonware_codec::{Buf, Error, FixedSize, Read, Write};
use std::fmt;

/// Decimal places of one EXO.
pub const EXO_DECIMALS: u32 = 9;
/// Base units in one EXO.
pub const BASE_UNITS_PER_EXO: u128 = 1_000_000_000;

/// An amount of EXO in base units (1 EXO = 10^9 base units).
///
/// All arithmetic is checked: an overflow is an error the caller turns into a rejection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub u128);

/// Why a textual amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a decimal number")]
    NotANumber(String),
    #[error("amount {0:?} has more than {EXO_DECIMALS} decimals")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl Amount {
    pub const ZERO: Self = Self(0);

    /// Whole EXO.
    pub const fn from_exo(exo: u64) -> Self {
        Self(exo as u128 * BASE_UNITS_PER_EXO)
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    pub fn checked_mul(self, factor: u128) -> Option<Self> {
        self.0.checked_mul(factor).map(Self)
    }

    /// Parses an EXO amount with up to nine decimals, such as `12`, `0.5` or `3.000000001`.
    pub fn parse_exo(text: &str) -> Result<Self, AmountError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(AmountError::NotANumber(text.to_string()));
        }
        if frac.len() > EXO_DECIMALS as usize {
            return Err(AmountError::TooPrecise(text.to_string()));
        }
        let too_large = || AmountError::TooLarge(text.to_string());
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_large())?
        };
        let mut frac_units: u128 = 0;
        for (i, c) in frac.chars().enumerate() {
            let digit = u128::from(c.to_digit(10).unwrap_or(0));
            frac_units += digit * 10u128.pow(EXO_DECIMALS - 1 - i as u32);
        }
        whole
            .checked_mul(BASE_UNITS_PER_EXO)
            .and_then(|w| w.checked_add(frac_units))
            .map(Self)
            .ok_or_else(too_large)
    }

    /// Parses a decimal string of base units (the JSON form).
    pub fn parse_base_units(text: &str) -> Result<Self, AmountError> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        if !text.chars().all(|c| c.is_ascii_digit()) {
            return Err(AmountError::NotANumber(text.to_string()));
        }
        text.parse()
            .map(Self)
            .map_err(|_| AmountError::TooLarge(text.to_string()))
    }

    /// Formats the amount in EXO, without trailing zeros (`1.5`, `12`).
    pub fn to_exo_string(self) -> String {
        let whole = self.0 / BASE_UNITS_PER_EXO;
        let frac = self.0 % BASE_UNITS_PER_EXO;
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:09}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

impl fmt::Display for Amount {
    /// Displays base units, the unambiguous form used in JSON and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Write for Amount {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl FixedSize for Amount {
    const SIZE: usize = 16;
}

impl Read for Amount {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self(u128::read_cfg(buf, &())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exo_with_decimals() {
        assert_eq!(Amount::parse_exo("1").unwrap(), Amount(1_000_000_000));
        assert_eq!(Amount::parse_exo("0.5").unwrap(), Amount(500_000_000));
        assert_eq!(Amount::parse_exo(".25").unwrap(), Amount(250_000_000));
        assert_eq!(
            Amount::parse_exo("3.000000001").unwrap(),
            Amount(3_000_000_001)
        );
        assert_eq!(
            Amount::parse_exo("1.0000000001"),
            Err(AmountError::TooPrecise("1.0000000001".into()))
        );
        assert!(matches!(
            Amount::parse_exo("-1"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_exo("1e9"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_exo("."),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_exo("999999999999999999999999999999999999"),
            Err(AmountError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_exo_round_trip() {
        for text in ["0", "1", "0.5", "12.345", "3.000000001"] {
            assert_eq!(Amount::parse_exo(text).unwrap().to_exo_string(), text);
        }
    }

    #[test]
    fn base_units_reject_signs_and_overflow() {
        assert_eq!(Amount::parse_base_units("42").unwrap(), Amount(42));
        assert!(Amount::parse_base_units("+42").is_err());
        assert!(Amount::parse_base_units(&"9".repeat(40)).is_err());
    }

    #[test]
    fn encoding_is_sixteen_big_endian_bytes() {
        use commonware_codec::{Encode, EncodeSize};
        assert_eq!(Amount(1).encode().len(), Amount(1).encode_size());
        assert_eq!(
            hex::encode(Amount(258).encode()),
            "00000000000000000000000000000102"
        );
    }
}
