//! From linear radiance to 8-bit sRGB: exposure, the ACES filmic curve (Narkowicz's fit), then the
//! sRGB transfer function.
//!
//! The filmic curve rolls highlights off smoothly where a hard clip turns every bright area flat
//! white, and the sRGB curve (linear toe, 2.4 power) is what displays and PNG viewers assume.
//! The power is never evaluated per pixel: [`Srgb8`] holds the 255 linear values at which the
//! 8-bit code changes, computed with basic arithmetic only (a fifth root by Newton's method), and
//! quantises by binary search. Every machine computes the same table and the same codes, which a
//! `powf` from the platform's maths library would not guarantee.

/// Narkowicz (2015), "ACES Filmic Tone Mapping Curve": maps [0, ∞) onto [0, 1).
pub fn aces(x: f64) -> f64 {
    let y = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14);
    y.clamp(0.0, 1.0)
}

/// The sRGB decoding function (IEC 61966-2-1): encoded value in [0, 1] to linear.
pub fn srgb_to_linear(c: f64) -> f64 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        let y = (c + 0.055) / 1.055;
        // y^2.4 = y^2 * (y^2)^(1/5).
        let y2 = y * y;
        y2 * fifth_root(y2)
    }
}

/// Fifth root of `a` in (0, 1] by Newton's method from 1, which approaches from above and stops
/// when it no longer decreases: a fixed sequence of correctly rounded operations.
fn fifth_root(a: f64) -> f64 {
    let mut r: f64 = 1.0;
    for _ in 0..200 {
        let r4 = r * r * r * r;
        let next = (4.0 * r + a / r4) / 5.0;
        if next >= r {
            break;
        }
        r = next;
    }
    r
}

/// Quantiser from linear [0, 1] to 8-bit sRGB codes.
pub struct Srgb8 {
    /// `thresholds[i]`: the smallest linear value whose code is `i + 1`.
    thresholds: [f64; 255],
}

impl Default for Srgb8 {
    fn default() -> Self {
        Self::new()
    }
}

impl Srgb8 {
    pub fn new() -> Srgb8 {
        let mut thresholds = [0.0; 255];
        for (i, t) in thresholds.iter_mut().enumerate() {
            *t = srgb_to_linear((i as f64 + 0.5) / 255.0);
        }
        Srgb8 { thresholds }
    }

    /// The code of linear `x`, rounded to the nearest code in the encoded domain; NaN (which the
    /// sandbox makes identical everywhere) and negatives give 0.
    pub fn encode(&self, x: f64) -> u8 {
        if x.is_nan() {
            return 0;
        }
        self.thresholds.partition_point(|&t| t <= x) as u8
    }

    /// Exposure, tone curve and transfer function: one pixel channel.
    pub fn tone_map(&self, linear: f64, exposure: f64) -> u8 {
        let x = linear * exposure;
        if x.is_nan() || x <= 0.0 {
            return 0;
        }
        self.encode(aces(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_srgb_table_matches_the_standard_curve() {
        let q = Srgb8::new();
        for code in 0..=255u32 {
            let linear = srgb_to_linear(code as f64 / 255.0);
            assert_eq!(q.encode(linear), code as u8, "code {code}");
            let reference = ((code as f64 / 255.0 + 0.055) / 1.055).powf(2.4);
            if code as f64 / 255.0 > 0.04045 {
                assert!((linear - reference).abs() < 1e-12, "code {code}");
            }
        }
        assert_eq!(q.encode(0.0), 0);
        assert_eq!(q.encode(-1.0), 0);
        assert_eq!(q.encode(f64::NAN), 0);
        assert_eq!(q.encode(2.0), 255);
        // Mid grey (18% linear) is code 118 in sRGB, not 108 as with gamma 2.
        assert_eq!(q.encode(0.18), 118);
    }

    #[test]
    fn the_tone_curve_rolls_off_instead_of_clipping() {
        let q = Srgb8::new();
        let codes: Vec<u8> = [0.25, 0.5, 1.0, 2.0, 4.0]
            .iter()
            .map(|&x| q.tone_map(x, 1.0))
            .collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
        assert!(codes[4] < 255, "{codes:?}");
        assert_eq!(q.tone_map(f64::NAN, 1.0), 0);
        assert_eq!(q.tone_map(f64::INFINITY, 1.0), 0);
        assert_eq!(q.tone_map(-3.0, 1.0), 0);
    }
}
