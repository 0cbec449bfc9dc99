//! A small line chart rasteriser for the apps' result images: no fonts and no system libraries,
//! only pixels and the `png` encoder.

use crate::CombineError;

/// Largest chart drawn (pixels).
const MAX_PIXELS: u64 = 16 << 20;
const MARGIN: i64 = 12;

struct Canvas {
    w: i64,
    h: i64,
    rgb: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..self.w).contains(&x) && (0..self.h).contains(&y) {
            let i = ((y * self.w + x) * 3) as usize;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    fn hline(&mut self, y: i64, c: [u8; 3]) {
        for x in MARGIN..self.w - MARGIN {
            self.set(x, y, c);
        }
    }

    fn vline(&mut self, x: i64, c: [u8; 3], dashed: bool) {
        for y in MARGIN..self.h - MARGIN {
            if !dashed || (y / 4) % 2 == 0 {
                self.set(x, y, c);
            }
        }
    }

    /// A two-pixel-thick segment (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            self.set(x, y + 1, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }
}

/// Draws positive series (all of one length) on a log scale as an RGB PNG: light lines at each
/// power of two, grey vertical lines at `minor` indices, dark dashed ones at `major` indices, and
/// one colour swatch per series at the top left, in order.
pub fn log_chart(
    width: u32,
    height: u32,
    series: &[(&[f64], [u8; 3])],
    minor: &[usize],
    major: &[usize],
) -> Result<Vec<u8>, CombineError> {
    if width < 4 * MARGIN as u32
        || height < 4 * MARGIN as u32
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(CombineError::BadPlan(format!(
            "bad chart size {width}x{height}"
        )));
    }
    let len = series.first().map_or(0, |(s, _)| s.len());
    if len < 2 || series.iter().any(|(s, _)| s.len() != len) {
        return Err(CombineError::BadPlan(
            "a chart needs series of one length, at least 2".into(),
        ));
    }
    let logs: Vec<Vec<f64>> = series
        .iter()
        .map(|(s, _)| s.iter().map(|v| v.max(1e-12).log2()).collect())
        .collect();
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in logs.iter().flatten() {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    let (lo, hi) = (lo.floor() - 0.1, hi.ceil() + 0.1);
    let (w, h) = (i64::from(width), i64::from(height));
    let mut c = Canvas {
        w,
        h,
        rgb: vec![255u8; (w * h * 3) as usize],
    };
    let (pw, ph) = ((w - 2 * MARGIN - 1) as f64, (h - 2 * MARGIN - 1) as f64);
    let px = |i: usize| MARGIN + (i as f64 / (len - 1) as f64 * pw).round() as i64;
    let py = |v: f64| h - 1 - MARGIN - ((v - lo) / (hi - lo) * ph).round() as i64;
    let mut level = lo.ceil();
    while level <= hi {
        let colour = if level == 0.0 {
            [150, 150, 150]
        } else {
            [225, 225, 225]
        };
        c.hline(py(level), colour);
        level += 1.0;
    }
    for &i in minor.iter().filter(|&&i| i < len) {
        c.vline(px(i), [205, 205, 205], false);
    }
    for &i in major.iter().filter(|&&i| i < len) {
        c.vline(px(i), [90, 90, 90], true);
    }
    for (k, ((_, colour), log)) in series.iter().zip(&logs).enumerate().rev() {
        let mut prev = (px(0), py(log[0]));
        for (i, v) in log.iter().enumerate().skip(1) {
            let next = (px(i), py(*v));
            c.line(prev, next, *colour);
            prev = next;
        }
        c.rect(MARGIN + 4 + 14 * k as i64, MARGIN + 4, 10, 10, *colour);
    }
    crate::render::encode_png(width, height, &c.rgb)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_a_png_of_its_size_and_bad_series_are_refused() {
        let up: Vec<f64> = (0..50).map(|i| 1.0 + i as f64 / 10.0).collect();
        let down: Vec<f64> = (0..50).map(|i| 1.0 / (1.0 + i as f64 / 20.0)).collect();
        let png = log_chart(
            200,
            100,
            &[(&up, [255, 0, 0]), (&down, [0, 0, 255])],
            &[10],
            &[25],
        )
        .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 200);
        assert!(log_chart(200, 100, &[(&up, [0; 3]), (&down[..3], [0; 3])], &[], &[]).is_err());
        assert!(log_chart(10, 10, &[(&up, [0; 3])], &[], &[]).is_err());
    }
}
