//! Exact sums of `f64` values and of their pairwise products, as wide integers.
//!
//! Every finite non-negative `f64` is `m * 2^(s - 1074)` with an integer mantissa `m < 2^53` and
//! a shift `0 <= s <= 2045`, so it is *exactly* the integer `m << s` in units of `2^-1074`.
//! Likewise the product of two of them is exactly `ma * mb << (sa + sb)` in units of `2^-2148`.
//! [`Nat`] holds such integers, so a sum of payoffs and a sum of squared payoffs lose nothing,
//! at any magnitude from the smallest subnormal to `f64::MAX`: there is no currency unit to
//! round to and no square to overflow. Integer addition is associative and commutative, so the
//! units of a job merge to the same bits in any order and grouping.
//!
//! Only the final estimate is rounded, once, when it is turned back into an `f64`.

use std::fmt::Write as _;

/// The power of two below one unit of a sum: sums count units of `2^-SUM_SHIFT`.
pub const SUM_SHIFT: i32 = 1074;
/// Sums of products count units of `2^-PRODUCT_SHIFT`.
pub const PRODUCT_SHIFT: i32 = 2 * SUM_SHIFT;
/// The widest integer accepted (hex text and merges): comfortably above `2^4096` (the largest
/// product) times `2^64` (more additions than any job makes).
pub const MAX_BITS: usize = 4_352;
const MAX_LIMBS: usize = MAX_BITS / 64;

/// Why an exact sum refused a value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExactError {
    #[error(
        "a value is not finite or is negative ({0}); only finite non-negative values add exactly"
    )]
    NotFiniteNonNegative(f64),
    #[error("an exact sum would exceed {MAX_BITS} bits")]
    TooWide,
    #[error("malformed hex integer: {0}")]
    BadHex(&'static str),
    #[error("a difference would be negative")]
    Negative,
}

/// A natural number as little-endian 64-bit limbs, without trailing zero limbs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nat {
    limbs: Vec<u64>,
}

/// `x = m * 2^(s - 1074)`: (m, s). `x` must be finite and non-negative.
fn decompose(x: f64) -> Result<(u64, u32), ExactError> {
    if !x.is_finite() || x.is_sign_negative() && x != 0.0 {
        return Err(ExactError::NotFiniteNonNegative(x));
    }
    let bits = x.to_bits() & !(1u64 << 63);
    let biased = (bits >> 52) as u32;
    let fraction = bits & ((1u64 << 52) - 1);
    Ok(if biased == 0 {
        (fraction, 0)
    } else {
        (fraction | (1u64 << 52), biased - 1)
    })
}

impl Nat {
    pub fn zero() -> Nat {
        Nat::default()
    }

    pub fn from_u64(v: u64) -> Nat {
        let mut n = Nat { limbs: vec![v] };
        n.trim();
        n
    }

