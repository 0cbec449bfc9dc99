//! The `backtest` task app's kernel: moving-average crossover backtests over daily OHLC bars for
//! a slice of a parameter grid, with total return, annualised Sharpe ratio and maximum drawdown
//! per parameter set.
//!
//! The strategy is long when the fast simple moving average of closes is above the slow one and
//! flat otherwise; a signal computed on day `t`'s close trades on day `t + 1`, so there is no
//! look-ahead. Each change of position pays `cost_bps`.
//!
//! Floats are fine here: the sandbox canonicalises NaNs, and IEEE arithmetic without
//! transcendental functions is bit-identical everywhere. It must never read the clock or OS
//! randomness.

use std::fmt::Write as _;

/// Bounds on what one unit accepts.
pub const MAX_BARS: usize = 1_000_000;
pub const MAX_WINDOW: u32 = 10_000;
pub const MAX_COMBOS: usize = 1_000_000;
const TRADING_DAYS: f64 = 252.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    /// `yyyymmdd`.
    pub date: u32,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

/// Parses `date,open,high,low,close[,...]` lines (a header line is skipped; dates are
/// `yyyy-mm-dd`). Bars must be in increasing date order.
pub fn parse_csv(text: &str) -> Result<Vec<Bar>, String> {
    let mut bars: Vec<Bar> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with(|c: char| c.is_ascii_alphabetic())) {
            continue;
        }
        let err = |what: &str| format!("line {}: {what}", i + 1);
        let mut f = line.split(',');
        let date = f.next().ok_or_else(|| err("missing date"))?;
        let date: u32 = date.replace('-', "").parse().map_err(|_| err("bad date"))?;
        let mut num = || -> Result<f64, String> {
            let s = f.next().ok_or_else(|| err("missing field"))?;
            let v: f64 = s.trim().parse().map_err(|_| err("bad number"))?;
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(err("price must be positive"))
            }
        };
        let (open, high, low, close) = (num()?, num()?, num()?, num()?);
        if bars.last().is_some_and(|b| b.date >= date) {
            return Err(err("dates must increase"));
        }
        if bars.len() >= MAX_BARS {
            return Err(err("too many bars"));
        }
        bars.push(Bar {
            date,
            open,
            high,
            low,
            close,
        });
    }
    if bars.len() < 2 {
        return Err("need at least two bars".into());
    }
    Ok(bars)
}

/// An inclusive range of windows, `lo..=hi` by `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub lo: u32,
    pub hi: u32,
    pub step: u32,
}

impl Range {
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        (self.lo..=self.hi).step_by(self.step.max(1) as usize)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub fast: Range,
    pub slow: Range,
    pub cost_bps: f64,
}

impl Grid {
    /// Parses `fast_lo fast_hi fast_step slow_lo slow_hi slow_step [cost_bps]`.
    pub fn from_args(args: &[String]) -> Result<Grid, String> {
        if args.len() != 6 && args.len() != 7 {
            return Err(
                "usage: backtest fast_lo fast_hi fast_step slow_lo slow_hi slow_step [cost_bps]"
                    .into(),
            );
        }
        let mut v = [0u32; 6];
        for (i, a) in args.iter().take(6).enumerate() {
            v[i] = a
                .parse()
                .map_err(|_| format!("argument {} is not a u32: {a:?}", i + 1))?;
        }
        let cost_bps = match args.get(6) {
            Some(s) => s
                .parse::<f64>()
                .map_err(|_| format!("bad cost_bps {s:?}"))?,
            None => 0.0,
        };
        if !(0.0..=1000.0).contains(&cost_bps) {
            return Err("cost_bps must be in 0..=1000".into());
        }
        let g = Grid {
            fast: Range {
                lo: v[0],
                hi: v[1],
                step: v[2],
            },
            slow: Range {
                lo: v[3],
                hi: v[4],
                step: v[5],
            },
            cost_bps,
        };
        for r in [g.fast, g.slow] {
            if r.lo == 0 || r.lo > r.hi || r.hi > MAX_WINDOW || r.step == 0 {
                return Err(format!(
                    "bad window range {}..={} step {}",
                    r.lo, r.hi, r.step
                ));
            }
        }
        if g.combos().count() > MAX_COMBOS {
            return Err("grid too large".into());
        }
        Ok(g)
    }

    /// The parameter sets of this grid with `fast < slow`, in a fixed order.
    pub fn combos(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.fast.values().flat_map(move |f| {
            self.slow
                .values()
                .filter(move |&s| f < s)
                .map(move |s| (f, s))
        })
    }
}

/// One parameter set's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    pub fast: u32,
    pub slow: u32,
    pub total_return: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    pub trades: u32,
}

/// Backtests one parameter set. `prefix` is [`prefix_sums`] of the closes.
pub fn backtest(bars: &[Bar], prefix: &[f64], fast: u32, slow: u32, cost_bps: f64) -> Row {
    let (f, s) = (fast as usize, slow as usize);
    let sma = |end: usize, w: usize| (prefix[end + 1] - prefix[end + 1 - w]) / w as f64;
    let cost = cost_bps / 10_000.0;
    let mut equity = 1.0f64;
    let mut peak = 1.0f64;
    let mut max_dd = 0.0f64;
    let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0u32);
    let mut position = false;
    let mut trades = 0u32;
    for t in 1..bars.len() {
        // Position held over day t was decided on day t - 1's close.
        let decided = t - 1;
        let want = decided + 1 >= s && sma(decided, f) > sma(decided, s);
        let mut r = if position {
            bars[t].close / bars[t - 1].close - 1.0
        } else {
            0.0
        };
        if want != position {
            trades += 1;
            position = want;
            // Enter or exit at day t - 1's close: the day's return applies from the new position.
            r = if position {
                bars[t].close / bars[t - 1].close - 1.0
            } else {
                0.0
            };
            r -= cost;
        }
        equity *= 1.0 + r;
        if equity > peak {
            peak = equity;
        }
        let dd = (peak - equity) / peak;
        if dd > max_dd {
            max_dd = dd;
        }
        sum += r;
        sum_sq += r * r;
        n += 1;
    }
    let mean = sum / n as f64;
    let var = (sum_sq / n as f64 - mean * mean).max(0.0);
    let sharpe = if var > 0.0 {
        mean / var.sqrt() * TRADING_DAYS.sqrt()
    } else {
        0.0
    };
    Row {
        fast,
        slow,
        total_return: equity - 1.0,
        sharpe,
        max_drawdown: max_dd,
        trades,
    }
}

/// `prefix[i]` is the sum of the first `i` closes.
pub fn prefix_sums(bars: &[Bar]) -> Vec<f64> {
    let mut p = Vec::with_capacity(bars.len() + 1);
    let mut acc = 0.0;
    p.push(acc);
    for b in bars {
        acc += b.close;
        p.push(acc);
    }
    p
}

/// Backtests every parameter set of the grid whose windows fit the data.
pub fn run_grid(bars: &[Bar], grid: &Grid) -> Vec<Row> {
    let prefix = prefix_sums(bars);
    grid.combos()
        .filter(|&(_, s)| (s as usize) < bars.len())
        .map(|(f, s)| backtest(bars, &prefix, f, s, grid.cost_bps))
        .collect()
}

pub const CSV_HEADER: &str = "fast,slow,total_return,sharpe,max_drawdown,trades";

/// Rows as CSV with a header. Rust's float formatting is exact and platform-independent.
pub fn format_rows(rows: &[Row]) -> String {
    let mut out = String::with_capacity(rows.len() * 48 + 64);
    out.push_str(CSV_HEADER);
    out.push('\n');
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{:.6},{:.6},{:.6},{}",
            r.fast, r.slow, r.total_return, r.sharpe, r.max_drawdown, r.trades
        );
    }
    out
}

/// Parses [`format_rows`] output.
pub fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line == CSV_HEADER {
            continue;
        }
        let err = || format!("results line {}: malformed {line:?}", i + 1);
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 6 {
            return Err(err());
        }
        let float = |s: &str| s.parse::<f64>().map_err(|_| err());
        rows.push(Row {
            fast: f[0].parse().map_err(|_| err())?,
            slow: f[1].parse().map_err(|_| err())?,
            total_return: float(f[2])?,
            sharpe: float(f[3])?,
            max_drawdown: float(f[4])?,
            trades: f[5].parse().map_err(|_| err())?,
        });
    }
    Ok(rows)
}

/// Best first: Sharpe, then total return (both descending), then the smaller drawdown, then
/// (fast, slow) ascending, so that ties have one order everywhere.
pub fn rank(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        b.sharpe
            .total_cmp(&a.sharpe)
            .then(b.total_return.total_cmp(&a.total_return))
            .then(a.max_drawdown.total_cmp(&b.max_drawdown))
            .then((a.fast, a.slow).cmp(&(b.fast, b.slow)))
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bars(closes: &[f64]) -> Vec<Bar> {
        closes
            .iter()
            .enumerate()
            .map(|(i, &c)| Bar {
                date: 20000101 + i as u32,
                open: c,
                high: c,
                low: c,
                close: c,
            })
            .collect()
    }

    #[test]
    fn rising_market_is_held() {
        let b = bars(&(1..=100).map(|i| 100.0 + i as f64).collect::<Vec<_>>());
        let row = backtest(&b, &prefix_sums(&b), 2, 5, 0.0);
        assert_eq!(row.trades, 1);
        assert!(row.total_return > 0.0);
        assert_eq!(row.max_drawdown, 0.0);
    }

    #[test]
    fn grid_and_csv_round_trip() {
        let args: Vec<String> = "2 4 1 3 6 1 5".split(' ').map(String::from).collect();
        let g = Grid::from_args(&args).unwrap();
        assert_eq!(g.combos().count(), 4 + 3 + 2);
        let b = bars(&[10.0, 11.0, 10.5, 12.0, 11.0, 13.0, 12.5, 14.0, 9.0, 10.0]);
        let mut rows = run_grid(&b, &g);
        let text = format_rows(&rows);
        let back = parse_rows(&text).unwrap();
        assert_eq!(back.len(), rows.len());
        rank(&mut rows);
        assert!(rows.windows(2).all(|w| w[0].sharpe >= w[1].sharpe));
        assert!(Grid::from_args(&args[..3]).is_err());
    }

    #[test]
    fn csv_parse() {
        let b =
            parse_csv("date,open,high,low,close\n2000-01-03,1,2,0.5,1.5\n2000-01-04,1,2,0.5,1.6\n")
                .unwrap();
        assert_eq!(b[1].date, 20000104);
        assert!(parse_csv("2000-01-03,1,2,0.5,1.5\n2000-01-02,1,2,0.5,1.5\n").is_err());
        assert!(parse_csv("2000-01-03,1,2,0.5,-1\n").is_err());
    }
}