    pub fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    /// Number of significant bits.
    pub fn bits(&self) -> usize {
        match self.limbs.last() {
            None => 0,
            Some(top) => self.limbs.len() * 64 - top.leading_zeros() as usize,
        }
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn check_width(&self) -> Result<(), ExactError> {
        if self.bits() > MAX_BITS {
            return Err(ExactError::TooWide);
        }
        Ok(())
    }

    /// Adds `v << shift`.
    pub fn add_shifted(&mut self, v: u128, shift: u32) -> Result<(), ExactError> {
        if v == 0 {
            return Ok(());
        }
        let limb = (shift / 64) as usize;
        let bit = shift % 64;
        // `v << bit` spans at most three limbs.
        let lo = (v as u64) << bit;
        let mid = if bit == 0 {
            (v >> 64) as u64
        } else {
            ((v >> (64 - bit)) & u128::from(u64::MAX)) as u64
        };
        let hi = if bit == 0 {
            0
        } else {
            (v >> (128 - bit)) as u64
        };
        if limb + 3 > MAX_LIMBS + 1 {
            return Err(ExactError::TooWide);
        }
        if self.limbs.len() < limb + 3 {
            self.limbs.resize(limb + 3, 0);
        }
        let mut carry = 0u64;
        for (i, part) in [lo, mid, hi].into_iter().enumerate() {
            let (s1, c1) = self.limbs[limb + i].overflowing_add(part);
            let (s2, c2) = s1.overflowing_add(carry);
            self.limbs[limb + i] = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
        let mut i = limb + 3;
        while carry != 0 {
            if i == self.limbs.len() {
                self.limbs.push(0);
            }
            let (s, c) = self.limbs[i].overflowing_add(carry);
            self.limbs[i] = s;
            carry = u64::from(c);
            i += 1;
        }
        self.trim();
        self.check_width()
    }

    /// Adds `x` in units of `2^-SUM_SHIFT`: exact for every finite non-negative `x`.
    pub fn add_f64(&mut self, x: f64) -> Result<(), ExactError> {
        let (m, s) = decompose(x)?;
        self.add_shifted(u128::from(m), s)
    }

    /// Adds `x * y * 2^extra` in units of `2^-PRODUCT_SHIFT`: exact for finite non-negative
    /// `x` and `y`.
    pub fn add_product(&mut self, x: f64, y: f64, extra: u32) -> Result<(), ExactError> {
        let (mx, sx) = decompose(x)?;
        let (my, sy) = decompose(y)?;
        self.add_shifted(u128::from(mx) * u128::from(my), sx + sy + extra)
    }

    pub fn add(&self, other: &Nat) -> Result<Nat, ExactError> {
        let n = self.limbs.len().max(other.limbs.len());
        let mut limbs = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let a = self.limbs.get(i).copied().unwrap_or(0);
            let b = other.limbs.get(i).copied().unwrap_or(0);
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(carry);
            limbs.push(s2);
            carry = u64::from(c1) + u64::from(c2);
        }
        limbs.push(carry);
        let mut sum = Nat { limbs };
        sum.trim();
        sum.check_width()?;
        Ok(sum)
    }

    /// `self - other`, refused when negative.
    pub fn sub(&self, other: &Nat) -> Result<Nat, ExactError> {
        if other.limbs.len() > self.limbs.len() {
            return Err(ExactError::Negative);
        }
        let mut limbs = Vec::with_capacity(self.limbs.len());
        let mut borrow = 0u64;
        for (i, &a) in self.limbs.iter().enumerate() {
            let b = other.limbs.get(i).copied().unwrap_or(0);
            let (d1, b1) = a.overflowing_sub(b);
            let (d2, b2) = d1.overflowing_sub(borrow);
            limbs.push(d2);
            borrow = u64::from(b1) + u64::from(b2);
        }
        if borrow != 0 {
            return Err(ExactError::Negative);
        }
        let mut diff = Nat { limbs };
        diff.trim();
        Ok(diff)
    }

    pub fn mul(&self, other: &Nat) -> Result<Nat, ExactError> {
        if self.bits() + other.bits() > MAX_BITS + 64 {
            return Err(ExactError::TooWide);
        }
        let mut limbs = vec![0u64; self.limbs.len() + other.limbs.len()];
        for (i, &a) in self.limbs.iter().enumerate() {
            let mut carry = 0u128;
            for (j, &b) in other.limbs.iter().enumerate() {
                let t = u128::from(a) * u128::from(b) + u128::from(limbs[i + j]) + carry;
                limbs[i + j] = t as u64;
                carry = t >> 64;
            }
            limbs[i + other.limbs.len()] = carry as u64;
        }
        let mut product = Nat { limbs };
        product.trim();
        product.check_width()?;
        Ok(product)
    }

    /// `(f, e)` with `self ≈ f * 2^e`, `f` rounded once to nearest from the exact value
    /// (the bits below the top 64 are kept as a sticky bit).
    pub fn to_f64_parts(&self) -> (f64, i64) {
        let bits = self.bits();
        if bits <= 64 {
            return (self.limbs.first().copied().unwrap_or(0) as f64, 0);
        }
        let drop = bits - 64;
        let (limb, bit) = (drop / 64, drop % 64);
        let low = self.limbs[limb];
        let next = self.limbs.get(limb + 1).copied().unwrap_or(0);
        let mut top = if bit == 0 {
            low
        } else {
            (low >> bit) | (next << (64 - bit))
        };
        let below_nonzero = (bit != 0 && low & ((1u64 << bit) - 1) != 0)
            || self.limbs[..limb].iter().any(|&l| l != 0);
        if below_nonzero {
            // A sticky bit: 64 bits leave 11 below an f64's 53, so the conversion rounds as the
            // exact value would.
            top |= 1;
        }
        (top as f64, drop as i64)
    }

    /// Lower-case hex, `0` for zero.
    pub fn to_hex(&self) -> String {
        let Some((top, rest)) = self.limbs.split_last() else {
            return "0".into();
        };
        let mut s = format!("{top:x}");
        for limb in rest.iter().rev() {
            let _ = write!(s, "{limb:016x}");
        }
        s
    }

    /// Parses [`Nat::to_hex`], bounded by [`MAX_BITS`].
    pub fn from_hex(text: &str) -> Result<Nat, ExactError> {
        if text.is_empty() {
            return Err(ExactError::BadHex("empty"));
        }
        if text.len() > MAX_BITS / 4 {
            return Err(ExactError::TooWide);
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ExactError::BadHex("not a hex digit"));
        }
        let mut limbs = Vec::with_capacity(text.len().div_ceil(16));
        let bytes = text.as_bytes();
        let mut end = bytes.len();
        while end > 0 {
            let start = end.saturating_sub(16);
            let chunk =
                std::str::from_utf8(&bytes[start..end]).map_err(|_| ExactError::BadHex("utf8"))?;
            limbs.push(u64::from_str_radix(chunk, 16).map_err(|_| ExactError::BadHex("digit"))?);
            end = start;
        }
        let mut n = Nat { limbs };
        n.trim();
        n.check_width()?;
        Ok(n)
    }
}

/// `x * 2^e` without intermediate overflow or underflow (one rounding at most, for a
/// subnormal result).
pub fn ldexp(mut x: f64, mut e: i64) -> f64 {
    let pow2 = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
    while e > 1023 {
        x *= pow2(1023);
        e -= 1023;
        if x.is_infinite() {
            return x;
        }
    }
    while e < -1022 {
        x *= pow2(-1022);
        e += 1022;
        if x == 0.0 {
            return x;
        }
    }
    x * pow2(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn value(n: &Nat, shift: i32) -> f64 {
        let (f, e) = n.to_f64_parts();
        ldexp(f, e - i64::from(shift))
    }

    #[test]
    fn every_finite_magnitude_adds_exactly() {
        let mut n = Nat::zero();
        for x in [f64::MAX, 5e-324, 1.0, f64::MIN_POSITIVE, 0.0] {
            n.add_f64(x).unwrap();
        }
        // Take the big ones away again: what is left is exactly the small ones.
        let mut big = Nat::zero();
        big.add_f64(f64::MAX).unwrap();
        big.add_f64(1.0).unwrap();
        let small = n.sub(&big).unwrap();
        assert_eq!(value(&small, SUM_SHIFT), 5e-324 + f64::MIN_POSITIVE);
        assert_eq!(value(&big, SUM_SHIFT), f64::MAX);
    }

    #[test]
    fn products_of_extreme_values_are_exact() {
        let mut n = Nat::zero();
        n.add_product(f64::MAX, f64::MAX, 0).unwrap();
        n.add_product(5e-324, 5e-324, 1).unwrap();
        let mut big = Nat::zero();
        big.add_product(f64::MAX, f64::MAX, 0).unwrap();
        let tiny = n.sub(&big).unwrap();
        // 2 * (2^-1074)^2 = 2^-2147: one unit of the product scale, doubled.
        assert_eq!(tiny, Nat::from_u64(2));
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let mut n = Nat::zero();
        n.add_shifted(u128::MAX, 200).unwrap();
        assert_eq!(Nat::from_hex(&n.to_hex()).unwrap(), n);
        assert_eq!(Nat::from_hex("0").unwrap(), Nat::zero());
        assert_eq!(Nat::zero().to_hex(), "0");
        assert!(Nat::from_hex("12g").is_err());
        assert!(Nat::from_hex("").is_err());
        assert_eq!(
            Nat::from_hex(&"f".repeat(MAX_BITS / 4 + 1)),
            Err(ExactError::TooWide)
        );
    }

    #[test]
    fn non_finite_and_negative_values_are_refused() {
        let mut n = Nat::zero();
        assert!(n.add_f64(f64::INFINITY).is_err());
        assert!(n.add_f64(f64::NAN).is_err());
        assert!(n.add_f64(-1.0).is_err());
        assert!(n.add_f64(-0.0).is_ok());
        assert!(n.is_zero());
    }

    #[test]
    fn multiplication_and_subtraction_agree_with_u128() {
        let a = Nat::from_u64(u64::MAX);
        let b = Nat::from_u64(3);
        let p = a.mul(&b).unwrap();
        let mut expect = Nat::zero();
        expect.add_shifted(u128::from(u64::MAX) * 3, 0).unwrap();
        assert_eq!(p, expect);
        assert_eq!(p.sub(&a).unwrap(), a.mul(&Nat::from_u64(2)).unwrap());
        assert_eq!(a.sub(&p), Err(ExactError::Negative));
    }

    #[test]
    fn conversion_rounds_once_from_the_exact_value() {
        // 2^80 + 2^27 + 1: the top 53 bits are 2^80 + 2^28 * 0, the rest is just above half an
        // ulp (an ulp is 2^28), so the exact value rounds up.
        let mut n = Nat::zero();
        n.add_shifted(1, 80).unwrap();
        n.add_shifted(1, 27).unwrap();
        n.add_shifted(1, 0).unwrap();
        let (f, e) = n.to_f64_parts();
        assert_eq!(ldexp(f, e), 2f64.powi(80) + 2f64.powi(28));
    }
}
